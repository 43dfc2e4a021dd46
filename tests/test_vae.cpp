// Wan VAE golden tests (vae.safetensors with weights from the safetensors file and from
// vae_weights.pth; the VAE inside pipeline_t2v.safetensors, another config), streaming invariants
// and the bad-input table. Every config and shape comes from the fixture files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/vae.h"
#include "models/vae_blocks.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace wanrt;

namespace {

std::string fixture(const std::string& name) {
    return test::fixture_path(name);
}

std::shared_ptr<Backend> cpu() {
    static auto be = make_cpu_backend();
    return be;
}

// The golden tests also run on WANRT_TEST_DEVICE (e.g. cuda, on a GPU machine), where conv3d uses
// TF32 tensor cores as PyTorch does by default: a looser tolerance there.
std::shared_ptr<Backend> golden_backend() {
    static auto be = [] {
        auto device = test::test_device();
        return device ? device : cpu();
    }();
    return be;
}
double golden_tol() { return golden_backend()->name() == "cpu" ? 1e-4 : 1e-2; }

std::vector<double> read_f64(const TensorSource& src, const std::string& name, Shape* shape) {
    const StoredTensor* t = src.find(name);
    if (!t) throw std::runtime_error("fixture tensor missing: " + name);
    std::vector<double> v(static_cast<size_t>(shape_numel(t->shape)));
    convert_elements(t->data, t->dtype, v.data(), DType::F64, int64_t(v.size()));
    *shape = t->shape;
    return v;
}

// Fixture tensor as an f32 tensor on `be` (default: the CPU backend), leading batch dim of 1 dropped.
Tensor load_input(const TensorSource& src, const std::string& name, Backend* be = nullptr) {
    Shape s;
    const auto v = read_f64(src, name, &s);
    std::vector<float> f(v.begin(), v.end());
    if (s.size() == 5 && s[0] == 1) s.erase(s.begin());
    return ops::from_host(be ? *be : *cpu(), DType::F32, s, f.data());
}

// The fixture's weights without its in.*/out.*/mid.* tensors (the loader rejects unknown names).
class WeightsOnly final : public TensorSource {
public:
    explicit WeightsOnly(std::shared_ptr<TensorSource> src) : src_(std::move(src)) {}
    std::string origin() const override { return src_->origin(); }
    std::vector<std::string> names() const override {
        std::vector<std::string> r;
        for (auto& n : src_->names())
            if (!is_data(n)) r.push_back(n);
        return r;
    }
    const StoredTensor* find(const std::string& n) const override { return is_data(n) ? nullptr : src_->find(n); }
    std::shared_ptr<const void> keepalive() const override { return src_->keepalive(); }

private:
    static bool is_data(const std::string& n) {
        return n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0;
    }
    std::shared_ptr<TensorSource> src_;
};

std::shared_ptr<TensorSource> weights_only(std::shared_ptr<TensorSource> s) {
    return std::make_shared<WeightsOnly>(std::move(s));
}

struct Err {
    double rel, max_abs;
};
Err compare(const Tensor& out, const std::vector<double>& ref) {
    const auto o = ops::to_host_f32(out);
    EXPECT_EQ(o.size(), ref.size());
    double num = 0, den = 0, mx = 0;
    for (size_t i = 0; i < std::min(o.size(), ref.size()); ++i) {
        const double d = double(o[i]) - ref[i];
        num += d * d, den += ref[i] * ref[i], mx = std::max(mx, std::fabs(d));
    }
    return {std::sqrt(num / std::max(den, 1e-300)), mx};
}

Shape drop_batch(Shape s) {
    if (s.size() == 5 && s[0] == 1) s.erase(s.begin());
    return s;
}

// Returns the rel-L2 errors {encode mu, decode}.
std::pair<double, double> golden(const std::shared_ptr<TensorSource>& weights, const char* label,
                                 DType conv_dtype = DType::F32, double tol = golden_tol(),
                                 int64_t split_min_pixels = VaeConfig().split_min_pixels,
                                 bool half_activations = true) {
    auto fx = test::open_fixture("vae.safetensors");
    VaeConfig cfg = VaeConfig::from_json(fx->metadata().at("config"));
    cfg.conv_dtype = conv_dtype;
    cfg.split_min_pixels = split_min_pixels;
    cfg.half_activations = half_activations;
    auto be = golden_backend();
    auto vae = WanVae::load(weights, cfg, be);

    Shape mu_shape, dec_shape;
    const auto mu_ref = read_f64(*fx, "out.mu", &mu_shape);
    const auto dec_ref = read_f64(*fx, "out.decoded", &dec_shape);

    Tensor mu = vae->encode(load_input(*fx, "in.video", be.get()));
    EXPECT_EQ(mu.shape(), drop_batch(mu_shape));
    const Err e1 = compare(mu, mu_ref);
    std::printf("[golden %s] encode mu %s: rel-L2 %.3g, max abs %.3g\n", label, mu.describe().c_str(), e1.rel,
                e1.max_abs);
    EXPECT_LT(e1.rel, tol);

    Tensor dec = vae->decode(load_input(*fx, "in.z", be.get()));
    EXPECT_EQ(dec.shape(), drop_batch(dec_shape));
    const Err e2 = compare(dec, dec_ref);
    std::printf("[golden %s] decode %s: rel-L2 %.3g, max abs %.3g\n", label, dec.describe().c_str(), e2.rel,
                e2.max_abs);
    EXPECT_LT(e2.rel, tol);
    EXPECT_EQ(mu.dtype(), DType::F32) << "encode returns f32 whatever the activations";
    EXPECT_EQ(dec.dtype(), DType::F32) << "decode returns f32 whatever the activations";
    return {e1.rel, e2.rel};
}

std::shared_ptr<WanVae> fixture_vae(DType conv_dtype = DType::F32) {
    auto fx = test::open_fixture("vae.safetensors");
    VaeConfig cfg = VaeConfig::from_json(fx->metadata().at("config"));
    cfg.conv_dtype = conv_dtype;
    return WanVae::load(weights_only(fx), cfg, cpu());
}

Tensor random_tensor(const Shape& s, uint32_t seed, float scale = 1.0f) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-scale, scale);
    std::vector<float> v(static_cast<size_t>(shape_numel(s)));
    for (auto& x : v) x = d(g);
    return ops::from_host(*cpu(), DType::F32, s, v.data());
}

