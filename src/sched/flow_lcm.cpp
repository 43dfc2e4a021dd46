// The step-distilled models' sampler (scheduler.h, "lcm"): predict x̂₀, then re-noise it to the next
// σ with fresh noise (LightX2V's WanStepDistillScheduler.step_post for Wan2.1, ComfyUI's lcm).
#include "core/error.h"
#include "sched/flow_common.h"

namespace wanrt {

namespace {

class FlowLcm final : public Scheduler {
public:
    FlowLcm(Schedule s, double shift) : Scheduler(std::move(s.timesteps), std::move(s.sigmas), shift) {}

    std::string name() const override { return "lcm"; }
    void reset() override { step_index_ = 0; }
    bool needs_noise() const override { return true; }
    // sigmas·num_train_timesteps as the f32 tensor the reference passes to the DiT.
    double model_timestep(int i) const override { return double(sigmas_[size_t(i)] * 1000.0f); }

    Tensor step(const Tensor& v, int i, const Tensor& x) override {
        check_step(v, i, x, step_index_);
        ++step_index_;
        const double sigma = double(sigmas_[size_t(i)]);
        Tensor x0 = lincomb_new(x, {{1.0, &x}, {-sigma, &v}});  // x̂₀ = x − σ·v
        if (i + 1 == num_steps()) return x0;
        WANRT_CHECK(noise_, "sched", "the lcm sampler re-noises between steps and has no noise source; set_noise first");
        const Tensor eps = noise_(x);
        WANRT_CHECK(eps.defined() && eps.shape() == x.shape() && eps.dtype() == DType::F32, "sched",
                    "the noise source returned ", eps.defined() ? eps.describe() : std::string("none"), " for ", x.describe());
        const double next = double(sigmas_[size_t(i) + 1]);
        return lincomb_new(x, {{1.0 - next, &x0}, {next, &eps}});  // (1 − σ')·x̂₀ + σ'·ε
    }

private:
    int step_index_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_lcm_scheduler(int steps, double shift) {
    return std::make_unique<FlowLcm>(lcm_schedule(steps, shift), shift);
}

}  // namespace wanrt
