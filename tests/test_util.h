// Shared helpers for the test executables: fixture lookup, loading tensors as f32/f64, error
// metrics, float64 reference helpers.
//
// Fixture policy: a fixture is looked for in $WANRT_FIXTURES (one folder or a ':'-separated list),
// then the repo's tests/fixtures, then ../shared/fixtures beside the repo (files over ~5 MB are not
// kept in the repo and live only there). A missing file is a test failure that says where it
// looked, never a skip.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define WANRT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WANRT_TEST_ASAN 1
#endif
#endif
#if WANRT_TEST_ASAN
#include <sanitizer/allocator_interface.h>
#endif

#include "core/backend.h"
#include "runtime/device.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "build_paths.h"

namespace wanrt::test {

// The folders searched, in order (WANRT_TEST_FIXTURES and WANRT_SHARED_FIXTURES: build_paths.h).
inline std::vector<std::string> fixture_dirs() {
    std::vector<std::string> dirs;
    if (const char* env = std::getenv("WANRT_FIXTURES"); env && *env) {
        std::string list = env;
        for (size_t at = 0; at <= list.size();) {
            const size_t end = std::min(list.find(':', at), list.size());
            if (end > at) dirs.push_back(list.substr(at, end - at));
            at = end + 1;
        }
    }
    dirs.push_back(WANRT_TEST_FIXTURES);
    dirs.push_back(WANRT_SHARED_FIXTURES);
    return dirs;
}

// The path of a fixture file; throws (the test fails) when no folder has it.
inline std::string fixture_path(const std::string& name) {
    std::string looked;
    for (const std::string& d : fixture_dirs()) {
        const std::string p = d + "/" + name;
        if (std::filesystem::exists(p)) return p;
        looked += (looked.empty() ? "" : ", ") + d;
    }
    throw std::runtime_error("fixture file " + name + " not found; looked in " + looked +
                             "; set WANRT_FIXTURES to the folder that has it");
}

// The backend WANRT_TEST_DEVICE names for the device-aware tests (e.g. cuda, on a GPU machine), or
// null when it is unset or "cpu".
inline std::shared_ptr<Backend> test_device() {
    const char* d = std::getenv("WANRT_TEST_DEVICE");
    return d && *d && std::string(d) != "cpu" ? make_backend(d) : nullptr;
}

// Opens a fixture; a missing file is a test failure (never a skip).
inline std::shared_ptr<SafeTensorsFile> open_fixture(const std::string& name) { return SafeTensorsFile::open(fixture_path(name)); }

inline const StoredTensor& stored(const TensorSource& f, const std::string& name) {
    const StoredTensor* t = f.find(name);
    if (!t) throw std::runtime_error("fixture " + f.origin() + " lacks tensor " + name);
    return *t;
}

inline std::vector<double> load_f64(const TensorSource& f, const std::string& name) {
    const StoredTensor& t = stored(f, name);
    std::vector<double> v(size_t(shape_numel(t.shape)));
    convert_elements(t.data, t.dtype, v.data(), DType::F64, int64_t(v.size()));
    return v;
}

inline Tensor load_f32(Backend& be, const TensorSource& f, const std::string& name) {
    const StoredTensor& t = stored(f, name);
    std::vector<float> v(size_t(shape_numel(t.shape)));
    convert_elements(t.data, t.dtype, v.data(), DType::F32, int64_t(v.size()));
    return ops::from_host(be, DType::F32, t.shape, v.data());
}

inline nlohmann::json meta_json(const SafeTensorsFile& f, const std::string& key) {
    auto it = f.metadata().find(key);
    if (it == f.metadata().end()) throw std::runtime_error("fixture " + f.origin() + " lacks metadata " + key);
    return nlohmann::json::parse(it->second);
}

struct Err {
    double rel_l2 = 0, max_abs = 0;
};

inline Err compare(const std::vector<double>& out, const std::vector<double>& ref) {
    Err e;
    if (out.size() != ref.size()) {
        ADD_FAILURE() << "size mismatch " << out.size() << " vs " << ref.size();
        e.rel_l2 = INFINITY;
        return e;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < out.size(); ++i) {
        double d = out[i] - ref[i];
        if (!std::isfinite(out[i])) {
            e.rel_l2 = INFINITY;
            e.max_abs = INFINITY;
            return e;
        }
        num += d * d;
        den += ref[i] * ref[i];
        e.max_abs = std::max(e.max_abs, std::fabs(d));
    }
    e.rel_l2 = std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
    return e;
}

inline std::vector<double> to_f64(const Tensor& t) {
    std::vector<float> v = ops::to_host_f32(t);
    return std::vector<double>(v.begin(), v.end());
}

inline Err compare(const Tensor& out, const std::vector<double>& ref) { return compare(to_f64(out), ref); }

// Checks and reports both metrics; tol bounds the relative L2 error.
#define EXPECT_CLOSE(out, ref, tol, what)                                                           \
    do {                                                                                            \
        ::wanrt::test::Err e_ = ::wanrt::test::compare(out, ref);                                  \
        EXPECT_LE(e_.rel_l2, tol) << what << ": rel-L2 " << e_.rel_l2 << ", max abs " << e_.max_abs; \
        std::printf("  %-40s rel-L2 %.3e  max abs %.3e\n", std::string(what).c_str(), e_.rel_l2, e_.max_abs); \
    } while (0)

// Memory the process holds, for "memory stays flat" checks, KiB: resident pages. Under AddressSanitizer
// freed blocks wait in its quarantine (256 MB by default) before they are reused, so RSS grows with
// every free for a whole soak and says nothing about leaks; there the allocator's count of live heap
// bytes is the measure (same limits).
inline int64_t held_memory_kb() {
#if WANRT_TEST_ASAN
    return int64_t(__sanitizer_get_current_allocated_bytes() / 1024);
#else
    std::ifstream s("/proc/self/statm");
    int64_t size = 0, res = 0;
    s >> size >> res;
    return res * (sysconf(_SC_PAGESIZE) / 1024);
#endif
}

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng) * scale;
    return v;
}