void expect_bitwise(const Tensor& a, const Tensor& b, const char* what) {
    ASSERT_EQ(a.shape(), b.shape()) << what;
    const auto x = ops::to_host_f32(a), y = ops::to_host_f32(b);
    size_t diff = 0;
    for (size_t i = 0; i < x.size(); ++i) diff += x[i] != y[i];
    EXPECT_EQ(diff, 0u) << what;
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
    try {
        fn();
        ADD_FAILURE() << "no error; expected " << parts[0];
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        for (auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
    }
}

}  // namespace

TEST(VaeGolden, WeightsFromSafetensors) {
    golden(weights_only(open_safetensors(fixture("vae.safetensors"))), "safetensors");
}
TEST(VaeGolden, WeightsFromPth) {
    golden(open_pth(fixture("vae_weights.pth")), "pth");
}
// The highest-resolution layers one frame at a time (the default from 720p up) instead of whole
// chunks: the reference's result too.
TEST(VaeGolden, SplitFrames) {
    golden(weights_only(open_safetensors(fixture("vae.safetensors"))), "split frames", DType::F32, golden_tol(), 0);
}
// Half-precision convs with f32 activations (half_activations off, the path before session 10): on
// the CPU only the weights are rounded; CUDA also rounds each conv's input and output.
TEST(VaeGolden, HalfPrecisionConvs) {
    auto w = weights_only(open_safetensors(fixture("vae.safetensors")));
    golden(w, "f16 convs, f32 activations", DType::F16, 5e-3, VaeConfig().split_min_pixels, false);
    golden(w, "bf16 convs, f32 activations", DType::BF16, 3e-2, VaeConfig().split_min_pixels, false);
}

