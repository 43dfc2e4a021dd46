// Building blocks of the Wan VAE (`wan/modules/vae.py`), shared by the model (vae.cpp) and the
// block-level tests. Tensors are one sample, [C, T, H, W], f32 or — with half activations — the
// half conv weights' dtype (every block keeps its input's dtype; attention computes in f32 inside);
// weights are plain structs filled by the loader in vae.cpp.
//
// Feature cache (docs/wan21.md §3.4): each cached conv owns one slot of a VaeFeatCache, taken in call order
// (the reference's feat_cache list and feat_idx cursor); the cursor is reset at every chunk.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace wanrt {

class WeightLoader;

// One slot per cached conv, in call order (the reference's feat_cache / feat_idx).
struct VaeFeatCache {
    struct Slot {
        bool set = false;
        bool rep = false;  // upsample3d's 'Rep' marker: the first chunk skipped the time conv
        Tensor frames;     // last input frames [C, ≤ 2, H, W] (contiguous copy)
    };
    std::vector<Slot> slots;
    size_t idx = 0;
    Slot& next() {
        if (idx == slots.size()) slots.emplace_back();
        return slots[idx++];
    }
};

namespace vae {

inline constexpr int64_t kCacheT = 2;  // CACHE_T: frames each causal conv remembers

// CausalConv3d: weight [O, C, kt, kh, kw]; padding (pt, ph, pw) applied as T: 2·pt front | 0 back,
// H and W symmetric.
struct CausalConv {
    Tensor w, b;
    int pt = 0, ph = 0, pw = 0;
    int st = 1;
};

// Conv2d applied per frame, stored as a [O, C, 1, kh, kw] conv3d weight.
struct FrameConv {
    Tensor w, b;
};

struct ResBlock {
    Tensor gamma0, gamma1;  // [in], [out]
    CausalConv conv0, conv1;
    bool has_shortcut = false;
    CausalConv shortcut;  // 1×1×1
};

struct AttnBlock {
    Tensor gamma;  // [C]
    FrameConv to_qkv, proj;
    int64_t dim = 0;
};

enum class ResampleMode { Up2d, Up3d, Down2d, Down3d };

struct Resample {
    ResampleMode mode;
    FrameConv conv;        // resample.1
    CausalConv time_conv;  // 3d modes only
};

// Fetches each weight by official name and stored shape through the WeightLoader, or (without one)
// only records the names and shapes: the manifest for synthetic weights. Shared by the Wan2.1
// (vae.cpp) and Wan2.2 (vae22.cpp) models, whose blocks are named alike.
class Loader {
public:
    explicit Loader(WeightLoader* wl, DType conv_dtype = DType::F32) : wl_(wl), conv_dtype_(conv_dtype) {}
    std::vector<std::pair<std::string, Shape>> manifest;

    // Conv weights in the conv precision (VaeConfig::conv_dtype).
    Tensor conv_weight(const std::string& name, const Shape& stored, const Shape& use);
    Tensor get(const std::string& name, const Shape& stored, const Shape& use);
    CausalConv causal(const std::string& n, int64_t in, int64_t out, int kt, int kh, int kw, int pt, int ph, int pw,
                      int st = 1);
    FrameConv frame(const std::string& n, int64_t in, int64_t out, int k);
    Tensor gamma(const std::string& n, int64_t dim, bool images);
    ResBlock res(const std::string& n, int64_t in, int64_t out);
    AttnBlock attn(const std::string& n, int64_t dim);
    // halve_up: the up-resample conv halves the width (Wan2.1); Wan2.2 keeps it.
    Resample resample(const std::string& n, int64_t dim, ResampleMode mode, bool halve_up = true);

private:
    WeightLoader* wl_;
    DType conv_dtype_;
};

// The dtype of the activations between the first conv and the last: the conv dtype when the convs
// run in half and half_activations is on (norms, adds, caches then move 2-byte elements, as TAEHV's
// do), else f32.
inline DType activation_dtype(DType conv_dtype, bool half_activations) {
    return half_activations ? conv_dtype : DType::F32;
}
// x in dtype dt: x itself when it already is (the f32 path gains no copy), else a converted copy.
Tensor as_dtype(const Tensor& x, DType dt);

// Runs fn on x one frame at a time, the cache cursor restarted for each, and joins the results in
// time. Exact: the layers it wraps are causal convs with per-frame caches or per-frame (spatial)
// ops, so frame t sees the same inputs as inside the whole chunk; what changes is that their
// full-resolution activations exist for one frame instead of four (the VAE's memory peak).
Tensor per_frame(const Tensor& x, VaeFeatCache& fc, const std::function<Tensor(const Tensor&)>& fn);
// The same with the frame's index t passed to fn as well.
Tensor per_frame_at(const Tensor& x, VaeFeatCache& fc, const std::function<Tensor(const Tensor&, int64_t)>& fn);

// Last n frames of x [C, T, H, W] as a contiguous tensor.
Tensor last_frames(const Tensor& x, int64_t n);
// CausalConv3d.forward(x, cache): cache frames [C, Tc, H, W] are prepended and reduce the front zero
// padding 2·pt by Tc. x [C, T, H, W] → [O, T', H', W'].
Tensor causal_conv(const CausalConv& c, const Tensor& x, const Tensor* cache);
// A 3×3×3 conv of the cached loop: runs with its slot's frames and stores the last 2 input frames.
Tensor cached_conv(const CausalConv& c, const Tensor& x, VaeFeatCache& fc);
// Conv2d per frame: zero pad pad0 (top/left) and pad1 (bottom/right), spatial stride.
Tensor frame_conv(const FrameConv& c, const Tensor& x, int pad0, int pad1, int stride);
inline Tensor pointwise(const CausalConv& c, const Tensor& x) {
    return causal_conv(c, x, nullptr);
}

// ResidualBlock: [C_in, T, H, W] → [C_out, T, H, W] (2 cache slots).
Tensor res_forward(const ResBlock& r, const Tensor& x, VaeFeatCache& fc);
// AttentionBlock: per frame, single-head attention over the H·W positions; shape kept.
Tensor attn_forward(const AttnBlock& a, const Tensor& x);
// Resample: up2d [C, T, H, W] → [C/2, T, 2H, 2W]; up3d → [C/2, T or 2T, 2H, 2W] (first chunk of a
// clip: T; 1 slot); down2d → [C, T, H/2, W/2]; down3d → [C, T (first chunk) or (T+1−3)/2+1, H/2,
// W/2] (1 slot). The up widths are the conv's: C/2 in Wan2.1, C in Wan2.2.
Tensor resample_forward(const Resample& r, Tensor x, VaeFeatCache& fc);
// The two halves of an up resample, resample_forward = upsample_space(upsample_time(x)): Up3d's
// time conv [C, T, H, W] → [C, T or 2T, H, W] (1 slot; x unchanged for Up2d), then the nearest 2×
// upsample and 3×3 conv, frame by frame with no cache → [C', T, 2H, 2W] (so it can run per frame).
Tensor upsample_time(const Resample& r, Tensor x, VaeFeatCache& fc);
Tensor upsample_space(const Resample& r, const Tensor& x);

}  // namespace vae
}  // namespace wanrt
