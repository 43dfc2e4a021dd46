// CPU kernels of the backward ops (ops/backward.h), f32 and f64 (the float64 path holds the formulas
// to finite differences at ~1e-10 in the op table, where f32 rounding would hide a small error),
// contiguous row-major inputs (the front-ends make them so; modulation rows may have a row stride). Reductions over
// rows (weight gradients, modulation gradients) run as a second pass parallel over columns, so no two threads write one
// value and results do not depend on the thread count.
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

// sgemm / dgemm by the pointers' type (row-major, cblas argument order).
void gemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float* A,
          int lda, const float* B, int ldb, float beta, float* C, int ldc) {
    cblas_sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, double alpha, const double* A,
          int lda, const double* B, int ldb, double beta, double* C, int ldc) {
    cblas_dgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int64_t row_grain(int64_t D) {
    return std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1));
}

// Restores OpenBLAS's thread count when an attention call ends: the parallelism is ours.
struct BlasSingleThread {
    int saved = openblas_get_num_threads();
    BlasSingleThread() { openblas_set_num_threads(1); }
    ~BlasSingleThread() { openblas_set_num_threads(saved); }
};

// ---- linear -----------------------------------------------------------------------------------
template <class T>
void linear_backward_cpu(CpuBackend& be, const LinearBackwardArgs& a) {
    const int64_t M = a.x.size(0), K = a.x.size(1), N = a.dy.size(1);
    const T* x = a.x.data<T>();
    const T* w = a.w.defined() ? a.w.data<T>() : nullptr;
    const T* dy = a.dy.data<T>();
    if (M == 0) {
        if (a.dw.defined() && !a.acc_dw) std::fill(a.dw.data<T>(), a.dw.data<T>() + N * K, T(0.0));
        if (a.db.defined() && !a.acc_db) std::fill(a.db.data<T>(), a.db.data<T>() + N, T(0.0));
        return;
    }
    if (a.dx.defined())  // dx [M, K] = dy [M, N] · w [N, K]
        gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(K), int(N), T(1.0), dy, int(N), w, int(K),
             a.acc_dx ? T(1.0) : T(0.0), a.dx.data<T>(), int(K));
    if (a.dw.defined())  // dw [N, K] = dyᵀ [N, M] · x [M, K]
        gemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(N), int(K), int(M), T(1.0), dy, int(N), x, int(K),
             a.acc_dw ? T(1.0) : T(0.0), a.dw.data<T>(), int(K));
    if (a.db.defined()) {
        T* db = a.db.data<T>();
        be.pool().parallel_for((N + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
            for (int64_t c = c0 * kColChunk; c < std::min(N, c1 * kColChunk); ++c) {
                double s = 0;  // a column of up to ~10⁵ rows: sum in double
                for (int64_t m = 0; m < M; ++m) s += dy[m * N + c];
                db[c] = T(s) + (a.acc_db ? db[c] : T(0.0));
            }
        });
    }
}

