// Video files: the generated clip as the official wan/utils/utils.py::cache_video writes it, and a
// small reader for input clips (`wanrt stream --input in.mp4`).
//
// Pixel conversion (cache_video): a [3, F, H, W] float video in [-1, 1] is clamped to [-1, 1], mapped
// to (x + 1)/2, multiplied by 255 and converted to uint8 by truncation, all in float32 — so 1.0 → 255
// and 0.0 → 127. NaN becomes 0.
//
// Containers, chosen by the path's extension:
//   .mp4  H.264 through FFmpeg's libx264 encoder, yuv420p (BT.601 limited range, tagged), 16 fps by
//         default, crf 10 with x264's default preset: exactly what imageio's `quality=8` asks
//         ffmpeg for (crf = int((1 − 8/10)·51) = 10). Width and height must be even (yuv420p).
//   .y4m  raw YUV4MPEG2, 4:4:4 (no chroma loss), BT.601 limited range, written by us:
//         "YUV4MPEG2 W<w> H<h> F<fps>:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n", then per frame
//         "FRAME\n" and the Y, Cb, Cr planes (row-major bytes), each value (R, G, B in 0…255,
//         float64, rounded half away from zero)
//           Y  = 16  + 219·( 0.299·R    + 0.587·G    + 0.114·B   )/255
//           Cb = 128 + 224·(−0.168736·R − 0.331264·G + 0.5·B     )/255
//           Cr = 128 + 224·( 0.5·R      − 0.418688·G − 0.081312·B)/255
//   .png  one PNG (RGB24) per frame through FFmpeg's png encoder: a single frame goes to the path
//         itself; F > 1 frames go to <stem>_00000.png, <stem>_00001.png, … beside it.
// Every file is first written as <file>.tmp and renamed into place once complete, so a failure never
// leaves a partial file (PNG sets: all frames are renamed only after every frame was written).
//
// Errors ([video] one-line wanrt::Error): unknown extension, bad tensor shape/dtype, odd sizes for
// mp4, libx264 missing from the FFmpeg build, an unwritable path, any FFmpeg failure (with its text).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace wanrt {

// Frames in memory: [F, H, W, 3] uint8 RGB, row-major.
struct Rgb24Video {
    int64_t frames = 0, height = 0, width = 0;
    double fps = 16.0;
    std::vector<uint8_t> rgb;

    size_t frame_bytes() const { return size_t(height * width * 3); }
    const uint8_t* frame(int64_t i) const { return rgb.data() + size_t(i) * frame_bytes(); }
};

struct VideoWriteOptions {
    int fps = 16;                     // official sample_fps
    int crf = 10;                     // libx264 constant rate factor (imageio quality 8)
    std::string preset = "medium";    // x264's default, which imageio leaves alone
};

enum class VideoContainer { Mp4, Y4m, Png };
// By extension, case-insensitive: .mp4, .y4m, .png; anything else is an error naming the choices.
VideoContainer video_container_for(const std::string& path);

// cache_video's conversion. video: [3, F, H, W] f32 (any backend; strided views allowed).
Rgb24Video video_to_rgb24(const Tensor& video, double fps = 16.0);

// One frame of video_to_rgb24 / rgb24_to_video, so a caller can convert frames on its own threads with
// the same arithmetic: planes are channel c at planes[c·channel_stride + y·W + x] (f32, [−1, 1]); rgb is
// H × W × 3 bytes.
void planes_to_rgb24_frame(const float* planes, size_t channel_stride, int64_t height, int64_t width, uint8_t* rgb);
void rgb24_frame_to_planes(const uint8_t* rgb, int64_t height, int64_t width, float* planes, size_t channel_stride);

// Writes the video to path (container from the extension); returns the files written. Both go
// through a VideoWriter.
std::vector<std::string> write_video(const std::string& path, const Tensor& video,
                                     const VideoWriteOptions& opt = {});
std::vector<std::string> write_video(const std::string& path, const Rgb24Video& frames,
                                     const VideoWriteOptions& opt = {});

