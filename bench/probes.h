// probes.h — what one core of this machine can do at most, measured, so kernel and forward
// benchmarks can be reported as a fraction of it:
//   DRAM streaming read bandwidth (GB/s)  — the ceiling for decode (every weight read once)
//   fp32 FMA peak (GFLOP/s)               — the ceiling for prefill/matmul
//   int8 VNNI peak (GOP/s, vpdpbusd)      — the ceiling for later int8 kernels
//
// Header-only (static functions): every bench/*.c is its own binary, so shared bench code
// lives here.  bench files are compiled with the default flags, so each vector loop is a
// function with __attribute__((target(...))) chosen at run time by __builtin_cpu_supports.
// Every probe returns the best of several timed runs (the least disturbed one).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/mem.h"
#include "simd/amx_cfg.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define PROBE_X86 1
#else
#define PROBE_X86 0
#endif

// A value the compiler cannot prove unused: keeps the probe loops alive.
static volatile uint64_t probe_sink;

// ---- machine description --------------------------------------------------------------------
// "model name" from /proc/cpuinfo (x86), else "CPU part"/"Hardware" (arm), else "unknown".
static void probe_cpu_model(char *out, size_t n) {
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10) || !strncmp(line, "Hardware", 8)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                snprintf(out, n, "%s", c);
                out[strcspn(out, "\n")] = 0;
                break;
            }
        }
    }
    fclose(f);
}

// Last-level cache in bytes: sysconf, then sysfs index3/index2, else 32 MiB.  (Under a
// hypervisor the figure may be the host's whole L3 — treat it as an upper bound.)
static size_t probe_llc_bytes(void) {
#ifdef _SC_LEVEL3_CACHE_SIZE
    long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (v > 0) return (size_t)v;
#endif
    const char *paths[] = {"/sys/devices/system/cpu/cpu0/cache/index3/size",
                           "/sys/devices/system/cpu/cpu0/cache/index2/size"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) continue;
        unsigned long x = 0;
        char unit = 0;
        int got = fscanf(f, "%lu%c", &x, &unit);
        fclose(f);
        if (got >= 1 && x > 0) return (size_t)x * (unit == 'K' ? 1024 : unit == 'M' ? 1 << 20 : 1);
    }
    return (size_t)32 << 20;
}

// ---- DRAM streaming read --------------------------------------------------------------------
// Sum 64-bit integers over the buffer: integer adds cannot hit denormal slow paths, and 8
// independent accumulators keep enough loads in flight.  n8 is the length in uint64 words,
// a multiple of 64 (512 bytes per iteration).  One sequential stream does not always reach a
// core's read bandwidth (Zen 5: ~0.85 of two streams), so the AVX-512 probe also reads the two
// halves of the buffer side by side (two streams, 256 bytes of each per step) and the probe
// reports the better of the two: the kernels are measured against the most a core can read.
#if PROBE_X86
__attribute__((target("avx512f"))) static uint64_t probe_read_avx512(const uint64_t *p, size_t n8) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (size_t i = 0; i < n8; i += 64) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512((const void *)(p + i + 0)));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512((const void *)(p + i + 8)));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512((const void *)(p + i + 16)));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512((const void *)(p + i + 24)));
        s4 = _mm512_add_epi64(s4, _mm512_load_si512((const void *)(p + i + 32)));
        s5 = _mm512_add_epi64(s5, _mm512_load_si512((const void *)(p + i + 40)));
        s6 = _mm512_add_epi64(s6, _mm512_load_si512((const void *)(p + i + 48)));
        s7 = _mm512_add_epi64(s7, _mm512_load_si512((const void *)(p + i + 56)));
    }
    s0 = _mm512_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)),
                          _mm512_add_epi64(_mm512_add_epi64(s4, s5), _mm512_add_epi64(s6, s7)));
    return (uint64_t)_mm512_reduce_add_epi64(s0);
}