inline Tensor randn_tensor(Backend& be, const Shape& shape, uint64_t seed, float scale = 1.0f) {
    auto v = randn(size_t(shape_numel(shape)), seed, scale);
    return ops::from_host(be, DType::F32, shape, v.data());
}

// A fixture's metadata value (every config and size comes from the file); a missing key fails.
inline std::string meta(const SafeTensorsFile& f, const std::string& key) {
    auto it = f.metadata().find(key);
    if (it == f.metadata().end()) throw std::runtime_error("fixture " + f.origin() + " lacks metadata " + key);
    return it->second;
}
inline int64_t meta_int(const SafeTensorsFile& f, const std::string& key) { return std::stoll(meta(f, key)); }

// The token ids a pipeline fixture holds padded to text_len (in.ids / in.mask): the real ones.
inline std::vector<int32_t> real_ids(const TensorSource& f, const std::string& ids_name, const std::string& mask_name) {
    std::vector<double> ids = load_f64(f, ids_name), mask = load_f64(f, mask_name);
    std::vector<int32_t> out;
    for (size_t i = 0; i < ids.size(); ++i)
        if (mask[i] > 0) out.push_back(int32_t(ids[i]));
    return out;
}

// A whole file's bytes (outputs the CLI wrote).
inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Bytes of a .y4m wanrt writes: its header, then per frame "FRAME\n" and three 8-bit planes (C444).
inline size_t y4m_size(int64_t w, int64_t h, int64_t frames) {
    return cat("YUV4MPEG2 W", w, " H", h, " F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n").size() +
           size_t(frames) * (6 + 3 * size_t(w * h));
}

// Tolerances (rel-L2) of an image-conditioned chain (I2V, FLF2V goldens): float32's on the CPU; on
// a GPU the official deployed errors of each stage (fixtures README: DiT bf16 4.1e-3, VAE TF32
// encode 3.0e-4 / decode 1.2e-3, umT5 bf16 1.6e-2 / 2.3e-2; no measured row for the fp16 CLIP),
// with the DiT's added over the chain's steps for the latents and the video.
struct ChainTols {
    double clip, t5, y, dit, chain;
};
inline ChainTols chain_tols(const Backend& be, int steps) {
    if (be.host_visible()) return {1e-5, 1e-4, 1e-4, 1e-4, 1e-4};
    return {1e-2, 2.5e-2, 1e-3, 1e-2, steps * 4.1e-3 + 1.2e-3};
}

// Expects fn to throw wanrt::Error whose message contains every fragment.
template <class F>
void expect_error(F&& fn, const std::vector<std::string>& fragments) {
    try {
        fn();
        ADD_FAILURE() << "expected a wanrt::Error";
    } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << "error must be one line: " << msg;
        for (auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
    }
}

// A fresh folder under /tmp, removed with everything in it when the test ends.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/wanrt_test_XXXXXX";
        const char* p = mkdtemp(tmpl);
        if (!p) throw std::runtime_error("mkdtemp failed");
        path = p;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string operator/(const std::string& f) const { return (path / f).string(); }
};

// Runs a shell command; returns its exit code and stdout+stderr.
struct CliRun {
    int code = -1;
    std::string out;
};
inline CliRun run_shell(const std::string& cmd) {
    CliRun r;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}
// The wanrt binary the CLI tests run: WANRT_BIN when set (test binaries staged to another machine, as
// scripts/device_gpu.sh does), else the one built beside the tests.
inline std::string wanrt_binary() {
    const char* e = std::getenv("WANRT_BIN");
    return e && *e ? std::string(e) : std::string(WANRT_BINARY);
}
// Runs the wanrt binary with args (shell words).
inline CliRun run_cli(const std::string& args) { return run_shell(wanrt_binary() + " " + args); }

}  // namespace wanrt::test
