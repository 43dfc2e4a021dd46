// The blocked integer GEMM on block-quantized weights (cpu/qmatmul.h, qgemm_tiled):
//
//   y[m, n] = Σ_g s[n, g] · dx[m, g] · Σ_{k∈g} q[n, k] · x_q[m, k]   (+ Σ_g o[n, g] · dx[m, g] · Σ_{k∈g} x_q[m, k])
//
// with W's unpacked form w = s·q + o per group g of G elements (cpu_qmatmul.cpp: unpack_row) and x
// quantized per 32 (quantize_row_q8). G = 32, except Q6_K whose scales are per 16 (G = 16).
//
// Operand signs. vpdpbusd multiplies unsigned bytes by signed bytes. x_q is signed (−127..127), so W
// is made the unsigned operand: u = q + c with c the type's zero point (Q8_0: 128, i.e. the byte
// xor 0x80; Q4_0: 8; Q6_K: 32; Q4_K/Q5_K: 0, their nibbles are unsigned already and their minimum is
// the offset o). Then Σ u·x = Σ q·x + c·Σ x, and each group's int32 accumulator starts at
// −c·Σ_{k∈g} x_q[m, k], kept per row and group when x is quantized: no per-column correction and no
// sign shuffles (ggml's _mm256_sign_epi8 pair) in the inner loop. u ≤ 255, |x| ≤ 127: a group's sum
// (≤ 32 · 255 · 127) never leaves int32. AVX2 without VNNI emulates vpdpbusd with maddubs, whose
// int16 pair sums would saturate at 2 · 255 · 127: u is split into u & 0x7f and u & 0x80 (each pair
// sum then ≤ 32,512), two maddubs instead of one.
//
// Blocking (GotoBLAS order). K in blocks of ≤ 4,096 (whole super-blocks); N in panels of 128
// columns, a panel per thread. A panel is unpacked once per K block into the interleaved layout
// (≈ 0.6 MB: L2) — the weight itself stays in its GGUF bytes; this per-call unpack costs ≈ N·K
// byte moves against M·N·K multiply-adds — then every tile of 6 x rows (6 · KC bytes: L1) runs
// against the panel's 32-column pairs: 6 × 2 zmm int32 accumulators (one vpdpbusd = 16 columns ×
// 4 k of one x row, x's 4 bytes broadcast), converted and scaled into 6 × 2 zmm f32 sums per group:
// 24 accumulators + 2 W vectors + 2 scale vectors of the 32 zmm, no spills (6 rows: 5–12 % faster
// than 4 on 1,560×1,536², docs/perf.md; 8 rows would need 36 registers).
// Layout of one 16-column group for one G-group: G/4 steps of 64 bytes (column j's 4 bytes of k at
// 4·j), then 16 f32 scales, then (Q4_K/Q5_K) 16 f32 offsets; groups follow each other along k.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12 warns about the _mm512_undefined_* inside its own AVX-512 intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "core/error.h"
#include "core/threadpool.h"
#include "cpu/qmatmul.h"

