#!/bin/sh
# Device state in the command line (issue 12): info shows it (text and
# JSON), verify checks it and names it when it is damaged, restore without a
# VMM restores the RAM and says in one line what it did not load. The image
# is made by tests/tools/devimage, a stand-in VMM on the public API.
. "$top_srcdir/tests/cli/lib.sh"

DEVIMAGE=$top_builddir/tests/tools/devimage
"$MKRAM" "$T/a.ram" 2M 3 || fail "mkram"
"$MKRAM" "$T/state" 300K 5 0 || fail "mkram state"
expect_rc 0 "$DEVIMAGE" "$T/vm.img" "$T/state" "QEMU 7.2.0" pc-i440fx-7.2 pc.ram="$T/a.ram"
sum=$(xxhsum -H3 <"$T/state" 2>/dev/null | sed -n 's/.*= //p')

# info: what, from whom, where, and the checksum of exactly those bytes
# (xxhsum's canonical form, when xxhsum is here to say it).
expect_rc 0 "$MRSNAP" info "$T/vm.img"
expect_out "device:     300.0 KiB (307200 bytes) of device state from QEMU 7.2.0, machine pc-i440fx-7.2"
[ -z "$sum" ] || expect_out "checksum $sum"
expect_rc 0 "$MRSNAP" info --json "$T/vm.img"
cp "$T/out" "$T/info.json"
[ "$("$JSONCHECK" .devstate.present .devstate.length_bytes .devstate.producer \
	.devstate.machine <"$T/info.json" | tr '\n' ' ')" = "true 307200 QEMU 7.2.0 pc-i440fx-7.2 " ] ||
	fail "info --json devstate: $(cat "$T/info.json")"
[ "$("$JSONCHECK" -t .devstate.offset .devstate.checksum <"$T/info.json" | tr '\n' ' ')" = \
	"integer string " ] || fail "info --json devstate types: $(cat "$T/info.json")"
[ -z "$sum" ] || [ "$("$JSONCHECK" .devstate.checksum <"$T/info.json")" = "$sum" ] ||
	fail "info --json checksum is not xxh3 of the state ($sum): $(cat "$T/info.json")"
offset=$("$JSONCHECK" .devstate.offset <"$T/info.json")
cmp -s -i "$offset:0" -n 307200 "$T/vm.img" "$T/state" ||
	fail "the region at $offset does not hold the state"

# verify says it checked it.
expect_rc 0 "$MRSNAP" verify "$T/vm.img"
expect_out "pages and the device state (300.0 KiB) match their checksums"
expect_rc 0 "$MRSNAP" verify --json "$T/vm.img"
[ "$("$JSONCHECK" .devstate.present .devstate.checked_bytes .devstate.ok <"$T/out" |
	tr '\n' ' ')" = "true 307200 true " ] || fail "verify --json devstate: $(cat "$T/out")"

# restore without a VMM: the RAM comes back, and one note says what did not.
expect_rc 0 "$MRSNAP" restore "$T/vm.img" --ram pc.ram="$T/b.ram"
cmp -s "$T/a.ram" "$T/b.ram" || fail "restored RAM differs"
expect_err "note: '$T/vm.img' also holds device state from QEMU 7.2.0, which was not loaded"
[ "$(wc -l <"$T/err")" = 1 ] || fail "more than one line on stderr: $(cat "$T/err")"
expect_rc 0 "$MRSNAP" restore -q --force "$T/vm.img" --ram pc.ram="$T/b.ram"
[ ! -s "$T/err" ] || fail "restore -q printed: $(cat "$T/err")"
expect_rc 0 "$MRSNAP" restore --json --force "$T/vm.img" --ram pc.ram="$T/b.ram"
[ "$("$JSONCHECK" .devstate.present .devstate.loaded .devstate.producer <"$T/out" |
	tr '\n' ' ')" = "true false QEMU 7.2.0 " ] || fail "restore --json devstate: $(cat "$T/out")"

# One damaged byte of the region: verify fails (exit 1) naming the device state.
cp "$T/vm.img" "$T/bad.img"
flip_byte "$T/bad.img" $((offset + 1000))
expect_rc 1 "$MRSNAP" verify "$T/bad.img"
expect_err "$T/bad.img: the device state (307200 bytes) did NOT match its checksum"
expect_rc 1 "$MRSNAP" verify --json "$T/bad.img"
[ "$("$JSONCHECK" .devstate.ok .pages_bad <"$T/out" | tr '\n' ' ')" = "false 0 " ] ||
	fail "verify --json on a damaged state: $(cat "$T/out")"
exit 0
