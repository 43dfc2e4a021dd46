#include "core/dtype.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/fp8.h"
#include "io/gguf_quants.h"

namespace wanrt {

static const DTypeInfo kInfo[] = {
    {"f32", "F32", 4, 1, true},  {"f16", "F16", 2, 1, true}, {"bf16", "BF16", 2, 1, true},
    {"f64", "F64", 8, 1, true},  {"i32", "I32", 4, 1, false}, {"i64", "I64", 8, 1, false},
    {"u8", "U8", 1, 1, false},   {"f8_e4m3", "F8_E4M3", 1, 1, true}, {"f8_e5m2", "F8_E5M2", 1, 1, true},
    // ggml blocks (st_name: gguf-py's type name; no safetensors file holds them)
    {"q8_0", "Q8_0", 34, 32, true},   // f16 d, 32 × i8
    {"q4_0", "Q4_0", 18, 32, true},   // f16 d, 16 bytes of nibbles (q − 8)
    {"q4_k", "Q4_K", 144, 256, true}, // f16 d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
    {"q5_k", "Q5_K", 176, 256, true}, // as Q4_K + 32 bytes of high bits
    {"q6_k", "Q6_K", 210, 256, true}, // 128 low nibbles, 64 high 2-bit, 16 × i8 scales, f16 d
};
static_assert(sizeof(kInfo) / sizeof(kInfo[0]) == size_t(DType::COUNT), "one entry per DType");

const DTypeInfo& dtype_info(DType t) {
    WANRT_ASSERT(t < DType::COUNT);
    return kInfo[size_t(t)];
}

size_t dtype_bytes(DType t, int64_t n) {
    const DTypeInfo& i = dtype_info(t);
    WANRT_ASSERT(n % i.block_elems == 0);
    return size_t(n / i.block_elems) * i.block_bytes;
}

static const std::pair<DType, GgmlType> kGgml[] = {{DType::Q8_0, GgmlType::Q8_0},
                                                   {DType::Q4_0, GgmlType::Q4_0},
                                                   {DType::Q4_K, GgmlType::Q4_K},
                                                   {DType::Q5_K, GgmlType::Q5_K},
                                                   {DType::Q6_K, GgmlType::Q6_K}};

uint32_t dtype_ggml_id(DType t) {
    for (auto& [d, g] : kGgml)
        if (d == t) return uint32_t(g);
    WANRT_ASSERT(false);
}

bool dtype_from_ggml_id(uint32_t id, DType* out) {
    for (auto& [d, g] : kGgml)
        if (uint32_t(g) == id) {
            *out = d;
            return true;
        }
    return false;
}

bool dtype_from_safetensors(const std::string& s, DType* out) {
    for (size_t i = 0; i < size_t(DType::COUNT); ++i) {
        if (dtype_is_block(DType(i))) continue;  // not a safetensors dtype
        if (s == kInfo[i].st_name) {
            *out = DType(i);
            return true;
        }
    }
    return false;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  // subnormal: renormalise
            int e = -1;
            do {
                man <<= 1;
                ++e;
            } while (!(man & 0x400));
            u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | man << 13;
    } else {
        u = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return uint16_t(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return uint16_t(sign);
        man |= 0x800000;
        int shift = 14 - exp;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) ++half;
        return uint16_t(sign | half);
    }
    uint32_t half = sign | uint32_t(exp) << 10 | man >> 13;
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // may carry into the exponent: correct
    return uint16_t(half);
}

