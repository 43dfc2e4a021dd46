// Model folders as released (Hugging Face Wan-AI/Wan2.1-T2V-1.3B, -T2V-14B, ...; docs/wan21.md §7) and the
// staged text-to-video run on them.
//
// The official layout, all in one folder (`--ckpt_dir`):
//   config.json                                    DiT config (diffusers; model kind comes from it)
//   diffusion_pytorch_model.safetensors            DiT weights, or the sharded set
//   diffusion_pytorch_model.safetensors.index.json   + diffusion_pytorch_model-0000k-of-0000K.safetensors
//   Wan2.1_VAE.pth                                 VAE state dict (torch.save zip)
//   models_t5_umt5-xxl-enc-bf16.pth                umT5-XXL encoder state dict (torch.save zip, bf16)
//   google/umt5-xxl/spiece.model                   tokenizer (SentencePiece; the HF folder)
// Image-to-video folders (Wan2.1-I2V-14B-480P / -720P, config.json model_type "i2v") and the
// first-last-frame folder (Wan2.1-FLF2V-14B-720P, model_type "flf2v", the same files) add
//   models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth   CLIP (its visual tower is the image encoder)
// and an xlm-roberta-large/ tokenizer folder, which only CLIP's text tower uses (WanI2V never runs it):
// it is not required. The CLIP's config is read from its tensors (clip_config_from_weights); its .pth
// may also be a .safetensors with the same keys.
// Accepted variants: Wan2.1_VAE.safetensors and models_t5_umt5-xxl-enc-bf16.safetensors (same keys)
// in place of the .pth files (the .pth wins when both exist). A quantized DiT: one Wan DiT .gguf
// (any name, e.g. city96's wan2.1-t2v-14b-Q4_K_M.gguf; io/gguf_dit.h find_dit_gguf) in place of
// diffusion_pytorch_model*; config.json is then optional (the config is inferred from the GGUF's
// shapes, heads = dim / 128) unless the model is a TI2V-5B or of other head widths. A folder with
// both an official DiT and a DiT .gguf is an error (open_dit_checkpoint).
//
// Wan2.2 releases (Wan-AI/Wan2.2-*; wan/configs of Wan2.2):
//   T2V-A14B, I2V-A14B   high_noise_model/ and low_noise_model/ (each config.json + DiT weights, sharded),
//                        Wan2.1_VAE.pth, the umT5 .pth and google/umt5-xxl/; no top-level DiT, no CLIP
//                        (the I2V experts are model_type "i2v" without the CLIP branch: pipeline/moe.h)
//   TI2V-5B              config.json (model_type "ti2v") + DiT weights, Wan2.2_VAE.pth, umT5, google/umt5-xxl/
// Either expert folder present makes the A14B layout. Generations are not mixed: a Wan2.2 VAE beside
// a Wan2.1 DiT or the A14B experts, a Wan2.1 VAE alone beside a TI2V DiT, or experts of another kind
// are one error, found from file names and config.json before any weights load.
//
// The VAE checkpoint carries no config: the VAE's widths are read from its tensors (dim from
// encoder.conv1, z_dim from conv2) and the block count is the one whose full weight manifest
// (vae_weight_manifest) matches the file exactly, so a foreign file is an error, never a guess.
//
// Errors (wanrt::Error "[model] ..."): a folder that does not exist; missing files (ONE error that
// lists every missing part and the names looked for); a task that does not match the folder's model
// (e.g. --task t2v-14B on a 1.3B folder).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/clip.h"
#include "models/dit.h"
#include "models/lora.h"
#include "models/t5.h"
#include "models/vae.h"
#include "models/vae22.h"
#include "pipeline/t2v.h"

