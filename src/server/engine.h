// The compute side of `wanrt serve` (no networking here; server/http.cpp is the HTTP front end):
//
//   ServeModel  one model loaded once and kept for the server's life: tokenizer, T5, DiT and VAE, all
//               on one backend; a text-to-video DiT is also wrapped as the causal DiT of the live
//               stream; an image-to-video model (Wan2.1 I2V, or the i2v demo) adds its CLIP image
//               encoder, runs jobs with an uploaded picture, and has no live stream.
//               Every forward takes `compute` first, so queued jobs and a live stream take turns
//               on the one device instead of racing for it.
//   JobQueue    a bounded FIFO of text-to-video jobs and ONE worker thread that runs them through
//               ServeModel. Ids are 128 random bits (hex); results go to a private temporary folder
//               (mkdtemp, mode 0700) named by the id only, so no client string ever becomes a path.
//               Cancel is cooperative: queued jobs are dropped at once; a running job stops at the
//               next denoising step or stage boundary (the step callback throws JobCancelled).
//               Finished jobs are kept up to `keep_finished`, oldest evicted with their files.
//   StreamSession  one live StreamV2V (pipeline/stream.h) fed one RGB frame at a time; it runs a
//               chunk (5, then 4 frames) as soon as one is complete and returns the restyled frames.
//
// Errors: bad options are wanrt::Error "[serve] ..." (the HTTP layer answers 400 with the message);
// a full queue is QueueFull (429), a stopped queue QueueClosed (503).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/backend.h"
#include "models/causal_dit.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/vae.h"
#include "pipeline/model_folder.h"
#include "pipeline/stream.h"
#include "pipeline/t2v.h"
#include "server/upload.h"

namespace wanrt::text {
class T5Tokenizer;
}

namespace wanrt::serve {

struct ServeModel {
    T2VModelParts parts;
    std::shared_ptr<Backend> be;
    std::unique_ptr<text::T5Tokenizer> tokenizer;
    T5Encoder t5;
    std::shared_ptr<const DitModel> dit;
    std::shared_ptr<const CausalDitModel> causal;
    std::shared_ptr<WanVae> vae;
    std::unique_ptr<ClipVisionEncoder> clip;  // image-to-video models only
    bool demo = false;
    bool i2v() const { return clip != nullptr; }
    std::mutex compute;  // held for every forward (jobs and stream chunks take turns)

    // ckpt_dir "" = the built-in demo model: the text-to-video one, or with task "i2v-14B" the
    // image-to-video one. A folder: Wan2.1 T2V or I2V (its task is its own; `task`, when given, must
    // match). FLF2V, Wan2.2 A14B and TI2V folders are refused.
    static std::unique_ptr<ServeModel> load(const std::string& ckpt_dir, std::shared_ptr<Backend> be,
                                            const StageFn& on_stage = {}, const std::string& task = "");
    ~ServeModel();
    // The prompt's context [len, text_dim] (caller holds `compute`).
    Tensor encode(const std::string& prompt) const;
};

// A job's options, parsed from the POST /v1/generate body (unknown keys refused).
struct JobRequest {
    std::string prompt, neg_prompt;
    T2VOptions opt;  // image-to-video: width·height is the max_area, as `wanrt generate --size`
    uint64_t seed = 0;
    std::string format = "y4m";  // y4m | mp4 (mp4 needs the FFmpeg build)
    std::shared_ptr<const RgbImage> image;  // image-to-video: the uploaded picture
    int64_t video_w = 0, video_h = 0;       // the video's size (i2v: from the picture's aspect)
};
struct RequestLimits {
    int64_t max_pixels_frames = int64_t(1280) * 720 * 81;  // width·height·frame_num
    int max_steps = 100;
    size_t max_prompt_bytes = 4096;
    int64_t max_image_pixels = int64_t(4096) * 4096;  // an uploaded picture's width·height
};
// Throws wanrt::Error "[serve] ..." naming the key and what is accepted. Defaults: the demo's small
// ones for the demo model; for a folder the official ones of its task, as `wanrt generate`
// (text-to-video 832*480, 81 frames, 50 steps, shift 5; image-to-video 40 steps, size 832*480 for a
// 480P folder (shift 3) else 1280*720 (shift 5)). image: the decoded picture of an i2v job.
JobRequest parse_job_request(const nlohmann::json& body, const ServeModel& m, const RequestLimits& lim,
                             std::shared_ptr<const RgbImage> image = nullptr);
// "" when the model takes what was sent, else the one-line reason (the HTTP layer answers 422): an
// image sent to a text-to-video model, or none sent to an image-to-video model.
std::string task_mismatch(const ServeModel& m, bool has_image);

enum class JobStatus { Queued, Running, Done, Failed, Cancelled };
const char* to_string(JobStatus s);

struct JobCancelled {};  // thrown from the step callback; never escapes the worker
struct QueueFull {};
struct QueueClosed {};

struct Job {
    std::string id;
    JobRequest req;
    // Guarded by JobQueue::mu_.
    JobStatus status = JobStatus::Queued;
    std::string stage, error, result_path;
    int step = 0, steps = 0;
    uint64_t version = 0;                           // bumped on every change (SSE waits on it)
    double created = 0, started = 0, finished = 0;  // seconds since the queue started
    std::atomic<bool> cancel{false};
};

class JobQueue {
public:
    JobQueue(ServeModel& model, size_t max_queued, size_t keep_finished);
    ~JobQueue();  // stops: cancels the running job, joins the worker, removes the result folder

