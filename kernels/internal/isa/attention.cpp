// attention.cpp — driver of the fused blockwise attention: validates, transposes K once per call into the
// context's shared buffer when the level wants it (so the score micro-kernel reads contiguous key rows),
// then runs one task per (batch, head, block of query rows). No Tq x Tk matrix is ever formed.
#include <cstring>

#include "isa_internal.h"

namespace {

int has_attn(const tdxl_isa_ops *ops) { return ops->attn_task != nullptr; }

struct attn_job {
    tdxl_attn_args a;
    const tdxl_isa_ops *ops;
    tdxl_isa_ctx *ctx;
    int64_t qblocks;
    float *kt;  // writable view of a.kt
    int64_t bk;
};

void transpose_task(void *arg, int64_t bh, int) {
    const attn_job *j = static_cast<const attn_job *>(arg);
    const tdxl_attn_args &a = j->a;
    const int64_t bi = bh / a.heads, h = bh % a.heads;
    const float *kb = a.k + bi * a.tk * a.ldk + h * a.d;
    float *dst = j->kt + bh * a.d * a.tk_pad;
    // Layout [key block of bk][d][bk]: each block's K^T is contiguous. Blocks of 16 keys at a time keep
    // both sides reasonably cache-friendly.
    const int64_t bk = j->bk;
    for (int64_t j0 = 0; j0 < a.tk_pad; j0 += 16) {
        float *blk = dst + (j0 / bk) * a.d * bk + j0 % bk;
        for (int64_t dd = 0; dd < a.d; dd++) {
            float *drow = blk + dd * bk;
            for (int64_t t = 0; t < 16; t++) {
                const int64_t key = j0 + t;
                drow[t] = key < a.tk ? kb[key * a.ldk + dd] : 0.0f;
            }
        }
    }
}

void attn_run_task(void *arg, int64_t task, int tid) {
    const attn_job *j = static_cast<const attn_job *>(arg);
    const int64_t bh = task / j->qblocks, qb = task % j->qblocks;
    j->ops->attn_task(&j->a, bh, qb * j->a.bq, static_cast<float *>(tdxl_ctx_scratch(j->ctx, tid)));
}

}  // namespace

extern "C" int tdxl_isa_attention(tdxl_isa_ctx *ctx, int64_t b, int64_t tq, int64_t tk, int64_t heads, int64_t d,
                                  const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                                  int64_t ldv, float *o, int64_t ldo, float scale, int causal) {
    if (ctx == nullptr || q == nullptr || k == nullptr || v == nullptr || o == nullptr || b <= 0 || tq <= 0 ||
        tk <= 0 || heads <= 0 || d <= 0 || ldq < heads * d || ldk < heads * d || ldv < heads * d ||
        ldo < heads * d)
        return TDXL_ISA_EINVAL;
    attn_job j{};
    j.ops = tdxl_isa_ops_with(tdxl_isa_ctx_level(ctx), has_attn);
    if (j.ops == nullptr) return TDXL_ISA_EUNSUPPORTED;
    j.ctx = ctx;
    tdxl_attn_args &a = j.a;
    a.b = b;
    a.tq = tq;
    a.tk = tk;
    a.heads = heads;
    a.d = d;
    a.q = q;
    a.k = k;
    a.v = v;
    a.o = o;
    a.ldq = ldq;
    a.ldk = ldk;
    a.ldv = ldv;
    a.ldo = ldo;
    a.scale = scale;
    a.causal = causal != 0;
    const int64_t bk = j.ops->attn_bk > 0 ? j.ops->attn_bk : 64;
    a.bq = j.ops->attn_bq > 0 ? j.ops->attn_bq : 16;
    a.tk_pad = (tk + bk - 1) / bk * bk;
    j.bk = bk;
    const int64_t bq_pad = a.bq + 16, d_pad = (d + 15) / 16 * 16;
    // O accumulator, score block, row maxima and 16 partial denominators per row (+ ref's Tk row)
    const size_t scratch =
        sizeof(float) * static_cast<size_t>(bq_pad * d_pad + bq_pad * bk + 18 * bq_pad + tk + 64);
    int rc = tdxl_ctx_reserve(ctx, scratch);
    if (rc != TDXL_ISA_OK) return rc;
    if (j.ops->attn_wants_kt) {
        rc = tdxl_ctx_reserve_shared(ctx, sizeof(float) * static_cast<size_t>(b * heads * d * a.tk_pad));
        if (rc != TDXL_ISA_OK) return rc;
        j.kt = static_cast<float *>(tdxl_ctx_shared(ctx));
        a.kt = j.kt;
        tdxl_pool_run(tdxl_ctx_pool(ctx), b * heads, transpose_task, &j);
    }
    j.qblocks = (tq + a.bq - 1) / a.bq;
    tdxl_pool_run(tdxl_ctx_pool(ctx), b * heads * j.qblocks, attn_run_task, &j);
    return TDXL_ISA_OK;
}
