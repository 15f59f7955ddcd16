#!/bin/sh
# Disks fill up and processes get killed: a full filesystem fails the
# snapshot clearly and leaves nothing; kill -9 at any moment leaves either no
# image or the previous complete one, untouched; two snapshots to one image
# at once: one wins, the other fails clearly.
. "$top_srcdir/tests/cli/lib.sh"

# ---- ENOSPC on a small tmpfs, while writing pages ---------------------------
mkdir "$T/small"
if mount -t tmpfs -o size=2m,mode=0700 mrsnap-test "$T/small" 2>/dev/null; then
	"$MKRAM" "$R/big.ram" 8M 1 0 || fail "mkram"
	expect_rc 3 "$MRSNAP" snapshot "$T/small/vm.img" --ram pc.ram="$R/big.ram"
	expect_err "No space left on device"
	expect_err "write to image '$T/small/"
	expect_err "(block 'pc.ram', page 0x"
	[ -z "$(ls -A "$T/small")" ] || fail "a snapshot that ran out of space left: $(ls -A "$T/small")"
	umount "$T/small"
else
	echo "note: cannot mount a tmpfs here; ENOSPC on pages not tested (test_channel covers it when it can)" >&2
fi

# ---- a restore target that cannot be created -------------------------------
"$MKRAM" "$R/a.ram" 16M 2 || fail "mkram"
expect_rc 0 "$MRSNAP" snapshot "$T/vm.img" --ram pc.ram="$R/a.ram"
expect_rc 3 "$MRSNAP" restore "$T/vm.img" --ram pc.ram="$T/no/such/dir/target"
expect_err "cannot open target '$T/no/such/dir/target'"

# ---- an operation the system does not support: exit 3, not "damaged" -------
# ENOTSUP and EOPNOTSUPP are one errno on Linux; an image of another format
# version has a code of its own (damage.sh), so a refused operation is exit 3
# like any other I/O error. A build that mapped -ENOTSUP to exit 1 (as if the
# image were damaged) fails here.
run "$FAILSYS" io_uring_setup EOPNOTSUPP true
if [ "$rc" = 77 ]; then
	echo "note: no seccomp filters here; EOPNOTSUPP not tested" >&2
else
	expect_rc 3 "$FAILSYS" io_uring_setup EOPNOTSUPP "$MRSNAP" verify "$T/vm.img"
	expect_err "io_uring is not available: Operation not supported"
	expect_rc 3 "$FAILSYS" flock EOPNOTSUPP "$MRSNAP" snapshot "$T/unsup.img" --ram pc.ram="$R/a.ram"
	expect_err "Operation not supported"
	[ -e "$T/unsup.img" ] && fail "a snapshot that failed left '$T/unsup.img'"
	expect_rc 0 "$MRSNAP" verify -q "$T/vm.img"
fi

# ---- concurrency: two snapshots to the same image at once ------------------
rm -f "$T/vm.img"
"$MRSNAP" snapshot -q "$T/vm.img" --ram pc.ram="$R/a.ram" 2>"$T/err1" &
p1=$!
"$MRSNAP" snapshot -q "$T/vm.img" --ram pc.ram="$R/a.ram" 2>"$T/err2" &
p2=$!
wait $p1
rc1=$?
wait $p2
rc2=$?
[ $((rc1 + rc2)) = 3 ] || fail "two snapshots at once exited $rc1 and $rc2, not 0 and 3"
cat "$T/err1" "$T/err2" | grep -qE "exists|appeared while the snapshot ran" ||
	fail "the losing snapshot did not say why: $(cat "$T/err1" "$T/err2")"
expect_rc 0 "$MRSNAP" verify -q "$T/vm.img"
ls -a "$T" | grep -q mrsnap-tmp && fail "a temporary file was left"

# ---- kill -9 at random moments ---------------------------------------------
# A previous complete image stays where it is; each run replaces it with
# --force, and is killed somewhere between start and (a little past) its
# usual end: in setup, rounds, metadata, fsync or rename. Afterwards there is
# either the old image, byte for byte, or a new complete one that verifies;
# never anything else. A killed run's temporary file is removed by the next.
"$MKRAM" "$R/k.ram" 64M 3 || fail "mkram"
expect_rc 0 "$MRSNAP" snapshot "$T/k.img" --ram pc.ram="$R/k.ram"
cp "$T/k.img" "$T/k.before"
start=$(date +%s%N)
expect_rc 0 "$MRSNAP" snapshot --force "$T/k2.img" --ram pc.ram="$R/k.ram"
took_us=$((($(date +%s%N) - start) / 1000))
rm -f "$T/k2.img"

