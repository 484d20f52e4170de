// Softmax self-attention for XLA:CPU as two XLA FFI custom calls (forward, backward).
//
// Why: XLA:CPU runs the batched per-head dots of attention on one thread (docs/encoders.md,
// "Speed"). These kernels run one (batch, head) pair per task on XLA's intra-op thread pool,
// keep each pair's [q_len, kv_len] block in cache, and read q, k, v straight from the packed
// projection [N, L, 3, H, D] (no slicing copies) and write the gradient back packed the same way.
//
// Forward:  qkv f32[N, L, 3, H, D], qkv_bias f32[3, H, D] (added to qkv on the fly),
//           key_valid pred[N, L]
//           -> out f32[N, L, H, D], lse f32[N, H, L] (log-sum-exp of each row),
//              probs f32[N, H, L, round_up(L, 16)] or f32[0] (not saved)
// Backward: qkv, qkv_bias, key_valid, out, lse, probs, d_out f32[N, L, H, D]
//           -> d_qkv f32[N, L, 3, H, D] (also the gradient of qkv + qkv_bias)
// The backward uses the saved probabilities, or recomputes them from q, k and lse
// (flash-attention style, when the caller passes an empty probs: no [L, L] array lives between
// the two calls). Keys past a sample's last valid key are skipped. A sample with no valid key
// gets a zero output and zero gradients.
//
// Numerics: float32 throughout; exp by range reduction and a Cephes-style polynomial (relative
// error <= 8.5e-8 on [-87, 0], measured against double exp).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu_common.h"

