// GGML tensor types as GGUF files store them: type ids, block layouts, and exact dequantizers to
// float32.
//
// A quantized tensor is rows of blocks along its last torch dim (innermost GGUF dim): a row of n
// elements is n / block_elems blocks of block_bytes each, little-endian. Every decoder reproduces
// llama.cpp's gguf-py (gguf/quants.py), whose float32 arithmetic is the reference the fixtures hold
// (gguf_ref.safetensors): the same operations in the same order (e.g. Q4_K `(d·sc)·q − dmin·m`, two
// roundings, never a fused multiply-add), f16 scales converted exactly (subnormals, −0).
#pragma once

#include <cstddef>
#include <cstdint>

namespace wanrt {

// GGML type ids (ggml.h `enum ggml_type`; the ids are part of the file format).
enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
};

struct GgmlTypeInfo {
    const char* name;     // "Q4_K", as gguf-py and llama.cpp spell it
    int64_t block_elems;  // elements per block (1 for F32/F16/BF16)
    size_t block_bytes;   // bytes per block
    bool dequantizable;   // gguf_dequantize() decodes it
};

// Layout of a type id, or nullptr when the id is not a type this reader knows.
const GgmlTypeInfo* ggml_type_info(uint32_t type_id);

// Decodes n_blocks consecutive blocks of `type` at src into n_blocks · block_elems floats.
// The type must be dequantizable (asserted: callers check ggml_type_info first).
void gguf_dequantize(GgmlType type, const void* src, int64_t n_blocks, float* dst);

// f16 → f32, exact for every bit pattern (subnormals, −0, inf, NaN).
float gguf_f16_to_f32(uint16_t h);

// The IQ grids and sign tables (gguf_iq_tables.cpp: ggml's ggml-common.h, value for value).
namespace gguf_tables {
extern const uint8_t* const ksigns_iq2xs;   // [128] sign patterns, 7 stored bits + parity
extern const int8_t* const kvalues_iq4nl;   // [16] IQ4_NL / IQ4_XS non-linear levels
extern const uint64_t* const iq2xxs_grid;   // [256]  8 bytes of {8, 25, 43}
extern const uint64_t* const iq2xs_grid;    // [512]
extern const uint64_t* const iq2s_grid;     // [1024]
extern const uint32_t* const iq3xxs_grid;   // [256]  4 bytes of {4, 12, …, 62}
extern const uint32_t* const iq3s_grid;     // [512]  4 bytes of {1, 3, …, 15}
extern const uint64_t* const iq1s_grid;     // [2048] 8 int8 of {−1, 0, 1}
}  // namespace gguf_tables

}  // namespace wanrt
