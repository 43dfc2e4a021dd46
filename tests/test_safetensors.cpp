// safetensors reader/writer: round trip, shards, and the bad-input table (truncated, corrupt,
// out-of-range offsets, unknown dtype, shard/index mismatch) — each a one-line error.
#include <cstdio>
#include <fstream>

#include "test_util.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

void write_raw(const std::string& path, const std::string& header, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << data;
}

}  // namespace

TEST(SafeTensors, RoundTripAllDtypes) {
    TempDir d;
    std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, 7.0f, -1e-3f};
    std::vector<double> f64 = {1.0, 2.0, 3.0};
    std::vector<uint16_t> bf = {f32_to_bf16(1.0f), f32_to_bf16(-3.5f)};
    std::vector<uint16_t> hf = {f32_to_f16(0.5f), f32_to_f16(65504.0f), f32_to_f16(-2.0f)};
    std::vector<int64_t> i64 = {-5, 1ll << 40};
    std::vector<int32_t> i32 = {7};
    std::vector<uint8_t> u8 = {1, 2, 255};
    write_safetensors(d / "a.safetensors",
                      {{"f32", DType::F32, {2, 3}, f32.data()},
                       {"f64", DType::F64, {3}, f64.data()},
                       {"bf16", DType::BF16, {2}, bf.data()},
                       {"f16", DType::F16, {3, 1}, hf.data()},
                       {"i64", DType::I64, {2}, i64.data()},
                       {"i32", DType::I32, {1}, i32.data()},
                       {"u8", DType::U8, {3}, u8.data()},
                       {"empty", DType::F32, {0, 4}, nullptr}},
                      {{"note", "hello"}});
    EXPECT_FALSE(fs::exists(d / "a.safetensors.tmp"));
    auto f = SafeTensorsFile::open(d / "a.safetensors");
    EXPECT_EQ(f->metadata().at("note"), "hello");
    EXPECT_EQ(f->names().size(), 8u);
    EXPECT_EQ(load_f64(*f, "f32"), std::vector<double>(f32.begin(), f32.end()));
    EXPECT_EQ(load_f64(*f, "bf16"), (std::vector<double>{1.0, -3.5}));
    EXPECT_EQ(load_f64(*f, "f16"), (std::vector<double>{0.5, 65504.0, -2.0}));
    EXPECT_EQ(load_f64(*f, "i64"), (std::vector<double>{-5.0, double(1ll << 40)}));
    EXPECT_EQ(load_f64(*f, "u8"), (std::vector<double>{1, 2, 255}));
    EXPECT_EQ(f->find("f16")->shape, (Shape{3, 1}));
    EXPECT_EQ(f->find("empty")->nbytes, 0u);
    EXPECT_EQ(f->find("missing"), nullptr);
}