namespace wanrt::cpu {

namespace {

constexpr int64_t kPanelCols = 128;
constexpr int64_t kMaxKc = 4096;
constexpr int64_t kMaxRows = 2048;  // rows of x quantized and run per pass

struct Kind {
    int G;      // elements per scale group
    int c;      // zero point added to q to make it unsigned
    bool offs;  // per-group offsets (Q4_K, Q5_K)
};
Kind kind_of(DType t) {
    switch (t) {
        case DType::Q8_0:
            return {32, 128, false};
        case DType::Q4_0:
            return {32, 8, false};
        case DType::Q4_K:
        case DType::Q5_K:
            return {32, 0, true};
        case DType::Q6_K:
            return {16, 32, false};
        default:
            WANRT_ASSERT(false && "qgemm_tiled: not a block type");
    }
    return {};
}
// Bytes of one 16-column group for one G-group.
int64_t group_stride(const Kind& k) {
    return 16 * k.G + 64 + (k.offs ? 64 : 0);
}

// 64-byte aligned scratch kept between calls (a fresh multi-MB allocation per call is zeroed and
// page-faulted again each time: 5–8 % of a GEMM, docs/perf.md).
struct Scratch {
    struct Free {
        void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
    };
    std::unique_ptr<uint8_t[], Free> p;
    size_t n = 0;
    uint8_t* get(size_t bytes) {
        if (bytes > n) {
            p.reset();
            p.reset(static_cast<uint8_t*>(::operator new[](bytes, std::align_val_t(64))));
            n = bytes;
        }
        return p.get();
    }
};

// x quantized: q [M, K], d [M, K/32], c [M, K/G] = −c·Σ_{k∈g} q (types with a zero point),
// s [M, K/32] = d·Σ_{k∈32} q (types with offsets).
struct XQ {
    int64_t K;
    const int8_t* q;
    const float* d;
    const int32_t* c;
    const float* s;
};

// Rows [n0, n0 + 16·ncg) of W (rows ≥ N: zeros, scale 0) over k [k0, k0 + kc) → the interleaved
// panel. q, s, o: scratch for one unpacked row (kc, kc/16, kc/16).
void pack_panel(DType t, const Kind& kd, const uint8_t* w, size_t row_bytes, int64_t N, int64_t n0, int64_t ncg,
                int64_t k0, int64_t kc, uint8_t* panel, int8_t* q, float* s, float* o) {
    const int64_t ng = kc / kd.G, gs = group_stride(kd), steps = kd.G / 4, sg = kd.G / 16;
    const size_t koff = dtype_bytes(t, k0);
    const uint8_t c = uint8_t(kd.c);
    for (int64_t cg = 0; cg < ncg; ++cg) {
        uint8_t* pg = panel + cg * ng * gs;
        if (n0 + 16 * cg + 16 > N) std::memset(pg, 0, size_t(ng * gs));
        for (int r = 0; r < 16; ++r) {
            const int64_t n = n0 + 16 * cg + r;
            if (n >= N) break;
            unpack_row(t, w + size_t(n) * row_bytes + koff, kc, q, s, o);
            uint8_t* u = reinterpret_cast<uint8_t*>(q);
            for (int64_t k = 0; k < kc; ++k) u[k] = uint8_t(u[k] + c);  // q + c mod 256: in 0..255 for every type
            for (int64_t g = 0; g < ng; ++g) {
                uint8_t* pd = pg + g * gs;
                const uint8_t* ug = u + g * kd.G;
                for (int st = 0; st < steps; ++st) std::memcpy(pd + 64 * st + 4 * r, ug + 4 * st, 4);
                reinterpret_cast<float*>(pd + 16 * kd.G)[r] = s[g * sg];
                if (kd.offs) reinterpret_cast<float*>(pd + 16 * kd.G + 64)[r] = o[g * sg];
            }
        }
    }
}

// Row m of x at k block k0, as a tile sees it.
struct XRowAt {
    const int8_t* q;
    const float* d;
    const int32_t* c;
    const float* s;
};
template <int G>
XRowAt x_row(const XQ& x, int64_t m, int64_t k0) {
    return {x.q + m * x.K + k0, x.d + m * (x.K / 32) + k0 / 32, x.c ? x.c + m * (x.K / G) + k0 / G : nullptr,
            x.s ? x.s + m * (x.K / 32) + k0 / 32 : nullptr};
}

// ---- portable tile: 1 row × one 16-column group --------------------------------------------------
template <int G, bool Offs, bool Corr>
void tile_portable(const uint8_t* pa, int64_t ng, int64_t gs, const XRowAt& x, float* y, int ncols, bool acc_in) {
    float f[16];
    for (int j = 0; j < 16; ++j) f[j] = acc_in && j < ncols ? y[j] : 0.0f;
    for (int64_t g = 0; g < ng; ++g, pa += gs) {
        int32_t ia[16];
        for (int j = 0; j < 16; ++j) ia[j] = Corr ? x.c[g] : 0;
        const int8_t* xg = x.q + g * G;
        for (int st = 0; st < G / 4; ++st)
            for (int j = 0; j < 16; ++j)
                for (int i = 0; i < 4; ++i) ia[j] += int32_t(pa[64 * st + 4 * j + i]) * int32_t(xg[4 * st + i]);
        const float* sc = reinterpret_cast<const float*>(pa + 16 * G);
        const float d = x.d[g * G / 32];
        for (int j = 0; j < 16; ++j) f[j] += float(ia[j]) * (sc[j] * d);
        if (Offs)
            for (int j = 0; j < 16; ++j) f[j] += sc[16 + j] * x.s[g];
    }
    for (int j = 0; j < ncols; ++j) y[j] = f[j];
}

#if defined(__AVX2__)
// ---- AVX2 tile: 2 rows × one 16-column group (two ymm halves) ----------------------------------
template <bool Emu>
inline __m256i dp256(__m256i acc, __m256i u, __m256i x) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    if (!Emu) return _mm256_dpbusd_epi32(acc, u, x);
#elif defined(__AVXVNNI__)
    if (!Emu) return _mm256_dpbusd_avx_epi32(acc, u, x);
#endif
    const __m256i ones = _mm256_set1_epi16(1), lo7 = _mm256_set1_epi8(0x7f);
    const __m256i a = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(u, lo7), x), ones);
    const __m256i b = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_andnot_si256(lo7, u), x), ones);
    return _mm256_add_epi32(acc, _mm256_add_epi32(a, b));
}

