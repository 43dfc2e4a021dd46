// FP8 block linears for the DiT: see dit_fp8.h.
#include "models/dit_fp8.h"

#include "core/error.h"
#include "models/dit.h"
#include "models/dit_weights.h"
#include "models/lora.h"
#include "ops/linear_fp8.h"

namespace wanrt {

bool parse_linear_dtype_fp8(const std::string& flag, const std::string& value) {
    if (value == "fp8") return true;
    if (value == "bf16") return false;
    fail("cli", flag, " must be bf16 or fp8, got '", value, "'");
}

void quantize_dit_linears_fp8(DitWeights& w, const DitConfig& c) {
    for (auto& [name, l] : dit_linears(w, c)) {
        if (name.rfind("blocks.", 0) != 0 || !l->w.defined()) continue;  // block linears only (absent I2V ones skipped)
        if (l->w.dtype() == DType::F8E4M3) continue;                     // already quantized
        // A GGUF's block weights (Q8_0 … Q6_K, 4.5–8.5 bits) stay as they are: FP8 would not shrink
        // them, and re-quantizing the decoded values would add a second rounding to the first.
        if (dtype_is_block(l->w.dtype())) continue;
        if (l->w.size(0) % 16 || l->w.size(1) % 16)
            fail("dit", "--linear_dtype fp8: ", name, ".weight is ", l->w.describe(),
                 "; FP8 GEMMs need both dims multiples of 16; run this model with --linear_dtype bf16");
        Fp8Tensor q = ops::quantize_fp8(l->w);
        l->w = q.q;  // the unquantized weight is freed here
        l->w_scale = q.scale;
    }
}

void quantize_dit_linears_fp8(DitModel& model) {
    quantize_dit_linears_fp8(model.mutable_weights(), model.config());
}

}  // namespace wanrt
