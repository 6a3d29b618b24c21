// q8.h — the int8 block format, its reference quantize/dequantize, per-row activation
// quantization for matrix products, and the run-time repacked (interleaved) layouts that the
// int8 kernels of simd/simd.h read.
//
// Block format (on disk in `ctrace quantize` files, and in memory):
//     BlockQ8 { float d; int8_t qs[32]; }          36 bytes, value_k = d * qs[k]
//   - the scale is fp32 (not fp16): dequantization is one exact-input multiply on every ISA
//     with no half-float conversion (F16C / NEON fcvt) to keep bit-identical, at a cost of
//     2 bytes per 32 weights (+6% bytes) over fp16;
//   - weights (q8_quantize_block): qs = round_half_even(x * 127 / (r amax)) clamped to
//     [-127, 127] for the clipping ratio r in [0.90, 1] (0.01 grid refined to 0.0025) that,
//     with the least-squares scale d = sum(x qs) / sum(qs^2), leaves the smallest squared
//     error (never more than the plain amax rule; on stories260K it lowers the q8-vs-f32 KL
//     by ~20%);
//     activations (q8_quantize_block_amax, at run time): d = amax / 127, r = 1;
//   - the quantizers never emit -128, so |q| <= 127 and sign flips / u8+128 biasing never
//     overflow;
//   - an all-zero block (or one with amax < Q8_TINY) has d = 0 and qs = 0: safe everywhere;
//   - a block holding NaN or +-Inf gets d = NaN and qs = 0, so every product that reads it
//     is NaN (honest NaN; weights are checked finite by the loaders, activations may not be);
//   - a row of `cols` values takes nb = ceil(cols / 32) blocks; the tail of the last block is
//     zero.
//
// Activations ("per-row int8 activation quantization"): each row of X (T, cols) is quantized
// when a product needs it, block by block with its own scale, into a Q8Act: q (rows, nb*32)
// int8, d (rows, nb) scales, and nsum (rows, nb) = -128 * sum of the block's q (the AVX-512
// VNNI kernels feed weights as u8 = w + 128 and start each block's int32 accumulator at nsum
// to undo the bias; other ISAs ignore it).  Activations stay fp32 everywhere else.  Two
// precisions, both read by the same int8 kernels:
//   - 8-bit (digits = 1, `--dtype q8a8`): one row per token, the BlockQ8 rule (d = amax/127);
//   - 16-bit as two int8 digits (digits = 2, `--dtype q8`, the default): per block the scale
//     s = the power of two at or above fl(amax / 32639) (q8_pow2_ceil), and the integer
//     v = round_half_even(x / s) in [-32639, 32639] (32639 = 127 * 256 + 127), split as
//     v = 256 * hi + lo with hi = round_half_even(v / 256) and lo = v - 256 * hi.  lo would be
//     +-128 where v = 128 (mod 256): such a v moves by one towards x / s (down when equal), so
//     hi and lo are both in [-127, 127] (never -128) and the error is at most s (else s/2).
//     Token t becomes two rows: row 2t holds hi with scale 256 s, row 2t+1 holds lo with
//     scale s: every 16-bit scale is a power of two (Q8Act.pow2), so dw * dx is exact and a
//     kernel may form it by scaling dw's exponent (AVX-512 vscalefps) instead of multiplying.
//     Every int8 kernel multiplies both rows against the same weights; a token's output is
//         y = canonical(row 2t) + canonical(row 2t+1)        (one fp32 rounding; simd.h)
//     (matmul_q8x2 / matvec_q8x2 in one pass; q8_combine_digits sums two matmul_q8 rows).  The activation error is
//     at most s <= amax/32639 per value (s/2 for 255 of 256 values; a power-of-two s is
//     ~1.44x amax/32639 on average) instead of amax/254: measured on stories260K, 8-bit
//     activations leave top-1 agreement with fp32 at 98.7% and mean KL 5.2e-4, 16-bit at
//     99.2% and 2.2e-4 (what remains is the int8 weights; exact scales with 254 as the digit
//     gave the same).  8-bit scales stay amax/127: rounded up to powers of two, they doubled
//     the 8-bit KL (1.0e-3).  Decode costs the same (the
//     matvec is DRAM-bound: the second dot product per weight vector is free); batched
//     products do twice the int8 multiply-adds.
//
// Repacked layouts (built at load time, NEVER written to disk; see q8_pack_*):
//   Q8Panels — y = W x.  Rows in panels of 16 (the last padded with zero rows), each panel
//   stored block after block, so one panel — and a matvec over consecutive panels — is one
//   sequential stream (row-major int8 reads 16 short streams per panel and reaches only about
//   half of DRAM bandwidth because they defeat the prefetcher).  Panel p, block b sits at
//   byte (p * nb + b) * Q8_PANEL_BLOCK_BYTES:
//       float   d[16]           scales of rows 16p .. 16p+15 for block b      (64 bytes)
//       uint8_t q[8][16][4]     q[j][i][k] = W[16p + i][32b + 4j + k] + 128   (512 bytes)
//   i.e. 64-byte vectors of "16 rows x 4 consecutive columns": one vpdpbusd (AVX-512 VNNI)
//   gives 16 row sums of 4 products; AVX2 takes 8 rows per ymm, NEON 4 rows per sdot.
//   The +128 bias (u8) is what vpdpbusd needs for its unsigned operand; AVX2 and NEON undo it
//   with one xor.
//   Q8PanelsT — y = W^T g (backward sweeps), the same int8 values as W's BlockQ8 rows: output
//   columns in panels of 16, reduction over rows in groups of 32.  Panel p (columns 16p..),
//   group g (rows 32g..) at byte (p * ng + g) * 512: uint8_t q[8][16][4] with
//   q[j][i][k] = W[32g + 4j + k][16p + i] + 128.  W's row scales (which differ from row to row
//   inside a group) go into the activation instead: for the column block b of each panel,
//   v_b[r] = d_W[r, b] * g[r] is quantized in groups of 32 rows (q8_act_quantize_t), so the
//   reduction over rows is an exact integer sum again.  scale (nb, ng*32) holds d_W transposed.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define QK8 32                     // values per block
#define Q8_PANEL_ROWS 16           // rows per panel (lanes of one zmm)
#define Q8_PANEL_QBYTES (QK8 * Q8_PANEL_ROWS)                   // 512
#define Q8_PANEL_BLOCK_BYTES (Q8_PANEL_QBYTES + 4 * Q8_PANEL_ROWS) // 576
#define Q8_TINY 1e-30f             // blocks with amax below this quantize to zero
#define Q8_DIGIT 256               // 16-bit activations: v = Q8_DIGIT * hi + lo
#define Q8_VMAX16 (127 * Q8_DIGIT + 127) // |v| <= 32639

