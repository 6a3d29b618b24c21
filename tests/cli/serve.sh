# `ctrace serve` over HTTP (curl): status codes and content types of every route, path
# traversal refused (../ and its encodings), only graphs listed in graph-metadata.json served,
# Host/Origin/Content-Type rules, malformed and oversized POSTs rejected without touching the
# file, concurrent saves leave a valid file, clean shutdown on SIGINT.
. tests/cli_lib.sh
command -v curl >/dev/null || fail "curl is not installed (scripts/setup-deps.sh installs it)"
D=$TMP/graphs
mkdir -p "$D"
$CTRACE synth-graph --nodes 300 --links 2000 --layers 3 --tokens 6 --seed 5 -o "$D/g1.json" >/dev/null || fail "synth g1"
$CTRACE synth-graph --nodes 80 --links 300 --layers 2 --tokens 4 --seed 6 -o "$D/g2.json" --pruned-json >/dev/null || fail "synth g2"
echo '{"secret": true}' >"$D/unlisted.json"
echo 'outside' >"$TMP/outside.json"

SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
$CTRACE serve "$D" --port 0 >"$TMP/log" 2>&1 &
SPID=$!
PORT=""
for _ in $(seq 100); do
    PORT=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/log")
    [ -n "$PORT" ] && break
    kill -0 "$SPID" 2>/dev/null || fail "server exited: $(cat "$TMP/log")"
    sleep 0.1
done
[ -n "$PORT" ] || fail "server did not start: $(cat "$TMP/log")"
U=http://127.0.0.1:$PORT

# get PATH STATUS [CONTENT-TYPE-PREFIX]: one request, status and type checked (no path
# normalisation by curl: --path-as-is).
get() {
    out=$(curl -s --path-as-is -o "$TMP/body" -w '%{http_code} %{content_type}' "$U$1") || fail "curl $1"
    code=${out%% *}
    type=${out#* }
    [ "$code" = "$2" ] || fail "GET $1: status $code, expected $2 ($(head -c 200 "$TMP/body"))"
    if [ -n "${3:-}" ]; then
        case "$type" in "$3"*) ;; *) fail "GET $1: content type '$type', expected $3";; esac
    fi
    echo "ok: GET $1 -> $code $type"
}
get / 200 "text/html; charset=utf-8"
grep -q 'href="/graph/g1"' "$TMP/body" || fail "index lacks g1"
grep -q 'href="/graph/g2"' "$TMP/body" || fail "index lacks g2"
grep -q 'unlisted' "$TMP/body" && fail "index lists a file that is not in graph-metadata.json"
get /graph/g1 200 "text/html; charset=utf-8"
grep -q '/assets/viewer.js' "$TMP/body" || fail "viewer page lacks its script"
get /data/g1.json 200 "application/json"
cmp -s "$TMP/body" "$D/g1.json" || fail "/data/g1.json is not the file"
get /data/g1.bin 200 "application/octet-stream"
[ "$(head -c 7 "$TMP/body")" = CTVIEW2 ] || fail "packed graph magic"
get /assets/viewer.js 200 "application/javascript"
get /assets/viewer.css 200 "text/css"
get /assets/nope.js 404 "application/json"
get /graph/nope 404
get /data/nope.json 404
get /data/unlisted.json 404
get /nothing/here 404
get /favicon.ico 404
# path traversal, plain and percent-encoded: refused before any file is looked at
for p in /data/../graph-metadata.json /data/..%2fgraph-metadata.json /data/%2e%2e/outside.json \
         /data/%2e%2e%2foutside.json /data/%2E%2E%2Foutside.json /data/..%2F..%2Fetc%2Fpasswd \
         /graph/..%2fg1 /assets/..%2f..%2fMakefile /assets/%2e%2e/viewer.js /data/.%2e/outside.json \
         /data//etc/passwd /data/g1.json%2f..%2f..%2foutside.json '/data/..\outside.json'; do
    code=$(curl -s --path-as-is -o "$TMP/body" -w '%{http_code}' "$U$p")
    case "$code" in 400|404) ;; *) fail "GET $p: status $code, expected 400 or 404";; esac
    grep -q outside "$TMP/body" && fail "GET $p leaked a file outside the directory"
    grep -q root: "$TMP/body" && fail "GET $p leaked /etc/passwd"
    echo "ok: GET $p -> $code"
done
# HEAD, and a method that is not allowed
code=$(curl -s -I -o /dev/null -w '%{http_code}' "$U/graph/g1")
[ "$code" = 200 ] || fail "HEAD: $code"
code=$(curl -s -X PUT -o /dev/null -w '%{http_code}' "$U/data/g1.json")
[ "$code" = 405 ] || fail "PUT: $code, expected 405"
# Host header that is not loopback (DNS rebinding)
code=$(curl -s -H 'Host: evil.example' -o /dev/null -w '%{http_code}' "$U/")
[ "$code" = 403 ] || fail "foreign Host: $code, expected 403"
echo "ok: HEAD 200, PUT 405, foreign Host 403"

