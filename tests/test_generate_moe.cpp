// `wanrt generate` on the Wan2.2 A14B models end to end: the built-in A14B demo models (no --ckpt_dir),
// tiny synthetic folders in the official Wan2.2 layout (`wanrt synth --model demo-t2v-A14B|demo-i2v-A14B
// --full_folder`: high_noise_model/, low_noise_model/, Wan2.1_VAE.pth, umT5, tokenizer), expert residency
// (--offload_model true/false give the same video), and the bad-input table: mixed generations, a
// missing expert, experts that differ, a size the task does not allow, tasks against the wrong folder;
// one line, exit 1, no output file, all before any weights load. The picture is a one-frame .y4m, so
// the test runs in builds without FFmpeg.
#include <fstream>

#include "models/synth.h"
#include "pipeline/model_folder.h"
#include "test_util.h"
#include "video/video_writer.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

const char* kSmall = " --size 64*64 --frame_num 5 --sample_steps 3 --threads 2 --device cpu";

class GenerateMoe : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/wanrt_moe_XXXXXX";
        root_ = mkdtemp(tmpl);
        t2v_ = (root_ / "Wan2.2-T2V-A14B-tiny").string();
        i2v_ = (root_ / "Wan2.2-I2V-A14B-tiny").string();
        wan21_ = (root_ / "Wan2.1-T2V-tiny").string();
        ti2v_ = (root_ / "Wan2.2-TI2V-tiny").string();
        for (auto [model, dir] :
             {std::pair{"demo-t2v-A14B", t2v_}, {"demo-i2v-A14B", i2v_}, {"demo", wan21_}, {"demo-ti2v-5B", ti2v_}}) {
            CliRun s = run_cli(std::string("synth --model ") + model + " --full_folder --out " + dir);
            ASSERT_EQ(s.code, 0) << s.out;
        }
        // A 60×40 (w×h) picture as a one-frame .y4m.
        auto be = make_cpu_backend(1);
        write_video(pic(), randn_tensor(*be, {3, 1, 40, 60}, 7, 0.5f));
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    static std::string pic() { return (root_ / "pic.y4m").string(); }
    // A copy of folder src under root_/name, changed by edit.
    template <class F>
    static std::string variant(const std::string& src, const std::string& name, F&& edit) {
        const fs::path d = root_ / name;
        fs::create_directories(d);
        fs::copy(src, d, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
        edit(d);
        return d.string();
    }
    static fs::path root_;
    static std::string t2v_, i2v_, wan21_, ti2v_;
};
fs::path GenerateMoe::root_;
std::string GenerateMoe::t2v_, GenerateMoe::i2v_, GenerateMoe::wan21_, GenerateMoe::ti2v_;

}  // namespace

