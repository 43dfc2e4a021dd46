// VAE op family (conv3d, channel_rms_norm, upsample2x) on the CPU backend against float64 loops:
// causal/asymmetric padding, temporal and spatial strides, odd sizes, patch tiling, strided inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/error.h"
#include "ops/ops.h"

using namespace wanrt;

namespace {

std::shared_ptr<Backend> cpu() {
    static auto be = make_cpu_backend();
    return be;
}

std::vector<float> randn(int64_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(g);
    return v;
}

Tensor upload(const std::vector<float>& v, const Shape& s) {
    return ops::from_host(*cpu(), DType::F32, s, v.data());
}

struct Err {
    double rel, max_abs;
};
Err compare(const std::vector<float>& out, const std::vector<double>& ref) {
    double num = 0, den = 0, mx = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = double(out[i]) - ref[i];
        num += d * d, den += ref[i] * ref[i], mx = std::max(mx, std::fabs(d));
    }
    return {std::sqrt(num / std::max(den, 1e-300)), mx};
}

// y[o, t, h, w] = b[o] + Σ w[o, c, i, j, k] · xpad[c, t·st + i, h·sh + j, w·sw + k]
std::vector<double> conv_ref(const std::vector<float>& x, const Shape& xs, const std::vector<float>& w, const Shape& ws,
                             const std::vector<float>* b, const Conv3dParams& p, Shape* ys) {
    const int64_t C = xs[0], T = xs[1], H = xs[2], W = xs[3], O = ws[0], kt = ws[2], kh = ws[3], kw = ws[4];
    const int64_t To = (T + p.pad_t0 + p.pad_t1 - kt) / p.stride_t + 1,
                  Ho = (H + p.pad_h0 + p.pad_h1 - kh) / p.stride_h + 1,
                  Wo = (W + p.pad_w0 + p.pad_w1 - kw) / p.stride_w + 1;
    *ys = {O, To, Ho, Wo};
    std::vector<double> y(size_t(O * To * Ho * Wo));
    for (int64_t o = 0; o < O; ++o)
        for (int64_t t = 0; t < To; ++t)
            for (int64_t h = 0; h < Ho; ++h)
                for (int64_t q = 0; q < Wo; ++q) {
                    double s = b ? (*b)[o] : 0.0;
                    for (int64_t c = 0; c < C; ++c)
                        for (int64_t i = 0; i < kt; ++i)
                            for (int64_t j = 0; j < kh; ++j)
                                for (int64_t k = 0; k < kw; ++k) {
                                    const int64_t ti = t * p.stride_t + i - p.pad_t0,
                                                  hi = h * p.stride_h + j - p.pad_h0,
                                                  wi = q * p.stride_w + k - p.pad_w0;
                                    if (ti < 0 || ti >= T || hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
                                    s += double(w[(((o * C + c) * kt + i) * kh + j) * kw + k]) *
                                         double(x[((c * T + ti) * H + hi) * W + wi]);
                                }
                    y[((o * To + t) * Ho + h) * Wo + q] = s;
                }
    return y;
}

struct ConvCase {
    const char* name;
    Shape x, w;
    Conv3dParams p;
    bool bias;
};

}  // namespace

