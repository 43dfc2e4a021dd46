#include "pipeline/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fp8.h"
#include "core/threadpool.h"
#include "io/comfy_source.h"
#include "io/gguf.h"
#include "io/gguf_quantize.h"
#include "io/gguf_writer.h"
#include "io/output_file.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "pipeline/diffusers_folder.h"

namespace wanrt {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& e) {
    return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}
bool starts_with(const std::string& s, const std::string& p) {
    return s.rfind(p, 0) == 0;
}

// One input tensor: a dense tensor of a TensorSource or a tensor of a GGUF file.
struct InTensor {
    std::string name;  // official name (prefixes removed, diffusers names mapped)
    Shape shape;
    const StoredTensor* st = nullptr;
    const GgufTensorInfo* gi = nullptr;
    uint64_t nbytes = 0;
    bool bf16 = false;
    // ComfyUI scaled fp8 (io/comfy_source.h): the weight is st's values · scale.
    bool scaled = false;
    float scale = 1.0f;
    std::string type_name() const { return gi ? gi->type->name : dtype_info(st->dtype).st_name; }
};

struct Input {
    std::string origin, kind;
    std::shared_ptr<TensorSource> src;
    std::shared_ptr<GgufFile> gguf;
    std::vector<InTensor> tensors;

    // The tensor as float32 (the only whole-tensor copy convert makes).
    std::vector<float> read(const InTensor& t) const {
        if (t.gi) return gguf->dequantize(*t.gi);
        std::vector<float> v(size_t(shape_numel(t.shape)));
        convert_elements(t.st->data, t.st->dtype, v.data(), DType::F32, int64_t(v.size()));
        // The f32 product rounded once, as ComfyTensorSource::find() decodes it (the same values).
        if (t.scaled)
            for (float& x : v) x *= t.scale;
        return v;
    }
};

// ComfyUI-layout safetensors ("model.diffusion_model." keys, `scale_weight` / `weight_scale`, the
// `scaled_fp8` marker, `comfy_quant`) read through the ComfyUI source adapter: official names, scales
// validated, markers and input scales consumed (they describe ComfyUI's matmul, not the weights).
// add_source_tensors() reads a scaled weight through ComfyTensorSource::raw() (stored fp8 + its scale,
// applied in read()) rather than find(), which would keep every decoded weight for the life of the
// source: convert streams one tensor at a time.
std::shared_ptr<TensorSource> comfy_input(std::shared_ptr<TensorSource> src) {
    return wrap_if_comfy(std::move(src));
}

// A diffusers transformer folder on its own: config.json of WanTransformer3DModel beside the weights.
bool is_diffusers_transformer_folder(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_regular_file(dir / "config.json", ec)) return false;
    std::ifstream in(dir / "config.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.find("\"WanTransformer3DModel\"") != std::string::npos;
}

void add_source_tensors(Input& in, const std::string& strip) {
    const auto* comfy = dynamic_cast<const ComfyTensorSource*>(in.src.get());
    for (const std::string& n : in.src->names()) {
        ComfyTensorSource::Raw raw;
        if (comfy) raw = comfy->raw(n);  // as stored: nothing decoded yet
        const StoredTensor* t = comfy ? raw.data : in.src->find(n);
        WANRT_ASSERT(t != nullptr);
        const bool is_float = t->dtype == DType::F32 || t->dtype == DType::F16 || t->dtype == DType::BF16 ||
                              t->dtype == DType::F64 || t->dtype == DType::F8E4M3 || t->dtype == DType::F8E5M2;
        if (!is_float)
            fail("convert", in.origin, ": tensor '", t->name, "' is ", dtype_name(t->dtype),
                 ", not a floating-point weight; pass a DiT checkpoint (its weights only)");
        InTensor it{n.substr(strip.size()), t->shape, t, nullptr, t->nbytes, t->dtype == DType::BF16};
        it.scaled = raw.scaled;
        it.scale = raw.scale;
        in.tensors.push_back(it);
    }
}

