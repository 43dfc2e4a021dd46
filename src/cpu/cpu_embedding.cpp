// CpuBackend::embedding: row gather from a [V, D] table into f32 rows.
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"

namespace wanrt {

static void embedding_cpu(CpuBackend& be, const Tensor& table, const Tensor& ids, const Tensor& y) {
    const int64_t V = table.size(0), D = table.size(1), n = ids.size(0);
    const int32_t* id = ids.data<int32_t>();
    // Checked here as well as in ops::embedding: a bad id must never read outside the table.
    for (int64_t i = 0; i < n; ++i)
        WANRT_CHECK(id[i] >= 0 && id[i] < V, "embedding", "token id ", id[i], " at position ", i,
                    " is outside the table's ", V, " rows; the ids do not belong to this model's vocabulary");
    const char* base = static_cast<const char*>(table.raw());
    const size_t row_bytes = dtype_bytes(table.dtype(), D);
    float* out = y.data<float>();
    // A row is D contiguous values: one conversion call per row, rows spread over the pool.
    be.pool().parallel_for(n, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
            convert_elements(base + size_t(id[i]) * row_bytes, table.dtype(), out + i * D, DType::F32, D);
    });
}

namespace {
const RegisterKernel<EmbeddingArgs, CpuBackend> reg_embedding(
    {{DType::F32, DType::F32}, {DType::F32, DType::BF16}, {DType::F32, DType::F16}},
    [](CpuBackend& be, const EmbeddingArgs& a) { embedding_cpu(be, a.table, a.ids, a.y); });
}  // namespace

}  // namespace wanrt
