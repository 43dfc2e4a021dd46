// CPU kernels of the backward ops (ops/backward.h), f32, contiguous row-major inputs (the
// front-ends make them so; modulation rows may have a row stride). Reductions over rows (weight
// gradients, modulation gradients) run as a second pass parallel over columns, so no two threads
// write one value and results do not depend on the thread count.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/backward.h"

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace wanrt {

namespace {

constexpr int64_t kColChunk = 64;  // columns per task of a row-reduction pass

int64_t row_grain(int64_t D) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1)); }

// Restores OpenBLAS's thread count when an attention call ends: the parallelism is ours.
struct BlasSingleThread {
    int saved = openblas_get_num_threads();
    BlasSingleThread() { openblas_set_num_threads(1); }
    ~BlasSingleThread() { openblas_set_num_threads(saved); }
};

// ---- linear -----------------------------------------------------------------------------------
void linear_backward_cpu(CpuBackend& be, const LinearBackwardArgs& a) {
    const int64_t M = a.x.size(0), K = a.x.size(1), N = a.dy.size(1);
    const float* x = a.x.data<float>();
    const float* w = a.w.defined() ? a.w.data<float>() : nullptr;
    const float* dy = a.dy.data<float>();
    if (M == 0) {
        if (a.dw.defined() && !a.acc_dw) std::fill(a.dw.data<float>(), a.dw.data<float>() + N * K, 0.0f);
        if (a.db.defined() && !a.acc_db) std::fill(a.db.data<float>(), a.db.data<float>() + N, 0.0f);
        return;
    }
    if (a.dx.defined())  // dx [M, K] = dy [M, N] · w [N, K]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(K), int(N), 1.0f, dy, int(N), w, int(K),
                    a.acc_dx ? 1.0f : 0.0f, a.dx.data<float>(), int(K));
    if (a.dw.defined())  // dw [N, K] = dyᵀ [N, M] · x [M, K]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(N), int(K), int(M), 1.0f, dy, int(N), x, int(K),
                    a.acc_dw ? 1.0f : 0.0f, a.dw.data<float>(), int(K));
    if (a.db.defined()) {
        float* db = a.db.data<float>();
        be.pool().parallel_for((N + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
            for (int64_t c = c0 * kColChunk; c < std::min(N, c1 * kColChunk); ++c) {
                double s = 0;  // a column of up to ~10⁵ rows: sum in double
                for (int64_t m = 0; m < M; ++m) s += dy[m * N + c];
                db[c] = float(s) + (a.acc_db ? db[c] : 0.0f);
            }
        });
    }
}

// ---- activations ------------------------------------------------------------------------------
void unary_backward_cpu(CpuBackend& be, const UnaryBackwardArgs& a) {
    const int64_t n = a.x.numel();
    const float* x = a.x.data<float>();
    const float* dy = a.dy.data<float>();
    float* dx = a.dx.data<float>();
    const Activation act = a.act;
    be.pool().parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            const float v = x[i];
            float d = 0;
            switch (act) {
                case Activation::GeluTanh: {  // 0.5·x·(1 + tanh(c·(x + 0.044715·x³)))
                    const float c = 0.7978845608028654f;
                    const float t = std::tanh(c * (v + 0.044715f * v * v * v));
                    d = 0.5f * (1 + t) + 0.5f * v * (1 - t * t) * c * (1 + 3 * 0.044715f * v * v);
                    break;
                }
                case Activation::GeluErf:  // Φ(x) + x·φ(x)
                    d = 0.5f * (1 + std::erf(v * 0.7071067811865476f)) + v * 0.3989422804014327f * std::exp(-0.5f * v * v);
                    break;
                case Activation::Silu: {  // s·(1 + x·(1 − s))
                    const float s = 1.0f / (1.0f + std::exp(-v));
                    d = s * (1 + v * (1 - s));
                    break;
                }
                default:
                    break;
            }
            dx[i] = dy[i] * d;
        }
    });
}

// ---- attention --------------------------------------------------------------------------------
constexpr int64_t kQTile = 128;

