// Shared benchmark plumbing: timing with warm-up and repeats (backend-synchronised), medians, and
// the report printed as a table and written as JSON.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/op_registry.h"

namespace wanrt::cli {

struct BenchRow {
    std::string name;
    std::vector<double> ms;  // one entry per timed repeat
    double flop = 0;         // per repeat, 0 if not meaningful
};

struct BenchReport {
    std::string bench;                                      // "dit"
    std::string device;                                     // backend description
    std::vector<std::pair<std::string, std::string>> config;  // shapes and settings
    std::vector<BenchRow> rows;
    void print() const;                          // table on stdout
    std::string json() const;                    // JSON text
    void write_json(const std::string& path) const;  // atomically; "" = skip
};

double median(std::vector<double> v);

// Peak resident set of this process so far (core/sysinfo.h), GiB.
double peak_rss_gib();

// Options every benchmark takes. A bench sets its own defaults, then calls add_run_options.
struct RunOpts {
    std::string device = "auto", json;
    int warmup = 1, repeats = 3, threads = 0;
    void validate() const;  // one-line errors for repeats < 1 or warmup < 0
};
void add_run_options(CLI::App* c, RunOpts& o);

// Runs fn warmup times, then repeats times, synchronising be around each; returns ms per repeat.
std::vector<double> time_repeats(Backend& be, int warmup, int repeats, const std::function<void()>& fn);

// Runs fn once with an OpProfiler attached to be (every op timed, synchronised around each), then detaches it;
// returns one row per op, "  <op> x<calls>", with its total ms and FLOP.
std::vector<BenchRow> profile_ops(Backend& be, const std::function<void()>& fn);

// A seeded N(0, scale²) f32 tensor on be (benchmark inputs; contents do not matter, only sizes).
Tensor random_normal(Backend& be, const Shape& shape, uint64_t seed, float scale = 1.f);

// "f32" | "bf16" | "f16" → the dtype; anything else fails naming the flag.
DType parse_float_dtype(const std::string& flag, const std::string& s);

}  // namespace wanrt::cli
