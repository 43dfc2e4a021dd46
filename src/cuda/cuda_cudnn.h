// RAII over cuDNN backend descriptors for the graph-API users (cuda_sdpa.cpp, cuda_conv.cpp).
// Building a graph may fail for shapes cuDNN has no engine for; that is reported by throwing
// BuildError, which the callers turn into a fallback, never into an abort.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

struct BuildError {
    std::string what;
};

// Owning handle of one backend descriptor.
class Desc {
public:
    explicit Desc(cudnnBackendDescriptorType_t t) {
        if (cudnnBackendCreateDescriptor(t, &d_) != CUDNN_STATUS_SUCCESS) throw BuildError{"create descriptor"};
    }
    ~Desc() {
        if (d_) cudnnBackendDestroyDescriptor(d_);
    }
    Desc(Desc&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
    Desc(const Desc&) = delete;
    Desc& operator=(const Desc&) = delete;
    cudnnBackendDescriptor_t get() const { return d_; }

    Desc& set(cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, int64_t n, const void* v,
              const char* what) {
        const cudnnStatus_t st = cudnnBackendSetAttribute(d_, a, t, n, v);
        if (st != CUDNN_STATUS_SUCCESS) throw BuildError{std::string("set ") + what + ": " + cudnnGetErrorString(st)};
        return *this;
    }
    Desc& set_desc(cudnnBackendAttributeName_t a, cudnnBackendDescriptor_t p, const char* what) {
        return set(a, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p, what);
    }
    Desc& set_desc(cudnnBackendAttributeName_t a, const Desc& other, const char* what) {
        return set_desc(a, other.get(), what);
    }
    void finalize(const char* what) {
        const cudnnStatus_t st = cudnnBackendFinalize(d_);
        if (st != CUDNN_STATUS_SUCCESS)
            throw BuildError{std::string("finalize ") + what + ": " + cudnnGetErrorString(st)};
    }

private:
    cudnnBackendDescriptor_t d_ = nullptr;
};

// Builds the operation graph of ops, asks cuDNN's heuristics (mode A) for engine configs and
// finalizes the first that yields an execution plan — or, given time_plan, times up to `candidates`
// finalizable plans with it (ms, < 0 = unusable) and keeps the fastest (PyTorch's
// cudnn.benchmark: the heuristic's first choice is often far from the best for 3-D convs). Every
// descriptor the plan needs alive is moved into keep. Throws BuildError when no config works.
struct BuiltPlan {
    cudnnBackendDescriptor_t plan = nullptr;
    int64_t workspace = 0;
};
using PlanTimer = std::function<double(cudnnBackendDescriptor_t plan, int64_t workspace)>;

inline BuiltPlan build_plan(cudnnHandle_t handle, const cudnnBackendDescriptor_t* ops, int64_t n_ops,
                            std::vector<Desc>& keep, const PlanTimer& time_plan = {}, int candidates = 8) {
    Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "graph handle")
        .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops, "graph ops")
        .finalize("operation graph");
    keep.push_back(std::move(graph));
    const cudnnBackendDescriptor_t g = keep.back().get();

    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, g, "heur graph")
        .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heur mode")
        .finalize("heuristics");
    int64_t count = 0;
    if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                 nullptr) != CUDNN_STATUS_SUCCESS ||
        count == 0)
        throw BuildError{"no engine configs from heuristics"};
    std::vector<Desc> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
        cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
        raw.push_back(cfgs.back().get());
    }
    int64_t got = 0;
    if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                                 raw.data()) != CUDNN_STATUS_SUCCESS)
        throw BuildError{"get engine configs"};
    std::string why = "no engine config finalized";
    std::vector<Desc> plans;
    std::vector<BuiltPlan> built;
    int best = -1;
    double best_ms = 0;
    for (int64_t i = 0; i < got && int(plans.size()) < (time_plan ? candidates : 1); ++i) {
        Desc pl(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        try {
            pl.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "plan handle")
                .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[size_t(i)], "plan engine config")
                .finalize("execution plan");
        } catch (const BuildError& e) {
            why = e.what;
            continue;
        }
        BuiltPlan r;
        int64_t n = 0;
        cudnnBackendGetAttribute(pl.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                 &r.workspace);
        r.plan = pl.get();
        const double ms = time_plan ? time_plan(r.plan, r.workspace) : 0;
        if (ms >= 0 && (best < 0 || ms < best_ms)) best = int(plans.size()), best_ms = ms;
        if (ms < 0) why = "every timed engine failed to execute";
        plans.push_back(std::move(pl));
        built.push_back(r);
    }
    if (best < 0) throw BuildError{why};
    keep.push_back(std::move(heur));
    for (auto& c : cfgs) keep.push_back(std::move(c));
    keep.push_back(std::move(plans[size_t(best)]));  // the other candidates are destroyed here
    return built[size_t(best)];
}

}  // namespace wanrt::cuda
