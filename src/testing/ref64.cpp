// Float64 loops, one per op, as literal as the contract allows: speed does not matter here, only
// that each line can be checked against ops/ops.h.
#include "testing/ref64.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wanrt::ref64 {

double activation(Activation act, double a) {
    switch (act) {
        case Activation::GeluTanh:
            return 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
        case Activation::GeluErf:
            return 0.5 * a * (1 + std::erf(a / std::sqrt(2.0)));
        case Activation::Silu:
            return a / (1 + std::exp(-a));
        case Activation::Tanh:
            return std::tanh(a);
        case Activation::Relu:
            return a > 0 ? a : 0.0;
        case Activation::None:
            break;
    }
    return a;
}

Vec unary(Activation act, const Vec& x) {
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = activation(act, x[i]);
    return y;
}

Vec binary(BinaryOp op, const Vec& a, const Shape& as, const Vec& b, const Shape& bs, Shape* out_shape) {
    const int nd = int(std::max(as.size(), bs.size()));
    Shape ys(static_cast<size_t>(nd)), ap(size_t(nd), 1), bp(size_t(nd), 1);  // shapes padded on the left with 1s
    for (int i = 0; i < nd; ++i) {
        const int ia = i - (nd - int(as.size())), ib = i - (nd - int(bs.size()));
        if (ia >= 0) ap[size_t(i)] = as[size_t(ia)];
        if (ib >= 0) bp[size_t(i)] = bs[size_t(ib)];
        ys[size_t(i)] = std::max(ap[size_t(i)], bp[size_t(i)]);
    }
    Vec y(size_t(shape_numel(ys)));
    std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
    for (size_t n = 0; n < y.size(); ++n) {
        int64_t ia = 0, ib = 0;
        for (int i = 0; i < nd; ++i) {
            ia = ia * ap[size_t(i)] + (ap[size_t(i)] == 1 ? 0 : idx[size_t(i)]);
            ib = ib * bp[size_t(i)] + (bp[size_t(i)] == 1 ? 0 : idx[size_t(i)]);
        }
        y[n] = op == BinaryOp::Add ? a[size_t(ia)] + b[size_t(ib)] : a[size_t(ia)] * b[size_t(ib)];
        for (int i = nd - 1; i >= 0; --i) {
            if (++idx[size_t(i)] < ys[size_t(i)]) break;
            idx[size_t(i)] = 0;
        }
    }
    *out_shape = ys;
    return y;
}

Vec linear(const Vec& x, const Vec& w, const Vec* bias, Activation act, int64_t M, int64_t N, int64_t K) {
    Vec y(size_t(M * N));
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
            double s = bias ? (*bias)[size_t(n)] : 0.0;
            for (int64_t k = 0; k < K; ++k) s += x[size_t(m * K + k)] * w[size_t(n * K + k)];
            y[size_t(m * N + n)] = activation(act, s);
        }
    return y;
}

Vec attention(const Vec& q, const Vec& k, const Vec& v, int64_t B, int64_t Lq, int64_t Lk, int64_t H, int64_t Hk,
              int64_t d, int64_t dv, const AttentionParams& p, const Vec* rel_bias) {
    Vec o(size_t(B * Lq * H * dv), 0.0);
    const double scale = (p.softmax_scale > 0 ? p.softmax_scale : 1.0 / std::sqrt(double(d))) * p.q_scale;
    Vec s(static_cast<size_t>(Lk));
    for (int64_t b = 0; b < B; ++b) {
        const int64_t kl = p.k_lens.empty() ? Lk : p.k_lens[size_t(b)];
        for (int64_t h = 0; h < H; ++h) {
            const int64_t hk = h / (H / Hk);
            for (int64_t i = 0; i < Lq; ++i) {
                const int64_t c = i + kl - Lq;  // the diagonal aligned bottom-right
                double mx = -INFINITY;
                for (int64_t j = 0; j < Lk; ++j) {
                    const bool seen = j < kl && (!p.causal || j <= c) &&
                                      (p.window_left < 0 || j >= c - p.window_left) &&
                                      (p.window_right < 0 || j <= c + p.window_right);
                    s[size_t(j)] = -INFINITY;
                    if (!seen) continue;
                    double dot = 0;
                    for (int64_t e = 0; e < d; ++e)
                        dot += q[size_t(((b * Lq + i) * H + h) * d + e)] * k[size_t(((b * Lk + j) * Hk + hk) * d + e)];
                    s[size_t(j)] =
                        dot * scale + (rel_bias ? (*rel_bias)[size_t(h * (Lq + Lk - 1) + j - i + Lq - 1)] : 0.0);
                    mx = std::max(mx, s[size_t(j)]);
                }
                if (mx == -INFINITY) continue;  // no visible key: zeros
                double sum = 0;
                for (double& x : s) sum += (x = x == -INFINITY ? 0.0 : std::exp(x - mx));
                for (int64_t j = 0; j < Lk; ++j)
                    for (int64_t e = 0; e < dv; ++e)
                        o[size_t(((b * Lq + i) * H + h) * dv + e)] +=
                            s[size_t(j)] / sum * v[size_t(((b * Lk + j) * Hk + hk) * dv + e)];
            }
        }
    }
    return o;
}

