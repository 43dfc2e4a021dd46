// WanModel's forward (wan/modules/model.py) from unfused ops, and its backward, block by block
// with recomputation (dit_backward.h). Each backward step names the forward line it differentiates.
#include "train/dit_backward.h"

#include <numeric>
#include <optional>
#include <string>

#include "core/error.h"
#include "models/dit_block.h"
#include "ops/backward.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// dst += src (same shape, f32, dst contiguous); an undefined dst is a frozen parameter (no gradient
// kept, dit_grads_zeros without the base) and takes nothing.
void acc(const Tensor& dst, const Tensor& src) {
    if (!dst.defined()) return;
    const Tensor s = ops::contiguous(src);
    const Tensor* in[2] = {&dst, &s};
    const float coef[2] = {1.0f, 1.0f};
    ops::lincomb(in, coef, 2, dst);
}

Tensor copy_of(const Tensor& x) {
    Tensor y = x.backend()->empty(DType::F32, x.shape());
    ops::copy(x, y);
    return y;
}

// linear(x, l) without activation, and its backward into grads g (accumulated); returns dx
// (or nothing when want_dx is false). A frozen Linear (g.w / g.b undefined) gets no weight gradient.
Tensor lin(const Linear& l, const Tensor& x, Activation act = Activation::None) {
    // The branches as generation applies them (the weight patched for the call when that is cheaper
    // than the side path): the same function, one GEMM.
    if (!l.lora.empty()) return linear_with_lora(l, x, act, DType::F32, LoraApply::Auto);
    return ops::linear(x, l.w, &l.b, act);
}
void lora_branches_bw(const Linear& l, Linear& g, const Tensor& x, const Tensor& dy, Tensor* dx);
// With into, dx is added to *into (defined, contiguous, x's shape) in the GEMMs' epilogues and the
// returned tensor is *into.
// patched: lora_patched_weight(l, x) where the caller has built it already.
Tensor lin_bw(const Linear& l, Linear& g, const Tensor& x, const Tensor& dy, Tensor* into = nullptr,
              bool want_dx = true, const Tensor* patched = nullptr) {
    Tensor dx = into ? *into : Tensor();
    // Where the forward patched the weight (many rows), dx = dy·(W + Σ s·up·down) in one GEMM too: the
    // branches then give only their own gradients, not an [M, in] share of dx each.
    const Tensor wp = !want_dx ? Tensor() : patched ? *patched : lora_patched_weight(l, x);
    ops::linear_backward(x, wp.defined() ? wp : l.w, dy, want_dx ? &dx : nullptr, g.w.defined() ? &g.w : nullptr,
                         g.b.defined() ? &g.b : nullptr, true);
    if (!l.lora.empty()) lora_branches_bw(l, g, x, dy, want_dx && !wp.defined() ? &dx : nullptr);
    return dx;
}

// ---- LoRA training: the low-rank branches' backward (train/lora_train.h) ----
// y += s·(x·downᵀ)·upᵀ per branch, h = x·downᵀ [M, r] recomputed (r is small):
//   dup += dyᵀ·(s·h),  dh = s·(dy·up),  ddown += dhᵀ·x,  dx += dh·down
// (the scale is applied to the [M, r] tensors, never to dy [M, out]). Gradients go to g.lora[j]
// (down, up) when the gradient Linear mirrors the branch; dx always takes the branch's share so that
// earlier branches and inputs get theirs.
void lora_branches_bw(const Linear& l, Linear& g, const Tensor& x, const Tensor& dy, Tensor* dx) {
    for (size_t j = 0; j < l.lora.size(); ++j) {
        const LoraBranch& br = l.lora[j];
        LoraBranch* gb = j < g.lora.size() ? &g.lora[j] : nullptr;
        Tensor hs = ops::linear(x, br.down);  // [..., r], then scaled in place
        const Tensor* in[1] = {&hs};
        ops::lincomb(in, &br.scale, 1, hs);
        Tensor dh;
        ops::linear_backward(hs, br.up, dy, &dh, gb ? &gb->up : nullptr, nullptr, true);
        const Tensor* in_dh[1] = {&dh};
        ops::lincomb(in_dh, &br.scale, 1, dh);
        // dx (the base's, defined) takes dh·down in the GEMM's epilogue: no [M, in] temporary and sum
        ops::linear_backward(x, br.down, dh, dx, gb ? &gb->down : nullptr, nullptr, true);
    }
}

// lin_bw for the FFN's second linear, whose input f1 = gelu(f0) [B, L, F] is the widest activation:
// f1 is recomputed here and gone after the parameters' gradients, before dx [B, L, F] takes its place
// (f1 and dx never both exist). Returns dx. patched: lora_patched_weight(l, f1), built by the first
// row chunk's call and reused by the others.
Tensor ffn2_bw(const Linear& l, Linear& g, const Tensor& f0, const Tensor& dy, std::optional<Tensor>& patched) {
    Tensor f1 = ops::gelu_tanh(f0);
    if (!patched) patched = lora_patched_weight(l, f1);
    const Tensor wp = *patched;
    // The side path (few rows) reads f1 for the branches' shares of dx: lin_bw as is.
    if (!l.lora.empty() && !wp.defined()) return lin_bw(l, g, f1, dy);
    lin_bw(l, g, f1, dy, nullptr, /*want_dx=*/false);
    f1 = Tensor();
    // dx alone: linear_backward reads x's shape here, not its values — f0 has f1's.
    Tensor dx;
    ops::linear_backward(f0, wp.defined() ? wp : l.w, dy, &dx, nullptr, nullptr);
    return dx;
}

