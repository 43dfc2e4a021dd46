// Hostile inputs and faults (issue 21): each defect found by hand or by fuzzing has a test of its
// exact input here. Every case expects the one-line "[module] what, where, what to do" error (or a
// clean CLI exit 1 with one line on stderr), never a crash, an abort or a silent wrong value.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/output_file.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/vae.h"
#include "pipeline/demo.h"
#include "pipeline/generate.h"
#include "runtime/device.h"
#include "test_util.h"
#include "video/video_writer.h"

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

// Per process: ctest runs the tests of this file in parallel processes.
std::string tmp_dir(const std::string& name) {
    const std::string d = ::testing::TempDir() + "/hostile_" + std::to_string(::getpid()) + "_" + name;
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

// ---------------------------------------------------------------- CLI flags: bounds, parse errors

namespace {
using test::CliRun;
using test::run_cli;
using test::run_shell;

// Exit 1 and exactly one line of output that holds `expect` (and no output file).
void expect_one_line(const std::string& args, const std::string& expect) {
    CliRun r = run_cli(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(expect), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("wanrt: [", 0), 0u) << args << "\n" << r.out;
}

// Files in a folder, hidden ones included (a leftover temporary file starts with '.').
std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> v;
    for (auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
}
}  // namespace

TEST(HostileCli, FlagBoundsAreOneLineExitOne) {
    const std::string d = tmp_dir("flags"), out = " --save_file " + d + "/x.y4m";
    // --threads 100000 aborted (std::system_error creating threads); -1 silently meant all cores.
    expect_one_line("generate --threads 100000" + out, "--threads: must be an integer in [0, ");
    expect_one_line("generate --threads -1" + out, "--threads: must be an integer in [0, ");
    expect_one_line("stream --input a.y4m --output b.y4m --prompt p --threads 100000", "--threads: must be an integer");
    expect_one_line("bench dit --threads 99999", "--threads: must be an integer");
    // A seed past int64 was silently clamped.
    expect_one_line("generate --base_seed 99999999999999999999" + out,
                    "--base_seed: must be an integer in [-9223372036854775808, 9223372036854775807]");
    expect_one_line("stream --input a.y4m --output b.y4m --prompt p --seed 1e3", "--seed: must be an integer");
    // --frames_per_block near int64 max gave an overflow message instead of the flag's rule.
    expect_one_line("generate --causal --frames_per_block 9223372036854775800" + out,
                    "--frames_per_block: must be an integer in [1, 1024]");
    expect_one_line("generate --frame_num 0" + out, "--frame_num: must be an integer in [1, 1048576]");
    expect_one_line("generate --sample_steps 100000" + out, "--sample_steps: must be an integer in [1, 1000]");
    expect_one_line("stream --input a.y4m --output b.y4m --prompt p --cache_frames 5000", "--cache_frames: must be");
    // A path longer than a file name may be aborted `info` (an uncaught std::filesystem_error).
    expect_one_line("info " + std::string(300, 'x'), "File name too long; check the path");
    // CLI11's own parse errors exited 104-109 with two lines.
    expect_one_line("generate --bogus", "[cli] The following argument was not expected: --bogus");
    expect_one_line("info", "[cli] dir is required");
    expect_one_line("stream --input a.y4m", "[cli] --output is required");
    expect_one_line("generate --frame_num abc", "--frame_num: must be an integer");
    expect_one_line("nosuchcommand", "[cli]");
    EXPECT_EQ(files_in(d), std::vector<std::string>{});
    // --help still prints the flags and exits 0.
    CliRun h = run_cli("generate --help");
    EXPECT_EQ(h.code, 0) << h.out;
    EXPECT_NE(h.out.find("--frame_num"), std::string::npos) << h.out;
}

// Every limit is checked before any work: these fail at once (the RoPE limit came after 20 s of work,
// a 100000² size ran out of memory).
TEST(HostileCli, LimitsAndDestinationsBeforeWork) {
    const std::string d = tmp_dir("early"), out = " --save_file " + d + "/x.y4m";
    // CPU time of the CLI processes, not wall time: a loaded 2-core CI runner stretches the wall clock
    // of seven process starts past any fixed bound, while work (loading, denoising) costs CPU seconds.
    // Against seven refusals by the argument parser, which do nothing but start: a process start alone
    // costs 0.6-0.8 s of CPU in a CUDA build on a loaded machine (the cuDNN and cuBLAS libraries load).
    auto children_cpu_s = [] {
        rusage u{};
        getrusage(RUSAGE_CHILDREN, &u);
        return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    };
    const double b0 = children_cpu_s();
    for (int i = 0; i < 7; ++i) expect_one_line("generate --bogus", "[cli] The following argument was not expected");
    const double starts = children_cpu_s() - b0;
    const double t0 = children_cpu_s();
    expect_one_line("generate --frame_num 100001 --device cpu" + out, "pass --frame_num at most 4093");
    expect_one_line("generate --size 100000*100000 --device cpu" + out, "--size 100000*100000 is too large");
    expect_one_line("generate --size 99999999999999999999*16 --device cpu" + out, "bad --size");
    expect_one_line("generate --causal --frame_num 100001 --device cpu" + out, "--frame_num");
    expect_one_line("generate --device cpu --save_file " + d + "/no/such/x.y4m", "does not exist");
    expect_one_line("generate --device cpu --save_file " + d, "is a folder");
    // stream checks its output before reading the input or loading anything.
    expect_one_line("stream --input " + d + "/missing.y4m --output " + d + "/no/such/o.y4m --prompt p",
                    "[stream] cannot write " + d + "/no/such/o.y4m: folder " + d + "/no/such does not exist");
    const double s = children_cpu_s() - t0;
    EXPECT_LT(s, starts + 3.0) << "the refusals took " << s << " s of CPU, seven bare process starts " << starts
                               << " s; they must come before any work";
    EXPECT_EQ(files_in(d), std::vector<std::string>{});
}

// ---------------------------------------------------------------- temp files, signals, disk full

namespace {
const std::string& demo_folder();  // below: the demo model as an official-layout folder
}  // namespace

namespace {
Rgb24Video small_video(int frames = 3) {
    Rgb24Video v;
    v.frames = frames, v.width = 32, v.height = 16;
    v.rgb.assign(size_t(frames) * v.frame_bytes(), 0);
    for (size_t i = 0; i < v.rgb.size(); ++i) v.rgb[i] = uint8_t(i * 7);
    return v;
}
std::string slurp(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
}  // namespace

// The fixed "<file>.tmp" followed a symlink someone placed there and truncated its target.
TEST(HostileOutput, PlantedTmpSymlinkIsNeverFollowed) {
    const std::string d = tmp_dir("symlink"), victim = d + "/victim.txt", dst = d + "/out.y4m";
    write_file(victim, "precious");
    fs::create_symlink(victim, dst + ".tmp");
    write_video(dst, small_video());
    EXPECT_EQ(slurp(victim), "precious");
    EXPECT_EQ(read_y4m(dst).frames, 3);
    EXPECT_EQ(files_in(d), (std::vector<std::string>{"out.y4m", "out.y4m.tmp", "victim.txt"}));
    // The same for the safetensors writer and small JSON files.
    write_safetensors(d + "/w.safetensors", {{"a", DType::F32, {1}, "\0\0\0\0"}});
    fs::create_symlink(victim, d + "/c.json.tmp");
    write_file_atomic(d + "/c.json", "{}", "test");
    EXPECT_EQ(slurp(victim), "precious");
    EXPECT_EQ(slurp(d + "/c.json"), "{}");
    EXPECT_EQ(registered_temp_outputs(), 0);
}

TEST(HostileOutput, TempNamesAreUniqueAndRemovedOnError) {
    const std::string d = tmp_dir("unique"), dst = d + "/v.y4m";
    {
        TempOutput a(dst), b(dst);
        EXPECT_NE(a.path(), b.path());
        EXPECT_EQ(fs::path(a.path()).parent_path(), fs::path(d));
        EXPECT_EQ(fs::path(a.path()).filename().string().rfind(".v.y4m.", 0), 0u) << a.path();
        EXPECT_EQ(registered_temp_outputs(), 2);
        a.write("abc", 3);
        a.commit();
        EXPECT_EQ(slurp(dst), "abc");
    }  // b removed here
    EXPECT_EQ(files_in(d), std::vector<std::string>{"v.y4m"});
    EXPECT_EQ(registered_temp_outputs(), 0);
    expect_error([&] { TempOutput t(d + "/no/such/x.y4m"); }, "output", {"creating a file in", "No such file"});
    expect_error([&] { check_output_writable(d, "generate", "--save_file"); }, "generate", {"is a folder"});
}

// SIGINT / SIGTERM / SIGHUP / SIGPIPE while an output is being written: the temporary file is
// removed, one line, exit 128 + the signal.
TEST(HostileOutput, SignalsRemoveTheTempFileAndExit128PlusSignal) {
    const std::map<int, std::string> said = {{SIGINT, "wanrt: interrupted (SIGINT)"},
                                             {SIGTERM, "wanrt: terminated (SIGTERM)"},
                                             {SIGHUP, "wanrt: hung up (SIGHUP)"},
                                             {SIGPIPE, "wanrt: output pipe closed (SIGPIPE)"}};
    for (const auto& [sig, line] : said) {
        const std::string d = tmp_dir(cat("sig", sig)), err = ::testing::TempDir() + "/hostile_sig_err_" + std::to_string(::getpid()) + ".txt";
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 2);
            install_output_signal_guard();
            TempOutput t(d + "/out.mp4");
            t.write("partial", 7);
            raise(sig);
            _exit(0);  // not reached
        }
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
        EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
        EXPECT_EQ(files_in(d), std::vector<std::string>{}) << "the temporary file was left behind";
        const std::string msg = slurp(err);
        EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 1) << msg;
        EXPECT_NE(msg.find(line), std::string::npos) << msg;
        EXPECT_NE(msg.find("unfinished output file was removed"), std::string::npos) << msg;
    }
}

