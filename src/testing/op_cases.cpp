// The rows of the op table: one line per case, made by one builder per op. A builder makes the
// inputs (CaseCtx: deterministic data, views), the run through the ops:: front-end, the read-back
// of what is compared, the float64 reference (test mode) and the work done (perf mode).
// Shapes are awkward on purpose: odd sizes (1, 31, 33, 257), views as inputs, broadcasting,
// several kernel tiles; the rows a CUDA kernel has special paths for (cuDNN head dims, split-KV,
// the GEMM attention path, Winograd convolutions) are kept from the old per-backend tests.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/qmatmul.h"
#include "io/gguf_quants.h"
#include "ops/clamp.h"
#include "ops/rgb8.h"
#include "testing/op_table.h"
#include "testing/ref64.h"
#include "testing/ref_quantize.h"

namespace wanrt::testing {

std::vector<OpCase> backward_op_cases();  // the backward ops' rows (op_cases_backward.cpp)

namespace {

constexpr DType F32 = DType::F32, BF16 = DType::BF16, F16 = DType::F16;
using Vec = std::vector<double>;
using Act = Activation;
using L = Layout;

const std::vector<OpSig> kF32 = {{F32, F32}};
// linear: {x, w}; bf16 x means the bf16 chain (bf16 activations in and out).
const std::vector<OpSig> kLinearSigs = {{F32, F32}, {F32, BF16}, {F32, F16}, {BF16, BF16}, {BF16, F32}, {BF16, F16}};
const std::vector<OpSig> kKvSigs = {{F32, F32}, {F32, BF16}, {F32, F16}};  // attention, kv_sink_write, embedding
// unary, binary, upsample2x: f32 or half activations (the VAEs' half path keeps them between convs)
const std::vector<OpSig> kActSigs = {{F32, F32}, {F16, F32}, {BF16, F32}};

double nbytes(std::initializer_list<Tensor> ts) {
    double b = 0;
    for (const Tensor& t : ts) b += double(t.nbytes());
    return b;
}

// The output slot a run writes and result reads (runs may repeat in perf mode).
using Out = std::shared_ptr<Tensor>;
std::function<Vec()> read(Out o) {
    return [o] { return host_f64(*o); };
}
Vec pick(const Vec& v, int64_t rows, int64_t stride, int64_t offset, int64_t n) {  // rows of a [rows, stride] host copy
    Vec out;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) out.push_back(v[size_t(r * stride + offset + i)]);
    return out;
}
// A token grid f·h·w ≤ L with h·w near square (sized rope/patchify rows).
RopeGrid grid_for(int64_t L) {
    int64_t h = 1;
    for (int64_t i = 1; i * i <= L; ++i)
        if (L % i == 0) h = i;
    return {1, h, L / h, 0};
}

// ---- linear ----------------------------------------------------------------------------------
struct LinearRow {
    int64_t M, N, K;
    bool bias = false;
    Act act = Act::None;
    Layout x = L::Contig;
    int64_t batch = 0;  // > 0: x is [batch, M, K]
};
OpCase linear(std::string name, LinearRow r, std::vector<OpSig> sigs = kLinearSigs, bool sized = false, int which = 0) {
    return {"linear", std::move(name), std::move(sigs), sized, Check::Close, [r, sized, which](CaseCtx& c) {
                LinearRow q = r;
                if (sized) {  // the DiT's q/k/v/o projection, FFN up (+gelu) and down
                    const auto& s = c.sizes;
                    q.M = s.tokens;
                    q.N = which == 1 ? s.ffn : s.dim;
                    q.K = which == 2 ? s.ffn : s.dim;
                }
                const DType xt = c.sig.in;
                const int64_t rows = q.M * std::max<int64_t>(q.batch, 1);
                const Shape xs = q.batch ? Shape{q.batch, q.M, q.K} : Shape{q.M, q.K};
                Input x = c.rand(xt, xs, 1.f, q.x), w = c.rand(c.sig.w, {q.N, q.K}, 0.2f), b = c.rand(F32, {q.N});
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::linear(x.t, w.t, q.bias ? &b.t : nullptr, q.act, xt); };
                p.result = read(y);
                if (!c.perf) p.ref = ref64::linear(x.v, w.v, q.bias ? &b.v : nullptr, q.act, rows, q.N, q.K);
                p.flop = 2.0 * double(rows) * double(q.N) * double(q.K);
                p.bytes = nbytes({x.t, w.t}) + double(rows * q.N) * double(dtype_size(xt));
                p.shape = cat(rows, "x", q.N, "x", q.K, q.act != Act::None ? " +act" : "");
                return p;
            }};
}

// ---- linear on block-quantized weights (CPU: cpu/qmatmul.h; CUDA: cuda_linear_quant.cpp) --------
// W: random f32 quantized by the reference quantizer (testing/ref_quantize.h); the oracle is the
// decoded W (gguf_dequantize, exact) in float64 times x as the kernel sees it. On the CPU: x rounded
// per 32 to int8 (d = amax/127, round half to even, in f32 as the kernel does) on the integer paths
// (every M by default: qgemm_int up to kQlinearIntMaxRows rows, qgemm_tiled above), x itself on the
// exact decode-panel + sgemm path (rows named _exact: CpuBackend::set_exact_qlinear during the run);
// what is left is f32 rounding of block-scale products and sums, so the f32 bound holds
// (the activation quantization's own error: docs/perf.md, session 9). On CUDA the
// decoded W and x are rounded to bf16 for the GEMM, so the bf16 bound of every CUDA linear applies.
// bf16 x (the bf16 chain, bf16 out) only where a backend registers it (CUDA).
const std::vector<OpSig> kQSigs = {{F32, DType::Q8_0},  {F32, DType::Q4_0},  {F32, DType::Q4_K},  {F32, DType::Q5_K},
                                   {F32, DType::Q6_K},  {BF16, DType::Q8_0}, {BF16, DType::Q4_0}, {BF16, DType::Q4_K},
                                   {BF16, DType::Q5_K}, {BF16, DType::Q6_K}};
// K a multiple of 32 only
const std::vector<OpSig> kQ32Sigs = {{F32, DType::Q8_0}, {F32, DType::Q4_0}, {BF16, DType::Q8_0}, {BF16, DType::Q4_0}};

Vec as_kernel_sees(const Vec& x, int64_t M, int64_t K) {  // per row, per 32: amax/127 scale, int8
    Vec out(x.size());
    for (int64_t m = 0; m < M; ++m)
        for (int64_t b = 0; b < K / 32; ++b) {
            const double* xb = x.data() + m * K + 32 * b;
            float amax = 0;
            for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(float(xb[i])));
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; ++i) out[size_t(m * K + 32 * b + i)] = double(d) * std::nearbyint(float(xb[i]) * id);
        }
    return out;
}

OpCase qlinear(std::string name, LinearRow r, std::vector<OpSig> sigs = kQSigs, bool sized = false, int which = 0,
              bool exact = false) {
    return {"linear", std::move(name), std::move(sigs), sized, Check::Close, [r, sized, which, exact](CaseCtx& c) {
                LinearRow q = r;
                if (sized) {  // the DiT's projections, widths rounded up to whole K-quant blocks
                    auto up = [](int64_t v) { return (v + 255) / 256 * 256; };
                    const auto& s = c.sizes;
                    q.M = s.tokens;
                    q.N = which == 1 ? up(s.ffn) : up(s.dim);
                    q.K = which == 2 ? up(s.ffn) : up(s.dim);
                }
                const DType wt = c.sig.w, xt = c.sig.in;
                const int64_t rows = q.M * std::max<int64_t>(q.batch, 1);
                const Shape xs = q.batch ? Shape{q.batch, q.M, q.K} : Shape{q.M, q.K};
                Input x = c.rand(xt, xs, 1.f, q.x), wf = c.rand(F32, {q.N, q.K}, 0.2f), b = c.rand(F32, {q.N});
                std::vector<float> wv(wf.v.begin(), wf.v.end());
                const std::vector<uint8_t> bytes = ref_quantize(wt, wv.data(), q.N * q.K);
                Tensor w = c.be.empty(wt, {q.N, q.K});
                c.be.upload(w, bytes.data());
                Out y = std::make_shared<Tensor>();
                Prepared p;
                CpuBackend* cpu_be = dynamic_cast<CpuBackend*>(&c.be);
                p.run = [=] {
                    if (cpu_be && exact) cpu_be->set_exact_qlinear(true);
                    *y = ops::linear(x.t, w, q.bias ? &b.t : nullptr, q.act, xt);
                    if (cpu_be && exact) cpu_be->set_exact_qlinear(false);
                };
                p.result = read(y);
                if (!c.perf) {
                    std::vector<float> wd(size_t(q.N * q.K));
                    gguf_dequantize(GgmlType(dtype_ggml_id(wt)), bytes.data(), q.N * q.K / dtype_info(wt).block_elems, wd.data());
                    const bool int_path = cpu_be && (rows <= cpu::kQlinearIntMaxRows || !exact);
                    const Vec xk = int_path ? as_kernel_sees(x.v, rows, q.K) : x.v;
                    p.ref = ref64::linear(xk, Vec(wd.begin(), wd.end()), q.bias ? &b.v : nullptr, q.act, rows, q.N, q.K);
                }
                p.flop = 2.0 * double(rows) * double(q.N) * double(q.K);
                p.bytes = nbytes({x.t, w}) + double(rows * q.N) * double(dtype_size(xt));
                p.shape = cat(rows, "x", q.N, "x", q.K, q.act != Act::None ? " +act" : "");
                return p;
            }};
}

