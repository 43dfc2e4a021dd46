// Wan2.2 video VAE: weights and the chunked forward of `wan/modules/vae2_2.py`.
//
// The forward code mirrors the reference module by module: Encoder3d / Decoder3d with their
// Down_ResidualBlock / Up_ResidualBlock stages, the blocks of vae_blocks.cpp, and the feature cache
// as VaeFeatCache (one slot per cached conv in call order, the cursor reset at every chunk).
#include "models/vae22.h"

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "models/vae_blocks.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace wanrt {

using namespace vae;

// ------------------------------------------------------------------------------------------
// Config

int64_t Vae22Config::temporal_factor() const {
    int64_t f = 1;
    for (bool b : temperal_downsample) f *= b ? 2 : 1;
    return f;
}

void Vae22Config::validate() const {
    WANRT_CHECK(dim > 0 && dec_dim > 0 && z_dim > 0, "vae22", "config dim ", dim, ", dec_dim ", dec_dim, " and z_dim ",
                z_dim, " must be positive");
    WANRT_CHECK(dim_mult.size() >= 2 && dim_mult.size() <= 8, "vae22", "config dim_mult must have 2..8 entries, got ",
                dim_mult.size());
    for (int64_t m : dim_mult) WANRT_CHECK(m > 0, "vae22", "config dim_mult entries must be positive");
    WANRT_CHECK(temperal_downsample.size() == dim_mult.size() - 1, "vae22", "config temperal_downsample has ",
                temperal_downsample.size(), " entries, expected ", dim_mult.size() - 1,
                " (one per downsample stage)");
    WANRT_CHECK(num_res_blocks >= 1, "vae22", "config num_res_blocks must be ≥ 1, got ", num_res_blocks);
    tiling.validate(spatial_factor());
    WANRT_CHECK(conv_dtype == DType::F32 || conv_dtype == DType::F16 || conv_dtype == DType::BF16, "vae22",
                "conv precision ", dtype_name(conv_dtype), " is not one of f32, f16, bf16");
    // The parameter-free shortcuts regroup channels: the widths must divide as the reference asserts.
    std::vector<int64_t> enc{dim}, dec{dec_dim * dim_mult.back()};
    for (int64_t m : dim_mult) enc.push_back(dim * m);
    for (size_t i = dim_mult.size(); i-- > 0;) dec.push_back(dec_dim * dim_mult[i]);
    for (size_t i = 0; i + 1 < enc.size(); ++i) {
        const bool down = i + 1 != dim_mult.size();
        const int64_t f = (down && temperal_downsample[i] ? 2 : 1) * (down ? 4 : 1);
        WANRT_CHECK(enc[i] * f % enc[i + 1] == 0, "vae22", "encoder stage ", i, ": width ", enc[i], "·", f,
                    " is not a multiple of ", enc[i + 1], " (AvgDown3D groups); check dim and dim_mult");
        if (down) {
            const bool tup = temperal_downsample[temperal_downsample.size() - 1 - i];
            const int64_t g = (tup ? 2 : 1) * 4;
            WANRT_CHECK(dec[i + 1] * g % dec[i] == 0, "vae22", "decoder stage ", i, ": width ", dec[i + 1], "·", g,
                        " is not a multiple of ", dec[i], " (DupUp3D repeats); check dec_dim and dim_mult");
        }
    }
}

Vae22Config Vae22Config::from_json(const std::string& text) {
    Vae22Config c;
    try {
        const nlohmann::json j = nlohmann::json::parse(text);
        if (j.contains("dim")) c.dim = j.at("dim").get<int64_t>();
        if (j.contains("dec_dim")) c.dec_dim = j.at("dec_dim").get<int64_t>();
        if (j.contains("z_dim")) c.z_dim = j.at("z_dim").get<int64_t>();
        if (j.contains("dim_mult")) c.dim_mult = j.at("dim_mult").get<std::vector<int64_t>>();
        if (j.contains("num_res_blocks")) c.num_res_blocks = j.at("num_res_blocks").get<int64_t>();
        if (j.contains("temperal_downsample"))
            c.temperal_downsample = j.at("temperal_downsample").get<std::vector<bool>>();
        if (j.contains("attn_scales") && !j.at("attn_scales").empty())
            fail("vae22", "attn_scales ", j.at("attn_scales").dump(),
                 " is not used by vae2_2.py (only the middle attention exists); pass []");
        // "dropout" is ignored: inactive at inference.
    } catch (const nlohmann::json::exception& e) {
        fail("vae22", "bad VAE config JSON (", e.what(), "); expected {\"dim\": 160, \"dec_dim\": 256, ...}");
    }
    c.validate();
    return c;
}

