// torch.save zip reader: zip directory → pickle stack machine (no code execution) → tensors.
#include "io/pth.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "core/error.h"

namespace wanrt {
namespace {

// ------------------------------------------------------------------------------------------
// Mapped file and owned copies, kept alive together by the source and the tensors it hands out.
struct PthStore {
    const uint8_t* base = nullptr;
    size_t size = 0;
    std::vector<std::vector<uint8_t>> copies;  // materialised strided / byte-swapped tensors
    ~PthStore() {
        if (base && size) munmap(const_cast<uint8_t*>(base), size);
    }
};

uint16_t rd16(const uint8_t* p) {
    return uint16_t(p[0] | (p[1] << 8));
}
uint32_t rd32(const uint8_t* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint64_t rd64(const uint8_t* p) {
    return uint64_t(rd32(p)) | (uint64_t(rd32(p + 4)) << 32);
}

// ------------------------------------------------------------------------------------------
// Zip: central directory → name → (data offset, size) of each stored entry.
struct ZipEntry {
    uint64_t offset = 0;  // of the entry's bytes in the file
    uint64_t size = 0;
};

std::map<std::string, ZipEntry> read_zip(const std::string& path, const uint8_t* f, uint64_t n) {
    auto bad = [&](const std::string& what) -> void {
        fail("pth", what, ", in ", path,
             "; the file is truncated or not a torch.save archive: re-download or re-save it");
    };
    if (n < 22) bad(cat("file of ", n, " bytes is too small for a zip archive"));
    if (n >= 2 && f[0] == 0x80 && f[1] <= 5)
        fail("pth", "legacy (pre-1.6, non-zip) torch.save format, in ", path,
             "; re-save it with a current torch (torch.save(torch.load(p), p))");
    // End of central directory: 22 bytes + comment (≤ 65535), searched backwards.
    int64_t eocd = -1;
    for (int64_t i = int64_t(n) - 22; i >= 0 && i >= int64_t(n) - 22 - 65535; --i)
        if (rd32(f + i) == 0x06054b50u) {
            eocd = i;
            break;
        }
    if (eocd < 0) bad("no zip end-of-central-directory record");
    uint64_t count = rd16(f + eocd + 10);
    uint64_t cd_size = rd32(f + eocd + 12);
    uint64_t cd_off = rd32(f + eocd + 16);
    // Zip64: a locator sits right before the EOCD and points at the zip64 EOCD record.
    if (eocd >= 20 && rd32(f + eocd - 20) == 0x07064b50u) {
        uint64_t z64 = rd64(f + eocd - 20 + 8);
        if (z64 > n || n - z64 < 56 || rd32(f + z64) != 0x06064b50u) bad("bad zip64 end-of-central-directory record");
        count = rd64(f + z64 + 32);
        cd_size = rd64(f + z64 + 40);
        cd_off = rd64(f + z64 + 48);
    }
    if (cd_off > n || cd_size > n - cd_off)
        bad(cat("central directory at ", cd_off, " (+", cd_size, " bytes) lies past the end of the file (", n,
                " bytes)"));
    std::map<std::string, ZipEntry> entries;
    uint64_t p = cd_off;
    for (uint64_t e = 0; e < count; ++e) {
        if (p > cd_off + cd_size || cd_off + cd_size - p < 46 || rd32(f + p) != 0x02014b50u)
            bad(cat("central directory entry ", e, " is corrupt"));
        const uint16_t flags = rd16(f + p + 8), method = rd16(f + p + 10);
        uint64_t csize = rd32(f + p + 20), usize = rd32(f + p + 24);
        const uint16_t nlen = rd16(f + p + 28), xlen = rd16(f + p + 30), clen = rd16(f + p + 32);
        uint64_t lho = rd32(f + p + 42);
        if (cd_off + cd_size - p - 46 < uint64_t(nlen) + xlen + clen)
            bad(cat("central directory entry ", e, " is corrupt"));
        std::string name(reinterpret_cast<const char*>(f + p + 46), nlen);
        // Zip64 extra field: the 64-bit values of whichever 32-bit fields are saturated, in order.
        const uint8_t* x = f + p + 46 + nlen;
        for (uint32_t q = 0; q + 4 <= xlen;) {
            uint16_t id = rd16(x + q), len = rd16(x + q + 2);
            if (q + 4 + len > xlen) break;
            if (id == 0x0001) {
                const uint8_t* v = x + q + 4;
                uint32_t left = len;
                auto take = [&](uint64_t& field) {
                    if (field == 0xffffffffu && left >= 8) {
                        field = rd64(v);
                        v += 8;
                        left -= 8;
                    }
                };
                take(usize);
                take(csize);
                take(lho);
            }
            q += 4 + len;
        }
        if (flags & 1)
            fail("pth", "entry '", name, "' is encrypted, in ", path,
                 "; torch never writes encrypted archives: re-save the checkpoint");
        if (method != 0)
            fail("pth", "entry '", name, "' is compressed (zip method ", method, "), in ", path,
                 "; torch.save writes stored entries: re-save it with torch.save instead of re-zipping it");
        if (lho > n || n - lho < 30 || rd32(f + lho) != 0x04034b50u)
            bad(cat("local header of entry '", name, "' is missing"));
        const uint64_t data = lho + 30 + rd16(f + lho + 26) + rd16(f + lho + 28);
        if (data > n || n - data < csize)
            bad(cat("entry '", name, "' (", csize, " bytes at offset ", data, ") is cut off"));
        entries[name] = ZipEntry{data, csize};
        p += 46 + uint64_t(nlen) + xlen + clen;
    }
    return entries;
}

// ------------------------------------------------------------------------------------------
// Pickle values. Lists and dicts are shared objects (the memo refers to them, SETITEMS mutates).
struct PyObj;
using Obj = std::shared_ptr<PyObj>;

struct StorageRef {
    DType dtype = DType::F32;
    std::string key;
    int64_t numel = 0;
};

struct TensorRef {
    std::shared_ptr<StorageRef> storage;
    DType dtype = DType::F32;
    int64_t offset = 0;
    Shape shape, stride;
};

struct PyObj {
    enum Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor, Opaque } kind = None;
    int64_t i = 0;
    double f = 0;
    std::string s, s2;       // Str/Bytes value; Global module (s) and name (s2)
    std::vector<Obj> items;  // Tuple, List
    std::vector<std::pair<Obj, Obj>> dict;
    std::shared_ptr<StorageRef> storage;  // Storage
    TensorRef tensor;                     // Tensor
    std::optional<DType> dtype;           // Global that names a storage type or a dtype
};

Obj make(PyObj::Kind k) {
    auto o = std::make_shared<PyObj>();
    o->kind = k;
    return o;
}

// Limits on the object graph a pickle may build. A state dict nests a few levels (the nn.Module
// tree) and flattens to some thousands of tensors; a hostile pickle can instead refer to itself
// (a dict inside itself: endless recursion) or share one list many times per level (2^depth
// leaves from a few bytes), so both are bounded before anything walks the graph.
constexpr int kMaxDepth = 64;
constexpr int64_t kMaxLeaves = int64_t(1) << 22;  // entries after flattening shared sub-objects
constexpr size_t kMaxMemo = size_t(1) << 24;     // memo slots (torch numbers them from 0 upwards)

// Storage classes and dtype objects that may appear as globals.
std::optional<DType> storage_global_dtype(const std::string& mod, const std::string& name, bool* unsupported) {
    *unsupported = false;
    if (mod != "torch") return std::nullopt;
    static const std::map<std::string, std::optional<DType>> table = {
        {"FloatStorage", DType::F32},
        {"float32", DType::F32},
        {"float", DType::F32},
        {"HalfStorage", DType::F16},
        {"float16", DType::F16},
        {"half", DType::F16},
        {"BFloat16Storage", DType::BF16},
        {"bfloat16", DType::BF16},
        {"DoubleStorage", DType::F64},
        {"float64", DType::F64},
        {"double", DType::F64},
        {"LongStorage", DType::I64},
        {"int64", DType::I64},
        {"long", DType::I64},
        {"IntStorage", DType::I32},
        {"int32", DType::I32},
        {"int", DType::I32},
        {"ByteStorage", DType::U8},
        {"uint8", DType::U8},
        {"BoolStorage", DType::U8},
        {"bool", DType::U8},  // bytes 0/1, read as u8
        {"UntypedStorage", DType::U8},
        // Known torch types wanrt has no dtype for: a clear error instead of "disallowed global".
        {"CharStorage", std::nullopt},
        {"int8", std::nullopt},
        {"ShortStorage", std::nullopt},
        {"int16", std::nullopt},
        {"ComplexFloatStorage", std::nullopt},
        {"ComplexDoubleStorage", std::nullopt},
        {"float8_e4m3fn", std::nullopt},
        {"float8_e5m2", std::nullopt},
    };
    auto it = table.find(name);
    if (it == table.end()) return std::nullopt;
    if (!it->second) *unsupported = true;
    return it->second;
}

class Unpickler {
public:
    Unpickler(const std::string& path, const std::string& entry, const uint8_t* p, size_t n)
        : path_(path), entry_(entry), p_(p), n_(n) {}
    // Objects refer to each other through shared pointers, so a self-referencing pickle would
    // leak and a deeply nested one would recurse in the destructors: every object is owned by
    // the arena too, and all edges are cut before the arena lets go.
    ~Unpickler() {
        stack_.clear();
        memo_.clear();
        for (auto& o : arena_) {
            o->items.clear();
            o->dict.clear();
        }
    }
    Unpickler(const Unpickler&) = delete;
    Unpickler& operator=(const Unpickler&) = delete;