// ---- attention -------------------------------------------------------------------------------
struct AttnRow {
    int64_t B = 1, Lq = 1, Lk = 1, H = 1, Hk = 1, d = 8, dv = 8;
    std::vector<int32_t> k_lens = {};
    bool causal = false;
    int wl = -1, wr = -1;
    float q_scale = 1.f, softmax_scale = 0.f;
    bool rel_bias = false;
    Layout q = L::Contig, kv = L::Contig;
    int sized = 0;  // 1: self-attention over the tokens, 2: cross-attention to the text, 3: against a 6-frame cache
};
OpCase attention(std::string name, AttnRow r, std::vector<OpSig> sigs = kKvSigs) {
    return {"attention", std::move(name), std::move(sigs), r.sized > 0, Check::Close, [r](CaseCtx& c) {
                AttnRow a = r;
                if (a.sized) {
                    const auto& s = c.sizes;
                    a.Lq = s.tokens, a.H = a.Hk = s.heads, a.d = a.dv = s.dim / s.heads;
                    a.Lk = a.sized == 1 ? s.tokens : a.sized == 2 ? s.text : 6 * s.tokens;
                }
                Input q = c.rand(F32, {a.B, a.Lq, a.H, a.d}, 1.f, a.q);
                Input k = c.rand(c.sig.w, {a.B, a.Lk, a.Hk, a.d}, 1.f, a.kv);
                Input v = c.rand(c.sig.w, {a.B, a.Lk, a.Hk, a.dv}, 1.f, a.kv);
                AttentionParams p;
                p.k_lens = a.k_lens, p.causal = a.causal, p.window_left = a.wl, p.window_right = a.wr;
                p.q_scale = a.q_scale, p.softmax_scale = a.softmax_scale;
                Input bias;
                if (a.rel_bias) bias = c.rand(F32, {a.H, a.Lq + a.Lk - 1});
                p.rel_bias = bias.t;
                Out y = std::make_shared<Tensor>();
                Prepared pr;
                pr.run = [=] { *y = ops::attention(q.t, k.t, v.t, p); };
                pr.result = read(y);
                if (!c.perf)
                    pr.ref = ref64::attention(q.v, k.v, v.v, a.B, a.Lq, a.Lk, a.H, a.Hk, a.d, a.dv, p,
                                              a.rel_bias ? &bias.v : nullptr);
                pr.flop = 2.0 * double(a.B * a.Lq * a.H) * double(a.Lk) * double(a.d + a.dv);
                pr.bytes = nbytes({q.t, k.t, v.t}) + double(a.B * a.Lq * a.H * a.dv) * 4;
                pr.shape = cat(a.Lq, "x", a.Lk, " h", a.H, " d", a.d);
                return pr;
            }};
}

// ---- norms -----------------------------------------------------------------------------------
enum class NormKind { LayerPlain, LayerAffine, Rms };
OpCase norm(std::string name, NormKind kind, Shape shape, Layout layout = L::Contig, float mean = 0.f,
            bool sized = false) {
    const char* op = kind == NormKind::Rms ? "rms_norm" : "layer_norm";
    return {op, std::move(name), kF32, sized, Check::Close, [=](CaseCtx& c) {
                const Shape s = sized ? Shape{1, c.sizes.tokens, c.sizes.dim} : shape;
                const int64_t D = s.back();
                Input x = c.rand(F32, s, 3.f, layout, mean), w = c.rand(F32, {D}), b = c.rand(F32, {D});
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] {
                    *y = kind == NormKind::Rms           ? ops::rms_norm(x.t, w.t, 1e-6f)
                         : kind == NormKind::LayerAffine ? ops::layer_norm(x.t, &w.t, &b.t, 1e-6f)
                                                         : ops::layer_norm(x.t, nullptr, nullptr, 1e-6f);
                };
                p.result = read(y);
                if (!c.perf)
                    p.ref = kind == NormKind::Rms           ? ref64::rms_norm(x.v, D, w.v, 1e-6)
                            : kind == NormKind::LayerAffine ? ref64::layer_norm(x.v, D, &w.v, &b.v, 1e-6)
                                                            : ref64::layer_norm(x.v, D, nullptr, nullptr, 1e-6);
                p.bytes = 2 * nbytes({x.t});
                p.shape = shape_str(s);
                return p;
            }};
}

// norm_modulate (gated = false) or gated_residual (true) with the [B, D] rows taken from a
// [B, 6, D] modulation tensor (row stride 6·D), as the DiT block does.
OpCase modulate(std::string name, bool gated, int64_t B, int64_t Lt, int64_t D, Layout layout = L::Contig,
                bool sized = false) {
    return {gated ? "gated_residual" : "norm_modulate", std::move(name), kF32, sized, Check::Close, [=](CaseCtx& c) {
                const int64_t b = sized ? 1 : B, l = sized ? c.sizes.tokens : Lt, d = sized ? c.sizes.dim : D;
                Input x = c.rand(F32, {b, l, d}, 2.f, gated ? L::Contig : layout, gated ? 0.f : 4.f);
                Input y = c.rand(F32, {b, l, d}, 1.f, gated ? layout : L::Contig);
                Input m = c.rand(F32, {b, 6, d});
                const Tensor shift = m.t.select(1, 0), scale = m.t.select(1, 1), gate = m.t.select(1, 2);
                const Vec vshift = pick(m.v, b, 6 * d, 0, d), vscale = pick(m.v, b, 6 * d, d, d),
                          vgate = pick(m.v, b, 6 * d, 2 * d, d);
                Out o = std::make_shared<Tensor>(x.t);
                Prepared p;
                if (gated) {
                    p.run = [=] { ops::gated_residual(x.t, y.t, gate); };  // in place on x
                    if (!c.perf) p.ref = ref64::gated_residual(x.v, y.v, vgate, b, l, d);
                    p.bytes = 3 * nbytes({x.t});
                } else {
                    p.run = [=] { *o = ops::norm_modulate(x.t, shift, scale, 1e-6f); };
                    if (!c.perf) p.ref = ref64::norm_modulate(x.v, vshift, vscale, b, l, d, 1e-6);
                    p.bytes = 2 * nbytes({x.t});
                }
                p.result = read(o);
                p.shape = cat("[", b, ", ", l, ", ", d, "]");
                return p;
            }};
}

// ---- rope ------------------------------------------------------------------------------------
OpCase rope(std::string name, bool fused, int64_t B, int64_t Lt, int64_t H, int64_t d, std::vector<RopeGrid> grids,
            Layout layout = L::Contig, bool sized = false) {
    return {fused ? "rms_norm_rope" : "rope", std::move(name), kF32, sized, Check::Close, [=](CaseCtx& c) {
                int64_t b = B, l = Lt, h = H, hd = d;
                std::vector<RopeGrid> g = grids;
                if (sized)
                    b = 1, l = c.sizes.tokens, h = c.sizes.heads, hd = c.sizes.dim / c.sizes.heads, g = {grid_for(l)};
                int64_t P = 1;
                for (const RopeGrid& q : g) P = std::max({P, q.frame_offset + q.f, q.h, q.w});
                Input x = c.rand(F32, {b, l, h, hd}, 1.f, layout);
                Input table = c.rand(F32, {P, hd / 2, 2});  // any table: the op must look it up as documented
                Input w = c.rand(F32, {h * hd});
                Out y = std::make_shared<Tensor>();
                auto gp = std::make_shared<std::vector<RopeGrid>>(g);
                Prepared p;
                p.run = [=] {
                    *y = fused ? ops::rms_norm_rope(x.t, w.t, 1e-6f, *gp, table.t) : ops::rope(x.t, *gp, table.t);
                };
                p.result = read(y);
                if (!c.perf)
                    p.ref = ref64::rope(fused ? ref64::rms_norm(x.v, h * hd, w.v, 1e-6) : x.v, b, l, h, hd, g, table.v);
                p.bytes = 2 * nbytes({x.t});
                p.shape = cat("[", b, ", ", l, ", ", h, ", ", hd, "]");
                return p;
            }};
}

// ---- elementwise -----------------------------------------------------------------------------
OpCase unary(std::string name, Act act, Shape shape, Layout layout = L::Contig, bool extremes = false,
             bool sized = false, std::vector<OpSig> sigs = kF32) {
    return {"unary", std::move(name), std::move(sigs), sized, Check::Close, [=](CaseCtx& c) {
                const Shape s = sized ? Shape{c.sizes.tokens, c.sizes.ffn} : shape;
                const DType t = c.sig.in;
                Input x = c.rand(t, s, 4.f, layout);
                if (extremes) {  // saturation and cancellation regions, then random values
                    Vec v = {-100, -30, -10, -3, -1, -1e-3, 0, 1e-3, 0.5, 1, 3, 10, 30, 100};
                    v.resize(x.v.size());
                    std::copy(x.v.begin() + 14, x.v.end(), v.begin() + 14);
                    x = c.from(t, s, v, layout);
                }
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::unary(act, x.t); };
                p.result = read(y);
                if (!c.perf) p.ref = ref64::unary(act, x.v);
                p.bytes = 2 * nbytes({x.t});
                p.shape = shape_str(s);
                return p;
            }};
}

