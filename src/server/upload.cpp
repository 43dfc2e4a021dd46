// POST /v1/generate bodies and pictures (upload.h says what is accepted and why these libraries).
#include "server/upload.h"

#include <gmime/gmime.h>
#include <png.h>
#include <turbojpeg.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <set>

#include "core/error.h"

namespace wanrt::serve {

using json = nlohmann::json;

namespace {

// GObject references released on every way out.
struct Unref {
    void operator()(void* p) const {
        if (p) g_object_unref(p);
    }
};
template <class T>
using GPtr = std::unique_ptr<T, Unref>;

void gmime_init_once() {
    static std::once_flag once;
    std::call_once(once, [] { g_mime_init(); });
}

std::string lower(std::string_view s) {
    std::string o(s);
    for (char& c : o)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return o;
}

std::string media_type(std::string_view content_type) {
    const size_t semi = content_type.find(';');
    std::string t = lower(content_type.substr(0, semi));
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.erase(t.begin());
    return t;
}

// The options whose values are text; every other form field is read as a JSON number (or left as
// text, which parse_job_request then refuses with the option's name).
bool is_text_option(const std::string& k) {
    static const std::set<std::string> text = {"prompt", "neg_prompt", "size", "sample_solver", "format"};
    return text.count(k) > 0;
}

GenerateBody parse_multipart(std::string_view content_type, std::string_view body, size_t max_image_bytes) {
    for (char c : content_type)
        WANRT_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "serve",
                    "the Content-Type header holds a control character; send multipart/form-data; boundary=...");
    WANRT_CHECK(lower(content_type).find("boundary=") != std::string::npos, "serve",
                "multipart/form-data without a boundary parameter; let your client build the body (curl -F, "
                "requests files=)");
    gmime_init_once();
    // GMime parses a MIME entity: the Content-Type header, a blank line, the body.
    GByteArray* bytes = g_byte_array_sized_new(guint(content_type.size() + body.size() + 20));
    const std::string head = "Content-Type: " + std::string(content_type) + "\r\n\r\n";
    g_byte_array_append(bytes, reinterpret_cast<const guint8*>(head.data()), guint(head.size()));
    g_byte_array_append(bytes, reinterpret_cast<const guint8*>(body.data()), guint(body.size()));
    GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_byte_array(bytes));  // owns bytes
    GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    GPtr<GMimeObject> root(g_mime_parser_construct_part(parser.get(), nullptr));
    WANRT_CHECK(root && GMIME_IS_MULTIPART(root.get()), "serve",
                "the multipart/form-data body could not be parsed; let your client build it (curl -F, requests files=)");
    GMimeMultipart* mp = GMIME_MULTIPART(root.get());
    const int n = g_mime_multipart_get_count(mp);
    WANRT_CHECK(n > 0, "serve", "the multipart/form-data body has no parts (is the boundary right?); send at least "
                "a \"prompt\" field");
    GenerateBody out;
    std::set<std::string> seen;
    for (int i = 0; i < n; ++i) {
        GMimeObject* part = g_mime_multipart_get_part(mp, i);
        WANRT_CHECK(GMIME_IS_PART(part), "serve", "part ", i + 1,
                    " of the form is itself multipart; send flat form fields (prompt, image, ...)");
        const char* name_c = g_mime_object_get_content_disposition_parameter(part, "name");
        WANRT_CHECK(name_c != nullptr && *name_c, "serve", "part ", i + 1,
                    " of the form has no name (Content-Disposition: form-data; name=\"...\")");
        const std::string name(name_c, strnlen(name_c, 256));
        WANRT_CHECK(seen.insert(name).second, "serve", "the form field \"", name.substr(0, 64),
                    "\" is given twice; send it once");
        std::string value;
        if (GMimeDataWrapper* w = g_mime_part_get_content(GMIME_PART(part))) {
            GPtr<GMimeStream> mem(g_mime_stream_mem_new());
            WANRT_CHECK(g_mime_data_wrapper_write_to_stream(w, mem.get()) >= 0, "serve", "the form field \"",
                        name.substr(0, 64), "\" could not be read");
            GByteArray* a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
            value.assign(reinterpret_cast<const char*>(a->data), a->len);
        }
        if (name == "image" || name == "last_image") {
            WANRT_CHECK(value.size() <= max_image_bytes, "serve", "the ", name == "image" ? "image" : "last_image",
                        " is ", value.size(), " bytes; this server takes at most ", max_image_bytes);
            (name == "image" ? out.image : out.last_image) = std::move(value);
            (name == "image" ? out.has_image : out.has_last_image) = true;
        } else if (name == "options") {
            const json o = json::parse(value, nullptr, false);
            WANRT_CHECK(!o.is_discarded() && o.is_object(), "serve",
                        "the form field \"options\" must hold a JSON object such as {\"frame_num\": 17}");
            for (auto it = o.begin(); it != o.end(); ++it) {
                WANRT_CHECK(!out.options.contains(it.key()) && it.key() != "image" && it.key() != "last_image", "serve",
                            "option \"", it.key().substr(0, 64), "\" is given twice (a form field and in \"options\")");
                out.options[it.key()] = it.value();
            }
        } else {
            WANRT_CHECK(!out.options.contains(name), "serve", "option \"", name.substr(0, 64),
                        "\" is given twice (a form field and in \"options\")");
            json v = is_text_option(name) ? json() : json::parse(value, nullptr, false);
            out.options[name] = !v.is_discarded() && v.is_number() ? v : json(value);
        }
    }
    return out;
}

