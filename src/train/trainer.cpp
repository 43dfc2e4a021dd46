// The training run (train/trainer.h).
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "io/output_file.h"
#include "io/safetensors.h"
#include "models/dit_weights.h"
#include "ops/ops.h"
#include "train/adamw.h"
#include "train/dit_backward.h"
#include "train/flow_match.h"
#include "video/video_writer.h"

namespace wanrt {

namespace fs = std::filesystem;

namespace {

// A splitmix64 stream seeded by (seed, a, b, c): the counter-based generator of every draw.
struct Stream {
    uint64_t s;
    uint64_t next() { return splitmix64(s); }
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};
Stream stream(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = seed;
    for (uint64_t v : {a, b, c}) {
        uint64_t t = h ^ (v * 0xD6E8FEB86659FD93ull);
        h = splitmix64(t);
    }
    return {h};
}
enum : uint64_t { kOrder = 1, kTimestep = 2, kNoise = 3, kCaptionDrop = 4, kEval = 5 };

// Standard normal values by Box–Muller (two per pair of uniforms), in float.
Tensor gaussian(Backend& be, const Shape& shape, Stream st) {
    std::vector<float> v(size_t(shape_numel(shape)));
    for (size_t i = 0; i < v.size(); i += 2) {
        const double u1 = double((st.next() >> 11) + 1) * 0x1.0p-53;  // (0, 1]
        const double u2 = st.uniform();
        const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
        v[i] = float(r * std::cos(a));
        if (i + 1 < v.size()) v[i + 1] = float(r * std::sin(a));
    }
    return ops::from_host(be, DType::F32, shape, v.data());
}

// The data order of an epoch: a Fisher–Yates shuffle of 0..n−1.
std::vector<size_t> epoch_order(uint64_t seed, int64_t epoch, size_t n) {
    std::vector<size_t> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = i;
    Stream st = stream(seed, kOrder, uint64_t(epoch), 0);
    for (size_t i = n; i > 1; --i) std::swap(p[i - 1], p[size_t(st.next() % i)]);
    return p;
}

std::string step_name(const char* stem, int64_t step, const char* ext) {
    char b[64];
    std::snprintf(b, sizeof b, "%s-step-%06lld%s", stem, static_cast<long long>(step), ext);
    return b;
}

void check_options(const TrainOptions& o) {
    WANRT_CHECK(o.steps >= 1, "train", "--steps ", o.steps, " must be at least 1");
    WANRT_CHECK(o.batch >= 1, "train", "--batch ", o.batch, " must be at least 1");
    WANRT_CHECK(o.lr > 0 && std::isfinite(o.lr), "train", "--lr ", o.lr, " must be a positive number");
    WANRT_CHECK(o.warmup >= 0, "train", "--warmup ", o.warmup, " must be ≥ 0");
    WANRT_CHECK(o.save_every >= 0, "train", "--save_every ", o.save_every, " must be ≥ 0 (0 = only at the end)");
    WANRT_CHECK(o.schedule == "constant" || o.schedule == "cosine", "train", "unknown --schedule ", o.schedule,
                "; pass constant or cosine");
    WANRT_CHECK(std::isfinite(o.grad_clip), "train", "--grad_clip ", o.grad_clip, " must be a number (≤ 0: off)");
    WANRT_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "train", "--weight_decay must be ≥ 0");
    WANRT_CHECK(o.caption_dropout >= 0 && o.caption_dropout <= 1, "train", "--caption_dropout ", o.caption_dropout,
                " must be in [0, 1]");
    WANRT_CHECK(o.shift > 0 && std::isfinite(o.shift), "train", "--shift ", o.shift, " must be a positive number");
    WANRT_CHECK(o.min_timestep_boundary >= 0 && o.max_timestep_boundary <= 1 &&
                    int64_t(o.min_timestep_boundary * 1000) < int64_t(o.max_timestep_boundary * 1000),
                "train", "--min_timestep_boundary ", o.min_timestep_boundary, " and --max_timestep_boundary ",
                o.max_timestep_boundary, " must satisfy 0 ≤ min < max ≤ 1 with at least one of the 1,000 timesteps between");
    WANRT_CHECK(o.eval_clips >= 0, "train", "--eval_clips ", o.eval_clips, " must be ≥ 0 (0 = no evaluation)");
    WANRT_CHECK(o.eval_clips == 0 || !o.eval_sigmas.empty(), "train", "--eval_clips needs at least one --eval_sigmas value");
    WANRT_CHECK(o.eval_swap.empty() || o.eval_clips > 0, "train",
                "--eval_swap scores the evaluation's clips; add --eval_clips N (e.g. 16)");
    for (double s : o.eval_sigmas)
        WANRT_CHECK(s > 0 && s <= 1, "train", "--eval_sigmas value ", s, " must be in (0, 1]");
    WANRT_CHECK(!o.out.empty(), "train",
                "no --out folder given; pass --out DIR for the LoRA, checkpoints and loss.csv");
}

// The run's shape that a checkpoint must share to be resumed.
nlohmann::json run_json(const TrainOptions& o, const DitConfig& c, const std::string& model) {
    nlohmann::json j;
    j["format"] = 1;
    j["mode"] = o.full ? "full" : "lora";
    if (!o.full) {
        j["rank"] = o.lora.rank;
        j["alpha"] = o.lora.alpha;
        j["targets"] = o.lora.targets;
    }
    j["model"] = model;
    j["dit_config"] = c.to_json();
    return j;
}

struct CsvLog {
    std::string header = "step,loss,lr,grad_norm,seconds";
    std::vector<std::string> rows;  // without the header
    std::vector<double> losses;     // per row
    void load_until(const std::string& path, int64_t step) {
        std::ifstream in(path);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            if (std::atoll(line.c_str()) <= step) {
                rows.push_back(line);
                losses.push_back(std::atof(line.c_str() + line.find(',') + 1));
            }
        }
    }
    void write(const std::string& path) const {
        std::string s = header + "\n";
        for (const std::string& r : rows) s += r + "\n";
        write_file_atomic(path, s, "train");
    }
};

