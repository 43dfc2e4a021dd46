// umT5 encoder: golden against t5.safetensors (float64 official run) with weights from the
// safetensors file and from t5_weights.pth; padded batch vs real-tokens-only; Hugging Face names;
// bucket table; the embedding op; synthetic checkpoint round trip; bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <unistd.h>

#include "io/pth.h"
#include "models/t5.h"
#include "test_util.h"

using namespace wanrt;
using namespace wanrt::test;

namespace {

// The fixture's weights without its in./out. tensors.
class WeightsOnly final : public TensorSource {
public:
    explicit WeightsOnly(std::shared_ptr<TensorSource> s) : s_(std::move(s)) {}
    std::string origin() const override { return s_->origin(); }
    std::vector<std::string> names() const override {
        std::vector<std::string> out;
        for (auto& n : s_->names())
            if (n.rfind("in.", 0) != 0 && n.rfind("out.", 0) != 0 && n.rfind("mid.", 0) != 0) out.push_back(n);
        return out;
    }
    const StoredTensor* find(const std::string& n) const override {
        if (n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0) return nullptr;
        return s_->find(n);
    }
    std::shared_ptr<const void> keepalive() const override { return s_->keepalive(); }

private:
    std::shared_ptr<TensorSource> s_;
};

struct Golden {
    std::shared_ptr<SafeTensorsFile> file;
    T5Config meta_config;
    int64_t B = 0, L = 0, D = 0;
    std::vector<int32_t> ids;   // [B, L]
    std::vector<int32_t> lens;  // real tokens per sample
    std::vector<double> hidden; // [B, L, D]
};

Golden load_golden() {
    Golden g;
    g.file = open_fixture("t5.safetensors");
    g.meta_config = T5Config::from_json(g.file->metadata().at("config"));
    const StoredTensor& ids = stored(*g.file, "in.ids");
    const StoredTensor& out = stored(*g.file, "out.hidden");
    g.B = ids.shape[0];
    g.L = ids.shape[1];
    g.D = out.shape[2];
    std::vector<double> idv = load_f64(*g.file, "in.ids"), mask = load_f64(*g.file, "in.mask");
    for (double v : idv) g.ids.push_back(int32_t(v));
    for (int64_t b = 0; b < g.B; ++b) {
        int32_t n = 0;
        for (int64_t i = 0; i < g.L; ++i) {
            const double m = mask[size_t(b * g.L + i)];
            // The encoder's k_lens model needs the mask to be ones then zeros.
            if (i > 0 && m > 0) {
                EXPECT_GT(mask[size_t(b * g.L + i - 1)], 0) << "mask of sample " << b << " not a prefix";
            }
            n += m > 0;
        }
        g.lens.push_back(n);
    }
    g.hidden = load_f64(*g.file, "out.hidden");
    return g;
}

std::vector<double> rows(const std::vector<double>& x, int64_t b, int64_t L, int64_t D, int64_t n) {
    return {x.begin() + b * L * D, x.begin() + b * L * D + n * D};
}

// Runs both ways (padded batch, real tokens per sample) and checks them against the oracle.
void check_golden(const T5Encoder& enc, const Golden& g, const char* what) {
    auto be = enc.backend;
    ASSERT_EQ(enc.config.dim, g.D);
    Tensor ids = ops::from_host(*be, DType::I32, {g.B, g.L}, g.ids.data());
    std::vector<double> padded = to_f64(enc.forward(ids, g.lens));
    EXPECT_CLOSE(padded, g.hidden, 1e-4, std::string(what) + " padded batch, all rows");
    for (int64_t b = 0; b < g.B; ++b) {
        const int64_t n = g.lens[size_t(b)];
        std::vector<int32_t> real(g.ids.begin() + b * g.L, g.ids.begin() + b * g.L + n);
        std::vector<double> out = to_f64(enc.encode(real));
        EXPECT_CLOSE(out, rows(g.hidden, b, g.L, g.D, n), 1e-4, cat(what, " sample ", b, " real tokens (", n, ")"));
        // Real-tokens-only equals the padded run at the real positions (same op order: only the
        // excluded keys differ, and they contribute exactly 0).
        Err e = compare(out, rows(padded, b, g.L, g.D, n));
        EXPECT_LE(e.max_abs, 1e-5) << "sample " << b << ": real-only vs padded max abs " << e.max_abs;
        std::printf("  %-40s max abs %.3e (rel-L2 %.3e)\n", cat(what, " sample ", b, " real vs padded").c_str(),
                    e.max_abs, e.rel_l2);
    }
}

TEST(T5, GoldenFromSafetensors) {
    Golden g = load_golden();
    EXPECT_LT(g.lens[1], g.L) << "fixture's second sample should be padded";
    auto be = make_cpu_backend(2);
    T5Encoder enc = T5Encoder::load(std::make_shared<WeightsOnly>(g.file), *be);
    EXPECT_EQ(enc.config.to_json(), g.meta_config.to_json());
    EXPECT_EQ(enc.token_embedding.dtype(), DType::BF16);  // used in place, not widened
    EXPECT_EQ(enc.blocks[0].q.dtype(), DType::BF16);
    check_golden(enc, g, "safetensors");
}

TEST(T5, GoldenFromPth) {
    Golden g = load_golden();
    auto be = make_cpu_backend(2);
    const std::string pth = fixture_path("t5_weights.pth");
    ASSERT_TRUE(std::filesystem::exists(pth)) << "fixture file missing: " << pth;
    T5Encoder enc = T5Encoder::load_file(pth, *be);
    EXPECT_EQ(enc.config.to_json(), g.meta_config.to_json());
    EXPECT_EQ(enc.blocks[0].fc2.dtype(), DType::BF16);
    check_golden(enc, g, "pth");
}

// Hugging Face / ComfyUI UMT5 names map onto the same model: identical outputs.
TEST(T5, HuggingFaceNames) {
    Golden g = load_golden();
    auto src = std::make_shared<WeightsOnly>(g.file);
    auto hf = std::make_shared<MemoryTensorSource>("hf-umt5");
    const std::map<std::string, std::string> block = {
        {"norm1.weight", "layer.0.layer_norm.weight"},
        {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
        {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
        {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
        {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
        {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
        {"norm2.weight", "layer.1.layer_norm.weight"},
        {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},
        {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},
        {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"}};
    for (const auto& n : src->names()) {
        const StoredTensor& t = *src->find(n);
        std::string h;
        if (n == "token_embedding.weight") {
            h = "shared.weight";
            hf->add("encoder.embed_tokens.weight", t.dtype, t.shape, t.data);  // tied copy, as HF saves it
        } else if (n == "norm.weight") {
            h = "encoder.final_layer_norm.weight";
        } else {
            const size_t dot = n.find('.', 7);  // "blocks.<i>."
            h = "encoder.block." + n.substr(7, dot - 7) + "." + block.at(n.substr(dot + 1));
        }
        hf->add(h, t.dtype, t.shape, t.data);
    }
    // A full seq2seq file also carries the decoder: ignored.
    const uint16_t one = 0x3F80;
    hf->add("decoder.final_layer_norm.weight", DType::BF16, {1}, &one);
    auto be = make_cpu_backend(2);
    T5Encoder a = T5Encoder::load(src, *be), b = T5Encoder::load(hf, *be);
    EXPECT_EQ(a.config.to_json(), b.config.to_json());
    std::vector<int32_t> ids(g.ids.begin(), g.ids.begin() + g.lens[0]);
    std::vector<float> ya = ops::to_host_f32(a.encode(ids)), yb = ops::to_host_f32(b.encode(ids));
    ASSERT_EQ(ya.size(), yb.size());
    for (size_t i = 0; i < ya.size(); ++i) ASSERT_EQ(ya[i], yb[i]) << "element " << i;
    check_golden(b, g, "hf names");
}

// The n → bucket map of docs/wan21.md §4.3 (32 buckets, max distance 128), both directions.
TEST(T5, RelativeBuckets) {
    auto expect_n = [](int64_t n) -> int {
        if (n < 8) return int(n);
        if (n <= 11) return 8;
        if (n <= 15) return 9;
        if (n <= 22) return 10;
        if (n <= 31) return 11;
        if (n <= 45) return 12;
        if (n <= 63) return 13;
        if (n <= 90) return 14;
        return 15;
    };
    for (int64_t n = 0; n <= 1100; ++n) {
        EXPECT_EQ(t5_relative_bucket(-n, 32, 128), expect_n(n)) << "rel " << -n;
        if (n > 0) {
            EXPECT_EQ(t5_relative_bucket(n, 32, 128), 16 + expect_n(n)) << "rel " << n;
        }
    }
    // Bias layout: column j − i + Lq − 1 holds pos[bucket(j − i), h].
    auto be = make_cpu_backend(1);
    std::vector<float> pos(32 * 3);
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = float(i);
    StoredTensor st{"pos", DType::F32, {32, 3}, pos.data(), pos.size() * 4};
    const int64_t lq = 5, lk = 140;
    std::vector<float> bias = ops::to_host_f32(t5_rel_bias(*be, st, lq, lk, 128));
    ASSERT_EQ(bias.size(), size_t(3 * (lq + lk - 1)));
    for (int64_t h = 0; h < 3; ++h)
        for (int64_t i = 0; i < lq; ++i)
            for (int64_t j = 0; j < lk; ++j)
                ASSERT_EQ(bias[size_t(h * (lq + lk - 1) + j - i + lq - 1)], pos[size_t(t5_relative_bucket(j - i, 32, 128) * 3 + h)]);
}

// ops::embedding against a direct gather, for every table dtype, odd sizes, a strided ids view.
TEST(T5, EmbeddingOp) {
    auto be = make_cpu_backend(2);
    const int64_t V = 37, D = 19;
    std::vector<float> table = randn(size_t(V * D), 7);
    std::vector<int32_t> ids_all = {36, 0, 5, 5, 17, 2, 36, 1, 9};
    Tensor ids_full = ops::from_host(*be, DType::I32, {int64_t(ids_all.size())}, ids_all.data());
    Tensor ids = ids_full.reshape({3, 3}).select(1, 1);  // strided: 0, 17, 1
    const std::vector<int32_t> picked = {0, 17, 1};
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
        std::vector<uint16_t> half(table.size());
        const void* data = table.data();
        if (dt != DType::F32) {
            convert_elements(table.data(), DType::F32, half.data(), dt, int64_t(table.size()));
            data = half.data();
        }
        Tensor t = ops::from_host(*be, dt, {V, D}, data);
        std::vector<float> ref(table.size());
        convert_elements(data, dt, ref.data(), DType::F32, int64_t(table.size()));
        std::vector<float> y = ops::to_host_f32(ops::embedding(t, ids));
        ASSERT_EQ(y.size(), size_t(3 * D));
        for (size_t r = 0; r < 3; ++r)
            for (int64_t d = 0; d < D; ++d) ASSERT_EQ(y[r * D + size_t(d)], ref[size_t(picked[r] * D + d)]) << dtype_name(dt);
        std::vector<float> all = ops::to_host_f32(ops::embedding(t, ids_full));
        EXPECT_EQ(all.size(), ids_all.size() * size_t(D));
    }
    Tensor t = ops::from_host(*be, DType::F32, {V, D}, table.data());
    std::vector<int32_t> bad = {3, 37};
    Tensor bad_ids = ops::from_host(*be, DType::I32, {2}, bad.data());
    expect_error([&] { ops::embedding(t, bad_ids); }, {"[embedding]", "37", "outside"});
    expect_error([&] { ops::embedding(t, ids_full.reshape({3, 3})); }, {"[embedding]", "1-D"});
}

// Synthetic checkpoint (small config): written in the official layout, loaded from its folder.
TEST(T5, SyntheticRoundTrip) {
    T5Config c;
    c.vocab = 50;
    c.dim = 24;
    c.dim_attn = 16;
    c.dim_ffn = 40;
    c.num_heads = 2;
    c.num_layers = 3;
    const auto dir = std::filesystem::temp_directory_path() / cat("wanrt_t5_synth_", ::getpid());
    const std::string path = write_synthetic_t5(dir.string(), c, 3);
    EXPECT_EQ(std::filesystem::path(path).filename(), "models_t5_umt5-xxl-enc-bf16.safetensors");
    EXPECT_EQ(std::filesystem::file_size(path) > size_t(c.num_params() * 2), true);
    auto be = make_cpu_backend(1);
    {
        T5Encoder enc = T5Encoder::load_file(dir.string(), *be);
        EXPECT_EQ(enc.config.to_json(), c.to_json());
        EXPECT_EQ(c.num_params(), 50 * 24 + 3 * (2 * 24 + 4 * 24 * 16 + 3 * 24 * 40 + 32 * 2) + 24);
        std::vector<float> y = ops::to_host_f32(enc.encode({4, 9, 1}));
        ASSERT_EQ(y.size(), size_t(3 * 24));
        for (float v : y) ASSERT_TRUE(std::isfinite(v));
    }
    std::filesystem::remove_all(dir);
}

TEST(T5, BadInput) {
    auto be = make_cpu_backend(1);
    // A DiT file passed as the text encoder.
    auto dit = open_fixture("dit_t2v.safetensors");
    expect_error([&] { T5Encoder::load(dit, *be); }, {"[t5]", "not a umT5 encoder", "DiT"});
    // An unknown tensor is listed.
    Golden g = load_golden();
    auto src = std::make_shared<WeightsOnly>(g.file);
    auto extra = std::make_shared<MemoryTensorSource>("extra");
    for (auto& n : src->names()) {
        const StoredTensor& t = *src->find(n);
        extra->add(n, t.dtype, t.shape, t.data);
    }
    const float z = 0;
    extra->add("blocks.0.attn.bias", DType::F32, {1}, &z);
    expect_error([&] { T5Encoder::load(extra, *be); }, {"[t5]", "unexpected", "blocks.0.attn.bias"});
    // A missing and a mis-shaped tensor.
    auto missing = std::make_shared<MemoryTensorSource>("missing");
    auto bad_shape = std::make_shared<MemoryTensorSource>("bad_shape");
    for (auto& n : src->names()) {
        const StoredTensor& t = *src->find(n);
        if (n != "blocks.1.ffn.fc1.weight") missing->add(n, t.dtype, t.shape, t.data);
        Shape s = t.shape;
        if (n == "blocks.1.attn.o.weight") s = {s[1], s[0] / 2};
        bad_shape->add(n, t.dtype, s, t.data);
    }
    expect_error([&] { T5Encoder::load(missing, *be); }, {"[t5]", "missing", "blocks.1.ffn.fc1.weight"});
    expect_error([&] { T5Encoder::load(bad_shape, *be); }, {"[t5]", "blocks.1.attn.o.weight", "shape"});
    // Missing files and folders; token ids outside the vocabulary.
    expect_error([&] { T5Encoder::load_file("/nonexistent/models_t5.pth", *be); }, {"[t5]", "does not exist"});
    const auto empty = std::filesystem::temp_directory_path() / cat("wanrt_t5_empty_", ::getpid());
    std::filesystem::create_directories(empty);
    expect_error([&] { T5Encoder::load_file(empty.string(), *be); }, {"[t5]", "models_t5_umt5-xxl-enc-bf16.pth"});
    std::filesystem::remove_all(empty);
    T5Encoder enc = T5Encoder::load(src, *be);
    expect_error([&] { enc.encode({}); }, {"[t5]", "EOS"});
    expect_error([&] { enc.encode({5, int32_t(enc.config.vocab), 1}); }, {"[t5]", "vocabulary"});
}

}  // namespace
