// Diffusers-format folders (io/diffusers_names.h, pipeline/diffusers_folder.h): the name map round trip
// on every fixture's key set and its spec rows, a diffusers-named copy of each fixture's weights giving
// bit-identical outputs (DiT forward, VAE decode, umT5, CLIP), full synthetic diffusers folders written
// from official ones running `wanrt generate` / `wanrt info` with the official folder's exact output,
// and the bad-folder table (one line, exit 1, nothing written).
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/diffusers_names.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "models/dit.h"
#include "models/synth.h"
#include "models/t5.h"
#include "models/vae.h"
#include "pipeline/demo.h"
#include "pipeline/diffusers_folder.h"
#include "pipeline/model_folder.h"
#include "test_util.h"

namespace wanrt::test {

namespace fs = std::filesystem;
using diffusers::Component;
using diffusers::Layout;
using json = nlohmann::json;

namespace {

bool is_test_data(const std::string& n) {
    return n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0;
}

// A fixture's weights under prefix (prefix removed), copied into memory.
std::shared_ptr<MemoryTensorSource> fixture_weights(const std::string& file, const std::string& prefix = "") {
    auto f = open_fixture(file);
    auto m = std::make_shared<MemoryTensorSource>(f->origin() + " " + prefix);
    for (const std::string& n : f->names()) {
        if (is_test_data(n) || n.rfind(prefix, 0) != 0) continue;
        const StoredTensor& t = *f->find(n);
        m->add(n.substr(prefix.size()), t.dtype, t.shape, t.data);
    }
    return m;
}

// Every official name maps to diffusers names that map back to it (same layout and part), the
// diffusers names of a set are distinct, and the shapes survive the trip.
void round_trip(const TensorSource& src, Component c, const diffusers::NameContext& ctx, size_t expect_dropped = 0) {
    std::set<std::string> seen;
    size_t dropped = 0;
    for (const std::string& n : src.names()) {
        const auto keys = diffusers::to_diffusers(c, n, ctx);
        ASSERT_TRUE(keys.has_value()) << "no diffusers name for " << n;
        if (keys->empty()) ++dropped;
        for (const auto& k : *keys) {
            EXPECT_TRUE(seen.insert(k.name).second) << "two official tensors map to " << k.name;
            const auto back = diffusers::from_diffusers(c, k.name, ctx);
            ASSERT_TRUE(back.has_value()) << k.name << " (from " << n << ") does not map back";
            EXPECT_EQ(back->name, n) << k.name;
            EXPECT_EQ(back->layout, k.layout) << k.name;
            EXPECT_EQ(back->part, k.part) << k.name;
            EXPECT_EQ(back->parts, k.parts) << k.name;
            const Shape& s = src.find(n)->shape;
            EXPECT_EQ(diffusers::official_shape(*back, diffusers::diffusers_shape(k, s)), s) << k.name;
        }
    }
    EXPECT_EQ(dropped, expect_dropped);
    EXPECT_GT(seen.size(), 0u);
}

// The backend of the weight tests: WANRT_TEST_DEVICE's (e.g. cuda on the GPU machine), else the CPU.
// The golden bound is float32's on the CPU, 1e-2 on a GPU (TF32 / fused kernels, as the model goldens);
// the diffusers-named copy must equal the official one bit for bit on either.
std::shared_ptr<Backend> weights_backend() {
    auto d = test_device();
    return d ? d : make_cpu_backend(2);
}
double golden_tol(const Backend& be, double cpu_tol) {
    return be.name() == "cpu" ? cpu_tol : 1e-2;
}

std::string to_d(Component c, const std::string& n, int64_t R = 2) {
    const auto k = diffusers::to_diffusers(c, n, {R});
    return k && k->size() == 1 ? (*k)[0].name : "<" + std::to_string(k ? k->size() : 0) + " names>";
}

// src written in diffusers names (in shards of shard_bytes) and opened back through the view.
std::shared_ptr<TensorSource> through_diffusers(const TensorSource& src, Component c, const diffusers::NameContext& ctx,
                                                const fs::path& dir, uint64_t shard_bytes) {
    write_diffusers_weights(src, c, ctx, dir.string(), "model", shard_bytes);
    return diffusers_view(open_safetensors(diffusers_weights_file(dir.string(), Component::TextEncoder)), c, ctx);
}

// Same names, dtypes, shapes and bytes.
void expect_same_tensors(const TensorSource& a, const TensorSource& b) {
    ASSERT_EQ(a.names(), b.names());
    for (const std::string& n : a.names()) {
        const StoredTensor &x = *a.find(n), &y = *b.find(n);
        EXPECT_EQ(x.dtype, y.dtype) << n;
        EXPECT_EQ(x.shape, y.shape) << n;
        ASSERT_EQ(x.nbytes, y.nbytes) << n;
        EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << n;
    }
}

}  // namespace

// ------------------------------------------------------------------------------------------ name map

TEST(DiffusersNames, RoundTripEveryFixtureKeySet) {
    round_trip(*fixture_weights("dit_t2v.safetensors"), Component::Transformer, {});
    round_trip(*fixture_weights("dit_i2v.safetensors"), Component::Transformer, {});
    round_trip(*fixture_weights("dit_ti2v.safetensors"), Component::Transformer, {});
    round_trip(*fixture_weights("pipeline_flf2v.safetensors", "dit."), Component::Transformer, {});
    round_trip(*fixture_weights("pipeline_moe.safetensors", "high_noise_model."), Component::Transformer, {});
    round_trip(*fixture_weights("pipeline_moe.safetensors", "low_noise_model."), Component::Transformer, {});
    for (auto [file, prefix] : {std::pair{"vae.safetensors", ""}, {"pipeline_t2v.safetensors", "vae."}}) {
        auto vae = fixture_weights(file, prefix);
        round_trip(*vae, Component::Vae, {vae_config_from_weights(*vae).num_res_blocks});
    }
    round_trip(*fixture_weights("t5.safetensors"), Component::TextEncoder, {});
    round_trip(*fixture_weights("pipeline_t2v.safetensors", "t5."), Component::TextEncoder, {});
    auto clip = fixture_weights("clip.safetensors");
    size_t text_tower = 0;
    for (const std::string& n : clip->names()) text_tower += n.rfind("textual.", 0) == 0 || n == "log_scale";
    EXPECT_GT(text_tower, 0u);
    round_trip(*clip, Component::ImageEncoder, {}, text_tower);  // the text tower has no diffusers counterpart
    round_trip(*fixture_weights("pipeline_i2v.safetensors", "clip."), Component::ImageEncoder, {}, text_tower);
    // Synthetic VAEs of other block counts regroup the decoder by their own count.
    for (int64_t R : {1, 3}) {
        VaeConfig c;
        c.dim = 8;
        c.num_res_blocks = R;
        SCOPED_TRACE(cat("VAE with ", R, " residual blocks per stage"));
        round_trip(*synthetic_vae_weights(c, 1), Component::Vae, {R});
    }
}

TEST(DiffusersNames, SpecRows) {
    const Component T = Component::Transformer, V = Component::Vae, E = Component::TextEncoder;
    EXPECT_EQ(to_d(T, "text_embedding.0.weight"), "condition_embedder.text_embedder.linear_1.weight");
    EXPECT_EQ(to_d(T, "time_embedding.2.bias"), "condition_embedder.time_embedder.linear_2.bias");
    EXPECT_EQ(to_d(T, "time_projection.1.weight"), "condition_embedder.time_proj.weight");
    EXPECT_EQ(to_d(T, "img_emb.proj.0.weight"), "condition_embedder.image_embedder.norm1.weight");
    EXPECT_EQ(to_d(T, "img_emb.proj.1.bias"), "condition_embedder.image_embedder.ff.net.0.proj.bias");
    EXPECT_EQ(to_d(T, "img_emb.proj.3.weight"), "condition_embedder.image_embedder.ff.net.2.weight");
    EXPECT_EQ(to_d(T, "img_emb.proj.4.bias"), "condition_embedder.image_embedder.norm2.bias");
    EXPECT_EQ(to_d(T, "img_emb.emb_pos"), "condition_embedder.image_embedder.pos_embed");
    EXPECT_EQ(to_d(T, "blocks.7.self_attn.o.weight"), "blocks.7.attn1.to_out.0.weight");
    EXPECT_EQ(to_d(T, "blocks.7.self_attn.norm_k.weight"), "blocks.7.attn1.norm_k.weight");
    EXPECT_EQ(to_d(T, "blocks.0.cross_attn.k_img.weight"), "blocks.0.attn2.add_k_proj.weight");
    EXPECT_EQ(to_d(T, "blocks.0.cross_attn.v_img.bias"), "blocks.0.attn2.add_v_proj.bias");
    EXPECT_EQ(to_d(T, "blocks.0.cross_attn.norm_k_img.weight"), "blocks.0.attn2.norm_added_k.weight");
    EXPECT_EQ(to_d(T, "blocks.12.ffn.0.weight"), "blocks.12.ffn.net.0.proj.weight");
    EXPECT_EQ(to_d(T, "blocks.12.ffn.2.bias"), "blocks.12.ffn.net.2.bias");
    EXPECT_EQ(to_d(T, "blocks.3.norm3.weight"), "blocks.3.norm2.weight");  // the cross-attention norm
    EXPECT_EQ(to_d(T, "blocks.3.modulation"), "blocks.3.scale_shift_table");
    EXPECT_EQ(to_d(T, "head.modulation"), "scale_shift_table");
    EXPECT_EQ(to_d(T, "head.head.weight"), "proj_out.weight");
    EXPECT_EQ(to_d(V, "encoder.conv1.weight"), "encoder.conv_in.weight");
    EXPECT_EQ(to_d(V, "encoder.downsamples.4.residual.3.gamma"), "encoder.down_blocks.4.norm2.gamma");
    EXPECT_EQ(to_d(V, "encoder.downsamples.3.shortcut.bias"), "encoder.down_blocks.3.conv_shortcut.bias");
    EXPECT_EQ(to_d(V, "encoder.downsamples.5.time_conv.weight"), "encoder.down_blocks.5.time_conv.weight");
    EXPECT_EQ(to_d(V, "encoder.middle.2.residual.6.weight"), "encoder.mid_block.resnets.1.conv2.weight");
    EXPECT_EQ(to_d(V, "decoder.middle.1.to_qkv.weight"), "decoder.mid_block.attentions.0.to_qkv.weight");
    EXPECT_EQ(to_d(V, "encoder.head.0.gamma"), "encoder.norm_out.gamma");
    EXPECT_EQ(to_d(V, "decoder.head.2.bias"), "decoder.conv_out.bias");
    EXPECT_EQ(to_d(V, "conv1.weight"), "quant_conv.weight");
    EXPECT_EQ(to_d(V, "conv2.bias"), "post_quant_conv.bias");
    EXPECT_EQ(to_d(V, "decoder.upsamples.2.residual.2.weight"), "decoder.up_blocks.0.resnets.2.conv1.weight");
    EXPECT_EQ(to_d(V, "decoder.upsamples.3.resample.1.weight"), "decoder.up_blocks.0.upsamplers.0.resample.1.weight");
    EXPECT_EQ(to_d(V, "decoder.upsamples.4.shortcut.weight"), "decoder.up_blocks.1.resnets.0.conv_shortcut.weight");
    EXPECT_EQ(to_d(V, "decoder.upsamples.7.time_conv.bias"), "decoder.up_blocks.1.upsamplers.0.time_conv.bias");
    EXPECT_EQ(to_d(V, "decoder.upsamples.11.resample.1.bias"), "decoder.up_blocks.2.upsamplers.0.resample.1.bias");
    EXPECT_EQ(to_d(V, "decoder.upsamples.14.residual.0.gamma"), "decoder.up_blocks.3.resnets.2.norm1.gamma");
    EXPECT_EQ(to_d(E, "token_embedding.weight"), "shared.weight");
    EXPECT_EQ(to_d(E, "blocks.1.ffn.gate.0.weight"), "encoder.block.1.layer.1.DenseReluDense.wi_0.weight");
    EXPECT_EQ(to_d(E, "blocks.1.pos_embedding.embedding.weight"),
              "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight");
    EXPECT_EQ(diffusers::from_diffusers(E, "encoder.embed_tokens.weight")->name, "token_embedding.weight");
    // CLIP: the fused q|k|v splits in three row blocks; the projection head is transposed.
    const auto qkv = diffusers::to_diffusers(Component::ImageEncoder, "visual.transformer.5.attn.to_qkv.weight");
    ASSERT_TRUE(qkv && qkv->size() == 3);
    EXPECT_EQ((*qkv)[1].name, "vision_model.encoder.layers.5.self_attn.k_proj.weight");
    EXPECT_EQ((*qkv)[1].layout, Layout::RowSlice);
    EXPECT_EQ(diffusers::diffusers_shape((*qkv)[2], {240, 80}), (Shape{80, 80}));
    EXPECT_EQ(to_d(Component::ImageEncoder, "visual.pre_norm.weight"), "vision_model.pre_layrnorm.weight");
    EXPECT_EQ(to_d(Component::ImageEncoder, "visual.head"), "visual_projection.weight");
    EXPECT_EQ(diffusers::from_diffusers(Component::ImageEncoder, "vision_model.embeddings.position_ids")->name, "");
    EXPECT_EQ(diffusers::from_diffusers(T, "blocks.3.attn2.norm_added_q.weight")->name,
              "");  // ignored by diffusers too
    // Names outside the map are unknown, both ways.
    for (const char* n : {"blocks.0.attn1.to_x.weight", "blocks.0.attn1.to_q.scale", "blocks.01.attn1.to_q.weight",
                          "condition_embedder.fps_embedding.weight", "blocks.x.attn1.to_q.weight"})
        EXPECT_FALSE(diffusers::from_diffusers(T, n).has_value()) << n;
    EXPECT_FALSE(diffusers::from_diffusers(V, "decoder.up_blocks.0.resnets.3.conv1.weight").has_value());
    EXPECT_FALSE(diffusers::from_diffusers(V, "decoder.up_blocks.0.upsamplers.1.resample.1.weight").has_value());
    EXPECT_FALSE(diffusers::from_diffusers(V, "encoder.mid_block.resnets.2.conv1.weight").has_value());
    EXPECT_FALSE(diffusers::to_diffusers(T, "blocks.0.self_attn.q.lora_A.weight").has_value());
}

TEST(DiffusersNames, ConfigMaps) {
    for (const std::string& name : DitConfig::preset_names()) {
        const DitConfig c = DitConfig::preset(name);
        const json j = diffusers::dit_config_to_diffusers(c);
        // The TI2V flag lives in the pipeline (expand_timesteps), not in the transformer config.
        const DitConfig back = diffusers::dit_config_from_diffusers(j, name, c.model_type == "ti2v");
        EXPECT_EQ(back.to_json(), c.to_json()) << name;
        EXPECT_EQ(back.qk_norm, c.qk_norm);
        EXPECT_EQ(back.cross_attn_norm, c.cross_attn_norm);
    }
    // The diffusers 14B I2V config as the conversion script writes it.
    const json i2v = json::parse(R"({"_class_name": "WanTransformer3DModel", "added_kv_proj_dim": 5120,
        "attention_head_dim": 128, "cross_attn_norm": true, "eps": 1e-06, "ffn_dim": 13824, "freq_dim": 256,
        "image_dim": 1280, "in_channels": 36, "num_attention_heads": 40, "num_layers": 40, "out_channels": 16,
        "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 1024, "text_dim": 4096})");
    EXPECT_EQ(official_kind(diffusers::dit_config_from_diffusers(i2v, "i2v", false)), "i2v-14B");
    json ti2v = diffusers::dit_config_to_diffusers(DitConfig::preset("t2v-1.3B"));
    EXPECT_EQ(diffusers::dit_config_from_diffusers(ti2v, "x", true).model_type, "ti2v");
    auto bad = [&](json j, const char* key, json v, const char* fragment) {
        j[key] = v;
        expect_error([&] { diffusers::dit_config_from_diffusers(j, "cfg.json", false); },
                     {"[diffusers]", "cfg.json", fragment});
    };
    bad(i2v, "qk_norm", "layer_norm", "rms_norm_across_heads");
    bad(i2v, "rope_max_seq_len", 2048, "rope_max_seq_len");
    bad(i2v, "image_dim", 1024, "image_dim");
    bad(i2v, "inject_sample_info", true, "unknown transformer config key \"inject_sample_info\"");
    bad(i2v, "image_dim", nullptr, "image_dim is not");
    json a14b = i2v;  // in 36 ≠ out 16 without the image branch: Wan2.2 I2V-A14B
    a14b["image_dim"] = nullptr;
    a14b["added_kv_proj_dim"] = nullptr;
    const DitConfig expert = diffusers::dit_config_from_diffusers(a14b, "a14b", false);
    EXPECT_EQ(official_moe_kind(expert), "i2v-A14B");
    EXPECT_FALSE(expert.has_clip());
    EXPECT_TRUE(diffusers::dit_config_to_diffusers(expert)["image_dim"].is_null());
    // VAE, umT5, CLIP configs round trip; the Wan2.2 VAE is refused.
    VaeConfig v;
    v.dim = 8;
    const VaeConfig vb = diffusers::vae_config_from_diffusers(diffusers::vae_config_to_diffusers(v), "vae");
    EXPECT_EQ(vb.dim, 8);
    EXPECT_EQ(vb.z_dim, 16);
    json v22 = diffusers::vae_config_to_diffusers(v);
    v22["is_residual"] = true;
    expect_error([&] { diffusers::vae_config_from_diffusers(v22, "vae/config.json"); }, {"[diffusers]", "Wan2.2 VAE"});
    const T5Config t = T5Config::umt5_xxl();
    EXPECT_EQ(diffusers::t5_config_from_diffusers(diffusers::t5_config_to_diffusers(t), "t5").to_json(), t.to_json());
    const ClipVisionConfig cc = ClipVisionConfig::vit_h_14();
    const ClipVisionConfig cb =
        diffusers::clip_config_from_diffusers(diffusers::clip_config_to_diffusers(cc, 1024), "c");
    EXPECT_EQ(cb.dim, cc.dim);
    EXPECT_EQ(cb.heads, cc.heads);
    EXPECT_EQ(cb.layers, cc.layers);
    EXPECT_EQ(cb.mlp_dim, cc.mlp_dim);
    EXPECT_EQ(cb.image_size, cc.image_size);
}

// ------------------------------------------------------------------- diffusers-named weights, same outputs

TEST(DiffusersWeights, DitForwardBitIdentical) {
    for (const char* fixture : {"dit_t2v.safetensors", "dit_i2v.safetensors"}) {
        TempDir tmp;
        auto f = open_fixture(fixture);
        const DitConfig cfg = DitConfig::from_json(f->metadata().at("config"), f->origin());
        auto official = fixture_weights(fixture);
        // Small shards: the view reads across several files through the index.
        auto renamed = through_diffusers(*official, Component::Transformer, {}, tmp.path, 64 << 10);
        ASSERT_TRUE(fs::exists(tmp.path / "model.safetensors.index.json"));
        expect_same_tensors(*official, *renamed);
        auto be = weights_backend();
        DitModel a(cfg, official, *be), b(cfg, renamed, *be);
        DitSample s;
        s.x = load_f32(*be, *f, "in.x0");
        s.context = load_f32(*be, *f, "in.context0");
        s.t = float(load_f64(*f, "in.t")[0]);
        if (cfg.is_i2v()) {
            s.y = load_f32(*be, *f, "in.cond0");
            s.clip_fea = load_f32(*be, *f, "in.clip_fea").select(0, 0);
        }
        const int64_t L = std::stoll(f->metadata().at("seq_len"));
        const std::vector<double> ya = to_f64(a.forward({s}, L)[0]), yb = to_f64(b.forward({s}, L)[0]);
        EXPECT_EQ(ya, yb) << fixture;
        const Err e = compare(yb, load_f64(*f, "out.y0"));
        std::printf(
            "[diffusers dit %s] vs golden: rel-L2 %.3g, max abs %.3g; diffusers vs official bit-identical: %s\n",
            fixture, e.rel_l2, e.max_abs, ya == yb ? "yes" : "NO");
        EXPECT_LT(e.rel_l2, golden_tol(*be, 1e-4));
    }
}

TEST(DiffusersWeights, VaeDecodeBitIdentical) {
    TempDir tmp;
    auto f = open_fixture("vae.safetensors");
    const VaeConfig cfg = VaeConfig::from_json(f->metadata().at("config"));
    auto official = fixture_weights("vae.safetensors");
    auto renamed = through_diffusers(*official, Component::Vae, {cfg.num_res_blocks}, tmp.path, 1 << 20);
    expect_same_tensors(*official, *renamed);
    EXPECT_EQ(vae_config_from_weights(*renamed).num_res_blocks, cfg.num_res_blocks);
    auto be = weights_backend();
    std::shared_ptr<Backend> bes = std::move(be);
    auto va = WanVae::load(official, cfg, bes);
    auto vb = WanVae::load(renamed, cfg, bes);
    Tensor z = load_f32(*bes, *f, "in.z");
    if (z.ndim() == 5) z = z.select(0, 0);
    const std::vector<double> da = to_f64(va->decode(z)), db = to_f64(vb->decode(z));
    EXPECT_EQ(da, db);
    const Err e = compare(db, load_f64(*f, "out.decoded"));
    std::printf("[diffusers vae] decode vs golden: rel-L2 %.3g, max abs %.3g\n", e.rel_l2, e.max_abs);
    EXPECT_LT(e.rel_l2, golden_tol(*bes, 1e-4));
}

TEST(DiffusersWeights, T5AndClipBitIdentical) {
    auto be = weights_backend();
    {
        TempDir tmp;
        auto f = open_fixture("t5.safetensors");
        auto official = fixture_weights("t5.safetensors");
        auto renamed = through_diffusers(*official, Component::TextEncoder, {}, tmp.path, 1 << 20);
        expect_same_tensors(*official, *renamed);
        T5Encoder a = T5Encoder::load(official, *be), b = T5Encoder::load(renamed, *be);
        std::vector<int32_t> ids;
        for (double v : load_f64(*f, "in.ids")) ids.push_back(int32_t(v));
        ids.resize(7);
        EXPECT_EQ(to_f64(a.encode(ids)), to_f64(b.encode(ids)));
    }
    {
        TempDir tmp;
        auto f = open_fixture("clip.safetensors");
        auto official = fixture_weights("clip.safetensors");
        auto renamed = through_diffusers(*official, Component::ImageEncoder, {}, tmp.path, 1 << 20);
        // The text tower is not part of the diffusers image encoder; the vision tower comes back whole.
        auto visual = std::make_shared<MemoryTensorSource>("visual");
        for (const std::string& n : official->names())
            if (n.rfind("visual.", 0) == 0) {
                const StoredTensor& t = *official->find(n);
                visual->add(n, t.dtype, t.shape, t.data);
            }
        expect_same_tensors(*visual, *renamed);
        ClipVisionConfig c = ClipVisionConfig::from_json(f->metadata().at("config"), f->origin());
        ClipVisionEncoder a(c, official, *be), b(c, renamed, *be);
        Tensor img = load_f32(*be, *f, "in.images");
        const std::vector<double> ya = to_f64(a.encode(img)), yb = to_f64(b.encode(img));
        EXPECT_EQ(ya, yb);
        const Err e = compare(yb, load_f64(*f, "out.clip_fea"));
        std::printf("[diffusers clip] vs golden: rel-L2 %.3g, max abs %.3g\n", e.rel_l2, e.max_abs);
        EXPECT_LT(e.rel_l2, golden_tol(*be, 1e-5));
    }
}

TEST(DiffusersWeights, ViewEdgeCases) {
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 10, 11, 12};
    // transformers' tied umT5 embedding stored twice: shared.weight is the one kept.
    auto t5 = std::make_shared<MemoryTensorSource>("t5");
    t5->add("shared.weight", DType::F32, {2, 2}, a);
    t5->add("encoder.embed_tokens.weight", DType::F32, {2, 2}, b);
    auto v = diffusers_view(t5, Component::TextEncoder);
    ASSERT_EQ(v->names(), std::vector<std::string>{"token_embedding.weight"});
    EXPECT_EQ(static_cast<const float*>(v->find("token_embedding.weight")->data)[0], 1.0f);
    // CLIP: q, k, v rows joined in order; the projection transposed; position_ids skipped.
    auto clip = std::make_shared<MemoryTensorSource>("clip");
    const std::string p = "vision_model.encoder.layers.0.self_attn.";
    clip->add(p + "k_proj.bias", DType::F32, {4}, b);
    clip->add(p + "q_proj.bias", DType::F32, {4}, a);
    clip->add(p + "v_proj.bias", DType::F32, {4}, c);
    clip->add("visual_projection.weight", DType::F32, {2, 2}, a);
    const int64_t ids[2] = {0, 1};
    clip->add("vision_model.embeddings.position_ids", DType::I64, {1, 2}, ids);
    v = diffusers_view(clip, Component::ImageEncoder);
    EXPECT_EQ(v->names(), (std::vector<std::string>{"visual.head", "visual.transformer.0.attn.to_qkv.bias"}));
    const StoredTensor& qkv = *v->find("visual.transformer.0.attn.to_qkv.bias");
    EXPECT_EQ(qkv.shape, (Shape{12}));
    ASSERT_EQ(qkv.nbytes, 48u);
    const float* q = static_cast<const float*>(qkv.data);
    EXPECT_EQ(std::vector<float>(q, q + 12), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
    const float* h = static_cast<const float*>(v->find("visual.head")->data);
    EXPECT_EQ(std::vector<float>(h, h + 4), (std::vector<float>{1, 3, 2, 4}));
    // A fused tensor with a part missing, and a name outside the map, are errors naming the tensors.
    auto part = std::make_shared<MemoryTensorSource>("part");
    part->add(p + "q_proj.bias", DType::F32, {4}, a);
    part->add(p + "v_proj.bias", DType::F32, {4}, c);
    expect_error([&] { diffusers_view(part, Component::ImageEncoder); },
                 {"[diffusers]", "visual.transformer.0.attn.to_qkv.bias", "part 2 of 3"});
    auto odd = std::make_shared<MemoryTensorSource>("odd");
    odd->add("blocks.0.attn1.to_q.weight", DType::F32, {2, 2}, a);
    odd->add("blocks.0.attn1.to_q.lora_A.weight", DType::F32, {2, 2}, a);
    expect_error([&] { diffusers_view(odd, Component::Transformer); },
                 {"[diffusers]", "unknown transformer tensor 'blocks.0.attn1.to_q.lora_A.weight'"});
}

// ---------------------------------------------------------------------------- whole folders and the CLI

class DiffusersFolderTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/wanrt_dfolder_XXXXXX";
        root_ = mkdtemp(tmpl);
        official_ = (root_ / "Wan2.1-T2V-tiny").string();
        diff_ = (root_ / "Wan2.1-T2V-tiny-Diffusers").string();
        CliRun s = run_cli("synth --model demo --full_folder --out " + official_);
        ASSERT_EQ(s.code, 0) << s.out;
        // Shards of 2 MB: the transformer and text encoder are several files with an index.
        write_diffusers_folder(official_, diff_, 2 << 20);
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    // A copy of the diffusers folder to break.
    static std::string copy(const std::string& name) {
        const fs::path p = root_ / name;
        fs::remove_all(p);
        fs::copy(diff_, p, fs::copy_options::recursive);
        return p.string();
    }
    static fs::path root_;
    static std::string official_, diff_;
};
fs::path DiffusersFolderTest::root_;
std::string DiffusersFolderTest::official_, DiffusersFolderTest::diff_;

