// CudaBackend: memory (caching allocator), transfers, the bf16 weight cache, the staged
// activation, and the helpers the kernel files share. The ops themselves are registered by their
// family files (cuda_*.cu, cuda_conv.cpp). Policies are documented in cuda_backend.h.
#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"

namespace wanrt {

namespace cuda {

// ---- memory ----------------------------------------------------------------------------------

// Blocks are cached by rounded size (512 B granules up to 1 MiB, 2 MiB granules above) and handed
// out again in stream order: everything runs on one stream, so a block freed by the host after
// enqueueing its last use can be given to the next op without waiting.
class DeviceAllocator {
public:
    explicit DeviceAllocator(int device) : device_(device) {}
    ~DeviceAllocator() { release_cached(); }

    static size_t round(size_t bytes) {
        if (bytes == 0) bytes = 1;
        const size_t g = bytes <= (size_t(1) << 20) ? 512 : (size_t(2) << 20);
        return (bytes + g - 1) / g * g;
    }

    void* get(size_t rounded) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = free_.find(rounded);
        void* p = nullptr;
        if (it != free_.end() && !it->second.empty()) {
            p = it->second.back();
            it->second.pop_back();
        } else {
            CUDA_CHECK(cudaSetDevice(device_));
            cudaError_t err = cudaMalloc(&p, rounded);
            if (err != cudaSuccess) {
                (void)cudaGetLastError();
                release_cached_locked();
                err = cudaMalloc(&p, rounded);
                if (err != cudaSuccess) {
                    (void)cudaGetLastError();
                    throw OutOfMemory(cat("[cuda] out of device memory allocating ", rounded, " bytes (", in_use_,
                                          " in use); use a smaller resolution or frame count"));
                }
            }
            reserved_ += rounded;
            peak_reserved_ = std::max(peak_reserved_, reserved_);
        }
        in_use_ += rounded;
        peak_ = std::max(peak_, in_use_);
        return p;
    }

    void put(void* p, size_t rounded) {
        std::lock_guard<std::mutex> lock(mu_);
        free_[rounded].push_back(p);
        in_use_ -= rounded;
    }

    MemoryStats stats() {
        std::lock_guard<std::mutex> lock(mu_);
        return {in_use_, peak_, reserved_, peak_reserved_};
    }
    void reset_peak() {
        std::lock_guard<std::mutex> lock(mu_);
        peak_ = in_use_;
        peak_reserved_ = reserved_;
    }
    void release_cached() {
        std::lock_guard<std::mutex> lock(mu_);
        release_cached_locked();
    }

private:
    void release_cached_locked() {
        cudaDeviceSynchronize();  // cached blocks may still be read by queued work
        for (auto& [size, list] : free_) {
            for (void* p : list) cudaFree(p);
            reserved_ -= size * list.size();
        }
        free_.clear();
    }

    int device_;
    std::mutex mu_;
    std::unordered_map<size_t, std::vector<void*>> free_;
    size_t in_use_ = 0, peak_ = 0, reserved_ = 0, peak_reserved_ = 0;
};

// Tensor shape/strides as a Strided, adjacent dims merged where the layout allows.
Strided strided_of(const Tensor& t) {
    std::vector<int64_t> shape, stride;
    for (int d = 0; d < t.ndim(); ++d) {
        if (t.size(d) == 1) continue;
        if (!shape.empty() && stride.back() == t.stride(d) * t.size(d)) {
            shape.back() *= t.size(d);
            stride.back() = t.stride(d);
        } else {
            shape.push_back(t.size(d));
            stride.push_back(t.stride(d));
        }
    }
    if (shape.empty()) {
        shape.push_back(1);
        stride.push_back(1);
    }
    WANRT_CHECK(shape.size() <= size_t(kMaxDims), "cuda", "tensor ", t.describe(), " has more than ", kMaxDims,
                " non-mergeable dims; make it contiguous first");
    Strided s;
    s.ndim = int(shape.size());
    for (int d = 0; d < s.ndim; ++d) {
        s.shape[d] = shape[d];
        s.stride[d] = stride[d];
    }
    return s;
}

// Shape/strides of t right-aligned to `shape` with broadcast dims given stride 0.
Strided broadcast_of(const Tensor& t, const Shape& shape) {
    WANRT_CHECK(shape.size() <= size_t(kMaxDims), "cuda", "binary op on ", shape.size(), "-dim tensors; at most ",
                kMaxDims, " dims are supported");
    Strided s;
    s.ndim = int(shape.size());
    const int off = s.ndim - t.ndim();
    for (int d = 0; d < s.ndim; ++d) {
        s.shape[d] = shape[d];
        const int td = d - off;
        s.stride[d] = (td < 0 || t.size(td) == 1) ? 0 : t.stride(td);
    }
    return s;
}

}  // namespace cuda

