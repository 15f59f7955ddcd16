#!/bin/sh
# --json (issue #10 item 19): every command prints exactly one JSON document
# on stdout, success or failure, in the shapes of mrsnap(1) JSON OUTPUT:
# "schema", "command", "ok", "image" first; "error" {message, errno,
# errno_name, exit} on failure (the old code printed nothing on most
# failures, had no schema, and named the same things differently: "blocks"
# was a list in snapshot and a number in restore, sizes were "size",
# "file_size", "image_size").
. "$top_srcdir/tests/cli/lib.sh"

# The documents are parsed by tests/tools/jsoncheck (jansson), always; the
# detailed shapes are checked by python3 where there is one.
have_python=false
command -v python3 >/dev/null 2>&1 && have_python=true
$have_python || echo "note: no python3 here; only jsoncheck's checks of the JSON run" >&2

# field FILE PATH: the value at PATH in the document in FILE (jsoncheck).
field() {
	"$JSONCHECK" "$2" <"$1" || fail "no $2 in the JSON document in $1: $(cat "$1")"
}

# doc_check FILE RC: FILE holds exactly one JSON document (nothing else on
# stdout), beginning with schema 1, command, ok, image; when ok is false
# with a valid error object whose exit is RC. It catches output that is not
# JSON (bad escaping, raw bytes that are not UTF-8) and a broken error object.
doc_check() {
	"$JSONCHECK" <"$1" || fail "stdout is not one JSON document: $(cat "$1")"
	[ "$("$JSONCHECK" -k . <"$1" | head -n 4 | tr '\n' ' ')" = "schema command ok image " ] ||
		fail "the document does not begin with schema, command, ok, image: $(cat "$1")"
	[ "$(field "$1" .schema)" = 1 ] || fail "schema is not 1: $(cat "$1")"
	ok=$(field "$1" .ok)
	case $ok in true) [ "$2" = 0 ] ;; false) [ "$2" != 0 ] ;; *) false ;; esac ||
		fail "ok is '$ok' with exit code $2: $(cat "$1")"
	[ "$ok" = true ] && return 0
	[ "$("$JSONCHECK" -k .error <"$1" | tr '\n' ' ')" = "message errno errno_name exit " ] ||
		fail "the error object's keys are wrong: $(cat "$1")"
	types=$("$JSONCHECK" -t .error.message .error.errno .error.errno_name .error.exit <"$1" |
		tr '\n' ' ')
	case $types in
	"string integer string integer " | "string null null integer ") ;;
	*) fail "the error object's types are $types: $(cat "$1")" ;;
	esac
	[ -n "$(field "$1" .error.message)" ] || fail "empty error message: $(cat "$1")"
	[ "$(field "$1" .error.exit)" = "$2" ] || fail "error.exit is not the exit code $2: $(cat "$1")"
}

# json_check FILE RC PYTHON: doc_check, then (with python3) PYTHON asserts
# on the document, d, with the helpers below.
json_check() {
	doc_check "$1" "$2"
	$have_python || return 0
	python3 - "$@" <<'PY' || fail "JSON check failed: $3 (stdout in $1: $(cat "$1"))"
import json, sys

path, rc, code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = json.loads(open(path).read())  # one document, nothing else on stdout
N = type(None)
BLOCK = {"name": str, "path": str, "size_bytes": int, "page_size_bytes": int,
         "pages_total": int, "pages_present": (int, N), "pages_zero": (int, N),
         "bitmap_offset": int, "checksums_offset": int, "pages_offset": int}
ROUND = {"round": int, "frozen": bool, "pages_scanned": int, "pages_dirty": int,
         "pages_written": int, "pages_zeroed": int, "written_bytes": int,
         "duration_seconds": float}
BAD_PAGE = {"block": str, "page": int, "guest_offset": int, "expected": str, "actual": str}
ERROR = {"message": str, "errno": (int, N), "errno_name": (str, N), "exit": int}

def shape(o, fields, what):
    assert isinstance(o, dict), f"{what} is not an object: {o!r}"
    assert set(o) == set(fields), f"{what} has keys {sorted(o)}, not {sorted(fields)}"
    for k, t in fields.items():
        assert isinstance(o[k], t) and not (t is int and isinstance(o[k], bool)), \
            f"{what}.{k} = {o[k]!r} is not {t}"

def doc(cmd, ok, fields):
    keys = list(d)
    assert keys[:4] == ["schema", "command", "ok", "image"], f"starts with {keys[:4]}"
    assert d["schema"] == 1 and d["command"] == cmd and d["ok"] is ok, d
    assert d["image"] is None or isinstance(d["image"], str)
    want = {"schema": int, "command": str, "ok": bool, "image": (str, N)}
    if not ok:
        want["error"] = dict
        shape(d["error"], ERROR, "error")
        assert d["error"]["exit"] == rc, f"error.exit {d['error']['exit']}, exit code {rc}"
        assert d["error"]["message"], "empty error message"
    want.update(fields)
    shape(d, want, cmd)

def failure(cmd, errno_name):
    doc(cmd, False, {})
    assert d["error"]["errno_name"] == errno_name, d["error"]
    assert (d["error"]["errno"] is None) == (errno_name is None), d["error"]

def blocks(n, extra={}):
    assert len(d["blocks"]) == n, d["blocks"]
    for b in d["blocks"]:
        shape(b, {**BLOCK, **extra}, "block")

def rounds(n):
    assert len(d["rounds"]) == n, d["rounds"]
    for r in d["rounds"]:
        shape(r, ROUND, "round")

exec(code)
PY
}

