// Block decoders for the GGML types. Each one follows gguf-py's numpy dequantizer operation by
// operation in float32 (the fixtures' reference), and ggml's dequantize_row_* for the layout.
// Contraction of a·b − c into one FMA would change the last bit against the reference, so it is
// switched off for this file (GCC's -ffp-contract=fast is the default with -march=native).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "io/gguf_quants.h"

#include <cstring>

#include "core/error.h"

namespace wanrt {

namespace {

constexpr int QK = 32;    // elements of a legacy block (Q4_0 … Q8_0, IQ4_NL)
constexpr int QK_K = 256; // elements of a super-block (K-quants, IQ*, TQ*)

inline uint16_t rd16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);  // little-endian hosts only, like the safetensors reader
    return v;
}
inline uint32_t rd32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline float h2f(const uint8_t* p) { return gguf_f16_to_f32(rd16(p)); }
// Byte i of a packed grid row (grids store one value per byte, lowest byte first).
inline int grid_byte(uint64_t row, int i) { return int((row >> (8 * i)) & 0xff); }

// ---- legacy 32-element blocks ----

void deq_q4_0(const uint8_t* b, float* y) {  // d f16, 16 bytes: low nibbles = 0..15, high = 16..31
    float d = h2f(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(int(qs[j] & 0x0f) - 8);
        y[j + 16] = d * float(int(qs[j] >> 4) - 8);
    }
}

void deq_q4_1(const uint8_t* b, float* y) {  // d, m f16, 16 bytes; (d·q) + m
    float d = h2f(b), m = h2f(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(qs[j] & 0x0f) + m;
        y[j + 16] = d * float(qs[j] >> 4) + m;
    }
}