// ---- activations ------------------------------------------------------------------------------
template <class T>
void unary_backward_cpu(CpuBackend& be, const UnaryBackwardArgs& a) {
    const int64_t n = a.x.numel();
    const T* x = a.x.data<T>();
    const T* dy = a.dy.data<T>();
    T* dx = a.dx.data<T>();
    const Activation act = a.act;
    be.pool().parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            const T v = x[i];
            T d = 0;
            switch (act) {
                case Activation::GeluTanh: {  // 0.5·x·(1 + tanh(c·(x + 0.044715·x³)))
                    const T c = T(0.7978845608028654);
                    const T t = std::tanh(c * (v + T(0.044715) * v * v * v));
                    d = T(0.5) * (1 + t) + T(0.5) * v * (1 - t * t) * c * (1 + 3 * T(0.044715) * v * v);
                    break;
                }
                case Activation::GeluErf:  // Φ(x) + x·φ(x)
                    d = T(0.5) * (1 + std::erf(v * T(0.7071067811865476))) +
                        v * T(0.3989422804014327) * std::exp(-T(0.5) * v * v);
                    break;
                case Activation::Silu: {  // s·(1 + x·(1 − s))
                    const T s = T(1.0) / (T(1.0) + std::exp(-v));
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
    double scale;  // softmax scale × q_scale
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
    g.scale = (p.softmax_scale > 0 ? double(p.softmax_scale) : 1.0 / std::sqrt(double(g.D))) * double(p.q_scale);
    return g;
}

// Forward with lse, exact exp (the backward rebuilds P = exp(S − lse) from it). One task per
// (sample, head), query tiles of kQTile rows against every key at once.
template <class T>
void attention_lse_cpu(CpuBackend& be, const AttentionLseArgs& a) {
    const AttentionParams& p = *a.p;
    const AttnGeom g = geom(a.q, a.k, a.v, p);
    const T ninf = -std::numeric_limits<T>::infinity();
    BlasSingleThread single;
    be.pool().parallel_for(g.B * g.H, 1, [&](int64_t t0, int64_t t1) {
        std::vector<T> S(size_t(kQTile * std::max<int64_t>(g.Lk, 1)));
        for (int64_t task = t0; task < t1; ++task) {
            const int64_t b = task / g.H, h = task % g.H, hk = h / g.group;
            const T* qb = a.q.data<T>() + (b * g.Lq * g.H + h) * g.D;
            const T* kb = a.k.data<T>() + (b * g.Lk * g.Hk + hk) * g.D;
            const T* vb = a.v.data<T>() + (b * g.Lk * g.Hk + hk) * g.Dv;
            T* ob = a.out.data<T>() + (b * g.Lq * g.H + h) * g.Dv;
            T* lse = a.lse.data<T>() + (b * g.H + h) * g.Lq;
            for (int64_t q0 = 0; q0 < g.Lq; q0 += kQTile) {
                const int64_t qn = std::min(kQTile, g.Lq - q0);
                if (g.Lk > 0)
                    gemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(g.Lk), int(g.D), g.scale,
                         qb + q0 * g.H * g.D, int(g.H * g.D), kb, int(g.Hk * g.D), T(0.0), S.data(), int(g.Lk));
                for (int64_t i = 0; i < qn; ++i) {
                    int64_t lo, hi;
                    g.range(p, b, q0 + i, &lo, &hi);
                    T* s = S.data() + i * g.Lk;
                    T* o = ob + (q0 + i) * g.H * g.Dv;
                    std::fill(o, o + g.Dv, T(0.0));
                    if (lo >= hi) {
                        lse[q0 + i] = ninf;
                        continue;
                    }
                    T m = ninf;
                    for (int64_t j = lo; j < hi; ++j) m = std::max(m, s[j]);
                    double sum = 0;
                    for (int64_t j = lo; j < hi; ++j) {
                        s[j] = std::exp(s[j] - m);
                        sum += s[j];
                    }
                    const T inv = T(1.0 / sum);
                    for (int64_t j = lo; j < hi; ++j) {
                        const T pj = s[j] * inv;
                        const T* vr = vb + j * g.Hk * g.Dv;
#pragma omp simd
                        for (int64_t d = 0; d < g.Dv; ++d) o[d] += pj * vr[d];
                    }
                    lse[q0 + i] = m + T(std::log(sum));
                }
            }
        }
    });
}

// FlashAttention-2's backward: per query row Dᵢ = dOᵢ·Oᵢ, P = exp(S − lse), dV = Pᵀ·dO,
// dP = dO·Vᵀ, dS = P ∘ (dP − D), dQ = scale·dS·K, dK = scale·dSᵀ·Q. One task per (sample, key
// head): the task owns its dK/dV rows and the dQ rows of the query heads that share them.
template <class T>
void attention_backward_cpu(CpuBackend& be, const AttentionBackwardArgs& a) {
    const AttentionParams& p = *a.p;
    const AttnGeom g = geom(a.q, a.k, a.v, p);
    std::fill(a.dk.data<T>(), a.dk.data<T>() + a.dk.numel(), T(0.0));
    std::fill(a.dv.data<T>(), a.dv.data<T>() + a.dv.numel(), T(0.0));
    BlasSingleThread single;
    be.pool().parallel_for(g.B * g.Hk, 1, [&](int64_t t0, int64_t t1) {
        const size_t tile = size_t(kQTile * std::max<int64_t>(g.Lk, 1));
        std::vector<T> P(tile), dP(tile);
        for (int64_t task = t0; task < t1; ++task) {
            const int64_t b = task / g.Hk, hk = task % g.Hk;
            const T* kb = a.k.data<T>() + (b * g.Lk * g.Hk + hk) * g.D;
            const T* vb = a.v.data<T>() + (b * g.Lk * g.Hk + hk) * g.Dv;
            T* dkb = a.dk.data<T>() + (b * g.Lk * g.Hk + hk) * g.D;
            T* dvb = a.dv.data<T>() + (b * g.Lk * g.Hk + hk) * g.Dv;
            for (int64_t h = hk * g.group; h < (hk + 1) * g.group; ++h) {
                const T* qb = a.q.data<T>() + (b * g.Lq * g.H + h) * g.D;
                const T* ob = a.out.data<T>() + (b * g.Lq * g.H + h) * g.Dv;
                const T* dob = a.dout.data<T>() + (b * g.Lq * g.H + h) * g.Dv;
                T* dqb = a.dq.data<T>() + (b * g.Lq * g.H + h) * g.D;
                const T* lse = a.lse.data<T>() + (b * g.H + h) * g.Lq;
                for (int64_t q0 = 0; q0 < g.Lq; q0 += kQTile) {
                    const int64_t qn = std::min(kQTile, g.Lq - q0);
                    const int64_t ldq = g.H * g.D, ldo = g.H * g.Dv, ldk = g.Hk * g.D, ldv = g.Hk * g.Dv;
                    if (g.Lk == 0) {
                        for (int64_t i = 0; i < qn; ++i)
                            std::fill(dqb + (q0 + i) * ldq, dqb + (q0 + i) * ldq + g.D, T(0.0));
                        continue;
                    }
                    // P = exp(scale·Q·Kᵀ − lse) inside each row's key range, 0 outside
                    gemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(g.Lk), int(g.D), g.scale, qb + q0 * ldq,
                         int(ldq), kb, int(ldk), T(0.0), P.data(), int(g.Lk));
                    // dP = dO·Vᵀ
                    gemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(g.Lk), int(g.Dv), T(1.0), dob + q0 * ldo,
                         int(ldo), vb, int(ldv), T(0.0), dP.data(), int(g.Lk));
                    for (int64_t i = 0; i < qn; ++i) {
                        int64_t lo, hi;
                        g.range(p, b, q0 + i, &lo, &hi);
                        T* pr = P.data() + i * g.Lk;
                        T* dpr = dP.data() + i * g.Lk;
                        const T* orow = ob + (q0 + i) * ldo;
                        const T* dorow = dob + (q0 + i) * ldo;
                        T Di = 0;
                        for (int64_t d = 0; d < g.Dv; ++d) Di += orow[d] * dorow[d];
                        const T l = lse[q0 + i];
                        for (int64_t j = 0; j < g.Lk; ++j) {
                            const bool in = j >= lo && j < hi;
                            const T pj = in ? std::exp(pr[j] - l) : T(0.0);
                            pr[j] = pj;
                            dpr[j] = pj * (dpr[j] - Di);  // dS
                        }
                    }
                    // dV [Lk, Dv] += Pᵀ·dO
                    gemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(g.Lk), int(g.Dv), int(qn), T(1.0), P.data(),
                         int(g.Lk), dob + q0 * ldo, int(ldo), T(1.0), dvb, int(ldv));
                    // dQ [qn, D] = scale·dS·K
                    gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(qn), int(g.D), int(g.Lk), g.scale, dP.data(),
                         int(g.Lk), kb, int(ldk), T(0.0), dqb + q0 * ldq, int(ldq));
                    // dK [Lk, D] += scale·dSᵀ·Q
                    gemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(g.Lk), int(g.D), int(qn), g.scale, dP.data(),
                         int(g.Lk), qb + q0 * ldq, int(ldq), T(1.0), dkb, int(ldk));
                }
            }
        }
    });
}

