// Block-quantized weights on the CPU (cpu/qmatmul.h): decoding rows to f32 for the sgemm path, and
// the integer path for few rows of x.
//
// Both start from one unpacked form of a W row, the same for every type: int8 values q[K] and, per
// 16 elements g, an f32 scale s[g] and offset o[g] with w = s[g]·q + o[g]. Every type fits it exactly
// (Q8_0: s = d; Q4_0: q − 8, s = d; Q4_K/Q5_K: s = d·sc_j, o = −dmin·m_j per 32; Q6_K: q − 32,
// s = d·sc per 16), and s·q + o rounds once where gguf-py's (d·sc)·q − dmin·m does (d·sc and the
// K-quants' s·q are exact in f32), so the decoded rows are bit-identical to gguf_dequantize.
//
// The integer dot of a W row with a quantized x row, per 32 elements: 8 int32 lanes of 4-byte dot
// products (lanes 0–3 fall in group 2b, 4–7 in 2b + 1), converted and scaled by s (expanded to one
// scale per lane when the row is unpacked) times x's block scale. The offsets of Q4_K/Q5_K add
// Σ_lane o · d_x · (Σ of the lane's 4 x values), the lane sums kept from quantizing x: one more FMA
// per 32 elements.
// The SIMD pieces are behind small inline functions (dot_lanes) so a NEON version is one more #if.
#include <algorithm>
#include <cmath>
#include <cstring>
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
#include "io/gguf_quants.h"

