// `wanrt serve` (src/server): the server runs in-process on an ephemeral loopback port with the
// built-in demo model, and is driven by real HTTP and WebSocket clients (Boost.Beast):
//   - the job round trip: submit → poll and Server-Sent Events → the result is a valid y4m of the
//     asked size and frame count;
//   - bad requests answered with the right code and a JSON {"error"} body: malformed JSON, unknown
//     option, bad values, oversize body, unknown path, wrong method, result before done;
//   - the token: missing (401), wrong (403), header and ?token= accepted; a non-loopback host
//     without a token refused at start;
//   - cancel: a queued job at once, a running one at its next step;
//   - a bounded load test: 32 concurrent clients against a queue of 4: every answer is 202 or 429
//     with a JSON body, nothing else, the server still answers afterwards, memory flat over 4 rounds;
//   - the live stream: 101 frames over the WebSocket (+ a prompt change mid-stream) → 97 restyled
//     frames back (chunks 5 + 24·4; the 2-step stream holds one chunk in flight), each RGB of the
//     configured size and different from the input.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "io/safetensors.h"
#include "runtime/device.h"
#include "server/beast.h"
#include "server/server.h"
#include "server/stream_pipeline.h"
#include "test_util.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using namespace wanrt;

namespace {

serve::ServeModel& demo_model() {
    // WANRT_TEST_DEVICE=cuda runs the model on the GPU (the server itself is the same).
    static std::unique_ptr<serve::ServeModel> m = [] {
        std::shared_ptr<Backend> be = test::test_device();
        return serve::ServeModel::load("", be ? be : make_backend("cpu", 2));
    }();
    return *m;
}

struct Reply {
    unsigned status = 0;
    std::string body;
    std::string content_type;
    json j() const { return json::parse(body, nullptr, false); }
};

// One request on a fresh connection.
Reply request(int port, http::verb verb, const std::string& target, const std::string& body = "",
              const std::string& token = "", const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    net::io_context ioc;
    beast::tcp_stream s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || verb == http::verb::post) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
    }
    http::write(s, req);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> p;
    p.body_limit(64 << 20);
    http::read(s, buf, p);
    Reply r;
    r.status = p.get().result_int();
    r.body = p.get().body();
    r.content_type = std::string(p.get()[http::field::content_type]);
    beast::error_code ec;
    s.socket().shutdown(tcp::socket::shutdown_both, ec);
    return r;
}

// An error reply: the code, a JSON object with one "error" line.
void expect_error(const Reply& r, unsigned status, const std::string& needle) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    const json j = r.j();
    ASSERT_TRUE(j.is_object() && j.contains("error") && j["error"].is_string()) << r.body;
    const std::string e = j["error"];
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_NE(e.find(needle), std::string::npos) << e;
}

struct TestServer {
    std::unique_ptr<serve::Server> server;
    int port = 0;
    explicit TestServer(serve::ServerOptions o = {}) {
        o.port = 0;
        server = std::make_unique<serve::Server>(o, demo_model());
        server->start();
        port = server->port();
    }
};

json wait_done(int port, const std::string& id, double timeout_s = 300) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        const Reply r = request(port, http::verb::get, "/v1/jobs/" + id);
        EXPECT_EQ(r.status, 200u) << r.body;
        const json j = r.j();
        const std::string st = j.value("status", "");
        if (st == "done" || st == "failed" || st == "cancelled") return j;
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) return j;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

const char* kSmallJob =
    R"({"prompt": "a red fox in the snow", "size": "64*48", "frame_num": 5, "sample_steps": 2, "seed": 7})";

}  // namespace

