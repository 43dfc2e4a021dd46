// Video output (mp4 via libavcodec/libavformat + libx264, PNG via libavcodec, y4m by hand) and
// input (libavformat decode + swscale to RGB24). Contract in video_writer.h.
#include "video/video_writer.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>

#include <unistd.h>

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

// Writes the parts to a temporary file with every error checked (a full disk removes it and says so).
void write_file(TempOutput& tmp, const std::vector<std::pair<const void*, size_t>>& parts) {
    for (const auto& [p, n] : parts) tmp.write(p, n);
    tmp.close();
}

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

std::vector<std::string> write_y4m(const std::string& path, const Rgb24Video& v, int fps) {
    const std::string header = cat("YUV4MPEG2 W", v.width, " H", v.height, " F", fps,
                                   ":1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n");
    static const char kFrame[] = "FRAME\n";
    const size_t plane = size_t(v.width * v.height);
    std::vector<uint8_t> data;
    data.reserve(header.size() + size_t(v.frames) * (6 + 3 * plane));
    data.insert(data.end(), header.begin(), header.end());
    std::vector<uint8_t> yuv(3 * plane);
    for (int64_t f = 0; f < v.frames; ++f) {
        const uint8_t* rgb = v.frame(f);
        for (size_t i = 0; i < plane; ++i) {
            const double r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
            yuv[i] = clamp_u8(16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b) / 255);
            yuv[plane + i] = clamp_u8(128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255);
            yuv[2 * plane + i] = clamp_u8(128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b) / 255);
        }
        data.insert(data.end(), kFrame, kFrame + 6);
        data.insert(data.end(), yuv.begin(), yuv.end());
    }
    TmpFiles tmp;
    write_file(tmp.add(path), {{data.data(), data.size()}});
    return tmp.commit();
}

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

