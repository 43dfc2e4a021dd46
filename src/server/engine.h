// The compute side of `wanrt serve` (no networking here; server/http.cpp is the HTTP front end):
//
//   ServeModel  one model loaded once and kept for the server's life: tokenizer, T5, DiT and VAE, all
//               on one backend; a text-to-video DiT is also wrapped as the causal DiT of the live
//               stream; an image-to-video model (Wan2.1 I2V, or the i2v demo) adds its CLIP image
//               encoder, runs jobs with an uploaded picture, and has no live stream; a Wan2.2 TI2V-5B
//               model (or the ti2v demo) has the Wan2.2 VAE, takes a picture or none, writes its
//               videos at its sample_fps (24) and has no live stream. A first-last-frame model (Wan2.1
//               FLF2V, or the flf2v demo) is an image-to-video one that takes two pictures. A Wan2.2
//               A14B model (t2v or i2v, or their demos) keeps BOTH experts resident (`dit` the
//               low-noise one, `dit_high` the high-noise one: switching per job would reload ~28 GB)
//               and has no CLIP and no live stream.
//               Every forward takes `compute` first, so queued jobs and a live stream take turns
//               on the one device instead of racing for it.
//   JobQueue    a bounded FIFO of jobs and ONE worker thread that runs them through
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
#include <functional>
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
#include "models/vae22.h"
#include "pipeline/generate.h"
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
    std::shared_ptr<const DitModel> dit;       // Wan2.2 A14B: the low-noise expert
    std::shared_ptr<const DitModel> dit_high;  // Wan2.2 A14B: the high-noise expert
    std::shared_ptr<const CausalDitModel> causal;  // the live stream's: `dit`, or the --generator file's DiT
    std::string generator;                         // that file, or "" (the stream runs `dit`)
    std::shared_ptr<WanVae> vae;               // Wan2.1 models
    std::shared_ptr<Vae22Model> vae22;         // TI2V-5B
    std::unique_ptr<ClipVisionEncoder> clip;  // image-to-video models only
    bool demo = false;
    std::string ckpt_dir;
    bool i2v() const { return parts.dit_config.is_i2v(); }      // a picture is required (i2v, flf2v, i2v-A14B)
    bool flf2v() const { return parts.dit_config.is_flf2v(); }  // ... and a last picture too
    bool moe() const { return parts.moe(); }
    bool ti2v() const { return parts.ti2v(); }
    // What the model does: t2v, i2v, flf2v, ti2v, t2v-A14B or i2v-A14B (GET /v1/health's "task").
    std::string task() const;
    // What a job runs (its status's request.task): task(), except TI2V-5B: i2v with a picture, else t2v.
    std::string job_task(bool has_image) const;
    TaskDefaultsKey defaults_key() const;  // the CLI's defaults for this model (pipeline/generate.h)
    std::mutex compute;  // held for every forward (jobs and stream chunks take turns)

    // ckpt_dir "" = the built-in demo model: the text-to-video one, with task "i2v-14B" the
    // image-to-video one, "flf2v-14B" the first-last-frame one, "t2v-A14B" / "i2v-A14B" the two-expert
    // ones, "ti2v-5B" the TI2V one. A folder: Wan2.1 T2V, I2V or FLF2V, Wan2.2 A14B (T2V or I2V) or
    // TI2V-5B (its task is its own; `task`, when given, must match).
    // generator: a CausVid / Self-Forcing / StreamDiffusionV2 checkpoint whose DiT (same config as the
    // folder's) the live stream runs instead of `dit`; jobs keep `dit`. Only for models with a stream.
    static std::unique_ptr<ServeModel> load(const std::string& ckpt_dir, std::shared_ptr<Backend> be,
                                            const StageFn& on_stage = {}, const std::string& task = "",
                                            const std::string& generator = "");
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
    std::shared_ptr<const RgbImage> image;       // image-to-video: the uploaded picture (flf2v: the first frame)
    std::shared_ptr<const RgbImage> last_image;  // first-last-frame-to-video: the last frame
    double guide_high = 0;                       // Wan2.2 A14B: the high-noise expert's g (opt.guide_scale: the low's)
    std::string task;                            // what runs (ServeModel::job_task), for the job's status
    int64_t video_w = 0, video_h = 0;       // the video's size (i2v: from the picture's aspect)
};
struct RequestLimits {
    int64_t max_pixels_frames = int64_t(1280) * 720 * 81;  // width·height·frame_num
    int max_steps = 100;
    size_t max_prompt_bytes = 4096;
    int64_t max_image_pixels = int64_t(4096) * 4096;  // an uploaded picture's width·height
};
// Throws wanrt::Error "[serve] ..." naming the key and what is accepted. Defaults: `wanrt generate`'s
// (generate_defaults in pipeline/generate.h: the demo's small ones, else the task's official ones), and
// the same size checks (check_supported_size: TI2V-5B refuses sizes off its list with the CLI's and
// Python's line). image: the decoded picture of an i2v, flf2v, i2v-A14B or ti2v job; last_image: the
// last frame of an flf2v job (flf2v_latent_shape: the same size as the first). "sample_guide_scale"
// of an A14B model is g, [low, high] or "low,high" (the CLI's spelling; g alone means (g, g)).
JobRequest parse_job_request(const nlohmann::json& body, const ServeModel& m, const RequestLimits& lim,
                             std::shared_ptr<const RgbImage> image = nullptr,
                             std::shared_ptr<const RgbImage> last_image = nullptr);