namespace wanrt {

// One part of a folder and where it was looked for.
struct ModelPart {
    std::string role;                     // "DiT config", "DiT weights", "VAE", "text encoder", "tokenizer"
    std::string path;                     // found file/folder ("" if missing)
    std::vector<std::string> looked_for;  // names tried, relative to the folder
    bool found() const { return !path.empty(); }
};

struct ModelFolder {
    std::string dir;
    ModelPart config, dit, vae, t5, tokenizer, clip;
    ModelPart high_noise, low_noise;  // Wan2.2 A14B: the expert subfolders (config.json + weights each)
    ModelPart vae22;                  // Wan2.2_VAE.pth (TI2V-5B)
    bool image_model = false;  // config.json says model_type "i2v" or "flf2v": the CLIP is required too
    bool moe = false;          // the A14B layout (high_noise_model/ or low_noise_model/ exists)
    bool dit_gguf = false;     // dit is a .gguf (config.json optional)
    std::string model_type;    // config.json's (A14B: the experts'; a GGUF DiT without one: its shapes'), "" when unreadable
    std::vector<const ModelPart*> parts() const {
        std::vector<const ModelPart*> p;
        if (moe) p = {&high_noise, &low_noise, &vae, &t5, &tokenizer};
        else if (model_type == "ti2v") p = {&config, &dit, &vae22, &t5, &tokenizer};
        else if (image_model) p = {&config, &dit, &vae, &t5, &tokenizer, &clip};
        else p = {&config, &dit, &vae, &t5, &tokenizer};
        if (dit_gguf && !config.found()) p.erase(std::find(p.begin(), p.end(), &config));  // inferred from the GGUF
        return p;
    }
    std::vector<std::string> missing() const;  // "role (looked for a, b)" per missing part
};

// Looks for every part; missing parts are recorded, not thrown. Throws if dir is not a folder.
ModelFolder scan_model_folder(const std::string& dir);
// Throws one "[model] ..." error for a folder that mixes generations (see above), then one listing
// every missing part, if any.
void require_complete(const ModelFolder& f);

// The official model a DiT config has the widths of ("t2v-1.3B", "t2v-14B", "i2v-14B", "flf2v-14B"; the block
// count may be smaller, as in `wanrt synth --layers`), or "" for other widths.
std::string official_kind(const DitConfig& c);
// Human-readable kind: "t2v-1.3B", "t2v-14B (2 of 40 blocks)", "custom t2v (dim 64, 2 blocks)".
std::string describe_kind(const DitConfig& c);
// The same for the experts of an A14B folder: "t2v-A14B", "i2v-A14B" (each expert has the 14B widths; an
// i2v expert has no CLIP branch), "custom t2v-A14B (dim 64, 2 blocks)".
std::string official_moe_kind(const DitConfig& expert);
std::string describe_moe_kind(const DitConfig& expert);

// Opens a weights file by extension: .pth (torch.save), .gguf (quantized types decoded), or
// .safetensors / .safetensors.index.json (ComfyUI fp8 layouts through io/comfy_source.h).
std::shared_ptr<TensorSource> open_weights_file(const std::string& path);
// The VAE config of a Wan VAE state dict (see above). Throws "[model] ..." if nothing matches.
VaeConfig vae_config_from_weights(const TensorSource& src);
// The CLIP image encoder's config from its "visual." tensors: dim and patch from patch_embedding,
// image_size from pos_embedding's token count, layers from the block count, the MLP width from
// mlp.0. Heads are not stored: head dim 80 as ViT-H/14 (dim 1280, 16 heads). Released: vit_h_14().
ClipVisionConfig clip_config_from_weights(const TensorSource& src);

// Where a text-to-video model's parts come from: an official folder or the built-in demo
// (pipeline/demo.h). Weights are opened on demand so each stage's memory can be released before
// the next stage loads.
struct T2VModelParts {
    std::string name;  // "Wan2.1-T2V-1.3B folder /x" or "built-in demo model"
    std::string kind;  // describe_kind(dit_config) or "demo"
    DitConfig dit_config;
    VaeConfig vae_config;
    std::function<std::shared_ptr<TensorSource>()> dit_weights, t5_weights, vae_weights;
    // Set (`--vae tae`): the decode stage runs TAEHV (models/taehv.h) from these weights and never
    // loads the Wan VAE.
    std::function<std::shared_ptr<TensorSource>()> tae_weights;
    std::string tokenizer;            // folder holding spiece.model, or the file
    // Image-to-video models only (dit_config.is_i2v()): the CLIP image encoder.
    ClipVisionConfig clip_config;
    std::function<std::shared_ptr<TensorSource>()> clip_weights;
    // Wan2.2 A14B (mixture of experts, pipeline/moe.h): the high-noise expert's weights; dit_weights is
    // then the low-noise expert's. Both have dit_config (open_model_folder requires equal configs).
    std::function<std::shared_ptr<TensorSource>()> high_noise_weights;
    bool moe() const { return bool(high_noise_weights); }
    // Wan2.2 TI2V-5B (dit_config.model_type "ti2v", pipeline/ti2v.h): vae_weights is then Wan2.2_VAE.pth
    // with this config (vae_config is unused).
    Vae22Config vae22_config;
    bool ti2v() const { return dit_config.model_type == "ti2v"; }
    std::shared_ptr<void> keepalive;  // e.g. the demo's temporary tokenizer folder
    LoraOptions lora;                 // LoRA files applied to the DiT as it loads (models/lora.h)
    bool linear_fp8 = false;          // --linear_dtype fp8: block linears quantized after loading (models/dit_fp8.h)
    DitOffloadOptions offload;        // --offload / --max_vram: DiT blocks streamed (models/dit_offload.h)
    bool t5_cpu = false;              // --t5_cpu: the text encoder runs on the CPU, contexts are uploaded
};

// Scans, requires completeness, reads config.json and the VAE config. No weights are loaded.
// A folder with model_index.json is read in diffusers layout (pipeline/diffusers_folder.h).
T2VModelParts open_model_folder(const std::string& dir);

// The whole staged run: tokenizer → T5 (loaded, both prompts encoded, then freed) → DiT (loaded,
// denoised, freed) → VAE (loaded, decoded). Peak memory is max(T5, DiT, VAE), not their sum.
struct T2VStagedTimes {
    double tokenize = 0, t5_load = 0, text = 0, dit_load = 0, denoise = 0, vae_load = 0, decode = 0;
    std::vector<double> step_seconds;
    int64_t prompt_tokens = 0, neg_prompt_tokens = 0;
};
struct T2VStagedResult {
    Tensor video;  // [3, F, H, W] f32 in [-1, 1]
    T2VStagedTimes times;
};
// on_stage(stage) is called as each stage starts ("load text encoder", "encode text", ...).
using StageFn = std::function<void(const std::string&)>;
T2VStagedResult run_t2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                               const std::string& neg_prompt, uint64_t seed, const T2VOptions& opt,
                               const std::function<void(const std::string&)>& on_stage = {},
                               const T2VStepCallback& on_step = {});

