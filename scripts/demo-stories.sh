#!/bin/sh
# make demo-stories — the method on the real stories260K model in ../shared:
#   1. the model (info, a greedy continuation);
#   2. a cross-layer transcoder trained by ctrace on the model's own text (cached);
#   3. the replacement model's error statistics on held-out text;
#   4. an attribution graph of one prompt: scores, top nodes, JSON + .ctg + SVG;
#   5. the graph checked against the real model (validate) and one intervention.
# Artifacts are cached under build/demo/<xxh3 of the settings and the model>; a second run
# only repeats steps 4-5 (seconds).  With no model in ../shared, says which paths to pass.
set -eu
SHARED=${SHARED:-../shared}
CT=build/ctrace
M=$SHARED/models/stories260K/stories260K.bin
Z=$SHARED/models/stories260K/tok512.bin
if [ ! -f "$M" ] || [ ! -f "$Z" ]; then
    echo "make demo: no model found at $M (and tokenizer $Z)."
    echo "Pass your own llama2.c checkpoint and tokenizer, e.g.:"
    echo "  build/ctrace generate MODEL.bin -z TOKENIZER.bin -p 'Once upon a time' -n 64"
    echo "or point SHARED at a directory holding models/stories260K/{stories260K.bin,tok512.bin}:"
    echo "  make demo SHARED=/path/to/shared"
    exit 1
fi

# Settings of the cached artifacts: change any and the cache key changes.
TRAIN_TOKENS=400000
EVAL_TOKENS=60000
CLT_ARGS="--features 512 --tokens $TRAIN_TOKENS --lambda 0.05 --lr 1e-2 --seed 1"
PROMPT="Once upon a time, there was a little girl named Lily. She"
MODEL_FP=$($CT info "$M" | awk '$1 == "xxh3" { print $2 }')
# The training code is part of the settings: its defaults are not spelled out in CLT_ARGS.
CODE_FP=$(cat engine/clt_train.c engine/clt.c cmd/cmd_clt.c | xxhsum -H3 - | sed 's/.*= //; s/ .*//')
KEY=$(printf '%s|%s|%s|%s|%s|sample-seed-1,2' "$MODEL_FP" "$CODE_FP" "$TRAIN_TOKENS" "$EVAL_TOKENS" "$CLT_ARGS" | xxhsum -H3 - | sed 's/.*= //; s/ .*//')
C=build/demo/$KEY
mkdir -p "$C"
step() { printf '\n== %s\n' "$*"; }
T0=$(date +%s)

step "1. the model: ctrace info, and a greedy continuation"
$CT info "$M"
$CT generate "$M" -z "$Z" -p "Once upon a time" -t 0 -n 48 2>/dev/null

if [ ! -f "$C/clt/config.yaml" ]; then
    step "2. training a cross-layer transcoder on the model's own text (first run only, ~3 min)"
    $CT sample "$M" -z "$Z" -n $TRAIN_TOKENS --seed 1 -o "$C/train.txt"
    $CT sample "$M" -z "$Z" -n $EVAL_TOKENS --seed 2 -o "$C/heldout.txt"
    # shellcheck disable=SC2086  # CLT_ARGS is a list of words
    $CT train-clt "$M" -z "$Z" --corpus "$C/train.txt" $CLT_ARGS -o "$C/clt.tmp"
    rm -rf "$C/clt" && mv "$C/clt.tmp" "$C/clt"
else
    step "2. cross-layer transcoder: cached in $C/clt ($CLT_ARGS)"
fi

step "3. replacement-model error statistics on held-out text (ctrace clt-eval)"
if [ ! -f "$C/eval.txt" ]; then
    $CT clt-eval "$M" "$C/clt" -z "$Z" --text "$C/heldout.txt" --json "$C/eval.json" >"$C/eval.txt"
fi
cat "$C/eval.txt"

G=build/demo/graphs
mkdir -p "$G"
step "4. attribution graph: \"$PROMPT\""
$CT attribute "$M" -z "$Z" --clt "$C/clt" -p "$PROMPT" -o "$G/lily.json" --raw "$G/lily.ctg" --slug lily
$CT graph-info "$G/lily.ctg" --top 12
$CT render "$G/lily.ctg" -o "$G/lily.svg"
$CT render "$G/lily.ctg" -o "$G/lily.html"
echo "wrote $G/lily.json (viewer JSON), $G/lily.ctg (raw graph), $G/lily.svg, $G/lily.html"

step "5. does the graph predict the real model? (ctrace validate, top 8 features)"
$CT validate "$G/lily.ctg" "$M" -z "$Z" --clt "$C/clt" --top 8

# The most influential feature node of the graph: graph-info lists node ids {l}_{f}_{p}.
TOP=$($CT graph-info "$G/lily.ctg" --top 60 | awk '$3 == "feature" { split($2, a, "_"); print a[1] ":" a[3] ":" a[2]; exit }')
if [ -n "$TOP" ]; then
    step "6. intervention: ablate the top feature $TOP (constrained: direct effects only)"
    $CT intervene "$M" -z "$Z" --clt "$C/clt" -p "$PROMPT" --set "$TOP=0" --mode constrained --top 5
fi
printf '\ndemo done in %ss.  Open the interactive viewer with:  build/ctrace serve %s\n' "$(( $(date +%s) - T0 ))" "$G"
