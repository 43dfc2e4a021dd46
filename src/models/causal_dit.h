// The causal, KV-cached Wan DiT (CausVid / Self-Forcing / StreamDiffusionV2 `CausalWanModel`,
// docs/streaming.md §1): the same weights as DitModel, run on one chunk of latent frames at a time.
//
// Differences from DitModel::forward (docs/streaming.md §1.1–1.4):
//   * per-frame timesteps: a chunk of F latent frames carries t[F]; every token uses the modulation
//     of its own frame (e0 [F, 6, D], head modulation from e [F, D]);
//   * RoPE with a temporal offset: token (f, h, w) is rotated at time position rope_frame + f;
//   * self-attention against a KV cache: the chunk's rotated keys and values are written into cache
//     slots first, then the queries attend to every filled slot of the row (the chunk itself
//     bidirectionally, plus all cached history), no mask, scale 1/√d;
//   * cross-attention K/V computed once per prompt (CrossKvCache) and reused on every call;
//   * inputs are not padded (L = F·h·w tokens exactly).
//
// Layout (PyTorch order, f32 on the model's backend; caches in kv_dtype): a chunk latent is [C, F, H, W]; the
// self-attention cache of a layer is k, v [R, K·S, heads, head_dim] where R = rows (independent
// streams: the stream-batch slots of StreamDiffusionV2), K = cache capacity in frames and S = h·w
// tokens per frame. Frame slot j of row r holds tokens [j·S, (j+1)·S). The cache tensors are
// allocated once and written in place (a GPU backend keeps them resident); their size never
// changes, whatever the stream length.
//
// Slot policy (KvSlotPolicy, integer-only, one per row): frames fill slots 0, 1, … until the cache is
// full; after that a new frame replaces the oldest non-sink frame (a ring over slots [sink, K)).
// A call whose (start_frame, frames) equals the previous call of that row re-writes the same slots
// (next denoising step or the clean t = 0 pass of the same block). Because keys are rotated before
// they are cached and attention ignores key order, the ring holds the same frame set as the
// shift-left caches of Self-Forcing/Scope and StreamDiffusionV2's ring (docs/streaming.md §4.9.3).
// With capacity ≥ total frames and sink 0 it is CausVid's linear cache (write [cs, ce), read [0, ce)).
//
// RoPE positions (start_frame + f) must stay < 1024 (the table size); the caller (pipeline) applies
// the position wrap of docs/streaming.md §4.10 (KvSlotPolicy does it when refresh_frame > 0: Plan::rope_start).
//
// Errors ([causal_dit] one line): latent shape not a patch multiple or of the wrong channels,
// mismatched rows, a chunk larger than the cache or the ring, positions past the RoPE table,
// a cross cache not filled / of another model, out-of-order chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "models/dit.h"
#include "models/dit_block.h"

namespace wanrt {

struct DitWeights;

// Which cache slots a chunk of a row writes and how many leading slots it reads. Pure integers.
class KvSlotPolicy {
public:
    KvSlotPolicy() = default;
    // capacity ≥ 1 frames; 0 ≤ sink < capacity; refresh_frame: 0 = positions never wrap, else a chunk
    // whose start position would be ≥ refresh_frame restarts at capacity − frames (SD rule, §4.10).
    // adapt_threshold > −1 turns on StreamDiffusionV2's adaptive sink (§4.9.1 step 1; SD: 0.2).
    KvSlotPolicy(int64_t capacity, int64_t sink, int64_t refresh_frame = 0, double adapt_threshold = -1);

    struct Plan {
        std::vector<int64_t> slots;  // one slot per frame of the chunk
        int64_t read_frames = 0;     // attend slots [0, read_frames)
        int64_t rope_start = 0;      // RoPE time position of the chunk's first frame
        bool rewrite = false;        // same chunk as the previous call (no eviction)
    };
    // Plans the write of `frames` frames whose stream frame index starts at start_frame (a strictly
    // increasing sequence of chunks; a repeat of the previous chunk re-writes its slots).
    Plan plan(int64_t start_frame, int64_t frames);
    // The RoPE start plan() will return for this chunk (no state change).
    int64_t rope_start(int64_t start_frame, int64_t frames) const;

