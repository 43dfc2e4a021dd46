// Golden tests of the whole WanModel (dit_t2v / dit_i2v / dit_ti2v fixtures): outputs and every named
// intermediate, per block. Config, seq_len and shapes come from the fixture files.
#include <map>

#include "models/dit.h"
#include "models/dit_fp8.h"
#include "models/dit_weights.h"
#include "models/synth.h"
#include "test_util.h"

namespace wanrt::test {

namespace {

struct Golden {
    std::shared_ptr<SafeTensorsFile> f;
    DitConfig cfg;
    int64_t seq_len;
};

Golden open_dit_fixture(const std::string& name) {
    Golden g;
    g.f = open_fixture(name);
    g.cfg = DitConfig::from_json(g.f->metadata().at("config"), g.f->origin());
    g.seq_len = std::stoll(g.f->metadata().at("seq_len"));
    return g;
}

void run_golden(const std::string& fixture) {
    auto be = make_cpu_backend(2);
    Golden g = open_dit_fixture(fixture);
    // Weights: every tensor without an in./out./mid. prefix; the loader rejects extras and
    // mismatches, so the fixture file minus its test data must be exactly the model.
    auto weights = std::make_shared<MemoryTensorSource>(g.f->origin());
    for (const std::string& n : g.f->names()) {
        if (n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0) continue;
        const StoredTensor& t = *g.f->find(n);
        weights->add(n, t.dtype, t.shape, t.data);
    }
    DitModel model(g.cfg, weights, *be);

    std::vector<DitSample> batch;
    // in.t: one timestep per sample [B], or per token [B, seq_len] (Wan2.2 TI2V)
    auto tv = load_f64(*g.f, "in.t");
    const Shape t_shape = stored(*g.f, "in.t").shape;
    const bool per_token = t_shape.size() == 2;
    if (per_token) {
        ASSERT_EQ(t_shape[1], g.seq_len);
    }
    for (size_t i = 0;; ++i) {
        const std::string s = std::to_string(i);
        if (!g.f->find("in.x" + s)) break;
        DitSample smp;
        smp.x = load_f32(*be, *g.f, "in.x" + s);
        smp.context = load_f32(*be, *g.f, "in.context" + s);
        if (per_token)
            smp.t_tokens.assign(tv.begin() + int64_t(i) * g.seq_len, tv.begin() + int64_t(i + 1) * g.seq_len);
        else
            smp.t = float(tv.at(i));
        if (g.cfg.is_i2v()) {
            smp.y = load_f32(*be, *g.f, "in.cond" + s);
            smp.clip_fea = load_f32(*be, *g.f, "in.clip_fea").select(0, int64_t(i));
        }
        batch.push_back(smp);
    }
    ASSERT_EQ(int64_t(batch.size()), t_shape[0]);

    std::map<std::string, std::vector<double>> mids;
    auto outs = model.forward(batch, g.seq_len, [&](const std::string& name, const Tensor& t) { mids[name] = to_f64(t); });

    int checked = 0;
    for (const std::string& n : g.f->names()) {
        if (n.rfind("mid.", 0) != 0) continue;
        const std::string key = n.substr(4);
        ASSERT_TRUE(mids.count(key)) << "model did not dump intermediate " << key;
        EXPECT_CLOSE(mids[key], load_f64(*g.f, n), 1e-4, fixture + " " + n);
        ++checked;
    }
    EXPECT_GE(checked, 4 + int(g.cfg.num_layers));
    // The per-module dump points (dit_block.h) exist for every block, and the last one of a block
    // is its output.
    for (int64_t k = 0; k < g.cfg.num_layers; ++k) {
        const std::string p = "blk." + std::to_string(k) + ".";
        for (const char* m : {"self_attn.out", "cross_attn.out", "ffn.out"})
            ASSERT_TRUE(mids.count(p + m)) << "model did not dump " << p << m;
        EXPECT_EQ(mids[p + "ffn.out"], mids["block" + std::to_string(k) + "_out"]);
    }
    for (size_t i = 0; i < outs.size(); ++i) {
        const std::string n = "out.y" + std::to_string(i);
        EXPECT_EQ(outs[i].shape(), stored(*g.f, n).shape);
        EXPECT_CLOSE(outs[i], load_f64(*g.f, n), 1e-4, fixture + " " + n);
    }
}

}  // namespace

TEST(DitGolden, T2V) { run_golden("dit_t2v.safetensors"); }
TEST(DitGolden, I2V) { run_golden("dit_i2v.safetensors"); }
TEST(DitGolden, TI2V) { run_golden("dit_ti2v.safetensors"); }

TEST(DitGolden, TI2VGroupedTimesteps) {
    // Sample 0 of the TI2V fixture alone: its per-token t is constant over runs of tokens, so the
    // model uses one modulation row per run (not per token); the output must still be the golden
    // one, with any FFN chunking. One t repeated per token equals a scalar t exactly.
    auto be = make_cpu_backend(2);
    Golden g = open_dit_fixture("dit_ti2v.safetensors");
    auto weights = std::make_shared<MemoryTensorSource>(g.f->origin());
    for (const std::string& n : g.f->names())
        if (n.rfind("in.", 0) && n.rfind("out.", 0) && n.rfind("mid.", 0))
            weights->add(n, g.f->find(n)->dtype, g.f->find(n)->shape, g.f->find(n)->data);
    DitModel model(g.cfg, weights, *be);
    const std::vector<double> tv = load_f64(*g.f, "in.t");
    DitSample s;
    s.x = load_f32(*be, *g.f, "in.x0");
    s.context = load_f32(*be, *g.f, "in.context0");
    s.t_tokens.assign(tv.begin(), tv.begin() + g.seq_len);
    ASSERT_NE(s.t_tokens.front(), s.t_tokens.back()) << "sample 0 should hold the first-frame pattern";
    auto out = model.forward({s}, g.seq_len);
    EXPECT_CLOSE(out[0], load_f64(*g.f, "out.y0"), 1e-4, "ti2v sample 0 alone");
    for (int64_t chunk : {1, 5, 13}) {  // inside a run, and several runs per chunk
        model.set_ffn_chunk_tokens(chunk);
        EXPECT_CLOSE(model.forward({s}, g.seq_len)[0], to_f64(out[0]), 1e-6, cat("FFN in ", chunk, "-token chunks"));
    }
    model.set_ffn_chunk_tokens(0);
    DitSample scalar = s, repeated = s;
    scalar.t_tokens.clear();
    scalar.t = 731;
    repeated.t_tokens.assign(size_t(g.seq_len), 731.0);
    EXPECT_EQ(to_f64(model.forward({repeated}, g.seq_len)[0]), to_f64(model.forward({scalar}, g.seq_len)[0]));
    DitSample wrong = s;
    wrong.t_tokens.pop_back();
    expect_error([&] { model.forward({wrong}, g.seq_len); }, {"[dit]", "per-token timesteps", "seq_len"});
}

TEST(DitGolden, SingleSampleEqualsBatched) {
    // The padded batch and a lone sample with seq_len = its own token count give the same output.
    auto be = make_cpu_backend(2);
    Golden g = open_dit_fixture("dit_t2v.safetensors");
    auto weights = std::make_shared<MemoryTensorSource>(g.f->origin());
    for (const std::string& n : g.f->names())
        if (n.find('.') != std::string::npos && n.rfind("in.", 0) && n.rfind("out.", 0) && n.rfind("mid.", 0))
            weights->add(n, g.f->find(n)->dtype, g.f->find(n)->shape, g.f->find(n)->data);
    DitModel model(g.cfg, weights, *be);
    DitSample s;
    s.x = load_f32(*be, *g.f, "in.x1");
    s.context = load_f32(*be, *g.f, "in.context1");
    s.t = float(load_f64(*g.f, "in.t")[1]);
    auto out = model.forward({s}, model.tokens_for(s.x.shape()));
    EXPECT_CLOSE(out[0], load_f64(*g.f, "out.y1"), 1e-4, "lone sample 1");
    model.set_ffn_chunk_tokens(7);  // several FFN chunks, the last one partial
    auto chunked = model.forward({s}, model.tokens_for(s.x.shape()));
    EXPECT_CLOSE(chunked[0], to_f64(out[0]), 1e-6, "FFN in 7-token chunks");
}

TEST(DitGolden, HalfPrecisionMatricesUsedInPlace) {
    // bf16/f16 checkpoints keep their matrices 2 bytes wide; the result must equal an f32 model
    // holding the same (rounded) values, and stay near the float64 reference.
    auto be = make_cpu_backend(2);
    Golden g = open_dit_fixture("dit_t2v.safetensors");
    const auto table = dit_param_table(g.cfg);
    for (DType half : {DType::BF16, DType::F16}) {
        auto narrow = std::make_shared<MemoryTensorSource>("half");
        auto widened = std::make_shared<MemoryTensorSource>("widened");
        for (const ParamSpec& p : table) {
            const StoredTensor& t = stored(*g.f, p.name);
            if (!p.matrix) {
                narrow->add(p.name, t.dtype, t.shape, t.data);
                widened->add(p.name, t.dtype, t.shape, t.data);
                continue;
            }
            void* h = narrow->add_uninitialized(p.name, half, t.shape);
            convert_elements(t.data, t.dtype, h, half, shape_numel(t.shape));
            void* w = widened->add_uninitialized(p.name, DType::F32, t.shape);
            convert_elements(h, half, w, DType::F32, shape_numel(t.shape));
        }
        DitModel m_half(g.cfg, narrow, *be), m_wide(g.cfg, widened, *be);
        DitSample s;
        s.x = load_f32(*be, *g.f, "in.x0");
        s.context = load_f32(*be, *g.f, "in.context0");
        s.t = float(load_f64(*g.f, "in.t")[0]);
        const int64_t L = m_half.tokens_for(s.x.shape());
        auto a = m_half.forward({s}, L), b = m_wide.forward({s}, L);
        EXPECT_CLOSE(a[0], to_f64(b[0]), 1e-6, cat(dtype_name(half), " matrices vs the same values in f32"));
        EXPECT_CLOSE(a[0], load_f64(*g.f, "out.y0"), half == DType::BF16 ? 2e-2 : 2e-3,
                     cat(dtype_name(half), " matrices vs float64 reference"));
    }
}

TEST(DitGolden, Fp8LinearsWithinDocumentedError) {
    // --linear_dtype fp8 on the CPU: the block linears quantized to e4m3 (per-tensor scales) and
    // run through the emulation (ops/linear_fp8.h). Both samples of the t2v fixture against the
    // float64 golden: the FP8 error, bounded from above (measured 2.1e-2 and 3.0e-2, bound 6e-2; docs/perf.md)
    // and from below (the quantization really ran: never silently the f32 path, which is ≤ 1e-5).
    auto be = make_cpu_backend(2);
    Golden g = open_dit_fixture("dit_t2v.safetensors");
    auto weights = std::make_shared<MemoryTensorSource>(g.f->origin());
    for (const std::string& n : g.f->names())
        if (n.rfind("in.", 0) && n.rfind("out.", 0) && n.rfind("mid.", 0))
            weights->add(n, g.f->find(n)->dtype, g.f->find(n)->shape, g.f->find(n)->data);
    DitModel model(g.cfg, weights, *be);
    quantize_dit_linears_fp8(model);
    const DitBlockWeights& b0 = model.weights().blocks[0];
    for (const Linear* l : {&b0.sa_q, &b0.sa_o, &b0.ca_k, &b0.ffn0, &b0.ffn2}) {
        EXPECT_EQ(l->w.dtype(), DType::F8E4M3);
        EXPECT_EQ(l->w_scale.numel(), 1);
    }
    EXPECT_EQ(model.weights().head.w.dtype(), DType::F32) << "the head stays unquantized";
    std::vector<DitSample> batch;
    const std::vector<double> tv = load_f64(*g.f, "in.t");
    for (int i = 0; i < 2; ++i) {
        DitSample s;
        s.x = load_f32(*be, *g.f, cat("in.x", i));
        s.context = load_f32(*be, *g.f, cat("in.context", i));
        s.t = float(tv.at(size_t(i)));
        batch.push_back(s);
    }
    auto outs = model.forward(batch, g.seq_len);
    for (int i = 0; i < 2; ++i) {
        const Err e = compare(outs[size_t(i)], load_f64(*g.f, cat("out.y", i)));
        std::printf("  fp8 t2v out.y%d vs float64 golden: rel-L2 %.3e  max abs %.3e\n", i, e.rel_l2, e.max_abs);
        EXPECT_LE(e.rel_l2, 6e-2) << "sample " << i;
        EXPECT_GE(e.rel_l2, 1e-4) << "sample " << i << ": no FP8 error at all; did the quantized path run?";
    }
    // A second quantization is a no-op; bad flag values are one line.
    quantize_dit_linears_fp8(model);
    EXPECT_EQ(model.weights().blocks[0].sa_q.w.dtype(), DType::F8E4M3);
    expect_error([] { parse_linear_dtype_fp8("--linear_dtype", "int8"); }, {"--linear_dtype", "bf16 or fp8", "int8"});
    EXPECT_TRUE(parse_linear_dtype_fp8("--linear_dtype", "fp8"));
    EXPECT_FALSE(parse_linear_dtype_fp8("--linear_dtype", "bf16"));
}

TEST(DitConfigTest, FromWeightsMatchesFixtureConfig) {
    Golden g = open_dit_fixture("dit_i2v.safetensors");
    DitConfig d = DitConfig::from_weights(*g.f);
    EXPECT_EQ(d.dim, g.cfg.dim);
    EXPECT_EQ(d.in_dim, g.cfg.in_dim);
    EXPECT_EQ(d.ffn_dim, g.cfg.ffn_dim);
    EXPECT_EQ(d.num_layers, g.cfg.num_layers);
    EXPECT_EQ(d.text_dim, g.cfg.text_dim);
    EXPECT_EQ(d.freq_dim, g.cfg.freq_dim);
    EXPECT_EQ(d.out_dim, g.cfg.out_dim);
    EXPECT_TRUE(d.is_i2v());
}

TEST(DitConfigTest, PresetsMatchOfficialParameterCounts) {
    EXPECT_EQ(dit_param_count(DitConfig::preset("t2v-1.3B")), 1418996800);  // docs/wan21.md §0
    EXPECT_NEAR(double(dit_param_count(DitConfig::preset("t2v-14B"))), 14.29e9, 0.01e9);
    EXPECT_NEAR(double(dit_param_count(DitConfig::preset("i2v-14B"))), 16.39e9, 0.01e9);
}

TEST(DitBadInput, ConfigAndWeights) {
    auto be = make_cpu_backend(1);
    expect_error([] { DitConfig::from_json("{\"dim\": 100, \"num_heads\": 3}", "config.json"); },
                 {"[dit]", "config.json", "not divisible"});
    expect_error([] { DitConfig::from_json("{\"model_type\": \"t3v\"}", "config.json"); }, {"[dit]", "t3v"});
    expect_error([] { DitConfig::from_json("{\"dim\": ", "config.json"); }, {"[dit]", "JSON"});
    Golden g = open_dit_fixture("dit_t2v.safetensors");
    auto copy_weights = [&](const std::string& skip, const std::string& extra, bool misshape) {
        auto w = std::make_shared<MemoryTensorSource>("model.safetensors");
        for (const std::string& n : g.f->names()) {
            if (n == skip || !n.rfind("in.", 0) || !n.rfind("out.", 0) || !n.rfind("mid.", 0)) continue;
            const StoredTensor& t = *g.f->find(n);
            Shape s = t.shape;
            if (misshape && n == "head.head.bias") s = {s[0] / 2, 2};
            w->add(n, t.dtype, s, t.data);
        }
        if (!extra.empty()) w->add(extra, DType::F32, {1}, g.f->find("head.head.bias")->data);
        return w;
    };
    const std::string last_ffn = cat("blocks.", g.cfg.num_layers - 1, ".ffn.0.weight");
    expect_error([&] { DitModel(g.cfg, copy_weights(last_ffn, "", false), *be); },
                 {"[weights]", "missing tensor '" + last_ffn + "'"});
    expect_error([&] { DitModel(g.cfg, copy_weights("", "blocks.9.extra", false), *be); },
                 {"[weights]", "unexpected tensor", "blocks.9.extra"});
    expect_error([&] { DitModel(g.cfg, copy_weights("", "", true), *be); }, {"[weights]", "head.head.bias", "shape"});
    DitConfig wrong = g.cfg;  // one block more than the file holds
    wrong.num_layers = g.cfg.num_layers + 1;
    expect_error([&] { DitModel(wrong, copy_weights("", "", false), *be); },
                 {cat("missing tensor 'blocks.", g.cfg.num_layers, ".")});
}

TEST(DitBadInput, Inputs) {
    auto be = make_cpu_backend(1);
    DitConfig c = DitConfig::preset("t2v-1.3B");
    c.dim = 32;
    c.num_heads = 2;
    c.ffn_dim = 48;
    c.text_dim = 24;
    c.freq_dim = 16;
    c.num_layers = 1;
    c.text_len = 8;
    DitModel model(c, synth_dit_memory(c, DType::F32, 1), *be);
    DitSample s;
    s.x = randn_tensor(*be, {16, 2, 4, 6}, 1);
    s.context = randn_tensor(*be, {5, 24}, 2);
    expect_error([&] { model.forward({s}, 10); }, {"[dit]", "12 tokens", "seq_len"});
    DitSample odd = s;
    odd.x = randn_tensor(*be, {16, 2, 5, 6}, 1);
    expect_error([&] { model.forward({odd}, 64); }, {"[dit]", "patch"});
    DitSample ch = s;
    ch.x = randn_tensor(*be, {15, 2, 4, 6}, 1);
    expect_error([&] { model.forward({ch}, 64); }, {"[dit]", "in_dim"});
    DitSample ctx = s;
    ctx.context = randn_tensor(*be, {9, 24}, 2);
    expect_error([&] { model.forward({ctx}, 64); }, {"[dit]", "context"});
    EXPECT_EQ(model.forward({s}, 12)[0].shape(), (Shape{16, 2, 4, 6}));
}

}  // namespace wanrt::test