    // Rejects cycles, nesting deeper than kMaxDepth and graphs that flatten to more than
    // kMaxLeaves entries (iterative DFS, so the check itself cannot overflow the stack).
    void check_graph(const Obj& root) const {
        struct Info {
            int state = 0;  // 0 unseen, 1 on the current path, 2 done
            int depth = 0;
            int64_t leaves = 0;
        };
        std::map<const PyObj*, Info> info;
        struct Frame {
            const PyObj* o;
            size_t next;
        };
        auto children = [](const PyObj* o) {
            return o->kind == PyObj::Dict ? o->dict.size() : o->items.size();
        };
        auto child = [](const PyObj* o, size_t k) {
            return o->kind == PyObj::Dict ? o->dict[k].second.get() : o->items[k].get();
        };
        auto is_container = [](const PyObj* o) {
            return o->kind == PyObj::Dict || o->kind == PyObj::List || o->kind == PyObj::Tuple;
        };
        if (!is_container(root.get())) return;
        std::vector<Frame> path{{root.get(), 0}};
        info[root.get()].state = 1;
        while (!path.empty()) {
            Frame& f = path.back();
            if (f.next < children(f.o)) {
                const PyObj* c = child(f.o, f.next++);
                if (!is_container(c)) {
                    Info& pi = info[f.o];
                    pi.leaves = std::min(kMaxLeaves + 1, pi.leaves + 1);
                    continue;
                }
                Info& ci = info[c];
                if (ci.state == 1)
                    bad(n_, "the pickle refers to itself (a container holds itself); a state dict never does");
                if (ci.state == 0) {
                    if (int(path.size()) >= kMaxDepth)
                        bad(n_, cat("containers nest deeper than ", kMaxDepth, " levels"));
                    ci.state = 1;
                    path.push_back({c, 0});
                    continue;
                }
                Info& pi = info[f.o];  // a shared, finished sub-object: add its totals
                pi.leaves = std::min(kMaxLeaves + 1, pi.leaves + std::max<int64_t>(ci.leaves, 1));
                pi.depth = std::max(pi.depth, ci.depth + 1);
                continue;
            }
            Info& done = info[f.o];
            done.state = 2;
            if (done.leaves > kMaxLeaves)
                bad(n_, cat("the pickle expands to more than ", kMaxLeaves, " entries (shared sub-objects)"));
            const PyObj* o = f.o;
            path.pop_back();
            if (!path.empty()) {
                Info& pi = info[path.back().o];
                pi.leaves = std::min(kMaxLeaves + 1, pi.leaves + std::max<int64_t>(done.leaves, 1));
                pi.depth = std::max(pi.depth, done.depth + 1);
                if (pi.depth > kMaxDepth) bad(n_, cat("containers nest deeper than ", kMaxDepth, " levels"));
                if (pi.leaves > kMaxLeaves)
                    bad(n_, cat("the pickle expands to more than ", kMaxLeaves, " entries (shared sub-objects)"));
            }
            (void)o;
        }
    }

