// Spatial tiling with diffusers' blend (see vae_tiled.h).
#include "models/vae_tiled.h"

#include <algorithm>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

VaeTiling VaeTiling::parse(const std::string& value) {
    if (value.empty() || value == "off" || value == "0") return {};
    auto number = [&](const std::string& s) -> int64_t {
        if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos)
            fail("vae", "--vae_tile ", value, ": expected off, N or N:S (tile and stride in pixels, e.g. 256:192)");
        return std::stoll(s);
    };
    const size_t colon = value.find(':');
    VaeTiling t;
    t.tile = number(value.substr(0, colon));
    if (colon != std::string::npos && (t.stride = number(value.substr(colon + 1))) == 0)
        fail("vae", "--vae_tile ", value, ": the stride must be positive (or leave it out for 3/4 of the tile)");
    t.validate(8);
    return t;
}

void VaeTiling::validate(int64_t f) const {
    if (!enabled()) return;
    const int64_t s = stride_px(f);
    if (tile < 2 * f || tile % f || s <= 0 || s % f || s > tile)
        fail("vae", "--vae_tile ", tile, ":", s, ": the tile must be a multiple of ", f, " and at least ", 2 * f,
             " pixels, the stride a multiple of ", f, " in (0, tile]; e.g. 256:192");
}

namespace {

// b's first `ext` rows (dim 2) or columns (dim 3) := a_edge's last ext · (1 − k/ext) + b · k/ext,
// in place: diffusers' blend_v / blend_h, the same f32 operations in the same order.
void blend(const Tensor& a_edge, const Tensor& b, int dim, Backend& be) {
    const int64_t ext = std::min(a_edge.size(dim), b.size(dim));
    if (ext <= 0) return;
    const int64_t na = a_edge.size(dim);
    Tensor a = a_edge.slice(dim, na - ext, na), bv = b.slice(dim, 0, ext);
    std::vector<float> wa(ext), wb(ext);
    for (int64_t k = 0; k < ext; ++k) {
        const double r = double(k) / double(ext);
        wa[k] = float(1.0 - r);
        wb[k] = float(r);
    }
    Shape ws{1, 1, 1, 1};
    ws[dim] = ext;
    Tensor ta = ops::from_host(be, DType::F32, ws, wa.data()), tb = ops::from_host(be, DType::F32, ws, wb.data());
    ops::copy(ops::add(ops::mul(a, ta), ops::mul(bv, tb)), bv);
}

// A private copy of a view (the tile it looks into is freed before the neighbour needs it).
Tensor keep(const Tensor& view, Backend& be) {
    Tensor t = be.empty(DType::F32, view.shape());
    ops::copy(view, t);
    return t;
}

}  // namespace

Tensor run_tiled(const Tensor& x, int64_t tile_in, int64_t stride_in, int64_t tile_out, int64_t stride_out,
                 int64_t out_h, int64_t out_w, const TileFn& fn) {
    WANRT_ASSERT(x.ndim() == 4 && tile_in > 0 && stride_in > 0 && tile_out >= stride_out && stride_out > 0);
    Backend& be = *x.backend();
    const int64_t H = x.size(2), W = x.size(3), e = tile_out - stride_out;
    const int64_t cols = (W + stride_in - 1) / stride_in;
    Tensor out;
    std::vector<Tensor> bottom(cols);  // per column: the blended last ≤ e rows of the tile above
    for (int64_t i = 0, r = 0; i < H; i += stride_in, ++r) {
        Tensor right;  // the blended last ≤ e columns of the tile to the left
        for (int64_t j = 0, c = 0; j < W; j += stride_in, ++c) {
            // [C, T, th_in, tw_in] → fn → [C', T', th, tw]
            Tensor tile = fn(x.slice(2, i, std::min(i + tile_in, H)).slice(3, j, std::min(j + tile_in, W)));
            WANRT_ASSERT(tile.ndim() == 4 && tile.dtype() == DType::F32);
            if (!out.defined()) out = be.empty(DType::F32, {tile.size(0), tile.size(1), out_h, out_w});
            if (r > 0) blend(bottom[c], tile, 2, be);
            if (c > 0) blend(right, tile, 3, be);
            const int64_t th = tile.size(2), tw = tile.size(3);
            bottom[c] = keep(tile.slice(2, th - std::min(e, th), th), be);
            right = keep(tile.slice(3, tw - std::min(e, tw), tw), be);
            // Each tile contributes its first stride_out rows and columns (clipped to the frame).
            const int64_t y0 = r * stride_out, x0 = c * stride_out;
            const int64_t oh = std::min({stride_out, th, out_h - y0}), ow = std::min({stride_out, tw, out_w - x0});
            if (oh > 0 && ow > 0)
                ops::copy(tile.slice(2, 0, oh).slice(3, 0, ow), out.slice(2, y0, y0 + oh).slice(3, x0, x0 + ow));
        }
    }
    return out;
}

Tensor tiled_decode(const Tensor& z, const VaeTiling& t, int64_t f, const TileFn& decode) {
    t.validate(f);
    const int64_t s = t.stride_px(f);
    return run_tiled(z, t.tile / f, s / f, t.tile, s, z.size(2) * f, z.size(3) * f, decode);
}

Tensor tiled_encode(const Tensor& video, const VaeTiling& t, int64_t f, const TileFn& encode) {
    t.validate(f);
    const int64_t s = t.stride_px(f);
    return run_tiled(video, t.tile, s, t.tile / f, s / f, video.size(2) / f, video.size(3) / f, encode);
}

}  // namespace wanrt
