// `wanrt generate` as one call: a prompt (and an image) and a model → a video, either text-to-video with
// classifier-free guidance (run_t2v_staged, model_folder.h), image-to-video (run_i2v_staged, i2v.h),
// first-last-frame-to-video (run_flf2v_staged, flf2v.h), the Wan2.2 A14B experts (run_moe_staged, moe.h) or
// block-autoregressive causal generation (run_causal_staged, causal_staged.h). All run their stages one after the other, each model freed before the next loads; this file only
// picks the runner and gives the results one shape, so the command line prints one summary.
//
// Errors: those of the runner (options before any weights load, then loading).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/causal_staged.h"
#include "pipeline/flf2v.h"
#include "pipeline/i2v.h"
#include "pipeline/model_folder.h"
#include "pipeline/moe.h"
#include "pipeline/ti2v_staged.h"
#include "video/video_writer.h"

namespace wanrt {

struct GenerateRequest {
    std::string prompt;
    std::string neg_prompt;  // T2V and I2V (causal generation has no classifier-free guidance)
    Tensor image;            // set: image-to-video from this picture, f32 [3, h0, w0] in [−1, 1];
                             // opt.width·opt.height is then the max_area
    Tensor last_frame;       // set (with image = the first frame): first-last-frame-to-video (flf2v.h),
                             // the same size as image
    uint64_t seed = 0;
    T2VOptions opt;          // size and frames; the sampler fields for T2V
    // Wan2.2 TI2V-5B (T2VModelParts::ti2v()) image-to-video: the picture as 8-bit RGB rows (h × w × 3; the
    // official resize is PIL's, on uint8); empty: text-to-video.
    std::vector<uint8_t> image_rgb;
    int64_t image_rgb_h = 0, image_rgb_w = 0;
    MoeOptions moe;          // Wan2.2 A14B models (T2VModelParts::moe()): boundary, high-noise guide, offload
    std::optional<CausalOptions> causal;  // set: block by block with a KV cache
    CausalDitSource generator;            // causal only: DiT weights replacing the folder's
};

struct GenerateProgress {
    StageFn on_stage;             // as each stage starts ("tokenize", "load text encoder", ...)
    T2VStepCallback on_step;      // T2V: after each denoising step
    CausalBlockCallback on_block;  // causal: after each block
};

struct GenerateTimes {
    double tokenize = 0, t5_load = 0, text = 0, dit_load = 0, denoise = 0, vae_load = 0, decode = 0;
    double clip_load = 0, clip = 0, vae_encode = 0;  // I2V and FLF2V only
    std::vector<double> step_seconds;   // per denoising step (T2V) or per block (causal)
    std::vector<int64_t> prompt_tokens;  // prompt (and, for T2V, negative prompt) token counts
    int64_t dit_calls = 0, kv_cache_bytes = 0;  // causal only
};
struct GenerateResult {
    Tensor video;  // [3, frame_num, H, W] f32 in [-1, 1]
    GenerateTimes times;
};

GenerateResult run_generate(const T2VModelParts& m, std::shared_ptr<Backend> be, GenerateRequest req,
                            const GenerateProgress& progress = {});

// The frame rate of the videos a model makes (its config's sample_fps): Wan2.2 TI2V-5B 24, the others 16.
inline int sample_fps(const T2VModelParts& m) { return m.ti2v() ? 24 : 16; }

// ---- Defaults and sizes: one place for `wanrt generate`, the server's job API and the Python binding.
// What the defaults depend on (generate.py's per task, docs/wan21.md §6.5; DemoDefaults for the demo).
struct TaskDefaultsKey {
    std::string kind;          // the model's kind ("t2v-1.3B", "i2v-14B", "ti2v-5B", ...; "" = not an official one)
    bool demo = false;         // the built-in demo model (its small defaults)
    bool image = false;        // picture-conditioned: i2v, flf2v, i2v-A14B
    bool flf2v = false, moe = false, ti2v = false, t2i = false, causal = false;
    bool folder_480p = false;  // the folder's name says 480P (the i2v default size, as the CLI always did)
};
// The official kind of a folder's model ("t2v-1.3B", "t2v-A14B", "ti2v-5B" (the released widths), ...;
// "" when its widths are no release's): official_kind, official_moe_kind or the TI2V-5B check.
std::string official_model_kind(const T2VModelParts& m);
// The key of a loaded model folder (or the demo when demo is set): kind and task from the parts.
TaskDefaultsKey task_defaults_key(const T2VModelParts& m, bool demo, const std::string& ckpt_dir);
struct GenerateDefaults {
    std::string size;           // "W*H" (i2v, flf2v: the max_area)
    int64_t frame_num = 81;     // causal: before rounding to whole blocks (the caller's)
    int sample_steps = 50;
    std::vector<double> guide;  // {g}, or {low, high} for the A14B experts
    std::string neg_prompt;     // the config's sample_neg_prompt (the trained demo's: DemoDefaults)
};
GenerateDefaults generate_defaults(const TaskDefaultsKey& k);
// generate.py's shift for the size asked: causal 8, A14B the config's, flf2v 16, i2v 3.0 at 832*480 and
// 480*832, else 5.0.
double default_sample_shift(const TaskDefaultsKey& k, const std::string& size);
// SUPPORTED_SIZES of generate.py (Wan2.1's and Wan2.2's wan/configs/__init__.py) of a kind; {} unknown.
std::vector<std::string> supported_sizes(const std::string& kind);
// "W*H" → width, height for the server's job API and the Python binding (the CLI says --size in its own
// lines): positive multiples of 16, at most 16384. Throws "[generate] bad size \"S\"; write it as
// WIDTH*HEIGHT, e.g. 832*480" or "[generate] size S must have ...".
void parse_request_size(const std::string& s, int64_t* w, int64_t* h);
// A size ("W*H") against the kind's list: Wan2.2 (A14B, TI2V-5B) refuse others, as generate.py asserts,
// with "[generate] size S is not one K supports (list); use X" (the same line from the CLI, serve and
// Python); Wan2.1 kinds run any size and this returns true for one off the list (the caller warns).
bool check_supported_size(const TaskDefaultsKey& k, const std::string& size);

// The pictures of a request, one path for `wanrt generate` (--image, --first_frame/--last_frame) and the
// Python Model.generate (image=, last_image=): 8-bit RGB as read_image gives them (frames = 1; frames = 0:
// no picture). What the model does with them:
struct ImageTask {
    bool image = false;  // Wan2.1 I2V / FLF2V, Wan2.2 i2v-A14B: a picture is required (req.image)
    bool flf2v = false;  // first-last-frame: a last picture too (req.last_frame), the same size
    bool ti2v = false;   // Wan2.2 TI2V-5B: the picture is optional (req.image_rgb; none: text-to-video)
};
ImageTask image_task_of(const T2VModelParts& m);
// Checks opt and the pictures against the models (i2v_latent_shape, flf2v_latent_shape, ti2v_shape,
// or t2v_latent_shape when the task takes no picture), before any weights load; returns the video size
// (zero for text-to-video). Pictures the task does not take are the caller's to refuse (their messages
// name the caller's arguments).
I2VSize image_video_size(const ImageTask& t, const Rgb24Video& image, const Rgb24Video& last, const T2VOptions& opt,
                         const DitConfig& dit, const VaeConfig& vae, const Vae22Config& vae22);
// Moves the pictures into req: TI2V's as RGB rows (req.image_rgb), the others as f32 [3, h0, w0] in
// [−1, 1] on be (req.image, req.last_frame), the conversion `wanrt generate` has always done.
void set_request_images(GenerateRequest& req, const ImageTask& t, Rgb24Video image, Rgb24Video last, Backend& be);

}  // namespace wanrt
