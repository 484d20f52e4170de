// A packed float32 GEMM for emojax's CPU kernels: C[M, N] = A[M, K] B[K, N] (+ bias[N]), with
// A and B given by strides (a transposed operand costs nothing extra), optionally the column
// sums of B on the way (a bias gradient), and the work split into tasks by a caller-supplied
// parallel loop.
//
// Blocking in the Goto/BLIS way, one depth block (kc <= 384) at a time: B's rows of the block
// are packed into [16-column panel][kc][16] (in parallel, shared), then each task runs a 6 x 16
// register tile (12 accumulators, at ~99% of the FMA peak from L1) over up to 72 rows of A with
// one [kc, 16] panel of B in L1. A row-major A is read in place; any other A is packed like B
// into [6-row panel][kc][6].
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_common.h"

namespace emojax {

// Element (i, j) of a matrix operand is data[i * row_stride + j * col_stride].
struct Operand {
  const float* data;
  int64_t row_stride, col_stride;
  float at(int64_t i, int64_t j) const { return data[i * row_stride + j * col_stride]; }
};

namespace gemm {

constexpr int kRows = 6;   // register tile: 6 rows x 2 vectors of 8
constexpr int kCols = 16;
constexpr int64_t kMaxKc = 384;  // depth of one block: a [kc, 16] panel of B (24 KB) fits in L1
constexpr int64_t kMaxMc = 72;   // rows of one task: each B panel is reused for 12 row tiles
constexpr int64_t kTasks = 32;   // at least this many tasks per depth block (load balance)

struct Blocking {
  int64_t m, n, k;
  int64_t kc;         // block depth (the last block may be shorter)
  int64_t k_blocks;
  int64_t n_pad;      // n rounded up to whole panels
  int64_t mc, nc;     // one task: mc rows x nc columns of C
  int64_t m_chunks, n_chunks;
  int64_t tasks() const { return m_chunks * n_chunks; }
  int64_t k_size(int64_t kb) const { return std::min(kc, k - kb * kc); }
};

// Tasks of at most kMaxMc rows (the more rows, the more often each [kc, 16] panel of B is
// reused from L1), with the columns split until there are about max(kTasks, 4 x workers) tasks,
// so that the last one claimed leaves little idle time.
inline Blocking Plan(int64_t m, int64_t n, int64_t k, int64_t workers) {
  Blocking b{m, n, k, 0, 0, 0, 0, 0, 0, 0};
  b.k_blocks = std::max<int64_t>(1, (k + kMaxKc - 1) / kMaxKc);
  b.kc = std::max<int64_t>(1, (k + b.k_blocks - 1) / b.k_blocks);
  b.k_blocks = std::max<int64_t>(1, (k + b.kc - 1) / b.kc);
  b.n_pad = RoundUp(n, kCols);
  b.m_chunks = (m + kMaxMc - 1) / kMaxMc;
  b.mc = RoundUp((m + b.m_chunks - 1) / b.m_chunks, kRows);
  b.m_chunks = (m + b.mc - 1) / b.mc;
  const int64_t panels = b.n_pad / kCols;
  const int64_t tasks = std::max<int64_t>(kTasks, 4 * workers);
  const int64_t want_n =
      std::min<int64_t>(panels, std::max<int64_t>(1, (tasks + b.m_chunks - 1) / b.m_chunks));
  b.nc = (panels + want_n - 1) / want_n * kCols;
  b.n_chunks = (b.n_pad + b.nc - 1) / b.nc;
  return b;
}

// Panels [first, first + count) of B, rows [p0, p0 + kc), each into dst[kc][16] one after the
// other (columns past n are zero).
inline void PackB(const Operand& b, const Blocking& bl, int64_t p0, int64_t kc, int64_t first,
                  int64_t count, float* dst) {
  const int64_t j0 = first * kCols;
  const int64_t cols = std::min<int64_t>(count * kCols, bl.n - j0);
  if (b.col_stride == 1 && cols == count * kCols) {  // row-major: whole row segments
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b.data + (p0 + p) * b.row_stride + j0;
      for (int64_t q = 0; q < count; ++q) {
        float* out = dst + q * kc * kCols + p * kCols;
        Store(out, Load(src + q * kCols));
        Store(out + kLanes, Load(src + q * kCols + kLanes));
      }
    }
    return;
  }
  if (cols < count * kCols) std::memset(dst, 0, sizeof(float) * count * kc * kCols);
  // Transposed (or strided) B: walk each column's run along p; the [kc, 16] destination of one
  // panel stays in L1.
  for (int64_t j = 0; j < cols; ++j) {
    const float* src = b.data + (j0 + j) * b.col_stride + p0 * b.row_stride;
    float* out = dst + (j / kCols) * kc * kCols + j % kCols;
    for (int64_t p = 0; p < kc; ++p) out[p * kCols] = src[p * b.row_stride];
  }
}

// Rows [i0, i0 + rows) x depth [p0, p0 + kc) of A into 6-row micro-panels dst[panel][kc][6]
// (rows past `rows` are zero).
inline void PackA(const Operand& a, int64_t i0, int64_t rows, int64_t p0, int64_t kc,
                  float* dst) {
  if (a.row_stride == 1) {  // A stored transposed: the rows of one p are contiguous
    const int64_t panels = (rows + kRows - 1) / kRows;
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = a.data + (p0 + p) * a.col_stride + i0;
      for (int64_t r0 = 0; r0 < panels * kRows; r0 += kRows) {
        float* out = dst + r0 * kc + p * kRows;
        const int64_t n = std::min<int64_t>(kRows, rows - r0);
        if (n == kRows) {
          for (int64_t r = 0; r < kRows; ++r) out[r] = src[r0 + r];
        } else {
          for (int64_t r = 0; r < kRows; ++r) out[r] = r < n ? src[r0 + r] : 0.0f;
        }
      }
    }
    return;
  }
  for (int64_t r0 = 0; r0 < rows; r0 += kRows, dst += kc * kRows) {
    const int64_t n = std::min<int64_t>(kRows, rows - r0);
    for (int64_t r = 0; r < kRows; ++r) {
      if (r >= n) {
        for (int64_t p = 0; p < kc; ++p) dst[p * kRows + r] = 0.0f;
        continue;
      }
      const float* src = a.data + (i0 + r0 + r) * a.row_stride + p0 * a.col_stride;
      for (int64_t p = 0; p < kc; ++p) dst[p * kRows + r] = src[p * a.col_stride];
    }
  }
}

