// The attention backward in bf16 on tensor cores (mma.sync m16n8k16, fp32 accumulation), for
// --matmul_precision medium: FlashAttention-2's per-tile algorithm (P = exp(scale·S − lse),
// dP = dO·Vᵀ, dS = P∘(dP − Δ) with Δ = rowsum(dO∘O); dV = Pᵀ·dO, dK = scale·dSᵀ·Q, dQ = scale·dS·K)
// split in two kernels, as Triton's fused-attention tutorial does, so that no gradient needs
// atomics: one block per 64 keys accumulates dK and dV over every query tile, one block per 64
// queries accumulates dQ over every key tile. Each recomputes S and dP (7 tile GEMMs instead of 5).
// Both kernels are the forward's (cuda_attention.cu) loop with other operands: the block's own 64
// rows stay in shared memory, the streamed tiles are double-buffered with cp.async.
// The unfused oracle is the f32 tile path of cuda_backward_ops.cpp (test MatmulPrecisionGpu.*).
#include <cfloat>

#include "cuda/cuda_common.h"
#include "cuda/cuda_mma.cuh"

namespace wanrt::cuda {

namespace {

constexpr int kTile = 64;  // rows of the block's own tile (4 warps × 16) and of each streamed tile
constexpr int kWarpsB = 4;
constexpr int kThreadsB = kWarpsB * 32;
constexpr float kLog2e = 1.4426950408889634f;

// Per row (b, h, i): lse2 = lse·log2 e (+inf where the row sees no key, so that every P of it is 0)
// and Δ = Σ_c dO·O in f32. One warp per row.
__global__ void attn_bwd_prep_kernel(const float* __restrict__ o, const float* __restrict__ dout,
                                     const float* __restrict__ lse, int B, int Lq, int H, int D,
                                     float* __restrict__ lse2, float* __restrict__ delta) {
    const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;  // (b·Lq + i)·H + h
    if (row >= int64_t(B) * Lq * H) return;
    const int lane = threadIdx.x & 31;
    const float* orow = o + row * D;
    const float* drow = dout + row * D;
    float s = 0.f;
    for (int c = lane; c < D; c += 32) s += orow[c] * drow[c];
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) {
        const int64_t h = row % H, bi = row / H, i = bi % Lq, b = bi / Lq;
        const int64_t at = (b * H + h) * Lq + i;
        const float l = lse[at];
        lse2[at] = l == -INFINITY ? INFINITY : l * kLog2e;
        delta[at] = s;
    }
}

// acc [16 × kTile] += A-rows (16 of tile sa, from row ra) · B-rowsᵀ (kTile of tile sb): the
// forward's S = Q·Kᵀ with any two operands.
template <int D>
__device__ __forceinline__ void gemm_abt(float (&acc)[kTile / 8][4], const __nv_bfloat16* sa, int ra,
                                         const __nv_bfloat16* sb, int lane) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t af[4];
        load_a_frag<D>(af, sa, ra, kk, lane);
#pragma unroll
        for (int n2 = 0; n2 < kTile / 16; ++n2) {
            const int br = n2 * 16 + (lane & 7) + 8 * (lane >> 4);
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4(b0, b1, b2, b3, smem_u32(sb + swz<D>(br, 2 * kk + ((lane >> 3) & 1))));
            mma_bf16(acc[2 * n2], af, b0, b1);
            mma_bf16(acc[2 * n2 + 1], af, b2, b3);
        }
    }
}

// acc [16 × D] += X [16 × kTile] (accumulator layout, rounded to bf16) · tile [kTile × D]: the
// forward's O += P·V.
template <int D>
__device__ __forceinline__ void gemm_xb(float (&acc)[D / 8][4], const float (&x)[kTile / 8][4],
                                        const __nv_bfloat16* tile, int lane) {
#pragma unroll
    for (int kk = 0; kk < kTile / 16; ++kk) {
        uint32_t pa[4];
        pa[0] = pack_bf16(x[2 * kk][0], x[2 * kk][1]);
        pa[1] = pack_bf16(x[2 * kk][2], x[2 * kk][3]);
        pa[2] = pack_bf16(x[2 * kk + 1][0], x[2 * kk + 1][1]);
        pa[3] = pack_bf16(x[2 * kk + 1][2], x[2 * kk + 1][3]);
        const int vr = kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4_trans(b0, b1, b2, b3, smem_u32(tile + swz<D>(vr, 2 * dp + (lane >> 4))));
            mma_bf16(acc[2 * dp], pa, b0, b1);
            mma_bf16(acc[2 * dp + 1], pa, b2, b3);
        }
    }
}