__attribute__((target("avx512f"))) static uint64_t probe_read2_avx512(const uint64_t *p, size_t n8) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    const uint64_t *q = p + n8 / 2;   // n8 / 2 is a multiple of 32
    for (size_t i = 0; i < n8 / 2; i += 32) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512((const void *)(p + i + 0)));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512((const void *)(q + i + 0)));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512((const void *)(p + i + 8)));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512((const void *)(q + i + 8)));
        s4 = _mm512_add_epi64(s4, _mm512_load_si512((const void *)(p + i + 16)));
        s5 = _mm512_add_epi64(s5, _mm512_load_si512((const void *)(q + i + 16)));
        s6 = _mm512_add_epi64(s6, _mm512_load_si512((const void *)(p + i + 24)));
        s7 = _mm512_add_epi64(s7, _mm512_load_si512((const void *)(q + i + 24)));
    }
    s0 = _mm512_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)),
                          _mm512_add_epi64(_mm512_add_epi64(s4, s5), _mm512_add_epi64(s6, s7)));
    return (uint64_t)_mm512_reduce_add_epi64(s0);
}

// The same sums with each line prefetched into L1 (prefetcht0) 8 lines before its load, in
// one stream or two side by side.  On the Intel Xeon VM these read 18-20 GB/s where the plain
// loops above read 14-17 (the hardware prefetchers alone keep fewer lines in flight than a
// core can), so the probe also runs them: a kernel is compared with the most a core reads.
#define PROBE_PF_LINES 8
// TWO (a constant): 0 reads lines 4k .. 4k+3 per step; 1 reads lines 2k, 2k+1 of each half
// of the buffer side by side.  gcc 12 emits, instruction for instruction, the loops of the two
// hand-written functions this replaced (only register names differ).
__attribute__((target("avx512f"), always_inline)) static inline uint64_t probe_read_pf_body(const uint64_t *p,
                                                                                           size_t n8, const int TWO) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    const size_t len = TWO ? n8 / 2 : n8, line2 = TWO ? n8 / 2 : 8, step = TWO ? 16 : 32;   // in words
    for (size_t i = 0; i < len; i += step) {
        const uint64_t *a0 = p + i, *a1 = p + i + line2, *a2 = a0 + step / 2, *a3 = a1 + step / 2;
        _mm_prefetch((const char *)a0 + PROBE_PF_LINES * 64, _MM_HINT_T0);
        _mm_prefetch((const char *)a1 + PROBE_PF_LINES * 64, _MM_HINT_T0);
        _mm_prefetch((const char *)a2 + PROBE_PF_LINES * 64, _MM_HINT_T0);
        _mm_prefetch((const char *)a3 + PROBE_PF_LINES * 64, _MM_HINT_T0);
        s0 = _mm512_add_epi64(s0, _mm512_load_si512((const void *)a0));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512((const void *)a1));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512((const void *)a2));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512((const void *)a3));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
}
__attribute__((target("avx512f"))) static uint64_t probe_read_pf_avx512(const uint64_t *p, size_t n8) {
    return probe_read_pf_body(p, n8, 0);
}
__attribute__((target("avx512f"))) static uint64_t probe_read2_pf_avx512(const uint64_t *p, size_t n8) {
    return probe_read_pf_body(p, n8, 1);   // n8 / 2 is a multiple of 32
}

__attribute__((target("avx2"))) static uint64_t probe_read_avx2(const uint64_t *p, size_t n8) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (size_t i = 0; i < n8; i += 32) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(p + i + 0)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(p + i + 12)));
        s4 = _mm256_add_epi64(s4, _mm256_load_si256((const __m256i *)(p + i + 16)));
        s5 = _mm256_add_epi64(s5, _mm256_load_si256((const __m256i *)(p + i + 20)));
        s6 = _mm256_add_epi64(s6, _mm256_load_si256((const __m256i *)(p + i + 24)));
        s7 = _mm256_add_epi64(s7, _mm256_load_si256((const __m256i *)(p + i + 28)));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)),
                          _mm256_add_epi64(_mm256_add_epi64(s4, s5), _mm256_add_epi64(s6, s7)));
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, s0);
    return t[0] + t[1] + t[2] + t[3];
}
#endif

static uint64_t probe_read_scalar(const uint64_t *p, size_t n8) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < n8; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

// Which read loop this CPU runs: "avx512", "avx2" or "scalar".
static const char *probe_read_isa(void) {
#if PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
    return "scalar";
}