struct AttnGeom {
    int64_t B, Lq, H, D, Lk, Hk, Dv, group;
    float scale;
    // Key range [lo, hi) of query row i of sample b (k_lens, causal, window; docs in ops.h).
    void range(const AttentionParams& p, int64_t b, int64_t i, int64_t* lo, int64_t* hi) const {
        const int64_t lk = p.k_lens.empty() ? Lk : std::clamp<int64_t>(p.k_lens[size_t(b)], 0, Lk);
        const int64_t c = i + lk - Lq;
        int64_t l = 0, r = lk;
        if (p.causal) r = std::min(r, c + 1);
        if (p.window_left >= 0) l = std::max<int64_t>(l, c - p.window_left);
        if (p.window_right >= 0) r = std::min<int64_t>(r, c + p.window_right + 1);
        *lo = l;
        *hi = std::max(l, r);
    }
};

AttnGeom geom(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p) {
    AttnGeom g{q.size(0), q.size(1), q.size(2), q.size(3), k.size(1), k.size(2), v.size(3), 0, 0};
    g.group = g.H / g.Hk;
    g.scale = (p.softmax_scale > 0 ? p.softmax_scale : 1.0f / std::sqrt(float(g.D))) * p.q_scale;
    return g;
}

// Forward with lse, exact exp (the backward rebuilds P = exp(S − lse) from it). One task per
// (sample, head), query tiles of kQTile rows against every key at once.
void attention_lse_cpu(CpuBackend& be, const AttentionLseArgs& a) {
    const AttentionParams& p = *a.p;
    const AttnGeom g = geom(a.q, a.k, a.v, p);
    const float ninf = -std::numeric_limits<float>::infinity();
    BlasSingleThread single;
    be.pool().parallel_for(g.B * g.H, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> S(size_t(kQTile * std::max<int64_t>(g.Lk, 1)));
        for (int64_t task = t0; task < t1; ++task) {
            const int64_t b = task / g.H, h = task % g.H, hk = h / g.group;
            const float* qb = a.q.data<float>() + (b * g.Lq * g.H + h) * g.D;
            const float* kb = a.k.data<float>() + (b * g.Lk * g.Hk + hk) * g.D;
            const float* vb = a.v.data<float>() + (b * g.Lk * g.Hk + hk) * g.Dv;
            float* ob = a.out.data<float>() + (b * g.Lq * g.H + h) * g.Dv;
            float* lse = a.lse.data<float>() + (b * g.H + h) * g.Lq;
            for (int64_t q0 = 0; q0 < g.Lq; q0 += kQTile) {
                const int64_t qn = std::min(kQTile, g.Lq - q0);
                if (g.Lk > 0)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(g.Lk), int(g.D), g.scale,
                                qb + q0 * g.H * g.D, int(g.H * g.D), kb, int(g.Hk * g.D), 0.0f, S.data(), int(g.Lk));
                for (int64_t i = 0; i < qn; ++i) {
                    int64_t lo, hi;
                    g.range(p, b, q0 + i, &lo, &hi);
                    float* s = S.data() + i * g.Lk;
                    float* o = ob + (q0 + i) * g.H * g.Dv;
                    std::fill(o, o + g.Dv, 0.0f);
                    if (lo >= hi) {
                        lse[q0 + i] = ninf;
                        continue;
                    }
                    float m = ninf;
                    for (int64_t j = lo; j < hi; ++j) m = std::max(m, s[j]);
                    double sum = 0;
                    for (int64_t j = lo; j < hi; ++j) {
                        s[j] = std::exp(s[j] - m);
                        sum += s[j];
                    }
                    const float inv = float(1.0 / sum);
                    for (int64_t j = lo; j < hi; ++j) {
                        const float pj = s[j] * inv;
                        const float* vr = vb + j * g.Hk * g.Dv;
#pragma omp simd
                        for (int64_t d = 0; d < g.Dv; ++d) o[d] += pj * vr[d];
                    }
                    lse[q0 + i] = m + float(std::log(sum));
                }
            }
        }
    });
}

