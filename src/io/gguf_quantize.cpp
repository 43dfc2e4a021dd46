// GGUF quantizers. The legacy types follow gguf-py's numpy code operation by operation in float32
// (its argmax picks the first largest |x|, its divisions are float32 divisions by an integer, its
// Q4_0/Q5_0 rounding goes through float64); the K-quants are ggml's quantize_row_*_ref line by line.
// Contraction of a·b + c into one FMA would change results against both references, so it is switched
// off here as in gguf_quants.cpp (GCC contracts by default when the target has FMA).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "io/gguf_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace wanrt {

uint16_t gguf_f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t fexp = u & 0x7f800000u;
    if (fexp >= 0x47800000u) {  // |f| ≥ 65536, inf or NaN (numpy npy_floatbits_to_halfbits)
        const uint32_t sig = u & 0x007fffffu;
        if (fexp == 0x7f800000u && sig != 0) {
            uint32_t r = 0x7c00u + (sig >> 13);
            if (r == 0x7c00u) ++r;  // keep it a NaN
            return uint16_t(sign | r);
        }
        return uint16_t(sign | 0x7c00u);
    }
    if (fexp <= 0x38000000u) {                          // |f| < 2^-14: an f16 subnormal or zero
        if (fexp < 0x33000000u) return uint16_t(sign);  // below half the smallest subnormal
        const uint32_t e = fexp >> 23;
        uint32_t sig = 0x00800000u + (u & 0x007fffffu);
        // Round to nearest even at bit (126 − e) of the 24-bit significand.
        const uint32_t shift = 126u - e;
        uint32_t half = sig >> shift;
        const uint32_t rem = sig & ((1u << shift) - 1u);
        const uint32_t mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half & 1u))) ++half;
        return uint16_t(sign | half);
    }
    uint32_t h = sign | (((fexp - 0x38000000u) >> 13) & 0x7c00u) | ((u & 0x007fffffu) >> 13);
    const uint32_t rem = u & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is correct (to inf too)
    return uint16_t(h);
}

