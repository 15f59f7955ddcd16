/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "codec.h"
#include "stream.h"

/* Records longer than this are refused before anything else is read. */
#define REC_MAX_PAYLOAD 4096u

const char *mrs_rec_kind_name(uint32_t flags)
{
	switch (flags) {
	case MRS_REC_BLOCKS:
		return "BLOCKS";
	case MRS_REC_ZERO:
		return "ZERO";
	case MRS_REC_ROUND:
		return "ROUND";
	case MRS_REC_PAGE:
		return "PAGE";
	case MRS_REC_EOS:
		return "EOS";
	case MRS_REC_END:
		return "END";
	case MRS_REC_DEVICE:
		return "DEVICE";
	default:
		return "unknown";
	}
}

/* The checksum of a record covers its flags and length words and its payload. */
static uint64_t rec_checksum(const uint8_t *rec, uint32_t len)
{
	uint8_t tmp[8 + REC_MAX_PAYLOAD];

	memcpy(tmp, rec, 8);
	memcpy(tmp + 8, rec + MRS_REC_HEADER, len);
	return mrs_hash(tmp, 8 + (size_t)len);
}

static int grow(struct mrs_stream_buf *s, size_t need)
{
	size_t cap = s->cap ? s->cap : 256;
	uint8_t *p;

	if (s->len + need <= s->cap)
		return 0;
	while (cap < s->len + need)
		cap *= 2;
	p = realloc(s->data, cap);
	if (!p)
		return -ENOMEM;
	s->data = p;
	s->cap = cap;
	return 0;
}

/* The largest stream a snapshot writes, and the cap readers enforce, agree. */
_Static_assert(2 * MRS_REC_HEADER + MRS_BLOCKS_PAYLOAD +
		       (uint64_t)MRS_MAX_ROUNDS * (2 * MRS_REC_HEADER + MRS_ROUND_PAYLOAD) +
		       2 * MRS_REC_HEADER + MRS_DEVICE_PAYLOAD + MRS_REC_HEADER + MRS_END_PAYLOAD <=
		   MRS_STREAM_MAX,
	       "MRS_MAX_ROUNDS rounds and a DEVICE record must fit in a stream");

int mrs_stream_append(struct mrs_stream_buf *s, uint32_t flags, const void *payload, uint32_t len)
{
	/* Room is kept for the END record: a stream that is full can still end. */
	size_t limit = flags == MRS_REC_END ? MRS_STREAM_MAX
					    : MRS_STREAM_MAX - MRS_REC_HEADER - MRS_END_PAYLOAD;
	uint8_t *rec;

	if (len > REC_MAX_PAYLOAD)
		return -EINVAL;
	if (s->len + MRS_REC_HEADER + len > limit)
		return -EFBIG; /* readers would refuse it */
	if (grow(s, MRS_REC_HEADER + len))
		return -ENOMEM;
	rec = s->data + s->len;
	mrs_put_le32(rec, flags);
	mrs_put_le32(rec + 4, len);
	if (len)
		memcpy(rec + MRS_REC_HEADER, payload, len);
	mrs_put_hash(rec + 8, rec_checksum(rec, len));
	s->len += MRS_REC_HEADER + len;
	s->records++;
	return 0;
}

int mrs_stream_append_blocks(struct mrs_stream_buf *s, uint32_t block_count,
			     uint64_t block_table_offset)
{
	uint8_t p[MRS_BLOCKS_PAYLOAD] = {0};

	mrs_put_le32(p, block_count);
	mrs_put_le64(p + 8, block_table_offset);
	return mrs_stream_append(s, MRS_REC_BLOCKS, p, sizeof(p));
}

int mrs_stream_append_round(struct mrs_stream_buf *s, const struct mrs_round *r)
{
	uint8_t p[MRS_ROUND_PAYLOAD] = {0};

	mrs_put_le32(p, r->number);
	mrs_put_le32(p + 4, r->flags);
	mrs_put_le64(p + 8, r->pages_scanned);
	mrs_put_le64(p + 16, r->pages_dirty);
	mrs_put_le64(p + 24, r->pages_written);
	mrs_put_le64(p + 32, r->pages_zeroed);
	mrs_put_le64(p + 40, r->bytes_written);
	mrs_put_le64(p + 48, r->duration_ns);
	return mrs_stream_append(s, MRS_REC_ROUND, p, sizeof(p));
}

