// Kernels of the backward ops on the GPU (cuda_backward.h): f32 throughout, the CPU kernels'
// formulas (cpu/cpu_backward.cpp), which the op table holds to float64 finite differences.
// Attention is the unfused composition — score tiles from GEMMs, row kernels for softmax and dS —
// that a fused FlashAttention-2 backward would keep as its oracle.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_backward.h"
#include "cuda/cuda_common.h"

namespace wanrt::cuda {

namespace {

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

int blocks_for(int64_t n, int threads) {
    return int(std::min<int64_t>((n + threads - 1) / threads, int64_t(1) << 20));
}

// ---- GEMM fallback --------------------------------------------------------------------------------
// Row-major C = alpha·op(A)·op(B) + beta·C, 32×32 tiles, for the shapes cuBLASLt refuses.
constexpr int kT = 32;
__global__ void gemm_f32_fallback_kernel(GemmF32 g) {
    __shared__ float as[kT][kT + 1];
    __shared__ float bs[kT][kT + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;  // 32 × 8
    const int64_t m0 = int64_t(blockIdx.y) * kT, n0 = int64_t(blockIdx.x) * kT, z = blockIdx.z;
    const float* A = g.A + z * g.sa;
    const float* B = g.B + z * g.sb;
    float* C = g.C + z * g.sc;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int64_t k0 = 0; k0 < g.K; k0 += kT) {
        for (int r = ty; r < kT; r += 8) {
            const int64_t m = m0 + r, k = k0 + tx;  // as[r][tx] = op(A)[m, k]
            as[r][tx] = (m < g.M && k < g.K) ? (g.ta ? A[k * g.lda + m] : A[m * g.lda + k]) : 0.f;
            const int64_t kb = k0 + r, n = n0 + tx;  // bs[r][tx] = op(B)[kb, n]
            bs[r][tx] = (kb < g.K && n < g.N) ? (g.tb ? B[n * g.ldb + kb] : B[kb * g.ldb + n]) : 0.f;
        }
        __syncthreads();
        for (int kk = 0; kk < kT; ++kk) {
            const float bv = bs[kk][tx];
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[i] += as[ty + 8 * i][kk] * bv;
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i) {
        const int64_t m = m0 + ty + 8 * i, n = n0 + tx;
        if (m < g.M && n < g.N) {
            float* c = C + m * g.ldc + n;
            *c = g.alpha * acc[i] + (g.beta != 0.f ? g.beta * *c : 0.f);
        }
    }
}

// ---- elementwise --------------------------------------------------------------------------------
// dx may be dy (ops::unary_backward's overwrite_dy): no __restrict__ on those two.
__global__ void unary_backward_kernel(int act, const float* __restrict__ x, const float* dy, float* dx, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float v = x[i];
        float d = 0.f;
        if (act == 1) {  // 0.5·x·(1 + tanh(c·(x + 0.044715·x³)))
            const float c = 0.7978845608028654f;
            const float t = tanhf(c * (v + 0.044715f * v * v * v));
            d = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * c * (1.f + 3.f * 0.044715f * v * v);
        } else if (act == 2) {  // Φ(x) + x·φ(x)
            d = 0.5f * (1.f + erff(v * 0.7071067811865476f)) + v * 0.3989422804014327f * expf(-0.5f * v * v);
        } else if (act == 3) {  // s·(1 + x·(1 − s))
            const float s = 1.f / (1.f + expf(-v));
            d = s * (1.f + v * (1.f - s));
        }
        dx[i] = dy[i] * d;
    }
}

__global__ void gate_rows_kernel(const float* __restrict__ dout, const float* __restrict__ gate, int64_t gate_stride,
                                 int64_t S, float* __restrict__ dy, int64_t rows, int64_t D) {
    const int64_t n = rows * D;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / D, c = i % D;
        dy[i] = dout[i] * gate[(r / S) * gate_stride + c];
    }
}

__global__ void negate_sin_kernel(const float* __restrict__ t, float* __restrict__ out, int64_t pairs) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pairs; i += int64_t(gridDim.x) * blockDim.x) {
        out[2 * i] = t[2 * i];
        out[2 * i + 1] = -t[2 * i + 1];
    }
}

