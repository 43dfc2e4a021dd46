// Wan2.1 video VAE: weights, blocks and the chunked forward of `wan/modules/vae.py`.
//
// The forward code mirrors the reference module by module. The reference's feat_cache list indexed
// by feat_idx (one slot per cached conv, in call order) becomes VaeFeatCache: a vector of slots and
// a cursor reset at the start of every chunk.
#include "models/vae.h"

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_config.h"
#include "core/rng.h"
#include "models/vae_blocks.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace wanrt {

using namespace vae;

// ------------------------------------------------------------------------------------------
// Config

int64_t VaeConfig::temporal_factor() const {
    int64_t f = 1;
    for (bool b : temperal_downsample) f *= b ? 2 : 1;
    return f;
}

void VaeConfig::validate() const {
    WANRT_CHECK(dim > 0 && z_dim > 0, "vae", "config dim ", dim, " and z_dim ", z_dim, " must be positive");
    WANRT_CHECK(dim_mult.size() >= 2 && dim_mult.size() <= 8, "vae", "config dim_mult must have 2..8 entries, got ",
                dim_mult.size());
    for (int64_t m : dim_mult) WANRT_CHECK(m > 0, "vae", "config dim_mult entries must be positive");
    WANRT_CHECK(temperal_downsample.size() == dim_mult.size() - 1, "vae", "config temperal_downsample has ",
                temperal_downsample.size(), " entries, expected ", dim_mult.size() - 1, " (one per downsample stage)");
    WANRT_CHECK(num_res_blocks >= 1, "vae", "config num_res_blocks must be ≥ 1, got ", num_res_blocks);
    WANRT_CHECK(conv_dtype == DType::F32 || conv_dtype == DType::F16 || conv_dtype == DType::BF16, "vae",
                "conv precision ", dtype_name(conv_dtype), " is not one of f32, f16, bf16");
    tiling.validate(spatial_factor());
}

VaeConfig VaeConfig::from_json(const std::string& text) {
    // Bounds: far above the Wan2.1 VAE (dim 96, z_dim 16, dim_mult [1, 2, 4, 4], 2 res blocks).
    const JsonConfig j(text, "vae", "VAE config", "expected {\"dim\": 96, \"z_dim\": 16, ...}");
    VaeConfig c;
    j.integer("dim", c.dim, 1, 4096);
    j.integer("z_dim", c.z_dim, 1, 1024);
    j.integers("dim_mult", c.dim_mult, 2, 8, 1, 64);
    j.integer("num_res_blocks", c.num_res_blocks, 1, 64);
    j.numbers("attn_scales", c.attn_scales, 0, 16, 0, 1e6);
    j.booleans("temperal_downsample", c.temperal_downsample, 1, 7);
    // "dropout" is ignored: inactive at inference.
    c.validate();
    return c;
}

const std::vector<float>& wan21_latent_mean() {
    static const std::vector<float> v = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                         -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                         -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
    return v;
}
const std::vector<float>& wan21_latent_std() {
    static const std::vector<float> v = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                         3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};
    return v;
}

// ------------------------------------------------------------------------------------------
// Weights

