#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"

namespace wanrt {

namespace {

constexpr uint32_t kVersion = 3;
constexpr int kMaxArrayNesting = 8;  // far above any real file; guards runaway recursion

struct Mapping {
    void* addr = nullptr;
    size_t size = 0;
    ~Mapping() {
        if (addr && addr != MAP_FAILED) munmap(addr, size);
    }
};

// Overflow-safe arithmetic on sizes: false when the result does not fit in 64 bits.
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

// A bounds-checked little-endian reader over the mapped header. `where` names the part being read
// (for the truncation message).
struct Cursor {
    const uint8_t* base;
    uint64_t size;
    uint64_t pos = 0;
    const std::string& path;
    std::string where;

    void need(uint64_t n) {
        if (n > size - pos)
            fail("gguf", path, ": truncated in ", where, " (needs ", n, " bytes at offset ", pos, ", the file has ",
                 size, "); the file is cut short, re-download or re-convert it");
    }
    template <class T>
    T read() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, base + pos, sizeof(T));  // little-endian hosts only
        pos += sizeof(T);
        return v;
    }
    std::string read_string() {
        uint64_t n = read<uint64_t>();
        need(n);
        std::string s(reinterpret_cast<const char*>(base + pos), size_t(n));
        pos += n;
        return s;
    }
};

bool valid_value_type(uint32_t t) { return t <= uint32_t(GgufValueType::FLOAT64); }

// Smallest encoded size of one value of type t (for bounding array counts before allocating).
uint64_t min_value_bytes(GgufValueType t) {
    switch (t) {
        case GgufValueType::UINT8:
        case GgufValueType::INT8:
        case GgufValueType::BOOL: return 1;
        case GgufValueType::UINT16:
        case GgufValueType::INT16: return 2;
        case GgufValueType::UINT32:
        case GgufValueType::INT32:
        case GgufValueType::FLOAT32: return 4;
        case GgufValueType::STRING:
        case GgufValueType::UINT64:
        case GgufValueType::INT64:
        case GgufValueType::FLOAT64: return 8;
        case GgufValueType::ARRAY: return 12;  // element type + count
    }
    return 1;
}