kills=0
replaced=0
leftovers=0
# info_agrees FILE: info's verdict on FILE is verify's. Verify passes: info
# says complete. Verify says incomplete: info describes it as incomplete.
# Verify refuses it otherwise: so does info. Returns verify's exit code.
# (A build where info always said complete, or never did, fails here.)
info_agrees() {
	local v i
	"$MRSNAP" verify -q "$1" >/dev/null 2>"$T/verify.err"
	v=$?
	"$MRSNAP" info "$1" >"$T/info.out" 2>"$T/info.err"
	i=$?
	if [ $v = 0 ]; then
		[ $i = 0 ] && grep -q "^complete:   yes" "$T/info.out" ||
			fail "verify passes '$1', but info exits $i and says: $(cat "$T/info.out" "$T/info.err")"
	elif grep -q "the image is incomplete" "$T/verify.err"; then
		[ $i = 0 ] && grep -q "^complete:   NO" "$T/info.out" ||
			fail "verify says '$1' is incomplete, but info exits $i and says: $(cat "$T/info.out" "$T/info.err")"
	else
		[ $i = 1 ] ||
			fail "verify refuses '$1' ($(cat "$T/verify.err")), but info exits $i"
	fi
	return $v
}

crash_check() {
	# Old or new, the image in place is complete and verifies: the old one
	# byte for byte was checked already, so only a changed one is checked.
	if ! cmp -s "$T/k.img" "$T/k.before"; then
		info_agrees "$T/k.img" ||
			fail "after kill -9 ($1), '$T/k.img' is neither the old image nor a complete new one"
		replaced=$((replaced + 1))
		cp "$T/k.img" "$T/k.before"
	fi
	# A leftover temporary file is whatever it is, as long as info and verify agree on it.
	for tmp in "$T"/.k.img.mrsnap-tmp.*; do
		[ -e "$tmp" ] || continue
		info_agrees "$tmp" || :
		leftovers=$((leftovers + 1))
	done
}
# The image every run starts from verifies (crash_check then checks only a changed one).
info_agrees "$T/k.before" || fail "the first image does not verify"

# start_and_kill DELAY_US CMD...: run CMD, kill -9 it after DELAY_US microseconds.
start_and_kill() {
	local delay=$1
	shift
	"$@" >/dev/null 2>&1 &
	pid=$!
	sleep "$(awk -v d="$delay" 'BEGIN { printf "%.6f", d / 1e6 }')"
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	[ $? = 137 ] && kills=$((kills + 1)) # it really died of SIGKILL
	return 0
}

# kill_runs N KIND CMD...: kill -9 N runs of CMD at moments spread over 0 to
# 1.2 x the estimated duration. A run that finishes before its kill does not
# count, and makes the estimate shorter: the machine may be faster (or less
# busy) than when it was measured. No timing is asserted, only outcomes.
kill_runs() {
	local want=$1 kind=$2 est=$took_us got=0 tries=0
	shift 2
	while [ $got -lt "$want" ] && [ $tries -lt $((want * 5)) ]; do
		before=$kills
		start_and_kill $((est * (tries * 7 % 13) / 10)) "$@"
		if [ $kills = "$before" ]; then
			est=$((est * 4 / 5))
		else
			got=$((got + 1))
		fi
		[ -z "${gpid:-}" ] || kill -CONT "$gpid" # kill -9 leaves no one to thaw: a supervisor would
		crash_check "$kind, run $tries"
		tries=$((tries + 1))
	done
	[ $got -ge "$want" ] || fail "$kind: only $got of $tries runs were still running when killed"
}

gpid=""
kill_runs 16 non-live "$MRSNAP" snapshot --force -j 2 "$T/k.img" --ram pc.ram="$R/k.ram"

# Live, with a guest writing.
start_guest "$R/k.ram" --working-set 5
kill_runs 8 live "$MRSNAP" snapshot --force --live --freeze-pid $gpid "$T/k.img" --ram pc.ram="$R/k.ram"
kill $gpid
echo "kill -9: $kills runs killed; $replaced completed images replaced the old one;" \
	"$leftovers temporary files checked" >&2

# The next snapshot to the same image removes what the killed ones left.
expect_rc 0 "$MRSNAP" snapshot --force "$T/k.img" --ram pc.ram="$R/k.ram"
ls -a "$T" | grep -q 'k.img.mrsnap-tmp' && fail "temporary files of killed snapshots remain"
exit 0
