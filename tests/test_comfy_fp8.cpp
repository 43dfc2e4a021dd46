// ComfyUI FP8 checkpoints (io/comfy_source.h) and quantized umT5 files (GGUF with llama.cpp names, HF-named
// fp8): the fixtures made by scripts/fixtures/make_comfy_fixtures.py from dit_t2v / t5.
//  - the numpy fp8 encoder of the script and core/fp8.h give the same bytes for every weight;
//  - every tensor read through the adapter is decode(fp8) · scale exactly (f32), and the loader keeps it;
//  - the DiT on each fp8 file = the f32 DiT on the decoded weights (1e-5), and its distance to the
//    float64 golden is bounded per format (the fp8 rounding of the weights, documented in docs/formats.md);
//  - umT5 from GGUF (Q8_0 + F16) and from ComfyUI fp8 likewise;
//  - bad input: one-line errors naming the tensor, and `wanrt info` exits 1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <set>

#include "core/fp8.h"
#include "io/comfy_source.h"
#include "io/gguf.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/weights.h"
#include "test_util.h"

using namespace wanrt;
using namespace wanrt::test;

namespace {

struct DitFixture {
    const char* file;
    DType fp8;
    bool scaled;
    const char* prefix;
    double golden_tol;  // rel-L2 bound vs the float64 golden (measured ×~2, see docs/formats.md)
};
const DitFixture kDits[] = {
    {"comfy_dit_e4m3_scaled.safetensors", DType::F8E4M3, true, "model.diffusion_model.", 8e-2},
    {"comfy_dit_e4m3.safetensors", DType::F8E4M3, false, "model.diffusion_model.", 1e-1},
    {"comfy_dit_e5m2_scaled.safetensors", DType::F8E5M2, true, "diffusion_model.", 1.5e-1},
    {"comfy_dit_e5m2.safetensors", DType::F8E5M2, false, "model.diffusion_model.", 1.5e-1},
};

bool is_weight_name(const std::string& n) { return n.rfind("in.", 0) && n.rfind("out.", 0) && n.rfind("mid.", 0); }

float to_f32(const StoredTensor& st, size_t i) {
    float v = 0;
    convert_elements(static_cast<const uint8_t*>(st.data) + i * dtype_size(st.dtype), st.dtype, &v, DType::F32, 1);
    return v;
}
uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// The backend under test: CPU unless WANRT_TEST_DEVICE names another (the GPU keeps bf16 matrices
// and may run f16/f32 ones with other kernels: the "same weights" bound is then bf16's, 1e-2).
std::shared_ptr<Backend> test_backend() {
    auto device = test_device();
    return device ? device : make_cpu_backend(2);
}
double same_weights_tol(const Backend& be) { return be.name() == "cpu" ? 1e-5 : 1e-2; }

// Every tensor of src as f32, in a memory source (the "f32 model built from the decoded weights").
std::shared_ptr<MemoryTensorSource> decoded_copy(const TensorSource& src) {
    auto out = std::make_shared<MemoryTensorSource>(src.origin() + " (decoded to f32)");
    for (const std::string& n : src.names()) {
        const StoredTensor& st = *src.find(n);
        std::vector<float> v(size_t(shape_numel(st.shape)));
        convert_elements(st.data, st.dtype, v.data(), DType::F32, int64_t(v.size()));
        out->add(n, DType::F32, st.shape, v.data());
    }
    return out;
}

std::vector<Tensor> run_dit(const DitConfig& cfg, std::shared_ptr<TensorSource> w, Backend& be, const SafeTensorsFile& g,
                            int64_t seq_len) {
    DitModel model(cfg, std::move(w), be);
    std::vector<DitSample> batch;
    const std::vector<double> tv = load_f64(g, "in.t");
    for (size_t i = 0; g.find("in.x" + std::to_string(i)); ++i) {
        DitSample s;
        s.x = load_f32(be, g, "in.x" + std::to_string(i));
        s.context = load_f32(be, g, "in.context" + std::to_string(i));
        s.t = float(tv.at(i));
        batch.push_back(s);
    }
    return model.forward(batch, seq_len);
}

}  // namespace

