// The backward ops (ops/backward.h) and the AdamW update (train/adamw.h) on the GPU: operand
// geometry, scratch buffers, write versions and registration; the kernels are in cuda_backward.cu.
// The front-ends hand over contiguous f32 operands (a bf16 weight is widened for dx there).
//
// Attention runs as the CPU kernel does, per sample and query tile against every key at once:
// S = scale·Q·Kᵀ for all key heads in one batched GEMM, the row kernels, then batched GEMMs for O
// (forward) or dV, dQ, dK (backward). A query tile is sized so that a score buffer stays under
// kScoreFloats; with GQA the query heads sharing a key head are walked one group member at a time.
// That f32 path (TF32 GEMMs at --matmul_precision high) is the oracle of medium's bf16 kernels:
// cuDNN's or our flash forward with its lse, and the flash backward of cuda_attention_bwd.cu.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_backward.h"
#include "cuda/cuda_common.h"
#include "ops/backward.h"
#include "train/adamw.h"

namespace wanrt {

namespace {

using namespace cuda;

constexpr int64_t kScoreFloats = int64_t(32) << 20;  // 128 MB per score buffer

Tensor scratch(CudaBackend& be, int64_t n) {
    return be.empty(DType::F32, {std::max<int64_t>(n, 1)});
}

void zero(CudaBackend& be, const Tensor& t) {
    CUDA_CHECK(cudaMemsetAsync(t.data<float>(), 0, size_t(t.numel()) * sizeof(float), be.stream()));
}

// ---- linear, activations, sums ------------------------------------------------------------------
// launch_group_col_sums with its split scratch from the backend's allocator.
void col_sums(CudaBackend& be, const float* a, const float* b, const float* mean, const float* scale, int64_t G,
              int64_t S, int64_t D, float* sum_a, float* sum_ab, bool accumulate) {
    const int64_t n = group_col_sums_work(G, S, D);
    const Tensor work = n ? scratch(be, 2 * n) : Tensor();  // n doubles
    launch_group_col_sums(a, b, mean, scale, G, S, D, sum_a, sum_ab, accumulate,
                          n ? reinterpret_cast<double*>(work.data<float>()) : nullptr, be.stream());
}

void linear_backward_cuda(CudaBackend& be, const LinearBackwardArgs& a) {
    const int64_t M = a.x.size(0), K = a.x.size(1), N = a.dy.size(1);
    if (a.dx.defined()) {  // dx [M, K] = dy [M, N] · w [N, K]
        GemmF32 g;
        g.M = M, g.N = K, g.K = N;
        g.A = a.dy.data<float>(), g.lda = N;
        g.B = a.w.data<float>(), g.ldb = K;
        g.C = a.dx.data<float>(), g.ldc = K;
        g.beta = a.acc_dx ? 1.f : 0.f;
        be.gemm().run_f32(g);
        be.wrote(a.dx);
    }
    if (a.dw.defined()) {  // dw [N, K] = dyᵀ [N, M] · x [M, K]
        GemmF32 g;
        g.ta = true;
        g.M = N, g.N = K, g.K = M;
        g.A = a.dy.data<float>(), g.lda = N;
        g.B = a.x.data<float>(), g.ldb = K;
        g.C = a.dw.data<float>(), g.ldc = K;
        g.beta = a.acc_dw ? 1.f : 0.f;
        be.gemm().run_f32(g);
        be.wrote(a.dw);
    }
    if (a.db.defined()) {
        col_sums(be, a.dy.data<float>(), nullptr, nullptr, nullptr, 1, M, N, a.db.data<float>(), nullptr, a.acc_db);
        be.wrote(a.db);
    }
}

void unary_backward_cuda(CudaBackend& be, const UnaryBackwardArgs& a) {
    launch_unary_backward(int(a.act), a.x.data<float>(), a.dy.data<float>(), a.dx.data<float>(), a.x.numel(),
                          be.stream());
    be.wrote(a.dx);
}

void sum_rows_cuda(CudaBackend& be, const SumRowsArgs& a) {
    col_sums(be, a.x.data<float>(), nullptr, nullptr, nullptr, 1, a.x.size(0), a.x.size(1), a.y.data<float>(), nullptr,
             a.accumulate);
    be.wrote(a.y);
}

// ---- norms ----------------------------------------------------------------------------------------
void rms_norm_backward_cuda(CudaBackend& be, const RmsNormBackwardArgs& a) {
    const int64_t rows = a.x.size(0), D = a.x.size(1);
    const Tensor rs = scratch(be, rows);
    launch_rms_norm_backward(a.x.data<float>(), a.w.data<float>(), a.dy.data<float>(), a.eps, a.dx.data<float>(),
                             rs.data<float>(), rows, D, be.stream());
    be.wrote(a.dx);
    if (a.dw.defined()) {  // dw = Σ_rows dy·x·r
        col_sums(be, a.dy.data<float>(), a.x.data<float>(), nullptr, rs.data<float>(), 1, rows, D, nullptr,
                 a.dw.data<float>(), false);
        be.wrote(a.dw);
    }
}

void layer_norm_backward_cuda(CudaBackend& be, const LayerNormBackwardArgs& a) {
    const int64_t rows = a.x.size(0), D = a.x.size(1);
    const Tensor mean = scratch(be, rows), rstd = scratch(be, rows);
    launch_layer_norm_backward(a.x.data<float>(), a.dy.data<float>(), a.w ? a.w->data<float>() : nullptr, nullptr, 0, 1,
                               a.eps, a.dx.data<float>(), mean.data<float>(), rstd.data<float>(), rows, D, be.stream());
    be.wrote(a.dx);
    if (a.dw.defined() || a.db.defined()) {  // dw = Σ dy·x̂, db = Σ dy
        col_sums(be, a.dy.data<float>(), a.x.data<float>(), mean.data<float>(), rstd.data<float>(), 1, rows, D,
                 a.db.defined() ? a.db.data<float>() : nullptr, a.dw.defined() ? a.dw.data<float>() : nullptr, false);
        if (a.dw.defined()) be.wrote(a.dw);
        if (a.db.defined()) be.wrote(a.db);
    }
}

void norm_modulate_backward_cuda(CudaBackend& be, const NormModulateBackwardArgs& a) {
    const int64_t G = a.x.size(0), S = a.x.size(1), D = a.x.size(2), rows = G * S;
    const Tensor mean = scratch(be, rows), rstd = scratch(be, rows);
    launch_layer_norm_backward(a.x.data<float>(), a.dy.data<float>(), nullptr, a.scale.data<float>(), a.scale.stride(0),
                               S, a.eps, a.dx.data<float>(), mean.data<float>(), rstd.data<float>(), rows, D,
                               be.stream());
    // per group: dshift = Σ dy, dscale = Σ dy·x̂
    col_sums(be, a.dy.data<float>(), a.x.data<float>(), mean.data<float>(), rstd.data<float>(), G, S, D,
             a.dshift.data<float>(), a.dscale.data<float>(), false);
    be.wrote(a.dx);
    be.wrote(a.dshift);
    be.wrote(a.dscale);
}

void gated_residual_backward_cuda(CudaBackend& be, const GatedResidualBackwardArgs& a) {
    const int64_t G = a.y.size(0), S = a.y.size(1), D = a.y.size(2);
    launch_gate_rows(a.dout.data<float>(), a.gate.data<float>(), a.gate.stride(0), S, a.dy.data<float>(), G * S, D,
                     be.stream());
    // dgate = Σ dout·y per group
    col_sums(be, a.dout.data<float>(), a.y.data<float>(), nullptr, nullptr, G, S, D, nullptr, a.dgate.data<float>(),
             false);
    be.wrote(a.dy);
    be.wrote(a.dgate);
}

// ---- rope, patches --------------------------------------------------------------------------------
void rope_backward_cuda(CudaBackend& be, const RopeBackwardArgs& a) {
    const Tensor neg = be.empty(DType::F32, a.table.shape());
    launch_negate_sin(a.table.data<float>(), neg.data<float>(), a.table.numel() / 2, be.stream());
    const std::vector<RopeGridDev> g = rope_grids(*a.grids, a.table);
    launch_rope(a.dy.data<float>(), g.data(), neg.data<float>(), a.table.size(0), a.dx.data<float>(), a.dy.size(0),
                a.dy.size(1), a.dy.size(2), a.dy.size(3), be.stream());
    be.wrote(a.dx);
}

void patchify_backward_cuda(CudaBackend& be, const PatchifyBackwardArgs& a) {
    const int64_t C = a.dx.size(0);
    launch_patchify_backward(a.dy.data<float>(), a.dx.data<float>(), C, a.dx.size(1) / a.pt, a.dx.size(2) / a.ph,
                             a.dx.size(3) / a.pw, a.pt, a.ph, a.pw, be.stream());
    be.wrote(a.dx);
}

void unpatchify_backward_cuda(CudaBackend& be, const UnpatchifyBackwardArgs& a) {
    launch_unpatchify_backward(a.dy.data<float>(), a.dx.data<float>(), a.dy.size(0), a.dx.size(0), a.f, a.h, a.w, a.pt,
                               a.ph, a.pw, be.stream());
    be.wrote(a.dx);
}

// ---- attention ------------------------------------------------------------------------------------
struct Geom {
    int64_t B, Lq, H, D, Lk, Hk, Dv, group;
    float scale;
};

Geom geom(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p) {
    Geom g{q.size(0), q.size(1), q.size(2), q.size(3), k.size(1), k.size(2), v.size(3), 0, 0.f};
    g.group = g.H / g.Hk;
    g.scale = float((p.softmax_scale > 0 ? double(p.softmax_scale) : 1.0 / std::sqrt(double(g.D))) * double(p.q_scale));
    return g;
}

int64_t query_tile(const Geom& g) {
    return std::clamp<int64_t>(kScoreFloats / std::max<int64_t>(g.Hk * g.Lk, 1), 1, std::max<int64_t>(g.Lq, 1));
}

AttnTile tile_of(const Geom& g, const AttentionParams& p, int64_t b, int64_t gi, int64_t q0, int64_t qn, float* lse) {
    AttnTile t;
    t.nb = g.Hk, t.qn = qn, t.q0 = q0, t.Lq = g.Lq, t.Lk = g.Lk;
    t.lk = p.k_lens.empty() ? g.Lk : std::clamp<int64_t>(p.k_lens[size_t(b)], 0, g.Lk);
    t.causal = p.causal, t.wl = p.window_left, t.wr = p.window_right;
    t.lse = lse + (b * g.H + gi) * g.Lq;  // head hk of this group member is h = hk·group + gi
    t.lse_head_stride = g.group * g.Lq;
    return t;
}

// S [Hk, qn, Lk] = scale·Q_tile·Kᵀ for query heads hk·group + gi of sample b.
void scores(CudaBackend& be, const Geom& g, const float* q, const float* k, int64_t b, int64_t gi, int64_t q0,
            int64_t qn, float* S) {
    GemmF32 m;
    m.tb = true;
    m.M = qn, m.N = g.Lk, m.K = g.D;
    m.A = q + ((b * g.Lq + q0) * g.H + gi) * g.D, m.lda = g.H * g.D, m.sa = g.group * g.D;
    m.B = k + b * g.Lk * g.Hk * g.D, m.ldb = g.Hk * g.D, m.sb = g.D;
    m.C = S, m.ldc = g.Lk, m.sc = qn * g.Lk;
    m.batch = int(g.Hk), m.alpha = g.scale;
    be.gemm().run_f32(m);
}

// --matmul_precision medium: the attention in bf16 on tensor cores, f32 accumulation. Unmasked
// attention takes cuDNN's fused engine (as the forward runs it) with its f32 softmax statistics as
// the lse; masks, and shapes cuDNN refuses (said once per process), our flash kernel, which writes
// the lse itself. Returns false, out and lse untouched, where neither applies (other head dims): the
// f32 path then runs.
AttnArgs attn_args(CudaBackend& be, const Geom& g, const AttentionParams& p) {
    AttnArgs a{};
    a.B = int(g.B), a.Lq = int(g.Lq), a.Lk = int(g.Lk), a.H = int(g.H), a.Hk = int(g.Hk), a.d = int(g.D),
    a.dv = int(g.Dv);
    a.k_lens = be.device_klens(p.k_lens, a.B);
    a.softmax_scale = g.scale;  // with q_scale: the kernels read q unscaled
    a.causal = p.causal, a.window_left = p.window_left, a.window_right = p.window_right;
    return a;
}

std::shared_ptr<Buffer> to_bf16(CudaBackend& be, const Tensor& t, float scale = 1.f) {
    auto b = be.alloc(size_t(t.numel()) * 2);
    launch_f32_to_bf16(t.data<float>(), static_cast<__nv_bfloat16*>(b->ptr()), t.numel(), scale, be.stream());
    return b;
}

const __nv_bfloat16* bf(const std::shared_ptr<Buffer>& b) {
    return static_cast<const __nv_bfloat16*>(b->ptr());
}

// Whether cuDNN's fused attention (forward with statistics, backward) has the case: no mask (k_lens
// all full), head dims equal, a multiple of 8 in [64, 128]. cuDNN may still refuse a shape at build.
bool cudnn_attention_case(const Geom& g, const AttentionParams& p) {
    bool unmasked = !(p.causal || p.window_left >= 0 || p.window_right >= 0) && g.Lk > 0;
    for (int32_t kl : p.k_lens) unmasked = unmasked && kl == g.Lk;
    return unmasked && g.D == g.Dv && g.D % 8 == 0 && g.D >= 64 && g.D <= 128;
}

bool attention_lse_bf16(CudaBackend& be, const AttentionLseArgs& a, const Geom& g) {
    const AttentionParams& p = *a.p;
    if (be.matmul_precision() != Backend::MatmulPrecision::Medium || p.rel_bias.defined()) return false;
    const bool cudnn = cudnn_attention_case(g, p);
    const bool flash = flash_attention_supported(int(g.D), int(g.Dv));
    if (!cudnn && !flash) return false;
    if (cudnn) {
        auto qb = to_bf16(be, a.q, p.q_scale), kb = to_bf16(be, a.k), vb = to_bf16(be, a.v);
        auto ob = be.alloc(size_t(a.out.numel()) * 2);
        const float scale = float(p.softmax_scale > 0 ? double(p.softmax_scale) : 1.0 / std::sqrt(double(g.D)));
        auto* op = static_cast<__nv_bfloat16*>(ob->ptr());
        if (be.sdpa().run(int(g.B), int(g.H), int(g.Hk), int(g.Lq), int(g.Lk), int(g.D), scale, bf(qb), bf(kb), bf(vb),
                          op, a.lse.data<float>())) {
            launch_bf16_to_f32(op, a.out.data<float>(), a.out.numel(), be.stream());
            be.wrote(a.out);
            be.wrote(a.lse);
            return true;
        }
        if (be.first_warning("sdpa_lse"))
            std::fprintf(stderr, "[%s] cuDNN attention with statistics unavailable (%s); attention_lse runs %s\n",
                         be.name().c_str(), be.sdpa().last_error().c_str(),
                         flash ? "on the built-in flash kernel" : "in f32/TF32");
        if (!flash) return false;
    }
    AttnArgs aa = attn_args(be, g, p);
    aa.lse = a.lse.data<float>();
    auto qb = to_bf16(be, a.q), kb = to_bf16(be, a.k), vb = to_bf16(be, a.v);
    launch_flash_attention(aa, bf(qb), bf(kb), bf(vb), a.out.data<float>(), be.stream());
    be.wrote(a.out);
    be.wrote(a.lse);
    return true;
}

void attention_lse_cuda(CudaBackend& be, const AttentionLseArgs& a) {
    const AttentionParams& p = *a.p;
    const Geom g = geom(a.q, a.k, a.v, p);
    if (attention_lse_bf16(be, a, g)) return;
    const int64_t qt = query_tile(g);
    const Tensor S = scratch(be, g.Hk * qt * g.Lk);
    const float *q = a.q.data<float>(), *k = a.k.data<float>(), *v = a.v.data<float>();
    for (int64_t b = 0; b < g.B; ++b)
        for (int64_t gi = 0; gi < g.group; ++gi)
            for (int64_t q0 = 0; q0 < g.Lq; q0 += qt) {
                const int64_t qn = std::min(qt, g.Lq - q0);
                scores(be, g, q, k, b, gi, q0, qn, S.data<float>());
                launch_attn_softmax_lse(S.data<float>(), tile_of(g, p, b, gi, q0, qn, a.lse.data<float>()),
                                        be.stream());
                GemmF32 m;  // O_tile [qn, Dv] = P · V
                m.M = qn, m.N = g.Dv, m.K = g.Lk;
                m.A = S.data<float>(), m.lda = g.Lk, m.sa = qn * g.Lk;
                m.B = v + b * g.Lk * g.Hk * g.Dv, m.ldb = g.Hk * g.Dv, m.sb = g.Dv;
                m.C = a.out.data<float>() + ((b * g.Lq + q0) * g.H + gi) * g.Dv, m.ldc = g.H * g.Dv,
                m.sc = g.group * g.Dv;
                m.batch = int(g.Hk);
                be.gemm().run_f32(m);
            }
    be.wrote(a.out);
    be.wrote(a.lse);
}

// cuDNN's fused attention backward where cudnn_attention_case holds and K, V have H heads: raw q with
// the scale that includes q_scale (the same S as the forward's), bf16 gradients widened to f32.
// False, nothing written, where cuDNN has no engine (said once per process).
bool attention_backward_cudnn(CudaBackend& be, const AttentionBackwardArgs& a, const Geom& g) {
    if (!cudnn_attention_case(g, *a.p) || g.H != g.Hk) return false;
    auto qb = to_bf16(be, a.q), kb = to_bf16(be, a.k), vb = to_bf16(be, a.v), ob = to_bf16(be, a.out),
         db = to_bf16(be, a.dout);
    auto dqb = be.alloc(size_t(a.dq.numel()) * 2), dkb = be.alloc(size_t(a.dk.numel()) * 2),
         dvb = be.alloc(size_t(a.dv.numel()) * 2);
    const Tensor sum = scratch(be, g.B * g.H * g.Lq), acc = scratch(be, g.B * g.H * g.Lq * g.D);
    auto out = [](const std::shared_ptr<Buffer>& b) { return static_cast<__nv_bfloat16*>(b->ptr()); };
    CudnnSdpa::Backward c{
        int(g.B),         int(g.H), int(g.Lq), int(g.Lk),           int(g.D), g.scale,  bf(qb),   bf(kb),
        bf(vb),           bf(ob),   bf(db),    a.lse.data<float>(), out(dqb), out(dkb), out(dvb), sum.data<float>(),
        acc.data<float>()};
    if (!be.sdpa().backward(c)) {
        if (be.first_warning("sdpa_bwd"))
            std::fprintf(stderr,
                         "[%s] cuDNN attention backward unavailable (%s); it runs on the built-in flash kernels\n",
                         be.name().c_str(), be.sdpa().last_error().c_str());
        return false;
    }
    launch_bf16_to_f32(bf(dqb), a.dq.data<float>(), a.dq.numel(), be.stream());
    launch_bf16_to_f32(bf(dkb), a.dk.data<float>(), a.dk.numel(), be.stream());
    launch_bf16_to_f32(bf(dvb), a.dv.data<float>(), a.dv.numel(), be.stream());
    be.wrote(a.dq);
    be.wrote(a.dk);
    be.wrote(a.dv);
    return true;
}

// --matmul_precision medium: cuDNN's fused backward for unmasked MHA, else the bf16 flash backward
// (cuda_attention_bwd.cu) where it has the shape (head dim 64 or 128, no GQA); false otherwise.
bool attention_backward_bf16(CudaBackend& be, const AttentionBackwardArgs& a, const Geom& g) {
    const AttentionParams& p = *a.p;
    if (be.matmul_precision() != Backend::MatmulPrecision::Medium || p.rel_bias.defined()) return false;
    if (attention_backward_cudnn(be, a, g)) return true;
    const AttnArgs aa = attn_args(be, g, p);
    if (!flash_attention_backward_supported(aa)) return false;
    auto qb = to_bf16(be, a.q), kb = to_bf16(be, a.k), vb = to_bf16(be, a.v), db = to_bf16(be, a.dout);
    const Tensor work = scratch(be, 2 * g.B * g.H * g.Lq);
    launch_flash_attention_backward(aa, bf(qb), bf(kb), bf(vb), bf(db), a.out.data<float>(), a.dout.data<float>(),
                                    a.lse.data<float>(), work.data<float>(), a.dq.data<float>(), a.dk.data<float>(),
                                    a.dv.data<float>(), be.stream());
    be.wrote(a.dq);
    be.wrote(a.dk);
    be.wrote(a.dv);
    return true;
}

// FlashAttention-2's backward per tile (the CPU kernel's comment): P = exp(S − lse), dP = dO·Vᵀ,
// dS = P∘(dP − D), dV += Pᵀ·dO, dQ = scale·dS·K, dK += scale·dSᵀ·Q.
void attention_backward_cuda(CudaBackend& be, const AttentionBackwardArgs& a) {
    const AttentionParams& p = *a.p;
    const Geom g = geom(a.q, a.k, a.v, p);
    if (attention_backward_bf16(be, a, g)) return;
    const int64_t qt = query_tile(g);
    const Tensor S = scratch(be, g.Hk * qt * g.Lk), dP = scratch(be, g.Hk * qt * g.Lk);
    zero(be, a.dk);
    zero(be, a.dv);
    const float *q = a.q.data<float>(), *k = a.k.data<float>(), *v = a.v.data<float>();
    const float *o = a.out.data<float>(), *dout = a.dout.data<float>();
    float *dq = a.dq.data<float>(), *dk = a.dk.data<float>(), *dv = a.dv.data<float>();
    for (int64_t b = 0; b < g.B; ++b)
        for (int64_t gi = 0; gi < g.group; ++gi)
            for (int64_t q0 = 0; q0 < g.Lq; q0 += qt) {
                const int64_t qn = std::min(qt, g.Lq - q0);
                const int64_t qoff = ((b * g.Lq + q0) * g.H + gi) * g.D, ooff = ((b * g.Lq + q0) * g.H + gi) * g.Dv;
                const int64_t koff = b * g.Lk * g.Hk * g.D, voff = b * g.Lk * g.Hk * g.Dv;
                scores(be, g, q, k, b, gi, q0, qn, S.data<float>());
                GemmF32 m;  // dP [qn, Lk] = dO_tile · Vᵀ
                m.tb = true;
                m.M = qn, m.N = g.Lk, m.K = g.Dv;
                m.A = dout + ooff, m.lda = g.H * g.Dv, m.sa = g.group * g.Dv;
                m.B = v + voff, m.ldb = g.Hk * g.Dv, m.sb = g.Dv;
                m.C = dP.data<float>(), m.ldc = g.Lk, m.sc = qn * g.Lk;
                m.batch = int(g.Hk);
                be.gemm().run_f32(m);
                launch_attn_backward_ds(S.data<float>(), dP.data<float>(), o + (b * g.Lq * g.H + gi) * g.Dv,
                                        dout + (b * g.Lq * g.H + gi) * g.Dv, g.group * g.Dv, g.H * g.Dv, g.Dv,
                                        tile_of(g, p, b, gi, q0, qn, a.lse.data<float>()), be.stream());
                GemmF32 dvm;  // dV [Lk, Dv] += Pᵀ · dO_tile
                dvm.ta = true;
                dvm.M = g.Lk, dvm.N = g.Dv, dvm.K = qn;
                dvm.A = S.data<float>(), dvm.lda = g.Lk, dvm.sa = qn * g.Lk;
                dvm.B = dout + ooff, dvm.ldb = g.H * g.Dv, dvm.sb = g.group * g.Dv;
                dvm.C = dv + voff, dvm.ldc = g.Hk * g.Dv, dvm.sc = g.Dv;
                dvm.batch = int(g.Hk), dvm.beta = 1.f;
                be.gemm().run_f32(dvm);
                GemmF32 dqm;  // dQ_tile [qn, D] = scale · dS · K
                dqm.M = qn, dqm.N = g.D, dqm.K = g.Lk;
                dqm.A = dP.data<float>(), dqm.lda = g.Lk, dqm.sa = qn * g.Lk;
                dqm.B = k + koff, dqm.ldb = g.Hk * g.D, dqm.sb = g.D;
                dqm.C = dq + qoff, dqm.ldc = g.H * g.D, dqm.sc = g.group * g.D;
                dqm.batch = int(g.Hk), dqm.alpha = g.scale;
                be.gemm().run_f32(dqm);
                GemmF32 dkm;  // dK [Lk, D] += scale · dSᵀ · Q_tile
                dkm.ta = true;
                dkm.M = g.Lk, dkm.N = g.D, dkm.K = qn;
                dkm.A = dP.data<float>(), dkm.lda = g.Lk, dkm.sa = qn * g.Lk;
                dkm.B = q + qoff, dkm.ldb = g.H * g.D, dkm.sb = g.group * g.D;
                dkm.C = dk + koff, dkm.ldc = g.Hk * g.D, dkm.sc = g.D;
                dkm.batch = int(g.Hk), dkm.alpha = g.scale, dkm.beta = 1.f;
                be.gemm().run_f32(dkm);
            }
    be.wrote(a.dq);
    be.wrote(a.dk);
    be.wrote(a.dv);
}

// ---- optimizer --------------------------------------------------------------------------------------
void adamw_step_cuda(CudaBackend& be, const AdamWStepArgs& a) {
    const AdamWHyper& h = a.h;
    const double bc1 = 1 - std::pow(h.beta1, double(a.step)), bc2 = 1 - std::pow(h.beta2, double(a.step));
    launch_adamw(a.p.data<float>(), a.g.data<float>(), a.m.data<float>(), a.v.data<float>(), a.p.numel(),
                 float(1 - h.lr * h.weight_decay), float(h.beta1), float(h.beta2), float(h.lr / bc1),
                 float(std::sqrt(bc2)), float(h.eps), be.stream());
    be.wrote(a.p);
    be.wrote(a.m);
    be.wrote(a.v);
}

const OpSig kF32{DType::F32, DType::F32};
const RegisterKernel<LinearBackwardArgs, CudaBackend> reg_linear_backward({kF32}, &linear_backward_cuda);
const RegisterKernel<UnaryBackwardArgs, CudaBackend> reg_unary_backward({kF32}, &unary_backward_cuda);
const RegisterKernel<AttentionLseArgs, CudaBackend> reg_attention_lse({kF32}, &attention_lse_cuda);
const RegisterKernel<AttentionBackwardArgs, CudaBackend> reg_attention_backward({kF32}, &attention_backward_cuda);
const RegisterKernel<RmsNormBackwardArgs, CudaBackend> reg_rms_norm_backward({kF32}, &rms_norm_backward_cuda);
const RegisterKernel<LayerNormBackwardArgs, CudaBackend> reg_layer_norm_backward({kF32}, &layer_norm_backward_cuda);
const RegisterKernel<NormModulateBackwardArgs, CudaBackend> reg_norm_modulate_backward({kF32},
                                                                                       &norm_modulate_backward_cuda);
const RegisterKernel<GatedResidualBackwardArgs, CudaBackend> reg_gated_residual_backward({kF32},
                                                                                         &gated_residual_backward_cuda);
const RegisterKernel<RopeBackwardArgs, CudaBackend> reg_rope_backward({kF32}, &rope_backward_cuda);
const RegisterKernel<PatchifyBackwardArgs, CudaBackend> reg_patchify_backward({kF32}, &patchify_backward_cuda);
const RegisterKernel<UnpatchifyBackwardArgs, CudaBackend> reg_unpatchify_backward({kF32}, &unpatchify_backward_cuda);
const RegisterKernel<SumRowsArgs, CudaBackend> reg_sum_rows({kF32}, &sum_rows_cuda);
const RegisterKernel<AdamWStepArgs, CudaBackend> reg_adamw({kF32}, &adamw_step_cuda);

}  // namespace

}  // namespace wanrt
