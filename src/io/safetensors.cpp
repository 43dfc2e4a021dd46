#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/output_file.h"

namespace wanrt {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxHeader = 256ull << 20;  // far above any real header; guards a corrupt length

struct Mapping {
    void* addr = nullptr;
    size_t size = 0;
    ~Mapping() {
        if (addr && addr != MAP_FAILED) munmap(addr, size);
    }
};

int64_t checked_dim(const json& d, const std::string& path, const std::string& name) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail("safetensors", path, ": tensor '", name, "' has an invalid shape entry ", d.dump(),
             "; the file is corrupt, re-download or re-convert it");
    return d.get<int64_t>();
}

}  // namespace

std::shared_ptr<SafeTensorsFile> SafeTensorsFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail("safetensors", "cannot open ", path, ": ", std::strerror(errno),
             "; check the path (--ckpt_dir) and permissions");
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        ::close(fd);
        fail("safetensors", "cannot stat ", path, ": ", std::strerror(errno));
    }
    size_t fsize = size_t(st.st_size);
    if (fsize < 8) {
        ::close(fd);
        fail("safetensors", path, " is ", fsize, " bytes, too short for a safetensors header; the file is truncated, re-download it");
    }
    auto map = std::make_shared<Mapping>();
    map->size = fsize;
    map->addr = mmap(nullptr, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map->addr == MAP_FAILED)
        fail("safetensors", "cannot mmap ", path, ": ", std::strerror(errno));
    return parse(static_cast<const uint8_t*>(map->addr), fsize, path, map);
}

std::shared_ptr<SafeTensorsFile> SafeTensorsFile::from_memory(const void* bytes, size_t size, const std::string& origin) {
    if (size < 8)
        fail("safetensors", origin, " is ", size, " bytes, too short for a safetensors header");
    // The bytes are static: a keep-alive that owns nothing, for users that hold one.
    return parse(static_cast<const uint8_t*>(bytes), size, origin, std::shared_ptr<const void>(bytes, [](const void*) {}));
}

std::shared_ptr<SafeTensorsFile> SafeTensorsFile::parse(const uint8_t* base, size_t fsize, const std::string& path,
                                                        std::shared_ptr<const void> map) {
    uint64_t hlen = 0;
    std::memcpy(&hlen, base, 8);  // little-endian hosts only (x86-64, arm64)
    if (hlen > kMaxHeader || hlen > fsize - 8)
        fail("safetensors", path, ": header length ", hlen, " exceeds the file size ", fsize,
             "; the file is truncated or not a safetensors file");
    json header;
    // JSON objects may repeat a key and nlohmann keeps one silently; two entries for one tensor name
    // (possibly with different data) must be refused, so the top-level keys are collected as parsed.
    std::set<std::string> keys;
    std::string duplicate;
    auto on_event = [&](int depth, json::parse_event_t ev, json& parsed) {
        if (depth == 1 && ev == json::parse_event_t::key && parsed.is_string() &&
            !keys.insert(parsed.get<std::string>()).second && duplicate.empty())
            duplicate = parsed.get<std::string>();
        return true;
    };
    try {
        header = json::parse(reinterpret_cast<const char*>(base + 8), reinterpret_cast<const char*>(base + 8 + hlen),
                             on_event);
    } catch (const json::exception& e) {
        fail("safetensors", path, ": header is not valid JSON (", e.what(), "); the file is corrupt");
    }
    if (!header.is_object()) fail("safetensors", path, ": header is not a JSON object; the file is corrupt");
    if (!duplicate.empty())
        fail("safetensors", path, ": tensor '", duplicate, "' appears twice in the header; the file is corrupt or ",
             "was tampered with, re-download it");

    auto f = std::shared_ptr<SafeTensorsFile>(new SafeTensorsFile());
    f->path_ = path;
    const uint8_t* data = base + 8 + hlen;
    size_t data_size = fsize - 8 - hlen;
    std::vector<std::tuple<uint64_t, uint64_t, std::string>> spans;  // non-empty [begin, end) per tensor
    for (auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) fail("safetensors", path, ": __metadata__ is not an object");
            for (auto& [k, v] : entry.items())
                f->metadata_[k] = v.is_string() ? v.get<std::string>() : v.dump();
            continue;
        }
        if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
            !entry.contains("data_offsets"))
            fail("safetensors", path, ": tensor '", name, "' lacks dtype/shape/data_offsets; the file is corrupt");
        StoredTensor t;
        t.name = name;
        std::string dt = entry["dtype"].is_string() ? entry["dtype"].get<std::string>() : entry["dtype"].dump();
        if (!dtype_from_safetensors(dt, &t.dtype))
            fail("safetensors", path, ": tensor '", name, "' has unsupported dtype ", dt,
                 " (supported: F64 F32 F16 BF16 I64 I32 U8); convert the checkpoint to one of these");
        if (!entry["shape"].is_array()) fail("safetensors", path, ": tensor '", name, "' shape is not a list");
        for (auto& d : entry["shape"]) t.shape.push_back(checked_dim(d, path, name));
        const json& off = entry["data_offsets"];
        if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            fail("safetensors", path, ": tensor '", name, "' has malformed data_offsets ", off.dump());
        uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
        if (b > e || e > data_size)
            fail("safetensors", path, ": tensor '", name, "' data [", b, ", ", e, ") lies outside the ",
                 data_size, "-byte data region; the file is truncated or corrupt, re-download it");
        // Overflow-safe element count check.
        uint64_t n = 1;
        for (int64_t d : t.shape) {
            if (d != 0 && n > (UINT64_MAX / 16) / uint64_t(d))
                fail("safetensors", path, ": tensor '", name, "' shape ", shape_str(t.shape), " is too large");
            n *= uint64_t(d);
        }
        if (e - b != dtype_bytes(t.dtype, int64_t(n)))
            fail("safetensors", path, ": tensor '", name, "' ", dt, shape_str(t.shape), " needs ",
                 dtype_bytes(t.dtype, int64_t(n)), " bytes but its data_offsets span ", e - b, "; the file is corrupt");
        t.data = data + b;
        t.nbytes = e - b;
        if (e > b) spans.push_back({b, e, name});
        f->tensors_.emplace(name, std::move(t));
    }
    // No two tensors may share bytes: writers lay tensors end to end, and an overlap means one
    // tensor's weights silently alias another's.
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
        if (std::get<0>(spans[i]) < std::get<1>(spans[i - 1]))
            fail("safetensors", path, ": tensors '", std::get<2>(spans[i - 1]), "' and '", std::get<2>(spans[i]),
                 "' overlap (data [", std::get<0>(spans[i - 1]), ", ", std::get<1>(spans[i - 1]), ") and [",
                 std::get<0>(spans[i]), ", ", std::get<1>(spans[i]), ")); the file is corrupt, re-download it");
    f->map_ = map;
    return f;
}