namespace {

constexpr int QK = 32;
constexpr int QK_K = 256;

inline float h2f(uint16_t h) {
    return gguf_f16_to_f32(h);
}
inline void wr16(uint8_t* p, uint16_t v) {
    std::memcpy(p, &v, 2);
}
inline void wr32(uint8_t* p, uint32_t v) {
    std::memcpy(p, &v, 4);
}

uint16_t bf16_bits(float f) {  // gguf-py BF16.quantize_blocks (= ggml_compute_fp32_to_bf16)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) u = (u & 0xffff0000u) | (64u << 16);  // quiet NaN
    return uint16_t((uint64_t(u) + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

// ---- legacy 32-element blocks (gguf-py) ----

// The element of largest |x|, the first one on ties (np.argmax over abs).
float signed_absmax(const float* x) {
    int im = 0;
    for (int j = 1; j < QK; ++j)
        if (std::fabs(x[j]) > std::fabs(x[im])) im = j;
    return x[im];
}

// Q4_0 / Q5_0: d = max / −levels, q = trunc(f32(f64(x)·f64(1/d) + levels + ½)), clipped.
void quant_sym_q(const float* x, int levels, int qmax, uint8_t* q, uint16_t* d16) {
    const float max = signed_absmax(x);
    const float d = max / float(-levels);
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    for (int j = 0; j < QK; ++j) {
        const float v = float(double(x[j]) * double(id) + (double(levels) + 0.5));
        const float t = std::trunc(v);
        q[j] = uint8_t(std::min<int>(qmax, std::max<int>(0, int(t))));
    }
    *d16 = gguf_f32_to_f16(d);
}

// Q4_1 / Q5_1: d = (max − min) / qmax, q = trunc((x − min)·(1/d) + ½) in float32, clipped.
void quant_asym_q(const float* x, int qmax, uint8_t* q, uint16_t* d16, uint16_t* m16) {
    float max = x[0], min = x[0];
    for (int j = 1; j < QK; ++j) {
        max = std::max(max, x[j]);
        min = std::min(min, x[j]);
    }
    const float d = (max - min) / float(qmax);
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    for (int j = 0; j < QK; ++j) {
        const float t = std::trunc((x[j] - min) * id + 0.5f);
        q[j] = uint8_t(std::min<int>(qmax, std::max<int>(0, int(t))));
    }
    *d16 = gguf_f32_to_f16(d);
    *m16 = gguf_f32_to_f16(min);
}

void q4_0_block(const float* x, uint8_t* b) {  // d, 16 bytes: element j low nibble, j + 16 high
    uint8_t q[QK];
    uint16_t d;
    quant_sym_q(x, 8, 15, q, &d);
    wr16(b, d);
    for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(q[j] | (q[j + 16] << 4));
}

void q4_1_block(const float* x, uint8_t* b) {
    uint8_t q[QK];
    uint16_t d, m;
    quant_asym_q(x, 15, q, &d, &m);
    wr16(b, d);
    wr16(b + 2, m);
    for (int j = 0; j < 16; ++j) b[4 + j] = uint8_t(q[j] | (q[j + 16] << 4));
}

// The fifth bits as a little-endian u32 (bit j = element j), then the nibbles as Q4_*.
void pack5(const uint8_t* q, uint8_t* qh, uint8_t* qs) {
    uint32_t h = 0;
    for (int j = 0; j < QK; ++j) h |= uint32_t((q[j] >> 4) & 1) << j;
    wr32(qh, h);
    for (int j = 0; j < 16; ++j) qs[j] = uint8_t((q[j] & 0x0f) | (q[j + 16] << 4));
}

void q5_0_block(const float* x, uint8_t* b) {
    uint8_t q[QK];
    uint16_t d;
    quant_sym_q(x, 16, 31, q, &d);
    wr16(b, d);
    pack5(q, b + 2, b + 6);
}

void q5_1_block(const float* x, uint8_t* b) {
    uint8_t q[QK];
    uint16_t d, m;
    quant_asym_q(x, 31, q, &d, &m);
    wr16(b, d);
    wr16(b + 2, m);
    pack5(q, b + 4, b + 8);
}

void q8_0_block(const float* x, uint8_t* b) {  // d = amax / 127, q = round half away (x · (1/d))
    float amax = 0;
    for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    wr16(b, gguf_f32_to_f16(d));
    for (int j = 0; j < QK; ++j) b[2 + j] = uint8_t(int8_t(std::round(x[j] * id)));
}

// ---- K-quants: ggml-quants.c, the same statements in the same order ----

#define GROUP_MAX_EPS 1e-15f

inline int nearest_int(float fval) {
    WANRT_ASSERT(std::fabs(fval) <= 4194303.f);
    float val = fval + 12582912.f;
    int i;
    std::memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {  // all zero
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
        }
        return 1 / iscale;
    }
    bool return_early = false;
    if (rmse_type < 0) {
        rmse_type = -rmse_type;
        return_early = true;
    }
    auto weight = [&](int i) {
        return qw               ? qw[i]
               : rmse_type == 1 ? x[i] * x[i]
               : rmse_type == 2 ? 1
               : rmse_type == 3 ? std::fabs(x[i])
                                : std::sqrt(std::fabs(x[i]));
    };
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = std::max(-nmax, std::min(nmax - 1, l));
        L[i] = int8_t(l + nmax);
        float w = weight(i);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = std::max(-nmax, std::min(nmax - 1, l));
            float w = weight(i);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {  // all zero
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    if (do_rmse) {
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = std::max(-nmax, std::min(nmax - 1, l));
            L[i] = int8_t(l);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; ++itry) {
            int n_changed = 0;
            for (int i = 0; i < n; ++i) {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0) {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int new_l = nearest_int(x[i] * sl2 / slx);
                    new_l = std::max(-nmax, std::min(nmax - 1, new_l));
                    if (new_l != L[i]) {
                        slx += w * x[i] * new_l;
                        sl2 += w * new_l * new_l;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = int8_t(new_l);
                            sumlx = slx;
                            suml2 = sl2;
                            ++n_changed;
                        }
                    }
                }
            }
            if (!n_changed) break;
        }
        for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
        return sumlx / suml2;
    }
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = std::max(-nmax, std::min(nmax - 1, l));
        L[i] = int8_t(l + nmax);
    }
    return 1 / iscale;
}