// Tokens per modulation row, as DitModel::forward groups them (dit.cpp).
int64_t group_tokens(const std::vector<DitSample>& batch, int64_t seq_len) {
    int64_t S = seq_len;
    for (const DitSample& s : batch)
        for (size_t l = 1; l < s.t_tokens.size() && S > 1; ++l)
            if (s.t_tokens[l] != s.t_tokens[l - 1]) S = std::gcd(S, int64_t(l));
    return S;
}

// One block's activations (the forward of dit_block, dit_block.h, unfused), all [B, L, D] unless
// said: m [G, 6, D]; q0/k0 projections before the q/k norm, v [B, L, N, hd]; lse [B, N, L];
// cross-attention: cq0 before its norm, ck/cv [B, Lt, N, hd] from the context (ck0 before its norm);
// f2 = ffn2(gelu(ffn0(h2))) [G, S, D].
// Not kept, recomputed by the backward where it needs them (one elementwise pass or one GEMM each,
// the same ops on the same inputs, so the same values): h1 = norm1-modulated x, qr/kr after the q/k
// norm and rope, o = sa_o(a), hn = norm3(x1), cq after its norm, h2 = norm2-modulated x2. The FFN's
// [rows, F] intermediates exist a row chunk at a time, forward and backward (ffn_forward).
struct BlockActs {
    Tensor x, m, q0, k0, v, a, lse, x1, cq0, ck0, ck, cv, ca, lse2, x2, f2;
};

struct BlockCtx {
    const DitConfig& c;
    const std::vector<RopeGrid>& grids;
    const Tensor& rope;
    const AttentionParams& self_p;
    const Tensor& context;  // [B, text_len, D]
    int64_t S;
    int64_t ffn_rows = 0;  // DitTape::ffn_rows
};

// The recomputable pieces of block_forward, shared with the backward.
// norm(x)·(1 + m[:, i + 1]) + m[:, i] [B, L, D] for x [B, L, D], m [G, 6, D]: h1 (i = 0, before
// self-attention) and h2 (i = 3, before the FFN).
Tensor modulated(const BlockCtx& k, const Tensor& x, const Tensor& m, int64_t i) {
    const int64_t B = x.size(0), L = x.size(1), D = k.c.dim, G = B * L / k.S;
    return ops::norm_modulate(x.reshape({G, k.S, D}), m.select(1, i), m.select(1, i + 1), k.c.eps).reshape({B, L, D});
}
// rope(norm(p0)) [B, L, N, hd] for p0 = q0 or k0 [B, L, D]
Tensor self_qk(const BlockCtx& k, const Tensor& p0, const Tensor& norm_w) {
    const DitConfig& c = k.c;
    const Tensor pn = c.qk_norm ? ops::rms_norm(p0, norm_w, c.eps) : p0;
    return ops::rope(pn.reshape({p0.size(0), p0.size(1), c.num_heads, c.head_dim()}), k.grids, k.rope);
}
// Rows per chunk of the FFN: ~256 MiB per [rows, F] f32 intermediate (7,489 rows of the 1.3B's 8,960),
// so that a block's peak holds none of [L, F] (1.1 GiB each at 480p, 81 frames; the GEMMs stay large).
int64_t ffn_chunk(const BlockCtx& k) {
    return k.ffn_rows > 0 ? k.ffn_rows : std::max<int64_t>(1, (int64_t(256) << 20) / (4 * k.c.ffn_dim));
}
// l with its branches folded into the weight where the forward patches for x's rows (the same GEMM
// on the same weight): row chunks build the patched weight once, not once per chunk.
Linear patched_for(const Linear& l, const Tensor& x) {
    const Tensor wp = lora_patched_weight(l, x);
    return wp.defined() ? Linear{wp, l.b, {}} : l;
}
// f2 = ffn2(gelu(ffn0(h2))) [M, D] for h2 [M, D], row chunk by row chunk (GELU in ffn0's epilogue).
Tensor ffn_forward(const BlockCtx& k, const DitBlockWeights& b, const Tensor& h2) {
    const int64_t M = h2.size(0), R = ffn_chunk(k);
    if (R >= M) return lin(b.ffn2, lin(b.ffn0, h2, Activation::GeluTanh));
    Tensor f2 = h2.backend()->empty(DType::F32, {M, k.c.dim});
    Linear l0, l2;
    for (int64_t r0 = 0; r0 < M; r0 += R) {
        const int64_t r1 = std::min(M, r0 + R);
        const Tensor h2r = h2.slice(0, r0, r1);
        if (r0 == 0) l0 = patched_for(b.ffn0, h2r);
        const Tensor f1 = lin(l0, h2r, Activation::GeluTanh);
        if (r0 == 0) l2 = patched_for(b.ffn2, f1);
        ops::copy(lin(l2, f1), f2.slice(0, r0, r1));
    }
    return f2;
}
Tensor cross_hn(const BlockCtx& k, const DitBlockWeights& b, const Tensor& x1) {
    return k.c.cross_attn_norm ? ops::layer_norm(x1, &b.norm3_w, &b.norm3_b, k.c.eps) : x1;
}
// norm_q(cq0) [B, L, N, hd]
Tensor cross_q(const BlockCtx& k, const DitBlockWeights& b, const Tensor& cq0) {
    const DitConfig& c = k.c;
    return (c.qk_norm ? ops::rms_norm(cq0, b.ca_norm_q, c.eps) : cq0)
        .reshape({cq0.size(0), cq0.size(1), c.num_heads, c.head_dim()});
}

// A block's self-attention output [B, L, N, hd] and its lse [B, N, L] (offloaded checkpoints keep them).
struct SelfAttn {
    Tensor a, lse;
};