// The real command: Ctrl-C during a generation leaves nothing in the output folder.
TEST(HostileOutput, SigintDuringGenerateExits130AndWritesNothing) {
    const std::string d = tmp_dir("sigcli");
    CliRun r = run_shell("cd " + d + " && (" + wanrt::test::wanrt_binary() +
                         " generate --device cpu --threads 2 --sample_steps 200 --save_file " + d +
                         "/v.y4m & pid=$!; sleep 1.5; kill -INT $pid; wait $pid; echo rc=$?)");
    EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("wanrt: interrupted (SIGINT); no output was written"), std::string::npos) << r.out;
    EXPECT_EQ(files_in(d), std::vector<std::string>{});
}

// A full disk (a 32 KiB tmpfs in a private mount namespace) or a file-size limit (ulimit -f): one
// line saying so, exit 1, and nothing left in the folder.
TEST(HostileOutput, DiskFullLeavesNoPartialOutput) {
    const std::string d = tmp_dir("full");
    const std::string gen = wanrt::test::wanrt_binary() + " generate --ckpt_dir " + demo_folder() +
                            " --device cpu --threads 2 --size 64*64 --frame_num 5 --sample_steps 1";
    // ulimit -f counts 1024-byte blocks in bash: the 61 KB video cannot fit in 16 KB.
    CliRun r = run_shell("bash -c 'ulimit -f 16; " + gen + " --save_file " + d + "/v.y4m 2>&1 | tail -1; exit ${PIPESTATUS[0]}'");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("wanrt: [video] writing " + d + "/v.y4m failed: the file size limit was reached"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("nothing was written"), std::string::npos) << r.out;
    EXPECT_EQ(files_in(d), std::vector<std::string>{});
    // A real ENOSPC where mount namespaces are available (root or unprivileged user namespaces).
    CliRun t = run_shell("unshare -rm sh -c 'mount -t tmpfs -o size=32k tmpfs " + d + " && " + gen +
                         " --save_file " + d + "/v.y4m 2>&1 | tail -1; ls -A " + d + "; echo done'");
    if (t.out.find("Operation not permitted") == std::string::npos && t.out.find("not found") == std::string::npos) {
        EXPECT_NE(t.out.find("failed: the disk is full (No space left on device); nothing was written"), std::string::npos)
            << t.out;
        EXPECT_NE(t.out.find("choose another folder\ndone"), std::string::npos) << "files left on the tmpfs:\n" << t.out;
    } else {
        std::printf("note: no mount namespace here (%s); the ENOSPC case ran as the ulimit case above\n", t.out.c_str());
    }
}

