#include "cli/bench_util.h"
#include "cli/flag_checks.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/output_file.h"
#include "core/sysinfo.h"
#include "ops/ops.h"

namespace wanrt::cli {

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peak_rss_gib() { return double(peak_rss_bytes()) / double(1 << 30); }

void RunOpts::validate() const {
    if (repeats < 1) fail("bench", "--repeats must be at least 1, got ", repeats);
    if (warmup < 0) fail("bench", "--warmup must be ≥ 0, got ", warmup);
}

void add_run_options(CLI::App* c, RunOpts& o) {
    c->add_option("--warmup", o.warmup, "Untimed runs first")->capture_default_str();
    c->add_option("--repeats", o.repeats, "Timed runs (the median is reported)")->capture_default_str();
    c->add_option("--threads", o.threads, "CPU threads (0 = all cores)")->check(threads_in_range())->capture_default_str();
    c->add_option("--device", o.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    c->add_option("--json", o.json, "Also write the report as JSON to this file");
}

std::vector<BenchRow> profile_ops(Backend& be, const std::function<void()>& fn) {
    OpProfiler prof;
    be.synchronize();
    be.set_profiler(&prof);
    try {
        fn();
    } catch (...) {
        be.set_profiler(nullptr);
        throw;
    }
    be.synchronize();
    be.set_profiler(nullptr);
    std::vector<BenchRow> rows;
    for (auto& [op, st] : prof.stats()) rows.push_back({cat("  ", op, " x", st.calls), {st.ms}, st.flop});
    return rows;
}

Tensor random_normal(Backend& be, const Shape& shape, uint64_t seed, float scale) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> v(size_t(shape_numel(shape)));
    for (float& x : v) x = scale * nd(rng);
    return ops::from_host(be, DType::F32, shape, v.data());
}

std::vector<double> time_repeats(Backend& be, int warmup, int repeats, const std::function<void()>& fn) {
    for (int i = 0; i < warmup; ++i) {
        fn();
        be.synchronize();
    }
    std::vector<double> ms;
    for (int i = 0; i < repeats; ++i) {
        be.synchronize();
        auto t0 = std::chrono::steady_clock::now();
        fn();
        be.synchronize();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return ms;
}

void BenchReport::print() const {
    // The name column fits the longest name (bench serve's part rows say what they cover), counted in
    // characters, not bytes ("→" is three).
    auto chars = [](const std::string& s) {
        size_t n = 0;
        for (unsigned char c : s) n += (c & 0xC0) != 0x80;
        return n;
    };
    size_t width = 28;
    for (const BenchRow& r : rows) width = std::max(width, chars(r.name));
    auto name = [&](const std::string& s) { std::printf("%s%*s", s.c_str(), int(width - chars(s)), ""); };
    std::printf("bench %s on %s\n", bench.c_str(), device.c_str());
    for (auto& [k, v] : config) std::printf("  %-14s %s\n", k.c_str(), v.c_str());
    name("stage");
    std::printf(" %10s %10s %10s %12s\n", "median ms", "min ms", "max ms", "GFLOP/s");
    for (const BenchRow& r : rows) {
        double med = median(r.ms);
        double lo = r.ms.empty() ? 0 : *std::min_element(r.ms.begin(), r.ms.end());
        double hi = r.ms.empty() ? 0 : *std::max_element(r.ms.begin(), r.ms.end());
        // Sub-millisecond rows (single ops) need three decimals to be readable.
        const int prec = med < 1 ? 3 : 1;
        name(r.name);
        if (r.flop > 0 && med > 0)
            std::printf(" %10.*f %10.*f %10.*f %12.1f\n", prec, med, prec, lo, prec, hi, r.flop / med * 1e-6);
        else
            std::printf(" %10.*f %10.*f %10.*f %12s\n", prec, med, prec, lo, prec, hi, "-");
    }
    std::fflush(stdout);
}

std::string BenchReport::json() const {
    nlohmann::json j;
    j["bench"] = bench;
    j["device"] = device;
    for (auto& [k, v] : config) j["config"][k] = v;
    for (const BenchRow& r : rows) {
        nlohmann::json row;
        row["name"] = r.name;
        row["median_ms"] = median(r.ms);
        row["ms"] = r.ms;
        if (r.flop > 0) {
            row["flop"] = r.flop;
            row["gflops"] = median(r.ms) > 0 ? r.flop / median(r.ms) * 1e-6 : 0.0;
        }
        j["rows"].push_back(row);
    }
    return j.dump(2);
}

void BenchReport::write_json(const std::string& path) const {
    if (path.empty()) return;
    write_file_atomic(path, json() + "\n", "bench");
}

DType parse_float_dtype(const std::string& flag, const std::string& s) {
    if (s == "f32") return DType::F32;
    if (s == "bf16") return DType::BF16;
    if (s == "f16") return DType::F16;
    fail("bench", flag, " ", s, " is not a dtype here; use f32, bf16 or f16");
}

}  // namespace wanrt::cli
