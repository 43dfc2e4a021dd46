// WanModel forward (wan/modules/model.py), module by module.
#include "models/dit.h"

#include <algorithm>

#include "core/error.h"
#include "models/dit_weights.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// FFN hidden elements per chunk (64 Mi f32 = 256 MB).
constexpr int64_t kFfnChunkElems = int64_t(64) << 20;

Linear load_linear(WeightLoader& ld, const std::string& name, int64_t out, int64_t in) {
    return {ld.matrix(name + ".weight", {out, in}), ld.param(name + ".bias", {out})};
}

}  // namespace

DitModel::DitModel(const DitConfig& cfg, std::shared_ptr<TensorSource> src, Backend& be, const std::string& prefix)
    : cfg_(cfg), be_(be), w_(std::make_unique<DitWeights>()) {
    cfg_.validate(src->origin());
    WeightLoader ld(src, be, prefix);
    const int64_t D = cfg_.dim, F = cfg_.ffn_dim;
    DitWeights& w = *w_;
    w.patch_w = ld.param_as("patch_embedding.weight", {D, cfg_.in_dim, cfg_.patch_t, cfg_.patch_h, cfg_.patch_w},
                            {D, cfg_.in_dim * cfg_.patch_volume()});
    w.patch_b = ld.param("patch_embedding.bias", {D});
    w.text0 = load_linear(ld, "text_embedding.0", D, cfg_.text_dim);
    w.text2 = load_linear(ld, "text_embedding.2", D, D);
    w.time0 = load_linear(ld, "time_embedding.0", D, cfg_.freq_dim);
    w.time2 = load_linear(ld, "time_embedding.2", D, D);
    w.time_proj = load_linear(ld, "time_projection.1", 6 * D, D);
    w.blocks.resize(size_t(cfg_.num_layers));
    for (int64_t i = 0; i < cfg_.num_layers; ++i) {
        const std::string p = "blocks." + std::to_string(i) + ".";
        DitBlockWeights& b = w.blocks[size_t(i)];
        b.modulation = ld.param(p + "modulation", {1, 6, D});
        b.sa_q = load_linear(ld, p + "self_attn.q", D, D);
        b.sa_k = load_linear(ld, p + "self_attn.k", D, D);
        b.sa_v = load_linear(ld, p + "self_attn.v", D, D);
        b.sa_o = load_linear(ld, p + "self_attn.o", D, D);
        b.ca_q = load_linear(ld, p + "cross_attn.q", D, D);
        b.ca_k = load_linear(ld, p + "cross_attn.k", D, D);
        b.ca_v = load_linear(ld, p + "cross_attn.v", D, D);
        b.ca_o = load_linear(ld, p + "cross_attn.o", D, D);
        if (cfg_.qk_norm) {
            b.sa_norm_q = ld.param(p + "self_attn.norm_q.weight", {D});
            b.sa_norm_k = ld.param(p + "self_attn.norm_k.weight", {D});
            b.ca_norm_q = ld.param(p + "cross_attn.norm_q.weight", {D});
            b.ca_norm_k = ld.param(p + "cross_attn.norm_k.weight", {D});
        }
        if (cfg_.is_i2v()) {
            b.ca_k_img = load_linear(ld, p + "cross_attn.k_img", D, D);
            b.ca_v_img = load_linear(ld, p + "cross_attn.v_img", D, D);
            if (cfg_.qk_norm) b.ca_norm_k_img = ld.param(p + "cross_attn.norm_k_img.weight", {D});
        }
        if (cfg_.cross_attn_norm) {
            b.norm3_w = ld.param(p + "norm3.weight", {D});
            b.norm3_b = ld.param(p + "norm3.bias", {D});
        }
        b.ffn0 = load_linear(ld, p + "ffn.0", F, D);
        b.ffn2 = load_linear(ld, p + "ffn.2", D, F);
    }
    w.head_modulation = ld.param("head.modulation", {1, 2, D});
    w.head = load_linear(ld, "head.head", cfg_.out_dim * cfg_.patch_volume(), D);
    if (cfg_.is_i2v()) {
        w.img_ln0_w = ld.param("img_emb.proj.0.weight", {1280});
        w.img_ln0_b = ld.param("img_emb.proj.0.bias", {1280});
        w.img1 = load_linear(ld, "img_emb.proj.1", 1280, 1280);
        w.img3 = load_linear(ld, "img_emb.proj.3", D, 1280);
        w.img_ln4_w = ld.param("img_emb.proj.4.weight", {D});
        w.img_ln4_b = ld.param("img_emb.proj.4.bias", {D});
    }
    ld.finish();

    std::vector<double> tab = rope_table_f64(cfg_.head_dim());
    std::vector<float> tab32(tab.begin(), tab.end());
    rope_ = ops::from_host(be_, DType::F32, {1024, cfg_.head_dim() / 2, 2}, tab32.data());
}

