#include "core/profiler.h"

#include <chrono>

namespace wanrt {

namespace {
// Holds the inner backend's buffer, reporting the profiler as owner.
class WrappedBuffer final : public Buffer {
public:
    WrappedBuffer(Backend* owner, std::shared_ptr<Buffer> inner)
        : Buffer(owner, inner->ptr(), inner->bytes()), inner_(std::move(inner)) {}

private:
    std::shared_ptr<Buffer> inner_;
};
}  // namespace

std::shared_ptr<Buffer> ProfilingBackend::alloc(size_t bytes) {
    return std::make_shared<WrappedBuffer>(this, inner_->alloc(bytes));
}

template <class F>
void ProfilingBackend::timed(const std::string& name, double flop, F&& f) {
    if (!enabled_) {
        f();
        return;
    }
    inner_->synchronize();
    auto t0 = std::chrono::steady_clock::now();
    f();
    inner_->synchronize();
    OpStats& s = stats_[name];
    s.calls++;
    s.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    s.flop += flop;
}

void ProfilingBackend::copy(const Tensor& s, const Tensor& d) {
    timed("copy", 0, [&] { inner_->copy(s, d); });
}
void ProfilingBackend::linear(const Tensor& x, const Tensor& w, const Tensor* b, Activation act, const Tensor& y) {
    double flop = 2.0 * double(y.numel()) * double(w.size(1));
    timed(std::string("linear.") + dtype_name(w.dtype()), flop, [&] { inner_->linear(x, w, b, act, y); });
}
void ProfilingBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                                 const Tensor& o) {
    // Dense count (masked keys included): 2·Lq·Lk·(d + dv) per head.
    double flop = 2.0 * double(q.size(0) * q.size(1) * q.size(2)) * double(k.size(1)) * double(q.size(3) + v.size(3));
    timed("attention", flop, [&] { inner_->attention(q, k, v, p, o); });
}
void ProfilingBackend::layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, const Tensor& y) {
    timed("layer_norm", 0, [&] { inner_->layer_norm(x, w, b, eps, y); });
}
void ProfilingBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y) {
    timed("rms_norm", 0, [&] { inner_->rms_norm(x, w, eps, y); });
}
void ProfilingBackend::norm_modulate(const Tensor& x, const Tensor& sh, const Tensor& sc, float eps, const Tensor& y) {
    timed("norm_modulate", 0, [&] { inner_->norm_modulate(x, sh, sc, eps, y); });
}
void ProfilingBackend::gated_residual(const Tensor& x, const Tensor& y, const Tensor& g) {
    timed("gated_residual", 0, [&] { inner_->gated_residual(x, y, g); });
}
void ProfilingBackend::rms_norm_rope(const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& g,
                                     const Tensor& t, const Tensor& y) {
    timed("rms_norm_rope", 0, [&] { inner_->rms_norm_rope(x, w, eps, g, t, y); });
}

void ProfilingBackend::rope(const Tensor& x, const std::vector<RopeGrid>& g, const Tensor& t, const Tensor& y) {
    timed("rope", 0, [&] { inner_->rope(x, g, t, y); });
}
void ProfilingBackend::unary(Activation act, const Tensor& x, const Tensor& y) {
    timed("unary", 0, [&] { inner_->unary(act, x, y); });
}
void ProfilingBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) {
    timed("binary", 0, [&] { inner_->binary(op, a, b, y); });
}
void ProfilingBackend::patchify(const Tensor& x, int pt, int ph, int pw, const Tensor& y) {
    timed("patchify", 0, [&] { inner_->patchify(x, pt, ph, pw, y); });
}
void ProfilingBackend::unpatchify(const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw,
                                  const Tensor& y) {
    timed("unpatchify", 0, [&] { inner_->unpatchify(x, f, h, w, pt, ph, pw, y); });
}
void ProfilingBackend::embedding(const Tensor& t, const Tensor& ids, const Tensor& y) {
    timed("embedding", 0, [&] { inner_->embedding(t, ids, y); });
}
void ProfilingBackend::conv3d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv3dParams& p,
                              const Tensor& y) {
    double flop = 2.0 * double(y.numel()) * double(w.numel() / w.size(0));
    timed("conv3d", flop, [&] { inner_->conv3d(x, w, b, p, y); });
}
void ProfilingBackend::channel_rms_norm(const Tensor& x, const Tensor& g, Activation act, const Tensor& y) {
    timed("channel_rms_norm", 0, [&] { inner_->channel_rms_norm(x, g, act, y); });
}
void ProfilingBackend::upsample2x(const Tensor& x, const Tensor& y) {
    timed("upsample2x", 0, [&] { inner_->upsample2x(x, y); });
}
void ProfilingBackend::kv_sink_write(const Tensor& kn, const Tensor& vn, const Tensor& kc, const Tensor& vc,
                                     const KvSinkWrite& p, const Tensor& decision) {
    timed("kv_sink_write", 0, [&] { inner_->kv_sink_write(kn, vn, kc, vc, p, decision); });
}

void ProfilingBackend::lincomb(const Tensor* const* in, const float* coef, int n, const Tensor& out) {
    timed("lincomb", 0, [&] { inner_->lincomb(in, coef, n, out); });
}
void ProfilingBackend::fill(const Tensor& y, float v) {
    timed("fill", 0, [&] { inner_->fill(y, v); });
}

}  // namespace wanrt
