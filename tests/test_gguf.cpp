// GGUF reader and dequantizers: golden tests against gguf_ref.safetensors (gguf-py's reference
// dequantization of every tensor of gguf_types.gguf and dit_q.gguf, and its parse of both files),
// the TensorSource view, and the bad-input table (truncation, magic, version, offsets, alignment,
// unknown type, block-size mismatch, duplicates), each a one-line error.
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "cpu/cpu_backend.h"
#include "io/gguf.h"
#include "io/gguf_dit.h"
#include "io/gguf_writer.h"
#include "models/dit.h"
#include "models/dit_fp8.h"
#include "models/dit_weights.h"
#include "models/lora.h"
#include "models/synth.h"
#include "models/weights.h"
#include "test_util.h"

namespace wanrt::test {

namespace {

using json = nlohmann::json;

std::shared_ptr<GgufFile> open_gguf_fixture(const std::string& name) {
    std::string p = fixture_path(name);
    if (!std::filesystem::exists(p)) throw std::runtime_error("fixture file missing: " + p);
    return GgufFile::open(p);
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

// Does a parsed value equal gguf-py's read-back value (as the fixture's JSON holds it)?
bool value_matches(const GgufValue& v, const json& j) {
    switch (v.type) {
        case GgufValueType::UINT8:
        case GgufValueType::UINT16:
        case GgufValueType::UINT32:
        case GgufValueType::UINT64: return j.is_number_unsigned() && j.get<uint64_t>() == v.u;
        case GgufValueType::INT8:
        case GgufValueType::INT16:
        case GgufValueType::INT32:
        case GgufValueType::INT64: return j.is_number_integer() && j.get<int64_t>() == v.i;
        case GgufValueType::FLOAT32: return j.is_number() && float(j.get<double>()) == float(v.f);
        case GgufValueType::FLOAT64: return j.is_number() && j.get<double>() == v.f;
        case GgufValueType::BOOL: return j.is_boolean() && j.get<bool>() == (v.u != 0);
        case GgufValueType::STRING: return j.is_string() && j.get<std::string>() == v.str;
        case GgufValueType::ARRAY:
            if (!j.is_array() || j.size() != v.array.size()) return false;
            for (size_t k = 0; k < v.array.size(); ++k)
                if (!value_matches(v.array[k], j[k])) return false;
            return true;
    }
    return false;
}

// ---- a small GGUF writer for the bad-input cases ----

struct Builder {
    std::string b;
    template <class T>
    void put(T v) {
        b.append(reinterpret_cast<const char*>(&v), sizeof(T));
    }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        b += s;
    }
};

struct FakeTensor {
    std::string name;
    std::vector<uint64_t> dims;  // ggml order
    uint32_t type;
    uint64_t offset;
};

// A GGUF v3 file with general.alignment = align (0: key left out), the given tensors, and
// data_bytes of payload after the aligned data start.
std::string make_gguf(const std::vector<FakeTensor>& ts, uint64_t data_bytes, uint32_t align = 32,
                      const char* magic = "GGUF", uint32_t version = 3) {
    Builder w;
    w.b.append(magic, 4);
    w.put<uint32_t>(version);
    w.put<uint64_t>(ts.size());
    w.put<uint64_t>(align ? 2 : 1);
    w.str("general.architecture");
    w.put<uint32_t>(8);
    w.str("test");
    if (align) {
        w.str("general.alignment");
        w.put<uint32_t>(4);
        w.put<uint32_t>(align);
    }
    for (const FakeTensor& t : ts) {
        w.str(t.name);
        w.put<uint32_t>(uint32_t(t.dims.size()));
        for (uint64_t d : t.dims) w.put<uint64_t>(d);
        w.put<uint32_t>(t.type);
        w.put<uint64_t>(t.offset);
    }
    uint32_t a = align ? align : 32;
    while (w.b.size() % a) w.b.push_back('\0');
    w.b.append(size_t(data_bytes), '\x01');
    return w.b;
}

// Writes bytes to a temp file and expects GgufFile::open to fail with every fragment.
void expect_open_error(const std::string& bytes, const std::vector<std::string>& fragments) {
    TempDir d;
    std::string p = d / "bad.gguf";
    write_bytes(p, bytes);
    std::vector<std::string> f = {"[gguf]", p};
    f.insert(f.end(), fragments.begin(), fragments.end());
    expect_error([&] { GgufFile::open(p); }, f);
}

}  // namespace

// Every tensor with a reference dequantizes to it within 1e-6·max|ref|; most values bit-exact.
TEST(Gguf, GoldenDequantizeEveryTensor) {
    auto ref = open_fixture("gguf_ref.safetensors");
    json tensors = meta_json(*ref, "tensors");
    std::map<std::string, std::shared_ptr<GgufFile>> files;
    int n_tensors = 0;
    int64_t n_values = 0, n_exact = 0;
    std::map<std::string, int> types_seen;
    for (const json& t : tensors) {
        if (t["ref"].is_null()) continue;
        std::string file = t["file"], name = t["name"], type = t["type"];
        if (!files.count(file)) files[file] = open_gguf_fixture(file);
        const GgufTensorInfo* info = files[file]->find_tensor(name);
        ASSERT_NE(info, nullptr) << file << " lacks " << name;
        ASSERT_STREQ(info->type->name, type.c_str()) << name;
        std::vector<float> out = files[file]->dequantize(*info);
        std::vector<double> want = load_f64(*ref, t["ref"].get<std::string>());
        ASSERT_EQ(out.size(), want.size()) << name;
        double max_ref = 0, max_err = 0;
        int64_t exact = 0;
        for (size_t k = 0; k < out.size(); ++k) {
            max_ref = std::max(max_ref, std::fabs(want[k]));
            max_err = std::max(max_err, std::fabs(double(out[k]) - want[k]));
            // Bit-exact: same value and, for zeros, the same sign (−0 from a −0 scale).
            if (double(out[k]) == want[k] && std::signbit(out[k]) == std::signbit(want[k])) ++exact;
        }
        EXPECT_LE(max_err, 1e-6 * max_ref) << file << " " << name << " (" << type << ")";
        EXPECT_TRUE(std::isfinite(max_ref)) << name;
        if (exact != int64_t(out.size()))
            std::printf("  %-40s %-8s %lld of %zu values bit-exact, max err %.3g (max |ref| %.3g)\n", name.c_str(),
                        type.c_str(), (long long)exact, out.size(), max_err, max_ref);
        n_values += int64_t(out.size());
        n_exact += exact;
        ++n_tensors;
        ++types_seen[type];
    }
    std::printf("gguf golden: %d tensors, %zu types, %lld of %lld values bit-exact\n", n_tensors, types_seen.size(),
                (long long)n_exact, (long long)n_values);
    // Every type the fixture covers was decoded (24 types in gguf_types.gguf, 31 refs in dit_q.gguf).
    json covered = meta_json(*ref, "types_covered");
    for (const json& ty : covered) EXPECT_TRUE(types_seen.count(ty.get<std::string>())) << ty;
    EXPECT_GE(n_tensors, 27 + 27);
}

// The header, every KV (key, type, value) and every tensor info equal gguf-py's parse.
TEST(Gguf, HeaderKvsAndTensorInfosMatchGgufPy) {
    auto ref = open_fixture("gguf_ref.safetensors");
    json files = meta_json(*ref, "files");
    json tensors = meta_json(*ref, "tensors");
    ASSERT_EQ(files.size(), 2u);
    for (auto& [file, meta] : files.items()) {
        auto g = open_gguf_fixture(file);
        EXPECT_EQ(g->version(), 3u);
        EXPECT_EQ(g->architecture(), meta["arch"].get<std::string>()) << file;
        EXPECT_EQ(g->alignment(), meta["alignment"].get<uint32_t>()) << file;
        EXPECT_EQ(g->data_offset(), meta["data_offset"].get<uint64_t>()) << file;
        EXPECT_EQ(g->tensors().size(), meta["n_tensors"].get<size_t>()) << file;
        ASSERT_EQ(g->kvs().size(), meta["kv"].size()) << file;
        for (size_t k = 0; k < g->kvs().size(); ++k) {
            const json& want = meta["kv"][k];
            const GgufKV& kv = g->kvs()[k];
            EXPECT_EQ(kv.key, want[0].get<std::string>()) << file;
            EXPECT_EQ(gguf_value_type_name(kv.value.type), want[1].get<std::string>()) << kv.key;
            EXPECT_TRUE(value_matches(kv.value, want[2])) << file << " " << kv.key << " != " << want[2].dump();
        }
        size_t idx = 0;
        for (const json& t : tensors) {
            if (t["file"] != file) continue;
            ASSERT_LT(idx, g->tensors().size());
            const GgufTensorInfo& info = g->tensors()[idx++];  // file order
            std::string name = t["name"];
            EXPECT_EQ(info.name, name);
            EXPECT_EQ(info.type_id, t["type_id"].get<uint32_t>()) << name;
            EXPECT_STREQ(info.type->name, t["type"].get<std::string>().c_str()) << name;
            EXPECT_EQ(info.shape, t["shape"].get<Shape>()) << name;
            EXPECT_EQ(info.ggml_dims, t["ggml_dims"].get<std::vector<int64_t>>()) << name;
            EXPECT_EQ(info.offset, t["offset"].get<uint64_t>()) << name;
            EXPECT_EQ(info.nbytes, t["nbytes"].get<uint64_t>()) << name;
        }
        EXPECT_EQ(idx, g->tensors().size()) << file;
    }
}

// The TensorSource: names as stored, torch shapes, F32/F16/BF16 views, quantized decoded to F32.
TEST(Gguf, TensorSourceViewsAndDecodes) {
    auto ref = open_fixture("gguf_ref.safetensors");
    auto src = GgufTensorSource::open(fixture_path("dit_q.gguf"));
    const GgufFile& f = src->file();
    EXPECT_EQ(src->names().size(), f.tensors().size());
    const StoredTensor* pe = src->find("patch_embedding.weight");
    ASSERT_NE(pe, nullptr);
    EXPECT_EQ(pe->shape, (Shape{64, 16, 1, 2, 2}));  // 5-D, kept F32
    EXPECT_EQ(pe->dtype, DType::F32);
    const StoredTensor* te = src->find("text_embedding.0.weight");
    ASSERT_NE(te, nullptr);
    EXPECT_EQ(te->dtype, DType::F16);
    EXPECT_EQ(te->shape, (Shape{64, 128}));
    EXPECT_EQ(te->data, f.find_tensor("text_embedding.0.weight")->data);  // a view, no copy
    EXPECT_EQ(src->find("no.such.tensor"), nullptr);
    for (const GgufTensorInfo& t : f.tensors()) {
        const StoredTensor* s = src->find(t.name);
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->shape, t.shape);
        EXPECT_EQ(s->nbytes, dtype_bytes(s->dtype, shape_numel(s->shape))) << t.name;
        std::vector<float> got(size_t(shape_numel(s->shape)));
        convert_elements(s->data, s->dtype, got.data(), DType::F32, int64_t(got.size()));
        EXPECT_EQ(got, f.dequantize(t)) << t.name;
    }
    const StoredTensor* q = src->find("blocks.0.ffn.2.weight");  // Q4_K
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->dtype, DType::F32);
    EXPECT_EQ(q, src->find("blocks.0.ffn.2.weight"));  // decoded once, cached
    // BF16 tensors of gguf_types.gguf are views in their own dtype.
    auto types = GgufTensorSource::open(fixture_path("gguf_types.gguf"));
    EXPECT_EQ(types->find("types.BF16")->dtype, DType::BF16);
    EXPECT_EQ(types->find("types.Q8_0.rank3")->shape, (Shape{2, 3, 64}));
}

