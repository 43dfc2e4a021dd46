// Every CUDA op against a float64 loop reference (label `gpu`: needs a CUDA device).
//
// Outputs are preallocated inside a larger buffer: the body is poisoned with NaN (an unwritten
// element fails the comparison) and guard regions on both sides hold a sentinel that must survive
// (out-of-bounds writes). Tolerances on relative L2: fp32 ops 1e-5; bf16 ops (linear, attention)
// 1e-2 against the exact reference and 2e-3 against a reference fed the same bf16-rounded inputs.
#include <cmath>
#include <cstring>
#include <functional>

#include "cuda/cuda_backend.h"
#include "test_util.h"

namespace wanrt::test {
namespace {

constexpr int64_t kGuard = 64;  // floats each side (256 bytes: keeps 16-byte alignment)
constexpr float kSentinel = 12345.0f;

double bf16r(double x) {
    return bf16_to_f32(f32_to_bf16(float(x)));
}

std::vector<double> d64(const std::vector<float>& v) {
    return {v.begin(), v.end()};
}

class CudaOps : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: run the gpu-labelled tests on a GPU machine";
        be = make_cuda_backend(0);
    }

    // A poisoned f32 output of `shape` with guard regions; check() verifies the guards.
    struct Out {
        Tensor all, t;
        int64_t n;
    };
    Out out(const Shape& shape) {
        Out o;
        o.n = shape_numel(shape);
        std::vector<float> init(size_t(o.n + 2 * kGuard), std::nanf(""));
        for (int64_t i = 0; i < kGuard; ++i) init[size_t(i)] = init[size_t(o.n + kGuard + i)] = kSentinel;
        o.all = ops::from_host(*be, DType::F32, {o.n + 2 * kGuard}, init.data());
        o.t = o.all.slice(0, kGuard, kGuard + o.n).reshape(shape);
        return o;
    }
    void check_guards(const Out& o, const std::string& what) {
        std::vector<float> all = ops::to_host_f32(o.all);
        int bad = 0;
        for (int64_t i = 0; i < kGuard; ++i)
            bad += (all[size_t(i)] != kSentinel) + (all[size_t(o.n + kGuard + i)] != kSentinel);
        EXPECT_EQ(bad, 0) << what << ": " << bad << " guard elements overwritten";
    }
    Tensor upload(const std::vector<float>& v, const Shape& s) { return ops::from_host(*be, DType::F32, s, v.data()); }

    std::shared_ptr<Backend> be;
};

// ---------------------------------------------------------------------------------------------
// linear

void linear_ref(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>* b,
                Activation act, int64_t M, int64_t N, int64_t K, std::vector<double>& y) {
    y.assign(size_t(M * N), 0.0);
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
            double s = b ? (*b)[size_t(n)] : 0.0;
            for (int64_t k = 0; k < K; ++k) s += x[size_t(m * K + k)] * w[size_t(n * K + k)];
            switch (act) {
                case Activation::GeluTanh:
                    s = 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)));
                    break;
                case Activation::GeluErf:
                    s = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
                    break;
                case Activation::Silu:
                    s = s / (1 + std::exp(-s));
                    break;
                default:
                    break;
            }
            y[size_t(m * N + n)] = s;
        }
}

TEST_F(CudaOps, Linear) {
    struct Case {
        int64_t M, N, K;
        bool bias;
        Activation act;
        DType wt;
    };
    const Case cases[] = {
        {37, 29, 67, false, Activation::None, DType::F32},  // odd everything: unaligned rows
        {64, 96, 128, true, Activation::None, DType::F32},
        {33, 40, 64, true, Activation::GeluTanh, DType::F32},  // cuBLASLt GELU_BIAS epilogue
        {17, 24, 48, false, Activation::GeluTanh, DType::BF16},
        {19, 32, 40, true, Activation::GeluErf, DType::F16},
        {7, 48, 256, true, Activation::Silu, DType::BF16},
        {300, 1536, 1536, true, Activation::None, DType::F32},  // DiT width
        {5, 0 + 64, 1, true, Activation::None, DType::F32},     // K = 1
    };
    int seed = 100;
    for (const Case& c : cases) {
        const std::string what = cat("linear M", c.M, " N", c.N, " K", c.K, c.bias ? " bias" : "", " act", int(c.act),
                                     " w", dtype_name(c.wt));
        auto xv = randn(size_t(c.M * c.K), ++seed), wv = randn(size_t(c.N * c.K), ++seed, 0.2f),
             bv = randn(size_t(c.N), ++seed);
        Tensor x = upload(xv, {c.M, c.K}), b = upload(bv, {c.N});
        Tensor w = ops::to_dtype(upload(wv, {c.N, c.K}), c.wt);
        std::vector<double> wr(wv.size());
        {
            std::vector<float> wt = ops::to_host_f32(w);  // the weight as stored (rounded for bf16/f16)
            for (size_t i = 0; i < wr.size(); ++i) wr[i] = wt[i];
        }
        Out y = out({c.M, c.N});
        dispatch(*be, LinearArgs{x, w, c.bias ? &b : nullptr, c.act, y.t}, {x.dtype(), w.dtype()});
        std::vector<double> ref, ref_r, bd = d64(bv), xr = d64(xv), wrr = wr;
        linear_ref(d64(xv), d64(wv), c.bias ? &bd : nullptr, c.act, c.M, c.N, c.K, ref);
        for (double& v : xr) v = bf16r(v);
        for (double& v : wrr) v = bf16r(v);
        linear_ref(xr, wrr, c.bias ? &bd : nullptr, c.act, c.M, c.N, c.K, ref_r);
        EXPECT_CLOSE(y.t, ref, 1e-2, what);
        EXPECT_CLOSE(y.t, ref_r, 2e-3, what + " (bf16 inputs)");
        check_guards(y, what);
    }
}