// ---- norms ------------------------------------------------------------------------------------
template <class T>
struct RowStats {
    std::vector<T> mean, rstd;
};

template <class T>
RowStats<T> layer_stats(CpuBackend& be, const T* x, int64_t rows, int64_t D, double eps) {
    RowStats<T> st{std::vector<T>(size_t(rows)), std::vector<T>(size_t(rows))};
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const T* xr = x + r * D;
            double s = 0, v = 0;
            for (int64_t i = 0; i < D; ++i) s += xr[i];
            const double mean = s / double(D);
            for (int64_t i = 0; i < D; ++i) v += (xr[i] - mean) * (xr[i] - mean);
            st.mean[size_t(r)] = T(mean);
            st.rstd[size_t(r)] = T(1.0 / std::sqrt(v / double(D) + eps));
        }
    });
    return st;
}

// dx of a layer norm row whose normalised output x̂ got the gradient g (after any affine/modulation):
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
template <class T>
void layer_dx_row(const T* xr, const T* gr, T mean, T rstd, int64_t D, T* dxr) {
    double sg = 0, sgx = 0;
    for (int64_t i = 0; i < D; ++i) {
        sg += gr[i];
        sgx += double(gr[i]) * double((xr[i] - mean) * rstd);
    }
    const T mg = T(sg / double(D)), mgx = T(sgx / double(D));
    for (int64_t i = 0; i < D; ++i) dxr[i] = rstd * (gr[i] - mg - (xr[i] - mean) * rstd * mgx);
}

