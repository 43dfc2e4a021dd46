// Data movement: strided copy with dtype conversion, patchify / unpatchify.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// Calls fn(src_offset, dst_offset, n, src_stride, dst_stride) for each innermost row, offsets in
// elements.
template <class Fn>
void for_each_row(const Shape& shape, const Shape& ss, const Shape& ds, Fn&& fn) {
    const int nd = int(shape.size());
    if (nd == 0) {
        fn(int64_t(0), int64_t(0), int64_t(1), int64_t(1), int64_t(1));
        return;
    }
    const int64_t inner = shape[nd - 1];
    if (inner == 0 || shape_numel(shape) == 0) return;
    const int64_t rows = shape_numel(shape) / inner;
    std::vector<int64_t> idx(nd, 0);
    for (int64_t r = 0; r < rows; ++r) {
        int64_t so = 0, dof = 0;
        for (int d = 0; d < nd - 1; ++d) {
            so += idx[d] * ss[d];
            dof += idx[d] * ds[d];
        }
        fn(so, dof, inner, ss[nd - 1], ds[nd - 1]);
        for (int d = nd - 2; d >= 0; --d) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

}  // namespace

static void copy_cpu(CpuBackend& be, const Tensor& src, const Tensor& dst) {
    WANRT_ASSERT(src.shape() == dst.shape());
    if (src.is_contiguous() && dst.is_contiguous()) {
        convert_elements(src.raw(), src.dtype(), dst.raw(), dst.dtype(), src.numel());
        return;
    }
    const size_t es = dtype_size(src.dtype()), ds = dtype_size(dst.dtype());
    const char* s = static_cast<const char*>(src.raw());
    char* d = static_cast<char*>(dst.raw());
    for_each_row(src.shape(), src.strides(), dst.strides(),
                 [&](int64_t so, int64_t dof, int64_t n, int64_t sst, int64_t dst_st) {
                     if (sst == 1 && dst_st == 1) {
                         convert_elements(s + so * es, src.dtype(), d + dof * ds, dst.dtype(), n);
                     } else {
                         for (int64_t i = 0; i < n; ++i)
                             convert_elements(s + (so + i * sst) * es, src.dtype(), d + (dof + i * dst_st) * ds,
                                              dst.dtype(), 1);
                     }
                 });
}

static void fill_cpu(CpuBackend& be, const Tensor& y, float value) {
    WANRT_ASSERT(y.is_contiguous());
    if (y.dtype() == DType::F32) {
        float* p = y.data<float>();
        be.pool().parallel_for(y.numel(), 65536, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, value); });
        return;
    }
    for (int64_t i = 0; i < y.numel(); ++i)
        convert_elements(&value, DType::F32, static_cast<char*>(y.raw()) + dtype_bytes(y.dtype(), i), y.dtype(), 1);
}

static void patchify_cpu(CpuBackend& be, const Tensor& x, int pt, int ph, int pw, const Tensor& y) {
    // x [C, T, H, W] → y [(T/pt)(H/ph)(W/pw), C·pt·ph·pw], features (c, p, q, r), r fastest.
    const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t f = T / pt, h = H / ph, w = W / pw, feat = C * pt * ph * pw;
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
    be.pool().parallel_for(f * h, 1, [&](int64_t b, int64_t e) {
        for (int64_t fh = b; fh < e; ++fh) {
            int64_t fi = fh / h, hi = fh % h;
            for (int64_t wi = 0; wi < w; ++wi) {
                float* row = ys + ((fi * h + hi) * w + wi) * feat;
                int64_t k = 0;
                for (int64_t c = 0; c < C; ++c)
                    for (int p = 0; p < pt; ++p)
                        for (int q = 0; q < ph; ++q)
                            for (int r = 0; r < pw; ++r)
                                row[k++] = xs[((c * T + fi * pt + p) * H + hi * ph + q) * W + wi * pw + r];
            }
        }
    });
}

static void unpatchify_cpu(CpuBackend& be, const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw,
                            const Tensor& y) {
    // x [L, pt·ph·pw·C] with features (p, q, r, c), c fastest → y [C, f·pt, h·ph, w·pw].
    const int64_t C = y.size(0), T = f * pt, H = h * ph, W = w * pw;
    const int64_t feat = x.size(1);
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
    be.pool().parallel_for(f * h, 1, [&](int64_t b, int64_t e) {
        for (int64_t fh = b; fh < e; ++fh) {
            int64_t fi = fh / h, hi = fh % h;
            for (int64_t wi = 0; wi < w; ++wi) {
                const float* row = xs + ((fi * h + hi) * w + wi) * feat;
                for (int p = 0; p < pt; ++p)
                    for (int q = 0; q < ph; ++q)
                        for (int r = 0; r < pw; ++r)
                            for (int64_t c = 0; c < C; ++c)
                                ys[((c * T + fi * pt + p) * H + hi * ph + q) * W + wi * pw + r] =
                                    row[((p * ph + q) * pw + r) * C + c];
            }
        }
    });
}

namespace {
constexpr auto F32 = DType::F32;
const RegisterKernel<CopyArgs, CpuBackend> reg_copy(
    all_sig_pairs({DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64, DType::U8}),
    [](CpuBackend& be, const CopyArgs& a) { copy_cpu(be, a.src, a.dst); });
const RegisterKernel<FillArgs, CpuBackend> reg_fill({{F32}, {DType::F16}, {DType::BF16}, {DType::F64}, {DType::I32},
                                                     {DType::I64}, {DType::U8}},
                                                    [](CpuBackend& be, const FillArgs& a) { fill_cpu(be, a.y, a.value); });
const RegisterKernel<PatchifyArgs, CpuBackend> reg_patchify({{F32}}, [](CpuBackend& be, const PatchifyArgs& a) {
    patchify_cpu(be, a.x, a.pt, a.ph, a.pw, a.y);
});
const RegisterKernel<UnpatchifyArgs, CpuBackend> reg_unpatchify({{F32}}, [](CpuBackend& be, const UnpatchifyArgs& a) {
    unpatchify_cpu(be, a.x, a.f, a.h, a.w, a.pt, a.ph, a.pw, a.y);
});
}  // namespace

}  // namespace wanrt
