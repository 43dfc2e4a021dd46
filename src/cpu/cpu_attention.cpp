// Attention with Wan's flash_attention semantics, tiled with an online softmax so no [Lq, Lk]
// score matrix is ever held. Work is split over (sample, head, query tile) tasks, one thread each,
// with single-threaded sgemm on strided views (no copies): S = Q·Kᵀ over a key tile, masking and
// softmax rescaling in SIMD loops, O += P·V. Tiles are large (1,024 queries × 2,048 keys, 8 MB of
// scores per thread): single-threaded sgemm with K = head_dim = 128 gains more from size than the
// softmax passes lose to L3 (measured: 256×512 tiles ran at 0.6× the linear layers' rate, these at
// 0.8×; docs/perf.md). OpenBLAS's own threads are off for the duration: the parallelism is ours.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"
#include "cpu/vecmath.h"

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace wanrt {

namespace {
constexpr int64_t kQTile = 1024;
constexpr int64_t kKTile = 2048;

// Restores OpenBLAS's thread count when the attention call ends (also on exceptions).
struct BlasSingleThread {
    int saved = openblas_get_num_threads();
    BlasSingleThread() { openblas_set_num_threads(1); }
    ~BlasSingleThread() { openblas_set_num_threads(saved); }
};
}  // namespace

static void attention_cpu(CpuBackend& be, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                           const Tensor& out) {
    const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3);
    const int64_t Lk = k.size(1), Hk = k.size(2), Dv = v.size(3);
    const int64_t group = H / Hk;
    const float scale = (p.softmax_scale > 0 ? p.softmax_scale : 1.0f / std::sqrt(float(D))) * p.q_scale;
    const float* bias = p.rel_bias.defined() ? p.rel_bias.data<float>() : nullptr;
    const int64_t bias_len = Lq + Lk - 1;
    const float ninf = -std::numeric_limits<float>::infinity();
    const int64_t qt = std::min(Lq, kQTile), kt = std::min(Lk, kKTile);
    const int64_t qtiles = (Lq + qt - 1) / qt;
    if (Lq == 0) return;

    BlasSingleThread single;
    be.pool().parallel_for(B * H * qtiles, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> S(static_cast<size_t>(qt * kt)), O(static_cast<size_t>(qt * Dv));
        std::vector<float> row_max(static_cast<size_t>(qt)), row_sum(static_cast<size_t>(qt));
        std::vector<int64_t> lo(static_cast<size_t>(qt)), hi(static_cast<size_t>(qt));
        for (int64_t task = t0; task < t1; ++task) {
            const int64_t b = task / (H * qtiles), h = (task / qtiles) % H, q0 = (task % qtiles) * qt;
            const int64_t qn = std::min(qt, Lq - q0);
            const int64_t lk = p.k_lens.empty() ? Lk : std::clamp<int64_t>(p.k_lens[b], 0, Lk);
            const int64_t hk = h / group;
            const float* qb = q.data<float>() + (b * Lq * H + h) * D;    // row stride H·D
            const float* kb = k.data<float>() + (b * Lk * Hk + hk) * D;  // row stride Hk·D
            const float* vb = v.data<float>() + (b * Lk * Hk + hk) * Dv; // row stride Hk·Dv
            float* ob = out.data<float>() + (b * Lq * H + h) * Dv;       // row stride H·Dv

            // Key range [lo, hi) of each query row.
            int64_t tile_lo = lk, tile_hi = 0;
            for (int64_t i = 0; i < qn; ++i) {
                const int64_t c = q0 + i + lk - Lq;  // the bottom-right aligned diagonal
                int64_t l = 0, r = lk;
                if (p.causal) r = std::min(r, c + 1);
                if (p.window_left >= 0) l = std::max<int64_t>(l, c - p.window_left);
                if (p.window_right >= 0) r = std::min<int64_t>(r, c + p.window_right + 1);
                lo[i] = l;
                hi[i] = std::max(l, r);
                if (hi[i] > lo[i]) {
                    tile_lo = std::min(tile_lo, lo[i]);
                    tile_hi = std::max(tile_hi, hi[i]);
                }
                row_max[i] = ninf;
                row_sum[i] = 0.0f;
            }
            std::fill(O.begin(), O.begin() + qn * Dv, 0.0f);
            for (int64_t k0 = tile_lo; k0 < tile_hi; k0 += kt) {
                const int64_t kn = std::min(kt, tile_hi - k0);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(kn), int(D), scale, qb + q0 * H * D,
                            int(H * D), kb + k0 * Hk * D, int(Hk * D), 0.0f, S.data(), int(kn));
                for (int64_t i = 0; i < qn; ++i) {
                    float* s = S.data() + i * kn;
                    const int64_t a = std::clamp(lo[i] - k0, int64_t(0), kn);
                    const int64_t e = std::clamp(hi[i] - k0, int64_t(0), kn);
                    if (a >= e) {
                        std::fill(s, s + kn, 0.0f);
                        continue;
                    }
                    if (bias) {
                        const float* bh = bias + h * bias_len + (k0 - (q0 + i) + Lq - 1);
#pragma omp simd
                        for (int64_t j = a; j < e; ++j) s[j] += bh[j];
                    }
                    float m = row_max[i];
#pragma omp simd reduction(max : m)
                    for (int64_t j = a; j < e; ++j) m = std::max(m, s[j]);
                    const float corr = cpu::exp_approx(row_max[i] - m);  // 0 on the row's first tile
                    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                    for (int64_t j = a; j < e; ++j) {
                        const float pj = cpu::exp_approx(s[j] - m);
                        s[j] = pj;
                        sum += pj;
                    }
                    std::fill(s, s + a, 0.0f);
                    std::fill(s + e, s + kn, 0.0f);
                    row_sum[i] = row_sum[i] * corr + sum;
                    row_max[i] = m;
                    if (corr != 1.0f) {
                        float* o = O.data() + i * Dv;
#pragma omp simd
                        for (int64_t d = 0; d < Dv; ++d) o[d] *= corr;
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(qn), int(Dv), int(kn), 1.0f, S.data(),
                            int(kn), vb + k0 * Hk * Dv, int(Hk * Dv), 1.0f, O.data(), int(Dv));
            }
            for (int64_t i = 0; i < qn; ++i) {
                const float inv = row_sum[i] > 0 ? 1.0f / row_sum[i] : 0.0f;  // no visible key: zeros
                float* dst = ob + (q0 + i) * H * Dv;
                const float* o = O.data() + i * Dv;
#pragma omp simd
                for (int64_t d = 0; d < Dv; ++d) dst[d] = o[d] * inv;
            }
        }
    });
}

namespace {
const RegisterKernel<AttentionArgs, CpuBackend> reg_attention({{DType::F32, DType::F32}}, [](CpuBackend& be, const AttentionArgs& a) {
    attention_cpu(be, a.q, a.k, a.v, *a.p, a.out);
});
}  // namespace

}  // namespace wanrt
