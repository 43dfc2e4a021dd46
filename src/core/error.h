// Two error channels (docs/style.md, habit 10):
//  - wanrt::Error for bad input: a one-line "[module] what, where, what to do" message that the
//    CLI prints and turns into exit code 1;
//  - WANRT_ASSERT for bugs: prints file:line and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

namespace wanrt {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A device (or host) allocation failed: raised by the allocators, caught at the pipeline's stage
// boundary (pipeline/generate.h) and re-raised naming the stage and what to try; the CLI prints it
// as one line like any Error.
struct OutOfMemory : Error {
    using Error::Error;
};

// Concatenates any streamable values into one string: cat("x=", 3, " y=", 4.5).
template <class... Args>
std::string cat(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

// Throws wanrt::Error("[module] ...").
template <class... Args>
[[noreturn]] void fail(const char* module, const Args&... args) {
    throw Error(cat("[", module, "] ", args...));
}

}  // namespace wanrt

#define WANRT_ASSERT(cond)                                                                   \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            std::fprintf(stderr, "wanrt internal error: %s:%d: assertion `%s` failed\n",    \
                         __FILE__, __LINE__, #cond);                                         \
            std::abort();                                                                    \
        }                                                                                    \
    } while (0)

// Bad-input check: WANRT_CHECK(n > 0, "dit", "frame count ", n, " must be positive; ...").
#define WANRT_CHECK(cond, module, ...)                       \
    do {                                                     \
        if (!(cond)) ::wanrt::fail(module, __VA_ARGS__);     \
    } while (0)
