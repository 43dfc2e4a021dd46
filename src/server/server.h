// `wanrt serve`: an HTTP + WebSocket server (Boost.Beast/Asio) over one loaded text-to-video model
// (server/engine.h). docs/serve.md documents the API; in short:
//
//   GET    /                      the live page (embedded; webcam → /v1/stream → restyled frames)
//   GET    /v1/health             {"status": "ok", "model": ..., "queued": n}
//   POST   /v1/generate           JSON options (an i2v model: + a picture, base64 in the JSON or a
//                                  multipart/form-data file; server/upload.h) → 202 {"id", "status": "queued", "position"}
//   GET    /v1/jobs/{id}          status and progress
//   GET    /v1/jobs/{id}/events   the same as Server-Sent Events until the job ends
//   GET    /v1/jobs/{id}/result   the video (y4m or mp4) once done
//   DELETE /v1/jobs/{id}          cancel (queued: at once; running: at the next step), or forget a finished job
//   GET    /v1/stream             WebSocket upgrade: live video-to-video (StreamV2V)
//
// Security: binds 127.0.0.1 unless told otherwise and refuses a non-loopback host without a token;
// with a token every request (the page and the WebSocket too) needs "Authorization: Bearer <token>"
// or, for the browser (which cannot set headers on a WebSocket), "?token=<token>"; bodies over
// max_body bytes (max_upload for POST /v1/generate) are refused (413) before they are read; idle connections time out; at most
// max_connections are served at once (more get 503); every error is JSON {"error": "one line"}.
//
// Threads: io_threads run the Asio event loop (HTTP parsing, replies, SSE); the job worker runs the
// model (engine.h); each live stream runs on its own thread (at most max_streams) because its chunks
// are long blocking computations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "server/engine.h"

namespace wanrt::serve {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8000;                   // 0 = an ephemeral port (port() tells which)
    std::string token;                 // bearer token ("" = none; required for a non-loopback host)
    size_t max_body = 1 << 20;         // bytes of a request body
    size_t max_upload = 16 << 20;      // bytes of a POST /v1/generate body (it may carry a picture)
    size_t max_ws_message = 16 << 20;  // bytes of one WebSocket message (a frame)
    size_t max_queue = 8;              // queued jobs (more: 429)
    size_t keep_finished = 64;         // finished jobs remembered (older ones and their files removed)
    size_t max_connections = 64;       // open HTTP connections (more: 503)
    int max_streams = 1;               // live WebSocket streams at once (more: 503)
    int codec_threads = 4;             // per stream: JPEG decode/encode workers (stream_pipeline.h)
    int64_t max_stream_frames_in_flight = 24;  // per stream: frames read and not yet answered (then reads wait)
    int io_threads = 2;
    double idle_timeout_s = 30;  // per read/write on an HTTP connection
    RequestLimits limits;
};

// "127.0.0.1", "::1", "localhost" and the rest of 127.0.0.0/8.
bool is_loopback_host(const std::string& host);

class Server {
public:
    // Checks the options (a non-loopback host needs a token) and binds; throws wanrt::Error "[serve] ...".
    Server(const ServerOptions& opt, ServeModel& model);
    ~Server();  // stop() and join
    int port() const;
    // Serves until stop() (from any thread or a signal handler's thread).
    void run();
    // Starts the io threads and returns (tests).
    void start();
    void stop();
    JobQueue& jobs();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// The live page (HTML + JS, no external resources).
const std::string& live_page_html();

}  // namespace wanrt::serve
