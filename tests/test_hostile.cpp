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