    // Returns the new job's id and its position (0 = next). Throws QueueFull / QueueClosed.
    std::pair<std::string, size_t> submit(JobRequest req);
    // A snapshot as JSON ({} in `found` = false when the id is unknown).
    bool describe(const std::string& id, nlohmann::json& out) const;
    // Cancels a queued or running job, or forgets a finished one (its file removed). false: unknown id.
    bool cancel(const std::string& id, nlohmann::json& out);
    // Result file of a done job: path and format; "" when not done (status in `status`).
    bool result(const std::string& id, std::string& path, std::string& format, JobStatus& status) const;
    size_t queued() const;
    void stop();
    const std::string& result_dir() const { return dir_; }

private:
    void worker();
    void run_job(const std::shared_ptr<Job>& job);
    void touch(Job& j);     // version++ and notify (mu_ held)
    void evict_finished();  // mu_ held
    nlohmann::json to_json(const Job& j) const;
    double now() const;

    ServeModel& model_;
    size_t max_queued_, keep_finished_;
    std::string dir_;
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;  // queue and job changes
    std::deque<std::shared_ptr<Job>> queue_;
    std::map<std::string, std::shared_ptr<Job>> jobs_;
    std::deque<std::string> finished_;  // oldest first
    bool stopping_ = false;
    std::thread thread_;
    double t0_ = 0;
};

// Random hex id of 2·bytes characters (std::random_device).
std::string random_id(size_t bytes = 16);

// The live stream's options as the page sends them ({"type": "config", ...}).
struct StreamConfig {
    std::string prompt = "a watercolor painting";
    int64_t width = 256, height = 256;
    int steps = 2;          // the first `steps` of [700, 500, 400, 200]
    double strength = 0.8;  // noise_scale ns₀
    uint64_t seed = 0;
    std::string format = "raw";  // frames sent back: "raw" RGB or "jpeg" (changing it keeps the stream)
    int quality = 80;            // JPEG quality of the frames sent back, 1..100
};
StreamConfig parse_stream_config(const nlohmann::json& j, const StreamConfig& current);

class StreamSession {
public:
    explicit StreamSession(ServeModel& model) : model_(model) {}
    // Applies a config: a prompt-only change re-encodes the text and swaps the context between
    // chunks (set_prompt); a size, steps or strength change starts a new stream (returns true).
    bool configure(const StreamConfig& c);
    bool configured() const { return bool(stream_); }
    const StreamConfig& config() const { return cfg_; }
    // One frame: width·height·channels bytes (RGB or RGBA), or a JPEG of width × height (told by its
    // first bytes). Returns the restyled frames that became ready, each width·height·3 RGB bytes
    // (often none: chunks are 5 then 4 frames).
    std::vector<std::vector<uint8_t>> push_frame(const uint8_t* data, size_t bytes);
    const StreamStats& stats() const;
    double last_chunk_seconds() const { return last_chunk_s_; }

private:
    ServeModel& model_;
    StreamConfig cfg_;
    std::unique_ptr<StreamV2V> stream_;
    std::vector<uint8_t> pending_;  // [n, H, W, 3] RGB of the chunk being gathered
    int64_t pending_frames_ = 0;
    double last_chunk_s_ = 0;
};

}  // namespace wanrt::serve
