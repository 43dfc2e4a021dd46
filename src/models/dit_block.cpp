// WanAttentionBlock and WanModel's head (wan/modules/model.py), written once for both DiT models.
// The op sequence is the hot path of every denoising step: each fused op (norm_modulate,
// rms_norm_rope, gated_residual, the bf16 FFN hidden state) appears once per use, and every
// reshape below is a view.
#include "models/dit_block.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// K and V of one cross-attention branch: k(ctx), v(ctx), rms_norm on k (qk_norm), in dtype,
// viewed [Bk, Lk, N, hd].
std::pair<Tensor, Tensor> kv_pair(const DitConfig& c, const Linear& lk, const Linear& lv, const Tensor& norm_k,
                                  const Tensor& ctx, DType dtype) {
    const int64_t Bk = ctx.size(0), Lk = ctx.size(1), N = c.num_heads, hd = c.head_dim();
    Tensor k = lk(ctx), v = lv(ctx);  // [Bk, Lk, D]
    if (c.qk_norm) k = ops::rms_norm(k, norm_k, c.eps);
    return {ops::to_dtype(k, dtype).reshape({Bk, Lk, N, hd}), ops::to_dtype(v, dtype).reshape({Bk, Lk, N, hd})};
}

// Queries q [B, L, N, hd] against K/V [Bk, Lk, N, hd]: Bk = B pairs sample with sample; Bk = 1 (a
// shared context) runs all rows as one sequence [1, B·L, N, hd], which is the same unmasked attention.
Tensor cross_attend(const Tensor& q, const Tensor& k, const Tensor& v) {
    const int64_t B = q.size(0), L = q.size(1);
    if (k.size(0) == B) return ops::attention(q, k, v);
    WANRT_ASSERT(k.size(0) == 1);
    return ops::attention(q.reshape({1, B * L, q.size(2), q.size(3)}), k, v).reshape(q.shape());
}

}  // namespace

TimeEmbedding time_embedding(const DitConfig& c, const DitWeights& w, Backend& be, const std::vector<double>& t) {
    const int64_t n = int64_t(t.size());
    std::vector<double> sin64 = sinusoidal_embedding_f64(t, c.freq_dim);
    std::vector<float> sin32(sin64.begin(), sin64.end());
    Tensor sinus = ops::from_host(be, DType::F32, {n, c.freq_dim}, sin32.data());
    TimeEmbedding te;
    te.e = w.time2(w.time0(sinus, Activation::Silu));                          // [n, D]
    te.e0 = w.time_proj(ops::silu(te.e)).reshape({n, 6, c.dim});               // [n, 6, D]
    return te;
}

Tensor text_embedding(const DitConfig& c, const DitWeights& w, Backend& be, const std::vector<Tensor>& contexts) {
    const int64_t n = int64_t(contexts.size());
    Tensor ctx_in = ops::zeros(be, {n, c.text_len, c.text_dim});  // [n, text_len, text_dim]
    for (int64_t i = 0; i < n; ++i) {
        const Tensor& t = contexts[size_t(i)];
        if (t.size(0) > 0) ops::copy(t, ctx_in.select(0, i).slice(0, 0, t.size(0)));
    }
    return w.text2(w.text0(ctx_in, Activation::GeluTanh));  // [n, text_len, D]
}

CrossKv cross_kv(const DitConfig& c, const DitBlockWeights& b, const Tensor& ctx_text, const Tensor& ctx_img,
                 DType dtype) {
    CrossKv kv;
    std::tie(kv.k, kv.v) = kv_pair(c, b.ca_k, b.ca_v, b.ca_norm_k, ctx_text, dtype);
    if (ctx_img.defined()) std::tie(kv.k_img, kv.v_img) = kv_pair(c, b.ca_k_img, b.ca_v_img, b.ca_norm_k_img, ctx_img, dtype);
    return kv;
}