// An RGB24 frame wrapped as an AVFrame in the encoder's pixel format (converted with swscale where
// it differs).
void fill_frame(Sws& sws, const Rgb24Video& v, int64_t f, AVFrame* dst, const std::string& path) {
    int rc = av_frame_make_writable(dst);
    if (rc < 0) fail("video", "writing ", path, ": frame buffer: ", av_err(rc));
    const uint8_t* src[4] = {v.frame(f), nullptr, nullptr, nullptr};
    const int src_stride[4] = {int(v.width * 3), 0, 0, 0};
    if (dst->format == AV_PIX_FMT_RGB24) {
        av_image_copy(dst->data, dst->linesize, src, src_stride, AV_PIX_FMT_RGB24, int(v.width), int(v.height));
        return;
    }
    if (!sws.p) {
        // Bicubic is the ffmpeg command line's default (what imageio's ffmpeg run uses); with equal
        // sizes it only shapes the chroma downsampling.
        sws.p = sws_getContext(int(v.width), int(v.height), AV_PIX_FMT_RGB24, int(v.width), int(v.height),
                               AVPixelFormat(dst->format), SWS_BICUBIC, nullptr, nullptr, nullptr);
        if (!sws.p) fail("video", "writing ", path, ": swscale cannot convert RGB24 to the encoder format");
    }
    sws_scale(sws.p, src, src_stride, 0, int(v.height), dst->data, dst->linesize);
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

std::vector<std::string> write_mp4(const std::string& path, const Rgb24Video& v, const VideoWriteOptions& opt) {
    WANRT_CHECK(v.width % 2 == 0 && v.height % 2 == 0, "video",
                "mp4 (H.264 yuv420p) needs an even width and height, got ",
                v.width, "x", v.height, " for ", path, "; write .y4m or .png instead");
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    WANRT_CHECK(codec != nullptr, "video", "this FFmpeg build has no libx264 encoder, needed for ", path,
                "; install Debian's libavcodec with x264 support or write .y4m/.png instead");
    TmpFiles tmp;
    const std::string tmp_path = tmp.add(path).path();  // created empty by us; FFmpeg reopens it by name

    OutputCtx oc;
    int rc = avformat_alloc_output_context2(&oc.p, nullptr, "mp4", tmp_path.c_str());
    if (rc < 0 || !oc.p) fail("video", "cannot set up the mp4 muxer for ", path, ": ", av_err(rc));
    AVStream* st = avformat_new_stream(oc.p, nullptr);
    if (!st) fail("video", "cannot add a video stream to ", path);

    CodecCtx cc;
    cc.p = avcodec_alloc_context3(codec);
    if (!cc.p) fail("video", "out of memory setting up libx264 for ", path);
    cc.p->width = int(v.width);
    cc.p->height = int(v.height);
    cc.p->pix_fmt = AV_PIX_FMT_YUV420P;
    cc.p->time_base = AVRational{1, opt.fps};
    cc.p->framerate = AVRational{opt.fps, 1};
    // swscale's RGB→YUV default is BT.601 limited range; say so, so players do not guess BT.709.
    cc.p->color_range = AVCOL_RANGE_MPEG;
    cc.p->colorspace = AVCOL_SPC_SMPTE170M;
    if (oc.p->oformat->flags & AVFMT_GLOBALHEADER) cc.p->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* codec_opts = nullptr;
    av_dict_set(&codec_opts, "crf", std::to_string(opt.crf).c_str(), 0);
    av_dict_set(&codec_opts, "preset", opt.preset.c_str(), 0);
    rc = avcodec_open2(cc.p, codec, &codec_opts);
    av_dict_free(&codec_opts);
    if (rc < 0) fail("video", "cannot open libx264 for ", path, " (", v.width, "x", v.height, "): ", av_err(rc));
    rc = avcodec_parameters_from_context(st->codecpar, cc.p);
    if (rc < 0) fail("video", "cannot set stream parameters for ", path, ": ", av_err(rc));
    st->time_base = cc.p->time_base;
    st->avg_frame_rate = cc.p->framerate;

    rc = avio_open(&oc.p->pb, tmp_path.c_str(), AVIO_FLAG_WRITE);
    if (rc < 0)
        fail("video", "cannot write ", path, ": ", av_err(rc), "; check that the folder exists and is writable");
    rc = avformat_write_header(oc.p, nullptr);
    if (rc < 0) fail("video", "cannot write the mp4 header of ", path, ": ", av_err(rc));

    Frame frame;
    frame.p->format = cc.p->pix_fmt;
    frame.p->width = cc.p->width;
    frame.p->height = cc.p->height;
    rc = av_frame_get_buffer(frame.p, 0);
    if (rc < 0) fail("video", "writing ", path, ": frame buffer: ", av_err(rc));
    Packet pkt;
    Sws sws;
    auto mux = [&](AVPacket* p) {
        av_packet_rescale_ts(p, cc.p->time_base, st->time_base);
        p->stream_index = st->index;
        int r = av_interleaved_write_frame(oc.p, p);
        if (r < 0) fail("video", "writing ", path, " failed: ", av_err(r));
    };
    for (int64_t f = 0; f < v.frames; ++f) {
        fill_frame(sws, v, f, frame.p, path);
        frame.p->pts = f;
        encode(cc.p, frame.p, pkt.p, path, mux);
    }
    encode(cc.p, nullptr, pkt.p, path, mux);
    rc = av_write_trailer(oc.p);
    if (rc < 0) fail("video", "cannot finish ", path, ": ", av_err(rc));
    rc = avio_closep(&oc.p->pb);
    if (rc < 0) fail("video", "cannot close ", path, ": ", av_err(rc), "; is the disk full?");
    return tmp.commit();
}

// ---------------------------------------------------------------- PNG frames

std::vector<std::string> write_png(const std::string& path, const Rgb24Video& v) {
    const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    WANRT_CHECK(codec != nullptr, "video", "this FFmpeg build has no PNG encoder, needed for ", path,
                "; write .y4m instead");
    std::vector<std::string> names;
    if (v.frames == 1) {
        names.push_back(path);
    } else {
        const fs::path p(path);
        const std::string stem = (p.parent_path() / p.stem()).string();
        for (int64_t f = 0; f < v.frames; ++f) {
            char num[32];
            std::snprintf(num, sizeof(num), "_%05lld.png", static_cast<long long>(f));
            names.push_back(stem + num);
        }
    }
    CodecCtx cc;
    cc.p = avcodec_alloc_context3(codec);
    if (!cc.p) fail("video", "out of memory setting up the PNG encoder for ", path);
    cc.p->width = int(v.width);
    cc.p->height = int(v.height);
    cc.p->pix_fmt = AV_PIX_FMT_RGB24;
    cc.p->time_base = AVRational{1, 1};
    int rc = avcodec_open2(cc.p, codec, nullptr);
    if (rc < 0) fail("video", "cannot open the PNG encoder for ", path, ": ", av_err(rc));

    Frame frame;
    frame.p->format = AV_PIX_FMT_RGB24;
    frame.p->width = int(v.width);
    frame.p->height = int(v.height);
    rc = av_frame_get_buffer(frame.p, 0);
    if (rc < 0) fail("video", "writing ", path, ": frame buffer: ", av_err(rc));
    Packet pkt;
    Sws sws;
    TmpFiles tmp;
    for (int64_t f = 0; f < v.frames; ++f) {
        const std::string& name = names[size_t(f)];
        TempOutput& tmp_file = tmp.add(name);
        fill_frame(sws, v, f, frame.p, name);
        frame.p->pts = f;
        std::vector<uint8_t> bytes;
        encode(cc.p, frame.p, pkt.p, name,
               [&](AVPacket* p) { bytes.insert(bytes.end(), p->data, p->data + p->size); });
        WANRT_CHECK(!bytes.empty(), "video", "the PNG encoder returned no data for ", name);
        write_file(tmp_file, {{bytes.data(), bytes.size()}});
    }
    return tmp.commit();
}

#else
std::vector<std::string> write_mp4(const std::string& path, const Rgb24Video&, const VideoWriteOptions&) {
    no_ffmpeg(path);
}
std::vector<std::string> write_png(const std::string& path, const Rgb24Video&) { no_ffmpeg(path); }
#endif  // WANRT_HAVE_FFMPEG

}  // namespace

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
    quiet_ffmpeg();
    const VideoContainer kind = video_container_for(path);
    check_frames(frames, path.c_str());
    check_destination(path);
    WANRT_CHECK(opt.fps >= 1 && opt.fps <= 1000, "video", "frame rate ", opt.fps, " for ", path,
                " must be between 1 and 1000");
    WANRT_CHECK(opt.crf >= 0 && opt.crf <= 51, "video", "crf ", opt.crf, " must be in 0..51");
    switch (kind) {
    case VideoContainer::Mp4: return write_mp4(path, frames, opt);
    case VideoContainer::Y4m: return write_y4m(path, frames, opt.fps);
    case VideoContainer::Png: return write_png(path, frames);
    }
    WANRT_ASSERT(false);
    return {};
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
};

