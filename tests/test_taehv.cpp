// TAEHV (models/taehv.h) against taehv.safetensors: decode (and the raw decoder output before the
// clamp), encode, streaming = whole clip in any chunking, in both internal layouts (NCDHW and
// channels last), the weights from taehv_weights.pth (as
// taew2_1.pth ships) and from a safetensors copy, and the bad-input errors. Runs on the CPU and on
// WANRT_TEST_DEVICE (cuda: TF32 convolutions, a looser tolerance).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/pth.h"
#include "io/pth_writer.h"
#include "io/safetensors.h"
#include "models/taehv.h"
#include "ops/ops.h"
#include "test_util.h"
#include "video/video_writer.h"

using namespace wanrt;

namespace {

std::shared_ptr<Backend> backend() {
    static auto be = [] {
        auto d = test::test_device();
        return d ? d : make_cpu_backend();
    }();
    return be;
}
bool on_cpu() { return backend()->name() == "cpu"; }
// CPU: f32 against the float64 reference. CUDA: TF32 convolutions (10-bit mantissa inputs).
double tol() { return on_cpu() ? 1e-4 : 1e-2; }

std::shared_ptr<SafeTensorsFile> fixture() {
    static auto f = test::open_fixture("taehv.safetensors");
    return f;
}
std::shared_ptr<const Taehv> model() {
    static auto m = Taehv::load(open_pth(test::fixture_path("taehv_weights.pth")), backend());
    return m;
}

// Sample n of an NTCHW fixture tensor as [C, T, H, W] on the test backend.
Tensor sample_cthw(const std::string& name, int64_t n) {
    const StoredTensor& st = test::stored(*fixture(), name);
    const auto v = test::load_f64(*fixture(), name);
    const int64_t T = st.shape[1], C = st.shape[2], H = st.shape[3], W = st.shape[4], S = H * W;
    std::vector<float> out(size_t(T * C * S));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < S; ++i) out[size_t((c * T + t) * S + i)] = float(v[size_t(((n * T + t) * C + c) * S + i)]);
    return ops::from_host(*backend(), DType::F32, {C, T, H, W}, out.data());
}

// The reference values of sample n of an NTCHW fixture tensor, in [C, T, H, W] order.
std::vector<double> ref_cthw(const std::string& name, int64_t n) {
    const StoredTensor& st = test::stored(*fixture(), name);
    const auto v = test::load_f64(*fixture(), name);
    const int64_t T = st.shape[1], C = st.shape[2], S = st.shape[3] * st.shape[4];
    std::vector<double> out(size_t(T * C * S));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < S; ++i) out[size_t((c * T + t) * S + i)] = v[size_t(((n * T + t) * C + c) * S + i)];
    return out;
}

std::vector<double> host(const Tensor& t) {
    const auto f = ops::to_host_f32(t);
    return std::vector<double>(f.begin(), f.end());
}

int64_t batch() { return test::stored(*fixture(), "in.z").shape[0]; }

void expect_close(const Tensor& out, const std::vector<double>& ref, double tolerance, const std::string& what) {
    const auto e = test::compare(host(out), ref);
    EXPECT_LT(e.rel_l2, tolerance) << what << ": rel-L2 " << e.rel_l2 << ", max abs " << e.max_abs;
    std::printf("  %-34s rel-L2 %.3g  max abs %.3g\n", what.c_str(), e.rel_l2, e.max_abs);
}

TEST(Taehv, ConfigFromWeights) {
    const auto cfg = test::meta_json(*fixture(), "config");
    const TaehvConfig& c = model()->config();
    EXPECT_EQ(c.latent_channels, cfg.at("latent_channels").get<int64_t>());
    EXPECT_EQ(c.patch_size, cfg.at("patch_size").get<int64_t>());
    EXPECT_EQ(c.t_downscale(), cfg.at("t_downscale").get<int64_t>());
    EXPECT_EQ(c.t_upscale(), cfg.at("t_upscale").get<int64_t>());
    EXPECT_EQ(c.frames_to_trim(), cfg.at("frames_to_trim").get<int64_t>());
    EXPECT_EQ(c.space_scale(), cfg.at("space_scale").get<int64_t>());
}

