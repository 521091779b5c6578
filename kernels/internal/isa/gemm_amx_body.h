/* gemm_amx_body.h — the AMX-bf16 GEMM kernel, included by exactly two translation units:
 *   gemm_amx.cpp      real tile instructions (#pragma GCC target amx-tile,amx-bf16,...)
 *   gemm_amx_emu.cpp  TDXL_AMX_EMULATE: the same code on a plain C++ emulation of the tiles
 * so that the packing and tiling run and are tested on machines without AMX. Everything here is in an
 * anonymous namespace (internal linkage in each includer); no include guard on purpose.
 *
 * Tile allocation (palette 1, every tile 16 rows x 64 bytes), one 32 x 32 block of C per call:
 *
 *                       B0 = tmm6 (k/2 x 16 cols)   B1 = tmm7
 *                     +--------------------------+--------------------------+
 *   A0 = tmm4 (rows   | C00 = tmm0                | C01 = tmm1               |
 *        0..15, 32 k) |                          |                          |
 *                     +--------------------------+--------------------------+
 *   A1 = tmm5 (rows   | C10 = tmm2                | C11 = tmm3               |
 *        16..31)      |                          |                          |
 *                     +--------------------------+--------------------------+
 *
 * A: bf16 rows from pack_a, row stride lda elements, K zero-padded to a multiple of 32.
 * B: VNNI panel [Kp/2][32][2] (NR = 32): pair row p of columns 0..15 at p*128 bytes, 16..31 at +64 bytes.
 * C: fp32 tile buffer, row stride ldc; loaded when accumulating across k chunks, else zeroed.
 */

namespace {

const int kAmxMR = 32, kAmxNR = 32, kAmxKC = 512;

#if defined(TDXL_AMX_EMULATE)

struct emu_tile {
    int rows, colsb;
    alignas(64) unsigned char data[16][64];
};
thread_local emu_tile emu_tmm[8];

void emu_config() {
    for (int t = 0; t < 8; t++) {
        emu_tmm[t].rows = 16;
        emu_tmm[t].colsb = 64;
    }
}
void emu_load(int t, const void *base, int64_t stride) {
    emu_tile &x = emu_tmm[t];
    for (int r = 0; r < x.rows; r++) memcpy(x.data[r], static_cast<const char *>(base) + r * stride, x.colsb);
}
void emu_store(int t, void *base, int64_t stride) {
    const emu_tile &x = emu_tmm[t];
    for (int r = 0; r < x.rows; r++) memcpy(static_cast<char *>(base) + r * stride, x.data[r], x.colsb);
}
void emu_zero(int t) { memset(emu_tmm[t].data, 0, sizeof(emu_tmm[t].data)); }
void emu_release() {
    for (int t = 0; t < 8; t++) {
        emu_tmm[t].rows = 0;
        emu_tmm[t].colsb = 0;
    }
}
// TDPBF16PS: C.fp32[m][n] += sum_k A.bf16[m][2k+i] * B.bf16[k][2n+i], i = 0, 1.
void emu_dpbf16ps(int c, int a, int b) {
    emu_tile &tc = emu_tmm[c];
    const emu_tile &ta = emu_tmm[a], &tb = emu_tmm[b];
    for (int m = 0; m < tc.rows; m++) {
        for (int n = 0; n < tc.colsb / 4; n++) {
            float acc;
            memcpy(&acc, &tc.data[m][n * 4], 4);
            for (int k = 0; k < ta.colsb / 4; k++) {
                uint16_t a0, a1, b0, b1;
                memcpy(&a0, &ta.data[m][k * 4], 2);
                memcpy(&a1, &ta.data[m][k * 4 + 2], 2);
                memcpy(&b0, &tb.data[k][n * 4], 2);
                memcpy(&b1, &tb.data[k][n * 4 + 2], 2);
                acc += tdxl_bf16_to_f32(a0) * tdxl_bf16_to_f32(b0) + tdxl_bf16_to_f32(a1) * tdxl_bf16_to_f32(b1);
            }
            memcpy(&tc.data[m][n * 4], &acc, 4);
        }
    }
}
#define TDXL_TILE_CONFIG() emu_config()
#define TDXL_TILE_RELEASE() emu_release()
#define TDXL_TILE_LOAD(t, p, s) emu_load(t, p, s)
#define TDXL_TILE_STORE(t, p, s) emu_store(t, p, s)
#define TDXL_TILE_ZERO(t) emu_zero(t)
#define TDXL_TILE_DP(c, a, b) emu_dpbf16ps(c, a, b)

#else

struct alignas(64) tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
void amx_config() {
    tile_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}
#define TDXL_TILE_CONFIG() amx_config()
#define TDXL_TILE_RELEASE() _tile_release()
#define TDXL_TILE_LOAD(t, p, s) _tile_loadd(t, p, s)
#define TDXL_TILE_STORE(t, p, s) _tile_stored(t, p, s)
#define TDXL_TILE_ZERO(t) _tile_zero(t)
#define TDXL_TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)

#endif

// Tiles are configured lazily by the first micro-kernel a thread runs in a task and released by
// amx_finish after its task (oneDNN's configure/release pairing).
thread_local bool tile_configured = false;

void amx_finish() {
    if (tile_configured) {
        TDXL_TILE_RELEASE();
        tile_configured = false;
    }
}

void amx_ukr(int64_t kc, const float *const *, const uint16_t *abf, int64_t lda, const void *bv, float *c,
             int64_t ldc, int accumulate) {
    if (!tile_configured) {
        TDXL_TILE_CONFIG();
        tile_configured = true;
    }
    const uint16_t *b = static_cast<const uint16_t *>(bv);
    const int64_t cs = ldc * 4, as = lda * 2, bs = kAmxNR * 2 * 2;
    if (accumulate) {
        TDXL_TILE_LOAD(0, c, cs);
        TDXL_TILE_LOAD(1, c + 16, cs);
        TDXL_TILE_LOAD(2, c + 16 * ldc, cs);
        TDXL_TILE_LOAD(3, c + 16 * ldc + 16, cs);
    } else {
        TDXL_TILE_ZERO(0);
        TDXL_TILE_ZERO(1);
        TDXL_TILE_ZERO(2);
        TDXL_TILE_ZERO(3);
    }
    for (int64_t k = 0; k < kc; k += 32) {
        const uint16_t *bk = b + k * kAmxNR;  // (k/2) pair rows * 32 columns * 2
        TDXL_TILE_LOAD(4, abf + k, as);
        TDXL_TILE_LOAD(5, abf + 16 * lda + k, as);
        TDXL_TILE_LOAD(6, bk, bs);
        TDXL_TILE_LOAD(7, bk + 32, bs);
        TDXL_TILE_DP(0, 4, 6);
        TDXL_TILE_DP(1, 4, 7);
        TDXL_TILE_DP(2, 5, 6);
        TDXL_TILE_DP(3, 5, 7);
    }
    TDXL_TILE_STORE(0, c, cs);
    TDXL_TILE_STORE(1, c + 16, cs);
    TDXL_TILE_STORE(2, c + 16 * ldc, cs);
    TDXL_TILE_STORE(3, c + 16 * ldc + 16, cs);
}

}  // namespace
