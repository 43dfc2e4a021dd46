// Half-precision activations (cuda_half_act.h): unary, binary, upsample2x and channel_rms_norm on f16/bf16 tensors,
// and the in-place bias of a half conv output. Values are widened to f32 in registers, computed as
// the f32 kernels do, and rounded once; the CPU backend's half kernels (f32 on widened copies,
// rounded once) are their oracle in the op table.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_half_act.h"
#include "ops/ops.h"

namespace wanrt::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
    return int(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 65536 * 8)));
}

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class H>
__device__ __forceinline__ H narrow(float v);
template <>
__device__ __forceinline__ float narrow<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ __half narrow<__half>(float v) {
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

template <class H>
__global__ void unary_half_kernel(int act, const H* __restrict__ x, H* __restrict__ y, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = narrow<H>(activate(act, widen(x[i])));
}

// Index math in I: 32-bit where every offset fits, as the f32 binary kernel (the Wan2.2 decoder's
// DupUp3D shortcut adds over 6-D broadcast views run here with half activations).
template <class H, class I>
__global__ void binary_half_kernel(int op, const H* __restrict__ a, Strided sa, const H* __restrict__ b, Strided sb,
                                   H* __restrict__ y, Strided sy, I n) {
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
        I idx = i, oa = 0, ob = 0, oy = 0;  // one decomposition over y's shape; a, b broadcast
        for (int d = sy.ndim - 1; d >= 0; --d) {
            const I sz = I(sy.shape[d]);
            const I c = idx % sz;
            idx /= sz;
            oa += c * I(sa.stride[d]);
            ob += c * I(sb.stride[d]);
            oy += c * I(sy.stride[d]);
        }
        const float va = widen(a[oa]), vb = widen(b[ob]);
        y[oy] = narrow<H>(op == 0 ? va + vb : va * vb);
    }
}

// Same-shape contiguous a, b, y (the residual adds between convs), two elements per thread.
template <class H>
__global__ void add_half_contig_kernel(const H* __restrict__ a, const H* __restrict__ b, H* __restrict__ y, int64_t n,
                                       int op) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float va = widen(a[i]), vb = widen(b[i]);
        y[i] = narrow<H>(op == 0 ? va + vb : va * vb);
    }
}

// One thread per input pixel: its 2×2 output block (values are only moved: no rounding).
__global__ void upsample2x_u16_kernel(const uint16_t* __restrict__ x, uint16_t* __restrict__ y, int64_t W, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / W, c = i - r * W;
        const uint16_t v = x[i];
        uint16_t* o = y + (2 * r) * (2 * W) + 2 * c;
        o[0] = v, o[1] = v, o[2 * W] = v, o[2 * W + 1] = v;
    }
}

template <class H>
__global__ void half_bias_inplace_kernel(H* __restrict__ y, const float* __restrict__ bias, int64_t O, int64_t S) {
    for (int64_t o = blockIdx.y; o < O; o += gridDim.y) {
        const float b = bias[o];
        H* row = y + o * S;
        for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < S; i += int64_t(gridDim.x) * blockDim.x)
            row[i] = narrow<H>(widen(row[i]) + b);
    }
}

// Channels last: the bias index is the innermost one. O is small (3 … 256 in the VAEs), so 32-bit
// index math when the tensor allows it.
template <class H, class I>
__global__ void bias_last_kernel(H* __restrict__ y, const float* __restrict__ bias, I O, I n) {
    for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x)
        y[i] = narrow<H>(widen(y[i]) + bias[i % O]);
}

// One thread per output element of y [T, 2H, 2W, C], E the element's bit pattern.
template <class E, class I>
__global__ void upsample2x_last_kernel(const E* __restrict__ x, E* __restrict__ y, I H, I W, I C, I n) {
    for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
        const I c = i % C, px = i / C;
        const I ox = px % (2 * W), r = px / (2 * W);  // r = t·2H + oy
        const I oy = r % (2 * H), t = r / (2 * H);
        y[i] = x[((t * H + oy / 2) * W + ox / 2) * C + c];
    }
}

