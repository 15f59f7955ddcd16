#!/bin/sh
# Copy-on-write images (issue 14), on an XFS filesystem with reflink made on
# a loop device: snapshot --base shares the base's extents and writes only
# what changed, yet gives a standalone image (the base deleted, it verifies
# and restores byte for byte); the base is never written; bad bases are
# refused and leave nothing; where extents cannot be shared (ext4, tmpfs)
# the image is a full one and a notice says so once; restore --clone makes
# targets that read as the saved RAM with zero pages as holes, and refuses
# what it cannot clone without writing anything.
#
# Teeth, each seen failing once by breaking the code on purpose:
#  - trusting the base for a page that changed: unchanged() in
#    src/io/policy_save.c made to ignore the hash (present alone is
#    "unchanged") fails "wrote N pages, M changed", and without the counts
#    "restored RAM differs from the RAM (pc.ram)";
#  - the absent pages an image holds bytes for: punch_absent() in
#    src/engine/clone_restore.c made to return 0 at once fails "stale bytes";
#  - check_no_data() made to return 0 fails "a target with data";
#  - check_not_image() made to return 0 fails "a base that is the image";
#  - base_notice() in src/cli/cmd_snapshot.c returning NULL fails "notice".
. "$top_srcdir/tests/cli/lib.sh"
DIRTY=$top_builddir/tests/tools/dirty
DATABYTES=$top_builddir/tests/tools/databytes

# ---- an XFS filesystem with reflink on a loop device ------------------------
X=$T/xfs
xfs_mount "$X" 1G

# json FILE PATH: one value of a --json document.
json() {
	"$JSONCHECK" "$2" <"$1" || fail "no $2 in $1: $(cat "$1")"
}
# listing DIR: every name in it, temporary files of snapshots included.
listing() {
	ls -A "$1" | tr '\n' ' '
}
# datapages FILE: its 4 KiB pages of data (SEEK_DATA), not holes.
datapages() {
	echo $(($("$DATABYTES" "$1") / 4096))
}

# ---- two RAM blocks, a full snapshot, then 2% changed and a few zeroed -------
"$MKRAM" "$R/pc.ram" 32M 1 || fail "mkram"
"$MKRAM" "$R/vga.ram" 4M 2 || fail "mkram"
RAMS="--ram pc.ram=$R/pc.ram --ram vga.ram=$R/vga.ram"
expect_rc 0 "$MRSNAP" snapshot --json "$X/full.img" $RAMS
cp "$T/out" "$T/full.json"
full_written=$(json "$T/full.json" .written_bytes)
cp --reflink=never "$X/full.img" "$T/full.copy"

