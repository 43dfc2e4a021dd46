// Attention with Wan's flash_attention semantics, tiled with an online softmax so no [Lq, Lk]
// score matrix is ever held: per (sample, head), query tiles of ≤ kQTile rows meet key tiles of
// ≤ kKTile keys; S = Q·Kᵀ and O += P·V are sgemm calls on strided views (no copies), the masking
// and softmax rescaling run row-parallel on the pool.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/vecmath.h"

namespace wanrt {

namespace {
constexpr int64_t kQTile = 2048;
constexpr int64_t kKTile = 1024;
}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                           const Tensor& out) {
    const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3);
    const int64_t Lk = k.size(1), Hk = k.size(2), Dv = v.size(3);
    const int64_t group = H / Hk;
    const float scale = (p.softmax_scale > 0 ? p.softmax_scale : 1.0f / std::sqrt(float(D))) * p.q_scale;
    const float* bias = p.rel_bias.defined() ? p.rel_bias.data<float>() : nullptr;
    const int64_t bias_len = Lq + Lk - 1;
    const float ninf = -std::numeric_limits<float>::infinity();

    const int64_t qt_max = std::min(Lq, kQTile), kt_max = std::min(Lk, kKTile);
    std::vector<float> S(size_t(std::max<int64_t>(1, qt_max * kt_max)));
    std::vector<float> O(size_t(std::max<int64_t>(1, qt_max * Dv)));
    std::vector<float> row_max(size_t(std::max<int64_t>(1, qt_max))), row_sum(row_max.size());
    std::vector<int64_t> lo(row_max.size()), hi(row_max.size());

    for (int64_t b = 0; b < B; ++b) {
        const int64_t lk = p.k_lens.empty() ? Lk : std::clamp<int64_t>(p.k_lens[b], 0, Lk);
        for (int64_t h = 0; h < H; ++h) {
            const int64_t hk = h / group;
            const float* qb = q.data<float>() + (b * Lq * H + h) * D;      // row stride H·D
            const float* kb = k.data<float>() + (b * Lk * Hk + hk) * D;    // row stride Hk·D
            const float* vb = v.data<float>() + (b * Lk * Hk + hk) * Dv;   // row stride Hk·Dv
            float* ob = out.data<float>() + (b * Lq * H + h) * Dv;         // row stride H·Dv
            for (int64_t q0 = 0; q0 < Lq; q0 += qt_max) {
                const int64_t qn = std::min(qt_max, Lq - q0);
                // Key range of each query row: [lo, hi).
                int64_t tile_lo = lk, tile_hi = 0;
                for (int64_t i = 0; i < qn; ++i) {
                    int64_t qi = q0 + i, c = qi + lk - Lq;  // aligned diagonal position
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
                for (int64_t k0 = tile_lo; k0 < tile_hi; k0 += kt_max) {
                    const int64_t kn = std::min(kt_max, tile_hi - k0);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(kn), int(D), scale,
                                qb + q0 * H * D, int(H * D), kb + k0 * Hk * D, int(Hk * D), 0.0f, S.data(),
                                int(kn));
                    pool().parallel_for(qn, 8, [&](int64_t r0, int64_t r1) {
                        for (int64_t i = r0; i < r1; ++i) {
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
                            const float corr = cpu::exp_approx(row_max[i] - m);  // 0 on the first tile
                            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                            for (int64_t j = a; j < e; ++j) {
                                float pj = cpu::exp_approx(s[j] - m);
                                s[j] = pj;
                                sum += pj;
                            }
                            std::fill(s, s + a, 0.0f);
                            std::fill(s + e, s + kn, 0.0f);
                            row_sum[i] = row_sum[i] * corr + sum;
                            row_max[i] = m;
                            float* o = O.data() + i * Dv;
#pragma omp simd
                            for (int64_t d = 0; d < Dv; ++d) o[d] *= corr;
                        }
                    });
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(qn), int(Dv), int(kn), 1.0f,
                                S.data(), int(kn), vb + k0 * Hk * Dv, int(Hk * Dv), 1.0f, O.data(), int(Dv));
                }
                pool().parallel_for(qn, 16, [&](int64_t r0, int64_t r1) {
                    for (int64_t i = r0; i < r1; ++i) {
                        const float inv = row_sum[i] > 0 ? 1.0f / row_sum[i] : 0.0f;
                        float* dst = ob + (q0 + i) * H * Dv;
                        const float* o = O.data() + i * Dv;
                        for (int64_t d = 0; d < Dv; ++d) dst[d] = o[d] * inv;
                    }
                });
            }
        }
    }
}

}  // namespace wanrt