// The script's numpy port of torch's casts and core/fp8.h agree on every weight (and scales are
// ComfyUI's absmax / fp8_max).
TEST(ComfyFp8, ScriptEncoderMatchesFp8h) {
    auto golden = open_fixture("dit_t2v.safetensors");
    for (const DitFixture& f : kDits) {
        auto src = open_comfy_safetensors(fixture_path(f.file));
        int checked = 0;
        for (const std::string& n : golden->names()) {
            if (!is_weight_name(n)) continue;
            const ComfyTensorSource::Raw r = src->raw(n);
            ASSERT_NE(r.data, nullptr) << f.file << " lacks " << n;
            if (r.data->dtype != f.fp8) continue;
            EXPECT_EQ(r.scaled, f.scaled) << n;
            const StoredTensor& w = *golden->find(n);
            const float mx = f.fp8 == DType::F8E4M3 ? 448.0f : 57344.0f;
            float absmax = 0;
            for (int64_t i = 0; i < shape_numel(w.shape); ++i) absmax = std::max(absmax, std::fabs(to_f32(w, size_t(i))));
            if (f.scaled) {
                EXPECT_EQ(bits(r.scale), bits(absmax / mx)) << n;
            }
            const uint8_t* q = static_cast<const uint8_t*>(r.data->data);
            for (int64_t i = 0; i < shape_numel(w.shape); ++i) {
                float x = to_f32(w, size_t(i));
                if (f.scaled) x = std::min(std::max(x / r.scale, -mx), mx);
                const uint8_t want = f.fp8 == DType::F8E4M3 ? f32_to_fp8_e4m3(x) : f32_to_fp8_e5m2(x);
                ASSERT_EQ(q[i], want) << f.file << " " << n << " element " << i;
            }
            ++checked;
        }
        EXPECT_GE(checked, 20) << f.file;
    }
}

// Names are the official ones (prefix gone, scale / marker keys consumed); every value is
// decode(fp8) · scale in f32 exactly, as find() returns it and as WeightLoader keeps it.
TEST(ComfyFp8, EveryWeightIsDecodeTimesScale) {
    auto golden = open_fixture("dit_t2v.safetensors");
    std::set<std::string> official;
    for (const std::string& n : golden->names())
        if (is_weight_name(n)) official.insert(n);
    auto be = make_cpu_backend(1);
    for (const DitFixture& f : kDits) {
        auto src = open_comfy_safetensors(fixture_path(f.file));
        EXPECT_EQ(src->prefix(), f.prefix);
        const std::vector<std::string> names = src->names();
        EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), official) << f.file;
        WeightLoader loader(src, *be);
        size_t scaled = 0;
        for (const std::string& n : names) {
            const ComfyTensorSource::Raw r = src->raw(n);
            const StoredTensor& st = *src->find(n);
            ASSERT_EQ(st.shape, r.data->shape);
            scaled += r.scaled;
            if (r.scaled) {
                EXPECT_EQ(st.dtype, DType::F32) << n;
            } else {
                EXPECT_EQ(st.dtype, r.data->dtype) << n << ": unscaled tensors are views as stored";
            }
            const Tensor p = loader.param(n, st.shape);
            const std::vector<float> loaded = ops::to_host_f32(p);
            const bool matrix = st.shape.size() == 2 && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0;
            std::vector<float> as_matrix;
            if (matrix) as_matrix = ops::to_host_f32(loader.matrix(n, st.shape));
            for (int64_t i = 0; i < shape_numel(st.shape); ++i) {
                const float want = to_f32(*r.data, size_t(i)) * r.scale;  // f32 product, one rounding
                ASSERT_EQ(bits(to_f32(st, size_t(i))), bits(want)) << f.file << " " << n << " [" << i << "] find()";
                ASSERT_EQ(bits(loaded[size_t(i)]), bits(want)) << f.file << " " << n << " [" << i << "] param()";
                if (matrix) ASSERT_EQ(bits(as_matrix[size_t(i)]), bits(want)) << n << " [" << i << "] matrix()";
            }
        }
        EXPECT_EQ(scaled, f.scaled ? src->scaled_count() : 0u);
        if (f.scaled) {
            EXPECT_GE(scaled, 20u) << f.file;
        }
        loader.finish();
    }
}