DitModel::~DitModel() = default;

int64_t DitModel::tokens_for(const Shape& s) const {
    return (s[1] / cfg_.patch_t) * (s[2] / cfg_.patch_h) * (s[3] / cfg_.patch_w);
}

std::vector<Tensor> DitModel::forward(const std::vector<DitSample>& batch, int64_t seq_len, const DumpFn& dump) const {
    const DitConfig& c = cfg_;
    const DitWeights& w = *w_;
    const int64_t B = int64_t(batch.size()), D = c.dim, N = c.num_heads, hd = c.head_dim();
    if (B == 0) fail("dit", "empty batch");

    // ---- validate inputs and derive each sample's patch grid
    std::vector<RopeGrid> grids(static_cast<size_t>(B));
    std::vector<int32_t> seq_lens(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) {
        const DitSample& s = batch[size_t(i)];
        if (!s.x.defined() || s.x.ndim() != 4)
            fail("dit", "sample ", i, ": latent must be [C, F, H, W], got ", s.x.defined() ? s.x.describe() : "none");
        const int64_t cx = s.x.size(0);
        const int64_t cy = s.y.defined() ? s.y.size(0) : 0;
        if (c.is_i2v() && !s.y.defined()) fail("dit", "sample ", i, ": an i2v model needs the conditioning latent y");
        if (!c.is_i2v() && s.y.defined()) fail("dit", "sample ", i, ": a t2v model takes no conditioning latent y");
        if (cx + cy != c.in_dim)
            fail("dit", "sample ", i, ": latent has ", cx, " + ", cy, " channels, the model expects in_dim ", c.in_dim);
        if (s.y.defined() && (s.y.ndim() != 4 || s.y.size(1) != s.x.size(1) || s.y.size(2) != s.x.size(2) ||
                              s.y.size(3) != s.x.size(3)))
            fail("dit", "sample ", i, ": conditioning ", s.y.describe(), " does not match latent ", s.x.describe());
        const int64_t F = s.x.size(1), H = s.x.size(2), W = s.x.size(3);
        if (F % c.patch_t || H % c.patch_h || W % c.patch_w || F == 0 || H == 0 || W == 0)
            fail("dit", "sample ", i, ": latent ", F, "x", H, "x", W, " (frames x height x width) is not a positive multiple of the patch ",
                 c.patch_t, "x", c.patch_h, "x", c.patch_w, "; use a video size that is a multiple of ", 8 * c.patch_h,
                 " pixels");
        grids[size_t(i)] = {F / c.patch_t, H / c.patch_h, W / c.patch_w, 0};
        const int64_t L = grids[size_t(i)].f * grids[size_t(i)].h * grids[size_t(i)].w;
        if (L > seq_len)
            fail("dit", "sample ", i, " has ", L, " tokens but seq_len is ", seq_len, "; raise seq_len to at least ", L);
        seq_lens[size_t(i)] = int32_t(L);
        if (!s.context.defined() || s.context.ndim() != 2 || s.context.size(1) != c.text_dim || s.context.size(0) > c.text_len)
            fail("dit", "sample ", i, ": context must be [len ≤ ", c.text_len, ", ", c.text_dim, "], got ",
                 s.context.defined() ? s.context.describe() : "none");
        if (c.is_i2v() && (!s.clip_fea.defined() || s.clip_fea.ndim() != 2 || s.clip_fea.size(1) != 1280))
            fail("dit", "sample ", i, ": an i2v model needs clip_fea [257, 1280], got ",
                 s.clip_fea.defined() ? s.clip_fea.describe() : "none");
        if (i > 0 && c.is_i2v() && s.clip_fea.size(0) != batch[0].clip_fea.size(0))
            fail("dit", "sample ", i, ": clip_fea token counts differ within the batch");
    }

    // ---- patch embedding: Conv3d(kernel = stride = patch) as patchify + linear, zero-padded to seq_len
    Tensor x = ops::zeros(be_, {B, seq_len, D});  // [B, seq_len, D]
    for (int64_t i = 0; i < B; ++i) {
        const DitSample& s = batch[size_t(i)];
        Tensor in = s.y.defined() ? ops::concat({s.x, s.y}, 0) : s.x;           // [in_dim, F, H, W]
        Tensor patches = ops::patchify(in, c.patch_t, c.patch_h, c.patch_w);  // [L, in_dim·pt·ph·pw]
        Tensor emb = ops::linear(patches, w.patch_w, &w.patch_b);               // [L, D]
        ops::copy(emb, x.select(0, i).slice(0, 0, seq_lens[size_t(i)]));
        if (dump && i == 0) {
            const RopeGrid& g = grids[0];
            dump("patch_embed_first", emb.reshape({1, g.f, g.h, g.w, D}).permute({0, 4, 1, 2, 3}));  // [1, D, f, h, w]
        }
    }

    // ---- time embedding (fp32): e [B, D], e0 [B, 6, D]
    std::vector<double> tpos(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) tpos[size_t(i)] = batch[size_t(i)].t;
    std::vector<double> sin64 = sinusoidal_embedding_f64(tpos, c.freq_dim);
    std::vector<float> sin32(sin64.begin(), sin64.end());
    Tensor sinus = ops::from_host(be_, DType::F32, {B, c.freq_dim}, sin32.data());
    Tensor e = w.time2(w.time0(sinus, Activation::Silu));                          // [B, D]
    Tensor e0 = w.time_proj(ops::silu(e)).reshape({B, 6, D});                     // [B, 6, D]
    if (dump) {
        dump("e", e);
        dump("e0", e0);
    }

    // ---- text embedding: contexts zero-padded to text_len, Linear, GELU(tanh), Linear
    Tensor ctx_in = ops::zeros(be_, {B, c.text_len, c.text_dim});
    for (int64_t i = 0; i < B; ++i) {
        const Tensor& t = batch[size_t(i)].context;
        if (t.size(0) > 0) ops::copy(t, ctx_in.select(0, i).slice(0, 0, t.size(0)));
    }
    Tensor context = w.text2(w.text0(ctx_in, Activation::GeluTanh));  // [B, text_len, D]
    if (dump) dump("context_emb", context);

    // I2V: context = [img_emb(clip_fea) ; text], split again inside every cross-attention at
    // image_context_length = ctx_len − 512 (T5_CONTEXT_TOKEN_NUMBER, a constant in model.py, not
    // text_len), with Python slice semantics for a negative length. With text_len = 512 (every
    // release) that is the 257 CLIP tokens; other text_len values reproduce the official split.
    Tensor ctx_img, ctx_text = context;
    if (c.is_i2v()) {
        std::vector<Tensor> clips;
        for (auto& s : batch) clips.push_back(s.clip_fea.unsqueeze(0));
        Tensor clip = ops::concat(clips, 0);                                       // [B, 257, 1280]
        Tensor h = ops::layer_norm(clip, &w.img_ln0_w, &w.img_ln0_b, 1e-5f);
        h = w.img3(w.img1(h, Activation::GeluErf));
        Tensor img = ops::layer_norm(h, &w.img_ln4_w, &w.img_ln4_b, 1e-5f);      // [B, 257, D]
        Tensor full = ops::concat({img, context}, 1);                              // [B, 257 + text_len, D]
        const int64_t L = full.size(1), n_img = L - 512;
        const int64_t split = std::clamp<int64_t>(n_img >= 0 ? n_img : L + n_img, 0, L);
        ctx_img = ops::contiguous(full.slice(1, 0, split));
        ctx_text = ops::contiguous(full.slice(1, split, L));
    }

    AttentionParams self_p;
    self_p.k_lens = seq_lens;
    self_p.window_left = c.window_left;
    self_p.window_right = c.window_right;
    const AttentionParams cross_p;  // all text tokens attended (context_lens is None in WanModel)

    for (int64_t li = 0; li < c.num_layers; ++li) {
        const DitBlockWeights& b = w.blocks[size_t(li)];
        Tensor m = ops::add(b.modulation, e0);  // [B, 6, D]: shift1, scale1, gate1, shift2, scale2, gate2
        auto mod = [&](int k) { return m.select(1, k); };  // [B, D], row stride 6D

        // self-attention
        Tensor h = ops::norm_modulate(x, mod(0), mod(1), c.eps);
        Tensor q = b.sa_q(h).reshape({B, seq_len, N, hd}), k = b.sa_k(h).reshape({B, seq_len, N, hd}), v = b.sa_v(h);
        if (c.qk_norm) {  // rope(rms_norm(·)) in one pass: [B, L, N, hd]
            q = ops::rms_norm_rope(q, b.sa_norm_q, c.eps, grids, rope_);
            k = ops::rms_norm_rope(k, b.sa_norm_k, c.eps, grids, rope_);
        } else {
            q = ops::rope(q, grids, rope_);
            k = ops::rope(k, grids, rope_);
        }
        Tensor a = ops::attention(q, k, v.reshape({B, seq_len, N, hd}), self_p);  // [B, L, N, hd]
        ops::gated_residual(x, b.sa_o(a.reshape({B, seq_len, D})), mod(2));

        // cross-attention (no modulation, no gate)
        Tensor hn = c.cross_attn_norm ? ops::layer_norm(x, &b.norm3_w, &b.norm3_b, c.eps) : x;
        Tensor cq = b.ca_q(hn);
        if (c.qk_norm) cq = ops::rms_norm(cq, b.ca_norm_q, c.eps);
        cq = cq.reshape({B, seq_len, N, hd});
        Tensor ck = b.ca_k(ctx_text), cv = b.ca_v(ctx_text);  // [B, Lt, D]
        if (c.qk_norm) ck = ops::rms_norm(ck, b.ca_norm_k, c.eps);
        const int64_t Lt = ctx_text.size(1);
        Tensor ca = ops::attention(cq, ck.reshape({B, Lt, N, hd}), cv.reshape({B, Lt, N, hd}), cross_p);
        if (c.is_i2v()) {
            const int64_t Li = ctx_img.size(1);
            Tensor ki = b.ca_k_img(ctx_img), vi = b.ca_v_img(ctx_img);  // [B, Li, D]
            if (c.qk_norm) ki = ops::rms_norm(ki, b.ca_norm_k_img, c.eps);
            Tensor ia = ops::attention(cq, ki.reshape({B, Li, N, hd}), vi.reshape({B, Li, N, hd}), cross_p);
            ca = ops::add(ca, ia);  // text and image branches are summed before the output projection
        }
        x = ops::add(x, b.ca_o(ca.reshape({B, seq_len, D})));

        // feed-forward, over token chunks so the [tokens, ffn_dim] hidden state stays bounded
        // (at 480p/81 frames it would be 1.2 GB in f32); rows are independent, so this is exact.
        h = ops::norm_modulate(x, mod(3), mod(4), c.eps);
        const int64_t chunk = ffn_chunk_tokens_ > 0 ? ffn_chunk_tokens_ : std::max<int64_t>(1, kFfnChunkElems / c.ffn_dim);
        const DType hid = ops::linear_chain_dtype(backend(), b.ffn2.w.dtype());  // the hidden state only feeds ffn2
        for (int64_t bi = 0; bi < B; ++bi) {
            for (int64_t l0 = 0; l0 < seq_len; l0 += chunk) {
                const int64_t l1 = std::min(seq_len, l0 + chunk);
                Tensor hx = h.select(0, bi).slice(0, l0, l1).unsqueeze(0);  // [1, n, D]
                Tensor xx = x.select(0, bi).slice(0, l0, l1).unsqueeze(0);  // [1, n, D], a view of x
                ops::gated_residual(xx, b.ffn2(b.ffn0(hx, Activation::GeluTanh, hid)), mod(5).slice(0, bi, bi + 1));
            }
        }
        if (dump) dump("block" + std::to_string(li) + "_out", x);
    }

    // ---- head: modulation from e (not e0), LayerNorm, Linear
    Tensor hm = ops::add(w.head_modulation, e.reshape({B, 1, D}));  // [B, 2, D]: shift, scale
    Tensor out = w.head(ops::norm_modulate(x, hm.select(1, 0), hm.select(1, 1), c.eps));  // [B, L, out·patch]

    std::vector<Tensor> ys;
    for (int64_t i = 0; i < B; ++i) {
        const RopeGrid& g = grids[size_t(i)];
        ys.push_back(ops::unpatchify(out.select(0, i), g.f, g.h, g.w, c.patch_t, c.patch_h, c.patch_w));
    }
    return ys;
}

}  // namespace wanrt