TEST(SafeTensors, ShardedIndex) {
    TempDir d;
    std::vector<float> a = {1, 2}, b = {3, 4, 5};
    write_safetensors(d / "m-00001-of-00002.safetensors", {{"a", DType::F32, {2}, a.data()}});
    write_safetensors(d / "m-00002-of-00002.safetensors", {{"b", DType::F32, {3}, b.data()}});
    std::ofstream(d / "m.safetensors.index.json")
        << R"({"metadata": {}, "weight_map": {"a": "m-00001-of-00002.safetensors", "b": "m-00002-of-00002.safetensors"}})";
    auto src = open_safetensors(d / "m.safetensors.index.json");
    EXPECT_EQ(src->names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(load_f64(*src, "b"), (std::vector<double>{3, 4, 5}));

    std::ofstream(d / "bad.safetensors.index.json")
        << R"({"weight_map": {"a": "m-00001-of-00002.safetensors", "b": "m-00003-of-00003.safetensors"}})";
    expect_error([&] { open_safetensors(d / "bad.safetensors.index.json"); },
                 {"[safetensors]", "m-00003-of-00003.safetensors", "missing"});
    std::ofstream(d / "wrong.safetensors.index.json")
        << R"({"weight_map": {"a": "m-00002-of-00002.safetensors", "b": "m-00002-of-00002.safetensors"}})";
    expect_error([&] { open_safetensors(d / "wrong.safetensors.index.json"); }, {"[safetensors]", "lacks"});
    std::ofstream(d / "nomap.safetensors.index.json") << R"({"metadata": {}})";
    expect_error([&] { open_safetensors(d / "nomap.safetensors.index.json"); }, {"weight_map"});
}

TEST(SafeTensors, BadInputTable) {
    TempDir d;
    const std::string ok_data(24, '\0');
    struct Case {
        std::string name, header, data;
        std::vector<std::string> expect;
    };
    std::vector<Case> cases = {
        {"offsets_out_of_range", R"({"x": {"dtype": "F32", "shape": [6], "data_offsets": [0, 48]}})", ok_data,
         {"'x'", "outside"}},
        {"size_mismatch", R"({"x": {"dtype": "F32", "shape": [5], "data_offsets": [0, 24]}})", ok_data,
         {"'x'", "needs 20 bytes"}},
        {"unknown_dtype", R"({"x": {"dtype": "F4", "shape": [6], "data_offsets": [0, 6]}})", ok_data,
         {"'x'", "unsupported dtype F4"}},
        {"bad_json", R"({"x": {"dtype": )", ok_data, {"not valid JSON"}},
        {"negative_shape", R"({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", ok_data,
         {"'x'", "invalid shape"}},
        {"reversed_offsets", R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", ok_data,
         {"'x'", "outside"}},
        {"missing_fields", R"({"x": {"dtype": "F32"}})", ok_data, {"'x'", "lacks"}},
    };
    for (const Case& c : cases) {
        std::string p = d / (c.name + ".safetensors");
        write_raw(p, c.header, c.data);
        std::vector<std::string> frags = c.expect;
        frags.push_back("[safetensors]");
        frags.push_back(p);
        SCOPED_TRACE(c.name);
        expect_error([&] { SafeTensorsFile::open(p); }, frags);
    }
    // Truncated: header length larger than the file.
    {
        std::string p = d / "truncated.safetensors";
        std::ofstream out(p, std::ios::binary);
        uint64_t n = 1000;
        out.write(reinterpret_cast<const char*>(&n), 8);
        out << "{\"x\":";
    }
    expect_error([&] { SafeTensorsFile::open(d / "truncated.safetensors"); }, {"[safetensors]", "truncated"});
    {
        std::ofstream(d / "tiny.safetensors") << "abc";
    }
    expect_error([&] { SafeTensorsFile::open(d / "tiny.safetensors"); }, {"[safetensors]", "too short"});
    expect_error([&] { SafeTensorsFile::open(d / "nope.safetensors"); }, {"[safetensors]", "cannot open", "nope"});
    // A real fixture cut short: its last tensors fall outside the file.
    {
        std::ifstream in(fixture_path("dit_t2v.safetensors"), std::ios::binary);
        std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::ofstream(d / "cut.safetensors", std::ios::binary) << all.substr(0, all.size() / 2);
    }
    expect_error([&] { SafeTensorsFile::open(d / "cut.safetensors"); }, {"[safetensors]", "outside"});
}

TEST(SafeTensors, StreamingWriterRemovesPartialFileOnError) {
    TempDir d;
    std::string p = d / "partial.safetensors";
    {
        SafeTensorsWriter w(p);
        w.declare("a", DType::F32, {4});
        float v[2] = {1, 2};
        w.write(v, sizeof v);
        // destroyed before finish(): simulates a failure mid-write
    }
    EXPECT_FALSE(fs::exists(p));
    EXPECT_FALSE(fs::exists(p + ".tmp"));
}

}  // namespace wanrt::test