const std::vector<float>& wan22_latent_mean() {
    static const std::vector<float> v = {
        -0.2289f, -0.0052f, -0.1323f, -0.2339f, -0.2799f, 0.0174f,  0.1838f,  0.1557f,  -0.1382f, 0.0542f,
        0.2813f,  0.0891f,  0.157f,   -0.0098f, 0.0375f,  -0.1825f, -0.2246f, -0.1207f, -0.0698f, 0.5109f,
        0.2665f,  -0.2108f, -0.2158f, 0.2502f,  -0.2055f, -0.0322f, 0.1109f,  0.1567f,  -0.0729f, 0.0899f,
        -0.2799f, -0.123f,  -0.0313f, -0.1649f, 0.0117f,  0.0723f,  -0.2839f, -0.2083f, -0.052f,  0.3748f,
        0.0152f,  0.1957f,  0.1433f,  -0.2944f, 0.3573f,  -0.0548f, -0.1681f, -0.0667f};
    return v;
}
const std::vector<float>& wan22_latent_std() {
    static const std::vector<float> v = {
        0.4765f, 1.0364f, 0.4514f, 1.1677f, 0.5313f, 0.499f,  0.4818f, 0.5013f, 0.8158f, 1.0344f, 0.5894f, 1.0901f,
        0.6885f, 0.6165f, 0.8454f, 0.4978f, 0.5759f, 0.3523f, 0.7135f, 0.6804f, 0.5833f, 1.4146f, 0.8986f, 0.5659f,
        0.7069f, 0.5338f, 0.4889f, 0.4917f, 0.4069f, 0.4999f, 0.6866f, 0.4093f, 0.5709f, 0.6065f, 0.6415f, 0.4944f,
        0.5726f, 1.2042f, 0.5458f, 1.6887f, 0.3971f, 1.06f,   0.3943f, 0.5537f, 0.5444f, 0.4089f, 0.7468f, 0.7744f};
    return v;
}

// ------------------------------------------------------------------------------------------
// Parameter-free reshapes

