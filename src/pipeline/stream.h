// Streaming video-to-video (StreamDiffusionV2, docs/streaming.md §4): frames in, restyled frames out,
// one chunk at a time, in constant memory.
//
// Per chunk (pixel frames [3, n, H, W] f32 in [−1, 1], H and W multiples of 16):
//   chunk 0: n = 5 (1 + 4) frames → VAE stream encode → 2 latent frames z;
//            noisy = (1 − ns₀)·z + ns₀·ε with ns₀ = noise_scale; "prepare": the sequential loop over
//            the whole step list at frames [0, 2) (every pass writes the chunk's K/V, no clean pass)
//            → x̂₀ → VAE stream decode → 5 frames, returned at once.
//   chunk k ≥ 1: n = 4 frames → 1 latent frame at stream frame k + 1. Motion-aware noise (§4.4):
//            Δ_f = x_f − x_{f−1} over the chunk's 4 frames (the first against the previous chunk's
//            last frame), d = clamp(max_f rms(Δ_f) / 0.2, 0, 1), ns_k = (ns₀ − 0.1·d)·0.9 +
//            ns_{k−1}·0.1, τ₀ = int(1000·ns_k) − 100 (with motion_aware off: ns_k = ns₀,
//            τ₀ = steps[0]); noisy = (1 − ns_k)·z + ns_k·ε. Then one stream-batch call (§4.6):
//            n_steps slots, slot j holds the chunk that entered j calls ago and is denoised at
//            τ_j (τ₀ for the new one, steps[j] for the others); all slots run as one batched DiT
//            call, each against its own KV-cache row (K/V of the noisy inputs, written during
//            denoising, §4.7); slots 0 … n−2 are re-noised to steps[j+1]; slot n−1's x̂₀ is the
//            output: chunk k − n_steps + 1 → VAE stream decode → 4 frames.
//   So push() returns nothing for the first n_steps − 1 stream chunks; flush() runs n_steps − 1
//   calls on fresh noise and returns the frames still in flight.
// Rolling cache (§4.9): cache_frames slots per row, sink_frames kept (a sink frame whose K/V drifted
// from the new frame's, cosine similarity below adapt_sink_threshold, is replaced by it, per layer),
// ring eviction; positions wrap to cache_frames − 1 when they reach refresh_frame (§4.10). Nothing
// grows with the stream length.
//
// Deviations from the PyTorch reference, by design: float32 activations instead of bf16 (the GPU
// backend runs matrices, attention and the KV cache in bf16, as SD); the controller's distance in
// float32/float64 instead of bf16; noise from NoiseSource (seeded MT19937, not torch's RNG); the
// one-row cache defect of §4.9.2 is not replicated (rows are always per slot); the adaptive sink's
// similarity accumulates in float64 (ops::kv_sink_write, on the device; SD: bf16).
//
// Latents: StreamDiffusionV2 feeds the DiT the raw VAE mean (no (mu − mean)/std, §4.3) and decodes
// with the usual de-normalisation; raw_latents = true does that (needs the Wan2.1 16-channel
// statistics), false feeds normalised latents.
//
// TAEHV (`--vae tae`, models/taehv.h) in place of the Wan VAE: the second constructor. Pixels go to
// [0, 1] for it and back; its latents are the DiT's (normalised) latents, so raw_latents converts them
// as it does the Wan VAE's. TAEHV groups frames [4k, 4k + 4) into latent k; the stream's first chunk
// of 5 frames is fed as 3 copies of frame 0 followed by the 5 frames, so chunk 0 gives 2 latents
// and every later chunk of 4 gives 1, aligned as the Wan VAE's (latent 0 = frame 0). Its decoder
// returns 1 frame for the first latent and 4 for each later one, as the Wan VAE's.
//
// Errors ([stream] one line): a chunk of the wrong frame count or size, sizes not multiples of 16,
// options out of range (no steps, steps outside [0, 1000], sink ≥ cache, noise_scale outside (0, 1]),
// a VAE whose latent does not match the DiT.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "models/causal_dit.h"
#include "models/taehv.h"
#include "models/vae.h"
#include "pipeline/causal.h"

namespace wanrt {

struct StreamOptions {
    std::vector<double> steps{700, 500};  // SD 1.3B: the first --step (2) entries of [700, 500, 400, 200]
    double shift = 8.0;
    double noise_scale = 0.8;  // ns₀ (SD --noise_scale)
    bool motion_aware = true;  // SD's controller; false = constant ns₀ and steps[0]
    int64_t cache_frames = 6;  // K (SD num_kv_cache)
    int64_t sink_frames = 3;   // SD num_sink_tokens (frames)
    int64_t refresh_frame = 50;  // SD t_refresh: position wrap
    double adapt_sink_threshold = 0.2;  // SD adaptive sink refresh (−1 = off)
    bool raw_latents = true;   // SD HEAD: the DiT sees the raw VAE mean
    void validate() const;
};

struct StreamStats {
    int64_t chunks_in = 0, frames_in = 0, frames_out = 0, dit_calls = 0;
    double encode_s = 0, dit_s = 0, decode_s = 0;
    double last_noise_scale = 0;
    int64_t last_t0 = 0;
};

class StreamV2V {
public:
    // context: the prompt's T5 output [len, text_dim]. noise: ε draws (default seeded_noise(0)).
    StreamV2V(std::shared_ptr<const CausalDitModel> model, std::shared_ptr<const WanVae> vae, const Tensor& context,
              const StreamOptions& opt = {}, NoiseSource noise = {});
    // The same loop with TAEHV encoding and decoding (see above); the Wan VAE is not needed.
    StreamV2V(std::shared_ptr<const CausalDitModel> model, std::shared_ptr<const Taehv> tae, const Tensor& context,
              const StreamOptions& opt = {}, NoiseSource noise = {});
    ~StreamV2V();

