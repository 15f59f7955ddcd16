/* SPDX-License-Identifier: MIT */
/* Filling in struct mrs_error: the library's only way of saying what failed. */
#ifndef MRS_ERROR_H
#define MRS_ERROR_H

#include "mrsnap.h"

/*
 * Record code (a negative errno) and a formatted message in err (which may be
 * NULL), and return code so that callers can write `return mrs_err(...)`.
 */
int mrs_err(struct mrs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like mrs_err(), with ": strerror(-code)" appended to the message. */
int mrs_err_errno(struct mrs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Put context in front of a message already in err: "block 'pc.ram': ...".
 * Returns err->code, or -EIO when err is NULL.
 */
int mrs_err_prefix(struct mrs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Append more to a message already in err (cut to fit), keeping its code:
 * a second failure on the way out, such as a thaw that failed too.
 * Returns err->code, or -EIO when err is NULL.
 */
int mrs_err_suffix(struct mrs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
