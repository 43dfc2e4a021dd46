// Image-to-video jobs of `wanrt serve` (src/server/upload.h, engine.h):
//   - the body parsers without a server: base64 (strict), JSON with a base64 picture or a data: URL,
//     multipart/form-data (GMime) with fields, an "options" JSON field and a file part; duplicates,
//     a missing boundary, a nested multipart refused with one line;
//   - the picture decoders: PNG (RGBA: alpha dropped; grayscale expanded) byte-exact, JPEG within the
//     codec's error, truncated / garbage / oversize (by header) refused;
//   - the server with the i2v demo model: the same job sent as JSON + base64 and as multipart gives
//     the same y4m, byte for byte, and that is the y4m `wanrt generate --image` writes (the staged
//     CLI pipeline, run_i2v_staged, on the same picture and options); the video size follows the
//     picture's aspect as the official i2v arithmetic; no picture → 422; a bad picture → 400; an
//     upload over --max_upload → 413; the live stream refused (422);
//   - the text-to-video demo: a picture → 422 "has no i2v", in JSON and in multipart; a "last_image"
//     → 422 "is not first-last-frame" (also on the i2v demo);
//   - the flf2v demo (--task flf2v-14B): two pictures as JSON and as multipart give the same y4m, and
//     that is run_flf2v_staged's (`wanrt generate --first_frame --last_frame`); the negative prompt is
//     the FLF2V config's ("镜头切换，" + the default); a missing picture → 422 naming both fields, a bad
//     or mismatched last_image → 400; the live stream refused;
//   - the Wan2.2 A14B demos (--task t2v-A14B / i2v-A14B): both experts resident, a job equals
//     run_moe_staged (`wanrt generate --task t2v-A14B`) with the same guide pair, steps that use
//     both experts; the pair as [low, high] and as the CLI's "low,high"; no live stream.
#include <gtest/gtest.h>
#include <png.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "ops/ops.h"
#include "pipeline/demo.h"
#include "pipeline/flf2v.h"
#include "pipeline/i2v.h"
#include "pipeline/moe.h"
#include "runtime/device.h"
#include "sched/scheduler.h"
#include "server/beast.h"
#include "server/server.h"
#include "server/upload.h"
#include "test_util.h"
#include "video/video_writer.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using namespace wanrt;
using namespace wanrt::serve;

namespace {

std::shared_ptr<Backend> backend() {
    static std::shared_ptr<Backend> be = [] {
        std::shared_ptr<Backend> b = test::test_device();  // WANRT_TEST_DEVICE=cuda: the model on the GPU
        return b ? b : make_backend("cpu", 2);
    }();
    return be;
}
ServeModel& i2v_model() {
    static std::unique_ptr<ServeModel> m = ServeModel::load("", backend(), {}, "i2v-14B");
    return *m;
}
ServeModel& t2v_model() {
    static std::unique_ptr<ServeModel> m = ServeModel::load("", backend());
    return *m;
}

ServeModel& flf2v_model() {
    static std::unique_ptr<ServeModel> m = ServeModel::load("", backend(), {}, "flf2v-14B");
    return *m;
}

std::string expect_fail(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        EXPECT_EQ(m.rfind("[serve] ", 0), 0u) << m;
        return m;
    }
    ADD_FAILURE() << "no error";
    return {};
}

std::string b64(const std::string& in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
        for (int s = 18; s >= 0; s -= 6) out += t[(v >> s) & 63];
    }
    if (i + 1 == in.size()) {
        const uint32_t v = uint32_t(uint8_t(in[i])) << 16;
        out += t[(v >> 18) & 63];
        out += t[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8;
        out += t[(v >> 18) & 63];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

// A PNG of the given format (libpng's simplified writer).
std::string png_bytes(const std::vector<uint8_t>& px, int w, int h, uint32_t format) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = uint32_t(w);
    img.height = uint32_t(h);
    img.format = format;
    png_alloc_size_t size = 0;
    EXPECT_NE(png_image_write_to_memory(&img, nullptr, &size, 0, px.data(), 0, nullptr), 0);
    std::string out(size, '\0');
    EXPECT_NE(png_image_write_to_memory(&img, out.data(), &size, 0, px.data(), 0, nullptr), 0) << img.message;
    out.resize(size);
    return out;
}

// A smooth RGB picture w × h.
std::vector<uint8_t> picture(int w, int h) {
    std::vector<uint8_t> p(size_t(w * h * 3));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* q = &p[size_t(y * w + x) * 3];
            q[0] = uint8_t(x * 255 / std::max(1, w - 1));
            q[1] = uint8_t(y * 255 / std::max(1, h - 1));
            q[2] = uint8_t(128 + 60 * ((x / 8 + y / 8) % 2));
        }
    return p;
}