    // Adaptive sink: whether the caller must measure, for a chunk of this many frames, the similarity
    // a_s = (cos(k̄_s, k̄_new) + cos(v̄_s, v̄_new)) / 2 of the new frame's mean K and V (over its
    // tokens, heads flattened) with each sink slot s < sink; and then report it. If min_s a_s is
    // below the threshold, sink slot argmin is queued (front of the queue) to receive the next frame
    // that would evict a ring slot, which thereby becomes a sink frame; the ring does not advance
    // for it. Entries wait while the cache fills, as in SD.
    bool wants_similarity(int64_t frames) const { return adapt_ > -1 && sink_ > 0 && frames == 1; }
    void report_similarity(const std::vector<double>& a);
    // The same decision made elsewhere: d = the sink slot to queue, or −1 for none.
    void report_decision(int64_t d);

    // Device-decided writes (KvSinkWrite, the GPU path): the slot inputs for a 1-frame chunk, checked
    // like plan() but without changing state; the device picks the slot from its similarity, and
    // commit(d, …) later replays report_decision(d) + plan(), returning the same slot.
    KvSinkWrite sink_write(int64_t start_frame, int64_t frames) const;
    Plan commit(int64_t d, int64_t start_frame, int64_t frames);
    // Slots a chunk reads after plan()/sink_write() wrote it.
    int64_t read_frames_after(int64_t start_frame, int64_t frames) const;
    double adapt_threshold() const { return adapt_; }

    void reset();
    int64_t capacity() const { return capacity_; }
    int64_t sink() const { return sink_; }
    int64_t filled() const { return filled_; }
    // Stream frame index held by each slot (−1 = empty): for tests and debugging.
    const std::vector<int64_t>& slot_frames() const { return slot_frame_; }
    const std::vector<int64_t>& queued_sink_slots() const { return queue_; }

private:
    bool is_rewrite(int64_t start_frame, int64_t frames) const { return start_frame == last_start_ && frames == last_frames_; }
    void check_chunk(int64_t start_frame, int64_t frames) const;  // the errors of plan()
    int64_t capacity_ = 0, sink_ = 0, refresh_ = 0;
    double adapt_ = -1;
    int64_t filled_ = 0, ring_ = 0;
    int64_t last_start_ = -1, last_frames_ = 0, last_rope_ = 0, next_rope_ = 0;
    std::vector<int64_t> last_slots_, slot_frame_, queue_;
};

// The dtype K/V caches are kept in on a backend: bf16 where its attention reads bf16 K/V in place
// (the GPU, whose attention runs in bf16 anyway: half the cache memory and traffic, no widening
// copy per call), else f32 (the CPU, exact against the f32 reference).
DType kv_dtype(const Backend& be);

// Self-attention KV cache of every layer: k, v [rows, capacity·S, heads, head_dim] each, of
// kv_dtype(backend).
// Slot policies are per layer and row (layers agree unless the adaptive sink decides differently
// from their own K/V, as in SD); RoPE positions are the same for all layers.
//
// With the adaptive sink, a backend that has KvSinkWrite decides the slot of each new frame on the
// device (no host round trip per layer); the decisions wait in `decisions` and settle() replays them
// into the policies — forward() does at its start (one download per call), row_policy() before it
// answers.
struct KvCache {
    std::vector<Tensor> k, v;             // per layer
    std::vector<KvSlotPolicy> policy;     // [layer · rows + row]; read through row_policy()
    int64_t rows = 0, capacity = 0, tokens_per_frame = 0;

    struct Pending {
        int64_t start_frame = -1, frames = 0;  // start −1: nothing pending
    };
    Tensor decisions;                     // i32 [layers, rows, 2]: (d, slot) of device-decided writes
    std::vector<Pending> pending;         // [layer · rows + row]

