// The backend interface: memory, transfers, synchronisation and the op set.
//
// Model code never calls a backend directly; it calls the checked front-end in ops/ops.h, which
// validates shapes, allocates outputs on the backend and dispatches here. A backend receives
// inputs that ops.h has already checked; unless an op says otherwise, inputs and outputs are
// contiguous and live on this backend. Outputs are preallocated by the caller.
//
// The CPU backend is always present. A GPU backend (CUDA now, Metal later) implements the same
// virtual functions with device buffers, its own allocator and an asynchronous stream: host code
// sees results only through download() after synchronize(). An op a backend lacks for some dtype
// answers false in supports() and throws from the op ("[cuda] op X not supported for bf16").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanrt {

enum class Op : uint8_t {
    Copy,          // strided → contiguous, with dtype conversion
    Linear,        // y = x·wᵀ + b, optional activation
    Attention,
    LayerNorm,
    RMSNorm,
    NormModulate,  // layer_norm(x)·(1 + scale) + shift
    GatedResidual, // x += y·gate
    Rope,
    Unary,         // gelu_tanh, gelu_erf, silu
    Binary,        // add, mul with broadcasting
    Patchify,
    Unpatchify,
    Embedding,     // row gather from a [V, D] table
    Conv3d,
    ChannelRMSNorm,// VAE RMS_norm over the channel axis
    Upsample2x,    // nearest, spatial
    Fill,          // set every element to a value
    LinComb,       // out = Σ coef_k · in_k (samplers, guidance)
    KvSinkWrite,   // KV-cache frame write with StreamDiffusionV2's adaptive sink, decided on the device
    RmsNormRope,   // rope(rms_norm(x)): the q/k path of self-attention in one pass
    COUNT
};
const char* op_name(Op op);

// One new frame written into one row of a KV cache, the slot chosen with StreamDiffusionV2's
// adaptive sink (models/causal_dit.h) where the data is, so no host round trip is needed:
//   a_s = (cos(k̄_s, k̄_new) + cos(v̄_s, v̄_new)) / 2 for each sink slot s < sink, x̄ = the mean over
//   the frame's tokens with heads flattened, cos as torch.cosine_similarity (eps 1e-8);
//   d = argmin_s a_s (first minimum) if min_s a_s < threshold, else −1;
//   slot = fixed_slot if ≥ 0 (the cache is still filling, or the chunk is re-written),
//          else d if ≥ 0, else queue_front if ≥ 0, else ring_slot.
// The frame's K/V go to tokens [slot·S, (slot + 1)·S) of the cache; decision (i32[2]) receives
// (d, slot) for the host's slot policy to replay later.
struct KvSinkWrite {
    int64_t sink = 0, tokens = 0;  // sink slots; tokens S per frame
    int64_t fixed_slot = -1, queue_front = -1, ring_slot = -1;
    double threshold = 0;
};

enum class Activation : uint8_t { None, GeluTanh, GeluErf, Silu };
enum class BinaryOp : uint8_t { Add, Mul };

// Wan's flash_attention semantics (spec §2.1), batch-wise.
struct AttentionParams {
    std::vector<int32_t> k_lens;  // per sample: keys ≥ k_lens[b] are excluded; empty = all keys
    float q_scale = 1.0f;          // multiplies q before the kernel
    float softmax_scale = 0.0f;    // 0 → 1/sqrt(head_dim)
    bool causal = false;           // query i sees keys ≤ i + lk_b − lq (diagonal aligned bottom-right)
    int window_left = -1;          // keys in [c − left, c + right] around c = i + lk_b − lq; −1 = unlimited
    int window_right = -1;
    // Optional f32 [H, Lq + Lk − 1]: added to score (i, j) at index j − i + Lq − 1 (T5's relative
    // position bias; it depends on j − i only, so it never needs an [Lq, Lk] tensor).
    Tensor rel_bias;
};

