// cuDNN fused attention (SDPA) through the cuDNN 9 backend graph API, without the frontend
// library. The operation graphs are the ones cudnn-frontend lowers its SDPA nodes to
// (include/cudnn_frontend/node/scaled_dot_product_flash_attention.h), with fp32 intermediates:
//   forward:  S = matmul(Q, Kᵀ) · scale;  M = max_j S;  E = exp(S − M);  Σ = Σ_j E;  stats = M + log Σ;
//             P = E / Σ (bf16);  O = matmul(P, V)
//   backward: Δ = Σ_d dO∘O;  P = exp(Q·Kᵀ·scale − stats);  dV = Pᵀ·dO;  dS = P∘(dO·Vᵀ − Δ)·scale;
//             dK = dSᵀ·Q;  dQ = dS·K (accumulated in fp32, then written as bf16)
// cuDNN's heuristics recognise the patterns and hand back its fused flash-attention engines
// (runtime-compiled on first use, so the first call per shape is slow).
#include <cstring>
#include <map>
#include <string>

#include "cuda/cuda_common.h"
#include "cuda/cuda_cudnn.h"

namespace wanrt::cuda {

namespace {

// The non-virtual tensors' uids (variant-pack keys).
enum Uid : int64_t {
    kQ = 1,
    kK,
    kV,
    kO,
    kScale,
    kStats,  // forward; the backward reads Q, K, V, O, scale and stats too
    kDO,
    kDQ,
    kDK,
    kDV,
    kOne,
    kSoftmaxSum,
    kDQAccum
};

// Builds one operation graph: its tensors and operations, kept alive in keep for the plan.
struct Graph {
    std::vector<Desc>& keep;
    std::vector<cudnnBackendDescriptor_t> ops;
    std::map<int64_t, cudnnBackendDescriptor_t> by_uid;
    int64_t next_virtual = 100;

    using Dims = std::vector<int64_t>;
    static constexpr cudnnDataType_t f32 = CUDNN_DATA_FLOAT;

    int64_t tensor(int64_t uid, cudnnDataType_t dt, Dims dims, Dims strides, bool by_value = false) {
        const bool is_virtual = uid >= 100;
        Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
        const int64_t align = 16;
        t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor type")
            .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, int64_t(dims.size()), dims.data(), "tensor dims")
            .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, int64_t(strides.size()), strides.data(), "tensor strides")
            .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid")
            .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
        if (is_virtual) t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
        if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by value");
        t.finalize("tensor");
        by_uid[uid] = t.get();
        keep.push_back(std::move(t));
        return uid;
    }
    // A virtual intermediate.
    int64_t tmp(cudnnDataType_t dt, Dims dims, Dims strides) { return tensor(next_virtual++, dt, dims, strides); }
    int64_t scalar(int64_t uid) { return tensor(uid, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, true); }
    cudnnBackendDescriptor_t T(int64_t uid) const { return by_uid.at(uid); }

    void add(Desc op) {
        keep.push_back(std::move(op));
        ops.push_back(keep.back().get());
    }
    void matmul(int64_t a, int64_t b, int64_t c) {
        Desc md(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
        md.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul comp type").finalize("matmul desc");
        keep.push_back(std::move(md));
        Desc op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
        op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, T(a), "matmul A")
            .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, T(b), "matmul B")
            .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, T(c), "matmul C")
            .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, keep.back(), "matmul desc")
            .finalize("matmul op");
        add(std::move(op));
    }
    void pointwise(cudnnPointwiseMode_t mode, int64_t x, int64_t b, int64_t y) {
        Desc pd(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
        pd.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode")
            .set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32, "pointwise prec")
            .finalize("pointwise desc");
        keep.push_back(std::move(pd));
        Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
        const float one = 1.f;
        op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, keep.back(), "pointwise desc")
            .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, T(x), "pointwise X");
        if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, T(b), "pointwise B");
        op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, T(y), "pointwise Y")
            .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "alpha1")
            .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "alpha2")
            .finalize("pointwise op");
        add(std::move(op));
    }
    void reduction(cudnnReduceTensorOp_t mode, int64_t x, int64_t y) {
        Desc rd(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
        rd.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction mode")
            .set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "reduction comp type")
            .finalize("reduction desc");
        keep.push_back(std::move(rd));
        Desc op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
        op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, keep.back(), "reduction desc")
            .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, T(x), "reduction X")
            .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, T(y), "reduction Y")
            .finalize("reduction op");
        add(std::move(op));
    }
    // A view of x with other dims/strides (a transpose, as the frontend writes it).
    void reshape(int64_t x, int64_t y) {
        Desc op(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
        op.set_desc(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, T(x), "reshape X")
            .set_desc(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, T(y), "reshape Y")
            .finalize("reshape op");
        add(std::move(op));
    }
};

}  // namespace

