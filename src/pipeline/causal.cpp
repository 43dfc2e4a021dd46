// CausVid's block-autoregressive loop and the FlowMatch tables (contract in causal.h).
#include "pipeline/causal.h"
#include "pipeline/t2v.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "ops/ops.h"
#include "sched/scheduler.h"

namespace wanrt {

FlowMatchTable::FlowMatchTable(double shift_) : shift(shift_) {
    if (!(shift_ > 0) || !std::isfinite(shift_)) fail("causal", "FlowMatch shift must be positive, got ", shift_);
    // torch.linspace(1, 0, 1001)[:-1] in float32: step = fl32(−1/1000); the first half counts up from
    // the start, the second half down from the end, each one rounding of the exact value (§2.2).
    const double step = double(float(-1.0 / 1000.0));
    const float sh = float(shift_), sh1 = float(shift_ - 1.0);
    sigmas.resize(1000);
    timesteps.resize(1000);
    for (int i = 0; i < 1000; ++i) {
        const float s = i < 500 ? float(1.0 + step * i) : float(0.0 - step * (1000 - i));
        // σ = shift·s / (1 + (shift − 1)·s) as the float32 operation sequence of the reference.
        const float num = sh * s, den = 1.0f + sh1 * s;
        sigmas[size_t(i)] = num / den;
        timesteps[size_t(i)] = sigmas[size_t(i)] * 1000.0f;
    }
}

int FlowMatchTable::nearest(double q) const {
    int best = 0;
    double bd = std::fabs(double(timesteps[0]) - q);
    for (int i = 1; i < int(timesteps.size()); ++i) {
        const double d = std::fabs(double(timesteps[size_t(i)]) - q);
        if (d < bd) bd = d, best = i;
    }
    return best;
}

std::vector<double> FlowMatchTable::warp(const std::vector<double>& steps) const {
    std::vector<double> out;
    for (double s : steps) {
        if (s != std::floor(s) || s < 0 || s > 1000)
            fail("causal", "warped step list entries must be integers in [0, 1000], got ", s);
        const int idx = 1000 - int(s);
        out.push_back(idx == 1000 ? 0.0 : double(timesteps[size_t(idx)]));
    }
    return out;
}

std::vector<double> CausalOptions::step_list(const FlowMatchTable& table) const {
    std::vector<double> s = steps;
    if (s.size() > 1 && s.back() == 0) s.pop_back();  // CausVid's configs end with 0 and drop it
    if (s.empty()) fail("causal", "the denoising step list is empty; pass e.g. --steps 1000,757,522");
    for (double v : s)
        if (!(v >= 0 && v <= 1000)) fail("causal", "denoising step ", v, " is outside [0, 1000]");
    return warp ? table.warp(s) : s;
}

NoiseSource seeded_noise(uint64_t seed) {
    auto rng = std::make_shared<std::mt19937_64>(seed);
    return [rng](Backend& be, const Shape& shape, int64_t) { return gaussian_noise(be, shape, *rng); };
}

namespace {

// a·x + b·y as one f32 linear combination.
Tensor axpby(float a, const Tensor& x_in, float b, const Tensor& y_in) {
    Tensor x = ops::contiguous(x_in), y = ops::contiguous(y_in);
    Tensor out = x.backend()->empty(DType::F32, x.shape());
    const Tensor* in[2] = {&x, &y};
    const float coef[2] = {a, b};
    ops::lincomb(in, coef, 2, out);
    return out;
}

}  // namespace

std::string find_dit_prefix(const TensorSource& src) {
    const std::string key = "patch_embedding.weight";
    std::string best;
    bool found = false;
    for (const std::string& n : src.names()) {
        if (n.size() < key.size() || n.compare(n.size() - key.size(), key.size(), key) != 0) continue;
        const std::string p = n.substr(0, n.size() - key.size());
        // Prefer "generator" over "generator_ema" when a file holds both, as StreamDiffusionV2's
        // loader does (docs/streaming.md §0.3).
        if (!found || (best.rfind("generator_ema.", 0) == 0 && p.rfind("generator_ema.", 0) != 0)) best = p;
        found = true;
    }
    if (!found)
        fail("causal", src.origin(), " holds no DiT (no patch_embedding.weight under any prefix); pass a Wan or a "
             "CausVid / Self-Forcing / StreamDiffusionV2 generator checkpoint");
    return best;
}

Tensor flow_to_x0(const Tensor& v, const Tensor& x, float sigma) {
    if (v.shape() != x.shape()) fail("causal", "velocity ", v.describe(), " does not match the latent ", x.describe());
    return axpby(1.0f, x, -sigma, v);
}

Tensor add_noise(const Tensor& x0, const Tensor& eps, float sigma) {
    if (eps.shape() != x0.shape())
        fail("causal", "noise draw ", eps.describe(), " does not match the latent ", x0.describe());
    return axpby(1.0f - sigma, x0, sigma, eps);
}

Tensor generate_causal(const CausalDitModel& model, const Tensor& context, const Tensor& noise,
                       const CausalOptions& opt, const NoiseSource& draws, const Tensor& start_latents,
                       const CausalCallback& on_call) {
    const DitConfig& c = model.config();
    Backend& be = model.backend();
    if (!noise.defined() || noise.ndim() != 4 || noise.size(0) != c.in_dim || noise.dtype() != DType::F32)
        fail("causal", "noise must be f32 [", c.in_dim, ", F, H, W], got ", noise.defined() ? noise.describe() : "none");
    const int64_t fpb = opt.frames_per_block, F = noise.size(1), H = noise.size(2), W = noise.size(3);
    if (fpb < 1 || F % fpb || F == 0)
        fail("causal", F, " latent frames are not a positive multiple of frames_per_block ", fpb,
             "; pass a frame count of (k·", fpb, " − 1)·4 + 1 pixel frames or another block size");
    int64_t prefill_blocks = 0;
    if (start_latents.defined()) {
        const Tensor& s = start_latents;
        if (s.ndim() != 4 || s.size(0) != c.in_dim || s.size(2) != H || s.size(3) != W || s.size(1) % fpb ||
            s.size(1) == 0 || s.size(1) > F)
            fail("causal", "start latents ", s.describe(), " must be [", c.in_dim, ", k·", fpb, " ≤ ", F, ", ", H, ", ", W,
                 "] (whole blocks of the generated latent's size)");
        prefill_blocks = s.size(1) / fpb;
    }
    if (!draws) fail("causal", "no noise source for the re-noising draws");
    const FlowMatchTable table(opt.shift);
    const std::vector<double> steps = opt.step_list(table);

    const int64_t nblocks = F / fpb;
    if (opt.cache_frames < 0 || (opt.cache_frames > 0 && opt.cache_frames - opt.sink_frames < fpb))
        fail("causal", "a KV cache of ", opt.cache_frames, " frames with ", opt.sink_frames,
             " sink frames cannot hold a block of ", fpb, " frames; use at least sink + frames_per_block frames");
    // CausVid: every frame cached, nothing evicted; Self-Forcing local attention: a rolling cache.
    KvCache cache = model.make_cache(1, opt.cache_frames > 0 ? std::min(opt.cache_frames, F) : F, H, W,
                                     opt.cache_frames > 0 ? opt.sink_frames : 0);
    CrossKvCache cross = model.make_cross_cache(context);
    const int64_t S = cache.tokens_per_frame;
    Tensor out = be.empty(DType::F32, noise.shape());  // [C, F, H, W]
    int64_t calls = 0, ndraws = 0;

    auto call = [&](const Tensor& x, double t, int64_t b, bool prefill, bool clean, bool want) {
        CausalChunk ch{x, {t}, b * fpb};
        std::vector<Tensor> v = model.forward({ch}, cache, cross, want || bool(on_call));
        Tensor x0;
        if (!v.empty()) x0 = flow_to_x0(v[0], x, table.sigma(t));
        if (on_call) on_call({calls, b, t, b * fpb * S, (b + 1) * fpb * S, prefill, clean}, x0);
        ++calls;
        return x0;
    };

    for (int64_t b = 0; b < nblocks; ++b) {
        Tensor dst = out.slice(1, b * fpb, (b + 1) * fpb);
        if (b < prefill_blocks) {
            Tensor x = ops::contiguous(start_latents.slice(1, b * fpb, (b + 1) * fpb));
            ops::copy(x, dst);
            call(x, 0.0, b, true, false, false);  // writes the clean K/V of the given block
            continue;
        }
        Tensor x = ops::contiguous(noise.slice(1, b * fpb, (b + 1) * fpb));  // [C, fpb, H, W]
        Tensor x0;
        for (size_t j = 0; j < steps.size(); ++j) {
            x0 = call(x, steps[j], b, false, false, true);
            if (j + 1 < steps.size()) x = add_noise(x0, draws(be, x0.shape(), ndraws++), table.sigma(steps[j + 1]));
        }
        ops::copy(x0, dst);
        if (b + 1 < nblocks || !opt.skip_last_clean_pass) call(x0, opt.context_noise, b, false, true, false);
    }
    return out;
}

}  // namespace wanrt