template <class T>
void rms_norm_backward_cpu(CpuBackend& be, const RmsNormBackwardArgs& a) {
    const int64_t rows = a.x.size(0), D = a.x.size(1);
    const T* x = a.x.data<T>();
    const T* w = a.w.defined() ? a.w.data<T>() : nullptr;
    const T* dy = a.dy.data<T>();
    T* dx = a.dx.data<T>();
    std::vector<T> rs(static_cast<size_t>(rows));
    // r = rsqrt(mean(x²) + eps), y = x·r·w: dx = r·g − x·r³·mean(g·x) with g = dy·w.
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const T* xr = x + r * D;
            const T* dyr = dy + r * D;
            double ss = 0, sgx = 0;
            for (int64_t i = 0; i < D; ++i) {
                ss += double(xr[i]) * xr[i];
                sgx += double(dyr[i]) * w[i] * xr[i];
            }
            const double rr = 1.0 / std::sqrt(ss / double(D) + a.eps);
            const T c = T(rr * rr * rr * sgx / double(D));
            rs[size_t(r)] = T(rr);
            T* dxr = dx + r * D;
            for (int64_t i = 0; i < D; ++i) dxr[i] = T(rr) * dyr[i] * w[i] - xr[i] * c;
        }
    });
    if (!a.dw.defined()) return;
    T* dw = a.dw.data<T>();
    be.pool().parallel_for((D + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
        const int64_t lo = c0 * kColChunk, hi = std::min(D, c1 * kColChunk);
        std::vector<double> acc(size_t(hi - lo), 0.0);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = lo; i < hi; ++i)
                acc[size_t(i - lo)] += double(dy[r * D + i]) * x[r * D + i] * rs[size_t(r)];
        for (int64_t i = lo; i < hi; ++i) dw[i] = T(acc[size_t(i - lo)]);
    });
}

