// The wanrt command line end to end: synth → bench on the written folder, --dump, --json, and
// bad input giving one line on stderr with exit code 1.
#include <algorithm>
#include <fstream>

#include "models/dit.h"
#include "test_util.h"

namespace wanrt::test {

namespace fs = std::filesystem;

TEST(Cli, SynthThenBenchTheFolder) {
    TempDir d;
    const std::string dir = (d.path / "m").string();
    CliRun s = run_cli("synth --model t2v-1.3B --layers 1 --dtype bf16 --shard_gb 0.1 --out " + dir);
    ASSERT_EQ(s.code, 0) << s.out;
    EXPECT_TRUE(fs::exists(dir + "/config.json"));
    EXPECT_TRUE(fs::exists(dir + "/diffusion_pytorch_model.safetensors.index.json"));  // sharded at 0.1 GB
    auto ck = open_dit_checkpoint(dir);
    EXPECT_EQ(ck.config.dim, 1536);
    EXPECT_EQ(ck.config.num_layers, 1);
    EXPECT_EQ(ck.weights->find("blocks.0.ffn.0.weight")->dtype, DType::BF16);
    const std::string json = (d.path / "r.json").string(), dump = (d.path / "mid.safetensors").string();
    CliRun b = run_cli("bench dit --device cpu --ckpt_dir " + dir + " --height 32 --width 32 --text_tokens 7 --repeats 1 --json " +
                json + " --dump " + dump);
    ASSERT_EQ(b.code, 0) << b.out;
    EXPECT_NE(b.out.find("forward (1 blocks)"), std::string::npos) << b.out;
    auto j = nlohmann::json::parse(std::ifstream(json));
    EXPECT_EQ(j["bench"], "dit");
    EXPECT_GT(j["rows"][0]["median_ms"].get<double>(), 0.0);
    auto f = SafeTensorsFile::open(dump);
    for (const char* n : {"e", "e0", "context_emb", "patch_embed_first", "block0_out", "out"}) EXPECT_NE(f->find(n), nullptr) << n;
    EXPECT_EQ(f->find("out")->shape, (Shape{16, 1, 4, 4}));
}

// Streaming V2V with TAEHV: the FPS row and the first-output-frame latency rows (issue 17's table).
TEST(Cli, BenchCausalV2vWithTaehv) {
    TempDir d;
    const std::string json = (d.path / "c.json").string();
    CliRun r = run_cli("bench causal --device cpu --cases \"\" --v2v --vae tae --layers 1 --height 32 --width 32 --chunks 1 --json " + json);
    ASSERT_EQ(r.code, 0) << r.out;
    auto j = nlohmann::json::parse(std::ifstream(json));
    std::vector<std::string> names;
    for (const auto& row : j["rows"]) names.push_back(row["name"].get<std::string>());
    auto has = [&](const std::string& frag) {
        return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n.find(frag) != std::string::npos; });
    };
    EXPECT_TRUE(has("v2v (TAEHV f32): one 4-frame chunk")) << r.out;
    EXPECT_TRUE(has("first output frame after the first input chunk, warm")) << r.out;
    EXPECT_TRUE(has("process's first chunk (cold)")) << r.out;
    for (const auto& row : j["rows"]) EXPECT_GT(row["median_ms"].get<double>(), 0.0) << row["name"];
}

// One training step per repeat (issue 23's speed row, docs/cli.md): LoRA and full fine-tuning, the
// trainable count of the chosen targets, the per-op rows and the loss in the JSON.
TEST(Cli, BenchTrainLoraAndFull) {
    TempDir d;
    for (const char* mode : {"--lora_rank 2 --lora_targets q,ffn", "--lora_rank 0"}) {
        const std::string json = (d.path / "t.json").string();
        CliRun r = run_cli(std::string("bench train --device cpu --layers 1 --frames 5 --height 32 --width 32 ") + mode +
                           " --warmup 0 --repeats 1 --json " + json);
        ASSERT_EQ(r.code, 0) << r.out;
        auto j = nlohmann::json::parse(std::ifstream(json));
        EXPECT_EQ(j["bench"], "train");
        const bool lora = std::string(mode).find("rank 2") != std::string::npos;
        EXPECT_EQ(j["rows"][0]["name"], lora ? "LoRA training step (1 blocks)" : "full training step (1 blocks)");
        EXPECT_GT(j["rows"][0]["median_ms"].get<double>(), 0.0);
        bool backward_row = false;
        for (const auto& row : j["rows"]) backward_row |= row["name"].get<std::string>().find("linear_backward") != std::string::npos;
        EXPECT_TRUE(backward_row) << r.out;
        // rank 2 on self_attn.q, cross_attn.q (1536 → 1536) and ffn.0, ffn.2 (1536 ↔ 8960): r·(in + out) each
        if (lora) EXPECT_NE(r.out.find(std::to_string(2 * (2 * 3072 + 2 * 10496)) + " parameters"), std::string::npos) << r.out;
    }
}

TEST(Cli, BadInputIsOneLineAndExitOne) {
    TempDir d;
    struct Case {
        std::string args, expect;
    };
    std::vector<Case> cases = {
        {"bench dit --device cpu --frames 4", "4n+1"},
        {"bench dit --device cpu --height 100", "multiples of 16"},
        {"bench dit --device cpu --ckpt_dir " + (d.path / "none").string(), "does not exist"},
        {"bench dit --device cpu --ckpt_dir " + d.path.string(), "no DiT weights"},
        {"bench dit --device tpu", "unknown device"},
        {"bench causal --device cpu --v2v --vae taehv", "--vae taehv must be wan (the Wan2.1 VAE) or tae (TAEHV)"},
        {"bench causal --device cpu --vae tae", "--vae is for --v2v; add --v2v"},
        {"bench train --device cpu --frames 4", "4n+1"},
        {"bench train --device cpu --model i2v-14B", "is not text-to-video"},
        {"bench train --device cpu --lora_rank -1", "must be ≥ 0"},
        {"synth --model t2v-2B --out " + (d.path / "x").string(), "unknown model"},
    };
    for (auto& c : cases) {
        CliRun r = run_cli(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
    }
    // A corrupt weights file in an otherwise valid folder.
    fs::create_directories(d.path / "bad");
    std::ofstream(d.path / "bad" / "diffusion_pytorch_model.safetensors") << "garbage!garbage!";
    CliRun r = run_cli("bench dit --device cpu --ckpt_dir " + (d.path / "bad").string());
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("[safetensors]"), std::string::npos) << r.out;
}

}  // namespace wanrt::test
