// The dit_grad fixtures' model and batch on any backend (scripts/fixtures/make_dit_grad.py: a tiny
// WanModel, its inputs, an upstream gradient and torch autograd's float64 gradients), and the
// fixed-batch training run the CPU and GPU training tests share.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/dit.h"
#include "ops/ops.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/dit_backward.h"
#include "train/flow_match.h"

namespace wanrt::test {

// Keys of the fixture that are data, not weights.
inline bool is_grad_fixture_data(const std::string& n) {
    for (const char* p : {"in.", "out.", "mid.", "grad."})
        if (n.rfind(p, 0) == 0) return true;
    return false;
}

struct DitGradFixture {
    std::shared_ptr<SafeTensorsFile> f;
    std::shared_ptr<Backend> be;
    DitConfig cfg;
    int64_t seq_len = 0;
    std::unique_ptr<DitModel> model;
    std::vector<DitSample> batch;
    std::vector<Tensor> dy;

    DitGradFixture(const std::string& name, std::shared_ptr<Backend> backend) : be(std::move(backend)) {
        f = open_fixture(name + ".safetensors");
        cfg = DitConfig::from_json(f->metadata().at("config"), f->origin());
        seq_len = std::stoll(f->metadata().at("seq_len"));
        auto weights = std::make_shared<MemoryTensorSource>(f->origin());
        for (const std::string& n : f->names()) {
            if (is_grad_fixture_data(n)) continue;
            const StoredTensor& t = *f->find(n);
            weights->add(n, t.dtype, t.shape, t.data);
        }
        model = std::make_unique<DitModel>(cfg, weights, *be);
        const std::vector<double> tv = load_f64(*f, "in.t");
        for (size_t i = 0; f->find("in.x" + std::to_string(i)); ++i) {
            const std::string s = std::to_string(i);
            DitSample smp;
            smp.x = load_f32(*be, *f, "in.x" + s);
            smp.context = load_f32(*be, *f, "in.context" + s);
            smp.t = float(tv.at(i));
            batch.push_back(smp);
            dy.push_back(load_f32(*be, *f, "in.dy" + s));
        }
    }
};

// Forward, flow-matching loss, backward with checkpointing and AdamW (lr 2e-3, no weight decay), `steps`
// times on one fixed batch: the fixture's latents as x0 at timestep index 400 + 50·i with noise of seed
// 100 + i. Returns the loss of each step.
inline std::vector<double> fixed_batch_losses(DitGradFixture& g, int steps) {
    const FlowMatchTrainTable tab = flow_match_table();
    std::vector<DitSample> batch;
    std::vector<FlowMatchPair> pairs;
    for (size_t i = 0; i < g.batch.size(); ++i) {
        Tensor noise = randn_tensor(*g.be, g.batch[i].x.shape(), 100 + uint64_t(i));
        pairs.push_back(flow_match_pair(tab, 400 + 50 * int(i), g.batch[i].x, noise));
        DitSample smp = g.batch[i];
        smp.x = pairs.back().x_t;
        smp.t = float(pairs.back().timestep);
        batch.push_back(smp);
    }
    std::vector<Tensor> params;
    for (const auto& [name, t] : dit_named_params(g.cfg, g.model->mutable_weights())) params.push_back(t);
    AdamWHyper h;
    h.lr = 2e-3, h.weight_decay = 0.0;
    AdamW opt(params, h);
    std::vector<double> losses;
    for (int step = 0; step < steps; ++step) {
        DitTape tape;
        const std::vector<Tensor> ys = dit_train_forward(*g.model, batch, g.seq_len, &tape);
        double loss = 0;
        std::vector<Tensor> dys;
        for (size_t i = 0; i < ys.size(); ++i) {
            Tensor d;
            loss += flow_match_loss(ys[i], pairs[i].target, pairs[i].weight, &d) / double(ys.size());
            dys.push_back(ops::mul(d, ops::full(*g.be, DType::F32, {1}, 1.0f / float(ys.size()))));
        }
        losses.push_back(loss);
        DitGrads gr = dit_grads_zeros(*g.model);
        dit_backward(*g.model, tape, dys, &gr);
        std::vector<Tensor> grads;
        for (const auto& [name, t] : dit_named_params(g.cfg, gr.w)) grads.push_back(t);
        opt.step(grads);
        std::printf("  step %d loss %.6f\n", step, loss);
    }
    return losses;
}

}  // namespace wanrt::test