// One thread per dx element: where patchify read it from.
__global__ void patchify_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, int64_t C, int64_t f,
                                         int64_t h, int64_t w, int pt, int ph, int pw) {
    const int64_t Tn = f * pt, H = h * ph, W = w * pw, n = C * Tn * H * W, feat = C * pt * ph * pw;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t x = i % W, y = (i / W) % H, t = (i / (W * H)) % Tn, c = i / (W * H * Tn);
        const int64_t tok = ((t / pt) * h + y / ph) * w + x / pw;
        const int64_t k = ((c * pt + t % pt) * ph + y % ph) * pw + x % pw;
        dx[i] = dy[tok * feat + k];
    }
}

// One thread per dx element: which dy pixel unpatchify wrote it to (padding rows zero).
__global__ void unpatchify_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, int64_t C, int64_t L,
                                           int64_t f, int64_t h, int64_t w, int pt, int ph, int pw) {
    const int64_t feat = int64_t(pt) * ph * pw * C, n = L * feat, H = h * ph, W = w * pw, Tn = f * pt;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t tok = i / feat, k = i % feat;
        if (tok >= f * h * w) {
            dx[i] = 0.f;
            continue;
        }
        const int64_t c = k % C, r = (k / C) % pw, q = (k / (C * pw)) % ph, p = k / (C * pw * ph);
        const int64_t fi = tok / (h * w), hi = (tok / w) % h, wi = tok % w;
        dx[i] = dy[((c * Tn + fi * pt + p) * H + hi * ph + q) * W + wi * pw + r];
    }
}

__global__ void adamw_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, float decay, float b1, float b2, float step_size,
                             float bc2_sqrt, float eps) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float pi = p[i] * decay;
        const float gi = g[i];
        const float mi = b1 * m[i] + (1.f - b1) * gi;
        const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
        pi -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        p[i] = pi, m[i] = mi, v[i] = vi;
    }
}

// ---- sums over rows -----------------------------------------------------------------------------
// Block (32 columns × 8 row slices) per group, column tile and row chunk; double partial sums, reduced
// over the slices in shared memory in a fixed order. With one chunk per group the block writes the
// result; with R > 1 (few groups: one group alone would fill a third of an H100 with 48 blocks for
// D = 1536) it writes its chunk's partials to part [G, R, 2, D] and col_sums_finish_kernel adds them
// in chunk order, so the result does not depend on scheduling.
__global__ void group_col_sums_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                      const float* __restrict__ mean, const float* __restrict__ scale, int64_t S,
                                      int64_t D, int R, int64_t chunk, float* __restrict__ sum_a,
                                      float* __restrict__ sum_ab, double* __restrict__ part, bool accumulate) {
    __shared__ double sa[8][32], sab[8][32];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t g = blockIdx.y / R, ch = blockIdx.y % R, c = int64_t(blockIdx.x) * 32 + tx;
    const int64_t r0 = g * S + ch * chunk, r1 = min(r0 + chunk, (g + 1) * S);
    const bool ab = sum_ab != nullptr;
    double acc_a = 0, acc_ab = 0;
    if (c < D)
        for (int64_t r = r0 + ty; r < r1; r += 8) {
            const double av = a[r * D + c];
            acc_a += av;
            if (ab) acc_ab += av * (double(b[r * D + c]) - (mean ? mean[r] : 0.f)) * (scale ? scale[r] : 1.f);
        }
    sa[ty][tx] = acc_a, sab[ty][tx] = acc_ab;
    __syncthreads();
    if (ty == 0 && c < D) {
        double ta = 0, tab = 0;
        for (int i = 0; i < 8; ++i) ta += sa[i][tx], tab += sab[i][tx];
        if (part) {
            double* p = part + ((g * R + ch) * 2) * D;
            p[c] = ta, p[D + c] = tab;
            return;
        }
        if (sum_a) sum_a[g * D + c] = float(ta) + (accumulate ? sum_a[g * D + c] : 0.f);
        if (ab) sum_ab[g * D + c] = float(tab) + (accumulate ? sum_ab[g * D + c] : 0.f);
    }
}

