# Shared by the QEMU end-to-end tests: sourced, not run. Boots a real Linux
# guest under TCG whose /init is tests/guest/memcheck (it rewrites a buffer
# and checks every page of it each pass, printing "memcheck pass N ok|BAD"),
# and drives QEMU over QMP with tests/tools/qmp.
#
# A guest is named (src, dst, ...): its console is $T/NAME.log, its QMP
# socket $T/NAME.sock, its pid in $T/NAME.pid; a file backend's RAM is
# $R/NAME.ram (on /dev/shm, as a VMM's would be).
. "${top_srcdir:?run through make check}/tests/cli/lib.sh"

QMP=$top_builddir/tests/tools/qmp
MEMCHECK=$top_builddir/tests/guest/memcheck
QEMU=${MRS_QEMU:-qemu-system-x86_64}
# 256 MiB of guest RAM, 160 MiB of it memcheck's buffer: most of RAM is being
# rewritten all the time (a pass takes about 0.1 s under TCG here, so a live
# snapshot's rounds never catch up and its final round has much to do).
GUEST_MB=256
MEMCHECK_MB=160
# A guard against a hung guest, not a measure of speed: far above what any
# wait takes (boot 5 s on an idle machine, 15 s on a loaded one).
GUEST_WAIT_S=${MRS_GUEST_WAIT_S:-300}

# qemu_setup: skip unless QEMU, cpio and a kernel are at hand; build the
# initramfs. Sets KERNEL and INITRD.
qemu_setup() {
	command -v "$QEMU" >/dev/null || skip "$QEMU not found (scripts/deps build installs qemu-system-x86)"
	command -v cpio >/dev/null || skip "cpio not found (scripts/deps build installs it)"
	[ -x "$MEMCHECK" ] || fail "$MEMCHECK is not built (make check builds it)"
	KERNEL=$("$top_srcdir/scripts/guest-kernel" 2>"$T/kernel.err") ||
		skip "no guest kernel: $(cat "$T/kernel.err")"
	mkdir -p "$T/initramfs"
	cp "$MEMCHECK" "$T/initramfs/init"
	(cd "$T/initramfs" && echo init | cpio -o -H newc --quiet >"$T/initrd.cpio") ||
		fail "cannot pack the initramfs"
	INITRD=$T/initrd.cpio
}

# backend_args NAME file|memfd: the RAM backend options for guest NAME.
backend_args() {
	case "$2" in
	file) echo "-object memory-backend-file,id=pc.ram,size=${GUEST_MB}M,mem-path=$R/$1.ram,share=on" ;;
	memfd) echo "-object memory-backend-memfd,id=pc.ram,size=${GUEST_MB}M,share=on" ;;
	*) fail "unknown backend '$2'" ;;
	esac
}

# boot_guest NAME file|memfd [QEMU options]: start a guest; returns once its
# QMP socket answers. Add -incoming defer for one that waits for a restore.
boot_guest() {
	local name=$1 backend=$2 i
	shift 2
	rm -f "$T/$name.log" "$T/$name.sock"
	# shellcheck disable=SC2046 # backend_args is a list of words
	"$QEMU" -accel tcg -m "${GUEST_MB}M" -nodefaults -display none \
		$(backend_args "$name" "$backend") -machine memory-backend=pc.ram \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-append "console=ttyS0 quiet panic=-1 memcheck_mb=$MEMCHECK_MB" \
		-serial "file:$T/$name.log" -qmp "unix:$T/$name.sock,server=on,wait=off" \
		-no-reboot "$@" 2>"$T/$name.err" &
	echo $! >"$T/$name.pid"
	GUESTS="$GUESTS $!"
	for i in $(seq 1 $((GUEST_WAIT_S * 10))); do
		[ -S "$T/$name.sock" ] && "$QMP" "$T/$name.sock" >/dev/null 2>&1 && return 0
		guest_alive "$name" || fail "QEMU ($name) exited: $(cat "$T/$name.err")"
		sleep 0.1
	done
	fail "QEMU ($name) did not open its QMP socket"
}

