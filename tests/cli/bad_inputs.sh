# Bad input: a clear message naming the file / field, a non-zero exit, no crash, no output.
. tests/cli_lib.sh
M=$S260/stories260K.bin
Z=$S260/tok512.bin
expect_fail "missing model" "/nonexistent/m.bin" $CTRACE generate /nonexistent/m.bin -z "$Z"
expect_fail "missing tokenizer" "/nonexistent/t.bin" $CTRACE generate "$M" -z /nonexistent/t.bin
head -c 1000 "$M" >"$TMP/trunc.bin"
expect_fail "truncated checkpoint" "promises" $CTRACE info "$TMP/trunc.bin"
expect_fail "truncated checkpoint names file" "trunc.bin" $CTRACE logits "$TMP/trunc.bin" --tokens 1
head -c 10 "$M" >"$TMP/tiny.bin"
expect_fail "shorter than header" "header" $CTRACE info "$TMP/tiny.bin"
# header with n_kv_heads = 3 (does not divide 8)
{ head -c 16 "$M"; printf '\003\000\000\000'; tail -c +21 "$M"; } >"$TMP/kv3.bin"
expect_fail "kv heads not dividing" "n_kv_heads = 3 must divide n_heads = 8" $CTRACE info "$TMP/kv3.bin"
# header with dim = 0
{ printf '\000\000\000\000'; tail -c +5 "$M"; } >"$TMP/dim0.bin"
expect_fail "zero dim" "dim = 0" $CTRACE info "$TMP/dim0.bin"
# tokenizer whose first piece claims 100000 bytes
{ head -c 8 "$Z"; printf '\240\206\001\000'; tail -c +13 "$Z"; } >"$TMP/badlen.bin"
expect_fail "tokenizer bad length" "badlen.bin" $CTRACE generate "$M" -z "$TMP/badlen.bin"
head -c 3000 "$Z" >"$TMP/shorttok.bin"
expect_fail "tokenizer truncated" "shorttok.bin" $CTRACE generate "$M" -z "$TMP/shorttok.bin"
# prompt longer than the context: aidreams260K has seq_len 128
A=$SHARED/models/aidreams260K
long=$(i=0; while [ $i -lt 200 ]; do printf 'word%d ' $i; i=$((i+1)); done)
expect_fail "prompt longer than context" "seq_len 128" $CTRACE generate "$A/aidreams260K.bin" -z "$A/tok512.bin" -p "$long"
expect_fail "tokens longer than context" "context" $CTRACE logits "$A/aidreams260K.bin" --tokens "$(seq -s, 1 129)"
expect_fail "token outside vocabulary" "512" $CTRACE logits "$M" --tokens 1,512
expect_fail "malformed token list" "--tokens" $CTRACE logits "$M" --tokens 1,,2
expect_fail "bad number" "-n" $CTRACE generate "$M" -z "$Z" -n abc
expect_fail "mkmodel needs a seed" "seed" $CTRACE mkmodel --dim 8 --layers 1 --heads 2 --hidden 8 --vocab 8 -o "$TMP/x.bin"
[ ! -e "$TMP/x.bin" ] || fail "mkmodel wrote a file after a usage error"
expect_fail "unknown command" "unknown command" $CTRACE frobnicate
# an unwritable output leaves nothing behind
expect_fail "unwritable output" "/nonexistent/dir/out.f32" $CTRACE logits "$M" --tokens 1,403 -o /nonexistent/dir/out.f32