__global__ void col_sums_finish_kernel(const double* __restrict__ part, int64_t G, int R, int64_t D,
                                       float* __restrict__ sum_a, float* __restrict__ sum_ab, bool accumulate) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i >= G * D) return;
    const int64_t g = i / D, c = i % D;
    double ta = 0, tab = 0;
    for (int r = 0; r < R; ++r) {
        const double* p = part + ((g * R + r) * 2) * D;
        ta += p[c], tab += p[D + c];
    }
    if (sum_a) sum_a[i] = float(ta) + (accumulate ? sum_a[i] : 0.f);
    if (sum_ab) sum_ab[i] = float(tab) + (accumulate ? sum_ab[i] : 0.f);
}

// ---- row norms (one warp per row) -------------------------------------------------------------
__global__ void rms_norm_backward_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                         const float* __restrict__ dy, float eps, float* __restrict__ dx,
                                         float* __restrict__ rs, int64_t rows, int64_t D) {
    const int64_t row = blockIdx.x * int64_t(blockDim.y) + threadIdx.y;
    if (row >= rows) return;
    const int lane = threadIdx.x;
    const float* xr = x + row * D;
    const float* dyr = dy + row * D;
    double ss = 0, sgx = 0;
    for (int64_t i = lane; i < D; i += 32) {
        ss += double(xr[i]) * xr[i];
        sgx += double(dyr[i]) * w[i] * xr[i];
    }
    ss = warp_sum_d(ss), sgx = warp_sum_d(sgx);
    const double rr = 1.0 / sqrt(ss / double(D) + eps);
    const float c = float(rr * rr * rr * sgx / double(D)), r = float(rr);
    float* dxr = dx + row * D;
    for (int64_t i = lane; i < D; i += 32) dxr[i] = r * dyr[i] * w[i] - xr[i] * c;
    if (lane == 0) rs[row] = r;
}

__global__ void layer_norm_backward_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                           const float* __restrict__ w, const float* __restrict__ scale,
                                           int64_t scale_stride, int64_t S, float eps, float* __restrict__ dx,
                                           float* __restrict__ mean_out, float* __restrict__ rstd_out, int64_t rows,
                                           int64_t D) {
    const int64_t row = blockIdx.x * int64_t(blockDim.y) + threadIdx.y;
    if (row >= rows) return;
    const int lane = threadIdx.x;
    const float* xr = x + row * D;
    const float* dyr = dy + row * D;
    const float* sc = scale ? scale + (row / S) * scale_stride : nullptr;
    double s = 0;
    for (int64_t i = lane; i < D; i += 32) s += xr[i];
    const double mean_d = warp_sum_d(s) / double(D);
    double v = 0;
    for (int64_t i = lane; i < D; i += 32) v += (xr[i] - mean_d) * (xr[i] - mean_d);
    const float mean = float(mean_d), rstd = float(1.0 / sqrt(warp_sum_d(v) / double(D) + eps));
    auto grad = [&](int64_t i) { return dyr[i] * (w ? w[i] : sc ? 1.f + sc[i] : 1.f); };
    double sg = 0, sgx = 0;
    for (int64_t i = lane; i < D; i += 32) {
        const float gi = grad(i);
        sg += gi;
        sgx += double(gi) * double((xr[i] - mean) * rstd);
    }
    const float mg = float(warp_sum_d(sg) / double(D)), mgx = float(warp_sum_d(sgx) / double(D));
    float* dxr = dx + row * D;
    for (int64_t i = lane; i < D; i += 32) dxr[i] = rstd * (grad(i) - mg - (xr[i] - mean) * rstd * mgx);
    if (lane == 0) mean_out[row] = mean, rstd_out[row] = rstd;
}

// ---- attention rows (one warp per score row) ----------------------------------------------------
__device__ __forceinline__ void attn_range(const AttnTile& t, int64_t i, int64_t* lo, int64_t* hi) {
    const int64_t c = i + t.lk - t.Lq;
    int64_t l = 0, r = t.lk;
    if (t.causal && c + 1 < r) r = c + 1;
    if (t.wl >= 0 && c - t.wl > l) l = c - t.wl;
    if (t.wr >= 0 && c + t.wr + 1 < r) r = c + t.wr + 1;
    *lo = l;
    *hi = r > l ? r : l;
}

