// Synthetic umT5 checkpoint (random bf16 weights, official key layout) for memory and speed
// measurements without the 11.4 GB release file. Streamed: memory use is one chunk, not the model.
#include <cmath>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "models/t5.h"

namespace wanrt {

namespace {

// Streams n bf16 values uniform in [center − scale, center + scale] into the writer.
void write_uniform_bf16(SafeTensorsWriter& w, int64_t n, float center, float scale, uint64_t& state) {
    constexpr int64_t kChunk = int64_t(1) << 22;  // 8 MB of bf16
    std::vector<uint16_t> buf(size_t(std::min(n, kChunk)));
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(n - done, kChunk);
        for (int64_t i = 0; i < m; i += 4) {
            uint64_t r = splitmix64(state);
            for (int64_t k = 0; k < 4 && i + k < m; ++k) {
                const float u = float((r >> (16 * k)) & 0xFFFF) * (2.0f / 65535.0f) - 1.0f;  // [-1, 1]
                buf[size_t(i + k)] = f32_to_bf16(center + scale * u);
            }
        }
        w.write(buf.data(), size_t(m) * 2);
        done += m;
    }
}

}  // namespace

std::vector<T5SynthItem> t5_synthetic_items(const T5Config& c) {
    // uniform(±s) has variance s²/3, so s = √(3/fan_in) gives unit-variance projections; q·k is kept
    // small because T5 attention has no 1/√d.
    const int64_t D = c.dim, A = c.dim_attn, F = c.dim_ffn;
    auto s = [](int64_t fan_in) { return std::sqrt(3.0f / float(fan_in)); };
    std::vector<T5SynthItem> items;
    items.push_back({"token_embedding.weight", {c.vocab, D}, 0.0f, 1.0f});
    for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string p = cat("blocks.", i, ".");
        items.push_back({p + "norm1.weight", {D}, 1.0f, 0.1f});
        items.push_back({p + "attn.q.weight", {A, D}, 0.0f, s(D) * 0.25f});
        items.push_back({p + "attn.k.weight", {A, D}, 0.0f, s(D) * 0.25f});
        items.push_back({p + "attn.v.weight", {A, D}, 0.0f, s(D)});
        items.push_back({p + "attn.o.weight", {D, A}, 0.0f, s(A) * 0.5f});
        items.push_back({p + "norm2.weight", {D}, 1.0f, 0.1f});
        items.push_back({p + "ffn.gate.0.weight", {F, D}, 0.0f, s(D)});
        items.push_back({p + "ffn.fc1.weight", {F, D}, 0.0f, s(D)});
        items.push_back({p + "ffn.fc2.weight", {D, F}, 0.0f, s(F) * 0.5f});
        items.push_back({p + "pos_embedding.embedding.weight", {c.num_buckets, c.num_heads}, 0.0f, 0.5f});
    }
    items.push_back({"norm.weight", {D}, 1.0f, 0.1f});
    return items;
}

std::string write_synthetic_t5(const std::string& dir, const T5Config& c, uint64_t seed) {
    WANRT_CHECK(c.num_heads > 0 && c.dim_attn % c.num_heads == 0 && c.num_layers > 0 && c.vocab > 0, "t5",
                "synthetic config ", c.to_json(), " is invalid");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    WANRT_CHECK(!ec, "t5", "cannot create folder ", dir, ": ", ec.message());
    const std::string path = (std::filesystem::path(dir) / "models_t5_umt5-xxl-enc-bf16.safetensors").string();
    SafeTensorsWriter w(path, {{"config", c.to_json()}, {"synthetic", "random umT5 weights, not a trained model"}});

    const std::vector<T5SynthItem> items = t5_synthetic_items(c);
    for (const auto& it : items) w.declare(it.name, DType::BF16, it.shape);
    uint64_t state = seed * 0x2545F4914F6CDD1Dull + 1;
    for (const auto& it : items) write_uniform_bf16(w, shape_numel(it.shape), it.center, it.scale, state);
    w.finish();
    return path;
}

}  // namespace wanrt