// Streaming read bandwidth of one core over `bytes` (rounded down to 512-byte units), in
// GB/s (1e9 bytes/s), best of `runs` passes (each pass: one stream, then two streams where the
// CPU has AVX-512) after one untimed pass; *one (if not NULL) gets the best one-stream pass
// alone (the classic sequential-read figure).  The buffer comes from
// a node-local pool (2 MiB aligned, MADV_HUGEPAGE) and is written first, so reads are of
// real pages, not the shared zero page.  Returns 0 on allocation failure (message set).
static double probe_dram_read_ways_gbs(size_t bytes, int runs, double *one) {
    bytes &= ~(size_t)511;
    if (bytes == 0 || runs < 1) return 0;
    Pool pool;
    mem_pool_init(&pool, "dram-probe", MEM_NUMA_LOCAL, NULL);
    uint64_t *buf = mem_alloc(&pool, bytes);
    if (!buf) return 0;
    memset(buf, 1, bytes);
    size_t n8 = bytes / 8;
    const char *isa = probe_read_isa();
    double best = 0, best1 = 0;
    // AVX-512: one stream and two streams (odd v), each plain and prefetching, each pass.
#if PROBE_X86
    static uint64_t (*const rd512[4])(const uint64_t *, size_t) = {probe_read_avx512, probe_read2_avx512,
                                                                   probe_read_pf_avx512, probe_read2_pf_avx512};
#endif
    int ways = !strcmp(isa, "avx512") ? 4 : 1;
    for (int r = -1; r < runs; r++)
        for (int v = 0; v < ways; v++) {
            double t0 = ct_now();
            uint64_t s;
#if PROBE_X86
            if (!strcmp(isa, "avx512")) s = rd512[v](buf, n8);
            else if (!strcmp(isa, "avx2")) s = probe_read_avx2(buf, n8);
            else
#endif
                s = probe_read_scalar(buf, n8);
            double dt = ct_now() - t0;
            probe_sink += s;
            double g = r >= 0 && dt > 0 ? (double)bytes / dt / 1e9 : 0;
            if (g > best) best = g;
            if (v % 2 == 0 && g > best1) best1 = g;   // the one-stream loops
        }
    mem_free(&pool, buf, bytes);
    mem_pool_free(&pool);
    if (one) *one = best1;
    return best;
}

static inline double probe_dram_read_gbs(size_t bytes, int runs) {
    return probe_dram_read_ways_gbs(bytes, runs, NULL);
}

// Buffer size for the DRAM probe: at least 1 GiB and at least 2x the LLC, at most 4 GiB.
static size_t probe_dram_bytes(void) {
    size_t llc = probe_llc_bytes(), b = (size_t)1 << 30;
    if (2 * llc > b) b = 2 * llc;
    if (b > ((size_t)4 << 30)) b = (size_t)4 << 30;
    return b;
}