// Half convs with half activations (the default for half convs): every norm, SiLU, add, resample
// and cache is rounded to the conv dtype too. Measured on the CPU (rel-L2 vs float64, encode mu /
// decode): f16 5.3e-4 / 2.0e-3 (split frames 5.4e-4 / 2.0e-3), bf16 4.3e-3 / 1.6e-2 (f32 activations:
// f16 3.0e-4 / 1.0e-3, bf16 2.5e-3 / 7.8e-3); the bounds (2.5e-3, 2e-2) sit just above the decode's. The errors must
// differ from the f32-activation path's: equal errors would mean the half path silently ran in f32.
TEST(VaeGolden, HalfActivations) {
    auto w = weights_only(open_safetensors(fixture("vae.safetensors")));
    const int64_t never = VaeConfig().split_min_pixels;
    const auto f16 = golden(w, "f16 convs, f16 activations", DType::F16, 2.5e-3, never, true);
    const auto f16_f32act = golden(w, "f16 convs, f32 activations", DType::F16, 5e-3, never, false);
    EXPECT_NE(f16.first, f16_f32act.first);
    EXPECT_NE(f16.second, f16_f32act.second);
    const auto bf16 = golden(w, "bf16 convs, bf16 activations", DType::BF16, 2e-2, never, true);
    const auto bf16_f32act = golden(w, "bf16 convs, f32 activations", DType::BF16, 3e-2, never, false);
    EXPECT_NE(bf16.first, bf16_f32act.first);
    EXPECT_NE(bf16.second, bf16_f32act.second);
    // Frame by frame (split frames: per_frame joins half frames) holds the same bound.
    golden(w, "f16 activations, split frames", DType::F16, 2.5e-3, 0, true);
}

// The pipeline fixture's VAE has another config (num_res_blocks 1, 32×48 frames): decoding its final
// latent and clamping to [-1, 1] gives the pipeline's output video.
TEST(VaeGolden, PipelineVaeDecode) {
    auto fx = test::open_fixture("pipeline_t2v.safetensors");
    const auto cfgs = nlohmann::json::parse(fx->metadata().at("configs"));
    const VaeConfig cfg = VaeConfig::from_json(cfgs.at("vae").dump());
    auto vae = WanVae::load(fx, cfg, golden_backend(), "vae.");
    Shape vs;
    const auto ref = read_f64(*fx, "out.video", &vs);
    Tensor v = vae->decode(load_input(*fx, "out.latent", golden_backend().get()));
    auto h = ops::to_host_f32(v);
    for (auto& x : h) x = std::clamp(x, -1.0f, 1.0f);
    const Err e = compare(ops::from_host(*cpu(), DType::F32, v.shape(), h.data()), ref);
    EXPECT_EQ(v.shape(), vs);
    std::printf("[golden pipeline] decode+clamp %s: rel-L2 %.3g, max abs %.3g\n", v.describe().c_str(), e.rel,
                e.max_abs);
    EXPECT_LT(e.rel, golden_tol());
}

