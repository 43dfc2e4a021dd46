// Building blocks of the Wan VAE; the forward code mirrors `wan/modules/vae.py` module by module.
#include "models/vae_blocks.h"

#include <algorithm>

#include "core/error.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace wanrt::vae {

// ------------------------------------------------------------------------------------------
// Loader

Tensor Loader::conv_weight(const std::string& name, const Shape& stored, const Shape& use) {
    Tensor w = get(name, stored, use);
    return w.defined() && conv_dtype_ != w.dtype() ? ops::to_dtype(w, conv_dtype_) : w;
}

Tensor Loader::get(const std::string& name, const Shape& stored, const Shape& use) {
    if (!wl_) {
        manifest.emplace_back(name, stored);
        return {};
    }
    return wl_->param_as(name, stored, use);
}

CausalConv Loader::causal(const std::string& n, int64_t in, int64_t out, int kt, int kh, int kw, int pt, int ph,
                          int pw, int st) {
    CausalConv c;
    c.w = conv_weight(n + ".weight", {out, in, kt, kh, kw}, {out, in, kt, kh, kw});
    c.b = get(n + ".bias", {out}, {out});
    c.pt = pt, c.ph = ph, c.pw = pw, c.st = st;
    return c;
}

FrameConv Loader::frame(const std::string& n, int64_t in, int64_t out, int k) {
    FrameConv c;
    c.w = conv_weight(n + ".weight", {out, in, k, k}, {out, in, 1, k, k});
    c.b = get(n + ".bias", {out}, {out});
    return c;
}

Tensor Loader::gamma(const std::string& n, int64_t dim, bool images) {
    return images ? get(n, {dim, 1, 1}, {dim}) : get(n, {dim, 1, 1, 1}, {dim});
}

ResBlock Loader::res(const std::string& n, int64_t in, int64_t out) {
    ResBlock r;
    r.gamma0 = gamma(n + ".residual.0.gamma", in, false);
    r.conv0 = causal(n + ".residual.2", in, out, 3, 3, 3, 1, 1, 1);
    r.gamma1 = gamma(n + ".residual.3.gamma", out, false);
    r.conv1 = causal(n + ".residual.6", out, out, 3, 3, 3, 1, 1, 1);
    r.has_shortcut = in != out;
    if (r.has_shortcut) r.shortcut = causal(n + ".shortcut", in, out, 1, 1, 1, 0, 0, 0);
    return r;
}

AttnBlock Loader::attn(const std::string& n, int64_t dim) {
    AttnBlock a;
    a.dim = dim;
    a.gamma = gamma(n + ".norm.gamma", dim, true);
    a.to_qkv = frame(n + ".to_qkv", dim, 3 * dim, 1);
    a.proj = frame(n + ".proj", dim, dim, 1);
    return a;
}

Resample Loader::resample(const std::string& n, int64_t dim, ResampleMode mode, bool halve_up) {
    Resample r;
    r.mode = mode;
    const bool up = mode == ResampleMode::Up2d || mode == ResampleMode::Up3d;
    r.conv = frame(n + ".resample.1", dim, up && halve_up ? dim / 2 : dim, 3);
    if (mode == ResampleMode::Up3d) r.time_conv = causal(n + ".time_conv", dim, 2 * dim, 3, 1, 1, 1, 0, 0);
    if (mode == ResampleMode::Down3d) r.time_conv = causal(n + ".time_conv", dim, dim, 3, 1, 1, 0, 0, 0, 2);
    return r;
}

// ------------------------------------------------------------------------------------------
// Blocks

Tensor as_dtype(const Tensor& x, DType dt) {
    return x.dtype() == dt ? x : ops::to_dtype(x, dt);
}

// A contiguous copy of view in dtype dt (one pass for a permute and a dtype change).
static Tensor contiguous_as(const Tensor& view, DType dt) {
    if (view.dtype() == dt) return ops::contiguous(view);
    Tensor y = view.backend()->empty(dt, view.shape());
    ops::copy(view, y);
    return y;
}

