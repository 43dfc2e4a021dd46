// Step caching policies (contract and references in step_cache.h).
#include "pipeline/step_cache.h"

#include <cfenv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// teacache_generate.py, generate(): `coefficients` per task, np.poly1d order.
const double kTeaT2V13B[] = {2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01};
const double kTeaT2V14B[] = {-5784.54975374, 5449.50911966, -1811.16591783, 256.27178429, -13.02252404};
const double kTeaI2V480P[] = {-3.02331670e+02, 2.23948934e+02, -5.25463970e+01, 5.87348440e+00, -2.01973289e-01};
const double kTeaI2V720P[] = {-114.36346466, 65.26524496, -18.82220707, 4.91518089, -0.23412683};
// use_ret_steps (modulated input e0)
const double kTeaRetT2V13B[] = {-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02};
const double kTeaRetT2V14B[] = {-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01};
const double kTeaRetI2V480P[] = {2.57151496e+05, -3.54229917e+04, 1.40286849e+03, -1.35890334e+01, 1.32517977e-01};
const double kTeaRetI2V720P[] = {8.10705460e+03, 2.13393892e+03, -3.72934672e+02, 1.66203073e+01, -4.17769401e-02};

// magcache_generate.py, generate(): mag_ratios = [1.0]*2 + these (calibrated with SDPA attention).
#include "pipeline/step_cache_tables.inc"

template <size_t N>
std::vector<double> vec(const double (&a)[N]) {
    return std::vector<double>(a, a + N);
}

double poly1d(const std::vector<double>& c, double x) {  // np.poly1d(c)(x): Horner, highest power first
    double y = 0;
    for (double v : c) y = y * x + v;
    return y;
}

// mean|a − b| (b empty: mean|a|), float64 accumulation.
double mean_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += std::fabs(double(a[i]) - (b.empty() ? 0.0 : double(b[i])));
    return a.empty() ? 0.0 : s / double(a.size());
}

double parse_number(const std::string& v, const std::string& spec) {
    size_t pos = 0;
    double d = 0;
    try {
        d = std::stod(v, &pos);
    } catch (...) {
        pos = 0;
    }
    WANRT_CHECK(pos == v.size() && !v.empty() && std::isfinite(d) && d >= 0, "cache", "'", v, "' in --cache ", spec,
                " is not a non-negative number");
    return d;
}

// Python's round(x, 5) for the calibration's printed ratios (correctly rounded decimal; the
// text round trip matches repr's shortest form for these magnitudes).
double round5(double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.5f", x);
    return std::strtod(buf, nullptr);
}

}  // namespace

std::string StepCacheConfig::name() const {
    switch (method) {
        case CacheMethod::TeaCache: return "teacache";
        case CacheMethod::MagCache: return "magcache";
        case CacheMethod::EasyCache: return "easycache";
        default: return "none";
    }
}

StepCacheConfig StepCacheConfig::parse(const std::string& spec) {
    const char* forms =
        "; use teacache[:THRESH][,ret], magcache[:THRESH][,K=N][,retention=R][,ratios=FILE], "
        "magcache:calibrate[=FILE], easycache[:THRESH][,ret_steps=N] or none";
    StepCacheConfig c;
    std::vector<std::string> parts;
    {
        std::string cur;
        for (char ch : spec) {
            if (ch == ',') {
                parts.push_back(cur);
                cur.clear();
            } else {
                cur += ch;
            }
        }
        parts.push_back(cur);
    }
    std::string head = parts[0], thresh;
    if (const size_t colon = head.find(':'); colon != std::string::npos) {
        thresh = head.substr(colon + 1);
        head = head.substr(0, colon);
    }
    if (head == "none" && thresh.empty() && parts.size() == 1) return c;
    if (head == "teacache") c.method = CacheMethod::TeaCache;
    else if (head == "magcache") c.method = CacheMethod::MagCache;
    else if (head == "easycache") c.method = CacheMethod::EasyCache;
    else fail("cache", "unknown --cache method '", head, "'", forms);
    if (c.method == CacheMethod::MagCache && thresh.rfind("calibrate", 0) == 0) {
        WANRT_CHECK(thresh == "calibrate" || thresh[9] == '=', "cache", "bad --cache ", spec, forms);
        c.calibrate = true;
        if (thresh.size() > 10) c.calibrate_file = thresh.substr(10);
    } else if (!thresh.empty()) {
        c.thresh = parse_number(thresh, spec);
    }
    for (size_t i = 1; i < parts.size(); ++i) {
        const std::string& p = parts[i];
        const size_t eq = p.find('=');
        const std::string key = p.substr(0, eq), val = eq == std::string::npos ? "" : p.substr(eq + 1);
        if (c.method == CacheMethod::TeaCache && p == "ret") {
            c.use_ret_steps = true;
        } else if (c.method == CacheMethod::MagCache && key == "K" && !val.empty()) {
            c.max_skip = int(parse_number(val, spec));
        } else if (c.method == CacheMethod::MagCache && key == "retention" && !val.empty()) {
            c.retention_ratio = parse_number(val, spec);
            WANRT_CHECK(c.retention_ratio <= 1, "cache", "retention=", val, " in --cache ", spec, " must be in [0, 1]");
        } else if (c.method == CacheMethod::MagCache && key == "ratios" && !val.empty()) {
            c.ratios_file = val;
        } else if (c.method == CacheMethod::EasyCache && key == "ret_steps" && !val.empty()) {
            c.ret_steps = int(parse_number(val, spec));
        } else {
            fail("cache", "unknown option '", p, "' in --cache ", spec, forms);
        }
    }
    return c;
}