GgufValue read_value(Cursor& c, GgufValueType type, int depth, const std::string& key) {
    GgufValue v;
    v.type = type;
    switch (type) {
        case GgufValueType::UINT8: v.u = c.read<uint8_t>(); break;
        case GgufValueType::INT8: v.i = c.read<int8_t>(); break;
        case GgufValueType::UINT16: v.u = c.read<uint16_t>(); break;
        case GgufValueType::INT16: v.i = c.read<int16_t>(); break;
        case GgufValueType::UINT32: v.u = c.read<uint32_t>(); break;
        case GgufValueType::INT32: v.i = c.read<int32_t>(); break;
        case GgufValueType::UINT64: v.u = c.read<uint64_t>(); break;
        case GgufValueType::INT64: v.i = c.read<int64_t>(); break;
        case GgufValueType::FLOAT32: v.f = c.read<float>(); break;
        case GgufValueType::FLOAT64: v.f = c.read<double>(); break;
        case GgufValueType::BOOL: {
            uint8_t b = c.read<uint8_t>();
            if (b > 1)
                fail("gguf", c.path, ": key '", key, "' has a bool of value ", int(b), " at offset ", c.pos - 1,
                     "; the file is corrupt, re-convert it");
            v.u = b;
            break;
        }
        case GgufValueType::STRING: v.str = c.read_string(); break;
        case GgufValueType::ARRAY: {
            if (depth >= kMaxArrayNesting)
                fail("gguf", c.path, ": key '", key, "' nests arrays deeper than ", kMaxArrayNesting,
                     "; the file is corrupt");
            uint32_t et = c.read<uint32_t>();
            if (!valid_value_type(et))
                fail("gguf", c.path, ": key '", key, "' is an array of unknown value type ", et, " at offset ",
                     c.pos - 4, "; the file is corrupt or from a newer GGUF version");
            v.elem_type = GgufValueType(et);
            uint64_t n = c.read<uint64_t>();
            uint64_t min_bytes = 0;
            if (!mul_ok(n, min_value_bytes(v.elem_type), &min_bytes) || min_bytes > c.size - c.pos)
                fail("gguf", c.path, ": truncated in ", c.where, " (array of ", n, " elements at offset ", c.pos,
                     ", the file has ", c.size, "); the file is cut short, re-download or re-convert it");
            v.array.reserve(size_t(n));
            for (uint64_t k = 0; k < n; ++k) v.array.push_back(read_value(c, v.elem_type, depth + 1, key));
            break;
        }
    }
    return v;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
    static const char* const names[] = {"UINT8", "INT8",  "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                        "BOOL",  "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
    return uint32_t(t) <= 12 ? names[uint32_t(t)] : "?";
}

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("gguf", "cannot open ", path, ": ", std::strerror(errno), "; check the path and permissions");
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        ::close(fd);
        fail("gguf", "cannot stat ", path, ": ", std::strerror(errno));
    }
    auto map = std::make_shared<Mapping>();
    map->size = size_t(st.st_size);
    if (map->size > 0) {
        map->addr = mmap(nullptr, map->size, PROT_READ, MAP_PRIVATE, fd, 0);
        ::close(fd);
        if (map->addr == MAP_FAILED) fail("gguf", "cannot mmap ", path, ": ", std::strerror(errno));
    } else {
        ::close(fd);
    }

    auto f = std::shared_ptr<GgufFile>(new GgufFile());
    f->path_ = path;
    f->map_ = map;
    f->file_size_ = map->size;
    Cursor c{static_cast<const uint8_t*>(map->addr), map->size, 0, f->path_, "the header"};

    // Header: magic, version, counts.
    c.need(4);
    if (std::memcmp(c.base, "GGUF", 4) != 0)
        fail("gguf", path, ": bad magic (the first 4 bytes are not \"GGUF\"); not a GGUF file, check the path");
    c.pos = 4;
    f->version_ = c.read<uint32_t>();
    if (f->version_ != kVersion) {
        // A big-endian file reads its version byte-swapped (3 << 24).
        const char* hint = f->version_ == (kVersion << 24) ? " (a big-endian GGUF; only little-endian files are supported)"
                                                           : "";
        fail("gguf", path, ": GGUF version ", f->version_, hint,
             " is not supported, only version 3; re-convert the file with a current gguf-py / llama.cpp");
    }
    uint64_t n_tensors = c.read<uint64_t>();
    uint64_t n_kv = c.read<uint64_t>();
    // Each KV takes at least 12 bytes and each tensor info 24: bounds what is reserved up front (the
    // reads themselves stop at the first truncated entry, naming it).
    const uint64_t kv_cap = (c.size - c.pos) / 12, info_cap = (c.size - c.pos) / 24;

    // Metadata.
    f->kvs_.reserve(size_t(std::min(n_kv, kv_cap)));
    for (uint64_t k = 0; k < n_kv; ++k) {
        c.where = cat("metadata key ", k);
        GgufKV kv;
        kv.key = c.read_string();
        c.where = cat("metadata key ", k, " ('", kv.key, "')");
        uint32_t t = c.read<uint32_t>();
        if (!valid_value_type(t))
            fail("gguf", path, ": key '", kv.key, "' has unknown value type ", t, " at offset ", c.pos - 4,
                 "; the file is corrupt or from a newer GGUF version");
        kv.value = read_value(c, GgufValueType(t), 0, kv.key);
        for (const GgufKV& prev : f->kvs_)
            if (prev.key == kv.key)
                fail("gguf", path, ": metadata key '", kv.key, "' appears twice; the file is corrupt, re-convert it");
        f->kvs_.push_back(std::move(kv));
    }
    if (const GgufValue* a = f->find_kv("general.alignment")) {
        if (a->type != GgufValueType::UINT32)
            fail("gguf", path, ": general.alignment is a ", gguf_value_type_name(a->type),
                 ", the format requires UINT32; the file is corrupt, re-convert it");
        if (a->u == 0 || (a->u & (a->u - 1)) != 0)
            fail("gguf", path, ": general.alignment ", a->u, " is not a power of two; the file is corrupt, re-convert it");
        f->alignment_ = uint32_t(a->u);
    }

    // Tensor infos.
    f->tensors_.reserve(size_t(std::min(n_tensors, info_cap)));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        c.where = cat("tensor info ", k);
        GgufTensorInfo t;
        t.name = c.read_string();
        c.where = cat("tensor info ", k, " ('", t.name, "')");
        uint32_t nd = c.read<uint32_t>();
        if (nd > uint32_t(kGgufMaxDims))
            fail("gguf", path, ": tensor '", t.name, "' has ", nd, " dims, more than the ", kGgufMaxDims,
                 " supported; the file is corrupt");
        for (uint32_t d = 0; d < nd; ++d) {
            uint64_t v = c.read<uint64_t>();
            if (v > uint64_t(std::numeric_limits<int64_t>::max()))
                fail("gguf", path, ": tensor '", t.name, "' has dim ", d, " = ", v, ", out of range; the file is corrupt");
            t.ggml_dims.push_back(int64_t(v));
        }
        t.shape.assign(t.ggml_dims.rbegin(), t.ggml_dims.rend());  // torch order: outermost first
        t.type_id = c.read<uint32_t>();
        t.offset = c.read<uint64_t>();
        t.type = ggml_type_info(t.type_id);
        if (!t.type)
            fail("gguf", path, ": tensor '", t.name, "' has unknown ggml type id ", t.type_id,
                 "; the file is corrupt or uses a type newer than this reader, re-quantize it to a listed type");
        // Rows are whole blocks along the innermost dim; nbytes = blocks per row · block bytes · rows.
        int64_t ne0 = t.ggml_dims.empty() ? 1 : t.ggml_dims[0];
        if (ne0 % t.type->block_elems != 0)
            fail("gguf", path, ": tensor '", t.name, "' of type ", t.type->name, " has rows of ", ne0,
                 " elements, not a multiple of its block size ", t.type->block_elems,
                 "; the file is corrupt (a converter should have kept this tensor unquantized)");
        uint64_t nbytes = uint64_t(ne0 / t.type->block_elems);
        bool ok = mul_ok(nbytes, t.type->block_bytes, &nbytes);
        for (size_t d = 1; d < t.ggml_dims.size() && ok; ++d) ok = mul_ok(nbytes, uint64_t(t.ggml_dims[d]), &nbytes);
        if (!ok)
            fail("gguf", path, ": tensor '", t.name, "' has a byte size that overflows 64 bits; the file is corrupt");
        t.nbytes = nbytes;
        if (t.offset % f->alignment_ != 0)
            fail("gguf", path, ": tensor '", t.name, "' has data offset ", t.offset, ", not a multiple of the alignment ",
                 f->alignment_, "; the file is corrupt, re-convert it");
        if (f->tensor_index_.count(t.name))
            fail("gguf", path, ": tensor '", t.name, "' appears twice; the file is corrupt, re-convert it");
        f->tensor_index_[t.name] = f->tensors_.size();
        f->tensors_.push_back(std::move(t));
    }

    // Data section: the first multiple of the alignment after the infos (the file may end right there
    // when it holds no tensor bytes).
    uint64_t data = c.pos, rem = c.pos % f->alignment_;
    if (rem) data += f->alignment_ - rem;
    f->data_offset_ = data;
    for (GgufTensorInfo& t : f->tensors_) {
        uint64_t begin = 0, end = 0;
        if (!add_ok(data, t.offset, &begin) || !add_ok(begin, t.nbytes, &end) || end > f->file_size_)
            fail("gguf", path, ": tensor '", t.name, "' (", t.type->name, ", ", t.nbytes, " bytes at data offset ",
                 t.offset, ") ends past the end of the file (", f->file_size_,
                 " bytes); the file is truncated, re-download it");
        t.data = c.base + begin;
    }
    // No two tensors may share bytes (writers lay them out one after another): an overlap would
    // make one tensor's weights silently alias another's.
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& t : f->tensors_)
        if (t.nbytes) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const GgufTensorInfo &prev = *by_offset[i - 1], &cur = *by_offset[i];
        if (cur.offset < prev.offset + prev.nbytes)  // no overflow: both lie inside the file (checked above)
            fail("gguf", path, ": tensors '", prev.name, "' and '", cur.name, "' overlap (data offsets ", prev.offset,
                 " + ", prev.nbytes, " bytes and ", cur.offset, "); the file is corrupt, re-convert it");
    }
    return f;
}

