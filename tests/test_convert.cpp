// GGUF quantizers, the GGUF writer and `wanrt convert`.
// - quantizers: bit-exact against tests/fixtures/quantize_ref.safetensors (gguf-py for F16 … Q5_1,
//   ggml's C reference for the K-quants; tests/fixtures/make_quantize_ref.py), and against the bytes
//   gguf-py wrote into dit_q.gguf / gguf_types.gguf from gguf_ref.safetensors' `in.*` values;
//   quantize → dequantize error within each type's bound;
// - the writer: files our reader and the fixtures' layout agree on (KVs, alignment, 5-D tensors);
// - convert: dit_t2v weights → Q8_0 GGUF → the GGUF DiT loader → forward vs the golden; GGUF →
//   safetensors f32 = the dequantized GGUF exactly; dit_q.gguf → f32 → the same types round-trips the
//   blocks byte for byte where requantization is idempotent; bad inputs one line, exit 1, no file.
#include <cmath>
#include <fstream>

#include "io/comfy_source.h"
#include "io/diffusers_names.h"
#include "io/gguf.h"
#include "io/gguf_dit.h"
#include "io/gguf_quantize.h"
#include "io/gguf_writer.h"
#include "io/pth_writer.h"
#include "models/dit.h"
#include "pipeline/convert.h"
#include "test_util.h"

namespace wanrt::test {

namespace {

const std::vector<std::pair<std::string, GgmlType>> kRefTypes = {
    {"F16", GgmlType::F16},   {"BF16", GgmlType::BF16}, {"Q8_0", GgmlType::Q8_0}, {"Q4_0", GgmlType::Q4_0},
    {"Q4_1", GgmlType::Q4_1}, {"Q5_0", GgmlType::Q5_0}, {"Q5_1", GgmlType::Q5_1}, {"Q2_K", GgmlType::Q2_K},
    {"Q3_K", GgmlType::Q3_K}, {"Q4_K", GgmlType::Q4_K}, {"Q5_K", GgmlType::Q5_K}, {"Q6_K", GgmlType::Q6_K},
};

std::vector<float> as_f32(const StoredTensor& t) {
    EXPECT_EQ(t.dtype, DType::F32) << t.name;
    std::vector<float> v(t.nbytes / 4);
    std::memcpy(v.data(), t.data, t.nbytes);
    return v;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
        den += double(ref[i]) * ref[i];
    }
    return std::sqrt(num / den);
}

}  // namespace

// Every type, every row: the bytes equal the reference's, and our dequantizer gives gguf-py's values.
TEST(Quantize, BitExactAgainstReferences) {
    auto ref = open_fixture("quantize_ref.safetensors");
    const StoredTensor& in = stored(*ref, "in.x");
    ASSERT_EQ(in.shape.size(), 2u);
    const int64_t rows = in.shape[0], cols = in.shape[1];
    std::vector<float> x = as_f32(in);
    for (const auto& [name, type] : kRefTypes) {
        SCOPED_TRACE(name);
        const StoredTensor& want = stored(*ref, "q." + name);
        const size_t row_bytes = gguf_type_bytes(type, cols);
        ASSERT_EQ(want.nbytes, row_bytes * size_t(rows));
        std::vector<uint8_t> got(want.nbytes);
        gguf_quantize(type, x.data(), rows * cols, got.data());
        const uint8_t* w = static_cast<const uint8_t*>(want.data);
        int bad_rows = 0;
        for (int64_t r = 0; r < rows; ++r) {
            if (std::memcmp(got.data() + r * row_bytes, w + r * row_bytes, row_bytes) == 0) continue;
            size_t k = 0;
            while (got[r * row_bytes + k] == w[r * row_bytes + k]) ++k;
            ADD_FAILURE() << name << " row " << r << ": first differing byte " << k << " of " << row_bytes;
            ++bad_rows;
        }
        EXPECT_EQ(bad_rows, 0);
        // Row by row gives the same bytes as one call (rows are independent block sequences).
        std::vector<uint8_t> by_row(want.nbytes);
        for (int64_t r = 0; r < rows; ++r)
            gguf_quantize(type, x.data() + r * cols, cols, by_row.data() + r * row_bytes);
        EXPECT_EQ(by_row, got);
        std::vector<float> deq(size_t(rows * cols));
        const GgmlTypeInfo* ti = ggml_type_info(uint32_t(type));
        gguf_dequantize(type, got.data(), rows * cols / ti->block_elems, deq.data());
        EXPECT_EQ(deq, as_f32(stored(*ref, "deq." + name)));
    }
}

// The f16 rounding of every exponent and tie, against the exact nearest-even value computed in double.
TEST(Quantize, F16RoundingIsNumpys) {
    auto ulp_round = [](double v) {  // nearest-even f16 by brute force over the candidates
        if (std::isnan(v)) return 0x7e00;
        const double a = std::fabs(v);
        int best = 0;
        double bd = 1e300;
        for (int h = 0; h < 0x7c00; ++h) {
            double f = gguf_f16_to_f32(uint16_t(h));
            double d = std::fabs(f - a);
            if (d < bd || (d == bd && (h & 1) == 0)) bd = d, best = h;
        }
        if (a >= 65520.0) best = 0x7c00;
        return (std::signbit(v) ? 0x8000 : 0) | best;
    };
    std::vector<float> probes = {0.f,           -0.f,     1.f,     65504.f,      65519.99f, 65520.f,   1e-8f, 2.98e-8f,
                                 2.9802322e-8f, 5.96e-8f, 6.1e-5f, 6.097555e-5f, 0.1f,      -3.14159f, 1e5f};
    uint64_t s = 12345;
    for (int i = 0; i < 300; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = uint32_t(s >> 32);
        float f;
        std::memcpy(&f, &u, 4);
        if (std::isfinite(f) && std::fabs(f) < 1e6f) probes.push_back(f);
        probes.push_back(float(std::ldexp(double((u >> 8) & 0x7ff) + 0.5, -24 - int(u % 8))));  // ties near subnormals
    }
    for (float f : probes) EXPECT_EQ(gguf_f32_to_f16(f), ulp_round(f)) << f;
    const float inf = INFINITY, nan = NAN;
    EXPECT_EQ(gguf_f32_to_f16(inf), 0x7c00);
    EXPECT_EQ(gguf_f32_to_f16(-inf), 0xfc00);
    EXPECT_EQ(gguf_f32_to_f16(nan) & 0x7c00, 0x7c00);
    EXPECT_NE(gguf_f32_to_f16(nan) & 0x03ff, 0);
}

