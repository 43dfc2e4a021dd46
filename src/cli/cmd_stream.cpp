// wanrt stream: restyle a video file with the streaming V2V loop (pipeline/stream.h), chunk by chunk
// as a live source would feed it: frames 0–4, then 4 at a time; frames past the last whole chunk
// are dropped (as StreamDiffusionV2 does).
//
// The stages (text, DiT, VAE, the stream) are pipeline/stream_staged.h; this file parses and checks
// the flags, reads and writes the video files and prints progress. The files are read and written
// chunk by chunk (VideoReader, VideoWriter), so memory does not grow with the video's length; the
// output appears complete at the end or not at all.
//
// Models: --ckpt_dir is a Wan2.1 T2V folder (model_folder.h); --generator FILE replaces the DiT
// weights with a distilled causal checkpoint of the same architecture (.pt, .pth or .safetensors;
// the key prefix "model." / "generator.model." of CausVid/StreamDiffusionV2 files is found
// automatically). Without --ckpt_dir the built-in demo model runs (random weights: the output is
// structured noise, useful to try the pipeline). The input size must be a multiple of 16.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <new>
#include <sstream>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "core/error.h"
#include "models/taehv.h"
#include "io/output_file.h"
#include "pipeline/demo.h"
#include "pipeline/stream_staged.h"
#include "runtime/device.h"
#include "video/video_writer.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string input, output, prompt, ckpt_dir, generator, steps = "700,500", device = "auto";
    double noise_scale = 0.8, shift = 8.0, adapt_sink = 0.2;
    int64_t cache_frames = 6, sink_frames = 3, refresh_frame = 50, max_frames = 0, seed = 0;
    int threads = 0;
    bool fixed_noise = false, normalized = false;
    std::string vae = "wan", vae_checkpoint;  // --vae tae: TAEHV encodes and decodes (models/taehv.h)
    std::vector<std::string> loras;  // --lora FILE[:STRENGTH] (models/lora.h)
    std::string lora_mode = "auto";
};

std::vector<double> parse_steps(const std::string& s) {
    const std::optional<std::vector<double>> out = split_numbers(s);
    WANRT_CHECK(out, "stream", "bad --steps \"", s, "\"; write timesteps separated by commas, e.g. 700,500");
    return *out;
}

