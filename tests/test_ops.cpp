// Every CPU op against a plain float64 loop, on awkward shapes (odd sizes, padding rows, multiple
// tiles, non-contiguous inputs). Tolerance: rel-L2 ≤ 1e-5 for f32 compute.
#include "test_util.h"

namespace wanrt::test {

namespace {

std::shared_ptr<Backend> cpu() {
    static auto be = make_cpu_backend(2);
    return be;
}

std::vector<double> host(const Tensor& t) { return to_f64(t); }

// Reference attention in float64 over explicit masks (Wan's flash_attention semantics).
std::vector<double> ref_attention(const std::vector<double>& q, const std::vector<double>& k,
                                  const std::vector<double>& v, int64_t B, int64_t Lq, int64_t Lk, int64_t H,
                                  int64_t Hk, int64_t D, int64_t Dv, const AttentionParams& p,
                                  const std::vector<double>* rel_bias) {
    std::vector<double> out(size_t(B * Lq * H * Dv), 0.0);
    const double scale = (p.softmax_scale > 0 ? p.softmax_scale : 1.0 / std::sqrt(double(D))) * p.q_scale;
    for (int64_t b = 0; b < B; ++b) {
        const int64_t lk = p.k_lens.empty() ? Lk : p.k_lens[b];
        for (int64_t h = 0; h < H; ++h) {
            const int64_t hk = h / (H / Hk);
            for (int64_t i = 0; i < Lq; ++i) {
                const int64_t c = i + lk - Lq;
                std::vector<double> s(size_t(Lk), -INFINITY);
                double mx = -INFINITY;
                for (int64_t j = 0; j < lk; ++j) {
                    if (p.causal && j > c) continue;
                    if (p.window_left >= 0 && j < c - p.window_left) continue;
                    if (p.window_right >= 0 && j > c + p.window_right) continue;
                    double acc = 0;
                    for (int64_t d = 0; d < D; ++d)
                        acc += q[((b * Lq + i) * H + h) * D + d] * k[((b * Lk + j) * Hk + hk) * D + d];
                    acc *= scale;
                    if (rel_bias) acc += (*rel_bias)[h * (Lq + Lk - 1) + (j - i + Lq - 1)];
                    s[j] = acc;
                    mx = std::max(mx, acc);
                }
                if (mx == -INFINITY) continue;  // no visible key: zeros
                double sum = 0;
                for (auto& x : s) {
                    x = x == -INFINITY ? 0 : std::exp(x - mx);
                    sum += x;
                }
                for (int64_t j = 0; j < Lk; ++j)
                    for (int64_t d = 0; d < Dv; ++d)
                        out[((b * Lq + i) * H + h) * Dv + d] += s[j] / sum * v[((b * Lk + j) * Hk + hk) * Dv + d];
            }
        }
    }
    return out;
}

}  // namespace

TEST(Ops, LinearAllWeightDtypes) {
    auto be = cpu();
    for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
        for (int64_t M : {1, 3, 5, 37, 130}) {
            const int64_t K = 67, N = 45;
            Tensor x = randn_tensor(*be, {M, K}, 1 + M);
            auto wv = randn(size_t(N * K), 7, 0.2f);
            std::vector<uint8_t> wraw(dtype_bytes(wt, N * K));
            convert_elements(wv.data(), DType::F32, wraw.data(), wt, N * K);
            std::vector<double> wd(size_t(N * K));  // the values the stored dtype holds
            convert_elements(wraw.data(), wt, wd.data(), DType::F64, N * K);
            Tensor w = ops::from_host(*be, wt, {N, K}, wraw.data());
            Tensor bias = randn_tensor(*be, {N}, 9);
            for (Activation act : {Activation::None, Activation::GeluTanh, Activation::GeluErf, Activation::Silu}) {
                Tensor y = ops::linear(x, w, &bias, act);
                auto xs = host(x), bs = host(bias);
                std::vector<double> ref(size_t(M * N));
                for (int64_t m = 0; m < M; ++m)
                    for (int64_t n = 0; n < N; ++n) {
                        double a = bs[n];
                        for (int64_t k = 0; k < K; ++k) a += xs[m * K + k] * wd[n * K + k];
                        if (act == Activation::GeluTanh)
                            a = 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
                        else if (act == Activation::GeluErf)
                            a = 0.5 * a * (1 + std::erf(a / std::sqrt(2.0)));
                        else if (act == Activation::Silu)
                            a = a / (1 + std::exp(-a));
                        ref[m * N + n] = a;
                    }
                EXPECT_CLOSE(y, ref, 1e-5, cat("linear ", dtype_name(wt), " M=", M, " act=", int(act)));
            }
        }
    }
}

