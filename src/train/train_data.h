// Training data for `wanrt train` (issue 23): a folder of videos and images with a caption .txt
// beside each, encoded once into VAE latents and text-encoder contexts and cached on disk.
//
// Folder: every file directly in it whose extension is .y4m, .mp4, .webm, .mkv, .mov, .avi (videos;
// all but .y4m need the FFmpeg build), .png, .jpg, .jpeg, .webp (images, one frame), in name order;
// `clip.mp4` takes its caption from `clip.txt` (UTF-8, surrounding white space dropped). Other files
// (the captions, a cache folder) are ignored.
//
// Frames: a video is cut to its first 1 + 4k frames (the VAE's temporal stride), at most `frames`
// when frames > 0; an image is one frame. Width and height must be multiples of 16 (the VAE's 8× and
// the DiT's 2× patch): nothing is resized, so the latents are exactly the clips'.
//
// Cache (`cache_dir`): per item lat-<key>.safetensors (latent [16, T, h, w] f32) and
// txt-<key>.safetensors (context [len, text_dim] f32). The latent's key hashes (FNV-1a 64) the file's
// bytes, its size, the frames used and the model's VAE identity; the context's key hashes the caption
// and the text encoder's identity. An entry is used when present and of the expected shape; the
// missing ones are computed (VAE loaded once for all clips, then the text encoder once for all
// captions) and written atomically.
//
// Errors ([train] one line, before any model loads): a missing or empty folder, a media file without
// its caption (named) or with an empty one, a size not divisible by 16 (named, with its size), an
// unreadable file, an unwritable cache folder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "pipeline/model_folder.h"

namespace wanrt {

struct TrainItem {
    std::string file, caption;
    int64_t frames = 0, height = 0, width = 0;  // of the clip used
    uint64_t latent_key = 0, text_key = 0;
    Tensor latent, context;  // [z_dim, T, h, w], [len, text_dim] f32 (after prepare_train_data)
};

struct TrainDataOptions {
    std::string dir, cache_dir;  // cache_dir "" → <dir>/.wanrt_cache
    int64_t frames = 0;          // 0: every 1 + 4k frames of each video
};

// Lists the items, reads each media file's size (and frame count), checks captions and sizes.
std::vector<TrainItem> scan_train_data(const TrainDataOptions& o, const T2VModelParts& m);

// Fills each item's latent and context from the cache, computing and caching the missing ones.
// say(line) reports what runs ("cache: encoding 3 clips (2 cached)").
void prepare_train_data(std::vector<TrainItem>& items, const TrainDataOptions& o, const T2VModelParts& m,
                        const std::shared_ptr<Backend>& be, const std::function<void(const std::string&)>& say = {});

// FNV-1a 64 of bytes, continuing from h (the cache keys).
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);

}  // namespace wanrt
