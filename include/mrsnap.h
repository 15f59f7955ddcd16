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
 *  - the library never prints, never exits and never changes errno for you;
 *  - codes that blame the image, not the system: -EPROTO (damaged,
 *    incomplete or not an image; a file that ends early included),
 *    -EBADMSG (a page did not match its checksum) and -EPROTONOSUPPORT (an
 *    image format version this library does not read: a code of its own,
 *    which no I/O path returns). Any other code, -ENOTSUP (= -EOPNOTSUPP)
 *    included, is an operation the system refused or that failed.
 */
#ifndef MRSNAP_H
#define MRSNAP_H

#include <errno.h>
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

/*
 * -MRS_EUSAGE: the call was asked for something inconsistent, a mistake in
 * its arguments rather than a failure of the machine or damage to an image
 * (a block named twice, a name the image does not have, two blocks restored
 * to one file). It is EDOM, which none of the system calls mrsnap makes
 * returns, so it never stands for an I/O error; the command line maps it to
 * exit status 2. The message says what was wrong and what would be right.
 */
#define MRS_EUSAGE EDOM

/* What went wrong, filled in by a call that returns a negative errno. */
struct mrs_error {
	int code;	/* the negative errno the call returned */
	char msg[1024]; /* "cannot open 'vm.img': No such file or directory" */
};

/* ------------------------------------------------------------------------ */
/* Structs that grow                                                        */

/*
 * Every options struct the caller passes in (mrs_io_opts, mrs_save_opts,
 * mrs_restore_opts, mrs_verify_opts, mrs_freezer_ops, mrs_devstate_source,
 * mrs_devstate_sink, mrs_qemu_opts) and every report the
 * library fills in (mrs_save_report, mrs_restore_report, mrs_verify_report)
 * begins with size_t size: the sizeof the caller compiled it with. Set it
 * with the struct's _INIT macro, which zeroes every other field:
 *
 *     struct mrs_save_opts o = MRS_SAVE_OPTS_INIT;
 *     struct mrs_save_report r = MRS_SAVE_REPORT_INIT;
 *
 * (The macros are designated initializers; C++ before C++20 writes
 * `mrs_save_opts o{}; o.size = sizeof(o);`.)
 *
 * New fields are only ever added at the end (after the old struct's
 * sizeof, never into its tail padding: these structs have none, and a
 * reserved0 field holds its place where they would, to be replaced by the
 * next field of its size), and zero always means "as before",
 * so that one binary works with older and newer libraries:
 *  - options smaller than the library's (a caller built against an older
 *    header): the library reads only size bytes; the fields beyond read as
 *    zero, their defaults;
 *  - options bigger than the library's (a caller built against a newer
 *    header, run with an older library): accepted if every byte the library
 *    does not know is zero, else -EINVAL, so that an option is never
 *    silently ignored;
 *  - a size smaller than the size field itself (0: never initialised) is
 *    -EINVAL;
 *  - reports: the library writes only size bytes; a caller's field it does
 *    not know reads as zero, and memory a report's field would point to but
 *    size does not reach is freed by the library before it returns.
 * A NULL options pointer means all defaults, a NULL report none wanted.
 *
 * Why a size and not reserved space (liburing) or setters (zstd): a size
 * grows without a limit fixed today, costs one word, keeps plain structs
 * that a caller fills with designated initializers, and is the rule Linux
 * uses for the same problem (openat2, clone3). The size comes from a macro,
 * not a library call, because it must be the caller's sizeof, not the
 * library's.
 *
 * Structs the library allocates or hands to a callback (mrs_progress,
 * mrs_image_info) may grow at the end too: a caller reads only the fields
 * its header has. Structs that travel in arrays (mrs_ram, mrs_round_info,
 * mrs_block_info, mrs_bad_page_info) are indexed with
 * the caller's sizeof, so they keep their layout; a new field there comes
 * as a new struct in a new field of the report or options.
 */

/* ------------------------------------------------------------------------ */
/* Describing RAM and reporting progress                                    */

/* A RAM block: to save from, or a target to restore into. */
struct mrs_ram {
	const char *name; /* "pc.ram": 1 to 63 bytes, unique in an image */
	const char *path; /* "/dev/shm/vm0.ram": a file, tmpfs or hugetlbfs file, or block device */
	uint64_t size;	  /* bytes; 0: the size of the file or device */
};

/*
 * Whether name can name a block in an image: 1 to 63 bytes, no control
 * character, '=' or ',' (so that NAME=PATH,size=N parses). 0, or
 * -MRS_EUSAGE with a message that says what is wrong.
 */