    Obj run() {
        while (true) {
            const size_t at = pos_;
            const uint8_t op = u8();
            switch (op) {
                case 0x80:
                    u8();
                    break;  // PROTO
                case 0x95:
                    take(8);
                    break;   // FRAME (protocol 4): sizes only
                case '.': {  // STOP
                    if (stack_.empty()) bad(at, "STOP with an empty stack");
                    return stack_.back();
                }
                case '(':
                    marks_.push_back(stack_.size());
                    break;  // MARK
                case '}':
                    push(mk(PyObj::Dict));
                    break;
                case ']':
                    push(mk(PyObj::List));
                    break;
                case ')':
                    push(mk(PyObj::Tuple));
                    break;
                case 'N':
                    push(mk(PyObj::None));
                    break;
                case 0x88:
                case 0x89: {  // NEWTRUE / NEWFALSE
                    auto o = mk(PyObj::Bool);
                    o->i = op == 0x88;
                    push(o);
                    break;
                }
                case 'K':
                    push_int(u8());
                    break;  // BININT1
                case 'M':
                    push_int(rd16(take(2)));
                    break;  // BININT2
                case 'J':
                    push_int(int32_t(rd32(take(4))));
                    break;    // BININT
                case 0x8a: {  // LONG1: little-endian two's complement
                    const size_t len = u8();
                    if (len > 8) bad(at, cat("LONG1 of ", len, " bytes does not fit in 64 bits"));
                    const uint8_t* b = take(len);
                    uint64_t v = 0;
                    for (size_t k = 0; k < len; ++k) v |= uint64_t(b[k]) << (8 * k);
                    if (len > 0 && len < 8 && (b[len - 1] & 0x80)) v |= ~uint64_t(0) << (8 * len);
                    push_int(int64_t(v));
                    break;
                }
                case 'G': {  // BINFLOAT: big-endian double
                    const uint8_t* b = take(8);
                    uint64_t v = 0;
                    for (int k = 0; k < 8; ++k) v = (v << 8) | b[k];
                    auto o = mk(PyObj::Float);
                    std::memcpy(&o->f, &v, 8);
                    push(o);
                    break;
                }
                case 'X':
                    push_str(PyObj::Str, rd32(take(4)));
                    break;  // BINUNICODE
                case 0x8c:
                    push_str(PyObj::Str, u8());
                    break;  // SHORT_BINUNICODE
                case 0x8d:
                    push_str(PyObj::Str, rd64(take(8)));
                    break;  // BINUNICODE8
                case 'T':
                    push_str(PyObj::Str, rd32(take(4)));
                    break;  // BINSTRING
                case 'U':
                    push_str(PyObj::Str, u8());
                    break;  // SHORT_BINSTRING
                case 'B':
                    push_str(PyObj::Bytes, rd32(take(4)));
                    break;  // BINBYTES
                case 'C':
                    push_str(PyObj::Bytes, u8());
                    break;  // SHORT_BINBYTES
                case 'q':
                    memo_put(u8());
                    break;  // BINPUT
                case 'r':
                    memo_put(rd32(take(4)));
                    break;  // LONG_BINPUT
                case 0x94:
                    memo_put(memo_.size());
                    break;  // MEMOIZE
                case 'h':
                    memo_get(at, u8());
                    break;  // BINGET
                case 'j':
                    memo_get(at, rd32(take(4)));
                    break;   // LONG_BINGET
                case 'c': {  // GLOBAL
                    std::string mod = line(at), name = line(at);
                    push(global(at, mod, name));
                    break;
                }
                case 0x93: {  // STACK_GLOBAL
                    Obj name = pop(at), mod = pop(at);
                    if (mod->kind != PyObj::Str || name->kind != PyObj::Str) bad(at, "STACK_GLOBAL needs two strings");
                    push(global(at, mod->s, name->s));
                    break;
                }
                case 't': {
                    auto o = mk(PyObj::Tuple);
                    o->items = pop_mark(at);
                    push(o);
                    break;
                }
                case 0x85:
                case 0x86:
                case 0x87: {  // TUPLE1..3
                    const size_t k = op - 0x84;
                    if (stack_.size() < k + floor()) bad(at, "tuple needs more stack items");
                    auto o = mk(PyObj::Tuple);
                    o->items.assign(stack_.end() - k, stack_.end());
                    stack_.resize(stack_.size() - k);
                    push(o);
                    break;
                }
                case 'l': {
                    auto o = mk(PyObj::List);
                    o->items = pop_mark(at);
                    push(o);
                    break;
                }            // LIST
                case 'd': {  // DICT
                    auto items = pop_mark(at);
                    auto o = mk(PyObj::Dict);
                    set_items(at, *o, items);
                    push(o);
                    break;
                }
                case 'a': {  // APPEND
                    Obj v = pop(at);
                    Obj l = top(at);
                    if (l->kind != PyObj::List) bad(at, "APPEND to a non-list");
                    l->items.push_back(v);
                    break;
                }
                case 'e': {  // APPENDS
                    auto items = pop_mark(at);
                    Obj l = top(at);
                    if (l->kind != PyObj::List) bad(at, "APPENDS to a non-list");
                    l->items.insert(l->items.end(), items.begin(), items.end());
                    break;
                }
                case 's': {  // SETITEM
                    Obj v = pop(at), k = pop(at);
                    Obj d = top(at);
                    if (d->kind != PyObj::Dict) bad(at, "SETITEM on a non-dict");
                    set_items(at, *d, {k, v});
                    break;
                }
                case 'u': {  // SETITEMS
                    auto items = pop_mark(at);
                    Obj d = top(at);
                    if (d->kind != PyObj::Dict) bad(at, "SETITEMS on a non-dict");
                    set_items(at, *d, items);
                    break;
                }
                case '0':
                    pop(at);
                    break;  // POP
                case '1':
                    pop_mark(at);
                    break;  // POP_MARK
                case '2':
                    push(top(at));
                    break;   // DUP
                case 'Q': {  // BINPERSID
                    Obj pid = pop(at);
                    push(persistent_load(at, *pid));
                    break;
                }
                case 'R': {  // REDUCE
                    Obj args = pop(at), fn = pop(at);
                    push(reduce(at, *fn, *args));
                    break;
                }
                case 'b': {  // BUILD
                    Obj state = pop(at);
                    Obj o = top(at);
                    // Only OrderedDict's instance state (state_dict()._metadata) is expected; it
                    // carries no tensors and is dropped.
                    if (o->kind != PyObj::Dict)
                        bad(at, "BUILD on an object that is not a dict (only state dicts are supported)");
                    (void)state;
                    break;
                }
                default:
                    bad(at, cat("unsupported pickle opcode 0x", hex(op)));
            }
        }
    }

private:
    std::string path_, entry_;
    const uint8_t* p_;
    size_t n_, pos_ = 0;
    std::vector<Obj> stack_;
    std::vector<size_t> marks_;
    std::map<size_t, Obj> memo_;
    std::vector<Obj> arena_;  // every object made, for the edge-cutting destructor