// A Wan DiT GGUF: every tensor as stored (copied when the plan keeps its type), "model.diffusion_model."
// removed where a file keeps ComfyUI's prefix.
void add_gguf_tensors(Input& in, const std::string& path) {
    in.gguf = GgufFile::open(path);
    const std::string arch = in.gguf->architecture();
    if (arch != "wan")
        fail("convert", path, ": general.architecture is '", arch,
             "', not 'wan'; convert reads Wan DiT GGUFs (city96's layout)");
    const std::string prefix = "model.diffusion_model.";
    for (const GgufTensorInfo& t : in.gguf->tensors()) {
        if (!t.type->dequantizable)
            fail("convert", path, ": tensor '", t.name, "' has type ", t.type->name, " that wanrt cannot decode");
        std::string n = starts_with(t.name, prefix) ? t.name.substr(prefix.size()) : t.name;
        in.tensors.push_back({n, t.shape, nullptr, &t, t.nbytes, t.type_id == uint32_t(GgmlType::BF16)});
    }
    in.kind = "gguf";
}

// A `wanrt train --full` checkpoint (train/trainer.h): its "param." tensors are the f32 masters of
// the DiT under official names, in the trainer's shapes (patch_embedding.weight as a matrix
// [dim, C·pt·ph·pw]); the official shapes come from the DiT config in its "wanrt_train" metadata.
// The AdamW moments ("adamw.m.", "adamw.v.") are left out.
void add_train_checkpoint_tensors(Input& in, const SafeTensorsFile& f, const std::string& path) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(f.metadata().at("wanrt_train"));
    } catch (const std::exception&) {
        fail("convert", path, ": its wanrt_train metadata is not JSON; pass a checkpoint written by wanrt train");
    }
    // Every type is checked before use: a hand-edited file must fail in one line, not on a json throw.
    const nlohmann::json* run = j.is_object() && j.contains("run") && j["run"].is_object() ? &j["run"] : nullptr;
    auto str = [&](const char* key) {
        return run && run->contains(key) && (*run)[key].is_string() ? (*run)[key].get<std::string>() : std::string();
    };
    if (str("mode") == "lora")
        fail("convert", path, " is a LoRA training checkpoint; its LoRA is the lora-step-*.safetensors beside it "
             "(or lora.safetensors at the end)");
    if (str("mode") != "full" || str("dit_config").empty())
        fail("convert", path, ": its wanrt_train metadata names no full-training run and DiT config; pass a "
             "checkpoint written by wanrt train --full");
    std::map<std::string, Shape> official;
    for (const ParamSpec& p : dit_param_table(DitConfig::from_json(str("dit_config"), path)))
        official[p.name] = p.shape;
    const std::string prefix = "param.";
    for (const std::string& n : f.names()) {
        if (!starts_with(n, prefix)) continue;
        const StoredTensor* t = f.find(n);
        const std::string name = n.substr(prefix.size());
        Shape shape = t->shape;
        auto it = official.find(name);
        if (it != official.end() && shape_numel(it->second) == shape_numel(shape)) shape = it->second;
        if (t->dtype != DType::F32)
            fail("convert", path, ": tensor '", n, "' is ", dtype_name(t->dtype), ", not the f32 master wanrt train writes");
        in.tensors.push_back({name, shape, t, nullptr, t->nbytes, false});
    }
    in.kind = "wanrt train checkpoint";
}

// The common "model." / "module." wrapper level of a torch checkpoint (ComfyUI-GGUF's convert.py looks
// for the same keys), removed when every name has it.
std::string wrapper_prefix(const TensorSource& src) {
    for (const char* p : {"model.", "module."}) {
        bool all = true;
        for (const std::string& n : src.names()) all &= starts_with(n, p);
        if (all && !src.names().empty()) return p;
    }
    return "";
}

