#!/bin/sh
# tests/run.sh MODE — runs the test suites and prints one closing line "N passed, N failed".
#   unit : every Criterion suite build/tests/test_* and every tests/cli/*.sh script
#   asan : the Criterion suites and CLI scripts built with ASan+UBSan, under CTRACE_ISA=avx2
#          and CTRACE_ISA=scalar (the paths valgrind can run too), and the kernel, int8 and forward
#          suites under CTRACE_ISA=avxvnni where the CPU has AVX-VNNI, and under avx512 where
#          it has AVX-512
#   neon : under qemu-aarch64: the aarch64 kernel self-test, the golden forward checks
#          (stories260K and Hugging Face, 1 and 2 threads), `ctrace logits --threads 2` and
#          tests/cli/serve.sh
#   nonuma: the NUMA=0 build (no libnuma): test_mem, test_quant, tests/cli/quant.sh, and its
#          q8 logits under every --numa mode against the default build's bytes
#   all  : unit, asan, neon and nonuma
# Counts are test cases: Criterion's "Tested/Passing" lines and one per CLI script.
MODE=${1:-all}
SHARED=${SHARED:-../shared}
export SHARED
B=${B:-build}
PASS=0
FAIL=0
FAILED=""
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT

# run_suite NAME CMD...: run a Criterion binary, add its counts.
run_suite() {
    name=$1; shift
    if "$@" --jobs 2 >"$LOG/out" 2>&1; then rc=0; else rc=$?; fi
    line=$(grep 'Synthesis:' "$LOG/out" | tail -1)
    t=$(echo "$line" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
    p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    if [ -z "$t" ]; then t=1; p=0; fi
    f=$((t - p))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    PASS=$((PASS + p)); FAIL=$((FAIL + f))
    if [ "$f" != 0 ]; then
        FAILED="$FAILED $name"
        echo "---- $name FAILED:"; grep -v '^\[----\]' "$LOG/out" | tail -40
    fi
    echo "$name: $p/$t passed"
}

# run_script NAME CMD...: a shell test, one case, passes on exit 0.
run_script() {
    name=$1; shift
    if "$@" >"$LOG/out" 2>&1; then
        PASS=$((PASS + 1)); echo "$name: ok"
    else
        FAIL=$((FAIL + 1)); FAILED="$FAILED $name"
        echo "---- $name FAILED:"; tail -40 "$LOG/out"
    fi
}

unit() {
    prefix=$1
    for t in "$prefix"/tests/test_*; do
        case "$t" in *.o|*.d) continue;; esac
        [ -x "$t" ] && run_suite "$(basename "$t")$2" "$t"
    done
    for s in tests/cli/*.sh; do
        [ -f "$s" ] && CTRACE="$prefix/ctrace" run_script "$(basename "$s")$2" sh "$s"
    done
}

# neon_threads: `ctrace logits` under qemu writes the same bytes with 1, 2 and 3 threads (a
# hang here is what a loader/libc mismatch looks like; see the neon section).
neon_threads() {
    for th in 1 2 3; do
        timeout -k 10 120 $QEMU "$B/aarch64/ctrace" logits "$SHARED/models/stories260K/stories260K.bin" \
            --tokens 1,403,407,100,2,9,77 --threads $th -o "$LOG/logits$th.f32" || return 1
    done
    [ -s "$LOG/logits1.f32" ] && cmp "$LOG/logits1.f32" "$LOG/logits2.f32" && cmp "$LOG/logits1.f32" "$LOG/logits3.f32"
}

# nonuma_same: the NUMA=0 driver links no libnuma (the default one does), and its int8 logits
# under every --numa mode are the default build's bytes.
nonuma_same() {
    m="$SHARED/models/stories260K/stories260K.bin"
    toks=1,403,407,100,2,9,77
    ldd "$B/ctrace" | grep -q libnuma || { echo "$B/ctrace does not link libnuma"; return 1; }
    if ldd "$B/nonuma/ctrace" | grep libnuma; then echo "$B/nonuma/ctrace links libnuma"; return 1; fi
    "$B/ctrace" logits "$m" --tokens $toks --dtype q8 --threads 2 -o "$LOG/nonuma_ref.f32" || return 1
    [ -s "$LOG/nonuma_ref.f32" ] || return 1
    for mode in off local interleave replicate; do
        "$B/nonuma/ctrace" logits "$m" --tokens $toks --dtype q8 --numa $mode --threads 2 \
            -o "$LOG/nonuma_$mode.f32" || return 1
        cmp "$LOG/nonuma_ref.f32" "$LOG/nonuma_$mode.f32" || { echo "--numa $mode differs"; return 1; }
    done
}

if [ "$MODE" = unit ] || [ "$MODE" = all ]; then unit "$B" ""; fi
if [ "$MODE" = asan ] || [ "$MODE" = all ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
    for isa in avx2 scalar; do CTRACE_ISA=$isa unit "$B/asan" " [asan,$isa]"; done
    # The avxvnni table is avx2's but for its int8 products: their suites again, where the CPU
    # has AVX-VNNI.
    if grep -qw avx_vnni /proc/cpuinfo 2>/dev/null; then
        for t in test_simd test_quant test_forward; do
            CTRACE_ISA=avxvnni run_suite "$t [asan,avxvnni]" "$B/asan/tests/$t"
        done
    fi
    # AVX-512 (valgrind cannot run it, ASan and UBSan can): the kernel, int8 and forward suites
    # under the avx512 table too, where the CPU has it (both decode matvec widths: test_simd
    # forces each).
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
        for t in test_simd test_quant test_forward; do
            CTRACE_ISA=avx512 run_suite "$t [asan,avx512]" "$B/asan/tests/$t"
        done
    fi
    unset ASAN_OPTIONS UBSAN_OPTIONS
fi
if [ "$MODE" = neon ] || [ "$MODE" = all ]; then
    # -L / runs the arm64 loader and libc of one package (libc6:arm64).  -L /usr/aarch64-linux-gnu
    # pairs the cross toolchain's ld-linux-aarch64.so.1 (libc6-arm64-cross) with the libc.so.6
    # that /etc/ld.so.cache names (libc6:arm64); when their versions differ, their _rtld_global
    # layouts differ and the first pthread_create spins forever.
    QEMU="qemu-aarch64 -L /"
    run_script "kernels_selftest [neon,qemu]" timeout -k 10 600 $QEMU "$B/aarch64/kernels_selftest"
    run_script "forward_selftest [neon,qemu]" timeout -k 10 600 $QEMU "$B/aarch64/forward_selftest"
    run_script "logits --threads 2 [neon,qemu]" neon_threads
    CTRACE="$QEMU $B/aarch64/ctrace" run_script "serve.sh [neon,qemu]" sh tests/cli/serve.sh
fi
if [ "$MODE" = nonuma ] || [ "$MODE" = all ]; then
    run_suite "test_mem [nonuma]" "$B/nonuma/tests/test_mem"
    run_suite "test_quant [nonuma]" "$B/nonuma/tests/test_quant"
    CTRACE="$B/nonuma/ctrace" run_script "quant.sh [nonuma]" sh tests/cli/quant.sh
    run_script "logits without libnuma, every --numa mode [nonuma]" nonuma_same
fi
echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ] || { echo "failed:$FAILED"; exit 1; }