namespace vae22 {

Tensor patchify2(const Tensor& x) {
    const int64_t C = x.size(0), T = x.size(1), h = x.size(2) / 2, w = x.size(3) / 2;
    // [C, T, h, q, w, r] → [C, r, q, T, h, w] → [4C, T, h, w]
    return ops::contiguous(ops::contiguous(x).reshape({C, T, h, 2, w, 2}).permute({0, 5, 3, 1, 2, 4}))
        .reshape({4 * C, T, h, w});
}

Tensor unpatchify2(const Tensor& x) {
    const int64_t C = x.size(0) / 4, T = x.size(1), h = x.size(2), w = x.size(3);
    // [C, r, q, T, h, w] → [C, T, h, q, w, r] → [C, T, 2h, 2w]
    return ops::contiguous(ops::contiguous(x).reshape({C, 2, 2, T, h, w}).permute({0, 3, 4, 2, 5, 1}))
        .reshape({C, T, 2 * h, 2 * w});
}

Tensor avg_down3d(const Tensor& x_in, int64_t out, int ft, int fs) {
    Tensor x = ops::contiguous(x_in);
    const int64_t C = x.size(0), H = x.size(2), W = x.size(3);
    if (ft == 1 && fs == 1 && C == out) return x;
    const int64_t pad = (ft - x.size(1) % ft) % ft;
    if (pad > 0) x = ops::concat({ops::full(*x.backend(), x.dtype(), {C, pad, H, W}, 0.0f), x}, 1);  // zeros in front
    const int64_t T = x.size(1), Tq = T / ft, Hq = H / fs, Wq = W / fs;
    // Fold (ft, fs, fs) into channels in two ≤ 6-dim steps (every backend's strided copy):
    // [C·T, Hq, fs, Wq, fs] → [C·T, fs, fs, Hq, Wq], then
    // [C, Tq, ft, fs², Hq·Wq] → [C, ft, fs², Tq, Hq·Wq]: channel ((c·ft + t′)·fs + h′)·fs + w′.
    Tensor y = ops::contiguous(x.reshape({C * T, Hq, fs, Wq, fs}).permute({0, 2, 4, 1, 3}));
    y = ops::contiguous(y.reshape({C, Tq, ft, int64_t(fs) * fs, Hq * Wq}).permute({0, 2, 3, 1, 4}));
    const int64_t g = C * ft * fs * fs / out, n = Tq * Hq * Wq;
    WANRT_ASSERT(g * out == C * ft * fs * fs);
    // [out, g, n]: the mean over consecutive channel groups.
    y = y.reshape({out, g, n});
    if (g == 1) return y.reshape({out, Tq, Hq, Wq});
    Tensor s = ops::add(y.select(1, 0), y.select(1, 1));
    for (int64_t j = 2; j < g; ++j) s = ops::add(s, y.select(1, j));
    s = ops::mul(s, ops::full(*x.backend(), x.dtype(), {1, 1}, float(1.0 / double(g))));
    return s.reshape({out, Tq, Hq, Wq});
}

Tensor dup_up3d(const Tensor& x_in, int64_t out, int ft, int fs, bool first_chunk) {
    const Tensor x = ops::contiguous(x_in);
    const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t rep = out * ft * fs * fs / C;
    WANRT_ASSERT(rep * C == out * ft * fs * fs);
    // repeat_interleave along channels: [C, 1, n] + 0·[1, rep, 1] → [C, rep, n], channel c·rep + j.
    Tensor y = x.reshape({C, 1, T * H * W});
    if (rep > 1) y = ops::add(y, ops::full(*x.backend(), x.dtype(), {1, rep, 1}, 0.0f));
    // Unfold in two ≤ 6-dim steps: [out·ft, fs, fs, T, H, W] → [out·ft, T, H, fs, W, fs], then
    // [out, ft, T, S] → [out, T, ft, S].
    y = ops::contiguous(y.reshape({out * ft, fs, fs, T, H, W}).permute({0, 3, 4, 1, 5, 2}));
    if (ft > 1) y = ops::contiguous(y.reshape({out, ft, T, H * fs * W * fs}).permute({0, 2, 1, 3}));
    y = y.reshape({out, T * ft, H * fs, W * fs});
    return first_chunk && ft > 1 ? y.slice(1, ft - 1, T * ft) : y;
}

Tensor add_dup_up3d(const Tensor& x_main_in, const Tensor& x_in, int64_t out, int ft, int fs, bool first_chunk) {
    const Tensor x = ops::contiguous(x_in), x_main = ops::contiguous(x_main_in);
    const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t F = int64_t(ft) * fs * fs, rep = out * F / C;
    // Channel k = ((o·ft + t′)·fs + h′)·fs + w′ of the repeated input is channel k / rep of x. When the
    // repeats are the trailing factors of (t′, h′, w′), x maps onto x_main's unfolded layout as a
    // broadcast view, and the shortcut costs one add and no copies (the decoder's widest tensors).
    Shape main6;
    Tensor xv;
    if (ft == 1 && (rep == 1 || rep == fs || rep == F)) {
        const int64_t lh = rep == F ? 1 : fs, lw = rep == 1 ? fs : 1;  // non-repeated phases
        main6 = {out, T, H, fs, W, fs};
        xv = x.reshape({out, lh, lw, T, H, W}).permute({0, 3, 4, 1, 5, 2});  // [out, T, H, lh, W, lw]
    } else if (rep == F && (!first_chunk || T == 1)) {
        // Every phase repeats channel o; (o, t) merge because x is contiguous. The first chunk keeps
        // only phase t′ = ft − 1 of its single frame, which has the same value.
        main6 = first_chunk ? Shape{out, 1, H, fs, W, fs} : Shape{out * T, ft, H, fs, W, fs};
        xv = x.reshape({out * T, 1, H, 1, W, 1});
    } else {
        return ops::add(x_main, dup_up3d(x, out, ft, fs, first_chunk));
    }
    WANRT_ASSERT(shape_numel(main6) == x_main.numel());
    return ops::add(x_main.reshape(main6), xv).reshape(x_main.shape());
}

Tensor add_dup_up3d_frame(const Tensor& x_main_t, const Tensor& x, int64_t out, int ft, int fs, int64_t t,
                          bool first_chunk) {
    const int64_t drop = first_chunk ? ft - 1 : 0, tau = (t + drop) / ft, phase = (t + drop) % ft;
    WANRT_ASSERT(x_main_t.size(1) == 1 && tau < x.size(1));
    const Tensor xf = x.slice(1, tau, tau + 1);  // [C, 1, H, W]
    // When every phase repeats channel o (the real decoder's temporal stages), all output frames of
    // input frame tau are equal: the one-frame first-chunk form is that frame, with no copies.
    if (out * ft * fs * fs / x.size(0) == int64_t(ft) * fs * fs) return add_dup_up3d(x_main_t, xf, out, ft, fs, true);
    return ops::add(x_main_t, dup_up3d(xf, out, ft, fs, false).slice(1, phase, phase + 1));
}

}  // namespace vae22

// ------------------------------------------------------------------------------------------
// Weights

