// libFuzzer target: a .safetensors file (header JSON, dtypes, shapes, offsets, metadata), opened
// and read as a model loader reads it, ComfyUI layouts through their adapter (prefix, scales, decode).
#include "fuzz_util.h"
#include "io/comfy_source.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    const std::string path = fuzz::write_file("model.safetensors", data, size);
    fuzz::expect_clean([&] {
        auto f = SafeTensorsFile::open(path);
        fuzz::read_all(*f);
        for (const auto& [k, v] : f->metadata()) (void)k.size(), (void)v.size();
        auto c = wrap_if_comfy(f);
        fuzz::read_all(*c);
        if (auto* comfy = dynamic_cast<const ComfyTensorSource*>(c.get())) fuzz::read_all(*comfy->stored_view());
    });
    return 0;
}
