// What the op table (tests/test_backend_ops.cpp, src/testing/op_table.h) does not check: the
// front-ends' error messages, the front-end helpers that are not ops (concat, full, zeros), and
// the CPU's fused kernels being exactly their unfused composition.
#include "test_util.h"

namespace wanrt::test {

namespace {

std::shared_ptr<Backend> cpu() {
    static auto be = make_cpu_backend(2);
    return be;
}

std::vector<double> host(const Tensor& t) { return to_f64(t); }

}  // namespace

TEST(Ops, ConcatFullZeros) {
    auto be = cpu();
    Tensor a = randn_tensor(*be, {2, 3, 4}, 1), b = randn_tensor(*be, {2, 5, 4}, 2);
    Tensor c = ops::concat({a, b}, 1);
    ASSERT_EQ(c.shape(), (Shape{2, 8, 4}));
    auto as = host(a), bs = host(b), cs = host(c);
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 8; ++j)
            for (int k = 0; k < 4; ++k)
                ASSERT_EQ(cs[(i * 8 + j) * 4 + k], j < 3 ? as[(i * 3 + j) * 4 + k] : bs[(i * 5 + j - 3) * 4 + k]);
    expect_error([&] { ops::concat({a, randn_tensor(*be, {2, 5, 3}, 2)}, 1); }, {"[concat]", "differ"});
    EXPECT_EQ(ops::zeros(*be, {3, 3}).numel(), 9);
    for (double v : host(ops::full(*be, DType::F32, {7}, 2.5f))) EXPECT_EQ(v, 2.5);
}

// The fused q/k path equals its composition (rms_norm over the token's H·d values, then rope)
// exactly on the CPU, padding tokens included (normalised, not rotated): the goldens do not move.
TEST(Ops, RmsNormRopeIsItsComposition) {
    auto be = cpu();
    const int64_t B = 2, L = 31, H = 3, D = 20;
    Tensor x = randn_tensor(*be, {B, L, H, D}, 5);
    std::vector<RopeGrid> grids = {{2, 3, 5, 0}, {1, 4, 7, 3}};
    Tensor table = randn_tensor(*be, {16, D / 2, 2}, 6);
    Tensor w = randn_tensor(*be, {H * D}, 7);
    const Tensor fused = ops::rms_norm_rope(x, w, 1e-6f, grids, table);
    const Tensor composed = ops::rope(ops::rms_norm(x.reshape({B, L, H * D}), w, 1e-6f).reshape({B, L, H, D}), grids, table);
    EXPECT_EQ(host(fused), host(composed));
}

TEST(Ops, ShapeErrors) {
    auto be = cpu();
    Tensor x = randn_tensor(*be, {4, 8}, 1), w = randn_tensor(*be, {5, 9}, 2);
    expect_error([&] { ops::linear(x, w); }, {"[linear]", "does not match"});
    // An op name nothing registers is a caller's bug, not "unsupported".
    expect_error([&] { (void)be->supports("atention", DType::F32); }, {"[registry]", "atention"});
    EXPECT_TRUE(be->supports(AttentionArgs::kName, DType::F32, DType::F32));
    // bf16 activations between linears are a GPU layout; the CPU keeps f32 and says so.
    Tensor w8 = randn_tensor(*be, {5, 8}, 2);
    EXPECT_EQ(ops::linear_chain_dtype(*be, DType::BF16), DType::F32);
    expect_error([&] { ops::linear(x, w8, nullptr, Activation::None, DType::BF16); }, {"[linear]", "bf16", "not supported"});
    expect_error([&] { ops::linear(ops::to_dtype(x, DType::BF16), w8); }, {"[linear]", "bf16", "not supported"});
    Tensor q = randn_tensor(*be, {1, 4, 3, 8}, 1), k = randn_tensor(*be, {1, 5, 2, 8}, 1);
    expect_error([&] { ops::attention(q, k, k); }, {"[attention]", "multiple"});
    AttentionParams p;
    p.k_lens = {9};
    Tensor k2 = randn_tensor(*be, {1, 5, 3, 8}, 1);
    expect_error([&] { ops::attention(q, k2, k2, p); }, {"[attention]", "k_lens"});
    // The CPU keeps K/V in f32 (a bf16 KV cache is a GPU layout): refused, not widened silently.
    EXPECT_FALSE(be->supports(AttentionArgs::kName, DType::F32, DType::BF16));
    Tensor kb = ops::to_dtype(k2, DType::BF16);
    expect_error([&] { ops::attention(q, kb, kb); }, {"[attention]", "bf16", "not supported"});
    expect_error([&] { ops::attention(q, k2, kb); }, {"[attention]", "share a dtype"});
    // rope: positions past the table, a weight of the wrong size for the fused norm
    Tensor xr = randn_tensor(*be, {2, 31, 3, 20}, 5), table = randn_tensor(*be, {16, 10, 2}, 6);
    expect_error([&] { ops::rope(xr, {{2, 3, 5, 15}, {1, 4, 7, 0}}, table); }, {"[rope]", "RoPE table"});
    expect_error([&] { ops::rms_norm_rope(xr, randn_tensor(*be, {20}, 7), 1e-6f, {{2, 3, 5, 0}, {1, 4, 7, 3}}, table); },
                 {"[rms_norm_rope]", "weight"});
    expect_error([&] { ops::add(randn_tensor(*be, {3, 4}, 1), randn_tensor(*be, {5}, 1)); }, {"[binary]", "broadcast"});
    expect_error([&] { ops::patchify(randn_tensor(*be, {3, 2, 5, 4}, 1), 1, 2, 2); }, {"[patchify]", "not divisible"});
}

// The fixture policy (tests/test_util.h): found beside the repo when not in tests/fixtures (the
// large files), and a missing file is an error naming every folder searched.
TEST(Fixtures, SearchOrderAndMissingFile) {
    EXPECT_EQ(fixture_dirs().back(), WANRT_SHARED_FIXTURES);
    EXPECT_TRUE(std::filesystem::exists(fixture_path("dit_i2v.safetensors")));
    try {
        fixture_path("no_such_fixture.safetensors");
        ADD_FAILURE() << "a missing fixture must throw";
    } catch (const std::runtime_error& e) {
        const std::string msg = e.what();
        for (const std::string& d : fixture_dirs()) EXPECT_NE(msg.find(d), std::string::npos) << msg;
    }
}

}  // namespace wanrt::test
