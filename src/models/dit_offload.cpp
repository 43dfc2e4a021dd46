// DiT block streaming (contract in dit_offload.h).
#include "models/dit_offload.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"
#include "models/dit_weights.h"

namespace wanrt {

namespace {

// Tensor offsets in a pack: 512 bytes, the device allocator's small granule, so a tensor in a slot
// has the alignment class of one in its own allocation (the GEMM plans key on it).
constexpr size_t kAlign = 512;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::string gib(size_t b) { return cat(double(int64_t(double(b) / double(1 << 20) / 1024.0 * 100 + 0.5)) / 100, " GiB"); }

}  // namespace

std::string DitOffloadPlan::describe() const {
    if (streamed_blocks == 0) return cat("all ", resident_blocks, " blocks resident (", gib(device_bytes()), ")");
    return cat(resident_blocks, " of ", resident_blocks + streamed_blocks, " blocks resident, ", streamed_blocks,
               " streamed from pinned host memory through ", slots, " slots (weights on the device ", gib(device_bytes()),
               ", on the host ", gib(host_bytes()), ")");
}

DitOffloadPlan plan_dit_offload(size_t block_bytes, size_t other_bytes, int64_t num_layers, const DitOffloadOptions& o) {
    WANRT_CHECK(o.slots >= 2, "offload", "--offload needs at least 2 device block slots (one computes while the next "
                "fills), got ", o.slots);
    DitOffloadPlan p;
    p.block_bytes = block_bytes;
    p.other_bytes = other_bytes;
    const int64_t L = num_layers;
    if (o.max_vram > 0 && size_t(o.max_vram) >= other_bytes + size_t(L) * block_bytes) {
        p.resident_blocks = L;  // everything fits: nothing to stream
        return p;
    }
    const int S = int(std::min<int64_t>(o.slots, std::max<int64_t>(L, 1)));
    int64_t R = 0;
    if (o.max_vram > 0 && block_bytes > 0) {
        const double room = double(o.max_vram) - double(other_bytes) - double(S) * double(block_bytes);
        R = room > 0 ? std::min<int64_t>(L, int64_t(room / double(block_bytes))) : 0;
        WANRT_CHECK(room >= 0, "offload", "--max_vram ", gib(size_t(o.max_vram)), " is below the DiT's minimum with --offload: ",
                    gib(other_bytes + size_t(S) * block_bytes), " (embeddings and head ", gib(other_bytes), " + ", S,
                    " block slots of ", gib(block_bytes), "); raise --max_vram");
    }
    p.resident_blocks = R;
    p.streamed_blocks = L - R;
    p.slots = p.streamed_blocks > 0 ? int(std::min<int64_t>(S, p.streamed_blocks)) : 0;
    return p;
}

int64_t parse_memory_size(const std::string& s, const char* what) {
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    std::string unit = s.substr(i);
    for (char& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
    double v = 0;
    bool ok = i > 0;
    try {
        size_t used = 0;
        if (ok) v = std::stod(s.substr(0, i), &used);
        ok = ok && used == i;  // "1.2.3G" stops at "1.2"
    } catch (const std::exception&) {
        ok = false;
    }
    double mult = 0;
    if (unit.empty() || unit == "B") mult = 1;
    else if (unit == "K" || unit == "KB" || unit == "KIB") mult = 1024.0;
    else if (unit == "M" || unit == "MB" || unit == "MIB") mult = 1024.0 * 1024;
    else if (unit == "G" || unit == "GB" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
    else if (unit == "T" || unit == "TB" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
    const double bytes = v * mult;
    if (!ok || mult == 0 || !(bytes >= 1) || bytes > 9e18)
        fail(what, "bad size \"", s, "\"; write a positive size such as 16G, 512M or 1.5G");
    return int64_t(bytes);
}

std::vector<Tensor*> dit_block_tensors(DitBlockWeights& b) {
    std::vector<Tensor*> out;
    auto add = [&](Tensor& t) {
        if (t.defined()) out.push_back(&t);
    };
    auto lin = [&](Linear& l) {
        add(l.w);
        add(l.b);
    };
    add(b.modulation);
    for (Linear* l : {&b.sa_q, &b.sa_k, &b.sa_v, &b.sa_o}) lin(*l);
    add(b.sa_norm_q);
    add(b.sa_norm_k);
    add(b.norm3_w);
    add(b.norm3_b);
    for (Linear* l : {&b.ca_q, &b.ca_k, &b.ca_v, &b.ca_o}) lin(*l);
    add(b.ca_norm_q);
    add(b.ca_norm_k);
    lin(b.ca_k_img);
    lin(b.ca_v_img);
    add(b.ca_norm_k_img);
    lin(b.ffn0);
    lin(b.ffn2);
    return out;
}

// One device slot: a buffer of one block's bytes, and two events: `ready` (the copy into it is done)
// and `free` (the block that ran in it has finished its ops).
struct DitBlockStreamer::Slot {
    std::shared_ptr<Buffer> buf;
    std::unique_ptr<Backend::Event> ready, free;
    int64_t holds = -1;  // the block copied in last
};

DitBlockStreamer::DitBlockStreamer(Backend& be, int64_t first, int64_t num_layers, int slots)
    : be_(be), first_(first), layers_(num_layers) {
    WANRT_CHECK(slots >= 2, "offload", "at least 2 block slots are needed, got ", slots);
    WANRT_CHECK(first >= 0 && first < num_layers, "offload", "streamed blocks [", first, ", ", num_layers, ") are empty");
    const int n = int(std::min<int64_t>(slots, num_layers - first));
    for (int i = 0; i < std::max(n, 1); ++i) slots_.push_back(std::make_unique<Slot>());
    packs_.resize(size_t(num_layers - first));
}

DitBlockStreamer::~DitBlockStreamer() {
    // The copy queue may still write into a slot (a prefetch no forward consumed): wait before the
    // slots go back to the allocator.
    try {
        be_.synchronize();
    } catch (...) {
    }
}

void DitBlockStreamer::park(DitBlockWeights& b) {
    const std::vector<Tensor*> ts = dit_block_tensors(b);
    if (offsets_.empty()) {  // the first parked block fixes the layout
        size_t at = 0;
        for (Tensor* t : ts) {
            offsets_.push_back(at);
            at = align_up(at + t->nbytes());
        }
        block_bytes_ = at;
    }
    WANRT_CHECK(ts.size() == offsets_.size(), "offload", "a block has ", ts.size(), " tensors, the first streamed one ",
                offsets_.size(), "; blocks must have one structure");
    size_t parked = 0;
    while (parked < packs_.size() && packs_[parked]) ++parked;
    WANRT_ASSERT(parked < packs_.size());
    std::shared_ptr<Buffer> pack = be_.alloc_pinned(block_bytes_);
    auto* base = static_cast<uint8_t*>(pack->ptr());
    for (size_t k = 0; k < ts.size(); ++k) {
        Tensor& t = *ts[k];
        WANRT_CHECK(t.is_contiguous() && offsets_[k] + t.nbytes() <= block_bytes_, "offload", "block tensor ",
                    t.describe(), " does not fit the pack layout of the first streamed block");
        be_.download(t, base + offsets_[k]);
        t = Tensor(pack, t.dtype(), t.shape(), offsets_[k]);  // the device copy is freed here
    }
    packs_[parked] = std::move(pack);
}

void DitBlockStreamer::finish_loading() {
    for (const auto& p : packs_) WANRT_CHECK(p != nullptr, "offload", "a streamed block was never parked");
    for (auto& s : slots_) {
        s->buf = be_.alloc(block_bytes_);
        s->ready = be_.new_event();
        s->free = be_.new_event();
    }
}

void DitBlockStreamer::fill(const std::vector<DitBlockWeights>& blocks, int64_t i) {
    Slot& s = *slots_[size_t((i - first_) % int64_t(slots_.size()))];
    be_.wait(Backend::Queue::Copy, *s.free);  // the block that ran in this slot is done with it
    DitBlockWeights b = blocks[size_t(i)];
    const std::vector<Tensor*> ts = dit_block_tensors(b);
    const auto* host = static_cast<const uint8_t*>(packs_[size_t(i - first_)]->ptr());
    for (size_t k = 0; k < ts.size(); ++k)
        be_.upload_async(Tensor(s.buf, ts[k]->dtype(), ts[k]->shape(), offsets_[k]), host + offsets_[k]);
    be_.record(Backend::Queue::Copy, *s.ready);
    s.holds = i;
}

void DitBlockStreamer::begin(const std::vector<DitBlockWeights>& blocks) {
    for (int64_t i = first_; i < layers_ && i < first_ + int64_t(slots_.size()); ++i) fill(blocks, i);
}

DitBlockWeights DitBlockStreamer::acquire(const std::vector<DitBlockWeights>& blocks, int64_t i) {
    Slot& s = *slots_[size_t((i - first_) % int64_t(slots_.size()))];
    WANRT_ASSERT(s.holds == i);
    be_.wait(Backend::Queue::Compute, *s.ready);
    DitBlockWeights b = blocks[size_t(i)];  // LoRA branches and all: then the tensors point into the slot
    const std::vector<Tensor*> ts = dit_block_tensors(b);
    for (size_t k = 0; k < ts.size(); ++k) *ts[k] = Tensor(s.buf, ts[k]->dtype(), ts[k]->shape(), offsets_[k]);
    return b;
}

void DitBlockStreamer::release(const std::vector<DitBlockWeights>& blocks, int64_t i) {
    Slot& s = *slots_[size_t((i - first_) % int64_t(slots_.size()))];
    be_.record(Backend::Queue::Compute, *s.free);
    const int64_t next = i + int64_t(slots_.size());
    if (next < layers_) fill(blocks, next);
}

}  // namespace wanrt
