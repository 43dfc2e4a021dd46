// Device helpers of the bf16 tensor-core attention kernels (cuda_attention.cu forward,
// cuda_attention_bwd.cu backward): cp.async tile loads into XOR-swizzled shared tiles, ldmatrix,
// mma.sync m16n8k16 with fp32 accumulators, and the attention masks. Include from .cu files only.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace wanrt::cuda {

// Masking (AttentionParams): with kl = k_lens[b] (or Lk) and c = i + kl − Lq, query i sees key j
// when j < kl, and (causal) j ≤ c, and (window) c − left ≤ j ≤ c + right.
__device__ __forceinline__ bool key_visible(int i, int j, int kl, int Lq, bool causal, int wl, int wr) {
    if (j >= kl) return false;
    const int c = i + kl - Lq;
    if (causal && j > c) return false;
    if (wl >= 0 && j < c - wl) return false;
    if (wr >= 0 && j > c + wr) return false;
    return true;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                                  uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
// D = A·B + D, m16n8k16, bf16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo (lower address)
    return *reinterpret_cast<uint32_t*>(&v);
}

// Element offset of (row, 8-wide chunk) in a swizzled tile with D columns.
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
    return row * D + ((chunk ^ (row & 7)) << 3);
}

// Copies rows [row0, row0 + R) of a [*, stride]-strided bf16 matrix into a swizzled tile with the
// block's Threads threads; rows ≥ limit are zero-filled.
template <int D, int R, int Threads>
__device__ __forceinline__ void load_tile(__nv_bfloat16* tile, const __nv_bfloat16* base, int64_t row_stride, int row0,
                                          int limit) {
    constexpr int kChunks = D / 8;
    for (int idx = threadIdx.x; idx < R * kChunks; idx += Threads) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool ok = row0 + r < limit;
        const __nv_bfloat16* src = ok ? base + int64_t(row0 + r) * row_stride + c * 8 : base;
        cp_async16(smem_u32(tile + swz<D>(r, c)), src, ok ? 16 : 0);
    }
}

// A operand (16 rows × 16 of the k dim, chunk pair 2·kk) of rows r0 … r0+15 of a swizzled tile, as
// mma_bf16 takes it.
template <int D>
__device__ __forceinline__ void load_a_frag(uint32_t (&a)[4], const __nv_bfloat16* tile, int r0, int kk, int lane) {
    const int r = r0 + (lane & 7) + 8 * ((lane >> 3) & 1);
    ldmatrix_x4(a[0], a[1], a[2], a[3], smem_u32(tile + swz<D>(r, 2 * kk + (lane >> 4))));
}

}  // namespace wanrt::cuda
