/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static void vset(struct mrs_error *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int mrs_err(struct mrs_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int mrs_err_errno(struct mrs_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	if (!err)
		return code;
	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(-code));
	return code;
}

int mrs_err_prefix(struct mrs_error *err, const char *fmt, ...)
{
	char old[sizeof(err->msg)];
	va_list ap;
	int len;

	if (!err)
		return -EIO;
	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	len = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (len >= 0 && (size_t)len + 3 < sizeof(err->msg)) {
		/* Append ": old", cut to fit: context matters more than the tail. */
		size_t at = (size_t)len, n = strnlen(old, sizeof(err->msg) - at - 3);

		memcpy(err->msg + at, ": ", 2);
		memcpy(err->msg + at + 2, old, n);
		err->msg[at + 2 + n] = '\0';
	}
	return err->code;
}

int mrs_err_suffix(struct mrs_error *err, const char *fmt, ...)
{
	size_t len;
	va_list ap;

	if (!err)
		return -EIO;
	len = strnlen(err->msg, sizeof(err->msg) - 1);
	va_start(ap, fmt);
	vsnprintf(err->msg + len, sizeof(err->msg) - len, fmt, ap);
	va_end(ap);
	return err->code;
}