// saved: the self-attention's output from an earlier run of this block on the same x, taken instead
// of running it again; kept: where this run's goes.
Tensor block_forward(const BlockCtx& k, const DitBlockWeights& b, const Tensor& x, const Tensor& e0, BlockActs* s,
                     const SelfAttn* saved = nullptr, SelfAttn* kept = nullptr) {
    const DitConfig& c = k.c;
    const int64_t B = x.size(0), L = x.size(1), D = c.dim, N = c.num_heads, hd = c.head_dim(), G = B * L / k.S;
    const int64_t Lt = k.context.size(1);
    BlockActs t;
    t.x = x;
    t.m = ops::add(b.modulation, e0);  // [G, 6, D]: shift1, scale1, gate1, shift2, scale2, gate2
    auto mod = [&](int i) { return t.m.select(1, i); };
    // x = x + self_attn(norm1(x)·(1 + scale1) + shift1)·gate1
    Tensor h1 = modulated(k, x, t.m, 0);
    t.q0 = lin(b.sa_q, h1);
    t.k0 = lin(b.sa_k, h1);
    t.v = lin(b.sa_v, h1).reshape({B, L, N, hd});
    h1 = Tensor();
    if (saved) {
        t.a = saved->a, t.lse = saved->lse;
    } else {
        t.a = ops::attention_lse(self_qk(k, t.q0, b.sa_norm_q), self_qk(k, t.k0, b.sa_norm_k), t.v, k.self_p,
                                 &t.lse);  // [B, L, N, hd]
    }
    if (kept) *kept = {t.a, t.lse};
    t.x1 = copy_of(x);
    ops::gated_residual(t.x1.reshape({G, k.S, D}), lin(b.sa_o, t.a.reshape({B, L, D})).reshape({G, k.S, D}), mod(2));
    // x = x + cross_attn(norm3(x), context)
    t.cq0 = lin(b.ca_q, cross_hn(k, b, t.x1));
    t.ck0 = lin(b.ca_k, k.context);
    t.ck = (c.qk_norm ? ops::rms_norm(t.ck0, b.ca_norm_k, c.eps) : t.ck0).reshape({B, Lt, N, hd});
    t.cv = lin(b.ca_v, k.context).reshape({B, Lt, N, hd});
    // every text_len key (context_lens None)
    t.ca = ops::attention_lse(cross_q(k, b, t.cq0), t.ck, t.cv, AttentionParams{}, &t.lse2);
    t.x2 = ops::add(t.x1, lin(b.ca_o, t.ca.reshape({B, L, D})));
    // x = x + ffn(norm2(x)·(1 + scale2) + shift2)·gate2
    t.f2 = ffn_forward(k, b, modulated(k, t.x2, t.m, 3).reshape({B * L, D})).reshape({G, k.S, D});
    Tensor x3 = copy_of(t.x2);
    ops::gated_residual(x3.reshape({G, k.S, D}), t.f2, mod(5));
    if (s) *s = std::move(t);
    return x3;
}

// Releases activations (and gradients) after their last use: a block's gradients then take the
// place of its activations in memory instead of adding to them (the FFN's 4·L·D-wide tensors most).
void drop(std::initializer_list<Tensor*> ts) {
    for (Tensor* t : ts) *t = Tensor();
}

