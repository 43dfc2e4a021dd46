// AdamW with fp32 master weights and optimizer state, as torch.optim.AdamW (decoupled weight decay,
// bias-corrected moments, eps added after the square root; amsgrad off):
//   p ← p·(1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
// The update is the op "adamw_step" (one kernel per backend, CPU in cpu/cpu_optim.cpp). Model
// weights stored in another dtype (bf16) are updated from their f32 master copy, rounded once.
#pragma once

#include <string>
#include <vector>

#include "core/backend.h"
#include "core/op_registry.h"

namespace wanrt {

struct AdamWHyper {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
};

struct AdamWStepArgs {  // {F32}: p, g, m, v contiguous f32 of one shape; m, v, p updated in place
    static constexpr const char* kName = "adamw_step";
    Tensor p, g, m, v;
    AdamWHyper h;
    int64_t step = 1;  // t, counted from 1
};

namespace ops {
// One AdamW update of master weights p (f32) with gradient g, moments m and v, at step t ≥ 1.
void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamWHyper& h, int64_t step);
}  // namespace ops

// torch.nn.utils.clip_grad_norm_(grads, max_norm): the total norm √(Σ‖g‖²) over every gradient
// (returned); when it exceeds max_norm, every gradient is scaled in place by
// max_norm / (total + 1e-6).
double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm);

// The optimizer over a list of parameters: f32 master copies (the parameter itself when it is
// f32), zero moments. step() applies one update from grads (same order and shapes as params) and
// writes each master back into its parameter when they differ.
class AdamW {
public:
    AdamW(std::vector<Tensor> params, AdamWHyper h);
    void step(const std::vector<Tensor>& grads);
    int64_t steps() const { return t_; }
    AdamWHyper& hyper() { return h_; }  // e.g. a learning-rate schedule sets h.lr before step()

    // Checkpoints (train/trainer.h): parameter i's f32 master copy and moments, as handles (writing
    // into them restores a saved state; then restore_params() rounds each master into its parameter),
    // and the step count t.
    struct SlotState {
        Tensor master, m, v;
    };
    size_t size() const { return slots_.size(); }
    SlotState state(size_t i) const { return {slots_[i].master, slots_[i].m, slots_[i].v}; }
    void set_steps(int64_t t) { t_ = t; }
    void restore_params();

private:
    struct Slot {
        Tensor param, master, m, v;
    };
    std::vector<Slot> slots_;
    AdamWHyper h_;
    int64_t t_ = 0;
};

}  // namespace wanrt
