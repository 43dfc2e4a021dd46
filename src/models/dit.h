// The Wan2.1 diffusion transformer (`WanModel`, wan/modules/model.py; docs/wan21.md §1), T2V and I2V, and
// Wan2.2's TI2V (per-token timesteps, DitSample::t_tokens). The block itself: dit_block.h.
//
// Shapes (PyTorch order): a latent is [C, F, H, W] per sample; tokens are (f, h, w) row-major
// over the patch grid (F/pt, H/ph, W/pw); the hidden state is [B, seq_len, dim] with each sample's
// tokens first and zero padding after. Precision on the CPU: float32 everywhere, with f32/bf16/f16
// matrices used in place.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"
#include "models/dit_offload.h"

namespace wanrt {

struct DitConfig {
    // "t2v", "i2v" (image conditioning: y, clip_fea), "flf2v" (first-last-frame: i2v plus
    // img_emb.emb_pos, clip_fea of both frames) or "ti2v" (Wan2.2 TI2V-5B: the t2v structure, fed
    // per-token timesteps through DitSample::t_tokens)
    std::string model_type = "t2v";
    int patch_t = 1, patch_h = 2, patch_w = 2;
    int64_t text_len = 512, in_dim = 16, dim = 2048, ffn_dim = 8192, freq_dim = 256, text_dim = 4096;
    int64_t out_dim = 16, num_heads = 16, num_layers = 32;
    int window_left = -1, window_right = -1;
    bool qk_norm = true, cross_attn_norm = true;
    float eps = 1e-6f;
    // Wan2.1's CLIP image branch of an i2v/flf2v model (img_emb, cross_attn.k_img / v_img /
    // norm_k_img, clip_fea). Wan2.2's I2V-A14B experts are model_type "i2v" (y concatenated, in_dim
    // 36) without it, and their config.json equals Wan2.1 I2V-14B's: open_dit_checkpoint and
    // from_weights set it from the weights (false when img_emb.proj.0.weight is absent).
    bool clip_branch = true;

    // The WanModel constructor defaults, overridden by the fields present in the JSON text
    // (config.json or a fixture's `config` metadata). Unknown model_type or bad values throw.
    static DitConfig from_json(const std::string& json_text, const std::string& origin);
    // Derived from tensor shapes when no config.json exists. num_heads is not stored in the
    // weights: every Wan2.1 release uses head_dim 128, so num_heads = dim / 128 (said in a note).
    static DitConfig from_weights(const TensorSource& src, const std::string& prefix = "");
    // Official sizes: "t2v-1.3B", "t2v-14B", "i2v-14B".
    static DitConfig preset(const std::string& name);
    static std::vector<std::string> preset_names();

    bool is_i2v() const { return model_type == "i2v" || model_type == "flf2v"; }  // takes y (and maybe clip_fea)
    bool has_clip() const { return is_i2v() && clip_branch; }                      // takes clip_fea
    bool is_flf2v() const { return model_type == "flf2v"; }
    int64_t head_dim() const { return dim / num_heads; }
    int64_t patch_volume() const { return int64_t(patch_t) * patch_h * patch_w; }
    void validate(const std::string& origin) const;  // throws on inconsistent values
    std::string to_json() const;                      // config.json text (official field names)
};

// Every tensor of the model: official name and shape. Used by the loader, `wanrt synth` and `info`.
struct ParamSpec {
    std::string name;
    Shape shape;
    bool matrix;  // a linear-layer weight (large; may be kept bf16/f16)
};
std::vector<ParamSpec> dit_param_table(const DitConfig& c);
int64_t dit_param_count(const DitConfig& c);
// What keeps src from loading as the model c describes, read from the headers only (no weights):
// one line per problem (missing tensor, wrong shape, a dtype other than f32/f16/bf16/fp8 or a GGUF
// block type; pass a GgufTensorSource's stored_view() so nothing is decoded), at most
// `limit` lines plus a count of the rest; empty when it would load. `prefix` as DitModel's.
std::vector<std::string> dit_weight_problems(const DitConfig& c, const TensorSource& src,
                                             const std::string& prefix = "", size_t limit = 5);

// One sample of a batch. All tensors f32 on the model's backend.
struct DitSample {
    Tensor x;         // [C, F, H, W] noisy latent (T2V: C = in_dim; I2V: C = in_dim − cond channels)
    Tensor y;         // I2V only: [in_dim − C, F, H, W] conditioning (mask + image latent)
    Tensor context;   // [len ≤ text_len, text_dim] text encoder output, trimmed to its real length
    Tensor clip_fea;  // I2V: [257, 1280] CLIP features; FLF2V: [514, 1280], the first frame's then the last's
                      // (none for a model without the CLIP branch, Wan2.2 I2V-A14B)
    float t = 0;      // timestep (the scheduler's integer value)
    // Optional per-token timesteps (Wan2.2 TI2V: 0 on the tokens of a given first frame): seq_len
    // values, the padding tokens' included; when set, t is not used. Token runs of equal t share
    // one modulation row (dit_block.h), so a per-frame pattern costs no per-token modulation.
    std::vector<double> t_tokens = {};
};

// Positions per axis the DiT's RoPE table covers (frames, height, width in patches), as the reference.
constexpr int64_t kRopePositions = 1024;
// Fails (module's one-line error) when a latent grid of T frames of h×w (latent pixels) has more
// patches along an axis than the RoPE table: checked before anything is sized from the grid, so a
// huge --frame_num or --size is refused at once. tf/sf: the VAE's temporal/spatial factors (for the
// limits in frames and pixels that the message gives).
void check_rope_grid(const DitConfig& c, int64_t T, int64_t h, int64_t w, int64_t tf, int64_t sf, const char* module);

// The RoPE angle table for head dim d: f32 [max_pos, d/2, 2] (cos, sin), built in float64 from
// three rope_params tables (frame, height, width) of dims d − 4⌊d/6⌋, 2⌊d/6⌋, 2⌊d/6⌋.
std::vector<double> rope_table_f64(int64_t head_dim, int64_t max_pos = 1024);
// [n, dim] sinusoidal embedding of positions (cos first, then sin), computed in float64.
std::vector<double> sinusoidal_embedding_f64(const std::vector<double>& pos, int64_t dim);

struct DitBlockWeights;
struct DitWeights;

// Step caching's hook on the block stack (pipeline/step_cache.h). Before the blocks run, reuse(e, e0)
// gets the time embedding e [G, D] and e0 [G, 6, D] and may return a residual [B, seq_len, D]: it is
// added to the block-stack input instead of running the blocks (TeaCache, MagCache). When the blocks
// ran, computed(residual) receives their output − input [B, seq_len, D].
struct DitStackHook {
    std::function<Tensor(const Tensor& e, const Tensor& e0)> reuse;
    std::function<void(const Tensor& residual)> computed;
};

class DitModel {
public:
    // Loads from a tensor source (official key names under prefix) with strict checks. offload
    // (models/dit_offload.h): on a device backend, the blocks past the budget's resident count are
    // loaded, moved to pinned host memory and streamed through device slots in forward(); on a host
    // backend it changes nothing.
    DitModel(const DitConfig& cfg, std::shared_ptr<TensorSource> src, Backend& be, const std::string& prefix = "",
             const DitOffloadOptions& offload = {});
    ~DitModel();

