#include "io/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/output_file.h"

namespace wanrt {

namespace {

struct Buf {
    std::string b;
    template <class T>
    void put(T v) {
        b.append(reinterpret_cast<const char*>(&v), sizeof(T));
    }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        b += s;
    }
};

// The bytes of one value (its type tag is written by the caller for top-level KVs).
void put_value(Buf& w, const GgufValue& v) {
    switch (v.type) {
        case GgufValueType::UINT8:
            w.put<uint8_t>(uint8_t(v.u));
            break;
        case GgufValueType::INT8:
            w.put<int8_t>(int8_t(v.i));
            break;
        case GgufValueType::UINT16:
            w.put<uint16_t>(uint16_t(v.u));
            break;
        case GgufValueType::INT16:
            w.put<int16_t>(int16_t(v.i));
            break;
        case GgufValueType::UINT32:
            w.put<uint32_t>(uint32_t(v.u));
            break;
        case GgufValueType::INT32:
            w.put<int32_t>(int32_t(v.i));
            break;
        case GgufValueType::FLOAT32:
            w.put<float>(float(v.f));
            break;
        case GgufValueType::BOOL:
            w.put<uint8_t>(v.u ? 1 : 0);
            break;
        case GgufValueType::STRING:
            w.str(v.str);
            break;
        case GgufValueType::UINT64:
            w.put<uint64_t>(v.u);
            break;
        case GgufValueType::INT64:
            w.put<int64_t>(v.i);
            break;
        case GgufValueType::FLOAT64:
            w.put<double>(v.f);
            break;
        case GgufValueType::ARRAY:
            w.put<uint32_t>(uint32_t(v.elem_type));
            w.put<uint64_t>(v.array.size());
            for (const GgufValue& e : v.array) {
                WANRT_ASSERT(e.type == v.elem_type);
                put_value(w, e);
            }
            break;
    }
}

uint64_t pad_to(uint64_t n, uint64_t a) {
    return (n + a - 1) / a * a;
}

}  // namespace

struct GgufWriter::Impl {
    std::string path;
    uint32_t alignment = kGgufDefaultAlignment;
    std::vector<GgufKV> kvs;
    struct Decl {
        std::string name;
        GgmlType type;
        Shape shape;
        uint64_t nbytes, offset;
    };
    std::vector<Decl> decls;
    std::set<std::string> names;
    uint64_t data_bytes = 0;  // data section incl. padding
    std::unique_ptr<TempOutput> tmp;
    FILE* f = nullptr;
    size_t cur = 0;
    uint64_t written_in_cur = 0;
    bool header_done = false, finished = false;

    std::string header() const {
        Buf w;
        w.b.append("GGUF", 4);
        w.put<uint32_t>(3);
        w.put<uint64_t>(decls.size());
        w.put<uint64_t>(kvs.size());
        for (const GgufKV& kv : kvs) {
            w.str(kv.key);
            w.put<uint32_t>(uint32_t(kv.value.type));
            put_value(w, kv.value);
        }
        for (const Decl& d : decls) {
            w.str(d.name);
            w.put<uint32_t>(uint32_t(d.shape.size()));
            for (size_t k = d.shape.size(); k-- > 0;) w.put<uint64_t>(uint64_t(d.shape[k]));  // innermost first
            w.put<uint32_t>(uint32_t(d.type));
            w.put<uint64_t>(d.offset);
        }
        w.b.resize(size_t(pad_to(w.b.size(), alignment)), '\0');
        return w.b;
    }
    void put(const void* p, size_t n) {
        if (n && std::fwrite(p, 1, n, f) != n) failed();
    }
    void pad(uint64_t n) {
        static const char zeros[256] = {};
        while (n) {
            size_t k = size_t(std::min<uint64_t>(n, sizeof zeros));
            put(zeros, k);
            n -= k;
        }
    }
    void start() {
        if (alignment != kGgufDefaultAlignment) {
            bool has = false;
            for (const GgufKV& kv : kvs) has |= kv.key == "general.alignment";
            WANRT_ASSERT(has);  // added by the constructor
        }
        const std::string h = header();
        tmp = std::make_unique<TempOutput>(path, "gguf");
        f = tmp->open_stdio();
        put(h.data(), h.size());
        header_done = true;
    }
    // Pads the finished tensors up to the current one.
    void advance() {
        while (cur < decls.size() && written_in_cur == decls[cur].nbytes) {
            pad(pad_to(decls[cur].nbytes, alignment) - decls[cur].nbytes);
            ++cur;
            written_in_cur = 0;
        }
    }
    [[noreturn]] void failed() {
        const int err = errno;
        if (f) std::fclose(f);
        f = nullptr;
        tmp->write_failed(err);
    }
};

