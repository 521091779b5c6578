// peak.cpp — the machine's FMA peak measured on all of a context's threads (for the benchmark's % of peak).
#include <atomic>
#include <chrono>
#include <thread>

#include "isa_internal.h"

namespace {

struct peak_job {
    const tdxl_isa_ops *ops;
    int threads;
    double seconds;
    std::atomic<int> arrived{0};
    std::atomic<int64_t> rate_mflops{0};
};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void peak_task(void *arg, int64_t, int) {
    peak_job *j = static_cast<peak_job *>(arg);
    // Start together (bounded wait) so that each thread runs exactly one task.
    j->arrived.fetch_add(1);
    const double t_wait = now_s();
    while (j->arrived.load() < j->threads && now_s() - t_wait < 0.5) std::this_thread::yield();
    double flops = 0;
    const double t0 = now_s();
    double t1 = t0;
    while (t1 - t0 < j->seconds) {
        flops += j->ops->fma_loop(200000);
        t1 = now_s();
    }
    j->rate_mflops.fetch_add(static_cast<int64_t>(flops / (t1 - t0) / 1e6));
}

int run_peak(tdxl_isa_ctx *ctx, const tdxl_isa_ops *ops, double seconds, double *gflops) {
    if (ctx == nullptr || gflops == nullptr || !(seconds > 0) || seconds > 60) return TDXL_ISA_EINVAL;
    peak_job j;
    j.ops = ops;
    j.threads = tdxl_isa_ctx_threads(ctx);
    j.seconds = seconds;
    tdxl_pool_run(tdxl_ctx_pool(ctx), j.threads, peak_task, &j);
    *gflops = static_cast<double>(j.rate_mflops.load()) / 1e3;
    return TDXL_ISA_OK;
}

}  // namespace

extern "C" int tdxl_isa_fma_peak(tdxl_isa_ctx *ctx, double seconds, double *gflops) {
    if (ctx == nullptr) return TDXL_ISA_EINVAL;
    int level = tdxl_isa_ctx_level(ctx);
    if (level == TDXL_ISA_AMX || level == TDXL_ISA_AVX512BF16) level = TDXL_ISA_AVX512;
    if (level == TDXL_ISA_AMX_EMU) level = TDXL_ISA_REF;
    return run_peak(ctx, tdxl_isa_ops_for(level), seconds, gflops);
}

extern "C" int tdxl_isa_dot_peak(tdxl_isa_ctx *ctx, double seconds, double *gflops) {
    if (ctx == nullptr) return TDXL_ISA_EINVAL;
    const int level = tdxl_isa_ctx_level(ctx);
    if (level == TDXL_ISA_AMX || level == TDXL_ISA_AMX_EMU) return TDXL_ISA_EUNSUPPORTED;
    return run_peak(ctx, tdxl_isa_ops_for(level), seconds, gflops);
}
