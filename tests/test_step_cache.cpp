// Step caching (pipeline/step_cache.h): the reference tables, MagCache's interpolation, the --cache
// grammar, hand-derived MagCache decisions, the hooks leaving an all-computed run bit-identical, and
// the golden run against stepcache.safetensors (scripts/fixtures/make_stepcache.py: the reference
// teacache_forward, magcache_calibration/magcache_forward and easycache_forward on the tiny T2V model of
// pipeline_t2v.safetensors in float64): same decision for every DiT call, the same compared distances
// and accumulators, the same final latent.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/step_cache.h"
#include "pipeline/t2v.h"
#include "sched/scheduler.h"
#include "test_util.h"

using namespace wanrt;
using test::meta;

namespace {

struct TinyT2V {
    explicit TinyT2V(std::shared_ptr<Backend> backend = make_cpu_backend(0)) : be(std::move(backend)) {}
    std::shared_ptr<SafeTensorsFile> f = test::open_fixture("pipeline_t2v.safetensors");
    std::shared_ptr<Backend> be;
    DitConfig cfg = DitConfig::from_json(test::meta_json(*f, "configs").at("dit").dump(), f->origin());
    DitModel dit{cfg, f, *be, "dit."};
    Tensor context = test::load_f32(*be, *f, "mid.context"), context_null = test::load_f32(*be, *f, "mid.context_null");
    Tensor noise = test::load_f32(*be, *f, "in.noise");
    int64_t seq_len = std::stoll(meta(*f, "seq_len"));

    Tensor run(T2VOptions opt) const { return t2v_denoise(dit, context, context_null, noise, opt, seq_len); }
};

std::string pattern(const std::vector<StepDecision>& log) {
    std::string s;
    for (const StepDecision& d : log) s += d.computed ? 'C' : 'R';
    return s;
}

}  // namespace

TEST(StepCache, ReferenceTables) {
    // teacache_generate.py generate(): t2v 1.3B / 14B, i2v 480P / 720P, both variants.
    EXPECT_EQ(teacache_coefficients("t2v-1.3B", false),
              (std::vector<double>{2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01}));
    EXPECT_EQ(teacache_coefficients("t2v-14B", true),
              (std::vector<double>{-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01}));
    EXPECT_EQ(teacache_coefficients("i2v-720P", false),
              (std::vector<double>{-114.36346466, 65.26524496, -18.82220707, 4.91518089, -0.23412683}));
    EXPECT_EQ(teacache_coefficients("i2v-480P", true),
              (std::vector<double>{2.57151496e+05, -3.54229917e+04, 1.40286849e+03, -1.35890334e+01, 1.32517977e-01}));
    EXPECT_TRUE(teacache_coefficients("t2v-5B", false).empty());
    // magcache_generate.py: [1.0]*2 + 98 values for T2V (50 steps), + 78 for I2V (40 steps).
    const std::vector<double> m13 = magcache_ratios("t2v-1.3B"), m14 = magcache_ratios("t2v-14B");
    ASSERT_EQ(m13.size(), 100u);
    ASSERT_EQ(m14.size(), 100u);
    EXPECT_EQ(magcache_ratios("i2v-480P").size(), 80u);
    EXPECT_EQ(magcache_ratios("i2v-720P").size(), 80u);
    EXPECT_EQ(m13[0], 1.0);
    EXPECT_EQ(m13[2], 1.0124);
    EXPECT_EQ(m13[99], 0.81939);
    EXPECT_EQ(m14[2], 1.02504);
    EXPECT_EQ(m14[99], 0.86189);
    EXPECT_EQ(magcache_ratios("i2v-720P")[79], 0.86768);

    DitConfig c13 = DitConfig::preset("t2v-1.3B"), c14 = DitConfig::preset("t2v-14B"), i2v = DitConfig::preset("i2v-14B");
    EXPECT_EQ(step_cache_model_key(c13, {16, 21, 60, 104}), "t2v-1.3B");
    EXPECT_EQ(step_cache_model_key(c14, {16, 21, 90, 160}), "t2v-14B");
    EXPECT_EQ(step_cache_model_key(i2v, {16, 21, 60, 104}), "i2v-480P");
    EXPECT_EQ(step_cache_model_key(i2v, {16, 21, 90, 160}), "i2v-720P");
}

