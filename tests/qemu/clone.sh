#!/bin/sh
# A real guest restored with --clone onto XFS resumes and passes its own
# memory checks (issue 14). A guest whose RAM is a file backend on an XFS
# filesystem with reflink (a loop device) is saved live with
# `snapshot --qmp --live`, then again against that image with `--base`;
# each image is brought back into a new QEMU (-incoming defer) whose
# mem-path is a new, empty file on the same XFS, with
# `restore --qmp --clone`: nothing is copied, the guest reads its pages
# from the image's shared extents, resumes where it was and finds every page
# of memcheck's buffer as it left it. A memfd backend is refused, plainly,
# with nothing written.
#
# What it catches: a clone that leaves the RAM file without the image's
# pages (QEMU then cannot load its device state, or the guest reports BAD
# pages, panics or boots afresh); an image against a base that does not
# stand alone (its base is deleted before it is verified and restored) or
# lost what the guest changed since the base (BAD pages after its restore);
# --clone into a memfd backend that fails without saying why, or falls back
# to writing it.
# Seen failing, each once, by breaking the code on purpose:
#  - mrs_clone_blocks() in src/engine/clone_restore.c made to return 0 at
#    once (nothing cloned): the first restore fails, QEMU stopping reading
#    its device state over RAM of zeros;
#  - check_not_memory() made to return 0: the memfd refusal says "cannot
#    find the directory of target ..." and names no memory backend.
# (cow.sh's teeth cover the base's pages trusted when they changed.)
. "$top_srcdir/tests/qemu/lib.sh"
DATABYTES=$top_builddir/tests/tools/databytes

qemu_setup
# Two guests' RAM files (256 MiB each, a guest rewrites 160 MiB of its own)
# and two images on one filesystem, with room to spare.
X=$T/xfs
xfs_mount "$X" 2G
# The guests' file backends ($R/NAME.ram, lib.sh) are on the XFS.
rmdir "$R"
R=$X

# last_pass NAME: the number of the last pass guest NAME reported.
last_pass() {
	pass_lines "$1" 0 | tail -n 1 | cut -d' ' -f3
}

# json FILE PATH: one value of a --json document.
json() {
	"$JSONCHECK" "$2" <"$1" || fail "no $2 in $1: $(cat "$1")"
}

# restore_clone NAME IMAGE BEFORE: restore IMAGE with --clone into a new
# guest NAME whose mem-path is a new file on the XFS; it must resume from
# pass BEFORE or later and pass 4 checks with no BAD (the first two check
# every page as restored, memcheck.c).
restore_clone() {
	local name=$1 img=$2 before=$3 first
	[ ! -e "$R/$name.ram" ] || fail "$R/$name.ram exists before its QEMU starts"
	boot_guest "$name" file -incoming defer
	expect_status "$name" inmigrate
	expect_rc 0 "$MRSNAP" restore --qmp "$T/$name.sock" --clone --json "$img"
	[ "$(json "$T/out" .cloned)" = true ] || fail "$name: not cloned: $(cat "$T/out")"
	[ "$(json "$T/out" .pages_read)" = 0 ] || fail "$name: a clone read pages"
	[ "$(json "$T/out" .resumed)" = true ] || fail "$name: not resumed: $(cat "$T/out")"
	expect_status "$name" running
	wait_passes "$name" 4
	expect_all_ok "$name"
	! grep -aq '^memcheck ready' "$T/$name.log" || fail "$name: the guest booted afresh"
	first=$(pass_lines "$name" 0 | head -n 1 | cut -d' ' -f3)
	[ "$first" -ge "$before" ] || fail "$name: resumed at pass $first, before pass $before"
	kill_guest "$name"
	echo "clone: $img: snapshot after pass $before, resumed at pass $first, all ok"
}

# ---- the source: saved live, then again against the first image -------------
boot_guest src file
wait_ready src
wait_passes src 2
before1=$(last_pass src)
expect_rc 0 "$MRSNAP" snapshot --qmp "$T/src.sock" --live -q "$X/full.img"
mark=$(log_lines src)
# Two whole passes since: every page of the buffer rewritten after the first image.
wait_passes src 2 "$mark"
before2=$(last_pass src)
expect_rc 0 "$MRSNAP" snapshot --qmp "$T/src.sock" --live --json --base "$X/full.img" "$X/second.img"
cp "$T/out" "$T/second.json"
[ "$(json "$T/second.json" .base.shared)" = true ] ||
	fail "the second image does not share the base's extents: $(cat "$T/second.json")"
expect_status src running
kill_guest src
rm -f "$R/src.ram"

# ---- the first image, cloned into a new guest --------------------------------
restore_clone dst1 "$X/full.img" "$before1"
rm -f "$R/dst1.ram"

# ---- a memfd backend: refused, nothing written, the QEMU still waiting -------
boot_guest mfd memfd -incoming defer
expect_status mfd inmigrate
expect_rc 3 "$MRSNAP" restore --qmp "$T/mfd.sock" --clone "$X/full.img"
expect_err "of block 'pc.ram' is memory (tmpfs or hugetlbfs: a memfd backend"
expect_err "nothing was written"
expect_status mfd inmigrate
# QEMU's memfd itself, as the error names it: still no data (a fallback to
# copying would fill it).
memfd=$(sed -n "s|.*target '\(/proc/$(guest_pid mfd)/fd/[0-9]*\)' of block 'pc.ram'.*|\1|p" "$T/err")
[ -n "$memfd" ] || fail "the refusal does not name QEMU's memfd: $(cat "$T/err")"
[ "$("$DATABYTES" "$memfd")" = 0 ] || fail "the refused clone wrote QEMU's memfd"
kill_guest mfd

# ---- the image against a base, its base gone ---------------------------------
rm "$X/full.img"
expect_rc 0 "$MRSNAP" verify -q "$X/second.img"
restore_clone dst2 "$X/second.img" "$before2"
