// Op-table rows of the backward ops (ops/backward.h). The reference of each is float64 central
// finite differences of the forward's float64 reference (ref64.h): for a random upstream gradient
// dy, ∂(dy · f(inputs))/∂input, one input element at a time, with step 1e-5 (truncation ~1e-10,
// far under the f32 tolerance). So each backward is held against the forward's contract, not
// against a second hand-written derivative. Shapes are small (every element is perturbed twice)
// and awkward: odd sizes, k_lens, GQA, padding tokens, strided modulation rows.
#include <cmath>
#include <functional>
#include <limits>
#include <memory>

#include "core/error.h"
#include "ops/backward.h"
#include "testing/op_table.h"
#include "testing/ref64.h"
#include "train/adamw.h"

namespace wanrt::testing {

namespace {

constexpr DType F32 = DType::F32;
using Vec = std::vector<double>;
using Act = Activation;
const std::vector<OpSig> kF32 = {{F32, F32}};
// The backward kernels run at f32 and at f64 (the formulas held to finite differences at ~1e-10).
const std::vector<OpSig> kBoth = {{F32, F32}, {DType::F64, DType::F64}};

using Fn = std::function<Vec(const std::vector<Vec>&)>;

// ∂(dy · f(in))/∂in[which], central differences.
Vec fd_grad(const Fn& f, std::vector<Vec> in, size_t which, const Vec& dy, double h = 1e-5) {
    auto loss = [&](const std::vector<Vec>& a) {
        const Vec y = f(a);
        double s = 0;
        for (size_t i = 0; i < y.size(); ++i) s += y[i] * dy[i];
        return s;
    };
    Vec g(in[which].size());
    for (size_t i = 0; i < g.size(); ++i) {
        const double x0 = in[which][i];
        in[which][i] = x0 + h;
        const double lp = loss(in);
        in[which][i] = x0 - h;
        const double lm = loss(in);
        in[which][i] = x0;
        g[i] = (lp - lm) / (2 * h);
    }
    return g;
}

Vec join(std::initializer_list<Vec> parts) {
    Vec out;
    for (const Vec& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// The compared outputs: several tensors read back and concatenated.
using Outs = std::shared_ptr<std::vector<Tensor>>;
std::function<Vec()> read_all(Outs o) {
    return [o] {
        Vec v;
        for (const Tensor& t : *o) {
            const Vec p = host_f64(t);
            v.insert(v.end(), p.begin(), p.end());
        }
        return v;
    };
}

Vec pick_rows(const Vec& v, int64_t rows, int64_t stride, int64_t offset, int64_t n) {
    Vec out;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) out.push_back(v[size_t(r * stride + offset + i)]);
    return out;
}

// ---- linear -----------------------------------------------------------------------------------
OpCase linear_bw(std::string name, int64_t M, int64_t N, int64_t K, bool accumulate = false, int64_t batch = 0,
                 DType wt = F32) {
    return {"linear_backward", std::move(name), wt == F32 ? kBoth : kF32, false, Check::Close, [=](CaseCtx& c) {
                const int64_t rows = M * std::max<int64_t>(batch, 1);
                const Shape xs = batch ? Shape{batch, M, K} : Shape{M, K};
                const Shape ys = batch ? Shape{batch, M, N} : Shape{M, N};
                Input x = c.rand(c.sig.in, xs), w = c.rand(wt == F32 ? c.sig.in : wt, {N, K}, 0.3f),
                      b = c.rand(c.sig.in, {N}), dy = c.rand(c.sig.in, ys);
                Input dx0 = c.rand(c.sig.in, xs), dw0 = c.rand(c.sig.in, {N, K}), db0 = c.rand(c.sig.in, {N});
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] {
                    Tensor dx, dw, db;
                    if (accumulate) dx = dx0.t, dw = dw0.t, db = db0.t;
                    ops::linear_backward(x.t, w.t, dy.t, &dx, &dw, &db, accumulate);
                    *o = {dx, dw, db};
                };
                p.result = read_all(o);
                const Fn f = [=](const std::vector<Vec>& a) {
                    return ref64::linear(a[0], a[1], &a[2], Act::None, rows, N, K);
                };
                Vec gx = fd_grad(f, {x.v, w.v, b.v}, 0, dy.v), gw = fd_grad(f, {x.v, w.v, b.v}, 1, dy.v),
                    gb = fd_grad(f, {x.v, w.v, b.v}, 2, dy.v);
                if (accumulate) {
                    for (size_t i = 0; i < gx.size(); ++i) gx[i] += dx0.v[i];
                    for (size_t i = 0; i < gw.size(); ++i) gw[i] += dw0.v[i];
                    for (size_t i = 0; i < gb.size(); ++i) gb[i] += db0.v[i];
                }
                p.ref = join({gx, gw, gb});
                p.shape = cat(rows, "x", N, "x", K);
                return p;
            }};
}

// overwrite: the result written over a copy of dy (the case fails unless it is that copy).
OpCase unary_bw(std::string name, Act act, Shape shape, bool overwrite = false) {
    return {"unary_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                Input x = c.rand(c.sig.in, shape, 3.f), dy = c.rand(c.sig.in, shape);
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] {
                    if (!overwrite) {
                        *o = {ops::unary_backward(act, x.t, dy.t)};
                        return;
                    }
                    const Tensor d = dy.t.backend()->empty(dy.t.dtype(), dy.t.shape());  // run may repeat
                    ops::copy(dy.t, d);
                    *o = {ops::unary_backward(act, x.t, d, true)};
                    if (o->front().raw() != d.raw()) fail("unary_backward", "overwrite_dy wrote to a new buffer");
                };
                p.result = read_all(o);
                // Elementwise: one perturbation of every element at once gives every derivative.
                const double h = 1e-5;
                p.ref.resize(x.v.size());
                for (size_t i = 0; i < x.v.size(); ++i)
                    p.ref[i] =
                        dy.v[i] * (ref64::activation(act, x.v[i] + h) - ref64::activation(act, x.v[i] - h)) / (2 * h);
                p.shape = shape_str(shape);
                return p;
            }};
}

