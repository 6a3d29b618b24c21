// q8_tile_asm.h — the AVX-512 VNNI GEMM's two-panel tile loop (6 rows, or 1-5) as inline-asm
// macros: used by simd/x86_avx512.c (tile2_q8_avx512) and by bench/bench_q8.c, which times the
// 6-row loop with parts of it removed (where the cycles go).  Only asm text: no intrinsics, so the includer
// needs no -mavx512 flags (its function does need target("avx512f") for the zmm16-31
// clobbers).
//
// The operands (Q8A_OPERANDS) are locals of the including function: w (the panel pair's
// quants), qa / qb (activation quants of rows 0 and 3), sa / sb (their nsums), da / db (their
// scales), n (blocks, >= 1), ps (bytes per panel), sq / s4 (row strides of the quants / of the
// nsums and scales, in bytes), acc (12 x 16 floats, 64-byte aligned) and the constant LS
// (1: lane scales lead each 576-byte block; 0: 512-byte blocks without them).
#pragma once
#include "quant/q8.h"   // Q8_PANEL_BLOCK_BYTES, Q8_PANEL_QBYTES (the block stride)

// The 2-panel x n-row tile (n = 6 for the bulk of every batch, 1-5 for the rows left) as an
// asm loop over the blocks: the operations of tile_q8_avx512 in the same order (so the same
// bits) with every register fixed, so no compiler can spill.  gcc 12 allocated the intrinsic tile without spilling; clang 14
// spilled its accumulators and ran at ~0.7 of gcc's speed; with this loop both run alike.
//   zmm0-5, zmm6-11   float accumulators of rows 0-5, panels p and p+1
//   zmm12-13          the block's weight vectors, then its lane scales
//   zmm14-19          the rows' broadcast activation words, then scale temporaries
//   zmm20-31          int32 sums (row t: zmm20+2t for panel p, zmm21+2t for p+1)
// Row t's quants, nsum and dx are t row strides past row 0's; rows 3-5 are addressed from a
// second base (an x86 address takes one scaled index).  The float accumulators start at
// zero in registers and leave through acc (memory).
#define Q8A_X(j, base, idx, z) "vpbroadcastd 4*" #j "(" base idx "), %%zmm" #z "\n\t"
#define Q8A_DP(x, a0, a1) \
    "vpdpbusd %%zmm" #x ", %%zmm12, %%zmm" #a0 "\n\tvpdpbusd %%zmm" #x ", %%zmm13, %%zmm" #a1 "\n\t"
// Step j of a block (4 of its 32 columns): the two weight vectors, the rows' activation words
// (Q8A_Bt: row t's), then two vpdpbusd per row (Q8A_Dt).  Q8A_Jn(j) is the step of a tile of
// rows 0 .. n-1; the bulk of every batch runs Q8A_J6.
#define Q8A_W(j) "vmovdqu64 64*" #j "(%[w]), %%zmm12\n\tvmovdqu64 64*" #j "(%[w],%[ps]), %%zmm13\n\t"
#define Q8A_B0(j) Q8A_X(j, "%[qa]", "", 14)
#define Q8A_B1(j) Q8A_X(j, "%[qa]", ",%[sq]", 15)
#define Q8A_B2(j) Q8A_X(j, "%[qa]", ",%[sq],2", 16)
#define Q8A_B3(j) Q8A_X(j, "%[qb]", "", 17)
#define Q8A_B4(j) Q8A_X(j, "%[qb]", ",%[sq]", 18)
#define Q8A_B5(j) Q8A_X(j, "%[qb]", ",%[sq],2", 19)
#define Q8A_D0 Q8A_DP(14, 20, 21)
#define Q8A_D1 Q8A_DP(15, 22, 23)
#define Q8A_D2 Q8A_DP(16, 24, 25)
#define Q8A_D3 Q8A_DP(17, 26, 27)
#define Q8A_D4 Q8A_DP(18, 28, 29)
#define Q8A_D5 Q8A_DP(19, 30, 31)
#define Q8A_B_1(j) Q8A_B0(j)
#define Q8A_B_2(j) Q8A_B_1(j) Q8A_B1(j)
#define Q8A_B_3(j) Q8A_B_2(j) Q8A_B2(j)
#define Q8A_B_4(j) Q8A_B_3(j) Q8A_B3(j)
#define Q8A_B_5(j) Q8A_B_4(j) Q8A_B4(j)
#define Q8A_B_6(j) Q8A_B_5(j) Q8A_B5(j)
#define Q8A_D_1 Q8A_D0
#define Q8A_D_2 Q8A_D_1 Q8A_D1
#define Q8A_D_3 Q8A_D_2 Q8A_D2
#define Q8A_D_4 Q8A_D_3 Q8A_D3
#define Q8A_D_5 Q8A_D_4 Q8A_D4
#define Q8A_D_6 Q8A_D_5 Q8A_D5
#define Q8A_J1(j) Q8A_W(j) Q8A_B_1(j) Q8A_D_1
#define Q8A_J2(j) Q8A_W(j) Q8A_B_2(j) Q8A_D_2
#define Q8A_J3(j) Q8A_W(j) Q8A_B_3(j) Q8A_D_3
#define Q8A_J4(j) Q8A_W(j) Q8A_B_4(j) Q8A_D_4
#define Q8A_J5(j) Q8A_W(j) Q8A_B_5(j) Q8A_D_5
#define Q8A_J6(j) Q8A_W(j) Q8A_B_6(j) Q8A_D_6
// Both panels' sums of row t start at the row's nsum (undoes the +128 of the weights).
#define Q8A_I(base, idx, a0, a1) \
    "vpbroadcastd (" base idx "), %%zmm" #a0 "\n\tvpbroadcastd (" base idx "), %%zmm" #a1 "\n\t"
