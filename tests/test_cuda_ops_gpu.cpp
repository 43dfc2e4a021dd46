// CUDA-only checks (label `gpu`: needs a CUDA device). Every op's numerics on CUDA — each dtype,
// odd shapes, views, the cuDNN / split-KV / GEMM attention paths — are in the op table
// (src/testing/op_table.h), which tests/test_backend_ops.cpp runs on every backend present; what
// stays here is CUDA behaviour the table cannot see: the bf16 activation chain being exactly one
// rounding, the backend's bf16 caches following in-place writes, the allocator reusing blocks,
// and loud errors.
#include <cmath>

#include "cuda/cuda_backend.h"
#include "ops/linear_fp8.h"
#include "test_util.h"
#include "testing/ref64.h"

namespace wanrt::test {
namespace {

double bf16r(double x) {
    return bf16_to_f32(f32_to_bf16(float(x)));
}

std::vector<double> d64(const std::vector<float>& v) {
    return {v.begin(), v.end()};
}

class CudaOps : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: run the gpu-labelled tests on a GPU machine";
        be = make_cuda_backend(0);
    }
    Tensor upload(const std::vector<float>& v, const Shape& s) { return ops::from_host(*be, DType::F32, s, v.data()); }

    std::shared_ptr<Backend> be;
};

// bf16 activations between linears (the FFN hidden state): y = linear(x) written in bf16 equals the
// f32 output rounded once; a bf16 x gives exactly what staging the f32 values would (same bf16 bits).
TEST_F(CudaOps, LinearBf16Chain) {
    struct Case {
        int64_t M, N, K;
        bool bias;
        Activation act;
    };
    const Case cases[] = {{37, 29, 67, true, Activation::GeluTanh},   // unaligned: fallback GEMM + post kernel
                          {300, 896, 192, true, Activation::GeluTanh},  // GELU_BIAS epilogue, bf16 D
                          {64, 96, 128, false, Activation::None},
                          {33, 40, 64, true, Activation::Silu}};        // activation in the post kernel
    int seed = 300;
    for (const Case& c : cases) {
        const std::string what = cat("bf16 chain M", c.M, " N", c.N, " K", c.K, " act", int(c.act));
        Tensor x = upload(randn(size_t(c.M * c.K), ++seed), {c.M, c.K}), b = upload(randn(size_t(c.N), ++seed), {c.N});
        Tensor w = ops::to_dtype(upload(randn(size_t(c.N * c.K), ++seed, 0.2f), {c.N, c.K}), DType::BF16);
        const Tensor* bp = c.bias ? &b : nullptr;
        Tensor y32 = ops::linear(x, w, bp, c.act);
        Tensor y16 = ops::linear(x, w, bp, c.act, DType::BF16);
        ASSERT_EQ(y16.dtype(), DType::BF16);
        std::vector<double> r;
        for (float v : ops::to_host_f32(y32)) r.push_back(bf16r(v));
        // one rounding of the same fp32 result; the fallback rounds before and after its post kernel
        EXPECT_CLOSE(y16, r, 4e-3, what + " (bf16 output)");
        // chained: bf16 input in place == the f32 input staged to bf16
        Tensor w2 = ops::to_dtype(upload(randn(size_t(24 * c.N), ++seed, 0.2f), {24, c.N}), DType::BF16);
        const std::vector<float> a = ops::to_host_f32(ops::linear(y16, w2)),
                                 e = ops::to_host_f32(ops::linear(ops::to_dtype(y16, DType::F32), w2));
        EXPECT_EQ(a, e) << what << " (bf16 input)";
    }
    Tensor x = upload(randn(4 * 8, 1), {4, 8});
    Tensor wf = upload(randn(8 * 8, 2), {8, 8});
    expect_error([&] { ops::linear(x, wf, nullptr, Activation::None, DType::F16); }, {"[linear]", "f16", "not supported"});
}

