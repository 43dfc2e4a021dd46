// The live page of `wanrt serve` in a real browser: Debian's headless Chromium with a fake camera
// read from a .y4m file opens `/?autostart=1`, streams its frames over /v1/stream to the in-process
// server (demo model) and draws what comes back. The test drives Chromium over the DevTools
// protocol (a Beast WebSocket client) and checks that frames come back (the count advances past
// 20), JPEG both ways (the page's default: fewer bytes than raw frames), that they differ from the
// camera's, and that a prompt change is applied without restarting the stream; the page's FPS,
// latency and glass-to-glass numbers are written to serve_page.json and a screenshot to
// serve_page.png in the working directory (the test artifacts).
// Chromium missing is a failure (scripts/setup.sh installs it), never a skip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "runtime/device.h"
#include "server/beast.h"
#include "server/server.h"
#include "test_util.h"

extern char** environ;

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using namespace wanrt;

namespace {

// A 4:2:0 y4m (what Chromium's fake capture reads): a moving gradient.
void write_camera(const std::string& path, int W, int H, int frames) {
    std::ofstream f(path, std::ios::binary);
    f << "YUV4MPEG2 W" << W << " H" << H << " F16:1 Ip A1:1 C420jpeg\n";
    for (int n = 0; n < frames; ++n) {
        f << "FRAME\n";
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) f.put(char((x * 3 + n * 5) & 255));
        for (int y = 0; y < H / 2; ++y)
            for (int x = 0; x < W / 2; ++x) f.put(char((y * 4) & 255));
        for (int y = 0; y < H / 2; ++y)
            for (int x = 0; x < W / 2; ++x) f.put(char((128 + n) & 255));
    }
}

std::string find_chromium() {
    for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
        if (fs::exists(p)) return p;
    return {};
}

std::string http_get(int port, const std::string& target) {
    net::io_context ioc;
    beast::tcp_stream s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    return res.body();
}

std::string base64_decode(const std::string& in) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    int acc = 0, bits = 0;
    for (char c : in) {
        const int v = val(c);
        if (v < 0) continue;
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 255);
        }
    }
    return out;
}

// A DevTools-protocol session on one page target.
struct DevTools {
    net::io_context ioc;
    websocket::stream<tcp::socket> ws{ioc};
    int next_id = 1;
    DevTools(int port, const std::string& path) {
        ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
        ws.read_message_max(64 << 20);
        ws.handshake("127.0.0.1:" + std::to_string(port), path);
    }
    json call(const std::string& method, const json& params) {
        const int id = next_id++;
        ws.text(true);
        ws.write(net::buffer(json{{"id", id}, {"method", method}, {"params", params}}.dump()));
        for (;;) {
            beast::flat_buffer b;
            ws.read(b);
            json m = json::parse(beast::buffers_to_string(b.data()), nullptr, false);
            if (m.is_object() && m.value("id", -1) == id) return m;
        }
    }
    json eval(const std::string& expr) {
        const json r = call("Runtime.evaluate", {{"expression", expr}, {"returnByValue", true}});
        return r["result"]["result"].value("value", json());
    }
};

}  // namespace

namespace {

// The page with a fake camera at `steps` stream steps: frames come back restyled, a prompt change is
// applied. The 2-step run writes serve_page.json and serve_page.png.
void page_round_trip(int steps) {
    const std::string chromium = find_chromium();
    ASSERT_FALSE(chromium.empty()) << "no Chromium at /usr/bin/chromium: install Debian's chromium (scripts/setup.sh)";
    const fs::path tmp = fs::temp_directory_path() / ("wanrt-page-" + serve::random_id(6));
    fs::create_directories(tmp);
    write_camera((tmp / "cam.y4m").string(), 64, 64, 40);

    std::shared_ptr<Backend> be = test::test_device();  // WANRT_TEST_DEVICE=cuda: the model on the GPU
    auto model = serve::ServeModel::load("", be ? be : make_backend("cpu", 2));
    serve::ServerOptions o;
    o.port = 0;
    serve::Server server(o, *model);
    server.start();
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) +
                            "/?autostart=1&size=64&steps=" + std::to_string(steps) +
                            "&prompt=a%20watercolor&autoprompt=an%20oil%20painting";

