// A read-only collection of named host tensors: a safetensors file (or a sharded set), a torch
// .pth archive, or tensors made in memory. Models load their weights from one through
// WeightLoader (models/weights.h), which checks names, shapes and dtypes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanrt {

// One stored tensor: host bytes, contiguous in PyTorch order, little-endian.
struct StoredTensor {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;
    const void* data = nullptr;  // host address, valid while the source lives
    size_t nbytes = 0;
};

class TensorSource {
public:
    virtual ~TensorSource() = default;
    // Where the tensors come from, for error messages ("model/diffusion_pytorch_model.safetensors").
    virtual std::string origin() const = 0;
    virtual std::vector<std::string> names() const = 0;  // sorted
    virtual const StoredTensor* find(const std::string& name) const = 0;  // nullptr if absent
    // Keeps the bytes alive (mmap, archive): tensors viewing them hold this.
    virtual std::shared_ptr<const void> keepalive() const = 0;
};

// Tensors owned in memory (synthetic weights, tests).
class MemoryTensorSource final : public TensorSource {
public:
    explicit MemoryTensorSource(std::string origin) : origin_(std::move(origin)) {}
    // Adds a tensor by copying nbytes from data.
    void add(const std::string& name, DType dtype, const Shape& shape, const void* data);
    // Adds a tensor of the given shape and returns its writable bytes.
    void* add_uninitialized(const std::string& name, DType dtype, const Shape& shape);

    std::string origin() const override { return origin_; }
    std::vector<std::string> names() const override;
    const StoredTensor* find(const std::string& name) const override;
    std::shared_ptr<const void> keepalive() const override { return store_; }

private:
    struct Store;
    std::string origin_;
    std::shared_ptr<Store> store_ = make_store();
    static std::shared_ptr<Store> make_store();
};

}  // namespace wanrt
