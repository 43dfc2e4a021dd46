// `wanrt train` end to end on the built-in demo model (train/trainer.h, cli/cmd_train.cpp): a run is
// deterministic per seed, N steps straight equal K steps + resume + N − K steps bit for bit, the
// LoRA it writes loads through the LoRA loader, --full writes a DiT folder that loads, bad input is
// one line with exit 1 and nothing written; the learning-rate schedules.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "models/dit.h"
#include "models/lora.h"
#include "pipeline/demo.h"
#include "test_util.h"
#include "train/flow_match.h"
#include "train/trainer.h"
#include "video/video_writer.h"

namespace wanrt::test {

namespace {

namespace fs = std::filesystem;

// A w×h clip of `frames` frames: a coloured square moving right on a blue background.
void write_clip(const std::string& path, int64_t w, int64_t h, int64_t frames, uint8_t r, uint8_t g) {
    Rgb24Video v;
    v.frames = frames, v.width = w, v.height = h;
    v.rgb.resize(size_t(w * h * 3 * frames));
    for (int64_t t = 0; t < frames; ++t)
        for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < w; ++x) {
                uint8_t* p = v.rgb.data() + ((t * h + y) * w + x) * 3;
                const bool in = y >= h / 3 && y < h / 3 + h / 4 && x >= 2 * t && x < 2 * t + w / 4;
                p[0] = in ? r : 0, p[1] = in ? g : 0, p[2] = in ? 0 : 255;
            }
    write_video(path, v);
}

void write_text(const std::string& path, const std::string& s) {
    std::ofstream(path) << s;
}

struct Data {
    TempDir dir;
    Data() {
        write_clip(dir / "a.y4m", 32, 32, 5, 255, 0);
        write_text(dir / "a.txt", "a red square moving right on a blue background");
        write_clip(dir / "b.y4m", 48, 32, 9, 0, 200);
        write_text(dir / "b.txt", "a green square moving right on a blue background\n");
    }
};

const char* kArgs = " --lora_rank 4 --lora_alpha 4 --lr 1e-3 --batch 2 --schedule cosine --warmup 1 --threads 2";

TEST(TrainCli, ResumeIsBitForBitAndSeedDeterministic) {
    Data d;
    TempDir out;
    const std::string common = " --data " + d.dir.path.string() + kArgs;
    CliRun a = run_cli("train --steps 5 --seed 3 --out " + out / "A" + common);
    ASSERT_EQ(a.code, 0) << a.out;
    EXPECT_NE(a.out.find("step 5/5"), std::string::npos) << a.out;
    EXPECT_NE(a.out.find("it/s"), std::string::npos) << a.out;
    EXPECT_NE(a.out.find("ETA"), std::string::npos) << a.out;
    CliRun b1 = run_cli("train --steps 2 --seed 3 --out " + out / "B" + common);
    ASSERT_EQ(b1.code, 0) << b1.out;
    EXPECT_NE(b1.out.find("2 of 2 latents"), std::string::npos)
        << "a second use of the data must hit the cache: " << b1.out;
    CliRun b2 = run_cli("train --steps 5 --seed 3 --out " + out / "B" + common + " --resume " +
                        out / "B/checkpoint-step-000002.safetensors");
    ASSERT_EQ(b2.code, 0) << b2.out;
    EXPECT_NE(b2.out.find("resumed from"), std::string::npos) << b2.out;
    const std::string la = read_file(out / "A/lora.safetensors"), lb = read_file(out / "B/lora.safetensors");
    EXPECT_FALSE(la.empty());
    EXPECT_TRUE(la == lb) << "5 steps straight differ from 2 + resume + 3";
    EXPECT_TRUE(read_file(out / "A/checkpoint-step-000005.safetensors") ==
                read_file(out / "B/checkpoint-step-000005.safetensors"));
    // loss.csv of the resumed run: the first run's rows, then the continuation's, equal losses
    auto losses = [](const std::string& csv) {
        std::vector<std::string> v;
        std::istringstream in(csv);
        std::string line;
        std::getline(in, line);
        while (std::getline(in, line)) v.push_back(line.substr(0, line.find(',', line.find(',') + 1)));
        return v;
    };
    const auto ca = losses(read_file(out / "A/loss.csv")), cb = losses(read_file(out / "B/loss.csv"));
    EXPECT_EQ(ca.size(), 5u);
    EXPECT_EQ(ca, cb);

    CliRun c = run_cli("train --steps 5 --seed 3 --out " + out / "C" + common);
    ASSERT_EQ(c.code, 0) << c.out;
    EXPECT_TRUE(read_file(out / "C/lora.safetensors") == la) << "same seed, other bytes";
    CliRun e = run_cli("train --steps 5 --seed 4 --out " + out / "E" + common);
    ASSERT_EQ(e.code, 0) << e.out;
    EXPECT_FALSE(read_file(out / "E/lora.safetensors") == la) << "another seed, same bytes";
    // Checkpoints in host memory: the same run, byte for byte.
    CliRun h = run_cli("train --steps 5 --seed 3 --offload_checkpoints --out " + out / "H" + common);
    ASSERT_EQ(h.code, 0) << h.out;
    EXPECT_TRUE(read_file(out / "H/lora.safetensors") == la) << "--offload_checkpoints changed the run";

    // A LoRA run's checkpoint is no DiT: convert refuses it in one line and points at the LoRA file.
    CliRun cv = run_cli("convert " + out / "A/checkpoint-step-000005.safetensors" + " " + out / "x.safetensors" +
                        " --type f16");
    EXPECT_EQ(cv.code, 1) << cv.out;
    EXPECT_NE(cv.out.find("is a LoRA training checkpoint"), std::string::npos) << cv.out;
    EXPECT_FALSE(fs::exists(out / "x.safetensors"));
    // Hand-edited metadata of the wrong types: the same one line, never a JSON exception.
    for (const char* meta : {"{\"run\": {\"mode\": 3}}", "[1]", "not json",
                             "{\"run\": {\"mode\": \"full\", \"dit_config\": 7}}"}) {
        const float x = 0;
        write_safetensors(out / "bad.safetensors", {{"param.head.head.bias", DType::F32, {1}, &x}},
                          {{"wanrt_train", meta}});
        CliRun b = run_cli("convert " + out / "bad.safetensors" + " " + out / "y.safetensors" + " --type f16");
        EXPECT_EQ(b.code, 1) << meta << ": " << b.out;
        EXPECT_NE(b.out.find("pass a checkpoint written by wanrt train"), std::string::npos) << meta << ": " << b.out;
        EXPECT_FALSE(fs::exists(out / "y.safetensors"));
    }

    // The LoRA loads through the loader for the demo DiT: 10 Linears per block.
    const DitConfig cfg = demo_config().dit;
    const std::vector<LoraDelta> deltas = load_lora_file({out / "A/lora.safetensors", 1.0f}, cfg);
    EXPECT_EQ(deltas.size(), size_t(10 * cfg.num_layers));
    EXPECT_EQ(deltas[0].rank, 4);
    EXPECT_DOUBLE_EQ(deltas[0].scale, 1.0);

    // A checkpoint of another run shape is refused.
    CliRun bad = run_cli("train --steps 6 --out " + out / "B" + " --data " + d.dir.path.string() +
                         " --lora_rank 8 --resume " + out / "B/checkpoint-step-000005.safetensors");
    EXPECT_EQ(bad.code, 1) << bad.out;
    EXPECT_NE(bad.out.find("another run shape"), std::string::npos) << bad.out;
}

TEST(TrainCli, FullFineTuningWritesALoadableDit) {
    Data d;
    TempDir out;
    CliRun r =
        run_cli("train --full --steps 2 --lr 1e-4 --threads 2 --data " + d.dir.path.string() + " --out " + out / "F");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("full fine-tuning"), std::string::npos) << r.out;
    const DitCheckpoint ck = open_dit_checkpoint(out / "F");
    EXPECT_EQ(ck.config.to_json(), demo_config().dit.to_json());
    auto be = make_cpu_backend(2);
    DitModel m(ck.config, ck.weights, *be);  // strict: every tensor, official shapes
    DitModel base(demo_config().dit, demo_model_parts().dit_weights(), *be);
    const Err diff = compare(to_f64(m.weights().blocks[0].sa_q.w), to_f64(base.weights().blocks[0].sa_q.w));
    EXPECT_GT(diff.rel_l2, 0.0) << "the weights did not change";
    EXPECT_LT(diff.rel_l2, 1e-2);