TEST(Serve, JobRoundTripY4m) {
    TestServer ts;
    const Reply sub = request(ts.port, http::verb::post, "/v1/generate", kSmallJob);
    ASSERT_EQ(sub.status, 202u) << sub.body;
    const std::string id = sub.j().value("id", "");
    ASSERT_EQ(id.size(), 32u);
    // Server-Sent Events until the end: progress events, then "event: done".
    const Reply ev = request(ts.port, http::verb::get, "/v1/jobs/" + id + "/events");
    EXPECT_EQ(ev.status, 200u);
    EXPECT_EQ(ev.content_type, "text/event-stream");
    EXPECT_NE(ev.body.find("event: done\ndata: {"), std::string::npos) << ev.body;
    const json j = wait_done(ts.port, id);
    ASSERT_EQ(j.value("status", ""), "done") << j.dump();
    EXPECT_EQ(j.value("step", 0), 2);
    EXPECT_DOUBLE_EQ(j.value("progress", 0.0), 1.0);
    const Reply res = request(ts.port, http::verb::get, "/v1/jobs/" + id + "/result");
    ASSERT_EQ(res.status, 200u) << res.body.substr(0, 200);
    EXPECT_EQ(res.content_type, "video/x-yuv4mpeg");
    const std::string header = "YUV4MPEG2 W64 H48 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n";
    ASSERT_EQ(res.body.substr(0, header.size()), header);
    const size_t frame = 6 + 64 * 48 * 3;  // "FRAME\n" + 4:4:4 planes
    EXPECT_EQ(res.body.size(), header.size() + 5 * frame);
    for (size_t f = 0; f < 5; ++f) EXPECT_EQ(res.body.substr(header.size() + f * frame, 6), "FRAME\n");
    // The same seed gives the same video (the model is kept loaded between jobs).
    const Reply sub2 = request(ts.port, http::verb::post, "/v1/generate", kSmallJob);
    const std::string id2 = sub2.j().value("id", "");
    ASSERT_EQ(wait_done(ts.port, id2).value("status", ""), "done");
    EXPECT_EQ(request(ts.port, http::verb::get, "/v1/jobs/" + id2 + "/result").body, res.body);
    // DELETE of a finished job forgets it and its file.
    EXPECT_EQ(request(ts.port, http::verb::delete_, "/v1/jobs/" + id).status, 200u);
    expect_error(request(ts.port, http::verb::get, "/v1/jobs/" + id), 404, "no such resource");
}

TEST(Serve, BadRequestsAnsweredWithJson) {
    serve::ServerOptions o;
    o.max_body = 4096;
    o.max_upload = 4096;  // POST /v1/generate's own limit
    TestServer ts(o);
    const int p = ts.port;
    expect_error(request(p, http::verb::post, "/v1/generate", "{\"prompt\": "), 400, "not valid JSON");
    expect_error(request(p, http::verb::post, "/v1/generate", "[1, 2]"), 400, "JSON object");
    expect_error(request(p, http::verb::post, "/v1/generate", R"({"prompt": "x", "sample_stepz": 3})"), 400,
                 "unknown option \"sample_stepz\"");
    expect_error(request(p, http::verb::post, "/v1/generate", R"({"size": "64*64"})"), 400, "\"prompt\" is required");
    expect_error(request(p, http::verb::post, "/v1/generate", R"({"prompt": "x", "size": "65*64"})"), 400,
                 "multiples of 16");
    expect_error(request(p, http::verb::post, "/v1/generate", R"({"prompt": "x", "frame_num": 6})"), 400, "[t2v]");
    expect_error(request(p, http::verb::post, "/v1/generate", R"({"prompt": "x", "sample_steps": "many"})"), 400,
                 "must be an integer");
    expect_error(request(p, http::verb::post, "/v1/generate", R"({"prompt": "x", "size": "8192*8192"})"), 400,
                 "over this server's limit");
    expect_error(request(p, http::verb::post, "/v1/generate", "{\"prompt\": \"" + std::string(8000, 'a') + "\"}"), 413,
                 "over this server's limit of 4096 bytes");
    expect_error(request(p, http::verb::get, "/v1/generate"), 405, "use POST");
    expect_error(request(p, http::verb::get, "/v1/nothing"), 404, "no such resource");
    expect_error(request(p, http::verb::get, "/v1/jobs/../../etc/passwd"), 404, "no such resource");
    expect_error(request(p, http::verb::get, "/v1/jobs/0123456789abcdef0123456789abcdef/result"), 404,
                 "no such resource");
    expect_error(request(p, http::verb::get, "/v1/stream"), 426, "WebSocket");
    // A result asked for before the job is done: 409.
    const Reply sub = request(p, http::verb::post, "/v1/generate",
                              R"({"prompt": "x", "size": "64*64", "frame_num": 5, "sample_steps": 40})");
    ASSERT_EQ(sub.status, 202u);
    const std::string id = sub.j()["id"];
    expect_error(request(p, http::verb::get, "/v1/jobs/" + id + "/result"), 409, "until it is done");
    EXPECT_EQ(request(p, http::verb::delete_, "/v1/jobs/" + id).status, 200u);
    // The live page is served.
    const Reply page = request(p, http::verb::get, "/");
    EXPECT_EQ(page.status, 200u);
    EXPECT_NE(page.body.find("getUserMedia"), std::string::npos);
    EXPECT_NE(page.body.find("/v1/stream"), std::string::npos);
}

