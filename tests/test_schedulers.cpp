// Samplers (src/sched): the official UniPC and DPM-Solver++ against schedulers.safetensors, the
// 50-step schedule of docs/wan21.md §6.2, flow-Euler sanity checks and the bad-input errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "sched/scheduler.h"
#include "test_util.h"

using namespace wanrt;

namespace {

std::shared_ptr<Backend> cpu() {
    static std::shared_ptr<Backend> be = make_cpu_backend(1);
    return be;
}

Tensor from_f32(const std::vector<float>& v, const Shape& shape) {
    Tensor t = cpu()->empty(DType::F32, shape);
    cpu()->upload(t, v.data());
    return t;
}

std::vector<float> to_vec(const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    cpu()->download(t, v.data());
    return v;
}

struct ErrStats {
    double rel_l2 = 0, max_abs = 0;
};
ErrStats compare(const std::vector<float>& out, const double* ref, size_t n) {
    double num = 0, den = 0, mx = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = double(out[i]) - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        mx = std::max(mx, std::fabs(d));
    }
    return {std::sqrt(num / std::max(den, 1e-300)), mx};
}

// The fixture's stand-in network: v = tanh(x)·(t/1000) + 0.3·c0 with the integer timestep t.
Tensor fake_model(const Tensor& x, int64_t t, const std::vector<double>& c0) {
    std::vector<float> xv = to_vec(x), v(xv.size());
    for (size_t i = 0; i < xv.size(); ++i)
        v[i] = float(std::tanh(double(xv[i])) * (double(t) / 1000.0) + 0.3 * c0[i]);
    return from_f32(v, x.shape());
}

}  // namespace

TEST(Schedulers, GoldenOfficialTrajectories) {
    auto f = test::open_fixture("schedulers.safetensors");  // a missing file throws: the test fails
    const auto& meta = f->metadata();
    ASSERT_TRUE(meta.count("steps") && meta.count("shift"));
    const int steps = std::stoi(meta.at("steps"));
    const double shift = std::stod(meta.at("shift"));
    const Shape xshape = test::stored(*f, "in.x0").shape;
    std::vector<double> x0 = test::load_f64(*f, "in.x0");
    std::vector<double> c0 = test::load_f64(*f, "in.c0");
    std::vector<float> x0f(x0.begin(), x0.end());

    for (const std::string s : {"unipc", "dpm++"}) {
        SCOPED_TRACE(s);
        auto sch = make_scheduler(s, steps, shift);
        std::vector<double> ts = test::load_f64(*f, "out." + s + ".timesteps");
        std::vector<double> sg = test::load_f64(*f, "out." + s + ".sigmas");
        std::vector<double> traj = test::load_f64(*f, "out." + s + ".trajectory");
        ASSERT_EQ(int(ts.size()), steps);
        ASSERT_EQ(sch->timesteps().size(), ts.size());
        for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(double(sch->timesteps()[i]), ts[i]) << "timestep " << i;
        ASSERT_EQ(sch->sigmas().size(), sg.size());
        for (size_t i = 0; i < sg.size(); ++i) EXPECT_EQ(double(sch->sigmas()[i]), sg[i]) << "sigma " << i;

        Tensor x = from_f32(x0f, xshape);
        const size_t per = x0.size();
        ASSERT_EQ(traj.size(), per * size_t(steps));
        std::vector<float> all;
        double worst_step = 0;
        for (int i = 0; i < steps; ++i) {
            Tensor v = fake_model(x, sch->timesteps()[size_t(i)], c0);
            x = sch->step(v, i, x);
            std::vector<float> xv = to_vec(x);
            ErrStats e = compare(xv, traj.data() + per * size_t(i), per);
            worst_step = std::max(worst_step, e.rel_l2);
            EXPECT_LT(e.rel_l2, 1e-5) << "step " << i << " max abs " << e.max_abs;
            all.insert(all.end(), xv.begin(), xv.end());
        }
        ErrStats e = compare(all, traj.data(), traj.size());
        std::printf("[sched golden] %-5s steps %d shift %g: trajectory rel-L2 %.3e max abs %.3e "
                    "(worst step rel-L2 %.3e)\n", s.c_str(), steps, shift, e.rel_l2, e.max_abs, worst_step);
        EXPECT_LT(e.rel_l2, 1e-5);
        EXPECT_LT(e.max_abs, 1e-5);
    }
}

