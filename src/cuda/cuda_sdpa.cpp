// cuDNN fused attention (SDPA) through the cuDNN 9 backend graph API, without the frontend
// library. The operation graph is the one cudnn-frontend lowers its SDPA node to for inference:
//   S = matmul(Q, Kᵀ) · scale;  M = max_j S;  E = exp(S − M);  Σ = Σ_j E;  stats = M + log Σ;
//   P = E / Σ (bf16);  O = matmul(P, V)
// with fp32 intermediates. cuDNN's heuristics recognise the pattern and hand back its fused
// flash-attention engine (runtime-compiled on first use, so the first call per shape is slow).
#include <cstring>
#include <string>

#include "cuda/cuda_common.h"
#include "cuda/cuda_cudnn.h"

namespace wanrt::cuda {

namespace {

enum Uid : int64_t { kQ = 1, kK = 2, kV = 3, kO = 4, kScale = 5, kStats = 6 };

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
    const auto [B, H, Hk, Lq, Lk, d, with_stats] = key;
    auto p = std::make_unique<Plan>();
    auto& keep = p->keep;
    int64_t next_virtual = 100;
    std::map<int64_t, cudnnBackendDescriptor_t> by_uid;
    try {
        auto tensor = [&](int64_t uid, cudnnDataType_t dt, std::vector<int64_t> dims, std::vector<int64_t> strides,
                          bool is_virtual, bool by_value = false) -> Desc& {
            Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
            const int64_t align = 16;
            t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor type")
                .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, int64_t(dims.size()), dims.data(), "tensor dims")
                .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, int64_t(strides.size()), strides.data(),
                     "tensor strides")
                .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid")
                .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
            if (is_virtual) t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
            if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by value");
            t.finalize("tensor");
            by_uid[uid] = t.get();
            keep.push_back(std::move(t));
            return keep.back();
        };
        const int64_t b = B, h = H, hk = Hk, sq = Lq, skv = Lk, dd = d;
        // Q, O: [B, Lq, H, d] memory viewed as (b, h, s, d); K viewed transposed as (b, hk, d, s).
        tensor(kQ, CUDNN_DATA_BFLOAT16, {b, h, sq, dd}, {sq * h * dd, dd, h * dd, 1}, false);
        tensor(kK, CUDNN_DATA_BFLOAT16, {b, hk, dd, skv}, {skv * hk * dd, dd, 1, hk * dd}, false);
        tensor(kV, CUDNN_DATA_BFLOAT16, {b, hk, skv, dd}, {skv * hk * dd, dd, hk * dd, 1}, false);
        tensor(kO, CUDNN_DATA_BFLOAT16, {b, h, sq, dd}, {sq * h * dd, dd, h * dd, 1}, false);
        tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
        const std::vector<int64_t> s_dims = {b, h, sq, skv}, s_str = {h * sq * skv, sq * skv, skv, 1};
        const std::vector<int64_t> r_dims = {b, h, sq, 1}, r_str = {h * sq, sq, 1, 1};
        const int64_t uS = next_virtual++, uS1 = next_virtual++, uM = next_virtual++, uSub = next_virtual++,
                      uE = next_virtual++, uSum = next_virtual++, uLog = next_virtual++,
                      uStats = with_stats ? int64_t(kStats) : next_virtual++, uP = next_virtual++;
        tensor(uS, CUDNN_DATA_FLOAT, s_dims, s_str, true);
        tensor(uS1, CUDNN_DATA_FLOAT, s_dims, s_str, true);
        tensor(uM, CUDNN_DATA_FLOAT, r_dims, r_str, true);
        tensor(uSub, CUDNN_DATA_FLOAT, s_dims, s_str, true);
        tensor(uE, CUDNN_DATA_FLOAT, s_dims, s_str, true);
        tensor(uSum, CUDNN_DATA_FLOAT, r_dims, r_str, true);
        tensor(uLog, CUDNN_DATA_FLOAT, r_dims, r_str, true);
        tensor(uStats, CUDNN_DATA_FLOAT, r_dims, r_str, !with_stats);  // logsumexp, an output for split-KV
        tensor(uP, CUDNN_DATA_BFLOAT16, s_dims, s_str, true);
        auto T = [&](int64_t uid) { return by_uid.at(uid); };