// FlashAttention-2's backward: per query row Dᵢ = dOᵢ·Oᵢ, P = exp(S − lse), dV = Pᵀ·dO,
// dP = dO·Vᵀ, dS = P ∘ (dP − D), dQ = scale·dS·K, dK = scale·dSᵀ·Q. One task per (sample, key
// head): the task owns its dK/dV rows and the dQ rows of the query heads that share them.
void attention_backward_cpu(CpuBackend& be, const AttentionBackwardArgs& a) {
    const AttentionParams& p = *a.p;
    const AttnGeom g = geom(a.q, a.k, a.v, p);
    std::fill(a.dk.data<float>(), a.dk.data<float>() + a.dk.numel(), 0.0f);
    std::fill(a.dv.data<float>(), a.dv.data<float>() + a.dv.numel(), 0.0f);
    BlasSingleThread single;
    be.pool().parallel_for(g.B * g.Hk, 1, [&](int64_t t0, int64_t t1) {
        const size_t tile = size_t(kQTile * std::max<int64_t>(g.Lk, 1));
        std::vector<float> P(tile), dP(tile);
        for (int64_t task = t0; task < t1; ++task) {
            const int64_t b = task / g.Hk, hk = task % g.Hk;
            const float* kb = a.k.data<float>() + (b * g.Lk * g.Hk + hk) * g.D;
            const float* vb = a.v.data<float>() + (b * g.Lk * g.Hk + hk) * g.Dv;
            float* dkb = a.dk.data<float>() + (b * g.Lk * g.Hk + hk) * g.D;
            float* dvb = a.dv.data<float>() + (b * g.Lk * g.Hk + hk) * g.Dv;
            for (int64_t h = hk * g.group; h < (hk + 1) * g.group; ++h) {
                const float* qb = a.q.data<float>() + (b * g.Lq * g.H + h) * g.D;
                const float* ob = a.out.data<float>() + (b * g.Lq * g.H + h) * g.Dv;
                const float* dob = a.dout.data<float>() + (b * g.Lq * g.H + h) * g.Dv;
                float* dqb = a.dq.data<float>() + (b * g.Lq * g.H + h) * g.D;
                const float* lse = a.lse.data<float>() + (b * g.H + h) * g.Lq;
                for (int64_t q0 = 0; q0 < g.Lq; q0 += kQTile) {
                    const int64_t qn = std::min(kQTile, g.Lq - q0);
                    const int64_t ldq = g.H * g.D, ldo = g.H * g.Dv, ldk = g.Hk * g.D, ldv = g.Hk * g.Dv;
                    if (g.Lk == 0) {
                        for (int64_t i = 0; i < qn; ++i) std::fill(dqb + (q0 + i) * ldq, dqb + (q0 + i) * ldq + g.D, 0.0f);
                        continue;
                    }
                    // P = exp(scale·Q·Kᵀ − lse) inside each row's key range, 0 outside
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(g.Lk), int(g.D), g.scale,
                                qb + q0 * ldq, int(ldq), kb, int(ldk), 0.0f, P.data(), int(g.Lk));
                    // dP = dO·Vᵀ
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(g.Lk), int(g.Dv), 1.0f,
                                dob + q0 * ldo, int(ldo), vb, int(ldv), 0.0f, dP.data(), int(g.Lk));
                    for (int64_t i = 0; i < qn; ++i) {
                        int64_t lo, hi;
                        g.range(p, b, q0 + i, &lo, &hi);
                        float* pr = P.data() + i * g.Lk;
                        float* dpr = dP.data() + i * g.Lk;
                        const float* orow = ob + (q0 + i) * ldo;
                        const float* dorow = dob + (q0 + i) * ldo;
                        float Di = 0;
                        for (int64_t d = 0; d < g.Dv; ++d) Di += orow[d] * dorow[d];
                        const float l = lse[q0 + i];
                        for (int64_t j = 0; j < g.Lk; ++j) {
                            const bool in = j >= lo && j < hi;
                            const float pj = in ? std::exp(pr[j] - l) : 0.0f;
                            pr[j] = pj;
                            dpr[j] = pj * (dpr[j] - Di);  // dS
                        }
                    }
                    // dV [Lk, Dv] += Pᵀ·dO
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(g.Lk), int(g.Dv), int(qn), 1.0f, P.data(),
                                int(g.Lk), dob + q0 * ldo, int(ldo), 1.0f, dvb, int(ldv));
                    // dQ [qn, D] = scale·dS·K
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(qn), int(g.D), int(g.Lk), g.scale,
                                dP.data(), int(g.Lk), kb, int(ldk), 0.0f, dqb + q0 * ldq, int(ldq));
                    // dK [Lk, D] += scale·dSᵀ·Q
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(g.Lk), int(g.D), int(qn), g.scale,
                                dP.data(), int(g.Lk), qb + q0 * ldq, int(ldq), 1.0f, dkb, int(ldk));
                }
            }
        }
    });
}

