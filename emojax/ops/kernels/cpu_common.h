// Shared pieces of emojax's XLA:CPU FFI kernels: 8-lane float vectors (GCC/Clang vector
// extensions: AVX2 with -march=native, narrower ISAs split them) and a parallel loop on XLA's
// intra-op thread pool.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace emojax {

typedef float vf __attribute__((vector_size(32)));    // 8 floats
typedef int32_t vi __attribute__((vector_size(32)));  // 8 ints
constexpr int kLanes = 8;

inline vf Load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void Store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// A store that bypasses the caches (p 32-byte aligned) where AVX has one: for large outputs
// that are read back only much later. Callers end with StreamFence().
inline void StreamStore(float* p, vf v) {
#if defined(__AVX__)
  __m256 m;
  std::memcpy(&m, &v, sizeof m);
  _mm256_stream_ps(p, m);
#else
  Store(p, v);
#endif
}
inline void StreamFence() {
#if defined(__AVX__)
  _mm_sfence();
#endif
}
inline vf Splat(float x) { return vf{x, x, x, x, x, x, x, x}; }
inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Lane i of the result is v[i ^ 4], v[i ^ 2] or v[i ^ 1]: three swaps reduce all 8 lanes.
inline vf Swap4(vf v) { return __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3); }
inline vf Swap2(vf v) { return __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5); }
inline vf Swap1(vf v) { return __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6); }
inline vf Max(vf a, vf b) { return a > b ? a : b; }
inline float HorizontalSum(vf v) {
  v += Swap4(v);
  v += Swap2(v);
  return (v + Swap1(v))[0];
}
inline float HorizontalMax(vf v) {
  v = Max(v, Swap4(v));
  v = Max(v, Swap2(v));
  return Max(v, Swap1(v))[0];
}

// Runs body(item, state) for item in [0, items) on the caller and up to num_threads - 1 pool
// tasks; each task makes its own state with make_state() and claims items from a shared
// counter. Returns when every item is done. Late tasks only touch the shared counters (owned by
// a shared_ptr) and find no item left; the caller never waits for a task that has not started,
// so a pool busy with other work cannot deadlock it.
template <typename MakeState, typename Body>
void ParallelFor(ffi::ThreadPool& pool, int64_t items, const MakeState& make_state,
                 const Body& body) {
  struct State {
    std::atomic<int64_t> next{0};
    int64_t done = 0;
    std::mutex mu;
    std::condition_variable cv;
  };
  auto state = std::make_shared<State>();
  auto work = [state, items, &make_state, &body]() {
    int64_t item = state->next.fetch_add(1);
    if (item >= items) return;
    auto scratch = make_state();
    int64_t finished = 0;
    for (; item < items; item = state->next.fetch_add(1)) {
      body(item, scratch);
      ++finished;
    }
    std::lock_guard<std::mutex> lock(state->mu);
    state->done += finished;
    if (state->done == items) state->cv.notify_all();
  };
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), items) - 1;
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule(decltype(work)(work));
  work();
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->done == items; });
}

}  // namespace emojax
