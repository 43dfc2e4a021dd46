// .pth reader: bit-exact against the safetensors copies of the fixture weights, a file written by
// real torch (mixed dtypes, strided views, nested dicts, nn.Module _metadata), hand-made archives
// for zip64 / big-endian / data-descriptor cases, and the bad-input table.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace wanrt;

namespace {

std::string fixture(const std::string& name) {
    return test::fixture_path(name);
}
std::string data_file(const std::string& name) {
    return std::string(WANRT_TEST_DATA) + "/" + name;
}

std::vector<double> as_f64(const StoredTensor& t) {
    std::vector<double> v(size_t(shape_numel(t.shape)));
    if (!v.empty()) convert_elements(t.data, t.dtype, v.data(), DType::F64, int64_t(v.size()));
    return v;
}

// Every tensor of the .pth equals the safetensors copy byte for byte (names, dtypes, shapes).
void expect_same_weights(const std::string& pth, const std::string& st) {
    auto a = open_pth(fixture(pth));
    auto b = open_safetensors(fixture(st));
    std::vector<std::string> weight_names;
    for (auto& n : b->names())
        if (n.rfind("in.", 0) != 0 && n.rfind("out.", 0) != 0 && n.rfind("mid.", 0) != 0) weight_names.push_back(n);
    EXPECT_EQ(a->names(), weight_names);
    for (auto& n : weight_names) {
        const StoredTensor* x = a->find(n);
        const StoredTensor* y = b->find(n);
        ASSERT_TRUE(x) << n;
        EXPECT_EQ(x->dtype, y->dtype) << n;
        EXPECT_EQ(x->shape, y->shape) << n;
        ASSERT_EQ(x->nbytes, y->nbytes) << n;
        EXPECT_EQ(std::memcmp(x->data, y->data, x->nbytes), 0) << n;
    }
}

// --- a tiny zip writer (stored entries) and pickle builder for hand-made archives ---
void put16(std::string& s, uint32_t v) {
    s += char(v & 0xff), s += char((v >> 8) & 0xff);
}
void put32(std::string& s, uint32_t v) {
    put16(s, v & 0xffff), put16(s, v >> 16);
}
void put64(std::string& s, uint64_t v) {
    put32(s, uint32_t(v)), put32(s, uint32_t(v >> 32));
}

struct ZipOpts {
    bool zip64 = false;       // zip64 EOCD + locator, saturated 32-bit fields with zip64 extras
    bool descriptor = false;  // flag bit 3 with zero sizes in the local headers (as torch writes)
    uint16_t method = 0;
};

std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries, ZipOpts o = {}) {
    std::string out, cd;
    for (auto& [name, data] : entries) {
        const uint64_t lho = out.size();
        const uint16_t flags = o.descriptor ? 8 : 0;
        put32(out, 0x04034b50), put16(out, 20), put16(out, flags), put16(out, o.method), put32(out, 0);
        put32(out, 0);  // crc (not checked)
        put32(out, o.descriptor ? 0 : uint32_t(data.size())), put32(out, o.descriptor ? 0 : uint32_t(data.size()));
        put16(out, uint16_t(name.size())), put16(out, 0);
        out += name + data;
        if (o.descriptor)
            put32(out, 0x08074b50), put32(out, 0), put32(out, uint32_t(data.size())), put32(out, uint32_t(data.size()));
        std::string extra;
        if (o.zip64)
            put16(extra, 1), put16(extra, 24), put64(extra, data.size()), put64(extra, data.size()), put64(extra, lho);
        put32(cd, 0x02014b50), put16(cd, 45), put16(cd, 45), put16(cd, flags), put16(cd, o.method), put32(cd, 0),
            put32(cd, 0);
        put32(cd, o.zip64 ? 0xffffffffu : uint32_t(data.size())),
            put32(cd, o.zip64 ? 0xffffffffu : uint32_t(data.size()));
        put16(cd, uint16_t(name.size())), put16(cd, uint16_t(extra.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0);
        put32(cd, 0), put32(cd, o.zip64 ? 0xffffffffu : uint32_t(lho));
        cd += name + extra;
    }
    const uint64_t cd_off = out.size();
    out += cd;
    if (o.zip64) {
        const uint64_t z64 = out.size();
        put32(out, 0x06064b50), put64(out, 44), put16(out, 45), put16(out, 45), put32(out, 0), put32(out, 0);
        put64(out, entries.size()), put64(out, entries.size()), put64(out, cd.size()), put64(out, cd_off);
        put32(out, 0x07064b50), put32(out, 0), put64(out, z64), put32(out, 1);
    }
    put32(out, 0x06054b50), put16(out, 0), put16(out, 0);
    put16(out, o.zip64 ? 0xffff : uint16_t(entries.size())), put16(out, o.zip64 ? 0xffff : uint16_t(entries.size()));
    put32(out, o.zip64 ? 0xffffffffu : uint32_t(cd.size())), put32(out, o.zip64 ? 0xffffffffu : uint32_t(cd_off));
    put16(out, 0);
    return out;
}

struct Pickle {
    std::string s = "\x80\x02";
    Pickle& raw(const std::string& x) {
        s += x;
        return *this;
    }
    Pickle& str(const std::string& x) {
        s += 'X';
        put32(s, uint32_t(x.size()));
        s += x;
        return *this;
    }
    Pickle& global(const std::string& m, const std::string& n) {
        s += 'c' + m + '\n' + n + '\n';
        return *this;
    }
    Pickle& i(int v) {
        s += 'J';
        put32(s, uint32_t(v));
        return *this;
    }
    Pickle& mark() {
        s += '(';
        return *this;
    }
    Pickle& tuple() {
        s += 't';
        return *this;
    }
    // key → _rebuild_tensor_v2(storage(type, key, numel), offset, size, stride, False, OrderedDict())
    Pickle& tensor(const std::string& name, const std::string& stype, const std::string& key, int numel, int offset,
                   std::vector<int> size, std::vector<int> stride) {
        str(name).global("torch._utils", "_rebuild_tensor_v2").mark();
        mark().str("storage").global("torch", stype).str(key).str("cpu").i(numel).tuple().raw("Q");
        i(offset).mark();
        for (int v : size) i(v);
        tuple().mark();
        for (int v : stride) i(v);
        tuple().raw("\x89").global("collections", "OrderedDict").raw(")R").tuple().raw("R");
        return *this;
    }
};

std::string write_tmp(const std::string& name, const std::string& bytes) {
    const std::string p = ::testing::TempDir() + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
}

std::string f32_bytes(std::vector<float> v, bool big = false) {
    std::string s(v.size() * 4, '\0');
    std::memcpy(s.data(), v.data(), s.size());
    if (big)
        for (size_t k = 0; k < v.size(); ++k) std::swap(s[4 * k], s[4 * k + 3]), std::swap(s[4 * k + 1], s[4 * k + 2]);
    return s;
}

// A one-tensor archive "a/": w = FloatStorage key "0" of 4 elements, viewed [2, 2] with stride (1, 2).
std::string small_archive(ZipOpts o = {}, const std::string& byteorder = "", bool big = false) {
    Pickle p;
    p.raw("}(").tensor("w", "FloatStorage", "0", 4, 0, {2, 2}, {1, 2}).raw("u.");
    std::vector<std::pair<std::string, std::string>> e{{"a/data.pkl", p.s}};
    if (!byteorder.empty()) e.push_back({"a/byteorder", byteorder});
    e.push_back({"a/data/0", f32_bytes({1, 2, 3, 4}, big)});
    return make_zip(e, o);
}

void expect_error(const std::string& path, const std::vector<std::string>& parts) {
    try {
        open_pth(path);
        ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_EQ(m.rfind("[pth] ", 0), 0u) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        for (auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
    }
}

}  // namespace

TEST(Pth, VaeFixtureWeightsBitExact) {
    expect_same_weights("vae_weights.pth", "vae.safetensors");
}
TEST(Pth, T5FixtureWeightsBitExact) {
    expect_same_weights("t5_weights.pth", "t5.safetensors");
}

// Written by torch 2.11 (tests/data/make_torch_pth.py); expected values from torch itself.
TEST(Pth, RealTorchMixedDtypesAndViews) {
    nlohmann::json exp;
    std::ifstream(data_file("torch_expected.json")) >> exp;
    for (const char* which : {"mixed", "module"}) {
        auto src = open_pth(data_file(std::string("torch_") + which + ".pth"));
        const auto& tensors = exp[which];
        std::vector<std::string> names;
        for (auto it = tensors.begin(); it != tensors.end(); ++it) names.push_back(it.key());
        std::sort(names.begin(), names.end());
        EXPECT_EQ(src->names(), names) << which;
        static const std::map<std::string, DType> dt = {
            {"float32", DType::F32}, {"bfloat16", DType::BF16}, {"float16", DType::F16}, {"float64", DType::F64},
            {"int64", DType::I64},   {"int32", DType::I32},     {"uint8", DType::U8}};
        for (auto& n : names) {
            const StoredTensor* t = src->find(n);
            ASSERT_TRUE(t) << n;
            const auto& e = tensors[n];
            EXPECT_EQ(t->dtype, dt.at(e["dtype"].get<std::string>())) << n;
            EXPECT_EQ(t->shape, e["shape"].get<Shape>()) << n;
            EXPECT_EQ(as_f64(*t), e["values"].get<std::vector<double>>()) << n;
        }
    }
}

TEST(Pth, Zip64AndDataDescriptors) {
    for (ZipOpts o : {ZipOpts{}, ZipOpts{true, false}, ZipOpts{false, true}, ZipOpts{true, true}}) {
        auto src = open_pth(write_tmp("z.pth", small_archive(o)));
        const StoredTensor* t = src->find("w");
        ASSERT_TRUE(t);
        EXPECT_EQ(t->shape, (Shape{2, 2}));
        EXPECT_EQ(as_f64(*t), (std::vector<double>{1, 3, 2, 4}));  // transposed view, made contiguous
    }
}

TEST(Pth, BigEndianIsByteSwapped) {
    auto src = open_pth(write_tmp("be.pth", small_archive({}, "big", true)));
    EXPECT_EQ(as_f64(*src->find("w")), (std::vector<double>{1, 3, 2, 4}));
    auto le = open_pth(write_tmp("le.pth", small_archive({}, "little", false)));
    EXPECT_EQ(as_f64(*le->find("w")), (std::vector<double>{1, 3, 2, 4}));
}

TEST(Pth, BadInputTable) {
    // Truncated zip: the first half of a real checkpoint (no central directory left).
    {
        std::ifstream f(fixture("vae_weights.pth"), std::ios::binary);
        std::string all((std::istreambuf_iterator<char>(f)), {});
        ASSERT_GT(all.size(), 1000u);
        expect_error(write_tmp("trunc.pth", all.substr(0, all.size() / 2)), {"truncated", "trunc.pth"});
        // Cut inside the data of the last entries: central directory present but pointing past the end.
        std::string cut = all;
        cut.erase(cut.size() / 2, 4096);
        expect_error(write_tmp("cut.pth", cut), {"cut.pth"});
    }
    expect_error(write_tmp("empty.pth", ""), {"too small"});
    expect_error(write_tmp("legacy.pth", std::string("\x80\x02\x8a\x0a", 4) + std::string(40, '\0')), {"legacy"});
    // No data.pkl.
    expect_error(write_tmp("nopkl.pth", make_zip({{"a/version", "3\n"}})), {"data.pkl"});
    // Disallowed global: named in the message.
    {
        Pickle p;
        p.global("os", "system").str("echo hi").raw("\x85R.");
        expect_error(write_tmp("evil.pth", make_zip({{"a/data.pkl", p.s}})),
                     {"disallowed global 'os.system'", "evil.pth"});
        Pickle q;
        q.raw("}(").str("m").global("torch.nn.modules.linear", "Linear").raw(")Ru.");
        expect_error(write_tmp("module.pth", make_zip({{"a/data.pkl", q.s}})),
                     {"torch.nn.modules.linear.Linear", "state_dict"});
    }
    // Storage out of range: an [8] view of a 4-element storage; an offset past the end.
    {
        Pickle p;
        p.raw("}(").tensor("w", "FloatStorage", "0", 4, 0, {8}, {1}).raw("u.");
        expect_error(write_tmp("oor.pth", make_zip({{"a/data.pkl", p.s}, {"a/data/0", f32_bytes({1, 2, 3, 4})}})),
                     {"storage out of range", "'w'", "oor.pth"});
        Pickle q;
        q.raw("}(").tensor("w", "FloatStorage", "0", 4, 3, {2, 1}, {1, 1}).raw("u.");
        expect_error(write_tmp("oor2.pth", make_zip({{"a/data.pkl", q.s}, {"a/data/0", f32_bytes({1, 2, 3, 4})}})),
                     {"storage out of range"});
        // The storage declares more elements than its entry holds.
        Pickle r;
        r.raw("}(").tensor("w", "FloatStorage", "0", 8, 0, {4}, {1}).raw("u.");
        expect_error(write_tmp("short.pth", make_zip({{"a/data.pkl", r.s}, {"a/data/0", f32_bytes({1, 2, 3, 4})}})),
                     {"declares 8 elements", "'w'"});
        // Missing storage entry.
        expect_error(write_tmp("nostor.pth", make_zip({{"a/data.pkl", p.s}})), {"a/data/0", "missing"});
    }
    // Compressed entries, unsupported dtypes, corrupt pickles.
    expect_error(write_tmp("deflate.pth", small_archive(ZipOpts{false, false, 8})), {"compressed"});
    {
        Pickle p;
        p.raw("}(").tensor("w", "CharStorage", "0", 4, 0, {4}, {1}).raw("u.");
        expect_error(write_tmp("int8.pth", make_zip({{"a/data.pkl", p.s}, {"a/data/0", "abcd"}})),
                     {"torch.CharStorage"});
        expect_error(write_tmp("badop.pth", make_zip({{"a/data.pkl", std::string("\x80\x02}\xff.", 5)}})),
                     {"opcode 0xff"});
        expect_error(
            write_tmp("short_pkl.pth", make_zip({{"a/data.pkl", std::string("\x80\x02}(X\xff\x00\x00\x00ab", 10)}})),
            {"a/data.pkl"});
        expect_error(write_tmp("notdict.pth", make_zip({{"a/data.pkl", std::string("\x80\x02K\x05.", 5)}})),
                     {"not a dict"});
    }
}
