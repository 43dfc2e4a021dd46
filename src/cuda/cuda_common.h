// Shared by the CUDA backend's translation units: error-check macros, a scoped NVTX range, the
// kernel launchers each cuda_*.cu file exports to the op files (cuda_*_ops.cpp, cuda_conv.cpp),
// and small device helpers.
//
// Errors: a failing CUDA/cuBLAS/cuDNN call is a bug or a broken environment, not bad input, so the
// macros print file:line, the call, the library's message and a hint, then abort (docs/style.md,
// habit 10). Bad input is rejected earlier with wanrt::Error by ops.h or the backend. The exception:
// an allocation failure (cudaErrorMemoryAllocation, *_ALLOC_FAILED) throws wanrt::OutOfMemory, which
// the pipeline reports with the stage it hit.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nvtx3/nvToolsExt.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace wanrt::cuda {

[[noreturn]] inline void die(const char* lib, const char* what, const char* msg, const char* file, int line) {
    std::fprintf(stderr,
                 "wanrt internal error: %s:%d: %s call `%s` failed: %s\n"
                 "  hint: check the driver/toolkit match (nvidia-smi vs nvcc --version), free GPU "
                 "memory, and rerun with CUDA_LAUNCH_BLOCKING=1 or compute-sanitizer to find the "
                 "failing kernel\n",
                 file, line, lib, what, msg);
    std::abort();
}

// cublasGetStatusString lives in libcublas, which nothing else here needs.
inline const char* cublas_status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_NOT_INITIALIZED:
            return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED:
            return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH:
            return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR:
            return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED:
            return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR:
            return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED:
            return "CUBLAS_STATUS_NOT_SUPPORTED";
        default:
            return "cuBLAS error";
    }
}

}  // namespace wanrt::cuda

// An allocation failure inside a library call (a workspace, cuBLAS handles) is not a bug: it is the
// typed OutOfMemory the pipeline turns into one line naming the stage, not an abort.
namespace wanrt::cuda {
[[noreturn]] inline void out_of_memory(const char* lib, const char* what) {
    (void)cudaGetLastError();  // an allocation error is not sticky: clear it so the device stays usable
    throw ::wanrt::OutOfMemory(std::string("[cuda] out of device memory in ") + lib + " call " + what);
}
}  // namespace wanrt::cuda