// ---- attention ----------------------------------------------------------------------------------
struct AttnBw {
    int64_t B = 1, Lq = 1, Lk = 1, H = 1, Hk = 1, d = 8, dv = 8;
    std::vector<int32_t> k_lens = {};
    bool causal = false;
    int wl = -1, wr = -1;
    float q_scale = 1.f, softmax_scale = 0.f;
};

AttentionParams params_of(const AttnBw& a) {
    AttentionParams p;
    p.k_lens = a.k_lens, p.causal = a.causal, p.window_left = a.wl, p.window_right = a.wr;
    p.q_scale = a.q_scale, p.softmax_scale = a.softmax_scale;
    return p;
}

// lse [B, H, Lq] of the scaled, masked scores, in float64 (the mask rule of AttentionParams).
Vec lse_ref(const Vec& q, const Vec& k, const AttnBw& a, const AttentionParams& p) {
    const double scale = (p.softmax_scale > 0 ? p.softmax_scale : 1.0 / std::sqrt(double(a.d))) * p.q_scale;
    Vec out(size_t(a.B * a.H * a.Lq));
    for (int64_t b = 0; b < a.B; ++b) {
        const int64_t lk = p.k_lens.empty() ? a.Lk : p.k_lens[size_t(b)];
        for (int64_t h = 0; h < a.H; ++h)
            for (int64_t i = 0; i < a.Lq; ++i) {
                const int64_t c = i + lk - a.Lq;
                int64_t lo = 0, hi = lk;
                if (p.causal) hi = std::min(hi, c + 1);
                if (p.window_left >= 0) lo = std::max<int64_t>(lo, c - p.window_left);
                if (p.window_right >= 0) hi = std::min<int64_t>(hi, c + p.window_right + 1);
                double m = -std::numeric_limits<double>::infinity(), s = 0;
                std::vector<double> sc;
                for (int64_t j = lo; j < hi; ++j) {
                    double dot = 0;
                    const int64_t hk = h / (a.H / a.Hk);
                    for (int64_t e = 0; e < a.d; ++e)
                        dot += q[size_t(((b * a.Lq + i) * a.H + h) * a.d + e)] *
                               k[size_t(((b * a.Lk + j) * a.Hk + hk) * a.d + e)];
                    sc.push_back(dot * scale);
                    m = std::max(m, dot * scale);
                }
                for (double v : sc) s += std::exp(v - m);
                out[size_t((b * a.H + h) * a.Lq + i)] =
                    sc.empty() ? -std::numeric_limits<double>::infinity() : m + std::log(s);
            }
    }
    return out;
}

