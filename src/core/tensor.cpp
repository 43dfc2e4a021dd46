#include "core/tensor.h"

#include <numeric>

#include "core/error.h"

namespace wanrt {

std::string shape_str(const Shape& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(s[i]);
    }
    return out + "]";
}

int64_t shape_numel(const Shape& s) {
    // Shapes come from files (safetensors headers, configs): a product past int64 is bad input,
    // never a silently wrapped (negative) size that later sizes an allocation.
    int64_t n = 1;
    for (int64_t d : s)
        if (__builtin_mul_overflow(n, d, &n))
            fail("tensor", "shape ", shape_str(s), " has more elements than fit in 64 bits; the file or config is corrupt");
    return n;
}

Shape contiguous_strides(const Shape& s) {
    Shape st(s.size());
    int64_t acc = 1;
    for (int i = int(s.size()) - 1; i >= 0; --i) {
        st[i] = acc;
        acc *= s[i];
    }
    return st;
}

Tensor::Tensor(std::shared_ptr<Buffer> buf, DType dtype, Shape shape, size_t offset_bytes)
    : buf_(std::move(buf)), offset_(offset_bytes), dtype_(dtype), shape_(std::move(shape)) {
    strides_ = contiguous_strides(shape_);
    for (int64_t d : shape_) WANRT_ASSERT(d >= 0);
    WANRT_ASSERT(!buf_ || offset_ + nbytes() <= buf_->bytes());
}

static int norm_dim(int dim, int ndim) {
    int d = dim < 0 ? dim + ndim : dim;
    WANRT_ASSERT(d >= 0 && d < ndim);
    return d;
}

int64_t Tensor::size(int dim) const { return shape_[norm_dim(dim, ndim())]; }
int64_t Tensor::stride(int dim) const { return strides_[norm_dim(dim, ndim())]; }

bool Tensor::is_contiguous() const {
    int64_t acc = 1;
    for (int i = ndim() - 1; i >= 0; --i) {
        if (shape_[i] != 1 && strides_[i] != acc) return false;
        acc *= shape_[i];
    }
    return true;
}

Tensor Tensor::reshape(Shape shape) const {
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1) {
            WANRT_ASSERT(infer < 0);
            infer = int(i);
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        WANRT_ASSERT(known > 0 && numel() % known == 0);
        shape[infer] = numel() / known;
    }
    if (shape_numel(shape) != numel())
        fail("tensor", "cannot reshape ", describe(), " to ", shape_str(shape), ": element counts differ");
    WANRT_ASSERT(is_contiguous());
    Tensor t = *this;
    t.shape_ = std::move(shape);
    t.strides_ = contiguous_strides(t.shape_);
    return t;
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
    WANRT_ASSERT(int(dims.size()) == ndim());
    Tensor t = *this;
    std::vector<bool> seen(dims.size(), false);
    for (size_t i = 0; i < dims.size(); ++i) {
        int d = norm_dim(dims[i], ndim());
        WANRT_ASSERT(!seen[d]);
        seen[d] = true;
        t.shape_[i] = shape_[d];
        t.strides_[i] = strides_[d];
    }
    return t;
}

Tensor Tensor::transpose(int a, int b) const {
    std::vector<int> dims(ndim());
    std::iota(dims.begin(), dims.end(), 0);
    std::swap(dims[norm_dim(a, ndim())], dims[norm_dim(b, ndim())]);
    return permute(dims);
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
    int d = norm_dim(dim, ndim());
    WANRT_ASSERT(0 <= start && start <= end && end <= shape_[d]);
    Tensor t = *this;
    t.offset_ += dtype_bytes(dtype_, start * strides_[d]);
    t.shape_[d] = end - start;
    return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
    int d = norm_dim(dim, ndim());
    Tensor t = slice(d, index, index + 1);
    t.shape_.erase(t.shape_.begin() + d);
    t.strides_.erase(t.strides_.begin() + d);
    return t;
}

Tensor Tensor::unsqueeze(int dim) const {
    int d = dim < 0 ? dim + ndim() + 1 : dim;
    WANRT_ASSERT(d >= 0 && d <= ndim());
    Tensor t = *this;
    int64_t st = d < ndim() ? strides_[d] * shape_[d] : 1;
    t.shape_.insert(t.shape_.begin() + d, 1);
    t.strides_.insert(t.strides_.begin() + d, st);
    return t;
}

std::string Tensor::describe() const { return cat(dtype_name(dtype_), shape_str(shape_)); }

}  // namespace wanrt
