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

}  // namespace wanrt
