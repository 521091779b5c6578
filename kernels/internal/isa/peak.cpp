// peak.cpp — the machine's FMA peak measured on all of a context's threads (for the benchmark's % of peak).
#include <atomic>
#include <chrono>
#include <thread>

#include <time.h>

#include "isa_internal.h"

namespace {

struct peak_job {
    const tdxl_isa_ops *ops;
    int threads;
    double seconds;
    std::atomic<int> arrived{0};
    std::atomic<int64_t> rate_mflops{0};     // sum over threads of flops / wall seconds
    std::atomic<int64_t> cpu_rate_mflops{0}; // sum over threads of flops / own CPU seconds
};

double thread_cpu_s() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

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
    const double c0 = thread_cpu_s();
    const double t0 = now_s();
    double t1 = t0;
    while (t1 - t0 < j->seconds) {
        flops += j->ops->fma_loop(200000);
        t1 = now_s();
    }
    const double c1 = thread_cpu_s();
    j->rate_mflops.fetch_add(static_cast<int64_t>(flops / (t1 - t0) / 1e6));
    if (c1 > c0) j->cpu_rate_mflops.fetch_add(static_cast<int64_t>(flops / (c1 - c0) / 1e6));
}

int run_peak(tdxl_isa_ctx *ctx, const tdxl_isa_ops *ops, double seconds, double *gflops, double *per_cpu) {
    if (ctx == nullptr || gflops == nullptr || !(seconds > 0) || seconds > 60) return TDXL_ISA_EINVAL;
    peak_job j;
    j.ops = ops;
    j.threads = tdxl_isa_ctx_threads(ctx);
    j.seconds = seconds;
    tdxl_pool_run(tdxl_ctx_pool(ctx), j.threads, peak_task, &j);
    *gflops = static_cast<double>(j.rate_mflops.load()) / 1e3;
    if (per_cpu != nullptr) *per_cpu = static_cast<double>(j.cpu_rate_mflops.load()) / 1e3 / j.threads;
    return TDXL_ISA_OK;
}

}  // namespace

extern "C" int tdxl_isa_peak(tdxl_isa_ctx *ctx, int kind, double seconds, double *gflops, double *gflops_per_cpu_s) {
    if (ctx == nullptr || (kind != TDXL_ISA_PEAK_FMA && kind != TDXL_ISA_PEAK_DOT)) return TDXL_ISA_EINVAL;
    int level = tdxl_isa_ctx_level(ctx);
    if (kind == TDXL_ISA_PEAK_FMA) {
        if (level == TDXL_ISA_AMX || level == TDXL_ISA_AVX512BF16) level = TDXL_ISA_AVX512;
        if (level == TDXL_ISA_AMX_EMU) level = TDXL_ISA_REF;
    } else if (level == TDXL_ISA_AMX || level == TDXL_ISA_AMX_EMU) {
        return TDXL_ISA_EUNSUPPORTED;
    }
    return run_peak(ctx, tdxl_isa_ops_for(level), seconds, gflops, gflops_per_cpu_s);
}

extern "C" int tdxl_isa_fma_peak(tdxl_isa_ctx *ctx, double seconds, double *gflops) {
    return tdxl_isa_peak(ctx, TDXL_ISA_PEAK_FMA, seconds, gflops, nullptr);
}
