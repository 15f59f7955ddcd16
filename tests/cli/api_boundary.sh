#!/bin/sh
# The command is the library's first client (issue #11 item 4): it includes
# only include/mrsnap.h (Makefile.am gives it no other library include path),
# and it calls only what src/libmrsnap.sym exports. The include path cannot
# catch an internal function declared by hand; this can. Before, the command
# called mrs_ram_check_name from the internal ram.h.
. "$top_srcdir/tests/cli/lib.sh"

command -v nm >/dev/null 2>&1 || skip "nm (binutils) is needed to list the command's symbols"
set -- "$top_builddir"/src/cli/mrsnap-*.o
[ -e "$1" ] || skip "no objects of the command in $top_builddir/src/cli"

nm -u "$@" | awk '{print $NF}' | grep -E '^mrs_' | sort -u >"$T/used"
[ -s "$T/used" ] || fail "the command calls no mrs_ function: the check sees nothing"
sort -u "$top_srcdir/src/libmrsnap.sym" >"$T/exported"
comm -23 "$T/used" "$T/exported" >"$T/internal"
[ ! -s "$T/internal" ] || fail "the command calls functions the library does not export: $(tr '\n' ' ' <"$T/internal")"
exit 0