TEST(StepCache, NearestInterpRoundsHalfToEven) {
    // np.round(arange(n)·(len−1)/(n−1)): 6 → 3 gives 0, 2.5, 5 → indices 0, 2, 5; 4 → 3: 0, 1.5, 3 → 0, 2, 3.
    EXPECT_EQ(magcache_nearest_interp({10, 11, 12, 13, 14, 15}, 3), (std::vector<double>{10, 12, 15}));
    EXPECT_EQ(magcache_nearest_interp({10, 11, 12, 13}, 3), (std::vector<double>{10, 12, 13}));
    EXPECT_EQ(magcache_nearest_interp({10, 11, 12, 13}, 1), (std::vector<double>{13}));
    // 50 → 30 (a 30-step run with the 1.3B table): round(i·49/29); i = 16: 27.03 → 27, i = 29: 49.
    std::vector<double> src(50);
    for (int i = 0; i < 50; ++i) src[size_t(i)] = i;
    const std::vector<double> r = magcache_nearest_interp(src, 30);
    EXPECT_EQ(r[1], 2);   // 1.69
    EXPECT_EQ(r[16], 27);
    EXPECT_EQ(r[29], 49);
}

TEST(StepCache, SpecGrammarAndErrors) {
    StepCacheConfig c = StepCacheConfig::parse("teacache");
    EXPECT_EQ(c.method, CacheMethod::TeaCache);
    EXPECT_TRUE(std::isnan(c.thresh));  // the model's default
    c = StepCacheConfig::parse("teacache:0.08,ret");
    EXPECT_EQ(c.thresh, 0.08);
    EXPECT_TRUE(c.use_ret_steps);
    c = StepCacheConfig::parse("magcache:0.1,K=3,retention=0.25,ratios=r.json");
    EXPECT_EQ(c.method, CacheMethod::MagCache);
    EXPECT_EQ(c.max_skip, 3);
    EXPECT_EQ(c.retention_ratio, 0.25);
    EXPECT_EQ(c.ratios_file, "r.json");
    c = StepCacheConfig::parse("magcache:calibrate=out.json");
    EXPECT_TRUE(c.calibrate);
    EXPECT_EQ(c.calibrate_file, "out.json");
    c = StepCacheConfig::parse("easycache:0.05,ret_steps=5");
    EXPECT_EQ(c.ret_steps, 5);
    EXPECT_EQ(StepCacheConfig::parse("none").method, CacheMethod::None);
    test::expect_error([] { StepCacheConfig::parse("deepcache"); }, {"[cache]", "deepcache", "teacache"});
    test::expect_error([] { StepCacheConfig::parse("teacache:abc"); }, {"[cache]", "abc"});
    test::expect_error([] { StepCacheConfig::parse("teacache:0.1,K=2"); }, {"[cache]", "K=2"});
    test::expect_error([] { StepCacheConfig::parse("magcache:0.1,retention=2"); }, {"[cache]", "retention"});

    // MagCache on a model without published ratios names the way out.
    StepCache sc(StepCacheConfig::parse("magcache"));
    DitConfig tiny;
    tiny.dim = 64;
    tiny.num_layers = 2;
    test::expect_error([&] { sc.begin(tiny, 10, {16, 3, 4, 6}); }, {"[cache]", "calibrate"});
}

// The hooks alone (every call computed) leave the run bit-identical to the uncached loop.
TEST(StepCache, AllComputedIsBitIdentical) {
    TinyT2V m;
    T2VOptions opt;
    opt.sample_steps = 6;
    const std::vector<float> plain = ops::to_host_f32(m.run(opt));
    StepCacheConfig mc = StepCacheConfig::parse("magcache:0.12,K=0");  // K = 0: never reuse
    mc.mag_ratios = std::vector<double>(12, 0.999);
    for (StepCacheConfig c : {mc, StepCacheConfig::parse("magcache:calibrate"), StepCacheConfig::parse("easycache:0")}) {
        opt.cache = std::make_shared<StepCache>(c);
        EXPECT_EQ(ops::to_host_f32(m.run(opt)), plain) << c.name();
        EXPECT_EQ(pattern(opt.cache->decisions()), std::string(12, 'C')) << c.name();
    }
}

