/* SPDX-License-Identifier: MIT */
/*
 * mrsnap: save the RAM of a virtual machine into a mapped-ram image file and
 * load it back.
 *
 * Conventions (the same for every call in this header):
 *  - every public symbol starts with mrs_ / MRS_;
 *  - a call returns 0 (or a count) on success and a negative errno on failure;
 *  - a call that can fail takes a struct mrs_error *, which may be NULL; on
 *    failure it holds a one-line, lowercase description of what went wrong;
 *  - the library never prints, never exits and never changes errno for you.
 */
#ifndef MRSNAP_H
#define MRSNAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MRS_VERSION_MAJOR 0
#define MRS_VERSION_MINOR 1
#define MRS_VERSION_PATCH 0
/* The version of the header, as one comparable number: 0x00MMmmpp. */
#define MRS_VERSION ((MRS_VERSION_MAJOR << 16) | (MRS_VERSION_MINOR << 8) | MRS_VERSION_PATCH)

/* The version of the library actually linked, in the form of MRS_VERSION. */
unsigned mrs_version(void);

/* The same as a string, "0.1.0". */
const char *mrs_version_string(void);

/* What went wrong, filled in by a call that returns a negative errno. */
struct mrs_error {
	int code;	/* the negative errno the call returned */
	char msg[1024]; /* "cannot open 'vm.img': No such file or directory" */
};

#ifdef __cplusplus
}
#endif

#endif /* MRSNAP_H */
