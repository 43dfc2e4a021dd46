// Attention kernels: a FlashAttention-2 style bf16 kernel (mma.sync m16n8k16, fp32 softmax and
// accumulation) for head dims 64 and 128, and a plain fp32 kernel for everything else (any head
// dim ≤ 512, the relative-position bias of T5) that doubles as the fast path's oracle in tests.
//
// Masking (AttentionParams): with kl = k_lens[b] (or Lk) and c = i + kl − Lq, query i sees key j
// when j < kl, and (causal) j ≤ c, and (window) c − left ≤ j ≤ c + right. A row that sees no key
// is written as zeros.
#include <cfloat>

#include "cuda/cuda_common.h"
#include "cuda/cuda_mma.cuh"

namespace wanrt::cuda {

namespace {


// ------------------------------------------------------------------------------------------------
// Generic fp32 kernel: one block of 128 threads per (query row, head, sample). Scores of a chunk
// of 128 keys go to shared memory (one key per thread), then every thread accumulates its share
// of the output dims over the chunk with an online softmax.
constexpr int kGenThreads = 128;
constexpr int kGenMaxD = 512;

__global__ void attention_generic_kernel(AttnArgs a, const float* __restrict__ q, const float* __restrict__ k,
                                         const float* __restrict__ v, const float* __restrict__ rel_bias,
                                         float* __restrict__ out) {
    __shared__ float sq[kGenMaxD];
    __shared__ float sp[kGenThreads];
    __shared__ float red[kGenThreads / 32];
    const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int hk = h / (a.H / a.Hk);
    const int kl = a.k_lens ? max(0, min(a.k_lens[b], a.Lk)) : a.Lk;
    const float* qrow = q + ((int64_t(b) * a.Lq + i) * a.H + h) * a.d;
    for (int c = tid; c < a.d; c += kGenThreads) sq[c] = qrow[c];
    __syncthreads();

    constexpr int kPer = kGenMaxD / kGenThreads;
    float acc[kPer];
#pragma unroll
    for (int r = 0; r < kPer; ++r) acc[r] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int j0 = 0; j0 < kl; j0 += kGenThreads) {
        const int j = j0 + tid;
        float s = -INFINITY;
        if (j < a.Lk && key_visible(i, j, kl, a.Lq, a.causal, a.window_left, a.window_right)) {
            const float* krow = k + ((int64_t(b) * a.Lk + j) * a.Hk + hk) * a.d;
            float dot = 0.f;
            for (int c = 0; c < a.d; ++c) dot += sq[c] * krow[c];
            s = dot * a.softmax_scale;
            if (rel_bias) s += rel_bias[int64_t(h) * (a.Lq + a.Lk - 1) + (j - i + a.Lq - 1)];
        }
        // block max
        float mx = s;
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        if ((tid & 31) == 0) red[tid >> 5] = mx;
        __syncthreads();
        mx = red[0];
        for (int w = 1; w < kGenThreads / 32; ++w) mx = fmaxf(mx, red[w]);
        const float m_new = fmaxf(m, mx);
        const float p = (s == -INFINITY) ? 0.f : __expf(s - m_new);
        const float corr = (m == -INFINITY) ? 0.f : __expf(m - m_new);
        sp[tid] = p;
        __syncthreads();  // sp complete; red may be reused below
        float psum = p;
        for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
        if ((tid & 31) == 0) red[tid >> 5] = psum;
        __syncthreads();
        float chunk_sum = 0.f;
        for (int w = 0; w < kGenThreads / 32; ++w) chunk_sum += red[w];
        if (m_new != -INFINITY) {
            l = l * corr + chunk_sum;
            const int jn = min(kGenThreads, kl - j0);
#pragma unroll
            for (int r = 0; r < kPer; ++r) {
                const int c = tid + r * kGenThreads;
                if (c < a.dv) {
                    float s2 = acc[r] * corr;
                    const float* vcol = v + ((int64_t(b) * a.Lk + j0) * a.Hk + hk) * a.dv + c;
                    for (int jj = 0; jj < jn; ++jj) s2 += sp[jj] * vcol[int64_t(jj) * a.Hk * a.dv];
                    acc[r] = s2;
                }
            }
            m = m_new;
        }
        __syncthreads();  // sp and red reused by the next chunk
    }
    float* orow = out + ((int64_t(b) * a.Lq + i) * a.H + h) * a.dv;
    const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int r = 0; r < kPer; ++r) {
        const int c = tid + r * kGenThreads;
        if (c < a.dv) orow[c] = acc[r] * inv;
    }
}