template <class T>
void layer_norm_backward_cpu(CpuBackend& be, const LayerNormBackwardArgs& a) {
    const int64_t rows = a.x.size(0), D = a.x.size(1);
    const T* x = a.x.data<T>();
    const T* dy = a.dy.data<T>();
    const T* w = a.w ? a.w->data<T>() : nullptr;
    T* dx = a.dx.data<T>();
    const RowStats<T> st = layer_stats<T>(be, x, rows, D, a.eps);
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        std::vector<T> g(static_cast<size_t>(D));
        for (int64_t r = r0; r < r1; ++r) {
            for (int64_t i = 0; i < D; ++i) g[size_t(i)] = dy[r * D + i] * (w ? w[i] : T(1.0));
            layer_dx_row(x + r * D, g.data(), st.mean[size_t(r)], st.rstd[size_t(r)], D, dx + r * D);
        }
    });
    if (!a.dw.defined() && !a.db.defined()) return;
    T* dw = a.dw.defined() ? a.dw.data<T>() : nullptr;
    T* db = a.db.defined() ? a.db.data<T>() : nullptr;
    be.pool().parallel_for((D + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
        const int64_t lo = c0 * kColChunk, hi = std::min(D, c1 * kColChunk);
        std::vector<double> aw(size_t(hi - lo), 0.0), ab(size_t(hi - lo), 0.0);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = lo; i < hi; ++i) {
                const T d = dy[r * D + i];
                aw[size_t(i - lo)] += double(d) * (x[r * D + i] - st.mean[size_t(r)]) * st.rstd[size_t(r)];
                ab[size_t(i - lo)] += d;
            }
        for (int64_t i = lo; i < hi; ++i) {
            if (dw) dw[i] = T(aw[size_t(i - lo)]);
            if (db) db[i] = T(ab[size_t(i - lo)]);
        }
    });
}

// y = x̂·(1 + scale[g]) + shift[g] over groups of S rows: dx by the layer-norm rule with
// g = dy·(1 + scale); dshift[g] = Σ_s dy, dscale[g] = Σ_s dy·x̂.
template <class T>
void norm_modulate_backward_cpu(CpuBackend& be, const NormModulateBackwardArgs& a) {
    const int64_t G = a.x.size(0), S = a.x.size(1), D = a.x.size(2), rows = G * S;
    const T* x = a.x.data<T>();
    const T* dy = a.dy.data<T>();
    const T* sc = a.scale.data<T>();
    const int64_t ss = a.scale.stride(0);
    T* dx = a.dx.data<T>();
    const RowStats<T> st = layer_stats<T>(be, x, rows, D, a.eps);
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        std::vector<T> g(static_cast<size_t>(D));
        for (int64_t r = r0; r < r1; ++r) {
            const T* s = sc + (r / S) * ss;
            for (int64_t i = 0; i < D; ++i) g[size_t(i)] = dy[r * D + i] * (T(1.0) + s[i]);
            layer_dx_row(x + r * D, g.data(), st.mean[size_t(r)], st.rstd[size_t(r)], D, dx + r * D);
        }
    });
    T* dshift = a.dshift.data<T>();
    T* dscale = a.dscale.data<T>();
    const int64_t chunks = (D + kColChunk - 1) / kColChunk;
    be.pool().parallel_for(G * chunks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t gi = t / chunks, lo = (t % chunks) * kColChunk, hi = std::min(D, lo + kColChunk);
            std::vector<double> ash(size_t(hi - lo), 0.0), asc(size_t(hi - lo), 0.0);
            for (int64_t r = gi * S; r < (gi + 1) * S; ++r)
                for (int64_t i = lo; i < hi; ++i) {
                    const T d = dy[r * D + i];
                    ash[size_t(i - lo)] += d;
                    asc[size_t(i - lo)] += double(d) * (x[r * D + i] - st.mean[size_t(r)]) * st.rstd[size_t(r)];
                }
            for (int64_t i = lo; i < hi; ++i) {
                dshift[gi * D + i] = T(ash[size_t(i - lo)]);
                dscale[gi * D + i] = T(asc[size_t(i - lo)]);
            }
        }
    });
}

template <class T>
void gated_residual_backward_cpu(CpuBackend& be, const GatedResidualBackwardArgs& a) {
    const int64_t G = a.y.size(0), S = a.y.size(1), D = a.y.size(2);
    const T* y = a.y.data<T>();
    const T* gate = a.gate.data<T>();
    const int64_t gs = a.gate.stride(0);
    const T* dout = a.dout.data<T>();
    T* dy = a.dy.data<T>();
    be.pool().parallel_for(G * S, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const T* gr = gate + (r / S) * gs;
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) dy[r * D + i] = dout[r * D + i] * gr[i];
        }
    });
    T* dgate = a.dgate.data<T>();
    const int64_t chunks = (D + kColChunk - 1) / kColChunk;
    be.pool().parallel_for(G * chunks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t gi = t / chunks, lo = (t % chunks) * kColChunk, hi = std::min(D, lo + kColChunk);
            std::vector<double> acc(size_t(hi - lo), 0.0);
            for (int64_t r = gi * S; r < (gi + 1) * S; ++r)
                for (int64_t i = lo; i < hi; ++i) acc[size_t(i - lo)] += double(dout[r * D + i]) * y[r * D + i];
            for (int64_t i = lo; i < hi; ++i) dgate[gi * D + i] = T(acc[size_t(i - lo)]);
        }
    });
}

