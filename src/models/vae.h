// The Wan2.1 video VAE (`wan/modules/vae.py`, docs/wan21.md §3): a causal 3-D conv autoencoder, 8× spatial and
// (by default) 4× temporal compression, z_dim latent channels.
//
// Layouts (PyTorch order, one sample, f32 on the model's backend):
//   video  [3, T, H, W], values in [-1, 1], T = 1 + 4k, H and W multiples of 2^(stages−1) (= 8);
//   latent [z_dim, 1 + (T−1)/4, H/8, W/8], normalised with the per-channel mean/std of
//          WanVAE.__init__: z = (mu − mean) · (1/std).
// decode() returns the raw decoder output, NOT clamped: the pipeline clamps to [-1, 1] and converts
// to uint8 where the video is written.
//
// Chunking follows the reference exactly (docs/wan21.md §3.4): encode runs the encoder on frames 1, 4, 4, …
// and decode runs the decoder one latent frame at a time, with per-conv feature caches holding the
// last two input frames (the first chunk skips the temporal up/down-sampling). The stream objects
// expose that loop so a caller can feed frames as they arrive; their caches are O(1) in the number
// of frames, so decoding memory does not grow with clip length. Whole-clip encode()/decode() are
// built on them and are bit-identical to feeding the stream.
//
// Bad input (frame count not 1 + 4k, size not a multiple of 8, wrong channel count, a stream chunk
// of the wrong length) → wanrt::Error "[vae] ..." naming the nearest valid values.
#pragma once

#include <cstdint>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"
#include "models/vae_tiled.h"

namespace wanrt {

// WanVAE_ constructor arguments (the real model: dim 96, z_dim 16, dim_mult [1,2,4,4],
// num_res_blocks 2, attn_scales [], temperal_downsample [false, true, true]).
struct VaeConfig {
    int64_t dim = 96;
    int64_t z_dim = 16;
    std::vector<int64_t> dim_mult{1, 2, 4, 4};
    int64_t num_res_blocks = 2;
    std::vector<double> attn_scales;
    std::vector<bool> temperal_downsample{false, true, true};
    // Not a checkpoint property: the dtype the conv weights are kept in, which sets the conv
    // precision (ops::conv3d). f32 = the official error (TF32 on CUDA); f16/bf16 run CUDA's
    // half-precision tensor-core convolutions, with the error docs/perf.md reports.
    DType conv_dtype = DType::F32;
    // Not a checkpoint property: with f16/bf16 convs, keep the activations and causal caches in that
    // dtype from the first conv to the last (half the bytes of every norm, add, copy and cache; the
    // error docs/perf.md reports); encode/decode inputs and outputs stay f32. false = widen every
    // conv output to f32 (the path before session 10, kept to compare). No effect with f32 convs.
    bool half_activations = true;
    // Not a checkpoint property: frames of at least this many pixels run the highest-resolution
    // layers one frame at a time (exact; the memory peak falls by the chunk length, for more cache
    // copies). 0 = always, INT64_MAX = never. Default never: measured on an H100 (720p decode, 21
    // latent frames, f16 convs) the peak fell only 15.9 -> 12.7 GiB while the time rose 3,170 ->
    // 5,550 ms; tiling (--vae_tile) is the way to bound memory.
    int64_t split_min_pixels = INT64_MAX;
    // Not a checkpoint property either: spatial tiling of whole-clip encode()/decode() (off = exact).
    VaeTiling tiling;