namespace {

struct Layer {
    enum Kind { Res, Attn, Resamp } kind;
    ResBlock res;
    AttnBlock attn;
    Resample rs;
};

struct Coder {  // Encoder3d or Decoder3d
    CausalConv conv1;
    std::vector<Layer> body;  // encoder: downsamples; decoder: upsamples
    ResBlock mid0, mid2;
    AttnBlock mid1;
    Tensor head_gamma;
    CausalConv head;
    bool decoder = false;
};

Layer res_layer(ResBlock r) {
    Layer l{Layer::Res, std::move(r), {}, {}};
    return l;
}
Layer attn_layer(AttnBlock a) {
    Layer l{Layer::Attn, {}, std::move(a), {}};
    return l;
}
Layer resample_layer(Resample r) {
    Layer l{Layer::Resamp, {}, {}, std::move(r)};
    return l;
}

bool in_scales(const std::vector<double>& scales, double s) {
    for (double v : scales)
        if (v == s) return true;
    return false;
}

// Encoder3d.__init__ with z_dim = 2·z (mean ‖ log-var).
Coder build_encoder(Loader& L, const VaeConfig& c) {
    Coder e;
    std::vector<int64_t> dims{c.dim};
    for (int64_t m : c.dim_mult) dims.push_back(c.dim * m);
    double scale = 1.0;
    e.conv1 = L.causal("encoder.conv1", 3, dims[0], 3, 3, 3, 1, 1, 1);
    int idx = 0;
    int64_t out_dim = dims[0];
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
        int64_t in_dim = dims[i];
        out_dim = dims[i + 1];
        for (int64_t r = 0; r < c.num_res_blocks; ++r) {
            e.body.push_back(res_layer(L.res("encoder.downsamples." + std::to_string(idx++), in_dim, out_dim)));
            if (in_scales(c.attn_scales, scale))
                e.body.push_back(attn_layer(L.attn("encoder.downsamples." + std::to_string(idx++), out_dim)));
            in_dim = out_dim;
        }
        if (i != c.dim_mult.size() - 1) {
            const auto mode = c.temperal_downsample[i] ? ResampleMode::Down3d : ResampleMode::Down2d;
            e.body.push_back(resample_layer(L.resample("encoder.downsamples." + std::to_string(idx++), out_dim, mode)));
            scale /= 2.0;
        }
    }
    e.mid0 = L.res("encoder.middle.0", out_dim, out_dim);
    e.mid1 = L.attn("encoder.middle.1", out_dim);
    e.mid2 = L.res("encoder.middle.2", out_dim, out_dim);
    e.head_gamma = L.gamma("encoder.head.0.gamma", out_dim, false);
    e.head = L.causal("encoder.head.2", out_dim, 2 * c.z_dim, 3, 3, 3, 1, 1, 1);
    return e;
}

// Decoder3d.__init__ with temperal_upsample = reversed temperal_downsample.
Coder build_decoder(Loader& L, const VaeConfig& c) {
    Coder d;
    d.decoder = true;
    const size_t n = c.dim_mult.size();
    std::vector<int64_t> dims{c.dim * c.dim_mult.back()};
    for (size_t i = n; i-- > 0;) dims.push_back(c.dim * c.dim_mult[i]);
    std::vector<bool> up(c.temperal_downsample.rbegin(), c.temperal_downsample.rend());
    double scale = 1.0 / double(int64_t(1) << (n - 2));
    d.conv1 = L.causal("decoder.conv1", c.z_dim, dims[0], 3, 3, 3, 1, 1, 1);
    d.mid0 = L.res("decoder.middle.0", dims[0], dims[0]);
    d.mid1 = L.attn("decoder.middle.1", dims[0]);
    d.mid2 = L.res("decoder.middle.2", dims[0], dims[0]);
    int idx = 0;
    int64_t out_dim = dims[0];
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
        int64_t in_dim = dims[i];
        out_dim = dims[i + 1];
        // The reference halves the input width of stages 1..3: each up-resample halves channels.
        if (i == 1 || i == 2 || i == 3) in_dim /= 2;
        for (int64_t r = 0; r < c.num_res_blocks + 1; ++r) {
            d.body.push_back(res_layer(L.res("decoder.upsamples." + std::to_string(idx++), in_dim, out_dim)));
            if (in_scales(c.attn_scales, scale))
                d.body.push_back(attn_layer(L.attn("decoder.upsamples." + std::to_string(idx++), out_dim)));
            in_dim = out_dim;
        }
        if (i != n - 1) {
            const auto mode = up[i] ? ResampleMode::Up3d : ResampleMode::Up2d;
            d.body.push_back(resample_layer(L.resample("decoder.upsamples." + std::to_string(idx++), out_dim, mode)));
            scale *= 2.0;
        }
    }
    d.head_gamma = L.gamma("decoder.head.0.gamma", out_dim, false);
    d.head = L.causal("decoder.head.2", out_dim, 3, 3, 3, 3, 1, 1, 1);
    return d;
}

}  // namespace

