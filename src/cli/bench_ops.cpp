// wanrt bench ops: single ops at the DiT's real shapes (1.3B widths by default), with FLOP rates,
// to see each kernel against its ceiling (ggml's test-backend-ops perf mode, for our op set).
#include <cstdio>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "runtime/device.h"
#include "core/error.h"
#include "ops/ops.h"
#include "models/synth.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string only;
    int tokens = 1560, dim = 1536, ffn = 8960, heads = 12, text = 512;
    RunOpts run{"auto", "", 1, 5, 0};
};

Tensor rand_t(Backend& be, DType dt, const Shape& s, const std::string& name) {
    std::vector<uint8_t> buf(dtype_bytes(dt, shape_numel(s)));
    synth_fill(name, s, dt, 7, buf.data());
    return ops::from_host(be, dt, s, buf.data());
}

void run(const Opts& o) {
    o.run.validate();
    auto be = make_backend(o.run.device, o.run.threads);
    const int64_t L = o.tokens, D = o.dim, F = o.ffn, H = o.heads, hd = D / H, T = o.text;
    BenchReport rep;
    rep.bench = "ops";
    rep.device = be->description();
    rep.config = {{"tokens", std::to_string(L)}, {"dim", std::to_string(D)}, {"ffn", std::to_string(F)},
                  {"heads", std::to_string(H)}, {"text", std::to_string(T)}};
    auto want = [&](const std::string& n) { return o.only.empty() || n.find(o.only) != std::string::npos; };
    auto add = [&](const std::string& name, double flop, const std::function<void()>& fn) {
        if (!want(name)) return;
        rep.rows.push_back({name, time_repeats(*be, o.run.warmup, o.run.repeats, fn), flop});
    };
    Tensor x = rand_t(*be, DType::F32, {1, L, D}, "x.weight");
    for (DType wt : {DType::F32, DType::BF16}) {
        Tensor wq = rand_t(*be, wt, {D, D}, "q.weight"), w1 = rand_t(*be, wt, {F, D}, "ffn.0.weight");
        Tensor w2 = rand_t(*be, wt, {D, F}, "ffn.2.weight"), h = rand_t(*be, DType::F32, {1, L, F}, "h.weight");
        add(cat("linear ", dtype_name(wt), " ", L, "x", D, "x", D), 2.0 * L * D * D, [&] { ops::linear(x, wq); });
        add(cat("linear ", dtype_name(wt), " ", L, "x", F, "x", D, " +gelu"), 2.0 * L * F * D,
            [&] { ops::linear(x, w1, nullptr, Activation::GeluTanh); });
        add(cat("linear ", dtype_name(wt), " ", L, "x", D, "x", F), 2.0 * L * D * F, [&] { ops::linear(h, w2); });
    }
    Tensor q = rand_t(*be, DType::F32, {1, L, H, hd}, "q.weight"), k = rand_t(*be, DType::F32, {1, L, H, hd}, "k.weight");
    Tensor v = rand_t(*be, DType::F32, {1, L, H, hd}, "v.weight");
    Tensor kt = rand_t(*be, DType::F32, {1, T, H, hd}, "k.weight"), vt = rand_t(*be, DType::F32, {1, T, H, hd}, "v.weight");
    add(cat("attention self ", L, "x", L, " h", H), 4.0 * L * L * hd * H, [&] { ops::attention(q, k, v); });
    add(cat("attention cross ", L, "x", T, " h", H), 4.0 * L * T * hd * H, [&] { ops::attention(q, kt, vt); });
    {  // the causal step's self-attention: one frame's queries against a 6-frame bf16 cache
        const DType kvt = be->supports(AttentionArgs::kName, DType::F32, DType::BF16) ? DType::BF16 : DType::F32;
        Tensor kc = ops::to_dtype(rand_t(*be, DType::F32, {1, 6 * L, H, hd}, "k.weight"), kvt);
        add(cat("attention self ", L, "x", 6 * L, " h", H, " ", dtype_name(kvt), " k/v"), 4.0 * L * 6 * L * hd * H,
            [&] { ops::attention(q, kc, kc); });
    }
    Tensor nw = rand_t(*be, DType::F32, {D}, "norm_q.weight");
    Tensor m = rand_t(*be, DType::F32, {1, 6, D}, "modulation");
    add("rms_norm", 0, [&] { ops::rms_norm(x, nw, 1e-6f); });
    add("norm_modulate", 0, [&] { ops::norm_modulate(x, m.select(1, 0), m.select(1, 1), 1e-6f); });
    add("gated_residual", 0, [&] { ops::gated_residual(x, x, m.select(1, 2)); });
    // One frame's keys into a slot of a 6-frame KV cache (the causal model's write), f32 → cache dtype.
    for (DType ct : {DType::F32, DType::BF16}) {
        Tensor cache = ops::full(*be, ct, {1, 6 * L, H, hd}, 0.f);
        add(cat("copy f32 -> ", dtype_name(ct), " cache slot [", L, ", ", H, ", ", hd, "]"), 0,
            [&] { ops::copy(k.select(0, 0), cache.select(0, 0).slice(0, 2 * L, 3 * L)); });
    }
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand("ops", "Time single ops at the DiT's real shapes");
    c->add_option("--tokens", o->tokens, "Video tokens")->capture_default_str();
    c->add_option("--dim", o->dim, "Model width")->capture_default_str();
    c->add_option("--ffn", o->ffn, "FFN width")->capture_default_str();
    c->add_option("--heads", o->heads, "Attention heads")->capture_default_str();
    c->add_option("--text", o->text, "Text tokens (cross-attention keys)")->capture_default_str();
    c->add_option("--only", o->only, "Run the rows whose name contains this");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("ops", setup);

}  // namespace
}  // namespace wanrt::cli
