// LoRA loading (models/lora.h) on the dit_t2v fixture's weights: a synthetic LoRA written in each
// format maps to the same deltas, merged weights equal W + Σ s·(α/r)·up·down (and + s·diff) exactly
// in f32, run-time branches give the merged model's output, bad files fail naming their keys; and the
// few-step path (pipeline/t2v.h): a CFG-free 4-step lcm / euler run equals its trajectory computed
// here step by step.
#include <cstring>
#include <map>

#include "models/dit.h"
#include "models/dit_weights.h"
#include "models/lora.h"
#include "pipeline/demo.h"
#include "pipeline/t2v.h"
#include "sched/scheduler.h"
#include "test_util.h"

// The reference formula below sums in float64 in the library's order; no FMA contraction either side.
#pragma GCC optimize("fp-contract=off")

namespace wanrt::test {

namespace {

struct Fixture {
    std::shared_ptr<SafeTensorsFile> f;
    DitConfig cfg;
    int64_t seq_len = 0;
    std::shared_ptr<MemoryTensorSource> weights;  // the model's tensors only
};

Fixture open_dit() {
    Fixture x;
    x.f = open_fixture("dit_t2v.safetensors");
    x.cfg = DitConfig::from_json(x.f->metadata().at("config"), x.f->origin());
    x.seq_len = std::stoll(x.f->metadata().at("seq_len"));
    x.weights = std::make_shared<MemoryTensorSource>(x.f->origin());
    for (const std::string& n : x.f->names()) {
        if (n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0) continue;
        const StoredTensor& t = *x.f->find(n);
        x.weights->add(n, t.dtype, t.shape, t.data);
    }
    return x;
}

// One synthetic LoRA in official module names: low-rank pairs and differences.
struct SynthPair {
    std::string module;
    Shape down_shape, up_shape;  // as stored (the patch embedding's are 5-D)
    std::vector<float> down, up;
};
struct SynthDiff {
    std::string module, kind;  // kind: diff | diff_b | diff_m
    Shape shape;
    std::vector<float> v;
};
struct SynthLora {
    int64_t rank = 4;
    float alpha = 8;
    std::vector<SynthPair> pairs;
    std::vector<SynthDiff> diffs;
};

SynthLora make_synth(const DitConfig& c, uint64_t seed, bool with_diffs) {
    SynthLora L;
    const int64_t r = L.rank, D = c.dim;
    uint64_t s = seed;
    auto pair = [&](const std::string& m, int64_t out, int64_t in) {
        L.pairs.push_back({m, {r, in}, {out, r}, randn(size_t(r * in), ++s, 0.2f), randn(size_t(out * r), ++s, 0.2f)});
    };
    for (int64_t b = 0; b < c.num_layers; ++b) {
        const std::string p = "blocks." + std::to_string(b) + ".";
        for (const char* a : {"self_attn.", "cross_attn."})
            for (const char* q : {"q", "k", "v", "o"}) pair(p + a + q, D, D);
        pair(p + "ffn.0", c.ffn_dim, D);
        pair(p + "ffn.2", D, c.ffn_dim);
    }
    pair("head.head", c.out_dim * c.patch_volume(), D);
    pair("text_embedding.0", D, c.text_dim);
    pair("time_projection.1", 6 * D, D);
    // The Conv3d patch embedding as kohya writes it: down [r, C, pt, ph, pw], up [D, r, 1, 1, 1].
    L.pairs.push_back({"patch_embedding",
                       {r, c.in_dim, c.patch_t, c.patch_h, c.patch_w},
                       {D, r, 1, 1, 1},
                       randn(size_t(r * c.in_dim * c.patch_volume()), ++s, 0.2f),
                       randn(size_t(D * r), ++s, 0.2f)});
    if (with_diffs) {
        auto diff = [&](const std::string& m, const std::string& kind, Shape sh) {
            L.diffs.push_back({m, kind, sh, randn(size_t(shape_numel(sh)), ++s, 0.05f)});
        };
        diff("blocks.0.self_attn.q", "diff_b", {D});
        diff("blocks.1.ffn.0", "diff_b", {c.ffn_dim});
        diff("blocks.0.norm3", "diff", {D});
        diff("blocks.1.self_attn.norm_q", "diff", {D});
        diff("blocks.0", "diff_m", {1, 6, D});
        diff("head", "diff_m", {1, 2, D});
        diff("blocks.1.cross_attn.v", "diff", {D, D});  // a full matrix difference
    }
    return L;
}

std::string underscored(std::string s) {
    for (char& ch : s)
        if (ch == '.') ch = '_';
    return s;
}

// official → diffusers module names (../shared/spec/diffusers_names.md) for the modules above.
std::string to_diffusers(const std::string& m) {
    static const std::map<std::string, std::string> top = {
        {"head.head", "proj_out"},
        {"text_embedding.0", "condition_embedder.text_embedder.linear_1"},
        {"time_projection.1", "condition_embedder.time_proj"},
        {"patch_embedding", "patch_embedding"},
    };
    static const std::map<std::string, std::string> blk = {
        {"self_attn.q", "attn1.to_q"},  {"self_attn.k", "attn1.to_k"},  {"self_attn.v", "attn1.to_v"},
        {"self_attn.o", "attn1.to_out.0"}, {"cross_attn.q", "attn2.to_q"}, {"cross_attn.k", "attn2.to_k"},
        {"cross_attn.v", "attn2.to_v"}, {"cross_attn.o", "attn2.to_out.0"}, {"ffn.0", "ffn.net.0.proj"},
        {"ffn.2", "ffn.net.2"},
    };
    if (top.count(m)) return top.at(m);
    const size_t dot = m.find('.', 7);
    return m.substr(0, dot + 1) + blk.at(m.substr(dot + 1));
}

enum class Format { Comfy, Kohya, Peft };

// The LoRA as a file of that format would hold it. PEFT files carry no alpha tensors (their alpha is
// the metadata's lora_alpha, passed to map_lora).
std::shared_ptr<MemoryTensorSource> write_format(const SynthLora& L, Format fmt) {
    auto src = std::make_shared<MemoryTensorSource>(fmt == Format::Comfy   ? "comfy.safetensors"
                                                    : fmt == Format::Kohya ? "kohya.safetensors"
                                                                           : "peft.safetensors");
    for (const SynthPair& p : L.pairs) {
        std::string base, dn, up;
        if (fmt == Format::Comfy) base = "diffusion_model." + p.module, dn = ".lora_down.weight", up = ".lora_up.weight";
        if (fmt == Format::Kohya) base = "lora_unet_" + underscored(p.module), dn = ".lora_down.weight", up = ".lora_up.weight";
        if (fmt == Format::Peft) base = "transformer." + to_diffusers(p.module), dn = ".lora_A.weight", up = ".lora_B.weight";
        src->add(base + dn, DType::F32, p.down_shape, p.down.data());
        src->add(base + up, DType::F32, p.up_shape, p.up.data());
        if (fmt != Format::Peft) src->add(base + ".alpha", DType::F32, {}, &L.alpha);
    }
    for (const SynthDiff& d : L.diffs) src->add("diffusion_model." + d.module + "." + d.kind, DType::F32, d.shape, d.v.data());
    return src;
}

std::vector<float> host_f32(const StoredTensor& t) {
    std::vector<float> v(size_t(shape_numel(t.shape)));
    EXPECT_EQ(t.dtype, DType::F32);
    std::memcpy(v.data(), t.data, v.size() * 4);
    return v;
}

// The reference merge of one tensor: W + Σ_lora s·(α/r)·(up·down) + Σ s·diff, float64, in order.
std::map<std::string, std::vector<float>> reference_merge(const TensorSource& base,
                                                          const std::vector<std::pair<const SynthLora*, float>>& loras) {
    std::map<std::string, std::vector<double>> acc;
    auto get = [&](const std::string& name) -> std::vector<double>& {
        if (!acc.count(name)) {
            std::vector<float> w = host_f32(*base.find(name));
            acc[name] = std::vector<double>(w.begin(), w.end());
        }
        return acc[name];
    };
    for (auto [L, strength] : loras) {
        for (const SynthPair& p : L->pairs) {
            std::vector<double>& w = get(p.module + ".weight");
            const int64_t r = L->rank, out = p.up_shape[0], in = int64_t(w.size()) / out;
            const double scale = double(strength) * double(L->alpha) / double(r);
            for (int64_t o = 0; o < out; ++o) {
                std::vector<double> prod(size_t(in), 0.0);
                for (int64_t k = 0; k < r; ++k)
                    for (int64_t i = 0; i < in; ++i) prod[size_t(i)] += double(p.up[size_t(o * r + k)]) * double(p.down[size_t(k * in + i)]);
                for (int64_t i = 0; i < in; ++i) w[size_t(o * in + i)] += scale * prod[size_t(i)];
            }
        }
        for (const SynthDiff& d : L->diffs) {
            const std::string t = d.module + (d.kind == "diff_b" ? ".bias" : d.kind == "diff_m" ? ".modulation" : ".weight");
            std::vector<double>& w = get(t);
            for (size_t i = 0; i < w.size(); ++i) w[i] += double(strength) * double(d.v[i]);
        }
    }
    std::map<std::string, std::vector<float>> out;
    for (auto& [n, v] : acc) out[n] = std::vector<float>(v.begin(), v.end());
    return out;
}

void expect_merged_equals(const TensorSource& merged, const TensorSource& base,
                          const std::map<std::string, std::vector<float>>& ref) {
    int changed = 0;
    for (const std::string& n : base.names()) {
        const std::vector<float> got = host_f32(*merged.find(n));
        if (auto it = ref.find(n); it != ref.end()) {
            ASSERT_EQ(got.size(), it->second.size()) << n;
            size_t bad = 0;
            for (size_t i = 0; i < got.size(); ++i) bad += std::memcmp(&got[i], &it->second[i], 4) != 0;
            EXPECT_EQ(bad, 0u) << n << ": " << bad << " of " << got.size() << " values differ from the formula";
            ++changed;
        } else {
            EXPECT_EQ(std::memcmp(got.data(), base.find(n)->data, got.size() * 4), 0) << n << " changed but no LoRA names it";
        }
    }
    EXPECT_EQ(changed, int(ref.size()));
}

std::vector<Tensor> run_fixture(const DitModel& m, const Fixture& x, Backend& be) {
    auto tv = load_f64(*x.f, "in.t");
    std::vector<DitSample> batch;
    for (size_t i = 0; x.f->find("in.x" + std::to_string(i)); ++i) {
        DitSample s;
        s.x = load_f32(be, *x.f, "in.x" + std::to_string(i));
        s.context = load_f32(be, *x.f, "in.context" + std::to_string(i));
        s.t = float(tv.at(i));
        batch.push_back(s);
    }
    return m.forward(batch, x.seq_len);
}

std::shared_ptr<Backend> device_or_cpu() {
    auto d = test_device();
    return d ? d : make_cpu_backend(2);
}

}  // namespace

TEST(Lora, ParseArgument) {
    EXPECT_EQ(parse_lora_arg("a.safetensors").path, "a.safetensors");
    EXPECT_EQ(parse_lora_arg("a.safetensors").strength, 1.0f);
    EXPECT_EQ(parse_lora_arg("a.safetensors:0.75").strength, 0.75f);
    EXPECT_EQ(parse_lora_arg("a.safetensors:-1").strength, -1.0f);
    EXPECT_EQ(parse_lora_arg("C:/x/a.safetensors").path, "C:/x/a.safetensors");  // not a number after ':'
    EXPECT_THROW(parse_lora_arg(":0.5"), Error);
    EXPECT_THROW(parse_lora_arg(""), Error);
    EXPECT_EQ(parse_lora_mode("runtime"), LoraMode::Runtime);
    EXPECT_THROW(parse_lora_mode("fast"), Error);
}

// ComfyUI/kohya official names with diffs, merged: every changed tensor equals the formula bit for
// bit, and every other tensor is the base's.
TEST(Lora, MergedEqualsFormulaExactly) {
    Fixture x = open_dit();
    const SynthLora L = make_synth(x.cfg, 100, true);
    auto deltas = map_lora(*write_format(L, Format::Comfy), 0.8f, x.cfg);
    EXPECT_EQ(deltas.size(), L.pairs.size() + L.diffs.size());
    auto merged = merge_lora(x.weights, "", deltas);
    expect_merged_equals(*merged, *x.weights, reference_merge(*x.weights, {{&L, 0.8f}}));
}

// Two files at once, with strengths of both signs, summed in order.
TEST(Lora, TwoLorasWithStrengths) {
    Fixture x = open_dit();
    const SynthLora A = make_synth(x.cfg, 200, true), B = make_synth(x.cfg, 300, false);
    auto da = map_lora(*write_format(A, Format::Comfy), 0.7f, x.cfg);
    auto db = map_lora(*write_format(B, Format::Kohya), -0.5f, x.cfg);
    da.insert(da.end(), db.begin(), db.end());
    auto merged = merge_lora(x.weights, "", da);
    expect_merged_equals(*merged, *x.weights, reference_merge(*x.weights, {{&A, 0.7f}, {&B, -0.5f}}));
}

// The same LoRA under musubi/kohya underscored names and under diffusers/PEFT names (alpha from the
// metadata) merges to identical weights, and both equal the ComfyUI-named copy.
TEST(Lora, KohyaAndPeftNamesGiveIdenticalWeights) {
    Fixture x = open_dit();
    const SynthLora L = make_synth(x.cfg, 400, false);
    auto mk = map_lora(*write_format(L, Format::Kohya), 1.0f, x.cfg);
    auto mp = map_lora(*write_format(L, Format::Peft), 1.0f, x.cfg, L.alpha);
    auto mc = map_lora(*write_format(L, Format::Comfy), 1.0f, x.cfg);
    auto wk = merge_lora(x.weights, "", mk), wp = merge_lora(x.weights, "", mp), wc = merge_lora(x.weights, "", mc);
    int differing = 0;
    for (const std::string& n : x.weights->names()) {
        const size_t bytes = x.weights->find(n)->nbytes;
        EXPECT_EQ(std::memcmp(wk->find(n)->data, wp->find(n)->data, bytes), 0) << n << ": kohya vs PEFT";
        EXPECT_EQ(std::memcmp(wk->find(n)->data, wc->find(n)->data, bytes), 0) << n << ": kohya vs ComfyUI";
        differing += std::memcmp(wk->find(n)->data, x.weights->find(n)->data, bytes) != 0;
    }
    EXPECT_EQ(differing, int(L.pairs.size()));  // the LoRA did change every module it names
    // PEFT without its alpha: scale 1 (α = r), a different merge.
    auto m1 = map_lora(*write_format(L, Format::Peft), 1.0f, x.cfg);
    EXPECT_NEAR(m1[0].scale * double(L.alpha) / double(L.rank), mp[0].scale, 1e-12);
}

// Run-time branches (low rank and a full matrix difference) give the merged model's output (on a GPU
// both are bf16 weights, rounded at different points: a looser bound).
TEST(Lora, RuntimeMatchesMerged) {
    Fixture x = open_dit();
    auto be = device_or_cpu();
    const SynthLora L = make_synth(x.cfg, 500, true);
    auto deltas = map_lora(*write_format(L, Format::Comfy), 0.9f, x.cfg);
    DitModel base(x.cfg, x.weights, *be);
    DitModel merged(x.cfg, merge_lora(x.weights, "", deltas), *be);
    DitModel runtime(x.cfg, merge_lora(x.weights, "", deltas, /*matrices_too=*/false), *be);
    attach_lora(runtime, deltas);
    EXPECT_EQ(runtime.weights().blocks[1].ca_v.lora.size(), 2u);  // low rank + full difference
    auto yb = run_fixture(base, x, *be), ym = run_fixture(merged, x, *be), yr = run_fixture(runtime, x, *be);
    ASSERT_EQ(ym.size(), yr.size());
    for (size_t i = 0; i < ym.size(); ++i) {
        const auto m = to_f64(ym[i]);
        // GPU bound from the H100 run of 2026-12-05: 1.6e-2 on y1 (bf16 W+ΔW rounded once vs W and ΔW
        // apart, through random-weight blocks; the DiT golden itself is 4e-3 there).
        const double bound = std::string(be->kind()) == "cpu" ? 2e-5 : 3e-2;
        EXPECT_CLOSE(to_f64(yr[i]), m, bound, "runtime vs merged y" + std::to_string(i));
        const double effect = compare(to_f64(yb[i]), m).rel_l2;
        std::printf("  LoRA effect on y%zu: rel-L2 %.3e (bound %.0e)\n", i, effect, bound);
        EXPECT_GT(effect, 10 * bound) << "the LoRA barely changes the output; the test would not see a dropped branch";
    }
}

// Both ways of applying run-time branches on one Linear with a low-rank and a full-difference branch
// (blocks[1].ca_v), at a row count on each side of Auto's choice: each equals the merged Linear,
// and patching leaves the base weight as it was.
TEST(Lora, PatchAndSidePathsMatchMerged) {
    Fixture x = open_dit();
    auto be = device_or_cpu();
    const SynthLora L = make_synth(x.cfg, 500, true);
    auto deltas = map_lora(*write_format(L, Format::Comfy), 0.9f, x.cfg);
    DitModel merged(x.cfg, merge_lora(x.weights, "", deltas), *be);
    DitModel runtime(x.cfg, merge_lora(x.weights, "", deltas, /*matrices_too=*/false), *be);
    attach_lora(runtime, deltas);
    const Linear& lr = runtime.weights().blocks[1].ca_v;
    const Linear& lm = merged.weights().blocks[1].ca_v;
    ASSERT_EQ(lr.lora.size(), 2u);
    const std::vector<double> w_before = to_f64(lr.w);
    const double bound = std::string(be->kind()) == "cpu" ? 2e-5 : 1e-2;
    for (int64_t rows : {3, 257}) {
        Tensor xin = randn_tensor(*be, {1, rows, lr.w.size(1)}, 7 + uint64_t(rows));
        const std::vector<double> ref = to_f64(lm(xin, Activation::GeluTanh));
        for (LoraApply how : {LoraApply::Patch, LoraApply::Side, LoraApply::Auto}) {
            const std::string what = "rows " + std::to_string(rows) + (how == LoraApply::Patch ? " patch" : how == LoraApply::Side ? " side" : " auto");
            EXPECT_CLOSE(to_f64(linear_with_lora(lr, xin, Activation::GeluTanh, DType::F32, how)), ref, bound, what);
        }
    }
    EXPECT_EQ(to_f64(lr.w), w_before) << "patching must not change the base weight";
}

// Through a file on disk and load_dit_with_lora: auto resolves to merge on an f32 base, runtime when asked.
TEST(Lora, LoadFromFileAutoAndRuntime) {
    Fixture x = open_dit();
    auto be = make_cpu_backend(2);
    const SynthLora L = make_synth(x.cfg, 600, true);
    auto src = write_format(L, Format::Peft);
    const std::string path = (std::filesystem::temp_directory_path() / "wanrt_test_lora_peft.safetensors").string();
    std::vector<TensorToWrite> tw;
    for (const std::string& n : src->names()) {
        const StoredTensor& t = *src->find(n);
        tw.push_back({n, t.dtype, t.shape, t.data});
    }
    write_safetensors(path, tw, {{"lora_alpha", "8"}});
    LoraOptions opt;
    opt.files = {parse_lora_arg(path + ":0.6")};
    std::string summary;
    auto m_auto = load_dit_with_lora(x.cfg, x.weights, *be, "", opt, &summary);
    EXPECT_NE(summary.find("merged"), std::string::npos) << summary;
    opt.mode = LoraMode::Runtime;
    auto m_rt = load_dit_with_lora(x.cfg, x.weights, *be, "", opt, &summary);
    EXPECT_NE(summary.find("run-time"), std::string::npos) << summary;
    auto ya = run_fixture(*m_auto, x, *be), yr = run_fixture(*m_rt, x, *be);
    for (size_t i = 0; i < ya.size(); ++i) EXPECT_CLOSE(to_f64(yr[i]), to_f64(ya[i]), 2e-5, "file: runtime vs merged");
    // The merged weights are the formula's (alpha 8 from the metadata, strength 0.6).
    auto ref = reference_merge(*x.weights, {{&L, 0.6f}});
    auto merged = merge_lora(x.weights, "", load_lora_file(opt.files[0], x.cfg));
    expect_merged_equals(*merged, *x.weights, ref);
    std::filesystem::remove(path);
}

// Every key accounted for: unknown forms, modules the model lacks, half pairs and misfit shapes fail
// naming the key.
TEST(Lora, BadKeysAreErrorsNamingThem) {
    Fixture x = open_dit();
    const SynthLora L = make_synth(x.cfg, 700, false);
    auto expect_error = [&](const std::function<void(MemoryTensorSource&)>& edit, const std::string& needle) {
        auto src = write_format(L, Format::Comfy);
        edit(*src);
        try {
            map_lora(*src, 1.0f, x.cfg);
            ADD_FAILURE() << "no error; expected one naming " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            std::printf("  %s\n", e.what());
        }
    };
    const float one = 1.0f;
    std::vector<float> m4(size_t(4 * x.cfg.dim), 0.1f);
    expect_error([&](MemoryTensorSource& s) { s.add("diffusion_model.blocks.0.self_attn.q.lora_mid.weight", DType::F32, {1}, &one); },
                 "blocks.0.self_attn.q.lora_mid.weight");
    expect_error([&](MemoryTensorSource& s) { s.add("text_encoder.layer.0.q.lora_down.weight", DType::F32, {1}, &one); },
                 "text_encoder.layer.0.q.lora_down.weight");
    expect_error([&](MemoryTensorSource& s) { s.add("diffusion_model.blocks.9.self_attn.q.lora_down.weight", DType::F32, {4, x.cfg.dim}, m4.data()); },
                 "blocks.9.self_attn.q");
    expect_error([&](MemoryTensorSource& s) { s.add("diffusion_model.blocks.0.norm2.diff", DType::F32, {1}, &one); },
                 "blocks.0.norm2.diff");
    expect_error([&](MemoryTensorSource& s) { s.add("diffusion_model.blocks.0.cross_attn.norm_q.lora_down.weight", DType::F32, {4, x.cfg.dim}, m4.data()); },
                 "cross_attn.norm_q");  // a down without its up
    expect_error([&](MemoryTensorSource& s) { s.add("diffusion_model.blocks.0.diff_m", DType::F32, {1}, &one); },
                 "blocks.0.diff_m");  // wrong shape
}

// The command line: the demo model with a LoRA file, 4 CFG-free lcm steps, merged and at run time;
// a file with a stray key is one line naming it, exit 1, no output.
TEST(Lora, GenerateCommandTakesLoras) {
    const DitConfig c = demo_config().dit;
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "wanrt_test_lora_cli";
    std::filesystem::create_directories(dir);
    const int64_t r = 2, D = c.dim;
    const std::vector<float> down = randn(size_t(r * D), 1, 0.1f), up = randn(size_t(D * r), 2, 0.1f), db = randn(size_t(D), 3, 0.1f);
    const float alpha = 2;
    std::vector<TensorToWrite> tw = {
        {"diffusion_model.blocks.0.self_attn.q.lora_down.weight", DType::F32, {r, D}, down.data()},
        {"diffusion_model.blocks.0.self_attn.q.lora_up.weight", DType::F32, {D, r}, up.data()},
        {"diffusion_model.blocks.0.self_attn.q.alpha", DType::F32, {}, &alpha},
        {"diffusion_model.blocks.0.self_attn.q.diff_b", DType::F32, {D}, db.data()},
    };
    const std::string good = (dir / "good.safetensors").string(), bad = (dir / "bad.safetensors").string();
    write_safetensors(good, tw);
    tw.push_back({"diffusion_model.blocks.0.self_attn.q.lora_mid.weight", DType::F32, {D}, db.data()});
    write_safetensors(bad, tw);
    const std::string common = " --size 64*64 --frame_num 5 --sample_solver lcm --sample_steps 4 --sample_shift 5 "
                               "--sample_guide_scale 1 --threads 2 --device cpu --save_file ";
    for (const char* mode : {"auto", "runtime"}) {
        const std::string out = (dir / (std::string(mode) + ".y4m")).string();
        CliRun res = run_cli("generate --lora " + good + ":0.8 --lora_mode " + mode + common + out);
        EXPECT_EQ(res.code, 0) << res.out;
        EXPECT_NE(res.out.find("LoRA"), std::string::npos) << res.out;
        EXPECT_TRUE(std::filesystem::exists(out)) << res.out;
    }
    const std::string out = (dir / "bad.y4m").string();
    CliRun res = run_cli("generate --lora " + bad + common + out);
    EXPECT_EQ(res.code, 1) << res.out;
    EXPECT_NE(res.out.find("blocks.0.self_attn.q.lora_mid.weight"), std::string::npos) << res.out;
    EXPECT_FALSE(std::filesystem::exists(out));
    CliRun missing = run_cli("generate --lora " + (dir / "nope.safetensors").string() + common + out);
    EXPECT_EQ(missing.code, 1) << missing.out;
    std::filesystem::remove_all(dir);
}

// ---- few-step generation (pipeline/t2v.h, sched/scheduler.h) ----

TEST(FewStep, LcmScheduleIsLightX2V) {
    // denoising_step_list [1000, 750, 500, 250], shift 5: σ = 5s/(1 + 4s) for s = 1, .75, .5, .25.
    const Schedule s = lcm_schedule(4, 5.0);
    const double want[4] = {1.0, 0.9375, 5.0 * 0.5 / 3.0, 1.25 / 2.0};
    ASSERT_EQ(s.sigmas.size(), 5u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(s.sigmas[size_t(i)], float(want[i])) << i;
    EXPECT_EQ(s.sigmas[4], 0.0f);
    EXPECT_EQ(s.timesteps, (std::vector<int64_t>{1000, 937, 833, 625}));
    auto sched = make_scheduler("lcm", 4, 5.0);
    EXPECT_EQ(sched->model_timestep(1), 937.5);
    EXPECT_TRUE(sched->needs_noise());
}

// A 4-step CFG-free run (guide 1: one forward per step) equals the trajectory computed here from
// the DiT's outputs: lcm (x̂₀, re-noised with the seed + 1 stream) and euler.
TEST(FewStep, CfgFreeRunEqualsTrajectory) {
    Fixture x = open_dit();
    auto be = device_or_cpu();
    DitModel dit(x.cfg, x.weights, *be);
    const Tensor context = load_f32(*be, *x.f, "in.context0");
    const Tensor context_null = load_f32(*be, *x.f, "in.context1");
    const Tensor noise = load_f32(*be, *x.f, "in.x0");
    for (const std::string solver : {"lcm", "euler"}) {
        T2VOptions opt;
        opt.sample_steps = 4;
        opt.sample_shift = 5.0;
        opt.guide_scale = 1.0;
        opt.solver = solver;
        opt.seed = 1234;
        int forwards_uncond = 0, steps = 0;
        std::vector<std::vector<double>> latents;
        const Tensor out = cfg_denoise(dit, DitSample{{}, {}, context, {}, 0}, DitSample{{}, {}, context_null, {}, 0}, noise,
                                       opt, x.seq_len, {}, [&](int, const Tensor& l) { latents.push_back(to_f64(l)); },
                                       [&](int, const Tensor&, const Tensor& vu) {
                                           ++steps;
                                           forwards_uncond += vu.defined();
                                       });
        EXPECT_EQ(steps, 4);
        EXPECT_EQ(forwards_uncond, 0) << "guide 1 must not run the negative prompt";

        // Independent: σ from the formula, the DiT on the conditional prompt only, the update in float64.
        std::mt19937_64 rng(opt.seed + 1);
        std::vector<double> xs = to_f64(noise);
        for (int i = 0; i < 4; ++i) {
            const double s = 1.0 - 0.25 * i;  // both solvers: 1 − i/n before the shift
            const double sn = 1.0 - 0.25 * (i + 1);
            const float sig = float(5.0 * s / (1.0 + 4.0 * s)), sig_n = i == 3 ? 0.0f : float(5.0 * sn / (1.0 + 4.0 * sn));
            DitSample smp{{}, {}, context, {}, 0};
            std::vector<float> xf(xs.begin(), xs.end());
            smp.x = ops::from_host(*be, DType::F32, noise.shape(), xf.data());
            smp.t = solver == "lcm" ? sig * 1000.0f : float(int64_t(double(sig) * 1000.0));
            const std::vector<double> v = to_f64(dit.forward({smp}, x.seq_len)[0]);
            if (solver == "euler") {
                for (size_t k = 0; k < xs.size(); ++k) xs[k] += (double(sig_n) - double(sig)) * v[k];
            } else {
                for (size_t k = 0; k < xs.size(); ++k) xs[k] -= double(sig) * v[k];
                if (i < 3) {
                    const std::vector<double> eps = to_f64(gaussian_noise(*be, noise.shape(), rng));
                    for (size_t k = 0; k < xs.size(); ++k) xs[k] = (1.0 - double(sig_n)) * xs[k] + double(sig_n) * eps[k];
                }
            }
            EXPECT_CLOSE(latents.at(size_t(i)), xs, std::string(be->kind()) == "cpu" ? 1e-5 : 1e-3,
                         solver + " step " + std::to_string(i));
        }
        EXPECT_CLOSE(to_f64(out), xs, std::string(be->kind()) == "cpu" ? 1e-5 : 1e-3, solver + " final latent");
    }
}

// Guidance other than 1 still runs both prompts (two forwards per step).
TEST(FewStep, GuidanceRunsBothPrompts) {
    Fixture x = open_dit();
    auto be = make_cpu_backend(2);
    DitModel dit(x.cfg, x.weights, *be);
    T2VOptions opt;
    opt.sample_steps = 2;
    opt.guide_scale = 3.0;
    opt.solver = "euler";
    int uncond = 0;
    cfg_denoise(dit, DitSample{{}, {}, load_f32(*be, *x.f, "in.context0"), {}, 0},
                DitSample{{}, {}, load_f32(*be, *x.f, "in.context1"), {}, 0}, load_f32(*be, *x.f, "in.x0"), opt, x.seq_len,
                {}, {}, [&](int, const Tensor&, const Tensor& vu) { uncond += vu.defined(); });
    EXPECT_EQ(uncond, 2);
}

// The patch path on a bf16 weight with four branches (a full difference first, then three low-rank, one at
// strength 0): the fold of the fourth into the first must not write into the difference tensor itself (a
// second call gives the same output). The patched weight is
// W + Σ s·ΔW summed in f32 and rounded once to bf16, as a merge at load gives.
TEST(Lora, PatchOfBf16WeightRoundsOnce) {
    auto be = device_or_cpu();
    const int64_t N = 48, K = 80, r = 4, M = 5;
    std::vector<float> w = randn(size_t(N * K), 901, 0.5f);
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]);
    Linear l;
    l.w = ops::from_host(*be, DType::BF16, {N, K}, wb.data());
    const std::vector<float> bias = randn(size_t(N), 902, 0.1f);
    l.b = ops::from_host(*be, DType::F32, {N}, bias.data());
    std::vector<double> wp(w.size());
    for (size_t i = 0; i < w.size(); ++i) wp[i] = bf16_to_f32(wb[i]);
    const float scales[4] = {0.6f, 0.0f, -1.3f, 0.25f};
    for (int k = 0; k < 4; ++k) {
        LoraBranch br;
        br.scale = scales[k];
        if (k > 0) {
            const std::vector<float> up = randn(size_t(N * r), 910 + k, 0.3f), down = randn(size_t(r * K), 920 + k, 0.3f);
            br.up = ops::from_host(*be, DType::F32, {N, r}, up.data());
            br.down = ops::from_host(*be, DType::F32, {r, K}, down.data());
            for (int64_t n = 0; n < N; ++n)
                for (int64_t c = 0; c < K; ++c) {
                    double d = 0;
                    for (int64_t j = 0; j < r; ++j) d += double(up[size_t(n * r + j)]) * down[size_t(j * K + c)];
                    wp[size_t(n * K + c)] += double(scales[k]) * d;
                }
        } else {
            const std::vector<float> diff = randn(size_t(N * K), 930, 0.05f);
            br.down = ops::from_host(*be, DType::F32, {N, K}, diff.data());
            for (size_t i = 0; i < wp.size(); ++i) wp[i] += double(scales[k]) * diff[i];
        }
        l.lora.push_back(br);
    }
    for (double& v : wp) v = bf16_to_f32(f32_to_bf16(float(v)));  // rounded once
    const std::vector<float> x = randn(size_t(M * K), 940);
    std::vector<double> ref(size_t(M * N));
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
            double acc = bias[size_t(n)];
            for (int64_t c = 0; c < K; ++c) acc += double(x[size_t(m * K + c)]) * wp[size_t(n * K + c)];
            ref[size_t(m * N + n)] = acc;
        }
    const Tensor xin = ops::from_host(*be, DType::F32, {M, K}, x.data());
    const std::vector<uint16_t> w_before = wb;
    const Tensor y = linear_with_lora(l, xin, Activation::None, DType::F32, LoraApply::Patch);
    EXPECT_EQ(to_f64(linear_with_lora(l, xin, Activation::None, DType::F32, LoraApply::Patch)), to_f64(y))
        << "a second call differs: the first changed a branch";
    // CPU: f32 arithmetic on the same bf16 weight (a one-ulp tie at most); CUDA: the bf16 GEMM rounds x.
    EXPECT_CLOSE(to_f64(y), ref, std::string(be->kind()) == "cpu" ? 1e-5 : 1e-2, "patched bf16 Linear");
    std::vector<uint16_t> w_after(wb.size());
    be->download(l.w, w_after.data());
    EXPECT_EQ(w_after, w_before) << "patching must not change the base weight";
}

}  // namespace wanrt::test
