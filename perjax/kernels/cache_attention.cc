// Grouped-query attention at inference, over a KV cache or a prefill's own keys:
// out[b, t, h] = softmax(q[b, t, h] . k[b, h/G]^T / sqrt(D), mask[b, t]) . v[b, h/G], in
// bfloat16 with float32 scores, softmax and sums, the probabilities rounded to bfloat16 before
// the value product, as perjax's XLA attention does (`llama.gqa_attention`).
//
// Why: XLA runs the two products as many small batched products with separate softmax,
// transpose and mask passes (at one query per sequence ~0.15 ms a layer for 16 rows on 2 cores,
// and a 16 x 128-token prefill ~4.5 ms a layer); this reads each row's keys and values from
// cache-resident blocks on every core and skips 16-key blocks that no query attends (the causal
// upper triangle). Sums run in another order than XLA's, so results agree to rounding, not bit
// for bit (tests/test_cache_attention.py).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr float kMaskValue = -1e30f;  // llama._MASK_VALUE

inline __m512 LoadBf16(const uint16_t* p) {  // 16 bfloat16 -> float32
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}

// exp(x) for 16 floats: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial (relative
// error ~2e-7); 0 below -87 (a masked slot's score less the maximum).
inline __m512 Exp(__m512 x) {
  const __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~under), _mm512_scalef_ps(p, n));
}

// The 16 lane sums of v[0..15], in order: a tree of in-register shuffles and adds.
inline __m512 Sum16(__m512* v) {
  __m512 r[8], t[4], u[2];
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], 0xDD));
  }
  for (int i = 0; i < 2; ++i) {
    u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
  }
  const __m512 w = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x88),
                                 _mm512_shuffle_ps(u[0], u[1], 0xDD));
  // w[4l + e] holds v[4e + l]'s sum
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(order, w);
}

constexpr int kMaxPairs = 4;   // D up to 128: the query's bfloat16 pairs in 4 registers

struct Attention {
  int64_t batch, queries, heads, kv_heads, slots, dim;
  float root_dim;  // scores are divided by it, as XLA's path does
  const uint16_t *q, *k, *v;
  const bool* mask;
  uint16_t* out;
  std::atomic<int64_t> next{0}, finished{0};

  // Scores of query head `qh` ([D] bfloat16, D = 32 * Pairs) against slots [j0, j0 + 16) of
  // keys `kb`. (The head size is a template argument so that the registers stay registers.)
  template <int Pairs>
  __m512 Scores16(const uint16_t* qh, const uint16_t* kb, int64_t j0) const {
    __m512bh qz[Pairs];
    for (int64_t c = 0; c < Pairs; ++c) qz[c] = (__m512bh)_mm512_loadu_si512(qh + 32 * c);
    __m512 acc[16];
    for (int jj = 0; jj < 16; ++jj) {
      acc[jj] = _mm512_setzero_ps();
      if (j0 + jj >= slots) continue;
      const uint16_t* row = kb + (j0 + jj) * dim;
      for (int64_t c = 0; c < Pairs; ++c) {
        acc[jj] = _mm512_dpbf16_ps(acc[jj], qz[c], (__m512bh)_mm512_loadu_si512(row + 32 * c));
      }
    }
    return Sum16(acc);
  }

