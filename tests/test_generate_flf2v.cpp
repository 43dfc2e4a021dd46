// `wanrt generate --task flf2v-14B --first_frame a.png --last_frame b.png` end to end: the built-in
// flf2v demo (no --ckpt_dir), a tiny synthetic FLF2V folder in the official layout (`wanrt synth
// --model demo-flf2v --full_folder`: config.json model_type "flf2v", CLIP .pth included), the FLF2V
// defaults seen in the announce line, and the bad-input table: one line, exit 1, no output file. Also
// the staged runner against generate_flf2v with every model loaded, and the folder kind flf2v-14B.
#include <fstream>
#include <iterator>

#include "models/t5.h"
#include "ops/ops.h"
#include "pipeline/demo.h"
#include "pipeline/flf2v.h"
#include "pipeline/model_folder.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

// Small and fast: max_area 64·64, 5 frames (the fewest FLF2V takes), 2 steps. 90×60 pictures → a
// 64×48 video (latent 8×6).
const char* kSmall = " --size 64*64 --frame_num 5 --sample_steps 2 --threads 2 --device cpu";

class GenerateFLF2V : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/wanrt_flf2v_XXXXXX";
        root_ = mkdtemp(tmpl);
        flf2v_folder_ = (root_ / "Wan2.1-FLF2V-tiny").string();
        i2v_folder_ = (root_ / "Wan2.1-I2V-tiny").string();
        CliRun s = run_cli("synth --model demo-flf2v --full_folder --out " + flf2v_folder_);
        ASSERT_EQ(s.code, 0) << s.out;
        s = run_cli("synth --model demo-i2v --full_folder --out " + i2v_folder_);
        ASSERT_EQ(s.code, 0) << s.out;
        auto ff = [](const std::string& args) {
            CliRun r = run_shell("ffmpeg -v error -y " + args);
            ASSERT_EQ(r.code, 0) << args << "\n" << r.out;
        };
        // Two different 90×60 pictures, and a last frame of another size.
        ff("-f lavfi -i testsrc=size=90x60:rate=1 -frames:v 1 -pix_fmt rgb24 " + pic("first.png"));
        ff("-f lavfi -i smptebars=size=90x60:rate=1 -frames:v 1 -pix_fmt rgb24 " + pic("last.png"));
        ff("-f lavfi -i smptebars=size=96x60:rate=1 -frames:v 1 -pix_fmt rgb24 " + pic("wide.png"));
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    static std::string pic(const char* name) { return (root_ / name).string(); }
    static std::string pair(const char* first = "first.png", const char* last = "last.png") {
        return " --first_frame " + pic(first) + " --last_frame " + pic(last);
    }
    static fs::path root_;
    static std::string flf2v_folder_, i2v_folder_;
};
fs::path GenerateFLF2V::root_;
std::string GenerateFLF2V::flf2v_folder_, GenerateFLF2V::i2v_folder_;

}  // namespace