SNAPSHOT='{"live": bool, "channels": int, "direct": bool, "blocks": list, "rounds": list,
	"stop_reason": str, "downtime_seconds": float, "estimated_downtime_seconds": float,
	"pages_total": int, "pages_present": int,
	"pages_zero": int, "pages_skipped": int, "pages_written": int, "written_bytes": int,
	"base": (dict, N), "io_requests": int,
	"io_resubmits": int, "image_size_bytes": int,
	"stale_temporary_files_removed": int, "duration_seconds": float,
	"devstate": (dict, N), "warning": (str, N), "guest_state": (str, N),
	"guest_paused_before": (bool, N)}'
INFO='{"format_version": int, "complete": bool, "live": bool, "created": str,
	"created_unix_ns": int, "tool_version": str, "image_size_bytes": int,
	"disk_usage_bytes": int, "blocks": list, "rounds": list, "devstate": dict}'
RESTORE='{"channels": int, "verified": bool, "cloned": bool, "blocks": list, "pages_total": int,
	"pages_read": int, "read_bytes": int, "io_requests": int, "io_resubmits": int,
	"duration_seconds": float, "devstate": dict,
	"resumed": bool}'
VERIFY='{"channels": int, "pages_checked": int, "pages_bad": int, "read_bytes": int,
	"io_requests": int, "io_resubmits": int,
	"duration_seconds": float, "devstate": dict, "bad_pages": list}'

"$MKRAM" "$T/a.ram" 4M 5 || fail "mkram"

# Success: each command's document, and one shape for a block everywhere.
run "$MRSNAP" snapshot --json "$T/vm.img" --ram pc.ram="$T/a.ram"
cp "$T/out" "$T/snap.json"
json_check "$T/snap.json" $rc "doc('snapshot', True, $SNAPSHOT); blocks(1); rounds(1)
assert d['image'] == '$T/vm.img' and d['blocks'][0]['size_bytes'] == 4 << 20
assert d['blocks'][0]['pages_total'] == d['pages_total'] == 1024
# The I/O counters (mrsnap(1), I/O counters): each present page written by some request.
assert 0 < d['io_requests'] <= d['pages_present'] and d['io_resubmits'] <= d['io_requests']"
run "$MRSNAP" info --json "$T/vm.img"
cp "$T/out" "$T/info.json"
json_check "$T/info.json" $rc "doc('info', True, $INFO); blocks(1); rounds(1)
snap = json.load(open('$T/snap.json'))
assert d['blocks'] == snap['blocks'], (d['blocks'], snap['blocks'])
assert d['rounds'][0]['pages_written'] == snap['rounds'][0]['pages_written']
assert d['devstate'] == {'present': False}, d['devstate']"
rm -f "$T/a.out"
run "$MRSNAP" restore --json --verify "$T/vm.img" --ram pc.ram="$T/a.out"
json_check "$T/out" $rc "doc('restore', True, $RESTORE); blocks(1, {'created': bool})
info = json.load(open('$T/info.json'))
assert d['blocks'][0]['path'] == '$T/a.out' and d['blocks'][0]['created'] is True
assert {**d['blocks'][0], 'path': None, 'created': None} == {**info['blocks'][0], 'path': None, 'created': None}
assert 0 < d['io_requests'] <= d['pages_read']
assert d['devstate'] == {'present': False, 'loaded': False}, d['devstate']"
run "$MRSNAP" verify --json "$T/vm.img"
json_check "$T/out" $rc "doc('verify', True, $VERIFY); assert d['bad_pages'] == []
assert 0 < d['io_requests'] <= d['pages_checked']
assert d['devstate'] == {'present': False}, d['devstate']"

# pages_skipped: a sparse source on tmpfs, one page of data in 4 MiB of hole,
# is found without reading the hole (before, the counter was kept but never
# reported).
if [ "$(stat -f -c %T "$R")" = tmpfs ]; then
	truncate -s 4M "$R/sparse.ram"
	dd if=/dev/urandom of="$R/sparse.ram" bs=4096 seek=300 count=1 conv=notrunc 2>/dev/null
	run "$MRSNAP" snapshot --json "$T/sparse.img" --ram pc.ram="$R/sparse.ram"
	json_check "$T/out" $rc "doc('snapshot', True, $SNAPSHOT); assert d['pages_present'] == 1
assert 0 < d['pages_skipped'] <= d['pages_zero'], d"
else
	echo "note: no tmpfs for RAM files here; pages_skipped not checked" >&2
fi

