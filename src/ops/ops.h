// The checked op front-end used by model code, and the op declarations the backends implement.
//
// Each function validates its inputs with a "[op] ..." message, makes strided inputs contiguous
// where the kernel needs it, allocates the output on the inputs' backend and dispatches through
// the op registry (core/op_registry.h) with the op's args struct, declared below next to its
// contract. Kernels (cpu/, cuda/) register per args struct and dtype signature. Shapes are
// PyTorch order. A new op gets its own header ops/<name>.h in the same pattern (ops/clamp.h).
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/op_registry.h"

namespace wanrt {

// Codes are shared with the CUDA kernels (cuda_common.h activate()): 1 gelu_tanh, 2 gelu_erf, 3 silu,
// 4 tanh, 5 relu (TAEHV, models/taehv.h).
enum class Activation : uint8_t { None, GeluTanh, GeluErf, Silu, Tanh, Relu };
enum class BinaryOp : uint8_t { Add, Mul };

// Wan's flash_attention semantics (docs/wan21.md §2.1), batch-wise.
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
    // x [T, H, W, C], prefix [Tp, H, W, C] and y [T', H', W', O] instead of [C, T, H, W] (one sample,
    // channels fastest: cuDNN's NDHWC, which runs half convs ≈ 2× faster on the GPU). The weight's
    // logical shape stays [O, C, kt, kh, kw]; see ops::conv3d for how it may be stored.
    bool channels_last = false;
};

// Per-sample latent grid for RoPE: tokens [0, f·h·w) of sample b are rotated, the rest pass through.
struct RopeGrid {
    int64_t f = 0, h = 0, w = 0;
    int64_t frame_offset = 0;  // causal model: position of the first frame on the time axis
};

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

// ---- op declarations: what a kernel receives (outputs preallocated, inputs checked) -----------
// The signature each is dispatched with is given as {in, w}; "{F32}" means {F32, F32}.