int mrs_block_name_check(const char *name, struct mrs_error *err);

/* What a long operation has done so far, passed to a progress callback. */
struct mrs_progress {
	const char *phase;   /* "round 0", "restore", "verify", "metadata", "fsync" */
	uint64_t bytes_done; /* of bytes_total: memory covered so far in this phase */
	uint64_t bytes_total;
	uint64_t bytes_moved; /* bytes actually written or read (zero pages cost none) */
	uint64_t elapsed_ns;  /* since the phase began */
	/*
	 * The guest is frozen now: the callback should return at once and not
	 * write to a terminal or pipe (which can block, and every moment here
	 * is downtime). It is still called, so that it can stop the operation.
	 */
	int frozen;
};

/*
 * Called from the calling thread, a few times a second while work goes on.
 * Return non-zero to stop the operation: it then cleans up and fails with
 * -ECANCELED. This is how a program turns SIGINT into a clean stop.
 */
typedef int (*mrs_progress_fn)(void *ctx, const struct mrs_progress *progress);

/* How page I/O is done. Zero values mean the defaults. */
struct mrs_io_opts {
	size_t size;		  /* sizeof(struct mrs_io_opts): MRS_IO_OPTS_INIT */
	unsigned channels;	  /* threads with an io_uring each, 1..64; default: online CPUs */
	unsigned depth;		  /* requests in flight per channel; default 32 */
	int direct;		  /* O_DIRECT on the image's page I/O */
	mrs_progress_fn progress; /* may be NULL */
	void *progress_ctx;
	unsigned progress_ms; /* between calls; default 200 */
	unsigned reserved0;   /* zero: fills what would be tail padding (see below) */
};
#define MRS_IO_OPTS_INIT                                                                           \
	{                                                                                          \
		.size = sizeof(struct mrs_io_opts)                                                 \
	}

/* One round of a snapshot, as recorded in the image. */
struct mrs_round_info {
	uint32_t number;
	int frozen; /* the guest was frozen during this round */
	uint64_t pages_scanned;
	uint64_t pages_dirty;
	uint64_t pages_written;
	uint64_t pages_zeroed;
	uint64_t bytes_written;
	uint64_t duration_ns;
};

/* ------------------------------------------------------------------------ */
/* Freezing the guest                                                       */

/*
 * A way to stop the guest from changing its memory, and to let it go on.
 * freeze returns only once the guest is really stopped. Both return 0 or a
 * negative errno with a message in err.
 */
struct mrs_freezer_ops {
	size_t size; /* sizeof(struct mrs_freezer_ops) */
	int (*freeze)(void *ctx, struct mrs_error *err);
	int (*thaw)(void *ctx, struct mrs_error *err);
	void (*destroy)(void *ctx); /* may be NULL */
};
/* {.size = sizeof(struct mrs_freezer_ops), .freeze = ..., .thaw = ...} */
#define MRS_FREEZER_OPS_INIT                                                                       \
	{                                                                                          \
		.size = sizeof(struct mrs_freezer_ops)                                             \
	}

struct mrs_freezer;

/*
 * A freezer from your own ops (ctx is passed to them, and destroyed with
 * it). ops is copied; freeze and thaw must be set (-EINVAL). On failure ctx
 * stays the caller's.
 */
int mrs_freezer_new(struct mrs_freezer **out, const struct mrs_freezer_ops *ops, void *ctx,
		    struct mrs_error *err);
/*
 * SIGSTOP every process, then wait until all their threads show as stopped
 * (zombie threads count as stopped); SIGCONT to thaw, except to a process
 * that was stopped already before the freeze.
 */
int mrs_freezer_new_pids(struct mrs_freezer **out, const int *pids, unsigned npids,
			 struct mrs_error *err);
/*
 * A cgroup: v2 cgroup.freeze (waiting for "frozen 1" in cgroup.events) or v1
 * freezer.state. A cgroup that was frozen already before the freeze is not
 * thawed.
 */
int mrs_freezer_new_cgroup(struct mrs_freezer **out, const char *dir, struct mrs_error *err);
/*
 * Two commands run through /bin/sh, in a process group of their own; a
 * non-zero exit of either is a failure.
 */
int mrs_freezer_new_commands(struct mrs_freezer **out, const char *freeze_cmd, const char *thaw_cmd,
			     struct mrs_error *err);
int mrs_freezer_freeze(struct mrs_freezer *f, struct mrs_error *err);
int mrs_freezer_thaw(struct mrs_freezer *f, struct mrs_error *err);
void mrs_freezer_free(struct mrs_freezer *f);