TEST(Conv3d, MatchesFloat64Loop) {
    auto P = [](int t0, int t1, int h0, int h1, int w0, int w1, int st, int sh, int sw) {
        Conv3dParams p;
        p.pad_t0 = t0, p.pad_t1 = t1, p.pad_h0 = h0, p.pad_h1 = h1, p.pad_w0 = w0, p.pad_w1 = w1;
        p.stride_t = st, p.stride_h = sh, p.stride_w = sw;
        return p;
    };
    const ConvCase cases[] = {
        {"causal 3x3x3", {5, 3, 7, 9}, {6, 5, 3, 3, 3}, P(2, 0, 1, 1, 1, 1, 1, 1, 1), true},
        {"causal with reduced pad (1 cached frame)", {4, 4, 6, 5}, {3, 4, 3, 3, 3}, P(1, 0, 1, 1, 1, 1, 1, 1, 1), true},
        {"cached, no pad", {3, 5, 5, 6}, {4, 3, 3, 3, 3}, P(0, 0, 1, 1, 1, 1, 1, 1, 1), false},
        {"time conv stride 2", {6, 5, 4, 3}, {6, 6, 3, 1, 1}, P(0, 0, 0, 0, 0, 0, 2, 1, 1), true},
        {"upsample time conv", {4, 3, 5, 5}, {8, 4, 3, 1, 1}, P(2, 0, 0, 0, 0, 0, 1, 1, 1), true},
        {"downsample 3x3 s2 pad (0,1)", {5, 2, 9, 8}, {5, 5, 1, 3, 3}, P(0, 0, 0, 1, 0, 1, 1, 2, 2), true},
        {"frame conv 3x3 pad 1", {7, 2, 11, 13}, {3, 7, 1, 3, 3}, P(0, 0, 1, 1, 1, 1, 1, 1, 1), true},
        {"pointwise", {9, 3, 5, 7}, {4, 9, 1, 1, 1}, P(0, 0, 0, 0, 0, 0, 1, 1, 1), true},
        {"pointwise strided", {3, 3, 5, 7}, {2, 3, 1, 1, 1}, P(0, 0, 0, 0, 0, 0, 1, 2, 3), false},
        {"asymmetric pads", {2, 3, 6, 7}, {3, 2, 2, 3, 2}, P(1, 2, 0, 2, 3, 1, 1, 1, 1), true},
        // ≥ 64 output tiles of 4×4: the Winograd F(4×4, 3×3) path (odd sizes, partial tiles).
        {"winograd causal", {3, 5, 33, 29}, {4, 3, 3, 3, 3}, P(2, 0, 1, 1, 1, 1, 1, 1, 1), true},
        {"winograd one cached frame", {5, 3, 26, 31}, {6, 5, 3, 3, 3}, P(1, 0, 1, 1, 1, 1, 1, 1, 1), true},
        {"winograd asymmetric pads", {2, 3, 30, 27}, {3, 2, 3, 3, 3}, P(1, 2, 0, 2, 3, 1, 1, 1, 1), true},
        {"winograd no pad", {3, 4, 37, 21}, {4, 3, 3, 3, 3}, P(0, 0, 0, 0, 0, 0, 1, 1, 1), false},
        {"winograd time stride 2", {4, 7, 18, 22}, {5, 4, 3, 3, 3}, P(1, 0, 1, 1, 1, 1, 2, 1, 1), true},
        {"winograd frames without taps", {3, 2, 20, 20}, {2, 3, 3, 3, 3}, P(4, 0, 1, 1, 1, 1, 1, 1, 1), true},
        {"winograd per-frame 3x3", {7, 4, 32, 36}, {9, 7, 1, 3, 3}, P(0, 0, 1, 1, 1, 1, 1, 1, 1), true},
        {"im2col patch tiling (K·W large)", {64, 2, 80, 70}, {5, 64, 3, 1, 5}, P(2, 0, 0, 0, 2, 2, 1, 1, 1), true},
    };
    uint32_t seed = 1;
    for (const auto& c : cases) {
        const auto xv = randn(shape_numel(c.x), seed++), wv = randn(shape_numel(c.w), seed++),
                   bv = randn(c.w[0], seed++);
        Tensor b = upload(bv, {c.w[0]});
        Tensor y = ops::conv3d(upload(xv, c.x), upload(wv, c.w), c.bias ? &b : nullptr, c.p);
        Shape ys;
        const auto ref = conv_ref(xv, c.x, wv, c.w, c.bias ? &bv : nullptr, c.p, &ys);
        ASSERT_EQ(y.shape(), ys) << c.name;
        const Err e = compare(ops::to_host_f32(y), ref);
        std::printf("[conv3d] %-40s rel-L2 %.2e  max abs %.2e\n", c.name, e.rel, e.max_abs);
        EXPECT_LT(e.rel, 1e-5) << c.name << " max abs " << e.max_abs;
    }
}

