#include "io/tensor_source.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace wanrt {

struct MemoryTensorSource::Store {
    std::map<std::string, StoredTensor> tensors;
    std::map<std::string, std::vector<uint64_t>> bytes;  // 8-byte aligned storage
};

std::shared_ptr<MemoryTensorSource::Store> MemoryTensorSource::make_store() {
    return std::make_shared<Store>();
}

void* MemoryTensorSource::add_uninitialized(const std::string& name, DType dtype, const Shape& shape) {
    WANRT_ASSERT(!store_->tensors.count(name));
    size_t nbytes = dtype_bytes(dtype, shape_numel(shape));
    auto& buf = store_->bytes[name];
    buf.resize((nbytes + 7) / 8);
    StoredTensor& t = store_->tensors[name];
    t.name = name;
    t.dtype = dtype;
    t.shape = shape;
    t.data = buf.data();
    t.nbytes = nbytes;
    return buf.data();
}

void MemoryTensorSource::add(const std::string& name, DType dtype, const Shape& shape, const void* data) {
    void* dst = add_uninitialized(name, dtype, shape);
    std::memcpy(dst, data, dtype_bytes(dtype, shape_numel(shape)));
}

std::vector<std::string> MemoryTensorSource::names() const {
    std::vector<std::string> out;
    for (auto& kv : store_->tensors) out.push_back(kv.first);
    return out;
}

const StoredTensor* MemoryTensorSource::find(const std::string& name) const {
    auto it = store_->tensors.find(name);
    return it == store_->tensors.end() ? nullptr : &it->second;
}

}  // namespace wanrt
