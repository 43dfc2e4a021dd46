// Kernel timings on the GPU at the DiT's real sizes (label `gpu`): the bf16 GEMM of the FFN and
// self-attention over 32,760 tokens, each timed with CUDA events (median of 10 after 3 warm-ups)
// and checked for finite output. Prints ms and TFLOP/s; the thresholds only catch a broken path.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <vector>

#include "core/op_registry.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.h"
#include "models/dit.h"
#include "models/synth.h"
#include "models/t5.h"
#include "models/vae.h"
#include "test_util.h"

namespace wanrt::test {
namespace {

using namespace wanrt::cuda;

template <class F>
double median_ms(cudaStream_t s, F&& f, int warm = 3, int reps = 10) {
    for (int i = 0; i < warm; ++i) f();
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    std::vector<float> ms;
    for (int i = 0; i < reps; ++i) {
        CUDA_CHECK(cudaEventRecord(a, s));
        f();
        CUDA_CHECK(cudaEventRecord(b, s));
        CUDA_CHECK(cudaEventSynchronize(b));
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

__nv_bfloat16* random_bf16(size_t n, uint64_t seed, float scale) {
    std::vector<float> v = randn(n, seed, scale);
    std::vector<uint16_t> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = f32_to_bf16(v[i]);
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, n * 2));
    CUDA_CHECK(cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice));
    return static_cast<__nv_bfloat16*>(p);
}

bool all_finite(const float* d, size_t n) {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost));
    for (float x : h)
        if (!std::isfinite(x)) return false;
    return true;
}

