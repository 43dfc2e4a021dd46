// GGUF v3 reader (little-endian), and a TensorSource over a GGUF file.
//
// File layout: "GGUF", u32 version (3), u64 n_tensors, u64 n_kv; n_kv key/values (string key, u32
// value type, value; arrays: u32 element type, u64 count, elements, nested arrays allowed); n_tensors
// tensor infos (string name, u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml type, u64
// offset); then the data section at the first multiple of `general.alignment` (u32, default 32)
// after the infos; tensor offsets are relative to it and aligned. Strings are u64 length + UTF-8.
//
// Shapes: GGUF stores dims innermost first (ggml `ne[]`); this reader reports the torch shape, the
// dims reversed (`ggml_dims` keeps the stored order). Any rank up to kGgufMaxDims is accepted: real
// Wan GGUFs hold a 5-D `patch_embedding.weight`, which ggml's own reader (4 dims) refuses.
//
// Every check fails with a one-line "[gguf] <file>: what, where, what to do" error: bad magic or
// version, truncation anywhere in the header, an unknown value or tensor type (naming the tensor and
// the id), rows that are not a whole number of blocks, offsets misaligned or past the end of the
// file, duplicate names. Sizes are computed with overflow checks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io/gguf_quants.h"
#include "io/tensor_source.h"

namespace wanrt {

constexpr int kGgufMaxDims = 8;
constexpr uint32_t kGgufDefaultAlignment = 32;

enum class GgufValueType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);  // "UINT8", as gguf-py names them

// One metadata value. Integers are kept exactly in u (unsigned types, bool) or i (signed types),
// floats widened exactly to double; arrays hold their elements (of elem_type) in `array`.
struct GgufValue {
    GgufValueType type = GgufValueType::UINT8;
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    std::string str;
    GgufValueType elem_type = GgufValueType::UINT8;  // arrays only
    std::vector<GgufValue> array;
};

struct GgufKV {
    std::string key;
    GgufValue value;
};

struct GgufTensorInfo {
    std::string name;
    std::vector<int64_t> ggml_dims;  // as stored: innermost first
    Shape shape;                     // torch order: ggml_dims reversed
    uint32_t type_id = 0;
    const GgmlTypeInfo* type = nullptr;  // never null after open()
    uint64_t offset = 0;                 // relative to the data section
    uint64_t nbytes = 0;
    const uint8_t* data = nullptr;       // into the mapping
};

class GgufFile {
public:
    // Maps and validates path; throws wanrt::Error on any problem.
    static std::shared_ptr<GgufFile> open(const std::string& path);

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the data section
    uint64_t file_size() const { return file_size_; }
    const std::vector<GgufKV>& kvs() const { return kvs_; }  // file order
    const GgufValue* find_kv(const std::string& key) const;
    std::string architecture() const;  // general.architecture, "" if absent
    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order
    const GgufTensorInfo* find_tensor(const std::string& name) const;
    std::shared_ptr<const void> keepalive() const { return map_; }

    // Decodes a tensor to float32 (any dequantizable type; an error names the tensor and type).
    std::vector<float> dequantize(const GgufTensorInfo& t) const;

private:
    std::string path_;
    std::shared_ptr<const void> map_;
    uint64_t file_size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = kGgufDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<GgufKV> kvs_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

// What a GgufTensorSource hands out for quantized tensors: F32 decoded on first lookup (Decode), or,
// for the types wanrt has a DType for (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), views of the mapping in that
// block dtype (Keep): WeightLoader then keeps linear weights quantized on the CPU backend
// (cpu/cpu_qmatmul.cpp) and decodes everything else (biases, other backends) once at load.
enum class GgufBlocks { Decode, Keep };

// A GGUF file as named host tensors, for the loaders: names as stored, torch-order shapes. F32, F16
// and BF16 tensors are views of the mapping in their own dtype; quantized tensors are block-dtype
// views (GgufBlocks::Keep, types with a DType) or dequantized to F32 on first lookup and cached for
// the life of the source. Construction fails on a tensor whose type cannot be decoded, naming it.
// strip_prefix (ComfyUI's "model.diffusion_model." where a GGUF keeps it): removed from every name;
// a tensor without it is a one-line error (a file mixing models).
class GgufTensorSource final : public TensorSource {
public:
    explicit GgufTensorSource(std::shared_ptr<const GgufFile> file, GgufBlocks blocks = GgufBlocks::Decode,
                              std::string strip_prefix = "");
    static std::shared_ptr<GgufTensorSource> open(const std::string& path, GgufBlocks blocks = GgufBlocks::Decode);

    std::string origin() const override { return file_->path(); }
    std::vector<std::string> names() const override;
    const StoredTensor* find(const std::string& name) const override;
    std::shared_ptr<const void> keepalive() const override { return store_; }
    const GgufFile& file() const { return *file_; }
    const std::string& prefix() const { return prefix_; }  // the prefix removed from the names
    // The ggml type of a tensor (by its name here), for reports; nullptr if absent.
    const GgmlTypeInfo* ggml_type(const std::string& name) const;

    // The same names, shapes and dtypes, decoding nothing: a tensor this source would decode on
    // lookup (a type without a DType, or any quantized type under GgufBlocks::Decode) is listed as
    // F32 with no data (data nullptr, nbytes 0). For reports and checks that read names, shapes and
    // dtypes only (`wanrt info`, dit_weight_problems, DitConfig::from_weights), never for loading.
    std::shared_ptr<TensorSource> stored_view() const;

private:
    struct Store;
    std::shared_ptr<const GgufFile> file_;
    std::string prefix_;
    std::shared_ptr<Store> store_;
};

}  // namespace wanrt