void deq_q5_0(const uint8_t* b, float* y) {  // d, u32 of 5th bits, 16 bytes of nibbles
    float d = h2f(b);
    uint32_t qh = rd32(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        int lo = (qs[j] & 0x0f) | int((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
        y[j] = d * float(lo - 16);
        y[j + 16] = d * float(hi - 16);
    }
}

void deq_q5_1(const uint8_t* b, float* y) {
    float d = h2f(b), m = h2f(b + 2);
    uint32_t qh = rd32(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        int lo = (qs[j] & 0x0f) | int((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
        y[j] = d * float(lo) + m;
        y[j + 16] = d * float(hi) + m;
    }
}

void deq_q8_0(const uint8_t* b, float* y) {
    float d = h2f(b);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < QK; ++j) y[j] = float(qs[j]) * d;
}

void deq_iq4_nl(const uint8_t* b, float* y) {
    float d = h2f(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * float(gguf_tables::kvalues_iq4nl[qs[j] & 0x0f]);
        y[j + 16] = d * float(gguf_tables::kvalues_iq4nl[qs[j] >> 4]);
    }
}

// ---- K-quants (256-element super-blocks) ----

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. Element e = 128·h + 32·k + l
// holds bits 2k of qs[32h + l]; sub-block e/16. (d·sc)·q − (dmin·m).
void deq_q2_k(const uint8_t* b, float* y) {
    const uint8_t* sc = b;
    const uint8_t* qs = b + 16;
    float d = h2f(b + 80), dmin = h2f(b + 82);
    for (int e = 0; e < QK_K; ++e) {
        int h = e / 128, k = (e / 32) % 4, l = e % 32;
        float q = float((qs[32 * h + l] >> (2 * k)) & 3);
        float dl = d * float(sc[e / 16] & 0x0f);
        float ml = dmin * float(sc[e / 16] >> 4);
        y[e] = dl * q - ml;
    }
}

// Q3_K: hmask[32], qs[64], scales[12] (16 6-bit signed scales), d. The high bit is stored inverted:
// q = low2 − 4 when the hmask bit is 0.
void deq_q3_k(const uint8_t* b, float* y) {
    const uint8_t* hm = b;
    const uint8_t* qs = b + 32;
    const uint8_t* sc = b + 96;
    float d = h2f(b + 108);
    float dl[16];
    for (int i = 0; i < 16; ++i) {
        int lo = i < 8 ? (sc[i] & 0x0f) : (sc[i - 8] >> 4);
        int hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        dl[i] = d * float(int8_t(uint8_t(lo | hi << 4)) - 32);
    }
    for (int e = 0; e < QK_K; ++e) {
        int h = e / 128, k = (e / 32) % 4, l = e % 32;
        int low = (qs[32 * h + l] >> (2 * k)) & 3;
        int high = ((hm[l] >> (e / 32)) & 1) ^ 1;
        y[e] = dl[e / 16] * float(low - (high << 2));
    }
}

// The 12 packed bytes of 8 6-bit scales and 8 6-bit mins (ggml get_scale_min_k4).
void scale_min_k4(const uint8_t* s, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q4_K: d, dmin, scales[12], qs[128]; sub-block j (32 elements) = nibble j%2 of qs[32·(j/2) + l].
void deq_q4_k(const uint8_t* b, float* y) {
    float d = h2f(b), dmin = h2f(b + 2);
    const uint8_t* sc = b + 4;
    const uint8_t* qs = b + 16;
    for (int j = 0; j < 8; ++j) {
        int s, m;
        scale_min_k4(sc, j, &s, &m);
        float dl = d * float(s), ml = dmin * float(m);
        for (int l = 0; l < 32; ++l) {
            float q = float((qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0f);
            y[32 * j + l] = dl * q - ml;
        }
    }
}

// Q5_K: as Q4_K plus qh[32]: bit j of qh[l] is the 5th bit of element l of sub-block j.
void deq_q5_k(const uint8_t* b, float* y) {
    float d = h2f(b), dmin = h2f(b + 2);
    const uint8_t* sc = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int j = 0; j < 8; ++j) {
        int s, m;
        scale_min_k4(sc, j, &s, &m);
        float dl = d * float(s), ml = dmin * float(m);
        for (int l = 0; l < 32; ++l) {
            int q = ((qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0f) | ((qh[l] >> j) & 1) << 4;
            y[32 * j + l] = dl * float(q) - ml;
        }
    }
}

// Q6_K: ql[128], qh[64], scales[16] int8, d. Element e = 128·h + r: low 4 bits = nibble r/64 of
// ql[64h + r%64], high 2 bits = bits 2·(r/32) of qh[32h + r%32]; q − 32, scale e/16.
void deq_q6_k(const uint8_t* b, float* y) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    float d = h2f(b + 208);
    for (int e = 0; e < QK_K; ++e) {
        int h = e / 128, r = e % 128;
        int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
        int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        float dl = d * float(sc[e / 16]);
        y[e] = dl * float((lo | hi << 4) - 32);
    }
}

// ---- ternary ----

// TQ1_0: qs[48], qh[4], d. Each byte packs 5 (qh: 4) base-3 digits as a fixed-point fraction: digit n
// is ((byte·3^n mod 256)·3) >> 8. Elements: qs[0..32) × 5 digits, qs[32..48) × 5, qh × 4.
void deq_tq1_0(const uint8_t* b, float* y) {
    static constexpr uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t* qs = b;
    const uint8_t* qh = b + 48;
    float d = h2f(b + 52);
    auto digit = [](uint8_t byte, uint8_t p) { return int((uint16_t(uint8_t(byte * p)) * 3) >> 8) - 1; };
    for (int n = 0; n < 5; ++n)
        for (int l = 0; l < 32; ++l) y[32 * n + l] = d * float(digit(qs[l], pow3[n]));
    for (int n = 0; n < 5; ++n)
        for (int l = 0; l < 16; ++l) y[160 + 16 * n + l] = d * float(digit(qs[32 + l], pow3[n]));
    for (int n = 0; n < 4; ++n)
        for (int l = 0; l < 4; ++l) y[240 + 4 * n + l] = d * float(digit(qh[l], pow3[n]));
}

// TQ2_0: qs[64], d; element 128·h + 32·k + l = bits 2k of qs[32h + l], minus 1.
void deq_tq2_0(const uint8_t* b, float* y) {
    float d = h2f(b + 64);
    for (int e = 0; e < QK_K; ++e) {
        int h = e / 128, k = (e / 32) % 4, l = e % 32;
        y[e] = d * float(int((b[32 * h + l] >> (2 * k)) & 3) - 1);
    }
}

// ---- IQ types: grid rows of 8 (or 4) magnitudes with sign patterns ----

// Sign of bit i of a ksigns pattern: ±1 in float (the reference multiplies by it).
inline float sign_of(uint8_t pattern, int i) { return (pattern >> i) & 1 ? -1.0f : 1.0f; }

// IQ2_XXS: d, then per 32 elements two u32: 4 grid indices (bytes), and 4×7 sign bits + 4-bit scale.
void deq_iq2_xxs(const uint8_t* b, float* y) {
    float d = h2f(b);
    for (int ib = 0; ib < 8; ++ib) {
        const uint8_t* aux8 = b + 2 + 8 * ib;
        uint32_t aux1 = rd32(aux8 + 4);
        float db = d * (0.5f + float(aux1 >> 28)) * 0.25f;
        for (int k = 0; k < 4; ++k) {
            uint64_t g = gguf_tables::iq2xxs_grid[aux8[k]];
            uint8_t s = gguf_tables::ksigns_iq2xs[(aux1 >> (7 * k)) & 127];
            for (int i = 0; i < 8; ++i) y[32 * ib + 8 * k + i] = db * float(grid_byte(g, i)) * sign_of(s, i);
        }
    }
}

// IQ2_XS: d, 32 u16 (9-bit grid index, 7-bit sign index), 8 bytes of 4-bit scales (one per 16).
void deq_iq2_xs(const uint8_t* b, float* y) {
    float d = h2f(b);
    const uint8_t* qs = b + 2;
    const uint8_t* sc = b + 66;
    for (int j = 0; j < 32; ++j) {
        uint16_t q = rd16(qs + 2 * j);
        int s = (sc[j / 4] >> (4 * ((j / 2) % 2))) & 0x0f;
        float db = d * (0.5f + float(s)) * 0.25f;
        uint64_t g = gguf_tables::iq2xs_grid[q & 511];
        uint8_t sg = gguf_tables::ksigns_iq2xs[q >> 9];
        for (int i = 0; i < 8; ++i) y[8 * j + i] = db * float(grid_byte(g, i)) * sign_of(sg, i);
    }
}

// IQ2_S: d, qs[32] (low 8 index bits), signs[32] (one explicit byte per 8), qh[8] (2 high index
// bits each), scales[8] (4 bits per 16 elements).
void deq_iq2_s(const uint8_t* b, float* y) {
    float d = h2f(b);
    const uint8_t* qs = b + 2;
    const uint8_t* signs = b + 34;
    const uint8_t* qh = b + 66;
    const uint8_t* sc = b + 74;
    for (int j = 0; j < 32; ++j) {
        int s = (sc[j / 4] >> (4 * ((j / 2) % 2))) & 0x0f;
        float db = d * (0.5f + float(s)) * 0.25f;
        int idx = qs[j] | ((qh[j / 4] >> (2 * (j % 4))) & 3) << 8;
        uint64_t g = gguf_tables::iq2s_grid[idx];
        for (int i = 0; i < 8; ++i) y[8 * j + i] = db * float(grid_byte(g, i)) * sign_of(signs[j], i);
    }
}

// IQ3_XXS: d, qs[64] (grid indices of 4 values), 8 u32 (4×7 sign bits + 4-bit scale per 32).
void deq_iq3_xxs(const uint8_t* b, float* y) {
    float d = h2f(b);
    const uint8_t* qs = b + 2;
    const uint8_t* sc = b + 66;
    for (int ib = 0; ib < 8; ++ib) {
        uint32_t aux = rd32(sc + 4 * ib);
        float db = d * (0.5f + float(aux >> 28)) * 0.5f;
        for (int m = 0; m < 8; ++m) {
            uint32_t g = gguf_tables::iq3xxs_grid[qs[8 * ib + m]];
            uint8_t s = gguf_tables::ksigns_iq2xs[(aux >> (7 * (m / 2))) & 127];
            for (int c = 0; c < 4; ++c)
                y[32 * ib + 4 * m + c] = db * float(grid_byte(g, c)) * sign_of(s, 4 * (m % 2) + c);
        }
    }
}

// IQ3_S: d, qs[64], qh[8] (9th index bit), signs[32], scales[4] (4 bits per 32; d·(1 + 2·s)).
void deq_iq3_s(const uint8_t* b, float* y) {
    float d = h2f(b);
    const uint8_t* qs = b + 2;
    const uint8_t* qh = b + 66;
    const uint8_t* signs = b + 74;
    const uint8_t* sc = b + 106;
    for (int j = 0; j < 64; ++j) {  // grid entry j: elements 4j .. 4j+3
        int s = (sc[j / 16] >> (4 * ((j / 8) % 2))) & 0x0f;
        float db = d * float(1 + 2 * s);
        int idx = qs[j] | ((qh[j / 8] >> (j % 8)) & 1) << 8;
        uint32_t g = gguf_tables::iq3s_grid[idx];
        for (int c = 0; c < 4; ++c)
            y[4 * j + c] = db * float(grid_byte(g, c)) * sign_of(signs[j / 2], 4 * (j % 2) + c);
    }
}

constexpr float kIq1Delta = 0.125f;

inline float iq1_value(uint64_t g, int i) { return float(int8_t(uint8_t(grid_byte(g, i)))); }

// IQ1_S: d, qs[32] (low 8 index bits), 8 u16 qh: 4×3 high index bits, 3-bit scale, delta sign.
void deq_iq1_s(const uint8_t* b, float* y) {
    float d = h2f(b);
    const uint8_t* qs = b + 2;
    const uint8_t* qhp = b + 34;
    for (int ib = 0; ib < 8; ++ib) {
        uint16_t qh = rd16(qhp + 2 * ib);
        float dl = d * float(2 * ((qh >> 12) & 7) + 1);
        float delta = qh & 0x8000 ? -kIq1Delta : kIq1Delta;
        for (int k = 0; k < 4; ++k) {
            uint64_t g = gguf_tables::iq1s_grid[qs[4 * ib + k] | ((qh >> (3 * k)) & 7) << 8];
            for (int i = 0; i < 8; ++i) y[32 * ib + 8 * k + i] = dl * (iq1_value(g, i) + delta);
        }
    }
}

// IQ1_M: qs[32], qh[16] (per nibble: 3 high index bits + delta sign), 4 u16 scale words: 4×3-bit
// scales each (one per 16 elements), and the block's f16 d split over their top nibbles.
void deq_iq1_m(const uint8_t* b, float* y) {
    const uint8_t* qs = b;
    const uint8_t* qh = b + 32;
    uint16_t sw[4];
    for (int i = 0; i < 4; ++i) sw[i] = rd16(b + 48 + 2 * i);
    uint16_t dbits = uint16_t((sw[0] >> 12) | ((sw[1] >> 8) & 0x00f0) | ((sw[2] >> 4) & 0x0f00) | (sw[3] & 0xf000));
    float d = gguf_f16_to_f32(dbits);
    for (int k = 0; k < 32; ++k) {  // grid entry k: elements 8k .. 8k+7
        int m = k / 2;                // scale index (16 elements)
        float dl = d * float(2 * ((sw[m / 4] >> (3 * (m % 4))) & 7) + 1);
        int nib = (qh[k / 2] >> (4 * (k % 2))) & 0x0f;
        float delta = nib & 0x08 ? -kIq1Delta : kIq1Delta;
        uint64_t g = gguf_tables::iq1s_grid[qs[k] | (nib & 7) << 8];
        for (int i = 0; i < 8; ++i) y[8 * k + i] = dl * (iq1_value(g, i) + delta);
    }
}

// IQ4_XS: d, scales_h u16 (2 bits per 32), scales_l[4] (4 bits per 32), qs[128]: sub-block ib uses
// qs[16·ib ..], low nibbles then high nibbles; scale − 32.
void deq_iq4_xs(const uint8_t* b, float* y) {
    float d = h2f(b);
    uint16_t sh = rd16(b + 2);
    const uint8_t* sl = b + 4;
    const uint8_t* qs = b + 8;
    for (int ib = 0; ib < 8; ++ib) {
        int lo = (sl[ib / 2] >> (4 * (ib % 2))) & 0x0f;
        int hi = (sh >> (2 * ib)) & 3;
        float dl = d * float((lo | hi << 4) - 32);
        for (int j = 0; j < 16; ++j) {
            y[32 * ib + j] = dl * float(gguf_tables::kvalues_iq4nl[qs[16 * ib + j] & 0x0f]);
            y[32 * ib + j + 16] = dl * float(gguf_tables::kvalues_iq4nl[qs[16 * ib + j] >> 4]);
        }
    }
}

using BlockFn = void (*)(const uint8_t*, float*);

struct Entry {
    uint32_t id;
    GgmlTypeInfo info;
    BlockFn fn;  // nullptr for F32/F16/BF16 (handled inline) and for types we only size
};

// Block sizes are ggml's (gguf-py GGML_QUANT_SIZES); the byte layouts are in the decoders above.
const Entry kTypes[] = {
    {0, {"F32", 1, 4, true}, nullptr},
    {1, {"F16", 1, 2, true}, nullptr},
    {2, {"Q4_0", QK, 18, true}, deq_q4_0},
    {3, {"Q4_1", QK, 20, true}, deq_q4_1},
    {6, {"Q5_0", QK, 22, true}, deq_q5_0},
    {7, {"Q5_1", QK, 24, true}, deq_q5_1},
    {8, {"Q8_0", QK, 34, true}, deq_q8_0},
    {9, {"Q8_1", QK, 36, false}, nullptr},
    {10, {"Q2_K", QK_K, 84, true}, deq_q2_k},
    {11, {"Q3_K", QK_K, 110, true}, deq_q3_k},
    {12, {"Q4_K", QK_K, 144, true}, deq_q4_k},
    {13, {"Q5_K", QK_K, 176, true}, deq_q5_k},
    {14, {"Q6_K", QK_K, 210, true}, deq_q6_k},
    {15, {"Q8_K", QK_K, 292, false}, nullptr},
    {16, {"IQ2_XXS", QK_K, 66, true}, deq_iq2_xxs},
    {17, {"IQ2_XS", QK_K, 74, true}, deq_iq2_xs},
    {18, {"IQ3_XXS", QK_K, 98, true}, deq_iq3_xxs},
    {19, {"IQ1_S", QK_K, 50, true}, deq_iq1_s},
    {20, {"IQ4_NL", QK, 18, true}, deq_iq4_nl},
    {21, {"IQ3_S", QK_K, 110, true}, deq_iq3_s},
    {22, {"IQ2_S", QK_K, 82, true}, deq_iq2_s},
    {23, {"IQ4_XS", QK_K, 136, true}, deq_iq4_xs},
    {24, {"I8", 1, 1, false}, nullptr},
    {25, {"I16", 1, 2, false}, nullptr},
    {26, {"I32", 1, 4, false}, nullptr},
    {27, {"I64", 1, 8, false}, nullptr},
    {28, {"F64", 1, 8, false}, nullptr},
    {29, {"IQ1_M", QK_K, 56, true}, deq_iq1_m},
    {30, {"BF16", 1, 2, true}, nullptr},
    {34, {"TQ1_0", QK_K, 54, true}, deq_tq1_0},
    {35, {"TQ2_0", QK_K, 66, true}, deq_tq2_0},
};

const Entry* find_entry(uint32_t id) {
    for (const Entry& e : kTypes)
        if (e.id == id) return &e;
    return nullptr;
}

}  // namespace

float gguf_f16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);  // inf / NaN (payload kept)
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;  // ±0
    } else {
        // Subnormal: man · 2^-24, normalised (exact: 10 significant bits fit a float).
        int e = -1;
        do {
            man <<= 1;
            ++e;
        } while (!(man & 0x400));
        bits = sign | uint32_t(112 - e) << 23 | ((man & 0x3ff) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

const GgmlTypeInfo* ggml_type_info(uint32_t type_id) {
    const Entry* e = find_entry(type_id);
    return e ? &e->info : nullptr;
}

void gguf_dequantize(GgmlType type, const void* src, int64_t n_blocks, float* dst) {
    const Entry* e = find_entry(uint32_t(type));
    WANRT_ASSERT(e && e->info.dequantizable);
    // A tensor with a zero dimension has no bytes and its output vector no storage: memcpy of null
    // pointers is undefined even for 0 bytes (found by fuzz_gguf, fuzz/crashes/).
    if (n_blocks == 0) return;
    const uint8_t* p = static_cast<const uint8_t*>(src);
    switch (type) {
        case GgmlType::F32:
            std::memcpy(dst, p, size_t(n_blocks) * 4);
            return;
        case GgmlType::F16:
            for (int64_t i = 0; i < n_blocks; ++i) dst[i] = gguf_f16_to_f32(rd16(p + 2 * i));
            return;
        case GgmlType::BF16:
            for (int64_t i = 0; i < n_blocks; ++i) {
                uint32_t u = uint32_t(rd16(p + 2 * i)) << 16;
                std::memcpy(dst + i, &u, 4);
            }
            return;
        default:
            break;
    }
    for (int64_t i = 0; i < n_blocks; ++i)
        e->fn(p + size_t(i) * e->info.block_bytes, dst + i * e->info.block_elems);
}

}  // namespace wanrt