// clamp (ops/clamp.h): values on both sides of the bounds and on them, odd sizes, a strided view.
OpCase clamp(std::string name, Shape shape, float lo, float hi, Layout layout = L::Contig, bool sized = false) {
    return {"clamp", std::move(name), kF32, sized, Check::Close, [=](CaseCtx& c) {
                const Shape s = sized ? Shape{3, c.sizes.tokens, c.sizes.dim} : shape;
                Input x = c.rand(F32, s, 2.f, layout);
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::clamp(x.t, lo, hi); };
                p.result = read(y);
                if (!c.perf) {
                    p.ref = x.v;
                    for (double& v : p.ref) v = std::min(std::max(v, double(lo)), double(hi));
                }
                p.bytes = 2 * nbytes({x.t});
                p.shape = shape_str(s);
                return p;
            }};
}

// rgb8_to_video / video_to_rgb8 (ops/rgb8.h): exact formulas, so the reference is the f32 arithmetic
// itself written out step by step (no float64: a float64 chain would round differently) and the check
// is Exact. Every byte value 0..255 appears; the video input holds NaN, ±inf, ±1, values just inside
// and outside [−1, 1] and each byte's own value (the round trip's edge). Sized: a stream chunk, 4 × 832×480.
float ref_byte_to_unit(uint8_t v) {
    float x = float(v);
    x = x / 255.0f;
    x = x * 2.0f;
    return x - 1.0f;
}
uint8_t ref_unit_to_byte(float x) {
    x = std::isnan(x) ? -1.0f : (x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x));
    x = x + 1.0f;
    x = x / 2.0f;
    x = x * 255.0f;
    return uint8_t(x);
}
OpCase rgb8_to_video(std::string name, Shape shape, Layout layout = L::Contig, bool sized = false) {  // shape [n, H, W, 3]
    return {"rgb8_to_video", std::move(name), {{DType::U8, F32}}, sized, Check::Exact, [=](CaseCtx& c) {
                const Shape s = sized ? (c.perf ? Shape{4, 480, 832, 3} : Shape{4, 9, 13, 3}) : shape;
                const int64_t px = s[0] * s[1] * s[2];
                Vec v = c.ints(shape_numel(s), 0, 255);
                for (int64_t i = 0; i < std::min<int64_t>(256, int64_t(v.size())); ++i) v[size_t(i)] = double(i);
                Input x = c.from(DType::U8, s, v, layout);
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::rgb8_to_video(x.t); };
                p.result = read(y);
                if (!c.perf) {
                    p.ref.resize(size_t(3 * px));  // [3, n, H, W]: pixel i's channel ch at ch·px + i
                    for (int64_t i = 0; i < px; ++i)
                        for (int64_t ch = 0; ch < 3; ++ch)
                            p.ref[size_t(ch * px + i)] = double(ref_byte_to_unit(uint8_t(x.v[size_t(3 * i + ch)])));
                }
                p.bytes = double(px) * 3 * (1 + 4);
                p.shape = shape_str(s);
                return p;
            }};
}
OpCase video_to_rgb8(std::string name, Shape shape, Layout layout = L::Contig, bool sized = false) {  // shape [3, n, H, W]
    return {"video_to_rgb8", std::move(name), {{F32, DType::U8}}, sized, Check::Exact, [=](CaseCtx& c) {
                const Shape s = sized ? (c.perf ? Shape{3, 4, 480, 832} : Shape{3, 4, 9, 13}) : shape;
                const int64_t px = s[1] * s[2] * s[3];
                Input r = c.rand(F32, s, 0.8f);
                Vec v = r.v;
                const double inf = std::numeric_limits<double>::infinity();
                Vec special = {std::nan(""), inf, -inf, -1.0, 1.0, 0.0, -0.0, 1.0000001, -1.0000001, 0.99999994,
                               -0.99999994, 3.5, -7.25, 1e-30, -1e-30};
                for (int b = 0; b < 256; ++b) special.push_back(double(ref_byte_to_unit(uint8_t(b))));
                for (size_t i = 0; i < special.size() && i < v.size(); ++i) v[(i * 7919) % v.size()] = special[i];
                Input x = c.from(F32, s, v, layout);
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::video_to_rgb8(x.t); };
                p.result = read(y);
                if (!c.perf) {
                    p.ref.resize(size_t(3 * px));  // [n, H, W, 3]
                    for (int64_t i = 0; i < px; ++i)
                        for (int64_t ch = 0; ch < 3; ++ch)
                            p.ref[size_t(3 * i + ch)] = double(ref_unit_to_byte(float(x.v[size_t(ch * px + i)])));
                }
                p.bytes = double(px) * 3 * (4 + 1);
                p.shape = shape_str(s);
                return p;
            }};
}

OpCase binary(std::string name, BinaryOp op, Shape as, Shape bs, Layout la = L::Contig, bool sized = false,
              std::vector<OpSig> sigs = kF32) {
    return {"binary", std::move(name), std::move(sigs), sized, Check::Close, [=](CaseCtx& c) {
                const Shape sa = sized ? Shape{1, c.sizes.tokens, c.sizes.dim} : as,
                            sb = sized ? Shape{1, 1, c.sizes.dim} : bs;
                Input a = c.rand(c.sig.in, sa, 1.f, la), b = c.rand(c.sig.in, sb);
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::binary(op, a.t, b.t); };
                p.result = read(y);
                Shape ys;
                const Vec ref = ref64::binary(op, a.v, sa, b.v, sb, &ys);
                if (!c.perf) p.ref = ref;
                p.bytes = nbytes({a.t, b.t}) + double(dtype_size(c.sig.in)) * double(shape_numel(ys));
                p.shape = cat(shape_str(sa), " ", shape_str(sb));
                return p;
            }};
}

// lincomb of n inputs; alias: the output is the first input (the samplers' in-place update). t: the
// dtype of the output and the first input (bf16/f16: the LoRA patch of a half-precision weight).
OpCase lincomb(std::string name, int n, Shape shape, bool alias = false, bool sized = false, DType t = F32) {
    return {"lincomb", std::move(name), {{t, t}}, sized, Check::Close, [=](CaseCtx& c) {
                const Shape s = sized ? Shape{21 * c.sizes.tokens, 64} : shape;  // an 81-frame latent
                auto xs = std::make_shared<std::vector<Input>>();
                for (int k = 0; k < n; ++k) xs->push_back(c.rand(k == 0 ? t : F32, s));
                const std::vector<double> coef = {0.5, -1.25, 3.0, 1e-3};
                Out y = std::make_shared<Tensor>(alias ? (*xs)[0].t : c.be.empty(t, s));
                Prepared p;
                p.run = [=] {
                    const Tensor* in[4];
                    const float cf[4] = {0.5f, -1.25f, 3.0f, 1e-3f};
                    for (int k = 0; k < n; ++k) in[k] = &(*xs)[size_t(k)].t;
                    ops::lincomb(in, cf, n, *y);
                };
                p.result = read(y);
                std::vector<const Vec*> vin;
                for (const Input& x : *xs) vin.push_back(&x.v);
                if (!c.perf) p.ref = ref64::lincomb(vin, {coef.begin(), coef.begin() + n});
                const double half = t == F32 ? 4.0 : 2.0;
                p.bytes = double(shape_numel(s)) * (2 * half + 4.0 * (n - 1));
                p.shape = cat(shape_str(s), " n", n);
                return p;
            }};
}

// ---- layout ops ------------------------------------------------------------------------------
OpCase patchify(std::string name, Shape xs, int pt, int ph, int pw, Layout layout = L::Contig, bool sized = false) {
    return {"patchify", std::move(name), kF32, sized, Check::Exact, [=](CaseCtx& c) {
                Shape s = xs;
                if (sized) {
                    const RopeGrid g = grid_for(c.sizes.tokens);
                    s = {16, 1, 2 * g.h, 2 * g.w};
                }
                Input x = c.rand(F32, s, 1.f, layout);
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::patchify(x.t, pt, ph, pw); };
                p.result = read(y);
                if (!c.perf) p.ref = ref64::patchify(x.v, s[0], s[1], s[2], s[3], pt, ph, pw);
                p.bytes = 2 * nbytes({x.t});
                p.shape = shape_str(s);
                return p;
            }};
}

// unpatchify of f·h·w tokens plus `pad` padding rows (ignored).
OpCase unpatchify(std::string name, int64_t C, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw, int64_t pad,
                  bool sized = false) {
    return {"unpatchify", std::move(name), kF32, sized, Check::Exact, [=](CaseCtx& c) {
                int64_t gf = f, gh = h, gw = w;
                if (sized) {
                    const RopeGrid g = grid_for(c.sizes.tokens);
                    gf = 1, gh = g.h, gw = g.w;
                }
                const int64_t F = C * pt * ph * pw;
                Input x = c.rand(F32, {gf * gh * gw + pad, F});
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::unpatchify(x.t, gf, gh, gw, pt, ph, pw); };
                p.result = read(y);
                if (!c.perf) p.ref = ref64::unpatchify(x.v, C, gf, gh, gw, pt, ph, pw);
                p.bytes = 2 * nbytes({x.t});
                p.shape = cat(gf * gh * gw, "x", F);
                return p;
            }};
}