/* ------------------------------------------------------------------------ */
/* Device state                                                             */

/*
 * Device state is what a VMM needs besides RAM to resume a guest (QEMU's
 * migration stream without RAM: CPU registers, device models, small ROM
 * blocks). An image may hold one device-state region: opaque bytes, of any
 * length, with a checksum and a note of what produced them (mrsnap-image(5)).
 * The library moves the bytes between the VMM and the image through one end
 * of an AF_UNIX stream socketpair, never holding them whole in memory; the
 * VMM is driven by the caller's ops (src/qemu/ does it for QEMU).
 */
struct mrs_devstate_source {
	size_t size; /* sizeof(struct mrs_devstate_source): MRS_DEVSTATE_SOURCE_INIT */
	/*
	 * Called while the guest is still frozen, after the final round: make
	 * the VMM start writing its device state into fd, and return without
	 * waiting for it (the library reads fd meanwhile, so a start that waits
	 * for the writes to end can deadlock). fd stays the library's: pass the
	 * VMM a copy (SCM_RIGHTS, dup); the library closes its own once start
	 * returns, and reads until the VMM closes its copy.
	 */
	int (*start)(void *ctx, int fd, struct mrs_error *err);
	/*
	 * Called after end of file with the bytes received: wait until the VMM
	 * says whether the transfer succeeded, and return 0 only if it did.
	 * Not called when the transfer failed before end of file (cancelled,
	 * MRS_DEVSTATE_IDLE_TIMEOUT_S without a byte, a write error): the
	 * library has closed its end then, so the VMM's writes fail, and the
	 * guest is thawed as after any failure. No bytes at all fail the
	 * snapshot (-EPROTO) after finish.
	 */
	int (*finish)(void *ctx, uint64_t bytes, struct mrs_error *err);
	void *ctx;
	/* Recorded; longer than 63 bytes is refused (-MRS_EUSAGE), not cut. */
	const char *producer; /* "QEMU 7.2.0"; may be NULL */
	const char *machine;  /* "pc-i440fx-7.2"; may be NULL */
};
/* The most seconds the library waits for the next byte of device state, either way. */
#define MRS_DEVSTATE_IDLE_TIMEOUT_S 30
#define MRS_DEVSTATE_SOURCE_INIT                                                                   \
	{                                                                                          \
		.size = sizeof(struct mrs_devstate_source)                                         \
	}

struct mrs_devstate_sink {
	size_t size; /* sizeof(struct mrs_devstate_sink): MRS_DEVSTATE_SINK_INIT */
	/*
	 * Called after every block was loaded and synced, and the device state
	 * was checked against its checksum: make the VMM start reading its
	 * device state from fd, and return without waiting (same rules for fd
	 * as a source's start). The library then writes the bytes, shuts its
	 * end down, and calls finish.
	 */
	int (*start)(void *ctx, int fd, struct mrs_error *err);
	/*
	 * Wait until the VMM says whether it loaded the state; 0 only if it
	 * did. Also called when the VMM stopped reading before the end, with
	 * the bytes it was sent (fewer than the region holds): then its error
	 * message, if it has one ("QEMU exited while loading ..."), leads the
	 * restore's, whose code stays -EPIPE, and a 0 does not make the
	 * restore succeed. Not called when sending failed otherwise
	 * (cancelled, timed out, the image changed).
	 */
	int (*finish)(void *ctx, uint64_t bytes, struct mrs_error *err);
	void *ctx;
};
#define MRS_DEVSTATE_SINK_INIT                                                                     \
	{                                                                                          \
		.size = sizeof(struct mrs_devstate_sink)                                           \
	}

/* The device-state region of an image, as info describes it. */
struct mrs_devstate_info {
	int present; /* 0: the image holds RAM only; the fields below are 0 */
	uint32_t reserved0;
	uint64_t offset, length; /* of the region in the file */
	uint64_t checksum;	 /* xxh3-64 of the region's bytes */
	char producer[64];	 /* "QEMU 7.2.0", or "" */
	char machine[64];	 /* "pc-i440fx-7.2", or "" */
};

/* ------------------------------------------------------------------------ */
/* Snapshot                                                                 */

struct mrs_save_opts {
	size_t size;		      /* sizeof(struct mrs_save_opts): MRS_SAVE_OPTS_INIT */
	const struct mrs_io_opts *io; /* NULL: the defaults */
	int force;    /* replace an existing image (or a symlink at its path, not its target) */
	int no_fsync; /* skip fsync: faster, but a power loss can leave a damaged image */