// Backward of block_forward: dx3 [B, L, D] → dx; adds into the block's weight grads gb, the
// context-embedding grad dctx [B, Lt, D] and the modulation grad de0 [G, 6, D]. Consumes t.
Tensor block_backward(const BlockCtx& k, const DitBlockWeights& b, DitBlockWeights& gb, BlockActs& t, const Tensor& dx3,
                      const Tensor& dctx, const Tensor& de0) {
    const DitConfig& c = k.c;
    const int64_t B = dx3.size(0), L = dx3.size(1), D = c.dim, G = B * L / k.S, Lt = k.context.size(1);
    Backend& be = *dx3.backend();
    auto mod = [&](int i) { return t.m.select(1, i); };
    Tensor dm = ops::zeros(be, {G, 6, D});
    auto put = [&](int i, const Tensor& g) { ops::copy(g, dm.select(1, i)); };

    // x3 = x2 + f2·gate2, f2 = ffn2(gelu(ffn0(h2))), h2 = norm2(x2)·(1 + scale2) + shift2
    Tensor dgate2, dshift2, dscale2;
    const Tensor df2 =
        ops::gated_residual_backward(t.f2, mod(5), dx3.reshape({G, k.S, D}), &dgate2).reshape({B * L, D});
    drop({&t.f2});
    Tensor dh2 = ops::zeros(be, {B * L, D});
    {  // the FFN row chunk by row chunk, as ffn_forward; f0 = ffn0(h2) [R, F] recomputed
        const Tensor h2 = modulated(k, t.x2, t.m, 3).reshape({B * L, D});
        Linear l0;  // ffn0, patched once for all chunks (ffn_forward's)
        std::optional<Tensor> wp2;
        for (int64_t r0 = 0, R = ffn_chunk(k); r0 < B * L; r0 += R) {
            const int64_t r1 = std::min(B * L, r0 + R);
            const Tensor h2r = h2.slice(0, r0, r1);
            if (r0 == 0) l0 = patched_for(b.ffn0, h2r);
            Tensor f0 = lin(l0, h2r);
            Tensor df1 = ffn2_bw(b.ffn2, gb.ffn2, f0, df2.slice(0, r0, r1), wp2);
            Tensor df0 = ops::unary_backward(Activation::GeluTanh, f0, df1, true);  // over df1
            drop({&f0, &df1});
            Tensor dh2r = dh2.slice(0, r0, r1);
            const Tensor wp0 = l0.lora.empty() && !b.ffn0.lora.empty() ? l0.w : Tensor();
            lin_bw(b.ffn0, gb.ffn0, h2r, df0, &dh2r, true, &wp0);  // dh2 rows += …
        }
    }
    Tensor dx2 = ops::norm_modulate_backward(t.x2.reshape({G, k.S, D}), mod(4), c.eps, dh2.reshape({G, k.S, D}),
                                             &dshift2, &dscale2)
                     .reshape({B, L, D});
    drop({&t.x2, &dh2});
    acc(dx2, dx3);
    put(3, dshift2), put(4, dscale2), put(5, dgate2);

    // x2 = x1 + ca_o(attn(cq, ck, cv)); cq = norm_q(ca_q(norm3(x1))), ck = norm_k(ca_k(ctx)), cv = ca_v(ctx)
    Tensor dca = lin_bw(b.ca_o, gb.ca_o, t.ca.reshape({B, L, D}), dx2);
    ops::AttentionGrads ga =
        ops::attention_backward(cross_q(k, b, t.cq0), t.ck, t.cv, t.ca, dca.reshape(t.ca.shape()), t.lse2);
    drop({&t.ck, &t.cv, &t.ca, &t.lse2, &dca});
    Tensor dck0 = ga.dk.reshape({B, Lt, D}), dcq0 = ga.dq.reshape({B, L, D});
    if (c.qk_norm) {
        Tensor dw;
        dck0 = ops::rms_norm_backward(t.ck0, b.ca_norm_k, c.eps, dck0, &dw);
        acc(gb.ca_norm_k, dw);
        dcq0 = ops::rms_norm_backward(t.cq0, b.ca_norm_q, c.eps, dcq0, &dw);
        acc(gb.ca_norm_q, dw);
    }
    Tensor dc = dctx;  // a handle on the caller's sum
    lin_bw(b.ca_k, gb.ca_k, k.context, dck0, &dc);
    lin_bw(b.ca_v, gb.ca_v, k.context, ga.dv.reshape({B, Lt, D}), &dc);
    Tensor dhn = lin_bw(b.ca_q, gb.ca_q, cross_hn(k, b, t.x1), dcq0);
    drop({&dcq0, &ga.dq});
    Tensor dx1 = dx2;  // the residual path
    if (c.cross_attn_norm) {
        Tensor dw, db;
        acc(dx1, ops::layer_norm_backward(t.x1, &b.norm3_w, &b.norm3_b, c.eps, dhn, &dw, &db));
        acc(gb.norm3_w, dw);
        acc(gb.norm3_b, db);
    } else {
        acc(dx1, dhn);
    }

    // x1 = x + sa_o(attn(rope(norm_q(q0)), rope(norm_k(k0)), v))·gate1, q0/k0/v = sa_*(h1)
    Tensor dgate1, dshift1, dscale1;
    Tensor dout = ops::gated_residual_backward(lin(b.sa_o, t.a.reshape({B, L, D})).reshape({G, k.S, D}), mod(2),
                                               dx1.reshape({G, k.S, D}), &dgate1);
    Tensor da = lin_bw(b.sa_o, gb.sa_o, t.a.reshape({B, L, D}), dout.reshape({B, L, D}));
    drop({&t.x1});
    ops::AttentionGrads gs = ops::attention_backward(self_qk(k, t.q0, b.sa_norm_q), self_qk(k, t.k0, b.sa_norm_k), t.v,
                                                     t.a, da.reshape(t.a.shape()), t.lse, k.self_p);
    drop({&t.v, &t.a, &t.lse, &da, &dout});
    Tensor dq0 = ops::rope_backward(gs.dq, k.grids, k.rope).reshape({B, L, D});
    Tensor dk0 = ops::rope_backward(gs.dk, k.grids, k.rope).reshape({B, L, D});
    if (c.qk_norm) {
        Tensor dw;
        dq0 = ops::rms_norm_backward(t.q0, b.sa_norm_q, c.eps, dq0, &dw);
        acc(gb.sa_norm_q, dw);
        dk0 = ops::rms_norm_backward(t.k0, b.sa_norm_k, c.eps, dk0, &dw);
        acc(gb.sa_norm_k, dw);
    }
    const Tensor h1 = modulated(k, t.x, t.m, 0);
    Tensor dh1 = lin_bw(b.sa_q, gb.sa_q, h1, dq0);
    lin_bw(b.sa_k, gb.sa_k, h1, dk0, &dh1);  // dh1 += …: in the GEMMs' epilogues
    lin_bw(b.sa_v, gb.sa_v, h1, gs.dv.reshape({B, L, D}), &dh1);
    Tensor dx = ops::norm_modulate_backward(t.x.reshape({G, k.S, D}), mod(1), c.eps, dh1.reshape({G, k.S, D}), &dshift1,
                                            &dscale1)
                    .reshape({B, L, D});
    acc(dx, dx1);
    put(0, dshift1), put(1, dscale1), put(2, dgate1);

    // m = modulation [1, 6, D] + e0 [G, 6, D]
    acc(de0, dm);
    if (gb.modulation.defined()) {
        Tensor dmod = gb.modulation.reshape({6 * D});
        ops::sum_rows(dm.reshape({G, 6 * D}), &dmod, true);
    }
    return dx;
}

Tensor zeros_like(const Tensor& t) {
    return t.defined() ? ops::zeros(*t.backend(), t.shape()) : Tensor();
}
// The gradient mirror of a Linear: its weight and bias (unless frozen), and one (down, up) pair per
// low-rank branch (LoRA training).
Linear zeros_like(const Linear& l, bool base = true) {
    Linear g{base ? zeros_like(l.w) : Tensor(), base ? zeros_like(l.b) : Tensor(), {}};
    for (const LoraBranch& br : l.lora) g.lora.push_back({zeros_like(br.down), zeros_like(br.up), br.scale});
    return g;
}