const GgufValue* GgufFile::find_kv(const std::string& key) const {
    for (const GgufKV& kv : kvs_)
        if (kv.key == key) return &kv.value;
    return nullptr;
}

std::string GgufFile::architecture() const {
    const GgufValue* v = find_kv("general.architecture");
    return v && v->type == GgufValueType::STRING ? v->str : std::string();
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
    if (!t.type->dequantizable)
        fail("gguf", path_, ": tensor '", t.name, "' has type ", t.type->name, " (id ", t.type_id,
             "), which wanrt cannot decode; re-convert it to F16, BF16, Q8_0 or a K-quant");
    int64_t numel = shape_numel(t.shape);
    std::vector<float> out(static_cast<size_t>(numel));
    gguf_dequantize(GgmlType(t.type_id), t.data, numel / t.type->block_elems, out.data());
    return out;
}

// ---- TensorSource ----

struct GgufTensorSource::Store {
    std::shared_ptr<const void> map;  // keeps the mapping alive for the views
    std::mutex mu;                    // guards lazy decoding
    std::map<std::string, StoredTensor> tensors;
    std::map<std::string, std::vector<float>> decoded;  // node-based: data pointers stay valid
    std::map<std::string, bool> is_decoded;
};

GgufTensorSource::GgufTensorSource(std::shared_ptr<const GgufFile> file, GgufBlocks blocks, std::string strip_prefix)
    : file_(std::move(file)), prefix_(std::move(strip_prefix)), store_(std::make_shared<Store>()) {
    store_->map = file_->keepalive();
    for (const GgufTensorInfo& t : file_->tensors()) {
        if (t.name.compare(0, prefix_.size(), prefix_) != 0)
            fail("gguf", file_->path(), ": tensor '", t.name, "' lacks the prefix '", prefix_,
                 "' the other tensors carry; the file mixes models: pass a GGUF of the diffusion model alone");
        StoredTensor s;
        s.name = t.name.substr(prefix_.size());
        s.shape = t.shape;
        switch (GgmlType(t.type_id)) {
            case GgmlType::F32: s.dtype = DType::F32; break;
            case GgmlType::F16: s.dtype = DType::F16; break;
            case GgmlType::BF16: s.dtype = DType::BF16; break;
            default:
                if (blocks == GgufBlocks::Keep && dtype_from_ggml_id(t.type_id, &s.dtype)) break;  // the bytes as they are
                if (!t.type->dequantizable)
                    fail("gguf", file_->path(), ": tensor '", t.name, "' has type ", t.type->name, " (id ", t.type_id,
                         "), which wanrt cannot load; re-convert it to F16, BF16, Q8_0 or a K-quant");
                s.dtype = DType::F32;  // decoded on first lookup
                store_->is_decoded[s.name] = false;
                break;
        }
        if (!store_->is_decoded.count(s.name)) {
            s.data = t.data;
            s.nbytes = t.nbytes;
        }
        store_->tensors[s.name] = std::move(s);
    }
}

