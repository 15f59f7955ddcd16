/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#include "metaio.h"

ssize_t mrs_pread_all(int fd, void *buf, size_t len, uint64_t offset)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done, (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int mrs_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

/*
 * The layout check has put every region inside the file, so a read that
 * meets the end of it means the file is shorter than it said (cut while we
 * read it): damage, like any other region past the end, not an I/O error.
 */
static int read_region(int fd, void *buf, size_t len, uint64_t offset, const char *what,
		       struct mrs_error *err)
{
	ssize_t n = mrs_pread_all(fd, buf, len, offset);

	if (n < 0)
		return mrs_err_errno(err, (int)n, "cannot read %s at offset 0x%" PRIx64, what,
				     offset);
	if ((size_t)n < len)
		return mrs_err(err, -EPROTO,
			       "cannot read %s at offset 0x%" PRIx64
			       ": the file ends at 0x%" PRIx64,
			       what, offset, offset + (uint64_t)n);
	return 0;
}

static int write_region(int fd, const void *buf, size_t len, uint64_t offset, const char *what,
			struct mrs_error *err)
{
	int ret = mrs_pwrite_all(fd, buf, len, offset);

	if (ret)
		return mrs_err_errno(err, ret, "cannot write %s at offset 0x%" PRIx64, what,
				     offset);
	return 0;
}

int mrs_meta_write_superblock(int fd, const struct mrs_superblock *sb, struct mrs_error *err)
{
	uint8_t buf[MRS_SB_SIZE];

	mrs_sb_encode(sb, buf);
	return write_region(fd, buf, sizeof(buf), 0, "superblock", err);
}

int mrs_meta_write_headers(int fd, uint64_t table_offset, const struct mrs_block_header *blocks,
			   uint32_t n, struct mrs_error *err)
{
	uint8_t buf[MRS_BH_SIZE];

	for (uint32_t i = 0; i < n; i++) {
		int ret;

		mrs_bh_encode(&blocks[i], buf);
		ret = write_region(fd, buf, sizeof(buf), table_offset + (uint64_t)i * MRS_BH_SIZE,
				   "block header", err);
		if (ret)
			return ret; /* the real code, also when err is NULL */
	}
	return 0;
}

/* Checksum tables go out in chunks so that no buffer grows with guest RAM. */
#define HASH_CHUNK 8192u

int mrs_meta_write_tables(int fd, struct mrs_block_header *bh, const uint8_t *bitmap,
			  const uint64_t *hashes, struct mrs_error *err)
{
	uint8_t buf[HASH_CHUNK * MRS_HASH_SIZE];
	struct mrs_hash_state *state;
	uint64_t present = 0;
	int ret = 0;

	for (uint64_t i = 0; i < bh->bitmap_length; i++)
		present += (uint64_t)__builtin_popcount(bitmap[i]);
	bh->pages_present = present;
	bh->bitmap_checksum = mrs_hash(bitmap, bh->bitmap_length);
	ret = write_region(fd, bitmap, bh->bitmap_length, bh->bitmap_offset, "bitmap", err);
	if (ret)
		return ret;

	state = mrs_hash_begin();
	if (!state)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (uint64_t first = 0; first < bh->page_count; first += HASH_CHUNK) {
		uint64_t n =
		    bh->page_count - first < HASH_CHUNK ? bh->page_count - first : HASH_CHUNK;

		for (uint64_t i = 0; i < n; i++)
			mrs_put_hash(buf + i * MRS_HASH_SIZE, hashes[first + i]);
		mrs_hash_add(state, buf, n * MRS_HASH_SIZE);
		ret =
		    write_region(fd, buf, n * MRS_HASH_SIZE,
				 bh->hashes_offset + first * MRS_HASH_SIZE, "checksum table", err);
		if (ret)
			break;
	}
	bh->hashes_checksum = mrs_hash_end(state);
	return ret;
}

int mrs_meta_write_stream(int fd, uint64_t stream_offset, const struct mrs_stream_buf *s,
			  size_t *flushed, struct mrs_error *err)
{
	int ret;

	if (*flushed == s->len)
		return 0;
	ret = write_region(fd, s->data + *flushed, s->len - *flushed, stream_offset + *flushed,
			   "control stream", err);
	if (!ret)
		*flushed = s->len;
	return ret;
}

void mrs_meta_free(struct mrs_image_meta *meta)
{
	for (uint32_t i = 0; meta->blocks && i < meta->sb.block_count; i++) {
		if (meta->bitmaps)
			free(meta->bitmaps[i]);
		if (meta->hashes)
			free(meta->hashes[i]);
	}
	free(meta->bitmaps);
	free(meta->hashes);
	free(meta->blocks);
	mrs_stream_info_free(&meta->stream);
	memset(meta, 0, sizeof(*meta));
}

static int read_headers(int fd, struct mrs_image_meta *m, struct mrs_error *err)
{
	uint8_t buf[MRS_BH_SIZE];
	uint32_t n = m->sb.block_count;
	uint64_t end;
	int ret;

	/* The in-memory headers take about as much as the table on disk: a few
	 * bytes of file must not cost megabytes before they are refused. */
	if (!mrs_add_ok(m->sb.block_table_offset, (uint64_t)n * MRS_BH_SIZE, &end) ||
	    end > m->file_size)
		return mrs_err(err, -EPROTO,
			       "block table at offset 0x%" PRIx64 ", 0x%" PRIx64
			       " bytes long, runs past the end of the file at 0x%" PRIx64,
			       m->sb.block_table_offset, (uint64_t)n * MRS_BH_SIZE, m->file_size);
	m->blocks = calloc(n, sizeof(*m->blocks));
	if (!m->blocks)
		return mrs_err(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		uint64_t at = m->sb.block_table_offset + (uint64_t)i * MRS_BH_SIZE;

		ret = read_region(fd, buf, sizeof(buf), at, "block header", err);
		if (!ret)
			ret = mrs_bh_decode(buf, &m->blocks[i], err);
		if (ret) {
			mrs_err_prefix(err, "block header %" PRIu32 " at offset 0x%" PRIx64, i, at);
			return ret;
		}
		if (m->blocks[i].index != i)
			return mrs_err(err, -EPROTO,
				       "block header %" PRIu32 " at offset 0x%" PRIx64
				       " says it is block %" PRIu32,
				       i, at, m->blocks[i].index);
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(m->blocks[j].name, m->blocks[i].name))
				return mrs_err(err, -EPROTO, "two blocks are named '%s'",
					       m->blocks[i].name);
	}
	return 0;
}

