// wanrt bench dit: one DiT forward at real widths on random weights (in memory, or a model folder).
// I2V / FLF2V models get the image inputs the pipelines hand them: y [in_dim − out_dim (20), F, H, W]
// (mask + image latent) and clip_fea [257, 1280] (FLF2V: [514, 1280], both frames' CLIP tokens),
// random here: the cost does not depend on the values.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
#include <map>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "models/dit_fp8.h"
#include "models/dit_weights.h"
#include "models/lora.h"
#include "pipeline/diffusers_folder.h"
#include "testing/ref_quantize.h"
#include "models/synth.h"
#include "ops/ops.h"
#include "runtime/device.h"

namespace wanrt::cli {

namespace {

// The CLIP ViT-H/14 features the i2v DiT takes: 1 + 16² tokens of width 1280 per image (img_emb's
// input width is fixed at 1280 in the official MLPProj).
constexpr int64_t kClipTokens = 257, kClipDim = 1280;

struct Opts {
    std::string ckpt_dir, model = "t2v-1.3B", weights_dtype = "f32", linear_dtype = "bf16", dump, max_vram;
    bool offload = false;
    int layers = 2, frames = 1, height = 480, width = 832, text_tokens = 120, lora_rank = 0;
    bool profile = true;
    RunOpts run{"auto", "", 1, 3, 0};
};

// --weights_dtype q8_0|q4_0|q4_k|q5_k|q6_k: the block types the CPU runs linears on (cpu/qmatmul.h).
bool parse_block_dtype(const std::string& s, DType* out) {
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K})
        if (s == dtype_name(t)) {
            *out = t;
            return true;
        }
    return false;
}

uint64_t source_bytes(const TensorSource& s) {
    uint64_t b = 0;
    for (const std::string& n : s.names()) b += s.find(n)->nbytes;
    return b;
}

// The tensors a Wan GGUF quantizes (fixtures README, dit_q.gguf): the blocks' 2-D weights; the rest
// as they are. Rows that are not whole blocks stay f32 (real files fall back to F16 there).
// q_bytes receives the quantized tensors' bytes and their f32 bytes.
std::shared_ptr<TensorSource> quantize_block_linears(const TensorSource& f32, DType t, std::pair<uint64_t, uint64_t>* q_bytes) {
    auto out = std::make_shared<MemoryTensorSource>(cat("synthetic ", dtype_name(t)));
    for (const std::string& n : f32.names()) {
        const StoredTensor* st = f32.find(n);
        const bool q = n.rfind("blocks.", 0) == 0 && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 &&
                       st->shape.size() == 2 && st->shape[1] % dtype_info(t).block_elems == 0;
        if (q) {
            const std::vector<uint8_t> bytes =
                testing::ref_quantize(t, static_cast<const float*>(st->data), shape_numel(st->shape));
            out->add(n, t, st->shape, bytes.data());
            q_bytes->first += bytes.size();
            q_bytes->second += st->nbytes;
        } else {
            out->add(n, st->dtype, st->shape, st->data);
        }
    }
    return out;
}

