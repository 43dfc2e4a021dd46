// The umT5 text encoder of Wan2.1 (wan/modules/t5.py `T5Encoder`, used encoder-only; docs/wan21.md §4).
//
// Computation (float32 activations, weights used in place in their checkpoint dtype, bf16 for the
// release): x = token_embedding(ids) (no scaling); per block
//   x = x + o(attention(q(n1), k(n1), v(n1)) + rel_bias)   with n1 = rms_norm(x, norm1, 1e-6),
//   x = x + fc2(fc1(n2) ⊙ gelu_tanh(gate(n2)))              with n2 = rms_norm(x, norm2, 1e-6);
// then rms_norm(x, norm). Attention has no 1/√d scaling (softmax_scale = 1) and a relative position
// bias per layer: bias[h, i, j] = pos_embedding[bucket(j − i), h], buckets bidirectional
// (num_buckets/2 per direction, half of them exact, logarithmic up to max_distance 128, evaluated in
// fp32 exactly as torch does). Keys past a sample's length are excluded.
//
// Real tokens only: encode() runs a single prompt of its real length (ids incl. EOS, no padding).
// Because padded keys are excluded and the bias depends on j − i only, this equals the official
// padded 512-token run at the real positions, which is all the pipeline keeps (the official
// T5EncoderModel trims each output to its mask length). forward() runs a padded batch the official
// way; the golden test uses it to prove the equivalence.
//
// Checkpoints (bf16 kept bf16; on a host-visible backend the tensors view the mapped file):
//  - official names (models_t5_umt5-xxl-enc-bf16.pth or the same keys in a .safetensors):
//    token_embedding.weight [V, D], blocks.i.norm1.weight [D], blocks.i.attn.{q,k,v}.weight [A, D],
//    blocks.i.attn.o.weight [D, A], blocks.i.norm2.weight [D], blocks.i.ffn.gate.0.weight [F, D],
//    blocks.i.ffn.fc1.weight [F, D], blocks.i.ffn.fc2.weight [D, F],
//    blocks.i.pos_embedding.embedding.weight [num_buckets, heads], norm.weight [D];
//  - Hugging Face / ComfyUI UMT5 names, mapped by a table (t5.cpp): shared.weight (or
//    encoder.embed_tokens.weight), encoder.block.i.layer.0.{layer_norm, SelfAttention.{q,k,v,o},
//    SelfAttention.relative_attention_bias}, encoder.block.i.layer.1.{layer_norm,
//    DenseReluDense.wi_0 (= gate, the GELU branch), wi_1 (= fc1, the linear branch), wo (= fc2)},
//    encoder.final_layer_norm.weight. decoder.* and lm_head.weight of a full seq2seq file are ignored;
//  - llama.cpp T5 names (GGUF: city96's umt5-xxl-encoder-*.gguf, stable-diffusion.cpp): token_embd.weight,
//    enc.blk.i.{attn_norm, attn_q, attn_k, attn_v, attn_o, attn_rel_b, ffn_norm, ffn_gate (= gate),
//    ffn_up (= fc1), ffn_down (= fc2)}.weight, enc.output_norm.weight; dec.* and output.weight ignored.
//    Quantized GGUF types arrive decoded to f32 (GgufTensorSource).
// fp8 weights (float8_e4m3fn / e5m2, e.g. ComfyUI's umt5_xxl_fp8_e4m3fn_scaled.safetensors read through
// ComfyTensorSource, which decodes the scaled ones to f32) are widened to bf16, exactly.
// Config: vocab, dim from token_embedding; dim_attn from attn.q; dim_ffn from ffn.gate.0; num_buckets
// and num_heads from pos_embedding [num_buckets, heads]; num_layers from the block indices. A
// safetensors "config" metadata JSON (the fixtures), when present, must agree.
//
// Errors (wanrt::Error "[t5] ..."): a file that is not a umT5 encoder (e.g. a DiT checkpoint), an
// unknown layout (lists a few unexpected keys), missing or mis-shaped tensors, unsupported dtypes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"

