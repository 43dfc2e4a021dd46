// wanrt bench ops: the op table (testing/op_table.h) in perf mode. Each sized row runs at the
// DiT's real shapes (1.3B widths by default) at every dtype signature the backend registers for
// it, timed as the median of repeats after warm-up with the device synchronised, with its FLOP
// and byte rates, to see each kernel against its ceiling (ggml's test-backend-ops perf mode).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/output_file.h"
#include "testing/op_table.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string only;
    int tokens = 1560, dim = 1536, ffn = 8960, heads = 12, text = 512;
    RunOpts run{"auto", "", 1, 5, 0};
};

void run(const Opts& o) {
    o.run.validate();
    if (o.tokens < 1 || o.dim < 1 || o.ffn < 1 || o.text < 1 || o.heads < 1 || o.dim % o.heads ||
        (o.dim / o.heads) % 2 || o.dim % 4)
        fail("bench",
             "ops needs positive sizes, --dim a multiple of 4 and of --heads, and an even head dim; got --dim ", o.dim,
             " --heads ", o.heads);
    auto be = testing::table_backend(o.run.device, o.run.threads);
    const testing::Sizes sizes{o.tokens, o.dim, o.ffn, o.heads, o.text};
    BenchReport rep;
    rep.bench = "ops";
    rep.device = be->description();
    rep.config = {{"tokens", std::to_string(o.tokens)},
                  {"dim", std::to_string(o.dim)},
                  {"ffn", std::to_string(o.ffn)},
                  {"heads", std::to_string(o.heads)},
                  {"text", std::to_string(o.text)}};
    std::vector<double> bytes;
    for (const testing::OpCase& c : testing::op_table()) {
        if (!c.sized) continue;
        for (OpSig s : testing::case_sigs(c, be->kind())) {
            const std::string key = cat(c.name, " ", testing::sig_name(s));
            if (!o.only.empty() && key.find(o.only) == std::string::npos) continue;
            testing::CaseCtx ctx(*be, s, true, sizes, 7);
            const testing::Prepared p = c.build(ctx);  // inputs freed after the row is timed
            rep.rows.push_back({cat(key, " ", p.shape), time_repeats(*be, o.run.warmup, o.run.repeats, p.run), p.flop});
            bytes.push_back(p.bytes);
        }
    }
    if (rep.rows.empty()) fail("bench", "no op row matches --only '", o.only, "'; run without it to see the row names");

    std::printf("bench ops on %s\n", rep.device.c_str());
    for (auto& [k, v] : rep.config) std::printf("  %-14s %s\n", k.c_str(), v.c_str());
    std::printf("%-56s %10s %10s %10s %10s\n", "op", "median ms", "min ms", "GFLOP/s", "GB/s");
    for (size_t i = 0; i < rep.rows.size(); ++i) {
        const BenchRow& r = rep.rows[i];
        const double med = median(r.ms), lo = *std::min_element(r.ms.begin(), r.ms.end());
        char gf[32] = "-";
        if (r.flop > 0) std::snprintf(gf, sizeof gf, "%.1f", r.flop / med * 1e-6);
        std::printf("%-56s %10.3f %10.3f %10s %10.1f\n", r.name.c_str(), med, lo, gf, bytes[i] / med * 1e-6);
    }
    std::fflush(stdout);
    if (!o.run.json.empty()) {  // the shared report plus each row's bytes and GB/s
        nlohmann::json j = nlohmann::json::parse(rep.json());
        for (size_t i = 0; i < rep.rows.size(); ++i) {
            j["rows"][i]["bytes"] = bytes[i];
            j["rows"][i]["gbps"] = bytes[i] / median(rep.rows[i].ms) * 1e-6;
        }
        write_file_atomic(o.run.json, j.dump(2) + "\n", "bench");
    }
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand("ops", "Time the op table's rows at the DiT's real shapes");
    c->add_option("--tokens", o->tokens, "Video tokens")->capture_default_str();
    c->add_option("--dim", o->dim, "Model width")->capture_default_str();
    c->add_option("--ffn", o->ffn, "FFN width")->capture_default_str();
    c->add_option("--heads", o->heads, "Attention heads")->capture_default_str();
    c->add_option("--text", o->text, "Text tokens (cross-attention keys)")->capture_default_str();
    c->add_option("--only", o->only,
                  "Run the rows whose name (case and dtypes, e.g. 'linear_qkv f32/bf16') contains this");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("ops", setup);

}  // namespace
}  // namespace wanrt::cli
