// Range checks for the integer flags, run by CLI11 on the flag's text before it is converted: a
// value outside the rule (or past int64, which CLI11 would otherwise clamp) is a parse error that
// main() prints as one line with exit code 1, before any file is opened.
#pragma once

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "core/error.h"

namespace wanrt::cli {

// "a,b,c" → its numbers, or nothing when an item is not a whole number (each caller words its own
// one-line error: the flags differ in what they allow).
inline std::optional<std::vector<double>> split_numbers(const std::string& s) {
    std::vector<double> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t used = 0;
            out.push_back(std::stod(item, &used));
            if (used != item.size()) return std::nullopt;
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return out;
}

// An integer in [lo, hi]; `rule` is appended to the message (e.g. "(0 = all cores)").
inline CLI::Validator int_in(int64_t lo, int64_t hi, std::string rule = "") {
    return CLI::Validator(
        [lo, hi, rule](std::string& text) -> std::string {
            errno = 0;
            char* end = nullptr;
            const long long v = std::strtoll(text.c_str(), &end, 10);
            const bool whole = !text.empty() && end && *end == '\0';
            if (whole && errno != ERANGE && v >= lo && v <= hi) return std::string();
            return cat("must be an integer in [", lo, ", ", hi, "]", rule.empty() ? "" : " ", rule, ", got \"",
                       text.size() > 40 ? text.substr(0, 40) + "..." : text, "\"");
        },
        cat("INT in [", lo, ", ", hi, "]"));
}

// --threads: 0 (all cores) up to four times the cores this machine has; more would only thrash.
inline int64_t max_threads() {
    return 4 * int64_t(std::max(1u, std::thread::hardware_concurrency()));
}
inline CLI::Validator threads_in_range() {
    return int_in(0, max_threads(), "(0 = all cores; at most 4 x the cores of this machine)");
}

}  // namespace wanrt::cli