const char* kSmall = " --size 64*48 --frame_num 9 --sample_steps 2 --threads 2 --device cpu";

TEST_F(DiffusersFolderTest, LayoutAsDiffusersWritesIt) {
    for (const char* f :
         {"model_index.json", "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors.index.json",
          "vae/config.json", "text_encoder/config.json", "text_encoder/model.safetensors.index.json",
          "tokenizer/spiece.model", "scheduler/scheduler_config.json"})
        EXPECT_TRUE(fs::exists(fs::path(diff_) / f)) << f;
    for (const char* c : {"transformer", "vae", "text_encoder"})
        EXPECT_NE(diffusers_weights_file((fs::path(diff_) / c).string(),
                                         std::string(c) == "text_encoder" ? Component::TextEncoder : Component::Vae),
                  "")
            << c;
    EXPECT_FALSE(fs::exists(diff_ + ".partial"));
    EXPECT_TRUE(is_diffusers_folder(diff_));
    EXPECT_FALSE(is_diffusers_folder(official_));
    const json idx = json::parse(read_file(fs::path(diff_) / "model_index.json"));
    EXPECT_EQ(idx["_class_name"], "WanPipeline");
    // Writing over an existing folder is refused before anything is written.
    expect_error([&] { write_diffusers_folder(official_, diff_, 1 << 30); }, {"[diffusers]", "already exists"});
}