	/*
	 * Freezers: non-live, the guest is frozen for the whole pass; live, for
	 * the final round only. Thawed on every way out, error or cancel too.
	 */
	struct mrs_freezer *const *freezers;
	unsigned nfreezers;

	/*
	 * Live: copy memory in rounds while the guest runs (each round writes
	 * the pages whose content changed), then freeze for a final round.
	 * Needs at least one freezer.
	 */
	int live;
	unsigned downtime_ms; /* target for the frozen round; default 300 */
	unsigned max_rounds;  /* all rounds, the frozen one included; default 30, 2..100000 */

	/*
	 * Called from the calling thread after each round; may be NULL. Never
	 * while the guest is frozen, except with leave_frozen, where the guest
	 * stays frozen: the frozen round is reported once the guest is thawed
	 * (with leave_frozen, right after the frozen round).
	 */
	void (*round_done)(void *ctx, const struct mrs_round_info *round);
	void *round_ctx;

	/*
	 * Do not thaw the guest after a successful snapshot (save, then kill
	 * the guest, as CRIU's --leave-stopped): it stays frozen when mrs_save
	 * returns 0, and the caller thaws it with mrs_freezer_thaw() if it
	 * changes its mind. On failure the guest is thawed as always. Needs a
	 * freezer.
	 */
	int leave_frozen;
	int reserved0; /* zero: fills what would be tail padding */

	/*
	 * The VMM's device state, saved after the final round while the guest
	 * is still frozen (so it belongs to the same instant as the RAM), into
	 * the image's device-state region. NULL: RAM only. Needs a freezer.
	 */
	const struct mrs_devstate_source *devstate;

	/*
	 * A snapshot against a base: the path of an earlier, complete image of
	 * the same blocks (names, sizes and page sizes, in any order). The new
	 * image starts as a copy-on-write clone of the base's page regions
	 * (FICLONERANGE, where the filesystem shares extents: XFS with reflink,
	 * btrfs), and its first round writes only the pages whose checksum
	 * differs from the base's and clears those that became zero; live
	 * rounds go on as always. The result is an ordinary image that needs
	 * nothing of the base. Where extents cannot be shared (another
	 * filesystem, ext4, tmpfs), the blocks are written in full and the
	 * report says why (base_refusal). The base is opened read-only and
	 * never written: it may not be the file at path. A damaged or
	 * incomplete base is -EPROTO; other blocks, or a base that is the
	 * image itself, -MRS_EUSAGE naming the difference. Pages the base
	 * holds are trusted by their checksums and not read: a page damaged in
	 * the base that did not change stays damaged (verify finds it). NULL:
	 * none.
	 */
	const char *base;
};
#define MRS_SAVE_OPTS_INIT                                                                         \
	{                                                                                          \
		.size = sizeof(struct mrs_save_opts)                                               \
	}

/* Why the live rounds ended. */
enum mrs_stop_reason {
	MRS_STOP_NOT_LIVE,    /* a non-live snapshot: one round */
	MRS_STOP_CONVERGED,   /* the last round's dirty bytes fit the downtime target */
	MRS_STOP_MAX_ROUNDS,  /* the round limit was reached */
	MRS_STOP_NO_PROGRESS, /* the dirty set stopped shrinking */
};

/* "not-live", "converged", "max-rounds", "no-progress". */
const char *mrs_stop_reason_name(enum mrs_stop_reason reason);