// MagCache's rule by hand: 6 steps (N = 12), retention 0.2 → decided from cnt int(2.4) = 2, K = 2,
// thresh 0.12. Cond and uncond have the same ratios, so both branches follow:
//   step 1: R 0.9, E 0.1 → reuse;  step 2: R 0.855, E 0.245 → compute (reset);
//   step 3: R 0.99, E 0.01 → reuse;  step 4: R 0.9801, E 0.0299 → reuse;
//   step 5: R 0.78408, S 3, E 0.24582 → compute.
TEST(StepCache, MagCacheHandDerivedDecisions) {
    TinyT2V m;
    T2VOptions opt;
    opt.sample_steps = 6;
    StepCacheConfig c = StepCacheConfig::parse("magcache:0.12");
    c.mag_ratios = {1, 1, 0.9, 0.9, 0.95, 0.95, 0.99, 0.99, 0.99, 0.99, 0.8, 0.8};
    opt.cache = std::make_shared<StepCache>(c);
    m.run(opt);
    const std::vector<StepDecision>& log = opt.cache->decisions();
    EXPECT_EQ(pattern(log), "CCRRCCRRRRCC");
    const double compared[6] = {NAN, 0.1, 0.245, 0.01, 0.0299, 0.24582};
    for (const StepDecision& d : log) {
        if (std::isnan(compared[d.step])) EXPECT_TRUE(std::isnan(d.compared)) << d.step;
        else EXPECT_NEAR(d.compared, compared[d.step], 1e-12) << d.step << "/" << d.branch;
    }
    EXPECT_EQ(opt.cache->computed_calls(), 6);
}

// On WANRT_TEST_DEVICE (e.g. cuda) too, with the deployed tolerances; the decisions have a margin of
// 1e-3 (relative) in the fixture.
TEST(StepCache, GoldenReference) {
    const std::shared_ptr<Backend> dev = test::test_device();
    TinyT2V m(dev ? dev : make_cpu_backend(0));
    auto f = test::open_fixture("stepcache.safetensors");
    const nlohmann::json cases = test::meta_json(*f, "cases");
    T2VOptions opt;
    opt.sample_steps = int(test::meta_int(*f, "steps"));
    opt.sample_shift = std::stod(meta(*f, "shift"));
    opt.guide_scale = std::stod(meta(*f, "guide_scale"));
    opt.solver = meta(*f, "solver");
    ASSERT_EQ(std::stoll(meta(*f, "seq_len")), m.seq_len);
    const std::vector<double> ts = test::load_f64(*f, "mid.timesteps");
    auto sched = make_scheduler(opt.solver, opt.sample_steps, opt.sample_shift);
    ASSERT_EQ(sched->timesteps().size(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(double(sched->timesteps()[i]), ts[i]) << i;
    const int N = 2 * opt.sample_steps;
    const double tol = test::chain_tols(*m.be, opt.sample_steps).chain, dtol = m.be->host_visible() ? 1e-4 : 3e-2;
    // GPU: TeaCache's rescaling polynomial amplifies TF32 noise of the modulated input's rel-L1 (1.7 %
    // seen on an H100); the decisions, checked exactly below, are what must match.
    std::printf("  backend %s\n", m.be->description().c_str());

    EXPECT_CLOSE(m.run(opt), test::load_f64(*f, "ref.latent"), tol, "uncached latent");

    // MagCache calibration: the ratios the reference's magcache_calibration recorded (rounded to 5 places).
    const std::vector<double> ratios = test::load_f64(*f, "magcache.mag_ratios");
    {
        T2VOptions o = opt;
        o.cache = std::make_shared<StepCache>(StepCacheConfig::parse("magcache:calibrate"));
        m.run(o);
        const std::vector<double>& got = o.cache->calibrated_ratios();
        ASSERT_EQ(got.size(), ratios.size());
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ratios[i]));
        EXPECT_LE(worst, m.be->host_visible() ? 1.5e-5 : 1e-3) << "calibrated magnitude ratios";
        std::printf("  magcache calibration: %zu ratios, max |diff| %.2e\n", got.size(), worst);
    }

    for (auto it = cases.begin(); it != cases.end(); ++it) {
        const std::string name = it.key();
        const nlohmann::json& c = it.value();
        StepCacheConfig sc = StepCacheConfig::parse(c.at("method").get<std::string>());
        sc.thresh = c.at("thresh").get<double>();
        if (sc.method == CacheMethod::TeaCache) {
            sc.use_ret_steps = c.at("use_ret_steps").get<bool>();
            sc.coefficients = c.at("coefficients").get<std::vector<double>>();
        } else if (sc.method == CacheMethod::MagCache) {
            sc.max_skip = c.at("K").get<int>();
            sc.retention_ratio = c.at("retention_ratio").get<double>();
            sc.mag_ratios = ratios;
        } else {
            sc.ret_steps = c.at("ret_steps").get<int>();
        }
        T2VOptions o = opt;
        o.cache = std::make_shared<StepCache>(sc);
        const Tensor latent = m.run(o);
        const std::vector<StepDecision>& log = o.cache->decisions();
        ASSERT_EQ(int(log.size()), N) << name;
        const std::vector<double> computed = test::load_f64(*f, name + ".computed");
        const std::vector<double> compared = test::load_f64(*f, name + ".compared");
        const std::vector<double> state = test::load_f64(*f, name + ".state");
        std::string want;
        for (double v : computed) want += v != 0 ? 'C' : 'R';
        EXPECT_EQ(pattern(log), want) << name << " decisions per DiT call (cond, uncond per step)";
        for (int k = 0; k < N; ++k) {
            const StepDecision& d = log[size_t(k)];
            EXPECT_EQ(2 * d.step + d.branch, k);
            EXPECT_EQ(std::isnan(d.compared), std::isnan(compared[size_t(k)])) << name << " call " << k;
            if (!std::isnan(compared[size_t(k)]))
                EXPECT_NEAR(d.compared, compared[size_t(k)], dtol * std::max(1.0, std::fabs(compared[size_t(k)])))
                    << name << " compared distance, call " << k;
            EXPECT_NEAR(d.state, state[size_t(k)], dtol * std::max(1.0, std::fabs(state[size_t(k)])))
                << name << " accumulator, call " << k;
        }
        std::printf("  %-13s thresh %-10g %s (%d of %d computed)\n", name.c_str(), sc.thresh, want.c_str(),
                    o.cache->computed_calls(), N);
        EXPECT_CLOSE(latent, test::load_f64(*f, name + ".latent"), tol, name + " final latent");
    }
}