namespace wanrt::cpu {

namespace {

inline float h2f(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return gguf_f16_to_f32(v);
}

// The 6-bit scale and min j of a Q4_K/Q5_K super-block (ggml get_scale_min_k4).
inline void scale_min_k4(const uint8_t* s, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

}  // namespace

void unpack_row(DType t, const uint8_t* src, int64_t K, int8_t* q, float* s, float* o) {
    switch (t) {
        case DType::Q8_0:
            for (int64_t b = 0; b < K / 32; ++b, src += 34) {
                const float d = h2f(src);
                std::memcpy(q + 32 * b, src + 2, 32);
                s[2 * b] = s[2 * b + 1] = d;
            }
            return;
        case DType::Q4_0:
            for (int64_t b = 0; b < K / 32; ++b, src += 18) {
                const float d = h2f(src);
                const uint8_t* qs = src + 2;
                int8_t* y = q + 32 * b;
                for (int j = 0; j < 16; ++j) {
                    y[j] = int8_t((qs[j] & 0x0f) - 8);
                    y[j + 16] = int8_t((qs[j] >> 4) - 8);
                }
                s[2 * b] = s[2 * b + 1] = d;
            }
            return;
        case DType::Q4_K:
        case DType::Q5_K: {
            const bool five = t == DType::Q5_K;
            for (int64_t sb = 0; sb < K / 256; ++sb, src += five ? 176 : 144) {
                const float d = h2f(src), dmin = h2f(src + 2);
                const uint8_t* sc = src + 4;
                const uint8_t* qh = src + 16;               // Q5_K only
                const uint8_t* qs = src + (five ? 48 : 16);
                for (int j = 0; j < 8; ++j) {
                    int scj, mj;
                    scale_min_k4(sc, j, &scj, &mj);
                    int8_t* y = q + 256 * sb + 32 * j;
                    const uint8_t* n = qs + 32 * (j / 2);
                    const int shift = 4 * (j % 2);
                    if (five)
                        for (int l = 0; l < 32; ++l) y[l] = int8_t(((n[l] >> shift) & 0x0f) | ((qh[l] >> j) & 1) << 4);
                    else
                        for (int l = 0; l < 32; ++l) y[l] = int8_t((n[l] >> shift) & 0x0f);
                    const int64_t g = 16 * sb + 2 * j;
                    s[g] = s[g + 1] = d * float(scj);
                    o[g] = o[g + 1] = -(dmin * float(mj));
                }
            }
            return;
        }
        case DType::Q6_K:
            for (int64_t sb = 0; sb < K / 256; ++sb, src += 210) {
                const uint8_t* ql = src;
                const uint8_t* qh = src + 128;
                const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
                const float d = h2f(src + 208);
                int8_t* y = q + 256 * sb;
                // ggml's loop order: one byte of ql/qh feeds elements l, l + 32, l + 64, l + 96 of a half.
                for (int h = 0; h < 2; ++h, ql += 64, qh += 32, y += 128)
                    for (int l = 0; l < 32; ++l) {
                        y[l] = int8_t(((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32);
                        y[l + 32] = int8_t(((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32);
                        y[l + 64] = int8_t(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
                        y[l + 96] = int8_t(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
                    }
                for (int g = 0; g < 16; ++g) s[16 * sb + g] = d * float(sc[g]);
            }
            return;
        default: WANRT_ASSERT(false);
    }
}

bool has_offsets(DType t) { return t == DType::Q4_K || t == DType::Q5_K; }

namespace {

// ---- the integer dot: 8 lanes of 4-byte products per 32 elements --------------------------------

#if defined(__AVX2__)
// |w| as u8 and x with w's sign: u8 × s8 products equal w·x (|w| ≤ 128, |x| ≤ 127: no saturation).
inline __m256i dot_lanes(__m256i aw, __m256i sx) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

// One unpacked W row: int8 values, and per 4-element lane its scale and (Q4_K/Q5_K) offset.
struct WRow {
    const int8_t* q;
    const float* s4;
    const float* o4;  // null: no offsets
};
// One quantized x row: int8 values, per-32 scales, and per lane d · Σ of its 4 values (for offsets).
struct XRow {
    const int8_t* q;
    const float* d;
    const float* xs4;
};

// out[r] = Σ_b d_r[b] · Σ_lane s4[8b + lane] · lanes_r(b) (+ Σ_lane o4 · xs4_r), for nr ≤ 4 rows of x
// against one W row.
template <bool Offs>
void dot_rows(const WRow& w, int64_t K, const XRow* x, int nr, float* out) {
    int r0 = 0;
#if defined(__AVX2__)
    for (; r0 + 4 <= nr; r0 += 4) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t b = 0; b < K / 32; ++b) {
            const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.q + 32 * b));
            const __m256i aw = _mm256_sign_epi8(wv, wv);
            const __m256 sv = _mm256_loadu_ps(w.s4 + 8 * b);
            for (int r = 0; r < 4; ++r) {
                const XRow& xr = x[r0 + r];
                const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr.q + 32 * b));
                const __m256 l = _mm256_cvtepi32_ps(dot_lanes(aw, _mm256_sign_epi8(xv, wv)));
                acc[r] = _mm256_fmadd_ps(l, _mm256_mul_ps(sv, _mm256_set1_ps(xr.d[b])), acc[r]);
                if (Offs) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w.o4 + 8 * b), _mm256_loadu_ps(xr.xs4 + 8 * b), acc[r]);
            }
        }
        for (int r = 0; r < 4; ++r) out[r0 + r] = hsum(acc[r]);
    }
    for (; r0 < nr; ++r0) {
        const XRow& xr = x[r0];
        __m256 acc = _mm256_setzero_ps();
        for (int64_t b = 0; b < K / 32; ++b) {
            const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.q + 32 * b));
            const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr.q + 32 * b));
            const __m256 l = _mm256_cvtepi32_ps(dot_lanes(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv)));
            acc = _mm256_fmadd_ps(l, _mm256_mul_ps(_mm256_loadu_ps(w.s4 + 8 * b), _mm256_set1_ps(xr.d[b])), acc);
            if (Offs) acc = _mm256_fmadd_ps(_mm256_loadu_ps(w.o4 + 8 * b), _mm256_loadu_ps(xr.xs4 + 8 * b), acc);
        }
        out[r0] = hsum(acc);
    }
#endif
    for (; r0 < nr; ++r0) {  // portable: the same lanes in plain integers
        const XRow& xr = x[r0];
        float acc = 0;
        for (int64_t b = 0; b < K / 32; ++b) {
            float blk = 0, off = 0;
            for (int lane = 0; lane < 8; ++lane) {
                int32_t v = 0;
                for (int i = 0; i < 4; ++i) v += int32_t(w.q[32 * b + 4 * lane + i]) * int32_t(xr.q[32 * b + 4 * lane + i]);
                blk += float(v) * w.s4[8 * b + lane];
                if (Offs) off += w.o4[8 * b + lane] * xr.xs4[8 * b + lane];
            }
            acc += blk * xr.d[b] + off;
        }
        out[r0] = acc;
    }
}

}  // namespace

void quantize_row_q8(const float* x, int64_t K, int8_t* q, float* d) {
    int64_t b = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    // The same f32 operations as the loop below (max is exact, cvtps rounds half to even under the
    // default MXCSR as nearbyint does), so both give the same bytes; the DiT quantizes M·K values per
    // linear, which the scalar loop made 10–20 % of a GEMM.
    for (; b < K / 32; ++b) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        d[b] = db;
        const __m512 vid = _mm512_set1_ps(id);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b + 16),
                         _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid))));
    }
