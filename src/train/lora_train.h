// LoRA training of a frozen DiT (issue 23): trainable low-rank branches on chosen Linears of every
// block, their gradients from the DiT backward (dit_backward.h: the branches' share of each Linear's
// backward), and the file they are saved as.
//
// A branch is the run-time LoRA branch of the loader (dit_weights.h, LoraBranch) made trainable:
// y = x·Wᵀ + b + (α/r)·(x·downᵀ)·upᵀ with down [r, in], up [out, r] in f32. Initialisation as PEFT /
// kohya: down ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5), up = 0, so the model starts equal to
// the base. The optimizer (AdamW, adamw.h) updates the branches' tensors in place; the base weights
// are never touched and get no gradient (dit_grads_zeros(model, false)).
//
// Targets (--lora_targets, comma separated), per block:
//   q, k, v, o        self_attn.X and cross_attn.X          ffn    ffn.0 and ffn.2
//   self_attn.q, cross_attn.o, ffn.0, … (a block's module name as the official checkpoint spells it)
//
// File written (kohya / ComfyUI, what models/lora.h reads, f32):
//   diffusion_model.blocks.N.<module>.lora_down.weight [r, in], .lora_up.weight [out, r], .alpha (scalar)
// with metadata ss_network_dim, ss_network_alpha, wanrt_lora_targets.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/backend.h"
#include "models/dit.h"
#include "train/dit_backward.h"

namespace wanrt {

struct LoraTrainConfig {
    int64_t rank = 16;
    double alpha = 16;  // the branch scale is alpha / rank
    std::string targets = "q,k,v,o,ffn";
};

// The block-module names ("self_attn.q", "ffn.0", …) that a --lora_targets string selects, in the
// block's order; an unknown or empty target is a one-line error listing the accepted ones.
std::vector<std::string> lora_target_modules(const std::string& targets);

// One trainable pair: its official module name ("blocks.0.self_attn.q") and the branch's tensors
// (handles shared with the model's LoraBranch: updating them updates the model).
struct LoraParam {
    std::string module;
    Tensor down, up;  // [r, in], [out, r] f32
};

// Attaches one trainable branch per target Linear of every block (deterministic per seed). Fails on
// a model that already carries branches, a rank < 1, alpha ≤ 0.
std::vector<LoraParam> attach_trainable_lora(DitModel& model, const LoraTrainConfig& cfg, uint64_t seed);

// The model's trainable pairs, in attach order (block by block, then the target order).
std::vector<LoraParam> lora_params(DitModel& model);

// The optimizer's parameter list for pairs: down, up of each pair in order; lora_grad_list gives the
// gradients in the same order from a DitGrads made by dit_grads_zeros after the attach.
std::vector<Tensor> lora_param_list(const std::vector<LoraParam>& p);
std::vector<Tensor> lora_grad_list(DitGrads& g, const DitConfig& c, const std::vector<LoraParam>& p);

// Writes the pairs as a kohya/ComfyUI LoRA .safetensors (atomically); extra metadata is added.
void write_lora_file(const std::string& path, const std::vector<LoraParam>& p, const LoraTrainConfig& cfg,
                     const std::map<std::string, std::string>& metadata = {});

}  // namespace wanrt
