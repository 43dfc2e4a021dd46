// The built-in demo model and synthetic model folders.
//
// Demo model: what `wanrt generate` runs without --ckpt_dir (the flf2v demo for --task flf2v-14B: the
// i2v demo with the flf2v DiT's img_emb.emb_pos; and the i2v demo, for image tasks: the
// same networks with an i2v DiT (36 input channels, the img_emb / k_img / v_img weights) and a CLIP
// image encoder of the real width 1280 and 224² input with 2 blocks (1 runs) and a 64-wide MLP). All three networks are the real Wan2.1
// architectures at small widths (T5: 2 blocks of attention width 128 on the real 4096-wide stream; DiT: 4 blocks of width 256, head dim
// 128; VAE: dim 8, one residual block per stage, the real 16-channel latent with the Wan2.1 latent
// statistics) with deterministic random weights made on the fly, so every stage of the pipeline
// runs for real in seconds. Its videos are structured noise; the T2V demo's VAE is constructed and its
// DiT trained where the build embeds one (below), so that it can draw its prompt.
//
// Demo tokenizer: no model files may be shipped or downloaded, so a small SentencePiece BPE model
// is trained on the fly (SentencePiece trainer API, one thread, fixed sentence list → the same model
// bytes every time) from embedded English and Chinese prompts with byte fallback, so any UTF-8 text
// tokenizes (unknown characters become byte pieces). Its ids are 0 pad, 1 EOS, 2 unk, like umT5's,
// and its vocabulary has at most kDemoVocab pieces.
//
// Synthetic folders: write_t2v_folder() writes a complete folder in the official layout
// (model_folder.h) with random weights: config.json + DiT safetensors, Wan2.1_VAE.pth and
// models_t5_umt5-xxl-enc-bf16.pth (torch.save zips, io/pth_writer.h), google/umt5-xxl/spiece.model
// (the demo tokenizer: the real umT5 vocabulary cannot be made here; its ids are valid for any
// vocabulary ≥ kDemoVocab), and for an i2v DiT the CLIP .pth (write_i2v_clip). With the official
// configs this is a full-size stand-in of a release.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "models/clip.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/vae.h"
#include "models/vae22.h"
#include "pipeline/model_folder.h"
#include "pipeline/t2v.h"

