// The op table (src/testing/op_table.h) as tests: every registered op on every backend present
// (the CPU always, CUDA when built and a device is visible), at every dtype signature the backend
// registers, against the float64 references, with alloc-check on (the CPU: every buffer NaN-filled
// inside guard bytes). One test per (device, op); the coverage tests fail when an op or a
// registered signature has no row.
#include <map>

#include "test_util.h"
#include "testing/op_table.h"

namespace wanrt::test {
namespace {

using namespace wanrt::testing;

// One backend per device for the whole run, in alloc-check mode.
Backend& table_be(const std::string& device) {
    static std::map<std::string, std::shared_ptr<Backend>> bes;
    std::shared_ptr<Backend>& b = bes[device];
    if (!b) {
        b = table_backend(device, 2);
        // WANRT_ALLOC_CHECK=0 turns the guards off, to tell a kernel fault from a guard-layout one.
        const char* ac = std::getenv("WANRT_ALLOC_CHECK");
        b->set_alloc_check(!(ac && std::string(ac) == "0"));
    }
    return *b;
}

struct Param {
    std::string device, op;
};
// Evaluated when the tests are registered (after the kernels' static registration).
std::vector<Param> params() {
    std::vector<Param> out;
    for (const std::string& dev : table_devices()) {
        const std::string kind = dev == "cpu" ? "cpu" : "cuda";
        for (const std::string& op : registered_ops())
            if (!registered_sigs(op, kind).empty()) out.push_back({dev, op});
    }
    return out;
}

std::string report(const CaseResult& r) {
    return cat(r.what, ": rel-L2 ", r.rel_l2, " (tol ", r.tol, "), max abs ", r.max_abs, " (|ref| ≤ ", r.ref_max, ")",
               r.bad_values ? cat(", ", r.bad_values, " NaN/inf where the reference is finite") : "",
               r.guard_failures ? cat(", ", r.guard_failures, " buffers with overwritten guard bytes") : "",
               r.error.empty() ? "" : ", error: " + r.error);
}

class BackendOps : public ::testing::TestWithParam<Param> {};

TEST_P(BackendOps, MatchesFloat64) {
    const Param& prm = GetParam();
    Backend& be = table_be(prm.device);
    int runs = 0;
    for (const OpCase& c : op_table()) {
        if (c.op != prm.op) continue;
        for (OpSig s : case_sigs(c, be.kind())) {
            const CaseResult r = run_case(be, c, s);
            ++runs;
            std::printf("  %-58s rel-L2 %.2e  max abs %.2e  tol %.0e%s\n", r.what.c_str(), r.rel_l2, r.max_abs, r.tol,
                        r.ok ? "" : "  FAIL");
            EXPECT_TRUE(r.ok) << report(r);
        }
    }
    EXPECT_GT(runs, 0) << "op " << prm.op << " is registered on " << be.name() << " but no case runs there";
}

INSTANTIATE_TEST_SUITE_P(Table, BackendOps, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& i) { return i.param.device + "_" + i.param.op; });

TEST(BackendOpsCoverage, EveryOpHasACase) {
    for (const std::string& op : ops_without_case())
        ADD_FAILURE() << "op " << op << " is registered but has no row in the op table (src/testing/op_cases.cpp)";
}

TEST(BackendOpsCoverage, EverySignatureHasACase) {
    for (const std::string& dev : table_devices()) {
        const std::string kind = table_be(dev).kind();
        for (const auto& [op, sig] : uncovered_sigs(kind))
            ADD_FAILURE() << op << " is registered on " << kind << " for " << sig_name(sig)
                          << " but no row of the op table runs at that signature";
    }
}

TEST(BackendOpsCoverage, NamesAreUnique) {
    std::map<std::string, int> seen;
    for (const OpCase& c : op_table()) EXPECT_EQ(seen[c.name]++, 0) << "two rows named " << c.name;
}

// The checks themselves can fail: a wrong value, an element left unwritten (NaN from the
// alloc-check fill) and a write past the end of a buffer (guard bytes) each fail a case.
TEST(BackendOpsCoverage, ChecksCatchWrongUnwrittenAndOutOfBounds) {
    Backend& be = table_be("cpu");
    auto fake = [](int mode) {
        OpCase c{"fill", cat("fake_", mode), {{DType::F32, DType::F32}}, false, Check::Close, nullptr};
        c.build = [mode](CaseCtx& ctx) {
            auto y = std::make_shared<Tensor>(ctx.be.empty(DType::F32, {33}));
            Prepared p;
            p.run = [y, mode] {
                float* d = y->data<float>();
                for (int i = 0; i < 33; ++i) d[i] = (mode == 1 && i == 5) ? NAN : 1.f;
                if (mode == 0) d[7] = 1.5f;
                if (mode == 2) d[33] = 1.f;  // one past the end: into the guard bytes
            };
            p.result = [y] { return host_f64(*y); };
            p.ref.assign(33, 1.0);
            return p;
        };
        return c;
    };
    const CaseResult wrong = run_case(be, fake(0), {}), unwritten = run_case(be, fake(1), {}),
                     oob = run_case(be, fake(2), {});
    EXPECT_FALSE(wrong.ok);
    EXPECT_GT(wrong.rel_l2, wrong.tol);
    EXPECT_FALSE(unwritten.ok);
    EXPECT_EQ(unwritten.bad_values, 1);
    EXPECT_FALSE(oob.ok);
    EXPECT_EQ(oob.guard_failures, 1);
}

}  // namespace
}  // namespace wanrt::test
