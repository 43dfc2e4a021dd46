// Internal to src/sched: the solver constructors behind make_scheduler() and the helpers they share.
#pragma once

#include <initializer_list>
#include <memory>
#include <utility>

#include "sched/scheduler.h"

namespace wanrt {

std::unique_ptr<Scheduler> make_unipc_scheduler(int steps, double shift);
std::unique_ptr<Scheduler> make_dpm_scheduler(int steps, double shift);
std::unique_ptr<Scheduler> make_euler_scheduler(int steps, double shift);
std::unique_ptr<Scheduler> make_lcm_scheduler(int steps, double shift);

// Log-SNR of the flow convention in float32, as the reference computes it on 0-d fp32 tensors:
// log(1 − σ) − log(σ); σ = 0 gives +inf, σ = 1 gives −inf.
float flow_lambda(float sigma);

// A new f32 tensor shaped like `like` (on its backend) = Σ coef·tensor over 1 to 4 terms. The
// coefficients are combined on the host in double from the reference's f32 scalars, then rounded
// to f32 once.
Tensor lincomb_new(const Tensor& like, std::initializer_list<std::pair<double, const Tensor*>> terms);

}  // namespace wanrt
