// The demo's constructed Wan2.1 VAE (contract in demo.h, demo_vae_weights).
//
// There is no VAE training (conv3d has no backward), and a random decoder maps every latent to noise,
// so a DiT trained on a random VAE's latents cannot draw anything recognisable. Instead the weights
// are written down: the architecture has enough freedom to be an exact linear pooling autoencoder
// apart from its normalisations, and those are made near-linear.
//
// Channel layout carried through every stage: 0 +R, 1 −R, 2 +G, 3 −G, 4 +B, 5 −B, 6 the constant K.
//   - Residual blocks: residual.6 (their last conv) is zero, so a block is its shortcut (identity, or
//     the 1×1×1 shortcut conv copying channels 0..6). Attention blocks: proj is zero → identity.
//   - Encoder resample: the 3×3 stride-2 conv averages the 2×2 block (taps (0,0), (0,1), (1,0),
//     (1,1); the ZeroPad2d(0, 1) is never read), and the temporal stride-2 conv over
//     [cache, f1, f2 | f2, f3, f4] averages its last two taps → latent t (t ≥ 1) is the mean of frames
//     4t−3..4t and latent 0 is frame 0, each 8×8-average-pooled.
//   - Decoder resample: upsample2x (nearest) then the 3×3 conv's centre tap copies channels; the time
//     conv writes the current frame into both of its output frames → every latent pixel becomes an
//     8×8 block held for its 4 frames (nearest-neighbour inverse of the pooling).
//   - Heads: RMS_norm → SiLU → conv. RMS_norm divides by ‖x‖ over channels; with K large that norm
//     is K·√(1 + 2Σs²/K²), within Σs²/K² ≤ 3e-4 of the constant K for |s| ≤ 1 (K = 100). gamma = K/√C
//     undoes the scale and the constant's gamma is 0. SiLU(y) − SiLU(−y) = y exactly, so the next
//     conv reading +s and −s with weights +a and −a is linear in s at any amplitude.
//   - Latent: the encoder head writes mu_c = std_c·s_c + mean_c for c = R, G, B and mean_c for the
//     other channels, so the pipeline's normalised latent (mu − mean)/std is the pooled colour in
//     channels 0..2 and 0 elsewhere; conv2 undoes the statistics again before the decoder.
// Every spatial conv uses its centre tap (the pooling taps never reach the padding) and every time
// conv reads the current or in-chunk frames, so there are no border or causal-padding effects.
#include <cmath>
#include <string>

#include "core/error.h"
#include "pipeline/demo.h"

