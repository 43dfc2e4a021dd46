// Linear layers: y = x·wᵀ + b with f32 activations and f32/bf16/f16 or block-quantized weights used
// in place (block types: cpu/qmatmul.h; integer GEMMs on x rounded to int8 per 32, or, with
// CpuBackend::set_exact_qlinear, panels decoded exactly for sgemm).
//
// f32 weights go straight to OpenBLAS sgemm. bf16/f16 weights are widened to f32 one panel of
// rows at a time (a few MB, so the panel stays in cache while sgemm streams it) and the panel is
// multiplied by sgemm: the checkpoint stays 2 bytes per weight in memory and the GEMM runs at
// sgemm's rate; the widening costs N·K conversions per call against M·N·K multiply-adds.
// With very few rows (time embedding, single tokens) a GEMM is a matrix-vector product bound by
// reading the weights, so those rows take a direct dot-product path that reads w once.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"
#include "cpu/qmatmul.h"
#include "cpu/vecmath.h"

namespace wanrt {
namespace cpu {

namespace {

// Widens n weights starting at element `first` to f32 (block types: first and n whole blocks,
// decoded exactly by cpu/cpu_qmatmul.cpp in pieces that stay in L1/L2).
void widen(const void* w, DType t, int64_t first, int64_t n, float* out) {
    if (dtype_is_block(t)) {
        const uint8_t* p = static_cast<const uint8_t*>(w) + dtype_bytes(t, first);
        for (int64_t i = 0; i < n; i += 4096) {
            const int64_t len = std::min<int64_t>(4096, n - i);
            dequantize_rows(t, p + dtype_bytes(t, i), 1, len, out + i);
        }
        return;
    }
    const uint16_t* s = static_cast<const uint16_t*>(w) + first;
    int64_t i = 0;
#if defined(__AVX2__)
    if (t == DType::BF16) {
        for (; i + 8 <= n; i += 8) {
            __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
            __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
            _mm256_storeu_ps(out + i, _mm256_castsi256_ps(u));
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
        }
    }
#endif
    if (t == DType::BF16)
        for (; i < n; ++i) out[i] = bf16_to_f32(s[i]);
    else
        for (; i < n; ++i) out[i] = f16_to_f32(s[i]);
}

float dot_f32(const float* a, const float* b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (int j = 0; j < 8; ++j) s += acc[j];
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

}  // namespace

void gemm_xwt(ThreadPool& pool, int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx,
              const void* w, DType wtype, float* y, int64_t ldy) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int64_t m = 0; m < M; ++m) std::fill(y + m * ldy, y + m * ldy + N, 0.0f);
        return;
    }
    if (M <= 4) {
        // Matrix-vector regime: read each weight row once, widen it into a stack buffer.
        pool.parallel_for(N, 16, [&](int64_t b, int64_t e) {
            std::vector<float> row(wtype == DType::F32 ? 0 : K);
            for (int64_t n = b; n < e; ++n) {
                const float* wr;
                if (wtype == DType::F32) {
                    wr = static_cast<const float*>(w) + n * K;
                } else {
                    widen(w, wtype, n * K, K, row.data());
                    wr = row.data();
                }
                for (int64_t m = 0; m < M; ++m) y[m * ldy + n] = dot_f32(x + m * ldx, wr, K);
            }
        });
        return;
    }
    if (wtype == DType::F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, x, int(ldx),
                    static_cast<const float*>(w), int(K), 0.0f, y, int(ldy));
        return;
    }
    WANRT_ASSERT(wtype == DType::BF16 || wtype == DType::F16 || dtype_is_block(wtype));
    // Panel of nb weight rows ≈ 4 MB of f32, a multiple of 16 rows.
    int64_t nb = std::clamp<int64_t>((int64_t(1) << 20) / K, 16, N);
    if (dtype_is_block(wtype)) {
        // Block types: at most 16 MB of f32 (4M weights), split evenly. Each sgemm call packs all of
        // x again and narrow calls run below sgemm's rate: with 4 MB panels the FFN down projection
        // (K 8,960: 12 calls of 128 rows) ran 1.25× the f32 time, 1.08× with ≤ 4 calls (docs/perf.md).
        const int64_t calls = std::max<int64_t>(1, (N * K + (int64_t(1) << 22) - 1) >> 22);
        nb = (N + calls - 1) / calls;
    }
    nb = std::min(N, (nb + 15) / 16 * 16);
    // Block types keep their panel between calls (per calling thread, ≤ 16 MB): a fresh 9 MB
    // allocation per call was zeroed and page-faulted again each time, 5–8% of a 1560×1536² GEMM.
    static thread_local std::unique_ptr<float[]> kept;
    static thread_local size_t kept_n = 0;
    std::vector<float> local;
    float* panel;
    if (dtype_is_block(wtype)) {
        if (kept_n < size_t(nb * K)) {
            kept.reset();
            kept.reset(new float[size_t(nb * K)]);
            kept_n = size_t(nb * K);
        }
        panel = kept.get();
    } else {
        local.resize(size_t(nb * K));
        panel = local.data();
    }
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        int64_t rows = std::min(nb, N - n0);
        pool.parallel_for(rows, 4, [&](int64_t b, int64_t e) {
            widen(w, wtype, (n0 + b) * K, (e - b) * K, panel + b * K);
        });
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(rows), int(K), 1.0f, x, int(ldx),
                    panel, int(K), 0.0f, y + n0, int(ldy));
    }
}

}  // namespace cpu

