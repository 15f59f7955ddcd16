#!/bin/sh
# Strings an image brings are shown, never sent raw to the terminal: an image
# made by someone else can put ESC, CR or any control in its producer,
# machine and recorded block paths, and printed as stored they would drive
# the user's terminal (move the cursor, retitle the window, hide text).
# Catches: any text output of such a string (info, restore's summary and
# note, an error quoting a recorded path) that does not pass through
# cli_visible() in src/cli/visible.c.
. "$top_srcdir/tests/cli/lib.sh"

DEVIMAGE=$top_builddir/tests/tools/devimage
ESC=$(printf '\033')
CR=$(printf '\r')
# A RAM file whose name holds ESC and CR: its path is recorded in the image.
ram="$R/a${ESC}[2J${CR}x.ram"
"$MKRAM" "$ram" 1M 3 || fail "mkram"
"$MKRAM" "$T/state" 8K 5 0 || fail "mkram state"
expect_rc 0 "$DEVIMAGE" "$T/vm.img" "$T/state" "QEMU${ESC}]0;pwned${CR}" "pc${ESC}[31m${CR}red" \
	pc.ram="$ram"

# no_raw_controls FILE: no ESC, CR or other C0 control but the line ends.
no_raw_controls() {
	if LC_ALL=C tr -d '\n' <"$1" | LC_ALL=C grep -q '[[:cntrl:]]'; then
		od -c "$1" | sed 's/^/  /' >&2
		fail "$2 put raw control characters on the terminal"
	fi
}

expect_rc 0 "$MRSNAP" info "$T/vm.img"
no_raw_controls "$T/out" "info"
expect_out 'device state from QEMU\x1B]0;pwned\x0D, machine pc\x1B[31m\x0Dred'
expect_out "source:   $R/a\\x1B[2J\\x0Dx.ram"
# JSON carries them exactly (jansson escapes them as \u001b).
expect_rc 0 "$MRSNAP" info --json "$T/vm.img"
[ "$("$JSONCHECK" .devstate.producer <"$T/out")" = "QEMU${ESC}]0;pwned${CR}" ] ||
	fail "info --json changed the producer: $(cat "$T/out")"

# restore to the recorded path: its summary and its note.
expect_rc 0 "$MRSNAP" restore --force "$T/vm.img"
no_raw_controls "$T/out" "restore's summary"
no_raw_controls "$T/err" "restore's note"
expect_out "pc.ram -> $R/a\\x1B[2J\\x0Dx.ram"
expect_err 'device state from QEMU\x1B]0;pwned\x0D, which was not loaded'

# An error that quotes the recorded path.
rm -f "$ram"
mkdir "$ram"
expect_rc 3 "$MRSNAP" restore --force "$T/vm.img"
no_raw_controls "$T/err" "restore's error"
expect_err "$R/a\\x1B[2J\\x0Dx.ram"
exit 0