// An unscaled fp8 matrix stays exact and half the size of f32 on a backend without fp8 linears.
TEST(ComfyFp8, UnscaledFp8MatrixKeptAsBf16) {
    auto be = make_cpu_backend(1);
    auto src = open_comfy_safetensors(fixture_path("comfy_dit_e4m3.safetensors"));
    WeightLoader loader(src, *be);
    const StoredTensor& st = *src->find("blocks.0.ffn.0.weight");
    ASSERT_EQ(st.dtype, DType::F8E4M3);
    const Tensor m = loader.matrix("blocks.0.ffn.0.weight", st.shape);
    EXPECT_EQ(m.dtype(), DType::BF16);
}

// The DiT on each fp8 file: config from the shapes, forward = the f32 model on the decoded weights,
// and a bounded distance to the float64 golden.
TEST(ComfyFp8, DitForwardEqualsDecodedF32AndNearGolden) {
    auto golden = open_fixture("dit_t2v.safetensors");
    const DitConfig want = DitConfig::from_json(golden->metadata().at("config"), golden->origin());
    const int64_t seq_len = std::stoll(golden->metadata().at("seq_len"));
    auto be = test_backend();
    for (const DitFixture& f : kDits) {
        const DitCheckpoint ck = open_dit_checkpoint(fixture_path(f.file));
        ASSERT_NE(dynamic_cast<const ComfyTensorSource*>(ck.weights.get()), nullptr) << f.file;
        // Shapes give every field but the head count (dim / 128 rule; this tiny model has 2 heads) and
        // text_len (512 in every release; this model 16).
        DitConfig cfg = ck.config;
        EXPECT_EQ(cfg.num_heads, 1);
        EXPECT_EQ(cfg.text_len, 512);
        cfg.num_heads = want.num_heads;
        cfg.text_len = want.text_len;
        EXPECT_EQ(cfg.to_json(), want.to_json()) << f.file;

        const auto outs = run_dit(want, ck.weights, *be, *golden, seq_len);
        const auto ref = run_dit(want, decoded_copy(*ck.weights), *be, *golden, seq_len);
        ASSERT_EQ(outs.size(), 2u);
        for (size_t i = 0; i < outs.size(); ++i) {
            EXPECT_CLOSE(outs[i], to_f64(ref[i]), same_weights_tol(*be), cat(f.file, " y", i, " vs f32 on decoded weights"));
            EXPECT_CLOSE(outs[i], load_f64(*golden, cat("out.y", i)), f.golden_tol, cat(f.file, " y", i, " vs golden"));
        }
    }
}

// ---------------------------------------------------------------- umT5