namespace {

using namespace emojax;  // NOLINT: the shared vector helpers

constexpr int kTileCols = 16;  // micro-tile: kTileRows x 2 vectors of accumulators
constexpr int kTileRows = 6;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// exp(x) for 8 lanes with x <= 0 (softmax shifts by the row max or the log-sum-exp first);
// -inf and anything below -87.3 give 0, NaN stays NaN (no lane test needed: every step of
// the arithmetic keeps it).
inline vf Exp(vf x) {
  const vf lo = Splat(-87.33654f);
  const vi underflow = x < lo;
  x = x < lo ? lo : x;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick; r = x - n ln 2 in two parts
  const vf shifter = Splat(12582912.0f);
  vf t = x * Splat(1.44269504f) + shifter;
  vf n = t - shifter;
  vf r = x - n * Splat(0.693359375f) - n * Splat(-2.12194440e-4f);
  vf p = Splat(1.9875691500e-4f);
  p = p * r + Splat(1.3981999507e-3f);
  p = p * r + Splat(8.3334519073e-3f);
  p = p * r + Splat(4.1665795894e-2f);
  p = p * r + Splat(1.6666665459e-1f);
  p = p * r + Splat(5.0000001201e-1f);
  p = p * r * r + r + Splat(1.0f);
  vi bits;
  std::memcpy(&bits, &t, sizeof bits);
  vi scale = (bits - (vi{} + 0x4B400000)) << 23;  // n as the float exponent
  vi pbits;
  std::memcpy(&pbits, &p, sizeof pbits);
  pbits += scale;
  vf result;
  std::memcpy(&result, &pbits, sizeof result);
  return underflow ? vf{} : result;
}

// C[rows, 16] = A'[rows, K] B[K, 16] for one micro-tile. A'(i, p) is a[i * lda + p], or
// a[p * lda + i] with kTransA (A stored transposed: the rows of one p are contiguous).
template <int kRows, bool kTransA>
inline void Tile(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc) {
  vf acc0[kRows], acc1[kRows];
  for (int i = 0; i < kRows; ++i) acc0[i] = acc1[i] = vf{};
  for (int64_t p = 0; p < K; ++p) {
    const vf b0 = Load(b + p * ldb), b1 = Load(b + p * ldb + kLanes);
    for (int i = 0; i < kRows; ++i) {
      const vf ai = Splat(kTransA ? a[p * lda + i] : a[i * lda + p]);
      acc0[i] += ai * b0;
      acc1[i] += ai * b1;
    }
  }
  for (int i = 0; i < kRows; ++i) {
    Store(c + i * ldc, acc0[i]);
    Store(c + i * ldc + kLanes, acc1[i]);
  }
}

// C[M, N] = A'[M, K] B[K, N], all row-major with leading dimensions; N % 16 == 0.
// Column panels outermost: one [K, 16] panel of B stays in L1 across all row tiles.
template <bool kTransA>
void MatMul(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc) {
  for (int64_t j = 0; j < N; j += kTileCols) {
    int64_t i = 0;
    for (; i + kTileRows <= M; i += kTileRows) {
      const float* ai = kTransA ? a + i : a + i * lda;
      Tile<kTileRows, kTransA>(K, ai, lda, b + j, ldb, c + i * ldc + j, ldc);
    }
    const float* ai = kTransA ? a + i : a + i * lda;
    float* ci = c + i * ldc + j;
    switch (M - i) {
      case 5: Tile<5, kTransA>(K, ai, lda, b + j, ldb, ci, ldc); break;
      case 4: Tile<4, kTransA>(K, ai, lda, b + j, ldb, ci, ldc); break;
      case 3: Tile<3, kTransA>(K, ai, lda, b + j, ldb, ci, ldc); break;
      case 2: Tile<2, kTransA>(K, ai, lda, b + j, ldb, ci, ldc); break;
      case 1: Tile<1, kTransA>(K, ai, lda, b + j, ldb, ci, ldc); break;
      default: break;
    }
  }
}

// Shapes of one call, and the strides of the packed [N, L, 3, H, D] and [N, L, H, D] arrays.
struct Dims {
  int64_t n, len, heads, dim;
  int64_t len_pad, dim_pad;  // rounded up to 16 columns, zero-filled
  int64_t qkv_row() const { return 3 * heads * dim; }
  int64_t out_row() const { return heads * dim; }
};

Dims GetDims(ffi::Span<const int64_t> qkv_dims) {
  Dims d{qkv_dims[0], qkv_dims[1], qkv_dims[3], qkv_dims[4], 0, 0};
  d.len_pad = RoundUp(d.len, kTileCols);
  d.dim_pad = RoundUp(d.dim, kTileCols);
  return d;
}

// The [len, dim] block at src[i * row_stride + offset + k], plus bias[offset + k] (bias may be
// null), times `scale`, into dst[len, dim_pad] (or transposed into dst[dim, len_pad] with
// kTranspose, 8 rows at a time so that both the reads and the writes stay in a few cache lines).
template <bool kTranspose>
void Gather(const Dims& d, const float* src, int64_t row_stride, int64_t offset, float scale,
            const float* bias, float* dst) {
  src += offset;
  const float* add = bias ? bias + offset : nullptr;
  if (!kTranspose) {
    for (int64_t i = 0; i < d.len; ++i) {
      const float* row = src + i * row_stride;
      float* out = dst + i * d.dim_pad;
      if (add) {
        for (int64_t k = 0; k < d.dim; ++k) out[k] = (row[k] + add[k]) * scale;
      } else {
        for (int64_t k = 0; k < d.dim; ++k) out[k] = row[k] * scale;
      }
    }
    return;
  }
  int64_t i = 0;
  for (; i + kLanes <= d.len; i += kLanes) {
    for (int64_t k = 0; k < d.dim; ++k) {
      vf column;
      for (int r = 0; r < kLanes; ++r) column[r] = src[(i + r) * row_stride + k];
      Store(dst + k * d.len_pad + i, (column + (add ? add[k] : 0.0f)) * scale);
    }
  }
  for (; i < d.len; ++i) {
    for (int64_t k = 0; k < d.dim; ++k) {
      dst[k * d.len_pad + i] = (src[i * row_stride + k] + (add ? add[k] : 0.0f)) * scale;
    }
  }
}

void Scatter(const Dims& d, const float* src, float scale, float* dst, int64_t row_stride,
             int64_t offset) {
  for (int64_t i = 0; i < d.len; ++i) {
    float* row = dst + i * row_stride + offset;
    for (int64_t k = 0; k < d.dim; ++k) row[k] = src[i * d.dim_pad + k] * scale;
  }
}

// Per-worker scratch, zero-initialised once so that padding columns stay zero. Each pass
// allocates only what it uses: the forward q, k_t, v, s, o, inv_sum; the backward q, k, v_t, o,
// d_o, grad, ds, and k_t, s only when it recomputes the probabilities.
struct Scratch {
  Scratch(const Dims& d, bool backward, bool recompute) {
    const int64_t rows = d.len * d.dim_pad, cols = d.dim * d.len_pad, square = d.len * d.len_pad;
    q.resize(rows);
    o.resize(rows);
    key_bias.resize(d.len_pad);
    if (!backward || recompute) {
      k_t.resize(cols);
      s.resize(square);
    }
    if (!backward) {
      v.resize(rows);
      inv_sum.resize(d.len);
      return;
    }
    k.resize(rows);
    v_t.resize(cols);
    d_o.resize(rows);
    grad.resize(rows);
    ds.resize(square);
  }
  std::vector<float> q, k, k_t, v, v_t, o, d_o, grad, s, ds, inv_sum, key_bias;
};

// key_bias[j] = 0 for a valid key, -inf for a masked or padding column. Returns the key extent:
// one past the last valid key (0 if none). Keys past it (right padding) are skipped entirely.
int64_t KeyBias(const Dims& d, const bool* key_valid, int64_t n, float* key_bias) {
  int64_t extent = 0;
  for (int64_t j = 0; j < d.len_pad; ++j) {
    const bool ok = j < d.len && key_valid[n * d.len + j];
    key_bias[j] = ok ? 0.0f : kNegInf;
    if (ok) extent = j + 1;
  }
  return extent;
}

// s[i, :] <- exp(s[i, :] + key_bias - shift_i), columns [0, len_pad); returns the row sum.
// Two vectors per step (len_pad % 16 == 0): two independent polynomial chains in flight.
inline float ExpRow(float* s, const float* key_bias, float shift, int64_t len_pad) {
  vf sum0 = vf{}, sum1 = vf{};
  const vf shift_v = Splat(shift);
  for (int64_t j = 0; j < len_pad; j += 2 * kLanes) {
    const vf e0 = Exp(Load(s + j) + Load(key_bias + j) - shift_v);
    const vf e1 = Exp(Load(s + j + kLanes) + Load(key_bias + j + kLanes) - shift_v);
    Store(s + j, e0);
    Store(s + j + kLanes, e1);
    sum0 += e0;
    sum1 += e1;
  }
  return HorizontalSum(sum0 + sum1);
}

inline float RowMax(const float* s, const float* key_bias, int64_t len_pad) {
  vf m = Splat(kNegInf);
  for (int64_t j = 0; j < len_pad; j += kLanes) {
    const vf x = Load(s + j) + Load(key_bias + j);
    m = x > m ? x : m;
  }
  return HorizontalMax(m);
}

void ForwardItem(const Dims& d, float scale, const float* qkv, const float* qkv_bias,
                 const bool* key_valid, float* out, float* lse, float* probs, int64_t item,
                 Scratch& w) {
  const int64_t n = item / d.heads, h = item % d.heads;
  const float* src = qkv + n * d.len * d.qkv_row();
  float* dst = out + n * d.len * d.out_row();
  float* lse_row = lse + item * d.len;
  const int64_t kv = KeyBias(d, key_valid, n, w.key_bias.data());
  const int64_t kv_pad = RoundUp(kv, kTileCols);
  if (kv == 0) {
    std::fill(w.o.begin(), w.o.end(), 0.0f);
    Scatter(d, w.o.data(), 1.0f, dst, d.out_row(), h * d.dim);
    std::fill(lse_row, lse_row + d.len, std::numeric_limits<float>::infinity());
    const int64_t block = d.len * d.len_pad;
    if (probs) std::fill(probs + item * block, probs + (item + 1) * block, 0.0f);
    return;
  }
  Gather<false>(d, src, d.qkv_row(), h * d.dim, scale, qkv_bias, w.q.data());
  Gather<true>(d, src, d.qkv_row(), (d.heads + h) * d.dim, 1.0f, qkv_bias, w.k_t.data());
  Gather<false>(d, src, d.qkv_row(), (2 * d.heads + h) * d.dim, 1.0f, qkv_bias, w.v.data());
  float* s = w.s.data();
  MatMul<false>(d.len, kv_pad, d.dim, w.q.data(), d.dim_pad, w.k_t.data(), d.len_pad, s,
                d.len_pad);
  for (int64_t i = 0; i < d.len; ++i) {
    float* row = s + i * d.len_pad;
    const float m = RowMax(row, w.key_bias.data(), kv_pad);
    const float sum = ExpRow(row, w.key_bias.data(), m, kv_pad);
    lse_row[i] = m + std::log(sum);
    w.inv_sum[i] = 1.0f / sum;
  }
  MatMul<false>(d.len, d.dim_pad, kv, s, d.len_pad, w.v.data(), d.dim_pad, w.o.data(), d.dim_pad);
  for (int64_t i = 0; i < d.len; ++i) {
    float* row = dst + i * d.out_row() + h * d.dim;
    for (int64_t k = 0; k < d.dim; ++k) row[k] = w.o[i * d.dim_pad + k] * w.inv_sum[i];
  }
  if (!probs) return;
  // XLA's buffers are 64-byte aligned and rows are multiples of 16 floats; the check is a guard
  const bool aligned = reinterpret_cast<uintptr_t>(probs) % 32 == 0;
  for (int64_t i = 0; i < d.len; ++i) {
    float* dst_row = probs + (item * d.len + i) * d.len_pad;
    const vf inv_sum = Splat(w.inv_sum[i]);
    for (int64_t j = 0; j < d.len_pad; j += kLanes) {
      const vf p = j < kv_pad ? Load(s + i * d.len_pad + j) * inv_sum : vf{};
      aligned ? StreamStore(dst_row + j, p) : Store(dst_row + j, p);
    }
  }
  StreamFence();
}

// P = exp(S - lse) of one (batch, head) from the gathered (scaled) q, into w.s.
const float* RecomputeProbs(const Dims& d, const float* src, const float* qkv_bias,
                            const float* lse_row, int64_t k_off, int64_t kv_pad, Scratch& w) {
  Gather<true>(d, src, d.qkv_row(), k_off, 1.0f, qkv_bias, w.k_t.data());
  float* p = w.s.data();
  MatMul<false>(d.len, kv_pad, d.dim, w.q.data(), d.dim_pad, w.k_t.data(), d.len_pad, p,
                d.len_pad);
  for (int64_t i = 0; i < d.len; ++i) {
    ExpRow(p + i * d.len_pad, w.key_bias.data(), lse_row[i], kv_pad);
  }
  return p;
}

// Rows [rows, len) of w.grad to zero: gradients of keys past the key extent.
void ZeroTail(const Dims& d, int64_t rows, Scratch& w) {
  std::fill(w.grad.begin() + rows * d.dim_pad, w.grad.begin() + d.len * d.dim_pad, 0.0f);
}

void BackwardItem(const Dims& d, float scale, const float* qkv, const float* qkv_bias,
                  const bool* key_valid,
                  const float* out, const float* lse, const float* probs, const float* d_out,
                  float* d_qkv, int64_t item, Scratch& w) {
  const int64_t n = item / d.heads, h = item % d.heads;
  const float* src = qkv + n * d.len * d.qkv_row();
  float* grad_dst = d_qkv + n * d.len * d.qkv_row();
  const int64_t q_off = h * d.dim, k_off = (d.heads + h) * d.dim;
  const int64_t v_off = (2 * d.heads + h) * d.dim;
  const float* lse_row = lse + item * d.len;
  const int64_t kv = KeyBias(d, key_valid, n, w.key_bias.data());
  const int64_t kv_pad = RoundUp(kv, kTileCols);
  if (kv == 0) {  // no key: zero output, zero gradients
    std::fill(w.grad.begin(), w.grad.end(), 0.0f);
    for (int64_t off : {q_off, k_off, v_off}) {
      Scatter(d, w.grad.data(), 1.0f, grad_dst, d.qkv_row(), off);
    }
    return;
  }
  Gather<false>(d, src, d.qkv_row(), q_off, scale, qkv_bias, w.q.data());
  Gather<false>(d, src, d.qkv_row(), k_off, 1.0f, qkv_bias, w.k.data());
  Gather<true>(d, src, d.qkv_row(), v_off, 1.0f, qkv_bias, w.v_t.data());
  const int64_t o_off = h * d.dim;
  Gather<false>(d, out + n * d.len * d.out_row(), d.out_row(), o_off, 1.0f, nullptr, w.o.data());
  Gather<false>(d, d_out + n * d.len * d.out_row(), d.out_row(), o_off, 1.0f, nullptr,
                w.d_o.data());
  const float* p = probs ? probs + item * d.len * d.len_pad
                        : RecomputeProbs(d, src, qkv_bias, lse_row, k_off, kv_pad, w);
  float* ds = w.ds.data();
  // dV = P^T dO (keys past the extent: zero)
  MatMul<true>(kv, d.dim_pad, d.len, p, d.len_pad, w.d_o.data(), d.dim_pad, w.grad.data(),
               d.dim_pad);
  ZeroTail(d, kv, w);
  Scatter(d, w.grad.data(), 1.0f, grad_dst, d.qkv_row(), v_off);
  // dP = dO V^T, then dS = P (dP - rowsum(dO * O))
  MatMul<false>(d.len, kv_pad, d.dim, w.d_o.data(), d.dim_pad, w.v_t.data(), d.len_pad, ds,
                d.len_pad);
  for (int64_t i = 0; i < d.len; ++i) {
    vf delta_acc = vf{};  // dim_pad columns, zero past dim
    for (int64_t k = 0; k < d.dim_pad; k += kLanes) {
      delta_acc += Load(w.d_o.data() + i * d.dim_pad + k) * Load(w.o.data() + i * d.dim_pad + k);
    }
    const vf delta_v = Splat(HorizontalSum(delta_acc));
    float* ds_row = ds + i * d.len_pad;
    const float* p_row = p + i * d.len_pad;
    for (int64_t j = 0; j < kv_pad; j += kLanes) {
      Store(ds_row + j, Load(p_row + j) * (Load(ds_row + j) - delta_v));
    }
  }
  // dQ = scale dS K; dK = dS^T (scale Q)
  MatMul<false>(d.len, d.dim_pad, kv, ds, d.len_pad, w.k.data(), d.dim_pad, w.grad.data(),
                d.dim_pad);
  Scatter(d, w.grad.data(), scale, grad_dst, d.qkv_row(), q_off);
  MatMul<true>(kv, d.dim_pad, d.len, ds, d.len_pad, w.q.data(), d.dim_pad, w.grad.data(),
               d.dim_pad);
  ZeroTail(d, kv, w);
  Scatter(d, w.grad.data(), 1.0f, grad_dst, d.qkv_row(), k_off);
}

// Shapes of qkv [N, L, 3, H, D], qkv_bias [3, H, D], key_valid [N, L], and probs: empty (not
// saved) or N * H * L * len_pad floats.
ffi::Error CheckInputs(ffi::Span<const int64_t> qkv, ffi::Span<const int64_t> bias,
                       ffi::Span<const int64_t> key_valid, size_t probs_count) {
  if (qkv.size() != 5 || qkv[2] != 3) {
    return ffi::Error::InvalidArgument("qkv must be [N, L, 3, H, D]");
  }
  if (bias.size() != 3 || bias[0] != 3 || bias[1] != qkv[3] || bias[2] != qkv[4]) {
    return ffi::Error::InvalidArgument("qkv_bias must be [3, H, D] for qkv [N, L, 3, H, D]");
  }
  if (key_valid.size() != 2 || key_valid[0] != qkv[0] || key_valid[1] != qkv[1]) {
    return ffi::Error::InvalidArgument("key_valid must be [N, L] for qkv [N, L, 3, H, D]");
  }
  const Dims d = GetDims(qkv);
  if (probs_count != 0 && probs_count != static_cast<size_t>(d.n * d.heads * d.len * d.len_pad)) {
    return ffi::Error::InvalidArgument("probs must be [N, H, L, round_up(L, 16)] or empty");
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> qkv, ffi::Buffer<ffi::F32> qkv_bias,
                   ffi::Buffer<ffi::PRED> key_valid, ffi::ResultBuffer<ffi::F32> out,
                   ffi::ResultBuffer<ffi::F32> lse, ffi::ResultBuffer<ffi::F32> probs,
                   float scale) {
  if (ffi::Error e = CheckInputs(qkv.dimensions(), qkv_bias.dimensions(), key_valid.dimensions(),
                                 probs->element_count());
      e.failure()) {
    return e;
  }
  const Dims d = GetDims(qkv.dimensions());
  if (out->element_count() != size_t(d.n * d.len * d.out_row()) ||
      lse->element_count() != size_t(d.n * d.heads * d.len)) {
    return ffi::Error::InvalidArgument("the results must be out [N, L, H, D] and lse [N, H, L]");
  }
  const float* qkv_p = qkv.typed_data();
  const float* bias_p = qkv_bias.typed_data();
  const bool* valid_p = key_valid.typed_data();
  float* out_p = out->typed_data();
  float* lse_p = lse->typed_data();
  float* probs_p = probs->element_count() ? probs->typed_data() : nullptr;
  auto scratch = [&] { return Scratch(d, /*backward=*/false, /*recompute=*/false); };
  ParallelFor(pool, d.n * d.heads, scratch, [&](int64_t item, Scratch& w) {
    ForwardItem(d, scale, qkv_p, bias_p, valid_p, out_p, lse_p, probs_p, item, w);
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> qkv,
                    ffi::Buffer<ffi::F32> qkv_bias, ffi::Buffer<ffi::PRED> key_valid,
                    ffi::Buffer<ffi::F32> out, ffi::Buffer<ffi::F32> lse,
                    ffi::Buffer<ffi::F32> probs, ffi::Buffer<ffi::F32> d_out,
                    ffi::ResultBuffer<ffi::F32> d_qkv, float scale) {
  if (ffi::Error e = CheckInputs(qkv.dimensions(), qkv_bias.dimensions(), key_valid.dimensions(),
                                 probs.element_count());
      e.failure()) {
    return e;
  }
  const Dims d = GetDims(qkv.dimensions());
  const float* qkv_p = qkv.typed_data();
  const float* bias_p = qkv_bias.typed_data();
  const bool* valid_p = key_valid.typed_data();
  const float* out_p = out.typed_data();
  const float* lse_p = lse.typed_data();
  const auto out_dims = out.dimensions(), lse_dims = lse.dimensions();
  const bool out_ok = out_dims.size() == 4 && out_dims[0] == d.n && out_dims[1] == d.len &&
                      out_dims[2] == d.heads && out_dims[3] == d.dim;
  const bool lse_ok = lse_dims.size() == 3 && lse_dims[0] == d.n && lse_dims[1] == d.heads &&
                      lse_dims[2] == d.len;
  if (!out_ok || !lse_ok || d_out.element_count() != out.element_count()) {
    return ffi::Error::InvalidArgument("out and d_out must be [N, L, H, D], lse [N, H, L]");
  }
  if (d_qkv->element_count() != qkv.element_count()) {
    return ffi::Error::InvalidArgument("the result d_qkv must be [N, L, 3, H, D]");
  }
  const float* d_out_p = d_out.typed_data();
  const float* probs_p = probs.element_count() ? probs.typed_data() : nullptr;
  float* d_qkv_p = d_qkv->typed_data();
  auto scratch = [&] { return Scratch(d, /*backward=*/true, /*recompute=*/!probs_p); };
  ParallelFor(pool, d.n * d.heads, scratch, [&](int64_t item, Scratch& w) {
    BackwardItem(d, scale, qkv_p, bias_p, valid_p, out_p, lse_p, probs_p, d_out_p, d_qkv_p, item,
                 w);
  });
  return ffi::Error::Success();
}

using F32Buffer = ffi::Buffer<ffi::F32>;

// Both calls start with the thread pool, qkv, qkv_bias and key_valid.
auto BindPackedInputs() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<F32Buffer>()
      .Arg<F32Buffer>()
      .Arg<ffi::Buffer<ffi::PRED>>();
}

}  // namespace

// out, lse, probs
XLA_FFI_DEFINE_HANDLER_SYMBOL(EmojaxAttentionForward, Forward,
                              BindPackedInputs()
                                  .Ret<F32Buffer>()
                                  .Ret<F32Buffer>()
                                  .Ret<F32Buffer>()
                                  .Attr<float>("scale"));

// out, lse, probs, d_out -> d_qkv
XLA_FFI_DEFINE_HANDLER_SYMBOL(EmojaxAttentionBackward, Backward,
                              BindPackedInputs()
                                  .Arg<F32Buffer>()
                                  .Arg<F32Buffer>()
                                  .Arg<F32Buffer>()
                                  .Arg<F32Buffer>()
                                  .Ret<F32Buffer>()
                                  .Attr<float>("scale"));