    // `wanrt convert` reads the checkpoint as the DiT it holds: the trainer's own file, tensor for tensor.
    CliRun c = run_cli("convert " + out / "F/checkpoint-step-000002.safetensors" + " " + out / "c.safetensors" +
                       " --type f32");
    ASSERT_EQ(c.code, 0) << c.out;
    EXPECT_NE(c.out.find("wanrt train checkpoint"), std::string::npos) << c.out;
    auto conv = SafeTensorsFile::open(out / "c.safetensors");
    auto mine = SafeTensorsFile::open(out / "F/diffusion_pytorch_model.safetensors");
    ASSERT_EQ(conv->names(), mine->names());
    for (const std::string& n : mine->names()) {
        const StoredTensor *a = conv->find(n), *b = mine->find(n);
        ASSERT_EQ(a->shape, b->shape) << n;
        EXPECT_EQ(std::memcmp(a->data, b->data, size_t(b->nbytes)), 0) << n;
    }
}

TEST(TrainCli, BadInputIsOneLineAndExit1) {
    Data d;
    TempDir out;
    auto expect_fail = [&](const std::string& args, const std::string& frag, const std::string& out_dir) {
        CliRun r = run_cli("train --steps 1 " + args);
        EXPECT_EQ(r.code, 1) << args << ": " << r.out;
        EXPECT_NE(r.out.find(frag), std::string::npos) << args << ": " << r.out;
        size_t errors = 0;  // lines of the error: exactly one, "wanrt: [module] ..."
        for (size_t at = r.out.find("wanrt: "); at != std::string::npos; at = r.out.find("wanrt: ", at + 1)) ++errors;
        EXPECT_EQ(errors, 1u) << r.out;
        EXPECT_FALSE(fs::exists(out_dir)) << args << ": nothing may be written";
    };
    TempDir empty;
    expect_fail("--data " + empty.path.string() + " --out " + out / "o1", "holds no videos or images", out / "o1");
    TempDir nocap;
    write_clip(nocap / "x.y4m", 32, 32, 1, 255, 0);
    expect_fail("--data " + nocap.path.string() + " --out " + out / "o2", "caption missing for", out / "o2");
    TempDir odd;
    write_clip(odd / "x.y4m", 40, 32, 1, 255, 0);
    write_text(odd / "x.txt", "a red square");
    expect_fail("--data " + odd.path.string() + " --out " + out / "o3", "is 40x32", out / "o3");
    write_text(out / "file", "x");  // --out under a regular file: cannot be created
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "file/run", "cannot create the output folder",
                out / "file/run");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o5" + " --lora_targets q,mlp",
                "unknown LoRA target", out / "o5");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o6" + " --schedule linear", "unknown --schedule",
                out / "o6");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o7" + " --resume " + out / "none.safetensors",
                "cannot read the checkpoint", out / "o7");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o8" + " --caption_dropout 1.5",
                "--caption_dropout 1.5 must be in [0, 1]", out / "o8");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o9" + " --shift 0", "--shift 0 must be",
                out / "o9");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o10" +
                    " --min_timestep_boundary 0.5 --max_timestep_boundary 0.5",
                "must satisfy 0 ≤ min < max ≤ 1", out / "o10");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o11" + " --max_timestep_boundary 1.2",
                "--max_timestep_boundary 1.2 must satisfy", out / "o11");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o12" + " --eval_clips 1 --eval_swap left",
                "--eval_swap entry \"left\" is not WORD:WORD", out / "o12");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o13" + " --eval_clips 1 --eval_sigmas 0.5,0",
                "--eval_sigmas value 0 must be in (0, 1]", out / "o13");
    expect_fail("--data " + d.dir.path.string() + " --out " + out / "o14" + " --eval_swap left:right",
                "--eval_swap scores the evaluation's clips; add --eval_clips N", out / "o14");
}