namespace {

struct T5Golden {
    std::shared_ptr<SafeTensorsFile> file;
    T5Config cfg;
    std::vector<std::vector<int32_t>> ids;  // real tokens per sample
    std::vector<double> hidden;
    int64_t L = 0, D = 0;
};

T5Golden t5_golden() {
    T5Golden g;
    g.file = open_fixture("t5.safetensors");
    g.cfg = T5Config::from_json(g.file->metadata().at("config"));
    const Shape s = stored(*g.file, "in.ids").shape;
    g.L = s[1];
    g.D = stored(*g.file, "out.hidden").shape[2];
    const std::vector<double> ids = load_f64(*g.file, "in.ids"), mask = load_f64(*g.file, "in.mask");
    for (int64_t b = 0; b < s[0]; ++b) {
        std::vector<int32_t> v;
        for (int64_t i = 0; i < g.L; ++i)
            if (mask[size_t(b * g.L + i)] > 0) v.push_back(int32_t(ids[size_t(b * g.L + i)]));
        g.ids.push_back(v);
    }
    g.hidden = load_f64(*g.file, "out.hidden");
    return g;
}

// Each sample's real rows: vs the golden (tol) and vs the f32 model on the same decoded weights (1e-5).
void check_t5(const T5Encoder& enc, const T5Encoder& decoded, const T5Golden& g, double tol, const std::string& what) {
    EXPECT_EQ(enc.config.to_json(), g.cfg.to_json()) << what;
    for (size_t b = 0; b < g.ids.size(); ++b) {
        const int64_t n = int64_t(g.ids[b].size());
        const std::vector<double> out = to_f64(enc.encode(g.ids[b]));
        const std::vector<double> ref(g.hidden.begin() + int64_t(b) * g.L * g.D,
                                      g.hidden.begin() + int64_t(b) * g.L * g.D + n * g.D);
        EXPECT_CLOSE(out, to_f64(decoded.encode(g.ids[b])), same_weights_tol(*enc.backend),
                     cat(what, " sample ", b, " vs f32 on decoded weights"));
        EXPECT_CLOSE(out, ref, tol, cat(what, " sample ", b, " vs golden"));
    }
}

}  // namespace

// The llama.cpp names map exactly: the golden's own weights renamed to them give the golden output
// (f32 tolerance), so the quantized files' distance below is their rounding alone.
TEST(ComfyFp8, T5GgufNamesMapExactly) {
    const T5Golden g = t5_golden();
    auto be = make_cpu_backend(2);
    const std::map<std::string, std::string> block = {
        {"norm1.weight", "attn_norm.weight"},   {"attn.q.weight", "attn_q.weight"},
        {"attn.k.weight", "attn_k.weight"},     {"attn.v.weight", "attn_v.weight"},
        {"attn.o.weight", "attn_o.weight"},     {"pos_embedding.embedding.weight", "attn_rel_b.weight"},
        {"norm2.weight", "ffn_norm.weight"},    {"ffn.gate.0.weight", "ffn_gate.weight"},
        {"ffn.fc1.weight", "ffn_up.weight"},    {"ffn.fc2.weight", "ffn_down.weight"}};
    auto named = std::make_shared<MemoryTensorSource>("llama.cpp-named");
    for (const std::string& n : g.file->names()) {
        if (!is_weight_name(n)) continue;
        const StoredTensor& t = *g.file->find(n);
        std::string to = n == "token_embedding.weight" ? "token_embd.weight" : n == "norm.weight" ? "enc.output_norm.weight" : "";
        if (n.rfind("blocks.", 0) == 0) {
            const size_t dot = n.find('.', 7);
            to = "enc.blk." + n.substr(7, dot - 7) + "." + block.at(n.substr(dot + 1));
        }
        ASSERT_FALSE(to.empty()) << n;
        named->add(to, t.dtype, t.shape, t.data);
    }
    const float unused = 0;
    named->add("dec.blk.0.attn_q.weight", DType::F32, {1}, &unused);  // a full T5's decoder: ignored
    const T5Encoder enc = T5Encoder::load(named, *be);
    EXPECT_EQ(enc.config.to_json(), g.cfg.to_json());
    for (size_t b = 0; b < g.ids.size(); ++b) {
        const int64_t n = int64_t(g.ids[b].size());
        const std::vector<double> ref(g.hidden.begin() + int64_t(b) * g.L * g.D,
                                      g.hidden.begin() + int64_t(b) * g.L * g.D + n * g.D);
        EXPECT_CLOSE(to_f64(enc.encode(g.ids[b])), ref, 1e-4, cat("llama.cpp names, sample ", b));
    }
}

TEST(ComfyFp8, T5FromGgufQ8) {
    const T5Golden g = t5_golden();
    auto be = test_backend();
    const std::string path = fixture_path("t5_q8.gguf");
    const T5Encoder enc = T5Encoder::load_file(path, *be);
    // Q8_0 tensors arrive decoded (f32), F16 ones as stored (and are used as stored on every backend).
    EXPECT_EQ(enc.blocks[0].q.dtype(), DType::F32);
    EXPECT_EQ(enc.blocks[0].fc2.dtype(), DType::F16);
    EXPECT_EQ(enc.token_embedding.dtype(), DType::F16);
    const T5Encoder dec = T5Encoder::load(decoded_copy(*GgufTensorSource::open(path)), *be);
    check_t5(enc, dec, g, 5e-2, "t5_q8.gguf");
}

