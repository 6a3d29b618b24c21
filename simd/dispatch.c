// dispatch.c — build one table per instruction set the host can run, pick the active one.
//
// Every table starts as a copy of the scalar reference and the ISA's fill function
// overwrites what it implements.  The active table is the best the CPU supports
// (amx > avx512 > avxvnni > avx2 > scalar on x86-64, neon on aarch64) unless CTRACE_ISA names
// another.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "simd/simd.h"

static const char *const isa_names[SIMD_NISA] = {"scalar", "avx2", "avxvnni", "avx512", "neon", "amx"};

static SimdKernels tables[SIMD_NISA];
static int supported[SIMD_NISA];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static pthread_once_t active_once = PTHREAD_ONCE_INIT;
static _Atomic(SimdIsa) active_isa = SIMD_SCALAR;

#if defined(__x86_64__)
// XCR0: which register states the OS saves on a context switch (needs CPUID.OSXSAVE).
// libgcc's __builtin_cpu_supports checks this too; checking again costs nothing.
static uint64_t read_xcr0(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

// AMX: CPUID.(7,0):EDX bit 24 (AMX-TILE) and 25 (AMX-INT8), XCR0 bits 17-18 (tile config and
// data enabled by the OS), and Linux's per-process permission for the tile data state
// (arch_prctl ARCH_REQ_XCOMP_PERM, feature 18), without which the first tile load is SIGILL.
// Asked once, from build_tables, before any kernel runs; threads created later inherit it.
#define CT_ARCH_GET_XCOMP_PERM 0x1022
#define CT_ARCH_REQ_XCOMP_PERM 0x1023
#define CT_XFEATURE_XTILEDATA 18
static int amx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 24)) || !(d & (1u << 25))) return 0;
    if ((read_xcr0() & 0x60000) != 0x60000) return 0;
    if (syscall(SYS_arch_prctl, CT_ARCH_REQ_XCOMP_PERM, CT_XFEATURE_XTILEDATA) != 0) return 0;
    unsigned long perm = 0;
    if (syscall(SYS_arch_prctl, CT_ARCH_GET_XCOMP_PERM, &perm) != 0) return 0;
    return (perm >> CT_XFEATURE_XTILEDATA) & 1;
}
#endif