GgufWriter::GgufWriter(std::string path, uint32_t alignment) : impl_(std::make_unique<Impl>()) {
    WANRT_ASSERT(alignment > 0 && alignment % 8 == 0);
    impl_->path = std::move(path);
    impl_->alignment = alignment;
    if (alignment != kGgufDefaultAlignment) add_u32("general.alignment", alignment);
}

GgufWriter::~GgufWriter() {
    if (impl_->f) std::fclose(impl_->f);
}

const std::string& GgufWriter::path() const {
    return impl_->path;
}

void GgufWriter::add_kv(const std::string& key, const GgufValue& value) {
    WANRT_ASSERT(!impl_->header_done);
    for (const GgufKV& kv : impl_->kvs)
        if (kv.key == key) fail("gguf", impl_->path, ": metadata key '", key, "' added twice");
    impl_->kvs.push_back({key, value});
}

void GgufWriter::add_string(const std::string& key, const std::string& v) {
    GgufValue x;
    x.type = GgufValueType::STRING;
    x.str = v;
    add_kv(key, x);
}

void GgufWriter::add_u32(const std::string& key, uint32_t v) {
    GgufValue x;
    x.type = GgufValueType::UINT32;
    x.u = v;
    add_kv(key, x);
}

void GgufWriter::declare(const std::string& name, GgmlType type, const Shape& shape) {
    Impl& s = *impl_;
    WANRT_ASSERT(!s.header_done);
    const GgmlTypeInfo* ti = ggml_type_info(uint32_t(type));
    WANRT_ASSERT(ti);
    if (!s.names.insert(name).second) fail("gguf", s.path, ": tensor '", name, "' declared twice");
    if (shape.empty() || shape.size() > size_t(kGgufMaxDims))
        fail("gguf", s.path, ": tensor '", name, "' has ", shape.size(), " dims; GGUF holds 1 to ", kGgufMaxDims);
    if (shape.back() % ti->block_elems != 0)
        fail("gguf", s.path, ": tensor '", name, "' rows of ", shape.back(), " are not a whole number of ", ti->name,
             " blocks (", ti->block_elems, " elements); use another type for it");
    const int64_t n = shape_numel(shape);
    const uint64_t nbytes = uint64_t(n / ti->block_elems) * ti->block_bytes;
    s.decls.push_back({name, type, shape, nbytes, s.data_bytes});
    s.data_bytes += pad_to(nbytes, s.alignment);
}

uint64_t GgufWriter::file_size() const {
    return impl_->header().size() + impl_->data_bytes;
}

void GgufWriter::write(const void* data, size_t nbytes) {
    Impl& s = *impl_;
    if (!s.header_done) s.start();
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (nbytes) {
        s.advance();
        WANRT_ASSERT(s.cur < s.decls.size());
        const uint64_t k = std::min<uint64_t>(nbytes, s.decls[s.cur].nbytes - s.written_in_cur);
        s.put(p, size_t(k));
        s.written_in_cur += k;
        p += k;
        nbytes -= size_t(k);
    }
}

void GgufWriter::finish() {
    Impl& s = *impl_;
    if (!s.header_done) s.start();
    s.advance();
    WANRT_ASSERT(s.cur == s.decls.size());  // every declared byte was written
    if (std::fflush(s.f) != 0) s.failed();
    FILE* f = s.f;
    s.f = nullptr;
    if (std::fclose(f) != 0) {
        const int err = errno;
        s.tmp->write_failed(err);
    }
    s.tmp->commit();
    s.finished = true;
}

}  // namespace wanrt
