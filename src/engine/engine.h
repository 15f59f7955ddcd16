/* SPDX-License-Identifier: MIT */
/*
 * The engines behind mrs_save, mrs_restore and mrs_verify. They take full
 * structs of this library's size, never NULL options, and io resolved from
 * the caller's by size: src/engine/api.c does that, once, for all of them.
 */
#ifndef MRS_ENGINE_H
#define MRS_ENGINE_H

#include "mrsnap.h"

int mrs_engine_save(const char *path, const struct mrs_ram *ram, unsigned nram,
		    const struct mrs_save_opts *opts, struct mrs_save_report *report,
		    struct mrs_error *err);
int mrs_engine_restore(const char *path, const struct mrs_ram *targets, unsigned ntargets,
		       const struct mrs_restore_opts *opts, struct mrs_restore_report *report,
		       struct mrs_error *err);
int mrs_engine_verify(const char *path, const struct mrs_io_opts *io,
		      struct mrs_verify_report *report, struct mrs_error *err);

/* Free what a full report points to (the public _free functions, by size). */
void mrs_engine_save_report_free(struct mrs_save_report *report);
void mrs_engine_restore_report_free(struct mrs_restore_report *report);
void mrs_engine_verify_report_free(struct mrs_verify_report *report);

struct mrs_block_header;
/* A block header as the public API describes it (info, and the reports). */
void mrs_block_to_info(const struct mrs_block_header *bh, struct mrs_block_info *out);

#endif
