/* SPDX-License-Identifier: MIT */
/*
 * Freezing the guest: providers behind one small ops table, and a group of
 * them frozen in order and thawed in reverse. Whatever happens, a provider
 * whose freeze was attempted gets its thaw.
 */
#ifndef MRS_FREEZE_H
#define MRS_FREEZE_H

#include <stdbool.h>

#include "mrsnap.h"

struct mrs_freezer {
	struct mrs_freezer_ops ops; /* the caller's, copied in full (include/mrsnap.h) */
	void *ctx;
	bool attempted; /* freeze was called: thaw is owed */
};

/* Freeze every freezer in order; on failure, thaw those attempted. */
int mrs_freeze_all(struct mrs_freezer *const *f, unsigned n, struct mrs_error *err);
/*
 * Thaw every freezer whose freeze was attempted, in reverse order, even if
 * one fails (the first failure is reported). Safe to call more than once.
 */
int mrs_thaw_all(struct mrs_freezer *const *f, unsigned n, struct mrs_error *err);

#endif