out=$("$DIRTY" "$R/pc.ram" 2 20 3) || fail "dirty"
changed=${out#changed }
changed=${changed% zeroed*}
"$DIRTY" "$R/vga.ram" 2 3 4 >/dev/null || fail "dirty"
# A few pages punched out of the tmpfs file: zero pages SEEK_DATA skips.
fallocate -p -o 4096 -l 12288 "$R/pc.ram" || fail "fallocate -p"
[ "$changed" -gt 100 ] || fail "dirty changed only $changed pages"

# ---- snapshot --base on XFS: only the changes written, extents shared --------
expect_rc 0 "$MRSNAP" snapshot --json --base "$X/full.img" "$X/new.img" $RAMS
cp "$T/out" "$T/new.json"
[ "$(json "$T/new.json" .base.shared)" = true ] || fail "extents not shared on XFS: $(cat "$T/new.json")"
[ "$(json "$T/new.json" .base.blocks_shared)" = 2 ] || fail "not both blocks shared"
[ "$(json "$T/new.json" .base.notice)" = null ] || fail "a notice on XFS: $(cat "$T/new.json")"
[ "$("$JSONCHECK" -k .base <"$T/new.json" | tr '\n' ' ')" = "path shared blocks_shared pages_reused notice " ] ||
	fail "the base object's keys are wrong: $(cat "$T/new.json")"
grep -q notice "$T/err" && fail "a notice on stderr on XFS: $(cat "$T/err")"
reused=$(json "$T/new.json" .base.pages_reused)
written=$(json "$T/new.json" .pages_written)
present=$(json "$T/new.json" .pages_present)
wbytes=$(json "$T/new.json" .written_bytes)
zeroed=$(json "$T/new.json" '.rounds[0].pages_zeroed')
# Every page the image holds was either left as cloned or written.
[ $((reused + written)) = "$present" ] ||
	fail "reused $reused + written $written is not the $present present pages"
# Requests carry short gaps of unchanged or zero pages with their
# neighbours (mrsnap(1), --depth): more bytes than the written pages', never fewer.
[ "$wbytes" -ge $((written * 4096)) ] || fail "$wbytes bytes written for $written pages"
# What changed, and no more (2% of pc.ram, 2% of vga.ram).
[ "$wbytes" -lt $((full_written / 10)) ] ||
	fail "--base wrote $wbytes bytes, the full snapshot $full_written"
[ "$written" -ge "$changed" ] || fail "wrote $written pages, $changed changed in pc.ram alone"
# 23 pages zeroed, 3 punched: those present in the base are cleared.
[ "$zeroed" -ge 23 ] || fail "only $zeroed pages cleared"
if command -v filefrag >/dev/null 2>&1; then
	filefrag -v "$X/new.img" | grep -q shared || fail "filefrag shows no shared extent in new.img"
fi

# The base is never written.
cmp -s "$X/full.img" "$T/full.copy" || fail "snapshot --base changed its base"

# The result stands alone: base deleted, it verifies and restores byte for byte.
expect_rc 0 "$MRSNAP" snapshot -q --direct --base "$X/new.img" "$X/direct.img" $RAMS
rm "$X/full.img"
expect_rc 0 "$MRSNAP" verify "$X/new.img"
expect_rc 0 "$MRSNAP" restore "$X/new.img" --ram pc.ram="$T/pc.out" --ram vga.ram="$T/vga.out"
cmp -s "$T/pc.out" "$R/pc.ram" || fail "restored RAM differs from the RAM (pc.ram)"
cmp -s "$T/vga.out" "$R/vga.ram" || fail "restored RAM differs from the RAM (vga.ram)"
rm "$T/pc.out" "$T/vga.out"
# --direct, against a base that is itself a --base image: the same.
expect_rc 0 "$MRSNAP" verify "$X/direct.img"
expect_rc 0 "$MRSNAP" restore "$X/direct.img" --ram pc.ram="$T/pc.out" --ram vga.ram="$T/vga.out"
cmp -s "$T/pc.out" "$R/pc.ram" || fail "restored RAM differs from the RAM (--direct)"
rm "$T/pc.out" "$T/vga.out" "$X/direct.img"

# ---- bases that are refused, leaving nothing --------------------------------
cp --reflink=never "$X/new.img" "$T/new.copy"
before=$(listing "$X")
# refused RC MESSAGE ARGS...: snapshot refuses, names why, leaves $X as it was.
refused() {
	local want=$1 msg=$2
	shift 2
	expect_rc "$want" "$MRSNAP" snapshot "$@"
	expect_err "$msg"
	[ "$(listing "$X")" = "$before" ] || fail "a refused --base left: $(listing "$X")"
	cmp -s "$X/new.img" "$T/new.copy" || fail "a refused --base changed the base"
}
refused 2 "the base '$X/new.img' has block 'vga.ram', which this snapshot has not" \
	--base "$X/new.img" "$X/bad.img" --ram pc.ram="$R/pc.ram"
refused 2 "block 'pc.ram' is 16777216 bytes, and 33554432 in the base '$X/new.img'" \
	--base "$X/new.img" "$X/bad.img" --ram pc.ram="$R/pc.ram",size=16M --ram vga.ram="$R/vga.ram"
refused 2 "the base '$X/new.img' has no block 'other'" \
	--base "$X/new.img" "$X/bad.img" --ram pc.ram="$R/pc.ram" --ram other="$R/vga.ram"
# A base that is the image itself: by name, through a hard link, through a symlink.
refused 2 "is the image '$X/new.img' itself" --base "$X/new.img" --force "$X/new.img" $RAMS
ln "$X/new.img" "$X/link.img"
before=$(listing "$X")
refused 2 "is the image '$X/link.img' itself" --base "$X/new.img" --force "$X/link.img" $RAMS
ln -s new.img "$X/sym.img"
before=$(listing "$X")
refused 2 "is the image '$X/sym.img' itself" --base "$X/new.img" --force "$X/sym.img" $RAMS
rm "$X/link.img" "$X/sym.img"
before=$(listing "$X")
# Damaged: one byte of a checksum table.
cp --reflink=never "$X/new.img" "$X/damaged.img"
flip_byte "$X/damaged.img" "$(json "$T/new.json" '.blocks[0].checksums_offset')"
before=$(listing "$X")
refused 1 "base: '$X/damaged.img': block 'pc.ram': checksum table checksum mismatch" \
	--base "$X/damaged.img" "$X/bad.img" $RAMS
# Incomplete: what a snapshot killed before it finished leaves.
"$MRSNAP" snapshot "$T/inc.img" $RAMS --freeze-cmd 'kill -9 $PPID' --thaw-cmd true >/dev/null 2>&1
inc=$(ls "$T"/.inc.img.mrsnap-tmp.* 2>/dev/null | head -n 1)
[ -n "$inc" ] || fail "the killed snapshot left no temporary file"
refused 1 "the image is incomplete" --base "$inc" "$X/bad.img" $RAMS
refused 3 "cannot open '$X/missing.img'" --base "$X/missing.img" "$X/bad.img" $RAMS
rm "$X/damaged.img"

# ---- where extents cannot be shared: a full snapshot and a notice, once -----
# notice_once DIR BASE WHY: --base BASE into DIR gives a right image, and says WHY once.
notice_once() {
	expect_rc 0 "$MRSNAP" snapshot --base "$2" "$1/fb.img" $RAMS
	[ "$(grep -c 'notice' "$T/err")" = 1 ] || fail "not one notice on stderr: $(cat "$T/err")"
	expect_err "mrsnap: notice: '$1/fb.img' cannot share extents with its base '$2' ($3"
	expect_err "written in full, as without --base"
	expect_rc 0 "$MRSNAP" snapshot --json --base "$2" --force "$1/fb.img" $RAMS
	[ "$(grep -c 'notice' "$T/err")" = 1 ] || fail "not one notice on stderr with --json"
	[ "$("$JSONCHECK" -t .base.notice <"$T/out")" = string ] || fail "no notice in the JSON"
	[ "$(json "$T/out" .base.shared)" = false ] || fail "shared is not false"
	[ "$(json "$T/out" .base.pages_reused)" = 0 ] || fail "pages reused without sharing"
	expect_rc 0 "$MRSNAP" verify "$1/fb.img"
	expect_rc 0 "$MRSNAP" restore "$1/fb.img" --ram pc.ram="$T/pc.out" --ram vga.ram="$T/vga.out"
	cmp -s "$T/pc.out" "$R/pc.ram" || fail "the full snapshot of the fallback differs"
	cmp -s "$T/vga.out" "$R/vga.ram" || fail "the full snapshot of the fallback differs"
	rm "$T/pc.out" "$T/vga.out" "$1/fb.img"
}
case $(stat -f -c %T "$T") in
xfs | btrfs) echo "note: $T shares extents; the ext4 fallback is not tested" >&2 ;;
*)
	expect_rc 0 "$MRSNAP" snapshot -q "$T/ext.img" $RAMS
	notice_once "$T" "$T/ext.img" "the filesystem does not share extents"
	rm "$T/ext.img"
	;;
