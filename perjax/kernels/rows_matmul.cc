// A bfloat16 matrix product for inputs of few rows (a decoding step: one token per sequence),
// y[M, N] (float32) = x[M, K] . W, with W packed once as [N/16][K/2][16][2]: for each block of
// 16 output columns, the K inputs in pairs, so one 64-byte load is one operand of the
// AVX512-BF16 pair dot product (vdpbf16ps) and the weights stream from memory in order.
//
// Why: XLA's CPU products repack the weights at every call, which at 16 rows costs more than the
// product itself (docs/benchmarks.md). Reading pre-packed weights once, on every core, runs a
// decoding step's products at close to the memory bound. Each output sums its K products in
// pairs in increasing k, one float32 accumulator per output, the order XLA's own bfloat16
// kernels use, so results are bitwise equal to `jax.lax.dot_general(...,
// preferred_element_type=float32)` (tests/test_rows_matmul.py checks it).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kRows = 16;          // rows per register block: 16 accumulators of 16 columns
constexpr int64_t kPrefetch = 64;  // 64-byte lines ahead in the weight stream
constexpr int64_t kPartsPerThread = 4;  // ranges of column blocks per thread, for balance

// One block of 16 rows of x (as bfloat16 pairs [k_pairs][16], zero past the last row) times
// one 16-column weight block; the first `rows` rows are stored.
inline void ColumnBlock(const uint32_t* x_pairs, int rows, int64_t k_pairs, const uint16_t* block,
                        float* y, int64_t y_stride) {
  __m512 acc[kRows];
  for (int i = 0; i < kRows; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t kp = 0; kp < k_pairs; ++kp) {
    _mm_prefetch(reinterpret_cast<const char*>(block + (kp + kPrefetch) * 32), _MM_HINT_T0);
    const __m512bh w = (__m512bh)_mm512_loadu_si512(block + kp * 32);
    const uint32_t* x = x_pairs + kp * kRows;
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i) {
      acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)_mm512_set1_epi32(x[i]), w);
    }
  }
  for (int i = 0; i < rows; ++i) _mm512_storeu_ps(y + i * y_stride, acc[i]);
}

// Shared by the calling thread and the helpers it schedules: each takes column blocks until
// none is left. A helper that starts late finds none; the caller waits only for blocks taken.
struct Product {
  std::vector<uint32_t> x_pairs;  // x as pairs [M/16][K/2][16], zero padded
  int64_t m = 0, k_pairs = 0, blocks = 0;
  const uint16_t* packed = nullptr;
  float* y = nullptr;
  std::atomic<int64_t> next{0}, finished{0};
  std::atomic<bool> ready{false};  // x_pairs written (helpers are scheduled before, to wake early)
  std::thread::id caller;  // a pool without threads runs a helper inline, on the caller: it returns

  int64_t parts = 1;  // contiguous ranges of blocks: each participant streams its range in order
  void Help() {
    if (std::this_thread::get_id() == caller) return;
    Run();
  }

  void Run() {
    while (!ready.load(std::memory_order_acquire)) _mm_pause();
    const int64_t n = blocks * 16;
    for (int64_t part; (part = next.fetch_add(1)) < parts;) {
      const int64_t begin = part * blocks / parts, end = (part + 1) * blocks / parts;
      for (int64_t b = begin; b < end; ++b) {
        const uint16_t* block = packed + b * k_pairs * 32;
        for (int64_t r = 0; r < m; r += kRows) {
          ColumnBlock(x_pairs.data() + r * k_pairs,
                      static_cast<int>(std::min<int64_t>(kRows, m - r)), k_pairs, block,
                      y + r * n + b * 16, n);
        }
      }
      finished.fetch_add(end - begin);
    }
  }
};

ffi::Error RowsMatmul(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> x,
                      ffi::Buffer<ffi::BF16> packed, ffi::ResultBuffer<ffi::F32> y) {
  auto x_dims = x.dimensions();
  auto w_dims = packed.dimensions();
  if (x_dims.size() != 2 || w_dims.size() != 4 || w_dims[2] != 16 || w_dims[3] != 2 ||
      w_dims[1] != (x_dims[1] + 1) / 2) {
    return ffi::Error::InvalidArgument("rows_matmul: x must be [M, K], packed [N/16, K/2, 16, 2]");
  }
  auto product = std::make_shared<Product>();
  product->m = x_dims[0];
  product->k_pairs = w_dims[1];
  product->blocks = w_dims[0];
  product->packed = reinterpret_cast<const uint16_t*>(packed.typed_data());
  product->y = y->typed_data();
  const int64_t threads =
      std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), product->blocks));
  product->parts = std::min<int64_t>(product->blocks, kPartsPerThread * threads);
  product->caller = std::this_thread::get_id();
  for (int64_t t = 1; t < threads; ++t) pool.Schedule([product] { product->Help(); });
  // x as pairs [M/16][K/2][16]: a 32-bit transpose of each block of 16 rows (an odd K's last
  // value pairs with zero)
  const int64_t K = x_dims[1], whole = K / 2;
  product->x_pairs.assign((product->m + kRows - 1) / kRows * product->k_pairs * kRows, 0);
  const auto* xs = reinterpret_cast<const uint16_t*>(x.typed_data());
  for (int64_t i = 0; i < product->m; ++i) {
    uint32_t* column = product->x_pairs.data() + (i / kRows) * product->k_pairs * kRows + i % kRows;
    const uint16_t* row = xs + i * K;
    for (int64_t kp = 0; kp < whole; ++kp) {
      uint32_t pair;
      std::memcpy(&pair, row + 2 * kp, sizeof(pair));
      column[kp * kRows] = pair;
    }
    if (K % 2) column[whole * kRows] = row[K - 1];
  }
  product->ready.store(true, std::memory_order_release);
  product->Run();
  while (product->finished.load() < product->blocks) _mm_pause();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PerjaxRowsMatmul, RowsMatmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
