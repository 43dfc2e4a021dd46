// Wan2.2 TI2V-5B beyond the official folder (test_generate_moe.cpp has that): the built-in TI2V demo
// model (`wanrt generate --task ti2v-5B` without --ckpt_dir) in both modes, with the i2v mode's
// checkable property — the first latent frame is the picture's latent after every step, so the
// video's first frame is exactly clamp(VAE.decode(VAE.encode(picture)))[frame 0], whatever the seed
// or prompt; and the bad-input table of TI2V folders. The picture is a one-frame .y4m, so the test
// runs in builds without FFmpeg.
#include <algorithm>
#include <fstream>

#include "ops/clamp.h"
#include "pipeline/demo.h"
#include "pipeline/ti2v_staged.h"
#include "test_util.h"
#include "video/video_writer.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

const char* kSmall = " --size 64*64 --frame_num 5 --sample_steps 3 --threads 2 --device cpu";

// Frame i of a .y4m wanrt wrote (C444: "FRAME\n" + three w·h planes per frame, after the header).
std::string y4m_frame(const std::string& data, int64_t i, int64_t frames, int64_t w, int64_t h) {
    const size_t fs = 6 + 3 * size_t(w * h);
    if (data.size() < size_t(frames) * fs) return "";
    return data.substr(data.size() - size_t(frames - i) * fs, fs);
}

class Ti2vDemo : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/wanrt_ti2v_XXXXXX";
        root_ = mkdtemp(tmpl);
        auto be = make_cpu_backend(1);
        // Two 60×40 (w×h) pictures as one-frame .y4m files.
        write_video(pic(1), randn_tensor(*be, {3, 1, 40, 60}, 7, 0.5f));
        write_video(pic(2), randn_tensor(*be, {3, 1, 40, 60}, 8, 0.5f));
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    static std::string pic(int i) { return (root_ / ("pic" + std::to_string(i) + ".y4m")).string(); }
    static fs::path root_;
};
fs::path Ti2vDemo::root_;

}  // namespace

