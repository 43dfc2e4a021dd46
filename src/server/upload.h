// The body of POST /v1/generate and the pictures it carries (no networking, no model: the fuzz target
// fuzz_upload runs all of it). Two body forms, so that both a script and a shell user have theirs:
//
//   application/json       {"prompt": "...", ..., "image": "<base64>"}: the image as standard base64,
//                          or a data URL ("data:image/png;base64,..."); whitespace inside is skipped.
//                          A first-last-frame job carries a second picture, "last_image", the same way.
//   multipart/form-data    curl -F image=@cat.jpg -F prompt="a cat" -F frame_num=17 (RFC 7578):
//                          the file parts "image" (and "last_image"), and the options either as fields of their own
//                          (text; the numeric ones are read as JSON numbers) or as one field
//                          "options" holding the JSON object. Parsed by GMime (Debian's
//                          libgmime-3.0), the MIME library of GNOME's mail tools: no hand-written
//                          multipart parser.
//
// Limits: the body is bounded before it is read (the HTTP layer's --max_upload_mib); each picture's
// bytes by max_image_bytes; an image's decoded size is bounded by its header before any pixel is decoded (max_pixels).
//
// Pictures (decode_image): PNG (libpng's simplified API: palette and grayscale expanded to RGB,
// 16-bit reduced to 8, alpha dropped, not blended, as PIL's convert("RGB") in the official
// generate.py) and JPEG (libjpeg-turbo's TurboJPEG API; a warning such as a truncated file is an
// error, as PIL refuses a truncated file). The format is told by the first bytes, not by a name.
// JPEG frames of the live stream use the same decoder and encode_jpeg.
//
// Errors: wanrt::Error "[serve] ..." one line (what, where, what to do); the HTTP layer answers 400.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wanrt::serve {

struct GenerateBody {
    nlohmann::json options = nlohmann::json::object();  // every key but the pictures
    bool has_image = false;
    std::string image;  // the picture's bytes (PNG or JPEG), not yet decoded
    bool has_last_image = false;
    std::string last_image;  // first-last-frame-to-video: the last frame's bytes, not yet decoded
};

// content_type: the request's Content-Type ("" = JSON). max_image_bytes bounds the picture's bytes.
GenerateBody parse_generate_body(std::string_view content_type, std::string_view body, size_t max_image_bytes);

// Standard base64 (RFC 4648 §4, '=' padding optional, ASCII whitespace skipped); any other character,
// or a length that leaves 1 dangling symbol, is an error naming `what`.
std::string base64_decode(std::string_view in, const char* what);

struct RgbImage {
    int64_t width = 0, height = 0;
    std::vector<uint8_t> rgb;  // height × width × 3, row-major
};

// PNG or JPEG bytes → 8-bit RGB. max_pixels bounds width·height (checked from the header).
RgbImage decode_image(std::string_view bytes, int64_t max_pixels, const char* what = "the image");
// JPEG of the first bytes (FF D8 FF)?
bool looks_like_jpeg(const uint8_t* data, size_t size);
// RGB (channels 3) or RGBA (4, alpha ignored) rows → JPEG (4:2:0, quality 1..100).
std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int64_t width, int64_t height, int channels, int quality);

}  // namespace wanrt::serve