namespace {

class CudaBuffer final : public Buffer {
public:
    CudaBuffer(Backend* backend, size_t bytes, std::shared_ptr<cuda::DeviceAllocator> alloc)
        : Buffer(backend, nullptr, bytes), rounded_(cuda::DeviceAllocator::round(bytes)), alloc_(std::move(alloc)) {
        ptr_ = alloc_->get(rounded_);
    }
    ~CudaBuffer() override { alloc_->put(ptr_, rounded_); }

private:
    size_t rounded_;
    std::shared_ptr<cuda::DeviceAllocator> alloc_;
};

// The alloc-check mode's buffer: kGuard pattern bytes on each side of an all-ones payload (NaN in
// f32/bf16/f16), filled on the stream; the guards are read back and compared when it is freed.
class GuardedCudaBuffer final : public Buffer {
public:
    static constexpr size_t kGuard = 512;
    static constexpr unsigned char kPattern = 0xA5;
    GuardedCudaBuffer(Backend* backend, size_t bytes, std::shared_ptr<cuda::DeviceAllocator> alloc, cudaStream_t stream,
                      std::shared_ptr<std::atomic<int64_t>> failures)
        : Buffer(backend, nullptr, bytes),
          rounded_(cuda::DeviceAllocator::round(bytes + 2 * kGuard)),
          alloc_(std::move(alloc)),
          stream_(stream),
          failures_(std::move(failures)) {
        base_ = static_cast<unsigned char*>(alloc_->get(rounded_));
        CUDA_CHECK(cudaMemsetAsync(base_, kPattern, rounded_, stream_));
        CUDA_CHECK(cudaMemsetAsync(base_ + kGuard, 0xFF, bytes, stream_));
        ptr_ = base_ + kGuard;
    }
    ~GuardedCudaBuffer() override {
        std::vector<unsigned char> head(kGuard), tail(rounded_ - kGuard - bytes_);
        if (cudaMemcpyAsync(head.data(), base_, head.size(), cudaMemcpyDeviceToHost, stream_) == cudaSuccess &&
            cudaMemcpyAsync(tail.data(), base_ + kGuard + bytes_, tail.size(), cudaMemcpyDeviceToHost, stream_) ==
                cudaSuccess &&
            cudaStreamSynchronize(stream_) == cudaSuccess) {
            bool ok = true;
            for (unsigned char c : head) ok = ok && c == kPattern;
            for (unsigned char c : tail) ok = ok && c == kPattern;
            if (!ok) failures_->fetch_add(1);
        } else {
            failures_->fetch_add(1);  // an earlier kernel fault surfaces here: count it, do not throw
        }
        alloc_->put(base_, rounded_);
    }

private:
    size_t rounded_;
    std::shared_ptr<cuda::DeviceAllocator> alloc_;
    cudaStream_t stream_;
    std::shared_ptr<std::atomic<int64_t>> failures_;
    unsigned char* base_ = nullptr;
};

}  // namespace

using namespace cuda;

CudaBackend::CudaBackend(int device) : device_(device) {
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    const char* split = std::getenv("WANRT_ATTN_SPLIT");  // see split_kv_count
    split_kv_ = split && *split ? std::max(0, std::atoi(split)) : 0;
    alloc_ = std::make_shared<DeviceAllocator>(device);
    workspace_ = alloc(kWorkspaceBytes);
    gemm_ = std::make_unique<GemmEngine>(stream_, workspace_->ptr(), kWorkspaceBytes);
    sdpa_ = std::make_unique<CudnnSdpa>(stream_);
    conv_ = std::make_unique<CudnnConv3d>(stream_);
}

