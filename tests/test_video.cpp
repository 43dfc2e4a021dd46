// Video output/input (src/video): cache_video's pixel conversion, mp4/y4m/png files checked with
// ffprobe and decoded back, determinism, and failures that leave no file behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "video/video_writer.h"

using namespace wanrt;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Backend> cpu() {
    static std::shared_ptr<Backend> be = make_cpu_backend(1);
    return be;
}

// A fresh folder per test, removed afterwards.
struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() /
               ("wanrt_test_video_" + std::to_string(getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// [3, F, H, W] in [-1, 1]: smooth periodic gradients that move right (R) and down (G) per frame,
// with one pixel outside [-1, 1] to exercise the clamp.
Tensor synthetic_clip(int64_t F, int64_t H, int64_t W) {
    std::vector<float> v(size_t(3 * F * H * W));
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t f = 0; f < F; ++f)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x = 0; x < W; ++x) {
                    const double kTwoPi = 6.283185307179586;
                    double u = double(x + f) / double(W), w = double(y + 2 * f) / double(H);
                    double val = c == 0   ? 0.9 * std::sin(kTwoPi * u)
                                 : c == 1 ? 0.9 * std::cos(kTwoPi * w)
                                          : 0.8 * std::sin(kTwoPi * (u + w) * 0.5 + 0.3 * double(f));
                    if (x == 0 && y == 0) val = c == 0 ? 1.7 : -1.4;  // out of range → clamped
                    v[size_t(((c * F + f) * H + y) * W + x)] = float(val);
                }
    Tensor t = cpu()->empty(DType::F32, {3, F, H, W});
    cpu()->upload(t, v.data());
    return t;
}

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

// "codec,width,height,r_frame_rate,pix_fmt,nb_read_frames" of the first video stream.
std::string probe(const std::string& path) {
    return run("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
               "stream=codec_name,width,height,r_frame_rate,pix_fmt,nb_read_frames -of csv=p=0 '" +
               path + "' 2>&1");
}

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

double psnr(const Rgb24Video& a, const Rgb24Video& b) {
    EXPECT_EQ(a.rgb.size(), b.rgb.size());
    double se = 0;
    for (size_t i = 0; i < std::min(a.rgb.size(), b.rgb.size()); ++i) {
        double d = double(a.rgb[i]) - double(b.rgb[i]);
        se += d * d;
    }
    double mse = se / double(a.rgb.size());
    return mse == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(255.0 * 255.0 / mse);
}