int mrs_stream_append_eos(struct mrs_stream_buf *s)
{
	return mrs_stream_append(s, MRS_REC_EOS, NULL, 0);
}

int mrs_stream_append_end(struct mrs_stream_buf *s)
{
	uint8_t p[MRS_END_PAYLOAD];

	mrs_put_le64(p, s->records);
	mrs_put_hash(p + 8, mrs_hash(s->data, s->len));
	return mrs_stream_append(s, MRS_REC_END, p, sizeof(p));
}

/* Payload offsets of a DEVICE record (mrsnap-image(5)). */
#define DEV_OFFSET   0
#define DEV_LENGTH   8
#define DEV_CHECKSUM 16
#define DEV_FLAGS    24 /* 4 bytes, zero */
#define DEV_RESERVED 28 /* 4 bytes, zero */
#define DEV_PRODUCER 32
#define DEV_MACHINE  (DEV_PRODUCER + MRS_DEVICE_TEXT)
_Static_assert(DEV_MACHINE + MRS_DEVICE_TEXT == MRS_DEVICE_PAYLOAD, "DEVICE payload layout");

int mrs_stream_append_device(struct mrs_stream_buf *s, const struct mrs_device_rec *d)
{
	uint8_t p[MRS_DEVICE_PAYLOAD] = {0};

	mrs_put_le64(p + DEV_OFFSET, d->offset);
	mrs_put_le64(p + DEV_LENGTH, d->length);
	mrs_put_hash(p + DEV_CHECKSUM, d->checksum);
	mrs_put_text(p + DEV_PRODUCER, d->producer, MRS_DEVICE_TEXT);
	mrs_put_text(p + DEV_MACHINE, d->machine, MRS_DEVICE_TEXT);
	return mrs_stream_append(s, MRS_REC_DEVICE, p, sizeof(p));
}

void mrs_stream_buf_free(struct mrs_stream_buf *s)
{
	free(s->data);
	memset(s, 0, sizeof(*s));
}

void mrs_stream_info_free(struct mrs_stream_info *info)
{
	free(info->rounds);
	memset(info, 0, sizeof(*info));
}

static uint32_t expected_length(uint32_t kind)
{
	switch (kind) {
	case MRS_REC_BLOCKS:
		return MRS_BLOCKS_PAYLOAD;
	case MRS_REC_ROUND:
		return MRS_ROUND_PAYLOAD;
	case MRS_REC_END:
		return MRS_END_PAYLOAD;
	case MRS_REC_DEVICE:
		return MRS_DEVICE_PAYLOAD;
	default:
		return 0;
	}
}

/* The reader's state while it walks the stream. */
struct parser {
	const uint8_t *buf;
	uint64_t len, base, pos;
	struct mrs_stream_info *info;
	uint32_t rounds_cap;
	struct mrs_error *err;
};

/* Check that the flags word names exactly one kind this version accepts. */
static int check_kind(struct parser *ps, uint32_t flags)
{
	uint64_t at = ps->base + ps->pos;

	if (flags & ~(MRS_REC_VALID | MRS_REC_RESERVED) || __builtin_popcount(flags) != 1)
		return mrs_err(ps->err, -EPROTO,
			       "unexpected stream flags 0x%" PRIx32 " at offset 0x%" PRIx64, flags,
			       at);
	if (flags & MRS_REC_RESERVED)
		return mrs_err(ps->err, -EPROTO,
			       "unexpected stream flags 0x%" PRIx32 " (%s) at offset 0x%" PRIx64
			       ": not valid in a mapped image",
			       flags, mrs_rec_kind_name(flags), at);
	return 0;
}

static int parse_blocks(struct parser *ps, const uint8_t *p)
{
	struct mrs_stream_info *info = ps->info;

	if (info->block_count)
		return mrs_err(ps->err, -EPROTO, "second BLOCKS record at offset 0x%" PRIx64,
			       ps->base + ps->pos);
	info->block_count = mrs_get_le32(p);
	info->block_table_offset = mrs_get_le64(p + 8);
	if (info->block_count == 0 || mrs_get_le32(p + 4) != 0)
		return mrs_err(ps->err, -EPROTO, "malformed BLOCKS record at offset 0x%" PRIx64,
			       ps->base + ps->pos);
	return 0;
}