// sums[j0 + j] += sum_p panels[q][p][j % 16] for the `count` packed [kc][16] panels starting
// at column j0 (j0 + j < n). Different items own different columns: no two write one sum.
inline void AddColumnSums(const float* panels, int64_t kc, int64_t count, int64_t j0, int64_t n,
                          float* sums) {
  for (int64_t q = 0; q < count; ++q, panels += kc * kCols) {
    vf s0{}, s1{};
    for (int64_t p = 0; p < kc; ++p) {
      s0 += Load(panels + p * kCols);
      s1 += Load(panels + p * kCols + kLanes);
    }
    float total[kCols];
    Store(total, s0);
    Store(total + kLanes, s1);
    const int64_t j = j0 + q * kCols;
    for (int64_t t = 0; t < kCols && j + t < n; ++t) sums[j + t] += total[t];
  }
}

// acc[6][16] = A-panel[kc][6]^T B-panel[kc][16]; then C tile = acc (+ bias) on the first depth
// block, C tile += acc on the others. `rows` x `cols` is the valid part of the tile.
inline void MicroKernel(int64_t kc, const float* __restrict a, int64_t a_rs, int64_t a_ps,
                        const float* __restrict b, float* __restrict c, int64_t ldc,
                        int64_t rows, int64_t cols, bool first, const float* bias) {
  vf c00{}, c01{}, c10{}, c11{}, c20{}, c21{}, c30{}, c31{}, c40{}, c41{}, c50{}, c51{};
  for (int i = 0; i < rows; ++i) __builtin_prefetch(c + i * ldc, 1);
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const vf b0 = Load(b + p * kCols), b1 = Load(b + p * kCols + kLanes);
    const float* ap = a + p * a_ps;
    vf ai = Splat(ap[0]);
    c00 += ai * b0, c01 += ai * b1;
    ai = Splat(ap[a_rs]);
    c10 += ai * b0, c11 += ai * b1;
    ai = Splat(ap[2 * a_rs]);
    c20 += ai * b0, c21 += ai * b1;
    ai = Splat(ap[3 * a_rs]);
    c30 += ai * b0, c31 += ai * b1;
    ai = Splat(ap[4 * a_rs]);
    c40 += ai * b0, c41 += ai * b1;
    ai = Splat(ap[5 * a_rs]);
    c50 += ai * b0, c51 += ai * b1;
  }
  const vf acc[kRows][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                            {c30, c31}, {c40, c41}, {c50, c51}};
  if (rows == kRows && cols == kCols) {
    if (first) {
      const vf z0 = bias ? Load(bias) : vf{}, z1 = bias ? Load(bias + kLanes) : vf{};
      for (int i = 0; i < kRows; ++i) {
        Store(c + i * ldc, acc[i][0] + z0);
        Store(c + i * ldc + kLanes, acc[i][1] + z1);
      }
    } else {
      for (int i = 0; i < kRows; ++i) {
        Store(c + i * ldc, Load(c + i * ldc) + acc[i][0]);
        Store(c + i * ldc + kLanes, Load(c + i * ldc + kLanes) + acc[i][1]);
      }
    }
    return;
  }
  float tile[kRows][kCols];
  for (int i = 0; i < kRows; ++i) {
    Store(tile[i], acc[i][0]);
    Store(tile[i] + kLanes, acc[i][1]);
  }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const float base = first ? (bias ? bias[j] : 0.0f) : c[i * ldc + j];
      c[i * ldc + j] = base + tile[i][j];
    }
  }
}

