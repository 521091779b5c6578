// gemm.cpp — packed weights and the GEMM driver shared by linear and conv2d (implicit GEMM).
// Baseline code: it blocks, threads and gathers; the ISA micro-kernels come from the dispatch table.
//
// Blocking (per task = one MC x NC tile of Y):
//   for k0 in K step KC:             A rows [MC][KC] (pointers into X, or a gathered conv tile)
//     (bf16 kernels) pack A rows to bf16 [MC][KCp]
//     for each NR panel j in NC:     B micro-panel KC x NR stays in L1
//       for each MR rows i in MC:    ukr: C[i..i+MR][j..j+NR] (+)= A . B    (C tile in per-thread scratch)
//   epilogue: Y = act(C + bias + residual) for the valid part of the tile
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "isa_internal.h"

struct tdxl_isa_weight {
    const tdxl_gemm_kernel *kern = nullptr;
    int is_conv = 0;
    int64_t n = 0, k = 0;       // GEMM view: N outputs, K = cin*kh*kw
    int64_t cin = 0;
    int kh = 1, kw = 1;
    int64_t np = 0, kp = 0;     // padded sizes
    void *data = nullptr;
    size_t bytes = 0;
    // GEGLU weights: GEMM columns are panels of nr = nr/2 "hidden" columns then their nr/2 gates; f is the
    // output width (half the source rows); bias_perm is the bias in GEMM-column order (or NULL).
    int geglu = 0;
    int64_t f = 0;
    float *bias_perm = nullptr;
};