// ---- The reference rules transcribed literally (variable names of teacache_forward and
// easycache_forward), driving their own CFG loop on the tiny model; the policy must take the same
// decisions and give the same latent bit for bit. Independent of the fixture.
namespace {

struct Oracle {
    const TinyT2V& m;
    T2VOptions opt;
    std::string pattern;
    std::vector<double> compared;

    // The loop of cfg_denoise; call(s, cnt) returns the DiT output for DiT call number cnt.
    template <class Call>
    Tensor loop(Call&& call) {
        auto sched = make_scheduler(opt.solver, opt.sample_steps, opt.sample_shift);
        Tensor x = ops::contiguous(m.noise);
        DitSample cond{{}, {}, m.context, {}, 0}, uncond{{}, {}, m.context_null, {}, 0};
        const float g = float(opt.guide_scale);
        for (int i = 0; i < sched->num_steps(); ++i) {
            cond.x = uncond.x = x;
            cond.t = uncond.t = float(sched->timesteps()[size_t(i)]);
            Tensor v_c = call(cond, 2 * i), v_u = call(uncond, 2 * i + 1);
            Tensor v = m.be->empty(DType::F32, v_u.shape());
            const Tensor* in[2] = {&v_u, &v_c};
            const float coef[2] = {1.0f - g, g};
            ops::lincomb(in, coef, 2, v);
            x = sched->step(v, i, x);
        }
        return x;
    }