TEST(ComfyFp8, T5FromComfyFp8) {
    const T5Golden g = t5_golden();
    auto be = test_backend();
    const std::string path = fixture_path("comfy_t5_fp8.safetensors");
    const T5Encoder enc = T5Encoder::load_file(path, *be);
    EXPECT_EQ(enc.blocks[0].q.dtype(), DType::F32);          // scaled: decoded
    EXPECT_EQ(enc.token_embedding.dtype(), DType::BF16);     // unscaled fp8: widened exactly
    auto src = open_comfy_safetensors(path);
    EXPECT_TRUE(src->has_marker());
    EXPECT_EQ(src->scaled_count(), size_t(7 * g.cfg.num_layers));
    // The widened embedding holds the fp8 values exactly.
    const StoredTensor& e8 = *src->find("shared.weight");
    const std::vector<float> e = ops::to_host_f32(enc.token_embedding);
    for (int64_t i = 0; i < shape_numel(e8.shape); ++i) ASSERT_EQ(bits(e[size_t(i)]), bits(to_f32(e8, size_t(i)))) << i;
    const T5Encoder dec = T5Encoder::load(decoded_copy(*src), *be);
    check_t5(enc, dec, g, 3e-1, "comfy_t5_fp8");
}

// ---------------------------------------------------------------- bad input

namespace {

std::shared_ptr<MemoryTensorSource> tiny_comfy(const std::string& prefix = "model.diffusion_model.") {
    auto m = std::make_shared<MemoryTensorSource>("bad.safetensors");
    const uint8_t w[4] = {0x38, 0x40, 0xB8, 0x00};
    m->add(prefix + "blocks.0.ffn.0.weight", DType::F8E4M3, {2, 2}, w);
    const float s = 0.5f, one = 1.0f;
    m->add(prefix + "blocks.0.ffn.0.scale_weight", DType::F32, {}, &s);
    m->add(prefix + "blocks.0.ffn.0.scale_input", DType::F32, {}, &one);
    const float b[2] = {0.25f, -1.0f};
    m->add(prefix + "blocks.0.ffn.0.bias", DType::F32, {2}, b);
    return m;
}

}  // namespace

