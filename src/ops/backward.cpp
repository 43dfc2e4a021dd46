// The checked front-ends of the backward ops (ops/backward.h): validation, output allocation,
// dispatch. Inputs are made contiguous here so the kernels see row-major f32 only.
#include "ops/backward.h"

#include <algorithm>

#include "core/error.h"

namespace wanrt::ops {

namespace {

Backend& be_of(const Tensor& x, const char* op) {
    if (!x.defined()) fail(op, "input tensor is undefined");
    return *x.backend();
}

// The dtype an op runs at: its main input's, f32 (training) or f64 (the reference path of the tests).
DType float_dt(const Tensor& x, const char* op, const char* what) {
    if (!x.defined()) fail(op, what, " is undefined");
    if (x.dtype() != DType::F32 && x.dtype() != DType::F64) fail(op, what, " must be f32 (or f64), got ", x.describe());
    return x.dtype();
}

void check_dt(const Tensor& x, DType dt, const char* op, const char* what) {
    if (!x.defined()) fail(op, what, " is undefined");
    if (x.dtype() != dt) fail(op, what, " must be ", dtype_name(dt), " as the other inputs, got ", x.describe());
}

void check_shape(const Tensor& x, const Shape& s, const char* op, const char* what) {
    if (x.shape() != s) fail(op, what, " must be ", shape_str(s), ", got ", x.describe());
}

// The backward kernels exist on the CPU and CUDA: elsewhere say so in one line instead of the
// registry's generic message.
template <class Args>
void run(Backend& be, DType dt, const Args& a, double flop = 0) {
    if (!be.supports(Args::kName, dt, dt))
        fail(Args::kName, "not implemented on ", be.name(), " for ", dtype_name(dt),
             " (training runs on cpu and cuda)");
    dispatch(be, a, {dt, dt}, flop);
}

Tensor out_like(Backend& be, DType dt, const Shape& s) {
    return be.empty(dt, s);
}

// An output the caller may pass preallocated (accumulate) or undefined (allocated here); returns
// whether the kernel adds into it.
bool prepare(Tensor* t, Backend& be, DType dt, const Shape& s, bool accumulate, const char* op, const char* what) {
    if (!t) return false;
    if (accumulate && t->defined()) {
        check_dt(*t, dt, op, what);
        check_shape(*t, s, op, what);
        if (!t->is_contiguous()) fail(op, what, " must be contiguous to accumulate into, got ", t->describe());
        return true;
    }
    *t = out_like(be, dt, s);
    return false;
}

}  // namespace

void linear_backward(const Tensor& x_in, const Tensor& w_in, const Tensor& dy_in, Tensor* dx, Tensor* dw, Tensor* db,
                     bool accumulate) {
    const char* op = "linear_backward";
    Backend& be = be_of(x_in, op);
    const DType dt = float_dt(x_in, op, "x");
    check_dt(dy_in, dt, op, "dy");
    const bool w_ok = w_in.defined() && (dt == DType::F64 ? w_in.dtype() == DType::F64
                                                          : w_in.dtype() == DType::F32 || w_in.dtype() == DType::BF16 ||
                                                                w_in.dtype() == DType::F16);
    if (!w_ok)
        fail(op, "w must be an f32, bf16 or f16 matrix (f64 with f64 x), got ",
             w_in.defined() ? w_in.describe() : "none");
    if (w_in.ndim() != 2) fail(op, "w must be [N, K], got ", w_in.describe());
    const int64_t N = w_in.size(0), K = w_in.size(1);
    if (x_in.ndim() < 1 || x_in.size(-1) != K) fail(op, "x ", x_in.describe(), " does not end in K = ", K);
    const int64_t M = x_in.numel() / std::max<int64_t>(K, 1);
    Shape ys = x_in.shape();
    ys.back() = N;
    check_shape(dy_in, ys, op, "dy");
    LinearBackwardArgs a;
    a.x = contiguous(x_in).reshape({M, K});
    // A bf16/f16 weight (a checkpoint's frozen or master-backed matrix) is widened for dx; dw never
    // reads it.
    a.w = dx ? to_dtype(w_in, dt) : Tensor();
    a.dy = contiguous(dy_in).reshape({M, N});
    a.acc_dx = prepare(dx, be, dt, x_in.shape(), accumulate, op, "dx");
    a.acc_dw = prepare(dw, be, dt, {N, K}, accumulate, op, "dw");
    a.acc_db = prepare(db, be, dt, {N}, accumulate, op, "db");
    if (dx) a.dx = dx->reshape({M, K});
    if (dw) a.dw = *dw;
    if (db) a.db = *db;
    run(be, dt, a, 2.0 * double(M) * double(N) * double(K) * ((dx ? 1 : 0) + (dw ? 1 : 0)));
}

Tensor unary_backward(Activation act, const Tensor& x, const Tensor& dy, bool overwrite_dy) {
    const char* op = "unary_backward";
    Backend& be = be_of(x, op);
    const DType dt = float_dt(x, op, "x");
    check_dt(dy, dt, op, "dy");
    check_shape(dy, x.shape(), op, "dy");
    if (act != Activation::GeluTanh && act != Activation::GeluErf && act != Activation::Silu)
        fail(op, "activation ", int(act), " has no backward (GeluTanh, GeluErf and Silu do)");
    UnaryBackwardArgs a;
    a.act = act;
    a.x = contiguous(x);
    a.dy = contiguous(dy);
    // Each element is read before it is written, by the same thread: the kernels allow dx == dy.
    a.dx = overwrite_dy ? a.dy : out_like(be, dt, x.shape());
    run(be, dt, a);
    return a.dx;
}

namespace {
void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p, DType dt,
                     const char* op) {
    check_dt(q, dt, op, "q");
    check_dt(k, dt, op, "k");
    check_dt(v, dt, op, "v");
    if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4)
        fail(op, "q, k, v must be [B, L, heads, head_dim]; got ", q.describe(), ", ", k.describe(), ", ", v.describe());
    const int64_t B = q.size(0), H = q.size(2), Lk = k.size(1), Hk = k.size(2);
    if (k.size(0) != B || v.size(0) != B || v.size(1) != Lk || v.size(2) != Hk || k.size(3) != q.size(3))
        fail(op, "shapes disagree: q ", q.describe(), ", k ", k.describe(), ", v ", v.describe());
    if (Hk == 0 || H % Hk != 0) fail(op, "query heads ", H, " must be a multiple of key heads ", Hk);
    if (!p.k_lens.empty()) {
        if (int64_t(p.k_lens.size()) != B) fail(op, "k_lens has ", p.k_lens.size(), " entries for batch ", B);
        for (int32_t l : p.k_lens)
            if (l < 0 || l > Lk) fail(op, "k_lens entry ", l, " outside [0, ", Lk, "]");
    }
    if (p.rel_bias.defined()) fail(op, "rel_bias has no backward (T5's bias is not trained here)");
}
}  // namespace

