// KV-cache writes on the device: the adaptive-sink frame write (KvSinkWrite, core/backend.h). The
// sink decision and the slot index stay on the device, so a streaming step needs no host round trip
// per layer; the host's slot policy replays the recorded decisions later.
#include <cfloat>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

namespace {

template <class T>
__device__ __forceinline__ double as_double(T v) {
    return double(v);
}
template <>
__device__ __forceinline__ double as_double<__nv_bfloat16>(__nv_bfloat16 v) {
    return double(__bfloat162float(v));
}

constexpr int kMeanSplit = 16;  // token ranges per column: enough blocks for the card

// means[j·W + i] += Σ over one token range of vector j's column i, / S. Vectors j < 2(sink + 1):
// k̄_0 … k̄_{sink−1}, k̄_new, v̄_0 …, v̄_new (the layout of the float64 reference).
template <class C>
__global__ void sink_means_kernel(const float* __restrict__ k_new, const float* __restrict__ v_new,
                                  const C* __restrict__ k_cache, const C* __restrict__ v_cache, int64_t S, int64_t W,
                                  int64_t sink, double* __restrict__ means) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= W) return;
    const int64_t j = blockIdx.y, per = (S + kMeanSplit - 1) / kMeanSplit;
    const int64_t t0 = blockIdx.z * per, t1 = min(S, t0 + per);
    const bool is_v = j > sink, is_new = j == sink || j == 2 * sink + 1;
    const int64_t slot = is_v ? j - sink - 1 : j;
    double acc = 0;
    if (is_new) {
        const float* x = is_v ? v_new : k_new;
        for (int64_t t = t0; t < t1; ++t) acc += double(x[t * W + i]);
    } else {
        const C* x = (is_v ? v_cache : k_cache) + slot * S * W;
        for (int64_t t = t0; t < t1; ++t) acc += as_double(x[t * W + i]);
    }
    if (t1 > t0) atomicAdd(&means[j * W + i], acc / double(S));
}

// One block: dot products for the cosines, the decision and the slot.
__global__ void sink_decide_kernel(const double* __restrict__ means, int64_t W, int sink, int64_t fixed_slot,
                                   int64_t queue_front, int64_t ring_slot, double threshold, int32_t* decision) {
    // Per sink slot s: (k̄_s·k̄_new, ‖k̄_s‖², v̄_s·v̄_new, ‖v̄_s‖²), plus ‖k̄_new‖², ‖v̄_new‖².
    constexpr int kMaxSink = 16;
    __shared__ double part[32][4 * kMaxSink + 2];
    double acc[4 * kMaxSink + 2];
    const int nacc = 4 * sink + 2;
    for (int a = 0; a < nacc; ++a) acc[a] = 0;
    const double* kn = means + int64_t(sink) * W;
    const double* vn = means + int64_t(2 * sink + 1) * W;
    for (int64_t i = threadIdx.x; i < W; i += blockDim.x) {
        const double kni = kn[i], vni = vn[i];
        for (int s = 0; s < sink; ++s) {
            const double ks = means[int64_t(s) * W + i], vs = means[int64_t(sink + 1 + s) * W + i];
            acc[4 * s] += ks * kni;
            acc[4 * s + 1] += ks * ks;
            acc[4 * s + 2] += vs * vni;
            acc[4 * s + 3] += vs * vs;
        }
        acc[4 * sink] += kni * kni;
        acc[4 * sink + 1] += vni * vni;
    }
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int a = 0; a < nacc; ++a) {
        double v = acc[a];
        for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) part[warp][a] = v;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    for (int a = 0; a < nacc; ++a) {
        double v = 0;
        for (int w = 0; w < int(blockDim.x / 32); ++w) v += part[w][a];
        acc[a] = v;
    }
    const double nk = fmax(sqrt(acc[4 * sink]), 1e-8), nv = fmax(sqrt(acc[4 * sink + 1]), 1e-8);
    int d = -1;
    double lowest = 0;
    for (int s = 0; s < sink; ++s) {
        const double a = (acc[4 * s] / (fmax(sqrt(acc[4 * s + 1]), 1e-8) * nk) +
                          acc[4 * s + 2] / (fmax(sqrt(acc[4 * s + 3]), 1e-8) * nv)) / 2;
        if (s == 0 || a < lowest) lowest = a, d = s;  // first minimum, as torch.argmin
    }
    if (!(lowest < threshold)) d = -1;
    const int64_t slot = fixed_slot >= 0 ? fixed_slot : d >= 0 ? d : queue_front >= 0 ? queue_front : ring_slot;
    decision[0] = d;
    decision[1] = int32_t(slot);
}

template <class C>
__device__ __forceinline__ C from_float(float v) {
    return C(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// k_new, v_new [S·W] → tokens [slot·S, (slot + 1)·S) of the caches, slot read from the device.
template <class C>
__global__ void sink_store_kernel(const float* __restrict__ k_new, const float* __restrict__ v_new, C* __restrict__ k_cache,
                                  C* __restrict__ v_cache, int64_t n, const int32_t* __restrict__ decision) {
    const int64_t base = int64_t(decision[1]) * n;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        k_cache[base + i] = from_float<C>(k_new[i]);
        v_cache[base + i] = from_float<C>(v_new[i]);
    }
}

template <class C>
void sink_write(const float* k_new, const float* v_new, void* k_cache, void* v_cache, int64_t S, int64_t W, int64_t sink,
                int64_t fixed_slot, int64_t queue_front, int64_t ring_slot, double threshold, double* means,
                int32_t* decision, cudaStream_t stream) {
    CUDA_CHECK(cudaMemsetAsync(means, 0, size_t(2 * (sink + 1) * W) * sizeof(double), stream));
    const dim3 grid(unsigned(div_up(W, 256)), unsigned(2 * (sink + 1)), kMeanSplit);
    sink_means_kernel<C><<<grid, 256, 0, stream>>>(k_new, v_new, static_cast<const C*>(k_cache),
                                                   static_cast<const C*>(v_cache), S, W, sink, means);
    CUDA_CHECK_LAUNCH();
    sink_decide_kernel<<<1, 256, 0, stream>>>(means, W, int(sink), fixed_slot, queue_front, ring_slot, threshold, decision);
    CUDA_CHECK_LAUNCH();
    const int64_t n = S * W;
    sink_store_kernel<C><<<unsigned(std::min<int64_t>(div_up(n, 256), 2048)), 256, 0, stream>>>(
        k_new, v_new, static_cast<C*>(k_cache), static_cast<C*>(v_cache), n, decision);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_kv_sink_write(const float* k_new, const float* v_new, void* k_cache, void* v_cache, DevType cache_type,
                          int64_t S, int64_t W, int64_t sink, int64_t fixed_slot, int64_t queue_front,
                          int64_t ring_slot, double threshold, double* means, int32_t* decision, cudaStream_t stream) {
    if (cache_type == DevType::BF16)
        sink_write<__nv_bfloat16>(k_new, v_new, k_cache, v_cache, S, W, sink, fixed_slot, queue_front, ring_slot, threshold,
                                  means, decision, stream);
    else
        sink_write<float>(k_new, v_new, k_cache, v_cache, S, W, sink, fixed_slot, queue_front, ring_slot, threshold, means,
                          decision, stream);
}

}  // namespace wanrt::cuda
