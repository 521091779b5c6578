// pool.cpp — one persistent thread pool per context. The caller's thread takes part as tid 0; tasks are
// handed out by an atomic counter, so a run allocates nothing.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "isa_internal.h"

struct tdxl_pool {
    int n = 1;
    std::vector<std::thread> workers;
    std::mutex mu;
    std::condition_variable cv_start, cv_done;
    uint64_t generation = 0;
    int busy = 0;  // workers still inside the current run
    bool stop = false;
    tdxl_task_fn fn = nullptr;
    void *arg = nullptr;
    int64_t ntasks = 0;
    std::atomic<int64_t> next{0};
};

namespace {

void drain(tdxl_pool *p, int tid) {
    for (;;) {
        int64_t t = p->next.fetch_add(1, std::memory_order_relaxed);
        if (t >= p->ntasks) return;
        p->fn(p->arg, t, tid);
    }
}

void worker_main(tdxl_pool *p, int tid) {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(p->mu);
            p->cv_start.wait(lk, [&] { return p->stop || p->generation != seen; });
            if (p->stop) return;
            seen = p->generation;
        }
        drain(p, tid);
        {
            std::lock_guard<std::mutex> lk(p->mu);
            if (--p->busy == 0) p->cv_done.notify_one();
        }
    }
}

}  // namespace

extern "C" {

int tdxl_pool_new(int threads, tdxl_pool **out) {
    if (out == nullptr || threads < 1) return TDXL_ISA_EINVAL;
    *out = nullptr;
    tdxl_pool *p = new (std::nothrow) tdxl_pool;
    if (p == nullptr) return TDXL_ISA_ENOMEM;
    p->n = threads;
    try {
        p->workers.reserve(threads - 1);
        for (int i = 1; i < threads; i++) p->workers.emplace_back(worker_main, p, i);
    } catch (...) {
        tdxl_pool_free(p);
        return TDXL_ISA_ENOMEM;
    }
    *out = p;
    return TDXL_ISA_OK;
}

void tdxl_pool_free(tdxl_pool *p) {
    if (p == nullptr) return;
    {
        std::lock_guard<std::mutex> lk(p->mu);
        p->stop = true;
    }
    p->cv_start.notify_all();
    for (auto &t : p->workers) t.join();
    delete p;
}

int tdxl_pool_threads(const tdxl_pool *p) { return p->n; }

void tdxl_pool_run(tdxl_pool *p, int64_t ntasks, tdxl_task_fn fn, void *arg) {
    if (ntasks <= 0) return;
    if (p->workers.empty() || ntasks == 1) {
        for (int64_t t = 0; t < ntasks; t++) fn(arg, t, 0);
        return;
    }
    {
        std::lock_guard<std::mutex> lk(p->mu);
        p->fn = fn;
        p->arg = arg;
        p->ntasks = ntasks;
        p->next.store(0, std::memory_order_relaxed);
        p->busy = static_cast<int>(p->workers.size());
        p->generation++;
    }
    p->cv_start.notify_all();
    drain(p, 0);
    std::unique_lock<std::mutex> lk(p->mu);
    p->cv_done.wait(lk, [&] { return p->busy == 0; });
}

}  // extern "C"