namespace {

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int has_f32(const tdxl_isa_ops *ops) { return ops->gemm_f32 != nullptr; }
int has_bf16(const tdxl_isa_ops *ops) { return ops->gemm_bf16 != nullptr; }

// The GEMM kernel for the residency, from the context's level down (tdxl_isa_ops_with).
const tdxl_gemm_kernel *pick_kernel(int level, int resident) {
    const bool f32 = resident == TDXL_ISA_RESIDENT_F32;
    const tdxl_isa_ops *ops = tdxl_isa_ops_with(level, f32 ? has_f32 : has_bf16);
    if (ops == nullptr) return nullptr;
    return f32 ? ops->gemm_f32 : ops->gemm_bf16;
}

float load_src(const void *w, int dtype, int64_t i) {
    switch (dtype) {
        case TDXL_ISA_F16: return tdxl_f16_to_f32(static_cast<const uint16_t *>(w)[i]);
        case TDXL_ISA_BF16: return tdxl_bf16_to_f32(static_cast<const uint16_t *>(w)[i]);
        default: return static_cast<const float *>(w)[i];
    }
}

struct pack_job {
    tdxl_isa_weight *w;
    const void *src;
    int dtype;
};

// Source row of GEMM column n of a GEGLU weight, or -1 for a padding column.
int64_t geglu_row(const tdxl_isa_weight *w, int64_t n) {
    const int64_t p = w->kern->nr / 2, panel = n / w->kern->nr, t = n % w->kern->nr;
    const int64_t out = panel * p + t % p;
    if (out >= w->f) return -1;
    return t < p ? out : w->f + out;
}

// Source element of GEMM column n, GEMM row kk (kk in (ky, kx, ci) order for convs).
float src_at(const pack_job *j, int64_t n, int64_t kk) {
    const tdxl_isa_weight *w = j->w;
    if (w->geglu) {
        const int64_t r = geglu_row(w, n);
        return r < 0 ? 0.0f : load_src(j->src, j->dtype, r * w->k + kk);
    }
    if (!w->is_conv) return load_src(j->src, j->dtype, n * w->k + kk);
    const int64_t tap = kk / w->cin, ci = kk % w->cin;
    const int64_t ky = tap / w->kw, kx = tap % w->kw;
    return load_src(j->src, j->dtype, ((n * w->cin + ci) * w->kh + ky) * w->kw + kx);
}

void pack_panel(void *arg, int64_t panel, int) {
    const pack_job *j = static_cast<const pack_job *>(arg);
    const tdxl_isa_weight *w = j->w;
    const int nr = w->kern->nr;
    const int64_t base = panel * w->kp * nr;
    for (int64_t kk = 0; kk < w->kp; kk++) {
        for (int c = 0; c < nr; c++) {
            const int64_t n = panel * nr + c;
            const float v = (n < w->n && kk < w->k) ? src_at(j, n, kk) : 0.0f;
            switch (w->kern->b_format) {
                case TDXL_BFMT_F32_PANEL:
                    static_cast<float *>(w->data)[base + kk * nr + c] = v;
                    break;
                case TDXL_BFMT_BF16_PANEL:
                    static_cast<uint16_t *>(w->data)[base + kk * nr + c] = tdxl_f32_to_bf16(v);
                    break;
                case TDXL_BFMT_BF16_PAIR16:
                case TDXL_BFMT_BF16_PAIR8: {
                    const int pw = w->kern->b_format == TDXL_BFMT_BF16_PAIR16 ? 16 : 8;
                    const int g = c / (2 * pw), jj = c % (2 * pw);
                    const int pos = g * 2 * pw + (jj < pw ? 2 * jj : 2 * (jj - pw) + 1);
                    static_cast<uint16_t *>(w->data)[base + kk * nr + pos] = tdxl_f32_to_bf16(v);
                    break;
                }
                default:  // BF16_VNNI: [Kp/2][NR][2]
                    static_cast<uint16_t *>(w->data)[base + (kk / 2) * nr * 2 + c * 2 + (kk & 1)] =
                        tdxl_f32_to_bf16(v);
                    break;
            }
        }
    }
}

int pack_common(tdxl_isa_ctx *ctx, tdxl_isa_weight *w, const void *src, int dtype, int resident,
                tdxl_isa_weight **out) {
    w->kern = pick_kernel(tdxl_isa_ctx_level(ctx), resident);
    if (w->kern == nullptr) return TDXL_ISA_EUNSUPPORTED;
    if (w->geglu) w->n = ceil_div(w->f, w->kern->nr / 2) * w->kern->nr;
    w->np = round_up(w->n, w->kern->nr);
    w->kp = round_up(w->k, w->kern->k_align);
    const size_t elem = w->kern->b_format == TDXL_BFMT_F32_PANEL ? 4 : 2;
    w->bytes = static_cast<size_t>(w->np) * static_cast<size_t>(w->kp) * elem;
    if (posix_memalign(&w->data, 64, w->bytes) != 0) {
        w->data = nullptr;
        return TDXL_ISA_ENOMEM;
    }
    pack_job j{w, src, dtype};
    tdxl_pool_run(tdxl_ctx_pool(ctx), w->np / w->kern->nr, pack_panel, &j);
    *out = w;
    return TDXL_ISA_OK;
}

// ---- GEMM driver ----

struct gemm_job {
    const tdxl_isa_weight *w;
    const tdxl_gemm_kernel *kern;
    int64_t m;
    const float *x;
    int64_t ldx;
    // conv geometry (gather when conv != 0)
    int conv;
    int64_t h, wd, ho, wo;
    int stride, pad;
    float *y;
    int64_t ldy;
    const float *bias, *res;
    int64_t ldr;
    int act;
    int64_t mc, nc, nblocks, mblocks;
    int64_t kc;  // k chunk of this call (kern->kc, or all of K when that saves a pass)
    tdxl_isa_ctx *ctx;
};

// Scratch layout per thread: C tile [mc][nc] f32 | row pointers [mc] | gathered A [mc][kc] f32 |
// bf16 A [mc][kcp].
size_t scratch_bytes(const gemm_job &g) {
    const int64_t kc = g.kc;
    size_t b = static_cast<size_t>(g.mc * g.nc) * 4 + static_cast<size_t>(g.mc) * sizeof(float *) + 64;
    if (g.conv) b += static_cast<size_t>(g.mc * kc) * 4 + 64;
    if (g.kern->a_bf16) b += static_cast<size_t>(g.mc * round_up(kc, g.kern->k_align)) * 2 + 64;
    return b;
}

void gather_conv(const gemm_job *g, int64_t m0, int64_t mlen, int64_t k0, int64_t kcl, float *dst,
                 int64_t ldd) {
    const tdxl_isa_weight *w = g->w;
    const int64_t cin = w->cin;
    for (int64_t i = 0; i < mlen; i++) {
        const int64_t m = m0 + i;
        const int64_t ox = m % g->wo, t = m / g->wo, oy = t % g->ho, bi = t / g->ho;
        float *d = dst + i * ldd;
        int64_t kk = k0;
        const int64_t kend = k0 + kcl;
        while (kk < kend) {
            const int64_t tap = kk / cin, ci = kk % cin;
            const int64_t len = std::min(cin - ci, kend - kk);
            const int64_t iy = oy * g->stride - g->pad + tap / w->kw;
            const int64_t ix = ox * g->stride - g->pad + tap % w->kw;
            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->wd) {
                memset(d, 0, static_cast<size_t>(len) * 4);
            } else {
                memcpy(d, g->x + ((bi * g->h + iy) * g->wd + ix) * cin + ci, static_cast<size_t>(len) * 4);
            }
            d += len;
            kk += len;
        }
    }
}