Tensor attention_lse(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p, Tensor* lse) {
    const char* op = "attention_lse";
    Backend& be = be_of(q, op);
    const DType dt = float_dt(q, op, "q");
    check_attention(q, k, v, p, dt, op);
    AttentionLseArgs a;
    a.q = contiguous(q);
    a.k = contiguous(k);
    a.v = contiguous(v);
    a.p = &p;
    a.out = out_like(be, dt, {q.size(0), q.size(1), q.size(2), v.size(3)});
    a.lse = out_like(be, dt, {q.size(0), q.size(2), q.size(1)});
    run(be, dt, a, 2.0 * double(q.size(0) * q.size(1) * q.size(2)) * double(k.size(1)) * double(q.size(3) + v.size(3)));
    if (lse) *lse = a.lse;
    return a.out;
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& dout, const Tensor& lse, const AttentionParams& p) {
    const char* op = "attention_backward";
    Backend& be = be_of(q, op);
    const DType dt = float_dt(q, op, "q");
    check_attention(q, k, v, p, dt, op);
    const Shape os{q.size(0), q.size(1), q.size(2), v.size(3)};
    check_dt(out, dt, op, "out");
    check_dt(dout, dt, op, "dout");
    check_dt(lse, dt, op, "lse");
    check_shape(out, os, op, "out");
    check_shape(dout, os, op, "dout");
    check_shape(lse, {q.size(0), q.size(2), q.size(1)}, op, "lse");
    AttentionBackwardArgs a;
    a.q = contiguous(q);
    a.k = contiguous(k);
    a.v = contiguous(v);
    a.out = contiguous(out);
    a.dout = contiguous(dout);
    a.lse = contiguous(lse);
    a.p = &p;
    a.dq = out_like(be, dt, q.shape());
    a.dk = out_like(be, dt, k.shape());
    a.dv = out_like(be, dt, v.shape());
    run(be, dt, a, 5.0 * double(q.size(0) * q.size(1) * q.size(2)) * double(k.size(1)) * double(q.size(3) + v.size(3)));
    return {a.dq, a.dk, a.dv};
}

