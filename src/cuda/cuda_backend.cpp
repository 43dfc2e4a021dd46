// CudaBackend: memory (caching allocator), transfers, the bf16 weight cache and op dispatch to the
// kernels in cuda_*.cu. Policies are documented in cuda_backend.h.
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
#include "cuda/cuda_common.h"

namespace wanrt {

namespace {

using namespace cuda;

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
                    fail("cuda", "out of device memory allocating ", rounded, " bytes (", in_use_,
                         " in use); use a smaller resolution or frame count");
                }
            }
            reserved_ += rounded;
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

    CudaMemoryStats stats() {
        std::lock_guard<std::mutex> lock(mu_);
        return {in_use_, peak_, reserved_};
    }
    void reset_peak() {
        std::lock_guard<std::mutex> lock(mu_);
        peak_ = in_use_;
    }

private:
    void release_cached() {
        std::lock_guard<std::mutex> lock(mu_);
        release_cached_locked();
    }
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
    size_t in_use_ = 0, peak_ = 0, reserved_ = 0;
};

class CudaBuffer final : public Buffer {
public:
    CudaBuffer(Backend* backend, size_t bytes, std::shared_ptr<DeviceAllocator> alloc)
        : Buffer(backend, nullptr, bytes), rounded_(DeviceAllocator::round(bytes)), alloc_(std::move(alloc)) {
        ptr_ = alloc_->get(rounded_);
    }
    ~CudaBuffer() override { alloc_->put(ptr_, rounded_); }

private:
    size_t rounded_;
    std::shared_ptr<DeviceAllocator> alloc_;
};

// ---- helpers ---------------------------------------------------------------------------------

