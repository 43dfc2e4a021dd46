// The live stream's pipeline (stream_pipeline.h says what runs where and why).
#include "server/stream_pipeline.h"

#include <cstring>

#include "core/error.h"
#include "server/upload.h"
#include "video/video_writer.h"

namespace wanrt::serve {

using json = nlohmann::json;

namespace {

double ms_since(StreamClock::time_point t) {
    return std::chrono::duration<double, std::milli>(StreamClock::now() - t).count();
}

}  // namespace

// ---------------------------------------------------------------- pool

TaskPool::TaskPool(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i)
        threads_.emplace_back([this] {
            for (;;) {
                std::function<void()> fn;
                {
                    std::unique_lock<std::mutex> lk(mu_);
                    cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
                    if (q_.empty()) return;  // stopping, and nothing left
                    fn = std::move(q_.front());
                    q_.pop_front();
                }
                fn();  // a packaged_task: its exception goes to the future
            }
        });
}

TaskPool::~TaskPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

void TaskPool::enqueue(std::function<void()> fn) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        q_.push_back(std::move(fn));
    }
    cv_.notify_one();
}

// ---------------------------------------------------------------- frames

std::vector<uint8_t> stream_frame_rgb(std::vector<uint8_t> bytes, int64_t width, int64_t height) {
    const size_t px = size_t(width * height);
    // A JPEG frame (the page's default) is told by its first bytes when its length is not a raw
    // frame's; decoded bounded by the stream's size.
    if (bytes.size() != px * 3 && bytes.size() != px * 4 && looks_like_jpeg(bytes.data(), bytes.size())) {
        RgbImage d = decode_image(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                                  int64_t(px), "a JPEG frame");
        WANRT_CHECK(d.width == width && d.height == height, "serve", "a JPEG frame of ", d.width, "x", d.height,
                    " does not match the stream's ", width, "x", height);
        return std::move(d.rgb);
    }
    WANRT_CHECK(bytes.size() == px * 3 || bytes.size() == px * 4, "serve", "a frame of ", bytes.size(),
                " bytes does not match ", width, "x", height, " RGB (", px * 3, ") or RGBA (", px * 4, ")");
    if (bytes.size() == px * 3) return bytes;                                       // RGB as it came: no copy
    for (size_t i = 0; i < px; ++i) std::memmove(&bytes[i * 3], &bytes[i * 4], 3);  // RGBA → RGB in place
    bytes.resize(px * 3);
    return bytes;
}

// ---------------------------------------------------------------- pipeline

StreamPipeline::StreamPipeline(ServeModel& model, int codec_threads, Emit emit)
    : model_(model), emit_(std::move(emit)), pool_(codec_threads), session_(model) {
    stream_thread_ = std::thread([this] { stream_loop(); });
    emit_thread_ = std::thread([this] { emit_loop(); });
}

StreamPipeline::~StreamPipeline() {
    close();
}

void StreamPipeline::close() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (closing_ && !stream_thread_.joinable()) return;
        closing_ = true;
        items_.clear();
    }
    cv_.notify_all();
    if (stream_thread_.joinable()) stream_thread_.join();
    if (emit_thread_.joinable()) emit_thread_.join();
}

void StreamPipeline::push_text(const std::string& text, StreamClock::time_point arrived) {
    Item it;
    it.arrived = arrived;
    try {
        const json msg = json::parse(text, nullptr, false);
        if (msg.is_discarded() || !msg.is_object() || msg.value("type", "") != "config")
            fail("serve",
                 "a text message must be JSON {\"type\": \"config\", \"prompt\": ..., \"width\": ..., \"height\": ..., "
                 "\"steps\": ..., \"strength\": ...}");
        it.config = parse_stream_config(msg, arrival_cfg_);
        it.kind = Item::Config;
        arrival_cfg_ = it.config;  // the frames after it are decoded at its size
        arrival_configured_ = true;
    } catch (const Error& e) {
        it.kind = Item::Error;
        it.error = e.what();
    }
    std::lock_guard<std::mutex> lk(mu_);
    items_.push_back(std::move(it));
    cv_.notify_all();
}

void StreamPipeline::push_frame(std::vector<uint8_t> bytes, StreamClock::time_point arrived) {
    Item it;
    it.arrived = arrived;
    it.is_frame = true;
    if (!arrival_configured_) {
        it.kind = Item::Error;
        it.error = "[serve] send a {\"type\": \"config\", ...} message before the first frame";
    } else {
        const int64_t w = arrival_cfg_.width, h = arrival_cfg_.height;
        it.frame = pool_
                       .submit([b = std::move(bytes), w, h]() mutable {
                           const auto t = StreamClock::now();
                           Decoded d;
                           d.rgb = stream_frame_rgb(std::move(b), w, h);  // bytes only: converted on the device
                           d.ms = ms_since(t);
                           return d;
                       })
                       .share();
    }
    std::lock_guard<std::mutex> lk(mu_);
    items_.push_back(std::move(it));
    cv_.notify_all();
}

