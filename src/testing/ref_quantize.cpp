// A minimal reference quantizer f32 → Q8_0, Q4_0, Q4_K, Q5_K, Q6_K (ggml byte layouts), for the op
// table and `wanrt bench dit --weights_dtype q8_0|q4_k` only. Simple rules, not llama.cpp's
// error-minimising searches (make_qkx2/make_qx): the kernels and their oracle decode whatever
// bytes they get, so only the layout has to be right. To be replaced by the converter's quantizer
// (src/io/gguf_quantize.*) once that is on main.
#include "testing/ref_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace wanrt::testing {

namespace {

void put_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
}
float f16_round(float v) { return f16_to_f32(f32_to_f16(v)); }
int clampi(float v, int lo, int hi) { return std::clamp(int(std::nearbyint(v)), lo, hi); }

void q8_0(const float* x, uint8_t* b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = f16_round(amax / 127.0f), id = d > 0 ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int i = 0; i < 32; ++i) b[2 + i] = uint8_t(int8_t(clampi(x[i] * id, -127, 127)));
}

void q4_0(const float* x, uint8_t* b) {  // ggml's rule: d = max / −8 keeps the extreme value exact
    float amax = 0, mx = 0;
    for (int i = 0; i < 32; ++i)
        if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), mx = x[i];
    const float d = f16_round(mx / -8.0f), id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int j = 0; j < 16; ++j)
        b[2 + j] = uint8_t(clampi(x[j] * id + 8, 0, 15) | clampi(x[j + 16] * id + 8, 0, 15) << 4);
}

// Q4_K / Q5_K: per 32 a scale and a min (x ≈ sc·q − m, q in [0, 2^bits)), both 6-bit against the
// super-block's d and dmin, packed as ggml's get_scale_min_k4 reads them.
void qk_minmax(const float* x, uint8_t* b, int bits) {
    const int qmax = (1 << bits) - 1;
    float sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
        float lo = 0, hi = 0;
        for (int l = 0; l < 32; ++l) lo = std::min(lo, x[32 * j + l]), hi = std::max(hi, x[32 * j + l]);
        sc[j] = (hi - lo) / float(qmax);
        mn[j] = -lo;
    }
    const float d = f16_round(*std::max_element(sc, sc + 8) / 63.0f);
    const float dmin = f16_round(*std::max_element(mn, mn + 8) / 63.0f);
    put_f16(b, d);
    put_f16(b + 2, dmin);
    uint8_t* scales = b + 4;
    std::memset(scales, 0, 12);
    const bool five = bits == 5;
    uint8_t* qh = b + 16;
    uint8_t* qs = b + (five ? 48 : 16);
    if (five) std::memset(qh, 0, 32);
    std::memset(qs, 0, 128);
    for (int j = 0; j < 8; ++j) {
        const int ls = d > 0 ? clampi(sc[j] / d, 0, 63) : 0, lm = dmin > 0 ? clampi(mn[j] / dmin, 0, 63) : 0;
        if (j < 4) {
            scales[j] |= uint8_t(ls);
            scales[j + 4] |= uint8_t(lm);
        } else {
            scales[j + 4] = uint8_t((ls & 0x0f) | (lm & 0x0f) << 4);
            scales[j - 4] |= uint8_t((ls >> 4) << 6);
            scales[j] |= uint8_t((lm >> 4) << 6);
        }
        const float dl = d * float(ls), ml = dmin * float(lm);
        for (int l = 0; l < 32; ++l) {
            const int q = dl > 0 ? clampi((x[32 * j + l] + ml) / dl, 0, qmax) : 0;
            qs[32 * (j / 2) + l] |= uint8_t((q & 0x0f) << (4 * (j % 2)));
            if (five) qh[l] |= uint8_t(((q >> 4) & 1) << j);
        }
    }
}

// Q6_K: a signed 8-bit scale per 16 against d, q − 32 in [−32, 31].
void q6_k(const float* x, uint8_t* b) {
    float sc[16];
    for (int g = 0; g < 16; ++g) {
        float amax = 0, mx = 0;
        for (int i = 0; i < 16; ++i)
            if (std::fabs(x[16 * g + i]) > amax) amax = std::fabs(x[16 * g + i]), mx = x[16 * g + i];
        sc[g] = mx / -32.0f;
    }
    float smax = 0;
    for (float s : sc) smax = std::max(smax, std::fabs(s));
    const float d = f16_round(smax / 127.0f);
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    std::memset(b, 0, 192);
    for (int g = 0; g < 16; ++g) b[192 + g] = uint8_t(int8_t(d > 0 ? clampi(sc[g] / d, -128, 127) : 0));
    put_f16(b + 208, d);
    for (int e = 0; e < 256; ++e) {
        const float dl = d * float(int8_t(b[192 + e / 16]));
        const int q = (dl != 0 ? clampi(x[e] / dl, -32, 31) : 0) + 32;
        const int h = e / 128, r = e % 128;
        ql[64 * h + r % 64] |= uint8_t((q & 0x0f) << (4 * (r / 64)));
        qh[32 * h + r % 32] |= uint8_t((q >> 4) << (2 * (r / 32)));
    }
}

}  // namespace

std::vector<uint8_t> ref_quantize(DType t, const float* x, int64_t n) {
    WANRT_ASSERT(dtype_is_block(t));
    const int64_t be = dtype_info(t).block_elems;
    const size_t bb = dtype_info(t).block_bytes;
    if (n % be != 0) fail("quantize", n, " values are not a whole number of ", dtype_name(t), " blocks (", be, ")");
    std::vector<uint8_t> out(size_t(n / be) * bb);
    for (int64_t i = 0; i < n / be; ++i) {
        const float* xb = x + i * be;
        uint8_t* b = out.data() + size_t(i) * bb;
        switch (t) {
            case DType::Q8_0: q8_0(xb, b); break;
            case DType::Q4_0: q4_0(xb, b); break;
            case DType::Q4_K: qk_minmax(xb, b, 4); break;
            case DType::Q5_K: qk_minmax(xb, b, 5); break;
            case DType::Q6_K: q6_k(xb, b); break;
            default: WANRT_ASSERT(false);
        }
    }
    return out;
}

}  // namespace wanrt::testing
