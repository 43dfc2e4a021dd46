// The causal KV-cache DiT and block-autoregressive generation:
//   * golden: CausVid's inference loop on causal.safetensors (every call's x̂₀ and the final latents,
//     recorded noise draws injected; config, frames, block size and steps from the metadata);
//   * cached block-by-block calls ≡ one full-sequence pass with the block-causal mask (and the
//     local-window/sink mask for the rolling cache), computed here independently with ops;
//   * the slot policy (StreamDiffusionV2 ring table, position wrap) as pure index replays;
//   * a soak: thousands of streamed chunks with a rolling cache in constant memory;
//   * bad input → one-line errors.
// WANRT_TEST_DEVICE=cuda (a CUDA build, on a GPU machine) runs the same tests on that backend, with
// the bf16-linear tolerance of the GPU DiT golden (1e-2) instead of float32's.
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "models/causal_dit.h"
#include "models/dit_weights.h"
#include "pipeline/causal.h"
#include "pipeline/stream.h"
#include "runtime/device.h"
#include "models/synth.h"
#include "test_util.h"


namespace wanrt::test {

namespace {

// The backend under test (CPU unless WANRT_TEST_DEVICE names another) and the tolerance scale.
std::shared_ptr<Backend> test_backend() {
    auto device = test_device();
    return device ? device : make_cpu_backend(2);
}
bool on_cpu(const Backend& be) { return be.name() == "cpu"; }
// A comparison of two computed tensors proves nothing if the reference is all zeros.
double l2(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s);
}
double tol(const Backend& be, double cpu_tol) { return on_cpu(be) ? cpu_tol : std::max(cpu_tol, 1e-2); }

struct Fixture {
    std::shared_ptr<SafeTensorsFile> f;
    std::shared_ptr<Backend> be;
    std::shared_ptr<const DitModel> dit;
    std::shared_ptr<CausalDitModel> model;
};

Fixture open_causal() {
    Fixture fx;
    fx.be = test_backend();
    fx.f = open_fixture("causal.safetensors");
    DitConfig cfg = DitConfig::from_json(fx.f->metadata().at("config"), fx.f->origin());
    auto weights = std::make_shared<MemoryTensorSource>(fx.f->origin());
    for (const std::string& n : fx.f->names()) {
        if (n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0) continue;
        const StoredTensor& t = *fx.f->find(n);
        weights->add(n, t.dtype, t.shape, t.data);
    }
    fx.dit = std::make_shared<DitModel>(cfg, weights, *fx.be);
    fx.model = std::make_shared<CausalDitModel>(fx.dit);
    return fx;
}

// [n, C, H, W] (CausVid's frame-major layout, with any leading 1) → [C, n, H, W].
Tensor frames_to_latent(const Tensor& t) {
    Tensor x = t.ndim() == 5 ? t.select(0, 0) : t;
    return ops::contiguous(x.permute({1, 0, 2, 3}));
}
std::vector<double> latent_to_frames(const Tensor& x) { return to_f64(x.permute({1, 0, 2, 3})); }

}  // namespace

TEST(CausalGolden, CausVidLoop) {
    Fixture fx = open_causal();
    const SafeTensorsFile& f = *fx.f;
    CausalOptions opt;
    opt.frames_per_block = meta_int(f, "frames_per_block");
    opt.steps = meta_json(f, "denoising_steps").get<std::vector<double>>();
    std::smatch m;
    const std::string sched = f.metadata().at("scheduler");
    ASSERT_TRUE(std::regex_search(sched, m, std::regex("shift=([0-9.]+)"))) << sched;
    opt.shift = std::stod(m[1]);
    const nlohmann::json calls = meta_json(f, "calls");

    Tensor noise = frames_to_latent(load_f32(*fx.be, f, "in.noise_init"));
    ASSERT_EQ(noise.size(1), meta_int(f, "frames"));
    ASSERT_EQ(noise.size(2), meta_int(f, "height"));
    ASSERT_EQ(noise.size(3), meta_int(f, "width"));
    Tensor context = load_f32(*fx.be, f, "in.context0");
    NoiseSource draws = [&](Backend& be, const Shape& shape, int64_t k) {
        Tensor eps = frames_to_latent(load_f32(be, f, "in.noise" + std::to_string(k)));
        EXPECT_EQ(eps.shape(), shape);
        return eps;
    };
    int64_t seen = 0;
    Tensor out = generate_causal(*fx.model, context, noise, opt, draws, {}, [&](const CausalCall& c, const Tensor& x0) {
        ASSERT_LT(c.index, int64_t(calls.size()));
        const nlohmann::json& ref = calls[size_t(c.index)];
        EXPECT_EQ(c.block, ref.at("block").get<int64_t>());
        EXPECT_EQ(c.t, ref.at("t").get<double>());
        EXPECT_EQ(c.start, ref.at("start").get<int64_t>());
        EXPECT_EQ(c.end, ref.at("end").get<int64_t>());
        const std::string name = "mid.call" + std::to_string(c.index);
        char what[96];
        std::snprintf(what, sizeof what, "%s (block %ld, t %g)", name.c_str(), long(c.block), c.t);
        EXPECT_CLOSE(latent_to_frames(x0), load_f64(f, name), tol(*fx.be, 1e-4), what);
        ++seen;
    });
    EXPECT_EQ(seen, int64_t(calls.size()));
    EXPECT_CLOSE(latent_to_frames(out), load_f64(f, "out.latents"), tol(*fx.be, 1e-4), "out.latents");
}