std::string multipart(const std::vector<std::array<std::string, 4>>& parts, const std::string& boundary) {
    // each part: name, filename ("" = a text field), content type, value
    std::string b;
    for (const auto& [name, file, type, value] : parts) {
        b += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"";
        if (!file.empty()) b += "; filename=\"" + file + "\"";
        b += "\r\n";
        if (!type.empty()) b += "Content-Type: " + type + "\r\n";
        b += "\r\n" + value + "\r\n";
    }
    return b + "--" + boundary + "--\r\n";
}

struct Reply {
    unsigned status = 0;
    std::string body, content_type;
    json j() const { return json::parse(body, nullptr, false); }
};

Reply request(int port, http::verb verb, const std::string& target, const std::string& body = "",
              const std::string& content_type = "application/json") {
    net::io_context ioc;
    beast::tcp_stream s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (verb == http::verb::post) {
        req.set(http::field::content_type, content_type);
        req.body() = body;
        req.prepare_payload();
    }
    http::write(s, req);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> p;
    p.body_limit(64 << 20);
    beast::error_code ec;
    http::read(s, buf, p, ec);  // a 413 may close before the whole body was sent
    Reply r;
    r.status = p.get().result_int();
    r.body = p.get().body();
    r.content_type = std::string(p.get()[http::field::content_type]);
    return r;
}

void expect_error(const Reply& r, unsigned status, const std::string& needle) {
    EXPECT_EQ(r.status, status) << r.body;
    const json j = r.j();
    ASSERT_TRUE(j.is_object() && j.contains("error") && j["error"].is_string()) << r.body;
    const std::string e = j["error"];
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_NE(e.find(needle), std::string::npos) << e;
}