static void linear_cpu(CpuBackend& be, const Tensor& x, const Tensor& w, const Tensor* bias, Activation act,
                        const Tensor& y) {
    const int64_t K = x.size(-1), N = w.size(0), M = x.numel() / std::max<int64_t>(K, 1);
    float* ys = y.data<float>();
    if (dtype_is_block(w.dtype()) && M <= cpu::kQlinearIntMaxRows && M > 0 && N > 0)
        cpu::qgemm_int(be.pool(), M, N, K, x.data<float>(), w.raw(), w.dtype(), ys);  // cpu/qmatmul.h
    else if (dtype_is_block(w.dtype()) && !be.exact_qlinear())
        cpu::qgemm_tiled(be.pool(), M, N, K, x.data<float>(), w.raw(), w.dtype(), ys);
    else
        cpu::gemm_xwt(be.pool(), M, N, K, x.data<float>(), K, w.raw(), w.dtype(), ys, N);
    const float* b = bias ? bias->data<float>() : nullptr;
    if (!b && act == Activation::None) return;
    be.pool().parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            float* row = ys + r * N;
            if (b)
                for (int64_t n = 0; n < N; ++n) row[n] += b[n];
            switch (act) {
                case Activation::None: break;
                case Activation::GeluTanh:
                    for (int64_t n = 0; n < N; ++n) row[n] = cpu::gelu_tanh(row[n]);
                    break;
                case Activation::GeluErf:
                    for (int64_t n = 0; n < N; ++n) row[n] = cpu::gelu_erf(row[n]);
                    break;
                case Activation::Silu:
                    for (int64_t n = 0; n < N; ++n) row[n] = cpu::silu(row[n]);
                    break;
                case Activation::Tanh:
                    for (int64_t n = 0; n < N; ++n) row[n] = std::tanh(row[n]);
                    break;
                case Activation::Relu:
                    for (int64_t n = 0; n < N; ++n) row[n] = row[n] > 0.0f ? row[n] : 0.0f;
                    break;
            }
        }
    });
}

namespace {
const RegisterKernel<LinearArgs, CpuBackend> reg_linear(
    {{DType::F32, DType::F32}, {DType::F32, DType::BF16}, {DType::F32, DType::F16}, {DType::F32, DType::Q8_0},
     {DType::F32, DType::Q4_0}, {DType::F32, DType::Q4_K}, {DType::F32, DType::Q5_K}, {DType::F32, DType::Q6_K}},
    [](CpuBackend& be, const LinearArgs& a) { linear_cpu(be, a.x, a.w, a.bias, a.act, a.y); });
}  // namespace

}  // namespace wanrt
