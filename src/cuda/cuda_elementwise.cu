// Elementwise kernels: strided copy with dtype conversion, f32→bf16 staging for the tensor-core
// ops, activations, broadcasting binary ops, patchify/unpatchify and embedding gathers. All use
// grid-stride loops over 64-bit element indices; none of them is on the critical path of the DiT
// except the conversions, which get a vectorised path.
#include <cuda_fp16.h>

#include <algorithm>

#include "core/error.h"
#include "cuda/cuda_common.h"

namespace wanrt::cuda {

namespace {

constexpr int kThreads = 256;

inline int grid_for(int64_t n) {
    const int64_t blocks = (n + kThreads - 1) / kThreads;
    return int(blocks < 65536 * 8 ? (blocks > 0 ? blocks : 1) : 65536 * 8);
}

__device__ __forceinline__ int64_t strided_offset(int64_t idx, const Strided& s) {
    int64_t off = 0;
    for (int d = s.ndim - 1; d >= 0; --d) {
        const int64_t sz = s.shape[d];
        off += (idx % sz) * s.stride[d];
        idx /= sz;
    }
    return off;
}

__device__ __forceinline__ double load_any(const void* p, DevType t, int64_t i) {
    switch (t) {
        case DevType::F32:
            return static_cast<const float*>(p)[i];
        case DevType::F16:
            return __half2float(static_cast<const __half*>(p)[i]);
        case DevType::BF16:
            return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
        case DevType::F64:
            return static_cast<const double*>(p)[i];
        case DevType::I32:
            return static_cast<const int32_t*>(p)[i];
        case DevType::I64:
            return double(static_cast<const int64_t*>(p)[i]);
        case DevType::U8:
            return static_cast<const uint8_t*>(p)[i];
    }
    return 0.0;
}
__device__ __forceinline__ void store_any(void* p, DevType t, int64_t i, double v) {
    switch (t) {
        case DevType::F32:
            static_cast<float*>(p)[i] = float(v);
            break;
        case DevType::F16:
            static_cast<__half*>(p)[i] = __float2half_rn(float(v));
            break;
        case DevType::BF16:
            static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(float(v));
            break;
        case DevType::F64:
            static_cast<double*>(p)[i] = v;
            break;
        case DevType::I32:
            static_cast<int32_t*>(p)[i] = int32_t(v);
            break;
        case DevType::I64:
            static_cast<int64_t*>(p)[i] = int64_t(v);
            break;
        case DevType::U8:
            static_cast<uint8_t*>(p)[i] = uint8_t(v);
            break;
    }
}

template <class T>
__global__ void copy_same_kernel(const T* __restrict__ src, Strided s, T* __restrict__ dst, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        dst[i] = src[strided_offset(i, s)];
}

__global__ void copy_convert_kernel(const void* __restrict__ src, DevType st, Strided s, void* __restrict__ dst,
                                    DevType dt, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        store_any(dst, dt, i, load_any(src, st, strided_offset(i, s)));
}

__global__ void copy_strided_kernel(const void* __restrict__ src, DevType st, Strided s, void* __restrict__ dst,
                                    DevType dt, Strided d, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t idx = i, os = 0, od = 0;
        for (int k = d.ndim - 1; k >= 0; --k) {
            const int64_t c = idx % d.shape[k];
            idx /= d.shape[k];
            os += c * s.stride[k];
            od += c * d.stride[k];
        }
        store_any(dst, dt, od, load_any(src, st, os));
    }
}

__global__ void fill_any_kernel(void* __restrict__ dst, DevType t, int64_t n, double v) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        store_any(dst, t, i, v);
}

__global__ void f32_to_bf16_vec_kernel(const float4* __restrict__ src, uint2* __restrict__ dst, int64_t n4,
                                       float scale) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
        const float4 v = src[i];
        __nv_bfloat162 lo = __floats2bfloat162_rn(v.x * scale, v.y * scale);
        __nv_bfloat162 hi = __floats2bfloat162_rn(v.z * scale, v.w * scale);
        uint2 o;
        o.x = *reinterpret_cast<uint32_t*>(&lo);
        o.y = *reinterpret_cast<uint32_t*>(&hi);
        dst[i] = o;
    }
}
__global__ void f32_to_bf16_kernel(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst, int64_t n,
                                   float scale) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i] * scale);
}