TEST(CudaPerf, GemmAndAttentionAtDitSizes) {
    ASSERT_GT(cuda_device_count(), 0);
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreate(&s));
    void* ws = nullptr;
    CUDA_CHECK(cudaMalloc(&ws, 32 << 20));
    GemmEngine gemm(s, ws, 32 << 20);

    struct G {
        int64_t M, N, K;
        int act;
        const char* what;
    };
    const G gs[] = {{32760, 8960, 1536, 1, "ffn.0 (+bias+gelu)"},
                    {32760, 1536, 8960, 0, "ffn.2 (+bias)"},
                    {32760, 1536, 1536, 0, "q/k/v/o (+bias)"}};
    for (const G& g : gs) {
        auto* x = random_bf16(size_t(g.M * g.K), 1, 1.f);
        auto* w = random_bf16(size_t(g.N * g.K), 2, 0.02f);
        float *y = nullptr, *bias = nullptr;
        CUDA_CHECK(cudaMalloc(&y, size_t(g.M * g.N) * 4));
        CUDA_CHECK(cudaMalloc(&bias, size_t(g.N) * 4));
        CUDA_CHECK(cudaMemset(bias, 0, size_t(g.N) * 4));
        const double ms = median_ms(s, [&] { gemm.run(x, w, bias, g.act, y, g.M, g.N, g.K); });
        const double tf = 2.0 * g.M * g.N * g.K / (ms * 1e-3) / 1e12;
        std::printf("gemm %-20s %6lld x %5lld x %5lld: %8.3f ms  %6.1f TFLOP/s\n", g.what, (long long)g.M,
                    (long long)g.N, (long long)g.K, ms, tf);
        EXPECT_TRUE(all_finite(y, size_t(g.M * g.N)));
        EXPECT_GT(tf, 50.0);
        cudaFree(x), cudaFree(w), cudaFree(y), cudaFree(bias);
    }

    struct A {
        int B, Lq, Lk, H, d;
        const char* what;
    };
    const A as[] = {{1, 32760, 32760, 12, 128, "self-attn 480p 81f"},
                    {1, 32760, 512, 12, 128, "cross-attn text 512"},
                    {1, 4680, 32760, 12, 128, "causal block vs 21f cache"}};
    for (const A& c : as) {
        auto* q = random_bf16(size_t(c.B) * c.Lq * c.H * c.d, 3, 1.f);
        auto* k = random_bf16(size_t(c.B) * c.Lk * c.H * c.d, 4, 1.f);
        auto* v = random_bf16(size_t(c.B) * c.Lk * c.H * c.d, 5, 1.f);
        float* o = nullptr;
        CUDA_CHECK(cudaMalloc(&o, size_t(c.B) * c.Lq * c.H * c.d * 4));
        AttnArgs a{};
        a.B = c.B, a.Lq = c.Lq, a.Lk = c.Lk, a.H = c.H, a.Hk = c.H, a.d = c.d, a.dv = c.d;
        a.softmax_scale = 1.f / std::sqrt(float(c.d));
        a.window_left = a.window_right = -1;
        const double ms = median_ms(s, [&] { launch_flash_attention(a, q, k, v, o, s); });
        const double tf = 4.0 * c.B * c.H * double(c.Lq) * c.Lk * c.d / (ms * 1e-3) / 1e12;
        std::printf("flash %-26s B%d Lq %5d Lk %5d H %d d %d: %8.3f ms  %6.1f TFLOP/s\n", c.what, c.B, c.Lq, c.Lk, c.H,
                    c.d, ms, tf);
        EXPECT_TRUE(all_finite(o, size_t(c.B) * c.Lq * c.H * c.d));
        EXPECT_GT(tf, 20.0);

        // cuDNN's fused kernel on the same inputs: time it and compare with the flash output.
        const size_t n = size_t(c.B) * c.Lq * c.H * c.d;
        __nv_bfloat16* ob = nullptr;
        float* of = nullptr;
        CUDA_CHECK(cudaMalloc(&ob, n * 2));
        CUDA_CHECK(cudaMalloc(&of, n * 4));
        CudnnSdpa sdpa(s);
        const bool ok = sdpa.run(c.B, c.H, c.H, c.Lq, c.Lk, c.d, a.softmax_scale, q, k, v, ob);
        if (!ok) {
            std::printf("cudnn %-26s unavailable: %s\n", c.what, sdpa.last_error().c_str());
        } else {
            const double ms2 =
                median_ms(s, [&] { sdpa.run(c.B, c.H, c.H, c.Lq, c.Lk, c.d, a.softmax_scale, q, k, v, ob); });
            launch_bf16_to_f32(ob, of, int64_t(n), s);
            CUDA_CHECK(cudaStreamSynchronize(s));
            std::vector<float> h1(n), h2(n);
            CUDA_CHECK(cudaMemcpy(h1.data(), o, n * 4, cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(h2.data(), of, n * 4, cudaMemcpyDeviceToHost));
            double num = 0, den = 0;
            for (size_t i = 0; i < n; ++i) num += double(h1[i] - h2[i]) * (h1[i] - h2[i]), den += double(h2[i]) * h2[i];
            const double rel = std::sqrt(num / std::max(den, 1e-300));
            std::printf(
                "cudnn %-26s B%d Lq %5d Lk %5d H %d d %d: %8.3f ms  %6.1f TFLOP/s  flash vs cudnn rel-L2 %.2e\n",
                c.what, c.B, c.Lq, c.Lk, c.H, c.d, ms2,
                4.0 * c.B * c.H * double(c.Lq) * c.Lk * c.d / (ms2 * 1e-3) / 1e12, rel);
            EXPECT_LT(rel, 1e-2);
        }
        cudaFree(ob), cudaFree(of);
        cudaFree(q), cudaFree(k), cudaFree(v), cudaFree(o);
    }
    cudaFree(ws);
    cudaStreamDestroy(s);
}

