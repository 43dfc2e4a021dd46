// Plain flow-matching Euler: x_{i+1} = x_i + (σ_{i+1} − σ_i)·v on the dpm++ schedule (σ_0 = 1,
// t_0 = 1000, final σ 0). It equals first-order DPM-Solver++ in exact arithmetic (docs/wan21.md §6.1) and is
// the simplest sampler to check a new backend or model with.
#include "core/error.h"
#include "sched/flow_common.h"

namespace wanrt {

namespace {

class FlowEuler final : public Scheduler {
public:
    FlowEuler(Schedule s, double shift) : Scheduler(std::move(s.timesteps), std::move(s.sigmas), shift) {}

    std::string name() const override { return "euler"; }
    void reset() override { step_index_ = 0; }

    Tensor step(const Tensor& v, int i, const Tensor& x) override {
        check_step(v, i, x, step_index_);
        const double dt = double(sigmas_[size_t(i) + 1]) - double(sigmas_[size_t(i)]);
        ++step_index_;
        return lincomb_new(x, {{1.0, &x}, {dt, &v}});
    }

private:
    int step_index_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_euler_scheduler(int steps, double shift) {
    return std::make_unique<FlowEuler>(dpm_schedule(steps, shift), shift);
}

}  // namespace wanrt