namespace {

// Down_ResidualBlock / Up_ResidualBlock: residual blocks, an optional resample, and the
// parameter-free shortcut (AvgDown3D always; DupUp3D where the stage upsamples).
struct Stage {
    std::vector<ResBlock> res;
    bool has_resample = false;
    Resample rs;
    bool has_shortcut = false;
    int64_t out = 0;
    int ft = 1, fs = 1;
};

struct Coder {  // Encoder3d or Decoder3d
    CausalConv conv1;
    std::vector<Stage> stages;
    ResBlock mid0, mid2;
    AttnBlock mid1;
    Tensor head_gamma;
    CausalConv head;
};

// Encoder3d.__init__ (12 input channels: the patchified video; head → 2·z_dim).
Coder build_encoder(Loader& L, const Vae22Config& c) {
    Coder e;
    std::vector<int64_t> dims{c.dim};
    for (int64_t m : c.dim_mult) dims.push_back(c.dim * m);
    e.conv1 = L.causal("encoder.conv1", 12, dims[0], 3, 3, 3, 1, 1, 1);
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
        const std::string n = "encoder.downsamples." + std::to_string(i) + ".downsamples.";
        const bool down = i != c.dim_mult.size() - 1;
        const bool tdown = i < c.temperal_downsample.size() && c.temperal_downsample[i];
        Stage s;
        s.out = dims[i + 1];
        s.has_shortcut = true;
        s.ft = tdown ? 2 : 1;
        s.fs = down ? 2 : 1;
        int64_t in = dims[i];
        for (int64_t r = 0; r < c.num_res_blocks; ++r, in = s.out) s.res.push_back(L.res(n + std::to_string(r), in, s.out));
        if (down) {
            s.has_resample = true;
            s.rs = L.resample(n + std::to_string(c.num_res_blocks), s.out,
                              tdown ? ResampleMode::Down3d : ResampleMode::Down2d);
        }
        e.stages.push_back(std::move(s));
    }
    const int64_t out = dims.back();
    e.mid0 = L.res("encoder.middle.0", out, out);
    e.mid1 = L.attn("encoder.middle.1", out);
    e.mid2 = L.res("encoder.middle.2", out, out);
    e.head_gamma = L.gamma("encoder.head.0.gamma", out, false);
    e.head = L.causal("encoder.head.2", out, 2 * c.z_dim, 3, 3, 3, 1, 1, 1);
    return e;
}

// Decoder3d.__init__ (width dec_dim; temperal_upsample = reversed temperal_downsample; head → 12).
Coder build_decoder(Loader& L, const Vae22Config& c) {
    Coder d;
    const size_t n = c.dim_mult.size();
    std::vector<int64_t> dims{c.dec_dim * c.dim_mult.back()};
    for (size_t i = n; i-- > 0;) dims.push_back(c.dec_dim * c.dim_mult[i]);
    const std::vector<bool> up(c.temperal_downsample.rbegin(), c.temperal_downsample.rend());
    d.conv1 = L.causal("decoder.conv1", c.z_dim, dims[0], 3, 3, 3, 1, 1, 1);
    d.mid0 = L.res("decoder.middle.0", dims[0], dims[0]);
    d.mid1 = L.attn("decoder.middle.1", dims[0]);
    d.mid2 = L.res("decoder.middle.2", dims[0], dims[0]);
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
        const std::string nm = "decoder.upsamples." + std::to_string(i) + ".upsamples.";
        const bool upf = i != n - 1;
        const bool tup = i < up.size() && up[i];
        Stage s;
        s.out = dims[i + 1];
        s.has_shortcut = upf;
        s.ft = tup ? 2 : 1;
        s.fs = 2;
        int64_t in = dims[i];
        for (int64_t r = 0; r < c.num_res_blocks + 1; ++r, in = s.out)
            s.res.push_back(L.res(nm + std::to_string(r), in, s.out));
        if (upf) {
            s.has_resample = true;
            // The up conv keeps the width (Wan2.1 halves it); the next stage's first block changes it.
            s.rs = L.resample(nm + std::to_string(c.num_res_blocks + 1), s.out,
                              tup ? ResampleMode::Up3d : ResampleMode::Up2d, /*halve_up=*/false);
        }
        d.stages.push_back(std::move(s));
    }
    d.head_gamma = L.gamma("decoder.head.0.gamma", dims.back(), false);
    d.head = L.causal("decoder.head.2", dims.back(), 12, 3, 3, 3, 1, 1, 1);
    return d;
}

}  // namespace

struct Vae22Net {
    Coder encoder, decoder;
    CausalConv conv1, conv2;  // 1×1×1 on [2z] and [z] channels
};

namespace {

Vae22Net build_net(Loader& L, const Vae22Config& cfg) {
    Vae22Net n;
    n.encoder = build_encoder(L, cfg);
    n.conv1 = L.causal("conv1", 2 * cfg.z_dim, 2 * cfg.z_dim, 1, 1, 1, 0, 0, 0);
    n.conv2 = L.causal("conv2", cfg.z_dim, cfg.z_dim, 1, 1, 1, 0, 0, 0);
    n.decoder = build_decoder(L, cfg);
    return n;
}

}  // namespace

std::vector<std::pair<std::string, Shape>> vae22_weight_manifest(const Vae22Config& cfg) {
    cfg.validate();
    Loader L(nullptr);
    build_net(L, cfg);
    return L.manifest;
}

