// Linear layers on block-quantized weights (core/dtype.h: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, ggml's byte
// layouts), on the CPU, without a dequantized copy of the weight:
//
//   y[M, N] = x[M, K] · Wᵀ + bias,  W [N, K] stored as N rows of K / block_elems blocks.
//
// Three paths (why: docs/perf.md, "CPU linears on quantized weights" and "CPU integer GEMM ...,
// session 9"); every one but the exact panel path sees x quantized per 32 as quantize_row_q8 does:
//  - M ≤ kQlinearIntMaxRows (matrix-vector regime, bound by reading W): ggml's manner. Each row of x
//    is quantized per 32-element block to int8 with one f32 scale (q = round-to-even(x · 127 / amax),
//    d = amax / 127), each W row is unpacked once to int8 values with an f32 scale (and, for
//    Q4_K/Q5_K, an offset) per 16 elements, and the dot products are integer (AVX-512 VNNI, AVX2, or
//    portable scalar code), 4 rows of x per W row. Result: W_deq · x_q exactly up to f32 rounding of
//    the per-block scale products; x_q differs from x by ≤ d/2 per element (about 5e-3 relative).
//  - larger M (the DiT: thousands of tokens), the default: qgemm_tiled, a blocked integer GEMM (x
//    quantized once, W unpacked per K block × N panel into a 16-column-interleaved u8 layout, a
//    register-tiled VNNI micro-kernel): 2.0–2.9× the f32 sgemm speed for Q8_0/Q4_K, 1.7–2.2× for
//    Q6_K (one thread, AVX-512 VNNI), W stays in its GGUF bytes.
//  - exact (CpuBackend::set_exact_qlinear, the oracle; cpu_matmul.cpp gemm_xwt): panels of W rows
//    are dequantized to f32 (exactly the values gguf-py decodes) into an L2/L3-sized buffer and
//    multiplied by OpenBLAS sgemm, so the GEMM runs at sgemm's rate on the exact weights and x stays
//    f32; the decode costs N·K per call against M·N·K multiply-adds.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace wanrt {
class ThreadPool;
}

namespace wanrt::cpu {

constexpr int64_t kQlinearIntMaxRows = 16;

// The activation quantization of the integer path, one row of K (a multiple of 32): q[K] int8 and
// d[K / 32] scales, x ≈ d[k / 32] · q[k]. Also the op table's oracle for what the kernel sees.
void quantize_row_q8(const float* x, int64_t K, int8_t* q, float* d);

// Decodes `rows` rows of K elements of a block-quantized weight (row r at byte r · row_bytes of w)
// to f32, bit-identical to gguf_dequantize (io/gguf_quants.h).
void dequantize_rows(DType t, const void* w, int64_t rows, int64_t K, float* out);

// The integer path: y[M, N] = x_q[M, K] · W_deqᵀ (no bias), threaded over N, 4 rows of x per W row.
void qgemm_int(ThreadPool& pool, int64_t M, int64_t N, int64_t K, const float* x, const void* w, DType t, float* y);

// Which kernel qgemm_tiled runs: the best compiled in (AVX-512 VNNI, else AVX2), or, for tests on a
// host that has more, the AVX2 one (VNNI where compiled in; Avx2Maddubs: the maddubs emulation of
// plain AVX2) or the portable scalar one. All give the same sums up to f32 rounding order; a kernel
// not compiled in falls back to the next one down.
enum class QgemmIsa { Best, Avx2, Avx2Maddubs, Portable };

// The blocked integer GEMM: y[M, N] = x_q[M, K] · W_deqᵀ (no bias), x_q as quantize_row_q8, K a
// multiple of the type's block; threaded over N panels. Throws nothing; asserts the shapes.
void qgemm_tiled(ThreadPool& pool, int64_t M, int64_t N, int64_t K, const float* x, const void* w, DType t, float* y,
                 QgemmIsa isa = QgemmIsa::Best);

// The unpacked form of one W row shared by the kernels (cpu_qmatmul.cpp): K elements from the row's
// blocks at src → int8 q[K], f32 s[K / 16], o[K / 16] with w = s[k / 16] · q[k] + o[k / 16] exactly
// (o untouched for the types without offsets, see has_offsets: Q4_K and Q5_K).
void unpack_row(DType t, const uint8_t* src, int64_t K, int8_t* q, float* s, float* o);
bool has_offsets(DType t);

}  // namespace wanrt::cpu
