# info, logits, mkmodel end to end: fingerprint equals xxhsum's XXH3, logits file shape and
# thread-count determinism, mkmodel reproducible for a seed.
. tests/cli_lib.sh
M=$S260/stories260K.bin
$CTRACE info "$M" >"$TMP/info" || fail "info"
grep -q '^n_kv_heads   4$' "$TMP/info" || fail "info: n_kv_heads"
grep -q '^parameters   ' "$TMP/info" || fail "info: parameters"
want=$(xxhsum -H3 "$M" | sed 's/.*= //')
grep -q "^xxh3         $want\$" "$TMP/info" || fail "info: fingerprint differs from xxhsum -H3 ($want)"
$CTRACE logits "$M" --tokens 1,403,407,261 -o "$TMP/a.f32" --threads 1 || fail "logits"
$CTRACE logits "$M" --tokens 1,403,407,261 -o "$TMP/b.f32" --threads 2 || fail "logits 2"
[ "$(stat -c %s "$TMP/a.f32")" = $((4 * 512 * 4)) ] || fail "logits size"
cmp "$TMP/a.f32" "$TMP/b.f32" || fail "logits depend on threads"
ls "$TMP" | grep -q tmp && fail "temp file left behind"
$CTRACE logits "$M" --tokens 1,403 | grep -q '^pos 1 token 403 argmax 407' || fail "logits print"
$CTRACE mkmodel --dim 32 --layers 2 --heads 4 --kv-heads 2 --hidden 64 --vocab 100 --seed 5 -o "$TMP/r1.bin" 2>/dev/null || fail mkmodel
$CTRACE mkmodel --dim 32 --layers 2 --heads 4 --kv-heads 2 --hidden 64 --vocab 100 --seed 5 -o "$TMP/r2.bin" 2>/dev/null || fail mkmodel
cmp "$TMP/r1.bin" "$TMP/r2.bin" || fail "mkmodel not reproducible"
$CTRACE info "$TMP/r1.bin" | grep -q '^n_kv_heads   2$' || fail "mkmodel header"
$CTRACE logits "$TMP/r1.bin" --tokens 1,2,3 >/dev/null || fail "logits on mkmodel"
$CTRACE --help | grep -q generate || fail "--help"
for c in generate info logits mkmodel bench-forward; do $CTRACE $c --help | grep -q usage || fail "$c --help"; done
echo ok
