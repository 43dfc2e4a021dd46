// wanrt bench serve: what `wanrt serve` adds to the streaming loop. Three phases, one model:
//   bare     the stream loop alone, as `wanrt bench causal --v2v` times it: StreamV2V::push of a
//            4-frame chunk already on the device, then synchronize;
//   latency  the server in-process on an ephemeral loopback port and a WebSocket client (Boost.Beast,
//            as a browser would) that sends one chunk's frames (5, then 4) and waits for its answer:
//            per chunk the round trip (last frame sent → stats message read) and the server's parts
//            ("parts" of the stats message: decode, wait, copy, upload, model, download, encode, send;
//            server/engine.h ChunkTimes says what each covers: the pipeline moves u8 frames to and from
//            the device and converts them there, the serial path moves f32 and converts on the host);
//   stream   the same client sending without waiting, at most `in flight` frames ahead (as the live
//            page does): the time per chunk in the steady state.
// Beside them, the serial reference path (StreamSession::push_frame and one-by-one encodes, what the
// server ran before stream_pipeline.h) is timed per part without the network, for a before/after in one run.
// The overhead is "serve minus the bare stream loop": stream ms/chunk − bare ms/chunk (what the
// issue's ≤ 5 ms is about), and for one chunk's latency, round trip − model.
// Frames are JPEG both ways by default (the page's default; --format raw sends RGB and takes RGB); the
// client's JPEGs are encoded before the timing, as a browser's canvas would.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "runtime/device.h"
#include "server/beast.h"
#include "server/server.h"
#include "video/video_writer.h"

namespace wanrt::cli {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

struct Opts {
    RunOpts run;
    std::string ckpt_dir, format = "jpeg";
    int64_t width = 832, height = 480;
    int steps = 2, chunks = 20, quality = 80;
};

double ms_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// A smooth moving picture (JPEG sizes and costs like a camera's, not like noise).
std::vector<uint8_t> synthetic_frame(int64_t w, int64_t h, int64_t f) {
    std::vector<uint8_t> rgb(size_t(w * h * 3));
    for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) {
                const double v = 128 +
                                 90 * std::sin(0.021 * double(x) + 0.3 * double(f) + c) *
                                     std::cos(0.017 * double(y) - 0.2 * double(f)) +
                                 20 * std::sin(0.31 * double(x + y));
                rgb[size_t((y * w + x) * 3 + c)] = uint8_t(std::clamp(v, 0.0, 255.0));
            }
    return rgb;
}

// The bare loop: the config's StreamV2V fed one device-resident 4-frame chunk per push.
BenchRow bare_loop(serve::ServeModel& m, const serve::StreamConfig& cfg, int warm, int chunks) {
    const Tensor context = m.encode(cfg.prompt);
    StreamV2V s(m.causal, m.vae, context, serve::stream_options(cfg), seeded_noise(cfg.seed));
    auto chunk = [&](int64_t n) {
        Rgb24Video v;
        v.frames = n;
        v.height = cfg.height;
        v.width = cfg.width;
        for (int64_t f = 0; f < n; ++f) {
            const std::vector<uint8_t> px = synthetic_frame(cfg.width, cfg.height, f);
            v.rgb.insert(v.rgb.end(), px.begin(), px.end());
        }
        return rgb24_to_video(v, *m.be);
    };
    const Tensor first = chunk(5), next = chunk(4);
    s.push(first);
    BenchRow row{"bare stream loop (push)", {}, 0};
    for (int c = 0; c < warm + chunks; ++c) {
        const auto t0 = clock_type::now();
        s.push(next);
        m.be->synchronize();
        if (c >= warm) row.ms.push_back(ms_between(t0, clock_type::now()));
    }
    return row;
}