struct mrs_save_report {
	size_t size;		/* sizeof(struct mrs_save_report): MRS_SAVE_REPORT_INIT */
	unsigned channels;	/* channels used */
	uint64_t pages_total;	/* pages in all blocks */
	uint64_t pages_present; /* non-zero pages in the image */
	uint64_t bytes_written; /* page data written, all rounds */
	uint64_t image_size;	/* bytes, logical */
	uint64_t duration_ns;	/* from start to the image in place */
	uint32_t nrounds;
	struct mrs_round_info *rounds; /* nrounds of them; free with mrs_save_report_free() */
	enum mrs_stop_reason stop_reason;
	uint64_t downtime_ns;	/* from the start of freezing to the end of thawing (with
				   leave_frozen: until the image was in place); 0 if none */
	unsigned stale_removed; /* temporary files of dead snapshots to the same image, removed */
	/*
	 * Set when mrs_save fails after the image was renamed into place: only
	 * the sync of its directory failed. The image is complete and at path
	 * (an image it replaced is gone) but may not survive a crash; the rest
	 * of the report is filled in too, and must be freed.
	 */
	int not_durable;
	uint32_t nblocks;
	/* nblocks of them, as written (path: the source's, as recorded); NULL if out of memory */
	struct mrs_block_info *blocks;
	uint64_t pages_skipped; /* in holes of sparse sources (tmpfs): never read, all rounds */
	uint64_t io_requests;	/* image I/O requests issued (see mrsnap(1)), all rounds */
	uint64_t io_resubmits;	/* of them, short or -EAGAIN transfers submitted again */
	/*
	 * Live: how long the frozen round was expected to take when the live
	 * rounds ended (its scan of all RAM and its writes, at the costs
	 * measured in the live rounds); the frozen round's duration_ns is what
	 * it took. 0 if not live.
	 */
	uint64_t estimated_downtime_ns;
	uint64_t devstate_bytes; /* device state saved; 0 if none */
	uint64_t devstate_ns;	 /* from the source's start to its finish (part of the downtime) */
	uint64_t pages_written;	 /* pages written, all rounds (bytes_written is their bytes) */
	/* With opts.base: */
	uint64_t base_pages_reused;  /* left as cloned: the first round found the base's checksum */
	uint32_t base_blocks_shared; /* blocks cloned from the base; the others were written in full */
	/*
	 * Why the other blocks could not share extents with the base (the
	 * first refusal): -EOPNOTSUPP the filesystem cannot, -EXDEV the base is
	 * on another filesystem, -EINVAL a region the filesystem cannot clone
	 * (not aligned to its blocks), -ENOTTY no such operation there. 0 if
	 * every block was shared, or without a base.
	 */
	int base_refusal;
};
#define MRS_SAVE_REPORT_INIT                                                                       \
	{                                                                                          \
		.size = sizeof(struct mrs_save_report)                                             \
	}

/*
 * Write the RAM blocks into a new image at path. Non-live, the guest must
 * not change its memory meanwhile: it is paused, or frozen by the freezers
 * in opts. Live, it runs until the final round. Temporary files that killed
 * snapshots left next to path are removed first. The image is written under a
 * temporary name in the same directory, mode 0600, and renamed into place
 * only once it is complete and durable; on failure nothing is left behind.
 * An existing file (or symlink) at path is an error (-EEXIST) unless force.
 * Anything at path but a regular file or a symlink (a device node, a FIFO, a
 * socket: -EEXIST; a directory: -EISDIR) is never replaced, force or not; an
 * empty path is -EINVAL.
 *
 * The guest is thawed on every way out. A thaw that fails after the final
 * round does not cost the image, which is consistent from then on: it is
 * completed and put in place, report is filled, and mrs_save returns the
 * thaw's error, with a message that says the image is complete and that
 * the guest may still be frozen. report is zeroed first (one whose size is
 * bad is -EINVAL, and left as it was): calling mrs_save_report_free() on it
 * is right after any return. A thaw that fails after another failure adds
 * that to the message of the first.
 */
int mrs_save(const char *path, const struct mrs_ram *ram, unsigned nram,
	     const struct mrs_save_opts *opts, struct mrs_save_report *report,
	     struct mrs_error *err);
void mrs_save_report_free(struct mrs_save_report *report);

/* ------------------------------------------------------------------------ */
/* Restore                                                                  */

struct mrs_restore_opts {
	size_t size;		      /* sizeof(struct mrs_restore_opts): MRS_RESTORE_OPTS_INIT */
	const struct mrs_io_opts *io; /* NULL: the defaults */
	int verify;		      /* check every page against its checksum as it is loaded */
	/*
	 * Allow a target path that is a symlink, a recorded path that does not
	 * exist (it is created) or is a regular file of another size than its
	 * block, and a target that a running process has mapped. Never a target that is the image
	 * itself, a recorded path that is a block device, or one file for two blocks.
	 */
	int force;
	/*
	 * Load the image's device state into a VMM after the RAM (NULL: RAM
	 * only; the report says when the image held device state). A damaged
	 * device state fails the restore (-EBADMSG) before any target is
	 * changed, and so does an image without device state (-MRS_EUSAGE).
	 * A failure while loading it leaves the RAM targets written, and the
	 * message says so.
	 */
	const struct mrs_devstate_sink *devstate;
	/*
	 * A VMM waiting for incoming state (QEMU -incoming): targets that this
	 * process (and no other) maps are accepted, if they have their block's
	 * size (resizing memory the VMM maps would cost it its pages), and a
	 * path /proc/PID/fd/N of one of its descriptors (a memfd backend) given
	 * in targets is followed although it is a symlink, if the VMM maps it
	 * (else it is not its RAM: -EINVAL, unless force). 0: none.
	 */
	int vmm_pid;
	/*
	 * Clone each block's page region into its target (FICLONERANGE)
	 * instead of reading and writing it: instant whatever the size, and
	 * the target shares the image's extents (a VMM that maps it reads
	 * each page from disk the first time the guest touches it). Every
	 * target must be a regular file that does not exist yet, is empty or
	 * holds only holes, on a filesystem that can share the image's
	 * extents (XFS with reflink, btrfs), and each block's page region must
	 * be aligned to that filesystem's blocks; otherwise an error naming
	 * the target or block (-EXDEV, -EOPNOTSUPP, -EINVAL; -EEXIST for a
	 * target with data), and nothing is written. Pages absent from the
	 * image are holes in the target. Checksums are not read, unless
	 * verify: then the whole image is verified first, before any target
	 * is touched.
	 */
	int clone;
};
#define MRS_RESTORE_OPTS_INIT                                                                      \
	{                                                                                          \
		.size = sizeof(struct mrs_restore_opts)                                            \
	}

