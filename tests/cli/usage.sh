#!/bin/sh
# The command line: help, version, and usage errors with exit code 2.
. "$top_srcdir/tests/cli/lib.sh"

expect_rc 0 "$MRSNAP" --help
expect_out "Usage: mrsnap COMMAND"
expect_rc 0 "$MRSNAP" --version
expect_out "mrsnap 0.1.0"
for cmd in snapshot restore verify info; do
	expect_rc 0 "$MRSNAP" $cmd --help
	expect_out "Usage: mrsnap $cmd"
done

# Item 18: 'help COMMAND' and '--help COMMAND' show that command's help (the
# old code showed the top-level one); a leading option that is not ours is an
# unknown option, not an unknown command; --version takes no arguments (the
# old code ignored them).
for help in help --help -h; do
	for cmd in snapshot restore verify info; do
		expect_rc 0 "$MRSNAP" $help $cmd
		expect_out "Usage: mrsnap $cmd"
	done
	expect_rc 2 "$MRSNAP" $help frobnicate
	expect_err "unknown command 'frobnicate'"
done
expect_rc 0 "$MRSNAP" help
expect_out "Usage: mrsnap COMMAND"
expect_rc 2 "$MRSNAP" --foo
expect_err "unknown option '--foo'"
grep -q "unknown command" "$T/err" && fail "--foo was called an unknown command"
for v in --version -V; do
	expect_rc 2 "$MRSNAP" $v extra
	expect_err "'$v' takes no arguments, not 'extra'"
	[ -s "$T/out" ] && fail "$v extra printed the version"
done

expect_rc 2 "$MRSNAP"
expect_err "a command is missing"
expect_rc 2 "$MRSNAP" frobnicate
expect_err "unknown command 'frobnicate'"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img"
expect_err "give at least one --ram NAME=PATH"
expect_rc 2 "$MRSNAP" snapshot --ram pc.ram=/dev/null
expect_err "IMAGE is missing"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram pc.ram
expect_err "--ram needs NAME=PATH"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram a=/x --ram a=/y
expect_err "block name 'a' is given twice"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram "$(printf 'a\tb')=/x"
expect_err "holds a control character"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram "$(printf '%070d' 0)=/x"
expect_err "must be 1 to 63 bytes long"
expect_rc 2 "$MRSNAP" snapshot -j 0 "$T/x.img" --ram a=/x
expect_err "--channels needs a whole number from 1 to 64, not '0'"
expect_rc 2 "$MRSNAP" snapshot -j 65 "$T/x.img" --ram a=/x
# The limits of --downtime and --max-rounds that mrsnap(1) documents: a
# build that took 0, a round count of 1, a value past the top, a unit, or
# either option without --live, fails here.
live="--live --freeze-cmd true --thaw-cmd true"
expect_rc 2 "$MRSNAP" snapshot $live --downtime 0 "$T/x.img" --ram a=/x
expect_err "--downtime needs a whole number from 1 to 3600000, not '0'"
expect_rc 2 "$MRSNAP" snapshot $live --downtime 3600001 "$T/x.img" --ram a=/x
expect_err "--downtime needs a whole number from 1 to 3600000, not '3600001'"
expect_rc 2 "$MRSNAP" snapshot $live --downtime 100ms "$T/x.img" --ram a=/x
expect_err "--downtime needs a whole number from 1 to 3600000, not '100ms'"
expect_rc 2 "$MRSNAP" snapshot $live --downtime -1 "$T/x.img" --ram a=/x
expect_rc 2 "$MRSNAP" snapshot $live --max-rounds 1 "$T/x.img" --ram a=/x
expect_err "--max-rounds needs a whole number from 2 to 100000, not '1'"
expect_rc 2 "$MRSNAP" snapshot $live --max-rounds 0 "$T/x.img" --ram a=/x
expect_rc 2 "$MRSNAP" snapshot $live --max-rounds 100001 "$T/x.img" --ram a=/x
expect_err "--max-rounds needs a whole number from 2 to 100000, not '100001'"
expect_rc 2 "$MRSNAP" snapshot --downtime 100 "$T/x.img" --ram a=/x
expect_err "--downtime and --max-rounds are for --live"
expect_rc 2 "$MRSNAP" snapshot --max-rounds 5 "$T/x.img" --ram a=/x
expect_err "--downtime and --max-rounds are for --live"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram "a=/x,size=12Q"
expect_err "bad size '12Q'"
# A size= that no block can have, or more than the file holds: a mistake in
# what was asked, exit 2 (a build that called it a failure, exit 3, failed).
truncate -s 1M "$T/r.ram"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram "a=$T/r.ram,size=1000"
expect_err "size 1000 is not a positive multiple of the page size 4096"
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram "a=$T/r.ram,size=2M"
expect_err "holds 1048576 bytes, fewer than the 2097152 asked for"
[ ! -e "$T/x.img" ] || fail "a refused snapshot left an image"
expect_rc 2 "$MRSNAP" snapshot --bogus "$T/x.img" --ram a=/x
expect_err "mrsnap snapshot: unrecognized option '--bogus'"
expect_err "Try 'mrsnap snapshot --help'"
expect_rc 2 "$MRSNAP" restore "$T/x.img" --ram
expect_err "mrsnap restore: option '--ram' requires an argument"
expect_rc 2 "$MRSNAP" verify
expect_rc 2 "$MRSNAP" verify a b
expect_err "one IMAGE only"
expect_rc 2 "$MRSNAP" info
expect_rc 2 "$MRSNAP" restore
expect_rc 2 "$MRSNAP" restore "$T/x.img" --ram "a=/x,size=1M"
expect_err "size= is not for restore"
# '-' is not stdin or stdout for any command: images are not streams, and
# a file named '-' would otherwise be created or read (item 17). ./- works.
for cmd in "snapshot - --ram a=/x" "info -" "verify -" "restore -"; do
	(cd "$T" && expect_rc 2 "$MRSNAP" $cmd) || exit 1
	expect_err "IMAGE cannot be '-'"
	expect_err "write ./-"
	[ -e "$T/-" ] && fail "'mrsnap $cmd' created a file named '-'"