#define Q8A_I_1 Q8A_I("%[sa]", "", 20, 21)
#define Q8A_I_2 Q8A_I_1 Q8A_I("%[sa]", ",%[s4]", 22, 23)
#define Q8A_I_3 Q8A_I_2 Q8A_I("%[sa]", ",%[s4],2", 24, 25)
#define Q8A_I_4 Q8A_I_3 Q8A_I("%[sb]", "", 26, 27)
#define Q8A_I_5 Q8A_I_4 Q8A_I("%[sb]", ",%[s4]", 28, 29)
#define Q8A_I_6 Q8A_I_5 Q8A_I("%[sb]", ",%[s4],2", 30, 31)
#define Q8A_INIT Q8A_I_6
// Row t's float step: acc = fma(float(isum), dw * dx, acc) for both panels (lane scales in
// zmm12-13), or fma(float(isum), dx, acc) without lane scales.  Q8A_DX_t: row t's dx.
#define Q8A_DX_0 "%[da]"
#define Q8A_DX_1 "%[da],%[s4]"
#define Q8A_DX_2 "%[da],%[s4],2"
#define Q8A_DX_3 "%[db]"
#define Q8A_DX_4 "%[db],%[s4]"
#define Q8A_DX_5 "%[db],%[s4],2"
#define Q8A_F(t, a0, a1, c0, c1)                                                                      \
    "vbroadcastss (" Q8A_DX_##t "), %%zmm14\n\t"                                              \
    "vmulps %%zmm14, %%zmm12, %%zmm15\n\tvmulps %%zmm14, %%zmm13, %%zmm16\n\t"                      \
    "vcvtdq2ps %%zmm" #a0 ", %%zmm" #a0 "\n\tvcvtdq2ps %%zmm" #a1 ", %%zmm" #a1 "\n\t"              \
    "vfmadd231ps %%zmm15, %%zmm" #a0 ", %%zmm" #c0 "\n\tvfmadd231ps %%zmm16, %%zmm" #a1 ", %%zmm" #c1 "\n\t"
// The same when every dx is a power of two, 0 or NaN (Q8Act.pow2: 16-bit activations):
// dw * dx is then dw scaled by dx's exponent, exactly, so vscalefps(dw, getexp(dx)) gives
// fl(dw * dx) bit for bit (zero, NaN and subnormal cases included), off the multiply ports
// vpdpbusd uses on some cores.
#define Q8A_FP(t, a0, a1, c0, c1)                                                                     \
    "vgetexpps (" Q8A_DX_##t ")%{1to16%}, %%zmm14\n\t"                                               \
    "vscalefps %%zmm14, %%zmm12, %%zmm15\n\tvscalefps %%zmm14, %%zmm13, %%zmm16\n\t"                  \
    "vcvtdq2ps %%zmm" #a0 ", %%zmm" #a0 "\n\tvcvtdq2ps %%zmm" #a1 ", %%zmm" #a1 "\n\t"              \
    "vfmadd231ps %%zmm15, %%zmm" #a0 ", %%zmm" #c0 "\n\tvfmadd231ps %%zmm16, %%zmm" #a1 ", %%zmm" #c1 "\n\t"