struct mrs_restore_report {
	size_t size; /* sizeof(struct mrs_restore_report): MRS_RESTORE_REPORT_INIT */
	unsigned channels;
	uint32_t nblocks;
	uint64_t pages_total;
	uint64_t pages_read;
	uint64_t bytes_read;
	uint64_t duration_ns;
	/*
	 * Where each block went: nblocks of them (path: the target it was
	 * loaded into; created: this restore made the file), NULL if out of
	 * memory; free with mrs_restore_report_free().
	 */
	struct mrs_block_info *blocks;
	uint64_t io_requests;	 /* image I/O requests issued (see mrsnap(1)) */
	uint64_t io_resubmits;	 /* of them, short or -EAGAIN transfers submitted again */
	uint64_t devstate_bytes; /* device state loaded into the VMM; 0 if none */
	/* The image holds device state and no sink was given: it was not loaded. */
	int devstate_skipped;
	/*
	 * The blocks were cloned (opts.clone): pages_read and bytes_read then
	 * count what the verify that came first read, if any.
	 */
	int cloned;
	/* What produced the image's device state, loaded or not ("QEMU 7.2.0"), or "". */
	char devstate_producer[64];
};
#define MRS_RESTORE_REPORT_INIT                                                                    \
	{                                                                                          \
		.size = sizeof(struct mrs_restore_report)                                          \
	}

/*
 * Load every block of the image into its target: the path given in targets
 * for that name (size ignored), else the path recorded in the image.
 *
 * Everything that can fail without changing anything is done first: the
 * image is opened once and validated, and the channels read it through that
 * same open file (a symlink the caller named is followed; the image is never
 * reopened by name); every target is checked; the channels are started. Only
 * then are targets created, sized and cleared, and loaded. Targets checked:
 *  - a regular file or a block device (at least the block's size);
 *  - not the image itself (same device and inode, whatever the name);
 *  - not mapped by a running process (a live guest's RAM), unless force;
 *  - not the same file as another block's target (-MRS_EUSAGE);
 *  - a symlink only with force;
 *  - a path recorded in the image (not given in targets) only if it is a
 *    regular file of exactly the block's size (another size, or missing:
 *    force); a block device only when given in targets, never as recorded.
 * Missing target files are created (0600); regular files are sized to the
 * block; pages absent from the image read as zero afterwards. A page that
 * fails its checksum (with verify) fails the restore with -EBADMSG.
 *
 * On failure, targets this call created are removed, and those that existed
 * and were already changed are named in the message ("target '...' was
 * partly written"). A block name the image lacks, or given twice, is
 * -MRS_EUSAGE. Free the report with mrs_restore_report_free().
 */
int mrs_restore(const char *path, const struct mrs_ram *targets, unsigned ntargets,
		const struct mrs_restore_opts *opts, struct mrs_restore_report *report,
		struct mrs_error *err);
void mrs_restore_report_free(struct mrs_restore_report *report);

/* ------------------------------------------------------------------------ */
/* Verify                                                                   */

struct mrs_bad_page_info {
	char block[64];
	uint64_t page;
	uint64_t guest_offset;
	uint64_t expected, actual;
};

struct mrs_verify_opts {
	size_t size;		      /* sizeof(struct mrs_verify_opts): MRS_VERIFY_OPTS_INIT */
	const struct mrs_io_opts *io; /* NULL: the defaults */
};
#define MRS_VERIFY_OPTS_INIT                                                                       \
	{                                                                                          \
		.size = sizeof(struct mrs_verify_opts)                                             \
	}

