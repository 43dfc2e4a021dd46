// Staged streaming video-to-video: what `wanrt stream` runs on a model folder (or the demo model),
// with the stages of the other staged runners (model_folder.h, causal_staged.h):
//
//   tokenizer → T5 (the prompt; freed before the DiT loads; run_text_stage, which also checks the
//   encoder's width against the DiT's text_dim) → causal DiT (the folder's weights or a generator
//   checkpoint; run_dit_load_stage) → VAE (loaded; TAEHV instead when m.tae_weights is set) → StreamV2V over the video, chunk by chunk as a
//   live source would feed it (stream_video: frames 0–4, then 4 at a time; frames past the last
//   whole chunk are dropped, as StreamDiffusionV2 does).
// The DiT and the VAE stay loaded together for the whole stream (every chunk needs both).
//
// Errors: those of StreamOptions::validate ("[stream] ...") before anything loads, of the text
// stage ("[model] ... text_dim ..."), of loading, and of the stream (frame counts, sizes).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "pipeline/causal_staged.h"
#include "pipeline/model_folder.h"
#include "pipeline/stream.h"

namespace wanrt {

struct StreamStagedTimes {
    double tokenize = 0, t5_load = 0, text = 0, dit_load = 0, vae_load = 0;
    double stream = 0;  // every chunk pushed and the pipeline flushed (device synchronised)
    int64_t prompt_tokens = 0;
    // Everything before the first chunk: the text stage and both model loads.
    double load() const { return tokenize + t5_load + text + dit_load + vae_load; }
};
struct StreamStagedResult {
    Tensor video;           // [3, 5 + 4(k − 1), H, W] f32 in [−1, 1] for k whole chunks
    StreamStats stats;      // of the StreamV2V that ran
    int64_t kv_cache_bytes = 0;
    StreamStagedTimes times;
};

// After each pushed chunk k (0-based) of `chunks` (0 when not known): its seconds and the stream's statistics so far
// (the controller's noise scale and first timestep included).
using StreamChunkCallback = std::function<void(int64_t chunk, int64_t chunks, double seconds, const StreamStats& stats)>;

// Frames in and out one chunk at a time (stream_frames in pipeline/stream.h): `wanrt stream` reads
// and writes its files through these, so memory does not grow with the video's length.
struct StreamFrameIo {
    StreamSource read;   // frames on be: [3, ≤ n, H, W] f32 in [−1, 1] (H, W multiples of 16)
    StreamSink write;    // restyled frames as they become ready, clamped
    int64_t chunks = 0;  // expected chunks, for on_chunk's progress (0 = unknown)
};

// The stream from io.read to io.write; the result's video stays undefined. seed feeds the noise
// draws (seeded_noise). dit is moved in and released with the DiT after the stream.
StreamStagedResult run_stream_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                     const StreamFrameIo& io, const StreamOptions& opt, uint64_t seed,
                                     CausalDitSource dit = {}, const StageFn& on_stage = {},
                                     const StreamChunkCallback& on_chunk = {});

// The same over a whole video (video_source): pixel frames [3, T ≥ 5, H, W] f32 in [−1, 1] on be
// (H, W multiples of 16) → the result's video.
StreamStagedResult run_stream_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                     const Tensor& video, const StreamOptions& opt, uint64_t seed,
                                     CausalDitSource dit = {}, const StageFn& on_stage = {},
                                     const StreamChunkCallback& on_chunk = {});

}  // namespace wanrt
