// FlowUniPCMultistepScheduler as wan/text2video.py uses it (wan/utils/fm_solvers_unipc.py):
// solver_order 2, solver_type "bh2", predict_x0, lower_order_final, corrector on every step after the
// first (disable_corrector = []), no thresholding, final sigma 0. docs/wan21.md §6.3.
//
// Scalars follow the reference's float32 0-d tensor arithmetic op by op; the tensor updates of each
// predictor/corrector are regrouped into one linear combination per sample (coefficients combined
// in double, rounded to f32 once).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sched/flow_common.h"

#pragma GCC optimize("fp-contract=off")

namespace wanrt {

namespace {

constexpr int kSolverOrder = 2;

// torch.linalg.solve(R, b) for R = [[1, 1], [r, 1]] in float32, as LAPACK sgesv does it: partial
// pivoting, the pivot column scaled by the pivot's reciprocal, back substitution by division.
void solve2_f32(float r, float b1, float b2, float* rho0, float* rho1) {
    float a00 = 1.0f, a01 = 1.0f, a10 = r, a11 = 1.0f;
    if (std::fabs(a10) > std::fabs(a00)) {
        std::swap(a00, a10);
        std::swap(a01, a11);
        std::swap(b1, b2);
    }
    const float l = a10 * (1.0f / a00);
    const float u11 = a11 - l * a01;
    const float y2 = b2 - l * b1;
    const float x2 = y2 / u11;
    const float x1 = (b1 - x2 * a01) / a00;
    *rho0 = x1;
    *rho1 = x2;
}

class FlowUniPC final : public Scheduler {
public:
    FlowUniPC(Schedule s, double shift)
        : Scheduler(std::move(s.timesteps), std::move(s.sigmas), shift) {}

    std::string name() const override { return "unipc"; }

    void reset() override {
        model_outputs_[0] = model_outputs_[1] = Tensor();
        last_sample_ = Tensor();
        lower_order_nums_ = 0;
        this_order_ = 0;
        step_index_ = 0;
    }

    Tensor step(const Tensor& v, int i, const Tensor& x_in) override {
        check_step(v, i, x_in, step_index_);
        const int n = num_steps();

        // convert_model_output: x̂₀ = x − σ_i·v, from the sample as given (before correction).
        Tensor m_t = lincomb_new(x_in, {{1.0, &x_in}, {-double(sigmas_[size_t(i)]), &v}});

        Tensor x = x_in;
        if (i > 0 && last_sample_.defined()) x = corrector(m_t, i, this_order_);

        model_outputs_[0] = model_outputs_[1];
        model_outputs_[1] = m_t;

        int order = std::min(kSolverOrder, n - i);  // lower_order_final
        this_order_ = std::min(order, lower_order_nums_ + 1);  // warm-up
        WANRT_ASSERT(this_order_ > 0);

        last_sample_ = x;
        Tensor x_next = predictor(x, i, this_order_);

        lower_order_nums_ = std::min(lower_order_nums_ + 1, kSolverOrder);
        ++step_index_;
        return x_next;
    }

private:
    // Scalars of one UniPC update from σ_s0 to σ_t (multistep_uni_{p,c}_bh_update, bh2, x0 form).
    struct Coeffs {
        float ratio;   // σ_t / σ_s0
        float a_phi;   // α_t·h_phi_1
        float a_b;     // α_t·B_h
        float h, hh, h_phi_1, b_h;
        float lambda_s0;
    };
    static Coeffs coeffs(float sigma_t, float sigma_s0) {
        Coeffs c;
        const float alpha_t = 1.0f - sigma_t;
        const float lambda_t = flow_lambda(sigma_t);
        c.lambda_s0 = flow_lambda(sigma_s0);
        c.h = lambda_t - c.lambda_s0;
        c.hh = -c.h;  // predict_x0
        c.h_phi_1 = std::expm1(c.hh);
        c.b_h = std::expm1(c.hh);  // bh2
        c.ratio = sigma_t / sigma_s0;
        c.a_phi = alpha_t * c.h_phi_1;
        c.a_b = alpha_t * c.b_h;
        return c;
    }