// ---- compute peaks --------------------------------------------------------------------------
// Each loop runs NACC independent dependency chains: with FMA latency ~4 cycles and up to 2
// FMA pipes, 8 chains cover latency; 16 (avx512, 32 registers) / 12 (avx2, 16 registers)
// leave margin.  acc = acc * m + c with m < 1 converges to c / (1 - m): no overflow, no
// denormals.  Returns flops (or int ops) executed.
#if PROBE_X86
__attribute__((target("avx512f"))) static double probe_fma_avx512(long iters) {
    __m512 a[16];
    for (int k = 0; k < 16; k++) a[k] = _mm512_set1_ps(0.001f * (float)k);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
    for (long i = 0; i < iters; i++) {
        a[0] = _mm512_fmadd_ps(a[0], m, c);   a[1] = _mm512_fmadd_ps(a[1], m, c);
        a[2] = _mm512_fmadd_ps(a[2], m, c);   a[3] = _mm512_fmadd_ps(a[3], m, c);
        a[4] = _mm512_fmadd_ps(a[4], m, c);   a[5] = _mm512_fmadd_ps(a[5], m, c);
        a[6] = _mm512_fmadd_ps(a[6], m, c);   a[7] = _mm512_fmadd_ps(a[7], m, c);
        a[8] = _mm512_fmadd_ps(a[8], m, c);   a[9] = _mm512_fmadd_ps(a[9], m, c);
        a[10] = _mm512_fmadd_ps(a[10], m, c); a[11] = _mm512_fmadd_ps(a[11], m, c);
        a[12] = _mm512_fmadd_ps(a[12], m, c); a[13] = _mm512_fmadd_ps(a[13], m, c);
        a[14] = _mm512_fmadd_ps(a[14], m, c); a[15] = _mm512_fmadd_ps(a[15], m, c);
    }
    __m512 s = a[0];
    for (int k = 1; k < 16; k++) s = _mm512_add_ps(s, a[k]);
    float t[16];
    _mm512_storeu_ps(t, s);
    probe_sink += (uint64_t)t[0];
    return (double)iters * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double probe_fma_avx2(long iters) {
    __m256 a[12];
    for (int k = 0; k < 12; k++) a[k] = _mm256_set1_ps(0.001f * (float)k);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
    for (long i = 0; i < iters; i++) {
        a[0] = _mm256_fmadd_ps(a[0], m, c);   a[1] = _mm256_fmadd_ps(a[1], m, c);
        a[2] = _mm256_fmadd_ps(a[2], m, c);   a[3] = _mm256_fmadd_ps(a[3], m, c);
        a[4] = _mm256_fmadd_ps(a[4], m, c);   a[5] = _mm256_fmadd_ps(a[5], m, c);
        a[6] = _mm256_fmadd_ps(a[6], m, c);   a[7] = _mm256_fmadd_ps(a[7], m, c);
        a[8] = _mm256_fmadd_ps(a[8], m, c);   a[9] = _mm256_fmadd_ps(a[9], m, c);
        a[10] = _mm256_fmadd_ps(a[10], m, c); a[11] = _mm256_fmadd_ps(a[11], m, c);
    }
    __m256 s = a[0];
    for (int k = 1; k < 12; k++) s = _mm256_add_ps(s, a[k]);
    float t[8];
    _mm256_storeu_ps(t, s);
    probe_sink += (uint64_t)t[0];
    return (double)iters * 12 * 8 * 2;
}

// vpdpbusd: each 32-bit lane adds four u8*s8 products -> 64 multiply-adds = 128 ops per zmm
// instruction.  int32 accumulators wrap, which is defined for the vector instruction.
// Inline asm for the accumulate: gcc 12 expands _mm512_dpbusd_epi32 in a loop with a register
// copy before every vpdpbusd, which halves the measured peak below what kernels reach.
#define PROBE_DP(acc) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s))
__attribute__((target("avx512f,avx512vnni"))) static double probe_vnni_avx512(long iters) {
    // 16 named accumulators (an array would be stored to the stack around each asm).
    __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2),
            a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5),
            a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8),
            a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11),
            a12 = _mm512_set1_epi32(12), a13 = _mm512_set1_epi32(13), a14 = _mm512_set1_epi32(14),
            a15 = _mm512_set1_epi32(15);
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-5);
    for (long i = 0; i < iters; i++) {
        PROBE_DP(a0);  PROBE_DP(a1);  PROBE_DP(a2);  PROBE_DP(a3);
        PROBE_DP(a4);  PROBE_DP(a5);  PROBE_DP(a6);  PROBE_DP(a7);
        PROBE_DP(a8);  PROBE_DP(a9);  PROBE_DP(a10); PROBE_DP(a11);
        PROBE_DP(a12); PROBE_DP(a13); PROBE_DP(a14); PROBE_DP(a15);
    }
    __m512i t = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    t = _mm512_add_epi32(t, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)),
                                             _mm512_add_epi32(_mm512_add_epi32(a12, a13), _mm512_add_epi32(a14, a15))));
    probe_sink += (uint64_t)(uint32_t)_mm512_reduce_add_epi32(t);
    return (double)iters * 16 * 64 * 2;
}