void gemm_task(void *arg, int64_t task, int tid) {
    const gemm_job *g = static_cast<const gemm_job *>(arg);
    const tdxl_gemm_kernel *kern = g->kern;
    const tdxl_isa_weight *w = g->w;
    const int mr = kern->mr, nr = kern->nr;
    // N-major: consecutive tasks share one block of packed weights (while it is hot in cache).
    const int64_t nb = task / g->mblocks, mb = task % g->mblocks;
    const int64_t m0 = mb * g->mc, n0 = nb * g->nc;
    const int64_t mlen = std::min(g->mc, g->m - m0), nlen = std::min(g->nc, w->n - n0);
    const int64_t mpad = round_up(mlen, mr), npanels = ceil_div(nlen, nr);
    const int64_t kc = g->kc, kcp_max = round_up(kc, kern->k_align);
    const size_t elem = kern->b_format == TDXL_BFMT_F32_PANEL ? 4 : 2;

    char *s = static_cast<char *>(tdxl_ctx_scratch(g->ctx, tid));
    float *ctile = reinterpret_cast<float *>(s);
    s += static_cast<size_t>(g->mc * g->nc) * 4;
    const float **rows = reinterpret_cast<const float **>(s);
    s += static_cast<size_t>(g->mc) * sizeof(float *);
    s = reinterpret_cast<char *>((reinterpret_cast<uintptr_t>(s) + 63) & ~static_cast<uintptr_t>(63));
    float *abuf = nullptr;
    if (g->conv) {
        abuf = reinterpret_cast<float *>(s);
        s += static_cast<size_t>(g->mc * kc) * 4;
        s = reinterpret_cast<char *>((reinterpret_cast<uintptr_t>(s) + 63) & ~static_cast<uintptr_t>(63));
    }
    uint16_t *abf = kern->a_bf16 ? reinterpret_cast<uint16_t *>(s) : nullptr;
    const int64_t ldc = g->nc;

    for (int64_t k0 = 0; k0 < w->k; k0 += kc) {
        const int64_t kcl = std::min(kc, w->k - k0);
        const int64_t kcp = round_up(kcl, kern->k_align);
        if (g->conv) {
            gather_conv(g, m0, mlen, k0, kcl, abuf, kc);
            for (int64_t i = 0; i < mlen; i++) rows[i] = abuf + i * kc;
        } else {
            for (int64_t i = 0; i < mlen; i++) rows[i] = g->x + (m0 + i) * g->ldx + k0;
        }
        for (int64_t i = mlen; i < mpad; i++) rows[i] = rows[mlen - 1];
        if (kern->a_bf16) kern->pack_a(rows, mpad, kcl, kcp, abf, kcp_max);
        const int64_t kpass = kern->a_bf16 ? kcp : kcl;
        for (int64_t jp = 0; jp < npanels; jp++) {
            const char *bp = static_cast<const char *>(w->data) +
                             (((n0 / nr + jp) * w->kp + k0) * nr) * static_cast<int64_t>(elem);
            for (int64_t ir = 0; ir < mpad; ir += mr) {
                kern->ukr(kpass, rows + ir, abf == nullptr ? nullptr : abf + ir * kcp_max, kcp_max, bp,
                          ctile + ir * ldc + jp * nr, ldc, k0 > 0);
            }
        }
    }
    if (kern->finish != nullptr) kern->finish();
    if (w->geglu) {
        kern->epilogue_geglu(mlen, nlen, ctile, ldc, g->y + m0 * g->ldy + n0 / 2, g->ldy,
                             w->bias_perm == nullptr ? nullptr : w->bias_perm + n0, w->f - n0 / 2, nr / 2);
        return;
    }
    kern->epilogue(mlen, nlen, ctile, ldc, g->y + m0 * g->ldy + n0, g->ldy,
                   g->bias == nullptr ? nullptr : g->bias + n0,
                   g->res == nullptr ? nullptr : g->res + m0 * g->ldr + n0, g->ldr, g->act);
}

