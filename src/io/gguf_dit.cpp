#include "io/gguf_dit.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace wanrt {

DitConfig infer_dit_config(const GgufFile& file, int64_t num_heads, std::string* prefix_out) {
    const std::string arch = file.architecture();
    if (!arch.empty() && arch != "wan")
        fail("gguf", file.path(), ": general.architecture is '", arch,
             "', not 'wan'; this GGUF is not a Wan DiT, pass a Wan2.1 GGUF (e.g. city96's Wan2.1-*-gguf)");
    // ComfyUI keeps the "model.diffusion_model." prefix in some files; the official names follow it.
    std::string prefix;
    if (!file.find_tensor("patch_embedding.weight") && file.find_tensor("model.diffusion_model.patch_embedding.weight"))
        prefix = "model.diffusion_model.";
    auto shape_of = [&](const std::string& n, size_t rank) -> const Shape& {
        const GgufTensorInfo* t = file.find_tensor(prefix + n);
        if (!t)
            fail("gguf", file.path(), ": no tensor '", prefix + n,
                 "' to infer the DiT config from (GGUF DiTs store none); this is not a Wan DiT GGUF: pass one such as "
                 "city96's Wan2.1-*-gguf, or re-convert the model with `wanrt convert`");
        if (t->shape.size() != rank)
            fail("gguf", file.path(), ": tensor '", prefix + n, "' has shape ", shape_str(t->shape), ", expected ",
                 rank, " dims; the file is not a Wan2.1 DiT or was converted wrongly (5-D tensors lost?): re-convert it with "
                 "`wanrt convert` or ComfyUI-GGUF's fix_5d_tensors.py");
        return t->shape;
    };
    DitConfig c;
    const Shape& pe = shape_of("patch_embedding.weight", 5);
    c.dim = pe[0];
    c.in_dim = pe[1];
    c.patch_t = int(pe[2]);
    c.patch_h = int(pe[3]);
    c.patch_w = int(pe[4]);
    c.ffn_dim = shape_of("blocks.0.ffn.0.weight", 2)[0];
    c.freq_dim = shape_of("time_embedding.0.weight", 2)[1];
    c.text_dim = shape_of("text_embedding.0.weight", 2)[1];
    c.out_dim = shape_of("head.head.weight", 2)[0] / c.patch_volume();
    // As DitConfig::from_weights: emb_pos marks FLF2V, img_emb the CLIP branch of Wan2.1 I2V, and
    // more input than output channels Wan2.2 I2V-A14B (y concatenated, no CLIP).
    const bool clip = file.find_tensor(prefix + "img_emb.proj.0.weight") != nullptr;
    c.model_type = file.find_tensor(prefix + "img_emb.emb_pos") ? "flf2v" : clip || c.in_dim > c.out_dim ? "i2v" : "t2v";
    c.clip_branch = clip;
    c.qk_norm = file.find_tensor(prefix + "blocks.0.self_attn.norm_q.weight") != nullptr;
    c.cross_attn_norm = file.find_tensor(prefix + "blocks.0.norm3.weight") != nullptr;
    c.num_layers = 0;
    while (file.find_tensor(prefix + "blocks." + std::to_string(c.num_layers) + ".modulation")) ++c.num_layers;
    c.text_len = 512;
    if (num_heads > 0) {
        c.num_heads = num_heads;
    } else {
        if (c.dim % 128 != 0)
            fail("gguf", file.path(), ": dim ", c.dim,
                 " is not a multiple of 128, so the head count (dim / 128 in every Wan release) cannot be inferred; "
                 "put the model's config.json (with num_heads) beside the GGUF");
        c.num_heads = c.dim / 128;
    }
    c.validate(file.path() + " (config inferred from GGUF shapes)");
    if (prefix_out) *prefix_out = prefix;
    return c;
}

std::string find_dit_gguf(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<std::string> all;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0 && e.is_regular_file(ec)) all.push_back(e.path().string());
    }
    std::sort(all.begin(), all.end());
    if (all.size() <= 1) return all.empty() ? "" : all[0];  // its header is checked when it opens
    // Several (e.g. a quantized umT5 beside the DiT): the DiT is the one of architecture "wan". A file
    // whose header does not parse is not a candidate here; it is reported if it is the only one.
    std::vector<std::string> wan;
    for (const std::string& p : all) {
        try {
            if (GgufFile::open(p)->architecture() == "wan") wan.push_back(p);
        } catch (const Error&) {
        }
    }
    if (wan.size() == 1) return wan[0];
    std::string list;
    for (const std::string& p : wan.empty() ? all : wan) list += (list.empty() ? "" : ", ") + fs::path(p).filename().string();
    fail("model", "folder ", dir, " holds ", wan.empty() ? all.size() : wan.size(), " GGUF files",
         wan.empty() ? " and none is a Wan DiT (general.architecture 'wan')" : " of Wan DiTs", " (", list,
         "); keep exactly one DiT .gguf in the folder");
}

}  // namespace wanrt