namespace wanrt {

struct T5Config {
    int64_t vocab = 256384;
    int64_t dim = 4096;
    int64_t dim_attn = 4096;
    int64_t dim_ffn = 10240;
    int64_t num_heads = 64;
    int64_t num_layers = 24;
    int64_t num_buckets = 32;
    int64_t max_distance = 128;  // T5RelativeEmbedding's max_dist, fixed in the official code
    float eps = 1e-6f;

    int64_t head_dim() const { return dim_attn / num_heads; }
    int64_t num_params() const;  // total parameter count of the encoder
    std::string to_json() const;  // {"vocab": .., "dim": .., ...} (official config names)
    // Reads the official config JSON ({"vocab", "dim", "dim_attn", "dim_ffn", "num_heads",
    // "num_layers", "num_buckets", "shared_pos"}); shared_pos must be false.
    static T5Config from_json(const std::string& json);
    static T5Config umt5_xxl() { return {}; }
};

// Relative position bucket of rel = j − i (key minus query), bidirectional, as
// T5RelativeEmbedding._relative_position_bucket computes it in fp32.
int t5_relative_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance);

// f32 [H, Lq + Lk − 1] bias for AttentionParams::rel_bias: entry (h, j − i + Lq − 1) =
// pos_embedding[bucket(j − i), h]. pos_embedding is the stored [num_buckets, H] table (any float).
Tensor t5_rel_bias(Backend& be, const StoredTensor& pos_embedding, int64_t lq, int64_t lk,
                   int64_t max_distance);

struct T5Block {
    Tensor norm1, norm2;          // [D] f32
    Tensor q, k, v;               // [A, D] stored dtype
    Tensor o;                     // [D, A]
    Tensor gate, fc1;             // [F, D]
    Tensor fc2;                   // [D, F]
    const StoredTensor* pos = nullptr;  // [num_buckets, H]; read on the host to build the bias
};

struct T5Encoder {
    T5Config config;
    Tensor token_embedding;       // [V, D] stored dtype
    std::vector<T5Block> blocks;
    Tensor norm;                  // [D] f32
    std::shared_ptr<TensorSource> source;  // keeps the mapped weights alive
    Backend* backend = nullptr;

    // Loads from a source (official or Hugging Face names); with a prefix ("t5."), only the names
    // under it, prefix removed. Throws on any mismatch.
    static T5Encoder load(std::shared_ptr<TensorSource> source, Backend& be, const std::string& prefix = "");
    // Opens path (.pth, .gguf, or .safetensors / .safetensors.index.json, ComfyUI fp8 layouts included)
    // and loads it.
    static T5Encoder load_file(const std::string& path, Backend& be);

    // One prompt's real tokens (incl. EOS, no padding), ids in [0, vocab), 1 ≤ L → f32 [L, D].
    Tensor encode(const std::vector<int32_t>& ids, const DumpFn& dump = {}) const;
    // Padded batch the official way: ids i32 [B, L] on this backend, lens[b] real tokens of sample b
    // (keys ≥ lens[b] excluded) → f32 [B, L, D], pad rows included (as the official encoder computes
    // them before trimming).
    Tensor forward(const Tensor& ids, const std::vector<int32_t>& lens, const DumpFn& dump = {}) const;
};

// The config a source describes (layout detection + shapes), without loading. Throws like load().
T5Config t5_config_from_source(const TensorSource& source);

// Every tensor of a synthetic umT5 in the official key order, with the range of its uniform
// random values (center ± scale; chosen so activations stay O(1) through the blocks).
struct T5SynthItem {
    std::string name;
    Shape shape;
    float center, scale;
};
std::vector<T5SynthItem> t5_synthetic_items(const T5Config& c);

// Writes a full umT5 encoder of `config` with random bf16 weights (deterministic per seed) in the
// official key layout, streamed to <dir>/models_t5_umt5-xxl-enc-bf16.safetensors (the name the
// loader looks for next to the .pth); returns the path. Full size: 11.4 GB on disk, never in memory.
std::string write_synthetic_t5(const std::string& dir, const T5Config& config, uint64_t seed = 0);

}  // namespace wanrt