Input open_input(const std::string& path) {
    Input in;
    in.origin = path;
    std::error_code ec;
    const fs::path p(path);
    if (!fs::exists(p, ec))
        fail("convert", "input ", path, " does not exist; give a DiT model folder, .safetensors, .pth or .gguf");
    if (fs::is_directory(p, ec)) {
        if (fs::is_directory(p / "high_noise_model", ec) || fs::is_directory(p / "low_noise_model", ec))
            fail("convert", path, " is a Wan2.2 A14B folder with two experts; convert ",
                 (p / "high_noise_model").string(), " and ", (p / "low_noise_model").string(), " one at a time");
        if (is_diffusers_folder(path)) {
            DiffusersFolder f = scan_diffusers_folder(path);
            if (f.moe)
                fail("convert", path, " is a diffusers A14B folder with two experts; convert ",
                     (p / "transformer").string(), " and ", (p / "transformer_2").string(), " one at a time");
            in.src = open_diffusers_transformer(f).weights;
            in.kind = "diffusers folder";
        } else if (is_diffusers_transformer_folder(p)) {
            DiffusersFolder f;
            f.dir = p.parent_path().string();
            f.transformer.role = "transformer";
            f.transformer.path = path;
            f.transformer.looked_for = {"config.json", "diffusion_pytorch_model.safetensors"};
            in.src = open_diffusers_transformer(f).weights;
            in.kind = "diffusers transformer folder";
        } else {
            in.src = open_dit_checkpoint(path).weights;
            in.kind = "official folder";
        }
        if (const auto* g = dynamic_cast<const GgufTensorSource*>(in.src.get())) {  // a folder with a DiT .gguf
            const std::string file = g->file().path();
            in.src = nullptr;
            add_gguf_tensors(in, file);
            in.kind = "folder with a gguf DiT";
        } else {
            in.src = comfy_input(in.src);
            add_source_tensors(in, "");
        }
    } else if (ends_with(path, ".gguf")) {
        add_gguf_tensors(in, path);
    } else if (ends_with(path, ".safetensors") || ends_with(path, ".safetensors.index.json")) {
        in.src = open_safetensors(path);
        const auto* st = dynamic_cast<const SafeTensorsFile*>(in.src.get());
        if (st && st->metadata().count("wanrt_train")) {
            add_train_checkpoint_tensors(in, *st, path);
        } else {
            in.src = comfy_input(in.src);
            in.kind = "safetensors";
            add_source_tensors(in, "");
        }
    } else if (ends_with(path, ".pth") || ends_with(path, ".pt") || ends_with(path, ".ckpt")) {
        in.src = open_pth(path);
        in.kind = "torch checkpoint";
        add_source_tensors(in, wrapper_prefix(*in.src));
    } else {
        fail("convert", "input ", path,
             " is not a model folder, .safetensors, .safetensors.index.json, .pth or .gguf; convert reads Wan DiT "
             "checkpoints in those formats");
    }
    // A Wan DiT, as ComfyUI-GGUF's convert.py detects one (its keys_detect for "wan").
    std::map<std::string, const InTensor*> by_name;
    for (const InTensor& t : in.tensors) {
        if (!by_name.emplace(t.name, &t).second)
            fail("convert", path, ": tensor '", t.name, "' appears twice (after removing prefixes)");
    }
    for (const char* need : {"patch_embedding.weight", "blocks.0.self_attn.q.weight", "head.head.weight"})
        if (!by_name.count(need))
            fail("convert", path, ": not a Wan DiT checkpoint (no tensor '", need,
                 "'); convert reads Wan2.1/2.2 DiT weights (official, diffusers, GGUF)");
    if (!in.gguf)  // GGUFs keep their file order; other sources are sorted by name: the official order
        std::stable_sort(in.tensors.begin(), in.tensors.end(),
                         [](const InTensor& a, const InTensor& b) { return wan_name_less(a.name, b.name); });
    return in;
}

const char* dense_name(DType t) {
    return dtype_info(t).st_name;
}

struct Planned {
    const InTensor* in;
    TensorType tt;
    bool copy = false;  // bytes copied as they are
    uint64_t out_bytes = 0;
};

bool all_finite(const std::vector<float>& v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

// Quantizes rows of x into dst on the pool (rows are independent).
void quantize_parallel(ThreadPool& pool, GgmlType type, const std::vector<float>& x, int64_t row, uint8_t* dst) {
    const int64_t rows = int64_t(x.size()) / row;
    const size_t row_bytes = gguf_type_bytes(type, row);
    pool.parallel_for(rows, std::max<int64_t>(1, 65536 / row), [&](int64_t r0, int64_t r1) {
        gguf_quantize(type, x.data() + r0 * row, (r1 - r0) * row, dst + size_t(r0) * row_bytes);
    });
}

float fp8_max(DType t) {
    return t == DType::F8E4M3 ? 448.0f : 57344.0f;
}

}  // namespace

