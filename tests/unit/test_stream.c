/* SPDX-License-Identifier: MIT */
/*
 * The control stream: what the reader accepts (EOS anywhere a record may
 * start, any number of times; one DEVICE record after the last round) and
 * what it rejects (unknown flags, reserved kinds, a misplaced DEVICE
 * record, bad lengths and checksums, records after the end, a missing
 * end), each with a message that names the flag value or problem and the
 * offset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "codec.h"
#include "stream.h"

/* Streams in these tests start at this file offset, as in a real image. */
#define BASE 0x40000000ull

static struct mrs_round sample_round(uint32_t n)
{
	struct mrs_round r = {
	    .number = n,
	    .flags = n == 2 ? MRS_ROUND_FROZEN : 0,
	    .pages_scanned = 1000 + n,
	    .pages_dirty = 500 - n,
	    .pages_written = 400 - n,
	    .pages_zeroed = n,
	    .bytes_written = (400ull - n) * 4096,
	    .duration_ns = 123456789ull * (n + 1),
	};
	return r;
}

static int parse(const struct mrs_stream_buf *s, struct mrs_stream_info *info,
		 struct mrs_error *err)
{
	return mrs_stream_parse(s->data, s->len, BASE, info, err);
}

/* "at offset 0x..." for the record that starts at byte pos of the stream. */
static void assert_offset(const struct mrs_error *err, size_t pos)
{
	char want[64];

	snprintf(want, sizeof(want), "offset 0x%llx", (unsigned long long)(BASE + pos));
	assert_msg_has(err, want);
}

static void test_round_trip(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};

	assert_int_equal(mrs_stream_append_blocks(&s, 3, 4096), 0);
	assert_int_equal(mrs_stream_append_eos(&s), 0);
	for (uint32_t n = 0; n < 3; n++) {
		struct mrs_round r = sample_round(n);

		assert_int_equal(mrs_stream_append_round(&s, &r), 0);
		assert_int_equal(mrs_stream_append_eos(&s), 0);
	}
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), 0);
	assert_int_equal(info.block_count, 3);
	assert_int_equal(info.block_table_offset, 4096);
	assert_int_equal(info.nrounds, 3);
	assert_int_equal(info.records, 8);
	for (uint32_t n = 0; n < 3; n++) {
		struct mrs_round r = sample_round(n);

		assert_memory_equal(&info.rounds[n], &r, sizeof(r));
	}
	mrs_stream_info_free(&info);
	mrs_stream_buf_free(&s);
}

/* The records of a valid stream, without its end: BLOCKS, ROUND 0, ROUND 1. */
static void base_records(struct mrs_stream_buf *s, size_t eos_at, unsigned eos_count)
{
	for (size_t i = 0; i < 4; i++) {
		if (i == eos_at)
			for (unsigned k = 0; k < eos_count; k++)
				assert_int_equal(mrs_stream_append_eos(s), 0);
		if (i == 0) {
			assert_int_equal(mrs_stream_append_blocks(s, 1, 4096), 0);
		} else if (i < 3) {
			struct mrs_round r = sample_round((uint32_t)i - 1);

			assert_int_equal(mrs_stream_append_round(s, &r), 0);
		}
	}
}

/* EOS at the start, between every pair of records, just before the end; once and repeated. */
static void test_eos_anywhere(void **state)
{
	static const unsigned counts[] = {1, 2, 7};

	for (size_t at = 0; at < 4; at++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			struct mrs_stream_buf s = {0};
			struct mrs_stream_info info;
			struct mrs_error err = {0};

			base_records(&s, at, counts[c]);
			assert_int_equal(mrs_stream_append_end(&s), 0);
			if (parse(&s, &info, &err) != 0)
				fail_msg("%u EOS at position %zu refused: %s", counts[c], at,
					 err.msg);
			assert_int_equal(info.nrounds, 2);
			/* Counted among the records, not mistaken for the end. */
			assert_int_equal(info.records, 3 + counts[c]);
			mrs_stream_info_free(&info);
			mrs_stream_buf_free(&s);
		}
	}
}