// A write failure inside the writers: the error says so and the destination is untouched.
TEST(HostileOutput, WriteFailureThroughTheWritersKeepsTheOldFile) {
    const std::string d = tmp_dir("wfail"), dst = d + "/w.safetensors";
    write_file(dst, "old");
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl {8192, 8192};
        setrlimit(RLIMIT_FSIZE, &rl);
        std::vector<float> big(100000, 1.f);
        try {
            write_safetensors(dst, {{"a", DType::F32, {100000}, big.data()}});
            _exit(2);
        } catch (const Error& e) {
            _exit(std::string(e.what()).find("file size limit") != std::string::npos ? 1 : 3);
        }
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1) << "2: no error; 3: another message";
    EXPECT_EQ(slurp(dst), "old");
    EXPECT_EQ(files_in(d), std::vector<std::string>{"w.safetensors"});
}

// ---------------------------------------------------------------- safetensors and y4m structure

namespace {
// A safetensors file with a raw JSON header (padded to 8 bytes) and `data` bytes after it.
std::string safetensors_bytes(const std::string& header, size_t data) {
    std::string h = header;
    while ((8 + h.size()) % 8) h += ' ';
    std::string out(8, '\0');
    const uint64_t n = h.size();
    std::memcpy(out.data(), &n, 8);
    return out + h + std::string(data, '\x01');
}
}  // namespace

