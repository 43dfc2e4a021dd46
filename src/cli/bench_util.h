// Shared benchmark plumbing: timing with warm-up and repeats (backend-synchronised), medians, and
// the report printed as a table and written as JSON.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"

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

// Runs fn warmup times, then repeats times, synchronising be around each; returns ms per repeat.
std::vector<double> time_repeats(Backend& be, int warmup, int repeats, const std::function<void()>& fn);

}  // namespace wanrt::cli