// gguf-py quantized the fixtures' tensors from gguf_ref.safetensors' in.* values: the same bytes.
TEST(Quantize, SameBytesAsTheGgufFixtures) {
    auto ref = open_fixture("gguf_ref.safetensors");
    int checked = 0;
    for (const char* file : {"gguf_types.gguf", "dit_q.gguf"}) {
        auto f = GgufFile::open(fixture_path(file));
        for (const GgufTensorInfo& t : f->tensors()) {
            const StoredTensor* in = ref->find("in." + t.name);
            if (!in) continue;
            const GgmlType type = GgmlType(t.type_id);
            if (!gguf_can_quantize(type)) continue;  // TQ1_0, TQ2_0: not a Wan type
            SCOPED_TRACE(std::string(file) + " " + t.name + " " + t.type->name);
            std::vector<float> x = as_f32(*in);
            std::vector<uint8_t> got(t.nbytes);
            gguf_quantize(type, x.data(), int64_t(x.size()), got.data());
            EXPECT_EQ(std::memcmp(got.data(), t.data, t.nbytes), 0);
            ++checked;
        }
    }
    EXPECT_GE(checked, 20);
}

// quantize → dequantize on Gaussian weights: the error of each type within its known range (bits per
// weight decide it: ~2^-bits relative), and a zero block stays exactly zero.
TEST(Quantize, RoundTripErrorWithinTypeBounds) {
    const int64_t n = 256 * 64;
    std::vector<float> x = randn(size_t(n), 7, 0.02f);
    std::fill(x.begin(), x.begin() + 256, 0.0f);
    struct Bound {
        GgmlType t;
        double lo, hi;
    };
    const std::vector<Bound> bounds = {
        {GgmlType::F32, 0, 0},          {GgmlType::F16, 1e-5, 6e-4},    {GgmlType::BF16, 1e-4, 4e-3},
        {GgmlType::Q8_0, 1e-3, 1e-2},   {GgmlType::Q6_K, 3e-3, 2.5e-2}, {GgmlType::Q5_K, 1e-2, 5e-2},
        {GgmlType::Q5_1, 1e-2, 6e-2},   {GgmlType::Q5_0, 1e-2, 6e-2},   {GgmlType::Q4_K, 2e-2, 1e-1},
        {GgmlType::Q4_1, 3e-2, 1.3e-1}, {GgmlType::Q4_0, 3e-2, 1.3e-1}, {GgmlType::Q3_K, 5e-2, 2.2e-1},
        {GgmlType::Q2_K, 1e-1, 4e-1},
    };
    for (const Bound& b : bounds) {
        const GgmlTypeInfo* ti = ggml_type_info(uint32_t(b.t));
        std::vector<uint8_t> q(gguf_type_bytes(b.t, n));
        gguf_quantize(b.t, x.data(), n, q.data());
        std::vector<float> y(static_cast<size_t>(n));
        gguf_dequantize(b.t, q.data(), n / ti->block_elems, y.data());
        const double e = rel_l2(y, x);
        EXPECT_GE(e, b.lo) << ti->name;
        EXPECT_LE(e, b.hi) << ti->name;
        for (int i = 0; i < 256; ++i) ASSERT_EQ(y[size_t(i)], 0.0f) << ti->name << " zero block, element " << i;
    }
}

// ---- the per-tensor rules ----

namespace {

std::map<std::string, std::string> plan_types(const DitConfig& c, const std::string& type, bool bf16 = false,
                                              KFallback fb = KFallback::Legacy) {
    ConvertPlanner p(*convert_target(type), fb);
    std::vector<ParamSpec> table = dit_param_table(c);
    std::stable_sort(table.begin(), table.end(),
                     [](const ParamSpec& a, const ParamSpec& b) { return wan_name_less(a.name, b.name); });
    std::map<std::string, std::string> m;
    for (const ParamSpec& s : table) {
        m[s.name] = ggml_type_info(uint32_t(p.plan(s.name, s.shape, bf16).type))->name;
    }
    return m;
}

}  // namespace

// The recipes of city96's Wan GGUFs on the real 1.3B / 14B shapes (fixtures README "dit_q.gguf").
TEST(ConvertRules, CityRecipesOnRealShapes) {
    DitConfig c = DitConfig::preset("t2v-1.3B");
    auto q4km = plan_types(c, "q4_k_m");
    EXPECT_EQ(q4km["patch_embedding.weight"], "F32");
    EXPECT_EQ(q4km["patch_embedding.bias"], "F32");
    EXPECT_EQ(q4km["blocks.3.modulation"], "F32");
    EXPECT_EQ(q4km["head.modulation"], "F32");
    EXPECT_EQ(q4km["blocks.3.norm3.weight"], "F32");
    EXPECT_EQ(q4km["text_embedding.0.weight"], "F16");
    EXPECT_EQ(q4km["time_projection.1.weight"], "F16");
    EXPECT_EQ(q4km["head.head.weight"], "F16");
    EXPECT_EQ(q4km["blocks.3.self_attn.q.weight"], "Q4_K");
    EXPECT_EQ(q4km["blocks.3.self_attn.v.weight"], "Q6_K");
    EXPECT_EQ(q4km["blocks.3.cross_attn.v.weight"], "Q6_K");
    EXPECT_EQ(q4km["blocks.3.ffn.0.weight"], "Q4_K");
    EXPECT_EQ(q4km["blocks.3.ffn.2.weight"], "Q6_K");
    EXPECT_EQ(plan_types(c, "q4_k_m", true)["head.head.weight"], "BF16");
    auto q3km = plan_types(c, "q3_k_m");  // the first two v (block 0's self and cross) Q5_K, then Q4_K
    EXPECT_EQ(q3km["blocks.0.self_attn.v.weight"], "Q5_K");
    EXPECT_EQ(q3km["blocks.0.cross_attn.v.weight"], "Q5_K");
    EXPECT_EQ(q3km["blocks.1.self_attn.v.weight"], "Q4_K");
    EXPECT_EQ(q3km["blocks.1.ffn.2.weight"], "Q4_K");
    EXPECT_EQ(q3km["blocks.1.ffn.0.weight"], "Q3_K");
    auto q4ks = plan_types(c, "q4_k_s");
    EXPECT_EQ(q4ks["blocks.1.cross_attn.v.weight"], "Q5_K");
    EXPECT_EQ(q4ks["blocks.2.self_attn.v.weight"], "Q4_K");
    EXPECT_EQ(q4ks["blocks.2.ffn.2.weight"], "Q5_K");
    EXPECT_EQ(plan_types(c, "q4_k")["blocks.2.ffn.2.weight"], "Q4_K");  // uniform
    EXPECT_EQ(plan_types(c, "q2_k")["blocks.2.self_attn.v.weight"], "Q3_K");
    EXPECT_EQ(plan_types(c, "q4_0")["blocks.2.ffn.2.weight"], "Q4_1");
    EXPECT_EQ(plan_types(c, "q5_0")["blocks.2.ffn.2.weight"], "Q5_1");
    EXPECT_EQ(plan_types(c, "q8_0")["blocks.2.ffn.2.weight"], "Q8_0");
    EXPECT_EQ(plan_types(c, "f16")["blocks.2.ffn.2.weight"], "F16");
    EXPECT_EQ(plan_types(c, "f16")["blocks.2.ffn.2.bias"], "F32");
    EXPECT_EQ(plan_types(c, "f32")["head.head.weight"], "F32");
    DitConfig i2v = DitConfig::preset("i2v-14B");
    auto i = plan_types(i2v, "q5_k_m");
    EXPECT_EQ(i["blocks.0.cross_attn.k_img.weight"], "Q5_K");
    EXPECT_EQ(i["blocks.0.cross_attn.v_img.weight"], "Q5_K");  // not ".v.weight"
    EXPECT_EQ(i["img_emb.proj.1.weight"], "F16");
}

