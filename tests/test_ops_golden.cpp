// Golden tests of single ops against ops.safetensors (the official functions in float64).
// Every case listed in the file's metadata is run; shapes and parameters come from the file.
#include <regex>

#include "models/dit.h"
#include "test_util.h"

namespace wanrt::test {

class OpsGolden : public ::testing::Test {
protected:
    std::shared_ptr<Backend> be = make_cpu_backend(2);
    std::shared_ptr<SafeTensorsFile> f = open_fixture("ops.safetensors");
};

TEST_F(OpsGolden, SinusoidalEmbedding) {
    int found = 0;
    for (const std::string& name : f->names()) {
        std::smatch m;
        if (!std::regex_match(name, m, std::regex("out\\.sin_emb_(\\d+)"))) continue;
        ++found;
        const int64_t dim = std::stoll(m[1]);
        auto out = sinusoidal_embedding_f64(load_f64(*f, "in.sin_pos"), dim);
        EXPECT_CLOSE(out, load_f64(*f, name), 1e-12, name);
    }
    EXPECT_GT(found, 0);
}

TEST_F(OpsGolden, RopeTable) {
    int found = 0;
    for (const std::string& name : f->names()) {
        std::smatch m;
        if (!std::regex_match(name, m, std::regex("out\\.rope_freqs_d(\\d+)"))) continue;
        ++found;
        const StoredTensor& st = stored(*f, name);  // [P, d/2, 2]
        auto tab = rope_table_f64(std::stoll(m[1]), st.shape[0]);
        EXPECT_CLOSE(tab, load_f64(*f, name), 1e-12, name);
    }
    EXPECT_GT(found, 0);
}

TEST_F(OpsGolden, RopeApply) {
    Tensor x = load_f32(*be, *f, "in.rope_x");  // [B, L, heads, d]
    const int64_t d = x.size(3);
    EXPECT_EQ(d, std::stoll(f->metadata().at("rope_head_dim")));
    auto grid = load_f64(*f, "in.rope_grid");  // [B, 3]
    std::vector<RopeGrid> grids;
    for (int64_t b = 0; b < x.size(0); ++b)
        grids.push_back({int64_t(grid[b * 3]), int64_t(grid[b * 3 + 1]), int64_t(grid[b * 3 + 2]), 0});
    auto tab = rope_table_f64(d);
    std::vector<float> tab32(tab.begin(), tab.end());
    Tensor table = ops::from_host(*be, DType::F32, {1024, d / 2, 2}, tab32.data());
    EXPECT_CLOSE(ops::rope(x, grids, table), load_f64(*f, "out.rope_y"), 1e-5, "rope_y");
}

TEST_F(OpsGolden, Norms) {
    Tensor x = load_f32(*be, *f, "in.norm_x");
    int found = 0;
    for (const std::string& name : f->names()) {
        std::smatch m;
        if (!std::regex_match(name, m, std::regex("out\\.(rmsnorm|layernorm_affine|layernorm_plain)_eps(.+)"))) continue;
        ++found;
        const float eps = std::stof(m[2]);
        Tensor y;
        if (m[1] == "rmsnorm") {
            Tensor w = load_f32(*be, *f, "norm.rms.weight");
            y = ops::rms_norm(x, w, eps);
        } else if (m[1] == "layernorm_affine") {
            Tensor w = load_f32(*be, *f, "norm.ln.weight"), b = load_f32(*be, *f, "norm.ln.bias");
            y = ops::layer_norm(x, &w, &b, eps);
        } else {
            y = ops::layer_norm(x, nullptr, nullptr, eps);
        }
        EXPECT_CLOSE(y, load_f64(*f, name), 1e-5, name);
    }
    EXPECT_EQ(found, 3);
}

TEST_F(OpsGolden, AttentionCases) {
    nlohmann::json cases = meta_json(*f, "cases");
    ASSERT_GT(cases.size(), 0u);
    for (auto& [name, c] : cases.items()) {
        const std::string pre = "in.attn_" + name + ".";
        Tensor q = load_f32(*be, *f, pre + "q"), k = load_f32(*be, *f, pre + "k"), v = load_f32(*be, *f, pre + "v");
        EXPECT_EQ(q.size(1), c["lq"].get<int64_t>());
        EXPECT_EQ(k.size(1), c["lk"].get<int64_t>());
        AttentionParams p;
        if (c.contains("k_lens")) {
            auto kl = load_f64(*f, pre + "k_lens");
            for (double l : kl) p.k_lens.push_back(int32_t(l));
        }
        if (c.contains("causal")) p.causal = c["causal"].get<bool>();
        if (c.contains("q_scale")) p.q_scale = c["q_scale"].get<float>();
        if (c.contains("softmax_scale")) p.softmax_scale = c["softmax_scale"].get<float>();
        if (c.contains("window_size")) {
            p.window_left = c["window_size"][0].get<int>();
            p.window_right = c["window_size"][1].get<int>();
        }
        EXPECT_CLOSE(ops::attention(q, k, v, p), load_f64(*f, "out.attn_" + name), 1e-5, "attention " + name);
    }
}

}  // namespace wanrt::test
