// The checked op front-end: validation, output allocation, dispatch.
#include "ops/ops.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"

namespace wanrt::ops {

namespace {

Backend& be_of(const Tensor& x, const char* op) {
    if (!x.defined()) fail(op, "input tensor is undefined");
    return *x.backend();
}

void check_same_backend(const Tensor& a, const Tensor& b, const char* op) {
    if (a.backend() != b.backend())
        fail(op, "inputs live on different backends (", a.backend()->name(), ", ", b.backend()->name(),
             "); move them to one device first");
}

void check_f32(const Tensor& x, const char* op, const char* what) {
    if (x.dtype() != DType::F32) fail(op, what, " must be f32, got ", x.describe());
}
// Elementwise ops also run on half-precision activations (the VAEs keep them between their convs).
void check_float(const Tensor& x, const char* op, const char* what) {
    if (x.dtype() != DType::F32 && x.dtype() != DType::F16 && x.dtype() != DType::BF16)
        fail(op, what, " must be f32, f16 or bf16, got ", x.describe());
}

// Rows given as [..., D] views whose last dim is contiguous (per-sample modulation vectors).
void check_rows(const Tensor& t, int64_t B, int64_t D, const char* op, const char* what) {
    if (t.ndim() != 2 || t.size(0) != B || t.size(1) != D || t.stride(1) != 1)
        fail(op, what, " must be [", B, ", ", D, "] with a contiguous last dim, got ", t.describe());
    check_f32(t, op, what);
}

}  // namespace

Tensor contiguous(const Tensor& x) {
    // Kernels load 8 or 16 bytes at a time; a view that starts off a 16-byte boundary (a slice at
    // an odd offset, never a tensor a backend made) is copied like a strided one.
    if (x.is_contiguous() && reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0) return x;
    Backend& be = be_of(x, "contiguous");
    Tensor y = be.empty(x.dtype(), x.shape());
    copy(x, y);
    return y;
}

Tensor to_dtype(const Tensor& x, DType dtype) {
    if (x.dtype() == dtype) return contiguous(x);
    Backend& be = be_of(x, "to_dtype");
    Tensor y = be.empty(dtype, x.shape());
    copy(x, y);
    return y;
}

void copy(const Tensor& src, const Tensor& dst) {
    Backend& be = be_of(src, "copy");
    if (!dst.defined()) fail("copy", "destination tensor is undefined");
    check_same_backend(src, dst, "copy");
    if (src.shape() != dst.shape()) fail("copy", "shapes differ: ", src.describe(), " into ", dst.describe());
    if (src.numel() == 0) return;
    dispatch(be, CopyArgs{src, dst}, {src.dtype(), dst.dtype()});
}

void fill(const Tensor& y, float value) {
    Backend& be = be_of(y, "fill");
    if (!y.is_contiguous()) fail("fill", "tensor ", y.describe(), " must be contiguous");
    dispatch(be, FillArgs{y, value}, {y.dtype()});
}

void lincomb(const Tensor* const* in, const float* coef, int n, const Tensor& out) {
    if (n < 1 || n > 4) fail("lincomb", "takes 1 to 4 inputs, got ", n);
    Backend& be = be_of(out, "lincomb");
    const DType t = out.dtype();
    if ((t != DType::F32 && t != DType::BF16 && t != DType::F16) || !out.is_contiguous())
        fail("lincomb", "output must be contiguous f32, bf16 or f16, got ", out.describe());
    LinCombArgs a;
    a.n = n;
    a.out = out;
    for (int k = 0; k < n; ++k) {
        const Tensor& t_in = *in[k];
        const DType want = k == 0 ? t : DType::F32;  // a half output: its first input in its dtype, the rest f32
        if (t_in.dtype() != want || !t_in.is_contiguous() || t_in.shape() != out.shape())
            fail("lincomb", "input ", k, " is ", t_in.describe(), ", expected contiguous ", dtype_name(want), " ",
                 shape_str(out.shape()));
        check_same_backend(t_in, out, "lincomb");
        a.in[k] = in[k];
        a.coef[k] = coef[k];
    }
    dispatch(be, a, {in[0]->dtype(), t});
}

DType linear_chain_dtype(const Backend& be, DType weight) {
    // FP8 linears quantize their input to e4m3 anyway: a bf16 hand-over costs nothing in accuracy,
    // on every backend that has the op (so the CPU emulation rounds where the GPU does).
    if (weight == DType::F8E4M3) return be.supports("linear_fp8", DType::BF16, weight) ? DType::BF16 : DType::F32;
    return be.supports(LinearArgs::kName, DType::BF16, weight) ? DType::BF16 : DType::F32;
}

Tensor linear(const Tensor& x_in, const Tensor& w, const Tensor* bias, Activation act, DType out_dtype) {
    Backend& be = be_of(x_in, "linear");
    check_same_backend(x_in, w, "linear");
    if (x_in.dtype() != DType::F32 && x_in.dtype() != DType::BF16)
        fail("linear", "input must be f32 (or bf16 where supported), got ", x_in.describe());
    for (DType t : {x_in.dtype(), out_dtype})
        if (t != DType::F32 && (t != DType::BF16 || !be.supports(LinearArgs::kName, DType::BF16, w.dtype())))
            fail("linear", dtype_name(t), " activations are not supported on ", be.name(), "; use f32 (see linear_chain_dtype)");
    if (w.ndim() != 2) fail("linear", "weight must be [N, K], got ", w.describe());
    if (x_in.ndim() < 1 || x_in.size(-1) != w.size(1))
        fail("linear", "input ", x_in.describe(), " does not match weight ", w.describe(), " (last dims differ)");
    if (!be.supports(LinearArgs::kName, x_in.dtype(), w.dtype()))
        fail("linear", "weight dtype ", dtype_name(w.dtype()), " is not supported on ", be.name());
    if (!w.is_contiguous()) fail("linear", "weight ", w.describe(), " must be contiguous");
    if (bias && (bias->ndim() != 1 || bias->size(0) != w.size(0) || bias->dtype() != DType::F32))
        fail("linear", "bias must be f32[", w.size(0), "], got ", bias->describe());
    Tensor x = contiguous(x_in);
    Shape out = x.shape();
    out.back() = w.size(0);
    Tensor y = be.empty(out_dtype, out);
    dispatch(be, LinearArgs{x, w, bias, act, y}, {x.dtype(), w.dtype()}, 2.0 * double(y.numel()) * double(w.size(1)));
    return y;
}

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionParams& p) {
    Backend& be = be_of(q_in, "attention");
    check_same_backend(q_in, k_in, "attention");
    check_same_backend(q_in, v_in, "attention");
    if (q_in.ndim() != 4 || k_in.ndim() != 4 || v_in.ndim() != 4)
        fail("attention", "q, k, v must be [B, L, heads, head_dim]; got ", q_in.describe(), ", ", k_in.describe(),
             ", ", v_in.describe());
    const int64_t B = q_in.size(0), Lq = q_in.size(1), H = q_in.size(2), D = q_in.size(3);
    const int64_t Lk = k_in.size(1), Hk = k_in.size(2);
    if (k_in.size(0) != B || v_in.size(0) != B || v_in.size(1) != Lk || v_in.size(2) != Hk || k_in.size(3) != D)
        fail("attention", "shapes disagree: q ", q_in.describe(), ", k ", k_in.describe(), ", v ", v_in.describe());
    if (Hk == 0 || H % Hk != 0) fail("attention", "query heads ", H, " must be a multiple of key heads ", Hk);
    if (!p.k_lens.empty()) {
        if (int64_t(p.k_lens.size()) != B) fail("attention", "k_lens has ", p.k_lens.size(), " entries for batch ", B);
        for (int32_t l : p.k_lens)
            if (l < 0 || l > Lk) fail("attention", "k_lens entry ", l, " outside [0, ", Lk, "]");
    }
    if (p.rel_bias.defined()) {
        if (p.rel_bias.ndim() != 2 || p.rel_bias.size(0) != H || p.rel_bias.size(1) != Lq + Lk - 1 ||
            p.rel_bias.dtype() != DType::F32 || !p.rel_bias.is_contiguous())
            fail("attention", "rel_bias must be contiguous f32[", H, ", ", Lq + Lk - 1, "], got ",
                 p.rel_bias.describe());
    }
    check_f32(q_in, "attention", "q");
    // K/V may be kept in a narrower dtype (a bf16 KV cache) where the backend reads it directly.
    if (k_in.dtype() != v_in.dtype())
        fail("attention", "k and v must share a dtype, got ", k_in.describe(), ", ", v_in.describe());
    if (k_in.dtype() != DType::F32 && !be.supports(AttentionArgs::kName, DType::F32, k_in.dtype()))
        fail("attention", "k/v dtype ", dtype_name(k_in.dtype()), " is not supported on ", be.name(),
             "; pass f32 k/v (make the KV cache with this backend's kv_dtype)");
    Tensor q = contiguous(q_in), k = contiguous(k_in), v = contiguous(v_in);
    Tensor out = be.empty(DType::F32, {B, Lq, H, v.size(3)});
    // Dense count (masked keys included): 2·Lq·Lk·(d + dv) per head.
    const double flop = 2.0 * double(B * Lq * H) * double(Lk) * double(D + v.size(3));
    dispatch(be, AttentionArgs{q, k, v, &p, out}, {q.dtype(), k.dtype()}, flop);
    return out;
}