// ---- norms ------------------------------------------------------------------------------------
struct RowStats {
    std::vector<float> mean, rstd;
};

RowStats layer_stats(CpuBackend& be, const float* x, int64_t rows, int64_t D, float eps) {
    RowStats st{std::vector<float>(size_t(rows)), std::vector<float>(size_t(rows))};
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* xr = x + r * D;
            double s = 0, v = 0;
            for (int64_t i = 0; i < D; ++i) s += xr[i];
            const double mean = s / double(D);
            for (int64_t i = 0; i < D; ++i) v += (xr[i] - mean) * (xr[i] - mean);
            st.mean[size_t(r)] = float(mean);
            st.rstd[size_t(r)] = float(1.0 / std::sqrt(v / double(D) + eps));
        }
    });
    return st;
}

// dx of a layer norm row whose normalised output x̂ got the gradient g (after any affine/modulation):
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
void layer_dx_row(const float* xr, const float* gr, float mean, float rstd, int64_t D, float* dxr) {
    double sg = 0, sgx = 0;
    for (int64_t i = 0; i < D; ++i) {
        sg += gr[i];
        sgx += double(gr[i]) * double((xr[i] - mean) * rstd);
    }
    const float mg = float(sg / double(D)), mgx = float(sgx / double(D));
    for (int64_t i = 0; i < D; ++i) dxr[i] = rstd * (gr[i] - mg - (xr[i] - mean) * rstd * mgx);
}

void rms_norm_backward_cpu(CpuBackend& be, const RmsNormBackwardArgs& a) {
    const int64_t rows = a.x.size(0), D = a.x.size(1);
    const float* x = a.x.data<float>();
    const float* w = a.w.defined() ? a.w.data<float>() : nullptr;
    const float* dy = a.dy.data<float>();
    float* dx = a.dx.data<float>();
    std::vector<float> rs(static_cast<size_t>(rows));
    // r = rsqrt(mean(x²) + eps), y = x·r·w: dx = r·g − x·r³·mean(g·x) with g = dy·w.
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* xr = x + r * D;
            const float* dyr = dy + r * D;
            double ss = 0, sgx = 0;
            for (int64_t i = 0; i < D; ++i) {
                ss += double(xr[i]) * xr[i];
                sgx += double(dyr[i]) * w[i] * xr[i];
            }
            const double rr = 1.0 / std::sqrt(ss / double(D) + a.eps);
            const float c = float(rr * rr * rr * sgx / double(D));
            rs[size_t(r)] = float(rr);
            float* dxr = dx + r * D;
            for (int64_t i = 0; i < D; ++i) dxr[i] = float(rr) * dyr[i] * w[i] - xr[i] * c;
        }
    });
    if (!a.dw.defined()) return;
    float* dw = a.dw.data<float>();
    be.pool().parallel_for((D + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
        const int64_t lo = c0 * kColChunk, hi = std::min(D, c1 * kColChunk);
        std::vector<double> acc(size_t(hi - lo), 0.0);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = lo; i < hi; ++i) acc[size_t(i - lo)] += double(dy[r * D + i]) * x[r * D + i] * rs[size_t(r)];
        for (int64_t i = lo; i < hi; ++i) dw[i] = float(acc[size_t(i - lo)]);
    });
}