TEST(CausalGolden, DumpPointsPerModule) {
    // One call of two rows with dump: per-frame e / e0, and every block's three module outputs
    // [R, L, D] (dit_block.h), the last one equal to block{k}_out.
    Fixture fx = open_causal();
    const DitConfig& c = fx.dit->config();
    const int64_t F = 2, H = 6, W = 10, R = 2, L = F * (H / c.patch_h) * (W / c.patch_w);
    KvCache cache = fx.model->make_cache(R, F, H, W);
    CrossKvCache cross = fx.model->make_cross_cache(randn_tensor(*fx.be, {5, c.text_dim}, 12));
    std::vector<CausalChunk> rows{{randn_tensor(*fx.be, {c.in_dim, F, H, W}, 11), {500, 250}, 0},
                                  {randn_tensor(*fx.be, {c.in_dim, F, H, W}, 13), {900}, 0}};
    std::map<std::string, std::pair<Shape, std::vector<double>>> got;
    fx.model->forward(rows, cache, cross, true, [&](const std::string& n, const Tensor& t) { got[n] = {t.shape(), to_f64(t)}; });
    ASSERT_TRUE(got.count("e") && got.count("e0"));
    EXPECT_EQ(got["e"].first, (Shape{R * F, c.dim}));
    EXPECT_EQ(got["e0"].first, (Shape{R * F, 6, c.dim}));
    for (int64_t k = 0; k < c.num_layers; ++k) {
        const std::string p = "blk." + std::to_string(k) + ".";
        for (const char* m : {"self_attn.out", "cross_attn.out", "ffn.out"}) {
            ASSERT_TRUE(got.count(p + m)) << "no dump " << p << m;
            EXPECT_EQ(got[p + m].first, (Shape{R, L, c.dim})) << p << m;
        }
        EXPECT_NE(got[p + "self_attn.out"].second, got[p + "cross_attn.out"].second);
        EXPECT_NE(got[p + "cross_attn.out"].second, got[p + "ffn.out"].second);
        EXPECT_EQ(got[p + "ffn.out"].second, got.at("block" + std::to_string(k) + "_out").second);
    }
}

TEST(CausalGolden, FlowMatchTable) {
    // Check values of docs/streaming.md §2.2 (float32 tables) and the lookups / warps of §2.2–2.3.
    FlowMatchTable t8(8.0), t5(5.0);
    EXPECT_EQ(t8.sigmas[1], 0.9998748898506165f);
    EXPECT_EQ(t8.timesteps[300], 949.1525268554688f);
    EXPECT_EQ(t5.sigmas[999], 0.004980080295354128f);
    EXPECT_EQ(t5.timesteps[700], 681.8181762695312f);
    EXPECT_EQ(t8.nearest(0), 999);
    EXPECT_EQ(t8.nearest(757), 720);
    EXPECT_EQ(t8.nearest(522), 880);
    EXPECT_EQ(t5.nearest(937.5), 250);
    EXPECT_EQ(t5.nearest(690), 692);
    auto w5 = t5.warp({1000, 750, 500, 250});
    EXPECT_EQ(w5, (std::vector<double>{1000.0, 937.5, 833.3333129882812, 625.0}));
    auto w8 = t8.warp({1000, 757, 522});
    EXPECT_EQ(w8, (std::vector<double>{1000.0, 961.4224243164062, 897.2926025390625}));
    CausalOptions o;
    o.steps = {1000, 757, 522, 0};
    EXPECT_EQ(o.step_list(t8), (std::vector<double>{1000, 757, 522}));
}

// ---------------------------------------------------------------------------------------------
// Full-sequence reference with a block mask: every frame's tokens at once, per-frame timesteps,
// queries of block b in layer l see the key frames keys(l, b) (CausVid's block-causal mask: all
// f < end_b; a local window with sink: {f < end_b : f < sink or f ≥ end_b − (window − sink)}).

using KeyFrames = std::function<std::vector<int64_t>(int64_t layer, int64_t block)>;

std::vector<int64_t> window_frames(int64_t end, int64_t window, int64_t sink) {
    std::vector<int64_t> f;
    for (int64_t i = 0; i < end; ++i)
        if (window == 0 || i < sink || i >= end - (window - sink)) f.push_back(i);
    return f;
}

