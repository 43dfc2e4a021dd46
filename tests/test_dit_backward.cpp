// The DiT backward (train/dit_backward.h) against torch autograd of the official WanModel in float64
// (tests/fixtures/dit_grad.safetensors, scripts/fixtures/make_dit_grad.py): every parameter gradient
// and the gradients of the latents and contexts. dit_grad_b is the other set: the branches dit_grad
// does not take (no q/k RMSNorm, no norm3, a local self-attention window), 4 heads, 3 layers. Also: the training
// forward is the inference forward, and gradients accumulate over calls.
#include <cmath>
#include <map>

#include "models/dit.h"
#include "ops/ops.h"
#include "dit_grad_fixture.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/dit_backward.h"

namespace wanrt::test {

namespace {

// A gradient matches when its rel-L2 error is ≤ tol; one that is zero in exact arithmetic (the
// reference's norm at rounding level: the key bias of an attention without q/k norm, which shifts
// every score of a row alike) must instead be zero to f32 rounding of the other gradients.
bool grad_close(const Tensor& t, const std::vector<double>& ref, double tol, std::string* why) {
    const Err e = compare(t, ref);
    double n2 = 0;
    for (double v : ref) n2 += v * v;
    const bool zero = std::sqrt(n2) < 1e-10;
    *why =
        zero ? cat("zero in exact arithmetic; max abs ", e.max_abs) : cat("rel-L2 ", e.rel_l2, ", max abs ", e.max_abs);
    return zero ? e.max_abs <= 1e-5 : e.rel_l2 <= tol;
}

// dit_grad's model and batch on the CPU.
struct GradFixture : DitGradFixture {
    explicit GradFixture(const std::string& name) : DitGradFixture(name, make_cpu_backend(2)) {}
};

class DitBackward : public ::testing::TestWithParam<std::string> {};

TEST_P(DitBackward, TrainingForwardIsTheModel) {
    GradFixture g(GetParam());
    DitTape tape;
    const std::vector<Tensor> ys = dit_train_forward(*g.model, g.batch, g.seq_len, &tape);
    const std::vector<Tensor> ref = g.model->forward(g.batch, g.seq_len);
    ASSERT_EQ(ys.size(), g.batch.size());
    for (size_t i = 0; i < ys.size(); ++i) {
        EXPECT_CLOSE(ys[i], load_f64(*g.f, "out.y" + std::to_string(i)), 1e-5,
                     "train forward vs torch y" + std::to_string(i));
        EXPECT_CLOSE(ys[i], to_f64(ref[i]), 1e-5, "train forward vs DitModel y" + std::to_string(i));
    }
    EXPECT_EQ(int64_t(tape.block_in.size()),
              g.cfg.num_layers + 1);  // the checkpoints: one per block, and the last output
}

void check_against_torch(GradFixture& g, int64_t ffn_rows) {
    DitTape tape;
    tape.ffn_rows = ffn_rows;
    dit_train_forward(*g.model, g.batch, g.seq_len, &tape);
    DitGrads grads = dit_grads_zeros(*g.model);
    dit_backward(*g.model, tape, g.dy, &grads);

    int checked = 0;
    double worst = 0;
    std::string worst_name;
    for (const auto& [name, t] : dit_named_params(g.cfg, grads.w)) {
        const std::string key = "grad." + name;
        ASSERT_TRUE(g.f->find(key)) << "fixture lacks " << key;
        const std::vector<double> ref = load_f64(*g.f, key);
        std::string why;
        EXPECT_TRUE(grad_close(t, ref, 1e-4, &why)) << name << ": " << why;
        const Err e = compare(t, ref);
        if (why.rfind("zero", 0) != 0 && e.rel_l2 > worst) worst = e.rel_l2, worst_name = name;
        ++checked;
    }
    std::printf("  %d parameter gradients, worst rel-L2 %.3e (%s)\n", checked, worst, worst_name.c_str());
    // Every parameter the official model has is covered (no gradient left unchecked).
    int in_fixture = 0;
    for (const std::string& n : g.f->names())
        if (n.rfind("grad.", 0) == 0 && n.rfind("grad.in.", 0) != 0) ++in_fixture;
    EXPECT_EQ(checked, in_fixture);
    for (size_t i = 0; i < g.batch.size(); ++i) {
        const std::string s = std::to_string(i);
        EXPECT_CLOSE(grads.dx[i], load_f64(*g.f, "grad.in.x" + s), 1e-4, "dL/dx" + s);
        EXPECT_CLOSE(grads.dcontext[i], load_f64(*g.f, "grad.in.context" + s), 1e-4, "dL/dcontext" + s);
    }
}

TEST_P(DitBackward, MatchesTorchAutograd) {
    GradFixture g(GetParam());
    check_against_torch(g, 0);
}

// The FFN in row chunks of 5 (the fixtures' 2 × 14 or more rows: uneven chunks, the last one short),
// as long sequences run it: the same gradients.
TEST_P(DitBackward, FfnRowChunksMatchTorchAutograd) {
    GradFixture g(GetParam());
    check_against_torch(g, 5);
}

TEST_P(DitBackward, GradientsAccumulateOverCalls) {
    GradFixture g(GetParam());
    DitTape tape;
    dit_train_forward(*g.model, g.batch, g.seq_len, &tape);
    DitGrads grads = dit_grads_zeros(*g.model);
    dit_backward(*g.model, tape, g.dy, &grads);
    dit_backward(*g.model, tape, g.dy, &grads);
    for (const auto& [name, t] : dit_named_params(g.cfg, grads.w)) {
        std::vector<double> ref = load_f64(*g.f, "grad." + name);
        for (double& v : ref) v *= 2;
        std::string why;
        EXPECT_TRUE(grad_close(t, ref, 1e-4, &why)) << name << ": " << why;
    }
}

// --offload_checkpoints: the blocks' inputs go to host memory and come back for the backward; the
// gradients are the resident run's, bit for bit, and the tape holds no device checkpoint.
TEST_P(DitBackward, OffloadedCheckpointsGiveTheSameGradients) {
    GradFixture g(GetParam());
    auto grads_of = [&](bool offload) {
        DitTape tape;
        HostCheckpoints host;
        tape.offload = offload ? &host : nullptr;
        dit_train_forward(*g.model, g.batch, g.seq_len, &tape);
        if (offload) {
            EXPECT_EQ(host.blocks.size(), size_t(g.cfg.num_layers));
            for (int64_t i = 0; i < g.cfg.num_layers; ++i) EXPECT_FALSE(tape.block_in[size_t(i)].defined()) << i;
        }
        DitGrads grads = dit_grads_zeros(*g.model);
        dit_backward(*g.model, tape, g.dy, &grads);
        std::vector<std::vector<double>> r;
        for (const auto& [name, t] : dit_named_params(g.cfg, grads.w)) r.push_back(to_f64(t));
        for (const Tensor& t : grads.dx) r.push_back(to_f64(t));
        return r;
    };
    const auto resident = grads_of(false), offloaded = grads_of(true);
    ASSERT_EQ(resident.size(), offloaded.size());
    for (size_t i = 0; i < resident.size(); ++i) EXPECT_EQ(resident[i], offloaded[i]) << "gradient " << i;
}

// Two AdamW steps on the fixture's parameters with torch's float64 gradients (rounded to f32) against
// torch.optim.AdamW run in float64 (dit_grad_adamw.safetensors): equal within 1e-6.
TEST_P(DitBackward, AdamWMatchesTorch) {
    GradFixture g(GetParam());
    auto ref = open_fixture(GetParam() + "_adamw.safetensors");
    const nlohmann::json hj = meta_json(*ref, "adamw");
    AdamWHyper h;
    h.lr = hj.at("lr"), h.beta1 = hj.at("betas")[0], h.beta2 = hj.at("betas")[1], h.eps = hj.at("eps");
    h.weight_decay = hj.at("weight_decay");
    const auto named = dit_named_params(g.cfg, g.model->mutable_weights());
    std::vector<Tensor> params, grads;
    for (const auto& [name, t] : named) {
        params.push_back(t);
        grads.push_back(load_f32(*g.be, *g.f, "grad." + name).reshape(t.shape()));
    }
    AdamW opt(params, h);
    for (int step = 1; step <= 2; ++step) {
        opt.step(grads);
        double worst = 0;
        for (const auto& [name, t] : named) {
            const Err e = compare(t, load_f64(*ref, "step" + std::to_string(step) + "." + name));
            EXPECT_LE(e.max_abs, 1e-6) << "step " << step << " " << name;
            worst = std::max(worst, e.max_abs);
        }
        std::printf("  AdamW step %d: %zu parameters, worst max abs %.3e\n", step, named.size(), worst);
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DitBackward, ::testing::Values("dit_grad", "dit_grad_b"));

// Wan2.2 TI2V (dit_ti2v, official Wan2.2 model.py): per-token timesteps give one modulation row per
// group of tokens (G > B). The training forward matches the fixture's outputs, and the gradient's
// directional derivative along itself matches central differences of the f32 loss Σ dy·y (a coarse
// check, h = 1e-2, within 1e-3: it catches a wrong group reduction, not rounding).
TEST(DitBackwardTi2v, PerTokenTimesteps) {
    auto be = make_cpu_backend(2);
    auto f = open_fixture("dit_ti2v.safetensors");
    const DitConfig cfg = DitConfig::from_json(f->metadata().at("config"), f->origin());
    const int64_t seq_len = std::stoll(f->metadata().at("seq_len"));
    auto weights = std::make_shared<MemoryTensorSource>(f->origin());
    for (const std::string& n : f->names()) {
        if (is_grad_fixture_data(n)) continue;
        const StoredTensor& t = *f->find(n);
        weights->add(n, t.dtype, t.shape, t.data);
    }
    DitModel model(cfg, weights, *be);
    const std::vector<double> tv = load_f64(*f, "in.t");  // [B, seq_len]
    std::vector<DitSample> batch;
    std::vector<Tensor> dy;
    for (size_t i = 0; f->find("in.x" + std::to_string(i)); ++i) {
        DitSample smp;
        smp.x = load_f32(*be, *f, "in.x" + std::to_string(i));
        smp.context = load_f32(*be, *f, "in.context" + std::to_string(i));
        smp.t_tokens.assign(tv.begin() + int64_t(i) * seq_len, tv.begin() + int64_t(i + 1) * seq_len);
        batch.push_back(smp);
    }
    DitTape tape;
    const std::vector<Tensor> ys = dit_train_forward(model, batch, seq_len, &tape);
    for (size_t i = 0; i < ys.size(); ++i) {
        EXPECT_CLOSE(ys[i], load_f64(*f, "out.y" + std::to_string(i)), 1e-4,
                     "ti2v train forward y" + std::to_string(i));
        dy.push_back(randn_tensor(*be, ys[i].shape(), 40 + i));
    }
    EXPECT_LT(tape.S, seq_len);  // several modulation groups per sample
    DitGrads g = dit_grads_zeros(model);
    dit_backward(model, tape, dy, &g);

    const auto params = dit_named_params(cfg, model.mutable_weights());
    const auto grads = dit_named_params(cfg, g.w);
    double gnorm2 = 0;
    for (const auto& [n, t] : grads)
        for (double v : to_f64(t)) gnorm2 += v * v;
    const double gnorm = std::sqrt(gnorm2);
    auto loss_at = [&](double h) {  // Σ dy·y at θ + h·g/|g|, θ restored afterwards
        std::vector<std::vector<float>> saved;
        for (size_t k = 0; k < params.size(); ++k) {
            float* p = params[k].second.data<float>();
            const std::vector<float> gv = ops::to_host_f32(grads[k].second);
            saved.emplace_back(p, p + gv.size());
            for (size_t i = 0; i < gv.size(); ++i) p[i] += float(h * gv[i] / gnorm);
        }
        const std::vector<Tensor> y = dit_train_forward(model, batch, seq_len, nullptr);
        double l = 0;
        for (size_t i = 0; i < y.size(); ++i) {
            const std::vector<double> a = to_f64(y[i]), b = to_f64(dy[i]);
            for (size_t j = 0; j < a.size(); ++j) l += a[j] * b[j];
        }
        for (size_t k = 0; k < params.size(); ++k)
            std::copy(saved[k].begin(), saved[k].end(), params[k].second.data<float>());
        return l;
    };
    const double h = 1e-2, fd = (loss_at(h) - loss_at(-h)) / (2 * h);
    std::printf("  directional derivative: central differences %.6f, |g| %.6f\n", fd, gnorm);
    EXPECT_NEAR(fd, gnorm, 1e-3 * gnorm);
}

TEST(DitBackwardErrors, RejectsBadUpstreamGradient) {
    GradFixture g("dit_grad");
    DitTape tape;
    dit_train_forward(*g.model, g.batch, g.seq_len, &tape);
    DitGrads grads = dit_grads_zeros(*g.model);
    std::vector<Tensor> bad = {g.dy[0]};
    EXPECT_THROW(dit_backward(*g.model, tape, bad, &grads), std::exception);
    bad = {g.dy[1], g.dy[0]};
    EXPECT_THROW(dit_backward(*g.model, tape, bad, &grads), std::exception);
    // Branches the training forward cannot differentiate are refused, not ignored: a full difference
    // on a block (low-rank ones train: test_lora_train), any branch on the head.
    Linear& q = g.model->mutable_weights().blocks[0].sa_q;
    q.lora.push_back({ops::zeros(*g.be, {g.cfg.dim, g.cfg.dim}), Tensor(), 1.0f});
    EXPECT_THROW(dit_train_forward(*g.model, g.batch, g.seq_len, nullptr), std::exception);
    q.lora.clear();
    Linear& head = g.model->mutable_weights().head;
    head.lora.push_back({ops::zeros(*g.be, {2, g.cfg.dim}), ops::zeros(*g.be, {head.w.size(0), 2}), 1.0f});
    EXPECT_THROW(dit_train_forward(*g.model, g.batch, g.seq_len, nullptr), std::exception);
}

}  // namespace

}  // namespace wanrt::test