// bf16 activations between linears (the FFN hidden state): y = linear(x) written in bf16 equals the
// f32 output rounded once; a bf16 x gives exactly what staging the f32 values would (same bf16 bits).
TEST_F(CudaOps, LinearBf16Chain) {
    struct Case {
        int64_t M, N, K;
        bool bias;
        Activation act;
    };
    const Case cases[] = {{37, 29, 67, true, Activation::GeluTanh},   // unaligned: fallback GEMM + post kernel
                          {300, 896, 192, true, Activation::GeluTanh},  // GELU_BIAS epilogue, bf16 D
                          {64, 96, 128, false, Activation::None},
                          {33, 40, 64, true, Activation::Silu}};        // activation in the post kernel
    int seed = 300;
    for (const Case& c : cases) {
        const std::string what = cat("bf16 chain M", c.M, " N", c.N, " K", c.K, " act", int(c.act));
        Tensor x = upload(randn(size_t(c.M * c.K), ++seed), {c.M, c.K}), b = upload(randn(size_t(c.N), ++seed), {c.N});
        Tensor w = ops::to_dtype(upload(randn(size_t(c.N * c.K), ++seed, 0.2f), {c.N, c.K}), DType::BF16);
        const Tensor* bp = c.bias ? &b : nullptr;
        Tensor y32 = ops::linear(x, w, bp, c.act);
        Tensor y16 = ops::linear(x, w, bp, c.act, DType::BF16);
        ASSERT_EQ(y16.dtype(), DType::BF16);
        std::vector<double> r;
        for (float v : ops::to_host_f32(y32)) r.push_back(bf16r(v));
        // one rounding of the same fp32 result; the fallback rounds before and after its post kernel
        EXPECT_CLOSE(y16, r, 4e-3, what + " (bf16 output)");
        // chained: bf16 input in place == the f32 input staged to bf16
        Tensor w2 = ops::to_dtype(upload(randn(size_t(24 * c.N), ++seed, 0.2f), {24, c.N}), DType::BF16);
        const std::vector<float> a = ops::to_host_f32(ops::linear(y16, w2)),
                                 e = ops::to_host_f32(ops::linear(ops::to_dtype(y16, DType::F32), w2));
        EXPECT_EQ(a, e) << what << " (bf16 input)";
    }
    Tensor x = upload(randn(4 * 8, 1), {4, 8});
    Tensor wf = upload(randn(8 * 8, 2), {8, 8});
    expect_error([&] { ops::linear(x, wf, nullptr, Activation::None, DType::F16); }, {"[linear]", "f16", "not supported"});
}

TEST_F(CudaOps, LinearCachesFollowWrites) {
    // The bf16 copies of weights and staged activations must follow in-place writes.
    const int64_t M = 8, N = 16, K = 32;
    auto xv = randn(size_t(M * K), 1), wv = randn(size_t(N * K), 2), w2 = randn(size_t(N * K), 3);
    Tensor x = upload(xv, {1, M, K}), w = upload(wv, {N, K});
    Tensor y1 = ops::linear(x, w);
    be->upload(w, w2.data());  // new weight contents in the same buffer
    Tensor y2 = ops::linear(x, w);
    std::vector<double> r2;
    linear_ref(d64(xv), d64(w2), nullptr, Activation::None, M, N, K, r2);
    EXPECT_CLOSE(y2, r2, 1e-2, "linear after weight re-upload");
    // x changed in place by gated_residual: the staged bf16 copy must be refreshed.
    auto gv = std::vector<float>(size_t(K), 1.0f);
    Tensor gate = upload(gv, {1, K});
    ops::gated_residual(x, x, gate);  // x = 2x
    Tensor y3 = ops::linear(x, w);
    std::vector<double> x2 = d64(xv), r3;
    for (double& v : x2) v *= 2;
    linear_ref(x2, d64(w2), nullptr, Activation::None, M, N, K, r3);
    EXPECT_CLOSE(y3, r3, 1e-2, "linear after in-place x update");
    // Non-contiguous x through the ops front-end.
    Tensor xt = upload(xv, {K, M}).transpose(0, 1);  // [M, K] view with strides (1, M)
    std::vector<double> xtv(size_t(M * K)), r4;
    for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) xtv[size_t(m * K + k)] = xv[size_t(k * M + m)];
    linear_ref(xtv, d64(w2), nullptr, Activation::None, M, N, K, r4);
    EXPECT_CLOSE(ops::linear(xt, w), r4, 1e-2, "linear of a transposed x");
}

// ---------------------------------------------------------------------------------------------
// attention

struct AttnCase {
    int64_t B, Lq, Lk, H, Hk, d, dv;
    std::vector<int32_t> k_lens;
    bool causal = false;
    int wl = -1, wr = -1;
    float q_scale = 1.f, softmax_scale = 0.f;
    bool rel_bias = false;
};