// The y4m `wanrt generate` would write for a video (write_video's defaults: 16 fps).
std::string y4m_of(const Tensor& video) {
    const fs::path tmp = fs::temp_directory_path() / ("wanrt-cli-" + random_id(6) + ".y4m");
    write_video(tmp.string(), video);
    std::ifstream f(tmp, std::ios::binary);
    const std::string y((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    fs::remove(tmp);
    return y;
}

// A picture as the CLI's pipelines take it: f32 [3, h, w] in [−1, 1].
Tensor cli_picture(const std::vector<uint8_t>& rgb, int w, int h) {
    Rgb24Video v;
    v.frames = 1;
    v.width = w;
    v.height = h;
    v.rgb = rgb;
    return ops::contiguous(rgb24_to_video(v, *backend()).select(1, 0));
}

json wait_done(int port, const std::string& id) {
    for (int i = 0; i < 6000; ++i) {
        const json j = request(port, http::verb::get, "/v1/jobs/" + id).j();
        const std::string st = j.value("status", "");
        if (st == "done" || st == "failed" || st == "cancelled") return j;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return {};
}

}  // namespace

TEST(ServeUpload, Base64Strict) {
    const std::string all = [] {
        std::string s;
        for (int i = 0; i < 256; ++i) s += char(i);
        return s;
    }();
    for (size_t n : {0, 1, 2, 3, 4, 5, 255, 256}) EXPECT_EQ(base64_decode(b64(all.substr(0, n)), "x"), all.substr(0, n));
    EXPECT_EQ(base64_decode("aGVs\nbG8", "x"), "hello");  // whitespace skipped, padding optional
    EXPECT_NE(expect_fail([] { base64_decode("aGV*bG8=", "\"image\""); }).find("byte 3 is '*'"), std::string::npos);
    EXPECT_NE(expect_fail([] { base64_decode("aGVsb", "x"); }).find("dangling"), std::string::npos);
    EXPECT_NE(expect_fail([] { base64_decode("aGVs=bG8", "x"); }).find("after '='"), std::string::npos);
}

TEST(ServeUpload, BodyJsonAndMultipart) {
    const std::string pic = "\x89PNG-not-really";
    GenerateBody b = parse_generate_body("application/json",
                                         json{{"prompt", "a cat"}, {"frame_num", 5}, {"image", b64(pic)}}.dump(), 1000);
    EXPECT_TRUE(b.has_image);
    EXPECT_EQ(b.image, pic);
    EXPECT_EQ(b.options, (json{{"prompt", "a cat"}, {"frame_num", 5}}));
    b = parse_generate_body("", json{{"prompt", "x"}, {"image", "data:image/png;base64," + b64(pic)}}.dump(), 1000);
    EXPECT_EQ(b.image, pic);
    b = parse_generate_body("application/json", R"({"prompt": "x"})", 1000);
    EXPECT_FALSE(b.has_image);
    expect_fail([] { parse_generate_body("application/json", R"({"prompt": "x", "image": 5})", 1000); });
    expect_fail([&] { parse_generate_body("application/json", json{{"image", b64(std::string(2000, 'a'))}}.dump(), 1000); });
    expect_fail([] { parse_generate_body("application/json", "{\"prompt\": ", 1000); });
    expect_fail([] { parse_generate_body("image/png", "abc", 1000); });

    // Multipart: text fields (numbers read as numbers, prompt kept as text), the file, "options".
    // Bytes a naive parser trips on: NUL, CR LF, the boundary not at a line start, a lone "--".
    std::string binary = pic + std::string("\0\r\nx--XyZ\r\n--\r\n", 15) + "tail";
    const std::string body = multipart({{"prompt", "", "", "42"},
                                        {"frame_num", "", "", "9"},
                                        {"options", "", "application/json", R"({"sample_steps": 3, "size": "64*48"})"},
                                        {"image", "cat.png", "image/png", binary}},
                                       "XyZ");
    b = parse_generate_body("multipart/form-data; boundary=XyZ", body, 1000);
    EXPECT_TRUE(b.has_image);
    EXPECT_EQ(b.image, binary);
    EXPECT_EQ(b.options, (json{{"prompt", "42"}, {"frame_num", 9}, {"sample_steps", 3}, {"size", "64*48"}}));
    EXPECT_NE(expect_fail([&] { parse_generate_body("multipart/form-data; boundary=XyZ", body, 10); }).find("at most 10"),
              std::string::npos);
    EXPECT_NE(expect_fail([&] { parse_generate_body("multipart/form-data", body, 1000); }).find("boundary"),
              std::string::npos);
    EXPECT_NE(expect_fail([&] {
                  parse_generate_body("multipart/form-data; boundary=XyZ",
                                      multipart({{"prompt", "", "", "a"}, {"prompt", "", "", "b"}}, "XyZ"), 1000);
              }).find("given twice"),
              std::string::npos);
    EXPECT_NE(expect_fail([&] {
                  parse_generate_body("multipart/form-data; boundary=XyZ",
                                      multipart({{"prompt", "", "", "a"}, {"options", "", "", R"({"prompt": "b"})"}},
                                                "XyZ"),
                                      1000);
              }).find("given twice"),
              std::string::npos);
    expect_fail([&] { parse_generate_body("multipart/form-data; boundary=Other", body, 1000); });
    expect_fail([&] { parse_generate_body("multipart/form-data; boundary=XyZ", "garbage", 1000); });
}

TEST(ServeUpload, DecodePngAndJpeg) {
    const int W = 40, H = 24;
    const std::vector<uint8_t> rgb = picture(W, H);
    // RGBA PNG: the colour comes back exactly, the alpha is dropped (not blended).
    std::vector<uint8_t> rgba(size_t(W * H * 4));
    for (int i = 0; i < W * H; ++i) {
        for (int c = 0; c < 3; ++c) rgba[size_t(i) * 4 + c] = rgb[size_t(i) * 3 + c];
        rgba[size_t(i) * 4 + 3] = uint8_t(i * 7);
    }
    RgbImage im = decode_image(png_bytes(rgba, W, H, PNG_FORMAT_RGBA), 1 << 20);
    EXPECT_EQ(im.width, W);
    EXPECT_EQ(im.height, H);
    EXPECT_EQ(im.rgb, rgb);
    // Grayscale PNG → R = G = B.
    std::vector<uint8_t> gray(size_t(W * H));
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = uint8_t(i);
    im = decode_image(png_bytes(gray, W, H, PNG_FORMAT_GRAY), 1 << 20);
    ASSERT_EQ(im.rgb.size(), size_t(W * H * 3));
    for (size_t i = 0; i < gray.size(); ++i)
        ASSERT_TRUE(im.rgb[i * 3] == gray[i] && im.rgb[i * 3 + 1] == gray[i] && im.rgb[i * 3 + 2] == gray[i]) << i;
    // JPEG round trip at quality 95: within a few levels on a smooth picture.
    const std::vector<uint8_t> jpg = encode_jpeg(rgb.data(), W, H, 3, 95);
    ASSERT_TRUE(looks_like_jpeg(jpg.data(), jpg.size()));
    im = decode_image(std::string(jpg.begin(), jpg.end()), 1 << 20);
    ASSERT_EQ(im.rgb.size(), rgb.size());
    double err = 0;
    for (size_t i = 0; i < rgb.size(); ++i) err += std::abs(int(im.rgb[i]) - int(rgb[i]));
    err /= double(rgb.size());
    std::printf("JPEG q95 %dx%d: %zu bytes (raw %zu), mean |error| %.2f levels\n", W, H, jpg.size(), rgb.size(), err);
    EXPECT_LT(err, 4.0);
    // Bad pictures: one line each, before any pixel is decoded where the header says enough.
    const std::string j(jpg.begin(), jpg.end());
    EXPECT_NE(expect_fail([&] { decode_image(j.substr(0, j.size() / 2), 1 << 20); }).find("not a valid JPEG"),
              std::string::npos);
    const std::string too_big = expect_fail([&] { decode_image(j, W * H - 1); });
    EXPECT_NE(too_big.find("at most"), std::string::npos) << too_big;
    // A good frame decodes after bad ones (the decoder's state is not left broken by a failure).
    EXPECT_EQ(decode_image(j, 1 << 20).width, W);
    const std::string p = png_bytes(rgba, W, H, PNG_FORMAT_RGBA);
    EXPECT_NE(expect_fail([&] { decode_image(p.substr(0, p.size() - 20), 1 << 20); }).find("not a valid PNG"),
              std::string::npos);
    EXPECT_NE(expect_fail([&] { decode_image("GIF89a....", 1 << 20); }).find("neither PNG nor JPEG"), std::string::npos);
    EXPECT_NE(expect_fail([&] { decode_image("", 1 << 20); }).find("neither PNG nor JPEG"), std::string::npos);
}

TEST(ServeUpload, ImageToVideoJobsJsonAndMultipartMatchTheCli) {
    ServerOptions o;
    o.port = 0;
    o.max_upload = 64 << 10;
    o.max_body = 4096;  // the other requests' limit; POST /v1/generate takes max_upload
    Server server(o, i2v_model());
    server.start();
    const int port = server.port();
    EXPECT_EQ(request(port, http::verb::get, "/v1/health").j().value("task", ""), "i2v");

    // A 80×60 picture (4:3) with max_area 64*48: the official arithmetic gives a 64×48 video.
    const int W = 80, H = 60;
    const std::vector<uint8_t> rgb = picture(W, H);
    const std::string png = png_bytes(rgb, W, H, PNG_FORMAT_RGB);
    const json opts = {{"prompt", "a lighthouse at dusk"}, {"size", "64*48"}, {"frame_num", 5}, {"sample_steps", 2},
                       {"seed", 11}};
    json with_image = opts;
    with_image["image"] = b64(png);
    const Reply a = request(port, http::verb::post, "/v1/generate", with_image.dump());
    ASSERT_EQ(a.status, 202u) << a.body;
    const std::string body = multipart({{"prompt", "", "", "a lighthouse at dusk"},
                                        {"size", "", "", "64*48"},
                                        {"frame_num", "", "", "5"},
                                        {"sample_steps", "", "", "2"},
                                        {"seed", "", "", "11"},
                                        {"image", "in.png", "image/png", png}},
                                       "----wanrt-test-boundary");
    const Reply b =
        request(port, http::verb::post, "/v1/generate", body, "multipart/form-data; boundary=----wanrt-test-boundary");
    ASSERT_EQ(b.status, 202u) << b.body;
    const std::string ida = a.j()["id"], idb = b.j()["id"];
    const json ja = wait_done(port, ida), jb = wait_done(port, idb);
    ASSERT_EQ(ja.value("status", ""), "done") << ja.dump();
    ASSERT_EQ(jb.value("status", ""), "done") << jb.dump();
    EXPECT_EQ(ja["request"].value("size", ""), "64*48");
    EXPECT_EQ(ja["request"].value("image_size", ""), "80*60");
    EXPECT_EQ(ja["request"].value("task", ""), "i2v");
    const std::string ya = request(port, http::verb::get, "/v1/jobs/" + ida + "/result").body;
    const std::string yb = request(port, http::verb::get, "/v1/jobs/" + idb + "/result").body;
    EXPECT_EQ(ya.substr(0, ya.find('\n')), "YUV4MPEG2 W64 H48 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED");
    EXPECT_EQ(ya.size(), ya.find('\n') + 1 + 5 * (6 + 64 * 48 * 3));
    EXPECT_EQ(ya, yb) << "the JSON and multipart forms of one job differ";

    // The same job through the CLI's staged pipeline (`wanrt generate --image`): the same bytes.
    {
        const T2VModelParts parts = demo_i2v_model_parts();
        Rgb24Video v;
        v.frames = 1;
        v.width = W;
        v.height = H;
        v.rgb = rgb;
        const Tensor image = ops::contiguous(rgb24_to_video(v, *backend()).select(1, 0));
        const JobRequest r = parse_job_request(opts, i2v_model(), {}, std::make_shared<const RgbImage>(RgbImage{W, H, rgb}));
        const I2VStagedResult cli = run_i2v_staged(parts, backend(), r.prompt, r.neg_prompt, image, 11, r.opt);
        const fs::path tmp = fs::temp_directory_path() / ("wanrt-i2v-" + random_id(6) + ".y4m");
        write_video(tmp.string(), cli.video);
        std::ifstream f(tmp, std::ios::binary);
        const std::string y((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        fs::remove(tmp);
        EXPECT_EQ(y, ya) << "the server's i2v job differs from run_i2v_staged";
    }

    // Bad requests.
    expect_error(request(port, http::verb::post, "/v1/generate", opts.dump()), 422, "is image-to-video: send a picture");
    json bad = opts;
    bad["image"] = b64("GIF89a not a png");
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400, "neither PNG nor JPEG");
    bad["image"] = "@@@";
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400, "not base64");
    bad = with_image;
    bad["frame_num"] = 6;
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400, "[i2v]");
    bad = with_image;
    bad["image"] = b64(std::string(100 << 10, 'x'));
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 413, "over this server's limit");
    expect_error(request(port, http::verb::post, "/v1/generate", "abc", "multipart/form-data; boundary=q"), 400,
                 "multipart");
    expect_error(request(port, http::verb::get, "/v1/stream"), 422, "is image-to-video (i2v)");
}