typedef struct BlockQ8 {
    float d;           // scale: value = d * qs[k]
    int8_t qs[QK8];    // in [-127, 127]
} BlockQ8;
_Static_assert(sizeof(BlockQ8) == 4 + QK8, "BlockQ8 must be 36 bytes with no padding");

static inline size_t q8_nblocks(size_t cols) { return (cols + QK8 - 1) / QK8; }
static inline size_t q8_npanels(size_t rows) { return (rows + Q8_PANEL_ROWS - 1) / Q8_PANEL_ROWS; }

// ---- reference quantize / dequantize ---------------------------------------------------------
// One block from n <= 32 values (the rest of the block is zero): the weight rule ...
void q8_quantize_block(BlockQ8 *b, const float *x, size_t n);
// ... and the activation rule (d = amax / 127), cheap enough for every product.
void q8_quantize_block_amax(BlockQ8 *b, const float *x, size_t n);
// A row of cols values into q8_nblocks(cols) blocks.
void q8_quantize_row(BlockQ8 *dst, const float *x, size_t cols);
// Back to cols floats: x[k] = d * qs[k] (one rounding).
void q8_dequantize_row(float *x, const BlockQ8 *src, size_t cols);
// Quantize / dequantize a (rows, cols) matrix (row-major on both sides).
void q8_quantize_matrix(BlockQ8 *dst, const float *W, size_t rows, size_t cols);
void q8_dequantize_matrix(float *W, const BlockQ8 *src, size_t rows, size_t cols);