OpCase attention_lse_row(std::string name, AttnBw a) {
    return {"attention_lse", std::move(name), kBoth, false, Check::Close, [a](CaseCtx& c) {
                Input q = c.rand(c.sig.in, {a.B, a.Lq, a.H, a.d}), k = c.rand(c.sig.in, {a.B, a.Lk, a.Hk, a.d});
                Input v = c.rand(c.sig.in, {a.B, a.Lk, a.Hk, a.dv});
                auto p = std::make_shared<AttentionParams>(params_of(a));
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared pr;
                pr.run = [=] {
                    Tensor lse;
                    Tensor out = ops::attention_lse(q.t, k.t, v.t, *p, &lse);
                    *o = {out, lse};
                };
                pr.result = read_all(o);
                pr.ref = join({ref64::attention(q.v, k.v, v.v, a.B, a.Lq, a.Lk, a.H, a.Hk, a.d, a.dv, *p, nullptr),
                               lse_ref(q.v, k.v, a, *p)});
                pr.shape = cat(a.Lq, "x", a.Lk, " h", a.H);
                return pr;
            }};
}

OpCase attention_bw(std::string name, AttnBw a) {
    return {"attention_backward", std::move(name), kBoth, false, Check::Close, [a](CaseCtx& c) {
                Input q = c.rand(c.sig.in, {a.B, a.Lq, a.H, a.d}), k = c.rand(c.sig.in, {a.B, a.Lk, a.Hk, a.d});
                Input v = c.rand(c.sig.in, {a.B, a.Lk, a.Hk, a.dv}), dout = c.rand(c.sig.in, {a.B, a.Lq, a.H, a.dv});
                auto p = std::make_shared<AttentionParams>(params_of(a));
                Tensor lse;
                const Tensor out = ops::attention_lse(q.t, k.t, v.t, *p, &lse);  // the forward the backward follows
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared pr;
                pr.run = [=] {
                    const ops::AttentionGrads g = ops::attention_backward(q.t, k.t, v.t, out, dout.t, lse, *p);
                    *o = {g.dq, g.dk, g.dv};
                };
                pr.result = read_all(o);
                const Fn f = [a, p](const std::vector<Vec>& in) {
                    return ref64::attention(in[0], in[1], in[2], a.B, a.Lq, a.Lk, a.H, a.Hk, a.d, a.dv, *p, nullptr);
                };
                const std::vector<Vec> in = {q.v, k.v, v.v};
                pr.ref = join({fd_grad(f, in, 0, dout.v), fd_grad(f, in, 1, dout.v), fd_grad(f, in, 2, dout.v)});
                pr.shape = cat(a.Lq, "x", a.Lk, " h", a.H);
                return pr;
            }};
}