// Feeding the stream objects chunk by chunk equals whole-clip encode/decode bit for bit, results
// are causal (a prefix of the clip gives a prefix of the output), and reset() starts a new clip.
static void stream_equals_whole(const std::shared_ptr<WanVae>& vae) {
    const int64_t z = vae->config().z_dim;
    Tensor video = random_tensor({3, 9, 16, 24}, 1);
    Tensor whole = vae->encode(video);
    ASSERT_EQ(whole.shape(), (Shape{z, 3, 2, 3}));
    VaeStreamEncoder enc(vae);
    std::vector<Tensor> parts;
    parts.push_back(enc.push(video.slice(1, 0, 1)));
    parts.push_back(enc.push(video.slice(1, 1, 5)));
    parts.push_back(enc.push(video.slice(1, 5, 9)));
    EXPECT_EQ(enc.frames_pushed(), 9);
    expect_bitwise(ops::concat(parts, 1), whole, "stream encode vs encode");
    expect_bitwise(vae->encode(video.slice(1, 0, 5)), whole.slice(1, 0, 2), "encode prefix");
    enc.reset();
    expect_bitwise(enc.push(video.slice(1, 0, 1)), whole.slice(1, 0, 1), "encode after reset");

    Tensor lat = random_tensor({z, 3, 2, 3}, 2);
    Tensor dec = vae->decode(lat);
    ASSERT_EQ(dec.shape(), (Shape{3, 9, 16, 24}));
    VaeStreamDecoder d1(vae), d2(vae);
    std::vector<Tensor> frames;
    Tensor other = random_tensor({z, 1, 2, 3}, 3);
    for (int64_t t = 0; t < 3; ++t) {
        Tensor f = d1.push(lat.slice(1, t, t + 1));
        EXPECT_EQ(f.size(1), t == 0 ? 1 : 4);
        frames.push_back(f);
        d2.push(other);  // an unrelated stream interleaved: caches are per object
    }
    expect_bitwise(ops::concat(frames, 1), dec, "stream decode vs decode");
    expect_bitwise(vae->decode(lat.slice(1, 0, 2)), dec.slice(1, 0, 5), "decode prefix");
    d1.reset();
    expect_bitwise(d1.push(lat.slice(1, 0, 1)), dec.slice(1, 0, 1), "decode after reset");
}

TEST(VaeStream, ChunkedEqualsWholeAndIsCausal) {
    stream_equals_whole(fixture_vae());
}
// With half activations the caches hold f16 frames: chunked is still whole-clip bit for bit.
TEST(VaeStream, HalfActivationsChunkedEqualsWhole) {
    stream_equals_whole(fixture_vae(DType::F16));
}

TEST(VaeBadInput, Table) {
    auto vae = fixture_vae();
    const int64_t z = vae->config().z_dim;
    auto be = cpu();
    expect_error([&] { vae->encode(ops::zeros(*be, {3, 8, 16, 16})); }, {"[vae]", "8 frames", "1 + 4k", "5 or 9"});
    expect_error(
        [&] {
            vae->encode(ops::zeros(*be, {3, 5, 30, 16}));
        },
        {"[vae]", "height 30", "multiple of 8", "24 or 32"});
    expect_error([&] { vae->encode(ops::zeros(*be, {3, 5, 16, 12})); }, {"width 12", "8 or 16"});
    expect_error([&] { vae->encode(ops::zeros(*be, {4, 5, 16, 16})); }, {"[vae]", "[3, T, H, W]"});
    expect_error(
        [&] {
            vae->decode(ops::zeros(*be, {z - 1, 2, 2, 2}));
        },
        {"[vae]", cat(z - 1, " channels"), cat("takes ", z)});
    expect_error([&] { vae->decode(ops::zeros(*be, {z, 2, 2})); }, {"[vae]", "latent must be"});
    VaeStreamEncoder enc(vae);
    expect_error([&] { enc.push(ops::zeros(*be, {3, 4, 16, 16})); }, {"[vae]", "expected 1"});
    enc.push(ops::zeros(*be, {3, 1, 16, 16}));
    expect_error([&] { enc.push(ops::zeros(*be, {3, 1, 16, 16})); }, {"expected 4"});
    expect_error([&] { enc.push(ops::zeros(*be, {3, 4, 24, 16})); }, {"size changed"});
    VaeStreamDecoder dec(vae);
    expect_error([&] { dec.push(ops::zeros(*be, {z, 2, 2, 2})); }, {"one latent frame per push"});
    // Config / weight mismatches: a config that does not fit the weights fails at load.
    auto fx = test::open_fixture("vae.safetensors");
    VaeConfig bad = VaeConfig::from_json(fx->metadata().at("config"));
    bad.num_res_blocks += 1;
    expect_error([&] { WanVae::load(weights_only(fx), bad, be); }, {"[weights]", "missing tensor"});
    bad = VaeConfig::from_json(fx->metadata().at("config"));
    bad.dim *= 2;
    expect_error([&] { WanVae::load(weights_only(fx), bad, be); }, {"[weights]", "has shape"});
    expect_error([&] { VaeConfig::from_json("{\"dim\": 8, \"temperal_downsample\": [true]}"); },
                 {"[vae]", "temperal_downsample"});
    expect_error([&] { VaeConfig::from_json("{\"dim\": "); }, {"[vae]", "JSON"});
}