// Frame by frame, for videos of any length in constant memory (`wanrt stream`): the constructor checks
// everything write_video checks (extension, size, folder, fps, crf, libx264) and creates the
// temporary file; write() encodes one frame into it; finish() renames the file(s) into place and
// returns them. Until finish() nothing exists at the destination, and a writer destroyed without it
// (an error, an exception) removes its temporaries. PNG: a single frame goes to the path itself, so
// the first frame's encoded bytes wait in memory until a second one arrives (then <stem>_00000.png,
// <stem>_00001.png, … are written as frames come).
class VideoWriter {
public:
    VideoWriter(const std::string& path, int64_t width, int64_t height, const VideoWriteOptions& opt = {});
    ~VideoWriter();
    VideoWriter(const VideoWriter&) = delete;
    VideoWriter& operator=(const VideoWriter&) = delete;

    void write(const uint8_t* rgb);     // one frame: height × width × 3 bytes
    int64_t frames() const;             // written so far
    std::vector<std::string> finish();  // at least one frame must have been written

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Frame by frame, in constant memory: the constructor opens the file and reads up to its first frame
// (so width() and height() are known, and a file without frames fails here); next() decodes one frame
// after another. Which decoder, and every error, as read_video.
class VideoReader {
public:
    explicit VideoReader(const std::string& path);
    ~VideoReader();
    VideoReader(const VideoReader&) = delete;
    VideoReader& operator=(const VideoReader&) = delete;

    int64_t width() const;
    int64_t height() const;
    double fps() const;  // average frame rate, 0 if unknown
    // The frame count the file announces (a .y4m's from its size, a container's own count), 0 if it
    // says none; for progress only: decoding may find fewer or more.
    int64_t frames_hint() const;
    int64_t frames_read() const;
    // Writes the next frame's height × width × 3 bytes to rgb; false (rgb untouched) after the last.
    bool next(uint8_t* rgb);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Decodes every frame of a video (any format libavformat opens: mp4, y4m, png, …) to RGB24.
// fps is the stream's average frame rate (0 if unknown). Without FFmpeg (-DWANRT_FFMPEG=OFF) only
// .y4m is read, by read_y4m. max_frames > 0: decoding stops after that many frames, so the memory
// held is bounded by it (`wanrt stream --max_frames`), not by the file's length.
Rgb24Video read_video(const std::string& path, int64_t max_frames = 0);

// One picture for the image-conditioned tasks (`generate --image`): PNG, JPEG, WebP (any still image
// FFmpeg's decoders read), converted to RGB as PIL's Image.open(...).convert("RGB") does for the
// official generate.py: grayscale is expanded to RGB, an alpha channel is dropped (not blended),
// palette images are expanded. JPEG's YCbCr→RGB is swscale's (full range, BT.601), which can differ
// from PIL's libjpeg by a level or so. frames = 1. Errors ([image] one line): a missing, unreadable or
// corrupt file, a file of several frames (an animation or a video). A one-frame .y4m is read too,
// also by a build without FFmpeg (-DWANRT_FFMPEG=OFF), which refuses the other formats.
Rgb24Video read_image(const std::string& path);

// Our own YUV4MPEG2 reader (no FFmpeg): 8-bit C444, C420 (jpeg, mpeg2, paldv: chroma replicated
// 2×2, siting ignored), C422 and Cmono, BT.601, limited range unless XCOLORRANGE=FULL; the inverse
// of the writer's matrix, rounded. Errors name the file and what is unsupported (e.g. 10-bit), and a
// width or height that is not a plain number in 1..16384. max_frames as read_video.
Rgb24Video read_y4m(const std::string& path, int64_t max_frames = 0);

// [F, H, W, 3] uint8 → [3, F, H, W] f32 in [-1, 1] (x/255·2 − 1) on the given backend; the
// inverse of video_to_rgb24 up to its truncation.
Tensor rgb24_to_video(const Rgb24Video& frames, Backend& backend);

}  // namespace wanrt