__global__ void attn_softmax_lse_kernel(float* __restrict__ S, AttnTile t) {
    const int64_t row = blockIdx.x * int64_t(blockDim.y) + threadIdx.y;  // n·qn + i
    if (row >= t.nb * t.qn) return;
    const int lane = threadIdx.x;
    const int64_t n = row / t.qn, i = row % t.qn;
    int64_t lo, hi;
    attn_range(t, t.q0 + i, &lo, &hi);
    float* s = S + row * t.Lk;
    float m = -INFINITY;
    for (int64_t j = lo + lane; j < hi; j += 32) m = fmaxf(m, s[j]);
    m = warp_max(m);
    double sum = 0;
    for (int64_t j = lo + lane; j < hi; j += 32) sum += expf(s[j] - m);
    sum = warp_sum_d(sum);
    const float inv = lo < hi ? float(1.0 / sum) : 0.f;
    for (int64_t j = lane; j < t.Lk; j += 32) s[j] = (j >= lo && j < hi) ? expf(s[j] - m) * inv : 0.f;
    if (lane == 0) t.lse[n * t.lse_head_stride + t.q0 + i] = lo < hi ? m + float(log(sum)) : -INFINITY;
}

__global__ void attn_backward_ds_kernel(float* __restrict__ S, float* __restrict__ dP, const float* __restrict__ o,
                                        const float* __restrict__ dout, int64_t o_head_stride, int64_t o_row_stride,
                                        int64_t Dv, AttnTile t) {
    const int64_t row = blockIdx.x * int64_t(blockDim.y) + threadIdx.y;
    if (row >= t.nb * t.qn) return;
    const int lane = threadIdx.x;
    const int64_t n = row / t.qn, i = row % t.qn;
    int64_t lo, hi;
    attn_range(t, t.q0 + i, &lo, &hi);
    const float* orow = o + n * o_head_stride + (t.q0 + i) * o_row_stride;
    const float* drow = dout + n * o_head_stride + (t.q0 + i) * o_row_stride;
    double di = 0;
    for (int64_t d = lane; d < Dv; d += 32) di += double(orow[d]) * drow[d];
    const float Di = float(warp_sum_d(di));
    const float l = t.lse[n * t.lse_head_stride + t.q0 + i];
    float* s = S + row * t.Lk;
    float* dp = dP + row * t.Lk;
    for (int64_t j = lane; j < t.Lk; j += 32) {
        const float pj = (j >= lo && j < hi) ? expf(s[j] - l) : 0.f;
        s[j] = pj;
        dp[j] = pj * (dp[j] - Di);
    }
}

constexpr int kRowsPerBlock = 8;  // warps per block of the row kernels

}  // namespace

// ---- GEMM -------------------------------------------------------------------------------------------
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt gets B as its first
// operand and A as its second, each with its own transpose flag (a row-major [r, c] matrix read
// column-major is its transpose, [c, r] with the same leading dimension).
GemmEngine::Plan& GemmEngine::plan_f32(const GemmF32& g, F32Math math) {
    const F32Key key{g.ta, g.tb, g.M, g.N, g.K, g.lda, g.ldb, g.ldc, g.batch, g.sa, g.sb, g.sc, int(math)};
    auto it = f32_plans_.find(key);
    if (it != f32_plans_.end()) return it->second;
    Plan& p = f32_plans_[key];
    const cublasOperation_t opA = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opB = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const uint64_t m = uint64_t(g.N), n = uint64_t(g.M), k = uint64_t(g.K);
    const cublasComputeType_t compute = math == F32Math::Bf16   ? CUBLAS_COMPUTE_32F_FAST_16BF
                                        : math == F32Math::Tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                : CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_32F, g.tb ? k : m, g.tb ? m : k, int64_t(g.ldb)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_32F, g.ta ? n : k, g.ta ? k : n, int64_t(g.lda)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, m, n, int64_t(g.ldc)));
    const int32_t batch = g.batch;
    const int64_t strides[3] = {g.sb, g.sa, g.sc};
    cublasLtMatrixLayout_t layouts[3] = {p.a, p.b, p.c};
    for (int i = 0; i < 3; ++i) {
        CUBLAS_CHECK(
            cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                      &strides[i], sizeof strides[i]));
    }
    cublasLtMatmulPreference_t pref = nullptr;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes_,
                                                      sizeof ws_bytes_));
    cublasLtMatmulHeuristicResult_t heur{};
    int found = 0;
    const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &heur, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p.ok = hs == CUBLAS_STATUS_SUCCESS && found > 0;
    if (p.ok) p.algo = heur.algo;
    return p;
}