void run(const Opts& o) {
    if ((o.frames - 1) % 4 != 0 || o.frames < 1)
        fail("bench", "--frames ", o.frames, " must be 4n+1 (e.g. 1, 5, 81)");
    if (o.height % 16 || o.width % 16 || o.height <= 0 || o.width <= 0)
        fail("bench", "--height/--width must be positive multiples of 16, got ", o.height, "x", o.width);
    o.run.validate();
    const bool fp8 = parse_linear_dtype_fp8("--linear_dtype", o.linear_dtype);
    auto base = make_backend(o.run.device, o.run.threads);

    DitConfig cfg;
    std::shared_ptr<TensorSource> src;
    std::string what;
    // synthetic: all resident weight bytes; when quantized, the block linears' bytes and theirs in f32
    uint64_t weight_total = 0;
    std::pair<uint64_t, uint64_t> q_bytes{0, 0};
    if (!o.ckpt_dir.empty()) {
        DitCheckpoint ck = is_diffusers_folder(o.ckpt_dir)  // diffusers layout: its transformer/
                               ? open_diffusers_transformer(scan_diffusers_folder(o.ckpt_dir))
                               : open_dit_checkpoint(o.ckpt_dir);
        cfg = ck.config;
        src = ck.weights;
        what = o.ckpt_dir;
    } else {
        cfg = DitConfig::preset(o.model);
        if (o.layers > 0) cfg.num_layers = o.layers;
        DType qt;
        if (parse_block_dtype(o.weights_dtype, &qt)) {  // the f32 weights quantized (testing/ref_quantize.h)
            auto f32 = synth_dit_memory(cfg, DType::F32, 0);
            src = quantize_block_linears(*f32, qt, &q_bytes);
        } else {
            src = synth_dit_memory(cfg, parse_float_dtype("--weights_dtype", o.weights_dtype), 0);
        }
        weight_total = source_bytes(*src);
        what = cat("synthetic ", o.model, " widths, ", cfg.num_layers, " blocks, ", o.weights_dtype, " weights");
    }
    // --offload: blocks streamed from pinned host memory (models/dit_offload.h) within --max_vram.
    DitOffloadOptions off;
    off.enabled = o.offload;
    if (!o.max_vram.empty()) {
        WANRT_CHECK(o.offload, "bench", "--max_vram is the --offload budget; add --offload");
        off.max_vram = parse_memory_size(o.max_vram, "bench");
    }
    if (o.offload && base->host_visible())
        std::fprintf(stderr, "bench: --offload does nothing on %s (weights already live in host memory)\n",
                     base->name().c_str());
    DitModel model(cfg, src, *base, "", off);
    const MemoryStats load_mem = base->memory_stats();  // the loading peak: with --offload, resident + one block
    base->reset_peak_memory();
    // --lora_rank: random run-time LoRA branches (models/lora.h) on every Linear of every block, in
    // the weights' dtype, to measure the side path's cost against the same forward without them.
    std::vector<Linear*> lora_linears;
    if (o.lora_rank > 0) {
        uint64_t seed = 100;
        for (auto& [name, l] : dit_linears(model.mutable_weights(), cfg)) {
            if (name.rfind("blocks.", 0) != 0) continue;
            const int64_t r = o.lora_rank, n_out = l->w.size(0), n_in = l->w.size(1);
            LoraBranch br{random_normal(*base, {r, n_in}, ++seed, 0.02f), random_normal(*base, {n_out, r}, ++seed, 0.02f), 1.0f};
            if (l->w.dtype() != DType::F32 && !dtype_is_block(l->w.dtype())) {  // block weights: f32 branches
                br.down = ops::to_dtype(br.down, l->w.dtype());
                br.up = ops::to_dtype(br.up, l->w.dtype());
            }
            l->lora.push_back(br);
            lora_linears.push_back(l);
        }
    }

    // Wan2.2 TI2V-5B's VAE compresses 16× in space (the others 8×); all compress 4× in time.
    const int64_t vae_s = cfg.model_type == "ti2v" ? 16 : 8;
    if (o.height % (2 * vae_s) || o.width % (2 * vae_s))
        fail("bench", "--height/--width must be multiples of ", 2 * vae_s, " for this model (VAE ", vae_s,
             "x, patch 2), got ", o.width, "x", o.height);
    const int64_t lat_f = (o.frames - 1) / 4 + 1, lat_h = o.height / vae_s, lat_w = o.width / vae_s;
    // I2V: the noisy latent has out_dim channels, y the rest of in_dim (4 mask + 16 latent channels).
    const int64_t x_ch = cfg.is_i2v() ? cfg.out_dim : cfg.in_dim;
    const int64_t clip_tokens = cfg.is_flf2v() ? 2 * kClipTokens : kClipTokens;
    DitSample s;
    s.x = random_normal(*base, {x_ch, lat_f, lat_h, lat_w}, 1);
    s.context = random_normal(*base, {std::min<int64_t>(o.text_tokens, cfg.text_len), cfg.text_dim}, 2);
    if (cfg.is_i2v()) {
        if (cfg.in_dim <= cfg.out_dim)
            fail("bench", "i2v model with in_dim ", cfg.in_dim, " ≤ out_dim ", cfg.out_dim, ": no room for y; check config.json");
        s.y = random_normal(*base, {cfg.in_dim - x_ch, lat_f, lat_h, lat_w}, 3);  // [20, F, H, W]
        if (cfg.has_clip()) s.clip_fea = random_normal(*base, {clip_tokens, kClipDim}, 4);  // [257 or 514, 1280]
    }
    s.t = 999;
    const int64_t seq_len = model.tokens_for(s.x.shape());

    BenchReport rep;
    rep.bench = "dit";
    rep.device = base->description();
    rep.config = {{"model", what},
                  {"latent", cat(cfg.in_dim, "x", lat_f, "x", lat_h, "x", lat_w, " (", o.frames, " frames ", o.width, "x",
                                 o.height, ")")},
                  {"tokens", std::to_string(seq_len)},
                  {"text_tokens", std::to_string(s.context.size(0))},
                  {"image_tokens", cfg.has_clip() ? cat(clip_tokens, " (clip_fea ", clip_tokens, "x", kClipDim, ", y ",
                                                      cfg.in_dim - x_ch, " channels)")
                                                : cfg.is_i2v() ? cat("0 (y ", cfg.in_dim - x_ch, " channels, no CLIP)")
                                                               : std::string("0 (t2v)")},
                  {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)},
                  {"weights", o.offload ? "--offload" + (o.max_vram.empty() ? std::string() : " --max_vram " + o.max_vram) +
                                              ": " + model.offload_plan().describe()
                                        : model.offload_plan().describe()}};

    // One profiled pass (serves as the first warm-up) gives the per-op breakdown and the FLOP count,
    // and the named intermediates when --dump is given.
    std::map<std::string, std::pair<Shape, std::vector<float>>> dumped;
    DumpFn dump;
    if (!o.dump.empty())
        dump = [&](const std::string& name, const Tensor& t) { dumped[name] = {t.shape(), ops::to_host_f32(t)}; };
    std::vector<Tensor> out0;
    const std::vector<BenchRow> per_op = profile_ops(*base, [&] { out0 = model.forward({s}, seq_len, dump); });
    if (!o.dump.empty()) {
        dumped["out"] = {out0[0].shape(), ops::to_host_f32(out0[0])};
        std::vector<TensorToWrite> tw;
        for (auto& [name, v] : dumped) tw.push_back({name, DType::F32, v.first, v.second.data()});
        write_safetensors(o.dump, tw);
        std::fprintf(stderr, "bench: wrote %zu intermediates to %s\n", tw.size(), o.dump.c_str());
    }
    double flop = 0;
    for (const BenchRow& r : per_op) flop += r.flop;

    // the timed runs: no per-op synchronisation (profile_ops turned it off)
    std::vector<double> ms = time_repeats(*base, std::max(0, o.run.warmup - 1), o.run.repeats,
                                          [&] { model.forward({s}, seq_len); });
    if (o.lora_rank > 0) {
        rep.rows.push_back({cat("forward (", cfg.num_layers, " blocks) + LoRA rank ", o.lora_rank, " at run time"), ms, flop});
        std::vector<std::vector<LoraBranch>> saved;
        for (Linear* l : lora_linears) saved.push_back(std::exchange(l->lora, {}));
        std::vector<double> ms0 = time_repeats(*base, std::max(1, o.run.warmup - 1), o.run.repeats,
                                               [&] { model.forward({s}, seq_len); });
        rep.rows.push_back({cat("forward (", cfg.num_layers, " blocks) without LoRA"), ms0, 0});
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        rep.config.push_back({"lora", cat("rank ", o.lora_rank, " on ", lora_linears.size(), " Linears: +",
                                          100.0 * (median(ms) / median(ms0) - 1.0), "% per forward (medians)")});
        for (size_t i = 0; i < lora_linears.size(); ++i) lora_linears[i]->lora = std::move(saved[i]);
    } else {
        rep.rows.push_back({cat("forward (", cfg.num_layers, " blocks)"), ms, flop});
    }
    auto mib = [](uint64_t b) { return double(b) / double(1 << 20); };
    if (weight_total > 0) rep.config.push_back({"weights", cat(mib(weight_total), " MiB resident")});
    if (q_bytes.first > 0)
        rep.config.push_back({"block linears", cat(mib(q_bytes.first), " MiB in ", o.weights_dtype, " (f32: ", mib(q_bytes.second),
                                                   " MiB, ", double(q_bytes.second) / double(q_bytes.first), "x less)")});
    // --linear_dtype fp8: the same forward again with the block linears quantized (models/dit_fp8.h),
    // in the same process after the bf16 one: its time, the ratio, and the output's rel-L2 against
    // the bf16 output (the FP8 error on this model). The per-op rows are then the FP8 forward's.
    std::vector<BenchRow> prof = per_op;
    if (fp8) {
        const std::vector<float> y_ref = ops::to_host_f32(out0[0]);
        quantize_dit_linears_fp8(model);
        std::vector<Tensor> out8;
        prof = profile_ops(*base, [&] { out8 = model.forward({s}, seq_len); });
        double flop8 = 0;
        for (const BenchRow& r : prof) flop8 += r.flop;
        std::vector<double> ms8 = time_repeats(*base, std::max(0, o.run.warmup - 1), o.run.repeats,
                                               [&] { model.forward({s}, seq_len); });
        rep.rows.push_back({cat("forward (", cfg.num_layers, " blocks), FP8 block linears"), ms8, flop8});
        const std::vector<float> y8 = ops::to_host_f32(out8[0]);
        double num = 0, den = 0;
        for (size_t i = 0; i < y8.size() && i < y_ref.size(); ++i) {
            num += (double(y8[i]) - y_ref[i]) * (double(y8[i]) - y_ref[i]);
            den += double(y_ref[i]) * y_ref[i];
        }
        rep.config.push_back({"fp8", cat("block linears e4m3 (per-tensor scales, fast accumulation ",
                                         ops::fp8_fast_accum() ? "on" : "off", "): ", median(ms) / median(ms8),
                                         "x the first forward's speed; output rel-L2 vs it ", std::sqrt(num / std::max(den, 1e-300)))});
    }
    if (const MemoryStats mem = base->memory_stats(); mem.reserved > 0)  // backends that track it
        rep.config.push_back({"peak memory", cat(double(mem.peak) / double(1 << 30), " GiB in use during the forwards "
                                                 "(weights included); ", double(load_mem.peak) / double(1 << 30),
                                                 " GiB while loading, ", double(load_mem.in_use) / double(1 << 30),
                                                 " GiB resident after it (the weights: issue 15's measure)")});
    if (o.profile) rep.rows.insert(rep.rows.end(), prof.begin(), prof.end());
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand("dit", "Time one DiT forward (default: 1.3B widths, 2 blocks, one 480p frame = 1,560 tokens; i2v/flf2v models get random y and clip_fea)");
    c->add_option("--ckpt_dir", o->ckpt_dir, "Model folder (config.json + diffusion_pytorch_model*.safetensors); default: random weights in memory");
    c->add_option("--model", o->model, "Synthetic model widths: t2v-1.3B, t2v-14B, i2v-14B, flf2v-14B, ti2v-5B")->capture_default_str();
    c->add_option("--layers", o->layers, "Synthetic model blocks (0 = all of the preset)")->capture_default_str();
    c->add_option("--weights_dtype", o->weights_dtype, "Synthetic linear weights: f32, bf16, f16; CPU: q8_0, q4_0, q4_k, "
                                                       "q5_k, q6_k (the blocks' linears quantized from f32)")->capture_default_str();
    c->add_option("--linear_dtype", o->linear_dtype, "Block linears: bf16 (the backend's own precision; f32 on the CPU) "
                                                     "or fp8 (W8A8 e4m3; times the bf16 forward first, then FP8, in one run)")
        ->capture_default_str();
    c->add_option("--frames", o->frames, "Pixel frames (4n+1)")->capture_default_str();
    c->add_option("--height", o->height, "Pixel height")->capture_default_str();
    c->add_option("--width", o->width, "Pixel width")->capture_default_str();
    c->add_option("--text_tokens", o->text_tokens, "Real text tokens (padded to text_len)")->capture_default_str();
    c->add_option("--lora_rank", o->lora_rank, "Random run-time LoRA branches of this rank on every block Linear; "
                                               "also times the forward without them")->capture_default_str();
    c->add_option("--dump", o->dump, "Write the named intermediates of the first pass to this .safetensors file");
    c->add_flag("--offload", o->offload, "Stream the DiT blocks from pinned host memory (GPU; a no-op on the CPU)");
    c->add_option("--max_vram", o->max_vram, "--offload: device memory for the DiT's weights, e.g. 4G (default: "
                                             "stream every block)");
    c->add_flag("!--no_profile", o->profile, "Skip the per-op breakdown rows");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("dit", setup);

}  // namespace
}  // namespace wanrt::cli