        const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
        std::vector<cudnnBackendDescriptor_t> ops;
        auto matmul = [&](int64_t a, int64_t bb, int64_t c) {
            Desc md(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
            md.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul comp type")
                .finalize("matmul desc");
            keep.push_back(std::move(md));
            const Desc& mdr = keep.back();
            Desc op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
            op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, T(a), "matmul A")
                .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, T(bb), "matmul B")
                .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, T(c), "matmul C")
                .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, mdr, "matmul desc")
                .finalize("matmul op");
            keep.push_back(std::move(op));
            ops.push_back(keep.back().get());
        };
        auto pointwise = [&](cudnnPointwiseMode_t mode, int64_t x, int64_t bb, int64_t y) {
            Desc pd(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
            pd.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode")
                .set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32, "pointwise prec")
                .finalize("pointwise desc");
            keep.push_back(std::move(pd));
            const Desc& pdr = keep.back();
            Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
            const float one = 1.f;
            op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pdr, "pointwise desc")
                .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, T(x), "pointwise X");
            if (bb) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, T(bb), "pointwise B");
            op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, T(y), "pointwise Y")
                .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "alpha1")
                .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "alpha2")
                .finalize("pointwise op");
            keep.push_back(std::move(op));
            ops.push_back(keep.back().get());
        };
        auto reduction = [&](cudnnReduceTensorOp_t mode, int64_t x, int64_t y) {
            Desc rd(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
            rd.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction mode")
                .set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "reduction comp type")
                .finalize("reduction desc");
            keep.push_back(std::move(rd));
            const Desc& rdr = keep.back();
            Desc op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
            op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, rdr, "reduction desc")
                .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, T(x), "reduction X")
                .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, T(y), "reduction Y")
                .finalize("reduction op");
            keep.push_back(std::move(op));
            ops.push_back(keep.back().get());
        };
        keep.reserve(64);  // references into keep must stay valid while building
        matmul(kQ, kK, uS);
        pointwise(CUDNN_POINTWISE_MUL, uS, kScale, uS1);
        reduction(CUDNN_REDUCE_TENSOR_MAX, uS1, uM);
        pointwise(CUDNN_POINTWISE_SUB, uS1, uM, uSub);
        pointwise(CUDNN_POINTWISE_EXP, uSub, 0, uE);
        reduction(CUDNN_REDUCE_TENSOR_ADD, uE, uSum);
        pointwise(CUDNN_POINTWISE_LOG, uSum, 0, uLog);
        pointwise(CUDNN_POINTWISE_ADD, uM, uLog, uStats);
        pointwise(CUDNN_POINTWISE_DIV, uE, uSum, uP);
        matmul(uP, kV, kO);

        const BuiltPlan bp = build_plan(cudnn_.handle(), ops.data(), int64_t(ops.size()), keep);
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
    const Key key{B, H, Hk, Lq, Lk, d, stats != nullptr};
    Plan* p = plan(key);
    if (!p) return false;
    const int64_t uids[] = {kQ, kK, kV, kO, kScale, kStats};
    void* const ptrs[] = {const_cast<__nv_bfloat16*>(q), const_cast<__nv_bfloat16*>(k), const_cast<__nv_bfloat16*>(v),
                          o, &scale, stats};
    if (cudnn_.execute(p->plan, p->workspace, uids, ptrs, stats ? 6 : 5, &error_)) return true;
    plans_[key] = nullptr;  // refused at execution: never again for this shape
    return false;
}

}  // namespace wanrt::cuda
