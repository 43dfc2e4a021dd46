// Spatial tiling of a video autoencoder (diffusers' AutoencoderKLWan.tiled_encode / tiled_decode):
// the frame is cut into overlapping square tiles, each tile goes through the whole model on its
// own (all frames, the temporal chunking unchanged), and neighbouring tiles are blended linearly
// over their overlap. Memory then follows the tile size instead of the frame size, which is what
// makes 720p and larger decodes fit. The result is NOT the untiled one: every tile sees zero
// padding at its edges and the mid-block attention sees only its tile; docs/perf.md reports the
// difference. Off by default (exact); `--vae_tile` turns it on.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/tensor.h"

namespace wanrt {

struct VaeTiling {
    int64_t tile = 0;    // tile edge in pixels; 0 = no tiling
    int64_t stride = 0;  // pixels between tile starts (tile − overlap); 0 = 3/4 of the tile

    // "off", "N" or "N:S" (pixels; multiples of 8 with 0 < S ≤ N) → VaeTiling, or
    // wanrt::Error "[vae] --vae_tile ..." saying what is allowed.
    static VaeTiling parse(const std::string& value);
    bool enabled() const { return tile > 0; }
    // The default stride is 3/4 of the tile rounded down to the VAE's spatial factor f (8 for the
    // Wan2.1 VAE, 16 for the Wan2.2 one), so that it is a whole number of latent pixels.
    int64_t stride_px(int64_t f = 8) const { return stride > 0 ? stride : tile / 4 * 3 / f * f; }
    // Tile and stride must be multiples of `spatial_factor` (8 for the Wan2.1 VAE, 16 for Wan2.2).
    void validate(int64_t spatial_factor) const;
    // Whether a frame of H × W pixels needs more than one tile.
    bool applies(int64_t H, int64_t W) const { return enabled() && (H > tile || W > tile); }
};

// x [C, T, H, W] (f32) cut into tiles of tile_in × tile_in starting every stride_in; fn maps a
// tile [C, T, h, w] to [C', T', h·s, w·s] with s = tile_out / tile_in (8, or 1/8 for an encoder);
// the results are blended over tile_out − stride_out rows/columns exactly as diffusers' blend_v /
// blend_h do (in raster order, each tile blended with its already-blended upper and left
// neighbours) and cropped to out_h × out_w. Only one row of tile edges is kept besides the output.
using TileFn = std::function<Tensor(const Tensor&)>;
Tensor run_tiled(const Tensor& x, int64_t tile_in, int64_t stride_in, int64_t tile_out, int64_t stride_out,
                 int64_t out_h, int64_t out_w, const TileFn& fn);

// The autoencoder directions in pixel units: z [C, T, h, w] → decode per tile → [C', T', h·f, w·f],
// video [C, T, H, W] → encode per tile → [C', T', H/f, W/f], f = spatial_factor.
Tensor tiled_decode(const Tensor& z, const VaeTiling& t, int64_t spatial_factor, const TileFn& decode);
Tensor tiled_encode(const Tensor& video, const VaeTiling& t, int64_t spatial_factor, const TileFn& encode);

}  // namespace wanrt
