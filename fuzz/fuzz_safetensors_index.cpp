// libFuzzer target: a sharded checkpoint's "<name>.safetensors.index.json" (weight_map, shard
// names), beside two valid shards: a-00001.safetensors holds "a", b-00002.safetensors holds "b".
#include <cstring>

#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    static const bool shards = [] {
        const float a[4] = {1, 2, 3, 4};
        const float b[2] = {5, 6};
        write_safetensors(fuzz::work_dir() + "/a-00001.safetensors", {{"a", DType::F32, {2, 2}, a}});
        write_safetensors(fuzz::work_dir() + "/b-00002.safetensors", {{"b", DType::F32, {2}, b}});
        return true;
    }();
    (void)shards;
    const std::string path = fuzz::write_file("model.safetensors.index.json", data, size);
    fuzz::expect_clean([&] {
        auto src = open_safetensors(path);
        fuzz::read_all(*src);
    });
    return 0;
}
