// Wan2.2 TI2V-5B in diffusers format (Wan-AI/Wan2.2-TI2V-5B-Diffusers: model_index.json with
// expand_timesteps, transformer/, vae/ = AutoencoderKLWan with is_residual, text_encoder/, tokenizer/):
// the Wan2.2 VAE name map (round trip on the fixture's key set and synthetic configs, rows of diffusers'
// convert_vae_22), a diffusers-named copy of vae22.safetensors giving the official names' encode and
// decode bit for bit, the config both ways (including diffusers' own vae22 config literal), a full TI2V
// diffusers folder written from the official one running `wanrt generate` with the official folder's
// exact video, and folders that mix generations (one line, exit 1, nothing written).
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/diffusers_names.h"
#include "io/safetensors.h"
#include "models/vae22.h"
#include "ops/clamp.h"
#include "pipeline/diffusers_folder.h"
#include "pipeline/model_folder.h"
#include "test_util.h"
#include "video/video_writer.h"

namespace wanrt::test {

namespace fs = std::filesystem;
using diffusers::Component;
using json = nlohmann::json;

namespace {

bool is_test_data(const std::string& n) {
    return n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0;
}

// vae22.safetensors' weights (without its in./out./mid. tensors), copied into memory.
std::shared_ptr<MemoryTensorSource> fixture_weights() {
    auto f = open_fixture("vae22.safetensors");
    auto m = std::make_shared<MemoryTensorSource>(f->origin());
    for (const std::string& n : f->names())
        if (!is_test_data(n)) m->add(n, f->find(n)->dtype, f->find(n)->shape, f->find(n)->data);
    return m;
}

// Every official name maps to a distinct diffusers name that maps back to it.
void round_trip(const TensorSource& src, const diffusers::NameContext& ctx) {
    std::set<std::string> seen;
    for (const std::string& n : src.names()) {
        const auto keys = diffusers::to_diffusers(Component::Vae, n, ctx);
        ASSERT_TRUE(keys.has_value() && keys->size() == 1) << "no diffusers name for " << n;
        const std::string& d = (*keys)[0].name;
        EXPECT_TRUE(seen.insert(d).second) << "two official tensors map to " << d;
        const auto back = diffusers::from_diffusers(Component::Vae, d, ctx);
        ASSERT_TRUE(back.has_value()) << d << " (from " << n << ") does not map back";
        EXPECT_EQ(back->name, n) << d;
        // The official stage names never survive: each was regrouped (or is a Wan2.1-style name).
        EXPECT_EQ(d.find("downsamples."), std::string::npos) << d;
        EXPECT_EQ(d.find("upsamples."), std::string::npos) << d;
    }
    EXPECT_EQ(seen.size(), src.names().size());
}

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

// A fixture tensor as f32 with a leading batch dim of 1 dropped.
Tensor input(Backend& be, const TensorSource& f, const std::string& name) {
    Tensor t = load_f32(be, f, name);
    Shape s = t.shape();
    if (s.size() == 5 && s[0] == 1) s.erase(s.begin());
    return ops::contiguous(t).reshape(s);
}

}  // namespace

TEST(DiffusersVae22, NameMapRoundTrips) {
    auto official = fixture_weights();
    const Vae22Config fc = vae22_config_from_weights(*official);
    round_trip(*official, {fc.num_res_blocks, true});
    for (int64_t R : {1, 2, 3}) {
        Vae22Config c;
        c.dim = c.dec_dim = 8;
        c.num_res_blocks = R;
        round_trip(*synthetic_vae22_weights(c, 1), {R, true});
    }
    // The Wan2.1 map does not take the Wan2.2 stage names (and the reverse): the flag is the switch.
    EXPECT_FALSE(diffusers::to_diffusers(Component::Vae, "encoder.downsamples.0.downsamples.0.residual.0.gamma", {2}));
    EXPECT_FALSE(diffusers::from_diffusers(Component::Vae, "encoder.down_blocks.0.downsampler.resample.1.weight", {2}));
}

// Rows of diffusers' convert_vae_22 (TI2V-5B: 2 residual blocks per stage, so the encoder's resample is
// downsamples.2 and the decoder's upsamples.3).
TEST(DiffusersVae22, SpecRows) {
    const std::vector<std::pair<const char*, const char*>> rows = {
        {"conv1.weight", "quant_conv.weight"},
        {"conv2.bias", "post_quant_conv.bias"},
        {"encoder.conv1.weight", "encoder.conv_in.weight"},
        {"encoder.downsamples.0.downsamples.0.residual.0.gamma", "encoder.down_blocks.0.resnets.0.norm1.gamma"},
        {"encoder.downsamples.1.downsamples.0.shortcut.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"},
        {"encoder.downsamples.0.downsamples.1.residual.6.bias", "encoder.down_blocks.0.resnets.1.conv2.bias"},
        {"encoder.downsamples.0.downsamples.2.resample.1.weight", "encoder.down_blocks.0.downsampler.resample.1.weight"},
        {"encoder.downsamples.1.downsamples.2.time_conv.bias", "encoder.down_blocks.1.downsampler.time_conv.bias"},
        {"encoder.middle.1.to_qkv.weight", "encoder.mid_block.attentions.0.to_qkv.weight"},
        {"encoder.middle.2.residual.3.gamma", "encoder.mid_block.resnets.1.norm2.gamma"},
        {"encoder.head.2.weight", "encoder.conv_out.weight"},
        {"decoder.conv1.bias", "decoder.conv_in.bias"},
        {"decoder.upsamples.0.upsamples.2.residual.2.weight", "decoder.up_blocks.0.resnets.2.conv1.weight"},
        {"decoder.upsamples.0.upsamples.3.resample.1.weight", "decoder.up_blocks.0.upsampler.resample.1.weight"},
        {"decoder.upsamples.1.upsamples.3.time_conv.weight", "decoder.up_blocks.1.upsampler.time_conv.weight"},
        {"decoder.upsamples.2.upsamples.0.shortcut.bias", "decoder.up_blocks.2.resnets.0.conv_shortcut.bias"},
        {"decoder.head.0.gamma", "decoder.norm_out.gamma"},
    };
    for (auto [o, d] : rows) {
        const auto k = diffusers::to_diffusers(Component::Vae, o, {2, true});
        ASSERT_TRUE(k && k->size() == 1) << o;
        EXPECT_EQ((*k)[0].name, d) << o;
        const auto b = diffusers::from_diffusers(Component::Vae, d, {2, true});
        ASSERT_TRUE(b) << d;
        EXPECT_EQ(b->name, o) << d;
    }
    // Indices past the stage's blocks are not names of this model.
    EXPECT_FALSE(diffusers::from_diffusers(Component::Vae, "encoder.down_blocks.0.resnets.2.conv1.weight", {2, true}));
    EXPECT_FALSE(diffusers::to_diffusers(Component::Vae, "decoder.upsamples.0.upsamples.4.resample.1.weight", {2, true}));
}

TEST(DiffusersVae22, ConfigBothWays) {
    Vae22Config c;  // TI2V-5B's
    const json j = diffusers::vae22_config_to_diffusers(c);
    EXPECT_TRUE(diffusers::is_vae22_config(j));
    const Vae22Config b = diffusers::vae22_config_from_diffusers(j, "vae");
    EXPECT_EQ(b.dim, 160);
    EXPECT_EQ(b.dec_dim, 256);
    EXPECT_EQ(b.z_dim, 48);
    EXPECT_EQ(b.num_res_blocks, 2);
    // diffusers' own vae22_diffusers_config (convert_wan_to_diffusers.py): the statistics as 4-decimal literals.
    json d = {{"base_dim", 160}, {"z_dim", 48}, {"is_residual", true}, {"in_channels", 12}, {"out_channels", 12},
              {"decoder_base_dim", 256}, {"scale_factor_temporal", 4}, {"scale_factor_spatial", 16},
              {"patch_size", 2}, {"clip_output", false}};
    for (auto [key, v] : {std::pair{"latents_mean", &wan22_latent_mean()}, {"latents_std", &wan22_latent_std()}}) {
        json a = json::array();
        for (float x : *v) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.4f", double(x));
            a.push_back(std::stod(buf));
        }
        d[key] = a;
    }
    EXPECT_EQ(diffusers::vae22_config_from_diffusers(d, "vae").dec_dim, 256);
    // Values wanrt does not run, one line each.
    for (auto [key, v] : {std::pair{"patch_size", json(1)}, {"in_channels", json(3)}, {"is_residual", json(false)},
                          {"scale_factor_spatial", json(8)}, {"dim_mult", json{1, 2, 4}}}) {
        json bad = d;
        bad[key] = v;
        expect_error([&] { diffusers::vae22_config_from_diffusers(bad, "vae/config.json"); },
                     {"[diffusers]", "vae/config.json", key});
    }
    json shifted = d;
    shifted["latents_mean"][3] = 0.5;
    expect_error([&] { diffusers::vae22_config_from_diffusers(shifted, "vae/config.json"); }, {"latents_mean"});
    // The Wan2.1 reader refuses it as another generation.
    expect_error([&] { diffusers::vae_config_from_diffusers(d, "vae/config.json"); }, {"mixes generations"});
}