// The loss curve as a picture (no text: the numbers are in loss.csv): each step's loss in light
// blue, its moving average (EMA 0.9, bias-corrected) in dark blue, the y axis from 0 to the largest value.
Rgb24Video loss_chart(const std::vector<double>& losses) {
    Rgb24Video v;
    v.frames = 1, v.width = 640, v.height = 320;
    v.rgb.assign(v.frame_bytes(), 255);
    const int64_t x0 = 20, x1 = v.width - 20, y0 = v.height - 20, y1 = 20;  // plot box (y grows down)
    auto px = [&](int64_t x, int64_t y, const uint8_t c[3]) {
        if (x < 0 || y < 0 || x >= v.width || y >= v.height) return;
        std::copy(c, c + 3, v.rgb.begin() + (y * v.width + x) * 3);
    };
    auto line = [&](int64_t ax, int64_t ay, int64_t bx, int64_t by, const uint8_t c[3]) {  // Bresenham
        const int64_t dx = std::abs(bx - ax), dy = -std::abs(by - ay), sx = ax < bx ? 1 : -1, sy = ay < by ? 1 : -1;
        for (int64_t err = dx + dy;;) {
            px(ax, ay, c);
            if (ax == bx && ay == by) break;
            const int64_t e2 = 2 * err;
            if (e2 >= dy) err += dy, ax += sx;
            if (e2 <= dx) err += dx, ay += sy;
        }
    };
    const uint8_t grey[3] = {160, 160, 160}, light[3] = {150, 190, 240}, dark[3] = {20, 60, 160};
    line(x0, y0, x1, y0, grey);
    line(x0, y0, x0, y1, grey);
    double top = 0;
    for (double l : losses) top = std::isfinite(l) ? std::max(top, l) : top;
    if (losses.empty() || !(top > 0)) return v;
    const size_t n = losses.size();
    auto at = [&](size_t i, double l) {
        const int64_t x = x0 + (n > 1 ? int64_t(double(i) * double(x1 - x0) / double(n - 1)) : 0);
        return std::pair<int64_t, int64_t>{x, y0 - int64_t(std::clamp(l / top, 0.0, 1.0) * double(y0 - y1))};
    };
    double ema = 0, decay = 1;  // bias-corrected: the first points are not pulled towards 0
    auto pl = at(0, losses[0]);
    std::vector<std::pair<int64_t, int64_t>> ema_pts;
    for (size_t i = 0; i < n; ++i) {
        const auto q = at(i, losses[i]);
        if (i) line(pl.first, pl.second, q.first, q.second, light);
        pl = q;
        ema = 0.9 * ema + 0.1 * losses[i], decay *= 0.9;
        ema_pts.push_back(at(i, ema / (1 - decay)));
    }
    for (size_t i = 1; i < ema_pts.size(); ++i)
        line(ema_pts[i - 1].first, ema_pts[i - 1].second, ema_pts[i].first, ema_pts[i].second, dark);
    return v;
}

