// The attention op on the GPU: picks, per call, among cuDNN's fused SDPA (unmasked; split-KV for
// a 1-frame step that fills the card poorly), our bf16 flash kernel (masks, refused shapes), a
// GEMM-based path for head dims > 128 (the VAE) and the fp32 generic kernel (other head dims,
// rel_bias without flash). Kernels: cuda_attention.cu, cuDNN graph: cuda_sdpa.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

using namespace cuda;

// Large head dims (the VAE's single 384-wide head): per (sample, head), S = q·kᵀ and O = P·v as
// bf16 GEMMs with fp32 accumulation around a masked row softmax, in query chunks that keep S
// under 256 MB.
void attention_by_gemm(CudaBackend& be, AttnArgs a, float q_scale, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& out) {
    a.softmax_scale *= q_scale;
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(a.Lq, (int64_t(64) << 20) / std::max(1, a.Lk)));
    auto qh = be.alloc(size_t(chunk) * a.d * 2), kh = be.alloc(size_t(a.Lk) * a.d * 2),
         vt = be.alloc(size_t(a.dv) * a.Lk * 2);
    auto S = be.alloc(size_t(chunk) * a.Lk * 4), P = be.alloc(size_t(chunk) * a.Lk * 2),
         O = be.alloc(size_t(chunk) * a.dv * 4);
    auto* qp = static_cast<__nv_bfloat16*>(qh->ptr());
    auto* kp = static_cast<__nv_bfloat16*>(kh->ptr());
    auto* vp = static_cast<__nv_bfloat16*>(vt->ptr());
    auto strided2 = [](int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
        Strided s;
        s.ndim = 2;
        s.shape[0] = rows, s.shape[1] = cols, s.stride[0] = rs, s.stride[1] = cs;
        return s;
    };
    for (int b = 0; b < a.B; ++b)
        for (int h = 0; h < a.H; ++h) {
            const int hk = h / (a.H / a.Hk);
            // k [Lk, d] and vᵀ [dv, Lk] of this head, bf16 contiguous
            launch_copy(k.data<float>() + (int64_t(b) * a.Lk * a.Hk + hk) * a.d, DevType::F32,
                        strided2(a.Lk, a.d, int64_t(a.Hk) * a.d, 1), kp, DevType::BF16, int64_t(a.Lk) * a.d,
                        be.stream());
            launch_copy(v.data<float>() + (int64_t(b) * a.Lk * a.Hk + hk) * a.dv, DevType::F32,
                        strided2(a.dv, a.Lk, 1, int64_t(a.Hk) * a.dv), vp, DevType::BF16, int64_t(a.Lk) * a.dv,
                        be.stream());
            for (int64_t r0 = 0; r0 < a.Lq; r0 += chunk) {
                const int64_t rows = std::min<int64_t>(chunk, a.Lq - r0);
                launch_copy(q.data<float>() + ((int64_t(b) * a.Lq + r0) * a.H + h) * a.d, DevType::F32,
                            strided2(rows, a.d, int64_t(a.H) * a.d, 1), qp, DevType::BF16, rows * a.d, be.stream());
                be.gemm().run(qp, kp, nullptr, 0, static_cast<float*>(S->ptr()), rows, a.Lk, a.d);
                launch_attention_softmax(a, b, h, int(r0), int(rows), static_cast<const float*>(S->ptr()),
                                         static_cast<__nv_bfloat16*>(P->ptr()), be.stream());
                be.gemm().run(static_cast<const __nv_bfloat16*>(P->ptr()), vp, nullptr, 0,
                              static_cast<float*>(O->ptr()), rows, a.dv, a.Lk);
                const Strided src = strided2(rows, a.dv, a.dv, 1),
                              dst = strided2(rows, a.dv, int64_t(a.H) * a.dv, 1);
                launch_copy_strided(O->ptr(), DevType::F32, src,
                                    out.data<float>() + ((int64_t(b) * a.Lq + r0) * a.H + h) * a.dv, DevType::F32,
                                    dst, rows * a.dv, be.stream());
            }
        }
}

