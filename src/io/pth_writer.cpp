// torch.save zip writer (contract in pth_writer.h).
#include "io/pth_writer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace wanrt {

namespace {

constexpr uint32_t kSat32 = 0xffffffffu;
constexpr uint64_t kAlign = 64;  // torch aligns every entry's data to 64 bytes

const std::array<uint32_t, 256>& crc_table() {
    static const std::array<uint32_t, 256> t = [] {
        std::array<uint32_t, 256> a{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            a[i] = c;
        }
        return a;
    }();
    return t;
}

// Running CRC-32 (zip polynomial) without the final inversion: start at 0xffffffff, xor at the end.
uint32_t crc_update(uint32_t c, const void* data, size_t n) {
    const auto& t = crc_table();
    const uint8_t* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c;
}

void put16(std::string& s, uint16_t v) {
    s.push_back(char(v & 0xff));
    s.push_back(char(v >> 8));
}
void put32(std::string& s, uint32_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}
void put64(std::string& s, uint64_t v) {
    for (int i = 0; i < 8; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}

const char* storage_class(DType t) {
    switch (t) {
        case DType::F32: return "FloatStorage";
        case DType::F16: return "HalfStorage";
        case DType::BF16: return "BFloat16Storage";
        case DType::F64: return "DoubleStorage";
        case DType::I64: return "LongStorage";
        case DType::I32: return "IntStorage";
        case DType::U8: return "ByteStorage";
        default: fail("pth", "cannot write dtype ", dtype_name(t), " to a .pth file");
    }
}

// Pickle protocol 2 pieces.
struct Pickler {
    std::string s;
    void global(const char* module, const char* name) {
        s += 'c';
        s += module;
        s += '\n';
        s += name;
        s += '\n';
    }
    void str(const std::string& v) {
        s += 'X';
        put32(s, uint32_t(v.size()));
        s += v;
    }
    void integer(int64_t v) {
        if (v >= 0 && v < 256) {
            s += 'K';
            s.push_back(char(v));
        } else if (v >= INT32_MIN && v <= INT32_MAX) {
            s += 'J';
            put32(s, uint32_t(int32_t(v)));
        } else {  // LONG1: 8-byte little-endian two's complement
            s += char(0x8a);
            s.push_back(char(8));
            put64(s, uint64_t(v));
        }
    }
    void empty_ordered_dict() {
        global("collections", "OrderedDict");
        s += ')';  // EMPTY_TUPLE
        s += 'R';  // REDUCE
    }
};

}  // namespace

PthWriter::PthWriter(std::string path, std::string top) : path_(std::move(path)), top_(std::move(top)) {
    tmp_ = std::make_unique<TempOutput>(path_, "pth");
    f_ = tmp_->open_stdio();
}

PthWriter::~PthWriter() {
    if (f_) std::fclose(f_);  // tmp_ removes the temporary file unless finish() renamed it
}

void PthWriter::write_bytes(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) {
        const int err = errno;
        std::fclose(f_);
        f_ = nullptr;
        tmp_->write_failed(err);
    }
    pos_ += n;
}

void PthWriter::begin_entry(const std::string& name, uint64_t size) {
    Entry e;
    e.name = top_ + "/" + name;
    e.header_offset = pos_;
    e.size = size;
    const bool z64 = size >= kSat32;
    std::string h;
    put32(h, 0x04034b50u);
    put16(h, z64 ? 45 : 20);  // version needed
    put16(h, 0);              // flags
    put16(h, 0);              // stored
    put16(h, 0);              // time
    put16(h, 0x21);           // date 1980-01-01
    put32(h, 0);              // crc, patched in end_entry
    put32(h, z64 ? kSat32 : uint32_t(size));
    put32(h, z64 ? kSat32 : uint32_t(size));
    put16(h, uint16_t(e.name.size()));
    std::string extra;
    if (z64) {
        put16(extra, 0x0001);
        put16(extra, 16);
        put64(extra, size);
        put64(extra, size);
    }
    // Padding extra field ("FB", as torch's writer) so the data starts on a 64-byte boundary.
    const uint64_t base = pos_ + 30 + e.name.size() + extra.size() + 4;
    const uint64_t pad = (kAlign - base % kAlign) % kAlign;
    put16(extra, 0x4246);
    put16(extra, uint16_t(pad));
    extra.append(size_t(pad), 'Z');
    put16(h, uint16_t(extra.size()));
    h += e.name;
    h += extra;
    write_bytes(h.data(), h.size());
    entries_.push_back(e);
    crc_ = 0xffffffffu;
    written_ = 0;
}

void PthWriter::end_entry() {
    Entry& e = entries_.back();
    WANRT_CHECK(written_ == e.size, "pth", "entry ", e.name, " got ", written_, " of ", e.size, " bytes");
    e.crc = crc_ ^ 0xffffffffu;
    std::string c;
    put32(c, e.crc);
    WANRT_CHECK(std::fseek(f_, long(e.header_offset + 14), SEEK_SET) == 0 && std::fwrite(c.data(), 1, 4, f_) == 4 &&
                    std::fseek(f_, 0, SEEK_END) == 0,
                "pth", "cannot update ", path_, " while writing it (", std::strerror(errno), ")");
}

void PthWriter::write_entry(const std::string& name, const std::string& bytes) {
    begin_entry(name, bytes.size());
    crc_ = crc_update(crc_, bytes.data(), bytes.size());
    written_ = bytes.size();
    write_bytes(bytes.data(), bytes.size());
    end_entry();
}