Tensor rms_norm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor* dw) {
    const char* op = "rms_norm_backward";
    Backend& be = be_of(x, op);
    const DType dt = float_dt(x, op, "x");
    check_dt(w, dt, op, "w");
    check_dt(dy, dt, op, "dy");
    check_shape(dy, x.shape(), op, "dy");
    const int64_t D = x.size(-1);
    check_shape(w, {D}, op, "w");
    RmsNormBackwardArgs a;
    a.x = contiguous(x).reshape({x.numel() / std::max<int64_t>(D, 1), D});
    a.w = contiguous(w);
    a.dy = contiguous(dy).reshape(a.x.shape());
    a.eps = eps;
    a.dx = out_like(be, dt, a.x.shape());
    if (dw) a.dw = *dw = out_like(be, dt, {D});
    run(be, dt, a);
    return a.dx.reshape(x.shape());
}

Tensor layer_norm_backward(const Tensor& x, const Tensor* w, const Tensor* b, float eps, const Tensor& dy, Tensor* dw,
                           Tensor* db) {
    const char* op = "layer_norm_backward";
    Backend& be = be_of(x, op);
    const DType dt = float_dt(x, op, "x");
    check_dt(dy, dt, op, "dy");
    check_shape(dy, x.shape(), op, "dy");
    const int64_t D = x.size(-1);
    LayerNormBackwardArgs a;
    Tensor wc, bc;
    if (w) {
        check_dt(*w, dt, op, "w");
        check_shape(*w, {D}, op, "w");
        wc = contiguous(*w);
        a.w = &wc;
    }
    if (b) {
        check_dt(*b, dt, op, "b");
        check_shape(*b, {D}, op, "b");
        bc = contiguous(*b);
        a.b = &bc;
    }
    a.x = contiguous(x).reshape({x.numel() / std::max<int64_t>(D, 1), D});
    a.dy = contiguous(dy).reshape(a.x.shape());
    a.eps = eps;
    a.dx = out_like(be, dt, a.x.shape());
    if (w) a.dw = out_like(be, dt, {D});
    if (b) a.db = out_like(be, dt, {D});
    run(be, dt, a);
    if (dw) *dw = a.dw;
    if (db) *db = a.db;
    return a.dx.reshape(x.shape());
}

Tensor norm_modulate_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, Tensor* dshift,
                              Tensor* dscale) {
    const char* op = "norm_modulate_backward";
    Backend& be = be_of(x, op);
    const DType dt = float_dt(x, op, "x");
    check_dt(scale, dt, op, "scale");
    check_dt(dy, dt, op, "dy");
    if (x.ndim() != 3) fail(op, "x must be [G, S, D], got ", x.describe());
    const int64_t G = x.size(0), D = x.size(2);
    check_shape(dy, x.shape(), op, "dy");
    if (scale.ndim() != 2 || scale.size(0) != G || scale.size(1) != D || scale.stride(1) != 1)
        fail(op, "scale must be [", G, ", ", D, "] with a contiguous last dim, got ", scale.describe());
    NormModulateBackwardArgs a;
    a.x = contiguous(x);
    a.scale = scale;  // rows may be strided (a column of the [G, 6, D] modulation)
    a.dy = contiguous(dy);
    a.eps = eps;
    a.dx = out_like(be, dt, x.shape());
    a.dshift = out_like(be, dt, {G, D});
    a.dscale = out_like(be, dt, {G, D});
    run(be, dt, a);
    if (dshift) *dshift = a.dshift;
    if (dscale) *dscale = a.dscale;
    return a.dx;
}