// The serial reference path (StreamSession::push_frame, then the frames encoded one by one, as the
// server did before the pipeline), without the network: its per-part times in the same run.
std::map<std::string, BenchRow> serial_parts(serve::ServeModel& m, const serve::StreamConfig& cfg, int warm, int chunks,
                                             const std::vector<std::vector<uint8_t>>& frames) {
    std::map<std::string, BenchRow> parts;
    serve::StreamSession s(m);
    s.configure(cfg);
    int64_t frame_no = 0;
    for (int c = 0; c < warm + chunks; ++c) {
        std::vector<std::vector<uint8_t>> out;
        for (int f = 0; f < (c == 0 ? 5 : 4); ++f, ++frame_no) {
            const std::vector<uint8_t>& b = frames[size_t(frame_no) % frames.size()];
            out = s.push_frame(b.data(), b.size());
        }
        const auto t = clock_type::now();
        if (cfg.format == "jpeg")
            for (const auto& f : out) serve::encode_jpeg(f.data(), cfg.width, cfg.height, 3, cfg.quality);
        const double encode = ms_between(t, clock_type::now());
        if (c < warm) continue;
        const serve::ChunkTimes& ct = s.times();
        parts["decode"].ms.push_back(ct.decode);
        parts["copy"].ms.push_back(ct.copy);
        parts["upload"].ms.push_back(ct.upload);
        parts["download"].ms.push_back(ct.download);
        parts["encode"].ms.push_back(encode);
        parts["total"].ms.push_back(ct.decode + ct.copy + ct.upload + ct.download + encode);
    }
    return parts;
}

// What each part's time covers (ChunkTimes, server/engine.h), beside its name in the table.
std::string pipelined_part_note(const std::string& k) {
    static const std::map<std::string, std::string> notes = {
        {"decode", " (JPEG → RGB on the pool, sum)"},
        {"wait", " (for the last decode)"},
        {"copy", " (decoded u8 frames moved in)"},
        {"upload", " (u8 frames + rgb8_to_video)"},
        {"download", " (video_to_rgb8 + u8 per frame)"},
        {"encode", " (pool, wall; raw: none)"}};
    const auto it = notes.find(k);
    return it == notes.end() ? "" : it->second;
}
std::string serial_part_note(const std::string& k) {
    static const std::map<std::string, std::string> notes = {
        {"copy", " (u8 appended)"}, {"upload", " (u8 → f32 on the host + f32)"}, {"download", " (f32 + f32 → u8 on the host)"}};
    const auto it = notes.find(k);
    return it == notes.end() ? "" : it->second;
}

struct Client {
    net::io_context ioc;
    websocket::stream<tcp::socket> ws{ioc};
    beast::flat_buffer b;

    Client(int port, const json& config) {
        ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
        ws.next_layer().set_option(tcp::no_delay(true));  // as browsers do
        ws.read_message_max(256 << 20);
        ws.handshake("127.0.0.1", "/v1/stream");
        ws.text(true);
        ws.write(net::buffer(config.dump()));
        const json ready = read_text();
        WANRT_CHECK(ready.value("type", "") == "ready", "bench", "the server refused the stream: ", ready.dump());
        ws.binary(true);
    }
    json read_text() {
        for (;;) {
            b.clear();
            ws.read(b);
            if (ws.got_text()) return json::parse(beast::buffers_to_string(b.data()));
        }
    }
    // A binary frame (true) or a text message into msg (false).
    bool read(json& msg) {
        b.clear();
        ws.read(b);
        if (!ws.got_text()) return true;
        msg = json::parse(beast::buffers_to_string(b.data()));
        WANRT_CHECK(msg.value("type", "") == "chunk", "bench", "the stream failed: ", msg.dump());
        return false;
    }
    ~Client() {
        beast::error_code ec;
        ws.close(websocket::close_code::normal, ec);
    }
};

