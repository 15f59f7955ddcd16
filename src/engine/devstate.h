/* SPDX-License-Identifier: MIT */
/*
 * The device-state region: moved between a VMM and the image through one
 * end of an AF_UNIX stream socketpair, a buffer at a time, hashed as it
 * goes. The VMM is the caller's (struct mrs_devstate_source/sink); this
 * code knows nothing of QEMU. Nothing here prints, spawns or sleeps: it
 * waits in poll() with a bounded tick, so the progress callback can cancel.
 */
#ifndef MRS_DEVSTATE_H
#define MRS_DEVSTATE_H

#include <stdint.h>

#include "mrsnap.h"
#include "stream.h"

/* No byte moving for this long is a VMM that hung: -ETIMEDOUT. */
#define MRS_DEVSTATE_IDLE_TIMEOUT_MS (MRS_DEVSTATE_IDLE_TIMEOUT_S * 1000u)

/* The source's fields the library needs (start, finish, text lengths): -MRS_EUSAGE. */
int mrs_devstate_source_check(const struct mrs_devstate_source *src, struct mrs_error *err);
int mrs_devstate_sink_check(const struct mrs_devstate_sink *sink, struct mrs_error *err);

/*
 * Receive the source's device state into the image open on fd, at
 * rec->offset (set by the caller), until the VMM closes its end; then the
 * source's finish. Fills the rest of rec and *ns (start to finish).
 * -ECANCELED when the progress callback asks to stop, -ETIMEDOUT when
 * nothing arrives for MRS_DEVSTATE_IDLE_TIMEOUT_MS.
 */
int mrs_devstate_save(const struct mrs_devstate_source *src, int fd, const struct mrs_io_opts *io,
		      struct mrs_device_rec *rec, uint64_t *ns, struct mrs_error *err);

/* Hash the region, a buffer at a time: -EBADMSG if it does not match rec. */
int mrs_devstate_check(int fd, const struct mrs_device_rec *rec, const struct mrs_io_opts *io,
		       struct mrs_error *err);

/*
 * Send the region to the sink's VMM, shut the socket down for writing, and
 * wait for the sink's finish. The library does not die of SIGPIPE: a VMM
 * that stops reading is an error.
 */
int mrs_devstate_load(const struct mrs_devstate_sink *sink, int fd,
		      const struct mrs_device_rec *rec, const struct mrs_io_opts *io,
		      struct mrs_error *err);

#endif
