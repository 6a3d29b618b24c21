#!/bin/sh
# make demo — the main job.  For now: generate from the real stories260K model in ../shared
# (greedy and a seeded sample), and show its info.  With no model there, say exactly which
# paths to pass.
set -e
SHARED=${SHARED:-../shared}
M=$SHARED/models/stories260K/stories260K.bin
Z=$SHARED/models/stories260K/tok512.bin
if [ ! -f "$M" ] || [ ! -f "$Z" ]; then
    echo "make demo: no model found at $M (and tokenizer $Z)."
    echo "Pass your own llama2.c checkpoint and tokenizer:"
    echo "  build/ctrace generate MODEL.bin -z TOKENIZER.bin -p 'Once upon a time' -n 64"
    echo "or point SHARED at a directory holding models/stories260K/{stories260K.bin,tok512.bin}:"
    echo "  make demo SHARED=/path/to/shared"
    exit 1
fi
echo "== ctrace info $M"
build/ctrace info "$M"
echo
echo "== greedy: ctrace generate ... -p 'Once upon a time' -t 0 -n 96"
build/ctrace generate "$M" -z "$Z" -p "Once upon a time" -t 0 -n 96
echo
echo "== sampled: ctrace generate ... -p 'Lily and Ben' -t 0.8 --topp 0.9 -s 42 -n 128"
build/ctrace generate "$M" -z "$Z" -p "Lily and Ben" -t 0.8 --topp 0.9 -s 42 -n 128