// K-quants on rows that are not a multiple of 256: llama.cpp's table or F16 (city96's tool).
TEST(ConvertRules, KQuantFallbacks) {
    DitConfig c = DitConfig::preset("t2v-1.3B");
    c.dim = 160, c.num_heads = 2, c.ffn_dim = 512, c.num_layers = 1;  // rows of 160 (÷32, not ÷256) and 512
    auto q4km = plan_types(c, "q4_k_m");
    EXPECT_EQ(q4km["blocks.0.self_attn.q.weight"], "Q5_0");
    EXPECT_EQ(q4km["blocks.0.self_attn.v.weight"], "Q8_0");  // Q6_K → Q8_0
    EXPECT_EQ(q4km["blocks.0.ffn.0.weight"], "Q5_0");        // rows of 160
    EXPECT_EQ(q4km["blocks.0.ffn.2.weight"], "Q6_K");        // rows of 512
    EXPECT_EQ(plan_types(c, "q5_k")["blocks.0.ffn.0.weight"], "Q5_1");
    EXPECT_EQ(plan_types(c, "q4_k_m", false, KFallback::F16)["blocks.0.self_attn.q.weight"], "F16");
    c.dim = 72, c.num_heads = 1;  // rows of 72: not even 32-element blocks
    EXPECT_EQ(plan_types(c, "q4_k")["blocks.0.self_attn.q.weight"], "F16");
    EXPECT_EQ(plan_types(c, "q8_0")["blocks.0.self_attn.q.weight"], "F16");
    ConvertPlanner p(*convert_target("q6_k"), KFallback::Legacy);
    TensorType t = p.plan("blocks.0.self_attn.q.weight", {72, 72}, false);
    EXPECT_TRUE(t.fallback);
    EXPECT_NE(t.why.find("not a multiple of 256"), std::string::npos) << t.why;
    EXPECT_EQ(p.fallbacks(), 1);
}

TEST(ConvertRules, OfficialOrder) {
    std::vector<std::string> names = {"head.head.bias",
                                      "blocks.10.ffn.0.weight",
                                      "blocks.2.modulation",
                                      "head.modulation",
                                      "patch_embedding.weight",
                                      "blocks.2.self_attn.q.bias",
                                      "blocks.2.norm3.weight",
                                      "patch_embedding.bias",
                                      "blocks.2.self_attn.q.weight",
                                      "text_embedding.2.weight",
                                      "head.head.weight",
                                      "blocks.2.cross_attn.k.weight",
                                      "time_projection.1.weight",
                                      "blocks.2.self_attn.norm_k.weight"};
    std::sort(names.begin(), names.end(), wan_name_less);
    const std::vector<std::string> want = {"patch_embedding.bias",      "patch_embedding.weight",
                                           "text_embedding.2.weight",   "time_projection.1.weight",
                                           "blocks.2.modulation",       "blocks.2.self_attn.q.weight",
                                           "blocks.2.self_attn.q.bias", "blocks.2.self_attn.norm_k.weight",
                                           "blocks.2.norm3.weight",     "blocks.2.cross_attn.k.weight",
                                           "blocks.10.ffn.0.weight",    "head.modulation",
                                           "head.head.weight",          "head.head.bias"};
    EXPECT_EQ(names, want);
}

// ---- the writer ----