TEST(ComfyFp8, BadInputIsOneLineNamingTheTensor) {
    // The good tiny file reads: scale applied, scale_input consumed.
    {
        ComfyTensorSource ok(tiny_comfy());
        EXPECT_EQ(ok.names(), (std::vector<std::string>{"blocks.0.ffn.0.bias", "blocks.0.ffn.0.weight"}));
        const StoredTensor& w = *ok.find("blocks.0.ffn.0.weight");
        EXPECT_EQ(static_cast<const float*>(w.data)[0], 0.5f);  // 0x38 = 1.0, times 0.5
        EXPECT_EQ(static_cast<const float*>(w.data)[2], -0.5f);
        EXPECT_NE(ok.raw("blocks.0.ffn.0.weight").input_scale, nullptr);
    }
    const std::string P = "model.diffusion_model.";
    {  // scale of two elements
        auto m = tiny_comfy();
        const float s2[2] = {1, 2};
        m->add(P + "blocks.0.ffn.2.weight", DType::F8E4M3, {2, 2}, s2);
        m->add(P + "blocks.0.ffn.2.scale_weight", DType::F32, {2}, s2);
        expect_error([&] { ComfyTensorSource s(m); }, {"[comfy]", "bad.safetensors", "blocks.0.ffn.2.scale_weight", "[2]",
                                                       "one element"});
    }
    {  // scale of an integer / fp8 dtype
        for (DType dt : {DType::I64, DType::F8E4M3}) {
            auto m = tiny_comfy();
            const int64_t v = 1;
            m->add(P + "blocks.0.ffn.2.weight", DType::F8E4M3, {1, 1}, &v);
            m->add(P + "blocks.0.ffn.2.scale_weight", dt, {}, &v);
            expect_error([&] { ComfyTensorSource s(m); }, {"[comfy]", "blocks.0.ffn.2.scale_weight", dtype_name(dt)});
        }
    }
    {  // non-finite scale
        auto m = tiny_comfy();
        const float inf = INFINITY;
        m->add(P + "blocks.0.ffn.2.weight", DType::F8E4M3, {1, 1}, &inf);
        m->add(P + "blocks.0.ffn.2.scale_weight", DType::F32, {}, &inf);
        expect_error([&] { ComfyTensorSource s(m); }, {"[comfy]", "blocks.0.ffn.2.scale_weight", "finite"});
    }
    {  // a scale without its weight
        auto m = tiny_comfy();
        const float s = 1;
        m->add(P + "blocks.0.ffn.2.scale_weight", DType::F32, {}, &s);
        expect_error([&] { ComfyTensorSource s(m); }, {"[comfy]", "blocks.0.ffn.2.scale_weight", "no weight"});
    }
    {  // both spellings on one layer
        auto m = tiny_comfy();
        const float s = 1;
        m->add(P + "blocks.0.ffn.0.weight_scale", DType::F32, {}, &s);
        expect_error([&] { ComfyTensorSource s(m); }, {"[comfy]", "two weight scales", "blocks.0.ffn.0"});
    }
    {  // prefixes mixed: another model's tensors in the same file, or an unprefixed one
        for (const std::string other : {"first_stage_model.encoder.conv1.weight", "blocks.1.ffn.0.weight",
                                        "diffusion_model.blocks.1.ffn.0.weight"}) {
            auto m = tiny_comfy();
            const float v = 1;
            m->add(other, DType::F32, {1}, &v);
            expect_error([&] { ComfyTensorSource s(m); }, {"[comfy]", "'" + other + "'", "lacks the prefix", P});
        }
    }
    {  // a comfy_quant format other than per-tensor fp8
        auto m = tiny_comfy("diffusion_model.");
        const std::string j = R"({"format": "nvfp4"})";
        m->add("diffusion_model.blocks.0.ffn.0.comfy_quant", DType::U8, {int64_t(j.size())}, j.data());
        expect_error([&] { ComfyTensorSource s(m); }, {"[comfy]", "diffusion_model.blocks.0.ffn.0", "nvfp4"});
    }
    {  // unknown companion keys pass through: the model's loader names them
        auto m = tiny_comfy();
        const float v = 1;
        m->add(P + "blocks.0.ffn.0.weight_scale_2", DType::F32, {}, &v);
        auto s = std::make_shared<ComfyTensorSource>(m);
        auto be = make_cpu_backend(1);
        WeightLoader l(s, *be);
        l.param("blocks.0.ffn.0.weight", {2, 2});
        l.param("blocks.0.ffn.0.bias", {2});
        expect_error([&] { l.finish(); }, {"[weights]", "blocks.0.ffn.0.weight_scale_2"});
    }
}

TEST(ComfyFp8, T5GgufMissingBlock) {
    auto be = make_cpu_backend(1);
    // The file lost its last block: the block count in the metadata says so.
    expect_error([&] { T5Encoder::load_file(fixture_path("t5_q8_noblock1.gguf"), *be); },
                 {"[t5]", "t5_q8_noblock1.gguf", "t5encoder.block_count is 2", "1 encoder blocks"});
    // A hole in the middle: the missing tensors are named as the file spells them.
    auto src = GgufTensorSource::open(fixture_path("t5_q8.gguf"));
    auto holed = std::make_shared<MemoryTensorSource>("holed.gguf");
    for (const std::string& n : src->names()) {
        if (n.rfind("enc.blk.0.", 0) == 0) continue;
        const StoredTensor& t = *src->find(n);
        holed->add(n, t.dtype, t.shape, t.data);
    }
    expect_error([&] { T5Encoder::load(holed, *be); }, {"[t5]", "holed.gguf", "missing", "enc.blk.0.attn_norm.weight"});
}

