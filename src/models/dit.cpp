// WanModel forward (wan/modules/model.py), module by module.
#include "models/dit.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "models/dit_block.h"
#include "models/dit_offload.h"
#include "models/dit_weights.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// FFN hidden elements per chunk (64 Mi f32 = 256 MB).
constexpr int64_t kFfnChunkElems = int64_t(64) << 20;

// A device's caching allocator rounds blocks above 1 MiB to 2 MiB granules (cuda_backend.cpp), which
// costs nothing for bf16 widths (5120² · 2 bytes is whole MiB) but up to a granule per block-quantized
// weight: a 14B Q4_K q projection is 14.06 MiB → 16 MiB, ≈ 15 MiB per block, ≈ 0.6 GiB over a 14B
// Q4_K_M DiT. Packing a block's block-typed weights into one buffer (512-byte offsets, as the offload
// packs) leaves one partial granule per block. Only block types: a dense weight may be replaced later
// (--linear_dtype fp8) and must free its bytes then, which a shared pack would not. Byte copies on the
// device (u8 views); the originals go back to the allocator's cache, where the next block's loads find
// blocks of their sizes.
void pack_block_weights(Backend& be, DitBlockWeights& b) {
    std::vector<Tensor*> qs;
    for (Tensor* t : dit_block_tensors(b))
        if (dtype_is_block(t->dtype())) qs.push_back(t);
    if (qs.size() < 2) return;
    constexpr size_t kAlign = 512;
    std::vector<size_t> at;
    size_t bytes = 0;
    for (const Tensor* t : qs) {
        at.push_back(bytes);
        bytes = (bytes + t->nbytes() + kAlign - 1) / kAlign * kAlign;
    }
    const std::shared_ptr<Buffer> pack = be.alloc(bytes);
    for (size_t k = 0; k < qs.size(); ++k) {
        Tensor& t = *qs[k];
        WANRT_ASSERT(t.is_contiguous());
        const Shape raw{int64_t(t.nbytes())};  // [bytes] as u8: the block bytes as they are
        ops::copy(Tensor(t.buffer(), DType::U8, raw, t.offset_bytes()), Tensor(pack, DType::U8, raw, at[k]));
        t = Tensor(pack, t.dtype(), t.shape(), at[k]);
    }
}

Linear load_linear(WeightLoader& ld, const std::string& name, int64_t out, int64_t in) {
    return {ld.matrix(name + ".weight", {out, in}), ld.param(name + ".bias", {out})};
}

// Tokens per modulation row: the largest S dividing seq_len such that every sample's timestep is
// constant over each run of S tokens (seq_len without per-token timesteps: one row per sample, as
// Wan2.1; h·w-sized runs for TI2V's first-frame pattern when the frame boundaries allow it; else 1).
// Rows of equal t would be equal, so the grouping is exact.
int64_t modulation_group_tokens(const std::vector<DitSample>& batch, int64_t seq_len) {
    int64_t S = seq_len;
    for (const DitSample& s : batch)
        for (size_t l = 1; l < s.t_tokens.size() && S > 1; ++l)
            if (s.t_tokens[l] != s.t_tokens[l - 1]) S = std::gcd(S, int64_t(l));
    return S;
}

// e and e0 under their reference shapes: [B, D], [B, 6, D] (one t per sample), or with per-token
// timesteps Wan2.2's [B, seq_len, D], [B, seq_len, 6, D] (groups broadcast to their tokens; only
// when dumping).
void dump_time_embedding(const DumpFn& dump, const TimeEmbedding& te, int64_t B, int64_t L, int64_t S, bool per_token) {
    if (!per_token) {
        dump("e", te.e);
        dump("e0", te.e0);
        return;
    }
    const int64_t G = B * L / S, D = te.e.size(1);
    Backend& be = *te.e.backend();
    dump("e", ops::add(te.e.reshape({G, 1, D}), ops::zeros(be, {G, S, D})).reshape({B, L, D}));
    dump("e0", ops::add(te.e0.reshape({G, 1, 6, D}), ops::zeros(be, {G, S, 6, D})).reshape({B, L, 6, D}));
}

}  // namespace

// The device bytes of the DiT's weights as WeightLoader keeps them (matrices in the backend's dtype,
// the rest f32), each rounded to the 512-byte pack granule: one block's and the rest's.
static std::pair<size_t, size_t> dit_weight_bytes(const DitConfig& c, const TensorSource& src, Backend& be,
                                           const std::string& prefix) {
    size_t block = 0, other = 0;
    for (const ParamSpec& p : dit_param_table(c)) {
        const bool in_block0 = p.name.rfind("blocks.0.", 0) == 0;
        if (!in_block0 && p.name.rfind("blocks.", 0) == 0) continue;
        DType d = DType::F32;
        if (p.matrix) {
            const StoredTensor* st = src.find(prefix + p.name);
            d = be.matrix_dtype(st && st->dtype != DType::F64 ? st->dtype : DType::F32);
            if (!be.supports(LinearArgs::kName, DType::F32, d)) d = DType::F32;
        }
        const size_t n = (dtype_bytes(d, shape_numel(p.shape)) + 511) / 512 * 512;
        (in_block0 ? block : other) += n;
    }
    return {block, other};
}