// The same peak for AVX-VNNI: the 256-bit VEX vpdpbusd ({vex}: this file is built without
// -mavxvnni), 12 chains (VEX reaches ymm0-15 only), 64 ops each.
#define PROBE_DPV(acc) __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "x"(s))
__attribute__((target("avx2"))) static double probe_vnni_vex256(long iters) {
    __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2),
            a3 = _mm256_set1_epi32(3), a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5),
            a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7), a8 = _mm256_set1_epi32(8),
            a9 = _mm256_set1_epi32(9), a10 = _mm256_set1_epi32(10), a11 = _mm256_set1_epi32(11);
    const __m256i u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-5);
    for (long i = 0; i < iters; i++) {
        PROBE_DPV(a0); PROBE_DPV(a1); PROBE_DPV(a2);  PROBE_DPV(a3);
        PROBE_DPV(a4); PROBE_DPV(a5); PROBE_DPV(a6);  PROBE_DPV(a7);
        PROBE_DPV(a8); PROBE_DPV(a9); PROBE_DPV(a10); PROBE_DPV(a11);
    }
    __m256i t = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                 _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
    t = _mm256_add_epi32(t, _mm256_add_epi32(_mm256_add_epi32(a8, a9), _mm256_add_epi32(a10, a11)));
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, t);
    for (int i = 0; i < 8; i++) probe_sink += lanes[i];
    return (double)iters * 12 * 32 * 2;
}

// The op mix of a block-scaled int8 product (quant/q8.h): per 16 outputs x 1 token x 32-deep
// block, 8 vpdpbusd into an int32 accumulator started from a broadcast load, then the block's
// float step: convert, scale (dw * dx), fma.  On cores where vpdpbusd and the float ops share
// the same two vector ports (Intel: 0.62-0.73 of the VNNI peak measured on a Xeon with AMX),
// the float step caps such a product below 8 / 11 of the VNNI peak whatever the kernel does; where
// they issue to separate pipes it costs less (the GEMM itself reached 0.70-0.75 of the VNNI
// peak on the Zen 5 machine of earlier sessions).  This probe measures that ceiling (the same
// ops from registers, 8 independent rows), in the VNNI peak's units (128 ops per vpdpbusd).
__attribute__((target("avx512f,avx512vnni"))) static double probe_q8mix_avx512(long iters) {
    static const int32_t init[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const float dxs[8] = {1e-6f, 2e-6f, 3e-6f, 4e-6f, 5e-6f, 6e-6f, 7e-6f, 8e-6f};
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-5);
    const __m512 sw = _mm512_set1_ps(0.999f);
    __m512 f0 = _mm512_setzero_ps(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0;
#define PROBE_MIX(f, k)                                                                      \
    do {                                                                                     \
        __m512i a;                                                                           \
        __m512 dx;   /* asm loads: the compiler may not hoist the scale product */           \
        __asm__ volatile("vpbroadcastd %1, %0" : "=v"(a) : "m"(init[k]));                  \
        __asm__ volatile("vbroadcastss %1, %0" : "=v"(dx) : "m"(dxs[k]));                  \
        PROBE_DP(a); PROBE_DP(a); PROBE_DP(a); PROBE_DP(a);                                  \
        PROBE_DP(a); PROBE_DP(a); PROBE_DP(a); PROBE_DP(a);                                  \
        f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_mul_ps(sw, dx), f);                \
    } while (0)
    for (long i = 0; i < iters; i++) {
        PROBE_MIX(f0, 0); PROBE_MIX(f1, 1); PROBE_MIX(f2, 2); PROBE_MIX(f3, 3);
        PROBE_MIX(f4, 4); PROBE_MIX(f5, 5); PROBE_MIX(f6, 6); PROBE_MIX(f7, 7);
    }
#undef PROBE_MIX
    __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)),
                             _mm512_add_ps(_mm512_add_ps(f4, f5), _mm512_add_ps(f6, f7)));
    probe_sink += (uint64_t)_mm512_reduce_add_ps(t);
    return (double)iters * 8 * 8 * 64 * 2;
}
#undef PROBE_DP

