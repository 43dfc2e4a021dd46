// wanrt generate: a prompt (and for i2v-14B a picture, for flf2v-14B two) in, a video file out (the
// official generate.py for the T2V, I2V and FLF2V tasks).
//
// Flags keep generate.py's names and defaults (docs/wan21.md §6.5): --task, --size W*H, --frame_num,
// --sample_steps, --sample_shift, --sample_guide_scale, --sample_solver, --base_seed, --prompt,
// --neg_prompt, --ckpt_dir, --save_file, --image, --first_frame, --last_frame. Image-to-video (--task
// i2v-14B --image in.png, or an i2v folder): --size is the max_area W·H (the video keeps the picture's
// aspect, rounded down to even latent sides: pipeline/i2v.h), 40 steps, shift 3.0 at 832*480 / 480*832
// and 5.0 otherwise, guide 5.0, 81 frames, as generate.py. The picture is read as PNG, JPEG or WebP
// (video/video_writer.h: grayscale expanded to RGB, alpha dropped). Differences, each deliberate:
//  - without --ckpt_dir the built-in demo model runs (pipeline/demo.h) with small defaults (with
//    --image or --task i2v-14B the i2v demo model, with --first_frame or --task flf2v-14B the flf2v one);
//  - the i2v default size follows the folder: 832*480 when its name says 480P, else generate.py's
//    1280*720 (the two releases have the same config.json);
//  - without --task the task is the folder's model (generate.py defaults to t2v-14B, which fails on
//    a 1.3B folder); the default size follows the task (832*480 for 1.3B, whose only sizes are
//    480p; generate.py's default 1280*720 would be refused);
//  - a size outside the official list is a warning, not an error: the model runs at any multiple
//    of 16 (quality is best at the trained sizes), which CPU users need;
//  - --sample_solver also takes euler; --device and --threads pick the backend.
// First-last-frame-to-video (--task flf2v-14B --first_frame a.png --last_frame b.png, or an flf2v folder):
// --size is the max_area as for i2v (the size comes from the first frame; the last must have the same
// size), 50 steps, shift 16, guide 5.0, 81 frames, and the negative prompt the FLF2V config's
// ("镜头切换，" + the default), as generate.py. Any 4n+1 ≥ 5 frames run (pipeline/flf2v.h generalises the
// official 81-frame mask). --image and --first_frame/--last_frame are refused across tasks.
// --causal runs block-autoregressive generation instead (CausVid / Self-Forcing; pipeline/causal.h)
// with their flag names: --frames_per_block, --denoising_steps (comma list), --warp_denoising_step,
// --context_noise, --cache_frames / --sink_frames (Self-Forcing local attention) and --generator (the
// distilled checkpoint). It has no classifier-free guidance, so the guidance, negative prompt, step
// count and solver flags are refused with it; the causal flags are refused without it.
// Everything the user can get wrong (task, size, frames, steps, solver, output path, model files)
// is checked before any weights are loaded; failures are one line with exit code 1 and leave no
// output file (the video writer writes a unique temporary file beside it and renames; io/output_file.h).
// The stages run in the pipeline (one call, pipeline/generate.h); this file parses and checks the
// flags, says what runs, prints progress and the summary, and writes the file.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <sstream>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "core/error.h"
#include "core/sysinfo.h"
#include "io/output_file.h"
#include "ops/ops.h"
#include "models/dit_fp8.h"
#include "models/taehv.h"
#include "pipeline/demo.h"
#include "pipeline/generate.h"
#include "pipeline/step_cache.h"
#include "runtime/device.h"
#include "sched/scheduler.h"
#include "video/video_writer.h"

