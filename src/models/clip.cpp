// CLIPModel.visual (wan/modules/clip.py) with use_31_block=True, module by module.
#include "models/clip.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_config.h"
#include "models/dit_weights.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace wanrt {

void ClipVisionConfig::validate(const std::string& origin) const {
    if (image_size < 1 || patch_size < 1 || image_size % patch_size)
        fail("clip", origin, ": image_size ", image_size, " must be a positive multiple of patch_size ", patch_size);
    if (dim < 1 || heads < 1 || dim % heads) fail("clip", origin, ": vision_dim ", dim, " must be a multiple of vision_heads ", heads);
    if (mlp_dim < 1) fail("clip", origin, ": the MLP width must be positive, got ", mlp_dim);
    if (layers < 2) fail("clip", origin, ": vision_layers ", layers, " must be ≥ 2 (the last block is not run)");
    if (!(eps > 0)) fail("clip", origin, ": norm_eps must be positive");
}

ClipVisionConfig ClipVisionConfig::from_json(const std::string& text, const std::string& origin) {
    // Bounds: about ten times open-clip ViT-H/14 (image 224, patch 14, dim 1280, 16 heads, 32 layers).
    const JsonConfig j(text, "clip", origin, "fix the CLIP config or use the official one");
    ClipVisionConfig c;
    auto expect = [&](const char* key, const nlohmann::json& want) {
        if (j.has(key) && j.raw()[key] != want)
            j.bad(cat("\"", key, "\" is ", j.raw()[key].dump(), "; the Wan image encoder has ", want.dump()));
    };
    j.integer("image_size", c.image_size, 1, 4096);
    j.integer("patch_size", c.patch_size, 1, 256);
    j.integer("vision_dim", c.dim, 1, 65536);
    j.integer("vision_heads", c.heads, 1, 1024);
    j.integer("vision_layers", c.layers, 1, 1024);
    if (j.has("vision_mlp_ratio")) {
        double ratio = 0;
        j.number("vision_mlp_ratio", ratio, 1e-3, 64);
        c.mlp_dim = int64_t(double(c.dim) * ratio);  // int(dim * mlp_ratio), as clip.py
    }
    j.integer("vision_mlp_dim", c.mlp_dim, 1, 262144);
    j.number("norm_eps", c.eps, 1e-30, 1.0);
    expect("activation", "gelu");
    expect("vision_pre_norm", true);
    expect("vision_post_norm", false);
    expect("vision_pool", "token");
    c.validate(origin);
    return c;
}

namespace {

// torch's upsample_bicubic2d weights for a fractional offset t ∈ [0, 1) (cubic convolution, A = −0.75).
std::array<double, 4> cubic_weights(double t) {
    constexpr double A = -0.75;
    auto near = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };           // |x| ≤ 1
    auto far = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };     // 1 < |x| < 2
    return {far(t + 1), near(t), near(1 - t), far(2 - t)};
}

struct Taps {
    std::array<int64_t, 4> idx;
    std::array<double, 4> w;
};

// One output coordinate: source = (i + 0.5)·in/out − 0.5 (not clamped for cubic), taps floor − 1 …
// floor + 2 clamped to the edge.
std::vector<Taps> axis_taps(int64_t in, int64_t out) {
    std::vector<Taps> taps(static_cast<size_t>(out));
    const double scale = double(in) / double(out);
    for (int64_t i = 0; i < out; ++i) {
        const double src = (double(i) + 0.5) * scale - 0.5;
        const double f = std::floor(src);
        Taps& t = taps[size_t(i)];
        t.w = cubic_weights(src - f);
        for (int k = 0; k < 4; ++k) t.idx[size_t(k)] = std::clamp<int64_t>(int64_t(f) - 1 + k, 0, in - 1);
    }
    return taps;
}

}  // namespace

std::vector<double> bicubic_resize(const std::vector<double>& img, int64_t C, int64_t H, int64_t W, int64_t oh,
                                   int64_t ow) {
    WANRT_ASSERT(int64_t(img.size()) == C * H * W);
    const std::vector<Taps> ty = axis_taps(H, oh), tx = axis_taps(W, ow);
    std::vector<double> out(size_t(C * oh * ow));
    for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < oh; ++y)
            for (int64_t x = 0; x < ow; ++x) {
                // As torch: interpolate 4 rows along x, then those along y.
                double rows[4];
                for (int r = 0; r < 4; ++r) {
                    const double* src = img.data() + (c * H + ty[size_t(y)].idx[size_t(r)]) * W;
                    const Taps& t = tx[size_t(x)];
                    rows[r] = src[t.idx[0]] * t.w[0] + src[t.idx[1]] * t.w[1] + src[t.idx[2]] * t.w[2] + src[t.idx[3]] * t.w[3];
                }
                const Taps& t = ty[size_t(y)];
                out[size_t((c * oh + y) * ow + x)] = rows[0] * t.w[0] + rows[1] * t.w[1] + rows[2] * t.w[2] + rows[3] * t.w[3];
            }
    return out;
}

struct ClipVisionEncoder::Weights {
    struct Block {
        Tensor norm1_w, norm1_b, norm2_w, norm2_b;  // [D]
        Linear qkv, proj, mlp0, mlp2;               // qkv [3D, D]: q | k | v
    };
    Tensor patch;         // [D, 3·p·p] (the Conv2d kernel flattened; no bias)
    Tensor cls;           // [1, 1, D]
    Tensor pos;           // [1, 1 + g², D]
    Tensor pre_w, pre_b;  // [D]
    std::vector<Block> blocks;  // layers − 1: the last block is never run
};