TEST(Taehv, DecodeGolden) {
    for (int64_t n = 0; n < batch(); ++n) {
        const Tensor z = sample_cthw("in.z", n);
        const Tensor raw = model()->decode_raw(z);
        const Tensor y = model()->decode(z);
        const Shape& rs = test::stored(*fixture(), "mid.decoded_raw").shape;
        const Shape& ys = test::stored(*fixture(), "out.decoded").shape;
        ASSERT_EQ(raw.shape(), (Shape{rs[2], rs[1], rs[3], rs[4]}));
        ASSERT_EQ(y.shape(), (Shape{ys[2], ys[1], ys[3], ys[4]}));  // 4T − 3 frames
        expect_close(raw, ref_cthw("mid.decoded_raw", n), tol(), "decode raw, sample " + std::to_string(n));
        expect_close(y, ref_cthw("out.decoded", n), tol(), "decode, sample " + std::to_string(n));
    }
}

TEST(Taehv, EncodeGolden) {
    for (int64_t n = 0; n < batch(); ++n) {
        const Tensor x = sample_cthw("in.video", n);  // 9 frames: padded to 12 with the last frame
        const Tensor z = model()->encode(x);
        const Shape& zs = test::stored(*fixture(), "out.encoded").shape;
        ASSERT_EQ(z.shape(), (Shape{zs[2], zs[1], zs[3], zs[4]}));
        expect_close(z, ref_cthw("out.encoded", n), tol(), "encode, sample " + std::to_string(n));
    }
}

// Half precision: f16/bf16 weights and activations (each conv, activation and residual add rounds its
// output once; on the CPU the arithmetic is f32, on CUDA cuDNN's half convolutions with f32
// accumulation) against the float64 reference, with the documented bounds per dtype.
// Both internal layouts: channels last runs its own half upsample and the conv's channels-last path.
TEST(Taehv, HalfPrecisionWithinDocumentedError) {
    auto src = open_pth(test::fixture_path("taehv_weights.pth"));
    for (TaehvLayout layout : {TaehvLayout::Ncdhw, TaehvLayout::Ndhwc})
    for (DType dt : {DType::F16, DType::BF16}) {
        const double bound = dt == DType::F16 ? 3e-3 : 2.5e-2;  // CPU: 8.9e-4 / 8.1e-3 at most
        const auto m = Taehv::load(src, backend(), dt, layout);
        ASSERT_EQ(m->config().encoder_channels_last, layout == TaehvLayout::Ndhwc);
        ASSERT_EQ(m->config().decoder_channels_last, layout == TaehvLayout::Ndhwc);
        for (int64_t n = 0; n < batch(); ++n) {
            const std::string tag = std::string(dtype_name(dt)) + (layout == TaehvLayout::Ndhwc ? " ndhwc" : " ncdhw") +
                                    ", sample " + std::to_string(n);
            const Tensor raw = m->decode_raw(sample_cthw("in.z", n));
            EXPECT_EQ(raw.dtype(), DType::F32);
            expect_close(raw, ref_cthw("mid.decoded_raw", n), bound, "decode raw " + tag);
            const Tensor z = m->encode(sample_cthw("in.video", n));
            EXPECT_EQ(z.dtype(), DType::F32);
            expect_close(z, ref_cthw("out.encoded", n), bound, "encode " + tag);
        }
    }
}