std::vector<double> teacache_coefficients(const std::string& model, bool ret) {
    if (model == "t2v-1.3B") return ret ? vec(kTeaRetT2V13B) : vec(kTeaT2V13B);
    if (model == "t2v-14B") return ret ? vec(kTeaRetT2V14B) : vec(kTeaT2V14B);
    if (model == "i2v-480P") return ret ? vec(kTeaRetI2V480P) : vec(kTeaI2V480P);
    if (model == "i2v-720P") return ret ? vec(kTeaRetI2V720P) : vec(kTeaI2V720P);
    return {};
}

std::vector<double> magcache_ratios(const std::string& model) {
    std::vector<double> r;
    if (model == "t2v-1.3B") r = vec(kMagT2V13B);
    else if (model == "t2v-14B") r = vec(kMagT2V14B);
    else if (model == "i2v-480P") r = vec(kMagI2V480P);
    else if (model == "i2v-720P") r = vec(kMagI2V720P);
    else return {};
    r.insert(r.begin(), {1.0, 1.0});
    return r;
}

std::vector<double> magcache_nearest_interp(const std::vector<double>& src, int n) {
    WANRT_ASSERT(!src.empty() && n >= 1);
    if (n == 1) return {src.back()};
    const double scale = double(src.size() - 1) / double(n - 1);
    std::vector<double> out;
    const int mode = std::fegetround();
    std::fesetround(FE_TONEAREST);  // np.round: half to even
    for (int i = 0; i < n; ++i) out.push_back(src[size_t(std::nearbyint(double(i) * scale))]);
    std::fesetround(mode);
    return out;
}

std::string step_cache_model_key(const DitConfig& dit, const Shape& latent) {
    if (dit.model_type == "t2v" && dit.dim == 1536 && dit.num_layers == 30) return "t2v-1.3B";
    if (dit.model_type == "t2v" && dit.dim == 5120 && dit.num_layers == 40) return "t2v-14B";
    if (dit.model_type == "i2v" && dit.dim == 5120 && dit.num_layers == 40 && latent.size() == 4) {
        const double pixels = double(latent[2]) * double(latent[3]) * 64.0;
        return pixels >= 1280.0 * 720.0 * 0.9 ? "i2v-720P" : "i2v-480P";
    }
    return "";
}