// Writes scale·acc (16 rows from r0 of this warp, D columns) to f32 rows of stride rs, rows < limit.
template <int D>
__device__ __forceinline__ void store_rows(float* base, int64_t rs, int r0, int limit, const float (&acc)[D / 8][4],
                                           float scale, int lane) {
    const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
        const int col = i * 8 + 2 * t4;
        if (r0 + g < limit)
            *reinterpret_cast<float2*>(base + int64_t(r0 + g) * rs + col) =
                make_float2(acc[i][0] * scale, acc[i][1] * scale);
        if (r0 + g + 8 < limit)
            *reinterpret_cast<float2*>(base + int64_t(r0 + g + 8) * rs + col) =
                make_float2(acc[i][2] * scale, acc[i][3] * scale);
    }
}

// dK, dV of 64 keys of one (sample, head): per query tile, Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (16 keys × 64
// queries per warp), Pᵀ and dSᵀ, then dV += Pᵀ·dO and dK += dSᵀ·Q.
template <int D>
__global__ void __launch_bounds__(kThreadsB, 1)
    flash_bwd_dkdv_kernel(AttnArgs a, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                          const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout,
                          const float* __restrict__ lse2, const float* __restrict__ delta, float* __restrict__ dk,
                          float* __restrict__ dv) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    __nv_bfloat16* sK = reinterpret_cast<__nv_bfloat16*>(smem_raw);
    __nv_bfloat16* sV = sK + kTile * D;
    __nv_bfloat16* sQ = sV + kTile * D;      // 2 stages
    __nv_bfloat16* sO = sQ + 2 * kTile * D;  // dO, 2 stages
    float* sL = reinterpret_cast<float*>(sO + 2 * kTile * D);
    float* sDl = sL + kTile;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int k0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z;
    const int kl = a.k_lens ? max(0, min(a.k_lens[b], a.Lk)) : a.Lk;
    const int ntiles = k0 < kl ? (a.Lq + kTile - 1) / kTile : 0;  // keys ≥ kl are seen by no query
    const bool masked = a.causal || a.window_left >= 0 || a.window_right >= 0 || k0 + kTile > kl;

    const int64_t rs = int64_t(a.H) * D;  // H == Hk here
    const __nv_bfloat16* qbase = q + int64_t(b) * a.Lq * rs + int64_t(h) * D;
    const __nv_bfloat16* obase = dout + int64_t(b) * a.Lq * rs + int64_t(h) * D;
    const int64_t kvoff = int64_t(b) * a.Lk * rs + int64_t(h) * D;
    const float* lrow = lse2 + (int64_t(b) * a.H + h) * a.Lq;
    const float* drow = delta + (int64_t(b) * a.H + h) * a.Lq;

    load_tile<D, kTile, kThreadsB>(sK, k + kvoff, rs, k0, a.Lk);
    load_tile<D, kTile, kThreadsB>(sV, v + kvoff, rs, k0, a.Lk);
    if (ntiles > 0) {
        load_tile<D, kTile, kThreadsB>(sQ, qbase, rs, 0, a.Lq);
        load_tile<D, kTile, kThreadsB>(sO, obase, rs, 0, a.Lq);
    }
    cp_async_commit();

    float dka[D / 8][4], dva[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) dka[i][e] = dva[i][e] = 0.f;
    const float scale_log2 = a.softmax_scale * kLog2e;
    const int j0 = k0 + warp * 16 + g;  // this thread's key rows: j0 (e < 2) and j0 + 8

    for (int t = 0; t < ntiles; ++t) {
        const int stage = t & 1, q0 = t * kTile;
        if (t + 1 < ntiles) {
            load_tile<D, kTile, kThreadsB>(sQ + (stage ^ 1) * kTile * D, qbase, rs, q0 + kTile, a.Lq);
            load_tile<D, kTile, kThreadsB>(sO + (stage ^ 1) * kTile * D, obase, rs, q0 + kTile, a.Lq);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        if (threadIdx.x < kTile) {  // the previous iteration's closing barrier freed sL/sDl
            const int i = q0 + threadIdx.x;
            sL[threadIdx.x] = i < a.Lq ? lrow[i] : INFINITY;
            sDl[threadIdx.x] = i < a.Lq ? drow[i] : 0.f;
        }
        __syncthreads();
        const __nv_bfloat16* tQ = sQ + stage * kTile * D;
        const __nv_bfloat16* tO = sO + stage * kTile * D;

        float s[kTile / 8][4], dp[kTile / 8][4];
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
        gemm_abt<D>(s, sK, warp * 16, tQ, lane);   // Sᵀ [16 keys × 64 queries]
        gemm_abt<D>(dp, sV, warp * 16, tO, lane);  // dPᵀ

        const bool tile_masked = masked || q0 + kTile > a.Lq;
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int il = n * 8 + 2 * t4 + (e & 1), i = q0 + il, j = e < 2 ? j0 : j0 + 8;
                const bool vis =
                    !tile_masked ||
                    (i < a.Lq && key_visible(i, j, kl, a.Lq, a.causal, a.window_left, a.window_right));
                const float p = vis ? exp2f(s[n][e] * scale_log2 - sL[il]) : 0.f;
                s[n][e] = p;
                dp[n][e] = p * (dp[n][e] - sDl[il]);
            }
        gemm_xb<D>(dva, s, tO, lane);   // dV += Pᵀ·dO
        gemm_xb<D>(dka, dp, tQ, lane);  // dK += dSᵀ·Q (scale at the end)
        __syncthreads();  // this stage is refilled by the next iteration's prefetch
    }
    cp_async_wait<0>();  // ntiles == 0 leaves the K/V group in flight

    store_rows<D>(dk + kvoff, rs, k0 + warp * 16, a.Lk, dka, a.softmax_scale, lane);
    store_rows<D>(dv + kvoff, rs, k0 + warp * 16, a.Lk, dva, 1.f, lane);
}

