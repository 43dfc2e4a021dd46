// TAEHV, the tiny video autoencoder (madebyollin/taehv, `taehv.py`), as `taew2_1` for Wan2.1 latents: a
// stand-in for the Wan VAE that is ~100× cheaper (2-D convs per frame, a one-frame memory per block).
//
// Layouts (PyTorch order, one sample, f32 on the model's backend; taehv.py works in NTCHW, this code in
// [C, T, H, W] like the Wan VAE, so a fixture's `[N, T, C, H, W]` is permuted per sample):
//   video  [3, F, H, W], values in [0, 1] (the Wan VAE's are in [−1, 1]);
//   latent [C, T, H/s, W/s] with s = 8·patch_size, the DiT's latents as they are (no mean/std).
// encode: F frames padded at the END with copies of the last frame to a multiple of t_downscale (4)
//         → ceil(F/4) latent frames; latent k summarises frames [4k, 4k + 4).
// decode: T latent frames → 4T raw frames, of which the first frames_to_trim (3) are dropped →
//         4T − 3 frames (Wan's 1 + 4(T − 1)), clamped to [0, 1].
//
// The module list mirrors taehv.py's nn.Sequential index for index (weight names are the state-dict
// names, `encoder.<i>...`, `decoder.<i>...`). Two weight transforms are done once at load time so
// that every block is one conv3d:
//   MemBlock(x, past): conv(cat[x, past]) over 2C channels = a kt = 2 temporal conv over (past, x):
//     w [O, 2C, 3, 3] → [O, C, 2, 3, 3] with tap 0 = the past half, tap 1 = the current half; the
//     past of frame 0 is zero padding, or (streaming) the block's last input frame of the previous
//     chunk passed as the conv's prefix.
//   TPool(s): 1×1 conv over s concatenated frames = a kt = s, stride-s temporal conv:
//     w [C, s·C, 1, 1] → [C, C, s, 1, 1] with w3[o, c, k] = w[o, k·C + c].
// TGrow(s): 1×1 conv C → s·C, channels [k·C, (k+1)·C) become frame k ([s·C, T] → [C, T·s]). A
// checkpoint whose TGrow has more rows than C·s keeps its LAST C·s rows (taehv.py patch_tgrow_layers).
//
// Layout inside each coder (TaehvConfig::encoder_channels_last / decoder_channels_last): [C, T, H, W]
// like the public tensors, or [T, H, W, C] (channels last), whose convs cuDNN runs ≈ 2× faster in half
// precision. Chosen at load time: TaehvLayout::Auto asks the backend
// (Backend::prefers_channels_last_conv(): CUDA yes, CPU no) and puts the encoder alone in channels
// last, for half-precision convs only: on the H200 that made the f16 encoder 36 % faster and the
// decoder 17 % slower, its TGrow permutes costing more than the convs gain (docs/perf.md, session 13).
// Ndhwc forces both coders into channels last, Ncdhw neither. The public layouts above are the same either way: encode/decode permute once on entry and exit (riding
// on the f32 ↔ conv-dtype copies). In channels last, the blocks above become: MemBlock's past is
// [1, H, W, C], TPool the same kt = s conv on [T, H, W, C], TGrow's frame split
// [T, H, W, s·C] → [T, H, W, s, C] → [T, s, H, W, C] (one permute copy), and the conv weights are
// stored [O, kt, kh, kw, C] once at load (ops::conv_weight_channels_last).
//
// Streaming (taehv.py's sequential mode, any chunking): TaehvStreamEncoder / TaehvStreamDecoder keep
// per block the last input frame (MemBlock) and the frames a TPool still waits for; feeding a clip in
// any split gives the whole-clip result (tests/test_taehv.cpp).
//
// Errors ([taehv] one line): a checkpoint that is not a TAEHV state dict, wrong channel counts, frame
// sizes that are not multiples of 8·patch_size.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"

namespace wanrt {

enum class TaehvLayout { Auto, Ncdhw, Ndhwc };  // Ndhwc: channels last inside the network

struct TaehvConfig {
    int64_t latent_channels = 16;  // taew2_1: 16; read from decoder.1.weight
    int64_t patch_size = 1;        // pixel (un)shuffle around the model; read from encoder.0.weight
    // taehv.py's constructor defaults (the released checkpoints are trained for them).
    std::array<bool, 3> encoder_time_downscale{true, true, false};
    std::array<bool, 3> decoder_time_upscale{false, true, true};
    std::array<bool, 3> decoder_space_upscale{true, true, true};
    // Not a checkpoint property: the conv weights' dtype, which sets the conv precision (ops::conv3d):
    // f32 exact on the CPU, TF32 on CUDA; f16/bf16 run half-precision convolutions, and the
    // activations between them stay in that dtype too (inputs and outputs of encode/decode are f32).
    DType conv_dtype = DType::F32;
    // Not checkpoint properties either: activations inside each coder are [T, H, W, C] (see above).
    bool encoder_channels_last = false, decoder_channels_last = false;

