// `wanrt convert`: a Wan DiT checkpoint in, a GGUF or safetensors file out, tensor by tensor.
//
// Inputs (IN):
//   - an official model folder (config.json + diffusion_pytorch_model.safetensors or its sharded index),
//     a single .safetensors or .safetensors.index.json, a torch .pth/.pt (a "model."/"module." wrapper
//     level is removed), a diffusers pipeline folder (its transformer/) or a diffusers transformer folder
//     (config.json of WanTransformer3DModel): names are mapped to the official ones;
//   - a GGUF (general.architecture "wan"): tensors already in the planned type are copied as they are
//     (no second quantization), the others are dequantized and quantized again;
//   - ComfyUI-layout safetensors ("model.diffusion_model." / "diffusion_model." prefix, fp8 weights with
//     scale_weight / weight_scale, the scaled_fp8 marker; io/comfy_source.h): official names, each scaled
//     weight read as stored and multiplied by its scale in f32 (the values the loader gets), one tensor
//     at a time; markers and input scales are dropped (they describe ComfyUI's matmul). An unscaled fp8
//     weight in an fp8 output of its own type is copied as it is;
//   - a model folder whose DiT is a .gguf (pipeline/model_folder.h) reads as that GGUF;
//   - a `wanrt train --full` checkpoint (checkpoint-step-N.safetensors, train/trainer.h): the DiT's f32
//     masters in official names and shapes, the optimizer state left out (a LoRA run's is refused:
//     its LoRA file is written beside it).
// Outputs (OUT, by extension): .gguf for every GGUF type (io/convert_rules.h says which tensor gets
// which type), .safetensors for f32 / f16 / bf16 and fp8_e4m3 / fp8_e5m2 (fp8: the block linear weights,
// saturated to ±448 (e4m3) / ±57344 (e5m2) before the cast as ComfyUI does; with fp8_scaled each gets a
// per-tensor `<layer>.scale_weight` = max|w| / 448 (f32, shape [1]) and the file a `scaled_fp8` marker,
// as ComfyUI's scaled fp8 files).
//
// Streaming: every tensor's type and size is planned from the headers first (all bad input is found
// before a byte is written), then each tensor is read (mmap), converted on `threads` threads and
// written; at most one tensor's float32 copy and its quantized bytes are in memory. The output is
// complete or absent (io/output_file.h, SIGINT included).
//
// Errors: wanrt::Error "[convert] what, where, what to do".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/convert_rules.h"

namespace wanrt {

struct ConvertOptions {
    std::string in, out, type;
    bool fp8_scaled = false;
    KFallback k_fallback = KFallback::Legacy;
    int threads = 0;       // 0: default_thread_count()
    bool dry_run = false;  // plan only: nothing is written (OUT is still checked)
};

struct ConvertedTensor {
    std::string name;
    Shape shape;
    std::string type;  // "Q4_K", "F32", "F8_E4M3"
    std::string why;   // the rule that chose it
    bool fallback = false;
    bool copied = false;  // GGUF → GGUF in the same type: bytes copied
    uint64_t in_bytes = 0, out_bytes = 0;
};

struct ConvertReport {
    std::string input_kind;  // "official folder", "safetensors", "gguf Q4_K_M", ...
    std::vector<ConvertedTensor> tensors;
    uint64_t in_bytes = 0;   // bytes of the input tensors as stored
    uint64_t out_bytes = 0;  // size of the output file
    int64_t params = 0;
    int fallbacks = 0;
    double bits_per_weight() const { return params ? 8.0 * double(out_bytes) / double(params) : 0; }
};

struct ConvertProgress {
    size_t index = 0, count = 0;               // tensors done, of count
    uint64_t bytes_done = 0, bytes_total = 0;  // output bytes
    std::string name;                          // the tensor just written
};

ConvertReport convert_model(const ConvertOptions& o, const std::function<void(const ConvertProgress&)>& progress = {});

}  // namespace wanrt