// ------------------------------------------------------------------------------------------------
// Flash kernel. Block: 8 warps × 16 query rows = 128 rows of one (sample, head); keys in tiles of
// 64, double-buffered with cp.async. Shared tiles are row-major with 16-byte chunks XOR-swizzled
// by (row & 7) so that ldmatrix reads of 8 rows hit 8 different bank groups.
constexpr int kBr = 128, kBc = 64, kWarps = 8;

template <int D>
__global__ void __launch_bounds__(kWarps * 32, 1)
    flash_fwd_kernel(AttnArgs a, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                     const __nv_bfloat16* __restrict__ v, float* __restrict__ out) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    __nv_bfloat16* sQ = reinterpret_cast<__nv_bfloat16*>(smem_raw);
    __nv_bfloat16* sK = sQ + kBr * D;      // 2 stages of kBc × D
    __nv_bfloat16* sV = sK + 2 * kBc * D;  // 2 stages of kBc × D

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int q0 = blockIdx.x * kBr, h = blockIdx.y, b = blockIdx.z;
    const int hk = h / (a.H / a.Hk);
    const int kl = a.k_lens ? max(0, min(a.k_lens[b], a.Lk)) : a.Lk;
    const int shift = kl - a.Lq;  // c = i + shift
    const bool windowed = a.window_left >= 0 || a.window_right >= 0;

    // Key range any row of this block can see.
    int kend = kl;
    const int qlast = min(q0 + kBr, a.Lq) - 1;
    if (a.causal) kend = min(kend, qlast + shift + 1);
    if (a.window_right >= 0) kend = min(kend, qlast + shift + a.window_right + 1);
    int kbeg = 0;
    if (a.window_left >= 0) kbeg = max(0, q0 + shift - a.window_left);
    kbeg = (kbeg / kBc) * kBc;
    const int ntiles = kend > kbeg ? (kend - kbeg + kBc - 1) / kBc : 0;

    const int64_t q_rs = int64_t(a.H) * D, kv_rs = int64_t(a.Hk) * D;
    const __nv_bfloat16* qbase = q + (int64_t(b) * a.Lq * a.H + h) * D;
    const __nv_bfloat16* kbase = k + (int64_t(b) * a.Lk * a.Hk + hk) * D;
    const __nv_bfloat16* vbase = v + (int64_t(b) * a.Lk * a.Hk + hk) * D;

    load_tile<D, kBr, kWarps * 32>(sQ, qbase, q_rs, q0, a.Lq);
    cp_async_commit();
    if (ntiles > 0) {
        load_tile<D, kBc, kWarps * 32>(sK, kbase, kv_rs, kbeg, a.Lk);
        load_tile<D, kBc, kWarps * 32>(sV, vbase, kv_rs, kbeg, a.Lk);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    // Q fragments of this warp's 16 rows, all of D.
    uint32_t qf[D / 16][4];
    {
        const int r = warp * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
            ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], smem_u32(sQ + swz<D>(r, 2 * kk + (lane >> 4))));
    }

    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    const float scale_log2 = a.softmax_scale * 1.4426950408889634f;
    const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;

    for (int t = 0; t < ntiles; ++t) {
        const int stage = t & 1;
        const int k0 = kbeg + t * kBc;
        if (t + 1 < ntiles) {
            load_tile<D, kBc, kWarps * 32>(sK + (stage ^ 1) * kBc * D, kbase, kv_rs, k0 + kBc, a.Lk);
            load_tile<D, kBc, kWarps * 32>(sV + (stage ^ 1) * kBc * D, vbase, kv_rs, k0 + kBc, a.Lk);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const __nv_bfloat16* tK = sK + stage * kBc * D;
        const __nv_bfloat16* tV = sV + stage * kBc * D;

        // S = Q·Kᵀ for 16 rows × 64 keys.
        float s[kBc / 8][4];
#pragma unroll
        for (int n = 0; n < kBc / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int n2 = 0; n2 < kBc / 16; ++n2) {
            const int kr = n2 * 16 + (lane & 7) + 8 * (lane >> 4);
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                uint32_t b0, b1, b2, b3;
                ldmatrix_x4(b0, b1, b2, b3, smem_u32(tK + swz<D>(kr, 2 * kk + ((lane >> 3) & 1))));
                mma_bf16(s[2 * n2], qf[kk], b0, b1);
                mma_bf16(s[2 * n2 + 1], qf[kk], b2, b3);
            }
        }

        // Scale into the log2 domain; mask where this tile can hold invisible keys.
        const bool need_mask = a.causal || windowed || k0 + kBc > kl || a.rel_bias;
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float x = s[n][e] * scale_log2;
                if (need_mask) {
                    const int j = k0 + n * 8 + 2 * t4 + (e & 1);
                    const int i = (e < 2) ? row0 : row1;
                    if (!key_visible(i, j, kl, a.Lq, a.causal, a.window_left, a.window_right) || i >= a.Lq)
                        x = -INFINITY;
                    else if (a.rel_bias)  // T5's relative position bias, in the log2 domain too
                        x += a.rel_bias[int64_t(h) * (a.Lq + a.Lk - 1) + (j - i + a.Lq - 1)] * 1.4426950408889634f;
                }
                s[n][e] = x;
            }
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        // A row with no visible key so far keeps m = −inf; use 0 as the exponent base there so
        // that exp2(−inf − base) = 0 instead of NaN.
        const float base0 = mn0 == -INFINITY ? 0.f : mn0, base1 = mn1 == -INFINITY ? 0.f : mn1;
        const float c0 = exp2f(m0 - base0), c1 = exp2f(m1 - base1);
        m0 = mn0;
        m1 = mn1;
        float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
        for (int n = 0; n < kBc / 8; ++n) {
            s[n][0] = exp2f(s[n][0] - base0);
            s[n][1] = exp2f(s[n][1] - base0);
            s[n][2] = exp2f(s[n][2] - base1);
            s[n][3] = exp2f(s[n][3] - base1);
            ps0 += s[n][0] + s[n][1];
            ps1 += s[n][2] + s[n][3];
        }
        l0 = l0 * c0 + ps0;  // per-thread partial sums; reduced across the quad at the end
        l1 = l1 * c1 + ps1;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
            o[i][0] *= c0;
            o[i][1] *= c0;
            o[i][2] *= c1;
            o[i][3] *= c1;
        }

        // O += P·V: the S accumulators of two adjacent key tiles form one A fragment.