// ---- norms and modulation -------------------------------------------------------------------------
OpCase rms_norm_bw(std::string name, Shape shape) {
    return {"rms_norm_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                const int64_t D = shape.back();
                Input x = c.rand(c.sig.in, shape, 2.f, Layout::Contig, 0.3f),
                      w = c.rand(c.sig.in, {D}, 0.3f, Layout::Contig, 1.f);
                Input dy = c.rand(c.sig.in, shape);
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] {
                    Tensor dw;
                    Tensor dx = ops::rms_norm_backward(x.t, w.t, 1e-6f, dy.t, &dw);
                    *o = {dx, dw};
                };
                p.result = read_all(o);
                const Fn f = [D](const std::vector<Vec>& a) { return ref64::rms_norm(a[0], D, a[1], 1e-6); };
                p.ref = join({fd_grad(f, {x.v, w.v}, 0, dy.v), fd_grad(f, {x.v, w.v}, 1, dy.v)});
                p.shape = shape_str(shape);
                return p;
            }};
}

OpCase layer_norm_bw(std::string name, Shape shape, bool affine) {
    return {"layer_norm_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                const int64_t D = shape.back();
                Input x = c.rand(c.sig.in, shape, 2.f, Layout::Contig, 1.5f),
                      w = c.rand(c.sig.in, {D}, 0.3f, Layout::Contig, 1.f);
                Input b = c.rand(c.sig.in, {D}), dy = c.rand(c.sig.in, shape);
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] {
                    Tensor dw, db;
                    Tensor dx = ops::layer_norm_backward(x.t, affine ? &w.t : nullptr, affine ? &b.t : nullptr, 1e-6f,
                                                         dy.t, &dw, &db);
                    *o = affine ? std::vector<Tensor>{dx, dw, db} : std::vector<Tensor>{dx};
                };
                p.result = read_all(o);
                const Fn f = [=](const std::vector<Vec>& a) {
                    return affine ? ref64::layer_norm(a[0], D, &a[1], &a[2], 1e-6)
                                  : ref64::layer_norm(a[0], D, nullptr, nullptr, 1e-6);
                };
                const std::vector<Vec> in = {x.v, w.v, b.v};
                p.ref = affine ? join({fd_grad(f, in, 0, dy.v), fd_grad(f, in, 1, dy.v), fd_grad(f, in, 2, dy.v)})
                               : fd_grad(f, in, 0, dy.v);
                p.shape = shape_str(shape);
                return p;
            }};
}

// Modulation rows taken from a [G, 6, D] tensor (row stride 6·D), as the DiT block passes them.
OpCase norm_modulate_bw(std::string name, int64_t G, int64_t S, int64_t D) {
    return {"norm_modulate_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                Input x = c.rand(c.sig.in, {G, S, D}, 2.f, Layout::Contig, 3.f), m = c.rand(c.sig.in, {G, 6, D}, 0.5f);
                Input dy = c.rand(c.sig.in, {G, S, D});
                const Tensor scale = m.t.select(1, 1);
                const Vec vshift = pick_rows(m.v, G, 6 * D, 0, D), vscale = pick_rows(m.v, G, 6 * D, D, D);
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] {
                    Tensor dshift, dscale;
                    Tensor dx = ops::norm_modulate_backward(x.t, scale, 1e-6f, dy.t, &dshift, &dscale);
                    *o = {dx, dshift, dscale};
                };
                p.result = read_all(o);
                const Fn f = [=](const std::vector<Vec>& a) {
                    return ref64::norm_modulate(a[0], a[1], a[2], G, S, D, 1e-6);
                };
                const std::vector<Vec> in = {x.v, vshift, vscale};
                p.ref = join({fd_grad(f, in, 0, dy.v), fd_grad(f, in, 1, dy.v), fd_grad(f, in, 2, dy.v)});
                p.shape = cat("[", G, ", ", S, ", ", D, "]");
                return p;
            }};
}