    KvSlotPolicy& row_policy(int64_t layer, int64_t row) {
        settle();
        return policy[size_t(layer * rows + row)];
    }
    void settle();                        // commits pending device decisions (one download)
    int64_t bytes() const;                // total bytes of all cache tensors
    void reset();                         // forget the history and zero the tensors (in place)
    // Copies row `from` (tensors and policies) into row `to`: StreamDiffusionV2's stream-batch start.
    void copy_row(int64_t from, int64_t to);
};

// The adaptive sink's similarity (SD): for one new frame's K (rotated) and V [S, heads, head_dim] and a
// cache row's K/V [≥ sink·S, heads, head_dim], a_s = (cos(k̄_s, k̄_new) + cos(v̄_s, v̄_new)) / 2 for
// each sink slot s, x̄ = mean over the frame's S tokens with heads flattened; cosine as
// torch.cosine_similarity (eps 1e-8, so an empty slot gives 0). Means on the backend, cosines on
// the host in float64. The unfused composition of ops::kv_sink_write's decision (its test oracle);
// forward() uses the op, which needs no host round trip.
std::vector<double> adaptive_sink_similarity(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache,
                                             const Tensor& v_cache, int64_t sink, int64_t S);

// Cross-attention K/V of one prompt, per layer [1, text_len, heads, head_dim] (the context padded
// with zero rows to text_len, as the model does).
struct CrossKvCache {
    std::vector<CrossKv> kv;  // per layer; k, v [1, text_len, heads, head_dim] in kv_dtype (no image branch)
    bool filled() const { return !kv.empty(); }
};

// One row of a causal call.
struct CausalChunk {
    Tensor x;                   // [C, F, H, W] latent (f32)
    std::vector<double> t;      // F per-frame timesteps (1 value = broadcast to all frames)
    int64_t start_frame = 0;    // stream frame index of the first frame (cache policy / RoPE)
};

class CausalDitModel {
public:
    // Shares the weights and RoPE table of a loaded bidirectional model (kept alive by `base`).
    explicit CausalDitModel(std::shared_ptr<const DitModel> base);

    const DitConfig& config() const { return base_->config(); }
    Backend& backend() const { return base_->backend(); }
    const DitModel& base() const { return *base_; }

    // Tokens per latent frame (h·w of the patch grid) of a latent [C, F, H, W].
    int64_t tokens_per_frame(const Shape& latent) const;

    // A cache for `rows` streams of `capacity` frames of latent size H×W (latent pixels), sink
    // frames kept (adaptively refreshed when adapt_threshold > −1), positions wrapping at
    // refresh_frame (0 = never). Zero-filled.
    KvCache make_cache(int64_t rows, int64_t capacity, int64_t latent_h, int64_t latent_w, int64_t sink = 0,
                       int64_t refresh_frame = 0, double adapt_threshold = -1) const;
    // Text embedding and cross K/V of one prompt: context [len ≤ text_len, text_dim] (trimmed T5
    // output). Call again when the prompt changes.
    CrossKvCache make_cross_cache(const Tensor& context) const;

    // One call: rows.size() == cache.rows, all chunks of the same shape. Writes each row's K/V into
    // its cache slots (policy of that row), then attends. Returns the velocity [C, F, H, W] per row,
    // or nothing when want_output is false (a pure cache-writing pass). dump, if set, receives
    // e [R·F, D], e0 [R·F, 6, D] and the block dumps of dit_block.h (blk.N.self_attn.out, …,
    // block{N}_out) [R, L, D].
    std::vector<Tensor> forward(const std::vector<CausalChunk>& rows, KvCache& cache, const CrossKvCache& cross,
                                bool want_output = true, const DumpFn& dump = nullptr) const;

private:
    std::shared_ptr<const DitModel> base_;
    const DitWeights& w_;
};

}  // namespace wanrt
