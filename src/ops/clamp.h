// clamp: y = min(max(x, lo), hi) elementwise, as torch.clamp (a NaN stays NaN). The decoders'
// last step: the Wan VAE pipelines clamp the video to [−1, 1], TAEHV to [0, 1]; on the device, so
// a decoded clip is not downloaded and uploaded again to be clamped.
#pragma once

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

struct ClampArgs {  // {F32}; x and y contiguous f32 of one shape
    static constexpr const char* kName = "clamp";
    Tensor x, y;
    float lo = 0, hi = 0;
};

namespace ops {

// x f32 (any strides) → a new contiguous tensor of x's shape; lo ≤ hi.
inline Tensor clamp(const Tensor& x_in, float lo, float hi) {
    if (!x_in.defined()) fail("clamp", "input tensor is undefined");
    if (x_in.dtype() != DType::F32) fail("clamp", "input must be f32, got ", x_in.describe(), "; convert it with ops::to_dtype");
    if (!(lo <= hi)) fail("clamp", "bounds [", lo, ", ", hi, "] are empty; pass lo ≤ hi");
    const Tensor x = contiguous(x_in);
    Tensor y = x.backend()->empty(DType::F32, x.shape());
    dispatch(*x.backend(), ClampArgs{x, y, lo, hi});
    return y;
}

}  // namespace ops
}  // namespace wanrt
