// Conv3d through the cuDNN 9 backend graph API: one CONVOLUTION_FORWARD operation on 5-D NCDHW
// tensors (N = 1; or NDHWC, channels last, when the caller keeps that layout) with explicit pre/post paddings, so the causal (front-only) time padding of the
// Wan VAE needs no padded copy. Plans are cached per shape; the VAE decodes frame by frame, so a
// handful of shapes repeat for the whole clip. The plan of a new shape is chosen by timing the
// heuristic's first plan_candidates() on the call's own tensors (once per shape, like cudnn.benchmark).
// Also the VAE family's ops: conv3d (cuDNN, direct kernel as fallback), channel_rms_norm, upsample2x.
#include <algorithm>

#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"
#include "cuda/cuda_cudnn.h"
#include "cuda/cuda_half_act.h"
#include "ops/ops.h"

namespace wanrt::cuda {

struct CudnnConv3d::Plan {
    std::vector<Desc> keep;
    cudnnBackendDescriptor_t plan = nullptr;
    int64_t workspace = 0;
};

CudnnConv3d::CudnnConv3d(cudaStream_t stream) : stream_(stream), cudnn_(stream) {}

CudnnConv3d::~CudnnConv3d() = default;  // members in reverse order: the plans before their cuDNN handle

bool CudnnConv3d::execute(cudnnBackendDescriptor_t plan, int64_t workspace, const void* x, const void* w, void* y) {
    const int64_t uids[] = {1, 2, 3};
    void* const ptrs[] = {const_cast<void*>(x), const_cast<void*>(w), y};
    return cudnn_.execute(plan, workspace, uids, ptrs, 3, &error_);
}

CudnnConv3d::Plan* CudnnConv3d::plan(const Conv3dShape& s, const void* x, const void* w, void* y) {
    const std::vector<int64_t> key = {s.C,      s.T,      s.H,         s.W,         s.O,         s.kt,
                                      s.kh,     s.kw,     s.pad[0],    s.pad[1],    s.pad[2],    s.pad[3],
                                      s.pad[4], s.pad[5], s.stride[0], s.stride[1], s.stride[2], int64_t(s.dt),
                                      int64_t(s.channels_last)};
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second.get();
    auto p = std::make_unique<Plan>();
    auto& keep = p->keep;
    try {
        auto tensor = [&](int64_t uid, std::vector<int64_t> dims) -> cudnnBackendDescriptor_t {
            // dims are {N or O, C, D, H, W}; channels last stores C innermost, then W, H, D, N.
            std::vector<int64_t> strides(dims.size());
            int64_t st = s.channels_last ? dims[1] : 1;
            for (size_t i = dims.size(); i-- > 0;) {
                if (s.channels_last && i == 1) continue;
                strides[i] = st;
                st *= dims[i];
            }
            if (s.channels_last) strides[1] = 1;
            Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
            const cudnnDataType_t dt = s.dt == DevType::F16    ? CUDNN_DATA_HALF
                                       : s.dt == DevType::BF16 ? CUDNN_DATA_BFLOAT16
                                                               : CUDNN_DATA_FLOAT;
            const int64_t align = 16;
            t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor type")
                .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, int64_t(dims.size()), dims.data(), "tensor dims")
                .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, int64_t(strides.size()), strides.data(),
                     "tensor strides")
                .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid")
                .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment")
                .finalize("tensor");
            keep.push_back(std::move(t));
            return keep.back().get();
        };
        const auto tx = tensor(1, {1, s.C, s.T, s.H, s.W});
        const auto tw = tensor(2, {s.O, s.C, s.kt, s.kh, s.kw});
        const auto ty = tensor(3, {1, s.O, s.To, s.Ho, s.Wo});

