// Block-autoregressive generation with the causal DiT (CausVid InferencePipeline.inference,
// Self-Forcing CausalInferencePipeline; docs/streaming.md §2, §3), and the FlowMatch tables all causal
// code bases share (§2.2–2.4).
//
// Loop (latents [C, F, H, W], F a multiple of frames_per_block; blocks b of fpb frames):
//   prefill: the first P blocks are the given start latents; each is one t = 0 call that writes
//            its clean K/V (output discarded);
//   denoise: x = noise[:, block]; for each step τ_j: x̂₀ = x − σ(τ_j)·G(x, τ_j) (flow → x̂₀);
//            if j < n−1: x = (1 − σ(τ_{j+1}))·x̂₀ + σ(τ_{j+1})·ε_j with a fresh draw ε_j;
//            out[block] = the last x̂₀;
//   clean pass: G(x̂₀, t = context_noise) rewrites the block's K/V (CausVid: t = 0), so later blocks
//            attend to the clean block. Every call writes the block's K/V at its frames and attends
//            to all earlier frames (linear cache of F frames: no eviction, no position wrap), or with
//            cache_frames set to the sink frames and the newest cache_frames − sink frames.
// The noise for block b is noise[:, b·fpb : (b+1)·fpb] (absolute indexing, as CausVid; the noise
// of prefilled blocks is unused). x̂₀ and re-noising are f32 linear combinations on the backend
// (the reference forms x̂₀ in float64 and re-noises in float32; the difference is ≤ 1 ulp per term).
//
// Step list: timesteps as the DiT receives them. A trailing 0 is dropped (CausVid configs carry it);
// with warp = true each entry s is replaced by the shifted table value t[1000 − s] (0 for s = 0),
// CausVid's / Self-Forcing's warp_denoising_step.
//
// Errors ([causal] one line): frames not a multiple of frames_per_block, bad step lists (empty,
// outside [0, 1000]), start latents not whole blocks or of another size, context/noise shapes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"
#include "models/causal_dit.h"

namespace wanrt {

// FlowMatchScheduler(shift, sigma_min = 0, extra_one_step = True).set_timesteps(1000, training=True):
// the float32 tables of docs/streaming.md §2.2, bit-exact.
struct FlowMatchTable {
    double shift = 8.0;
    std::vector<float> sigmas;     // 1000 values, σ_0 = 1, decreasing
    std::vector<float> timesteps;  // t_i = fl32(σ_i · 1000)

    explicit FlowMatchTable(double shift);
    // argmin_i |t_i − q| (first on ties), as every consumer looks timesteps up; q = 0 → 999.
    int nearest(double q) const;
    float sigma(double q) const { return sigmas[size_t(nearest(q))]; }
    // warp_denoising_step: concat(t, [0])[1000 − s] for each s (integers in [0, 1000]).
    std::vector<double> warp(const std::vector<double>& steps) const;
};

struct CausalOptions {
    int64_t frames_per_block = 3;
    std::vector<double> steps{1000, 757, 522};  // CausVid wan_causal_dmd.yaml (trailing 0 dropped)
    double shift = 8.0;                         // CausVid 8, Self-Forcing 5
    bool warp = false;
    double context_noise = 0;  // timestep of the clean K/V pass
    // Skip the clean pass after the last block (its K/V are never read; Self-Forcing's demo skips it).
    bool skip_last_clean_pass = false;
    // KV cache size in latent frames: 0 = every frame (CausVid, Self-Forcing global attention);
    // otherwise a rolling cache of that many frames keeping sink_frames (Self-Forcing's
    // local_attn_size / sink_size), which bounds memory for long videos (positions still < 1024).
    int64_t cache_frames = 0, sink_frames = 0;

    // The effective step list (trailing 0 dropped, warped if asked); validates.
    std::vector<double> step_list(const FlowMatchTable& table) const;
};

struct CausalCall {
    int64_t index = 0;   // call counter
    int64_t block = 0;
    double t = 0;        // timestep of the call
    int64_t start = 0, end = 0;  // token offsets of the block in the virtual full sequence
    bool prefill = false, clean = false;
};

// Re-noising draws: returns ε for draw `index` (0, 1, … in call order) of the given shape
// [C, fpb, H, W], f32 on be. Tests inject recorded draws; production uses a seeded generator.
using NoiseSource = std::function<Tensor(Backend& be, const Shape& shape, int64_t index)>;
// Seeded standard normal draws (64-bit Mersenne Twister + Box–Muller; not PyTorch's stream).
NoiseSource seeded_noise(uint64_t seed);
// Called after each model call with its x̂₀ [C, fpb, H, W] (prefill calls included: their x̂₀ too).
// When set, clean/prefill passes also compute the head (otherwise they only write the cache).
using CausalCallback = std::function<void(const CausalCall& call, const Tensor& x0)>;

// Generates the latent video [C, F, H, W] from noise [C, F, H, W] (f32 on the model's backend) and
// the prompt's context [len, text_dim] (T5 output, trimmed). start_latents [C, P·fpb, H, W] or
// undefined: the first P blocks are prefilled from it (video extension / I2V by latent).
// This is what `wanrt generate --causal` runs between the T5 encode and the VAE decode.
Tensor generate_causal(const CausalDitModel& model, const Tensor& context, const Tensor& noise,
                       const CausalOptions& opt, const NoiseSource& draws, const Tensor& start_latents = {},
                       const CausalCallback& on_call = {});

// The key prefix under which a checkpoint holds the DiT with its official names: "" for a Wan release,
// "model." for a wrapper state dict, "generator.model." / "generator_ema.model." for CausVid,
// Self-Forcing and StreamDiffusionV2 model.pt files (nested dicts flattened with '.'); the first
// name ending in patch_embedding.weight decides. Throws "[causal] ..." if there is none.
std::string find_dit_prefix(const TensorSource& src);

// x̂₀ = x − σ·v and (1 − σ)·x̂₀ + σ·ε as one f32 linear combination each (new tensors).
Tensor flow_to_x0(const Tensor& v, const Tensor& x, float sigma);
Tensor add_noise(const Tensor& x0, const Tensor& eps, float sigma);

}  // namespace wanrt
