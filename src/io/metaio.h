/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing an image's metadata (superblock, block headers,
 * bitmaps, checksum tables, control stream) through a buffered fd. Page data
 * never goes through here: channels own that, on fds of their own.
 */
#ifndef MRS_METAIO_H
#define MRS_METAIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"
#include "stream.h"

/* Everything an image says about itself, validated. */
struct mrs_image_meta {
	uint64_t file_size;
	struct mrs_superblock sb;
	struct mrs_block_header *blocks; /* sb.block_count of them */
	uint8_t **bitmaps;		 /* per block, as on disk (NULL: not kept) */
	uint64_t **hashes;		 /* per block, per page, in host order (NULL: not kept) */
	struct mrs_stream_info stream;
};

/* The image's block names, "pc.ram, vga.ram", for a message (cut to len). */
void mrs_meta_block_names(const struct mrs_image_meta *m, char *buf, size_t len);

/* For mrs_meta_read(). */
#define MRS_META_INCOMPLETE_OK 0x1u /* describe an unfinished image instead of refusing it */
/* Check bitmaps and checksum tables but keep neither: memory stays small for any image. */
#define MRS_META_CHECK_TABLES_ONLY 0x2u

/*
 * Read and validate the metadata of the image open on fd. Refuses (with
 * -EPROTO and a message saying why) anything damaged, and an incomplete image
 * unless MRS_META_INCOMPLETE_OK. Nothing is allocated in proportion to a size
 * the file claims before that size has been checked against the file's own
 * (and, for the control stream, against MRS_STREAM_MAX).
 */
int mrs_meta_read(int fd, unsigned flags, struct mrs_image_meta *meta, struct mrs_error *err);
void mrs_meta_free(struct mrs_image_meta *meta);

int mrs_meta_write_superblock(int fd, const struct mrs_superblock *sb, struct mrs_error *err);
int mrs_meta_write_headers(int fd, uint64_t table_offset, const struct mrs_block_header *blocks,
			   uint32_t n, struct mrs_error *err);
/*
 * Write one block's bitmap and checksum table (hashes in host order) and
 * record their checksums and the count of present pages in bh.
 */
int mrs_meta_write_tables(int fd, struct mrs_block_header *bh, const uint8_t *bitmap,
			  const uint64_t *hashes, struct mrs_error *err);
/* Write the stream bytes from *flushed to s->len at stream_offset + *flushed. */
int mrs_meta_write_stream(int fd, uint64_t stream_offset, const struct mrs_stream_buf *s,
			  size_t *flushed, struct mrs_error *err);

/*
 * pread until len bytes are read or the file ends: returns the bytes read
 * (fewer than len only at the end of the file) or -errno. The caller decides
 * what a short file means; for an image it is damage, never an I/O error.
 */
ssize_t mrs_pread_all(int fd, void *buf, size_t len, uint64_t offset);
/* pwrite that finishes the job or fails: 0 or -errno. */
int mrs_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);

#endif