// ---- rope, patches, reductions ----------------------------------------------------------------
// The forward's rotation (cpu_rope.cpp) by −angle: (re, im) ↦ (re·c + im·s, −re·s + im·c).
template <class T>
void rope_backward_cpu(CpuBackend& be, const RopeBackwardArgs& a) {
    const int64_t B = a.dy.size(0), L = a.dy.size(1), H = a.dy.size(2), D = a.dy.size(3);
    const int64_t half = D / 2, hw_pairs = half / 3, f_pairs = half - 2 * hw_pairs;
    const T* tab = a.table.data<T>();
    const T* xs = a.dy.data<T>();
    T* ys = a.dx.data<T>();
    const std::vector<RopeGrid>& grids = *a.grids;
    be.pool().parallel_for(B * L, 4, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / L, l = r % L;
            const RopeGrid& g = grids[size_t(b)];
            const T* xr = xs + r * H * D;
            T* yr = ys + r * H * D;
            if (l >= g.f * g.h * g.w) {
                std::copy(xr, xr + H * D, yr);
                continue;
            }
            const int64_t pf = l / (g.h * g.w) + g.frame_offset, ph = (l / g.w) % g.h, pw = l % g.w;
            for (int64_t k = 0; k < half; ++k) {
                const int64_t pos = k < f_pairs ? pf : (k < f_pairs + hw_pairs ? ph : pw);
                const T c = tab[(pos * half + k) * 2], s = tab[(pos * half + k) * 2 + 1];
                for (int64_t h = 0; h < H; ++h) {
                    const T re = xr[h * D + 2 * k], im = xr[h * D + 2 * k + 1];
                    yr[h * D + 2 * k] = re * c + im * s;
                    yr[h * D + 2 * k + 1] = -re * s + im * c;
                }
            }
        }
    });
}

// patchify is a permutation: its backward puts every feature back where the forward read it.
template <class T>
void patchify_backward_cpu(CpuBackend& be, const PatchifyBackwardArgs& a) {
    const int64_t C = a.dx.size(0), Tn = a.dx.size(1), H = a.dx.size(2), W = a.dx.size(3);
    const int pt = a.pt, ph = a.ph, pw = a.pw;
    const int64_t f = Tn / pt, h = H / ph, w = W / pw, feat = C * pt * ph * pw;
    const T* ys = a.dy.data<T>();
    T* xs = a.dx.data<T>();
    be.pool().parallel_for(f * h, 1, [&](int64_t b, int64_t e) {
        for (int64_t fh = b; fh < e; ++fh) {
            const int64_t fi = fh / h, hi = fh % h;
            for (int64_t wi = 0; wi < w; ++wi) {
                const T* row = ys + ((fi * h + hi) * w + wi) * feat;
                int64_t k = 0;
                for (int64_t c = 0; c < C; ++c)
                    for (int p = 0; p < pt; ++p)
                        for (int q = 0; q < ph; ++q)
                            for (int r = 0; r < pw; ++r)
                                xs[((c * Tn + fi * pt + p) * H + hi * ph + q) * W + wi * pw + r] = row[k++];
            }
        }
    });
}