void StepCache::begin(const DitConfig& dit, int steps, const Shape& latent) {
    cfg_ = spec_;
    steps_ = steps;
    log_.clear();
    calib_.clear();
    for (int b = 0; b < 2; ++b) {
        residual_[b] = Tensor();
        prev_mod_[b].clear();
        acc_[b] = 0;
        mag_r_[b] = 1;
        mag_s_[b] = 0;
        has_out_[b] = false;
    }
    calc_pair_ = true;
    has_k_ = has_prev_in_ = has_prev_prev_in_ = false;
    k_ = 0;
    prev_in_.clear();
    prev_prev_in_.clear();
    prev_out_.clear();
    note_.clear();

    const std::string model = step_cache_model_key(dit, latent);
    const int N = 2 * steps;
    if (cfg_.method == CacheMethod::TeaCache) {
        if (cfg_.coefficients.empty()) cfg_.coefficients = teacache_coefficients(model, cfg_.use_ret_steps);
        if (cfg_.coefficients.empty()) {
            // The reference has no coefficients for other sizes; the 1.3B T2V fit is the closest.
            cfg_.coefficients = teacache_coefficients("t2v-1.3B", cfg_.use_ret_steps);
            note_ = "no TeaCache fit for this model; using the t2v-1.3B coefficients";
        } else if (note_.empty()) {
            note_ = model + " coefficients";
        }
        // The README's example thresholds per release; the script's own default is 0.2.
        if (std::isnan(cfg_.thresh))
            cfg_.thresh = model == "t2v-1.3B" ? 0.08 : model == "i2v-480P" ? 0.26 : model == "i2v-720P" ? 0.3 : 0.2;
    } else if (cfg_.method == CacheMethod::MagCache) {
        if (std::isnan(cfg_.thresh)) cfg_.thresh = 0.12;
        if (cfg_.calibrate) {
            note_ = "calibration: every call computed, magnitude ratios recorded";
        } else {
            if (cfg_.mag_ratios.empty() && !cfg_.ratios_file.empty()) {
                std::ifstream in(cfg_.ratios_file);
                WANRT_CHECK(in, "cache", "cannot read MagCache ratios file ", cfg_.ratios_file,
                            "; write it with --cache magcache:calibrate=", cfg_.ratios_file);
                std::stringstream ss;
                ss << in.rdbuf();
                const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
                WANRT_CHECK(j.is_array() && !j.empty(), "cache", "MagCache ratios file ", cfg_.ratios_file,
                            " is not a JSON list of numbers (as calibration writes it)");
                cfg_.mag_ratios = {1.0, 1.0};  // the reference pads the calibrated list with [1.0]*2
                for (const auto& v : j) {
                    WANRT_CHECK(v.is_number(), "cache", "MagCache ratios file ", cfg_.ratios_file,
                                " holds a non-number: ", v.dump());
                    cfg_.mag_ratios.push_back(v.get<double>());
                }
                note_ = "ratios from " + cfg_.ratios_file;
            }
            if (cfg_.mag_ratios.empty()) {
                cfg_.mag_ratios = magcache_ratios(model);
                note_ = model + " ratios";
            }
            WANRT_CHECK(!cfg_.mag_ratios.empty(), "cache",
                        "MagCache has no calibrated magnitude ratios for this model (dim ", dit.dim, ", ",
                        dit.num_layers, " layers); run once with --cache magcache:calibrate=FILE, then pass "
                        "--cache magcache,ratios=FILE");
            WANRT_CHECK(cfg_.mag_ratios.size() >= 2 && cfg_.mag_ratios.size() % 2 == 0, "cache",
                        "MagCache ratios must come in cond/uncond pairs, got ", cfg_.mag_ratios.size());
            if (int(cfg_.mag_ratios.size()) != N) {  // nearest interpolation per branch, as the reference
                std::vector<double> con, ucon;
                for (size_t i = 0; i < cfg_.mag_ratios.size(); ++i) (i % 2 ? ucon : con).push_back(cfg_.mag_ratios[i]);
                con = magcache_nearest_interp(con, steps);
                ucon = magcache_nearest_interp(ucon, steps);
                cfg_.mag_ratios.clear();
                for (int i = 0; i < steps; ++i) {
                    cfg_.mag_ratios.push_back(con[size_t(i)]);
                    cfg_.mag_ratios.push_back(ucon[size_t(i)]);
                }
            }
        }
    } else if (cfg_.method == CacheMethod::EasyCache) {
        if (std::isnan(cfg_.thresh)) cfg_.thresh = 0.05;
    }
}

int StepCache::computed_calls() const {
    int n = 0;
    for (const StepDecision& d : log_) n += d.computed;
    return n;
}