int run_gemm(gemm_job &g) {
    const tdxl_gemm_kernel *kern = g.kern;
    const int threads = tdxl_isa_ctx_threads(g.ctx);
    const int64_t npad = round_up(g.w->n, kern->nr);
    // Start from MC ~ 96 rows and NC <= 512 columns (bf16-A kernels: MC ~ 48 and NC <= 1536, so that each
    // bf16 conversion of an A chunk serves more panels), then shrink until there are enough tiles.
    const int64_t mc0 = kern->a_bf16 ? 48 : 96, nc_max = kern->a_bf16 ? 1536 : 512;
    int64_t mc = round_up(std::min<int64_t>(g.m, std::max<int64_t>(mc0, kern->mr)), kern->mr);
    int64_t nb = ceil_div(npad, nc_max);
    int64_t nc = round_up(ceil_div(npad, nb), kern->nr);
    for (;;) {
        const int64_t tiles = ceil_div(g.m, mc) * ceil_div(g.w->n, nc);
        if (tiles >= 4 * threads) break;
        if (nc > 2 * kern->nr) nc = round_up(nc / 2, kern->nr);
        else if (mc > kern->mr) mc = round_up(mc / 2, kern->mr);
        else break;
    }
    g.mc = mc;
    g.nc = nc;
    // A K a little over one chunk (SDXL's K = 320 against kc = 256) runs as one chunk: a second,
    // short chunk would reload and re-store the whole C tile for a quarter of the work. Not on the
    // AMX levels, whose chunking follows the tile configuration.
    g.kc = kern->kc;
    if (kern->level != TDXL_ISA_AMX && kern->level != TDXL_ISA_AMX_EMU && g.w->k > g.kc && 2 * g.w->k <= 3 * g.kc)
        g.kc = round_up(g.w->k, kern->k_align);
    g.nblocks = ceil_div(g.w->n, nc);
    g.mblocks = ceil_div(g.m, mc);
    int rc = tdxl_ctx_reserve(g.ctx, scratch_bytes(g));
    if (rc != TDXL_ISA_OK) return rc;
    tdxl_pool_run(tdxl_ctx_pool(g.ctx), g.mblocks * g.nblocks, gemm_task, &g);
    return TDXL_ISA_OK;
}

}  // namespace