// A diffusers-named copy of vae22.safetensors' weights (renamed here, in shards) gives the official
// names' encode and decode bit for bit.
TEST(DiffusersVae22, FixtureWeightsBitIdentical) {
    TempDir tmp;
    auto fx = open_fixture("vae22.safetensors");
    const Vae22Config cfg = Vae22Config::from_json(meta_json(*fx, "config").dump());
    auto official = fixture_weights();
    write_diffusers_weights(*official, Component::Vae, {cfg.num_res_blocks, true}, tmp.path.string(),
                            "diffusion_pytorch_model", 1 << 20);
    const std::string file = diffusers_weights_file(tmp.path.string(), Component::Vae);
    ASSERT_FALSE(file.empty());
    auto raw = open_safetensors(file);
    size_t regrouped = 0;
    for (const std::string& n : raw->names()) regrouped += n.find(".resnets.") != std::string::npos;
    EXPECT_GT(regrouped, 0u) << "the written file does not use diffusers names";
    auto renamed = diffusers_view(raw, Component::Vae, {cfg.num_res_blocks, true});
    expect_same_tensors(*official, *renamed);
    EXPECT_EQ(vae22_config_from_weights(*renamed).num_res_blocks, cfg.num_res_blocks);

    auto d = test_device();
    std::shared_ptr<Backend> be = d ? d : make_cpu_backend(2);
    auto va = Vae22Model::load(official, cfg, be), vb = Vae22Model::load(renamed, cfg, be);
    const Tensor video = input(*be, *fx, "in.video"), z = input(*be, *fx, "in.z");
    const std::vector<double> ea = to_f64(va->encode(video)), eb = to_f64(vb->encode(video));
    const std::vector<double> da = to_f64(va->decode(z)), db = to_f64(vb->decode(z));
    EXPECT_EQ(ea, eb);
    EXPECT_EQ(da, db);
    const double tol = be->host_visible() ? 1e-5 : 1e-2;
    EXPECT_CLOSE(eb, load_f64(*fx, "out.mu"), tol, "diffusers-named vae22 encode vs golden");
    EXPECT_CLOSE(db, load_f64(*fx, "out.decoded_raw"), tol, "diffusers-named vae22 decode vs golden");
}