Tensor per_frame(const Tensor& x, VaeFeatCache& fc, const std::function<Tensor(const Tensor&)>& fn) {
    return per_frame_at(x, fc, [&fn](const Tensor& f, int64_t) { return fn(f); });
}

Tensor per_frame_at(const Tensor& x, VaeFeatCache& fc, const std::function<Tensor(const Tensor&, int64_t)>& fn) {
    const int64_t T = x.size(1);
    if (T == 1) return fn(x, 0);
    const size_t idx0 = fc.idx;
    Tensor out;
    for (int64_t t = 0; t < T; ++t) {
        fc.idx = idx0;
        Tensor y = fn(x.slice(1, t, t + 1), t);  // [C', n, H', W']
        if (!out.defined()) out = x.backend()->empty(y.dtype(), {y.size(0), T * y.size(1), y.size(2), y.size(3)});
        ops::copy(y, out.slice(1, t * y.size(1), (t + 1) * y.size(1)));
    }
    return out;
}

// Contiguous (a copy unless x holds just those frames), so a cache never pins a larger activation.
Tensor last_frames(const Tensor& x, int64_t n) {
    const int64_t T = x.size(1);
    return ops::contiguous(x.slice(1, std::max<int64_t>(0, T - n), T))
        .reshape({x.size(0), std::min(n, T), x.size(2), x.size(3)});
}

// CausalConv3d.forward(x, cache_x): cache frames are prepended and reduce the front zero padding.
Tensor causal_conv(const CausalConv& c, const Tensor& x, const Tensor* cache) {
    Conv3dParams p;
    p.pad_t0 = 2 * c.pt;
    p.pad_h0 = p.pad_h1 = c.ph;
    p.pad_w0 = p.pad_w1 = c.pw;
    p.stride_t = c.st;
    if (cache && cache->defined() && p.pad_t0 > 0) {
        p.pad_t0 -= int(cache->size(1));  // the conv of [C, Tc + T, H, W] = concat(cache, x), not copied
        WANRT_ASSERT(p.pad_t0 >= 0);
        return ops::conv3d(x, c.w, &c.b, p, cache);
    }
    return ops::conv3d(x, c.w, &c.b, p);
}

// A 3×3×3 conv inside the cached loop: run with the slot's frames, then remember the last CACHE_T
// input frames (with the previous cache's last frame when this chunk has only one frame; taking
// the tail of cache ++ x covers both rules of the reference).
Tensor cached_conv(const CausalConv& c, const Tensor& x, VaeFeatCache& fc) {
    auto& slot = fc.next();
    Tensor y = causal_conv(c, x, slot.set ? &slot.frames : nullptr);
    const int64_t T = x.size(1);
    if (slot.set && T == 1 && slot.frames.size(1) == kCacheT && slot.frames.buffer().use_count() == 1) {
        // One frame after a full cache (the frame-by-frame layers, every chunk): shift the cache in
        // place, [f0, f1] → [f1, x]. Building cache ++ x and copying its tail instead costs 1.5 + 1
        // cache sizes at the largest layer (~2.3 GB at 704×1280); the frames are the same.
        ops::copy(slot.frames.slice(1, 1, 2), slot.frames.slice(1, 0, 1));
        ops::copy(x, slot.frames.slice(1, 1, 2));
        return y;
    }
    const Tensor hist = (slot.set && T < kCacheT) ? ops::concat({slot.frames, x}, 1) : x;
    slot.frames = last_frames(hist, kCacheT);
    slot.set = true;
    return y;
}

Tensor frame_conv(const FrameConv& c, const Tensor& x, int pad0, int pad1, int stride) {
    Conv3dParams p;
    p.pad_h0 = p.pad_w0 = pad0;
    p.pad_h1 = p.pad_w1 = pad1;
    p.stride_h = p.stride_w = stride;
    return ops::conv3d(x, c.w, &c.b, p);
}