// taehv.py's sequential mode and any chunking give the whole-clip result (the fixture records a
// parallel-vs-sequential difference of 0 in float64). The stream's per-block memories are kept in
// the model's internal layout, so both layouts are checked.
void expect_streaming_equals_parallel(const std::shared_ptr<const Taehv>& model) {
    const double t = on_cpu() ? 1e-5 : 2e-3;
    const Tensor z = sample_cthw("in.z", 0);
    const Tensor whole = model->decode(z);
    for (const std::vector<int64_t>& split : {std::vector<int64_t>{1, 1, 1}, {1, 2}, {2, 1}}) {
        TaehvStreamDecoder dec(model);
        std::vector<Tensor> parts;
        int64_t at = 0;
        for (int64_t k : split) {
            Tensor y = dec.push(ops::contiguous(z.slice(1, at, at + k)));
            at += k;
            if (y.defined()) parts.push_back(y);
        }
        const Tensor all = parts.size() == 1 ? parts[0] : ops::concat(parts, 1);
        ASSERT_EQ(all.shape(), whole.shape());
        expect_close(all, host(whole), t, "stream decode, split " + std::to_string(split[0]) + "…");
    }
    const Tensor x = sample_cthw("in.video", 1);
    const Tensor zw = model->encode(x);
    for (const std::vector<int64_t>& split : {std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 5, 1}, {4, 4, 1}}) {
        TaehvStreamEncoder enc(model);
        std::vector<Tensor> parts;
        int64_t at = 0;
        for (int64_t k : split) {
            Tensor y = enc.push(ops::contiguous(x.slice(1, at, at + k)));
            at += k;
            if (y.defined()) parts.push_back(y);
        }
        Tensor rest = enc.flush();
        if (rest.defined()) parts.push_back(rest);
        const Tensor all = parts.size() == 1 ? parts[0] : ops::concat(parts, 1);
        ASSERT_EQ(all.shape(), zw.shape());
        expect_close(all, host(zw), t, "stream encode, split " + std::to_string(split[0]) + "…");
    }
}

TEST(Taehv, StreamingEqualsParallel) { expect_streaming_equals_parallel(model()); }

// Channels last inside both coders (TaehvConfig::encoder_/decoder_channels_last), forced on whatever the backend
// prefers, and NCDHW forced likewise: both give the fixture's goldens, and each other's output. On the
// CPU channels last runs its own model code (TGrow permute, MemBlock past frames, TPool slices along
// dim 0, channels-last upsample) and the conv front-end's permute composition.
TEST(Taehv, ChannelsLastMatchesGoldens) {
    auto src = open_pth(test::fixture_path("taehv_weights.pth"));
    const auto ncdhw = Taehv::load(src, backend(), DType::F32, TaehvLayout::Ncdhw);
    const auto ndhwc = Taehv::load(src, backend(), DType::F32, TaehvLayout::Ndhwc);
    ASSERT_FALSE(ncdhw->config().encoder_channels_last || ncdhw->config().decoder_channels_last);
    ASSERT_TRUE(ndhwc->config().encoder_channels_last && ndhwc->config().decoder_channels_last);
    // CPU: the same f32 kernels on the same values, so the layouts agree to rounding noise at most.
    const double cross = on_cpu() ? 1e-6 : 1e-2;
    for (int64_t n = 0; n < batch(); ++n) {
        const std::string tag = ", sample " + std::to_string(n);
        const Tensor z = sample_cthw("in.z", n), x = sample_cthw("in.video", n);
        for (const auto& [m, name] : {std::pair{ncdhw, "ncdhw"}, {ndhwc, "ndhwc"}}) {
            expect_close(m->decode_raw(z), ref_cthw("mid.decoded_raw", n), tol(), cat("decode raw ", name, tag));
            const Tensor y = m->decode(z);
            const Shape& ys = test::stored(*fixture(), "out.decoded").shape;
            ASSERT_EQ(y.shape(), (Shape{ys[2], ys[1], ys[3], ys[4]}));
            expect_close(y, ref_cthw("out.decoded", n), tol(), cat("decode ", name, tag));
            expect_close(m->encode(x), ref_cthw("out.encoded", n), tol(), cat("encode ", name, tag));
        }
        expect_close(ndhwc->decode_raw(z), host(ncdhw->decode_raw(z)), cross, "decode raw ndhwc vs ncdhw" + tag);
        expect_close(ndhwc->encode(x), host(ncdhw->encode(x)), cross, "encode ndhwc vs ncdhw" + tag);
    }
}

