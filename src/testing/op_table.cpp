// The op table's machinery: deterministic inputs and views, coverage against the registry,
// tolerances, and the test-mode run of one case. The rows themselves are in op_cases.cpp.
#include "testing/op_table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "runtime/device.h"
#include "core/error.h"

namespace wanrt::testing {

namespace {

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

}  // namespace

std::string sig_name(OpSig s) {
    return s.in == s.w ? std::string(dtype_name(s.in)) : cat(dtype_name(s.in), "/", dtype_name(s.w));
}

std::vector<double> CaseCtx::ints(int64_t n, int64_t lo, int64_t hi) {
    std::mt19937_64 rng(seed_ + 0x9E3779B97F4A7C15ull * ++draws_);
    std::uniform_int_distribution<int64_t> u(lo, hi);
    std::vector<double> v(static_cast<size_t>(n));
    for (double& x : v) x = double(u(rng));
    return v;
}

Input CaseCtx::rand(DType dt, const Shape& shape, float scale, Layout layout, float offset) {
    std::mt19937_64 rng(seed_ + 0x9E3779B97F4A7C15ull * ++draws_);
    std::normal_distribution<float> nd;
    std::vector<double> v(size_t(shape_numel(shape)));
    for (double& x : v) x = double(nd(rng) * scale + offset);
    return from(dt, shape, v, layout);
}

Input CaseCtx::from(DType dt, const Shape& shape, const std::vector<double>& values, Layout layout) {
    const int64_t n = shape_numel(shape);
    WANRT_ASSERT(int64_t(values.size()) == n);
    std::vector<uint8_t> packed(dtype_bytes(dt, n));
    convert_elements(values.data(), DType::F64, packed.data(), dt, n);
    Input in;
    in.v.resize(size_t(n));
    convert_elements(packed.data(), dt, in.v.data(), DType::F64, n);  // the values as stored
    const int nd = int(shape.size());
    if (perf || layout == Layout::Contig || n == 0) {
        in.t = ops::from_host(be, dt, shape, packed.data());
        return in;
    }
    Shape ss = shape;
    Tensor storage, view;
    switch (layout) {
        case Layout::Offset:  // [n] at element 17 of a [n + 24] buffer, viewed as shape
            storage = be.empty(dt, {n + 24});
            view = storage.slice(0, 17, 17 + n).reshape(shape);
            break;
        case Layout::Padded:  // last dim D inside rows of D + 3, starting at 1
            ss[size_t(nd - 1)] += 3;
            storage = be.empty(dt, ss);
            view = storage.slice(nd - 1, 1, 1 + shape[size_t(nd - 1)]);
            break;
        case Layout::Transposed:  // storage [..., b, a] viewed as [..., a, b]
            WANRT_ASSERT(nd >= 2);
            std::swap(ss[size_t(nd - 2)], ss[size_t(nd - 1)]);
            storage = be.empty(dt, ss);
            view = storage.transpose(nd - 2, nd - 1);
            break;
        case Layout::Contig:
            break;
    }
    // The buffer's host image: all-ones bytes (NaN in every float dtype) in the gaps, so a kernel
    // that reads outside the view sees NaN; the values at the view's element positions.
    const size_t es = dtype_size(dt);
    std::vector<uint8_t> host(storage.nbytes(), 0xFF);
    const int64_t base = int64_t((view.offset_bytes() - storage.offset_bytes()) / es);
    std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
    for (int64_t i = 0; i < n; ++i) {
        int64_t at = base;
        for (int d = 0; d < nd; ++d) at += idx[size_t(d)] * view.stride(d);
        std::memcpy(host.data() + size_t(at) * es, packed.data() + size_t(i) * es, es);
        for (int d = nd - 1; d >= 0; --d) {
            if (++idx[size_t(d)] < shape[size_t(d)]) break;
            idx[size_t(d)] = 0;
        }
    }
    be.upload(storage, host.data());
    in.t = view;
    return in;
}

std::vector<double> host_f64(const Tensor& t) {
    const Tensor c = ops::contiguous(t);
    std::vector<uint8_t> raw(c.nbytes());
    c.backend()->synchronize();
    c.backend()->download(c, raw.data());
    std::vector<double> v(size_t(c.numel()));
    convert_elements(raw.data(), c.dtype(), v.data(), DType::F64, c.numel());
    return v;
}

std::vector<std::string> ops_without_case() {
    std::set<std::string> have;
    for (const OpCase& c : op_table()) have.insert(c.op);
    std::vector<std::string> out;
    for (const std::string& op : registered_ops())
        if (!have.count(op)) out.push_back(op);
    return out;
}

std::vector<std::pair<std::string, OpSig>> uncovered_sigs(const std::string& kind) {
    std::vector<std::pair<std::string, OpSig>> out;
    for (const std::string& op : registered_ops())
        for (OpSig s : registered_sigs(op, kind)) {
            bool covered = false;
            for (const OpCase& c : op_table())
                covered = covered || (c.op == op && std::find(c.sigs.begin(), c.sigs.end(), s) != c.sigs.end());
            if (!covered) out.emplace_back(op, s);
        }
    return out;
}

std::vector<OpSig> case_sigs(const OpCase& c, const std::string& kind) {
    const std::vector<OpSig> reg = registered_sigs(c.op, kind);
    std::vector<OpSig> out;
    for (OpSig s : c.sigs)
        if (std::find(reg.begin(), reg.end(), s) != reg.end()) out.push_back(s);
    return out;
}

double tolerance(const Backend& be, const OpCase& c, OpSig sig) {
    if (c.check == Check::Exact) return 0;
    if (c.tol) return c.tol(be, sig);
    if (sig.in == DType::F64 && sig.w == DType::F64) return 1e-8;  // float64 kernels (the backward ops' reference path)
    // The precision the kernel rounds to. Inputs are compared as stored (the reference reads the
    // rounded values), so only the arithmetic's rounding is left. CUDA runs linear and attention
    // on bf16 tensor cores and lets cuDNN use TF32 for fp32 convolutions (as PyTorch does).
    enum { P32, TF32, P16, PB16 } p = P32;
    if (c.op == "linear" && sig.in == DType::BF16) p = PB16;  // bf16 activations out
    if (c.op == "lincomb" && sig.w != DType::F32) p = sig.w == DType::BF16 ? PB16 : P16;  // a half output
    if (std::string(be.kind()) == "cuda") {
        if (c.op == "linear" || c.op == "attention") p = PB16;
        if (c.op == "conv3d") p = sig.w == DType::BF16 ? PB16 : sig.w == DType::F16 ? P16 : TF32;
    }
    // Half activations out (the VAEs' half path): one rounding of the output, on every backend.
    if ((c.op == "unary" || c.op == "binary" || c.op == "conv3d" || c.op == "channel_rms_norm") &&
        (sig.in == DType::F16 || sig.in == DType::BF16))
        p = sig.in == DType::BF16 ? PB16 : P16;
    switch (p) {
        case PB16:
            return 1e-2;
        case P16:
            return 1e-3;
        case TF32:
            return 3e-3;
        case P32:
            break;
    }
    return 1e-5;
}

CaseResult run_case(Backend& be, const OpCase& c, OpSig sig) {
    CaseResult r;
    r.what = cat(c.name, " ", sig_name(sig), " on ", be.name());
    r.tol = tolerance(be, c, sig);
    const int64_t guards0 = be.guard_failures();
    std::vector<double> out, ref;
    try {
        // In a scope: the case's tensors are freed (guards checked) before the count is read.
        CaseCtx ctx(be, sig, false, Sizes::small(), fnv1a(sig_name(sig), fnv1a(c.name)));
        Prepared p = c.build(ctx);
        p.run();
        be.synchronize();
        out = p.result();
        ref = std::move(p.ref);
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    r.guard_failures = be.guard_failures() - guards0;
    if (r.error.empty() && out.size() != ref.size())
        r.error = cat("output has ", out.size(), " values, the reference ", ref.size());
    if (r.error.empty()) {
        double num = 0, den = 0;
        for (size_t i = 0; i < out.size(); ++i) {
            if (std::isnan(ref[i]) && std::isnan(out[i])) continue;
            if (!std::isfinite(out[i]) && std::isfinite(ref[i])) {
                r.bad_values++;
                continue;
            }
            const double d = out[i] - ref[i];
            num += d * d;
            den += ref[i] * ref[i];
            r.max_abs = std::max(r.max_abs, std::fabs(d));
            r.ref_max = std::max(r.ref_max, std::fabs(ref[i]));
        }
        r.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    }
    // max abs: no single element far off where the L2 norm of a large tensor would hide it.
    const double atol = 10 * r.tol * r.ref_max;
    r.ok = r.error.empty() && r.bad_values == 0 && r.guard_failures == 0 && r.rel_l2 <= r.tol && r.max_abs <= atol;
    return r;
}

std::vector<std::string> table_devices() {
    std::vector<std::string> d = {"cpu"};
    if (cuda_available()) d.push_back("cuda");
    return d;
}

std::shared_ptr<Backend> table_backend(const std::string& device, int threads) {
    return make_backend(device, threads);
}

}  // namespace wanrt::testing