struct CopyArgs {  // {src dtype, dst dtype}; same shape, either may be strided
    static constexpr const char* kName = "copy";
    Tensor src, dst;
};
struct FillArgs {  // {y dtype}; y contiguous
    static constexpr const char* kName = "fill";
    Tensor y;
    float value = 0;
};
struct LinearArgs {  // {x dtype, w dtype}; y f32 or, where {BF16, w} is registered, bf16
    static constexpr const char* kName = "linear";
    Tensor x, w;
    const Tensor* bias = nullptr;
    Activation act = Activation::None;
    Tensor y;
};
struct AttentionArgs {  // {q dtype, k/v dtype}
    static constexpr const char* kName = "attention";
    Tensor q, k, v;
    const AttentionParams* p = nullptr;
    Tensor out;
};
struct LayerNormArgs {  // {F32}
    static constexpr const char* kName = "layer_norm";
    Tensor x;
    const Tensor *w = nullptr, *b = nullptr;
    float eps = 0;
    Tensor y;
};
struct RmsNormArgs {  // {F32}
    static constexpr const char* kName = "rms_norm";
    Tensor x, w;
    float eps = 0;
    Tensor y;
};
struct NormModulateArgs {  // {F32}; shift/scale rows may be strided (unit inner stride)
    static constexpr const char* kName = "norm_modulate";
    Tensor x, shift, scale;
    float eps = 0;
    Tensor y;
};
struct GatedResidualArgs {  // {F32}; x updated in place
    static constexpr const char* kName = "gated_residual";
    Tensor x, y, gate;
};
struct RopeArgs {  // {F32}
    static constexpr const char* kName = "rope";
    Tensor x;
    const std::vector<RopeGrid>* grids = nullptr;
    Tensor table, y;
};
struct RmsNormRopeArgs {  // {F32}
    static constexpr const char* kName = "rms_norm_rope";
    Tensor x, w;
    float eps = 0;
    const std::vector<RopeGrid>* grids = nullptr;
    Tensor table, y;
};
struct UnaryArgs {  // {F32}, {F16}, {BF16}: y in x's dtype, computed in f32
    static constexpr const char* kName = "unary";
    Activation act = Activation::None;
    Tensor x, y;
};
struct BinaryArgs {  // {F32}, {F16}, {BF16} (a, b and y alike, computed in f32); a and b broadcast to y's shape (strides as given)
    static constexpr const char* kName = "binary";
    BinaryOp op = BinaryOp::Add;
    Tensor a, b, y;
};
struct PatchifyArgs {  // {F32}
    static constexpr const char* kName = "patchify";
    Tensor x;
    int pt = 1, ph = 1, pw = 1;
    Tensor y;
};
struct UnpatchifyArgs {  // {F32}
    static constexpr const char* kName = "unpatchify";
    Tensor x;
    int64_t f = 0, h = 0, w = 0;
    int pt = 1, ph = 1, pw = 1;
    Tensor y;
};
struct EmbeddingArgs {  // {F32, table dtype}; ids i32
    static constexpr const char* kName = "embedding";
    Tensor table, ids, y;
};
struct Conv3dArgs {  // {x dtype, w dtype}: {F32, F32}; {F32, half}: x and y rounded to w's dtype inside, y f32;
                     // {half, half}: x, prefix and y in w's dtype (the bias stays f32)
    static constexpr const char* kName = "conv3d";
    // x, prefix, y contiguous. w contiguous, except with p.channels_last: then w is passed as given
    // (possibly a permuted view of [O, kt, kh, kw, C] storage), and the kernel makes what it needs.
    // Only backends answering prefers_channels_last_conv() receive p.channels_last.
    Tensor x, w;
    Tensor prefix;  // undefined, or [C, Tp, H, W] frames in front of x (a causal conv's cache)
    const Tensor* bias = nullptr;
    Conv3dParams p;
    Tensor y;
};
struct ChannelRmsNormArgs {  // {F32}, {F16}, {BF16}: y in x's dtype, computed in f32; gamma f32
    static constexpr const char* kName = "channel_rms_norm";
    Tensor x, gamma;
    Activation act = Activation::None;
    Tensor y;
};
struct Upsample2xArgs {  // {F32}, {F16}, {BF16}: y in x's dtype
    static constexpr const char* kName = "upsample2x";
    Tensor x, y;
    bool channels_last = false;  // x [T, H, W, C] → y [T, 2H, 2W, C]
};
struct LinCombArgs {  // {in[0] dtype, out dtype}: {F32}, or {BF16, BF16} / {F16, F16} with in[1..] f32; 1 ≤ n ≤ 4, out may alias one
    static constexpr const char* kName = "lincomb";
    const Tensor* in[4] = {nullptr, nullptr, nullptr, nullptr};
    float coef[4] = {0, 0, 0, 0};
    int n = 0;
    Tensor out;
};
struct KvSinkWriteArgs {  // {F32, cache dtype}
    static constexpr const char* kName = "kv_sink_write";
    Tensor k_new, v_new, k_cache, v_cache;
    KvSinkWrite p;
    Tensor decision;
};

}  // namespace wanrt

namespace wanrt::ops {

// Copies src into dst (same shape; either may be strided, dtypes may differ): the way to write into
// a view of an existing tensor (a slice of a cache, a row of a batch).
void copy(const Tensor& src, const Tensor& dst);
// Sets every element of a contiguous tensor.
void fill(const Tensor& y, float value);

// x itself when it is contiguous and starts on a 16-byte boundary, else a contiguous copy on its
// backend: what every front-end hands its kernel (vector loads need the alignment).
Tensor contiguous(const Tensor& x);
// Copy with dtype conversion.
Tensor to_dtype(const Tensor& x, DType dtype);

// x [..., K] (f32), w [N, K] (f32, bf16 or f16, used in place), bias [N] (f32) or null
// → [..., N] f32, act applied after the bias. fp32 accumulation. Where the backend supports bf16
// linear inputs (supports("linear", BF16, w)), x may be bf16 and out_dtype bf16: the output is
// rounded once from the fp32 result — for activations that only feed another linear, which would
// round them to bf16 anyway (the FFN hidden state on the GPU).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias = nullptr,
              Activation act = Activation::None, DType out_dtype = DType::F32);