namespace wanrt {

namespace {

constexpr float kConst = 100.0f;  // the carried constant channel K
constexpr int64_t kCarried = 7;   // ±R, ±G, ±B, K

bool ends_with(const std::string& s, const char* suffix) {
    const size_t n = std::char_traits<char>::length(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}
bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Element offset of w[o, i, t, h, w] in a contiguous [O, I, kt, kh, kw] tensor.
int64_t at5(const Shape& s, int64_t o, int64_t i, int64_t t, int64_t h, int64_t w) {
    return (((o * s[1] + i) * s[2] + t) * s[3] + h) * s[4] + w;
}

}  // namespace

std::shared_ptr<TensorSource> demo_vae_weights(const VaeConfig& cfg) {
    cfg.validate();
    WANRT_CHECK(cfg.z_dim >= 3, "demo", "the constructed VAE carries R, G, B in 3 latent channels; z_dim ",
                cfg.z_dim, " is too small");
    WANRT_CHECK(cfg.temporal_factor() == 4 && cfg.spatial_factor() == 8, "demo",
                "the constructed VAE needs the Wan2.1 4× temporal and 8× spatial strides");
    const std::vector<float>& mean = wan21_latent_mean();
    const std::vector<float>& sd = wan21_latent_std();
    WANRT_CHECK(int64_t(mean.size()) == cfg.z_dim, "demo", "the constructed VAE uses the Wan2.1 latent statistics (",
                mean.size(), " channels) but z_dim is ", cfg.z_dim);
    auto src = std::make_shared<MemoryTensorSource>("demo VAE (constructed pooling autoencoder)");
    for (const auto& [name, shape] : vae_weight_manifest(cfg)) {
        float* d = static_cast<float*>(src->add_uninitialized(name, DType::F32, shape));
        const int64_t n = shape_numel(shape);
        for (int64_t i = 0; i < n; ++i) d[i] = 0.0f;
        const bool enc = starts_with(name, "encoder."), dec = starts_with(name, "decoder.");
        // Every conv that carries the layout needs ≥ 7 channels on both sides.
        auto need = [&, &name = name](int64_t c) {  // clang 14 cannot capture a structured binding implicitly
            WANRT_CHECK(c >= kCarried, "demo", "the constructed VAE carries ", kCarried, " channels but ", name,
                        " has ", c, "; use dim ≥ 8");
        };
        if (ends_with(name, ".gamma")) {
            const int64_t C = shape[0];
            if (name == "encoder.head.0.gamma" || name == "decoder.head.0.gamma") {
                need(C);
                for (int64_t c = 0; c < 6; ++c) d[c] = kConst / std::sqrt(float(C));  // K/‖x‖ · √C · gamma = 1
            } else {
                for (int64_t c = 0; c < C; ++c) d[c] = 1.0f;  // inside zeroed branches: unused
            }
            continue;
        }
        if (ends_with(name, ".bias")) {
            if (name == "encoder.conv1.bias" || name == "decoder.conv1.bias") {
                need(shape[0]);
                d[6] = kConst;
            } else if (name == "encoder.head.2.bias") {
                for (int64_t c = 0; c < cfg.z_dim; ++c) d[c] = mean[c];  // mu = mean → latent 0
            } else if (name == "conv2.bias") {
                for (int64_t c = 0; c < 3; ++c) d[c] = -mean[c] / sd[c];
            }
            continue;
        }
        WANRT_ASSERT(ends_with(name, ".weight"));
        const bool five = shape.size() == 5;
        // 2-D (frame) conv weights [O, I, kh, kw] are addressed as [O, I, 1, kh, kw].
        const Shape s = five ? shape : Shape{shape[0], shape[1], 1, shape[2], shape[3]};
        if (name.find(".residual.") != std::string::npos || name.find(".to_qkv.") != std::string::npos ||
            name.find(".proj.") != std::string::npos) {
            continue;  // zero: residual and attention branches add nothing
        }
        if (ends_with(name, ".shortcut.weight")) {
            need(s[0]), need(s[1]);
            for (int64_t c = 0; c < kCarried; ++c) d[at5(s, c, c, 0, 0, 0)] = 1.0f;
        } else if (enc && ends_with(name, ".resample.1.weight")) {
            need(s[0]), need(s[1]);
            for (int64_t c = 0; c < kCarried; ++c)
                for (int64_t kh = 0; kh < 2; ++kh)
                    for (int64_t kw = 0; kw < 2; ++kw) d[at5(s, c, c, 0, kh, kw)] = 0.25f;
        } else if (dec && ends_with(name, ".resample.1.weight")) {
            need(s[0]), need(s[1]);
            for (int64_t c = 0; c < kCarried; ++c) d[at5(s, c, c, 0, 1, 1)] = 1.0f;
        } else if (enc && ends_with(name, ".time_conv.weight")) {
            need(s[1]);
            for (int64_t c = 0; c < kCarried; ++c) d[at5(s, c, c, 1, 0, 0)] = d[at5(s, c, c, 2, 0, 0)] = 0.5f;
        } else if (dec && ends_with(name, ".time_conv.weight")) {
            const int64_t C = s[1];  // output [2C]: channel j·C + c is frame 2τ + j
            need(C);
            for (int64_t j = 0; j < 2; ++j)
                for (int64_t c = 0; c < kCarried; ++c) d[at5(s, j * C + c, c, 2, 0, 0)] = 1.0f;
        } else if (name == "encoder.conv1.weight") {
            need(s[0]);
            for (int64_t c = 0; c < 3; ++c) {
                d[at5(s, 2 * c, c, 2, 1, 1)] = 1.0f;
                d[at5(s, 2 * c + 1, c, 2, 1, 1)] = -1.0f;
            }
        } else if (name == "encoder.head.2.weight") {
            for (int64_t c = 0; c < 3; ++c) {
                d[at5(s, c, 2 * c, 2, 1, 1)] = sd[c];
                d[at5(s, c, 2 * c + 1, 2, 1, 1)] = -sd[c];
            }
        } else if (name == "conv1.weight") {
            for (int64_t c = 0; c < s[0]; ++c) d[at5(s, c, c, 0, 0, 0)] = 1.0f;
        } else if (name == "conv2.weight") {
            for (int64_t c = 0; c < 3; ++c) d[at5(s, c, c, 0, 0, 0)] = 1.0f / sd[c];
        } else if (name == "decoder.conv1.weight") {
            need(s[0]);
            for (int64_t c = 0; c < 3; ++c) {
                d[at5(s, 2 * c, c, 2, 1, 1)] = 1.0f;
                d[at5(s, 2 * c + 1, c, 2, 1, 1)] = -1.0f;
            }
        } else if (name == "decoder.head.2.weight") {
            for (int64_t c = 0; c < 3; ++c) {
                d[at5(s, c, 2 * c, 2, 1, 1)] = 1.0f;
                d[at5(s, c, 2 * c + 1, 2, 1, 1)] = -1.0f;
            }
        } else {
            WANRT_CHECK(false, "demo", "the constructed VAE has no rule for ", name);
        }
    }
    return src;
}

}  // namespace wanrt