// The evaluation set of TrainOptions::eval_clips: per clip its item, fixed noise and (where a
// swap changes its caption) the swapped caption's context.
struct EvalSet {
    std::vector<size_t> items;
    std::vector<Tensor> noise, swapped;  // swapped[i] undefined: the swap leaves the caption alone
};

EvalSet make_eval_set(const TrainOptions& o, const std::vector<TrainItem>& items, const T2VModelParts& m, Backend& be) {
    EvalSet es;
    const size_t n = items.size(), k = size_t(std::min<int64_t>(o.eval_clips, int64_t(n)));
    std::vector<std::string> prompts;
    std::vector<size_t> who;
    for (size_t i = 0; i < k; ++i) {
        const size_t it = i * n / k;
        es.items.push_back(it);
        es.noise.push_back(gaussian(be, items[it].latent.shape(), stream(o.seed, kEval, uint64_t(i), 0)));
        es.swapped.emplace_back();
        const std::string c = train_caption_swap(items[it].caption, o.eval_swap);
        if (c != items[it].caption) prompts.push_back(c), who.push_back(i);
    }
    if (!prompts.empty()) {
        TextStageTimes tm;
        std::vector<Tensor> ctx = run_text_stage(m, be, prompts, tm);
        for (size_t j = 0; j < who.size(); ++j) es.swapped[who[j]] = ctx[j];
    }
    return es;
}

// Mean unweighted MSE per σ with the own captions, and swapped / own over the swapped clips.
TrainResult::Eval run_eval(const TrainOptions& o, const EvalSet& es, const std::vector<TrainItem>& items,
                           const DitModel& model, int64_t step) {
    TrainResult::Eval ev;
    ev.step = step;
    for (double sigma : o.eval_sigmas) {
        FlowMatchTrainTable tab;
        tab.sigmas = {sigma}, tab.timesteps = {1000 * sigma}, tab.weights = {1};
        std::vector<DitSample> samples;  // own captions, then the swapped ones (same x_t, same target)
        std::vector<Tensor> targets;
        std::vector<size_t> clip;  // per sample: its index in es
        for (size_t i = 0; i < es.items.size(); ++i) {
            const TrainItem& it = items[es.items[i]];
            const FlowMatchPair p = flow_match_pair(tab, 0, it.latent, es.noise[i]);
            DitSample s;
            s.x = p.x_t, s.t = float(p.timestep), s.context = it.context;
            samples.push_back(s), targets.push_back(p.target), clip.push_back(i);
        }
        for (size_t i = 0; i < es.items.size(); ++i) {
            if (!es.swapped[i].defined()) continue;
            DitSample s = samples[i];
            s.context = es.swapped[i];
            samples.push_back(s), targets.push_back(targets[i]), clip.push_back(i);
        }
        std::vector<double> mse(samples.size());
        for (size_t b = 0; b < samples.size(); b += size_t(o.batch)) {  // in batches of --batch: what fits
            const size_t e = std::min(samples.size(), b + size_t(o.batch));
            const std::vector<DitSample> part(samples.begin() + long(b), samples.begin() + long(e));
            int64_t seq_len = 0;
            for (const DitSample& s : part) seq_len = std::max(seq_len, model.tokens_for(s.x.shape()));
            const std::vector<Tensor> ys = dit_train_forward(model, part, seq_len, nullptr);
            for (size_t j = 0; j < ys.size(); ++j) mse[b + j] = flow_match_loss(ys[j], targets[b + j], 1, nullptr);
        }
        const size_t own = es.items.size();
        double all = 0, own_sw = 0, sw = 0;
        for (size_t j = 0; j < own; ++j) all += mse[j];
        for (size_t j = own; j < mse.size(); ++j) sw += mse[j], own_sw += mse[clip[j]];
        ev.loss.push_back(all / double(own));
        ev.swap_ratio.push_back(mse.size() > own ? sw / own_sw : std::nan(""));
    }
    return ev;
}

}  // namespace