void layer_norm_backward_cpu(CpuBackend& be, const LayerNormBackwardArgs& a) {
    const int64_t rows = a.x.size(0), D = a.x.size(1);
    const float* x = a.x.data<float>();
    const float* dy = a.dy.data<float>();
    const float* w = a.w ? a.w->data<float>() : nullptr;
    float* dx = a.dx.data<float>();
    const RowStats st = layer_stats(be, x, rows, D, a.eps);
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        std::vector<float> g(static_cast<size_t>(D));
        for (int64_t r = r0; r < r1; ++r) {
            for (int64_t i = 0; i < D; ++i) g[size_t(i)] = dy[r * D + i] * (w ? w[i] : 1.0f);
            layer_dx_row(x + r * D, g.data(), st.mean[size_t(r)], st.rstd[size_t(r)], D, dx + r * D);
        }
    });
    if (!a.dw.defined() && !a.db.defined()) return;
    float* dw = a.dw.defined() ? a.dw.data<float>() : nullptr;
    float* db = a.db.defined() ? a.db.data<float>() : nullptr;
    be.pool().parallel_for((D + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
        const int64_t lo = c0 * kColChunk, hi = std::min(D, c1 * kColChunk);
        std::vector<double> aw(size_t(hi - lo), 0.0), ab(size_t(hi - lo), 0.0);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = lo; i < hi; ++i) {
                const float d = dy[r * D + i];
                aw[size_t(i - lo)] += double(d) * (x[r * D + i] - st.mean[size_t(r)]) * st.rstd[size_t(r)];
                ab[size_t(i - lo)] += d;
            }
        for (int64_t i = lo; i < hi; ++i) {
            if (dw) dw[i] = float(aw[size_t(i - lo)]);
            if (db) db[i] = float(ab[size_t(i - lo)]);
        }
    });
}

// y = x̂·(1 + scale[g]) + shift[g] over groups of S rows: dx by the layer-norm rule with
// g = dy·(1 + scale); dshift[g] = Σ_s dy, dscale[g] = Σ_s dy·x̂.
void norm_modulate_backward_cpu(CpuBackend& be, const NormModulateBackwardArgs& a) {
    const int64_t G = a.x.size(0), S = a.x.size(1), D = a.x.size(2), rows = G * S;
    const float* x = a.x.data<float>();
    const float* dy = a.dy.data<float>();
    const float* sc = a.scale.data<float>();
    const int64_t ss = a.scale.stride(0);
    float* dx = a.dx.data<float>();
    const RowStats st = layer_stats(be, x, rows, D, a.eps);
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        std::vector<float> g(static_cast<size_t>(D));
        for (int64_t r = r0; r < r1; ++r) {
            const float* s = sc + (r / S) * ss;
            for (int64_t i = 0; i < D; ++i) g[size_t(i)] = dy[r * D + i] * (1.0f + s[i]);
            layer_dx_row(x + r * D, g.data(), st.mean[size_t(r)], st.rstd[size_t(r)], D, dx + r * D);
        }
    });
    float* dshift = a.dshift.data<float>();
    float* dscale = a.dscale.data<float>();
    const int64_t chunks = (D + kColChunk - 1) / kColChunk;
    be.pool().parallel_for(G * chunks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t gi = t / chunks, lo = (t % chunks) * kColChunk, hi = std::min(D, lo + kColChunk);
            std::vector<double> ash(size_t(hi - lo), 0.0), asc(size_t(hi - lo), 0.0);
            for (int64_t r = gi * S; r < (gi + 1) * S; ++r)
                for (int64_t i = lo; i < hi; ++i) {
                    const float d = dy[r * D + i];
                    ash[size_t(i - lo)] += d;
                    asc[size_t(i - lo)] += double(d) * (x[r * D + i] - st.mean[size_t(r)]) * st.rstd[size_t(r)];
                }
            for (int64_t i = lo; i < hi; ++i) {
                dshift[gi * D + i] = float(ash[size_t(i - lo)]);
                dscale[gi * D + i] = float(asc[size_t(i - lo)]);
            }
        }
    });
}