template <class T>
void unpatchify_backward_cpu(CpuBackend& be, const UnpatchifyBackwardArgs& a) {
    const int64_t C = a.dy.size(0), f = a.f, h = a.h, w = a.w, L = a.dx.size(0);
    const int pt = a.pt, ph = a.ph, pw = a.pw;
    const int64_t Tn = f * pt, H = h * ph, W = w * pw, feat = a.dx.size(1);
    const T* ys = a.dy.data<T>();
    T* xs = a.dx.data<T>();
    std::fill(xs + f * h * w * feat, xs + L * feat, T(0.0));  // padding tokens: not in the output
    be.pool().parallel_for(f * h, 1, [&](int64_t b, int64_t e) {
        for (int64_t fh = b; fh < e; ++fh) {
            const int64_t fi = fh / h, hi = fh % h;
            for (int64_t wi = 0; wi < w; ++wi) {
                T* row = xs + ((fi * h + hi) * w + wi) * feat;
                for (int p = 0; p < pt; ++p)
                    for (int q = 0; q < ph; ++q)
                        for (int r = 0; r < pw; ++r)
                            for (int64_t c = 0; c < C; ++c)
                                row[((p * ph + q) * pw + r) * C + c] =
                                    ys[((c * Tn + fi * pt + p) * H + hi * ph + q) * W + wi * pw + r];
            }
        }
    });
}

template <class T>
void sum_rows_cpu(CpuBackend& be, const SumRowsArgs& a) {
    const int64_t R = a.x.size(0), C = a.x.size(1);
    const T* x = a.x.data<T>();
    T* y = a.y.data<T>();
    be.pool().parallel_for((C + kColChunk - 1) / kColChunk, 1, [&](int64_t c0, int64_t c1) {
        const int64_t lo = c0 * kColChunk, hi = std::min(C, c1 * kColChunk);
        std::vector<double> acc(size_t(hi - lo), 0.0);
        for (int64_t r = 0; r < R; ++r)
            for (int64_t i = lo; i < hi; ++i) acc[size_t(i - lo)] += x[r * C + i];
        for (int64_t i = lo; i < hi; ++i) y[i] = T(acc[size_t(i - lo)]) + (a.accumulate ? y[i] : T(0.0));
    });
}

// The f32 and f64 kernels of one op.
template <class Args>
struct RegisterF32F64 {
    RegisterKernel<Args, CpuBackend> f32, f64;
    RegisterF32F64(void (*a)(CpuBackend&, const Args&), void (*b)(CpuBackend&, const Args&))
        : f32({{DType::F32, DType::F32}}, a), f64({{DType::F64, DType::F64}}, b) {}
};
const RegisterF32F64<LinearBackwardArgs> reg_linear_backward(&linear_backward_cpu<float>, &linear_backward_cpu<double>);
const RegisterF32F64<UnaryBackwardArgs> reg_unary_backward(&unary_backward_cpu<float>, &unary_backward_cpu<double>);
const RegisterF32F64<AttentionLseArgs> reg_attention_lse(&attention_lse_cpu<float>, &attention_lse_cpu<double>);
const RegisterF32F64<AttentionBackwardArgs> reg_attention_backward(&attention_backward_cpu<float>,
                                                                   &attention_backward_cpu<double>);
const RegisterF32F64<RmsNormBackwardArgs> reg_rms_norm_backward(&rms_norm_backward_cpu<float>,
                                                                &rms_norm_backward_cpu<double>);
const RegisterF32F64<LayerNormBackwardArgs> reg_layer_norm_backward(&layer_norm_backward_cpu<float>,
                                                                    &layer_norm_backward_cpu<double>);
const RegisterF32F64<NormModulateBackwardArgs> reg_norm_modulate_backward(&norm_modulate_backward_cpu<float>,
                                                                          &norm_modulate_backward_cpu<double>);
const RegisterF32F64<GatedResidualBackwardArgs> reg_gated_residual_backward(&gated_residual_backward_cpu<float>,
                                                                            &gated_residual_backward_cpu<double>);
const RegisterF32F64<RopeBackwardArgs> reg_rope_backward(&rope_backward_cpu<float>, &rope_backward_cpu<double>);
const RegisterF32F64<PatchifyBackwardArgs> reg_patchify_backward(&patchify_backward_cpu<float>,
                                                                 &patchify_backward_cpu<double>);
const RegisterF32F64<UnpatchifyBackwardArgs> reg_unpatchify_backward(&unpatchify_backward_cpu<float>,
                                                                     &unpatchify_backward_cpu<double>);
const RegisterF32F64<SumRowsArgs> reg_sum_rows(&sum_rows_cpu<float>, &sum_rows_cpu<double>);

}  // namespace

}  // namespace wanrt
