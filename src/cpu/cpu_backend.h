// The CPU backend: host memory (64-byte aligned), a thread pool for elementwise and attention
// work, OpenBLAS sgemm for f32 GEMM. Kernels are registered per op family in cpu_*.cpp
// (core/op_registry.h); each is the reference the other backends are tested against.
#pragma once

#include <atomic>
#include <memory>

#include "core/backend.h"
#include "core/threadpool.h"

namespace wanrt {

class CpuBackend final : public Backend {
public:
    static constexpr const char* kKind = "cpu";
    explicit CpuBackend(int threads);

    std::string name() const override { return "cpu"; }
    const char* kind() const override { return kKind; }
    std::string description() const override;
    bool host_visible() const override { return true; }
    bool holds_block_types() const override { return true; }

    std::shared_ptr<Buffer> alloc(size_t bytes) override;
    void upload(const Tensor& dst, const void* src) override;
    void download(const Tensor& src, void* dst) override;
    void synchronize() override {}
    void set_alloc_check(bool on) override { alloc_check_ = on; }
    int64_t guard_failures() const override { return guard_failures_->load(); }

    ThreadPool& pool() { return pool_; }

    // Linears on block-quantized weights with more than cpu::kQlinearIntMaxRows rows (cpu/qmatmul.h):
    // the tiled integer GEMM, x rounded to int8 per 32 (the default: 1.7–2.9× sgemm's speed), or,
    // when on, the exact decode-panel + sgemm path (x stays f32: goldens at f32 tolerance, oracles).
    void set_exact_qlinear(bool on) { exact_qlinear_ = on; }
    bool exact_qlinear() const { return exact_qlinear_; }

private:
    ThreadPool pool_;
    bool alloc_check_ = false;
    bool exact_qlinear_ = false;
    // Shared with the buffers, which may outlive the backend.
    std::shared_ptr<std::atomic<int64_t>> guard_failures_ = std::make_shared<std::atomic<int64_t>>(0);
};

namespace cpu {
// y = x·wᵀ with x [M, K] rows at stride ldx, w [N, K] of any supported dtype, y [M, N] at stride ldy.
void gemm_xwt(ThreadPool& pool, int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx,
              const void* w, DType wtype, float* y, int64_t ldy);
// The rms_norm kernel (x, y [rows, D] contiguous), for the fused kernels whose unfused composition it is part of.
void rms_norm(CpuBackend& be, const Tensor& x, const Tensor& w, float eps, const Tensor& y);
}  // namespace cpu

}  // namespace wanrt
