/* SPDX-License-Identifier: MIT */
/* Shared by the unit tests: cmocka, temporary files, message checks. */
#ifndef MRS_TEST_HELPERS_H
#define MRS_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mrsnap.h"

/* Exit code that tells automake a test was skipped. */
#define TEST_SKIP 77

/* Fail unless the error message contains needle; print it either way on failure. */
#define assert_msg_has(err, needle) mrs_test_assert_msg_has((err), (needle), __FILE__, __LINE__)
void mrs_test_assert_msg_has(const struct mrs_error *err, const char *needle, const char *file,
			     int line);

/* A fresh directory under $TMPDIR (or /tmp), removed with everything in it by tmpdir_remove. */
char *mrs_test_tmpdir(void);
/* The same under parent (NULL: as above). */
char *mrs_test_tmpdir_in(const char *parent);
void mrs_test_tmpdir_remove(char *dir);

/* Fill buf with bytes that depend on seed only (xorshift). */
void mrs_test_fill(void *buf, size_t len, uint64_t seed);

/* Whether io_uring works here; if not, says why on stderr (the caller skips). */
int mrs_test_have_io_uring(void);

#endif