Vec layer_norm(const Vec& x, int64_t D, const Vec* w, const Vec* b, double eps) {
    Vec y(x.size());
    for (size_t r = 0; r < x.size() / size_t(D); ++r) {
        const double* xr = x.data() + r * size_t(D);
        double mean = 0, var = 0;
        for (int64_t i = 0; i < D; ++i) mean += xr[i] / double(D);
        for (int64_t i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean) / double(D);
        for (int64_t i = 0; i < D; ++i)
            y[r * size_t(D) + size_t(i)] =
                (xr[i] - mean) / std::sqrt(var + eps) * (w ? (*w)[size_t(i)] : 1.0) + (b ? (*b)[size_t(i)] : 0.0);
    }
    return y;
}

Vec rms_norm(const Vec& x, int64_t D, const Vec& w, double eps) {
    Vec y(x.size());
    for (size_t r = 0; r < x.size() / size_t(D); ++r) {
        const double* xr = x.data() + r * size_t(D);
        double ms = 0;
        for (int64_t i = 0; i < D; ++i) ms += xr[i] * xr[i] / double(D);
        for (int64_t i = 0; i < D; ++i) y[r * size_t(D) + size_t(i)] = xr[i] / std::sqrt(ms + eps) * w[size_t(i)];
    }
    return y;
}

Vec norm_modulate(const Vec& x, const Vec& shift, const Vec& scale, int64_t B, int64_t L, int64_t D, double eps) {
    Vec y = layer_norm(x, D, nullptr, nullptr, eps);
    for (int64_t r = 0; r < B * L; ++r)
        for (int64_t i = 0; i < D; ++i) {
            const size_t o = size_t(r * D + i), m = size_t((r / L) * D + i);
            y[o] = y[o] * (1 + scale[m]) + shift[m];
        }
    return y;
}

Vec gated_residual(const Vec& x, const Vec& y, const Vec& gate, int64_t B, int64_t L, int64_t D) {
    Vec o(x.size());
    for (int64_t r = 0; r < B * L; ++r)
        for (int64_t i = 0; i < D; ++i)
            o[size_t(r * D + i)] = x[size_t(r * D + i)] + y[size_t(r * D + i)] * gate[size_t((r / L) * D + i)];
    return o;
}

Vec rope(const Vec& x, int64_t B, int64_t L, int64_t H, int64_t d, const std::vector<RopeGrid>& grids,
         const Vec& table) {
    Vec y = x;
    const int64_t half = d / 2, c1 = d / 6, c0 = half - 2 * c1;  // pairs per axis: frame c0, height c1, width c1
    for (int64_t b = 0; b < B; ++b) {
        const RopeGrid& g = grids[size_t(b)];
        for (int64_t l = 0; l < std::min(L, g.f * g.h * g.w); ++l) {  // tokens past f·h·w pass through
            const int64_t pos[3] = {l / (g.h * g.w) + g.frame_offset, (l / g.w) % g.h, l % g.w};
            for (int64_t k = 0; k < half; ++k) {
                const int64_t at = pos[k < c0 ? 0 : k < c0 + c1 ? 1 : 2];
                const double cs = table[size_t((at * half + k) * 2)], sn = table[size_t((at * half + k) * 2 + 1)];
                for (int64_t h = 0; h < H; ++h) {
                    const size_t i = size_t(((b * L + l) * H + h) * d + 2 * k);
                    y[i] = x[i] * cs - x[i + 1] * sn;
                    y[i + 1] = x[i] * sn + x[i + 1] * cs;
                }
            }
        }
    }
    return y;
}