// AMX (the amx table's batched int8 products, simd/x86_avx512.c): the tile unit's rate on the
// product the block format allows, one TDPBSUD of 16 rows x 16 lanes x 32 deep (one block:
// 8192 multiply-adds = 16384 ops), operands in L1.  Only called where dispatch reported the
// amx table supported (so the process holds the tile permission).  what = 0: TDPBSUD alone
// (4 independent accumulator tiles, the instruction's throughput); what = 1: a block's whole
// tile work in the GEMM (load the 16 x 32-byte activation tile and the 512-byte panel block,
// zero, TDPBSUD, store the 1 KiB int32 product for the float step).
static _Alignas(64) int8_t probe_amx_a[16 * 64];
static _Alignas(64) uint8_t probe_amx_b[8 * 64];
static _Alignas(64) int32_t probe_amx_c[4][256];
__attribute__((target("amx-tile,amx-int8"))) static double probe_amx_run(long iters, int what) {
    static const _Alignas(64) AmxCfg cfg = {.palette = 1, .colsb = {32, 64, 64, 64, 64, 64}, .rows = {16, 8, 16, 16, 16, 16}};
    _tile_loadconfig(&cfg);
    _tile_loadd(0, probe_amx_a, 64);
    _tile_loadd(1, probe_amx_b, 64);
    _tile_zero(2); _tile_zero(3); _tile_zero(4); _tile_zero(5);
    if (what == 0) {
        for (long i = 0; i < iters; i++) {
            _tile_dpbsud(2, 0, 1); _tile_dpbsud(3, 0, 1); _tile_dpbsud(4, 0, 1); _tile_dpbsud(5, 0, 1);
        }
    } else {
        for (long i = 0; i < iters; i++)
            for (int k = 0; k < 4; k++) {
                _tile_loadd(0, probe_amx_a, 64);
                _tile_loadd(1, probe_amx_b, 64);
                _tile_zero(2);
                _tile_dpbsud(2, 0, 1);
                _tile_stored(2, probe_amx_c[k], 64);
            }
    }
    _tile_stored(3, probe_amx_c[1], 64);
    _tile_release();
    probe_sink += (uint64_t)(uint32_t)probe_amx_c[1][0];
    return (double)iters * 4 * 16 * 16 * 32 * 2;
}
static double probe_amx_tdp(long iters) { return probe_amx_run(iters, 0); }
static double probe_amx_block(long iters) { return probe_amx_run(iters, 1); }
#endif

static double probe_fma_scalar(long iters) {
    float a0 = 0, a1 = 0.1f, a2 = 0.2f, a3 = 0.3f;
    const float m = 0.999999f, c = 1e-6f;
    for (long i = 0; i < iters; i++) {   // mul + add (no contraction: -ffp-contract=off)
        a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c;
    }
    probe_sink += (uint64_t)(a0 + a1 + a2 + a3);
    return (double)iters * 4 * 2;
}

// The core's clock beside vector work: each step is a chain of 8 dependent scalar adds (one
// cycle each) next to 4 independent vector ops, so a step takes 8 cycles whatever the clock
// and steps x 8 / s is the clock.  The Intel Xeon VM lowers its clock by ~6% under sustained
// 512-bit vpdpbusd but not under 512-bit adds or 256-bit vpdpbusd, and a DRAM-bound kernel
// reads less at the lower clock: the decode matvec works in 256-bit halves on Intel cores for
// this reason (simd/x86_avx512.c, mv_block; AMD's Zen 5 keeps its clock, and 512-bit there).
// kind: 0 the adds alone, 1 beside 256-bit vpdpbusd, 2 beside 512-bit vpaddq, 3 beside 512-bit
// vpdpbusd.
#define PROBE_ADD8 "add %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\t" \
                   "add %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\t"
#define PROBE_CLK4(op) __asm__ volatile(PROBE_ADD8 op " %5, %6, %1\n\t" op " %5, %6, %2\n\t" op " %5, %6, %3\n\t" \
                                        op " %5, %6, %4" : "+r"(c), "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3) \
                                        : "v"(u), "v"(v))
__attribute__((target("avx512f,avx512vl,avx512vnni"), always_inline)) static inline double
probe_clock_body(long iters, const int kind) {
    uint64_t c = 1;
    if (kind == 1) {
        __m256i a0 = _mm256_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, u = _mm256_set1_epi8(3), v = _mm256_set1_epi8(-5);
        for (long i = 0; i < iters; i++) PROBE_CLK4("vpdpbusd");
        c += (uint64_t)_mm256_extract_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)), 0);
    } else if (kind >= 2) {
        __m512i a0 = _mm512_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, u = _mm512_set1_epi8(3), v = _mm512_set1_epi8(-5);
        if (kind == 2)
            for (long i = 0; i < iters; i++) PROBE_CLK4("vpaddq");
        else
            for (long i = 0; i < iters; i++) PROBE_CLK4("vpdpbusd");
        c += (uint64_t)_mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)));
    } else {
        for (long i = 0; i < iters; i++) __asm__ volatile(PROBE_ADD8 : "+r"(c));
    }
    probe_sink += c;
    return (double)iters * 8;
}
__attribute__((target("avx512f,avx512vl,avx512vnni"))) static double probe_clock0(long n) { return probe_clock_body(n, 0); }
__attribute__((target("avx512f,avx512vl,avx512vnni"))) static double probe_clock1(long n) { return probe_clock_body(n, 1); }
__attribute__((target("avx512f,avx512vl,avx512vnni"))) static double probe_clock2(long n) { return probe_clock_body(n, 2); }
__attribute__((target("avx512f,avx512vl,avx512vnni"))) static double probe_clock3(long n) { return probe_clock_body(n, 3); }