int max_diff(const Rgb24Video& a, const Rgb24Video& b) {
    int m = 0;
    for (size_t i = 0; i < std::min(a.rgb.size(), b.rgb.size()); ++i)
        m = std::max(m, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
    return m;
}

std::vector<std::string> leftovers(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    return names;
}

template <class Fn>
std::string error_of(Fn fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Video, ConversionIsCacheVideos) {
    // clamp → (x + 1)/2 → ×255 → truncate, in float32.
    const std::vector<float> in = {-1.0f, 1.0f, 0.0f, 0.5f, -0.5f, 2.0f, -3.0f, 0.999f, -0.999f,
                                   std::nanf(""), 0.00392f, 0.99216f};
    std::vector<float> vals;
    for (int c = 0; c < 3; ++c) vals.insert(vals.end(), in.begin(), in.end());
    Tensor t = cpu()->empty(DType::F32, {3, 1, 3, 4});
    cpu()->upload(t, vals.data());
    Rgb24Video v = video_to_rgb24(t);
    ASSERT_EQ(v.frames, 1);
    ASSERT_EQ(v.height, 3);
    ASSERT_EQ(v.width, 4);
    for (size_t i = 0; i < in.size(); ++i) {
        float x = std::isnan(in[i]) ? -1.0f : std::fmin(std::fmax(in[i], -1.0f), 1.0f);
        uint8_t expect = uint8_t(((x + 1.0f) / 2.0f) * 255.0f);
        EXPECT_EQ(v.rgb[3 * i], expect) << in[i];
    }
    EXPECT_EQ(v.rgb[0], 0);
    EXPECT_EQ(v.rgb[3], 255);
    EXPECT_EQ(v.rgb[6], 127);  // 127.5 truncates
    EXPECT_EQ(v.rgb[9], 191);  // 191.25

    // Channel/frame layout, and a non-contiguous view ([3, F, H, W] permuted from [F, 3, H, W]).
    std::vector<float> fchw(2 * 3 * 2 * 2);
    for (size_t i = 0; i < fchw.size(); ++i) fchw[i] = float(i) / float(fchw.size()) * 2.0f - 1.0f;
    Tensor src = cpu()->empty(DType::F32, {2, 3, 2, 2});
    cpu()->upload(src, fchw.data());
    Rgb24Video p = video_to_rgb24(src.permute({1, 0, 2, 3}));
    ASSERT_EQ(p.frames, 2);
    for (int f = 0; f < 2; ++f)
        for (int i = 0; i < 4; ++i)
            for (int c = 0; c < 3; ++c) {
                float x = fchw[size_t((f * 3 + c) * 4 + i)];
                EXPECT_EQ(p.rgb[size_t((f * 4 + i) * 3 + c)], uint8_t(((x + 1.0f) / 2.0f) * 255.0f));
            }
}

#ifdef WANRT_HAVE_FFMPEG
TEST(Video, Mp4ProbesAndDecodesBack) {
    TempDir dir;
    Tensor clip = synthetic_clip(17, 48, 64);
    const std::string path = dir / "clip.mp4";
    auto files = write_video(path, clip);
    ASSERT_EQ(files, std::vector<std::string>{path});
    EXPECT_EQ(probe(path), "h264,64,48,yuv420p,16/1,17");
    EXPECT_EQ(leftovers(dir.path), std::vector<std::string>{"clip.mp4"});

    Rgb24Video ref = video_to_rgb24(clip);
    Rgb24Video back = read_video(path);
    EXPECT_EQ(back.frames, 17);
    EXPECT_EQ(back.width, 64);
    EXPECT_EQ(back.height, 48);
    EXPECT_DOUBLE_EQ(back.fps, 16.0);
    double db = psnr(ref, back);
    std::printf("[video] mp4 64x48x17 crf 10: %zu bytes, PSNR %.2f dB after decode\n",
                size_t(fs::file_size(path)), db);
    EXPECT_GT(db, 30.0);

    // Another frame rate is honoured.
    VideoWriteOptions o;
    o.fps = 24;
    write_video(dir / "clip24.mp4", clip, o);
    EXPECT_EQ(probe(dir / "clip24.mp4"), "h264,64,48,yuv420p,24/1,17");
}

// The official cache_video hands RGB24 frames to imageio, which runs
//   ffmpeg -f rawvideo -vcodec rawvideo -s WxH -pix_fmt rgb24 -r 16 -i - -an -vcodec libx264
//          -pix_fmt yuv420p -crf 10 out.mp4
// Our mp4 must decode to exactly the same YUV frames as that command's file.
TEST(Video, Mp4MatchesImageioFfmpegCommand) {
    TempDir dir;
    Tensor clip = synthetic_clip(17, 48, 64);
    Rgb24Video rgb = video_to_rgb24(clip);
    {
        std::ofstream raw(dir.path / "frames.rgb", std::ios::binary);
        raw.write(reinterpret_cast<const char*>(rgb.rgb.data()), std::streamsize(rgb.rgb.size()));
    }
    write_video(dir / "ours.mp4", clip);
    const std::string cli = dir / "imageio.mp4";
    run("ffmpeg -v error -y -f rawvideo -vcodec rawvideo -s 64x48 -pix_fmt rgb24 -r 16 -i '" +
        (dir / "frames.rgb") + "' -an -vcodec libx264 -pix_fmt yuv420p -crf 10 '" + cli + "' 2>&1");
    ASSERT_TRUE(fs::exists(cli)) << "the ffmpeg command line tool is needed for this check";
    auto md5 = [](const std::string& f) {
        return run("ffmpeg -v error -i '" + f + "' -f rawvideo -pix_fmt yuv420p -f md5 - 2>&1");
    };
    const std::string ours = md5(dir / "ours.mp4"), theirs = md5(cli);
    EXPECT_NE(ours.find("MD5="), std::string::npos) << ours;
    EXPECT_EQ(ours, theirs);
}

#endif  // WANRT_HAVE_FFMPEG

TEST(Video, Y4mIsByteExact) {
    TempDir dir;
    Tensor clip = synthetic_clip(5, 6, 10);
    Rgb24Video rgb = video_to_rgb24(clip);
    const std::string path = dir / "clip.y4m";
    write_video(path, clip);
    const std::string bytes = slurp(path);

    // Independent rebuild of the documented layout and BT.601 limited-range 4:4:4 formula.
    std::string expect = "YUV4MPEG2 W10 H6 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n";
    auto q = [](double v) { return char(uint8_t(std::min(255.0, std::max(0.0, std::round(v))))); };
    for (int64_t f = 0; f < rgb.frames; ++f) {
        expect += "FRAME\n";
        const uint8_t* p = rgb.frame(f);
        std::string Y, U, V;
        for (int64_t i = 0; i < 60; ++i) {
            double r = p[3 * i], g = p[3 * i + 1], b = p[3 * i + 2];
            Y += q(16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b) / 255);
            U += q(128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255);
            V += q(128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b) / 255);
        }
        expect += Y + U + V;
    }
    ASSERT_EQ(bytes.size(), expect.size());
    EXPECT_TRUE(bytes == expect);
    EXPECT_EQ(probe(path), "rawvideo,10,6,yuv444p,16/1,5");
    Rgb24Video back = read_video(path);
    ASSERT_EQ(back.frames, 5);
    EXPECT_LE(max_diff(rgb, back), 2);
    // Our own reader (the only one without FFmpeg) gives the same frames back.
    Rgb24Video ours = read_y4m(path);
    ASSERT_EQ(ours.frames, 5);
    EXPECT_EQ(ours.width, 10);
    EXPECT_EQ(ours.height, 6);
    EXPECT_EQ(ours.fps, 16.0);
    EXPECT_LE(max_diff(rgb, ours), 2);
}