Y4mHeader parse_y4m_header(const std::string& header, const std::string& path) {
    if (header.rfind("YUV4MPEG2", 0) != 0) fail("video", path, " is not a YUV4MPEG2 file (no 'YUV4MPEG2' signature)");
    Y4mHeader h;
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
}  // namespace

Rgb24Video read_y4m(const std::string& path, int64_t max_frames) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail("video", "cannot read video ", path, ": ", std::strerror(errno), "; check the --input path");
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> guard(f, std::fclose);
    auto line = [&](const char* what) { return read_header_line(f, path, what); };
    const Y4mHeader hd = parse_y4m_header(line("header"), path);
    Rgb24Video v;
    v.fps = hd.fps;
    v.width = hd.width;
    v.height = hd.height;
    const std::string chroma = hd.chroma;
    const bool full = hd.full;
    int sx = 2, sy = 2;  // chroma subsampling
    if (chroma == "444") sx = sy = 1;
    else if (chroma == "422") sx = 2, sy = 1;
    else if (chroma == "mono") sx = sy = 0;
    else if (chroma != "420jpeg" && chroma != "420mpeg2" && chroma != "420paldv" && chroma != "420")
        fail("video", path, ": YUV4MPEG2 colour space C", chroma, " is not supported; use 8-bit 444, 422, 420 or mono");
    const int64_t W = v.width, H = v.height, cw = sx ? (W + sx - 1) / sx : 0, ch = sy ? (H + sy - 1) / sy : 0;
    const size_t frame_bytes = size_t(W * H + 2 * cw * ch);
    std::vector<uint8_t> buf(frame_bytes);
    // BT.601: the writer's matrix inverted (limited range: Y 16…235, C 16…240).
    const double ky = full ? 1.0 : 255.0 / 219.0, kc = full ? 1.0 : 255.0 / 224.0, y0 = full ? 0 : 16;
    while (max_frames <= 0 || v.frames < max_frames) {
        const int c = std::fgetc(f);
        if (c == EOF) break;
        std::ungetc(c, f);
        if (line("frame header").rfind("FRAME", 0) != 0) fail("video", path, ": frame ", v.frames, " has no FRAME header");
        if (std::fread(buf.data(), 1, frame_bytes, f) != frame_bytes)
            fail("video", path, ": frame ", v.frames, " is truncated (", frame_bytes, " bytes expected)");
        const size_t base = v.rgb.size();
        v.rgb.resize(base + size_t(W * H * 3));
        for (int64_t yy = 0; yy < H; ++yy)
            for (int64_t xx = 0; xx < W; ++xx) {
                const double Y = (buf[size_t(yy * W + xx)] - y0) * ky;
                double cb = 0, cr = 0;
                if (sx) {
                    const size_t ci = size_t((yy / sy) * cw + xx / sx);
                    cb = (buf[size_t(W * H) + ci] - 128.0) * kc;
                    cr = (buf[size_t(W * H + cw * ch) + ci] - 128.0) * kc;
                }
                uint8_t* o = v.rgb.data() + base + size_t((yy * W + xx) * 3);
                o[0] = clamp_u8(Y + 1.402 * cr);
                o[1] = clamp_u8(Y - 0.344136 * cb - 0.714136 * cr);
                o[2] = clamp_u8(Y + 1.772 * cb);
            }
        ++v.frames;
    }
    if (v.frames == 0) fail("video", path, " holds no video frames");
    return v;
}