__global__ void bf16_to_f32_vec_kernel(const uint2* __restrict__ src, float4* __restrict__ dst, int64_t n4) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
        const uint2 v = src[i];
        dst[i] = make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u), __uint_as_float(v.y << 16),
                             __uint_as_float(v.y & 0xffff0000u));
    }
}

__global__ void fill_kernel(float* __restrict__ dst, int64_t n, float v) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        dst[i] = v;
}

__global__ void unary_kernel(int act, const float* __restrict__ x, float* __restrict__ y, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = activate(act, x[i]);
}

// Index math in I: 32-bit where every offset fits (64-bit division is several times slower on the
// GPU, and the Wan2.2 VAE's broadcast shortcut adds over 6-D views ran 2.75 s per 704p decode).
template <class I>
__global__ void binary_kernel(int op, const float* __restrict__ a, Strided sa, const float* __restrict__ b, Strided sb,
                              float* __restrict__ y, Strided sy, I n) {
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
        // Decompose once over the output shape; a and b carry broadcast (0) strides.
        I idx = i, oa = 0, ob = 0, oy = 0;
        for (int d = sy.ndim - 1; d >= 0; --d) {
            const I sz = I(sy.shape[d]);
            const I c = idx % sz;
            idx /= sz;
            oa += c * I(sa.stride[d]);
            ob += c * I(sb.stride[d]);
            oy += c * I(sy.stride[d]);
        }
        const float va = a[oa], vb = b[ob];
        y[oy] = op == 0 ? va + vb : va * vb;
    }
}

// Contiguous y with a and b each either contiguous over y's shape or broadcast with period
// `pa`/`pb` elements (a [.., D] row added to every row) — the DiT's residual adds. n4 = n / 4.
__global__ void binary_vec_kernel(int op, const float4* __restrict__ a, int64_t pa, const float4* __restrict__ b,
                                  int64_t pb, float4* __restrict__ y, int64_t n4) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
        const float4 va = a[pa ? i % pa : i], vb = b[pb ? i % pb : i];
        y[i] = op == 0 ? make_float4(va.x + vb.x, va.y + vb.y, va.z + vb.z, va.w + vb.w)
                       : make_float4(va.x * vb.x, va.y * vb.y, va.z * vb.z, va.w * vb.w);
    }
}

__global__ void patchify_kernel(const float* __restrict__ x, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph,
                                int pw, float* __restrict__ y, int64_t n) {
    const int64_t Hp = H / ph, Wp = W / pw, F = C * pt * ph * pw;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t tok = i / F, feat = i % F;
        const int64_t wi = tok % Wp, hi = (tok / Wp) % Hp, ti = tok / (Wp * Hp);
        const int r = int(feat % pw), q = int((feat / pw) % ph), p = int((feat / (pw * ph)) % pt);
        const int64_t c = feat / (int64_t(pw) * ph * pt);
        y[i] = x[((c * T + ti * pt + p) * H + hi * ph + q) * W + wi * pw + r];
    }
}

__global__ void unpatchify_kernel(const float* __restrict__ x, int64_t C, int64_t f, int64_t h, int64_t w, int pt,
                                  int ph, int pw, float* __restrict__ y, int64_t n) {
    const int64_t To = f * pt, Ho = h * ph, Wo = w * pw, F = int64_t(pt) * ph * pw * C;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t X = i % Wo, Y = (i / Wo) % Ho, Tt = (i / (Wo * Ho)) % To, c = i / (Wo * Ho * To);
        const int64_t tok = ((Tt / pt) * h + Y / ph) * w + X / pw;
        const int64_t feat = (((Tt % pt) * ph + Y % ph) * pw + X % pw) * C + c;
        y[i] = x[tok * F + feat];
    }
}

__global__ void embedding_kernel(const void* __restrict__ table, DevType tt, int64_t D, const int32_t* __restrict__ ids,
                                 float* __restrict__ y, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t row = ids[i / D], col = i % D;
        y[i] = float(load_any(table, tt, row * D + col));
    }
}