  // One query head `qh` against the row's keys `kb` and values `vb`, slots masked by `attend`
  // ([S] bool); `p`: [S] float scratch; the result, rounded to bfloat16, goes to `o`.
  template <int Pairs>
  void Query(const uint16_t* qh, const uint16_t* kb, const uint16_t* vb, const bool* attend,
             float* p, uint16_t* o) const {
    constexpr int64_t chunks = 2 * Pairs;
    const int64_t S = slots, blocks = (S + 15) / 16;
    const __m512 mask_value = _mm512_set1_ps(kMaskValue), root = _mm512_set1_ps(root_dim);
    __m512 top = mask_value;
    for (int64_t j0 = 0; j0 < S; j0 += 16) {
      const __mmask16 in = S - j0 >= 16 ? 0xFFFF : (1u << (S - j0)) - 1u;
      const __mmask16 on = _mm512_mask_test_epi32_mask(
          in, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(in, attend + j0)), _mm512_set1_epi32(1));
      const __m512 s = on ? _mm512_mask_div_ps(mask_value, on, Scores16<Pairs>(qh, kb, j0), root)
                          : mask_value;
      _mm512_mask_storeu_ps(p + j0, in, s);
      top = _mm512_mask_max_ps(top, in, top, s);
    }
    const float peak = _mm512_reduce_max_ps(top);
    // Nothing attended (a padding query): every slot counts, as in XLA's softmax over equal
    // masked scores.
    const bool none = peak == kMaskValue;
    __m512 total = _mm512_setzero_ps();
    for (int64_t j0 = 0; j0 < S; j0 += 16) {
      const __mmask16 in = S - j0 >= 16 ? 0xFFFF : (1u << (S - j0)) - 1u;
      const __m512 e = _mm512_maskz_mov_ps(
          in, Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, p + j0), _mm512_set1_ps(peak))));
      _mm512_mask_storeu_ps(p + j0, in, e);
      total = _mm512_add_ps(total, e);
    }
    const __m512 sum = _mm512_set1_ps(_mm512_reduce_add_ps(total));
    __m512 acc[chunks];
    for (int64_t c = 0; c < chunks; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t j0 = 16 * b, n = std::min<int64_t>(16, S - j0);
      const __mmask16 in = n == 16 ? 0xFFFF : (1u << n) - 1u;
      const __m512 e = _mm512_maskz_loadu_ps(in, p + j0);
      if (!none && _mm512_cmp_ps_mask(e, _mm512_setzero_ps(), _CMP_NEQ_OQ) == 0) continue;
      // probabilities rounded to bfloat16, as XLA's path
      const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_div_ps(e, sum));
      alignas(64) float probs[16];
      _mm512_store_ps(probs, _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)rounded), 16)));
      for (int64_t jj = 0; jj < n; ++jj) {
        const __m512 pj = _mm512_set1_ps(probs[jj]);
        const uint16_t* row = vb + (j0 + jj) * dim;
        for (int64_t c = 0; c < chunks; ++c)
          acc[c] = _mm512_fmadd_ps(pj, LoadBf16(row + 16 * c), acc[c]);
      }
    }
    for (int64_t c = 0; c < chunks; ++c)
      _mm256_storeu_si256((__m256i*)(o + 16 * c), (__m256i)_mm512_cvtneps_pbh(acc[c]));
  }

  // One (row, KV head): its G query heads at every query position.
  template <int Pairs>
  void Task(int64_t task, float* p) const {
    const int64_t b = task / kv_heads, kvh = task % kv_heads, G = heads / kv_heads;
    const uint16_t* kb = k + (b * kv_heads + kvh) * slots * dim;
    const uint16_t* vb = v + (b * kv_heads + kvh) * slots * dim;
    for (int64_t t = 0; t < queries; ++t) {
      const bool* attend = mask + (b * queries + t) * slots;
      for (int64_t g = 0; g < G; ++g) {
        const int64_t at = ((b * queries + t) * heads + kvh * G + g) * dim;
        Query<Pairs>(q + at, kb, vb, attend, p, out + at);
      }
    }
  }

  void Run() {
    const int64_t tasks = batch * kv_heads;
    std::vector<float> p(slots + 16);
    for (int64_t t; (t = next.fetch_add(1)) < tasks;) {
      switch (dim / 32) {
        case 1: Task<1>(t, p.data()); break;
        case 2: Task<2>(t, p.data()); break;
        case 3: Task<3>(t, p.data()); break;
        default: Task<4>(t, p.data()); break;
      }
      finished.fetch_add(1);
    }
  }
};

ffi::Error CacheAttention(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> q,
                          ffi::Buffer<ffi::BF16> k, ffi::Buffer<ffi::BF16> v,
                          ffi::Buffer<ffi::PRED> mask, ffi::ResultBuffer<ffi::BF16> out) {
  auto qd = q.dimensions(), kd = k.dimensions(), md = mask.dimensions();
  if (qd.size() != 4 || kd.size() != 4 || md.size() != 3 || kd[0] != qd[0] || kd[3] != qd[3] ||
      qd[2] % kd[1] != 0 || md[0] != qd[0] || md[1] != qd[1] || md[2] != kd[2] ||
      qd[3] % 32 != 0 || qd[3] > 32 * kMaxPairs) {
    return ffi::Error::InvalidArgument(
        "cache_attention: q [B, T, H, D], k/v [B, KV, S, D], mask [B, T, S], D a multiple of 32 "
        "up to 128");
  }
  auto work = std::make_shared<Attention>();
  work->batch = qd[0];
  work->queries = qd[1];
  work->heads = qd[2];
  work->kv_heads = kd[1];
  work->slots = kd[2];
  work->dim = qd[3];
  work->root_dim = std::sqrt(static_cast<float>(qd[3]));
  work->q = reinterpret_cast<const uint16_t*>(q.typed_data());
  work->k = reinterpret_cast<const uint16_t*>(k.typed_data());
  work->v = reinterpret_cast<const uint16_t*>(v.typed_data());
  work->mask = mask.typed_data();
  work->out = reinterpret_cast<uint16_t*>(out->typed_data());
  const int64_t tasks = work->batch * work->kv_heads;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), tasks) - 1;
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([work] { work->Run(); });
  work->Run();
  while (work->finished.load() < tasks) _mm_pause();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PerjaxCacheAttention, CacheAttention,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Ret<ffi::Buffer<ffi::BF16>>());