TEST(TrainEval, CaptionSwapIsWholeWordsOnce) {
    const auto sw = parse_caption_swap("left:right,right:left,up:down");
    ASSERT_EQ(sw.size(), 3u);
    EXPECT_EQ(train_caption_swap("a red circle moving left on a blue background", sw),
              "a red circle moving right on a blue background");
    EXPECT_EQ(train_caption_swap("right right  leftover up", sw), "left left  leftover down");
    EXPECT_EQ(train_caption_swap("", sw), "");
    EXPECT_TRUE(parse_caption_swap("").empty());
}

// --eval_clips scores fixed clips at the start, every save and the end (eval.csv, the log), with the
// direction word swapped where asked; it draws from its own stream, so the training itself is the
// same bytes with and without it, and a resumed run's eval.csv equals the straight run's.
TEST(TrainEval, ScoresFixedClipsWithoutChangingTheRun) {
    Data d;
    TempDir out;
    const std::string common = " --save_every 2 --seed 5 --data " + d.dir.path.string() + kArgs;
    const std::string ev = " --eval_clips 2 --eval_sigmas 0.9,0.5 --eval_swap right:left,left:right";
    CliRun a = run_cli("train --steps 4 --out " + out / "A" + common + ev);
    ASSERT_EQ(a.code, 0) << a.out;
    CliRun b = run_cli("train --steps 4 --out " + out / "B" + common);
    ASSERT_EQ(b.code, 0) << b.out;
    EXPECT_NE(a.out.find("eval: 2 clips (2 with a swapped caption) at 2 noise levels"), std::string::npos) << a.out;
    EXPECT_NE(a.out.find("eval step 0: σ 0.9 loss "), std::string::npos) << a.out;
    EXPECT_NE(a.out.find("(swapped ×"), std::string::npos) << a.out;
    EXPECT_TRUE(read_file(out / "A/lora.safetensors") == read_file(out / "B/lora.safetensors"))
        << "the evaluation changed the training";
    EXPECT_FALSE(fs::exists(out / "B/eval.csv"));
    std::ifstream in(out / "A/eval.csv");
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "step,sigma,loss,swap_ratio");
    std::vector<std::string> rows;
    while (std::getline(in, line)) rows.push_back(line);
    ASSERT_EQ(rows.size(), 6u) << "steps 0, 2, 4 at two noise levels";
    for (size_t i = 0; i < rows.size(); ++i) {
        EXPECT_EQ(std::atoll(rows[i].c_str()), int64_t(2 * (i / 2))) << rows[i];
        double step, sigma, loss, ratio;
        ASSERT_EQ(std::sscanf(rows[i].c_str(), "%lf,%lf,%lf,%lf", &step, &sigma, &loss, &ratio), 4) << rows[i];
        EXPECT_EQ(sigma, i % 2 ? 0.5 : 0.9);
        EXPECT_GT(loss, 0.0);
        EXPECT_GT(ratio, 0.5);
        EXPECT_NE(ratio, 1.0) << "the swapped caption was not used";
        EXPECT_LT(ratio, 2.0);
    }
    // The loss at the end differs from the start: the model being trained is the one scored.
    EXPECT_NE(rows[0].substr(rows[0].find(',', 2)), rows[4].substr(rows[4].find(',', 2)));
    CliRun c1 = run_cli("train --steps 2 --out " + out / "C" + common + ev);
    ASSERT_EQ(c1.code, 0) << c1.out;
    CliRun c2 = run_cli("train --steps 4 --out " + out / "C" + common + ev + " --resume " +
                        out / "C/checkpoint-step-000002.safetensors");
    ASSERT_EQ(c2.code, 0) << c2.out;
    EXPECT_EQ(read_file(out / "C/eval.csv"), read_file(out / "A/eval.csv"));
}

