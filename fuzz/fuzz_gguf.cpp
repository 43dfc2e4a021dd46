// libFuzzer target: a GGUF v3 file (header, key/values with nested arrays, tensor infos, alignment,
// every ggml type's dequantizer), opened as the GGUF DiT loader opens it.
#include "fuzz_util.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    const std::string path = fuzz::write_file("model.gguf", data, size);
    fuzz::expect_clean([&] {
        auto f = GgufFile::open(path);
        (void)f->architecture();
        // Dequantize the small tensors directly (the big ones would only cost time).
        for (const GgufTensorInfo& t : f->tensors())
            if (t.nbytes <= (1u << 16) && t.type && t.type->dequantizable) (void)f->dequantize(t);
        GgufTensorSource src(f);
        fuzz::read_all(src);
    });
    return 0;
}
