#include "runtime/device.h"

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
