// rgb8_to_video / video_to_rgb8: a clip's RGB bytes ↔ the model's f32 video, on the tensors' backend.
// The live stream (server/engine.h, StreamSession) moves u8 frames between host and device, 4× fewer
// bytes than f32, and converts where the model runs (docs/perf.md, "Serve: u8 frames on the device").
//
// The arithmetic is the host functions' of video/video_writer.h, bit for bit, in f32, one rounding per
// step (every backend gives the same bytes, so a stream converted on the GPU matches one converted on
// the host):
//   rgb8_to_video  y = float(v) / 255 · 2 − 1                    (rgb24_frame_to_planes)
//   video_to_rgb8  x = NaN ? −1 : clamp(x, −1, 1); x = (x + 1) / 2; x = x · 255; y = u8(x), truncated
//                  (planes_to_rgb24_frame: cache_video's make_grid normalisation and .type(torch.uint8))
#pragma once

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

struct Rgb8ToVideoArgs {  // {U8, F32}; rgb u8 [n, H, W, 3] contiguous → video f32 [3, n, H, W] contiguous
    static constexpr const char* kName = "rgb8_to_video";
    Tensor rgb, video;
};
struct VideoToRgb8Args {  // {F32, U8}; video f32 [3, n, H, W] contiguous → rgb u8 [n, H, W, 3] contiguous
    static constexpr const char* kName = "video_to_rgb8";
    Tensor video, rgb;
};

namespace ops {

// rgb u8 [n, H, W, 3] (any strides), n, H, W ≥ 1 → a new f32 [3, n, H, W] in [−1, 1].
inline Tensor rgb8_to_video(const Tensor& rgb_in) {
    if (!rgb_in.defined()) fail("rgb8_to_video", "input tensor is undefined");
    if (rgb_in.dtype() != DType::U8 || rgb_in.ndim() != 4 || rgb_in.size(3) != 3)
        fail("rgb8_to_video", "expected RGB bytes u8 [n, H, W, 3], got ", rgb_in.describe());
    if (rgb_in.size(0) < 1 || rgb_in.size(1) < 1 || rgb_in.size(2) < 1)
        fail("rgb8_to_video", "empty frames ", rgb_in.describe(), "; pass at least one frame of at least 1x1");
    const Tensor rgb = contiguous(rgb_in);
    Tensor video = rgb.backend()->empty(DType::F32, {3, rgb.size(0), rgb.size(1), rgb.size(2)});
    dispatch(*rgb.backend(), Rgb8ToVideoArgs{rgb, video}, OpSig{DType::U8, DType::F32}, 3.0 * double(rgb.numel()));
    return video;
}

// video f32 [3, n, H, W] (any strides, any values: NaN → 0, ±inf clamped) → a new u8 [n, H, W, 3].
inline Tensor video_to_rgb8(const Tensor& video_in) {
    if (!video_in.defined()) fail("video_to_rgb8", "input tensor is undefined");
    if (video_in.dtype() != DType::F32 || video_in.ndim() != 4 || video_in.size(0) != 3)
        fail("video_to_rgb8", "expected an f32 video [3, n, H, W], got ", video_in.describe());
    if (video_in.size(1) < 1 || video_in.size(2) < 1 || video_in.size(3) < 1)
        fail("video_to_rgb8", "empty video ", video_in.describe(), "; pass at least one frame of at least 1x1");
    const Tensor video = contiguous(video_in);
    Tensor rgb = video.backend()->empty(DType::U8, {video.size(1), video.size(2), video.size(3), 3});
    dispatch(*video.backend(), VideoToRgb8Args{video, rgb}, OpSig{DType::F32, DType::U8}, 4.0 * double(video.numel()));
    return rgb;
}

}  // namespace ops
}  // namespace wanrt