// Time fn(iters) with iters doubled until one call takes >= min_s, then best of runs; the
// result is units/s / 1e9.
static double probe_best_rate(double (*fn)(long), int runs, double min_s) {
    long iters = 1 << 14;
    for (;;) {
        double t0 = ct_now();
        fn(iters);
        if (ct_now() - t0 >= min_s || iters > (1L << 40)) break;
        iters *= 2;
    }
    double best = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = ct_now();
        double work = fn(iters);
        double dt = ct_now() - t0;
        if (dt > 0 && work / dt / 1e9 > best) best = work / dt / 1e9;
    }
    return best;
}

// fp32 FMA peak of one core in GFLOP/s; *isa names the loop used.
static double probe_fma_gflops(int runs, double min_s, const char **isa) {
#if PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *isa = "avx512";
        return probe_best_rate(probe_fma_avx512, runs, min_s);
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *isa = "avx2";
        return probe_best_rate(probe_fma_avx2, runs, min_s);
    }
#endif
    *isa = "scalar";
    return probe_best_rate(probe_fma_scalar, runs, min_s);
}

// int8 VNNI peak of one core in GOP/s (a multiply-add counts 2); 0 with *isa = "n/a" when
// the CPU has no AVX-512 VNNI.
static double probe_vnni_gops(int runs, double min_s, const char **isa) {
#if PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni")) {
        *isa = "avx512vnni";
        return probe_best_rate(probe_vnni_avx512, runs, min_s);
    }
#endif
    *isa = "n/a";
    return 0;
}

// AVX-VNNI peak (probe_vnni_vex256) in GOP/s; 0 on CPUs without AVX-VNNI (CPUID.(7,1):EAX bit 4).
__attribute__((unused)) static double probe_avxvnni_gops(int runs, double min_s) {
#if PROBE_X86
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __get_cpuid_count(7, 0, &a, &b, &c, &d) && a >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if ((a >> 4) & 1) return probe_best_rate(probe_vnni_vex256, runs, min_s);
    }
#endif
    return 0;
}

// The block-scaled int8 product's op-mix ceiling (probe_q8mix_avx512) in GOP/s; 0 without VNNI.
__attribute__((unused)) static double probe_q8mix_gops(int runs, double min_s) {
#if PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"))
        return probe_best_rate(probe_q8mix_avx512, runs, min_s);
#endif
    return 0;
}

// GHz of one core beside vector work (probe_clock_body): ghz[0 .. 3] for kinds 0 .. 3, each the
// best of `runs` passes of >= min_s.  Returns 0 (ghz untouched) without AVX-512 VNNI.
__attribute__((unused)) static int probe_clock_ghz(int runs, double min_s, double ghz[4]) {
#if PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni")) {
        double (*fn[4])(long) = {probe_clock0, probe_clock1, probe_clock2, probe_clock3};
        for (int k = 0; k < 4; k++) ghz[k] = probe_best_rate(fn[k], runs, min_s);
        return 1;
    }
#endif
    return 0;
}

// AMX rates in GOP/s (probe_amx_run): *block gets the whole per-block tile work's rate.  0 when
// this build has no x86 probes; the caller checks that the amx table is supported.
__attribute__((unused)) static double probe_amx_gops(int runs, double min_s, double *block) {
#if PROBE_X86
    *block = probe_best_rate(probe_amx_block, runs, min_s);
    return probe_best_rate(probe_amx_tdp, runs, min_s);
#else
    (void)runs, (void)min_s;
    *block = 0;
    return 0;
#endif
}