TEST(Schedulers, SpecTimesteps50Shift5) {
    const std::vector<int64_t> expect = {
        999, 995, 991, 987, 982, 978, 973, 968, 963, 957, 952, 946, 940, 934, 927, 920, 913,
        906, 898, 890, 882, 873, 863, 854, 843, 833, 821, 809, 796, 783, 768, 753, 737, 720,
        701, 681, 660, 636, 611, 584, 555, 522, 487, 448, 405, 356, 302, 241, 172, 92};
    auto s = make_scheduler("unipc", 50, 5.0);
    EXPECT_EQ(s->timesteps(), expect);
    EXPECT_NEAR(s->sigmas()[0], 0.999800, 1e-6);
    EXPECT_NEAR(s->sigmas()[49], 0.092507, 1e-6);
    EXPECT_EQ(s->sigmas()[50], 0.0f);
    // UniPC starts at σ̂ = float32(0.999) → t = 999 whatever the shift; DPM++ at σ = 1 → t = 1000.
    for (double shift : {1.0, 3.0, 5.0, 8.0, 16.0}) {
        EXPECT_EQ(make_scheduler("unipc", 40, shift)->timesteps()[0], 999) << shift;
        auto d = make_scheduler("dpm++", 40, shift);
        EXPECT_EQ(d->timesteps()[0], 1000) << shift;
        EXPECT_EQ(d->sigmas()[0], 1.0f) << shift;
    }
    // shift 1: unshifted linspace, truncated (σ̂_1 = 0.999·(1 − 1/4) = 0.74925 → 749).
    EXPECT_EQ(make_scheduler("unipc", 4, 1.0)->timesteps(), (std::vector<int64_t>{999, 749, 499, 249}));
    EXPECT_EQ(make_scheduler("euler", 4, 1.0)->timesteps(), (std::vector<int64_t>{1000, 750, 500, 250}));
}

// On the straight flow path x_σ = (1 − σ)·a + σ·b the exact velocity is v = b − a everywhere, so
// every solver's data prediction is exactly a and each must land on a.
TEST(Schedulers, StraightPathEndsOnData) {
    const Shape shape = {3, 5, 7};
    std::vector<float> a(105), b(105);
    for (size_t i = 0; i < a.size(); ++i) {
        a[i] = float(std::sin(0.37 * double(i)));
        b[i] = float(std::cos(1.3 * double(i) + 0.2));
    }
    for (const std::string name : {"unipc", "dpm++", "euler"}) {
        for (int steps : {1, 2, 3, 7, 20}) {
            auto s = make_scheduler(name, steps, 5.0);
            std::vector<float> xv(a.size()), vv(a.size());
            const double sg0 = s->sigmas()[0];
            for (size_t i = 0; i < a.size(); ++i) {
                xv[i] = float((1 - sg0) * a[i] + sg0 * b[i]);
                vv[i] = b[i] - a[i];
            }
            Tensor x = from_f32(xv, shape), v = from_f32(vv, shape);
            for (int i = 0; i < steps; ++i) x = s->step(v, i, x);
            ErrStats e;
            std::vector<double> ad(a.begin(), a.end());
            e = compare(to_vec(x), ad.data(), ad.size());
            EXPECT_LT(e.max_abs, 2e-6) << name << " steps " << steps;
        }
    }
}

