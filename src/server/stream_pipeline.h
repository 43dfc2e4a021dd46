// The live stream as a small bounded pipeline, so the JPEG work is off the model's critical path
// (docs/perf.md, "serve overhead"). No networking here; server/http.cpp feeds it from a WebSocket.
//
//   caller thread  push_frame / push_text: never block. A frame's decode (JPEG → RGB, or RGBA → RGB)
//                  goes to the codec pool at once, against the size of the last config pushed.
//   codec pool     codec_threads workers: decode incoming frames to RGB bytes as they arrive, and encode a
//                  chunk's outgoing RGB frames in parallel (one TurboJPEG handle per call; raw frames go
//                  out as the stream thread downloaded them). No pixel conversion runs here: u8 ↔ f32 is done on the model's device
//                  (ops/rgb8.h), so 1 byte per value crosses the host–device link instead of 4. The stream
//                  thread only takes the decoded buffers (moved), uploads, runs and downloads.
//   stream thread  takes the items in arrival order: a config is applied between chunks (StreamSession);
//                  a frame waits for its own decode only (the others keep decoding); a complete chunk
//                  runs the model, hands its frames to the pool for encoding and goes on to the next chunk.
//   emit thread    waits for a chunk's encodes in order and calls emit(StreamOutput).
//
// Order: outputs leave in the order their inputs came, each chunk's frames before its stats message.
// Bounds: the pipeline holds what it is given; the caller bounds it by counting frames in flight
// (pushed, minus StreamOutput::frames_done of what it has sent) and stops reading from the client at
// its limit, so a slow client (or a slow model) makes the sender wait: nothing is dropped silently.
// emit runs on the emit thread and must not block for long (http.cpp posts to its event loop).
//
// Errors: a bad message or frame becomes an output {"type": "error", "error": "[serve] ..."} in its
// place in the order, and the stream goes on (as the serial StreamSession::push_frame path, which
// stays as the reference the tests compare against).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "server/engine.h"

namespace wanrt::serve {

using StreamClock = std::chrono::steady_clock;

struct StreamOutput {
    std::vector<std::vector<uint8_t>> frames;  // binary messages (JPEG or RGB), in order
    nlohmann::json message;                    // the text message after them: chunk stats, ready or error
    int64_t frames_done = 0;                   // input frames this output settles (the caller's credit)
    StreamClock::time_point last_in{};         // arrival of the last input frame it settles (server_ms)
};

// A fixed pool of threads running queued tasks (the per-stream codec work).
class TaskPool {
public:
    explicit TaskPool(int threads);
    ~TaskPool();  // runs what is queued, then joins
    TaskPool(const TaskPool&) = delete;
    TaskPool& operator=(const TaskPool&) = delete;
    template <class F>
    auto submit(F f) -> std::future<decltype(f())> {
        auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
        auto fut = task->get_future();
        enqueue([task] { (*task)(); });
        return fut;
    }

private:
    void enqueue(std::function<void()> fn);
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> q_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

class StreamPipeline {
public:
    using Emit = std::function<void(StreamOutput)>;
    StreamPipeline(ServeModel& model, int codec_threads, Emit emit);
    ~StreamPipeline();  // close()

    // A text message (a {"type": "config", ...} JSON) or a binary frame, with its arrival time.
    void push_text(const std::string& text, StreamClock::time_point arrived);
    void push_frame(std::vector<uint8_t> bytes, StreamClock::time_point arrived);
    // Stops: items not started are dropped, the chunk running finishes, the threads are joined.
    void close();

private:
    struct Decoded {
        std::vector<uint8_t> rgb;  // [H, W, 3] (stream_frame_rgb)
        double ms = 0;             // decode time on the pool
    };
    struct Item {
        enum Kind { Frame, Config, Error } kind = Frame;
        std::shared_future<Decoded> frame;
        StreamConfig config;
        std::string error;
        StreamClock::time_point arrived{};
        bool is_frame = false;  // a frame (settles 1 when it fails alone), or a text message
    };
    struct Pending {  // a chunk's output on its way to emit
        std::vector<std::future<std::vector<uint8_t>>> frames;
        StreamOutput out;
        StreamClock::time_point encode_start{};
    };
    void stream_loop();
    void emit_loop();
    void run_frame(Item& it);
    void to_emit(Pending p);

    ServeModel& model_;
    Emit emit_;
    TaskPool pool_;
    StreamSession session_;
    // Caller side: the config as of the last message pushed (frames are decoded against it).
    StreamConfig arrival_cfg_;
    bool arrival_configured_ = false;
    // The chunk being gathered (stream thread).
    ChunkTimes gathering_;
    int64_t gathered_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Item> items_;
    std::deque<Pending> pending_;
    bool closing_ = false, stream_done_ = false;
    std::thread stream_thread_, emit_thread_;
};

// One stream frame as width·height·3 RGB bytes: raw RGB (moved), RGBA (alpha dropped) or a JPEG of
// exactly width × height (told by its first bytes). Throws "[serve] ..." for anything else.
std::vector<uint8_t> stream_frame_rgb(std::vector<uint8_t> bytes, int64_t width, int64_t height);

}  // namespace wanrt::serve