static int cpu_can_run(SimdIsa isa)
{
    switch (isa) {
    case SIMD_SCALAR: return 1;
#if defined(__x86_64__)
    case SIMD_AVX2: {
        __builtin_cpu_init();
        uint64_t xcr0 = read_xcr0();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               (xcr0 & 0x6) == 0x6;                        // SSE + AVX state
    }
    case SIMD_AVXVNNI: {   // CPUID.(7,1):EAX bit 4 (leaf 7 reports its last subleaf in EAX);
        unsigned a, b, c, d;   // VEX-encoded, so the AVX state suffices
        if (!cpu_can_run(SIMD_AVX2) || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || a < 1) return 0;
        __cpuid_count(7, 1, a, b, c, d);
        return (a >> 4) & 1;
    }
    case SIMD_AVX512: {
        __builtin_cpu_init();
        uint64_t xcr0 = read_xcr0();
        return cpu_can_run(SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM
    }
    case SIMD_AMX:   // the amx table's leftover rows run the VNNI tiles
        return cpu_can_run(SIMD_AVX512) && __builtin_cpu_supports("avx512vnni") && amx_usable();
#endif
#if defined(__aarch64__)
    case SIMD_NEON: return 1;   // Advanced SIMD is mandatory on AArch64
#endif
    default: return 0;
    }
}

// Whether this binary contains the ISA's kernels at all (vs. whether the CPU can run them).
static int compiled_in(SimdIsa isa)
{
#if defined(__x86_64__)
    return isa == SIMD_SCALAR || isa == SIMD_AVX2 || isa == SIMD_AVXVNNI || isa == SIMD_AVX512 || isa == SIMD_AMX;
#elif defined(__aarch64__)
    return isa == SIMD_SCALAR || isa == SIMD_NEON;
#else
    return isa == SIMD_SCALAR;
#endif
}

static void build_tables(void)
{
    for (int i = 0; i < SIMD_NISA; i++) {
        supported[i] = cpu_can_run((SimdIsa)i);
        if (!supported[i]) continue;
        simd_fill_scalar(&tables[i]);
        switch ((SimdIsa)i) {
#if defined(__x86_64__)
        case SIMD_AVX2: simd_fill_avx2(&tables[i]); break;
        case SIMD_AVXVNNI: simd_fill_avxvnni(&tables[i]); break;
        case SIMD_AVX512: simd_fill_avx512(&tables[i]); break;
        case SIMD_AMX: simd_fill_amx(&tables[i]); break;
#endif
#if defined(__aarch64__)
        case SIMD_NEON: simd_fill_neon(&tables[i]); break;
#endif
        default: break;
        }
    }
#if defined(__x86_64__)
    // AVX-512 without VNNI (Skylake-SP and -X): simd_fill_avx512 leaves the
    // int8 entries scalar; give them the best 256-bit ones instead (same bits, much faster).
    SimdKernels *v = &tables[SIMD_AVX512];
    const SimdKernels *from = supported[SIMD_AVXVNNI] ? &tables[SIMD_AVXVNNI] : &tables[SIMD_AVX2];
    if (supported[SIMD_AVX512] && v->matvec_q8 == tables[SIMD_SCALAR].matvec_q8 && supported[SIMD_AVX2]) {
        v->matvec_q8 = from->matvec_q8;
        v->matvec_q8x2 = from->matvec_q8x2;
        v->matmul_q8 = from->matmul_q8;
        v->matmul_q8x2 = from->matmul_q8x2;
        v->matmul_q8t = from->matmul_q8t;
        v->encode_q8 = from->encode_q8;
    }
#endif
}

static void ensure_tables(void) { pthread_once(&tables_once, build_tables); }

// The CTRACE_ISA override is process configuration: a value this build or CPU cannot honour
// is reported and the process exits 2 (the one exit() in the library, documented in simd.h).
static void choose_active(void)
{
    ensure_tables();
    SimdIsa best = SIMD_SCALAR;
    for (int i = SIMD_NISA - 1; i > 0; i--)
        if (supported[i]) {
            best = (SimdIsa)i;
            break;
        }
    const char *env = getenv("CTRACE_ISA");
    if (env && *env) {
        int found = -1;
        for (int i = 0; i < SIMD_NISA; i++)
            if (strcmp(env, isa_names[i]) == 0) found = i;
        if (found < 0) {
            fprintf(stderr, "ctrace: CTRACE_ISA=%s: expected one of scalar, avx2, avxvnni, avx512, amx, neon\n", env);
            exit(2);
        }
        if (!supported[found]) {
            fprintf(stderr, "ctrace: CTRACE_ISA=%s: %s; use one of:", env,
                    compiled_in((SimdIsa)found) ? "this CPU does not support it"
                                                : "this build does not contain it (other architecture)");
            for (int i = 0; i < SIMD_NISA; i++)
                if (supported[i]) fprintf(stderr, " %s", isa_names[i]);
            fprintf(stderr, "\n");
            exit(2);
        }
        best = (SimdIsa)found;
    }
    atomic_store(&active_isa, best);
}

const SimdKernels *simd_kernels(void)
{
    pthread_once(&active_once, choose_active);
    return &tables[atomic_load_explicit(&active_isa, memory_order_acquire)];
}

SimdIsa simd_active_isa(void)
{
    pthread_once(&active_once, choose_active);
    return atomic_load(&active_isa);
}

const char *simd_isa_name(SimdIsa isa)
{
    return (unsigned)isa < SIMD_NISA ? isa_names[isa] : "unknown";
}

int simd_isa_supported(SimdIsa isa)
{
    if ((unsigned)isa >= SIMD_NISA) return 0;
    ensure_tables();
    return supported[isa];
}

const SimdKernels *simd_kernels_for(SimdIsa isa)
{
    return simd_isa_supported(isa) ? &tables[isa] : NULL;
}

int simd_force(SimdIsa isa)
{
    if (!simd_isa_supported(isa)) return -1;
    pthread_once(&active_once, choose_active);   // so a later first call cannot undo the force
    atomic_store(&active_isa, isa);
    return 0;
}

static atomic_int matvec_streams;

int simd_q8_matvec_streams(int n)
{
    if (n != 0 && n != 1 && n != 2 && n != 4 && n != 8) return -1;
    atomic_store(&matvec_streams, n);
    return 0;
}

int simd_q8_matvec_streams_forced(void) { return atomic_load_explicit(&matvec_streams, memory_order_relaxed); }

static atomic_int matvec_width;

int simd_q8_matvec_width(int bits)
{
    if (bits != 0 && bits != 256 && bits != 512) return -1;
    atomic_store(&matvec_width, bits);
    return 0;
}

int simd_q8_matvec_width_forced(void) { return atomic_load_explicit(&matvec_width, memory_order_relaxed); }

// 1 on an AMD CPU (read once): the decode matvec's product width and the GEMM tiles' way of
// forming a power-of-two scale product both follow the vendor.
static atomic_int cpu_amd_state;   // 0: not read yet, 1: AMD, 2: other

static int cpu_amd(void)
{
    int m = atomic_load_explicit(&cpu_amd_state, memory_order_relaxed);
    if (!m) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        m = __builtin_cpu_is("amd") ? 1 : 2;
#else
        m = 2;
#endif
        atomic_store_explicit(&cpu_amd_state, m, memory_order_relaxed);
    }
    return m == 1;
}