// channel_rms_norm on half x/y (gamma f32): as the f32 kernel, one thread per position s running
// over the C channels (stride S), the sum of squares and the output in f32, y rounded once.
template <class H>
__global__ void channel_rms_norm_half_kernel(const H* __restrict__ x, const float* __restrict__ g, int act,
                                             H* __restrict__ y, int64_t C, int64_t S) {
    for (int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; s < S; s += int64_t(gridDim.x) * blockDim.x) {
        float ss = 0.f;
        for (int64_t c = 0; c < C; ++c) {
            const float v = widen(x[c * S + s]);
            ss += v * v;
        }
        const float k = sqrtf(float(C)) / fmaxf(sqrtf(ss), 1e-12f);
        for (int64_t c = 0; c < C; ++c) y[c * S + s] = narrow<H>(activate(act, widen(x[c * S + s]) * k * g[c]));
    }
}

__device__ __forceinline__ float2 widen2(__half2 v) {
    return __half22float2(v);
}
__device__ __forceinline__ float2 widen2(__nv_bfloat162 v) {
    return __bfloat1622float2(v);
}
template <class H2>
__device__ __forceinline__ H2 narrow2(float a, float b);
template <>
__device__ __forceinline__ __half2 narrow2<__half2>(float a, float b) {
    return __floats2half2_rn(a, b);
}
template <>
__device__ __forceinline__ __nv_bfloat162 narrow2<__nv_bfloat162>(float a, float b) {
    return __floats2bfloat162_rn(a, b);
}

// The same with two adjacent positions per thread (S even, rows 4-byte aligned): one 4-byte load
// per channel instead of two 2-byte ones, so a warp reads 128 contiguous bytes per channel row as
// the f32 kernel does. Same arithmetic per position, so the same values as the scalar kernel.
template <class H2>
__global__ void channel_rms_norm_half2_kernel(const H2* __restrict__ x, const float* __restrict__ g, int act,
                                              H2* __restrict__ y, int64_t C, int64_t S2) {
    for (int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; s < S2; s += int64_t(gridDim.x) * blockDim.x) {
        float s0 = 0.f, s1 = 0.f;
        for (int64_t c = 0; c < C; ++c) {
            const float2 v = widen2(x[c * S2 + s]);
            s0 += v.x * v.x;
            s1 += v.y * v.y;
        }
        const float n = sqrtf(float(C));
        const float k0 = n / fmaxf(sqrtf(s0), 1e-12f), k1 = n / fmaxf(sqrtf(s1), 1e-12f);
        for (int64_t c = 0; c < C; ++c) {
            const float2 v = widen2(x[c * S2 + s]);
            y[c * S2 + s] = narrow2<H2>(activate(act, v.x * k0 * g[c]), activate(act, v.y * k1 * g[c]));
        }
    }
}

bool is_f16(DType t) { return t == DType::F16; }

template <class H, class H2>
void channel_rms_norm_half(const ChannelRmsNormArgs& a, int64_t C, int64_t S, cudaStream_t stream) {
    const void* x = a.x.raw();
    void* y = a.y.raw();
    // x and y are contiguous and 16-byte aligned (ops::contiguous, fresh output), so with S even
    // every channel row starts on a 4-byte boundary.
    if (S % 2 == 0 && reinterpret_cast<uintptr_t>(x) % 4 == 0 && reinterpret_cast<uintptr_t>(y) % 4 == 0)
        channel_rms_norm_half2_kernel<<<blocks_for(S / 2), kThreads, 0, stream>>>(
            static_cast<const H2*>(x), a.gamma.data<float>(), int(a.act), static_cast<H2*>(y), C, S / 2);
    else
        channel_rms_norm_half_kernel<<<blocks_for(S), kThreads, 0, stream>>>(
            static_cast<const H*>(x), a.gamma.data<float>(), int(a.act), static_cast<H*>(y), C, S);
    CUDA_CHECK_LAUNCH();
}

void channel_rms_norm_half_cuda(CudaBackend& be, const ChannelRmsNormArgs& a) {
    be.check_here(a.x, "channel_rms_norm");
    be.check_here(a.gamma, "channel_rms_norm");
    const int64_t C = a.x.size(0), S = C > 0 ? a.x.numel() / C : 0;
    if (S > 0 && C > 0) {
        if (is_f16(a.x.dtype()))
            channel_rms_norm_half<__half, __half2>(a, C, S, be.stream());
        else
            channel_rms_norm_half<__nv_bfloat16, __nv_bfloat162>(a, C, S, be.stream());
    }
    be.wrote(a.y);
}

