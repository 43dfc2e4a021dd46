// The server's model, job queue and live-stream session (engine.h says what each does and why).
#include "server/engine.h"
#include "server/stream_pipeline.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "ops/ops.h"
#include "ops/rgb8.h"
#include "models/lora.h"
#include "pipeline/causal_staged.h"
#include "pipeline/demo.h"
#include "pipeline/flf2v.h"
#include "pipeline/i2v.h"
#include "pipeline/moe.h"
#include "pipeline/ti2v.h"
#include "text/tokenizer.h"
#include "video/video_writer.h"

namespace wanrt::serve {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- model

std::unique_ptr<ServeModel> ServeModel::load(const std::string& ckpt_dir, std::shared_ptr<Backend> be,
                                             const StageFn& on_stage, const std::string& task,
                                             const std::string& generator) {
    auto m = std::make_unique<ServeModel>();
    m->demo = ckpt_dir.empty();
    m->ckpt_dir = ckpt_dir;
    WANRT_CHECK(task.empty() || task == "t2v-1.3B" || task == "t2v-14B" || task == "i2v-14B" || task == "flf2v-14B" ||
                    task == "t2v-A14B" || task == "i2v-A14B" || task == "ti2v-5B",
                "serve", "--task ", task,
                " is not served; use t2v-1.3B, t2v-14B, i2v-14B, flf2v-14B, t2v-A14B, i2v-A14B or ti2v-5B (or leave it "
                "out to serve the folder's model)");
    const bool want_moe = task == "t2v-A14B" || task == "i2v-A14B", want_flf2v = task == "flf2v-14B";
    const bool want_i2v = task == "i2v-14B" || task == "i2v-A14B" || want_flf2v, want_ti2v = task == "ti2v-5B";
    m->parts = !m->demo     ? open_model_folder(ckpt_dir)
               : want_moe   ? demo_moe_model_parts(want_i2v)
               : want_flf2v ? demo_flf2v_model_parts()
               : want_i2v   ? demo_i2v_model_parts()
               : want_ti2v  ? demo_ti2v_model_parts()
                            : demo_model_parts();
    const DitConfig& dc = m->parts.dit_config;
    WANRT_CHECK(m->demo || task.empty() ||
                    (want_i2v == dc.is_i2v() && want_flf2v == dc.is_flf2v() && want_moe == m->parts.moe() &&
                     want_ti2v == m->parts.ti2v()),
                "serve", "--task ", task, " does not match ", ckpt_dir, ", which holds ", m->parts.kind,
                "; leave out --task to serve the folder's model");
    // Wan2.1 I2V / FLF2V condition on CLIP features; Wan2.2's i2v-A14B experts have no CLIP branch.
    WANRT_CHECK(!dc.is_i2v() || dc.has_clip() || m->parts.moe(), "serve", ckpt_dir,
                " holds an image-to-video model without the CLIP branch (", m->parts.kind,
                "); serve runs the Wan2.1 I2V and FLF2V models and the Wan2.2 I2V-A14B experts");
    // The live stream's causal DiT takes Wan2.1 text-to-video inputs; an i2v or flf2v DiT (36 input
    // channels), TI2V (48 latent channels, the Wan2.2 VAE) and the A14B experts (two models, a
    // per-step switch the stream does not have) have none.
    const bool streams = !dc.is_i2v() && !m->parts.ti2v() && !m->parts.moe();
    // The generator file is opened (its header and key names, no weights) before anything loads.
    CausalDitSource gen;
    if (!generator.empty()) {
        WANRT_CHECK(streams, "serve", "--generator replaces the live stream's DiT, and ", m->parts.name, " (",
                    m->parts.kind, ") has no live stream; serve a Wan2.1 text-to-video model with it");
        std::error_code ec;
        WANRT_CHECK(fs::is_regular_file(generator, ec), "serve", "--generator ", generator,
                    " is not a file; pass a CausVid / StreamDiffusionV2 checkpoint (.pt, .pth or .safetensors)");
        gen = open_generator(generator);  // "[causal] ... holds no DiT" when it has none
        m->generator = generator;
    }
    m->be = std::move(be);
    auto stage = [&](const char* s) {
        if (on_stage) on_stage(s);
    };
    stage("load tokenizer");
    m->tokenizer = std::make_unique<text::T5Tokenizer>(m->parts.tokenizer, dc.text_len);
    stage("load text encoder");
    m->t5 = T5Encoder::load(m->parts.t5_weights(), *m->be);
    WANRT_CHECK(m->t5.config.dim == dc.text_dim, "serve", "the text encoder's width ", m->t5.config.dim,
                " differs from the DiT's text_dim ", dc.text_dim, " (", m->parts.name, ")");
    if (m->parts.moe()) {  // both experts resident: one config (moe.h); dit_weights is the low-noise one
        stage("load DiT (high-noise expert)");
        m->dit_high = std::make_shared<DitModel>(dc, m->parts.high_noise_weights(), *m->be);
        stage("load DiT (low-noise expert)");
    } else {
        stage("load DiT");
    }
    m->dit = std::make_shared<DitModel>(dc, m->parts.dit_weights(), *m->be);
    if (gen.src) {  // a second DiT, the stream's alone (the shape checks name the file on a mismatch)
        stage("load the live stream's DiT (--generator)");
        m->causal = std::make_shared<CausalDitModel>(load_dit_with_lora(dc, gen.src, *m->be, gen.prefix, {}));
    } else if (streams) {
        m->causal = std::make_shared<CausalDitModel>(m->dit);
    }
    if (dc.has_clip()) {
        stage("load CLIP");
        m->clip = std::make_unique<ClipVisionEncoder>(m->parts.clip_config, m->parts.clip_weights(), *m->be);
    }
    stage("load VAE");
    if (m->parts.ti2v())
        m->vae22 = Vae22Model::load(m->parts.vae_weights(), m->parts.vae22_config, m->be);
    else
        m->vae = WanVae::load(m->parts.vae_weights(), m->parts.vae_config, m->be);
    return m;
}

ServeModel::~ServeModel() = default;

TaskDefaultsKey ServeModel::defaults_key() const {
    return task_defaults_key(parts, demo, ckpt_dir);
}

std::string ServeModel::task() const {
    if (moe()) return i2v() ? "i2v-A14B" : "t2v-A14B";
    return ti2v() ? "ti2v" : flf2v() ? "flf2v" : i2v() ? "i2v" : "t2v";
}

std::string ServeModel::job_task(bool has_image) const {
    if (ti2v()) return has_image ? "i2v" : "t2v";  // TI2V-5B: a picture makes it image-to-video
    return task();
}

Tensor ServeModel::encode(const std::string& prompt) const {
    const std::vector<int32_t> ids = tokenizer->tokenize(prompt).real_ids();
    return t2v_encode_prompt(t5, ids, parts.dit_config.text_len);
}

// ---------------------------------------------------------------- requests

namespace {

int64_t get_int(const json& v, const char* key, int64_t lo, int64_t hi) {
    WANRT_CHECK(v.is_number_integer(), "serve", "\"", key, "\" must be an integer");
    const int64_t x = v.get<int64_t>();
    WANRT_CHECK(x >= lo && x <= hi, "serve", "\"", key, "\" is ", x, "; it must be in [", lo, ", ", hi, "]");
    return x;
}
double get_num(const json& v, const char* key) {
    WANRT_CHECK(v.is_number() && std::isfinite(v.get<double>()), "serve", "\"", key, "\" must be a finite number");
    return v.get<double>();
}
std::string get_str(const json& v, const char* key, size_t max_bytes) {
    WANRT_CHECK(v.is_string(), "serve", "\"", key, "\" must be a string");
    std::string s = v.get<std::string>();
    WANRT_CHECK(s.size() <= max_bytes, "serve", "\"", key, "\" is ", s.size(), " bytes; the limit is ", max_bytes);
    return s;
}

}  // namespace

std::string task_mismatch(const ServeModel& m, bool has_image, bool has_last_image) {
    const std::string model = "[serve] model " + m.parts.name + " (" + m.parts.kind + ")";
    if (has_last_image && !m.flf2v())
        return model +
               " is not first-last-frame: leave out \"last_image\", or start wanrt serve with an FLF2V "
               "model (--ckpt_dir Wan2.1-FLF2V-14B-720P, or --task flf2v-14B for the demo)";
    if (m.flf2v() && !(has_image && has_last_image))
        return model +
               " is first-last-frame-to-video: send the first frame as \"image\" and the last as "
               "\"last_image\" (base64 in JSON, or multipart: curl -F image=@first.png -F last_image=@last.png "
               "-F prompt=...)";
    if (m.ti2v()) return {};  // TI2V-5B: a picture makes it image-to-video, none text-to-video
    if (has_image && !m.i2v())
        return model +
               " has no i2v: it makes video from text only; leave out \"image\", or start wanrt serve with "
               "an image-to-video model (--ckpt_dir Wan2.1-I2V-14B-480P, or --task i2v-14B for the demo)";
    if (!has_image && m.i2v())
        return model +
               " is image-to-video: send a picture as \"image\" (base64 in JSON, or multipart: curl -F "
               "image=@in.png -F prompt=...)";
    return {};
}

namespace {

// "sample_guide_scale": g for one model; an A14B model also takes the CLI's pair, [low, high] or
// "low,high" (g alone means (g, g), as `wanrt generate`).
std::pair<double, double> get_guide(const json& v, bool moe) {
    const char* what = moe ? "\"sample_guide_scale\" must be a finite number, or [low, high] for the two experts "
                             "(e.g. [3.0, 4.0])"
                           : "\"sample_guide_scale\" must be a finite number (one DiT: the low,high pair is for "
                             "the Wan2.2 A14B experts)";
    if (v.is_number()) {
        const double g = get_num(v, "sample_guide_scale");
        return {g, g};
    }
    json pair = v;
    if (moe && v.is_string()) {  // a multipart field: "3.0,4.0"
        const std::string s = v.get<std::string>();
        pair = json::parse("[" + s.substr(0, 64) + "]", nullptr, false);
    }
    WANRT_CHECK(moe && pair.is_array() && pair.size() == 2 && pair[0].is_number() && pair[1].is_number(), "serve",
                what);
    return {get_num(pair[0], "sample_guide_scale"), get_num(pair[1], "sample_guide_scale")};
}

}  // namespace

JobRequest parse_job_request(const json& body, const ServeModel& m, const RequestLimits& lim,
                             std::shared_ptr<const RgbImage> image, std::shared_ptr<const RgbImage> last_image) {
    WANRT_CHECK(body.is_object(), "serve", "the request body must be a JSON object such as {\"prompt\": \"a cat\"}");
    const std::string mismatch = task_mismatch(m, image != nullptr, last_image != nullptr);
    if (!mismatch.empty()) throw Error(mismatch);
    JobRequest r;
    r.task = m.job_task(image != nullptr);
    r.image = std::move(image);
    r.last_image = std::move(last_image);
    const bool i2v = m.i2v();
    const TaskDefaultsKey key = m.defaults_key();
    const GenerateDefaults dflt = generate_defaults(key);  // `wanrt generate`'s
    parse_request_size(dflt.size, &r.opt.width, &r.opt.height);
    r.opt.frame_num = dflt.frame_num;
    r.opt.sample_steps = dflt.sample_steps;
    r.opt.guide_scale = dflt.guide.front();  // A14B: {low, high}, the config's pair
    r.guide_high = dflt.guide.back();
    r.neg_prompt = dflt.neg_prompt;
    bool has_prompt = false, has_shift = false;
    {
        std::random_device rd;
        r.seed = ((uint64_t(rd()) << 32) | rd()) & 0x7fffffffffffffffull;
    }
    for (auto it = body.begin(); it != body.end(); ++it) {
        const std::string& k = it.key();
        const json& v = it.value();
        if (k == "prompt") {
            r.prompt = get_str(v, "prompt", lim.max_prompt_bytes);
            has_prompt = true;
        } else if (k == "neg_prompt") {
            r.neg_prompt = get_str(v, "neg_prompt", lim.max_prompt_bytes);
        } else if (k == "size") {
            parse_request_size(get_str(v, "size", 32), &r.opt.width, &r.opt.height);  // Python's rule and line
        } else if (k == "width") {
            r.opt.width = get_int(v, "width", 16, 8192);
        } else if (k == "height") {
            r.opt.height = get_int(v, "height", 16, 8192);
        } else if (k == "frame_num") {
            r.opt.frame_num = get_int(v, "frame_num", 1, 1001);
        } else if (k == "sample_steps") {
            r.opt.sample_steps = int(get_int(v, "sample_steps", 1, lim.max_steps));
        } else if (k == "sample_shift") {
            r.opt.sample_shift = get_num(v, "sample_shift");
            has_shift = true;
            WANRT_CHECK(r.opt.sample_shift > 0, "serve", "\"sample_shift\" must be positive (official: 5)");
        } else if (k == "sample_guide_scale") {
            std::tie(r.opt.guide_scale, r.guide_high) = get_guide(v, m.moe());
        } else if (k == "sample_solver") {
            r.opt.solver = get_str(v, "sample_solver", 16);
            WANRT_CHECK(r.opt.solver == "unipc" || r.opt.solver == "dpm++" || r.opt.solver == "euler", "serve",
                        "unknown \"sample_solver\" \"", r.opt.solver, "\"; use unipc, dpm++ or euler");
        } else if (k == "seed" || k == "base_seed") {
            r.seed = uint64_t(get_int(v, "seed", 0, INT64_MAX));
        } else if (k == "format") {
            r.format = get_str(v, "format", 8);
            WANRT_CHECK(r.format == "y4m" || r.format == "mp4", "serve", "unknown \"format\" \"", r.format,
                        "\"; use y4m or mp4");
#ifndef WANRT_HAVE_FFMPEG
            WANRT_CHECK(r.format == "y4m", "serve",
                        "this server was built without FFmpeg; ask for \"format\": \"y4m\"");
#endif
        } else {
            fail("serve", "unknown option \"", k,
                 "\"; accepted: prompt, neg_prompt, size, width, height, frame_num, "
                 "sample_steps, sample_shift, sample_guide_scale, sample_solver, seed, format");
        }
    }
    WANRT_CHECK(has_prompt && !r.prompt.empty(), "serve", "\"prompt\" is required and must not be empty");
    WANRT_CHECK(r.opt.width > 0 && r.opt.height > 0 && r.opt.width % 16 == 0 && r.opt.height % 16 == 0, "serve",
                "size ", r.opt.width, "*", r.opt.height, " must have positive multiples of 16 (e.g. 832*480)");
    WANRT_CHECK(r.opt.width * r.opt.height * r.opt.frame_num <= lim.max_pixels_frames, "serve", "size ", r.opt.width,
                "*", r.opt.height, " with ", r.opt.frame_num, " frames is over this server's limit of ",
                lim.max_pixels_frames, " pixels x frames; ask for fewer frames or a smaller size");
    const std::string size = std::to_string(r.opt.width) + "*" + std::to_string(r.opt.height);
    check_supported_size(key, size);  // TI2V-5B refuses sizes off its list
    if (!has_shift) r.opt.sample_shift = default_sample_shift(key, size);
    if (m.ti2v()) {
        const TI2VImage img{r.image ? r.image->rgb.data() : nullptr, r.image ? r.image->height : 0,
                            r.image ? r.image->width : 0};
        const TI2VLatentShape s = ti2v_shape(img, r.opt, m.parts.dit_config, m.parts.vae22_config);  // ([ti2v] ...)
        r.video_w = s.i2v ? s.image.out_w : r.opt.width;
        r.video_h = s.i2v ? s.image.out_h : r.opt.height;
    } else if (m.flf2v()) {  // the size from the first frame; the last must match it ([flf2v] ...)
        const I2VSize s =
            flf2v_latent_shape({3, r.image->height, r.image->width}, {3, r.last_image->height, r.last_image->width},
                               r.opt, m.parts.dit_config, m.parts.vae_config)
                .size;
        r.video_w = s.w;
        r.video_h = s.h;
    } else if (i2v) {
        const I2VSize s = i2v_latent_shape(r.image->height, r.image->width, r.opt, m.parts.dit_config,
                                           m.parts.vae_config)
                              .size;  // the pipeline's own checks ([i2v] ...)
        r.video_w = s.w;
        r.video_h = s.h;
    } else {
        t2v_latent_shape(r.opt, m.parts.dit_config, m.parts.vae_config);  // the pipeline's own checks ([t2v] ...)
        r.video_w = r.opt.width;
        r.video_h = r.opt.height;
    }
    return r;
}

const char* to_string(JobStatus s) {
    switch (s) {
        case JobStatus::Queued:
            return "queued";
        case JobStatus::Running:
            return "running";
        case JobStatus::Done:
            return "done";
        case JobStatus::Failed:
            return "failed";
        case JobStatus::Cancelled:
            return "cancelled";
    }
    return "?";
}

std::string random_id(size_t bytes) {
    static const char* hex = "0123456789abcdef";
    std::random_device rd;
    std::string s;
    for (size_t i = 0; i < bytes; ++i) {
        const unsigned v = rd() & 0xff;
        s += hex[v >> 4];
        s += hex[v & 15];
    }
    return s;
}

// ---------------------------------------------------------------- queue

JobQueue::JobQueue(ServeModel& model, size_t max_queued, size_t keep_finished)
    : model_(model), max_queued_(max_queued), keep_finished_(keep_finished) {
    std::string tmpl = (fs::temp_directory_path() / "wanrt-serve-XXXXXX").string();
    WANRT_CHECK(mkdtemp(tmpl.data()) != nullptr, "serve", "cannot create a private temporary folder in ",
                fs::temp_directory_path().string(), "; set TMPDIR to a writable folder");
    dir_ = tmpl;  // mkdtemp makes it 0700
    t0_ = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    thread_ = std::thread([this] { worker(); });
}

JobQueue::~JobQueue() {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void JobQueue::stop() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
        for (auto& [id, j] : jobs_) j->cancel = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

double JobQueue::now() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count() - t0_;
}

void JobQueue::touch(Job& j) {
    ++j.version;
    cv_.notify_all();
}

std::pair<std::string, size_t> JobQueue::submit(JobRequest req) {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) throw QueueClosed{};
    if (queue_.size() >= max_queued_) throw QueueFull{};
    auto j = std::make_shared<Job>();
    j->id = random_id();
    j->req = std::move(req);
    j->steps = j->req.opt.sample_steps;
    j->created = now();
    jobs_[j->id] = j;
    queue_.push_back(j);
    cv_.notify_all();
    return {j->id, queue_.size() - 1};
}