TEST(Serve, TokenRequiredOnEveryRequest) {
    serve::ServerOptions o;
    o.token = "s3cret-token";
    TestServer ts(o);
    expect_error(request(ts.port, http::verb::get, "/v1/health"), 401, "needs a token");
    expect_error(request(ts.port, http::verb::get, "/"), 401, "needs a token");
    expect_error(request(ts.port, http::verb::post, "/v1/generate", kSmallJob), 401, "needs a token");
    expect_error(request(ts.port, http::verb::get, "/v1/health", "", "s3cret-tokex"), 403, "wrong token");
    EXPECT_EQ(request(ts.port, http::verb::get, "/v1/health", "", "s3cret-token").status, 200u);
    EXPECT_EQ(request(ts.port, http::verb::get, "/v1/health?token=s3cret-token").status, 200u);
    // Binding beyond loopback without a token is refused before anything listens.
    serve::ServerOptions open;
    open.host = "0.0.0.0";
    open.port = 0;
    try {
        serve::Server s(open, demo_model());
        FAIL() << "a server on 0.0.0.0 without a token started";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--token"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(serve::is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(serve::is_loopback_host("::1"));
    EXPECT_FALSE(serve::is_loopback_host("0.0.0.0"));
    EXPECT_FALSE(serve::is_loopback_host("192.168.1.2"));
}

TEST(Serve, CancelQueuedAndRunning) {
    TestServer ts;
    const std::string slow = R"({"prompt": "x", "size": "64*64", "frame_num": 5, "sample_steps": 100})";
    const std::string a = request(ts.port, http::verb::post, "/v1/generate", slow).j()["id"];
    const std::string b = request(ts.port, http::verb::post, "/v1/generate", slow).j()["id"];
    // b waits behind a: cancelled at once.
    const Reply cb = request(ts.port, http::verb::delete_, "/v1/jobs/" + b);
    EXPECT_EQ(cb.status, 200u);
    EXPECT_EQ(cb.j().value("status", ""), "cancelled") << cb.body;
    // a: cancelled at its next step once running.
    for (int i = 0; i < 600; ++i) {
        const json j = request(ts.port, http::verb::get, "/v1/jobs/" + a).j();
        if (j.value("step", 0) >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(request(ts.port, http::verb::delete_, "/v1/jobs/" + a).status, 200u);
    const json j = wait_done(ts.port, a, 60);
    EXPECT_EQ(j.value("status", ""), "cancelled") << j.dump();
    EXPECT_LT(j.value("step", 100), 100);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
    expect_error(request(ts.port, http::verb::get, "/v1/jobs/" + a + "/result"), 409, "no result");
}

TEST(Serve, LoadTestConcurrentClientsServedOrRefused) {
    serve::ServerOptions o;
    o.max_queue = 4;
    TestServer ts(o);
    constexpr int kClients = 32, kRounds = 4;
    int64_t held_after_first = 0;  // KiB (held_memory_kb: live heap bytes under ASan)
    for (int round = 0; round < kRounds; ++round) {
        std::vector<std::future<Reply>> replies;
        for (int i = 0; i < kClients; ++i)
            replies.push_back(std::async(std::launch::async, [&, i] {
                if (i % 4 == 3) return request(ts.port, http::verb::get, "/v1/health");
                return request(ts.port, http::verb::post, "/v1/generate",
                               R"({"prompt": "x", "size": "64*64", "frame_num": 5, "sample_steps": 50})");
            }));
        int accepted = 0, refused = 0, health = 0;
        std::vector<std::string> ids;
        for (auto& f : replies) {
            const Reply r = f.get();
            const json j = r.j();
            ASSERT_TRUE(j.is_object()) << r.body;
            if (r.status == 202) {
                ++accepted;
                ids.push_back(j["id"]);
            } else if (r.status == 429) {
                ++refused;
                EXPECT_NE(j.value("error", "").find("queue is full"), std::string::npos);
            } else {
                EXPECT_EQ(r.status, 200u) << r.body;
                ++health;
            }
        }
        EXPECT_EQ(accepted + refused + health, kClients);
        EXPECT_EQ(health, kClients / 4);
        EXPECT_GE(accepted, 4);          // the queue's 4 (+ the one the worker took)
        EXPECT_LE(accepted, 4 + 1 + 2);  // the worker may take a job or two while others arrive
        EXPECT_GT(refused, 0);
        for (const std::string& id : ids) {
            EXPECT_EQ(request(ts.port, http::verb::delete_, "/v1/jobs/" + id).status, 200u);
            wait_done(ts.port, id, 60);
        }
        EXPECT_EQ(request(ts.port, http::verb::get, "/v1/health").status, 200u);
        if (round == 0) held_after_first = test::held_memory_kb();
    }
    // Memory stays flat across rounds (sessions, jobs and their buffers are released).
    const double grew_mb = double(test::held_memory_kb() - held_after_first) / 1024.0;
    std::printf("memory after round 1: %.1f MB, grew %.1f MB over %d more rounds\n", double(held_after_first) / 1024.0,
                grew_mb, kRounds - 1);
    EXPECT_LT(grew_mb, 32.0);
}

TEST(Serve, LiveStreamOverWebSocket) {
    TestServer ts;
    net::io_context ioc;
    websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(ts.port)));
    ws.handshake("127.0.0.1", "/v1/stream");
    {  // a second stream is refused (503) while this one runs
        websocket::stream<tcp::socket> ws2(ioc);
        ws2.next_layer().connect(ws.next_layer().remote_endpoint());
        try {
            ws2.handshake("127.0.0.1", "/v1/stream");
            ADD_FAILURE() << "a second stream was accepted";
        } catch (const beast::system_error& e) {
            EXPECT_EQ(e.code(), websocket::error::upgrade_declined) << e.code().message();
        }
        // The same upgrade as a plain request, to read the answer.
        expect_error(request(ts.port, http::verb::get, "/v1/stream", "", "",
                             {{"Upgrade", "websocket"},
                              {"Connection", "Upgrade"},
                              {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                              {"Sec-WebSocket-Version", "13"}}),
                     503, "already running");
    }
    const int W = 64, H = 48;
    auto read_json = [&] {
        beast::flat_buffer b;
        ws.read(b);
        EXPECT_TRUE(ws.got_text());
        return json::parse(beast::buffers_to_string(b.data()));
    };
    ws.text(true);
    ws.write(net::buffer(
        json{{"type", "config"}, {"prompt", "a watercolor"}, {"width", W}, {"height", H}, {"steps", 2}}.dump()));
    json ready = read_json();
    ASSERT_EQ(ready.value("type", ""), "ready") << ready.dump();
    EXPECT_TRUE(ready.value("restarted", false));
    // A bad message is answered with an error and the stream goes on.
    ws.write(net::buffer(json{{"type", "config"}, {"steps", 9}}.dump()));
    EXPECT_EQ(read_json().value("type", ""), "error");

    int frames_back = 0, stats = 0;
    double chunk_ms = 0, server_ms = 0;
    std::vector<uint8_t> frame(size_t(W * H * 3));
    bool differs = false;
    // Reads what one chunk produced: frames (binary) until its stats message (text).
    auto drain_chunk = [&] {
        for (;;) {
            beast::flat_buffer b;
            ws.read(b);
            if (ws.got_text()) {
                const json j = json::parse(beast::buffers_to_string(b.data()));
                EXPECT_EQ(j.value("type", ""), "chunk") << j.dump();
                ++stats;
                chunk_ms += j.value("chunk_ms", 0.0);
                server_ms += j.value("server_ms", 0.0);
                return;
            }
            ASSERT_EQ(b.size(), frame.size());
            const uint8_t* px = static_cast<const uint8_t*>(b.data().data());
            for (size_t i = 0; i < frame.size() && !differs; ++i) differs = px[i] != frame[i];
            ++frames_back;
        }
    };
    for (int f = 0; f < 101; ++f) {
        for (int i = 0; i < W * H; ++i) {  // a moving gradient
            frame[size_t(i) * 3 + 0] = uint8_t((i % W) * 4 + f * 3);
            frame[size_t(i) * 3 + 1] = uint8_t((i / W) * 5);
            frame[size_t(i) * 3 + 2] = uint8_t(128 + f);
        }
        ws.binary(true);
        ws.write(net::buffer(frame));
        if (f == 4 || (f > 4 && (f - 4) % 4 == 0)) drain_chunk();  // a chunk completes at frames 5, 9, 13, ...
        if (f == 12) {  // a prompt change between chunks: the text is re-encoded, the stream goes on
            ws.text(true);
            ws.write(net::buffer(json{{"type", "config"}, {"prompt", "an oil painting"}}.dump()));
            const json r = read_json();
            EXPECT_EQ(r.value("type", ""), "ready");
            EXPECT_FALSE(r.value("restarted", true));
        }
    }
    EXPECT_EQ(stats, 25);
    EXPECT_EQ(frames_back, 5 + 23 * 4);  // 25 chunks in, the last one still in flight (2 steps)
    EXPECT_TRUE(differs);
    // The server's own cost per chunk: its handling (frame conversion, queueing) over the model's.
    std::printf("stream %dx%d on %s: model %.2f ms/chunk, server %.2f ms/chunk (overhead %.2f ms)\n", W, H,
                demo_model().be->description().c_str(), chunk_ms / stats, server_ms / stats,
                (server_ms - chunk_ms) / stats);
    ws.close(websocket::close_code::normal);
}

// ---- the stream pipeline (stream_pipeline.h) and back-pressure; TI2V jobs

namespace {

// A moving gradient, RGB W × H.
std::vector<uint8_t> gradient_frame(int W, int H, int f) {
    std::vector<uint8_t> frame(size_t(W * H * 3));
    for (int i = 0; i < W * H; ++i) {
        frame[size_t(i) * 3 + 0] = uint8_t((i % W) * 4 + f * 3);
        frame[size_t(i) * 3 + 1] = uint8_t((i / W) * 5 + f);
        frame[size_t(i) * 3 + 2] = uint8_t(128 + f);
    }
    return frame;
}

}  // namespace

TEST(Serve, StreamPipelineMatchesSerialSession) {
    // The pipelined stream (decode on the pool, convert + encode on the pool, the model between) gives
    // the serial path's frames byte for byte, in order, with JPEG frames in and raw frames out, a prompt
    // change and a bad frame in the middle.
    const int W = 64, H = 48, n = 21;
    serve::StreamConfig cfg;
    cfg.width = W;
    cfg.height = H;
    cfg.steps = 2;
    cfg.format = "raw";
    std::vector<std::vector<uint8_t>> jpegs;
    for (int f = 0; f < n; ++f) {
        const std::vector<uint8_t> rgb = gradient_frame(W, H, f);
        jpegs.push_back(serve::encode_jpeg(rgb.data(), W, H, 3, 90));
    }
    const json prompt_change{{"type", "config"}, {"prompt", "an oil painting"}};

    std::vector<std::vector<uint8_t>> serial;
    {
        serve::StreamSession s(demo_model());
        s.configure(cfg);
        for (int f = 0; f < n; ++f) {
            if (f == 9) s.configure(serve::parse_stream_config(prompt_change, s.config()));
            for (auto& o : s.push_frame(jpegs[size_t(f)].data(), jpegs[size_t(f)].size())) serial.push_back(o);
        }
    }
    ASSERT_EQ(serial.size(), size_t(5 + 3 * 4));  // 5 chunks in, one held by the 2-step stream

    std::mutex mu;
    std::vector<serve::StreamOutput> outs;
    {
        serve::StreamPipeline p(demo_model(), 3, [&](serve::StreamOutput o) {
            std::lock_guard<std::mutex> lk(mu);
            outs.push_back(std::move(o));
        });
        const auto now = serve::StreamClock::now();
        json c{{"type", "config"}, {"prompt", cfg.prompt}, {"width", W}, {"height", H}, {"steps", 2}, {"format", "raw"}};
        p.push_text(c.dump(), now);
        for (int f = 0; f < n; ++f) {
            if (f == 9) p.push_text(prompt_change.dump(), now);
            if (f == 14) p.push_frame({0xff, 0xd8, 0xff, 0x00}, now);  // a broken JPEG: an error in its place
            p.push_frame(jpegs[size_t(f)], now);
        }
        for (int i = 0; i < 3000; ++i) {  // until the 5 chunks are answered (the pipeline runs on)
            {
                std::lock_guard<std::mutex> lk(mu);
                int chunks = 0;
                for (const auto& o : outs) chunks += o.message.value("type", "") == "chunk";
                if (chunks == 5) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    std::vector<std::string> kinds;
    std::vector<std::vector<uint8_t>> piped;
    int64_t settled = 0;
    for (const auto& o : outs) {
        kinds.push_back(o.message.value("type", ""));
        settled += o.frames_done;
        for (const auto& f : o.frames) piped.push_back(f);
        if (kinds.back() == "chunk") {
            EXPECT_TRUE(o.message.contains("parts")) << o.message.dump();
            EXPECT_EQ(size_t(o.message.value("frames", -1)), o.frames.size());
        }
    }
    // ready, 2 chunks, ready (prompt), 1 chunk, error (the broken frame, after frame 14's chunk gathers), 2 chunks
    const std::vector<std::string> want = {"ready", "chunk", "chunk", "ready", "chunk", "error", "chunk", "chunk"};
    EXPECT_EQ(kinds, want);
    EXPECT_EQ(settled, n + 1);  // every frame pushed is settled once
    ASSERT_EQ(piped.size(), serial.size());
    for (size_t i = 0; i < piped.size(); ++i) EXPECT_EQ(piped[i], serial[i]) << "frame " << i;
}

TEST(Serve, StreamPipelineRawInJpegOutMatchesSerialSession) {
    // The other formats both ways: raw RGB and RGBA frames in (no decoder: the bytes go to the device as
    // they came, RGBA less its alpha), JPEG frames out encoded from the device's u8 download. Each must
    // be the serial path's frame (host conversions, f32 across the link) encoded at the same quality.
    const int W = 48, H = 32, n = 13, quality = 85;
    serve::StreamConfig cfg;
    cfg.width = W;
    cfg.height = H;
    cfg.steps = 2;
    cfg.format = "raw";
    std::vector<std::vector<uint8_t>> in;
    for (int f = 0; f < n; ++f) {
        std::vector<uint8_t> rgb = gradient_frame(W, H, 3 * f + 1);
        if (f % 2 == 1) {  // RGBA, alpha varying (it must be dropped, not blended)
            std::vector<uint8_t> rgba(size_t(W * H * 4));
            for (int i = 0; i < W * H; ++i) {
                for (int ch = 0; ch < 3; ++ch) rgba[size_t(i) * 4 + size_t(ch)] = rgb[size_t(i) * 3 + size_t(ch)];
                rgba[size_t(i) * 4 + 3] = uint8_t(i * 7);
            }
            rgb = std::move(rgba);
        }
        in.push_back(std::move(rgb));
    }
    std::vector<std::vector<uint8_t>> serial;
    {
        serve::StreamSession s(demo_model());
        s.configure(cfg);
        for (int f = 0; f < n; ++f)
            for (auto& o : s.push_frame(in[size_t(f)].data(), in[size_t(f)].size())) serial.push_back(o);
    }
    ASSERT_EQ(serial.size(), size_t(5 + 4));  // 3 chunks in, one held by the 2-step stream

    std::mutex mu;
    std::vector<serve::StreamOutput> outs;
    {
        serve::StreamPipeline p(demo_model(), 2, [&](serve::StreamOutput o) {
            std::lock_guard<std::mutex> lk(mu);
            outs.push_back(std::move(o));
        });
        const auto now = serve::StreamClock::now();
        json c{{"type", "config"}, {"prompt", cfg.prompt}, {"width", W},     {"height", H},
               {"steps", 2},       {"format", "jpeg"},    {"quality", quality}};
        p.push_text(c.dump(), now);
        for (int f = 0; f < n; ++f) p.push_frame(in[size_t(f)], now);
        for (int i = 0; i < 3000; ++i) {
            {
                std::lock_guard<std::mutex> lk(mu);
                int chunks = 0;
                for (const auto& o : outs) chunks += o.message.value("type", "") == "chunk";
                if (chunks == 3) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    std::vector<std::vector<uint8_t>> piped;
    for (const auto& o : outs) {
        EXPECT_NE(o.message.value("type", ""), "error") << o.message.dump();
        for (const auto& f : o.frames) piped.push_back(f);
    }
    ASSERT_EQ(piped.size(), serial.size());
    for (size_t i = 0; i < piped.size(); ++i)
        EXPECT_EQ(piped[i], serve::encode_jpeg(serial[i].data(), W, H, 3, quality)) << "frame " << i;
}

TEST(Serve, StreamBackPressureBoundsFramesInFlight) {
    // A client that sends 33 frames before reading anything: the server reads at most
    // max_stream_frames_in_flight frames ahead of its answers (reported as "in_flight" with each
    // chunk), the rest wait in TCP; every chunk is still answered, in order.
    serve::ServerOptions o;
    o.max_stream_frames_in_flight = 6;
    TestServer ts(o);
    net::io_context ioc;
    websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(ts.port)));
    ws.handshake("127.0.0.1", "/v1/stream");
    const int W = 64, H = 48;
    ws.text(true);
    ws.write(net::buffer(json{{"type", "config"}, {"width", W}, {"height", H}, {"steps", 2}, {"format", "jpeg"}}.dump()));
    ws.binary(true);
    for (int f = 0; f < 33; ++f) ws.write(net::buffer(gradient_frame(W, H, f)));  // raw in, 9 KB each: all buffered
    int chunks = 0, frames = 0, max_in_flight = 0;
    while (chunks < 8) {
        beast::flat_buffer b;
        ws.read(b);
        if (!ws.got_text()) {
            const auto* px = static_cast<const uint8_t*>(b.data().data());
            EXPECT_TRUE(serve::looks_like_jpeg(px, b.size()));
            ++frames;
            continue;
        }
        const json j = json::parse(beast::buffers_to_string(b.data()));
        if (j.value("type", "") == "ready") continue;
        ASSERT_EQ(j.value("type", ""), "chunk") << j.dump();
        EXPECT_EQ(j.value("chunks", 0), chunks + 1);  // in order
        max_in_flight = std::max(max_in_flight, j.value("in_flight", -1));
        ++chunks;
    }
    EXPECT_EQ(frames, 5 + 6 * 4);
    EXPECT_GE(max_in_flight, 4);
    EXPECT_LE(max_in_flight, 6);
    ws.close(websocket::close_code::normal);
}

TEST(Serve, Ti2vJobWritesItsSampleFps) {
    // Wan2.2 TI2V-5B makes 24 fps video (sample_fps, as `wanrt generate` writes it); the server wrote 16.
    std::shared_ptr<Backend> be = test::test_device();
    auto model = serve::ServeModel::load("", be ? be : make_backend("cpu", 2), {}, "ti2v-5B");
    ASSERT_TRUE(model->ti2v());
    serve::ServerOptions o;
    o.port = 0;
    serve::Server server(o, *model);
    server.start();
    const Reply sub = request(server.port(), http::verb::post, "/v1/generate",
                              R"({"prompt": "a fox", "size": "64*64", "frame_num": 5, "sample_steps": 2, "seed": 3})");
    ASSERT_EQ(sub.status, 202u) << sub.body;
    const std::string id = sub.j().value("id", "");
    const json done = wait_done(server.port(), id);
    ASSERT_EQ(done.value("status", ""), "done") << done.dump();
    const Reply res = request(server.port(), http::verb::get, "/v1/jobs/" + id + "/result");
    const std::string header = "YUV4MPEG2 W64 H64 F24:1 ";
    EXPECT_EQ(res.body.substr(0, header.size()), header);
    // The live stream runs the Wan2.1 text-to-video models only: refused with a one-line error.
    net::io_context ioc;
    websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())));
    ws.handshake("127.0.0.1", "/v1/stream");
    ws.text(true);
    ws.write(net::buffer(json{{"type", "config"}, {"width", 64}, {"height", 64}}.dump()));
    beast::flat_buffer b;
    ws.read(b);
    const json err = json::parse(beast::buffers_to_string(b.data()));
    EXPECT_EQ(err.value("type", ""), "error");
    EXPECT_NE(err.value("error", "").find("has no live stream"), std::string::npos) << err.dump();
    ws.close(websocket::close_code::normal);
    server.stop();
}

namespace {

// The serial stream's output frames (raw RGB) for 13 gradient frames at 64×48, 2 steps (2 chunks out).
std::vector<std::vector<uint8_t>> serial_stream(serve::ServeModel& m) {
    const int W = 64, H = 48;
    serve::StreamConfig cfg;
    cfg.width = W;
    cfg.height = H;
    cfg.steps = 2;
    cfg.format = "raw";
    serve::StreamSession s(m);
    s.configure(cfg);
    std::vector<std::vector<uint8_t>> out;
    for (int f = 0; f < 13; ++f) {
        const std::vector<uint8_t> jpeg = serve::encode_jpeg(gradient_frame(W, H, f).data(), W, H, 3, 90);
        for (auto& o : s.push_frame(jpeg.data(), jpeg.size())) out.push_back(o);
    }
    return out;
}

// The demo DiT's tensors under `prefix` as a safetensors file; negate: head.head.weight's sign flipped.
void write_generator(const std::string& path, const TensorSource& dit, const std::string& prefix, bool negate) {
    std::vector<std::vector<uint8_t>> keep;
    std::vector<TensorToWrite> tw;
    for (const std::string& n : dit.names()) {
        const StoredTensor* t = dit.find(n);
        const void* data = t->data;
        if (negate && n == "head.head.weight") {
            const size_t es = dtype_size(t->dtype), bytes = t->nbytes;
            keep.emplace_back(static_cast<const uint8_t*>(t->data), static_cast<const uint8_t*>(t->data) + bytes);
            for (size_t i = es - 1; i < bytes; i += es) keep.back()[i] ^= 0x80;  // little-endian sign bit
            data = keep.back().data();
        }
        tw.push_back({prefix + n, t->dtype, t->shape, data});
    }
    write_safetensors(path, tw);
}

}  // namespace

TEST(Serve, GeneratorGivesTheLiveStreamItsOwnDit) {
    // --generator: the stream runs the file's DiT (found under its CausVid / StreamDiffusionV2 prefix),
    // jobs keep the folder's. The demo's own DiT as a generator streams the same frames; a changed one
    // streams others.
    test::TempDir dir;
    serve::ServeModel& base = demo_model();
    const auto dit = base.parts.dit_weights();
    const std::string same = dir / "same.safetensors", changed = dir / "changed.safetensors";
    write_generator(same, *dit, "generator.model.", false);
    write_generator(changed, *dit, "generator_ema.model.", true);
    const std::vector<std::vector<uint8_t>> want = serial_stream(base);
    ASSERT_EQ(want.size(), size_t(5 + 4));
    EXPECT_EQ(base.generator, "");

    auto m1 = serve::ServeModel::load("", base.be, {}, "", same);
    EXPECT_EQ(m1->generator, same);
    ASSERT_TRUE(m1->causal);
    EXPECT_NE(&m1->causal->base(), m1->dit.get()) << "the stream must run its own DiT";
    EXPECT_EQ(serial_stream(*m1), want);

    auto m2 = serve::ServeModel::load("", base.be, {}, "", changed);
    EXPECT_NE(serial_stream(*m2), want) << "the generator's weights were not used";

    // Bad generators and models without a stream: one line, before any weights load.
    auto load_error = [&](const std::string& task, const std::string& gen) -> std::string {
        try {
            serve::ServeModel::load("", base.be, {}, task, gen);
        } catch (const Error& e) {
            const std::string m = e.what();
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
            return m;
        }
        ADD_FAILURE() << "no error for --generator " << gen;
        return {};
    };
    EXPECT_NE(load_error("", dir / "none.pt").find("[serve] --generator " + dir / "none.pt" + " is not a file"),
              std::string::npos);
    const std::string nodit = dir / "nodit.safetensors";
    const float x = 1;
    write_safetensors(nodit, {{"something.weight", DType::F32, Shape{1}, &x}});
    EXPECT_NE(load_error("", nodit).find("holds no DiT"), std::string::npos);
    EXPECT_NE(load_error("i2v-14B", same).find("has no live stream"), std::string::npos);
}