// AMD's AVX-512 cores (Zen 4, Zen 5) run 512-bit integer products at the full clock; some
// Intel cores lower it for them (x86_avx512.c, the decode matvec), others do not: measured, once.
// CTRACE_Q8_WIDTH=256|512 overrides (another value: message, exit 2, as CTRACE_ISA).
static int width_default;
static pthread_once_t width_once = PTHREAD_ONCE_INIT;

static void choose_width(void)
{
    const char *env = getenv("CTRACE_Q8_WIDTH");
    if (env && *env) {
        if (strcmp(env, "256") && strcmp(env, "512")) {
            fprintf(stderr, "ctrace: CTRACE_Q8_WIDTH=%s: expected 256 or 512\n", env);
            exit(2);
        }
        width_default = atoi(env);
        return;
    }
    width_default = 512;
#if defined(__x86_64__)
    // Measured only where the AVX-512 matvec can run: not under CTRACE_ISA=avx2 and below (the
    // check's own 512-bit instructions would then run where the user asked for none: valgrind).
    SimdIsa a = simd_active_isa();
    __builtin_cpu_init();
    if ((a == SIMD_AVX512 || a == SIMD_AMX) && !cpu_amd() && __builtin_cpu_supports("avx512vnni") &&
        simd_avx512_vnni_clock_ratio() < 0.97)
        width_default = 256;
#endif
}

int simd_q8_matvec_width_default(void)
{
    pthread_once(&width_once, choose_width);
    return width_default;
}

static atomic_int pow2_scalef;   // 0: default, 1: vscalefps, 2: vmulps

int simd_q8_pow2_scalef(int mode)
{
    if (mode < 0 || mode > 2) return -1;
    atomic_store(&pow2_scalef, mode);
    return 0;
}

// vscalefps by default on AMD (simd.h).
int simd_q8_pow2_scalef_on(void)
{
    int m = atomic_load_explicit(&pow2_scalef, memory_order_relaxed);
    return m ? m == 1 : cpu_amd();
}
