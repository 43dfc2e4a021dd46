// `wanrt generate` for image-to-video end to end: the built-in i2v demo (no --ckpt_dir), a tiny
// synthetic I2V folder in the official layout (`wanrt synth --model demo-i2v --full_folder`, CLIP .pth
// included), pictures as PNG / JPEG / WebP made with the ffmpeg tool, grayscale and alpha handling,
// the official size arithmetic seen in the output size, and the bad-input table: one line, exit 1,
// no output file left behind.
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "models/synth.h"
#include "pipeline/model_folder.h"
#include "test_util.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

// Small and fast: max_area 64·64, 5 frames, 2 steps. A 90×60 picture → 64×48 video (latent 8×6).
const char* kSmall = " --size 64*64 --frame_num 5 --sample_steps 2 --threads 2 --device cpu";

class GenerateI2V : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/wanrt_i2v_XXXXXX";
        root_ = mkdtemp(tmpl);
        i2v_folder_ = (root_ / "Wan2.1-I2V-tiny").string();
        t2v_folder_ = (root_ / "Wan2.1-T2V-tiny").string();
        CliRun s = run_cli("synth --model demo-i2v --full_folder --out " + i2v_folder_);
        ASSERT_EQ(s.code, 0) << s.out;
        s = run_cli("synth --model demo --full_folder --out " + t2v_folder_);
        ASSERT_EQ(s.code, 0) << s.out;
        // The pictures: ffmpeg's test pattern, 90×60 (w×h), in every format the task reads.
        const std::string src = (root_ / "pic.png").string();
        auto ff = [](const std::string& args) {
            CliRun r = run_shell("ffmpeg -v error -y " + args);
            ASSERT_EQ(r.code, 0) << args << "\n" << r.out;
        };
        ff("-f lavfi -i testsrc=size=90x60:rate=1 -frames:v 1 -pix_fmt rgb24 " + src);
        ff("-i " + src + " -q:v 2 " + (root_ / "pic.jpg").string());
        ff("-i " + src + " -c:v libwebp -lossless 1 " + (root_ / "pic.webp").string());
        ff("-i " + src + " -pix_fmt gray " + (root_ / "gray.png").string());
        ff("-i " + (root_ / "gray.png").string() + " -pix_fmt rgb24 " + (root_ / "gray_rgb.png").string());
        // Same RGB as pic.png with a half-transparent alpha: the alpha must be dropped, not blended.
        ff("-i " + src + " -vf format=rgba,colorchannelmixer=aa=0.5 -pix_fmt rgba " + (root_ / "alpha.png").string());
        ff("-f lavfi -i testsrc=size=90x60:rate=4 -frames:v 3 -c:v mpeg4 " + (root_ / "clip.mp4").string());
        std::ofstream(root_ / "corrupt.png") << "\x89PNG\r\n\x1a\n this is not a picture";
        std::ofstream(root_ / "empty.png");
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    static std::string pic(const char* name) { return (root_ / name).string(); }
    static fs::path root_;
    static std::string i2v_folder_, t2v_folder_;
};
fs::path GenerateI2V::root_;
std::string GenerateI2V::i2v_folder_, GenerateI2V::t2v_folder_;

}  // namespace