json JobQueue::to_json(const Job& j) const {
    json o{{"id", j.id}, {"status", to_string(j.status)}, {"step", j.step}, {"steps", j.steps}};
    o["progress"] = j.status == JobStatus::Done ? 1.0 : j.steps ? double(j.step) / double(j.steps + 1) : 0.0;
    if (!j.stage.empty()) o["stage"] = j.stage;
    if (j.status == JobStatus::Queued) {
        size_t pos = 0;
        for (const auto& q : queue_) {
            if (q.get() == &j) break;
            ++pos;
        }
        o["position"] = pos;
    }
    if (j.cancel && (j.status == JobStatus::Queued || j.status == JobStatus::Running)) o["cancelling"] = true;
    if (!j.error.empty()) o["error"] = j.error;
    if (j.status == JobStatus::Done) {
        o["result"] = "/v1/jobs/" + j.id + "/result";
        o["format"] = j.req.format;
    }
    const JobRequest& r = j.req;
    o["request"] = {{"prompt", r.prompt},
                    {"size", std::to_string(r.video_w) + "*" + std::to_string(r.video_h)},
                    {"frame_num", r.opt.frame_num},
                    {"sample_steps", r.opt.sample_steps},
                    {"seed", r.seed}};
    o["request"]["task"] = r.task;
    if (r.image) {
        o["request"]["image_size"] = std::to_string(r.image->width) + "*" + std::to_string(r.image->height);
        o["request"]["max_area"] = std::to_string(r.opt.width) + "*" + std::to_string(r.opt.height);
    }
    if (r.last_image)
        o["request"]["last_image_size"] =
            std::to_string(r.last_image->width) + "*" + std::to_string(r.last_image->height);
    if (j.started > 0) o["queued_seconds"] = j.started - j.created;
    if (j.finished > 0 && j.started > 0) o["run_seconds"] = j.finished - j.started;
    return o;
}