/* A stream with one record of the given flags appended after a valid start. */
static void check_rejected_flags(uint32_t flags, uint32_t len, const char *needle)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};
	uint8_t payload[64] = {0};
	size_t at;

	base_records(&s, 9, 0);
	at = s.len;
	assert_int_equal(mrs_stream_append(&s, flags, payload, len), 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, needle);
	assert_offset(&err, at);
	mrs_stream_buf_free(&s);
}

static void test_unknown_flag_bits(void **state)
{
	check_rejected_flags(0x80, 0, "unexpected stream flags 0x80");
	check_rejected_flags(0x200, 0, "unexpected stream flags 0x200");
	check_rejected_flags(0x80000000u, 0, "unexpected stream flags 0x80000000");
	/* A known bit together with an unknown one. */
	check_rejected_flags(MRS_REC_EOS | 0x100, 0, "unexpected stream flags 0x110");
	/* Two known kinds at once. */
	check_rejected_flags(MRS_REC_EOS | MRS_REC_ROUND, 0, "unexpected stream flags 0x14");
	check_rejected_flags(0, 0, "unexpected stream flags 0x0");
}

static void test_reserved_kinds(void **state)
{
	check_rejected_flags(MRS_REC_PAGE, 64, "unexpected stream flags 0x8 (PAGE)");
	check_rejected_flags(MRS_REC_ZERO, 0, "unexpected stream flags 0x2 (ZERO)");
}

static void test_bad_length(void **state)
{
	check_rejected_flags(MRS_REC_ROUND, 60, "bad length 60, expected 64");
	check_rejected_flags(MRS_REC_EOS, 8, "bad length 8, expected 0");
	check_rejected_flags(MRS_REC_DEVICE, 16, "bad length 16, expected 160");
}

static struct mrs_device_rec sample_device(void)
{
	struct mrs_device_rec d = {
	    .offset = 0x41000000, .length = 300001, .checksum = 0x0123456789abcdefull};

	strcpy(d.producer, "QEMU 7.2.0");
	strcpy(d.machine, "pc-i440fx-7.2");
	return d;
}

/*
 * A DEVICE record written after the last round comes back field by field,
 * EOS after it tolerated. Catches an encoder and decoder that disagree on
 * an offset of the payload, or a reader that still refuses the kind.
 */
static void test_device_round_trip(void **state)
{
	struct mrs_device_rec d = sample_device();
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};

	base_records(&s, 9, 0);
	assert_int_equal(mrs_stream_append_device(&s, &d), 0);
	assert_int_equal(mrs_stream_append_eos(&s), 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), 0);
	assert_true(info.has_device);
	assert_int_equal(info.device.offset, d.offset);
	assert_int_equal(info.device.length, d.length);
	assert_int_equal(info.device.checksum, d.checksum);
	assert_string_equal(info.device.producer, "QEMU 7.2.0");
	assert_string_equal(info.device.machine, "pc-i440fx-7.2");
	assert_int_equal(info.nrounds, 2);
	mrs_stream_info_free(&info);
	mrs_stream_buf_free(&s);

	/* Without one, none is reported. */
	base_records(&s, 9, 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), 0);
	assert_false(info.has_device);
	mrs_stream_info_free(&info);
	mrs_stream_buf_free(&s);
}

/* Parse s (ended here) and expect -EPROTO naming needle and the record at pos. */
static void assert_rejected_at(struct mrs_stream_buf *s, size_t pos, const char *needle)
{
	struct mrs_stream_info info;
	struct mrs_error err = {0};

	assert_int_equal(mrs_stream_append_end(s), 0);
	assert_int_equal(parse(s, &info, &err), -EPROTO);
	assert_msg_has(&err, needle);
	assert_offset(&err, pos);
	mrs_stream_buf_free(s);
}

/*
 * At most one DEVICE record, after the last ROUND: one before any round, a
 * round after it, or a second one is refused at the offending record.
 * Catches a reader that would take device state of another instant than
 * the RAM (a round after it), or two of them.
 */