struct mrs_verify_report {
	size_t size; /* sizeof(struct mrs_verify_report): MRS_VERIFY_REPORT_INIT */
	unsigned channels;
	uint64_t pages_checked;
	uint64_t pages_bad;
	uint64_t bytes_read;
	uint64_t duration_ns;
	struct mrs_bad_page_info *bad; /* pages_bad of them, by block and page */
	uint64_t io_requests;	       /* image I/O requests issued (see mrsnap(1)) */
	uint64_t io_resubmits;	       /* of them, short or -EAGAIN transfers submitted again */
	uint64_t devstate_bytes;       /* device state checked against its checksum; 0 if none */
	int devstate_bad;	       /* it did NOT match: verify fails with -EBADMSG */
	int reserved0;		       /* zero: fills what would be tail padding */
};
#define MRS_VERIFY_REPORT_INIT                                                                     \
	{                                                                                          \
		.size = sizeof(struct mrs_verify_report)                                           \
	}

/*
 * Check every metadata checksum, every present page of the image and its
 * device state, if it has one.
 * Returns 0 when all matched, -EBADMSG when pages (listed in report) or the
 * device state (devstate_bad) did not,
 * another -errno when the image could not be checked (damaged metadata: -EPROTO).
 */
int mrs_verify(const char *path, const struct mrs_verify_opts *opts,
	       struct mrs_verify_report *report, struct mrs_error *err);
void mrs_verify_report_free(struct mrs_verify_report *report);

/* ------------------------------------------------------------------------ */
/* Info                                                                     */

struct mrs_block_info {
	char name[64];
	char path[3896];
	uint64_t size;
	uint64_t page_size;
	uint64_t page_count;
	uint64_t pages_present; /* 0 in an incomplete image */
	uint64_t bitmap_offset;
	uint64_t hashes_offset;
	uint64_t pages_offset;
	int created; /* restore only: the target file did not exist before */
};

struct mrs_image_info {
	uint32_t version;
	int complete;
	int live;
	uint64_t created_ns;
	char tool_version[32];
	uint64_t file_size; /* logical */
	uint64_t disk_size; /* allocated */
	uint32_t nblocks;
	struct mrs_block_info *blocks;
	uint32_t nrounds; /* 0 in an incomplete image */
	struct mrs_round_info *rounds;
	struct mrs_devstate_info devstate;
};

/*
 * Describe an image from its metadata (complete or not; damaged metadata is
 * an error). Free the result with mrs_image_info_free().
 */
int mrs_image_info(const char *path, struct mrs_image_info **info, struct mrs_error *err);
void mrs_image_info_free(struct mrs_image_info *info);

/* ------------------------------------------------------------------------ */
/* QEMU                                                                     */

/*
 * A QEMU driven over its QMP socket (-qmp unix:PATH,server=on,wait=off), for
 * a snapshot of the whole guest (RAM and device state) and its restore into
 * a QEMU started with the same memory backends and -incoming defer. The
 * calls below give what mrs_save and mrs_restore take (RAM blocks, a
 * freezer, a device-state source or sink); they do not save or restore by
 * themselves. One connection serves one snapshot or one restore; a QMP
 * socket takes one client at a time, so nothing else may be connected.
 *
 * QEMU's own error text is quoted in messages. Codes: -EREMOTEIO QEMU
 * refused a command, -ETIMEDOUT no answer in time, -ECONNRESET QEMU closed
 * the connection (it died, or exited), -EPROTO it sent something that is not
 * QMP; -MRS_EUSAGE a QEMU set up in a way mrsnap cannot save or restore
 * (RAM that is not shared, backends that differ from the image's blocks).
 */
struct mrs_qemu;

struct mrs_qemu_opts {
	size_t size;	     /* sizeof(struct mrs_qemu_opts): MRS_QEMU_OPTS_INIT */
	unsigned timeout_ms; /* for each QMP command and awaited event; default 10000 */
	unsigned reserved0;  /* zero: fills what would be tail padding */
};
#define MRS_QEMU_OPTS_INIT                                                                         \
	{                                                                                          \
		.size = sizeof(struct mrs_qemu_opts)                                               \
	}

/*
 * Connect to the QMP socket at path (greeting, capabilities) and learn
 * QEMU's pid (SO_PEERCRED), version, machine type and run state. opts may
 * be NULL.
 */
int mrs_qemu_connect(struct mrs_qemu **out, const char *path, const struct mrs_qemu_opts *opts,
		     struct mrs_error *err);
/* Close the connection; whatever a call below returned from q is gone with it. */
void mrs_qemu_close(struct mrs_qemu *q);