// The packed operands of one depth block: a grow-only buffer per calling thread (the workers use
// the caller's), so that a call does not map and fault in fresh pages every time. Up to
// kRetainFloats (16 MiB: any transformer layer up to ~5k wide) stay allocated between calls;
// a larger request (a vocabulary projection) gets a buffer of its own, freed with `owned`.
constexpr size_t kRetainFloats = size_t{1} << 22;
inline float* PackBuffer(size_t floats, std::vector<float>& owned) {
  thread_local std::vector<float> retained;
  if (floats > kRetainFloats) {
    owned.resize(floats);
    return owned.data();
  }
  if (retained.size() < floats) retained.resize(floats);
  return retained.data();
}

// C[m, n] = A B (+ bias) with C row-major (leading dimension ldc).
// parallel_for(tasks, make_state, body) must call body(task, state) once for each task in
// [0, tasks), with a state from make_state() per worker, and return when all are done;
// parallel_for.workers() says how many threads it runs on. b_col_sums (may be null) receives
// sum_p B(p, j) for j < n.
template <typename ParallelLoop>
void Gemm(const Operand& a, const Operand& b, const float* bias, float* c, int64_t ldc,
          int64_t m, int64_t n, int64_t k, float* b_col_sums, const ParallelLoop& parallel_for) {
  if (b_col_sums) std::fill(b_col_sums, b_col_sums + n, 0.0f);
  if (n == 0) return;
  if (m == 0 || k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = bias ? bias[j] : 0.0f;
    if (m == 0 && b_col_sums) {
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) b_col_sums[j] += b.at(p, j);
    }
    return;
  }
  const Blocking bl = Plan(m, n, k, parallel_for.workers());
  // Row-major A is read in place (6 row streams); any other A is packed like B, into 6-row
  // panels [kc][6]. One depth block at a time: its packed operands stay in the caches.
  const bool direct_a = a.col_stride == 1;
  // Packed 8 panels at a time, so each row of a row-major B (or of A^T) is read in whole lines.
  constexpr int64_t kPanelsPerItem = 8;
  const int64_t b_panels = bl.n_pad / kCols;
  const int64_t b_items = (b_panels + kPanelsPerItem - 1) / kPanelsPerItem;
  const int64_t m_pad = direct_a ? 0 : RoundUp(m, kRows);
  const int64_t a_items = (m_pad / kRows + kPanelsPerItem - 1) / kPanelsPerItem;
  std::vector<float> owned;
  float* pb = PackBuffer(bl.kc * (bl.n_pad + m_pad), owned);
  float* pa = pb + bl.kc * bl.n_pad;
  struct NoState {};
  // Scratch for a last, partial row panel of a row-major A.
  auto make_edge = [&] { return std::vector<float>(kRows * bl.kc); };
  for (int64_t kb = 0; kb < bl.k_blocks; ++kb) {
    const int64_t kc = bl.k_size(kb), p0 = kb * bl.kc;
    const bool first = kb == 0;
    parallel_for(
        b_items + a_items, [] { return NoState{}; },
        [&](int64_t item, NoState&) {
          if (item < b_items) {
            const int64_t panel = item * kPanelsPerItem;
            const int64_t count = std::min(kPanelsPerItem, b_panels - panel);
            PackB(b, bl, p0, kc, panel, count, pb + panel * kc * kCols);
            if (b_col_sums) {
              AddColumnSums(pb + panel * kc * kCols, kc, count, panel * kCols, n, b_col_sums);
            }
          } else {
            const int64_t r0 = (item - b_items) * kPanelsPerItem * kRows;
            PackA(a, r0, std::min<int64_t>(kPanelsPerItem * kRows, m - r0), p0, kc,
                  pa + r0 * kc);
          }
        });
    parallel_for(bl.tasks(), make_edge, [&](int64_t task, std::vector<float>& edge) {
      const int64_t i0 = (task / bl.n_chunks) * bl.mc, j0 = (task % bl.n_chunks) * bl.nc;
      const int64_t rows = std::min(bl.mc, m - i0), cols = std::min(bl.nc, n - j0);
      for (int64_t j = 0; j < cols; j += kCols) {
        const float* panel_b = pb + (j0 + j) / kCols * kc * kCols;
        const int64_t tile_cols = std::min<int64_t>(kCols, cols - j);
        const float* tile_bias = bias ? bias + j0 + j : nullptr;
        for (int64_t i = 0; i < rows; i += kRows) {
          const int64_t live = std::min<int64_t>(kRows, rows - i);
          float* tile_c = c + (i0 + i) * ldc + j0 + j;
          if (!direct_a) {
            MicroKernel(kc, pa + (i0 + i) * kc, 1, kRows, panel_b, tile_c, ldc, live,
                        tile_cols, first, tile_bias);
          } else if (live == kRows) {
            MicroKernel(kc, a.data + (i0 + i) * a.row_stride + p0, a.row_stride, 1, panel_b,
                        tile_c, ldc, kRows, tile_cols, first, tile_bias);
          } else {
            PackA(a, i0 + i, live, p0, kc, edge.data());
            MicroKernel(kc, edge.data(), 1, kRows, panel_b, tile_c, ldc, live, tile_cols,
                        first, tile_bias);
          }
        }
      }
    });
  }
}

}  // namespace gemm
}  // namespace emojax