template <int MR, int G, bool Offs, bool Corr, bool Emu>
void tile_avx2(const uint8_t* pa, int64_t ng, int64_t gs, const XRowAt* x, float* y, int64_t ldy, int ncols,
               bool acc_in) {
    __m256 f[MR][2];
    for (int m = 0; m < MR; ++m)
        for (int h = 0; h < 2; ++h) {
            f[m][h] = _mm256_setzero_ps();
            if (acc_in) {
                float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (int j = 0; j < 8 && 8 * h + j < ncols; ++j) tmp[j] = y[m * ldy + 8 * h + j];
                f[m][h] = _mm256_loadu_ps(tmp);
            }
        }
    for (int64_t g = 0; g < ng; ++g, pa += gs) {
        __m256i ia[MR][2];
        for (int m = 0; m < MR; ++m) ia[m][0] = ia[m][1] = Corr ? _mm256_set1_epi32(x[m].c[g]) : _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int st = 0; st < G / 4; ++st) {
            const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pa + 64 * st));
            const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pa + 64 * st + 32));
            for (int m = 0; m < MR; ++m) {
                int32_t xv;
                std::memcpy(&xv, x[m].q + g * G + 4 * st, 4);
                const __m256i xb = _mm256_set1_epi32(xv);
                ia[m][0] = dp256<Emu>(ia[m][0], w0, xb);
                ia[m][1] = dp256<Emu>(ia[m][1], w1, xb);
            }
        }
        const float* sc = reinterpret_cast<const float*>(pa + 16 * G);
        const __m256 s0 = _mm256_load_ps(sc), s1 = _mm256_load_ps(sc + 8);
        for (int m = 0; m < MR; ++m) {
            const __m256 d = _mm256_set1_ps(x[m].d[g * G / 32]);
            f[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[m][0]), _mm256_mul_ps(s0, d), f[m][0]);
            f[m][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[m][1]), _mm256_mul_ps(s1, d), f[m][1]);
            if (Offs) {
                const __m256 xs = _mm256_set1_ps(x[m].s[g]);
                f[m][0] = _mm256_fmadd_ps(_mm256_load_ps(sc + 16), xs, f[m][0]);
                f[m][1] = _mm256_fmadd_ps(_mm256_load_ps(sc + 24), xs, f[m][1]);
            }
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int h = 0; h < 2; ++h) {
            float tmp[8];
            _mm256_storeu_ps(tmp, f[m][h]);
            for (int j = 0; j < 8 && 8 * h + j < ncols; ++j) y[m * ldy + 8 * h + j] = tmp[j];
        }
}
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// ---- AVX-512 tile: MR ≤ 6 rows × 32 columns (two 16-column groups pa, pb) ---------------------------
template <int MR, int G, bool Offs, bool Corr>
void tile_avx512(const uint8_t* pa, const uint8_t* pb, int64_t ng, int64_t gs, const XRowAt* x, float* y, int64_t ldy,
                 int ncols, bool acc_in) {
    const __mmask16 k0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1);
    const __mmask16 k1 = ncols >= 32   ? __mmask16(0xffff)
                         : ncols <= 16 ? __mmask16(0)
                                       : __mmask16((1u << (ncols - 16)) - 1);
    __m512 f[MR][2];
    for (int m = 0; m < MR; ++m) {
        f[m][0] = acc_in ? _mm512_maskz_loadu_ps(k0, y + m * ldy) : _mm512_setzero_ps();
        f[m][1] = acc_in ? _mm512_maskz_loadu_ps(k1, y + m * ldy + 16) : _mm512_setzero_ps();
    }
    for (int64_t g = 0; g < ng; ++g, pa += gs, pb += gs) {
        __m512i ia[MR][2];
        for (int m = 0; m < MR; ++m) ia[m][0] = ia[m][1] = Corr ? _mm512_set1_epi32(x[m].c[g]) : _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int st = 0; st < G / 4; ++st) {
            const __m512i w0 = _mm512_load_si512(pa + 64 * st), w1 = _mm512_load_si512(pb + 64 * st);
            for (int m = 0; m < MR; ++m) {
                int32_t xv;
                std::memcpy(&xv, x[m].q + g * G + 4 * st, 4);
                const __m512i xb = _mm512_set1_epi32(xv);
                ia[m][0] = _mm512_dpbusd_epi32(ia[m][0], w0, xb);
                ia[m][1] = _mm512_dpbusd_epi32(ia[m][1], w1, xb);
            }
        }
        const float* sa = reinterpret_cast<const float*>(pa + 16 * G);
        const float* sb = reinterpret_cast<const float*>(pb + 16 * G);
        const __m512 s0 = _mm512_load_ps(sa), s1 = _mm512_load_ps(sb);
        for (int m = 0; m < MR; ++m) {
            const __m512 d = _mm512_set1_ps(x[m].d[g * G / 32]);
            f[m][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[m][0]), _mm512_mul_ps(s0, d), f[m][0]);
            f[m][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[m][1]), _mm512_mul_ps(s1, d), f[m][1]);
        }
        if (Offs) {
            const __m512 o0 = _mm512_load_ps(sa + 16), o1 = _mm512_load_ps(sb + 16);
            for (int m = 0; m < MR; ++m) {
                const __m512 xs = _mm512_set1_ps(x[m].s[g]);
                f[m][0] = _mm512_fmadd_ps(o0, xs, f[m][0]);
                f[m][1] = _mm512_fmadd_ps(o1, xs, f[m][1]);
            }
        }
    }
    for (int m = 0; m < MR; ++m) {
        _mm512_mask_storeu_ps(y + m * ldy, k0, f[m][0]);
        _mm512_mask_storeu_ps(y + m * ldy + 16, k1, f[m][1]);
    }
}
#endif

