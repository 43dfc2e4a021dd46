// bf16 GEMMs through cuBLASLt: y = x·wᵀ (+ bias, + gelu_tanh) with fp32 accumulation and fp32 or
// bf16 output (rounded once, from the fp32 result), planned once per shape and cached: the
// heuristic's first plan_candidates() algorithms are timed on the first call's own operands and the
// fastest kept (the first choice is often not it for the DiT's small-M shapes: 1,560 × 1,536²).
//
// Row-major y [M, N] = x [M, K] · w [N, K]ᵀ is column-major yᵀ [N, M] = w' · x' where w' is the
// stored w read as a K×N column-major matrix (transposed by the op) and x' is x as K×M.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

namespace {

enum Epi { kEpiNone = 0, kEpiBias = 1, kEpiGelu = 2, kEpiGeluBias = 3 };
constexpr int kOutBf16 = 8;     // plan-key bit: bf16 output
constexpr int kFp8 = 16;        // plan-key bit: an FP8 plan (plan_fp8)
constexpr int kFastAccum = 32;  // plan-key bit: FP8 fast accumulation

__device__ __forceinline__ float load_f(const float* p) { return *p; }
__device__ __forceinline__ float load_f(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_f(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// In place on y, for the fallback paths (a bf16 y is then rounded twice, as by unfused ops).
template <class Y, class B = float>
__global__ void bias_act_kernel(Y* __restrict__ y, const B* __restrict__ bias, int act, int64_t N, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float v = load_f(y + i);
        if (bias) v += load_f(bias + i % N);
        store_f(y + i, activate(act, v));
    }
}

// Fallback for shapes cuBLASLt has no algorithm for (odd K with misaligned rows): 32×32 tiles
// through shared memory, fp32 accumulation.
constexpr int kT = 32;
template <class Y>
__global__ void gemm_fallback_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                     Y* __restrict__ y, int64_t M, int64_t N, int64_t K) {
    __shared__ float xs[kT][kT + 1];
    __shared__ float ws[kT][kT + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;  // 32 × 8
    const int64_t m0 = int64_t(blockIdx.y) * kT, n0 = int64_t(blockIdx.x) * kT;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int64_t k0 = 0; k0 < K; k0 += kT) {
        for (int r = ty; r < kT; r += 8) {
            const int64_t m = m0 + r, n = n0 + r, k = k0 + tx;
            xs[r][tx] = (m < M && k < K) ? __bfloat162float(x[m * K + k]) : 0.f;
            ws[r][tx] = (n < N && k < K) ? __bfloat162float(w[n * K + k]) : 0.f;
        }
        __syncthreads();
        for (int kk = 0; kk < kT; ++kk) {
            const float wv = ws[tx][kk];
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[i] += xs[ty + 8 * i][kk] * wv;
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int64_t m = m0 + ty + 8 * i, n = n0 + tx;
        if (m < M && n < N) store_f(y + m * N + n, acc[i]);
    }
}

int alignment_class(const void* x, const void* w, const void* y, const void* bias, int64_t K, int64_t N, int y_bytes) {
    // Largest power of two ≤ 16 dividing every address and leading dimension (in bytes).
    uintptr_t bits = reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w) | reinterpret_cast<uintptr_t>(y) |
                     reinterpret_cast<uintptr_t>(bias) | uintptr_t(K * 2) | uintptr_t(N * y_bytes);
    int a = 16;
    while (a > 1 && (bits & uintptr_t(a - 1))) a >>= 1;
    return a;
}

}  // namespace

int plan_candidates() {
    static const int n = [] {
        const char* e = std::getenv("WANRT_AUTOTUNE");
        return e && *e ? std::clamp(std::atoi(e), 1, 8) : 8;
    }();
    return n;
}

GemmEngine::GemmEngine(cudaStream_t stream, void* workspace, size_t workspace_bytes)
    : stream_(stream), ws_(workspace), ws_bytes_(workspace_bytes) {
    CUBLAS_CHECK(cublasLtCreate(&lt_));
}