TEST(HostileSafetensors, StructuralChecks) {
    const std::string d = tmp_dir("st");
    auto open_st = [&](const std::string& name, const std::string& header, size_t data) {
        return [=] { SafeTensorsFile::open(write_file(d + "/" + name, safetensors_bytes(header, data))); };
    };
    // Two entries for one name (nlohmann kept one silently).
    expect_error(open_st("dup.safetensors",
                         R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         8),
                 "safetensors", {"dup.safetensors", "tensor 'w' appears twice"});
    // Two tensors sharing bytes.
    expect_error(open_st("overlap.safetensors",
                         R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         12),
                 "safetensors", {"tensors 'a' and 'b' overlap", "[0, 8)", "[4, 12)"});
    // Past the data region, and offsets near 2^64.
    expect_error(open_st("oob.safetensors", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
                 "safetensors", {"outside the 8-byte data region"});
    expect_error(open_st("wrap.safetensors",
                         R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,0]}})", 8),
                 "safetensors", {"outside"});
    expect_error(open_st("huge.safetensors",
                         R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 8),
                 "safetensors", {"too large"});
    // Empty tensors may share an offset; adjacent ones are fine.
    auto ok = SafeTensorsFile::open(write_file(
        d + "/ok.safetensors",
        safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          8)));
    EXPECT_EQ(ok->names().size(), 3u);
}

TEST(HostileSafetensors, IndexShardsStayInTheModelFolder) {
    const std::string root = tmp_dir("index"), d = root + "/model";
    fs::create_directories(d);
    write_safetensors(root + "/outside.safetensors", {{"w", DType::F32, {1}, "\0\0\0\0"}});
    for (const std::string& shard : std::vector<std::string>{"../outside.safetensors", root + "/outside.safetensors", "sub/x.safetensors",
                                     "..", "", "a\\\\b.safetensors"}) {
        SCOPED_TRACE(shard);
        const std::string idx = write_file(d + "/m.safetensors.index.json",
                                           R"({"weight_map":{"w":")" + shard + R"("}})");
        expect_error([&] { open_safetensors(idx); }, "safetensors",
                     {"m.safetensors.index.json", "which is not a file name in the model folder"});
    }
}

