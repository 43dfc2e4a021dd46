// safetensors reader and writer.
//
// File format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data region; offsets are relative to the data region. The reader mmaps the file and
// checks the header length, every dtype, shape and offset range against the file size, so a
// truncated or corrupt file is a one-line error naming the file and the tensor; a name that appears
// twice in the header and tensors whose data overlap are refused too.
// Sharded checkpoints (the 14B releases) are a "<name>.safetensors.index.json" whose "weight_map"
// maps each tensor to a shard file in the same folder: a shard name with a path in it ("../x",
// "/abs", "a/b") is refused, so an index cannot make wanrt open files outside the model folder.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/tensor_source.h"

namespace wanrt {

class SafeTensorsFile final : public TensorSource {
public:
    // Opens and validates path; throws wanrt::Error on any problem.
    static std::shared_ptr<SafeTensorsFile> open(const std::string& path);
    // The same checks on bytes already in memory that outlive the object (the built-in demo DiT,
    // embedded in the program); origin names it in errors.
    static std::shared_ptr<SafeTensorsFile> from_memory(const void* bytes, size_t size, const std::string& origin);

    std::string origin() const override { return path_; }
    std::vector<std::string> names() const override;
    const StoredTensor* find(const std::string& name) const override;
    std::shared_ptr<const void> keepalive() const override { return map_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    static std::shared_ptr<SafeTensorsFile> parse(const uint8_t* base, size_t size, const std::string& path,
                                                  std::shared_ptr<const void> map);
    std::string path_;
    std::shared_ptr<const void> map_;  // the mapping; unmapped when the last user goes
    std::map<std::string, StoredTensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

// Several sources seen as one (shards). Duplicate names across parts are an error.
class MultiTensorSource final : public TensorSource {
public:
    MultiTensorSource(std::string origin, std::vector<std::shared_ptr<TensorSource>> parts);
    std::string origin() const override { return origin_; }
    std::vector<std::string> names() const override;
    const StoredTensor* find(const std::string& name) const override;
    std::shared_ptr<const void> keepalive() const override;

private:
    std::string origin_;
    std::vector<std::shared_ptr<TensorSource>> parts_;
    std::map<std::string, const StoredTensor*> index_;
};

// Opens "x.safetensors" or a sharded "x.safetensors.index.json" (every shard it names must exist
// and hold exactly the tensors the index assigns to it).
std::shared_ptr<TensorSource> open_safetensors(const std::string& path);

// Writes tensors to path atomically (a unique temporary file beside it, then rename: io/output_file.h): a failure never leaves a partial
// file. Tensors are written in the given order.
struct TensorToWrite {
    std::string name;
    DType dtype;
    Shape shape;
    const void* data;  // host, contiguous
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Streaming writer for files too large to hold in memory (synthetic 14B checkpoints): the caller
// declares every tensor first, then fills each one in declaration order.
class SafeTensorsWriter {
public:
    SafeTensorsWriter(std::string path, std::map<std::string, std::string> metadata = {});
    ~SafeTensorsWriter();  // removes the temporary file unless finish() succeeded
    void declare(const std::string& name, DType dtype, const Shape& shape);
    // Appends the bytes of the next declared tensor (may be called several times per tensor).
    void write(const void* data, size_t nbytes);
    void finish();  // checks every byte was written, renames into place

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wanrt