TEST(Conv3d, StridedInputAndTiledLargeFrame) {
    // A permuted (non-contiguous) input: x stored [T, C, H, W], viewed as [C, T, H, W].
    const Shape stored{3, 4, 9, 10};
    const auto xv = randn(shape_numel(stored), 7), wv = randn(5 * 4 * 27, 8);
    Tensor x = upload(xv, stored).permute({1, 0, 2, 3});
    ASSERT_FALSE(x.is_contiguous());
    Conv3dParams p;
    p.pad_t0 = 2, p.pad_h0 = p.pad_h1 = p.pad_w0 = p.pad_w1 = 1;
    Tensor y = ops::conv3d(x, upload(wv, {5, 4, 3, 3, 3}), nullptr, p);
    const auto xc = ops::to_host_f32(ops::contiguous(x));
    Shape ys;
    const auto ref = conv_ref(xc, x.shape(), wv, {5, 4, 3, 3, 3}, nullptr, p, &ys);
    EXPECT_LT(compare(ops::to_host_f32(y), ref).rel, 1e-5);
}

// Causal conv over a whole sequence equals chunked runs where the previous chunk's last two input
// frames are prepended and the front zero padding shrinks accordingly (the VAE's cache rule).
TEST(Conv3d, CausalCacheEqualsWhole) {
    for (const Shape& xs : {Shape{4, 7, 5, 6}, Shape{4, 7, 17, 18}}) {  // im2col and Winograd paths
        const Shape ws{3, 4, 3, 3, 3};
        const auto xv = randn(shape_numel(xs), 11), wv = randn(shape_numel(ws), 12), bv = randn(3, 13);
        Tensor x = upload(xv, xs), w = upload(wv, ws), b = upload(bv, {3});
        Conv3dParams p;
        p.pad_t0 = 2, p.pad_h0 = p.pad_h1 = p.pad_w0 = p.pad_w1 = 1;
        const auto whole = ops::to_host_f32(ops::conv3d(x, w, &b, p));
        std::vector<Tensor> outs;
        Tensor cache;
        const int64_t chunks[] = {1, 1, 4, 1};
        int64_t t = 0;
        for (int64_t n : chunks) {
            Tensor xc = x.slice(1, t, t + n);
            Conv3dParams q = p;
            Tensor in = xc;
            if (cache.defined()) {
                in = ops::concat({cache, xc}, 1);
                q.pad_t0 -= int(cache.size(1));
            }
            outs.push_back(ops::conv3d(in, w, &b, q));
            cache = ops::contiguous(in.slice(1, std::max<int64_t>(0, in.size(1) - 2), in.size(1)));
            t += n;
        }
        const auto chunked = ops::to_host_f32(ops::concat(outs, 1));
        ASSERT_EQ(chunked.size(), whole.size());
        double num = 0, den = 0;
        for (size_t i = 0; i < whole.size(); ++i)
            num += double(chunked[i] - whole[i]) * (chunked[i] - whole[i]), den += double(whole[i]) * whole[i];
        EXPECT_LT(std::sqrt(num / den), 1e-6) << shape_str(xs);
    }
}

