#include "runtime/device.h"

#include <algorithm>
#include <cstdint>
#include <thread>

#include "core/error.h"

#ifdef WANRT_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace wanrt {

bool cuda_available() {
#ifdef WANRT_HAVE_CUDA
    return cuda_device_count() > 0;
#else
    return false;
#endif
}

std::shared_ptr<Backend> make_backend(const std::string& device, int cpu_threads) {
    // The CLI refuses these as flags; library callers get the same rule instead of an abort from
    // std::thread when thousands of threads cannot be created.
    const int64_t max_threads = 4 * int64_t(std::max(1u, std::thread::hardware_concurrency()));
    WANRT_CHECK(cpu_threads >= 0 && cpu_threads <= max_threads, "device", "CPU thread count ", cpu_threads,
                " must be in [0, ", max_threads, "] (0 = all cores; at most 4 x the cores of this machine)");
    if (device == "cpu") return make_cpu_backend(cpu_threads);
    if (device == "auto") return cuda_available() ? make_backend("cuda", cpu_threads) : make_cpu_backend(cpu_threads);
    if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
        int index = 0;
        if (device.size() > 5) {
            try {
                index = std::stoi(device.substr(5));
            } catch (...) {
                fail("device", "bad device \"", device, "\"; use cuda:N with N a device index");
            }
        }
#ifdef WANRT_HAVE_CUDA
        int n = cuda_device_count();
        if (n == 0) fail("device", "no CUDA device found; run with --device cpu");
        if (index < 0 || index >= n) fail("device", "cuda:", index, " does not exist (", n, " devices); use cuda:0..", n - 1);
        return make_cuda_backend(index);
#else
        (void)index;
        fail("device", "this build has no CUDA backend; rebuild with -DWANRT_CUDA=ON or run with --device cpu");
#endif
    }
    fail("device", "unknown device \"", device, "\"; use cpu, cuda, cuda:N or auto");
}

}  // namespace wanrt