Vec patchify(const Vec& x, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph, int pw) {
    const int64_t f = T / pt, h = H / ph, w = W / pw, F = C * pt * ph * pw;
    Vec y(size_t(f * h * w * F));
    for (int64_t t = 0; t < f; ++t)
        for (int64_t i = 0; i < h; ++i)
            for (int64_t j = 0; j < w; ++j)
                for (int64_t c = 0; c < C; ++c)
                    for (int p = 0; p < pt; ++p)
                        for (int q = 0; q < ph; ++q)
                            for (int r = 0; r < pw; ++r)
                                y[size_t(((t * h + i) * w + j) * F + ((c * pt + p) * ph + q) * pw + r)] =
                                    x[size_t(((c * T + t * pt + p) * H + i * ph + q) * W + j * pw + r)];
    return y;
}

Vec unpatchify(const Vec& x, int64_t C, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw) {
    const int64_t T = f * pt, H = h * ph, W = w * pw, F = C * pt * ph * pw;
    Vec y(size_t(C * T * H * W));
    for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t i = 0; i < H; ++i)
                for (int64_t j = 0; j < W; ++j) {
                    const int64_t tok = ((t / pt) * h + i / ph) * w + j / pw;
                    const int64_t feat = (((t % pt) * ph + i % ph) * pw + j % pw) * C + c;
                    y[size_t(((c * T + t) * H + i) * W + j)] = x[size_t(tok * F + feat)];
                }
    return y;
}

Vec embedding(const Vec& table, int64_t D, const std::vector<int32_t>& ids) {
    Vec y(ids.size() * size_t(D));
    for (size_t n = 0; n < ids.size(); ++n)
        for (int64_t c = 0; c < D; ++c) y[n * size_t(D) + size_t(c)] = table[size_t(ids[n] * D + c)];
    return y;
}

Vec conv3d(const Vec& x, const Shape& xs, const Vec& w, const Shape& ws, const Vec* bias, const Conv3dParams& p,
           Shape* out_shape) {
    const int64_t C = xs[0], T = xs[1], H = xs[2], W = xs[3], O = ws[0], kt = ws[2], kh = ws[3], kw = ws[4];
    const int64_t To = (T + p.pad_t0 + p.pad_t1 - kt) / p.stride_t + 1,
                  Ho = (H + p.pad_h0 + p.pad_h1 - kh) / p.stride_h + 1,
                  Wo = (W + p.pad_w0 + p.pad_w1 - kw) / p.stride_w + 1;
    *out_shape = {O, To, Ho, Wo};
    Vec y(size_t(O * To * Ho * Wo));
    for (int64_t o = 0; o < O; ++o)
        for (int64_t t = 0; t < To; ++t)
            for (int64_t i = 0; i < Ho; ++i)
                for (int64_t j = 0; j < Wo; ++j) {
                    double s = bias ? (*bias)[size_t(o)] : 0.0;
                    for (int64_t c = 0; c < C; ++c)
                        for (int64_t a = 0; a < kt; ++a)
                            for (int64_t q = 0; q < kh; ++q)
                                for (int64_t r = 0; r < kw; ++r) {
                                    const int64_t ti = t * p.stride_t - p.pad_t0 + a,
                                                  hi = i * p.stride_h - p.pad_h0 + q,
                                                  wi = j * p.stride_w - p.pad_w0 + r;
                                    if (ti < 0 || ti >= T || hi < 0 || hi >= H || wi < 0 || wi >= W)
                                        continue;  // zero padding
                                    s += x[size_t(((c * T + ti) * H + hi) * W + wi)] *
                                         w[size_t((((o * C + c) * kt + a) * kh + q) * kw + r)];
                                }
                    y[size_t(((o * To + t) * Ho + i) * Wo + j)] = s;
                }
    return y;
}

