// `wanrt generate` end to end: a tiny synthetic model folder in the official layout (written by
// `wanrt synth --model demo --full_folder`), an mp4 checked with ffprobe (frames 4n+1, size, 16 fps),
// bit-identical output for the same seed, the demo model (no --ckpt_dir), `wanrt info`, and the
// bad-input table: one line, exit 1, no output file left behind.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "io/pth.h"
#include "models/dit.h"
#include "test_util.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

struct CliRun {
    int code;
    std::string out;  // stdout and stderr
};

CliRun sh(const std::string& cmd) {
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    CliRun r{-1, ""};
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

CliRun wanrt(const std::string& args) { return sh(std::string(WANRT_BINARY) + " " + args); }

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A small, fast generation on the folder: 64×48, 9 frames, 2 steps, 2 threads.
const char* kSmall = " --size 64*48 --frame_num 9 --sample_steps 2 --threads 2 --device cpu";

class Generate : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/wanrt_gen_XXXXXX";
        root_ = mkdtemp(tmpl);
        folder_ = (root_ / "Wan2.1-T2V-tiny").string();
        CliRun s = wanrt("synth --model demo --full_folder --out " + folder_);
        ASSERT_EQ(s.code, 0) << s.out;
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    static fs::path root_;
    static std::string folder_;
};
fs::path Generate::root_;
std::string Generate::folder_;

}  // namespace