static void test_device_placement(void **state)
{
	struct mrs_device_rec d = sample_device();
	struct mrs_round r2 = sample_round(2);
	struct mrs_stream_buf s = {0};
	size_t at;

	/* Before any round. */
	assert_int_equal(mrs_stream_append_blocks(&s, 1, 4096), 0);
	at = s.len;
	assert_int_equal(mrs_stream_append_device(&s, &d), 0);
	assert_rejected_at(&s, at, "DEVICE record at offset");

	/* A round after it. */
	base_records(&s, 9, 0);
	assert_int_equal(mrs_stream_append_device(&s, &d), 0);
	assert_int_equal(mrs_stream_append_eos(&s), 0);
	at = s.len;
	assert_int_equal(mrs_stream_append_round(&s, &r2), 0);
	assert_rejected_at(&s, at, "after the DEVICE record");

	/* Twice. */
	base_records(&s, 9, 0);
	assert_int_equal(mrs_stream_append_device(&s, &d), 0);
	at = s.len;
	assert_int_equal(mrs_stream_append_device(&s, &d), 0);
	assert_rejected_at(&s, at, "second DEVICE record");
}

/* A DEVICE payload of the writer's, changed at byte off to v. */
static void append_device_patched(struct mrs_stream_buf *s, size_t off, uint8_t v)
{
	struct mrs_device_rec d = sample_device();
	struct mrs_stream_buf one = {0};
	uint8_t p[MRS_DEVICE_PAYLOAD];

	assert_int_equal(mrs_stream_append_device(&one, &d), 0);
	memcpy(p, one.data + MRS_REC_HEADER, sizeof(p));
	mrs_stream_buf_free(&one);
	p[off] = v;
	assert_int_equal(mrs_stream_append(s, MRS_REC_DEVICE, p, sizeof(p)), 0);
}

/*
 * Flags and reserved must be zero, the region not empty, the two text
 * fields terminated and NUL-padded. Catches a reader that would accept a
 * later version's meaning it does not know, or print past a field.
 */
static void test_device_fields(void **state)
{
	static const struct {
		size_t off;
		uint8_t v;
		const char *needle;
	} cases[] = {
	    {24, 1, "flags 0x1 and reserved 0x0 must be zero"},
	    {28, 1, "flags 0x0 and reserved 0x1 must be zero"},
	    {32 + 63, 'x', "producer is not terminated"},
	    {32 + 20, 'x', "producer is not terminated"}, /* padding after the NUL */
	    {96 + 63, 'x', "machine is not terminated"},
	};
	struct mrs_stream_buf s = {0};
	size_t at;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		base_records(&s, 9, 0);
		at = s.len;
		append_device_patched(&s, cases[i].off, cases[i].v);
		assert_rejected_at(&s, at, cases[i].needle);
	}
	/* An empty region: length 0 (bytes 8..15). */
	base_records(&s, 9, 0);
	at = s.len;
	{
		struct mrs_device_rec d = sample_device();

		d.length = 0;
		assert_int_equal(mrs_stream_append_device(&s, &d), 0);
	}
	assert_rejected_at(&s, at, "empty region");
}

static void test_length_past_end(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};
	size_t at;

	base_records(&s, 9, 0);
	at = s.len;
	assert_int_equal(mrs_stream_append_eos(&s), 0);
	mrs_put_le32(s.data + at + 4, 0xffffff00u);
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "length 4294967040 runs past the end");
	assert_offset(&err, at);
	mrs_stream_buf_free(&s);
}

static void test_bad_checksum(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};
	struct mrs_round r = sample_round(0);
	size_t at;

	assert_int_equal(mrs_stream_append_blocks(&s, 1, 4096), 0);
	at = s.len;
	assert_int_equal(mrs_stream_append_round(&s, &r), 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	s.data[at + MRS_REC_HEADER + 20] ^= 1; /* one bit of pages_dirty */
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "checksum mismatch");
	assert_offset(&err, at);
	mrs_stream_buf_free(&s);
}

