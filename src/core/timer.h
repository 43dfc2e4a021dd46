// Wall-clock helper for stage timings (host clock; synchronise a device backend first).
#pragma once

#include <chrono>

namespace wanrt {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace wanrt
