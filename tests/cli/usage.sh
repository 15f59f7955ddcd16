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
[ -e "$T/x.img" ] && fail "a usage error created a file"
exit 0
