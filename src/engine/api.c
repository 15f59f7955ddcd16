/* SPDX-License-Identifier: MIT */
/*
 * The public entry points of the engines: the caller's options are checked
 * and copied in by size, and reports copied out by size (include/mrsnap.h,
 * "Structs that grow"), so that each engine works on full structs only.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "engine.h"
#include "error.h"
#include "extstruct.h"

/*
 * The structs that grow have no tail padding: an old caller's size then
 * covers only named fields, which its _INIT zeroed, and never padding bytes
 * a new field would be read from (mrsnap.h, "Structs that grow"). A field
 * added in the wrong place, or a struct that gains padding, fails to build.
 */
#define NO_TAIL_PADDING(type, last)                                                                \
	_Static_assert(sizeof(struct type) ==                                                      \
			   offsetof(struct type, last) + sizeof(((struct type *)0)->last),         \
		       #type " has tail padding: end it with a field (see mrsnap.h)")
NO_TAIL_PADDING(mrs_io_opts, reserved0);
NO_TAIL_PADDING(mrs_save_opts, base);
NO_TAIL_PADDING(mrs_restore_opts, clone);
NO_TAIL_PADDING(mrs_devstate_source, machine);
NO_TAIL_PADDING(mrs_devstate_sink, ctx);
NO_TAIL_PADDING(mrs_verify_opts, io);
NO_TAIL_PADDING(mrs_freezer_ops, destroy);
NO_TAIL_PADDING(mrs_save_report, base_refusal);
NO_TAIL_PADDING(mrs_restore_report, devstate_producer);
NO_TAIL_PADDING(mrs_verify_report, reserved0);
NO_TAIL_PADDING(mrs_qemu_opts, reserved0);

/*
 * The I/O options an options struct points to, copied into io; NULL stays
 * NULL (the defaults).
 */
static int io_in(const struct mrs_io_opts **ptr, struct mrs_io_opts *io, struct mrs_error *err)
{
	int ret;

	if (!*ptr)
		return 0;
	ret = mrs_struct_in(io, sizeof(*io), *ptr, "mrs_io_opts", err);
	*ptr = io;
	return ret;
}

/* A report checked, then zeroed, so that its _free() is right after any return. */
static int report_in(void *report, const char *what, struct mrs_error *err)
{
	int ret = mrs_report_check(report, what, err);

	if (!ret && report)
		mrs_report_zero(report);
	return ret;
}

/* Hand what a field of full points to over to the caller's report, if it reaches it. */
#define HAND_OVER(report, full, type, field)                                                       \
	do {                                                                                       \
		if (MRS_COVERS(mrs_struct_size(report), type, field))                              \
			(full)->field = NULL;                                                      \
	} while (0)

int mrs_save(const char *path, const struct mrs_ram *ram, unsigned nram,
	     const struct mrs_save_opts *opts, struct mrs_save_report *report,
	     struct mrs_error *err)
{
	struct mrs_save_opts o;
	struct mrs_io_opts io;
	struct mrs_devstate_source src;
	struct mrs_save_report full;
	int ret;

	ret = report_in(report, "mrs_save_report", err);
	if (!ret)
		ret = mrs_struct_in(&o, sizeof(o), opts, "mrs_save_opts", err);
	if (!ret)
		ret = io_in(&o.io, &io, err);
	if (!ret && o.devstate) {
		ret = mrs_struct_in(&src, sizeof(src), o.devstate, "mrs_devstate_source", err);
		o.devstate = &src;
	}
	if (ret)
		return ret;
	ret = mrs_engine_save(path, ram, nram, &o, report ? &full : NULL, err);
	if (report) {
		mrs_report_out(report, &full, sizeof(full));
		HAND_OVER(report, &full, struct mrs_save_report, rounds);
		HAND_OVER(report, &full, struct mrs_save_report, blocks);
		mrs_engine_save_report_free(&full);
	}
	return ret;
}

void mrs_save_report_free(struct mrs_save_report *report)
{
	struct mrs_save_report full;

	if (!report || mrs_struct_size(report) < sizeof(size_t))
		return;
	/* Only the fields the caller's report has hold anything to free. */
	mrs_struct_prefix(&full, sizeof(full), report);
	mrs_engine_save_report_free(&full);
	mrs_report_zero(report);
}

int mrs_restore(const char *path, const struct mrs_ram *targets, unsigned ntargets,
		const struct mrs_restore_opts *opts, struct mrs_restore_report *report,
		struct mrs_error *err)
{
	struct mrs_restore_opts o;
	struct mrs_io_opts io;
	struct mrs_devstate_sink sink;
	struct mrs_restore_report full;
	int ret;

	ret = report_in(report, "mrs_restore_report", err);
	if (!ret)
		ret = mrs_struct_in(&o, sizeof(o), opts, "mrs_restore_opts", err);
	if (!ret)
		ret = io_in(&o.io, &io, err);
	if (!ret && o.devstate) {
		ret = mrs_struct_in(&sink, sizeof(sink), o.devstate, "mrs_devstate_sink", err);
		o.devstate = &sink;
	}
	if (ret)
		return ret;
	ret = mrs_engine_restore(path, targets, ntargets, &o, report ? &full : NULL, err);
	if (report) {
		mrs_report_out(report, &full, sizeof(full));
		HAND_OVER(report, &full, struct mrs_restore_report, blocks);
		mrs_engine_restore_report_free(&full);
	}
	return ret;
}

void mrs_restore_report_free(struct mrs_restore_report *report)
{
	struct mrs_restore_report full;

	if (!report || mrs_struct_size(report) < sizeof(size_t))
		return;
	mrs_struct_prefix(&full, sizeof(full), report);
	mrs_engine_restore_report_free(&full);
	mrs_report_zero(report);
}

int mrs_verify(const char *path, const struct mrs_verify_opts *opts,
	       struct mrs_verify_report *report, struct mrs_error *err)
{
	struct mrs_verify_opts o;
	struct mrs_io_opts io;
	struct mrs_verify_report full;
	int ret;

	ret = report_in(report, "mrs_verify_report", err);
	if (!ret)
		ret = mrs_struct_in(&o, sizeof(o), opts, "mrs_verify_opts", err);
	if (!ret)
		ret = io_in(&o.io, &io, err);
	if (ret)
		return ret;
	ret = mrs_engine_verify(path, o.io, report ? &full : NULL, err);
	if (report) {
		mrs_report_out(report, &full, sizeof(full));
		HAND_OVER(report, &full, struct mrs_verify_report, bad);
		mrs_engine_verify_report_free(&full);
	}
	return ret;
}

void mrs_verify_report_free(struct mrs_verify_report *report)
{
	struct mrs_verify_report full;

	if (!report || mrs_struct_size(report) < sizeof(size_t))
		return;
	mrs_struct_prefix(&full, sizeof(full), report);
	mrs_engine_verify_report_free(&full);
	mrs_report_zero(report);
}