TEST(Ops, LinearNonContiguousInputAndBatchDims) {
    auto be = cpu();
    Tensor xt = randn_tensor(*be, {3, 33, 7}, 3);   // viewed as [3, 7, 33] through a transpose
    Tensor x = xt.transpose(1, 2);
    ASSERT_FALSE(x.is_contiguous());
    Tensor w = randn_tensor(*be, {9, 33}, 4);
    Tensor y = ops::linear(x, w);
    EXPECT_EQ(y.shape(), (Shape{3, 7, 9}));
    auto xs = host(xt), ws = host(w);
    std::vector<double> ref(3 * 7 * 9);
    for (int b = 0; b < 3; ++b)
        for (int i = 0; i < 7; ++i)
            for (int n = 0; n < 9; ++n) {
                double a = 0;
                for (int k = 0; k < 33; ++k) a += xs[(b * 33 + k) * 7 + i] * ws[n * 33 + k];
                ref[(b * 7 + i) * 9 + n] = a;
            }
    EXPECT_CLOSE(y, ref, 1e-5, "linear transposed input");
}

TEST(Ops, AttentionMasksTilesAndLayouts) {
    auto be = cpu();
    struct Case {
        int64_t B, Lq, Lk, H, Hk, D, Dv;
        std::vector<int32_t> k_lens;
        bool causal;
        int wl, wr;
        float q_scale, softmax_scale;
        bool bias;
    };
    std::vector<Case> cases = {
        {2, 9, 11, 3, 3, 16, 16, {11, 6}, false, -1, -1, 1, 0, false},
        {1, 13, 13, 2, 1, 8, 12, {}, true, -1, -1, 1, 0, false},      // GQA, dv ≠ d
        {2, 5, 17, 4, 2, 8, 8, {17, 9}, true, -1, -1, 0.5f, 0.3f, false},
        {1, 21, 21, 2, 2, 6, 6, {}, false, 4, 1, 1, 0, false},        // window
        {1, 7, 7, 3, 3, 4, 4, {}, false, -1, -1, 1, 1.0f, true},      // T5-style bias, no scaling
        {1, 4, 9, 2, 2, 8, 8, {}, true, -1, -1, 1, 0, true},          // bias with Lq ≠ Lk
        {1, 3, 1100, 1, 1, 8, 8, {1037}, false, -1, -1, 1, 0, false}, // several key tiles
        {1, 2100, 5, 1, 1, 4, 4, {}, false, -1, -1, 1, 0, false},     // several query tiles
        {1, 6, 4, 1, 1, 4, 4, {}, true, -1, -1, 1, 0, false},         // causal rows that see no key... (Lq > Lk)
    };
    int idx = 0;
    for (const Case& c : cases) {
        ++idx;
        Tensor q = randn_tensor(*be, {c.B, c.Lq, c.H, c.D}, 10 + idx);
        Tensor k = randn_tensor(*be, {c.B, c.Lk, c.Hk, c.D}, 20 + idx);
        Tensor v = randn_tensor(*be, {c.B, c.Lk, c.Hk, c.Dv}, 30 + idx);
        AttentionParams p;
        p.k_lens = c.k_lens;
        p.causal = c.causal;
        p.window_left = c.wl;
        p.window_right = c.wr;
        p.q_scale = c.q_scale;
        p.softmax_scale = c.softmax_scale;
        std::vector<double> bias;
        if (c.bias) {
            p.rel_bias = randn_tensor(*be, {c.H, c.Lq + c.Lk - 1}, 40 + idx);
            bias = host(p.rel_bias);
        }
        auto ref = ref_attention(host(q), host(k), host(v), c.B, c.Lq, c.Lk, c.H, c.Hk, c.D, c.Dv, p,
                                 c.bias ? &bias : nullptr);
        EXPECT_CLOSE(ops::attention(q, k, v, p), ref, 1e-5, cat("attention case ", idx));
    }
}