Tensor gated_residual_backward(const Tensor& y, const Tensor& gate, const Tensor& dout, Tensor* dgate) {
    const char* op = "gated_residual_backward";
    Backend& be = be_of(y, op);
    const DType dt = float_dt(y, op, "y");
    check_dt(gate, dt, op, "gate");
    check_dt(dout, dt, op, "dout");
    if (y.ndim() != 3) fail(op, "y must be [G, S, D], got ", y.describe());
    const int64_t G = y.size(0), D = y.size(2);
    check_shape(dout, y.shape(), op, "dout");
    if (gate.ndim() != 2 || gate.size(0) != G || gate.size(1) != D || gate.stride(1) != 1)
        fail(op, "gate must be [", G, ", ", D, "] with a contiguous last dim, got ", gate.describe());
    GatedResidualBackwardArgs a;
    a.y = contiguous(y);
    a.gate = gate;
    a.dout = contiguous(dout);
    a.dy = out_like(be, dt, y.shape());
    a.dgate = out_like(be, dt, {G, D});
    run(be, dt, a);
    if (dgate) *dgate = a.dgate;
    return a.dy;
}

Tensor rope_backward(const Tensor& dy, const std::vector<RopeGrid>& grids, const Tensor& table) {
    const char* op = "rope_backward";
    Backend& be = be_of(dy, op);
    const DType dt = float_dt(dy, op, "dy");
    check_dt(table, dt, op, "table");
    if (dy.ndim() != 4 || dy.size(3) % 2) fail(op, "dy must be [B, L, H, d] with d even, got ", dy.describe());
    if (int64_t(grids.size()) != dy.size(0)) fail(op, grids.size(), " grids for batch ", dy.size(0));
    if (table.ndim() != 3 || table.size(1) != dy.size(3) / 2 || table.size(2) != 2)
        fail(op, "table must be [P, ", dy.size(3) / 2, ", 2], got ", table.describe());
    for (const RopeGrid& g : grids) {
        if (g.f * g.h * g.w > dy.size(1))
            fail(op, "grid ", g.f, "x", g.h, "x", g.w, " has more tokens than L = ", dy.size(1));
        if (g.frame_offset + g.f > table.size(0) || g.h > table.size(0) || g.w > table.size(0))
            fail(op, "grid ", g.f, "x", g.h, "x", g.w, " exceeds the table's ", table.size(0), " positions");
    }
    RopeBackwardArgs a;
    a.dy = contiguous(dy);
    a.grids = &grids;
    a.table = contiguous(table);
    a.dx = out_like(be, dt, dy.shape());
    run(be, dt, a);
    return a.dx;
}

Tensor patchify_backward(const Tensor& dy, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph, int pw) {
    const char* op = "patchify_backward";
    Backend& be = be_of(dy, op);
    const DType dt = float_dt(dy, op, "dy");
    if (pt <= 0 || ph <= 0 || pw <= 0 || T % pt || H % ph || W % pw)
        fail(op, "patch ", pt, "x", ph, "x", pw, " does not divide ", T, "x", H, "x", W);
    check_shape(dy, {(T / pt) * (H / ph) * (W / pw), C * pt * ph * pw}, op, "dy");
    PatchifyBackwardArgs a;
    a.dy = contiguous(dy);
    a.pt = pt, a.ph = ph, a.pw = pw;
    a.dx = out_like(be, dt, {C, T, H, W});
    run(be, dt, a);
    return a.dx;
}

Tensor unpatchify_backward(const Tensor& dy, int64_t L, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw) {
    const char* op = "unpatchify_backward";
    Backend& be = be_of(dy, op);
    const DType dt = float_dt(dy, op, "dy");
    if (dy.ndim() != 4 || dy.size(1) != f * pt || dy.size(2) != h * ph || dy.size(3) != w * pw)
        fail(op, "dy must be [C, ", f * pt, ", ", h * ph, ", ", w * pw, "], got ", dy.describe());
    if (L < f * h * w) fail(op, "L = ", L, " is fewer than the grid's ", f * h * w, " tokens");
    UnpatchifyBackwardArgs a;
    a.dy = contiguous(dy);
    a.f = f, a.h = h, a.w = w, a.pt = pt, a.ph = ph, a.pw = pw;
    a.dx = out_like(be, dt, {L, int64_t(pt) * ph * pw * dy.size(0)});
    run(be, dt, a);
    return a.dx;
}

void sum_rows(const Tensor& x, Tensor* y, bool accumulate) {
    const char* op = "sum_rows";
    Backend& be = be_of(x, op);
    const DType dt = float_dt(x, op, "x");
    if (x.ndim() != 2) fail(op, "x must be [R, C], got ", x.describe());
    SumRowsArgs a;
    a.accumulate = prepare(y, be, dt, {x.size(1)}, accumulate, op, "y");
    a.x = contiguous(x);
    a.y = *y;
    run(be, dt, a);
}

}  // namespace wanrt::ops