CudaBackend::~CudaBackend() {
    cudaStreamSynchronize(stream_);
    if (copy_stream_) {
        cudaStreamSynchronize(copy_stream_);
        cudaStreamDestroy(copy_stream_);
    }
    gemm_.reset();
    sdpa_.reset();
    conv_.reset();
    weights_.clear();
    staged_ = {};
    fp8_staged_ = {};  // its buffer is freed on stream_: before the stream goes (an exit-time crash)
    klens_buf_.reset();
    workspace_.reset();
    cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const { return cat("cuda:", device_); }

std::string CudaBackend::description() const {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    return cat(props_.name, ", sm_", props_.major, props_.minor, ", ", props_.multiProcessorCount, " SMs, ",
               total_b >> 20, " MiB; CUDA runtime ", rt / 1000, ".", (rt % 1000) / 10, ", cuBLASLt ",
               cublasLtGetVersion(), ", cuDNN ", cudnnGetVersion());
}

std::shared_ptr<Buffer> CudaBackend::alloc(size_t bytes) {
    if (alloc_check_) return std::make_shared<GuardedCudaBuffer>(this, bytes, alloc_, stream_, guard_failures_);
    return std::make_shared<CudaBuffer>(this, bytes, alloc_);
}

void CudaBackend::upload(const Tensor& dst, const void* src) {
    NvtxRange r("wanrt::upload");
    check_here(dst, "upload");
    WANRT_CHECK(dst.is_contiguous(), "cuda", "upload into non-contiguous ", dst.describe());
    CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src, dst.nbytes(), cudaMemcpyHostToDevice, stream_));
    wrote(dst);
}

void CudaBackend::download(const Tensor& src, void* dst) {
    NvtxRange r("wanrt::download");
    check_here(src, "download");
    if (src.is_contiguous()) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src.raw(), src.nbytes(), cudaMemcpyDeviceToHost, stream_));
    } else {
        Tensor tmp = empty(src.dtype(), src.shape());
        copy_tensor(src, tmp);
        CUDA_CHECK(cudaMemcpyAsync(dst, tmp.raw(), tmp.nbytes(), cudaMemcpyDeviceToHost, stream_));
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::synchronize() {
    if (copy_stream_) CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// ---- weight streaming ----------------------------------------------------------------------------

namespace {

class CudaEvent final : public Backend::Event {
public:
    CudaEvent() { CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)); }
    ~CudaEvent() override { cudaEventDestroy(ev); }
    cudaEvent_t ev = nullptr;
};

class PinnedBuffer final : public Buffer {
public:
    PinnedBuffer(Backend* be, void* p, size_t bytes) : Buffer(be, p, bytes) {}
    ~PinnedBuffer() override { cudaFreeHost(ptr_); }
};

cudaEvent_t event_of(Backend::Event& e) {
    auto* c = dynamic_cast<CudaEvent*>(&e);
    WANRT_CHECK(c != nullptr, "cuda", "an event of another backend was passed to the CUDA backend");
    return c->ev;
}

}  // namespace

cudaStream_t CudaBackend::copy_stream() {
    if (!copy_stream_) {
        CUDA_CHECK(cudaSetDevice(device_));
        CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
    }
    return copy_stream_;
}

std::unique_ptr<Backend::Event> CudaBackend::new_event() {
    CUDA_CHECK(cudaSetDevice(device_));
    return std::make_unique<CudaEvent>();
}

void CudaBackend::record(Queue q, Event& e) {
    CUDA_CHECK(cudaEventRecord(event_of(e), q == Queue::Copy ? copy_stream() : stream_));
}

void CudaBackend::wait(Queue q, Event& e) {
    CUDA_CHECK(cudaStreamWaitEvent(q == Queue::Copy ? copy_stream() : stream_, event_of(e), 0));
}

std::shared_ptr<Buffer> CudaBackend::alloc_pinned(size_t bytes) {
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, std::max<size_t>(bytes, 1), cudaHostAllocDefault);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        throw OutOfMemory(cat("[cuda] cannot pin ", bytes, " bytes of host memory for --offload (",
                              cudaGetErrorString(err), "); raise --max_vram so fewer blocks stream, or free host memory"));
    }
    return std::make_shared<PinnedBuffer>(this, p, bytes);
}

void CudaBackend::upload_async(const Tensor& dst, const void* src) {
    NvtxRange r("wanrt::upload_async");
    check_here(dst, "upload_async");
    WANRT_CHECK(dst.is_contiguous(), "cuda", "upload_async into non-contiguous ", dst.describe());
    CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src, dst.nbytes(), cudaMemcpyHostToDevice, copy_stream()));
    wrote(dst);
}