void unary_half_cuda(CudaBackend& be, const UnaryArgs& a) {
    be.check_here(a.x, "unary");
    const int64_t n = a.x.numel();
    if (n > 0) {
        if (is_f16(a.x.dtype()))
            unary_half_kernel<<<blocks_for(n), kThreads, 0, be.stream()>>>(int(a.act), a.x.data<__half>(),
                                                                            a.y.data<__half>(), n);
        else
            unary_half_kernel<<<blocks_for(n), kThreads, 0, be.stream()>>>(int(a.act), a.x.data<__nv_bfloat16>(),
                                                                            a.y.data<__nv_bfloat16>(), n);
        CUDA_CHECK_LAUNCH();
    }
    be.wrote(a.y);
}

// 32-bit indices when n and every operand's largest offset fit below 2^31 (grid-stride steps
// included: blocks_for caps the grid), else 64-bit.
template <class H>
void binary_half(int op, const H* a, const Strided& sa, const H* b, const Strided& sb, H* y, const Strided& sy,
                 int64_t n, cudaStream_t stream) {
    auto span = [](const Strided& s) {
        int64_t m = 0;
        for (int d = 0; d < s.ndim; ++d) m += (s.shape[d] - 1) * (s.stride[d] < 0 ? -s.stride[d] : s.stride[d]);
        return m;
    };
    const int64_t lim = (int64_t(1) << 31) - int64_t(kThreads) * 65536 * 8;
    bool narrow = n < lim && span(sa) < lim && span(sb) < lim && span(sy) < lim;
    for (int d = 0; d < sy.ndim; ++d) narrow = narrow && sa.stride[d] >= 0 && sb.stride[d] >= 0 && sy.stride[d] >= 0;
    if (narrow)
        binary_half_kernel<<<blocks_for(n), kThreads, 0, stream>>>(op, a, sa, b, sb, y, sy, uint32_t(n));
    else
        binary_half_kernel<<<blocks_for(n), kThreads, 0, stream>>>(op, a, sa, b, sb, y, sy, n);
}

void binary_half_cuda(CudaBackend& be, const BinaryArgs& a) {
    be.check_here(a.a, "binary");
    be.check_here(a.b, "binary");
    const int64_t n = a.y.numel();
    if (n > 0) {
        const bool f16 = is_f16(a.y.dtype());
        const bool plain = a.a.shape() == a.y.shape() && a.b.shape() == a.y.shape() && a.a.is_contiguous() &&
                           a.b.is_contiguous() && a.y.is_contiguous();
        if (plain && f16)
            add_half_contig_kernel<<<blocks_for(n), kThreads, 0, be.stream()>>>(
                a.a.data<__half>(), a.b.data<__half>(), a.y.data<__half>(), n, int(a.op));
        else if (plain)
            add_half_contig_kernel<<<blocks_for(n), kThreads, 0, be.stream()>>>(
                a.a.data<__nv_bfloat16>(), a.b.data<__nv_bfloat16>(), a.y.data<__nv_bfloat16>(), n, int(a.op));
        else {
            const Shape& shape = a.y.shape();
            const Strided sa = broadcast_of(a.a, shape), sb = broadcast_of(a.b, shape), sy = broadcast_of(a.y, shape);
            if (f16)
                binary_half(int(a.op), a.a.data<__half>(), sa, a.b.data<__half>(), sb, a.y.data<__half>(), sy, n,
                            be.stream());
            else
                binary_half(int(a.op), a.a.data<__nv_bfloat16>(), sa, a.b.data<__nv_bfloat16>(), sb,
                            a.y.data<__nv_bfloat16>(), sy, n, be.stream());
        }
        CUDA_CHECK_LAUNCH();
    }
    be.wrote(a.y);
}

