// Loading model weights by name with strict checks (docs/style.md, habit 7).
//
// A model asks for each tensor by its official name and expected shape; the loader fails with one
// line naming the file and tensor when a tensor is missing, mis-shaped or of an unusable dtype, and
// finish() fails when the checkpoint holds tensors the model did not ask for (wrong model file or a
// config that does not match the weights). On a host backend, tensors whose dtype is kept are
// views of the mapped file (zero copy); otherwise they are converted and uploaded once.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "core/backend.h"
#include "io/tensor_source.h"

namespace wanrt {

class WeightLoader {
public:
    // Only names starting with prefix are considered ("dit." for a combined fixture file).
    WeightLoader(std::shared_ptr<TensorSource> src, Backend& be, std::string prefix = "");

    // A matrix used by linear(): kept in its stored dtype (f32, bf16, f16) when the backend takes
    // that dtype in place, otherwise converted to f32.
    Tensor matrix(const std::string& name, const Shape& shape);
    // A small parameter (bias, norm weight, modulation): always f32.
    Tensor param(const std::string& name, const Shape& shape);
    // As param(), with the stored tensor reshaped to `shape` (e.g. a Conv3d weight [D, C, 1, 2, 2]
    // used as [D, C·4]); the stored shape must be `stored`.
    Tensor param_as(const std::string& name, const Shape& stored, const Shape& shape);
    bool has(const std::string& name) const;
    // Marks the tensors whose names start with name_prefix as known but not needed (parts of a
    // checkpoint the model never runs), so finish() accepts them; they are never read.
    void skip(const std::string& name_prefix);
    // Throws if any tensor under the prefix was never requested.
    void finish() const;

    const TensorSource& source() const { return *src_; }
    Backend& backend() const { return be_; }

private:
    const StoredTensor& lookup(const std::string& name, const Shape& shape);
    Tensor make(const StoredTensor& st, DType dtype, const Shape& shape);

    std::shared_ptr<TensorSource> src_;
    Backend& be_;
    std::string prefix_;
    std::set<std::string> used_;
};

}  // namespace wanrt