OpCase gated_residual_bw(std::string name, int64_t G, int64_t S, int64_t D) {
    return {"gated_residual_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                Input x = c.rand(c.sig.in, {G, S, D}), y = c.rand(c.sig.in, {G, S, D}), m = c.rand(c.sig.in, {G, 6, D});
                Input dout = c.rand(c.sig.in, {G, S, D});
                const Tensor gate = m.t.select(1, 2);
                const Vec vgate = pick_rows(m.v, G, 6 * D, 2 * D, D);
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] {
                    Tensor dgate;
                    Tensor dy = ops::gated_residual_backward(y.t, gate, dout.t, &dgate);
                    *o = {dy, dgate};
                };
                p.result = read_all(o);
                const Fn f = [=](const std::vector<Vec>& a) {
                    return ref64::gated_residual(a[0], a[1], a[2], G, S, D);
                };
                const std::vector<Vec> in = {x.v, y.v, vgate};
                p.ref = join({fd_grad(f, in, 1, dout.v), fd_grad(f, in, 2, dout.v)});
                p.shape = cat("[", G, ", ", S, ", ", D, "]");
                return p;
            }};
}

// ---- rope, patches, reductions ------------------------------------------------------------------
OpCase rope_bw(std::string name, int64_t B, int64_t L, int64_t H, int64_t d, std::vector<RopeGrid> grids) {
    return {"rope_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                int64_t P = 1;
                for (const RopeGrid& g : grids) P = std::max({P, g.frame_offset + g.f, g.h, g.w});
                Input x = c.rand(c.sig.in, {B, L, H, d}), dy = c.rand(c.sig.in, {B, L, H, d});
                // An angle table as the model builds it (cos, sin of real angles), so the inverse
                // rotation is the transpose.
                Vec tab(size_t(P * d));
                const Vec ang = c.rand(c.sig.in, {P, d / 2}, 2.f).v;
                for (size_t i = 0; i < ang.size(); ++i)
                    tab[2 * i] = std::cos(ang[i]), tab[2 * i + 1] = std::sin(ang[i]);
                Input table = c.from(c.sig.in, {P, d / 2, 2}, tab);
                auto gp = std::make_shared<std::vector<RopeGrid>>(grids);
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] { *o = {ops::rope_backward(dy.t, *gp, table.t)}; };
                p.result = read_all(o);
                const Fn f = [=](const std::vector<Vec>& a) { return ref64::rope(a[0], B, L, H, d, grids, table.v); };
                p.ref = fd_grad(f, {x.v}, 0, dy.v);
                p.shape = cat("[", B, ", ", L, ", ", H, ", ", d, "]");
                return p;
            }};
}

OpCase patchify_bw(std::string name, int64_t C, int64_t T, int64_t H, int64_t W, int pt, int ph, int pw) {
    return {"patchify_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                const int64_t L = (T / pt) * (H / ph) * (W / pw), F = C * pt * ph * pw;
                Input x = c.rand(c.sig.in, {C, T, H, W}), dy = c.rand(c.sig.in, {L, F});
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] { *o = {ops::patchify_backward(dy.t, C, T, H, W, pt, ph, pw)}; };
                p.result = read_all(o);
                const Fn f = [=](const std::vector<Vec>& a) { return ref64::patchify(a[0], C, T, H, W, pt, ph, pw); };
                p.ref = fd_grad(f, {x.v}, 0, dy.v);
                p.shape = cat("[", C, ", ", T, ", ", H, ", ", W, "]");
                return p;
            }};
}

OpCase unpatchify_bw(std::string name, int64_t C, int64_t L, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw) {
    return {"unpatchify_backward", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                const int64_t F = C * pt * ph * pw;
                Input x = c.rand(c.sig.in, {L, F}), dy = c.rand(c.sig.in, {C, f * pt, h * ph, w * pw});
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] { *o = {ops::unpatchify_backward(dy.t, L, f, h, w, pt, ph, pw)}; };
                p.result = read_all(o);
                const Fn fn = [=](const std::vector<Vec>& a) {
                    return ref64::unpatchify(a[0], C, f, h, w, pt, ph, pw);
                };
                p.ref = fd_grad(fn, {x.v}, 0, dy.v);
                p.shape = cat("[", L, ", ", F, "]");
                return p;
            }};
}