struct VaeNet {
    Coder encoder, decoder;
    CausalConv conv1, conv2;  // 1×1×1 on [2z] and [z] channels
};

namespace {

VaeNet build_net(Loader& L, const VaeConfig& cfg) {
    VaeNet n;
    n.encoder = build_encoder(L, cfg);
    n.conv1 = L.causal("conv1", 2 * cfg.z_dim, 2 * cfg.z_dim, 1, 1, 1, 0, 0, 0);
    n.conv2 = L.causal("conv2", cfg.z_dim, cfg.z_dim, 1, 1, 1, 0, 0, 0);
    n.decoder = build_decoder(L, cfg);
    return n;
}

}  // namespace

std::vector<std::pair<std::string, Shape>> vae_weight_manifest(const VaeConfig& cfg) {
    cfg.validate();
    Loader L(nullptr);
    build_net(L, cfg);
    return L.manifest;
}

std::shared_ptr<TensorSource> synthetic_vae_weights(const VaeConfig& cfg, uint32_t seed) {
    auto src = std::make_shared<MemoryTensorSource>(cat("synthetic VAE (seed ", seed, ")"));
    // splitmix64: fast and deterministic (the real model has 127 M weights).
    uint64_t state = seed;
    auto uniform = [&state] {  // in [-1, 1)
        const uint64_t z = splitmix64(state);
        return float(int64_t(z >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
    };
    for (const auto& [name, shape] : vae_weight_manifest(cfg)) {
        float* d = static_cast<float*>(src->add_uninitialized(name, DType::F32, shape));
        const int64_t n = shape_numel(shape);
        if (name.size() > 6 && name.compare(name.size() - 6, 6, ".gamma") == 0) {
            for (int64_t i = 0; i < n; ++i) d[i] = 1.0f;  // RMS_norm's init
            continue;
        }
        // PyTorch's default conv init bound 1/√fan_in (weights and biases) keeps activations O(1).
        const int64_t fan_in = shape.size() > 1 ? n / shape[0] : shape[0];
        const float bound = 1.0f / std::sqrt(float(std::max<int64_t>(fan_in, 1)));
        for (int64_t i = 0; i < n; ++i) d[i] = bound * uniform();
    }
    return src;
}

namespace {

// ------------------------------------------------------------------------------------------
// Encoder3d / Decoder3d forward (blocks in vae_blocks.cpp)

Tensor layer_forward(const Layer& l, const Tensor& x, VaeFeatCache& fc) {
    switch (l.kind) {
        case Layer::Res:
            return res_forward(l.res, x, fc);
        case Layer::Attn:
            return attn_forward(l.attn, x);
        case Layer::Resamp:
            return resample_forward(l.rs, x, fc);
    }
    WANRT_ASSERT(false);
    return {};
}

// Encoder3d.forward / Decoder3d.forward on one chunk. With split_frames the layers at the highest
// resolutions — the encoder's before its first temporal downsample, the decoder's after its last
// temporal upsample — run frame by frame (per_frame).
Tensor coder_forward(const Coder& m, const Tensor& x_in, VaeFeatCache& fc, bool split_frames) {
    fc.idx = 0;
    auto is = [](const Layer& l, ResampleMode mode) { return l.kind == Layer::Resamp && l.rs.mode == mode; };
    size_t k = 0;  // encoder: first Down3d layer; decoder: one past the last Up3d layer
    if (m.decoder) {
        for (size_t i = 0; i < m.body.size(); ++i)
            if (is(m.body[i], ResampleMode::Up3d)) k = i + 1;
    } else {
        while (k < m.body.size() && !is(m.body[k], ResampleMode::Down3d)) ++k;
    }
    if (!split_frames) k = m.decoder ? m.body.size() : 0;
    auto layers = [&](Tensor x, size_t from, size_t to) {
        for (size_t i = from; i < to; ++i) x = layer_forward(m.body[i], x, fc);
        return x;
    };
    Tensor x;
    if (!m.decoder) {
        auto head = [&](const Tensor& f) { return layers(cached_conv(m.conv1, f, fc), 0, k); };
        x = split_frames ? per_frame(x_in, fc, head) : head(x_in);
        x = layers(x, k, m.body.size());
    } else {
        x = cached_conv(m.conv1, x_in, fc);
    }
    x = res_forward(m.mid0, x, fc);
    x = attn_forward(m.mid1, x);
    x = res_forward(m.mid2, x, fc);
    if (!m.decoder) {
        x = ops::channel_rms_norm(x, m.head_gamma, Activation::Silu);
        return cached_conv(m.head, x, fc);
    }
    x = layers(x, 0, k);
    auto tail = [&](const Tensor& f) {
        Tensor y = layers(f, k, m.body.size());
        y = ops::channel_rms_norm(y, m.head_gamma, Activation::Silu);
        return cached_conv(m.head, y, fc);
    };
    return split_frames ? per_frame(x, fc, tail) : tail(x);
}

std::string nearest_frames(int64_t T) {
    const int64_t lo = T <= 1 ? 1 : 1 + 4 * ((T - 1) / 4);
    return lo == T ? std::to_string(T) : cat(lo, " or ", lo + 4);
}
std::string nearest_size(int64_t v, int64_t f) {
    const int64_t lo = (v / f) * f;
    return lo == 0 ? std::to_string(f) : cat(lo, " or ", lo + f);
}

}  // namespace

// ------------------------------------------------------------------------------------------
// WanVae

WanVae::~WanVae() = default;

std::shared_ptr<WanVae> WanVae::load(std::shared_ptr<TensorSource> src, const VaeConfig& cfg,
                                     std::shared_ptr<Backend> be, const std::string& prefix, std::vector<float> mean,
                                     std::vector<float> std) {
    cfg.validate();
    std::shared_ptr<WanVae> v(new WanVae());
    v->cfg_ = cfg;
    v->be_ = be;
    if (mean.empty()) mean = wan21_latent_mean();
    if (std.empty()) std = wan21_latent_std();
    WANRT_CHECK(int64_t(mean.size()) == cfg.z_dim && int64_t(std.size()) == cfg.z_dim, "vae", "latent mean/std have ",
                mean.size(), "/", std.size(), " entries but z_dim is ", cfg.z_dim,
                "; pass the model's own latent statistics");
    WeightLoader wl(std::move(src), *be, prefix);
    Loader L(&wl, cfg.conv_dtype);
    v->net_ = std::make_unique<VaeNet>(build_net(L, cfg));
    wl.finish();
    std::vector<float> inv(std.size()), sd(std.size());
    for (size_t i = 0; i < std.size(); ++i) {
        WANRT_CHECK(std[i] > 0, "vae", "latent std[", i, "] = ", std[i], " must be positive");
        inv[i] = float(1.0 / double(std[i]));  // scale[1] = 1/std in fp32, as WanVAE
        sd[i] = float(1.0 / double(inv[i]));   // decode divides by scale[1]
    }
    const Shape s{cfg.z_dim, 1, 1, 1};
    v->mean_ = ops::from_host(*be, DType::F32, s, mean.data());
    std::vector<float> neg(mean.size());
    for (size_t i = 0; i < mean.size(); ++i) neg[i] = -mean[i];
    v->neg_mean_ = ops::from_host(*be, DType::F32, s, neg.data());
    v->inv_std_ = ops::from_host(*be, DType::F32, s, inv.data());
    v->std_ = ops::from_host(*be, DType::F32, s, sd.data());
    return v;
}

void WanVae::check_video(const Shape& s) const {
    WANRT_CHECK(s.size() == 4 && s[0] == 3, "vae", "video must be [3, T, H, W], got ", shape_str(s),
                "; pass one RGB clip (channels first)");
    const int64_t f = cfg_.spatial_factor();
    WANRT_CHECK(s[1] >= 1 && (s[1] - 1) % 4 == 0, "vae", "video has ", s[1],
                " frames; the frame count must be 1 + 4k (nearest: ", nearest_frames(s[1]), ")");
    WANRT_CHECK(s[2] > 0 && s[2] % f == 0, "vae", "video height ", s[2], " is not a multiple of ", f,
                " (nearest: ", nearest_size(s[2], f), ")");
    WANRT_CHECK(s[3] > 0 && s[3] % f == 0, "vae", "video width ", s[3], " is not a multiple of ", f,
                " (nearest: ", nearest_size(s[3], f), ")");
}

void WanVae::check_latent(const Shape& s) const {
    WANRT_CHECK(s.size() == 4, "vae", "latent must be [", cfg_.z_dim, ", T, h, w], got ", shape_str(s));
    WANRT_CHECK(s[0] == cfg_.z_dim, "vae", "latent has ", s[0], " channels but this VAE takes ", cfg_.z_dim, " (shape ",
                shape_str(s), "); pass the DiT's output latent [", cfg_.z_dim, ", T, h, w]");
    WANRT_CHECK(s[1] >= 1 && s[2] >= 1 && s[3] >= 1, "vae", "latent ", shape_str(s), " is empty");
}

void WanVae::set_tiling(const VaeTiling& t) {
    t.validate(cfg_.spatial_factor());
    cfg_.tiling = t;
}

Tensor WanVae::encode(const Tensor& video) const {
    check_video(video.shape());
    if (cfg_.tiling.applies(video.size(2), video.size(3)))
        return tiled_encode(video, cfg_.tiling, cfg_.spatial_factor(), [this](const Tensor& v) { return encode_whole(v); });
    return encode_whole(video);
}

Tensor WanVae::decode(const Tensor& z) const {
    check_latent(z.shape());
    const int64_t f = cfg_.spatial_factor();
    if (cfg_.tiling.applies(z.size(2) * f, z.size(3) * f))
        return tiled_decode(z, cfg_.tiling, f, [this](const Tensor& t) { return decode_whole(t); });
    return decode_whole(z);
}

Tensor WanVae::encode_whole(const Tensor& video) const {
    // The stream needs a shared_ptr to the model; a non-owning alias keeps this call cheap.
    std::shared_ptr<const WanVae> self(std::shared_ptr<const WanVae>{}, this);
    VaeStreamEncoder enc(self);
    std::vector<Tensor> out;
    const int64_t T = video.size(1);
    out.push_back(enc.push(video.slice(1, 0, 1)));
    for (int64_t t = 1; t < T; t += 4) out.push_back(enc.push(video.slice(1, t, t + 4)));
    return out.size() == 1 ? out[0] : ops::concat(out, 1);  // latents are small
}

Tensor WanVae::decode_whole(const Tensor& z) const {
    std::shared_ptr<const WanVae> self(std::shared_ptr<const WanVae>{}, this);
    VaeStreamDecoder dec(self);
    // Each chunk is copied into the preallocated clip at once, so the decoded frames are held
    // only once (the clip is the only part of decode memory that grows with length).
    Tensor first = dec.push(z.slice(1, 0, 1));  // [3, 1, H, W]
    const int64_t per = cfg_.temporal_factor(), T = z.size(1);
    Tensor out = be_->empty(DType::F32, {first.size(0), 1 + per * (T - 1), first.size(2), first.size(3)});
    ops::copy(first, out.slice(1, 0, 1));
    for (int64_t t = 1; t < T; ++t) {
        Tensor y = dec.push(z.slice(1, t, t + 1));  // [3, per, H, W]
        WANRT_ASSERT(y.size(1) == per);
        ops::copy(y, out.slice(1, 1 + per * (t - 1), 1 + per * t));
    }
    return out;
}

// ------------------------------------------------------------------------------------------
// Streams

VaeStreamEncoder::VaeStreamEncoder(std::shared_ptr<const WanVae> vae)
    : vae_(std::move(vae)), cache_(std::make_unique<VaeFeatCache>()) {}
VaeStreamEncoder::~VaeStreamEncoder() = default;

void VaeStreamEncoder::reset() {
    cache_ = std::make_unique<VaeFeatCache>();
    frames_ = H_ = W_ = 0;
}

Tensor VaeStreamEncoder::push(const Tensor& frames) {
    const WanVae& v = *vae_;
    const Shape& s = frames.shape();
    const int64_t want = frames_ == 0 ? 1 : 4;
    WANRT_CHECK(s.size() == 4 && s[0] == 3, "vae", "encoder stream takes frames [3, n, H, W], got ", shape_str(s));
    WANRT_CHECK(s[1] == want, "vae", "encoder stream chunk ", frames_ == 0 ? "0" : "after the first", " has ", s[1],
                " frames, expected ", want, " (chunks are 1, 4, 4, ... frames)");
    const int64_t f = v.cfg_.spatial_factor();
    WANRT_CHECK(s[2] > 0 && s[2] % f == 0, "vae", "video height ", s[2], " is not a multiple of ", f,
                " (nearest: ", nearest_size(s[2], f), ")");
    WANRT_CHECK(s[3] > 0 && s[3] % f == 0, "vae", "video width ", s[3], " is not a multiple of ", f,
                " (nearest: ", nearest_size(s[3], f), ")");
    if (frames_ > 0)
        WANRT_CHECK(s[2] == H_ && s[3] == W_, "vae", "encoder stream frame size changed from ", H_, "x", W_, " to ",
                    s[2], "x", s[3], "; call reset() to start a new clip");
    WANRT_CHECK(frames.backend() == v.be_.get(), "vae",
                "frames live on another backend than the VAE; upload them first");
    // The frames go straight to the activation dtype (rounded once, before the first conv).
    const Tensor x = ops::to_dtype(frames, activation_dtype(v.cfg_.conv_dtype, v.cfg_.half_activations));
    const bool split = x.size(2) * x.size(3) >= v.cfg_.split_min_pixels;
    Tensor out = coder_forward(v.net_->encoder, x, *cache_, split);  // [2z, t, h, w]
    out = pointwise(v.net_->conv1, out);
    const int64_t z = v.cfg_.z_dim;
    Tensor mu = as_dtype(out.slice(0, 0, z), DType::F32);  // log-var (channels z..2z) is discarded
    frames_ += s[1];
    H_ = s[2], W_ = s[3];
    return ops::mul(ops::add(mu, v.neg_mean_), v.inv_std_);  // (mu − mean) · (1/std)
}

VaeStreamDecoder::VaeStreamDecoder(std::shared_ptr<const WanVae> vae)
    : vae_(std::move(vae)), cache_(std::make_unique<VaeFeatCache>()) {}
VaeStreamDecoder::~VaeStreamDecoder() = default;

void VaeStreamDecoder::reset() {
    cache_ = std::make_unique<VaeFeatCache>();
    frames_ = h_ = w_ = 0;
}

Tensor VaeStreamDecoder::push(const Tensor& latent) {
    const WanVae& v = *vae_;
    v.check_latent(latent.shape());
    WANRT_CHECK(latent.size(1) == 1, "vae", "decoder stream takes one latent frame per push, got ", latent.describe(),
                "; push frames one at a time");
    if (frames_ > 0)
        WANRT_CHECK(latent.size(2) == h_ && latent.size(3) == w_, "vae", "decoder stream latent size changed from ", h_,
                    "x", w_, " to ", latent.size(2), "x", latent.size(3), "; call reset() to start a new clip");
    WANRT_CHECK(latent.backend() == v.be_.get(), "vae",
                "latent lives on another backend than the VAE; upload it first");
    Tensor x = ops::to_dtype(latent, DType::F32);
    x = ops::add(ops::mul(x, v.std_), v.mean_);  // z / (1/std) + mean
    x = pointwise(v.net_->conv2, as_dtype(x, activation_dtype(v.cfg_.conv_dtype, v.cfg_.half_activations)));
    const int64_t f = v.cfg_.spatial_factor();
    const bool split = f * f * x.size(2) * x.size(3) >= v.cfg_.split_min_pixels;
    Tensor y = as_dtype(coder_forward(v.net_->decoder, x, *cache_, split), DType::F32);  // the clip stays f32
    ++frames_;
    h_ = latent.size(2), w_ = latent.size(3);
    return y;
}

}  // namespace wanrt