std::shared_ptr<GgufTensorSource> GgufTensorSource::open(const std::string& path, GgufBlocks blocks) {
    return std::make_shared<GgufTensorSource>(GgufFile::open(path), blocks);
}

std::vector<std::string> GgufTensorSource::names() const {
    std::vector<std::string> out;
    for (auto& kv : store_->tensors) out.push_back(kv.first);
    return out;
}

const StoredTensor* GgufTensorSource::find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(store_->mu);
    auto it = store_->tensors.find(name);
    if (it == store_->tensors.end()) return nullptr;
    auto d = store_->is_decoded.find(name);
    if (d != store_->is_decoded.end() && !d->second) {
        std::vector<float>& buf = store_->decoded[name];
        buf = file_->dequantize(*file_->find_tensor(prefix_ + name));
        it->second.data = buf.data();
        it->second.nbytes = buf.size() * sizeof(float);
        d->second = true;
    }
    return &it->second;
}

const GgmlTypeInfo* GgufTensorSource::ggml_type(const std::string& name) const {
    const GgufTensorInfo* t = file_->find_tensor(prefix_ + name);
    return t ? t->type : nullptr;
}

namespace {
// Names, shapes and dtypes of a GgufTensorSource without its lazy decoding (stored_view()).
class GgufStoredView final : public TensorSource {
public:
    GgufStoredView(std::string origin, std::map<std::string, StoredTensor> t, std::shared_ptr<const void> keep)
        : origin_(std::move(origin)), t_(std::move(t)), keep_(std::move(keep)) {}
    std::string origin() const override { return origin_; }
    std::vector<std::string> names() const override {
        std::vector<std::string> out;
        for (const auto& kv : t_) out.push_back(kv.first);
        return out;
    }
    const StoredTensor* find(const std::string& name) const override {
        auto it = t_.find(name);
        return it == t_.end() ? nullptr : &it->second;
    }
    std::shared_ptr<const void> keepalive() const override { return keep_; }

private:
    std::string origin_;
    std::map<std::string, StoredTensor> t_;
    std::shared_ptr<const void> keep_;
};
}  // namespace

std::shared_ptr<TensorSource> GgufTensorSource::stored_view() const {
    std::map<std::string, StoredTensor> t;
    {
        std::lock_guard<std::mutex> lock(store_->mu);
        for (const auto& [name, st] : store_->tensors) {
            StoredTensor s = st;
            auto d = store_->is_decoded.find(name);
            if (d != store_->is_decoded.end() && !d->second) {  // not decoded: no bytes to show
                s.data = nullptr;
                s.nbytes = 0;
            }
            t[name] = s;
        }
    }
    return std::make_shared<GgufStoredView>(file_->path() + " (as stored)", std::move(t), store_);
}

}  // namespace wanrt
