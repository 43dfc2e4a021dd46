// Wan2.2 VAE golden tests (vae22.safetensors, weights from the safetensors file and from
// vae22_weights.pth; the VAE of pipeline_ti2v.safetensors, another config), the parameter-free
// reshapes against plain loops, streaming invariants and bad input. Configs come from the files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/vae22.h"
#include "ops/clamp.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace wanrt;
using test::compare;

namespace {

std::shared_ptr<Backend> cpu() {
    static auto be = make_cpu_backend();
    return be;
}

// The goldens also run on WANRT_TEST_DEVICE (cuda on a GPU machine), where conv3d uses TF32 as
// PyTorch does by default: the official deployed error there, float32's on the CPU.
std::shared_ptr<Backend> golden_backend() {
    static auto be = [] {
        auto device = test::test_device();
        return device ? device : cpu();
    }();
    return be;
}
double golden_tol() { return golden_backend()->host_visible() ? 1e-5 : 1e-2; }

// A fixture tensor as f32 on be with a leading batch dim of 1 dropped.
Tensor input(Backend& be, const TensorSource& f, const std::string& name) {
    Tensor t = test::load_f32(be, f, name);
    Shape s = t.shape();
    if (s.size() == 5 && s[0] == 1) s.erase(s.begin());
    return ops::contiguous(t).reshape(s);
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

std::vector<float> meta_floats(const SafeTensorsFile& f, const std::string& key) {
    return test::meta_json(f, key).get<std::vector<float>>();
}

Vae22Config fixture_config(const SafeTensorsFile& fx) {
    return Vae22Config::from_json(test::meta(fx, "config"));
}

std::shared_ptr<Vae22Model> fixture_vae(std::shared_ptr<Backend> be = cpu(), DType conv_dtype = DType::F32) {
    auto fx = test::open_fixture("vae22.safetensors");
    Vae22Config cfg = fixture_config(*fx);
    cfg.conv_dtype = conv_dtype;
    return Vae22Model::load(std::make_shared<WeightsOnly>(fx), cfg, be);
}

void golden(std::shared_ptr<TensorSource> weights, const std::string& label) {
    auto fx = test::open_fixture("vae22.safetensors");
    auto be = golden_backend();
    // The fixture's mean/std are the official literals: the built-in constants must equal them.
    EXPECT_EQ(meta_floats(*fx, "latent_mean"), wan22_latent_mean());
    EXPECT_EQ(meta_floats(*fx, "latent_std"), wan22_latent_std());
    auto vae = Vae22Model::load(std::move(weights), fixture_config(*fx), be);
    std::printf("[%s on %s]\n", label.c_str(), be->name().c_str());
    const double tol = golden_tol();

    Tensor mu = vae->encode(input(*be, *fx, "in.video"));
    EXPECT_EQ(mu.shape(), (Shape{48, 3, 2, 3}));
    EXPECT_CLOSE(mu, test::load_f64(*fx, "out.mu"), tol, "encode mu");

    Tensor raw = vae->decode(input(*be, *fx, "in.z"));
    EXPECT_EQ(raw.shape(), (Shape{3, 9, 32, 48}));
    EXPECT_CLOSE(raw, test::load_f64(*fx, "out.decoded_raw"), tol, "decode (raw)");
    EXPECT_CLOSE(ops::clamp(raw, -1, 1), test::load_f64(*fx, "out.decoded"), tol, "decode clamped");
}

}  // namespace

TEST(Vae22Golden, WeightsFromSafetensors) {
    golden(std::make_shared<WeightsOnly>(test::open_fixture("vae22.safetensors")), "vae22.safetensors");
}

TEST(Vae22Golden, WeightsFromPth) {
    golden(open_pth(test::fixture_path("vae22_weights.pth")), "vae22_weights.pth");
}

// Half-precision conv weights (Vae22Config::conv_dtype), with f32 activations (half_activations off:
// the CPU widens the weights only) and with half activations (the default: every activation and
// cache rounded to the conv dtype). Measured on the CPU (rel-L2 vs float64, encode / decode):
// f32 activations f16 5.3e-4 / 7.9e-4, bf16 4.5e-3 / 5.4e-3; half activations f16 1.1e-3 / 1.4e-3,
// bf16 7.8e-3 / 1.1e-2; the half bounds (2e-3, 1.5e-2) sit just above. The two paths' errors must
// differ: equal errors would mean the half path silently ran in f32.
TEST(Vae22Golden, HalfPrecisionConvs) {
    auto fx = test::open_fixture("vae22.safetensors");
    auto be = golden_backend();
    const auto mu_ref = test::load_f64(*fx, "out.mu"), dec_ref = test::load_f64(*fx, "out.decoded_raw");
    for (DType dt : {DType::F16, DType::BF16}) {
        double err[2][2] = {};  // [half activations][encode, decode]
        for (bool half_act : {false, true}) {
            Vae22Config cfg = fixture_config(*fx);
            cfg.conv_dtype = dt;
            cfg.half_activations = half_act;
            auto vae = Vae22Model::load(std::make_shared<WeightsOnly>(fx), cfg, be);
            const double tol = dt == DType::F16 ? (half_act ? 2e-3 : 5e-3) : (half_act ? 1.5e-2 : 3e-2);
            const std::string what =
                cat(dtype_name(dt), " convs, ", half_act ? dtype_name(dt) : "f32", " activations: ");
            Tensor mu = vae->encode(input(*be, *fx, "in.video")), dec = vae->decode(input(*be, *fx, "in.z"));
            EXPECT_EQ(mu.dtype(), DType::F32) << what;
            EXPECT_EQ(dec.dtype(), DType::F32) << what;
            EXPECT_CLOSE(mu, mu_ref, tol, what + "encode");
            EXPECT_CLOSE(dec, dec_ref, tol, what + "decode");
            err[half_act][0] = test::compare(mu, mu_ref).rel_l2;
            err[half_act][1] = test::compare(dec, dec_ref).rel_l2;
        }
        EXPECT_NE(err[1][0], err[0][0]) << dtype_name(dt) << ": half-activation encode ran as f32";
        EXPECT_NE(err[1][1], err[0][1]) << dtype_name(dt) << ": half-activation decode ran as f32";
    }
}

// The 2×2 patchify channel order (r = column phase, q = row phase) and its inverse, exactly.
TEST(Vae22Golden, PatchifyOrder) {
    auto fx = test::open_fixture("vae22.safetensors");
    auto be = golden_backend();
    EXPECT_CLOSE(vae22::patchify2(input(*be, *fx, "in.video")), test::load_f64(*fx, "mid.patchified"), 1e-7,
                 "patchify");
    EXPECT_CLOSE(vae22::unpatchify2(input(*be, *fx, "mid.dec_out")), test::load_f64(*fx, "out.decoded_raw"), 1e-7,
                 "unpatchify(dec_out)");
}

// The pipeline fixture's VAE (another config, prefix "vae."): its final latents decode and clamp to
// the output videos, and the i2v conditioning frame encodes to mid.i2v.z.
TEST(Vae22Golden, PipelineVae) {
    auto fx = test::open_fixture("pipeline_ti2v.safetensors");
    auto be = golden_backend();
    const auto cfgs = test::meta_json(*fx, "configs");
    auto vae = Vae22Model::load(fx, Vae22Config::from_json(cfgs.at("vae").dump()), be, "vae.",
                                meta_floats(*fx, "latent_mean"), meta_floats(*fx, "latent_std"));
    for (const char* m : {"t2v", "i2v"}) {
        Tensor v = ops::clamp(vae->decode(test::load_f32(*be, *fx, cat("out.", m, ".latent"))), -1, 1);
        EXPECT_CLOSE(v, test::load_f64(*fx, cat("out.", m, ".video")), golden_tol(), cat(m, " decode+clamp"));
    }
    Tensor img = test::load_f32(*be, *fx, "mid.i2v.image_resized");  // [3, oh, ow]
    img = img.reshape({3, 1, img.size(1), img.size(2)});
    EXPECT_CLOSE(vae->encode(img), test::load_f64(*fx, "mid.i2v.z"), golden_tol(), "i2v encode");
}

// AvgDown3D and DupUp3D against the reference's view/permute/mean written as plain loops.
TEST(Vae22Blocks, ShortcutsMatchLoops) {
    auto be = cpu();
    const int64_t C = 4, T = 3, H = 4, W = 6;
    Tensor x = test::randn_tensor(*be, {C, T, H, W}, 7);
    const auto xv = ops::to_host_f32(x);
    auto at = [&](int64_t c, int64_t t, int64_t h, int64_t w) { return double(xv[((c * T + t) * H + h) * W + w]); };
    for (auto [ft, fs, out] : std::vector<std::tuple<int, int, int64_t>>{{2, 2, 8}, {1, 2, 4}, {2, 2, 16}, {2, 1, 4}}) {
        // AvgDown3D: pad = (ft − T % ft) % ft zero frames in front.
        const int64_t pad = (ft - T % ft) % ft, Tq = (T + pad) / ft, g = C * ft * fs * fs / out;
        std::vector<double> ref(size_t(out * Tq * (H / fs) * (W / fs)));
        for (int64_t o = 0; o < out; ++o)
            for (int64_t tq = 0; tq < Tq; ++tq)
                for (int64_t hq = 0; hq < H / fs; ++hq)
                    for (int64_t wq = 0; wq < W / fs; ++wq) {
                        double s = 0;
                        for (int64_t j = 0; j < g; ++j) {
                            int64_t k = o * g + j;  // k = ((c·ft + t′)·fs + h′)·fs + w′
                            const int64_t wp = k % fs, hp = (k / fs) % fs, tp = (k / fs / fs) % ft, c = k / fs / fs / ft;
                            const int64_t t = tq * ft + tp - pad;
                            s += t < 0 ? 0.0 : at(c, t, hq * fs + hp, wq * fs + wp);
                        }
                        ref[size_t(((o * Tq + tq) * (H / fs) + hq) * (W / fs) + wq)] = s / double(g);
                    }
        EXPECT_CLOSE(vae22::avg_down3d(x, out, ft, fs), ref, 1e-6, cat("AvgDown3D ft ", ft, " fs ", fs, " out ", out));
    }
    for (auto [ft, fs, out, first] :
         std::vector<std::tuple<int, int, int64_t, bool>>{{2, 2, 4, false}, {2, 2, 4, true}, {1, 2, 2, false}, {2, 2, 8, true},
                                                          {1, 2, 8, false}, {1, 2, 4, true}, {1, 2, 16, false},
                                                          {2, 2, 16, false}, {2, 2, 2, false}, {1, 2, 1, false}}) {
        // DupUp3D: channel c·rep + j of repeat_interleave viewed [out, ft, fs, fs, T, H, W].
        const int64_t rep = out * ft * fs * fs / C, drop = first ? ft - 1 : 0;
        const int64_t To = T * ft - drop, Ho = H * fs, Wo = W * fs;
        std::vector<double> ref(size_t(out * To * Ho * Wo));
        for (int64_t o = 0; o < out; ++o)
            for (int64_t to = 0; to < To; ++to)
                for (int64_t ho = 0; ho < Ho; ++ho)
                    for (int64_t wo = 0; wo < Wo; ++wo) {
                        const int64_t tt = to + drop;
                        const int64_t k = ((o * ft + tt % ft) * fs + ho % fs) * fs + wo % fs;
                        ref[size_t(((o * To + to) * Ho + ho) * Wo + wo)] = at(k / rep, tt / ft, ho / fs, wo / fs);
                    }
        Tensor up = vae22::dup_up3d(x, out, ft, fs, first);
        EXPECT_CLOSE(up, ref, 0, cat("DupUp3D ft ", ft, " out ", out, first ? " first" : ""));
        // The fused shortcut add equals the composition bit for bit.
        Tensor main = test::randn_tensor(*be, up.shape(), 9);
        EXPECT_CLOSE(vae22::add_dup_up3d(main, x, out, ft, fs, first), test::to_f64(ops::add(main, up)), 0,
                     cat("x + DupUp3D ft ", ft, " out ", out, first ? " first" : ""));
        // Frame by frame (the decoder's split temporal stage): each frame of the composition.
        for (int64_t t = 0; t < To; ++t)
            EXPECT_CLOSE(vae22::add_dup_up3d_frame(main.slice(1, t, t + 1), x, out, ft, fs, t, first),
                         test::to_f64(ops::add(main, up).slice(1, t, t + 1)), 0,
                         cat("frame ", t, " of x + DupUp3D ft ", ft, " out ", out, first ? " first" : ""));
    }
}

// The stream objects chunk by chunk equal whole-clip encode/decode bit for bit; prefixes give
// prefixes (causal), reset() starts a new clip.
static void stream_equals_whole(const std::shared_ptr<Vae22Model>& vae) {
    auto be = cpu();
    Tensor video = test::randn_tensor(*be, {3, 9, 32, 16}, 1, 0.5f);
    Tensor whole = vae->encode(video);
    ASSERT_EQ(whole.shape(), (Shape{48, 3, 2, 1}));
    Vae22StreamEncoder enc(vae);
    std::vector<Tensor> parts{enc.push(video.slice(1, 0, 1)), enc.push(video.slice(1, 1, 5)),
                              enc.push(video.slice(1, 5, 9))};
    EXPECT_EQ(enc.frames_pushed(), 9);
    EXPECT_CLOSE(ops::concat(parts, 1), test::to_f64(whole), 0, "stream encode vs encode");
    EXPECT_CLOSE(vae->encode(video.slice(1, 0, 5)), test::to_f64(whole.slice(1, 0, 2)), 0, "encode prefix");
    enc.reset();
    EXPECT_CLOSE(enc.push(video.slice(1, 0, 1)), test::to_f64(whole.slice(1, 0, 1)), 0, "encode after reset");

    Tensor lat = test::randn_tensor(*be, {48, 3, 2, 1}, 2);
    Tensor dec = vae->decode(lat);
    ASSERT_EQ(dec.shape(), (Shape{3, 9, 32, 16}));
    Vae22StreamDecoder d(vae);
    std::vector<Tensor> frames;
    for (int64_t t = 0; t < 3; ++t) {
        frames.push_back(d.push(lat.slice(1, t, t + 1)));
        EXPECT_EQ(frames.back().size(1), t == 0 ? 1 : 4);
    }
    EXPECT_CLOSE(ops::concat(frames, 1), test::to_f64(dec), 0, "stream decode vs decode");
    EXPECT_CLOSE(vae->decode(lat.slice(1, 0, 2)), test::to_f64(dec.slice(1, 0, 5)), 0, "decode prefix");
    d.reset();
    EXPECT_CLOSE(d.push(lat.slice(1, 0, 1)), test::to_f64(dec.slice(1, 0, 1)), 0, "decode after reset");
}

TEST(Vae22Stream, ChunkedEqualsWholeAndIsCausal) {
    stream_equals_whole(fixture_vae());
}
// With half activations the caches and the DupUp3D/AvgDown3D shortcuts run in f16: chunked is still
// whole-clip bit for bit.
TEST(Vae22Stream, HalfActivationsChunkedEqualsWhole) {
    stream_equals_whole(fixture_vae(cpu(), DType::F16));
}

// The config read back from the tensors alone (Wan2.2_VAE.pth carries none) is the fixture's.
TEST(Vae22Weights, ConfigFromWeights) {
    auto fx = test::open_fixture("vae22.safetensors");
    const Vae22Config want = fixture_config(*fx);
    for (const auto& src : std::vector<std::shared_ptr<TensorSource>>{
             std::make_shared<WeightsOnly>(fx), open_pth(test::fixture_path("vae22_weights.pth"))}) {
        EXPECT_TRUE(is_vae22_weights(*src));
        const Vae22Config c = vae22_config_from_weights(*src);
        EXPECT_EQ(c.dim, want.dim);
        EXPECT_EQ(c.dec_dim, want.dec_dim);
        EXPECT_EQ(c.z_dim, want.z_dim);
        EXPECT_EQ(c.num_res_blocks, want.num_res_blocks);
    }
    // The Wan2.1 VAE is told apart with a one-line error.
    auto wan21 = open_pth(test::fixture_path("vae_weights.pth"));
    EXPECT_FALSE(is_vae22_weights(*wan21));
    test::expect_error([&] { vae22_config_from_weights(*wan21); }, {"[vae22]", "Wan2.1 VAE", "Wan2.2_VAE.pth"});
}

// split_frames (the default) and whole chunks compute the same function: equal up to the conv
// kernels' summation order, which depends on the frame count (a wrong split is ~1e-1 off).
TEST(Vae22Stream, SplitFramesEqualsWholeChunks) {
    auto fx = test::open_fixture("vae22.safetensors");
    auto be = golden_backend();
    Vae22Config cfg = fixture_config(*fx);
    auto split = Vae22Model::load(std::make_shared<WeightsOnly>(fx), cfg, be);
    cfg.split_frames = false;
    auto whole = Vae22Model::load(std::make_shared<WeightsOnly>(fx), cfg, be);
    const Tensor video = input(*be, *fx, "in.video"), z = input(*be, *fx, "in.z");
    const double tol = be->host_visible() ? 2e-6 : 1e-3;
    EXPECT_CLOSE(split->encode(video), test::to_f64(whole->encode(video)), tol, "encode split vs whole");
    EXPECT_CLOSE(split->decode(z), test::to_f64(whole->decode(z)), tol, "decode split vs whole");
    // With half activations each conv's output is rounded to f16 once, so the summation-order
    // differences can flip a rounding, and a flip propagates: measured on the CPU with OpenBLAS's
    // Haswell kernels encode 0 (bit for bit), decode 5.4e-5; with its AVX-512 (Sapphire Rapids)
    // kernels, whose blocking depends on the frame count, 7.3e-4 / 1.0e-4. The bound is the f16
    // golden's (2e-3); a wrong split is ~1e-1 off.
    cfg.conv_dtype = DType::F16;
    auto whole16 = Vae22Model::load(std::make_shared<WeightsOnly>(fx), cfg, be);
    cfg.split_frames = true;
    auto split16 = Vae22Model::load(std::make_shared<WeightsOnly>(fx), cfg, be);
    const double tol16 = be->host_visible() ? 2e-3 : 3e-3;  // CUDA: cuDNN picks per-shape half kernels
    EXPECT_CLOSE(split16->encode(video), test::to_f64(whole16->encode(video)), tol16, "f16: encode split vs whole");
    EXPECT_CLOSE(split16->decode(z), test::to_f64(whole16->decode(z)), tol16, "f16: decode split vs whole");
}

TEST(Vae22BadInput, Table) {
    auto vae = fixture_vae();
    auto be = cpu();
    auto t = [&](const Shape& s) { return ops::zeros(*be, s); };
    test::expect_error([&] { vae->encode(t({3, 8, 32, 32})); }, {"[vae22]", "8 frames", "5 or 9"});
    test::expect_error([&] { vae->encode(t({3, 5, 40, 32})); }, {"[vae22]", "height 40", "multiple of 16", "32 or 48"});
    test::expect_error([&] { vae->encode(t({4, 5, 32, 32})); }, {"[vae22]", "[3, T, H, W]"});
    test::expect_error([&] { vae->decode(t({16, 2, 2, 2})); }, {"[vae22]", "16 channels", "Wan2.1 VAE"});
    Vae22StreamEncoder enc(vae);
    test::expect_error([&] { enc.push(t({3, 4, 32, 32})); }, {"[vae22]", "expected 1"});
    Vae22StreamDecoder dec(vae);
    test::expect_error([&] { dec.push(t({48, 2, 2, 2})); }, {"[vae22]", "one latent frame"});
    // A checkpoint of another config: strict shape checks name the tensor.
    auto fx = test::open_fixture("vae22.safetensors");
    Vae22Config wrong = fixture_config(*fx);
    wrong.dec_dim = 12;
    test::expect_error([&] { Vae22Model::load(std::make_shared<WeightsOnly>(fx), wrong, be); }, {"decoder."});
    test::expect_error([&] { Vae22Config::from_json("{\"dim\": 8, \"dec_dim\": 10, \"dim_mult\": [1, 2]}"); },
                       {"[vae22]", "temperal_downsample"});
    EXPECT_EQ(vae22_weight_manifest(fixture_config(*fx)).size(),
              std::make_shared<WeightsOnly>(fx)->names().size());
}
