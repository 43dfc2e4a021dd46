// Row normalisations (LayerNorm, RMSNorm, LayerNorm + modulation) and the gated residual, all in
// fp32. One warp per row: the DiT's rows are 1,536–5,120 floats, which a warp streams with float4
// loads; statistics take two passes over the row (mean, then centred squares) because the
// one-pass sum of squares loses digits when |mean| ≫ std, and the row stays in L1 between passes.
#include <algorithm>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// mode 0: layer_norm with optional affine; 1: rms_norm; 2: norm_modulate (b = batch index).
template <int kMode>
__global__ void row_norm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                const float* __restrict__ bias, const float* __restrict__ shift, int64_t shift_rs,
                                const float* __restrict__ scale, int64_t scale_rs, float eps, float* __restrict__ y,
                                int64_t rows, int64_t L, int64_t D) {
    const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    const float* xr = x + row * D;
    float* yr = y + row * D;
    const bool vec = (D % 4 == 0) && (reinterpret_cast<uintptr_t>(x) % 16 == 0);
    float mean = 0.f;
    if (kMode != 1) {
        float s = 0.f;
        if (vec)
            for (int64_t c = lane * 4; c < D; c += 128) {
                const float4 v = *reinterpret_cast<const float4*>(xr + c);
                s += (v.x + v.y) + (v.z + v.w);
            }
        else
            for (int64_t c = lane; c < D; c += 32) s += xr[c];
        mean = warp_sum(s) / float(D);
    }
    float ss = 0.f;
    if (vec)
        for (int64_t c = lane * 4; c < D; c += 128) {
            const float4 v = *reinterpret_cast<const float4*>(xr + c);
            const float a = v.x - mean, b = v.y - mean, cc = v.z - mean, d = v.w - mean;
            ss += (a * a + b * b) + (cc * cc + d * d);
        }
    else
        for (int64_t c = lane; c < D; c += 32) {
            const float a = xr[c] - mean;
            ss += a * a;
        }
    const float rstd = rsqrtf(warp_sum(ss) / float(D) + eps);
    const float* sh = nullptr;
    const float* sc = nullptr;
    if (kMode == 2) {
        const int64_t b = row / L;
        sh = shift + b * shift_rs;
        sc = scale + b * scale_rs;
    }
    for (int64_t c = lane; c < D; c += 32) {
        float v = (xr[c] - mean) * rstd;
        if (kMode == 0) {
            if (w) v *= w[c];
            if (bias) v += bias[c];
        } else if (kMode == 1) {
            v *= w[c];
        } else {
            v = v * (1.f + sc[c]) + sh[c];
        }
        yr[c] = v;
    }
}

// Fast path for D = 128·V (V float4 per lane) with 16-byte aligned rows and parameters: the row
// is read once into registers, statistics and output come from there.
template <int kMode, int V>
__global__ void row_norm_reg_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                    const float* __restrict__ bias, const float* __restrict__ shift, int64_t shift_rs,
                                    const float* __restrict__ scale, int64_t scale_rs, float eps, float* __restrict__ y,
                                    int64_t rows, int64_t L) {
    constexpr int D = 128 * V;
    const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    const float4* xr = reinterpret_cast<const float4*>(x + row * D);
    float4 v[V];
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = xr[lane + 32 * i];
    float mean = 0.f;
    if (kMode != 1) {
        float s = 0.f;
#pragma unroll
        for (int i = 0; i < V; ++i) s += (v[i].x + v[i].y) + (v[i].z + v[i].w);
        mean = warp_sum(s) / float(D);
    }
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < V; ++i) {
        const float a = v[i].x - mean, b = v[i].y - mean, c = v[i].z - mean, d = v[i].w - mean;
        ss += (a * a + b * b) + (c * c + d * d);
    }
    const float rstd = rsqrtf(warp_sum(ss) / float(D) + eps);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    const float4* b4 = reinterpret_cast<const float4*>(bias);
    const float4* sh4 = nullptr;
    const float4* sc4 = nullptr;
    if (kMode == 2) {
        const int64_t bb = row / L;
        sh4 = reinterpret_cast<const float4*>(shift + bb * shift_rs);
        sc4 = reinterpret_cast<const float4*>(scale + bb * scale_rs);
    }
    float4* yr = reinterpret_cast<float4*>(y + row * D);
#pragma unroll
    for (int i = 0; i < V; ++i) {
        const int c = lane + 32 * i;
        float4 o =
            make_float4((v[i].x - mean) * rstd, (v[i].y - mean) * rstd, (v[i].z - mean) * rstd, (v[i].w - mean) * rstd);
        if (kMode == 0) {
            if (w4) {
                const float4 g = w4[c];
                o.x *= g.x, o.y *= g.y, o.z *= g.z, o.w *= g.w;
            }
            if (b4) {
                const float4 g = b4[c];
                o.x += g.x, o.y += g.y, o.z += g.z, o.w += g.w;
            }
        } else if (kMode == 1) {
            const float4 g = w4[c];
            o.x *= g.x, o.y *= g.y, o.z *= g.z, o.w *= g.w;
        } else {
            const float4 a = sc4[c], s = sh4[c];
            o = make_float4(o.x * (1.f + a.x) + s.x, o.y * (1.f + a.y) + s.y, o.z * (1.f + a.z) + s.z,
                            o.w * (1.f + a.w) + s.w);
        }
        yr[c] = o;
    }
}

