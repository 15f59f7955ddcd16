#!/bin/sh
# Images hold secrets and must not be lost: no overwrite without --force, no
# symlink followed, nothing left behind by a failed or interrupted snapshot.
. "$top_srcdir/tests/cli/lib.sh"

"$MKRAM" "$T/a.ram" 4M 5 || fail "mkram"
expect_rc 0 "$MRSNAP" snapshot "$T/vm.img" --ram pc.ram="$T/a.ram"
cp "$T/vm.img" "$T/vm.before"

# An existing image stays unless --force.
"$MKRAM" "$T/b.ram" 4M 6 || fail "mkram"
expect_rc 3 "$MRSNAP" snapshot "$T/vm.img" --ram pc.ram="$T/b.ram"
expect_err "'$T/vm.img' exists; use --force"
cmp -s "$T/vm.img" "$T/vm.before" || fail "the existing image changed without --force"
expect_rc 0 "$MRSNAP" snapshot --force "$T/vm.img" --ram pc.ram="$T/b.ram"
expect_rc 0 "$MRSNAP" restore "$T/vm.img" --ram pc.ram="$T/b.out"
cmp "$T/b.ram" "$T/b.out" || fail "--force did not replace the image"

# A symlink at IMAGE is never followed.
ln -s "$T/victim" "$T/link.img"
echo precious >"$T/victim"
expect_rc 3 "$MRSNAP" snapshot "$T/link.img" --ram pc.ram="$T/a.ram"
expect_err "symbolic link"
expect_rc 0 "$MRSNAP" snapshot --force "$T/link.img" --ram pc.ram="$T/a.ram"
[ "$(cat "$T/victim")" = precious ] || fail "the symlink's target was written"
[ -L "$T/link.img" ] && fail "--force did not replace the symlink itself"

# A restore target that is a symlink is refused unless --force.
ln -s "$T/victim" "$T/target-link"
expect_rc 3 "$MRSNAP" restore "$T/vm.img" --ram pc.ram="$T/target-link"
expect_err "symbolic link"
[ "$(cat "$T/victim")" = precious ] || fail "restore wrote through a symlink"

# A failed snapshot leaves nothing: missing RAM file, unwritable directory.
expect_rc 3 "$MRSNAP" snapshot "$T/new.img" --ram pc.ram="$T/missing.ram"
expect_err "cannot open '$T/missing.ram'"
[ -e "$T/new.img" ] && fail "a failed snapshot left an image"
ls -a "$T" | grep -q mrsnap-tmp && fail "a failed snapshot left a temporary file"
expect_rc 3 "$MRSNAP" snapshot "$T/nodir/new.img" --ram pc.ram="$T/a.ram"
expect_err "cannot create a temporary file next to '$T/nodir/new.img'"

# Temporary files that a killed snapshot left are removed by the next one
# to the same image; one still locked by a running snapshot is left alone.
touch "$T/.vm.img.mrsnap-tmp.Stale1"
touch "$T/.vm.img.mrsnap-tmp.InUse1"
flock "$T/.vm.img.mrsnap-tmp.InUse1" sleep 5 &
locker=$!
sleep 0.2
expect_rc 0 "$MRSNAP" snapshot --force "$T/vm.img" --ram pc.ram="$T/a.ram"
expect_out "removed 1 temporary file left by a snapshot that did not finish"
[ -e "$T/.vm.img.mrsnap-tmp.Stale1" ] && fail "a stale temporary file was not removed"
[ -e "$T/.vm.img.mrsnap-tmp.InUse1" ] || fail "a temporary file in use was removed"
kill $locker 2>/dev/null
wait $locker 2>/dev/null
rm -f "$T/.vm.img.mrsnap-tmp.InUse1"

# SIGINT while a large snapshot runs: no image, no temporary file, exit 3.
"$MKRAM" "$T/big.ram" 1G 7 0 0 || fail "mkram"
"$MRSNAP" snapshot -j 1 --depth 1 --no-progress "$T/int.img" --ram pc.ram="$T/big.ram" \
	>"$T/out" 2>"$T/err" &
pid=$!
sleep 0.3
kill -INT $pid
wait $pid
rc=$?
if [ $rc = 0 ]; then
	echo "note: the snapshot finished before SIGINT; interruption not tested" >&2
else
	[ $rc = 3 ] || fail "an interrupted snapshot exited $rc, not 3"
	expect_err "interrupted by SIGINT"
	[ -e "$T/int.img" ] && fail "an interrupted snapshot left an image"
	ls -a "$T" | grep -q mrsnap-tmp && fail "an interrupted snapshot left a temporary file"
fi
exit 0