TEST(GgufWriter, LayoutOurReaderAndTheFixturesAgreeOn) {
    TempDir d;
    const std::string p = d / "w.gguf";
    std::vector<float> five(2 * 3 * 1 * 2 * 2), mat(4 * 64);
    for (size_t i = 0; i < five.size(); ++i) five[i] = float(i) * 0.5f;
    for (size_t i = 0; i < mat.size(); ++i) mat[i] = std::sin(float(i));
    std::vector<uint8_t> q(gguf_type_bytes(GgmlType::Q8_0, 256));
    gguf_quantize(GgmlType::Q8_0, mat.data(), 256, q.data());
    {
        GgufWriter w(p, 64);
        w.add_string("general.architecture", "wan");
        w.add_u32("general.file_type", 7);
        w.declare("a.weight", GgmlType::F32, {2, 3, 1, 2, 2});
        w.declare("b.weight", GgmlType::Q8_0, {4, 64});
        expect_error([&] { w.declare("b.weight", GgmlType::F32, {1}); }, {"[gguf]", "'b.weight'", "twice"});
        expect_error([&] { w.declare("c", GgmlType::Q4_K, {4, 64}); }, {"[gguf]", "'c'", "Q4_K", "256"});
        w.write(five.data(), 10);  // in pieces, across tensors
        w.write(reinterpret_cast<const uint8_t*>(five.data()) + 10, five.size() * 4 - 10);
        w.write(q.data(), q.size());
        EXPECT_FALSE(std::filesystem::exists(p)) << "nothing at the destination before finish()";
        w.finish();
    }
    auto f = GgufFile::open(p);
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->architecture(), "wan");
    ASSERT_EQ(f->kvs().size(), 3u);
    EXPECT_EQ(f->kvs()[0].key, "general.alignment");
    ASSERT_EQ(f->tensors().size(), 2u);
    EXPECT_EQ(f->tensors()[0].shape, (Shape{2, 3, 1, 2, 2}));
    EXPECT_EQ(f->tensors()[0].ggml_dims, (std::vector<int64_t>{2, 2, 1, 3, 2}));
    EXPECT_EQ(f->dequantize(f->tensors()[0]), five);
    EXPECT_EQ(f->tensors()[1].offset % 64, 0u);
    EXPECT_EQ(std::memcmp(f->tensors()[1].data, q.data(), q.size()), 0);
    EXPECT_EQ(f->file_size() % 64, 0u) << "the last tensor is padded too";
    // Destroyed before finish(): nothing left behind.
    {
        GgufWriter w(d / "gone.gguf");
        w.declare("a", GgmlType::F32, {4});
        w.write(five.data(), 8);
    }
    EXPECT_FALSE(std::filesystem::exists(d / "gone.gguf"));
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d.path), {}), 1) << "a temporary file was left";
}

// ---- convert ----

namespace {

// dit_t2v.safetensors' weights alone (the fixture also holds inputs and goldens).
std::string dit_weights(const TempDir& d) {
    auto f = open_fixture("dit_t2v.safetensors");
    std::vector<TensorToWrite> w;
    for (const std::string& n : f->names())
        if (n.rfind("in.", 0) && n.rfind("out.", 0) && n.rfind("mid.", 0)) {
            const StoredTensor* t = f->find(n);
            w.push_back({n, t->dtype, t->shape, t->data});
        }
    const std::string p = d / "dit.safetensors";
    write_safetensors(p, w);
    return p;
}

ConvertReport convert(const std::string& in, const std::string& out, const std::string& type, bool scaled = false) {
    ConvertOptions o;
    o.in = in, o.out = out, o.type = type, o.fp8_scaled = scaled, o.threads = 2;
    return convert_model(o);
}

// rel-L2 of both dit_t2v samples' forward on `weights` against the golden.
double dit_forward_error(std::shared_ptr<TensorSource> weights, const std::string& what) {
    auto g = open_fixture("dit_t2v.safetensors");
    DitConfig cfg = DitConfig::from_json(g->metadata().at("config"), g->origin());
    auto be = make_cpu_backend(2);
    DitModel model(cfg, weights, *be);
    std::vector<DitSample> ss(2);
    const std::vector<double> t = load_f64(*g, "in.t");
    for (int i = 0; i < 2; ++i) {
        ss[size_t(i)].x = load_f32(*be, *g, "in.x" + std::to_string(i));
        ss[size_t(i)].context = load_f32(*be, *g, "in.context" + std::to_string(i));
        ss[size_t(i)].t = float(t[size_t(i)]);
    }
    auto outs = model.forward(ss, std::stoll(g->metadata().at("seq_len")));
    std::vector<double> got, ref;
    for (int i = 0; i < 2; ++i) {
        std::vector<double> o = to_f64(outs[size_t(i)]), r = load_f64(*g, "out.y" + std::to_string(i));
        got.insert(got.end(), o.begin(), o.end());
        ref.insert(ref.end(), r.begin(), r.end());
    }
    Err e = compare(got, ref);
    std::printf("  %-40s rel-L2 %.3e  max abs %.3e\n", what.c_str(), e.rel_l2, e.max_abs);
    return e.rel_l2;
}

std::vector<float> st_f32(const TensorSource& s, const std::string& name) {
    const StoredTensor* t = s.find(name);
    EXPECT_NE(t, nullptr) << name;
    if (!t) return {};
    std::vector<float> v(size_t(shape_numel(t->shape)));
    convert_elements(t->data, t->dtype, v.data(), DType::F32, int64_t(v.size()));
    return v;
}

}  // namespace

// dit_t2v → Q8_0 GGUF: the layout of city96's files, gguf-py's bytes, and a forward close to the golden.
TEST(Convert, DitToQ8GgufLoadsAndRunsAsTheGolden) {
    TempDir d;
    const std::string in = dit_weights(d), out = d / "dit-q8_0.gguf";
    ConvertReport r = convert(in, out, "q8_0");
    EXPECT_EQ(r.fallbacks, 0);
    auto f = GgufFile::open(out);
    EXPECT_EQ(r.out_bytes, f->file_size());
    ASSERT_EQ(f->kvs().size(), 3u);
    EXPECT_EQ(f->kvs()[0].key, "general.architecture");
    EXPECT_EQ(f->kvs()[0].value.str, "wan");
    EXPECT_EQ(f->kvs()[1].key, "general.quantization_version");
    EXPECT_EQ(f->kvs()[1].value.u, 2u);
    EXPECT_EQ(f->kvs()[2].key, "general.file_type");
    EXPECT_EQ(f->kvs()[2].value.u, 7u);  // MOSTLY_Q8_0
    EXPECT_EQ(f->alignment(), 32u);
    EXPECT_EQ(f->tensors()[0].name, "patch_embedding.bias");
    EXPECT_EQ(f->tensors()[1].name, "patch_embedding.weight");
    EXPECT_EQ(f->tensors()[1].shape.size(), 5u);
    EXPECT_EQ(f->find_tensor("blocks.0.modulation")->ggml_dims, (std::vector<int64_t>{64, 6, 1}));
    EXPECT_STREQ(f->find_tensor("blocks.1.ffn.2.weight")->type->name, "Q8_0");
    EXPECT_STREQ(f->find_tensor("head.head.weight")->type->name, "F16");
    EXPECT_STREQ(f->find_tensor("time_projection.1.bias")->type->name, "F32");
    // The order of dit_q.gguf (the tools' order) for the names both files have.
    auto q = GgufFile::open(fixture_path("dit_q.gguf"));
    std::vector<std::string> ours, theirs;
    for (const auto& t : f->tensors()) ours.push_back(t.name);
    for (const auto& t : q->tensors())
        if (f->find_tensor(t.name)) theirs.push_back(t.name);
    EXPECT_EQ(ours, theirs);
    // Every Q8_0 tensor: the bytes of our quantizer on the source (checked against gguf-py above).
    auto src = SafeTensorsFile::open(in);
    for (const auto& t : f->tensors()) {
        if (t.type_id != uint32_t(GgmlType::Q8_0)) continue;
        std::vector<float> x = st_f32(*src, t.name);
        std::vector<uint8_t> want(t.nbytes);
        gguf_quantize(GgmlType::Q8_0, x.data(), int64_t(x.size()), want.data());
        EXPECT_EQ(std::memcmp(want.data(), t.data, t.nbytes), 0) << t.name;
    }
    DitConfig cfg = infer_dit_config(*f, 2);
    EXPECT_EQ(cfg.dim, 64);
    EXPECT_EQ(cfg.num_layers, 2);
    EXPECT_LE(dit_forward_error(std::make_shared<GgufTensorSource>(f), "q8_0 GGUF forward vs golden"), 1e-2);
    // f32 GGUF: the weights unchanged, the forward as the f32 golden test's.
    convert(in, d / "dit-f32.gguf", "f32");
    EXPECT_LE(dit_forward_error(GgufTensorSource::open(d / "dit-f32.gguf"), "f32 GGUF forward vs golden"), 1e-4);
}

