// LayerNorm over the last axis for XLA:CPU as two XLA FFI custom calls (forward, backward).
//
// Why: XLA:CPU splits LayerNorm into separate reduction and elementwise passes (four in the
// forward, seven in the backward at BERT sizes); these kernels make one pass per row block
// with the row in L1.
//
// Forward:  x f32[R, E], scale f32[E], bias f32[E] -> y f32[R, E], mean f32[R], rstd f32[R]
// Backward: x, scale, mean, rstd, dy f32[R, E] -> dx f32[R, E], dscale f32[E], dbias f32[E]
// The variance is the two-pass one (mean of squared deviations), as torch computes it.
// dscale and dbias are summed per block of rows and the blocks added in a fixed order, so the
// result does not depend on which thread ran which block.

#include <cmath>
#include <cstdint>
#include <memory>

#include "cpu_common.h"

namespace {

using namespace emojax;  // NOLINT: the shared vector helpers

constexpr int64_t kRowsPerItem = 32;

// Sum of x[0, n) (n % 8 == 0 for the vector part; a scalar tail otherwise).
inline float RowSum(const float* x, int64_t n) {
  vf acc = vf{};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) acc += Load(x + j);
  float s = HorizontalSum(acc);
  for (; j < n; ++j) s += x[j];
  return s;
}

inline float RowSquaredDeviation(const float* x, float mean, int64_t n) {
  vf acc = vf{};
  const vf m = Splat(mean);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const vf d = Load(x + j) - m;
    acc += d * d;
  }
  float s = HorizontalSum(acc);
  for (; j < n; ++j) s += (x[j] - mean) * (x[j] - mean);
  return s;
}

void ForwardRows(int64_t begin, int64_t end, int64_t e, float eps, const float* x,
                 const float* scale, const float* bias, float* y, float* mean, float* rstd) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * e;
    float* yr = y + r * e;
    const float mu = RowSum(xr, e) / e;
    const float inv = 1.0f / std::sqrt(RowSquaredDeviation(xr, mu, e) / e + eps);
    mean[r] = mu;
    rstd[r] = inv;
    const vf mu_v = Splat(mu), inv_v = Splat(inv);
    int64_t j = 0;
    for (; j + kLanes <= e; j += kLanes) {
      Store(yr + j, (Load(xr + j) - mu_v) * inv_v * Load(scale + j) + Load(bias + j));
    }
    for (; j < e; ++j) yr[j] = (xr[j] - mu) * inv * scale[j] + bias[j];
  }
}

// dx for rows [begin, end), and their dscale, dbias sums into partial[0, e), partial[e, 2e).
void BackwardRows(int64_t begin, int64_t end, int64_t e, const float* x, const float* scale,
                  const float* mean, const float* rstd, const float* dy, float* dx,
                  float* partial) {
  float* dscale = partial;
  float* dbias = partial + e;
  std::fill(partial, partial + 2 * e, 0.0f);
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * e;
    const float* dyr = dy + r * e;
    float* dxr = dx + r * e;
    const vf mu = Splat(mean[r]), inv = Splat(rstd[r]);
    // a = mean(g), b = mean(g * xhat) with g = dy * scale, xhat = (x - mean) * rstd
    vf a_acc = vf{}, b_acc = vf{};
    int64_t j = 0;
    for (; j + kLanes <= e; j += kLanes) {
      const vf xhat = (Load(xr + j) - mu) * inv;
      const vf d = Load(dyr + j);
      const vf g = d * Load(scale + j);
      a_acc += g;
      b_acc += g * xhat;
      Store(dscale + j, Load(dscale + j) + d * xhat);
      Store(dbias + j, Load(dbias + j) + d);
    }
    float a = HorizontalSum(a_acc), b = HorizontalSum(b_acc);
    for (int64_t t = j; t < e; ++t) {
      const float xhat = (xr[t] - mean[r]) * rstd[r];
      const float g = dyr[t] * scale[t];
      a += g;
      b += g * xhat;
      dscale[t] += dyr[t] * xhat;
      dbias[t] += dyr[t];
    }
    a /= e;
    b /= e;
    const vf a_v = Splat(a), b_v = Splat(b);
    for (j = 0; j + kLanes <= e; j += kLanes) {
      const vf xhat = (Load(xr + j) - mu) * inv;
      const vf g = Load(dyr + j) * Load(scale + j);
      Store(dxr + j, inv * (g - a_v - xhat * b_v));
    }
    for (; j < e; ++j) {
      const float xhat = (xr[j] - mean[r]) * rstd[r];
      dxr[j] = rstd[r] * (dyr[j] * scale[j] - a - xhat * b);
    }
  }
}

