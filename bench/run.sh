#!/bin/sh
# bench/run.sh — `make bench`: the machine's limits and the kernel tables (bench_kernels),
# then the forward pass of a ~100M-parameter random model (llama2.c: f32 and q8; Hugging Face
# layout: f32 and bf16), transcoders and attribution, all as markdown tables.
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
    echo "### Forward pass (stories260K, real; mk100m: D=768, L=12, H=12, Hd=2048, V=32000, random weights)"
    echo
    DRAMOPT=""
    [ -n "$DRAM" ] && DRAMOPT="--dram-gbs $DRAM"
    FWDOPT=""
    [ -n "$QUICK" ] && FWDOPT="--prompt 8 --gen 8"
    header=--header
    S260=$SHARED/models/stories260K/stories260K.bin
    for m in "$S260" "$MODEL"; do
        [ -f "$m" ] || continue
        for isa in $("$B/bench/bench_kernels" --list-isas); do
            # fp32 forward: amx runs avx512's kernels and avxvnni avx2's (they differ in int8 only)
            case "$isa" in amx|avxvnni) continue;; esac
            for t in 1 2; do
                # shellcheck disable=SC2086
                if ! "$CT" bench-forward "$m" --threads "$t" --isa "$isa" $DRAMOPT $FWDOPT $header; then
                    echo "bench/run.sh: ctrace bench-forward $m --isa $isa --threads $t failed" >&2
                    exit 1
                fi
                header=""
            done
        done
    done
    echo "(decode GB/s = bytes read per token x tok/s: weights + the KV cache rows attended to; stories260K fits in cache, so its figure is not DRAM traffic)"
    echo
else
    echo "(ctrace has no bench-forward subcommand yet: forward-pass rows skipped)"
fi

# ---- long context: prefill and decode at 1900 tokens of context -------------------------------
# The same ~100M weights with a 2048-position context (mkmodel --seq-len 2048; cached beside
# mk100m.bin).  At this length attention reads the KV cache (2 x 12 layers x 1900 x 768 fp32 =
# 140 MB per decode step, more than the q8 weights), so decode GB/s counts those rows too.
LONGMODEL=$OUT/mk100m-ctx2048.bin
LONGARGS="$MKARGS --seq-len 2048"
if [ -s "$MODEL" ] && "$CT" bench-forward --help >/dev/null 2>&1; then
    if [ ! -s "$LONGMODEL" ] || [ "$(cat "$LONGMODEL.args" 2>/dev/null)" != "$LONGARGS" ]; then
        rm -f "$LONGMODEL.args"
        # shellcheck disable=SC2086  # LONGARGS is a list of words
        "$CT" mkmodel $LONGARGS -o "$LONGMODEL" >/dev/null || { echo "bench/run.sh: ctrace mkmodel (long) failed" >&2; exit 1; }
        echo "$LONGARGS" >"$LONGMODEL.args"
    fi
    LP=1900; LG=64
    [ -n "$QUICK" ] && LP=256 && LG=8
    echo "### Long context (mk100m with seq_len 2048: prefill of $LP tokens, then $LG decode steps; best of 2)"
    echo
    header=--header
    isa=$("$B/bench/bench_kernels" --list-isas | tail -1)
    for t in 1 2; do
        for d in f32 q8; do
            # shellcheck disable=SC2086
            "$CT" bench-forward "$LONGMODEL" --dtype "$d" --threads "$t" --isa "$isa" --prompt $LP --gen $LG --best 2 \
                $DRAMOPT $header || { echo "bench/run.sh: bench-forward $LONGMODEL --dtype $d failed" >&2; exit 1; }
            header=""
        done
    done
    echo
fi