TEST(ServeUpload, TextToVideoModelRefusesPictures) {
    ServerOptions o;
    o.port = 0;
    Server server(o, t2v_model());
    server.start();
    const std::string png = png_bytes(picture(32, 32), 32, 32, PNG_FORMAT_RGB);
    expect_error(request(server.port(), http::verb::post, "/v1/generate",
                         json{{"prompt", "x"}, {"image", b64(png)}}.dump()),
                 422, "has no i2v");
    expect_error(request(server.port(), http::verb::post, "/v1/generate",
                         multipart({{"prompt", "", "", "x"}, {"image", "a.png", "image/png", png}}, "b0undary"),
                         "multipart/form-data; boundary=b0undary"),
                 422, "has no i2v");
    // A last frame is for first-last-frame models only.
    expect_error(request(server.port(), http::verb::post, "/v1/generate",
                         json{{"prompt", "x"}, {"last_image", b64(png)}}.dump()),
                 422, "is not first-last-frame: leave out \"last_image\"");
    expect_error(request(server.port(), http::verb::post, "/v1/generate",
                         multipart({{"prompt", "", "", "x"}, {"last_image", "b.png", "image/png", png}}, "b0undary"),
                         "multipart/form-data; boundary=b0undary"),
                 422, "is not first-last-frame");
    // Text fields alone in a form are a text-to-video job.
    const Reply r = request(server.port(), http::verb::post, "/v1/generate",
                            multipart({{"prompt", "", "", "x"},
                                       {"size", "", "", "64*48"},
                                       {"frame_num", "", "", "5"},
                                       {"sample_steps", "", "", "1"}},
                                      "b0undary"),
                            "multipart/form-data; boundary=b0undary");
    ASSERT_EQ(r.status, 202u) << r.body;
    EXPECT_EQ(wait_done(server.port(), r.j()["id"]).value("status", ""), "done");
}

