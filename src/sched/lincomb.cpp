// The linear combination the samplers run on (scheduler.h): checks, then Backend::lincomb.
#include "core/backend.h"
#include "core/error.h"
#include "sched/scheduler.h"

namespace wanrt {

void lincomb(const Tensor& out, int n, const Tensor* const* in, const float* coef) {
    WANRT_CHECK(n >= 1 && n <= 4, "sched", "lincomb takes 1 to 4 inputs, got ", n);
    WANRT_CHECK(out.dtype() == DType::F32 && out.is_contiguous(), "sched",
                "lincomb output must be contiguous f32, got ", out.describe());
    for (int k = 0; k < n; ++k) {
        const Tensor& t = *in[k];
        WANRT_CHECK(t.dtype() == DType::F32 && t.is_contiguous() && t.shape() == out.shape(), "sched",
                    "lincomb input ", k, " is ", t.describe(), ", expected contiguous ", out.describe());
        WANRT_CHECK(t.backend() == out.backend(), "sched", "lincomb input ", k,
                    " lives on another backend than the output");
    }
    out.backend()->lincomb(in, coef, n, out);
}

}  // namespace wanrt