// ---------------------------------------------------------------------------------------------
// Resample modes, chunked with their caches, against float64 loops of the whole-sequence
// semantics (docs/wan21.md §3.4).
namespace {

struct HostVideo {  // [C, T, H, W] in float64
    int64_t C = 0, T = 0, H = 0, W = 0;
    std::vector<double> v;
    double& at(int64_t c, int64_t t, int64_t h, int64_t w) { return v[size_t(((c * T + t) * H + h) * W + w)]; }
    double get(int64_t c, int64_t t, int64_t h, int64_t w) const {
        return (t < 0 || t >= T || h < 0 || h >= H || w < 0 || w >= W) ? 0.0 : v[size_t(((c * T + t) * H + h) * W + w)];
    }
};
HostVideo make_video(int64_t C, int64_t T, int64_t H, int64_t W) {
    return {C, T, H, W, std::vector<double>(size_t(C * T * H * W))};
}

std::vector<float> rand_vec(int64_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(g);
    return v;
}

// Per-frame 3×3 conv, w [O, C, 3, 3], zero pad pad0 (top/left) / pad1, stride s.
HostVideo conv2d_ref(const HostVideo& x, const std::vector<float>& w, const std::vector<float>& b, int64_t O, int pad0,
                     int pad1, int s) {
    HostVideo y = make_video(O, x.T, (x.H + pad0 + pad1 - 3) / s + 1, (x.W + pad0 + pad1 - 3) / s + 1);
    for (int64_t o = 0; o < O; ++o)
        for (int64_t t = 0; t < x.T; ++t)
            for (int64_t h = 0; h < y.H; ++h)
                for (int64_t q = 0; q < y.W; ++q) {
                    double acc = b[size_t(o)];
                    for (int64_t c = 0; c < x.C; ++c)
                        for (int i = 0; i < 3; ++i)
                            for (int j = 0; j < 3; ++j)
                                acc += double(w[size_t(((o * x.C + c) * 3 + i) * 3 + j)]) *
                                       x.get(c, t, h * s + i - pad0, q * s + j - pad0);
                    y.at(o, t, h, q) = acc;
                }
    return y;
}

// Temporal (3, 1, 1) conv, w [O, C, 3], zero pad `front` frames before, stride s.
HostVideo timeconv_ref(const HostVideo& x, const std::vector<float>& w, const std::vector<float>& b, int64_t O,
                       int front, int s) {
    HostVideo y = make_video(O, (x.T + front - 3) / s + 1, x.H, x.W);
    for (int64_t o = 0; o < O; ++o)
        for (int64_t t = 0; t < y.T; ++t)
            for (int64_t h = 0; h < x.H; ++h)
                for (int64_t q = 0; q < x.W; ++q) {
                    double acc = b[size_t(o)];
                    for (int64_t c = 0; c < x.C; ++c)
                        for (int i = 0; i < 3; ++i)
                            acc += double(w[size_t((o * x.C + c) * 3 + i)]) * x.get(c, t * s + i - front, h, q);
                    y.at(o, t, h, q) = acc;
                }
    return y;
}

HostVideo upsample_ref(const HostVideo& x) {
    HostVideo y = make_video(x.C, x.T, 2 * x.H, 2 * x.W);
    for (int64_t c = 0; c < x.C; ++c)
        for (int64_t t = 0; t < x.T; ++t)
            for (int64_t h = 0; h < y.H; ++h)
                for (int64_t q = 0; q < y.W; ++q) y.at(c, t, h, q) = x.get(c, t, h / 2, q / 2);
    return y;
}

HostVideo frames_ref(const HostVideo& x, int64_t t0, int64_t t1) {
    HostVideo y = make_video(x.C, t1 - t0, x.H, x.W);
    for (int64_t c = 0; c < x.C; ++c)
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t h = 0; h < x.H; ++h)
                for (int64_t q = 0; q < x.W; ++q) y.at(c, t - t0, h, q) = x.get(c, t, h, q);
    return y;
}

