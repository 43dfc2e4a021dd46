// libFuzzer target: the body of POST /v1/generate and the pictures it carries (server/upload.h),
// everything a client of `wanrt serve` sends before a job is queued, and the JPEG frames of the
// live stream. Byte 0 picks the form:
//   % 4 == 0  a JSON body (the "image" and "last_image" members as base64 or a data: URL)
//   % 4 == 1  a multipart/form-data body with the boundary "XyZ" (GMime)
//   % 4 == 2  "Content-Type value\n" then the body: the media type and boundary parsing too
//   % 4 == 3  a picture (PNG or JPEG by its first bytes; libpng, libjpeg-turbo), as a stream frame
// A picture that the body carries is decoded as the server does. Pictures are bounded at 2²² pixels
// (the server's default is 2²⁴; smaller keeps each input fast).
#include <string_view>

#include "fuzz_util.h"
#include "server/upload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    if (size < 1) return 0;
    const int mode = data[0] % 4;
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    constexpr int64_t kMaxPixels = int64_t(1) << 22;
    fuzz::expect_clean([&] {
        if (mode == 3) {
            const serve::RgbImage im = serve::decode_image(rest, kMaxPixels);
            if (im.rgb.size() != size_t(im.width * im.height * 3)) std::abort();  // a decoder bug
            return;
        }
        std::string_view type = mode == 0 ? "application/json" : "multipart/form-data; boundary=XyZ";
        if (mode == 2) {
            const size_t nl = rest.find('\n');
            if (nl == std::string_view::npos) return;
            type = rest.substr(0, nl);
            rest = rest.substr(nl + 1);
        }
        const serve::GenerateBody b = serve::parse_generate_body(type, rest, 1 << 20);
        if (!b.options.is_object() && !b.options.is_discarded()) return;  // parse_job_request refuses it
        if (b.has_image) serve::decode_image(b.image, kMaxPixels);
        if (b.has_last_image) serve::decode_image(b.last_image, kMaxPixels);
    });
    return 0;
}
