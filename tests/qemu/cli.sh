#!/bin/sh
# snapshot --qmp and restore --qmp against a real QEMU, without a guest
# kernel (the firmware alone runs; what is checked here is mrsnap's side):
# the usage rules, refusals that name what is wrong, whether the guest runs
# afterwards (--paused, a guest paused before, a failure after stop), and a
# restore whose QEMU does not match the image. tests/qemu/e2e.sh checks the
# guest's memory with a real Linux guest.
#
# What it catches: --paused not honoured, or honoured on failure (a failed
# snapshot must resume the guest); a guest paused before mrsnap came being
# resumed; non-shared RAM saved; a restore into a QEMU of other RAM sizes, or
# one not waiting with -incoming defer, going ahead (QEMU would fail the load
# and exit). Seen failing: with the freezer's cont taken out, the failure
# case reports 'paused'; with the share check taken out, the ram backend is
# saved.
. "$top_srcdir/tests/cli/lib.sh"

QMP=$top_builddir/tests/tools/qmp
QEMU=${MRS_QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || skip "$QEMU not found (scripts/deps build installs qemu-system-x86)"

# start NAME MIB BACKEND [QEMU options]: a QEMU whose RAM is BACKEND (file, memfd, ram).
start() {
	local name=$1 mib=$2 backend=$3 obj i
	shift 3
	case "$backend" in
	file) obj="memory-backend-file,id=pc.ram,size=${mib}M,mem-path=$R/$name.ram,share=on" ;;
	memfd) obj="memory-backend-memfd,id=pc.ram,size=${mib}M,share=on" ;;
	ram) obj="memory-backend-ram,id=pc.ram,size=${mib}M" ;;
	esac
	"$QEMU" -accel tcg -m "${mib}M" -nodefaults -display none -object "$obj" \
		-machine memory-backend=pc.ram -qmp "unix:$T/$name.sock,server=on,wait=off" \
		"$@" 2>"$T/$name.err" &
	echo $! >"$T/$name.pid"
	GUESTS="$GUESTS $!"
	for i in $(seq 1 600); do
		[ -S "$T/$name.sock" ] && "$QMP" "$T/$name.sock" >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$T/$name.pid")" 2>/dev/null || fail "QEMU $name exited: $(cat "$T/$name.err")"
		sleep 0.1
	done
	fail "QEMU $name did not open its QMP socket"
}

# expect_caps_off NAME WHAT: QEMU NAME's x-ignore-shared is off (as QEMU starts).
expect_caps_off() {
	"$QMP" "$T/$1.sock" query-migrate-capabilities | grep -o '{[^}]*x-ignore-shared[^}]*}' >"$T/caps" ||
		fail "$2: no x-ignore-shared in query-migrate-capabilities"
	grep -q true "$T/caps" && fail "$2: x-ignore-shared left on in QEMU $1: $(cat "$T/caps")"
	return 0
}

status() {
	"$QMP" "$T/$1.sock" query-status | sed 's/.*"status": *"\([a-z-]*\)".*/\1/'
}

expect_status() {
	local s
	s=$(status "$1")
	[ "$s" = "$2" ] || fail "$3: QEMU $1 is '$s', expected '$2'"
}

# Usage.
expect_rc 2 "$MRSNAP" snapshot --paused "$T/x.img" --ram pc.ram=/dev/null
expect_err "--paused is for --qmp"
expect_rc 2 "$MRSNAP" restore --paused "$T/x.img"
expect_err "--paused is for --qmp"
expect_rc 3 "$MRSNAP" snapshot --qmp "$T/nothing.sock" "$T/x.img"
expect_err "QMP socket '$T/nothing.sock'"
[ -e "$T/x.img" ] && fail "a snapshot that could not reach QEMU left an image"

# Not shared: refused by name, nothing written, the guest never stopped.
start priv 64 ram
expect_rc 2 "$MRSNAP" snapshot --qmp "$T/priv.sock" "$T/priv.img"
expect_err "memory backend 'pc.ram' is a memory-backend-ram"
[ -e "$T/priv.img" ] && fail "RAM that is not shared was saved"
expect_status priv running "after the refusal"

# --paused leaves it paused; without it, it runs; paused before: left so.
start src 64 file
expect_rc 0 "$MRSNAP" snapshot --qmp "$T/src.sock" --paused "$T/a.img"
expect_out "device state:"
expect_out "left paused (--paused)"
expect_status src postmigrate "--paused"
"$QMP" "$T/src.sock" cont >/dev/null || fail "cont failed"

