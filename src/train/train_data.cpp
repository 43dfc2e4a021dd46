// Training data: the folder scan, the latent/context cache (train/train_data.h).
#include "train/train_data.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/output_file.h"
#include "io/safetensors.h"
#include "models/vae.h"
#include "ops/ops.h"
#include "video/video_writer.h"

namespace wanrt {

namespace fs = std::filesystem;

namespace {

bool is_image(const std::string& ext) {
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp";
}
bool is_video(const std::string& ext) {
    return ext == ".y4m" || ext == ".mp4" || ext == ".webm" || ext == ".mkv" || ext == ".mov" || ext == ".avi";
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    WANRT_CHECK(in.good(), "train", "cannot read ", path, "; check the file's permissions");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string trimmed(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

Rgb24Video read_media(const std::string& path, int64_t max_frames) {
    const std::string ext = lower(fs::path(path).extension().string());
    if (is_image(ext)) return read_image(path);
    if (ext == ".y4m") return read_y4m(path, max_frames);
    return read_video(path, max_frames);
}

uint64_t mix(uint64_t h, const std::string& s) {
    return fnv1a64(s.data(), s.size(), h);
}
uint64_t mix(uint64_t h, int64_t v) {
    return fnv1a64(&v, sizeof v, h);
}

std::string hex(uint64_t k) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(k));
    return b;
}

std::string cache_dir_of(const TrainDataOptions& o) {
    return o.cache_dir.empty() ? (fs::path(o.dir) / ".wanrt_cache").string() : o.cache_dir;
}

// A cached tensor when present with the expected shape (dims < 0 are free), else undefined.
Tensor load_cached(const std::string& path, const Shape& want, Backend& be) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return {};
    std::shared_ptr<SafeTensorsFile> f;
    try {
        f = SafeTensorsFile::open(path);
    } catch (const std::exception&) {
        return {};  // a damaged entry is recomputed
    }
    const StoredTensor* t = f->find("value");
    if (!t || t->dtype != DType::F32 || t->shape.size() != want.size()) return {};
    for (size_t i = 0; i < want.size(); ++i)
        if (want[i] >= 0 && t->shape[i] != want[i]) return {};
    return ops::from_host(be, DType::F32, t->shape, t->data);
}

void store_cached(const std::string& path, const Tensor& v, const std::map<std::string, std::string>& md) {
    const std::vector<float> h = ops::to_host_f32(v);
    write_safetensors(path, {{"value", DType::F32, v.shape(), h.data()}}, md);
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

std::vector<TrainItem> scan_train_data(const TrainDataOptions& o, const T2VModelParts& m) {
    std::error_code ec;
    WANRT_CHECK(!o.dir.empty() && fs::is_directory(o.dir, ec), "train", "--data ", o.dir,
                " is not a folder; pass a folder of videos/images with a caption .txt beside each");
    WANRT_CHECK(o.frames == 0 || (o.frames >= 1 && (o.frames - 1) % 4 == 0), "train", "--frames ", o.frames,
                " must be 1 + 4k (1, 5, 9, …) or 0 for every such frame of each clip");
    std::vector<fs::path> files;
    for (const fs::directory_entry& e : fs::directory_iterator(o.dir, ec)) {
        const std::string ext = lower(e.path().extension().string());
        if (e.is_regular_file(ec) && (is_image(ext) || is_video(ext))) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    WANRT_CHECK(
        !files.empty(), "train", "--data ", o.dir,
        " holds no videos or images (.y4m, .mp4, .png, .jpg, …); put the clips there with a caption .txt beside "
        "each");
    const int64_t stride = 16;  // VAE 8× · patch 2×
    const uint64_t vae_id = mix(mix(mix(0xcbf29ce484222325ull, m.name), m.vae_config.dim), m.vae_config.z_dim);
    const uint64_t t5_id = mix(mix(mix(0xcbf29ce484222325ull, m.name), m.dit_config.text_dim), m.dit_config.text_len);
    std::vector<TrainItem> items;
    for (const fs::path& p : files) {
        TrainItem it;
        it.file = p.string();
        fs::path cap = p;
        cap.replace_extension(".txt");
        WANRT_CHECK(fs::is_regular_file(cap, ec), "train", "caption missing for ", it.file, ": write its caption to ",
                    cap.string());
        it.caption = trimmed(read_bytes(cap.string()));
        WANRT_CHECK(!it.caption.empty(), "train", "the caption ", cap.string(), " is empty; describe the clip in it");
        const std::string bytes = read_bytes(it.file);
        Rgb24Video v;
        try {
            v = read_media(it.file, 0);
        } catch (const std::exception& e) {
            fail("train", "cannot read ", it.file, ": ", e.what());
        }
        WANRT_CHECK(v.frames >= 1, "train", it.file, " has no frames");
        WANRT_CHECK(v.width % stride == 0 && v.height % stride == 0, "train", it.file, " is ", v.width, "x", v.height,
                    ": width and height must be multiples of ", stride, " (VAE 8x, patch 2x); crop or resize the clip");
        it.frames = 1 + 4 * ((v.frames - 1) / 4);
        if (o.frames > 0) it.frames = std::min(it.frames, o.frames);
        it.height = v.height, it.width = v.width;
        it.latent_key = mix(mix(fnv1a64(bytes.data(), bytes.size(), vae_id), int64_t(bytes.size())), it.frames);
        it.text_key = mix(t5_id, it.caption);
        items.push_back(std::move(it));
    }
    return items;
}

void prepare_train_data(std::vector<TrainItem>& items, const TrainDataOptions& o, const T2VModelParts& m,
                        const std::shared_ptr<Backend>& be, const std::function<void(const std::string&)>& say) {
    const std::string cdir = cache_dir_of(o);
    std::error_code ec;
    fs::create_directories(cdir, ec);
    WANRT_CHECK(fs::is_directory(cdir, ec), "train", "cannot create the cache folder ", cdir,
                "; pass --cache_dir a writable folder");
    check_output_writable((fs::path(cdir) / "probe").string(), "train", "--cache_dir");
    const int64_t z = m.vae_config.z_dim;
    auto lat_path = [&](const TrainItem& it) {
        return (fs::path(cdir) / ("lat-" + hex(it.latent_key) + ".safetensors")).string();
    };
    auto txt_path = [&](const TrainItem& it) {
        return (fs::path(cdir) / ("txt-" + hex(it.text_key) + ".safetensors")).string();
    };

    std::vector<TrainItem*> need_lat, need_txt;
    for (TrainItem& it : items) {
        it.latent = load_cached(lat_path(it), {z, 1 + (it.frames - 1) / 4, it.height / 8, it.width / 8}, *be);
        if (!it.latent.defined()) need_lat.push_back(&it);
        it.context = load_cached(txt_path(it), {-1, m.dit_config.text_dim}, *be);
        if (!it.context.defined()) need_txt.push_back(&it);
    }
    if (say)
        say(cat("cache ", cdir, ": ", items.size() - need_lat.size(), " of ", items.size(), " latents and ",
                items.size() - need_txt.size(), " of ", items.size(), " text embeddings cached"));
    if (!need_lat.empty()) {
        if (say)
            say(cat("cache: encoding ", need_lat.size(), " clip", need_lat.size() == 1 ? "" : "s", " with the VAE"));
        auto vae = WanVae::load(m.vae_weights(), m.vae_config, be);
        for (TrainItem* it : need_lat) {
            const Rgb24Video v = read_media(it->file, it->frames);
            Rgb24Video cut = v;
            cut.frames = it->frames;
            cut.rgb.resize(cut.frame_bytes() * size_t(it->frames));
            it->latent = vae->encode(rgb24_to_video(cut, *be));
            store_cached(lat_path(*it), it->latent, {{"file", it->file}, {"frames", std::to_string(it->frames)}});
        }
    }
    if (!need_txt.empty()) {
        if (say)
            say(cat("cache: encoding ", need_txt.size(), " caption", need_txt.size() == 1 ? "" : "s",
                    " with the text encoder"));
        std::vector<std::string> prompts;
        for (TrainItem* it : need_txt) prompts.push_back(it->caption);
        TextStageTimes tm;
        const std::vector<Tensor> ctx = run_text_stage(m, *be, prompts, tm);
        for (size_t i = 0; i < need_txt.size(); ++i) {
            need_txt[i]->context = ctx[i];
            store_cached(txt_path(*need_txt[i]), ctx[i], {{"caption", need_txt[i]->caption}});
        }
    }
}

}  // namespace wanrt