// A picture of a JSON body: the key's base64 (or data: URL) decoded into `out` and the key removed,
// so that the rest are the options. false when the key is absent.
bool take_picture(json& j, const char* key, size_t max_image_bytes, std::string& out) {
    if (!j.contains(key)) return false;
    const json& v = j[key];
    WANRT_CHECK(v.is_string(), "serve", "\"", key,
                "\" must be a string: the PNG or JPEG file as base64 (or a data: URL)");
    std::string_view s = v.get_ref<const std::string&>();
    if (s.rfind("data:", 0) == 0) {  // data:image/png;base64,....
        const size_t comma = s.find(',');
        WANRT_CHECK(comma != std::string_view::npos && s.substr(0, comma).find(";base64") != std::string_view::npos,
                    "serve", "\"", key, "\" is a data: URL but not a base64 one; send data:image/png;base64,...");
        s = s.substr(comma + 1);
    }
    WANRT_CHECK(s.size() / 4 * 3 <= max_image_bytes + 3, "serve", "the ", key, " is about ", s.size() / 4 * 3,
                " bytes; this server takes at most ", max_image_bytes);
    const std::string what = std::string("\"") + key + "\"";
    out = base64_decode(s, what.c_str());
    WANRT_CHECK(!out.empty(), "serve", "\"", key, "\" is empty; send the PNG or JPEG file as base64");
    j.erase(key);
    return true;
}

}  // namespace

std::string base64_decode(std::string_view in, const char* what) {
    std::string out;
    out.reserve(in.size() / 4 * 3 + 3);
    uint32_t acc = 0;
    int bits = 0, symbols = 0;
    bool padding = false;
    for (size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        else if (c == '=') {
            padding = true;
            continue;
        } else
            fail("serve", what, " is not base64: byte ", i, " is ",
                 (c >= 0x21 && c < 0x7f) ? std::string("'") + c + "'" : std::string("a control or non-ASCII byte"),
                 "; send standard base64 (A-Z a-z 0-9 + /)");
        WANRT_CHECK(!padding, "serve", what, " is not base64: data after '=' padding at byte ", i);
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        ++symbols;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(char((acc >> bits) & 0xff));
        }
    }
    WANRT_CHECK(symbols % 4 != 1, "serve", what, " is not base64: its length leaves a dangling symbol (truncated?)");
    return out;
}

GenerateBody parse_generate_body(std::string_view content_type, std::string_view body, size_t max_image_bytes) {
    const std::string mt = media_type(content_type);
    if (mt == "multipart/form-data") return parse_multipart(content_type, body, max_image_bytes);
    WANRT_CHECK(mt.empty() || mt == "application/json" || mt == "text/plain" ||
                    mt == "application/x-www-form-urlencoded",  // curl -d's default; the body is still JSON
                "serve", "unsupported Content-Type \"", std::string(content_type.substr(0, 80)),
                "\"; send application/json (image as base64) or multipart/form-data (curl -F image=@in.png)");
    GenerateBody out;
    json j = json::parse(body, nullptr, false);
    WANRT_CHECK(!j.is_discarded(), "serve", "the body is not valid JSON; send e.g. {\"prompt\": \"a cat\"}");
    if (j.is_object()) {
        out.has_image = take_picture(j, "image", max_image_bytes, out.image);
        out.has_last_image = take_picture(j, "last_image", max_image_bytes, out.last_image);
    }
    out.options = std::move(j);
    return out;
}

bool looks_like_jpeg(const uint8_t* d, size_t n) {
    return n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff;
}

namespace {

bool looks_like_png(const uint8_t* d, size_t n) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return n >= 8 && std::memcmp(d, sig, 8) == 0;
}

void check_pixels(int64_t w, int64_t h, int64_t max_pixels, const char* what) {
    WANRT_CHECK(w > 0 && h > 0, "serve", what, " has an empty size ", w, "x", h);
    WANRT_CHECK(w * h <= max_pixels, "serve", what, " is ", w, "x", h, " pixels; this server takes at most ",
                max_pixels, " pixels: scale it down (the video is at most the job's size anyway)");
}