void StreamPipeline::to_emit(Pending p) {
    std::lock_guard<std::mutex> lk(mu_);
    pending_.push_back(std::move(p));
    cv_.notify_all();
}

void StreamPipeline::stream_loop() {
    for (;;) {
        Item it;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return closing_ || !items_.empty(); });
            if (closing_) break;
            it = std::move(items_.front());
            items_.pop_front();
        }
        Pending p;
        p.out.last_in = it.arrived;
        try {
            switch (it.kind) {
                case Item::Error:
                    p.out.frames_done = it.is_frame ? 1 : 0;
                    p.out.message = json{{"type", "error"}, {"error", it.error}};
                    break;
                case Item::Config: {
                    const int64_t dropped = session_.gathered_frames();
                    const bool restarted = session_.configure(it.config);
                    const StreamConfig& c = session_.config();
                    if (restarted) {  // the frames gathered for the old stream are dropped: settle them
                        p.out.frames_done = dropped;
                        gathered_ = 0;
                    }
                    p.out.message = json{{"type", "ready"},    {"restarted", restarted}, {"width", c.width},
                                         {"height", c.height}, {"steps", c.steps},       {"strength", c.strength},
                                         {"format", c.format}, {"quality", c.quality},   {"prompt", c.prompt}};
                    break;
                }
                case Item::Frame:
                    run_frame(it);
                    continue;  // run_frame emits (or not, while a chunk gathers)
            }
        } catch (const Error& e) {
            p.out.message = json{{"type", "error"}, {"error", e.what()}};
        }
        to_emit(std::move(p));
    }
    // Closing: the emit thread finishes what is queued, then stops.
    std::lock_guard<std::mutex> lk(mu_);
    stream_done_ = true;
    cv_.notify_all();
}

void StreamPipeline::run_frame(Item& it) {
    Pending p;
    p.out.last_in = it.arrived;
    try {
        const auto t = StreamClock::now();
        it.frame.wait();  // only this frame's decode; the later ones go on on the pool
        const double waited = ms_since(t);
        Decoded d = it.frame.get();  // rethrows a decode error
        ChunkTimes& g = session_.gathering();
        g.wait += waited;
        g.decode += d.ms;
        StreamSession::RestyledHost r = session_.push_rgb8(std::move(d.rgb));
        ++gathered_;
        if (!r.ran) return;  // still gathering the chunk's frames
        // The chunk ran: raw frames go out as downloaded; JPEG ones are encoded in parallel on the pool.
        // Either way the stream thread goes on to the next chunk.
        const StreamStats& st = session_.stats();
        const StreamConfig& c = session_.config();
        p.out.frames_done = gathered_;
        gathered_ = 0;
        p.encode_start = StreamClock::now();
        const int64_t frames_back = int64_t(r.frames.size());
        if (c.format == "jpeg") {
            auto rgb = std::make_shared<const std::vector<std::vector<uint8_t>>>(std::move(r.frames));
            for (size_t f = 0; f < rgb->size(); ++f)
                p.frames.push_back(pool_.submit([rgb, f, h = r.height, w = r.width, q = c.quality] {
                    return encode_jpeg((*rgb)[f].data(), w, h, 3, q);
                }));
        } else {
            p.out.frames = std::move(r.frames);
        }
        p.out.message = json{{"type", "chunk"},           {"frames", frames_back},
                             {"frames_in", st.frames_in}, {"frames_out", st.frames_out},
                             {"chunks", st.chunks_in},    {"chunk_ms", session_.last_chunk_seconds() * 1e3},
                             {"format", c.format},        {"noise_scale", st.last_noise_scale}};
        p.out.message["parts"] = session_.times().to_json();
    } catch (const Error& e) {
        // A bad frame settles itself; a failed chunk (its frames taken, then the model threw) settles
        // all the frames gathered for it.
        p.frames.clear();
        p.out.frames.clear();
        const int64_t kept = session_.gathered_frames();
        p.out.frames_done = gathered_ + 1 - kept;
        gathered_ = kept;
        p.out.message = json{{"type", "error"}, {"error", e.what()}};
    }
    to_emit(std::move(p));
}

void StreamPipeline::emit_loop() {
    for (;;) {
        Pending p;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return !pending_.empty() || stream_done_; });
            if (pending_.empty()) return;
            p = std::move(pending_.front());
            pending_.pop_front();
        }
        try {
            for (auto& f : p.frames) p.out.frames.push_back(f.get());
            if (!p.frames.empty() && p.out.message.contains("parts"))  // the parallel encodes' wall time (JPEG)
                p.out.message["parts"]["encode_ms"] = ms_since(p.encode_start);
        } catch (const Error& e) {
            p.out.frames.clear();
            p.out.message = json{{"type", "error"}, {"error", e.what()}};
        }
        emit_(std::move(p.out));
    }
}

}  // namespace wanrt::serve
