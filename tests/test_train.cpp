// Training pieces around the DiT backward: Wan's flow-matching objective (train/flow_match.h) and a
// whole training step (forward, loss, backward, AdamW) on the dit_grad fixture's model.
#include <algorithm>
#include <cmath>
#include <functional>

#include "core/timer.h"
#include "models/dit.h"
#include "models/synth.h"
#include "ops/backward.h"
#include "ops/ops.h"
#include "dit_grad_fixture.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/dit_backward.h"
#include "train/flow_match.h"

namespace wanrt::test {

namespace {

TEST(FlowMatch, TableIsDiffSynthsWanSchedule) {
    const FlowMatchTrainTable t = flow_match_table(5.0, 1000);
    ASSERT_EQ(t.sigmas.size(), 1000u);
    EXPECT_DOUBLE_EQ(t.sigmas[0], 1.0);  // the first entry is pure noise
    EXPECT_DOUBLE_EQ(t.timesteps[0], 1000.0);
    EXPECT_NEAR(t.sigmas[500], 5 * 0.5 / (1 + 4 * 0.5), 1e-15);      // s = 0.5
    EXPECT_NEAR(t.sigmas[999], 5 * 0.001 / (1 + 4 * 0.001), 1e-15);  // extra_one_step: σ = 0 is left out
    double sum = 0, lo = 1e9;
    for (size_t k = 0; k < t.weights.size(); ++k) {
        sum += t.weights[k];
        lo = std::min(lo, t.weights[k]);
        if (k) {
            EXPECT_LT(t.sigmas[k], t.sigmas[k - 1]);
        }
    }
    EXPECT_NEAR(sum, 1000.0, 1e-9);  // normalised to n
    EXPECT_NEAR(lo, 0.0, 1e-15);     // the smallest weight is shifted to 0
    // y = exp(−2((t − 500)/1000)²) peaks at t = 500: the weight there is the largest
    size_t kmax = 0;
    for (size_t k = 0; k < t.weights.size(); ++k)
        if (t.weights[k] > t.weights[kmax]) kmax = k;
    EXPECT_NEAR(t.timesteps[kmax], 500.0, 2.0);
}

TEST(FlowMatch, PairAndLossGradient) {
    auto be = make_cpu_backend(2);
    const FlowMatchTrainTable tab = flow_match_table();
    Tensor x0 = randn_tensor(*be, {3, 2, 4, 5}, 1), noise = randn_tensor(*be, {3, 2, 4, 5}, 2);
    Tensor pred = randn_tensor(*be, {3, 2, 4, 5}, 3);
    const int64_t k = 321;
    const FlowMatchPair p = flow_match_pair(tab, k, x0, noise);
    const std::vector<double> a = to_f64(x0), n = to_f64(noise), y = to_f64(pred);
    const double s = tab.sigmas[size_t(k)];
    std::vector<double> xt(a.size()), tg(a.size());
    for (size_t i = 0; i < a.size(); ++i) xt[i] = (1 - s) * a[i] + s * n[i], tg[i] = n[i] - a[i];
    EXPECT_CLOSE(p.x_t, xt, 1e-6, "x_t = (1 − σ)·x0 + σ·noise");
    EXPECT_CLOSE(p.target, tg, 1e-6, "target = noise − x0");
    EXPECT_EQ(p.weight, tab.weights[size_t(k)]);
    Tensor dpred;
    const double loss = flow_match_loss(pred, p.target, p.weight, &dpred);
    double l64 = 0;
    std::vector<double> g(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
        l64 += (y[i] - tg[i]) * (y[i] - tg[i]);
        g[i] = p.weight * 2 * (y[i] - tg[i]) / double(y.size());
    }
    EXPECT_NEAR(loss, p.weight * l64 / double(y.size()), 1e-6 * loss);
    EXPECT_CLOSE(dpred, g, 1e-6, "dloss/dpred");
    EXPECT_THROW(flow_match_pair(tab, 1000, x0, noise), std::exception);
}

// A backend with no backward kernels (as CUDA is today): every training op fails with one line that
// names the op and the backend, before touching any data.
class NoKernelBackend final : public Backend {
public:
    static constexpr const char* kKind = "nokernel";
    std::string name() const override { return "nokernel"; }
    const char* kind() const override { return kKind; }
    std::string description() const override { return "test backend without kernels"; }
    bool host_visible() const override { return true; }
    std::shared_ptr<Buffer> alloc(size_t bytes) override {
        struct Host : Buffer {
            Host(Backend* b, size_t n) : Buffer(b, ::operator new(std::max<size_t>(n, 1)), n) {}
            ~Host() override { ::operator delete(ptr_); }
        };
        return std::make_shared<Host>(this, bytes);
    }
    void upload(const Tensor&, const void*) override {}
    void download(const Tensor&, void*) override {}
    void synchronize() override {}
};

TEST(TrainingOps, OneLineErrorWithoutAKernel) {
    NoKernelBackend be;
    Tensor x = be.empty(DType::F32, {3, 4}), w = be.empty(DType::F32, {5, 4}), dy = be.empty(DType::F32, {3, 5});
    Tensor q = be.empty(DType::F32, {1, 2, 1, 4}), lse = be.empty(DType::F32, {1, 1, 2});
    AdamWHyper h;
    std::vector<std::function<void()>> calls = {
        [&] {
            Tensor dx;
            ops::linear_backward(x, w, dy, &dx, nullptr, nullptr);
        },
        [&] { ops::attention_lse(q, q, q, {}, nullptr); },
        [&] { ops::attention_backward(q, q, q, q, q, lse); },
        [&] { ops::unary_backward(Activation::Silu, x, x); },
        [&] { ops::adamw_step(x, x, x, x, h, 1); },
    };
    for (auto& call : calls) {
        try {
            call();
            ADD_FAILURE() << "no error on a backend without kernels";
        } catch (const std::exception& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find("not implemented on nokernel"), std::string::npos) << m;
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        }
    }
}

TEST(ClipGradNorm, ScalesAboveTheBoundOnly) {
    auto be = make_cpu_backend(2);
    std::vector<Tensor> g = {randn_tensor(*be, {7, 5}, 11), randn_tensor(*be, {13}, 12)};
    std::vector<std::vector<double>> v0 = {to_f64(g[0]), to_f64(g[1])};
    double n2 = 0;
    for (const auto& v : v0)
        for (double x : v) n2 += x * x;
    const double total = std::sqrt(n2);
    EXPECT_NEAR(clip_grad_norm(g, 2 * total), total, 1e-6 * total);  // under the bound: untouched
    EXPECT_CLOSE(g[0], v0[0], 0.0, "unclipped g0");
    EXPECT_NEAR(clip_grad_norm(g, 0.5 * total), total, 1e-6 * total);
    const double c = 0.5 * total / (total + 1e-6);
    for (size_t k = 0; k < g.size(); ++k) {
        std::vector<double> ref = v0[k];
        for (double& x : ref) x *= c;
        EXPECT_CLOSE(g[k], ref, 1e-6, "clipped g" + std::to_string(k));
    }
}

// Forward, flow-matching loss, backward with checkpointing, AdamW: on a fixed batch the loss goes
// down at every step (the whole training step's gradients point downhill).
TEST(TrainStep, LossFallsOnAFixedBatch) {
    DitGradFixture g("dit_grad", make_cpu_backend(2));
    const std::vector<double> losses = fixed_batch_losses(g, 8);
    for (size_t i = 1; i < losses.size(); ++i) EXPECT_LT(losses[i], losses[i - 1]) << "step " << i;
    EXPECT_LT(losses.back(), 0.9 * losses.front());
}

// Timing only (run with --gtest_also_run_disabled_tests): one training step of one block of the
// t2v-1.3B width (dim 1536, ffn 8960, 12 heads) on 1,560 tokens (a 1×30×52 patch grid), bf16
// matrices as the checkpoint stores them, on the CPU.
TEST(TrainStep, DISABLED_TimingOneBlockOf1p3B) {
    auto be = make_cpu_backend(0);
    DitConfig cfg = DitConfig::preset("t2v-1.3B");
    cfg.num_layers = 1;
    DitModel model(cfg, synth_dit_memory(cfg, DType::BF16, 1), *be);
    DitSample s;
    s.x = randn_tensor(*be, {16, 1, 60, 104}, 1);
    s.context = randn_tensor(*be, {77, cfg.text_dim}, 2);
    s.t = 500;
    const int64_t L = model.tokens_for(s.x.shape());
    for (int rep = 0; rep < 2; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        DitTape tape;
        const std::vector<Tensor> ys = dit_train_forward(model, {s}, L, &tape);
        const double fwd = seconds_since(t0);
        DitGrads g = dit_grads_zeros(model);
        const auto t1 = std::chrono::steady_clock::now();
        dit_backward(model, tape, {randn_tensor(*be, ys[0].shape(), 3)}, &g);
        std::printf("  %lld tokens: forward %.2f s, backward (with the block's recompute) %.2f s\n", (long long)L, fwd,
                    seconds_since(t1));
    }
}

}  // namespace

}  // namespace wanrt::test
