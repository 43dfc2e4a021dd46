// Block-quantized weights (core/dtype.h: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, ggml's byte layouts) decoded
// on the device to bf16, for the linear's dequantize-then-GEMM path (cuda_linear_quant.cpp).
//
// One thread decodes one group of 32 consecutive elements of a row: a whole Q8_0/Q4_0 block, or
// sub-block j of a 256-element K-quant super-block (8 threads per super-block, each reading the
// super-block's header and its own 32–64 bytes). The reads are byte loads: block sizes (34, 18, 210
// bytes) leave the fields at any alignment. The 32 results leave as four 16-byte stores.
//
// The values are those of cpu::dequantize_rows (cpu/cpu_qmatmul.cpp), which the CPU's linear and the
// op table's oracle use: every type written as w = s·q + o per 16 elements (o = 0 where the type has
// no offset, o = −(dmin·m) for Q4_K/Q5_K), the products and sums in f32 with __fmul_rn/__fadd_rn so
// nvcc cannot contract them into an FMA (one rounding each, as the CPU code), then rounded once to
// bf16 with f32_to_bf16's rule. The f16 scales are decoded bit by bit as gguf_f16_to_f32 does.
#include "cuda/cuda_quant.h"

namespace wanrt::cuda {

namespace {

// f16 bits → f32, exact for every pattern (io/gguf_quants.cpp gguf_f16_to_f32): subnormals, −0,
// inf and NaN with its payload.
__device__ __forceinline__ float h2f(const uint8_t* p) {
    const uint32_t h = uint32_t(p[0]) | uint32_t(p[1]) << 8;
    const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {  // ±0 and subnormals: man · 2^-24, exact in f32
        const float f = __fmul_rn(float(man), 5.9604644775390625e-08f);
        return __uint_as_float(__float_as_uint(f) | sign);
    }
    const uint32_t bits = exp == 0x1f ? (sign | 0x7f800000u | man << 13) : (sign | (exp + 112) << 23 | man << 13);
    return __uint_as_float(bits);
}

// f32 → bf16 bits, round to nearest even; NaN stays NaN (core/dtype.h f32_to_bf16, bit for bit).
__device__ __forceinline__ uint32_t bf16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

// s·q + o, two roundings, never an FMA (the CPU's arithmetic).
__device__ __forceinline__ float deq(float s, int q, float o) {
    return __fadd_rn(__fmul_rn(s, float(q)), o);
}

// ggml get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes.
__device__ __forceinline__ void scale_min_k4(const uint8_t* s, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

enum Kind { kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K };

// Group g (32 elements) of the row starting at `row` → v[32].
template <int T>
__device__ __forceinline__ void decode_group(const uint8_t* row, int64_t g, float* v) {
    if constexpr (T == kQ8_0) {
        const uint8_t* b = row + g * 34;
        const float d = h2f(b);
        for (int i = 0; i < 32; ++i) v[i] = deq(d, int(int8_t(b[2 + i])), 0.f);
    } else if constexpr (T == kQ4_0) {
        const uint8_t* b = row + g * 18;
        const float d = h2f(b);
        for (int i = 0; i < 16; ++i) {
            const uint32_t q = b[2 + i];
            v[i] = deq(d, int(q & 0x0f) - 8, 0.f);
            v[i + 16] = deq(d, int(q >> 4) - 8, 0.f);
        }
    } else if constexpr (T == kQ4_K || T == kQ5_K) {
        constexpr bool five = T == kQ5_K;
        const int j = int(g % 8);
        const uint8_t* b = row + (g / 8) * (five ? 176 : 144);
        const float d = h2f(b), dmin = h2f(b + 2);
        int sc, m;
        scale_min_k4(b + 4, j, &sc, &m);
        const float s = __fmul_rn(d, float(sc)), o = -__fmul_rn(dmin, float(m));
        const uint8_t* qh = b + 16;  // Q5_K only: bit j of qh[l] is element l's 5th bit
        const uint8_t* qs = b + (five ? 48 : 16) + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l) {
            int q = (qs[l] >> shift) & 0x0f;
            if (five) q |= ((qh[l] >> j) & 1) << 4;
            v[l] = deq(s, q, o);
        }
    } else {  // Q6_K: ql[128], qh[64], scales[16] int8, d; group j = elements 32j … 32j + 31
        const int j = int(g % 8);
        const uint8_t* b = row + (g / 8) * 210;
        const int h = j / 4, k = j % 4;  // half (128 elements), quarter within it
        const uint8_t* ql = b + 64 * h + 32 * (k % 2);
        const uint8_t* qh = b + 128 + 32 * h;
        const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
        const float d = h2f(b + 208);
        const float s0 = __fmul_rn(d, float(scales[2 * j])), s1 = __fmul_rn(d, float(scales[2 * j + 1]));
        for (int l = 0; l < 32; ++l) {
            const int lo = (ql[l] >> (4 * (k / 2))) & 0x0f, hi = (qh[l] >> (2 * k)) & 3;
            v[l] = deq(l < 16 ? s0 : s1, (lo | hi << 4) - 32, 0.f);
        }
    }
}

template <int T>
__global__ void dequantize_bf16_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t groups_per_row,
                                       size_t row_bytes, uint4* __restrict__ out) {
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= rows * groups_per_row) return;
    const int64_t r = t / groups_per_row, g = t % groups_per_row;
    float v[32];
    decode_group<T>(w + size_t(r) * row_bytes, g, v);
    uint32_t packed[16];
    for (int i = 0; i < 16; ++i) packed[i] = bf16_bits(v[2 * i]) | bf16_bits(v[2 * i + 1]) << 16;
    uint4* o = out + t * 4;  // 32 bf16 = 64 bytes = 4 × uint4; group t starts at element 32·t
    for (int i = 0; i < 4; ++i)
        o[i] = make_uint4(packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]);
}

}  // namespace

bool dequantize_supported(DType t) {
    return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}

void launch_dequantize_bf16(DType t, const void* w, int64_t rows, int64_t K, __nv_bfloat16* out, cudaStream_t stream) {
    WANRT_ASSERT(dequantize_supported(t) && K % dtype_info(t).block_elems == 0 && rows >= 0);
    WANRT_ASSERT(reinterpret_cast<uintptr_t>(out) % 16 == 0);
    const int64_t groups = K / 32, n = rows * groups;
    if (n == 0) return;
    const size_t row_bytes = dtype_bytes(t, K);
    constexpr int kThreads = 256;
    const dim3 grid(unsigned(div_up(n, kThreads)));
    const auto* src = static_cast<const uint8_t*>(w);
    auto* dst = reinterpret_cast<uint4*>(out);
    switch (t) {
        case DType::Q8_0:
            dequantize_bf16_kernel<kQ8_0><<<grid, kThreads, 0, stream>>>(src, rows, groups, row_bytes, dst);
            break;
        case DType::Q4_0:
            dequantize_bf16_kernel<kQ4_0><<<grid, kThreads, 0, stream>>>(src, rows, groups, row_bytes, dst);
            break;
        case DType::Q4_K:
            dequantize_bf16_kernel<kQ4_K><<<grid, kThreads, 0, stream>>>(src, rows, groups, row_bytes, dst);
            break;
        case DType::Q5_K:
            dequantize_bf16_kernel<kQ5_K><<<grid, kThreads, 0, stream>>>(src, rows, groups, row_bytes, dst);
            break;
        default:
            dequantize_bf16_kernel<kQ6_K><<<grid, kThreads, 0, stream>>>(src, rows, groups, row_bytes, dst);
            break;
    }
    CUDA_CHECK_LAUNCH();
}

}  // namespace wanrt::cuda