OpCase sum_rows_row(std::string name, int64_t R, int64_t C, bool accumulate) {
    return {"sum_rows", std::move(name), kBoth, false, Check::Close, [=](CaseCtx& c) {
                Input x = c.rand(c.sig.in, {R, C}), y0 = c.rand(c.sig.in, {C});
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared p;
                p.run = [=] {
                    Tensor y = accumulate ? y0.t : Tensor();
                    ops::sum_rows(x.t, &y, accumulate);
                    *o = {y};
                };
                p.result = read_all(o);
                p.ref.assign(size_t(C), 0.0);
                for (int64_t i = 0; i < C; ++i) {
                    for (int64_t r = 0; r < R; ++r) p.ref[size_t(i)] += x.v[size_t(r * C + i)];
                    if (accumulate) p.ref[size_t(i)] += y0.v[size_t(i)];
                }
                p.shape = cat("[", R, ", ", C, "]");
                return p;
            }};
}

// AdamW at step t from random moments (v ≥ 0), against the float64 formula of torch.optim.AdamW;
// compared: the new p, m and v.
OpCase adamw_row(std::string name, Shape shape, int64_t step) {
    return {"adamw_step", std::move(name), kF32, false, Check::Close, [=](CaseCtx& c) {
                Input p = c.rand(c.sig.in, shape), g = c.rand(c.sig.in, shape, 0.1f),
                      m = c.rand(c.sig.in, shape, 0.05f);
                Vec vv = c.rand(c.sig.in, shape, 0.01f).v;
                for (double& x : vv) x = x * x;
                Input v = c.from(c.sig.in, shape, vv);
                AdamWHyper h;
                h.lr = 0.01, h.weight_decay = 0.1;
                Outs o = std::make_shared<std::vector<Tensor>>();
                Prepared pr;
                pr.run = [=] {
                    ops::adamw_step(p.t, g.t, m.t, v.t, h, step);
                    *o = {p.t, m.t, v.t};
                };
                pr.result = read_all(o);
                Vec rp = p.v, rm = m.v, rv = v.v;
                const double bc1 = 1 - std::pow(h.beta1, double(step)), bc2 = 1 - std::pow(h.beta2, double(step));
                for (size_t i = 0; i < rp.size(); ++i) {
                    rp[i] *= 1 - h.lr * h.weight_decay;
                    rm[i] = h.beta1 * rm[i] + (1 - h.beta1) * g.v[i];
                    rv[i] = h.beta2 * rv[i] + (1 - h.beta2) * g.v[i] * g.v[i];
                    rp[i] -= h.lr / bc1 * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bc2) + h.eps);
                }
                pr.ref = join({rp, rm, rv});
                pr.shape = shape_str(shape);
                return pr;
            }};
}

}  // namespace