TEST(Conv3d, BadShapes) {
    Tensor x = ops::zeros(*cpu(), {4, 3, 5, 5});
    auto expect_msg = [](auto fn, const std::string& part) {
        try {
            fn();
            ADD_FAILURE() << "no error, expected " << part;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
    };
    expect_msg([&] { ops::conv3d(x, ops::zeros(*cpu(), {2, 3, 3, 3, 3}), nullptr, {}); }, "[conv3d]");
    expect_msg([&] { ops::conv3d(x, ops::zeros(*cpu(), {2, 4, 3, 3}), nullptr, {}); }, "[conv3d] weight must be");
    expect_msg([&] { ops::conv3d(x, ops::zeros(*cpu(), {2, 4, 5, 1, 1}), nullptr, {}); }, "smaller than the kernel");
    Tensor b = ops::zeros(*cpu(), {3});
    expect_msg([&] { ops::conv3d(x, ops::zeros(*cpu(), {2, 4, 1, 1, 1}), &b, {}); }, "bias must be [2]");
    Conv3dParams p;
    p.stride_h = 0;
    expect_msg([&] { ops::conv3d(x, ops::zeros(*cpu(), {2, 4, 1, 1, 1}), nullptr, p); }, "strides");
    expect_msg([&] { ops::channel_rms_norm(x, ops::zeros(*cpu(), {3})); }, "[channel_rms_norm]");
    expect_msg([&] { ops::channel_rms_norm(x, ops::zeros(*cpu(), {4}), Activation::GeluTanh); }, "none or silu");
    expect_msg([&] { ops::upsample2x(ops::zeros(*cpu(), {4, 3, 5})); }, "[upsample2x]");
}

TEST(ChannelRmsNorm, MatchesFloat64Loop) {
    for (Shape s : {Shape{5, 3, 7, 9}, Shape{384, 1, 3, 5}, Shape{3, 2, 33, 31}}) {
        const int64_t C = s[0], P = shape_numel(s) / C;
        auto xv = randn(shape_numel(s), uint32_t(C));
        for (int64_t c = 0; c < C; ++c) xv[size_t(c * P)] = 0.0f;  // an all-zero position: eps, output 0
        const auto gv = randn(C, 99);
        const auto y = ops::to_host_f32(ops::channel_rms_norm(upload(xv, s), upload(gv, {C})));
        std::vector<double> ref(xv.size());
        for (int64_t q = 0; q < P; ++q) {
            double ss = 0;
            for (int64_t c = 0; c < C; ++c) ss += double(xv[c * P + q]) * xv[c * P + q];
            const double inv = std::sqrt(double(C)) / std::max(std::sqrt(ss), 1e-12);
            for (int64_t c = 0; c < C; ++c) ref[c * P + q] = xv[c * P + q] * inv * gv[c];
        }
        const Err e = compare(y, ref);
        EXPECT_LT(e.rel, 1e-6) << shape_str(s) << " max abs " << e.max_abs;
        EXPECT_EQ(y[0], 0.0f);
        // fused SiLU: exactly the composition (the same silu function after the same norm)
        const Tensor xt = upload(xv, s), gt = upload(gv, {C});
        EXPECT_EQ(ops::to_host_f32(ops::channel_rms_norm(xt, gt, Activation::Silu)),
                  ops::to_host_f32(ops::silu(ops::channel_rms_norm(xt, gt))))
            << shape_str(s);
    }
}

TEST(Upsample2x, NearestDuplication) {
    const Shape s{3, 2, 5, 7};
    const auto xv = randn(shape_numel(s), 5);
    Tensor x = upload(xv, s);
    const auto y = ops::to_host_f32(ops::upsample2x(x));
    ASSERT_EQ(y.size(), xv.size() * 4);
    for (int64_t ct = 0; ct < 6; ++ct)
        for (int64_t h = 0; h < 10; ++h)
            for (int64_t w = 0; w < 14; ++w) ASSERT_EQ(y[(ct * 10 + h) * 14 + w], xv[(ct * 5 + h / 2) * 7 + w / 2]);
    // Strided input (a slice along W) goes through ops::contiguous.
    const auto ys = ops::to_host_f32(ops::upsample2x(x.slice(3, 1, 4)));
    EXPECT_EQ(ys[0], xv[1]);
    EXPECT_EQ(ys[5], xv[3]);
}