void kv_sink_write(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                   const KvSinkWrite& p, const Tensor& decision) {
    Backend& be = be_of(k_new, "kv_sink_write");
    for (const Tensor* t : {&v_new, &k_cache, &v_cache, &decision}) check_same_backend(k_new, *t, "kv_sink_write");
    const int64_t S = p.tokens;
    if (k_new.ndim() != 3 || k_new.size(0) != S || v_new.shape() != k_new.shape() || k_cache.ndim() != 3 ||
        k_cache.size(1) != k_new.size(1) || k_cache.size(2) != k_new.size(2) || v_cache.shape() != k_cache.shape() ||
        S < 1 || k_cache.size(0) % S != 0)
        fail("kv_sink_write", "new K/V must be [", S, ", N, d] and the cache [K·", S, ", N, d]; got ", k_new.describe(),
             ", ", v_new.describe(), ", ", k_cache.describe(), ", ", v_cache.describe());
    const int64_t K = k_cache.size(0) / S;
    if (p.sink < 1 || p.sink >= K || p.fixed_slot >= K || p.queue_front >= p.sink || p.ring_slot >= K ||
        (p.fixed_slot < 0 && (p.ring_slot < p.sink)))
        fail("kv_sink_write", "slots out of range: sink ", p.sink, ", fixed ", p.fixed_slot, ", queue front ",
             p.queue_front, ", ring ", p.ring_slot, " for a cache of ", K, " frames");
    check_f32(k_new, "kv_sink_write", "k_new");
    check_f32(v_new, "kv_sink_write", "v_new");
    if (k_cache.dtype() != v_cache.dtype() || !be.supports(KvSinkWriteArgs::kName, DType::F32, k_cache.dtype()))
        fail("kv_sink_write", "cache dtype ", dtype_name(k_cache.dtype()), "/", dtype_name(v_cache.dtype()),
             " is not a KV-cache dtype of ", be.name(), "; make the cache with kv_dtype(backend)");
    for (const Tensor* t : {&k_new, &v_new, &k_cache, &v_cache, &decision})
        if (!t->is_contiguous()) fail("kv_sink_write", "tensors must be contiguous, got ", t->describe());
    if (decision.dtype() != DType::I32 || decision.numel() != 2)
        fail("kv_sink_write", "decision must be i32[2], got ", decision.describe());
    dispatch(be, KvSinkWriteArgs{k_new, v_new, k_cache, v_cache, p, decision}, {DType::F32, k_cache.dtype()});
}