    Obj mk(PyObj::Kind k) {
        Obj o = make(k);
        arena_.push_back(o);
        return o;
    }

    static std::string hex(unsigned v) {
        char b[8];
        std::snprintf(b, sizeof b, "%02x", v);
        return b;
    }
    [[noreturn]] void bad(size_t at, const std::string& what) const {
        fail(
            "pth", what, ", at byte ", at, " of ", entry_, " in ", path_,
            "; the pickle is corrupt or uses features wanrt does not read: re-save a plain state dict with torch.save");
    }
    const uint8_t* take(size_t k) {
        if (k > n_ - pos_) bad(pos_, "pickle ends early");
        const uint8_t* r = p_ + pos_;
        pos_ += k;
        return r;
    }
    uint8_t u8() { return *take(1); }
    std::string line(size_t at) {
        const size_t start = pos_;
        while (pos_ < n_ && p_[pos_] != '\n') ++pos_;
        if (pos_ >= n_) bad(at, "GLOBAL name is not terminated");
        std::string s(reinterpret_cast<const char*>(p_ + start), pos_ - start);
        ++pos_;
        return s;
    }
    size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
    void push(Obj o) { stack_.push_back(std::move(o)); }
    void push_int(int64_t v) {
        auto o = mk(PyObj::Int);
        o->i = v;
        push(o);
    }
    void push_str(PyObj::Kind k, uint64_t len) {
        if (len > n_ - pos_) bad(pos_, "string runs past the end of the pickle");
        auto o = make(k);
        o->s.assign(reinterpret_cast<const char*>(take(len)), len);
        push(o);
    }
    Obj pop(size_t at) {
        if (stack_.size() <= floor()) bad(at, "stack underflow");
        Obj o = stack_.back();
        stack_.pop_back();
        return o;
    }
    Obj top(size_t at) {
        if (stack_.size() <= floor()) bad(at, "stack underflow");
        return stack_.back();
    }
    std::vector<Obj> pop_mark(size_t at) {
        if (marks_.empty()) bad(at, "no MARK on the stack");
        const size_t m = marks_.back();
        marks_.pop_back();
        std::vector<Obj> items(stack_.begin() + m, stack_.end());
        stack_.resize(m);
        return items;
    }
    void memo_put(size_t idx) {
        if (stack_.empty()) bad(pos_, "memo store with an empty stack");
        if (idx >= kMaxMemo || (memo_.size() >= kMaxMemo && !memo_.count(idx)))
            bad(pos_, cat("memo index ", idx, " is beyond the limit of ", kMaxMemo, " entries"));
        memo_[idx] = stack_.back();
    }
    void memo_get(size_t at, size_t idx) {
        auto it = memo_.find(idx);
        if (it == memo_.end()) bad(at, cat("memo entry ", idx, " was never stored"));
        push(it->second);
    }
    void set_items(size_t at, PyObj& d, const std::vector<Obj>& kv) {
        if (kv.size() % 2) bad(at, "odd number of dict items");
        for (size_t k = 0; k < kv.size(); k += 2) {
            bool replaced = false;
            if (kv[k]->kind == PyObj::Str)
                for (auto& [key, val] : d.dict)
                    if (key->kind == PyObj::Str && key->s == kv[k]->s) {
                        val = kv[k + 1];
                        replaced = true;
                        break;
                    }
            if (!replaced) d.dict.emplace_back(kv[k], kv[k + 1]);
        }
    }

