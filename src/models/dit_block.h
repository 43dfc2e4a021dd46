// One Wan DiT block (`WanAttentionBlock`, wan/modules/model.py) and the pieces around it that both
// DiT models share: the time embedding (modulation input), the text embedding, cross-attention K/V
// and the head. Used by DitModel (dit.cpp, bidirectional) and CausalDitModel (causal_dit.cpp,
// KV-cached); the two differ only in how self-attention finds its keys (SelfAttendFn), whether
// cross-attention K/V are cached (CrossKv), and FFN chunking.
//
// Shapes (PyTorch order, f32 on the model's backend): the residual stream x is [B, L, D] (B
// samples or rows of L tokens, L = seq_len or F·h·w). Modulation comes as rows for G groups of S
// consecutive tokens, with G·S = B·L:
//   per sample (Wan2.1 DitModel):          e0 [B, 6, D],    S = L
//   per frame  (the causal model):         e0 [B·F, 6, D],  S = h·w
//   per token  (Wan2.2 TI2V, e0 [B, L, 6, D] viewed [B·L, 6, D]): S = 1
// The block views x as [G, S, D] for norm_modulate / gated_residual, whose contracts take modulation
// rows [G, D] (strided rows of m [G, 6, D]); the head does the same with e [G, D].
//
// Dump names (DumpFn, when set; the tensor is the residual stream at that point and is updated in
// place afterwards, so a callback must copy what it keeps):
//   blk.N.self_attn.out   x after the gated self-attention residual        [B, L, D]
//   blk.N.cross_attn.out  x after the cross-attention residual             [B, L, D]
//   blk.N.ffn.out         x after the gated FFN residual (= block N output) [B, L, D]
//   block{N}_out          the same tensor as blk.N.ffn.out, under the name the golden fixtures use
//                         (`mid.block{N}_out`)
// The models add patch_embed_first, e, e0 and context_emb (dit.h, causal_dit.h).
#pragma once

#include <functional>
#include <vector>

#include "core/backend.h"
#include "models/dit.h"
#include "models/dit_weights.h"

namespace wanrt {

// Time embedding of n timesteps (the scheduler's values): e = time_embedding(sinusoidal(t)) [n, D]
// and e0 = time_projection(silu(e)) viewed [n, 6, D]; the sinusoid in float64, then f32.
struct TimeEmbedding {
    Tensor e, e0;
};
TimeEmbedding time_embedding(const DitConfig& c, const DitWeights& w, Backend& be, const std::vector<double>& t);

// Text embedding of n contexts ([len ≤ text_len, text_dim] each, trimmed T5 output): each zero-padded
// to text_len, then Linear, GELU(tanh), Linear → [n, text_len, D].
Tensor text_embedding(const DitConfig& c, const DitWeights& w, Backend& be, const std::vector<Tensor>& contexts);

// Cross-attention keys and values of one block, [Bk, Lk, heads, head_dim] each: Bk = B (one context
// per sample) or 1 (one context shared by every row of a call). k_img / v_img: the I2V image branch
// (undefined otherwise).
struct CrossKv {
    Tensor k, v, k_img, v_img;
};
// K/V of an embedded text context [Bk, Lt, D] (and image context [Bk, Li, D] for I2V, else an
// undefined tensor), stored in dtype (the causal model caches them in kv_dtype).
CrossKv cross_kv(const DitConfig& c, const DitBlockWeights& b, const Tensor& ctx_text, const Tensor& ctx_img,
                 DType dtype = DType::F32);

// Self-attention of a block: rotated q, k and v [B, L, heads, head_dim] → [B, L, heads, head_dim]
// f32 contiguous. DitModel attends over the padded batch (k_lens); the causal model writes k, v into
// its cache slots and attends over the cached prefix.
using SelfAttendFn = std::function<Tensor(const Tensor& q, const Tensor& k, const Tensor& v)>;

// Per-call inputs of a block, the same for every layer.
struct BlockInputs {
    int64_t group_tokens = 0;              // S: tokens per modulation row (see the top of this file)
    const std::vector<RopeGrid>* grids = nullptr;  // B patch grids (with the causal RoPE frame offset)
    const Tensor* rope = nullptr;                  // f32 [positions, head_dim/2, 2]
    // Cross-attention context: either embedded contexts (ctx_text [B, Lt, D], ctx_img [B, Li, D] for
    // I2V), projected to K/V after the queries, or cross_cache (per layer, precomputed by cross_kv).
    Tensor ctx_text, ctx_img;
    const std::vector<CrossKv>* cross_cache = nullptr;
    // FFN over chunks of this many tokens (never across samples: each chunk is whole modulation
    // groups or part of one, so the [tokens, ffn_dim] hidden state stays bounded); 0 = one call.
    int64_t ffn_chunk_tokens = 0;
    const DumpFn* dump = nullptr;
};

// Block `layer` on the residual stream x [B, L, D] (updated in place where the ops allow, and
// returned): modulation m = blocks[layer].modulation + e0 (e0 [G, 6, D]: shift1, scale1, gate1,
// shift2, scale2, gate2), then
//   x += sa_o(self_attn(norm_modulate(x, shift1, scale1))) · gate1
//   x += ca_o(cross_attn(norm3(x), context))                      (no modulation, no gate)
//   x += ffn(norm_modulate(x, shift2, scale2)) · gate2
Tensor dit_block(const DitConfig& c, const DitBlockWeights& b, int64_t layer, Tensor x, const Tensor& e0,
                 const SelfAttendFn& attend, const BlockInputs& in);

// The head: modulation head.modulation + e (e [G, D], the same groups as the blocks' e0, not e0),
// then head(norm_modulate(x, shift, scale)) → [B, L, out_dim·pt·ph·pw].
Tensor dit_head(const DitConfig& c, const DitWeights& w, const Tensor& x, const Tensor& e, int64_t group_tokens);

}  // namespace wanrt