// The dtype for activations passed from one linear to the next on this backend: bf16 where
// supported (GPU: bit-identical to staging f32 to bf16, half the traffic), else f32.
DType linear_chain_dtype(const Backend& be, DType weight);

// q [B, Lq, H, d], k [B, Lk, Hk, d], v [B, Lk, Hk, dv] (H divisible by Hk) → [B, Lq, H, dv] f32.
// q is f32; k and v are f32, or bf16 where supports("attention", F32, BF16) (read in place, no
// widening copy: a bf16 KV cache). Semantics in AttentionParams. A query row that sees no key gives zeros.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p = {});

// Normalise over the last dim. layer_norm: w, b [D] or null (biased variance, eps inside sqrt).
Tensor layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps);
// rms_norm: x·rsqrt(mean(x²) + eps)·w, w [D].
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps);
// x [B, L, D]; shift, scale [B, D] (rows may be strided) → layer_norm(x)·(1 + scale) + shift.
Tensor norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps);
// In place: x [B, L, D] += y [B, L, D] · gate [B, D] (gate rows may be strided).
void gated_residual(const Tensor& x, const Tensor& y, const Tensor& gate);

// x [B, L, H, d] with d even; table [P, d/2, 2] f32 (cos, sin) from rope_table(); grids.size()==B.
// Pairs (x[2k], x[2k+1]) are rotated by the angle of pair k's axis (frame/height/width, split
// [d/2 − 2⌊d/6⌋, ⌊d/6⌋, ⌊d/6⌋]); tokens past f·h·w pass through.
Tensor rope(const Tensor& x, const std::vector<RopeGrid>& grids, const Tensor& table);
// rope(rms_norm(x, w, eps)) with the norm over each token's H·d values (WanRMSNorm over dim):
// x [B, L, H, d], w [H·d] → [B, L, H, d], one pass (the self-attention q/k path).
Tensor rms_norm_rope(const Tensor& x, const Tensor& w, float eps, const std::vector<RopeGrid>& grids, const Tensor& table);

Tensor unary(Activation act, const Tensor& x);
inline Tensor gelu_tanh(const Tensor& x) { return unary(Activation::GeluTanh, x); }
inline Tensor gelu_erf(const Tensor& x) { return unary(Activation::GeluErf, x); }
inline Tensor silu(const Tensor& x) { return unary(Activation::Silu, x); }
inline Tensor tanh(const Tensor& x) { return unary(Activation::Tanh, x); }
inline Tensor relu(const Tensor& x) { return unary(Activation::Relu, x); }

// Elementwise with NumPy broadcasting (up to 6 dims), f32.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }

// x [C, T, H, W] → [T/pt · H/ph · W/pw, C·pt·ph·pw]: token (t, h, w) row-major, features
// (c, p, q, r) with r fastest — the flattening of a Conv3d weight [D, C, pt, ph, pw].
Tensor patchify(const Tensor& x, int pt, int ph, int pw);
// x [L ≥ f·h·w, pt·ph·pw·C] (features (p, q, r, c), c fastest) → [C, f·pt, h·ph, w·pw].
Tensor unpatchify(const Tensor& x, int64_t f, int64_t h, int64_t w, int pt, int ph, int pw);

// table [V, D] (f32/bf16/f16), ids [n] (i32, each in [0, V)) → [n, D] f32.
Tensor embedding(const Tensor& table, const Tensor& ids);