// ------------------------------------------------------------------------------------ whole folders

namespace {

const char* kSmall = " --size 64*64 --frame_num 5 --sample_steps 2 --threads 2 --device cpu";

class DiffusersTi2v : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/wanrt_dti2v_XXXXXX";
        root_ = mkdtemp(tmpl);
        official_ = (root_ / "Wan2.2-TI2V-tiny").string();
        diff_ = (root_ / "Wan2.2-TI2V-tiny-Diffusers").string();
        wan21_ = (root_ / "Wan2.1-T2V-tiny").string();
        wan21_diff_ = (root_ / "Wan2.1-T2V-tiny-Diffusers").string();
        CliRun s = run_cli("synth --model demo-ti2v-5B --full_folder --out " + official_);
        ASSERT_EQ(s.code, 0) << s.out;
        s = run_cli("synth --model demo --full_folder --out " + wan21_);
        ASSERT_EQ(s.code, 0) << s.out;
        write_diffusers_folder(official_, diff_, 1 << 20);
        write_diffusers_folder(wan21_, wan21_diff_, 1 << 30);
        auto be = make_cpu_backend(1);
        write_video(pic(), randn_tensor(*be, {3, 1, 40, 60}, 7, 0.5f));
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    static std::string pic() { return (root_ / "pic.y4m").string(); }
    // A copy of folder src under root_/name with component `sub` taken from folder other.
    static std::string swap(const std::string& src, const std::string& other, const std::string& sub,
                            const std::string& name) {
        const fs::path p = root_ / name;
        fs::remove_all(p);
        fs::copy(src, p, fs::copy_options::recursive);
        fs::remove_all(p / sub);
        fs::copy(fs::path(other) / sub, p / sub, fs::copy_options::recursive);
        return p.string();
    }
    static fs::path root_;
    static std::string official_, diff_, wan21_, wan21_diff_;
};
fs::path DiffusersTi2v::root_;
std::string DiffusersTi2v::official_, DiffusersTi2v::diff_, DiffusersTi2v::wan21_, DiffusersTi2v::wan21_diff_;

}  // namespace