TEST(Ops, AttentionNonContiguous) {
    auto be = cpu();
    // q given as [B, H, L, d] storage viewed as [B, L, H, d].
    Tensor qs = randn_tensor(*be, {2, 3, 10, 8}, 1);
    Tensor q = qs.permute({0, 2, 1, 3});
    Tensor k = randn_tensor(*be, {2, 12, 3, 8}, 2), v = randn_tensor(*be, {2, 12, 3, 8}, 3);
    AttentionParams p;
    Tensor y = ops::attention(q, k, v, p);
    auto ref = ref_attention(host(ops::contiguous(q)), host(k), host(v), 2, 10, 12, 3, 3, 8, 8, p, nullptr);
    EXPECT_CLOSE(y, ref, 1e-5, "attention permuted q");
}

TEST(Ops, Norms) {
    auto be = cpu();
    for (int64_t D : {1, 7, 33, 260}) {
        Tensor x = randn_tensor(*be, {3, 5, D}, D, 3.0f);
        Tensor w = randn_tensor(*be, {D}, D + 1), b = randn_tensor(*be, {D}, D + 2);
        auto xs = host(x), ws = host(w), bs = host(b);
        std::vector<double> ln(xs.size()), lnp(xs.size()), rms(xs.size());
        for (int64_t r = 0; r < 15; ++r) {
            double mean = 0, var = 0, sq = 0;
            for (int64_t i = 0; i < D; ++i) mean += xs[r * D + i] / D;
            for (int64_t i = 0; i < D; ++i) {
                var += (xs[r * D + i] - mean) * (xs[r * D + i] - mean) / D;
                sq += xs[r * D + i] * xs[r * D + i] / D;
            }
            for (int64_t i = 0; i < D; ++i) {
                double n = (xs[r * D + i] - mean) / std::sqrt(var + 1e-6);
                lnp[r * D + i] = n;
                ln[r * D + i] = n * ws[i] + bs[i];
                rms[r * D + i] = xs[r * D + i] / std::sqrt(sq + 1e-6) * ws[i];
            }
        }
        if (D > 1) EXPECT_CLOSE(ops::layer_norm(x, &w, &b, 1e-6f), ln, 1e-5, cat("layer_norm affine D=", D));
        if (D > 1) EXPECT_CLOSE(ops::layer_norm(x, nullptr, nullptr, 1e-6f), lnp, 1e-5, cat("layer_norm plain D=", D));
        EXPECT_CLOSE(ops::rms_norm(x, w, 1e-6f), rms, 1e-5, cat("rms_norm D=", D));
        // Non-contiguous input: every other row.
        Tensor big = randn_tensor(*be, {6, D}, 99);
        Tensor view = big.reshape({3, 2, D}).select(1, 0);
        ASSERT_TRUE(D == 1 || !view.is_contiguous());
        auto vs = host(ops::contiguous(view));
        std::vector<double> r2(vs.size());
        for (int64_t r = 0; r < 3; ++r) {
            double sq = 0;
            for (int64_t i = 0; i < D; ++i) sq += vs[r * D + i] * vs[r * D + i] / D;
            for (int64_t i = 0; i < D; ++i) r2[r * D + i] = vs[r * D + i] / std::sqrt(sq + 1e-6) * ws[i];
        }
        EXPECT_CLOSE(ops::rms_norm(view, w, 1e-6f), r2, 1e-5, cat("rms_norm strided D=", D));
    }
}

TEST(Ops, NormModulateAndGatedResidual) {
    auto be = cpu();
    const int64_t B = 2, L = 5, D = 19;
    Tensor x = randn_tensor(*be, {B, L, D}, 1, 2.0f);
    Tensor m = randn_tensor(*be, {B, 6, D}, 2);  // shift/scale/gate are strided rows of m
    Tensor shift = m.select(1, 0), scale = m.select(1, 1), gate = m.select(1, 2);
    auto xs = host(x), ms = host(m);
    std::vector<double> ref(xs.size());
    for (int64_t r = 0; r < B * L; ++r) {
        const int64_t b = r / L;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < D; ++i) mean += xs[r * D + i] / D;
        for (int64_t i = 0; i < D; ++i) var += (xs[r * D + i] - mean) * (xs[r * D + i] - mean) / D;
        for (int64_t i = 0; i < D; ++i)
            ref[r * D + i] = (xs[r * D + i] - mean) / std::sqrt(var + 1e-6) * (1 + ms[(b * 6 + 1) * D + i]) +
                             ms[(b * 6 + 0) * D + i];
    }
    EXPECT_CLOSE(ops::norm_modulate(x, shift, scale, 1e-6f), ref, 1e-5, "norm_modulate");
    Tensor y = randn_tensor(*be, {B, L, D}, 3);
    auto ys = host(y);
    for (int64_t r = 0; r < B * L; ++r)
        for (int64_t i = 0; i < D; ++i) ref[r * D + i] = xs[r * D + i] + ys[r * D + i] * ms[((r / L) * 6 + 2) * D + i];
    ops::gated_residual(x, y, gate);
    EXPECT_CLOSE(x, ref, 1e-6, "gated_residual");
}