TEST(Gguf, F16ToF32IsExact) {
    EXPECT_EQ(gguf_f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
    EXPECT_EQ(gguf_f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
    EXPECT_EQ(gguf_f16_to_f32(0x0400), std::ldexp(1.0f, -14));
    EXPECT_EQ(gguf_f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(gguf_f16_to_f32(0x7bff), 65504.0f);
    EXPECT_TRUE(std::signbit(gguf_f16_to_f32(0x8000)));
    EXPECT_EQ(gguf_f16_to_f32(0x8000), 0.0f);
    EXPECT_TRUE(std::isinf(gguf_f16_to_f32(0xfc00)));
    EXPECT_TRUE(std::isnan(gguf_f16_to_f32(0x7e00)));
    for (uint32_t h = 0; h < 0x10000; ++h) {  // agrees with core's converter on every finite pattern
        float a = gguf_f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h));
        if (std::isnan(a)) continue;
        ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << std::hex << h;
    }
}

// ---- bad input ----

TEST(Gguf, TruncatedAtEveryPartIsOneLineError) {
    std::string good = read_bytes(fixture_path("gguf_types.gguf"));
    auto g = open_gguf_fixture("gguf_types.gguf");
    const GgufTensorInfo& last = g->tensors().back();
    size_t last_end = size_t(g->data_offset() + last.offset + last.nbytes);
    ASSERT_GE(good.size(), last_end);
    // Cut points: inside the magic, the counts, the first KV, a late KV (the nested array), a
    // tensor info, the padding before the data, and inside the last tensor's data.
    std::vector<std::pair<size_t, std::string>> cuts = {
        {0, "truncated in the header"}, {2, "truncated in the header"}, {12, "truncated in the header"},
        {30, "metadata key 0"},  {620, "'test.array.f32'"},   {800, "'test.array.nested'"},
        {1200, "tensor info"},   {g->data_offset() - 20, "past the end"}, {last_end - 1, "past the end"},
    };
    for (auto& [n, what] : cuts) {
        SCOPED_TRACE("cut at " + std::to_string(n));
        expect_open_error(good.substr(0, n), {what});
    }
}

TEST(Gguf, BadMagicAndVersion) {
    expect_open_error(make_gguf({}, 0, 32, "GGUX"), {"bad magic"});
    expect_open_error(make_gguf({}, 0, 32, "GGUF", 2), {"version 2", "only version 3"});
    expect_open_error(make_gguf({}, 0, 32, "GGUF", 3u << 24), {"big-endian"});
    TempDir d;  // the minimal valid file opens
    write_bytes(d / "ok.gguf", make_gguf({}, 0));
    EXPECT_EQ(GgufFile::open(d / "ok.gguf")->architecture(), "test");
}

TEST(Gguf, OffsetsAlignmentTypesAndBlocks) {
    // Q8_0 [2, 64] = 2 rows of 2 blocks of 34 bytes = 136 bytes.
    FakeTensor q8{"w", {64, 2}, 8, 0};
    {
        TempDir d;
        write_bytes(d / "ok.gguf", make_gguf({q8}, 136));
        auto f = GgufFile::open(d / "ok.gguf");
        EXPECT_EQ(f->find_tensor("w")->nbytes, 136u);
        EXPECT_EQ(f->find_tensor("w")->shape, (Shape{2, 64}));
    }
    expect_open_error(make_gguf({q8}, 135), {"'w'", "past the end"});
    expect_open_error(make_gguf({{"w", {64, 2}, 8, 1u << 20}}, 136), {"'w'", "past the end"});
    expect_open_error(make_gguf({{"w", {64, 2}, 8, ~0ull - 63}}, 136), {"'w'"});  // offset + size overflows
    expect_open_error(make_gguf({{"w", {64, 2}, 8, 16}}, 200), {"'w'", "not a multiple of the alignment 32"});
    expect_open_error(make_gguf({{"w", {64, 2}, 8, 32}}, 200, 64), {"'w'", "alignment 64"});  // read from the file
    expect_open_error(make_gguf({{"w", {64, 2}, 99, 0}}, 136), {"'w'", "unknown ggml type id 99"});
    expect_open_error(make_gguf({{"w", {48, 2}, 8, 0}}, 136), {"'w'", "Q8_0", "48", "block size 32"});
    expect_open_error(make_gguf({q8, {"w", {64, 2}, 8, 160}}, 400), {"'w'", "appears twice"});
    // Two tensors sharing bytes (issue 21): 136 bytes at 0 and another tensor at 128.
    expect_open_error(make_gguf({q8, {"v", {64, 2}, 8, 128}}, 400), {"tensors 'w' and 'v' overlap"});
    {  // back to back is fine
        TempDir d;
        write_bytes(d / "two.gguf", make_gguf({q8, {"v", {64, 2}, 8, 160}}, 400));
        EXPECT_EQ(GgufFile::open(d / "two.gguf")->find_tensor("v")->nbytes, 136u);
    }
    expect_open_error(make_gguf({{"w", {1ull << 40, 1ull << 40}, 0, 0}}, 16), {"'w'", "overflows"});
    expect_open_error(make_gguf({{"w", {2, 2, 2, 2, 2, 2, 2, 2, 2}, 0, 0}}, 2048), {"'w'", "9 dims"});
    expect_open_error(make_gguf({}, 0, 48), {"alignment 48", "power of two"});
    // 5-D tensors (Wan's patch_embedding.weight) are accepted, dims reversed to torch order.
    {
        TempDir d;
        write_bytes(d / "5d.gguf", make_gguf({{"p", {2, 2, 1, 16, 64}, 0, 0}}, 64 * 16 * 4 * 4));
        auto f = GgufFile::open(d / "5d.gguf");
        EXPECT_EQ(f->find_tensor("p")->shape, (Shape{64, 16, 1, 2, 2}));
    }
    // A known type that cannot be decoded: the source names the tensor and the type.
    {
        TempDir d;
        write_bytes(d / "q8k.gguf", make_gguf({{"k", {256, 1}, 15, 0}}, 292));
        expect_error([&] { GgufTensorSource::open(d / "q8k.gguf"); }, {"[gguf]", "'k'", "Q8_K", "id 15"});
    }
}

// ---- the DiT on GGUF weights ----

// The config comes from shapes alone (the tiny model's 2 heads from the fixture: it does not follow
// dim / 128), and the forward on the decoded weights matches the official model's out.y0.
TEST(Gguf, DitConfigInferredAndForwardMatchesGolden) {
    auto ref = open_fixture("gguf_ref.safetensors");
    DitConfig want = DitConfig::from_json(ref->metadata().at("dit_config"), ref->origin());
    std::shared_ptr<const GgufFile> file = open_gguf_fixture("dit_q.gguf");
    expect_error([&] { infer_dit_config(*file); }, {"[gguf]", "dim 64", "multiple of 128"});
    std::string prefix = "?";
    DitConfig cfg = infer_dit_config(*file, want.num_heads, &prefix);
    EXPECT_EQ(prefix, "");
    EXPECT_EQ(cfg.to_json(), want.to_json());

    auto be = make_cpu_backend(2);
    DitModel model(cfg, std::make_shared<GgufTensorSource>(file), *be);
    DitSample s;
    s.x = load_f32(*be, *ref, "in.x0");
    s.context = load_f32(*be, *ref, "in.context0");
    s.t = float(load_f64(*ref, "in.t").at(0));
    auto outs = model.forward({s}, std::stoll(ref->metadata().at("seq_len")));
    ASSERT_EQ(outs.size(), 1u);
    EXPECT_CLOSE(outs[0], load_f64(*ref, "out.y0"), 1e-4, "dit_q.gguf forward out.y0");
}

// The same forward with the block linears kept in their GGUF types (GgufBlocks::Keep, the CPU's
// quantized linear, cpu/qmatmul.h): Q8_0, Q4_0, Q4_K, Q5_K, Q6_K stay as the file's bytes (views of
// the mapping), Q4_1/Q5_0/Q5_1 (no DType) and F16 are decoded at load. Twice: with the exact
// decode-panel + sgemm path (CpuBackend::set_exact_qlinear), which multiplies the exact decoded values,
// so the bound is the dequantized test's; and with the default integer GEMMs, which round x to int8
// per 32 in every block linear (30 of them here, 72 tokens and 512 context rows): each adds ≈ 2e-3
// relative error to its output (docs/perf.md, session 9), 1.5e-3 measured on the whole forward,
// bound 5e-3.
TEST(Gguf, DitForwardOnQuantizedWeightsMatchesGolden) {
    auto ref = open_fixture("gguf_ref.safetensors");
    DitConfig want = DitConfig::from_json(ref->metadata().at("dit_config"), ref->origin());
    std::shared_ptr<const GgufFile> file = open_gguf_fixture("dit_q.gguf");
    DitConfig cfg = infer_dit_config(*file, want.num_heads);

    auto be = make_cpu_backend(2);
    DitModel model(cfg, std::make_shared<GgufTensorSource>(file, GgufBlocks::Keep), *be);
    int kept = 0;
    for (auto& [name, l] : dit_linears(model.mutable_weights(), cfg)) {
        const std::string wname = name + ".weight";
        // F32/F16/BF16 as stored, our block types kept, Q4_1/Q5_0/Q5_1 (no DType) decoded to f32.
        const uint32_t id = file->find_tensor(wname)->type_id;
        DType want_dtype = id == uint32_t(GgmlType::F16) ? DType::F16 : id == uint32_t(GgmlType::BF16) ? DType::BF16 : DType::F32;
        dtype_from_ggml_id(id, &want_dtype);
        EXPECT_EQ(dtype_name(l->w.dtype()), std::string(dtype_name(want_dtype))) << wname;
        if (dtype_is_block(l->w.dtype())) {
            ++kept;
            EXPECT_EQ(l->w.raw(), static_cast<const void*>(file->find_tensor(wname)->data)) << wname << " is not a view of the file";
        }
    }
    EXPECT_GE(kept, 10);  // 3 blocks × (Q8_0, Q4_0, K-quants) of dit_mix

    DitSample s;
    s.x = load_f32(*be, *ref, "in.x0");
    s.context = load_f32(*be, *ref, "in.context0");
    s.t = float(load_f64(*ref, "in.t").at(0));
    auto* cpu_be = dynamic_cast<CpuBackend*>(be.get());
    ASSERT_NE(cpu_be, nullptr);
    cpu_be->set_exact_qlinear(true);
    auto outs = model.forward({s}, std::stoll(ref->metadata().at("seq_len")));
    ASSERT_EQ(outs.size(), 1u);
    EXPECT_CLOSE(outs[0], load_f64(*ref, "out.y0"), 1e-4, "dit_q.gguf forward, quantized linears, out.y0");
    cpu_be->set_exact_qlinear(false);
    outs = model.forward({s}, std::stoll(ref->metadata().at("seq_len")));
    ASSERT_EQ(outs.size(), 1u);
    EXPECT_CLOSE(outs[0], load_f64(*ref, "out.y0"), 5e-3, "dit_q.gguf forward, integer GEMMs (x int8), out.y0");
}

// --linear_dtype fp8 on a GGUF DiT (models/dit_fp8.h): the block linears already in a block type stay
// as they are (the same views of the file), the dense ones (Q4_1/Q5_0/Q5_1 decoded to f32) become
// e4m3; nothing fails on the quantized weights.
TEST(Gguf, Fp8LeavesBlockQuantizedLinearsAsTheyAre) {
    auto ref = open_fixture("gguf_ref.safetensors");
    const DitConfig want = DitConfig::from_json(ref->metadata().at("dit_config"), ref->origin());
    std::shared_ptr<const GgufFile> file = open_gguf_fixture("dit_q.gguf");
    const DitConfig cfg = infer_dit_config(*file, want.num_heads);
    auto be = make_cpu_backend(1);
    DitModel model(cfg, std::make_shared<GgufTensorSource>(file, GgufBlocks::Keep), *be);
    std::map<std::string, std::pair<DType, const void*>> before;
    for (auto& [name, l] : dit_linears(model.mutable_weights(), cfg))
        if (l->w.defined()) before[name] = {l->w.dtype(), l->w.raw()};
    quantize_dit_linears_fp8(model);
    int kept = 0, fp8 = 0;
    for (auto& [name, l] : dit_linears(model.mutable_weights(), cfg)) {
        if (!l->w.defined() || name.rfind("blocks.", 0) != 0) continue;
        const auto [dtype, raw] = before.at(name);
        if (dtype_is_block(dtype)) {
            ++kept;
            EXPECT_EQ(l->w.dtype(), dtype) << name;
            EXPECT_EQ(l->w.raw(), raw) << name << " was replaced";
        } else {
            fp8 += l->w.dtype() == DType::F8E4M3;
        }
    }
    EXPECT_GE(kept, 10);
    EXPECT_GE(fp8, 1);  // dit_mix's Q4_1/Q5_0/Q5_1 tensors, decoded to f32 at load
}

// A backend that cannot hold block types (as CUDA): a block tensor made there is a one-line error,
// and WeightLoader hands it the decoded f32 weight instead (today's behaviour on CUDA).
namespace {
class HostNoBlocks final : public Backend {
    struct Buf final : Buffer {
        std::vector<uint8_t> v;
        Buf(Backend* b, size_t n) : Buffer(b, nullptr, n), v(n) { ptr_ = v.data(); }
    };

public:
    std::string name() const override { return "dev:0"; }
    const char* kind() const override { return "noblocks"; }
    std::string description() const override { return "test"; }
    bool host_visible() const override { return false; }
    std::shared_ptr<Buffer> alloc(size_t bytes) override { return std::make_shared<Buf>(this, bytes); }
    void upload(const Tensor& dst, const void* src) override { std::memcpy(dst.raw(), src, dst.nbytes()); }
    void download(const Tensor& src, void* dst) override { std::memcpy(dst, src.raw(), src.nbytes()); }
    void synchronize() override {}
};
}  // namespace

TEST(Gguf, BlockTypesRefusedWhereTheBackendCannotHoldThem) {
    HostNoBlocks be;
    expect_error([&] { be.empty(DType::Q4_K, {2, 256}); }, {"[dev:0]", "q4_k", "not supported on dev:0"});
    std::shared_ptr<const GgufFile> file = open_gguf_fixture("dit_q.gguf");
    WeightLoader ld(std::make_shared<GgufTensorSource>(file, GgufBlocks::Keep), be);
    const GgufTensorInfo* t = file->find_tensor("blocks.0.ffn.2.weight");
    ASSERT_TRUE(t && t->type_id == uint32_t(GgmlType::Q4_K));
    Tensor w = ld.matrix("blocks.0.ffn.2.weight", t->shape);
    EXPECT_EQ(w.dtype(), DType::F32);
    std::vector<float> got(size_t(w.numel()));
    be.download(w, got.data());
    EXPECT_EQ(got, file->dequantize(*t));  // decoded exactly
    // and on the CPU the same tensor stays Q4_K, a view of the file
    auto cpu = make_cpu_backend(1);
    WeightLoader lc(std::make_shared<GgufTensorSource>(file, GgufBlocks::Keep), *cpu);
    Tensor wq = lc.matrix("blocks.0.ffn.2.weight", t->shape);
    EXPECT_EQ(wq.dtype(), DType::Q4_K);
    EXPECT_EQ(wq.nbytes(), t->nbytes);
}

// dit_q.gguf through the model path (open_dit_checkpoint, as `generate --ckpt_dir` and `info` use it):
// a folder holding the GGUF beside a config.json (this tiny model has 2 heads of 32, so the dim / 128
// rule cannot apply: without config.json it is a one-line error saying to add one), the same GGUF
// named as a file, and a copy with ComfyUI's prefix. The linears stay in their block types on the CPU
// and the forward matches out.y0. Tolerance: out.y0 is the float64 official model on the weights
// decoded from this very file, so quantization adds no error to the comparison; what is left is f32
// arithmetic over a whole model (fixtures README: rel-L2 1e-4), for every block type in dit_mix.
namespace {

// config.json text for c; text_dim added (to_json leaves it out, as the released config.json files do:
// 4096 in every release, this tiny model 128).
std::string config_json_of(const DitConfig& c) {
    json j = json::parse(c.to_json());
    j["text_dim"] = c.text_dim;
    return j.dump();
}

std::vector<Tensor> dit_q_forward(const DitCheckpoint& ck, Backend& be, const SafeTensorsFile& ref) {
    DitModel model(ck.config, ck.weights, be);
    int kept = 0;
    for (auto& [name, l] : dit_linears(model.mutable_weights(), ck.config)) kept += dtype_is_block(l->w.dtype());
    EXPECT_GE(kept, 10) << "quantized linears were decoded instead of kept";
    DitSample s;
    s.x = load_f32(be, ref, "in.x0");
    s.context = load_f32(be, ref, "in.context0");
    s.t = float(load_f64(ref, "in.t").at(0));
    return model.forward({s}, std::stoll(ref.metadata().at("seq_len")));
}

}  // namespace

TEST(Gguf, OpenDitCheckpointReadsGgufFoldersAndFiles) {
    auto ref = open_fixture("gguf_ref.safetensors");
    const DitConfig want = DitConfig::from_json(ref->metadata().at("dit_config"), ref->origin());
    const std::string gguf = fixture_path("dit_q.gguf");
    auto be = make_cpu_backend(2);
    // The exact decode-panel path, so the f32 bound holds (the default integer GEMMs round x to int8:
    // DitForwardOnQuantizedWeightsMatchesGolden checks them at their own bound).
    dynamic_cast<CpuBackend&>(*be).set_exact_qlinear(true);
    TempDir d;
    const std::filesystem::path dir = d.path / "Wan2.1-T2V-tiny-Q";
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(gguf, dir / "wan2.1-t2v-tiny-Q4_K_M.gguf");

    // No config.json: the shapes give everything but the heads, and dim 64 has no dim / 128 head count.
    expect_error([&] { open_dit_checkpoint(dir.string()); },
                 {"[gguf]", "wan2.1-t2v-tiny-Q4_K_M.gguf", "dim 64", "config.json"});

    std::ofstream(dir / "config.json") << config_json_of(want);
    for (const std::string& path : {dir.string(), (dir / "wan2.1-t2v-tiny-Q4_K_M.gguf").string()}) {
        SCOPED_TRACE(path);
        const DitCheckpoint ck = open_dit_checkpoint(path);
        EXPECT_EQ(ck.config.to_json(), want.to_json());
        EXPECT_EQ(ck.config_origin, (dir / "config.json").string());
        ASSERT_NE(dynamic_cast<const GgufTensorSource*>(ck.weights.get()), nullptr);
        // Nothing reported against the weights, and the header-only view decodes nothing.
        const auto* g = dynamic_cast<const GgufTensorSource*>(ck.weights.get());
        EXPECT_TRUE(dit_weight_problems(ck.config, *g->stored_view()).empty());
        const auto outs = dit_q_forward(ck, *be, *ref);
        ASSERT_EQ(outs.size(), 1u);
        EXPECT_CLOSE(outs[0], load_f64(*ref, "out.y0"), 1e-4, "dit_q.gguf via open_dit_checkpoint, out.y0");
    }

    // The same tensors under ComfyUI's "model.diffusion_model." prefix: the same model, bit for bit.
    auto q = open_gguf_fixture("dit_q.gguf");
    const std::filesystem::path pdir = d.path / "prefixed";
    std::filesystem::create_directories(pdir);
    {
        GgufWriter w((pdir / "dit.gguf").string());
        w.add_string("general.architecture", "wan");
        for (const GgufTensorInfo& t : q->tensors()) w.declare("model.diffusion_model." + t.name, GgmlType(t.type_id), t.shape);
        for (const GgufTensorInfo& t : q->tensors()) w.write(t.data, t.nbytes);
        w.finish();
    }
    std::ofstream(pdir / "config.json") << config_json_of(want);
    const DitCheckpoint pck = open_dit_checkpoint(pdir.string());
    EXPECT_EQ(dynamic_cast<const GgufTensorSource*>(pck.weights.get())->prefix(), "model.diffusion_model.");
    EXPECT_NE(pck.weights->find("blocks.0.ffn.2.weight"), nullptr);
    const DitCheckpoint plain = open_dit_checkpoint(dir.string());
    EXPECT_EQ(to_f64(dit_q_forward(pck, *be, *ref)[0]), to_f64(dit_q_forward(plain, *be, *ref)[0]));
}

// A GGUF DiT whose dim is a multiple of 128 needs no config.json: `wanrt convert` of a 128-wide
// model, opened as a lone file, gives back the config it was written from (heads = dim / 128).
TEST(Gguf, OpenDitCheckpointInfersTheConfigOfAGguf) {
    TempDir d;
    auto ref = open_fixture("gguf_ref.safetensors");
    DitConfig c = DitConfig::from_json(ref->metadata().at("dit_config"), ref->origin());
    c.dim = 256;
    c.num_heads = 2;
    c.num_layers = 2;
    c.text_len = 512;
    auto src = synth_dit_memory(c, DType::F32, 3);
    {
        GgufWriter w((d.path / "m.gguf").string());
        w.add_string("general.architecture", "wan");
        for (const std::string& n : src->names()) w.declare(n, GgmlType::F32, src->find(n)->shape);
        for (const std::string& n : src->names()) w.write(src->find(n)->data, src->find(n)->nbytes);
        w.finish();
    }
    const DitCheckpoint ck = open_dit_checkpoint((d.path / "m.gguf").string());
    EXPECT_EQ(ck.config.to_json(), c.to_json());
    EXPECT_NE(ck.config_origin.find("inferred from the GGUF"), std::string::npos) << ck.config_origin;
}

// Bad GGUF DiTs through the model path: each one line naming the file and what to do.
TEST(Gguf, OpenDitCheckpointBadGgufIsOneLineError) {
    TempDir d;
    auto mk = [&](const std::string& sub) {
        std::filesystem::create_directories(d.path / sub);
        return d.path / sub;
    };
    const std::string gguf = fixture_path("dit_q.gguf");
    // Truncated header.
    const auto trunc = mk("trunc");
    write_bytes(trunc / "dit.gguf", read_bytes(gguf).substr(0, 200));
    expect_error([&] { open_dit_checkpoint(trunc.string()); }, {"[gguf]", (trunc / "dit.gguf").string()});
    // Another architecture.
    const auto other = mk("other");
    std::filesystem::copy_file(fixture_path("gguf_types.gguf"), other / "types.gguf");
    expect_error([&] { open_dit_checkpoint(other.string()); }, {"[gguf]", "types.gguf", "'gguf-types'", "not a Wan DiT"});
    // Two DiT GGUFs, and an official DiT beside a GGUF: which one is meant is not guessed.
    const auto two = mk("two");
    std::filesystem::copy_file(gguf, two / "a.gguf");
    std::filesystem::copy_file(gguf, two / "b.gguf");
    expect_error([&] { open_dit_checkpoint(two.string()); }, {"[model]", two.string(), "a.gguf, b.gguf", "keep exactly one"});
    // A T5 GGUF beside the DiT is not a second DiT.
    const auto withT5 = mk("with_t5");
    std::filesystem::copy_file(gguf, withT5 / "dit.gguf");
    std::filesystem::copy_file(fixture_path("t5_q8.gguf"), withT5 / "umt5-xxl-encoder-Q8_0.gguf");
    EXPECT_EQ(find_dit_gguf(withT5.string()), (withT5 / "dit.gguf").string());
    const auto both = mk("both");
    std::filesystem::copy_file(gguf, both / "dit.gguf");
    write_bytes(both / "diffusion_pytorch_model.safetensors", read_bytes(fixture_path("comfy_dit_e4m3.safetensors")));
    expect_error([&] { open_dit_checkpoint(both.string()); }, {"[dit]", "two DiTs", "dit.gguf", "keep one"});
    // Tensors with and without ComfyUI's prefix in one file.
    auto q = open_gguf_fixture("dit_q.gguf");
    const auto mixed = mk("mixed");
    {
        GgufWriter w((mixed / "dit.gguf").string());
        w.add_string("general.architecture", "wan");
        for (const GgufTensorInfo& t : q->tensors())
            w.declare((t.name == "blocks.1.cross_attn.o.weight" ? "" : "model.diffusion_model.") + t.name,
                      GgmlType(t.type_id), t.shape);
        for (const GgufTensorInfo& t : q->tensors()) w.write(t.data, t.nbytes);
        w.finish();
    }
    std::ofstream(mixed / "config.json")
        << config_json_of(DitConfig::from_json(open_fixture("gguf_ref.safetensors")->metadata().at("dit_config"), "ref"));
    expect_error([&] { open_dit_checkpoint(mixed.string()); }, {"[gguf]", "dit.gguf", "'blocks.1.cross_attn.o.weight'", "prefix"});
    // A DiT tensor missing, and the 5-D patch embedding flattened to 4-D (a tool limited to 4 dims).
    auto rewrite = [&](const std::string& sub, auto&& shape_of) {
        const auto dir = mk(sub);
        GgufWriter w((dir / "dit.gguf").string());
        w.add_string("general.architecture", "wan");
        std::vector<const GgufTensorInfo*> kept;
        for (const GgufTensorInfo& t : q->tensors()) {
            const Shape sh = shape_of(t);
            if (sh.empty()) continue;
            w.declare(t.name, GgmlType(t.type_id), sh);
            kept.push_back(&t);
        }
        for (const GgufTensorInfo* t : kept) w.write(t->data, t->nbytes);
        w.finish();
        return dir;
    };
    const auto nohead = rewrite("nohead", [](const GgufTensorInfo& t) { return t.name == "head.head.weight" ? Shape{} : t.shape; });
    expect_error([&] { open_dit_checkpoint(nohead.string()); }, {"[gguf]", "dit.gguf", "'head.head.weight'", "wanrt convert"});
    const auto four = rewrite("four", [](const GgufTensorInfo& t) {
        return t.name == "patch_embedding.weight" ? Shape{t.shape[0], t.shape[1] * t.shape[2], t.shape[3], t.shape[4]} : t.shape;
    });
    expect_error([&] { open_dit_checkpoint(four.string()); }, {"[gguf]", "dit.gguf", "'patch_embedding.weight'", "5-D", "fix_5d_tensors"});
}

TEST(Gguf, DitConfigRejectsOtherArchitectures) {
    TempDir d;
    write_bytes(d / "llama.gguf", make_gguf({}, 0));  // general.architecture = "test"
    auto f = GgufFile::open(d / "llama.gguf");
    expect_error([&] { infer_dit_config(*f); }, {"[gguf]", "'test'", "not a Wan DiT"});
}

}  // namespace wanrt::test

