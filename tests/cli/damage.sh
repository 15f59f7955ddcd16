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

# Damaged metadata: superblock, block header, stream. Each fails with exit
# code 1 and leaves the restore target exactly as it was.
"$MKRAM" "$T/target" 8M 4 0 || fail "mkram"
cp "$T/target" "$T/target.before"
for where in 20 $((4096 + 130)) stream; do
	cp "$T/good.img" "$T/bad.img"
	if [ "$where" = stream ]; then
		size=$(stat -c %s "$T/bad.img")
		where=$((size - 20))
	fi
	flip_byte "$T/bad.img" "$where"
	expect_rc 1 "$MRSNAP" restore "$T/bad.img" --ram pc.ram="$T/target"
	cmp -s "$T/target" "$T/target.before" || fail "a damaged image (byte $where) changed the target"
	expect_rc 1 "$MRSNAP" verify "$T/bad.img"
done

# A cut-off image is refused.
cp "$T/good.img" "$T/bad.img"
truncate -s $((pages_offset + 4096)) "$T/bad.img"
expect_rc 1 "$MRSNAP" verify "$T/bad.img"
expect_err "past the end of the file"

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