# Paths are bytes, JSON strings are text (mrsnap(1), JSON OUTPUT): a quote,
# a backslash and a newline come back as they are; a valid UTF-8 letter too;
# each byte that is not part of valid UTF-8 (a lone 0xff, a cut sequence, an
# encoded surrogate, an overlong '/') comes back as U+FFFD, and the document
# is still valid JSON. A raw string (no escaping) or bad bytes let through
# fail doc_check; dropped or mangled bytes fail the comparison.
odd=$(printf '%s/q"b\\n\nl\303\251-\377-\303(-\355\240\200-\300\257.ram' "$T")
fffd=$(printf '\357\277\275')
printf '%s/q"b\\n\nl\303\251-%s-%s(-%s%s%s-%s%s.ram\n' "$T" "$fffd" "$fffd" "$fffd" "$fffd" \
	"$fffd" "$fffd" "$fffd" >"$T/odd.want"
cp "$T/a.ram" "$odd" || fail "cannot make a file with an odd name"
run "$MRSNAP" snapshot --json "$T/odd.img" --ram pc.ram="$odd"
doc_check "$T/out" $rc
field "$T/out" .blocks[0].path >"$T/odd.got"
cmp -s "$T/odd.got" "$T/odd.want" || fail "snapshot's path came back as $(od -c "$T/odd.got")"
# Without python too: counts and sizes are integers, seconds reals (a real
# with no fraction is still printed as one, 0.0).
[ "$("$JSONCHECK" -t .pages_total .blocks[0].size_bytes .duration_seconds .downtime_seconds \
	<"$T/out" | tr '\n' ' ')" = "integer integer real real " ] ||
	fail "integers or reals have the wrong type: $(cat "$T/out")"
run "$MRSNAP" info --json "$T/odd.img"
doc_check "$T/out" $rc
field "$T/out" .blocks[0].path >"$T/odd.got"
cmp -s "$T/odd.got" "$T/odd.want" || fail "info's path came back as $(od -c "$T/odd.got")"
# In the image path and in an error message the same.
rm -f "$odd" "$T/odd.img"
run "$MRSNAP" info --json "$odd"
doc_check "$T/out" $rc
field "$T/out" .image >"$T/odd.got"
cmp -s "$T/odd.got" "$T/odd.want" || fail "image came back as $(od -c "$T/odd.got")"
field "$T/out" .error.message >"$T/odd.got"
grep -qF "$(head -n 1 "$T/odd.want")" "$T/odd.got" && grep -qF "$(tail -n 1 "$T/odd.want")" "$T/odd.got" ||
	fail "the error message does not hold the path: $(od -c "$T/odd.got")"

# Failure: an error document for every command, with the exit code in it.
run "$MRSNAP" snapshot --json "$T/vm.img" --ram pc.ram="$T/a.ram"
json_check "$T/out" $rc "failure('snapshot', 'EEXIST'); assert d['image'] == '$T/vm.img'"
run "$MRSNAP" snapshot --json "$T/new.img" --ram pc.ram="$T/missing.ram"
json_check "$T/out" $rc "failure('snapshot', 'ENOENT'); assert '$T/missing.ram' in d['error']['message']"
for cmd in info verify restore; do
	run "$MRSNAP" $cmd --json "$T/missing.img"
	json_check "$T/out" $rc "failure('$cmd', 'ENOENT'); assert d['error']['exit'] == 3"
done
head -c 8192 /dev/urandom >"$T/junk.img"
for cmd in info verify restore; do
	run "$MRSNAP" $cmd --json "$T/junk.img"
	json_check "$T/out" $rc "failure('$cmd', 'EPROTO'); assert d['error']['exit'] == 1"
done
# Usage errors, before and after --json on the command line: exit 2, errno null.
for args in "snapshot --json" "snapshot --bogus --json $T/x.img --ram a=$T/a.ram" \
	"restore --json -j 0 $T/vm.img" "verify --json a b" "info --json" "verify --json -" \
	"restore --json $T/vm.img --ram nosuch=$T/x.out"; do
	# (the last is the library's usage mistake: a build that passed its errno
	# on, EDOM, failed here)
	run "$MRSNAP" $args
	cmd=${args%% *}
	json_check "$T/out" $rc "failure('$cmd', None); assert d['error']['exit'] == 2"
done

# A page that does not match: verify's whole report, with ok false and an error.
off=$(field "$T/info.json" .blocks[0].pages_offset)
page=0 # the first present page: the first whose bytes in RAM are not all zero
while cmp -s -n 4096 -i $((page * 4096)):0 "$T/a.ram" /dev/zero; do
	page=$((page + 1))
done
flip_byte "$T/vm.img" $((off + page * 4096 + 100))
run "$MRSNAP" verify --json "$T/vm.img"
json_check "$T/out" $rc "doc('verify', False, $VERIFY); assert d['error']['errno_name'] == 'EBADMSG'
assert d['error']['exit'] == 1 and d['pages_bad'] == 1 and len(d['bad_pages']) == 1
shape(d['bad_pages'][0], BAD_PAGE, 'bad page'); assert d['bad_pages'][0]['page'] == $page"
run "$MRSNAP" restore --json --verify "$T/vm.img" --ram pc.ram="$T/b.out"
json_check "$T/out" $rc "failure('restore', 'EBADMSG'); assert d['error']['exit'] == 1"
exit 0