void GemmEngine::run_f32(const GemmF32& g) {
    if (g.M == 0 || g.N == 0 || g.batch == 0) return;
    const Plan* p = g.K == 0 ? nullptr : &plan_f32(g, f32_math_);  // K = 0: C = beta·C, no cuBLASLt call
    if (p && !p->ok && f32_math_ == F32Math::Bf16) p = &plan_f32(g, F32Math::Tf32);
    if (p && p->ok) {
        CUBLAS_CHECK(cublasLtMatmul(lt_, p->desc, &g.alpha, g.B, p->a, g.A, p->b, &g.beta, g.C, p->c, g.C, p->c,
                                    &p->algo, ws_, ws_bytes_, stream_));
    } else {
        dim3 grid(unsigned((g.N + kT - 1) / kT), unsigned((g.M + kT - 1) / kT), unsigned(g.batch));
        gemm_f32_fallback_kernel<<<grid, dim3(32, 8), 0, stream_>>>(g);
        CUDA_CHECK_LAUNCH();
    }
}

// ---- launchers ------------------------------------------------------------------------------------
void launch_unary_backward(int act, const float* x, const float* dy, float* dx, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    unary_backward_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(act, x, dy, dx, n);
    CUDA_CHECK_LAUNCH();
}

namespace {
int group_col_sums_chunks(int64_t G, int64_t S, int64_t D) {
    // ≈ 4 blocks per SM of an H100 (132), each chunk at least 256 rows (32 per row slice).
    const int64_t tiles = (D + 31) / 32 * G;
    if (tiles >= 528) return 1;
    return int(std::clamp<int64_t>((528 + tiles - 1) / tiles, 1, std::max<int64_t>(S / 256, 1)));
}
}  // namespace

int64_t group_col_sums_work(int64_t G, int64_t S, int64_t D) {
    const int R = group_col_sums_chunks(G, S, D);
    return R > 1 ? G * R * 2 * D : 0;
}

void launch_group_col_sums(const float* a, const float* b, const float* mean, const float* scale, int64_t G, int64_t S,
                           int64_t D, float* sum_a, float* sum_ab, bool accumulate, double* work, cudaStream_t stream) {
    if (G == 0 || D == 0) return;
    const int R = work ? group_col_sums_chunks(G, S, D) : 1;
    if (R > 1) {  // G·R ≤ 528 rows of the grid
        const int64_t chunk = (S + R - 1) / R;
        dim3 grid(unsigned((D + 31) / 32), unsigned(G * R));
        group_col_sums_kernel<<<grid, dim3(32, 8), 0, stream>>>(a, b, mean, scale, S, D, R, chunk, nullptr, sum_ab,
                                                                work, accumulate);
        CUDA_CHECK_LAUNCH();
        col_sums_finish_kernel<<<blocks_for(G * D, 256), 256, 0, stream>>>(work, G, R, D, sum_a, sum_ab, accumulate);
        CUDA_CHECK_LAUNCH();
        return;
    }
    // Groups in launches of at most 65,535 (the grid's y limit; TI2V's per-token groups can exceed it).
    constexpr int64_t kMaxY = 65535;
    for (int64_t g0 = 0; g0 < G; g0 += kMaxY) {
        const int64_t n = std::min(kMaxY, G - g0), rows = g0 * S, outs = g0 * D;
        dim3 grid(unsigned((D + 31) / 32), unsigned(n));
        group_col_sums_kernel<<<grid, dim3(32, 8), 0, stream>>>(
            a + rows * D, b ? b + rows * D : nullptr, mean ? mean + rows : nullptr, scale ? scale + rows : nullptr, S,
            D, 1, S, sum_a ? sum_a + outs : nullptr, sum_ab ? sum_ab + outs : nullptr, nullptr, accumulate);
        CUDA_CHECK_LAUNCH();
    }
}

