// AdamW (train/adamw.h): the checked front-end of adamw_step and the optimizer's bookkeeping.
#include "train/adamw.h"

#include <cmath>

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

namespace ops {
void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamWHyper& h, int64_t step) {
    const char* op = "adamw_step";
    for (const Tensor* t : {&p, &g, &m, &v}) {
        if (!t->defined() || t->dtype() != DType::F32 || !t->is_contiguous())
            fail(op, "parameters, gradients and moments must be contiguous f32, got ",
                 t->defined() ? t->describe() : "none");
        if (t->shape() != p.shape()) fail(op, "shape ", t->describe(), " differs from the parameter's ", p.describe());
    }
    if (step < 1) fail(op, "step ", step, " must count from 1");
    Backend& be = *p.backend();
    if (!be.supports(op, DType::F32, DType::F32))
        fail(op, "not implemented on ", be.name(), " (training runs on cpu and cuda)");
    AdamWStepArgs a{p, g, m, v, h, step};
    dispatch(be, a, {}, 10.0 * double(p.numel()));
}
}  // namespace ops

double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm) {
    double total2 = 0;
    for (const Tensor& g : grads) {
        if (!g.defined() || g.dtype() != DType::F32 || !g.is_contiguous())
            fail("clip_grad_norm", "gradients must be contiguous f32, got ", g.defined() ? g.describe() : "none");
        for (float v : ops::to_host_f32(g)) total2 += double(v) * v;
    }
    const double total = std::sqrt(total2);
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1) {
        const float c = float(coef);
        for (const Tensor& g : grads) {
            const Tensor* in[1] = {&g};
            ops::lincomb(in, &c, 1, g);
        }
    }
    return total;
}

AdamW::AdamW(std::vector<Tensor> params, AdamWHyper h) : h_(h) {
    for (Tensor& p : params) {
        Slot s;
        s.param = p;
        Backend& be = *p.backend();
        s.master = p.dtype() == DType::F32 && p.is_contiguous() ? p : ops::to_dtype(p, DType::F32);
        s.m = ops::zeros(be, p.shape());
        s.v = ops::zeros(be, p.shape());
        slots_.push_back(std::move(s));
    }
}

void AdamW::step(const std::vector<Tensor>& grads) {
    if (grads.size() != slots_.size())
        fail("adamw", grads.size(), " gradients for ", slots_.size(), " parameters; pass one per parameter, in order");
    ++t_;
    for (size_t i = 0; i < slots_.size(); ++i) {
        Slot& s = slots_[i];
        ops::adamw_step(s.master, ops::contiguous(grads[i]), s.m, s.v, h_, t_);
        if (s.master.raw() != s.param.raw()) ops::copy(s.master, s.param);  // rounded to the weight's dtype once
    }
}

void AdamW::restore_params() {
    for (Slot& s : slots_)
        if (s.master.raw() != s.param.raw()) ops::copy(s.master, s.param);
}

}  // namespace wanrt