#define Q8A_F0(t, a0, a1, c0, c1)                                                                     \
    "vbroadcastss (" Q8A_DX_##t "), %%zmm14\n\t"                                              \
    "vcvtdq2ps %%zmm" #a0 ", %%zmm" #a0 "\n\tvcvtdq2ps %%zmm" #a1 ", %%zmm" #a1 "\n\t"              \
    "vfmadd231ps %%zmm14, %%zmm" #a0 ", %%zmm" #c0 "\n\tvfmadd231ps %%zmm14, %%zmm" #a1 ", %%zmm" #c1 "\n\t"
#define Q8A_FL_1(F) F(0, 20, 21, 0, 6)
#define Q8A_FL_2(F) Q8A_FL_1(F) F(1, 22, 23, 1, 7)
#define Q8A_FL_3(F) Q8A_FL_2(F) F(2, 24, 25, 2, 8)
#define Q8A_FL_4(F) Q8A_FL_3(F) F(3, 26, 27, 3, 9)
#define Q8A_FL_5(F) Q8A_FL_4(F) F(4, 28, 29, 4, 10)
#define Q8A_FL_6(F) Q8A_FL_5(F) F(5, 30, 31, 5, 11)
#define Q8A_FLOAT(F) Q8A_FL_6(F)
#define Q8A_Z(k) "vpxord %%zmm" #k ", %%zmm" #k ", %%zmm" #k "\n\t"
// The float accumulators start at +0 (zeroing idioms: no load, no execution port).
#define Q8A_ZEROS                                                                                     \
    Q8A_Z(0) Q8A_Z(1) Q8A_Z(2) Q8A_Z(3) Q8A_Z(4) Q8A_Z(5) Q8A_Z(6) Q8A_Z(7) Q8A_Z(8) Q8A_Z(9) Q8A_Z(10) \
    Q8A_Z(11)
#define Q8A_SAVE(k) "vmovaps %%zmm" #k ", " #k "*64(%[acc])\n\t"
#define Q8A_SAVES                                                                                     \
    Q8A_SAVE(0) Q8A_SAVE(1) Q8A_SAVE(2) Q8A_SAVE(3) Q8A_SAVE(4) Q8A_SAVE(5) Q8A_SAVE(6) Q8A_SAVE(7)    \
    Q8A_SAVE(8) Q8A_SAVE(9) Q8A_SAVE(10) Q8A_SAVE(11)
// The loop (n >= 1 blocks), 64-byte aligned: per block INIT, the steps J(0..7), LSCALES (loads
// the lane scales, or nothing) and the float steps FLOATS of the rows.  All 12 accumulators
// are zeroed and saved whatever the rows (unused ones stay 0).  bench_q8 runs it with parts
// left out; the kernel runs Q8A_BODY (6 rows) and Q8A_BODYN (n = 1..6 rows).
#define Q8A_LOOPN(INIT, J, LSCALES, FLOATS)                                                           \
    Q8A_ZEROS ".p2align 6\n1:\n\t" INIT J(0) J(1) J(2) J(3) J(4) J(5) J(6) J(7) LSCALES FLOATS      \
    "add %[bs], %[w]\n\tadd $32, %[qa]\n\tadd $32, %[qb]\n\tadd $4, %[sa]\n\tadd $4, %[sb]\n\t"     \
    "add $4, %[da]\n\tadd $4, %[db]\n\tdec %[n]\n\tjnz 1b\n\t" Q8A_SAVES
#define Q8A_LOOP(INIT, J, LSCALES, FLOAT) Q8A_LOOPN(INIT, J, LSCALES, Q8A_FLOAT(FLOAT))
#define Q8A_LSCALES "vmovups -64(%[w]), %%zmm12\n\tvmovups -64(%[w],%[ps]), %%zmm13\n\t"
#define Q8A_BODYN(n, LSCALES, FLOAT) Q8A_LOOPN(Q8A_I_##n, Q8A_J##n, LSCALES, Q8A_FL_##n(FLOAT))
#define Q8A_BODY(LSCALES, FLOAT) Q8A_BODYN(6, LSCALES, FLOAT)
#define Q8A_OPERANDS                                                                                  \
    : [w] "+r"(w), [qa] "+r"(qa), [qb] "+r"(qb), [sa] "+r"(sa), [sb] "+r"(sb), [da] "+r"(da),         \
      [db] "+r"(db), [n] "+r"(n)                                                                      \
    : [ps] "r"(ps), [sq] "r"(sq), [s4] "r"(s4), [acc] "r"(acc),                                       \
      [bs] "i"(LS ? Q8_PANEL_BLOCK_BYTES : Q8_PANEL_QBYTES)                                           \
    : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",   \
      "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",  \
      "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "cc", "memory"
