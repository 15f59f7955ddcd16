#!/bin/sh
# RAM on block devices (loop devices) and on hugetlbfs: sizes from the
# device, absent pages zeroed on a device target, restore through a mapping
# where write(2) does not exist, 2 MiB pages. Parts that need what this
# machine cannot give (loop devices, huge pages) say so and are skipped.
. "$top_srcdir/tests/cli/lib.sh"

tested=0
LOOPS=""
HUGE_MNT=""
HUGE_OLD=""
undo() {
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	[ -z "$HUGE_MNT" ] || umount "$HUGE_MNT" 2>/dev/null
	[ -z "$HUGE_OLD" ] || echo "$HUGE_OLD" >/proc/sys/vm/nr_hugepages 2>/dev/null
	cleanup
}
trap undo EXIT

# ---- block devices ----------------------------------------------------------
if command -v losetup >/dev/null && src=$(losetup -f --show "$(
	"$MKRAM" "$T/src.file" 16M 5 >/dev/null && echo "$T/src.file")" 2>/dev/null); then
	LOOPS="$src"
	truncate -s 20M "$T/dst.file"
	"$MKRAM" "$T/junk" 20M 6 0 && cp "$T/junk" "$T/dst.file"
	dst=$(losetup -f --show "$T/dst.file") || fail "second loop device"
	LOOPS="$LOOPS $dst"
	expect_rc 0 "$MRSNAP" snapshot --json "$T/dev.img" --ram pc.ram="$src"
	grep -q '"pages_total": 4096' "$T/out" || fail "the block's size did not come from the device"
	# A device the image records is never written unless named with --ram,
	# --force or not: an untrusted image must not choose a device to clear.
	for force in "" --force; do
		expect_rc 3 "$MRSNAP" restore $force "$T/dev.img"
		expect_err "the image records '$src' for block 'pc.ram', a block device"
		expect_err "--ram pc.ram=$src"
	done
	expect_rc 0 "$MRSNAP" restore --verify "$T/dev.img" --ram pc.ram="$dst"
	cmp -n $((16 << 20)) "$T/src.file" "$dst" || fail "a device target differs after restore"
	# the device is larger than the block: the rest is left alone
	cmp -s -i $((16 << 20)) "$T/junk" "$dst" || fail "restore wrote past the block on the device"
	truncate -s 8M "$T/small.file"
	small=$(losetup -f --show "$T/small.file") || fail "third loop device"
	LOOPS="$LOOPS $small"
	expect_rc 3 "$MRSNAP" restore "$T/dev.img" --ram pc.ram="$small"
	expect_err "holds 8388608 bytes, block 'pc.ram' needs 16777216"
	tested=$((tested + 1))
else
	echo "note: no loop devices here; block devices not tested" >&2
fi

# ---- hugetlbfs -------------------------------------------------------------
HUGE_OLD=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo "")
mkdir "$T/huge"
if [ -n "$HUGE_OLD" ] && echo $((HUGE_OLD + 8)) >/proc/sys/vm/nr_hugepages 2>/dev/null &&
	[ "$(awk '/HugePages_Free/ { print $2 }' /proc/meminfo)" -ge 8 ] &&
	mount -t hugetlbfs -o pagesize=2M,mode=0700 none "$T/huge" 2>/dev/null; then
	HUGE_MNT="$T/huge"
	"$MKRAM" "$R/h.ram" 8M 7 || fail "mkram"
	expect_rc 0 "$MRSNAP" snapshot "$T/h1.img" --ram pc.ram="$R/h.ram"
	# hugetlbfs has no write(2): restore goes in through a mapping
	expect_rc 0 "$MRSNAP" restore "$T/h1.img" --ram pc.ram="$T/huge/ram"
	# read back from hugetlbfs: its pages are 2 MiB
	expect_rc 0 "$MRSNAP" snapshot --json "$T/h2.img" --ram pc.ram="$T/huge/ram"
	expect_rc 0 "$MRSNAP" info --json "$T/h2.img"
	grep -q '"page_size_bytes": 2097152' "$T/out" || fail "hugetlbfs pages are not recorded as 2 MiB"
	expect_rc 0 "$MRSNAP" restore --verify "$T/h2.img" --ram pc.ram="$R/h.out"
	cmp "$R/h.ram" "$R/h.out" || fail "a round trip through hugetlbfs differs"
	rm -f "$T/huge/ram"
	tested=$((tested + 1))
else
	echo "note: no huge pages here; hugetlbfs not tested" >&2
fi

[ $tested -gt 0 ] || skip "neither loop devices nor huge pages are available"
exit 0
