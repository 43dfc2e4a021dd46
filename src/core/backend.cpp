#include "core/backend.h"

#include "core/error.h"

namespace wanrt {

const char* op_name(Op op) {
    static const char* kNames[] = {"copy",          "linear",     "attention",     "layer_norm",
                                   "rms_norm",      "norm_modulate", "gated_residual", "rope",
                                   "unary",         "binary",     "patchify",      "unpatchify",
                                   "embedding",     "conv3d",     "channel_rms_norm", "upsample2x",
                                   "fill",          "lincomb",       "kv_sink_write", "rms_norm_rope"};
    static_assert(sizeof(kNames) / sizeof(kNames[0]) == size_t(Op::COUNT), "one name per Op");
    return kNames[size_t(op)];
}

Tensor Backend::empty(DType dtype, const Shape& shape) {
    return Tensor(alloc(dtype_bytes(dtype, shape_numel(shape))), dtype, shape);
}

void Backend::unsupported(Op op) const {
    fail(name().c_str(), "op ", op_name(op), " is not implemented on this backend; run with --device cpu");
}

void Backend::copy(const Tensor&, const Tensor&) { unsupported(Op::Copy); }
void Backend::linear(const Tensor&, const Tensor&, const Tensor*, Activation, const Tensor&) {
    unsupported(Op::Linear);
}
void Backend::attention(const Tensor&, const Tensor&, const Tensor&, const AttentionParams&,
                        const Tensor&) {
    unsupported(Op::Attention);
}
void Backend::layer_norm(const Tensor&, const Tensor*, const Tensor*, float, const Tensor&) {
    unsupported(Op::LayerNorm);
}
void Backend::rms_norm(const Tensor&, const Tensor&, float, const Tensor&) { unsupported(Op::RMSNorm); }
void Backend::norm_modulate(const Tensor&, const Tensor&, const Tensor&, float, const Tensor&) {
    unsupported(Op::NormModulate);
}
void Backend::gated_residual(const Tensor&, const Tensor&, const Tensor&) {
    unsupported(Op::GatedResidual);
}
void Backend::rope(const Tensor&, const std::vector<RopeGrid>&, const Tensor&, const Tensor&) {
    unsupported(Op::Rope);
}
void Backend::unary(Activation, const Tensor&, const Tensor&) { unsupported(Op::Unary); }
void Backend::binary(BinaryOp, const Tensor&, const Tensor&, const Tensor&) { unsupported(Op::Binary); }
void Backend::patchify(const Tensor&, int, int, int, const Tensor&) { unsupported(Op::Patchify); }
void Backend::unpatchify(const Tensor&, int64_t, int64_t, int64_t, int, int, int, const Tensor&) {
    unsupported(Op::Unpatchify);
}
void Backend::embedding(const Tensor&, const Tensor&, const Tensor&) { unsupported(Op::Embedding); }
void Backend::conv3d(const Tensor&, const Tensor&, const Tensor*, const Conv3dParams&, const Tensor&) {
    unsupported(Op::Conv3d);
}
void Backend::channel_rms_norm(const Tensor&, const Tensor&, Activation, const Tensor&) {
    unsupported(Op::ChannelRMSNorm);
}
void Backend::upsample2x(const Tensor&, const Tensor&) { unsupported(Op::Upsample2x); }
void Backend::fill(const Tensor&, float) { unsupported(Op::Fill); }
void Backend::lincomb(const Tensor* const*, const float*, int, const Tensor&) { unsupported(Op::LinComb); }
void Backend::rms_norm_rope(const Tensor&, const Tensor&, float, const std::vector<RopeGrid>&, const Tensor&,
                            const Tensor&) {
    unsupported(Op::RmsNormRope);
}
void Backend::kv_sink_write(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const KvSinkWrite&, const Tensor&) {
    unsupported(Op::KvSinkWrite);
}

}  // namespace wanrt