    Tensor teacache(double teacache_thresh, const std::vector<double>& coefficients, bool use_ref_steps) {
        const int num_steps = 2 * opt.sample_steps;
        const int ret_steps = use_ref_steps ? 5 * 2 : 1 * 2, cutoff_steps = use_ref_steps ? num_steps : num_steps - 2;
        double acc[2] = {0, 0};
        std::vector<float> previous_e0[2];
        Tensor previous_residual[2];
        pattern.clear();
        compared.clear();
        return loop([&](const DitSample& s, int cnt) {
            const int b = cnt % 2;
            bool should_calc = true;
            DitStackHook hook;
            hook.reuse = [&](const Tensor& e, const Tensor& e0) {
                const std::vector<float> mod = ops::to_host_f32(use_ref_steps ? e0 : e);  // modulated_inp
                double cmp = NAN;
                if (cnt < ret_steps || cnt >= cutoff_steps) {
                    should_calc = true;
                    acc[b] = 0;
                } else {
                    double num = 0, den = 0;
                    for (size_t k = 0; k < mod.size(); ++k) {
                        num += std::fabs(double(mod[k]) - previous_e0[b][k]);
                        den += std::fabs(double(previous_e0[b][k]));
                    }
                    const double rel = (num / double(mod.size())) / (den / double(mod.size()));
                    double p = 0;  // np.poly1d
                    for (double c : coefficients) p = p * rel + c;
                    acc[b] += p;
                    cmp = acc[b];
                    if (acc[b] < teacache_thresh) {
                        should_calc = false;
                    } else {
                        should_calc = true;
                        acc[b] = 0;
                    }
                }
                compared.push_back(cmp);
                previous_e0[b] = mod;
                return should_calc ? Tensor() : previous_residual[b];
            };
            hook.computed = [&](const Tensor& r) { previous_residual[b] = r; };
            Tensor out = m.dit.forward({s}, m.seq_len, nullptr, &hook)[0];
            pattern += should_calc ? 'C' : 'R';
            return out;
        });
    }

    Tensor easycache(double thresh, int ret) {
        const int num_steps = 2 * opt.sample_steps, ret_steps = 2 * ret, cutoff_steps = num_steps - 2;
        bool should_calc_current_pair = true, have_k = false;
        double k = 0, accumulated_error_even = 0;
        std::vector<float> previous_raw_input_even, previous_raw_output_even, prev_prev_raw_input_even;
        Tensor cache_even, cache_odd;
        bool have_out_odd = false;
        auto mean_abs = [](const std::vector<float>& a, const std::vector<float>* b) {
            double t = 0;
            for (size_t i = 0; i < a.size(); ++i) t += std::fabs(double(a[i]) - (b ? double((*b)[i]) : 0.0));
            return t / double(a.size());
        };
        pattern.clear();
        compared.clear();
        return loop([&](const DitSample& s, int cnt) {
            const bool is_even = cnt % 2 == 0;
            const std::vector<float> raw_input = ops::to_host_f32(s.x);
            double cmp = NAN;
            if (is_even) {
                if (cnt < ret_steps || cnt >= cutoff_steps) {
                    should_calc_current_pair = true;
                    accumulated_error_even = 0;
                } else if (!previous_raw_input_even.empty() && !previous_raw_output_even.empty()) {
                    const double raw_input_change = mean_abs(raw_input, &previous_raw_input_even);
                    if (have_k) {
                        const double output_norm = mean_abs(previous_raw_output_even, nullptr);
                        accumulated_error_even += k * (raw_input_change / output_norm);
                        cmp = accumulated_error_even;
                        if (accumulated_error_even < thresh) {
                            should_calc_current_pair = false;
                        } else {
                            should_calc_current_pair = true;
                            accumulated_error_even = 0;
                        }
                    } else {
                        should_calc_current_pair = true;
                    }
                } else {
                    should_calc_current_pair = true;
                }
                previous_raw_input_even = raw_input;
            }
            compared.push_back(cmp);
            if (is_even && !should_calc_current_pair && !previous_raw_output_even.empty()) {
                pattern += 'R';
                return ops::add(s.x, cache_even);
            }
            if (!is_even && !should_calc_current_pair && have_out_odd) {
                pattern += 'R';
                return ops::add(s.x, cache_odd);
            }
            pattern += 'C';
            Tensor output = m.dit.forward({s}, m.seq_len)[0];
            Tensor diff = m.be->empty(DType::F32, output.shape());
            const Tensor xin = ops::contiguous(s.x);
            const Tensor* parts[2] = {&output, &xin};
            const float coef[2] = {1.0f, -1.0f};
            ops::lincomb(parts, coef, 2, diff);
            if (is_even) {
                const std::vector<float> out_h = ops::to_host_f32(output);
                if (!previous_raw_output_even.empty()) {
                    const double output_change = mean_abs(out_h, &previous_raw_output_even);
                    if (!prev_prev_raw_input_even.empty()) {
                        k = output_change / mean_abs(previous_raw_input_even, &prev_prev_raw_input_even);
                        have_k = true;
                    }
                }
                prev_prev_raw_input_even = previous_raw_input_even;
                previous_raw_output_even = out_h;
                cache_even = diff;
            } else {
                have_out_odd = true;
                cache_odd = diff;
            }
            return output;
        });
    }
};

// How far the decided calls are from half reused, half computed (1 when they are all of one kind).
double imbalance(const std::string& p, const std::vector<double>& compared) {
    int r = 0, c = 0;
    for (size_t i = 0; i < p.size(); ++i)
        if (!std::isnan(compared[i])) ++(p[i] == 'R' ? r : c);
    return r && c ? std::fabs(double(r) / double(r + c) - 0.5) : 1.0;
}

}  // namespace