void launch_rms_norm_backward(const float* x, const float* w, const float* dy, float eps, float* dx, float* rs,
                              int64_t rows, int64_t D, cudaStream_t stream) {
    if (rows == 0) return;
    rms_norm_backward_kernel<<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                               stream>>>(x, w, dy, eps, dx, rs, rows, D);
    CUDA_CHECK_LAUNCH();
}

void launch_layer_norm_backward(const float* x, const float* dy, const float* w, const float* scale,
                                int64_t scale_stride, int64_t S, float eps, float* dx, float* mean, float* rstd,
                                int64_t rows, int64_t D, cudaStream_t stream) {
    if (rows == 0) return;
    layer_norm_backward_kernel<<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                                 stream>>>(x, dy, w, scale, scale_stride, std::max<int64_t>(S, 1), eps, dx, mean, rstd,
                                           rows, D);
    CUDA_CHECK_LAUNCH();
}

void launch_gate_rows(const float* dout, const float* gate, int64_t gate_stride, int64_t S, float* dy, int64_t rows,
                      int64_t D, cudaStream_t stream) {
    if (rows * D == 0) return;
    gate_rows_kernel<<<blocks_for(rows * D, 256), 256, 0, stream>>>(dout, gate, gate_stride, std::max<int64_t>(S, 1),
                                                                    dy, rows, D);
    CUDA_CHECK_LAUNCH();
}

void launch_negate_sin(const float* table, float* out, int64_t pairs, cudaStream_t stream) {
    if (pairs == 0) return;
    negate_sin_kernel<<<blocks_for(pairs, 256), 256, 0, stream>>>(table, out, pairs);
    CUDA_CHECK_LAUNCH();
}

void launch_patchify_backward(const float* dy, float* dx, int64_t C, int64_t f, int64_t h, int64_t w, int pt, int ph,
                              int pw, cudaStream_t stream) {
    const int64_t n = C * f * pt * h * ph * w * pw;
    if (n == 0) return;
    patchify_backward_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(dy, dx, C, f, h, w, pt, ph, pw);
    CUDA_CHECK_LAUNCH();
}

void launch_unpatchify_backward(const float* dy, float* dx, int64_t C, int64_t L, int64_t f, int64_t h, int64_t w,
                                int pt, int ph, int pw, cudaStream_t stream) {
    const int64_t n = L * pt * ph * pw * C;
    if (n == 0) return;
    unpatchify_backward_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(dy, dx, C, L, f, h, w, pt, ph, pw);
    CUDA_CHECK_LAUNCH();
}

void launch_attn_softmax_lse(float* S, const AttnTile& t, cudaStream_t stream) {
    const int64_t rows = t.nb * t.qn;
    if (rows == 0) return;
    attn_softmax_lse_kernel<<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                              stream>>>(S, t);
    CUDA_CHECK_LAUNCH();
}

void launch_attn_backward_ds(float* S, float* dP, const float* o, const float* dout, int64_t o_head_stride,
                             int64_t o_row_stride, int64_t Dv, const AttnTile& t, cudaStream_t stream) {
    const int64_t rows = t.nb * t.qn;
    if (rows == 0) return;
    attn_backward_ds_kernel<<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                              stream>>>(S, dP, o, dout, o_head_stride, o_row_stride, Dv, t);
    CUDA_CHECK_LAUNCH();
}

void launch_adamw(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2,
                  float step_size, float bc2_sqrt, float eps, cudaStream_t stream) {
    if (n == 0) return;
    adamw_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(p, g, m, v, n, decay, b1, b2, step_size, bc2_sqrt, eps);
    CUDA_CHECK_LAUNCH();
}

}  // namespace wanrt::cuda
