// LoRA training (train/lora_train.h) on the dit_grad fixture's tiny DiT: the branches' gradients
// against the base weight's gradient (the chain rule through W + s·up·down, exact) and against
// finite differences; the loss on a fixed batch falls at each of 50 steps; the file written loads
// through the LoRA loader merged and gives the training-time forward.
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "models/dit.h"
#include "models/dit_weights.h"
#include "models/lora.h"
#include "ops/ops.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/dit_backward.h"
#include "train/flow_match.h"
#include "train/lora_train.h"

namespace wanrt::test {

namespace {

namespace fs = std::filesystem;

struct Fixture {
    std::shared_ptr<SafeTensorsFile> f;
    DitConfig cfg;
    int64_t seq_len = 0;
    std::shared_ptr<MemoryTensorSource> weights;  // the model's tensors only
};

Fixture open_dit_grad() {
    Fixture x;
    x.f = open_fixture("dit_grad.safetensors");
    x.cfg = DitConfig::from_json(x.f->metadata().at("config"), x.f->origin());
    x.seq_len = std::stoll(x.f->metadata().at("seq_len"));
    x.weights = std::make_shared<MemoryTensorSource>(x.f->origin());
    for (const std::string& n : x.f->names()) {
        if (n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("grad.", 0) == 0) continue;
        const StoredTensor& t = *x.f->find(n);
        x.weights->add(n, t.dtype, t.shape, t.data);
    }
    return x;
}

std::vector<DitSample> fixture_batch(Backend& be, const Fixture& x) {
    std::vector<DitSample> batch;
    const std::vector<double> ts = load_f64(*x.f, "in.t");
    for (int i = 0; i < 2; ++i) {
        const std::string s = std::to_string(i);
        DitSample smp;
        smp.x = load_f32(be, *x.f, "in.x" + s);
        smp.context = load_f32(be, *x.f, "in.context" + s);
        smp.t = float(ts[size_t(i)]);
        batch.push_back(smp);
    }
    return batch;
}

// L = Σ_i Σ y_i·dy_i with the fixture's upstream gradients, in double.
double proj_loss(const std::vector<Tensor>& ys, const std::vector<Tensor>& dys) {
    double l = 0;
    for (size_t i = 0; i < ys.size(); ++i) {
        const std::vector<float> a = ops::to_host_f32(ys[i]), b = ops::to_host_f32(dys[i]);
        for (size_t k = 0; k < a.size(); ++k) l += double(a[k]) * b[k];
    }
    return l;
}

// Sets every up matrix to small random values so that both gradients are non-zero.
void randomise_ups(Backend& be, const std::vector<LoraParam>& ps, uint64_t seed) {
    for (size_t i = 0; i < ps.size(); ++i) ops::copy(randn_tensor(be, ps[i].up.shape(), seed + i, 0.05f), ps[i].up);
}

TEST(LoraTargets, ParseAndErrors) {
    EXPECT_EQ(lora_target_modules("q,k,v,o,ffn").size(), 10u);
    EXPECT_EQ(lora_target_modules("q"), (std::vector<std::string>{"self_attn.q", "cross_attn.q"}));
    EXPECT_EQ(lora_target_modules(" self_attn.v , ffn.2"), (std::vector<std::string>{"self_attn.v", "ffn.2"}));
    expect_error([] { lora_target_modules("q,mlp"); }, {"unknown LoRA target 'mlp'"});
    expect_error([] { lora_target_modules(""); }, {"no LoRA targets"});
}

// With a branch on a Linear, its effective weight is W + s·up·down, so the chain rule gives
// dup = s·dW·downᵀ and ddown = s·upᵀ·dW from the base weight's gradient dW, which test_dit_backward
// holds to torch autograd. Both gradients come from one backward here (base and branches).
TEST(LoraGrad, ChainRuleThroughTheBaseWeight) {
    auto be = make_cpu_backend(2);
    Fixture x = open_dit_grad();
    DitModel model(x.cfg, x.weights, *be);
    LoraTrainConfig lc;
    lc.rank = 3, lc.alpha = 5;
    const std::vector<LoraParam> ps = attach_trainable_lora(model, lc, 7);
    ASSERT_EQ(ps.size(), size_t(10 * x.cfg.num_layers));
    randomise_ups(*be, ps, 100);
    const std::vector<DitSample> batch = fixture_batch(*be, x);
    std::vector<Tensor> dys = {load_f32(*be, *x.f, "in.dy0"), load_f32(*be, *x.f, "in.dy1")};
    DitTape tape;
    dit_train_forward(model, batch, x.seq_len, &tape);
    DitGrads g = dit_grads_zeros(model, true);
    dit_backward(model, tape, dys, &g);
    const std::vector<Tensor> lg = lora_grad_list(g, x.cfg, ps);
    auto glin = dit_linears(g.w, x.cfg);
    const double s = lc.alpha / double(lc.rank);
    double worst = 0;
    for (size_t p = 0; p < ps.size(); ++p) {
        const int64_t r = ps[p].down.size(0), in = ps[p].down.size(1), out = ps[p].up.size(0);
        const std::vector<double> dW = to_f64(glin.at(ps[p].module)->w), dn = to_f64(ps[p].down), up = to_f64(ps[p].up);
        std::vector<double> ref_up(size_t(out * r), 0.0), ref_down(size_t(r * in), 0.0);
        for (int64_t o = 0; o < out; ++o)
            for (int64_t k = 0; k < r; ++k)
                for (int64_t i = 0; i < in; ++i) {
                    ref_up[size_t(o * r + k)] += s * dW[size_t(o * in + i)] * dn[size_t(k * in + i)];
                    ref_down[size_t(k * in + i)] += s * up[size_t(o * r + k)] * dW[size_t(o * in + i)];
                }
        const Err eu = compare(lg[2 * p + 1], ref_up), ed = compare(lg[2 * p], ref_down);
        EXPECT_LE(eu.rel_l2, 1e-5) << ps[p].module << " up";
        EXPECT_LE(ed.rel_l2, 1e-5) << ps[p].module << " down";
        worst = std::max({worst, eu.rel_l2, ed.rel_l2});
    }
    std::printf("  %zu branches: worst rel-L2 of d(up), d(down) vs s·dW·downᵀ, s·upᵀ·dW: %.3e\n", ps.size(), worst);
}

// With many rows the forward patches each branched Linear's weight (W' = W + s·up·down, one GEMM) and
// the backward takes dx = dy·W' from it (the FFN's second linear with its input recomputed and gone
// before dx: ffn2_bw). The input gradients must then be those of a model whose weights are W', merged.
// Latents of 32 tokens per sample make every block Linear take that path (the fixture's 14 do not).
TEST(LoraGrad, PatchedWeightsCarryTheInputGradients) {
    auto be = make_cpu_backend(2);
    Fixture x = open_dit_grad();
    const DitConfig& c = x.cfg;
    DitModel model(c, x.weights, *be), merged(c, x.weights, *be);
    LoraTrainConfig lc;
    lc.rank = 2, lc.alpha = 3;
    const std::vector<LoraParam> ps = attach_trainable_lora(model, lc, 5);
    randomise_ups(*be, ps, 400);
    std::vector<DitSample> batch = fixture_batch(*be, x);
    const int64_t F = 2 * c.patch_t, H = 4 * c.patch_h, W = 4 * c.patch_w, L = 32;
    std::vector<Tensor> dys;
    for (int i = 0; i < 2; ++i) {
        batch[size_t(i)].x = randn_tensor(*be, {c.in_dim, F, H, W}, 41 + i);
        dys.push_back(randn_tensor(*be, {c.out_dim, F, H, W}, 51 + i));
    }
    const Linear& ffn2 = model.weights().blocks[0].ffn2;
    ASSERT_TRUE(lora_patched_weight(ffn2, ops::zeros(*be, {2 * L, c.ffn_dim})).defined()) << "the test needs more rows";
    // merged: W' of every branched Linear, in double
    auto lins = dit_linears(merged.mutable_weights(), c);
    const double sc = lc.alpha / double(lc.rank);
    for (const LoraParam& p : ps) {
        const int64_t r = p.down.size(0), in = p.down.size(1), out = p.up.size(0);
        Linear& l = *lins.at(p.module);
        const std::vector<double> w0 = to_f64(l.w), dn = to_f64(p.down), up = to_f64(p.up);
        std::vector<float> w1(size_t(out * in));
        for (int64_t o = 0; o < out; ++o)
            for (int64_t i = 0; i < in; ++i) {
                double v = w0[size_t(o * in + i)];
                for (int64_t k = 0; k < r; ++k) v += sc * up[size_t(o * r + k)] * dn[size_t(k * in + i)];
                w1[size_t(o * in + i)] = float(v);
            }
        l.w = ops::from_host(*be, DType::F32, {out, in}, w1.data());
    }
    auto grads = [&](DitModel& m, bool base) {
        DitTape tape;
        tape.ffn_rows = 48;  // FFN chunks of 48 and 16 rows: the first chunk's patched weights serve both
        dit_train_forward(m, batch, L, &tape);
        DitGrads g = dit_grads_zeros(m, base);
        dit_backward(m, tape, dys, &g);
        return g;
    };
    const DitGrads ga = grads(model, false), gm = grads(merged, true);
    for (int i = 0; i < 2; ++i) {
        EXPECT_CLOSE(ga.dx[size_t(i)], to_f64(gm.dx[size_t(i)]), 2e-5, "dL/dx" + std::to_string(i) + " LoRA vs merged");
        EXPECT_CLOSE(ga.dcontext[size_t(i)], to_f64(gm.dcontext[size_t(i)]), 2e-5,
                     "dL/dcontext" + std::to_string(i) + " LoRA vs merged");
    }
}

// Directional derivatives of L along random directions of one down and one up at a time, by central
// differences of the f32 forward (step sized to f32: the forward's rounding bounds the agreement).
TEST(LoraGrad, FiniteDifferences) {
    auto be = make_cpu_backend(2);
    Fixture x = open_dit_grad();
    DitModel model(x.cfg, x.weights, *be);
    LoraTrainConfig lc;
    lc.rank = 2, lc.alpha = 4;
    lc.targets = "q,o,ffn";
    const std::vector<LoraParam> ps = attach_trainable_lora(model, lc, 3);
    randomise_ups(*be, ps, 200);
    const std::vector<DitSample> batch = fixture_batch(*be, x);
    std::vector<Tensor> dys = {load_f32(*be, *x.f, "in.dy0"), load_f32(*be, *x.f, "in.dy1")};
    DitTape tape;
    dit_train_forward(model, batch, x.seq_len, &tape);
    DitGrads g = dit_grads_zeros(model, false);  // branches only, as LoRA training runs
    EXPECT_FALSE(g.w.blocks[0].sa_q.w.defined());
    dit_backward(model, tape, dys, &g);
    const std::vector<Tensor> params = lora_param_list(ps), grads = lora_grad_list(g, x.cfg, ps);
    double worst = 0;
    for (size_t p = 0; p < params.size(); ++p) {
        const Tensor& t = params[p];
        const std::vector<float> t0 = ops::to_host_f32(t), u = randn(t0.size(), 300 + p);
        const std::vector<float> gr = ops::to_host_f32(grads[p]);
        double analytic = 0, tn = 0;
        for (size_t i = 0; i < u.size(); ++i) analytic += double(gr[i]) * u[i], tn += double(t0[i]) * t0[i];
        const double eps = 1e-2 * std::max(1.0, std::sqrt(tn / double(t0.size())));
        auto at = [&](double e) {
            std::vector<float> v(t0.size());
            for (size_t i = 0; i < v.size(); ++i) v[i] = float(double(t0[i]) + e * u[i]);
            ops::copy(ops::from_host(*be, DType::F32, t.shape(), v.data()), t);
            return proj_loss(dit_train_forward(model, batch, x.seq_len, nullptr), dys);
        };
        const double fd = (at(eps) - at(-eps)) / (2 * eps);
        ops::copy(ops::from_host(*be, DType::F32, t.shape(), t0.data()), t);
        const double rel = std::fabs(fd - analytic) / std::max(std::fabs(analytic), 1e-12);
        EXPECT_LT(rel, 2e-3) << ps[p / 2].module << (p % 2 ? " up" : " down") << ": fd " << fd << " vs " << analytic;
        worst = std::max(worst, rel);
    }
    std::printf("  %zu tensors: worst relative error of the directional derivative %.3e\n", params.size(), worst);
}

// Flow-matching LoRA training on a fixed batch (fixed noise and timesteps): the loss falls at every
// one of 50 AdamW steps, and the file written then loads merged (and as run-time branches) through
// the LoRA loader to the same output as the training-time forward.
TEST(LoraTrain, LossFallsFor50StepsAndTheFileLoads) {
    auto be = make_cpu_backend(2);
    Fixture x = open_dit_grad();
    DitModel model(x.cfg, x.weights, *be);
    LoraTrainConfig lc;
    lc.rank = 4, lc.alpha = 4;
    const std::vector<LoraParam> ps = attach_trainable_lora(model, lc, 11);
    const FlowMatchTrainTable tab = flow_match_table();
    std::vector<DitSample> batch = fixture_batch(*be, x);
    std::vector<FlowMatchPair> pairs;
    for (size_t i = 0; i < batch.size(); ++i) {
        pairs.push_back(
            flow_match_pair(tab, 300 + 200 * int64_t(i), batch[i].x, randn_tensor(*be, batch[i].x.shape(), 40 + i)));
        batch[i].x = pairs.back().x_t;
        batch[i].t = float(pairs.back().timestep);
    }
    AdamWHyper h;
    h.lr = 1e-3, h.weight_decay = 1e-2;
    AdamW opt(lora_param_list(ps), h);
    std::vector<double> losses;
    for (int step = 0; step < 50; ++step) {
        DitTape tape;
        const std::vector<Tensor> ys = dit_train_forward(model, batch, x.seq_len, &tape);
        double loss = 0;
        std::vector<Tensor> dys;
        for (size_t i = 0; i < ys.size(); ++i) {
            Tensor d;
            loss += flow_match_loss(ys[i], pairs[i].target, pairs[i].weight / double(ys.size()), &d);
            dys.push_back(d);
        }
        losses.push_back(loss);
        DitGrads g = dit_grads_zeros(model, false);
        dit_backward(model, tape, dys, &g);
        std::vector<Tensor> grads = lora_grad_list(g, x.cfg, ps);
        clip_grad_norm(grads, 1.0);
        opt.step(grads);
    }
    std::printf("  loss %.6f → %.6f over 50 steps\n", losses.front(), losses.back());
    for (size_t i = 1; i < losses.size(); ++i) EXPECT_LT(losses[i], losses[i - 1]) << "step " << i;
    EXPECT_LT(losses.back(), 0.8 * losses.front());

    // The file: kohya/ComfyUI keys, read back by the loader.
    const fs::path dir = fs::temp_directory_path() / ("wanrt_lora_train_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const std::string path = (dir / "lora.safetensors").string();
    write_lora_file(path, ps, lc);
    auto file = SafeTensorsFile::open(path);
    EXPECT_TRUE(file->find("diffusion_model.blocks.0.self_attn.q.lora_down.weight"));
    EXPECT_TRUE(file->find("diffusion_model.blocks.1.ffn.2.lora_up.weight"));
    EXPECT_TRUE(file->find("diffusion_model.blocks.0.cross_attn.o.alpha"));
    EXPECT_EQ(file->names().size(), ps.size() * 3);
    EXPECT_EQ(file->metadata().at("ss_network_dim"), "4");

    const std::vector<Tensor> trained = dit_train_forward(model, batch, x.seq_len, nullptr);
    for (LoraMode mode : {LoraMode::Merge, LoraMode::Runtime}) {
        LoraOptions opt_l;
        opt_l.files.push_back({path, 1.0f});
        opt_l.mode = mode;
        std::string summary;
        auto loaded = load_dit_with_lora(x.cfg, x.weights, *be, "", opt_l, &summary);
        EXPECT_NE(summary.find(mode == LoraMode::Merge ? "merged" : "run-time"), std::string::npos) << summary;
        const std::vector<Tensor> ys = loaded->forward(batch, x.seq_len);
        for (size_t i = 0; i < ys.size(); ++i)
            EXPECT_CLOSE(
                ys[i], to_f64(trained[i]), 1e-5,
                std::string(lora_mode_name(mode)) + " LoRA forward vs training forward, sample " + std::to_string(i));
    }
    // and it differs from the base (the LoRA learned something)
    DitModel base(x.cfg, x.weights, *be);
    const Err d = compare(base.forward(batch, x.seq_len)[0], to_f64(trained[0]));
    EXPECT_GT(d.rel_l2, 1e-3);
    fs::remove_all(dir);
}

TEST(LoraTrain, Errors) {
    auto be = make_cpu_backend(2);
    Fixture x = open_dit_grad();
    DitModel model(x.cfg, x.weights, *be);
    LoraTrainConfig lc;
    lc.rank = 0;
    expect_error([&] { attach_trainable_lora(model, lc, 1); }, {"rank 0"});
    lc.rank = 2;
    attach_trainable_lora(model, lc, 1);
    expect_error([&] { attach_trainable_lora(model, lc, 1); }, {"already carries a LoRA branch"});
    // a full-difference branch has no backward
    DitModel m2(x.cfg, x.weights, *be);
    m2.mutable_weights().blocks[0].sa_q.lora.push_back({ops::zeros(*be, m2.weights().blocks[0].sa_q.w.shape()), {}, 1});
    expect_error([&] { dit_train_forward(m2, fixture_batch(*be, x), x.seq_len, nullptr); }, {"full-difference"});
}

}  // namespace

}  // namespace wanrt::test