// "" when the model takes what was sent, else the one-line reason naming what to send (the HTTP layer
// answers 422): an image sent to a text-to-video model, none sent to an image-to-video model, a
// "last_image" sent to a model that is not first-last-frame, or none to one that is.
std::string task_mismatch(const ServeModel& m, bool has_image, bool has_last_image = false);

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
    // A Wan2.2 A14B job's denoising (stages reported through set_stage); returns the final latent.
    Tensor run_moe(const JobRequest& r, const std::function<void(const char*)>& set_stage,
                   const T2VStepCallback& on_step);
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
// The StreamV2V options of a config (the steps prefix, noise scale), as the session builds them;
// bench serve builds its bare stream loop from the same.
StreamOptions stream_options(const StreamConfig& c);

// Where one chunk's time went on the server, ms (the "parts" of the chunk stats message; bench serve
// prints their medians). decode and copy are summed over the chunk's frames, whichever thread ran them.
// The two paths move different things, so upload and download mean different work:
//   serial (push_frame / push_rgb)   f32 between host and device, converted on the host;
//   pipelined (push_rgb8)            u8 between host and device, converted on the device (ops/rgb8.h).
struct ChunkTimes {
    double decode = 0;    // JPEG → RGB (RGBA → RGB) of the incoming frames (pipelined: on the codec pool)
    double wait = 0;      // the stream thread waiting for those decodes (pipelined; on the critical path)
    double copy = 0;      // the frames into the chunk: serial, appended to its RGB buffer; pipelined, the
                          // decoded buffers moved in (no bytes copied)
    double upload = 0;    // serial: u8 → f32 on the host + the f32 [3, n, H, W] upload (rgb24_to_video);
                          // pipelined: the u8 frames copied into a device [n, H, W, 3] + rgb8_to_video
    double model = 0;     // StreamV2V::push + synchronize (what bench causal --v2v times)
    double download = 0;  // serial: the f32 [3, m, H, W] download + f32 → u8 on the host (video_to_rgb24);
                          // pipelined: video_to_rgb8 on the device + the u8 download, frame by frame
    double encode = 0;    // RGB → JPEG of the outgoing frames (0 for raw; pipelined: wall time of the
                          // parallel encodes)
    double send = 0;      // WebSocket writes of the outgoing frames
    nlohmann::json to_json() const;
};

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
    // The serial path (decode, then push_rgb, on the caller's thread): the reference StreamPipeline
    // is tested against.
    std::vector<std::vector<uint8_t>> push_frame(const uint8_t* data, size_t bytes);
    // One decoded frame, width·height·3 RGB bytes (stream_frame_rgb): gathered, and when the chunk is
    // complete run through the model (holding model.compute); returns the restyled frames.
    std::vector<std::vector<uint8_t>> push_rgb(std::vector<uint8_t> rgb);
    // The pipelined path (StreamPipeline; one session uses one path): a decoded frame, width·height·3
    // RGB bytes (stream_frame_rgb, run by the caller's threads), kept as it came (moved, not copied).
    // When the chunk is complete its frames are copied into a u8 [n, H, W, 3] on the device, converted
    // there (ops::rgb8_to_video), run, and the restyled [3, m, H, W] converted there too
    // (ops::video_to_rgb8) and downloaded as u8, each frame into its own buffer (m = 0 while the batch
    // fills): raw frames go out as they are, JPEG ones are encoded by the caller's threads. The bytes
    // equal push_rgb's (the ops' formulas are the host ones).
    struct RestyledHost {
        bool ran = false;                          // the chunk was complete and ran
        std::vector<std::vector<uint8_t>> frames;  // m × [H, W, 3]
        int64_t height = 0, width = 0;
    };
    RestyledHost push_rgb8(std::vector<uint8_t> rgb);
    int64_t gathered_frames() const { return pending_frames_; }  // frames of the chunk being gathered
    const StreamStats& stats() const;
    double last_chunk_seconds() const { return last_chunk_s_; }
    ChunkTimes& times() { return times_; }          // the last chunk's
    ChunkTimes& gathering() { return gathering_; }  // the chunk being gathered (decode and wait added by the pipeline)

private:
    ServeModel& model_;
    StreamConfig cfg_;
    std::unique_ptr<StreamV2V> stream_;
    std::vector<uint8_t> pending_;  // [n, H, W, 3] RGB of the chunk being gathered (push_rgb)
    std::vector<std::vector<uint8_t>> pending_frames_rgb_;  // n × [H, W, 3] (push_rgb8)
    int64_t pending_frames_ = 0;
    double last_chunk_s_ = 0;
    ChunkTimes times_, gathering_;
};

}  // namespace wanrt::serve