bool JobQueue::describe(const std::string& id, json& out) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return false;
    out = to_json(*it->second);
    return true;
}

bool JobQueue::cancel(const std::string& id, json& out) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return false;
    const std::shared_ptr<Job> j = it->second;
    if (j->status == JobStatus::Queued) {
        for (auto q = queue_.begin(); q != queue_.end(); ++q)
            if (*q == j) {
                queue_.erase(q);
                break;
            }
        j->status = JobStatus::Cancelled;
        j->cancel = true;
        j->finished = now();
        finished_.push_back(j->id);
        touch(*j);
    } else if (j->status == JobStatus::Running) {
        j->cancel = true;  // the worker sees it at the next step
        touch(*j);
    } else {  // finished: forget it and its file
        out = to_json(*j);
        out["deleted"] = true;
        std::error_code ec;
        if (!j->result_path.empty()) fs::remove(j->result_path, ec);
        jobs_.erase(it);
        for (auto f = finished_.begin(); f != finished_.end(); ++f)
            if (*f == id) {
                finished_.erase(f);
                break;
            }
        touch(*j);
        return true;
    }
    out = to_json(*j);
    evict_finished();
    return true;
}

bool JobQueue::result(const std::string& id, std::string& path, std::string& format, JobStatus& status) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return false;
    status = it->second->status;
    path = status == JobStatus::Done ? it->second->result_path : std::string();
    format = it->second->req.format;
    return true;
}

