#!/bin/sh
# make demo — the whole method offline, on ctrace's own default model (nothing downloaded):
#   1. a deterministic curriculum (acronyms, addition, facts, two-hop facts, prose) and its
#      tokenizer (ctrace curriculum);
#   2. the default model trained on it (ctrace train-model, <= 5 min on 2 cores);
#   3. a cross-layer transcoder trained on the model's activations (ctrace train-clt);
#   4. the replacement model's error statistics on held-out lines (ctrace clt-eval);
#   5. held-out accuracy per task and the paper's case studies traced on held-out prompts:
#      graphs (JSON + SVG), scores, top features, strongest paths to the answer, and the
#      interventions that test them (ctrace casestudy --check).
# Artifacts are cached under build/demo/<xxh3 of the settings and of the code that makes
# them>; build/demo/default points at the latest.  A second run takes seconds.  Training uses
# 2 threads on any machine: results are byte-identical for a seed and a thread count.
set -eu
CT=${CT:-build/ctrace}
SEED=1
LINES=300000
CLT_LINES=200000      # lines the transcoder trains on (the model's last 5% are held out)
MODEL_ARGS="--dim 128 --layers 4 --heads 4 --kv-heads 4 --seq-len 64 --batch 32 --steps 1300 --lr 3e-3 --warmup 100 --seed 1 --threads 2"
CLT_ARGS="--ctx 64 --features 1024 --tokens 400000 --lambda 0.05 --lr 1e-2 --seed 1 --threads 2"
# The code that makes the artifacts is part of the settings (its defaults are not spelled out).
CODE_FP=$(cat engine/curriculum.c engine/train_model.c engine/clt_train.c engine/clt.c \
          cmd/cmd_curriculum.c cmd/cmd_train_model.c cmd/cmd_clt.c | xxhsum -H3 - | sed 's/.*= //; s/ .*//')
KEY=$(printf '%s|%s|%s|%s|%s|%s' "$CODE_FP" "$SEED" "$LINES" "$CLT_LINES" "$MODEL_ARGS" "$CLT_ARGS" \
      | xxhsum -H3 - | sed 's/.*= //; s/ .*//')
C=build/demo/$KEY
G=build/demo/graphs
mkdir -p "$C" "$G"
ln -sfn "$KEY" build/demo/default
step() { printf '\n== %s\n' "$*"; }
T0=$(date +%s)

if [ ! -f "$C/model.bin" ]; then
    step "1. curriculum: $LINES lines, seed $SEED, and its tokenizer"
    $CT curriculum -o "$C/corpus.txt" -n $LINES --seed $SEED --tokenizer-out "$C/tok.bin" \
        --heldout-out "$C/heldout.tsv"
    step "2. training the default model (first run only, ~5 min)"
    t=$(date +%s)
    # shellcheck disable=SC2086  # MODEL_ARGS is a list of words
    $CT train-model --corpus "$C/corpus.txt" -z "$C/tok.bin" -o "$C/model.tmp" $MODEL_ARGS
    mv "$C/model.tmp" "$C/model.bin"
    echo "trained in $(( $(date +%s) - t )) s"
else
    step "1-2. curriculum and default model: cached in $C"
fi
$CT info "$C/model.bin" | head -3

if [ ! -f "$C/clt/config.yaml" ]; then
    step "3. training a cross-layer transcoder on the model's activations (first run only, ~1 min)"
    t=$(date +%s)
    # one training line per story (train-clt separates stories by blank lines)
    head -n $CLT_LINES "$C/corpus.txt" | awk '{ print; print "" }' >"$C/clt_train.txt"
    tail -n $(( LINES / 20 )) "$C/corpus.txt" | head -n 4000 | awk '{ print; print "" }' >"$C/heldout.txt"
    # shellcheck disable=SC2086  # CLT_ARGS is a list of words
    $CT train-clt "$C/model.bin" -z "$C/tok.bin" --corpus "$C/clt_train.txt" $CLT_ARGS -o "$C/clt.tmp"
    rm -rf "$C/clt" && mv "$C/clt.tmp" "$C/clt"
    echo "trained in $(( $(date +%s) - t )) s"
else
    step "3. cross-layer transcoder: cached in $C/clt ($CLT_ARGS)"
fi

step "4. replacement-model error statistics on held-out lines (ctrace clt-eval)"
if [ ! -f "$C/eval.txt" ]; then
    $CT clt-eval "$C/model.bin" "$C/clt" -z "$C/tok.bin" --text "$C/heldout.txt" --ctx 64 \
        --json "$C/eval.json" >"$C/eval.txt"
fi
cat "$C/eval.txt"

step "5. held-out accuracy and the case studies (ctrace casestudy --curriculum $SEED --check)"
$CT casestudy "$C/model.bin" -z "$C/tok.bin" --clt "$C/clt" --curriculum $SEED --check -o "$G"

printf '\ndemo done in %ss.  Graphs: %s/*.svg; interactive viewer:  build/ctrace serve %s\n' \
    "$(( $(date +%s) - T0 ))" "$G" "$G"