constexpr int kMr512 = 6;

// One packed panel (ncols columns at y, ng groups from k block k0) against every row of x.
template <int G, bool Offs, bool Corr>
void run_panel(QgemmIsa isa, const uint8_t* panel, int64_t ncg, int64_t ng, int64_t gs, const XQ& x, int64_t M,
               int64_t k0, float* y, int64_t ldy, int64_t ncols, bool acc_in) {
    const int64_t cgs = ng * gs;  // bytes per 16-column group
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    if (isa == QgemmIsa::Best) {
        for (int64_t m0 = 0; m0 < M; m0 += kMr512) {
            const int mr = int(std::min<int64_t>(kMr512, M - m0));
            XRowAt xr[kMr512];
            for (int m = 0; m < mr; ++m) xr[m] = x_row<G>(x, m0 + m, k0);
            for (int64_t cg = 0; cg < ncg; cg += 2) {
                const uint8_t* pa = panel + cg * cgs;
                const int nc = int(std::min<int64_t>(32, ncols - 16 * cg));
                float* yt = y + m0 * ldy + 16 * cg;
                switch (mr) {
                    case 6:
                        tile_avx512<6, G, Offs, Corr>(pa, pa + cgs, ng, gs, xr, yt, ldy, nc, acc_in);
                        break;
                    case 5:
                        tile_avx512<5, G, Offs, Corr>(pa, pa + cgs, ng, gs, xr, yt, ldy, nc, acc_in);
                        break;
                    case 4:
                        tile_avx512<4, G, Offs, Corr>(pa, pa + cgs, ng, gs, xr, yt, ldy, nc, acc_in);
                        break;
                    case 3:
                        tile_avx512<3, G, Offs, Corr>(pa, pa + cgs, ng, gs, xr, yt, ldy, nc, acc_in);
                        break;
                    case 2:
                        tile_avx512<2, G, Offs, Corr>(pa, pa + cgs, ng, gs, xr, yt, ldy, nc, acc_in);
                        break;
                    default:
                        tile_avx512<1, G, Offs, Corr>(pa, pa + cgs, ng, gs, xr, yt, ldy, nc, acc_in);
                        break;
                }
            }
        }
        return;
    }
#endif
#if defined(__AVX2__)
    if (isa != QgemmIsa::Portable) {
        const bool emu = isa == QgemmIsa::Avx2Maddubs;
        for (int64_t m0 = 0; m0 < M; m0 += 2) {
            const int mr = int(std::min<int64_t>(2, M - m0));
            XRowAt xr[2];
            for (int m = 0; m < mr; ++m) xr[m] = x_row<G>(x, m0 + m, k0);
            for (int64_t cg = 0; cg < ncg; ++cg) {
                const uint8_t* pa = panel + cg * cgs;
                const int nc = int(std::min<int64_t>(16, ncols - 16 * cg));
                if (nc <= 0) break;
                float* yt = y + m0 * ldy + 16 * cg;
                if (mr == 2)
                    emu ? tile_avx2<2, G, Offs, Corr, true>(pa, ng, gs, xr, yt, ldy, nc, acc_in)
                        : tile_avx2<2, G, Offs, Corr, false>(pa, ng, gs, xr, yt, ldy, nc, acc_in);
                else
                    emu ? tile_avx2<1, G, Offs, Corr, true>(pa, ng, gs, xr, yt, ldy, nc, acc_in)
                        : tile_avx2<1, G, Offs, Corr, false>(pa, ng, gs, xr, yt, ldy, nc, acc_in);
            }
        }
        return;
    }
#endif
    (void)isa;
    for (int64_t m = 0; m < M; ++m) {
        const XRowAt xr = x_row<G>(x, m, k0);
        for (int64_t cg = 0; cg < ncg; ++cg) {
            const int nc = int(std::min<int64_t>(16, ncols - 16 * cg));
            if (nc <= 0) break;
            tile_portable<G, Offs, Corr>(panel + cg * cgs, ng, gs, xr, y + m * ldy + 16 * cg, nc, acc_in);
        }
    }
}

}  // namespace

