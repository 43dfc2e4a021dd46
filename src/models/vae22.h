// The Wan2.2 video VAE of TI2V-5B (`wan/modules/vae2_2.py`, `Wan2_2_VAE`): a causal 3-D conv
// autoencoder with 16× spatial and 4× temporal compression to 48 latent channels.
//
// Differences from the Wan2.1 VAE (vae.h), all in the fixtures README (vae22.safetensors):
//   - a 2×2 patchify around the model: the encoder takes 12 channels, the decoder gives 12
//     (`b c f (h q) (w r) -> b (c r q) f h w`: channel 4c + 2r + q, r the column phase);
//   - each encoder stage adds a parameter-free AvgDown3D of its input, each decoder stage (but
//     the last) a DupUp3D; the up-resample convs keep the width;
//   - a separate decoder width (dec_dim), z_dim 48 with its own mean/std.
// The blocks (causal convs, residual and attention blocks, resamples, the feature cache and the
// loader) are the Wan2.1 ones of vae_blocks.h.
//
// Layouts (PyTorch order, one sample, f32 on the model's backend):
//   video  [3, T, H, W], values in [-1, 1], T = 1 + 4k, H and W multiples of 16;
//   latent [48, 1 + (T−1)/4, H/16, W/16], normalised z = (mu − mean) · (1/std).
// decode() returns the raw decoder output, NOT clamped (Wan2_2_VAE.decode clamps: the pipeline
// does, with ops::clamp).
//
// Spatial tiling (Vae22Config::tiling, `--vae_tile`, off by default) follows diffusers'
// AutoencoderKLWan with patch_size 2: decode cuts the latent into tiles of tile/16 latent pixels
// every stride/16, decodes each tile to the 12 patchified channels and blends neighbours over
// (tile − stride)/2 rows/columns in that half-resolution space, then unpatchifies the whole clip;
// encode cuts the video into tile × tile pixel tiles every stride pixels (multiples of 16 keep the
// 2×2 patchify aligned) and blends the latents over (tile − stride)/16. Not exact (vae_tiled.h).
//
// Chunking as the reference: encode runs the encoder on pixel frames 1, 4, 4, … and decode one
// latent frame at a time, with per-conv caches of the last two input frames; the stream objects
// expose that loop (O(1) memory in the number of frames) and encode()/decode() are built on them.
//
// Bad input → wanrt::Error "[vae22] ..." naming the nearest valid values.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"
#include "models/vae_tiled.h"

namespace wanrt {

// WanVAE_ (vae2_2.py) constructor arguments; defaults are the TI2V-5B model (_video_vae never
// passes dec_dim, so its default 256 applies).
struct Vae22Config {
    int64_t dim = 160;      // encoder base width
    int64_t dec_dim = 256;  // decoder base width
    int64_t z_dim = 48;
    std::vector<int64_t> dim_mult{1, 2, 4, 4};
    int64_t num_res_blocks = 2;
    std::vector<bool> temperal_downsample{false, true, true};
    // The conv weights' dtype (precision of ops::conv3d), as VaeConfig::conv_dtype.
    DType conv_dtype = DType::F32;
    // With f16/bf16 convs, activations and caches in that dtype, as VaeConfig::half_activations.
    bool half_activations = true;
    // Run the layers at the highest resolutions (the encoder's before its first temporal
    // downsample, the decoder's from the spatial half of its last temporal upsample on) one frame
    // at a time, as VaeConfig::split_frames: exact, the memory peak falls by the chunk length.
    // false = whole chunks.
    bool split_frames = true;
    // Not a checkpoint property: spatial tiling of whole-clip encode()/decode() (off = exact);
    // tile and stride multiples of 16.
    VaeTiling tiling;

    // {"dim": 160, "dec_dim": 256, "z_dim": 48, ...}; missing fields keep the defaults above.
    static Vae22Config from_json(const std::string& json);
    void validate() const;
    int64_t spatial_factor() const { return int64_t(2) << (dim_mult.size() - 1); }  // patchify 2 × 2^stages = 16
    int64_t temporal_factor() const;                                                 // 4
};

// The Wan2_2_VAE latent statistics (48 channels).
const std::vector<float>& wan22_latent_mean();
const std::vector<float>& wan22_latent_std();

// Official names (as in Wan2.2_VAE.pth) and stored shapes of every weight, in load order.
std::vector<std::pair<std::string, Shape>> vae22_weight_manifest(const Vae22Config& cfg);
// True when src holds a Wan2.2 VAE state dict (encoder.conv1 takes the 12 patchified channels; the
// Wan2.1 VAE's takes 3): how a folder tells the generations apart.
bool is_vae22_weights(const TensorSource& src);
// The config of a Wan2.2 VAE state dict (Wan2.2_VAE.pth has none): dim from encoder.conv1, dec_dim
// from decoder.head.2, z_dim from conv2, and the residual block count whose whole manifest matches
// the file exactly (dim_mult [1, 2, 4, 4], temperal_downsample [false, true, true], as released), so
// a foreign file is an error, never a guess. Errors: "[vae22] ..." naming the file.
Vae22Config vae22_config_from_weights(const TensorSource& src);
// Random weights of the right names and shapes (conv init U(±1/√fan_in), gammas 1).
std::shared_ptr<TensorSource> synthetic_vae22_weights(const Vae22Config& cfg, uint32_t seed);

struct Vae22Net;      // weights of encoder + decoder (vae22.cpp)
struct VaeFeatCache;  // vae_blocks.h

class Vae22Model {
public:
    // Loads the official names (with `prefix`, e.g. "vae." in the pipeline fixture) with strict
    // shape checks; unused tensors under the prefix are an error. mean/std default to the
    // Wan2_2_VAE constants (z_dim must be 48 then).
    static std::shared_ptr<Vae22Model> load(std::shared_ptr<TensorSource> src, const Vae22Config& cfg,
                                            std::shared_ptr<Backend> be, const std::string& prefix = "",
                                            std::vector<float> mean = {}, std::vector<float> std = {});
    ~Vae22Model();