static int read_stream(int fd, struct mrs_image_meta *m, struct mrs_error *err)
{
	uint8_t *buf;
	int ret;

	/* mrs_sb_decode capped the length at MRS_STREAM_MAX, and the layout
	 * check put the stream inside the file. */
	buf = malloc(m->sb.stream_length);
	if (!buf)
		return mrs_err(err, -ENOMEM, "out of memory for a %" PRIu64 "-byte stream",
			       m->sb.stream_length);
	ret = read_region(fd, buf, m->sb.stream_length, m->sb.stream_offset, "control stream", err);
	if (!ret)
		ret = mrs_stream_parse(buf, m->sb.stream_length, m->sb.stream_offset, &m->stream,
				       err);
	free(buf);
	if (ret)
		return ret;
	if (m->stream.block_count != m->sb.block_count ||
	    m->stream.block_table_offset != m->sb.block_table_offset)
		return mrs_err(err, -EPROTO,
			       "the stream's BLOCKS record disagrees with the superblock");
	if (m->stream.nrounds == 0)
		return mrs_err(err, -EPROTO, "the stream records no round");
	/* The region the DEVICE record names is checked like every other one. */
	if (m->stream.has_device)
		return mrs_layout_check_device(&m->sb, m->blocks, m->stream.device.offset,
					       m->stream.device.length, m->file_size, err);
	return 0;
}

/* The layout check has put the bitmap inside the file: its length is bounded by the file's. */
static int read_bitmap(int fd, const struct mrs_block_header *bh, uint8_t **out,
		       struct mrs_error *err)
{
	uint8_t *bitmap = malloc(bh->bitmap_length);
	int ret;

	if (!bitmap)
		return mrs_err(err, -ENOMEM, "out of memory");
	*out = bitmap;
	ret = read_region(fd, bitmap, bh->bitmap_length, bh->bitmap_offset, "bitmap", err);
	if (ret)
		return ret;
	if (mrs_hash(bitmap, bh->bitmap_length) != bh->bitmap_checksum)
		return mrs_err(err, -EPROTO, "block '%s': bitmap checksum mismatch", bh->name);
	return mrs_bitmap_check(bh, bitmap, err);
}

/*
 * Read and check a block's checksum table in chunks, against its checksum
 * and the bitmap: absent pages have no hash, so a non-zero entry for one
 * means table and bitmap disagree. Kept in *out (host order, from one
 * allocation bounded by the file size, like the table) unless out is NULL.
 */