TEST_F(DiffusersTi2v, LayoutAndOpening) {
    for (const char* f : {"model_index.json", "transformer/config.json", "vae/config.json", "text_encoder/config.json",
                          "tokenizer/spiece.model"})
        EXPECT_TRUE(fs::exists(fs::path(diff_) / f)) << f;
    EXPECT_NE(diffusers_weights_file((fs::path(diff_) / "vae").string(), Component::Vae), "");
    const json idx = json::parse(read_file(fs::path(diff_) / "model_index.json"));
    EXPECT_EQ(idx["expand_timesteps"], true);
    EXPECT_EQ(idx["_class_name"], "WanPipeline");
    const json vc = json::parse(read_file(fs::path(diff_) / "vae/config.json"));
    EXPECT_EQ(vc["is_residual"], true);
    EXPECT_EQ(vc["patch_size"], 2);
    EXPECT_EQ(vc["z_dim"], 48);
    const T2VModelParts a = open_model_folder(official_), b = open_model_folder(diff_);
    ASSERT_TRUE(b.ti2v());
    EXPECT_EQ(a.dit_config.to_json(), b.dit_config.to_json());
    EXPECT_EQ(b.vae22_config.dim, a.vae22_config.dim);
    EXPECT_EQ(b.vae22_config.num_res_blocks, a.vae22_config.num_res_blocks);
    expect_same_tensors(*a.dit_weights(), *b.dit_weights());
    expect_same_tensors(*a.vae_weights(), *b.vae_weights());
    CliRun r = run_cli("info " + diff_);
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("Wan2.2 VAE: dim 16, dec_dim 16, z_dim 48"), std::string::npos) << r.out;
}

TEST_F(DiffusersTi2v, GenerateGivesTheOfficialFoldersVideo) {
    for (const std::string& mode : std::vector<std::string>{"", " --image " + pic()}) {
        const fs::path a = root_ / "official.y4m", b = root_ / "diffusers.y4m";
        const std::string args = mode + kSmall + " --base_seed 5 --prompt 'a cat' --save_file ";
        CliRun r = run_cli("generate --ckpt_dir " + official_ + args + a.string());
        ASSERT_EQ(r.code, 0) << r.out;
        r = run_cli("generate --ckpt_dir " + diff_ + args + b.string());
        ASSERT_EQ(r.code, 0) << r.out;
        EXPECT_NE(r.out.find("task ti2v-5B"), std::string::npos) << r.out;
        const std::string ya = read_file(a), yb = read_file(b);
        EXPECT_EQ(ya.size(), y4m_size(64, 64, 5));
        EXPECT_TRUE(ya == yb) << "the diffusers folder's video differs from the official folder's" << mode;
    }
}

// Folders that mix generations, both layouts: one line, exit 1, no output file, before any weights load.
TEST_F(DiffusersTi2v, MixedGenerationsAreOneLineExitOneNoFile) {
    const std::string ti2v_vae21 = swap(diff_, wan21_diff_, "vae", "ti2v_vae21");       // 48-channel DiT, Wan2.1 VAE
    const std::string wan21_vae22 = swap(wan21_diff_, diff_, "vae", "wan21_vae22");     // Wan2.1 DiT, Wan2.2 VAE
    const std::string wan21_dit = swap(diff_, wan21_diff_, "transformer", "wan21_dit");  // expand_timesteps, 16 ch
    const std::string out = (root_ / "bad.y4m").string(), save = " --save_file " + out;
    struct Case {
        std::string args, expect;
    };
    const std::vector<Case> cases = {
        {"generate --ckpt_dir " + ti2v_vae21 + kSmall + save, "mixes generations"},
        {"generate --ckpt_dir " + wan21_vae22 + kSmall + save, "mixes generations"},
        {"generate --ckpt_dir " + wan21_dit + kSmall + save, "[diffusers]"},
        {"generate --ckpt_dir " + diff_ + " --size 1280*720" + save, "[ti2v]"},
        {"generate --ckpt_dir " + diff_ + " --size 48*48" + save, "[ti2v]"},
        {"generate --ckpt_dir " + diff_ + " --task t2v-A14B" + kSmall + save, "needs a t2v-A14B model but"},
        {"generate --task ti2v-5B --vae tae --vae_checkpoint x.pth" + std::string(kSmall) + save, "[generate]"},
        {"generate --task ti2v-5B --size 80*48 --frame_num 5 --device cpu" + save, "[ti2v]"},  // the demo: multiples of 32
        {"generate --task ti2v-5B --frame_num 6 --device cpu" + save, "4n+1"},
    };
    for (const Case& c : cases) {
        CliRun r = run_cli(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(out)) << c.args;
    }
}

}  // namespace wanrt::test