std::vector<std::string> SafeTensorsFile::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (auto& kv : tensors_) out.push_back(kv.first);
    return out;
}

const StoredTensor* SafeTensorsFile::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

MultiTensorSource::MultiTensorSource(std::string origin, std::vector<std::shared_ptr<TensorSource>> parts)
    : origin_(std::move(origin)), parts_(std::move(parts)) {
    for (auto& p : parts_) {
        for (auto& n : p->names()) {
            if (index_.count(n))
                fail("safetensors", origin_, ": tensor '", n, "' appears in more than one shard (", p->origin(), ")");
            index_[n] = p->find(n);
        }
    }
}

std::vector<std::string> MultiTensorSource::names() const {
    std::vector<std::string> out;
    for (auto& kv : index_) out.push_back(kv.first);
    return out;
}

const StoredTensor* MultiTensorSource::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second;
}

std::shared_ptr<const void> MultiTensorSource::keepalive() const {
    auto parts = std::make_shared<std::vector<std::shared_ptr<const void>>>();
    for (auto& p : parts_) parts->push_back(p->keepalive());
    return parts;
}

std::shared_ptr<TensorSource> open_safetensors(const std::string& path) {
    const std::string suffix = ".index.json";
    if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
        return SafeTensorsFile::open(path);

    std::ifstream in(path);
    if (!in) fail("safetensors", "cannot open shard index ", path, "; check the path");
    json idx;
    try {
        idx = json::parse(in);
    } catch (const json::exception& e) {
        fail("safetensors", path, ": not valid JSON (", e.what(), ")");
    }
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
        fail("safetensors", path, ": no \"weight_map\" object; not a safetensors shard index");
    fs::path dir = fs::path(path).parent_path();
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto& [name, file] : idx["weight_map"].items()) {
        if (!file.is_string()) fail("safetensors", path, ": weight_map entry '", name, "' is not a file name");
        // A shard is a file in the index's own folder: a path ("../x", "/etc/x", "a/b") would let a
        // downloaded index make wanrt open files elsewhere.
        const std::string fn = file.get<std::string>();
        if (fn.empty() || fn == "." || fn == ".." || fn.find('/') != std::string::npos ||
            fn.find('\\') != std::string::npos || fn.find('\0') != std::string::npos)
            fail("safetensors", path, ": weight_map entry '", name, "' names shard \"", fn,
                 "\", which is not a file name in the model folder; the index is corrupt or hostile, re-download it");
        by_file[file.get<std::string>()].push_back(name);
    }
    std::vector<std::shared_ptr<TensorSource>> parts;
    for (auto& [file, names] : by_file) {
        fs::path p = dir / file;
        // The error_code form: a name the file system cannot take (longer than NAME_MAX, found by
        // fuzz_safetensors_index) must be this one line, not an uncaught filesystem_error.
        std::error_code ec;
        const bool present = fs::exists(p, ec);
        if (ec)
            fail("safetensors", path, " names shard \"", file.substr(0, 64), file.size() > 64 ? "…" : "",
                 "\", which cannot be looked up in ", dir.string(), " (", ec.message(),
                 "); the index is corrupt or hostile, re-download it");
        if (!present)
            fail("safetensors", path, " names shard ", file, " which is missing from ", dir.string(),
                 "; download all ", by_file.size(), " shards");
        auto part = SafeTensorsFile::open(p.string());
        for (auto& n : names)
            if (!part->find(n))
                fail("safetensors", path, " maps '", n, "' to ", file, " but that shard lacks it; the download is incomplete");
        if (part->names().size() != names.size())
            fail("safetensors", p.string(), " holds ", part->names().size(), " tensors but the index assigns it ",
                 names.size(), "; the shard and index do not match");
        parts.push_back(part);
    }
    return std::make_shared<MultiTensorSource>(path, std::move(parts));
}