__global__ void gated_residual_kernel(float* __restrict__ x, const float* __restrict__ y,
                                      const float* __restrict__ gate, int64_t gate_rs, int64_t L, int64_t D,
                                      int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t c = i % D, b = i / (L * D);
        x[i] += y[i] * gate[b * gate_rs + c];
    }
}

__global__ void gated_residual_vec_kernel(float4* __restrict__ x, const float4* __restrict__ y,
                                          const float* __restrict__ gate, int64_t gate_rs, int64_t L, int64_t D,
                                          int64_t n4) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t e = i * 4, c = e % D, b = e / (L * D);
        const float* g = gate + b * gate_rs + c;
        float4 xv = x[i];
        const float4 yv = y[i];
        xv.x += yv.x * g[0];
        xv.y += yv.y * g[1];
        xv.z += yv.z * g[2];
        xv.w += yv.w * g[3];
        x[i] = xv;
    }
}

int row_blocks(int64_t rows) {
    return div_up(rows, kWarpsPerBlock);
}

bool aligned16(const void* p) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Launches the register-cached kernel when D and the pointers allow; false otherwise.
template <int kMode>
bool launch_reg(const float* x, const float* w, const float* b, const float* sh, int64_t sh_rs, const float* sc,
                int64_t sc_rs, float eps, float* y, int64_t rows, int64_t L, int64_t D, cudaStream_t stream) {
    if (D % 128 != 0 || !aligned16(x) || !aligned16(y) || !aligned16(w) || !aligned16(b) || !aligned16(sh) ||
        !aligned16(sc) || sh_rs % 4 != 0 || sc_rs % 4 != 0)
        return false;
    const dim3 grid(row_blocks(rows)), block(kWarpsPerBlock * 32);
#define WANRT_NORM_CASE(V)                                                                                         \
    case V:                                                                                                        \
        row_norm_reg_kernel<kMode, V><<<grid, block, 0, stream>>>(x, w, b, sh, sh_rs, sc, sc_rs, eps, y, rows, L); \
        break;
    switch (D / 128) {
        WANRT_NORM_CASE(1)
        WANRT_NORM_CASE(2)
        WANRT_NORM_CASE(4)
        WANRT_NORM_CASE(8)
        WANRT_NORM_CASE(12)
        WANRT_NORM_CASE(16)
        WANRT_NORM_CASE(24)
        WANRT_NORM_CASE(32)
        WANRT_NORM_CASE(40)
        default:
            return false;
    }
#undef WANRT_NORM_CASE
    CUDA_CHECK_LAUNCH();
    return true;
}

}  // namespace

void launch_layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t D,
                       cudaStream_t stream) {
    if (rows == 0) return;
    if (launch_reg<0>(x, w, b, nullptr, 0, nullptr, 0, eps, y, rows, 1, D, stream)) return;
    row_norm_kernel<0>
        <<<row_blocks(rows), kWarpsPerBlock * 32, 0, stream>>>(x, w, b, nullptr, 0, nullptr, 0, eps, y, rows, 1, D);
    CUDA_CHECK_LAUNCH();
}

void launch_rms_norm(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t D,
                     cudaStream_t stream) {
    if (rows == 0) return;
    if (launch_reg<1>(x, w, nullptr, nullptr, 0, nullptr, 0, eps, y, rows, 1, D, stream)) return;
    row_norm_kernel<1><<<row_blocks(rows), kWarpsPerBlock * 32, 0, stream>>>(x, w, nullptr, nullptr, 0, nullptr, 0, eps,
                                                                             y, rows, 1, D);
    CUDA_CHECK_LAUNCH();
}

void launch_norm_modulate(const float* x, const float* shift, int64_t shift_rs, const float* scale, int64_t scale_rs,
                          float eps, float* y, int64_t B, int64_t L, int64_t D, cudaStream_t stream) {
    const int64_t rows = B * L;
    if (rows == 0) return;
    if (launch_reg<2>(x, nullptr, nullptr, shift, shift_rs, scale, scale_rs, eps, y, rows, L, D, stream)) return;
    row_norm_kernel<2><<<row_blocks(rows), kWarpsPerBlock * 32, 0, stream>>>(x, nullptr, nullptr, shift, shift_rs,
                                                                             scale, scale_rs, eps, y, rows, L, D);
    CUDA_CHECK_LAUNCH();
}

void launch_gated_residual(float* x, const float* y, const float* gate, int64_t gate_rs, int64_t B, int64_t L,
                           int64_t D, cudaStream_t stream) {
    const int64_t n = B * L * D;
    if (n == 0) return;
    const int threads = 256;
    auto blocks = [&](int64_t m) { return int(std::min<int64_t>((m + threads - 1) / threads, 1 << 20)); };
    if (D % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0) {
        gated_residual_vec_kernel<<<blocks(n / 4), threads, 0, stream>>>(
            reinterpret_cast<float4*>(x), reinterpret_cast<const float4*>(y), gate, gate_rs, L, D, n / 4);
    } else {
        gated_residual_kernel<<<blocks(n), threads, 0, stream>>>(x, y, gate, gate_rs, L, D, n);
    }
    CUDA_CHECK_LAUNCH();
}

}  // namespace wanrt::cuda