#pragma unroll
        for (int kk = 0; kk < kBc / 16; ++kk) {
            uint32_t pa[4];
            pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
            const int vr = kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                uint32_t b0, b1, b2, b3;
                ldmatrix_x4_trans(b0, b1, b2, b3, smem_u32(tV + swz<D>(vr, 2 * dp + (lane >> 4))));
                mma_bf16(o[2 * dp], pa, b0, b1);
                mma_bf16(o[2 * dp + 1], pa, b2, b3);
            }
        }
        __syncthreads();  // this stage is refilled by the next iteration's prefetch
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
    if (a.lse && t4 == 0) {  // ln Σ exp(scale·s) = m·ln 2 + ln l (m is in the log2 domain)
        float* lrow = a.lse + (int64_t(b) * a.H + h) * a.Lq;
        if (row0 < a.Lq) lrow[row0] = l0 > 0.f ? m0 * 0.6931471805599453f + logf(l0) : -INFINITY;
        if (row1 < a.Lq) lrow[row1] = l1 > 0.f ? m1 * 0.6931471805599453f + logf(l1) : -INFINITY;
    }
    const int64_t o_rs = int64_t(a.H) * D;
    float* obase = out + (int64_t(b) * a.Lq * a.H + h) * D;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
        const int col = i * 8 + 2 * t4;
        if (row0 < a.Lq)
            *reinterpret_cast<float2*>(obase + row0 * o_rs + col) = make_float2(o[i][0] * inv0, o[i][1] * inv0);
        if (row1 < a.Lq)
            *reinterpret_cast<float2*>(obase + row1 * o_rs + col) = make_float2(o[i][2] * inv1, o[i][3] * inv1);
    }
}

template <int D>
void launch_flash(const AttnArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, float* out,
                  cudaStream_t stream) {
    constexpr int smem = (kBr * D + 4 * kBc * D) * 2;
    static bool configured = false;  // per template instance; the attribute is per function
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(flash_fwd_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        configured = true;
    }
    dim3 grid(div_up(a.Lq, kBr), a.H, a.B);
    flash_fwd_kernel<D><<<grid, kWarps * 32, smem, stream>>>(a, q, k, v, out);
    CUDA_CHECK_LAUNCH();
}

constexpr int kSmThreads = 256;
__device__ __forceinline__ float block_reduce(float v, bool is_max, float* red) {
    for (int o = 16; o > 0; o >>= 1) {
        const float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < kSmThreads / 32; ++w) r = is_max ? fmaxf(r, red[w]) : r + red[w];
    __syncthreads();
    return r;
}

