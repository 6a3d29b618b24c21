// amx_cfg.h — the AMX tile configuration record (palette 1) that LDTILECFG reads: shared by
// the amx kernels (simd/x86_avx512.c) and the tile probes (bench/probes.h).  Plain C: the
// includer needs no -mamx flags.
#pragma once
#include <stdint.h>

typedef struct AmxCfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];   // bytes per row of tiles 0..15
    uint8_t rows[16];     // rows of tiles 0..15
} AmxCfg;
_Static_assert(sizeof(AmxCfg) == 64, "AMX tile configuration is 64 bytes");