Tensor layer_norm(const Tensor& x_in, const Tensor* w, const Tensor* b, float eps) {
    Backend& be = be_of(x_in, "layer_norm");
    check_f32(x_in, "layer_norm", "input");
    const int64_t D = x_in.size(-1);
    for (const Tensor* t : {w, b})
        if (t && (t->ndim() != 1 || t->size(0) != D || t->dtype() != DType::F32))
            fail("layer_norm", "weight/bias must be f32[", D, "], got ", t->describe());
    Tensor x = contiguous(x_in);
    Tensor y = be.empty(DType::F32, x.shape());
    dispatch(be, LayerNormArgs{x, w, b, eps, y});
    return y;
}

Tensor rms_norm(const Tensor& x_in, const Tensor& w, float eps) {
    Backend& be = be_of(x_in, "rms_norm");
    check_f32(x_in, "rms_norm", "input");
    const int64_t D = x_in.size(-1);
    if (w.ndim() != 1 || w.size(0) != D || w.dtype() != DType::F32)
        fail("rms_norm", "weight must be f32[", D, "], got ", w.describe());
    Tensor x = contiguous(x_in);
    Tensor y = be.empty(DType::F32, x.shape());
    dispatch(be, RmsNormArgs{x, w, eps, y});
    return y;
}

