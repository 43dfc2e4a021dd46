#include "core/backend.h"

#include <vector>

namespace wanrt {

Tensor Backend::empty(DType dtype, const Shape& shape) {
    return Tensor(alloc(dtype_bytes(dtype, shape_numel(shape))), dtype, shape);
}

std::shared_ptr<Buffer> Backend::alloc_pinned(size_t bytes) {
    auto v = std::make_shared<std::vector<uint8_t>>(bytes);
    return std::make_shared<ForeignBuffer>(this, v->data(), bytes, v);
}

}  // namespace wanrt