extern "C" {

int tdxl_isa_weight_pack_linear(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t n, int64_t k,
                                int resident, tdxl_isa_weight **out) {
    if (out == nullptr) return TDXL_ISA_EINVAL;
    *out = nullptr;
    if (ctx == nullptr || w == nullptr || n <= 0 || k <= 0 || dtype < TDXL_ISA_F32 || dtype > TDXL_ISA_BF16 ||
        (resident != TDXL_ISA_RESIDENT_BF16 && resident != TDXL_ISA_RESIDENT_F32))
        return TDXL_ISA_EINVAL;
    tdxl_isa_weight *pw = new (std::nothrow) tdxl_isa_weight;
    if (pw == nullptr) return TDXL_ISA_ENOMEM;
    pw->n = n;
    pw->k = k;
    pw->cin = k;
    int rc = pack_common(ctx, pw, w, dtype, resident, out);
    if (rc != TDXL_ISA_OK) tdxl_isa_weight_free(pw);
    return rc;
}

int tdxl_isa_weight_pack_conv(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t cout, int64_t cin, int kh,
                              int kw, int resident, tdxl_isa_weight **out) {
    if (out == nullptr) return TDXL_ISA_EINVAL;
    *out = nullptr;
    if (ctx == nullptr || w == nullptr || cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0 || dtype < TDXL_ISA_F32 ||
        dtype > TDXL_ISA_BF16 || (resident != TDXL_ISA_RESIDENT_BF16 && resident != TDXL_ISA_RESIDENT_F32))
        return TDXL_ISA_EINVAL;
    tdxl_isa_weight *pw = new (std::nothrow) tdxl_isa_weight;
    if (pw == nullptr) return TDXL_ISA_ENOMEM;
    pw->is_conv = 1;
    pw->n = cout;
    pw->cin = cin;
    pw->kh = kh;
    pw->kw = kw;
    pw->k = cin * kh * kw;
    int rc = pack_common(ctx, pw, w, dtype, resident, out);
    if (rc != TDXL_ISA_OK) tdxl_isa_weight_free(pw);
    return rc;
}

int tdxl_isa_weight_pack_geglu(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t f2, int64_t k,
                               const float *bias, int resident, tdxl_isa_weight **out) {
    if (out == nullptr) return TDXL_ISA_EINVAL;
    *out = nullptr;
    if (ctx == nullptr || w == nullptr || f2 <= 0 || f2 % 2 != 0 || k <= 0 || dtype < TDXL_ISA_F32 ||
        dtype > TDXL_ISA_BF16 || (resident != TDXL_ISA_RESIDENT_BF16 && resident != TDXL_ISA_RESIDENT_F32))
        return TDXL_ISA_EINVAL;
    tdxl_isa_weight *pw = new (std::nothrow) tdxl_isa_weight;
    if (pw == nullptr) return TDXL_ISA_ENOMEM;
    pw->geglu = 1;
    pw->f = f2 / 2;
    pw->k = k;
    pw->cin = k;
    int rc = pack_common(ctx, pw, w, dtype, resident, out);
    if (rc == TDXL_ISA_OK && bias != nullptr) {
        pw->bias_perm = static_cast<float *>(calloc(static_cast<size_t>(pw->n) + 16, sizeof(float)));
        if (pw->bias_perm == nullptr) {
            rc = TDXL_ISA_ENOMEM;
        } else {
            for (int64_t n = 0; n < pw->n; n++) {
                const int64_t r = geglu_row(pw, n);
                pw->bias_perm[n] = r < 0 ? 0.0f : bias[r];
            }
        }
    }
    if (rc != TDXL_ISA_OK) {
        *out = nullptr;
        tdxl_isa_weight_free(pw);
    }
    return rc;
}

void tdxl_isa_weight_free(tdxl_isa_weight *w) {
    if (w == nullptr) return;
    free(w->bias_perm);
    free(w->data);
    delete w;
}

int tdxl_isa_weight_level(const tdxl_isa_weight *w) { return w == nullptr ? -1 : w->kern->level; }
size_t tdxl_isa_weight_bytes(const tdxl_isa_weight *w) { return w == nullptr ? 0 : w->bytes; }

int tdxl_isa_linear(tdxl_isa_ctx *ctx, const tdxl_isa_weight *w, int64_t m, const float *x, int64_t ldx,
                    float *y, int64_t ldy, const float *bias, const float *residual, int64_t ldr, int act) {
    if (ctx == nullptr || w == nullptr || x == nullptr || y == nullptr || m <= 0 || ldx < w->k ||
        ldy < (w->geglu ? w->f : w->n) || (residual != nullptr && ldr < w->n) || act < TDXL_ISA_ACT_NONE ||
        act > TDXL_ISA_ACT_SILU)
        return TDXL_ISA_EINVAL;
    if (w->geglu && (bias != nullptr || residual != nullptr || act != TDXL_ISA_ACT_NONE)) return TDXL_ISA_EMISMATCH;
    if (w->is_conv && (w->kh != 1 || w->kw != 1)) return TDXL_ISA_EMISMATCH;
    gemm_job g{};
    g.w = w;
    g.kern = w->kern;
    g.m = m;
    g.x = x;
    g.ldx = ldx;
    g.y = y;
    g.ldy = ldy;
    g.bias = bias;
    g.res = residual;
    g.ldr = ldr;
    g.act = act;
    g.ctx = ctx;
    return run_gemm(g);
}

int tdxl_isa_conv2d(tdxl_isa_ctx *ctx, const tdxl_isa_weight *w, int64_t b, int64_t h, int64_t wd,
                    const float *x, int stride, int pad, float *y, const float *bias, const float *residual,
                    int act) {
    if (ctx == nullptr || w == nullptr || x == nullptr || y == nullptr || b <= 0 || h <= 0 || wd <= 0 ||
        stride <= 0 || pad < 0 || act < TDXL_ISA_ACT_NONE || act > TDXL_ISA_ACT_SILU)
        return TDXL_ISA_EINVAL;
    if (!w->is_conv) return TDXL_ISA_EMISMATCH;
    const int64_t ho = (h + 2 * pad - w->kh) / stride + 1, wo = (wd + 2 * pad - w->kw) / stride + 1;
    if (h + 2 * pad < w->kh || wd + 2 * pad < w->kw || ho <= 0 || wo <= 0) return TDXL_ISA_EINVAL;
    gemm_job g{};
    g.w = w;
    g.kern = w->kern;
    g.m = b * ho * wo;
    g.x = x;
    g.ldx = w->cin;
    g.conv = !(w->kh == 1 && w->kw == 1 && stride == 1 && pad == 0);
    g.h = h;
    g.wd = wd;
    g.ho = ho;
    g.wo = wo;
    g.stride = stride;
    g.pad = pad;
    g.y = y;
    g.ldy = w->n;
    g.bias = bias;
    g.res = residual;
    g.ldr = w->n;
    g.act = act;
    g.ctx = ctx;
    return run_gemm(g);
}

}  // extern "C"