size_t type_size(DevType t) {
    switch (t) {
        case DevType::F32:
        case DevType::I32:
            return 4;
        case DevType::F16:
        case DevType::BF16:
            return 2;
        case DevType::F64:
        case DevType::I64:
            return 8;
        case DevType::U8:
            return 1;
    }
    return 0;
}

}  // namespace

void launch_copy(const void* src, DevType st, const Strided& s, void* dst, DevType dt, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    if (st == dt) {
        switch (type_size(st)) {
            case 1:
                copy_same_kernel<uint8_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<const uint8_t*>(src), s,
                                                                                static_cast<uint8_t*>(dst), n);
                break;
            case 2:
                copy_same_kernel<uint16_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<const uint16_t*>(src), s,
                                                                                 static_cast<uint16_t*>(dst), n);
                break;
            case 4:
                copy_same_kernel<uint32_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<const uint32_t*>(src), s,
                                                                                 static_cast<uint32_t*>(dst), n);
                break;
            default:
                copy_same_kernel<uint64_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<const uint64_t*>(src), s,
                                                                                 static_cast<uint64_t*>(dst), n);
                break;
        }
    } else {
        copy_convert_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, st, s, dst, dt, n);
    }
    CUDA_CHECK_LAUNCH();
}

void launch_f32_to_bf16(const float* src, __nv_bfloat16* dst, int64_t n, float scale, cudaStream_t stream) {
    if (n == 0) return;
    if (n % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 8 == 0) {
        f32_to_bf16_vec_kernel<<<grid_for(n / 4), kThreads, 0, stream>>>(reinterpret_cast<const float4*>(src),
                                                                         reinterpret_cast<uint2*>(dst), n / 4, scale);
    } else {
        f32_to_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, dst, n, scale);
    }
    CUDA_CHECK_LAUNCH();
}

void launch_fill_f32(float* dst, int64_t n, float v, cudaStream_t stream) {
    if (n == 0) return;
    fill_kernel<<<grid_for(n), kThreads, 0, stream>>>(dst, n, v);
    CUDA_CHECK_LAUNCH();
}

void launch_bf16_to_f32(const __nv_bfloat16* src, float* dst, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    if (n % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 8 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
        bf16_to_f32_vec_kernel<<<grid_for(n / 4), kThreads, 0, stream>>>(reinterpret_cast<const uint2*>(src),
                                                                         reinterpret_cast<float4*>(dst), n / 4);
        CUDA_CHECK_LAUNCH();
    } else {
        Strided s;
        s.ndim = 1;
        s.shape[0] = n;
        s.stride[0] = 1;
        launch_copy(src, DevType::BF16, s, dst, DevType::F32, n, stream);
    }
}

void launch_fill(void* dst, DevType t, int64_t n, double v, cudaStream_t stream) {
    if (n == 0) return;
    if (t == DevType::F32)
        fill_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<float*>(dst), n, float(v));
    else
        fill_any_kernel<<<grid_for(n), kThreads, 0, stream>>>(dst, t, n, v);
    CUDA_CHECK_LAUNCH();
}

namespace {
// Row copy: the outer dims (so/dout) give one source and one destination offset per row, computed
// once per row; the contiguous inner run is copied with 32-bit indices. Same dtype, or f32↔bf16.
template <class S, class D>
__device__ __forceinline__ D cvt(S v) {
    return D(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 cvt<float, __nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ float cvt<__nv_bfloat16, float>(__nv_bfloat16 v) {
    return __bfloat162float(v);
}

template <class S, class D>
__global__ void copy_rows_kernel(const S* __restrict__ src, Strided so, D* __restrict__ dst, Strided dout, int64_t rows,
                                 int inner) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        int64_t idx = r, os = 0, od = 0;
        for (int k = so.ndim - 1; k >= 0; --k) {
            const int64_t c = idx % so.shape[k];
            idx /= so.shape[k];
            os += c * so.stride[k];
            od += c * dout.stride[k];
        }
        const S* s = src + os;
        D* d = dst + od;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < inner; i += gridDim.x * blockDim.x) d[i] = cvt<S, D>(s[i]);
    }
}