// dQ of 64 queries of one (sample, head): per key tile, S = Q·Kᵀ and dP = dO·Vᵀ, dS, dQ += dS·K.
template <int D>
__global__ void __launch_bounds__(kThreadsB, 1)
    flash_bwd_dq_kernel(AttnArgs a, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                        const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout,
                        const float* __restrict__ lse2, const float* __restrict__ delta, float* __restrict__ dq) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    __nv_bfloat16* sQ = reinterpret_cast<__nv_bfloat16*>(smem_raw);
    __nv_bfloat16* sO = sQ + kTile * D;
    __nv_bfloat16* sK = sO + kTile * D;      // 2 stages
    __nv_bfloat16* sV = sK + 2 * kTile * D;  // 2 stages

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int q0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z;
    const int kl = a.k_lens ? max(0, min(a.k_lens[b], a.Lk)) : a.Lk;
    const int ntiles = (kl + kTile - 1) / kTile;
    const bool masked = a.causal || a.window_left >= 0 || a.window_right >= 0 || q0 + kTile > a.Lq;

    const int64_t rs = int64_t(a.H) * D;
    const int64_t qoff = int64_t(b) * a.Lq * rs + int64_t(h) * D;
    const __nv_bfloat16* kbase = k + int64_t(b) * a.Lk * rs + int64_t(h) * D;
    const __nv_bfloat16* vbase = v + int64_t(b) * a.Lk * rs + int64_t(h) * D;

    load_tile<D, kTile, kThreadsB>(sQ, q + qoff, rs, q0, a.Lq);
    load_tile<D, kTile, kThreadsB>(sO, dout + qoff, rs, q0, a.Lq);
    if (ntiles > 0) {
        load_tile<D, kTile, kThreadsB>(sK, kbase, rs, 0, a.Lk);
        load_tile<D, kTile, kThreadsB>(sV, vbase, rs, 0, a.Lk);
    }
    cp_async_commit();

    const int i0 = q0 + warp * 16 + g, i1 = i0 + 8;  // this thread's query rows
    const int64_t lat = (int64_t(b) * a.H + h) * a.Lq;
    const float l0 = i0 < a.Lq ? lse2[lat + i0] : INFINITY, l1 = i1 < a.Lq ? lse2[lat + i1] : INFINITY;
    const float d0 = i0 < a.Lq ? delta[lat + i0] : 0.f, d1 = i1 < a.Lq ? delta[lat + i1] : 0.f;
    float dqa[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) dqa[i][e] = 0.f;
    const float scale_log2 = a.softmax_scale * kLog2e;

    for (int t = 0; t < ntiles; ++t) {
        const int stage = t & 1, k0 = t * kTile;
        if (t + 1 < ntiles) {
            load_tile<D, kTile, kThreadsB>(sK + (stage ^ 1) * kTile * D, kbase, rs, k0 + kTile, a.Lk);
            load_tile<D, kTile, kThreadsB>(sV + (stage ^ 1) * kTile * D, vbase, rs, k0 + kTile, a.Lk);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const __nv_bfloat16* tK = sK + stage * kTile * D;
        const __nv_bfloat16* tV = sV + stage * kTile * D;

        float s[kTile / 8][4], dp[kTile / 8][4];
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
        gemm_abt<D>(s, sQ, warp * 16, tK, lane);   // S [16 queries × 64 keys]
        gemm_abt<D>(dp, sO, warp * 16, tV, lane);  // dP

        const bool tile_masked = masked || k0 + kTile > kl;
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int j = k0 + n * 8 + 2 * t4 + (e & 1), i = e < 2 ? i0 : i1;
                const bool vis =
                    !tile_masked ||
                    (i < a.Lq && key_visible(i, j, kl, a.Lq, a.causal, a.window_left, a.window_right));
                const float p = vis ? exp2f(s[n][e] * scale_log2 - (e < 2 ? l0 : l1)) : 0.f;
                dp[n][e] = p * (dp[n][e] - (e < 2 ? d0 : d1));
            }
        gemm_xb<D>(dqa, dp, tK, lane);  // dQ += dS·K (scale at the end)
        __syncthreads();
    }
    cp_async_wait<0>();

    store_rows<D>(dq + qoff, rs, q0 + warp * 16, a.Lq, dqa, a.softmax_scale, lane);
}