TEST(Schedulers, EulerMatchesDefinitionAndFirstOrderDpm) {
    const Shape shape = {2, 9};
    std::vector<float> xv(18), vv(18);
    for (size_t i = 0; i < 18; ++i) {
        xv[i] = float(0.1 * double(i) - 0.7);
        vv[i] = float(std::sin(double(i)));
    }
    auto e = make_scheduler("euler", 6, 3.0);
    auto d = make_scheduler("dpm++", 6, 3.0);
    EXPECT_EQ(e->timesteps(), d->timesteps());
    EXPECT_EQ(e->sigmas(), d->sigmas());
    Tensor x = from_f32(xv, shape), v = from_f32(vv, shape);
    // First step: DPM++ is first order there and equals Euler up to f32 rounding.
    std::vector<float> ye = to_vec(e->step(v, 0, x)), yd = to_vec(d->step(v, 0, x));
    const double dt = double(e->sigmas()[1]) - double(e->sigmas()[0]);
    for (size_t i = 0; i < 18; ++i) {
        EXPECT_NEAR(ye[i], double(xv[i]) + dt * double(vv[i]), 1e-6);
        EXPECT_NEAR(ye[i], yd[i], 1e-6);
    }
    // A constant field moves x by −v in total (Σ dσ = −1).
    auto e2 = make_scheduler("euler", 9, 5.0);
    Tensor y = x;
    for (int i = 0; i < 9; ++i) y = e2->step(v, i, y);
    std::vector<float> yv = to_vec(y);
    for (size_t i = 0; i < 18; ++i) EXPECT_NEAR(yv[i], double(xv[i]) - double(vv[i]), 2e-6);
    // Inputs are never modified.
    EXPECT_EQ(to_vec(x), xv);
    EXPECT_EQ(to_vec(v), vv);
}

TEST(Schedulers, ResetReplaysBitIdentically) {
    const Shape shape = {4, 4};
    std::vector<float> xv(16);
    for (size_t i = 0; i < 16; ++i) xv[i] = float(std::cos(double(i)));
    std::vector<double> c0(16, 0.25);
    for (const std::string name : {"unipc", "dpm++"}) {
        auto s = make_scheduler(name, 5, 5.0);
        std::vector<float> first;
        for (int rep = 0; rep < 2; ++rep) {
            s->reset();
            Tensor x = from_f32(xv, shape);
            for (int i = 0; i < 5; ++i) x = s->step(fake_model(x, s->timesteps()[size_t(i)], c0), i, x);
            if (rep == 0) first = to_vec(x);
            else EXPECT_EQ(to_vec(x), first) << name;
        }
    }
}

TEST(Schedulers, BadInputIsOneLineError) {
    auto expect_err = [](auto fn, const std::string& needle) {
        try {
            fn();
            ADD_FAILURE() << "no error, expected one mentioning '" << needle << "'";
        } catch (const Error& e) {
            std::string m = e.what();
            EXPECT_NE(m.find("[sched]"), std::string::npos) << m;
            EXPECT_NE(m.find(needle), std::string::npos) << m;
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        }
    };
    expect_err([] { make_scheduler("ddim", 10, 5.0); }, "unknown sample solver 'ddim'");
    expect_err([] { make_scheduler("unipc", 0, 5.0); }, "must be at least 1");
    expect_err([] { make_scheduler("dpm++", -3, 5.0); }, "must be at least 1");
    expect_err([] { make_scheduler("euler", 10, 0.0); }, "positive");
    expect_err([] { make_scheduler("unipc", 10, std::nan("")); }, "positive");
    // Enough steps that int(1000·σ_1) = 999 = t_0: the official UniPC index lookup breaks.
    expect_err([] { make_scheduler("unipc", 400, 5.0); }, "repeats the first timestep");
    EXPECT_NO_THROW(make_scheduler("dpm++", 400, 5.0));

    auto s = make_scheduler("unipc", 3, 5.0);
    Tensor x = from_f32(std::vector<float>(6, 0.5f), {2, 3});
    Tensor v = from_f32(std::vector<float>(6, 0.1f), {2, 3});
    Tensor w = from_f32(std::vector<float>(6, 0.1f), {3, 2});
    expect_err([&] { s->step(v, 1, x); }, "out of order");
    expect_err([&] { s->step(w, 0, x); }, "differ in shape");
    expect_err([&] { s->step(v, 3, x); }, "outside");
    EXPECT_NO_THROW(s->step(v, 0, x));
}