struct CudnnSdpa::Plan {
    std::vector<Desc> keep;  // every descriptor the plan was built from
    cudnnBackendDescriptor_t plan = nullptr;
    int64_t workspace = 0;
};

CudnnSdpa::CudnnSdpa(cudaStream_t stream) : cudnn_(stream) {}

CudnnSdpa::~CudnnSdpa() = default;  // members in reverse order: the plans before their cuDNN handle

CudnnSdpa::Plan* CudnnSdpa::plan(const Key& key) {
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second.get();
    const auto [B, H, Hk, Lq, Lk, d, mode] = key;
    auto p = std::make_unique<Plan>();
    try {
        p->keep.reserve(96);  // references into keep must stay valid while building
        Graph g{p->keep, {}, {}};
        const int64_t b = B, h = H, hk = Hk, sq = Lq, skv = Lk, dd = d;
        const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
        // Q, O, dO, dQ: [B, Lq, H, d] memory viewed as (b, h, s, d); K, V viewed transposed as (b, hk, d, s).
        const Graph::Dims q_dims = {b, h, sq, dd}, q_str = {sq * h * dd, dd, h * dd, 1};
        const Graph::Dims kt_dims = {b, hk, dd, skv}, kt_str = {skv * hk * dd, dd, 1, hk * dd};
        const Graph::Dims s_dims = {b, h, sq, skv}, s_str = {h * sq * skv, sq * skv, skv, 1};
        const Graph::Dims r_dims = {b, h, sq, 1}, r_str = {h * sq, sq, 1, 1};
        g.tensor(kQ, bf, q_dims, q_str);
        g.tensor(kK, bf, kt_dims, kt_str);
        g.scalar(kScale);
        if (mode != kBackward) {
            g.tensor(kV, bf, {b, hk, skv, dd}, {skv * hk * dd, dd, hk * dd, 1});
            g.tensor(kO, bf, q_dims, q_str);
            const int64_t S = g.tmp(f32, s_dims, s_str), S1 = g.tmp(f32, s_dims, s_str), M = g.tmp(f32, r_dims, r_str),
                          Sub = g.tmp(f32, s_dims, s_str), E = g.tmp(f32, s_dims, s_str),
                          Sum = g.tmp(f32, r_dims, r_str), Log = g.tmp(f32, r_dims, r_str),
                          Stats = mode == kWithStats ? g.tensor(kStats, f32, r_dims, r_str) : g.tmp(f32, r_dims, r_str),
                          P = g.tmp(bf, s_dims, s_str);
            g.matmul(kQ, kK, S);
            g.pointwise(CUDNN_POINTWISE_MUL, S, kScale, S1);
            g.reduction(CUDNN_REDUCE_TENSOR_MAX, S1, M);
            g.pointwise(CUDNN_POINTWISE_SUB, S1, M, Sub);
            g.pointwise(CUDNN_POINTWISE_EXP, Sub, 0, E);
            g.reduction(CUDNN_REDUCE_TENSOR_ADD, E, Sum);
            g.pointwise(CUDNN_POINTWISE_LOG, Sum, 0, Log);
            g.pointwise(CUDNN_POINTWISE_ADD, M, Log, Stats);  // logsumexp, an output for split-KV and training
            g.pointwise(CUDNN_POINTWISE_DIV, E, Sum, P);
            g.matmul(P, kV, kO);
        } else {  // MHA only (H == Hk): GQA would need the frontend's per-head dK/dV reductions
            const Graph::Dims t_dims = {b, h, skv, sq}, t_str = {h * sq * skv, sq * skv, 1, skv};  // (b, h, skv, sq)
            const Graph::Dims k_dims = {b, hk, skv, dd}, k_str = {skv * hk * dd, dd, hk * dd, 1};
            g.tensor(kV, bf, kt_dims, kt_str);  // Vᵀ, as K
            g.tensor(kO, bf, q_dims, q_str);
            g.tensor(kDO, bf, q_dims, q_str);
            g.tensor(kStats, f32, r_dims, r_str);
            g.tensor(kDQ, bf, q_dims, q_str);
            g.tensor(kDK, bf, k_dims, k_str);
            g.tensor(kDV, bf, k_dims, k_str);
            g.scalar(kOne);
            g.tensor(kSoftmaxSum, f32, r_dims, r_str);
            g.tensor(kDQAccum, f32, q_dims, {h * sq * dd, sq * dd, dd, 1});
            // Δ = Σ_d dO∘O (the frontend's "softmax_sum", times 1 where dropout would scale it)
            const int64_t dOO = g.tmp(f32, q_dims, {h * sq * dd, sq * dd, h * dd, 1}), D0 = g.tmp(f32, r_dims, r_str);
            g.pointwise(CUDNN_POINTWISE_MUL, kDO, kO, dOO);
            g.reduction(CUDNN_REDUCE_TENSOR_ADD, dOO, D0);
            g.pointwise(CUDNN_POINTWISE_MUL, D0, kOne, kSoftmaxSum);
            // P = exp(Q·Kᵀ·scale − stats); dV = Pᵀ·dO
            const int64_t S = g.tmp(f32, s_dims, s_str), S1 = g.tmp(f32, s_dims, s_str), S2 = g.tmp(f32, s_dims, s_str),
                          P = g.tmp(f32, s_dims, s_str), PT = g.tmp(bf, t_dims, t_str);
            g.matmul(kQ, kK, S);
            g.pointwise(CUDNN_POINTWISE_MUL, S, kScale, S1);
            g.pointwise(CUDNN_POINTWISE_SUB, S1, kStats, S2);
            g.pointwise(CUDNN_POINTWISE_EXP, S2, 0, P);
            g.reshape(P, PT);
            g.matmul(PT, kDO, kDV);
            // dS = P∘(dO·Vᵀ − Δ)·scale; dK = dSᵀ·Q; dQ = dS·K
            const int64_t dP = g.tmp(f32, s_dims, s_str), dP1 = g.tmp(f32, s_dims, s_str),
                          dS0 = g.tmp(f32, s_dims, s_str), dS = g.tmp(f32, s_dims, s_str),
                          dST = g.tmp(bf, t_dims, t_str), Kr = g.tmp(bf, k_dims, k_str);
            g.matmul(kDO, kV, dP);
            g.pointwise(CUDNN_POINTWISE_SUB, dP, kSoftmaxSum, dP1);
            g.pointwise(CUDNN_POINTWISE_MUL, dP1, P, dS0);
            g.pointwise(CUDNN_POINTWISE_MUL, dS0, kScale, dS);
            g.reshape(dS, dST);
            g.matmul(dST, kQ, kDK);
            g.reshape(kK, Kr);
            g.matmul(dS, Kr, kDQAccum);
            g.pointwise(CUDNN_POINTWISE_IDENTITY, kDQAccum, 0, kDQ);
        }
        const BuiltPlan bp = build_plan(cudnn_.handle(), g.ops.data(), int64_t(g.ops.size()), p->keep);
        p->workspace = bp.workspace;
        p->plan = bp.plan;
        Plan* raw_plan = p.get();
        plans_[key] = std::move(p);
        return raw_plan;
    } catch (const BuildError& e) {
        error_ = e.what;
        plans_[key] = nullptr;
        return nullptr;
    }
}