TEST_F(DiffusersFolderTest, OpensAsTheOfficialFolder) {
    const T2VModelParts a = open_model_folder(official_), b = open_model_folder(diff_);
    EXPECT_EQ(a.dit_config.to_json(), b.dit_config.to_json());
    EXPECT_EQ(a.vae_config.dim, b.vae_config.dim);
    EXPECT_NE(b.kind.find("diffusers"), std::string::npos) << b.kind;
    expect_same_tensors(*a.dit_weights(), *b.dit_weights());
    expect_same_tensors(*a.vae_weights(), *b.vae_weights());
    auto ta = a.t5_weights(), tb = b.t5_weights();
    EXPECT_EQ(t5_config_from_source(*ta).to_json(), t5_config_from_source(*tb).to_json());
}

TEST_F(DiffusersFolderTest, GenerateGivesTheOfficialFoldersVideo) {
    const fs::path a = root_ / "official.y4m", b = root_ / "diffusers.y4m";
    CliRun r = run_cli("generate --ckpt_dir " + official_ + kSmall + " --base_seed 5 --prompt 'a cat' --save_file " +
                       a.string());
    ASSERT_EQ(r.code, 0) << r.out;
    r = run_cli("generate --ckpt_dir " + diff_ + kSmall + " --base_seed 5 --prompt 'a cat' --save_file " + b.string());
    ASSERT_EQ(r.code, 0) << r.out;
    const std::string ya = read_file(a), yb = read_file(b);
    EXPECT_EQ(ya.size(), y4m_size(64, 48, 9));
    EXPECT_TRUE(ya == yb) << "the diffusers folder's video differs from the official folder's";
}