    const Vae22Config& config() const { return cfg_; }
    Backend& backend() const { return *be_; }

    // video [3, T, H, W] → normalised mu [z_dim, 1 + (T−1)/4, H/16, W/16].
    Tensor encode(const Tensor& video) const;
    // latent [z_dim, T, h, w] → video [3, 1 + 4(T−1), 16h, 16w], not clamped.
    Tensor decode(const Tensor& z) const;
    // Spatial tiling of encode()/decode() for frames larger than one tile (see above); stream
    // objects never tile. Errors: "[vae] --vae_tile ..." for sizes that are not multiples of 16.
    void set_tiling(const VaeTiling& t);
    const VaeTiling& tiling() const { return cfg_.tiling; }

    void check_video(const Shape& s) const;
    void check_latent(const Shape& s) const;

private:
    friend class Vae22StreamEncoder;
    friend class Vae22StreamDecoder;
    Vae22Model() = default;
    Tensor encode_whole(const Tensor& video) const;
    // The whole clip untiled: [3, T', 16h, 16w], or with `patched` the decoder's raw 12 channels
    // [12, T', 8h, 8w] (what the tiled decode blends).
    Tensor decode_whole(const Tensor& z, bool patched) const;
    Vae22Config cfg_;
    std::shared_ptr<Backend> be_;
    std::unique_ptr<Vae22Net> net_;
    Tensor mean_, neg_mean_, std_, inv_std_;  // [z_dim, 1, 1, 1]
};

// Pixel frames in, latent frames out: the first push takes 1 frame, every later one 4, each
// returns that chunk's latent frames [z_dim, 1, H/16, W/16].
class Vae22StreamEncoder {
public:
    explicit Vae22StreamEncoder(std::shared_ptr<const Vae22Model> vae);
    ~Vae22StreamEncoder();
    Tensor push(const Tensor& frames);  // [3, n, H, W]
    void reset();
    int64_t frames_pushed() const { return frames_; }

private:
    std::shared_ptr<const Vae22Model> vae_;
    std::unique_ptr<VaeFeatCache> cache_;
    int64_t frames_ = 0, H_ = 0, W_ = 0;
};

// One latent frame [z_dim, 1, h, w] in; [3, 1, 16h, 16w] out for a clip's first frame, then
// [3, 4, 16h, 16w] (not clamped).
class Vae22StreamDecoder {
public:
    explicit Vae22StreamDecoder(std::shared_ptr<const Vae22Model> vae);
    ~Vae22StreamDecoder();
    Tensor push(const Tensor& latent_frame);
    void reset();
    int64_t frames_pushed() const { return frames_; }

private:
    friend class Vae22Model;
    Tensor push_patched(const Tensor& latent_frame);  // push() before the unpatchify: [12, n, 8h, 8w]
    std::shared_ptr<const Vae22Model> vae_;
    std::unique_ptr<VaeFeatCache> cache_;
    int64_t frames_ = 0, h_ = 0, w_ = 0;
};

namespace vae22 {
// The 2×2 patchify of vae2_2.py: [3, T, H, W] → [12, T, H/2, W/2], channel 4c + 2r + q with r the
// column (w) phase and q the row (h) phase; unpatchify is its inverse.
Tensor patchify2(const Tensor& x);
Tensor unpatchify2(const Tensor& x);
// AvgDown3D(in, out, ft, fs): x [in, T, H, W] → [out, ⌈T/ft⌉, H/fs, W/fs] (zero frames in front
// to a multiple of ft, fold (ft, fs, fs) into channels, average groups of in·ft·fs²/out).
Tensor avg_down3d(const Tensor& x, int64_t out, int ft, int fs);
// DupUp3D(in, out, ft, fs): x [in, T, H, W] → [out, T·ft − (first ? ft − 1 : 0), H·fs, W·fs].
Tensor dup_up3d(const Tensor& x, int64_t out, int ft, int fs, bool first_chunk);
// x_main + dup_up3d(x, …) in one broadcast add without materialising the repeats where the layout
// allows (the real decoder's three shortcuts), else through dup_up3d. Equal to the composition.
Tensor add_dup_up3d(const Tensor& x_main, const Tensor& x, int64_t out, int ft, int fs, bool first_chunk);
// Frame t alone: x_main_t [out, 1, H·fs, W·fs] + frame t of dup_up3d(x, …) (input frame
// (t + drop) / ft, drop = first_chunk ? ft − 1 : 0), equal to add_dup_up3d(...).slice(1, t, t + 1):
// lets the decoder run a temporal stage's upsampled end frame by frame.
Tensor add_dup_up3d_frame(const Tensor& x_main_t, const Tensor& x, int64_t out, int ft, int fs, int64_t t,
                          bool first_chunk);
}  // namespace vae22

}  // namespace wanrt