void qgemm_tiled(ThreadPool& pool, int64_t M, int64_t N, int64_t K, const float* x, const void* w, DType t, float* y,
                 QgemmIsa isa) {
    const Kind kd = kind_of(t);
    const int64_t be = dtype_info(t).block_elems;
    WANRT_ASSERT(M >= 0 && N >= 0 && K >= 0 && K % 32 == 0 && K % be == 0);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        std::fill(y, y + M * N, 0.0f);
        return;
    }
    if (M > kMaxRows) {
        // Row chunks bound the quantized-x scratch (kMaxRows · K bytes: 28 MB at the 14B's K of
        // 13,824, where a 720p clip's 75,600 rows would need 1 GB); W is unpacked once per chunk, N·K
        // byte moves against kMaxRows·N·K multiply-adds.
        for (int64_t m0 = 0; m0 < M; m0 += kMaxRows)
            qgemm_tiled(pool, std::min(kMaxRows, M - m0), N, K, x + m0 * K, w, t, y + m0 * N, isa);
        return;
    }
    // x quantized once, by the calling thread's kept scratch.
    static thread_local Scratch xbuf;
    const int64_t nb = K / 32, ngk = K / kd.G;
    const size_t q_bytes = size_t(M * K + 63) / 64 * 64, d_bytes = size_t(M * nb) * 4, c_bytes = size_t(M * ngk) * 4;
    uint8_t* xb = xbuf.get(q_bytes + d_bytes + c_bytes + d_bytes);
    XQ xq{K, reinterpret_cast<int8_t*>(xb), reinterpret_cast<float*>(xb + q_bytes),
          kd.c ? reinterpret_cast<int32_t*>(xb + q_bytes + d_bytes) : nullptr,
          kd.offs ? reinterpret_cast<float*>(xb + q_bytes + d_bytes + c_bytes) : nullptr};
    pool.parallel_for(M, 8, [&](int64_t m0, int64_t m1) {
        for (int64_t m = m0; m < m1; ++m) {
            int8_t* q = const_cast<int8_t*>(xq.q) + m * K;
            float* d = const_cast<float*>(xq.d) + m * nb;
            quantize_row_q8(x + m * K, K, q, d);
            for (int64_t g = 0; g < (kd.c || kd.offs ? ngk : 0); ++g) {
                int32_t sum = 0;
                for (int i = 0; i < kd.G; ++i) sum += q[g * kd.G + i];
                if (kd.c) const_cast<int32_t*>(xq.c)[m * ngk + g] = -kd.c * sum;
                if (kd.offs) const_cast<float*>(xq.s)[m * nb + g] = d[g] * float(sum);  // G = 32 here
            }
        }
    });
    // K blocks of whole super-blocks, as even as possible.
    const int64_t nsb = K / be, nkb = (K + kMaxKc - 1) / kMaxKc, kc_max = (nsb + nkb - 1) / nkb * be;
    const int64_t npanels = (N + kPanelCols - 1) / kPanelCols, gs = group_stride(kd);
    const size_t row_bytes = dtype_bytes(t, K);
    const uint8_t* wb = static_cast<const uint8_t*>(w);
    pool.parallel_for(npanels, 1, [&](int64_t p0, int64_t p1) {
        static thread_local Scratch pbuf, rowbuf;
        // Even number of 16-column groups: the AVX-512 tile takes them in pairs.
        uint8_t* panel = pbuf.get(size_t((kPanelCols / 16) * (kc_max / kd.G) * gs));
        uint8_t* rb = rowbuf.get(size_t(kc_max) + 2 * size_t(kc_max / 16) * 4);
        int8_t* rq = reinterpret_cast<int8_t*>(rb);
        float* rs = reinterpret_cast<float*>(rb + kc_max);
        float* ro = rs + kc_max / 16;
        for (int64_t p = p0; p < p1; ++p) {
            const int64_t n0 = p * kPanelCols, ncols = std::min(kPanelCols, N - n0), ncg = (ncols + 31) / 32 * 2;
            for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
                const int64_t kc = std::min(kc_max, K - k0), ng = kc / kd.G;
                pack_panel(t, kd, wb, row_bytes, N, n0, ncg, k0, kc, panel, rq, rs, ro);
                const bool acc_in = k0 > 0;
                if (kd.offs)
                    run_panel<32, true, false>(isa, panel, ncg, ng, gs, xq, M, k0, y + n0, N, ncols, acc_in);
                else if (kd.G == 16)
                    run_panel<16, false, true>(isa, panel, ncg, ng, gs, xq, M, k0, y + n0, N, ncols, acc_in);
                else
                    run_panel<32, false, true>(isa, panel, ncg, ng, gs, xq, M, k0, y + n0, N, ncols, acc_in);
            }
        }
    });
}

}  // namespace wanrt::cpu