void check_supported(const DitConfig& c, const DitWeights& w, const char* where) {
    // The training forward applies low-rank branches of the blocks' Linears (LoRA training); the
    // embeddings and the head are read as plain weights, and a full-difference branch has no backward.
    auto no_lora = [&](const Linear& l) {
        if (!l.lora.empty())
            fail(where,
                 "run-time LoRA branches are attached to an embedding or the head; training reads those as plain "
                 "weights only: merge the LoRA into the weights first (or load the model without it)");
    };
    for (const Linear* l : {&w.text0, &w.text2, &w.time0, &w.time2, &w.time_proj, &w.head}) no_lora(*l);
    for (const DitBlockWeights& b : w.blocks)
        for (const Linear* l :
             {&b.sa_q, &b.sa_k, &b.sa_v, &b.sa_o, &b.ca_q, &b.ca_k, &b.ca_v, &b.ca_o, &b.ffn0, &b.ffn2})
            for (const LoraBranch& br : l->lora)
                if (!br.up.defined())
                    fail(where,
                         "a full-difference LoRA branch is attached to a block; it has no backward: merge it "
                         "into the weights first (--lora_mode merge)");
    if (c.has_clip())
        fail(where, "the I2V CLIP image branch has no backward yet; train a model without it (t2v, ti2v)");
    if (c.is_i2v()) fail(where, "i2v conditioning (y) has no backward yet; train a t2v model");
}

// A block's buffer in offload's host memory: its checkpoint, its self-attention output a and that
// output's lse, at these byte offsets (256-aligned).
struct HostLayout {
    size_t a = 0, lse = 0, bytes = 0;
};
HostLayout host_layout(const Shape& x, DType ck, int64_t heads) {
    auto up = [](size_t n) { return (n + 255) / 256 * 256; };
    const size_t n = size_t(shape_numel(x)), lse = size_t(x[0] * heads * x[1]) * sizeof(float);
    HostLayout h;
    h.a = up(n * dtype_size(ck));
    h.lse = h.a + up(n * sizeof(float));
    h.bytes = h.lse + lse;
    return h;
}

// Block li's host buffer, grown to bytes where it is smaller (never shrunk: pinning is slow), or a
// one-line error.
void* host_block(Backend& be, HostCheckpoints& h, int64_t li, size_t bytes) {
    if (h.blocks.size() <= size_t(li)) h.blocks.resize(size_t(li) + 1);
    std::shared_ptr<Buffer>& b = h.blocks[size_t(li)];
    if (!b || b->bytes() < bytes) {
        b.reset();
        try {
            b = be.alloc_pinned(bytes);
        } catch (const OutOfMemory&) {
            throw OutOfMemory(cat("[train] --offload_checkpoints: cannot pin ", bytes,
                                  " bytes of host memory for block ", li,
                                  "'s checkpoint; free host memory or train without --offload_checkpoints"));
        }
    }
    return b->ptr();
}

}  // namespace

