// CudnnSession: the handle and workspace shared by the graph-API users (cuda_sdpa.cpp, cuda_conv.cpp).
#include "cuda/cuda_cudnn.h"

namespace wanrt::cuda {

CudnnSession::CudnnSession(cudaStream_t stream) : stream_(stream) {
    CUDNN_CHECK(cudnnCreate(&handle_));
    CUDNN_CHECK(cudnnSetStream(handle_, stream_));
}

CudnnSession::~CudnnSession() {
    if (workspace_) cudaFree(workspace_);
    if (handle_) cudnnDestroy(handle_);
}

bool CudnnSession::execute(cudnnBackendDescriptor_t plan, int64_t workspace, const int64_t* uids, void* const* ptrs,
                           int64_t n, std::string* error) {
    if (size_t(workspace) > workspace_bytes_) {
        if (workspace_) {  // in use by queued work: let it finish first
            CUDA_CHECK(cudaStreamSynchronize(stream_));
            CUDA_CHECK(cudaFree(workspace_));
        }
        CUDA_CHECK(cudaMalloc(&workspace_, size_t(workspace)));
        workspace_bytes_ = size_t(workspace);
    }
    try {
        Desc vp(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
        void* ws = workspace_;
        vp.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids, "variant uids")
            .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs, "variant pointers")
            .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, "variant workspace")
            .finalize("variant pack");
        const cudnnStatus_t st = cudnnBackendExecute(handle_, plan, vp.get());
        if (st != CUDNN_STATUS_SUCCESS) {
            *error = std::string("execute: ") + cudnnGetErrorString(st);
            return false;
        }
    } catch (const BuildError& e) {
        *error = e.what;
        return false;
    }
    return true;
}

}  // namespace wanrt::cuda
