// Backward passes of the ops the DiT uses (training, src/train/): the op declarations a backend
// implements and their checked front-ends, in the pattern of ops/ops.h. Each op takes what its
// forward took plus the upstream gradient dy (the gradient of a scalar loss with respect to the
// forward's output) and returns the gradients of its inputs. The CPU kernels are in
// cpu/cpu_backward.cpp; the op table (testing/op_cases_backward.cpp) holds each against float64
// central finite differences of the forward's float64 reference (testing/ref64.h). A backend that
// has no kernel for one fails with a one-line "not implemented on <backend>" error naming the op.
//
// Training runs them in f32 ({F32} signatures); the CPU also has {F64} kernels, the float64 path the
// op table checks the formulas with at ~1e-10. Gradients of weights are returned summed over every
// row the weight was applied to.
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/op_registry.h"
#include "ops/ops.h"

namespace wanrt {

// ---- op declarations --------------------------------------------------------------------------

struct LinearBackwardArgs {  // {F32}: y = x·wᵀ + b with x [M, K], w [N, K] (undefined when dx is), dy [M, N]
    static constexpr const char* kName = "linear_backward";
    Tensor x, w, dy;
    Tensor dx, dw, db;                                    // [M, K], [N, K], [N]; an undefined one is not computed
    bool acc_dx = false, acc_dw = false, acc_db = false;  // add into that output instead of overwriting it
};
struct UnaryBackwardArgs {  // {F32}: dx = dy·act'(x), x the activation's input
    static constexpr const char* kName = "unary_backward";
    Activation act = Activation::None;
    Tensor x, dy, dx;
};
// Attention forward that also writes each query row's log-sum-exp of its scaled scores
// (lse [B, H, Lq], −inf for a row that sees no key): what the backward needs to rebuild the softmax
// row by row without storing it (FlashAttention-2).
struct AttentionLseArgs {  // {F32}
    static constexpr const char* kName = "attention_lse";
    Tensor q, k, v;
    const AttentionParams* p = nullptr;
    Tensor out, lse;
};
struct AttentionBackwardArgs {  // {F32}
    static constexpr const char* kName = "attention_backward";
    Tensor q, k, v, out, dout, lse;
    const AttentionParams* p = nullptr;
    Tensor dq, dk, dv;
};
struct RmsNormBackwardArgs {  // {F32}: rows of D = x.size(-1)
    static constexpr const char* kName = "rms_norm_backward";
    Tensor x, w, dy;
    float eps = 0;
    Tensor dx, dw;
};
struct LayerNormBackwardArgs {  // {F32}; w/b may be null (no affine)
    static constexpr const char* kName = "layer_norm_backward";
    Tensor x, dy;
    const Tensor *w = nullptr, *b = nullptr;
    float eps = 0;
    Tensor dx, dw, db;  // dw/db defined when w/b are given
};
struct NormModulateBackwardArgs {  // {F32}: x [G, S, D], shift/scale rows [G, D] (unit inner stride)
    static constexpr const char* kName = "norm_modulate_backward";
    Tensor x, scale, dy;
    float eps = 0;
    Tensor dx, dshift, dscale;  // [G, S, D], [G, D], [G, D]
};
struct GatedResidualBackwardArgs {  // {F32}: out = x + y·gate; dx = dout is the caller's
    static constexpr const char* kName = "gated_residual_backward";
    Tensor y, gate, dout;
    Tensor dy, dgate;  // [G, S, D], [G, D]
};
struct RopeBackwardArgs {  // {F32}: the rotation by the negative angle
    static constexpr const char* kName = "rope_backward";
    Tensor dy;
    const std::vector<RopeGrid>* grids = nullptr;
    Tensor table, dx;
};
struct PatchifyBackwardArgs {  // {F32}: dy [L, C·pt·ph·pw] → dx [C, T, H, W]
    static constexpr const char* kName = "patchify_backward";
    Tensor dy;
    int pt = 1, ph = 1, pw = 1;
    Tensor dx;
};
struct UnpatchifyBackwardArgs {  // {F32}: dy [C, f·pt, h·ph, w·pw] → dx [L, pt·ph·pw·C], rows ≥ f·h·w zero
    static constexpr const char* kName = "unpatchify_backward";
    Tensor dy;
    int64_t f = 0, h = 0, w = 0;
    int pt = 1, ph = 1, pw = 1;
    Tensor dx;
};
struct SumRowsArgs {  // {F32}: y [C] (+)= Σ_r x[r, :], x [R, C]
    static constexpr const char* kName = "sum_rows";
    Tensor x, y;
    bool accumulate = false;
};

}  // namespace wanrt