namespace {
// Element i of a buffer that may not be aligned to its type: tensors inside a safetensors or .pth
// file start at any byte offset of the mapping, so a plain T* read is undefined behaviour (and
// faults on strict-alignment CPUs). memcpy of a fixed size compiles to the same single load.
template <class T>
T load_at(const void* p, int64_t i) {
    T v;
    std::memcpy(&v, static_cast<const unsigned char*>(p) + i * int64_t(sizeof(T)), sizeof(T));
    return v;
}
template <class T>
void store_at(void* p, int64_t i, T v) {
    std::memcpy(static_cast<unsigned char*>(p) + i * int64_t(sizeof(T)), &v, sizeof(T));
}
double load(const void* p, DType t, int64_t i) {
    switch (t) {
        case DType::F32: return double(load_at<float>(p, i));
        case DType::F64: return load_at<double>(p, i);
        case DType::F16: return f16_to_f32(load_at<uint16_t>(p, i));
        case DType::BF16: return bf16_to_f32(load_at<uint16_t>(p, i));
        case DType::I32: return double(load_at<int32_t>(p, i));
        case DType::I64: return double(load_at<int64_t>(p, i));
        case DType::U8: return double(load_at<uint8_t>(p, i));
        case DType::F8E4M3: return fp8_e4m3_to_f32(load_at<uint8_t>(p, i));
        case DType::F8E5M2: return fp8_e5m2_to_f32(load_at<uint8_t>(p, i));
        default: WANRT_ASSERT(false);
    }
}
void store(void* p, DType t, int64_t i, double v) {
    switch (t) {
        case DType::F32: store_at(p, i, float(v)); break;
        case DType::F64: store_at(p, i, v); break;
        case DType::F16: store_at(p, i, f32_to_f16(float(v))); break;
        case DType::BF16: store_at(p, i, f32_to_bf16(float(v))); break;
        case DType::I32: store_at(p, i, int32_t(v)); break;
        case DType::I64: store_at(p, i, int64_t(v)); break;
        case DType::U8: store_at(p, i, uint8_t(v)); break;
        // Through f32 first, as torch's .to(float8) does from a float32 tensor.
        case DType::F8E4M3: store_at(p, i, f32_to_fp8_e4m3(float(v))); break;
        case DType::F8E5M2: store_at(p, i, f32_to_fp8_e5m2(float(v))); break;
        default: WANRT_ASSERT(false);
    }
}
}  // namespace

void convert_elements(const void* src, DType st, void* dst, DType dt, int64_t n) {
    WANRT_ASSERT(!dtype_is_block(dt) || st == dt);  // nothing encodes to a block type here
    // A zero-element tensor may have no storage at all (src null): memcpy of 0 bytes from null is
    // still undefined behaviour (fuzz/crashes/gguf-zero-element-read.gguf).
    if (n == 0) return;
    if (dtype_is_block(st) && st != dt) {
        // Decoded exactly (gguf-py's f32 arithmetic), in chunks so the f32 copy stays small.
        const int64_t be = dtype_info(st).block_elems, bb = int64_t(dtype_info(st).block_bytes);
        WANRT_ASSERT(n % be == 0);
        std::vector<float> tmp;
        const int64_t chunk = 64;  // blocks
        for (int64_t b0 = 0; b0 < n / be; b0 += chunk) {
            const int64_t nb = std::min(chunk, n / be - b0);
            tmp.resize(size_t(nb * be));
            gguf_dequantize(GgmlType(dtype_ggml_id(st)), static_cast<const uint8_t*>(src) + b0 * bb, nb, tmp.data());
            convert_elements(tmp.data(), DType::F32, static_cast<uint8_t*>(dst) + dtype_bytes(dt, b0 * be), dt, nb * be);
        }
        return;
    }
    if (st == dt) {
        std::memcpy(dst, src, dtype_bytes(st, n));
        return;
    }
    // Fast paths for the conversions weights and activations go through. Loads and stores go
    // through load_at/store_at: src is often a file mapping at an odd offset (see load_at).
    if (dt == DType::F32) {
        if (st == DType::BF16) {
            for (int64_t i = 0; i < n; ++i) store_at(dst, i, bf16_to_f32(load_at<uint16_t>(src, i)));
            return;
        }
        if (st == DType::F16) {
            for (int64_t i = 0; i < n; ++i) store_at(dst, i, f16_to_f32(load_at<uint16_t>(src, i)));
            return;
        }
        if (st == DType::F64) {
            for (int64_t i = 0; i < n; ++i) store_at(dst, i, float(load_at<double>(src, i)));
            return;
        }
    }
    if (st == DType::I64 && dt == DType::I32) {
        for (int64_t i = 0; i < n; ++i) store_at(dst, i, int32_t(load_at<int64_t>(src, i)));
        return;
    }
    for (int64_t i = 0; i < n; ++i) store(dst, dt, i, load(src, st, i));
}

}  // namespace wanrt