#define CUDA_CHECK(call)                                                                                          \
    do {                                                                                                          \
        cudaError_t err_ = (call);                                                                                \
        if (err_ == cudaErrorMemoryAllocation) ::wanrt::cuda::out_of_memory("CUDA", #call);                      \
        if (err_ != cudaSuccess) ::wanrt::cuda::die("CUDA", #call, cudaGetErrorString(err_), __FILE__, __LINE__); \
    } while (0)

// After every kernel launch: catches bad launch configurations at once (asynchronous faults
// surface at the next synchronising call).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                                   \
    do {                                                                                                     \
        cublasStatus_t st_ = (call);                                                                         \
        if (st_ == CUBLAS_STATUS_ALLOC_FAILED) ::wanrt::cuda::out_of_memory("cuBLAS", #call);              \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
            ::wanrt::cuda::die("cuBLAS", #call, ::wanrt::cuda::cublas_status_name(st_), __FILE__, __LINE__); \
    } while (0)

#define CUDNN_CHECK(call)                                                                     \
    do {                                                                                      \
        cudnnStatus_t st_ = (call);                                                           \
        if (st_ == CUDNN_STATUS_ALLOC_FAILED) ::wanrt::cuda::out_of_memory("cuDNN", #call);  \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                      \
            ::wanrt::cuda::die("cuDNN", #call, cudnnGetErrorString(st_), __FILE__, __LINE__); \
    } while (0)

namespace wanrt::cuda {

#ifdef __CUDACC__
// Activation codes follow wanrt::Activation: 1 gelu_tanh, 2 gelu_erf, 3 silu, 4 tanh, 5 relu (every kernel that
// applies one: unary, GEMM epilogue fallback, channel RMS norm).
__device__ __forceinline__ float activate(int act, float x) {
    switch (act) {
        case 1: {
            const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
            return 0.5f * x * (1.f + tanhf(u));
        }
        case 2:
            return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
        case 3:
            return x / (1.f + expf(-x));
        case 4:
            return tanhf(x);
        case 5:
            return x > 0.f ? x : 0.f;
        default:
            return x;
    }
}
#endif

// A scoped NVTX range (upload, download). Ops get "wanrt::<op>" from CudaBackend::trace_push.
struct NvtxRange {
    explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
    ~NvtxRange() { nvtxRangePop(); }
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

// Up to 6 dims, outermost first, strides in elements: how strided kernels see a tensor.
constexpr int kMaxDims = 6;
struct Strided {
    int ndim = 0;
    int64_t shape[kMaxDims] = {};
    int64_t stride[kMaxDims] = {};
};

inline int div_up(int64_t a, int64_t b) {
    return int((a + b - 1) / b);
}

// Dtype codes used by the conversion kernels (mirrors wanrt::DType for the float/int types).
enum class DevType : int { F32 = 0, F16 = 1, BF16 = 2, F64 = 3, I32 = 4, I64 = 5, U8 = 6 };

// ---- launchers (cuda_elementwise.cu) ----
void launch_copy(const void* src, DevType st, const Strided& s, void* dst, DevType dt, int64_t n, cudaStream_t stream);
// Contiguous f32 → bf16, optionally multiplied by scale first.
void launch_f32_to_bf16(const float* src, __nv_bfloat16* dst, int64_t n, float scale, cudaStream_t stream);
void launch_fill_f32(float* dst, int64_t n, float v, cudaStream_t stream);
void launch_fill(void* dst, DevType t, int64_t n, double v, cudaStream_t stream);
// Same logical shape (s.shape == d.shape), both strided.
// Copies a strided view into another of the same shape row by row when, after merging dims that
// are contiguous in both, the innermost run has stride 1 on both sides and the dtypes are equal or
// f32↔bf16. Returns false (nothing launched) otherwise.
bool launch_copy_rows(const void* src, DevType st, const Strided& s, void* dst, DevType dt, const Strided& d,
                      cudaStream_t stream);
void launch_copy_strided(const void* src, DevType st, const Strided& s, void* dst, DevType dt, const Strided& d,
                         int64_t n, cudaStream_t stream);
void launch_unary(int act, const float* x, float* y, int64_t n, cudaStream_t stream);
// y = Σ_{k<n} c_k·x_k elementwise (n ≤ 4; unused pointers null); y may alias an input. x0 and y of
// type t (f32, bf16 or f16), x1..x3 f32; summed in f32, rounded once to t.
void launch_lincomb(const void* x0, const float* x1, const float* x2, const float* x3, float c0, float c1, float c2,
                    float c3, int n, void* y, DevType t, int64_t count, cudaStream_t stream);
void launch_binary(int op, const float* a, const Strided& sa, const float* b, const Strided& sb, float* y,
                   const Strided& sy, int64_t n, cudaStream_t stream);
void launch_patchify(const float* x, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph, int pw, float* y,
                     cudaStream_t stream);
void launch_unpatchify(const float* x, int64_t C, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw, float* y,
                       cudaStream_t stream);
void launch_embedding(const void* table, DevType tt, int64_t V, int64_t D, const int32_t* ids, int64_t n, float* y,
                      cudaStream_t stream);

// ---- launchers (cuda_norm.cu); rows of length D, contiguous ----
void launch_layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t D,
                       cudaStream_t stream);
void launch_rms_norm(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t D, cudaStream_t stream);
// x [B, L, D]; shift/scale rows b at (ptr + b·row_stride), elements at unit stride.
void launch_norm_modulate(const float* x, const float* shift, int64_t shift_rs, const float* scale, int64_t scale_rs,
                          float eps, float* y, int64_t B, int64_t L, int64_t D, cudaStream_t stream);
void launch_gated_residual(float* x, const float* y, const float* gate, int64_t gate_rs, int64_t B, int64_t L,
                           int64_t D, cudaStream_t stream);

// ---- launchers (cuda_rope.cu) ----
struct RopeGridDev {
    int64_t f, h, w, frame_offset;
};
// x, y [B, L, H, d]; table [P, d/2, 2]; grids: host array of B entries (passed by value).
void launch_rope(const float* x, const RopeGridDev* grids, const float* table, int64_t P, float* y, int64_t B,
                 int64_t L, int64_t H, int64_t d, cudaStream_t stream);
// y = rope(rms_norm(x over each token's H·d values, w [H·d], eps)), same layouts as launch_rope.
void launch_rms_norm_rope(const float* x, const float* w, float eps, const RopeGridDev* grids, const float* table,
                          float* y, int64_t B, int64_t L, int64_t H, int64_t d, cudaStream_t stream);

// ---- launchers (cuda_attention.cu) ----
struct AttnArgs {
    int B, Lq, Lk, H, Hk, d, dv;
    const int32_t* k_lens;  // device [B] or null
    float softmax_scale;    // already resolved (never 0)
    bool causal;
    int window_left, window_right;    // −1 = unlimited
    const float* rel_bias = nullptr;  // device [H, Lq + Lk − 1] or null (flash and GEMM paths)
    float* lse = nullptr;             // flash kernel: device [B, H, Lq] gets ln Σ_j exp(scale·q·k_j), or null
};
// Flash attention on bf16 q [B, Lq, H, d], k [B, Lk, Hk, d], v [B, Lk, Hk, dv] (contiguous),
// f32 out [B, Lq, H, dv]. Supported when d == dv and d ∈ {64, 128}.
bool flash_attention_supported(int d, int dv);
void launch_flash_attention(const AttnArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                            float* out, cudaStream_t stream);
// The attention backward in bf16 (cuda_attention_bwd.cu): q, k, v, dout bf16 [B, L, H, d] (q not
// scaled: a.softmax_scale is the whole scale), out/dout f32 for Δ = rowsum(dO∘O), lse [B, H, Lq] of
// the forward; work holds 2·B·H·Lq floats; dq, dk, dv f32 are overwritten. Supported where the flash
// forward is, with H == Hk and no rel_bias; a.lse is unused.
bool flash_attention_backward_supported(const AttnArgs& a);
void launch_flash_attention_backward(const AttnArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                     const __nv_bfloat16* v, const __nv_bfloat16* dout, const float* out_f32,
                                     const float* dout_f32, const float* lse, float* work, float* dq, float* dk,
                                     float* dv, cudaStream_t stream);
// Row softmax of one (sample b, head h) score block for the GEMM-based attention path (large head
// dims): S f32 [rows, Lk] holds q·k for queries row0 … row0+rows−1; P bf16 gets softmax(S·scale +
// bias) with the masks of a (a.softmax_scale is the scale); rows seeing no key become zeros.
void launch_attention_softmax(const AttnArgs& a, int b, int h, int row0, int rows, const float* S, __nv_bfloat16* P,
                              cudaStream_t stream);
// Reference-grade kernel for any head dim ≤ 512 on f32 inputs (q already scaled), with the
// optional relative bias [H, Lq + Lk − 1]: the fallback and the test oracle for the fast path.
void launch_attention_generic(const AttnArgs& a, const float* q, const float* k, const float* v, const float* rel_bias,
                              float* out, cudaStream_t stream);

}  // namespace wanrt::cuda

#include <map>
#include <tuple>
#include <vector>

namespace wanrt::cuda {

// ---- cuda_gemm.cu ----
// y [M, N] f32 = x [M, K] bf16 · w [N, K]ᵀ bf16 (+ bias [N] f32), then act (wanrt::Activation
// code: 0 none, 1 gelu_tanh, 2 gelu_erf, 3 silu). fp32 accumulation. Bias and gelu_tanh run as
// cuBLASLt epilogues; other activations, and shapes cuBLASLt refuses, take a separate kernel.
// Milliseconds the work fn queues on stream takes (CUDA events around it, waited for); −1 when fn
// returns false. For timing plan candidates on the first call of a shape.
template <class F>
double time_on_stream(cudaStream_t stream, F&& fn) {
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    CUDA_CHECK(cudaEventRecord(a, stream));
    const bool ok = fn();
    CUDA_CHECK(cudaEventRecord(b, stream));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ok ? ms : -1;
}

// How many of the heuristic's candidates cuBLASLt and cuDNN conv plans are timed over on the first
// call of a shape (WANRT_AUTOTUNE, 1…8, default 8; 1 = the heuristic's first choice, untimed, so the
// same algorithms — and bits — in every process). H100, VAE decode 21 → 81 frames at 480p, warm /
// first call: 1 → 2,785 / 3,110 ms, 4 → 2,260 / 3,231 ms, 8 → 1,916 / 3,107 ms (the first call is
// dominated by building plans, not by timing them).
int plan_candidates();

struct GemmF32;  // cuda_backward.h

class GemmEngine {
public:
    GemmEngine(cudaStream_t stream, void* workspace, size_t workspace_bytes);
    ~GemmEngine();
    GemmEngine(const GemmEngine&) = delete;
    GemmEngine& operator=(const GemmEngine&) = delete;

    // y [M, N] f32, or bf16 when y_bf16 (rounded once from the fp32 result, after bias and activation).
    void run(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, int act, void* y, int64_t M, int64_t N,
             int64_t K, bool y_bf16 = false);

    // FP8 (sm_89+, ops/linear_fp8.h): y [M, N] (f32, or bf16 when y_bf16) = act(x8 [M, K] · w8 [N, K]ᵀ ·
    // (*x_scale · *w_scale) + bias [N]), x8 and w8 e4m3fn codes, the scales device floats, bias bf16
    // or null, fp32 accumulation (fast_accum: cuBLASLt's FP8 fast accumulation). K and N multiples
    // of 16, every pointer 16-byte aligned. Returns false, launching nothing, with *why set, when
    // cuBLASLt has no FP8 algorithm for the problem (the caller turns that into a one-line error).
    bool run_fp8(const uint8_t* x8, const float* x_scale, const uint8_t* w8, const float* w_scale,
                 const __nv_bfloat16* bias, int act, void* y, int64_t M, int64_t N, int64_t K, bool y_bf16,
                 bool fast_accum, std::string* why);

    // Row-major strided-batched f32 GEMM (the backward ops; cuda_backward.h), fp32 compute, or inputs
    // rounded to TF32 or bf16 with fp32 accumulation (Backend::set_matmul_precision High, Medium: PyTorch's
    // meanings; a shape cuBLASLt has no bf16 algorithm for runs in TF32).
    enum class F32Math { Exact, Tf32, Bf16 };
    void run_f32(const GemmF32& g);
    void set_f32_math(F32Math m) { f32_math_ = m; }
    F32Math f32_math() const { return f32_math_; }

private:
    struct Plan {
        bool ok = false;
        cublasLtMatmulDesc_t desc = nullptr;
        cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
        cublasLtMatrixLayout_t d = nullptr;  // FP8 plans: D's layout when C's type differs from D's
        std::string why;                      // FP8 plans: what refused, when !ok
        bool c_is_d = true;                   // FP8 plans: C's type is D's (then C = y, else C = null)
        cublasLtMatmulAlgo_t algo{};
        std::vector<cublasLtMatmulAlgo_t> candidates;  // timed on first use, then cleared
    };
    // (M, N, K, epilogue | output-type bit, alignment class)
    using Key = std::tuple<int64_t, int64_t, int64_t, int, int>;
    Plan& plan(int64_t M, int64_t N, int64_t K, int epilogue, int align);
    Plan& plan_fp8(int64_t M, int64_t N, int64_t K, int flags, const void* bias, const float* a_scale,
                   const float* b_scale);
    // run_f32's plans: a training step repeats its shapes, and building descriptors and asking the
    // heuristic costs more host time than many of its small GEMMs take on the device.
    // (ta, tb, M, N, K, lda, ldb, ldc, batch, sa, sb, sc, math); !ok: the heuristic found nothing.
    using F32Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int64_t, int64_t,
                              int64_t, int>;
    Plan& plan_f32(const GemmF32& g, F32Math math);
    std::map<F32Key, Plan> f32_plans_;
    F32Math f32_math_ = F32Math::Exact;

    cudaStream_t stream_;
    cublasLtHandle_t lt_ = nullptr;
    void* ws_;
    size_t ws_bytes_;
    std::map<Key, Plan> plans_;
};

}  // namespace wanrt::cuda

#include <memory>
#include <string>
#include <vector>

namespace wanrt::cuda {

// One cuDNN handle on the backend's stream with a grow-only workspace: what every graph-API user
// (attention, conv) needs to execute a finalized plan.
class CudnnSession {
public:
    explicit CudnnSession(cudaStream_t stream);
    ~CudnnSession();
    CudnnSession(const CudnnSession&) = delete;
    CudnnSession& operator=(const CudnnSession&) = delete;
    cudnnHandle_t handle() const { return handle_; }
    cudaStream_t stream() const { return stream_; }
    // Executes plan with the tensors (uids[i] → ptrs[i]); false with *error set if cuDNN refuses.
    bool execute(cudnnBackendDescriptor_t plan, int64_t workspace, const int64_t* uids, void* const* ptrs, int64_t n,
                 std::string* error);

private:
    cudaStream_t stream_;
    cudnnHandle_t handle_ = nullptr;
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;
};


// ---- cuda_sdpa.cpp ----
// cuDNN's fused flash attention, built through the backend graph API (no frontend library):
// S = Q·Kᵀ · scale, softmax in fp32, O = P·V, bf16 in and out, no mask; and its backward. One
// execution plan per shape, cached; a shape cuDNN has no engine for is remembered and run() /
// backward() return false, so the caller falls back to our flash kernels. Layout as everywhere:
// [B, L, heads, d].
class CudnnSdpa {
public:
    explicit CudnnSdpa(cudaStream_t stream);
    ~CudnnSdpa();
    CudnnSdpa(const CudnnSdpa&) = delete;
    CudnnSdpa& operator=(const CudnnSdpa&) = delete;

    // stats (optional, f32 [B, H, Lq]): each row's logsumexp of the scaled scores, for combining
    // partial results over key ranges (split-KV) and for the backward.
    bool run(int B, int H, int Hk, int Lq, int Lk, int d, float scale, const __nv_bfloat16* q, const __nv_bfloat16* k,
             const __nv_bfloat16* v, __nv_bfloat16* o, float* stats = nullptr);

    // dQ, dK, dV of run() given dO and run()'s stats; no GQA (K and V have H heads), head dims equal.
    struct Backward {
        int B, H, Lq, Lk, d;
        float scale;
        const __nv_bfloat16 *q, *k, *v, *o, *dout;
        const float* stats;                 // [B, H, Lq]
        __nv_bfloat16 *dq, *dk, *dv;
        float* softmax_sum;                 // scratch [B, H, Lq]: Δ = rowsum(dO∘O)
        float* dq_accum;                    // scratch [B, H, Lq, d]
    };
    bool backward(const Backward& a);
    std::string last_error() const { return error_; }

private:
    struct Plan;
    enum Mode { kForward, kWithStats, kBackward };
    using Key = std::tuple<int, int, int, int, int, int, int>;  // (B, H, Hk, Lq, Lk, d, Mode)
    Plan* plan(const Key& key);

    CudnnSession cudnn_;
    std::map<Key, std::unique_ptr<Plan>> plans_;  // null entry: no engine for this shape
    std::string error_;
};

// bf16 → f32, contiguous (cuda_elementwise.cu).
void launch_bf16_to_f32(const __nv_bfloat16* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace wanrt::cuda

namespace wanrt::cuda {

// ---- cuda_conv.cpp (cuDNN graph) and cuda_elementwise.cu (fallback, helpers) ----
struct Conv3dShape {
    int64_t C, T, H, W;     // input [C, T, H, W]
    int64_t O, kt, kh, kw;  // weight [O, C, kt, kh, kw]
    int64_t To, Ho, Wo;     // output [O, To, Ho, Wo]
    int64_t pad[6];         // t0, t1, h0, h1, w0, w1
    int64_t stride[3];      // t, h, w
    DevType dt = DevType::F32;  // x, w and y: F32 (cuDNN may use TF32), F16 or BF16 (f32 accumulation)
    // Channels last: x [T, H, W, C], w [O, kt, kh, kw, C], y [To, Ho, Wo, O] (cuDNN's NDHWC / KTRSC).
    bool channels_last = false;
};
// Conv3d through cuDNN (x, w, y all of s.dt; fp32 may run on TF32 tensor cores, as PyTorch does by
// default), asymmetric zero padding included. Contiguous, 16-byte aligned operands. Returns false
// when cuDNN has no engine for the shape (remembered per shape; see last_error()).
class CudnnConv3d {
public:
    explicit CudnnConv3d(cudaStream_t stream);
    ~CudnnConv3d();
    CudnnConv3d(const CudnnConv3d&) = delete;
    CudnnConv3d& operator=(const CudnnConv3d&) = delete;
    bool run(const Conv3dShape& s, const void* x, const void* w, void* y);
    std::string last_error() const { return error_; }

private:
    struct Plan;
    Plan* plan(const Conv3dShape& s, const void* x, const void* w, void* y);  // x, w, y: to time candidates
    bool execute(cudnnBackendDescriptor_t plan, int64_t workspace, const void* x, const void* w, void* y);
    cudaStream_t stream_;
    CudnnSession cudnn_;
    std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;
    std::string error_;
};
// Direct fp32 convolution, one thread per output element: the fallback for refused shapes.
void launch_conv3d_direct(const Conv3dShape& s, const float* x, const float* w, float* y, cudaStream_t stream);
// y [O, S] += bias[o] (per output channel).
void launch_channel_bias(float* y, const float* bias, int64_t O, int64_t S, cudaStream_t stream);
// The half-precision conv's operands: out [C, Tp + T, S] (dt F16/BF16) = concat(prefix [C, Tp, S],
// x [C, T, S]) rounded (prefix may be null with Tp = 0); and y [O, S] f32 = yh [O, S] (dt) + bias[o].
void launch_concat_to_half(const float* prefix, int64_t Tp, const float* x, int64_t T, int64_t C, int64_t S,
                           void* out, DevType dt, cudaStream_t stream);
void launch_half_bias_to_f32(const void* yh, DevType dt, const float* bias, float* y, int64_t O, int64_t S,
                             cudaStream_t stream);
// x, y [C, S]: y = x / max(‖x[:, s]‖₂, 1e-12) · √C · gamma[c].
// act (wanrt::Activation code) is applied to the output.
void launch_channel_rms_norm(const float* x, const float* gamma, int act, float* y, int64_t C, int64_t S,
                             cudaStream_t stream);
// x [C·T, H, W] → y [C·T, 2H, 2W], nearest.
void launch_upsample2x(const float* x, float* y, int64_t planes, int64_t H, int64_t W, cudaStream_t stream);

// Split-KV combine: parts o [ns, Lq, H, d] bf16 with logsumexps lse [ns, H, Lq] → out f32 and
// out_bf16 [Lq, H, d] (the same values rounded, for the linear that follows).
void launch_attention_combine(const __nv_bfloat16* o, const float* lse, int ns, int Lq, int H, int d, float* out,
                              __nv_bfloat16* out_bf16, cudaStream_t stream);

// ---- launchers (cuda_kv.cu) ----
// The adaptive-sink KV-cache frame write (KvSinkWrite in core/backend.h): k_new, v_new f32 [S, W];
// k_cache, v_cache [K·S, W] of cache_type (F32 or BF16); means: device scratch of 2·(sink + 1)·W
// doubles; decision: device i32[2] ← (d, slot). Three kernels, no host round trip.
void launch_kv_sink_write(const float* k_new, const float* v_new, void* k_cache, void* v_cache, DevType cache_type,
                          int64_t S, int64_t W, int64_t sink, int64_t fixed_slot, int64_t queue_front,
                          int64_t ring_slot, double threshold, double* means, int32_t* decision, cudaStream_t stream);

}  // namespace wanrt::cuda
