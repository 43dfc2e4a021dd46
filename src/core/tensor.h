// Tensors: a typed, strided view of a Buffer that a Backend owns.
//
// Layout convention (stated once, used everywhere): shapes and strides are in PyTorch order,
// outermost dimension first, strides counted in elements. Activations are [B, L, D], videos
// [C, T, H, W] per sample, attention heads [B, L, heads, head_dim]. A tensor made by a backend is
// contiguous (row-major); views (slice, permute, reshape of contiguous data) share its buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace wanrt {

class Backend;

// A block of memory owned by a backend. Host-visible buffers have host_ptr() != nullptr.
class Buffer {
public:
    Buffer(Backend* backend, void* ptr, size_t bytes) : backend_(backend), ptr_(ptr), bytes_(bytes) {}
    virtual ~Buffer() = default;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    Backend* backend() const { return backend_; }
    void* ptr() const { return ptr_; }  // device or host address, as the backend defines it
    size_t bytes() const { return bytes_; }

protected:
    Backend* backend_;
    void* ptr_;
    size_t bytes_;
};

// A host buffer that keeps some other owner alive (an mmap'd file, a vector): zero-copy weights.
class ForeignBuffer final : public Buffer {
public:
    ForeignBuffer(Backend* backend, void* ptr, size_t bytes, std::shared_ptr<const void> owner)
        : Buffer(backend, ptr, bytes), owner_(std::move(owner)) {}

private:
    std::shared_ptr<const void> owner_;
};

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 80, 64]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

class Tensor {
public:
    Tensor() = default;
    Tensor(std::shared_ptr<Buffer> buf, DType dtype, Shape shape, size_t offset_bytes = 0);

    bool defined() const { return buf_ != nullptr; }
    DType dtype() const { return dtype_; }
    const Shape& shape() const { return shape_; }
    const Shape& strides() const { return strides_; }
    int ndim() const { return int(shape_.size()); }
    int64_t size(int dim) const;    // negative dims count from the end
    int64_t stride(int dim) const;
    int64_t numel() const { return shape_numel(shape_); }
    size_t nbytes() const { return dtype_bytes(dtype_, numel()); }
    bool is_contiguous() const;
    Backend* backend() const { return buf_ ? buf_->backend() : nullptr; }
    const std::shared_ptr<Buffer>& buffer() const { return buf_; }
    size_t offset_bytes() const { return offset_; }

    // Address of element 0 (device or host, as the backend defines it).
    void* raw() const { return static_cast<char*>(buf_->ptr()) + offset_; }
    template <class T>
    T* data() const { return static_cast<T*>(raw()); }

    // Views (no copy). reshape requires a contiguous tensor; -1 infers one dimension.
    Tensor reshape(Shape shape) const;
    Tensor permute(const std::vector<int>& dims) const;
    Tensor transpose(int a, int b) const;
    Tensor slice(int dim, int64_t start, int64_t end) const;  // [start, end) along dim
    Tensor select(int dim, int64_t index) const;                // drops dim
    Tensor unsqueeze(int dim) const;

    std::string describe() const;  // "f32[2, 80, 64]"

private:
    std::shared_ptr<Buffer> buf_;
    size_t offset_ = 0;
    DType dtype_ = DType::F32;
    Shape shape_;
    Shape strides_;
};

// Called with (name, tensor) for every named intermediate of a forward pass when set; the CLI's
// --dump flag and the per-block golden tests use it.
using DumpFn = std::function<void(const std::string& name, const Tensor& t)>;

}  // namespace wanrt