TEST(Taehv, ChannelsLastStreamingEqualsParallel) {
    const auto m = Taehv::load(open_pth(test::fixture_path("taehv_weights.pth")), backend(), DType::F32,
                               TaehvLayout::Ndhwc);
    ASSERT_TRUE(m->config().encoder_channels_last && m->config().decoder_channels_last);
    expect_streaming_equals_parallel(m);
}

// Auto (taehv.h): NCDHW for f32 convs everywhere; for half convs the encoder goes channels last where
// the backend prefers it (CUDA, not the CPU) and the decoder stays NCDHW. Ndhwc forces both coders into
// channels last on any backend, Ncdhw neither.
TEST(Taehv, AutoLayoutFollowsBackend) {
    auto layout = [](const std::shared_ptr<Taehv>& m) {
        return std::pair{m->config().encoder_channels_last, m->config().decoder_channels_last};
    };
    auto w = open_pth(test::fixture_path("taehv_weights.pth"));
    const bool prefers = backend()->prefers_channels_last_conv();
    EXPECT_EQ(layout(Taehv::load(w, backend(), DType::F32)), std::pair(false, false));
    EXPECT_EQ(layout(Taehv::load(w, backend(), DType::F16)), std::pair(prefers, false));
    EXPECT_EQ(layout(Taehv::load(w, backend(), DType::F16, TaehvLayout::Ndhwc)), std::pair(true, true));
    EXPECT_EQ(layout(Taehv::load(w, backend(), DType::F16, TaehvLayout::Ncdhw)), std::pair(false, false));
}

// The same weights from a safetensors file (the official names) decode identically.
TEST(Taehv, SafetensorsWeightsMatchPth) {
    auto pth = open_pth(test::fixture_path("taehv_weights.pth"));
    std::vector<TensorToWrite> ts;
    for (const auto& name : pth->names()) {
        const StoredTensor* st = pth->find(name);
        ts.push_back({name, st->dtype, st->shape, st->data});
    }
    const std::string path = (std::filesystem::temp_directory_path() / "wanrt_test_taew2_1.safetensors").string();
    write_safetensors(path, ts);
    auto m = Taehv::load(open_safetensors(path), backend());
    std::filesystem::remove(path);
    const Tensor z = sample_cthw("in.z", 1);
    EXPECT_EQ(ops::to_host_f32(m->decode(z)), ops::to_host_f32(model()->decode(z)));
}