TEST(ComfyFp8, InfoOnComfyFile) {
    const CliRun ok = run_cli("info " + fixture_path("comfy_dit_e4m3_scaled.safetensors"));
    EXPECT_EQ(ok.code, 0) << ok.out;
    for (const char* s : {"ComfyUI", "model.diffusion_model.", "scaled_fp8 marker", "f8_e4m3", "complete"})
        EXPECT_NE(ok.out.find(s), std::string::npos) << s << " not in:\n" << ok.out;
    // A broken file: exit 1, one error line naming the tensor.
    TempDir d;
    const uint8_t w[4] = {0x38, 0x38, 0x38, 0x38};
    const float s2[2] = {1, 2};
    write_safetensors(d / "bad.safetensors",
                      {{"model.diffusion_model.head.head.weight", DType::F8E4M3, {2, 2}, w},
                       {"model.diffusion_model.head.head.scale_weight", DType::F32, {2}, s2}});
    const CliRun bad = run_cli("info " + d / "bad.safetensors");
    EXPECT_EQ(bad.code, 1) << bad.out;
    EXPECT_NE(bad.out.find("head.head.scale_weight"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("[comfy]"), std::string::npos) << bad.out;
}

// ---------------------------------------------------------------- a model folder with ComfyUI files

namespace {

namespace fs = std::filesystem;

// Tensors to write, owning their bytes.
struct Writer {
    std::vector<TensorToWrite> list;
    std::deque<std::vector<uint8_t>> bytes;
    void add(const std::string& name, DType dt, const Shape& shape, std::vector<uint8_t> b) {
        bytes.push_back(std::move(b));
        list.push_back({name, dt, shape, bytes.back().data()});
    }
    void add_f32(const std::string& name, const Shape& shape, const std::vector<float>& v) {
        std::vector<uint8_t> b(v.size() * 4);
        std::memcpy(b.data(), v.data(), b.size());
        add(name, DType::F32, shape, std::move(b));
    }
    void copy(const std::string& name, const StoredTensor& t) {
        const uint8_t* p = static_cast<const uint8_t*>(t.data);
        add(name, t.dtype, t.shape, std::vector<uint8_t>(p, p + t.nbytes));
    }
};

std::vector<float> values(const StoredTensor& t) {
    std::vector<float> v(size_t(shape_numel(t.shape)));
    convert_elements(t.data, t.dtype, v.data(), DType::F32, int64_t(v.size()));
    return v;
}

// A linear weight as ComfyUI's scaled e4m3fn: name → fp8 bytes + `<layer>.scale_weight`.
void add_scaled_e4m3(Writer& w, const std::string& name, const StoredTensor& t) {
    const std::vector<float> v = values(t);
    float absmax = 0;
    for (float x : v) absmax = std::max(absmax, std::fabs(x));
    const float scale = absmax > 0 ? absmax / 448.0f : 1.0f;
    std::vector<uint8_t> q(v.size());
    for (size_t i = 0; i < v.size(); ++i) q[i] = f32_to_fp8_e4m3(std::min(std::max(v[i] / scale, -448.0f), 448.0f));
    w.add(name, DType::F8E4M3, t.shape, std::move(q));
    w.add_f32(name.substr(0, name.size() - 7) + ".scale_weight", {}, {scale});
}

bool is_linear_weight(const std::string& n, const StoredTensor& t) {
    return t.shape.size() == 2 && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0;
}

}  // namespace

// `wanrt synth` demo folder with its DiT and umT5 replaced by ComfyUI scaled-fp8 files (under the folder's
// file names) generates, and gives the same video bytes as the folder holding those weights decoded to f32.
TEST(ComfyFp8, ModelFolderWithComfyFilesGenerates) {
    TempDir d;
    const std::string comfy = d / "comfy", decoded = d / "decoded";
    CliRun s = run_cli("synth --model demo --full_folder --out " + comfy);
    ASSERT_EQ(s.code, 0) << s.out;
    fs::copy(comfy, decoded, fs::copy_options::recursive);
    const std::string dit = "diffusion_pytorch_model.safetensors", t5pth = "models_t5_umt5-xxl-enc-bf16.pth",
                      t5st = "models_t5_umt5-xxl-enc-bf16.safetensors";
    {
        auto off = SafeTensorsFile::open(comfy + "/" + dit);
        Writer w;
        w.add("model.diffusion_model.scaled_fp8", DType::F8E4M3, {}, {0});
        for (const std::string& n : off->names()) {
            const StoredTensor& t = *off->find(n);
            if (is_linear_weight(n, t)) add_scaled_e4m3(w, "model.diffusion_model." + n, t);
            else w.copy("model.diffusion_model." + n, t);
        }
        write_safetensors(comfy + "/" + dit + ".tmp", w.list);
    }
    {
        auto pth = open_pth(comfy + "/" + t5pth);
        const std::map<std::string, std::string> block = {
            {"norm1.weight", "layer.0.layer_norm.weight"},
            {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
            {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
            {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
            {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
            {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
            {"norm2.weight", "layer.1.layer_norm.weight"},
            {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},
            {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},
            {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"}};
        Writer w;
        w.add("scaled_fp8", DType::F8E4M3, {}, {0});
        for (const std::string& n : pth->names()) {
            const StoredTensor& t = *pth->find(n);
            std::string hf = n == "token_embedding.weight" ? "shared.weight"
                             : n == "norm.weight"          ? "encoder.final_layer_norm.weight"
                                                           : "";
            if (n.rfind("blocks.", 0) == 0) {
                const size_t dot = n.find('.', 7);
                hf = "encoder.block." + n.substr(7, dot - 7) + "." + block.at(n.substr(dot + 1));
                if (is_linear_weight(n, t) && n.find("pos_embedding") == std::string::npos) {
                    add_scaled_e4m3(w, hf, t);
                    continue;
                }
            }
            ASSERT_FALSE(hf.empty()) << n;
            w.copy(hf, t);
        }
        write_safetensors(comfy + "/" + t5st, w.list);
    }
    fs::rename(comfy + "/" + dit + ".tmp", comfy + "/" + dit);
    fs::remove(comfy + "/" + t5pth);
    // The decoded twin: what the adapter reads, written in f32 under the folder's own names.
    for (const auto& [file, src] : {std::pair{dit, std::shared_ptr<TensorSource>(open_comfy_safetensors(comfy + "/" + dit))},
                                    std::pair{t5st, std::shared_ptr<TensorSource>(open_comfy_safetensors(comfy + "/" + t5st))}}) {
        Writer w;
        for (const std::string& n : src->names()) w.add_f32(n, src->find(n)->shape, values(*src->find(n)));
        write_safetensors(decoded + "/" + file, w.list);
    }
    fs::remove(decoded + "/" + t5pth);

    const CliRun info = run_cli("info " + comfy);
    EXPECT_EQ(info.code, 0) << info.out;
    EXPECT_NE(info.out.find("f8_e4m3"), std::string::npos) << info.out;
    const char* small = " --size 64*48 --frame_num 5 --sample_steps 2 --threads 2 --device cpu --base_seed 3";
    const CliRun a = run_cli("generate --ckpt_dir " + comfy + small + " --save_file " + d / "a.y4m");
    ASSERT_EQ(a.code, 0) << a.out;
    const CliRun b = run_cli("generate --ckpt_dir " + decoded + small + " --save_file " + d / "b.y4m");
    ASSERT_EQ(b.code, 0) << b.out;
    const std::string ya = read_file(d / "a.y4m"), yb = read_file(d / "b.y4m");
    EXPECT_GT(ya.size(), 1000u);
    EXPECT_TRUE(ya == yb) << "the ComfyUI folder's video differs from its decoded twin's";
}
