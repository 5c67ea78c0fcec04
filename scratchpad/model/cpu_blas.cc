// op(a) @ op(b) over leading batch dimensions with MKL's sgemm: an XLA FFI custom call for CPU
// (scratchpad/model/cpu_blas.py builds, registers and calls it).
//
// The work is split into parts run on XLA's own intra-op thread pool, each by single-threaded
// MKL: MKL's OpenMP threads beside XLA's would fight over the cores whenever XLA runs another
// thunk at the same time, which it does (a layer's input and weight gradients).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include <mkl.h>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Gemm {
  bool transpose_a, transpose_b;
  int64_t m, n, k, batch;
  const float* a;
  const float* b;
  float* c;

  // The part-th of `parts` slices: of the batch when there are enough matrices, else of the
  // larger of M and N (rows of C, or columns: a strided view through the leading dimensions).
  void Run(int64_t part, int64_t parts) const {
    // One MKL thread for this part, on this thread only; restored after, so that nothing else in
    // the process (PyTorch reads the OpenMP thread count of the thread that loads it) sees it.
    const int saved = mkl_set_num_threads_local(1);
    RunPart(part, parts);
    mkl_set_num_threads_local(saved);
  }

 private:
  void RunPart(int64_t part, int64_t parts) const {
    const int64_t lda = transpose_a ? m : k, ldb = transpose_b ? k : n;
    const CBLAS_TRANSPOSE ta = transpose_a ? CblasTrans : CblasNoTrans, tb = transpose_b ? CblasTrans : CblasNoTrans;
    if (batch >= parts) {
      const int64_t b0 = batch * part / parts, b1 = batch * (part + 1) / parts;
      if (b1 > b0)
        cblas_sgemm_batch_strided(CblasRowMajor, ta, tb, m, n, k, 1.0f, a + b0 * m * k, lda, m * k, b + b0 * k * n,
                                  ldb, k * n, 0.0f, c + b0 * m * n, n, m * n, b1 - b0);
      return;
    }
    for (int64_t i = 0; i < batch; ++i) {  // a few matrices (usually one), each split
      const float* ai = a + i * m * k;
      const float* bi = b + i * k * n;
      float* ci = c + i * m * n;
      if (m >= n) {
        const int64_t r0 = m * part / parts, r1 = m * (part + 1) / parts;
        if (r1 > r0)
          cblas_sgemm(CblasRowMajor, ta, tb, r1 - r0, n, k, 1.0f, ai + (transpose_a ? r0 : r0 * lda), lda, bi, ldb,
                      0.0f, ci + r0 * n, n);
      } else {
        const int64_t c0 = n * part / parts, c1 = n * (part + 1) / parts;
        if (c1 > c0)
          cblas_sgemm(CblasRowMajor, ta, tb, m, c1 - c0, k, 1.0f, ai, lda, bi + (transpose_b ? c0 * ldb : c0), ldb,
                      0.0f, ci + c0, n);
      }
    }
  }
};

// Parts taken from a shared counter by the caller and by tasks on the pool: the caller never
// waits for a task that has not started, so a busy pool only makes the caller do more parts.
struct Parts {
  explicit Parts(Gemm gemm, int64_t count) : gemm(gemm), count(count) {}
  const Gemm gemm;
  const int64_t count;
  std::atomic<int64_t> next{0};
  int64_t done = 0;
  std::mutex mu;
  std::condition_variable all_done;

  void Work() {
    for (int64_t part; (part = next.fetch_add(1)) < count;) {
      gemm.Run(part, count);
      std::lock_guard<std::mutex> lock(mu);
      if (++done == count) all_done.notify_all();
    }
  }
};

ffi::Error Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                  ffi::ResultBuffer<ffi::F32> c, int64_t m, int64_t n, int64_t k, bool transpose_a,
                  bool transpose_b) {
  int64_t size = 1;
  for (int64_t d : c->dimensions()) size *= d;
  if (m <= 0 || n <= 0 || size % (m * n) != 0) return ffi::Error::InvalidArgument("cpu_blas: bad matmul shape");
  if (k == 0) {  // an empty contraction: sgemm would leave c unwritten
    std::fill(c->typed_data(), c->typed_data() + size, 0.0f);
    return ffi::Error::Success();
  }
  const Gemm gemm{transpose_a, transpose_b, m, n, k, size / (m * n), a.typed_data(), b.typed_data(), c->typed_data()};
  const int64_t threads = std::max<int64_t>(pool.num_threads(), 1);
  const int64_t parts = 2 * m * n * k * gemm.batch < (int64_t{1} << 22) ? 1 : threads;  // small: not worth a task
  if (parts == 1) {
    gemm.Run(0, 1);
    return ffi::Error::Success();
  }
  auto shared = std::make_shared<Parts>(gemm, parts);
  for (int64_t i = 1; i < parts; ++i) pool.Schedule([shared] { shared->Work(); });
  shared->Work();
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->all_done.wait(lock, [&] { return shared->done == shared->count; });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ScratchpadMatmul, Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("m")
                                  .Attr<int64_t>("n")
                                  .Attr<int64_t>("k")
                                  .Attr<bool>("transpose_a")
                                  .Attr<bool>("transpose_b"));
