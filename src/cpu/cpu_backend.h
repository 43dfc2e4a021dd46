// The CPU backend: host memory (64-byte aligned), a thread pool for elementwise and attention
// work, OpenBLAS sgemm for f32 GEMM. Op implementations are split by family across cpu_*.cpp.
#pragma once

#include <memory>

#include "core/backend.h"
#include "core/threadpool.h"

namespace wanrt {

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(int threads);

    std::string name() const override { return "cpu"; }
    std::string description() const override;
    bool host_visible() const override { return true; }

    std::shared_ptr<Buffer> alloc(size_t bytes) override;
    void upload(const Tensor& dst, const void* src) override;
    void download(const Tensor& src, void* dst) override;
    void synchronize() override {}
    bool supports(Op op, DType input, DType weight) const override;

    void copy(const Tensor& src, const Tensor& dst) override;                       // cpu_tensor.cpp
    void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act,
                const Tensor& y) override;                                            // cpu_matmul.cpp
    void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                   const Tensor& out) override;                                       // cpu_attention.cpp
    void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps,
                    const Tensor& y) override;                                        // cpu_norm.cpp
    void rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y) override;
    void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                       const Tensor& y) override;
    void gated_residual(const Tensor& x, const Tensor& y, const Tensor& gate) override;
    void rope(const Tensor& x, const std::vector<RopeGrid>& grids, const Tensor& table,
              const Tensor& y) override;                                              // cpu_rope.cpp
    void rms_norm_rope(const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& grids,
                       const Tensor& table, const Tensor& y) override;                // cpu_rope.cpp
    void unary(Activation act, const Tensor& x, const Tensor& y) override;           // cpu_elementwise.cpp
    void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override;
    void patchify(const Tensor& x, int pt, int ph, int pw, const Tensor& y) override;
    void unpatchify(const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw,
                    const Tensor& y) override;
    void embedding(const Tensor& table, const Tensor& ids, const Tensor& y) override;
    void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv3dParams& p,
                const Tensor& y) override;                                            // cpu_conv.cpp
    void channel_rms_norm(const Tensor& x, const Tensor& gamma, Activation act, const Tensor& y) override;
    void upsample2x(const Tensor& x, const Tensor& y) override;
    void fill(const Tensor& y, float value) override;                               // cpu_tensor.cpp
    void lincomb(const Tensor* const* in, const float* coef, int n, const Tensor& out) override;  // cpu_elementwise.cpp
    void kv_sink_write(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                       const KvSinkWrite& p, const Tensor& decision) override;                // cpu_kv.cpp

    ThreadPool& pool() { return pool_; }

private:
    ThreadPool pool_;
};

namespace cpu {
// y = x·wᵀ with x [M, K] rows at stride ldx, w [N, K] of any supported dtype, y [M, N] at stride ldy.
void gemm_xwt(ThreadPool& pool, int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx,
              const void* w, DType wtype, float* y, int64_t ldy);
}  // namespace cpu

}  // namespace wanrt
