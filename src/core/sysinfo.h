// Facts about this process that the command line and the benchmarks report.
#pragma once

#include <cstddef>

namespace wanrt {

// Peak resident set of this process so far, in bytes (the kernel's high-water mark, getrusage's
// ru_maxrss); 0 where the system does not say.
size_t peak_rss_bytes();

}  // namespace wanrt