TEST_F(DiffusersFolderTest, Info) {
    CliRun r = run_cli("info " + diff_);
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* s : {"diffusers, WanPipeline", "transformer/", "vae", "text_encoder", "tokenizer", "umT5 encoder",
                          "Wan VAE: dim", "complete:"})
        EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
    EXPECT_EQ(r.out.find("BROKEN"), std::string::npos) << r.out;
    // bench dit reads the transformer of a diffusers folder too.
    r = run_cli("bench dit --device cpu --ckpt_dir " + diff_ +
                " --height 32 --width 32 --frames 1 --text_tokens 7 "
                "--repeats 1 --threads 2 --no_profile");
    EXPECT_EQ(r.code, 0) << r.out;
    // A missing component is reported on its line.
    const std::string broken = copy("info_missing");
    fs::remove_all(fs::path(broken) / "vae");
    r = run_cli("info " + broken);
    EXPECT_NE(r.out.find("MISSING (looked for vae/config.json"), std::string::npos) << r.out;
    // A folder that cannot run: exit 1, and one error line naming what is wrong (issue 21).
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("cannot run: 1 problem(s), 1 part(s) missing"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("wanrt: [info] " + broken + " cannot run: missing VAE"), std::string::npos) << r.out;
}

TEST_F(DiffusersFolderTest, ImageToVideoFolders) {
    for (const std::string model : {"demo-i2v", "demo-flf2v"}) {
        SCOPED_TRACE(model);
        const std::string off = (root_ / model).string(), dif = (root_ / (model + "-Diffusers")).string();
        CliRun s = run_cli("synth --model " + model + " --full_folder --out " + off);
        ASSERT_EQ(s.code, 0) << s.out;
        write_diffusers_folder(off, dif, 1 << 30);
        EXPECT_TRUE(fs::exists(fs::path(dif) / "image_encoder/model.safetensors"));
        EXPECT_EQ(json::parse(read_file(fs::path(dif) / "model_index.json"))["_class_name"], "WanImageToVideoPipeline");
        const T2VModelParts a = open_model_folder(off), b = open_model_folder(dif);
        EXPECT_EQ(a.dit_config.to_json(), b.dit_config.to_json());
        EXPECT_EQ(a.clip_config.dim, b.clip_config.dim);
        EXPECT_EQ(a.clip_config.heads, b.clip_config.heads);
        EXPECT_EQ(a.clip_config.layers, b.clip_config.layers);
        expect_same_tensors(*a.dit_weights(), *b.dit_weights());
        // The official CLIP holds the vision tower only (synth), so the views agree tensor for tensor.
        expect_same_tensors(*a.clip_weights(), *b.clip_weights());
        const json tc = json::parse(read_file(fs::path(dif) / "transformer/config.json"));
        EXPECT_EQ(tc["pos_embed_seq_len"].is_null(), model == "demo-i2v");  // FLF2V's two CLIP token sets
        EXPECT_EQ(b.dit_config.model_type, model == "demo-i2v" ? "i2v" : "flf2v");
        CliRun r = run_cli("info " + dif);
        EXPECT_NE(r.out.find("image encoder"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("complete:"), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("BROKEN"), std::string::npos) << r.out;
    }
}

// Wan2.2 A14B: an official folder (high_noise_model/, low_noise_model/, the demo experts' widths) and its
// diffusers copy (transformer/ = high-noise, transformer_2/ = low-noise) give the same parts and video.
TEST_F(DiffusersFolderTest, A14BFolders) {
    for (bool i2v : {false, true}) {
        SCOPED_TRACE(i2v ? "i2v-A14B" : "t2v-A14B");
        const DemoConfig dc = demo_moe_config(i2v);
        const fs::path off = root_ / (i2v ? "Wan2.2-I2V-A14B-tiny" : "Wan2.2-T2V-A14B-tiny");
        const std::string dif = off.string() + "-Diffusers";
        write_synth_dit((off / "high_noise_model").string(), dc.dit, DType::F32, 1, 1 << 30);
        write_synth_dit((off / "low_noise_model").string(), dc.dit, DType::F32, 2, 1 << 30);
        write_t2v_extras(off.string(), dc.t5, dc.vae, 3);
        write_diffusers_folder(off.string(), dif, 1 << 30);
        const json idx = json::parse(read_file(fs::path(dif) / "model_index.json"));
        EXPECT_EQ(idx["_class_name"], i2v ? "WanImageToVideoPipeline" : "WanPipeline");
        EXPECT_EQ(idx["boundary_ratio"].get<double>(), i2v ? 0.9 : 0.875);
        EXPECT_FALSE(fs::exists(fs::path(dif) / "image_encoder"));
        const json tc = json::parse(read_file(fs::path(dif) / "transformer_2/config.json"));
        EXPECT_TRUE(tc["image_dim"].is_null());
        const T2VModelParts a = open_model_folder(off.string()), b = open_model_folder(dif);
        ASSERT_TRUE(a.moe() && b.moe());
        EXPECT_EQ(a.dit_config.to_json(), b.dit_config.to_json());
        EXPECT_EQ(b.dit_config.has_clip(), false);
        EXPECT_NE(b.kind.find("A14B"), std::string::npos) << b.kind;
        expect_same_tensors(*a.dit_weights(), *b.dit_weights());
        expect_same_tensors(*a.high_noise_weights(), *b.high_noise_weights());
        if (i2v) continue;  // the i2v run needs a picture; the parts above are what it reads
        const fs::path ya = root_ / "a14b_official.y4m", yb = root_ / "a14b_diffusers.y4m";
        CliRun r =
            run_cli("generate --ckpt_dir " + off.string() + kSmall + " --base_seed 5 --save_file " + ya.string());
        ASSERT_EQ(r.code, 0) << r.out;
        r = run_cli("generate --ckpt_dir " + dif + kSmall + " --base_seed 5 --save_file " + yb.string());
        ASSERT_EQ(r.code, 0) << r.out;
        EXPECT_TRUE(read_file(ya) == read_file(yb)) << "the A14B diffusers folder's video differs from the official's";
        r = run_cli("info " + dif);
        EXPECT_NE(r.out.find("transformer_2 (low-noise expert)"), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("BROKEN"), std::string::npos) << r.out;
    }
}

TEST_F(DiffusersFolderTest, BadFoldersAreOneLineExitOneNoFile) {
    auto edit_json = [](const fs::path& p, const std::function<void(json&)>& fn) {
        json j = json::parse(read_file(p));
        fn(j);
        std::ofstream(p) << j.dump(2);
    };
    const std::string no_vae = copy("no_vae");
    fs::remove_all(fs::path(no_vae) / "vae");
    const std::string no_tok = copy("no_tok");
    fs::remove(fs::path(no_tok) / "tokenizer/spiece.model");
    // An extra tensor the map does not know, in a transformer file of its own.
    const std::string extra = copy("extra_key");
    {
        // The VAE rewritten as one file with an extra tensor (the shards and index removed).
        auto src = open_safetensors(diffusers_weights_file((fs::path(diff_) / "vae").string(), Component::Vae));
        std::vector<TensorToWrite> w;
        for (const std::string& n : src->names()) {
            const StoredTensor& t = *src->find(n);
            w.push_back({n, t.dtype, t.shape, t.data});
        }
        const float x[2] = {1, 2};
        w.push_back({"decoder.up_blocks.0.lora_A.weight", DType::F32, {2}, x});
        fs::remove_all(fs::path(extra) / "vae");
        fs::create_directories(fs::path(extra) / "vae");
        fs::copy_file(fs::path(diff_) / "vae/config.json", fs::path(extra) / "vae/config.json");
        write_safetensors((fs::path(extra) / "vae/diffusion_pytorch_model.safetensors").string(), w);
    }
    const std::string layers = copy("more_layers");
    edit_json(fs::path(layers) / "transformer/config.json",
              [](json& j) { j["num_layers"] = j["num_layers"].get<int>() + 1; });
    const std::string width = copy("vae_width");
    edit_json(fs::path(width) / "vae/config.json", [](json& j) { j["base_dim"] = 16; });
    const std::string t5cfg = copy("t5_config");
    edit_json(fs::path(t5cfg) / "text_encoder/config.json",
              [](json& j) { j["num_layers"] = j["num_layers"].get<int>() + 2; });
    const std::string vae22 = copy("vae22");
    edit_json(fs::path(vae22) / "vae/config.json", [](json& j) { j["is_residual"] = true; });
    // model_index.json lists transformer_2 (Wan2.2 A14B) but the folder has none.
    const std::string moe = copy("moe");
    edit_json(fs::path(moe) / "model_index.json", [](json& j) {
        j["transformer_2"] = {"diffusers", "WanTransformer3DModel"};
        j["boundary_ratio"] = 0.875;
    });
    const std::string vace = copy("vace");
    edit_json(fs::path(vace) / "model_index.json", [](json& j) { j["_class_name"] = "WanVACEPipeline"; });
    const std::string badjson = copy("bad_json");
    std::ofstream(fs::path(badjson) / "transformer/config.json") << "{\"num_layers\": ";

    const std::string out = (root_ / "bad.y4m").string();
    struct Case {
        std::string dir, expect;
    };
    const std::vector<Case> cases = {
        {no_vae, "incomplete: missing VAE (vae/config.json and vae/diffusion_pytorch_model.safetensors"},
        {no_tok, "missing tokenizer (tokenizer/spiece.model)"},
        {extra, "unknown vae tensor 'decoder.up_blocks.0.lora_A.weight'"},
        {layers, "transformer/config.json does not match the weights"},
        {width, "vae/config.json does not match the weights"},
        {t5cfg, "text_encoder/config.json does not match the weights"},
        {vae22, "Wan2.2 VAE"},
        {moe, "missing transformer_2 (low-noise expert) (transformer_2/config.json"},
        {vace, "names pipeline WanVACEPipeline"},
        {badjson, "not valid JSON"},
    };
    for (const Case& c : cases) {
        CliRun r = run_cli("generate --ckpt_dir " + c.dir + kSmall + " --save_file " + out);
        std::printf("  %s", r.out.c_str());
        EXPECT_EQ(r.code, 1) << c.dir << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.dir << "\n" << r.out;
        EXPECT_NE(r.out.find("[diffusers]"), std::string::npos) << c.dir << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.dir << "\n" << r.out;
        EXPECT_FALSE(fs::exists(out)) << c.dir;
    }
    // A writer failure leaves nothing: an official folder without its VAE.
    const fs::path partial = root_ / "partial_src";
    fs::copy(official_, partial, fs::copy_options::recursive);
    fs::remove(partial / "Wan2.1_VAE.pth");
    expect_error([&] { write_diffusers_folder(partial.string(), (root_ / "never").string(), 1 << 30); }, {"VAE"});
    EXPECT_FALSE(fs::exists(root_ / "never"));
    EXPECT_FALSE(fs::exists(root_ / "never.partial"));
}

}  // namespace wanrt::test