    // Pixel frames [3, n, H, W] f32 in [−1, 1] on the model's backend: n = 5 for the first chunk of
    // a stream, 4 afterwards. Returns the restyled frames that became ready ([3, m, H, W], not
    // clamped) or an undefined tensor while the stream batch fills.
    Tensor push(const Tensor& frames);
    // Runs the pipeline dry (steps − 1 calls on noise); returns the frames still in flight or an
    // undefined tensor. The stream can continue afterwards only after reset().
    Tensor flush();
    // A new prompt: its cross-attention cache is used from the next call (KV history is kept).
    void set_prompt(const Tensor& context);
    // Starts a new stream (VAE caches, KV caches, controller, slots).
    void reset();

    const StreamStats& stats() const { return stats_; }
    const KvCache& cache() const { return cache_; }
    // The frames push() expects next (5, then 4).
    int64_t next_chunk_frames() const { return stats_.chunks_in == 0 ? 5 : 4; }

private:
    void init(int64_t z_dim, Backend& vae_backend, const Tensor& context);
    Tensor encode(const Tensor& frames);  // the chunk's latents [C, F, h, w] (normalised)
    Tensor to_model_latent(const Tensor& z) const;
    Tensor decode(const Tensor& latents);  // [C, n, h, w] → frames
    Tensor stream_call(const Tensor& noisy, int64_t start_frame, bool real);

    std::shared_ptr<const CausalDitModel> model_;
    std::shared_ptr<const WanVae> vae_;
    StreamOptions opt_;
    NoiseSource noise_;
    FlowMatchTable table_;
    std::vector<double> steps_;
    CrossKvCache cross_;
    KvCache cache_;
    std::unique_ptr<VaeStreamEncoder> enc_;
    std::unique_ptr<VaeStreamDecoder> dec_;
    std::shared_ptr<const Taehv> tae_;  // set: TAEHV instead of vae_
    std::unique_ptr<TaehvStreamEncoder> tenc_;
    std::unique_ptr<TaehvStreamDecoder> tdec_;
    Tensor mean_, std_;  // [C, 1, 1, 1] Wan2.1 latent statistics (raw_latents)

    struct Slot {
        Tensor x;              // [C, 1, h, w]
        int64_t start = 2;     // stream frame
        int64_t chunk = -1;    // stream chunk index, −1 = placeholder / flush noise
    };
    std::vector<Slot> slots_;
    std::vector<float> last_frame_;  // previous chunk's last pixel frame (controller)
    double ns_prev_ = 0;
    int64_t t0_ = 0;
    int64_t next_frame_ = 0, draws_ = 0;
    int64_t H_ = 0, W_ = 0;
    bool flushed_ = false;
    StreamStats stats_;
};

// A source of pixel frames: the next n frames [3, ≤ n, H, W] f32 in [−1, 1] on the model's backend,
// fewer or an undefined tensor at the end. A sink takes restyled frames [3, m, H, W] as they come.
using StreamSource = std::function<Tensor(int64_t n)>;
using StreamSink = std::function<void(const Tensor& frames)>;

// The stream over a source of any length (`wanrt stream`, file to file): chunk 0 = 5 frames, then 4
// at a time until the source runs dry (a partial last chunk is dropped, as SD); every block of
// restyled frames goes to sink as soon as it is ready, clamped to [−1, 1], and the flush's last.
// Only one chunk is held in and out, whatever the length. on_chunk(k, seconds of push k) after
// each pushed chunk. Returns the chunks pushed. Errors: a source with fewer than 5 frames.
int64_t stream_frames(StreamV2V& s, const StreamSource& source, const StreamSink& sink,
                      const std::function<void(int64_t, double)>& on_chunk = {});

// A source over a whole video [3, T ≥ 5, H, W] (contiguous copies of its frames, in order); a
// video of another shape fails here.
StreamSource video_source(const Tensor& video);

// Whole-video helper: frames [3, T, H, W] → chunk 0 = frames [0, 5), chunk k = [1 + 4k, 5 + 4k) for
// k < (T − 1)/4 (remaining frames dropped, as SD) → restyled [3, 5 + 4(k−1), H, W], clamped to
// [−1, 1]; stream_frames over the tensor's frames.
Tensor stream_video(StreamV2V& s, const Tensor& video, const std::function<void(int64_t, double)>& on_chunk = {});

}  // namespace wanrt