GemmEngine::~GemmEngine() {
    auto destroy = [](Plan& p) {
        if (p.desc) cublasLtMatmulDescDestroy(p.desc);
        if (p.a) cublasLtMatrixLayoutDestroy(p.a);
        if (p.b) cublasLtMatrixLayoutDestroy(p.b);
        if (p.c) cublasLtMatrixLayoutDestroy(p.c);
        if (p.d) cublasLtMatrixLayoutDestroy(p.d);
    };
    for (auto& [key, p] : plans_) destroy(p);
    for (auto& [key, p] : f32_plans_) destroy(p);
    if (lt_) cublasLtDestroy(lt_);
}

GemmEngine::Plan& GemmEngine::plan(int64_t M, int64_t N, int64_t K, int epilogue, int align) {
    const Key key{M, N, K, epilogue, align};
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    Plan& p = plans_[key];
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    const bool out_bf16 = epilogue & kOutBf16;
    epilogue &= ~kOutBf16;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (epilogue == kEpiBias) epi = CUBLASLT_EPILOGUE_BIAS;
    if (epilogue == kEpiGelu) epi = CUBLASLT_EPILOGUE_GELU;
    if (epilogue == kEpiGeluBias) epi = CUBLASLT_EPILOGUE_GELU_BIAS;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (epilogue & kEpiBias) {
        const cudaDataType_t bt = CUDA_R_32F;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
    }
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(K), uint64_t(N), K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(K), uint64_t(M), K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, out_bf16 ? CUDA_R_16BF : CUDA_R_32F, uint64_t(N), uint64_t(M), N));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes_,
                                                      sizeof(ws_bytes_)));
    const uint32_t al = uint32_t(align);
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al)));
    cublasLtMatmulHeuristicResult_t res[8] = {};
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(lt_, p.desc, p.a, p.b, p.c, p.c, pref, plan_candidates(), res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS)
        for (int i = 0; i < found; ++i)
            if (res[i].state == CUBLAS_STATUS_SUCCESS) p.candidates.push_back(res[i].algo);
    if (!p.candidates.empty()) {
        p.algo = p.candidates[0];
        p.ok = true;
    }
    return p;
}