std::vector<double> attention_ref(const AttnCase& c, const std::vector<double>& q, const std::vector<double>& k,
                                  const std::vector<double>& v, const std::vector<double>& bias) {
    std::vector<double> o(size_t(c.B * c.Lq * c.H * c.dv), 0.0);
    const double scale = c.softmax_scale != 0 ? c.softmax_scale : 1.0 / std::sqrt(double(c.d));
    std::vector<double> s(size_t(c.Lk));
    for (int64_t b = 0; b < c.B; ++b) {
        const int64_t kl = c.k_lens.empty() ? c.Lk : std::clamp<int64_t>(c.k_lens[size_t(b)], 0, c.Lk);
        for (int64_t h = 0; h < c.H; ++h) {
            const int64_t hk = h / (c.H / c.Hk);
            for (int64_t i = 0; i < c.Lq; ++i) {
                const int64_t ctr = i + kl - c.Lq;
                double mx = -INFINITY;
                for (int64_t j = 0; j < c.Lk; ++j) {
                    bool vis = j < kl && (!c.causal || j <= ctr) && (c.wl < 0 || j >= ctr - c.wl) &&
                               (c.wr < 0 || j <= ctr + c.wr);
                    if (!vis) {
                        s[size_t(j)] = -INFINITY;
                        continue;
                    }
                    double dot = 0;
                    for (int64_t e = 0; e < c.d; ++e)
                        dot += q[size_t(((b * c.Lq + i) * c.H + h) * c.d + e)] * c.q_scale *
                               k[size_t(((b * c.Lk + j) * c.Hk + hk) * c.d + e)];
                    s[size_t(j)] =
                        dot * scale + (c.rel_bias ? bias[size_t(h * (c.Lq + c.Lk - 1) + j - i + c.Lq - 1)] : 0.0);
                    mx = std::max(mx, s[size_t(j)]);
                }
                if (mx == -INFINITY) continue;  // no visible key: zeros
                double sum = 0;
                for (int64_t j = 0; j < c.Lk; ++j)
                    sum += s[size_t(j)] == -INFINITY ? 0 : (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
                for (int64_t j = 0; j < c.Lk; ++j) {
                    if (s[size_t(j)] == -INFINITY) continue;
                    const double p = s[size_t(j)] / sum;
                    for (int64_t e = 0; e < c.dv; ++e)
                        o[size_t(((b * c.Lq + i) * c.H + h) * c.dv + e)] +=
                            p * v[size_t(((b * c.Lk + j) * c.Hk + hk) * c.dv + e)];
                }
            }
        }
    }
    return o;
}

TEST_F(CudaOps, Attention) {
    std::vector<AttnCase> cases;
    cases.push_back({2, 37, 53, 3, 3, 64, 64, {53, 20}});                    // k_lens padding, odd lengths
    cases.push_back({1, 200, 200, 2, 2, 128, 128, {}});                      // plain self-attention, d 128 (cuDNN)
    cases.push_back({2, 50, 90, 4, 2, 64, 64, {90, 90}});                    // k_lens = Lk: unmasked, GQA (cuDNN)
    cases.push_back({1, 77, 512, 3, 3, 128, 128, {}, false, -1, -1, 0.7f});  // cross-attention shape, q_scale
    cases.push_back({2, 70, 130, 2, 2, 128, 128, {130, 99}, true});          // causal, bottom-right, k_lens
    cases.push_back({1, 150, 150, 2, 2, 64, 64, {}, false, 16, 8});          // sliding window
    cases.push_back({1, 65, 300, 4, 2, 128, 128, {}, true, 40, -1});         // GQA, causal + left window
    cases.push_back({2, 40, 77, 2, 2, 64, 64, {0, 77}, false, -1, -1, 0.5f, 0.2f});  // empty sample; q/softmax scale
    cases.push_back({1, 300, 1000, 2, 2, 128, 128, {777}});                          // long keys, partial last tile
    cases.push_back({1, 200, 4096, 2, 2, 128, 128, {}});  // few query tiles, long keys: split-KV (4 ranges)
    cases.push_back({1, 130, 3000, 3, 3, 64, 64, {}});    // split-KV into 2 ranges (3000 % 4 ≠ 0), d 64
    cases.push_back({2, 33, 45, 3, 3, 40, 40, {45, 31}});                            // generic kernel: d 40
    cases.push_back({1, 20, 30, 2, 1, 32, 48, {}});                                  // generic: dv ≠ d, GQA
    AttnCase rb{1, 25, 25, 2, 2, 64, 64, {}};
    rb.rel_bias = true;
    cases.push_back(rb);  // T5 relative bias (flash)
    AttnCase rb2{2, 70, 70, 3, 3, 64, 64, {70, 41}};
    rb2.rel_bias = true;
    rb2.softmax_scale = 1.0f;
    cases.push_back(rb2);  // T5: bias, k_lens, no 1/√d
    AttnCase rb3{1, 30, 30, 2, 2, 40, 40, {}};
    rb3.rel_bias = true;
    cases.push_back(rb3);                                                          // bias on the fp32 kernel
    cases.push_back({1, 300, 300, 1, 1, 384, 384, {}});                            // VAE middle attention (GEMM path)
    cases.push_back({2, 90, 130, 2, 1, 256, 192, {130, 77}, true, -1, -1, 0.5f});  // GEMM path, masks, dv ≠ d
    AttnCase rb4{1, 40, 50, 2, 2, 256, 256, {}};
    rb4.rel_bias = true;
    cases.push_back(rb4);  // GEMM path with bias
    int seed = 500;
    for (const AttnCase& c : cases) {
        const std::string what =
            cat("attention B", c.B, " Lq", c.Lq, " Lk", c.Lk, " H", c.H, "/", c.Hk, " d", c.d, "/", c.dv,
                c.causal ? " causal" : "", c.wl >= 0 || c.wr >= 0 ? cat(" win", c.wl, ",", c.wr) : "",
                c.k_lens.empty() ? "" : " k_lens", c.rel_bias ? " rel_bias" : "");
        auto qv = randn(size_t(c.B * c.Lq * c.H * c.d), ++seed), kv = randn(size_t(c.B * c.Lk * c.Hk * c.d), ++seed),
             vv = randn(size_t(c.B * c.Lk * c.Hk * c.dv), ++seed), bv = randn(size_t(c.H * (c.Lq + c.Lk - 1)), ++seed);
        AttentionParams p;
        p.k_lens = c.k_lens;
        p.causal = c.causal;
        p.window_left = c.wl;
        p.window_right = c.wr;
        p.q_scale = c.q_scale;
        p.softmax_scale = c.softmax_scale;
        if (c.rel_bias) p.rel_bias = upload(bv, {c.H, c.Lq + c.Lk - 1});
        Out o = out({c.B, c.Lq, c.H, c.dv});
        dispatch(*be, AttentionArgs{upload(qv, {c.B, c.Lq, c.H, c.d}), upload(kv, {c.B, c.Lk, c.Hk, c.d}),
                                    upload(vv, {c.B, c.Lk, c.Hk, c.dv}), &p, o.t});
        const std::vector<double> ref = attention_ref(c, d64(qv), d64(kv), d64(vv), d64(bv));
        EXPECT_CLOSE(o.t, ref, 1e-2, what);
        check_guards(o, what);
        // Rows that see no key must be exact zeros (not NaN).
        std::vector<float> got = ops::to_host_f32(o.t);
        int nonfinite = 0;
        for (float g : got) nonfinite += !std::isfinite(g);
        EXPECT_EQ(nonfinite, 0) << what;
    }
}

// bf16 K/V read in place (the causal model's KV cache): a prefix view of a larger bf16 buffer, and
// a row of a multi-row cache. The reference takes the bf16-rounded K/V, i.e. what is stored.
TEST_F(CudaOps, AttentionBf16KV) {
    struct C {
        AttnCase a;
        int64_t capacity;  // keys in the buffer the view is a prefix of
        int64_t rows, row;
    };
    const std::vector<C> cases = {
        {{1, 160, 480, 2, 2, 128, 128, {}}, 800, 1, 0},      // unmasked prefix of the cache (cuDNN)
        {{1, 97, 291, 3, 3, 128, 128, {200}}, 400, 2, 1},    // masked (flash kernel), row 1 of 2
        {{1, 64, 128, 4, 2, 64, 64, {}, true}, 128, 1, 0},   // GQA, causal, d 64
    };
    int seed = 900;
    for (const C& cc : cases) {
        const AttnCase& c = cc.a;
        const std::string what = cat("bf16 k/v attention Lq", c.Lq, " Lk", c.Lk, " of ", cc.capacity, " row ", cc.row, "/",
                                     cc.rows, " d", c.d, c.k_lens.empty() ? "" : " k_lens", c.causal ? " causal" : "");
        const int64_t n = cc.rows * cc.capacity * c.Hk * c.d;
        auto qv = randn(size_t(c.Lq * c.H * c.d), ++seed), kb = randn(size_t(n), ++seed), vb = randn(size_t(n), ++seed);
        Tensor K = ops::to_dtype(upload(kb, {cc.rows, cc.capacity, c.Hk, c.d}), DType::BF16);
        Tensor V = ops::to_dtype(upload(vb, {cc.rows, cc.capacity, c.Hk, c.d}), DType::BF16);
        Tensor k = K.select(0, cc.row).slice(0, 0, c.Lk).unsqueeze(0), v = V.select(0, cc.row).slice(0, 0, c.Lk).unsqueeze(0);
        ASSERT_TRUE(k.is_contiguous()) << what;
        std::vector<double> kr, vr;  // the stored (bf16) values of the view
        for (int64_t j = 0; j < c.Lk * c.Hk * c.d; ++j) {
            kr.push_back(bf16r(kb[size_t(cc.row * cc.capacity * c.Hk * c.d + j)]));
            vr.push_back(bf16r(vb[size_t(cc.row * cc.capacity * c.Hk * c.d + j)]));
        }
        AttentionParams p;
        p.k_lens = c.k_lens;
        p.causal = c.causal;
        Out o = out({1, c.Lq, c.H, c.dv});
        dispatch(*be, AttentionArgs{upload(qv, {1, c.Lq, c.H, c.d}), k, v, &p, o.t}, {DType::F32, k.dtype()});
        EXPECT_CLOSE(o.t, attention_ref(c, d64(qv), kr, vr, {}), 1e-2, what);
        check_guards(o, what);
        // through the checked front-end too
        EXPECT_CLOSE(ops::attention(upload(qv, {1, c.Lq, c.H, c.d}), k, v, p), attention_ref(c, d64(qv), kr, vr, {}), 1e-2,
                     what + " (ops)");
    }
    EXPECT_TRUE(be->supports(AttentionArgs::kName, DType::F32, DType::BF16));
    Tensor q = upload(randn(2 * 40, 1), {1, 2, 1, 40});
    Tensor kb = ops::to_dtype(upload(randn(3 * 40, 2), {1, 3, 1, 40}), DType::BF16);
    // other head dims run on the fp32 kernels with the K/V widened
    const std::vector<float> qd = ops::to_host_f32(q);
    const std::vector<float> kd = ops::to_host_f32(kb);
    EXPECT_CLOSE(ops::attention(q, kb, kb), attention_ref({1, 2, 3, 1, 1, 40, 40, {}}, d64(qd), d64(kd), d64(kd), {}), 1e-5,
                 "bf16 k/v attention d40 (fp32 kernel)");
    // mixed k/v dtypes: a one-line error
    Tensor q64 = upload(randn(2 * 64, 1), {1, 2, 1, 64});
    Tensor k64 = upload(randn(3 * 64, 2), {1, 3, 1, 64});
    expect_error([&] { ops::attention(q64, k64, ops::to_dtype(k64, DType::BF16)); }, {"[attention]", "share a dtype"});
}

// ---------------------------------------------------------------------------------------------
// norms, modulation, residual

TEST_F(CudaOps, Norms) {
    for (int64_t D : {1536, 37, 4}) {
        const int64_t B = 2, L = 5;
        auto xv = randn(size_t(B * L * D), 7 + D, 3.0f), wv = randn(size_t(D), 8), bv = randn(size_t(D), 9);
        for (size_t i = 0; i < xv.size(); ++i) xv[i] += 4.0f;  // a mean far from zero
        Tensor x = upload(xv, {B, L, D}), w = upload(wv, {D}), b = upload(bv, {D});
        auto stats = [&](int64_t r, double& mean, double& var, double& ms) {
            mean = var = ms = 0;
            for (int64_t c = 0; c < D; ++c)
                mean += xv[size_t(r * D + c)], ms += double(xv[size_t(r * D + c)]) * xv[size_t(r * D + c)];
            mean /= D;
            ms /= D;
            for (int64_t c = 0; c < D; ++c) var += (xv[size_t(r * D + c)] - mean) * (xv[size_t(r * D + c)] - mean);
            var /= D;
        };
        std::vector<double> ln(xv.size()), lna(xv.size()), rms(xv.size());
        for (int64_t r = 0; r < B * L; ++r) {
            double mean, var, ms;
            stats(r, mean, var, ms);
            for (int64_t c = 0; c < D; ++c) {
                const size_t i = size_t(r * D + c);
                ln[i] = (xv[i] - mean) / std::sqrt(var + 1e-6);
                lna[i] = ln[i] * wv[size_t(c)] + bv[size_t(c)];
                rms[i] = xv[i] / std::sqrt(ms + 1e-6) * wv[size_t(c)];
            }
        }
        Out y1 = out({B, L, D}), y2 = out({B, L, D}), y3 = out({B, L, D});
        dispatch(*be, LayerNormArgs{x, nullptr, nullptr, 1e-6f, y1.t});
        dispatch(*be, LayerNormArgs{x, &w, &b, 1e-6f, y2.t});
        dispatch(*be, RmsNormArgs{x, w, 1e-6f, y3.t});
        EXPECT_CLOSE(y1.t, ln, 1e-5, cat("layer_norm plain D", D));
        EXPECT_CLOSE(y2.t, lna, 1e-5, cat("layer_norm affine D", D));
        EXPECT_CLOSE(y3.t, rms, 1e-5, cat("rms_norm D", D));
        check_guards(y1, "layer_norm");
        check_guards(y2, "layer_norm affine");
        check_guards(y3, "rms_norm");

        // norm_modulate / gated_residual with [B, D] rows taken from a [B, 6, D] tensor (row stride 6D).
        auto ev = randn(size_t(B * 6 * D), 10);
        Tensor e = upload(ev, {B, 6, D});
        Tensor shift = e.select(1, 0), scale = e.select(1, 1), gate = e.select(1, 2);
        std::vector<double> nm(xv.size());
        for (int64_t r = 0; r < B * L; ++r)
            for (int64_t c = 0; c < D; ++c) {
                const int64_t bb = r / L;
                const size_t i = size_t(r * D + c);
                nm[i] = ln[i] * (1 + ev[size_t((bb * 6 + 1) * D + c)]) + ev[size_t((bb * 6 + 0) * D + c)];
            }
        Out y4 = out({B, L, D});
        dispatch(*be, NormModulateArgs{x, shift, scale, 1e-6f, y4.t});
        EXPECT_CLOSE(y4.t, nm, 1e-5, cat("norm_modulate D", D));
        check_guards(y4, "norm_modulate");

        auto yv = randn(xv.size(), 11);
        Out xr = out({B, L, D});
        ops::copy(x, xr.t);
        dispatch(*be, GatedResidualArgs{xr.t, upload(yv, {B, L, D}), gate});
        std::vector<double> gr(xv.size());
        for (int64_t r = 0; r < B * L; ++r)
            for (int64_t c = 0; c < D; ++c) {
                const size_t i = size_t(r * D + c);
                gr[i] = double(xv[i]) + double(yv[i]) * ev[size_t(((r / L) * 6 + 2) * D + c)];
            }
        EXPECT_CLOSE(xr.t, gr, 1e-6, cat("gated_residual D", D));
        check_guards(xr, "gated_residual");
    }
}

// ---------------------------------------------------------------------------------------------
// rope

TEST_F(CudaOps, Rope) {
    for (int64_t d : {128, 64, 20}) {
        const int64_t B = 2, L = 50, H = 3, P = 16;
        auto xv = randn(size_t(B * L * H * d), 20 + d), tv = randn(size_t(P * d), 21);
        const std::vector<RopeGrid> grids = {{2, 3, 4, 0}, {1, 5, 7, 3}};  // 24 and 35 real tokens of 50
        Out y = out({B, L, H, d});
        dispatch(*be, RopeArgs{upload(xv, {B, L, H, d}), &grids, upload(tv, {P, d / 2, 2}), y.t});
        const int64_t half = d / 2, c1 = d / 6, c0 = half - 2 * c1;
        // float64 rotation of x (any values) by the table, tokens past f·h·w unchanged
        auto rotate = [&](const std::vector<double>& x) {
            std::vector<double> r(x.size());
            for (int64_t b = 0; b < B; ++b)
                for (int64_t l = 0; l < L; ++l)
                    for (int64_t h = 0; h < H; ++h)
                        for (int64_t k = 0; k < half; ++k) {
                            const size_t i = size_t(((b * L + l) * H + h) * d + 2 * k);
                            const RopeGrid& g = grids[size_t(b)];
                            if (l >= g.f * g.h * g.w) {
                                r[i] = x[i], r[i + 1] = x[i + 1];
                                continue;
                            }
                            const int64_t pos = k < c0        ? l / (g.h * g.w) + g.frame_offset
                                                : k < c0 + c1 ? (l / g.w) % g.h
                                                              : l % g.w;
                            const double cs = tv[size_t((pos * half + k) * 2)], sn = tv[size_t((pos * half + k) * 2 + 1)];
                            r[i] = x[i] * cs - x[i + 1] * sn;
                            r[i + 1] = x[i] * sn + x[i + 1] * cs;
                        }
            return r;
        };
        EXPECT_CLOSE(y.t, rotate(d64(xv)), 1e-5, cat("rope d", d));
        check_guards(y, "rope");
        // fused with the q/k RMSNorm over each token's H·d values: the same rotation of x·r·w
        auto wv = randn(size_t(H * d), 22);
        std::vector<double> xn(xv.size());
        for (int64_t t = 0; t < B * L; ++t) {
            double ss = 0;
            for (int64_t i = 0; i < H * d; ++i) ss += double(xv[size_t(t * H * d + i)]) * xv[size_t(t * H * d + i)];
            const double r = 1 / std::sqrt(ss / double(H * d) + 1e-6);
            for (int64_t i = 0; i < H * d; ++i) xn[size_t(t * H * d + i)] = xv[size_t(t * H * d + i)] * r * wv[size_t(i)];
        }
        Out y2 = out({B, L, H, d});
        dispatch(*be, RmsNormRopeArgs{upload(xv, {B, L, H, d}), upload(wv, {H * d}), 1e-6f, &grids,
                                      upload(tv, {P, d / 2, 2}), y2.t});
        EXPECT_CLOSE(y2.t, rotate(xn), 1e-5, cat("rms_norm_rope d", d));
        check_guards(y2, "rms_norm_rope");
    }
}

// ---------------------------------------------------------------------------------------------
// elementwise, copies, layout ops

TEST_F(CudaOps, UnaryBinaryFill) {
    auto xv = randn(1001, 30, 3.0f);
    Tensor x = upload(xv, {7, 11, 13});
    for (Activation act : {Activation::GeluTanh, Activation::GeluErf, Activation::Silu}) {
        std::vector<double> ref(xv.size());
        for (size_t i = 0; i < xv.size(); ++i) {
            const double s = xv[i];
            ref[i] = act == Activation::GeluTanh
                         ? 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)))
                     : act == Activation::GeluErf ? 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)))
                                                  : s / (1 + std::exp(-s));
        }
        Out y = out({7, 11, 13});
        dispatch(*be, UnaryArgs{act, x, y.t});
        EXPECT_CLOSE(y.t, ref, 1e-5, cat("unary ", int(act)));
        check_guards(y, "unary");
    }
    // Broadcasting: a [2, 1, 5] (+|*) b [3, 1] → [2, 3, 5]; then a transposed (strided) a.
    auto av = randn(10, 31), bv = randn(3, 32);
    Tensor a = upload(av, {2, 1, 5}), b = upload(bv, {3, 1});
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Mul}) {
        std::vector<double> ref(30);
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 3; ++j)
                for (int k = 0; k < 5; ++k)
                    ref[size_t((i * 3 + j) * 5 + k)] = op == BinaryOp::Add
                                                           ? double(av[size_t(i * 5 + k)]) + bv[size_t(j)]
                                                           : double(av[size_t(i * 5 + k)]) * bv[size_t(j)];
        Out y = out({2, 3, 5});
        dispatch(*be, BinaryArgs{op, a, b, y.t});
        EXPECT_CLOSE(y.t, ref, 1e-6, cat("binary ", int(op)));
        check_guards(y, "binary");
    }
    Tensor at = upload(av, {5, 2}).transpose(0, 1);  // [2, 5] strided
    Tensor bt = upload(randn(5, 33), {5});
    auto b5 = randn(5, 33);
    std::vector<double> ref(10);
    for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 5; ++k) ref[size_t(i * 5 + k)] = double(av[size_t(k * 2 + i)]) + b5[size_t(k)];
    EXPECT_CLOSE(ops::add(at, bt), ref, 1e-6, "binary strided a");

    Out f = out({3, 33});
    ops::fill(f.t, 2.5f);
    EXPECT_CLOSE(f.t, std::vector<double>(99, 2.5), 0.0, "fill");
    check_guards(f, "fill");
}