RgbImage decode_png(const uint8_t* d, size_t n, int64_t max_pixels, const char* what) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    struct Free {
        png_image* p;
        ~Free() { png_image_free(p); }
    } guard{&img};
    WANRT_CHECK(png_image_begin_read_from_memory(&img, d, n) != 0, "serve", what, " is not a valid PNG (", img.message,
                "); send a PNG or JPEG file");
    check_pixels(img.width, img.height, max_pixels, what);
    img.format = PNG_FORMAT_RGBA;  // alpha kept here, then dropped (not blended), as PIL's convert("RGB")
    std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(img));
    WANRT_CHECK(png_image_finish_read(&img, nullptr, rgba.data(), 0, nullptr) != 0, "serve", what,
                " is not a valid PNG (", img.message, "); send a PNG or JPEG file");
    RgbImage out;
    out.width = img.width;
    out.height = img.height;
    const size_t px = size_t(out.width * out.height);
    out.rgb.resize(px * 3);
    for (size_t i = 0; i < px; ++i)
        for (size_t c = 0; c < 3; ++c) out.rgb[i * 3 + c] = rgba[i * 4 + c];
    return out;
}

struct TjFree {
    void operator()(void* h) const {
        if (h) tjDestroy(h);
    }
};
using TjHandle = std::unique_ptr<void, TjFree>;

RgbImage decode_jpeg(const uint8_t* d, size_t n, int64_t max_pixels, const char* what) {
    // One handle per thread (stream frames are decoded at the frame rate), made anew after any
    // failure: libjpeg-turbo 2.1's handle can be left in a state where the next header reads as 0x0.
    thread_local TjHandle tj;
    if (!tj) tj.reset(tjInitDecompress());
    WANRT_CHECK(tj != nullptr, "serve", "cannot start the JPEG decoder: ", tjGetErrorStr2(nullptr));
    WANRT_CHECK(n <= 0xffffffffull, "serve", what, " is over 4 GiB");
    auto failed = [&](const char* hint) {
        const std::string why = tjGetErrorStr2(tj.get());
        tj.reset();
        fail("serve", what, " is not a valid JPEG (", why, "); ", hint);
    };
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(tj.get(), d, static_cast<unsigned long>(n), &w, &h, &subsamp, &colorspace) != 0)
        failed("send a PNG or JPEG file");
    if (w <= 0 || h <= 0) tj.reset();
    check_pixels(w, h, max_pixels, what);
    RgbImage out;
    out.width = w;
    out.height = h;
    out.rgb.resize(size_t(w) * size_t(h) * 3);
    // TJFLAG_STOPONWARNING: a truncated or corrupt file is refused rather than padded with grey. The
    // default DCT (islow) and fancy upsampling are libjpeg's defaults, which PIL uses.
    if (tjDecompress2(tj.get(), d, static_cast<unsigned long>(n), out.rgb.data(), w, 0, h, TJPF_RGB,
                      TJFLAG_STOPONWARNING) != 0)
        failed("send a whole PNG or JPEG file");
    return out;
}

}  // namespace

RgbImage decode_image(std::string_view bytes, int64_t max_pixels, const char* what) {
    const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
    if (looks_like_png(d, bytes.size())) return decode_png(d, bytes.size(), max_pixels, what);
    if (looks_like_jpeg(d, bytes.size())) return decode_jpeg(d, bytes.size(), max_pixels, what);
    fail("serve", what, " (", bytes.size(), " bytes) is neither PNG nor JPEG by its first bytes; send a PNG or JPEG file");
}

std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int64_t width, int64_t height, int channels, int quality) {
    WANRT_CHECK(channels == 3 || channels == 4, "serve", "encode_jpeg takes RGB or RGBA, not ", channels, " channels");
    WANRT_CHECK(quality >= 1 && quality <= 100, "serve", "JPEG quality ", quality, " must be in [1, 100]");
    thread_local TjHandle tj;
    if (!tj) tj.reset(tjInitCompress());
    WANRT_CHECK(tj != nullptr, "serve", "cannot start the JPEG encoder: ", tjGetErrorStr2(nullptr));
    unsigned char* buf = nullptr;
    unsigned long size = 0;
    const int rc = tjCompress2(tj.get(), pixels, int(width), 0, int(height), channels == 3 ? TJPF_RGB : TJPF_RGBX,
                               &buf, &size, TJSAMP_420, quality, 0);
    std::unique_ptr<unsigned char, void (*)(unsigned char*)> own(buf, [](unsigned char* p) { tjFree(p); });
    if (rc != 0) {
        const std::string why = tjGetErrorStr2(tj.get());
        tj.reset();  // made anew for the next frame (see decode_jpeg)
        fail("serve", "JPEG encoding of a ", width, "x", height, " frame failed: ", why);
    }
    return std::vector<uint8_t>(buf, buf + size);
}

}  // namespace wanrt::serve