__global__ void attention_softmax_kernel(AttnArgs a, int b, int h, int row0, const float* __restrict__ S,
                                         __nv_bfloat16* __restrict__ P) {
    __shared__ float red[kSmThreads / 32];
    const int r = blockIdx.x, i = row0 + r;
    const int kl = a.k_lens ? max(0, min(a.k_lens[b], a.Lk)) : a.Lk;
    const float* srow = S + int64_t(r) * a.Lk;
    __nv_bfloat16* prow = P + int64_t(r) * a.Lk;
    const float* bias = a.rel_bias ? a.rel_bias + int64_t(h) * (a.Lq + a.Lk - 1) + (a.Lq - 1 - i) : nullptr;
    auto score = [&](int j) {
        if (!key_visible(i, j, kl, a.Lq, a.causal, a.window_left, a.window_right)) return -INFINITY;
        return srow[j] * a.softmax_scale + (bias ? bias[j] : 0.f);
    };
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < a.Lk; j += kSmThreads) mx = fmaxf(mx, score(j));
    mx = block_reduce(mx, true, red);
    const float base = mx == -INFINITY ? 0.f : mx;
    float sum = 0.f;
    for (int j = threadIdx.x; j < a.Lk; j += kSmThreads) sum += __expf(score(j) - base);
    sum = block_reduce(sum, false, red);
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    for (int j = threadIdx.x; j < a.Lk; j += kSmThreads) prow[j] = __float2bfloat16_rn(__expf(score(j) - base) * inv);
}

}  // namespace

void launch_attention_softmax(const AttnArgs& a, int b, int h, int row0, int rows, const float* S, __nv_bfloat16* P,
                              cudaStream_t stream) {
    if (rows == 0) return;
    attention_softmax_kernel<<<rows, kSmThreads, 0, stream>>>(a, b, h, row0, S, P);
    CUDA_CHECK_LAUNCH();
}

bool flash_attention_supported(int d, int dv) {
    return d == dv && (d == 64 || d == 128);
}

void launch_flash_attention(const AttnArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                            float* out, cudaStream_t stream) {
    if (a.Lq == 0 || a.B == 0) return;
    if (a.d == 128)
        launch_flash<128>(a, q, k, v, out, stream);
    else if (a.d == 64)
        launch_flash<64>(a, q, k, v, out, stream);
    else
        die("wanrt", "launch_flash_attention", "head dim not instantiated", __FILE__, __LINE__);
}

void launch_attention_generic(const AttnArgs& a, const float* q, const float* k, const float* v, const float* rel_bias,
                              float* out, cudaStream_t stream) {
    if (a.Lq == 0 || a.B == 0) return;
    dim3 grid(a.Lq, a.H, a.B);
    attention_generic_kernel<<<grid, kGenThreads, 0, stream>>>(a, q, k, v, rel_bias, out);
    CUDA_CHECK_LAUNCH();
}

namespace {

// One warp per (query, head) row: weights w_i = exp(lse_i − max lse), out = Σ w_i·o_i / Σ w_i.
__global__ void attention_combine_kernel(const __nv_bfloat16* __restrict__ o, const float* __restrict__ lse, int ns,
                                         int Lq, int H, int d, float* __restrict__ out,
                                         __nv_bfloat16* __restrict__ out_bf16) {
    const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;  // l·H + h
    if (row >= int64_t(Lq) * H) return;
    const int lane = threadIdx.x & 31;
    const int l = int(row / H), h = int(row % H);
    float m = -INFINITY;
    for (int i = 0; i < ns; ++i) m = fmaxf(m, lse[(int64_t(i) * H + h) * Lq + l]);
    float w[8], sum = 0.f;
    for (int i = 0; i < ns; ++i) sum += (w[i] = expf(lse[(int64_t(i) * H + h) * Lq + l] - m));
    for (int e = lane; e < d; e += 32) {
        float acc = 0.f;
        for (int i = 0; i < ns; ++i) acc += w[i] * __bfloat162float(o[(int64_t(i) * Lq * H + row) * d + e]);
        acc /= sum;
        out[row * d + e] = acc;
        out_bf16[row * d + e] = __float2bfloat16_rn(acc);
    }
}

}  // namespace

void launch_attention_combine(const __nv_bfloat16* o, const float* lse, int ns, int Lq, int H, int d, float* out,
                              __nv_bfloat16* out_bf16, cudaStream_t stream) {
    const int64_t rows = int64_t(Lq) * H;
    if (rows == 0) return;
    constexpr int kWarps = 8;
    attention_combine_kernel<<<unsigned((rows + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(o, lse, ns, Lq, H, d,
                                                                                               out, out_bf16);
    CUDA_CHECK_LAUNCH();
}

}  // namespace wanrt::cuda
