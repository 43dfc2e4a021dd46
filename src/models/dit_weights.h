// The DiT's weights as plain structs (official names in dit.cpp's loader), shared by the
// bidirectional model (dit.cpp) and the causal KV-cache model, which use the same checkpoints.
#pragma once

#include <vector>

#include "core/backend.h"
#include "ops/linear_fp8.h"
#include "ops/ops.h"

namespace wanrt {

// A run-time LoRA branch (models/lora.h): y += scale·(x·downᵀ)·upᵀ with down [r, in], up [out, r];
// a full difference when up is undefined: y += scale·x·downᵀ, down [out, in].
struct LoraBranch {
    Tensor down, up;
    float scale = 1.0f;
};

struct Linear;
// The Linear with its LoRA branches added before the activation (lora.cpp): either the weight
// patched for this call (W + Σ s·up·down, one fused GEMM; Auto picks it when [N, K] is cheaper to
// pass over than the activations) or the low-rank side path (two thin GEMMs and a sum).
enum class LoraApply { Auto, Patch, Side };
Tensor linear_with_lora(const Linear& l, const Tensor& x, Activation act, DType out, LoraApply how = LoraApply::Auto);
// The weight Auto would patch for x's rows (W + Σ s·up·down in W's dtype), or an undefined tensor
// where it would take the side path (few rows, no branches, a block-quantized W). The training
// backward takes dx = dy·W' from it in one GEMM, as the forward took y.
Tensor lora_patched_weight(const Linear& l, const Tensor& x);

struct Linear {
    Tensor w, b;  // w [out, in], b [out]
    std::vector<LoraBranch> lora;  // run-time LoRA branches; empty without (merged or none)
    // FP8 linears (dit_fp8.h): w is F8E4M3 and w_scale its f32 [1] scale (ops/linear_fp8.h).
    Tensor w_scale{};
    Tensor operator()(const Tensor& x, Activation act = Activation::None, DType out = DType::F32) const {
        if (!lora.empty()) return linear_with_lora(*this, x, act, out);
        return plain(x, act, out);
    }
    // The layer without its LoRA branches.
    Tensor plain(const Tensor& x, Activation act = Activation::None, DType out = DType::F32) const {
        if (w.dtype() == DType::F8E4M3) return ops::linear_fp8(x, w, w_scale, &b, act, out, ops::fp8_fast_accum());
        return ops::linear(x, w, &b, act, out);
    }
};

struct DitBlockWeights {
    Tensor modulation;  // [1, 6, D]
    Linear sa_q, sa_k, sa_v, sa_o;
    Tensor sa_norm_q, sa_norm_k;  // [D] (absent without qk_norm)
    Tensor norm3_w, norm3_b;      // [D] (absent without cross_attn_norm)
    Linear ca_q, ca_k, ca_v, ca_o;
    Tensor ca_norm_q, ca_norm_k;
    Linear ca_k_img, ca_v_img;  // I2V
    Tensor ca_norm_k_img;
    Linear ffn0, ffn2;
};

struct DitWeights {
    Tensor patch_w;  // [D, in_dim·pt·ph·pw] (the Conv3d kernel flattened)
    Tensor patch_b;  // [D]
    Linear text0, text2, time0, time2, time_proj;
    std::vector<DitBlockWeights> blocks;
    Tensor head_modulation;  // [1, 2, D]
    Linear head;
    // I2V image projection (MLPProj): LayerNorm, Linear, GELU(erf), Linear, LayerNorm.
    Tensor img_ln0_w, img_ln0_b, img_ln4_w, img_ln4_b;
    Linear img1, img3;
    Tensor img_emb_pos;  // FLF2V: [1, 514, 1280], added to both frames' CLIP tokens before the MLP
};

}  // namespace wanrt
