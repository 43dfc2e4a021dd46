#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace wanrt {

static const DTypeInfo kInfo[] = {
    {"f32", "F32", 4, 1, true},  {"f16", "F16", 2, 1, true}, {"bf16", "BF16", 2, 1, true},
    {"f64", "F64", 8, 1, true},  {"i32", "I32", 4, 1, false}, {"i64", "I64", 8, 1, false},
    {"u8", "U8", 1, 1, false},
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

bool dtype_from_safetensors(const std::string& s, DType* out) {
    for (size_t i = 0; i < size_t(DType::COUNT); ++i) {
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
template <class T>
double load_as_double(const void* p, int64_t i) {
    return double(static_cast<const T*>(p)[i]);
}
double load(const void* p, DType t, int64_t i) {
    switch (t) {
        case DType::F32: return load_as_double<float>(p, i);
        case DType::F64: return load_as_double<double>(p, i);
        case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case DType::I32: return load_as_double<int32_t>(p, i);
        case DType::I64: return double(static_cast<const int64_t*>(p)[i]);
        case DType::U8: return load_as_double<uint8_t>(p, i);
        default: WANRT_ASSERT(false);
    }
}
void store(void* p, DType t, int64_t i, double v) {
    switch (t) {
        case DType::F32: static_cast<float*>(p)[i] = float(v); break;
        case DType::F64: static_cast<double*>(p)[i] = v; break;
        case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(float(v)); break;
        case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(float(v)); break;
        case DType::I32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
        case DType::I64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
        case DType::U8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
        default: WANRT_ASSERT(false);
    }
}
}  // namespace

void convert_elements(const void* src, DType st, void* dst, DType dt, int64_t n) {
    if (st == dt) {
        std::memcpy(dst, src, dtype_bytes(st, n));
        return;
    }
    // Fast paths for the conversions weights and activations go through.
    if (dt == DType::F32) {
        float* d = static_cast<float*>(dst);
        if (st == DType::BF16) {
            const uint16_t* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
            return;
        }
        if (st == DType::F16) {
            const uint16_t* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) d[i] = f16_to_f32(s[i]);
            return;
        }
        if (st == DType::F64) {
            const double* s = static_cast<const double*>(src);
            for (int64_t i = 0; i < n; ++i) d[i] = float(s[i]);
            return;
        }
    }
    if (st == DType::I64 && dt == DType::I32) {
        const int64_t* s = static_cast<const int64_t*>(src);
        int32_t* d = static_cast<int32_t*>(dst);
        for (int64_t i = 0; i < n; ++i) d[i] = int32_t(s[i]);
        return;
    }
    for (int64_t i = 0; i < n; ++i) store(dst, dt, i, load(src, st, i));
}

}  // namespace wanrt
