# tests/cli_lib.sh — sourced by every CLI test: paths, a temp dir, assertions.
# $CTRACE is the binary under test (may include a runner prefix), $SHARED the shared data.
set -u
CTRACE=${CTRACE:-build/ctrace}
SHARED=${SHARED:-../shared}
S260=$SHARED/models/stories260K
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_fail "what" needle cmd...: the command must exit non-zero and say needle on stderr.
expect_fail() {
    what=$1; needle=$2; shift 2
    if "$@" >"$TMP/out" 2>"$TMP/err"; then fail "$what: exited 0"; fi
    grep -qF -- "$needle" "$TMP/err" || fail "$what: stderr lacks '$needle': $(cat "$TMP/err")"
    echo "ok: $what -> $(head -c 300 "$TMP/err")"
}
