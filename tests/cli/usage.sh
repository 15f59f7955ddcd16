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
expect_rc 2 "$MRSNAP" snapshot "$T/x.img" --ram "a=/x,size=12Q"
expect_err "bad size '12Q'"
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
[ -e "$T/x.img" ] && fail "a usage error created a file"
exit 0