Tensor StepCache::forward(const DitModel& dit, const DitSample& s, int64_t seq_len, int step, int branch) {
    WANRT_ASSERT(branch == 0 || branch == 1);
    WANRT_CHECK(step >= 0 && step < steps_, "cache", "step ", step, " outside the ", steps_,
                " steps begin() was given; call begin() before the loop");
    switch (cfg_.method) {
        case CacheMethod::TeaCache:
        case CacheMethod::MagCache: return forward_stack(dit, s, seq_len, step, branch);
        case CacheMethod::EasyCache: return forward_easy(dit, s, seq_len, step, branch);
        default: {
            log_.push_back({step, branch, true, kNaN, 0});
            return dit.forward({s}, seq_len)[0];
        }
    }
}

// TeaCache and MagCache: the decision sits between the time embedding and the block stack.
Tensor StepCache::forward_stack(const DitModel& dit, const DitSample& s, int64_t seq_len, int step, int branch) {
    const int cnt = 2 * step + branch, N = 2 * steps_;
    StepDecision d{step, branch, true, kNaN, 0};
    Tensor* res = &residual_[branch];
    DitStackHook hook;
    hook.reuse = [&](const Tensor& e, const Tensor& e0) -> Tensor {
        bool calc = true;
        if (cfg_.method == CacheMethod::TeaCache) {
            const std::vector<float> mf = ops::to_host_f32(cfg_.use_ret_steps ? e0 : e);
            std::vector<double> m(mf.begin(), mf.end());
            const int ret = cfg_.use_ret_steps ? 10 : 2, cutoff = cfg_.use_ret_steps ? N : N - 2;
            if (cnt < ret || cnt >= cutoff || prev_mod_[branch].size() != m.size()) {
                acc_[branch] = 0;
            } else {
                double num = 0, den = 0;
                for (size_t i = 0; i < m.size(); ++i) {
                    num += std::fabs(m[i] - prev_mod_[branch][i]);
                    den += std::fabs(prev_mod_[branch][i]);
                }
                acc_[branch] += poly1d(cfg_.coefficients, num / den);  // the means' counts cancel
                d.compared = acc_[branch];
                calc = !(acc_[branch] < cfg_.thresh);
                if (calc) acc_[branch] = 0;
            }
            prev_mod_[branch] = std::move(m);
        } else if (!cfg_.calibrate && cnt >= int(double(N) * cfg_.retention_ratio)) {  // MagCache
            mag_r_[branch] *= cfg_.mag_ratios[size_t(cnt)];
            mag_s_[branch] += 1;
            acc_[branch] += std::fabs(1.0 - mag_r_[branch]);
            d.compared = acc_[branch];
            if (acc_[branch] < cfg_.thresh && mag_s_[branch] <= cfg_.max_skip) {
                calc = false;
            } else {
                acc_[branch] = 0;
                mag_s_[branch] = 0;
                mag_r_[branch] = 1;
            }
        }
        if (!calc && !res->defined()) calc = true;  // nothing cached yet (the references never get here)
        d.computed = calc;
        return calc ? Tensor() : *res;
    };
    hook.computed = [&](const Tensor& r) {
        if (cfg_.method == CacheMethod::MagCache && cfg_.calibrate && cnt >= 2 && res->defined()) {
            // magcache_calibration: mean over tokens of ‖r‖/‖r_prev‖ (norm over dim), rounded to 5 places.
            const std::vector<float> a = ops::to_host_f32(r), b = ops::to_host_f32(*res);
            const int64_t D = r.size(-1), rows = r.numel() / D;
            double sum = 0;
            for (int64_t i = 0; i < rows; ++i) {
                double na = 0, nb = 0;
                for (int64_t j = 0; j < D; ++j) {
                    na += double(a[size_t(i * D + j)]) * a[size_t(i * D + j)];
                    nb += double(b[size_t(i * D + j)]) * b[size_t(i * D + j)];
                }
                sum += std::sqrt(na) / std::sqrt(nb);
            }
            if (calib_.empty()) calib_ = {1.0, 1.0};
            calib_.push_back(round5(sum / double(rows)));
        }
        *res = r;
    };
    Tensor out = dit.forward({s}, seq_len, nullptr, &hook)[0];
    d.state = acc_[branch];
    log_.push_back(d);
    if (cfg_.calibrate && cnt == N - 1 && !cfg_.calibrate_file.empty()) {
        std::ofstream f(cfg_.calibrate_file);
        nlohmann::json j = std::vector<double>(calib_.begin() + std::min<size_t>(2, calib_.size()), calib_.end());
        f << j.dump() << "\n";  // the reference's wan2_1_mag_ratio.json: without the [1, 1] padding
        WANRT_CHECK(f.good(), "cache", "cannot write MagCache ratios to ", cfg_.calibrate_file);
    }
    return out;
}

