# The viewer in a real browser: `ctrace serve` driven through Debian's headless chromium by
# tests/browser/viewer.test.js (playwright-core from npm, installed into tests/browser/
# node_modules on first use).  Also times the 10,000-node / 1,000,000-link graph to
# interactive (< 3 s; skipped in sanitizer builds, where timing means nothing).
. tests/cli_lib.sh
case "$CTRACE" in *qemu*) echo "skip: emulated build"; exit 0;; esac
command -v node >/dev/null || fail "node is not installed"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (scripts/setup-deps.sh installs it)"
BR=tests/browser
if [ ! -f "$BR/node_modules/playwright-core/package.json" ]; then
    (cd "$BR" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in $BR (playwright-core)"
fi
BIG=1
case "$CTRACE" in *asan*)
    BIG=0
    # the server does not depend on the kernel table: one sanitizer pass is enough
    [ "${CTRACE_ISA:-}" = scalar ] && { echo "skip: covered by the avx2 sanitizer pass"; exit 0; } ;;
esac

$CTRACE synth-graph --nodes 600 --links 6000 --layers 5 --tokens 8 --seed 11 -o "$TMP/small.json" >/dev/null \
    || fail "synth-graph small"
if [ $BIG = 1 ]; then
    $CTRACE synth-graph --nodes 10000 --links 1000000 --seed 1 -o "$TMP/big.json" >/dev/null || fail "synth-graph big"
fi

SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
$CTRACE serve "$TMP" --port 0 >"$TMP/serve.log" 2>&1 &
SPID=$!
PORT=""
for _ in $(seq 100); do
    PORT=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/serve.log")
    [ -n "$PORT" ] && break
    kill -0 "$SPID" 2>/dev/null || fail "server exited: $(cat "$TMP/serve.log")"
    sleep 0.1
done
[ -n "$PORT" ] || fail "server did not start: $(cat "$TMP/serve.log")"

mkdir -p build/browser
CTRACE_URL="http://127.0.0.1:$PORT" CTRACE_DIR="$TMP" ARTIFACTS=build/browser BIG=$BIG \
    timeout -k 5 170 node "$BR/viewer.test.js" || fail "browser test (server log: $(tail -5 "$TMP/serve.log"))"

kill -INT "$SPID"
wait "$SPID"
rc=$?
SPID=""
[ "$rc" = 0 ] || fail "server exit status $rc after SIGINT"
echo ok
