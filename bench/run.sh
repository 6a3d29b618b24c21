#!/bin/sh
# bench/run.sh — `make bench`: the machine's limits and the kernel tables (bench_kernels),
# then the forward pass of a ~100M-parameter random model, all as markdown tables.
# Run from the repo root after build/ctrace and build/bench/* are built (the Makefile does).
#   B=build (build dir), SHARED=../shared (unused here; kept for symmetry with tests/run.sh)
#   BENCH_QUICK=1  short timings (smoke test; figures are rough)
set -u
B=${B:-build}
SHARED=${SHARED:-../shared}
CT=$B/ctrace
OUT=$B/bench
mkdir -p "$OUT"
QUICK=""
[ "${BENCH_QUICK:-0}" = 1 ] && QUICK=--quick

echo "## ctrace benchmarks"
echo

# ---- machine limits + kernels -----------------------------------------------------------------
# --limits writes the probe figures (dram_gbs, fma_gflops, vnni_gops) for the rows below.
LIMITS=$OUT/limits.txt
if ! "$B/bench/bench_kernels" $QUICK --limits "$LIMITS"; then
    echo "bench/run.sh: bench_kernels failed (a kernel disagreed with the reference?)" >&2
    exit 1
fi
DRAM=$(awk '$1 == "dram_gbs" { print $2 }' "$LIMITS" 2>/dev/null)

# ---- forward pass: hook for `ctrace mkmodel` / `ctrace bench-forward` --------------------------
# Runs only when the driver has the subcommands.  The ~100M model is cached under build/bench;
# it is rebuilt when the mkmodel arguments below change (or: rm build/bench/mk100m.bin).
MODEL=$OUT/mk100m.bin
MKARGS="--dim 768 --layers 12 --heads 12 --kv-heads 12 --hidden 2048 --vocab 32000 --seed 1"
if "$CT" mkmodel --help >/dev/null 2>&1; then
    if [ ! -s "$MODEL" ] || [ "$(cat "$MODEL.args" 2>/dev/null)" != "$MKARGS" ]; then
        rm -f "$MODEL.args"
        echo "(generating $MODEL: ctrace mkmodel $MKARGS)" >&2
        # shellcheck disable=SC2086  # MKARGS is a list of words
        if ! "$CT" mkmodel $MKARGS -o "$MODEL" >/dev/null; then
            echo "bench/run.sh: ctrace mkmodel failed" >&2
            exit 1
        fi
        echo "$MKARGS" >"$MODEL.args"
    fi
else
    echo "(ctrace has no mkmodel subcommand yet: forward-pass rows skipped)"
fi

if [ -s "$MODEL" ] && "$CT" bench-forward --help >/dev/null 2>&1; then
    echo "### Forward pass (mk100m: D=768, L=12, H=12, Hd=2048, V=32000, random weights)"
    echo
    DRAMOPT=""
    [ -n "$DRAM" ] && DRAMOPT="--dram-gbs $DRAM"
    FWDOPT=""
    [ -n "$QUICK" ] && FWDOPT="--prompt 8 --gen 8"
    header=--header
    for isa in $("$B/bench/bench_kernels" --list-isas); do
        for t in 1 2; do
            # shellcheck disable=SC2086
            if ! "$CT" bench-forward "$MODEL" --threads "$t" --isa "$isa" $DRAMOPT $FWDOPT $header; then
                echo "bench/run.sh: ctrace bench-forward --isa $isa --threads $t failed" >&2
                exit 1
            fi
            header=""
        done
    done
    echo
else
    echo "(ctrace has no bench-forward subcommand yet: forward-pass rows skipped)"
fi
exit 0