TEST_F(GenerateFLF2V, DemoModelRunsWithoutFolder) {
    const fs::path out = root_ / "demo.y4m";
    CliRun r = run_cli("generate --task flf2v-14B" + pair() + kSmall + " --base_seed 3 --save_file " + out.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("built-in demo flf2v model"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(90x60) in max_area 64*64 -> video 64x48"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("shift 16, guide 5"), std::string::npos) << r.out;  // generate.py's FLF2V shift
    EXPECT_NE(r.out.find("encode image (CLIP)"), std::string::npos) << r.out;
    EXPECT_EQ(read_file(out).size(), y4m_size(64, 48, 5));
    // --first_frame/--last_frame alone pick the flf2v demo too; the same seed gives the same video.
    const fs::path same = root_ / "demo_same.y4m";
    r = run_cli("generate" + pair() + kSmall + " --base_seed 3 --save_file " + same.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(read_file(out) == read_file(same));
    // The last frame conditions the video: swapping the pictures changes it.
    const fs::path swapped = root_ / "demo_swapped.y4m";
    r = run_cli("generate" + pair("last.png", "first.png") + kSmall + " --base_seed 3 --save_file " + swapped.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(read_file(swapped).size(), y4m_size(64, 48, 5));
    EXPECT_FALSE(read_file(out) == read_file(swapped)) << "first and last frames swapped, same video";
    // Any 4n+1 ≥ 5 frames: 9 frames.
    const fs::path nine = root_ / "demo9.y4m";
    r = run_cli("generate" + pair() + " --size 64*64 --frame_num 9 --sample_steps 1 --threads 2 --device cpu "
                "--save_file " + nine.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(read_file(nine).size(), y4m_size(64, 48, 9));
}

TEST_F(GenerateFLF2V, FolderToMp4) {
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth",
                          "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model",
                          "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"})
        EXPECT_TRUE(fs::exists(fs::path(flf2v_folder_) / f)) << f;
    EXPECT_NE(read_file(fs::path(flf2v_folder_) / "config.json").find("\"flf2v\""), std::string::npos);
    const std::string mp4 = (root_ / "f.mp4").string();
    CliRun r = run_cli("generate --ckpt_dir " + flf2v_folder_ + pair() + kSmall + " --prompt 'a bird' --base_seed 9 "
                       "--save_file " + mp4);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("task flf2v"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("load CLIP"), std::string::npos) << r.out;
    CliRun p = run_shell("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                         "stream=width,height,nb_read_frames -of default=nw=1 " + mp4);
    ASSERT_EQ(p.code, 0) << p.out;
    EXPECT_NE(p.out.find("width=64"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("height=48"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("nb_read_frames=5"), std::string::npos) << p.out;
}

TEST_F(GenerateFLF2V, BadInputIsOneLineExitOneNoFile) {
    const std::string out = (root_ / "bad.mp4").string();
    const std::string save = " --save_file " + out;
    const std::string demo = std::string("generate") + kSmall;
    const std::string flf = "generate --ckpt_dir " + flf2v_folder_ + kSmall;
    const std::string i2v = "generate --ckpt_dir " + i2v_folder_ + kSmall;
    struct Case {
        std::string args, expect;
    };
    const std::vector<Case> cases = {
        {demo + " --last_frame " + pic("last.png") + save, "--last_frame needs --first_frame"},
        {demo + " --task flf2v-14B --last_frame " + pic("last.png") + save, "--last_frame needs --first_frame"},
        {demo + " --first_frame " + pic("first.png") + save, "--first_frame needs --last_frame"},
        {demo + " --task flf2v-14B --image " + pic("first.png") + save, "not --image"},
        {demo + " --task flf2v-14B" + save, "pass --first_frame a.png --last_frame b.png"},
        {demo + pair() + " --image " + pic("first.png") + save, "not both"},
        {demo + " --task i2v-14B" + pair() + save, "are for --task flf2v-14B"},
        {demo + " --task t2v-14B" + pair() + save, "are for --task flf2v-14B"},
        {demo + pair() + " --frame_num 6" + save, "4n+1"},
        {demo + pair() + " --frame_num 1" + save, "at least 5"},
        {demo + pair("first.png", "wide.png") + save, "resize the last frame"},
        {demo + pair("first.png", "nothere.png") + save, "no such file"},
        {"generate --size 64*64" + pair() + " --causal" + save, "no causal mode"},
        {flf + " --image " + pic("first.png") + save, "instead of --image"},
        {flf + save, "pass --first_frame a.png --last_frame b.png"},
        {flf + " --task flf2v-14B" + pair() + save, "needs a flf2v-14B model but"},  // custom widths
        {flf + " --task i2v-14B --image " + pic("first.png") + save, "needs a i2v-14B model but"},
        {flf + pair() + " --frame_num 1" + save, "at least 5"},
        {flf + pair("first.png", "wide.png") + save, "resize the last frame"},
        {i2v + pair() + save, "need a first-last-frame model"},
    };
    for (const Case& c : cases) {
        CliRun r = run_cli(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(out)) << c.args;
        EXPECT_FALSE(fs::exists(out + ".tmp")) << c.args;
    }
    // An FLF2V folder without its CLIP: the missing-parts error names it (config.json's model_type
    // "flf2v" makes the CLIP a required part).
    const fs::path part = root_ / "noclip";
    fs::create_directories(part);
    fs::copy(flf2v_folder_, part, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    fs::remove(part / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth");
    CliRun r = run_cli("generate --ckpt_dir " + part.string() + pair() + kSmall + save);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("CLIP image encoder (models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"),
              std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out));
}

// The staged runner (one model at a time, the CLI's path) gives exactly the video of generate_flf2v
// with every model loaded at once: same tokens, noise from the seed, same stages in the same order.
TEST(FLF2VStaged, StagedRunEqualsLoadedModels) {
    std::shared_ptr<Backend> be = make_cpu_backend(2);
    const T2VModelParts m = demo_flf2v_model_parts();
    T2VOptions opt;
    opt.width = 48;  // max_area 48·48 with 40×30 pictures → 48×32 video
    opt.height = 48;
    opt.frame_num = 5;
    opt.sample_steps = 2;
    const std::vector<float> a = randn(3 * 30 * 40, 5, 0.5f), b = randn(3 * 30 * 40, 6, 0.5f);
    Tensor first = ops::from_host(*be, DType::F32, {3, 30, 40}, a.data());
    Tensor last = ops::from_host(*be, DType::F32, {3, 30, 40}, b.data());
    const std::string prompt = "a bird takes off", neg = "blurry";
    const I2VStagedResult staged = run_flf2v_staged(m, be, prompt, neg, first, last, 17, opt);
    EXPECT_EQ(staged.size.w, 48);
    EXPECT_EQ(staged.size.h, 32);
    EXPECT_EQ(staged.video.shape(), (Shape{3, 5, 32, 48}));

    text::T5Tokenizer tok(m.tokenizer, m.dit_config.text_len);
    T5Encoder t5 = T5Encoder::load(m.t5_weights(), *be);
    ClipVisionEncoder clip(m.clip_config, m.clip_weights(), *be);
    DitModel dit(m.dit_config, m.dit_weights(), *be);
    auto vae = WanVae::load(m.vae_weights(), m.vae_config, be);
    const I2VLatentShape shape = flf2v_latent_shape(first.shape(), last.shape(), opt, m.dit_config, m.vae_config);
    const I2VResult loaded =
        generate_flf2v(t5, clip, dit, *vae, tok.tokenize(prompt).real_ids(), tok.tokenize(neg).real_ids(), first, last,
                       t2v_noise(*be, shape.latent, 17), opt);
    EXPECT_EQ(compare(staged.video, to_f64(loaded.video)).max_abs, 0.0);

    // Checked before any weights load: a last frame of another size, and the i2v runner on this model.
    Tensor wide = ops::from_host(*be, DType::F32, {3, 30, 39}, a.data());
    expect_error([&] { run_flf2v_staged(m, be, prompt, neg, first, wide, 17, opt); },
                 {"[flf2v]", "resize the last frame"});
    expect_error([&] { run_i2v_staged(m, be, prompt, neg, first, 17, opt); }, {"[i2v]", "flf2v"});
}

// The FLF2V release's widths are recognised as flf2v-14B (model_folder's kind of a folder).
TEST(FLF2VFolder, OfficialKind) {
    EXPECT_EQ(official_kind(DitConfig::preset("flf2v-14B")), "flf2v-14B");
    DitConfig two = DitConfig::preset("flf2v-14B");
    two.num_layers = 2;
    EXPECT_EQ(describe_kind(two), "flf2v-14B (2 of 40 blocks)");
    EXPECT_EQ(official_kind(DitConfig::preset("i2v-14B")), "i2v-14B");
}

}  // namespace wanrt::test