    // UniP to σ_{i+1}; x is the (corrected) sample at σ_i, model_outputs_ = [m_{i−1}, m_i].
    Tensor predictor(const Tensor& x, int i, int order) {
        const Coeffs c = coeffs(sigmas_[size_t(i) + 1], sigmas_[size_t(i)]);
        const Tensor& m0 = model_outputs_[1];
        if (order == 1) {
            // x_t = σ_t/σ_s0·x − α_t·h_phi_1·m0
            return lincomb_new(x, {{c.ratio, &x}, {-double(c.a_phi), &m0}});
        }
        // order 2: D1 = (m_{i−1} − m0)/r_k, ρ_p = 0.5; x_t = … − α_t·B_h·0.5·D1.
        const Tensor& m1 = model_outputs_[0];
        const float lambda_s1 = flow_lambda(sigmas_[size_t(i) - 1]);
        const float rk = (lambda_s1 - c.lambda_s0) / c.h;
        const double k = double(c.a_b) * 0.5 / double(rk);
        return lincomb_new(x, {{c.ratio, &x}, {-double(c.a_phi) + k, &m0}, {-k, &m1}});
    }

    // UniC at σ_i: recomputes the sample from last_sample_ (at σ_{i−1}) with the new model output
    // m_t; model_outputs_ = [m_{i−2}, m_{i−1}] (not yet shifted).
    Tensor corrector(const Tensor& m_t, int i, int order) {
        const Coeffs c = coeffs(sigmas_[size_t(i)], sigmas_[size_t(i) - 1]);
        const Tensor& m0 = model_outputs_[1];
        const Tensor& x_prev = last_sample_;
        if (order == 1) {
            // ρ_c = [0.5]: x_t = σ_t/σ_s0·x − α_t·h_phi_1·m0 − α_t·B_h·0.5·(m_t − m0)
            const double k = double(c.a_b) * 0.5;
            return lincomb_new(m_t, {{c.ratio, &x_prev}, {-double(c.a_phi) + k, &m0}, {-k, &m_t}});
        }
        WANRT_ASSERT(order == 2);
        const Tensor& m1 = model_outputs_[0];
        const float lambda_s1 = flow_lambda(sigmas_[size_t(i) - 2]);
        const float rk = (lambda_s1 - c.lambda_s0) / c.h;
        // b_k = h_phi_k·k!/B_h with h_phi_1' = h_phi_1/hh − 1, h_phi_2' = h_phi_1'/hh − 1/2.
        float h_phi_k = c.h_phi_1 / c.hh - 1.0f;
        const float b1 = (h_phi_k * 1.0f) / c.b_h;
        h_phi_k = h_phi_k / c.hh - 0.5f;
        const float b2 = (h_phi_k * 2.0f) / c.b_h;
        float rho0, rho1;
        solve2_f32(rk, b1, b2, &rho0, &rho1);
        // x_t = σ_t/σ_s0·x − α_t·h_phi_1·m0 − α_t·B_h·(ρ0·(m1 − m0)/r_k + ρ1·(m_t − m0))
        const double k1 = double(c.a_b) * double(rho0) / double(rk);
        const double k2 = double(c.a_b) * double(rho1);
        return lincomb_new(m_t, {{c.ratio, &x_prev},
                                 {-double(c.a_phi) + k1 + k2, &m0},
                                 {-k1, &m1},
                                 {-k2, &m_t}});
    }

    Tensor model_outputs_[kSolverOrder];  // x̂₀ history, oldest first
    Tensor last_sample_;
    int lower_order_nums_ = 0;
    int this_order_ = 0;
    int step_index_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_unipc_scheduler(int steps, double shift) {
    return std::make_unique<FlowUniPC>(unipc_schedule(steps, shift), shift);
}

}  // namespace wanrt