esac
# Image on tmpfs, base on XFS: two filesystems.
notice_once "$R" "$X/new.img" "they are on different filesystems"

# ---- restore --clone on XFS ----------------------------------------------
img=$X/new.img
cp --reflink=never "$img" "$T/new.copy"
expect_rc 0 "$MRSNAP" info --json "$img"
pc_present=$(json "$T/out" '.blocks[0].pages_present')
vga_present=$(json "$T/out" '.blocks[1].pages_present')
expect_rc 0 "$MRSNAP" restore --json --clone "$img" --ram pc.ram="$X/pc.clone" \
	--ram vga.ram="$X/vga.clone"
[ "$(json "$T/out" .cloned)" = true ] || fail "the JSON does not say cloned: $(cat "$T/out")"
[ "$(json "$T/out" .pages_read)" = 0 ] || fail "a clone read pages"
cmp -s "$X/pc.clone" "$R/pc.ram" || fail "the cloned target differs from the RAM (pc.ram)"
cmp -s "$X/vga.clone" "$R/vga.ram" || fail "the cloned target differs from the RAM (vga.ram)"
# Zero pages are holes: the data is exactly the present pages.
[ "$(datapages "$X/pc.clone")" = "$pc_present" ] ||
	fail "pc.clone has $(datapages "$X/pc.clone") pages of data, $pc_present pages present"
