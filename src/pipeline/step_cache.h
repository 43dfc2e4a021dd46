// Step caching for the CFG denoising loop (`wanrt generate --cache teacache|magcache|easycache[:THRESH]`):
// a policy the loop asks, per step and per CFG branch, "run the DiT or reuse a cached residual?".
// Each method is the reference implementation's decision rule, kept to the letter (the reference
// counts DiT calls, cnt = 2·step + branch, branch 0 = cond and 1 = uncond, N = 2·steps calls):
//
//  TeaCache  (ali-vilab/TeaCache, TeaCache4Wan2.1/teacache_generate.py, teacache_forward)
//    modulated input m = e [1, D] (the time embedding), or e0 [1, 6, D] with use_ret_steps;
//    always compute when cnt < R or cnt ≥ C (R = 2, C = N − 2; use_ret_steps: R = 10, C = N),
//    else acc_b += poly(mean|m − m_prev| / mean|m_prev|) (np.poly1d coefficients per model) and
//    reuse when acc_b < thresh, else compute and acc_b = 0. A reused call adds the branch's last
//    residual (block-stack output − input) to the block-stack input; the head still runs.
//  MagCache  (Zehong-Ma/MagCache, MagCache4Wan2.1/magcache_generate.py, magcache_forward)
//    from cnt ≥ int(N·retention_ratio): R_b *= mag_ratios[cnt], S_b += 1, E_b += |1 − R_b|; reuse
//    the branch's residual when E_b < thresh and S_b ≤ K, else reset (E_b, S_b, R_b = 0, 0, 1) and
//    compute. mag_ratios are calibrated per model (tables for the four Wan2.1 releases; others:
//    `magcache:calibrate=FILE` records them as magcache_calibration does, nearest-interpolated per
//    branch when their count is not N).
//  EasyCache (H-EmbodVis/EasyCache, EasyCache4Wan2.1/easycache_generate.py, easycache_forward)
//    decided on the cond call and applied to the pair: compute when cnt < 2·ret_steps or cnt ≥ N − 2;
//    else, with k = mean|Δout| / mean|Δin| between the last two computed cond calls,
//    acc += k · mean|x − x_prev| / mean|out_prev|; reuse when acc < thresh (else compute, acc = 0).
//    A reused call returns x + (out − x) of the branch's last computed call (the whole DiT skipped).
//
// Reductions (rel-L1, means, norms) are computed on the host in float64 from f32 copies: small for
// TeaCache (the embedding), a latent per step for EasyCache, the full residual only when calibrating.
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/dit.h"

namespace wanrt {

enum class CacheMethod { None, TeaCache, MagCache, EasyCache };

struct StepCacheConfig {
    CacheMethod method = CacheMethod::None;
    double thresh = std::numeric_limits<double>::quiet_NaN();  // NaN: the method's default for the model
    // TeaCache
    bool use_ret_steps = false;
    std::vector<double> coefficients;  // np.poly1d order (highest power first); empty: by model
    // MagCache
    double retention_ratio = 0.2;
    int max_skip = 2;                 // K
    std::vector<double> mag_ratios;   // cond/uncond interleaved, the [1, 1] padding first; empty: by model
    std::string ratios_file;          // JSON list written by calibration (the reference's wan2_1_mag_ratio.json)
    bool calibrate = false;           // compute every call, record the ratios (magcache_calibration)
    std::string calibrate_file;       // where calibration writes them ("" = summary only)
    // EasyCache
    int ret_steps = 10;               // warm-up steps (the reference's hard-coded 10)

    // "teacache[:THRESH][,ret]", "magcache[:THRESH][,K=N][,retention=R][,ratios=FILE]",
    // "magcache:calibrate[=FILE]", "easycache[:THRESH][,ret_steps=N]", "none". Bad specs throw
    // "[cache] ..." naming the accepted forms.
    static StepCacheConfig parse(const std::string& spec);
    std::string name() const;  // "teacache", ...
};

// The reference tables. model: "t2v-1.3B", "t2v-14B", "i2v-480P", "i2v-720P".
std::vector<double> teacache_coefficients(const std::string& model, bool use_ret_steps);
std::vector<double> magcache_ratios(const std::string& model);  // [1, 1] + the published list
// MagCache's nearest_interp: np.round(arange(n)·(len−1)/(n−1)) (round half to even) into src.
std::vector<double> magcache_nearest_interp(const std::vector<double>& src, int n);
// Which release a DiT is, for the tables: "t2v-1.3B" (dim 1536), "t2v-14B" (dim 5120), i2v
// "i2v-720P" when the latent covers ≥ 1280·720·0.9 pixels else "i2v-480P"; "" otherwise (flf2v,
// other sizes: the references have no fit for them).
std::string step_cache_model_key(const DitConfig& dit, const Shape& latent);

// One DiT call the loop asked about.
struct StepDecision {
    int step = 0, branch = 0;  // branch 0 = cond, 1 = uncond
    bool computed = true;
    double compared = 0;  // the accumulated value compared with thresh (NaN: no comparison, forced)
    double state = 0;     // the accumulator after the call (TeaCache acc_b, MagCache E_b, EasyCache acc)
};

class StepCache {
public:
    explicit StepCache(StepCacheConfig cfg) : spec_(std::move(cfg)) {}

    // Resets all state and resolves defaults for this model and run (thresholds, coefficients,
    // ratios). Throws "[cache] ..." when MagCache has no ratios for the model.
    void begin(const DitConfig& dit, int steps, const Shape& latent);
    // The DiT output for one call: computed, or reused as the method does.
    Tensor forward(const DitModel& dit, const DitSample& s, int64_t seq_len, int step, int branch);

    const StepCacheConfig& config() const { return cfg_; }  // resolved by begin
    const std::string& model_note() const { return note_; }
    const std::vector<StepDecision>& decisions() const { return log_; }
    const std::vector<double>& calibrated_ratios() const { return calib_; }  // [1, 1] + rounded ratios
    int computed_calls() const;
    // Lines for the generate summary: method, reuse counts, and per step C/R for cond and uncond.
    std::vector<std::string> summary_lines() const;

private:
    Tensor forward_stack(const DitModel& dit, const DitSample& s, int64_t seq_len, int step, int branch);
    Tensor forward_easy(const DitModel& dit, const DitSample& s, int64_t seq_len, int step, int branch);

    StepCacheConfig spec_, cfg_;
    std::string note_;
    int steps_ = 0;
    std::vector<StepDecision> log_;
    std::vector<double> calib_;
    // per branch
    Tensor residual_[2];               // TeaCache / MagCache: block-stack residual; EasyCache: out − x
    std::vector<double> prev_mod_[2];  // TeaCache m_prev
    double acc_[2] = {0, 0};           // TeaCache acc, MagCache E, EasyCache acc (branch 0)
    double mag_r_[2] = {1, 1};
    int mag_s_[2] = {0, 0};
    // EasyCache (cond branch)
    bool calc_pair_ = true, has_k_ = false, has_out_[2] = {false, false};
    double k_ = 0;
    std::vector<float> prev_in_, prev_prev_in_, prev_out_;
    bool has_prev_in_ = false, has_prev_prev_in_ = false;
};

}  // namespace wanrt
