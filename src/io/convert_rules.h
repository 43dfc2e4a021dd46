// Which type each tensor of a Wan DiT gets in `wanrt convert` (pure functions of name, shape and source
// dtype; no files). The rules are those of the Wan GGUFs people download: city96's ComfyUI-GGUF
// tools/convert.py (the base file), llama-quantize patched by tools/lcpp.patch (the quantized types),
// tools/fix_5d_tensors.py (the 5-D patch embedding), as ../shared/fixtures/README.md "dit_q.gguf" lists.
//
// Every tensor, in this order of precedence:
//   1. F32: 1-D tensors (biases, norm gains), tensors of <= 1024 elements, names containing
//      ".modulation" (blocks.N.modulation [1, 6, dim], head.modulation [1, 2, dim]; kept 3-D) and
//      patch_embedding.weight (5-D: ggml handles 4 dims, so the tools add it back in F32).
//   2. The base type (F16; BF16 when the source tensor is bf16): every other tensor that the quantizer
//      leaves alone — the 2-D weights outside the blocks (text_embedding, time_embedding,
//      time_projection, head.head, img_emb) and anything not 2-D or not named "*weight".
//   3. Quantized: the 2-D "*weight" tensors under "blocks." (self_attn / cross_attn q, k, v, o, the I2V
//      k_img / v_img, ffn.0, ffn.2) get the target's type, upgraded per llama-quantize's image-model
//      rules (lcpp.patch img_tensor_get_type) for these names:
//        ".v.weight" (self_attn.v, cross_attn.v; the counter runs over them in file order):
//            q2_k → Q3_K; q3_k_m → Q5_K for the first 2, then Q4_K; q4_k_m, q5_k_m → Q6_K;
//            q4_k_s → Q5_K for the first 4
//        ".ffn.2.weight": q3_k_m → Q4_K; q4_k_s → Q5_K; q4_k_m, q5_k_m → Q6_K; q4_0 → Q4_1; q5_0 → Q5_1
//      A K-quant on rows that are not a multiple of 256 falls back (KFallback): Legacy = llama.cpp's
//      table (Q2_K/Q3_K/Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; F16 if rows are not a multiple of 32
//      either), F16 = what city96's patched tool does (its table is commented out). A legacy type on rows
//      not a multiple of 32 falls back to F16.
// Simplified against the tools: the F32 rule (1.) applies to every source dtype (convert.py applies it
// to f32/bf16 tensors only, an f16 checkpoint keeps f16 norms); llama-quantize would also requantize a
// 2-D block weight of <= 1024 elements that convert.py left in F32 (never in a real Wan model), we keep
// it F32; plain q3_k / q4_k / q5_k are uniform (every quantized tensor in that type) and carry the
// file type label of llama.cpp's _S variant, while q4_k_s follows the patched tool's Q4_K_S recipe.
//
// Safetensors outputs use the same classes: f32 / f16 / bf16 put classes 2 and 3 in that dtype (f32:
// everything); fp8_e4m3 / fp8_e5m2 put class 3 in fp8 (with --fp8_scaled a per-tensor scale_weight)
// and class 2 in the base type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/gguf_quants.h"

namespace wanrt {

enum class ConvertFormat { Gguf, Safetensors };

struct ConvertTarget {
    std::string name;          // "q4_k_m", as given to --type
    ConvertFormat format;      // where it can be written
    GgmlType type;             // GGUF: the type of quantized tensors before upgrades (F32/F16/BF16 for dense)
    uint32_t file_type;        // GGUF general.file_type (llama.cpp's LlamaFileType)
    DType dense = DType::F32;  // safetensors: F32/F16/BF16, or F8E4M3/F8E5M2 for the fp8 targets
    bool fp8() const { return dense == DType::F8E4M3 || dense == DType::F8E5M2; }
};

// The target of a --type value, nullopt when unknown.
std::optional<ConvertTarget> convert_target(const std::string& type);
// "f32|f16|bf16|q8_0|…" for messages and --help.
std::string convert_target_list();

enum class KFallback { Legacy, F16 };

// The type a tensor gets. `why` says which rule chose it (for the --info listing).
struct TensorType {
    GgmlType type = GgmlType::F32;  // GGUF type (safetensors: see dense)
    DType dense = DType::F32;       // safetensors dtype (fp8 for quantized tensors of an fp8 target)
    bool quantized = false;         // class 3: the target's (possibly upgraded) type
    bool fallback = false;          // a K-quant or legacy type that the row length did not allow
    std::string why;
};

// Stateful over the tensors of one file, in file order (the .v.weight counter of q3_k_m / q4_k_s).
class ConvertPlanner {
public:
    ConvertPlanner(ConvertTarget target, KFallback fallback) : t_(std::move(target)), fb_(fallback) {}
    TensorType plan(const std::string& name, const Shape& shape, bool source_bf16);
    int fallbacks() const { return n_fallback_; }
    int quantized() const { return n_quantized_; }  // class-3 tensors in the target's own family

private:
    ConvertTarget t_;
    KFallback fb_;
    int i_attention_wv_ = 0, n_fallback_ = 0, n_quantized_ = 0;
};

// True for the names the quantizer touches (class 3 above, before the row check).
bool is_quantizable_weight(const std::string& name, const Shape& shape);

// The official state-dict order of Wan DiT tensor names (patch_embedding, text_embedding,
// time_embedding, time_projection, blocks by index with modulation, self_attn, norm3, cross_attn,
// ffn, then head, img_emb; weight before bias; patch_embedding.weight after its bias as the tools
// write it); other names after, sorted.
bool wan_name_less(const std::string& a, const std::string& b);

}  // namespace wanrt