// The training attention's backward (issue 23): cuDNN's fused backward against our flash backward on
// the same bf16 inputs, the forward's lse from the flash kernel. An awkward small shape for agreement,
// then the 1.3B self-attention at 480p 81 frames for speed (10·B·H·Lq·Lk·d FLOP per backward).
TEST(CudaPerf, AttentionBackwardCudnnVsFlash) {
    ASSERT_GT(cuda_device_count(), 0);
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreate(&s));
    struct A {
        int B, Lq, Lk, H, d;
        const char* what;
    };
    const A as[] = {{2, 200, 333, 3, 64, "awkward d64"},
                    {1, 1000, 1000, 2, 128, "d128"},
                    {1, 32760, 32760, 12, 128, "self-attn 480p 81f"}};
    for (const A& c : as) {
        const size_t nq = size_t(c.B) * c.Lq * c.H * c.d, nk = size_t(c.B) * c.Lk * c.H * c.d,
                     rows = size_t(c.B) * c.H * c.Lq;
        auto* q = random_bf16(nq, 21, 1.f);
        auto* k = random_bf16(nk, 22, 1.f);
        auto* v = random_bf16(nk, 23, 1.f);
        auto* dob = random_bf16(nq, 24, 1.f);
        float *o, *dof, *lse, *work, *g[3], *gc[3], *acc, *sum;
        __nv_bfloat16 *ob, *gb[3];
        CUDA_CHECK(cudaMalloc(&o, nq * 4));
        CUDA_CHECK(cudaMalloc(&dof, nq * 4));
        CUDA_CHECK(cudaMalloc(&lse, rows * 4));
        CUDA_CHECK(cudaMalloc(&work, 2 * rows * 4));
        CUDA_CHECK(cudaMalloc(&acc, nq * 4));
        CUDA_CHECK(cudaMalloc(&sum, rows * 4));
        CUDA_CHECK(cudaMalloc(&ob, nq * 2));
        const size_t n[3] = {nq, nk, nk};
        for (int i = 0; i < 3; ++i) {
            CUDA_CHECK(cudaMalloc(&g[i], n[i] * 4));
            CUDA_CHECK(cudaMalloc(&gc[i], n[i] * 4));
            CUDA_CHECK(cudaMalloc(&gb[i], n[i] * 2));
        }
        AttnArgs a{};
        a.B = c.B, a.Lq = c.Lq, a.Lk = c.Lk, a.H = c.H, a.Hk = c.H, a.d = c.d, a.dv = c.d;
        a.softmax_scale = 1.f / std::sqrt(float(c.d));
        a.window_left = a.window_right = -1;
        a.lse = lse;
        launch_flash_attention(a, q, k, v, o, s);
        launch_f32_to_bf16(o, ob, int64_t(nq), 1.f, s);
        launch_bf16_to_f32(dob, dof, int64_t(nq), s);
        const double flop = 10.0 * c.B * c.H * double(c.Lq) * c.Lk * c.d;
        auto flash = [&] { launch_flash_attention_backward(a, q, k, v, dob, o, dof, lse, work, g[0], g[1], g[2], s); };
        const double ms_flash = median_ms(s, flash, 1, 5);
        CudnnSdpa sdpa(s);
        const CudnnSdpa::Backward cb{c.B, c.H, c.Lq, c.Lk,  c.d,   a.softmax_scale, q,   k,  v,
                                     ob,  dob, lse,  gb[0], gb[1], gb[2],           sum, acc};
        const bool ok = sdpa.backward(cb);
        EXPECT_TRUE(ok) << c.what << ": cuDNN backward unavailable: " << sdpa.last_error();
        if (ok) {
            const double ms_cudnn = median_ms(
                s, [&] { sdpa.backward(cb); }, 1, 5);
            for (int i = 0; i < 3; ++i) launch_bf16_to_f32(gb[i], gc[i], int64_t(n[i]), s);
            CUDA_CHECK(cudaStreamSynchronize(s));
            const char* names[3] = {"dq", "dk", "dv"};
            std::printf(
                "attention backward %-20s B%d Lq %5d Lk %5d H %2d d %3d: flash %8.3f ms %6.1f TFLOP/s, "
                "cudnn %8.3f ms %6.1f TFLOP/s\n",
                c.what, c.B, c.Lq, c.Lk, c.H, c.d, ms_flash, flop / (ms_flash * 1e-3) / 1e12, ms_cudnn,
                flop / (ms_cudnn * 1e-3) / 1e12);
            for (int i = 0; i < 3; ++i) {
                std::vector<float> h1(n[i]), h2(n[i]);
                CUDA_CHECK(cudaMemcpy(h1.data(), g[i], n[i] * 4, cudaMemcpyDeviceToHost));
                CUDA_CHECK(cudaMemcpy(h2.data(), gc[i], n[i] * 4, cudaMemcpyDeviceToHost));
                double num = 0, den = 0;
                for (size_t j = 0; j < n[i]; ++j)
                    num += double(h1[j] - h2[j]) * (h1[j] - h2[j]), den += double(h1[j]) * h1[j];
                const double rel = std::sqrt(num / std::max(den, 1e-300));
                std::printf("  %s cudnn vs flash rel-L2 %.3e\n", names[i], rel);
                EXPECT_LT(rel, 2e-2) << c.what << " " << names[i];
                EXPECT_GT(den, 0) << c.what << " " << names[i] << " is all zeros";
            }
        }
        for (void* p : std::initializer_list<void*>{q, k, v, dob, o, dof, lse, work, acc, sum, ob}) cudaFree(p);
        for (int i = 0; i < 3; ++i) cudaFree(g[i]), cudaFree(gc[i]), cudaFree(gb[i]);
    }
    cudaStreamDestroy(s);
}