#endif
    for (; b < K / 32; ++b) {
        const float* xb = x + 32 * b;
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        d[b] = db;
        // nearbyint: round half to even, as _mm256_round_ps and ggml's quantize_row_q8_0 do.
        for (int i = 0; i < 32; ++i) q[32 * b + i] = int8_t(std::nearbyint(xb[i] * id));
    }
}

void dequantize_rows(DType t, const void* w, int64_t rows, int64_t K, float* out) {
    const size_t row_bytes = dtype_bytes(t, K);
    std::vector<int8_t> q(static_cast<size_t>(K));
    std::vector<float> s(size_t(K / 16)), o(size_t(K / 16), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
        unpack_row(t, static_cast<const uint8_t*>(w) + size_t(r) * row_bytes, K, q.data(), s.data(), o.data());
        float* y = out + r * K;
        // s·q is exact for every type but Q6_K, whose o is 0: one rounding, as gguf-py's.
        for (int64_t g = 0; g < K / 16; ++g)
            for (int i = 0; i < 16; ++i) y[16 * g + i] = s[size_t(g)] * float(q[size_t(16 * g + i)]) + o[size_t(g)];
    }
}

void qgemm_int(ThreadPool& pool, int64_t M, int64_t N, int64_t K, const float* x, const void* w, DType t, float* y) {
    WANRT_ASSERT(K % 32 == 0 && K % dtype_info(t).block_elems == 0);
    const int64_t nb = K / 32, nl = K / 4;
    const bool offs = has_offsets(t);
    // x quantized once: q [M, K], d [M, K/32], and for the offsets xs4 [M, K/4] = d · Σ of each lane.
    std::vector<int8_t> xq(size_t(M * K));
    std::vector<float> dx(size_t(M * nb)), xs4(offs ? size_t(M * nl) : 0);
    pool.parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
        for (int64_t m = m0; m < m1; ++m) {
            quantize_row_q8(x + m * K, K, xq.data() + m * K, dx.data() + m * nb);
            if (offs)
                for (int64_t j = 0; j < nl; ++j) {
                    const int8_t* q = xq.data() + m * K + 4 * j;
                    xs4[size_t(m * nl + j)] = dx[size_t(m * nb + j / 8)] * float(int32_t(q[0]) + q[1] + q[2] + q[3]);
                }
        }
    });
    std::vector<XRow> xrows(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m)
        xrows[size_t(m)] = {xq.data() + m * K, dx.data() + m * nb, offs ? xs4.data() + m * nl : nullptr};
    // Cache blocking: a thread unpacks kRows W rows (a few tens of KB: L1/L2), then runs every 4-row
    // tile of x against them, so each x tile is read once per kRows W rows and each W row once.
    constexpr int64_t kRows = 16;
    const size_t row_bytes = dtype_bytes(t, K);
    const int64_t nchunks = (N + kRows - 1) / kRows;
    pool.parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1) {
        std::vector<int8_t> q(size_t(kRows * K));
        std::vector<float> s(size_t(K / 16)), o(size_t(K / 16), 0.0f), s4(size_t(kRows * nl)), o4(offs ? size_t(kRows * nl) : 0);
        WRow rows[kRows];
        float out[4];
        for (int64_t c = c0; c < c1; ++c) {
            const int64_t n0 = c * kRows, nr = std::min(kRows, N - n0);
            for (int64_t j = 0; j < nr; ++j) {
                int8_t* qj = q.data() + j * K;
                unpack_row(t, static_cast<const uint8_t*>(w) + size_t(n0 + j) * row_bytes, K, qj, s.data(), o.data());
                float* sj = s4.data() + j * nl;
                for (int64_t l = 0; l < nl; ++l) sj[l] = s[size_t(l / 4)];
                float* oj = offs ? o4.data() + j * nl : nullptr;
                if (offs)
                    for (int64_t l = 0; l < nl; ++l) oj[l] = o[size_t(l / 4)];
                rows[j] = {qj, sj, oj};
            }
            for (int64_t m0 = 0; m0 < M; m0 += 4) {
                const int mr = int(std::min<int64_t>(4, M - m0));
                for (int64_t j = 0; j < nr; ++j) {
                    if (offs)
                        dot_rows<true>(rows[j], K, xrows.data() + m0, mr, out);
                    else
                        dot_rows<false>(rows[j], K, xrows.data() + m0, mr, out);
                    for (int r = 0; r < mr; ++r) y[(m0 + r) * N + n0 + j] = out[r];
                }
            }
        }
    });
}

}  // namespace wanrt::cpu
