// op(a) @ op(b) over leading batch dimensions with MKL's sgemm: an XLA FFI custom call for CPU
// (scratchpad/model/cpu_blas.py builds, registers and calls it).
//
// The work is split into parts run on XLA's own intra-op thread pool, each by single-threaded
// MKL: MKL's OpenMP threads beside XLA's would fight over the cores whenever XLA runs another
// thunk at the same time, which it does (a layer's input and weight gradients).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

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

// Runs work(part) for every part in [0, parts) on the caller and the pool's other threads, each
// part with single-threaded MKL, and returns when all are done. Parts come from a shared counter
// that the caller also takes from: the caller never waits for a task that has not started, so a
// busy pool (XLA runs other thunks at once) only makes the caller do more parts.
template <typename Work>
void ParallelFor(ffi::ThreadPool& pool, int64_t parts, const Work& work) {
  struct State {
    std::atomic<int64_t> next{0};
    int64_t done = 0;
    std::mutex mu;
    std::condition_variable all_done;
  };
  auto state = std::make_shared<State>();
  // Tasks that start after the last part is done find the counter spent and never call `work`,
  // so they may outlive this frame.
  auto take = [state, parts, &work] {
    for (int64_t part; (part = state->next.fetch_add(1)) < parts;) {
      // One MKL thread for this part, on this thread only; restored after, so that nothing else
      // in the process (PyTorch reads the OpenMP thread count of the thread that loads it) sees it.
      const int saved = mkl_set_num_threads_local(1);
      work(part);
      mkl_set_num_threads_local(saved);
      std::lock_guard<std::mutex> lock(state->mu);
      if (++state->done == parts) state->all_done.notify_all();
    }
  };
  const int64_t tasks = std::min<int64_t>(pool.num_threads() - 1, parts - 1);
  for (int64_t i = 0; i < tasks; ++i) pool.Schedule([take] { take(); });
  take();
  std::unique_lock<std::mutex> lock(state->mu);
  state->all_done.wait(lock, [&] { return state->done == parts; });
}

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
  ParallelFor(pool, parts, [&](int64_t part) { gemm.Run(part, parts); });
  return ffi::Error::Success();
}

// ------------------------------------------------------------------------------------------------
// Causal self-attention within packed segments, fused: one (batch row, head) per part, its
// queries by blocks, each block's logits, softmax and weighted values computed while in cache.
// q, k, v and the output are [B, L, H, K], the projections' own layout (no transposes); a key
// is attended when it is at or before the query, in its segment, and not padding (segment 0).
// The semantics are `attention.causal_block_attention`'s exactly: logits of masked keys are
// -1e30, so a query with no key to attend (padding) averages the keys up to its block's end.

constexpr float kMasked = -1e30f;

// The row loops below are vectorised by the compiler (`omp simd`, built with -fopenmp-simd), for
// each instruction set in target_clones, picked at load time.
#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// exp(x) for the softmax's x <= 0 (Cephes' expf: range reduction to [-ln2/2, ln2/2] and a
// degree-7 polynomial, about 1 ulp); 0 below -87 (where exp(x) is no longer a normal float),
// which includes every masked logit, x - max = -1e30.
inline float ExpNonPositive(float x) {
  const float clamped = std::max(x, -88.0f);  // keeps 2^n's exponent in int range
  const float n = (clamped * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23
  float r = clamped - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : p * scale;
}

// Whether query `position` of `segment` attends to key j of `key_segment`: at or before it, in its
// segment, not padding. (Loads stay outside it, unconditional, so that the loops vectorise.)
inline bool Attended(int64_t j, int32_t key_segment, int64_t position, int32_t segment) {
  return (j <= position) & (key_segment == segment) & (key_segment != 0);
}

// A row of logits: the masked row's max.
SIMD_CLONES float MaskedMax(const float* logits, int64_t keys, int64_t position, const int32_t* key_segments,
                            int32_t segment) {
  float max = kMasked;
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < keys; ++j) {
    const float logit = logits[j];
    max = std::max(max, Attended(j, key_segments[j], position, segment) ? logit : kMasked);
  }
  return max;
}

// A row of logits to scale * exp(masked logit - max), in place; returns the row's sum of exp.
SIMD_CLONES float MaskedExp(float* row, int64_t keys, int64_t position, const int32_t* key_segments,
                            int32_t segment, float max, float scale) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < keys; ++j) {
    const float logit = row[j];
    const float e = ExpNonPositive((Attended(j, key_segments[j], position, segment) ? logit : kMasked) - max);
    sum += e;
    row[j] = e * scale;
  }
  return sum;
}

SIMD_CLONES void ScaleRow(float* row, int64_t n, float value) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] *= value;
}

SIMD_CLONES float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

