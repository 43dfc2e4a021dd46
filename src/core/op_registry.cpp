#include "core/op_registry.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "core/error.h"

namespace wanrt {

namespace {

struct Entry {
    const char* kind;
    OpSig sig;
    detail::ErasedKernel fn;
};

// Filled during static initialisation only (RegisterKernel objects), read-only afterwards, so
// lookups need no lock. A function-local static is constructed before the first registration.
std::unordered_map<std::string_view, std::vector<Entry>>& table() {
    static std::unordered_map<std::string_view, std::vector<Entry>> t;
    return t;
}

const Entry* find(const char* op, const char* kind, OpSig sig) {
    const auto& t = table();
    auto it = t.find(op);
    if (it == t.end()) return nullptr;
    for (const Entry& e : it->second)
        if (e.sig == sig && std::strcmp(e.kind, kind) == 0) return &e;
    return nullptr;
}

std::string profile_label(const char* op, OpSig sig) {
    // "linear.bf16": the dtypes only when they differ from the all-f32 default.
    std::string s = op;
    if (sig.in != DType::F32) s += cat(".", dtype_name(sig.in));
    if (sig.w != DType::F32) s += cat(".", dtype_name(sig.w));
    return s;
}

}  // namespace

std::vector<OpSig> all_sig_pairs(std::initializer_list<DType> dtypes) {
    std::vector<OpSig> out;
    for (DType a : dtypes)
        for (DType b : dtypes) out.push_back({a, b});
    return out;
}

namespace detail {

void register_kernel(const char* op, const char* kind, OpSig sig, ErasedKernel fn) {
    auto& list = table()[op];
    for (const Entry& e : list)
        WANRT_ASSERT(!(e.sig == sig && std::strcmp(e.kind, kind) == 0));  // one kernel per (op, backend, dtypes)
    list.push_back({kind, sig, std::move(fn)});
}

void dispatch(Backend& be, const char* op, const void* args, OpSig sig, double flop) {
    const Entry* e = find(op, be.kind(), sig);
    if (!e) {
        if (!table().count(op)) fail(be.name().c_str(), "op ", op, " is not registered on any backend (a kernel file is missing from the build)");
        fail(be.name().c_str(), "op ", op, " is not implemented for ", dtype_name(sig.in), "/", dtype_name(sig.w),
             " on this backend; run with --device cpu or use another dtype");
    }
    OpProfiler* prof = be.profiler();
    struct Trace {  // closed on every exit, exceptions included
        Backend& be;
        Trace(Backend& b, const char* name) : be(b) { be.trace_push(name); }
        ~Trace() { be.trace_pop(); }
    } trace(be, op);
    if (prof && prof->enabled()) {
        be.synchronize();
        const auto t0 = std::chrono::steady_clock::now();
        e->fn(be, args);
        be.synchronize();
        prof->record(profile_label(op, sig),
                     std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), flop);
    } else {
        e->fn(be, args);
    }
}

}  // namespace detail

bool Backend::supports(const char* op, DType in, DType w) const {
    // An unknown name is a bug in the caller (a typo would read as "not supported" and pick a slow path).
    WANRT_CHECK(table().count(op), "registry", "supports() asked about op \"", op, "\", which no backend registers");
    return find(op, kind(), {in, w}) != nullptr;
}

std::vector<std::string> registered_ops() {
    std::vector<std::string> out;
    for (const auto& [name, list] : table()) out.emplace_back(name);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<OpSig> registered_sigs(const std::string& op, const std::string& kind) {
    std::vector<OpSig> out;
    auto it = table().find(op);
    if (it != table().end())
        for (const Entry& e : it->second)
            if (kind == e.kind) out.push_back(e.sig);
    return out;
}

void OpProfiler::record(const std::string& label, double ms, double flop) {
    OpStats& s = stats_[label];
    s.calls++;
    s.ms += ms;
    s.flop += flop;
}

}  // namespace wanrt