float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min, uint8_t* Laux,
                       float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = uint8_t(std::max(0, std::min(nmax, l)));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        float w = weights[i];
        best_mad += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = std::max(0, std::min(nmax, l));
            Laux[i] = uint8_t(l);
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                float w = weights[i];
                mad += w * diff;
            }
            if (mad < best_mad) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

struct BlockQ2K {
    uint8_t scales[16];
    uint8_t qs[64];
    uint16_t d, dmin;
};
struct BlockQ3K {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint16_t d;
};
struct BlockQ4K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
};
struct BlockQ5K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
struct BlockQ6K {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
};
static_assert(sizeof(BlockQ2K) == 84 && sizeof(BlockQ3K) == 110 && sizeof(BlockQ4K) == 144 && sizeof(BlockQ5K) == 176 &&
                  sizeof(BlockQ6K) == 210,
              "GGUF K-quant block sizes");

void q2_k_block(const float* x, BlockQ2K* y) {
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    const float q4scale = 15.f;
    float max_scale = 0;  // as we are deducting the min, scales are always positive
    float max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
        scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
        float scale = scales[j];
        if (scale > max_scale) max_scale = scale;
        float min = mins[j];
        if (min > max_min) max_min = min;
    }
    if (max_scale > 0) {
        float iscale = q4scale / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) {
            int l = nearest_int(iscale * scales[j]);
            y->scales[j] = uint8_t(l);
        }
        y->d = gguf_f32_to_f16(max_scale / q4scale);
    } else {
        for (int j = 0; j < QK_K / 16; ++j) y->scales[j] = 0;
        y->d = gguf_f32_to_f16(0.f);
    }
    if (max_min > 0) {
        float iscale = q4scale / max_min;
        for (int j = 0; j < QK_K / 16; ++j) {
            int l = nearest_int(iscale * mins[j]);
            y->scales[j] = uint8_t(y->scales[j] | (l << 4));
        }
        y->dmin = gguf_f32_to_f16(max_min / q4scale);
    } else {
        y->dmin = gguf_f32_to_f16(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = h2f(y->d) * (y->scales[j] & 0xF);
        if (!d) continue;
        const float dm = h2f(y->dmin) * (y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int((x[16 * j + ii] + dm) / d);
            l = std::max(0, std::min(3, l));
            L[16 * j + ii] = uint8_t(l);
        }
    }
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            y->qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

void q3_k_block(const float* x, BlockQ3K* y) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0;
    float amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
        float scale = std::fabs(scales[j]);
        if (scale > amax) {
            amax = scale;
            max_scale = scales[j];
        }
    }
    std::memset(y->scales, 0, 12);
    if (max_scale) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) {
            int8_t l = int8_t(nearest_int(iscale * scales[j]));
            l = int8_t(std::max<int>(-32, std::min<int>(31, l)) + 32);
            if (j < 8) {
                y->scales[j] = uint8_t(l & 0xF);
            } else {
                y->scales[j - 8] = uint8_t(y->scales[j - 8] | ((l & 0xF) << 4));
            }
            l = int8_t(l >> 4);
            y->scales[j % 4 + 8] = uint8_t(y->scales[j % 4 + 8] | (l << (2 * (j / 4))));
        }
        y->d = gguf_f32_to_f16(1 / iscale);
    } else {
        y->d = gguf_f32_to_f16(0.f);
    }
    int8_t sc;
    for (int j = 0; j < QK_K / 16; ++j) {
        sc = int8_t(j < 8 ? y->scales[j] & 0xF : y->scales[j - 8] >> 4);
        sc = int8_t((sc | (((y->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        float d = h2f(y->d) * sc;
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            l = std::max(-4, std::min(3, l));
            L[16 * j + ii] = int8_t(l + 4);
        }
    }
    std::memset(y->hmask, 0, QK_K / 8);
    // The high bit of the first 8 quants goes into bit 0, the next 8 into bit 1, etc.
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK_K; ++j) {
        if (L[j] > 3) {
            y->hmask[m] = uint8_t(y->hmask[m] | hm);
            L[j] = int8_t(L[j] - 4);
        }
        if (++m == QK_K / 8) {
            m = 0;
            hm = uint8_t(hm << 1);
        }
    }
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            y->qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q4_K and Q5_K share the scale search and the 6-bit scale packing; nmax 15 / 31.
template <int NMAX>
void qk_scales(const float* x, uint8_t* L, uint8_t* scales12, uint16_t* d16, uint16_t* dmin16) {
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    float max_scale = 0;  // as we are deducting the min, scales are always positive
    float max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        if (NMAX == 15)
            scales[j] =
                make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20, false);
        else
            scales[j] =
                make_qkx2_quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15, false);
        float scale = scales[j];
        if (scale > max_scale) max_scale = scale;
        float min = mins[j];
        if (min > max_min) max_min = min;
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = uint8_t(nearest_int(inv_scale * scales[j]));
        uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
        ls = std::min<uint8_t>(63, ls);
        lm = std::min<uint8_t>(63, lm);
        if (j < 4) {
            scales12[j] = ls;
            scales12[j + 4] = lm;
        } else {
            scales12[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
            scales12[j - 4] = uint8_t(scales12[j - 4] | ((ls >> 4) << 6));
            scales12[j - 0] = uint8_t(scales12[j - 0] | ((lm >> 4) << 6));
        }
    }
    *d16 = gguf_f32_to_f16(max_scale / 63.f);
    *dmin16 = gguf_f32_to_f16(max_min / 63.f);
    uint8_t sc, m;
    for (int j = 0; j < QK_K / 32; ++j) {
        get_scale_min_k4(j, scales12, &sc, &m);
        const float d = h2f(*d16) * sc;
        if (!d) continue;
        const float dm = h2f(*dmin16) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            l = std::max(0, std::min(NMAX, l));
            L[32 * j + ii] = uint8_t(l);
        }
    }
}