    Obj global(size_t at, const std::string& mod, const std::string& name) {
        auto o = mk(PyObj::Global);
        o->s = mod;
        o->s2 = name;
        bool unsupported = false;
        if (auto dt = storage_global_dtype(mod, name, &unsupported)) {
            o->dtype = dt;
            return o;
        }
        if (unsupported)
            fail("pth", "tensor type ", mod, ".", name,
                 " is not supported (wanrt reads f32, f16, bf16, f64, i64, i32, u8), in ", path_,
                 "; convert those tensors to a supported dtype before saving");
        static const char* allowed[][2] = {
            {"collections", "OrderedDict"},         {"builtins", "dict"},
            {"torch._utils", "_rebuild_tensor"},    {"torch._utils", "_rebuild_tensor_v2"},
            {"torch._utils", "_rebuild_tensor_v3"}, {"torch._utils", "_rebuild_parameter"},
        };
        for (auto& a : allowed)
            if (mod == a[0] && name == a[1]) return o;
        fail("pth", "disallowed global '", mod, ".", name, "' in ", entry_, " of ", path_,
             " (wanrt never runs pickled code and accepts only plain tensor state dicts); "
             "save model.state_dict() rather than whole objects");
    }

    // ('storage', storage_type, key, location, numel)
    Obj persistent_load(size_t at, const PyObj& pid) {
        if (pid.kind != PyObj::Tuple || pid.items.size() != 5 || pid.items[0]->kind != PyObj::Str ||
            pid.items[0]->s != "storage")
            bad(at, "persistent id is not a ('storage', type, key, location, numel) tuple");
        const PyObj& type = *pid.items[1];
        if (type.kind != PyObj::Global || !type.dtype) bad(at, "persistent id names no storage type");
        if (pid.items[2]->kind != PyObj::Str) bad(at, "storage key is not a string");
        if (pid.items[4]->kind != PyObj::Int || pid.items[4]->i < 0)
            bad(at, "storage size is not a non-negative integer");
        auto o = mk(PyObj::Storage);
        o->storage = std::make_shared<StorageRef>();
        o->storage->dtype = *type.dtype;
        o->storage->key = pid.items[2]->s;
        o->storage->numel = pid.items[4]->i;
        auto [it, inserted] = storages_.emplace(o->storage->key, o->storage);
        if (!inserted) {
            if (it->second->dtype != o->storage->dtype)
                bad(at, cat("storage '", o->storage->key, "' is referenced with two dtypes"));
            o->storage = it->second;
        }
        return o;
    }

