// DiT block streaming (`--offload`, issue 15; the official --offload_model and ComfyUI's block swap at
// the granularity of one block): the DiT's first R blocks stay on the device, the other L − R live in
// page-locked host memory and are copied into a few device block slots ahead of their turn, on the
// backend's copy queue, so the copies overlap the blocks computing before them.
//
//   host   block R, R+1, …, L−1   each packed in one pinned buffer (tensors at 512-byte offsets)
//   device slot 0, slot 1, …       one block's bytes each; block R+k runs in slot k mod S
//
//   forward:  copy R → slot 0, R+1 → slot 1, …      (prefetch, before the embeddings run)
//             block i (streamed): compute waits for ready[slot]; runs on views of the slot;
//                                 records free[slot]; copy queue waits for free[slot], copies
//                                 block i + S into it, records ready[slot]
// With S = 2 (the default) one slot computes while the other fills. The weights in a slot are the
// bytes the resident load made (each block is loaded on the device exactly as without offload, then
// downloaded into its pinned pack and freed), and every tensor keeps a ≥ 256-byte aligned address, so
// the same kernels (and GEMM plans) run: the offloaded forward equals the resident one bit for bit.
//
// Budget (`--max_vram SIZE`): the DiT's weights on the device are the non-block weights (embeddings,
// head), the resident blocks and the S slots; R is the largest count that keeps that within the budget
// (activations are not counted: they depend on the resolution; bench dit prints the measured peak).
// A budget that holds every block streams nothing.
//
// Backends: the hooks are Backend::alloc_pinned, upload_async, new_event, record, wait (core/backend.h).
// On the CPU (host_visible) there is nothing to stream: --offload is a no-op there (the CLI says so).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace wanrt {

struct DitBlockWeights;

struct DitOffloadOptions {
    bool enabled = false;
    int64_t max_vram = 0;  // bytes for the DiT's weights on the device; 0 = stream every block
    int slots = 2;         // device block slots, ≥ 2
    bool on_host = false;  // stream on a host backend too (tests: the same code, checked on the CPU)
};

// How a budget splits a model: blocks [0, resident) stay on the device, [resident, L) stream.
struct DitOffloadPlan {
    int64_t resident_blocks = 0, streamed_blocks = 0;
    int slots = 0;             // 0 when nothing streams
    size_t block_bytes = 0;    // one block's weights (a slot's size)
    size_t other_bytes = 0;    // the weights outside the blocks (always resident)
    size_t device_bytes() const { return other_bytes + size_t(resident_blocks + slots) * block_bytes; }
    size_t host_bytes() const { return size_t(streamed_blocks) * block_bytes; }
    std::string describe() const;  // "12 of 30 blocks resident, 18 streamed through 2 slots (…)"
};
DitOffloadPlan plan_dit_offload(size_t block_bytes, size_t other_bytes, int64_t num_layers, const DitOffloadOptions& o);

// "16G", "16GB", "16GiB", "512M", "1.5G", "1000000" → bytes (K/M/G/T are powers of 1024). Throws
// "[what] bad SIZE ..." for anything else or a size ≤ 0.
int64_t parse_memory_size(const std::string& s, const char* what);

// The defined tensors of a block in a fixed order (the pack layout): the same list for every block
// of a model.
std::vector<Tensor*> dit_block_tensors(DitBlockWeights& b);

class DitBlockStreamer {
public:
    // Streams blocks [first, num_layers) of `blocks` through `slots` device slots of slot_bytes.
    DitBlockStreamer(Backend& be, int64_t first, int64_t num_layers, int slots);
    ~DitBlockStreamer();
    DitBlockStreamer(const DitBlockStreamer&) = delete;
    DitBlockStreamer& operator=(const DitBlockStreamer&) = delete;

    // Moves block b (loaded on the device) into a pinned host pack: b's tensors become views of the
    // pack (shapes and dtypes kept, for code that reads them, e.g. run-time LoRA); the device copy is freed.
    void park(DitBlockWeights& b);
    // Called once all blocks are parked: allocates the slots.
    void finish_loading();

    int64_t first() const { return first_; }
    int slots() const { return int(slots_.size()); }
    size_t block_bytes() const { return block_bytes_; }

    // One forward pass, in block order: begin() queues the first copies; acquire(i) returns block i
    // on the device (its LoRA branches and everything else as in blocks[i]); release(i) after block
    // i's ops are queued frees its slot for block i + slots.
    void begin(const std::vector<DitBlockWeights>& blocks);
    DitBlockWeights acquire(const std::vector<DitBlockWeights>& blocks, int64_t i);
    void release(const std::vector<DitBlockWeights>& blocks, int64_t i);

private:
    struct Slot;
    void fill(const std::vector<DitBlockWeights>& blocks, int64_t i);

    Backend& be_;
    int64_t first_, layers_;
    size_t block_bytes_ = 0;
    std::vector<size_t> offsets_;                    // per tensor of dit_block_tensors, in the pack
    std::vector<std::shared_ptr<Buffer>> packs_;     // per streamed block (pinned host)
    std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace wanrt