std::string train_caption_swap(const std::string& caption,
                               const std::vector<std::pair<std::string, std::string>>& swap) {
    std::string out, word;
    auto flush = [&] {
        for (const auto& [a, b] : swap)
            if (word == a) {
                word = b;
                break;
            }
        out += word, word.clear();
    };
    for (char ch : caption) {
        if (ch == ' ') {
            flush();
            out += ch;
        } else {
            word += ch;
        }
    }
    flush();
    return out;
}

std::vector<std::pair<std::string, std::string>> parse_caption_swap(const std::string& s) {
    std::vector<std::pair<std::string, std::string>> v;
    if (s.empty()) return v;
    std::stringstream ss(s);
    std::string pair;
    while (std::getline(ss, pair, ',')) {
        const size_t c = pair.find(':');
        WANRT_CHECK(c != std::string::npos && c > 0 && c + 1 < pair.size() &&
                        pair.find(':', c + 1) == std::string::npos && pair.find(' ') == std::string::npos,
                    "train", "--eval_swap entry \"", pair, "\" is not WORD:WORD; pass e.g. left:right,right:left");
        v.emplace_back(pair.substr(0, c), pair.substr(c + 1));
    }
    return v;
}

TrainStepOut train_step(const DitModel& model, const std::vector<DitSample>& batch,
                        const std::vector<FlowMatchPair>& pairs, int64_t seq_len, bool full,
                        const std::vector<LoraParam>& lora, double grad_clip, AdamW& opt, HostCheckpoints* offload) {
    DitTape tape;
    tape.offload = offload;
    const std::vector<Tensor> ys = dit_train_forward(model, batch, seq_len, &tape);
    TrainStepOut r;
    std::vector<Tensor> dys;
    for (size_t j = 0; j < ys.size(); ++j) {
        Tensor d;
        r.loss += flow_match_loss(ys[j], pairs[j].target, pairs[j].weight / double(batch.size()), &d);
        dys.push_back(d);
    }
    // A non-finite loss stops before the update: the weights stay as they were.
    WANRT_CHECK(std::isfinite(r.loss), "train", "the loss is ", r.loss, " at step ", opt.steps() + 1,
                "; lower --lr or set --grad_clip");
    DitGrads gr = dit_grads_zeros(model, full);
    dit_backward(model, tape, dys, &gr);
    std::vector<Tensor> grads;
    if (full) {
        for (auto& [nm, t] : dit_named_params(model.config(), gr.w)) grads.push_back(t);
    } else {
        grads = lora_grad_list(gr, model.config(), lora);
    }
    r.grad_norm = clip_grad_norm(grads, grad_clip > 0 ? grad_clip : std::numeric_limits<double>::infinity());
    opt.step(grads);
    return r;
}