# ---- POST /api/qparams --------------------------------------------------------------------------
ID1=$(grep -o '"node_id":"[^"]*"' "$D/g1.json" | sed -n '1s/"node_id":"\(.*\)"/\1/p')
ID2=$(grep -o '"node_id":"[^"]*"' "$D/g1.json" | sed -n '2s/"node_id":"\(.*\)"/\1/p')
[ -n "$ID1" ] && [ -n "$ID2" ] || fail "node ids"
cp "$D/g1.json" "$TMP/before.json"
# post BODY-FILE STATUS [extra curl args]: the status must match
post() {
    f=$1; want=$2; shift 2
    code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' "$@" \
        --data-binary @"$f" "$U/api/qparams/g1")
    [ "$code" = "$want" ] || fail "POST $(head -c 80 "$f"): status $code, expected $want ($(cat "$TMP/body"))"
}
unchanged() { cmp -s "$D/g1.json" "$TMP/before.json" || fail "$1 changed the file"; }
printf 'not json' >"$TMP/p1";                                        post "$TMP/p1" 400; unchanged "malformed JSON"
printf '{"pinnedIds":["nope"],"supernodes":[]}' >"$TMP/p2";          post "$TMP/p2" 400; unchanged "unknown id"
printf '{"pinnedIds":[],"supernodes":[["x"]]}' >"$TMP/p3";            post "$TMP/p3" 400; unchanged "empty supernode"
printf '{"pinnedIds":[],"supernodes":[],"evil":1}' >"$TMP/p4";       post "$TMP/p4" 400; unchanged "unknown key"
head -c $((1024 * 1024 + 100)) /dev/zero | tr '\0' ' ' >"$TMP/p5";   post "$TMP/p5" 413; unchanged "oversized body"
printf '{"pinnedIds":[],"supernodes":[]}' >"$TMP/ok0"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: text/plain' --data-binary @"$TMP/ok0" "$U/api/qparams/g1")
[ "$code" = 415 ] || fail "text/plain POST: $code, expected 415"
post "$TMP/ok0" 403 -H 'Origin: http://evil.example';                unchanged "cross-origin POST"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @"$TMP/ok0" "$U/api/qparams/nope")
[ "$code" = 404 ] || fail "POST to an unlisted graph: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @"$TMP/ok0" "$U/api/qparams/..%2fg1")
[ "$code" = 400 ] || fail "POST with traversal: $code"
echo "ok: refused POSTs (400 x4, 413, 415, 403, 404, 400) left the file byte-identical"

printf '{"pinnedIds":["%s"],"supernodes":[["first","%s","%s"]]}' "$ID1" "$ID1" "$ID2" >"$TMP/okA"
post "$TMP/okA" 200 -H "Origin: $U"
grep -q '"supernodes":\[\["first"' "$D/g1.json" || fail "saved supernode not in the file"
$CTRACE graph-info "$D/g1.json" >/dev/null || fail "file unreadable after a save"
# two concurrent saves, many times over: the file is always one of them, whole
printf '{"pinnedIds":["%s"],"supernodes":[["A","%s"]]}' "$ID1" "$ID1" >"$TMP/okB"
printf '{"pinnedIds":["%s","%s"],"supernodes":[["B","%s","%s"]]}' "$ID1" "$ID2" "$ID1" "$ID2" >"$TMP/okC"
for _ in 1 2 3 4 5; do
    post "$TMP/okB" 200 & a=$!
    post "$TMP/okC" 200 & b=$!
    wait $a || fail "concurrent save A"
    wait $b || fail "concurrent save C"
    $CTRACE graph-info "$D/g1.json" >/dev/null || fail "file invalid after concurrent saves"
    q=$(grep -o '"qParams":{[^}]*}' "$D/g1.json")
    case "$q" in *'[["A",'*|*'[["B",'*) ;; *) fail "qParams after concurrent saves: $q";; esac
done
ls "$D" | grep -q tmp && fail "temp file left behind"
# only qParams changed: everything from "nodes" on is byte-identical
sed -n '/^"nodes":\[/,$p' "$TMP/before.json" >"$TMP/tail0"
sed -n '/^"nodes":\[/,$p' "$D/g1.json" >"$TMP/tail1"
[ -s "$TMP/tail0" ] && cmp -s "$TMP/tail0" "$TMP/tail1" || fail "a save changed more than qParams"
echo "ok: saves, 5 rounds of two concurrent saves, nodes and links untouched"

# ---- SIGINT -------------------------------------------------------------------------------------
kill -INT "$SPID"
wait "$SPID"
rc=$?
SPID=""
[ "$rc" = 0 ] || fail "exit status $rc after SIGINT"
grep -q 'stopped (SIGINT)' "$TMP/log" || fail "no clean stop message: $(cat "$TMP/log")"
curl -s -o /dev/null "$U/" && fail "still answering after SIGINT"
# bad arguments
expect_fail "serve: missing dir" "missing DIR" $CTRACE serve
expect_fail "serve: not a directory" "expected a directory" $CTRACE serve "$D/g1.json"
expect_fail "serve: bad host" "expected an IP address" $CTRACE serve "$D" --host nowhere.invalid
expect_fail "serve: bad port" "--port" $CTRACE serve "$D" --port 70000
echo ok