// fuzz/crashes/safetensors-index-long-shard-name.json (found by fuzz_safetensors_index, 4.7 M execs
// into its long run): a shard name longer than a file name may be (NAME_MAX) made the lookup throw
// an uncaught std::filesystem_error (abort) instead of the one-line error.
TEST(HostileSafetensors, IndexShardNameTooLongIsOneLine) {
    const std::string d = tmp_dir("index_long");
    std::ifstream in(std::string(WANRT_TEST_DATA) + "/../../fuzz/crashes/safetensors-index-long-shard-name.json",
                     std::ios::binary);
    ASSERT_TRUE(in) << "fuzz/crashes/safetensors-index-long-shard-name.json is missing";
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string idx = write_file(d + "/m.safetensors.index.json", bytes);
    expect_error([&] { open_safetensors(idx); }, "safetensors", {"m.safetensors.index.json", "cannot be looked up"});
    const std::string idx2 = write_file(d + "/n.safetensors.index.json",
                                        R"({"weight_map":{"w":")" + std::string(300, 'x') + R"("}})");
    expect_error([&] { open_safetensors(idx2); }, "safetensors", {"File name too long", "re-download it"});
}

TEST(HostileVideo, Y4mBadDimensionsAreNamed) {
    const std::string d = tmp_dir("y4m");
    struct Case {
        std::string header, expect;
    };
    for (const Case& c : std::vector<Case>{
             {"YUV4MPEG2 W-5 H16 F16:1 C444", "width \"W-5\" is not a number in 1..16384"},
             {"YUV4MPEG2 W0 H16 C444", "width \"W0\""},
             {"YUV4MPEG2 W99999999999999999999 H16 C444", "width \"W99999999999999999999\""},
             {"YUV4MPEG2 W16 H16x C444", "height \"H16x\""},
             {"YUV4MPEG2 W16 H100000 C444", "height \"H100000\""},
             {"YUV4MPEG2 W16 C444", "has no height (H)"},
             {"YUV4MPEG2 H16 C444", "has no width (W)"},
         }) {
        SCOPED_TRACE(c.header);
        const std::string p = write_file(d + "/bad.y4m", c.header + "\nFRAME\n" + std::string(768, '\x80'));
        expect_error([&] { read_video(p); }, "video", {"bad.y4m", c.expect});
    }
    // The stream command reports it as one line too.
    const std::string p = write_file(d + "/bad.y4m", "YUV4MPEG2 W-5 H16 C444\nFRAME\n");
    expect_one_line("stream --input " + p + " --output " + d + "/o.y4m --prompt p --device cpu", "width \"W-5\"");
}

// ---------------------------------------------------------------- info on broken folders

namespace {
// The demo model as an official-layout folder, written once.
const std::string& demo_folder() {
    static const std::string dir = [] {
        const std::string d = tmp_dir("info") + "/good";
        CliRun s = run_cli("synth --model demo --full_folder --out " + d);
        if (s.code != 0) throw std::runtime_error("synth failed: " + s.out);
        return d;
    }();
    return dir;
}
std::string copy_folder(const std::string& name) {
    const std::string d = fs::path(demo_folder()).parent_path().string() + "/" + name;
    fs::remove_all(d);
    fs::copy(demo_folder(), d, fs::copy_options::recursive);
    return d;
}
// info exits 1; the last line is the one error naming the problem.
void expect_info_fails(const std::string& dir, const std::vector<std::string>& parts) {
    CliRun r = run_cli("info " + dir);
    EXPECT_EQ(r.code, 1) << r.out;
    std::string last = r.out.substr(0, r.out.size() - 1);
    last = last.substr(last.rfind('\n') + 1);
    EXPECT_EQ(last.rfind("wanrt: [info] " + dir + " cannot run: ", 0), 0u) << r.out;
    for (auto& p : parts) EXPECT_NE(last.find(p), std::string::npos) << "'" << p << "' not in: " << last;
    EXPECT_EQ(r.out.find("complete: `wanrt generate"), std::string::npos) << r.out;
}
void truncate_file(const std::string& p, double keep) {
    const auto n = fs::file_size(p);
    fs::resize_file(p, uintmax_t(double(n) * keep));
}
}  // namespace