void PthWriter::add(const std::string& name, DType dtype, const Shape& shape, const void* data) {
    const size_t esz = dtype_bytes(dtype, 1);
    add_streamed(name, dtype, shape, [&](void* out, int64_t first, int64_t n) {
        std::memcpy(out, static_cast<const char*>(data) + size_t(first) * esz, size_t(n) * esz);
    });
}

void PthWriter::add_streamed(const std::string& name, DType dtype, const Shape& shape, const FillFn& fill) {
    WANRT_CHECK(!finished_, "pth", "add after finish");
    storage_class(dtype);  // rejects unsupported dtypes before anything is written
    const int64_t n = shape_numel(shape);
    const size_t esz = dtype_bytes(dtype, 1);
    const std::string key = std::to_string(tensors_.size());
    tensors_.push_back({name, dtype, shape, key});
    begin_entry("data/" + key, uint64_t(n) * esz);
    constexpr int64_t kChunkBytes = int64_t(1) << 24;
    const int64_t chunk = std::max<int64_t>(1, kChunkBytes / int64_t(esz));
    std::vector<char> buf(size_t(std::min(n, chunk)) * esz);
    for (int64_t first = 0; first < n; first += chunk) {
        const int64_t m = std::min(chunk, n - first);
        fill(buf.data(), first, m);
        const size_t bytes = size_t(m) * esz;
        crc_ = crc_update(crc_, buf.data(), bytes);
        written_ += bytes;
        write_bytes(buf.data(), bytes);
    }
    end_entry();
}

void PthWriter::finish() {
    WANRT_CHECK(!finished_, "pth", "finish called twice");
    // data.pkl: OrderedDict built with SETITEMS over (key, tensor) pairs.
    Pickler p;
    p.s += char(0x80);
    p.s += char(2);
    p.empty_ordered_dict();
    p.s += '(';  // MARK
    for (const TensorRec& t : tensors_) {
        p.str(t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.s += '(';                            // MARK: the argument tuple
        p.s += '(';                            // MARK: persistent id tuple
        p.str("storage");
        p.global("torch", storage_class(t.dtype));
        p.str(t.key);
        p.str("cpu");
        p.integer(shape_numel(t.shape));
        p.s += 't';                            // TUPLE
        p.s += 'Q';                            // BINPERSID
        p.integer(0);                          // storage offset
        p.s += '(';
        for (int64_t d : t.shape) p.integer(d);
        p.s += 't';                            // size
        p.s += '(';
        int64_t stride = 1;
        std::vector<int64_t> strides(t.shape.size());
        for (size_t i = t.shape.size(); i-- > 0;) {
            strides[i] = stride;
            stride *= t.shape[i];
        }
        for (int64_t s : strides) p.integer(s);
        p.s += 't';                            // stride
        p.s += char(0x89);                     // requires_grad = False
        p.empty_ordered_dict();                // backward hooks
        p.s += 't';                            // TUPLE (args)
        p.s += 'R';                            // REDUCE
    }
    p.s += 'u';  // SETITEMS
    p.s += '.';  // STOP
    write_entry("data.pkl", p.s);
    write_entry("byteorder", "little");
    write_entry("version", "3\n");

    // Central directory.
    const uint64_t cd_off = pos_;
    std::string cd;
    for (const Entry& e : entries_) {
        const bool zs = e.size >= kSat32, zo = e.header_offset >= kSat32;
        std::string extra;
        if (zs || zo) {
            put16(extra, 0x0001);
            put16(extra, uint16_t((zs ? 16 : 0) + (zo ? 8 : 0)));
            if (zs) {
                put64(extra, e.size);
                put64(extra, e.size);
            }
            if (zo) put64(extra, e.header_offset);
        }
        put32(cd, 0x02014b50u);
        put16(cd, 45);  // made by
        put16(cd, (zs || zo) ? 45 : 20);
        put16(cd, 0);
        put16(cd, 0);
        put16(cd, 0);
        put16(cd, 0x21);
        put32(cd, e.crc);
        put32(cd, zs ? kSat32 : uint32_t(e.size));
        put32(cd, zs ? kSat32 : uint32_t(e.size));
        put16(cd, uint16_t(e.name.size()));
        put16(cd, uint16_t(extra.size()));
        put16(cd, 0);  // comment
        put16(cd, 0);  // disk
        put16(cd, 0);  // internal attributes
        put32(cd, 0);  // external attributes
        put32(cd, zo ? kSat32 : uint32_t(e.header_offset));
        cd += e.name;
        cd += extra;
    }
    write_bytes(cd.data(), cd.size());
    const uint64_t cd_size = cd.size(), count = entries_.size();
    const bool z64 = cd_off >= kSat32 || count >= 0xffff;
    std::string end;
    if (z64) {
        const uint64_t z64_off = pos_;
        put32(end, 0x06064b50u);
        put64(end, 44);  // size of the rest of this record
        put16(end, 45);
        put16(end, 45);
        put32(end, 0);
        put32(end, 0);
        put64(end, count);
        put64(end, count);
        put64(end, cd_size);
        put64(end, cd_off);
        put32(end, 0x07064b50u);  // locator
        put32(end, 0);
        put64(end, z64_off);
        put32(end, 1);
    }
    put32(end, 0x06054b50u);
    put16(end, 0);
    put16(end, 0);
    put16(end, uint16_t(std::min<uint64_t>(count, 0xffff)));
    put16(end, uint16_t(std::min<uint64_t>(count, 0xffff)));
    put32(end, uint32_t(std::min<uint64_t>(cd_size, kSat32)));
    put32(end, z64 ? kSat32 : uint32_t(cd_off));
    put16(end, 0);
    write_bytes(end.data(), end.size());
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) tmp_->write_failed(errno);
    tmp_->commit();
    finished_ = true;
}

}  // namespace wanrt