std::vector<OpCase> backward_op_cases() {
    return {
        linear_bw("linear_backward_M37_N29_K67", 37, 29, 67),
        linear_bw("linear_backward_M1_N5_K3", 1, 5, 3),
        linear_bw("linear_backward_batch_accumulate", 7, 9, 13, true, 3),
        linear_bw("linear_backward_bf16_weight", 11, 17, 19, false, 0, DType::BF16),
        unary_bw("unary_backward_gelu_tanh", Act::GeluTanh, {7, 33}),
        unary_bw("unary_backward_gelu_erf", Act::GeluErf, {5, 31}),
        unary_bw("unary_backward_silu", Act::Silu, {3, 65}),
        unary_bw("unary_backward_gelu_tanh_overwrite", Act::GeluTanh, {9, 37}, true),
        attention_lse_row("attention_lse_klens_gqa",
                          {.B = 2, .Lq = 9, .Lk = 11, .H = 4, .Hk = 2, .d = 8, .dv = 6, .k_lens = {11, 5}}),
        attention_lse_row("attention_lse_causal_window",
                          {.Lq = 150, .Lk = 150, .H = 1, .Hk = 1, .d = 4, .dv = 4, .causal = true, .wl = 7}),
        attention_bw("attention_backward_klens",
                     {.B = 2, .Lq = 7, .Lk = 9, .H = 2, .Hk = 2, .d = 6, .dv = 6, .k_lens = {9, 4}}),
        attention_bw("attention_backward_gqa_causal_dv5",
                     {.Lq = 6, .Lk = 8, .H = 4, .Hk = 2, .d = 4, .dv = 5, .causal = true}),
        attention_bw("attention_backward_window_scales", {.Lq = 9,
                                                          .Lk = 9,
                                                          .H = 1,
                                                          .Hk = 1,
                                                          .d = 4,
                                                          .dv = 4,
                                                          .wl = 2,
                                                          .wr = 1,
                                                          .q_scale = 0.7f,
                                                          .softmax_scale = 0.4f}),
        attention_bw("attention_backward_empty_sample",
                     {.B = 2, .Lq = 5, .Lk = 6, .H = 2, .Hk = 1, .d = 4, .dv = 4, .k_lens = {0, 6}}),
        attention_bw("attention_backward_q_tiles", {.Lq = 130, .Lk = 5, .H = 1, .Hk = 1, .d = 2, .dv = 2}),
        rms_norm_bw("rms_norm_backward_3x5x40", {3, 5, 40}),
        rms_norm_bw("rms_norm_backward_D1", {4, 1}),
        layer_norm_bw("layer_norm_backward_plain_4x37", {4, 37}, false),
        layer_norm_bw("layer_norm_backward_affine_2x3x33", {2, 3, 33}, true),
        norm_modulate_bw("norm_modulate_backward_G2_S5_D33", 2, 5, 33),
        norm_modulate_bw("norm_modulate_backward_G3_S1_D70", 3, 1, 70),
        gated_residual_bw("gated_residual_backward_G2_S5_D33", 2, 5, 33),
        gated_residual_bw("gated_residual_backward_G1_S7_D65", 1, 7, 65),
        // Enough rows that CUDA splits the column sums over row chunks (≥ 512 rows, few columns)
        gated_residual_bw("gated_residual_backward_split_G1_S520_D9", 1, 520, 9),
        norm_modulate_bw("norm_modulate_backward_split_G1_S600_D5", 1, 600, 5),
        rope_bw("rope_backward_pad_offset", 2, 14, 2, 12, {{2, 2, 3, 0}, {1, 3, 3, 2}}),
        rope_bw("rope_backward_d16", 1, 12, 3, 16, {{3, 2, 2, 0}}),
        patchify_bw("patchify_backward_3x2x6x4_p122", 3, 2, 6, 4, 1, 2, 2),
        patchify_bw("patchify_backward_2x4x3x5_p213", 2, 4, 3, 5, 2, 1, 5),
        unpatchify_bw("unpatchify_backward_pad", 3, 9, 2, 2, 1, 1, 2, 2),
        unpatchify_bw("unpatchify_backward_p213", 2, 4, 2, 2, 1, 2, 1, 3),
        sum_rows_row("sum_rows_37x70", 37, 70, false),
        sum_rows_row("sum_rows_accumulate_1x5", 1, 5, true),
        sum_rows_row("sum_rows_split_1300x70", 1300, 70, false),
        sum_rows_row("sum_rows_split_accumulate_777x33", 777, 33, true),
        adamw_row("adamw_step_1", {7, 33}, 1),
        adamw_row("adamw_step_5_70000", {70000}, 5),
    };
}

}  // namespace wanrt::testing