std::vector<Tensor> masked_reference(const DitModel& dit, const Tensor& x_lat, const std::vector<double>& t,
                                     const Tensor& context, int64_t fpb, const KeyFrames& keys) {
    const DitConfig& c = dit.config();
    const DitWeights& w = dit.weights();
    Backend& be = dit.backend();
    const int64_t F = x_lat.size(1), gh = x_lat.size(2) / 2, gw = x_lat.size(3) / 2, S = gh * gw, L = F * S;
    const int64_t D = c.dim, N = c.num_heads, hd = c.head_dim();
    Tensor x = ops::linear(ops::patchify(x_lat, 1, 2, 2), w.patch_w, &w.patch_b).unsqueeze(0);  // [1, L, D]
    std::vector<double> s64 = sinusoidal_embedding_f64(t, c.freq_dim);
    std::vector<float> s32(s64.begin(), s64.end());
    Tensor e = w.time2(w.time0(ops::from_host(be, DType::F32, {F, c.freq_dim}, s32.data()), Activation::Silu));
    Tensor e0 = w.time_proj(ops::silu(e)).reshape({F, 6, D});
    Tensor ctx_in = ops::zeros(be, {1, c.text_len, c.text_dim});
    ops::copy(context, ctx_in.select(0, 0).slice(0, 0, context.size(0)));
    Tensor ctx = w.text2(w.text0(ctx_in, Activation::GeluTanh));
    const std::vector<RopeGrid> grid{{F, gh, gw, 0}};
    for (int64_t li = 0; li < c.num_layers; ++li) {
        const DitBlockWeights& b = w.blocks[size_t(li)];
        Tensor mm = ops::add(b.modulation, e0);
        auto mod = [&](int k) { return mm.select(1, k); };
        Tensor xf = x.reshape({F, S, D});
        Tensor h = ops::norm_modulate(xf, mod(0), mod(1), c.eps).reshape({1, L, D});
        Tensor q = ops::rms_norm(b.sa_q(h), b.sa_norm_q, c.eps), k = ops::rms_norm(b.sa_k(h), b.sa_norm_k, c.eps);
        q = ops::rope(q.reshape({1, L, N, hd}), grid, dit.rope_table());
        k = ops::rope(k.reshape({1, L, N, hd}), grid, dit.rope_table());
        Tensor v = b.sa_v(h).reshape({1, L, N, hd});
        std::vector<Tensor> parts;
        for (int64_t b0 = 0; b0 < F; b0 += fpb) {
            const int64_t end = b0 + fpb;
            std::vector<Tensor> ks, vs;
            for (int64_t f : keys(li, b0 / fpb)) {  // key order is irrelevant to attention
                ks.push_back(k.slice(1, f * S, (f + 1) * S));
                vs.push_back(v.slice(1, f * S, (f + 1) * S));
            }
            parts.push_back(ops::attention(q.slice(1, b0 * S, end * S), ops::concat(ks, 1), ops::concat(vs, 1)));
        }
        Tensor a = ops::concat(parts, 1);
        ops::gated_residual(xf, b.sa_o(a.reshape({F, S, D})), mod(2));
        Tensor hn = ops::layer_norm(x, &b.norm3_w, &b.norm3_b, c.eps);
        Tensor cq = ops::rms_norm(b.ca_q(hn), b.ca_norm_q, c.eps).reshape({1, L, N, hd});
        Tensor ck = ops::rms_norm(b.ca_k(ctx), b.ca_norm_k, c.eps).reshape({1, c.text_len, N, hd});
        Tensor ca = ops::attention(cq, ck, b.ca_v(ctx).reshape({1, c.text_len, N, hd}));
        x = ops::add(x, b.ca_o(ca.reshape({1, L, D})));
        xf = x.reshape({F, S, D});
        ops::gated_residual(xf, b.ffn2(b.ffn0(ops::norm_modulate(xf, mod(3), mod(4), c.eps), Activation::GeluTanh)),
                            mod(5));
    }
    Tensor hm = ops::add(w.head_modulation, e.reshape({F, 1, D}));
    Tensor out = w.head(ops::norm_modulate(x.reshape({F, S, D}), hm.select(1, 0), hm.select(1, 1), c.eps));
    Tensor y = ops::unpatchify(out.reshape({L, out.size(2)}), F, gh, gw, 1, 2, 2);  // [C, F, H, W]
    std::vector<Tensor> blocks;
    for (int64_t b0 = 0; b0 < F; b0 += fpb) blocks.push_back(y.slice(1, b0, b0 + fpb));
    return blocks;
}

// Runs the blocks through the cache, records each layer's cached frame set at every block, checks
// it against the analytical window (unless the adaptive sink may change it), then checks the outputs
// against the full-sequence reference masked with exactly those sets.
void check_cached_equals_mask(int64_t F, int64_t fpb, int64_t window, int64_t sink, double adapt = -1) {
    Fixture fx = open_causal();
    const DitConfig& c = fx.dit->config();
    const int64_t H = 6, W = 10;  // not the fixture's size: 3×5 patches
    Tensor x = randn_tensor(*fx.be, {c.in_dim, F, H, W}, 11);
    Tensor ctx = randn_tensor(*fx.be, {5, c.text_dim}, 12);
    std::vector<double> t;
    for (int64_t f = 0; f < F; ++f) t.push_back(37.5 + 151.0 * double(f));  // a different t per frame

    KvCache cache = fx.model->make_cache(1, window > 0 ? window : F, H, W, sink, 0, adapt);
    CrossKvCache cross = fx.model->make_cross_cache(ctx);
    std::vector<Tensor> got;
    std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> sets;
    int64_t refreshed = 0;
    for (int64_t b = 0; b < F / fpb; ++b) {
        CausalChunk ch{ops::contiguous(x.slice(1, b * fpb, (b + 1) * fpb)),
                       std::vector<double>(t.begin() + b * fpb, t.begin() + (b + 1) * fpb), b * fpb};
        got.push_back(fx.model->forward({ch}, cache, cross)[0]);
        for (int64_t l = 0; l < c.num_layers; ++l) {
            std::vector<int64_t> fr;
            const auto& sf = cache.row_policy(l, 0).slot_frames();
            for (int64_t s = 0; s < int64_t(sf.size()); ++s) {
                if (sf[size_t(s)] >= 0) fr.push_back(sf[size_t(s)]);
                if (s < sink && sf[size_t(s)] >= sink) ++refreshed;
            }
            std::sort(fr.begin(), fr.end());
            if (adapt <= -1) {
                EXPECT_EQ(fr, window_frames((b + 1) * fpb, window, sink)) << "layer " << l << " block " << b;
            }
            sets[{l, b}] = fr;
        }
    }
    if (adapt > -1) {
        EXPECT_GT(refreshed, 0) << "the adaptive sink never replaced a sink frame";
    }
    auto ref = masked_reference(*fx.dit, x, t, ctx, fpb, [&](int64_t l, int64_t b) { return sets.at({l, b}); });
    for (int64_t b = 0; b < F / fpb; ++b) {
        EXPECT_GT(l2(to_f64(ref[size_t(b)])), 1.0) << "reference block " << b << " is (near) zero";
        EXPECT_CLOSE(got[size_t(b)], to_f64(ref[size_t(b)]), tol(*fx.be, 1e-5),
                     "block " + std::to_string(b) + " window " + std::to_string(window) + " sink " + std::to_string(sink) +
                         (adapt > -1 ? " adaptive" : ""));
    }
}