std::vector<Tensor> dit_train_forward(const DitModel& model, const std::vector<DitSample>& batch, int64_t seq_len,
                                      DitTape* tape) {
    const DitConfig& c = model.config();
    const DitWeights& w = model.weights();
    Backend& be = model.backend();
    check_supported(c, w, "dit_train_forward");
    WANRT_CHECK(!model.offloaded(), "dit_train_forward",
                "the model streams its blocks (--offload: they live in host "
                "memory between forwards); training reads them directly: load it without offload");
    const int64_t B = int64_t(batch.size()), D = c.dim;
    if (B == 0) fail("dit_train_forward", "empty batch");
    DitTape t;
    t.offload = tape ? tape->offload : nullptr;
    t.ffn_rows = tape ? tape->ffn_rows : 0;
    t.batch = batch;
    t.seq_len = seq_len;
    for (int64_t i = 0; i < B; ++i) {
        const DitSample& s = batch[size_t(i)];
        if (!s.x.defined() || s.x.ndim() != 4 || s.x.size(0) != c.in_dim)
            fail("dit_train_forward", "sample ", i, ": latent must be [", c.in_dim, ", F, H, W], got ",
                 s.x.defined() ? s.x.describe() : "none");
        const int64_t F = s.x.size(1), H = s.x.size(2), W = s.x.size(3);
        if (F % c.patch_t || H % c.patch_h || W % c.patch_w)
            fail("dit_train_forward", "sample ", i, ": latent ", s.x.describe(), " is not a multiple of the patch");
        t.grids.push_back({F / c.patch_t, H / c.patch_h, W / c.patch_w, 0});
        const int64_t L = t.grids.back().f * t.grids.back().h * t.grids.back().w;
        if (L > seq_len) fail("dit_train_forward", "sample ", i, " has ", L, " tokens but seq_len is ", seq_len);
        t.seq_lens.push_back(int32_t(L));
        if (!s.context.defined() || s.context.ndim() != 2 || s.context.size(1) != c.text_dim ||
            s.context.size(0) > c.text_len)
            fail("dit_train_forward", "sample ", i, ": context must be [len ≤ ", c.text_len, ", ", c.text_dim, "]");
        if (!s.t_tokens.empty() && int64_t(s.t_tokens.size()) != seq_len)
            fail("dit_train_forward", "sample ", i, ": ", s.t_tokens.size(), " per-token timesteps for seq_len ",
                 seq_len);
    }

    // patch embedding: Conv3d(kernel = stride = patch) = patchify + linear, zero-padded to seq_len
    Tensor x = ops::zeros(be, {B, seq_len, D});
    for (int64_t i = 0; i < B; ++i) {
        t.patches.push_back(ops::patchify(batch[size_t(i)].x, c.patch_t, c.patch_h, c.patch_w));  // [L_i, C·pt·ph·pw]
        ops::copy(ops::linear(t.patches.back(), w.patch_w, &w.patch_b),
                  x.select(0, i).slice(0, 0, t.seq_lens[size_t(i)]));
    }

    // time embedding: one row per group of S tokens
    t.S = group_tokens(batch, seq_len);
    std::vector<double> tpos;
    for (const DitSample& s : batch)
        for (int64_t l = 0; l < seq_len; l += t.S)
            tpos.push_back(s.t_tokens.empty() ? double(s.t) : s.t_tokens[size_t(l)]);
    const int64_t G = int64_t(tpos.size());
    std::vector<double> sin64 = sinusoidal_embedding_f64(tpos, c.freq_dim);
    std::vector<float> sin32(sin64.begin(), sin64.end());
    t.sinus = ops::from_host(be, DType::F32, {G, c.freq_dim}, sin32.data());
    t.z0 = lin(w.time0, t.sinus);
    t.a0 = ops::silu(t.z0);
    t.e = lin(w.time2, t.a0);  // [G, D]
    t.se = ops::silu(t.e);
    t.e0 = lin(w.time_proj, t.se).reshape({G, 6, D});

    // text embedding: contexts zero-padded to text_len, Linear, GELU(tanh), Linear
    t.ctx_in = ops::zeros(be, {B, c.text_len, c.text_dim});
    for (int64_t i = 0; i < B; ++i) {
        const Tensor& ctx = batch[size_t(i)].context;
        if (ctx.size(0) > 0) ops::copy(ctx, t.ctx_in.select(0, i).slice(0, 0, ctx.size(0)));
    }
    t.u = lin(w.text0, t.ctx_in);
    t.gu = ops::gelu_tanh(t.u);
    t.context = lin(w.text2, t.gu);  // [B, text_len, D]

    AttentionParams self_p;
    self_p.k_lens = t.seq_lens;
    self_p.window_left = c.window_left;
    self_p.window_right = c.window_right;
    const BlockCtx k{c, t.grids, model.rope_table(), self_p, t.context, t.S, t.ffn_rows};
    // At --matmul_precision medium the checkpoints are kept in bf16 (half the memory; 6.2 → 3.1 GB for
    // the 1.3B model at 480p, 81 frames), as the activations of PyTorch's bf16 autocast are: the
    // backward recomputes each block from the rounded input. The last one, the head's input, stays f32.
    const bool bf16_checkpoints = be.matmul_precision() == Backend::MatmulPrecision::Medium;
    const auto written = be.new_event(), copied = be.new_event(), attn_copied = be.new_event();
    SelfAttn held;  // the last block's a and lse, alive until the compute queue has waited for their copy
    for (int64_t li = 0; li < c.num_layers; ++li) {
        const Tensor ck = bf16_checkpoints ? ops::to_dtype(x, DType::BF16) : x;
        // The block runs on what the backward will recompute it from (at Medium: rounded to bf16), so
        // that the loss is the one differentiated and offload's saved attention is the recomputed one.
        if (bf16_checkpoints) x = ops::to_dtype(ck, DType::F32);
        if (!t.offload) {
            t.block_in.push_back(ck);
            x = block_forward(k, w.blocks[size_t(li)], x, t.e0, nullptr);
            continue;
        }
        // The checkpoint's copy out waits for its writer and runs beside this block; a and lse follow
        // it after the block, beside the next one. The compute queue waits for each copy one block
        // later, before the memory read may be reused.
        const HostLayout hl = host_layout(x.shape(), ck.dtype(), c.num_heads);
        char* host = static_cast<char*>(host_block(be, *t.offload, li, hl.bytes));
        t.block_host_dtype = ck.dtype();
        t.block_in.emplace_back();
        be.record(Backend::Queue::Compute, *written);
        be.wait(Backend::Queue::Copy, *written);
        be.download_async(ck, host);
        be.record(Backend::Queue::Copy, *copied);
        SelfAttn sa;
        x = block_forward(k, w.blocks[size_t(li)], x, t.e0, nullptr, nullptr, &sa);
        be.wait(Backend::Queue::Compute, *copied);
        if (held.a.defined()) be.wait(Backend::Queue::Compute, *attn_copied);
        held = sa;
        be.record(Backend::Queue::Compute, *written);
        be.wait(Backend::Queue::Copy, *written);
        be.download_async(sa.a, host + hl.a);
        be.download_async(sa.lse, host + hl.lse);
        be.record(Backend::Queue::Copy, *attn_copied);
    }
    if (held.a.defined()) be.wait(Backend::Queue::Compute, *attn_copied);
    t.block_in.push_back(x);

    Tensor out = dit_head(c, w, x, t.e, t.S);  // [B, seq_len, out_dim·pt·ph·pw]
    std::vector<Tensor> ys;
    for (int64_t i = 0; i < B; ++i) {
        const RopeGrid& g = t.grids[size_t(i)];
        ys.push_back(ops::unpatchify(out.select(0, i), g.f, g.h, g.w, c.patch_t, c.patch_h, c.patch_w));
    }
    if (tape) *tape = std::move(t);
    return ys;
}