DitModel::DitModel(const DitConfig& cfg, std::shared_ptr<TensorSource> src, Backend& be, const std::string& prefix,
                   const DitOffloadOptions& offload)
    : cfg_(cfg), be_(be), w_(std::make_unique<DitWeights>()) {
    cfg_.validate(src->origin());
    {
        const auto [block_bytes, other_bytes] = dit_weight_bytes(cfg_, *src, be, prefix);
        DitOffloadOptions o = offload;
        if (!o.enabled || (be.host_visible() && !o.on_host)) o.max_vram = int64_t(other_bytes + size_t(cfg_.num_layers) * block_bytes);
        plan_ = plan_dit_offload(block_bytes, other_bytes, cfg_.num_layers, o);
        if (plan_.streamed_blocks > 0)
            streamer_ = std::make_unique<DitBlockStreamer>(be, plan_.resident_blocks, cfg_.num_layers, o.slots);
    }
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
        if (cfg_.has_clip()) {
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
        // Loaded exactly as a resident block, then moved to pinned host memory (device peak: one block).
        if (streamer_ && i >= streamer_->first())
            streamer_->park(b);
        else if (!be.host_visible())
            pack_block_weights(be, b);
    }
    if (streamer_) streamer_->finish_loading();
    w.head_modulation = ld.param("head.modulation", {1, 2, D});
    w.head = load_linear(ld, "head.head", cfg_.out_dim * cfg_.patch_volume(), D);
    if (cfg_.has_clip()) {
        w.img_ln0_w = ld.param("img_emb.proj.0.weight", {1280});
        w.img_ln0_b = ld.param("img_emb.proj.0.bias", {1280});
        w.img1 = load_linear(ld, "img_emb.proj.1", 1280, 1280);
        w.img3 = load_linear(ld, "img_emb.proj.3", D, 1280);
        w.img_ln4_w = ld.param("img_emb.proj.4.weight", {D});
        w.img_ln4_b = ld.param("img_emb.proj.4.bias", {D});
        // FIRST_LAST_FRAME_CONTEXT_TOKEN_NUMBER = 2 × 257 in model.py, whatever the CLIP's size.
        if (cfg_.is_flf2v()) w.img_emb_pos = ld.param("img_emb.emb_pos", {1, 514, 1280});
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

std::vector<Tensor> DitModel::forward(const std::vector<DitSample>& batch, int64_t seq_len, const DumpFn& dump,
                                      const DitStackHook* hook) const {
    const DitConfig& c = cfg_;
    const DitWeights& w = *w_;
    const int64_t B = int64_t(batch.size()), D = c.dim;
    if (B == 0) fail("dit", "empty batch");

    // ---- validate inputs and derive each sample's patch grid
    std::vector<RopeGrid> grids(static_cast<size_t>(B));
    std::vector<int32_t> seq_lens(static_cast<size_t>(B));
    bool per_token = false;  // some sample has t_tokens
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
        if (c.is_i2v() && !c.has_clip() && s.clip_fea.defined())
            fail("dit", "sample ", i, ": this i2v model has no CLIP image branch (Wan2.2 I2V-A14B); pass no clip_fea");
        if (c.has_clip() && (!s.clip_fea.defined() || s.clip_fea.ndim() != 2 || s.clip_fea.size(1) != 1280))
            fail("dit", "sample ", i, ": an i2v model needs clip_fea [257, 1280], got ",
                 s.clip_fea.defined() ? s.clip_fea.describe() : "none");
        if (c.is_flf2v() && s.clip_fea.size(0) != w.img_emb_pos.size(1))
            fail("dit", "sample ", i, ": an flf2v model needs clip_fea [", w.img_emb_pos.size(1),
                 ", 1280] (the first frame's CLIP tokens, then the last's), got ", s.clip_fea.describe());
        if (i > 0 && c.has_clip() && s.clip_fea.size(0) != batch[0].clip_fea.size(0))
            fail("dit", "sample ", i, ": clip_fea token counts differ within the batch");
        if (!s.t_tokens.empty() && int64_t(s.t_tokens.size()) != seq_len)
            fail("dit", "sample ", i, ": ", s.t_tokens.size(), " per-token timesteps for seq_len ", seq_len,
                 "; pass one per token, padding included (or none and a single t)");
        per_token = per_token || !s.t_tokens.empty();
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

    // ---- time embedding (fp32): e [G, D], e0 [G, 6, D], one row per group of S tokens
    const int64_t S = modulation_group_tokens(batch, seq_len);
    std::vector<double> tpos;  // G = B·seq_len/S values: the t of each group's first token
    for (const DitSample& s : batch)
        for (int64_t l = 0; l < seq_len; l += S) tpos.push_back(s.t_tokens.empty() ? double(s.t) : s.t_tokens[size_t(l)]);
    const TimeEmbedding te = time_embedding(c, w, be_, tpos);
    if (dump) dump_time_embedding(dump, te, B, seq_len, S, per_token);

    // ---- text embedding: contexts zero-padded to text_len, Linear, GELU(tanh), Linear
    std::vector<Tensor> contexts;
    for (const DitSample& s : batch) contexts.push_back(s.context);
    Tensor context = text_embedding(c, w, be_, contexts);  // [B, text_len, D]
    if (dump) dump("context_emb", context);

    BlockInputs in;
    in.group_tokens = S;
    in.grids = &grids;
    in.rope = &rope_;
    in.ctx_text = context;
    in.ffn_chunk_tokens = ffn_chunk_tokens_ > 0 ? ffn_chunk_tokens_ : std::max<int64_t>(1, kFfnChunkElems / c.ffn_dim);
    in.dump = &dump;

    // I2V: context = [img_emb(clip_fea) ; text], split again inside every cross-attention at
    // image_context_length = ctx_len − 512 (T5_CONTEXT_TOKEN_NUMBER, a constant in model.py, not
    // text_len), with Python slice semantics for a negative length. With text_len = 512 (every
    // release) that is the 257 CLIP tokens; other text_len values reproduce the official split.
    // Wan2.2 I2V-A14B has no image branch: its context is the text alone, as T2V.
    if (c.has_clip()) {
        std::vector<Tensor> clips;
        for (auto& s : batch) clips.push_back(s.clip_fea.unsqueeze(0));
        Tensor clip = ops::concat(clips, 0);                                       // [B, 257 (FLF2V 514), 1280]
        if (c.is_flf2v()) clip = ops::add(clip, w.img_emb_pos);                   // MLPProj's emb_pos
        Tensor h = ops::layer_norm(clip, &w.img_ln0_w, &w.img_ln0_b, 1e-5f);
        h = w.img3(w.img1(h, Activation::GeluErf));
        Tensor img = ops::layer_norm(h, &w.img_ln4_w, &w.img_ln4_b, 1e-5f);      // [B, 257, D]
        Tensor full = ops::concat({img, context}, 1);                              // [B, 257 + text_len, D]
        const int64_t L = full.size(1), n_img = L - 512;
        const int64_t split = std::clamp<int64_t>(n_img >= 0 ? n_img : L + n_img, 0, L);
        in.ctx_img = ops::contiguous(full.slice(1, 0, split));
        in.ctx_text = ops::contiguous(full.slice(1, split, L));
    }

    // Self-attention over each sample's own tokens (k_lens = seq_lens: padding is never a key).
    AttentionParams self_p;
    self_p.k_lens = seq_lens;
    self_p.window_left = c.window_left;
    self_p.window_right = c.window_right;
    const SelfAttendFn attend = [&](const Tensor& q, const Tensor& k, const Tensor& v) {
        return ops::attention(q, k, v, self_p);
    };

    Tensor reused = hook && hook->reuse ? hook->reuse(te.e, te.e0) : Tensor();
    if (reused.defined()) {
        x = ops::add(x, reused);  // x += previous_residual (teacache_forward / magcache_forward)
    } else {
        // ori_x = x.clone(): block 0 adds its gated residuals into x in place.
        Tensor x_in;
        if (hook && hook->computed) {
            x_in = be_.empty(DType::F32, x.shape());
            ops::copy(x, x_in);
        }
        if (streamer_) streamer_->begin(w.blocks);  // the first streamed blocks copy while the resident ones run
        for (int64_t li = 0; li < c.num_layers; ++li) {
            if (!streamer_ || li < streamer_->first()) {
                x = dit_block(c, w.blocks[size_t(li)], li, x, te.e0, attend, in);
                continue;
            }
            const DitBlockWeights b = streamer_->acquire(w.blocks, li);  // views of a device slot
            x = dit_block(c, b, li, x, te.e0, attend, in);
            streamer_->release(w.blocks, li);  // the slot fills with block li + slots after these ops
        }
        if (hook && hook->computed) {
            Tensor residual = be_.empty(DType::F32, x.shape());  // [B, seq_len, D] = x − ori_x
            const Tensor* parts[2] = {&x, &x_in};
            const float coef[2] = {1.0f, -1.0f};
            ops::lincomb(parts, coef, 2, residual);
            hook->computed(residual);
        }
    }
    Tensor out = dit_head(c, w, x, te.e, in.group_tokens);  // [B, seq_len, out_dim·patch]

    std::vector<Tensor> ys;
    for (int64_t i = 0; i < B; ++i) {
        const RopeGrid& g = grids[size_t(i)];
        ys.push_back(ops::unpatchify(out.select(0, i), g.f, g.h, g.w, c.patch_t, c.patch_h, c.patch_w));
    }
    return ys;
}

}  // namespace wanrt
