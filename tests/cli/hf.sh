# Hugging Face model directories end to end: `ctrace info` (architecture, dtype, parameter
# count = tensor bytes / 4 for F32, the same fingerprint for DIR and DIR/config.json) and
# `ctrace logits` on each tiny model (../shared/models/hf-tiny): every position's argmax equals
# the transformers golden's (goldens.json row_argmax), the [T, V] file has the right size and
# does not depend on the thread count; bad directories fail with a message naming the file.
. tests/cli_lib.sh
command -v jq >/dev/null || fail "jq is needed to read goldens.json"
HF=$SHARED/models/hf-tiny
for a in llama qwen3 gemma2 gpt2 llama/bf16; do
    arch=${a%%/*}
    D=$HF/$a
    $CTRACE info "$D" >"$TMP/info" 2>"$TMP/err" || fail "info $a: $(cat "$TMP/err")"
    grep -q "^format       Hugging Face $arch, " "$TMP/info" || fail "info $a: format line: $(grep format "$TMP/info")"
    grep -q '^n_layers     3$' "$TMP/info" || fail "info $a: n_layers"
    if [ "$a" = llama/bf16 ]; then
        grep -q 'BF16 safetensors' "$TMP/info" || fail "info $a: dtype"
    else
        hl=$(od -An -tu8 -N8 "$D/model.safetensors" | tr -d ' ')
        bytes=$(( $(stat -L -c %s "$D/model.safetensors") - 8 - hl ))
        grep -q "^parameters   $((bytes / 4))\$" "$TMP/info" || fail "info $a: parameters != $((bytes / 4))"
    fi
    fp=$(sed -n 's/^xxh3 *//p' "$TMP/info")
    $CTRACE info "$D/config.json" | grep -q "^xxh3         $fp\$" || fail "info $a: fingerprint differs for config.json"
    # seq1 of the goldens: ids and the argmax of every row
    G=$HF/$arch/golden/goldens.json
    v=fp32; [ "$a" = llama/bf16 ] && v=bf16
    ids=$(jq -r ".variants.$v.sequences.seq1.ids | map(tostring) | join(\",\")" "$G")
    want=$(jq -r ".variants.$v.sequences.seq1.row_argmax | map(tostring) | join(\" \")" "$G")
    n=$(jq -r ".variants.$v.sequences.seq1.n" "$G")
    V=$(jq -r ".model_config.vocab_size" "$G")
    $CTRACE logits "$D" --tokens "$ids" >"$TMP/out" 2>"$TMP/err" || fail "logits $a: $(cat "$TMP/err")"
    got=$(sed -n 's/^pos [0-9]* token [0-9]* argmax \([0-9]*\) .*/\1/p' "$TMP/out" | tr '\n' ' ' | sed 's/ $//')
    [ "$got" = "$want" ] || fail "logits $a: argmax rows '$got', golden '$want'"
    $CTRACE logits "$D" --tokens "$ids" -o "$TMP/a.f32" --threads 1 || fail "logits -o $a"
    $CTRACE logits "$D" --tokens "$ids" -o "$TMP/b.f32" --threads 2 || fail "logits -o $a (2 threads)"
    [ "$(stat -c %s "$TMP/a.f32")" = $((4 * n * V)) ] || fail "logits $a: file size"
    cmp "$TMP/a.f32" "$TMP/b.f32" || fail "logits $a depend on threads"
    echo "ok: $a"
done
# bad directories
mkdir "$TMP/empty"
expect_fail "no config.json" "config.json" $CTRACE info "$TMP/empty"
cp "$HF/llama/config.json" "$TMP/empty/config.json"
expect_fail "no weights" "model.safetensors" $CTRACE logits "$TMP/empty" --tokens 1,2
sed 's/LlamaForCausalLM/MistralForCausalLM/' "$HF/llama/config.json" >"$TMP/empty/config.json"
expect_fail "unsupported architecture" "GPT2LMHeadModel" $CTRACE info "$TMP/empty"
expect_fail "token outside the vocabulary" "512" $CTRACE logits "$HF/llama" --tokens 1,512
echo ok