// GGUF → safetensors f32: every tensor equals the GGUF's dequantization exactly.
TEST(Convert, GgufToF32SafetensorsIsTheDequantization) {
    TempDir d;
    const std::string out = d / "dit_q-f32.safetensors";
    auto q = GgufFile::open(fixture_path("dit_q.gguf"));
    ConvertReport r = convert(fixture_path("dit_q.gguf"), out, "f32");
    EXPECT_EQ(r.tensors.size(), q->tensors().size());
    auto st = SafeTensorsFile::open(out);
    for (const GgufTensorInfo& t : q->tensors()) {
        const StoredTensor* s = st->find(t.name);
        ASSERT_NE(s, nullptr) << t.name;
        EXPECT_EQ(s->dtype, DType::F32) << t.name;
        EXPECT_EQ(s->shape, t.shape) << t.name;
        EXPECT_EQ(st_f32(*st, t.name), q->dequantize(t)) << t.name;
    }
}

// dit_q.gguf → f32 safetensors → GGUF of each type: the tensors that get their original type back are
// byte-identical where requantizing dequantized blocks is idempotent (F32, F16 and the symmetric
// types: the block's largest |x| is exactly ±levels·d); the others decode within one step.
// GGUF → GGUF: tensors already in the planned type are copied.
TEST(Convert, DitQRoundTripsPerTensor) {
    TempDir d;
    const std::string f32 = d / "f32.safetensors";
    convert(fixture_path("dit_q.gguf"), f32, "f32");
    auto q = GgufFile::open(fixture_path("dit_q.gguf"));
    int identical = 0, compared = 0;
    for (const char* type : {"q8_0", "q4_0", "q5_0", "q4_1", "q5_1", "q6_k", "q5_k_m", "q4_k_m"}) {
        const std::string out = d / (std::string(type) + ".gguf");
        convert(f32, out, type);
        auto g = GgufFile::open(out);
        for (const GgufTensorInfo& t : q->tensors()) {
            const GgufTensorInfo* o = g->find_tensor(t.name);
            ASSERT_NE(o, nullptr) << t.name;
            if (o->type_id != t.type_id) continue;
            ++compared;
            const bool same = o->nbytes == t.nbytes && std::memcmp(o->data, t.data, t.nbytes) == 0;
            identical += same;
            const GgmlType ty = GgmlType(t.type_id);
            const bool idempotent = ty == GgmlType::F32 || ty == GgmlType::F16 || ty == GgmlType::Q8_0 ||
                                    ty == GgmlType::Q4_0 || ty == GgmlType::Q5_0;
            if (idempotent) EXPECT_TRUE(same) << type << " " << t.name << " " << t.type->name;
            if (!same) {
                std::vector<float> a = q->dequantize(t), b = g->dequantize(*o);
                EXPECT_LE(rel_l2(b, a), 0.1) << type << " " << t.name << " " << t.type->name;
            }
        }
        // Straight from the GGUF: same-type tensors are copied, byte for byte.
        const std::string direct = d / (std::string("direct-") + type + ".gguf");
        ConvertReport r = convert(fixture_path("dit_q.gguf"), direct, type);
        auto g2 = GgufFile::open(direct);
        for (const ConvertedTensor& c : r.tensors) {
            const GgufTensorInfo* a = q->find_tensor(c.name);
            const GgufTensorInfo* b = g2->find_tensor(c.name);
            EXPECT_EQ(c.copied, a->type_id == b->type_id) << c.name;
            if (c.copied) EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << c.name;
        }
    }
    std::printf("  %d of %d same-type tensors byte-identical after GGUF → f32 → GGUF\n", identical, compared);
    EXPECT_GT(compared, 40);
}

