// 3-axis RoPE on interleaved pairs (docs/wan21.md §1.4). The angle table holds (cos, sin) per position and
// pair; each pair index k belongs to the frame, height or width axis by the [d/2 − 2⌊d/6⌋, ⌊d/6⌋,
// ⌊d/6⌋] split, and reads the table at that axis's position of the token.
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"

namespace wanrt {

static void rope_cpu(CpuBackend& be, const Tensor& x, const std::vector<RopeGrid>& grids, const Tensor& table,
                      const Tensor& y) {
    const int64_t B = x.size(0), L = x.size(1), H = x.size(2), D = x.size(3);
    const int64_t half = D / 2, hw_pairs = half / 3, f_pairs = half - 2 * hw_pairs;
    const float* tab = table.data<float>();  // [P, half, 2]
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
    be.pool().parallel_for(B * L, 4, [&](int64_t r0, int64_t r1) {
        std::vector<float> cs(static_cast<size_t>(D));
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / L, l = r % L;
            const RopeGrid& g = grids[b];
            const float* xr = xs + r * H * D;
            float* yr = ys + r * H * D;
            if (l >= g.f * g.h * g.w) {
                std::copy(xr, xr + H * D, yr);
                continue;
            }
            const int64_t pf = l / (g.h * g.w) + g.frame_offset, ph = (l / g.w) % g.h, pw = l % g.w;
            // Gather this token's (cos, sin) per pair once; every head uses the same angles.
            for (int64_t k = 0; k < half; ++k) {
                const int64_t pos = k < f_pairs ? pf : (k < f_pairs + hw_pairs ? ph : pw);
                cs[size_t(2 * k)] = tab[(pos * half + k) * 2];
                cs[size_t(2 * k + 1)] = tab[(pos * half + k) * 2 + 1];
            }
            for (int64_t h = 0; h < H; ++h) {
                const float* a = xr + h * D;
                float* o = yr + h * D;
#pragma omp simd
                for (int64_t k = 0; k < half; ++k) {
                    const float c = cs[size_t(2 * k)], s = cs[size_t(2 * k + 1)];
                    const float re = a[2 * k], im = a[2 * k + 1];
                    o[2 * k] = re * c - im * s;
                    o[2 * k + 1] = re * s + im * c;
                }
            }
        }
    });
}

// The composition itself (rms_norm over each token's H·d values, then rope in place): the CPU's
// rounding is the unfused path's, so goldens do not move.
static void rms_norm_rope_cpu(CpuBackend& be, const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& grids,
                               const Tensor& table, const Tensor& y) {
    const Shape rows{x.size(0) * x.size(1), x.size(2) * x.size(3)};
    cpu::rms_norm(be, x.reshape(rows), w, eps, y.reshape(rows));
    rope_cpu(be, y, grids, table, y);
}

namespace {
const RegisterKernel<RopeArgs, CpuBackend> reg_rope({{DType::F32}}, [](CpuBackend& be, const RopeArgs& a) {
    rope_cpu(be, a.x, *a.grids, a.table, a.y);
});
const RegisterKernel<RmsNormRopeArgs, CpuBackend> reg_rms_norm_rope({{DType::F32}}, [](CpuBackend& be, const RmsNormRopeArgs& a) {
    rms_norm_rope_cpu(be, a.x, a.w, a.eps, *a.grids, a.table, a.y);
});
}  // namespace

}  // namespace wanrt
