// Schedules, the factory and the linear-combination op shared by the flow solvers.
#include "sched/scheduler.h"

#include <cmath>

#include "core/backend.h"
#include "core/error.h"
#include "ops/ops.h"
#include "sched/flow_common.h"

// The schedules replay numpy float64 arithmetic operation by operation; a fused multiply-add
// (GCC contracts a*b + c by default under -march=x86-64-v3) would change the last bit of a sigma
// and, where 1000·σ lands near an integer, the truncated timestep the DiT receives.
#pragma GCC optimize("fp-contract=off")

namespace wanrt {

namespace {

void check_args(int steps, double shift) {
    WANRT_CHECK(steps > 0, "sched", "sample steps ", steps,
                " must be at least 1; pass --sample_steps N with N >= 1");
    WANRT_CHECK(std::isfinite(shift) && shift > 0, "sched", "sample shift ", shift,
                " must be a positive number; pass e.g. --sample_shift 5.0");
}

// shift·σ / (1 + (shift − 1)·σ) in float64, one rounding per numpy operation.
double shift_sigma(double sigma, double shift) {
    double num = shift * sigma;
    double den = (shift - 1.0) * sigma;
    den = 1.0 + den;
    return num / den;
}

// numpy.linspace(start, stop, n + 1)[:n] in float64: i·step + start with step = (stop − start)/n.
std::vector<double> linspace_drop_last(double start, double stop, int n) {
    double step = (stop - start) / double(n);
    std::vector<double> y(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        double v = double(i) * step;
        y[size_t(i)] = v + start;
    }
    return y;
}

Schedule finish_schedule(const std::vector<double>& sigmas_f64) {
    Schedule s;
    for (double sg : sigmas_f64) {
        double t = sg * 1000.0;  // num_train_timesteps
        s.timesteps.push_back(int64_t(t));  // torch .to(int64) truncates toward zero
        s.sigmas.push_back(float(sg));
    }
    s.sigmas.push_back(0.0f);  // final_sigmas_type = "zero"
    return s;
}

}  // namespace

Schedule unipc_schedule(int steps, double shift) {
    check_args(steps, shift);
    // Constructor: σ_train = 1 − linspace(1, 1/1000, 1000) reversed, stored f32; σ_max is its first
    // entry read back with .item(), σ_min = 0.
    const double sigma_max = double(float(1.0 - 1.0 / 1000.0));
    std::vector<double> sg = linspace_drop_last(sigma_max, 0.0, steps);
    for (double& v : sg) v = shift_sigma(v, shift);
    Schedule s = finish_schedule(sg);
    // FlowUniPCMultistepScheduler finds its first step index by value and takes the second match
    // of a repeated t_0; the official loop then skips σ_0 and indexes past the end on its last step.
    WANRT_CHECK(steps < 2 || s.timesteps[0] != s.timesteps[1], "sched", "unipc with ", steps,
                " steps and shift ", shift, " repeats the first timestep ", s.timesteps[0],
                " (the official scheduler fails there); use fewer steps or a smaller shift");
    return s;
}

Schedule dpm_schedule(int steps, double shift) {
    check_args(steps, shift);
    // get_sampling_sigmas: linspace(1, 0, n + 1)[:n], shifted; set_timesteps(sigmas=…) then applies
    // its own shift = 1, which is the identity in float64.
    std::vector<double> sg = linspace_drop_last(1.0, 0.0, steps);
    for (double& v : sg) v = shift_sigma(v, shift);
    return finish_schedule(sg);
}

Schedule lcm_schedule(int steps, double shift) {
    check_args(steps, shift);
    // LightX2V: sigmas = linspace(1, 0, 1001)[:-1] (f32), shifted in f32, indexed at 1000 − step for
    // the uniform step list 1000·(1 − i/n); here in float64, rounded to f32 once.
    std::vector<double> sg;
    for (int i = 0; i < steps; ++i) {
        const int64_t idx = int64_t(1000) * i / steps;
        sg.push_back(shift_sigma(1.0 - double(idx) / 1000.0, shift));
    }
    Schedule s = finish_schedule(sg);
    for (size_t i = 0; i < s.timesteps.size(); ++i) s.timesteps[i] = int64_t(s.sigmas[i] * 1000.0f);
    return s;
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, int steps, double shift) {
    if (name == "unipc") return make_unipc_scheduler(steps, shift);
    if (name == "dpm++") return make_dpm_scheduler(steps, shift);
    if (name == "euler") return make_euler_scheduler(steps, shift);
    if (name == "lcm") return make_lcm_scheduler(steps, shift);
    fail("sched", "unknown sample solver '", name, "'; use one of: unipc, dpm++, euler, lcm");
}

void Scheduler::check_step(const Tensor& v, int t_index, const Tensor& x, int expected_index) const {
    WANRT_CHECK(t_index >= 0 && t_index < num_steps(), "sched", name(), " step index ", t_index,
                " is outside [0, ", num_steps(), ")");
    WANRT_CHECK(t_index == expected_index, "sched", name(), " step ", t_index,
                " called out of order (expected step ", expected_index,
                "); multistep solvers need steps 0, 1, ..., n-1 in turn, or reset()");
    WANRT_CHECK(v.defined() && x.defined(), "sched", name(), " step ", t_index, ": undefined tensor");
    WANRT_CHECK(v.dtype() == DType::F32 && x.dtype() == DType::F32, "sched", name(),
                " step needs f32 tensors, got v ", v.describe(), " and x ", x.describe());
    WANRT_CHECK(v.shape() == x.shape(), "sched", name(), " step: model output ", v.describe(),
                " and sample ", x.describe(), " differ in shape");
}

// --- helpers shared by the solvers (flow_common.h) ---

float flow_lambda(float sigma) {
    // λ = log α − log σ with α = 1 − σ, each a float32 0-d tensor op in the reference.
    float alpha = 1.0f - sigma;
    float la = std::log(alpha);
    float ls = std::log(sigma);
    return la - ls;
}

Tensor lincomb_new(const Tensor& like, std::initializer_list<std::pair<double, const Tensor*>> terms) {
    WANRT_ASSERT(terms.size() >= 1 && terms.size() <= 4);
    const Tensor* in[4];
    float coef[4];
    int n = 0;
    for (const auto& [c, t] : terms) {
        WANRT_ASSERT(std::isfinite(c));
        in[n] = t;
        coef[n] = float(c);
        ++n;
    }
    Tensor out = like.backend()->empty(DType::F32, like.shape());
    ops::lincomb(in, coef, n, out);
    return out;
}

}  // namespace wanrt
