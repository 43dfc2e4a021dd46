// The checked op front-end used by model code. Each function validates its inputs with a
// "[op] ..." message, makes strided inputs contiguous where the backend needs it, allocates the
// output on the inputs' backend and dispatches. Shapes are PyTorch order.
#pragma once

#include <vector>

#include "core/backend.h"

namespace wanrt::ops {

// Contiguous copy of x on its backend (a no-op view if x is already contiguous and dtype matches).
Tensor contiguous(const Tensor& x);
// Copy with dtype conversion.
Tensor to_dtype(const Tensor& x, DType dtype);

// x [..., K] (f32), w [N, K] (f32, bf16 or f16, used in place), bias [N] (f32) or null
// → [..., N] f32, act applied after the bias. fp32 accumulation. Where the backend supports bf16
// linear inputs (supports(Op::Linear, BF16, w)), x may be bf16 and out_dtype bf16: the output is
// rounded once from the fp32 result — for activations that only feed another linear, which would
// round them to bf16 anyway (the FFN hidden state on the GPU).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias = nullptr,
              Activation act = Activation::None, DType out_dtype = DType::F32);
// The dtype for activations passed from one linear to the next on this backend: bf16 where
// supported (GPU: bit-identical to staging f32 to bf16, half the traffic), else f32.
DType linear_chain_dtype(const Backend& be, DType weight);

// q [B, Lq, H, d], k [B, Lk, Hk, d], v [B, Lk, Hk, dv] (H divisible by Hk) → [B, Lq, H, dv] f32.
// q is f32; k and v are f32, or bf16 where supports(Op::Attention, F32, BF16) (read in place, no
// widening copy: a bf16 KV cache). Semantics in AttentionParams. A query row that sees no key gives zeros.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p = {});

// Normalise over the last dim. layer_norm: w, b [D] or null (biased variance, eps inside sqrt).
Tensor layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps);
// rms_norm: x·rsqrt(mean(x²) + eps)·w, w [D].
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps);
// x [B, L, D]; shift, scale [B, D] (rows may be strided) → layer_norm(x)·(1 + scale) + shift.
Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps);
// In place: x [B, L, D] += y [B, L, D] · gate [B, D] (gate rows may be strided).
void gated_residual(const Tensor& x, const Tensor& y, const Tensor& gate);

// x [B, L, H, d] with d even; table [P, d/2, 2] f32 (cos, sin) from rope_table(); grids.size()==B.
// Pairs (x[2k], x[2k+1]) are rotated by the angle of pair k's axis (frame/height/width, split
// [d/2 − 2⌊d/6⌋, ⌊d/6⌋, ⌊d/6⌋]); tokens past f·h·w pass through.
Tensor rope(const Tensor& x, const std::vector<RopeGrid>& grids, const Tensor& table);
// rope(rms_norm(x, w, eps)) with the norm over each token's H·d values (WanRMSNorm over dim):
// x [B, L, H, d], w [H·d] → [B, L, H, d], one pass (the self-attention q/k path).
Tensor rms_norm_rope(const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& grids, const Tensor& table);

Tensor unary(Activation act, const Tensor& x);
inline Tensor gelu_tanh(const Tensor& x) { return unary(Activation::GeluTanh, x); }
inline Tensor gelu_erf(const Tensor& x) { return unary(Activation::GeluErf, x); }
inline Tensor silu(const Tensor& x) { return unary(Activation::Silu, x); }

// Elementwise with NumPy broadcasting (up to 6 dims), f32.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }

// x [C, T, H, W] → [T/pt · H/ph · W/pw, C·pt·ph·pw]: token (t, h, w) row-major, features
// (c, p, q, r) with r fastest — the flattening of a Conv3d weight [D, C, pt, ph, pw].
Tensor patchify(const Tensor& x, int pt, int ph, int pw);
// x [L ≥ f·h·w, pt·ph·pw·C] (features (p, q, r, c), c fastest) → [C, f·pt, h·ph, w·pw].
Tensor unpatchify(const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw);

// table [V, D] (f32/bf16/f16), ids [n] (i32, each in [0, V)) → [n, D] f32.
Tensor embedding(const Tensor& table, const Tensor& ids);

// x [C, T, H, W] (f32), w [O, C, kt, kh, kw] (f32), bias [O] or null, explicit zero padding and
// strides → [O, T', H', W'] with T' = (T + pad_t0 + pad_t1 − kt)/stride_t + 1 (likewise H', W').
// A Conv2d applied per frame is kt = 1.
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv3dParams& p);
// x [C, T, H, W], gamma [C] → x / max(‖x‖₂ over C, 1e-12) · √C · gamma (the VAE's RMS_norm).
// act: Silu fuses the VAE's norm → SiLU into one pass (exactly silu(channel_rms_norm(x)) on the CPU).
Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, Activation act = Activation::None);
// x [C, T, H, W] → [C, T, 2H, 2W], nearest neighbour.
Tensor upsample2x(const Tensor& x);

// Writes one new frame (k_new, v_new [S, N, hd] f32) into a KV-cache row (k_cache, v_cache
// [K·S, N, hd], contiguous, f32 or the backend's bf16) at the slot chosen by the adaptive-sink rule
// of KvSinkWrite (core/backend.h), on the device. decision: i32[2] ← (d, slot), left on the device.
void kv_sink_write(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                   const KvSinkWrite& p, const Tensor& decision);

// A new contiguous tensor on be filled with value.
Tensor full(Backend& be, DType dtype, const Shape& shape, float value);
inline Tensor zeros(Backend& be, const Shape& shape) { return full(be, DType::F32, shape, 0.0f); }
// Host data (contiguous, given dtype) → a new tensor on be.
Tensor from_host(Backend& be, DType dtype, const Shape& shape, const void* data);
// Tensor → host f32 values (any float dtype, any strides).
std::vector<float> to_host_f32(const Tensor& x);

// Concatenate along dim (same backend, dtype and other dims).
Tensor concat(const std::vector<Tensor>& xs, int dim);

}  // namespace wanrt::ops