template <class S, class D>
void rows(const void* src, const Strided& so, void* dst, const Strided& dout, int64_t nrows, int inner,
          cudaStream_t stream) {
    // Enough blocks to fill the card however the work splits: few long rows (a whole KV-cache frame
    // is one merged row of millions of elements) spread along x, many short rows along y.
    const int64_t ny = std::min<int64_t>(nrows, 65535);
    const dim3 grid(unsigned(std::min<int64_t>(div_up(inner, kThreads), std::max<int64_t>(64, 2048 / ny))), unsigned(ny));
    copy_rows_kernel<S, D><<<grid, kThreads, 0, stream>>>(static_cast<const S*>(src), so, static_cast<D*>(dst), dout,
                                                          nrows, inner);
}
}  // namespace

bool launch_copy_rows(const void* src, DevType st, const Strided& s, void* dst, DevType dt, const Strided& d,
                      cudaStream_t stream) {
    // s and d have the same shape; merge dims that are contiguous in both, drop size-1 dims.
    Strided ms, md;
    for (int k = 0; k < d.ndim; ++k) {
        if (d.shape[k] == 1) continue;
        if (ms.ndim > 0 && ms.stride[ms.ndim - 1] == s.stride[k] * d.shape[k] &&
            md.stride[md.ndim - 1] == d.stride[k] * d.shape[k]) {
            ms.shape[ms.ndim - 1] *= d.shape[k];
            md.shape[md.ndim - 1] *= d.shape[k];
            ms.stride[ms.ndim - 1] = s.stride[k];
            md.stride[md.ndim - 1] = d.stride[k];
            continue;
        }
        ms.shape[ms.ndim] = md.shape[md.ndim] = d.shape[k];
        ms.stride[ms.ndim++] = s.stride[k];
        md.stride[md.ndim++] = d.stride[k];
    }
    if (ms.ndim == 0) return false;
    const int last = ms.ndim - 1;
    if (ms.stride[last] != 1 || md.stride[last] != 1 || ms.shape[last] > (int64_t(1) << 30)) return false;
    const int inner = int(ms.shape[last]);
    Strided so = ms, dout = md;
    so.ndim = dout.ndim = last;
    int64_t nrows = 1;
    for (int k = 0; k < last; ++k) nrows *= ms.shape[k];
    if (last == 0 && st == DevType::F32 && dt == DevType::BF16) {  // one contiguous block: vectorised casts
        launch_f32_to_bf16(static_cast<const float*>(src), static_cast<__nv_bfloat16*>(dst), inner, 1.f, stream);
        return true;
    }
    if (last == 0 && st == DevType::BF16 && dt == DevType::F32) {
        launch_bf16_to_f32(static_cast<const __nv_bfloat16*>(src), static_cast<float*>(dst), inner, stream);
        return true;
    }
    if (st == dt && last <= 1 && (last == 0 || (ms.stride[0] >= inner && md.stride[0] >= inner))) {
        // Rows at one constant pitch (a frame slice, a concatenation along frames): the driver's
        // 2-D copy keeps far more bytes in flight than one scalar load per thread (4x faster here).
        const size_t es = size_t(type_size(st));
        const size_t spitch = last ? size_t(ms.stride[0]) * es : size_t(inner) * es;
        const size_t dpitch = last ? size_t(md.stride[0]) * es : size_t(inner) * es;
        CUDA_CHECK(cudaMemcpy2DAsync(dst, dpitch, src, spitch, size_t(inner) * es, size_t(nrows), cudaMemcpyDeviceToDevice,
                                     stream));
        return true;
    }
    if (st == dt) {
        switch (type_size(st)) {
            case 1: rows<uint8_t, uint8_t>(src, so, dst, dout, nrows, inner, stream); break;
            case 2: rows<uint16_t, uint16_t>(src, so, dst, dout, nrows, inner, stream); break;
            case 4: rows<uint32_t, uint32_t>(src, so, dst, dout, nrows, inner, stream); break;
            default: rows<uint64_t, uint64_t>(src, so, dst, dout, nrows, inner, stream); break;
        }
    } else if (st == DevType::F32 && dt == DevType::BF16) {
        rows<float, __nv_bfloat16>(src, so, dst, dout, nrows, inner, stream);
    } else if (st == DevType::BF16 && dt == DevType::F32) {
        rows<__nv_bfloat16, float>(src, so, dst, dout, nrows, inner, stream);
    } else {
        return false;
    }
    CUDA_CHECK_LAUNCH();
    return true;
}