// A row of dP to dS = P * (dP - D) where the key is attended, else 0 (the mask passes no gradient).
SIMD_CLONES void SoftmaxGradRow(float* dp, const float* p, int64_t keys, int64_t position,
                                const int32_t* key_segments, int32_t segment, float d) {
#pragma omp simd
  for (int64_t j = 0; j < keys; ++j) {
    const float ds = p[j] * (dp[j] - d);
    dp[j] = Attended(j, key_segments[j], position, segment) ? ds : 0.0f;
  }
}

struct Attention {
  int64_t batch, length, heads, dim, block;
  float scale;
  const int32_t* segments;  // [B, L]

  int64_t Row(int64_t b, int64_t position, int64_t h) const { return ((b * length + position) * heads + h) * dim; }
  int64_t Stride() const { return heads * dim; }  // between positions of one head

  // Logits scale * q k^T of queries [q0, q1) over keys [0, q1), unmasked, into p (ld q1).
  void Logits(const float* q, const float* k, int64_t b, int64_t h, int64_t q0, int64_t q1, float* p) const {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q1 - q0, q1, dim, scale, q + Row(b, q0, h), Stride(),
                k + Row(b, 0, h), Stride(), 0.0f, p, q1);
  }
};

// The forward pass of one (b, h): out[b, :, h], and stats[b, h]: each query's logit max and sum of
// exp(logit - max), for the backward pass.
void AttentionForward(const Attention& at, const float* q, const float* k, const float* v, float* out, float* stats,
                      int64_t b, int64_t h, std::vector<float>& p) {
  const int64_t ld = at.Stride();
  p.resize(at.block * at.length);
  for (int64_t q0 = 0; q0 < at.length; q0 += at.block) {
    const int64_t q1 = std::min(q0 + at.block, at.length), rows = q1 - q0;
    float* max = stats + (b * at.heads + h) * 2 * at.length + q0;  // stats[b, h] = (max [L], sum [L])
    float* sum = max + at.length;
    at.Logits(q, k, b, h, q0, q1, p.data());
    const int32_t* key_segments = at.segments + b * at.length;
    for (int64_t i = 0; i < rows; ++i) {  // unnormalised: exp(logit - max)
      float* row = p.data() + i * q1;
      max[i] = MaskedMax(row, q1, q0 + i, key_segments, key_segments[q0 + i]);
      sum[i] = MaskedExp(row, q1, q0 + i, key_segments, key_segments[q0 + i], max[i], 1.0f);
    }
    float* o = out + at.Row(b, q0, h);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, at.dim, q1, 1.0f, p.data(), q1, v + at.Row(b, 0, h),
                ld, 0.0f, o, ld);
    for (int64_t i = 0; i < rows; ++i) ScaleRow(o + i * ld, at.dim, 1.0f / sum[i]);
  }
}

struct Workspace {
  std::vector<float> p, dp, dk, dv;
};

// The backward pass of one (b, h), flash-attention style: P recomputed from q, k and the stored
// statistics; dV = P^T dO, dS = P (dO V^T - rowsum(dO O)), dQ = scale dS K, dK = scale dS^T Q.
void AttentionBackward(const Attention& at, const float* q, const float* k, const float* v, const float* out,
                       const float* stats, const float* d_out, float* dq, float* dk, float* dv, int64_t b,
                       int64_t h, Workspace& ws) {
  const int64_t ld = at.Stride(), length = at.length, dim = at.dim;
  ws.p.resize(at.block * length);
  ws.dp.resize(at.block * length);
  ws.dk.assign(length * dim, 0.0f);
  ws.dv.assign(length * dim, 0.0f);
  const int32_t* key_segments = at.segments + b * length;
  for (int64_t q0 = 0; q0 < length; q0 += at.block) {
    const int64_t q1 = std::min(q0 + at.block, length), rows = q1 - q0;
    const float* max = stats + (b * at.heads + h) * 2 * length + q0;
    const float* sum = max + length;
    at.Logits(q, k, b, h, q0, q1, ws.p.data());
    for (int64_t i = 0; i < rows; ++i)  // normalised: exp(logit - max) / sum
      MaskedExp(ws.p.data() + i * q1, q1, q0 + i, key_segments, key_segments[q0 + i], max[i], 1.0f / sum[i]);
    const float* d_o = d_out + at.Row(b, q0, h);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q1, dim, rows, 1.0f, ws.p.data(), q1, d_o, ld, 1.0f,
                ws.dv.data(), dim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, q1, dim, 1.0f, d_o, ld, v + at.Row(b, 0, h), ld, 0.0f,
                ws.dp.data(), q1);
    for (int64_t i = 0; i < rows; ++i) {
      const float d = Dot(d_o + i * ld, out + at.Row(b, q0 + i, h), dim);
      SoftmaxGradRow(ws.dp.data() + i * q1, ws.p.data() + i * q1, q1, q0 + i, key_segments, key_segments[q0 + i], d);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, dim, q1, at.scale, ws.dp.data(), q1,
                k + at.Row(b, 0, h), ld, 0.0f, dq + at.Row(b, q0, h), ld);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q1, dim, rows, at.scale, ws.dp.data(), q1, q + at.Row(b, q0, h),
                ld, 1.0f, ws.dk.data(), dim);
  }
  for (int64_t j = 0; j < length; ++j) {
    std::copy_n(ws.dk.data() + j * dim, dim, dk + at.Row(b, j, h));
    std::copy_n(ws.dv.data() + j * dim, dim, dv + at.Row(b, j, h));
  }
}