TEST_F(CudaOps, CopyConvert) {
    auto xv = randn(4 * 5 * 6, 40);
    Tensor x = upload(xv, {4, 5, 6});
    Tensor xp = x.permute({2, 0, 1});  // [6, 4, 5], strided
    std::vector<double> ref(xv.size());
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 4; ++j)
            for (int k = 0; k < 5; ++k) ref[size_t((i * 4 + j) * 5 + k)] = xv[size_t((j * 5 + k) * 6 + i)];
    Out y = out({6, 4, 5});
    ops::copy(xp, y.t);
    EXPECT_CLOSE(y.t, ref, 0.0, "copy permuted f32");
    check_guards(y, "copy");
    // f32 → bf16 → f32 round trip equals bf16 rounding; f16 too.
    for (DType t : {DType::BF16, DType::F16}) {
        Tensor h = be->empty(t, {6, 4, 5});
        ops::copy(xp, h);
        Out back = out({6, 4, 5});
        ops::copy(h, back.t);
        std::vector<double> r2(ref.size());
        for (size_t i = 0; i < ref.size(); ++i)
            r2[i] = t == DType::BF16 ? bf16r(ref[i]) : double(f16_to_f32(f32_to_f16(float(ref[i]))));
        EXPECT_CLOSE(back.t, r2, 0.0, cat("copy via ", dtype_name(t)));
    }
    // Strided destination: write x into columns [2, 8) of a [4, 5, 10] tensor.
    Out big = out({4, 5, 10});
    ops::fill(big.t, -1.f);
    ops::copy(x, big.t.slice(2, 2, 8));
    std::vector<double> r3(200, -1.0);
    for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k)
            for (int i = 0; i < 6; ++i) r3[size_t((j * 5 + k) * 10 + 2 + i)] = xv[size_t((j * 5 + k) * 6 + i)];
    EXPECT_CLOSE(big.t, r3, 0.0, "copy into strided dst");
    check_guards(big, "copy strided dst");
    // Row copies (the VAE's cache concatenations): frames [1, 3) of a [C, T, H, W] tensor into a
    // slice of a longer one, long rows (> one block's grid-stride) and many rows (> 65,535), f32→bf16.
    {
        const int64_t C = 3, T = 4, H = 7, W = 5000;
        auto v = randn(size_t(C * T * H * W), 41);
        Tensor src = upload(v, {C, T, H, W});
        Out dst = out({C, 5, H, W});
        ops::fill(dst.t, 0.f);
        ops::copy(src.slice(1, 1, 3), dst.t.slice(1, 2, 4));
        std::vector<double> r(size_t(C * 5 * H * W), 0.0);
        for (int64_t c = 0; c < C; ++c)
            for (int64_t t = 0; t < 2; ++t)
                for (int64_t i = 0; i < H * W; ++i)
                    r[size_t((c * 5 + t + 2) * H * W + i)] = v[size_t((c * T + t + 1) * H * W + i)];
        EXPECT_CLOSE(dst.t, r, 0.0, "row copy of a frame slice");
        check_guards(dst, "row copy");
        Tensor many = upload(randn(size_t(70000 * 3), 42), {70000, 3});
        Tensor hb = be->empty(DType::BF16, {70000, 2});
        ops::copy(many.slice(1, 1, 3), hb);
        Out back = out({70000, 2});
        ops::copy(hb, back.t);
        auto mv = randn(size_t(70000 * 3), 42);
        std::vector<double> r2(size_t(70000 * 2));
        for (int64_t i = 0; i < 70000; ++i)
            for (int j = 0; j < 2; ++j) r2[size_t(i * 2 + j)] = bf16r(mv[size_t(i * 3 + 1 + j)]);
        EXPECT_CLOSE(back.t, r2, 0.0, "row copy f32→bf16, 70,000 rows");
    }
}