TEST(Taehv, BadInputs) {
    auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
        try {
            f();
            ADD_FAILURE() << "no error, expected one mentioning " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    auto empty = std::make_shared<MemoryTensorSource>("empty.pth");
    expect_error([&] { Taehv::load(empty, backend()); }, "not a TAEHV state dict");
    // A checkpoint missing one tensor: strict loading names it.
    auto pth = open_pth(test::fixture_path("taehv_weights.pth"));
    auto partial = std::make_shared<MemoryTensorSource>("partial.pth");
    for (const auto& name : pth->names())
        if (name != "decoder.15.conv.2.weight") {
            const StoredTensor* st = pth->find(name);
            partial->add(name, st->dtype, st->shape, st->data);
        }
    expect_error([&] { Taehv::load(partial, backend()); }, "decoder.15.conv.2.weight");
    expect_error([&] { model()->decode(ops::zeros(*backend(), {4, 2, 3, 3})); }, "latent must be [16");
    expect_error([&] { model()->encode(ops::zeros(*backend(), {3, 5, 20, 16})); }, "multiple of 8");
    expect_error([&] { model()->encode(ops::zeros(*backend(), {4, 5, 16, 16})); }, "video must be [3");
}

// `wanrt generate --vae tae` (demo model) and `wanrt stream --vae tae` with a synthetic TAEHV
// checkpoint written as taew2_1.pth ships (torch.save, f16, by `synth --tae`): the videos come out with the Wan frame
// counts, the Wan VAE is never loaded, and the flag errors are one line with exit code 1.
TEST(TaehvCli, GenerateAndStream) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/wanrt_taehv_XXXXXX";
    const fs::path dir = mkdtemp(tmpl);
    // `synth --tae` writes the checkpoint beside a demo release folder (the speed runs' recipe).
    const std::string m = (dir / "m").string(), ck = (dir / "m" / "taew2_1.pth").string();
    test::CliRun s = test::run_cli("synth --model demo --full_folder --tae --out " + m);
    ASSERT_EQ(s.code, 0) << s.out;
    const std::string out = (dir / "g.y4m").string();
    test::CliRun r = test::run_cli("generate --ckpt_dir " + m + " --size 64*64 --frame_num 9 --sample_steps 2 --threads 2 "
                                   "--device cpu --vae tae --vae_checkpoint " + ck + " --save_file " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("load VAE (TAEHV)"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("load VAE..."), std::string::npos) << "the Wan VAE was loaded:\n" << r.out;
    Rgb24Video v = read_video(out);
    EXPECT_EQ(v.frames, 9);
    EXPECT_EQ(v.width, 64);
    EXPECT_EQ(v.height, 64);

    // stream: 14 frames in → 13 out (5, then 4 per chunk), 32×48.
    auto be = make_cpu_backend(1);
    std::vector<float> px(size_t(3 * 14 * 32 * 48));
    for (size_t i = 0; i < px.size(); ++i) px[i] = float((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    const std::string in = (dir / "in.y4m").string(), sout = (dir / "s.y4m").string();
    write_video(in, ops::from_host(*be, DType::F32, {3, 14, 32, 48}, px.data()));
    r = test::run_cli("stream --input " + in + " --output " + sout + " --prompt 'ink wash' --threads 2 --device cpu "
                      "--steps 700,500 --vae tae --vae_checkpoint " + ck);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("with TAEHV"), std::string::npos) << r.out;
    v = read_video(sout);
    EXPECT_EQ(v.frames, 13);
    EXPECT_EQ(v.width, 48);
    EXPECT_EQ(v.height, 32);

    // Bad flags: one line naming the problem, exit 1, no output file.
    const std::string bad_out = (dir / "bad.y4m").string();
    const std::string gen = "generate --size 64*64 --frame_num 5 --sample_steps 1 --device cpu --save_file " + bad_out;
    const std::string not_tae = (dir / "not_tae.pth").string();
    {
        PthWriter w(not_tae);
        const float x[4] = {1, 2, 3, 4};
        w.add("encoder.conv1.weight", DType::F32, {4}, x);
        w.finish();
    }
    struct Case {
        std::string args, expect;
    };
    for (const Case& c : std::vector<Case>{
             {gen + " --vae tae", "--vae tae needs --vae_checkpoint"},
             {gen + " --vae_checkpoint " + ck, "--vae_checkpoint is for --vae tae"},
             {gen + " --vae tiny", "unknown --vae"},
             {gen + " --vae tae --vae_checkpoint " + (dir / "missing.pth").string(), "is not a file"},
             {gen + " --vae tae --vae_checkpoint " + not_tae, "not a TAEHV state dict"},
             {"stream --input " + in + " --output " + bad_out + " --prompt x --vae tae", "--vae tae needs --vae_checkpoint"},
         }) {
        r = test::run_cli(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(bad_out)) << c.args;
    }
    fs::remove_all(dir);
}

}  // namespace