template <int D>
void launch_bwd(const AttnArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                const __nv_bfloat16* dout, const float* lse2, const float* delta, float* dq, float* dk, float* dv,
                cudaStream_t stream) {
    constexpr int smem_kv = 6 * kTile * D * 2 + 2 * kTile * 4, smem_q = 6 * kTile * D * 2;
    static bool configured = false;  // per template instance; the attribute is per function
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dkdv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        smem_kv));
        CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_q));
        configured = true;
    }
    if (a.Lk > 0) {
        flash_bwd_dkdv_kernel<D><<<dim3(div_up(a.Lk, kTile), a.H, a.B), kThreadsB, smem_kv, stream>>>(
            a, q, k, v, dout, lse2, delta, dk, dv);
        CUDA_CHECK_LAUNCH();
    }
    if (a.Lq > 0) {
        flash_bwd_dq_kernel<D>
            <<<dim3(div_up(a.Lq, kTile), a.H, a.B), kThreadsB, smem_q, stream>>>(a, q, k, v, dout, lse2, delta, dq);
        CUDA_CHECK_LAUNCH();
    }
}

}  // namespace

bool flash_attention_backward_supported(const AttnArgs& a) {
    return flash_attention_supported(a.d, a.dv) && a.H == a.Hk && !a.rel_bias;
}

void launch_flash_attention_backward(const AttnArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                     const __nv_bfloat16* v, const __nv_bfloat16* dout, const float* out_f32,
                                     const float* dout_f32, const float* lse, float* work, float* dq, float* dk,
                                     float* dv, cudaStream_t stream) {
    if (a.B == 0) return;
    if (!flash_attention_backward_supported(a))
        die("wanrt", "launch_flash_attention_backward", "shape not supported (flash_attention_backward_supported)",
            __FILE__, __LINE__);
    const int64_t rows = int64_t(a.B) * a.Lq * a.H;
    float *lse2 = work, *delta = work + rows;
    if (rows > 0) {
        attn_bwd_prep_kernel<<<unsigned((rows + 7) / 8), 256, 0, stream>>>(out_f32, dout_f32, lse, a.B, a.Lq, a.H,
                                                                           a.d, lse2, delta);
        CUDA_CHECK_LAUNCH();
    }
    if (a.d == 128)
        launch_bwd<128>(a, q, k, v, dout, lse2, delta, dq, dk, dv, stream);
    else
        launch_bwd<64>(a, q, k, v, dout, lse2, delta, dq, dk, dv, stream);
}

}  // namespace wanrt::cuda
