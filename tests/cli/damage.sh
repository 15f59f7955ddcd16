#!/bin/sh
# Damage is found and named: bad pages by verify and restore --verify, bad
# metadata by everything, before any target is touched.
. "$top_srcdir/tests/cli/lib.sh"

"$MKRAM" "$T/a.ram" 8M 3 || fail "mkram"
expect_rc 0 "$MRSNAP" snapshot "$T/good.img" --ram pc.ram="$T/a.ram"
expect_rc 0 "$MRSNAP" info --json "$T/good.img"
pages_offset=$(json_num "$T/out" pages_offset)

# Find a present page: the first page whose bytes in RAM are not all zero.
page=0
while cmp -s -n 4096 -i $((page * 4096)):0 "$T/a.ram" /dev/zero; do
	page=$((page + 1))
done

cp "$T/good.img" "$T/bad.img"
flip_byte "$T/bad.img" $((pages_offset + page * 4096 + 100))
expect_rc 1 "$MRSNAP" verify "$T/bad.img"
expect_err "block 'pc.ram' page $page (guest offset 0x$(printf %x $((page * 4096)))): FAILED"
expect_err "1 of"
expect_err "pages did NOT match"
[ "$(grep -c FAILED "$T/err")" = 1 ] || fail "verify reported more than the one bad page"
expect_rc 1 "$MRSNAP" verify --json "$T/bad.img"
grep -q '"pages_bad": 1' "$T/out" || fail "verify --json lacks pages_bad 1"
grep -q "\"page\": $page" "$T/out" || fail "verify --json does not name page $page"

expect_rc 1 "$MRSNAP" restore --verify "$T/bad.img" --ram pc.ram="$T/out.ram"
expect_err "page $page (guest offset"
expect_err "does not match its checksum"

# le64 FILE OFFSET: the little-endian 64-bit number at OFFSET (from the file
# itself, not from info's JSON: the layout as the format defines it).
le64() {
	od -An -tu8 -j "$2" -N 8 "$1" | tr -d ' '
}
bitmap_off=$(le64 "$T/good.img" $((4096 + 48)))
hashes_off=$(le64 "$T/good.img" $((4096 + 64)))
stream_off=$(le64 "$T/good.img" 80)
stream_len=$(le64 "$T/good.img" 88)
[ "$bitmap_off" -gt 4096 ] && [ "$hashes_off" -gt "$bitmap_off" ] && [ "$stream_len" -gt 0 ] ||
	fail "cannot find the metadata regions of good.img"

# Damaged metadata, one region at a time. Each fails with exit code 1 in
# restore (leaving the target exactly as it was), verify and info, and the
# message names what is damaged. info checks all the metadata it describes:
# a build where info skipped bitmaps and checksum tables said "complete: yes"
# (exit 0) of an image that restore refuses.
"$MKRAM" "$T/target" 8M 4 0 || fail "mkram"
cp "$T/target" "$T/target.before"
for region in superblock:20 header:$((4096 + 130)) bitmap:$bitmap_off \
	table:$((hashes_off + 100)) stream:$((stream_off + 20)); do
	where=${region#*:}
	case "${region%%:*}" in
	superblock) says="superblock checksum mismatch" ;;
	header) says="block header 0 at offset 0x1000: block header checksum mismatch" ;;
	bitmap) says="block 'pc.ram': bitmap checksum mismatch" ;;
	table) says="block 'pc.ram': checksum table checksum mismatch" ;;
	stream) says="record at offset 0x$(printf %x "$stream_off") (flags 0x1): checksum mismatch" ;;
	esac
	cp "$T/good.img" "$T/bad.img"
	flip_byte "$T/bad.img" "$where"
	expect_rc 1 "$MRSNAP" restore "$T/bad.img" --ram pc.ram="$T/target"
	expect_err "$says"
	cmp -s "$T/target" "$T/target.before" || fail "a damaged ${region%%:*} (byte $where) changed the target"
	expect_rc 1 "$MRSNAP" verify "$T/bad.img"
	expect_err "$says"
	expect_rc 1 "$MRSNAP" info "$T/bad.img"
	expect_err "$says"
	[ -s "$T/out" ] && fail "info described an image with a damaged ${region%%:*}: $(cat "$T/out")"
done

# A format version this mrsnap does not read: exit 1 (the image is not one
# it can use), with a code of its own; not the exit 3 of an I/O error that
# happens to say "not supported" (ENOTSUP and EOPNOTSUPP are one errno).
cp "$T/good.img" "$T/bad.img"
printf '\002' | dd of="$T/bad.img" bs=1 seek=8 count=1 conv=notrunc status=none
for cmd in info verify "restore --ram pc.ram=$T/target"; do
	# shellcheck disable=SC2086 # cmd holds its arguments
	expect_rc 1 "$MRSNAP" $cmd "$T/bad.img"
	expect_err "image format version 2 is not supported (this mrsnap reads version 1)"
done
cmp -s "$T/target" "$T/target.before" || fail "an image of another version changed the target"

# A cut-off image is damage (exit 1, never the exit 3 of an I/O error), at
# any point, and the message says where: in the superblock, the block table,
# a block header, the bitmap, the checksum table, the page region, the stream.
for cut in 100 300 4096 $((4096 + 100)) $((bitmap_off + 10)) $((hashes_off + 100)) \
	$((pages_offset + 4096)) $((stream_off + 20)); do
	cp "$T/good.img" "$T/bad.img"
	truncate -s "$cut" "$T/bad.img"
	for cmd in info verify "restore --ram pc.ram=$T/target"; do
		# shellcheck disable=SC2086
		expect_rc 1 "$MRSNAP" $cmd "$T/bad.img"
		case $cut in
		100) expect_err "not an mrsnap image (only 100 bytes)" ;;
		*) expect_err "past the end of the file" ;;
		esac
	done
	cmp -s "$T/target" "$T/target.before" || fail "an image cut at $cut changed the target"
done
# The image of issue #10: cut at 4096, it said "Input/output error", exit 3.
cp "$T/good.img" "$T/bad.img"
truncate -s 4096 "$T/bad.img"
expect_rc 1 "$MRSNAP" verify "$T/bad.img"
expect_err "block table at offset 0x1000, 0x1000 bytes long, runs past the end of the file at 0x1000"

# An incomplete image: what a snapshot killed before it finished leaves.
# The freeze command kills mrsnap itself, after the temporary file is made.
"$MRSNAP" snapshot "$T/inc.img" --ram pc.ram="$T/a.ram" \
	--freeze-cmd 'kill -9 $PPID' --thaw-cmd true >/dev/null 2>&1
[ -e "$T/inc.img" ] && fail "a killed snapshot left a file at the image's path"
inc=$(ls "$T"/.inc.img.mrsnap-tmp.* 2>/dev/null | head -n 1)
[ -n "$inc" ] || fail "the killed snapshot left no temporary file to look at"
expect_rc 0 "$MRSNAP" info "$inc"
expect_out "complete:   NO"
expect_rc 1 "$MRSNAP" verify "$inc"
expect_err "the image is incomplete"
cp "$T/target.before" "$T/target"
expect_rc 1 "$MRSNAP" restore "$inc" --ram pc.ram="$T/target"
cmp -s "$T/target" "$T/target.before" || fail "an incomplete image changed the target"

# Not an image at all.
expect_rc 1 "$MRSNAP" info "$T/a.ram"
expect_err "not an mrsnap image"
expect_rc 3 "$MRSNAP" info "$T/missing.img"
expect_err "cannot open '$T/missing.img': No such file or directory"
exit 0
