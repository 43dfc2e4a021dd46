// Staged causal text-to-video: what `wanrt generate --causal` runs on a model folder (CausVid /
// Self-Forcing inference from a prompt), with the stages of run_t2v_staged (model_folder.h):
//
//   tokenizer → T5 (prompt only: no classifier-free guidance, so no negative prompt; freed)
//   → causal DiT (the folder's weights or a generator checkpoint; generate_causal; freed)
//   → VAE (loaded, t2v_decode).
// Peak memory is max(T5, DiT + KV cache, VAE), not their sum.
//
// Noise: one seeded stream (seeded_noise(seed)) gives first the initial latent noise
// [z_dim, F, H/8, W/8] (the same values as t2v_noise(seed)), then every re-noising draw in call order,
// so a seed fixes the whole video.
//
// Errors: those of t2v_latent_shape ("[t2v] ...": frames, size) before anything loads, of
// generate_causal ("[causal] ...": block multiple, step list, cache size), and of loading.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/causal.h"
#include "pipeline/model_folder.h"

namespace wanrt {

// Opens a generator checkpoint (CausalDitSource, model_folder.h) without reading its weights: .pt /
// .pth as torch.save zips (CausVid and Self-Forcing save model.pt), otherwise by extension
// (open_weights_file); finds the DiT's key prefix (find_dit_prefix). Throws the reader's error, or
// "[causal] ... holds no DiT ...".
CausalDitSource open_generator(const std::string& path);

struct CausalBlockInfo {
    int64_t block = 0, blocks = 0;  // block index (0-based) and count
    int64_t calls = 0;              // DiT calls so far (denoising steps and clean passes)
    double block_seconds = 0;       // this block (its steps and its clean pass)
    double elapsed_seconds = 0;     // since generation started
};
using CausalBlockCallback = std::function<void(const CausalBlockInfo&)>;

struct CausalStagedTimes {
    double tokenize = 0, t5_load = 0, text = 0, dit_load = 0, denoise = 0, vae_load = 0, decode = 0;
    std::vector<double> block_seconds;
    int64_t prompt_tokens = 0, dit_calls = 0;
    int64_t kv_cache_bytes = 0;  // the self-attention cache of the run (f32 K and V of every layer)
};
struct CausalStagedResult {
    Tensor video;  // [3, frame_num, H, W] f32 in [-1, 1]
    CausalStagedTimes times;
};

// opt gives the size and frame count (its sampler fields are unused); copt the causal loop. dit is
// moved in and released after the DiT stage. on_stage(stage) as run_t2v_staged; on_block after each
// finished block (the device synchronised).
CausalStagedResult run_causal_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                     uint64_t seed, const T2VOptions& opt, const CausalOptions& copt,
                                     CausalDitSource dit = {},
                                     const std::function<void(const std::string&)>& on_stage = {},
                                     const CausalBlockCallback& on_block = {});

}  // namespace wanrt
