#!/bin/sh
# Snapshot, info, verify and restore give back exactly the RAM that was saved.
. "$top_srcdir/tests/cli/lib.sh"

"$MKRAM" "$T/a.ram" 24M 1 || fail "mkram"
"$MKRAM" "$T/b.ram" 8M 2 50 || fail "mkram"

for j in 1 2 4; do
	rm -f "$T/vm.img" "$T/a.out"
	expect_rc 0 "$MRSNAP" snapshot -j $j "$T/vm.img" --ram pc.ram="$T/a.ram" --ram vga="$T/b.ram"
	expect_out "2 blocks"
	[ "$(mode_of "$T/vm.img")" = 600 ] || fail "image mode is $(mode_of "$T/vm.img"), not 600"
	expect_rc 0 "$MRSNAP" verify -j $j "$T/vm.img"
	expect_out "OK"
	expect_rc 0 "$MRSNAP" restore -j $j "$T/vm.img" --ram pc.ram="$T/a.out" --ram vga="$T/b.out"
	cmp "$T/a.ram" "$T/a.out" || fail "block pc.ram differs after restore with -j $j"
	cmp "$T/b.ram" "$T/b.out" || fail "block vga differs after restore with -j $j"
	[ "$(mode_of "$T/a.out")" = 600 ] || fail "created target mode is not 600"
done

# Zero pages are holes: the image takes less room than the RAM it holds.
expect_rc 0 "$MRSNAP" info --json "$T/vm.img"
cp "$T/out" "$T/info.json"
grep -q '"complete": true' "$T/info.json" || fail "info does not say complete"
disk=$(json_num "$T/info.json" disk_usage_bytes)
size=$(json_num "$T/info.json" image_size_bytes)
[ "$disk" -lt "$size" ] || fail "image is not sparse ($disk of $size bytes allocated)"
present=$(json_num "$T/info.json" pages_present)
zero=$(json_num "$T/info.json" pages_zero)
[ $((present + zero)) = 6144 ] || fail "pc.ram: $present present + $zero zero is not 6144 pages"
expect_rc 0 "$MRSNAP" info "$T/vm.img"
expect_out "block pc.ram: 24.0 MiB"
expect_out "complete:   yes"

# A target that held other data: pages absent from the image read as zero.
"$MKRAM" "$T/junk" 24M 9 0 || fail "mkram"
cp "$T/junk" "$T/a.out"
expect_rc 0 "$MRSNAP" restore --verify "$T/vm.img" --ram pc.ram="$T/a.out" --ram vga="$T/b.out"
cmp "$T/a.ram" "$T/a.out" || fail "stale target data survived the restore"
expect_out "verified"

# A larger target file is cut to the block size.
head -c 30M /dev/zero >"$T/a.out"
expect_rc 0 "$MRSNAP" restore -q "$T/vm.img" --ram pc.ram="$T/a.out" --ram vga="$T/b.out"
[ "$(stat -c %s "$T/a.out")" = $((24 * 1024 * 1024)) ] || fail "target not sized to the block"
[ ! -s "$T/out" ] || fail "-q printed something"

# Without --ram, restore writes to the paths recorded in the image: files
# of the blocks' sizes there are overwritten...
cp "$T/a.ram" "$T/a.orig"
cp "$T/b.ram" "$T/b.orig"
"$MKRAM" "$T/a.ram" 24M 99 || fail "mkram"
"$MKRAM" "$T/b.ram" 8M 98 || fail "mkram"
expect_rc 0 "$MRSNAP" restore "$T/vm.img"
cmp "$T/a.orig" "$T/a.ram" || fail "restore to the recorded path differs"
cmp "$T/b.orig" "$T/b.ram" || fail "restore to the recorded path differs"
# ...but a missing one is created only when named or with --force: an image
# from someone else must not create files of its choosing (a build without
# the rule created it).
rm -f "$T/a.ram" "$T/b.ram"
expect_rc 3 "$MRSNAP" restore "$T/vm.img"
expect_err "which does not exist: restore creates a file only where it is told to, with --ram pc.ram=$T/a.ram"
[ ! -e "$T/a.ram" ] && [ ! -e "$T/b.ram" ] || fail "a refused restore created a recorded path"
expect_rc 0 "$MRSNAP" restore --force "$T/vm.img"
cmp "$T/a.orig" "$T/a.ram" || fail "restore --force to the recorded path differs"
cmp "$T/b.orig" "$T/b.ram" || fail "restore --force to the recorded path differs"

# JSON summaries are objects with the figures scripts need.
expect_rc 0 "$MRSNAP" snapshot --force --json "$T/vm.img" --ram pc.ram="$T/a.ram"
grep -q '"pages_total": 6144' "$T/out" || fail "snapshot --json lacks pages_total"
grep -q '"rounds": \[' "$T/out" || fail "snapshot --json lacks rounds"
expect_rc 0 "$MRSNAP" restore --json "$T/vm.img" --ram pc.ram="$T/a.out"
grep -q '"pages_read"' "$T/out" || fail "restore --json lacks pages_read"
expect_rc 0 "$MRSNAP" verify --json "$T/vm.img"
grep -q '"ok": true' "$T/out" || fail "verify --json does not say ok"

# --progress draws on stderr even when it is not a terminal; by default it does not.
expect_rc 0 "$MRSNAP" snapshot --force --progress "$T/vm.img" --ram pc.ram="$T/a.ram"
expect_err "round 0"
expect_err "100.0%"
expect_rc 0 "$MRSNAP" verify "$T/vm.img"
[ -s "$T/err" ] && fail "progress was drawn on a stderr that is not a terminal"

# ,size= takes the first bytes of a larger file.
expect_rc 0 "$MRSNAP" snapshot --force "$T/vm.img" --ram pc.ram="$T/a.ram,size=1M"
expect_rc 0 "$MRSNAP" info --json "$T/vm.img"
grep -q '"size_bytes": 1048576' "$T/out" || fail "size= was not applied"

# O_DIRECT where the filesystem has it.
if dd if=/dev/zero of="$T/odirect" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
	expect_rc 0 "$MRSNAP" snapshot --direct --force -j 2 "$T/vm.img" --ram pc.ram="$T/a.ram"
	expect_rc 0 "$MRSNAP" verify --direct "$T/vm.img"
	expect_rc 0 "$MRSNAP" restore --direct "$T/vm.img" --ram pc.ram="$T/a.out"
	cmp "$T/a.ram" "$T/a.out" || fail "O_DIRECT round trip differs"
else
	echo "note: O_DIRECT not supported under ${TMPDIR:-/tmp}; --direct not tested" >&2
fi
exit 0