HostVideo concat_t(const HostVideo& a, const HostVideo& b) {
    HostVideo y = make_video(a.C, a.T + b.T, a.H, a.W);
    for (int64_t c = 0; c < a.C; ++c)
        for (int64_t t = 0; t < y.T; ++t)
            for (int64_t h = 0; h < a.H; ++h)
                for (int64_t q = 0; q < a.W; ++q)
                    y.at(c, t, h, q) = t < a.T ? a.get(c, t, h, q) : b.get(c, t - a.T, h, q);
    return y;
}

struct ResampleCase {
    vae::Resample rs;
    std::vector<float> w, b, tw, tb;  // resample.1 and time_conv weights (host copies)
};

ResampleCase make_resample(vae::ResampleMode mode, int64_t C, uint32_t seed) {
    ResampleCase k;
    const bool up = mode == vae::ResampleMode::Up2d || mode == vae::ResampleMode::Up3d;
    const int64_t O = up ? C / 2 : C;
    k.w = rand_vec(O * C * 9, seed), k.b = rand_vec(O, seed + 1);
    k.rs.mode = mode;
    k.rs.conv.w = ops::from_host(*cpu(), DType::F32, {O, C, 1, 3, 3}, k.w.data());
    k.rs.conv.b = ops::from_host(*cpu(), DType::F32, {O}, k.b.data());
    if (mode == vae::ResampleMode::Up3d || mode == vae::ResampleMode::Down3d) {
        const int64_t TO = mode == vae::ResampleMode::Up3d ? 2 * C : C;
        k.tw = rand_vec(TO * C * 3, seed + 2), k.tb = rand_vec(TO, seed + 3);
        k.rs.time_conv.w = ops::from_host(*cpu(), DType::F32, {TO, C, 3, 1, 1}, k.tw.data());
        k.rs.time_conv.b = ops::from_host(*cpu(), DType::F32, {TO}, k.tb.data());
        if (mode == vae::ResampleMode::Up3d)
            k.rs.time_conv.pt = 1;
        else
            k.rs.time_conv.st = 2;
    }
    return k;
}

// Whole-sequence reference of each mode.
HostVideo resample_ref(const ResampleCase& k, const HostVideo& x) {
    const int64_t C = x.C;
    switch (k.rs.mode) {
        case vae::ResampleMode::Up2d:
            return conv2d_ref(upsample_ref(x), k.w, k.b, C / 2, 1, 1, 1);
        case vae::ResampleMode::Down2d:
            return conv2d_ref(x, k.w, k.b, C, 0, 1, 2);
        case vae::ResampleMode::Down3d: {
            // [s0] ++ conv_s2(s0 … s_{T−1}), s = the per-frame downsample.
            const HostVideo sd = conv2d_ref(x, k.w, k.b, C, 0, 1, 2);
            return concat_t(frames_ref(sd, 0, 1), timeconv_ref(sd, k.tw, k.tb, C, 0, 2));
        }
        case vae::ResampleMode::Up3d: {
            // Frame 0 passes; frames 1… form a causal sequence (2 zero frames in front) whose time
            // conv gives 2C channels = frames 2τ (first C) and 2τ + 1 (last C).
            HostVideo seq = frames_ref(x, 0, 1);
            if (x.T > 1) {
                const HostVideo tc = timeconv_ref(frames_ref(x, 1, x.T), k.tw, k.tb, 2 * C, 2, 1);
                HostVideo il = make_video(C, 2 * tc.T, x.H, x.W);
                for (int64_t c = 0; c < C; ++c)
                    for (int64_t t = 0; t < il.T; ++t)
                        for (int64_t h = 0; h < x.H; ++h)
                            for (int64_t q = 0; q < x.W; ++q) il.at(c, t, h, q) = tc.get((t % 2) * C + c, t / 2, h, q);
                seq = concat_t(seq, il);
            }
            return conv2d_ref(upsample_ref(seq), k.w, k.b, C / 2, 1, 1, 1);
        }
    }
    return {};
}

}  // namespace