    Shape int_tuple(size_t at, const PyObj& t, const char* what) {
        if (t.kind != PyObj::Tuple && t.kind != PyObj::List) bad(at, cat("tensor ", what, " is not a tuple"));
        Shape s;
        for (auto& v : t.items) {
            if (v->kind != PyObj::Int) bad(at, cat("tensor ", what, " holds a non-integer"));
            s.push_back(v->i);
        }
        return s;
    }

    Obj reduce(size_t at, const PyObj& fn, const PyObj& args) {
        if (fn.kind != PyObj::Global) bad(at, "REDUCE of something that is not an allowed global");
        if (args.kind != PyObj::Tuple) bad(at, "REDUCE arguments are not a tuple");
        const auto& a = args.items;
        const std::string& name = fn.s2;
        if (name == "OrderedDict" || name == "dict") {
            auto d = mk(PyObj::Dict);
            if (!a.empty()) {  // OrderedDict([(k, v), ...])
                if (a.size() != 1 || (a[0]->kind != PyObj::List && a[0]->kind != PyObj::Tuple))
                    bad(at, "unexpected OrderedDict arguments");
                for (auto& kv : a[0]->items) {
                    if (kv->kind != PyObj::Tuple || kv->items.size() != 2) bad(at, "OrderedDict item is not a pair");
                    set_items(at, *d, kv->items);
                }
            }
            return d;
        }
        if (name == "_rebuild_parameter") {  // (data, requires_grad, backward_hooks[, state])
            if (a.size() < 1 || a[0]->kind != PyObj::Tensor) bad(at, "_rebuild_parameter without a tensor");
            return a[0];
        }
        if (name == "_rebuild_tensor" || name == "_rebuild_tensor_v2" || name == "_rebuild_tensor_v3") {
            // (storage, storage_offset, size, stride, ...); v3 adds a dtype at position 6.
            if (a.size() < 4 || a[0]->kind != PyObj::Storage || a[1]->kind != PyObj::Int)
                bad(at, cat(name, " arguments are not (storage, offset, size, stride, ...)"));
            auto t = mk(PyObj::Tensor);
            t->tensor.storage = a[0]->storage;
            t->tensor.dtype = a[0]->storage->dtype;
            if (name == "_rebuild_tensor_v3") {
                if (a.size() < 7 || a[6]->kind != PyObj::Global || !a[6]->dtype)
                    bad(at, "_rebuild_tensor_v3 without a dtype");
                t->tensor.dtype = *a[6]->dtype;
            }
            t->tensor.offset = a[1]->i;
            t->tensor.shape = int_tuple(at, *a[2], "size");
            t->tensor.stride = int_tuple(at, *a[3], "stride");
            if (t->tensor.shape.size() != t->tensor.stride.size()) bad(at, "tensor size and stride differ in length");
            return t;
        }
        bad(at, cat("REDUCE of ", fn.s, ".", name, " is not supported"));
    }

public:
    std::map<std::string, std::shared_ptr<StorageRef>> storages_;
};

// ------------------------------------------------------------------------------------------
class PthFile final : public TensorSource {
public:
    std::string path;
    std::shared_ptr<PthStore> store;
    std::map<std::string, StoredTensor> tensors;