bool CudnnSdpa::run(int B, int H, int Hk, int Lq, int Lk, int d, float scale, const __nv_bfloat16* q,
                    const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o, float* stats) {
    const Key key{B, H, Hk, Lq, Lk, d, stats ? kWithStats : kForward};
    Plan* p = plan(key);
    if (!p) return false;
    const int64_t uids[] = {kQ, kK, kV, kO, kScale, kStats};
    void* const ptrs[] = {
        const_cast<__nv_bfloat16*>(q), const_cast<__nv_bfloat16*>(k), const_cast<__nv_bfloat16*>(v), o, &scale, stats};
    if (cudnn_.execute(p->plan, p->workspace, uids, ptrs, stats ? 6 : 5, &error_)) return true;
    plans_[key] = nullptr;  // refused at execution: never again for this shape
    return false;
}

bool CudnnSdpa::backward(const Backward& a) {
    const Key key{a.B, a.H, a.H, a.Lq, a.Lk, a.d, kBackward};
    Plan* p = plan(key);
    if (!p) return false;
    // Before cuDNN 9.6 the engine expected the fp32 dQ accumulator zeroed (the frontend's memset); later
    // versions zero it themselves. Zeroing it costs one pass over it.
    CUDA_CHECK(cudaMemsetAsync(a.dq_accum, 0, size_t(a.B) * a.H * a.Lq * a.d * sizeof(float), cudnn_.stream()));
    float scale = a.scale, one = 1.f;
    const int64_t uids[] = {kQ, kK, kV, kO, kScale, kStats, kDO, kDQ, kDK, kDV, kOne, kSoftmaxSum, kDQAccum};
    auto c = [](const void* x) { return const_cast<void*>(x); };
    void* const ptrs[] = {c(a.q), c(a.k), c(a.v), c(a.o), &scale,        c(a.stats), c(a.dout),
                          a.dq,   a.dk,   a.dv,   &one,   a.softmax_sum, a.dq_accum};
    if (cudnn_.execute(p->plan, p->workspace, uids, ptrs, 13, &error_)) return true;
    plans_[key] = nullptr;
    return false;
}

}  // namespace wanrt::cuda