bool is_vae22_weights(const TensorSource& src) {
    const StoredTensor* c1 = src.find("encoder.conv1.weight");
    return c1 && c1->shape.size() == 5 && c1->shape[1] == 12;
}

Vae22Config vae22_config_from_weights(const TensorSource& src) {
    const StoredTensor* c1 = src.find("encoder.conv1.weight");
    const StoredTensor* c2 = src.find("conv2.weight");
    const StoredTensor* head = src.find("decoder.head.2.weight");
    WANRT_CHECK(c1 && c2 && head && c1->shape.size() == 5 && c2->shape.size() == 5 && head->shape.size() == 5, "vae22",
                src.origin(), " is not a Wan2.2 VAE state dict (no encoder.conv1 / conv2 / decoder.head.2 5-D weights); "
                "use the release's Wan2.2_VAE.pth");
    WANRT_CHECK(c1->shape[1] == 12, "vae22", src.origin(), " is a Wan2.1 VAE (encoder.conv1 takes ", c1->shape[1],
                " channels, the Wan2.2 VAE 12); TI2V-5B needs Wan2.2_VAE.pth");
    Vae22Config cfg;
    cfg.dim = c1->shape[0];
    cfg.z_dim = c2->shape[0];
    cfg.dec_dim = head->shape[1] / cfg.dim_mult.front();
    const std::vector<std::string> names = src.names();
    for (int64_t blocks : {2, 1, 3, 4}) {  // released: 2
        cfg.num_res_blocks = blocks;
        const auto manifest = vae22_weight_manifest(cfg);
        if (manifest.size() != names.size()) continue;
        bool ok = true;
        for (const auto& [name, shape] : manifest) {
            const StoredTensor* t = src.find(name);
            if (!t || t->shape != shape) {
                ok = false;
                break;
            }
        }
        if (ok) return cfg;
    }
    fail("vae22", src.origin(), " does not hold the weights of a Wan2.2 VAE (dim ", cfg.dim, ", dec_dim ", cfg.dec_dim,
         ", z_dim ", cfg.z_dim, ", dim_mult [1,2,4,4], 1-4 residual blocks per stage); use the release's Wan2.2_VAE.pth");
}