TEST_F(CudaOps, LinComb) {
    const int64_t n = 100003;
    std::vector<std::vector<float>> xs;
    std::vector<Tensor> ts;
    for (int k = 0; k < 4; ++k) {
        xs.push_back(randn(size_t(n), 60 + k));
        ts.push_back(upload(xs.back(), {n}));
    }
    const float coef[4] = {0.5f, -1.25f, 3.0f, 1e-3f};
    for (int m = 1; m <= 4; ++m) {
        std::vector<const Tensor*> in;
        for (int k = 0; k < m; ++k) in.push_back(&ts[size_t(k)]);
        Out y = out({n});
        ops::lincomb(in.data(), coef, m, y.t);
        std::vector<double> ref(size_t(n), 0.0);
        for (int k = 0; k < m; ++k)
            for (int64_t i = 0; i < n; ++i) ref[size_t(i)] += double(coef[k]) * xs[size_t(k)][size_t(i)];
        EXPECT_CLOSE(y.t, ref, 1e-6, cat("lincomb n=", m));
        check_guards(y, "lincomb");
    }
}

TEST_F(CudaOps, PatchifyUnpatchifyEmbedding) {
    for (int pt : {1, 2}) {
        const int64_t C = 3, T = 2 * pt, H = 6, W = 4;
        const int ph = 2, pw = 2;
        auto xv = randn(size_t(C * T * H * W), 50 + pt);
        const int64_t Tp = T / pt, Hp = H / ph, Wp = W / pw, F = C * pt * ph * pw, L = Tp * Hp * Wp;
        Out y = out({L, F});
        dispatch(*be, PatchifyArgs{upload(xv, {C, T, H, W}), pt, ph, pw, y.t});
        std::vector<double> ref(size_t(L * F));
        for (int64_t t = 0; t < Tp; ++t)
            for (int64_t h = 0; h < Hp; ++h)
                for (int64_t w = 0; w < Wp; ++w)
                    for (int64_t c = 0; c < C; ++c)
                        for (int p = 0; p < pt; ++p)
                            for (int q = 0; q < ph; ++q)
                                for (int r = 0; r < pw; ++r)
                                    ref[size_t(((t * Hp + h) * Wp + w) * F + ((c * pt + p) * ph + q) * pw + r)] =
                                        xv[size_t(((c * T + t * pt + p) * H + h * ph + q) * W + w * pw + r)];
        EXPECT_CLOSE(y.t, ref, 0.0, cat("patchify pt", pt));
        check_guards(y, "patchify");

        // unpatchify of [L + 3 padding rows, pt·ph·pw·C] (features (p, q, r, c))
        auto uv = randn(size_t((L + 3) * F), 60 + pt);
        Out u = out({C, T, H, W});
        dispatch(*be, UnpatchifyArgs{upload(uv, {L + 3, F}), Tp, Hp, Wp, pt, ph, pw, u.t});
        std::vector<double> uref(size_t(C * T * H * W));
        for (int64_t c = 0; c < C; ++c)
            for (int64_t t = 0; t < T; ++t)
                for (int64_t h = 0; h < H; ++h)
                    for (int64_t w = 0; w < W; ++w) {
                        const int64_t tok = ((t / pt) * Hp + h / ph) * Wp + w / pw;
                        const int64_t feat = (((t % pt) * ph + h % ph) * pw + w % pw) * C + c;
                        uref[size_t(((c * T + t) * H + h) * W + w)] = uv[size_t(tok * F + feat)];
                    }
        EXPECT_CLOSE(u.t, uref, 0.0, cat("unpatchify pt", pt));
        check_guards(u, "unpatchify");
    }
    auto tv = randn(11 * 7, 70);
    const std::vector<int32_t> ids = {3, 0, 10, 3, 5};
    Tensor idt = ops::from_host(*be, DType::I32, {5}, ids.data());
    for (DType t : {DType::F32, DType::BF16}) {
        Tensor table = ops::to_dtype(upload(tv, {11, 7}), t);
        std::vector<float> tt = ops::to_host_f32(table);
        std::vector<double> ref(35);
        for (int i = 0; i < 5; ++i)
            for (int c = 0; c < 7; ++c) ref[size_t(i * 7 + c)] = tt[size_t(ids[size_t(i)] * 7 + c)];
        Out y = out({5, 7});
        dispatch(*be, EmbeddingArgs{table, idt, y.t}, {DType::F32, table.dtype()});
        EXPECT_CLOSE(y.t, ref, 0.0, cat("embedding ", dtype_name(t)));
        check_guards(y, "embedding");
    }
}