OpCase embedding(std::string name, int64_t V, int64_t D, int64_t n, bool sized = false) {
    return {"embedding", std::move(name), kKvSigs, sized, Check::Exact, [=](CaseCtx& c) {
                const int64_t d = sized ? c.sizes.dim : D, cnt = sized ? c.sizes.text : n;
                Input table = c.rand(c.sig.w, {V, d});
                Vec idv = c.ints(cnt, 0, V - 1);
                if (cnt > 2) idv[0] = 0, idv[1] = double(V - 1), idv[2] = idv[0];  // both ends, a repeat
                std::vector<int32_t> ids(idv.begin(), idv.end());
                Tensor idt = ops::from_host(c.be, DType::I32, {cnt}, ids.data());
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::embedding(table.t, idt); };
                p.result = read(y);
                if (!c.perf) p.ref = ref64::embedding(table.v, d, ids);
                p.bytes = double(cnt * d) * double(dtype_size(c.sig.w) + 4);
                p.shape = cat(cnt, " of ", V, "x", d);
                return p;
            }};
}

// ---- VAE ops ---------------------------------------------------------------------------------
Conv3dParams pads(int t0, int t1, int h0, int h1, int w0, int w1, int st = 1, int sh = 1, int sw = 1) {
    Conv3dParams p;
    p.pad_t0 = t0, p.pad_t1 = t1, p.pad_h0 = h0, p.pad_h1 = h1, p.pad_w0 = w0, p.pad_w1 = w1;
    p.stride_t = st, p.stride_h = sh, p.stride_w = sw;
    return p;
}
const Conv3dParams kCausal = pads(2, 0, 1, 1, 1, 1);  // the VAE's CausalConv3d 3×3×3

// x [C, T, H, W] (C = x[0]), w [O, C, kt, kh, kw]; sized: the VAE decoder's first 3×3×3 convolution
// at dim/4 channels over the token grid, two cached frames in front. prefix_t > 0: that many
// frames go in as the prefix (the reference convolves their concatenation). The weight's dtype is
// the signature's w (f16/bf16: the half-precision path).
const std::vector<OpSig> kConvSigs = {{F32, F32}, {F32, F16}, {F32, BF16}};
// also x, prefix and y in the weight's half dtype
const std::vector<OpSig> kConvHalfSigs = {{F32, F32}, {F32, F16}, {F32, BF16}, {F16, F16}, {BF16, BF16}};
OpCase conv3d(std::string name, Shape xs, Shape ws, Conv3dParams p, bool bias, Layout layout = L::Contig,
              bool sized = false, int64_t prefix_t = 0, std::vector<OpSig> sigs = kF32) {
    return {"conv3d", std::move(name), std::move(sigs), sized, Check::Close, [=](CaseCtx& c) {
                Shape sx = xs, sw = ws;
                Conv3dParams q = p;
                int64_t pt = prefix_t;
                if (sized) {
                    const RopeGrid g = grid_for(c.sizes.tokens);
                    const int64_t ch = c.sizes.dim / 4;
                    sx = {ch, 3, g.h, g.w}, sw = {ch, ch, 3, 3, 3}, q = pads(0, 0, 1, 1, 1, 1), pt = 2;
                }
                Shape sp = sx, sxx = sx;  // the prefix's frames [C, pt, H, W], x's [C, T − pt, H, W]
                sp[1] = pt, sxx[1] = sx[1] - pt;
                Input x = c.rand(c.sig.in, sxx, 1.f, layout), w = c.rand(c.sig.w, sw, 0.2f), b = c.rand(F32, {sw[0]});
                Input pre = pt > 0 ? c.rand(c.sig.in, sp) : Input{};
                Out y = std::make_shared<Tensor>();
                Prepared pr;
                pr.run = [=] { *y = ops::conv3d(x.t, w.t, bias ? &b.t : nullptr, q, pt > 0 ? &pre.t : nullptr); };
                pr.result = read(y);
                Shape ys;
                Vec xv = x.v;
                if (pt > 0 && !c.perf) {  // concat along T: each channel's prefix frames, then its x frames
                    const int64_t C = sx[0], plane = sx[2] * sx[3];
                    xv.clear();
                    for (int64_t ch = 0; ch < C; ++ch) {
                        xv.insert(xv.end(), pre.v.begin() + ch * pt * plane, pre.v.begin() + (ch + 1) * pt * plane);
                        xv.insert(xv.end(), x.v.begin() + ch * sxx[1] * plane, x.v.begin() + (ch + 1) * sxx[1] * plane);
                    }
                }
                Vec ref = c.perf ? Vec{} : ref64::conv3d(xv, sx, w.v, sw, bias ? &b.v : nullptr, q, &ys);
                if (c.perf)
                    ys = {sw[0], (sx[1] + q.pad_t0 + q.pad_t1 - sw[2]) / q.stride_t + 1,
                          (sx[2] + q.pad_h0 + q.pad_h1 - sw[3]) / q.stride_h + 1,
                          (sx[3] + q.pad_w0 + q.pad_w1 - sw[4]) / q.stride_w + 1};
                pr.ref = std::move(ref);
                pr.flop = 2.0 * double(shape_numel(ys)) * double(shape_numel(sw) / sw[0]);
                pr.bytes = nbytes({x.t, w.t}) + double(dtype_size(c.sig.in)) * double(shape_numel(ys));
                pr.shape = cat(shape_str(sx), " k", sw[2], sw[3], sw[4], " o", sw[0]);
                return pr;
            }};
}

// v, row-major over shape s, permuted like Tensor::permute(perm): out dim d is in dim perm[d].
Vec permuted(const Vec& v, const Shape& s, const std::vector<int>& perm) {
    const size_t nd = s.size();
    const Shape st = contiguous_strides(s);
    Shape os(nd);
    for (size_t d = 0; d < nd; ++d) os[d] = s[size_t(perm[d])];
    Vec out(v.size());
    std::vector<int64_t> idx(nd, 0);
    for (size_t i = 0; i < out.size(); ++i) {
        int64_t off = 0;
        for (size_t d = 0; d < nd; ++d) off += idx[d] * st[size_t(perm[d])];
        out[i] = v[size_t(off)];
        for (size_t d = nd; d-- > 0;) {  // next out index, last dim fastest
            if (++idx[d] < os[d]) break;
            idx[d] = 0;
        }
    }
    return out;
}

// Channels last (Conv3dParams::channels_last): xs and ws as in conv3d() ([C, T, H, W] counts, weight
// [O, C, kt, kh, kw]), but x goes in as [T − pt, H, W, C], its prefix as [pt, H, W, C], and y comes out
// [T', H', W', O]; the reference is the NCDHW float64 conv of the transposed values, transposed back.
// cl_weight: the weight stored [O, kt, kh, kw, C] (ops::conv_weight_channels_last, as TAEHV loads it)
// rather than contiguous [O, C, kt, kh, kw] (which a backend must rearrange per call).
OpCase conv3d_cl(std::string name, Shape xs, Shape ws, Conv3dParams p, bool bias, int64_t prefix_t, bool cl_weight,
                 Layout layout = L::Contig) {
    p.channels_last = true;
    return {"conv3d", std::move(name), kConvHalfSigs, false, Check::Close, [=](CaseCtx& c) {
                const int64_t C = xs[0], T = xs[1], H = xs[2], W = xs[3], pt = prefix_t;
                Input x = c.rand(c.sig.in, {T - pt, H, W, C}, 1.f, layout), wv = c.rand(c.sig.w, ws, 0.2f),
                      b = c.rand(F32, {ws[0]});
                Input pre = pt > 0 ? c.rand(c.sig.in, {pt, H, W, C}) : Input{};
                const Tensor w = cl_weight ? ops::conv_weight_channels_last(wv.t) : wv.t;
                Out y = std::make_shared<Tensor>();
                Prepared pr;
                pr.run = [=] { *y = ops::conv3d(x.t, w, bias ? &b.t : nullptr, p, pt > 0 ? &pre.t : nullptr); };
                pr.result = read(y);
                Vec thwc = pre.v;  // concat along T, the outermost dim: prefix frames, then x's
                thwc.insert(thwc.end(), x.v.begin(), x.v.end());
                Conv3dParams q = p;
                q.channels_last = false;
                Shape ys;
                const Vec ref = ref64::conv3d(permuted(thwc, {T, H, W, C}, {3, 0, 1, 2}), xs, wv.v, ws,
                                              bias ? &b.v : nullptr, q, &ys);  // [O, T', H', W']
                pr.ref = permuted(ref, ys, {1, 2, 3, 0});                      // → [T', H', W', O]
                pr.flop = 2.0 * double(shape_numel(ys)) * double(shape_numel(ws) / ws[0]);
                pr.shape = cat("[", T, ", ", H, ", ", W, ", ", C, "] k", ws[2], ws[3], ws[4], " o", ws[0]);
                return pr;
            }};
}

