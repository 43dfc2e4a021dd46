// The op registry: the one dispatch point between the checked op front-ends (ops/) and the
// backends' kernels.
//
// An op is declared once, as an argument struct with its name (ops/ops.h, or ops/<name>.h for a
// new op):
//     struct ClampArgs { static constexpr const char* kName = "clamp"; Tensor x, y; float lo, hi; };
// Each backend registers a kernel per dtype signature, in the file that implements it:
//     static const RegisterKernel<ClampArgs, CpuBackend> reg({{DType::F32}}, &clamp_cpu);
// Backend::supports(name, in, w) is true exactly when such a kernel exists; a front-end calls
// dispatch(be, args, {in, w}, flop), which finds the kernel, wraps it in the backend's trace range
// (NVTX on CUDA) and, when an OpProfiler is attached, times it. Nothing else names an op: no enum,
// no name table, no per-backend list to keep in step.
//
// The signature (OpSig) is the pair of dtypes a kernel is chosen by: `in` is the main input's and
// `w` the second operand's (a weight, K/V, an embedding table, or the destination of a copy); an op
// with one dtype leaves w at F32. Each args struct says which dtypes it is keyed by.
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "core/backend.h"

namespace wanrt {

struct OpSig {
    DType in = DType::F32;
    DType w = DType::F32;
    // Spelled out (not = default): .cu kernel files include this header and nvcc builds them as C++17.
    bool operator==(const OpSig& o) const { return in == o.in && w == o.w; }
};

// Every ordered pair of the given dtypes (for kernels that convert between any two, like copy).
std::vector<OpSig> all_sig_pairs(std::initializer_list<DType> dtypes);

namespace detail {
using ErasedKernel = std::function<void(Backend&, const void*)>;
void register_kernel(const char* op, const char* backend_kind, OpSig sig, ErasedKernel fn);
void dispatch(Backend& be, const char* op, const void* args, OpSig sig, double flop);
}  // namespace detail

// Registers fn as op Args::kName on backends of kind Be::kKind for each signature. Instances are
// static objects in the kernel's file (the library is linked whole, so none is dropped).
template <class Args, class Be>
struct RegisterKernel {
    RegisterKernel(std::vector<OpSig> sigs, void (*fn)(Be&, const Args&)) {
        for (const OpSig& s : sigs)
            detail::register_kernel(Args::kName, Be::kKind, s, [fn](Backend& be, const void* a) {
                fn(static_cast<Be&>(be), *static_cast<const Args*>(a));
            });
    }
};

// Runs op Args::kName on be. Throws "[<backend>] op <name> is not implemented for <in>/<w>" when no
// kernel is registered for the signature. flop: floating-point work, for the profiler's rates.
template <class Args>
void dispatch(Backend& be, const Args& args, OpSig sig = {}, double flop = 0) {
    detail::dispatch(be, Args::kName, &args, sig, flop);
}

// What is registered: every op name, and the signatures of one op on one backend kind (tests
// iterate these so a kernel without a test case, or a case without a kernel, is noticed).
std::vector<std::string> registered_ops();
std::vector<OpSig> registered_sigs(const std::string& op, const std::string& backend_kind);

// Per-op time and work, filled by dispatch while attached to a backend (Backend::set_profiler).
// Each op is synchronised before and after, so a GPU stream is serialised: use it for breakdowns,
// not totals (set_enabled(false) for timing runs).
struct OpStats {
    int64_t calls = 0;
    double ms = 0;
    double flop = 0;
};
class OpProfiler {
public:
    const std::map<std::string, OpStats>& stats() const { return stats_; }
    void reset() { stats_.clear(); }
    void set_enabled(bool on) { enabled_ = on; }
    bool enabled() const { return enabled_; }
    void record(const std::string& label, double ms, double flop);

private:
    std::map<std::string, OpStats> stats_;
    bool enabled_ = true;
};

}  // namespace wanrt