namespace wanrt::test {

// fuzz/crashes/gguf-zero-element-f32.gguf (found by fuzz_gguf): a tensor with a zero dimension
// dequantized memcpy'd from/to null pointers, undefined behaviour that the asan job's UBSan stops
// on. Every tensor of it must decode, the empty ones to empty vectors.
TEST(Gguf, FuzzCrashZeroElementTensorDecodes) {
    const std::string path = std::string(WANRT_TEST_DATA) + "/../../fuzz/crashes/gguf-zero-element-f32.gguf";
    auto f = GgufFile::open(path);
    int empty = 0;
    for (const GgufTensorInfo& t : f->tensors()) {
        if (!t.type->dequantizable) continue;
        std::vector<float> v = f->dequantize(t);
        if (t.nbytes == 0) {
            EXPECT_TRUE(v.empty()) << t.name;
            ++empty;
        }
    }
    EXPECT_GE(empty, 1) << "the crash input has a zero-element tensor";
    std::vector<float> none;
    gguf_dequantize(GgmlType::F32, nullptr, 0, none.data());
}

}  // namespace wanrt::test

namespace wanrt::test {

// fuzz/crashes/gguf-zero-element-read.gguf (found by fuzz_gguf in the CI fuzz job): a zero-element
// F32 tensor read through GgufTensorSource, as a loader reads it, has no storage (data null), and
// convert_elements memcpy'd 0 bytes from null (UBSan: nonnull argument). Every plain tensor of the
// file must convert, the empty ones to nothing.
TEST(Gguf, FuzzCrashZeroElementTensorConverts) {
    const std::string path = std::string(WANRT_TEST_DATA) + "/../../fuzz/crashes/gguf-zero-element-read.gguf";
    GgufTensorSource src(GgufFile::open(path));
    int empty = 0;
    for (const std::string& name : src.names()) {
        const StoredTensor* t = src.find(name);
        ASSERT_NE(t, nullptr) << name;
        const int64_t n = shape_numel(t->shape);
        // The dtypes fuzz::read_all converts (plain numbers), small ones only, as it does.
        const DType d = t->dtype;
        const bool plain = d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::F64 ||
                           d == DType::I32 || d == DType::I64 || d == DType::U8;
        if (!plain || n > 4096 || dtype_bytes(d, n) != t->nbytes) continue;
        std::vector<float> f(size_t(n) + 1);
        convert_elements(t->data, t->dtype, f.data(), DType::F32, n);
        empty += n == 0;
    }
    EXPECT_GE(empty, 1) << "the crash input has a zero-element plain tensor";
    convert_elements(nullptr, DType::F32, nullptr, DType::F32, 0);
    convert_elements(nullptr, DType::BF16, nullptr, DType::F32, 0);
}

}  // namespace wanrt::test
