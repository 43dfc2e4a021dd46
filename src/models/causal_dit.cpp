// CausalWanModel._forward_inference (CausVid causal_model.py; docs/streaming.md §1), module by module,
// on the weights of a loaded DitModel.
#include "models/causal_dit.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/dit_block.h"
#include "models/dit_weights.h"
#include "ops/ops.h"

namespace wanrt {

// ---------------------------------------------------------------------------------------------
// Slot policy

KvSlotPolicy::KvSlotPolicy(int64_t capacity, int64_t sink, int64_t refresh_frame, double adapt_threshold)
    : capacity_(capacity), sink_(sink), refresh_(refresh_frame), adapt_(adapt_threshold) {
    if (capacity < 1) fail("causal_dit", "KV cache capacity must be ≥ 1 frame, got ", capacity);
    if (sink < 0 || sink >= capacity)
        fail("causal_dit", "sink frames ", sink, " must be in [0, capacity ", capacity, ")");
    if (refresh_frame != 0 && (refresh_frame <= capacity || refresh_frame > 1024))
        fail("causal_dit", "position refresh frame ", refresh_frame, " must be in (capacity ", capacity,
             ", 1024] (or 0 for none)");
    reset();
}

void KvSlotPolicy::reset() {
    filled_ = ring_ = 0;
    last_start_ = -1;
    last_frames_ = last_rope_ = next_rope_ = 0;
    last_slots_.clear();
    queue_.clear();
    slot_frame_.assign(size_t(capacity_), -1);
}

int64_t KvSlotPolicy::rope_start(int64_t start_frame, int64_t frames) const {
    if (start_frame == last_start_ && frames == last_frames_) return last_rope_;
    // Positions follow the stream frame index; the first chunk of a stream starts at its own index
    // (CausVid prefill/extension), later ones continue it. With a refresh frame, a position that
    // would reach it restarts at capacity − frames (StreamDiffusionV2 §4.10): the cache is full by
    // then and cached keys keep their old phases.
    int64_t pos = last_start_ < 0 ? start_frame : next_rope_ + (start_frame - (last_start_ + last_frames_));
    if (refresh_ > 0 && pos >= refresh_) pos = capacity_ - frames;
    return pos;
}

void KvSlotPolicy::report_similarity(const std::vector<double>& a) {
    if (int64_t(a.size()) != sink_) fail("causal_dit", "adaptive sink: ", a.size(), " similarities for ", sink_, " sink frames");
    const auto it = std::min_element(a.begin(), a.end());  // first minimum, as torch.argmin
    report_decision(*it < adapt_ ? int64_t(it - a.begin()) : -1);
}

void KvSlotPolicy::report_decision(int64_t d) {
    if (d >= sink_) fail("causal_dit", "adaptive sink: decision ", d, " is not a sink slot (", sink_, " sink frames)");
    if (d >= 0) queue_.insert(queue_.begin(), d);
}

void KvSlotPolicy::check_chunk(int64_t start_frame, int64_t frames) const {
    if (capacity_ == 0) fail("causal_dit", "KV slot policy used before it was configured");
    if (frames < 1) fail("causal_dit", "a chunk needs at least one frame, got ", frames);
    if (is_rewrite(start_frame, frames)) return;
    if (last_start_ >= 0 && start_frame < last_start_ + last_frames_)
        fail("causal_dit", "chunk starting at frame ", start_frame, " overlaps or precedes the previous chunk [",
             last_start_, ", ", last_start_ + last_frames_, "); chunks must come in order (reset the cache to restart)");
    const int64_t ring = capacity_ - sink_;
    if (frames > capacity_ || (filled_ + frames > capacity_ && frames > ring))
        fail("causal_dit", "a chunk of ", frames, " frames does not fit a KV cache of ", capacity_, " frames with ",
             sink_, " sink frames; use a larger cache or smaller chunks");
    const int64_t pos = rope_start(start_frame, frames);
    if (pos + frames > 1024)
        fail("causal_dit", "RoPE positions up to ", pos + frames, " exceed the 1024-entry table; stream with a "
             "rolling cache (position refresh) or generate fewer frames");
}

KvSinkWrite KvSlotPolicy::sink_write(int64_t start_frame, int64_t frames) const {
    check_chunk(start_frame, frames);
    WANRT_ASSERT(wants_similarity(frames));
    KvSinkWrite w;
    w.sink = sink_;
    w.threshold = adapt_;
    if (is_rewrite(start_frame, frames)) {
        w.fixed_slot = last_slots_[0];
    } else if (filled_ < capacity_) {
        w.fixed_slot = filled_;
    } else {
        w.queue_front = queue_.empty() ? -1 : queue_.front();
        w.ring_slot = sink_ + ring_;
    }
    return w;
}

KvSlotPolicy::Plan KvSlotPolicy::commit(int64_t d, int64_t start_frame, int64_t frames) {
    report_decision(d);
    return plan(start_frame, frames);
}

int64_t KvSlotPolicy::read_frames_after(int64_t start_frame, int64_t frames) const {
    return is_rewrite(start_frame, frames) ? filled_ : std::min(capacity_, filled_ + frames);
}

KvSlotPolicy::Plan KvSlotPolicy::plan(int64_t start_frame, int64_t frames) {
    check_chunk(start_frame, frames);
    Plan p;
    if (is_rewrite(start_frame, frames)) {
        // Another pass over the same chunk (next denoising step, clean pass): same slots, no eviction.
        p.slots = last_slots_;
        p.rope_start = last_rope_;
        p.read_frames = filled_;
        p.rewrite = true;
        return p;
    }
    const int64_t pos = rope_start(start_frame, frames);
    for (int64_t f = 0; f < frames; ++f) {
        int64_t slot;
        if (filled_ < capacity_) {
            slot = filled_++;
        } else if (!queue_.empty()) {  // adaptive sink: this frame replaces a sink frame
            slot = queue_.front();
            queue_.erase(queue_.begin());
        } else {
            slot = sink_ + ring_;  // oldest non-sink frame
            ring_ = (ring_ + 1) % (capacity_ - sink_);
        }
        p.slots.push_back(slot);
        slot_frame_[size_t(slot)] = start_frame + f;
    }
    p.read_frames = filled_;
    p.rope_start = pos;
    last_start_ = start_frame;
    last_frames_ = frames;
    last_rope_ = pos;
    next_rope_ = pos + frames;
    last_slots_ = p.slots;
    return p;
}

// ---------------------------------------------------------------------------------------------
// Caches

int64_t KvCache::bytes() const {
    int64_t b = 0;
    for (size_t i = 0; i < k.size(); ++i) b += int64_t(k[i].nbytes() + v[i].nbytes());
    return b;
}

void KvCache::settle() {
    if (std::none_of(pending.begin(), pending.end(), [](const Pending& p) { return p.start_frame >= 0; })) return;
    std::vector<int32_t> d(size_t(decisions.numel()));
    decisions.backend()->download(decisions, d.data());
    for (size_t i = 0; i < pending.size(); ++i) {
        if (pending[i].start_frame < 0) continue;
        const KvSlotPolicy::Plan p = policy[i].commit(d[2 * i], pending[i].start_frame, pending[i].frames);
        WANRT_ASSERT(p.slots.size() == 1 && p.slots[0] == d[2 * i + 1]);
        pending[i] = {};
    }
}

void KvCache::reset() {
    for (Pending& p : pending) p = {};  // the decisions belong to the history being dropped
    for (KvSlotPolicy& p : policy) p.reset();
    // Zeroed like a fresh cache, so a restarted stream (adaptive sink reads empty sink slots) is
    // deterministic.
    for (size_t l = 0; l < k.size(); ++l) {
        ops::fill(k[l], 0.0f);
        ops::fill(v[l], 0.0f);
    }
}

void KvCache::copy_row(int64_t from, int64_t to) {
    if (from < 0 || to < 0 || from >= rows || to >= rows) fail("causal_dit", "cache row ", from, " or ", to, " outside [0, ", rows, ")");
    if (from == to) return;
    settle();
    for (size_t l = 0; l < k.size(); ++l) {
        ops::copy(k[l].select(0, from), k[l].select(0, to));
        ops::copy(v[l].select(0, from), v[l].select(0, to));
    }
    for (size_t l = 0; l < k.size(); ++l) row_policy(int64_t(l), to) = row_policy(int64_t(l), from);
}

// ---------------------------------------------------------------------------------------------
// Model

namespace {

// torch.cosine_similarity: a·b / (max(‖a‖, eps)·max(‖b‖, eps)), eps = 1e-8 (0 for a zero vector).
double cosine(const float* a, const float* b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
    return ab / (std::max(std::sqrt(aa), 1e-8) * std::max(std::sqrt(bb), 1e-8));
}

// Token means on the backend, without a reduction op: attention with an all-zero query scores every
// key 0, so the softmax is uniform and the output is the mean of the values. x [B, S, N, hd] → [B, N·hd].
Tensor token_mean(const Tensor& x) {
    const int64_t B = x.size(0), N = x.size(2), hd = x.size(3);
    Tensor q = ops::zeros(*x.backend(), {B, 1, N, hd});
    return ops::attention(q, x, x).reshape({B, N * hd});
}

// SD's adaptive-sink similarity of one new frame (k_new, v_new [S, N, hd], keys rotated) with each
// cached sink slot s < sink (k_cache, v_cache [K·S, N, hd]): (cos_k + cos_v) / 2 of the token means
// (heads flattened). The means are formed on the backend; one small download per layer and row.
}  // namespace

std::vector<double> adaptive_sink_similarity(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache,
                                             const Tensor& v_cache, int64_t sink, int64_t S) {
    if (k_new.ndim() != 3 || k_new.size(0) != S || v_new.shape() != k_new.shape() || k_cache.ndim() != 3 ||
        k_cache.size(0) < sink * S || v_cache.shape() != k_cache.shape())
        fail("causal_dit", "adaptive sink: new K/V must be [", S, ", N, d] and the cache [≥ ", sink * S, ", N, d]; got ",
             k_new.describe(), ", ", k_cache.describe());
    const int64_t N = k_new.size(1), hd = k_new.size(2), W = N * hd;
    const Shape sinks{sink, S, N, hd};
    Tensor m = ops::concat({token_mean(k_cache.slice(0, 0, sink * S).reshape(sinks)), token_mean(k_new.unsqueeze(0)),
                            token_mean(v_cache.slice(0, 0, sink * S).reshape(sinks)), token_mean(v_new.unsqueeze(0))},
                           0);  // [2·sink + 2, W]: k̄_0 … k̄_{sink−1}, k̄_new, v̄_0 …, v̄_new
    const std::vector<float> h = ops::to_host_f32(m);
    auto row = [&](int64_t i) { return h.data() + i * W; };
    std::vector<double> a;
    for (int64_t s = 0; s < sink; ++s)
        a.push_back((cosine(row(s), row(sink), W) + cosine(row(sink + 1 + s), row(2 * sink + 1), W)) / 2);
    return a;
}

DType kv_dtype(const Backend& be) {
    return be.supports(AttentionArgs::kName, DType::F32, DType::BF16) ? DType::BF16 : DType::F32;
}

CausalDitModel::CausalDitModel(std::shared_ptr<const DitModel> base) : base_(std::move(base)), w_(base_->weights()) {
    const DitConfig& c = base_->config();
    if (base_->offloaded())  // its blocks read the base's weights directly, which are then in host memory
        fail("causal_dit", "--offload streams the bidirectional DiT's blocks only; the causal model needs them "
             "resident: leave out --offload (or raise --max_vram to hold every block)");
    if (c.is_i2v())
        fail("causal_dit", "the causal model takes T2V weights only (its cross-attention has no image branch); got an i2v config");
    if (c.window_left != -1 || c.window_right != -1)
        fail("causal_dit", "local attention windows (window_size ", c.window_left, ", ", c.window_right,
             ") are not supported by the causal model; use window_size (-1, -1)");
}

int64_t CausalDitModel::tokens_per_frame(const Shape& s) const {
    const DitConfig& c = config();
    return (s[2] / c.patch_h) * (s[3] / c.patch_w);
}

KvCache CausalDitModel::make_cache(int64_t rows, int64_t capacity, int64_t latent_h, int64_t latent_w, int64_t sink,
                                   int64_t refresh_frame, double adapt_threshold) const {
    const DitConfig& c = config();
    if (rows < 1) fail("causal_dit", "a KV cache needs at least one row, got ", rows);
    if (latent_h <= 0 || latent_w <= 0 || latent_h % c.patch_h || latent_w % c.patch_w)
        fail("causal_dit", "latent size ", latent_h, "x", latent_w, " is not a positive multiple of the patch ", c.patch_h,
             "x", c.patch_w, "; use a video size that is a multiple of ", 8 * c.patch_h, " pixels");
    if (c.patch_t != 1) fail("causal_dit", "the causal model needs a temporal patch of 1, got ", c.patch_t);
    KvCache kc;
    kc.rows = rows;
    kc.capacity = capacity;
    kc.tokens_per_frame = (latent_h / c.patch_h) * (latent_w / c.patch_w);
    kc.policy.assign(size_t(rows * c.num_layers), KvSlotPolicy(capacity, sink, refresh_frame, adapt_threshold));
    kc.pending.assign(kc.policy.size(), {});
    if (adapt_threshold > -1 && sink > 0) kc.decisions = backend().empty(DType::I32, {c.num_layers, rows, 2});
    const Shape shape{rows, capacity * kc.tokens_per_frame, c.num_heads, c.head_dim()};  // [R, K·S, N, hd]
    const DType dt = kv_dtype(backend());
    for (int64_t l = 0; l < c.num_layers; ++l) {
        kc.k.push_back(ops::full(backend(), dt, shape, 0.0f));
        kc.v.push_back(ops::full(backend(), dt, shape, 0.0f));
    }
    return kc;
}

CrossKvCache CausalDitModel::make_cross_cache(const Tensor& context) const {
    const DitConfig& c = config();
    if (!context.defined() || context.ndim() != 2 || context.size(1) != c.text_dim || context.size(0) > c.text_len)
        fail("causal_dit", "context must be [len ≤ ", c.text_len, ", ", c.text_dim, "], got ",
             context.defined() ? context.describe() : "none", "; the text encoder does not match the DiT");
    // Zero-padded to text_len, then text_embedding (Linear, GELU(tanh), Linear): [1, Lt, D].
    Tensor ctx = text_embedding(c, w_, backend(), {context});
    CrossKvCache cc;
    const DType dt = kv_dtype(backend());  // the attention would round K/V to this anyway
    for (int64_t l = 0; l < c.num_layers; ++l) {
        cc.kv.push_back(cross_kv(c, w_.blocks[size_t(l)], ctx, Tensor(), dt));  // k, v [1, Lt, N, hd]
    }
    return cc;
}

std::vector<Tensor> CausalDitModel::forward(const std::vector<CausalChunk>& rows, KvCache& cache, const CrossKvCache& cross,
                                            bool want_output, const DumpFn& dump) const {
    const DitConfig& c = config();
    Backend& be = backend();
    const int64_t R = int64_t(rows.size()), N = c.num_heads, hd = c.head_dim();
    if (R == 0) fail("causal_dit", "empty batch");
    if (R != cache.rows) fail("causal_dit", R, " chunks for a KV cache of ", cache.rows, " rows; pass one chunk per row");
    if (!cross.filled() || int64_t(cross.kv.size()) != c.num_layers || cross.kv[0].k.size(2) != N ||
        cross.kv[0].k.size(3) != hd)
        fail("causal_dit", "the cross-attention cache is empty or belongs to another model; build it with make_cross_cache");
    if (int64_t(cache.k.size()) != c.num_layers || cache.k[0].size(2) != N || cache.k[0].size(3) != hd)
        fail("causal_dit", "the KV cache belongs to another model; build it with make_cache");

    // ---- validate the chunks: one shape for all rows
    const Tensor& x0 = rows[0].x;
    if (!x0.defined() || x0.ndim() != 4 || x0.size(0) != c.in_dim)
        fail("causal_dit", "chunk latent must be [", c.in_dim, ", F, H, W], got ", x0.defined() ? x0.describe() : "none");
    const int64_t F = x0.size(1), H = x0.size(2), W = x0.size(3);
    if (F < 1 || H % c.patch_h || W % c.patch_w || H == 0 || W == 0)
        fail("causal_dit", "chunk latent ", x0.describe(), " is not a positive multiple of the patch ", c.patch_h, "x",
             c.patch_w, "; use a video size that is a multiple of ", 8 * c.patch_h, " pixels");
    const int64_t gh = H / c.patch_h, gw = W / c.patch_w, S = gh * gw, L = F * S;
    if (S != cache.tokens_per_frame)
        fail("causal_dit", "chunk latent ", x0.describe(), " has ", S, " tokens per frame but the KV cache was made for ",
             cache.tokens_per_frame, "; make the cache for this latent size");
    std::vector<double> tpos;  // R·F per-frame timesteps, row-major
    for (int64_t r = 0; r < R; ++r) {
        const CausalChunk& ch = rows[size_t(r)];
        if (!ch.x.defined() || ch.x.shape() != x0.shape())
            fail("causal_dit", "row ", r, ": chunk ", ch.x.defined() ? ch.x.describe() : "none",
                 " differs from row 0's ", x0.describe(), "; all rows of a call need one shape");
        if (ch.t.size() != 1 && int64_t(ch.t.size()) != F)
            fail("causal_dit", "row ", r, ": ", ch.t.size(), " timesteps for ", F, " frames; pass one per frame (or one for all)");
        for (int64_t f = 0; f < F; ++f) tpos.push_back(ch.t.size() == 1 ? ch.t[0] : ch.t[size_t(f)]);
    }

    // ---- RoPE starts per row (the same for every layer; slots are planned per layer below)
    cache.settle();  // the previous call's device-decided slots
    std::vector<RopeGrid> grids;
    for (int64_t r = 0; r < R; ++r) {
        const KvSlotPolicy& p = cache.row_policy(0, r);
        grids.push_back({F, gh, gw, p.rope_start(rows[size_t(r)].start_frame, F)});
        if (grids.back().frame_offset + F > 1024 || grids.back().frame_offset < 0)
            fail("causal_dit", "row ", r, ": RoPE positions up to ", grids.back().frame_offset + F,
                 " exceed the 1024-entry table; stream with a rolling cache (position refresh) or generate fewer frames");
    }

    // ---- patch embedding: [R, L, D]
    std::vector<Tensor> embs;
    for (int64_t r = 0; r < R; ++r) {
        Tensor patches = ops::patchify(rows[size_t(r)].x, c.patch_t, c.patch_h, c.patch_w);  // [L, in·4]
        embs.push_back(ops::linear(patches, w_.patch_w, &w_.patch_b).unsqueeze(0));         // [1, L, D]
    }
    Tensor x = R == 1 ? embs[0] : ops::concat(embs, 0);  // [R, L, D]

    // ---- per-frame time embedding: e [R·F, D], e0 [R·F, 6, D]
    const TimeEmbedding te = time_embedding(c, w_, be, tpos);
    if (dump) {
        dump("e", te.e);
        dump("e0", te.e0);
    }

    BlockInputs in;
    in.group_tokens = S;  // one modulation row per frame
    in.grids = &grids;
    in.rope = &base_->rope_table();
    in.cross_cache = &cross.kv;
    in.dump = &dump;  // no FFN chunking: a chunk of frames is small

    for (int64_t li = 0; li < c.num_layers; ++li) {
        // Self-attention against the cache: the chunk's rotated K/V are written into their slots
        // first (so the chunk sees itself), then each row attends to its filled prefix.
        const SelfAttendFn attend = [&](const Tensor& q, const Tensor& k, const Tensor& v) {
            const Tensor& kc = cache.k[size_t(li)];  // [R, K·S, N, hd]
            const Tensor& vc = cache.v[size_t(li)];
            std::vector<int64_t> read_frames;
            for (int64_t r = 0; r < R; ++r) {
                const size_t pi = size_t(li * R + r);
                KvSlotPolicy& pol = cache.policy[pi];  // not row_policy(): it would settle this layer's decisions
                const int64_t start = rows[size_t(r)].start_frame;
                if (pol.wants_similarity(F)) {
                    // Adaptive sink: similarity, decision and write on the device (SD computes the
                    // similarity from this frame's K/V before caching it); the policy replays it later.
                    KvSinkWrite sw = pol.sink_write(start, F);
                    sw.tokens = S;
                    ops::kv_sink_write(k.select(0, r), v.select(0, r), kc.select(0, r), vc.select(0, r), sw,
                                       cache.decisions.select(0, li).select(0, r));
                    read_frames.push_back(pol.read_frames_after(start, F));
                    cache.pending[pi] = {start, F};
                    continue;
                }
                const KvSlotPolicy::Plan plan = pol.plan(start, F);
                WANRT_ASSERT(plan.rope_start == grids[size_t(r)].frame_offset);
                read_frames.push_back(plan.read_frames);
                for (int64_t f = 0; f < F; ++f) {
                    const int64_t s0 = plan.slots[size_t(f)] * S;
                    ops::copy(k.select(0, r).slice(0, f * S, (f + 1) * S), kc.select(0, r).slice(0, s0, s0 + S));
                    ops::copy(v.select(0, r).slice(0, f * S, (f + 1) * S), vc.select(0, r).slice(0, s0, s0 + S));
                }
            }
            if (R == 1) {
                const int64_t n = read_frames[0] * S;
                return ops::attention(q, kc.slice(1, 0, n), vc.slice(1, 0, n));  // contiguous prefix views
            }
            // Row by row, so each row reads a contiguous prefix of its own cache row without a copy.
            Tensor a = be.empty(DType::F32, {R, L, N, hd});  // [R, L, N, hd]
            for (int64_t r = 0; r < R; ++r) {
                const int64_t n = read_frames[size_t(r)] * S;
                Tensor ar = ops::attention(q.select(0, r).unsqueeze(0), kc.select(0, r).slice(0, 0, n).unsqueeze(0),
                                           vc.select(0, r).slice(0, 0, n).unsqueeze(0));
                ops::copy(ar.select(0, 0), a.select(0, r));
            }
            return a;
        };
        x = dit_block(c, w_.blocks[size_t(li)], li, x, te.e0, attend, in);
    }
    if (!want_output) return {};

    // ---- head: per-frame modulation from e, LayerNorm, Linear, unpatchify
    Tensor out = dit_head(c, w_, x, te.e, S);  // [R, L, out_dim·patch]
    std::vector<Tensor> ys;
    for (int64_t r = 0; r < R; ++r)
        ys.push_back(ops::unpatchify(out.select(0, r), F, gh, gw, c.patch_t, c.patch_h, c.patch_w));  // [C, F, H, W]
    return ys;
}

}  // namespace wanrt