// Half signatures: x and y in f16/bf16 (gamma f32), the VAEs' half activations.
OpCase channel_rms_norm(std::string name, Shape xs, Act act, bool zero_column = false, bool sized = false,
                        std::vector<OpSig> sigs = kF32, Layout layout = L::Contig) {
    return {"channel_rms_norm", std::move(name), std::move(sigs), sized, Check::Close, [=](CaseCtx& c) {
                Shape s = xs;
                if (sized) {
                    const RopeGrid g = grid_for(c.sizes.tokens);
                    s = {c.sizes.dim / 4, 1, g.h, g.w};
                }
                const DType t = c.sig.in;
                Input x = c.rand(t, s, 1.f, layout);
                if (zero_column) {  // an all-zero position: the 1e-12 floor, output 0
                    Vec v = x.v;
                    for (int64_t ch = 0; ch < s[0]; ++ch) v[size_t(ch * (shape_numel(s) / s[0]))] = 0;
                    x = c.from(t, s, v, layout);
                }
                Input g = c.rand(F32, {s[0]});
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::channel_rms_norm(x.t, g.t, act); };
                p.result = read(y);
                if (!c.perf) p.ref = ref64::channel_rms_norm(x.v, s[0], g.v, act);
                p.bytes = 2 * nbytes({x.t});
                p.shape = shape_str(s);
                return p;
            }};
}

// channels_last: xs is [T, H, W, C] (the reference upsamples the [C, T, H, W] transpose, transposed back).
OpCase upsample2x(std::string name, Shape xs, Layout layout = L::Contig, bool sized = false,
                  std::vector<OpSig> sigs = kF32, bool channels_last = false) {
    return {"upsample2x", std::move(name), std::move(sigs), sized, Check::Exact, [=](CaseCtx& c) {
                Shape s = xs;
                if (sized) {
                    const RopeGrid g = grid_for(c.sizes.tokens);
                    s = {c.sizes.dim / 4, 1, g.h, g.w};
                }
                Input x = c.rand(c.sig.in, s, 1.f, layout);
                Out y = std::make_shared<Tensor>();
                Prepared p;
                p.run = [=] { *y = ops::upsample2x(x.t, channels_last); };
                p.result = read(y);
                if (!c.perf && channels_last)
                    p.ref = permuted(ref64::upsample2x(permuted(x.v, s, {3, 0, 1, 2}), s[3], s[0], s[1], s[2]),
                                     {s[3], s[0], 2 * s[1], 2 * s[2]}, {1, 2, 3, 0});
                else if (!c.perf)
                    p.ref = ref64::upsample2x(x.v, s[0], s[1], s[2], s[3]);
                p.bytes = 5 * nbytes({x.t});
                p.shape = shape_str(s);
                return p;
            }};
}

// ---- data movement ---------------------------------------------------------------------------
bool is_int(DType t) {
    return t == DType::I32 || t == DType::I64 || t == DType::U8;
}
const std::vector<OpSig> kCopySigs =
    all_sig_pairs({DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64, DType::U8});

// copy src (shape, layout) into dst: a fresh contiguous tensor, or (into_slice) the [.., 2 : 2 + n]
// slice of the last dim of a wider tensor filled beforehand, whose other elements must survive.
OpCase copy(std::string name, Shape shape, Layout layout, bool into_slice = false, std::vector<OpSig> sigs = kCopySigs,
            bool sized = false) {
    return {"copy", std::move(name), std::move(sigs), sized, Check::Exact, [=](CaseCtx& c) {
                const DType st = c.sig.in, dt = c.sig.w;
                Shape s = shape;
                if (sized) s = {c.sizes.tokens, c.sizes.heads, c.sizes.dim / c.sizes.heads};  // one frame's keys
                const int64_t n = shape_numel(s);
                // Integer-valued data when an integer type is involved: every dtype holds 0..120 exactly.
                Input x =
                    is_int(st) || is_int(dt) ? c.from(st, s, c.ints(n, 0, 120), layout) : c.rand(st, s, 1.f, layout);
                // dst inside `whole`; ref: whole's expected contents, at(i): where src element i lands in it.
                Shape ds = s;
                Tensor whole, dst;
                Vec ref;
                std::function<int64_t(int64_t)> at = [](int64_t i) { return i; };
                if (sized) {  // into frame slot 2 of a 6-frame cache
                    ds[0] *= 6;
                    whole = ops::full(c.be, dt, ds, 0.f);
                    dst = whole.slice(0, 2 * s[0], 3 * s[0]);
                    ref.assign(size_t(6 * n), 0.0);
                    at = [n](int64_t i) { return 2 * n + i; };
                } else if (into_slice) {
                    ds.back() += 4;
                    Input bg = c.from(dt, ds, c.ints(shape_numel(ds), 0, 9));
                    whole = bg.t, ref = bg.v;
                    dst = whole.slice(int(ds.size()) - 1, 2, 2 + s.back());
                    const int64_t inner = s.back(), wide = ds.back();
                    at = [inner, wide](int64_t i) { return (i / inner) * wide + 2 + i % inner; };
                } else {
                    whole = dst = c.be.empty(dt, s);
                    ref.assign(size_t(n), 0.0);
                }
                if (!c.perf)
                    for (int64_t i = 0; i < n; ++i) ref[size_t(at(i))] = ref64::round_to(dt, x.v[size_t(i)]);
                else
                    ref.clear();
                Prepared p;
                p.run = [=] { ops::copy(x.t, dst); };
                p.result = [whole] { return host_f64(whole); };
                p.ref = std::move(ref);
                p.bytes = double(n) * double(dtype_size(st) + dtype_size(dt));
                p.shape = shape_str(s);
                return p;
            }};
}

OpCase fill(std::string name, Shape shape) {
    return {"fill",
            std::move(name),
            {{F32, F32}, {F16, F32}, {BF16, F32}, {DType::F64, F32}, {DType::I32, F32}, {DType::I64, F32}, {DType::U8, F32}},
            false,
            Check::Exact,
            [=](CaseCtx& c) {
                Out y = std::make_shared<Tensor>(c.be.empty(c.sig.in, shape));
                Prepared p;
                const float value = dtype_info(c.sig.in).is_float ? 0.1f : 3.0f;  // a rounding case; an integer
                p.run = [=] { ops::fill(*y, value); };
                p.result = read(y);
                p.ref.assign(size_t(shape_numel(shape)), ref64::round_to(c.sig.in, double(value)));
                p.bytes = double(y->nbytes());
                p.shape = shape_str(shape);
                return p;
            }};
}

// One frame written into a KV cache of K frames with `sink` sink slots. The cache's sink slots are
// built far apart in similarity to the new frame (slot 1 the least similar), so the decision does
// not hang on rounding; threshold +2 always refreshes the least similar sink, −2 never does.
OpCase kv_sink_write(std::string name, double threshold, int64_t fixed, int64_t queue, int64_t ring,
                     bool sized = false) {
    return {"kv_sink_write", std::move(name), kKvSigs, sized, Check::Exact, [=](CaseCtx& c) {
                int64_t S = 7, N = 3, d = 64;
                const int64_t K = 5, sink = 3;
                if (sized) S = c.sizes.tokens, N = c.sizes.heads, d = c.sizes.dim / c.sizes.heads;
                const int64_t W = N * d, frame = S * W;
                Input kn = c.rand(F32, {S, N, d}), vn = c.rand(F32, {S, N, d});
                Input noise = c.rand(F32, {2, K * S, N, d}, 0.3f);
                const double alpha[3] = {0.9, -0.5, 0.3};
                Vec kc(size_t(K * frame)), vc(size_t(K * frame));
                for (int64_t i = 0; i < K * frame; ++i) {
                    const int64_t s = i / frame;
                    const double a = s < sink ? alpha[s] : 0.0;
                    kc[size_t(i)] = a * kn.v[size_t(i % frame)] + noise.v[size_t(i)];
                    vc[size_t(i)] = a * vn.v[size_t(i % frame)] + noise.v[size_t(K * frame + i)];
                }
                Input kct = c.from(c.sig.w, {K * S, N, d}, kc), vct = c.from(c.sig.w, {K * S, N, d}, vc);
                KvSinkWrite w;
                w.sink = sink, w.tokens = S, w.threshold = threshold, w.fixed_slot = fixed, w.queue_front = queue,
                w.ring_slot = ring;
                Tensor dec = c.be.empty(DType::I32, {2});
                Prepared p;
                p.run = [=] { ops::kv_sink_write(kn.t, vn.t, kct.t, vct.t, w, dec); };
                p.result = [=] {
                    Vec out = host_f64(dec), k = host_f64(kct.t), v = host_f64(vct.t);
                    out.insert(out.end(), k.begin(), k.end());
                    out.insert(out.end(), v.begin(), v.end());
                    return out;
                };
                if (!c.perf) {
                    Vec k = kct.v, v = vct.v;
                    const std::vector<int32_t> dc = ref64::kv_sink_write(kn.v, vn.v, k, v, W, w, c.sig.w);
                    p.ref = {double(dc[0]), double(dc[1])};
                    p.ref.insert(p.ref.end(), k.begin(), k.end());
                    p.ref.insert(p.ref.end(), v.begin(), v.end());
                }
                p.bytes =
                    2.0 * double(frame) * (4 + dtype_size(c.sig.w)) + 2.0 * double(sink * frame) * dtype_size(c.sig.w);
                p.shape = cat("[", S, ", ", N, ", ", d, "] into ", K, " frames");
                return p;
            }};
}