TEST_F(GenerateMoe, DemoModelsRunWithoutFolder) {
    const fs::path out = root_ / "demo_t2v.y4m";
    CliRun r = run_cli("generate --task t2v-A14B" + std::string(kSmall) + " --base_seed 3 --save_file " + out.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("built-in demo t2v-A14B model"), std::string::npos) << r.out;
    // The T2V-A14B config: shift 12, guide (3.0, 4.0), boundary 0.875; 3 steps at shift 12 are 999, 972, 922.
    EXPECT_NE(r.out.find("shift 12"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("high-noise while t >= 875 (guide 4), then low-noise (guide 3)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("load DiT (high-noise expert)"), std::string::npos) << r.out;
    EXPECT_EQ(read_file(out).size(), y4m_size(64, 64, 5));

    const fs::path out2 = root_ / "demo_i2v.y4m";
    r = run_cli("generate --task i2v-A14B --image " + pic() + kSmall + " --base_seed 3 --save_file " + out2.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("built-in demo i2v-A14B model"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("high-noise while t >= 900 (guide 3.5), then low-noise (guide 3.5)"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("shift 5,"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("CLIP"), std::string::npos) << "the I2V-A14B experts have no CLIP\n" << r.out;
    // 60×40 in max_area 64·64 → lat 8×... as Wan2.1's I2V arithmetic: the printed size is the video's.
    EXPECT_NE(r.out.find("(60x40) in max_area 64*64 -> video"), std::string::npos) << r.out;
}

TEST_F(GenerateMoe, FoldersRunAndResidencyDoesNotChangeTheVideo) {
    for (const char* f : {"high_noise_model/config.json", "high_noise_model/diffusion_pytorch_model.safetensors",
                          "low_noise_model/config.json", "low_noise_model/diffusion_pytorch_model.safetensors",
                          "Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model"})
        EXPECT_TRUE(fs::exists(fs::path(t2v_) / f)) << f;
    EXPECT_FALSE(fs::exists(fs::path(i2v_) / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"));
    EXPECT_FALSE(fs::exists(fs::path(t2v_) / "config.json"));
    const std::string img = " --image " + pic();
    for (const bool i2v : {false, true}) {
        const std::string base = "generate --ckpt_dir " + (i2v ? i2v_ : t2v_) + (i2v ? img : "") + kSmall +
                                 " --prompt 'two cats' --base_seed 9 --save_file ";
        const fs::path a = root_ / "a.y4m", b = root_ / "b.y4m", c = root_ / "c.y4m", d = root_ / "d.y4m";
        CliRun r = run_cli(base + a.string());
        ASSERT_EQ(r.code, 0) << r.out;
        EXPECT_NE(r.out.find(i2v ? "task i2v-A14B" : "task t2v-A14B"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("load DiT (low-noise expert)"), std::string::npos) << r.out;
        ASSERT_EQ(run_cli(base + b.string() + " --offload_model false").code, 0);
        ASSERT_EQ(run_cli(base + c.string() + " --base_seed 10").code, 0);
        ASSERT_EQ(run_cli(base + d.string() + " --sample_guide_scale 3.0,3.0").code, 0);
        EXPECT_TRUE(read_file(a) == read_file(b)) << "both experts resident gave another video";
        EXPECT_FALSE(read_file(a) == read_file(c)) << "another seed gave the same video";
        EXPECT_FALSE(read_file(a) == read_file(d)) << "the high-noise guide scale had no effect";
        if (!i2v) EXPECT_EQ(read_file(a).size(), y4m_size(64, 64, 5));
    }
}

TEST_F(GenerateMoe, BadInputIsOneLineExitOneNoFile) {
    const std::string out = (root_ / "bad.mp4").string(), save = " --save_file " + out, img = " --image " + pic();
    const std::string t2v = "generate --ckpt_dir " + t2v_ + kSmall, i2v = "generate --ckpt_dir " + i2v_ + kSmall;
    const std::string wan21 = "generate --ckpt_dir " + wan21_ + kSmall;
    auto rename_vae = [](const fs::path& d) { fs::rename(d / "Wan2.1_VAE.pth", d / "Wan2.2_VAE.pth"); };
    const std::string no_low =
        variant(t2v_, "no_low", [](const fs::path& d) { fs::remove_all(d / "low_noise_model"); });
    const std::string no_weights = variant(t2v_, "no_weights", [](const fs::path& d) {
        fs::remove(d / "high_noise_model" / "diffusion_pytorch_model.safetensors");
    });
    const std::string moe_vae22 = variant(t2v_, "moe_vae22", rename_vae);
    const std::string wan21_vae22 = variant(wan21_, "wan21_vae22", rename_vae);
    // A TI2V config.json (48 channels) beside Wan2.1_VAE.pth, and with Wan2.2_VAE.pth.
    auto ti2v_config = [](const fs::path& d) {
        std::ofstream(d / "config.json") << R"({"model_type": "ti2v", "in_dim": 48, "out_dim": 48, "dim": 3072,
            "ffn_dim": 14336, "num_heads": 24, "num_layers": 30, "freq_dim": 256, "text_len": 512})";
    };
    const std::string ti2v_vae21 = variant(wan21_, "ti2v_vae21", ti2v_config);
    const std::string ti2v_official = variant(ti2v_, "ti2v_official", ti2v_config);
    // Experts from different models: a 1-block high-noise expert beside a 2-block low-noise one.
    const std::string one_block = (root_ / "one_block").string();
    ASSERT_EQ(run_cli("synth --model demo-t2v-A14B --layers 1 --out " + one_block).code, 0);
    const std::string differ = variant(t2v_, "differ", [&](const fs::path& d) {
        fs::remove_all(d / "high_noise_model");
        fs::copy(fs::path(one_block) / "high_noise_model", d / "high_noise_model", fs::copy_options::recursive);
    });
    // Wan2.1 I2V DiTs (with the CLIP branch) in the expert folders.
    const std::string wan21_i2v = (root_ / "wan21_i2v").string();
    ASSERT_EQ(run_cli("synth --model demo-i2v --out " + wan21_i2v).code, 0);
    const std::string clip_experts = variant(i2v_, "clip_experts", [&](const fs::path& d) {
        for (const char* sub : {"high_noise_model", "low_noise_model"})
            for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"})
                fs::copy_file(fs::path(wan21_i2v) / f, d / sub / f, fs::copy_options::overwrite_existing);
    });
    // The official 14B widths in config.json (the size list applies), tiny weights that are never read.
    const std::string official = variant(t2v_, "official", [](const fs::path& d) {
        for (const char* sub : {"high_noise_model", "low_noise_model"}) {
            DitConfig c = DitConfig::preset("t2v-14B");
            std::ofstream(d / sub / "config.json") << c.to_json();
        }
    });
    struct Case {
        std::string args, expect;
    };
    const std::vector<Case> cases = {
        {"generate --ckpt_dir " + no_low + kSmall + save,
         "missing low-noise expert (low_noise_model/ with config.json"},
        {"generate --ckpt_dir " + no_weights + kSmall + save, "missing high-noise expert"},
        {"generate --ckpt_dir " + moe_vae22 + kSmall + save, "mixes generations"},
        {"generate --ckpt_dir " + wan21_vae22 + kSmall + save, "mixes generations"},
        {"generate --ckpt_dir " + ti2v_vae21 + kSmall + save, "mixes generations"},
        {"generate --ckpt_dir " + ti2v_official + kSmall + save, "size 64*64 is not one ti2v-5B supports"},
        {"generate --ckpt_dir " + ti2v_official + " --size 1280*720" + save, "not one ti2v-5B supports"},
        {"generate --task ti2v-5B --causal --size 64*64 --frame_num 5 --device cpu" + save, "no causal mode"},
        {"generate --ckpt_dir " + ti2v_ + " --task i2v-A14B" + img + kSmall + save, "needs a i2v-A14B model but"},
        {"generate --ckpt_dir " + ti2v_ + " --size 48*48" + save, "[ti2v]"},
        {"generate --ckpt_dir " + differ + kSmall + save, "experts of"},
        {"generate --ckpt_dir " + clip_experts + img + kSmall + save, "CLIP image branch"},
        {"generate --ckpt_dir " + official + kSmall + save, "size 64*64 is not one t2v-A14B supports"},
        {"generate --ckpt_dir " + official + " --task t2v-A14B --size 1280*704" + save, "not one t2v-A14B supports"},
        {wan21 + " --task t2v-A14B" + save, "needs a t2v-A14B model but"},
        {t2v + " --task t2v-14B" + save, "needs a t2v-14B model but"},
        {t2v + img + save, "--image needs an image-to-video model"},
        {i2v + save, "pass --image"},
        {"generate --task i2v-A14B" + std::string(kSmall) + save, "pass --image"},
        {"generate --task t2v-A14B" + img + kSmall + save, "--image is for image-to-video"},
        {wan21 + " --sample_guide_scale 3,4" + save, "only the A14B tasks take"},
        {t2v + " --sample_guide_scale 3,4,5" + save, "bad --sample_guide_scale"},
        {t2v + " --sample_guide_scale x" + save, "bad --sample_guide_scale"},
        {"generate --ckpt_dir " + t2v_ + " --causal --size 64*64" + save, "no causal mode"},
        {t2v + " --frame_num 6" + save, "4n+1"},
    };
    for (const Case& c : cases) {
        CliRun r = run_cli(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(out)) << c.args;
        EXPECT_FALSE(fs::exists(out + ".tmp")) << c.args;
    }
}

// The folder scan: layout, kind and generation, read from file names and config.json only.
TEST_F(GenerateMoe, FolderScanAndKinds) {
    const ModelFolder f = scan_model_folder(t2v_);
    EXPECT_TRUE(f.moe);
    EXPECT_EQ(f.model_type, "t2v");
    EXPECT_TRUE(f.missing().empty());
    const T2VModelParts m = open_model_folder(i2v_);
    EXPECT_TRUE(m.moe());
    EXPECT_TRUE(m.dit_config.is_i2v());
    EXPECT_FALSE(m.dit_config.has_clip());
    EXPECT_EQ(m.dit_config.in_dim, 36);
    DitConfig t = DitConfig::preset("t2v-14B"), i = DitConfig::preset("i2v-14B");
    EXPECT_EQ(official_moe_kind(t), "t2v-A14B");
    EXPECT_EQ(official_moe_kind(i), "") << "a Wan2.1 I2V-14B (with CLIP) is no A14B expert";
    i.clip_branch = false;
    EXPECT_EQ(official_moe_kind(i), "i2v-A14B");
    EXPECT_EQ(official_kind(i), "") << "an i2v model without CLIP is not Wan2.1 I2V-14B";
    i.num_layers = 2;
    EXPECT_EQ(describe_moe_kind(i), "i2v-A14B (2 of 40 blocks per expert)");
}

// TI2V-5B from a tiny synthetic folder (config.json model_type ti2v, Wan2.2_VAE.pth): text-to-video at
// --size, image-to-video with --image (resized and centre-cropped to the official best size), 24 fps.
TEST_F(GenerateMoe, TI2VFolderRunsBothModes) {
    EXPECT_TRUE(fs::exists(fs::path(ti2v_) / "Wan2.2_VAE.pth"));
    EXPECT_FALSE(fs::exists(fs::path(ti2v_) / "Wan2.1_VAE.pth"));
    const fs::path a = root_ / "ti2v_t2v.y4m", b = root_ / "ti2v_i2v.y4m", c = root_ / "ti2v_i2v2.y4m";
    CliRun r = run_cli("generate --ckpt_dir " + ti2v_ + kSmall + " --base_seed 5 --save_file " + a.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("task ti2v-5B"), std::string::npos) << r.out;
    const std::string va = read_file(a);
    EXPECT_EQ(va.size(), y4m_size(64, 64, 5));
    EXPECT_EQ(va.rfind("YUV4MPEG2 W64 H64 F24:1", 0), 0u) << "TI2V-5B's sample_fps is 24";
    r = run_cli("generate --ckpt_dir " + ti2v_ + " --image " + pic() + kSmall + " --base_seed 5 --save_file " +
                b.string());
    ASSERT_EQ(r.code, 0) << r.out;
    // 60×40 in max_area 64·64: best_output_size(60, 40, 32, 32, 4096) = 64×64 (candidate 1).
    EXPECT_NE(r.out.find("(60x40) in max_area 64*64 -> video 64x64 (resized, centre-cropped)"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("encode image (VAE)"), std::string::npos) << r.out;
    ASSERT_EQ(run_cli("generate --ckpt_dir " + ti2v_ + " --image " + pic() + kSmall + " --base_seed 5 --save_file " +
                      c.string())
                  .code,
              0);
    EXPECT_TRUE(read_file(b) == read_file(c));
    EXPECT_FALSE(read_file(b) == va) << "the picture changed nothing";
}

}  // namespace wanrt::test