void run(const Opts& o) {
    StreamOptions so;
    so.steps = parse_steps(o.steps);
    so.shift = o.shift;
    so.noise_scale = o.noise_scale;
    so.motion_aware = !o.fixed_noise;
    so.cache_frames = o.cache_frames;
    so.sink_frames = o.sink_frames;
    so.refresh_frame = o.refresh_frame;
    so.adapt_sink_threshold = o.adapt_sink;
    so.raw_latents = !o.normalized;
    so.validate();
    video_container_for(o.output);  // unknown extensions fail before any work
    check_output_writable(o.output, "stream", "--output");  // and so does an unwritable destination

    // The input is read chunk by chunk as the stream pulls it (memory does not grow with its length);
    // its first 5 frames are read now, so a short or badly sized input fails before any model loads.
    VideoReader reader(o.input);
    const int64_t width = reader.width(), height = reader.height();
    WANRT_CHECK(width % 16 == 0 && height % 16 == 0, "stream", o.input, " is ", width, "x", height,
                "; the size must be a multiple of 16 (e.g. 832x480): resize it first, e.g. ffmpeg -vf scale=832:480");
    const int64_t limit = o.max_frames > 0 ? o.max_frames : INT64_MAX;
    auto read_frames = [&](int64_t n) {  // up to n frames, fewer at the end of the input or at --max_frames
        Rgb24Video v;
        v.width = width;
        v.height = height;
        v.fps = reader.fps();
        v.rgb.resize(v.frame_bytes() * size_t(n));
        while (v.frames < n && reader.frames_read() < limit &&
               reader.next(v.rgb.data() + v.frame_bytes() * size_t(v.frames)))
            ++v.frames;
        v.rgb.resize(v.frame_bytes() * size_t(v.frames));
        return v;
    };
    Rgb24Video first = read_frames(5);
    WANRT_CHECK(first.frames >= 5, "stream", o.input, " has ", first.frames, " frames; a stream needs at least 5");
    const int64_t expected = std::min(reader.frames_hint(), limit);  // 0 when the file does not say

    WANRT_CHECK(o.vae == "wan" || o.vae == "tae", "stream", "unknown --vae \"", o.vae,
                "\"; use wan (the Wan2.1 VAE) or tae (TAEHV, with --vae_checkpoint taew2_1.pth)");
    WANRT_CHECK(o.vae == "tae" || o.vae_checkpoint.empty(), "stream", "--vae_checkpoint is for --vae tae; add --vae tae");
    WANRT_CHECK(o.vae == "wan" || !o.vae_checkpoint.empty(), "stream",
                "--vae tae needs --vae_checkpoint taew2_1.pth (madebyollin/taehv)");
    std::error_code ec;
    WANRT_CHECK(o.vae_checkpoint.empty() || std::filesystem::is_regular_file(o.vae_checkpoint, ec), "stream",
                "--vae_checkpoint ", o.vae_checkpoint, " is not a file; pass taew2_1.pth (or a .safetensors with its keys)");

    // The output's temporary file exists from here on; it is renamed into place only after the last
    // frame (io/output_file.h), and removed if anything fails.
    VideoWriteOptions wo;
    if (reader.fps() > 0) wo.fps = std::max(1, int(std::lround(reader.fps())));
    VideoWriter writer(o.output, width, height, wo);

    const bool demo = o.ckpt_dir.empty();
    const std::string frames_desc = expected > 0 ? cat(expected, " frames") : std::string("length not announced");
    T2VModelParts parts = demo ? demo_model_parts() : open_model_folder(o.ckpt_dir);
    if (o.vae == "tae") {
        const TaehvConfig tc = TaehvConfig::from_weights(*open_weights_file(o.vae_checkpoint));  // names, no weights
        WANRT_CHECK(tc.latent_channels == parts.dit_config.in_dim && tc.patch_size == 1, "stream", "--vae_checkpoint ",
                    o.vae_checkpoint, " has ", tc.latent_channels, "-channel latents (patch ", tc.patch_size,
                    ") but the DiT takes ", parts.dit_config.in_dim, "; use taew2_1.pth");
        const std::string path = o.vae_checkpoint;
        parts.tae_weights = [path] { return open_weights_file(path); };
    }
    WANRT_CHECK(!parts.dit_config.is_i2v(), "stream", "the causal model needs a text-to-video DiT; ", parts.name,
                " holds an image-to-video one");
    // The generator file is opened (its header and key names read, no weights) before anything loads.
    CausalDitSource gen;
    if (!o.generator.empty()) {
        std::error_code ec;
        WANRT_CHECK(std::filesystem::is_regular_file(o.generator, ec), "stream", "--generator ", o.generator,
                    " is not a file; pass a CausVid / StreamDiffusionV2 checkpoint (.pt, .pth or .safetensors)");
        gen = open_generator(o.generator);
    }
    for (const std::string& a : o.loras) {
        LoraSpec s = parse_lora_arg(a);
        std::error_code ec;
        WANRT_CHECK(std::filesystem::is_regular_file(s.path, ec), "stream", "--lora ", s.path,
                    " is not a file; pass a .safetensors LoRA");
        parts.lora.files.push_back(s);
    }
    parts.lora.mode = parse_lora_mode(o.lora_mode);
    if (demo)
        std::fprintf(stderr, "stream: no --ckpt_dir: running the built-in demo model (random weights; the output is "
                             "structured noise)\n");
    auto be = make_backend(o.device, o.threads);
    std::fprintf(stderr,
                 "stream: %s%s on %s; %lldx%lld, %s; steps %s, noise scale %g%s, cache %lld frames (sink %lld)\n",
                 parts.name.c_str(), o.vae == "tae" ? " with TAEHV" : "", be->description().c_str(), (long long)width,
                 (long long)height, frames_desc.c_str(), o.steps.c_str(), o.noise_scale,
                 o.fixed_noise ? " (fixed)" : " (motion-aware)", (long long)o.cache_frames, (long long)o.sink_frames);

    auto on_chunk = [](int64_t k, int64_t chunks, double sec, const StreamStats& st) {
        const std::string of = chunks > k ? cat("/", chunks) : std::string();  // the count is a hint
        std::fprintf(stderr, "  chunk %lld%s: %.3f s (%.1f frames/s), noise scale %.3f, t0 %lld\n", (long long)k + 1,
                     of.c_str(), sec, (k == 0 ? 5.0 : 4.0) / sec, st.last_noise_scale, (long long)st.last_t0);
    };
    // The stage boundary for memory (as run_generate): one line naming what ran out and what to try.
    auto oom = [&](const std::string& why) -> StreamStagedResult {
        throw OutOfMemory(cat("[stream] out of ", be->host_visible() ? "host" : "GPU", " memory on ", be->name(), why,
                              "; try a smaller input size (e.g. 832x480), a smaller --cache_frames, or --device cpu"));
    };
    StreamFrameIo io;
    io.chunks = expected >= 5 ? (expected - 1) / 4 : 0;
    io.read = [&](int64_t n) {
        const Rgb24Video v = first.frames > 0 ? std::move(first) : read_frames(n);
        first = {};
        return v.frames > 0 ? rgb24_to_video(v, *be) : Tensor();
    };
    io.write = [&](const Tensor& frames) {
        const Rgb24Video v = video_to_rgb24(frames);
        for (int64_t f = 0; f < v.frames; ++f) writer.write(v.frame(f));
    };
    const StreamStagedResult r = [&] {
        try {
            return run_stream_staged(parts, be, o.prompt, io, so, uint64_t(o.seed), std::move(gen), {}, on_chunk);
        } catch (const OutOfMemory& e) {
            return oom(cat(" (", e.what(), ")"));
        } catch (const std::bad_alloc&) {
            return oom("");
        }
    }();
    const std::vector<std::string> files = writer.finish();
    const StreamStats& st = r.stats;
    const double run_s = r.times.stream;
    std::fprintf(stderr,
                 "stream: %lld frames in, %lld out in %.2f s (%.2f frames/s): VAE encode %.2f s, DiT %.2f s (%lld calls), "
                 "VAE decode %.2f s; load %.2f s; KV cache %.1f MiB\n",
                 (long long)st.frames_in, (long long)st.frames_out, run_s, double(st.frames_out) / run_s, st.encode_s,
                 st.dit_s, (long long)st.dit_calls, st.decode_s, r.times.load(), double(r.kv_cache_bytes) / 1048576.0);
    std::printf("%s\n", files.front().c_str());
}

