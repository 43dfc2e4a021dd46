// The float64 reference of every op: plain loops over contiguous row-major std::vector<double>,
// written from the contracts in ops/ops.h (not from any kernel), so they are the oracle that the
// op table (testing/op_table.h) holds every backend and dtype against. Inputs are the values the
// tensors hold (already rounded to their storage dtype); shapes are PyTorch order, as the ops'.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/ops.h"

namespace wanrt::ref64 {

using Vec = std::vector<double>;

double activation(Activation act, double x);
Vec unary(Activation act, const Vec& x);

// a, b broadcast (NumPy rules, right-aligned) to the shape out_shape returns.
Vec binary(BinaryOp op, const Vec& a, const Shape& as, const Vec& b, const Shape& bs, Shape* out_shape);

// x [M, K], w [N, K], bias [N] or null → [M, N], act after the bias.
Vec linear(const Vec& x, const Vec& w, const Vec* bias, Activation act, int64_t M, int64_t N, int64_t K);

// q [B, Lq, H, d], k [B, Lk, Hk, d], v [B, Lk, Hk, dv], rel_bias [H, Lq + Lk − 1] or null → [B, Lq, H, dv];
// Wan's flash_attention semantics (AttentionParams; its rel_bias tensor is ignored here).
Vec attention(const Vec& q, const Vec& k, const Vec& v, int64_t B, int64_t Lq, int64_t Lk, int64_t H, int64_t Hk,
              int64_t d, int64_t dv, const AttentionParams& p, const Vec* rel_bias);

// Over the last dim D of rows·D values. w, b null = 1, 0.
Vec layer_norm(const Vec& x, int64_t D, const Vec* w, const Vec* b, double eps);
Vec rms_norm(const Vec& x, int64_t D, const Vec& w, double eps);
// x [B, L, D], shift/scale [B, D] → layer_norm(x)·(1 + scale) + shift.
Vec norm_modulate(const Vec& x, const Vec& shift, const Vec& scale, int64_t B, int64_t L, int64_t D, double eps);
// x + y·gate, x/y [B, L, D], gate [B, D].
Vec gated_residual(const Vec& x, const Vec& y, const Vec& gate, int64_t B, int64_t L, int64_t D);

// x [B, L, H, d], table [P, d/2, 2] (cos, sin), grids per sample.
Vec rope(const Vec& x, int64_t B, int64_t L, int64_t H, int64_t d, const std::vector<RopeGrid>& grids,
         const Vec& table);

// x [C, T, H, W] → [T/pt·H/ph·W/pw, C·pt·ph·pw] (features (c, p, q, r)).
Vec patchify(const Vec& x, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph, int pw);
// x [L, pt·ph·pw·C] (features (p, q, r, c)) → [C, f·pt, h·ph, w·pw].
Vec unpatchify(const Vec& x, int64_t C, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw);

// table [V, D], ids → [n, D].
Vec embedding(const Vec& table, int64_t D, const std::vector<int32_t>& ids);

// x [C, T, H, W], w [O, C, kt, kh, kw], bias [O] or null → [O, T', H', W'] (out_shape).
Vec conv3d(const Vec& x, const Shape& xs, const Vec& w, const Shape& ws, const Vec* bias, const Conv3dParams& p,
           Shape* out_shape);
// x [C, ...] (P positions per channel), gamma [C]; act None or Silu.
Vec channel_rms_norm(const Vec& x, int64_t C, const Vec& gamma, Activation act);
// x [C, T, H, W] → [C, T, 2H, 2W], nearest.
Vec upsample2x(const Vec& x, int64_t C, int64_t T, int64_t H, int64_t W);

// Σ coef[k]·in[k].
Vec lincomb(const std::vector<const Vec*>& in, const std::vector<double>& coef);

// The value v as stored in dtype t (rounded for f32/bf16/f16, exact for f64 and in-range integers).
double round_to(DType t, double v);

// The adaptive-sink frame write (KvSinkWrite in ops/ops.h) on caches [K·S, W] (W = N·d values per
// token) holding values of dtype cache_dtype, in place (the frame is stored rounded to it); returns
// the decision (d, slot).
std::vector<int32_t> kv_sink_write(const Vec& k_new, const Vec& v_new, Vec& k_cache, Vec& v_cache, int64_t W,
                                   const KvSinkWrite& p, DType cache_dtype);

}  // namespace wanrt::ref64