void launch_copy_strided(const void* src, DevType st, const Strided& s, void* dst, DevType dt, const Strided& d,
                         int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    copy_strided_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, st, s, dst, dt, d, n);
    CUDA_CHECK_LAUNCH();
}

namespace {
// Same operation order as the CPU backend: fma(c3, x3, fma(c2, x2, fma(c1, x1, c0·x0))).
template <class T>
__device__ __forceinline__ float load_f(const T* p, int64_t i) {
    return float(p[i]);
}
template <>
__device__ __forceinline__ float load_f<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
    return __bfloat162float(p[i]);
}
template <>
__device__ __forceinline__ float load_f<__half>(const __half* p, int64_t i) {
    return __half2float(p[i]);
}
template <class T>
__device__ __forceinline__ T store_f(float v) {
    return T(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 store_f<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half store_f<__half>(float v) {
    return __float2half_rn(v);
}

// x0 and y of type T (f32, or a half type: the LoRA patch of a bf16 weight), x1..x3 f32; the sum in
// f32, rounded once on store.
template <class T>
__global__ void lincomb_kernel(const T* x0, const float* x1, const float* x2, const float* x3, float c0, float c1,
                               float c2, float c3, int n, T* y, int64_t count) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
        float v = c0 * load_f(x0, i);
        if (n > 1) v = fmaf(c1, x1[i], v);
        if (n > 2) v = fmaf(c2, x2[i], v);
        if (n > 3) v = fmaf(c3, x3[i], v);
        y[i] = store_f<T>(v);
    }
}
}  // namespace

void launch_lincomb(const void* x0, const float* x1, const float* x2, const float* x3, float c0, float c1, float c2,
                    float c3, int n, void* y, DevType t, int64_t count, cudaStream_t stream) {
    if (count == 0) return;
    switch (t) {
        case DevType::F32:
            lincomb_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const float*>(x0), x1, x2, x3, c0, c1,
                                                                     c2, c3, n, static_cast<float*>(y), count);
            break;
        case DevType::BF16:
            lincomb_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x0), x1, x2, x3,
                                                                     c0, c1, c2, c3, n, static_cast<__nv_bfloat16*>(y),
                                                                     count);
            break;
        case DevType::F16:
            lincomb_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const __half*>(x0), x1, x2, x3, c0, c1,
                                                                     c2, c3, n, static_cast<__half*>(y), count);
            break;
        default:
            throw Error("[cuda] lincomb: x0/y must be f32, bf16 or f16");
    }
    CUDA_CHECK_LAUNCH();
}

void launch_unary(int act, const float* x, float* y, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    unary_kernel<<<grid_for(n), kThreads, 0, stream>>>(act, x, y, n);
    CUDA_CHECK_LAUNCH();
}

namespace {
// Element period of x over y's contiguous order if x is contiguous on a suffix of y's dims and
// broadcast (stride 0) on the rest: 0 = full (no broadcast), -1 = not of that form.
int64_t broadcast_period(const Strided& x, const Strided& y) {
    int64_t inner = 1, total = 1;
    for (int k = 0; k < y.ndim; ++k) total *= y.shape[k];
    int d = y.ndim - 1;
    for (; d >= 0; --d) {  // the suffix on which x is dense
        if (y.shape[d] == 1) continue;
        if (x.stride[d] != inner) break;
        inner *= y.shape[d];
    }
    for (; d >= 0; --d)  // everything outside it must be broadcast
        if (y.shape[d] != 1 && x.stride[d] != 0) return -1;
    return inner == total ? 0 : inner;
}
bool y_contiguous(const Strided& y) {
    int64_t expect = 1;
    for (int d = y.ndim - 1; d >= 0; --d) {
        if (y.shape[d] != 1 && y.stride[d] != expect) return false;
        expect *= y.shape[d];
    }
    return true;
}
}  // namespace