#ifdef WANRT_HAVE_FFMPEG

namespace {
struct InputCtx {
    AVFormatContext* p = nullptr;
    ~InputCtx() { avformat_close_input(&p); }
};
}  // namespace

Rgb24Video read_video(const std::string& path, int64_t max_frames) {
    quiet_ffmpeg();
    WANRT_CHECK(fs::is_regular_file(path), "video", "cannot read video ", path,
                ": no such file; check the --input path");
    if (lower_ext(path) == ".y4m") {  // a bad size gets its own message, not FFmpeg's errno
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) fail("video", "cannot read video ", path, ": ", std::strerror(errno), "; check the --input path");
        std::unique_ptr<std::FILE, int (*)(std::FILE*)> guard(f, std::fclose);
        parse_y4m_header(read_header_line(f, path, "header"), path);
    }
    InputCtx ic;
    int rc = avformat_open_input(&ic.p, path.c_str(), nullptr, nullptr);
    if (rc < 0) fail("video", "cannot open video ", path, ": ", av_err(rc));
    rc = avformat_find_stream_info(ic.p, nullptr);
    if (rc < 0) fail("video", "cannot read stream info of ", path, ": ", av_err(rc));
    const AVCodec* dec = nullptr;
    const int si = av_find_best_stream(ic.p, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
    if (si < 0 || !dec) fail("video", path, " has no decodable video stream: ", av_err(si));
    AVStream* st = ic.p->streams[si];

    CodecCtx cc;
    cc.p = avcodec_alloc_context3(dec);
    if (!cc.p) fail("video", "out of memory opening the decoder for ", path);
    rc = avcodec_parameters_to_context(cc.p, st->codecpar);
    if (rc < 0) fail("video", "cannot set up the decoder for ", path, ": ", av_err(rc));
    rc = avcodec_open2(cc.p, dec, nullptr);
    if (rc < 0) fail("video", "cannot open the ", dec->name, " decoder for ", path, ": ", av_err(rc));

    Rgb24Video out;
    AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    out.fps = fr.num && fr.den ? av_q2d(fr) : 0.0;
    Sws sws;
    int sws_w = 0, sws_h = 0, sws_fmt = -1;
    Frame frame;
    Packet pkt;

    auto take = [&](AVFrame* fr_) {
        if (max_frames > 0 && out.frames >= max_frames) return;  // past --max_frames: not kept
        if (out.frames == 0) {
            out.width = fr_->width;
            out.height = fr_->height;
        }
        WANRT_CHECK(fr_->width == out.width && fr_->height == out.height, "video", path,
                    " changes frame size mid-stream (", out.width, "x", out.height, " → ", fr_->width, "x",
                    fr_->height, "); re-encode it at one size");
        if (!sws.p || sws_w != fr_->width || sws_h != fr_->height || sws_fmt != fr_->format) {
            sws_freeContext(sws.p);
            sws.p = sws_getContext(fr_->width, fr_->height, AVPixelFormat(fr_->format), fr_->width, fr_->height,
                                   AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                                   nullptr, nullptr, nullptr);
            if (!sws.p) fail("video", "swscale cannot convert ", path, "'s pixel format to RGB24");
            // Honour the stream's matrix and range tags (untagged YUV is BT.601 limited).
            const int cs = fr_->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_ITU601;
            const int src_full = fr_->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
            int* inv_table;
            int* table;
            int src_range, dst_range, brightness, contrast, saturation;
            if (sws_getColorspaceDetails(sws.p, &inv_table, &src_range, &table, &dst_range, &brightness,
                                         &contrast, &saturation) >= 0) {
                sws_setColorspaceDetails(sws.p, sws_getCoefficients(cs), src_full || src_range, table,
                                         dst_range, brightness, contrast, saturation);
            }
            sws_w = fr_->width;
            sws_h = fr_->height;
            sws_fmt = fr_->format;
        }
        const size_t fb = size_t(out.width * out.height * 3);
        out.rgb.resize(out.rgb.size() + fb);
        uint8_t* dst[4] = {out.rgb.data() + out.rgb.size() - fb, nullptr, nullptr, nullptr};
        const int dst_stride[4] = {int(out.width * 3), 0, 0, 0};
        sws_scale(sws.p, fr_->data, fr_->linesize, 0, fr_->height, dst, dst_stride);
        ++out.frames;
    };
    auto drain = [&]() {
        while (true) {
            int r = avcodec_receive_frame(cc.p, frame.p);
            if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
            if (r < 0) fail("video", "decoding ", path, " failed: ", av_err(r));
            take(frame.p);
            av_frame_unref(frame.p);
        }
    };
    bool enough = false;  // max_frames decoded: stop reading (the memory stays bounded by it)
    while (!enough && (rc = av_read_frame(ic.p, pkt.p)) >= 0) {
        if (pkt.p->stream_index == si) {
            int r = avcodec_send_packet(cc.p, pkt.p);
            if (r == AVERROR(EAGAIN)) {  // decoder full: take its frames, then resend
                drain();
                r = avcodec_send_packet(cc.p, pkt.p);
            }
            if (r < 0) {
                av_packet_unref(pkt.p);
                fail("video", "decoding ", path, " failed: ", av_err(r));
            }
            drain();
        }
        av_packet_unref(pkt.p);
        enough = max_frames > 0 && out.frames >= max_frames;
    }
    if (!enough) {
        if (rc != AVERROR_EOF) fail("video", "reading ", path, " failed: ", av_err(rc));
        avcodec_send_packet(cc.p, nullptr);
        drain();
    }
    WANRT_CHECK(out.frames > 0, "video", path, " holds no video frames");
    return out;
}

#else
Rgb24Video read_video(const std::string& path, int64_t max_frames) {
    if (lower_ext(path) == ".y4m") return read_y4m(path, max_frames);
    no_ffmpeg(path);
}
#endif  // WANRT_HAVE_FFMPEG

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