void setup(CLI::App& app) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = app.add_subcommand("stream", "Streaming video-to-video (StreamDiffusionV2 loop with the causal KV-cache DiT)");
    c->add_option("--input", o->input, "Input video (mp4, y4m, png, ...; size a multiple of 16)")->required();
    c->add_option("--output", o->output, "Output .mp4, .y4m or .png")->required();
    c->add_option("--prompt", o->prompt, "The style prompt")->required();
    c->add_option("--ckpt_dir", o->ckpt_dir, "Wan2.1 T2V model folder (default: the built-in demo model)");
    c->add_option("--generator", o->generator, "Causal DiT weights replacing the folder's (CausVid / StreamDiffusionV2 model file)");
    c->add_option("--steps", o->steps, "Denoising timesteps, one stream-batch slot each")->capture_default_str();
    c->add_option("--noise_scale", o->noise_scale, "Initial noise scale (strength)")->capture_default_str();
    c->add_flag("--fixed_noise", o->fixed_noise, "Constant noise scale (no motion-aware controller)");
    c->add_option("--shift", o->shift, "FlowMatch shift")->capture_default_str();
    c->add_option("--cache_frames", o->cache_frames, "KV cache size in latent frames")->check(int_in(0, 1024))->capture_default_str();
    c->add_option("--sink_frames", o->sink_frames, "Latent frames kept at the start of the cache")->check(int_in(0, 1024))->capture_default_str();
    c->add_option("--adapt_sink", o->adapt_sink, "Adaptive sink similarity threshold (-1 = off)")->capture_default_str();
    c->add_option("--refresh_frame", o->refresh_frame, "RoPE position that wraps back (0 = never)")->check(int_in(0, 1024))->capture_default_str();
    c->add_flag("--normalized_latents", o->normalized, "Feed the DiT normalised latents (default: raw VAE mean, as SD)");
    c->add_option("--max_frames", o->max_frames, "Use at most this many input frames (0 = all)")->check(int_in(0, 1 << 24))->capture_default_str();
    c->add_option("--seed", o->seed, "Noise seed")->check(int_in(INT64_MIN, INT64_MAX))->capture_default_str();
    c->add_option("--vae", o->vae, "wan (the Wan2.1 VAE) or tae (TAEHV: tiny and fast; needs --vae_checkpoint)")
        ->capture_default_str();
    c->add_option("--vae_checkpoint", o->vae_checkpoint, "--vae tae: the TAEHV weights, taew2_1.pth (or .safetensors)");
    c->add_option("--lora", o->loras, "LoRA FILE[:STRENGTH] for the DiT (repeatable; as wanrt generate)");
    c->add_option("--lora_mode", o->lora_mode, "auto, merge or runtime (as wanrt generate)")->capture_default_str();
    c->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    c->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->check(threads_in_range())->capture_default_str();
    c->callback([o] { run(*o); });
}

Command reg("stream", setup);

}  // namespace
}  // namespace wanrt::cli