// --caption_dropout 1 trains every sample on the empty prompt: the captions no longer matter, so two
// data folders that differ only in their captions train to the same bytes; with 0 they do not.
TEST(TrainCli, CaptionDropoutTrainsOnTheEmptyPrompt) {
    Data d;
    TempDir other;
    write_clip(other / "a.y4m", 32, 32, 5, 255, 0);
    write_text(other / "a.txt", "a white circle moving up on a black background");
    write_clip(other / "b.y4m", 48, 32, 9, 0, 200);
    write_text(other / "b.txt", "a yellow circle moving down on a red background");
    TempDir out;
    auto lora = [&](const std::string& data, const std::string& run, const char* p) {
        CliRun r = run_cli("train --steps 2 --seed 1 --caption_dropout " + std::string(p) + " --data " + data +
                           " --out " + out / run + kArgs);
        EXPECT_EQ(r.code, 0) << r.out;
        return read_file(out / (run + "/lora.safetensors"));
    };
    const std::string a1 = lora(d.dir.path.string(), "a1", "1"), b1 = lora(other.path.string(), "b1", "1");
    ASSERT_FALSE(a1.empty());
    EXPECT_TRUE(a1 == b1) << "with every caption dropped the captions still changed the result";
    const std::string a0 = lora(d.dir.path.string(), "a0", "0"), b0 = lora(other.path.string(), "b0", "0");
    EXPECT_FALSE(a0 == b0) << "the test cannot tell: other captions train to the same bytes";
    EXPECT_FALSE(a0 == a1);
}