TEST_F(CudaOps, LinearCachesFollowWrites) {
    // The bf16 copies of weights and staged activations must follow in-place writes.
    const int64_t M = 8, N = 16, K = 32;
    auto xv = randn(size_t(M * K), 1), wv = randn(size_t(N * K), 2), w2 = randn(size_t(N * K), 3);
    Tensor x = upload(xv, {1, M, K}), w = upload(wv, {N, K});
    Tensor y1 = ops::linear(x, w);
    be->upload(w, w2.data());  // new weight contents in the same buffer
    Tensor y2 = ops::linear(x, w);
    const std::vector<double> r2 = ref64::linear(d64(xv), d64(w2), nullptr, Activation::None, M, N, K);
    EXPECT_CLOSE(y2, r2, 1e-2, "linear after weight re-upload");
    // x changed in place by gated_residual: the staged bf16 copy must be refreshed.
    auto gv = std::vector<float>(size_t(K), 1.0f);
    Tensor gate = upload(gv, {1, K});
    ops::gated_residual(x, x, gate);  // x = 2x
    Tensor y3 = ops::linear(x, w);
    std::vector<double> x2 = d64(xv);
    for (double& v : x2) v *= 2;
    const std::vector<double> r3 = ref64::linear(x2, d64(w2), nullptr, Activation::None, M, N, K);
    EXPECT_CLOSE(y3, r3, 1e-2, "linear after in-place x update");
    // Non-contiguous x through the ops front-end.
    Tensor xt = upload(xv, {K, M}).transpose(0, 1);  // [M, K] view with strides (1, M)
    std::vector<double> xtv(size_t(M * K));
    for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) xtv[size_t(m * K + k)] = xv[size_t(k * M + m)];
    EXPECT_CLOSE(ops::linear(xt, w), ref64::linear(xtv, d64(w2), nullptr, Activation::None, M, N, K), 1e-2,
                 "linear of a transposed x");
}

// FP8 (ops/linear_fp8.h; sm_89+): the quantized activation is kept for the next linear of the
// same x (q, k and v share it) and must follow in-place writes like the bf16 staging. Doubling x
// doubles its scale exactly and keeps every code, so y doubles exactly.
TEST_F(CudaOps, Fp8ActivationCacheFollowsWrites) {
    const int64_t M = 24, N = 32, K = 64;
    Tensor x = upload(randn(size_t(M * K), 11), {1, M, K});
    Fp8Tensor w = ops::quantize_fp8(upload(randn(size_t(N * K), 12, 0.2f), {N, K}));
    const std::vector<float> y1 = ops::to_host_f32(ops::linear_fp8(x, w.q, w.scale));
    const std::vector<float> y1b = ops::to_host_f32(ops::linear_fp8(x, w.q, w.scale));  // the kept quantization
    EXPECT_EQ(y1, y1b);
    Tensor gate = upload(std::vector<float>(size_t(K), 1.0f), {1, K});
    ops::gated_residual(x, x, gate);  // x = 2x in place
    const std::vector<float> y2 = ops::to_host_f32(ops::linear_fp8(x, w.q, w.scale));
    ASSERT_EQ(y2.size(), y1.size());
    int off = 0;
    for (size_t i = 0; i < y1.size(); ++i) off += std::fabs(y2[i] - 2 * y1[i]) > 1e-6f * std::fabs(y1[i]) + 1e-30f;
    EXPECT_EQ(off, 0) << "linear_fp8 after x changed in place used a stale quantization";
    // The other activation in between drops the kept one; the weight's quantization on the device
    // equals the CPU's code for code (the op table checks this exactly, here on a large tensor).
    const std::vector<float> wv = randn(size_t(1536 * 256), 13, 0.05f);
    Fp8Tensor wg = ops::quantize_fp8(upload(wv, {1536, 256}));
    auto cpu = make_cpu_backend(2);
    Fp8Tensor wc = ops::quantize_fp8(ops::from_host(*cpu, DType::F32, {1536, 256}, wv.data()));
    std::vector<uint8_t> a(wg.q.nbytes()), b(wc.q.nbytes());
    be->synchronize();
    be->download(wg.q, a.data());
    cpu->download(wc.q, b.data());
    EXPECT_EQ(a, b) << "GPU and CPU e4m3 codes differ";
    EXPECT_EQ(ops::to_host_f32(wg.scale), ops::to_host_f32(wc.scale));
}