ConvertReport convert_model(const ConvertOptions& o, const std::function<void(const ConvertProgress&)>& progress) {
    const std::optional<ConvertTarget> target = convert_target(o.type);
    if (!target) fail("convert", "unknown --type '", o.type, "'; use one of ", convert_target_list());
    const bool out_gguf = ends_with(o.out, ".gguf"), out_st = ends_with(o.out, ".safetensors");
    {
        std::error_code ec;
        if (fs::is_directory(o.out, ec))
            fail("convert", "output ", o.out, " is a folder; give a file name such as ",
                 (fs::path(o.out) /
                  ("model-" + o.type +
                   (target->format == ConvertFormat::Gguf && !target->fp8() ? ".gguf" : ".safetensors")))
                     .string());
    }
    if (!out_gguf && !out_st)
        fail("convert", "output ", o.out, " must end in .gguf or .safetensors (the format is chosen by the extension)");
    const bool dense = target->type == GgmlType::F32 || target->type == GgmlType::F16 || target->type == GgmlType::BF16;
    if (out_st && !dense && !target->fp8())
        fail("convert", "--type ", o.type, " is a GGUF type: write ",
             fs::path(o.out).replace_extension(".gguf").string(),
             " (safetensors outputs: f32, f16, bf16, fp8_e4m3, fp8_e5m2)");
    if (out_gguf && target->fp8())
        fail("convert", "--type ", o.type, " writes safetensors (ComfyUI's fp8 layout): write ",
             fs::path(o.out).replace_extension(".safetensors").string());
    if (o.fp8_scaled && !target->fp8())
        fail("convert", "--fp8_scaled applies to fp8_e4m3 / fp8_e5m2 only, not ", o.type);
    std::error_code ec;
    if (fs::exists(o.in, ec) && fs::exists(o.out, ec) && fs::equivalent(o.in, o.out, ec))
        fail("convert", "output ", o.out, " is the input; write to another file");
    check_output_writable(o.out, "convert", "OUT");

    Input in = open_input(o.in);
    ConvertReport rep;
    rep.input_kind = in.kind;

    // Plan every tensor from the headers.
    const bool scaled = target->fp8() && o.fp8_scaled;
    ConvertPlanner planner(*target, o.k_fallback);
    std::vector<Planned> plan;
    for (const InTensor& t : in.tensors) {
        Planned p{&t, planner.plan(t.name, t.shape, t.bf16)};
        const int64_t n = shape_numel(t.shape);
        if (out_gguf) {
            p.out_bytes = gguf_type_bytes(p.tt.type, n);
            p.copy = t.gi && t.gi->type_id == uint32_t(p.tt.type);
        } else {
            p.out_bytes = dtype_bytes(p.tt.dense, n);
            // A ComfyUI scaled weight is never copied: its stored bytes are not its values.
            p.copy = t.st && !t.scaled && t.st->dtype == p.tt.dense && !(scaled && p.tt.quantized);
        }
        rep.params += n;
        rep.in_bytes += t.nbytes;
        plan.push_back(p);
    }
    rep.fallbacks = planner.fallbacks();
    if (planner.quantized() > 0 && planner.fallbacks() == planner.quantized() && out_gguf) {
        const Planned& f = *std::find_if(plan.begin(), plan.end(), [](const Planned& p) { return p.tt.fallback; });
        fail("convert", o.in, ": no linear weight has rows that are a multiple of ",
             ggml_type_info(uint32_t(target->type))->block_elems, " for --type ", o.type, ": all ", planner.fallbacks(),
             " would fall back (e.g. '", f.in->name, "', rows of ", f.in->shape.back(), ", to ",
             ggml_type_info(uint32_t(f.tt.type))->name, "); choose ",
             ggml_type_info(uint32_t(target->type))->block_elems > 32 ? "a type with 32-element blocks (q8_0, q5_0, q4_0)"
                                                                       : "f16 or bf16");
    }
    for (const Planned& p : plan) {
        ConvertedTensor c;
        c.name = p.in->name;
        c.shape = p.in->shape;
        c.type = out_gguf ? ggml_type_info(uint32_t(p.tt.type))->name : dense_name(p.tt.dense);
        c.why = p.tt.why;
        c.fallback = p.tt.fallback;
        c.copied = p.copy;
        c.in_bytes = p.in->nbytes;
        c.out_bytes = p.out_bytes;
        rep.tensors.push_back(c);
    }

    ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
    ConvertProgress pr;
    pr.count = plan.size();
    for (const Planned& p : plan) pr.bytes_total += p.out_bytes;

    if (out_gguf) {
        GgufWriter w(o.out);
        w.add_string("general.architecture", "wan");
        w.add_u32("general.quantization_version", 2);
        w.add_u32("general.file_type", target->file_type);
        for (const Planned& p : plan) w.declare(p.in->name, p.tt.type, p.in->shape);
        rep.out_bytes = w.file_size();
        if (o.dry_run) return rep;
        std::vector<uint8_t> buf;
        for (const Planned& p : plan) {
            if (p.copy) {
                w.write(p.in->gi->data, p.in->nbytes);
            } else {
                std::vector<float> x = in.read(*p.in);
                if (p.tt.quantized && !all_finite(x))
                    fail("convert", o.in, ": tensor '", p.in->name, "' holds NaN or inf; the checkpoint is damaged");
                buf.resize(p.out_bytes);
                quantize_parallel(pool, p.tt.type, x, p.in->shape.empty() ? 1 : p.in->shape.back(), buf.data());
                w.write(buf.data(), buf.size());
            }
            ++pr.index;
            pr.bytes_done += p.out_bytes;
            pr.name = p.in->name;
            if (progress) progress(pr);
        }
        w.finish();
        return rep;
    }

    // safetensors: dense dtypes, or fp8 linear weights (+ scale_weight and the scaled_fp8 marker).
    std::map<std::string, std::string> meta = {{"format", "pt"}, {"wanrt_convert", o.type + (scaled ? " scaled" : "")}};
    SafeTensorsWriter w(o.out, meta);
    uint64_t header_guess = 0;
    for (const Planned& p : plan) {
        w.declare(p.in->name, p.tt.dense, p.in->shape);
        if (scaled && p.tt.quantized) {
            const std::string layer = p.in->name.substr(0, p.in->name.size() - std::string("weight").size());
            w.declare(layer + "scale_weight", DType::F32, Shape{1});
            pr.bytes_total += 4;
        }
        header_guess += p.in->name.size() + 80;
    }
    if (scaled) w.declare("scaled_fp8", target->dense, Shape{0});
    rep.out_bytes = pr.bytes_total + header_guess;  // replaced by the real size below
    if (o.dry_run) return rep;
    std::vector<uint8_t> buf;
    for (const Planned& p : plan) {
        if (p.copy) {
            w.write(p.in->st->data, p.in->nbytes);
        } else {
            std::vector<float> x = in.read(*p.in);
            const int64_t n = int64_t(x.size());
            buf.resize(p.out_bytes);
            if (target->fp8() && p.tt.quantized) {
                if (!all_finite(x))
                    fail("convert", o.in, ": tensor '", p.in->name, "' holds NaN or inf; the checkpoint is damaged");
                const float fmax = fp8_max(target->dense);
                float scale = 1.0f;
                if (scaled) {
                    float amax = 0;
                    for (float v : x) amax = std::max(amax, std::fabs(v));
                    scale = amax > 0 ? amax / fmax : 1.0f;
                }
                const bool e4m3 = target->dense == DType::F8E4M3;
                pool.parallel_for(n, 1 << 16, [&](int64_t a, int64_t b) {
                    for (int64_t i = a; i < b; ++i) {
                        const float v = std::clamp(scaled ? x[size_t(i)] / scale : x[size_t(i)], -fmax, fmax);
                        buf[size_t(i)] = e4m3 ? f32_to_fp8_e4m3(v) : f32_to_fp8_e5m2(v);
                    }
                });
                w.write(buf.data(), buf.size());
                if (scaled) w.write(&scale, 4);
            } else {
                convert_elements(x.data(), DType::F32, buf.data(), p.tt.dense, n);
                w.write(buf.data(), buf.size());
            }
        }
        ++pr.index;
        pr.bytes_done += p.out_bytes;
        pr.name = p.in->name;
        if (progress) progress(pr);
    }
    w.finish();
    rep.out_bytes = fs::file_size(o.out, ec);
    return rep;
}

}  // namespace wanrt