guest_pid() {
	cat "$T/$1.pid"
}

guest_alive() {
	kill -0 "$(guest_pid "$1")" 2>/dev/null
}

# kill_guest NAME: SIGKILL, and wait until it is gone.
kill_guest() {
	local pid
	pid=$(guest_pid "$1")
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	true
}

# qmp NAME COMMAND...: tests/tools/qmp on guest NAME's socket.
qmp() {
	local name=$1
	shift
	"$QMP" "$T/$name.sock" "$@"
}

# The memcheck result lines of guest NAME's console, from line FROM+1 on.
pass_lines() {
	tail -n +$(($2 + 1)) "$T/$1.log" 2>/dev/null | grep -a '^memcheck pass [0-9]* \(ok\|BAD\)'
}

# log_lines NAME: how many lines its console has now (a mark for waits).
log_lines() {
	local n
	n=$(wc -l <"$T/$1.log" 2>/dev/null) || n=0
	echo "${n:-0}"
}

# wait_passes NAME N [FROM]: wait until guest NAME printed N pass lines after
# line FROM of its console (default 0). Fails if the guest dies or panics.
wait_passes() {
	local name=$1 want=$2 from=${3:-0} i
	for i in $(seq 1 $((GUEST_WAIT_S * 20))); do
		[ "$(pass_lines "$name" "$from" | wc -l)" -ge "$want" ] && return 0
		if grep -aq 'Kernel panic' "$T/$name.log" 2>/dev/null; then
			sed 's/^/  console: /' "$T/$name.log" | tail -n 30 >&2
			fail "guest $name panicked"
		fi
		guest_alive "$name" || fail "QEMU ($name) exited: $(cat "$T/$name.err")"
		sleep 0.05
	done
	sed 's/^/  console: /' "$T/$name.log" | tail -n 10 >&2
	fail "guest $name printed fewer than $want memcheck passes after line $from"
}

# wait_ready NAME: until memcheck has its buffer and starts passing.
wait_ready() {
	local i
	for i in $(seq 1 $((GUEST_WAIT_S * 20))); do
		grep -aq '^memcheck ready' "$T/$1.log" 2>/dev/null && return 0
		grep -aq '^memcheck cannot' "$T/$1.log" 2>/dev/null && fail "$(grep -a '^memcheck' "$T/$1.log")"
		guest_alive "$1" || fail "QEMU ($1) exited: $(cat "$T/$1.err")"
		sleep 0.05
	done
	fail "guest $1 did not start memcheck"
}

# expect_all_ok NAME [FROM]: every pass line after line FROM says ok.
expect_all_ok() {
	if pass_lines "$1" "${2:-0}" | grep -q BAD; then
		pass_lines "$1" "${2:-0}" | grep BAD | head -n 5 | sed 's/^/  console: /' >&2
		fail "guest $1 found bad pages"
	fi
}

# expect_status NAME STATUS: query-status says STATUS (running, paused, ...).
expect_status() {
	local s
	s=$(qmp "$1" query-status) || fail "query-status on $1 failed"
	case "$s" in
	*"\"status\":\"$2\""*) ;;
	*) fail "guest $1 is not $2: $s" ;;
	esac
}

# save_device_state NAME FILE: the QEMU side of a snapshot, by hand, for a
# test that makes its own RAM image (e2e.sh's teeth): the device state alone
# (the RAM left out with x-ignore-shared; the guest already stopped) to FILE.
ignore_shared='{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}'
save_device_state() {
	qmp "$1" "$ignore_shared" \
		"{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > $2\"}}" \
		wait-migration >/dev/null || fail "QEMU ($1) did not save its device state"
}

# load_device_state NAME FILE: feed FILE to a guest started with -incoming
# defer whose RAM is already in place; it is left paused.
load_device_state() {
	qmp "$1" "$ignore_shared" \
		"{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"exec:cat $2\"}}" \
		wait-migration >/dev/null || fail "QEMU ($1) did not load the device state"
}