void q4_k_block(const float* x, BlockQ4K* y) {
    uint8_t L[QK_K];
    std::memset(y->scales, 0, 12);  // ggml's block starts zeroed only where it writes; every byte is set below
    qk_scales<15>(x, L, y->scales, &y->d, &y->dmin);
    uint8_t* q = y->qs;
    for (int j = 0; j < QK_K; j += 64) {
        for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

void q5_k_block(const float* x, BlockQ5K* y) {
    uint8_t L[QK_K];
    std::memset(y->scales, 0, 12);
    qk_scales<31>(x, L, y->scales, &y->d, &y->dmin);
    uint8_t* qh = y->qh;
    uint8_t* ql = y->qs;
    std::memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] = uint8_t(qh[j] | m1);
            }
            int l2 = L[n + j + 32];
            if (l2 > 15) {
                l2 -= 16;
                qh[j] = uint8_t(qh[j] | m2);
            }
            ql[j] = uint8_t(l1 | (l2 << 4));
        }
        m1 = uint8_t(m1 << 2);
        m2 = uint8_t(m2 << 2);
        ql += 32;
    }
}

void q6_k_block(const float* x, BlockQ6K* y) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
        const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, nullptr);
        scales[ib] = scale;
        const float abs_scale = std::fabs(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
        std::memset(y, 0, sizeof(BlockQ6K));
        y->d = gguf_f32_to_f16(0.f);
        return;
    }
    float iscale = -128.f / max_scale;
    y->d = gguf_f32_to_f16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) y->scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < QK_K / 16; ++j) {
        float d = h2f(y->d) * y->scales[j];
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            l = std::max(-32, std::min(31, l));
            L[16 * j + ii] = int8_t(l + 32);
        }
    }
    uint8_t* ql = y->ql;
    uint8_t* qh = y->qh;
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l + 0] & 0xF;
            const uint8_t q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF;
            const uint8_t q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = uint8_t(q1 | (q3 << 4));
            ql[l + 32] = uint8_t(q2 | (q4 << 4));
            qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                            ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