        Desc conv(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
        const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
        const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
        const int64_t dims = 3, dil[3] = {1, 1, 1};
        const int64_t pre[3] = {s.pad[0], s.pad[2], s.pad[4]}, post[3] = {s.pad[1], s.pad[3], s.pad[5]};
        conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, "conv comp type")
            .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, "conv mode")
            .set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims, "conv dims")
            .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dil, "conv dilations")
            .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, s.stride, "conv strides")
            .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, pre, "conv pre paddings")
            .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, post, "conv post paddings")
            .finalize("conv desc");
        keep.push_back(std::move(conv));
        const auto cd = keep.back().get();

        Desc op(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
        const float alpha = 1.f, beta = 0.f;
        op.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, tx, "conv X")
            .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, tw, "conv W")
            .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, ty, "conv Y")
            .set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, cd, "conv desc")
            .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha, "conv alpha")
            .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta, "conv beta")
            .finalize("conv op");
        keep.push_back(std::move(op));
        cudnnBackendDescriptor_t ops[] = {keep.back().get()};

        // Candidates are timed on this call's tensors (y is overwritten; the caller's run follows).
        // The heuristic's first choice is always a candidate; others only with workspaces up to
        // max(its workspace, 1 GiB).
        int64_t ws_cap = -1;
        const PlanTimer timer = [&](cudnnBackendDescriptor_t pl, int64_t ws) -> double {
            if (ws_cap < 0) ws_cap = std::max<int64_t>(ws, int64_t(1) << 30);
            if (ws > ws_cap || !execute(pl, ws, x, w, y)) return -1;  // also the warm-up
            return time_on_stream(stream_, [&] { return execute(pl, ws, x, w, y); });
        };
        const BuiltPlan bp = plan_candidates() > 1 ? build_plan(cudnn_.handle(), ops, 1, keep, timer, plan_candidates())
                                                   : build_plan(cudnn_.handle(), ops, 1, keep);
        p->workspace = bp.workspace;
        p->plan = bp.plan;
        Plan* r = p.get();
        plans_[key] = std::move(p);
        return r;
    } catch (const BuildError& e) {
        error_ = e.what;
        plans_[key] = nullptr;
        return nullptr;
    }
}

bool CudnnConv3d::run(const Conv3dShape& s, const void* x, const void* w, void* y) {
    Plan* p = plan(s, x, w, y);
    return p && execute(p->plan, p->workspace, x, w, y);
}

}  // namespace wanrt::cuda

// ---- ops ---------------------------------------------------------------------------------------