# The migration capabilities mrsnap sets are put back, after a good
# snapshot and after one refused before it began (the image exists): left
# on, x-ignore-shared makes the user's next migrate carry no RAM. Seen
# failing with the capabilities set at connect and never put back.
expect_caps_off src "after a good snapshot"
expect_rc 3 "$MRSNAP" snapshot --qmp "$T/src.sock" "$T/a.img"
expect_err "exists"
expect_caps_off src "after a snapshot refused because the image exists"

# A --ram override that is not the file QEMU maps is refused (a copy would
# give an image that verifies and a broken guest), naming what QEMU maps;
# and an IMAGE that is QEMU's RAM file is never renamed over it. Seen
# failing: without the checks, both snapshots succeeded (the second
# replaced the running guest's RAM with the image).
cp "$R/src.ram" "$T/copy.ram"
expect_rc 2 "$MRSNAP" snapshot --qmp "$T/src.sock" --ram pc.ram="$T/copy.ram" "$T/copy.img"
expect_err "block 'pc.ram': '$T/copy.ram' is not a file QEMU"
expect_err "mem-path '$R/src.ram'"
[ -e "$T/copy.img" ] && fail "a snapshot of a file QEMU does not map left an image"
expect_rc 2 "$MRSNAP" snapshot --qmp "$T/src.sock" --force "$R/src.ram"
expect_err "is the file of block 'pc.ram'"
expect_status src running "after the refused snapshot onto its RAM file"

# A failure after stop resumes the guest, --paused or not: an image on a
# filesystem with no room for the pages (non-live: written while stopped).
mkdir "$T/small"
trap 'umount "$T/small" 2>/dev/null; cleanup' EXIT
if mount -t tmpfs -o size=512k tmpfs "$T/small" 2>/dev/null; then
	# Pages no tmpfs of 512 KiB holds, high in RAM where the firmware is not.
	dd if=/dev/urandom of="$R/src.ram" bs=1M seek=32 count=8 conv=notrunc status=none
	for paused in "" --paused; do
		expect_rc 3 "$MRSNAP" snapshot --qmp "$T/src.sock" $paused "$T/small/c.img"
		expect_err "No space left on device"
		expect_status src running "a failed snapshot ($paused)"
	done
	umount "$T/small"
else
	echo "qemu/cli: no tmpfs mount here (not root?): the failure after stop is not tried"
fi

expect_rc 0 "$MRSNAP" snapshot --qmp "$T/src.sock" --live --json "$T/b.img"
[ "$("$JSONCHECK" .devstate.producer <"$T/out")" = "QEMU $("$QEMU" --version | sed -n 's/.*version \([0-9.]*\).*/\1/p')" ] ||
	fail "the producer is not QEMU's version: $(cat "$T/out")"
expect_status src running "a live snapshot"
[ "$("$JSONCHECK" .guest_state <"$T/out")" = running ] || fail "guest_state of a running guest: $(cat "$T/out")"
# A signal while the guest is stopped (sent by a freeze command, which runs
# after QEMU's stop): no image, and the guest runs again, --paused or not.
# Catches a --qmp snapshot interrupted while stopped leaving the guest
# stopped; seen failing (mrsnap killed: exit 130) with the signal
# handlers of src/cli/progress.c not installed.
for sig in INT TERM; do
	for paused in "" --paused; do
		expect_rc 3 "$MRSNAP" snapshot --qmp "$T/src.sock" --live $paused "$T/sig.img" \
			--freeze-cmd "kill -$sig \$PPID" --thaw-cmd true
		expect_err "interrupted by SIG$sig; no image was written"
		[ -e "$T/sig.img" ] && fail "SIG$sig while stopped ($paused) left an image"
		expect_status src running "SIG$sig while stopped ($paused)"
	done
