// Synthetic random-weight checkpoints with the official names, shapes and config, for benchmarks
// and memory tests (no real weights can be downloaded here). Values are deterministic per
// (seed, tensor name) and scaled so activations stay in a realistic range through many layers:
// linear weights uniform with std 1/√in, biases ±0.01, norm weights near 1, modulations ±1/√D.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "io/tensor_source.h"
#include "models/clip.h"
#include "models/dit.h"

namespace wanrt {

// The per-tensor seed of synthetic weights: a hash of the tensor name and the model seed.
uint64_t synth_seed(const std::string& name, uint64_t seed);

// Fills n values of a tensor called name (its role read from the name and shape) into out (dtype).
void synth_fill(const std::string& name, const Shape& shape, DType dtype, uint64_t seed, void* out);

// An in-memory DiT checkpoint (matrices in matrix_dtype, the rest f32, as the release stores
// them with matrix_dtype = f32).
std::shared_ptr<MemoryTensorSource> synth_dit_memory(const DitConfig& c, DType matrix_dtype, uint64_t seed);

// Writes DIR/config.json and DIR/diffusion_pytorch_model.safetensors, or shards of at most
// shard_bytes with the index file (as the 14B releases). progress(bytes_done, bytes_total).
void write_synth_dit(const std::string& dir, const DitConfig& c, DType matrix_dtype, uint64_t seed,
                     uint64_t shard_bytes, const std::function<void(uint64_t, uint64_t)>& progress = nullptr);

// The CLIP image encoder's tensors as released (models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth):
// the visual tower under "visual.", every block (the last too) plus post_norm and head, which the
// encoder never runs. The text tower and log_scale of the release are not written (nothing reads them).
std::vector<ParamSpec> clip_param_table(const ClipVisionConfig& c);
// In memory, every tensor in dtype.
std::shared_ptr<MemoryTensorSource> synth_clip_memory(const ClipVisionConfig& c, DType dtype, uint64_t seed);
// As a torch.save zip at path (streamed: the full ViT-H/14 is 2.5 GB in f32).
void write_synth_clip_pth(const std::string& path, const ClipVisionConfig& c, DType dtype, uint64_t seed);

}  // namespace wanrt