void gated_residual_backward_cpu(CpuBackend& be, const GatedResidualBackwardArgs& a) {
    const int64_t G = a.y.size(0), S = a.y.size(1), D = a.y.size(2);
    const float* y = a.y.data<float>();
    const float* gate = a.gate.data<float>();
    const int64_t gs = a.gate.stride(0);
    const float* dout = a.dout.data<float>();
    float* dy = a.dy.data<float>();
    be.pool().parallel_for(G * S, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* gr = gate + (r / S) * gs;
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) dy[r * D + i] = dout[r * D + i] * gr[i];
        }
    });
    float* dgate = a.dgate.data<float>();
    const int64_t chunks = (D + kColChunk - 1) / kColChunk;
    be.pool().parallel_for(G * chunks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t gi = t / chunks, lo = (t % chunks) * kColChunk, hi = std::min(D, lo + kColChunk);
            std::vector<double> acc(size_t(hi - lo), 0.0);
            for (int64_t r = gi * S; r < (gi + 1) * S; ++r)
                for (int64_t i = lo; i < hi; ++i) acc[size_t(i - lo)] += double(dout[r * D + i]) * y[r * D + i];
            for (int64_t i = lo; i < hi; ++i) dgate[gi * D + i] = float(acc[size_t(i - lo)]);
        }
    });
}

// ---- rope, patches, reductions ----------------------------------------------------------------
// The forward's rotation (cpu_rope.cpp) by −angle: (re, im) ↦ (re·c + im·s, −re·s + im·c).
void rope_backward_cpu(CpuBackend& be, const RopeBackwardArgs& a) {
    const int64_t B = a.dy.size(0), L = a.dy.size(1), H = a.dy.size(2), D = a.dy.size(3);
    const int64_t half = D / 2, hw_pairs = half / 3, f_pairs = half - 2 * hw_pairs;
    const float* tab = a.table.data<float>();
    const float* xs = a.dy.data<float>();
    float* ys = a.dx.data<float>();
    const std::vector<RopeGrid>& grids = *a.grids;
    be.pool().parallel_for(B * L, 4, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / L, l = r % L;
            const RopeGrid& g = grids[size_t(b)];
            const float* xr = xs + r * H * D;
            float* yr = ys + r * H * D;
            if (l >= g.f * g.h * g.w) {
                std::copy(xr, xr + H * D, yr);
                continue;
            }
            const int64_t pf = l / (g.h * g.w) + g.frame_offset, ph = (l / g.w) % g.h, pw = l % g.w;
            for (int64_t k = 0; k < half; ++k) {
                const int64_t pos = k < f_pairs ? pf : (k < f_pairs + hw_pairs ? ph : pw);
                const float c = tab[(pos * half + k) * 2], s = tab[(pos * half + k) * 2 + 1];
                for (int64_t h = 0; h < H; ++h) {
                    const float re = xr[h * D + 2 * k], im = xr[h * D + 2 * k + 1];
                    yr[h * D + 2 * k] = re * c + im * s;
                    yr[h * D + 2 * k + 1] = -re * s + im * c;
                }
            }
        }
    });
}

// patchify is a permutation: its backward puts every feature back where the forward read it.
void patchify_backward_cpu(CpuBackend& be, const PatchifyBackwardArgs& a) {
    const int64_t C = a.dx.size(0), T = a.dx.size(1), H = a.dx.size(2), W = a.dx.size(3);
    const int pt = a.pt, ph = a.ph, pw = a.pw;
    const int64_t f = T / pt, h = H / ph, w = W / pw, feat = C * pt * ph * pw;
    const float* ys = a.dy.data<float>();
    float* xs = a.dx.data<float>();
    be.pool().parallel_for(f * h, 1, [&](int64_t b, int64_t e) {
        for (int64_t fh = b; fh < e; ++fh) {
            const int64_t fi = fh / h, hi = fh % h;
            for (int64_t wi = 0; wi < w; ++wi) {
                const float* row = ys + ((fi * h + hi) * w + wi) * feat;
                int64_t k = 0;
                for (int64_t c = 0; c < C; ++c)
                    for (int p = 0; p < pt; ++p)
                        for (int q = 0; q < ph; ++q)
                            for (int r = 0; r < pw; ++r)
                                xs[((c * T + fi * pt + p) * H + hi * ph + q) * W + wi * pw + r] = row[k++];
            }
        }
    });
}