TEST(Ops, RopeWithPaddingAndFrameOffset) {
    auto be = cpu();
    const int64_t B = 2, L = 31, H = 3, D = 20;  // d/2 = 10 → pairs 4/3/3
    Tensor x = randn_tensor(*be, {B, L, H, D}, 5);
    std::vector<RopeGrid> grids = {{2, 3, 5, 0}, {1, 4, 7, 3}};
    std::vector<double> tab(size_t(16 * 10 * 2));
    auto tv = randn(tab.size(), 6);  // any table: the op must look it up as documented
    for (size_t i = 0; i < tab.size(); ++i) tab[i] = tv[i];
    std::vector<float> tab32(tv.begin(), tv.end());
    Tensor table = ops::from_host(*be, DType::F32, {16, 10, 2}, tab32.data());
    auto xs = host(x);
    std::vector<double> ref = xs;
    for (int64_t b = 0; b < B; ++b) {
        const RopeGrid& g = grids[b];
        for (int64_t l = 0; l < g.f * g.h * g.w; ++l) {
            int64_t pos[3] = {l / (g.h * g.w) + g.frame_offset, (l / g.w) % g.h, l % g.w};
            for (int64_t kp = 0; kp < 10; ++kp) {
                int axis = kp < 4 ? 0 : (kp < 7 ? 1 : 2);
                double c = tab[(pos[axis] * 10 + kp) * 2], s = tab[(pos[axis] * 10 + kp) * 2 + 1];
                for (int64_t h = 0; h < H; ++h) {
                    size_t o = size_t(((b * L + l) * H + h) * D + 2 * kp);
                    ref[o] = xs[o] * c - xs[o + 1] * s;
                    ref[o + 1] = xs[o] * s + xs[o + 1] * c;
                }
            }
        }
    }
    EXPECT_CLOSE(ops::rope(x, grids, table), ref, 1e-6, "rope");
    expect_error([&] { ops::rope(x, {{2, 3, 5, 15}, {1, 4, 7, 0}}, table); }, {"[rope]", "RoPE table"});
    // The fused q/k path equals its composition (rms_norm over the token's H·d values, then rope)
    // exactly, padding tokens included (normalised, not rotated).
    Tensor w = randn_tensor(*be, {H * D}, 7);
    const Tensor fused = ops::rms_norm_rope(x, w, 1e-6f, grids, table);
    const Tensor composed = ops::rope(ops::rms_norm(x.reshape({B, L, H * D}), w, 1e-6f).reshape({B, L, H, D}), grids, table);
    EXPECT_EQ(host(fused), host(composed));
    expect_error([&] { ops::rms_norm_rope(x, randn_tensor(*be, {D}, 7), 1e-6f, grids, table); }, {"[rms_norm_rope]", "weight"});
}

TEST(Ops, UnaryExtremes) {
    auto be = cpu();
    std::vector<float> xv = {-100, -30, -10, -3, -1, -1e-3f, 0, 1e-3f, 0.5f, 1, 3, 10, 30, 100};
    auto rnd = randn(257, 8, 4.0f);
    xv.insert(xv.end(), rnd.begin(), rnd.end());
    Tensor x = ops::from_host(*be, DType::F32, {int64_t(xv.size())}, xv.data());
    std::vector<double> gt, ge, si;
    for (float f : xv) {
        double a = f;
        gt.push_back(0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a))));
        ge.push_back(0.5 * a * (1 + std::erf(a / std::sqrt(2.0))));
        si.push_back(a / (1 + std::exp(-a)));
    }
    EXPECT_CLOSE(ops::gelu_tanh(x), gt, 1e-6, "gelu_tanh");
    EXPECT_CLOSE(ops::gelu_erf(x), ge, 1e-6, "gelu_erf");
    EXPECT_CLOSE(ops::silu(x), si, 1e-6, "silu");
}