void launch_binary(int op, const float* a, const Strided& sa, const float* b, const Strided& sb, float* y,
                   const Strided& sy, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int64_t pa = broadcast_period(sa, sy), pb = broadcast_period(sb, sy);
    auto al16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    if (pa >= 0 && pb >= 0 && pa % 4 == 0 && pb % 4 == 0 && n % 4 == 0 && y_contiguous(sy) && al16(a) && al16(b) &&
        al16(y)) {
        binary_vec_kernel<<<grid_for(n / 4), kThreads, 0, stream>>>(op, reinterpret_cast<const float4*>(a), pa / 4,
                                                                    reinterpret_cast<const float4*>(b), pb / 4,
                                                                    reinterpret_cast<float4*>(y), n / 4);
        CUDA_CHECK_LAUNCH();
        return;
    }
    // 32-bit indices when n and every operand's largest offset (Σ (shape − 1)·stride) fit below 2^31.
    auto span = [](const Strided& s) {
        int64_t m = 0;
        for (int d = 0; d < s.ndim; ++d) m += (s.shape[d] - 1) * (s.stride[d] < 0 ? -s.stride[d] : s.stride[d]);
        return m;
    };
    const int64_t lim = int64_t(1) << 31;
    bool narrow = n < lim && span(sa) < lim && span(sb) < lim && span(sy) < lim;
    for (int d = 0; d < sy.ndim; ++d) narrow = narrow && sa.stride[d] >= 0 && sb.stride[d] >= 0 && sy.stride[d] >= 0;
    if (narrow)
        binary_kernel<uint32_t><<<grid_for(n), kThreads, 0, stream>>>(op, a, sa, b, sb, y, sy, uint32_t(n));
    else
        binary_kernel<int64_t><<<grid_for(n), kThreads, 0, stream>>>(op, a, sa, b, sb, y, sy, n);
    CUDA_CHECK_LAUNCH();
}

void launch_patchify(const float* x, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph, int pw, float* y,
                     cudaStream_t stream) {
    const int64_t n = (T / pt) * (H / ph) * (W / pw) * C * pt * ph * pw;
    if (n == 0) return;
    patchify_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, C, T, H, W, pt, ph, pw, y, n);
    CUDA_CHECK_LAUNCH();
}

void launch_unpatchify(const float* x, int64_t C, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw, float* y,
                       cudaStream_t stream) {
    const int64_t n = C * f * pt * h * ph * w * pw;
    if (n == 0) return;
    unpatchify_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, C, f, h, w, pt, ph, pw, y, n);
    CUDA_CHECK_LAUNCH();
}

void launch_embedding(const void* table, DevType tt, int64_t V, int64_t D, const int32_t* ids, int64_t n, float* y,
                      cudaStream_t stream) {
    const int64_t total = n * D;
    if (total == 0) return;
    embedding_kernel<<<grid_for(total), kThreads, 0, stream>>>(table, tt, D, ids, y, total);
    CUDA_CHECK_LAUNCH();
}

}  // namespace wanrt::cuda

// ---- VAE helpers: direct conv fallback, channel bias, channel RMS norm, nearest upsampling ----
namespace wanrt::cuda {

namespace {

__global__ void conv3d_direct_kernel(Conv3dShape s, const float* __restrict__ x, const float* __restrict__ w,
                                     float* __restrict__ y, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t xo = i % s.Wo, yo = (i / s.Wo) % s.Ho, to = (i / (s.Wo * s.Ho)) % s.To,
                      o = i / (s.Wo * s.Ho * s.To);
        float acc = 0.f;
        for (int64_t c = 0; c < s.C; ++c)
            for (int64_t a = 0; a < s.kt; ++a) {
                const int64_t t = to * s.stride[0] - s.pad[0] + a;
                if (t < 0 || t >= s.T) continue;
                for (int64_t bq = 0; bq < s.kh; ++bq) {
                    const int64_t hh = yo * s.stride[1] - s.pad[2] + bq;
                    if (hh < 0 || hh >= s.H) continue;
                    for (int64_t r = 0; r < s.kw; ++r) {
                        const int64_t ww = xo * s.stride[2] - s.pad[4] + r;
                        if (ww < 0 || ww >= s.W) continue;
                        acc += x[((c * s.T + t) * s.H + hh) * s.W + ww] *
                               w[(((o * s.C + c) * s.kt + a) * s.kh + bq) * s.kw + r];
                    }
                }
            }
        y[i] = acc;
    }
}

// One channel per blockIdx.y (no per-element division), float4 when each channel's row is 16-byte aligned.
__global__ void channel_bias_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t S) {
    const float b = bias[blockIdx.y];
    float* row = y + int64_t(blockIdx.y) * S;
    const int64_t step = int64_t(gridDim.x) * blockDim.x, first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (S % 4 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0) {
        float4* r4 = reinterpret_cast<float4*>(row);
        for (int64_t i = first; i < S / 4; i += step) {
            float4 v = r4[i];
            v.x += b, v.y += b, v.z += b, v.w += b;
            r4[i] = v;
        }
    } else {
        for (int64_t i = first; i < S; i += step) row[i] += b;
    }
}