void CudaBackend::download_async(const Tensor& src, void* dst) {
    NvtxRange r("wanrt::download_async");
    check_here(src, "download_async");
    WANRT_CHECK(src.is_contiguous(), "cuda", "download_async from non-contiguous ", src.describe());
    CUDA_CHECK(cudaMemcpyAsync(dst, src.raw(), src.nbytes(), cudaMemcpyDeviceToHost, copy_stream()));
}

MemoryStats CudaBackend::memory_stats() const { return alloc_->stats(); }
void CudaBackend::reset_peak_memory() { alloc_->reset_peak(); }
void CudaBackend::release_cached_memory() { alloc_->release_cached(); }

void CudaBackend::trace_push(const char* name) {
    trace_name_.assign("wanrt::").append(name);  // NVTX copies the message during the call
    nvtxRangePushA(trace_name_.c_str());
}
void CudaBackend::trace_pop() { nvtxRangePop(); }

void CudaBackend::copy_tensor(const Tensor& src, const Tensor& dst) {
    check_here(src, "copy");
    check_here(dst, "copy");
    if (src.shape() == dst.shape() && dst.numel() > 0 && src.ndim() <= kMaxDims &&
        launch_copy_rows(src.raw(), dev_type(src.dtype()), broadcast_of(src, src.shape()), dst.raw(),
                         dev_type(dst.dtype()), broadcast_of(dst, dst.shape()), stream_)) {
        // the common case: slices and concatenations of rows (the VAE's frame caches)
    } else if (dst.is_contiguous()) {
        launch_copy(src.raw(), dev_type(src.dtype()), strided_of(src), dst.raw(), dev_type(dst.dtype()), dst.numel(),
                    stream_);
    } else {
        WANRT_CHECK(src.shape() == dst.shape(), "cuda", "copy ", src.describe(), " into ", dst.describe(),
                    ": shapes differ");
        launch_copy_strided(src.raw(), dev_type(src.dtype()), broadcast_of(src, src.shape()), dst.raw(),
                            dev_type(dst.dtype()), broadcast_of(dst, dst.shape()), dst.numel(), stream_);
    }
    wrote(dst);
}

Tensor CudaBackend::contiguous_copy(const Tensor& t) {
    Tensor c = empty(t.dtype(), t.shape());
    copy_tensor(t, c);
    return c;
}

Tensor CudaBackend::rows_unit_stride(const Tensor& t) {
    check_here(t, "modulation");
    if (t.ndim() == 2 && (t.stride(1) == 1 || t.size(1) == 1)) return t;
    return contiguous_copy(t);
}

uint64_t CudaBackend::version_of(const Tensor& t) const {
    auto it = versions_.find(t.buffer().get());
    return it == versions_.end() ? 0 : it->second;
}

// Tensors may belong to another backend object of the same device, so the test is by name.
void CudaBackend::check_here(const Tensor& t, const char* op) const {
    WANRT_CHECK(t.defined() && t.backend() &&
                    (t.backend() == this || (!t.backend()->host_visible() && t.backend()->name() == name())),
                "cuda", op, ": tensor ", t.defined() ? t.describe() : std::string("(undefined)"), " lives on ",
                t.defined() && t.backend() ? t.backend()->name() : std::string("no backend"), ", not ", name(),
                "; move it with upload first");
}

void CudaBackend::need_f32(const Tensor& t, const char* op) const {
    check_here(t, op);
    if (t.dtype() != DType::F32) unsupported_dtype(op, t.dtype());
}

void CudaBackend::unsupported_dtype(const char* op, DType t) const {
    fail(name().c_str(), "op ", op, " not supported for ", dtype_name(t));
}

const __nv_bfloat16* CudaBackend::weight_bf16(const Tensor& w) {
    check_here(w, "linear weight");
    if (w.dtype() == DType::BF16 && w.is_contiguous()) return w.data<__nv_bfloat16>();
    WANRT_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::F16 || w.dtype() == DType::BF16, "cuda",
                "linear weight ", w.describe(), " must be f32, f16 or bf16");
    const auto key = std::make_tuple(w.buffer().get(), w.offset_bytes(), w.shape(), w.strides());
    auto it = weights_.find(key);
    if (it != weights_.end()) {
        const auto src = it->second.src.lock();
        if (src.get() == w.buffer().get() && it->second.version == version_of(w))
            return static_cast<const __nv_bfloat16*>(it->second.bf16->ptr());
    }
    // Drop the copies of freed weights (inserts are rare: once per weight).
    for (auto e = weights_.begin(); e != weights_.end();)
        e = e->second.src.expired() ? weights_.erase(e) : std::next(e);
    WeightEntry e;
    e.src = w.buffer();
    e.version = version_of(w);
    e.bf16 = alloc(size_t(w.numel()) * 2);
    launch_copy(w.raw(), dev_type(w.dtype()), strided_of(w), e.bf16->ptr(), DevType::BF16, w.numel(), stream_);
    auto* p = static_cast<const __nv_bfloat16*>(e.bf16->ptr());
    weights_[key] = std::move(e);
    return p;
}