DitGrads dit_grads_zeros(const DitModel& model, bool base) {
    const DitWeights& w = model.weights();
    DitGrads g;
    if (!base) {  // LoRA training: the branches' gradients only (the base is frozen)
        for (const DitBlockWeights& b : w.blocks) {
            DitBlockWeights z;
            z.sa_q = zeros_like(b.sa_q, false), z.sa_k = zeros_like(b.sa_k, false), z.sa_v = zeros_like(b.sa_v, false),
            z.sa_o = zeros_like(b.sa_o, false);
            z.ca_q = zeros_like(b.ca_q, false), z.ca_k = zeros_like(b.ca_k, false), z.ca_v = zeros_like(b.ca_v, false),
            z.ca_o = zeros_like(b.ca_o, false);
            z.ffn0 = zeros_like(b.ffn0, false), z.ffn2 = zeros_like(b.ffn2, false);
            g.w.blocks.push_back(std::move(z));
        }
        return g;
    }
    g.w.patch_w = zeros_like(w.patch_w);
    g.w.patch_b = zeros_like(w.patch_b);
    g.w.text0 = zeros_like(w.text0), g.w.text2 = zeros_like(w.text2);
    g.w.time0 = zeros_like(w.time0), g.w.time2 = zeros_like(w.time2), g.w.time_proj = zeros_like(w.time_proj);
    for (const DitBlockWeights& b : w.blocks) {
        DitBlockWeights z;
        z.modulation = zeros_like(b.modulation);
        z.sa_q = zeros_like(b.sa_q), z.sa_k = zeros_like(b.sa_k), z.sa_v = zeros_like(b.sa_v),
        z.sa_o = zeros_like(b.sa_o);
        z.sa_norm_q = zeros_like(b.sa_norm_q), z.sa_norm_k = zeros_like(b.sa_norm_k);
        z.norm3_w = zeros_like(b.norm3_w), z.norm3_b = zeros_like(b.norm3_b);
        z.ca_q = zeros_like(b.ca_q), z.ca_k = zeros_like(b.ca_k), z.ca_v = zeros_like(b.ca_v),
        z.ca_o = zeros_like(b.ca_o);
        z.ca_norm_q = zeros_like(b.ca_norm_q), z.ca_norm_k = zeros_like(b.ca_norm_k);
        z.ffn0 = zeros_like(b.ffn0), z.ffn2 = zeros_like(b.ffn2);
        g.w.blocks.push_back(std::move(z));
    }
    g.w.head_modulation = zeros_like(w.head_modulation);
    g.w.head = zeros_like(w.head);
    return g;
}

void dit_backward(const DitModel& model, const DitTape& t, const std::vector<Tensor>& dy, DitGrads* grads) {
    const DitConfig& c = model.config();
    const DitWeights& w = model.weights();
    Backend& be = model.backend();
    check_supported(c, w, "dit_backward");
    DitWeights& g = grads->w;
    const int64_t B = int64_t(t.batch.size()), L = t.seq_len, D = c.dim, S = t.S, G = B * L / S;
    if (int64_t(dy.size()) != B) fail("dit_backward", dy.size(), " upstream gradients for a batch of ", B);
    if (t.block_in.size() != size_t(c.num_layers + 1))
        fail("dit_backward", "the tape is not from this model's forward");

    // ys_i = unpatchify(head(x)_i): dout [B, L, out_dim·patch], padding rows zero
    const int64_t O = c.out_dim * c.patch_volume();
    Tensor dout = be.empty(DType::F32, {B, L, O});
    for (int64_t i = 0; i < B; ++i) {
        const RopeGrid& gr = t.grids[size_t(i)];
        if (dy[size_t(i)].shape() != Shape{c.out_dim, gr.f * c.patch_t, gr.h * c.patch_h, gr.w * c.patch_w})
            fail("dit_backward", "upstream gradient ", i, " is ", dy[size_t(i)].describe(),
                 ", the output's shape differs");
        ops::copy(ops::unpatchify_backward(dy[size_t(i)], L, gr.f, gr.h, gr.w, c.patch_t, c.patch_h, c.patch_w),
                  dout.select(0, i));
    }

    // head: out = head(norm(x)·(1 + scale) + shift), (shift, scale) = head.modulation + e
    const Tensor& xL = t.block_in.back();
    Tensor hm = ops::add(w.head_modulation, t.e.reshape({G, 1, D}));  // [G, 2, D]
    Tensor hh = ops::norm_modulate(xL.reshape({G, S, D}), hm.select(1, 0), hm.select(1, 1), c.eps);
    Tensor dhh = lin_bw(w.head, g.head, hh, dout.reshape({G, S, O}));
    Tensor dshift, dscale;
    Tensor dx = ops::norm_modulate_backward(xL.reshape({G, S, D}), hm.select(1, 1), c.eps, dhh, &dshift, &dscale)
                    .reshape({B, L, D});
    Tensor dhm = ops::zeros(be, {G, 2, D});
    ops::copy(dshift, dhm.select(1, 0));
    ops::copy(dscale, dhm.select(1, 1));
    if (g.head_modulation.defined()) {
        Tensor dhead_mod = g.head_modulation.reshape({2 * D});
        ops::sum_rows(dhm.reshape({G, 2 * D}), &dhead_mod, true);
    }
    Tensor de = ops::add(dshift, dscale);  // e broadcast to both rows

    // blocks, last to first, each recomputed from its checkpoint
    AttentionParams self_p;
    self_p.k_lens = t.seq_lens;
    self_p.window_left = c.window_left;
    self_p.window_right = c.window_right;
    const BlockCtx k{c, t.grids, model.rope_table(), self_p, t.context, S, t.ffn_rows};
    Tensor dctx = ops::zeros(be, t.context.shape());
    Tensor de0 = ops::zeros(be, {G, 6, D});
    // Offloaded blocks come back one block ahead on the Copy queue (the checkpoint, a and lse), into
    // memory the compute queue may have used until now (hence the wait before the copy).
    const auto before = be.new_event(), fetched = be.new_event();
    struct Fetched {
        Tensor ck;
        SelfAttn sa;
    };
    auto fetch = [&](int64_t li) {
        const Shape& xs = t.block_in.back().shape();
        const HostLayout hl = host_layout(xs, t.block_host_dtype, c.num_heads);
        const char* host = static_cast<const char*>(t.offload->blocks[size_t(li)]->ptr());
        Fetched f{be.empty(t.block_host_dtype, xs),
                  {be.empty(DType::F32, {xs[0], xs[1], c.num_heads, c.head_dim()}),
                   be.empty(DType::F32, {xs[0], c.num_heads, xs[1]})}};
        be.record(Backend::Queue::Compute, *before);
        be.wait(Backend::Queue::Copy, *before);
        be.upload_async(f.ck, host);
        be.upload_async(f.sa.a, host + hl.a);
        be.upload_async(f.sa.lse, host + hl.lse);
        be.record(Backend::Queue::Copy, *fetched);
        return f;
    };
    Fetched next = t.offload && c.num_layers > 0 ? fetch(c.num_layers - 1) : Fetched{};
    for (int64_t li = c.num_layers - 1; li >= 0; --li) {
        BlockActs acts;
        Tensor ck = t.block_in[size_t(li)];
        SelfAttn sa;
        if (t.offload) {
            be.wait(Backend::Queue::Compute, *fetched);
            ck = std::move(next.ck);
            sa = std::move(next.sa);
            if (li > 0) next = fetch(li - 1);
        }
        block_forward(k, w.blocks[size_t(li)], ck.dtype() == DType::F32 ? ck : ops::to_dtype(ck, DType::F32), t.e0,
                      &acts, t.offload ? &sa : nullptr);
        sa = SelfAttn();
        dx = block_backward(k, w.blocks[size_t(li)], g.blocks[size_t(li)], acts, dx, dctx, de0);
    }

    // time embedding: e0 = time_proj(silu(e)), e = time2(silu(time0(sinus)))
    Tensor dse = lin_bw(w.time_proj, g.time_proj, t.se, de0.reshape({G, 6 * D}));
    acc(de, ops::unary_backward(Activation::Silu, t.e, dse));
    Tensor da0 = lin_bw(w.time2, g.time2, t.a0, de);
    lin_bw(w.time0, g.time0, t.sinus, ops::unary_backward(Activation::Silu, t.z0, da0), nullptr, false);

    // text embedding: context = text2(gelu(text0(ctx_in)))
    Tensor dgu = lin_bw(w.text2, g.text2, t.gu, dctx);
    Tensor dctx_in = lin_bw(w.text0, g.text0, t.ctx_in, ops::unary_backward(Activation::GeluTanh, t.u, dgu));
    grads->dcontext.clear();
    for (int64_t i = 0; i < B; ++i) {
        const int64_t n = t.batch[size_t(i)].context.size(0);
        grads->dcontext.push_back(ops::contiguous(dctx_in.select(0, i).slice(0, 0, n)));
    }

    // patch embedding: x rows [0, L_i) of sample i = linear(patchify(x_i))
    grads->dx.clear();
    for (int64_t i = 0; i < B; ++i) {
        const Shape& xs = t.batch[size_t(i)].x.shape();
        Tensor demb = dx.select(0, i).slice(0, 0, t.seq_lens[size_t(i)]);
        Tensor dp;
        ops::linear_backward(t.patches[size_t(i)], w.patch_w, demb, &dp, g.patch_w.defined() ? &g.patch_w : nullptr,
                             g.patch_b.defined() ? &g.patch_b : nullptr, true);
        grads->dx.push_back(ops::patchify_backward(dp, xs[0], xs[1], xs[2], xs[3], c.patch_t, c.patch_h, c.patch_w));
    }
}

