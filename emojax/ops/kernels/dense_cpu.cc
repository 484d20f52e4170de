// A dense layer y = x W + b for XLA:CPU as two XLA FFI custom calls (forward, backward), on the
// packed GEMM of gemm.h run on XLA's intra-op thread pool.
//
// Why: XLA:CPU's dots (YNNPACK, Eigen for some kernel gradients) run 5-20% below MKL on the
// transformer shapes (docs/encoders.md, "Speed"); this GEMM matches MKL there, reads transposed
// operands through its packing (no transposed copies), and sums the bias gradient while it
// packs the output gradient.
//
// Forward:        x f32[M, K], w f32[K, N], b f32[N] or f32[0] (no bias) -> y f32[M, N]
// InputGradient:  w f32[K, N], dy f32[M, N] -> dx f32[M, K] = dy W^T
// ParamGradient:  x f32[M, K], dy f32[M, N] -> dw f32[K, N] = x^T dy, db f32[N] = column sums
//                 of dy

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "cpu_common.h"
#include "gemm.h"

namespace {

using namespace emojax;  // NOLINT: the shared helpers

// ParallelFor on XLA's pool, in the shape gemm::Gemm expects.
struct PoolLoop {
  ffi::ThreadPool& pool;
  template <typename MakeState, typename Body>
  void operator()(int64_t items, const MakeState& make_state, const Body& body) const {
    ParallelFor(pool, items, make_state, body);
  }
  int64_t workers() const { return pool.num_threads(); }
};

ffi::Error CheckMatrices(ffi::Span<const int64_t> x, ffi::Span<const int64_t> w) {
  if (x.size() != 2 || w.size() != 2 || x[1] != w[0]) {
    return ffi::Error::InvalidArgument("dense: x must be [M, K] and w [K, N]");
  }
  return ffi::Error::Success();
}

// A buffer (argument or result) of exactly the given dimensions: the kernels write through the
// shapes they derive from x and w, so a hand-made call with other result shapes must fail.
bool HasShape(ffi::Span<const int64_t> dims, std::initializer_list<int64_t> expected) {
  return dims.size() == expected.size() && std::equal(dims.begin(), dims.end(), expected.begin());
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                   ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> y) {
  if (ffi::Error e = CheckMatrices(x.dimensions(), w.dimensions()); e.failure()) return e;
  const int64_t m = x.dimensions()[0], k = x.dimensions()[1], n = w.dimensions()[1];
  if (!HasShape(b.dimensions(), {0}) && !HasShape(b.dimensions(), {n})) {
    return ffi::Error::InvalidArgument("dense: b must be [N] or [0]");
  }
  if (!HasShape(y->dimensions(), {m, n})) {
    return ffi::Error::InvalidArgument("dense: the result y must be [M, N]");
  }
  const float* bias = b.element_count() ? b.typed_data() : nullptr;
  gemm::Gemm(Operand{x.typed_data(), k, 1}, Operand{w.typed_data(), n, 1}, bias,
             y->typed_data(), n, m, n, k, nullptr, PoolLoop{pool});
  return ffi::Error::Success();
}

// dx[M, K] = dy[M, N] W^T, W^T(p, j) = w[j * n + p] read through the packing.
ffi::Error InputGradient(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> dy,
                         ffi::ResultBuffer<ffi::F32> dx) {
  const auto w_dims = w.dimensions(), dy_dims = dy.dimensions();
  if (w_dims.size() != 2 || dy_dims.size() != 2 || dy_dims[1] != w_dims[1]) {
    return ffi::Error::InvalidArgument("dense: w must be [K, N] and dy [M, N]");
  }
  const int64_t m = dy_dims[0], k = w_dims[0], n = w_dims[1];
  if (!HasShape(dx->dimensions(), {m, k})) {
    return ffi::Error::InvalidArgument("dense: the result dx must be [M, K]");
  }
  gemm::Gemm(Operand{dy.typed_data(), n, 1}, Operand{w.typed_data(), 1, n}, nullptr,
             dx->typed_data(), k, m, k, n, nullptr, PoolLoop{pool});
  return ffi::Error::Success();
}

// dw[K, N] = x^T dy, x^T(i, p) = x[p * k + i] packed into row panels; db = the column sums of
// dy, added up as it is packed.
ffi::Error ParamGradient(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                         ffi::ResultBuffer<ffi::F32> dw, ffi::ResultBuffer<ffi::F32> db) {
  const auto x_dims = x.dimensions(), dy_dims = dy.dimensions();
  if (x_dims.size() != 2 || dy_dims.size() != 2 || dy_dims[0] != x_dims[0]) {
    return ffi::Error::InvalidArgument("dense: x must be [M, K] and dy [M, N]");
  }
  const int64_t m = x_dims[0], k = x_dims[1], n = dy_dims[1];
  if (!HasShape(dw->dimensions(), {k, n}) || !HasShape(db->dimensions(), {n})) {
    return ffi::Error::InvalidArgument("dense: the results must be dw [K, N] and db [N]");
  }
  gemm::Gemm(Operand{x.typed_data(), 1, k}, Operand{dy.typed_data(), n, 1}, nullptr,
             dw->typed_data(), n, k, n, m, db->typed_data(), PoolLoop{pool});
  return ffi::Error::Success();
}

using F32Buffer = ffi::Buffer<ffi::F32>;

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(EmojaxDenseForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<F32Buffer>()
                                  .Arg<F32Buffer>()
                                  .Arg<F32Buffer>()
                                  .Ret<F32Buffer>());

// The backward is two calls, so that XLA drops the one whose gradient is not used (a frozen
// layer's dw, the input gradient of a first layer).
XLA_FFI_DEFINE_HANDLER_SYMBOL(EmojaxDenseInputGradient, InputGradient,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<F32Buffer>()
                                  .Arg<F32Buffer>()
                                  .Ret<F32Buffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(EmojaxDenseParamGradient, ParamGradient,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<F32Buffer>()
                                  .Arg<F32Buffer>()
                                  .Ret<F32Buffer>()
                                  .Ret<F32Buffer>());