TEST_F(Ti2vDemo, TextToVideoRunsWithoutFolder) {
    const fs::path a = root_ / "t2v_a.y4m", b = root_ / "t2v_b.y4m";
    CliRun r = run_cli("generate --task ti2v-5B" + std::string(kSmall) + " --base_seed 3 --save_file " + a.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("built-in demo ti2v-5B model"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tiny Wan2.2 T5/ti2v-5B DiT/VAE"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("task ti2v-5B-demo"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("encode image"), std::string::npos) << "t2v mode encodes no picture\n" << r.out;
    const std::string va = read_file(a);
    EXPECT_EQ(va.size(), y4m_size(64, 64, 5));
    EXPECT_EQ(va.rfind("YUV4MPEG2 W64 H64 F24:1", 0), 0u) << "TI2V-5B's sample_fps is 24";
    ASSERT_EQ(run_cli("generate --task ti2v-5B" + std::string(kSmall) + " --base_seed 4 --save_file " + b.string()).code, 0);
    EXPECT_FALSE(va == read_file(b)) << "another seed gave the same video";
    // The demo's defaults (256*256, 17 frames, 8 steps) are what runs without --size / --frame_num.
    r = run_cli("generate --task ti2v-5B --sample_steps 1 --threads 2 --device cpu --save_file " +
                (root_ / "default.y4m").string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(read_file(root_ / "default.y4m").size(), y4m_size(256, 256, 17));
}

// The i2v mode: the first video frame depends on the picture only (not on the seed or the prompt),
// the later frames on all of them.
TEST_F(Ti2vDemo, ImageToVideoFirstFrameFollowsThePicture) {
    auto run = [&](int picture, int seed, const std::string& prompt, const std::string& name) {
        const fs::path out = root_ / name;
        CliRun r = run_cli("generate --task ti2v-5B --image " + pic(picture) + kSmall + " --base_seed " +
                           std::to_string(seed) + " --prompt '" + prompt + "' --save_file " + out.string());
        EXPECT_EQ(r.code, 0) << r.out;
        if (picture == 1 && seed == 5) {
            EXPECT_NE(r.out.find("(60x40) in max_area 64*64 -> video 64x64 (resized, centre-cropped)"),
                      std::string::npos)
                << r.out;
            EXPECT_NE(r.out.find("encode image (VAE)"), std::string::npos) << r.out;
            EXPECT_EQ(r.out.find("CLIP"), std::string::npos) << "TI2V has no CLIP\n" << r.out;
        }
        return read_file(out);
    };
    const std::string a = run(1, 5, "a cat", "i2v_a.y4m"), b = run(1, 6, "a cat", "i2v_b.y4m");
    const std::string c = run(1, 5, "a dog on a bike", "i2v_c.y4m"), d = run(2, 5, "a cat", "i2v_d.y4m");
    ASSERT_EQ(a.size(), y4m_size(64, 64, 5));
    ASSERT_EQ(d.size(), a.size());
    auto frame = [](const std::string& v, int64_t i) { return y4m_frame(v, i, 5, 64, 64); };
    EXPECT_TRUE(frame(a, 0) == frame(b, 0)) << "the seed changed the image's frame";
    EXPECT_TRUE(frame(a, 0) == frame(c, 0)) << "the prompt changed the image's frame";
    EXPECT_FALSE(frame(a, 0) == frame(d, 0)) << "another picture gave the same first frame";
    EXPECT_FALSE(frame(a, 4) == frame(b, 4)) << "the seed changed nothing after the first frame";
    EXPECT_FALSE(frame(a, 4) == frame(c, 4)) << "the prompt changed nothing after the first frame";
}

// The same property in the library, exactly: frame 0 of the generated video equals the Wan2.2 VAE's
// round trip of the resized, cropped picture (the causal decoder's first chunk sees latent frame 0 only).
TEST_F(Ti2vDemo, FirstFrameIsTheVaeRoundTripOfThePicture) {
    std::shared_ptr<Backend> be = make_cpu_backend(2);
    const T2VModelParts m = demo_ti2v_model_parts();
    ASSERT_TRUE(m.ti2v());
    EXPECT_EQ(m.dit_config.in_dim, 48);
    EXPECT_EQ(m.vae22_config.z_dim, 48);
    const Rgb24Video p = read_image(pic(1));
    const TI2VImage img{p.rgb.data(), p.height, p.width};
    T2VOptions opt;
    opt.width = opt.height = 64;
    opt.frame_num = 5;
    opt.sample_steps = 2;
    const TI2VStagedResult r = run_ti2v_staged(m, be, "a cat", kWanDefaultNegPrompt, img, 11, opt);
    ASSERT_EQ(r.video.shape(), (Shape{3, 5, 64, 64}));
    EXPECT_EQ(r.shape.latent, (Shape{48, 2, 4, 4}));
    auto vae = Vae22Model::load(m.vae_weights(), m.vae22_config, be);
    const Tensor z = vae->encode(ti2v_image_input(*be, img.rgb, img.height, img.width, r.shape.image));
    const Tensor round_trip = ops::clamp(vae->decode(z), -1.0f, 1.0f);  // [3, 1, 64, 64]
    const std::vector<double> want = to_f64(round_trip), got = to_f64(ops::contiguous(r.video.slice(1, 0, 1)));
    EXPECT_EQ(got, want) << "the first frame is not the picture's own VAE round trip";
    const Err later = compare(to_f64(ops::contiguous(r.video.slice(1, 1, 2))), want);
    EXPECT_GT(later.max_abs, 1e-3) << "frame 1 should move away from the picture (random weights)";
    // Text-to-video mode of the same model: the first frame is no longer the picture's.
    const TI2VStagedResult t = run_ti2v_staged(m, be, "a cat", kWanDefaultNegPrompt, TI2VImage{}, 11, opt);
    EXPECT_GT(compare(to_f64(ops::contiguous(t.video.slice(1, 0, 1))), want).max_abs, 1e-3);
}

}  // namespace wanrt::test

namespace wanrt::test {
// --vae_tile with ti2v-5B: the Wan2.2 VAE needs multiples of 16 (40 passes the Wan2.1 check of 8 and
// must still fail before any work, one line); 32:16 on 64×64 tiles the decode, so the video has the
// same size but differs from the untiled one.
TEST_F(Ti2vDemo, VaeTileFlag) {
    const fs::path a = root_ / "tile_off.y4m", b = root_ / "tile_on.y4m";
    CliRun bad = run_cli("generate --task ti2v-5B" + std::string(kSmall) + " --vae_tile 40 --save_file " + b.string());
    EXPECT_EQ(bad.code, 1) << bad.out;
    EXPECT_NE(bad.out.find("--vae_tile 40"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("multiple of 16"), std::string::npos) << bad.out;
    EXPECT_EQ(std::count(bad.out.begin(), bad.out.end(), '\n'), 1) << "one line, before any work\n" << bad.out;
    EXPECT_FALSE(fs::exists(b));
    ASSERT_EQ(
        run_cli("generate --task ti2v-5B" + std::string(kSmall) + " --base_seed 3 --save_file " + a.string()).code, 0);
    CliRun r = run_cli("generate --task ti2v-5B" + std::string(kSmall) +
                       " --base_seed 3 --vae_tile 32:16 --save_file " + b.string());
    ASSERT_EQ(r.code, 0) << r.out;
    const std::string va = read_file(a), vb = read_file(b);
    EXPECT_EQ(va.size(), vb.size());
    EXPECT_NE(va, vb);
}
}  // namespace wanrt::test
