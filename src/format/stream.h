/* SPDX-License-Identifier: MIT */
/*
 * The control stream: the records that follow the page regions of an image.
 *
 * A record is a 16-byte header (kind flags, payload length, checksum) and a
 * payload. The writer builds the stream in memory (it is small: one record
 * per round) and the caller writes the new bytes out; the reader validates a
 * whole stream held in memory. No I/O here. See mrsnap-image(5), and
 * docs/DESIGN.md, "What the loader rejects and tolerates".
 */
#ifndef MRS_STREAM_H
#define MRS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrsnap.h"

#define MRS_REC_HEADER 16u

/* Record kinds: exactly one bit of the flags word is set. */
#define MRS_REC_BLOCKS 0x0001u /* the block table: count and offset */
#define MRS_REC_ZERO   0x0002u /* reserved: zero page (sequential layout only) */
#define MRS_REC_ROUND  0x0004u /* one dirty round */
#define MRS_REC_PAGE   0x0008u /* reserved: inline page data (sequential layout only) */
#define MRS_REC_EOS    0x0010u /* end of section: carries nothing, skipped by readers */
#define MRS_REC_END    0x0020u /* end of stream, with a checksum of the stream */
#define MRS_REC_DEVICE 0x0040u /* the device-state region: at most one, after the last ROUND */
/* The kinds this version reads in a mapped image. */
#define MRS_REC_VALID (MRS_REC_BLOCKS | MRS_REC_ROUND | MRS_REC_EOS | MRS_REC_END | MRS_REC_DEVICE)
/* Kinds defined by the format but not valid in a mapped v1 image. */
#define MRS_REC_RESERVED (MRS_REC_ZERO | MRS_REC_PAGE)

#define MRS_BLOCKS_PAYLOAD 16u
#define MRS_ROUND_PAYLOAD  64u
#define MRS_END_PAYLOAD	   16u
#define MRS_DEVICE_PAYLOAD 160u
#define MRS_DEVICE_TEXT	   64u /* producer, machine: 0..63 bytes plus NUL */

/*
 * Rounds one snapshot may take: their records (with an EOS each) fit in
 * MRS_STREAM_MAX, the longest stream a reader accepts.
 */
#define MRS_MAX_ROUNDS 100000u

#define MRS_ROUND_FROZEN      0x1u /* the guest was frozen for this round */
#define MRS_ROUND_KNOWN_FLAGS MRS_ROUND_FROZEN

struct mrs_round {
	uint32_t number; /* 0, 1, 2, ... in stream order */
	uint32_t flags;	 /* MRS_ROUND_* */
	uint64_t pages_scanned;
	uint64_t pages_dirty; /* changed since the previous round (all, in round 0) */
	uint64_t pages_written;
	uint64_t pages_zeroed; /* written before, zero now: bit cleared, hole punched */
	uint64_t bytes_written;
	uint64_t duration_ns;
};

/*
 * The DEVICE record: where the device-state region is, its checksum, and
 * what produced it. The region's bytes are the VMM's; mrsnap never reads
 * into them.
 */
struct mrs_device_rec {
	uint64_t offset, length; /* of the region in the file; length > 0 */
	uint64_t checksum;	 /* xxh3-64 of the region's bytes */
	char producer[MRS_DEVICE_TEXT];
	char machine[MRS_DEVICE_TEXT];
};

/* A stream being written: the bytes so far, in memory. */
struct mrs_stream_buf {
	uint8_t *data;
	size_t len, cap;
	uint64_t records; /* records appended so far, EOS included */
};

int mrs_stream_append_blocks(struct mrs_stream_buf *s, uint32_t block_count,
			     uint64_t block_table_offset);
int mrs_stream_append_round(struct mrs_stream_buf *s, const struct mrs_round *round);
int mrs_stream_append_eos(struct mrs_stream_buf *s);
/* After the last round: a reader refuses a ROUND after it. */
int mrs_stream_append_device(struct mrs_stream_buf *s, const struct mrs_device_rec *d);
/* The last record: the number of records before it and a checksum of their bytes. */
int mrs_stream_append_end(struct mrs_stream_buf *s);
/*
 * Append any record, valid or not: for the functions above and for tests.
 * Returns 0, -EINVAL (payload too long), -ENOMEM, or -EFBIG when the stream
 * would grow past MRS_STREAM_MAX (room for the END record is always kept).
 */
int mrs_stream_append(struct mrs_stream_buf *s, uint32_t flags, const void *payload, uint32_t len);
void mrs_stream_buf_free(struct mrs_stream_buf *s);

/* What a valid stream says. */
struct mrs_stream_info {
	uint32_t block_count;
	uint64_t block_table_offset;
	struct mrs_round *rounds;
	uint32_t nrounds;
	uint64_t records; /* before the end record, EOS included */
	bool has_device;  /* a DEVICE record was read into device */
	struct mrs_device_rec device;
};

/*
 * Validate the stream in buf (len bytes, which started at file offset base)
 * and describe it in info. Every failure names the problem and the file
 * offset of the record at fault. Returns 0, -EPROTO or -ENOMEM.
 */
int mrs_stream_parse(const uint8_t *buf, uint64_t len, uint64_t base, struct mrs_stream_info *info,
		     struct mrs_error *err);
void mrs_stream_info_free(struct mrs_stream_info *info);

/* A round record as the public API reports it. */
void mrs_round_to_info(const struct mrs_round *r, struct mrs_round_info *out);

/* "ROUND", "EOS", ...; "unknown" for anything else. */
const char *mrs_rec_kind_name(uint32_t flags);

#endif