done
# An empty IMAGE is refused before anything is written (the old code wrote a
# whole image and then failed to rename it).
"$MKRAM" "$T/a.ram" 1M 1 || fail "mkram"
for cmd in snapshot info verify restore; do
	if [ $cmd = snapshot ]; then
		(cd "$T" && expect_rc 2 "$MRSNAP" snapshot "" --ram pc.ram="$T/a.ram") || exit 1
	else
		expect_rc 2 "$MRSNAP" $cmd ""
	fi
	expect_err "IMAGE is an empty string"
done
ls -a "$T" | grep -q mrsnap-tmp && fail "an empty IMAGE left a temporary file"
# Item 18: the progress line fits the terminal, so it never wraps into a
# trail of lines: every stretch between carriage returns (or line ends) is
# under the width. The old code drew 77 columns whatever the width. Checked
# with $COLUMNS when stderr is a file, and through a pty of 50 columns with
# script(1) when it is there.
"$MKRAM" "$T/p.ram" 8M 3 || fail "mkram"
# longest_line FILE: the longest run of characters without \r or \n in FILE.
longest_line() {
	tr '\r' '\n' <"$1" | sed 's/\x1b\[K//g' | awk '{ if (length($0) > n) n = length($0) } END { print n + 0 }'
}
for cols in 50 30 12; do
	COLUMNS=$cols "$MRSNAP" snapshot --progress -j 1 --force "$T/p.img" \
		--ram pc.ram="$T/p.ram" >"$T/out" 2>"$T/err" || fail "snapshot with --progress"
	grep -q "round 0\|fsync" "$T/err" || fail "no progress line was drawn"
	n=$(longest_line "$T/err")
	[ "$n" -lt $cols ] || fail "a progress line of $n characters in $cols columns"
done
if command -v script >/dev/null 2>&1; then
	script -qec "stty cols 50 rows 24; COLUMNS= '$MRSNAP' snapshot -j 1 --force '$T/p.img' \
		--ram pc.ram='$T/p.ram' >/dev/null" /dev/null >"$T/tty" 2>&1 </dev/null ||
		fail "snapshot on a pty"
	grep -q "round 0\|fsync" "$T/tty" || fail "no progress line on the pty"
	n=$(longest_line "$T/tty")
	[ "$n" -lt 50 ] || fail "a progress line of $n characters on a pty of 50 columns"
else
	echo "note: no script(1): progress on a pty not tested" >&2
fi

[ -e "$T/x.img" ] && fail "a usage error created a file"
exit 0
