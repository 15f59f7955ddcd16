/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "error.h"
#include "extstruct.h"

size_t mrs_struct_size(const void *s)
{
	size_t size;

	memcpy(&size, s, sizeof(size));
	return size;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

void mrs_struct_prefix(void *full, size_t full_size, const void *in)
{
	size_t size = in ? mrs_struct_size(in) : 0;

	memset(full, 0, full_size);
	if (size > sizeof(size_t))
		memcpy((unsigned char *)full + sizeof(size_t),
		       (const unsigned char *)in + sizeof(size_t),
		       (size < full_size ? size : full_size) - sizeof(size_t));
	memcpy(full, &full_size, sizeof(full_size));
}

int mrs_struct_in(void *full, size_t full_size, const void *in, const char *what,
		  struct mrs_error *err)
{
	size_t size;

	mrs_struct_prefix(full, full_size, NULL);
	if (!in)
		return 0;
	size = mrs_struct_size(in);
	if (size < sizeof(size_t))
		return mrs_err(err, -EINVAL,
			       "struct %s has size %zu: initialise it with its _INIT macro", what,
			       size);
	if (size > full_size && !all_zero((const unsigned char *)in + full_size, size - full_size))
		return mrs_err(
		    err, -EINVAL,
		    "struct %s sets fields that mrsnap %s does not know (bytes %zu to %zu "
		    "of %zu)",
		    what, mrs_version_string(), full_size, size - 1, size);
	mrs_struct_prefix(full, full_size, in);
	return 0;
}

int mrs_report_check(const void *report, const char *what, struct mrs_error *err)
{
	size_t size;

	if (!report)
		return 0;
	size = mrs_struct_size(report);
	if (size < sizeof(size_t))
		return mrs_err(err, -EINVAL,
			       "struct %s has size %zu: initialise it with its _INIT macro", what,
			       size);
	return 0;
}

void mrs_report_zero(void *report)
{
	memset((unsigned char *)report + sizeof(size_t), 0,
	       mrs_struct_size(report) - sizeof(size_t));
}

void mrs_report_out(void *report, const void *full, size_t full_size)
{
	size_t size = mrs_struct_size(report);
	size_t n = size < full_size ? size : full_size;

	memcpy((unsigned char *)report + sizeof(size_t),
	       (const unsigned char *)full + sizeof(size_t), n - sizeof(size_t));
	if (size > full_size)
		memset((unsigned char *)report + full_size, 0, size - full_size);
}