namespace wanrt {

namespace {

using namespace cuda;

// f16/bf16 weight: x (with its prefix frames) is rounded into a half buffer in one pass, cuDNN runs
// the half convolution with f32 accumulation, and the output is widened with the bias added. A
// shape cuDNN refuses in half precision is an error, not a silent f32 run.
void conv3d_half(CudaBackend& be, const Conv3dArgs& a, Conv3dShape s) {
    const Tensor& x = a.x;
    const int64_t Tp = a.prefix.defined() ? a.prefix.size(1) : 0, S = x.size(2) * x.size(3);
    s.dt = a.w.dtype() == DType::F16 ? DevType::F16 : DevType::BF16;
    Tensor xh = be.empty(a.w.dtype(), {s.C, s.T, s.H, s.W});
    launch_concat_to_half(Tp ? a.prefix.data<float>() : nullptr, Tp, x.data<float>(), x.size(1), s.C, S, xh.raw(),
                          s.dt, be.stream());
    Tensor yh = be.empty(a.w.dtype(), a.y.shape());
    WANRT_CHECK(be.conv().run(s, xh.raw(), a.w.raw(), yh.raw()), "conv3d",
                "cuDNN has no ", dtype_name(a.w.dtype()), " engine for input ", a.y.describe(), " (",
                be.conv().last_error(), "); use an f32 weight for this layer");
    launch_half_bias_to_f32(yh.raw(), s.dt, a.bias ? a.bias->data<float>() : nullptr, a.y.data<float>(), s.O,
                            a.y.numel() / std::max<int64_t>(s.O, 1), be.stream());
    be.wrote(a.y);
}

// x, its prefix and y in the weight's half dtype (activations kept half between convs): the prefix
// is concatenated in half, cuDNN writes y directly, and the bias is added in place.
void conv3d_half_io(CudaBackend& be, const Conv3dArgs& a, Conv3dShape s, const Tensor& w) {
    s.dt = w.dtype() == DType::F16 ? DevType::F16 : DevType::BF16;
    Tensor x = a.x;
    if (a.prefix.defined()) {
        Tensor cat = be.empty(x.dtype(), {s.C, s.T, s.H, s.W});
        const int64_t Tp = a.prefix.size(1);
        be.copy_tensor(a.prefix, cat.slice(1, 0, Tp));
        be.copy_tensor(a.x, cat.slice(1, Tp, s.T));
        x = cat;
    } else if (reinterpret_cast<uintptr_t>(x.raw()) % 16 != 0) {
        x = be.contiguous_copy(x);
    }
    WANRT_CHECK(reinterpret_cast<uintptr_t>(a.y.raw()) % 16 == 0, "conv3d", "output ", a.y.describe(),
                " is not 16-byte aligned");
    WANRT_CHECK(be.conv().run(s, x.raw(), w.raw(), a.y.raw()), "conv3d", "cuDNN has no ", dtype_name(w.dtype()),
                " engine for input ", x.describe(), " (", be.conv().last_error(), "); use f32 activations for this layer");
    if (a.bias) launch_half_bias_inplace(a.y.raw(), s.dt, a.bias->data<float>(), s.O, a.y.numel() / std::max<int64_t>(s.O, 1),
                                         be.stream());
    be.wrote(a.y);
}

void conv3d_cuda(CudaBackend& be, const Conv3dArgs& a);

// Channels last through the NCDHW path on permuted copies: a mixed {f32, half} signature, and any
// shape cuDNN has no NDHWC engine for. Correct, and no faster than NCDHW. Copies and the conv run
// here directly (no nested dispatch, which the profiler would count twice).
void conv3d_last_composed(CudaBackend& be, const Conv3dArgs& a) {
    Conv3dArgs n = a;
    n.p.channels_last = false;
    n.x = be.contiguous_copy(a.x.permute({3, 0, 1, 2}));  // [T, H, W, C] → [C, T, H, W]
    if (a.prefix.defined()) n.prefix = be.contiguous_copy(a.prefix.permute({3, 0, 1, 2}));
    n.y = be.empty(a.y.dtype(), {a.y.size(3), a.y.size(0), a.y.size(1), a.y.size(2)});  // [O, T', H', W']
    conv3d_cuda(be, n);
    be.copy_tensor(n.y.permute({1, 2, 3, 0}), a.y);  // → [T', H', W', O]
    be.wrote(a.y);
}

// x, prefix and y channels last, all of the weight's dtype: cuDNN's NDHWC convolution with its
// KTRSC filter ([O, kt, kh, kw, C] in memory: a weight stored so is used in place, any other is
// rearranged per call), the prefix joined in front by two contiguous copies (T is outermost), and
// the f32 bias added over y's last dim in place.
void conv3d_last(CudaBackend& be, const Conv3dArgs& a) {
    if (a.x.dtype() != a.w.dtype()) return conv3d_last_composed(be, a);
    be.check_here(a.x, "conv3d");
    be.check_here(a.w, "conv3d");
    const Tensor wk = a.w.permute({0, 2, 3, 4, 1});  // [O, C, kt, kh, kw] → [O, kt, kh, kw, C]
    const Tensor w =
        wk.is_contiguous() && reinterpret_cast<uintptr_t>(wk.raw()) % 16 == 0 ? wk : be.contiguous_copy(wk);
    const Conv3dParams& p = a.p;
    const int64_t Tp = a.prefix.defined() ? a.prefix.size(0) : 0;
    Conv3dShape s{};
    s.T = a.x.size(0) + Tp, s.H = a.x.size(1), s.W = a.x.size(2), s.C = a.x.size(3);
    s.O = a.w.size(0), s.kt = a.w.size(2), s.kh = a.w.size(3), s.kw = a.w.size(4);
    s.To = a.y.size(0), s.Ho = a.y.size(1), s.Wo = a.y.size(2);
    const int64_t pads[6] = {p.pad_t0, p.pad_t1, p.pad_h0, p.pad_h1, p.pad_w0, p.pad_w1};
    for (int i = 0; i < 6; ++i) s.pad[i] = pads[i];
    s.stride[0] = p.stride_t, s.stride[1] = p.stride_h, s.stride[2] = p.stride_w;
    s.dt = a.x.dtype() == DType::F16 ? DevType::F16 : a.x.dtype() == DType::BF16 ? DevType::BF16 : DevType::F32;
    s.channels_last = true;
    Tensor x = a.x;
    if (Tp > 0) {  // [Tp + T, H, W, C]: the prefix frames, then x's
        Tensor cat = be.empty(x.dtype(), {s.T, s.H, s.W, s.C});
        be.copy_tensor(a.prefix, cat.slice(0, 0, Tp));
        be.copy_tensor(a.x, cat.slice(0, Tp, s.T));
        x = cat;
    } else if (reinterpret_cast<uintptr_t>(x.raw()) % 16 != 0) {
        x = be.contiguous_copy(x);
    }
    WANRT_CHECK(reinterpret_cast<uintptr_t>(a.y.raw()) % 16 == 0, "conv3d", "output ", a.y.describe(),
                " is not 16-byte aligned");
    if (!be.conv().run(s, x.raw(), w.raw(), a.y.raw())) {
        if (be.first_warning(cat("conv3d channels last ", x.describe(), " ", a.w.describe())))
            std::fprintf(stderr, "[%s] cuDNN has no channels-last engine for %s * %s (%s); permuting around the NCDHW conv\n",
                         be.name().c_str(), x.describe().c_str(), a.w.describe().c_str(), be.conv().last_error().c_str());
        return conv3d_last_composed(be, a);
    }
    if (a.bias)
        launch_bias_last_inplace(a.y.raw(), s.dt, a.bias->data<float>(), a.y.numel() / std::max<int64_t>(s.O, 1), s.O,
                                 be.stream());
    be.wrote(a.y);
}

void conv3d_cuda(CudaBackend& be, const Conv3dArgs& a) {
    if (a.p.channels_last) return conv3d_last(be, a);
    const Tensor& y = a.y;
    const Conv3dParams& p = a.p;
    if (a.x.dtype() == DType::F32)
        be.need_f32(a.x, "conv3d");
    else
        be.check_here(a.x, "conv3d");
    // cuDNN wants contiguous, 16-byte aligned operands; views that are not get a copy.
    auto ready = [&](const Tensor& t) {
        return t.is_contiguous() && reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0 ? t : be.contiguous_copy(t);
    };
    const Tensor w = ready(a.w);
    Conv3dShape s{};
    s.C = a.x.size(0), s.T = a.x.size(1) + (a.prefix.defined() ? a.prefix.size(1) : 0), s.H = a.x.size(2),
    s.W = a.x.size(3);
    s.O = w.size(0), s.kt = w.size(2), s.kh = w.size(3), s.kw = w.size(4);
    s.To = y.size(1), s.Ho = y.size(2), s.Wo = y.size(3);
    const int64_t pads[6] = {p.pad_t0, p.pad_t1, p.pad_h0, p.pad_h1, p.pad_w0, p.pad_w1};
    for (int i = 0; i < 6; ++i) s.pad[i] = pads[i];
    s.stride[0] = p.stride_t, s.stride[1] = p.stride_h, s.stride[2] = p.stride_w;
    if (a.x.dtype() != DType::F32) return conv3d_half_io(be, a, s, w);
    if (w.dtype() != DType::F32) {
        Conv3dArgs h = a;
        h.w = w;
        conv3d_half(be, h, s);
        return;
    }
    Tensor x = ready(a.x);
    if (a.prefix.defined()) {  // the f32 path concatenates: cuDNN reads one contiguous input
        Tensor cat = be.empty(DType::F32, {s.C, s.T, s.H, s.W});
        const int64_t Tp = a.prefix.size(1);
        be.copy_tensor(a.prefix, cat.slice(1, 0, Tp));
        be.copy_tensor(a.x, cat.slice(1, Tp, s.T));
        x = cat;
    }
    const bool y_ok = y.is_contiguous() && reinterpret_cast<uintptr_t>(y.raw()) % 16 == 0;
    bool done = y_ok && be.conv().run(s, x.data<float>(), w.data<float>(), y.data<float>());
    if (!done) {
        if (y_ok && be.first_warning("conv3d"))
            std::fprintf(stderr, "[%s] cuDNN conv3d unavailable (%s); using the direct kernel\n", be.name().c_str(),
                         be.conv().last_error().c_str());
        launch_conv3d_direct(s, x.data<float>(), w.data<float>(), y.data<float>(), be.stream());
    }
    if (a.bias) launch_channel_bias(y.data<float>(), a.bias->data<float>(), s.O, s.To * s.Ho * s.Wo, be.stream());
    be.wrote(y);
}

void channel_rms_norm_cuda(CudaBackend& be, const ChannelRmsNormArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "channel_rms_norm");
    const int64_t C = x.size(0);
    launch_channel_rms_norm(x.data<float>(), a.gamma.data<float>(), int(a.act), a.y.data<float>(), C,
                            C > 0 ? x.numel() / C : 0, be.stream());
    be.wrote(a.y);
}

void upsample2x_cuda(CudaBackend& be, const Upsample2xArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "upsample2x");
    if (a.channels_last) {
        launch_upsample2x_last(x.raw(), a.y.raw(), 4, x.size(0), x.size(1), x.size(2), x.size(3), be.stream());
        be.wrote(a.y);
        return;
    }
    launch_upsample2x(x.data<float>(), a.y.data<float>(), x.size(0) * x.size(1), x.size(2), x.size(3), be.stream());
    be.wrote(a.y);
}

const RegisterKernel<Conv3dArgs, CudaBackend> reg_conv3d({{DType::F32, DType::F32}, {DType::F32, DType::F16},
                                                          {DType::F32, DType::BF16}, {DType::F16, DType::F16},
                                                          {DType::BF16, DType::BF16}},
                                                         &conv3d_cuda);
const RegisterKernel<ChannelRmsNormArgs, CudaBackend> reg_channel_rms_norm({{DType::F32}}, &channel_rms_norm_cuda);
const RegisterKernel<Upsample2xArgs, CudaBackend> reg_upsample2x({{DType::F32}}, &upsample2x_cuda);

}  // namespace

}  // namespace wanrt