void attention_cuda(CudaBackend& be, const AttentionArgs& args) {
    const Tensor &q = args.q, &k = args.k, &v = args.v, &out = args.out;
    const AttentionParams& p = *args.p;
    be.need_f32(q, "attention");
    AttnArgs a{};
    a.B = int(q.size(0));
    a.Lq = int(q.size(1));
    a.H = int(q.size(2));
    a.d = int(q.size(3));
    a.Lk = int(k.size(1));
    a.Hk = int(k.size(2));
    a.dv = int(v.size(3));
    a.softmax_scale = p.softmax_scale != 0.f ? p.softmax_scale : 1.f / std::sqrt(float(a.d));
    a.causal = p.causal;
    a.window_left = p.window_left;
    a.window_right = p.window_right;
    a.k_lens = be.device_klens(p.k_lens, a.B);
    if (p.rel_bias.defined()) {
        be.need_f32(p.rel_bias, "attention rel_bias");
        WANRT_CHECK(p.rel_bias.is_contiguous() && p.rel_bias.numel() == int64_t(a.H) * (a.Lq + a.Lk - 1), "cuda",
                    "attention rel_bias must be contiguous [H, Lq + Lk - 1], got ", p.rel_bias.describe());
        a.rel_bias = p.rel_bias.data<float>();
    }
    const bool kv_bf16 = k.dtype() == DType::BF16;
    WANRT_CHECK(v.dtype() == k.dtype() && (kv_bf16 || k.dtype() == DType::F32), "cuda",
                "attention k/v must both be f32 or both bf16, got ", k.describe(), ", ", v.describe());
    if (kv_bf16 && !flash_attention_supported(a.d, a.dv)) {
        // The fp32 kernels of other head dims read f32 K/V: widen them (exact) and run those.
        Tensor kf = be.empty(DType::F32, k.shape()), vf = be.empty(DType::F32, v.shape());
        be.copy_tensor(k, kf);
        be.copy_tensor(v, vf);
        attention_cuda(be, AttentionArgs{q, kf, vf, args.p, out});
        return;
    }
    // Head dims between the flash kernel's 64 and 128 (the CLIP ViT-H's 80) run in bf16 too, as every
    // head dim ≥ 64 does: unmasked through cuDNN's fused kernel; masked, or refused by cuDNN, in fp32
    // below. Smaller head dims (tests, tiny models) stay fp32.
    const bool cudnn_only_dim = !flash_attention_supported(a.d, a.dv) && a.d == a.dv && a.d % 8 == 0 && a.d > 64 &&
                                a.d < 128;
    bool unmasked = !(a.causal || a.window_left >= 0 || a.window_right >= 0 || a.rel_bias) && a.Lk > 0;
    for (int32_t kl : p.k_lens) unmasked = unmasked && kl == a.Lk;
    if (cudnn_only_dim && unmasked) {
        auto qb = be.alloc(size_t(q.numel()) * 2), kb = be.alloc(size_t(k.numel()) * 2),
             vb = be.alloc(size_t(v.numel()) * 2), ob = be.alloc(size_t(out.numel()) * 2);
        auto bf = [](const std::shared_ptr<Buffer>& b) { return static_cast<__nv_bfloat16*>(b->ptr()); };
        launch_f32_to_bf16(q.data<float>(), bf(qb), q.numel(), p.q_scale, be.stream());
        launch_f32_to_bf16(k.data<float>(), bf(kb), k.numel(), 1.f, be.stream());
        launch_f32_to_bf16(v.data<float>(), bf(vb), v.numel(), 1.f, be.stream());
        if (be.sdpa().run(a.B, a.H, a.Hk, a.Lq, a.Lk, a.d, a.softmax_scale, bf(qb), bf(kb), bf(vb), bf(ob))) {
            launch_bf16_to_f32(bf(ob), out.data<float>(), out.numel(), be.stream());
            be.keep_staged(out, ob);
            return;
        }
    }
    if (flash_attention_supported(a.d, a.dv)) {
        // bf16 staging (bf16 K/V, e.g. a KV cache, are read in place); q_scale is applied before
        // rounding, as the reference scales q first.
        auto qb = be.alloc(size_t(q.numel()) * 2);
        std::shared_ptr<Buffer> kb, vb;
        auto* qp = static_cast<__nv_bfloat16*>(qb->ptr());
        launch_f32_to_bf16(q.data<float>(), qp, q.numel(), p.q_scale, be.stream());
        const __nv_bfloat16 *kp, *vp;
        if (kv_bf16) {
            kp = static_cast<const __nv_bfloat16*>(k.raw());
            vp = static_cast<const __nv_bfloat16*>(v.raw());
        } else {
            kb = be.alloc(size_t(k.numel()) * 2), vb = be.alloc(size_t(v.numel()) * 2);
            launch_f32_to_bf16(k.data<float>(), static_cast<__nv_bfloat16*>(kb->ptr()), k.numel(), 1.f, be.stream());
            launch_f32_to_bf16(v.data<float>(), static_cast<__nv_bfloat16*>(vb->ptr()), v.numel(), 1.f, be.stream());
            kp = static_cast<const __nv_bfloat16*>(kb->ptr());
            vp = static_cast<const __nv_bfloat16*>(vb->ptr());
        }
        // Unmasked attention (every k_len covers all keys) goes to cuDNN's fused kernel when it
        // has an engine for the shape; masks and refused shapes take our flash kernel.
        bool masked = a.causal || a.window_left >= 0 || a.window_right >= 0 || a.rel_bias;
        for (int32_t kl : p.k_lens) masked = masked || kl < a.Lk;
        bool done = false;
        const int ns = masked || a.B != 1 || a.d != a.dv ? 1 : be.split_kv_count(a.Lq, a.H, a.Lk);
        if (ns > 1) {
            // Split-KV: a 1-frame step has too few query tiles to fill the card in whole waves;
            // ns key ranges run as a batch of ns (same q), combined by their logsumexps.
            const size_t nq = size_t(q.numel());
            auto qs = be.alloc(nq * 2 * size_t(ns)), os = be.alloc(size_t(out.numel()) * 2 * size_t(ns)),
                 ls = be.alloc(size_t(a.H) * size_t(a.Lq) * 4 * size_t(ns));
            auto* qsp = static_cast<__nv_bfloat16*>(qs->ptr());
            for (int i = 0; i < ns; ++i)
                CUDA_CHECK(cudaMemcpyAsync(qsp + nq * size_t(i), qp, nq * 2, cudaMemcpyDeviceToDevice, be.stream()));
            if (be.sdpa().run(ns, a.H, a.Hk, a.Lq, a.Lk / ns, a.d, a.softmax_scale, qsp, kp, vp,
                              static_cast<__nv_bfloat16*>(os->ptr()), static_cast<float*>(ls->ptr()))) {
                auto ob = be.alloc(size_t(out.numel()) * 2);
                launch_attention_combine(static_cast<const __nv_bfloat16*>(os->ptr()),
                                         static_cast<const float*>(ls->ptr()), ns, a.Lq, a.H, a.d,
                                         out.data<float>(), static_cast<__nv_bfloat16*>(ob->ptr()), be.stream());
                be.keep_staged(out, ob);
                return;
            }
            be.disable_split_kv();  // no cuDNN engine with a logsumexp output here: stop splitting
            std::fprintf(stderr, "[%s] split-KV attention unavailable (%s); attention runs unsplit\n",
                         be.name().c_str(), be.sdpa().last_error().c_str());
        }
        if (!masked && a.Lk > 0) {
            auto ob = be.alloc(size_t(out.numel()) * 2);
            auto* op = static_cast<__nv_bfloat16*>(ob->ptr());
            done = be.sdpa().run(a.B, a.H, a.Hk, a.Lq, a.Lk, a.d, a.softmax_scale, qp, kp, vp, op);
            if (done) {
                launch_bf16_to_f32(op, out.data<float>(), out.numel(), be.stream());
                be.keep_staged(out, ob);
                return;
            } else if (be.first_warning("sdpa")) {
                std::fprintf(stderr, "[%s] cuDNN attention unavailable (%s); using the built-in flash kernel\n",
                             be.name().c_str(), be.sdpa().last_error().c_str());
            }
        }
        if (!done) launch_flash_attention(a, qp, kp, vp, out.data<float>(), be.stream());
    } else if (a.d > 128 || a.dv > 128) {
        attention_by_gemm(be, a, p.q_scale, q, k, v, out);
    } else {
        const float* bias = a.rel_bias;
        AttnArgs g = a;
        g.softmax_scale *= p.q_scale;
        launch_attention_generic(g, q.data<float>(), k.data<float>(), v.data<float>(), bias, out.data<float>(),
                                 be.stream());
    }
    be.wrote(out);
}

// q f32; K/V f32, or bf16 read in place (a bf16 KV cache; other head dims widen it first).
const RegisterKernel<AttentionArgs, CudaBackend> reg_attention({{DType::F32, DType::F32}, {DType::F32, DType::BF16}},
                                                               &attention_cuda);

}  // namespace

}  // namespace wanrt