Tensor dit_block(const DitConfig& c, const DitBlockWeights& b, int64_t layer, Tensor x, const Tensor& e0,
                 const SelfAttendFn& attend, const BlockInputs& in) {
    const int64_t B = x.size(0), L = x.size(1), D = c.dim, N = c.num_heads, hd = c.head_dim();
    const int64_t S = in.group_tokens, G = S > 0 ? B * L / S : 0;
    if (S <= 0 || L % S || e0.ndim() != 3 || e0.size(0) != G || e0.size(1) != 6 || e0.size(2) != D)
        fail("dit_block", "modulation ", e0.describe(), " does not give one [6, ", D, "] row per ", S,
             " tokens of x ", x.describe(), "; pass e0 [G, 6, D] with G·S = B·L and S dividing L");
    const std::string name = "blk." + std::to_string(layer) + ".";
    auto dump = [&](const std::string& what) {
        if (in.dump && *in.dump) (*in.dump)(name + what, x);
    };

    Tensor m = ops::add(b.modulation, e0);               // [G, 6, D]: shift1, scale1, gate1, shift2, scale2, gate2
    auto mod = [&](int k) { return m.select(1, k); };  // [G, D], row stride 6D
    Tensor xg = x.reshape({G, S, D});                    // modulation groups

    // ---- self-attention
    Tensor h = ops::norm_modulate(xg, mod(0), mod(1), c.eps).reshape({B, L, D});
    Tensor q = b.sa_q(h).reshape({B, L, N, hd}), k = b.sa_k(h).reshape({B, L, N, hd});  // [B, L, N, hd]
    Tensor v = b.sa_v(h).reshape({B, L, N, hd});
    if (c.qk_norm) {  // rope(rms_norm(·)) in one pass
        q = ops::rms_norm_rope(q, b.sa_norm_q, c.eps, *in.grids, *in.rope);
        k = ops::rms_norm_rope(k, b.sa_norm_k, c.eps, *in.grids, *in.rope);
    } else {
        q = ops::rope(q, *in.grids, *in.rope);
        k = ops::rope(k, *in.grids, *in.rope);
    }
    Tensor a = attend(q, k, v);  // [B, L, N, hd]
    ops::gated_residual(xg, b.sa_o(a.reshape({G, S, D})), mod(2));
    dump("self_attn.out");

    // ---- cross-attention (no modulation, no gate); K/V from the cache or projected after the queries
    Tensor hn = c.cross_attn_norm ? ops::layer_norm(x, &b.norm3_w, &b.norm3_b, c.eps) : x;
    Tensor cq = b.ca_q(hn);
    if (c.qk_norm) cq = ops::rms_norm(cq, b.ca_norm_q, c.eps);
    cq = cq.reshape({B, L, N, hd});
    const CrossKv* cached = in.cross_cache ? &(*in.cross_cache)[size_t(layer)] : nullptr;
    Tensor ck, cv;
    std::tie(ck, cv) = cached ? std::make_pair(cached->k, cached->v)
                              : kv_pair(c, b.ca_k, b.ca_v, b.ca_norm_k, in.ctx_text, DType::F32);
    Tensor ca = cross_attend(cq, ck, cv);  // [B, L, N, hd]
    if (c.has_clip()) {
        Tensor ki, vi;
        std::tie(ki, vi) = cached ? std::make_pair(cached->k_img, cached->v_img)
                                  : kv_pair(c, b.ca_k_img, b.ca_v_img, b.ca_norm_k_img, in.ctx_img, DType::F32);
        ca = ops::add(ca, cross_attend(cq, ki, vi));  // text and image branches are summed before the output projection
    }
    x = ops::add(x, b.ca_o(ca.reshape({B, L, D})));
    xg = x.reshape({G, S, D});
    dump("cross_attn.out");

    // ---- feed-forward; the [tokens, ffn_dim] hidden state only feeds ffn2, so it may stay bf16
    h = ops::norm_modulate(xg, mod(3), mod(4), c.eps);  // [G, S, D]
    const DType hid = ops::linear_chain_dtype(*x.backend(), b.ffn2.w.dtype());
    auto ffn = [&](const Tensor& hx) { return b.ffn2(b.ffn0(hx, Activation::GeluTanh, hid)); };
    const int64_t chunk = in.ffn_chunk_tokens;
    if (chunk <= 0) {
        ops::gated_residual(xg, ffn(h), mod(5));
    } else {
        // Token chunks inside each sample (rows are independent, so this is exact): whole groups
        // while a group fits a chunk, else pieces of one group.
        const int64_t per_sample = L / S;
        for (int64_t bi = 0; bi < B; ++bi) {
            const int64_t g_end = (bi + 1) * per_sample;
            if (S > chunk) {
                for (int64_t g = bi * per_sample; g < g_end; ++g) {
                    for (int64_t l0 = 0; l0 < S; l0 += chunk) {
                        const int64_t l1 = std::min(S, l0 + chunk);
                        Tensor hx = h.select(0, g).slice(0, l0, l1).unsqueeze(0);   // [1, n, D]
                        Tensor xx = xg.select(0, g).slice(0, l0, l1).unsqueeze(0);  // [1, n, D], a view of x
                        ops::gated_residual(xx, ffn(hx), mod(5).slice(0, g, g + 1));
                    }
                }
            } else {
                for (int64_t g0 = bi * per_sample; g0 < g_end; g0 += chunk / S) {
                    const int64_t g1 = std::min(g_end, g0 + chunk / S);
                    // [g1 − g0, S, D] views of h and x
                    ops::gated_residual(xg.slice(0, g0, g1), ffn(h.slice(0, g0, g1)), mod(5).slice(0, g0, g1));
                }
            }
        }
    }
    dump("ffn.out");
    if (in.dump && *in.dump) (*in.dump)("block" + std::to_string(layer) + "_out", x);
    return x;
}

Tensor dit_head(const DitConfig& c, const DitWeights& w, const Tensor& x, const Tensor& e, int64_t group_tokens) {
    const int64_t B = x.size(0), L = x.size(1), D = c.dim, S = group_tokens, G = S > 0 ? B * L / S : 0;
    if (S <= 0 || L % S || e.ndim() != 2 || e.size(0) != G || e.size(1) != D)
        fail("dit_block", "head modulation ", e.describe(), " does not give one [", D, "] row per ", S, " tokens of x ",
             x.describe(), "; pass e [G, D] with G·S = B·L");
    Tensor hm = ops::add(w.head_modulation, e.reshape({G, 1, D}));  // [G, 2, D]: shift, scale
    Tensor out = w.head(ops::norm_modulate(x.reshape({G, S, D}), hm.select(1, 0), hm.select(1, 1), c.eps));
    return out.reshape({B, L, out.size(2)});  // [B, L, out_dim·patch]
}

}  // namespace wanrt