    // Parses the JSON config of the fixtures / a checkpoint folder ({"dim": 96, "z_dim": 16, ...});
    // missing fields keep the defaults above; bad values → wanrt::Error.
    static VaeConfig from_json(const std::string& json);
    void validate() const;
    int64_t spatial_factor() const { return int64_t(1) << (dim_mult.size() - 1); }  // 8
    int64_t temporal_factor() const;                                                // 4
};

// The Wan2.1 latent statistics (16 channels, docs/wan21.md §3.5).
const std::vector<float>& wan21_latent_mean();
const std::vector<float>& wan21_latent_std();

// Official names and stored shapes of every weight of a VAE with this config, in load order.
std::vector<std::pair<std::string, Shape>> vae_weight_manifest(const VaeConfig& cfg);
// Random weights of the right names and shapes (conv init U(±1/√fan_in), gammas 1): benchmarks and
// tests of configs no fixture covers.
std::shared_ptr<TensorSource> synthetic_vae_weights(const VaeConfig& cfg, uint32_t seed);

struct VaeNet;        // weights of encoder + decoder (vae.cpp)
struct VaeFeatCache;  // per-conv frame caches of one stream (vae_blocks.h)

class WanVae {
public:
    // Loads the weights named as in the official state dict (with `prefix`, e.g. "vae." for the
    // pipeline fixture) from src with strict shape checks; tensors under the prefix that the
    // config does not use are an error. mean/std default to the Wan2.1 constants (z_dim must be 16
    // then); pass others for a model with other latent statistics.
    static std::shared_ptr<WanVae> load(std::shared_ptr<TensorSource> src, const VaeConfig& cfg,
                                        std::shared_ptr<Backend> be, const std::string& prefix = "",
                                        std::vector<float> mean = {}, std::vector<float> std = {});
    ~WanVae();

    const VaeConfig& config() const { return cfg_; }
    Backend& backend() const { return *be_; }

    // video [3, T, H, W] → normalised latent mu [z_dim, 1 + (T−1)/4, H/8, W/8].
    Tensor encode(const Tensor& video) const;
    // latent [z_dim, T, h, w] → video [3, 1 + 4(T−1), 8h, 8w] (not clamped).
    Tensor decode(const Tensor& z) const;
    // Spatial tiling of encode()/decode() for frames larger than one tile (vae_tiled.h): memory
    // bounded by the tile, results no longer exact. Off by default (VaeConfig::tiling); stream
    // objects never tile.
    void set_tiling(const VaeTiling& t);
    const VaeTiling& tiling() const { return cfg_.tiling; }

    // Checks a whole video / latent, throwing the "[vae] ..." errors described above.
    void check_video(const Shape& s) const;
    void check_latent(const Shape& s) const;

private:
    friend class VaeStreamEncoder;
    friend class VaeStreamDecoder;
    WanVae() = default;
    Tensor encode_whole(const Tensor& video) const;
    Tensor decode_whole(const Tensor& z) const;
    VaeConfig cfg_;
    std::shared_ptr<Backend> be_;
    std::unique_ptr<VaeNet> net_;
    Tensor mean_, neg_mean_, std_, inv_std_;  // [z_dim, 1, 1, 1]
};

// Pixel frames in, latent frames out. The first push takes exactly 1 frame, every later push
// exactly 4 (the reference chunking); each push returns the latent frames of that chunk
// ([z_dim, 1, h, w] with the default temporal factor).
class VaeStreamEncoder {
public:
    explicit VaeStreamEncoder(std::shared_ptr<const WanVae> vae);
    ~VaeStreamEncoder();
    Tensor push(const Tensor& frames);  // [3, n, H, W]
    void reset();                       // start a new clip
    int64_t frames_pushed() const { return frames_; }

private:
    std::shared_ptr<const WanVae> vae_;
    std::unique_ptr<VaeFeatCache> cache_;
    int64_t frames_ = 0, H_ = 0, W_ = 0;
};

// Latent frames in, pixel frames out: each push takes one latent frame [z_dim, 1, h, w] and returns
// [3, 1, 8h, 8w] for the first frame of a clip and [3, 4, 8h, 8w] for every later one.
class VaeStreamDecoder {
public:
    explicit VaeStreamDecoder(std::shared_ptr<const WanVae> vae);
    ~VaeStreamDecoder();
    Tensor push(const Tensor& latent_frame);
    void reset();
    int64_t frames_pushed() const { return frames_; }

private:
    std::shared_ptr<const WanVae> vae_;
    std::unique_ptr<VaeFeatCache> cache_;
    int64_t frames_ = 0, h_ = 0, w_ = 0;
};

}  // namespace wanrt
