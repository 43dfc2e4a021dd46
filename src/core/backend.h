// The backend interface: memory, transfers and synchronisation. Ops are not methods here: each op
// is declared once with its argument struct (ops/ops.h, ops/<name>.h) and each backend registers
// kernels for it per dtype signature (core/op_registry.h); supports() answers from that registry.
//
// Model code never calls a kernel directly; it calls the checked front-end in ops/, which
// validates shapes, allocates outputs on the inputs' backend and dispatches. A kernel receives
// inputs that the front-end has already checked; unless an op says otherwise, inputs and outputs
// are contiguous and live on this backend. Outputs are preallocated by the front-end.
//
// The CPU backend is always present. A GPU backend (CUDA now, Metal later) implements the same
// virtual functions with device buffers, its own allocator and an asynchronous stream: host code
// sees results only through download() after synchronize(). A backend without a kernel for an
// op's dtypes answers false in supports() and dispatch throws ("[cuda:0] op X is not implemented
// for bf16/f32 on this backend").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanrt {

class OpProfiler;

// Device memory held by a backend's allocator, in bytes: in use by live tensors, the peak of that
// since the last reset, and reserved from the driver (in use + cached) with its peak since the last
// reset (what nvidia-smi shows, less the context). All zero where the backend does not track it (the
// CPU: see core/sysinfo.h for the process's peak resident memory).
struct MemoryStats {
    size_t in_use = 0, peak = 0, reserved = 0, peak_reserved = 0;
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string name() const = 0;         // "cpu", "cuda:0"
    virtual const char* kind() const = 0;         // the key kernels register under: "cpu", "cuda"
    virtual std::string description() const = 0;  // processor / card and thread count
    virtual bool host_visible() const = 0;         // buffers readable by the host without download

    // --- memory ---
    virtual std::shared_ptr<Buffer> alloc(size_t bytes) = 0;
    Tensor empty(DType dtype, const Shape& shape);
    // Copies host bytes into a contiguous tensor of this backend, and back.
    virtual void upload(const Tensor& dst, const void* src) = 0;
    virtual void download(const Tensor& src, void* dst) = 0;
    virtual void synchronize() = 0;
    virtual MemoryStats memory_stats() const { return {}; }
    virtual void reset_peak_memory() {}
    // Gives cached free blocks back to the driver. Pipelines call it between stages (text encoder →
    // DiT → VAE): a caching allocator reuses blocks by size, so one stage's freed buffers would
    // otherwise stay reserved beside the next stage's, and the process would hold the sum of the stages.
    virtual void release_cached_memory() {}

    // --- precision ---
    // How the training ops (attention_lse, the backward ops) may multiply f32 matrices, in PyTorch's
    // set_float32_matmul_precision terms: Highest = f32 (the default; the op tables hold those ops
    // to f32 accuracy); High = TF32 inputs with f32 accumulation (10-bit mantissa, as
    // torch.backends.cuda.matmul.allow_tf32; ~7× the f32 rate on Hopper); Medium = bf16 inputs with
    // f32 accumulation, the precision of PyTorch's bf16 autocast (on CUDA: the GEMMs, and the training
    // attention forward and backward as fused bf16 kernels).
    // Backends without such units stay at Highest and report it.
    enum class MatmulPrecision { Highest, High, Medium };
    virtual void set_matmul_precision(MatmulPrecision) {}
    virtual MatmulPrecision matmul_precision() const { return MatmulPrecision::Highest; }