ClipVisionEncoder::ClipVisionEncoder(const ClipVisionConfig& cfg, std::shared_ptr<TensorSource> src, Backend& be,
                                     const std::string& prefix)
    : cfg_(cfg), be_(be), w_(std::make_unique<Weights>()) {
    cfg_.validate(src->origin());
    WeightLoader ld(src, be, prefix + "visual.");
    const int64_t D = cfg_.dim, P = cfg_.patch_size, M = cfg_.mlp_dim;
    auto linear = [&](const std::string& n, int64_t out, int64_t in) {
        return Linear{ld.matrix(n + ".weight", {out, in}), ld.param(n + ".bias", {out})};
    };
    Weights& w = *w_;
    w.patch = ld.param_as("patch_embedding.weight", {D, 3, P, P}, {D, 3 * P * P});
    w.cls = ld.param("cls_embedding", {1, 1, D});
    w.pos = ld.param("pos_embedding", {1, cfg_.tokens(), D});
    w.pre_w = ld.param("pre_norm.weight", {D});
    w.pre_b = ld.param("pre_norm.bias", {D});
    for (int64_t i = 0; i + 1 < cfg_.layers; ++i) {
        const std::string p = "transformer." + std::to_string(i) + ".";
        Weights::Block b;
        b.norm1_w = ld.param(p + "norm1.weight", {D});
        b.norm1_b = ld.param(p + "norm1.bias", {D});
        b.norm2_w = ld.param(p + "norm2.weight", {D});
        b.norm2_b = ld.param(p + "norm2.bias", {D});
        b.qkv = linear(p + "attn.to_qkv", 3 * D, D);
        b.proj = linear(p + "attn.proj", D, D);
        b.mlp0 = linear(p + "mlp.0", M, D);
        b.mlp2 = linear(p + "mlp.2", D, M);
        w.blocks.push_back(std::move(b));
    }
    if (ld.has("transformer." + std::to_string(cfg_.layers) + ".norm1.weight"))
        fail("clip", src->origin(), ": the checkpoint has more than ", cfg_.layers,
             " vision blocks; the config does not match the weights");
    // In the release but never run (use_31_block): the last block, post_norm, head. A file may
    // leave the last block out (the pipeline fixtures do), so it is not required either.
    ld.skip("transformer." + std::to_string(cfg_.layers - 1) + ".");
    ld.skip("post_norm.");
    ld.skip("head");
    ld.finish();
}

ClipVisionEncoder::~ClipVisionEncoder() = default;

Tensor ClipVisionEncoder::encode(const Tensor& images, const DumpFn& dump) const {
    const ClipVisionConfig& c = cfg_;
    const Weights& w = *w_;
    if (!images.defined() || images.ndim() != 4 || images.size(1) != 3 || images.dtype() != DType::F32)
        fail("clip", "images must be f32 [B, 3, H, W], got ", images.defined() ? images.describe() : "none");
    const int64_t B = images.size(0), H = images.size(2), W = images.size(3), S = c.image_size;
    const int64_t L = c.tokens(), D = c.dim, N = c.heads, hd = c.head_dim();
    if (B < 1 || H < 1 || W < 1) fail("clip", "empty image batch ", images.describe());

    // ---- preprocessing on the host in float64: resize, ·0.5 + 0.5, (x − mean)/std
    const std::vector<float> host = ops::to_host_f32(images);
    std::vector<float> pix(size_t(B * 3 * S * S));
    for (int64_t b = 0; b < B; ++b) {
        std::vector<double> img(host.begin() + b * 3 * H * W, host.begin() + (b + 1) * 3 * H * W);
        const std::vector<double> r = bicubic_resize(img, 3, H, W, S, S);
        for (int64_t ch = 0; ch < 3; ++ch)
            for (int64_t i = 0; i < S * S; ++i)
                pix[size_t((b * 3 + ch) * S * S + i)] =
                    float((r[size_t(ch * S * S + i)] * 0.5 + 0.5 - c.mean[size_t(ch)]) / c.std[size_t(ch)]);
    }
    Tensor pixels = ops::from_host(be_, DType::F32, {B, 3, S, S}, pix.data());  // [B, 3, S, S]
    if (dump) dump("pixels", pixels);

    // ---- patch embedding (Conv2d, kernel = stride = patch, no bias) + class token + positions
    std::vector<Tensor> seqs;
    for (int64_t b = 0; b < B; ++b) {
        Tensor patches = ops::patchify(pixels.select(0, b).unsqueeze(1), 1, int(c.patch_size), int(c.patch_size));  // [g², 3·p·p]
        Tensor emb = ops::linear(patches, w.patch);                                                            // [g², D]
        seqs.push_back(ops::concat({w.cls, emb.unsqueeze(0)}, 1));                                            // [1, L, D]
    }
    Tensor x = ops::add(B == 1 ? seqs[0] : ops::concat(seqs, 0), w.pos);  // [B, L, D]
    if (dump) dump("embed", x);
    x = ops::layer_norm(x, &w.pre_w, &w.pre_b, c.eps);
    if (dump) dump("prenorm", x);

    // ---- all blocks but the last (use_31_block)
    for (size_t k = 0; k < w.blocks.size(); ++k) {
        const Weights::Block& b = w.blocks[k];
        Tensor qkv = b.qkv(ops::layer_norm(x, &b.norm1_w, &b.norm1_b, c.eps)).reshape({B, L, 3, N, hd});  // [B, L, 3, N, hd]
        Tensor a = ops::attention(qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));                  // [B, L, N, hd]
        x = ops::add(x, b.proj(a.reshape({B, L, D})));
        Tensor h = b.mlp0(ops::layer_norm(x, &b.norm2_w, &b.norm2_b, c.eps), Activation::GeluErf);  // [B, L, M]
        x = ops::add(x, b.mlp2(h));
        if (dump) dump("block" + std::to_string(k) + "_out", x);
    }
    return x;
}

}  // namespace wanrt