size_t JobQueue::queued() const {
    std::lock_guard<std::mutex> lk(mu_);
    return queue_.size();
}

void JobQueue::evict_finished() {
    while (finished_.size() > keep_finished_) {
        auto it = jobs_.find(finished_.front());
        if (it != jobs_.end()) {
            std::error_code ec;
            if (!it->second->result_path.empty()) fs::remove(it->second->result_path, ec);
            jobs_.erase(it);
        }
        finished_.pop_front();
    }
}

void JobQueue::worker() {
    for (;;) {
        std::shared_ptr<Job> j;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            j = queue_.front();
            queue_.pop_front();
            j->status = JobStatus::Running;
            j->started = now();
            touch(*j);
        }
        run_job(j);
    }
}

namespace {

// A picture as the pipelines take it: f32 [3, h0, w0] in [−1, 1] on be (`wanrt generate`'s conversion).
Tensor picture_tensor(const RgbImage& pic, Backend& be) {
    Rgb24Video v;
    v.frames = 1;
    v.height = pic.height;
    v.width = pic.width;
    v.rgb = pic.rgb;
    return ops::contiguous(rgb24_to_video(v, be).select(1, 0));  // [3, 1, h0, w0] → [3, h0, w0]
}

}  // namespace

// The A14B chain of generate_moe_t2v / generate_moe_i2v in stages (so the job reports them), with the
// boundary of the task's config (the CLI has no flag for it either) and the request's guide pair.
Tensor JobQueue::run_moe(const JobRequest& r, const std::function<void(const char*)>& set_stage,
                         const T2VStepCallback& on_step) {
    const ServeModel& m = model_;
    MoeOptions moe;
    moe.boundary = moe_defaults(m.i2v()).boundary;
    moe.guide_scale_high = r.guide_high;
    moe.offload = false;  // both experts are resident for the server's life
    moe_check(moe, m.dit_high->config(), m.dit->config());
    Shape latent_shape;
    int64_t seq_len = 0;
    Tensor image;
    I2VSize size;
    if (m.i2v()) {
        const I2VLatentShape s =
            i2v_latent_shape(r.image->height, r.image->width, r.opt, m.parts.dit_config, m.parts.vae_config);
        latent_shape = s.latent;
        seq_len = s.seq_len;
        size = s.size;
    } else {
        const T2VLatentShape s = t2v_latent_shape(r.opt, m.parts.dit_config, m.parts.vae_config);
        latent_shape = s.latent;
        seq_len = s.seq_len;
    }
    set_stage("encode text");
    const Tensor context = m.encode(r.prompt), context_null = m.encode(r.neg_prompt);
    Tensor y;  // i2v-A14B: the Wan2.1 I2V conditioning, without CLIP features
    if (m.i2v()) {
        set_stage("encode image");
        y = i2v_condition(*m.vae, picture_tensor(*r.image, *m.be), r.opt.frame_num, size);
    }
    set_stage("denoise");
    const Tensor noise = t2v_noise(*m.be, latent_shape, r.seed);
    const ExpertFn expert = [&m](bool high) -> const DitModel& { return high ? *m.dit_high : *m.dit; };
    return cfg_denoise(moe_step_selector(moe, r.opt, expert), DitSample{{}, y, context, {}, 0},
                       DitSample{{}, y, context_null, {}, 0}, noise, r.opt, seq_len, on_step);
}