// ---------------------------------------------------------------------------------------------
// VAE ops

TEST_F(CudaOps, Conv3dChannelNormUpsample) {
    struct Case {
        int64_t C, T, H, W, O, kt, kh, kw;
        Conv3dParams p;
    };
    std::vector<Case> cases;
    Conv3dParams causal;  // the VAE's CausalConv3d: time padded in front only
    causal.pad_t0 = 2, causal.pad_h0 = causal.pad_h1 = causal.pad_w0 = causal.pad_w1 = 1;
    cases.push_back({5, 4, 9, 11, 7, 3, 3, 3, causal});
    Conv3dParams frame;  // Conv2d per frame
    frame.pad_h0 = frame.pad_h1 = frame.pad_w0 = frame.pad_w1 = 1;
    cases.push_back({8, 2, 16, 12, 16, 1, 3, 3, frame});
    Conv3dParams down;  // the downsampling resample: pad right/bottom, stride 2
    down.pad_h1 = down.pad_w1 = 1, down.stride_h = down.stride_w = 2;
    cases.push_back({6, 1, 10, 14, 6, 1, 3, 3, down});
    Conv3dParams tdown;  // time_conv of downsample3d: stride 2 in time
    tdown.stride_t = 2;
    cases.push_back({4, 5, 6, 6, 4, 3, 1, 1, tdown});
    cases.push_back({3, 3, 5, 7, 4, 1, 1, 1, Conv3dParams{}});  // 1×1×1 (shortcut)
    int seed = 900;
    for (const Case& c : cases) {
        const Conv3dParams& p = c.p;
        const int64_t To = (c.T + p.pad_t0 + p.pad_t1 - c.kt) / p.stride_t + 1,
                      Ho = (c.H + p.pad_h0 + p.pad_h1 - c.kh) / p.stride_h + 1,
                      Wo = (c.W + p.pad_w0 + p.pad_w1 - c.kw) / p.stride_w + 1;
        auto xv = randn(size_t(c.C * c.T * c.H * c.W), ++seed),
             wv = randn(size_t(c.O * c.C * c.kt * c.kh * c.kw), ++seed, 0.2f), bv = randn(size_t(c.O), ++seed);
        Tensor b = upload(bv, {c.O});
        Out y = out({c.O, To, Ho, Wo});
        dispatch(*be, Conv3dArgs{upload(xv, {c.C, c.T, c.H, c.W}), upload(wv, {c.O, c.C, c.kt, c.kh, c.kw}), &b, p,
                                 y.t});
        std::vector<double> ref(size_t(c.O * To * Ho * Wo));
        for (int64_t o = 0; o < c.O; ++o)
            for (int64_t t = 0; t < To; ++t)
                for (int64_t hh = 0; hh < Ho; ++hh)
                    for (int64_t ww = 0; ww < Wo; ++ww) {
                        double acc = bv[size_t(o)];
                        for (int64_t ci = 0; ci < c.C; ++ci)
                            for (int64_t a = 0; a < c.kt; ++a)
                                for (int64_t q = 0; q < c.kh; ++q)
                                    for (int64_t r = 0; r < c.kw; ++r) {
                                        const int64_t ti = t * p.stride_t - p.pad_t0 + a,
                                                      hi = hh * p.stride_h - p.pad_h0 + q,
                                                      wi = ww * p.stride_w - p.pad_w0 + r;
                                        if (ti < 0 || ti >= c.T || hi < 0 || hi >= c.H || wi < 0 || wi >= c.W) continue;
                                        acc += double(xv[size_t(((ci * c.T + ti) * c.H + hi) * c.W + wi)]) *
                                               wv[size_t((((o * c.C + ci) * c.kt + a) * c.kh + q) * c.kw + r)];
                                    }
                        ref[size_t(((o * To + t) * Ho + hh) * Wo + ww)] = acc;
                    }
        // cuDNN may use TF32 tensor cores for fp32 convolutions (PyTorch's default too): ≈1e-3.
        const std::string what = cat("conv3d C", c.C, " T", c.T, " ", c.H, "x", c.W, " O", c.O, " k", c.kt, c.kh, c.kw,
                                     " s", p.stride_t, p.stride_h, p.stride_w);
        EXPECT_CLOSE(y.t, ref, 3e-3, what);
        check_guards(y, what);
    }

    // channel_rms_norm over C of [C, T, H, W]; upsample2x (nearest) of the same.
    const int64_t C = 6, T = 2, H = 3, W = 5, S = T * H * W;
    auto xv = randn(size_t(C * S), 950), gv = randn(size_t(C), 951);
    Tensor x = upload(xv, {C, T, H, W});
    Out y = out({C, T, H, W});
    dispatch(*be, ChannelRmsNormArgs{x, upload(gv, {C}), Activation::None, y.t});
    std::vector<double> ref(xv.size());
    for (int64_t s = 0; s < S; ++s) {
        double ss = 0;
        for (int64_t c = 0; c < C; ++c) ss += double(xv[size_t(c * S + s)]) * xv[size_t(c * S + s)];
        for (int64_t c = 0; c < C; ++c)
            ref[size_t(c * S + s)] =
                xv[size_t(c * S + s)] / std::max(std::sqrt(ss), 1e-12) * std::sqrt(double(C)) * gv[size_t(c)];
    }
    EXPECT_CLOSE(y.t, ref, 1e-5, "channel_rms_norm");
    check_guards(y, "channel_rms_norm");
    Out ys = out({C, T, H, W});  // fused with SiLU (the VAE's norm → SiLU)
    dispatch(*be, ChannelRmsNormArgs{x, upload(gv, {C}), Activation::Silu, ys.t});
    for (double& v : ref) v = v / (1 + std::exp(-v));
    EXPECT_CLOSE(ys.t, ref, 1e-5, "channel_rms_norm + silu");
    check_guards(ys, "channel_rms_norm + silu");
    Out u = out({C, T, 2 * H, 2 * W});
    dispatch(*be, Upsample2xArgs{x, u.t});
    std::vector<double> uref(size_t(C * T * 4 * H * W));
    for (int64_t p = 0; p < C * T; ++p)
        for (int64_t Y = 0; Y < 2 * H; ++Y)
            for (int64_t X = 0; X < 2 * W; ++X)
                uref[size_t((p * 2 * H + Y) * 2 * W + X)] = xv[size_t((p * H + Y / 2) * W + X / 2)];
    EXPECT_CLOSE(u.t, uref, 0.0, "upsample2x");
    check_guards(u, "upsample2x");
}

