// Launchers of the backward ops' kernels (cuda_backward.cu) for their op file
// (cuda_backward_ops.cpp): f32, contiguous row-major operands, as the front-ends of ops/backward.h
// hand them over. Sums over rows (weight, bias and modulation gradients) accumulate in double, one
// thread per column and row slice, reduced in a fixed order: results do not depend on the launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace wanrt::cuda {

// Row-major, strided-batched f32 GEMM: C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for i < batch,
// C [M, N], op(A) [M, K], op(B) [K, N]; A stored [M, K] (or [K, M] when ta) with row stride lda,
// likewise B; batch strides in elements. fp32 compute (no TF32): the backward is held to the CPU's
// f32 results. Defined in cuda_backward.cu beside the kernels; cuBLASLt does the work, a tiled
// kernel the shapes it refuses.
struct GemmF32 {
    bool ta = false, tb = false;
    int64_t M = 0, N = 0, K = 0;
    const float* A = nullptr;
    int64_t lda = 0, sa = 0;
    const float* B = nullptr;
    int64_t ldb = 0, sb = 0;
    float* C = nullptr;
    int64_t ldc = 0, sc = 0;
    int batch = 1;
    float alpha = 1.f, beta = 0.f;
};

// dx = dy·act'(x) for act 1 gelu_tanh, 2 gelu_erf, 3 silu.
void launch_unary_backward(int act, const float* x, const float* dy, float* dx, int64_t n, cudaStream_t stream);

// Over G groups of S rows of width D, per group g and column c:
//   sum_a[g, c] (+)= Σ_r a[r, c]
//   sum_ab[g, c] (+)= Σ_r a[r, c]·(b[r, c] − mean[r])·scale[r]
// mean and scale are optional (null: 0 and 1); either output may be null (not computed). Few long
// groups are split over more blocks when work (group_col_sums_work doubles) is given; the partial
// sums are then added in a fixed order, so the result is the same from run to run either way.
int64_t group_col_sums_work(int64_t G, int64_t S, int64_t D);
void launch_group_col_sums(const float* a, const float* b, const float* mean, const float* scale, int64_t G, int64_t S,
                           int64_t D, float* sum_a, float* sum_ab, bool accumulate, double* work, cudaStream_t stream);

// RMSNorm rows: r = rsqrt(mean(x²) + eps), dx = r·dy·w − x·r³·mean(dy·w·x); rs[row] = r.
void launch_rms_norm_backward(const float* x, const float* w, const float* dy, float eps, float* dx, float* rs,
                              int64_t rows, int64_t D, cudaStream_t stream);

// Layer-norm rows whose normalised x̂ got the gradient g = dy·m, m = w[c] (w non-null), or
// 1 + scale[(row / S)·scale_stride + c] (scale non-null: modulation), or 1:
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); mean[row], rstd[row] written for the column sums.
void launch_layer_norm_backward(const float* x, const float* dy, const float* w, const float* scale,
                                int64_t scale_stride, int64_t S, float eps, float* dx, float* mean, float* rstd,
                                int64_t rows, int64_t D, cudaStream_t stream);

// dy[r, c] = dout[r, c]·gate[(r / S)·gate_stride + c].
void launch_gate_rows(const float* dout, const float* gate, int64_t gate_stride, int64_t S, float* dy, int64_t rows,
                      int64_t D, cudaStream_t stream);

// table [P, d/2, 2] (cos, sin) → the same with sin negated: rope by the negative angle.
void launch_negate_sin(const float* table, float* out, int64_t pairs, cudaStream_t stream);

// patchify's inverse permutation: dy [f·h·w, C·pt·ph·pw] → dx [C, f·pt, h·ph, w·pw].
void launch_patchify_backward(const float* dy, float* dx, int64_t C, int64_t f, int64_t h, int64_t w, int pt, int ph,
                              int pw, cudaStream_t stream);
// unpatchify's inverse: dy [C, f·pt, h·ph, w·pw] → dx [L, pt·ph·pw·C], rows ≥ f·h·w zero.
void launch_unpatchify_backward(const float* dy, float* dx, int64_t C, int64_t L, int64_t f, int64_t h, int64_t w,
                                int pt, int ph, int pw, cudaStream_t stream);

// Attention on score tiles S [nb, qn, Lk] (nb heads of one sample, query rows q0 … q0+qn−1 of Lq),
// the mask of AttentionParams per row: keys [lo, hi) with lk = min(k_len, Lk), c = i + lk − Lq,
// causal: hi ≤ c + 1, window_left: lo ≥ c − wl, window_right: hi ≤ c + wr + 1.
struct AttnTile {
    int64_t nb = 0, qn = 0, q0 = 0, Lq = 0, Lk = 0;
    int64_t lk = 0;  // this sample's key count
    bool causal = false;
    int wl = -1, wr = -1;
    // lse of row (head n, query q0 + i) at lse[n·lse_head_stride + q0 + i]
    float* lse = nullptr;
    int64_t lse_head_stride = 0;
};
// In place S → P = softmax(S) inside each row's range (0 outside) and its lse (−inf for an empty row).
void launch_attn_softmax_lse(float* S, const AttnTile& t, cudaStream_t stream);
// S → P = exp(S − lse) in range, 0 outside; dP → dS = P∘(dP − Dᵢ) with Dᵢ = dOᵢ·Oᵢ, the rows of O and
// dO (width Dv) at o[n·o_head_stride + (q0 + i)·o_row_stride].
void launch_attn_backward_ds(float* S, float* dP, const float* o, const float* dout, int64_t o_head_stride,
                             int64_t o_row_stride, int64_t Dv, const AttnTile& t, cudaStream_t stream);

// AdamW (train/adamw.h) on n contiguous f32 values, in the CPU kernel's operation order: p ← p·decay,
// m ← b1·m + (1 − b1)·g, v ← b2·v + (1 − b2)·g², p ← p − step_size·m / (√v / bc2_sqrt + eps).
void launch_adamw(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2,
                  float step_size, float bc2_sqrt, float eps, cudaStream_t stream);

}  // namespace wanrt::cuda
