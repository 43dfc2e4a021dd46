// KV-cache writes: the adaptive-sink frame write (KvSinkWrite, core/backend.h), in float64 on the
// host. It is the reference the GPU kernel is tested against.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// Mean over S rows of W values (a frame's tokens, heads flattened).
std::vector<double> token_mean(const float* x, int64_t S, int64_t W) {
    std::vector<double> m(size_t(W), 0.0);
    for (int64_t t = 0; t < S; ++t)
        for (int64_t i = 0; i < W; ++i) m[size_t(i)] += x[t * W + i];
    for (double& v : m) v /= double(S);
    return m;
}

// torch.cosine_similarity: a·b / (max(‖a‖, eps)·max(‖b‖, eps)), eps = 1e-8 (0 for a zero vector).
double cosine(const std::vector<double>& a, const std::vector<double>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
    return ab / (std::max(std::sqrt(aa), 1e-8) * std::max(std::sqrt(bb), 1e-8));
}

}  // namespace

static void kv_sink_write_cpu(CpuBackend& be, const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                               const KvSinkWrite& p, const Tensor& decision) {
    WANRT_CHECK(k_cache.dtype() == DType::F32 && v_cache.dtype() == DType::F32, "cpu",
                "kv_sink_write takes an f32 cache, got ", k_cache.describe());
    const int64_t S = p.tokens, W = k_new.size(1) * k_new.size(2);
    const float *kn = k_new.data<float>(), *vn = v_new.data<float>();
    float *kc = k_cache.data<float>(), *vc = v_cache.data<float>();
    const std::vector<double> mk = token_mean(kn, S, W), mv = token_mean(vn, S, W);
    int64_t d = -1;
    double lowest = 0;
    for (int64_t s = 0; s < p.sink; ++s) {
        const double a = (cosine(token_mean(kc + s * S * W, S, W), mk) + cosine(token_mean(vc + s * S * W, S, W), mv)) / 2;
        if (s == 0 || a < lowest) lowest = a, d = s;  // first minimum, as torch.argmin
    }
    if (!(lowest < double(p.threshold))) d = -1;
    const int64_t slot = p.fixed_slot >= 0 ? p.fixed_slot : d >= 0 ? d : p.queue_front >= 0 ? p.queue_front : p.ring_slot;
    std::memcpy(kc + slot * S * W, kn, size_t(S * W) * sizeof(float));
    std::memcpy(vc + slot * S * W, vn, size_t(S * W) * sizeof(float));
    decision.data<int32_t>()[0] = int32_t(d);
    decision.data<int32_t>()[1] = int32_t(slot);
}

namespace {
const RegisterKernel<KvSinkWriteArgs, CpuBackend> reg_kv_sink_write(
    {{DType::F32, DType::F32}}, [](CpuBackend& be, const KvSinkWriteArgs& a) {
        kv_sink_write_cpu(be, a.k_new, a.v_new, a.k_cache, a.v_cache, a.p, a.decision);
    });
}  // namespace

}  // namespace wanrt
