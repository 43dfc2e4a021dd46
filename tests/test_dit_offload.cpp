// DiT block streaming (models/dit_offload.h, `--offload`): the offloaded forward equals the resident
// one bit for bit (same kernels, weights copied byte for byte) for every split of resident and
// streamed blocks and slot count, over repeated forwards; on a device backend (WANRT_TEST_DEVICE=cuda)
// the allocator's peak falls with the blocks that stream; the budget arithmetic, the size parser and
// the refusals. On the CPU the streaming runs through the same code with DitOffloadOptions::on_host.
#include <cstring>

#include "models/causal_dit.h"
#include "models/dit_weights.h"
#include "models/synth.h"
#include "pipeline/demo.h"
#include "test_util.h"

namespace wanrt::test {

namespace {

DitConfig small_config() {
    DitConfig c = demo_config().dit;  // dim 256, 2 heads, ffn 512, text_dim 4096
    c.num_layers = 6;
    return c;
}

std::shared_ptr<Backend> backend() {
    static std::shared_ptr<Backend> be = [] {
        auto d = test_device();
        return d ? d : make_cpu_backend(2);
    }();
    return be;
}

DitSample sample(Backend& be, const DitConfig& c) {
    DitSample s;
    s.x = randn_tensor(be, {c.in_dim, 3, 8, 12}, 11);  // 3 frames of 8×12 latent pixels: 72 tokens
    s.context = randn_tensor(be, {20, c.text_dim}, 12);
    s.t = 600;
    return s;
}

std::vector<float> run(const DitModel& m, const DitSample& s) {
    const int64_t seq_len = m.tokens_for(s.x.shape());
    return ops::to_host_f32(m.forward({s}, seq_len)[0]);
}

}  // namespace

TEST(DitOffload, StreamedForwardEqualsResidentBitForBit) {
    auto be = backend();
    const DitConfig c = small_config();
    auto src = synth_dit_memory(c, DType::F32, 5);
    const DitSample s = sample(*be, c);
    std::vector<float> want;
    {
        DitModel resident(c, src, *be);
        EXPECT_FALSE(resident.offloaded());
        EXPECT_EQ(resident.offload_plan().resident_blocks, c.num_layers);
        want = run(resident, s);
    }
    const size_t block = [&] {
        DitOffloadOptions o;
        o.enabled = o.on_host = true;
        return DitModel(c, src, *be, "", o).offload_plan().block_bytes;
    }();
    ASSERT_GT(block, 0u);
    struct Case {
        int64_t resident;  // blocks the budget should keep
        int slots;
    };
    // A budget keeps R blocks with S slots when R + S < L (at R + S ≥ L everything fits: see below).
    for (const Case k : {Case{0, 2}, Case{0, 3}, Case{2, 2}, Case{3, 2}, Case{1, 4}, Case{0, 6}}) {
        DitOffloadOptions o;
        o.enabled = o.on_host = true;
        o.slots = k.slots;
        {
            DitOffloadOptions probe = o;  // the non-block bytes, from a plan that streams everything
            const size_t other = DitModel(c, src, *be, "", probe).offload_plan().other_bytes;
            o.max_vram = k.resident == 0 ? 0 : int64_t(other + size_t(k.resident + k.slots) * block);
        }
        DitModel m(c, src, *be, "", o);
        const DitOffloadPlan& p = m.offload_plan();
        SCOPED_TRACE(p.describe());
        EXPECT_TRUE(m.offloaded());
        EXPECT_EQ(p.resident_blocks, k.resident);
        EXPECT_EQ(p.streamed_blocks, c.num_layers - k.resident);
        EXPECT_EQ(p.slots, std::min<int64_t>(k.slots, c.num_layers - k.resident));
        // Parked blocks keep their shapes and dtypes (run-time LoRA reads them).
        EXPECT_EQ(m.weights().blocks.back().ffn0.w.shape(), (Shape{c.ffn_dim, c.dim}));
        for (int rep = 0; rep < 2; ++rep) {  // the second forward refills the slots the first left
            const std::vector<float> got = run(m, s);
            ASSERT_EQ(got.size(), want.size());
            EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
                << "offloaded forward " << rep << " differs from the resident one";
        }
    }
    // A budget that holds every block streams none.
    DitOffloadOptions o;
    o.enabled = o.on_host = true;
    o.max_vram = int64_t(DitModel(c, src, *be, "", o).offload_plan().other_bytes + size_t(c.num_layers) * block);
    DitModel all(c, src, *be, "", o);
    EXPECT_FALSE(all.offloaded());
    EXPECT_EQ(all.offload_plan().resident_blocks, c.num_layers);
    o.max_vram -= 1;  // one byte less: the last blocks stream
    DitModel fewer(c, src, *be, "", o);
    EXPECT_TRUE(fewer.offloaded());
    EXPECT_EQ(fewer.offload_plan().resident_blocks, c.num_layers - 3);  // room for L − 3 blocks + 2 slots
}

// On a device backend the weights that stream leave the device: the allocator's peak over load +
// forward falls by about the streamed blocks less the slots. (The CPU tracks no device memory.)
TEST(DitOffload, PeakDeviceMemoryFalls) {
    auto be = backend();
    if (be->host_visible()) {
        // The CPU has nothing to free: the default options keep every block resident there.
        DitOffloadOptions o;
        o.enabled = true;
        DitModel m(small_config(), synth_dit_memory(small_config(), DType::F32, 5), *be, "", o);
        EXPECT_FALSE(m.offloaded()) << "--offload must be a no-op on a host backend";
        return;
    }
    DitConfig c = small_config();
    c.num_layers = 12;
    auto src = synth_dit_memory(c, DType::F32, 5);
    const DitSample s = sample(*be, c);
    auto peak = [&](const DitOffloadOptions& o, DitOffloadPlan* plan) {
        be->synchronize();
        be->reset_peak_memory();
        DitModel m(c, src, *be, "", o);
        run(m, s);
        *plan = m.offload_plan();
        return be->memory_stats().peak;
    };
    DitOffloadPlan pr, po;
    const size_t resident = peak({}, &pr);
    DitOffloadOptions o;
    o.enabled = true;
    const size_t streamed = peak(o, &po);
    std::printf("  peak device memory: resident %.2f MiB, offloaded (%s) %.2f MiB\n", double(resident) / (1 << 20),
                po.describe().c_str(), double(streamed) / (1 << 20));
    EXPECT_EQ(po.streamed_blocks, c.num_layers);
    EXPECT_LT(double(streamed), double(resident) - 0.8 * double(size_t(c.num_layers - po.slots) * po.block_bytes));
}

TEST(DitOffload, BudgetArithmetic) {
    DitOffloadOptions o;
    o.enabled = true;
    const size_t G = size_t(1) << 30;
    // 40 blocks of 0.5 GiB, 1 GiB besides: 16 GiB holds 1 + (27 + 2 slots) × 0.5 = 15.5.
    o.max_vram = int64_t(16 * G);
    DitOffloadPlan p = plan_dit_offload(G / 2, G, 40, o);
    EXPECT_EQ(p.resident_blocks, 28);
    EXPECT_EQ(p.streamed_blocks, 12);
    EXPECT_EQ(p.slots, 2);
    EXPECT_LE(p.device_bytes(), 16 * G);
    EXPECT_EQ(p.host_bytes(), 6 * G);
    o.max_vram = int64_t(21 * G);  // everything fits: nothing streams
    p = plan_dit_offload(G / 2, G, 40, o);
    EXPECT_EQ(p.resident_blocks, 40);
    EXPECT_EQ(p.slots, 0);
    o.max_vram = 0;  // no budget: stream every block
    EXPECT_EQ(plan_dit_offload(G / 2, G, 40, o).resident_blocks, 0);
    o.max_vram = int64_t(G);  // below embeddings + 2 slots
    expect_error([&] { plan_dit_offload(G / 2, G, 40, o); }, {"[offload]", "--max_vram", "raise --max_vram"});
    o.slots = 1;
    expect_error([&] { plan_dit_offload(G / 2, G, 40, o); }, {"[offload]", "at least 2"});
}

TEST(DitOffload, MemorySizes) {
    EXPECT_EQ(parse_memory_size("16G", "x"), int64_t(16) << 30);
    EXPECT_EQ(parse_memory_size("16GB", "x"), int64_t(16) << 30);
    EXPECT_EQ(parse_memory_size("24gib", "x"), int64_t(24) << 30);
    EXPECT_EQ(parse_memory_size("512M", "x"), int64_t(512) << 20);
    EXPECT_EQ(parse_memory_size("1.5G", "x"), int64_t(3) << 29);
    EXPECT_EQ(parse_memory_size("4096", "x"), 4096);
    for (const char* bad : {"", "G", "x", "-1G", "0", "16Q", "1.2.3G", "0.1"})
        expect_error([&] { parse_memory_size(bad, "generate"); }, {"[generate]", "bad size"});
}

TEST(DitOffload, CausalModelRefusesStreamedBlocks) {
    auto be = backend();
    DitOffloadOptions o;
    o.enabled = o.on_host = true;
    auto m = std::make_shared<DitModel>(small_config(), synth_dit_memory(small_config(), DType::F32, 5), *be, "", o);
    expect_error([&] { CausalDitModel c(m); }, {"[causal_dit]", "--offload"});
}

// The flags: one line, exit 1, nothing written (run on the dev machine: the CLI path is the build's).
TEST(DitOffloadCli, CommandLine) {
    TempDir tmp;
    const std::string out = (tmp.path / "o.y4m").string();
    const std::string small = " --size 64*64 --frame_num 5 --sample_steps 1 --threads 2 --device cpu --save_file " + out;
    struct Case {
        std::string args, expect;
    };
    for (const Case& c : std::vector<Case>{
             {"generate --max_vram 4G" + small, "--max_vram is the budget of --offload"},
             {"generate --offload --max_vram 4Q" + small, "bad size \"4Q\""},
             {"generate --offload --max_vram 0" + small, "bad size \"0\""},
             {"generate --offload --causal --size 64*64 --frame_num 9 --device cpu --save_file " + out,
              "--causal needs them resident"},
             {"bench dit --max_vram 4G --device cpu", "add --offload"},
         }) {
        CliRun r = run_cli(c.args);
        EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
        EXPECT_FALSE(std::filesystem::exists(out)) << c.args;
    }
    // On the CPU --offload (and --t5_cpu) change nothing: the same video, and a note says so.
    const std::string a = (tmp.path / "a.y4m").string(), b = (tmp.path / "b.y4m").string();
    const std::string run = "generate --task ti2v-5B --base_seed 2 --size 64*64 --frame_num 5 --sample_steps 2 "
                            "--threads 2 --device cpu --save_file ";
    ASSERT_EQ(run_cli(run + a).code, 0);
    CliRun r = run_cli(run + b + " --offload --max_vram 1G --t5_cpu");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("--offload does nothing on cpu"), std::string::npos) << r.out;
    EXPECT_TRUE(read_file(a) == read_file(b));
}

}  // namespace wanrt::test
