// wanrt bench serve: what `wanrt serve` adds to the streaming loop. The server runs in-process on an
// ephemeral loopback port; a WebSocket client (Boost.Beast, as a browser would) sends each chunk's
// frames (5, then 4) and waits for its answer. Per chunk it times
//   model   the server's StreamV2V time (frames to the device, push, sync: what bench causal --v2v times
//           as push, plus the RGB→tensor upload),
//   server  everything the server does for the chunk (+ the restyled frames back to RGB, queueing),
//   client  the round trip seen by the client (last frame sent → stats message read: + the WebSocket
//           transfers both ways),
// and prints the medians after warm-up, the overhead (client − model) and the end-to-end FPS.
#include <chrono>
#include <cstdio>
#include <vector>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "runtime/device.h"
#include "server/beast.h"
#include "server/server.h"

namespace wanrt::cli {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

struct Opts {
    RunOpts run;
    std::string ckpt_dir;
    int64_t width = 832, height = 480;
    int steps = 2, chunks = 20;
};

void run(const Opts& o) {
    o.run.validate();
    WANRT_CHECK(o.chunks >= 1, "bench", "--chunks must be at least 1");
    auto be = make_backend(o.run.device, o.run.threads);
    auto model = serve::ServeModel::load(o.ckpt_dir, be);
    serve::ServerOptions so;
    so.port = 0;
    serve::Server server(so, *model);
    server.start();

    net::io_context ioc;
    websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())));
    ws.next_layer().set_option(tcp::no_delay(true));  // as browsers do
    ws.read_message_max(256 << 20);
    ws.handshake("127.0.0.1", "/v1/stream");
    ws.text(true);
    ws.write(net::buffer(json{
        {"type", "config"},
        {"prompt", "a watercolor painting"},
        {"width", o.width},
        {"height", o.height},
        {"steps", o.steps}}.dump()));
    beast::flat_buffer b;
    ws.read(b);
    const json ready = json::parse(beast::buffers_to_string(b.data()));
    WANRT_CHECK(ready.value("type", "") == "ready", "bench", "the server refused the stream: ", ready.dump());

    std::vector<uint8_t> frame(size_t(o.width * o.height * 3));
    const int warm = o.run.warmup + o.steps;  // the batch fills for steps − 1 chunks
    BenchRow model_row{"model (push)", {}, 0}, server_row{"server", {}, 0}, client_row{"round trip", {}, 0};
    int64_t frames_out = 0, frame_no = 0;
    auto t_start = std::chrono::steady_clock::now();
    for (int c = 0; c < warm + o.chunks; ++c) {
        if (c == warm) {
            t_start = std::chrono::steady_clock::now();
            frames_out = 0;
        }
        const int n = c == 0 ? 5 : 4;
        ws.binary(true);
        std::chrono::steady_clock::time_point t0;
        for (int f = 0; f < n; ++f, ++frame_no) {
            for (size_t i = 0; i < frame.size(); ++i) frame[i] = uint8_t(i * 7 + size_t(frame_no) * 13);
            t0 = std::chrono::steady_clock::now();
            ws.write(net::buffer(frame));
        }
        for (;;) {
            b.clear();
            ws.read(b);
            if (!ws.got_text()) {
                ++frames_out;
                continue;
            }
            const json m = json::parse(beast::buffers_to_string(b.data()));
            WANRT_CHECK(m.value("type", "") == "chunk", "bench", "the stream failed: ", m.dump());
            if (c >= warm) {
                model_row.ms.push_back(m.value("chunk_ms", 0.0));
                server_row.ms.push_back(m.value("server_ms", 0.0));
                client_row.ms.push_back(
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            break;
        }
    }
    const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    ws.close(websocket::close_code::normal);
    server.stop();

    BenchRow overhead{"overhead", {}, 0};
    for (size_t i = 0; i < client_row.ms.size(); ++i) overhead.ms.push_back(client_row.ms[i] - model_row.ms[i]);
    BenchReport r;
    r.bench = "serve";
    r.device = be->description();
    r.config = {{"model", model->parts.name},
                {"size", std::to_string(o.width) + "x" + std::to_string(o.height)},
                {"steps", std::to_string(o.steps)},
                {"chunks", std::to_string(o.chunks)},
                {"fps", std::to_string(double(frames_out) / total_s)}};
    r.rows = {model_row, server_row, client_row, overhead};
    r.print();
    std::printf("end to end: %lld frames back in %.2f s = %.1f FPS\n", (long long)frames_out, total_s,
                double(frames_out) / total_s);
    r.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand("serve", "Time what wanrt serve adds per stream chunk over the WebSocket");
    c->add_option("--ckpt_dir", o->ckpt_dir, "T2V model folder (default: the built-in demo model)");
    c->add_option("--width", o->width, "Frame width (multiple of 16)")->capture_default_str();
    c->add_option("--height", o->height, "Frame height (multiple of 16)")->capture_default_str();
    c->add_option("--steps", o->steps, "Stream steps (1-4)")->capture_default_str();
    c->add_option("--chunks", o->chunks, "Timed 4-frame chunks")->capture_default_str();
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("serve", setup);

}  // namespace
}  // namespace wanrt::cli
