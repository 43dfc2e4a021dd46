// libFuzzer target: weight files whose names and shapes drive the loaders (a stray adapter or a
// mislabelled checkpoint: a valid container of unexpected names and shapes): the configs derived
// from tensor shapes and the strict weight loader (LoRA files: fuzz_lora). The first byte picks the
// model; the rest is a .safetensors file.
#include "core/backend.h"
#include "fuzz_util.h"
#include "models/dit.h"
#include "models/t5.h"
#include "pipeline/model_folder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    if (size < 1) return 0;
    static std::shared_ptr<Backend> cpu = make_cpu_backend(1);
    const std::string path = fuzz::write_file("weights.safetensors", data + 1, size - 1);
    fuzz::expect_clean([&] {
        switch (data[0] % 4) {
            case 0: {
                DitCheckpoint ck = open_dit_checkpoint(path);
                ck.config.validate(ck.config_origin);
                // Loading runs the strict shape checks; only small models, for speed.
                if (dit_param_count(ck.config) <= (int64_t(1) << 20)) DitModel m(ck.config, ck.weights, *cpu);
                break;
            }
            case 1: {
                VaeConfig c = vae_config_from_weights(*open_weights_file(path));
                c.validate();
                break;
            }
            case 2: {
                ClipVisionConfig c = clip_config_from_weights(*open_weights_file(path));
                c.validate(path);
                break;
            }
            case 3: {
                T5Config c = t5_config_from_source(*open_weights_file(path));
                (void)c.num_params();
                break;
            }
        }
    });
    return 0;
}