void upsample2x_half_cuda(CudaBackend& be, const Upsample2xArgs& a) {
    be.check_here(a.x, "upsample2x");
    if (a.channels_last) {
        launch_upsample2x_last(a.x.raw(), a.y.raw(), 2, a.x.size(0), a.x.size(1), a.x.size(2), a.x.size(3),
                               be.stream());
        be.wrote(a.y);
        return;
    }
    const int64_t n = a.x.numel();  // input pixels
    if (n > 0) {
        upsample2x_u16_kernel<<<blocks_for(n), kThreads, 0, be.stream()>>>(a.x.data<uint16_t>(), a.y.data<uint16_t>(),
                                                                            a.x.size(3), n);
        CUDA_CHECK_LAUNCH();
    }
    be.wrote(a.y);
}

const RegisterKernel<UnaryArgs, CudaBackend> reg_unary({{DType::F16}, {DType::BF16}}, &unary_half_cuda);
const RegisterKernel<BinaryArgs, CudaBackend> reg_binary({{DType::F16}, {DType::BF16}}, &binary_half_cuda);
const RegisterKernel<Upsample2xArgs, CudaBackend> reg_upsample2x({{DType::F16}, {DType::BF16}}, &upsample2x_half_cuda);
const RegisterKernel<ChannelRmsNormArgs, CudaBackend> reg_channel_rms_norm({{DType::F16}, {DType::BF16}},
                                                                           &channel_rms_norm_half_cuda);

}  // namespace

void launch_half_bias_inplace(void* y, DevType dt, const float* bias, int64_t O, int64_t S, cudaStream_t stream) {
    if (O == 0 || S == 0) return;
    const dim3 grid(unsigned(std::max<int64_t>(1, std::min<int64_t>((S + kThreads - 1) / kThreads,
                                                                      std::max<int64_t>(1, 16384 / O)))),
                    unsigned(std::min<int64_t>(O, 65535)));
    if (dt == DevType::F16)
        half_bias_inplace_kernel<<<grid, kThreads, 0, stream>>>(static_cast<__half*>(y), bias, O, S);
    else
        half_bias_inplace_kernel<<<grid, kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(y), bias, O, S);
    CUDA_CHECK_LAUNCH();
}

namespace {

template <class H>
void bias_last(H* y, const float* bias, int64_t S, int64_t O, cudaStream_t stream) {
    const int64_t n = S * O;
    if (n <= int64_t(INT32_MAX) - int64_t(kThreads) * 65536 * 8)  // i + stride stays below 2³¹
        bias_last_kernel<<<blocks_for(n), kThreads, 0, stream>>>(y, bias, uint32_t(O), uint32_t(n));
    else
        bias_last_kernel<<<blocks_for(n), kThreads, 0, stream>>>(y, bias, int64_t(O), n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_bias_last_inplace(void* y, DevType dt, const float* bias, int64_t S, int64_t O, cudaStream_t stream) {
    if (O == 0 || S == 0) return;
    if (dt == DevType::F16)
        bias_last(static_cast<__half*>(y), bias, S, O, stream);
    else if (dt == DevType::BF16)
        bias_last(static_cast<__nv_bfloat16*>(y), bias, S, O, stream);
    else
        bias_last(static_cast<float*>(y), bias, S, O, stream);
}

namespace {

template <class E>
void upsample2x_last(const E* x, E* y, int64_t T, int64_t H, int64_t W, int64_t C, cudaStream_t stream) {
    const int64_t n = T * 4 * H * W * C;
    if (n <= int64_t(INT32_MAX) - int64_t(kThreads) * 65536 * 8)
        upsample2x_last_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, uint32_t(H), uint32_t(W), uint32_t(C),
                                                                       uint32_t(n));
    else
        upsample2x_last_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, H, W, C, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_upsample2x_last(const void* x, void* y, int elem_bytes, int64_t T, int64_t H, int64_t W, int64_t C,
                            cudaStream_t stream) {
    if (T * H * W * C == 0) return;
    if (elem_bytes == 2)
        upsample2x_last(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), T, H, W, C, stream);
    else
        upsample2x_last(static_cast<const uint32_t*>(x), static_cast<uint32_t*>(y), T, H, W, C, stream);
}

}  // namespace wanrt::cuda
