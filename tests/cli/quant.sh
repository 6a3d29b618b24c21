# int8 from the command line: `ctrace quantize`, --dtype f32|q8, --numa MODE.
#   - the quantized file is ~1/3.5 of the fp32 one, loads as q8 (info), and gives exactly the
#     logits / greedy text of --dtype q8 on the fp32 checkpoint, for any thread count and any
#     --numa mode;
#   - --dtype f32 on the quantized file runs fp32 on the dequantized weights;
#   - bad values and corrupt files fail with messages naming the value / the file.
. tests/cli_lib.sh
M=$S260/stories260K.bin
Z=$S260/tok512.bin
Q=$TMP/s.q8
$CTRACE quantize "$M" "$Q" 2>"$TMP/qerr" || fail "quantize: $(cat "$TMP/qerr")"
grep -q "reload check ok" "$TMP/qerr" || fail "quantize did not verify the written file"
[ "$(stat -c %s "$Q")" -lt $(($(stat -c %s "$M") / 3)) ] || fail "quantized file not smaller"
head -c 8 "$Q" | grep -q CTRACEQ8 || fail "magic"
$CTRACE info "$Q" >"$TMP/info" || fail "info q8"
grep -q '^dtype        q8' "$TMP/info" || fail "info: dtype q8: $(cat "$TMP/info")"
grep -q '^format       ctrace quantized checkpoint CTRACEQ8 v1' "$TMP/info" || fail "info: format"
$CTRACE info "$M" --dtype q8 | grep -q '^dtype        q8' || fail "info --dtype q8"
$CTRACE info "$Q" --dtype f32 | grep -q '^dtype        f32 (dequantized from int8)' || fail "info --dtype f32"

T=1,403,407,261,378,383,261,9,441
$CTRACE logits "$Q" --tokens $T -o "$TMP/q.f32" || fail "logits q8 file"
for th in 1 2; do
    for numa in off local interleave replicate; do
        $CTRACE logits "$M" --tokens $T --dtype q8 --numa $numa --threads $th -o "$TMP/d.f32" || fail "logits --dtype q8 --numa $numa"
        cmp "$TMP/q.f32" "$TMP/d.f32" || fail "q8 file vs --dtype q8 (--numa $numa, $th threads) differ"
    done
done
$CTRACE logits "$M" --tokens $T -o "$TMP/f.f32" || fail "logits f32"
cmp -s "$TMP/q.f32" "$TMP/f.f32" && fail "q8 logits identical to fp32: int8 path not taken"
$CTRACE logits "$Q" --tokens $T --dtype f32 -o "$TMP/x.f32" || fail "logits --dtype f32 on q8 file"
cmp -s "$TMP/x.f32" "$TMP/q.f32" && fail "--dtype f32 on the q8 file still ran int8"

$CTRACE generate "$Q" -z "$Z" -t 0 -n 48 -p "Once upon a time" >"$TMP/g1" 2>/dev/null || fail "generate q8 file"
$CTRACE generate "$M" -z "$Z" -t 0 -n 48 -p "Once upon a time" --dtype q8 --numa local --threads 2 >"$TMP/g2" 2>/dev/null || fail "generate --dtype q8"
cmp "$TMP/g1" "$TMP/g2" || fail "generate: q8 file vs --dtype q8 differ"
grep -q "Once upon a time" "$TMP/g1" || fail "generate q8: no prompt echo"
$CTRACE bench-forward "$Q" --prompt 4 --gen 4 --threads 1 --header | grep -q '| q8 | 1 |' || fail "bench-forward q8 row"

expect_fail "--dtype bad" "expected f32|q8, got 'int4'" $CTRACE logits "$M" --tokens 1,2 --dtype int4
expect_fail "--numa bad" "expected off|local|interleave|replicate, got 'all'" $CTRACE generate "$M" -z "$Z" --numa all
expect_fail "--clt-dtype without transcoder" "loads no transcoder" $CTRACE logits "$M" --tokens 1,2 --clt-dtype q8
expect_fail "quantize usage" "expected IN and OUT" $CTRACE quantize "$M"
expect_fail "quantize same file" "same file" $CTRACE quantize "$M" "$M"
head -c 1000 "$Q" >"$TMP/trunc.q8"
expect_fail "truncated q8" "trunc.q8" $CTRACE info "$TMP/trunc.q8"
grep -q "promises" "$TMP/err" || fail "truncated q8: message should give the expected size: $(cat "$TMP/err")"
$CTRACE quantize --help | grep -q "CTRACEQ8" || fail "quantize --help"
echo ok