DevType dev_type(DType t) {
    return static_cast<DevType>(static_cast<int>(t));
}

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

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int device) : device_(device) {
        CUDA_CHECK(cudaSetDevice(device));
        CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        alloc_ = std::make_shared<DeviceAllocator>(device);
        workspace_ = alloc(kWorkspaceBytes);
        gemm_ = std::make_unique<GemmEngine>(stream_, workspace_->ptr(), kWorkspaceBytes);
        sdpa_ = std::make_unique<CudnnSdpa>(stream_);
        conv_ = std::make_unique<CudnnConv3d>(stream_);
    }
    ~CudaBackend() override {
        cudaStreamSynchronize(stream_);
        gemm_.reset();
        sdpa_.reset();
        conv_.reset();
        weights_.clear();
        staged_ = {};
        klens_buf_.reset();
        workspace_.reset();
        cudaStreamDestroy(stream_);
    }

    std::string name() const override { return cat("cuda:", device_); }
    std::string description() const override {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        int rt = 0;
        cudaRuntimeGetVersion(&rt);
        return cat(props_.name, ", sm_", props_.major, props_.minor, ", ", props_.multiProcessorCount, " SMs, ",
                   total_b >> 20, " MiB; CUDA runtime ", rt / 1000, ".", (rt % 1000) / 10, ", cuBLASLt ",
                   cublasLtGetVersion(), ", cuDNN ", cudnnGetVersion());
    }
    bool host_visible() const override { return false; }

    std::shared_ptr<Buffer> alloc(size_t bytes) override { return std::make_shared<CudaBuffer>(this, bytes, alloc_); }

    void upload(const Tensor& dst, const void* src) override {
        NvtxRange r("wanrt::upload");
        check_here(dst, "upload");
        WANRT_CHECK(dst.is_contiguous(), "cuda", "upload into non-contiguous ", dst.describe());
        CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src, dst.nbytes(), cudaMemcpyHostToDevice, stream_));
        wrote(dst);
    }

    void download(const Tensor& src, void* dst) override {
        NvtxRange r("wanrt::download");
        check_here(src, "download");
        if (src.is_contiguous()) {
            CUDA_CHECK(cudaMemcpyAsync(dst, src.raw(), src.nbytes(), cudaMemcpyDeviceToHost, stream_));
        } else {
            Tensor tmp = empty(src.dtype(), src.shape());
            copy(src, tmp);
            CUDA_CHECK(cudaMemcpyAsync(dst, tmp.raw(), tmp.nbytes(), cudaMemcpyDeviceToHost, stream_));
        }
        CUDA_CHECK(cudaStreamSynchronize(stream_));
    }

    void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

    // Linear weights live as bf16 on the device: an f32 checkpoint is converted once at load
    // time instead of keeping both an f32 and a bf16 copy resident.
    DType matrix_dtype(DType) const override { return DType::BF16; }

    bool supports(Op op, DType input, DType weight) const override {
        const bool f32 = input == DType::F32;
        const bool wfloat = weight == DType::F32 || weight == DType::BF16 || weight == DType::F16;
        switch (op) {
            case Op::Copy:
            case Op::Fill:
                return input != DType::COUNT;
            case Op::Linear:  // x and y f32 or bf16 (a bf16 y feeds the next linear without staging)
                return (f32 || input == DType::BF16) && wfloat;
            case Op::Embedding:
                return wfloat;
            case Op::Attention:  // K/V f32, or bf16 read in place (flash head dims; attention() checks)
                return f32 && (weight == DType::F32 || weight == DType::BF16);
            case Op::LayerNorm:
            case Op::RMSNorm:
            case Op::NormModulate:
            case Op::GatedResidual:
            case Op::Rope:
            case Op::Unary:
            case Op::Binary:
            case Op::Patchify:
            case Op::Unpatchify:
            case Op::Conv3d:
            case Op::ChannelRMSNorm:
            case Op::Upsample2x:
            case Op::LinComb:
                return f32;
            case Op::RmsNormRope:
                return f32;
            case Op::KvSinkWrite:  // f32 new K/V into an f32 or bf16 cache
                return f32 && (weight == DType::F32 || weight == DType::BF16);
            default:
                return false;
        }
    }

    // --- ops ---
    void copy(const Tensor& src, const Tensor& dst) override {
        NvtxRange r("wanrt::copy");
        check_here(src, "copy");
        check_here(dst, "copy");
        if (src.shape() == dst.shape() && dst.numel() > 0 && src.ndim() <= kMaxDims &&
            launch_copy_rows(src.raw(), dev_type(src.dtype()), broadcast_of(src, src.shape()), dst.raw(),
                             dev_type(dst.dtype()), broadcast_of(dst, dst.shape()), stream_)) {
            // the common case: slices and concatenations of rows (the VAE's frame caches)
        } else if (dst.is_contiguous()) {
            launch_copy(src.raw(), dev_type(src.dtype()), strided_of(src), dst.raw(), dev_type(dst.dtype()),
                        dst.numel(), stream_);
        } else {
            WANRT_CHECK(src.shape() == dst.shape(), "cuda", "copy ", src.describe(), " into ", dst.describe(),
                        ": shapes differ");
            launch_copy_strided(src.raw(), dev_type(src.dtype()), broadcast_of(src, src.shape()), dst.raw(),
                                dev_type(dst.dtype()), broadcast_of(dst, dst.shape()), dst.numel(), stream_);
        }
        wrote(dst);
    }

    void kv_sink_write(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                       const KvSinkWrite& p, const Tensor& decision) override {
        NvtxRange r("wanrt::kv_sink_write");
        for (const Tensor* t : {&k_new, &v_new, &k_cache, &v_cache, &decision}) check_here(*t, "kv_sink_write");
        WANRT_CHECK(p.sink <= 16, "cuda", "kv_sink_write takes at most 16 sink frames, got ", p.sink);
        WANRT_CHECK(k_cache.dtype() == DType::BF16 || k_cache.dtype() == DType::F32, "cuda",
                    "kv_sink_write cache must be bf16 or f32, got ", k_cache.describe());
        const int64_t S = p.tokens, W = k_new.size(1) * k_new.size(2);
        auto means = alloc(size_t(2 * (p.sink + 1) * W) * sizeof(double));
        launch_kv_sink_write(k_new.data<float>(), v_new.data<float>(), k_cache.raw(), v_cache.raw(),
                             dev_type(k_cache.dtype()), S, W, p.sink, p.fixed_slot, p.queue_front, p.ring_slot,
                             p.threshold, static_cast<double*>(means->ptr()), decision.data<int32_t>(), stream_);
        wrote(k_cache);
        wrote(v_cache);
        wrote(decision);
    }

    void fill(const Tensor& y, float value) override {
        NvtxRange r("wanrt::fill");
        check_here(y, "fill");
        WANRT_CHECK(y.is_contiguous(), "cuda", "fill of non-contiguous ", y.describe());
        launch_fill(y.raw(), dev_type(y.dtype()), y.numel(), value, stream_);
        wrote(y);
    }

    void lincomb(const Tensor* const* in, const float* coef, int n, const Tensor& out) override {
        NvtxRange r("wanrt::lincomb");
        check_here(out, "lincomb");
        WANRT_CHECK(n >= 1 && n <= 4, "cuda", "lincomb takes 1 to 4 inputs, got ", n);
        const float* p[4] = {nullptr, nullptr, nullptr, nullptr};
        float c[4] = {0, 0, 0, 0};
        for (int k = 0; k < n; ++k) {
            check_here(*in[k], "lincomb");
            need_f32(*in[k], "lincomb");
            p[k] = in[k]->data<float>();
            c[k] = coef[k];
        }
        launch_lincomb(p[0], p[1], p[2], p[3], c[0], c[1], c[2], c[3], n, out.data<float>(), out.numel(), stream_);
        wrote(out);
    }

    void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, const Tensor& y) override {
        NvtxRange r("wanrt::linear");
        check_here(x, "linear");
        check_here(y, "linear");
        if (x.dtype() != DType::F32 && x.dtype() != DType::BF16) unsupported_dtype("linear", x.dtype());
        if (y.dtype() != DType::F32 && y.dtype() != DType::BF16) unsupported_dtype("linear output", y.dtype());
        const int64_t K = x.size(-1), N = w.size(0), M = K > 0 ? x.numel() / K : y.numel() / N;
        const __nv_bfloat16* xb = x.dtype() == DType::BF16 ? x.data<__nv_bfloat16>() : staged_bf16(x);
        const __nv_bfloat16* wb = weight_bf16(w);
        gemm_->run(xb, wb, bias ? bias->data<float>() : nullptr, int(act), y.raw(), M, N, K, y.dtype() == DType::BF16);
        wrote(y);
    }

    void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                   const Tensor& out) override {
        NvtxRange r("wanrt::attention");
        need_f32(q, "attention");
        AttnArgs a{};
        a.B = int(q.size(0));
        a.Lq = int(q.size(1));
        a.H = int(q.size(2));
        a.d = int(q.size(3));
        a.Lk = int(k.size(1));
        a.Hk = int(k.size(2));
        a.dv = int(v.size(3));
        a.softmax_scale = p.softmax_scale != 0.f ? p.softmax_scale : 1.f / std::sqrt(float(a.d));
        a.causal = p.causal;
        a.window_left = p.window_left;
        a.window_right = p.window_right;
        a.k_lens = device_klens(p.k_lens, a.B);
        if (p.rel_bias.defined()) {
            need_f32(p.rel_bias, "attention rel_bias");
            WANRT_CHECK(p.rel_bias.is_contiguous() && p.rel_bias.numel() == int64_t(a.H) * (a.Lq + a.Lk - 1), "cuda",
                        "attention rel_bias must be contiguous [H, Lq + Lk - 1], got ", p.rel_bias.describe());
            a.rel_bias = p.rel_bias.data<float>();
        }
        const bool kv_bf16 = k.dtype() == DType::BF16;
        WANRT_CHECK(v.dtype() == k.dtype() && (kv_bf16 || k.dtype() == DType::F32), "cuda",
                    "attention k/v must both be f32 or both bf16, got ", k.describe(), ", ", v.describe());
        if (kv_bf16 && !flash_attention_supported(a.d, a.dv)) {
            // The fp32 kernels of other head dims read f32 K/V: widen them (exact) and run those.
            Tensor kf = empty(DType::F32, k.shape()), vf = empty(DType::F32, v.shape());
            copy(k, kf);
            copy(v, vf);
            attention(q, kf, vf, p, out);
            return;
        }
        if (flash_attention_supported(a.d, a.dv)) {
            // bf16 staging (bf16 K/V, e.g. a KV cache, are read in place); q_scale is applied before
            // rounding, as the reference scales q first.
            auto qb = alloc(size_t(q.numel()) * 2);
            std::shared_ptr<Buffer> kb, vb;
            auto* qp = static_cast<__nv_bfloat16*>(qb->ptr());
            launch_f32_to_bf16(q.data<float>(), qp, q.numel(), p.q_scale, stream_);
            const __nv_bfloat16 *kp, *vp;
            if (kv_bf16) {
                kp = static_cast<const __nv_bfloat16*>(k.raw());
                vp = static_cast<const __nv_bfloat16*>(v.raw());
            } else {
                kb = alloc(size_t(k.numel()) * 2), vb = alloc(size_t(v.numel()) * 2);
                launch_f32_to_bf16(k.data<float>(), static_cast<__nv_bfloat16*>(kb->ptr()), k.numel(), 1.f, stream_);
                launch_f32_to_bf16(v.data<float>(), static_cast<__nv_bfloat16*>(vb->ptr()), v.numel(), 1.f, stream_);
                kp = static_cast<const __nv_bfloat16*>(kb->ptr());
                vp = static_cast<const __nv_bfloat16*>(vb->ptr());
            }
            // Unmasked attention (every k_len covers all keys) goes to cuDNN's fused kernel when it
            // has an engine for the shape; masks and refused shapes take our flash kernel.
            bool masked = a.causal || a.window_left >= 0 || a.window_right >= 0 || a.rel_bias;
            for (int32_t kl : p.k_lens) masked = masked || kl < a.Lk;
            bool done = false;
            const int ns = masked || a.B != 1 || a.d != a.dv ? 1 : split_kv_count(a.Lq, a.H, a.Lk);
            if (ns > 1) {
                // Split-KV: a 1-frame step has too few query tiles to fill the card in whole waves;
                // ns key ranges run as a batch of ns (same q), combined by their logsumexps.
                const size_t nq = size_t(q.numel());
                auto qs = alloc(nq * 2 * size_t(ns)), os = alloc(size_t(out.numel()) * 2 * size_t(ns)),
                     ls = alloc(size_t(a.H) * size_t(a.Lq) * 4 * size_t(ns));
                auto* qsp = static_cast<__nv_bfloat16*>(qs->ptr());
                for (int i = 0; i < ns; ++i)
                    CUDA_CHECK(cudaMemcpyAsync(qsp + nq * size_t(i), qp, nq * 2, cudaMemcpyDeviceToDevice, stream_));
                if (sdpa_->run(ns, a.H, a.Hk, a.Lq, a.Lk / ns, a.d, a.softmax_scale, qsp, kp, vp,
                               static_cast<__nv_bfloat16*>(os->ptr()), static_cast<float*>(ls->ptr()))) {
                    auto ob = alloc(size_t(out.numel()) * 2);
                    launch_attention_combine(static_cast<const __nv_bfloat16*>(os->ptr()),
                                             static_cast<const float*>(ls->ptr()), ns, a.Lq, a.H, a.d,
                                             out.data<float>(), static_cast<__nv_bfloat16*>(ob->ptr()), stream_);
                    keep_staged(out, ob);
                    return;
                }
                split_kv_ = 1;  // no cuDNN engine with a logsumexp output here: stop splitting
                std::fprintf(stderr, "[%s] split-KV attention unavailable (%s); attention runs unsplit\n",
                             name().c_str(), sdpa_->last_error().c_str());
            }
            if (!masked && a.Lk > 0) {
                auto ob = alloc(size_t(out.numel()) * 2);
                auto* op = static_cast<__nv_bfloat16*>(ob->ptr());
                done = sdpa_->run(a.B, a.H, a.Hk, a.Lq, a.Lk, a.d, a.softmax_scale, qp, kp, vp, op);
                if (done) {
                    launch_bf16_to_f32(op, out.data<float>(), out.numel(), stream_);
                    keep_staged(out, ob);
                    return;
                } else if (!sdpa_warned_) {
                    sdpa_warned_ = true;
                    std::fprintf(stderr, "[%s] cuDNN attention unavailable (%s); using the built-in flash kernel\n",
                                 name().c_str(), sdpa_->last_error().c_str());
                }
            }
            if (!done) launch_flash_attention(a, qp, kp, vp, out.data<float>(), stream_);
        } else if (a.d > 128 || a.dv > 128) {
            attention_by_gemm(a, p.q_scale, q, k, v, out);
        } else {
            const float* bias = a.rel_bias;
            AttnArgs g = a;
            g.softmax_scale *= p.q_scale;
            launch_attention_generic(g, q.data<float>(), k.data<float>(), v.data<float>(), bias, out.data<float>(),
                                     stream_);
        }
        wrote(out);
    }

    // out (f32) was just written with exactly the bf16 values in `bf16`: keep them as the staged bf16
    // copy, so the output projection that follows skips its conversion.
    void keep_staged(const Tensor& out, std::shared_ptr<Buffer> bf16) {
        wrote(out);
        staged_ = {};
        staged_.src = out.buffer();
        staged_.offset = out.offset_bytes();
        staged_.numel = out.numel();
        staged_.version = version_of(out);
        staged_.bf16 = std::move(bf16);
    }

    // Key ranges for one unmasked attention of one sample: 1 (no split) unless the query tiles
    // (128 rows × heads, one CTA each) fill the SMs' waves poorly; then the count in 2…4 with the
    // best fill (each step > 5% better), each range keeping ≥ 1,024 keys. WANRT_ATTN_SPLIT=n forces
    // n (tuning; 1 = never split, 0 = this rule). H100, 1,560 queries × 9,360 keys × 12 heads:
    // 1 range 0.274 ms, 2: 0.239, 3: 0.230, 4: 0.222.
    int split_kv_count(int Lq, int H, int Lk) const {
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

    // Large head dims (the VAE's single 384-wide head): per (sample, head), S = q·kᵀ and O = P·v as
    // bf16 GEMMs with fp32 accumulation around a masked row softmax, in query chunks that keep S
    // under 256 MB.
    void attention_by_gemm(AttnArgs a, float q_scale, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& out) {
        a.softmax_scale *= q_scale;
        const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(a.Lq, (int64_t(64) << 20) / std::max(1, a.Lk)));
        auto qh = alloc(size_t(chunk) * a.d * 2), kh = alloc(size_t(a.Lk) * a.d * 2),
             vt = alloc(size_t(a.dv) * a.Lk * 2);
        auto S = alloc(size_t(chunk) * a.Lk * 4), P = alloc(size_t(chunk) * a.Lk * 2),
             O = alloc(size_t(chunk) * a.dv * 4);
        auto* qp = static_cast<__nv_bfloat16*>(qh->ptr());
        auto* kp = static_cast<__nv_bfloat16*>(kh->ptr());
        auto* vp = static_cast<__nv_bfloat16*>(vt->ptr());
        auto strided2 = [](int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
            Strided s;
            s.ndim = 2;
            s.shape[0] = rows, s.shape[1] = cols, s.stride[0] = rs, s.stride[1] = cs;
            return s;
        };
        for (int b = 0; b < a.B; ++b)
            for (int h = 0; h < a.H; ++h) {
                const int hk = h / (a.H / a.Hk);
                // k [Lk, d] and vᵀ [dv, Lk] of this head, bf16 contiguous
                launch_copy(k.data<float>() + (int64_t(b) * a.Lk * a.Hk + hk) * a.d, DevType::F32,
                            strided2(a.Lk, a.d, int64_t(a.Hk) * a.d, 1), kp, DevType::BF16, int64_t(a.Lk) * a.d,
                            stream_);
                launch_copy(v.data<float>() + (int64_t(b) * a.Lk * a.Hk + hk) * a.dv, DevType::F32,
                            strided2(a.dv, a.Lk, 1, int64_t(a.Hk) * a.dv), vp, DevType::BF16, int64_t(a.Lk) * a.dv,
                            stream_);
                for (int64_t r0 = 0; r0 < a.Lq; r0 += chunk) {
                    const int64_t rows = std::min<int64_t>(chunk, a.Lq - r0);
                    launch_copy(q.data<float>() + ((int64_t(b) * a.Lq + r0) * a.H + h) * a.d, DevType::F32,
                                strided2(rows, a.d, int64_t(a.H) * a.d, 1), qp, DevType::BF16, rows * a.d, stream_);
                    gemm_->run(qp, kp, nullptr, 0, static_cast<float*>(S->ptr()), rows, a.Lk, a.d);
                    launch_attention_softmax(a, b, h, int(r0), int(rows), static_cast<const float*>(S->ptr()),
                                             static_cast<__nv_bfloat16*>(P->ptr()), stream_);
                    gemm_->run(static_cast<const __nv_bfloat16*>(P->ptr()), vp, nullptr, 0,
                               static_cast<float*>(O->ptr()), rows, a.dv, a.Lk);
                    const Strided src = strided2(rows, a.dv, a.dv, 1),
                                  dst = strided2(rows, a.dv, int64_t(a.H) * a.dv, 1);
                    launch_copy_strided(O->ptr(), DevType::F32, src,
                                        out.data<float>() + ((int64_t(b) * a.Lq + r0) * a.H + h) * a.dv, DevType::F32,
                                        dst, rows * a.dv, stream_);
                }
            }
    }

    void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, const Tensor& y) override {
        NvtxRange r("wanrt::layer_norm");
        need_f32(x, "layer_norm");
        const int64_t D = x.size(-1);
        launch_layer_norm(x.data<float>(), w ? w->data<float>() : nullptr, b ? b->data<float>() : nullptr, eps,
                          y.data<float>(), D > 0 ? x.numel() / D : 0, D, stream_);
        wrote(y);
    }

    void rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y) override {
        NvtxRange r("wanrt::rms_norm");
        need_f32(x, "rms_norm");
        const int64_t D = x.size(-1);
        launch_rms_norm(x.data<float>(), w.data<float>(), eps, y.data<float>(), D > 0 ? x.numel() / D : 0, D, stream_);
        wrote(y);
    }

    void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, const Tensor& y) override {
        NvtxRange r("wanrt::norm_modulate");
        need_f32(x, "norm_modulate");
        const Tensor sh = rows_unit_stride(shift), sc = rows_unit_stride(scale);
        launch_norm_modulate(x.data<float>(), sh.data<float>(), sh.stride(0), sc.data<float>(), sc.stride(0), eps,
                             y.data<float>(), x.size(0), x.size(1), x.size(2), stream_);
        wrote(y);
    }

    void gated_residual(const Tensor& x, const Tensor& y, const Tensor& gate) override {
        NvtxRange r("wanrt::gated_residual");
        need_f32(x, "gated_residual");
        const Tensor g = rows_unit_stride(gate);
        launch_gated_residual(x.data<float>(), y.data<float>(), g.data<float>(), g.stride(0), x.size(0), x.size(1),
                              x.size(2), stream_);
        wrote(x);
    }

    std::vector<RopeGridDev> rope_grids(const std::vector<RopeGrid>& grids, const Tensor& table) const {
        const int64_t P = table.size(0);
        std::vector<RopeGridDev> g(grids.size());
        for (size_t b = 0; b < grids.size(); ++b) {
            const RopeGrid& s = grids[b];
            WANRT_CHECK(s.f + s.frame_offset <= P && s.h <= P && s.w <= P && s.frame_offset >= 0, "cuda", "rope grid (",
                        s.f, "+", s.frame_offset, ", ", s.h, ", ", s.w, ") of sample ", b, " exceeds the table's ", P,
                        " positions");
            g[b] = {s.f, s.h, s.w, s.frame_offset};
        }
        return g;
    }

    void rope(const Tensor& x, const std::vector<RopeGrid>& grids, const Tensor& table, const Tensor& y) override {
        NvtxRange r("wanrt::rope");
        need_f32(x, "rope");
        const std::vector<RopeGridDev> g = rope_grids(grids, table);
        launch_rope(x.data<float>(), g.data(), table.data<float>(), table.size(0), y.data<float>(), x.size(0), x.size(1),
                    x.size(2), x.size(3), stream_);
        wrote(y);
    }

    void rms_norm_rope(const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& grids,
                       const Tensor& table, const Tensor& y) override {
        NvtxRange r("wanrt::rms_norm_rope");
        need_f32(x, "rms_norm_rope");
        need_f32(w, "rms_norm_rope");
        const std::vector<RopeGridDev> g = rope_grids(grids, table);
        launch_rms_norm_rope(x.data<float>(), w.data<float>(), eps, g.data(), table.data<float>(), y.data<float>(),
                             x.size(0), x.size(1), x.size(2), x.size(3), stream_);
        wrote(y);
    }

    void unary(Activation act, const Tensor& x, const Tensor& y) override {
        NvtxRange r("wanrt::unary");
        need_f32(x, "unary");
        launch_unary(int(act), x.data<float>(), y.data<float>(), x.numel(), stream_);
        wrote(y);
    }

    void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override {
        NvtxRange r("wanrt::binary");
        need_f32(a, "binary");
        need_f32(b, "binary");
        launch_binary(int(op), a.data<float>(), broadcast_of(a, y.shape()), b.data<float>(), broadcast_of(b, y.shape()),
                      y.data<float>(), broadcast_of(y, y.shape()), y.numel(), stream_);
        wrote(y);
    }

    void patchify(const Tensor& x, int pt, int ph, int pw, const Tensor& y) override {
        NvtxRange r("wanrt::patchify");
        need_f32(x, "patchify");
        launch_patchify(x.data<float>(), x.size(0), x.size(1), x.size(2), x.size(3), pt, ph, pw, y.data<float>(),
                        stream_);
        wrote(y);
    }

    void unpatchify(const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw,
                    const Tensor& y) override {
        NvtxRange r("wanrt::unpatchify");
        need_f32(x, "unpatchify");
        launch_unpatchify(x.data<float>(), y.size(0), f, h, w, pt, ph, pw, y.data<float>(), stream_);
        wrote(y);
    }

    void embedding(const Tensor& table, const Tensor& ids, const Tensor& y) override {
        NvtxRange r("wanrt::embedding");
        check_here(table, "embedding");
        WANRT_CHECK(ids.dtype() == DType::I32, "cuda", "embedding ids must be i32, got ", ids.describe());
        const Tensor t = table.is_contiguous() ? table : contiguous_copy(table);
        launch_embedding(t.raw(), dev_type(t.dtype()), t.size(0), t.size(1), ids.data<int32_t>(), ids.numel(),
                         y.data<float>(), stream_);
        wrote(y);
    }

    void conv3d(const Tensor& x_in, const Tensor& w_in, const Tensor* bias, const Conv3dParams& p,
                const Tensor& y) override {
        NvtxRange r("wanrt::conv3d");
        need_f32(x_in, "conv3d");
        need_f32(w_in, "conv3d weight");
        // cuDNN wants contiguous, 16-byte aligned operands; views that are not get a copy.
        auto ready = [&](const Tensor& t) {
            return t.is_contiguous() && reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0 ? t : contiguous_copy(t);
        };
        const Tensor x = ready(x_in), w = ready(w_in);
        Conv3dShape s{};
        s.C = x.size(0), s.T = x.size(1), s.H = x.size(2), s.W = x.size(3);
        s.O = w.size(0), s.kt = w.size(2), s.kh = w.size(3), s.kw = w.size(4);
        s.To = y.size(1), s.Ho = y.size(2), s.Wo = y.size(3);
        const int64_t pads[6] = {p.pad_t0, p.pad_t1, p.pad_h0, p.pad_h1, p.pad_w0, p.pad_w1};
        for (int i = 0; i < 6; ++i) s.pad[i] = pads[i];
        s.stride[0] = p.stride_t, s.stride[1] = p.stride_h, s.stride[2] = p.stride_w;
        const bool y_ok = y.is_contiguous() && reinterpret_cast<uintptr_t>(y.raw()) % 16 == 0;
        bool done = y_ok && conv_->run(s, x.data<float>(), w.data<float>(), y.data<float>());
        if (!done) {
            if (y_ok && !conv_warned_) {
                conv_warned_ = true;
                std::fprintf(stderr, "[%s] cuDNN conv3d unavailable (%s); using the direct kernel\n", name().c_str(),
                             conv_->last_error().c_str());
            }
            launch_conv3d_direct(s, x.data<float>(), w.data<float>(), y.data<float>(), stream_);
        }
        if (bias) launch_channel_bias(y.data<float>(), bias->data<float>(), s.O, s.To * s.Ho * s.Wo, stream_);
        wrote(y);
    }

    void channel_rms_norm(const Tensor& x, const Tensor& gamma, Activation act, const Tensor& y) override {
        NvtxRange r("wanrt::channel_rms_norm");
        need_f32(x, "channel_rms_norm");
        const int64_t C = x.size(0);
        launch_channel_rms_norm(x.data<float>(), gamma.data<float>(), int(act), y.data<float>(), C,
                                C > 0 ? x.numel() / C : 0, stream_);
        wrote(y);
    }

    void upsample2x(const Tensor& x, const Tensor& y) override {
        NvtxRange r("wanrt::upsample2x");
        need_f32(x, "upsample2x");
        launch_upsample2x(x.data<float>(), y.data<float>(), x.size(0) * x.size(1), x.size(2), x.size(3), stream_);
        wrote(y);
    }

    CudaMemoryStats memory_stats() const { return alloc_->stats(); }
    void reset_peak() { alloc_->reset_peak(); }

