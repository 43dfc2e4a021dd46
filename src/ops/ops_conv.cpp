// Checked front-end of the VAE op family (contracts in ops/ops.h).
#include "core/error.h"
#include "ops/ops.h"

namespace wanrt::ops {

namespace {

void check_f32(const char* op, const char* what, const Tensor& t) {
    WANRT_CHECK(t.defined(), op, what, " is undefined; pass a tensor");
    WANRT_CHECK(t.dtype() == DType::F32, op, what, " must be f32, got ", t.describe(),
                "; convert it with ops::to_dtype");
}

void check_backend(const char* op, const char* what, const Tensor& t, const Tensor& x) {
    WANRT_CHECK(t.backend() == x.backend(), op, what, " lives on ", t.backend() ? t.backend()->name() : "none",
                " but the input on ", x.backend() ? x.backend()->name() : "none", "; move it to the same backend");
}

}  // namespace

Tensor conv3d(const Tensor& x_in, const Tensor& w_in, const Tensor* bias_in, const Conv3dParams& p,
              const Tensor* prefix_in) {
    WANRT_CHECK(w_in.defined(), "conv3d", "weight is undefined; pass a tensor");
    WANRT_CHECK(w_in.dtype() == DType::F32 || w_in.dtype() == DType::F16 || w_in.dtype() == DType::BF16, "conv3d",
                "weight must be f32, f16 or bf16, got ", w_in.describe(), "; convert it with ops::to_dtype");
    // x f32 (rounded to a half weight's dtype inside), or already in the half weight's dtype: then the
    // output is too, and activations stay half between convs.
    WANRT_CHECK(x_in.defined(), "conv3d", "input is undefined; pass a tensor");
    WANRT_CHECK(x_in.dtype() == DType::F32 || (x_in.dtype() == w_in.dtype()), "conv3d", "input ", x_in.describe(),
                " must be f32 or the weight's dtype (", dtype_name(w_in.dtype()), "); convert it with ops::to_dtype");
    const bool cl = p.channels_last;
    const char* layout = cl ? "[T, H, W, C] (channels last)" : "[C, T, H, W]";
    WANRT_CHECK(x_in.ndim() == 4, "conv3d", "input must be ", layout, ", got ", x_in.describe(), "; add or fold dims");
    WANRT_CHECK(w_in.ndim() == 5, "conv3d", "weight must be [O, C, kt, kh, kw], got ", w_in.describe(),
                "; a Conv2d weight [O, C, kh, kw] needs unsqueeze(2)");
    check_backend("conv3d", "weight", w_in, x_in);
    // The dims of x by meaning: [C, T, H, W] or, channels last, [T, H, W, C].
    const int dc = cl ? 3 : 0, dt = cl ? 0 : 1, dh = cl ? 1 : 2, dw = cl ? 2 : 3;
    const int64_t C = x_in.size(dc), H = x_in.size(dh), W = x_in.size(dw);
    int64_t T = x_in.size(dt);
    if (prefix_in) {
        WANRT_CHECK(prefix_in->defined() && prefix_in->dtype() == x_in.dtype(), "conv3d", "prefix ",
                    prefix_in->describe(), " must have the input's dtype (", dtype_name(x_in.dtype()), ")");
        check_backend("conv3d", "prefix", *prefix_in, x_in);
        WANRT_CHECK(prefix_in->ndim() == 4 && prefix_in->size(dc) == C && prefix_in->size(dh) == H &&
                        prefix_in->size(dw) == W,
                    "conv3d", "prefix ", prefix_in->describe(), " must be ",
                    cl ? cat("[Tp, ", H, ", ", W, ", ", C, "]") : cat("[", C, ", Tp, ", H, ", ", W, "]"),
                    " like the input ", x_in.describe());
        T += prefix_in->size(dt);
    }
    const int64_t O = w_in.size(0), kt = w_in.size(2), kh = w_in.size(3), kw = w_in.size(4);
    WANRT_CHECK(w_in.size(1) == C, "conv3d", "weight ", w_in.describe(), " expects ", w_in.size(1),
                " input channels but the input ", x_in.describe(), " has ", C, "; check the layer's input");
    WANRT_CHECK(kt > 0 && kh > 0 && kw > 0, "conv3d", "empty kernel ", w_in.describe());
    WANRT_CHECK(p.pad_t0 >= 0 && p.pad_t1 >= 0 && p.pad_h0 >= 0 && p.pad_h1 >= 0 && p.pad_w0 >= 0 && p.pad_w1 >= 0,
                "conv3d", "negative padding (t ", p.pad_t0, "|", p.pad_t1, ", h ", p.pad_h0, "|", p.pad_h1, ", w ",
                p.pad_w0, "|", p.pad_w1, "); crop the input instead");
    WANRT_CHECK(p.stride_t >= 1 && p.stride_h >= 1 && p.stride_w >= 1, "conv3d", "strides must be ≥ 1, got (",
                p.stride_t, ", ", p.stride_h, ", ", p.stride_w, ")");
    const int64_t Tp = T + p.pad_t0 + p.pad_t1, Hp = H + p.pad_h0 + p.pad_h1, Wp = W + p.pad_w0 + p.pad_w1;
    WANRT_CHECK(Tp >= kt && Hp >= kh && Wp >= kw, "conv3d", "padded input [", C, ", ", Tp, ", ", Hp, ", ", Wp,
                "] is smaller than the kernel [", kt, ", ", kh, ", ", kw, "]; give more frames or pixels");
    if (bias_in) {
        check_f32("conv3d", "bias", *bias_in);
        check_backend("conv3d", "bias", *bias_in, x_in);
        WANRT_CHECK(bias_in->ndim() == 1 && bias_in->size(0) == O, "conv3d", "bias must be [", O, "], got ",
                    bias_in->describe());
    }
    const int64_t To = (Tp - kt) / p.stride_t + 1, Ho = (Hp - kh) / p.stride_h + 1, Wo = (Wp - kw) / p.stride_w + 1;
    if (cl && !x_in.backend()->prefers_channels_last_conv()) {
        // The unfused composition (and the oracle of the native path): [T, H, W, C] → [C, T, H, W],
        // the NCDHW conv, and back to [T', H', W', O].
        Conv3dParams q = p;
        q.channels_last = false;
        const Tensor xn = contiguous(x_in.permute({3, 0, 1, 2}));
        Tensor pn;
        if (prefix_in) pn = contiguous(prefix_in->permute({3, 0, 1, 2}));
        const Tensor yn = conv3d(xn, w_in, bias_in, q, prefix_in ? &pn : nullptr);  // [O, T', H', W']
        return contiguous(yn.permute({1, 2, 3, 0}));
    }
    const Shape out = cl ? Shape{To, Ho, Wo, O} : Shape{O, To, Ho, Wo};
    // Channels last hands the weight over as given: a backend that prefers it wants [O, kt, kh, kw, C]
    // storage, which a contiguous copy of the logical [O, C, kt, kh, kw] would undo.
    const Tensor x = contiguous(x_in), w = cl ? w_in : contiguous(w_in);
    Tensor b, prefix;
    if (bias_in) b = contiguous(*bias_in);
    if (prefix_in && prefix_in->size(dt) > 0) prefix = contiguous(*prefix_in);
    Tensor y = x.backend()->empty(x.dtype(), out);
    dispatch(*x.backend(), Conv3dArgs{x, w, prefix, bias_in ? &b : nullptr, p, y}, {x.dtype(), w.dtype()},
             2.0 * double(y.numel()) * double(w.numel() / w.size(0)));
    return y;
}

Tensor conv_weight_channels_last(const Tensor& w) {
    WANRT_CHECK(w.defined() && w.ndim() == 5, "conv3d", "weight must be [O, C, kt, kh, kw], got ",
                w.defined() ? w.describe() : "undefined");
    return contiguous(w.permute({0, 2, 3, 4, 1})).permute({0, 4, 1, 2, 3});  // [O, kt, kh, kw, C] storage
}

Tensor channel_rms_norm(const Tensor& x_in, const Tensor& gamma_in, Activation act) {
    WANRT_CHECK(act == Activation::None || act == Activation::Silu, "channel_rms_norm",
                "the fused activation must be none or silu");
    WANRT_CHECK(
        x_in.defined() && (x_in.dtype() == DType::F32 || x_in.dtype() == DType::F16 || x_in.dtype() == DType::BF16),
        "channel_rms_norm", "input must be f32, f16 or bf16, got ", x_in.defined() ? x_in.describe() : "undefined");
    check_f32("channel_rms_norm", "gamma", gamma_in);
    check_backend("channel_rms_norm", "gamma", gamma_in, x_in);
    WANRT_CHECK(x_in.ndim() >= 1, "channel_rms_norm", "input must be [C, ...], got ", x_in.describe());
    WANRT_CHECK(gamma_in.numel() == x_in.size(0) && gamma_in.ndim() == 1, "channel_rms_norm", "gamma must be [",
                x_in.size(0), "] for input ", x_in.describe(), ", got ", gamma_in.describe(),
                "; reshape a [C, 1, 1, 1] weight to [C]");
    const Tensor x = contiguous(x_in), g = contiguous(gamma_in);
    Tensor y = x.backend()->empty(x.dtype(), x.shape());  // half in, half out: the VAEs' half activations
    dispatch(*x.backend(), ChannelRmsNormArgs{x, g, act, y}, {x.dtype()});
    return y;
}

Tensor upsample2x(const Tensor& x_in, bool channels_last) {
    WANRT_CHECK(x_in.defined(), "upsample2x", "input is undefined; pass a tensor");
    WANRT_CHECK(x_in.dtype() == DType::F32 || x_in.dtype() == DType::F16 || x_in.dtype() == DType::BF16, "upsample2x",
                "input must be f32, f16 or bf16, got ", x_in.describe());
    WANRT_CHECK(x_in.ndim() == 4, "upsample2x", "input must be ", channels_last ? "[T, H, W, C]" : "[C, T, H, W]",
                ", got ", x_in.describe());
    const Tensor x = contiguous(x_in);
    const Shape& s = x.shape();
    const Shape out = channels_last ? Shape{s[0], 2 * s[1], 2 * s[2], s[3]} : Shape{s[0], s[1], 2 * s[2], 2 * s[3]};
    Tensor y = x.backend()->empty(x.dtype(), out);
    dispatch(*x.backend(), Upsample2xArgs{x, y, channels_last}, {x.dtype()});
    return y;
}

}  // namespace wanrt::ops
