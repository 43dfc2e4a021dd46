// Streaming GGUF v3 writer: the layout io/gguf.h reads and gguf-py's GGUFWriter writes.
//
//   "GGUF", u32 3, u64 n_tensors, u64 n_kv, the KVs in the order added, the tensor infos in the order
//   declared (name, u32 n_dims, u64 dims innermost first = the torch shape reversed, u32 type, u64
//   offset relative to the data section), zero padding to `alignment`, then each tensor's bytes
//   followed by zero padding to `alignment` (the last one too, as gguf-py and ggml do).
//
// Streaming: every tensor is declared first (name, type, torch shape), so the header and every offset
// are known before any data; then write() takes the bytes of the tensors in declaration order, in as
// many pieces as the caller likes, and finish() checks that every byte came and renames the file into
// place. The file goes through io/output_file.h: until finish() succeeds the destination is untouched,
// and a failure, an exception or SIGINT/SIGTERM leaves no partial file. general.alignment is written
// as a KV when it is not the default 32.
//
// Any rank up to kGgufMaxDims is accepted (a Wan GGUF holds a 5-D patch_embedding.weight; ggml's own
// reader stops at 4). Errors are wanrt::Error "[gguf] <file>: what, what to do".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace wanrt {

class GgufWriter {
public:
    explicit GgufWriter(std::string path, uint32_t alignment = kGgufDefaultAlignment);
    ~GgufWriter();  // removes the temporary file unless finish() succeeded
    GgufWriter(const GgufWriter&) = delete;
    GgufWriter& operator=(const GgufWriter&) = delete;

    void add_kv(const std::string& key, const GgufValue& value);
    void add_string(const std::string& key, const std::string& v);
    void add_u32(const std::string& key, uint32_t v);

    // Declares the next tensor (torch-order shape). Fails on a duplicate name or a last dim that is not
    // a whole number of the type's blocks.
    void declare(const std::string& name, GgmlType type, const Shape& shape);
    // Appends bytes of the tensors in declaration order (the header is written on the first call).
    void write(const void* data, size_t nbytes);
    void finish();

    // Size of the whole file (header, data, padding); fixed once every tensor is declared.
    uint64_t file_size() const;
    const std::string& path() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wanrt
