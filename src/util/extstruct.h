/* SPDX-License-Identifier: MIT */
/*
 * The public structs that can grow (include/mrsnap.h, "Structs that grow"):
 * each begins with the size the caller compiled it with. Options are copied
 * into a full, zeroed struct of this library's size before anything reads
 * them; reports are filled in full here and copied out as far as the
 * caller's size reaches. The engines only ever see full structs.
 */
#ifndef MRS_EXTSTRUCT_H
#define MRS_EXTSTRUCT_H

#include <stdbool.h>
#include <stddef.h>

#include "mrsnap.h"

/* Whether a struct of size bytes holds all of field (a caller's older struct may not). */
#define MRS_COVERS(size, type, field) ((size) >= offsetof(type, field) + sizeof(((type *)0)->field))

/*
 * Copy the caller's options in (NULL: all defaults) into full, full_size
 * bytes: the fields in doesn't have are zero, their defaults. -EINVAL when
 * in->size does not cover the size field itself (never initialised), or
 * when in is bigger than full and sets any byte this library does not know
 * (a field it would ignore). what names the struct in the message.
 */
int mrs_struct_in(void *full, size_t full_size, const void *in, const char *what,
		  struct mrs_error *err);

/*
 * Copy in into full as far as in->size reaches (NULL, or a size below the
 * size field: nothing), zero the rest, and set full's size to full_size.
 * No checks: for reports the library itself filled.
 */
void mrs_struct_prefix(void *full, size_t full_size, const void *in);

/* A report's size before it is filled: -EINVAL when it does not cover the size field. */
int mrs_report_check(const void *report, const char *what, struct mrs_error *err);

/* Zero a checked report as far as its size reaches, the size field excepted. */
void mrs_report_zero(void *report);

/*
 * Copy a full report out into the caller's, as far as the caller's size
 * reaches (the size field excepted); bytes beyond full_size are zeroed.
 */
void mrs_report_out(void *report, const void *full, size_t full_size);

/* The size field of a checked report or options struct. */
size_t mrs_struct_size(const void *s);

#endif
