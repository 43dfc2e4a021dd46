#include "core/backend.h"

#include "core/error.h"
#include <vector>

namespace wanrt {

Tensor Backend::empty(DType dtype, const Shape& shape) {
    if (dtype_is_block(dtype) && !holds_block_types())
        fail(name().c_str(), "block-quantized ", dtype_name(dtype), " tensors are not supported on ", name(),
             "; load GGUF weights dequantized for this backend (WeightLoader does so by default)");
    return Tensor(alloc(dtype_bytes(dtype, shape_numel(shape))), dtype, shape);
}

std::shared_ptr<Buffer> Backend::alloc_pinned(size_t bytes) {
    auto v = std::make_shared<std::vector<uint8_t>>(bytes);
    return std::make_shared<ForeignBuffer>(this, v->data(), bytes, v);
}

Backend::MatmulPrecision parse_matmul_precision(const std::string& s, const char* flag) {
    using P = Backend::MatmulPrecision;
    for (P p : {P::Highest, P::High, P::Medium})
        if (s == matmul_precision_name(p)) return p;
    fail("cli", flag, " ", s, " is not a matmul precision; pass highest (f32), high (TF32) or medium (bf16 where a kernel has it)");
}

const char* matmul_precision_name(Backend::MatmulPrecision p) {
    switch (p) {
        case Backend::MatmulPrecision::High: return "high";
        case Backend::MatmulPrecision::Medium: return "medium";
        default: return "highest";
    }
}

}  // namespace wanrt