static int parse_round(struct parser *ps, const uint8_t *p)
{
	struct mrs_stream_info *info = ps->info;
	uint64_t at = ps->base + ps->pos;
	struct mrs_round r;

	if (!info->block_count)
		return mrs_err(ps->err, -EPROTO, "ROUND record before BLOCKS at offset 0x%" PRIx64,
			       at);
	if (info->has_device)
		return mrs_err(ps->err, -EPROTO,
			       "ROUND record at offset 0x%" PRIx64
			       " after the DEVICE record (device state follows the last round)",
			       at);
	r.number = mrs_get_le32(p);
	r.flags = mrs_get_le32(p + 4);
	r.pages_scanned = mrs_get_le64(p + 8);
	r.pages_dirty = mrs_get_le64(p + 16);
	r.pages_written = mrs_get_le64(p + 24);
	r.pages_zeroed = mrs_get_le64(p + 32);
	r.bytes_written = mrs_get_le64(p + 40);
	r.duration_ns = mrs_get_le64(p + 48);
	if (r.flags & ~MRS_ROUND_KNOWN_FLAGS)
		return mrs_err(ps->err, -EPROTO,
			       "unexpected round flags 0x%" PRIx32 " at offset 0x%" PRIx64, r.flags,
			       at + MRS_REC_HEADER + 4);
	if (r.number != info->nrounds)
		return mrs_err(ps->err, -EPROTO,
			       "ROUND record at offset 0x%" PRIx64 " is round %" PRIu32
			       ", expected %" PRIu32,
			       at, r.number, info->nrounds);
	if (info->nrounds == ps->rounds_cap) {
		uint32_t cap = ps->rounds_cap ? 2 * ps->rounds_cap : 8;
		struct mrs_round *n = realloc(info->rounds, cap * sizeof(*n));

		if (!n)
			return mrs_err(ps->err, -ENOMEM, "out of memory");
		info->rounds = n;
		ps->rounds_cap = cap;
	}
	info->rounds[info->nrounds++] = r;
	return 0;
}

/* A text field of a DEVICE record, copied out if it is well formed. */
static int device_text(struct parser *ps, const uint8_t *field, char *out, const char *what)
{
	size_t len;

	if (!mrs_text_field_ok(field, MRS_DEVICE_TEXT, &len))
		return mrs_err(ps->err, -EPROTO,
			       "DEVICE record at offset 0x%" PRIx64 ": %s is not terminated",
			       ps->base + ps->pos, what);
	memcpy(out, field, len + 1);
	return 0;
}

/* At most one, after the last ROUND (so after at least one) and before END. */
static int parse_device(struct parser *ps, const uint8_t *p)
{
	struct mrs_stream_info *info = ps->info;
	struct mrs_device_rec *d = &info->device;
	uint64_t at = ps->base + ps->pos;
	int ret;

	if (info->has_device)
		return mrs_err(ps->err, -EPROTO, "second DEVICE record at offset 0x%" PRIx64, at);
	if (!info->nrounds)
		return mrs_err(ps->err, -EPROTO,
			       "DEVICE record at offset 0x%" PRIx64
			       " before any ROUND (device state follows the last round)",
			       at);
	if (mrs_get_le32(p + DEV_FLAGS) || mrs_get_le32(p + DEV_RESERVED))
		return mrs_err(ps->err, -EPROTO,
			       "DEVICE record at offset 0x%" PRIx64 ": flags 0x%" PRIx32
			       " and reserved 0x%" PRIx32 " must be zero",
			       at, mrs_get_le32(p + DEV_FLAGS), mrs_get_le32(p + DEV_RESERVED));
	d->offset = mrs_get_le64(p + DEV_OFFSET);
	d->length = mrs_get_le64(p + DEV_LENGTH);
	d->checksum = mrs_get_hash(p + DEV_CHECKSUM);
	if (!d->length)
		return mrs_err(ps->err, -EPROTO,
			       "DEVICE record at offset 0x%" PRIx64 " describes an empty region",
			       at);
	ret = device_text(ps, p + DEV_PRODUCER, d->producer, "producer");
	if (!ret)
		ret = device_text(ps, p + DEV_MACHINE, d->machine, "machine");
	if (!ret)
		info->has_device = true;
	return ret;
}