TEST(Ops, BinaryBroadcast) {
    auto be = cpu();
    Tensor a = randn_tensor(*be, {1, 6, 5}, 1), b = randn_tensor(*be, {3, 1, 5}, 2);
    auto as = host(a), bs = host(b);
    std::vector<double> add(90), mul(90);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 6; ++j)
            for (int k = 0; k < 5; ++k) {
                add[(i * 6 + j) * 5 + k] = as[j * 5 + k] + bs[i * 5 + k];
                mul[(i * 6 + j) * 5 + k] = as[j * 5 + k] * bs[i * 5 + k];
            }
    EXPECT_CLOSE(ops::add(a, b), add, 1e-7, "add broadcast");
    EXPECT_CLOSE(ops::mul(a, b), mul, 1e-7, "mul broadcast");
    // Strided operand: a transposed view.
    Tensor c = randn_tensor(*be, {5, 6}, 3);
    Tensor ct = c.transpose(0, 1);  // [6, 5]
    auto cs = host(c);
    std::vector<double> r(30);
    for (int j = 0; j < 6; ++j)
        for (int k = 0; k < 5; ++k) r[j * 5 + k] = cs[k * 6 + j] + as[j * 5 + k];
    EXPECT_CLOSE(ops::add(ct, a.select(0, 0)), r, 1e-7, "add strided");
    expect_error([&] { ops::add(randn_tensor(*be, {3, 4}, 1), randn_tensor(*be, {5}, 1)); }, {"[binary]", "broadcast"});
}

TEST(Ops, PatchifyUnpatchify) {
    auto be = cpu();
    const int64_t C = 3, T = 2, H = 6, W = 10;
    Tensor x = randn_tensor(*be, {C, T, H, W}, 1);
    Tensor p = ops::patchify(x, 1, 2, 2);  // [T·3·5, C·4]
    ASSERT_EQ(p.shape(), (Shape{30, 12}));
    auto xs = host(x), ps = host(p);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < 3; ++h)
            for (int64_t w = 0; w < 5; ++w)
                for (int64_t c = 0; c < C; ++c)
                    for (int q = 0; q < 2; ++q)
                        for (int r = 0; r < 2; ++r)
                            ASSERT_EQ(ps[((t * 3 + h) * 5 + w) * 12 + (c * 2 + q) * 2 + r],
                                      xs[((c * T + t) * H + 2 * h + q) * W + 2 * w + r]);
    // unpatchify reads features in (p, q, r, c) order; padding rows after f·h·w are ignored.
    Tensor tok = randn_tensor(*be, {33, 4 * C}, 2);
    Tensor u = ops::unpatchify(tok, T, 3, 5, 1, 2, 2);
    ASSERT_EQ(u.shape(), (Shape{C, T, H, W}));
    auto ts = host(tok), us = host(u);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < 3; ++h)
            for (int64_t w = 0; w < 5; ++w)
                for (int q = 0; q < 2; ++q)
                    for (int r = 0; r < 2; ++r)
                        for (int64_t c = 0; c < C; ++c)
                            ASSERT_EQ(us[((c * T + t) * H + 2 * h + q) * W + 2 * w + r],
                                      ts[((t * 3 + h) * 5 + w) * 12 + (q * 2 + r) * C + c]);
    expect_error([&] { ops::patchify(randn_tensor(*be, {3, 2, 5, 4}, 1), 1, 2, 2); }, {"[patchify]", "not divisible"});
}

