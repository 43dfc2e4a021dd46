// `wanrt generate` end to end: a tiny synthetic model folder in the official layout (written by
// `wanrt synth --model demo --full_folder`), an mp4 checked with ffprobe (frames 4n+1, size, 16 fps),
// bit-identical output for the same seed, the demo model (no --ckpt_dir), `wanrt info`, and the
// bad-input table: one line, exit 1, no output file left behind. `generate --causal` on the same
// folder: block progress, frame count and size, determinism per seed, a generator checkpoint with
// CausVid's key prefix giving the folder's video, and its own bad-input table.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "io/pth.h"
#include "io/pth_writer.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "pipeline/model_folder.h"
#include "test_util.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

CliRun sh(const std::string& cmd) { return run_shell(cmd); }

CliRun wanrt(const std::string& args) { return run_cli(args); }

// A small, fast generation on the folder: 64×48, 9 frames, 2 steps, 2 threads.
const char* kSmall = " --size 64*48 --frame_num 9 --sample_steps 2 --threads 2 --device cpu";

// Causal: 21 frames → 6 latent frames = 2 blocks of 3 (default step list 1000,757,522).
const char* kCausal = " --causal --size 64*48 --frame_num 21 --threads 2 --device cpu";

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
    for (const char* s : {"custom t2v (dim 256, 4 blocks)", "Wan2.1_VAE.pth", "bf16 x22", "dim 8, z_dim 16", "complete"})
        EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
    EXPECT_EQ(r.out.find("MISSING"), std::string::npos) << r.out;

    fs::create_directories(root_ / "partial");
    fs::copy_file(fs::path(folder_) / "config.json", root_ / "partial" / "config.json");
    r = wanrt("info " + (root_ / "partial").string());
    // A folder that cannot run is exit 1 with the report, then one error line naming the first problem.
    ASSERT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("cannot run: 4 problem(s), 4 part(s) missing"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("wanrt: [info] " + (root_ / "partial").string() + " cannot run: missing DiT weights"),
              std::string::npos)
        << r.out;
}