namespace wanrt {

constexpr int64_t kDemoVocab = 512;
// `wanrt generate`'s prompt for the T2V demo when none is given: a caption of its training data.
constexpr const char* kDemoExamplePrompt = "a red circle moving left on a blue background";

struct DemoConfig {
    DitConfig dit;
    T5Config t5;
    VaeConfig vae;
    ClipVisionConfig clip;  // used by i2v models only
    Vae22Config vae22;      // used by the ti2v model only (its VAE; `vae` is then unused)
};
DemoConfig demo_config();
DemoConfig demo_i2v_config();
DemoConfig demo_flf2v_config();  // the i2v demo as an flf2v model (img_emb.emb_pos added)
// The Wan2.2 A14B demo experts (pipeline/moe.h): the t2v demo DiT, or the i2v one without the CLIP
// branch (in_dim 36, no img_emb / k_img / v_img); two experts of this config with different seeds.
DemoConfig demo_moe_config(bool i2v);
// The Wan2.2 TI2V-5B demo (pipeline/ti2v.h): the t2v demo DiT as a 'ti2v' model with 48 latent
// channels (per-token timesteps, no CLIP), and the Wan2.2 VAE (4×16×16 compression, z 48, the real
// latent statistics) at demo width: dim = dec_dim = 16, one residual block per stage.
DemoConfig demo_ti2v_config();

// Generation defaults for the demo (the official ones would take minutes on a CPU). The trained T2V
// demo (only when demo_dit_trained()) runs at the size of its training clips (scripts/demo_data.py: 64×64, 17 frames) and without
// classifier-free guidance (guide 1): it was trained on captions only, never on an empty or negative
// prompt, so it has no unconditional prediction to guide away from.
struct DemoDefaults {
    int64_t width = 256, height = 256, frame_num = 17;
    int sample_steps = 8;
    int64_t t2v_width = 64, t2v_height = 64;
    double t2v_guide = 1.0;
    std::string t2v_neg_prompt = kWanDefaultNegPrompt;
};

// The serialized SentencePiece model of the demo tokenizer (deterministic bytes).
const std::string& demo_tokenizer_model();
// Writes it as <dir>/spiece.model (creating dir).
void write_demo_tokenizer(const std::string& dir);

// The demo model as parts: weights made in memory on first use (seed fixed), the tokenizer written
// to a temporary folder that is removed when the parts are destroyed.
// The T2V demo (demo_model_parts) has the constructed VAE (demo_vae_weights) and, where the build
// embeds assets/demo/dit.safetensors (demo_dit_blob), the DiT `wanrt train --full` made on the
// procedural clips of scripts/demo_data.py through that VAE (docs/training.md, "The trained demo");
// otherwise, and with DemoDit::Random (the start of that training, scripts/train_demo.sh), the random
// DiT. Its name says which.
// The other demos (i2v, flf2v, A14B, ti2v) have random weights throughout.
enum class DemoDit { Trained, Random };
T2VModelParts demo_model_parts(DemoDit dit = DemoDit::Trained);
// The embedded safetensors bytes of the trained demo DiT (f16, official names), or {nullptr, 0}.
std::pair<const void*, size_t> demo_dit_blob();
// Whether this build embeds it. The T2V demo's own defaults (DemoDefaults::t2v_*, the example prompt)
// apply only then; without it the demo behaves as the random one always did.
inline bool demo_dit_trained() { return demo_dit_blob().second > 0; }
T2VModelParts demo_i2v_model_parts();
T2VModelParts demo_flf2v_model_parts();
// The A14B demo: two experts (high_noise_weights, dit_weights) of demo_moe_config(i2v).
T2VModelParts demo_moe_model_parts(bool i2v);
// The TI2V-5B demo: t2v and i2v (an image) in one model, as the release.
T2VModelParts demo_ti2v_model_parts();

// Constructed ("analytic") Wan2.1 VAE weights that make the VAE an approximate autoencoder of clips
// in [-1, 1] (demo_vae.cpp says how): encode = 8×8 average pooling per frame and the mean of each
// 4-frame group (latent 0 = frame 0), written to latent channels 0..2 as R, G, B after the pipeline's
// normalisation (the other channels are 0); decode = nearest-neighbour upsampling back (each latent
// pixel an 8×8 block held for the 4 frames it pooled). decode(encode(x)) equals that pool-and-hold
// of x within ~3e-4 (the one approximation: the heads' RMS_norm divides by a norm held constant by a
// carried channel of 100). Needs the Wan2.1 strides and latent statistics (z_dim 16) and ≥ 8 channels
// at every stage (dim ≥ 8); otherwise wanrt::Error "[demo] ...".
std::shared_ptr<TensorSource> demo_vae_weights(const VaeConfig& cfg);

// Random weights in the official key layout (deterministic per seed).
std::shared_ptr<TensorSource> synthetic_t5_weights(const T5Config& c, uint64_t seed);
// The demo models' text encoder: synthetic_t5_weights except the first block's position bias, which
// makes half the heads attend to the previous token and half to the next, so word order reaches the
// DiT (a colour word and the noun after it: "red circle", "blue background").
std::shared_ptr<TensorSource> demo_t5_weights(const T5Config& c, uint64_t seed);

// Writes a complete official-layout folder (see above). matrix_dtype: the DiT's linear weights
// (f32 as released); the T5 is bf16 and the VAE f32, as released. progress(what) per file.
void write_t2v_folder(const std::string& dir, const DemoConfig& cfg, DType matrix_dtype, uint64_t seed,
                      const std::function<void(const std::string&)>& progress = {});
// The parts besides the DiT (VAE, T5, tokenizer), for a folder whose DiT was written by write_synth_dit.
void write_t2v_extras(const std::string& dir, const T5Config& t5, const VaeConfig& vae, uint64_t seed,
                      const std::function<void(const std::string&)>& progress = {});
// The image-to-video extra: models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (the visual tower
// in f32, as released; models/synth.h says what is left out).
void write_i2v_clip(const std::string& dir, const ClipVisionConfig& clip, uint64_t seed);

}  // namespace wanrt
