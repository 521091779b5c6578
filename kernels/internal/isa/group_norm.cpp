// group_norm.cpp — GroupNorm over NHWC with optional fused SiLU, and LayerNorm over rows.
// GroupNorm: one pass for per-channel sums (parallel over fixed row chunks, folded in double in chunk
// order, so results do not depend on the thread count), then one pass
// y = x*scale[c] + shift[c] (+ SiLU).
#include <cmath>
#include <cstring>

#include "isa_internal.h"

namespace {

int has_gn(const tdxl_isa_ops *ops) { return ops->gn_stats != nullptr; }

// Most row chunks per image (bounds the partial-sum buffer: chunks x 2 x c doubles).
constexpr int64_t kMaxChunks = 4096;

struct gn_job {
    const tdxl_isa_ops *ops;
    int64_t b, hw, c, chunks, rows_per_chunk;
    const float *x;
    float *y;
    double *partial;  // [b*chunks][2][c]
    float *scale;     // [b][c]
    float *shift;     // [b][c]
    int silu;
};

void stats_task(void *arg, int64_t t, int) {
    const gn_job *g = static_cast<const gn_job *>(arg);
    const int64_t bi = t / g->chunks, ch = t % g->chunks;
    const int64_t r0 = ch * g->rows_per_chunk;
    int64_t r1 = r0 + g->rows_per_chunk;
    if (r1 > g->hw) r1 = g->hw;
    double *sum = g->partial + t * 2 * g->c, *sumsq = sum + g->c;
    memset(sum, 0, sizeof(double) * static_cast<size_t>(2 * g->c));
    if (r1 > r0) g->ops->gn_stats(g->x + (bi * g->hw + r0) * g->c, r1 - r0, g->c, sum, sumsq);
}

void apply_task(void *arg, int64_t t, int) {
    const gn_job *g = static_cast<const gn_job *>(arg);
    const int64_t bi = t / g->chunks, ch = t % g->chunks;
    const int64_t r0 = ch * g->rows_per_chunk;
    int64_t r1 = r0 + g->rows_per_chunk;
    if (r1 > g->hw) r1 = g->hw;
    if (r1 > r0)
        g->ops->gn_apply(g->x + (bi * g->hw + r0) * g->c, g->y + (bi * g->hw + r0) * g->c, r1 - r0, g->c,
                         g->scale + bi * g->c, g->shift + bi * g->c, g->silu);
}

}  // namespace

extern "C" int tdxl_isa_group_norm(tdxl_isa_ctx *ctx, int64_t b, int64_t hw, int64_t c, int64_t groups,
                                   float eps, const float *x, const float *gamma, const float *beta, float *y,
                                   int silu) {
    if (ctx == nullptr || x == nullptr || y == nullptr || gamma == nullptr || beta == nullptr || b <= 0 ||
        hw <= 0 || c <= 0 || groups <= 0 || c % groups != 0 || !(eps >= 0.0f))
        return TDXL_ISA_EINVAL;
    gn_job g{};
    g.ops = tdxl_isa_ops_with(tdxl_isa_ctx_level(ctx), has_gn);
    if (g.ops == nullptr) return TDXL_ISA_EUNSUPPORTED;
    g.b = b;
    g.hw = hw;
    g.c = c;
    g.x = x;
    g.y = y;
    g.silu = silu != 0;
    // Chunk boundaries depend on hw only, never on the thread count: the per-chunk partial sums are
    // folded in chunk order, so the statistics (and the output bits) are the same at any thread count.
    g.rows_per_chunk = 256;
    if (hw > g.rows_per_chunk * kMaxChunks) g.rows_per_chunk = (hw + kMaxChunks - 1) / kMaxChunks;
    g.chunks = (hw + g.rows_per_chunk - 1) / g.rows_per_chunk;
    const size_t partial_bytes = sizeof(double) * static_cast<size_t>(b * g.chunks * 2 * c);
    const size_t bytes = partial_bytes + sizeof(float) * static_cast<size_t>(2 * b * c) + 64;
    int rc = tdxl_ctx_reserve_shared(ctx, bytes);
    if (rc != TDXL_ISA_OK) return rc;
    char *base = static_cast<char *>(tdxl_ctx_shared(ctx));
    g.partial = reinterpret_cast<double *>(base);
    g.scale = reinterpret_cast<float *>(base + partial_bytes);
    g.shift = g.scale + b * c;
    tdxl_pool_run(tdxl_ctx_pool(ctx), b * g.chunks, stats_task, &g);
    const int64_t cg = c / groups;
    const double count = static_cast<double>(hw) * static_cast<double>(cg);
    for (int64_t bi = 0; bi < b; bi++) {
        for (int64_t gi = 0; gi < groups; gi++) {
            double s = 0, ss = 0;
            for (int64_t ch = 0; ch < g.chunks; ch++) {
                const double *sum = g.partial + (bi * g.chunks + ch) * 2 * c, *sumsq = sum + c;
                for (int64_t j = gi * cg; j < (gi + 1) * cg; j++) {
                    s += sum[j];
                    ss += sumsq[j];
                }
            }
            const double mean = s / count;
            double var = ss / count - mean * mean;
            if (var < 0) var = 0;
            const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
            for (int64_t j = gi * cg; j < (gi + 1) * cg; j++) {
                g.scale[bi * c + j] = static_cast<float>(rstd * gamma[j]);
                g.shift[bi * c + j] = static_cast<float>(beta[j] - mean * rstd * gamma[j]);
            }
        }
    }
    tdxl_pool_run(tdxl_ctx_pool(ctx), b * g.chunks, apply_task, &g);
    return TDXL_ISA_OK;
}

// ---- LayerNorm over rows ----
namespace {

int has_ln(const tdxl_isa_ops *ops) { return ops->ln_rows != nullptr; }

struct ln_job {
    const tdxl_isa_ops *ops;
    int64_t m, c, rows_per_task;
    float eps;
    const float *x, *gamma, *beta;
    float *y;
};

void ln_task(void *arg, int64_t t, int) {
    const ln_job *j = static_cast<const ln_job *>(arg);
    const int64_t r0 = t * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->m ? r0 + j->rows_per_task : j->m;
    if (r1 > r0) j->ops->ln_rows(j->x + r0 * j->c, j->y + r0 * j->c, r1 - r0, j->c, j->eps, j->gamma, j->beta);
}

}  // namespace

extern "C" int tdxl_isa_layer_norm(tdxl_isa_ctx *ctx, int64_t m, int64_t c, float eps, const float *x,
                                   const float *gamma, const float *beta, float *y) {
    if (ctx == nullptr || x == nullptr || y == nullptr || gamma == nullptr || beta == nullptr || m <= 0 || c <= 0 ||
        !(eps >= 0.0f))
        return TDXL_ISA_EINVAL;
    ln_job j{};
    j.ops = tdxl_isa_ops_with(tdxl_isa_ctx_level(ctx), has_ln);
    if (j.ops == nullptr) return TDXL_ISA_EUNSUPPORTED;
    j.m = m;
    j.c = c;
    j.eps = eps;
    j.x = x;
    j.y = y;
    j.gamma = gamma;
    j.beta = beta;
    const int64_t tasks = static_cast<int64_t>(tdxl_isa_ctx_threads(ctx)) * 4;
    j.rows_per_task = (m + tasks - 1) / tasks;
    tdxl_pool_run(tdxl_ctx_pool(ctx), (m + j.rows_per_task - 1) / j.rows_per_task, ln_task, &j);
    return TDXL_ISA_OK;
}