__global__ void channel_rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ g, int act,
                                        float* __restrict__ y, int64_t C, int64_t S) {
    for (int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; s < S; s += int64_t(gridDim.x) * blockDim.x) {
        float ss = 0.f;
        for (int64_t c = 0; c < C; ++c) {
            const float v = x[c * S + s];
            ss += v * v;
        }
        const float k = sqrtf(float(C)) / fmaxf(sqrtf(ss), 1e-12f);
        for (int64_t c = 0; c < C; ++c) y[c * S + s] = activate(act, x[c * S + s] * k * g[c]);
    }
}

// One thread per input pixel (row r of all planes·H rows, column c): its 2×2 output block.
// Index math in I (32-bit when the tensor allows: 64-bit division is slow on the GPU).
template <class I>
__global__ void upsample2x_kernel(const float* __restrict__ x, float* __restrict__ y, I W, I n) {
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
        const I r = i / W, c = i - r * W;
        const float v = x[i];
        float* o = y + (2 * r) * (2 * W) + 2 * c;
        o[0] = v, o[1] = v, o[2 * W] = v, o[2 * W + 1] = v;
    }
}

}  // namespace

void launch_conv3d_direct(const Conv3dShape& s, const float* x, const float* w, float* y, cudaStream_t stream) {
    const int64_t n = s.O * s.To * s.Ho * s.Wo;
    if (n == 0) return;
    conv3d_direct_kernel<<<grid_for(n), kThreads, 0, stream>>>(s, x, w, y, n);
    CUDA_CHECK_LAUNCH();
}

void launch_channel_bias(float* y, const float* bias, int64_t O, int64_t S, cudaStream_t stream) {
    const int64_t n = O * S;
    if (n == 0) return;
    WANRT_ASSERT(O <= 65535);  // one grid row per output channel
    const int64_t per_row = S % 4 == 0 ? S / 4 : S;
    const dim3 grid(unsigned(std::min<int64_t>(div_up(per_row, kThreads), std::max<int64_t>(1, 8192 / O))), unsigned(O));
    channel_bias_kernel<<<grid, kThreads, 0, stream>>>(y, bias, S);
    CUDA_CHECK_LAUNCH();
}

void launch_channel_rms_norm(const float* x, const float* gamma, int act, float* y, int64_t C, int64_t S,
                             cudaStream_t stream) {
    if (S == 0 || C == 0) return;
    channel_rms_norm_kernel<<<grid_for(S), kThreads, 0, stream>>>(x, gamma, act, y, C, S);
    CUDA_CHECK_LAUNCH();
}

void launch_upsample2x(const float* x, float* y, int64_t planes, int64_t H, int64_t W, cudaStream_t stream) {
    const int64_t n = planes * H * W;  // input pixels
    if (n == 0) return;
    if (4 * n < (int64_t(1) << 31))
        upsample2x_kernel<uint32_t><<<grid_for(n), kThreads, 0, stream>>>(x, y, uint32_t(W), uint32_t(n));
    else
        upsample2x_kernel<uint64_t><<<grid_for(n), kThreads, 0, stream>>>(x, y, uint64_t(W), uint64_t(n));
    CUDA_CHECK_LAUNCH();
}

}  // namespace wanrt::cuda
