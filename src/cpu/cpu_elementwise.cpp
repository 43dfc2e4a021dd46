// Elementwise ops: activations and broadcasting add/mul.
#include <cmath>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"
#include "cpu/vecmath.h"

namespace wanrt {

static void unary_cpu(CpuBackend& be, Activation act, const Tensor& x, const Tensor& y) {
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
    be.pool().parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) {
        switch (act) {
            case Activation::None:
                for (int64_t i = b; i < e; ++i) ys[i] = xs[i];
                break;
            case Activation::GeluTanh:
                for (int64_t i = b; i < e; ++i) ys[i] = cpu::gelu_tanh(xs[i]);
                break;
            case Activation::GeluErf:
                for (int64_t i = b; i < e; ++i) ys[i] = cpu::gelu_erf(xs[i]);
                break;
            case Activation::Silu:
                for (int64_t i = b; i < e; ++i) ys[i] = cpu::silu(xs[i]);
                break;
            case Activation::Tanh:  // std::tanh, not tanh_approx: TAEHV's latent soft clamp is checked exactly
                for (int64_t i = b; i < e; ++i) ys[i] = std::tanh(xs[i]);
                break;
            case Activation::Relu:
                for (int64_t i = b; i < e; ++i) ys[i] = xs[i] > 0.0f ? xs[i] : 0.0f;
                break;
        }
    });
}

static void binary_cpu(CpuBackend& be, BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) {
    // y has the broadcast shape; a and b are right-aligned against it, size-1 dims broadcast.
    const int nd = y.ndim();
    Shape as(nd, 0), bs(nd, 0);
    for (int i = 0; i < nd; ++i) {
        int ia = i - (nd - a.ndim()), ib = i - (nd - b.ndim());
        if (ia >= 0 && a.size(ia) != 1) as[i] = a.stride(ia);
        if (ib >= 0 && b.size(ib) != 1) bs[i] = b.stride(ib);
    }
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    float* yp = y.data<float>();
    const int64_t inner = nd ? y.size(-1) : 1, rows = y.numel() / std::max<int64_t>(inner, 1);
    const int64_t ai = nd ? as[nd - 1] : 0, bi = nd ? bs[nd - 1] : 0;
    be.pool().parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t ao = 0, bo = 0, rem = r;
            for (int d = nd - 2; d >= 0; --d) {
                int64_t idx = rem % y.size(d);
                rem /= y.size(d);
                ao += idx * as[d];
                bo += idx * bs[d];
            }
            const float* ar = ap + ao;
            const float* br = bp + bo;
            float* yr = yp + r * inner;
            if (op == BinaryOp::Add)
                for (int64_t i = 0; i < inner; ++i) yr[i] = ar[i * ai] + br[i * bi];
            else
                for (int64_t i = 0; i < inner; ++i) yr[i] = ar[i * ai] * br[i * bi];
        }
    });
}

static void lincomb_cpu(CpuBackend& be, const Tensor* const* in, const float* coef, int n, const Tensor& out) {
    const float* b = n > 1 ? in[1]->data<float>() : nullptr;
    const float* c = n > 2 ? in[2]->data<float>() : nullptr;
    const float* d = n > 3 ? in[3]->data<float>() : nullptr;
    const float ca = coef[0], cb = n > 1 ? coef[1] : 0.f, cc = n > 2 ? coef[2] : 0.f, cd = n > 3 ? coef[3] : 0.f;
    const DType t = out.dtype();
    if (t != DType::F32) {
        // A half-precision first input and output (a LoRA patch of a bf16/f16 weight): the sum in f32,
        // rounded once, as the f32 op followed by a cast.
        const uint16_t* a = static_cast<const uint16_t*>(in[0]->raw());
        uint16_t* y = static_cast<uint16_t*>(out.raw());
        const bool bf = t == DType::BF16;
        be.pool().parallel_for(out.numel(), 65536, [&](int64_t j0, int64_t j1) {
            for (int64_t j = j0; j < j1; ++j) {
                float v = ca * (bf ? bf16_to_f32(a[j]) : f16_to_f32(a[j]));
                if (n > 1) v = std::fma(cb, b[j], v);
                if (n > 2) v = std::fma(cc, c[j], v);
                if (n > 3) v = std::fma(cd, d[j], v);
                y[j] = bf ? f32_to_bf16(v) : f32_to_f16(v);
            }
        });
        return;
    }
    float* y = out.data<float>();
    const float* a = in[0]->data<float>();
    // One loop per arity so each vectorises; elementwise, so out may alias an input. fma keeps the
    // rounding of one f32 expression per term, as the reference's tensor arithmetic.
    be.pool().parallel_for(out.numel(), 65536, [&](int64_t j0, int64_t j1) {
        switch (n) {
            case 1:
                for (int64_t j = j0; j < j1; ++j) y[j] = ca * a[j];
                break;
            case 2:
                for (int64_t j = j0; j < j1; ++j) y[j] = std::fma(cb, b[j], ca * a[j]);
                break;
            case 3:
                for (int64_t j = j0; j < j1; ++j) y[j] = std::fma(cc, c[j], std::fma(cb, b[j], ca * a[j]));
                break;
            default:
                for (int64_t j = j0; j < j1; ++j) y[j] = std::fma(cd, d[j], std::fma(cc, c[j], std::fma(cb, b[j], ca * a[j])));
                break;
        }
    });
}

namespace {
// Half-precision activations (f16/bf16 in and out): the f32 kernel on widened copies, rounded once
// to y's dtype, which is what a GPU kernel computing in f32 registers gives.
Tensor widened(const Tensor& x) {
    return x.dtype() == DType::F32 ? x : ops::to_dtype(x, DType::F32);
}
void narrow_into(const Tensor& f, const Tensor& y) {
    if (y.dtype() != DType::F32) ops::copy(f, y);
}
Tensor f32_out(CpuBackend& be, const Tensor& y) {
    return y.dtype() == DType::F32 ? y : be.empty(DType::F32, y.shape());
}

const RegisterKernel<UnaryArgs, CpuBackend> reg_unary({{DType::F32}, {DType::F16}, {DType::BF16}},
                                                      [](CpuBackend& be, const UnaryArgs& a) {
                                                          const Tensor yf = f32_out(be, a.y);
                                                          unary_cpu(be, a.act, widened(a.x), yf);
                                                          narrow_into(yf, a.y);
                                                      });
const RegisterKernel<BinaryArgs, CpuBackend> reg_binary({{DType::F32}, {DType::F16}, {DType::BF16}},
                                                        [](CpuBackend& be, const BinaryArgs& a) {
                                                            const Tensor yf = f32_out(be, a.y);
                                                            binary_cpu(be, a.op, widened(a.a), widened(a.b), yf);
                                                            narrow_into(yf, a.y);
                                                        });
const RegisterKernel<LinCombArgs, CpuBackend> reg_lincomb({{DType::F32}, {DType::BF16, DType::BF16}, {DType::F16, DType::F16}}, [](CpuBackend& be, const LinCombArgs& a) {
    lincomb_cpu(be, a.in, a.coef, a.n, a.out);
});
}  // namespace

}  // namespace wanrt