TEST_F(GenerateI2V, DemoModelRunsWithoutFolder) {
    const fs::path out = root_ / "demo.y4m";
    CliRun r = run_cli("generate --task i2v-14B --image " + pic("pic.png") + kSmall + " --base_seed 3 --save_file " +
                       out.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("built-in demo i2v model"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(90x60) in max_area 64*64 -> video 64x48"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("encode image"), std::string::npos) << r.out;
    EXPECT_EQ(read_file(out).size(), y4m_size(64, 48, 5));
    // --image alone picks the i2v demo too.
    const fs::path out2 = root_ / "demo2.y4m";
    r = run_cli("generate --image " + pic("pic.png") + kSmall + " --base_seed 3 --save_file " + out2.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(read_file(out) == read_file(out2));
}

TEST_F(GenerateI2V, FolderToMp4AndDeterminism) {
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth",
                          "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model",
                          "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"})
        EXPECT_TRUE(fs::exists(fs::path(i2v_folder_) / f)) << f;
    const std::string mp4 = (root_ / "f.mp4").string();
    CliRun r = run_cli("generate --ckpt_dir " + i2v_folder_ + " --image " + pic("pic.png") + kSmall +
                       " --prompt 'a cat' --base_seed 9 --save_file " + mp4);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("load CLIP"), std::string::npos) << r.out;
    CliRun p = run_shell("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                         "stream=width,height,nb_read_frames -of default=nw=1 " + mp4);
    ASSERT_EQ(p.code, 0) << p.out;
    EXPECT_NE(p.out.find("width=64"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("height=48"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("nb_read_frames=5"), std::string::npos) << p.out;

    const fs::path a = root_ / "d1.y4m", b = root_ / "d2.y4m", c = root_ / "d3.y4m";
    for (const fs::path& q : {a, b})
        ASSERT_EQ(run_cli("generate --ckpt_dir " + i2v_folder_ + " --image " + pic("pic.png") + kSmall +
                          " --base_seed 9 --save_file " + q.string()).code, 0);
    ASSERT_EQ(run_cli("generate --ckpt_dir " + i2v_folder_ + " --image " + pic("pic.jpg") + kSmall +
                      " --base_seed 9 --save_file " + c.string()).code, 0);
    EXPECT_TRUE(read_file(a) == read_file(b)) << "same seed and picture, different frames";
    EXPECT_FALSE(read_file(a) == read_file(c)) << "another picture (JPEG-compressed) gave the same video";
}

TEST_F(GenerateI2V, PictureFormatsGrayscaleAndAlpha) {
    auto run = [&](const char* name) {
        const fs::path out = root_ / (std::string(name) + ".y4m");
        CliRun r = run_cli("generate --image " + pic(name) + kSmall + " --base_seed 4 --save_file " + out.string());
        EXPECT_EQ(r.code, 0) << name << "\n" << r.out;
        return read_file(out);
    };
    const std::string png = run("pic.png");
    EXPECT_EQ(png.size(), y4m_size(64, 48, 5));
    EXPECT_TRUE(run("pic.webp") == png) << "lossless WebP must give the PNG's video";
    EXPECT_EQ(run("pic.jpg").size(), png.size());
    EXPECT_TRUE(run("alpha.png") == png) << "the alpha channel must be dropped";
    EXPECT_TRUE(run("gray.png") == run("gray_rgb.png")) << "grayscale must be expanded to RGB";
}

TEST_F(GenerateI2V, BadInputIsOneLineExitOneNoFile) {
    const std::string out = (root_ / "bad.mp4").string();
    const std::string img = " --image " + pic("pic.png");
    const std::string i2v = "generate --ckpt_dir " + i2v_folder_ + kSmall;
    const std::string t2v = "generate --ckpt_dir " + t2v_folder_ + kSmall;
    struct Case {
        std::string args, expect;
    };
    const std::vector<Case> cases = {
        {i2v + " --image " + pic("nothere.png") + " --save_file " + out, "no such file"},
        {i2v + " --image " + pic("corrupt.png") + " --save_file " + out, "cannot decode image"},
        {i2v + " --image " + pic("empty.png") + " --save_file " + out, "cannot decode image"},
        {i2v + " --image " + root_.string() + " --save_file " + out, "not a file"},
        {i2v + " --image " + pic("clip.mp4") + " --save_file " + out, "3 frames"},
        {i2v + " --save_file " + out, "pass --image"},
        {i2v + img + " --task t2v-14B --save_file " + out, "--image is for image-to-video"},
        {i2v + " --task t2v-14B --save_file " + out, "needs a t2v-14B model but"},
        {i2v + img + " --task i2v-14B --save_file " + out, "needs a i2v-14B model but"},  // custom widths
        {i2v + img + " --frame_num 8 --save_file " + out, "4n+1"},
        {i2v + img + " --size 16*16 --save_file " + out, "too small"},
        {"generate --ckpt_dir " + i2v_folder_ + img + " --causal --size 64*64 --save_file " + out, "no causal mode"},
        {t2v + img + " --save_file " + out, "--image needs an image-to-video model"},
        {t2v + img + " --task i2v-14B --save_file " + out, "needs a i2v-14B model but"},
        {t2v + " --task i2v-14B --save_file " + out, "needs a i2v-14B model but"},
        {"generate --task i2v-14B" + std::string(kSmall) + " --save_file " + out, "pass --image"},
        {"generate --task t2v-14B" + img + kSmall + " --save_file " + out, "--image is for image-to-video"},
        {"generate" + img + " --frame_num 6 --size 64*64 --save_file " + out, "4n+1"},
    };
    for (const Case& c : cases) {
        CliRun r = run_cli(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(out)) << c.args;
        EXPECT_FALSE(fs::exists(out + ".tmp")) << c.args;
    }
    // A picture without read permission (root reads anything, so only as another user).
    if (geteuid() != 0) {
        const fs::path locked = root_ / "locked.png";
        fs::copy_file(pic("pic.png"), locked, fs::copy_options::overwrite_existing);
        fs::permissions(locked, fs::perms::none);
        CliRun r = run_cli(i2v + " --image " + locked.string() + " --save_file " + out);
        EXPECT_EQ(r.code, 1) << r.out;
        EXPECT_NE(r.out.find("Permission denied"), std::string::npos) << r.out;
        EXPECT_FALSE(fs::exists(out));
    }
    // An I2V folder without its CLIP: the missing-parts error names it.
    const fs::path part = root_ / "noclip";
    fs::create_directories(part);
    fs::copy(i2v_folder_, part, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    fs::remove(part / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth");
    CliRun r = run_cli("generate --ckpt_dir " + part.string() + img + kSmall + " --save_file " + out);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("CLIP image encoder (models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"),
              std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out));
}

// The CLIP config of a folder is read from its tensors: every field round-trips, and the released
// ViT-H/14's table has its known size (632 M visual parameters with the unused last block and head).
TEST(ClipFolderConfig, FromWeightsRoundTrips) {
    ClipVisionConfig c;
    c.dim = 160;  // head dim 80 → 2 heads
    c.heads = 2;
    c.patch_size = 7;
    c.image_size = 56;
    c.layers = 3;
    c.mlp_dim = 40;
    auto src = synth_clip_memory(c, DType::F16, 1);
    const ClipVisionConfig r = clip_config_from_weights(*src);
    EXPECT_EQ(r.dim, c.dim);
    EXPECT_EQ(r.heads, c.heads);
    EXPECT_EQ(r.patch_size, c.patch_size);
    EXPECT_EQ(r.image_size, c.image_size);
    EXPECT_EQ(r.layers, c.layers);
    EXPECT_EQ(r.mlp_dim, c.mlp_dim);
    auto be = make_cpu_backend(1);
    ClipVisionEncoder enc(r, src, *be);  // the loader takes the written names and shapes
    Tensor img = randn_tensor(*be, {1, 3, 30, 41}, 3);
    EXPECT_EQ(enc.encode(img).shape(), (Shape{1, 65, 160}));

    int64_t n = 0;
    for (const ParamSpec& p : clip_param_table(ClipVisionConfig::vit_h_14())) n += shape_numel(p.shape);
    EXPECT_NEAR(double(n), 632.08e6, 0.5e6);
    MemoryTensorSource other("a DiT file");
    other.add_uninitialized("patch_embedding.weight", DType::F32, {4, 16, 1, 2, 2});
    expect_error([&] { clip_config_from_weights(other); }, {"[model]", "a DiT file", "not an open-clip ViT"});
}

}  // namespace wanrt::test
