# Generated text equals the reference program's stdout byte for byte (greedy and seeded
# top-p samples), for stories260K: ../shared/models/stories260K/golden/runc_cli/*.txt
. tests/cli_lib.sh
G=$S260/golden/runc_cli
check() {
    want=$1; shift
    $CTRACE generate "$S260/stories260K.bin" -z "$S260/tok512.bin" "$@" >"$TMP/got" 2>"$TMP/err" \
        || fail "generate $*: $(cat "$TMP/err")"
    cmp "$TMP/got" "$G/$want" || { diff "$TMP/got" "$G/$want" | head; fail "$want differs"; }
    echo "ok: $want"
}
check greedy_n200_no_prompt.txt -t 0 -n 200
check greedy_n256_no_prompt.txt -t 0
check greedy_n64_prompt_once_upon_a_time.txt -t 0 -n 64 -p "Once upon a time"
check sample_t1.0_p0.9_s133742_n256.txt -t 1.0 --topp 0.9 -s 133742 -n 256
check sample_t0.8_p0.9_s42_n128_prompt.txt -t 0.8 --topp 0.9 -s 42 -n 128 -p "Once upon a time"
# Same seed, any thread count: same text.
$CTRACE generate "$S260/stories260K.bin" -z "$S260/tok512.bin" -t 1 -s 7 -n 100 --threads 1 >"$TMP/a" 2>/dev/null
$CTRACE generate "$S260/stories260K.bin" -z "$S260/tok512.bin" -t 1 -s 7 -n 100 --threads 2 >"$TMP/b" 2>/dev/null
cmp "$TMP/a" "$TMP/b" || fail "threads changed the sample"
