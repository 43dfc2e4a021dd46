// The torch.save writer (io/pth_writer.h) read back by the reader (io/pth.h): every dtype, odd and
// scalar shapes, a tensor streamed in several chunks, 64-byte data alignment, bit-exact bytes; and
// the synthetic official folder parts (VAE and T5 .pth) loading in their models.
#include <cstring>
#include <filesystem>
#include <random>

#include "io/pth.h"
#include "io/pth_writer.h"
#include "models/t5.h"
#include "pipeline/demo.h"
#include "pipeline/model_folder.h"
#include "text/tokenizer.h"
#include "test_util.h"

namespace wanrt::test {

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = uint8_t(rng());
    return v;
}

}  // namespace

TEST(PthWriter, RoundTripIsBitExact) {
    TempDir d;
    const std::string path = (d.path / "t.pth").string();
    struct Case {
        std::string name;
        DType dtype;
        Shape shape;
        std::vector<uint8_t> bytes;
    };
    std::vector<Case> cases = {
        {"a.weight", DType::F32, {3, 5, 7}, {}},  {"b.bias", DType::BF16, {33}, {}},
        {"c.half", DType::F16, {2, 1, 9}, {}},    {"d.double", DType::F64, {4, 3}, {}},
        {"e.long", DType::I64, {5}, {}},          {"f.int", DType::I32, {1, 1, 1, 17}, {}},
        {"g.byte", DType::U8, {31}, {}},          {"h.scalar", DType::F32, {}, {}},
        {"blocks.0.ffn.gate.0.weight", DType::BF16, {5, 2}, {}},
    };
    for (size_t i = 0; i < cases.size(); ++i)
        cases[i].bytes = random_bytes(dtype_bytes(cases[i].dtype, shape_numel(cases[i].shape)), uint32_t(i + 1));
    // A tensor larger than the writer's 16 MiB chunk: streamed in pieces, CRC over all of them.
    const int64_t big_n = (int64_t(1) << 22) + 3;
    std::vector<uint8_t> big = random_bytes(size_t(big_n) * 4, 99);
    {
        PthWriter w(path);
        for (const Case& c : cases) w.add(c.name, c.dtype, c.shape, c.bytes.data());
        int chunks = 0;
        w.add_streamed("big", DType::F32, {big_n}, [&](void* out, int64_t first, int64_t n) {
            std::memcpy(out, big.data() + first * 4, size_t(n) * 4);
            ++chunks;
        });
        EXPECT_EQ(chunks, 2);
        EXPECT_FALSE(fs::exists(path)) << "the file appears only after finish()";
        w.finish();
    }
    ASSERT_TRUE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    auto src = open_pth(path);
    EXPECT_EQ(src->names().size(), cases.size() + 1);
    for (const Case& c : cases) {
        const StoredTensor* t = src->find(c.name);
        ASSERT_NE(t, nullptr) << c.name;
        EXPECT_EQ(t->dtype, c.dtype) << c.name;
        EXPECT_EQ(t->shape, c.shape) << c.name;
        ASSERT_EQ(t->nbytes, c.bytes.size()) << c.name;
        EXPECT_EQ(std::memcmp(t->data, c.bytes.data(), c.bytes.size()), 0) << c.name;
        EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 64, 0u) << c.name << " is not 64-byte aligned";
    }
    const StoredTensor* b = src->find("big");
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(b->nbytes, big.size());
    EXPECT_EQ(std::memcmp(b->data, big.data(), big.size()), 0);
}

TEST(PthWriter, CheckedByZipTools) {
    // The archive is a valid zip (CRCs included) for an independent reader, when one is installed.
    if (std::system("command -v python3 >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not installed";
    TempDir d;
    const std::string path = (d.path / "z.pth").string();
    std::vector<float> v(1000);
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f;
    {
        PthWriter w(path);
        w.add("w", DType::F32, {10, 100}, v.data());
        w.finish();
    }
    const std::string cmd = "python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); "
                            "sys.exit(1 if z.testzip() is not None else 0)\" " + path;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << "zipfile.testzip found a bad CRC";
}

TEST(PthWriter, AbandonedWriterLeavesNoFile) {
    TempDir d;
    const std::string path = (d.path / "x.pth").string();
    {
        PthWriter w(path);
        float x = 1;
        w.add("x", DType::F32, {1}, &x);
    }  // no finish()
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    expect_error([&] { PthWriter w((d.path / "no" / "such" / "dir.pth").string()); }, {"[pth]", "cannot write", "No such file or directory"});
}

TEST(PthWriter, SyntheticFolderPartsLoad) {
    TempDir d;
    const DemoConfig c = demo_config();
    write_t2v_extras(d.path.string(), c.t5, c.vae, 5);
    auto be = make_cpu_backend(1);
    // T5: the .pth holds exactly the in-memory synthetic weights.
    auto pth = open_pth((d.path / "models_t5_umt5-xxl-enc-bf16.pth").string());
    auto mem = synthetic_t5_weights(c.t5, 5);
    ASSERT_EQ(pth->names(), mem->names());
    for (const std::string& n : mem->names()) {
        const StoredTensor *a = pth->find(n), *b = mem->find(n);
        ASSERT_EQ(a->shape, b->shape) << n;
        ASSERT_EQ(a->nbytes, b->nbytes) << n;
        EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << n;
    }
    T5Encoder t5 = T5Encoder::load_file(d.path.string(), *be);
    EXPECT_EQ(t5.config.dim, c.t5.dim);
    EXPECT_EQ(t5.config.num_layers, c.t5.num_layers);
    // VAE: the config is recovered from the tensors alone, and the model loads.
    auto vsrc = open_weights_file((d.path / "Wan2.1_VAE.pth").string());
    const VaeConfig v = vae_config_from_weights(*vsrc);
    EXPECT_EQ(v.dim, c.vae.dim);
    EXPECT_EQ(v.z_dim, c.vae.z_dim);
    EXPECT_EQ(v.num_res_blocks, c.vae.num_res_blocks);
    EXPECT_NO_THROW(WanVae::load(vsrc, v, be));
    // A file that is not a VAE is refused by name.
    expect_error([&] { vae_config_from_weights(*pth); }, {"[model]", "not a Wan2.1 VAE"});
}

TEST(DemoTokenizer, IsDeterministicAndCoversAnyText) {
    const std::string& a = demo_tokenizer_model();
    EXPECT_GT(a.size(), 1000u);
    TempDir d;
    write_demo_tokenizer(d.path.string());
    text::T5Tokenizer tok(d.path.string(), 512);
    EXPECT_LE(tok.vocab_size(), kDemoVocab);
    // Characters never seen in training still tokenize (byte fallback), never as unk (2).
    auto t = tok.tokenize("A cat 🐱 runs, Ωmega ß 静态");
    EXPECT_EQ(t.ids[size_t(t.length - 1)], 1);
    for (int64_t i = 0; i + 1 < t.length; ++i) EXPECT_NE(t.ids[size_t(i)], 2) << i;
    EXPECT_EQ(tok.decode(t.real_ids()), "A cat 🐱 runs, Ωmega ß 静态");
}

}  // namespace wanrt::test