template <class Block, void (*Fn)(const float*, Block*)>
void k_blocks(const float* x, int64_t nb, uint8_t* dst) {
    for (int64_t i = 0; i < nb; ++i) {
        Block b{};
        Fn(x + i * QK_K, &b);
        std::memcpy(dst + i * int64_t(sizeof(Block)), &b, sizeof(Block));
    }
}

template <void (*Fn)(const float*, uint8_t*)>
void legacy_blocks(const float* x, int64_t nb, size_t bytes, uint8_t* dst) {
    for (int64_t i = 0; i < nb; ++i) Fn(x + i * QK, dst + i * int64_t(bytes));
}

}  // namespace

bool gguf_can_quantize(GgmlType t) {
    switch (t) {
        case GgmlType::F32:
        case GgmlType::F16:
        case GgmlType::BF16:
        case GgmlType::Q8_0:
        case GgmlType::Q4_0:
        case GgmlType::Q4_1:
        case GgmlType::Q5_0:
        case GgmlType::Q5_1:
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
        case GgmlType::Q6_K:
            return true;
        default:
            return false;
    }
}

size_t gguf_type_bytes(GgmlType type, int64_t n) {
    const GgmlTypeInfo* ti = ggml_type_info(uint32_t(type));
    WANRT_ASSERT(ti && n % ti->block_elems == 0);
    return size_t(n / ti->block_elems) * ti->block_bytes;
}

void gguf_quantize(GgmlType type, const float* x, int64_t n, void* dst_) {
    WANRT_ASSERT(gguf_can_quantize(type));
    const GgmlTypeInfo* ti = ggml_type_info(uint32_t(type));
    WANRT_ASSERT(n % ti->block_elems == 0);
    const int64_t nb = n / ti->block_elems;
    uint8_t* dst = static_cast<uint8_t*>(dst_);
    switch (type) {
        case GgmlType::F32:
            std::memcpy(dst, x, size_t(n) * 4);
            break;
        case GgmlType::F16:
            for (int64_t i = 0; i < n; ++i) wr16(dst + 2 * i, gguf_f32_to_f16(x[i]));
            break;
        case GgmlType::BF16:
            for (int64_t i = 0; i < n; ++i) wr16(dst + 2 * i, bf16_bits(x[i]));
            break;
        case GgmlType::Q8_0:
            legacy_blocks<q8_0_block>(x, nb, ti->block_bytes, dst);
            break;
        case GgmlType::Q4_0:
            legacy_blocks<q4_0_block>(x, nb, ti->block_bytes, dst);
            break;
        case GgmlType::Q4_1:
            legacy_blocks<q4_1_block>(x, nb, ti->block_bytes, dst);
            break;
        case GgmlType::Q5_0:
            legacy_blocks<q5_0_block>(x, nb, ti->block_bytes, dst);
            break;
        case GgmlType::Q5_1:
            legacy_blocks<q5_1_block>(x, nb, ti->block_bytes, dst);
            break;
        case GgmlType::Q2_K:
            k_blocks<BlockQ2K, q2_k_block>(x, nb, dst);
            break;
        case GgmlType::Q3_K:
            k_blocks<BlockQ3K, q3_k_block>(x, nb, dst);
            break;
        case GgmlType::Q4_K:
            k_blocks<BlockQ4K, q4_k_block>(x, nb, dst);
            break;
        case GgmlType::Q5_K:
            k_blocks<BlockQ5K, q5_k_block>(x, nb, dst);
            break;
        case GgmlType::Q6_K:
            k_blocks<BlockQ6K, q6_k_block>(x, nb, dst);
            break;
        default:
            WANRT_ASSERT(false);
    }
}

}  // namespace wanrt