TEST_F(CudaOps, AllocatorReusesBlocks) {
    // The same op sequence twice: the second pass must not reserve more device memory.
    auto step = [&] {
        Tensor x = randn_tensor(*be, {2, 300, 256}, 80);
        Tensor w = randn_tensor(*be, {512, 256}, 81, 0.1f);
        Tensor h = ops::layer_norm(x, nullptr, nullptr, 1e-6f);
        Tensor y = ops::linear(h, w, nullptr, Activation::GeluTanh);
        be->synchronize();
    };
    step();
    const MemoryStats s1 = be->memory_stats();
    for (int i = 0; i < 3; ++i) step();
    const MemoryStats s2 = be->memory_stats();
    EXPECT_EQ(s1.reserved, s2.reserved) << "cudaMalloc on the hot path";
    EXPECT_GT(s2.peak, 0u);
}

TEST_F(CudaOps, ErrorsAreLoud) {
    expect_error([&] { make_cuda_backend(cuda_device_count()); }, {"[cuda]", "device"});
    EXPECT_TRUE(be->supports(Conv3dArgs::kName, DType::F32, DType::F32));
    EXPECT_TRUE(be->supports(LinearArgs::kName, DType::F32, DType::BF16));
    EXPECT_TRUE(be->supports(LinearArgs::kName, DType::BF16, DType::BF16));  // bf16 activations between linears
    EXPECT_FALSE(be->supports(LinearArgs::kName, DType::F16, DType::BF16));
    Tensor xh = be->empty(DType::F16, {2, 8});
    Tensor wb = be->empty(DType::BF16, {4, 8});
    Tensor y = be->empty(DType::F32, {2, 4});
    expect_error([&] { dispatch(*be, LinearArgs{xh, wb, nullptr, Activation::None, y}, {xh.dtype(), wb.dtype()}); },
                 {"cuda", "linear", "f16"});
}

}  // namespace
}  // namespace wanrt::test
