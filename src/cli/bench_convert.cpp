// wanrt bench convert: what each quantized type costs and changes on a real-size model. For every
// --types entry: `wanrt convert` of the checkpoint (timed), the file's size and bits per weight, then
// one DiT forward on its weights (loaded through the GGUF reader, dequantized) against the forward of
// the checkpoint as it is (e.g. the bf16 synthetic 1.3B of `wanrt synth --dtype bf16`), on the same
// random input: the rel-L2 row of docs/quantization.md's full-size table.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/gguf.h"
#include "models/dit.h"
#include "ops/ops.h"
#include "pipeline/convert.h"
#include "pipeline/diffusers_folder.h"
#include "runtime/device.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string ckpt_dir, types = "q8_0,q6_k,q5_k_m,q4_k_m,q4_0,q3_k_m,q2_k", out_dir;
    int frames = 1, height = 480, width = 832, text_tokens = 120;
    RunOpts run{"auto", "", 0, 1, 0};
};

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> v;
    size_t b = 0;
    for (size_t e; (e = s.find(',', b)) != std::string::npos; b = e + 1) v.push_back(s.substr(b, e - b));
    v.push_back(s.substr(b));
    return v;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
        den += double(ref[i]) * ref[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

void run(const Opts& o) {
    namespace fs = std::filesystem;
    if (o.ckpt_dir.empty()) fail("bench", "--ckpt_dir is required (e.g. a folder written by wanrt synth --dtype bf16)");
    if ((o.frames - 1) % 4 != 0 || o.frames < 1) fail("bench", "--frames ", o.frames, " must be 4n+1 (e.g. 1, 5, 81)");
    if (o.height % 16 || o.width % 16 || o.height <= 0 || o.width <= 0)
        fail("bench", "--height/--width must be positive multiples of 16, got ", o.height, "x", o.width);
    const std::vector<std::string> types = split_commas(o.types);
    for (const std::string& t : types) {
        std::optional<ConvertTarget> ct = convert_target(t);
        if (!ct || ct->format != ConvertFormat::Gguf)
            fail("bench", "--types: '", t, "' is not a GGUF type of wanrt convert (", convert_target_list(), ")");
    }
    o.run.validate();
    // Where the converted files go (one at a time, removed after use).
    fs::path dir = o.out_dir;
    std::error_code ec;
    if (dir.empty()) dir = fs::temp_directory_path() / ("wanrt_bench_convert_" + std::to_string(::getpid()));
    fs::create_directories(dir, ec);
    if (ec) fail("bench", "cannot create ", dir.string(), ": ", ec.message());
    struct Cleanup {
        fs::path d;
        bool own;
        ~Cleanup() {
            std::error_code e;
            if (own) fs::remove_all(d, e);
        }
    } cleanup{dir, o.out_dir.empty()};

    auto be = make_backend(o.run.device, o.run.threads);
    DitCheckpoint ck = is_diffusers_folder(o.ckpt_dir) ? open_diffusers_transformer(scan_diffusers_folder(o.ckpt_dir))
                                                       : open_dit_checkpoint(o.ckpt_dir);
    const DitConfig cfg = ck.config;
    const int64_t lat_f = (o.frames - 1) / 4 + 1, lat_h = o.height / 8, lat_w = o.width / 8;
    if (cfg.is_i2v()) fail("bench", "bench convert runs t2v models (got ", cfg.model_type, ")");
    DitSample s;
    s.x = random_normal(*be, {cfg.in_dim, lat_f, lat_h, lat_w}, 1);
    s.context = random_normal(*be, {std::min<int64_t>(o.text_tokens, cfg.text_len), cfg.text_dim}, 2);
    s.t = 500;
    std::vector<float> ref;
    int64_t seq_len = 0;
    {
        DitModel model(cfg, ck.weights, *be);
        seq_len = model.tokens_for(s.x.shape());
        ref = ops::to_host_f32(model.forward({s}, seq_len)[0]);
    }
    ck.weights.reset();

    BenchReport rep;
    rep.bench = "convert";
    rep.device = be->description();
    rep.config = {{"model", cat(o.ckpt_dir, " (", describe_kind(cfg), ")")},
                  {"reference", "the checkpoint's own weights, one forward"},
                  {"latent", cat(cfg.in_dim, "x", lat_f, "x", lat_h, "x", lat_w, ", ", seq_len, " tokens, t 500")},
                  {"conversion threads", o.run.threads ? std::to_string(o.run.threads) : std::string("all cores")}};
    for (const std::string& t : types) {
        ConvertOptions co;
        co.in = o.ckpt_dir;
        co.out = (dir / ("model-" + t + ".gguf")).string();
        co.type = t;
        co.threads = o.run.threads;
        std::fprintf(stderr, "bench: converting to %s\n", t.c_str());
        ConvertReport cr;
        std::vector<double> ms = time_repeats(*be, 0, 1, [&] { cr = convert_model(co); });
        double err = 0;
        {
            DitModel model(cfg, GgufTensorSource::open(co.out), *be);
            err = rel_l2(ops::to_host_f32(model.forward({s}, seq_len)[0]), ref);
        }
        fs::remove(co.out, ec);
        char row[160];
        std::snprintf(row, sizeof row, "convert %s: %.3f GiB, %.2f bits/weight, %d fallbacks, forward rel-L2 %.2e",
                      t.c_str(), double(cr.out_bytes) / double(1 << 30), cr.bits_per_weight(), cr.fallbacks, err);
        rep.rows.push_back({row, ms, 0});
        std::fprintf(stderr, "bench: %s: %.3f GiB, %.2f bits/weight, forward rel-L2 %.3e vs the checkpoint\n",
                     t.c_str(), double(cr.out_bytes) / double(1 << 30), cr.bits_per_weight(), err);
    }
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand(
        "convert", "Convert a DiT to each GGUF type: time, size, bits/weight, one forward's rel-L2 vs the checkpoint");
    c->add_option("--ckpt_dir", o->ckpt_dir,
                  "Model folder (official or diffusers); e.g. wanrt synth --dtype bf16 output")
        ->required();
    c->add_option("--types", o->types, "Comma-separated GGUF types of wanrt convert")->capture_default_str();
    c->add_option("--out_dir", o->out_dir,
                  "Where the converted files go (removed after use); default a temporary folder");
    c->add_option("--frames", o->frames, "Pixel frames (4n+1)")->capture_default_str();
    c->add_option("--height", o->height, "Pixel height")->capture_default_str();
    c->add_option("--width", o->width, "Pixel width")->capture_default_str();
    c->add_option("--text_tokens", o->text_tokens, "Real text tokens (padded to text_len)")->capture_default_str();
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("convert", setup);

}  // namespace
}  // namespace wanrt::cli