    std::string origin() const override { return path; }
    std::vector<std::string> names() const override {
        std::vector<std::string> r;
        for (auto& [k, v] : tensors) r.push_back(k);
        return r;
    }
    const StoredTensor* find(const std::string& name) const override {
        auto it = tensors.find(name);
        return it == tensors.end() ? nullptr : &it->second;
    }
    std::shared_ptr<const void> keepalive() const override { return store; }
};

struct Flattener {
    PthFile& out;
    const std::map<std::string, ZipEntry>& zip;
    std::string top;
    bool big_endian = false;

    std::string key_str(const PyObj& k) {
        if (k.kind == PyObj::Str) return k.s;
        if (k.kind == PyObj::Int) return std::to_string(k.i);
        fail("pth", "state dict key of unsupported type, in ", out.path, "; keys must be strings");
    }

    void walk(const PyObj& o, const std::string& prefix) {
        if (o.kind == PyObj::Dict) {
            for (auto& [k, v] : o.dict) walk(*v, prefix.empty() ? key_str(*k) : prefix + "." + key_str(*k));
        } else if (o.kind == PyObj::List || (o.kind == PyObj::Tuple && !o.items.empty())) {
            for (size_t i = 0; i < o.items.size(); ++i)
                walk(*o.items[i], prefix.empty() ? std::to_string(i) : prefix + "." + std::to_string(i));
        } else if (o.kind == PyObj::Tensor) {
            add(prefix, o.tensor);
        }
        // Other leaves (numbers, strings, None) are not tensors: skipped.
    }

