// Hostile inputs and faults (issue 21): each defect found by hand or by fuzzing has a test of its
// exact input here. Every case expects the one-line "[module] what, where, what to do" error (or a
// clean CLI exit 1 with one line on stderr), never a crash, an abort or a silent wrong value.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/pth.h"
#include "models/clip.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/vae.h"
#include "test_util.h"

using namespace wanrt;
namespace fs = std::filesystem;

namespace {

void put16(std::string& s, uint32_t v) {
    s += char(v & 0xff), s += char((v >> 8) & 0xff);
}
void put32(std::string& s, uint32_t v) {
    put16(s, v & 0xffff), put16(s, v >> 16);
}

// A zip of stored entries, as torch.save writes them (no zip64, no descriptors).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
    std::string out, cd;
    for (auto& [name, data] : entries) {
        const uint32_t lho = uint32_t(out.size());
        put32(out, 0x04034b50), put16(out, 20), put16(out, 0), put16(out, 0), put32(out, 0), put32(out, 0);
        put32(out, uint32_t(data.size())), put32(out, uint32_t(data.size()));
        put16(out, uint16_t(name.size())), put16(out, 0);
        out += name + data;
        put32(cd, 0x02014b50), put16(cd, 20), put16(cd, 20), put16(cd, 0), put16(cd, 0), put32(cd, 0), put32(cd, 0);
        put32(cd, uint32_t(data.size())), put32(cd, uint32_t(data.size()));
        put16(cd, uint16_t(name.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0), put32(cd, 0);
        put32(cd, lho);
        cd += name;
    }
    const uint32_t cd_off = uint32_t(out.size());
    out += cd;
    put32(out, 0x06054b50), put16(out, 0), put16(out, 0), put16(out, uint16_t(entries.size()));
    put16(out, uint16_t(entries.size())), put32(out, uint32_t(cd.size())), put32(out, cd_off), put16(out, 0);
    return out;
}

std::string tmp_dir(const std::string& name) {
    const std::string d = ::testing::TempDir() + "/hostile_" + name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string write_file(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

// Runs f, expects a wanrt::Error whose one-line message starts with "[module] " and holds every part.
template <class F>
void expect_error(F&& f, const std::string& module, const std::vector<std::string>& parts) {
    try {
        f();
        ADD_FAILURE() << "no error; expected [" << module << "] with " << (parts.empty() ? "" : parts[0]);
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_EQ(m.rfind("[" + module + "] ", 0), 0u) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        for (auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
    }
}

std::string pth_of_pickle(const std::string& name, const std::string& pickle) {
    return write_file(tmp_dir("pth") + "/" + name, make_zip({{"a/data.pkl", pickle}}));
}

}  // namespace

// ---------------------------------------------------------------- pth unpickler

// The self-referencing pickle that crashed (SIGSEGV in the flattening recursion, and the cycle
// leaked under LeakSanitizer): PROTO 2, EMPTY_DICT, BINPUT 0, SHORT_BINUNICODE "a", BINGET 0,
// SETITEM, STOP — a dict put into itself.
TEST(HostilePth, SelfReferencingDictIsRefused) {
    const std::string pkl("\x80\x02}q\x00\x8c\x01" "ah\x00s.", 12);
    expect_error([&] { open_pth(pth_of_pickle("self.pth", pkl)); }, "pth", {"refers to itself", "self.pth"});
    // A list appended into itself (APPEND of its own memo entry) inside the root dict.
    const std::string pkl2("\x80\x02}q\x00(X\x01\x00\x00\x00" "a]q\x01h\x01" "au.", 20);
    expect_error([&] { open_pth(pth_of_pickle("self2.pth", pkl2)); }, "pth", {"refers to itself"});
}

// 100 000 nested lists (two bytes each): the recursion that flattens them would overflow the stack.
TEST(HostilePth, DeepNestingIsRefused) {
    std::string pkl("\x80\x02}X\x01\x00\x00\x00k", 9);
    const int n = 100000;
    for (int i = 0; i < n; ++i) pkl += ']';
    for (int i = 0; i < n - 1; ++i) pkl += 'a';  // APPEND: each list into the one below it
    pkl += "s.";
    expect_error([&] { open_pth(pth_of_pickle("deep.pth", pkl)); }, "pth", {"nest deeper than 64"});
}

// "Billion laughs": each list holds the previous one twice; 40 levels expand to 2^40 entries.
TEST(HostilePth, SharedExpansionIsRefused) {
    std::string pkl("\x80\x02}X\x01\x00\x00\x00kN", 10);
    for (int i = 0; i < 40; ++i) pkl += std::string("q\x00" "0(h\x00h\x00l", 9);  // BINPUT 0, POP; [m0, m0]
    pkl += "s.";
    expect_error([&] { open_pth(pth_of_pickle("laughs.pth", pkl)); }, "pth", {"expands to more than"});
}

TEST(HostilePth, MemoIndexBeyondLimitIsRefused) {
    const std::string pkl("\x80\x02}r\xff\xff\xff\xff.", 9);
    expect_error([&] { open_pth(pth_of_pickle("memo.pth", pkl)); }, "pth", {"memo index 4294967295"});
}

// ---------------------------------------------------------------- typed config reading

namespace {
// The DiT config of the issue with one key replaced by a raw JSON value.
std::string dit_json(const std::string& key, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(DitConfig::preset("t2v-1.3B").to_json());
    std::string s = j.dump();
    return s.substr(0, s.size() - 1) + ",\"" + key + "\":" + value + "}";
}
void expect_dit_error(const std::string& key, const std::string& value, const std::vector<std::string>& parts) {
    SCOPED_TRACE(key + " = " + value);
    expect_error([&] { DitConfig::from_json(dit_json(key, value), "cfg/config.json"); }, "dit", parts);
}
}  // namespace

TEST(HostileConfig, DitWrongTypesNameKeyAndType) {
    // Each of these aborted on an uncaught nlohmann::type_error.
    expect_dit_error("qk_norm", "\"yes\"", {"cfg/config.json", "\"qk_norm\" must be a boolean", "\"yes\""});
    expect_dit_error("cross_attn_norm", "1", {"\"cross_attn_norm\" must be a boolean", "got 1"});
    expect_dit_error("patch_size", "[\"a\",2,2]", {"\"patch_size\"[0] must be an integer", "\"a\""});
    expect_dit_error("patch_size", "[1,2]", {"\"patch_size\" must be a list of 3 integers"});
    expect_dit_error("model_type", "7", {"\"model_type\" must be a string"});
    expect_dit_error("eps", "\"small\"", {"\"eps\" must be a number"});
    expect_dit_error("window_size", "{}", {"\"window_size\" must be a list of 2 integers"});
}

TEST(HostileConfig, DitFractionsAndHugeNumbersRefused) {
    // 1.5 was silently 1; 1e21 was an undefined float→int cast.
    expect_dit_error("patch_size", "[1.5,2,2]", {"\"patch_size\"[0] must be an integer", "1.5"});
    expect_dit_error("patch_size", "[1e21,2,2]", {"\"patch_size\"[0] must be an integer"});
    expect_dit_error("num_layers", "1e12", {"\"num_layers\" must be an integer in [1, 1024]"});
    expect_dit_error("num_layers", "1000000000000", {"\"num_layers\" must be an integer in [1, 1024]"});
    expect_dit_error("dim", "1000000000000", {"\"dim\" must be an integer in [1, 65536]"});
    expect_dit_error("dim", "18446744073709551615", {"\"dim\" must be an integer"});
    expect_dit_error("dim", "-1536", {"\"dim\" must be an integer in [1, 65536]"});
    expect_dit_error("num_heads", "0", {"\"num_heads\" must be an integer in [1, 1024]"});
    expect_dit_error("ffn_dim", "1e400", {"not valid JSON"});
    expect_dit_error("eps", "0", {"\"eps\" must be a number in"});
    expect_error([] { DitConfig::from_json("[1,2]", "c.json"); }, "dit", {"not a JSON object"});
}

// The largest accepted config still counts its parameters without overflow (and the count is positive).
TEST(HostileConfig, ParamCountAtTheLimitsIsExact) {
    DitConfig c = DitConfig::preset("t2v-1.3B");
    c.dim = 65536, c.num_heads = 1024, c.ffn_dim = 262144, c.num_layers = 1024, c.text_dim = 65536, c.freq_dim = 65536;
    c.validate("limits");
    const int64_t n = dit_param_count(c);
    EXPECT_GT(n, int64_t(1) << 44);  // 1024 layers × (8 D² + 2 D·F) ≈ 4.0e13
    c.dim = 65537 * 2;
    expect_error([&] { c.validate("limits"); }, "dit", {"dim = 131074 is larger than any Wan model"});
    // shape_numel: a product past int64 is bad input, not a wrapped negative size.
    expect_error([] { shape_numel({int64_t(1) << 40, int64_t(1) << 40}); }, "tensor", {"64 bits"});
    EXPECT_EQ(shape_numel({3, 0, int64_t(1) << 62}), 0);
}

TEST(HostileConfig, T5ClipVaeWrongTypesAndBounds) {
    const std::string t5 = R"({"vocab":256384,"dim":64,"dim_attn":64,"dim_ffn":128,"num_heads":2,"num_layers":2,)";
    EXPECT_EQ(T5Config::from_json(t5 + R"("num_buckets":32})").num_buckets, 32);
    expect_error([&] { T5Config::from_json(t5 + R"("num_buckets":32,"shared_pos":"no"})"); }, "t5",
                 {"\"shared_pos\" must be a boolean"});
    expect_error([&] { T5Config::from_json(t5 + R"("num_buckets":3.5})"); }, "t5", {"\"num_buckets\" must be an integer"});
    expect_error([&] { T5Config::from_json(t5 + R"("num_buckets":1e30})"); }, "t5", {"\"num_buckets\""});
    expect_error([&] { T5Config::from_json(R"({"vocab":5000000000000})"); }, "t5", {"\"vocab\" must be an integer in"});
    expect_error([&] { T5Config::from_json(t5 + "}"); }, "t5", {"not valid JSON"});
    expect_error([&] { T5Config::from_json(R"({"vocab":10})"); }, "t5", {"lacks the integer \"dim\""});

    expect_error([] { ClipVisionConfig::from_json(R"({"vision_layers":"32"})", "clip.json"); }, "clip",
                 {"clip.json", "\"vision_layers\" must be an integer"});
    expect_error([] { ClipVisionConfig::from_json(R"({"vision_mlp_ratio":"4"})", "clip.json"); }, "clip",
                 {"\"vision_mlp_ratio\" must be a number"});
    expect_error([] { ClipVisionConfig::from_json(R"({"vision_dim":1e12})", "clip.json"); }, "clip", {"\"vision_dim\""});

    expect_error([] { VaeConfig::from_json(R"({"dim":"96"})"); }, "vae", {"\"dim\" must be an integer"});
    expect_error([] { VaeConfig::from_json(R"({"dim_mult":[1,2,4,1e9]})"); }, "vae", {"\"dim_mult\"[3]"});
    expect_error([] { VaeConfig::from_json(R"({"temperal_downsample":[0,1,1]})"); }, "vae",
                 {"\"temperal_downsample\"[0] must be a boolean"});
    expect_error([] { VaeConfig::from_json(R"({"attn_scales":"none"})"); }, "vae", {"\"attn_scales\" must be a list"});
}