void JobQueue::run_job(const std::shared_ptr<Job>& j) {
    auto set_stage = [&](const char* s) {
        if (j->cancel) throw JobCancelled{};
        std::lock_guard<std::mutex> lk(mu_);
        j->stage = s;
        touch(*j);
    };
    JobStatus end = JobStatus::Done;
    std::string error, path;
    try {
        const JobRequest& r = j->req;
        std::lock_guard<std::mutex> compute(model_.compute);
        auto on_step = [&](const T2VStepInfo& s) {
            {
                std::lock_guard<std::mutex> lk(mu_);
                j->step = s.index + 1;
                touch(*j);
            }
            if (j->cancel) throw JobCancelled{};  // cooperative cancel, between steps
        };
        Tensor latent, video;
        if (model_.ti2v()) {  // Wan2.2 TI2V-5B: the picture (optional) conditions the first latent frame
            const TI2VImage img{r.image ? r.image->rgb.data() : nullptr, r.image ? r.image->height : 0,
                                r.image ? r.image->width : 0};
            const TI2VLatentShape shape = ti2v_shape(img, r.opt, model_.parts.dit_config, model_.parts.vae22_config);
            set_stage("denoise");
            const std::vector<int32_t> ids = model_.tokenizer->tokenize(r.prompt).real_ids();
            const std::vector<int32_t> neg = model_.tokenizer->tokenize(r.neg_prompt).real_ids();
            const Tensor noise = t2v_noise(*model_.be, shape.latent, r.seed);
            video = generate_ti2v(model_.t5, *model_.dit, *model_.vae22, ids, neg, img, noise, r.opt, on_step).video;
        } else if (model_.moe()) {  // Wan2.2 A14B: pipeline/moe.h's chain with both experts resident
            latent = run_moe(r, set_stage, on_step);
        } else if (model_.flf2v()) {  // first-last-frame: pipeline/flf2v.h's stages with the resident models
            const RgbImage &first_pic = *r.image, &last_pic = *r.last_image;
            const I2VLatentShape shape =
                flf2v_latent_shape({3, first_pic.height, first_pic.width}, {3, last_pic.height, last_pic.width}, r.opt,
                                   model_.parts.dit_config, model_.parts.vae_config);
            set_stage("encode text");
            const Tensor context = model_.encode(r.prompt), context_null = model_.encode(r.neg_prompt);
            set_stage("encode image");
            const Tensor first = picture_tensor(first_pic, *model_.be), last = picture_tensor(last_pic, *model_.be);
            const Tensor clip_fea = flf2v_clip_features(*model_.clip, first, last);  // [2·tokens, 1280]
            const Tensor y = flf2v_condition(*model_.vae, first, last, r.opt.frame_num, shape.size);
            set_stage("denoise");
            const Tensor noise = t2v_noise(*model_.be, shape.latent, r.seed);
            latent = i2v_denoise(*model_.dit, context, context_null, clip_fea, y, noise, r.opt, shape.seq_len, on_step);
        } else if (r.image) {  // image-to-video: pipeline/i2v.h's stages with the resident models
            const RgbImage& pic = *r.image;
            const I2VLatentShape shape =
                i2v_latent_shape(pic.height, pic.width, r.opt, model_.parts.dit_config, model_.parts.vae_config);
            set_stage("encode text");
            const Tensor context = model_.encode(r.prompt), context_null = model_.encode(r.neg_prompt);
            set_stage("encode image");
            const Tensor image = picture_tensor(pic, *model_.be);  // [3, h0, w0]
            const Tensor clip_fea = i2v_clip_features(*model_.clip, image);
            const Tensor y = i2v_condition(*model_.vae, image, r.opt.frame_num, shape.size);
            set_stage("denoise");
            const Tensor noise = t2v_noise(*model_.be, shape.latent, r.seed);
            latent = i2v_denoise(*model_.dit, context, context_null, clip_fea, y, noise, r.opt, shape.seq_len, on_step);
        } else {
            const T2VLatentShape shape = t2v_latent_shape(r.opt, model_.parts.dit_config, model_.parts.vae_config);
            set_stage("encode text");
            const Tensor context = model_.encode(r.prompt), context_null = model_.encode(r.neg_prompt);
            set_stage("denoise");
            const Tensor noise = t2v_noise(*model_.be, shape.latent, r.seed);
            latent = t2v_denoise(*model_.dit, context, context_null, noise, r.opt, shape.seq_len, on_step);
        }
        if (!video.defined()) {
            set_stage("decode");
            video = t2v_decode(*model_.vae, latent);
        }
        set_stage("write");
        path = (fs::path(dir_) / (j->id + "." + r.format)).string();
        VideoWriteOptions wo;
        wo.fps = sample_fps(model_.parts);  // as `wanrt generate`: TI2V-5B 24, the others 16
        write_video(path, video, wo);
    } catch (const JobCancelled&) {
        end = JobStatus::Cancelled;
    } catch (const Error& e) {
        end = JobStatus::Failed;
        error = e.what();
    } catch (const std::bad_alloc&) {
        end = JobStatus::Failed;
        error = "[serve] out of memory; ask for a smaller size or fewer frames";
    } catch (const std::exception& e) {
        end = JobStatus::Failed;
        error = std::string("[serve] ") + e.what();
    }
    std::lock_guard<std::mutex> lk(mu_);
    if (end != JobStatus::Done && !path.empty()) {
        std::error_code ec;
        fs::remove(path, ec);
        path.clear();
    }
    j->status = end;
    j->error = error;
    j->result_path = path;
    j->finished = now();
    if (end == JobStatus::Done) j->stage.clear();
    if (jobs_.count(j->id)) finished_.push_back(j->id);
    touch(*j);
    evict_finished();
}