TEST_F(CudaOps, AllocatorReusesBlocks) {
    // The same op sequence twice: the second pass must not reserve more device memory.
    auto step = [&] {
        Tensor x = randn_tensor(*be, {2, 300, 256}, 80);
        Tensor w = randn_tensor(*be, {512, 256}, 81, 0.1f);
        Tensor h = ops::layer_norm(x, nullptr, nullptr, 1e-6f);
        Tensor y = ops::linear(h, w, nullptr, Activation::GeluTanh);
        be->synchronize();
    };
    step();
    const MemoryStats s1 = be->memory_stats();
    for (int i = 0; i < 3; ++i) step();
    const MemoryStats s2 = be->memory_stats();
    EXPECT_EQ(s1.reserved, s2.reserved) << "cudaMalloc on the hot path";
    EXPECT_GT(s2.peak, 0u);
}

TEST_F(CudaOps, ReleaseCachedMemoryBetweenStages) {
    // A stage's freed blocks stay reserved (cached by size) until the pipeline releases them; the peak
    // of the reserved memory is what the generate summary reports.
    const size_t base = be->memory_stats().reserved;
    {
        Tensor big = be->empty(DType::F32, {7, 1 << 20});  // 28 MiB, a size nothing else uses
        be->synchronize();
    }
    const MemoryStats held = be->memory_stats();
    EXPECT_GE(held.reserved, base + (size_t(28) << 20)) << "the freed block should stay cached";
    EXPECT_GE(held.peak_reserved, held.reserved);
    be->release_cached_memory();
    const MemoryStats after = be->memory_stats();
    EXPECT_EQ(after.reserved, after.in_use) << "cached blocks must go back to the driver";
    EXPECT_GE(after.peak_reserved, held.reserved) << "the peak survives the release";
    be->reset_peak_memory();
    EXPECT_EQ(be->memory_stats().peak_reserved, after.reserved);
}

TEST_F(CudaOps, ErrorsAreLoud) {
    expect_error([&] { make_cuda_backend(cuda_device_count()); }, {"[cuda]", "device"});
    EXPECT_TRUE(be->supports(Conv3dArgs::kName, DType::F32, DType::F32));
    EXPECT_TRUE(be->supports(LinearArgs::kName, DType::F32, DType::BF16));
    EXPECT_TRUE(be->supports(LinearArgs::kName, DType::BF16, DType::BF16));  // bf16 activations between linears
    EXPECT_FALSE(be->supports(LinearArgs::kName, DType::F16, DType::BF16));
    EXPECT_TRUE(be->supports(LinearFp8Args::kName, DType::F32, DType::F8E4M3));
    EXPECT_TRUE(be->supports(LinearFp8Args::kName, DType::BF16, DType::F8E4M3));
    EXPECT_TRUE(be->supports(AttentionArgs::kName, DType::F32, DType::BF16));  // a bf16 KV cache read in place
    // A signature without a kernel: the dispatcher's one-line error, not a wrong result.
    Tensor xh = be->empty(DType::F16, {2, 8});
    Tensor wb = be->empty(DType::BF16, {4, 8});
    Tensor y = be->empty(DType::F32, {2, 4});
    expect_error([&] { dispatch(*be, LinearArgs{xh, wb, nullptr, Activation::None, y}, {DType::F16, DType::BF16}); },
                 {"cuda", "linear", "f16"});
    // mixed k/v dtypes: refused by the front-end
    Tensor q64 = upload(randn(2 * 64, 1), {1, 2, 1, 64});
    Tensor k64 = upload(randn(3 * 64, 2), {1, 3, 1, 64});
    expect_error([&] { ops::attention(q64, k64, ops::to_dtype(k64, DType::BF16)); }, {"[attention]", "share a dtype"});
}

}  // namespace
}  // namespace wanrt::test