static void test_record_after_end(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};
	size_t at;

	base_records(&s, 9, 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	at = s.len;
	assert_int_equal(mrs_stream_append_eos(&s), 0); /* not even EOS after the end */
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "record after the end of stream");
	assert_offset(&err, at);
	mrs_stream_buf_free(&s);
}

static void test_missing_end(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};

	base_records(&s, 3, 2);
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "without an end record");
	assert_offset(&err, s.len);

	/* Cut in the middle of a record header. */
	assert_int_equal(mrs_stream_parse(s.data, s.len - 10, BASE, &info, &err), -EPROTO);
	assert_msg_has(&err, "truncated record header");
	mrs_stream_buf_free(&s);
}

static void test_end_checks(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};
	size_t at;

	base_records(&s, 9, 0);
	at = s.len;
	s.records++; /* the end record will count one record too many */
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "counts 4 records, the stream has 3");
	assert_offset(&err, at);
	mrs_stream_buf_free(&s);

	/* An end record whose stream checksum is wrong. */
	base_records(&s, 9, 0);
	at = s.len;
	{
		uint8_t p[MRS_END_PAYLOAD];

		mrs_put_le64(p, s.records);
		mrs_put_hash(p + 8, 12345);
		assert_int_equal(mrs_stream_append(&s, MRS_REC_END, p, sizeof(p)), 0);
	}
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "stream checksum mismatch");
	assert_offset(&err, at);
	mrs_stream_buf_free(&s);
}

static void test_round_order_and_flags(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};
	struct mrs_round r = sample_round(1);

	assert_int_equal(mrs_stream_append_blocks(&s, 1, 4096), 0);
	assert_int_equal(mrs_stream_append_round(&s, &r), 0); /* round 1 first */
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "is round 1, expected 0");
	mrs_stream_buf_free(&s);

	r = sample_round(0);
	r.flags = 0x10;
	assert_int_equal(mrs_stream_append_blocks(&s, 1, 4096), 0);
	assert_int_equal(mrs_stream_append_round(&s, &r), 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "unexpected round flags 0x10");
	mrs_stream_buf_free(&s);

	r = sample_round(0); /* a round before the block table */
	assert_int_equal(mrs_stream_append_round(&s, &r), 0);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_int_equal(parse(&s, &info, &err), -EPROTO);
	assert_msg_has(&err, "before BLOCKS");
	mrs_stream_buf_free(&s);
}

/*
 * The writer cannot make a stream that readers refuse (longer than
 * MRS_STREAM_MAX), and a full stream can still be ended.
 */
static void test_writer_cap(void **state)
{
	struct mrs_stream_buf s = {0};
	struct mrs_stream_info info;
	struct mrs_error err = {0};
	struct mrs_round r = sample_round(0);
	int ret = 0;

	assert_int_equal(mrs_stream_append_blocks(&s, 1, 4096), 0);
	for (uint32_t n = 0; n < MRS_STREAM_MAX / MRS_ROUND_PAYLOAD && !ret; n++) {
		r.number = n;
		r.flags = 0;
		ret = mrs_stream_append_round(&s, &r);
	}
	assert_int_equal(ret, -EFBIG);
	assert_true(s.len <= MRS_STREAM_MAX);
	assert_int_equal(mrs_stream_append_end(&s), 0);
	assert_true(s.len <= MRS_STREAM_MAX);
	assert_int_equal(parse(&s, &info, &err), 0);
	mrs_stream_info_free(&info);
	mrs_stream_buf_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),	      cmocka_unit_test(test_eos_anywhere),
	    cmocka_unit_test(test_unknown_flag_bits), cmocka_unit_test(test_reserved_kinds),
	    cmocka_unit_test(test_bad_length),	      cmocka_unit_test(test_device_round_trip),
	    cmocka_unit_test(test_device_placement),  cmocka_unit_test(test_device_fields),
	    cmocka_unit_test(test_length_past_end),   cmocka_unit_test(test_bad_checksum),
	    cmocka_unit_test(test_record_after_end),  cmocka_unit_test(test_missing_end),
	    cmocka_unit_test(test_end_checks),	      cmocka_unit_test(test_round_order_and_flags),
	    cmocka_unit_test(test_writer_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
