// The flow-matching training objective of Wan as DiffSynth-Studio trains it (the recipe followed
// here; diffsynth/schedulers/flow_match.py and its Wan training module):
//   scheduler FlowMatchScheduler(shift = 5, sigma_min = 0, extra_one_step = True) with
//   set_timesteps(1000, training = True): s_k = linspace(1, 0, 1001)[k] for k < 1000,
//   σ_k = shift·s_k / (1 + (shift − 1)·s_k), t_k = 1000·σ_k;
//   a step draws k uniformly in [0, 1000), x_t = (1 − σ_k)·x0 + σ_k·noise, target = noise − x0
//   (the velocity the DiT predicts), loss = mse(pred, target)·w_k with the table
//   w_k = (y_k − min y)·1000 / Σ(y − min y), y_k = exp(−2·((t_k − 500)/1000)²).
// (musubi-tuner samples σ instead — uniform / sigmoid / shift modes, no weighting by default; the
// same x_t and target.) The table is computed in double; DiffSynth holds it in float32.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace wanrt {

// (Named apart from pipeline/causal.h's FlowMatchTable, the float32 inference table: two classes of
// one name in one program are an ODR violation — the linker kept one destructor for both and freed
// the other's vectors with it.)
struct FlowMatchTrainTable {
    std::vector<double> sigmas, timesteps, weights;  // n each, from σ = 1 (pure noise) down
};
FlowMatchTrainTable flow_match_table(double shift = 5.0, int64_t n = 1000);

// x_t and the target of table entry k for a clean latent x0 and noise (same shape, f32).
struct FlowMatchPair {
    Tensor x_t, target;
    double timestep = 0, weight = 1;
};
FlowMatchPair flow_match_pair(const FlowMatchTrainTable& tab, int64_t k, const Tensor& x0, const Tensor& noise);

// weight·mean((pred − target)²) over every element; *dpred (when non-null) ← its gradient,
// weight·2·(pred − target)/numel.
double flow_match_loss(const Tensor& pred, const Tensor& target, double weight, Tensor* dpred);

}  // namespace wanrt