static int read_hashes(int fd, const struct mrs_block_header *bh, const uint8_t *bitmap,
		       uint64_t **out, struct mrs_error *err)
{
	uint8_t buf[HASH_CHUNK * MRS_HASH_SIZE];
	uint64_t *hashes = out ? malloc(bh->hashes_length) : NULL;
	struct mrs_hash_state *state = mrs_hash_begin();
	uint64_t absent = UINT64_MAX; /* the first absent page with a hash */
	uint64_t sum;
	int ret = 0;

	if (out)
		*out = hashes;
	if ((out && !hashes) || !state) {
		ret = mrs_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t first = 0; first < bh->page_count; first += HASH_CHUNK) {
		uint64_t n =
		    bh->page_count - first < HASH_CHUNK ? bh->page_count - first : HASH_CHUNK;

		ret = read_region(fd, buf, n * MRS_HASH_SIZE,
				  bh->hashes_offset + first * MRS_HASH_SIZE, "checksum table", err);
		if (ret)
			goto out;
		mrs_hash_add(state, buf, n * MRS_HASH_SIZE);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t h = mrs_get_hash(buf + i * MRS_HASH_SIZE);

			if (h && absent == UINT64_MAX && !mrs_bitmap_test(bitmap, first + i))
				absent = first + i;
			if (hashes)
				hashes[first + i] = h;
		}
	}
	/* A damaged table is reported as such, before what its entries say. */
	sum = mrs_hash_end(state);
	state = NULL;
	if (sum != bh->hashes_checksum)
		ret =
		    mrs_err(err, -EPROTO, "block '%s': checksum table checksum mismatch", bh->name);
	else if (absent != UINT64_MAX)
		ret = mrs_err(err, -EPROTO,
			      "block '%s': page %" PRIu64
			      " is absent but has a checksum in the table",
			      bh->name, absent);
out:
	if (state)
		mrs_hash_end(state); /* only to free it */
	return ret;
}

static int read_tables(int fd, unsigned flags, struct mrs_image_meta *m, struct mrs_error *err)
{
	bool keep = !(flags & MRS_META_CHECK_TABLES_ONLY);
	uint32_t n = m->sb.block_count;
	uint8_t *bitmap = NULL;
	int ret = 0;

	if (keep) {
		m->bitmaps = calloc(n, sizeof(*m->bitmaps));
		m->hashes = calloc(n, sizeof(*m->hashes));
		if (!m->bitmaps || !m->hashes)
			return mrs_err(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; !ret && i < n; i++) {
		ret = read_bitmap(fd, &m->blocks[i], &bitmap, err);
		if (!ret)
			ret = read_hashes(fd, &m->blocks[i], bitmap, keep ? &m->hashes[i] : NULL,
					  err);
		if (keep)
			m->bitmaps[i] = bitmap;
		else
			free(bitmap);
		bitmap = NULL;
	}
	return ret;
}

int mrs_meta_read(int fd, unsigned flags, struct mrs_image_meta *meta, struct mrs_error *err)
{
	uint8_t sb[MRS_SB_SIZE];
	struct stat st;
	bool complete;
	int ret;

	memset(meta, 0, sizeof(*meta));
	if (fstat(fd, &st))
		return mrs_err_errno(err, -errno, "cannot stat the image");
	meta->file_size = (uint64_t)st.st_size;
	if (meta->file_size < MRS_SB_SIZE)
		return mrs_err(err, -EPROTO, "not an mrsnap image (only %" PRIu64 " bytes)",
			       meta->file_size);
	ret = read_region(fd, sb, sizeof(sb), 0, "superblock", err);
	if (!ret)
		ret = mrs_sb_decode(sb, &meta->sb, err);
	if (ret)
		goto fail;
	complete = meta->sb.flags & MRS_SB_COMPLETE;
	if (!complete && !(flags & MRS_META_INCOMPLETE_OK)) {
		ret =
		    mrs_err(err, -EPROTO,
			    "the image is incomplete (the snapshot that wrote it did not finish)");
		goto fail;
	}
	ret = read_headers(fd, meta, err);
	if (!ret)
		ret = mrs_layout_check(&meta->sb, meta->blocks, meta->file_size, err);
	if (!ret && complete)
		ret = read_stream(fd, meta, err);
	/* An incomplete image's tables were never written. */
	if (!ret && complete)
		ret = read_tables(fd, flags, meta, err);
	if (ret)
		goto fail;
	return 0;
fail:
	mrs_meta_free(meta);
	return ret;
}

void mrs_meta_block_names(const struct mrs_image_meta *m, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (uint32_t b = 0; b < m->sb.block_count && at < len; b++) {
		int n = snprintf(buf + at, len - at, "%s%s", b ? ", " : "", m->blocks[b].name);

		if (n < 0)
			break;
		at += (size_t)n;
	}
}
