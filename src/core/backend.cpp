#include "core/backend.h"

namespace wanrt {

Tensor Backend::empty(DType dtype, const Shape& shape) {
    return Tensor(alloc(dtype_bytes(dtype, shape_numel(shape))), dtype, shape);
}

}  // namespace wanrt