TEST_F(Generate, OfficialLayoutFolderToMp4) {
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth",
                          "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model"})
        EXPECT_TRUE(fs::exists(fs::path(folder_) / f)) << f;
    const std::string out = (root_ / "a.mp4").string();
    CliRun r = wanrt("generate --ckpt_dir " + folder_ + kSmall + " --base_seed 7 --prompt 'a cat' --save_file " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("peak memory"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("denoise step 2/2"), std::string::npos) << "plain progress lines when not a terminal\n" << r.out;
    CliRun p = sh("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                  "stream=codec_name,width,height,r_frame_rate,nb_read_frames -of default=nw=1 " + out);
    ASSERT_EQ(p.code, 0) << p.out;
    EXPECT_NE(p.out.find("codec_name=h264"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("width=64"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("height=48"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("r_frame_rate=16/1"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("nb_read_frames=9"), std::string::npos) << p.out;
}

TEST_F(Generate, SameSeedGivesIdenticalFrames) {
    const fs::path a = root_ / "s1.y4m", b = root_ / "s2.y4m", c = root_ / "s3.y4m";
    for (const fs::path& p : {a, b})
        ASSERT_EQ(wanrt("generate --ckpt_dir " + folder_ + kSmall + " --base_seed 11 --save_file " + p.string()).code, 0);
    ASSERT_EQ(wanrt("generate --ckpt_dir " + folder_ + kSmall + " --base_seed 12 --save_file " + c.string()).code, 0);
    const std::string ya = read_file(a), yb = read_file(b), yc = read_file(c);
    // y4m: header + 9 × ("FRAME\n" + 3 planes of 64·48 bytes).
    EXPECT_EQ(ya.size(), std::string("YUV4MPEG2 W64 H48 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n").size() +
                             9 * (6 + 3 * 64 * 48));
    EXPECT_TRUE(ya == yb) << "same seed, different frames";
    EXPECT_FALSE(ya == yc) << "different seeds gave the same video";
}

TEST_F(Generate, SafetensorsVariantsOfVaeAndT5GiveTheSameVideo) {
    // The folder with Wan2.1_VAE.safetensors and models_t5_umt5-xxl-enc-bf16.safetensors (same
    // tensors as the .pth files) instead of the .pth files must give the same frames.
    const fs::path st = root_ / "st";
    fs::create_directories(st / "google" / "umt5-xxl");
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors", "google/umt5-xxl/spiece.model"})
        fs::copy_file(fs::path(folder_) / f, st / f);
    for (const char* stem : {"Wan2.1_VAE", "models_t5_umt5-xxl-enc-bf16"}) {
        auto src = open_pth((fs::path(folder_) / (std::string(stem) + ".pth")).string());
        std::vector<TensorToWrite> tw;
        for (const std::string& n : src->names()) {
            const StoredTensor* t = src->find(n);
            tw.push_back({n, t->dtype, t->shape, t->data});
        }
        write_safetensors((st / (std::string(stem) + ".safetensors")).string(), tw);
    }
    const fs::path a = root_ / "pth.y4m", b = root_ / "st.y4m";
    CliRun ra = wanrt("generate --ckpt_dir " + folder_ + kSmall + " --base_seed 5 --save_file " + a.string());
    CliRun rb = wanrt("generate --ckpt_dir " + st.string() + kSmall + " --base_seed 5 --save_file " + b.string());
    ASSERT_EQ(ra.code, 0) << ra.out;
    ASSERT_EQ(rb.code, 0) << rb.out;
    EXPECT_TRUE(read_file(a) == read_file(b));
}

TEST_F(Generate, InfoDescribesTheFolder) {
    CliRun r = wanrt("info " + folder_);
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* s : {"custom t2v (dim 256, 2 blocks)", "Wan2.1_VAE.pth", "bf16 x22", "dim 8, z_dim 16", "complete"})
        EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
    EXPECT_EQ(r.out.find("MISSING"), std::string::npos) << r.out;

    fs::create_directories(root_ / "partial");
    fs::copy_file(fs::path(folder_) / "config.json", root_ / "partial" / "config.json");
    r = wanrt("info " + (root_ / "partial").string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("incomplete: 4 part(s) missing"), std::string::npos) << r.out;
}

TEST_F(Generate, DemoModelWritesPlayableMp4) {
    const std::string out = (root_ / "demo.mp4").string();
    CliRun r = wanrt("generate --size 64*64 --frame_num 5 --sample_steps 2 --threads 2 --device cpu --save_file " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("built-in demo model"), std::string::npos) << r.out;
    CliRun p = sh("ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=width,height,nb_read_frames "
                  "-of default=nw=1 " + out);
    ASSERT_EQ(p.code, 0) << p.out;
    EXPECT_NE(p.out.find("width=64"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("nb_read_frames=5"), std::string::npos) << p.out;
}

TEST_F(Generate, BadInputIsOneLineExitOneNoFile) {
    // A folder of the official 1.3B kind (its config.json) with the tiny folder's other files: the
    // task check comes before any weights are read.
    const fs::path f13 = root_ / "Wan2.1-T2V-1.3B";
    fs::create_directories(f13 / "google" / "umt5-xxl");
    for (const char* f : {"diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth",
                          "google/umt5-xxl/spiece.model"})
        fs::copy_file(fs::path(folder_) / f, f13 / f, fs::copy_options::overwrite_existing);
    std::ofstream(f13 / "config.json") << DitConfig::preset("t2v-1.3B").to_json();
    fs::create_directories(root_ / "empty");

    const std::string out = (root_ / "bad.mp4").string();
    const std::string base = "generate --ckpt_dir " + folder_ + kSmall;
    struct Case {
        std::string args, expect;
    };
    const std::vector<Case> cases = {
        {base + " --frame_num 8 --save_file " + out, "4n+1"},
        {base + " --size 100*64 --save_file " + out, "multiples of 16"},
        {base + " --size 64x48 --save_file " + out, "WIDTH*HEIGHT"},
        {base + " --task t2v-7B --save_file " + out, "unknown --task"},
        {base + " --task i2v-14B --save_file " + out, "not yet supported"},
        {base + " --sample_steps 0 --save_file " + out, "--sample_steps 0"},
        {base + " --sample_steps -3 --save_file " + out, "at least 1"},
        {base + " --sample_solver ddim --save_file " + out, "unknown --sample_solver"},
        {base + " --save_file " + (root_ / "no" / "such" / "dir" / "x.mp4").string(), "does not exist"},
        {base + " --save_file " + (root_ / "x.avi").string(), "[video]"},
        {base + " --save_file " + root_.string(), "is a folder"},
        {"generate --ckpt_dir " + (root_ / "empty").string() + kSmall + " --save_file " + out,
         "missing DiT config (config.json); DiT weights"},
        {"generate --ckpt_dir " + (root_ / "nowhere").string() + kSmall + " --save_file " + out, "does not exist"},
        {"generate --ckpt_dir " + f13.string() + " --task t2v-14B" + kSmall + " --save_file " + out,
         "needs a t2v-14B model but"},
        {base + " --task t2v-1.3B --save_file " + out, "holds custom t2v"},
        {"generate --task t2v-1.3B --save_file " + out, "needs its model folder"},
        {"generate --ckpt_dir " + folder_ + " --size 64*48 --frame_num 9 --device tpu --save_file " + out, "unknown device"},
    };
    for (const Case& c : cases) {
        CliRun r = wanrt(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(out)) << c.args;
        EXPECT_FALSE(fs::exists(out + ".tmp")) << c.args;
    }
    // The missing-files error names every missing part at once.
    CliRun r = wanrt("generate --ckpt_dir " + (root_ / "empty").string() + " --save_file " + out);
    for (const char* part : {"config.json", "diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth",
                             "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model"})
        EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
}

}  // namespace wanrt::test