// The timestep rows a step may draw: every row by default (the draw mod 1,000, as before the
// boundaries existed), DiffSynth's A14B split [0, 358) and [358, 1000) otherwise.
TEST(TrainSchedule, TimestepBoundaries) {
    TrainOptions o;
    for (uint64_t d : {uint64_t(0), uint64_t(999), uint64_t(1000), uint64_t(123456789), ~uint64_t(0)})
        EXPECT_EQ(train_timestep_row(o, d, 1000), int64_t(d % 1000));
    o.max_timestep_boundary = 0.358;  // high-noise expert: t ≥ 900 at shift 5
    int64_t lo = 1000, hi = -1;
    for (uint64_t d = 0; d < 5000; ++d) {
        const int64_t k = train_timestep_row(o, d * 0x9E3779B97F4A7C15ull, 1000);
        lo = std::min(lo, k), hi = std::max(hi, k);
    }
    EXPECT_EQ(lo, 0);
    EXPECT_EQ(hi, 357);
    EXPECT_GE(flow_match_table(5.0, 1000).timesteps[357], 900.0);
    EXPECT_LT(flow_match_table(5.0, 1000).timesteps[358], 900.0 + 1e-9);
    o.min_timestep_boundary = 0.358, o.max_timestep_boundary = 1;  // low-noise expert
    lo = 1000, hi = -1;
    for (uint64_t d = 0; d < 5000; ++d) {
        const int64_t k = train_timestep_row(o, d * 0x9E3779B97F4A7C15ull, 1000);
        lo = std::min(lo, k), hi = std::max(hi, k);
    }
    EXPECT_EQ(lo, 358);
    EXPECT_EQ(hi, 999);
}

TEST(TrainSchedule, WarmupConstantCosine) {
    TrainOptions o;
    o.lr = 1.0, o.steps = 10, o.warmup = 2;
    EXPECT_DOUBLE_EQ(train_lr_at(o, 0), 0.5);
    EXPECT_DOUBLE_EQ(train_lr_at(o, 1), 1.0);
    EXPECT_DOUBLE_EQ(train_lr_at(o, 7), 1.0);
    o.schedule = "cosine";
    EXPECT_DOUBLE_EQ(train_lr_at(o, 2), 1.0);
    EXPECT_NEAR(train_lr_at(o, 6), 0.5, 1e-12);  // halfway through the 8 decay steps
    EXPECT_NEAR(train_lr_at(o, 9), 0.5 * (1 + std::cos(M_PI * 7 / 8)), 1e-12);
}

}  // namespace

}  // namespace wanrt::test