// read_y4m on 4:2:0 (the common camera/ffmpeg output): a flat frame of each primary decodes back,
// against FFmpeg's decode of the same bytes; malformed files are one-line errors.
TEST(Video, Y4mReader420AndErrors) {
    TempDir dir;
    const std::string path = dir / "c420.y4m";
    const int W = 6, H = 4;
    std::string bytes = "YUV4MPEG2 W6 H4 F25:1 Ip A1:1 C420jpeg\n";
    // BT.601 limited: red (81, 90, 240), green (145, 54, 34), blue (41, 240, 110)
    const int yuv[3][3] = {{81, 90, 240}, {145, 54, 34}, {41, 240, 110}};
    for (const auto& c : yuv) {
        bytes += "FRAME\n";
        bytes += std::string(size_t(W * H), char(c[0])) + std::string(size_t(W * H / 4), char(c[1])) +
                 std::string(size_t(W * H / 4), char(c[2]));
    }
    {
        std::ofstream o(path, std::ios::binary);
        o << bytes;
    }
    Rgb24Video v = read_y4m(path);
    ASSERT_EQ(v.frames, 3);
    EXPECT_EQ(v.fps, 25.0);
    const uint8_t want[3][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    for (int f = 0; f < 3; ++f)
        for (int i = 0; i < W * H; ++i)
            for (int k = 0; k < 3; ++k) EXPECT_NEAR(v.frame(f)[3 * i + k], want[f][k], 2) << "frame " << f;
    EXPECT_LE(max_diff(v, read_video(path)), 3);  // FFmpeg's decode (bicubic chroma) of the same file
    auto write = [&](const std::string& name, const std::string& content) {
        std::ofstream o(dir / name, std::ios::binary);
        o << content;
        return dir / name;
    };
    const std::string bad = error_of([&] { read_y4m(write("a.y4m", "NOTY4M W6 H4\n")); });
    EXPECT_NE(bad.find("[video]"), std::string::npos) << bad;
    EXPECT_EQ(bad.find('\n'), std::string::npos) << bad;
    EXPECT_NE(error_of([&] { read_y4m(write("b.y4m", "YUV4MPEG2 W6 H4 C420p10\nFRAME\n")); }).find("not supported"),
              std::string::npos);
    EXPECT_NE(error_of([&] { read_y4m(write("c.y4m", bytes.substr(0, bytes.size() - 5))); }).find("truncated"),
              std::string::npos);
    EXPECT_NE(error_of([&] { read_y4m(dir / "missing.y4m"); }).find("--input"), std::string::npos);
}

#ifdef WANRT_HAVE_FFMPEG
TEST(Video, PngFramesAreLossless) {
    TempDir dir;
    Tensor clip = synthetic_clip(3, 8, 12);
    Rgb24Video rgb = video_to_rgb24(clip);
    auto files = write_video(dir / "f.png", clip);
    ASSERT_EQ(files.size(), 3u);
    EXPECT_EQ(files[0], dir / "f_00000.png");
    EXPECT_EQ(files[2], dir / "f_00002.png");
    EXPECT_EQ(leftovers(dir.path).size(), 3u);
    for (int64_t f = 0; f < 3; ++f) {
        EXPECT_EQ(probe(files[size_t(f)]), "png,12,8,rgb24,25/1,1");
        Rgb24Video back = read_video(files[size_t(f)]);
        ASSERT_EQ(back.frames, 1);
        EXPECT_TRUE(std::equal(back.rgb.begin(), back.rgb.end(), rgb.frame(f))) << "frame " << f;
    }
    // One frame goes to the path itself (text-to-image).
    auto one = write_video(dir / "still.PNG", clip.slice(1, 1, 2));
    ASSERT_EQ(one, std::vector<std::string>{dir / "still.PNG"});
    EXPECT_EQ(read_video(one[0]).rgb, std::vector<uint8_t>(rgb.frame(1), rgb.frame(2)));
}
#else
// A build without FFmpeg (the ARM job's) refuses .mp4 and .png in one line before any work, and
// writes nothing.
TEST(Video, Mp4AndPngRefusedWithoutFfmpeg) {
    TempDir dir;
    Tensor clip = synthetic_clip(3, 8, 12);
    for (const std::string name : {"c.mp4", "f.png"}) {
        const std::string m = error_of([&] { write_video(dir / name, clip); });
        EXPECT_NE(m.find("built without FFmpeg"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_TRUE(leftovers(dir.path).empty());
}
#endif  // WANRT_HAVE_FFMPEG

// The containers this build writes: .y4m always, .mp4 and .png through FFmpeg.
#ifdef WANRT_HAVE_FFMPEG
const std::vector<std::string> kWritable = {".mp4", ".y4m", ".png"};
#else
const std::vector<std::string> kWritable = {".y4m"};
#endif

TEST(Video, SameInputGivesIdenticalFiles) {
    TempDir dir;
    Tensor clip = synthetic_clip(9, 32, 48);
    for (const std::string& ext : kWritable) {
        auto a = write_video(dir / ("a" + ext), clip);
        auto b = write_video(dir / ("b" + ext), clip);
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(slurp(a[i]) == slurp(b[i])) << a[i] << " vs " << b[i];
        // Rewriting the same path replaces the file atomically.
        auto c = write_video(dir / ("a" + ext), clip);
        EXPECT_TRUE(slurp(c[0]) == slurp(b[0])) << ext;
    }
}

// VideoWriter, one frame at a time, writes the files write_video writes; nothing is at the destination
// before finish(), and a writer dropped without it leaves nothing. VideoReader gives read_video's
// frames one at a time, announces the file's length, and says false (buffer untouched) at the end.
TEST(Video, FrameByFrameWriterAndReader) {
    TempDir dir;
    const Rgb24Video rgb = video_to_rgb24(synthetic_clip(9, 32, 48));
    for (const std::string& ext : kWritable) {
        const std::vector<std::string> whole = write_video(dir / ("whole" + ext), rgb);
        const std::string stem = "parts_" + ext.substr(1);
        VideoWriter w(dir / (stem + ext), rgb.width, rgb.height);
        for (int64_t f = 0; f < rgb.frames; ++f) {
            w.write(rgb.frame(f));
            for (const std::string& name : leftovers(dir.path))
                EXPECT_NE(name.rfind(stem, 0), 0u) << name << " is visible before finish()";
        }
        EXPECT_EQ(w.frames(), rgb.frames);
        const std::vector<std::string> parts = w.finish();
        ASSERT_EQ(parts.size(), whole.size()) << ext;
        for (size_t i = 0; i < parts.size(); ++i) EXPECT_TRUE(slurp(parts[i]) == slurp(whole[i])) << parts[i];
        EXPECT_NE(error_of([&] { w.write(rgb.frame(0)); }).find("after finish"), std::string::npos);
        if (ext == ".png") continue;  // one file per frame: read back by PngFramesAreLossless

        const Rgb24Video all = read_video(whole[0]);
        VideoReader r(whole[0]);
        EXPECT_EQ(r.width(), 48);
        EXPECT_EQ(r.height(), 32);
        EXPECT_EQ(r.fps(), 16.0);
        EXPECT_EQ(r.frames_hint(), 9) << ext;
        std::vector<uint8_t> buf(all.frame_bytes());
        for (int64_t f = 0; f < all.frames; ++f) {
            ASSERT_TRUE(r.next(buf.data())) << ext << " frame " << f;
            EXPECT_TRUE(std::equal(buf.begin(), buf.end(), all.frame(f))) << ext << " frame " << f;
        }
        std::fill(buf.begin(), buf.end(), uint8_t(7));
        EXPECT_FALSE(r.next(buf.data()));
        EXPECT_FALSE(r.next(buf.data()));
        EXPECT_EQ(std::count(buf.begin(), buf.end(), uint8_t(7)), std::ptrdiff_t(buf.size()));
        EXPECT_EQ(r.frames_read(), 9);
    }
    const size_t kept = leftovers(dir.path).size();
    for (const std::string& ext : kWritable) {  // dropped after 1 and after 2 frames (a PNG set has begun)
        for (int64_t n : {1, 2}) {
            VideoWriter w(dir / (cat("dropped", n) + ext), rgb.width, rgb.height);
            for (int64_t f = 0; f < n; ++f) w.write(rgb.frame(f));
        }
    }
    EXPECT_EQ(leftovers(dir.path).size(), kept);
    EXPECT_NE(error_of([&] { VideoWriter(dir / "none.y4m", 48, 32).finish(); }).find("no frames"), std::string::npos);
    EXPECT_NE(error_of([&] { VideoWriter(dir / "huge.y4m", 48, 100000); }).find("outside 1..16384"), std::string::npos);
    EXPECT_EQ(leftovers(dir.path).size(), kept);
}

TEST(Video, FailuresLeaveNoFile) {
    TempDir dir;
    Tensor clip = synthetic_clip(3, 8, 12);
    auto one_line = [](const std::string& m) {
        EXPECT_NE(m.find("[video]"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    };
    std::string m;
    for (const std::string& ext : kWritable) {
        m = error_of([&] { write_video(dir / ("missing/sub/out" + ext), clip); });
        one_line(m);
        EXPECT_NE(m.find("cannot write"), std::string::npos) << m;
    }
    // The destination is a folder: refused before encoding.
    const std::string taken = "taken" + kWritable[0];
    fs::create_directories(dir.path / taken / "x");
    one_line(error_of([&] { write_video(dir / taken, clip); }));
#ifdef WANRT_HAVE_FFMPEG
    // One frame of a PNG set cannot be renamed into place: the whole set is withdrawn.
    fs::create_directories(dir.path / "set_00001.png" / "x");
    m = error_of([&] { write_video(dir / "set.png", clip); });
    one_line(m);
    EXPECT_NE(m.find("set_00001.png"), std::string::npos) << m;
    fs::remove_all(dir.path / "set_00001.png");
    // Odd sizes cannot be yuv420p; unknown extensions are refused up front.
    one_line(error_of([&] { write_video(dir / "odd.mp4", synthetic_clip(3, 7, 12)); }));
#endif
    m = error_of([&] { write_video(dir / "clip.avi", clip); });
    one_line(m);
    EXPECT_NE(m.find(".mp4"), std::string::npos);
    EXPECT_EQ(leftovers(dir.path), std::vector<std::string>{taken});
    // Bad tensors.
    Tensor flat = cpu()->empty(DType::F32, {4, 2, 8, 8});
    one_line(error_of([&] { write_video(dir / "x.y4m", flat); }));
    // Reading a missing or non-video file.
    one_line(error_of([&] { read_video(dir / "nope.mp4"); }));
    {
        std::ofstream(dir.path / "junk.mp4") << "not a video";
    }
    one_line(error_of([&] { read_video(dir / "junk.mp4"); }));
}

TEST(Video, Rgb24RoundTripsToTensor) {
    Tensor clip = synthetic_clip(2, 4, 6);
    Rgb24Video rgb = video_to_rgb24(clip);
    Tensor t = rgb24_to_video(rgb, *cpu());
    EXPECT_EQ(t.shape(), (Shape{3, 2, 4, 6}));
    Rgb24Video again = video_to_rgb24(t);
    // x/255·2 − 1 then back: within one step of truncation.
    EXPECT_LE(max_diff(rgb, again), 1);
}