private:
    static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

    // Tensors may belong to a wrapper of this backend (the profiler), so the test is by name.
    void check_here(const Tensor& t, const char* op) const {
        WANRT_CHECK(t.defined() && t.backend() &&
                        (t.backend() == this || (!t.backend()->host_visible() && t.backend()->name() == name())),
                    "cuda", op, ": tensor ", t.defined() ? t.describe() : std::string("(undefined)"), " lives on ",
                    t.defined() && t.backend() ? t.backend()->name() : std::string("no backend"), ", not ", name(),
                    "; move it with upload first");
    }
    void need_f32(const Tensor& t, const char* op) const {
        check_here(t, op);
        if (t.dtype() != DType::F32) unsupported_dtype(op, t.dtype());
    }
    [[noreturn]] void unsupported_dtype(const char* op, DType t) const {
        fail(name().c_str(), "op ", op, " not supported for ", dtype_name(t));
    }
    // Write versions per Buffer object (ours, or a wrapper such as ProfilingBackend's): a new value
    // whenever the contents may have changed (upload, fill or op output), the key of the caches
    // derived from a buffer's contents. Every write to a tensor of this backend comes through here.
    void wrote(const Tensor& t) { versions_[t.buffer().get()] = ++version_counter_; }
    uint64_t version_of(const Tensor& t) const {
        auto it = versions_.find(t.buffer().get());
        return it == versions_.end() ? 0 : it->second;
    }

    Tensor contiguous_copy(const Tensor& t) {
        Tensor c = empty(t.dtype(), t.shape());
        copy(t, c);
        return c;
    }
    // [B, D] with unit inner stride (row stride free), copied if needed.
    Tensor rows_unit_stride(const Tensor& t) {
        check_here(t, "modulation");
        if (t.ndim() == 2 && (t.stride(1) == 1 || t.size(1) == 1)) return t;
        return contiguous_copy(t);
    }

    // Cached bf16 copy of a weight; bf16 contiguous weights are used in place.
    struct WeightEntry {
        std::weak_ptr<Buffer> src;
        uint64_t version = 0;
        std::shared_ptr<Buffer> bf16;
    };
    const __nv_bfloat16* weight_bf16(const Tensor& w) {
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

    // bf16 staging of an f32 activation; the last one is kept so that q, k and v projections of
    // the same x convert it once.
    struct Staged {
        std::weak_ptr<Buffer> src;
        size_t offset = 0;
        int64_t numel = 0;
        uint64_t version = 0;
        std::shared_ptr<Buffer> bf16;
    };
    const __nv_bfloat16* staged_bf16(const Tensor& x) {
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

    const int32_t* device_klens(const std::vector<int32_t>& k_lens, int B) {
        if (k_lens.empty()) return nullptr;
        WANRT_CHECK(int(k_lens.size()) == B, "cuda", "attention k_lens has ", k_lens.size(), " entries for a batch of ",
                    B);
        if (k_lens != klens_host_ || !klens_buf_) {
            klens_buf_ = alloc(k_lens.size() * sizeof(int32_t));
            CUDA_CHECK(cudaMemcpyAsync(klens_buf_->ptr(), k_lens.data(), k_lens.size() * sizeof(int32_t),
                                       cudaMemcpyHostToDevice, stream_));
            klens_host_ = k_lens;
        }
        return static_cast<const int32_t*>(klens_buf_->ptr());
    }

    int device_;
    cudaDeviceProp props_{};
    int split_kv_ = [] {  // 0 = by rule; see split_kv_count
        const char* e = std::getenv("WANRT_ATTN_SPLIT");
        return e && *e ? std::max(0, std::atoi(e)) : 0;
    }();
    cudaStream_t stream_ = nullptr;
    std::shared_ptr<DeviceAllocator> alloc_;
    std::shared_ptr<Buffer> workspace_;
    std::unique_ptr<GemmEngine> gemm_;
    std::unique_ptr<CudnnSdpa> sdpa_;
    bool sdpa_warned_ = false;
    std::unique_ptr<CudnnConv3d> conv_;
    bool conv_warned_ = false;
    std::map<std::tuple<const Buffer*, size_t, Shape, Shape>, WeightEntry> weights_;
    Staged staged_;
    std::vector<int32_t> klens_host_;
    std::unordered_map<const Buffer*, uint64_t> versions_;
    uint64_t version_counter_ = 0;
    std::shared_ptr<Buffer> klens_buf_;
};

}  // namespace

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

CudaMemoryStats cuda_memory_stats(const Backend& backend) {
    if (auto* c = dynamic_cast<const CudaBackend*>(&backend)) return c->memory_stats();
    return {};
}

void cuda_reset_peak_memory(Backend& backend) {
    if (auto* c = dynamic_cast<CudaBackend*>(&backend)) c->reset_peak();
}

}  // namespace wanrt