TEST(CausalMask, CachedBlocksEqualBlockCausalMask) { check_cached_equals_mask(6, 2, 0, 0); }
TEST(CausalMask, SingleFrameBlocks) { check_cached_equals_mask(5, 1, 0, 0); }
TEST(CausalMask, RollingCacheEqualsLocalWindow) { check_cached_equals_mask(8, 1, 3, 0); }
TEST(CausalMask, RollingCacheWithSinkEqualsSinkWindow) { check_cached_equals_mask(9, 1, 4, 2); }
TEST(CausalMask, RollingCacheMultiFrameBlocks) { check_cached_equals_mask(8, 2, 5, 1); }
// θ = 0.95: nearly every frame refreshes some sink frame, per layer from its own K/V.
TEST(CausalMask, AdaptiveSinkPerLayer) { check_cached_equals_mask(10, 1, 4, 2, 0.95); }

TEST(CausalMask, StreamBatchRowsEqualSeparateCalls) {
    // Two rows in one call (different chunks, timesteps, positions) = each row alone.
    Fixture fx = open_causal();
    const DitConfig& c = fx.dit->config();
    Tensor ctx = randn_tensor(*fx.be, {7, c.text_dim}, 3);
    CrossKvCache cross = fx.model->make_cross_cache(ctx);
    KvCache both = fx.model->make_cache(2, 4, 4, 6, 1), one = fx.model->make_cache(1, 4, 4, 6, 1),
            two = fx.model->make_cache(1, 4, 4, 6, 1);
    for (int64_t i = 0; i < 6; ++i) {
        CausalChunk a{randn_tensor(*fx.be, {c.in_dim, 1, 4, 6}, 100 + i), {900.0 - 50 * i}, i};
        CausalChunk b{randn_tensor(*fx.be, {c.in_dim, 1, 4, 6}, 200 + i), {400.0}, i == 0 ? 0 : i - 1};
        auto vb = fx.model->forward({a, b}, both, cross);
        auto va = fx.model->forward({a}, one, cross);
        EXPECT_GT(l2(to_f64(va[0])), 1.0) << "output is (near) zero";
        EXPECT_CLOSE(vb[0], to_f64(va[0]), tol(*fx.be, 1e-6), "row 0 call " + std::to_string(i));
        if (i != 1) {  // row 1 repeats chunk 0 at call 1 (a rewrite), as the stream batch does
            auto v2 = fx.model->forward({b}, two, cross);
            EXPECT_CLOSE(vb[1], to_f64(v2[0]), tol(*fx.be, 1e-6), "row 1 call " + std::to_string(i));
        } else {
            auto v2 = fx.model->forward({b}, two, cross);
            EXPECT_CLOSE(vb[1], to_f64(v2[0]), tol(*fx.be, 1e-6), "row 1 rewrite");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Slot policy replays (no model).

TEST(CausalPolicy, StreamDiffusionV2RingTable) {
    // docs/streaming.md §4.9.1, K = 6, sink 3: first chunk 2 frames, then 1-frame chunks.
    KvSlotPolicy p(6, 3);
    auto pl = p.plan(0, 2);
    EXPECT_EQ(pl.slots, (std::vector<int64_t>{0, 1}));
    const std::vector<std::vector<int64_t>> table = {
        {0, 1, 2, -1, -1, -1}, {0, 1, 2, 3, -1, -1}, {0, 1, 2, 3, 4, -1}, {0, 1, 2, 3, 4, 5},
        {0, 1, 2, 6, 4, 5},    {0, 1, 2, 6, 7, 5},   {0, 1, 2, 6, 7, 8},  {0, 1, 2, 9, 7, 8}};
    for (int64_t i = 0; i < int64_t(table.size()); ++i) {
        auto q = p.plan(2 + i, 1);
        EXPECT_EQ(p.slot_frames(), table[size_t(i)]) << "chunk " << i + 1;
        EXPECT_EQ(q.read_frames, std::min<int64_t>(6, 3 + i));
        auto again = p.plan(2 + i, 1);  // the next denoising pass of the same chunk: same slot
        EXPECT_TRUE(again.rewrite);
        EXPECT_EQ(again.slots, q.slots);
        EXPECT_EQ(p.slot_frames(), table[size_t(i)]);
    }
}

TEST(CausalPolicy, AdaptiveSinkTable) {
    // §4.9.1, θ = 0.2: at chunk 1 sink slot 2 is still empty (cosine 0 < θ), so slot 2 is queued;
    // it waits through the linear phase and takes frame 6, which becomes a sink frame; the ring
    // pointer does not advance for it.
    KvSlotPolicy p(6, 3, 0, 0.2);
    EXPECT_FALSE(p.wants_similarity(2));
    p.plan(0, 2);
    std::vector<std::vector<int64_t>> after;
    for (int64_t i = 1; i <= 9; ++i) {
        ASSERT_TRUE(p.wants_similarity(1));
        p.report_similarity(i == 1 ? std::vector<double>{0.9, 0.8, 0.0} : std::vector<double>{0.9, 0.8, 0.7});
        p.plan(1 + i, 1);
        after.push_back(p.slot_frames());
        if (i == 1) {
            EXPECT_EQ(p.queued_sink_slots(), (std::vector<int64_t>{2}));
        }
    }
    EXPECT_EQ(after[3], (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));   // chunk 4: full, slot 2 still queued
    EXPECT_EQ(after[4], (std::vector<int64_t>{0, 1, 6, 3, 4, 5}));   // chunk 5 → sink slot 2
    EXPECT_EQ(after[5], (std::vector<int64_t>{0, 1, 6, 7, 4, 5}));   // chunk 6 → ring slot 3
    EXPECT_EQ(after[8], (std::vector<int64_t>{0, 1, 6, 10, 8, 9}));  // chunk 9
    EXPECT_TRUE(p.queued_sink_slots().empty());
    // Several low-similarity calls queue several refreshes, newest first.
    KvSlotPolicy q(4, 2, 0, 0.5);
    q.plan(0, 1);
    q.report_similarity({0.1, 0.9});
    q.report_similarity({0.9, 0.2});
    EXPECT_EQ(q.queued_sink_slots(), (std::vector<int64_t>{1, 0}));
}

TEST(CausalPolicy, AdaptiveSinkSimilarity) {
    // The similarity against a float64 loop on random K/V (one empty sink slot: similarity 0 there).
    auto be = test_backend();
    const int64_t S = 5, N = 3, d = 4, sink = 3, K = 4;
    Tensor kn = randn_tensor(*be, {S, N, d}, 1), vn = randn_tensor(*be, {S, N, d}, 2);
    std::vector<float> kc = randn(size_t(K * S * N * d), 3), vc = randn(size_t(K * S * N * d), 4);
    for (int64_t i = 2 * S * N * d; i < 3 * S * N * d; ++i) kc[size_t(i)] = vc[size_t(i)] = 0;  // slot 2 empty
    for (int64_t i = 0; i < S * N * d; ++i) kc[size_t(i)] += 0.8f * ops::to_host_f32(kn)[size_t(i)];  // slot 0 close to k_new
    Tensor kct = ops::from_host(*be, DType::F32, {K * S, N, d}, kc.data()), vct = ops::from_host(*be, DType::F32, {K * S, N, d}, vc.data());
    std::vector<double> a = adaptive_sink_similarity(kn, vn, kct, vct, sink, S);
    auto mean = [&](const std::vector<float>& x, int64_t first) {
        std::vector<double> m(size_t(N * d), 0.0);
        for (int64_t t = 0; t < S; ++t)
            for (int64_t i = 0; i < N * d; ++i) m[size_t(i)] += x[size_t((first + t) * N * d + i)] / double(S);
        return m;
    };
    auto cosine = [](const std::vector<double>& x, const std::vector<double>& y) {
        double xy = 0, xx = 0, yy = 0;
        for (size_t i = 0; i < x.size(); ++i) xy += x[i] * y[i], xx += x[i] * x[i], yy += y[i] * y[i];
        return xy / (std::max(std::sqrt(xx), 1e-8) * std::max(std::sqrt(yy), 1e-8));
    };
    const std::vector<float> knh = ops::to_host_f32(kn), vnh = ops::to_host_f32(vn);
    ASSERT_EQ(a.size(), size_t(sink));
    for (int64_t s = 0; s < sink; ++s) {
        const double ref = (cosine(mean(kc, s * S), mean(knh, 0)) + cosine(mean(vc, s * S), mean(vnh, 0))) / 2;
        EXPECT_NEAR(a[size_t(s)], ref, on_cpu(*be) ? 1e-6 : 1e-2) << "sink slot " << s;
    }
    EXPECT_EQ(a[2], 0.0);
    EXPECT_GT(a[0], a[1]);
}

// The device-side adaptive-sink write (ops::kv_sink_write) against its unfused composition
// (adaptive_sink_similarity + the policy's rule): decision, slot and the written frame, with the
// threshold just above and just below the smallest similarity, for a filling and a full cache.
TEST(CausalPolicy, KvSinkWriteOp) {
    auto be = test_backend();
    const DType cdt = kv_dtype(*be);
    const int64_t S = 7, N = 3, d = 64, sink = 3, K = 5, W = N * d;
    std::vector<float> kc = randn(size_t(K * S * W), 3), vc = randn(size_t(K * S * W), 4);
    const std::vector<float> kn = randn(size_t(S * W), 1), vn = randn(size_t(S * W), 2);
    for (int64_t i = 0; i < S * W; ++i) kc[size_t(i)] += 0.8f * kn[size_t(i)], vc[size_t(S * W + i)] += 0.5f * vn[size_t(i)];
    Tensor knt = ops::from_host(*be, DType::F32, {S, N, d}, kn.data()), vnt = ops::from_host(*be, DType::F32, {S, N, d}, vn.data());
    auto cache = [&](const std::vector<float>& x) { return ops::to_dtype(ops::from_host(*be, DType::F32, {K * S, N, d}, x.data()), cdt); };
    // The oracle sees what the cache holds (bf16-rounded on the GPU).
    const std::vector<double> a = adaptive_sink_similarity(knt, vnt, cache(kc), cache(vc), sink, S);
    const int64_t amin = int64_t(std::min_element(a.begin(), a.end()) - a.begin());
    struct Case {
        double threshold;
        int64_t fixed, queue_front, ring, want_d, want_slot;
    };
    const double lo = a[size_t(amin)];
    const std::vector<Case> cases = {
        {lo + 1e-3, -1, -1, 4, amin, amin},  // full cache, low similarity: the sink slot takes the frame
        {lo - 1e-3, -1, -1, 4, -1, 4},       // full cache, no refresh: the ring slot
        {lo - 1e-3, -1, 1, 4, -1, 1},        // a queued sink slot first
        {lo + 1e-3, 3, -1, -1, amin, 3},     // still filling: slot 3, the decision only queued
    };
    for (const Case& c : cases) {
        Tensor kct = cache(kc), vct = cache(vc);
        Tensor dec = be->empty(DType::I32, {2});
        KvSinkWrite p;
        p.sink = sink, p.tokens = S, p.threshold = c.threshold, p.fixed_slot = c.fixed, p.queue_front = c.queue_front,
        p.ring_slot = c.ring;
        ops::kv_sink_write(knt, vnt, kct, vct, p, dec);
        int32_t got[2];
        be->download(dec, got);
        const std::string what = cat("threshold ", c.threshold, " fixed ", c.fixed, " queue ", c.queue_front);
        EXPECT_EQ(got[0], c.want_d) << what;
        EXPECT_EQ(got[1], c.want_slot) << what;
        const std::vector<float> kh = ops::to_host_f32(kct), vh = ops::to_host_f32(vct);
        const std::vector<float> k0 = ops::to_host_f32(cache(kc)), v0 = ops::to_host_f32(cache(vc));
        const std::vector<float> knr = ops::to_host_f32(ops::to_dtype(knt, cdt)), vnr = ops::to_host_f32(ops::to_dtype(vnt, cdt));
        int64_t bad = 0;
        for (int64_t i = 0; i < K * S * W; ++i) {
            const bool in_slot = i / (S * W) == c.want_slot;
            bad += kh[size_t(i)] != (in_slot ? knr[size_t(i % (S * W))] : k0[size_t(i)]);
            bad += vh[size_t(i)] != (in_slot ? vnr[size_t(i % (S * W))] : v0[size_t(i)]);
        }
        EXPECT_EQ(bad, 0) << what << ": cache elements not as expected";
    }
    Tensor dec = be->empty(DType::I32, {2});
    KvSinkWrite p;
    p.sink = sink, p.tokens = S, p.fixed_slot = -1, p.ring_slot = 1;  // a ring slot inside the sinks
    expect_error([&] { ops::kv_sink_write(knt, vnt, cache(kc), cache(vc), p, dec); }, {"[kv_sink_write]", "out of range"});
    if (on_cpu(*be)) {  // the CPU's caches are f32: a bf16 one is refused, not widened
        p.ring_slot = 4;
        Tensor kb = ops::to_dtype(cache(kc), DType::BF16);
        expect_error([&] { ops::kv_sink_write(knt, vnt, kb, kb, p, dec); }, {"[kv_sink_write]", "bf16", "kv_dtype"});
    }
}

// Device-decided writes replay exactly: for any decision sequence, sink_write()'s inputs with the
// device rule pick the slot that commit() (report + plan) then plans.
TEST(CausalPolicy, SinkWriteReplaysPlan) {
    KvSlotPolicy p(6, 3, 50, 0.2), ref(6, 3, 50, 0.2);
    p.plan(0, 2), ref.plan(0, 2);
    std::mt19937 rng(5);
    for (int64_t f = 2; f < 400; ++f)
        for (int pass = 0; pass < 2; ++pass) {  // each chunk twice: a denoising pass re-writes its slot
            const int64_t d = rng() % 3 == 0 ? int64_t(rng() % 3) : -1;  // a refresh a third of the time
            const KvSinkWrite w = p.sink_write(f, 1);
            const int64_t slot = w.fixed_slot >= 0 ? w.fixed_slot : d >= 0 ? d : w.queue_front >= 0 ? w.queue_front : w.ring_slot;
            const int64_t reads = p.read_frames_after(f, 1);
            const KvSlotPolicy::Plan got = p.commit(d, f, 1);
            ASSERT_EQ(got.slots, std::vector<int64_t>{slot}) << "frame " << f << " pass " << pass;
            EXPECT_EQ(got.read_frames, reads);
            ref.report_decision(d);
            EXPECT_EQ(ref.plan(f, 1).slots, got.slots);
        }
}

TEST(CausalPolicy, PositionWrap) {
    // §4.10: positions 2…49, then 5…49, 5…; never past the RoPE table however long the stream.
    KvSlotPolicy p(6, 3, 50);
    EXPECT_EQ(p.plan(0, 2).rope_start, 0);
    std::vector<int64_t> pos;
    for (int64_t f = 2; f < 5000; ++f) pos.push_back(p.plan(f, 1).rope_start);
    for (int64_t i = 0; i < 48; ++i) EXPECT_EQ(pos[size_t(i)], 2 + i);
    EXPECT_EQ(pos[48], 5);
    EXPECT_EQ(pos[48 + 44], 49);
    EXPECT_EQ(pos[48 + 45], 5);
    for (int64_t v : pos) EXPECT_LT(v, 50);
    // Without a refresh, positions past the table fail with a one-line error.
    KvSlotPolicy q(6, 3);
    for (int64_t f = 0; f < 1024; ++f) q.plan(f, 1);
    expect_error([&] { q.plan(1024, 1); }, {"[causal_dit]", "1024-entry"});
}

// ---------------------------------------------------------------------------------------------
// Soak: a long stream with a rolling cache (two stream-batch rows, positions wrapping) runs in
// constant memory: the cache tensors never change, and the process RSS stays flat.

TEST(CausalSoak, RollingCacheConstantMemory) {
    Fixture fx = open_causal();
    const DitConfig& c = fx.dit->config();
    const int64_t H = 2, W = 4;  // 1×2 patches: tiny, so thousands of chunks take a few seconds
    Tensor ctx = randn_tensor(*fx.be, {4, c.text_dim}, 5);
    CrossKvCache cross = fx.model->make_cross_cache(ctx);
    KvCache cache = fx.model->make_cache(2, 6, H, W, 3, 50);
    const int64_t bytes = cache.bytes();
    std::vector<const void*> ptrs;
    for (auto& t : cache.k) ptrs.push_back(t.raw());
    Tensor x = randn_tensor(*fx.be, {c.in_dim, 1, H, W}, 6);
    auto step = [&](int64_t i) {
        auto v = fx.model->forward({{x, {700}, i}, {x, {500}, std::max<int64_t>(0, i - 1)}}, cache, cross);
        x = add_noise(flow_to_x0(v[0], x, 0.7f), x, 0.1f);  // keep the values moving but bounded
    };
    for (int64_t i = 0; i < 200; ++i) step(i);  // warm-up: allocator pools reach steady state
    const int64_t rss0 = held_memory_kb();
    const int64_t n = 4000;
    for (int64_t i = 200; i < n; ++i) step(i);
    const int64_t rss1 = held_memory_kb();
    std::printf("  soak: %ld chunks, cache %ld bytes, RSS %ld → %ld KiB\n", long(n), long(bytes), long(rss0), long(rss1));
    EXPECT_EQ(cache.bytes(), bytes);
    for (size_t l = 0; l < cache.k.size(); ++l) EXPECT_EQ(cache.k[l].raw(), ptrs[l]);
    if (on_cpu(*fx.be)) {  // device memory is the backend's pool; the tensors' addresses are checked above
        EXPECT_LE(rss1 - rss0, 2048) << "RSS grew from " << rss0 << " to " << rss1 << " KiB";
    }
    for (int64_t l = 0; l < int64_t(cache.k.size()); ++l) {
        const KvSlotPolicy& p = cache.row_policy(l, 0);
        std::set<int64_t> frames(p.slot_frames().begin(), p.slot_frames().end());
        EXPECT_EQ(frames.size(), 6u);
        EXPECT_TRUE(frames.count(0) && frames.count(1) && frames.count(2));  // sink frames kept
    }
    std::vector<float> h = ops::to_host_f32(x);
    for (float v : h) ASSERT_TRUE(std::isfinite(v));
}

// ---------------------------------------------------------------------------------------------

TEST(CausalErrors, BadInput) {
    Fixture fx = open_causal();
    const DitConfig& c = fx.dit->config();
    Tensor ctx = randn_tensor(*fx.be, {4, c.text_dim}, 5);
    CrossKvCache cross = fx.model->make_cross_cache(ctx);
    KvCache cache = fx.model->make_cache(1, 4, 4, 4);
    Tensor x = randn_tensor(*fx.be, {c.in_dim, 2, 4, 4}, 1);
    expect_error([&] { fx.model->forward({{randn_tensor(*fx.be, {c.in_dim, 1, 5, 4}, 1), {1}, 0}}, cache, cross); },
                 {"[causal_dit]", "multiple of the patch"});
    expect_error([&] { fx.model->forward({{randn_tensor(*fx.be, {3, 1, 4, 4}, 1), {1}, 0}}, cache, cross); },
                 {"[causal_dit]", "chunk latent must be"});
    expect_error([&] { fx.model->forward({{randn_tensor(*fx.be, {c.in_dim, 1, 4, 6}, 1), {1}, 0}}, cache, cross); },
                 {"[causal_dit]", "tokens per frame"});
    expect_error([&] { fx.model->forward({{x, {1, 2, 3}, 0}}, cache, cross); }, {"[causal_dit]", "timesteps for 2 frames"});
    expect_error([&] { fx.model->forward({{x, {1}, 0}, {x, {1}, 0}}, cache, cross); }, {"[causal_dit]", "rows"});
    expect_error([&] { fx.model->forward({{x, {1}, 0}}, cache, CrossKvCache{}); }, {"[causal_dit]", "cross-attention"});
    expect_error([&] { fx.model->make_cross_cache(randn_tensor(*fx.be, {4, c.text_dim + 1}, 1)); },
                 {"[causal_dit]", "context must be"});
    expect_error([&] { fx.model->make_cache(1, 4, 4, 4, 4); }, {"[causal_dit]", "sink"});
    fx.model->forward({{x, {1}, 2}}, cache, cross);
    expect_error([&] { fx.model->forward({{x, {1}, 1}}, cache, cross); }, {"[causal_dit]", "in order"});
    KvCache small = fx.model->make_cache(1, 3, 4, 4, 2);
    expect_error([&] { fx.model->forward({{x, {1}, 0}, }, small, cross); fx.model->forward({{x, {1}, 2}}, small, cross); },
                 {"[causal_dit]", "does not fit"});

    CausalOptions o;
    o.frames_per_block = 3;
    Tensor noise = randn_tensor(*fx.be, {c.in_dim, 4, 4, 4}, 2);
    expect_error([&] { generate_causal(*fx.model, ctx, noise, o, seeded_noise(0)); }, {"[causal]", "multiple of frames_per_block"});
    o.frames_per_block = 2;
    o.steps = {1000, 1200};
    expect_error([&] { generate_causal(*fx.model, ctx, noise, o, seeded_noise(0)); }, {"[causal]", "outside [0, 1000]"});
    o.steps = {1000, 500};
    expect_error([&] { generate_causal(*fx.model, ctx, noise, o, seeded_noise(0), randn_tensor(*fx.be, {c.in_dim, 3, 4, 4}, 1)); },
                 {"[causal]", "start latents"});
}

TEST(CausalGen, GeneratorCheckpointPrefix) {
    // A CausVid/SD model.pt flattens to generator.model.<official name>: found and loaded, same model.
    Fixture fx = open_causal();
    auto src = std::make_shared<MemoryTensorSource>("model.pt");
    for (const std::string& n : fx.f->names()) {
        if (n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0) continue;
        const StoredTensor& t = *fx.f->find(n);
        src->add("generator.model." + n, t.dtype, t.shape, t.data);
        src->add("generator_ema.model." + n, t.dtype, t.shape, t.data);
    }
    EXPECT_EQ(find_dit_prefix(*src), "generator.model.");
    auto dit = std::make_shared<DitModel>(fx.dit->config(), src, *fx.be, find_dit_prefix(*src));
    CausalDitModel m2(dit);
    Tensor ctx = randn_tensor(*fx.be, {4, fx.dit->config().text_dim}, 5);
    Tensor x = randn_tensor(*fx.be, {fx.dit->config().in_dim, 1, 4, 6}, 6);
    KvCache c1 = fx.model->make_cache(1, 2, 4, 6), c2 = m2.make_cache(1, 2, 4, 6);
    Tensor a = fx.model->forward({{x, {500}, 0}}, c1, fx.model->make_cross_cache(ctx))[0];
    Tensor b = m2.forward({{x, {500}, 0}}, c2, m2.make_cross_cache(ctx))[0];
    EXPECT_CLOSE(b, to_f64(a), 0.0, "generator.model. weights");
    expect_error([&] { find_dit_prefix(MemoryTensorSource("empty.pt")); }, {"[causal]", "no DiT"});
}

TEST(CausalGen, PrefillKeepsStartLatents) {
    // Extension by prefill: the prefilled blocks come back unchanged, and the generated blocks equal a
    // run whose first blocks were generated (then cleaned) from the same latents — i.e. what later
    // blocks see is only the prefilled clean K/V.
    Fixture fx = open_causal();
    const DitConfig& c = fx.dit->config();
    Tensor ctx = randn_tensor(*fx.be, {4, c.text_dim}, 5);
    Tensor noise = randn_tensor(*fx.be, {c.in_dim, 4, 4, 6}, 7);
    CausalOptions o;
    o.frames_per_block = 2;
    o.steps = {1000, 600};
    // Draws keyed by index, so the extension run (one block fewer to denoise) can use the same ε.
    auto keyed = [&](int64_t first) {
        return NoiseSource([&, first](Backend& be, const Shape& s, int64_t k) { return randn_tensor(be, s, 1000 + first + k); });
    };
    Tensor full = generate_causal(*fx.model, ctx, noise, o, keyed(0));
    Tensor start = ops::contiguous(full.slice(1, 0, 2));
    int64_t prefill_calls = 0;
    Tensor ext = generate_causal(*fx.model, ctx, noise, o, keyed(1), start,
                                 [&](const CausalCall& cc, const Tensor&) { prefill_calls += cc.prefill; });
    EXPECT_EQ(prefill_calls, 1);
    EXPECT_CLOSE(ext.slice(1, 0, 2), to_f64(start), 0.0, "prefilled block");  // copied, bit-exact
    EXPECT_CLOSE(ext.slice(1, 2, 4), to_f64(full.slice(1, 2, 4)), tol(*fx.be, 1e-6), "block after the prefill");
}

TEST(CausalGen, RollingCacheLongVideo) {
    // Self-Forcing's local attention: with a cache of 4 frames (1 sink) a long video generates in
    // constant cache memory, and the first blocks (cache not yet full) equal the global run.
    Fixture fx = open_causal();
    const DitConfig& c = fx.dit->config();
    Tensor ctx = randn_tensor(*fx.be, {4, c.text_dim}, 5);
    Tensor noise = randn_tensor(*fx.be, {c.in_dim, 12, 2, 4}, 8);
    CausalOptions o;
    o.frames_per_block = 2;
    o.steps = {1000, 500};
    auto keyed = NoiseSource([&](Backend& be, const Shape& s, int64_t k) { return randn_tensor(be, s, 77 + k); });
    Tensor global = generate_causal(*fx.model, ctx, noise, o, keyed);
    o.cache_frames = 4;
    o.sink_frames = 1;
    Tensor local = generate_causal(*fx.model, ctx, noise, o, keyed);
    EXPECT_CLOSE(local.slice(1, 0, 4), to_f64(global.slice(1, 0, 4)), tol(*fx.be, 1e-6), "blocks 0-1 (cache not full)");
    const Err e = compare(local.slice(1, 4, 12), to_f64(global.slice(1, 4, 12)));
    EXPECT_GT(e.rel_l2, 1e-4) << "later blocks must see a different (windowed) history";
    o.cache_frames = 2;
    expect_error([&] { generate_causal(*fx.model, ctx, noise, o, keyed); }, {"[causal]", "cannot hold a block"});
}

}  // namespace wanrt::test