namespace wanrt::cli {

namespace {

namespace fs = std::filesystem;

const char* const kExamplePrompt =
    "Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a spotlighted stage.";

// EXAMPLE_PROMPT["i2v-14B"] (generate.py pairs it with examples/i2v_input.JPG; here --image is required).
const char* const kExampleI2VPrompt =
    "Summer beach vacation style, a white cat wearing sunglasses sits on a surfboard. The fluffy-furred feline "
    "gazes directly at the camera with a relaxed expression. Blurred beach scenery forms the background featuring "
    "crystal-clear waters, distant green hills, and a blue sky dotted with white clouds. The cat assumes a naturally "
    "relaxed posture, as if savoring the sea breeze and warm sunlight. A close-up shot highlights the feline's "
    "intricate details and the refreshing atmosphere of the seaside.";

// EXAMPLE_PROMPT["flf2v-14B"] (generate.py pairs it with examples/flf2v_input_{first,last}_frame.png).
const char* const kExampleFLF2VPrompt =
    "CG动画风格，一只蓝色的小鸟从地面起飞，煽动翅膀。小鸟羽毛细腻，胸前有独特的花纹，背景是蓝天白云，阳光明媚。镜跟随小鸟"
    "向上移动，展现出小鸟飞翔的姿态和天空的广阔。近景，仰视视角。";

struct Opts {
    std::string task, size, solver = "unipc", prompt, neg_prompt, ckpt_dir, save_file, device = "auto", image;
    std::string first_frame, last_frame, guide = "5.0", vae_tile = "off";
    std::string cache;  // --cache (pipeline/step_cache.h)
    CLI::Option *o_first = nullptr, *o_last = nullptr, *o_offload = nullptr;
    int64_t frame_num = 0;
    int sample_steps = 0, threads = 0;
    double shift = 0;
    bool offload = true;  // A14B: one expert resident at a time
    int64_t seed = -1;
    CLI::Option *o_frames = nullptr, *o_steps = nullptr, *o_shift = nullptr, *o_neg = nullptr, *o_prompt = nullptr;
    CLI::Option *o_guide = nullptr, *o_solver = nullptr, *o_image = nullptr;
    // --causal (CausVid / Self-Forcing names and defaults).
    bool causal = false, warp = false;
    int64_t frames_per_block = 3, cache_frames = 0, sink_frames = 0;
    std::string denoising_steps = "1000,757,522", generator;
    double context_noise = 0;
    std::vector<CLI::Option*> causal_only;  // refused without --causal
    std::string vae = "wan", vae_checkpoint;  // --vae tae: decode with TAEHV (models/taehv.h)
    std::vector<std::string> loras;  // --lora FILE[:STRENGTH], repeatable (models/lora.h)
    std::string lora_mode = "auto";
    std::string linear_dtype = "bf16";  // --linear_dtype fp8: FP8 block linears (models/dit_fp8.h)
    bool stream_blocks = false, t5_cpu = false;  // --offload (models/dit_offload.h), --t5_cpu
    std::string max_vram;                        // --max_vram SIZE, the --offload budget
};

// "1000,757,522" → {1000, 757, 522}; entries in [0, 1000] (integers with warp). The library drops a
// trailing 0 (CausVid's configs end with one).
std::vector<double> parse_denoising_steps(const std::string& s, bool warp) {
    const std::optional<std::vector<double>> out = split_numbers(s);
    WANRT_CHECK(out, "generate", "bad --denoising_steps \"", s, "\"; write timesteps separated by commas, e.g. 1000,757,522");
    for (double v : *out) {
        WANRT_CHECK(v >= 0 && v <= 1000, "generate", "--denoising_steps entry ", v, " is outside [0, 1000]");
        WANRT_CHECK(!warp || v == std::floor(v), "generate", "--denoising_steps entry ", v,
                    " must be an integer with --warp_denoising_step");
    }
    WANRT_CHECK(!out->empty(), "generate", "--denoising_steps is empty; pass timesteps such as 1000,757,522");
    return *out;
}

// The causal loop's options from the flags, checked against the latent frame count (before loading).
CausalOptions causal_options(const Opts& o, int64_t frame_num, double shift) {
    CausalOptions c;
    c.frames_per_block = o.frames_per_block;
    c.steps = parse_denoising_steps(o.denoising_steps, o.warp);
    c.shift = shift;
    c.warp = o.warp;
    c.context_noise = o.context_noise;
    c.cache_frames = o.cache_frames;
    c.sink_frames = o.sink_frames;
    c.skip_last_clean_pass = true;  // its K/V are never read: same video, one DiT call less
    const int64_t fpb = c.frames_per_block, F = (frame_num - 1) / 4 + 1;
    if (F % fpb) {
        const int64_t lo = F / fpb * fpb, hi = lo + fpb;
        const std::string lo_s = lo > 0 ? cat((lo - 1) * 4 + 1, " or ") : std::string();
        fail("generate", "--frame_num ", frame_num, " gives ", F,
             " latent frames, not a multiple of --frames_per_block ", fpb, "; use --frame_num ", lo_s,
             (hi - 1) * 4 + 1);
    }
    WANRT_CHECK(std::isfinite(c.context_noise) && c.context_noise >= 0 && c.context_noise <= 1000, "generate",
                "--context_noise ", c.context_noise, " must be a timestep in [0, 1000] (CausVid: 0)");
    WANRT_CHECK(c.cache_frames >= 0 && c.sink_frames >= 0, "generate", "--cache_frames and --sink_frames must be >= 0");
    WANRT_CHECK(c.sink_frames == 0 || c.cache_frames > 0, "generate",
                "--sink_frames needs --cache_frames (0 keeps every frame, so there is nothing to sink)");
    WANRT_CHECK(c.cache_frames == 0 || c.cache_frames - c.sink_frames >= fpb, "generate", "--cache_frames ",
                c.cache_frames, " with --sink_frames ", c.sink_frames, " cannot hold a block of ", fpb,
                " frames; use at least sink + frames_per_block (", c.sink_frames + fpb, ")");
    c.step_list(FlowMatchTable(shift));  // the library's own checks, before any weights load
    return c;
}

struct TaskInfo {
    std::string name;  // official task name
    std::string kind;  // the model it needs
    bool supported;
};

TaskInfo lookup_task(const std::string& t) {
    if (t == "t2v-1.3B" || t == "t2v-14B" || t == "i2v-14B" || t == "flf2v-14B" || t == "t2v-A14B" || t == "i2v-A14B")
        return {t, t, true};
    if (t == "t2i-14B") return {t, "t2v-14B", true};
    if (t == "vace-1.3B" || t == "vace-14B") return {t, "", false};
    if (t == "ti2v-5B") return {t, t, true};
    fail("generate", "unknown --task \"", t,
         "\"; use t2v-1.3B, t2v-14B, t2i-14B, i2v-14B, flf2v-14B, t2v-A14B, i2v-A14B or ti2v-5B (or leave it out to use "
         "the folder's model)");
}

bool is_image_task(const std::string& name) { return name.rfind("i2v", 0) == 0; }
bool is_flf2v_task(const std::string& name) { return name.rfind("flf2v", 0) == 0; }
bool is_moe_task(const std::string& name) { return name == "t2v-A14B" || name == "i2v-A14B"; }

// --sample_guide_scale: "g", or "low,high" for the A14B experts (the official pair order).
std::vector<double> parse_guide(const std::string& s) {
    const std::vector<double> out = split_numbers(s).value_or(std::vector<double>{});
    WANRT_CHECK((out.size() == 1 || out.size() == 2) && std::isfinite(out[0]) && std::isfinite(out.back()), "generate",
                "bad --sample_guide_scale \"", s, "\"; write a number (e.g. 5.0), or low,high for the A14B experts (e.g. 3.0,4.0)");
    return out;
}

void parse_size(const std::string& s, int64_t* w, int64_t* h) {
    const size_t star = s.find('*');
    try {
        size_t a = 0, b = 0;
        if (star == std::string::npos) throw std::invalid_argument("no *");
        *w = std::stoll(s.substr(0, star), &a);
        *h = std::stoll(s.substr(star + 1), &b);
        if (a != star || b != s.size() - star - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
        fail("generate", "bad --size \"", s, "\"; write it as WIDTH*HEIGHT, e.g. 832*480");
    }
    // 16384: the DiT's 1024 RoPE positions per axis times the 16-pixel latent patch; checked before
    // anything is sized from it (100000*100000 would otherwise be tried and run out of memory).
    WANRT_CHECK(*w <= 16384 && *h <= 16384, "generate", "--size ", s,
                " is too large: width and height must be at most 16384 (official sizes: 832*480, 1280*720)");
    WANRT_CHECK(*w > 0 && *h > 0 && *w % 16 == 0 && *h % 16 == 0, "generate", "--size ", s,
                " must have width and height positive multiples of 16 (e.g. 832*480)");
}

// generate.py's default name: {task}_{size}_{ulysses}_{ring}_{prompt[:50], ' ' and '/' → '_'}_{time}.mp4
std::string default_save_file(const std::string& task, const std::string& size, const std::string& prompt, bool image) {
    std::string p;
    int chars = 0;
    for (size_t i = 0; i < prompt.size() && chars < 50;) {
        const unsigned char c = static_cast<unsigned char>(prompt[i]);
        const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        std::string ch = prompt.substr(i, len);
        if (ch == " " || ch == "/") ch = "_";
        p += ch;
        i += len;
        ++chars;
    }
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", std::localtime(&now));
    return cat(task, "_", size, "_1_1_", p, "_", stamp, image ? ".png" : ".mp4");
}

// Fails unless path can be written: known extension, existing writable folder, not a folder itself.
void check_output_path(const std::string& path) {
    const fs::path p(path);
    std::error_code ec;
    WANRT_CHECK(!fs::is_directory(p, ec), "generate", "--save_file ", path, " is a folder; give a file name such as out.mp4");
    video_container_for(path);  // throws "[video] unknown extension ..."
    check_output_writable(path, "generate", "--save_file");  // probes with a unique temporary name
}

std::string fmt_seconds(double s) {
    char b[32];
    if (s < 60) std::snprintf(b, sizeof b, "%.1f s", s);
    else std::snprintf(b, sizeof b, "%dm%02ds", int(s) / 60, int(s) % 60);
    return b;
}

void print_files(const std::vector<std::string>& files) {
    if (files.size() == 1)
        std::printf("%s\n", files[0].c_str());
    else
        std::printf("%s ... %s (%zu frames)\n", files.front().c_str(), files.back().c_str(), files.size());
}

// Everything the flags resolve to: the pipeline's request, the model, and what the messages name.
struct Plan {
    bool demo = false;
    TaskInfo task{"", "", true};
    std::string kind;                 // official_kind of the folder, or "demo"
    std::vector<std::string> sizes;   // the model's trained sizes ("" kinds: none known)
    bool odd_size = false;            // --size is not one of them
    T2VModelParts model;              // empty for the demo until announce() builds it
    GenerateRequest req;
    bool image_task = false;          // i2v or flf2v: req.image is made from `picture` once the backend exists
    bool flf2v = false;               // first-last-frame: req.last_frame from `last_picture` too
    bool moe = false;                 // Wan2.2 A14B: two experts (req.moe)
    bool ti2v = false;                // Wan2.2 TI2V-5B: --image (optional) goes to req.image_rgb
    Rgb24Video picture, last_picture;
    I2VSize video_size;               // i2v, flf2v: the video's size from the (first) picture and max_area
    LoraOptions lora;                 // --lora, --lora_mode (set on the model parts before the run)
    VaeTiling vae_tiling;             // --vae_tile, applied to the model's VAE config once it exists
    DitOffloadOptions offload;        // --offload, --max_vram (set on the model parts before the run)
};

// Refuses the flags of the other mode (--causal or not).
void check_mode_flags(const Opts& o) {
    if (o.causal) {
        for (CLI::Option* opt : {o.o_guide, o.o_neg, o.o_steps, o.o_solver})
            WANRT_CHECK(!opt->count(), "generate",
                        "--causal generation has no classifier-free guidance and uses --denoising_steps for its "
                        "steps: leave out ",
                        opt->get_name());
        WANRT_CHECK(o.frames_per_block >= 1, "generate", "--frames_per_block ", o.frames_per_block,
                    " must be at least 1 (CausVid: 3)");
    } else {
        for (CLI::Option* opt : o.causal_only)
            WANRT_CHECK(!opt->count(), "generate", opt->get_name(), " is a --causal option; add --causal");
    }
}

// Step 1: the task and the model (files are checked here: one error lists everything missing).
void resolve_task(const Opts& o, Plan& p) {
    const bool has_image = o.o_image->count() > 0;
    const bool has_first = o.o_first->count() > 0, has_last = o.o_last->count() > 0;
    // The frame pair: both or neither, and never with --image.
    WANRT_CHECK(!has_last || has_first, "generate",
                "--last_frame needs --first_frame: first-last-frame-to-video takes both (--task flf2v-14B)");
    WANRT_CHECK(!has_first || has_last, "generate", "--first_frame needs --last_frame (--task flf2v-14B takes both); "
                "for one picture use --image with --task i2v-14B");
    WANRT_CHECK(!has_image || !has_first, "generate", "pass either --image (i2v) or --first_frame and --last_frame "
                "(flf2v), not both");
    if (!o.task.empty()) {
        p.task = lookup_task(o.task);
        WANRT_CHECK(p.task.supported, "generate", "--task ", o.task,
                    " is not yet supported by wanrt; use t2v-1.3B, t2v-14B, t2i-14B, i2v-14B or flf2v-14B");
        if (is_flf2v_task(o.task)) {
            WANRT_CHECK(!has_image, "generate", "--task ", o.task, " takes --first_frame and --last_frame, not --image "
                        "(use --task i2v-14B for one picture)");
            WANRT_CHECK(has_first, "generate", "--task ", o.task,
                        " makes a video between two pictures: pass --first_frame a.png --last_frame b.png");
        } else {
            WANRT_CHECK(!has_first, "generate", "--first_frame and --last_frame are for --task flf2v-14B; --task ",
                        o.task, is_image_task(o.task) ? " takes one --image" : " takes only a prompt");
        }
        WANRT_CHECK(!has_image || is_image_task(o.task) || o.task == "ti2v-5B", "generate", "--image is for image-to-video; --task ", o.task,
                    " takes only a prompt (use --task i2v-14B with an I2V model folder, or leave out --image)");
        WANRT_CHECK(!p.demo || is_image_task(o.task) || is_flf2v_task(o.task) || is_moe_task(o.task) ||
                        o.task == "ti2v-5B", "generate",
                    "--task ", o.task,
                    " needs its model folder: pass --ckpt_dir (without both, the built-in demo model runs)");
    }
    if (p.demo) {
        p.kind = "demo";
        p.flf2v = has_first || is_flf2v_task(o.task);
        p.ti2v = o.task == "ti2v-5B";  // --image (optional) is its i2v mode, not the Wan2.1 i2v demo
        p.image_task = p.flf2v || (has_image && !p.ti2v) || is_image_task(o.task);
        p.moe = is_moe_task(o.task);
        p.task = p.moe || p.ti2v ? TaskInfo{o.task + "-demo", "demo", true}
                 : p.flf2v      ? TaskInfo{"flf2v-demo", "demo", true}
                 : p.image_task ? TaskInfo{"i2v-demo", "demo", true}
                                : TaskInfo{"t2v-demo", "demo", true};
        WANRT_CHECK(p.flf2v || !p.image_task || has_image, "generate", "--task ", o.task,
                    " makes a video from a picture: pass --image in.png (PNG, JPEG or WebP)");
        return;
    }
    p.model = open_model_folder(o.ckpt_dir);
    const T2VModelParts& model = p.model;
    p.moe = model.moe();
    p.ti2v = model.ti2v();
    p.kind = official_model_kind(model);
    p.image_task = model.dit_config.is_i2v();
    p.flf2v = model.dit_config.is_flf2v();
    if (o.task.empty()) {
        WANRT_CHECK(!has_first || p.flf2v, "generate", "--first_frame and --last_frame need a first-last-frame model, "
                    "but ", o.ckpt_dir, " holds ", model.kind, "; pass a FLF2V folder (Wan2.1-FLF2V-14B-720P)");
        WANRT_CHECK(!p.flf2v || !has_image, "generate", o.ckpt_dir, " holds a first-last-frame model (", model.kind,
                    "): pass --first_frame a.png --last_frame b.png instead of --image");
        WANRT_CHECK(!p.flf2v || has_first, "generate", o.ckpt_dir, " holds a first-last-frame model (", model.kind,
                    "): pass --first_frame a.png --last_frame b.png (PNG, JPEG or WebP)");
        WANRT_CHECK(!has_image || p.image_task || p.ti2v, "generate", "--image needs an image-to-video model, but ", o.ckpt_dir,
                    " holds ", model.kind, " (text-to-video); pass an I2V folder (e.g. Wan2.1-I2V-14B-480P) or leave out --image");
        WANRT_CHECK(p.flf2v || !p.image_task || has_image, "generate", o.ckpt_dir, " holds an image-to-video model (",
                    model.kind, "): pass --image in.png (PNG, JPEG or WebP)");
    }
    if (!o.task.empty())
        WANRT_CHECK(p.kind == p.task.kind, "generate", "--task ", o.task, " needs a ", p.task.kind, " model but ",
                    o.ckpt_dir, " holds ", model.kind, " (config.json: dim ", model.dit_config.dim, ", ",
                    model.dit_config.num_layers, " blocks); ",
                    p.kind.empty() ? std::string("leave out --task to run this folder's model") : "pass --task " + p.kind,
                    ", or --ckpt_dir a ", p.task.kind, " folder");
    else
        p.task = {p.kind.empty() ? std::string(p.ti2v  ? "ti2v-5B"
                                               : p.moe ? (p.image_task ? "i2v-A14B" : "t2v-A14B")
                                               : p.flf2v ? "flf2v" : p.image_task ? "i2v" : "t2v")
                                 : p.kind,
                  p.kind, true};
    WANRT_CHECK(p.flf2v || !p.image_task || has_image, "generate", "--task ", p.task.name,
                " makes a video from a picture: pass --image in.png (PNG, JPEG or WebP)");
}

// Step 2: defaults per task (docs/wan21.md §6.5), then checks of every option against them and the model.
T2VOptions resolve_options(Opts& o, Plan& p) {
    // i2v: any picture-conditioned task (i2v or flf2v); flf2v: the first-last-frame one.
    const bool t2i = p.task.name == "t2i-14B", demo = p.demo, causal = o.causal, i2v = p.image_task, flf2v = p.flf2v;
    const std::string& kind = p.kind;
    WANRT_CHECK(!(t2i && causal), "generate", "task t2i-14B makes one image; --causal generates video, use a t2v task");
    WANRT_CHECK(!(i2v && causal), "generate", "--causal runs the text-to-video causal models; image-to-video has no "
                "causal mode: leave out --causal");
    WANRT_CHECK(!(p.ti2v && causal), "generate", "--causal runs the Wan2.1 causal models; TI2V-5B has no causal mode: "
                "leave out --causal");
    WANRT_CHECK(!(p.moe && causal), "generate", "--causal runs the Wan2.1 causal models; the A14B experts have no "
                "causal mode: leave out --causal");
    const MoeDefaults md = moe_defaults(i2v);
    // The defaults per task, shared with serve and the Python binding (pipeline/generate.h).
    TaskDefaultsKey key;
    key.kind = kind;
    key.demo = demo;
    key.image = i2v;
    key.flf2v = flf2v;
    key.moe = p.moe;
    key.ti2v = p.ti2v;
    key.t2i = t2i;
    key.causal = causal;
    key.folder_480p = o.ckpt_dir.find("480P") != std::string::npos;
    const GenerateDefaults dflt = generate_defaults(key);
    T2VOptions opt;
    if (o.size.empty()) o.size = dflt.size;
    parse_size(o.size, &opt.width, &opt.height);
    opt.frame_num = o.o_frames->count() ? o.frame_num : dflt.frame_num;
    if (causal && !o.o_frames->count()) {  // default rounded up to whole blocks (81 frames → 21 latent = 7 blocks of 3)
        const int64_t fpb = o.frames_per_block, F = (opt.frame_num - 1) / 4 + 1;
        opt.frame_num = ((F + fpb - 1) / fpb * fpb - 1) * 4 + 1;
    }
    WANRT_CHECK(opt.frame_num >= 1 && (opt.frame_num - 1) % 4 == 0, "generate", "--frame_num ", opt.frame_num,
                " must be 4n+1 (e.g. ", std::max<int64_t>(1, (opt.frame_num - 1) / 4 * 4 + 1), " or ",
                (std::max<int64_t>(opt.frame_num - 1, 0) / 4 + 1) * 4 + 1, ")");
    WANRT_CHECK(!t2i || opt.frame_num == 1, "generate", "task t2i-14B makes one image: --frame_num must be 1");
    opt.sample_steps = o.o_steps->count() ? o.sample_steps : dflt.sample_steps;
    WANRT_CHECK(opt.sample_steps > 0, "generate", "--sample_steps ", opt.sample_steps, " must be at least 1 (official: 50)");
    // generate.py: 3.0 for i2v at the 480p sizes, 16 for flf2v, else 5.0; Wan2.2's: the A14B config's.
    opt.sample_shift = o.o_shift->count() ? o.shift : default_sample_shift(key, o.size);
    WANRT_CHECK(std::isfinite(opt.sample_shift) && opt.sample_shift > 0, "generate", "--sample_shift ", opt.sample_shift,
                causal ? " must be positive (CausVid: 8; Self-Forcing: 5 with --warp_denoising_step)"
                       : " must be positive (official: 5; 8-12 advised for 1.3B)");
    if (causal) p.req.causal = causal_options(o, opt.frame_num, opt.sample_shift);
    // A single g means (g, g) for the experts, as WanT2V.generate; the pair is (low-noise, high-noise).
    // The A14B pair and the trained demo's 1 are the defaults' own; others take generate.py's 5.0.
    const std::vector<double> guide = o.o_guide->count() || (!p.moe && !p.demo) ? parse_guide(o.guide) : dflt.guide;
    WANRT_CHECK(guide.size() == 1 || p.moe, "generate", "--sample_guide_scale ", o.guide,
                " is a pair (low,high), which only the A14B tasks take; pass one number");
    opt.guide_scale = guide[0];
    p.req.neg_prompt = dflt.neg_prompt;  // --neg_prompt, when given and not empty, replaces it below
    p.req.moe.guide_scale_high = guide.back();
    p.req.moe.boundary = md.boundary;
    p.req.moe.offload = o.offload;
    WANRT_CHECK(o.solver == "unipc" || o.solver == "dpm++" || o.solver == "euler" || o.solver == "lcm", "generate",
                "unknown --sample_solver \"", o.solver,
                "\"; use unipc (official default), dpm++, euler or lcm (step-distilled models)");
    opt.solver = o.solver;
    if (!o.cache.empty()) {
        const StepCacheConfig cc = StepCacheConfig::parse(o.cache);
        WANRT_CHECK(!causal || cc.method == CacheMethod::None, "generate",
                    "--cache applies to the CFG denoising loop (t2v, i2v, flf2v); it does not combine with --causal");
        WANRT_CHECK(!p.moe || cc.method == CacheMethod::None, "generate",
                    "--cache is not yet supported with the A14B experts (its reuse would span the expert switch); "
                    "leave out --cache");
        if (cc.method != CacheMethod::None) opt.cache = std::make_shared<StepCache>(cc);
    }
    p.sizes = supported_sizes(kind);
    p.odd_size = check_supported_size(key, o.size);  // A14B, TI2V-5B refuse; Wan2.1 tasks only warn (top of this file)

    // Model shapes (the demo's are known without building anything).
    const DemoConfig dc = p.moe    ? demo_moe_config(i2v)
                          : p.ti2v ? demo_ti2v_config()
                          : flf2v  ? demo_flf2v_config()
                          : i2v    ? demo_i2v_config()
                                   : demo_config();
    const DitConfig& dit = demo ? dc.dit : p.model.dit_config;
    const VaeConfig& vae = demo ? dc.vae : p.model.vae_config;
    // The pictures are read now: a bad file or a size mismatch fails before any weights load.
    if (p.ti2v && !o.image.empty()) p.picture = read_image(o.image);  // optional: image-to-video
    if (flf2v) {
        p.picture = read_image(o.first_frame);
        p.last_picture = read_image(o.last_frame);
    } else if (i2v) {
        p.picture = read_image(o.image);
    }
    p.video_size = image_video_size({i2v, flf2v, p.ti2v}, p.picture, p.last_picture, opt, dit, vae,
                                    demo ? dc.vae22 : p.model.vae22_config);
    return opt;
}

// --vae tae --vae_checkpoint taew2_1.pth: the checkpoint is opened (names and shapes, no weights) and
// checked against the DiT's latent before anything loads.
void check_tae_flags(const Opts& o, Plan& p) {
    WANRT_CHECK(o.vae == "wan" || o.vae == "tae", "generate", "unknown --vae \"", o.vae,
                "\"; use wan (the Wan2.1 VAE) or tae (TAEHV, with --vae_checkpoint taew2_1.pth)");
    if (o.vae == "wan") {
        WANRT_CHECK(o.vae_checkpoint.empty(), "generate", "--vae_checkpoint is for --vae tae; add --vae tae or leave it out");
        return;
    }
    WANRT_CHECK(!o.vae_checkpoint.empty(), "generate", "--vae tae needs --vae_checkpoint taew2_1.pth (madebyollin/taehv)");
    WANRT_CHECK(!VaeTiling::parse(o.vae_tile).enabled(), "generate",
                "--vae_tile tiles the Wan VAE; TAEHV decodes whole frames: leave out --vae_tile or --vae tae");
    WANRT_CHECK(!p.ti2v, "generate", "--vae tae decodes Wan2.1 latents (taew2_1); ti2v-5B has the 48-channel Wan2.2 VAE: "
                "leave out --vae tae");
    WANRT_CHECK(!p.image_task, "generate", "--vae tae decodes text-to-video and --causal runs; image-to-video encodes its "
                "picture with the Wan VAE: leave out --vae tae");
    std::error_code ec;
    WANRT_CHECK(fs::is_regular_file(o.vae_checkpoint, ec), "generate", "--vae_checkpoint ", o.vae_checkpoint,
                " is not a file; pass taew2_1.pth (or a .safetensors with its keys)");
    const TaehvConfig c = TaehvConfig::from_weights(*open_weights_file(o.vae_checkpoint));
    const int64_t z = p.demo ? demo_config().dit.out_dim : p.model.dit_config.out_dim;
    WANRT_CHECK(c.latent_channels == z && c.patch_size == 1, "generate", "--vae_checkpoint ", o.vae_checkpoint,
                " decodes ", c.latent_channels, "-channel latents (patch ", c.patch_size, ") but the DiT makes ", z,
                "-channel Wan2.1 latents; use taew2_1.pth");
}

// Steps 1 and 2 and the rest of the flags: every check that can fail runs here, before a backend is
// made or a weight is read.
Plan make_plan(Opts& o) {
    check_mode_flags(o);
    Plan p;
    p.demo = o.ckpt_dir.empty();
    resolve_task(o, p);
    p.req.opt = resolve_options(o, p);
    const bool t2i = p.task.name == "t2i-14B";
    if (!o.o_prompt->count())  // generate.py's EXAMPLE_PROMPT of the task
        o.prompt = t2i                               ? "一个朴素端庄的美人"
                   : p.task.name == "t2v-demo" && demo_dit_trained() ? kDemoExamplePrompt  // what it draws
                   : p.flf2v                         ? kExampleFLF2VPrompt
                   : p.image_task                    ? kExampleI2VPrompt
                                                     : kExamplePrompt;
    p.req.prompt = o.prompt;
    if (o.o_neg->count() && !o.neg_prompt.empty()) p.req.neg_prompt = o.neg_prompt;  // "" = the default, as generate.py
    if (o.save_file.empty()) o.save_file = default_save_file(p.task.name, o.size, o.prompt, t2i);
    check_output_path(o.save_file);
    p.vae_tiling = VaeTiling::parse(o.vae_tile);
    if (p.ti2v) p.vae_tiling.validate(Vae22Config().spatial_factor());  // 16: fails now, not after the denoise
    // The generator file is opened (its header and key names read, no weights) before anything loads.
    if (!o.generator.empty()) {
        std::error_code ec;
        WANRT_CHECK(fs::is_regular_file(o.generator, ec), "generate", "--generator ", o.generator,
                    " is not a file; pass a CausVid / Self-Forcing / StreamDiffusionV2 checkpoint (.pt, .pth or .safetensors)");
        p.req.generator = open_generator(o.generator);
    }
    check_tae_flags(o, p);
    WANRT_CHECK(o.max_vram.empty() || o.stream_blocks, "generate", "--max_vram is the budget of --offload; add --offload");
    WANRT_CHECK(!o.stream_blocks || !o.causal, "generate", "--offload streams the DiT blocks of the CFG pipelines; "
                "--causal needs them resident: leave out --offload");
    p.offload.enabled = o.stream_blocks;
    if (!o.max_vram.empty()) p.offload.max_vram = parse_memory_size(o.max_vram, "generate");
    // LoRA files: the arguments and the files' presence now; their keys are matched as the DiT loads.
    for (const std::string& a : o.loras) {
        LoraSpec s = parse_lora_arg(a);
        std::error_code ec;
        WANRT_CHECK(fs::is_regular_file(s.path, ec), "generate", "--lora ", s.path, " is not a file; pass a .safetensors LoRA");
        p.lora.files.push_back(s);
    }
    p.lora.mode = parse_lora_mode(o.lora_mode);
    p.req.seed = uint64_t(o.seed);
    if (o.seed < 0) {  // generate.py: random.randint(0, sys.maxsize)
        std::random_device rd;
        p.req.seed = ((uint64_t(rd()) << 32) | rd()) & 0x7fffffffffffffffull;
    }
    return p;
}

// Step 3: say what runs (and build the demo model, after saying so).
void announce(const Opts& o, Plan& p, Backend& be) {
    if (p.demo) {
        std::fprintf(stderr,
                     "generate: no --ckpt_dir given: running the built-in demo model (tiny %s T5/%sDiT/VAE%s). "
                     "Pass --ckpt_dir for a real model.\n",
                     p.ti2v ? "Wan2.2" : "Wan2.1",
                     p.moe ? (p.image_task ? "two i2v-A14B expert " : "two t2v-A14B expert ")
                     : p.ti2v ? "ti2v-5B " : p.flf2v ? "CLIP/flf2v " : p.image_task ? "CLIP/i2v " : "",
                     p.task.name == "t2v-demo" && demo_dit_trained()
                         ? ": DiT trained on coloured shapes, e.g. \"a green square moving up on a black background\""
                         : " with random weights; the video is structured noise");
        p.model = p.moe     ? demo_moe_model_parts(p.image_task)
                  : p.ti2v  ? demo_ti2v_model_parts()
                  : p.flf2v ? demo_flf2v_model_parts()
                  : p.image_task ? demo_i2v_model_parts() : demo_model_parts();
    }
    p.model.vae_config.tiling = p.vae_tiling;
    p.model.vae22_config.tiling = p.vae_tiling;  // ti2v-5B: the Wan2.2 VAE tiles the same way
    if (p.ti2v && p.picture.frames > 0)
        std::fprintf(stderr, "generate: image %s (%lldx%lld) in max_area %s -> video %lldx%lld (resized, centre-cropped)\n",
                     o.image.c_str(), (long long)p.picture.width, (long long)p.picture.height, o.size.c_str(),
                     (long long)p.video_size.w, (long long)p.video_size.h);
    set_request_images(p.req, {p.image_task, p.flf2v, p.ti2v}, std::move(p.picture), std::move(p.last_picture), be);
    p.picture = Rgb24Video(), p.last_picture = Rgb24Video();
    if (p.odd_size) {
        std::string list;
        for (const std::string& s : p.sizes) list += (list.empty() ? "" : ", ") + s;
        std::fprintf(stderr,
                     "generate: warning: size %s is not one %s supports (%s); the official generate.py refuses it. "
                     "Running anyway; expect lower quality.\n",
                     o.size.c_str(), p.kind.c_str(), list.c_str());
    }
    std::fprintf(stderr, "generate: %s, task %s (%s)\n", p.model.name.c_str(), p.task.name.c_str(), p.model.kind.c_str());
    const T2VOptions& opt = p.req.opt;
    const unsigned long long seed = p.req.seed;
    if (p.req.causal) {
        const CausalOptions& copt = *p.req.causal;
        std::string steps;
        for (double t : copt.step_list(FlowMatchTable(copt.shift))) steps += cat(steps.empty() ? "" : ",", t);
        const int64_t F = (opt.frame_num - 1) / 4 + 1;
        const bool gen = p.req.generator.src != nullptr;
        std::fprintf(stderr,
                     "generate: causal, %s, %lld frames = %lld blocks of %lld latent frames, steps %s%s, shift %g, "
                     "context noise %g, KV cache %s, seed %llu%s%s\n",
                     o.size.c_str(), (long long)opt.frame_num, (long long)(F / copt.frames_per_block),
                     (long long)copt.frames_per_block, steps.c_str(), copt.warp ? " (warped)" : "", copt.shift,
                     copt.context_noise,
                     copt.cache_frames ? cat(copt.cache_frames, " frames (sink ", copt.sink_frames, ")").c_str() : "all frames",
                     seed, gen ? ", DiT from " : "", gen ? o.generator.c_str() : "");
    } else {
        if (p.flf2v)
            std::fprintf(stderr,
                         "generate: first frame %s, last frame %s (%lldx%lld) in max_area %s -> video %lldx%lld\n",
                         o.first_frame.c_str(), o.last_frame.c_str(), (long long)p.req.image.size(2),
                         (long long)p.req.image.size(1), o.size.c_str(), (long long)p.video_size.w,
                         (long long)p.video_size.h);
        else if (p.image_task)
            std::fprintf(stderr, "generate: image %s (%lldx%lld) in max_area %s -> video %lldx%lld\n", o.image.c_str(),
                         (long long)p.req.image.size(2), (long long)p.req.image.size(1), o.size.c_str(),
                         (long long)p.video_size.w, (long long)p.video_size.h);
        std::fprintf(stderr, "generate: %s, %lld frames, %d steps %s, shift %g, guide %g, seed %llu\n",
                     p.image_task ? cat(p.video_size.w, "*", p.video_size.h).c_str() : o.size.c_str(),
                     (long long)opt.frame_num, opt.sample_steps, opt.solver.c_str(), opt.sample_shift, opt.guide_scale,
                     seed);
        if (p.moe)
            std::fprintf(stderr,
                         "generate: experts: high-noise while t >= %g (guide %g), then low-noise (guide %g); %s\n",
                         p.req.moe.boundary * 1000.0, p.req.moe.guide_scale_high, opt.guide_scale,
                         p.req.moe.offload ? "one resident at a time (--offload_model true)"
                                           : "both resident (--offload_model false)");
    }
    if (p.moe)
        std::fprintf(stderr, "generate: text encoder, %sthe DiT experts and VAE all run on %s, one stage at a time\n",
                     p.image_task ? "VAE (encode), " : "", be.description().c_str());
    else if (p.image_task)
        std::fprintf(stderr,
                     "generate: text encoder, CLIP, VAE and DiT all run on %s, one at a time (each freed before the "
                     "next loads)\n",
                     be.description().c_str());
    else
        std::fprintf(stderr,
                     "generate: text encoder, DiT and VAE all run on %s, one at a time (the text encoder is freed "
                     "before the DiT loads, the DiT before the VAE)\n",
                     be.description().c_str());
}

// One progress line per step (T2V) or block (causal); a bar redrawn in place on a terminal.
void print_progress(bool blocks, int64_t done, int64_t total, double seconds, double eta, const std::string& line) {
    if (isatty(fileno(stderr))) {
        const char* unit = blocks ? "block" : "step";
        constexpr int kWidth = 30;
        const int fill = int(double(kWidth) * double(done) / double(total));
        std::fprintf(stderr, "\r  denoise [%s%s] %s%lld/%lld  %.2f s/%s  ETA %s   ", std::string(size_t(fill), '#').c_str(),
                     std::string(size_t(kWidth - fill), '.').c_str(), blocks ? "block " : "",
                     (long long)done, (long long)total, seconds, unit, fmt_seconds(eta).c_str());
        if (done == total) std::fprintf(stderr, "\n");
    } else {
        std::fprintf(stderr, "%s", line.c_str());
    }
    std::fflush(stderr);
}

// Step 4's callbacks: stage names, then the denoising progress.
GenerateProgress progress_printer(const Plan& p) {
    GenerateProgress g;
    g.on_stage = [](const std::string& s) {
        if (s == "denoise") return;  // the progress lines cover it
        std::fprintf(stderr, "  %s...\n", s.c_str());
    };
    g.on_step = [](const T2VStepInfo& s) {
        const int done = s.index + 1;
        const double eta = s.elapsed_seconds / done * (s.total - done);
        char line[160];
        std::snprintf(line, sizeof line, "  denoise step %d/%d (t=%lld): %.2f s, ETA %s\n", done, s.total,
                      (long long)s.timestep, s.step_seconds, fmt_seconds(eta).c_str());
        print_progress(false, done, s.total, s.step_seconds, eta, line);
    };
    if (p.req.causal) {
        const int64_t fpb = p.req.causal->frames_per_block;
        const int64_t nsteps = int64_t(p.req.causal->step_list(FlowMatchTable(p.req.causal->shift)).size());
        g.on_block = [fpb, nsteps](const CausalBlockInfo& b) {
            const int64_t done = b.block + 1;
            const double eta = b.elapsed_seconds / double(done) * double(b.blocks - done);
            char line[200];
            std::snprintf(line, sizeof line, "  denoise block %lld/%lld (latent frames %lld-%lld, %lld steps): %.2f s, ETA %s\n",
                          (long long)done, (long long)b.blocks, (long long)(b.block * fpb), (long long)(done * fpb - 1),
                          (long long)nsteps, b.block_seconds, fmt_seconds(eta).c_str());
            print_progress(true, done, b.blocks, b.block_seconds, eta, line);
        };
    }
    return g;
}

// Step 5: each stage's time and the peak memory.
void print_summary(const GenerateResult& r, bool causal, bool image, bool clip, const std::string& device,
                   const MemoryStats& mem, double write_s, double total_s) {
    const GenerateTimes& tm = r.times;
    const double per = tm.step_seconds.empty() ? 0 : tm.denoise / double(tm.step_seconds.size());
    std::fprintf(stderr, "generate: timings (%s)\n", device.c_str());
    if (causal)
        std::fprintf(stderr, "  tokenize          %8.2f s  (%lld tokens)\n", tm.tokenize, (long long)tm.prompt_tokens[0]);
    else
        std::fprintf(stderr, "  tokenize          %8.2f s  (%lld + %lld tokens)\n", tm.tokenize,
                     (long long)tm.prompt_tokens[0], (long long)tm.prompt_tokens[1]);
    std::fprintf(stderr, "  load T5           %8.2f s\n", tm.t5_load);
    std::fprintf(stderr, "  encode text       %8.2f s\n", tm.text);
    if (image && clip) {
        std::fprintf(stderr, "  load CLIP         %8.2f s\n", tm.clip_load);
        std::fprintf(stderr, "  encode image      %8.2f s  (CLIP)\n", tm.clip);
    }
    if (image) std::fprintf(stderr, "  encode image      %8.2f s  (VAE)\n", tm.vae_encode);
    std::fprintf(stderr, "  load DiT          %8.2f s\n", tm.dit_load);
    if (causal)
        std::fprintf(stderr, "  denoise           %8.2f s  (%zu blocks, %.2f s/block, %lld DiT calls, KV cache %.1f MiB)\n",
                     tm.denoise, tm.step_seconds.size(), per, (long long)tm.dit_calls,
                     double(tm.kv_cache_bytes) / 1048576.0);
    else
        std::fprintf(stderr, "  denoise           %8.2f s  (%zu steps, %.2f s/step)\n", tm.denoise, tm.step_seconds.size(), per);
    std::fprintf(stderr, image ? "  load VAE          %8.2f s  (twice)\n" : "  load VAE          %8.2f s\n", tm.vae_load);
    std::fprintf(stderr, "  decode            %8.2f s\n", tm.decode);
    std::fprintf(stderr, "  write             %8.2f s\n", write_s);
    std::fprintf(stderr, "  total             %8.2f s   peak memory (max RSS) %.2f GB\n", total_s,
                 double(peak_rss_bytes()) / 1e9);
    if (mem.peak_reserved > 0)  // backends that track it; the driver's context and library workspaces come on top
        std::fprintf(stderr, "  device memory     peak %.2f GiB in use, %.2f GiB reserved (the largest stage)\n",
                     double(mem.peak) / 1073741824.0, double(mem.peak_reserved) / 1073741824.0);
}

void run(Opts o) {
    using clock = std::chrono::steady_clock;
    const auto t_start = clock::now();
    Plan p = make_plan(o);
    const std::shared_ptr<StepCache> cache = p.req.opt.cache;  // read after the run (p.req moves)
    auto be = make_backend(o.device, o.threads);
    announce(o, p, *be);
    if (o.vae == "tae") {
        const std::string path = o.vae_checkpoint;
        p.model.tae_weights = [path] { return open_weights_file(path); };
        std::fprintf(stderr, "generate: decoding with TAEHV from %s (the Wan VAE is not loaded)\n", path.c_str());
    }
    const bool causal = p.req.causal.has_value(), image = p.image_task || !p.req.image_rgb.empty(), clip = !p.moe && !p.ti2v;
    p.model.lora = p.lora;
    p.model.linear_fp8 = parse_linear_dtype_fp8("--linear_dtype", o.linear_dtype);
    p.model.offload = p.offload;
    p.model.t5_cpu = o.t5_cpu;
    if (o.stream_blocks)
        std::fprintf(stderr,
                     be->host_visible() ? "generate: --offload does nothing on %s: the weights already live in host memory\n"
                                        : "generate: --offload: DiT blocks beyond %s stream from pinned host memory\n",
                     be->host_visible() ? be->name().c_str()
                     : o.max_vram.empty() ? "none (no --max_vram)" : ("the --max_vram " + o.max_vram + " budget").c_str());
    // The printer reads p.req: make it before p.req is moved (argument evaluation order is unspecified;
    // clang moved first and the causal step list came out empty).
    auto progress = progress_printer(p);
    const GenerateResult r = run_generate(p.model, be, std::move(p.req), std::move(progress));

    const auto t_w = clock::now();
    VideoWriteOptions wo;
    wo.fps = sample_fps(p.model);
    const std::vector<std::string> files = write_video(o.save_file, r.video, wo);
    const double write_s = std::chrono::duration<double>(clock::now() - t_w).count();
    print_summary(r, causal, image, clip, be->description(), be->memory_stats(), write_s, std::chrono::duration<double>(clock::now() - t_start).count());
    if (cache) {  // per step: C = DiT computed, R = reused, cond then uncond
        const std::vector<std::string> lines = cache->summary_lines();
        for (size_t i = 0; i < lines.size(); ++i) std::fprintf(stderr, "%s%s\n", i ? "                    " : "  cache             ", lines[i].c_str());
    }
    print_files(files);
}

void setup(CLI::App& app) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = app.add_subcommand(
        "generate",
        "Text or image to video (official generate.py flags); without --ckpt_dir a built-in demo model runs");
    // As argparse in generate.py: a repeated flag takes its last value.
    c->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    c->add_option("--task", o->task,
                  "t2v-1.3B, t2v-14B, t2i-14B, i2v-14B, flf2v-14B, t2v-A14B, i2v-A14B or ti2v-5B (default: the "
                  "--ckpt_dir folder's model)");
    c->add_option("--size", o->size,
                  "WIDTH*HEIGHT, multiples of 16 (default: 832*480 for 1.3B, 1280*720 for 14B, 256*256 demo); i2v: "
                  "the max area W*H, the video keeps the picture's aspect (default 832*480 for a 480P folder, else "
                  "1280*720; flf2v: 1280*720 from the first frame)");
    o->o_image = c->add_option("--image", o->image,
                               "i2v: the first frame, PNG, JPEG or WebP (grayscale becomes RGB, alpha is dropped)");
    o->o_first = c->add_option("--first_frame", o->first_frame,
                               "flf2v: the first frame (PNG, JPEG or WebP); sets the video's aspect");
    o->o_last = c->add_option("--last_frame", o->last_frame,
                              "flf2v: the last frame, the same size as --first_frame");
    o->o_frames = c->add_option("--frame_num", o->frame_num, "Frames, 4n+1 (default 81; demo 17)")->check(int_in(1, 1 << 20));
    c->add_option("--ckpt_dir", o->ckpt_dir, "Wan2.1 model folder as downloaded (default: the built-in demo model)");
    c->add_option("--save_file", o->save_file, "Output .mp4, .y4m or .png (default: generate.py's name, .mp4)");
    o->o_prompt = c->add_option("--prompt", o->prompt, "The prompt (default: generate.py's example prompt of the task)");
    o->o_neg = c->add_option("--neg_prompt", o->neg_prompt, "Negative prompt (default: the official Chinese one)");
    c->add_option("--base_seed", o->seed, "Seed (negative: random, printed)")
        ->check(int_in(INT64_MIN, INT64_MAX, "(negative: random)"))
        ->capture_default_str();
    o->o_solver = c->add_option("--sample_solver", o->solver, "unipc, dpm++, euler or lcm (step-distilled models, docs/cli.md)")->capture_default_str();
    o->o_steps =
        c->add_option("--sample_steps", o->sample_steps, "Sampling steps (default 50; i2v 40; flf2v 50; A14B 40; demo 8)")
            ->check(int_in(1, 1000));
    o->o_shift = c->add_option("--sample_shift", o->shift,
                               "Flow shift (default 5.0; i2v at 832*480 or 480*832: 3.0; flf2v 16; t2v-A14B 12; i2v-A14B 5; 8 with --causal)");
    o->o_guide = c->add_option("--sample_guide_scale", o->guide,
                               "Classifier-free guidance scale (default 5.0); A14B: g or low,high for the two experts "
                               "(default t2v 3.0,4.0, i2v 3.5,3.5)");
    o->o_offload = c->add_option("--offload_model", o->offload,
                                 "A14B: keep one expert resident at a time (true) or both (false)")
                       ->capture_default_str();
    c->add_option("--cache", o->cache,
                  "Step caching: teacache[:THRESH][,ret], magcache[:THRESH][,K=N][,retention=R][,ratios=FILE], "
                  "magcache:calibrate[=FILE], easycache[:THRESH][,ret_steps=N] (default: none)");
    c->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    c->add_option("--vae_tile", o->vae_tile,
                  "VAE in spatial tiles: off (exact), N or N:S pixels (e.g. 256:192, diffusers' default; multiples "
                  "of 16 for ti2v-5B); bounds VAE memory at 720p and beyond")
        ->capture_default_str();
    c->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->check(threads_in_range())->capture_default_str();
    c->add_option("--vae", o->vae, "wan (the Wan2.1 VAE) or tae (TAEHV: a tiny, fast decoder; needs --vae_checkpoint)")
        ->capture_default_str();
    c->add_option("--vae_checkpoint", o->vae_checkpoint, "--vae tae: the TAEHV weights, taew2_1.pth (or .safetensors)");
    c->add_flag("--causal", o->causal, "Block-autoregressive generation with a KV cache (CausVid / Self-Forcing), no CFG");
    o->causal_only = {
        c->add_option("--frames_per_block", o->frames_per_block, "--causal: latent frames per block")
            ->check(int_in(1, 1024))
            ->capture_default_str(),
        c->add_option("--denoising_steps", o->denoising_steps, "--causal: timesteps per block, comma-separated")
            ->capture_default_str(),
        c->add_flag("--warp_denoising_step", o->warp, "--causal: shift the steps through the FlowMatch table (Self-Forcing)"),
        c->add_option("--context_noise", o->context_noise, "--causal: timestep of the clean K/V pass")->capture_default_str(),
        c->add_option("--cache_frames", o->cache_frames, "--causal: KV cache size in latent frames (0 = every frame)")
            ->capture_default_str(),
        c->add_option("--sink_frames", o->sink_frames, "--causal: cache frames kept from the start (with --cache_frames)")
            ->capture_default_str(),
        c->add_option("--generator", o->generator, "--causal: DiT weights from a CausVid / Self-Forcing / StreamDiffusionV2 "
                                                   "checkpoint instead of the folder's"),
    };
    c->add_flag("--offload", o->stream_blocks, "Keep DiT blocks in pinned host memory and stream them to the GPU "
                                               "ahead of use (a no-op on the CPU)");
    c->add_option("--max_vram", o->max_vram, "--offload: device memory for the DiT's weights, e.g. 16G; the blocks "
                                             "that fit stay resident (default: stream every block). Activations "
                                             "come on top: 14B at 480p 81 frames needs about 9 GiB more");
    c->add_flag("--t5_cpu", o->t5_cpu, "Run the umT5 text encoder on the CPU (official flag); its outputs are uploaded");
    c->add_option("--lora", o->loras, "LoRA FILE[:STRENGTH] for the DiT (repeatable; ComfyUI, musubi/kohya, diffusers/PEFT "
                                      "and lightx2v .diff formats)");
    c->add_option("--lora_mode", o->lora_mode, "auto (merge into f32 weights, else run time), merge or runtime")
        ->capture_default_str();
    c->add_option("--linear_dtype", o->linear_dtype, "DiT block linears: bf16 (the backend's own precision) or fp8 "
                                                     "(W8A8 e4m3, sm_89+ GPUs; emulated on the CPU)")
        ->capture_default_str();
    c->callback([o] { run(*o); });
}

Command reg("generate", setup);

}  // namespace
}  // namespace wanrt::cli
