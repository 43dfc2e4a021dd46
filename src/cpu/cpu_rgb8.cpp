// rgb8_to_video / video_to_rgb8 (ops/rgb8.h) on the CPU: the host functions of video/video_writer.h
// themselves, a block of rows at a time on the pool, so the bytes are theirs by construction.
#include <algorithm>

#include "cpu/cpu_backend.h"
#include "ops/rgb8.h"
#include "video/video_writer.h"

namespace wanrt {

namespace {

// Rows of all frames, n·H of them, in blocks of ≈ 64k pixels; fn(frame, first row, rows) never
// crosses a frame.
template <class Fn>
void for_row_blocks(CpuBackend& be, int64_t n, int64_t H, int64_t W, const Fn& fn) {
    const int64_t grain = std::max<int64_t>(1, 65536 / W);
    be.pool().parallel_for(n * H, grain, [&](int64_t b, int64_t e) {
        while (b < e) {
            const int64_t f = b / H, y0 = b % H, rows = std::min(e - b, H - y0);
            fn(f, y0, rows);
            b += rows;
        }
    });
}

void rgb8_to_video_cpu(CpuBackend& be, const Rgb8ToVideoArgs& a) {
    const int64_t n = a.rgb.size(0), H = a.rgb.size(1), W = a.rgb.size(2);
    const size_t plane = size_t(H * W), channel_stride = size_t(n) * plane;  // video [3, n, H, W]
    const uint8_t* rgb = a.rgb.data<uint8_t>();
    float* video = a.video.data<float>();
    for_row_blocks(be, n, H, W, [&](int64_t f, int64_t y0, int64_t rows) {
        const size_t px = size_t(f) * plane + size_t(y0 * W);  // first pixel, [n, H, W] order
        rgb24_frame_to_planes(rgb + px * 3, rows, W, video + px, channel_stride);
    });
}

void video_to_rgb8_cpu(CpuBackend& be, const VideoToRgb8Args& a) {
    const int64_t n = a.video.size(1), H = a.video.size(2), W = a.video.size(3);
    const size_t plane = size_t(H * W), channel_stride = size_t(n) * plane;
    const float* video = a.video.data<float>();
    uint8_t* rgb = a.rgb.data<uint8_t>();
    for_row_blocks(be, n, H, W, [&](int64_t f, int64_t y0, int64_t rows) {
        const size_t px = size_t(f) * plane + size_t(y0 * W);
        planes_to_rgb24_frame(video + px, channel_stride, rows, W, rgb + px * 3);
    });
}

const RegisterKernel<Rgb8ToVideoArgs, CpuBackend> reg_in({{DType::U8, DType::F32}}, &rgb8_to_video_cpu);
const RegisterKernel<VideoToRgb8Args, CpuBackend> reg_out({{DType::F32, DType::U8}}, &video_to_rgb8_cpu);

}  // namespace

}  // namespace wanrt
