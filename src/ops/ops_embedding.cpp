// ops::embedding front-end: checks, contiguity, output allocation, dispatch.
#include "core/error.h"
#include "ops/ops.h"

namespace wanrt::ops {

Tensor embedding(const Tensor& table, const Tensor& ids) {
    WANRT_CHECK(table.defined() && ids.defined(), "embedding", "undefined input tensor");
    WANRT_CHECK(table.ndim() == 2, "embedding", "table must be [V, D], got ", table.describe());
    WANRT_CHECK(table.dtype() == DType::F32 || table.dtype() == DType::BF16 || table.dtype() == DType::F16,
                "embedding", "table dtype must be f32, bf16 or f16, got ", table.describe());
    WANRT_CHECK(ids.ndim() == 1 && ids.dtype() == DType::I32, "embedding",
                "ids must be a 1-D i32 tensor [n], got ", ids.describe(), "; reshape a batch to [B·L]");
    WANRT_CHECK(table.backend() == ids.backend(), "embedding", "table (", table.backend()->name(),
                ") and ids (", ids.backend()->name(), ") live on different backends; upload the ids first");
    Backend* be = table.backend();
    const int64_t V = table.size(0);
    Tensor t = contiguous(table);
    Tensor i = contiguous(ids);
    if (be->host_visible()) {
        const int32_t* id = i.data<int32_t>();
        for (int64_t k = 0; k < i.numel(); ++k)
            WANRT_CHECK(id[k] >= 0 && id[k] < V, "embedding", "token id ", id[k], " at position ", k,
                        " is outside the table's ", V, " rows; the ids do not belong to this model's vocabulary");
    }
    Tensor y = be->empty(DType::F32, {i.size(0), table.size(1)});
    if (i.size(0) > 0) dispatch(*be, EmbeddingArgs{t, i, y}, {DType::F32, t.dtype()});
    return y;
}

}  // namespace wanrt::ops
