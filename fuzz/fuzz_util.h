// Shared pieces of the libFuzzer targets (fuzz/README.md).
//
// The loaders take paths and map their files, as they do for real checkpoints, so each input is
// written to a file in a folder of this process's own ($TMPDIR or /tmp; /dev/shm makes the write a
// memory copy) and opened from there. A wanrt::Error is the promised outcome of a bad file; any
// other exception escapes, aborts, and libFuzzer reports it as a crash (an uncaught nlohmann
// type_error, std::bad_alloc from an unbounded size, std::length_error are all defects: the CLI
// promises a one-line error).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "core/error.h"
#include "io/tensor_source.h"

namespace wanrt::fuzz {

// This process's folder, made on first use and removed at exit. The string lives on the heap,
// never freed: the exit handler runs after static destructors would have freed a static string.
inline const std::string& work_dir() {
    static const std::string* dir = [] {
        const char* t = std::getenv("TMPDIR");
        auto* d = new std::string(std::string(t && *t ? t : "/tmp") + "/wanrt-fuzz-" + std::to_string(getpid()));
        std::filesystem::create_directories(*d);
        std::atexit([] { std::error_code ec; std::filesystem::remove_all(work_dir(), ec); });
        return d;
    }();
    return *dir;
}

// Writes bytes to work_dir()/name (replacing it) and returns the path.
inline std::string write_file(const std::string& name, const void* data, size_t size) {
    std::string path = work_dir() + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path;
}

// Runs fn; only wanrt::Error is an accepted outcome. WANRT_FUZZ_PRINT=1 prints each error, to see
// which checks a corpus reaches (`fuzz_pth -runs=0 corpus/ 2>&1 | grep 'refers to itself'`).
template <class F>
void expect_clean(F&& fn) {
    static const bool print = std::getenv("WANRT_FUZZ_PRINT") != nullptr;
    try {
        fn();
    } catch (const wanrt::Error& e) {
        if (print) std::fprintf(stderr, "wanrt-error: %s\n", e.what());
    }
}

// Bytes per element of the plain dtypes convert_elements takes; 0 for the others.
inline int64_t elem_bytes(DType t) {
    switch (t) {
        case DType::F32: case DType::I32: return 4;
        case DType::F64: case DType::I64: return 8;
        case DType::F16: case DType::BF16: return 2;
        case DType::U8: return 1;
        default: return 0;
    }
}

// Reads every tensor a source claims to hold, as a model loader would: every byte is touched (a
// range past the mapping faults) and small tensors are converted to f32 (the dtype paths).
inline void read_all(const TensorSource& src) {
    volatile uint8_t sink = 0;
    for (const std::string& name : src.names()) {
        const StoredTensor* t = src.find(name);
        if (!t) std::abort();  // names() and find() disagree: a bug, not bad input
        const uint8_t* p = static_cast<const uint8_t*>(t->data);
        uint8_t acc = 0;
        for (size_t i = 0; i < t->nbytes; ++i) acc ^= p[i];
        sink = sink ^ acc;
        // shape_numel overflowing would be the loader's defect: it accepted the shape.
        const int64_t n = shape_numel(t->shape);
        const int64_t elem = elem_bytes(t->dtype);
        if (elem > 0 && n >= 0 && n <= 4096 && size_t(n * elem) == t->nbytes) {
            std::vector<float> f(size_t(n) + 1);
            convert_elements(t->data, t->dtype, f.data(), DType::F32, n);
        }
    }
}

}  // namespace wanrt::fuzz
