// The built-in demo model and synthetic official folders (contract in demo.h).
#include "pipeline/demo.h"

#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <cmath>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>

#include "core/error.h"
#include "io/output_file.h"
#include "core/rng.h"
#include "io/pth_writer.h"
#include "io/safetensors.h"
#include "models/synth.h"
#include "pipeline/t2v.h"

namespace wanrt {

namespace fs = std::filesystem;

namespace {

// Training text of the demo tokenizer: typical prompts, the official example prompt and the
// official negative prompt, so common words become single pieces.
const char* const kDemoSentences[] = {
    "Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a spotlighted stage.",
    "A cat walks on the grass, realistic style, soft morning light.",
    "A dog runs along the beach at sunset, waves rolling in, cinematic shot.",
    "A red sports car drives through a neon city at night in the rain.",
    "Aerial view of snowy mountains and a frozen lake, slow camera pan.",
    "A panda eats bamboo in a green forest, close-up, high detail.",
    "An astronaut rides a horse on the moon, the earth in the background.",
    "A time-lapse of clouds moving over a field of sunflowers.",
    "A chef cooks noodles in a busy kitchen, steam rising from the pot.",
    "A little girl blows bubbles in a park on a sunny afternoon.",
    "Fireworks explode over a harbour, reflections on the water.",
    "A white cat wearing sunglasses sits on a surfboard at the beach.",
    "A robot dances in the street, people watching and clapping.",
    "Autumn leaves fall slowly in a quiet village, warm colours.",
    "An old man plays the violin by the window, soft light, film grain.",
    "A hummingbird hovers near a flower, slow motion, shallow depth of field.",
    "Ocean waves crash against the rocks under a stormy sky.",
    "A train crosses a bridge over a river in the mountains.",
    "Children play football in the yard, the camera follows the ball.",
    "A candle flickers in a dark room, smoke curling upwards.",
    // The trained demo's captions (scripts/demo_data.py), so each of their words is one piece and the
    // text encoder's neighbour heads (demo_t5_weights) pair a colour with the word after it.
    "a red circle moving left on a blue background", "a green square moving right on a yellow background",
    "a blue circle moving up on a white background", "a yellow square moving down on a black background",
    "a white circle moving left on a red background", "a black square moving up on a green background",
    "一只可爱的小猫在草地上奔跑，阳光明媚，高清画质。",
    "城市夜景，车流穿梭，霓虹灯闪烁，电影质感。",
    "一个朴素端庄的美人",
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走",
};

// The caption words as whole pieces (with their word-start mark), whatever the merge counts: the
// neighbour heads need one token per word.
const char* const kDemoCaptionWords =
    "\u2581red,\u2581green,\u2581blue,\u2581yellow,\u2581white,\u2581black,\u2581circle,\u2581square,"
    "\u2581moving,\u2581left,\u2581right,\u2581up,\u2581down,\u2581background";

class SentenceList : public sentencepiece::SentenceIterator {
public:
    SentenceList() {
        // Repeats weigh the list like a corpus; BPE merges are counted over all of them.
        for (int r = 0; r < 4; ++r)
            for (const char* s : kDemoSentences) v_.emplace_back(s);
    }
    bool done() const override { return i_ >= v_.size(); }
    void Next() override { ++i_; }
    const std::string& value() const override { return v_[i_]; }
    sentencepiece::util::Status status() const override { return {}; }

private:
    std::vector<std::string> v_;
    size_t i_ = 0;
};

// Elements [first, first + n) of a T5 tensor as bf16; element i depends only on (seed, name, i),
// so chunked and whole fills agree.
void fill_t5_bf16(const T5SynthItem& it, uint64_t seed, uint16_t* out, int64_t first, int64_t n) {
    const uint64_t base = synth_seed(it.name, seed);
    for (int64_t k = 0; k < n; ++k) {
        uint64_t st = base + uint64_t(first + k) * 0x632BE59BD9B4E019ull;
        const float u = float(splitmix64(st) >> 40) * (2.0f / 16777216.0f) - 1.0f;  // [-1, 1)
        out[k] = f32_to_bf16(it.center + it.scale * u);
    }
}

// Random umT5 weights in the official layout; edit (when set) may rewrite a tensor after its fill.
std::shared_ptr<TensorSource> random_t5(const T5Config& c, uint64_t seed, const char* what,
                                        const std::function<void(const T5SynthItem&, uint16_t*)>& edit = {}) {
    auto src = std::make_shared<MemoryTensorSource>(cat(what, " (dim ", c.dim, ", seed ", seed, ")"));
    for (const T5SynthItem& it : t5_synthetic_items(c)) {
        auto* d = static_cast<uint16_t*>(src->add_uninitialized(it.name, DType::BF16, it.shape));
        fill_t5_bf16(it, seed, d, 0, shape_numel(it.shape));
        if (edit) edit(it, d);
    }
    return src;
}

// Removes the demo's temporary tokenizer folder when the last parts object goes.
struct TempDir {
    std::string path;
    ~TempDir() {
        std::error_code ec;
        if (!path.empty()) fs::remove_all(path, ec);
    }
};

void write_text_file(const fs::path& path, const std::string& text) {
    write_file_atomic(path.string(), text, "demo");
}

}  // namespace

DemoConfig demo_config() {
    DemoConfig c;
    c.t5.vocab = kDemoVocab;
    // The T5 output width stays 4096: text_dim is not part of config.json (WanModel ignores it and
    // always uses 4096), so a folder written from this config must have it.
    c.t5.dim = 4096;
    c.t5.dim_attn = 128;
    c.t5.dim_ffn = 256;
    c.t5.num_heads = 4;
    c.t5.num_layers = 2;
    c.t5.num_buckets = 32;
    c.dit.model_type = "t2v";
    c.dit.text_len = 512;
    c.dit.in_dim = 16;
    c.dit.out_dim = 16;
    c.dit.dim = 256;
    c.dit.ffn_dim = 512;
    c.dit.freq_dim = 256;
    c.dit.text_dim = c.t5.dim;
    c.dit.num_heads = 2;  // head dim 128, as the real models
    c.dit.num_layers = 4;  // 2 learned colours, not motion; 4 reach its loss in half the steps (docs/training.md)
    c.vae.dim = 8;
    c.vae.z_dim = 16;
    c.vae.num_res_blocks = 1;
    return c;
}

DemoConfig demo_i2v_config() {
    DemoConfig c = demo_config();
    c.dit.model_type = "i2v";
    c.dit.in_dim = 2 * c.vae.z_dim + 4;  // noise + mask + image latent
    c.clip.dim = 1280;                    // the DiT's img_emb takes 1280 (hard-coded in model.py)
    c.clip.heads = 16;
    c.clip.layers = 2;                    // 1 runs (use_31_block)
    c.clip.mlp_dim = 64;
    c.clip.image_size = 224;
    c.clip.patch_size = 14;
    return c;
}

const std::string& demo_tokenizer_model() {
    static std::once_flag once;
    static std::string proto;
    std::call_once(once, [] {
        SentenceList it;
        const auto st = sentencepiece::SentencePieceTrainer::Train(
            {{"model_type", "bpe"},
             {"vocab_size", std::to_string(kDemoVocab)},
             {"hard_vocab_limit", "false"},
             {"byte_fallback", "true"},
             {"pad_id", "0"},
             {"eos_id", "1"},
             {"unk_id", "2"},
             {"bos_id", "-1"},
             {"user_defined_symbols", kDemoCaptionWords},
             {"num_threads", "1"},
             {"minloglevel", "2"}},
            &it, &proto);
        WANRT_CHECK(st.ok(), "demo", "training the demo tokenizer failed (", st.ToString(), ")");
    });
    return proto;
}

void write_demo_tokenizer(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    WANRT_CHECK(!ec, "demo", "cannot create ", dir, ": ", ec.message());
    write_text_file(fs::path(dir) / "spiece.model", demo_tokenizer_model());
}

std::shared_ptr<TensorSource> synthetic_t5_weights(const T5Config& c, uint64_t seed) {
    return random_t5(c, seed, "synthetic umT5");
}

std::shared_ptr<TensorSource> demo_t5_weights(const T5Config& c, uint64_t seed) {
    // Random, except the first block's relative position bias: −30 everywhere but one offset, so half
    // the heads see only the token before and half only the token after. A random umT5 turns "a red
    // circle … on a blue background" and "a blue circle … on a red background" into nearly the same bag
    // of token vectors, and the DiT's cross-attention has no positions to tell them apart; with these
    // heads "circle" carries "red" and "background" carries "blue". (Token 0 has no predecessor: its
    // first heads attend evenly.)
    const int64_t before = t5_relative_bucket(-1, c.num_buckets, c.max_distance);
    const int64_t after = t5_relative_bucket(1, c.num_buckets, c.max_distance);
    return random_t5(c, seed, "demo umT5", [&](const T5SynthItem& it, uint16_t* d) {
        if (it.name != "blocks.0.pos_embedding.embedding.weight") return;
        for (int64_t b = 0; b < c.num_buckets; ++b)  // [num_buckets, heads]
            for (int64_t h = 0; h < c.num_heads; ++h)
                d[b * c.num_heads + h] = f32_to_bf16(b == (2 * h < c.num_heads ? before : after) ? 0.0f : -30.0f);
    });
}

DemoConfig demo_flf2v_config() {
    DemoConfig c = demo_i2v_config();
    // The i2v demo plus img_emb.emb_pos [1, 514, 1280]: two frames of 257 CLIP tokens, which the demo
    // CLIP (224² input, patch 14) gives, as the real one does.
    c.dit.model_type = "flf2v";
    return c;
}

DemoConfig demo_moe_config(bool i2v) {
    DemoConfig c = i2v ? demo_i2v_config() : demo_config();
    c.dit.clip_branch = false;
    return c;
}

DemoConfig demo_ti2v_config() {
    DemoConfig c = demo_config();
    c.dit.model_type = "ti2v";
    c.dit.in_dim = c.dit.out_dim = c.vae22.z_dim;  // 48
    c.vae22.dim = c.vae22.dec_dim = 16;
    c.vae22.num_res_blocks = 1;
    return c;
}

namespace {

// The high-noise expert's seed (the low-noise one, like every other demo network, uses kSeed).
constexpr uint64_t kHighNoiseSeed = 2026;

T2VModelParts demo_parts(const DemoConfig& c, const char* name) {
    T2VModelParts m;
    m.name = name;
    m.kind = "demo";
    m.dit_config = c.dit;
    m.vae_config = c.vae;
    constexpr uint64_t kSeed = 2025;
    m.dit_weights = [c] { return synth_dit_memory(c.dit, DType::F32, kSeed); };
    m.t5_weights = [c] { return demo_t5_weights(c.t5, kSeed); };
    m.vae_weights = [c] { return synthetic_vae_weights(c.vae, uint32_t(kSeed)); };
    if (c.dit.model_type == "ti2v") {  // the Wan2.2 VAE in the Wan2.1 one's place (T2VModelParts::ti2v)
        m.vae22_config = c.vae22;
        m.vae_weights = [c] { return synthetic_vae22_weights(c.vae22, uint32_t(kSeed)); };
    }
    if (c.dit.has_clip()) {
        m.clip_config = c.clip;
        m.clip_weights = [c] { return synth_clip_memory(c.clip, DType::F32, kSeed); };
    }
    auto tmp = std::make_shared<TempDir>();
    std::string base = (fs::temp_directory_path() / "wanrt-demo-XXXXXX").string();
    WANRT_CHECK(mkdtemp(base.data()) != nullptr, "demo", "cannot create a temporary folder under ",
                fs::temp_directory_path().string(), " (", std::strerror(errno), "); set TMPDIR to a writable folder");
    tmp->path = base;
    write_demo_tokenizer(base);
    m.tokenizer = base;
    m.keepalive = tmp;
    return m;
}

}  // namespace

T2VModelParts demo_model_parts(DemoDit dit) {
    const DemoConfig c = demo_config();
    const auto blob = demo_dit_blob();
    const bool trained = dit == DemoDit::Trained && blob.second > 0;
    T2VModelParts m = demo_parts(c, trained ? "built-in demo model (trained DiT, constructed VAE)"
                                            : "built-in demo model (random DiT, constructed VAE)");
    // The constructed VAE (demo_vae.cpp) is what the DiT was trained through; a random one decodes noise.
    m.vae_weights = [c] { return demo_vae_weights(c.vae); };
    if (trained)
        m.dit_weights = [blob] {
            return std::shared_ptr<TensorSource>(
                SafeTensorsFile::from_memory(blob.first, blob.second, "built-in demo DiT (assets/demo/dit.safetensors)"));
        };
    return m;
}

T2VModelParts demo_i2v_model_parts() {
    return demo_parts(demo_i2v_config(), "built-in demo i2v model (random weights)");
}

T2VModelParts demo_flf2v_model_parts() {
    return demo_parts(demo_flf2v_config(), "built-in demo flf2v model (random weights)");
}

T2VModelParts demo_moe_model_parts(bool i2v) {
    const DemoConfig c = demo_moe_config(i2v);
    T2VModelParts m = demo_parts(c, i2v ? "built-in demo i2v-A14B model (two experts, random weights)"
                                        : "built-in demo t2v-A14B model (two experts, random weights)");
    m.high_noise_weights = [c] { return synth_dit_memory(c.dit, DType::F32, kHighNoiseSeed); };
    return m;
}

T2VModelParts demo_ti2v_model_parts() {
    return demo_parts(demo_ti2v_config(), "built-in demo ti2v-5B model (random weights)");
}

void write_t2v_folder(const std::string& dir, const DemoConfig& cfg, DType matrix_dtype, uint64_t seed,
                      const std::function<void(const std::string&)>& progress) {
    WANRT_CHECK(cfg.dit.text_dim == cfg.t5.dim, "synth", "the DiT's text_dim ", cfg.dit.text_dim,
                " must equal the T5 width ", cfg.t5.dim);
    if (progress) progress("config.json + diffusion_pytorch_model.safetensors");
    write_synth_dit(dir, cfg.dit, matrix_dtype, seed, uint64_t(10e9));
    write_t2v_extras(dir, cfg.t5, cfg.vae, seed, progress);
    if (cfg.dit.has_clip()) {
        if (progress) progress("models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth");
        write_i2v_clip(dir, cfg.clip, seed);
    }
}

void write_t2v_extras(const std::string& dir, const T5Config& t5, const VaeConfig& vae_cfg, uint64_t seed,
                      const std::function<void(const std::string&)>& progress) {
    WANRT_CHECK(t5.vocab >= kDemoVocab, "synth", "the T5 vocabulary (", t5.vocab, ") must hold the demo tokenizer's ",
                kDemoVocab, " ids");
    auto say = [&](const std::string& s) {
        if (progress) progress(s);
    };
    std::error_code ec;
    fs::create_directories(dir, ec);
    WANRT_CHECK(!ec, "synth", "cannot create ", dir, ": ", ec.message());
    const fs::path d(dir);

    say("Wan2.1_VAE.pth");
    {
        auto vae = synthetic_vae_weights(vae_cfg, uint32_t(seed));
        PthWriter w((d / "Wan2.1_VAE.pth").string());
        for (const auto& [name, shape] : vae_weight_manifest(vae_cfg)) {
            const StoredTensor* t = vae->find(name);
            w.add(name, t->dtype, t->shape, t->data);
        }
        w.finish();
    }

    say("models_t5_umt5-xxl-enc-bf16.pth");
    {
        PthWriter w((d / "models_t5_umt5-xxl-enc-bf16.pth").string());
        for (const T5SynthItem& it : t5_synthetic_items(t5))
            w.add_streamed(it.name, DType::BF16, it.shape, [&](void* out, int64_t first, int64_t n) {
                fill_t5_bf16(it, seed, static_cast<uint16_t*>(out), first, n);
            });
        w.finish();
    }

    say("google/umt5-xxl/spiece.model (demo tokenizer)");
    write_demo_tokenizer((d / "google" / "umt5-xxl").string());
}

void write_i2v_clip(const std::string& dir, const ClipVisionConfig& clip, uint64_t seed) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    WANRT_CHECK(!ec, "synth", "cannot create ", dir, ": ", ec.message());
    write_synth_clip_pth((fs::path(dir) / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth").string(), clip,
                         DType::F32, seed);
}

}  // namespace wanrt