const __nv_bfloat16* CudaBackend::staged_bf16(const Tensor& x) {
    if (staged_.bf16 && staged_.src.lock().get() == x.buffer().get() && staged_.offset == x.offset_bytes() &&
        staged_.numel == x.numel() && staged_.version == version_of(x) && x.is_contiguous())
        return static_cast<const __nv_bfloat16*>(staged_.bf16->ptr());
    staged_ = {};
    Staged s;
    s.src = x.buffer();
    s.offset = x.offset_bytes();
    s.numel = x.numel();
    s.version = version_of(x);
    s.bf16 = alloc(size_t(x.numel()) * 2);
    auto* p = static_cast<__nv_bfloat16*>(s.bf16->ptr());
    if (x.is_contiguous())
        launch_f32_to_bf16(x.data<float>(), p, x.numel(), 1.f, stream_);
    else
        launch_copy(x.raw(), DevType::F32, strided_of(x), p, DevType::BF16, x.numel(), stream_);
    staged_ = std::move(s);
    return p;
}

void CudaBackend::keep_staged(const Tensor& out, std::shared_ptr<Buffer> bf16) {
    wrote(out);
    staged_ = {};
    staged_.src = out.buffer();
    staged_.offset = out.offset_bytes();
    staged_.numel = out.numel();
    staged_.version = version_of(out);
    staged_.bf16 = std::move(bf16);
}

const int32_t* CudaBackend::device_klens(const std::vector<int32_t>& k_lens, int B) {
    if (k_lens.empty()) return nullptr;
    WANRT_CHECK(int(k_lens.size()) == B, "cuda", "attention k_lens has ", k_lens.size(), " entries for a batch of ", B);
    if (k_lens != klens_host_ || !klens_buf_) {
        klens_buf_ = alloc(k_lens.size() * sizeof(int32_t));
        CUDA_CHECK(cudaMemcpyAsync(klens_buf_->ptr(), k_lens.data(), k_lens.size() * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, stream_));
        klens_host_ = k_lens;
    }
    return static_cast<const int32_t*>(klens_buf_->ptr());
}

// Key ranges for one unmasked attention of one sample: 1 (no split) unless the query tiles
// (128 rows × heads, one CTA each) fill the SMs' waves poorly; then the count in 2…4 with the
// best fill (each step > 5% better), each range keeping ≥ 1,024 keys. WANRT_ATTN_SPLIT=n forces
// n (tuning; 1 = never split, 0 = this rule). H100, 1,560 queries × 9,360 keys × 12 heads:
// 1 range 0.274 ms, 2: 0.239, 3: 0.230, 4: 0.222.
int CudaBackend::split_kv_count(int Lq, int H, int Lk) const {
    if (split_kv_ == 1) return 1;
    if (split_kv_ > 1) {  // forced (at most 8 ranges: the combine kernel's limit)
        const int n = std::min(split_kv_, 8);
        return Lk % n == 0 && Lk / n >= 64 ? n : 1;
    }
    const double sms = props_.multiProcessorCount, tiles = double((Lq + 127) / 128) * H;
    auto fill = [&](int n) { return tiles * n / sms / std::ceil(tiles * n / sms); };
    int best = 1;
    for (int n = 2; n <= 4; ++n)
        if (Lk % n == 0 && Lk / n >= 1024 && fill(n) > 1.05 * fill(best)) best = n;
    return best;
}

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

std::shared_ptr<Backend> make_cuda_backend(int device) {
    const int n = cuda_device_count();
    WANRT_CHECK(device >= 0 && device < n, "cuda", "device ", device, " requested but ", n,
                " CUDA device(s) found; pick --device cuda:0..", n - 1, " or --device cpu");
    return std::make_shared<CudaBackend>(device);
}

}  // namespace wanrt
