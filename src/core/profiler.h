// ProfilingBackend: wraps a backend and times every op (synchronising after each), counting the
// floating-point work of matrix ops, so `wanrt bench` can show where a forward pass spends time.
// Tensors it allocates report it as their backend, so model code runs through it unchanged.
// Synchronising after each op serialises a GPU stream: use it for breakdowns, not for totals
// (set_enabled(false) for those).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/backend.h"

namespace wanrt {

struct OpStats {
    int64_t calls = 0;
    double ms = 0;
    double flop = 0;
};

class ProfilingBackend final : public Backend {
public:
    explicit ProfilingBackend(std::shared_ptr<Backend> inner) : inner_(std::move(inner)) {}

    const std::map<std::string, OpStats>& stats() const { return stats_; }
    void reset() { stats_.clear(); }
    // While disabled, ops are forwarded untimed and unsynchronised (for plain timing runs of a
    // model whose buffers belong to the profiler).
    void set_enabled(bool on) { enabled_ = on; }
    Backend& inner() { return *inner_; }

    std::string name() const override { return inner_->name(); }
    std::string description() const override { return inner_->description(); }
    bool host_visible() const override { return inner_->host_visible(); }
    std::shared_ptr<Buffer> alloc(size_t bytes) override;
    void upload(const Tensor& dst, const void* src) override { inner_->upload(dst, src); }
    void download(const Tensor& src, void* dst) override { inner_->download(src, dst); }
    void synchronize() override { inner_->synchronize(); }
    bool supports(Op op, DType a, DType b) const override { return inner_->supports(op, a, b); }
    DType matrix_dtype(DType stored) const override { return inner_->matrix_dtype(stored); }

    void copy(const Tensor& s, const Tensor& d) override;
    void linear(const Tensor& x, const Tensor& w, const Tensor* b, Activation act, const Tensor& y) override;
    void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                   const Tensor& o) override;
    void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, const Tensor& y) override;
    void rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y) override;
    void norm_modulate(const Tensor& x, const Tensor& sh, const Tensor& sc, float eps, const Tensor& y) override;
    void gated_residual(const Tensor& x, const Tensor& y, const Tensor& g) override;
    void rope(const Tensor& x, const std::vector<RopeGrid>& g, const Tensor& t, const Tensor& y) override;
    void rms_norm_rope(const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& g, const Tensor& t,
                       const Tensor& y) override;
    void unary(Activation act, const Tensor& x, const Tensor& y) override;
    void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override;
    void patchify(const Tensor& x, int pt, int ph, int pw, const Tensor& y) override;
    void unpatchify(const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw,
                    const Tensor& y) override;
    void embedding(const Tensor& t, const Tensor& ids, const Tensor& y) override;
    void conv3d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv3dParams& p, const Tensor& y) override;
    void channel_rms_norm(const Tensor& x, const Tensor& g, Activation act, const Tensor& y) override;
    void upsample2x(const Tensor& x, const Tensor& y) override;
    void fill(const Tensor& y, float v) override;
    void lincomb(const Tensor* const* in, const float* coef, int n, const Tensor& out) override;
    void kv_sink_write(const Tensor& kn, const Tensor& vn, const Tensor& kc, const Tensor& vc, const KvSinkWrite& p,
                       const Tensor& decision) override;

private:
    template <class F>
    void timed(const std::string& name, double flop, F&& f);
    std::shared_ptr<Backend> inner_;
    std::map<std::string, OpStats> stats_;
    bool enabled_ = true;
};

}  // namespace wanrt