    void add(const std::string& name, const TensorRef& t) {
        const StorageRef& s = *t.storage;
        auto where = [&] { return cat(" for tensor '", name, "' in ", out.path); };
        auto it = zip.find(top + "/data/" + s.key);
        if (it == zip.end())
            fail("pth", "storage entry '", top, "/data/", s.key, "' is missing", where(),
                 "; the archive is incomplete: re-save it");
        const size_t sesize = dtype_size(s.dtype), esize = dtype_size(t.dtype);
        // The storage must hold its declared element count.
        if (s.numel > int64_t(it->second.size / sesize))
            fail("pth", "storage '", s.key, "' declares ", s.numel, " elements of ", dtype_name(s.dtype),
                 " but its entry holds ", it->second.size, " bytes", where(), "; the file is truncated or corrupt");
        const int64_t storage_elems = int64_t(uint64_t(s.numel) * sesize / esize);
        // Bounds: offset + Σ (size_i − 1)·stride_i < storage elements (empty tensors need nothing).
        if (t.offset < 0) fail("pth", "negative storage offset ", t.offset, where());
        int64_t numel = 1, last = t.offset;
        bool contiguous = true;
        int64_t expect = 1;
        for (int d = int(t.shape.size()) - 1; d >= 0; --d) {
            const int64_t n = t.shape[d], st = t.stride[d];
            if (n < 0 || st < 0)
                fail("pth", "negative size or stride ", shape_str(t.shape), "/", shape_str(t.stride), where());
            if (n == 0) numel = 0;
            if (n > 1 && st != expect) contiguous = false;
            expect *= n;
            if (numel != 0) {
                if (n > 1 && (st > 0 && (n - 1) > (INT64_MAX - last) / st))
                    fail("pth", "tensor extent overflows", where());
                last += (n - 1) * st;
                if (numel > INT64_MAX / std::max<int64_t>(n, 1)) fail("pth", "tensor size overflows", where());
                numel *= n;
            }
        }
        if (numel > 0 && last >= storage_elems)
            fail("pth", "storage out of range: tensor ", shape_str(t.shape), " with stride ", shape_str(t.stride),
                 " at offset ", t.offset, " reaches element ", last, " of a storage of ", storage_elems, " elements",
                 where(), "; the file is corrupt");
        StoredTensor st;
        st.name = name;
        st.dtype = t.dtype;
        st.shape = t.shape;
        st.nbytes = dtype_bytes(t.dtype, numel);
        const uint8_t* src = out.store->base + it->second.offset + size_t(t.offset) * esize;
        if (numel == 0) {
            st.data = out.store->base + it->second.offset;
        } else if (contiguous && !big_endian) {
            st.data = src;  // zero copy
        } else {
            std::vector<uint8_t> buf(st.nbytes);
            // Gather element by element in row-major order (strided views are small in practice:
            // state dicts hold contiguous parameters; transposes come from hand-made files).
            const int nd = int(t.shape.size());
            std::vector<int64_t> idx(nd, 0);
            for (int64_t e = 0; e < numel; ++e) {
                int64_t off = 0;
                for (int d = 0; d < nd; ++d) off += idx[d] * t.stride[d];
                std::memcpy(buf.data() + e * esize, src + off * esize, esize);
                for (int d = nd - 1; d >= 0; --d) {
                    if (++idx[d] < t.shape[d]) break;
                    idx[d] = 0;
                }
            }
            if (big_endian && esize > 1)
                for (int64_t e = 0; e < numel; ++e) std::reverse(buf.data() + e * esize, buf.data() + (e + 1) * esize);
            out.store->copies.push_back(std::move(buf));
            st.data = out.store->copies.back().data();
        }
        if (!out.tensors.emplace(name, st).second)
            fail("pth", "duplicate tensor name '", name, "' after flattening nested dicts, in ", out.path,
                 "; rename the keys");
    }
};

}  // namespace

std::shared_ptr<TensorSource> open_pth(const std::string& path) {
    auto file = std::make_shared<PthFile>();
    file->path = path;
    file->store = std::make_shared<PthStore>();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("pth", "cannot open ", path, ": ", std::strerror(errno), "; check the path");
    struct stat sb {};
    if (fstat(fd, &sb) != 0) {
        ::close(fd);
        fail("pth", "cannot stat ", path, ": ", std::strerror(errno));
    }
    const size_t n = size_t(sb.st_size);
    if (n > 0) {
        void* m = mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            ::close(fd);
            fail("pth", "cannot map ", path, ": ", std::strerror(errno));
        }
        file->store->base = static_cast<const uint8_t*>(m);
        file->store->size = n;
    }
    ::close(fd);
    const uint8_t* f = file->store->base;

    const auto zip = read_zip(path, f, n);
    // The top folder: the entry "<top>/data.pkl" (one path component before it).
    std::string top;
    for (auto& [name, e] : zip) {
        const auto slash = name.find('/');
        if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
            top = name.substr(0, slash);
            break;
        }
    }
    if (top.empty()) fail("pth", "no <folder>/data.pkl entry, in ", path, "; this zip is not a torch.save checkpoint");
    bool big_endian = false;
    if (auto it = zip.find(top + "/byteorder"); it != zip.end()) {
        std::string bo(reinterpret_cast<const char*>(f + it->second.offset), it->second.size);
        if (bo == "big")
            big_endian = true;
        else if (bo != "little")
            fail("pth", "unknown byteorder record '", bo, "', in ", path, "; re-save the checkpoint");
    }
    const ZipEntry& pkl = zip.at(top + "/data.pkl");
    Unpickler up(path, top + "/data.pkl", f + pkl.offset, pkl.size);
    Obj root = up.run();
    up.check_graph(root);
    if (root->kind != PyObj::Dict)
        fail("pth", "the pickled object is not a dict of tensors, in ", path, "; save model.state_dict()");
    Flattener fl{*file, zip, top, big_endian};
    fl.walk(*root, "");
    return file;
}

}  // namespace wanrt