Tensor res_forward(const ResBlock& r, const Tensor& x, VaeFeatCache& fc) {
    Tensor y = ops::channel_rms_norm(x, r.gamma0, Activation::Silu);  // norm → SiLU, one pass
    y = cached_conv(r.conv0, y, fc);
    y = ops::channel_rms_norm(y, r.gamma1, Activation::Silu);  // Dropout: identity at inference
    y = cached_conv(r.conv1, y, fc);
    // The shortcut last (the reference computes it first; the values are the same): x is alive
    // anyway, and h is then not held through both convs (a full frame at the widest layer).
    return ops::add(y, r.has_shortcut ? pointwise(r.shortcut, x) : x);
}

Tensor attn_forward(const AttnBlock& a, const Tensor& x) {
    const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
    Tensor y = ops::channel_rms_norm(x, a.gamma);   // per frame over channels = over dim 0
    Tensor qkv = frame_conv(a.to_qkv, y, 0, 0, 1);  // [3C, T, H, W]
    // [3C, T, H, W] → [3, C, T, H·W] → per frame tokens [T, H·W, 1 head, C] for q, k, v, in f32
    // (the attention op's q dtype; with half activations the permute widens them in the same pass).
    Tensor qkv4 = qkv.reshape({3, C, T, H * W});
    auto tokens = [&](int i) {
        return contiguous_as(qkv4.select(0, i).permute({1, 2, 0}), DType::F32).reshape({T, H * W, 1, C});
    };
    Tensor o = ops::attention(tokens(0), tokens(1), tokens(2));  // scale 1/√C, [T, H·W, 1, C]
    // [T, H·W, 1, C] → [C, T, H, W], back in x's dtype
    o = contiguous_as(o.reshape({T, H * W, C}).permute({2, 0, 1}), x.dtype()).reshape({C, T, H, W});
    o = frame_conv(a.proj, o, 0, 0, 1);
    return ops::add(o, x);
}

Tensor upsample_time(const Resample& r, Tensor x, VaeFeatCache& fc) {
    if (r.mode == ResampleMode::Up3d) {
        auto& slot = fc.next();
        if (!slot.set) {
            slot.set = true;  // first chunk: 'Rep', no time conv
            slot.rep = true;
        } else {
            const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
            // 'Rep' behaves like two zero frames of history (the reference pads the cache with
            // zeros and runs the conv with its own zero padding).
            Tensor y = causal_conv(r.time_conv, x, slot.rep ? nullptr : &slot.frames);  // [2C, T, H, W]
            Tensor hist = x;
            if (x.size(1) < kCacheT)
                hist = ops::concat(
                    {slot.rep ? ops::full(*x.backend(), x.dtype(), {C, kCacheT - T, H, W}, 0.0f) : slot.frames, x}, 1);
            slot.frames = last_frames(hist, kCacheT);
            slot.rep = false;
            // [2C, T, H, W] → [2, C, T, H·W] → [C, T, 2, H·W] → [C, 2T, H, W]: channel block j → frame 2τ + j.
            x = ops::contiguous(y.reshape({2, C, T, H * W}).permute({1, 2, 0, 3})).reshape({C, 2 * T, H, W});
        }
    }
    return x;
}

Tensor upsample_space(const Resample& r, const Tensor& x) {
    return frame_conv(r.conv, ops::upsample2x(x), 1, 1, 1);
}

Tensor resample_forward(const Resample& r, Tensor x, VaeFeatCache& fc) {
    if (r.mode == ResampleMode::Up2d || r.mode == ResampleMode::Up3d) return upsample_space(r, upsample_time(r, x, fc));
    x = frame_conv(r.conv, x, 0, 1, 2);  // ZeroPad2d((0, 1, 0, 1)), 3×3 stride 2
    if (r.mode == ResampleMode::Down3d) {
        auto& slot = fc.next();
        if (!slot.set) {
            slot.set = true;  // first chunk: remember, no time conv
            slot.frames = last_frames(x, 1);
        } else {
            Tensor cache = last_frames(x, 1);
            x = causal_conv(r.time_conv, ops::concat({slot.frames, x}, 1), nullptr);  // (3,1,1), stride 2, no pad
            slot.frames = cache;
        }
    }
    return x;
}

}  // namespace wanrt::vae
