// libFuzzer target: LoRA files (models/lora.h) for a small Wan2.1 T2V DiT. The rest of the input is a
// .safetensors LoRA: its keys go through every format's name mapping (ComfyUI/kohya, musubi's
// underscored names, diffusers/PEFT, lightx2v differences), the shape checks against the model, alpha
// and the metadata's lora_alpha; the deltas are then merged into the model's f32 weights (bit 0 of
// the first byte) or, the vectors merged, the matrices attached as run-time branches (bit 1), as
// `--lora_mode merge|runtime` does.
#include <cstring>

#include "core/backend.h"
#include "fuzz_util.h"
#include "models/dit.h"
#include "models/dit_weights.h"
#include "models/lora.h"

namespace {

// The dit_t2v fixture's shape: 2 blocks of width 64, 2 heads, text_dim 48.
const char* kConfig =
    R"({"model_type": "t2v", "patch_size": [1, 2, 2], "text_len": 16, "in_dim": 16, "dim": 64, "ffn_dim": 128,
        "freq_dim": 32, "text_dim": 48, "out_dim": 16, "num_heads": 2, "num_layers": 2, "window_size": [-1, -1],
        "qk_norm": true, "cross_attn_norm": true, "eps": 1e-06})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    if (size < 1) return 0;
    static const DitConfig cfg = DitConfig::from_json(kConfig, "fuzz_lora");
    static std::shared_ptr<Backend> cpu = make_cpu_backend(1);
    // The base: every parameter zero, f32 (merging is exact there).
    static const std::shared_ptr<MemoryTensorSource> base = [] {
        auto src = std::make_shared<MemoryTensorSource>("fuzz_lora base");
        for (const ParamSpec& p : dit_param_table(cfg))
            std::memset(src->add_uninitialized(p.name, DType::F32, p.shape), 0, size_t(shape_numel(p.shape)) * 4);
        return src;
    }();
    // One model, its branches cleared before each input's are attached (construction per input
    // halved the exec rate).
    static const std::unique_ptr<DitModel> model = std::make_unique<DitModel>(cfg, base, *cpu);
    const std::string path = fuzz::write_file("lora.safetensors", data + 1, size - 1);
    fuzz::expect_clean([&] {
        const std::vector<LoraDelta> deltas = load_lora_file({path, data[0] & 4 ? 0.5f : 1.0f}, cfg);
        if (data[0] & 1) (void)merge_lora(base, "", deltas)->names();
        if (data[0] & 2) {
            (void)merge_lora(base, "", deltas, false)->names();
            for (auto& [name, l] : dit_linears(model->mutable_weights(), cfg)) l->lora.clear();
            attach_lora(*model, deltas);
        }
    });
    return 0;
}