struct NoState {};

ffi::Error CheckDims(ffi::Span<const int64_t> x, ffi::Span<const int64_t> param) {
  if (x.size() != 2 || param.size() != 1 || param[0] != x[1]) {
    return ffi::Error::InvalidArgument("layer_norm: x must be [R, E] and scale/bias [E]");
  }
  return ffi::Error::Success();
}

// The backward's saved statistics [R] and dy [R, E] must match x [R, E].
ffi::Error CheckSaved(ffi::Span<const int64_t> x, ffi::Span<const int64_t> mean,
                      ffi::Span<const int64_t> rstd, ffi::Span<const int64_t> dy) {
  const bool stats = mean.size() == 1 && rstd.size() == 1 && mean[0] == x[0] && rstd[0] == x[0];
  if (!stats || dy.size() != 2 || dy[0] != x[0] || dy[1] != x[1]) {
    return ffi::Error::InvalidArgument("layer_norm: mean and rstd must be [R], dy [R, E]");
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                   ffi::Buffer<ffi::F32> bias, ffi::ResultBuffer<ffi::F32> y,
                   ffi::ResultBuffer<ffi::F32> mean, ffi::ResultBuffer<ffi::F32> rstd, float eps) {
  if (ffi::Error err = CheckDims(x.dimensions(), scale.dimensions()); err.failure()) return err;
  if (ffi::Error err = CheckDims(x.dimensions(), bias.dimensions()); err.failure()) return err;
  const int64_t rows = x.dimensions()[0], e = x.dimensions()[1];
  if (y->element_count() != x.element_count() || mean->element_count() != size_t(rows) ||
      rstd->element_count() != size_t(rows)) {
    return ffi::Error::InvalidArgument("layer_norm: the results must be y [R, E], mean/rstd [R]");
  }
  const int64_t items = (rows + kRowsPerItem - 1) / kRowsPerItem;
  ParallelFor(pool, items, [] { return NoState{}; }, [&](int64_t item, NoState&) {
    const int64_t begin = item * kRowsPerItem, end = std::min(rows, begin + kRowsPerItem);
    ForwardRows(begin, end, e, eps, x.typed_data(), scale.typed_data(), bias.typed_data(),
                y->typed_data(), mean->typed_data(), rstd->typed_data());
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                    ffi::Buffer<ffi::F32> mean, ffi::Buffer<ffi::F32> rstd,
                    ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dx,
                    ffi::ResultBuffer<ffi::F32> dscale, ffi::ResultBuffer<ffi::F32> dbias) {
  if (ffi::Error err = CheckDims(x.dimensions(), scale.dimensions()); err.failure()) return err;
  if (ffi::Error err = CheckSaved(x.dimensions(), mean.dimensions(), rstd.dimensions(),
                                  dy.dimensions());
      err.failure()) {
    return err;
  }
  const int64_t rows = x.dimensions()[0], e = x.dimensions()[1];
  if (dx->element_count() != x.element_count() || dscale->element_count() != size_t(e) ||
      dbias->element_count() != size_t(e)) {
    return ffi::Error::InvalidArgument(
        "layer_norm: the results must be dx [R, E], dscale/dbias [E]");
  }
  const int64_t items = (rows + kRowsPerItem - 1) / kRowsPerItem;
  // per-block sums, each block zeroes its own (no up-front fill of the whole buffer)
  std::unique_ptr<float[]> partial(new float[items * 2 * e]);
  ParallelFor(pool, items, [] { return NoState{}; }, [&](int64_t item, NoState&) {
    const int64_t begin = item * kRowsPerItem, end = std::min(rows, begin + kRowsPerItem);
    BackwardRows(begin, end, e, x.typed_data(), scale.typed_data(), mean.typed_data(),
                 rstd.typed_data(), dy.typed_data(), dx->typed_data(),
                 partial.get() + item * 2 * e);
  });
  float* ds = dscale->typed_data();
  float* db = dbias->typed_data();
  std::fill(ds, ds + e, 0.0f);
  std::fill(db, db + e, 0.0f);
  for (int64_t item = 0; item < items; ++item) {
    const float* p = partial.get() + item * 2 * e;
    for (int64_t j = 0; j < e; ++j) {
      ds[j] += p[j];
      db[j] += p[e + j];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(EmojaxLayerNormForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("eps"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(EmojaxLayerNormBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