class StepCacheTea : public ::testing::TestWithParam<bool> {};

TEST_P(StepCacheTea, MatchesTranscribedRule) {
    const bool ret = GetParam();
    TinyT2V m;
    Oracle o{m, {}, {}, {}};
    o.opt.sample_steps = 10;
    const std::vector<double> coef = teacache_coefficients("t2v-1.3B", ret);
    double thresh = -1, best = 1;  // the grid value closest to half of the decided calls reused
    for (int e = -24; e <= 40; ++e) {
        for (double sgn : {1.0, -1.0}) {  // the use_ret_steps fit gives negative increments here
            const double th = sgn * std::pow(10.0, e / 8.0);
            o.teacache(th, coef, ret);
            if (const double u = imbalance(o.pattern, o.compared); u < best) best = u, thresh = th;
        }
    }
    ASSERT_LT(best, 1) << "no threshold mixes computed and reused calls on the tiny model";
    const std::vector<float> want = ops::to_host_f32(o.teacache(thresh, coef, ret));
    T2VOptions opt = o.opt;
    StepCacheConfig c = StepCacheConfig::parse(ret ? "teacache,ret" : "teacache");
    c.thresh = thresh;
    c.coefficients = coef;
    opt.cache = std::make_shared<StepCache>(c);
    EXPECT_EQ(ops::to_host_f32(m.run(opt)), want);
    EXPECT_EQ(pattern(opt.cache->decisions()), o.pattern);
    std::printf("  teacache%s thresh %g: %s\n", ret ? " use_ret_steps" : "", thresh, o.pattern.c_str());
    for (size_t i = 0; i < o.compared.size(); ++i) {
        const double got = opt.cache->decisions()[i].compared;
        if (std::isnan(o.compared[i])) EXPECT_TRUE(std::isnan(got)) << i;
        else EXPECT_DOUBLE_EQ(got, o.compared[i]) << i;
    }
}
INSTANTIATE_TEST_SUITE_P(StepCache, StepCacheTea, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "UseRetSteps" : "Plain"; });

TEST(StepCache, EasyCacheMatchesTranscribedRule) {
    TinyT2V m;
    Oracle o{m, {}, {}, {}};
    o.opt.sample_steps = 10;
    const int ret = 2;
    double thresh = -1, best = 1;  // the grid value closest to half of the decided calls reused
    for (int e = -24; e <= 40; ++e) {
        const double th = std::pow(10.0, e / 8.0);
        o.easycache(th, ret);
        if (const double u = imbalance(o.pattern, o.compared); u < best) best = u, thresh = th;
    }
    ASSERT_LT(best, 1) << "no threshold mixes computed and reused calls on the tiny model";
    const std::vector<float> want = ops::to_host_f32(o.easycache(thresh, ret));
    T2VOptions opt = o.opt;
    StepCacheConfig c = StepCacheConfig::parse("easycache");
    c.thresh = thresh;
    c.ret_steps = ret;
    opt.cache = std::make_shared<StepCache>(c);
    EXPECT_EQ(ops::to_host_f32(m.run(opt)), want);
    EXPECT_EQ(pattern(opt.cache->decisions()), o.pattern);
    std::printf("  easycache thresh %g: %s\n", thresh, o.pattern.c_str());
    for (size_t i = 0; i < o.compared.size(); ++i) {
        const double got = opt.cache->decisions()[i].compared;
        if (std::isnan(o.compared[i])) EXPECT_TRUE(std::isnan(got)) << i;
        else EXPECT_NEAR(got, o.compared[i], 1e-12 * std::fabs(o.compared[i])) << i;
    }
}
