// Video output (mp4 via libavcodec/libavformat + libx264, PNG via libavcodec, y4m by hand) and
// input (libavformat decode + swscale to RGB24). Contract in video_writer.h.
#include "video/video_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/error.h"
#include "io/output_file.h"
#include "ops/ops.h"

#ifdef WANRT_HAVE_FFMPEG
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}
#endif

namespace fs = std::filesystem;

namespace wanrt {

namespace {

#ifdef WANRT_HAVE_FFMPEG
std::string av_err(int code) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(code, buf, sizeof(buf));
    return buf;
}

// FFmpeg's own logging would interleave x264's statistics with our progress output; errors reach
// the user through our exceptions instead.
void quiet_ffmpeg() {
    static std::once_flag once;
    std::call_once(once, [] { av_log_set_level(AV_LOG_FATAL); });
}
#else
void quiet_ffmpeg() {}
[[noreturn]] void no_ffmpeg(const std::string& path) {
    fail("video", "cannot handle ", path, ": this wanrt was built without FFmpeg (-DWANRT_FFMPEG=OFF); write a .y4m "
         "file instead or rebuild with FFmpeg");
}
#endif

std::string lower_ext(const std::string& path) {
    std::string e = fs::path(path).extension().string();
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return e;
}

void check_frames(const Rgb24Video& v, const char* what) {
    WANRT_CHECK(v.frames >= 1 && v.height >= 1 && v.width >= 1, "video", what, ": empty video (",
                v.frames, " frames of ", v.width, "x", v.height, ")");
    WANRT_CHECK(v.rgb.size() == size_t(v.frames) * v.frame_bytes(), "video", what, ": ", v.rgb.size(),
                " bytes for ", v.frames, " frames of ", v.width, "x", v.height, " RGB24");
}

// Temporary files beside their destinations (io/output_file.h: unique O_EXCL|O_NOFOLLOW names,
// removed on errors and on SIGINT/SIGTERM) renamed into place together by commit().
class TmpFiles {
public:
    TempOutput& add(const std::string& dst) {
        files_.push_back(std::make_unique<TempOutput>(dst, "video"));
        return *files_.back();
    }
    // Renames every file into place; if one rename fails, the files already renamed are removed
    // too (a PNG set is all or nothing) and the remaining temporaries are removed with this object.
    std::vector<std::string> commit() {
        for (auto& f : files_) f->close();  // every write error before the first rename
        std::vector<std::string> out;
        for (auto& f : files_) {
            try {
                f->commit();
            } catch (const Error&) {
                for (const auto& done : out) {
                    std::error_code ec;
                    fs::remove(done, ec);
                }
                throw;
            }
            out.push_back(f->destination());
        }
        files_.clear();
        return out;
    }

private:
    std::vector<std::unique_ptr<TempOutput>> files_;
};

// Fails before any encoding work when the destination cannot be written.
void check_destination(const std::string& path) {
    const fs::path p(path);
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    std::error_code ec;
    WANRT_CHECK(fs::is_directory(dir, ec), "video", "cannot write ", path, ": folder ", dir.string(),
                " does not exist; create it first or choose another --save_file");
    WANRT_CHECK(access(dir.c_str(), W_OK) == 0, "video", "cannot write ", path, ": folder ", dir.string(),
                " is not writable; choose another --save_file");
    WANRT_CHECK(!fs::is_directory(p, ec), "video", "cannot write ", path,
                ": it is a folder; give a file name such as ", (p / "out.mp4").string());
}

// ---------------------------------------------------------------- y4m (by hand)

uint8_t clamp_u8(double v) { return uint8_t(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

// One container's encoder behind VideoWriter.
struct VideoWriter::Impl {
    Impl(std::string path_, int64_t w, int64_t h) : path(std::move(path_)), width(w), height(h) {}
    virtual ~Impl() = default;
    virtual void write(const uint8_t* rgb) = 0;
    virtual std::vector<std::string> finish() = 0;
    std::string path;
    int64_t width, height, frames = 0;
};

namespace {

class Y4mWriter final : public VideoWriter::Impl {
public:
    Y4mWriter(const std::string& path, int64_t w, int64_t h, int fps)
        : Impl(path, w, h), tmp_(path, "video"), yuv_(6 + 3 * size_t(w * h)) {
        const std::string header = cat("YUV4MPEG2 W", w, " H", h, " F", fps, ":1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n");
        tmp_.write(header.data(), header.size());
        std::memcpy(yuv_.data(), "FRAME\n", 6);
    }
    void write(const uint8_t* rgb) override {
        const size_t plane = size_t(width * height);
        uint8_t* yuv = yuv_.data() + 6;
        for (size_t i = 0; i < plane; ++i) {
            const double r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
            yuv[i] = clamp_u8(16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b) / 255);
            yuv[plane + i] = clamp_u8(128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255);
            yuv[2 * plane + i] = clamp_u8(128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b) / 255);
        }
        tmp_.write(yuv_.data(), yuv_.size());
    }
    std::vector<std::string> finish() override {
        tmp_.commit();
        return {tmp_.destination()};
    }

private:
    TempOutput tmp_;
    std::vector<uint8_t> yuv_;  // "FRAME\n" and the Y, Cb, Cr planes of one frame
};

#ifdef WANRT_HAVE_FFMPEG
// ---------------------------------------------------------------- FFmpeg helpers

struct CodecCtx {
    AVCodecContext* p = nullptr;
    ~CodecCtx() { avcodec_free_context(&p); }
};
struct Frame {
    AVFrame* p = av_frame_alloc();
    ~Frame() { av_frame_free(&p); }
};
struct Packet {
    AVPacket* p = av_packet_alloc();
    ~Packet() { av_packet_free(&p); }
};
struct Sws {
    SwsContext* p = nullptr;
    ~Sws() { sws_freeContext(p); }
};

// A frame buffer in the encoder's format and size.
void alloc_frame(AVFrame* f, int format, int64_t w, int64_t h, const std::string& path) {
    f->format = format;
    f->width = int(w);
    f->height = int(h);
    const int rc = av_frame_get_buffer(f, 0);
    if (rc < 0) fail("video", "writing ", path, ": frame buffer: ", av_err(rc));
}

// An RGB24 frame copied into dst, in the encoder's pixel format (converted with swscale where it
// differs).
void fill_frame(Sws& sws, const uint8_t* rgb, AVFrame* dst, const std::string& path) {
    int rc = av_frame_make_writable(dst);
    if (rc < 0) fail("video", "writing ", path, ": frame buffer: ", av_err(rc));
    const uint8_t* src[4] = {rgb, nullptr, nullptr, nullptr};
    const int src_stride[4] = {dst->width * 3, 0, 0, 0};
    if (dst->format == AV_PIX_FMT_RGB24) {
        av_image_copy(dst->data, dst->linesize, src, src_stride, AV_PIX_FMT_RGB24, dst->width, dst->height);
        return;
    }
    if (!sws.p) {
        // Bicubic is the ffmpeg command line's default (what imageio's ffmpeg run uses); with equal
        // sizes it only shapes the chroma downsampling.
        sws.p = sws_getContext(dst->width, dst->height, AV_PIX_FMT_RGB24, dst->width, dst->height,
                               AVPixelFormat(dst->format), SWS_BICUBIC, nullptr, nullptr, nullptr);
        if (!sws.p) fail("video", "writing ", path, ": swscale cannot convert RGB24 to the encoder format");
    }
    sws_scale(sws.p, src, src_stride, 0, dst->height, dst->data, dst->linesize);
}

// Sends one frame (or the flush signal) and hands every packet that comes out to sink.
template <class Sink>
void encode(AVCodecContext* cc, AVFrame* frame, AVPacket* pkt, const std::string& path, Sink&& sink) {
    int rc = avcodec_send_frame(cc, frame);
    if (rc < 0) fail("video", "encoding ", path, " failed: ", av_err(rc));
    while (true) {
        rc = avcodec_receive_packet(cc, pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
        if (rc < 0) fail("video", "encoding ", path, " failed: ", av_err(rc));
        sink(pkt);
        av_packet_unref(pkt);
    }
}

// ---------------------------------------------------------------- mp4 (libx264)

struct OutputCtx {
    AVFormatContext* p = nullptr;
    ~OutputCtx() {
        if (p && p->pb) avio_closep(&p->pb);
        avformat_free_context(p);
    }
};

class Mp4Writer final : public VideoWriter::Impl {
public:
    Mp4Writer(const std::string& path, int64_t w, int64_t h, const VideoWriteOptions& opt) : Impl(path, w, h) {
        WANRT_CHECK(w % 2 == 0 && h % 2 == 0, "video", "mp4 (H.264 yuv420p) needs an even width and height, got ", w,
                    "x", h, " for ", path, "; write .y4m or .png instead");
        const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
        WANRT_CHECK(codec != nullptr, "video", "this FFmpeg build has no libx264 encoder, needed for ", path,
                    "; install Debian's libavcodec with x264 support or write .y4m/.png instead");
        tmp_ = std::make_unique<TempOutput>(path, "video");  // created empty by us; FFmpeg reopens it by name
        const std::string& tmp_path = tmp_->path();

        int rc = avformat_alloc_output_context2(&oc_.p, nullptr, "mp4", tmp_path.c_str());
        if (rc < 0 || !oc_.p) fail("video", "cannot set up the mp4 muxer for ", path, ": ", av_err(rc));
        st_ = avformat_new_stream(oc_.p, nullptr);
        if (!st_) fail("video", "cannot add a video stream to ", path);

        cc_.p = avcodec_alloc_context3(codec);
        if (!cc_.p) fail("video", "out of memory setting up libx264 for ", path);
        cc_.p->width = int(w);
        cc_.p->height = int(h);
        cc_.p->pix_fmt = AV_PIX_FMT_YUV420P;
        cc_.p->time_base = AVRational{1, opt.fps};
        cc_.p->framerate = AVRational{opt.fps, 1};
        // swscale's RGB→YUV default is BT.601 limited range; say so, so players do not guess BT.709.
        cc_.p->color_range = AVCOL_RANGE_MPEG;
        cc_.p->colorspace = AVCOL_SPC_SMPTE170M;
        if (oc_.p->oformat->flags & AVFMT_GLOBALHEADER) cc_.p->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
        AVDictionary* codec_opts = nullptr;
        av_dict_set(&codec_opts, "crf", std::to_string(opt.crf).c_str(), 0);
        av_dict_set(&codec_opts, "preset", opt.preset.c_str(), 0);
        rc = avcodec_open2(cc_.p, codec, &codec_opts);
        av_dict_free(&codec_opts);
        if (rc < 0) fail("video", "cannot open libx264 for ", path, " (", w, "x", h, "): ", av_err(rc));
        rc = avcodec_parameters_from_context(st_->codecpar, cc_.p);
        if (rc < 0) fail("video", "cannot set stream parameters for ", path, ": ", av_err(rc));
        st_->time_base = cc_.p->time_base;
        st_->avg_frame_rate = cc_.p->framerate;

        rc = avio_open(&oc_.p->pb, tmp_path.c_str(), AVIO_FLAG_WRITE);
        if (rc < 0)
            fail("video", "cannot write ", path, ": ", av_err(rc), "; check that the folder exists and is writable");
        rc = avformat_write_header(oc_.p, nullptr);
        if (rc < 0) fail("video", "cannot write the mp4 header of ", path, ": ", av_err(rc));
        alloc_frame(frame_.p, cc_.p->pix_fmt, w, h, path);
    }
    void write(const uint8_t* rgb) override {
        fill_frame(sws_, rgb, frame_.p, path);
        frame_.p->pts = frames;
        encode(cc_.p, frame_.p, pkt_.p, path, [&](AVPacket* p) { mux(p); });
    }
    std::vector<std::string> finish() override {
        encode(cc_.p, nullptr, pkt_.p, path, [&](AVPacket* p) { mux(p); });
        int rc = av_write_trailer(oc_.p);
        if (rc < 0) fail("video", "cannot finish ", path, ": ", av_err(rc));
        rc = avio_closep(&oc_.p->pb);
        if (rc < 0) fail("video", "cannot close ", path, ": ", av_err(rc), "; is the disk full?");
        tmp_->commit();
        return {tmp_->destination()};
    }

private:
    void mux(AVPacket* p) {
        av_packet_rescale_ts(p, cc_.p->time_base, st_->time_base);
        p->stream_index = st_->index;
        const int r = av_interleaved_write_frame(oc_.p, p);
        if (r < 0) fail("video", "writing ", path, " failed: ", av_err(r));
    }
    std::unique_ptr<TempOutput> tmp_;  // declared first: removed after FFmpeg has closed it
    OutputCtx oc_;
    AVStream* st_ = nullptr;
    CodecCtx cc_;
    Frame frame_;
    Packet pkt_;
    Sws sws_;
};

// ---------------------------------------------------------------- PNG frames

class PngWriter final : public VideoWriter::Impl {
public:
    PngWriter(const std::string& path, int64_t w, int64_t h) : Impl(path, w, h) {
        const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
        WANRT_CHECK(codec != nullptr, "video", "this FFmpeg build has no PNG encoder, needed for ", path,
                    "; write .y4m instead");
        cc_.p = avcodec_alloc_context3(codec);
        if (!cc_.p) fail("video", "out of memory setting up the PNG encoder for ", path);
        cc_.p->width = int(w);
        cc_.p->height = int(h);
        cc_.p->pix_fmt = AV_PIX_FMT_RGB24;
        cc_.p->time_base = AVRational{1, 1};
        const int rc = avcodec_open2(cc_.p, codec, nullptr);
        if (rc < 0) fail("video", "cannot open the PNG encoder for ", path, ": ", av_err(rc));
        alloc_frame(frame_.p, AV_PIX_FMT_RGB24, w, h, path);
    }
    void write(const uint8_t* rgb) override {
        fill_frame(sws_, rgb, frame_.p, path);
        frame_.p->pts = frames;
        std::vector<uint8_t> bytes;
        encode(cc_.p, frame_.p, pkt_.p, path,
               [&](AVPacket* p) { bytes.insert(bytes.end(), p->data, p->data + p->size); });
        WANRT_CHECK(!bytes.empty(), "video", "the PNG encoder returned no data for frame ", frames, " of ", path);
        if (frames == 0) {  // one frame goes to the path itself: wait for a second
            first_ = std::move(bytes);
            return;
        }
        if (frames == 1) put(numbered(0), first_);
        put(numbered(frames), bytes);
    }
    std::vector<std::string> finish() override {
        if (frames == 1) put(path, first_);
        return tmp_.commit();
    }

private:
    std::string numbered(int64_t f) const {
        const fs::path p(path);
        char num[32];
        std::snprintf(num, sizeof(num), "_%05lld.png", static_cast<long long>(f));
        return (p.parent_path() / p.stem()).string() + num;
    }
    void put(const std::string& name, const std::vector<uint8_t>& bytes) {
        TempOutput& f = tmp_.add(name);
        f.write(bytes.data(), bytes.size());
        f.close();
    }
    CodecCtx cc_;
    Frame frame_;
    Packet pkt_;
    Sws sws_;
    std::vector<uint8_t> first_;
    TmpFiles tmp_;
};

#endif  // WANRT_HAVE_FFMPEG

}  // namespace

VideoWriter::VideoWriter(const std::string& path, int64_t width, int64_t height, const VideoWriteOptions& opt) {
    quiet_ffmpeg();
    const VideoContainer kind = video_container_for(path);
    WANRT_CHECK(width >= 1 && height >= 1 && width <= 16384 && height <= 16384, "video", "cannot write ", path,
                ": frame size ", width, "x", height, " is outside 1..16384");
    check_destination(path);
    WANRT_CHECK(opt.fps >= 1 && opt.fps <= 1000, "video", "frame rate ", opt.fps, " for ", path,
                " must be between 1 and 1000");
    WANRT_CHECK(opt.crf >= 0 && opt.crf <= 51, "video", "crf ", opt.crf, " must be in 0..51");
    switch (kind) {
        case VideoContainer::Y4m:
            impl_ = std::make_unique<Y4mWriter>(path, width, height, opt.fps);
            break;
#ifdef WANRT_HAVE_FFMPEG
        case VideoContainer::Mp4:
            impl_ = std::make_unique<Mp4Writer>(path, width, height, opt);
            break;
        case VideoContainer::Png:
            impl_ = std::make_unique<PngWriter>(path, width, height);
            break;
#else
        default:
            no_ffmpeg(path);
#endif
    }
}

VideoWriter::~VideoWriter() = default;

void VideoWriter::write(const uint8_t* rgb) {
    WANRT_CHECK(impl_ != nullptr, "video", "write after finish()");
    impl_->write(rgb);
    ++impl_->frames;
}

int64_t VideoWriter::frames() const {
    return impl_ ? impl_->frames : 0;
}

std::vector<std::string> VideoWriter::finish() {
    WANRT_CHECK(impl_ != nullptr, "video", "finish() called twice");
    WANRT_CHECK(impl_->frames > 0, "video", "cannot write ", impl_->path, ": no frames were given");
    std::vector<std::string> files = impl_->finish();
    impl_.reset();
    return files;
}

// ---------------------------------------------------------------- public

VideoContainer video_container_for(const std::string& path) {
    const std::string e = lower_ext(path);
    if (e == ".y4m") return VideoContainer::Y4m;
#ifndef WANRT_HAVE_FFMPEG
    if (e == ".mp4" || e == ".png") no_ffmpeg(path);  // before any expensive work
#endif
    if (e == ".mp4") return VideoContainer::Mp4;
    if (e == ".png") return VideoContainer::Png;
    fail("video", "cannot tell the video format of '", path, "' from its extension '", e,
         "'; use .mp4 (H.264), .y4m (raw) or .png (frames)");
}

void planes_to_rgb24_frame(const float* planes, size_t channel_stride, int64_t height, int64_t width, uint8_t* rgb) {
    const size_t plane = size_t(height * width);
    for (size_t i = 0; i < plane; ++i)
        for (size_t ch = 0; ch < 3; ++ch) {
            float x = planes[ch * channel_stride + i];
            // clamp(-1, 1) → (x + 1)/2 → ×255 → uint8 by truncation, in float32 (torchvision's
            // make_grid normalisation and cache_video's .type(torch.uint8)).
            x = std::isnan(x) ? -1.0f : std::clamp(x, -1.0f, 1.0f);
            x = (x + 1.0f) / 2.0f;
            x = x * 255.0f;
            rgb[i * 3 + ch] = uint8_t(x);
        }
}

void rgb24_frame_to_planes(const uint8_t* rgb, int64_t height, int64_t width, float* planes, size_t channel_stride) {
    const size_t plane = size_t(height * width);
    for (size_t i = 0; i < plane; ++i)
        for (size_t ch = 0; ch < 3; ++ch) planes[ch * channel_stride + i] = float(rgb[i * 3 + ch]) / 255.0f * 2.0f - 1.0f;
}

Rgb24Video video_to_rgb24(const Tensor& video, double fps) {
    WANRT_CHECK(video.defined() && video.ndim() == 4 && video.size(0) == 3, "video",
                "expected a video [3, F, H, W], got ", video.defined() ? video.describe() : std::string("none"));
    WANRT_CHECK(video.dtype() == DType::F32, "video", "expected an f32 video, got ", video.describe());
    Tensor c = ops::contiguous(video);
    std::vector<float> host(size_t(c.numel()));
    c.backend()->download(c, host.data());
    c.backend()->synchronize();

    Rgb24Video out;
    out.frames = c.size(1);
    out.height = c.size(2);
    out.width = c.size(3);
    out.fps = fps;
    WANRT_CHECK(out.frames >= 1 && out.height >= 1 && out.width >= 1, "video", "empty video ", c.describe());
    const size_t plane = size_t(out.height * out.width), per_channel = size_t(out.frames) * plane;
    out.rgb.resize(3 * per_channel);
    for (size_t f = 0; f < size_t(out.frames); ++f)
        planes_to_rgb24_frame(host.data() + f * plane, per_channel, out.height, out.width, out.rgb.data() + f * plane * 3);
    return out;
}

std::vector<std::string> write_video(const std::string& path, const Rgb24Video& frames,
                                     const VideoWriteOptions& opt) {
    video_container_for(path);
    check_frames(frames, path.c_str());
    VideoWriter w(path, frames.width, frames.height, opt);
    for (int64_t f = 0; f < frames.frames; ++f) w.write(frames.frame(f));
    return w.finish();
}

std::vector<std::string> write_video(const std::string& path, const Tensor& video, const VideoWriteOptions& opt) {
    video_container_for(path);  // a bad extension fails before any conversion work
    return write_video(path, video_to_rgb24(video, opt.fps), opt);
}

// ---------------------------------------------------------------- reader

namespace {
// The stream header of a .y4m: "YUV4MPEG2 W<w> H<h> F<n>:<d> C<chroma> ...". Width and height must
// be plain decimal numbers in 1..16384 (FFmpeg's own demuxer reports a bad size as an unrelated
// errno such as "Device or resource busy", so .y4m headers are always checked here first).
struct Y4mHeader {
    int64_t width = 0, height = 0;
    double fps = 0;
    std::string chroma = "420jpeg";
    bool full = false;
    size_t bytes = 0;  // of the header line, '\n' included
};

Y4mHeader parse_y4m_header(const std::string& header, const std::string& path) {
    if (header.rfind("YUV4MPEG2", 0) != 0) fail("video", path, " is not a YUV4MPEG2 file (no 'YUV4MPEG2' signature)");
    Y4mHeader h;
    h.bytes = header.size() + 1;
    bool has_w = false, has_h = false;
    auto dim = [&](const std::string& tok, const char* what) -> int64_t {
        const std::string digits = tok.substr(1);
        const bool ok = !digits.empty() && digits.size() <= 5 &&
                        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
        const int64_t v = ok ? std::atoll(digits.c_str()) : 0;
        if (!ok || v < 1 || v > 16384)
            fail("video", path, ": YUV4MPEG2 ", what, " \"", tok.substr(0, 24), "\" is not a number in 1..16384; ",
                 "the file is corrupt: re-export it (e.g. ffmpeg -i in.mp4 -pix_fmt yuv444p out.y4m)");
        return v;
    };
    for (size_t p = 9; p < header.size();) {
        while (p < header.size() && header[p] == ' ') ++p;
        const size_t e = std::min(header.find(' ', p), header.size());
        const std::string tok = header.substr(p, e - p);
        p = e;
        if (tok.empty()) continue;
        if (tok[0] == 'W') h.width = dim(tok, "width"), has_w = true;
        if (tok[0] == 'H') h.height = dim(tok, "height"), has_h = true;
        if (tok[0] == 'C') h.chroma = tok.substr(1);
        if (tok[0] == 'F') {
            const double num = std::atof(tok.c_str() + 1);
            const size_t colon = tok.find(':');
            const double den = colon == std::string::npos ? 1 : std::atof(tok.c_str() + colon + 1);
            h.fps = den > 0 && std::isfinite(num / den) && num / den > 0 ? num / den : 0;
        }
        if (tok == "XCOLORRANGE=FULL") h.full = true;
    }
    if (!has_w || !has_h)
        fail("video", path, ": the YUV4MPEG2 header has no ", has_w ? "height (H)" : "width (W)",
             "; the file is corrupt: re-export it");
    return h;
}

std::string read_header_line(std::FILE* f, const std::string& path, const char* what) {
    std::string s;
    for (int c; (c = std::fgetc(f)) != '\n';) {
        if (c == EOF) fail("video", path, ": truncated YUV4MPEG2 ", what);
        s.push_back(char(c));
        if (s.size() > 4096) fail("video", path, ": YUV4MPEG2 ", what, " line longer than 4096 bytes");
    }
    return s;
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File open_input(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail("video", "cannot read video ", path, ": ", std::strerror(errno), "; check the --input path");
    return File(f, std::fclose);
}

// Chroma subsampling (sx, sy; 0 = none) of a YUV4MPEG2 colour space, or an error naming it.
std::pair<int, int> y4m_subsampling(const std::string& chroma, const std::string& path) {
    if (chroma == "444") return {1, 1};
    if (chroma == "422") return {2, 1};
    if (chroma == "mono") return {0, 0};
    if (chroma == "420jpeg" || chroma == "420mpeg2" || chroma == "420paldv" || chroma == "420") return {2, 2};
    fail("video", path, ": YUV4MPEG2 colour space C", chroma, " is not supported; use 8-bit 444, 422, 420 or mono");
}

size_t y4m_frame_bytes(const Y4mHeader& h, const std::string& path) {
    const auto [sx, sy] = y4m_subsampling(h.chroma, path);
    const int64_t cw = sx ? (h.width + sx - 1) / sx : 0, ch = sy ? (h.height + sy - 1) / sy : 0;
    return size_t(h.width * h.height + 2 * cw * ch);
}

// Frames a .y4m holds if every frame header is a bare "FRAME\n" (what writers emit).
int64_t y4m_frames_hint(const Y4mHeader& h, size_t frame_bytes, const std::string& path) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec || size < h.bytes) return 0;
    return int64_t((size - h.bytes) / (6 + frame_bytes));
}
}  // namespace

// One decoder behind VideoReader.
struct VideoReader::Impl {
    virtual ~Impl() = default;
    virtual bool next(uint8_t* rgb) = 0;  // counts the frame in `frames`
    int64_t width = 0, height = 0, frames_hint = 0, frames = 0;
    double fps = 0;
};

namespace {

// Our own YUV4MPEG2 reader (contract at read_y4m).
class Y4mReader final : public VideoReader::Impl {
public:
    explicit Y4mReader(const std::string& path) : path_(path), f_(open_input(path)) {
        const Y4mHeader hd = parse_y4m_header(read_header_line(f_.get(), path, "header"), path);
        fps = hd.fps;
        width = hd.width;
        height = hd.height;
        std::tie(sx_, sy_) = y4m_subsampling(hd.chroma, path);
        full_ = hd.full;
        buf_.resize(y4m_frame_bytes(hd, path));
        frames_hint = y4m_frames_hint(hd, buf_.size(), path);
        const int c = std::fgetc(f_.get());
        if (c == EOF) fail("video", path, " holds no video frames; the file is empty or cut short: re-export it");
        std::ungetc(c, f_.get());
    }
    bool next(uint8_t* rgb) override {
        const int c = std::fgetc(f_.get());
        if (c == EOF) return false;
        std::ungetc(c, f_.get());
        if (read_header_line(f_.get(), path_, "frame header").rfind("FRAME", 0) != 0)
            fail("video", path_, ": frame ", frames, " has no FRAME header");
        if (std::fread(buf_.data(), 1, buf_.size(), f_.get()) != buf_.size())
            fail("video", path_, ": frame ", frames, " is truncated (", buf_.size(), " bytes expected)");
        // BT.601: the writer's matrix inverted (limited range: Y 16…235, C 16…240).
        const double ky = full_ ? 1.0 : 255.0 / 219.0, kc = full_ ? 1.0 : 255.0 / 224.0, y0 = full_ ? 0 : 16;
        const int64_t W = width, H = height, cw = sx_ ? (W + sx_ - 1) / sx_ : 0, ch = sy_ ? (H + sy_ - 1) / sy_ : 0;
        for (int64_t yy = 0; yy < H; ++yy)
            for (int64_t xx = 0; xx < W; ++xx) {
                const double Y = (buf_[size_t(yy * W + xx)] - y0) * ky;
                double cb = 0, cr = 0;
                if (sx_) {
                    const size_t ci = size_t((yy / sy_) * cw + xx / sx_);
                    cb = (buf_[size_t(W * H) + ci] - 128.0) * kc;
                    cr = (buf_[size_t(W * H + cw * ch) + ci] - 128.0) * kc;
                }
                uint8_t* o = rgb + size_t((yy * W + xx) * 3);
                o[0] = clamp_u8(Y + 1.402 * cr);
                o[1] = clamp_u8(Y - 0.344136 * cb - 0.714136 * cr);
                o[2] = clamp_u8(Y + 1.772 * cb);
            }
        ++frames;
        return true;
    }

private:
    std::string path_;
    File f_;
    int sx_ = 2, sy_ = 2;
    bool full_ = false;
    std::vector<uint8_t> buf_;  // one frame's Y, Cb, Cr planes
};

#ifdef WANRT_HAVE_FFMPEG
struct InputCtx {
    AVFormatContext* p = nullptr;
    ~InputCtx() { avformat_close_input(&p); }
};

// libavformat + libavcodec, one packet at a time; swscale to RGB24 honouring the stream's tags.
class FfmpegReader final : public VideoReader::Impl {
public:
    explicit FfmpegReader(const std::string& path) : path_(path) {
        quiet_ffmpeg();
        WANRT_CHECK(fs::is_regular_file(path), "video", "cannot read video ", path,
                    ": no such file; check the --input path");
        if (lower_ext(path) == ".y4m") {  // a bad size gets its own message, not FFmpeg's errno
            File f = open_input(path);
            const Y4mHeader hd = parse_y4m_header(read_header_line(f.get(), path, "header"), path);
            frames_hint = y4m_frames_hint(hd, y4m_frame_bytes(hd, path), path);
        }
        int rc = avformat_open_input(&ic_.p, path.c_str(), nullptr, nullptr);
        if (rc < 0) fail("video", "cannot open video ", path, ": ", av_err(rc));
        rc = avformat_find_stream_info(ic_.p, nullptr);
        if (rc < 0) fail("video", "cannot read stream info of ", path, ": ", av_err(rc));
        const AVCodec* dec = nullptr;
        si_ = av_find_best_stream(ic_.p, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
        if (si_ < 0 || !dec) fail("video", path, " has no decodable video stream: ", av_err(si_));
        AVStream* st = ic_.p->streams[si_];
        if (frames_hint == 0 && st->nb_frames > 0) frames_hint = st->nb_frames;

        cc_.p = avcodec_alloc_context3(dec);
        if (!cc_.p) fail("video", "out of memory opening the decoder for ", path);
        rc = avcodec_parameters_to_context(cc_.p, st->codecpar);
        if (rc < 0) fail("video", "cannot set up the decoder for ", path, ": ", av_err(rc));
        rc = avcodec_open2(cc_.p, dec, nullptr);
        if (rc < 0) fail("video", "cannot open the ", dec->name, " decoder for ", path, ": ", av_err(rc));
        const AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
        fps = fr.num && fr.den ? av_q2d(fr) : 0.0;

        // The first frame gives the size; it waits in first_ for the first next().
        if (!decode()) fail("video", path, " holds no video frames; the file is empty or cut short: re-export it");
        width = frame_.p->width;
        height = frame_.p->height;
        first_.resize(size_t(width * height * 3));
        convert(first_.data());
    }
    bool next(uint8_t* rgb) override {
        if (!first_.empty()) {
            std::memcpy(rgb, first_.data(), first_.size());
            first_ = {};
            ++frames;
            return true;
        }
        if (!decode()) return false;
        WANRT_CHECK(frame_.p->width == width && frame_.p->height == height, "video", path_,
                    " changes frame size mid-stream (", width, "x", height, " → ", frame_.p->width, "x",
                    frame_.p->height, "); re-encode it at one size");
        convert(rgb);
        ++frames;
        return true;
    }

private:
    // The next decoded frame into frame_ (packets read as the decoder asks); false at the end.
    bool decode() {
        av_frame_unref(frame_.p);
        while (true) {
            int r = avcodec_receive_frame(cc_.p, frame_.p);
            if (r == 0) return true;
            if (r == AVERROR_EOF) return false;
            if (r != AVERROR(EAGAIN)) fail("video", "decoding ", path_, " failed: ", av_err(r));
            if (flushed_) return false;
            r = av_read_frame(ic_.p, pkt_.p);
            if (r == AVERROR_EOF) {  // no more packets: the decoder gives what it holds
                avcodec_send_packet(cc_.p, nullptr);
                flushed_ = true;
                continue;
            }
            if (r < 0) fail("video", "reading ", path_, " failed: ", av_err(r));
            if (pkt_.p->stream_index == si_) r = avcodec_send_packet(cc_.p, pkt_.p);  // the decoder is empty: no EAGAIN
            av_packet_unref(pkt_.p);
            if (r < 0) fail("video", "decoding ", path_, " failed: ", av_err(r));
        }
    }
    void convert(uint8_t* rgb) {
        AVFrame* f = frame_.p;
        if (!sws_.p || sws_fmt_ != f->format) {
            sws_freeContext(sws_.p);
            sws_.p =
                sws_getContext(f->width, f->height, AVPixelFormat(f->format), f->width, f->height, AV_PIX_FMT_RGB24,
                               SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
            if (!sws_.p) fail("video", "swscale cannot convert ", path_, "'s pixel format to RGB24");
            // Honour the stream's matrix and range tags (untagged YUV is BT.601 limited).
            const int cs = f->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_ITU601;
            const int src_full = f->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
            int* inv_table;
            int* table;
            int src_range, dst_range, brightness, contrast, saturation;
            if (sws_getColorspaceDetails(sws_.p, &inv_table, &src_range, &table, &dst_range, &brightness, &contrast,
                                         &saturation) >= 0) {
                sws_setColorspaceDetails(sws_.p, sws_getCoefficients(cs), src_full || src_range, table, dst_range,
                                         brightness, contrast, saturation);
            }
            sws_fmt_ = f->format;
        }
        uint8_t* dst[4] = {rgb, nullptr, nullptr, nullptr};
        const int dst_stride[4] = {int(width * 3), 0, 0, 0};
        sws_scale(sws_.p, f->data, f->linesize, 0, f->height, dst, dst_stride);
    }

    std::string path_;
    InputCtx ic_;
    CodecCtx cc_;
    Frame frame_;
    Packet pkt_;
    Sws sws_;
    int si_ = -1, sws_fmt_ = -1;
    bool flushed_ = false;
    std::vector<uint8_t> first_;
};
#endif  // WANRT_HAVE_FFMPEG

Rgb24Video read_all(VideoReader::Impl& r, int64_t max_frames) {
    Rgb24Video out;
    out.width = r.width;
    out.height = r.height;
    out.fps = r.fps;
    const size_t fb = out.frame_bytes();
    while (max_frames <= 0 || out.frames < max_frames) {  // stops at max_frames: bounded memory
        out.rgb.resize(out.rgb.size() + fb);
        if (!r.next(out.rgb.data() + out.rgb.size() - fb)) {
            out.rgb.resize(out.rgb.size() - fb);
            break;
        }
        ++out.frames;
    }
    return out;
}

std::unique_ptr<VideoReader::Impl> open_reader(const std::string& path) {
#ifdef WANRT_HAVE_FFMPEG
    return std::make_unique<FfmpegReader>(path);
#else
    if (lower_ext(path) == ".y4m") return std::make_unique<Y4mReader>(path);
    no_ffmpeg(path);
#endif
}

}  // namespace

VideoReader::VideoReader(const std::string& path) : impl_(open_reader(path)) {}
VideoReader::~VideoReader() = default;
int64_t VideoReader::width() const {
    return impl_->width;
}
int64_t VideoReader::height() const {
    return impl_->height;
}
double VideoReader::fps() const {
    return impl_->fps;
}
int64_t VideoReader::frames_hint() const {
    return impl_->frames_hint;
}
int64_t VideoReader::frames_read() const {
    return impl_->frames;
}

bool VideoReader::next(uint8_t* rgb) {
    return impl_->next(rgb);
}

Rgb24Video read_y4m(const std::string& path, int64_t max_frames) {
    Y4mReader r(path);
    return read_all(r, max_frames);
}

Rgb24Video read_video(const std::string& path, int64_t max_frames) {
    return read_all(*open_reader(path), max_frames);
}

Rgb24Video read_image(const std::string& path) {
    std::error_code ec;
    WANRT_CHECK(fs::exists(path, ec), "image", "cannot read image ", path, ": no such file; check the --image path");
    WANRT_CHECK(fs::is_regular_file(path, ec), "image", "cannot read image ", path,
                ": not a file; pass a PNG, JPEG or WebP picture as --image");
    {
        FILE* f = std::fopen(path.c_str(), "rb");
        WANRT_CHECK(f != nullptr, "image", "cannot read image ", path, ": ", std::strerror(errno),
                    "; check the file's permissions");
        std::fclose(f);
    }
#ifndef WANRT_HAVE_FFMPEG
    if (lower_ext(path) != ".y4m")
        fail("image", "cannot read image ", path, ": this wanrt was built without FFmpeg (-DWANRT_FFMPEG=OFF), which "
             "decodes PNG, JPEG and WebP; pass a one-frame .y4m or rebuild with -DWANRT_FFMPEG=ON");
#endif
    Rgb24Video v;
    try {
        v = read_video(path);
    } catch (const Error& e) {
        // read_video speaks of videos and --input; say what went wrong with the picture.
        std::string why = e.what();
        const size_t colon = why.find(": ");
        if (colon != std::string::npos && why.rfind("[video]", 0) == 0) why = why.substr(colon + 2);
        fail("image", "cannot decode image ", path, " (", why, "); pass a valid PNG, JPEG or WebP file");
    }
    WANRT_CHECK(v.frames == 1, "image", path, " holds ", v.frames,
                " frames (an animation or a video); pass a still PNG, JPEG or WebP picture");
    v.fps = 0;
    return v;
}

Tensor rgb24_to_video(const Rgb24Video& frames, Backend& backend) {
    check_frames(frames, "rgb24_to_video");
    const size_t plane = size_t(frames.height * frames.width), per_channel = size_t(frames.frames) * plane;
    std::vector<float> host(3 * per_channel);
    for (size_t f = 0; f < size_t(frames.frames); ++f)
        rgb24_frame_to_planes(frames.rgb.data() + f * plane * 3, frames.height, frames.width, host.data() + f * plane,
                              per_channel);
    Tensor t = backend.empty(DType::F32, {3, frames.frames, frames.height, frames.width});
    backend.upload(t, host.data());
    return t;
}

}  // namespace wanrt
