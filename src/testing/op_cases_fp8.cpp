// The FP8 ops' rows of the op table (ops/linear_fp8.h). Two references:
//  - the emulation: x and w quantized on the host by linear_fp8.h's rule with core/fp8.h's encoder,
//    then the float64 linear of the decoded values (bias rounded to bf16, output rounded to the
//    output dtype). quantize_fp8 must match it exactly; linear_fp8 within the f32-accumulation
//    error (tight: 1e-5 on the CPU with f32 out, 1e-3 on CUDA and for bf16 out, more with fast accumulation);
//  - the exact op ("_vs_exact" rows): the float64 linear of the unquantized inputs, within the
//    documented FP8 error (6e-2 rel-L2; per-tensor e4m3 of normal data measures ≈ 3–4e-2).
// Shapes: K and N multiples of 16 (the legal ones), M anything (1, 7, 37, 1,560), views as x.
#include <algorithm>
#include <cmath>
#include <memory>

#include "core/fp8.h"
#include "ops/linear_fp8.h"
#include "testing/op_table.h"
#include "testing/ref64.h"

namespace wanrt::testing {

namespace {

constexpr DType F32 = DType::F32, BF16 = DType::BF16, F16 = DType::F16, F8 = DType::F8E4M3;
using Vec = std::vector<double>;
using Act = Activation;
using L = Layout;

// The host quantization (linear_fp8.h's rule) of values as stored: each value's stand-in decode(q)·s.
Vec quantize_host(const Vec& v) {
    float amax = 0.0f;
    for (double d : v) {
        const float a = std::fabs(float(d));
        if (a <= 3.4028234663852886e38f && a > amax) amax = a;
    }
    const float s = fp8_scale_of_amax(amax);
    Vec out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = double(fp8_e4m3_to_f32(f32_to_fp8_e4m3(float(v[i]) / s))) * double(s);
    return out;
}

double round_to(DType t, double v) {
    return t == BF16 ? double(bf16_to_f32(f32_to_bf16(float(v)))) : double(float(v));
}

// The dequantized values of a quantize_fp8 result.
Vec dequantized(const Fp8Tensor& f) {
    Vec q = host_f64(f.q);
    const double s = host_f64(f.scale).at(0);
    for (double& v : q) v *= s;
    return q;
}

OpCase quantize(std::string name, Shape shape, int kind) {
    const std::vector<OpSig> sigs = {{F32, F8}, {BF16, F8}, {F16, F8}};
    return {"quantize_fp8", std::move(name), sigs, false, Check::Exact, [shape, kind](CaseCtx& c) {
                const int64_t n = shape_numel(shape);
                Vec v;
                if (kind == 0) {
                    v = c.rand(F32, shape, 3.f).v;
                } else if (kind == 1) {  // magnitudes over 2^-24 … 2^6: e4m3 subnormals and underflow to 0
                    const Vec e = c.ints(n, -24, 6), sg = c.ints(n, 0, 1);
                    for (int64_t i = 0; i < n; ++i) v.push_back((sg[size_t(i)] ? -1 : 1) * std::ldexp(1.37, int(e[size_t(i)])));
                } else if (kind == 2) {  // NaN and ±inf do not count in the scale and become NaN codes
                    v = c.rand(F32, shape, 0.5f).v;
                    v[1] = NAN;
                    v[5] = INFINITY;
                    v[size_t(n - 1)] = -INFINITY;
                } else {
                    v.assign(size_t(n), 0.0);  // amax 0: scale 1
                }
                Input x = c.from(c.sig.in, shape, v, L::Padded);
                auto out = std::make_shared<Fp8Tensor>();
                Prepared p;
                p.run = [=] { *out = ops::quantize_fp8(x.t); };
                p.result = [=] { return dequantized(*out); };
                if (!c.perf) p.ref = quantize_host(x.v);
                p.bytes = double(n) * (double(dtype_size(c.sig.in)) + 1);
                p.shape = cat(shape_str(shape));
                return p;
            }};
}

struct Fp8Row {
    int64_t M, N, K;
    bool bias = false;
    Act act = Act::None;
    DType out = F32;
    bool fast = false;      // cuBLASLt fast accumulation
    bool exact = false;     // reference: the unquantized op
    L x = L::Contig;
    int64_t batch = 0;      // > 0: x is [batch, M, K]
    int sized = 0;          // 1 q/k/v/o, 2 FFN up (+gelu), 3 FFN down (Sizes); bench rows
    bool requantize = true; // perf: alternate two inputs so every run quantizes x (false: GEMM only)
};

double tol_of(const Fp8Row& r, const Backend& be) {
    if (r.exact) return 6e-2;
    const bool cuda = std::string(be.kind()) == "cuda";
    if (cuda) return r.fast ? 1e-2 : 1e-3;
    return r.out == BF16 ? 1e-3 : 1e-5;
}

OpCase linear_fp8(std::string name, Fp8Row r) {
    const std::vector<OpSig> sigs = {{F32, F8}, {BF16, F8}};
    OpCase oc{"linear_fp8", std::move(name), sigs, r.sized > 0, Check::Close, [r](CaseCtx& c) {
                  Fp8Row q = r;
                  if (q.sized) {  // the DiT's projections at Sizes (bench ops)
                      const auto& s = c.sizes;
                      // K and N rounded up to multiples of 16 (the small test sizes are odd on purpose)
                      auto r16 = [](int64_t v) { return (v + 15) / 16 * 16; };
                      q.M = s.tokens;
                      q.N = r16(q.sized == 2 ? s.ffn : s.dim);
                      q.K = r16(q.sized == 3 ? s.ffn : s.dim);
                  }
                  const DType xt = c.sig.in;
                  const int64_t rows = q.M * std::max<int64_t>(q.batch, 1);
                  const Shape xs = q.batch ? Shape{q.batch, q.M, q.K} : Shape{q.M, q.K};
                  Input x = c.rand(xt, xs, 1.f, q.x), w = c.rand(F32, {q.N, q.K}, 0.2f), b = c.rand(F32, {q.N});
                  Input x2 = c.perf && q.requantize ? c.rand(xt, xs, 1.f) : x;
                  const Fp8Tensor wq = ops::quantize_fp8(w.t);
                  auto y = std::make_shared<Tensor>();
                  auto flip = std::make_shared<int>(0);
                  Prepared p;
                  p.run = [=] {
                      const Tensor& xin = (*flip ^= 1) ? x.t : x2.t;
                      *y = ops::linear_fp8(xin, wq.q, wq.scale, q.bias ? &b.t : nullptr, q.act, q.out, q.fast);
                  };
                  p.result = [y] { return host_f64(*y); };
                  if (!c.perf) {
                      if (q.exact) {
                          p.ref = ref64::linear(x.v, w.v, q.bias ? &b.v : nullptr, q.act, rows, q.N, q.K);
                      } else {
                          Vec bb = b.v;
                          for (double& v : bb) v = round_to(BF16, v);
                          p.ref = ref64::linear(quantize_host(x.v), quantize_host(w.v), q.bias ? &bb : nullptr, q.act,
                                                rows, q.N, q.K);
                          for (double& v : p.ref) v = round_to(q.out, v);
                      }
                  }
                  p.flop = 2.0 * double(rows) * double(q.N) * double(q.K);
                  p.bytes = double(x.t.nbytes()) + double(q.N * q.K) + double(rows * q.N) * double(dtype_size(q.out));
                  p.shape = cat(rows, "x", q.N, "x", q.K, q.act != Act::None ? " +act" : "", q.fast ? " fast-accum" : "",
                                q.out == BF16 ? " →bf16" : "", c.perf && !q.requantize ? " (x quantized once)" : "");
                  return p;
              }};
    oc.tol = [r](const Backend& be, OpSig) { return tol_of(r, be); };
    return oc;
}

}  // namespace

std::vector<OpCase> fp8_op_cases() {
    return {
        quantize("quantize_fp8_7x13", {7, 13}, 0),
        quantize("quantize_fp8_wide_range_1000", {1000}, 1),
        quantize("quantize_fp8_nan_inf_3x33", {3, 33}, 2),
        quantize("quantize_fp8_zeros_5x16", {5, 16}, 3),

        // awkward-but-legal shapes, every epilogue path (bias, gelu_tanh fused, others after), bf16 out
        linear_fp8("linear_fp8_M1_N16_K32_bias", {1, 16, 32, true}),
        linear_fp8("linear_fp8_M7_N48_K64_gelu_tanh", {7, 48, 64, true, Act::GeluTanh}),
        linear_fp8("linear_fp8_M7_N48_K64_gelu_tanh_nobias", {7, 48, 64, false, Act::GeluTanh}),
        linear_fp8("linear_fp8_M37_N32_K160_silu", {37, 32, 160, true, Act::Silu}),
        linear_fp8("linear_fp8_M33_N80_K96_bf16_out", {33, 80, 96, true, Act::None, BF16}),
        linear_fp8("linear_fp8_M37_N64_K64_gelu_bf16_out", {37, 64, 64, true, Act::GeluTanh, BF16}),
        linear_fp8("linear_fp8_M1560_N64_K128", {1560, 64, 128, true}),
        linear_fp8("linear_fp8_M64_N256_K1536_fast_accum", {64, 256, 1536, true, Act::None, F32, true}),
        linear_fp8("linear_fp8_M31_N32_K48_transposed_x", {31, 32, 48, false, Act::None, F32, false, false, L::Transposed}),
        linear_fp8("linear_fp8_offset_x_batch", {5, 32, 48, true, Act::GeluTanh, F32, false, false, L::Offset, 2}),
        linear_fp8("linear_fp8_M7_N32_K32_padded_x", {7, 32, 32, true, Act::None, F32, false, false, L::Padded}),
        // against the unquantized op: the FP8 error itself
        linear_fp8("linear_fp8_vs_exact_M64_N128_K256", {64, 128, 256, true, Act::None, F32, false, true}),
        linear_fp8("linear_fp8_vs_exact_M40_N96_K512_gelu", {40, 96, 512, true, Act::GeluTanh, F32, true, true}),
        // bench ops rows at the DiT's shapes (fast accumulation, as the DiT runs them): every run
        // quantizes its x, and the GEMM alone (x quantized once, as q/k/v share it)
        linear_fp8("linear_fp8_qkv", {0, 0, 0, true, Act::None, F32, true, false, L::Contig, 0, 1}),
        linear_fp8("linear_fp8_ffn_up_gelu", {0, 0, 0, true, Act::GeluTanh, BF16, true, false, L::Contig, 0, 2}),
        linear_fp8("linear_fp8_ffn_down", {0, 0, 0, true, Act::None, F32, true, false, L::Contig, 0, 3}),
        linear_fp8("linear_fp8_gemm_ffn_up_gelu", {0, 0, 0, true, Act::GeluTanh, BF16, true, false, L::Contig, 0, 2, false}),
        linear_fp8("linear_fp8_gemm_ffn_down", {0, 0, 0, true, Act::None, F32, true, false, L::Contig, 0, 3, false}),
    };
}

}  // namespace wanrt::testing
