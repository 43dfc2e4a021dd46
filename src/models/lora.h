// LoRA and weight-difference files for the Wan DiT, in the formats in circulation, merged into the
// weights at load or applied at run time as a low-rank side path of each Linear.
//
// Formats (one file may mix low-rank pairs and differences; every key must be one of these):
//   ComfyUI / kohya, official names   diffusion_model.blocks.0.self_attn.q.lora_down.weight   [r, in]
//                                     diffusion_model.blocks.0.self_attn.q.lora_up.weight     [out, r]
//                                     diffusion_model.blocks.0.self_attn.q.alpha              scalar
//   musubi-tuner / kohya              lora_unet_blocks_0_self_attn_q.lora_down.weight (… _up, .alpha):
//                                     the official module name with '.' written '_'
//   diffusers / PEFT                  transformer.blocks.0.attn1.to_q.lora_A.weight (A = down, B = up),
//                                     diffusers module names (../shared/spec/diffusers_names.md) mapped
//                                     to the official ones; some trainers write lora_A/B on official names
//   lightx2v full differences         <module>.diff (added to <module>.weight), <module>.diff_b (to
//                                     <module>.bias), <module>.diff_m (to <module>.modulation: blocks.N
//                                     and head)
// Prefixes accepted: diffusion_model., model.diffusion_model., transformer., base_model.model.,
// lora_unet_ (underscored), or none. A file uses diffusers names when a key has a diffusers-only
// module (attn1/attn2, ffn.net, condition_embedder, proj_out, scale_shift_table) or the transformer.
// prefix; the whole file is then read that way (blocks.N.norm2 is the official norm3 there).
//
// Arithmetic (as ComfyUI / LightX2V): one file at strength s adds
//   s·(α/r)·up·down       to the weight of each low-rank pair (α from <module>.alpha, else the
//                         PEFT lora_alpha of the file's metadata, else r: scale 1),
//   s·diff                to the tensor a difference names.
// Several files add their terms in the order given. Merged, each changed tensor is
// W + Σ terms computed in float64 and rounded once to the stored dtype (exact f32 for f32 bases).
// At run time, Linear y = x·Wᵀ + b gets y += scale·(x·downᵀ)·upᵀ per pair (dit_weights.h); differences
// of matrices become full side branches; differences of vectors (biases, norms, modulation) and of
// the patch embedding are always merged (they are f32 parameters).
//
// Errors ([lora] one line): an unreadable file, a key of no known form (named), a module the model
// lacks (named, with the model's kind), an up without its down or the reverse, shapes that do not
// fit the target, a bad FILE[:STRENGTH] argument, merge requested on a base that cannot be merged.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"
#include "models/dit.h"

namespace wanrt {

// --lora FILE[:STRENGTH]: strength defaults to 1; the last ':' splits only when what follows is a
// number (paths may contain ':').
struct LoraSpec {
    std::string path;
    float strength = 1.0f;
};
LoraSpec parse_lora_arg(const std::string& arg);

// auto: merge when every matrix a file changes is stored f32 (exact), else run time;
// merge: always merge (a bf16/f16 base is rounded once, as ComfyUI does);
// runtime: low-rank side paths on the Linears (the base weights untouched).
enum class LoraMode { Auto, Merge, Runtime };
LoraMode parse_lora_mode(const std::string& s);  // "auto" | "merge" | "runtime"
const char* lora_mode_name(LoraMode m);

struct LoraOptions {
    std::vector<LoraSpec> files;
    LoraMode mode = LoraMode::Auto;
};

// One change a file makes to one tensor of the model.
struct LoraDelta {
    std::string target;  // official tensor name: "blocks.0.self_attn.q.weight", "blocks.0.modulation"
    Shape target_shape;  // as the model stores it (patch_embedding.weight [D, C, pt, ph, pw])
    bool matrix = false; // the target is a Linear weight (dit_param_table's `matrix`)
    // Low rank (rank > 0): down [rank, in], up [out, rank] f32 with in·out = numel(target),
    // scale = strength·α/rank. Difference (rank == 0): diff has numel(target) values, scale = strength.
    int64_t rank = 0;
    std::vector<float> down, up, diff;
    double scale = 1.0;
    std::string source;  // "file.safetensors: key" for messages
};

// Maps every tensor of a LoRA source onto the model's names. `strength` scales the whole file;
// `default_alpha` (≤ 0: none) is the PEFT lora_alpha for pairs without an .alpha tensor.
std::vector<LoraDelta> map_lora(const TensorSource& src, float strength, const DitConfig& cfg,
                                double default_alpha = 0);
// Opens a .safetensors LoRA (its metadata may carry lora_alpha) and maps it.
std::vector<LoraDelta> load_lora_file(const LoraSpec& spec, const DitConfig& cfg);

// The mode `auto` resolves to for these deltas on this base (names under prefix).
LoraMode resolve_lora_mode(LoraMode m, const TensorSource& base, const std::string& prefix,
                           const std::vector<LoraDelta>& deltas);

// A view of base with the deltas merged in: changed tensors are new host copies in the base's
// dtype (f32, bf16, f16), the rest are base's own. With matrices_too == false only the non-matrix
// deltas are merged (run-time mode merges vectors and keeps matrices for the side path).
std::shared_ptr<TensorSource> merge_lora(std::shared_ptr<TensorSource> base, const std::string& prefix,
                                         const std::vector<LoraDelta>& deltas, bool matrices_too = true);

// Adds the matrix deltas to the model's Linears as run-time branches (dit_weights.h, LoraBranch),
// uploaded to the model's backend in the base weight's dtype where it is bf16/f16, else f32.
void attach_lora(DitModel& model, const std::vector<LoraDelta>& deltas);

// The model's Linears by official module name ("blocks.0.self_attn.q", "head.head", ...).
struct Linear;
struct DitWeights;
std::map<std::string, Linear*> dit_linears(DitWeights& w, const DitConfig& c);

// The DiT with LoRAs as `mode` says (after resolve_lora_mode): what run_dit_load_stage calls.
// summary, if set, receives one line: "2 LoRA files, 600 tensors, merged". offload: DitModel's block
// streaming (models/dit_offload.h).
std::shared_ptr<DitModel> load_dit_with_lora(const DitConfig& cfg, std::shared_ptr<TensorSource> base, Backend& be,
                                             const std::string& prefix, const LoraOptions& opt,
                                             std::string* summary = nullptr, const DitOffloadOptions& offload = {});

}  // namespace wanrt
