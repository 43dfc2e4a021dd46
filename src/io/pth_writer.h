// Minimal writer of PyTorch `torch.save` checkpoints (the zip format read by torch ≥ 1.6 and by
// io/pth.h), for synthetic model folders in the official layout (Wan2.1_VAE.pth,
// models_t5_umt5-xxl-enc-bf16.pth). Writes a plain state dict {name: tensor} as torch does:
//
//   <top>/data/<k>     raw little-endian storage of tensor k (one storage per tensor, contiguous),
//                      stored (uncompressed), each entry's data aligned to 64 bytes (as torch does,
//                      with a padding extra field) so a reader can map it in place;
//   <top>/data.pkl     pickle protocol 2: collections.OrderedDict of
//                      torch._utils._rebuild_tensor_v2((persistent id ('storage', torch.<T>Storage,
//                      '<k>', 'cpu', numel)), 0, size, stride, False, OrderedDict());
//   <top>/byteorder    "little";  <top>/version  "3".
// Zip64 records are written when an entry or the archive passes 4 GiB. Tensors are streamed: the
// largest one never needs to be in memory (the fill callback writes chunks).
//
// Dtypes: f32, f16, bf16, f64, i64, i32, u8. Writes <path>.tmp and renames it into place in
// finish(); the destructor removes the temporary file if finish() was not reached.
// Errors: wanrt::Error "[pth] ..." (unwritable path, an unsupported dtype, a short fill).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/output_file.h"

namespace wanrt {

class PthWriter {
public:
    explicit PthWriter(std::string path, std::string top = "archive");
    ~PthWriter();
    PthWriter(const PthWriter&) = delete;
    PthWriter& operator=(const PthWriter&) = delete;

    // One tensor from host bytes (contiguous, PyTorch order).
    void add(const std::string& name, DType dtype, const Shape& shape, const void* data);
    // One tensor filled in chunks: fill(out, first, n) writes elements [first, first + n).
    using FillFn = std::function<void(void* out, int64_t first, int64_t n)>;
    void add_streamed(const std::string& name, DType dtype, const Shape& shape, const FillFn& fill);
    // Writes data.pkl, byteorder, version and the central directory; renames into place.
    void finish();

private:
    struct Entry {
        std::string name;
        uint64_t header_offset = 0, size = 0;
        uint32_t crc = 0;
    };
    struct TensorRec {
        std::string name;
        DType dtype;
        Shape shape;
        std::string key;
    };
    void begin_entry(const std::string& name, uint64_t size);
    void write_bytes(const void* p, size_t n);
    void end_entry();
    void write_entry(const std::string& name, const std::string& bytes);

    std::string path_, top_;
    std::unique_ptr<TempOutput> tmp_;  // beside path_, removed unless finish() renamed it
    FILE* f_ = nullptr;
    uint64_t pos_ = 0;
    std::vector<Entry> entries_;
    std::vector<TensorRec> tensors_;
    uint32_t crc_ = 0;
    uint64_t written_ = 0;
    bool finished_ = false;
};

}  // namespace wanrt