ffi::Error CheckAttention(const ffi::Buffer<ffi::F32>& q, const ffi::Buffer<ffi::F32>& k,
                          const ffi::Buffer<ffi::F32>& v, const ffi::Buffer<ffi::S32>& segments, int64_t block,
                          Attention* at, float scale) {
  const auto dims = q.dimensions();
  const auto same = [&](const ffi::Buffer<ffi::F32>& x) {
    return std::equal(dims.begin(), dims.end(), x.dimensions().begin(), x.dimensions().end());
  };
  if (dims.size() != 4 || !same(k) || !same(v) || segments.dimensions().size() != 2 ||
      segments.dimensions()[0] != dims[0] || segments.dimensions()[1] != dims[1] || block <= 0)
    return ffi::Error::InvalidArgument("cpu_blas: bad attention shapes");
  *at = Attention{dims[0], dims[1], dims[2], dims[3], std::min(block, std::max<int64_t>(dims[1], 1)), scale,
                  segments.typed_data()};
  return ffi::Error::Success();
}

ffi::Error CausalAttention(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k,
                           ffi::Buffer<ffi::F32> v, ffi::Buffer<ffi::S32> segments, ffi::ResultBuffer<ffi::F32> out,
                           ffi::ResultBuffer<ffi::F32> stats, int64_t block, float scale) {
  Attention at;
  if (auto error = CheckAttention(q, k, v, segments, block, &at, scale); error.failure()) return error;
  ParallelFor(pool, at.batch * at.heads, [&](int64_t part) {
    thread_local std::vector<float> p;
    AttentionForward(at, q.typed_data(), k.typed_data(), v.typed_data(), out->typed_data(), stats->typed_data(),
                     part / at.heads, part % at.heads, p);
  });
  return ffi::Error::Success();
}

ffi::Error CausalAttentionBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k,
                                   ffi::Buffer<ffi::F32> v, ffi::Buffer<ffi::S32> segments, ffi::Buffer<ffi::F32> out,
                                   ffi::Buffer<ffi::F32> stats, ffi::Buffer<ffi::F32> d_out,
                                   ffi::ResultBuffer<ffi::F32> dq, ffi::ResultBuffer<ffi::F32> dk,
                                   ffi::ResultBuffer<ffi::F32> dv, int64_t block, float scale) {
  Attention at;
  if (auto error = CheckAttention(q, k, v, segments, block, &at, scale); error.failure()) return error;
  ParallelFor(pool, at.batch * at.heads, [&](int64_t part) {
    thread_local Workspace ws;
    AttentionBackward(at, q.typed_data(), k.typed_data(), v.typed_data(), out.typed_data(), stats.typed_data(),
                      d_out.typed_data(), dq->typed_data(), dk->typed_data(), dv->typed_data(), part / at.heads,
                      part % at.heads, ws);
  });
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

XLA_FFI_DEFINE_HANDLER_SYMBOL(ScratchpadCausalAttention, CausalAttention,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // q
                                  .Arg<ffi::Buffer<ffi::F32>>()  // k
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Arg<ffi::Buffer<ffi::S32>>()  // segment ids
                                  .Ret<ffi::Buffer<ffi::F32>>()  // out
                                  .Ret<ffi::Buffer<ffi::F32>>()  // stats [B, H, 2, L]: max, sum per query
                                  .Attr<int64_t>("block")
                                  .Attr<float>("scale"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(ScratchpadCausalAttentionBackward, CausalAttentionBackward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // q
                                  .Arg<ffi::Buffer<ffi::F32>>()  // k
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Arg<ffi::Buffer<ffi::S32>>()  // segment ids
                                  .Arg<ffi::Buffer<ffi::F32>>()  // out
                                  .Arg<ffi::Buffer<ffi::F32>>()  // stats
                                  .Arg<ffi::Buffer<ffi::F32>>()  // d out
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dq
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dk
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dv
                                  .Attr<int64_t>("block")
                                  .Attr<float>("scale"));
