// The Wan2.1 DiT's backward pass (training; issue 23), hand-written in the llm.c manner from the
// backward ops (ops/backward.h), with gradient checkpointing per block.
//
// dit_train_forward runs the same model as DitModel::forward (models/dit.h) from unfused ops —
// attention with its log-sum-exp saved, the q/k RMSNorm and RoPE apart, the FFN's GELU apart from
// its linear — and keeps, besides the small pieces around the blocks (time/text embeddings, patch
// inputs), only each block's input [B, seq_len, D]: the checkpoints. dit_backward walks the blocks
// from last to first, recomputes one block's forward from its checkpoint with every activation
// kept, and runs that block's backward, so activation memory is one block's plus the checkpoints.
//
// LoRA branches (LoraBranch with an up matrix) attached to the blocks' Linears take part: the forward
// applies them as a side path and the backward gives their (down, up) gradients (lora_train.h).
//
// Scope: T2V (and TI2V-style per-token timesteps) models without the I2V CLIP branch; the
// gradient of every parameter, of each sample's latent x and of each sample's (trimmed) context.
// Timesteps get no gradient. Runs on any backend with the backward ops (CPU, CUDA).
#pragma once

#include <memory>
#include <vector>

#include "core/backend.h"
#include "models/dit.h"
#include "models/dit_weights.h"

namespace wanrt {

// Page-locked host memory for checkpoints kept off the device (DitTape::offload), one buffer per
// block holding its input, then its self-attention output and that output's lse. Owned by the
// caller and reused step after step: pinning gigabytes is slow, so buffers are only ever grown.
struct HostCheckpoints {
    std::vector<std::shared_ptr<Buffer>> blocks;
};

// What the forward keeps for the backward. Shapes: G modulation groups of S tokens (dit_block.h).
struct DitTape {
    std::vector<DitSample> batch;   // the inputs (tensor handles, not copies)
    int64_t seq_len = 0, S = 0;     // padded length, tokens per modulation group
    std::vector<RopeGrid> grids;    // per sample
    std::vector<int32_t> seq_lens;  // per sample: its f·h·w tokens
    std::vector<Tensor> patches;    // per sample [L_i, in_dim·pt·ph·pw]: the patch embedding's input
    // time embedding: sinus [G, freq_dim] → z0 = time0(sinus), a0 = silu(z0), e = time2(a0) [G, D],
    // se = silu(e), e0 = time_proj(se) viewed [G, 6, D]
    Tensor sinus, z0, a0, e, se, e0;
    // text embedding: ctx_in [B, text_len, text_dim] → u = text0(ctx_in), gu = gelu_tanh(u),
    // context = text2(gu) [B, text_len, D]
    Tensor ctx_in, u, gu, context;
    std::vector<Tensor> block_in;  // num_layers + 1: each block's input (bf16 at Medium precision), then the
                                   // last block's output (f32)
    // Input: set before dit_train_forward to keep the blocks' inputs in offload's host memory
    // (block_in[i] then undefined; the last output stays on the device), together with each block's
    // self-attention output and lse (f32), which the backward then takes instead of recomputing the
    // attention (the largest part of a block's recomputation at long sequences). The copies run on
    // the backend's Copy queue beside the blocks' compute, out and back (one block ahead); the
    // gradients are those of the resident checkpoints, bit for bit.
    HostCheckpoints* offload = nullptr;
    // Input: rows per chunk of the blocks' FFN, whose [rows, ffn_dim] intermediates exist one chunk at
    // a time (0: about 256 MiB each in f32; tests set a few rows).
    int64_t ffn_rows = 0;
    DType block_host_dtype = DType::F32;  // the checkpoints' (bf16 at Medium precision)
};

// Runs the model (outputs [out_dim, F, H, W] per sample, as DitModel::forward) and fills tape (its
// offload read first). At Medium precision each block runs on its input rounded to bf16, as the
// backward recomputes it from its bf16 checkpoint: the gradients are those of the loss computed.
std::vector<Tensor> dit_train_forward(const DitModel& model, const std::vector<DitSample>& batch, int64_t seq_len,
                                      DitTape* tape);

// Gradients: w mirrors the model's weights (same struct, f32 tensors of the same shapes; each
// Linear's `lora` holds the gradients (down, up) of the model's low-rank branches, LoRA training:
// train/lora_train.h), dx and dcontext mirror each sample's x and context. An undefined tensor in w
// is a frozen parameter: the backward keeps no gradient for it.
struct DitGrads {
    DitWeights w;
    std::vector<Tensor> dx, dcontext;
};
// Zero gradients shaped like the model's weights and branches; base == false: of the low-rank
// branches only (LoRA training on a frozen base: no [out, in] gradient is allocated or computed).
DitGrads dit_grads_zeros(const DitModel& model, bool base = true);

// Backward of dit_train_forward for upstream gradients dy (one per sample, shaped like the
// outputs): adds every parameter's gradient into grads->w (so micro-batches accumulate) and sets
// grads->dx, grads->dcontext.
void dit_backward(const DitModel& model, const DitTape& tape, const std::vector<Tensor>& dy, DitGrads* grads);

// Every parameter of a DitWeights as (official name, tensor), in the loader's order: for optimizers,
// gradient checks and writing gradients out. Only the tensors the config uses are listed.
std::vector<std::pair<std::string, Tensor>> dit_named_params(const DitConfig& c, const DitWeights& w);

}  // namespace wanrt
