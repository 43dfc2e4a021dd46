// Element types. Dense types have one element per unit; block-quantized weight types have
// block_elems > 1 and a per-block byte size, so every size computation goes through dtype_bytes().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace wanrt {

// F8E4M3 is torch's float8_e4m3fn, F8E5M2 float8_e5m2 (core/fp8.h): storage types of FP8
// checkpoints and FP8 GEMM operands; conversions go through f32 with torch's rounding.
//
// Block types (Q8_0 … Q6_K) are ggml's, byte for byte (io/gguf_quants.h has the layouts and the exact
// dequantizers): a [N, K] tensor is N rows of K / block_elems blocks, so a GGUF tensor's bytes are used
// as they are. Only weights of linear layers on the CPU backend are kept in them (cpu/cpu_qmatmul.cpp);
// convert_elements() decodes them (exactly, as gguf-py does) but never encodes to them.
enum class DType : uint8_t { F32, F16, BF16, F64, I32, I64, U8, F8E4M3, F8E5M2, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, COUNT };

struct DTypeInfo {
    const char* name;         // our name: "f32"
    const char* st_name;      // safetensors name: "F32"
    size_t block_bytes;       // bytes per block
    int64_t block_elems;      // elements per block (1 for dense types)
    bool is_float;
};

const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
inline size_t dtype_size(DType t) { return dtype_info(t).block_bytes; }  // dense types only
inline bool dtype_is_block(DType t) { return dtype_info(t).block_elems > 1; }
// The ggml type id of a block type (io/gguf_quants.h GgmlType), and the block type of a ggml id
// (false for ids that are not one of ours).
uint32_t dtype_ggml_id(DType t);
bool dtype_from_ggml_id(uint32_t id, DType* out);
// Bytes for n elements of type t (n must be a multiple of the block size).
size_t dtype_bytes(DType t, int64_t n);
// Parses a safetensors dtype string ("BF16"); returns false if unknown.
bool dtype_from_safetensors(const std::string& s, DType* out);

// Scalar conversions. bf16 rounds to nearest even, as torch does.
inline float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements between any two dense types (float/int), used by loaders and tests. The
// source may also be a block type (decoded; n a multiple of its block), the destination not.
void convert_elements(const void* src, DType src_type, void* dst, DType dst_type, int64_t n);

}  // namespace wanrt
