// The backend op table (ggml's test-backend-ops, for our op set): one row per case, each an op at
// given shapes and parameters with deterministic random inputs, run through its ops:: front-end on
// a backend at each dtype signature that backend registers (core/op_registry.h), and compared with
// the float64 reference (testing/ref64.h) by relative L2 and max abs error, with a tolerance per
// precision (f32 1e-5, f16 1e-3, bf16 1e-2). tests/test_backend_ops.cpp runs it as tests, on the
// CPU with alloc-check on (NaN-filled buffers inside guard bytes); `wanrt bench ops` runs its
// sized rows in perf mode at the DiT's real shapes.
//
// Adding an op costs one row here (op_cases.cpp) and one loop in ref64; a registered op without a
// row, or a registered signature no row runs at, is reported by ops_without_case() and
// uncovered_sigs(), which the tests turn into failures.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/op_registry.h"
#include "ops/ops.h"

namespace wanrt::testing {

// The DiT shapes the sized rows take: bench ops' flags (real sizes) or small odd ones for tests.
struct Sizes {
    int64_t tokens = 1560, dim = 1536, ffn = 8960, heads = 12, text = 512;
    static Sizes small() { return {37, 192, 257, 3, 13}; }  // head dim 64, nothing a multiple of 8
};

// How a view input is laid out in its buffer (views are what the front-ends accept besides
// contiguous tensors; gaps in the buffer hold NaN, so a kernel that reads them is caught).
enum class Layout {
    Contig,
    Offset,      // contiguous, at an offset inside a larger buffer (a prefix/row of a cache)
    Padded,      // rows of the last dim inside wider rows (a slice along the last dim)
    Transposed,  // the last two dims stored swapped (a transposed view)
};

// One op call, built on a backend: what the table runs and compares.
struct Prepared {
    std::function<void()> run;                    // the op through its ops:: front-end
    std::function<std::vector<double>()> result;  // the compared output(s) as float64, row-major
    std::vector<double> ref;                      // the float64 reference (test mode only)
    double flop = 0, bytes = 0;                   // work per run: perf rates
    std::string shape;                            // the shape part of the bench's row name
};

// A tensor made for a case and the values it holds (rounded to its dtype), in logical row-major order.
struct Input {
    Tensor t;
    std::vector<double> v;
};

// What a case builder gets: the backend, the signature, the mode, and input makers whose random
// data depend only on the case name and signature (every backend sees the same numbers).
class CaseCtx {
public:
    CaseCtx(Backend& be, OpSig sig, bool perf, Sizes sizes, uint64_t seed)
        : be(be), sig(sig), perf(perf), sizes(sizes), seed_(seed) {}
    Backend& be;
    OpSig sig;
    bool perf;  // perf mode: no reference is computed, views are plain
    Sizes sizes;

    // N(offset, scale²) values stored as dtype dt, in the given layout.
    Input rand(DType dt, const Shape& shape, float scale = 1.f, Layout layout = Layout::Contig, float offset = 0.f);
    // Given values (converted to dt) in the given layout.
    Input from(DType dt, const Shape& shape, const std::vector<double>& values, Layout layout = Layout::Contig);
    // Uniform random integers in [lo, hi] (ids, integer-valued data for conversions).
    std::vector<double> ints(int64_t n, int64_t lo, int64_t hi);

private:
    uint64_t seed_;
    uint64_t draws_ = 0;
};

// A tensor's values (any dtype, any strides) as float64, row-major.
std::vector<double> host_f64(const Tensor& t);

enum class Check { Close, Exact };  // Exact: data movement, max abs must be 0

struct OpCase {
    std::string op;           // the registered op name (its args struct's kName)
    std::string name;         // unique, "linear_M37_N29_K67_bias"
    std::vector<OpSig> sigs;  // signatures it can run at; a backend runs those it registers
    bool sized = false;       // takes ctx.sizes: also a row of `wanrt bench ops`
    Check check = Check::Close;
    std::function<Prepared(CaseCtx&)> build;
    // Optional: the case's own relative-L2 bound per backend and signature, replacing tolerance()'s
    // rule by precision (the FP8 rows: their reference is the quantized emulation or the exact op).
    std::function<double(const Backend&, OpSig)> tol = nullptr;
};

// Every row, in op order.
const std::vector<OpCase>& op_table();
// The FP8 ops' rows (op_cases_fp8.cpp), part of op_table().
std::vector<OpCase> fp8_op_cases();

// Registered ops that no row tests; registered (op, signature) pairs of a backend kind that no row runs at.
std::vector<std::string> ops_without_case();
std::vector<std::pair<std::string, OpSig>> uncovered_sigs(const std::string& backend_kind);
// The signatures of c that backend kind registers (in c's order).
std::vector<OpSig> case_sigs(const OpCase& c, const std::string& backend_kind);
std::string sig_name(OpSig s);  // "f32", "f32/bf16"

// The relative-L2 bound of a case on a backend at a signature: 0 for Exact, else by the precision
// the backend's kernel computes in (bf16 GEMMs and attention on CUDA, TF32 convolutions).
double tolerance(const Backend& be, const OpCase& c, OpSig sig);

struct CaseResult {
    std::string what;  // "linear_M37 f32/bf16 on cpu"
    bool ok = false;
    double rel_l2 = 0, max_abs = 0, ref_max = 0, tol = 0;
    int64_t bad_values = 0;      // NaN/inf in the output where the reference is finite
    int64_t guard_failures = 0;  // buffers whose guard bytes were overwritten (alloc-check backends)
    std::string error;           // size mismatch or an exception's message
};
// Builds, runs and compares one case (test mode, Sizes::small() for sized rows); every tensor of
// the case is freed before the guard count is read.
CaseResult run_case(Backend& be, const OpCase& c, OpSig sig);

// The devices the table runs on: "cpu", and "cuda" when this build has CUDA and a device is present.
std::vector<std::string> table_devices();
// The backend for one of them (the one place the backend factory is called from here).
std::shared_ptr<Backend> table_backend(const std::string& device, int threads = 0);

}  // namespace wanrt::testing