// ---------------------------------------------------------------- live stream

StreamConfig parse_stream_config(const json& j, const StreamConfig& current) {
    StreamConfig c = current;
    WANRT_CHECK(j.is_object(), "serve", "a stream message must be a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& k = it.key();
        const json& v = it.value();
        if (k == "type") continue;
        if (k == "prompt")
            c.prompt = get_str(v, "prompt", 4096);
        else if (k == "width")
            c.width = get_int(v, "width", 16, 1280);
        else if (k == "height")
            c.height = get_int(v, "height", 16, 1280);
        else if (k == "steps")
            c.steps = int(get_int(v, "steps", 1, 4));
        else if (k == "strength") {
            c.strength = get_num(v, "strength");
            WANRT_CHECK(c.strength > 0 && c.strength <= 1, "serve", "\"strength\" must be in (0, 1]");
        } else if (k == "seed")
            c.seed = uint64_t(get_int(v, "seed", 0, INT64_MAX));
        else if (k == "format") {
            c.format = get_str(v, "format", 8);
            WANRT_CHECK(c.format == "raw" || c.format == "jpeg", "serve", "unknown stream \"format\" \"", c.format,
                        "\"; use raw (RGB bytes) or jpeg");
        } else if (k == "quality")
            c.quality = int(get_int(v, "quality", 1, 100));
        else
            fail("serve", "unknown stream option \"", k,
                 "\"; accepted: prompt, width, height, steps, strength, seed, format, quality");
    }
    WANRT_CHECK(c.width % 16 == 0 && c.height % 16 == 0, "serve", "stream size ", c.width, "x", c.height,
                " must be multiples of 16");
    WANRT_CHECK(!c.prompt.empty(), "serve", "the stream's \"prompt\" must not be empty");
    return c;
}