namespace wanrt::ops {

// Gradients of linear(x, w, b) (no activation: apply unary_backward first) for dy [..., N], w
// f32, bf16 or f16 (widened to f32 for dx; gradients are f32):
// fills *dx [..., K], *dw [N, K], *db [N] for those that are non-null. With accumulate, the
// outputs that are defined (f32 contiguous, of their shape) are added to; undefined ones, and all
// of them without accumulate, are (re)allocated and set.
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw, Tensor* db,
                     bool accumulate = false);
// dy·act'(x) for GeluTanh, GeluErf, Silu. With overwrite_dy (dy contiguous), the result is written
// over dy and returned: no second buffer of x's size (the FFN's [L, 4·D] gradient in training).
Tensor unary_backward(Activation act, const Tensor& x, const Tensor& dy, bool overwrite_dy = false);

// attention(q, k, v, p) and lse [B, H, Lq] (natural log of Σ exp(scaled score) per query row).
// rel_bias is not supported (no op that trains uses it).
Tensor attention_lse(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p, Tensor* lse);
struct AttentionGrads {
    Tensor dq, dk, dv;
};
// FlashAttention-2's backward: dq, dk, dv of attention(q, k, v, p) given its output `out`, the
// rows' lse and dout [B, Lq, H, dv].
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& dout, const Tensor& lse, const AttentionParams& p = {});

// rms_norm(x, w, eps) → dx (x's shape), *dw [D] (if non-null).
Tensor rms_norm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor* dw);
// layer_norm(x, w, b, eps) → dx, *dw, *db (non-null only when w, b are given).
Tensor layer_norm_backward(const Tensor& x, const Tensor* w, const Tensor* b, float eps, const Tensor& dy, Tensor* dw,
                           Tensor* db);
// norm_modulate(x [G, S, D], shift, scale, eps) → dx [G, S, D], *dshift, *dscale [G, D].
Tensor norm_modulate_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, Tensor* dshift,
                              Tensor* dscale);
// x + y·gate (x, y [G, S, D], gate [G, D]) → dy [G, S, D] and *dgate [G, D]; dx is dout itself.
Tensor gated_residual_backward(const Tensor& y, const Tensor& gate, const Tensor& dout, Tensor* dgate);
// rope(x, grids, table) → dx: each pair rotated back by its angle; tokens past f·h·w pass through.
Tensor rope_backward(const Tensor& dy, const std::vector<RopeGrid>& grids, const Tensor& table);
// patchify(x [C, T, H, W], pt, ph, pw) → dx [C, T, H, W] from dy [L, C·pt·ph·pw].
Tensor patchify_backward(const Tensor& dy, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph, int pw);
// unpatchify(x [L, pt·ph·pw·C], f, h, w, …) → dx [L, pt·ph·pw·C] (rows past f·h·w zero).
Tensor unpatchify_backward(const Tensor& dy, int64_t L, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw);
// Σ over rows of x [R, C] → [C]; with accumulate, added into *y (preallocated [C]).
void sum_rows(const Tensor& x, Tensor* y, bool accumulate = false);

}  // namespace wanrt::ops