// conv3d zero padding per side (T front/back, H top/bottom, W left/right) and strides.
struct Conv3dParams {
    int pad_t0 = 0, pad_t1 = 0, pad_h0 = 0, pad_h1 = 0, pad_w0 = 0, pad_w1 = 0;
    int stride_t = 1, stride_h = 1, stride_w = 1;
};

// Per-sample latent grid for RoPE: tokens [0, f·h·w) of sample b are rotated, the rest pass through.
struct RopeGrid {
    int64_t f = 0, h = 0, w = 0;
    int64_t frame_offset = 0;  // causal model: position of the first frame on the time axis
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string name() const = 0;         // "cpu", "cuda:0"
    virtual std::string description() const = 0;  // processor / card and thread count
    virtual bool host_visible() const = 0;         // buffers readable by the host without download

    // --- memory ---
    virtual std::shared_ptr<Buffer> alloc(size_t bytes) = 0;
    Tensor empty(DType dtype, const Shape& shape);
    // Copies host bytes into a contiguous tensor of this backend, and back.
    virtual void upload(const Tensor& dst, const void* src) = 0;
    virtual void download(const Tensor& src, void* dst) = 0;
    virtual void synchronize() = 0;

    // Whether op runs here for these input/weight dtypes (for Attention: q's and k/v's dtypes).
    // The defaults below throw; a backend overrides what it implements and says so here.
    virtual bool supports(Op op, DType input, DType weight) const = 0;
    // The dtype a linear-layer weight stored as `stored` should be kept in on this backend
    // (WeightLoader converts once at load time). CPU: as stored (a bf16 checkpoint stays bf16, an
    // f32 one f32); a GPU backend running bf16 GEMMs answers bf16 so no f32 copy stays resident.
    virtual DType matrix_dtype(DType stored) const { return stored; }

    // --- ops (shape contracts in ops/ops.h) ---
    virtual void copy(const Tensor& src, const Tensor& dst);  // same shape; both may be strided
    virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act,
                        const Tensor& y);
    virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v,
                           const AttentionParams& p, const Tensor& out);
    virtual void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps,
                            const Tensor& y);
    virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y);
    virtual void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                               const Tensor& y);
    virtual void gated_residual(const Tensor& x, const Tensor& y, const Tensor& gate);
    virtual void rope(const Tensor& x, const std::vector<RopeGrid>& grids, const Tensor& table,
                      const Tensor& y);
    // rope(rms_norm(x over its last two dims, w, eps)) for x [B, L, H, d], w [H·d].
    virtual void rms_norm_rope(const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& grids,
                               const Tensor& table, const Tensor& y);
    virtual void unary(Activation act, const Tensor& x, const Tensor& y);
    virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y);
    virtual void patchify(const Tensor& x, int pt, int ph, int pw, const Tensor& y);
    virtual void unpatchify(const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw,
                            const Tensor& y);
    virtual void embedding(const Tensor& table, const Tensor& ids, const Tensor& y);
    virtual void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv3dParams& p,
                        const Tensor& y);
    // act is applied to the output (the VAE's norm → SiLU in one pass).
    virtual void channel_rms_norm(const Tensor& x, const Tensor& gamma, Activation act, const Tensor& y);
    virtual void upsample2x(const Tensor& x, const Tensor& y);
    virtual void fill(const Tensor& y, float value);  // y contiguous, any float dtype
    // out = Σ_{k<n} coef[k]·in[k], 1 ≤ n ≤ 4, f32 contiguous, same shape; out may alias an input.
    virtual void lincomb(const Tensor* const* in, const float* coef, int n, const Tensor& out);
    // k_new, v_new [S, N, hd] f32 contiguous; k_cache, v_cache [K·S, N, hd] contiguous, of the
    // cache's dtype; decision i32[2] contiguous. Semantics at KvSinkWrite.
    virtual void kv_sink_write(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                               const KvSinkWrite& p, const Tensor& decision);

protected:
    [[noreturn]] void unsupported(Op op) const;  // "[<name>] op <op> is not implemented"
};

// The CPU backend (always available). threads = 0 → one per core.
std::shared_ptr<Backend> make_cpu_backend(int threads = 0);

}  // namespace wanrt
