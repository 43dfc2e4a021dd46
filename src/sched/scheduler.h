// Flow-matching samplers of Wan2.1 (docs/wan21.md §6): the official FlowUniPCMultistepScheduler ("unipc",
// the default), the DPM-Solver++ path ("dpm++") exactly as wan/text2video.py builds them, and a
// plain flow Euler sampler ("euler").
//
// Convention (docs/wan21.md §6.1): x_σ = (1 − σ)·x₀ + σ·ε, the network predicts v = ε − x₀, the data
// prediction is x̂₀ = x − σ·v. A scheduler for n steps holds
//   timesteps()  n integers, what the DiT receives (int64(1000·σ_i), truncated as the reference);
//   sigmas()     n + 1 float32 values σ_0 … σ_{n−1}, 0 the solver integrates with.
// Schedules (shift s applied as σ' = s·σ / (1 + (s − 1)·σ), in float64 like numpy, then stored f32):
//   unipc   σ̂_i = σ_max·(1 − i/n) with σ_max = float32(0.999) (numpy linspace, last point dropped),
//           so t_0 = 999 for any shift;
//   dpm++   σ̂_i = 1 − i/n (get_sampling_sigmas), so σ_0 = 1 and t_0 = 1000;
//   euler   the dpm++ schedule; x_{i+1} = x_i + (σ_{i+1} − σ_i)·v (= first-order DPM-Solver++).
//   lcm     the step-distilled models' sampler (LightX2V WanStepDistillScheduler, ComfyUI's "lcm"):
//           σ̂_i = 1 − ⌊1000·i/n⌋/1000 (the denoising_step_list 1000, 750, 500, 250 for n = 4: index
//           1000 − step into linspace(1, 0, 1001)), shifted, stored f32; the DiT receives 1000·σ_i in
//           f32 unrounded (model_timestep; timesteps() holds it truncated, for display). Step:
//           x̂₀ = x − σ_i·v, then x_{i+1} = (1 − σ_{i+1})·x̂₀ + σ_{i+1}·ε with fresh noise ε (from the
//           noise source, set_noise), and x̂₀ itself after the last step.
//
// Tensors: v and x are f32, contiguous, same shape (any shape; the pipeline passes the latent
// [C, T, H, W]). step() returns a new tensor on x's backend and never modifies its inputs. All
// tensor math is a linear combination of ≤ 4 f32 tensors with scalar coefficients computed on the
// host (float32 scalar math in the reference's order, as the official code does with 0-d fp32
// tensors), so a GPU backend only needs one op: ops::lincomb (ops/ops.h; f32 fused multiply-add on the CPU, the
// rounding of one f32 tensor expression of the reference, within 1 ulp per term).
//
// Errors ([sched] one-line wanrt::Error): unknown solver name, steps ≤ 0, shift ≤ 0 or not finite,
// steps so large that the official UniPC schedule repeats t_0 (its index lookup then skips σ_0 and
// fails at the end), step() called out of order or with mismatched shapes/dtypes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanrt {

class Scheduler {
public:
    virtual ~Scheduler() = default;

    virtual std::string name() const = 0;  // "unipc", "dpm++", "euler"
    int num_steps() const { return int(timesteps_.size()); }
    double shift() const { return shift_; }
    const std::vector<int64_t>& timesteps() const { return timesteps_; }
    const std::vector<float>& sigmas() const { return sigmas_; }

    // One sampler step: v = model output at timesteps()[t_index] for sample x (at sigmas()[t_index])
    // → the sample at sigmas()[t_index + 1]. Multistep solvers keep history, so steps must be taken
    // in order 0, 1, …, n − 1 (reset() starts over).
    virtual Tensor step(const Tensor& v, int t_index, const Tensor& x) = 0;
    virtual void reset() = 0;

    // The timestep value the DiT receives at step i: timesteps()[i], except lcm's unrounded 1000·σ_i.
    virtual double model_timestep(int i) const { return double(timesteps_[size_t(i)]); }
    // Samplers that re-noise between steps (lcm) draw standard normal noise shaped like the sample
    // through this function, which the pipeline sets (seeded); lcm fails without one.
    using NoiseFn = std::function<Tensor(const Tensor& like)>;
    virtual bool needs_noise() const { return false; }
    void set_noise(NoiseFn f) { noise_ = std::move(f); }

protected:
    Scheduler(std::vector<int64_t> timesteps, std::vector<float> sigmas, double shift)
        : timesteps_(std::move(timesteps)), sigmas_(std::move(sigmas)), shift_(shift) {}
    // Shared argument checks: index in order, f32 contiguous tensors of equal shape.
    void check_step(const Tensor& v, int t_index, const Tensor& x, int expected_index) const;

    std::vector<int64_t> timesteps_;
    std::vector<float> sigmas_;
    double shift_;
    NoiseFn noise_;
};

// name: "unipc" | "dpm++" | "euler" | "lcm"; steps ≥ 1; shift > 0 (official default 5.0).
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, int steps, double shift);

// The schedules alone (for tests and `wanrt info`): n integer timesteps and n + 1 f32 sigmas.
struct Schedule {
    std::vector<int64_t> timesteps;
    std::vector<float> sigmas;
};
Schedule unipc_schedule(int steps, double shift);
Schedule dpm_schedule(int steps, double shift);
Schedule lcm_schedule(int steps, double shift);  // timesteps truncated; see model_timestep

}  // namespace wanrt