void GemmEngine::run(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, int act, void* y, int64_t M,
                     int64_t N, int64_t K, bool y_bf16) {
    if (M == 0 || N == 0) return;
    const int align = alignment_class(x, w, y, bias, K, N, y_bf16 ? 2 : 4);
    const int out = y_bf16 ? kOutBf16 : 0;
    // Epilogue choice: cuBLASLt's GELU is the tanh form, which is exactly gelu_tanh.
    int epi = bias ? kEpiBias : kEpiNone;
    if (act == 1) epi |= kEpiGelu;
    int post_act = (act == 1) ? 0 : act;
    const float* post_bias = nullptr;
    Plan* p = K > 0 ? &plan(M, N, K, epi | out, align) : nullptr;
    if (p && !p->ok && epi != kEpiNone) {  // retry without epilogue, finish in a kernel
        p = &plan(M, N, K, kEpiNone | out, align);
        post_bias = bias;
        post_act = act;
    }
    if (p && p->ok) {
        if (p == &plan(M, N, K, epi | out, align) && (epi & kEpiBias))
            CUBLAS_CHECK(
                cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
        const float alpha = 1.f, beta = 0.f;
        if (p->candidates.size() > 1) {  // first use of this shape: keep the fastest candidate
            double best = -1;
            for (const cublasLtMatmulAlgo_t& algo : p->candidates) {
                auto launch = [&] {
                    return cublasLtMatmul(lt_, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->c, y, p->c, &algo, ws_,
                                          ws_bytes_, stream_) == CUBLAS_STATUS_SUCCESS;
                };
                if (!launch()) continue;  // also the warm-up
                const double ms = time_on_stream(stream_, [&] { return launch() && launch(); });
                if (ms >= 0 && (best < 0 || ms < best)) best = ms, p->algo = algo;
            }
            p->candidates.clear();
        }
        CUBLAS_CHECK(cublasLtMatmul(lt_, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->c, y, p->c, &p->algo, ws_,
                                    ws_bytes_, stream_));
    } else {
        post_bias = bias;
        post_act = act;
        dim3 grid(div_up(N, kT), div_up(M, kT));
        if (y_bf16)
            gemm_fallback_kernel<<<grid, dim3(32, 8), 0, stream_>>>(x, w, static_cast<__nv_bfloat16*>(y), M, N, K);
        else
            gemm_fallback_kernel<<<grid, dim3(32, 8), 0, stream_>>>(x, w, static_cast<float*>(y), M, N, K);
        CUDA_CHECK_LAUNCH();
    }
    if (post_bias || post_act) {
        const int64_t n = M * N;
        const int blocks = int(std::min<int64_t>((n + 255) / 256, 1 << 20));
        if (y_bf16)
            bias_act_kernel<<<blocks, 256, 0, stream_>>>(static_cast<__nv_bfloat16*>(y), post_bias, post_act, N, n);
        else
            bias_act_kernel<<<blocks, 256, 0, stream_>>>(static_cast<float*>(y), post_bias, post_act, N, n);
        CUDA_CHECK_LAUNCH();
    }
}

// ---- FP8 (ops/linear_fp8.h) ----
// NVIDIA's FP8 rules for cuBLASLt on Hopper (cuBLAS docs, cublasLtMatmul; CUDALibrarySamples
// LtFp8Matmul; PyTorch's scaled_gemm): the "TN" layout (A transposed, B not), e4m3 operands, f32
// compute and scale type, the A/B scales as device f32 pointers multiplying the product, a bf16
// bias vector for f32 and bf16 outputs alike, 16-byte aligned pointers and leading dimensions.
// D f32 is documented with C f32; PyTorch runs f32 output with a bf16 C type when there is a bias,
// so both C types are tried. C is never read (beta = 0): it is y where its type is D's (as in
// NVIDIA's sample), else null (as PyTorch passes it).
GemmEngine::Plan& GemmEngine::plan_fp8(int64_t M, int64_t N, int64_t K, int flags, const void* bias,
                                       const float* a_scale, const float* b_scale) {
    const Key key{M, N, K, flags, 16};
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    Plan& p = plans_[key];
    const bool out_bf16 = flags & kOutBf16;
    const int epilogue = flags & 3;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    const int8_t fast = (flags & kFastAccum) ? 1 : 0;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
    // A is the weight (its scale: a_scale), B the activations.
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale, sizeof(a_scale)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale, sizeof(b_scale)));
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (epilogue == kEpiBias) epi = CUBLASLT_EPILOGUE_BIAS;
    if (epilogue == kEpiGelu) epi = CUBLASLT_EPILOGUE_GELU;
    if (epilogue == kEpiGeluBias) epi = CUBLASLT_EPILOGUE_GELU_BIAS;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (epilogue & kEpiBias) {
        const cudaDataType_t bt = CUDA_R_16BF;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
        // The heuristic reads the pointer's alignment.
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
    const cudaDataType_t dt = out_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(N), K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(M), K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, dt, uint64_t(N), uint64_t(M), N));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes_,
                                                      sizeof(ws_bytes_)));
    const uint32_t al = 16;
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al)));
    std::string tried;
    const std::vector<cudaDataType_t> ctypes =
        out_bf16 ? std::vector<cudaDataType_t>{CUDA_R_16BF} : std::vector<cudaDataType_t>{CUDA_R_32F, CUDA_R_16BF};
    for (cudaDataType_t ct : ctypes) {
        if (p.c) break;
        cublasLtMatrixLayout_t c = nullptr;
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c, ct, uint64_t(N), uint64_t(M), N));
        cublasLtMatmulHeuristicResult_t res[8] = {};
        int found = 0;
        const cublasStatus_t st =
            cublasLtMatmulAlgoGetHeuristic(lt_, p.desc, p.a, p.b, c, p.d, pref, plan_candidates(), res, &found);
        if (st == CUBLAS_STATUS_SUCCESS)
            for (int i = 0; i < found; ++i)
                if (res[i].state == CUBLAS_STATUS_SUCCESS) p.candidates.push_back(res[i].algo);
        if (p.candidates.empty()) {
            tried += std::string(tried.empty() ? "" : "; ") + "C " + (ct == CUDA_R_32F ? "f32" : "bf16") +
                     ": cublasLtMatmulAlgoGetHeuristic " +
                     (st == CUBLAS_STATUS_SUCCESS ? std::string("found no algorithm") : cublas_status_name(st));
            cublasLtMatrixLayoutDestroy(c);
        } else {
            p.c = c;
            p.c_is_d = ct == dt;
        }
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (!p.candidates.empty()) {
        p.algo = p.candidates[0];
        p.ok = true;
    } else {
        p.why = tried;
    }
    return p;
}

