# `ctrace render` end to end: SVG and HTML from a .json and a .ctg, option errors, and the
# performance target: a 10,000-node / 1,000,000-link graph drawn (every edge) in under 2 s
# (timed outside sanitizer builds).
. tests/cli_lib.sh
$CTRACE synth-graph --nodes 300 --links 2500 --layers 3 --tokens 6 --seed 2 -o "$TMP/s.json" --raw "$TMP/s.ctg" \
    >/dev/null || fail "synth-graph"
$CTRACE render "$TMP/s.ctg" -o "$TMP/s.svg" >/dev/null || fail "render .ctg"
$CTRACE render "$TMP/s.json" -o "$TMP/s.html" >/dev/null || fail "render .json to html"
head -c 5 "$TMP/s.svg" | grep -q '<svg' || fail "svg header"
head -1 "$TMP/s.html" | grep -q '<!DOCTYPE html>' || fail "html header"
# the .ctg is pruned: by default only kept nodes; --all draws all 300
n_pruned=$(grep -c 'class="n ' "$TMP/s.svg")
$CTRACE render "$TMP/s.ctg" --all -o "$TMP/a.svg" >/dev/null || fail "render --all"
[ "$(grep -c 'class="n ' "$TMP/a.svg")" = 300 ] || fail "--all did not draw 300 nodes"
[ "$(grep -c '<path data-id=' "$TMP/a.svg")" = 2500 ] || fail "--all did not draw 2500 edges"
[ "$n_pruned" -lt 300 ] || fail "default did not prune ($n_pruned nodes)"
$CTRACE render "$TMP/s.ctg" --all --max-nodes 10 -o "$TMP/m.svg" >/dev/null || fail "render --max-nodes"
# 10 features/errors + 6 tokens + 8 logits
[ "$(grep -c 'class="n ' "$TMP/m.svg")" = 24 ] || fail "--max-nodes 10: $(grep -c 'class="n ' "$TMP/m.svg") nodes"
expect_fail "render: bad extension" ".svg or .html" $CTRACE render "$TMP/s.ctg" -o "$TMP/x.png"
expect_fail "render: missing output" "missing -o" $CTRACE render "$TMP/s.ctg"
expect_fail "render: missing file" "nonexistent" $CTRACE render "$TMP/nonexistent.ctg" -o "$TMP/x.svg"
expect_fail "render: bad max-nodes" "--max-nodes" $CTRACE render "$TMP/s.ctg" -o "$TMP/x.svg" --max-nodes 0
ls "$TMP" | grep -q 'x\.' && fail "output written despite an error"

case "$CTRACE" in *asan*|*qemu*) echo "skip timing: sanitizer/emulated build"; echo ok; exit 0;; esac
$CTRACE synth-graph --nodes 10000 --links 1000000 -o "$TMP/big.json" --raw "$TMP/big.ctg" >/dev/null || fail "synth big"
$CTRACE render "$TMP/big.ctg" --all -o "$TMP/big.svg" >"$TMP/out" || fail "render big"
cat "$TMP/out"
[ "$(grep -c '<path data-id=' "$TMP/big.svg")" = 1000000 ] || fail "big: not every edge drawn"
t=$(sed -n 's/.*read \([0-9.]*\) s, render \([0-9.]*\) s.*/\1 \2/p' "$TMP/out")
awk -v t="$t" 'BEGIN { split(t, a, " "); exit !(a[1] + a[2] < 2.0) }' || fail "render of 10k nodes / 1M links took $t s (read, render), over 2 s"
echo ok