// ---- activations -----------------------------------------------------------------------------
// T rows quantized for a product (see top of file).  Row t's blocks: q + t*nb*32, d + t*nb,
// nsum + t*nb.  For Q8PanelsT products, "rows" are (t, column block) pairs: row t*nbw + b.
typedef struct Q8Act {
    const int8_t *q;      // (T, nb*32)
    const float *d;       // (T, nb)
    const int32_t *nsum;  // (T, nb)  -128 * sum of the block's q
    size_t nb;            // blocks per row
    size_t T;             // rows (digits rows per token)
    int digits;           // 1: int8 activations; 2: a token is rows (hi, lo) of a 16-bit value
    int pow2;             // 1: every d is a power of two, 0 or NaN (the 16-bit quantizer's), so
                          // fl(dw * d) = dw scaled by d's exponent; 0: any scales
} Q8Act;

// The smallest power of two >= t, for a positive normal t below 2^127 (the 16-bit activation
// scale): t itself when its mantissa field is 0, else the next exponent with a zero mantissa.
// Integer operations on the bits, so every ISA gets the same scale.
static inline float q8_pow2_ceil(float t)
{
    union { float f; uint32_t u; } b = {t};
    if (b.u & 0x7fffffu) b.u = (b.u & 0x7f800000u) + 0x800000u;
    return b.f;
}

// A grow-only buffer that owns a Q8Act's storage (no allocation once it is large enough).
typedef struct Q8ActBuf {
    int8_t *q;
    float *d;
    int32_t *nsum;
    size_t cap_blocks;    // capacity in blocks (T * nb)
    uint64_t gen;         // +1 each time a quantization writes the storage
} Q8ActBuf;
// Make room for nblocks blocks; returns 0, or -1 on out of memory (message set).
int q8_actbuf_reserve(Q8ActBuf *b, size_t nblocks);
void q8_actbuf_free(Q8ActBuf *b);

// Quantize X (T, cols) row by row into A (storage from buf), 8-bit (digits 1).  Returns 0 or
// -1 (memory).
int q8_act_quantize(Q8Act *A, Q8ActBuf *buf, const float *X, size_t T, size_t cols);
// The same with digits 1 (8-bit) or 2 (16-bit as two int8 rows per token: A->T = 2 T).
int q8_act_quantize_digits(Q8Act *A, Q8ActBuf *buf, const float *X, size_t T, size_t cols, int digits);
// One 32-value block (n <= 32 valid, the rest zero) of 8-bit activations: the rule of
// q8_quantize_block_amax, into q (32), *d and *nsum = -128 * sum(q).
void q8_act_block8(int8_t *q, float *d, int32_t *nsum, const float *x, size_t n);
// One 32-value block (n <= 32 valid, the rest zero) of 16-bit activations: hi and lo digits,
// their scales and nsums.  Zero / tiny blocks give d = 0 and q = 0; NaN or Inf give d = NaN.
void q8_act_block16(int8_t *qhi, float *dhi, int32_t *nhi, int8_t *qlo, float *dlo, int32_t *nlo,
                    const float *x, size_t n);
// Y (T, ldy) rows [r0, r1) = Y2 (2T rows of ld2) row 2t + row 2t+1: the outputs of a product
// against digits-2 activations (each a canonical value of simd.h) combined per token.
void q8_combine_digits(float *Y, size_t ldy, const float *Y2, size_t ld2, size_t T, size_t r0, size_t r1);

// ---- repacked layouts ------------------------------------------------------------------------
typedef struct Q8Panels {
    const uint8_t *data;  // q8_panels_bytes(rows, cols) bytes, 64-byte aligned for speed
    size_t rows, cols;
    size_t nb;            // blocks per row   = q8_nblocks(cols)
    size_t np;            // panels           = q8_npanels(rows)
} Q8Panels;