StreamOptions stream_options(const StreamConfig& c) {
    StreamOptions o;
    static const double kSteps[4] = {700, 500, 400, 200};  // SD 1.3B's list; the page picks a prefix
    o.steps.assign(kSteps, kSteps + c.steps);
    o.noise_scale = c.strength;
    o.validate();
    return o;
}

bool StreamSession::configure(const StreamConfig& c) {
    const bool restart = !stream_ || c.width != cfg_.width || c.height != cfg_.height || c.steps != cfg_.steps ||
                         c.strength != cfg_.strength || c.seed != cfg_.seed;
    const bool new_prompt = !stream_ || c.prompt != cfg_.prompt;
    WANRT_CHECK(model_.causal != nullptr, "serve", "model ", model_.parts.name, " (", model_.parts.kind,
                ") has no live stream (it runs the Wan2.1 text-to-video models): start wanrt serve with one");
    std::lock_guard<std::mutex> compute(model_.compute);
    if (restart) {
        const StreamOptions o = stream_options(c);
        const Tensor context = model_.encode(c.prompt);  // once per prompt
        stream_ = std::make_unique<StreamV2V>(model_.causal, model_.vae, context, o, seeded_noise(c.seed));
        pending_.clear();
        pending_frames_rgb_.clear();
        pending_frames_ = 0;
        gathering_ = ChunkTimes{};
    } else if (new_prompt) {
        stream_->set_prompt(model_.encode(c.prompt));  // used from the next chunk; KV history kept
    }
    cfg_ = c;
    return restart;
}

json ChunkTimes::to_json() const {
    return json{{"decode_ms", decode}, {"wait_ms", wait},         {"copy_ms", copy}, {"upload_ms", upload},
                {"model_ms", model},   {"download_ms", download}, {"encode_ms", encode}, {"send_ms", send}};
}

const StreamStats& StreamSession::stats() const {
    static const StreamStats none;
    return stream_ ? stream_->stats() : none;
}

std::vector<std::vector<uint8_t>> StreamSession::push_frame(const uint8_t* data, size_t bytes) {
    WANRT_CHECK(stream_, "serve", "send a {\"type\": \"config\", ...} message before the first frame");
    const auto t = std::chrono::steady_clock::now();
    std::vector<uint8_t> rgb = stream_frame_rgb(std::vector<uint8_t>(data, data + bytes), cfg_.width, cfg_.height);
    gathering_.decode += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
    return push_rgb(std::move(rgb));
}

