// Block-quantized weights on CUDA (label `gpu`: needs a CUDA device; cuda_linear_quant.cpp). The
// linear's numerics at every block type, odd shapes and views are op-table rows (test_backend_ops,
// qlinear_*); what stays here is what the table cannot see: the device decode equals the CPU's
// (cpu::dequantize_rows) rounded to bf16 bit for bit, the quantized linear is exactly the bf16
// linear on that decode, its scratch is reused, and a GGUF DiT stays quantized on the device —
// resident (a block's quantized weights packed into one buffer) or streamed (--offload) — and still
// matches its golden output.
#include <cstring>
#include <set>

#include "cpu/qmatmul.h"
#include "cuda/cuda_backend.h"
#include "io/gguf.h"
#include "io/gguf_dit.h"
#include "io/tensor_source.h"
#include "models/dit.h"
#include "models/dit_weights.h"
#include "models/synth.h"
#include "pipeline/demo.h"
#include "test_util.h"
#include "testing/ref_quantize.h"

namespace wanrt::test {
namespace {

const DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::shared_ptr<Backend> gpu() {
    if (cuda_device_count() == 0)
        throw std::runtime_error("no CUDA device: run the gpu-labelled tests on a GPU machine");
    return make_cuda_backend(0);
}

// Offsets of the f16 scale fields in one block of t (d, and dmin for Q4_K/Q5_K).
std::vector<size_t> scale_offsets(DType t) {
    switch (t) {
        case DType::Q4_K:
        case DType::Q5_K:
            return {0, 2};
        case DType::Q6_K:
            return {208};
        default:
            return {0};
    }
}

// N rows of K elements of t: the reference quantizer's blocks for most rows, then blocks of random
// bytes (every nibble, 6-bit scale/min and sign pattern) with finite f16 scales, among them
// negative, subnormal and zero ones. NaN/inf scales are left out: NaN payloads are not part of the
// contract (no real weight has them).
std::vector<uint8_t> awkward_blocks(DType t, int64_t N, int64_t K, uint64_t seed) {
    const std::vector<float> f = randn(size_t(N * K), seed, 0.3f);
    std::vector<uint8_t> bytes = testing::ref_quantize(t, f.data(), N * K);
    const size_t bb = dtype_info(t).block_bytes, nblocks = bytes.size() / bb;
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    auto next = [&] {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(s >> 33);
    };
    const uint16_t special[] = {0x0001, 0x83ff, 0x0000, 0x8000, 0x0200, 0xbc00, 0x7bff};  // subnormals, ±0, −1, max
    for (size_t b = nblocks / 2; b < nblocks; b += 2) {  // every other block of the second half
        uint8_t* p = bytes.data() + b * bb;
        for (size_t i = 0; i < bb; ++i) p[i] = uint8_t(next());
        size_t k = 0;
        for (size_t off : scale_offsets(t)) {
            uint16_t h = uint16_t(p[off] | p[off + 1] << 8);
            if (((h >> 10) & 0x1f) == 0x1f) h &= 0xbfff;  // inf/NaN → a finite exponent
            if ((b / 2 + k++) % 5 == 0) h = special[(b / 2) % 7];
            // keep the values modest: |scale| < 2^4 so that no product overflows to inf
            if (((h >> 10) & 0x1f) > 18) h = uint16_t((h & 0x83ff) | (18 << 10));
            p[off] = uint8_t(h), p[off + 1] = uint8_t(h >> 8);
        }
    }
    return bytes;
}

std::vector<uint16_t> download_u16(Backend& be, const Tensor& t) {
    std::vector<uint16_t> v(size_t(t.numel()));
    be.download(t, v.data());
    return v;
}

// The device decode is cpu::dequantize_rows's f32, rounded once to bf16, bit for bit: rows with odd
// byte lengths (Q8_0/Q4_0 at K = 96), several super-blocks per row, random bytes.
TEST(CudaQuant, DequantizeEqualsCpuRoundedToBf16) {
    auto be = gpu();
    for (DType t : kTypes) {
        const int64_t be_k = dtype_info(t).block_elems;
        for (const auto& [N, K] :
             std::vector<std::pair<int64_t, int64_t>>{{37, 3 * 256}, {5, 256}, {64, 1024}, {3, 96}}) {
            if (K % be_k) continue;
            const std::string what = cat(dtype_name(t), " [", N, ", ", K, "]");
            const std::vector<uint8_t> bytes = awkward_blocks(t, N, K, uint64_t(N * 1000 + K));
            std::vector<float> f(size_t(N * K));
            cpu::dequantize_rows(t, bytes.data(), N, K, f.data());
            std::vector<uint16_t> want(f.size());
            for (size_t i = 0; i < f.size(); ++i) want[i] = f32_to_bf16(f[i]);

            Tensor w = be->empty(t, {N, K});
            be->upload(w, bytes.data());
            Tensor d = cuda_dequantize_bf16(w);
            ASSERT_EQ(d.dtype(), DType::BF16);
            ASSERT_EQ(d.shape(), (Shape{N, K}));
            const std::vector<uint16_t> got = download_u16(*be, d);
            int64_t bad = 0, first = -1;
            for (size_t i = 0; i < got.size(); ++i)
                if (got[i] != want[i] && bad++ == 0) first = int64_t(i);
            EXPECT_EQ(bad, 0) << what << ": first difference at element " << first << " (row " << first / K << ", col "
                              << first % K << "): got 0x" << std::hex << (first >= 0 ? got[size_t(first)] : 0)
                              << ", want 0x" << (first >= 0 ? want[size_t(first)] : 0);
        }
    }
    Tensor dense = ops::from_host(*be, DType::F32, {2, 32}, std::vector<float>(64, 1.f).data());
    expect_error([&] { cuda_dequantize_bf16(dense); }, {"[cuda]", "block type"});
}

// linear on a quantized W is exactly linear on the bf16 decode of W (same GEMM, same inputs), with
// bias and activation, f32 and bf16 outputs, f32 and bf16 x; its per-call scratch is reused (the
// allocator's reserve does not grow over repeated calls).
TEST(CudaQuant, LinearEqualsBf16LinearOnTheDecodedWeight) {
    auto be = gpu();
    int seed = 40;
    for (DType t : kTypes) {
        for (const auto& [M, N, K] :
             std::vector<std::tuple<int64_t, int64_t, int64_t>>{{77, 45, 512}, {300, 256, 768}, {1, 33, 256}}) {
            const std::string what = cat(dtype_name(t), " M", M, " N", N, " K", K);
            const std::vector<float> wf = randn(size_t(N * K), ++seed, 0.2f);
            const std::vector<uint8_t> bytes = testing::ref_quantize(t, wf.data(), N * K);
            Tensor wq = be->empty(t, {N, K});
            be->upload(wq, bytes.data());
            Tensor wd = cuda_dequantize_bf16(wq);
            Tensor x = randn_tensor(*be, {M, K}, ++seed), b = randn_tensor(*be, {N}, ++seed);
            for (DType xt : {DType::F32, DType::BF16}) {
                Tensor xi = xt == DType::F32 ? x : ops::to_dtype(x, DType::BF16);
                const Tensor yq = ops::linear(xi, wq, &b, Activation::GeluTanh, xt);
                const Tensor yd = ops::linear(xi, wd, &b, Activation::GeluTanh, xt);
                ASSERT_EQ(yq.dtype(), xt) << what;
                EXPECT_EQ(ops::to_host_f32(yq), ops::to_host_f32(yd)) << what << " x " << dtype_name(xt);
            }
            // and against float64 on the exact decode (the bf16 GEMM bound)
            std::vector<float> wx(size_t(N * K));
            cpu::dequantize_rows(t, bytes.data(), N, K, wx.data());
            const std::vector<float> xh = ops::to_host_f32(x), bh = ops::to_host_f32(b);
            std::vector<double> ref(size_t(M * N));
            for (int64_t m = 0; m < M; ++m)
                for (int64_t n = 0; n < N; ++n) {
                    double acc = bh[size_t(n)];
                    for (int64_t k = 0; k < K; ++k)
                        acc += double(xh[size_t(m * K + k)]) * double(wx[size_t(n * K + k)]);
                    ref[size_t(m * N + n)] = acc;
                }
            EXPECT_CLOSE(ops::linear(x, wq, &b), ref, 1e-2, what + " vs float64");
        }
    }
    // scratch reuse: the same shape again and again reserves nothing new
    const int64_t N = 512, K = 1024;
    const std::vector<float> wf = randn(size_t(N * K), 7, 0.2f);
    Tensor wq = be->empty(DType::Q4_K, {N, K});
    be->upload(wq, testing::ref_quantize(DType::Q4_K, wf.data(), N * K).data());
    Tensor x = randn_tensor(*be, {64, K}, 8);
    ops::linear(x, wq);
    be->synchronize();
    const size_t reserved = be->memory_stats().reserved;
    for (int i = 0; i < 4; ++i) ops::linear(x, wq);
    be->synchronize();
    EXPECT_EQ(be->memory_stats().reserved, reserved) << "the dequantize scratch is not reused";
}

// The f32 weights of `f32` with the blocks' 2-D weights quantized to t (as a GGUF DiT stores them).
std::shared_ptr<TensorSource> quantized(const TensorSource& f32, DType t) {
    auto out = std::make_shared<MemoryTensorSource>(cat("synthetic ", dtype_name(t)));
    for (const std::string& n : f32.names()) {
        const StoredTensor* st = f32.find(n);
        const bool q = n.rfind("blocks.", 0) == 0 && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 &&
                       st->shape.size() == 2 && st->shape[1] % dtype_info(t).block_elems == 0;
        if (q)
            out->add(n, t, st->shape,
                     testing::ref_quantize(t, static_cast<const float*>(st->data), shape_numel(st->shape)).data());
        else
            out->add(n, st->dtype, st->shape, st->data);
    }
    return out;
}

// dit_q.gguf (every block type of dit_mix) opened for CUDA: the block linears stay in their GGUF
// types on the device (the file's bytes, nothing decoded at load), the weights take less device
// memory than the same model with bf16 linears, and the forward matches the float64 golden output
// within the bf16 bound of the CUDA DiT (test_dit_gpu.cpp).
TEST(CudaQuant, GgufDitStaysQuantizedOnTheDevice) {
    auto be = gpu();
    auto ref = open_fixture("gguf_ref.safetensors");
    const DitConfig want = DitConfig::from_json(ref->metadata().at("dit_config"), ref->origin());
    const std::string path = fixture_path("dit_q.gguf");
    ASSERT_TRUE(std::filesystem::exists(path)) << "fixture file missing: " << path;
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    const DitConfig cfg = infer_dit_config(*file, want.num_heads);
    EXPECT_EQ(gguf_blocks_for(*be), GgufBlocks::Keep);

    const size_t before = be->memory_stats().in_use;
    DitModel model(cfg, std::make_shared<GgufTensorSource>(file, GgufBlocks::Keep), *be);
    const size_t weights_bytes = be->memory_stats().in_use - before;
    int kept = 0;
    size_t bf16_bytes = 0, q_bytes = 0;
    std::set<const Buffer*> block0_buffers;  // packed: one buffer for a block's quantized weights (dit.cpp)
    for (auto& [name, l] : dit_linears(model.mutable_weights(), cfg)) {
        if (!l->w.defined()) continue;
        const std::string wname = name + ".weight";
        EXPECT_EQ(l->w.backend(), be.get()) << wname;
        DType stored;
        if (dtype_from_ggml_id(file->find_tensor(wname)->type_id, &stored)) {
            if (name.rfind("blocks.0.", 0) == 0) block0_buffers.insert(l->w.buffer().get());
            EXPECT_EQ(dtype_name(l->w.dtype()), std::string(dtype_name(stored))) << wname << " was decoded at load";
            EXPECT_EQ(l->w.nbytes(), file->find_tensor(wname)->nbytes) << wname;
            ++kept;
            q_bytes += l->w.nbytes();
            bf16_bytes += size_t(l->w.numel()) * 2;
        }
    }
    EXPECT_GE(kept, 10);  // 3 blocks × (Q8_0, Q4_0, K-quants)
    EXPECT_EQ(block0_buffers.size(), 1u) << "block 0's quantized weights are not packed into one buffer";
    // Q8_0 is 8.5 bits (0.53 of bf16), every other type less
    EXPECT_LT(double(q_bytes), 0.55 * double(bf16_bytes))
        << "block linears should take about half their bf16 bytes or less";
    EXPECT_GT(weights_bytes, 0u);

    DitSample s;
    s.x = load_f32(*be, *ref, "in.x0");
    s.context = load_f32(*be, *ref, "in.context0");
    s.t = float(load_f64(*ref, "in.t").at(0));
    auto outs = model.forward({s}, std::stoll(ref->metadata().at("seq_len")));
    ASSERT_EQ(outs.size(), 1u);
    EXPECT_CLOSE(outs[0], load_f64(*ref, "out.y0"), 1e-2, "cuda dit_q.gguf forward, quantized linears, out.y0");
}

// Streaming (models/dit_offload.h) moves block-typed weights as raw bytes: a quantized DiT streamed
// through 2 slots gives the resident forward bit for bit, and its plan counts the quantized bytes.
TEST(CudaQuant, OffloadedQuantizedDitEqualsResident) {
    auto be = gpu();
    DitConfig c = demo_config().dit;  // dim 256, 2 heads, ffn 512: every linear's K a multiple of 256
    c.num_layers = 4;
    for (DType t : {DType::Q4_K, DType::Q8_0}) {
        auto src = quantized(*synth_dit_memory(c, DType::F32, 5), t);
        DitSample s;
        s.x = randn_tensor(*be, {c.in_dim, 3, 8, 12}, 11);
        s.context = randn_tensor(*be, {20, c.text_dim}, 12);
        s.t = 600;
        auto run = [&](const DitModel& m) { return ops::to_host_f32(m.forward({s}, m.tokens_for(s.x.shape()))[0]); };
        std::vector<float> want;
        size_t resident_block = 0;
        {
            DitModel resident(c, src, *be);
            want = run(resident);
            for (auto& [name, l] : dit_linears(resident.mutable_weights(), c))
                if (name.rfind("blocks.0.", 0) == 0 && l->w.defined()) {
                    EXPECT_EQ(l->w.dtype(), t) << name;
                }
            resident_block = resident.offload_plan().block_bytes;
        }
        DitOffloadOptions o;
        o.enabled = true;  // max_vram 0: every block streams
        DitModel streamed(c, src, *be, "", o);
        ASSERT_TRUE(streamed.offloaded());
        EXPECT_EQ(streamed.offload_plan().block_bytes, resident_block);
        for (int rep = 0; rep < 2; ++rep) EXPECT_EQ(run(streamed), want) << dtype_name(t) << " forward " << rep;
    }
}

}  // namespace
}  // namespace wanrt::test
