// libFuzzer target: the config.json of each model (DiT, umT5, CLIP, VAE), read and used as `info`
// and the loaders use it: validated, parameter counts and weight manifests computed, written back.
// The first byte picks the model; the rest is the JSON text (fuzz/json.dict).
#include "fuzz_util.h"
#include "models/clip.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/vae.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    if (size < 1) return 0;
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    fuzz::expect_clean([&] {
        switch (data[0] % 4) {
            case 0: {
                DitConfig c = DitConfig::from_json(text, "config.json");
                c.validate("config.json");
                (void)c.to_json();
                (void)dit_param_count(c);
                (void)dit_param_table(c);
                break;
            }
            case 1: {
                T5Config c = T5Config::from_json(text);
                (void)c.num_params();
                (void)c.to_json();
                break;
            }
            case 2: {
                ClipVisionConfig c = ClipVisionConfig::from_json(text, "config.json");
                c.validate("config.json");
                (void)c.tokens();
                break;
            }
            case 3: {
                VaeConfig c = VaeConfig::from_json(text);
                c.validate();
                (void)c.temporal_factor();
                (void)vae_weight_manifest(c);
                break;
            }
        }
    });
    return 0;
}