Vec channel_rms_norm(const Vec& x, int64_t C, const Vec& gamma, Activation act) {
    const int64_t P = int64_t(x.size()) / C;
    Vec y(x.size());
    for (int64_t q = 0; q < P; ++q) {
        double ss = 0;
        for (int64_t c = 0; c < C; ++c) ss += x[size_t(c * P + q)] * x[size_t(c * P + q)];
        const double inv = std::sqrt(double(C)) / std::max(std::sqrt(ss), 1e-12);
        for (int64_t c = 0; c < C; ++c)
            y[size_t(c * P + q)] = activation(act, x[size_t(c * P + q)] * inv * gamma[size_t(c)]);
    }
    return y;
}

Vec upsample2x(const Vec& x, int64_t C, int64_t T, int64_t H, int64_t W) {
    Vec y(size_t(C * T * 4 * H * W));
    for (int64_t p = 0; p < C * T; ++p)
        for (int64_t i = 0; i < 2 * H; ++i)
            for (int64_t j = 0; j < 2 * W; ++j)
                y[size_t((p * 2 * H + i) * 2 * W + j)] = x[size_t((p * H + i / 2) * W + j / 2)];
    return y;
}

Vec lincomb(const std::vector<const Vec*>& in, const std::vector<double>& coef) {
    Vec y(in[0]->size(), 0.0);
    for (size_t k = 0; k < in.size(); ++k)
        for (size_t i = 0; i < y.size(); ++i) y[i] += coef[k] * (*in[k])[i];
    return y;
}

double round_to(DType t, double v) {
    double out = 0;
    unsigned char buf[8];
    convert_elements(&v, DType::F64, buf, t, 1);
    convert_elements(buf, t, &out, DType::F64, 1);
    return out;
}

namespace {
// Mean over S tokens of W values; torch.cosine_similarity with eps 1e-8.
Vec token_mean(const double* x, int64_t S, int64_t W) {
    Vec m(static_cast<size_t>(W), 0.0);
    for (int64_t t = 0; t < S; ++t)
        for (int64_t i = 0; i < W; ++i) m[size_t(i)] += x[t * W + i] / double(S);
    return m;
}
double cosine(const Vec& a, const Vec& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
    return ab / (std::max(std::sqrt(aa), 1e-8) * std::max(std::sqrt(bb), 1e-8));
}
}  // namespace

std::vector<int32_t> kv_sink_write(const Vec& k_new, const Vec& v_new, Vec& k_cache, Vec& v_cache, int64_t W,
                                   const KvSinkWrite& p, DType cache_dtype) {
    const int64_t S = p.tokens, frame = S * W;
    const Vec mk = token_mean(k_new.data(), S, W), mv = token_mean(v_new.data(), S, W);
    int64_t d = -1;
    double lowest = INFINITY;
    for (int64_t s = 0; s < p.sink; ++s) {
        const double a = (cosine(token_mean(k_cache.data() + s * frame, S, W), mk) +
                          cosine(token_mean(v_cache.data() + s * frame, S, W), mv)) /
                         2;
        if (a < lowest) lowest = a, d = s;  // the first minimum
    }
    if (!(lowest < p.threshold)) d = -1;
    const int64_t slot = p.fixed_slot >= 0    ? p.fixed_slot
                         : d >= 0             ? d
                         : p.queue_front >= 0 ? p.queue_front
                                              : p.ring_slot;
    for (int64_t i = 0; i < frame; ++i) {
        k_cache[size_t(slot * frame + i)] = round_to(cache_dtype, k_new[size_t(i)]);
        v_cache[size_t(slot * frame + i)] = round_to(cache_dtype, v_new[size_t(i)]);
    }
    return {int32_t(d), int32_t(slot)};
}

}  // namespace wanrt::ref64