int mrs_qemu_pid(const struct mrs_qemu *q);		 /* of the QEMU process; 0 if unknown */
const char *mrs_qemu_producer(const struct mrs_qemu *q); /* "QEMU 7.2.22" */
const char *mrs_qemu_machine(const struct mrs_qemu *q);	 /* "pc-i440fx-7.2" */

/*
 * QEMU's RAM as blocks: each memory backend (qom-list /objects) is a block
 * named by its id ("pc.ram", the RAM block's name in QEMU's stream), of the
 * backend's size, at the file of a memory-backend-file (mem-path) or at
 * /proc/PID/fd/N for a memory-backend-memfd (the descriptor of QEMU that
 * holds it, told apart by size). A block in given (--ram NAME=PATH) takes
 * the place of the backend of its name, or is added. Refused, naming the
 * backend (-MRS_EUSAGE): one that is not shared (memory-backend-ram,
 * share=off: its pages are QEMU's private memory), of another kind, or
 * memfd backends whose descriptors cannot be told apart (given then with
 * --ram). *ram (*nram of them) stays q's, valid until the next call or
 * mrs_qemu_close().
 */
int mrs_qemu_ram(struct mrs_qemu *q, const struct mrs_ram *given, unsigned ngiven,
		 const struct mrs_ram **ram, unsigned *nram, struct mrs_error *err);

/*
 * Every block's path leads to a file the QEMU process maps (same device
 * and inode as a mapping in /proc/PID/maps), so that a --ram override is
 * QEMU's RAM and not a file of that name elsewhere: call it on what
 * mrs_qemu_ram() returned, before mrs_save touches anything (a restore's
 * mrs_qemu_incoming() checks its targets the same way itself).
 * Refused (-MRS_EUSAGE) naming the block, its path and what QEMU has for it.
 */
int mrs_qemu_check_mapped(struct mrs_qemu *q, const struct mrs_ram *ram, unsigned nram,
			  struct mrs_error *err);

/*
 * A freezer for mrs_save: freeze is QMP stop, confirmed by query-status;
 * thaw is cont. A guest that was not running when frozen (paused before
 * mrsnap came) is left so: thaw then sends nothing. To leave a guest paused
 * after a good snapshot, use mrs_save_opts.leave_frozen: on failure it is
 * resumed all the same. Free it (mrs_freezer_free) before closing q.
 */
int mrs_qemu_freezer(struct mrs_qemu *q, struct mrs_freezer **out, struct mrs_error *err);
/* Whether that freezer found the guest already paused (and so left it paused). */
int mrs_qemu_paused_before(const struct mrs_qemu *q); /* 1 or 0 */

/*
 * A device-state source for mrs_save: QEMU's migration stream with the
 * capabilities x-ignore-shared (shared RAM is left out: mrsnap saved it)
 * and events set here, sent over a descriptor passed with getfd to
 * migrate fd:. Producer and machine are filled in. src stays valid while q
 * is open.
 */
int mrs_qemu_devstate_source(struct mrs_qemu *q, struct mrs_devstate_source *src,
			     struct mrs_error *err);

/*
 * Before mrs_restore into a QEMU started with -incoming defer: check that
 * it waits for a migration (state inmigrate), that its backends are the
 * image's blocks (names and sizes; every difference is named), that QEMU
 * maps each backend's target in ram (-MRS_EUSAGE: a mem-path file removed
 * since QEMU started would be written where QEMU never looks) and that the
 * image holds device state of its machine type; set the capabilities; fill
 * sink (migrate-incoming fd:). ram: from mrs_qemu_ram(). Pass
 * mrs_qemu_pid() as mrs_restore_opts.vmm_pid, so that the backends QEMU
 * maps are accepted as targets.
 */
int mrs_qemu_incoming(struct mrs_qemu *q, const struct mrs_image_info *image,
		      const struct mrs_ram *ram, unsigned nram, struct mrs_devstate_sink *sink,
		      struct mrs_error *err);

/* Let the guest run (cont): after a restore, unless it is to stay paused. */
int mrs_qemu_resume(struct mrs_qemu *q, struct mrs_error *err);

/*
 * After a snapshot: what the caller should tell the user, or NULL. Set when
 * QEMU put the shared RAM into its own stream although x-ignore-shared was
 * on (newer QEMUs do so for memfd backends): the image is right, but holds
 * that RAM twice and its downtime paid for it.
 */
const char *mrs_qemu_warning(const struct mrs_qemu *q);

#ifdef __cplusplus
}
#endif

#endif /* MRSNAP_H */