Tensor norm_modulate(const Tensor& x_in, const Tensor& shift, const Tensor& scale, float eps) {
    Backend& be = be_of(x_in, "norm_modulate");
    if (x_in.ndim() != 3) fail("norm_modulate", "input must be [B, L, D], got ", x_in.describe());
    check_f32(x_in, "norm_modulate", "input");
    check_rows(shift, x_in.size(0), x_in.size(2), "norm_modulate", "shift");
    check_rows(scale, x_in.size(0), x_in.size(2), "norm_modulate", "scale");
    Tensor x = contiguous(x_in);
    Tensor y = be.empty(DType::F32, x.shape());
    dispatch(be, NormModulateArgs{x, shift, scale, eps, y});
    return y;
}

void gated_residual(const Tensor& x, const Tensor& y_in, const Tensor& gate) {
    Backend& be = be_of(x, "gated_residual");
    if (x.ndim() != 3 || !x.is_contiguous() || y_in.shape() != x.shape())
        fail("gated_residual", "x must be contiguous [B, L, D] and y the same shape; got ", x.describe(), ", ",
             y_in.describe());
    check_rows(gate, x.size(0), x.size(2), "gated_residual", "gate");
    Tensor y = contiguous(y_in);
    dispatch(be, GatedResidualArgs{x, y, gate});
}

namespace {
void check_rope_args(const Tensor& x_in, const std::vector<RopeGrid>& grids, const Tensor& table, const char* op) {
    if (x_in.ndim() != 4 || x_in.size(3) % 2 != 0)
        fail(op, "input must be [B, L, heads, head_dim] with an even head_dim, got ", x_in.describe());
    const int64_t B = x_in.size(0), L = x_in.size(1), D = x_in.size(3);
    if (int64_t(grids.size()) != B) fail(op, grids.size(), " grids for a batch of ", B);
    if (table.ndim() != 3 || table.size(1) != D / 2 || table.size(2) != 2 || table.dtype() != DType::F32)
        fail(op, "table must be f32[P, ", D / 2, ", 2], got ", table.describe());
    for (const RopeGrid& g : grids) {
        if (g.f * g.h * g.w > L)
            fail(op, "grid ", g.f, "x", g.h, "x", g.w, " has more tokens than the sequence length ", L);
        if (g.frame_offset < 0 || g.frame_offset + g.f > table.size(0) || g.h > table.size(0) || g.w > table.size(0))
            fail(op, "positions up to (", g.frame_offset + g.f, ", ", g.h, ", ", g.w, ") exceed the ", table.size(0),
                 "-entry RoPE table; use a smaller size or fewer frames");
    }
    check_f32(x_in, op, "input");
}
}  // namespace

Tensor rms_norm_rope(const Tensor& x_in, const Tensor& w, float eps, const std::vector<RopeGrid>& grids,
                     const Tensor& table) {
    Backend& be = be_of(x_in, "rms_norm_rope");
    check_rope_args(x_in, grids, table, "rms_norm_rope");
    const int64_t HD = x_in.size(2) * x_in.size(3);
    if (w.ndim() != 1 || w.size(0) != HD || w.dtype() != DType::F32)
        fail("rms_norm_rope", "weight must be f32[", HD, "], got ", w.describe());
    Tensor x = contiguous(x_in);
    Tensor y = be.empty(DType::F32, x.shape());
    dispatch(be, RmsNormRopeArgs{x, contiguous(w), eps, &grids, table, y});
    return y;
}

Tensor rope(const Tensor& x_in, const std::vector<RopeGrid>& grids, const Tensor& table) {
    Backend& be = be_of(x_in, "rope");
    check_rope_args(x_in, grids, table, "rope");
    Tensor x = contiguous(x_in);
    Tensor y = be.empty(DType::F32, x.shape());
    dispatch(be, RopeArgs{x, &grids, table, y});
    return y;
}

