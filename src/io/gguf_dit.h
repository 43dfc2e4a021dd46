// The Wan DiT configuration of a GGUF DiT. GGUF DiTs (city96's Wan2.1-*-gguf, ComfyUI-GGUF's
// tools) store no config in their metadata, only `general.architecture` = "wan": every field is read
// from tensor shapes (torch order, fixtures README "dit_q.gguf"):
//   dim, in_dim, patch   = patch_embedding.weight [dim, in_dim, pt, ph, pw]
//   ffn_dim              = blocks.0.ffn.0.weight [0]
//   freq_dim, text_dim   = time_embedding.0.weight [1], text_embedding.0.weight [1]
//   out_dim              = head.head.weight [0] / (pt·ph·pw)
//   num_layers           = count of blocks.N.modulation
//   model_type           = flf2v when img_emb.emb_pos exists, i2v when img_emb.proj.0.weight exists
//                          (clip_branch) or in_dim > out_dim (Wan2.2 I2V-A14B), else t2v (a TI2V-5B
//                          GGUF looks like t2v: it needs its config.json beside it)
//   qk_norm, cross_attn_norm = presence of blocks.0.self_attn.norm_q.weight, blocks.0.norm3.weight
//   num_heads            = dim / 128 (head_dim 128 in every release), unless given
//   text_len 512, eps 1e-6, full attention window.
// Names may carry ComfyUI's "model.diffusion_model." prefix; prefix_out receives the one found.
#pragma once

#include <string>

#include "io/gguf.h"
#include "models/dit.h"

namespace wanrt {

// How a GGUF DiT's quantized linears should be loaded for a backend: kept in their block types
// where the backend holds them (the CPU: 4–8× less weight memory than f32, cpu/qmatmul.h; CUDA:
// 2–3.5× less than bf16, cuda_linear_quant.cpp), decoded at load elsewhere.
inline GgufBlocks gguf_blocks_for(const Backend& be) {
    return be.holds_block_types() ? GgufBlocks::Keep : GgufBlocks::Decode;
}

// Throws a one-line [gguf] error for a GGUF of another architecture or one lacking a DiT tensor.
// num_heads > 0 overrides the dim / 128 rule (small test models).
DitConfig infer_dit_config(const GgufFile& file, int64_t num_heads = 0, std::string* prefix_out = nullptr);

// The DiT GGUF of a model folder (ComfyUI-style: one quantized DiT beside the T5 and VAE files): its
// one *.gguf, or "" when it has none. With several .gguf files (a quantized umT5 beside the DiT) the
// one whose general.architecture is "wan"; none or more than one such file is a one-line "[model]"
// error naming them.
std::string find_dit_gguf(const std::string& dir);

}  // namespace wanrt