done
"$QMP" "$T/src.sock" stop >/dev/null || fail "stop failed"
# Paused before: said so (not "guest frozen for N ms"), in --json too.
# Seen failing: the summary said "guest frozen for 0.3 ms".
expect_rc 0 "$MRSNAP" snapshot --qmp "$T/src.sock" --force "$T/b.img"
expect_out "the guest was paused before mrsnap came and is left paused"
grep -q "frozen for" "$T/out" && fail "a guest paused before is said to be frozen by mrsnap"
# QEMU is now in postmigrate and refuses another migrate: refused before
# any RAM is read (it failed at migrate before).
expect_rc 2 "$MRSNAP" snapshot --qmp "$T/src.sock" --force "$T/b.img"
expect_err "status 'postmigrate'"
"$QMP" "$T/src.sock" cont >/dev/null || fail "cont failed"
"$QMP" "$T/src.sock" stop >/dev/null || fail "stop failed"
expect_rc 0 "$MRSNAP" snapshot --qmp "$T/src.sock" --json --force "$T/b.img"
[ "$("$JSONCHECK" .guest_state <"$T/out")" = paused ] && [ "$("$JSONCHECK" .guest_paused_before <"$T/out")" = true ] ||
	fail "guest_state/guest_paused_before of a guest paused before: $(cat "$T/out")"
s=$(status src)
[ "$s" = paused ] || [ "$s" = postmigrate ] || fail "a guest paused before was resumed ('$s')"
"$QMP" "$T/src.sock" cont >/dev/null || fail "cont failed"

# Restore: refused before anything is written when QEMU does not match.
start other 128 file -incoming defer
expect_rc 2 "$MRSNAP" restore --qmp "$T/other.sock" "$T/a.img"
expect_err "block 'pc.ram' is 67108864 bytes in the image, 134217728 in QEMU"
expect_status other inmigrate "after a refused restore"
# A snapshot of a QEMU waiting for incoming state is refused before any RAM
# is read (it used to read it all and fail at migrate).
expect_rc 2 "$MRSNAP" snapshot --qmp "$T/other.sock" "$T/in.img"
expect_err "QEMU is waiting for incoming state (status 'inmigrate'"
[ -e "$T/in.img" ] && fail "a snapshot of a QEMU in inmigrate left an image"
start notwaiting 64 file
expect_rc 2 "$MRSNAP" restore --qmp "$T/notwaiting.sock" "$T/a.img"
expect_err "not waiting for incoming state"

# A backend's file removed after QEMU started: refused, nothing created
# (restore wrote a new file QEMU never saw, then fed it the device state).
start gone 64 file -incoming defer
rm -f "$R/gone.ram"
expect_rc 2 "$MRSNAP" restore --qmp "$T/gone.sock" "$T/a.img"
expect_err "does not map '$R/gone.ram'"
[ -e "$R/gone.ram" ] && fail "restore created a file QEMU does not map"
expect_status gone inmigrate "after a refused restore"

# And one that does: memfd this time; --paused leaves the guest paused.
start dst 64 memfd -incoming defer
# A target QEMU does not map: refused before anything is written (RAM
# loaded elsewhere, then the device state, would kill QEMU).
expect_rc 2 "$MRSNAP" restore --qmp "$T/dst.sock" --ram pc.ram="$T/elsewhere.ram" "$T/a.img"
expect_err "does not map '$T/elsewhere.ram', the target of its backend 'pc.ram'"
[ -e "$T/elsewhere.ram" ] && fail "a refused restore created its target"
expect_status dst inmigrate "after a restore refused for its target"
expect_rc 0 "$MRSNAP" restore --qmp "$T/dst.sock" --paused "$T/a.img"
expect_out "loaded into QEMU"
expect_status dst paused "restore --paused"
"$QMP" "$T/dst.sock" cont >/dev/null || fail "cont failed"
expect_status dst running "after cont"
# Restored already: said so, not "start it with -incoming defer".
expect_rc 2 "$MRSNAP" restore --qmp "$T/dst.sock" "$T/a.img"
expect_err "its status is 'running': it has a guest already, restored before"

# A snapshot of a memfd records no source path (/proc/PID/fd/N named a
# running QEMU's memory, which a plain restore then offered to overwrite
# with --force); a restore without --qmp asks for --ram or --qmp. Seen
# failing: the image recorded /proc/PID/fd/N and restore said "symbolic link;
# use --force".
expect_rc 0 "$MRSNAP" snapshot --qmp "$T/dst.sock" "$T/mf.img"
expect_rc 0 "$MRSNAP" info "$T/mf.img"
grep -q "/proc/" "$T/out" && fail "a memfd snapshot recorded a /proc path: $(cat "$T/out")"
expect_rc 2 "$MRSNAP" restore "$T/mf.img"
expect_err "block 'pc.ram' has no recorded path (a snapshot of a memfd records none)"
expect_err "--qmp"
