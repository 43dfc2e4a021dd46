// CudaBackend itself, for the op files: each cuda_<family>_ops.cpp defines its ops as free
// functions void fn(CudaBackend&, const XxxArgs&) and registers them with
// RegisterKernel<XxxArgs, CudaBackend> (core/op_registry.h); the device code stays in
// cuda_<family>.cu. A new op needs only its own files: its kernel and launcher in a .cu (declared
// in a header of its own, or in the op file), its op function and registration in a .cpp. The .cu
// files are compiled by nvcc as C++17 and cannot include ops/ops.h (C++20; nvcc 13's C++20 mode
// crashes on cuda_gemm.cu), hence the split. Public contract: cuda/cuda_backend.h. Not included
// outside src/cuda/.
//
// What a kernel must do besides launching: check_here / need_f32 its inputs, run on stream(), and
// call wrote(t) for EVERY tensor it writes (in-place ones included). The write versions key the
// bf16 weight cache and the staged-activation cache; a missed wrote() serves stale bf16 copies.
#pragma once

#include <atomic>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/backend.h"
#include "cuda/cuda_common.h"

namespace wanrt {

struct RopeGrid;  // ops/ops.h

namespace cuda {

class DeviceAllocator;  // cuda_backend.cpp

inline DevType dev_type(DType t) {
    return static_cast<DevType>(static_cast<int>(t));
}
// Tensor shape/strides as a Strided, adjacent dims merged where the layout allows.
Strided strided_of(const Tensor& t);
// Shape/strides of t right-aligned to `shape` with broadcast dims given stride 0.
Strided broadcast_of(const Tensor& t, const Shape& shape);
// The per-sample RoPE grids for launch_rope, each checked against the table's positions
// (cuda_rope_ops.cpp; rope, rms_norm_rope and rope_backward).
std::vector<RopeGridDev> rope_grids(const std::vector<RopeGrid>& grids, const Tensor& table);

}  // namespace cuda

class CudaBackend final : public Backend {
public:
    static constexpr const char* kKind = "cuda";

    explicit CudaBackend(int device);
    ~CudaBackend() override;

    std::string name() const override;
    const char* kind() const override { return kKind; }
    std::string description() const override;
    bool host_visible() const override { return false; }

    std::shared_ptr<Buffer> alloc(size_t bytes) override;
    void upload(const Tensor& dst, const void* src) override;
    void download(const Tensor& src, void* dst) override;
    void synchronize() override;
    MemoryStats memory_stats() const override;
    void reset_peak_memory() override;
    void release_cached_memory() override;
    void set_matmul_precision(MatmulPrecision p) override {
        precision_ = p;
        gemm_->set_f32_math(p == MatmulPrecision::Highest ? cuda::GemmEngine::F32Math::Exact
                            : p == MatmulPrecision::High  ? cuda::GemmEngine::F32Math::Tf32
                                                          : cuda::GemmEngine::F32Math::Bf16);
    }
    MatmulPrecision matmul_precision() const override { return precision_; }
    // Test mode: buffers NaN-filled (all-ones bytes) between guard bytes that are read back and
    // checked when the buffer is freed (a stream synchronisation per free: tests only).
    void set_alloc_check(bool on) override { alloc_check_ = on; }
    int64_t guard_failures() const override { return guard_failures_->load(); }

    // Linear weights live as bf16 on the device: an f32 checkpoint is converted once at load
    // time instead of keeping both an f32 and a bf16 copy resident. Block-quantized weights (a
    // GGUF's Q8_0 … Q6_K) stay as their bytes: linear decodes them per call (cuda_linear_quant.cpp).
    DType matrix_dtype(DType stored) const override { return dtype_is_block(stored) ? stored : DType::BF16; }
    bool holds_block_types() const override { return true; }
    bool prefers_channels_last_conv() const override { return true; }  // NDHWC half convs ≈ 2× (docs/perf.md)

    // Weight streaming (core/backend.h): the Copy queue is a second stream (made on first use),
    // events are cudaEvents without timing, pinned memory comes from cudaHostAlloc. synchronize()
    // waits for both streams.
    std::unique_ptr<Event> new_event() override;
    void record(Queue q, Event& e) override;
    void wait(Queue q, Event& e) override;
    std::shared_ptr<Buffer> alloc_pinned(size_t bytes) override;
    void download_async(const Tensor& src, void* dst) override;
    void upload_async(const Tensor& dst, const void* src) override;

    // NVTX range "wanrt::<op>" around each dispatched op (Nsight Systems).
    void trace_push(const char* name) override;
    void trace_pop() override;