TEST(Ops, ConcatCopyAndDtypes) {
    auto be = cpu();
    Tensor a = randn_tensor(*be, {2, 3, 4}, 1), b = randn_tensor(*be, {2, 5, 4}, 2);
    Tensor c = ops::concat({a, b}, 1);
    ASSERT_EQ(c.shape(), (Shape{2, 8, 4}));
    auto as = host(a), bs = host(b), cs = host(c);
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 8; ++j)
            for (int k = 0; k < 4; ++k)
                ASSERT_EQ(cs[(i * 8 + j) * 4 + k], j < 3 ? as[(i * 3 + j) * 4 + k] : bs[(i * 5 + j - 3) * 4 + k]);
    Tensor t = ops::to_dtype(a.transpose(0, 2), DType::BF16);  // strided → contiguous bf16
    auto ts = host(t);
    for (int k = 0; k < 4; ++k)
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 2; ++i) {
                double v = as[(i * 3 + j) * 4 + k];
                ASSERT_NEAR(ts[(k * 3 + j) * 2 + i], v, std::fabs(v) * 4e-3 + 1e-30);
            }
    EXPECT_EQ(ops::zeros(*be, {3, 3}).numel(), 9);
    for (double v : host(ops::full(*be, DType::F32, {7}, 2.5f))) EXPECT_EQ(v, 2.5);
}

TEST(Ops, LinComb) {
    auto be = cpu();
    std::vector<Tensor> xs;
    for (int k = 0; k < 4; ++k) xs.push_back(randn_tensor(*be, {3, 70001}, 50 + k));  // odd size, several chunks
    const float coef[4] = {0.5f, -1.25f, 3.0f, 1e-3f};
    for (int n = 1; n <= 4; ++n) {
        std::vector<const Tensor*> in;
        for (int k = 0; k < n; ++k) in.push_back(&xs[size_t(k)]);
        Tensor out = be->empty(DType::F32, {3, 70001});
        ops::lincomb(in.data(), coef, n, out);
        std::vector<double> ref(size_t(out.numel()), 0.0);
        for (int k = 0; k < n; ++k) {
            auto h = host(xs[size_t(k)]);
            for (size_t j = 0; j < ref.size(); ++j) ref[j] += double(coef[k]) * h[j];
        }
        EXPECT_CLOSE(out, ref, 1e-6, cat("lincomb n=", n));
    }
    // Aliasing: out is one of the inputs.
    auto before = host(xs[0]);
    const Tensor* in2[2] = {&xs[0], &xs[1]};
    ops::lincomb(in2, coef, 2, xs[0]);
    auto h1 = host(xs[1]);
    std::vector<double> ref(before.size());
    for (size_t j = 0; j < ref.size(); ++j) ref[j] = 0.5 * before[j] - 1.25 * h1[j];
    EXPECT_CLOSE(xs[0], ref, 1e-6, "lincomb in place");
}

TEST(Ops, ShapeErrors) {
    auto be = cpu();
    Tensor x = randn_tensor(*be, {4, 8}, 1), w = randn_tensor(*be, {5, 9}, 2);
    expect_error([&] { ops::linear(x, w); }, {"[linear]", "does not match"});
    // bf16 activations between linears are a GPU layout; the CPU keeps f32 and says so.
    Tensor w8 = randn_tensor(*be, {5, 8}, 2);
    EXPECT_EQ(ops::linear_chain_dtype(*be, DType::BF16), DType::F32);
    expect_error([&] { ops::linear(x, w8, nullptr, Activation::None, DType::BF16); }, {"[linear]", "bf16", "not supported"});
    expect_error([&] { ops::linear(ops::to_dtype(x, DType::BF16), w8); }, {"[linear]", "bf16", "not supported"});
    Tensor q = randn_tensor(*be, {1, 4, 3, 8}, 1), k = randn_tensor(*be, {1, 5, 2, 8}, 1);
    expect_error([&] { ops::attention(q, k, k); }, {"[attention]", "multiple"});
    AttentionParams p;
    p.k_lens = {9};
    Tensor k2 = randn_tensor(*be, {1, 5, 3, 8}, 1);
    expect_error([&] { ops::attention(q, k2, k2, p); }, {"[attention]", "k_lens"});
    // The CPU keeps K/V in f32 (a bf16 KV cache is a GPU layout): refused, not widened silently.
    EXPECT_FALSE(be->supports(AttentionArgs::kName, DType::F32, DType::BF16));
    Tensor kb = ops::to_dtype(k2, DType::BF16);
    expect_error([&] { ops::attention(q, kb, kb); }, {"[attention]", "bf16", "not supported"});
    expect_error([&] { ops::attention(q, k2, kb); }, {"[attention]", "share a dtype"});
}

}  // namespace wanrt::test