TEST(VaeBlocks, ResampleModesChunkedMatchFloat64) {
    struct Case {
        const char* name;
        vae::ResampleMode mode;
        int64_t C, H, W;
        std::vector<int64_t> chunks;  // frames per push, as the encoder / decoder feed this stage
    };
    const Case cases[] = {
        {"upsample2d", vae::ResampleMode::Up2d, 4, 5, 7, {1, 4, 4}},
        {"upsample3d (latent rate)", vae::ResampleMode::Up3d, 4, 5, 7, {1, 1, 1, 1}},
        {"upsample3d (2 frames/chunk, Winograd)", vae::ResampleMode::Up3d, 4, 9, 10, {1, 2, 2}},
        {"downsample2d", vae::ResampleMode::Down2d, 3, 8, 10, {1, 4}},
        {"downsample3d (pixel rate)", vae::ResampleMode::Down3d, 3, 8, 6, {1, 4, 4}},
        {"downsample3d (2 frames/chunk)", vae::ResampleMode::Down3d, 3, 6, 8, {1, 2, 2, 2}},
    };
    uint32_t seed = 100;
    for (const Case& c : cases) {
        const ResampleCase k = make_resample(c.mode, c.C, seed += 10);
        int64_t T = 0;
        for (int64_t n : c.chunks) T += n;
        const auto xv = rand_vec(c.C * T * c.H * c.W, seed + 5);
        HostVideo xh = make_video(c.C, T, c.H, c.W);
        std::copy(xv.begin(), xv.end(), xh.v.begin());
        const Tensor x = ops::from_host(*cpu(), DType::F32, {c.C, T, c.H, c.W}, xv.data());
        auto chunked = [&](const vae::Resample& rs, const Tensor& xin) {
            VaeFeatCache fc;
            std::vector<Tensor> outs;
            int64_t t = 0;
            for (int64_t n : c.chunks) {
                fc.idx = 0;
                outs.push_back(vae::resample_forward(rs, xin.slice(1, t, t + n), fc));
                t += n;
            }
            return ops::concat(outs, 1);
        };
        const Tensor y = chunked(k.rs, x);
        const HostVideo ref = resample_ref(k, xh);
        ASSERT_EQ(y.shape(), (Shape{ref.C, ref.T, ref.H, ref.W})) << c.name;
        const Err e = compare(y, ref.v);
        std::printf("[resample] %-38s %s: rel-L2 %.2e, max abs %.2e\n", c.name, y.describe().c_str(), e.rel, e.max_abs);
        EXPECT_LT(e.rel, 1e-5) << c.name;
        // Half activations: f16 weights and input keep every intermediate (caches, Up3d's zero
        // history, the time conv's frame interleave) in f16; only roundings separate it from float64
        // (measured 2.9e-4 … 5.1e-4 rel-L2 on the CPU, weights rounded too).
        vae::Resample h = k.rs;
        h.conv.w = ops::to_dtype(k.rs.conv.w, DType::F16);
        if (h.time_conv.w.defined()) h.time_conv.w = ops::to_dtype(k.rs.time_conv.w, DType::F16);
        const Tensor yh = chunked(h, ops::to_dtype(x, DType::F16));
        EXPECT_EQ(yh.dtype(), DType::F16) << c.name;
        const Err eh = compare(yh, ref.v);
        std::printf("[resample] %-38s %s: rel-L2 %.2e, max abs %.2e\n", c.name, yh.describe().c_str(), eh.rel,
                    eh.max_abs);
        EXPECT_LT(eh.rel, 1e-3) << c.name << " in f16";
        EXPECT_GT(eh.rel, e.rel) << c.name << ": the f16 path rounds";
    }
}
