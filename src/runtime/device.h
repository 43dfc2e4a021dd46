// The backend factory: "cpu", "cuda", "cuda:N", or "auto" (CUDA when this build has it and a device
// is present, else CPU). It lives above core/, cpu/ and cuda/ because it knows every backend; this
// file's .cpp is the only place outside cuda/ that tests WANRT_HAVE_CUDA.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/backend.h"

namespace wanrt {

// Throws wanrt::Error for an unknown name or an unavailable device.
std::shared_ptr<Backend> make_backend(const std::string& device, int cpu_threads = 0);
bool cuda_available();  // built with CUDA and at least one device visible

// Device memory held by a backend's allocator, in bytes: in use by live tensors, the peak of that
// since the last reset, and reserved from the driver (in use + cached). All zero for backends
// that do not track it (the CPU). (This struct moves to core/backend.h with Backend::memory_stats;
// these two functions then call the virtuals.)
struct MemoryStats {
    size_t in_use = 0, peak = 0, reserved = 0;
};
MemoryStats device_memory_stats(const Backend& backend);
void reset_device_peak_memory(Backend& backend);

}  // namespace wanrt
