#!/bin/sh
# A real Linux guest under QEMU (TCG), saved live and brought back whole:
# for a file and a memfd RAM backend, `mrsnap snapshot --qmp SOCK --live`
# leaves the source guest running and checking its memory; a new QEMU started
# with -incoming defer gets it back with `mrsnap restore --qmp SOCK2`, and the
# guest resumes where it was and keeps finding every page of its 160 MiB
# buffer as it left it (tests/guest/memcheck.c says how it checks).
#
# What it catches: a snapshot that misses pages dirtied during the rounds or
# the final round, RAM restored to the wrong place or incompletely, device
# state that does not match the RAM (the guest would report BAD pages, panic,
# or boot afresh), a source guest left stopped, a restored guest left paused.
#
# And that the check itself has teeth (last part): pages of RAM copied while
# the guest ran, a whole pass before it was stopped, restored among the rest
# of its RAM and its device state as they were when stopped, must make the
# guest report BAD pages; a harness that stopped seeing bad pages fails here.
# Seen failing: with memcheck's checks made to always pass, that part fails
# ("... pages from an earlier pass went unnoticed").
. "$top_srcdir/tests/qemu/lib.sh"

qemu_setup

# snapshot_live NAME IMAGE: a live snapshot of running guest NAME.
snapshot_live() {
	expect_rc 0 "$MRSNAP" snapshot --qmp "$T/$1.sock" --live -q "$2"
}

# restore_qmp NAME IMAGE: into guest NAME, waiting with -incoming defer.
restore_qmp() {
	expect_rc 0 "$MRSNAP" restore --qmp "$T/$1.sock" -q "$2"
}

# last_pass NAME: the number of the last pass guest NAME reported.
last_pass() {
	pass_lines "$1" 0 | tail -n 1 | cut -d' ' -f3
}

# save_and_bring_back BACKEND
save_and_bring_back() {
	local b=$1 mark before first
	boot_guest "src-$b" "$b"
	wait_ready "src-$b"
	wait_passes "src-$b" 2

	before=$(last_pass "src-$b")
	snapshot_live "src-$b" "$T/$b.img"
	expect_rc 0 "$MRSNAP" verify -q "$T/$b.img"
	# The source goes on: running, and its next passes (whole ones, after
	# the snapshot) find every page as they left it.
	expect_status "src-$b" running
	mark=$(log_lines "src-$b")
	wait_passes "src-$b" 3 "$mark"
	expect_all_ok "src-$b"
	kill_guest "src-$b"
	rm -f "$R/src-$b.ram"

	boot_guest "dst-$b" "$b" -incoming defer
	expect_status "dst-$b" inmigrate
	restore_qmp "dst-$b" "$T/$b.img"
	expect_status "dst-$b" running
	# The first two pass lines after the restore check every page as it was
	# restored (memcheck.c); the next two check every page as rewritten since.
	wait_passes "dst-$b" 4
	expect_all_ok "dst-$b"
	# Resumed, not booted again: no "ready", and it goes on counting from
	# where the source was when the snapshot began.
	! grep -aq '^memcheck ready' "$T/dst-$b.log" || fail "$b: the guest booted afresh"
	first=$(pass_lines "dst-$b" 0 | head -n 1 | cut -d' ' -f3)
	[ "$first" -ge "$before" ] || fail "$b: resumed at pass $first, before pass $before"
	kill_guest "dst-$b"
	echo "e2e: $b backend: snapshot after pass $before, resumed at pass $first, all ok"
}

save_and_bring_back file
save_and_bring_back memfd

# The teeth: pages restored from a copy of the RAM made while the guest ran.
# The whole RAM is copied while the guest runs; after two more pass lines (so
# a whole pass rewrote every page since) the guest is stopped and its RAM and
# device state saved as they are, consistent; then the pages of memcheck's
# buffer that it listed at boot ("memcheck frames") are put back from the
# early copy. The kernel's memory stays consistent, so the guest lives on:
# those pages are a pass behind the CPU state wherever it resumes
# (memcheck.c), so one of the first two pass lines must count them BAD; the
# third, after they were rewritten, must be ok again.
boot_guest torn file
wait_ready torn
wait_passes torn 1
cp "$R/torn.ram" "$T/early.ram" || fail "cannot copy the guest's RAM"
mark=$(log_lines torn)
wait_passes torn 2 "$mark"
qmp torn stop >/dev/null || fail "stop on the torn guest failed"
save_device_state torn "$T/torn.dev"
cp "$R/torn.ram" "$T/torn.ram" || fail "cannot copy the guest's RAM"
kill_guest torn
tr -d '\r' <"$T/torn.log" | grep -a '^memcheck frames [0-9]* [0-9]*$' >"$T/frames"
overlaid=0
while read -r _ _ first count; do
	dd if="$T/early.ram" of="$T/torn.ram" bs=4096 skip="$first" seek="$first" count="$count" \
		conv=notrunc status=none || fail "cannot put back frames $first+$count"
	overlaid=$((overlaid + count))
done <"$T/frames"
[ "$overlaid" -gt 0 ] || fail "memcheck listed no frames of its buffer"
boot_guest torn-dst file -incoming defer
cp "$T/torn.ram" "$R/torn-dst.ram" || fail "cannot write the restored guest's RAM"
load_device_state torn-dst "$T/torn.dev"
qmp torn-dst cont >/dev/null || fail "cont on the torn guest failed"
wait_passes torn-dst 3
pass_lines torn-dst 0 | head -n 2 | grep -q BAD ||
	fail "$overlaid pages from an earlier pass went unnoticed: $(pass_lines torn-dst 0 | head -n 2)"
pass_lines torn-dst 0 | sed -n 3p | grep -q ' ok ' ||
	fail "still bad pages a pass after they were rewritten: $(pass_lines torn-dst 0 | sed -n 3p)"
echo "e2e: $overlaid pages from an earlier pass caught: $(pass_lines torn-dst 0 | grep -m 1 BAD)"
kill_guest torn-dst
