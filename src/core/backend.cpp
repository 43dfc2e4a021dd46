#include "core/backend.h"

#include "core/error.h"

namespace wanrt {

Tensor Backend::empty(DType dtype, const Shape& shape) {
    if (dtype_is_block(dtype) && !holds_block_types())
        fail(name().c_str(), "block-quantized ", dtype_name(dtype), " tensors are not supported on ", name(),
             "; load GGUF weights dequantized for this backend (WeightLoader does so by default)");
    return Tensor(alloc(dtype_bytes(dtype, shape_numel(shape))), dtype, shape);
}

}  // namespace wanrt