static int parse_end(struct parser *ps, const uint8_t *p)
{
	uint64_t at = ps->base + ps->pos;
	uint64_t count = mrs_get_le64(p), want = mrs_get_hash(p + 8);

	if (count != ps->info->records)
		return mrs_err(ps->err, -EPROTO,
			       "end record at offset 0x%" PRIx64 " counts %" PRIu64
			       " records, the stream has %" PRIu64,
			       at, count, ps->info->records);
	if (want != mrs_hash(ps->buf, ps->pos))
		return mrs_err(ps->err, -EPROTO,
			       "end record at offset 0x%" PRIx64 ": stream checksum mismatch", at);
	if (!ps->info->block_count)
		return mrs_err(ps->err, -EPROTO, "stream has no BLOCKS record");
	return 0;
}

/* Read the record at ps->pos; *kind says what it was. */
static int parse_record(struct parser *ps, uint32_t *kind)
{
	uint64_t at = ps->base + ps->pos, left = ps->len - ps->pos;
	const uint8_t *rec = ps->buf + ps->pos;
	uint32_t flags, len;
	int ret;

	if (left < MRS_REC_HEADER)
		return mrs_err(ps->err, -EPROTO,
			       "truncated record header at offset 0x%" PRIx64 " (%" PRIu64
			       " bytes left)",
			       at, left);
	flags = mrs_get_le32(rec);
	len = mrs_get_le32(rec + 4);
	if (len > REC_MAX_PAYLOAD || len > left - MRS_REC_HEADER)
		return mrs_err(ps->err, -EPROTO,
			       "record at offset 0x%" PRIx64 " (flags 0x%" PRIx32
			       "): length %" PRIu32 " runs past the end of the stream",
			       at, flags, len);
	if (mrs_get_hash(rec + 8) != rec_checksum(rec, len))
		return mrs_err(ps->err, -EPROTO,
			       "record at offset 0x%" PRIx64 " (flags 0x%" PRIx32
			       "): checksum mismatch",
			       at, flags);
	ret = check_kind(ps, flags);
	if (ret)
		return ret;
	if (len != expected_length(flags))
		return mrs_err(ps->err, -EPROTO,
			       "record at offset 0x%" PRIx64 " (flags 0x%" PRIx32
			       ", %s): bad length %" PRIu32 ", expected %" PRIu32,
			       at, flags, mrs_rec_kind_name(flags), len, expected_length(flags));
	*kind = flags;
	switch (flags) {
	case MRS_REC_BLOCKS:
		return parse_blocks(ps, rec + MRS_REC_HEADER);
	case MRS_REC_ROUND:
		return parse_round(ps, rec + MRS_REC_HEADER);
	case MRS_REC_END:
		return parse_end(ps, rec + MRS_REC_HEADER);
	case MRS_REC_DEVICE:
		return parse_device(ps, rec + MRS_REC_HEADER);
	default: /* EOS: accepted and ignored wherever a record may start */
		return 0;
	}
}

int mrs_stream_parse(const uint8_t *buf, uint64_t len, uint64_t base, struct mrs_stream_info *info,
		     struct mrs_error *err)
{
	struct parser ps = {.buf = buf, .len = len, .base = base, .info = info, .err = err};
	uint32_t kind = 0;
	int ret;

	memset(info, 0, sizeof(*info));
	while (ps.pos < len) {
		ret = parse_record(&ps, &kind);
		if (ret)
			goto fail;
		ps.pos += MRS_REC_HEADER + mrs_get_le32(buf + ps.pos + 4);
		if (kind == MRS_REC_END)
			break;
		info->records++;
	}
	if (kind != MRS_REC_END) {
		ret = mrs_err(err, -EPROTO,
			      "stream ends at offset 0x%" PRIx64 " without an end record",
			      base + len);
		goto fail;
	}
	if (ps.pos < len) {
		ret = mrs_err(err, -EPROTO, "record after the end of stream at offset 0x%" PRIx64,
			      base + ps.pos);
		goto fail;
	}
	return 0;
fail:
	mrs_stream_info_free(info);
	return ret;
}

void mrs_round_to_info(const struct mrs_round *r, struct mrs_round_info *out)
{
	out->number = r->number;
	out->frozen = !!(r->flags & MRS_ROUND_FROZEN);
	out->pages_scanned = r->pages_scanned;
	out->pages_dirty = r->pages_dirty;
	out->pages_written = r->pages_written;
	out->pages_zeroed = r->pages_zeroed;
	out->bytes_written = r->bytes_written;
	out->duration_ns = r->duration_ns;
}
