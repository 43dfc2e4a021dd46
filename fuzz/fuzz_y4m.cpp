// libFuzzer target: a YUV4MPEG2 video (stream header parameters, FRAME headers, 8-bit C444/C420/
// C422/mono planes), read by wanrt's own reader (the input of `wanrt stream` without FFmpeg).
#include "fuzz_util.h"
#include "video/video_writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    const std::string path = fuzz::write_file("clip.y4m", data, size);
    fuzz::expect_clean([&] {
        Rgb24Video v = read_y4m(path);
        if (v.rgb.size() != size_t(v.frames) * v.frame_bytes()) std::abort();  // a reader bug
    });
    return 0;
}
