// Wan's flow-matching objective (train/flow_match.h).
#include "train/flow_match.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

FlowMatchTrainTable flow_match_table(double shift, int64_t n) {
    if (n < 1 || !(shift > 0)) fail("flow_match", "need n ≥ 1 steps and shift > 0, got ", n, ", ", shift);
    FlowMatchTrainTable t;
    for (int64_t k = 0; k < n; ++k) {
        const double s = 1.0 - double(k) / double(n);  // linspace(1, 0, n + 1)[:-1]
        const double sigma = shift * s / (1 + (shift - 1) * s);
        t.sigmas.push_back(sigma);
        t.timesteps.push_back(sigma * 1000.0);  // num_train_timesteps
    }
    std::vector<double> y;
    for (double ts : t.timesteps) y.push_back(std::exp(-2 * std::pow((ts - double(n) / 2) / double(n), 2)));
    const double lo = *std::min_element(y.begin(), y.end());
    double sum = 0;
    for (double& v : y) sum += (v -= lo);
    for (double v : y) t.weights.push_back(sum > 0 ? v * double(n) / sum : 1.0);
    return t;
}

FlowMatchPair flow_match_pair(const FlowMatchTrainTable& tab, int64_t k, const Tensor& x0, const Tensor& noise) {
    if (k < 0 || k >= int64_t(tab.sigmas.size()))
        fail("flow_match", "table index ", k, " outside [0, ", tab.sigmas.size(), ")");
    if (x0.shape() != noise.shape())
        fail("flow_match", "noise ", noise.describe(), " does not match x0 ", x0.describe());
    Backend& be = *x0.backend();
    const Tensor a = ops::contiguous(x0), b = ops::contiguous(noise);
    const Tensor* in[2] = {&a, &b};
    const float s = float(tab.sigmas[size_t(k)]);
    FlowMatchPair p;
    p.x_t = be.empty(DType::F32, x0.shape());
    const float cx[2] = {1 - s, s};
    ops::lincomb(in, cx, 2, p.x_t);
    p.target = be.empty(DType::F32, x0.shape());
    const float ct[2] = {-1, 1};
    ops::lincomb(in, ct, 2, p.target);
    p.timestep = tab.timesteps[size_t(k)];
    p.weight = tab.weights[size_t(k)];
    return p;
}

double flow_match_loss(const Tensor& pred, const Tensor& target, double weight, Tensor* dpred) {
    if (pred.shape() != target.shape())
        fail("flow_match", "prediction ", pred.describe(), " does not match the target ", target.describe());
    const int64_t n = pred.numel();
    if (n == 0) fail("flow_match", "empty prediction");
    const std::vector<float> p = ops::to_host_f32(pred), t = ops::to_host_f32(target);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += (double(p[size_t(i)]) - t[size_t(i)]) * (double(p[size_t(i)]) - t[size_t(i)]);
    if (dpred) {
        const Tensor a = ops::contiguous(pred), b = ops::contiguous(target);
        const Tensor* in[2] = {&a, &b};
        const float c = float(2 * weight / double(n));
        const float coef[2] = {c, -c};
        *dpred = pred.backend()->empty(DType::F32, pred.shape());
        ops::lincomb(in, coef, 2, *dpred);
    }
    return weight * s / double(n);
}

}  // namespace wanrt