TEST(ServeUpload, FirstLastFrameJobsJsonAndMultipartMatchTheCli) {
    ServerOptions o;
    o.port = 0;
    o.max_upload = 64 << 10;
    Server server(o, flf2v_model());
    server.start();
    const int port = server.port();
    EXPECT_EQ(request(port, http::verb::get, "/v1/health").j().value("task", ""), "flf2v");

    // Two 80×60 pictures with max_area 64*48: a 64×48 video from the first frame's aspect.
    const int W = 80, H = 60;
    const std::vector<uint8_t> first = picture(W, H);
    std::vector<uint8_t> last = first;
    std::reverse(last.begin(), last.end());  // another picture of the same size
    const std::string png1 = png_bytes(first, W, H, PNG_FORMAT_RGB), png2 = png_bytes(last, W, H, PNG_FORMAT_RGB);
    const json opts = {
        {"prompt", "a door opens"}, {"size", "64*48"}, {"frame_num", 9}, {"sample_steps", 2}, {"seed", 5}};
    json with_images = opts;
    with_images["image"] = b64(png1);
    with_images["last_image"] = "data:image/png;base64," + b64(png2);
    const Reply a = request(port, http::verb::post, "/v1/generate", with_images.dump());
    ASSERT_EQ(a.status, 202u) << a.body;
    const std::string body = multipart({{"options", "", "application/json", opts.dump()},
                                        {"last_image", "last.png", "image/png", png2},
                                        {"image", "first.png", "image/png", png1}},
                                       "flf2v-boundary");
    const Reply b =
        request(port, http::verb::post, "/v1/generate", body, "multipart/form-data; boundary=flf2v-boundary");
    ASSERT_EQ(b.status, 202u) << b.body;
    const std::string ida = a.j()["id"], idb = b.j()["id"];
    const json ja = wait_done(port, ida), jb = wait_done(port, idb);
    ASSERT_EQ(ja.value("status", ""), "done") << ja.dump();
    ASSERT_EQ(jb.value("status", ""), "done") << jb.dump();
    EXPECT_EQ(ja["request"].value("task", ""), "flf2v");
    EXPECT_EQ(ja["request"].value("size", ""), "64*48");
    EXPECT_EQ(ja["request"].value("image_size", ""), "80*60");
    EXPECT_EQ(ja["request"].value("last_image_size", ""), "80*60");
    const std::string ya = request(port, http::verb::get, "/v1/jobs/" + ida + "/result").body;
    const std::string yb = request(port, http::verb::get, "/v1/jobs/" + idb + "/result").body;
    EXPECT_EQ(ya.substr(0, ya.find('\n')), "YUV4MPEG2 W64 H48 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED");
    EXPECT_EQ(ya.size(), ya.find('\n') + 1 + 9 * (6 + 64 * 48 * 3));
    EXPECT_TRUE(ya == yb) << "the JSON and multipart forms of one job differ";

    // The defaults are `wanrt generate --task flf2v-14B`'s: the FLF2V config's negative prompt.
    const auto pic = [](const std::vector<uint8_t>& rgb) {
        return std::make_shared<const RgbImage>(RgbImage{80, 60, rgb});
    };
    const JobRequest r = parse_job_request(opts, flf2v_model(), {}, pic(first), pic(last));
    EXPECT_EQ(r.neg_prompt, std::string("镜头切换，") + kWanDefaultNegPrompt);
    // The same job through the CLI's staged pipeline: the same bytes. With the pictures swapped the
    // video differs (the last frame is used, and used as the last).
    const I2VStagedResult cli = run_flf2v_staged(demo_flf2v_model_parts(), backend(), r.prompt, r.neg_prompt,
                                                 cli_picture(first, W, H), cli_picture(last, W, H), 5, r.opt);
    EXPECT_TRUE(y4m_of(cli.video) == ya) << "the server's flf2v job differs from run_flf2v_staged";
    const I2VStagedResult swapped = run_flf2v_staged(demo_flf2v_model_parts(), backend(), r.prompt, r.neg_prompt,
                                                     cli_picture(last, W, H), cli_picture(first, W, H), 5, r.opt);
    EXPECT_FALSE(y4m_of(swapped.video) == ya) << "swapping the pictures changed nothing";

    // Bad requests: a picture missing (422 naming both fields), a bad last_image (400).
    json bad = opts;
    bad["image"] = b64(png1);
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 422,
                 "send the first frame as \"image\" and the last as \"last_image\"");
    bad = opts;
    bad["last_image"] = b64(png2);
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 422, "is first-last-frame-to-video");
    expect_error(request(port, http::verb::post, "/v1/generate", opts.dump()), 422, "is first-last-frame-to-video");
    bad = with_images;
    bad["last_image"] = "@@@";
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400, "\"last_image\" is not base64");
    bad["last_image"] = 7;
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400, "\"last_image\" must be a string");
    bad["last_image"] = b64("GIF89a not a png");
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400, "the uploaded last_image (");
    bad["last_image"] = b64(png_bytes(picture(64, 48), 64, 48, PNG_FORMAT_RGB));
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400, "[flf2v]");
    bad = with_images;
    bad["last_image"] = b64(std::string(100 << 10, 'x'));  // the body fits max_body (1 MiB), the picture not
    expect_error(request(port, http::verb::post, "/v1/generate", bad.dump()), 400,
                 "the last_image is about 102402 bytes; this server takes at most 65536");
    expect_error(request(port, http::verb::post, "/v1/generate",
                         multipart({{"prompt", "", "", "x"},
                                    {"image", "a.png", "image/png", png1},
                                    {"last_image", "b.png", "image/png", png2},
                                    {"last_image", "c.png", "image/png", png2}},
                                   "b0undary"),
                         "multipart/form-data; boundary=b0undary"),
                 400, "given twice");
    expect_error(request(port, http::verb::get, "/v1/stream"), 422, "is image-to-video (flf2v)");
    // An i2v model takes one picture only.
    {
        Server i2v_server(o, i2v_model());
        i2v_server.start();
        expect_error(request(i2v_server.port(), http::verb::post, "/v1/generate", with_images.dump()), 422,
                     "is not first-last-frame");
    }
}