// fp8: the block linears in float8 (scaled: fp8 · scale_weight ≈ the weight), the rest as planned.
TEST(Convert, Fp8SafetensorsScaledAndNot) {
    TempDir d;
    const std::string in = dit_weights(d);
    auto src = SafeTensorsFile::open(in);
    for (bool scaled : {false, true}) {
        for (const char* type : {"fp8_e4m3", "fp8_e5m2"}) {
            const std::string out = d / (std::string(type) + (scaled ? "-scaled" : "") + ".safetensors");
            convert(in, out, type, scaled);
            auto st = SafeTensorsFile::open(out);
            const DType want = std::string(type) == "fp8_e4m3" ? DType::F8E4M3 : DType::F8E5M2;
            const StoredTensor* w = st->find("blocks.0.ffn.0.weight");
            ASSERT_NE(w, nullptr);
            EXPECT_EQ(w->dtype, want);
            EXPECT_EQ(st->find("blocks.0.ffn.0.bias")->dtype, DType::F32);
            EXPECT_EQ(st->find("head.head.weight")->dtype, DType::F16);
            EXPECT_EQ(st->find("scaled_fp8") != nullptr, scaled);
            EXPECT_EQ(st->find("blocks.0.ffn.0.scale_weight") != nullptr, scaled);
            std::vector<float> x = st_f32(*src, "blocks.0.ffn.0.weight"), y = st_f32(*st, "blocks.0.ffn.0.weight");
            float scale = 1;
            if (scaled) {
                scale = st_f32(*st, "blocks.0.ffn.0.scale_weight").at(0);
                float amax = 0;
                for (float v : x) amax = std::max(amax, std::fabs(v));
                EXPECT_EQ(scale, amax / (want == DType::F8E4M3 ? 448.0f : 57344.0f));
                for (float& v : y) v *= scale;
            }
            const double e = rel_l2(y, x);
            std::printf("  %s%s rel-L2 of a linear weight %.3e\n", type, scaled ? " scaled" : "", e);
            EXPECT_LE(e, want == DType::F8E4M3 ? 0.05 : 0.1) << type;
            // Unscaled fp8 files load as they are (the loader widens fp8 exactly).
            if (!scaled)
                EXPECT_LE(dit_forward_error(st, std::string(type) + " safetensors forward vs golden"),
                          want == DType::F8E4M3 ? 0.04 : 0.08);
        }
    }
}

// ComfyUI fp8 files in (tests/fixtures/comfy_dit_*: dit_t2v's weights in ComfyUI's four layouts).
// f32 out: official names only (no scale_weight / scale_input / scaled_fp8 / prefix), each tensor bit
// for bit the value the loader gets (fp8 · scale_weight, one f32 rounding: ComfyTensorSource::find()).
// q8_0 GGUF out: each Q8_0 tensor the quantizer's bytes on those values, the F32 ones equal to them.
// fp8 out of the same fp8 type from an unscaled file: the weights copied as they are. And the f32
// output runs the DiT as near the golden as the fp8 file itself (test_comfy_fp8's bounds).
TEST(Convert, ComfyFp8InputsConvert) {
    struct Case {
        const char* file;
        bool scaled;
        const char* fp8_type;
        double golden_tol;
    };
    const Case cases[] = {
        {"comfy_dit_e4m3_scaled.safetensors", true, "fp8_e4m3", 8e-2},
        {"comfy_dit_e4m3.safetensors", false, "fp8_e4m3", 1e-1},
        {"comfy_dit_e5m2_scaled.safetensors", true, "fp8_e5m2", 1.5e-1},
        {"comfy_dit_e5m2.safetensors", false, "fp8_e5m2", 1.5e-1},
    };
    TempDir d;
    for (const Case& c : cases) {
        SCOPED_TRACE(c.file);
        const std::string in = fixture_path(c.file);
        auto comfy = open_comfy_safetensors(in);
        const std::string f32 = d / (std::string(c.file) + ".f32.safetensors");
        ConvertReport r = convert(in, f32, "f32");
        EXPECT_EQ(r.input_kind, "safetensors");
        auto st = SafeTensorsFile::open(f32);
        const std::vector<std::string> names = comfy->names();
        EXPECT_EQ(st->names(), names);
        int scaled = 0;
        for (const std::string& n : names) {
            const StoredTensor* got = st->find(n);
            ASSERT_NE(got, nullptr) << n;
            EXPECT_EQ(got->dtype, DType::F32) << n;
            EXPECT_EQ(got->shape, comfy->find(n)->shape) << n;
            const std::vector<float> want = st_f32(*comfy, n);
            ASSERT_EQ(got->nbytes, want.size() * 4) << n;
            EXPECT_EQ(std::memcmp(got->data, want.data(), got->nbytes), 0) << n << " differs from the loader's values";
            scaled += comfy->raw(n).scaled;
        }
        EXPECT_EQ(scaled, c.scaled ? int(comfy->scaled_count()) : 0);
        if (c.scaled) EXPECT_GE(scaled, 20);

        const std::string q8 = d / (std::string(c.file) + ".q8_0.gguf");
        convert(in, q8, "q8_0");
        auto g = GgufFile::open(q8);
        int q = 0;
        for (const GgufTensorInfo& t : g->tensors()) {
            const std::vector<float> x = st_f32(*comfy, t.name);
            if (t.type_id == uint32_t(GgmlType::Q8_0)) {
                std::vector<uint8_t> want(t.nbytes);
                gguf_quantize(GgmlType::Q8_0, x.data(), int64_t(x.size()), want.data());
                EXPECT_EQ(std::memcmp(want.data(), t.data, t.nbytes), 0) << t.name;
                ++q;
            } else if (t.type_id == uint32_t(GgmlType::F32)) {
                EXPECT_EQ(g->dequantize(t), x) << t.name;
            }
        }
        EXPECT_GT(q, 10);

        if (!c.scaled) {
            const std::string fp8 = d / (std::string(c.file) + ".fp8.safetensors");
            ConvertReport rf = convert(in, fp8, c.fp8_type);
            auto out = SafeTensorsFile::open(fp8);
            int copied = 0;
            for (const ConvertedTensor& ct : rf.tensors) {
                const ComfyTensorSource::Raw raw = comfy->raw(ct.name);
                const StoredTensor* o = out->find(ct.name);
                ASSERT_TRUE(raw.data && o) << ct.name;
                if (raw.data->dtype != o->dtype) continue;
                EXPECT_TRUE(ct.copied) << ct.name;
                EXPECT_EQ(std::memcmp(raw.data->data, o->data, o->nbytes), 0) << ct.name;
                copied += o->dtype == DType::F8E4M3 || o->dtype == DType::F8E5M2;
            }
            EXPECT_GE(copied, 20);
        }
        EXPECT_LE(dit_forward_error(st, std::string(c.file) + " → f32 forward vs golden"), c.golden_tol);
    }
}