    // --- streaming weights (models/dit_offload.h, --offload) ---
    // Two queues of work: Compute, where ops run in order, and Copy, host→device copies that overlap
    // them. An Event marks a point in one queue: record(q, e) after the work queued on q so far;
    // wait(q, e) makes q's later work wait for it (on the device: the host does not block; an event
    // never recorded is already done). A backend that runs everything in order on the host (the CPU)
    // has nothing to overlap: the defaults copy at once and their events are no-ops. A GPU backend
    // (CUDA: a second stream and cudaEvents; Metal: a blit queue and shared events) overlaps.
    enum class Queue { Compute, Copy };
    class Event {
    public:
        virtual ~Event() = default;
    };
    virtual std::unique_ptr<Event> new_event() { return std::make_unique<Event>(); }
    virtual void record(Queue, Event&) {}
    virtual void wait(Queue, Event&) {}
    // Page-locked host memory, host-addressed through ptr(): the source of upload_async. Default:
    // ordinary host memory.
    virtual std::shared_ptr<Buffer> alloc_pinned(size_t bytes);
    // Copies dst.nbytes() bytes from host src (alloc_pinned memory) into the contiguous dst on the
    // Copy queue; src must stay unchanged until an event recorded after it is done. Default: upload().
    virtual void upload_async(const Tensor& dst, const void* src) { upload(dst, src); }
    // Copies the contiguous src into host dst (alloc_pinned memory) on the Copy queue (training's
    // checkpoints to host memory). The Copy queue must first wait for the work that writes src; src must
    // stay alive and unchanged, and dst unread, until an event recorded after it is done. Default:
    // download().
    virtual void download_async(const Tensor& src, void* dst) { download(src, dst); }

    // Whether a kernel for op (its args struct's kName) is registered on this kind of backend for
    // these dtypes (see each args struct for what `in` and `w` are).
    bool supports(const char* op, DType in, DType w = DType::F32) const;
    // The dtype a linear-layer weight stored as `stored` should be kept in on this backend
    // (WeightLoader converts once at load time). CPU: as stored (a bf16 checkpoint stays bf16, an
    // f32 one f32); a GPU backend running bf16 GEMMs answers bf16 so no f32 copy stays resident.
    virtual DType matrix_dtype(DType stored) const { return stored; }
    // Whether tensors of block-quantized dtypes (Q8_0, Q4_K, …: core/dtype.h) can live here: the CPU
    // (its linear runs on them in place) and CUDA (linear decodes them per call); a backend that
    // holds them registers linear for {F32, Qx} and answers matrix_dtype(Qx) = Qx. empty() refuses
    // them elsewhere with a one-line error, so a quantized weight never reaches a backend that would
    // misread its bytes. Block tensors move between host and device as raw bytes (upload/download).
    virtual bool holds_block_types() const { return false; }
    // Whether conv3d runs faster on channels-last tensors ([T, H, W, C], Conv3dParams::channels_last)
    // than on [C, T, H, W] here, natively: CUDA (cuDNN's NDHWC half convs ≈ 2× the NCDHW ones); a model
    // that can keep either layout (TAEHV) picks by it. False: channels-last convs still work, through
    // the front-end's permute around the NCDHW kernel (the CPU).
    virtual bool prefers_channels_last_conv() const { return false; }

    // --- instrumentation ---
    // An attached profiler receives every op's time (core/op_registry.h); null detaches.
    void set_profiler(OpProfiler* p) { profiler_ = p; }
    OpProfiler* profiler() const { return profiler_; }
    // A named range around each op (NVTX on CUDA), for external profilers.
    virtual void trace_push(const char* name) {}
    virtual void trace_pop() {}
    // Test mode (CPU): every new buffer is filled with NaN (so an element a kernel forgets to write
    // shows) and surrounded by guard bytes checked when it is freed; guard_failures() counts the
    // buffers whose guards were overwritten. A backend without it ignores the switch.
    virtual void set_alloc_check(bool on) {}
    virtual int64_t guard_failures() const { return 0; }

private:
    OpProfiler* profiler_ = nullptr;
};

// "highest" | "high" | "medium" (PyTorch's names) and back; another name fails in one line naming flag.
Backend::MatmulPrecision parse_matmul_precision(const std::string& s, const char* flag);
const char* matmul_precision_name(Backend::MatmulPrecision p);

// The CPU backend (always available). threads = 0 → one per core.
std::shared_ptr<Backend> make_cpu_backend(int threads = 0);

}  // namespace wanrt
