#!/bin/sh
# Live snapshots of a guest that keeps writing: the image restores to exactly
# the memory the guest had when frozen, the guest is thawed on every way out,
# and the rounds end even when the guest dirties faster than the disk writes.
. "$top_srcdir/tests/cli/lib.sh"

"$MKRAM" "$R/ram" 256M 1 || fail "mkram"

# The freeze command stops the guest and waits until it really is stopped;
# the thaw command first copies the frozen RAM as the reference, then resumes.
freeze_cmd() {
	echo "kill -STOP $1 && while [ \"\$(sed 's/.*) //' /proc/$1/stat | cut -c1)\" != T ]; do :; done"
}
thaw_cmd() {
	echo "cp $R/ram $R/ref && kill -CONT $1"
}

# live_check J [snapshot options]: one live snapshot, restored and compared.
live_check() {
	local j=$1
	shift
	rm -f "$T/vm.img" "$R/ref" "$R/out"
	expect_rc 0 "$MRSNAP" snapshot --live -j "$j" --json "$@" "$T/vm.img" --ram pc.ram="$R/ram" \
		--freeze-cmd "$(freeze_cmd $gpid)" --thaw-cmd "$(thaw_cmd $gpid)"
	cp "$T/out" "$T/snap.json"
	expect_running $gpid
	expect_rc 0 "$MRSNAP" restore -q "$T/vm.img" --ram pc.ram="$R/out"
	cmp -s "$R/ref" "$R/out" || fail "$guest_kind: live snapshot (-j $j $*) differs from the frozen guest"
	grep -q '"frozen": true' "$T/snap.json" || fail "no frozen round reported"
	grep -q '"downtime_seconds"' "$T/snap.json" || fail "no downtime reported"
}

# Three live snapshots each with -j 1 and -j 4, then stop the guest.
live_loop() {
	for j in 1 4; do
		for i in 1 2 3; do
			live_check $j
		done
	done
	kill $gpid
}

# A guest writing as fast as it can on 5% of its pages, with some pages
# turning zero again and some A-B-A changes.
guest_kind="mixed writer"
start_guest "$R/ram" --working-set 5
live_loop

# Every change A-B-A: a page turns B and back to exactly A, over and over.
#
# This is the test that catches hashing one read of a page and writing
# another (instead of hashing exactly the bytes written): the write may catch
# B while the hash saw A; every later round then sees A, its hash matches,
# and the image keeps B. Tried by making build_save (then in
# src/io/channel_work.c; now build_write() in src/io/transfer.c, which asks
# save_page_read() in src/io/policy_save.c) read each dirty page again after
# hashing it and write that second copy:
# this loop failed on its first run in three tries out of three ("A-B-A
# writer: live snapshot (-j 1 ) differs from the frozen guest"), while the
# mixed writer above still passed.
guest_kind="A-B-A writer"
start_guest "$R/ram" --working-set 1 --mode aba --hold 50
live_loop

# Convergence: a guest dirtying all its memory as fast as it can, faster
# than any round can write it: the rounds still end, and say why.
"$MKRAM" "$R/ram" 256M 3 || fail "mkram"
guest_kind="fast writer"
start_guest "$R/ram" --working-set 100 --mode random
live_check 2 --max-rounds 5 --downtime 1
grep -qE '"stop_reason": "(max-rounds|no-progress)"' "$T/snap.json" ||
	fail "the rounds did not end by max-rounds or no-progress: $(grep stop_reason "$T/snap.json")"
rounds=$(grep -c '"round":' "$T/snap.json")
[ "$rounds" -le 5 ] || fail "$rounds rounds with --max-rounds 5"

# A freeze command that fails: exit 3, no image, the thaw command still runs.
rm -f "$T/vm.img"
expect_rc 3 "$MRSNAP" snapshot --live "$T/vm.img" --ram pc.ram="$R/ram" \
	--freeze-cmd "kill -STOP $gpid; exit 7" --thaw-cmd "kill -CONT $gpid"
expect_err "cannot freeze the guest: the freeze command exited with status 7"
[ -e "$T/vm.img" ] && fail "a failed freeze left an image"
sleep 0.05
expect_running $gpid

# SIGINT while frozen: the freeze command sends it to mrsnap ($PPID).
expect_rc 3 "$MRSNAP" snapshot --live "$T/vm.img" --ram pc.ram="$R/ram" \
	--freeze-cmd "$(freeze_cmd $gpid) && kill -INT \$PPID" --thaw-cmd "kill -CONT $gpid"
expect_err "interrupted by SIGINT"
[ -e "$T/vm.img" ] && fail "an interrupted snapshot left an image"
expect_running $gpid