// The DiT case: Wan2.1-T2V-1.3B widths, all 30 blocks, 480p 81 frames (32,760 tokens),
// random bf16 weights, one sample with 120 text tokens. Times whole forwards (median of 5 after 2
// warm-ups, synchronised) and reports the allocator's peak while one forward runs.
TEST(CudaPerf, DitForward480p81f) {
    ASSERT_GT(cuda_device_count(), 0);
    auto be = make_cuda_backend(0);
    DitConfig cfg = DitConfig::preset("t2v-1.3B");
    DitModel model(cfg, synth_dit_memory(cfg, DType::BF16, 0), *be);
    DitSample smp;
    smp.x = randn_tensor(*be, {cfg.in_dim, 21, 60, 104}, 1);
    smp.context = randn_tensor(*be, {120, cfg.text_dim}, 2);
    smp.t = 999;
    const int64_t L = model.tokens_for(smp.x.shape()), D = cfg.dim, F = cfg.ffn_dim, T = cfg.text_len;
    const double flop = double(cfg.num_layers) * (4.0 * L * L * D + 4.0 * L * T * D +
                                                  2.0 * L * (6.0 * D * D + 2.0 * D * F) + 2.0 * T * 2.0 * D * D);
    be->synchronize();
    const MemoryStats before = be->memory_stats();
    std::vector<double> ms;
    for (int i = 0; i < 7; ++i) {
        be->reset_peak_memory();
        const auto t0 = std::chrono::steady_clock::now();
        auto out = model.forward({smp}, L);
        be->synchronize();
        const auto t1 = std::chrono::steady_clock::now();
        if (i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        if (i == 6) {
            std::vector<float> h = ops::to_host_f32(out[0]);
            int bad = 0;
            for (float v : h) bad += !std::isfinite(v);
            EXPECT_EQ(bad, 0);
        }
    }
    std::sort(ms.begin(), ms.end());
    const MemoryStats after = be->memory_stats();
    std::printf(
        "dit t2v-1.3B 480p 81f (%lld tokens), bf16 weights: median %.1f ms (min %.1f, max %.1f), %.1f TFLOP, "
        "%.1f TFLOP/s\n",
        (long long)L, ms[ms.size() / 2], ms.front(), ms.back(), flop / 1e12, flop / (ms[ms.size() / 2] * 1e-3) / 1e12);
    std::printf(
        "dit memory: weights+inputs %.2f GiB resident, peak in use during a forward %.2f GiB, reserved %.2f GiB\n",
        before.in_use / 1073741824.0, after.peak / 1073741824.0, after.reserved / 1073741824.0);

    // Per-op breakdown of one forward (the profiler synchronises after every op).
    OpProfiler prof;
    {
        DitModel pm(cfg, synth_dit_memory(cfg, DType::BF16, 0), *be);
        DitSample ps;
        ps.x = randn_tensor(*be, {cfg.in_dim, 21, 60, 104}, 1);
        ps.context = randn_tensor(*be, {120, cfg.text_dim}, 2);
        ps.t = 999;
        pm.forward({ps}, L);  // warm (plans, weight copies)
        be->synchronize();
        be->set_profiler(&prof);
        pm.forward({ps}, L);
        be->synchronize();
        be->set_profiler(nullptr);
        std::vector<std::pair<double, std::string>> rows;
        double total = 0;
        for (auto& [name, st] : prof.stats()) {
            rows.push_back(
                {st.ms, cat(name, " x", st.calls,
                            st.flop > 0 ? cat(" (", int(st.flop / (st.ms * 1e-3) / 1e12), " TFLOP/s)") : "")});
            total += st.ms;
        }
        std::sort(rows.rbegin(), rows.rend());
        std::printf("dit profile (per-op synchronised, total %.1f ms):", total);
        for (const auto& r : rows) std::printf(" %s %.1f ms;", r.second.c_str(), r.first);
        std::printf("\n");
    }
}

double time_median_ms(Backend& be, int warm, int reps, const std::function<void()>& fn) {
    for (int i = 0; i < warm; ++i) fn();
    be.synchronize();
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        be.synchronize();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

// The Wan VAE at its real width (dim 96), random weights: decode 21 latent frames (→ 81 frames
// 480×832) and encode 81 frames, chunked as the reference does (the model's own loop).
TEST(CudaPerf, Vae480p) {
    ASSERT_GT(cuda_device_count(), 0);
    std::shared_ptr<Backend> be = make_cuda_backend(0);
    VaeConfig cfg;
    auto vae = WanVae::load(synthetic_vae_weights(cfg, 1234), cfg, be);
    Tensor z = randn_tensor(*be, {cfg.z_dim, 21, 60, 104}, 3);
    Tensor video = randn_tensor(*be, {3, 81, 480, 832}, 4, 0.5f);
    be->reset_peak_memory();
    Tensor out;
    const double dec = time_median_ms(*be, 1, 2, [&] { out = vae->decode(z); });
    std::printf("vae decode 21 latent frames -> %s: median %.1f ms, peak in use %.2f GiB\n", out.describe().c_str(),
                dec, be->memory_stats().peak / 1073741824.0);
    std::vector<float> h = ops::to_host_f32(out);
    int bad = 0;
    for (float v : h) bad += !std::isfinite(v);
    EXPECT_EQ(bad, 0);
    out = Tensor();
    be->reset_peak_memory();
    Tensor mu;
    const double enc = time_median_ms(*be, 1, 2, [&] { mu = vae->encode(video); });
    std::printf("vae encode 81 frames -> %s: median %.1f ms, peak in use %.2f GiB\n", mu.describe().c_str(), enc,
                be->memory_stats().peak / 1073741824.0);

    // Where the time goes: one decode and one encode through the profiler (synchronised per op).
    OpProfiler prof;
    Tensor zp = randn_tensor(*be, {cfg.z_dim, 21, 60, 104}, 3);
    Tensor vp = randn_tensor(*be, {3, 81, 480, 832}, 4, 0.5f);
    for (int pass = 0; pass < 2; ++pass) {
        prof.reset();
        be->set_profiler(&prof);
        if (pass == 0)
            vae->decode(zp);
        else
            vae->encode(vp);
        be->synchronize();
        be->set_profiler(nullptr);
        std::vector<std::pair<double, std::string>> rows;
        double total = 0;
        for (auto& [name, st] : prof.stats()) {
            rows.push_back({st.ms, cat(name, " x", st.calls)});
            total += st.ms;
        }
        std::sort(rows.rbegin(), rows.rend());
        std::printf("vae %s profile (per-op synchronised, total %.1f ms):", pass == 0 ? "decode" : "encode", total);
        for (size_t i = 0; i < rows.size() && i < 8; ++i)
            std::printf(" %s %.1f ms;", rows[i].second.c_str(), rows[i].first);
        std::printf("\n");
    }
}

// cuDNN half convs in the VAE layout (NCDHW) and channels last (NDHWC) at TAEHV's and the Wan VAE
// decoder's shapes: which layout a half-precision VAE should keep between its convs (issue 17).
// Both layouts must give the same output (transposed), within f16 rounding.
TEST(CudaPerf, ConvLayoutsAtVaeShapes) {
    ASSERT_GT(cuda_device_count(), 0);
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreate(&st));
    struct C {
        int64_t C, O, T, H, W, kt, pad_t0;
        const char* what;
    };
    const C cs[] = {{64, 64, 8, 240, 416, 1, 0, "taehv memblock conv 64ch 240x416"},
                    {64, 64, 8, 240, 416, 2, 1, "taehv memblock past conv 64ch (kt 2)"},
                    {64, 64, 8, 480, 832, 1, 0, "taehv last conv 64ch 480x832"},
                    {128, 128, 8, 120, 208, 1, 0, "taehv 128ch 120x208"},
                    {256, 256, 8, 60, 104, 1, 0, "taehv 256ch 60x104"},
                    {96, 96, 4, 480, 832, 3, 2, "wan vae decoder 96ch 480x832 (kt 3)"},
                    {192, 192, 4, 240, 416, 3, 2, "wan vae decoder 192ch 240x416 (kt 3)"}};
    for (const C& c : cs) {
        CudnnConv3d conv(st);
        Conv3dShape s{};
        s.C = c.C, s.T = c.T, s.H = c.H, s.W = c.W, s.O = c.O, s.kt = c.kt, s.kh = 3, s.kw = 3;
        s.To = c.T + c.pad_t0 - c.kt + 1, s.Ho = c.H, s.Wo = c.W;
        s.pad[0] = c.pad_t0, s.pad[2] = s.pad[3] = s.pad[4] = s.pad[5] = 1;
        s.stride[0] = s.stride[1] = s.stride[2] = 1;
        s.dt = DevType::F16;
        const int64_t S = c.H * c.W, So = s.Ho * s.Wo, K = c.kt * 9;
        const size_t nx = size_t(c.C * c.T * S), nw = size_t(c.O * c.C * K), ny = size_t(c.O * s.To * So);
        const std::vector<float> xf = randn(nx, 11, 1.f), wf = randn(nw, 12, 1.f / std::sqrt(double(c.C * K)));
        std::vector<uint16_t> x(nx), xl(nx), w(nw), wl(nw);
        for (int64_t ch = 0; ch < c.C; ++ch)
            for (int64_t p = 0; p < c.T * S; ++p) {
                x[size_t(ch * c.T * S + p)] = f32_to_f16(xf[size_t(ch * c.T * S + p)]);
                xl[size_t(p * c.C + ch)] = x[size_t(ch * c.T * S + p)];
            }
        for (int64_t o = 0; o < c.O; ++o)
            for (int64_t ch = 0; ch < c.C; ++ch)
                for (int64_t k = 0; k < K; ++k) {
                    w[size_t((o * c.C + ch) * K + k)] = f32_to_f16(wf[size_t((o * c.C + ch) * K + k)]);
                    wl[size_t((o * K + k) * c.C + ch)] = w[size_t((o * c.C + ch) * K + k)];
                }
        void *dx, *dxl, *dw, *dwl, *dy, *dyl;
        for (auto [p, n] : {std::pair{&dx, nx}, {&dxl, nx}, {&dw, nw}, {&dwl, nw}, {&dy, ny}, {&dyl, ny}})
            CUDA_CHECK(cudaMalloc(p, n * 2));
        CUDA_CHECK(cudaMemcpy(dx, x.data(), nx * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dxl, xl.data(), nx * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dw, w.data(), nw * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dwl, wl.data(), nw * 2, cudaMemcpyHostToDevice));
        Conv3dShape sl = s;
        sl.channels_last = true;
        bool ok = true, okl = true;
        const double ms = median_ms(st, [&] { ok = ok && conv.run(s, dx, dw, dy); });
        const double msl = median_ms(st, [&] { okl = okl && conv.run(sl, dxl, dwl, dyl); });
        EXPECT_TRUE(ok) << c.what << ": " << conv.last_error();
        EXPECT_TRUE(okl) << c.what << " channels last: " << conv.last_error();
        std::vector<uint16_t> y(ny), yl(ny);
        CUDA_CHECK(cudaMemcpy(y.data(), dy, ny * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(yl.data(), dyl, ny * 2, cudaMemcpyDeviceToHost));
        double num = 0, den = 0;
        for (int64_t o = 0; o < c.O; ++o)
            for (int64_t p = 0; p < s.To * So; ++p) {
                const double a = f16_to_f32(y[size_t(o * s.To * So + p)]), b = f16_to_f32(yl[size_t(p * c.O + o)]);
                num += (a - b) * (a - b), den += a * a;
            }
        const double rel = std::sqrt(num / std::max(den, 1e-300));
        const double flop = 2.0 * double(c.O * c.C * K) * double(s.To * So);
        std::printf("conv f16 %-40s NCDHW %7.3f ms %6.1f TFLOP/s | NDHWC %7.3f ms %6.1f TFLOP/s | rel-L2 %.1e\n",
                    c.what, ms, flop / (ms * 1e-3) / 1e12, msl, flop / (msl * 1e-3) / 1e12, rel);
        EXPECT_LT(rel, 2e-3) << c.what;
        for (void* p : {dx, dxl, dw, dwl, dy, dyl}) cudaFree(p);
    }
    cudaStreamDestroy(st);
}

// umT5-XXL, full size with random bf16 weights (written once to /tmp: 11.4 GB), 512 tokens.
TEST(CudaPerf, T5Encode512) {
    ASSERT_GT(cuda_device_count(), 0);
    auto be = make_cuda_backend(0);
    const std::string dir = "/tmp/wanrt_t5";
    std::string path = dir + "/models_t5_umt5-xxl-enc-bf16.safetensors";
    if (!std::filesystem::exists(path)) {
        const auto t0 = std::chrono::steady_clock::now();
        path = write_synthetic_t5(dir, T5Config::umt5_xxl(), 0);
        std::printf("t5 synthetic checkpoint written in %.1f s\n",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    T5Encoder enc = T5Encoder::load_file(path, *be);
    std::mt19937 rng(1234);
    std::vector<int32_t> ids(512);
    for (auto& id : ids) id = int32_t(3 + rng() % uint32_t(enc.config.vocab - 3));
    ids.back() = 1;
    Tensor y;
    const double ms = time_median_ms(*be, 2, 5, [&] { y = enc.encode(ids); });
    const auto& c = enc.config;
    const double L = 512, flop = c.num_layers * (2 * L * (4.0 * c.dim * c.dim_attn + 3.0 * c.dim * c.dim_ffn) +
                                                 4 * L * L * c.dim_attn);
    std::printf("t5 umT5-XXL encode 512 tokens -> %s: median %.2f ms, %.1f TFLOP/s\n", y.describe().c_str(), ms,
                flop / (ms * 1e-3) / 1e12);
}

}  // namespace
}  // namespace wanrt::test
