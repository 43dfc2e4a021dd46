// The server's model, job queue and live-stream session (engine.h says what each does and why).
#include "server/engine.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "ops/ops.h"
#include "pipeline/demo.h"
#include "pipeline/i2v.h"
#include "text/tokenizer.h"
#include "video/video_writer.h"

namespace wanrt::serve {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- model

std::unique_ptr<ServeModel> ServeModel::load(const std::string& ckpt_dir, std::shared_ptr<Backend> be,
                                             const StageFn& on_stage, const std::string& task) {
    auto m = std::make_unique<ServeModel>();
    m->demo = ckpt_dir.empty();
    WANRT_CHECK(task.empty() || task == "t2v-1.3B" || task == "t2v-14B" || task == "i2v-14B", "serve", "--task ", task,
                " is not served; use t2v-1.3B, t2v-14B or i2v-14B (or leave it out to serve the folder's model)");
    const bool want_i2v = task == "i2v-14B";
    m->parts = m->demo ? (want_i2v ? demo_i2v_model_parts() : demo_model_parts()) : open_model_folder(ckpt_dir);
    const DitConfig& dc = m->parts.dit_config;
    WANRT_CHECK(!m->parts.moe() && !m->parts.ti2v() && !dc.is_flf2v(), "serve", ckpt_dir, " holds ", m->parts.kind,
                "; serve runs the Wan2.1 text-to-video and image-to-video models: pass a T2V or I2V folder (e.g. "
                "Wan2.1-T2V-1.3B, Wan2.1-I2V-14B-480P)");
    WANRT_CHECK(m->demo || task.empty() || want_i2v == dc.is_i2v(), "serve", "--task ", task, " does not match ",
                ckpt_dir, ", which holds ", m->parts.kind, "; leave out --task to serve the folder's model");
    WANRT_CHECK(!dc.is_i2v() || dc.has_clip(), "serve", ckpt_dir, " holds an image-to-video model without the CLIP "
                "branch (", m->parts.kind, "); serve runs the Wan2.1 I2V models");
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
    stage("load DiT");
    m->dit = std::make_shared<DitModel>(dc, m->parts.dit_weights(), *m->be);
    // The live stream's causal DiT takes text-to-video inputs; an i2v DiT (36 input channels) has none.
    if (!dc.is_i2v()) m->causal = std::make_shared<CausalDitModel>(m->dit);
    if (dc.is_i2v()) {
        stage("load CLIP");
        m->clip = std::make_unique<ClipVisionEncoder>(m->parts.clip_config, m->parts.clip_weights(), *m->be);
    }
    stage("load VAE");
    m->vae = WanVae::load(m->parts.vae_weights(), m->parts.vae_config, m->be);
    return m;
}

ServeModel::~ServeModel() = default;

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

std::string task_mismatch(const ServeModel& m, bool has_image) {
    if (has_image && !m.i2v())
        return "[serve] model " + m.parts.name + " (" + m.parts.kind +
               ") has no i2v: it makes video from text only; leave out \"image\", or start wanrt serve with an "
               "image-to-video model (--ckpt_dir Wan2.1-I2V-14B-480P, or --task i2v-14B for the demo)";
    if (!has_image && m.i2v())
        return "[serve] model " + m.parts.name + " (" + m.parts.kind +
               ") is image-to-video: send a picture as \"image\" (base64 in JSON, or multipart: curl -F "
               "image=@in.png -F prompt=...)";
    return {};
}

JobRequest parse_job_request(const json& body, const ServeModel& m, const RequestLimits& lim,
                             std::shared_ptr<const RgbImage> image) {
    WANRT_CHECK(body.is_object(), "serve", "the request body must be a JSON object such as {\"prompt\": \"a cat\"}");
    const std::string mismatch = task_mismatch(m, image != nullptr);
    if (!mismatch.empty()) throw Error(mismatch);
    JobRequest r;
    r.image = std::move(image);
    const bool i2v = m.i2v();
    const DemoDefaults dd;
    // `wanrt generate`'s defaults (cmd_generate.cpp): the i2v size follows the folder's name (480P).
    const bool folder_480p = m.parts.name.find("480P") != std::string::npos;
    r.opt.width = m.demo ? dd.width : i2v && !folder_480p ? 1280 : 832;
    r.opt.height = m.demo ? dd.height : i2v && !folder_480p ? 720 : 480;
    r.opt.frame_num = m.demo ? dd.frame_num : 81;
    r.opt.sample_steps = m.demo ? dd.sample_steps : i2v ? 40 : 50;
    r.neg_prompt = kWanDefaultNegPrompt;
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
            const std::string s = get_str(v, "size", 32);
            const size_t star = s.find('*');
            try {
                size_t a = 0, b = 0;
                if (star == std::string::npos) throw std::invalid_argument(s);
                r.opt.width = std::stoll(s.substr(0, star), &a);
                r.opt.height = std::stoll(s.substr(star + 1), &b);
                if (a != star || b != s.size() - star - 1) throw std::invalid_argument(s);
            } catch (const std::exception&) {
                fail("serve", "bad \"size\" \"", s, "\"; write it as \"WIDTH*HEIGHT\", e.g. \"832*480\"");
            }
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
            r.opt.guide_scale = get_num(v, "sample_guide_scale");
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
    if (i2v) {
        // generate.py: shift 3.0 for i2v at the 480p sizes, else 5.0.
        const bool size_480 = (r.opt.width == 832 && r.opt.height == 480) || (r.opt.width == 480 && r.opt.height == 832);
        if (!has_shift) r.opt.sample_shift = size_480 ? 3.0 : 5.0;
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
    if (r.image) {
        o["request"]["task"] = "i2v";
        o["request"]["image_size"] = std::to_string(r.image->width) + "*" + std::to_string(r.image->height);
        o["request"]["max_area"] = std::to_string(r.opt.width) + "*" + std::to_string(r.opt.height);
    }
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
        Tensor latent;
        if (r.image) {  // image-to-video: pipeline/i2v.h's stages with the resident models
            const RgbImage& pic = *r.image;
            const I2VLatentShape shape =
                i2v_latent_shape(pic.height, pic.width, r.opt, model_.parts.dit_config, model_.parts.vae_config);
            set_stage("encode text");
            const Tensor context = model_.encode(r.prompt), context_null = model_.encode(r.neg_prompt);
            set_stage("encode image");
            Rgb24Video v;
            v.frames = 1;
            v.height = pic.height;
            v.width = pic.width;
            v.rgb = pic.rgb;
            const Tensor image = ops::contiguous(rgb24_to_video(v, *model_.be).select(1, 0));  // [3, h0, w0]
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
        set_stage("decode");
        const Tensor video = t2v_decode(*model_.vae, latent);
        set_stage("write");
        path = (fs::path(dir_) / (j->id + "." + r.format)).string();
        write_video(path, video);
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

bool StreamSession::configure(const StreamConfig& c) {
    const bool restart = !stream_ || c.width != cfg_.width || c.height != cfg_.height || c.steps != cfg_.steps ||
                         c.strength != cfg_.strength || c.seed != cfg_.seed;
    const bool new_prompt = !stream_ || c.prompt != cfg_.prompt;
    WANRT_CHECK(model_.causal != nullptr, "serve", "model ", model_.parts.name, " (", model_.parts.kind,
                ") is image-to-video; the live stream runs a text-to-video model: start wanrt serve with one");
    std::lock_guard<std::mutex> compute(model_.compute);
    if (restart) {
        StreamOptions o;
        static const double kSteps[4] = {700, 500, 400, 200};  // SD 1.3B's list; the page picks a prefix
        o.steps.assign(kSteps, kSteps + c.steps);
        o.noise_scale = c.strength;
        o.validate();
        const Tensor context = model_.encode(c.prompt);  // once per prompt
        stream_ = std::make_unique<StreamV2V>(model_.causal, model_.vae, context, o, seeded_noise(c.seed));
        pending_.clear();
        pending_frames_ = 0;
    } else if (new_prompt) {
        stream_->set_prompt(model_.encode(c.prompt));  // used from the next chunk; KV history kept
    }
    cfg_ = c;
    return restart;
}

const StreamStats& StreamSession::stats() const {
    static const StreamStats none;
    return stream_ ? stream_->stats() : none;
}

std::vector<std::vector<uint8_t>> StreamSession::push_frame(const uint8_t* data, size_t bytes) {
    WANRT_CHECK(stream_, "serve", "send a {\"type\": \"config\", ...} message before the first frame");
    const size_t px = size_t(cfg_.width * cfg_.height);
    RgbImage decoded;
    // A JPEG frame (the page's default) is told by its first bytes when its length is not a raw
    // frame's; decoded here, bounded by the stream's size.
    if (bytes != px * 3 && bytes != px * 4 && looks_like_jpeg(data, bytes)) {
        decoded = decode_image(std::string_view(reinterpret_cast<const char*>(data), bytes), int64_t(px), "a JPEG frame");
        WANRT_CHECK(decoded.width == cfg_.width && decoded.height == cfg_.height, "serve", "a JPEG frame of ",
                    decoded.width, "x", decoded.height, " does not match the stream's ", cfg_.width, "x", cfg_.height);
        data = decoded.rgb.data();
        bytes = decoded.rgb.size();
    }
    WANRT_CHECK(bytes == px * 3 || bytes == px * 4, "serve", "a frame of ", bytes, " bytes does not match ", cfg_.width,
                "x", cfg_.height, " RGB (", px * 3, ") or RGBA (", px * 4, ")");
    const size_t ch = bytes / px;
    Rgb24Video in;
    const size_t at = pending_.size();
    pending_.resize(at + px * 3);
    for (size_t i = 0; i < px; ++i)
        for (size_t c = 0; c < 3; ++c) pending_[at + i * 3 + c] = data[i * ch + c];
    ++pending_frames_;
    std::vector<std::vector<uint8_t>> out;
    if (pending_frames_ < stream_->next_chunk_frames()) return out;

    in.frames = pending_frames_;
    in.height = cfg_.height;
    in.width = cfg_.width;
    in.rgb.swap(pending_);
    pending_.clear();
    pending_frames_ = 0;
    std::lock_guard<std::mutex> compute(model_.compute);
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor frames = rgb24_to_video(in, *model_.be);  // [3, n, H, W] in [−1, 1]
    const Tensor restyled = stream_->push(frames);         // [3, m, H, W] or undefined while the batch fills
    model_.be->synchronize();
    last_chunk_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!restyled.defined()) return out;
    const Rgb24Video v = video_to_rgb24(restyled);  // clamps as cache_video
    for (int64_t f = 0; f < v.frames; ++f) out.emplace_back(v.frame(f), v.frame(f) + v.frame_bytes());
    return out;
}

}  // namespace wanrt::serve
