// The DPM-Solver++ path of wan/text2video.py (FlowDPMSolverMultistepScheduler in
// wan/utils/fm_solvers.py): algorithm_type "dpmsolver++", solver_order 2, solver_type "midpoint",
// explicit sigmas from get_sampling_sigmas (σ_0 = 1), final sigma 0 so the last step is first
// order. docs/wan21.md §6.4. Scalars follow the reference's float32 0-d tensor arithmetic op by op.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sched/flow_common.h"

#pragma GCC optimize("fp-contract=off")

namespace wanrt {

namespace {

constexpr int kSolverOrder = 2;

class FlowDPMpp final : public Scheduler {
public:
    FlowDPMpp(Schedule s, double shift) : Scheduler(std::move(s.timesteps), std::move(s.sigmas), shift) {}

    std::string name() const override { return "dpm++"; }

    void reset() override {
        model_outputs_[0] = model_outputs_[1] = Tensor();
        lower_order_nums_ = 0;
        step_index_ = 0;
    }

    Tensor step(const Tensor& v, int i, const Tensor& x) override {
        check_step(v, i, x, step_index_);
        const int n = num_steps();
        // final_sigmas_type = "zero" makes the last step first order.
        const bool lower_order_final = i == n - 1;

        // convert_model_output: x̂₀ = x − σ_i·v.
        Tensor m = lincomb_new(x, {{1.0, &x}, {-double(sigmas_[size_t(i)]), &v}});
        model_outputs_[0] = model_outputs_[1];
        model_outputs_[1] = m;

        const float sigma_t = sigmas_[size_t(i) + 1];
        const float sigma_s0 = sigmas_[size_t(i)];
        const float alpha_t = 1.0f - sigma_t;
        const float lambda_t = flow_lambda(sigma_t);
        const float lambda_s0 = flow_lambda(sigma_s0);
        const float h = lambda_t - lambda_s0;
        const float ratio = sigma_t / sigma_s0;
        const float e = alpha_t * (std::exp(-h) - 1.0f);  // α_t·(e^{−h} − 1)

        Tensor x_next;
        if (lower_order_nums_ < 1 || lower_order_final) {
            // dpm_solver_first_order_update: x_t = σ_t/σ_s·x − α_t(e^{−h} − 1)·x̂₀ (= Euler).
            x_next = lincomb_new(x, {{ratio, &x}, {-double(e), &m}});
        } else {
            // multistep_dpm_solver_second_order_update, midpoint:
            // x_t = σ_t/σ_s0·x − α_t(e^{−h} − 1)·D0 − 0.5·α_t(e^{−h} − 1)·D1, D1 = (1/r0)(m0 − m1).
            // σ_{i−1} = 1 (step 1) gives λ = −∞, r0 = ∞, 1/r0 = 0: first order, as in the reference.
            const Tensor& m1 = model_outputs_[0];
            const float lambda_s1 = flow_lambda(sigmas_[size_t(i) - 1]);
            const float h0 = lambda_s0 - lambda_s1;
            const float r0 = h0 / h;
            const float inv_r0 = 1.0f / r0;
            const float half_e = 0.5f * e;
            const double k = double(half_e) * double(inv_r0);
            x_next = lincomb_new(x, {{ratio, &x}, {-double(e) - k, &m}, {k, &m1}});
        }
        lower_order_nums_ = std::min(lower_order_nums_ + 1, kSolverOrder);
        ++step_index_;
        return x_next;
    }

private:
    Tensor model_outputs_[kSolverOrder];  // x̂₀ history, oldest first
    int lower_order_nums_ = 0;
    int step_index_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_dpm_scheduler(int steps, double shift) {
    return std::make_unique<FlowDPMpp>(dpm_schedule(steps, shift), shift);
}

}  // namespace wanrt