    int64_t t_downscale() const;                                    // 4
    int64_t t_upscale() const;                                      // 4
    int64_t frames_to_trim() const { return t_upscale() - 1; }      // 3
    int64_t space_scale() const { return 8 * patch_size; }          // 8
    // Latent channels and patch size from the tensor shapes; not a TAEHV state dict → "[taehv] ...".
    static TaehvConfig from_weights(const TensorSource& src);
};

struct TaehvNet;  // the two module lists (taehv.cpp)

class Taehv {
public:
    // Loads every weight by its state-dict name with strict shape checks (taew2_1.pth as shipped, or a
    // .safetensors with the same keys); tensors the model does not use are an error.
    // layout: the network's internal layout; Auto = the backend's preference for half convs (see above).
    static std::shared_ptr<Taehv> load(std::shared_ptr<TensorSource> src, std::shared_ptr<Backend> be,
                                       DType conv_dtype = DType::F32, TaehvLayout layout = TaehvLayout::Auto);
    ~Taehv();

    const TaehvConfig& config() const { return cfg_; }
    Backend& backend() const { return *be_; }

    // video [3, F, H, W] in [0, 1] → latent [C, ceil(F/4), H/8, W/8] (parallel over frames).
    Tensor encode(const Tensor& video) const;
    // latent [C, T, h, w] → video [3, 4T − 3, 8h, 8w] in [0, 1].
    Tensor decode(const Tensor& z) const;
    // The decoder output before pixel shuffle, clamp and trim: [3·p², 4T, 8h/p, 8w/p].
    Tensor decode_raw(const Tensor& z) const;

    void check_video(const Shape& s) const;   // [3, F ≥ 1, H, W], H and W multiples of 8·p
    void check_latent(const Shape& s) const;  // [C, T ≥ 1, h, w]

private:
    friend class TaehvStreamEncoder;
    friend class TaehvStreamDecoder;
    Taehv() = default;
    TaehvConfig cfg_;
    std::shared_ptr<Backend> be_;
    std::unique_ptr<TaehvNet> net_;
};

// Frames in, latents out, in any chunking: push() returns the latent frames completed by this chunk
// ([C, k, h, w]) or an undefined tensor when the encoder still waits for frames (fewer than 4 since the
// last latent). flush() pads with copies of the last frame pushed (as encode()) and returns the rest.
class TaehvStreamEncoder {
public:
    explicit TaehvStreamEncoder(std::shared_ptr<const Taehv> tae);
    ~TaehvStreamEncoder();
    Tensor push(const Tensor& frames);  // [3, n, H, W] in [0, 1]
    Tensor flush();
    void reset();
    int64_t frames_pushed() const { return frames_; }

private:
    std::shared_ptr<const Taehv> tae_;
    std::vector<Tensor> mem_;  // per layer, in the network's layout
    Tensor last_frame_;  // [3, 1, H, W]
    int64_t frames_ = 0, H_ = 0, W_ = 0;
};

// Latents in, frames out: push(latents [C, n, h, w]) returns the frames they complete, [3, 4n, 8h, 8w]
// (the first push of a clip drops the 3 leading frames: 4n − 3).
class TaehvStreamDecoder {
public:
    explicit TaehvStreamDecoder(std::shared_ptr<const Taehv> tae);
    ~TaehvStreamDecoder();
    Tensor push(const Tensor& latents);
    void reset();
    int64_t frames_pushed() const { return frames_; }

private:
    std::shared_ptr<const Taehv> tae_;
    std::vector<Tensor> mem_;  // per layer, in the network's layout
    int64_t frames_ = 0, raw_out_ = 0, h_ = 0, w_ = 0;
};

// Random weights under the official names and shapes (conv weights U(±1/√fan_in), biases U(±0.1)),
// stored f16 as taew2_1.pth is: CLI tests and benchmarks.
std::shared_ptr<TensorSource> synthetic_taehv_weights(int64_t latent_channels, uint32_t seed);

}  // namespace wanrt
