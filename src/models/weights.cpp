#include "models/weights.h"

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

WeightLoader::WeightLoader(std::shared_ptr<TensorSource> src, Backend& be, std::string prefix)
    : src_(std::move(src)), be_(be), prefix_(std::move(prefix)) {}

bool WeightLoader::has(const std::string& name) const { return src_->find(prefix_ + name) != nullptr; }

const StoredTensor& WeightLoader::lookup(const std::string& name, const Shape& shape) {
    const std::string full = prefix_ + name;
    const StoredTensor* st = src_->find(full);
    if (!st)
        fail("weights", src_->origin(), ": missing tensor '", full, "' (expected shape ", shape_str(shape),
             "); the checkpoint is incomplete or is not this model");
    if (st->shape != shape)
        fail("weights", src_->origin(), ": tensor '", full, "' has shape ", shape_str(st->shape), ", expected ",
             shape_str(shape), "; the config does not match the weights");
    if (!dtype_info(st->dtype).is_float)
        fail("weights", src_->origin(), ": tensor '", full, "' is ", dtype_name(st->dtype),
             ", expected a float type");
    used_.insert(full);
    return *st;
}

Tensor WeightLoader::make(const StoredTensor& st, DType dtype, const Shape& shape) {
    // Block types are read byte-wise (their f16 scales through memcpy): any address will do.
    const bool aligned = dtype_is_block(dtype) || reinterpret_cast<uintptr_t>(st.data) % dtype_size(dtype) == 0;
    if (st.dtype == dtype && be_.host_visible() && aligned && (!dtype_is_block(dtype) || be_.holds_block_types())) {
        auto buf = std::make_shared<ForeignBuffer>(&be_, const_cast<void*>(st.data), st.nbytes, src_->keepalive());
        return Tensor(buf, dtype, shape);
    }
    Tensor t = be_.empty(dtype, shape);
    if (st.dtype == dtype) {
        be_.upload(t, st.data);
    } else {
        std::vector<uint8_t> tmp(dtype_bytes(dtype, shape_numel(shape)));
        convert_elements(st.data, st.dtype, tmp.data(), dtype, shape_numel(shape));
        be_.upload(t, tmp.data());
    }
    return t;
}

Tensor WeightLoader::matrix(const std::string& name, const Shape& shape) {
    const StoredTensor& st = lookup(name, shape);
    DType keep = be_.matrix_dtype(st.dtype == DType::F64 ? DType::F32 : st.dtype);
    if (!be_.supports(LinearArgs::kName, DType::F32, keep)) {
        // fp8 without fp8 kernels: bf16 holds every e4m3fn / e5m2 value exactly, at half f32's memory.
        const bool fp8 = st.dtype == DType::F8E4M3 || st.dtype == DType::F8E5M2;
        keep = fp8 && be_.supports(LinearArgs::kName, DType::F32, DType::BF16) ? DType::BF16 : DType::F32;
    }
    return make(st, keep, shape);
}

Tensor WeightLoader::param(const std::string& name, const Shape& shape) {
    return make(lookup(name, shape), DType::F32, shape);
}

Tensor WeightLoader::param_as(const std::string& name, const Shape& stored, const Shape& shape) {
    WANRT_ASSERT(shape_numel(stored) == shape_numel(shape));
    return make(lookup(name, stored), DType::F32, shape);
}

void WeightLoader::skip(const std::string& name_prefix) {
    for (const std::string& n : src_->names())
        if (n.rfind(prefix_ + name_prefix, 0) == 0) used_.insert(n);
}

void WeightLoader::finish() const {
    std::vector<std::string> extra;
    for (const std::string& n : src_->names())
        if (n.rfind(prefix_, 0) == 0 && !used_.count(n)) extra.push_back(n);
    if (extra.empty()) return;
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 3; ++i) list += (i ? ", '" : "'") + extra[i] + "'";
    fail("weights", src_->origin(), ": ", extra.size(), " unexpected tensor", extra.size() > 1 ? "s" : "", " (", list,
         extra.size() > 3 ? ", ..." : "", "); wrong model file, or the config does not match the weights");
}

}  // namespace wanrt