std::vector<std::pair<std::string, Tensor>> dit_named_params(const DitConfig& c, const DitWeights& w) {
    std::vector<std::pair<std::string, Tensor>> out;
    auto lin_p = [&](const std::string& n, const Linear& l) {
        out.emplace_back(n + ".weight", l.w);
        out.emplace_back(n + ".bias", l.b);
    };
    out.emplace_back("patch_embedding.weight", w.patch_w);
    out.emplace_back("patch_embedding.bias", w.patch_b);
    lin_p("text_embedding.0", w.text0);
    lin_p("text_embedding.2", w.text2);
    lin_p("time_embedding.0", w.time0);
    lin_p("time_embedding.2", w.time2);
    lin_p("time_projection.1", w.time_proj);
    for (size_t i = 0; i < w.blocks.size(); ++i) {
        const DitBlockWeights& b = w.blocks[i];
        const std::string p = "blocks." + std::to_string(i) + ".";
        out.emplace_back(p + "modulation", b.modulation);
        lin_p(p + "self_attn.q", b.sa_q);
        lin_p(p + "self_attn.k", b.sa_k);
        lin_p(p + "self_attn.v", b.sa_v);
        lin_p(p + "self_attn.o", b.sa_o);
        lin_p(p + "cross_attn.q", b.ca_q);
        lin_p(p + "cross_attn.k", b.ca_k);
        lin_p(p + "cross_attn.v", b.ca_v);
        lin_p(p + "cross_attn.o", b.ca_o);
        if (c.qk_norm) {
            out.emplace_back(p + "self_attn.norm_q.weight", b.sa_norm_q);
            out.emplace_back(p + "self_attn.norm_k.weight", b.sa_norm_k);
            out.emplace_back(p + "cross_attn.norm_q.weight", b.ca_norm_q);
            out.emplace_back(p + "cross_attn.norm_k.weight", b.ca_norm_k);
        }
        if (c.cross_attn_norm) {
            out.emplace_back(p + "norm3.weight", b.norm3_w);
            out.emplace_back(p + "norm3.bias", b.norm3_b);
        }
        lin_p(p + "ffn.0", b.ffn0);
        lin_p(p + "ffn.2", b.ffn2);
    }
    out.emplace_back("head.modulation", w.head_modulation);
    lin_p("head.head", w.head);
    return out;
}

}  // namespace wanrt