    // ---- for the kernel files ----
    cudaStream_t stream() const { return stream_; }
    const cudaDeviceProp& props() const { return props_; }
    cuda::GemmEngine& gemm() { return *gemm_; }
    cuda::CudnnSdpa& sdpa() { return *sdpa_; }
    cuda::CudnnConv3d& conv() { return *conv_; }

    // src → dst, same shape, any strides and dtypes (the copy op's kernel; also used inside other
    // kernels, which must not go through dispatch again).
    void copy_tensor(const Tensor& src, const Tensor& dst);
    // A new contiguous copy of t.
    Tensor contiguous_copy(const Tensor& t);
    // [B, D] with unit inner stride (row stride free), copied if needed.
    Tensor rows_unit_stride(const Tensor& t);

    // Write versions per Buffer object: a new value whenever the contents may have changed (upload,
    // fill or op output), the key of the caches derived from a buffer's contents. Every write to a
    // tensor of this backend comes through here.
    void wrote(const Tensor& t) { versions_[t.buffer().get()] = ++version_counter_; }
    uint64_t version_of(const Tensor& t) const;

    void check_here(const Tensor& t, const char* op) const;
    void need_f32(const Tensor& t, const char* op) const;
    [[noreturn]] void unsupported_dtype(const char* op, DType t) const;
    // True the first time it is called with `what` (a fallback's one-line notice).
    bool first_warning(const std::string& what) { return warned_.insert(what).second; }

    // Cached bf16 copy of a weight; bf16 contiguous weights are used in place.
    const __nv_bfloat16* weight_bf16(const Tensor& w);
    // bf16 staging of an f32 activation; the last one is kept so that q, k and v projections of
    // the same x convert it once.
    const __nv_bfloat16* staged_bf16(const Tensor& x);
    // out (f32) was just written with exactly the bf16 values in `bf16`: keep them as the staged
    // bf16 copy, so the linear that follows skips its conversion. Calls wrote(out).
    void keep_staged(const Tensor& out, std::shared_ptr<Buffer> bf16);
    // The last activation quantized to FP8 (cuda_linear_fp8_ops.cpp), kept like staged_bf16 so that
    // the q, k and v projections of one x quantize it once: codes, then the f32 scale at scale_offset.
    struct Fp8Staged {
        std::weak_ptr<Buffer> src;
        size_t offset = 0;
        int64_t numel = 0;
        uint64_t version = 0;
        size_t scale_offset = 0;
        std::shared_ptr<Buffer> q;
    };
    Fp8Staged& fp8_staged() { return fp8_staged_; }
    // k_lens on the device (null when empty), re-uploaded only when they change.
    const int32_t* device_klens(const std::vector<int32_t>& k_lens, int B);
    // Key ranges for one unmasked attention of one sample (see cuda_backend.cpp).
    int split_kv_count(int Lq, int H, int Lk) const;
    void disable_split_kv() { split_kv_ = 1; }

private:
    static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

    struct WeightEntry {
        std::weak_ptr<Buffer> src;
        uint64_t version = 0;
        std::shared_ptr<Buffer> bf16;
    };
    struct Staged {
        std::weak_ptr<Buffer> src;
        size_t offset = 0;
        int64_t numel = 0;
        uint64_t version = 0;
        std::shared_ptr<Buffer> bf16;
    };

    int device_;
    cudaDeviceProp props_{};
    int split_kv_ = 0;  // 0 = by rule; see split_kv_count
    cudaStream_t stream_ = nullptr;
    cudaStream_t copy_stream_ = nullptr;  // the Copy queue (weight streaming), made on first use
    cudaStream_t copy_stream();
    std::shared_ptr<cuda::DeviceAllocator> alloc_;
    bool alloc_check_ = false;
    MatmulPrecision precision_ = MatmulPrecision::Highest;
    std::shared_ptr<std::atomic<int64_t>> guard_failures_ = std::make_shared<std::atomic<int64_t>>(0);
    std::shared_ptr<Buffer> workspace_;
    std::unique_ptr<cuda::GemmEngine> gemm_;
    std::unique_ptr<cuda::CudnnSdpa> sdpa_;
    std::unique_ptr<cuda::CudnnConv3d> conv_;
    std::set<std::string> warned_;
    std::map<std::tuple<const Buffer*, size_t, Shape, Shape>, WeightEntry> weights_;
    Staged staged_;
    Fp8Staged fp8_staged_;
    std::vector<int32_t> klens_host_;
    std::unordered_map<const Buffer*, uint64_t> versions_;
    uint64_t version_counter_ = 0;
    std::shared_ptr<Buffer> klens_buf_;
    std::string trace_name_;  // "wanrt::<op>", reused
};

}  // namespace wanrt