std::shared_ptr<TensorSource> synthetic_vae22_weights(const Vae22Config& cfg, uint32_t seed) {
    auto src = std::make_shared<MemoryTensorSource>(cat("synthetic Wan2.2 VAE (seed ", seed, ")"));
    uint64_t state = seed;
    auto uniform = [&state] {  // in [-1, 1)
        const uint64_t z = splitmix64(state);
        return float(int64_t(z >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
    };
    for (const auto& [name, shape] : vae22_weight_manifest(cfg)) {
        float* d = static_cast<float*>(src->add_uninitialized(name, DType::F32, shape));
        const int64_t n = shape_numel(shape);
        if (name.size() > 6 && name.compare(name.size() - 6, 6, ".gamma") == 0) {
            for (int64_t i = 0; i < n; ++i) d[i] = 1.0f;
            continue;
        }
        const int64_t fan_in = shape.size() > 1 ? n / shape[0] : shape[0];
        const float bound = 1.0f / std::sqrt(float(std::max<int64_t>(fan_in, 1)));
        for (int64_t i = 0; i < n; ++i) d[i] = bound * uniform();
    }
    return src;
}

namespace {

// ------------------------------------------------------------------------------------------
// Encoder3d / Decoder3d forward on one chunk

Tensor stage_forward(const Stage& s, const Tensor& x_in, VaeFeatCache& fc, bool decoder, bool first_chunk) {
    Tensor x = x_in;
    for (const ResBlock& r : s.res) x = res_forward(r, x, fc);
    if (s.has_resample) x = resample_forward(s.rs, x, fc);
    if (!s.has_shortcut) return x;
    return decoder ? vae22::add_dup_up3d(x, x_in, s.out, s.ft, s.fs, first_chunk)
                   : ops::add(x, vae22::avg_down3d(x_in, s.out, s.ft, s.fs));
}

// Encoder3d.forward / Decoder3d.forward on one chunk. With split_frames the stages without a
// temporal factor at the high-resolution end (the encoder's before its first temporal stage, the
// decoder's after its last one, with conv1 / the head) run frame by frame (per_frame, exact).
Tensor coder_forward(const Coder& m, const Tensor& x_in, VaeFeatCache& fc, bool decoder, bool first_chunk,
                     bool split_frames) {
    fc.idx = 0;
    const size_t n = m.stages.size();
    size_t k = 0;  // encoder: first temporal stage; decoder: one past the last temporal stage
    if (decoder) {
        for (size_t i = 0; i < n; ++i)
            if (m.stages[i].ft > 1) k = i + 1;
    } else {
        while (k < n && m.stages[k].ft == 1) ++k;
    }
    if (!split_frames) k = decoder ? n : 0;
    auto stages = [&](Tensor x, size_t from, size_t to) {
        for (size_t i = from; i < to; ++i) x = stage_forward(m.stages[i], x, fc, decoder, first_chunk);
        return x;
    };
    Tensor x;
    if (!decoder) {
        auto head = [&](const Tensor& f) { return stages(cached_conv(m.conv1, f, fc), 0, k); };
        x = split_frames ? per_frame(x_in, fc, head) : head(x_in);
        x = stages(x, k, n);
    } else {
        x = cached_conv(m.conv1, x_in, fc);
    }
    x = res_forward(m.mid0, x, fc);
    x = attn_forward(m.mid1, x);
    x = res_forward(m.mid2, x, fc);
    if (!decoder) {
        x = ops::channel_rms_norm(x, m.head_gamma, Activation::Silu);
        return cached_conv(m.head, x, fc);
    }
    auto head = [&](const Tensor& f) {
        Tensor y = stages(f, k, n);
        y = ops::channel_rms_norm(y, m.head_gamma, Activation::Silu);
        return cached_conv(m.head, y, fc);
    };
    if (!split_frames || k == 0 || !m.stages[k - 1].has_resample) {
        x = stages(x, 0, k);
        return split_frames ? per_frame(x, fc, head) : head(x);
    }
    // The last temporal stage runs its residual blocks and time conv on the chunk, then its spatial
    // upsample and DupUp3D shortcut frame by frame with the stages after it: its upsampled output
    // (4 frames of 1024 × 176 × 320 at 704×1280, 0.86 GiB, plus the conv's copies) never exists
    // whole. Same cache slots in the same order, same values.
    x = stages(x, 0, k - 1);
    const Stage& s = m.stages[k - 1];
    const Tensor stage_in = x;
    for (const ResBlock& r : s.res) x = res_forward(r, x, fc);
    x = upsample_time(s.rs, x, fc);  // [C, T', H, W], T' = T·ft (first chunk: T)
    return per_frame_at(x, fc, [&](const Tensor& f, int64_t t) {
        Tensor y = upsample_space(s.rs, f);  // [C, 1, 2H, 2W]
        if (s.has_shortcut) y = vae22::add_dup_up3d_frame(y, stage_in, s.out, s.ft, s.fs, t, first_chunk);
        return head(y);
    });
}

std::string nearest_frames(int64_t T) {
    const int64_t lo = T <= 1 ? 1 : 1 + 4 * ((T - 1) / 4);
    return lo == T ? std::to_string(T) : cat(lo, " or ", lo + 4);
}
std::string nearest_size(int64_t v, int64_t f) {
    const int64_t lo = (v / f) * f;
    return lo == 0 ? std::to_string(f) : cat(lo, " or ", lo + f);
}

void check_frame_size(int64_t H, int64_t W, int64_t f) {
    WANRT_CHECK(H > 0 && H % f == 0, "vae22", "video height ", H, " is not a multiple of ", f, " (nearest: ",
                nearest_size(H, f), ")");
    WANRT_CHECK(W > 0 && W % f == 0, "vae22", "video width ", W, " is not a multiple of ", f, " (nearest: ",
                nearest_size(W, f), ")");
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Vae22Model

Vae22Model::~Vae22Model() = default;

std::shared_ptr<Vae22Model> Vae22Model::load(std::shared_ptr<TensorSource> src, const Vae22Config& cfg,
                                             std::shared_ptr<Backend> be, const std::string& prefix,
                                             std::vector<float> mean, std::vector<float> std) {
    cfg.validate();
    std::shared_ptr<Vae22Model> v(new Vae22Model());
    v->cfg_ = cfg;
    v->be_ = be;
    if (mean.empty()) mean = wan22_latent_mean();
    if (std.empty()) std = wan22_latent_std();
    WANRT_CHECK(int64_t(mean.size()) == cfg.z_dim && int64_t(std.size()) == cfg.z_dim, "vae22",
                "latent mean/std have ", mean.size(), "/", std.size(), " entries but z_dim is ", cfg.z_dim,
                "; pass the model's own latent statistics");
    WeightLoader wl(std::move(src), *be, prefix);
    Loader L(&wl, cfg.conv_dtype);
    v->net_ = std::make_unique<Vae22Net>(build_net(L, cfg));
    wl.finish();
    std::vector<float> inv(std.size()), sd(std.size()), neg(mean.size());
    for (size_t i = 0; i < std.size(); ++i) {
        WANRT_CHECK(std[i] > 0, "vae22", "latent std[", i, "] = ", std[i], " must be positive");
        inv[i] = float(1.0 / double(std[i]));  // scale[1] = 1/std, as Wan2_2_VAE
        sd[i] = float(1.0 / double(inv[i]));   // decode divides by scale[1]
        neg[i] = -mean[i];
    }
    const Shape s{cfg.z_dim, 1, 1, 1};
    v->mean_ = ops::from_host(*be, DType::F32, s, mean.data());
    v->neg_mean_ = ops::from_host(*be, DType::F32, s, neg.data());
    v->inv_std_ = ops::from_host(*be, DType::F32, s, inv.data());
    v->std_ = ops::from_host(*be, DType::F32, s, sd.data());
    return v;
}

void Vae22Model::check_video(const Shape& s) const {
    WANRT_CHECK(s.size() == 4 && s[0] == 3, "vae22", "video must be [3, T, H, W], got ", shape_str(s),
                "; pass one RGB clip (channels first)");
    WANRT_CHECK(s[1] >= 1 && (s[1] - 1) % cfg_.temporal_factor() == 0, "vae22", "video has ", s[1],
                " frames; the frame count must be 1 + 4k (nearest: ", nearest_frames(s[1]), ")");
    check_frame_size(s[2], s[3], cfg_.spatial_factor());
}

void Vae22Model::check_latent(const Shape& s) const {
    WANRT_CHECK(s.size() == 4, "vae22", "latent must be [", cfg_.z_dim, ", T, h, w], got ", shape_str(s));
    WANRT_CHECK(s[0] == cfg_.z_dim, "vae22", "latent has ", s[0], " channels but the Wan2.2 VAE takes ", cfg_.z_dim,
                " (shape ", shape_str(s), "); a 16-channel latent belongs to the Wan2.1 VAE");
    WANRT_CHECK(s[1] >= 1 && s[2] >= 1 && s[3] >= 1, "vae22", "latent ", shape_str(s), " is empty");
}

void Vae22Model::set_tiling(const VaeTiling& t) {
    t.validate(cfg_.spatial_factor());
    cfg_.tiling = t;
}

Tensor Vae22Model::encode(const Tensor& video) const {
    check_video(video.shape());
    // Pixel tiles starting at multiples of 16: each tile's own 2×2 patchify is the matching crop
    // of the whole video's, so tiling the pixels equals diffusers' tiling of the patchified video.
    if (cfg_.tiling.applies(video.size(2), video.size(3)))
        return tiled_encode(video, cfg_.tiling, cfg_.spatial_factor(),
                            [this](const Tensor& v) { return encode_whole(v); });
    return encode_whole(video);
}

Tensor Vae22Model::decode(const Tensor& z) const {
    check_latent(z.shape());
    const int64_t f = cfg_.spatial_factor();
    if (!cfg_.tiling.applies(z.size(2) * f, z.size(3) * f)) return decode_whole(z, false);
    // diffusers' tiled_decode with patch_size 2: tiles and strides in latent pixels (÷16), the blend
    // over the decoder's 12-channel half-resolution output (÷2), one unpatchify at the end.
    const VaeTiling& t = cfg_.tiling;
    const int64_t s = t.stride_px(f), p = 2;
    const Tensor patched = run_tiled(z, t.tile / f, s / f, t.tile / p, s / p, z.size(2) * (f / p), z.size(3) * (f / p),
                                     [this](const Tensor& tile) { return decode_whole(tile, true); });
    return vae22::unpatchify2(patched);  // [12, T', 8h, 8w] → [3, T', 16h, 16w]
}

Tensor Vae22Model::encode_whole(const Tensor& video) const {
    std::shared_ptr<const Vae22Model> self(std::shared_ptr<const Vae22Model>{}, this);  // non-owning
    Vae22StreamEncoder enc(self);
    const int64_t T = video.size(1), per = cfg_.temporal_factor();
    std::vector<Tensor> out{enc.push(video.slice(1, 0, 1))};
    for (int64_t t = 1; t < T; t += per) out.push_back(enc.push(video.slice(1, t, t + per)));
    return out.size() == 1 ? out[0] : ops::concat(out, 1);  // latents are small
}

Tensor Vae22Model::decode_whole(const Tensor& z, bool patched) const {
    std::shared_ptr<const Vae22Model> self(std::shared_ptr<const Vae22Model>{}, this);
    Vae22StreamDecoder dec(self);
    auto push = [&](int64_t t) {
        return patched ? dec.push_patched(z.slice(1, t, t + 1)) : dec.push(z.slice(1, t, t + 1));
    };
    // Each chunk goes straight into the preallocated clip: the decoded frames are held once.
    Tensor first = push(0);  // [C, 1, H, W]
    const int64_t per = cfg_.temporal_factor(), T = z.size(1);
    Tensor out = be_->empty(DType::F32, {first.size(0), 1 + per * (T - 1), first.size(2), first.size(3)});
    ops::copy(first, out.slice(1, 0, 1));
    first = {};
    for (int64_t t = 1; t < T; ++t) {
        Tensor y = push(t);  // [C, per, H, W]
        WANRT_ASSERT(y.size(1) == per);
        ops::copy(y, out.slice(1, 1 + per * (t - 1), 1 + per * t));
    }
    return out;
}

// ------------------------------------------------------------------------------------------
// Streams

Vae22StreamEncoder::Vae22StreamEncoder(std::shared_ptr<const Vae22Model> vae)
    : vae_(std::move(vae)), cache_(std::make_unique<VaeFeatCache>()) {}
Vae22StreamEncoder::~Vae22StreamEncoder() = default;

void Vae22StreamEncoder::reset() {
    cache_ = std::make_unique<VaeFeatCache>();
    frames_ = H_ = W_ = 0;
}

Tensor Vae22StreamEncoder::push(const Tensor& frames) {
    const Vae22Model& v = *vae_;
    const Shape& s = frames.shape();
    const int64_t want = frames_ == 0 ? 1 : v.cfg_.temporal_factor();
    WANRT_CHECK(s.size() == 4 && s[0] == 3, "vae22", "encoder stream takes frames [3, n, H, W], got ",
                shape_str(s));
    WANRT_CHECK(s[1] == want, "vae22", "encoder stream chunk ", frames_ == 0 ? "0" : "after the first", " has ", s[1],
                " frames, expected ", want, " (chunks are 1, 4, 4, ... frames)");
    check_frame_size(s[2], s[3], v.cfg_.spatial_factor());
    if (frames_ > 0)
        WANRT_CHECK(s[2] == H_ && s[3] == W_, "vae22", "encoder stream frame size changed from ", H_, "x", W_, " to ",
                    s[2], "x", s[3], "; call reset() to start a new clip");
    WANRT_CHECK(frames.backend() == v.be_.get(), "vae22",
                "frames live on another backend than the VAE; upload them first");
    // The frames go straight to the activation dtype (rounded once, before the first conv).
    const DType act = activation_dtype(v.cfg_.conv_dtype, v.cfg_.half_activations);
    const Tensor x = vae22::patchify2(ops::to_dtype(frames, act));                                // [12, n, H/2, W/2]
    Tensor out = coder_forward(v.net_->encoder, x, *cache_, false, false, v.cfg_.split_frames);   // [2z, t, h, w]
    out = pointwise(v.net_->conv1, out);
    Tensor mu = as_dtype(out.slice(0, 0, v.cfg_.z_dim), DType::F32);  // log-var (channels z..2z) is discarded
    frames_ += s[1];
    H_ = s[2], W_ = s[3];
    return ops::mul(ops::add(mu, v.neg_mean_), v.inv_std_);  // (mu − mean) · (1/std)
}

Vae22StreamDecoder::Vae22StreamDecoder(std::shared_ptr<const Vae22Model> vae)
    : vae_(std::move(vae)), cache_(std::make_unique<VaeFeatCache>()) {}
Vae22StreamDecoder::~Vae22StreamDecoder() = default;

void Vae22StreamDecoder::reset() {
    cache_ = std::make_unique<VaeFeatCache>();
    frames_ = h_ = w_ = 0;
}

Tensor Vae22StreamDecoder::push(const Tensor& latent) {
    return vae22::unpatchify2(push_patched(latent));
}

Tensor Vae22StreamDecoder::push_patched(const Tensor& latent) {
    const Vae22Model& v = *vae_;
    v.check_latent(latent.shape());
    WANRT_CHECK(latent.size(1) == 1, "vae22", "decoder stream takes one latent frame per push, got ",
                latent.describe(), "; push frames one at a time");
    if (frames_ > 0)
        WANRT_CHECK(latent.size(2) == h_ && latent.size(3) == w_, "vae22", "decoder stream latent size changed from ",
                    h_, "x", w_, " to ", latent.size(2), "x", latent.size(3), "; call reset() to start a new clip");
    WANRT_CHECK(latent.backend() == v.be_.get(), "vae22",
                "latent lives on another backend than the VAE; upload it first");
    Tensor x = ops::to_dtype(latent, DType::F32);
    x = ops::add(ops::mul(x, v.std_), v.mean_);  // z / (1/std) + mean
    x = pointwise(v.net_->conv2, as_dtype(x, activation_dtype(v.cfg_.conv_dtype, v.cfg_.half_activations)));
    Tensor y = coder_forward(v.net_->decoder, x, *cache_, true, frames_ == 0, v.cfg_.split_frames);  // [12, n, h·8, w·8]
    y = as_dtype(y, DType::F32);  // the clip, the blend of tiles and unpatchify2 stay f32
    ++frames_;
    h_ = latent.size(2), w_ = latent.size(3);
    return y;
}

}  // namespace wanrt