// The stages every staged runner shares.
// Text: tokenizes each prompt, loads the folder's text encoder for this call only (released on
// return, before a DiT loads), encodes → one context [len, text_dim] per prompt. Records the
// tokenize / t5_load / text seconds and each prompt's token count.
struct TextStageTimes {
    double tokenize = 0, t5_load = 0, text = 0;
    std::vector<int64_t> tokens;
};
std::vector<Tensor> run_text_stage(const T2VModelParts& m, Backend& be, const std::vector<std::string>& prompts,
                                   TextStageTimes& times, const StageFn& on_stage = {});
// DiT weights replacing the folder's: a CausVid / Self-Forcing / StreamDiffusionV2 checkpoint and the
// key prefix of its DiT (open_generator in causal_staged.h). src == nullptr: the folder's own weights.
struct CausalDitSource {
    std::shared_ptr<TensorSource> src;
    std::string prefix;
};
// DiT: loads the folder's DiT, or dit's when dit.src is set (the file handle goes when this returns;
// the model keeps what it needs), with m.lora's LoRA files merged or attached; records the load
// seconds. The one DiT loader of every runner.
std::shared_ptr<const DitModel> run_dit_load_stage(const T2VModelParts& m, Backend& be, CausalDitSource dit,
                                                   double& load_seconds, const StageFn& on_stage = {});
// VAE: loads the VAE (or TAEHV when m.tae_weights is set), decodes latent [16, T, h, w] → video
// [3, F, H, W] in [-1, 1]; records seconds.
Tensor run_decode_stage(const T2VModelParts& m, const std::shared_ptr<Backend>& be, const Tensor& latent,
                        double& vae_load_seconds, double& decode_seconds, const StageFn& on_stage = {});

}  // namespace wanrt
