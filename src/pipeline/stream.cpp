// StreamDiffusionV2's streaming V2V loop (contract in stream.h).
#include "pipeline/stream.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/timer.h"
#include "ops/clamp.h"
#include "ops/ops.h"

namespace wanrt {

void StreamOptions::validate() const {
    if (steps.empty()) fail("stream", "the denoising step list is empty; pass e.g. --steps 700,500");
    for (double s : steps)
        if (!(s > 0 && s <= 1000)) fail("stream", "denoising step ", s, " is outside (0, 1000]");
    if (!(noise_scale > 0 && noise_scale <= 1)) fail("stream", "noise scale ", noise_scale, " must be in (0, 1]");
    if (cache_frames < 2) fail("stream", "the KV cache needs at least 2 frames (the first chunk has 2), got ", cache_frames);
    if (sink_frames < 0 || sink_frames >= cache_frames)
        fail("stream", "sink frames ", sink_frames, " must be in [0, cache frames ", cache_frames, ")");
    if (!std::isfinite(adapt_sink_threshold)) fail("stream", "the adaptive sink threshold must be finite (−1 = off)");
    if (refresh_frame != 0 && (refresh_frame <= cache_frames || refresh_frame > 1023))
        fail("stream", "position refresh frame ", refresh_frame, " must be in (", cache_frames, ", 1023] or 0");
}

namespace {
// y = a·x + b elementwise (pixel range changes between the pipeline's [−1, 1] and TAEHV's [0, 1]).
Tensor affine(const Tensor& x_in, float a, float b) {
    const Tensor x = ops::contiguous(x_in);
    Tensor y = x.backend()->empty(DType::F32, x.shape());
    const Tensor* in[1] = {&x};
    ops::lincomb(in, &a, 1, y);
    return ops::add(y, ops::full(*x.backend(), DType::F32, {1}, b));
}
}  // namespace

StreamV2V::StreamV2V(std::shared_ptr<const CausalDitModel> model, std::shared_ptr<const WanVae> vae,
                     const Tensor& context, const StreamOptions& opt, NoiseSource noise)
    : model_(std::move(model)), vae_(std::move(vae)), opt_(opt), noise_(std::move(noise)), table_(opt.shift) {
    init(vae_->config().z_dim, vae_->backend(), context);
    enc_ = std::make_unique<VaeStreamEncoder>(vae_);
    dec_ = std::make_unique<VaeStreamDecoder>(vae_);
}

StreamV2V::StreamV2V(std::shared_ptr<const CausalDitModel> model, std::shared_ptr<const Taehv> tae,
                     const Tensor& context, const StreamOptions& opt, NoiseSource noise)
    : model_(std::move(model)), opt_(opt), noise_(std::move(noise)), table_(opt.shift), tae_(std::move(tae)) {
    if (tae_->config().patch_size != 1)
        fail("stream", "the TAEHV checkpoint has patch size ", tae_->config().patch_size,
             " (a Wan2.2 one); the Wan2.1 DiT needs taew2_1.pth");
    init(tae_->config().latent_channels, tae_->backend(), context);
    tenc_ = std::make_unique<TaehvStreamEncoder>(tae_);
    tdec_ = std::make_unique<TaehvStreamDecoder>(tae_);
}

void StreamV2V::init(int64_t z_dim, Backend& vae_backend, const Tensor& context) {
    opt_.validate();
    steps_ = opt_.steps;
    const DitConfig& c = model_->config();
    if (z_dim != c.in_dim || c.out_dim != c.in_dim)
        fail("stream", "the VAE's latent has ", z_dim, " channels but the DiT takes ", c.in_dim,
             "; the model files do not belong together");
    if (&vae_backend != &model_->backend())
        fail("stream", "the VAE and the DiT live on different backends; load both on one device");
    if (!noise_) noise_ = seeded_noise(0);
    if (opt_.raw_latents) {
        if (c.in_dim != int64_t(wan21_latent_mean().size()))
            fail("stream", "raw latents need the Wan2.1 ", wan21_latent_mean().size(), "-channel statistics but the latent has ",
                 c.in_dim, " channels; use normalised latents");
        mean_ = ops::from_host(model_->backend(), DType::F32, {c.in_dim, 1, 1, 1}, wan21_latent_mean().data());
        std_ = ops::from_host(model_->backend(), DType::F32, {c.in_dim, 1, 1, 1}, wan21_latent_std().data());
    }
    cross_ = model_->make_cross_cache(context);
}

StreamV2V::~StreamV2V() = default;

void StreamV2V::set_prompt(const Tensor& context) { cross_ = model_->make_cross_cache(context); }

void StreamV2V::reset() {
    if (tae_) {
        tenc_->reset();
        tdec_->reset();
    } else {
        enc_->reset();
        dec_->reset();
    }
    cache_.reset();
    slots_.clear();
    last_frame_.clear();
    next_frame_ = draws_ = 0;
    flushed_ = false;
    stats_ = {};
}

Tensor StreamV2V::encode(const Tensor& frames) {
    if (tae_) {
        Tensor x = affine(frames, 0.5f, 0.5f);  // [−1, 1] → [0, 1]
        if (stats_.chunks_in == 0) {            // 3 copies of frame 0 in front: [3, 8, H, W] → 2 latents
            const Tensor f0 = ops::contiguous(x.slice(1, 0, 1));
            x = ops::concat({f0, f0, f0, x}, 1);
        }
        return tenc_->push(x);
    }
    if (stats_.chunks_in == 0)
        return ops::concat({enc_->push(ops::contiguous(frames.slice(1, 0, 1))), enc_->push(ops::contiguous(frames.slice(1, 1, 5)))}, 1);
    return enc_->push(frames);
}

Tensor StreamV2V::to_model_latent(const Tensor& z) const {
    // The encoder returns (mu − mean)/std; SD's DiT sees mu itself.
    return opt_.raw_latents ? ops::add(ops::mul(z, std_), mean_) : z;
}

Tensor StreamV2V::decode(const Tensor& latents) {
    const auto t0 = std::chrono::steady_clock::now();
    Tensor frames;
    if (tae_) {
        frames = affine(tdec_->push(latents), 2.0f, -1.0f);  // [0, 1] → [−1, 1]
    } else {
        std::vector<Tensor> out;
        for (int64_t i = 0; i < latents.size(1); ++i) out.push_back(dec_->push(ops::contiguous(latents.slice(1, i, i + 1))));
        frames = out.size() == 1 ? out[0] : ops::concat(out, 1);
    }
    model_->backend().synchronize();
    stats_.decode_s += seconds_since(t0);
    stats_.frames_out += frames.size(1);
    return frames;
}

Tensor StreamV2V::stream_call(const Tensor& noisy, int64_t start_frame, bool real) {
    const size_t n = steps_.size();
    // Slots move one step down the list; the new chunk enters slot 0 (§4.6 step 1).
    for (size_t j = n - 1; j > 0; --j) slots_[j] = slots_[j - 1];
    slots_[0] = {noisy, start_frame, real ? stats_.chunks_in : -1};
    std::vector<CausalChunk> rows;
    for (size_t j = 0; j < n; ++j) rows.push_back({slots_[j].x, {j == 0 ? double(t0_) : steps_[j]}, slots_[j].start});
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<Tensor> v = model_->forward(rows, cache_, cross_);
    for (size_t j = 0; j < n; ++j) {
        Tensor x0 = flow_to_x0(v[j], slots_[j].x, table_.sigma(rows[j].t[0]));
        slots_[j].x = j + 1 < n ? add_noise(x0, noise_(model_->backend(), x0.shape(), draws_++), table_.sigma(steps_[j + 1]))
                                : x0;
    }
    model_->backend().synchronize();
    stats_.dit_s += seconds_since(t0);
    ++stats_.dit_calls;
    return slots_[n - 1].chunk >= 1 ? slots_[n - 1].x : Tensor();
}

Tensor StreamV2V::push(const Tensor& frames) {
    if (flushed_) fail("stream", "push after flush; call reset() to start a new stream");
    const int64_t want = next_chunk_frames();
    if (!frames.defined() || frames.ndim() != 4 || frames.size(0) != 3 || frames.size(1) != want ||
        frames.dtype() != DType::F32)
        fail("stream", "chunk ", stats_.chunks_in, " must be f32 [3, ", want, ", H, W] pixel frames (1 + 4 first, then 4), got ",
             frames.defined() ? frames.describe() : "none");
    const int64_t H = frames.size(2), W = frames.size(3);
    if (stats_.chunks_in == 0) {
        const int64_t m = (tae_ ? tae_->config().space_scale() : vae_->config().spatial_factor()) * model_->config().patch_h;
        if (H < m || W < m || H % m || W % m)
            fail("stream", "frame size ", W, "x", H, " must be a multiple of ", m, " (e.g. 832x480); resize the input");
        H_ = H, W_ = W;
    } else if (H != H_ || W != W_) {
        fail("stream", "chunk ", stats_.chunks_in, " is ", W, "x", H, " but the stream started at ", W_, "x", H_);
    }
    Backend& be = model_->backend();
    const int64_t n = int64_t(steps_.size());

    // ---- motion-aware noise scale (§4.4) on the raw pixels (host copy only when it is used)
    double ns = opt_.noise_scale;
    t0_ = int64_t(steps_[0]);
    if (opt_.motion_aware) {
        std::vector<float> px = ops::to_host_f32(frames);  // [3, want, H, W]
        const int64_t plane = H * W;
        auto frame_at = [&](int64_t f, int64_t ch) { return px.data() + (ch * want + f) * plane; };
        if (stats_.chunks_in > 0) {
            double dmax = 0;
            for (int64_t f = 0; f < want; ++f) {
                double acc = 0;
                for (int64_t ch = 0; ch < 3; ++ch) {
                    const float* a = frame_at(f, ch);
                    const float* b = f == 0 ? last_frame_.data() + ch * plane : frame_at(f - 1, ch);
                    for (int64_t i = 0; i < plane; ++i) acc += double(a[i] - b[i]) * double(a[i] - b[i]);
                }
                dmax = std::max(dmax, std::sqrt(acc / double(3 * plane)));
            }
            const double d = std::clamp(dmax / 0.2, 0.0, 1.0);
            ns = (opt_.noise_scale - 0.1 * d) * 0.9 + ns_prev_ * 0.1;
            t0_ = int64_t(1000.0 * ns) - 100;
        }
        last_frame_.resize(size_t(3 * plane));
        for (int64_t ch = 0; ch < 3; ++ch) std::copy_n(frame_at(want - 1, ch), plane, last_frame_.data() + ch * plane);
    }
    ns_prev_ = ns;
    stats_.last_noise_scale = ns;
    stats_.last_t0 = t0_;

    // ---- VAE stream encode: 1 + 4 frames → 2 latents, then 4 → 1
    auto t_enc = std::chrono::steady_clock::now();
    Tensor z = to_model_latent(encode(frames));  // [C, F, h, w]
    be.synchronize();
    stats_.encode_s += seconds_since(t_enc);
    Tensor noisy = add_noise(z, noise_(be, z.shape(), draws_++), float(ns));
    stats_.frames_in += want;

    Tensor out;
    if (stats_.chunks_in == 0) {
        // prepare(): the first chunk through the whole list at frames [0, 2), sequentially; every
        // pass writes its K/V (the last pass's stay). All rows run it, so each stream-batch row
        // starts with the same history (SD replicates row 0).
        const Shape& zs = z.shape();
        const int64_t S = (zs[2] / model_->config().patch_h) * (zs[3] / model_->config().patch_w);
        if (cache_.rows != n || cache_.tokens_per_frame != S)
            cache_ = model_->make_cache(n, opt_.cache_frames, zs[2], zs[3], opt_.sink_frames, opt_.refresh_frame,
                                        opt_.adapt_sink_threshold);
        const auto t_dit = std::chrono::steady_clock::now();
        Tensor x = noisy, x0;
        for (int64_t j = 0; j < n; ++j) {
            const double t = j == 0 ? double(t0_) : steps_[size_t(j)];
            std::vector<CausalChunk> rows(size_t(n), CausalChunk{x, {t}, 0});
            x0 = flow_to_x0(model_->forward(rows, cache_, cross_)[0], x, table_.sigma(t));
            if (j + 1 < n) x = add_noise(x0, noise_(be, x0.shape(), draws_++), table_.sigma(steps_[size_t(j + 1)]));
            ++stats_.dit_calls;
        }
        be.synchronize();
        stats_.dit_s += seconds_since(t_dit);
        slots_.assign(size_t(n), Slot{ops::zeros(be, {zs[0], 1, zs[2], zs[3]}), zs[1], -1});
        next_frame_ = zs[1];
        out = decode(x0);
    } else {
        Tensor x0 = stream_call(noisy, next_frame_++, true);
        if (x0.defined()) out = decode(x0);
    }
    ++stats_.chunks_in;
    return out;
}

Tensor StreamV2V::flush() {
    if (flushed_ || stats_.chunks_in == 0) return {};
    flushed_ = true;
    std::vector<Tensor> outs;
    Backend& be = model_->backend();
    for (size_t i = 0; i + 1 < steps_.size(); ++i) {
        const Shape& s = slots_[0].x.shape();
        Tensor x0 = stream_call(noise_(be, s, draws_++), next_frame_++, false);
        if (x0.defined()) outs.push_back(decode(x0));
    }
    if (outs.empty()) return {};
    return outs.size() == 1 ? outs[0] : ops::concat(outs, 1);
}

int64_t stream_frames(StreamV2V& s, const StreamSource& source, const StreamSink& sink,
                      const std::function<void(int64_t, double)>& on_chunk) {
    auto emit = [&](const Tensor& o) {
        if (o.defined()) sink(ops::clamp(o, -1.0f, 1.0f));
    };
    int64_t k = 0;
    for (;; ++k) {
        const int64_t n = s.next_chunk_frames();
        const Tensor in = source(n);
        const int64_t got = in.defined() ? in.size(1) : 0;
        if (k == 0 && got < n) fail("stream", "the input has ", got, " frames; a stream needs at least 5");
        if (got < n) break;  // a partial chunk: dropped, as SD
        const auto t0 = std::chrono::steady_clock::now();
        const Tensor o = s.push(in);
        if (on_chunk) on_chunk(k, seconds_since(t0));
        emit(o);
    }
    emit(s.flush());
    return k;
}

StreamSource video_source(const Tensor& video) {
    if (!video.defined() || video.ndim() != 4 || video.size(0) != 3 || video.size(1) < 5)
        fail("stream", "the input video must be [3, T ≥ 5, H, W] frames, got ", video.defined() ? video.describe() : "none",
             "; a stream needs at least 5 frames");
    return [video, next = int64_t(0)](int64_t n) mutable {
        const int64_t b = std::min(next + n, video.size(1));
        Tensor t = b > next ? ops::contiguous(video.slice(1, next, b)) : Tensor();
        next = b;
        return t;
    };
}

Tensor stream_video(StreamV2V& s, const Tensor& video, const std::function<void(int64_t, double)>& on_chunk) {
    std::vector<Tensor> outs;
    stream_frames(
        s, video_source(video), [&](const Tensor& o) { outs.push_back(o); }, on_chunk);
    return outs.size() == 1 ? outs[0] : ops::concat(outs, 1);
}

}  // namespace wanrt