// x [C, T, H, W] (f32), w [O, C, kt, kh, kw], bias [O] (f32) or null, explicit zero padding and
// strides → [O, T', H', W'] f32 with T' = (T + pad_t0 + pad_t1 − kt)/stride_t + 1 (likewise H', W').
// A Conv2d applied per frame is kt = 1. prefix [C, Tp, H, W] (f32) or null: the conv of
// concat(prefix, x) along T without the concatenated copy (T grows by Tp in the formula above).
// The weight's dtype sets the precision: f32 is exact on the CPU and TF32 on CUDA (as PyTorch
// runs it); an f16 or bf16 weight allows the backend to round x and y to that dtype too (CUDA's
// half-precision tensor-core convolutions; the CPU widens the weight and stays f32).
// p.channels_last: x [T, H, W, C], prefix [Tp, H, W, C] → [T', H', W', O], the same values transposed.
// The weight is any view of logical shape [O, C, kt, kh, kw]; stored channels-last (contiguous
// [O, kt, kh, kw, C] seen through permute({0, 4, 1, 2, 3}): ops::conv_weight_channels_last) it is
// used in place by cuDNN, otherwise converted per call. A backend that does not prefer channels-last
// (the CPU) runs it as permute → its NCDHW conv → permute back: correct, not fast.
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv3dParams& p,
              const Tensor* prefix = nullptr);
// x [C, T, H, W], gamma [C] → x / max(‖x‖₂ over C, 1e-12) · √C · gamma (the VAE's RMS_norm).
// act: Silu fuses the VAE's norm → SiLU into one pass (exactly silu(channel_rms_norm(x)) on the CPU).
// x f32, f16 or bf16 (gamma f32): y in x's dtype, the math in f32 and y rounded once.
Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, Activation act = Activation::None);
// x [C, T, H, W] → [C, T, 2H, 2W], nearest neighbour; channels_last: x [T, H, W, C] → [T, 2H, 2W, C].
Tensor upsample2x(const Tensor& x, bool channels_last = false);
// A conv weight [O, C, kt, kh, kw] as channels-last storage: a contiguous [O, kt, kh, kw, C] copy seen
// through permute({0, 4, 1, 2, 3}), so its logical shape is unchanged (done once at load time).
Tensor conv_weight_channels_last(const Tensor& w);

// Writes one new frame (k_new, v_new [S, N, hd] f32) into a KV-cache row (k_cache, v_cache
// [K·S, N, hd], contiguous, f32 or the backend's bf16) at the slot chosen by the adaptive-sink rule
// of KvSinkWrite (core/backend.h), on the device. decision: i32[2] ← (d, slot), left on the device.
void kv_sink_write(const Tensor& k_new, const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                   const KvSinkWrite& p, const Tensor& decision);

// out = Σ_{k<n} coef[k]·in[k] for 1 ≤ n ≤ 4 f32 contiguous tensors of out's shape on its backend;
// out may alias an input (the samplers' updates and classifier-free guidance). out may also be bf16
// or f16 with in[0] of the same dtype (the others f32): summed in f32, rounded once (a LoRA patch of
// a half-precision weight in one pass: W + s·up·down).
void lincomb(const Tensor* const* in, const float* coef, int n, const Tensor& out);

// A new contiguous tensor on be filled with value.
Tensor full(Backend& be, DType dtype, const Shape& shape, float value);
inline Tensor zeros(Backend& be, const Shape& shape) { return full(be, DType::F32, shape, 0.0f); }
// Host data (contiguous, given dtype) → a new tensor on be.
Tensor from_host(Backend& be, DType dtype, const Shape& shape, const void* data);
// Tensor → host f32 values (any float dtype, any strides).
std::vector<float> to_host_f32(const Tensor& x);

// Concatenate along dim (same backend, dtype and other dims).
Tensor concat(const std::vector<Tensor>& xs, int dim);

}  // namespace wanrt::ops