// ---------------------------------------------------------------- writing

struct SafeTensorsWriter::Impl {
    std::string path;
    std::unique_ptr<TempOutput> tmp;  // beside path, unique name, removed unless finish() renamed it
    std::map<std::string, std::string> metadata;
    struct Decl {
        std::string name;
        DType dtype;
        Shape shape;
        size_t bytes;
    };
    std::vector<Decl> decls;
    FILE* f = nullptr;
    size_t cur = 0;          // index of the tensor being written
    size_t written_in_cur = 0;
    bool header_done = false, finished = false;

    void write_header() {
        json h = json::object();
        size_t off = 0;
        for (auto& d : decls) {
            json e;
            e["dtype"] = dtype_info(d.dtype).st_name;
            e["shape"] = d.shape;
            e["data_offsets"] = {off, off + d.bytes};
            h[d.name] = e;
            off += d.bytes;
        }
        if (!metadata.empty()) h["__metadata__"] = metadata;
        std::string s = h.dump();
        while ((8 + s.size()) % 8) s += ' ';  // keep the data region 8-byte aligned
        uint64_t n = s.size();
        tmp = std::make_unique<TempOutput>(path, "safetensors");
        f = tmp->open_stdio();
        if (std::fwrite(&n, 8, 1, f) != 1 || std::fwrite(s.data(), 1, s.size(), f) != s.size()) write_failed();
        header_done = true;
    }
    [[noreturn]] void write_failed() {
        const int err = errno;
        if (f) std::fclose(f);
        f = nullptr;
        tmp->write_failed(err);
    }
};

SafeTensorsWriter::SafeTensorsWriter(std::string path, std::map<std::string, std::string> metadata)
    : impl_(std::make_unique<Impl>()) {
    impl_->path = path;
    impl_->metadata = std::move(metadata);
}

SafeTensorsWriter::~SafeTensorsWriter() {
    if (impl_->f) std::fclose(impl_->f);  // the temporary file goes with impl_->tmp unless finished
}

void SafeTensorsWriter::declare(const std::string& name, DType dtype, const Shape& shape) {
    WANRT_ASSERT(!impl_->header_done);
    impl_->decls.push_back({name, dtype, shape, dtype_bytes(dtype, shape_numel(shape))});
}

void SafeTensorsWriter::write(const void* data, size_t nbytes) {
    Impl& s = *impl_;
    if (!s.header_done) s.write_header();
    if (nbytes == 0) return;  // empty tensors need no bytes
    while (s.cur < s.decls.size() && s.written_in_cur == s.decls[s.cur].bytes) {
        ++s.cur;
        s.written_in_cur = 0;
    }
    WANRT_ASSERT(s.cur < s.decls.size() && s.written_in_cur + nbytes <= s.decls[s.cur].bytes);
    if (std::fwrite(data, 1, nbytes, s.f) != nbytes) s.write_failed();
    s.written_in_cur += nbytes;
}

void SafeTensorsWriter::finish() {
    Impl& s = *impl_;
    if (!s.header_done) s.write_header();
    size_t total = 0, expect = 0;
    for (size_t i = 0; i < s.decls.size(); ++i) expect += s.decls[i].bytes;
    for (size_t i = 0; i < s.cur; ++i) total += s.decls[i].bytes;
    if (s.cur < s.decls.size()) total += s.written_in_cur;
    WANRT_ASSERT(total == expect);
    if (std::fflush(s.f) != 0) s.write_failed();
    const int rc = std::fclose(s.f);
    s.f = nullptr;
    if (rc != 0) s.write_failed();
    s.tmp->commit();
    s.finished = true;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    SafeTensorsWriter w(path, metadata);
    for (auto& t : tensors) w.declare(t.name, t.dtype, t.shape);
    for (auto& t : tensors) w.write(t.data, dtype_bytes(t.dtype, shape_numel(t.shape)));
    w.finish();
}

}  // namespace wanrt