void run(const Opts& o) {
    o.run.validate();
    WANRT_CHECK(o.chunks >= 2, "bench", "--chunks must be at least 2");
    WANRT_CHECK(o.format == "jpeg" || o.format == "raw", "bench", "--format ", o.format, " is not jpeg or raw");
    auto be = make_backend(o.run.device, o.run.threads);
    auto model = serve::ServeModel::load(o.ckpt_dir, be);
    // The bare loop builds its StreamV2V directly (no StreamSession::configure, which would say this).
    WANRT_CHECK(model->causal != nullptr, "bench", o.ckpt_dir, " holds ", model->parts.kind,
                ", which has no live stream; bench serve needs a Wan2.1 text-to-video folder (e.g. Wan2.1-T2V-1.3B)");
    serve::StreamConfig cfg;
    cfg.width = o.width;
    cfg.height = o.height;
    cfg.steps = o.steps;
    cfg.format = o.format;
    cfg.quality = o.quality;
    const int warm = o.run.warmup + o.steps;  // the batch fills for steps − 1 chunks

    const BenchRow bare = bare_loop(*model, cfg, warm, o.chunks);

    serve::ServerOptions so;
    so.port = 0;
    so.max_streams = 2;  // the latency client's stream may still be closing when the stream client connects
    serve::Server server(so, *model);
    server.start();
    const json config{{"type", "config"}, {"prompt", cfg.prompt}, {"width", o.width},    {"height", o.height},
                      {"steps", o.steps}, {"format", o.format},   {"quality", o.quality}};

    // The client's frames, made (and compressed) before the timing.
    std::vector<std::vector<uint8_t>> frames;
    size_t bytes_in = 0;
    for (int64_t f = 0; f < 8; ++f) {
        std::vector<uint8_t> rgb = synthetic_frame(o.width, o.height, f);
        frames.push_back(o.format == "jpeg" ? serve::encode_jpeg(rgb.data(), o.width, o.height, 3, o.quality) : rgb);
        bytes_in += frames.back().size();
    }

    std::map<std::string, BenchRow> serial = serial_parts(*model, cfg, warm, o.chunks, frames);

    // Latency: one chunk at a time.
    BenchRow model_row{"model (upload + push)", {}, 0}, server_row{"server", {}, 0}, client_row{"round trip", {}, 0};
    std::map<std::string, BenchRow> parts;
    const char* part_names[] = {"decode", "wait", "copy", "upload", "model", "download", "encode", "send"};
    size_t bytes_out = 0, frames_back = 0;
    {
        Client cl(server.port(), config);
        int64_t frame_no = 0;
        for (int c = 0; c < warm + o.chunks; ++c) {
            const int n = c == 0 ? 5 : 4;
            clock_type::time_point t0;
            for (int f = 0; f < n; ++f, ++frame_no) {
                t0 = clock_type::now();
                cl.ws.write(net::buffer(frames[size_t(frame_no) % frames.size()]));
            }
            json m;
            while (cl.read(m)) {
                if (c >= warm) {
                    bytes_out += cl.b.size();
                    ++frames_back;
                }
            }
            if (c < warm) continue;
            model_row.ms.push_back(m.value("chunk_ms", 0.0));
            server_row.ms.push_back(m.value("server_ms", 0.0));
            client_row.ms.push_back(ms_between(t0, clock_type::now()));
            const json p = m.value("parts", json::object());
            for (const char* k : part_names) parts[k].ms.push_back(p.value(std::string(k) + "_ms", 0.0));
        }
    }

    // Stream: frames sent without waiting, at most `in_flight` ahead of the answered chunks.
    const int in_flight = (o.steps - 1) * 4 + 5 + 8;  // the model's held chunks + two more
    BenchRow stream_row{"stream (per chunk)", {}, 0};
    double stream_s = 0;
    int64_t stream_frames = 0;
    {
        Client cl(server.port(), config);
        const int total_chunks = warm + o.chunks;
        const int64_t total_frames = 5 + 4 * int64_t(total_chunks - 1);
        int64_t sent = 0, answered = 0;  // frames sent; frames of the chunks answered
        int done = 0;
        clock_type::time_point t_warm, t_last;
        while (done < total_chunks) {
            if (sent < total_frames && sent - answered < in_flight) {
                cl.ws.write(net::buffer(frames[size_t(sent) % frames.size()]));
                ++sent;
                continue;
            }
            json m;
            if (cl.read(m)) {
                if (done >= warm) ++stream_frames;
                continue;
            }
            answered += done == 0 ? 5 : 4;
            ++done;
            const auto now = clock_type::now();
            if (done == warm) t_warm = now;
            if (done > warm) stream_row.ms.push_back(ms_between(t_last, now));
            t_last = now;
        }
        stream_s = std::chrono::duration<double>(t_last - t_warm).count();
    }
    server.stop();

    BenchRow overhead{"overhead: round trip - model", {}, 0};
    for (size_t i = 0; i < client_row.ms.size(); ++i) overhead.ms.push_back(client_row.ms[i] - model_row.ms[i]);
    double bare_ms = 0;  // the mean, as the stream's per-chunk time is (wall time / chunks)
    for (double x : bare.ms) bare_ms += x / double(bare.ms.size());
    const double per_chunk_stream = 1e3 * stream_s / double(o.chunks);
    BenchRow serve_minus_bare{"overhead: serve - bare loop (stream)", {per_chunk_stream - bare_ms}, 0};
    BenchReport r;
    r.bench = "serve";
    r.device = be->description();
    r.config = {{"model", model->parts.name},
                {"size", std::to_string(o.width) + "x" + std::to_string(o.height)},
                {"steps", std::to_string(o.steps)},
                {"chunks", std::to_string(o.chunks)},
                {"format", o.format},
                {"bytes per frame in", std::to_string(bytes_in / frames.size())},
                {"bytes per frame out", std::to_string(frames_back ? bytes_out / frames_back : 0)},
                {"stream in flight", std::to_string(in_flight)},
                {"fps", std::to_string(double(stream_frames) / stream_s)}};
    r.config.push_back({"serve overhead ms/chunk", std::to_string(per_chunk_stream - bare_ms)});
    r.rows = {bare, model_row, server_row, client_row, overhead};
    for (const char* k : part_names) {
        BenchRow row = parts[k];
        row.name = std::string("  server part: ") + k + pipelined_part_note(k);
        r.rows.push_back(row);
    }
    BenchRow critical{"  server critical path (wait+copy+upload+download+encode+send)", {}, 0};
    for (size_t i = 0; i < parts["wait"].ms.size(); ++i) {
        double sum = 0;
        for (const char* k : {"wait", "copy", "upload", "download", "encode", "send"}) sum += parts[k].ms[i];
        critical.ms.push_back(sum);
    }
    r.rows.push_back(critical);
    for (const char* k : {"decode", "copy", "upload", "download", "encode", "total"}) {
        BenchRow row = serial[k];
        row.name = std::string("  serial reference path: ") + k + serial_part_note(k);
        r.rows.push_back(row);
    }
    r.rows.push_back(stream_row);
    r.rows.push_back(serve_minus_bare);
    r.print();
    std::printf(
        "serve overhead per chunk: %.1f ms (stream %.1f ms/chunk - bare loop %.1f ms/chunk); one chunk's "
        "latency overhead %.1f ms (round trip - model)\n",
        per_chunk_stream - bare_ms, per_chunk_stream, bare_ms, median(overhead.ms));
    std::printf("end to end (stream): %lld frames back in %.2f s = %.1f FPS\n", (long long)stream_frames, stream_s,
                double(stream_frames) / stream_s);
    r.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        bench.add_subcommand("serve", "Time what wanrt serve adds per stream chunk over the bare stream loop");
    c->add_option("--ckpt_dir", o->ckpt_dir, "T2V model folder (default: the built-in demo model)");
    c->add_option("--width", o->width, "Frame width (multiple of 16)")->capture_default_str();
    c->add_option("--height", o->height, "Frame height (multiple of 16)")->capture_default_str();
    c->add_option("--steps", o->steps, "Stream steps (1-4)")->capture_default_str();
    c->add_option("--chunks", o->chunks, "Timed 4-frame chunks per phase")->capture_default_str();
    c->add_option("--format", o->format, "Frames both ways: jpeg (the page's default) or raw RGB")
        ->capture_default_str();
    c->add_option("--quality", o->quality, "JPEG quality both ways")->capture_default_str();
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("serve", setup);

}  // namespace
}  // namespace wanrt::cli