TEST(HostileInfo, GoodFolderIsExitZero) {
    CliRun r = run_cli("info " + demo_folder());
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("complete: `wanrt generate --ckpt_dir DIR` can run it"), std::string::npos) << r.out;
}

TEST(HostileInfo, BrokenFoldersExitOneNamingTheProblem) {
    const std::string dit = "/diffusion_pytorch_model.safetensors";
    {  // truncated DiT weights
        const std::string d = copy_folder("trunc_dit");
        truncate_file(d + dit, 0.5);
        expect_info_fails(d, {"DiT weights: [safetensors]", "truncated"});
    }
    {  // truncated VAE and text encoder .pth
        const std::string d = copy_folder("trunc_pth");
        truncate_file(d + "/Wan2.1_VAE.pth", 0.7);
        truncate_file(d + "/models_t5_umt5-xxl-enc-bf16.pth", 0.3);
        expect_info_fails(d, {"VAE: [pth]", "and 1 more problem(s)"});
    }
    {  // a DiT tensor stored as int32 (same shape): loads nowhere
        const std::string d = copy_folder("dtype");
        auto src = SafeTensorsFile::open(d + dit);
        std::vector<TensorToWrite> tw;
        std::vector<std::vector<int32_t>> keep;
        for (const std::string& n : src->names()) {
            const StoredTensor* t = src->find(n);
            if (n == "head.head.bias") {
                keep.emplace_back(size_t(shape_numel(t->shape)), 1);
                tw.push_back({n, DType::I32, t->shape, keep.back().data()});
            } else {
                tw.push_back({n, t->dtype, t->shape, t->data});
            }
        }
        const std::string tmp = d + "/rewritten.safetensors";
        write_safetensors(tmp, tw);
        src.reset();
        fs::rename(tmp, d + dit);
        expect_info_fails(d, {"head.head.bias is i32, not f32/f16/bf16"});
    }
    {  // a missing tensor
        const std::string d = copy_folder("missing_tensor");
        auto src = SafeTensorsFile::open(d + dit);
        std::vector<TensorToWrite> tw;
        for (const std::string& n : src->names())
            if (n != "blocks.1.ffn.2.weight") tw.push_back({n, src->find(n)->dtype, src->find(n)->shape, src->find(n)->data});
        write_safetensors(d + "/rewritten.safetensors", tw);
        src.reset();
        fs::rename(d + "/rewritten.safetensors", d + dit);
        expect_info_fails(d, {"tensor blocks.1.ffn.2.weight is missing"});
    }
    {  // an index naming a shard that was not downloaded
        const std::string d = copy_folder("missing_shard");
        auto src = SafeTensorsFile::open(d + dit);
        nlohmann::json idx;
        for (const std::string& n : src->names()) idx["weight_map"][n] = "diffusion_pytorch_model-00001-of-00002.safetensors";
        idx["weight_map"]["blocks.9.ffn.2.weight"] = "diffusion_pytorch_model-00002-of-00002.safetensors";
        src.reset();
        fs::rename(d + dit, d + "/diffusion_pytorch_model-00001-of-00002.safetensors");
        write_file(d + "/diffusion_pytorch_model.safetensors.index.json", idx.dump());
        expect_info_fails(d, {"names shard diffusion_pytorch_model-00002-of-00002.safetensors which is missing"});
    }
    {  // config.json with a wrong type and an absurd size: refused before anything is sized from it
        const std::string d = copy_folder("bad_config");
        auto j = nlohmann::json::parse(slurp(d + "/config.json"));
        j["qk_norm"] = "yes";
        write_file(d + "/config.json", j.dump());
        expect_info_fails(d, {"config: [dit]", "\"qk_norm\" must be a boolean"});
        j["qk_norm"] = true;
        j["num_layers"] = 1e12;
        write_file(d + "/config.json", j.dump());
        const auto t0 = std::chrono::steady_clock::now();
        expect_info_fails(d, {"\"num_layers\" must be an integer in [1, 1024]"});
        EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
    }
    {  // a missing part
        const std::string d = copy_folder("no_vae");
        fs::remove(d + "/Wan2.1_VAE.pth");
        expect_info_fails(d, {"missing VAE"});
    }
}