# ---- int8: kernels vs the machine's limits, then q8 vs f32 decode, gcc and clang ---------------
# bench_q8 verifies every table bit for bit against scalar, then prints its own probes taken in
# the same run (interleaved with the kernel timings: this machine may be shared).
# CLANG=0 skips the clang build (it compiles the library again under $B/clang).
Q8MODEL=$OUT/mk100m.q8
DRAMOPT=${DRAMOPT-}
FWDOPT=${FWDOPT-}
if [ -s "$MODEL" ] && [ -x "$B/bench/bench_q8" ]; then
    if [ ! -s "$Q8MODEL" ] || [ "$MODEL" -nt "$Q8MODEL" ]; then
        echo "(quantizing $MODEL -> $Q8MODEL: ctrace quantize)" >&2
        "$CT" quantize "$MODEL" "$Q8MODEL" >/dev/null 2>&1 || { echo "bench/run.sh: ctrace quantize failed" >&2; exit 1; }
    fi
fi
BEST=2
[ -n "$QUICK" ] && BEST=1
# q8_rows CTRACE BUILD: decode f32 vs q8 (16-bit activations) vs q8a8 (8-bit activations, the
# same int8 file) on the best int8 table, 1 and 2 threads.
q8_rows() {
    ct=$1; build=$2
    isa=$("$B/bench/bench_kernels" --list-isas | tail -1)
    for t in 1 2; do
        for run in "$MODEL f32" "$Q8MODEL q8" "$Q8MODEL q8a8"; do
            m=${run% *}
            d=${run##* }
            # shellcheck disable=SC2086
            "$ct" bench-forward "$m" --dtype "$d" --threads "$t" --isa "$isa" --best $BEST $DRAMOPT $FWDOPT $header \
                | sed "s/^| \(mk100m[^|]*\)|/| \1($build) |/" || { echo "bench/run.sh: bench-forward $m --dtype $d ($build) failed" >&2; exit 1; }
            header=""
        done
    done
}
if [ -s "$Q8MODEL" ]; then
    echo "### int8 kernels ($(${CC:-gcc} --version | head -1))"
    echo
    "$B/bench/bench_q8" $QUICK | sed '1,2d' || { echo "bench/run.sh: bench_q8 failed" >&2; exit 1; }
    echo "### Decode, q8 / q8a8 vs f32 (mk100m; best of $BEST passes; decode GB/s = weight + KV cache bytes per token x tok/s)"
    echo
    header=--header
    q8_rows "$CT" "${CC:-gcc}"
    if [ "${CLANG:-1}" != 0 ] && command -v clang >/dev/null 2>&1 && [ "${CC:-gcc}" != clang ]; then
        echo "(building with clang under $B/clang)" >&2
        if make -s -j2 B="$B/clang" CC=clang "$B/clang/ctrace" "$B/clang/bench/bench_q8" >/dev/null 2>&1; then
            q8_rows "$B/clang/ctrace" clang
            echo
            echo "### int8 kernels ($(clang --version | head -1))"
            echo
            "$B/clang/bench/bench_q8" $QUICK | sed '1,2d' || { echo "bench/run.sh: clang bench_q8 failed" >&2; exit 1; }
        else
            echo "(clang build failed: clang rows skipped)"
        fi
    fi
    echo
fi
# ---- bf16 weights: kernels vs the limits, then a ~100M Hugging Face Llama in f32 and bf16 ------
# bench_bf16 verifies every table bit for bit before timing (bf16w == the fp32 kernels on the
# widened weights, bf16dot == scalar.c) and writes the DRAM read bandwidth it measured (best of
# the probe passes interleaved with its matvec passes) for the forward rows.  The model is a
# random LlamaForCausalLM in HF layout (config.json + model.safetensors), written by
# `bench_bf16 make-model` twice: F32 and the same weights rounded to BF16 (~110M parameters,
# 0.44 + 0.22 GB, cached under build/bench, rebuilt when HFARGS change).  Rows: the F32
# checkpoint as f32; the BF16 checkpoint as bf16 (the forward's bf16 mode: fp32 arithmetic on
# the bf16 weights, the same logits as its f32 load) and as bf16dot (VDPBF16PS, only where the
# CPU has AVX512_BF16); 1 and 2 threads, best of BBEST passes.
HFARGS="--dim 768 --layers 12 --heads 12 --kv-heads 12 --hidden 2048 --vocab 32000 --ctx 1024 --seed 1"
HF32=$OUT/hf100m-f32
HF16=$OUT/hf100m-bf16
if [ -x "$B/bench/bench_bf16" ] && "$CT" bench-forward --help >/dev/null 2>&1; then
    BLIM=$OUT/limits_bf16.txt
    # shellcheck disable=SC2086
    "$B/bench/bench_bf16" $QUICK --limits "$BLIM" || { echo "bench/run.sh: bench_bf16 failed" >&2; exit 1; }
    BDRAM=$(awk '$1 == "dram_gbs" { print $2 }' "$BLIM")
    BDOT=$(awk '$1 == "dpbf16_gflops" { print ($2 > 0) }' "$BLIM")
    if [ ! -s "$HF32/model.safetensors" ] || [ ! -s "$HF16/model.safetensors" ] ||
        [ "$(cat "$OUT/hf100m.args" 2>/dev/null)" != "$HFARGS" ]; then
        rm -f "$OUT/hf100m.args"
        echo "(generating $HF32 and $HF16: bench_bf16 make-model $HFARGS)" >&2
        # shellcheck disable=SC2086
        "$B/bench/bench_bf16" make-model "$HF32" "$HF16" $HFARGS >&2 || { echo "bench/run.sh: bench_bf16 make-model failed" >&2; exit 1; }
        echo "$HFARGS" >"$OUT/hf100m.args"
    fi
    BBEST=3
    [ -n "$QUICK" ] && BBEST=1
    BFWD=""
    [ -n "$QUICK" ] && BFWD="--prompt 8 --gen 8"
    echo "### Forward pass, f32 vs bf16 (hf100m: Hugging Face LlamaForCausalLM, D=768, L=12, H=12, Hd=2048, V=32000, tied, random weights; best of $BBEST)"
    echo
    echo "decode GB/s = bytes of weights per token (fp32: 4 x parameters; bf16: 2 x the matrices) x decode tok/s;"
    echo "of DRAM read = that / the one-core DRAM read bandwidth measured above in this run ($BDRAM GB/s)."
    echo
    header=--header
    for t in 1 2; do
        for run in "$HF32 f32" "$HF16 bf16" "$HF16 bf16dot"; do
            m=${run% *}
            d=${run##* }
            [ "$d" = bf16dot ] && [ "$BDOT" != 1 ] && continue
            # shellcheck disable=SC2086
            "$CT" bench-forward "$m" --dtype "$d" --threads "$t" --best $BBEST --dram-gbs "$BDRAM" $BFWD $header ||
                { echo "bench/run.sh: bench-forward $m --dtype $d --threads $t failed" >&2; exit 1; }
            header=""
        done
    done
    [ "$BDOT" = 1 ] || echo "(no AVX512_BF16 on this CPU: bf16dot rows skipped; it would run scalar.c's loop)"
    echo
fi

# ---- transcoders: encoder throughput vs the FMA peak, training tokens/s ------------------------
echo "### Transcoders (bench/bench_clt.c; ctrace train-clt)"
echo
if ! "$B/bench/bench_clt"; then echo "bench/run.sh: bench_clt failed" >&2; exit 1; fi
S260M=$SHARED/models/stories260K
if [ -f "$S260M/stories260K.bin" ]; then
    TC=$OUT/clt_train_bench
    mkdir -p "$TC"
    [ -s "$TC/corpus.txt" ] || "$CT" sample "$S260M/stories260K.bin" -z "$S260M/tok512.bin" -n 60000 --seed 7 -o "$TC/corpus.txt" 2>/dev/null
    echo
    echo "| model | features/layer | tokens | threads | train wall s | train tok/s |"
    echo "|---|---|---|---|---|---|"
    for t in 1 2; do
        rm -rf "$TC/clt"
        t0=$(date +%s.%N)
        "$CT" train-clt "$S260M/stories260K.bin" -z "$S260M/tok512.bin" --corpus "$TC/corpus.txt" \
            --features 512 --tokens 50000 --seed 1 --threads $t -o "$TC/clt" >/dev/null 2>&1 \
            || { echo "bench/run.sh: train-clt failed" >&2; exit 1; }
        t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" -v th=$t 'BEGIN { printf "| stories260K | 512 | 50000 | %d | %.1f | %.0f |\n", th, b - a, 50000 / (b - a) }'
    done
    echo
fi

# ==== attribution (bench/bench_attr.c) ==== BEGIN ===============================================
# Graph time, CPU time and peak RSS of the attribution pipeline (replacement model -> budgeted
# rows by backward sweeps -> pruning and scores; what `ctrace attribute` does minus file output),
# the sweep's FLOP rate against the fp32 FMA peak probed in this run, scaling over prompt length
# and active features, and the memory model / longest prompt in 24 GiB on the ~100M model.
# Self-contained: run it alone with
#     sed -n '/^# ==== attribution .* BEGIN/,/^# ==== attribution .* END/p' bench/run.sh | sh
# Budget: 155 s of CPU; measured 228 s wall on the 2-core machine shared at load ~4.5 (wall
# figures are then noisy: read the CPU columns; an idle machine should need ~100 s).  Work is bounded by the feature budget M of each `--run T:FIRE:M` (the
# --max-feature-nodes of `ctrace attribute`): 64 for the scaling rows, 256 for the 100M main
# row; the ~20-token stories260K row uses the default 7500 (all of its active features).
# The random CLTs are cached under build/bench (the 100M one, 8192 features, bf16, 1.1 GB,
# takes ~30 s to make once; rm -r build/bench/clt_* to rebuild).  BENCH_ATTR=0 skips the
# section; BENCH_QUICK=1 runs the stories260K rows only.
ATTR=${B:-build}/bench/bench_attr
AOUT=${B:-build}/bench
ASH=${SHARED:-../shared}/models/stories260K
if [ "${BENCH_ATTR:-1}" != 0 ] && [ -x "$ATTR" ]; then
    # CPU seconds (user + system) of this shell's finished children, from `times` run in this
    # shell (not in a $(...) subshell, which has no children): attr_cpu FILE, then read FILE
    attr_cpu() {
        times >"$1.t"
        awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' \
            "$1.t" >"$1"
    }
    # a cached random CLT: attr_clt DIR MODEL ARGS... (rebuilt when the arguments change)
    attr_clt() {
        d=$1; shift
        if [ ! -s "$d/config.yaml" ] || [ "$(cat "$d.args" 2>/dev/null)" != "$*" ]; then
            rm -f "$d.args"
            echo "(generating $d: bench_attr make-clt $*)" >&2
            "$ATTR" make-clt "$@" "$d" >&2 || { echo "bench/run.sh: bench_attr make-clt failed" >&2; exit 1; }
            echo "$*" >"$d.args"
        fi
    }
    # one table group: the command as an HTML comment, then its markdown
    attr_runs() {
        echo "<!-- $ATTR runs $* -->"
        echo
        "$ATTR" runs "$@" || { echo "bench/run.sh: bench_attr runs $1 failed" >&2; exit 1; }
    }
    at0=$(date +%s)
    attr_cpu "$AOUT/.attr_cpu0"
    echo "### Attribution graphs (bench/bench_attr.c)"
    echo
    FMA=$("$ATTR" probe | awk '{ print $2 }')   # one core's fp32 FMA peak, GFLOP/s
    echo "fp32 FMA peak measured now: $FMA GFLOP per CPU second of one core. Rows FLOPs are counted by the formula in"
    echo "bench/bench_attr.c (GO = G Wo, the V path, the source products over 1 error + the active features"
    echo "of (l <= layer, p), the pattern mixing over t <= p, the tokens); \"GFLOP/s\" is per wall second, against"
    echo "threads x the peak; \"per CPU-s\" is per CPU second, against one core. Peak RSS = VmHWM during the run"
    echo "(reset before it). Times: replacement = forward + encode + errors; rows = all sweeps + budget ranking + CSR."
    echo

    # 1 + 3 (small model): stories260K + random CLT (512 features, fp32, JumpReLU thresholds
    # calibrated so ~7% fire on the prompt), the ~20-token prompt, full graph (and one bare
    # sweep); 1/20% active at T = 64; T = 16..1024 (random tokens, context raised to 1024 in
    # memory; RoPE has no learned positions) at 5% active, M = 64.
    SP="Once upon a time, there was a little girl named Lily. She loved to play"
    attr_clt "$AOUT/clt_s260k_512" "$ASH/stories260K.bin" --features 512 --fire 0.07 --seed 1 \
        --tokenizer "$ASH/tok512.bin" --prompt "$SP"
    echo "#### stories260K (D=64, L=5, H=8, V=512) + random CLT (F=512 per layer, fp32)"
    echo
    attr_runs "$ASH/stories260K.bin" "$AOUT/clt_s260k_512" --tokenizer "$ASH/tok512.bin" --prompt "$SP" \
        --seq-len 1024 --fma-gflops "$FMA" --label stories260K \
        --run 0:0:7500:sweep --run 64:0.01:64 --run 64:0.2:64 \
        --run 16:0.05:64 --run 32:0.05:64 --run 64:0.05:64 --run 128:0.05:64 --run 256:0.05:64 \
        --run 512:0.05:64 --run 1024:0.05:64

    # 2 + 3 + 4 (~100M model): mk100m (made by the forward section) + random CLT of 8192
    # features per layer saved in bf16 (decoders stay mapped and rows are converted on use, as
    # in `ctrace attribute`); thresholds re-calibrated on each prompt (first 128 positions).
    # Main row T = 64, 5% active, M = 256, plus one bare sweep of 256 rows; 1/20% active at
    # T = 32; T = 16..256 at M = 64 (context raised in memory), extrapolated to 512 and 1024;
    # the memory model of every run against its measured peak, and the largest T in 24 GiB.
    AM=$AOUT/mk100m.bin
    if [ "${BENCH_QUICK:-0}" = 1 ]; then
        echo "(BENCH_QUICK=1: ~100M attribution rows skipped)"
        echo
    elif [ ! -s "$AM" ]; then
        echo "($AM missing (made by the forward section): ~100M attribution rows skipped)"
        echo
    else
        attr_clt "$AOUT/clt_mk100m_8192" "$AM" --features 8192 --fire 0.05 --seed 1 --dtype bf16 --random-tokens 64
        echo "#### mk100m (D=768, L=12, H=12, V=32000, random) + random CLT (F=8192 per layer, bf16 file)"
        echo
        attr_runs "$AM" "$AOUT/clt_mk100m_8192" --seq-len 4096 --fma-gflops "$FMA" --label mk100m \
            --mem-limit-gib 24 --extrapolate 512,1024 \
            --run 64:0.05:256:sweep --run 32:0.01:64 --run 32:0.2:64 \
            --run 16:0.05:64 --run 32:0.05:64 --run 64:0.05:64 --run 128:0.05:64 --run 256:0.05:64
    fi
    attr_cpu "$AOUT/.attr_cpu1"
    echo "(attribution section: $(( $(date +%s) - at0 )) s wall, $(cat "$AOUT/.attr_cpu0" "$AOUT/.attr_cpu1" |
        awk 'NR == 1 { a = $1 } NR == 2 { printf "%.0f", $1 - a }') s CPU of its processes)"
    echo
fi
# ==== attribution (bench/bench_attr.c) ==== END =================================================
exit 0