// EasyCache: the whole DiT output is cached; the decision is made on the cond call.
Tensor StepCache::forward_easy(const DitModel& dit, const DitSample& s, int64_t seq_len, int step, int branch) {
    const int cnt = 2 * step + branch, N = 2 * steps_;
    StepDecision d{step, branch, true, kNaN, 0};
    std::vector<float> x;
    if (branch == 0) {
        x = ops::to_host_f32(s.x);
        if (cnt < 2 * cfg_.ret_steps || cnt >= N - 2) {
            calc_pair_ = true;
            acc_[0] = 0;
        } else if (has_prev_in_ && has_out_[0]) {
            const double in_change = mean_abs_diff(x, prev_in_);
            if (has_k_) {
                acc_[0] += k_ * (in_change / mean_abs_diff(prev_out_, {}));
                d.compared = acc_[0];
                calc_pair_ = !(acc_[0] < cfg_.thresh);
                if (calc_pair_) acc_[0] = 0;
            } else {
                calc_pair_ = true;
            }
        } else {
            calc_pair_ = true;
        }
        prev_in_ = x;
        has_prev_in_ = true;
    }
    Backend& be = dit.backend();
    if (!calc_pair_ && has_out_[branch]) {
        d.computed = false;
        d.state = acc_[0];
        log_.push_back(d);
        return ops::add(s.x, residual_[branch]);  // raw_input + cache
    }
    Tensor out = dit.forward({s}, seq_len)[0];
    Tensor cache = be.empty(DType::F32, out.shape());  // out − raw_input
    const Tensor xin = ops::contiguous(s.x);
    const Tensor* parts[2] = {&out, &xin};
    const float coef[2] = {1.0f, -1.0f};
    ops::lincomb(parts, coef, 2, cache);
    residual_[branch] = cache;
    if (branch == 0) {
        const std::vector<float> o = ops::to_host_f32(out);
        if (has_out_[0]) {
            const double out_change = mean_abs_diff(o, prev_out_);
            if (has_prev_prev_in_) {
                k_ = out_change / mean_abs_diff(prev_in_, prev_prev_in_);
                has_k_ = true;
            }
        }
        prev_prev_in_ = prev_in_;  // the input of this computed call
        has_prev_prev_in_ = true;
        prev_out_ = o;
    }
    has_out_[branch] = true;
    d.state = acc_[0];
    log_.push_back(d);
    return out;
}

std::vector<std::string> StepCache::summary_lines() const {
    std::vector<std::string> lines;
    const int calls = int(log_.size()), computed = computed_calls();
    std::string head = cat(cfg_.name(), cfg_.calibrate ? " calibrate" : cat(" thresh ", cfg_.thresh));
    if (cfg_.method == CacheMethod::TeaCache && cfg_.use_ret_steps) head += ", use_ret_steps";
    if (cfg_.method == CacheMethod::MagCache && !cfg_.calibrate)
        head += cat(", K ", cfg_.max_skip, ", retention ", cfg_.retention_ratio);
    if (cfg_.method == CacheMethod::EasyCache) head += cat(", ret_steps ", cfg_.ret_steps);
    if (!note_.empty()) head += " (" + note_ + ")";
    lines.push_back(head);
    lines.push_back(cat(computed, " of ", calls, " DiT calls computed, ", calls - computed, " reused"));
    // Per step: one letter per branch, C = computed, R = reused (cond first).
    std::string row;
    int col = 0, last_step = -1;
    for (const StepDecision& d : log_) {
        if (d.step != last_step) {
            if (col == 25) {
                lines.push_back(row);
                row.clear();
                col = 0;
            }
            if (!row.empty()) row += ' ';
            last_step = d.step;
            ++col;
        }
        row += d.computed ? 'C' : 'R';
    }
    if (!row.empty()) lines.push_back(row);
    if (cfg_.calibrate && !calib_.empty()) {
        std::string r = "ratios";
        for (size_t i = 2; i < calib_.size(); ++i) r += cat(i == 2 ? " " : ", ", calib_[i]);
        lines.push_back(r);
    }
    return lines;
}

}  // namespace wanrt