std::vector<std::vector<uint8_t>> StreamSession::push_rgb(std::vector<uint8_t> rgb) {
    using clock = std::chrono::steady_clock;
    auto ms_since = [](clock::time_point t) { return std::chrono::duration<double, std::milli>(clock::now() - t).count(); };
    WANRT_CHECK(stream_, "serve", "send a {\"type\": \"config\", ...} message before the first frame");
    const size_t frame_bytes = size_t(cfg_.width * cfg_.height * 3);
    WANRT_CHECK(rgb.size() == frame_bytes, "serve", "a frame of ", rgb.size(), " RGB bytes does not match ", cfg_.width,
                "x", cfg_.height, " (", frame_bytes, ")");
    auto t = clock::now();
    if (pending_frames_ == 0)
        pending_.swap(rgb);  // the chunk's first frame: its buffer becomes the chunk's
    else
        pending_.insert(pending_.end(), rgb.begin(), rgb.end());
    ++pending_frames_;
    gathering_.copy += ms_since(t);
    std::vector<std::vector<uint8_t>> out;
    if (pending_frames_ < stream_->next_chunk_frames()) return out;

    Rgb24Video in;
    in.frames = pending_frames_;
    in.height = cfg_.height;
    in.width = cfg_.width;
    in.rgb.swap(pending_);
    pending_.clear();
    pending_frames_ = 0;
    std::lock_guard<std::mutex> compute(model_.compute);
    const auto t0 = clock::now();
    const Tensor frames = rgb24_to_video(in, *model_.be);  // [3, n, H, W] in [−1, 1]
    gathering_.upload = ms_since(t0);
    const auto t1 = clock::now();
    const Tensor restyled = stream_->push(frames);  // [3, m, H, W] or undefined while the batch fills
    model_.be->synchronize();
    gathering_.model = ms_since(t1);
    last_chunk_s_ = std::chrono::duration<double>(clock::now() - t0).count();
    times_ = gathering_;
    gathering_ = ChunkTimes{};
    if (!restyled.defined()) return out;
    const auto t2 = clock::now();
    const Rgb24Video v = video_to_rgb24(restyled);  // clamps as cache_video
    for (int64_t f = 0; f < v.frames; ++f) out.emplace_back(v.frame(f), v.frame(f) + v.frame_bytes());
    times_.download = ms_since(t2);
    return out;
}

StreamSession::RestyledHost StreamSession::push_rgb8(std::vector<uint8_t> rgb) {
    using clock = std::chrono::steady_clock;
    auto ms_since = [](clock::time_point t) { return std::chrono::duration<double, std::milli>(clock::now() - t).count(); };
    WANRT_CHECK(stream_, "serve", "send a {\"type\": \"config\", ...} message before the first frame");
    const int64_t H = cfg_.height, W = cfg_.width;
    const size_t frame_bytes = size_t(H * W * 3);
    WANRT_CHECK(rgb.size() == frame_bytes, "serve", "a frame of ", rgb.size(), " RGB bytes does not match ", W, "x", H,
                " (", frame_bytes, ")");
    auto t = clock::now();
    pending_frames_rgb_.push_back(std::move(rgb));  // the decoder's buffer itself: no gather copy
    ++pending_frames_;
    gathering_.copy += ms_since(t);
    RestyledHost out;
    if (pending_frames_ < stream_->next_chunk_frames()) return out;

    const int64_t n = pending_frames_;
    std::vector<std::vector<uint8_t>> chunk;
    chunk.swap(pending_frames_rgb_);
    pending_frames_ = 0;
    std::lock_guard<std::mutex> compute(model_.compute);
    const auto t0 = clock::now();
    // Each frame straight from its buffer into its slice of the device chunk (a contiguous [1, H, W, 3]).
    const Tensor bytes = model_.be->empty(DType::U8, {n, H, W, 3});
    for (int64_t f = 0; f < n; ++f) model_.be->upload(bytes.slice(0, f, f + 1), chunk[size_t(f)].data());
    const Tensor frames = ops::rgb8_to_video(bytes);  // [3, n, H, W] in [−1, 1]
    gathering_.upload = ms_since(t0);
    const auto t1 = clock::now();
    const Tensor restyled = stream_->push(frames);  // [3, m, H, W] or undefined while the batch fills
    model_.be->synchronize();
    gathering_.model = ms_since(t1);
    last_chunk_s_ = std::chrono::duration<double>(clock::now() - t0).count();
    times_ = gathering_;
    gathering_ = ChunkTimes{};
    out.ran = true;
    if (!restyled.defined()) return out;
    const auto t2 = clock::now();
    const Tensor back = ops::video_to_rgb8(restyled);  // [m, H, W, 3], clamped as cache_video
    // Frame by frame into the buffers that are sent (raw) or encoded (JPEG): no slicing copy after.
    for (int64_t f = 0; f < back.size(0); ++f) {
        out.frames.emplace_back(frame_bytes);
        back.backend()->download(back.slice(0, f, f + 1), out.frames.back().data());
    }
    back.backend()->synchronize();
    out.height = back.size(1);
    out.width = back.size(2);
    times_.download = ms_since(t2);
    return out;
}

}  // namespace wanrt::serve
