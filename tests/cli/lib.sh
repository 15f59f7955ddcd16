# Shared by the CLI tests: sourced, not run. Each test gets its own temp dir.
set -u

MRSNAP=${top_builddir:?run through make check}/mrsnap
MKRAM=$top_builddir/tests/tools/mkram
GUEST=$top_builddir/tests/tools/guest
FAILSYS=$top_builddir/tests/tools/failsys
JSONCHECK=$top_builddir/tests/tools/jsoncheck
T=$(mktemp -d "${TMPDIR:-/tmp}/mrsnap-cli.XXXXXX")
# RAM files live on tmpfs when there is one, as a VMM's would.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	R=$(mktemp -d /dev/shm/mrsnap-cli.XXXXXX)
else
	R=$T
fi
GUESTS=""
cleanup() {
	for pid in $GUESTS; do
		kill -CONT "$pid" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	done
	rm -rf "$T" "$R"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# run CMD...: stdout to $T/out, stderr to $T/err, exit code to $rc.
run() {
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# expect_rc N CMD...: run CMD and require exit code N.
expect_rc() {
	local want=$1
	shift
	run "$@"
	if [ "$rc" != "$want" ]; then
		sed 's/^/  stderr: /' "$T/err" >&2
		fail "'$*' exited $rc, expected $want"
	fi
}

expect_err() {
	grep -qF -- "$1" "$T/err" || {
		sed 's/^/  stderr: /' "$T/err" >&2
		fail "stderr lacks '$1'"
	}
}

expect_out() {
	grep -qF -- "$1" "$T/out" || {
		sed 's/^/  stdout: /' "$T/out" >&2
		fail "stdout lacks '$1'"
	}
}

# json_num FILE KEY: the first number after "KEY": in FILE.
json_num() {
	sed -n "s/.*\"$2\": \([0-9]*\).*/\1/p" "$1" | head -n 1
}

# flip_byte FILE OFFSET: change one byte in place.
flip_byte() {
	local old
	old=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf '%03o' $(((old + 1) % 256)))" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

mode_of() {
	stat -c %a "$1"
}

# start_guest RAM [guest options]: run the test guest; its pid in $gpid.
start_guest() {
	"$GUEST" "$@" &
	gpid=$!
	GUESTS="$GUESTS $gpid"
}

# The state letter of a process from /proc/PID/stat ("R", "S", "T", ...).
proc_state() {
	sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1
}

# Fail unless the process exists and is not stopped.
expect_running() {
	local s
	s=$(proc_state "$1") || fail "process $1 is gone"
	case "$s" in
	T | t) fail "process $1 is still stopped (state $s)" ;;
	esac
}

# xfs_mount DIR SIZE: an XFS filesystem with reflink, made in $T/xfs.img
# (SIZE, sparse) and mounted on DIR through a loop device; skips where it
# cannot be (not root, no mkfs.xfs, no loop devices). Unmounted on exit,
# a signal's (make's timeout, Ctrl-C) too, before the temp dirs go.
xfs_mount() {
	[ "$(id -u)" = 0 ] || skip "mounting an XFS image on a loop device needs root"
	command -v mkfs.xfs >/dev/null 2>&1 || skip "mkfs.xfs is missing (xfsprogs, scripts/deps)"
	[ -e /dev/loop-control ] || skip "no loop devices here (/dev/loop-control is missing)"
	XFS_DIR=$1
	mkdir "$XFS_DIR"
	truncate -s "$2" "$T/xfs.img"
	mkfs.xfs -q -m reflink=1 "$T/xfs.img" >"$T/mkfs.err" 2>&1 ||
		skip "mkfs.xfs -m reflink=1 failed: $(cat "$T/mkfs.err")"
	# mount -o loop takes a free loop device and lets it go again on umount.
	mount -o loop "$T/xfs.img" "$XFS_DIR" 2>"$T/mount.err" ||
		skip "cannot mount an XFS image on a loop device: $(cat "$T/mount.err")"
	trap xfs_cleanup EXIT
	trap 'exit 1' HUP INT TERM
}
xfs_cleanup() {
	# Guests first: a QEMU that maps a file there keeps the mount busy.
	for pid in $GUESTS; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	umount "$XFS_DIR" 2>/dev/null || umount -l "$XFS_DIR" 2>/dev/null
	cleanup
}