// Bad input: one line on stderr, exit 1, no output file (and no temporary file) left.
TEST(Convert, BadInputIsOneLineExitOneNoFile) {
    TempDir d;
    const std::string in = dit_weights(d);
    std::filesystem::create_directories(d.path / "outdir");
    std::vector<TensorToWrite> other = {{"foo.weight", DType::F32, {4}, std::vector<float>(4).data()}};
    std::vector<float> zeros(4);
    other[0].data = zeros.data();
    write_safetensors(d / "other.safetensors", other);
    std::ofstream(d / "notes.txt") << "hello";
    struct Case {
        std::string args, expect, out;
    };
    const std::string o = d / "o.gguf";
    const std::vector<Case> cases = {
        {in + " " + o + " --type q9_9", "unknown --type", o},
        {in + " " + (d / "outdir") + " --type q8_0", "is a folder", ""},
        {d / "notes.txt" + std::string(" ") + o + " --type q8_0", "is not a model folder", o},
        {d / "other.safetensors" + std::string(" ") + o + " --type q8_0", "not a Wan DiT", o},
        {d / "missing.safetensors" + std::string(" ") + o + " --type q8_0", "does not exist", o},
        {in + " " + o + " --type q4_k_m", "fall back", o},
        {in + " " + (d / "o.safetensors") + " --type q4_0", "GGUF type", d / "o.safetensors"},
        {in + " " + (d / "o2.gguf") + " --type fp8_e4m3", "writes safetensors", d / "o2.gguf"},
        {in + " " + (d / "o.bin") + " --type q8_0", "must end in .gguf or .safetensors", d / "o.bin"},
        {in + " " + (d / "o3.gguf") + " --type q8_0 --fp8_scaled", "fp8_e4m3 / fp8_e5m2 only", d / "o3.gguf"},
        {fixture_path("gguf_types.gguf") + " " + o + " --type q8_0", "not 'wan'", o},
        {in + " " + o + " --type q8_0 --threads -1", "--threads", o},
        {in + " " + o + " --type q8_0 --k_fallback ggml", "--k_fallback", o},
    };
    for (const Case& c : cases) {
        CliRun r = run_cli("convert " + c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        if (!c.out.empty()) EXPECT_FALSE(std::filesystem::exists(c.out)) << c.args;
    }
    for (const auto& e : std::filesystem::directory_iterator(d.path))
        EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

// The command end to end: progress, summary, --info writes nothing.
TEST(Convert, CliRunsAndReports) {
    TempDir d;
    const std::string in = dit_weights(d), out = d / "m.gguf";
    CliRun info = run_cli("convert " + in + " " + out + " --type q4_0 --info");
    ASSERT_EQ(info.code, 0) << info.out;
    EXPECT_NE(info.out.find("blocks.1.ffn.2.weight"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("Q4_1"), std::string::npos) << info.out;  // q4_0's ffn.2 rule
    EXPECT_FALSE(std::filesystem::exists(out));
    CliRun r = run_cli("convert " + in + " " + out + " --type q4_0");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("[69/69] 100%"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("bits/weight"), std::string::npos) << r.out;
    EXPECT_TRUE(std::filesystem::exists(out));
    CliRun again = run_cli("convert " + out + " " + (d / "m.safetensors") + " --type bf16");
    ASSERT_EQ(again.code, 0) << again.out;
    auto st = SafeTensorsFile::open(d / "m.safetensors");
    EXPECT_EQ(st->find("blocks.0.ffn.0.weight")->dtype, DType::BF16);
    EXPECT_EQ(st->find("blocks.0.ffn.0.bias")->dtype, DType::F32);
    // Some rows fall back (dit_q's 64-wide rows), the 512-wide ffn.2 does not: each fallback is a line.
    CliRun fb = run_cli("convert " + fixture_path("dit_q.gguf") + " " + (d / "q6.gguf") + " --type q6_k");
    ASSERT_EQ(fb.code, 0) << fb.out;
    EXPECT_NE(fb.out.find("blocks.0.self_attn.q.weight: rows of 64 not a multiple of 256 for Q6_K: fallback → Q8_0"),
              std::string::npos)
        << fb.out;
    EXPECT_NE(fb.out.find(" 27 fallbacks"), std::string::npos) << fb.out;
    EXPECT_STREQ(GgufFile::open(d / "q6.gguf")->find_tensor("blocks.0.ffn.2.weight")->type->name, "Q6_K");
}

// The same weights as an official folder, a torch .pth with a "model." wrapper level, a diffusers
// transformer folder and a sharded set: the same GGUF, byte for byte.
TEST(Convert, EveryInputKindGivesTheSameFile) {
    TempDir d;
    const std::string in = dit_weights(d);
    convert(in, d / "ref.gguf", "q8_0");
    const std::string ref = read_file(d.path / "ref.gguf");
    auto src = SafeTensorsFile::open(in);
    auto g = open_fixture("dit_t2v.safetensors");
    DitConfig cfg = DitConfig::from_json(g->metadata().at("config"), g->origin());
    cfg.text_len = 512;  // the only text_len diffusers configs have; not in the weights
    namespace fs = std::filesystem;
    // official folder
    fs::create_directories(d.path / "official");
    fs::copy_file(in, d.path / "official" / "diffusion_pytorch_model.safetensors");
    std::ofstream(d.path / "official" / "config.json") << cfg.to_json();
    // .pth with the wrapper level convert.py also removes
    {
        PthWriter w(d / "dit.pth");
        for (const std::string& n : src->names()) {
            const StoredTensor* t = src->find(n);
            w.add("model." + n, t->dtype, t->shape, t->data);
        }
        w.finish();
    }
    // diffusers transformer folder
    fs::create_directories(d.path / "transformer");
    {
        std::vector<TensorToWrite> w;
        for (const std::string& n : src->names()) {
            const StoredTensor* t = src->find(n);
            auto k = diffusers::to_diffusers(diffusers::Component::Transformer, n);
            ASSERT_TRUE(k && k->size() == 1) << n;
            w.push_back({(*k)[0].name, t->dtype, diffusers::diffusers_shape((*k)[0], t->shape), t->data});
        }
        write_safetensors(d / "transformer/diffusion_pytorch_model.safetensors", w);
        std::ofstream(d.path / "transformer" / "config.json") << diffusers::dit_config_to_diffusers(cfg).dump(2);
    }
    for (const std::string& p : {d / "official", d / "dit.pth", d / "transformer"}) {
        const std::string out = d / "x.gguf";
        ConvertReport r = convert(p, out, "q8_0");
        EXPECT_EQ(read_file(out), ref) << p << " (" << r.input_kind << ")";
        fs::remove(out);
    }
}

// The table of docs/quantization.md: per type, bits per weight, rel-L2 of quantize → dequantize over the
// fixture DiT's block linears, and of one forward (both dit_t2v samples) against the float64 golden.
// The block linears get the type (their values cut into blocks along the flattened tensor: the
// fixture's rows of 64 / 128 are shorter than a K-quant super-block, the real models' are multiples of
// 256), the other matrices F16, the rest F32, as a GGUF conversion writes them.
TEST(Convert, QualityTable) {
    TempDir d;
    auto src = SafeTensorsFile::open(dit_weights(d));
    struct Row {
        const char* name;
        GgmlType type;
        double max_weight_err, max_forward_err;
    };
    const std::vector<Row> rows = {
        {"F32", GgmlType::F32, 0, 1e-4},          {"BF16", GgmlType::BF16, 3e-3, 3e-3},
        {"F16", GgmlType::F16, 5e-4, 6e-4},       {"Q8_0", GgmlType::Q8_0, 1e-2, 7e-3},
        {"Q6_K", GgmlType::Q6_K, 3e-2, 2.5e-2},   {"Q5_K", GgmlType::Q5_K, 6e-2, 5e-2},
        {"Q5_1", GgmlType::Q5_1, 6e-2, 5e-2},     {"Q5_0", GgmlType::Q5_0, 7e-2, 5e-2},
        {"Q4_K", GgmlType::Q4_K, 1.2e-1, 1e-1},   {"Q4_1", GgmlType::Q4_1, 1.3e-1, 1e-1},
        {"Q4_0", GgmlType::Q4_0, 1.3e-1, 1.1e-1}, {"Q3_K", GgmlType::Q3_K, 2.5e-1, 1.8e-1},
        {"Q2_K", GgmlType::Q2_K, 4.5e-1, 3.5e-1},
    };
    std::printf("| type | bits/weight | weights rel-L2 | forward rel-L2 vs f64 golden |\n|---|---|---|---|\n");
    for (const Row& row : rows) {
        auto w = std::make_shared<MemoryTensorSource>("quantized " + std::string(row.name));
        std::vector<float> all_x, all_y;
        for (const std::string& n : src->names()) {
            const StoredTensor* t = src->find(n);
            std::vector<float> x = st_f32(*src, n);
            GgmlType type = GgmlType::F32;
            if (is_quantizable_weight(n, t->shape))
                type = row.type;
            else if (t->shape.size() >= 2 && x.size() > 1024 && n.find("modulation") == std::string::npos &&
                     n != "patch_embedding.weight" && row.type != GgmlType::F32)
                type = row.type == GgmlType::BF16 ? GgmlType::BF16 : GgmlType::F16;
            const GgmlTypeInfo* ti = ggml_type_info(uint32_t(type));
            std::vector<uint8_t> q(gguf_type_bytes(type, int64_t(x.size())));
            gguf_quantize(type, x.data(), int64_t(x.size()), q.data());
            std::vector<float> y(x.size());
            gguf_dequantize(type, q.data(), int64_t(x.size()) / ti->block_elems, y.data());
            if (is_quantizable_weight(n, t->shape)) {
                all_x.insert(all_x.end(), x.begin(), x.end());
                all_y.insert(all_y.end(), y.begin(), y.end());
            }
            w->add(n, DType::F32, t->shape, y.data());
        }
        const GgmlTypeInfo* ti = ggml_type_info(uint32_t(row.type));
        const double werr = rel_l2(all_y, all_x);
        const double ferr = dit_forward_error(w, std::string(row.name) + " forward");
        std::printf("| %s | %.4g | %.2e | %.2e |\n", row.name, 8.0 * double(ti->block_bytes) / double(ti->block_elems),
                    werr, ferr);
        EXPECT_LE(werr, row.max_weight_err) << row.name;
        EXPECT_LE(ferr, row.max_forward_err) << row.name;
    }
}

// Ctrl-C in the middle of a conversion: exit 130, nothing at OUT, no temporary file.
TEST(Convert, InterruptedLeavesNothing) {
    TempDir d;
    CliRun s = run_cli("synth --model t2v-1.3B --layers 1 --dtype bf16 --out " + (d / "m"));
    ASSERT_EQ(s.code, 0) << s.out;
    const std::string out = d / "m-q2_k.gguf";
    // The signal goes once the progress line shows the conversion under way: a background job of a
    // non-interactive shell starts with SIGINT ignored, so a signal that came before wanrt installed
    // its handler (a slow start on a loaded runner) would be lost and the test would see rc=0.
    const std::string log = d / "convert.log";
    CliRun r = run_shell("( " + wanrt_binary() + " convert " + (d / "m") + " " + out + " --type q2_k --threads 1 > " + log +
                         " 2>&1 & p=$!; for i in $(seq 600); do grep -q '%' " + log +
                         " && break; sleep 0.05; done; kill -INT $p; wait $p; echo rc=$?; cat " + log + " )");
    EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(out));
    for (const auto& e : std::filesystem::directory_iterator(d.path))
        EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

// wanrt bench convert on the fixture DiT: a row per type with its forward error against the checkpoint.
TEST(Convert, BenchConvertReportsEachType) {
    TempDir d;
    const std::string in = dit_weights(d);
    auto g = open_fixture("dit_t2v.safetensors");
    std::filesystem::create_directories(d.path / "m");
    std::filesystem::copy_file(in, d.path / "m" / "diffusion_pytorch_model.safetensors");
    std::ofstream(d.path / "m" / "config.json") << g->metadata().at("config");  // text_dim 48: to_json() leaves it out
    CliRun r = run_cli("bench convert --ckpt_dir " + (d / "m") + " --types q8_0,q4_0 --device cpu --height 32 --width 32 --json " +
                       (d / "b.json"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("convert q8_0:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("convert q4_0:"), std::string::npos) << r.out;
    auto j = nlohmann::json::parse(std::ifstream(d / "b.json"));
    EXPECT_EQ(j["bench"], "convert");
    EXPECT_EQ(j["rows"].size(), 2u);
    CliRun bad = run_cli("bench convert --ckpt_dir " + (d / "m") + " --types q4_k_m,fp8_e4m3 --device cpu");
    EXPECT_EQ(bad.code, 1) << bad.out;
    EXPECT_NE(bad.out.find("'fp8_e4m3' is not a GGUF type"), std::string::npos) << bad.out;
}

}  // namespace wanrt::test