double train_lr_at(const TrainOptions& o, int64_t step) {
    if (step < o.warmup) return o.lr * double(step + 1) / double(o.warmup);
    if (o.schedule == "cosine") {
        const double span = double(std::max<int64_t>(1, o.steps - o.warmup));
        return o.lr * 0.5 * (1 + std::cos(M_PI * double(step - o.warmup) / span));
    }
    return o.lr;
}

int64_t train_timestep_row(const TrainOptions& o, uint64_t draw, int64_t n) {
    // int(b · n) as DiffSynth's _sample_training_timestep computes it, then its randint(lo, hi).
    const int64_t lo = int64_t(o.min_timestep_boundary * double(n)), hi = int64_t(o.max_timestep_boundary * double(n));
    return lo + int64_t(draw % uint64_t(hi - lo));
}

TrainResult run_training(const T2VModelParts& m, const std::shared_ptr<Backend>& be, const TrainOptions& o,
                         const std::function<void(const std::string&)>& say,
                         const std::function<void(const TrainProgress&)>& progress) {
    auto note = [&](const std::string& s) {
        if (say) say(s);
    };
    check_options(o);
    const DitConfig& cfg = m.dit_config;
    WANRT_CHECK(!m.moe() && !m.ti2v() && !cfg.is_i2v(), "train", m.name, " holds ", m.kind,
                "; wanrt train trains text-to-video models (Wan2.1 T2V 1.3B/14B or the demo) only");
    if (!o.full) lora_target_modules(o.lora.targets);  // a bad --lora_targets fails before any work
    std::vector<TrainItem> items = scan_train_data(o.data, m);
    note(cat("data: ", items.size(), " item", items.size() == 1 ? "" : "s", " in ", o.data.dir));
    // Resume: the checkpoint is read (and checked) before anything is written or the model loads.
    std::shared_ptr<SafeTensorsFile> ck;
    int64_t start = 0;
    const nlohmann::json shape = run_json(o, cfg, m.name);
    if (!o.resume.empty()) {
        try {
            ck = SafeTensorsFile::open(o.resume);
        } catch (const std::exception& e) {
            fail("train", "cannot read the checkpoint ", o.resume, ": ", e.what(),
                 "; pass --resume a checkpoint-step-*.safetensors that wanrt train wrote");
        }
        auto it = ck->metadata().find("wanrt_train");
        WANRT_CHECK(it != ck->metadata().end(), "train", o.resume,
                    " is not a wanrt train checkpoint (no wanrt_train metadata)");
        const nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
        WANRT_CHECK(j.is_object() && j.contains("run") && j.contains("step"), "train", o.resume,
                    ": unreadable wanrt_train metadata");
        WANRT_CHECK(j["run"] == shape, "train", o.resume, " is from another run shape (", j["run"].dump(),
                    "); resume with the same model, --full or --lora_rank/--lora_alpha/--lora_targets");
        start = j["step"].get<int64_t>();
        WANRT_CHECK(start < o.steps, "train", o.resume, " is at step ", start, " and --steps is ", o.steps,
                    "; pass a larger --steps to train further");
        if (j.value("seed", uint64_t(0)) != o.seed || j.value("batch", int64_t(0)) != o.batch)
            note(cat("resume: --seed/--batch differ from the checkpoint's (", j.value("seed", uint64_t(0)), ", ",
                     j.value("batch", int64_t(0)), "): the continuation draws other samples than that run would"));
        if (j.value("shift", 5.0) != o.shift || j.value("caption_dropout", 0.0) != o.caption_dropout ||
            j.value("min_timestep_boundary", 0.0) != o.min_timestep_boundary ||
            j.value("max_timestep_boundary", 1.0) != o.max_timestep_boundary)
            note(cat("resume: --shift/--caption_dropout/--min_timestep_boundary/--max_timestep_boundary differ from the "
                     "checkpoint's (", j.value("shift", 5.0), ", ", j.value("caption_dropout", 0.0), ", ",
                     j.value("min_timestep_boundary", 0.0), ", ", j.value("max_timestep_boundary", 1.0),
                     "): the continuation trains on another objective than that run"));
    }

    std::error_code ec;
    fs::create_directories(o.out, ec);
    WANRT_CHECK(fs::is_directory(o.out, ec), "train", "cannot create the output folder ", o.out,
                "; pass --out a writable folder");
    const fs::path out(o.out);
    check_output_writable((out / "loss.csv").string(), "train", "--out");

    prepare_train_data(items, o.data, m, be, say);

    // The DiT: full fine-tuning updates its weights in place, so they are copied out of the
    // (read-only, mapped) checkpoint first.
    std::shared_ptr<TensorSource> src = m.dit_weights();
    if (o.full) {
        auto mem = std::make_shared<MemoryTensorSource>(src->origin());
        for (const std::string& n : src->names()) {
            const StoredTensor* t = src->find(n);
            mem->add(n, t->dtype, t->shape, t->data);
        }
        src = mem;
    }
    DitModel model(cfg, src, *be);
    std::vector<LoraParam> lora;
    std::vector<std::string> names;
    std::vector<Tensor> params;
    if (o.full) {
        for (auto& [n, t] : dit_named_params(cfg, model.mutable_weights())) names.push_back(n), params.push_back(t);
    } else {
        lora = attach_trainable_lora(model, o.lora, o.seed);
        for (const LoraParam& p : lora) {
            names.push_back(p.module + ".lora_down.weight");
            names.push_back(p.module + ".lora_up.weight");
        }
        params = lora_param_list(lora);
    }
    int64_t n_params = 0;
    for (const Tensor& t : params) n_params += t.numel();
    note(cat(o.full ? "full fine-tuning: " : "LoRA: ", params.size(), " tensors, ", n_params, " parameters",
             o.full ? "" : cat(" (rank ", o.lora.rank, ", alpha ", o.lora.alpha, ", targets ", o.lora.targets, ")")));

    AdamWHyper h;
    h.lr = o.lr, h.weight_decay = o.weight_decay;
    AdamW opt(params, h);
    CsvLog csv;
    if (ck) {
        for (size_t i = 0; i < names.size(); ++i) {
            const AdamW::SlotState s = opt.state(i);
            for (auto [key, dst] :
                 {std::pair<std::string, Tensor>{"param.", s.master}, {"adamw.m.", s.m}, {"adamw.v.", s.v}}) {
                const StoredTensor* t = ck->find(key + names[i]);
                WANRT_CHECK(t && t->dtype == DType::F32 && t->shape == dst.shape(), "train", o.resume, " lacks ", key,
                            names[i], " ", shape_str(dst.shape()),
                            " f32; the checkpoint is damaged or from another run");
                ops::copy(ops::from_host(*be, DType::F32, t->shape, t->data), dst);
            }
        }
        opt.set_steps(start);
        opt.restore_params();
        csv.load_until((out / "loss.csv").string(), start);
        note(cat("resumed from ", o.resume, " at step ", start));
    }

    // loss.png beside loss.csv where this build writes PNG (FFmpeg); without it the CSV alone.
    bool png = true;
    auto write_chart = [&] {
        if (!png) return;
        try {
            write_video((out / "loss.png").string(), loss_chart(csv.losses));
        } catch (const Error&) {
            png = false;
            note("loss.png is not written: this build has no PNG encoder (FFmpeg); loss.csv has the curve");
        }
    };
    auto save = [&](int64_t step, TrainResult& r) {
        std::vector<std::vector<float>> host;
        host.reserve(names.size() * 3);
        std::vector<TensorToWrite> ts;
        for (size_t i = 0; i < names.size(); ++i) {
            const AdamW::SlotState s = opt.state(i);
            for (auto [key, t] :
                 {std::pair<std::string, Tensor>{"param.", s.master}, {"adamw.m.", s.m}, {"adamw.v.", s.v}}) {
                host.push_back(ops::to_host_f32(t));
                ts.push_back({key + names[i], DType::F32, t.shape(), host.back().data()});
            }
        }
        nlohmann::json j;
        j["run"] = shape;
        j["step"] = step;
        j["seed"] = o.seed;
        j["batch"] = o.batch;
        j["generator"] = "splitmix64 streams seeded by (seed, step, sample): the state is (seed, step)";
        j["lr"] = o.lr, j["schedule"] = o.schedule, j["warmup"] = o.warmup, j["steps"] = o.steps;
        j["weight_decay"] = o.weight_decay, j["grad_clip"] = o.grad_clip;
        j["shift"] = o.shift, j["caption_dropout"] = o.caption_dropout;
        j["min_timestep_boundary"] = o.min_timestep_boundary, j["max_timestep_boundary"] = o.max_timestep_boundary;
        const std::string ckp = (out / step_name("checkpoint", step, ".safetensors")).string();
        write_safetensors(ckp, ts, {{"wanrt_train", j.dump()}});
        r.files.push_back(ckp);
        if (!o.full && step < o.steps) {  // the last one is lora.safetensors
            const std::string lp = (out / step_name("lora", step, ".safetensors")).string();
            write_lora_file(lp, lora, o.lora, {{"wanrt_train_step", std::to_string(step)}});
            r.files.push_back(lp);
        }
        csv.write((out / "loss.csv").string());
        write_chart();
    };

    // The evaluation: its set once, then at the start, at each save and at the end (eval.csv).
    EvalSet es;
    CsvLog ecsv;
    ecsv.header = "step,sigma,loss,swap_ratio";
    auto evaluate = [&](int64_t step, TrainResult& r) {
        if (o.eval_clips == 0) return;
        const TrainResult::Eval ev = run_eval(o, es, items, model, step);
        std::string line = cat("eval step ", step, ":");
        for (size_t i = 0; i < ev.loss.size(); ++i) {
            char row[160];
            std::snprintf(row, sizeof row, "%lld,%.4g,%.8g,%.6g", static_cast<long long>(step), o.eval_sigmas[i],
                          ev.loss[i], ev.swap_ratio[i]);
            ecsv.rows.push_back(row);
            std::snprintf(row, sizeof row, " σ %.3g loss %.5f", o.eval_sigmas[i], ev.loss[i]);
            line += row;
            if (std::isfinite(ev.swap_ratio[i])) std::snprintf(row, sizeof row, " (swapped ×%.4f)", ev.swap_ratio[i]), line += row;
            line += i + 1 < ev.loss.size() ? ";" : "";
        }
        note(line);
        ecsv.write((out / "eval.csv").string());
        r.evals.push_back(ev);
    };
    if (o.eval_clips > 0) {
        es = make_eval_set(o, items, m, *be);
        size_t swapped = 0;
        for (const Tensor& t : es.swapped) swapped += t.defined();
        note(cat("eval: ", es.items.size(), " clips (", swapped, " with a swapped caption) at ", o.eval_sigmas.size(),
                 " noise levels"));
        if (ck) ecsv.load_until((out / "eval.csv").string(), start - 1);
    }

    const FlowMatchTrainTable tab = flow_match_table(o.shift, 1000);
    Tensor empty_context;  // of the prompt "", for the dropped captions
    if (o.caption_dropout > 0) {
        TextStageTimes tm;
        empty_context = run_text_stage(m, *be, {""}, tm)[0];
    }
    const size_t n = items.size();
    int64_t epoch = -1;
    std::vector<size_t> order;
    TrainResult res;
    res.first_step = res.last_step = start;
    evaluate(start, res);
    HostCheckpoints host_checkpoints;  // --offload_checkpoints: pinned once, reused every step
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t step = start; step < o.steps; ++step) {
        const double lr = train_lr_at(o, step);
        opt.hyper().lr = lr;
        std::vector<DitSample> batch;
        std::vector<FlowMatchPair> pairs;
        int64_t seq_len = 0;
        for (int64_t j = 0; j < o.batch; ++j) {
            const int64_t g = step * o.batch + j;
            if (g / int64_t(n) != epoch) epoch = g / int64_t(n), order = epoch_order(o.seed, epoch, n);
            const TrainItem& it = items[order[size_t(g % int64_t(n))]];
            Stream ks = stream(o.seed, kTimestep, uint64_t(step), uint64_t(j));
            const int64_t k = train_timestep_row(o, ks.next(), int64_t(tab.sigmas.size()));
            const Tensor noise = gaussian(*be, it.latent.shape(), stream(o.seed, kNoise, uint64_t(step), uint64_t(j)));
            pairs.push_back(flow_match_pair(tab, k, it.latent, noise));
            DitSample s;
            s.x = pairs.back().x_t;
            Stream ds = stream(o.seed, kCaptionDrop, uint64_t(step), uint64_t(j));
            s.context = ds.uniform() < o.caption_dropout ? empty_context : it.context;
            s.t = float(pairs.back().timestep);
            batch.push_back(s);
            seq_len = std::max(seq_len, model.tokens_for(it.latent.shape()));
        }
        const TrainStepOut so = train_step(model, batch, pairs, seq_len, o.full, lora, o.grad_clip, opt,
                                           o.offload_checkpoints ? &host_checkpoints : nullptr);
        const double loss = so.loss, gnorm = so.grad_norm;

        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        char row[160];
        std::snprintf(row, sizeof row, "%lld,%.8g,%.6g,%.6g,%.3f", static_cast<long long>(step + 1), loss, lr, gnorm,
                      secs);
        csv.rows.push_back(row);
        csv.losses.push_back(loss);
        res.losses.push_back(loss);
        res.last_step = step + 1;
        if (progress) {
            TrainProgress p;
            p.step = step + 1, p.steps = o.steps, p.loss = loss, p.lr = lr, p.grad_norm = gnorm, p.seconds = secs;
            p.its = double(step + 1 - start) / std::max(secs, 1e-9);
            p.eta = double(o.steps - step - 1) / std::max(p.its, 1e-12);
            progress(p);
        }
        if (o.save_every > 0 && (step + 1) % o.save_every == 0 && step + 1 < o.steps) {
            save(step + 1, res);
            evaluate(step + 1, res);
        }
    }
    save(o.steps, res);
    evaluate(o.steps, res);
    if (o.full) {
        std::map<std::string, Shape> official;  // e.g. patch_embedding.weight [D, C, pt, ph, pw]
        for (const ParamSpec& p : dit_param_table(cfg)) official[p.name] = p.shape;
        std::vector<std::vector<float>> host;
        host.reserve(names.size());
        std::vector<TensorToWrite> ts;
        for (size_t i = 0; i < names.size(); ++i) {
            host.push_back(ops::to_host_f32(opt.state(i).master));
            auto it = official.find(names[i]);
            ts.push_back(
                {names[i], DType::F32, it != official.end() ? it->second : params[i].shape(), host.back().data()});
        }
        const std::string wp = (out / "diffusion_pytorch_model.safetensors").string();
        write_safetensors(wp, ts);
        write_file_atomic((out / "config.json").string(), cfg.to_json(), "train");
        res.files.push_back(wp);
        res.files.push_back((out / "config.json").string());
    } else {
        const std::string lp = (out / "lora.safetensors").string();
        write_lora_file(lp, lora, o.lora, {{"wanrt_train_step", std::to_string(o.steps)}});
        res.files.push_back(lp);
    }
    res.files.push_back((out / "loss.csv").string());
    if (o.eval_clips > 0) res.files.push_back((out / "eval.csv").string());
    if (png) res.files.push_back((out / "loss.png").string());
    return res;
}

}  // namespace wanrt