// ---------------------------------------------------------------- out of memory at the stage boundary

// An allocation failure inside a stage (here raised by the stage callback where the CUDA allocator
// or a library workspace would raise it) is one error naming the stage and what to try.
TEST(HostileMemory, OutOfMemoryNamesTheStage) {
    T2VModelParts parts = demo_model_parts();
    for (int kind : {0, 1}) {
        GenerateRequest req;
        req.prompt = "a cat";
        req.opt.width = 64, req.opt.height = 64, req.opt.frame_num = 5, req.opt.sample_steps = 1;
        GenerateProgress p;
        p.on_stage = [kind](const std::string& s) {
            if (s != "denoise") return;
            if (kind == 0) throw OutOfMemory("[cuda] out of device memory allocating 2097152 bytes (0 in use)");
            throw std::bad_alloc();
        };
        try {
            run_generate(parts, make_backend("cpu", 2), std::move(req), p);
            ADD_FAILURE() << "no error";
        } catch (const OutOfMemory& e) {
            const std::string m = e.what();
            EXPECT_EQ(m.rfind("[generate] out of host memory during the denoise stage on cpu", 0), 0u) << m;
            EXPECT_NE(m.find("try a smaller --size or fewer --frame_num"), std::string::npos) << m;
            EXPECT_EQ(m.find("--offload"), std::string::npos) << m;  // a GPU's hint only
            if (kind == 0) {
                EXPECT_NE(m.find("2097152 bytes"), std::string::npos) << m;
            }
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        }
    }
}

// ---------------------------------------------------------------- stream input bounded by --max_frames

// The whole input was decoded into memory before --max_frames cut it; now decoding stops there, so
// frames past it are never read (a truncated tail is not even noticed).
TEST(HostileVideo, MaxFramesStopsDecoding) {
    const std::string d = tmp_dir("maxframes");
    write_video(d + "/v.y4m", small_video(6));
    const std::string ok = slurp(d + "/v.y4m");
    const std::string p = write_file(d + "/tail.y4m", ok + "FRAME\n" + std::string(100, '\x10'));  // truncated 7th frame
    EXPECT_EQ(read_video(p, 5).frames, 5);  // our reader without FFmpeg, libavformat with it
    EXPECT_EQ(read_video(p, 6).frames, 6);
    EXPECT_EQ(read_y4m(p, 6).frames, 6);
    // Reading on shows the tail (our reader says so; FFmpeg's demuxer drops a cut frame silently).
    expect_error([&] { read_y4m(p); }, "video", {"frame 6 is truncated"});
}

// A cycle the root never reaches (a list appended into itself, then popped): the file opens, and
// under LeakSanitizer (the sanitizer CI job) nothing leaks — on main this leaked 272 bytes.
TEST(HostilePth, UnreachableCycleDoesNotLeak) {
    const std::string pkl("\x80\x02]q\x00h\x00" "a0}.", 11);
    auto src = open_pth(pth_of_pickle("orphan.pth", pkl));
    EXPECT_TRUE(src->names().empty());
}

TEST(HostileCli, LibraryThreadCountIsBounded) {
    expect_error([] { make_backend("cpu", 100000); }, "device", {"CPU thread count 100000 must be in [0, "});
    expect_error([] { make_backend("cpu", -1); }, "device", {"CPU thread count -1"});
    EXPECT_NE(make_backend("cpu", 1), nullptr);
}
