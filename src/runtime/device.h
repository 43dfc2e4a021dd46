// The backend factory: "cpu", "cuda", "cuda:N", or "auto" (CUDA when this build has it and a device
// is present, else CPU). It lives above core/, cpu/ and cuda/ because it knows every backend; this
// file's .cpp is the only place outside cuda/ that tests WANRT_HAVE_CUDA.
#pragma once

#include <memory>
#include <string>

#include "core/backend.h"

namespace wanrt {

// Throws wanrt::Error for an unknown name, an unavailable device, or cpu_threads outside
// [0, 4 x hardware threads] (0 = all cores).
std::shared_ptr<Backend> make_backend(const std::string& device, int cpu_threads = 0);
bool cuda_available();  // built with CUDA and at least one device visible


}  // namespace wanrt
