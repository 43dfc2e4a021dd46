// RoPE on [B, L, H, d] with interleaved pairs (x[2k], x[2k+1]) and a precomputed f32 table
// [P, d/2, 2] of (cos, sin). Pair k belongs to the frame axis for k < d/2 − 2⌊d/6⌋, then height,
// then width (⌊d/6⌋ pairs each); the frame position is offset by the grid's frame_offset. Tokens
// past f·h·w of their sample are copied unchanged.
#include <algorithm>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

namespace {

constexpr int kMaxGrids = 32;  // grids travel as a kernel parameter; larger batches are split
struct RopeGrids {
    RopeGridDev g[kMaxGrids];
};

// One warp per (token, head) row: the token's grid position is computed once per row, and the
// lanes walk the row's pairs with coalesced float2 accesses.
constexpr int kRowsPerBlock = 8;
__global__ void rope_kernel(const float2* __restrict__ x, RopeGrids grids, const float2* __restrict__ table,
                            float2* __restrict__ y, int64_t rows, int L, int H, int half, int c0, int c1) {
    const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / 32;
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    const int64_t tok = row / H;
    const int l = int(tok % L), b = int(tok / L);
    const float2* xr = x + row * half;
    float2* yr = y + row * half;
    const RopeGridDev g = grids.g[b];
    if (l >= g.f * g.h * g.w) {
        for (int k = lane; k < half; k += 32) yr[k] = xr[k];
        return;
    }
    const int hw = int(g.h * g.w);
    const int pf = l / hw + int(g.frame_offset), ph = (l / int(g.w)) % int(g.h), pw = l % int(g.w);
    for (int k = lane; k < half; k += 32) {
        const int pos = k < c0 ? pf : (k < c0 + c1 ? ph : pw);
        const float2 cs = table[int64_t(pos) * half + k];
        const float2 v = xr[k];
        yr[k] = make_float2(v.x * cs.x - v.y * cs.y, v.x * cs.y + v.y * cs.x);
    }
}

// rope(rms_norm(x)) with the norm over the token's whole row (H·d values = `pairs` float2): one warp
// per token; the row is read twice (statistics, then output; the second read hits L2).
__global__ void rms_norm_rope_kernel(const float2* __restrict__ x, const float2* __restrict__ w, RopeGrids grids,
                                     const float2* __restrict__ table, float2* __restrict__ y, int64_t rows, int L,
                                     int pairs, int half, int c0, int c1, float eps, float inv_n) {
    const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + threadIdx.x / 32;
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    const float2* xr = x + row * pairs;
    float2* yr = y + row * pairs;
    float ss = 0.f;
    for (int k = lane; k < pairs; k += 32) {
        const float2 v = xr[k];
        ss += v.x * v.x + v.y * v.y;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float rs = rsqrtf(ss * inv_n + eps);
    const int l = int(row % L), b = int(row / L);
    const RopeGridDev g = grids.g[b];
    const bool inside = l < g.f * g.h * g.w;
    const int hw = int(g.h * g.w);
    const int pf = inside ? l / hw + int(g.frame_offset) : 0, ph = inside ? (l / int(g.w)) % int(g.h) : 0,
              pw = inside ? l % int(g.w) : 0;
    for (int k = lane; k < pairs; k += 32) {
        const float2 v = xr[k], wv = w[k];
        const float re = v.x * rs * wv.x, im = v.y * rs * wv.y;  // rms_norm's (x·r)·w
        if (!inside) {
            yr[k] = make_float2(re, im);
            continue;
        }
        const int j = k % half;  // pair within the head
        const int pos = j < c0 ? pf : (j < c0 + c1 ? ph : pw);
        const float2 cs = table[int64_t(pos) * half + j];
        yr[k] = make_float2(re * cs.x - im * cs.y, re * cs.y + im * cs.x);
    }
}

}  // namespace

void launch_rms_norm_rope(const float* x, const float* w, float eps, const RopeGridDev* grids, const float* table,
                          float* y, int64_t B, int64_t L, int64_t H, int64_t d, cudaStream_t stream) {
    const int64_t half = d / 2, c1 = d / 6, c0 = half - 2 * c1, pairs = H * half;
    for (int64_t b0 = 0; b0 < B; b0 += kMaxGrids) {
        const int64_t nb = std::min<int64_t>(kMaxGrids, B - b0);
        RopeGrids gs{};
        for (int64_t b = 0; b < nb; ++b) gs.g[b] = grids[b0 + b];
        const int64_t rows = nb * L;
        if (rows == 0 || pairs == 0) continue;
        const int blocks = int((rows + kRowsPerBlock - 1) / kRowsPerBlock);
        rms_norm_rope_kernel<<<blocks, kRowsPerBlock * 32, 0, stream>>>(
            reinterpret_cast<const float2*>(x) + b0 * L * pairs, reinterpret_cast<const float2*>(w), gs,
            reinterpret_cast<const float2*>(table), reinterpret_cast<float2*>(y) + b0 * L * pairs, rows, int(L),
            int(pairs), int(half), int(c0), int(c1), eps, 1.f / float(2 * pairs));
        CUDA_CHECK_LAUNCH();
    }
}

void launch_rope(const float* x, const RopeGridDev* grids, const float* table, int64_t P, float* y, int64_t B,
                 int64_t L, int64_t H, int64_t d, cudaStream_t stream) {
    const int64_t half = d / 2, c1 = d / 6, c0 = half - 2 * c1;
    const int64_t per_sample = L * H * half;  // pairs
    for (int64_t b0 = 0; b0 < B; b0 += kMaxGrids) {
        const int64_t nb = std::min<int64_t>(kMaxGrids, B - b0);
        RopeGrids gs{};
        for (int64_t b = 0; b < nb; ++b) gs.g[b] = grids[b0 + b];
        const int64_t rows = nb * L * H;
        if (rows == 0 || half == 0) continue;
        const int blocks = int((rows + kRowsPerBlock - 1) / kRowsPerBlock);
        rope_kernel<<<blocks, kRowsPerBlock * 32, 0, stream>>>(
            reinterpret_cast<const float2*>(x) + b0 * per_sample, gs, reinterpret_cast<const float2*>(table),
            reinterpret_cast<float2*>(y) + b0 * per_sample, rows, int(L), int(H), int(half), int(c0), int(c1));
        CUDA_CHECK_LAUNCH();
    }
    (void)P;
}

}  // namespace wanrt::cuda
