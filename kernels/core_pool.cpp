// core_pool.cpp — one persistent thread pool; tasks are handed out by an atomic counter.
//
// On the fast path the pipeline's tdxl_isa_ctx already owns a persistent pool: Pool then forwards
// run() to it (set_delegate) and never starts threads of its own, so one set of threads does all the
// work. The reference path starts its workers on the first run().
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "core.h"

namespace tdxl {

struct Pool::Impl {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv_start, cv_done;
  uint64_t generation = 0;
  bool stop = false;
  // current job
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t n = 0;
  std::atomic<int64_t> next{0};
  int active = 0;  // workers still inside the current job
  std::exception_ptr err;
  std::mutex err_mu;

  void work() {
    for (;;) {
      int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> g(err_mu);
        if (!err) err = std::current_exception();
        next.store(n, std::memory_order_relaxed);  // stop handing out tasks
      }
    }
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_start.wait(lk, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
      }
      work();
      {
        std::lock_guard<std::mutex> lk(mu);
        if (--active == 0) cv_done.notify_all();
      }
    }
  }
};

Pool::Pool(int threads) : impl_(new Impl), nthreads_(threads < 1 ? 1 : threads) {}

void Pool::set_delegate(DelegateRun run, void* ctx) {
  delegate_ = run;
  delegate_ctx_ = ctx;
}

namespace {
// One run() forwarded to the delegate pool: exceptions stay on this side of the C boundary (the
// first is kept and rethrown by the caller; later tasks are skipped once one failed).
struct Forwarded {
  const std::function<void(int64_t)>* fn;
  std::atomic<bool> failed{false};
  std::exception_ptr err;
  std::mutex mu;
  static void task(void* arg, int64_t i, int) {
    Forwarded* f = static_cast<Forwarded*>(arg);
    if (f->failed.load(std::memory_order_relaxed)) return;
    try {
      (*f->fn)(i);
    } catch (...) {
      std::lock_guard<std::mutex> g(f->mu);
      if (!f->err) f->err = std::current_exception();
      f->failed.store(true, std::memory_order_relaxed);
    }
  }
};
}  // namespace

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv_start.notify_all();
  for (auto& t : impl_->workers) t.join();
  delete impl_;
}

void Pool::run(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0 || dry) return;
  if (nthreads_ == 1 || n == 1) {
    for (int64_t i = 0; i < n; i++) fn(i);
    return;
  }
  if (delegate_) {
    Forwarded f;
    f.fn = &fn;
    if (delegate_(delegate_ctx_, n, &Forwarded::task, &f) != 0) throw Error("thread pool: run refused");
    if (f.err) std::rethrow_exception(f.err);
    return;
  }
  Impl* m = impl_;
  if (m->workers.empty())  // first run on this pool: start the workers (the caller is one of them)
    for (int i = 1; i < nthreads_; i++) m->workers.emplace_back([this] { impl_->loop(); });
  {
    std::lock_guard<std::mutex> lk(m->mu);
    m->fn = &fn;
    m->n = n;
    m->next.store(0, std::memory_order_relaxed);
    m->err = nullptr;
    m->active = static_cast<int>(m->workers.size());
    m->generation++;
  }
  m->cv_start.notify_all();
  m->work();
  {
    std::unique_lock<std::mutex> lk(m->mu);
    m->cv_done.wait(lk, [&] { return m->active == 0; });
    m->fn = nullptr;
  }
  if (m->err) std::rethrow_exception(m->err);
}

}  // namespace tdxl
