// ctx.cpp — execution contexts (pool + per-thread scratch + level) and scalar conversions.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "isa_internal.h"

struct tdxl_isa_ctx {
    int level = TDXL_ISA_REF;
    const tdxl_isa_ops *ops = nullptr;
    tdxl_pool *pool = nullptr;
    int threads = 1;
    void **scratch = nullptr;  // one buffer per thread
    size_t scratch_bytes = 0;
    void *shared = nullptr;
    size_t shared_bytes = 0;
};

namespace {

void *aligned_alloc64(size_t bytes) {
    void *p = nullptr;
    if (posix_memalign(&p, 64, bytes < 64 ? 64 : bytes) != 0) return nullptr;
    return p;
}

}  // namespace

extern "C" {

int tdxl_isa_ctx_new(int threads, int level, tdxl_isa_ctx **out) {
    if (out == nullptr) return TDXL_ISA_EINVAL;
    *out = nullptr;
    if (threads < 0 || threads > 1024) return TDXL_ISA_EINVAL;
    if (threads == 0) {
        unsigned hc = std::thread::hardware_concurrency();
        threads = hc == 0 ? 1 : static_cast<int>(hc);
    }
    if (level == TDXL_ISA_AUTO) level = tdxl_isa_best();
    if (level < TDXL_ISA_REF || level > TDXL_ISA_AMX_EMU) return TDXL_ISA_EINVAL;
    if (!tdxl_isa_supported(level)) return TDXL_ISA_EUNSUPPORTED;
    if (level != TDXL_ISA_AMX_EMU && level > tdxl_isa_best()) return TDXL_ISA_EUNSUPPORTED;  // TDXL_MAX_ISA
    tdxl_isa_ctx *c = new (std::nothrow) tdxl_isa_ctx;
    if (c == nullptr) return TDXL_ISA_ENOMEM;
    c->level = level;
    c->ops = tdxl_isa_ops_for(level);
    c->threads = threads;
    c->scratch = static_cast<void **>(calloc(threads, sizeof(void *)));
    int rc = c->scratch == nullptr ? TDXL_ISA_ENOMEM : tdxl_pool_new(threads, &c->pool);
    if (rc != TDXL_ISA_OK) {
        tdxl_isa_ctx_free(c);
        return rc;
    }
    *out = c;
    return TDXL_ISA_OK;
}

void tdxl_isa_ctx_free(tdxl_isa_ctx *c) {
    if (c == nullptr) return;
    tdxl_pool_free(c->pool);
    if (c->scratch != nullptr)
        for (int i = 0; i < c->threads; i++) free(c->scratch[i]);
    free(c->scratch);
    free(c->shared);
    delete c;
}

int tdxl_isa_ctx_level(const tdxl_isa_ctx *c) { return c == nullptr ? -1 : c->level; }
int tdxl_isa_ctx_threads(const tdxl_isa_ctx *c) { return c == nullptr ? 0 : c->threads; }

int tdxl_ctx_reserve(tdxl_isa_ctx *c, size_t bytes) {
    if (bytes <= c->scratch_bytes) return TDXL_ISA_OK;
    bytes = (bytes + 4095) & ~static_cast<size_t>(4095);
    for (int i = 0; i < c->threads; i++) {
        void *p = aligned_alloc64(bytes);
        if (p == nullptr) return TDXL_ISA_ENOMEM;
        free(c->scratch[i]);
        c->scratch[i] = p;
    }
    c->scratch_bytes = bytes;
    return TDXL_ISA_OK;
}

void *tdxl_ctx_scratch(tdxl_isa_ctx *c, int tid) { return c->scratch[tid]; }

int tdxl_ctx_reserve_shared(tdxl_isa_ctx *c, size_t bytes) {
    if (bytes <= c->shared_bytes) return TDXL_ISA_OK;
    bytes = (bytes + 4095) & ~static_cast<size_t>(4095);
    void *p = aligned_alloc64(bytes);
    if (p == nullptr) return TDXL_ISA_ENOMEM;
    free(c->shared);
    c->shared = p;
    c->shared_bytes = bytes;
    return TDXL_ISA_OK;
}

void *tdxl_ctx_shared(tdxl_isa_ctx *c) { return c->shared; }
tdxl_pool *tdxl_ctx_pool(tdxl_isa_ctx *c) { return c->pool; }

int tdxl_isa_ctx_run(tdxl_isa_ctx *c, int64_t ntasks, void (*fn)(void *, int64_t, int), void *arg) {
    if (c == nullptr || fn == nullptr || ntasks < 0) return TDXL_ISA_EINVAL;
    if (ntasks > 0) tdxl_pool_run(c->pool, ntasks, fn, arg);
    return TDXL_ISA_OK;
}
const tdxl_isa_ops *tdxl_ctx_ops(const tdxl_isa_ctx *c) { return c->ops; }

float tdxl_bf16_to_f32(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t tdxl_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

float tdxl_f16_to_f32(uint16_t h) {
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    float f;
    if (exp == 0) {
        f = std::ldexp(static_cast<float>(man), -24);  // zero or subnormal
        return sign ? -f : f;
    }
    uint32_t u;
    if (exp == 31) u = sign | 0x7f800000u | (man << 13);  // inf / NaN
    else u = sign | ((exp + 112) << 23) | (man << 13);
    memcpy(&f, &u, 4);
    return f;
}

}  // extern "C"
