// wanrt convert IN OUT --type T: a Wan DiT checkpoint (official folder, .safetensors, .pth, diffusers,
// GGUF) to GGUF (quantized, city96's layout) or safetensors (f32/f16/bf16, ComfyUI fp8). Rules:
// io/convert_rules.h; streaming and formats: pipeline/convert.h. A progress line on stderr (tensor
// i/N, bytes, ETA), then a summary (sizes in and out, bits per weight, fallbacks).
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "pipeline/convert.h"

namespace wanrt::cli {

namespace {

struct Opts {
    ConvertOptions c;
    std::string k_fallback = "legacy";
    bool info = false;
};

std::string gb(uint64_t b) {
    char s[32];
    if (b >= (1ull << 30))
        std::snprintf(s, sizeof s, "%.2f GiB", double(b) / double(1ull << 30));
    else
        std::snprintf(s, sizeof s, "%.1f MiB", double(b) / double(1ull << 20));
    return s;
}

void run(Opts& o) {
    if (o.k_fallback == "legacy")
        o.c.k_fallback = KFallback::Legacy;
    else if (o.k_fallback == "f16")
        o.c.k_fallback = KFallback::F16;
    else
        fail("convert", "unknown --k_fallback '", o.k_fallback,
             "'; use legacy (llama.cpp's table) or f16 (city96's tool)");
    const int max_threads = 4 * default_thread_count();
    if (o.c.threads < 0 || o.c.threads > max_threads)
        fail("convert", "--threads ", o.c.threads, " is out of range; use 0 (all cores) to ", max_threads);
    o.c.dry_run = o.info;
    const bool tty = isatty(fileno(stderr));
    const auto t0 = std::chrono::steady_clock::now();
    int last_pct = -1;
    auto progress = [&](const ConvertProgress& p) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double frac = p.bytes_total ? double(p.bytes_done) / double(p.bytes_total) : 1.0;
        const int pct = int(frac * 100);
        if (!tty && pct / 10 == last_pct / 10 && p.index != p.count) return;  // a line per 10 % in logs
        last_pct = pct;
        const double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
        std::fprintf(
            stderr,
            tty ? "\r\033[K  [%zu/%zu] %3d%% %s of %s, ETA %.0f s  %s" : "  [%zu/%zu] %3d%% %s of %s, ETA %.0f s  %s\n",
            p.index, p.count, pct, gb(p.bytes_done).c_str(), gb(p.bytes_total).c_str(), eta, p.name.c_str());
        if (tty && p.index == p.count) std::fprintf(stderr, "\n");
    };
    ConvertReport r = convert_model(o.c, progress);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (o.info) {
        std::printf("%-44s %-22s %-8s %s\n", "tensor", "shape", "type", "rule");
        for (const ConvertedTensor& t : r.tensors)
            std::printf("%-44s %-22s %-8s %s%s\n", t.name.c_str(), shape_str(t.shape).c_str(), t.type.c_str(),
                        t.why.c_str(), t.copied ? " (copied)" : "");
    }
    for (const ConvertedTensor& t : r.tensors)
        if (t.fallback) std::fprintf(stderr, "convert: %s: %s → %s\n", t.name.c_str(), t.why.c_str(), t.type.c_str());
    char params[32];
    if (r.params >= 1000000000)
        std::snprintf(params, sizeof params, "%.2f B", double(r.params) * 1e-9);
    else
        std::snprintf(params, sizeof params, "%.2f M", double(r.params) * 1e-6);
    std::fprintf(stderr, "convert: %s %s (%s, %s, %s params) → %s %s%s, %.2f bits/weight, %d fallback%s, %.1f s\n",
                 o.info ? "would convert" : "converted", o.c.in.c_str(), r.input_kind.c_str(), gb(r.in_bytes).c_str(),
                 params, o.c.out.c_str(), gb(r.out_bytes).c_str(), o.info ? " (planned)" : "", r.bits_per_weight(),
                 r.fallbacks, r.fallbacks == 1 ? "" : "s", secs);
}

void setup(CLI::App& app) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = app.add_subcommand(
        "convert", "Convert a Wan DiT checkpoint to GGUF (quantized) or safetensors (f32/f16/bf16/fp8)");
    c->add_option("IN", o->c.in, "Model folder (official or diffusers), .safetensors(.index.json), .pth or .gguf")
        ->required();
    c->add_option("OUT", o->c.out, "Output .gguf (GGUF types) or .safetensors (f32, f16, bf16, fp8_*)")->required();
    c->add_option("--type", o->c.type, convert_target_list())->required();
    c->add_flag("--fp8_scaled", o->c.fp8_scaled,
                "fp8 types: per-tensor scale_weight (max|w|/448) and the scaled_fp8 marker, as ComfyUI's scaled files");
    c->add_option("--k_fallback", o->k_fallback,
                  "K-quant rows not a multiple of 256: legacy (Q5_0/Q5_1/Q8_0, llama.cpp) or f16 (city96's tool)")
        ->capture_default_str();
    c->add_option("--threads", o->c.threads, "Quantization threads (0 = all cores)")->capture_default_str();
    c->add_flag("--info", o->info, "Print each tensor's planned type and the output size; write nothing");
    c->callback([o] { run(*o); });
}

Command reg("convert", setup);

}  // namespace
}  // namespace wanrt::cli