    const DitConfig& config() const { return cfg_; }
    Backend& backend() const { return be_; }

    // Runs the model on a batch padded to seq_len tokens (≥ every sample's token count).
    // Returns the velocity [out_dim, F, H, W] per sample. dump, if set, receives the named
    // intermediates: patch_embed_first [1, D, f, h, w], e [B, D] and e0 [B, 6, D] (with t_tokens:
    // [B, seq_len, D] and [B, seq_len, 6, D], as Wan2.2 names them), context_emb
    // [B, text_len, D], and per block (dit_block.h) blk.N.self_attn.out, blk.N.cross_attn.out,
    // blk.N.ffn.out and block{N}_out [B, seq_len, D].
    std::vector<Tensor> forward(const std::vector<DitSample>& batch, int64_t seq_len,
                                const DumpFn& dump = nullptr, const DitStackHook* hook = nullptr) const;

    // Token count of a latent [C, F, H, W] for this model's patch.
    int64_t tokens_for(const Shape& latent) const;

    // Tokens per FFN chunk (0 = automatic: a 256 MB f32 hidden state). Exact for any value.
    void set_ffn_chunk_tokens(int64_t n) { ffn_chunk_tokens_ = n; }

    // For models built on the same weights (the causal KV-cache model): dit_weights.h.
    const DitWeights& weights() const { return *w_; }
    // For attaching run-time LoRA branches after loading (models/lora.h).
    DitWeights& mutable_weights() { return *w_; }
    const Tensor& rope_table() const { return rope_; }  // f32 [1024, head_dim/2, 2]
    // Block streaming: the plan (resident / streamed blocks, bytes); offloaded() when blocks stream.
    const DitOffloadPlan& offload_plan() const { return plan_; }
    bool offloaded() const { return streamer_ != nullptr; }

private:
    DitConfig cfg_;
    Backend& be_;
    std::unique_ptr<DitWeights> w_;
    Tensor rope_;  // f32 [1024, head_dim/2, 2]
    int64_t ffn_chunk_tokens_ = 0;
    DitOffloadPlan plan_;
    std::unique_ptr<DitBlockStreamer> streamer_;  // set when blocks stream (its slots change per forward)
};

// Opens a model folder or file: a directory with config.json (optional) and
// diffusion_pytorch_model.safetensors or its sharded index, or instead one DiT .gguf (find_dit_gguf,
// io/gguf_dit.h; a folder holding both is an error); or a single .safetensors file, which may be a
// ComfyUI file (model.diffusion_model. prefix, fp8 with scale_weight: io/comfy_source.h), or a single
// .gguf (city96's layout). Without a config.json beside the weights the config comes from the shapes
// (safetensors: DitConfig::from_weights; GGUF: infer_dit_config, which refuses a dim that is not a
// multiple of 128). A GGUF's quantized tensors stay in their block dtypes where wanrt has one
// (GgufBlocks::Keep): WeightLoader keeps them quantized on the backends that hold block types (CPU,
// CUDA) and decodes them per tensor elsewhere. Errors are one line naming the file.
struct DitCheckpoint {
    DitConfig config;
    std::shared_ptr<TensorSource> weights;
    std::string config_origin;  // "config.json" path or "derived from weights"
};
DitCheckpoint open_dit_checkpoint(const std::string& path);

}  // namespace wanrt