    const std::string log = (tmp / "chromium.log").string();
    std::vector<std::string> args = {chromium,
                                     "--headless=new",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--disable-dev-shm-usage",
                                     "--no-first-run",
                                     "--use-fake-device-for-media-stream",
                                     "--use-fake-ui-for-media-stream",
                                     "--use-file-for-fake-video-capture=" + (tmp / "cam.y4m").string(),
                                     "--remote-debugging-port=0",
                                     "--user-data-dir=" + (tmp / "profile").string(),
                                     "--window-size=900,700",
                                     url};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, chromium.c_str(), &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    struct Reap {  // ends the browser we started (by its pid) on every way out of the test
        pid_t pid;
        void stop() {
            if (pid <= 0) return;
            kill(pid, SIGTERM);
            int st = 0;
            waitpid(pid, &st, 0);
            pid = 0;
        }
        ~Reap() { stop(); }
    } reap{pid};

    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..." on stderr.
    int dt_port = 0;
    for (int i = 0; i < 600 && !dt_port; ++i) {
        std::ifstream f(log);
        std::string line;
        while (std::getline(f, line)) {
            const size_t at = line.find("ws://127.0.0.1:");
            if (at != std::string::npos) dt_port = std::stoi(line.substr(at + 15));
        }
        if (!dt_port) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_GT(dt_port, 0) << "Chromium did not start its DevTools server; see " << log;
    std::string page_ws;
    for (int i = 0; i < 100 && page_ws.empty(); ++i) {
        for (const json& t : json::parse(http_get(dt_port, "/json/list")))
            if (t.value("type", "") == "page" && t.value("url", "").find("autostart") != std::string::npos)
                page_ws = t.value("webSocketDebuggerUrl", "");
        if (page_ws.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_FALSE(page_ws.empty()) << "no page target";
    DevTools dt(dt_port, page_ws.substr(page_ws.find("/devtools/")));

    json stats;
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        const json v = dt.eval(
            "JSON.stringify(Object.assign({err: document.getElementById('err').textContent}, "
            "document.getElementById('stats').dataset))");
        stats = v.is_string() ? json::parse(v.get<std::string>(), nullptr, false) : json();
        const int out = stats.is_object() ? std::atoi(stats.value("framesOut", "0").c_str()) : 0;
        if (out >= 24 && stats.value("promptApplied", "") == "1" && std::atof(stats.value("g2gP50", "0").c_str()) > 0)
            break;
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > 180) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    ASSERT_TRUE(stats.is_object()) << stats.dump();
    EXPECT_EQ(stats.value("err", "?"), "") << stats.dump();
    EXPECT_GE(std::atoi(stats.value("framesOut", "0").c_str()), 24) << stats.dump();
    EXPECT_EQ(stats.value("promptApplied", ""), "1") << stats.dump();
    EXPECT_GT(std::atof(stats.value("latencyMs", "0").c_str()), 0.0) << stats.dump();
    auto num = [&](const char* k) { return std::atof(stats.value(k, "0").c_str()); };
    // Glass-to-glass starts at the camera's timestamp, before the frame was sent: at least the latency.
    EXPECT_GT(num("g2gP50"), 0.0) << stats.dump();
    EXPECT_GE(num("g2gP95"), num("g2gP50")) << stats.dump();
    EXPECT_GT(num("fps"), 0.0) << stats.dump();
    // JPEG both ways: the frames are smaller than raw RGBA in and RGB out.
    EXPECT_EQ(stats.value("format", ""), "jpeg") << stats.dump();
    EXPECT_GT(num("bytesInPerFrame"), 0.0);
    EXPECT_LT(num("bytesInPerFrame"), 64 * 64 * 4 / 2.0) << stats.dump();
    EXPECT_GT(num("bytesOutPerFrame"), 0.0);
    EXPECT_LT(num("bytesOutPerFrame"), 64 * 64 * 3 / 2.0) << stats.dump();
    // The restyled frame differs from the camera's (mean absolute difference of the two canvases).
    const json diff = dt.eval(R"((() => {
        const a = document.getElementById('out').getContext('2d').getImageData(0, 0, 64, 64).data;
        const b = document.getElementById('grab').getContext('2d').getImageData(0, 0, 64, 64).data;
        let d = 0; for (let i = 0; i < a.length; i += 4) d += Math.abs(a[i] - b[i]) + Math.abs(a[i+1] - b[i+1]) + Math.abs(a[i+2] - b[i+2]);
        return d / (64 * 64 * 3); })())");
    ASSERT_TRUE(diff.is_number()) << diff.dump();
    EXPECT_GT(diff.get<double>(), 2.0);
    std::printf("page: %s, mean |out - camera| %.1f levels\n", stats.dump().c_str(), diff.get<double>());
    const json artifact = {{"device", model->be->description()},
                           {"size", "64*64"},
                           {"steps", steps},
                           {"format", stats.value("format", "")},
                           {"frames_out", num("framesOut")},
                           {"fps", num("fps")},
                           {"glass_to_glass_ms_p50", num("g2gP50")},
                           {"glass_to_glass_ms_p95", num("g2gP95")},
                           {"network_model_ms_p50", num("latencyP50")},
                           {"chunk_ms", num("chunkMs")},
                           {"bytes_in_per_frame", num("bytesInPerFrame")},
                           {"bytes_out_per_frame", num("bytesOutPerFrame")},
                           {"capture_clock", stats.value("captureClock", "")},
                           {"mean_abs_diff_levels", diff.get<double>()}};
    if (steps == 2) std::ofstream("serve_page.json") << artifact.dump(2) << "\n";

    const json shot = dt.call("Page.captureScreenshot", {{"format", "png"}});
    const std::string png = base64_decode(shot["result"].value("data", ""));
    ASSERT_GT(png.size(), 8u);
    EXPECT_EQ(png.substr(1, 3), "PNG");
    if (steps == 2) std::ofstream("serve_page.png", std::ios::binary) << png;
    reap.stop();
    std::error_code ec;
    fs::remove_all(tmp, ec);
}

}  // namespace

TEST(ServePage, HeadlessChromiumWebcamRoundTrip) {
    page_round_trip(2);
}

TEST(ServePage, FourStepStreamIsNotStalledByFramesInFlight) {
    // 4 steps: the first frames come back after 17 were sent; the page kept at most 12 in flight and
    // waited forever.
    page_round_trip(4);
}