[ "$(datapages "$X/vga.clone")" = "$vga_present" ] || fail "zero pages of vga.clone are not holes"
cmp -s "$img" "$T/new.copy" || fail "restore --clone changed the image"
expect_rc 0 "$MRSNAP" restore --clone "$img" --ram pc.ram="$X/pc2.clone" --ram vga.ram="$X/vga2.clone"
expect_out "cloned 2 blocks"
rm "$X"/*.clone

# An empty target and one of holes only (a VMM's fresh mem-path file) are taken.
: >"$X/pc.clone"
truncate -s 4M "$X/vga.clone"
expect_rc 0 "$MRSNAP" restore --clone --verify "$img" --ram pc.ram="$X/pc.clone" \
	--ram vga.ram="$X/vga.clone"
expect_out "the image verified first"
cmp -s "$X/pc.clone" "$R/pc.ram" || fail "the clone into an empty target differs"
cmp -s "$X/vga.clone" "$R/vga.ram" || fail "the clone into a target of holes differs"
rm "$X"/*.clone

# stale bytes: an image may hold bytes in a page it says is absent (page 1 was
# punched out of pc.ram); the clone must not show them.
cp --reflink=never "$img" "$X/stale.img"
pages_at=$(json "$T/new.json" '.blocks[0].pages_offset')
head -c 4096 /dev/urandom | dd of="$X/stale.img" bs=4096 seek=$((pages_at / 4096 + 1)) \
	conv=notrunc status=none
expect_rc 0 "$MRSNAP" verify "$X/stale.img"
expect_rc 0 "$MRSNAP" restore --clone "$X/stale.img" --ram pc.ram="$X/pc.clone" \
	--ram vga.ram="$X/vga.clone"
cmp -s "$X/pc.clone" "$R/pc.ram" || fail "stale bytes: a page absent from the image is not zero"
[ "$(datapages "$X/pc.clone")" = "$pc_present" ] || fail "stale bytes: not a hole"
rm "$X"/*.clone "$X/stale.img"

# Refusals: exit 3 (1 for a page that fails --verify), nothing written.
echo data >"$X/busy.ram"
before=$(listing "$X")
expect_rc 3 "$MRSNAP" restore --clone "$img" --ram pc.ram="$X/busy.ram" --ram vga.ram="$X/v.clone"
expect_err "target '$X/busy.ram' of block 'pc.ram' holds data: --clone writes only a new file"
[ "$(cat "$X/busy.ram")" = data ] || fail "a target with data was changed"
[ "$(listing "$X")" = "$before" ] || fail "a refused clone left: $(listing "$X")"
# Another filesystem than the image's.
before_t=$(listing "$T")
expect_rc 3 "$MRSNAP" restore --clone "$img" --ram pc.ram="$T/pc.clone" --ram vga.ram="$X/v.clone"
expect_err "target '$T/pc.clone' of block 'pc.ram' is on another filesystem than '$img'"
[ "$(listing "$T")" = "$before_t" ] || fail "a refused clone left: $(listing "$T")"
[ "$(listing "$X")" = "$before" ] || fail "a refused clone left: $(listing "$X")"
# A filesystem that does not share extents (ext4, tmpfs): image and target on it.
expect_rc 0 "$MRSNAP" snapshot -q "$R/t.img" $RAMS
before_r=$(listing "$R")
expect_rc 3 "$MRSNAP" restore --clone "$R/t.img" --ram pc.ram="$R/pc.clone" --ram vga.ram="$R/v.clone"
expect_err "cannot share the extents of '$R/t.img'"
[ "$(listing "$R")" = "$before_r" ] || fail "a refused clone left: $(listing "$R")"
rm "$R/t.img"
# A page that fails its checksum, with --verify: exit 1, no target made.
# The first non-zero byte of pc.ram is in a present page.
first=$(cmp "$R/pc.ram" /dev/zero 2>/dev/null | sed -n 's/.* byte \([0-9]*\).*/\1/p')
[ -n "$first" ] || fail "pc.ram is all zero"
cp --reflink=never "$img" "$X/bad.img"
flip_byte "$X/bad.img" $((pages_at + first - 1))
before=$(listing "$X")
expect_rc 1 "$MRSNAP" verify "$X/bad.img"
expect_rc 1 "$MRSNAP" restore --clone --verify "$X/bad.img" --ram pc.ram="$X/pc.clone" \
	--ram vga.ram="$X/v.clone"
expect_err "1 page did NOT match its checksum (block 'pc.ram', page"
expect_err "nothing was written"
[ "$(listing "$X")" = "$before" ] || fail "a clone that failed --verify left: $(listing "$X")"
rm "$X/bad.img" "$X/busy.ram"
exit 0