// A ComfyUI-style folder: the DiT as one quantized .gguf (`wanrt convert --type q4_k_m`: Q4_K and
// Q6_K linears, F16/F32 elsewhere) beside the official T5, VAE and tokenizer, no config.json (inferred
// from the GGUF's shapes: the demo DiT has heads of 128). `info` reports the GGUF and calls the folder
// complete; `generate` runs on it, and its frames are those of the folder's DiT dequantized from that
// GGUF to f32 (the CPU keeps the blocks and multiplies their exact decoded values by x rounded to
// int8 per 32, docs/perf.md session 9: still at most a rounding difference of the 8-bit pixels, max
// |Δ| 1, mean 0.057 measured). A GGUF of another architecture is one line, exit 1.
TEST_F(Generate, GgufDitFolder) {
    const fs::path q = root_ / "gguf", deq = root_ / "gguf_f32";
    for (const fs::path& dir : {q, deq}) {
        fs::create_directories(dir / "google" / "umt5-xxl");
        for (const char* f : {"Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model"})
            fs::copy_file(fs::path(folder_) / f, dir / f, fs::copy_options::overwrite_existing);
    }
    const std::string gguf = (q / "wan-demo-Q4_K_M.gguf").string();
    CliRun c = wanrt("convert " + folder_ + " " + gguf + " --type q4_k_m");
    ASSERT_EQ(c.code, 0) << c.out;
    CliRun cf = wanrt("convert " + gguf + " " + (deq / "diffusion_pytorch_model.safetensors").string() + " --type f32");
    ASSERT_EQ(cf.code, 0) << cf.out;
    fs::copy_file(fs::path(folder_) / "config.json", deq / "config.json");

    CliRun info = wanrt("info " + q.string());
    ASSERT_EQ(info.code, 0) << info.out;
    for (const char* s : {"custom t2v (dim 256, 4 blocks)", "inferred from the GGUF", "wan-demo-Q4_K_M.gguf", "GGUF v3",
                          "Q4_K x", "Q6_K x", "bits/weight", "complete"})
        EXPECT_NE(info.out.find(s), std::string::npos) << s << "\n" << info.out;
    EXPECT_EQ(info.out.find("MISSING"), std::string::npos) << info.out;
    CliRun info_file = wanrt("info " + gguf);
    ASSERT_EQ(info_file.code, 0) << info_file.out;
    EXPECT_NE(info_file.out.find("complete: a loadable Wan DiT"), std::string::npos) << info_file.out;

    const fs::path a = root_ / "gguf.y4m", b = root_ / "gguf_f32.y4m";
    CliRun ra = wanrt("generate --ckpt_dir " + q.string() + kSmall + " --base_seed 3 --save_file " + a.string());
    ASSERT_EQ(ra.code, 0) << ra.out;
    CliRun rb = wanrt("generate --ckpt_dir " + deq.string() + kSmall + " --base_seed 3 --save_file " + b.string());
    ASSERT_EQ(rb.code, 0) << rb.out;
    const std::string ya = read_file(a), yb = read_file(b);
    ASSERT_EQ(ya.size(), yb.size());
    int max_diff = 0;
    double sum = 0;
    for (size_t i = 0; i < ya.size(); ++i) {
        const int dd = std::abs(int(uint8_t(ya[i])) - int(uint8_t(yb[i])));
        max_diff = std::max(max_diff, dd);
        sum += dd;
    }
    std::printf("  GGUF Q4_K_M folder vs its f32 dequantization: max |Δ| %d, mean |Δ| %.4f (8-bit)\n", max_diff,
                sum / double(ya.size()));
    EXPECT_LE(max_diff, 1);

    const fs::path bad = root_ / "gguf_bad";
    fs::create_directories(bad / "google" / "umt5-xxl");
    for (const char* f : {"Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model"})
        fs::copy_file(fs::path(folder_) / f, bad / f, fs::copy_options::overwrite_existing);
    fs::copy_file(fixture_path("gguf_types.gguf"), bad / "model.gguf");
    const std::string out = (root_ / "bad_gguf.mp4").string();
    CliRun r = wanrt("generate --ckpt_dir " + bad.string() + kSmall + " --save_file " + out);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("[gguf] " + (bad / "model.gguf").string()), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("not a Wan DiT"), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_FALSE(fs::exists(out));
    // Beside a Wan2.2 VAE without config.json the model kind is unknowable (TI2V-5B looks like t2v).
    const fs::path v22 = root_ / "gguf_vae22";
    fs::create_directories(v22 / "google" / "umt5-xxl");
    for (const char* f : {"models_t5_umt5-xxl-enc-bf16.pth", "google/umt5-xxl/spiece.model"})
        fs::copy_file(fs::path(folder_) / f, v22 / f);
    fs::copy_file(fs::path(folder_) / "Wan2.1_VAE.pth", v22 / "Wan2.2_VAE.pth");  // the name decides, not read
    fs::copy_file(gguf, v22 / "wan-demo-Q4_K_M.gguf");
    r = wanrt("generate --ckpt_dir " + v22.string() + kSmall + " --save_file " + out);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("config.json (model_type ti2v)"), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
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
        {base + " --task vace-14B --save_file " + out, "not yet supported"},
        {base + " --task i2v-14B --save_file " + out, "needs a i2v-14B model but"},
        {base + " --sample_steps 0 --save_file " + out, "--sample_steps: must be an integer in [1, 1000], got \"0\""},
        {base + " --sample_steps -3 --save_file " + out, "--sample_steps: must be an integer in [1, 1000]"},
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

TEST_F(Generate, CausalBlocksToMp4) {
    const std::string out = (root_ / "causal.mp4").string();
    CliRun r = wanrt("generate --ckpt_dir " + folder_ + kCausal + " --base_seed 7 --prompt 'a cat' --save_file " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* s : {"2 blocks of 3 latent frames", "steps 1000,757,522", "shift 8", "denoise block 1/2",
                          "denoise block 2/2", "(2 blocks,", "7 DiT calls", "peak memory"})
        EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
    CliRun p = sh("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                  "stream=codec_name,width,height,nb_read_frames -of default=nw=1 " + out);
    ASSERT_EQ(p.code, 0) << p.out;
    EXPECT_NE(p.out.find("width=64"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("height=48"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("nb_read_frames=21"), std::string::npos) << p.out;

    // Self-Forcing's settings (one frame per block, shift 5, warped steps, a rolling cache with a sink).
    const std::string sf = (root_ / "sf.mp4").string();
    r = wanrt("generate --ckpt_dir " + folder_ +
              " --causal --size 64*48 --frame_num 13 --threads 2 --device cpu --frames_per_block 1 --sample_shift 5 "
              "--warp_denoising_step --denoising_steps 1000,750,500,250 --cache_frames 3 --sink_frames 1 --save_file " + sf);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("denoise block 4/4"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(warped)"), std::string::npos) << r.out;
    p = sh("ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of default=nw=1 " + sf);
    EXPECT_NE(p.out.find("nb_read_frames=13"), std::string::npos) << p.out;
}

TEST_F(Generate, CausalSameSeedSameVideoAndGeneratorCheckpoint) {
    auto run = [&](const std::string& name, const std::string& extra) {
        const fs::path p = root_ / name;
        CliRun r = wanrt("generate --ckpt_dir " + folder_ + kCausal + extra + " --save_file " + p.string());
        EXPECT_EQ(r.code, 0) << extra << "\n" << r.out;
        return read_file(p);
    };
    const std::string a = run("c1.y4m", " --base_seed 11"), b = run("c2.y4m", " --base_seed 11"),
                      c = run("c3.y4m", " --base_seed 12");
    // y4m: header + 21 × ("FRAME\n" + 3 planes of 64·48 bytes).
    EXPECT_EQ(a.size(), std::string("YUV4MPEG2 W64 H48 F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n").size() +
                            21 * (6 + 3 * 64 * 48));
    EXPECT_TRUE(a == b) << "same seed, different frames";
    EXPECT_FALSE(a == c) << "different seeds gave the same video";
    EXPECT_TRUE(run("c4.y4m", " --base_seed 11 --denoising_steps 1000,757,522,0") == a) << "trailing 0 not dropped";
    EXPECT_FALSE(run("c5.y4m", " --base_seed 11 --denoising_steps 1000,500") == a);

    // The folder's DiT saved as CausVid's model.pt (keys under generator.model.) and as a safetensors
    // file with a "model." prefix: the same video as the folder's own weights.
    auto dit = open_weights_file((fs::path(folder_) / "diffusion_pytorch_model.safetensors").string());
    {
        PthWriter w((root_ / "model.pt").string());
        for (const std::string& n : dit->names()) {
            const StoredTensor* t = dit->find(n);
            w.add("generator.model." + n, t->dtype, t->shape, t->data);
        }
        w.finish();
        std::vector<TensorToWrite> tw;
        for (const std::string& n : dit->names()) {
            const StoredTensor* t = dit->find(n);
            tw.push_back({"model." + n, t->dtype, t->shape, t->data});
        }
        write_safetensors((root_ / "gen.safetensors").string(), tw);
    }
    EXPECT_TRUE(run("g1.y4m", " --base_seed 11 --generator " + (root_ / "model.pt").string()) == a);
    EXPECT_TRUE(run("g2.y4m", " --base_seed 11 --generator " + (root_ / "gen.safetensors").string()) == a);
}

TEST_F(Generate, CausalBadInputIsOneLineExitOneNoFile) {
    const std::string out = (root_ / "cbad.mp4").string();
    const std::string base = "generate --ckpt_dir " + folder_ + kCausal;
    const std::string plain = "generate --ckpt_dir " + folder_ + kSmall;
    struct Case {
        std::string args, expect;
    };
    const std::vector<Case> cases = {
        {base + " --frame_num 17 --save_file " + out, "use --frame_num 9 or 21"},
        {base + " --frame_num 5 --save_file " + out, "not a multiple of --frames_per_block 3; use --frame_num 9"},
        {base + " --frames_per_block 4 --save_file " + out, "use --frame_num 13 or 29"},
        {base + " --frames_per_block 0 --save_file " + out, "--frames_per_block: must be an integer in [1, 1024]"},
        {base + " --sample_guide_scale 3 --save_file " + out, "no classifier-free guidance"},
        {base + " --neg_prompt x --save_file " + out, "leave out --neg_prompt"},
        {base + " --sample_steps 4 --save_file " + out, "uses --denoising_steps"},
        {base + " --sample_solver euler --save_file " + out, "leave out --sample_solver"},
        {base + " --denoising_steps 1000,abc --save_file " + out, "bad --denoising_steps"},
        {base + " --denoising_steps 1000,1200 --save_file " + out, "outside [0, 1000]"},
        {base + " --denoising_steps '' --save_file " + out, "--denoising_steps is empty"},
        {base + " --warp_denoising_step --denoising_steps 757.5 --save_file " + out, "must be an integer"},
        {base + " --context_noise 2000 --save_file " + out, "--context_noise"},
        {base + " --cache_frames 4 --sink_frames 2 --save_file " + out, "cannot hold a block"},
        {base + " --sink_frames 1 --save_file " + out, "--sink_frames needs --cache_frames"},
        {base + " --generator " + (root_ / "none.pt").string() + " --save_file " + out, "is not a file"},
        {base + " --generator " + folder_ + "/Wan2.1_VAE.pth --save_file " + out, "holds no DiT"},
        {plain + " --frames_per_block 3 --save_file " + out, "is a --causal option"},
        {plain + " --denoising_steps 1000 --save_file " + out, "is a --causal option"},
        {plain + " --generator x.pt --save_file " + out, "is a --causal option"},
    };
    for (const Case& c : cases) {
        CliRun r = wanrt(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(out)) << c.args;
        EXPECT_FALSE(fs::exists(out + ".tmp")) << c.args;
    }
}

}  // namespace wanrt::test

namespace wanrt::test {
// --vae_tile: a bad value fails before any work, one line; a tiled decode (64×48 in 32-pixel tiles)
// writes a video of the same size that differs from the untiled one (the tiled path ran).
TEST_F(Generate, VaeTileFlag) {
    const std::string a = (root_ / "untiled.y4m").string(), b = (root_ / "tiled.y4m").string();
    CliRun bad = wanrt("generate --ckpt_dir " + folder_ + kSmall + " --vae_tile 30 --save_file " + b);
    EXPECT_EQ(bad.code, 1) << bad.out;
    EXPECT_NE(bad.out.find("--vae_tile"), std::string::npos) << bad.out;
    EXPECT_FALSE(fs::exists(b));
    ASSERT_EQ(wanrt("generate --ckpt_dir " + folder_ + kSmall + " --base_seed 3 --save_file " + a).code, 0);
    CliRun r = wanrt("generate --ckpt_dir " + folder_ + kSmall + " --base_seed 3 --vae_tile 32:16 --save_file " + b);
    ASSERT_EQ(r.code, 0) << r.out;
    const std::string va = read_file(a), vb = read_file(b);
    EXPECT_EQ(va.size(), vb.size());
    EXPECT_NE(va, vb);
}
}  // namespace wanrt::test