std::vector<OpCase> make_table() {
    std::vector<OpCase> t = {
        // linear: odd M/N/K (unaligned rows), each activation, bias or not, K = 1, views as x,
        // batch dims, the DiT width; sized rows are the DiT's projections.
        linear("linear_M1_N45_K67", {1, 45, 67, true}),
        linear("linear_M3_N45_K67_gelu_tanh", {3, 45, 67, true, Act::GeluTanh}),
        linear("linear_M37_N29_K67", {37, 29, 67}),
        linear("linear_M33_N40_K64_gelu_tanh", {33, 40, 64, true, Act::GeluTanh}),
        linear("linear_M19_N32_K40_gelu_erf", {19, 32, 40, true, Act::GeluErf}),
        linear("linear_M7_N48_K256_silu", {7, 48, 256, true, Act::Silu}),
        linear("linear_M130_N45_K67_silu", {130, 45, 67, false, Act::Silu}),
        linear("linear_M5_N64_K1", {5, 64, 1, true}),
        linear("linear_M257_N33_K31", {257, 33, 31, true}),
        linear("linear_transposed_x", {7, 9, 33, false, Act::None, L::Transposed, 3}),
        linear("linear_padded_x", {31, 17, 33, true, Act::None, L::Padded}),
        linear("linear_offset_x_batch", {5, 24, 48, true, Act::GeluTanh, L::Offset, 2}),
        linear("linear_M300_N1536_K1536", {300, 1536, 1536, true}, {{F32, F32}, {F32, BF16}, {BF16, BF16}}),
        linear("linear_qkv", {}, kLinearSigs, true, 0),
        linear("linear_ffn_up_gelu", {0, 0, 0, false, Act::GeluTanh}, kLinearSigs, true, 1),
        linear("linear_ffn_down", {}, kLinearSigs, true, 2),
        // linear on block-quantized weights: the integer path (M ≤ 16: one row, a 4-row tile plus a
        // remainder, the boundary, more W rows than one 16-row chunk) and the sgemm path (M 17, 33,
        // batch, views), K = 256·k and 32·k, odd N, every epilogue.
        qlinear("qlinear_M1_N45_K256", {1, 45, 256, true}),
        qlinear("qlinear_M7_N33_K512_gelu_tanh", {7, 33, 512, true, Act::GeluTanh}),
        qlinear("qlinear_M16_N17_K768", {16, 17, 768}),
        qlinear("qlinear_M17_N31_K256_silu", {17, 31, 256, true, Act::Silu}),
        qlinear("qlinear_M33_N45_K512", {33, 45, 512, true}),
        qlinear("qlinear_M33_N45_K512_exact", {33, 45, 512, true}, kQSigs, false, 0, true),
        qlinear("qlinear_M70_N160_K4352_two_k_blocks", {70, 160, 4352, true}),
        qlinear("qlinear_padded_x", {5, 19, 256, true, Act::None, L::Padded}),
        qlinear("qlinear_offset_x_batch", {3, 24, 256, true, Act::GeluErf, L::Offset, 2}),
        qlinear("qlinear_transposed_x_batch", {7, 24, 256, false, Act::None, L::Transposed, 3}),
        qlinear("qlinear_M1_N31_K96", {1, 31, 96, true}, kQ32Sigs),
        qlinear("qlinear_M6_N7_K32", {6, 7, 32}, kQ32Sigs),
        qlinear("qlinear_M37_N29_K160_silu", {37, 29, 160, true, Act::Silu}, kQ32Sigs),
        qlinear("qlinear_qkv", {}, kQSigs, true, 0),
        qlinear("qlinear_ffn_up_gelu", {0, 0, 0, false, Act::GeluTanh}, kQSigs, true, 1),
        qlinear("qlinear_ffn_down", {}, kQSigs, true, 2),

        // attention: k_lens, causal (bottom-right), windows, GQA, dv ≠ d, q/softmax scales, T5's
        // relative bias, rows that see no key, key/query tiles, views; the head dims and lengths of
        // the CUDA paths (cuDNN d 64/128, split-KV, generic d 40, GEMM path d ≥ 256).
        attention("attn_klens", {.B = 2, .Lq = 9, .Lk = 11, .H = 3, .Hk = 3, .d = 16, .dv = 16, .k_lens = {11, 6}}),
        attention("attn_gqa_causal_dv12", {.Lq = 13, .Lk = 13, .H = 2, .Hk = 1, .d = 8, .dv = 12, .causal = true}),
        attention("attn_causal_scales", {.B = 2,
                                         .Lq = 5,
                                         .Lk = 17,
                                         .H = 4,
                                         .Hk = 2,
                                         .k_lens = {17, 9},
                                         .causal = true,
                                         .q_scale = 0.5f,
                                         .softmax_scale = 0.3f}),
        attention("attn_window", {.Lq = 21, .Lk = 21, .H = 2, .Hk = 2, .d = 6, .dv = 6, .wl = 4, .wr = 1}),
        attention("attn_rel_bias_t5",
                  {.Lq = 7, .Lk = 7, .H = 3, .Hk = 3, .d = 4, .dv = 4, .softmax_scale = 1.f, .rel_bias = true}),
        attention("attn_rel_bias_causal", {.Lq = 4, .Lk = 9, .H = 2, .Hk = 2, .causal = true, .rel_bias = true}),
        attention("attn_key_tiles", {.Lq = 3, .Lk = 1100, .k_lens = {1037}}),
        attention("attn_query_tiles", {.Lq = 2100, .Lk = 5, .d = 4, .dv = 4}),
        attention("attn_causal_rows_without_keys", {.Lq = 6, .Lk = 4, .d = 4, .dv = 4, .causal = true}),
        attention("attn_permuted_q", {.B = 2, .Lq = 10, .Lk = 12, .H = 3, .Hk = 3, .q = L::Transposed}),
        attention("attn_d64_odd_klens",
                  {.B = 2, .Lq = 37, .Lk = 53, .H = 3, .Hk = 3, .d = 64, .dv = 64, .k_lens = {53, 20}}),
        attention("attn_d128_self", {.Lq = 200, .Lk = 200, .H = 2, .Hk = 2, .d = 128, .dv = 128}),
        attention("attn_d64_gqa_full_klens",
                  {.B = 2, .Lq = 50, .Lk = 90, .H = 4, .Hk = 2, .d = 64, .dv = 64, .k_lens = {90, 90}}),
        attention("attn_d128_cross_qscale",
                  {.Lq = 77, .Lk = 512, .H = 3, .Hk = 3, .d = 128, .dv = 128, .q_scale = 0.7f}),
        attention(
            "attn_d128_causal_klens",
            {.B = 2, .Lq = 70, .Lk = 130, .H = 2, .Hk = 2, .d = 128, .dv = 128, .k_lens = {130, 99}, .causal = true}),
        attention("attn_d64_window", {.Lq = 150, .Lk = 150, .H = 2, .Hk = 2, .d = 64, .dv = 64, .wl = 16, .wr = 8}),
        attention("attn_d128_gqa_causal_left",
                  {.Lq = 65, .Lk = 300, .H = 4, .Hk = 2, .d = 128, .dv = 128, .causal = true, .wl = 40}),
        attention("attn_empty_sample_scales", {.B = 2,
                                               .Lq = 40,
                                               .Lk = 77,
                                               .H = 2,
                                               .Hk = 2,
                                               .d = 64,
                                               .dv = 64,
                                               .k_lens = {0, 77},
                                               .q_scale = 0.5f,
                                               .softmax_scale = 0.2f}),
        attention("attn_d128_long_keys",
                  {.Lq = 300, .Lk = 1000, .H = 2, .Hk = 2, .d = 128, .dv = 128, .k_lens = {777}}),
        attention("attn_split_kv4", {.Lq = 200, .Lk = 4096, .H = 2, .Hk = 2, .d = 128, .dv = 128}),
        attention("attn_split_kv2_d64", {.Lq = 130, .Lk = 3000, .H = 3, .Hk = 3, .d = 64, .dv = 64}),
        attention("attn_d80_clip_heads", {.B = 2, .Lq = 257, .Lk = 257, .H = 3, .Hk = 3, .d = 80, .dv = 80}),
        attention("attn_d40_klens",
                  {.B = 2, .Lq = 33, .Lk = 45, .H = 3, .Hk = 3, .d = 40, .dv = 40, .k_lens = {45, 31}}),
        attention("attn_d32_dv48_gqa", {.Lq = 20, .Lk = 30, .H = 2, .Hk = 1, .d = 32, .dv = 48}),
        attention("attn_d64_rel_bias", {.Lq = 25, .Lk = 25, .H = 2, .Hk = 2, .d = 64, .dv = 64, .rel_bias = true}),
        attention("attn_d64_rel_bias_klens", {.B = 2,
                                              .Lq = 70,
                                              .Lk = 70,
                                              .H = 3,
                                              .Hk = 3,
                                              .d = 64,
                                              .dv = 64,
                                              .k_lens = {70, 41},
                                              .softmax_scale = 1.f,
                                              .rel_bias = true}),
        attention("attn_d40_rel_bias", {.Lq = 30, .Lk = 30, .H = 2, .Hk = 2, .d = 40, .dv = 40, .rel_bias = true}),
        attention("attn_d384_vae", {.Lq = 300, .Lk = 300, .d = 384, .dv = 384}),
        attention("attn_d256_dv192_masks", {.B = 2,
                                            .Lq = 90,
                                            .Lk = 130,
                                            .H = 2,
                                            .Hk = 1,
                                            .d = 256,
                                            .dv = 192,
                                            .k_lens = {130, 77},
                                            .causal = true,
                                            .q_scale = 0.5f}),
        attention("attn_d256_rel_bias", {.Lq = 40, .Lk = 50, .H = 2, .Hk = 2, .d = 256, .dv = 256, .rel_bias = true}),
        attention("attn_kv_cache_prefix_d128",
                  {.Lq = 97, .Lk = 291, .H = 3, .Hk = 3, .d = 128, .dv = 128, .k_lens = {200}, .kv = L::Offset}),
        attention("attn_kv_cache_prefix_gqa_d64",
                  {.Lq = 64, .Lk = 128, .H = 4, .Hk = 2, .d = 64, .dv = 64, .causal = true, .kv = L::Offset}),
        attention("attn_self", {.sized = 1}),
        attention("attn_cross", {.sized = 2}),
        attention("attn_cache6", {.sized = 3}),

        // norms: D = 1, odd, wide; a mean far from zero; strided rows.
        norm("rms_norm_D1", NormKind::Rms, {3, 5, 1}),
        norm("rms_norm_D7", NormKind::Rms, {3, 5, 7}),
        norm("rms_norm_D33_strided", NormKind::Rms, {3, 33}, L::Padded),
        norm("rms_norm_D260", NormKind::Rms, {3, 5, 260}),
        norm("rms_norm_D1536_mean4", NormKind::Rms, {2, 5, 1536}, L::Contig, 4.f),
        norm("rms_norm", NormKind::Rms, {}, L::Contig, 0.f, true),
        norm("layer_norm_plain_D7", NormKind::LayerPlain, {3, 5, 7}),
        norm("layer_norm_plain_D37_mean4", NormKind::LayerPlain, {2, 5, 37}, L::Contig, 4.f),
        norm("layer_norm_affine_D33_strided", NormKind::LayerAffine, {5, 33}, L::Padded),
        norm("layer_norm_affine_D260", NormKind::LayerAffine, {3, 5, 260}),
        norm("layer_norm_affine_D1536_mean4", NormKind::LayerAffine, {2, 5, 1536}, L::Contig, 4.f),
        norm("layer_norm", NormKind::LayerPlain, {}, L::Contig, 0.f, true),
        modulate("norm_modulate_D19", false, 2, 5, 19),
        modulate("norm_modulate_D4_strided_x", false, 2, 5, 4, L::Padded),
        modulate("norm_modulate_D1536", false, 2, 5, 1536),
        modulate("norm_modulate", false, 0, 0, 0, L::Contig, true),
        modulate("gated_residual_D19", true, 2, 5, 19),
        modulate("gated_residual_D37_strided_y", true, 2, 5, 37, L::Transposed),
        modulate("gated_residual_D1536", true, 2, 5, 1536),
        modulate("gated_residual", true, 0, 0, 0, L::Contig, true),

        // rope: head dims 20/64/128 (pair splits 4/3/3 …), padding tokens, a frame offset, views.
        rope("rope_d20_padding_offset", false, 2, 31, 3, 20, {{2, 3, 5, 0}, {1, 4, 7, 3}}),
        rope("rope_d64", false, 2, 50, 3, 64, {{2, 3, 4, 0}, {1, 5, 7, 3}}),
        rope("rope_d128_permuted", false, 2, 50, 3, 128, {{2, 3, 4, 0}, {1, 5, 7, 3}}, L::Transposed),
        rope("rope", false, 0, 0, 0, 0, {}, L::Contig, true),
        rope("rms_norm_rope_d20", true, 2, 31, 3, 20, {{2, 3, 5, 0}, {1, 4, 7, 3}}),
        rope("rms_norm_rope_d128_offset_x", true, 2, 50, 3, 128, {{2, 3, 4, 0}, {1, 5, 7, 3}}, L::Offset),
        rope("rms_norm_rope", true, 0, 0, 0, 0, {}, L::Contig, true),

        // elementwise
        unary("gelu_tanh_extremes", Act::GeluTanh, {271}, L::Contig, true),
        unary("gelu_erf_extremes", Act::GeluErf, {271}, L::Contig, true),
        unary("silu_extremes", Act::Silu, {271}, L::Contig, true, false, kActSigs),
        unary("identity_257", Act::None, {257}),
        unary("gelu_tanh_7x11x13_transposed", Act::GeluTanh, {7, 11, 13}, L::Transposed),
        unary("silu_1", Act::Silu, {1}),
        unary("tanh_extremes", Act::Tanh, {271}, L::Contig, true),
        unary("tanh_7x11x13_transposed", Act::Tanh, {7, 11, 13}, L::Transposed, false, false, kActSigs),
        unary("relu_extremes", Act::Relu, {271}, L::Contig, true, false, kActSigs),
        unary("relu_7x11x13_transposed", Act::Relu, {7, 11, 13}, L::Transposed),
        unary("relu_1", Act::Relu, {1}),
        unary("gelu_tanh", Act::GeluTanh, {}, L::Contig, false, true),
        clamp("clamp_257", {257}, -1.f, 1.f),
        clamp("clamp_7x11x13_transposed", {7, 11, 13}, 0.f, 1.f, L::Transposed),
        clamp("clamp_1_empty_range", {1}, 0.25f, 0.25f),
        clamp("clamp", {}, -1.f, 1.f, L::Contig, true),
        rgb8_to_video("rgb8_to_video_1x1x1", {1, 1, 1, 3}),
        rgb8_to_video("rgb8_to_video_n5_odd", {5, 7, 9, 3}),
        rgb8_to_video("rgb8_to_video_n1_odd_padded", {1, 13, 11, 3}, L::Padded),
        rgb8_to_video("rgb8_to_video_n2_offset", {2, 5, 33, 3}, L::Offset),
        rgb8_to_video("rgb8_to_video", {}, L::Contig, true),
        video_to_rgb8("video_to_rgb8_1x1x1", {3, 1, 1, 1}),
        video_to_rgb8("video_to_rgb8_n5_odd", {3, 5, 7, 9}),
        video_to_rgb8("video_to_rgb8_n1_odd_transposed", {3, 1, 13, 11}, L::Transposed),
        video_to_rgb8("video_to_rgb8_n2_offset", {3, 2, 5, 33}, L::Offset),
        video_to_rgb8("video_to_rgb8", {}, L::Contig, true),
        binary("add_broadcast_both", BinaryOp::Add, {1, 6, 5}, {3, 1, 5}, L::Contig, false, kActSigs),
        binary("add_same_shape_257", BinaryOp::Add, {3, 257}, {3, 257}, L::Contig, false, kActSigs),
        binary("mul_same_shape_odd", BinaryOp::Mul, {5, 7, 9}, {5, 7, 9}, L::Contig, false, kActSigs),
        binary("mul_broadcast_both", BinaryOp::Mul, {1, 6, 5}, {3, 1, 5}),
        binary("mul_column", BinaryOp::Mul, {2, 1, 5}, {3, 1}),
        binary("add_transposed_a", BinaryOp::Add, {6, 5}, {5}, L::Transposed, false, kActSigs),
        binary("add_padded_a_6d", BinaryOp::Add, {2, 1, 3, 1, 2, 33}, {3, 4, 1, 33}, L::Padded),
        binary("mul_scalar_257", BinaryOp::Mul, {257}, {1}),
        binary("add_bias", BinaryOp::Add, {}, {}, L::Contig, true),
        lincomb("lincomb_n1", 1, {3, 70001}),
        lincomb("lincomb_n2", 2, {3, 70001}),
        lincomb("lincomb_n3", 3, {31}),
        lincomb("lincomb_n4", 4, {3, 70001}),
        lincomb("lincomb_n2_in_place", 2, {257}, true),
        lincomb("lincomb", 3, {}, true, true),
        lincomb("lincomb_bf16_n2", 2, {5, 1031}, false, false, BF16),
        lincomb("lincomb_bf16_n4_in_place", 4, {257}, true, false, BF16),
        lincomb("lincomb_f16_n3", 3, {3, 70001}, false, false, F16),

        // layout ops
        patchify("patchify_122", {3, 2, 6, 10}, 1, 2, 2),
        patchify("patchify_222_odd_C", {5, 4, 6, 4}, 2, 2, 2),
        patchify("patchify_122_strided", {3, 2, 6, 10}, 1, 2, 2, L::Padded),
        patchify("patchify", {}, 1, 2, 2, L::Contig, true),
        unpatchify("unpatchify_122_pad3", 3, 2, 3, 5, 1, 2, 2, 3),
        unpatchify("unpatchify_222", 3, 2, 3, 2, 2, 2, 2, 0),
        unpatchify("unpatchify", 16, 0, 0, 0, 1, 2, 2, 0, true),
        embedding("embedding_V11_D7", 11, 7, 5),
        embedding("embedding_V257_D33", 257, 33, 31),
        embedding("embedding", 4096, 0, 0, true),

        // VAE ops (the CPU's im2col, Winograd and patch-tiling paths; CUDA's cuDNN cases)
        conv3d("conv_causal_333", {5, 3, 7, 9}, {6, 5, 3, 3, 3}, kCausal, true),
        conv3d("conv_causal_4x9x11", {5, 4, 9, 11}, {7, 5, 3, 3, 3}, kCausal, true),
        conv3d("conv_one_cached_frame", {4, 4, 6, 5}, {3, 4, 3, 3, 3}, pads(1, 0, 1, 1, 1, 1), true),
        conv3d("conv_cached_no_pad", {3, 5, 5, 6}, {4, 3, 3, 3, 3}, pads(0, 0, 1, 1, 1, 1), false),
        conv3d("conv_time_stride2", {6, 5, 4, 3}, {6, 6, 3, 1, 1}, pads(0, 0, 0, 0, 0, 0, 2), true),
        conv3d("conv_upsample_time", {4, 3, 5, 5}, {8, 4, 3, 1, 1}, pads(2, 0, 0, 0, 0, 0), true),
        conv3d("conv_down_s2", {5, 2, 9, 8}, {5, 5, 1, 3, 3}, pads(0, 0, 0, 1, 0, 1, 1, 2, 2), true),
        conv3d("conv_frame_3x3", {8, 2, 16, 12}, {16, 8, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1), true),
        conv3d("conv_pointwise", {9, 3, 5, 7}, {4, 9, 1, 1, 1}, {}, true),
        conv3d("conv_pointwise_strided", {3, 3, 5, 7}, {2, 3, 1, 1, 1}, pads(0, 0, 0, 0, 0, 0, 1, 2, 3), false),
        conv3d("conv_asymmetric_pads", {2, 3, 6, 7}, {3, 2, 2, 3, 2}, pads(1, 2, 0, 2, 3, 1), true),
        conv3d("conv_winograd_causal", {3, 5, 33, 29}, {4, 3, 3, 3, 3}, kCausal, true),
        conv3d("conv_winograd_asymmetric", {2, 3, 30, 27}, {3, 2, 3, 3, 3}, pads(1, 2, 0, 2, 3, 1), true),
        conv3d("conv_winograd_time_stride2", {4, 7, 18, 22}, {5, 4, 3, 3, 3}, pads(1, 0, 1, 1, 1, 1, 2), true),
        conv3d("conv_winograd_frames_without_taps", {3, 2, 20, 20}, {2, 3, 3, 3, 3}, pads(4, 0, 1, 1, 1, 1), true),
        conv3d("conv_winograd_frame_3x3", {7, 4, 32, 36}, {9, 7, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1), true),
        conv3d("conv_patch_tiling", {64, 2, 80, 70}, {5, 64, 3, 1, 5}, pads(2, 0, 0, 0, 2, 2), true),
        conv3d("conv_transposed_x", {4, 3, 9, 10}, {5, 4, 3, 3, 3}, kCausal, false, L::Transposed),
        conv3d("conv_prefix_2_of_6", {5, 6, 7, 9}, {6, 5, 3, 3, 3}, pads(0, 0, 1, 1, 1, 1), true, L::Contig, false, 2,
               kConvHalfSigs),
        conv3d("conv_prefix_1_odd_plane", {3, 3, 5, 7}, {4, 3, 3, 3, 3}, pads(1, 0, 1, 1, 1, 1), true, L::Contig, false,
               1, kConvSigs),
        conv3d("conv_half_causal_333", {8, 3, 12, 16}, {16, 8, 3, 3, 3}, kCausal, true, L::Contig, false, 0, kConvHalfSigs),
        conv3d("conv_half_pointwise_nobias", {9, 3, 5, 7}, {4, 9, 1, 1, 1}, {}, false, L::Contig, false, 0, kConvHalfSigs),
        conv3d("conv_half_io_past_frame", {16, 5, 10, 14}, {16, 16, 2, 3, 3}, pads(1, 0, 1, 1, 1, 1), true, L::Contig,
               false, 0, kConvHalfSigs),
        conv3d("conv_half_down_s2", {5, 2, 9, 8}, {5, 5, 1, 3, 3}, pads(0, 0, 0, 1, 0, 1, 1, 2, 2), true, L::Contig,
               false, 0, kConvSigs),
        conv3d("conv3d", {}, {}, {}, true, L::Contig, true, 0, kConvHalfSigs),
        // channels last ([T, H, W, C]), TAEHV's conv kinds at awkward sizes: {C, T, H, W}, w, pads, bias,
        // prefix frames, weight stored [O, kt, kh, kw, C]
        conv3d_cl("conv_cl_frame_3x3", {8, 3, 9, 7}, {16, 8, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1), true, 0, true),
        conv3d_cl("conv_cl_frame_3x3_plain_weight", {5, 2, 7, 9}, {7, 5, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1), true, 0,
                  false),
        conv3d_cl("conv_cl_past_frame_prefix", {16, 5, 10, 14}, {16, 16, 2, 3, 3}, pads(0, 0, 1, 1, 1, 1), true, 1,
                  true),
        conv3d_cl("conv_cl_past_frame_zero_pad", {5, 4, 9, 11}, {7, 5, 2, 3, 3}, pads(1, 0, 1, 1, 1, 1), true, 0, true),
        conv3d_cl("conv_cl_prefix_2_of_6", {6, 6, 5, 7}, {6, 6, 3, 3, 3}, pads(0, 0, 1, 1, 1, 1), false, 2, false),
        conv3d_cl("conv_cl_tpool_s2", {6, 6, 5, 7}, {6, 6, 2, 1, 1}, pads(0, 0, 0, 0, 0, 0, 2), false, 0, true),
        conv3d_cl("conv_cl_tpool_s3_drops_tail", {4, 7, 3, 5}, {4, 4, 3, 1, 1}, pads(0, 0, 0, 0, 0, 0, 3), false, 0,
                  true),
        conv3d_cl("conv_cl_down_s2", {5, 2, 9, 8}, {5, 5, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1, 1, 2, 2), false, 0, true),
        conv3d_cl("conv_cl_tgrow_pointwise", {9, 3, 5, 7}, {18, 9, 1, 1, 1}, {}, false, 0, true),
        conv3d_cl("conv_cl_rgb_in", {3, 2, 8, 12}, {10, 3, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1), true, 0, true),
        conv3d_cl("conv_cl_rgb_out", {10, 2, 8, 12}, {3, 10, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1), true, 0, true),
        conv3d_cl("conv_cl_strided_x", {6, 3, 5, 7}, {4, 6, 1, 3, 3}, pads(0, 0, 1, 1, 1, 1), true, 0, true, L::Padded),
        // Odd T·H·W takes CUDA's one-position-per-thread half kernel, even the paired one.
        channel_rms_norm("channel_rms_norm_5x3x7x9", {5, 3, 7, 9}, Act::None, true, false, kActSigs),
        channel_rms_norm("channel_rms_norm_C384", {384, 1, 3, 5}, Act::None, true, false, kActSigs),
        channel_rms_norm("channel_rms_norm_silu_3x2x33x31", {3, 2, 33, 31}, Act::Silu, true, false, kActSigs),
        channel_rms_norm("channel_rms_norm_silu_C1", {1, 2, 3, 5}, Act::Silu, false, false, kActSigs),
        channel_rms_norm("channel_rms_norm_silu_6x2x8x10", {6, 2, 8, 10}, Act::Silu, true, false, kActSigs),
        channel_rms_norm("channel_rms_norm_C96_even", {96, 1, 4, 6}, Act::None, false, false, kActSigs),
        channel_rms_norm("channel_rms_norm_silu_strided", {4, 2, 3, 6}, Act::Silu, false, false, kActSigs, L::Padded),
        channel_rms_norm("channel_rms_norm", {}, Act::Silu, false, true, kActSigs),
        upsample2x("upsample2x_3x2x5x7", {3, 2, 5, 7}, L::Contig, false, kActSigs),
        upsample2x("upsample2x_strided", {6, 2, 3, 5}, L::Padded, false, kActSigs),
        upsample2x("upsample2x_cl_2x3x5x7", {2, 3, 5, 7}, L::Contig, false, kActSigs, true),
        upsample2x("upsample2x_cl_one_channel_strided", {3, 4, 3, 1}, L::Padded, false, kActSigs, true),
        upsample2x("upsample2x", {}, L::Contig, true),

        // data movement: every dtype pair; strided sources and destinations
        copy("copy_257", {257}, L::Contig),
        copy("copy_permuted_src", {6, 4, 5}, L::Transposed),
        copy("copy_into_slice", {4, 5, 6}, L::Padded, true),
        copy("copy_offset_rows", {3, 2, 7, 33}, L::Offset, true),
        copy("copy_long_rows_f32_bf16", {3, 2, 7, 5000}, L::Padded, true, {{F32, F32}, {F32, BF16}}),
        copy("copy_70000_rows_f32_bf16", {70000, 2}, L::Padded, false, {{F32, F32}, {F32, BF16}, {BF16, F32}}),
        copy("copy_cache_slot", {}, L::Contig, false, {{F32, F32}, {F32, BF16}}, true),
        fill("fill_1", {1}),
        fill("fill_3x33", {3, 33}),
        fill("fill_257", {257}),
        kv_sink_write("kv_sink_refresh", 2.0, -1, -1, 4),
        kv_sink_write("kv_sink_ring", -2.0, -1, -1, 4),
        kv_sink_write("kv_sink_queued", -2.0, -1, 1, 4),
        kv_sink_write("kv_sink_filling", 2.0, 3, -1, -1),
        kv_sink_write("kv_sink_write", 2.0, -1, -1, 4, true),
    };
    for (OpCase& c : fp8_op_cases()) t.push_back(std::move(c));
    for (OpCase& c : backward_op_cases()) t.push_back(std::move(c));  // op_cases_backward.cpp
    return t;
}

}  // namespace

const std::vector<OpCase>& op_table() {
    static const std::vector<OpCase> t = make_table();
    return t;
}

}  // namespace wanrt::testing