typedef struct Q8PanelsT {
    const uint8_t *data;  // q8_panels_t_bytes(rows, cols) bytes
    const float *scale;   // (nb, ng*32): scale[b*ng*32 + r] = d of W row r, block b (0 past rows)
    size_t rows, cols;    // of W (the product is y (cols) = W^T g (rows))
    size_t nb;            // column blocks of W  = q8_nblocks(cols)
    size_t ng;            // row groups          = q8_nblocks(rows)
    size_t np;            // output panels       = q8_npanels(cols)
} Q8PanelsT;

size_t q8_panels_bytes(size_t rows, size_t cols);
size_t q8_panels_t_bytes(size_t rows, size_t cols);   // quants only; scales: nb*ng*32 floats
// Describe a packed buffer (no copy).
Q8Panels q8_panels_view(const void *data, size_t rows, size_t cols);

// Pack panels [p0, p1) of W (rows, cols), given as BlockQ8 rows (nb per row), into dst (the
// whole packed buffer).  Packing panel ranges lets each thread first-touch the panels it will
// read (NUMA).  Padding rows/columns are written as zeros (d = 0, q = 0 -> u8 128).
void q8_pack_panels(uint8_t *dst, const BlockQ8 *W, size_t rows, size_t cols, size_t p0, size_t p1);
// The same from fp32 rows: each panel's 16 rows are quantized (q8_quantize_row) then packed, so
// no full BlockQ8 copy of W is ever made.  Returns 0, or -1 on out of memory.
int q8_quantize_pack_panels(uint8_t *dst, const float *W, size_t rows, size_t cols, size_t p0, size_t p1);
// The inverse: BlockQ8 rows back from a packed buffer (exact round trip).
void q8_unpack_panels(BlockQ8 *W, const uint8_t *src, size_t rows, size_t cols);
// Transposed layout: panels [p0, p1) of quants into dst, and (when scale != NULL) the scales.
void q8_pack_panels_t(uint8_t *dst, float *scale, const BlockQ8 *W, size_t rows, size_t cols,
                      size_t p0, size_t p1);
void q8_unpack_panels_t(BlockQ8 *W, const uint8_t *src, const float *scale, size_t rows, size_t cols);

// The transposed layout of a packed matrix (same int8 values), for backward sweeps: out owns
// its data and scale (q8_panels_t_free).  Returns 0 or -1 (out of memory).
int q8_panels_t_build(Q8PanelsT *out, const Q8Panels *W);
void q8_panels_t_free(Q8PanelsT *t);

// Quantize G (T, rows) for y = W^T g: A gets T * nb rows of ng blocks, row t*nb + b holding
// v_b = scale[b] * g_t (elementwise, one rounding) quantized by 32-row groups.
int q8_act_quantize_t(Q8Act *A, Q8ActBuf *buf, const float *G, size_t T, const Q8PanelsT *Wt);

// One output of W x: the canonical value of simd.h (row r of W, token t of X: activation row t,
// or with digits 2 the sum of rows 2t and 2t+1), computed here in plain C in the documented
// order, so it equals every kernel table's output bit for bit (e.g. one feature of a
// transcoder encoder without encoding the whole layer).
float q8_panels_row_dot(const Q8Panels *W, size_t r, const Q8Act *X, size_t t);

// ---- one-call products (single thread, through simd_kernels(); buf is scratch) ---------------
// Y (T, rows) = X (T, cols) W^T with X quantized per row (digits 1 or 2); Y[t*rows + r].
int q8_matmul(float *Y, const Q8Panels *W, const float *X, size_t T, int digits, Q8ActBuf *buf);
// Y (T, cols) = G (T, rows) W   (each row: y = W^T g).
int q8_matmul_t(float *Y, const Q8PanelsT *Wt, const float *G, size_t T, Q8ActBuf *buf);