Tensor unary(Activation act, const Tensor& x_in) {
    Backend& be = be_of(x_in, "unary");
    check_float(x_in, "unary", "input");
    Tensor x = contiguous(x_in);
    Tensor y = be.empty(x.dtype(), x.shape());
    dispatch(be, UnaryArgs{act, x, y}, {x.dtype()});
    return y;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
    Backend& be = be_of(a, "binary");
    check_same_backend(a, b, "binary");
    check_float(a, "binary", "a");
    if (b.dtype() != a.dtype()) fail("binary", "b ", b.describe(), " must have a's dtype (", dtype_name(a.dtype()), ")");
    const int nd = std::max(a.ndim(), b.ndim());
    if (nd > 6) fail("binary", "at most 6 dims, got ", nd);
    Shape out(nd);
    for (int i = 0; i < nd; ++i) {
        int ia = i - (nd - a.ndim()), ib = i - (nd - b.ndim());
        int64_t sa = ia >= 0 ? a.size(ia) : 1, sb = ib >= 0 ? b.size(ib) : 1;
        if (sa != sb && sa != 1 && sb != 1)
            fail("binary", "shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " do not broadcast");
        out[i] = sa == 1 ? sb : sa;
    }
    Tensor y = be.empty(a.dtype(), out);
    dispatch(be, BinaryArgs{op, a, b, y}, {a.dtype()});
    return y;
}

Tensor patchify(const Tensor& x_in, int pt, int ph, int pw) {
    Backend& be = be_of(x_in, "patchify");
    if (x_in.ndim() != 4) fail("patchify", "input must be [C, T, H, W], got ", x_in.describe());
    if (x_in.size(1) % pt || x_in.size(2) % ph || x_in.size(3) % pw)
        fail("patchify", "latent ", shape_str(x_in.shape()), " is not divisible by the patch (", pt, ", ", ph, ", ",
             pw, "); use frame/height/width multiples of the patch size");
    check_f32(x_in, "patchify", "input");
    Tensor x = contiguous(x_in);
    const int64_t L = (x.size(1) / pt) * (x.size(2) / ph) * (x.size(3) / pw);
    Tensor y = be.empty(DType::F32, {L, x.size(0) * pt * ph * pw});
    dispatch(be, PatchifyArgs{x, pt, ph, pw, y});
    return y;
}

Tensor unpatchify(const Tensor& x_in, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw) {
    Backend& be = be_of(x_in, "unpatchify");
    const int64_t patch = int64_t(pt) * ph * pw;
    if (x_in.ndim() != 2 || x_in.size(0) < f * h * w || x_in.size(1) % patch)
        fail("unpatchify", "input ", x_in.describe(), " does not hold ", f * h * w, " tokens of a multiple of ", patch,
             " features");
    check_f32(x_in, "unpatchify", "input");
    Tensor x = contiguous(x_in);
    Tensor y = be.empty(DType::F32, {x.size(1) / patch, f * pt, h * ph, w * pw});
    dispatch(be, UnpatchifyArgs{x, f, h, w, pt, ph, pw, y});
    return y;
}

Tensor full(Backend& be, DType dtype, const Shape& shape, float value) {
    Tensor y = be.empty(dtype, shape);
    fill(y, value);
    return y;
}

Tensor from_host(Backend& be, DType dtype, const Shape& shape, const void* data) {
    Tensor y = be.empty(dtype, shape);
    be.upload(y, data);
    return y;
}

std::vector<float> to_host_f32(const Tensor& x) {
    Tensor c = to_dtype(x, DType::F32);
    std::vector<float> out(size_t(c.numel()));
    c.backend()->synchronize();
    c.backend()->download(c, out.data());
    return out;
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
    if (xs.empty()) fail("concat", "no inputs");
    Backend& be = be_of(xs[0], "concat");
    const int nd = xs[0].ndim();
    const int d = dim < 0 ? dim + nd : dim;
    if (d < 0 || d >= nd) fail("concat", "dim ", dim, " out of range for ", xs[0].describe());
    Shape out = xs[0].shape();
    out[d] = 0;
    for (const Tensor& x : xs) {
        check_same_backend(xs[0], x, "concat");
        if (x.ndim() != nd || x.dtype() != xs[0].dtype()) fail("concat", "inputs differ: ", xs[0].describe(), " vs ", x.describe());
        for (int i = 0; i < nd; ++i)
            if (i != d && x.size(i) != xs[0].size(i))
                fail("concat", "inputs differ outside dim ", d, ": ", xs[0].describe(), " vs ", x.describe());
        out[d] += x.size(d);
    }
    Tensor y = be.empty(xs[0].dtype(), out);
    int64_t at = 0;
    for (const Tensor& x : xs) {
        if (x.size(d) == 0) continue;
        copy(x, y.slice(d, at, at + x.size(d)));  // strided destination
        at += x.size(d);
    }
    return y;
}

}  // namespace wanrt::ops
