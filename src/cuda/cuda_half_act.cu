// Half-precision activations (cuda_half_act.h): unary, binary and upsample2x on f16/bf16 tensors,
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

template <class H>
__global__ void binary_half_kernel(int op, const H* __restrict__ a, Strided sa, const H* __restrict__ b, Strided sb,
                                   H* __restrict__ y, Strided sy, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t idx = i, oa = 0, ob = 0, oy = 0;  // one decomposition over y's shape; a, b broadcast
        for (int d = sy.ndim - 1; d >= 0; --d) {
            const int64_t c = idx % sy.shape[d];
            idx /= sy.shape[d];
            oa += c * sa.stride[d];
            ob += c * sb.stride[d];
            oy += c * sy.stride[d];
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

bool is_f16(DType t) { return t == DType::F16; }

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
                binary_half_kernel<<<blocks_for(n), kThreads, 0, be.stream()>>>(
                    int(a.op), a.a.data<__half>(), sa, a.b.data<__half>(), sb, a.y.data<__half>(), sy, n);
            else
                binary_half_kernel<<<blocks_for(n), kThreads, 0, be.stream()>>>(int(a.op), a.a.data<__nv_bfloat16>(), sa,
                                                                                 a.b.data<__nv_bfloat16>(), sb,
                                                                                 a.y.data<__nv_bfloat16>(), sy, n);
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