bool GemmEngine::run_fp8(const uint8_t* x8, const float* x_scale, const uint8_t* w8, const float* w_scale,
                         const __nv_bfloat16* bias, int act, void* y, int64_t M, int64_t N, int64_t K, bool y_bf16,
                         bool fast_accum, std::string* why) {
    if (M == 0 || N == 0) return true;
    const uintptr_t bits = reinterpret_cast<uintptr_t>(x8) | reinterpret_cast<uintptr_t>(w8) |
                           reinterpret_cast<uintptr_t>(y) | reinterpret_cast<uintptr_t>(bias) |
                           reinterpret_cast<uintptr_t>(x_scale) % 4 | reinterpret_cast<uintptr_t>(w_scale) % 4;
    if (K <= 0 || K % 16 || N % 16 || (bits & 15u)) {
        *why = "FP8 GEMMs need K and N multiples of 16 and 16-byte aligned operands";
        return false;
    }
    const int flags_base = kFp8 | (y_bf16 ? kOutBf16 : 0) | (fast_accum ? kFastAccum : 0);
    int epi = bias ? kEpiBias : kEpiNone;
    if (act == 1) epi |= kEpiGelu;  // cuBLASLt's GELU is the tanh form: gelu_tanh
    int post_act = act == 1 ? 0 : act;
    const __nv_bfloat16* post_bias = nullptr;
    Plan* p = &plan_fp8(M, N, K, flags_base | epi, bias, w_scale, x_scale);
    if (!p->ok && epi != kEpiNone) {  // no fused epilogue for this problem: bias and activation in a kernel
        p = &plan_fp8(M, N, K, flags_base | kEpiNone, nullptr, w_scale, x_scale);
        post_bias = bias;
        post_act = act;
    }
    if (!p->ok) {
        *why = p->why;
        return false;
    }
    // The pointers change from call to call (a new activation scale each time).
    if (!post_bias && bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof(w_scale)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof(x_scale)));
    const float alpha = 1.f, beta = 0.f;
    const void* c = p->c_is_d ? y : nullptr;
    if (p->candidates.size() > 1) {  // first use of this problem: keep the fastest candidate
        double best = -1;
        for (const cublasLtMatmulAlgo_t& algo : p->candidates) {
            auto launch = [&] {
                return cublasLtMatmul(lt_, p->desc, &alpha, w8, p->a, x8, p->b, &beta, c, p->c, y, p->d, &algo,
                                      ws_, ws_bytes_, stream_) == CUBLAS_STATUS_SUCCESS;
            };
            if (!launch()) continue;  // also the warm-up
            const double ms = time_on_stream(stream_, [&] { return launch() && launch(); });
            if (ms >= 0 && (best < 0 || ms < best)) best = ms, p->algo = algo;
        }
        p->candidates.clear();
    }
    CUBLAS_CHECK(cublasLtMatmul(lt_, p->desc, &alpha, w8, p->a, x8, p->b, &beta, c, p->c, y, p->d, &p->algo, ws_,
                                ws_bytes_, stream_));
    if (post_bias || post_act) {
        const int64_t n = M * N;
        const int blocks = int(std::min<int64_t>((n + 255) / 256, 1 << 20));
        if (y_bf16)
            bias_act_kernel<<<blocks, 256, 0, stream_>>>(static_cast<__nv_bfloat16*>(y), post_bias, post_act, N, n);
        else
            bias_act_kernel<<<blocks, 256, 0, stream_>>>(static_cast<float*>(y), post_bias, post_act, N, n);
        CUDA_CHECK_LAUNCH();
    }
    return true;
}

}  // namespace wanrt::cuda