// Wan2.2 A14B: both experts resident; a job is run_moe_staged's video (the CLI's chain) for the same
// options. 4 steps at shift 12 and boundary 0.875 run the high-noise expert 3 times, then the low one.
TEST(ServeUpload, MoeJobsMatchTheCli) {
    for (const bool i2v : {false, true}) {
        SCOPED_TRACE(i2v ? "i2v-A14B" : "t2v-A14B");
        auto model = ServeModel::load("", backend(), {}, i2v ? "i2v-A14B" : "t2v-A14B");
        ASSERT_TRUE(model->moe() && model->dit_high && model->dit);
        EXPECT_EQ(model->i2v(), i2v);
        EXPECT_EQ(model->causal, nullptr);
        const T2VModelParts parts = demo_moe_model_parts(i2v);
        MoeOptions moe;
        moe.boundary = moe_defaults(i2v).boundary;
        const T2VOptions probe = [&] {
            T2VOptions t;
            t.sample_steps = 4;
            t.sample_shift = moe_defaults(i2v).shift;
            return t;
        }();
        int high_steps = 0;
        const auto sched = make_scheduler(probe.solver, probe.sample_steps, probe.sample_shift);
        for (int64_t t : sched->timesteps()) high_steps += moe_high_noise(t, moe.boundary);
        ASSERT_GT(high_steps, 0);
        ASSERT_LT(high_steps, 4);  // both experts run

        ServerOptions o;
        o.port = 0;
        o.max_upload = 64 << 10;
        Server server(o, *model);
        server.start();
        const int port = server.port();
        EXPECT_EQ(request(port, http::verb::get, "/v1/health").j().value("task", ""), i2v ? "i2v-A14B" : "t2v-A14B");
        const int W = 80, H = 60;
        const std::vector<uint8_t> rgb = picture(W, H);
        json opts = {{"prompt", "a boat on a lake"},
                     {"size", "64*48"},
                     {"frame_num", 5},
                     {"sample_steps", 4},
                     {"sample_guide_scale", json::array({2.0, 6.0})},
                     {"seed", 21}};
        if (i2v) opts["image"] = b64(png_bytes(rgb, W, H, PNG_FORMAT_RGB));
        const Reply a = request(port, http::verb::post, "/v1/generate", opts.dump());
        ASSERT_EQ(a.status, 202u) << a.body;
        const json ja = wait_done(port, a.j()["id"]);
        ASSERT_EQ(ja.value("status", ""), "done") << ja.dump();
        EXPECT_EQ(ja["request"].value("task", ""), i2v ? "i2v-A14B" : "t2v-A14B");
        const std::string ya = request(port, http::verb::get, "/v1/jobs/" + ja.value("id", "") + "/result").body;
        EXPECT_EQ(ya.substr(0, ya.find('\n')), "YUV4MPEG2 W64 H48 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED");
        EXPECT_EQ(ya.size(), ya.find('\n') + 1 + 5 * (6 + 64 * 48 * 3));

        json body = opts;
        body.erase("image");
        std::shared_ptr<const RgbImage> image = i2v ? std::make_shared<const RgbImage>(RgbImage{W, H, rgb}) : nullptr;
        const JobRequest r = parse_job_request(body, *model, {}, image);
        EXPECT_EQ(r.opt.guide_scale, 2.0);
        EXPECT_EQ(r.guide_high, 6.0);
        EXPECT_EQ(r.opt.sample_shift, moe_defaults(i2v).shift);
        moe.guide_scale_high = 6.0;
        const Tensor pic = i2v ? cli_picture(rgb, W, H) : Tensor();
        const I2VStagedResult cli = run_moe_staged(parts, backend(), r.prompt, r.neg_prompt, pic, 21, r.opt, moe);
        EXPECT_TRUE(y4m_of(cli.video) == ya) << "the server's A14B job differs from run_moe_staged";
        moe.guide_scale_high = 2.0;  // the high expert's scale matters: (2, 2) is another video
        const I2VStagedResult low_only = run_moe_staged(parts, backend(), r.prompt, r.neg_prompt, pic, 21, r.opt, moe);
        EXPECT_FALSE(y4m_of(low_only.video) == ya) << "the high-noise guide scale changed nothing";

        // The pair as the CLI writes it (a multipart field), a single g, and refusals.
        body["sample_guide_scale"] = "2.0,6.0";
        EXPECT_EQ(parse_job_request(body, *model, {}, image).guide_high, 6.0);
        body["sample_guide_scale"] = 4.5;
        const JobRequest one = parse_job_request(body, *model, {}, image);
        EXPECT_EQ(one.opt.guide_scale, 4.5);
        EXPECT_EQ(one.guide_high, 4.5);
        body["sample_guide_scale"] = json::array({1.0, 2.0, 3.0});
        EXPECT_NE(expect_fail([&] { parse_job_request(body, *model, {}, image); }).find("[low, high]"),
                  std::string::npos);
        if (i2v) {
            opts.erase("image");
            expect_error(request(port, http::verb::post, "/v1/generate", opts.dump()), 422,
                         "send a picture as \"image\"");
            expect_error(request(port, http::verb::get, "/v1/stream"), 422, "is image-to-video (i2v-A14B)");
        } else {  // t2v-A14B: no causal DiT; the stream says so at its first config, as for TI2V-5B
            namespace websocket = beast::websocket;
            net::io_context ioc;
            websocket::stream<tcp::socket> ws(ioc);
            ws.next_layer().connect(
                tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
            ws.handshake("127.0.0.1", "/v1/stream");
            ws.text(true);
            ws.write(net::buffer(json{{"type", "config"}, {"width", 64}, {"height", 48}}.dump()));
            beast::flat_buffer fb;
            ws.read(fb);
            const json err = json::parse(beast::buffers_to_string(fb.data()));
            EXPECT_EQ(err.value("type", ""), "error");
            EXPECT_NE(err.value("error", "").find("has no live stream"), std::string::npos) << err.dump();
            ws.close(websocket::close_code::normal);
        }
    }
    // One DiT takes one g.
    EXPECT_NE(
        expect_fail([] {
            parse_job_request(json{{"prompt", "x"}, {"sample_guide_scale", json::array({3.0, 4.0})}}, t2v_model(), {});
        }).find("A14B"),
        std::string::npos);
}

// The live stream with JPEG frames both ways (what the page sends by default), then switched to raw
// output mid-stream without a restart: 17 frames in (chunks 5 + 3·4), 13 back (one chunk in flight).
TEST(ServeUpload, LiveStreamJpegFramesBothWays) {
    namespace websocket = beast::websocket;
    ServerOptions o;
    o.port = 0;
    Server server(o, t2v_model());
    server.start();
    net::io_context ioc;
    websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())));
    ws.handshake("127.0.0.1", "/v1/stream");
    auto read_json = [&] {
        beast::flat_buffer b;
        ws.read(b);
        EXPECT_TRUE(ws.got_text());
        return json::parse(beast::buffers_to_string(b.data()));
    };
    const int W = 64, H = 48;
    ws.text(true);
    ws.write(net::buffer(json{{"type", "config"}, {"prompt", "a watercolor"}, {"width", W}, {"height", H}, {"steps", 2},
                              {"format", "jpeg"}, {"quality", 85}}
                             .dump()));
    json ready = read_json();
    ASSERT_EQ(ready.value("format", ""), "jpeg") << ready.dump();
    ws.write(net::buffer(json{{"type", "config"}, {"format", "png"}}.dump()));
    EXPECT_NE(read_json().value("error", "").find("use raw"), std::string::npos);

    int jpeg_back = 0, raw_back = 0;
    size_t jpeg_bytes = 0, bytes_in = 0;
    double diff = 0;
    std::vector<uint8_t> rgb(size_t(W * H * 3));
    auto drain_chunk = [&] {
        for (;;) {
            beast::flat_buffer b;
            ws.read(b);
            const auto* d = static_cast<const uint8_t*>(b.data().data());
            if (ws.got_text()) {
                const json j = json::parse(beast::buffers_to_string(b.data()));
                ASSERT_EQ(j.value("type", ""), "chunk") << j.dump();
                return;
            }
            if (looks_like_jpeg(d, b.size())) {
                const RgbImage im = decode_image(std::string_view(static_cast<const char*>(b.data().data()), b.size()), W * H);
                ASSERT_EQ(im.width, W);
                ASSERT_EQ(im.height, H);
                for (size_t i = 0; i < rgb.size(); ++i) diff += std::abs(int(im.rgb[i]) - int(rgb[i]));
                jpeg_bytes += b.size();
                ++jpeg_back;
            } else {
                ASSERT_EQ(b.size(), rgb.size());
                ++raw_back;
            }
        }
    };
    for (int f = 0; f < 17; ++f) {
        for (int i = 0; i < W * H; ++i) {
            rgb[size_t(i) * 3 + 0] = uint8_t((i % W) * 4 + f * 3);
            rgb[size_t(i) * 3 + 1] = uint8_t((i / W) * 5);
            rgb[size_t(i) * 3 + 2] = uint8_t(128 + f);
        }
        const std::vector<uint8_t> jpg = encode_jpeg(rgb.data(), W, H, 3, 90);
        bytes_in += jpg.size();
        ws.binary(true);
        ws.write(net::buffer(jpg));
        if (f == 4 || (f > 4 && (f - 4) % 4 == 0)) drain_chunk();
        if (f == 12) {  // raw frames back from the next chunk on; the stream goes on
            ws.text(true);
            ws.write(net::buffer(json{{"type", "config"}, {"format", "raw"}}.dump()));
            const json r = read_json();
            EXPECT_FALSE(r.value("restarted", true)) << r.dump();
        }
    }
    // A JPEG of the wrong size is an error message; the stream goes on.
    std::vector<uint8_t> small(size_t(32 * 32 * 3), 100);
    const std::vector<uint8_t> bad = encode_jpeg(small.data(), 32, 32, 3, 90);
    ws.binary(true);
    ws.write(net::buffer(bad));
    EXPECT_NE(read_json().value("error", "").find("does not match"), std::string::npos);
    EXPECT_EQ(jpeg_back, 5 + 4);  // chunks 2 and 3 (chunk 1 was in flight)
    EXPECT_EQ(raw_back, 4);       // chunk 4
    ASSERT_GT(jpeg_back, 0);
    EXPECT_GT(diff / (double(jpeg_back) * double(rgb.size())), 2.0);  // restyled, not an echo
    std::printf("JPEG stream %dx%d: %.0f bytes in, %.0f bytes out per frame (raw %d)\n", W, H, double(bytes_in) / 17,
                double(jpeg_bytes) / jpeg_back, W * H * 3);
    EXPECT_LT(jpeg_bytes / size_t(jpeg_back), rgb.size() / 2);
    ws.close(websocket::close_code::normal);
}