void unpatchify_backward_cpu(CpuBackend& be, const UnpatchifyBackwardArgs& a) {
    const int64_t C = a.dy.size(0), f = a.f, h = a.h, w = a.w, L = a.dx.size(0);
    const int pt = a.pt, ph = a.ph, pw = a.pw;
    const int64_t T = f * pt, H = h * ph, W = w * pw, feat = a.dx.size(1);
    const float* ys = a.dy.data<float>();
    float* xs = a.dx.data<float>();
    std::fill(xs + f * h * w * feat, xs + L * feat, 0.0f);  // padding tokens: not in the output
    be.pool().parallel_for(f * h, 1, [&](int64_t b, int64_t e) {
        for (int64_t fh = b; fh < e; ++fh) {
            const int64_t fi = fh / h, hi = fh % h;
            for (int64_t wi = 0; wi < w; ++wi) {
                float* row = xs + ((fi * h + hi) * w + wi) * feat;
                for (int p = 0; p < pt; ++p)
                    for (int q = 0; q < ph; ++q)
                        for (int r = 0; r < pw; ++r)
                            for (int64_t c = 0; c < C; ++c)
                                row[((p * ph + q) * pw + r) * C + c] =
                                    ys[((c * T + fi * pt + p) * H + hi * ph + q) * W + wi * pw + r];
            }
        }
    });
}

void sum_rows_cpu(CpuBackend& be, const SumRowsArgs& a) {
    const int64_t R = a.x.size(0), C = a.x.size(1);
    const float* x = a.x.data<float>();
    float* y = a.y.data<float>();
    be.pool().parallel_for((C + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
        const int64_t lo = c0 * kColChunk, hi = std::min(C, c1 * kColChunk);
        std::vector<double> acc(size_t(hi - lo), 0.0);
        for (int64_t r = 0; r < R; ++r)
            for (int64_t i = lo; i < hi; ++i) acc[size_t(i - lo)] += x[r * C + i];
        for (int64_t i = lo; i < hi; ++i) y[i] = float(acc[size_t(i - lo)]) + (a.accumulate ? y[i] : 0.0f);
    });
}

const std::vector<OpSig> kF32 = {{DType::F32, DType::F32}};
const RegisterKernel<LinearBackwardArgs, CpuBackend> reg_linear_backward(kF32, &linear_backward_cpu);
const RegisterKernel<UnaryBackwardArgs, CpuBackend> reg_unary_backward(kF32, &unary_backward_cpu);
const RegisterKernel<AttentionLseArgs, CpuBackend> reg_attention_lse(kF32, &attention_lse_cpu);
const RegisterKernel<AttentionBackwardArgs, CpuBackend> reg_attention_backward(kF32, &attention_backward_cpu);
const RegisterKernel<RmsNormBackwardArgs, CpuBackend> reg_rms_norm_backward(kF32, &rms_norm_backward_cpu);
const RegisterKernel<LayerNormBackwardArgs, CpuBackend> reg_layer_norm_backward(kF32, &layer_norm_backward_cpu);
const RegisterKernel<NormModulateBackwardArgs, CpuBackend> reg_norm_modulate_backward(kF32, &norm_modulate_backward_cpu);
const RegisterKernel<GatedResidualBackwardArgs, CpuBackend> reg_gated_residual_backward(kF32,
                                                                                        &gated_residual_backward_cpu);
const RegisterKernel<RopeBackwardArgs, CpuBackend> reg_rope_backward(kF32, &rope_backward_cpu);
const RegisterKernel<PatchifyBackwardArgs, CpuBackend> reg_patchify_backward(kF32, &patchify_backward_cpu);
const RegisterKernel<UnpatchifyBackwardArgs, CpuBackend> reg_unpatchify_backward(kF32, &unpatchify_backward_cpu);
const RegisterKernel<SumRowsArgs, CpuBackend> reg_sum_rows(kF32, &sum_rows_cpu);

}  // namespace

}  // namespace wanrt