# SIGTERM during round 2 (slow rounds: one channel, one request at a time).
# How fast the rounds go is up to the machine: on a fast one they can all
# end before round 2 is seen, on a slow one the signal can land after the
# image is in place (exit 0, an image: too late, not a bug). Either is an
# attempt that did not test anything, and is made again, up to 5 times; a
# signal that lands mid-round and does not give exit 3, or leaves an image,
# fails at once.
attempt=0
while :; do
	attempt=$((attempt + 1))
	[ $attempt -le 5 ] || fail "SIGTERM never landed during round 2 in 5 attempts"
	rm -f "$T/vm.img"
	"$MRSNAP" snapshot --live -j 1 --depth 1 --progress --max-rounds 50 --downtime 1 \
		"$T/vm.img" --ram pc.ram="$R/ram" --freeze-pid $gpid >"$T/out" 2>"$T/err" &
	spid=$!
	# Wait for round 2 however slow the machine is (a shared one under load, a
	# sanitizer build): the bound is only against a hang, at 10 minutes.
	n=0
	while ! grep -q "round 2" "$T/err" && kill -0 $spid 2>/dev/null && [ $n -lt 60000 ]; do
		sleep 0.01
		n=$((n + 1))
	done
	if ! grep -q "round 2" "$T/err"; then
		wait $spid
		rc=$?
		[ $n -lt 60000 ] || fail "round 2 never started in 10 minutes (stderr: $(tail -c 300 "$T/err"))"
		echo "live.sh: the snapshot ended (exit $rc) before round 2 was seen; again" >&2
		continue
	fi
	kill -TERM $spid
	wait $spid
	rc=$?
	if [ $rc = 0 ] && [ -e "$T/vm.img" ]; then
		echo "live.sh: SIGTERM came after the image was in place; again" >&2
		continue
	fi
	break
done
[ $rc = 3 ] || fail "SIGTERM during round 2: exit $rc, not 3"
expect_err "interrupted by SIGTERM"
[ -e "$T/vm.img" ] && fail "an interrupted snapshot left an image"
ls -a "$T" | grep -q mrsnap-tmp && fail "an interrupted snapshot left a temporary file"
expect_running $gpid

# Without --json, a live snapshot reports each round as it ends.
expect_rc 0 "$MRSNAP" snapshot --live --max-rounds 3 --freeze-pid $gpid "$T/vm.img" --ram pc.ram="$R/ram"
expect_err "round 0: 65536 pages scanned"
expect_err "(frozen)"
expect_out "live: "
expect_out "downtime"
expect_out "(estimated "
rm -f "$T/vm.img"

# The estimate the rounds ended on is reported. With --max-rounds 2 the
# rounds end after round 0 whatever the timing, and the estimate is round
# 0's duration (the policy's own tables: tests/unit/test_live.c). Catches
# a report that does not carry the policy's estimate (seen failing with
# fill_report() not copying it: "estimate 0.000000, round 0 took 0.274481").
expect_rc 0 "$MRSNAP" snapshot --live --max-rounds 2 --json --freeze-pid $gpid "$T/vm.img" \
	--ram pc.ram="$R/ram"
est=$(sed -n 's/.*"estimated_downtime_seconds": \([0-9.]*\).*/\1/p' "$T/out")
round0=$(sed -n 's/.*"duration_seconds": \([0-9.]*\).*/\1/p' "$T/out" | head -n 1)
grep -q '"stop_reason": "max-rounds"' "$T/out" || fail "--max-rounds 2 did not end by max-rounds"
[ -n "$est" ] && [ "$est" = "$round0" ] || fail "estimate $est, round 0 took $round0"
rm -f "$T/vm.img"

# --freeze-pid for a non-live snapshot: frozen for the pass, thawed after.
expect_rc 0 "$MRSNAP" snapshot --freeze-pid $gpid "$T/vm.img" --ram pc.ram="$R/ram"
expect_out "guest frozen for"
expect_running $gpid
expect_rc 0 "$MRSNAP" verify -q "$T/vm.img"

# --freeze-cgroup, v1 freezer and v2 cgroup.freeze, where this machine has
# them. The command freezer runs inside the cgroup's (freezers freeze in the
# order pid, cgroup, command and thaw in reverse), so its thaw command copies
# the RAM while the cgroup is still frozen: the reference.
cgroup_check() {
	local dir=$1
	rm -f "$T/vm.img" "$R/ref"
	expect_rc 0 "$MRSNAP" snapshot --live --freeze-cgroup "$dir" "$T/vm.img" --ram pc.ram="$R/ram" \
		--freeze-cmd true --thaw-cmd "cp $R/ram $R/ref"
	expect_rc 0 "$MRSNAP" restore -q "$T/vm.img" --ram pc.ram="$R/out"
	cmp -s "$R/ref" "$R/out" || fail "live snapshot frozen by cgroup '$dir' differs from the frozen guest"
	expect_running $gpid
}
cgroups=0
for root in /sys/fs/cgroup/freezer /sys/fs/cgroup/unified /sys/fs/cgroup; do
	[ -d "$root" ] || continue
	dir="$root/mrsnap-test.$$"
	mkdir "$dir" 2>/dev/null || continue
	if { [ -e "$dir/cgroup.freeze" ] || [ -e "$dir/freezer.state" ]; } &&
		echo $gpid >"$dir/cgroup.procs" 2>/dev/null; then
		cgroup_check "$dir"
		cgroups=$((cgroups + 1))
		echo $gpid >"$root/cgroup.procs" 2>/dev/null
	fi
	rmdir "$dir" 2>/dev/null
done
if [ $cgroups -gt 0 ]; then
	echo "--freeze-cgroup tested in $cgroups hierarchies" >&2
else
	echo "note: no freezable cgroup here; --freeze-cgroup not tested" >&2
fi

# --live without a way to freeze is a usage error.
expect_rc 2 "$MRSNAP" snapshot --live "$T/x.img" --ram pc.ram="$R/ram"
expect_err "--live needs a way to freeze the guest"
kill $gpid
exit 0
