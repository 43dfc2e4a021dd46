// libFuzzer target: a torch.save checkpoint (.pth: a zip of a pickle and raw storages).
//
// The first byte picks what the rest is. Even: the whole .pth file as is (the zip reader: end of
// central directory, zip64, local headers). 1 (mod 4): only the pickle, which the target wraps in a
// valid stored zip as archive/data.pkl beside a 256-byte storage archive/data/0 and
// archive/byteorder, so every input reaches the unpickler (the stack machine, the memo's PUT/GET,
// persistent ids, the tensor rebuild calls) instead of dying in the zip checks. 3 (mod 4): the
// grammar below turns each byte into one well-formed opcode with its operands (memo indices 0..3,
// small ints, the strings and globals a checkpoint uses), then STOP, and wraps that pickle the same
// way: random bytes are then mostly valid pickles whose objects share memo entries, which is where
// the cycles and the exponential sharing live (the self-referencing list `] q0 h0 a` of issue 21 is
// four grammar bytes; byte mutation alone did not build it in 30 s). fuzz/pickle.dict gives the
// opcodes and the allowed globals for the raw-pickle mode.
#include <cstring>

#include "fuzz_util.h"
#include "io/pth.h"

namespace {

void put16(std::string& s, uint32_t v) { s += char(v & 0xff); s += char((v >> 8) & 0xff); }
void put32(std::string& s, uint32_t v) { put16(s, v & 0xffff); put16(s, v >> 16); }

// A zip of stored entries (no CRCs: the reader does not check them, torch does not need them here).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
    std::string out, cd;
    for (const auto& [name, body] : entries) {
        const uint32_t off = uint32_t(out.size());
        put32(out, 0x04034b50u); put16(out, 20); put16(out, 0); put16(out, 0);  // sig, version, flags, stored
        put16(out, 0); put16(out, 0); put32(out, 0);                            // time, date, crc
        put32(out, uint32_t(body.size())); put32(out, uint32_t(body.size()));
        put16(out, uint16_t(name.size())); put16(out, 0);
        out += name;
        out += body;
        put32(cd, 0x02014b50u); put16(cd, 20); put16(cd, 20); put16(cd, 0); put16(cd, 0);
        put16(cd, 0); put16(cd, 0); put32(cd, 0);
        put32(cd, uint32_t(body.size())); put32(cd, uint32_t(body.size()));
        put16(cd, uint16_t(name.size())); put16(cd, 0); put16(cd, 0); put16(cd, 0); put16(cd, 0);
        put32(cd, 0); put32(cd, off);
        cd += name;
    }
    const uint32_t cd_off = uint32_t(out.size());
    out += cd;
    put32(out, 0x06054b50u); put16(out, 0); put16(out, 0);
    put16(out, uint16_t(entries.size())); put16(out, uint16_t(entries.size()));
    put32(out, uint32_t(cd.size())); put32(out, cd_off); put16(out, 0);
    return out;
}

// The pickle grammar: byte b → opcode kOps[b % size], operands from the following bytes (0 when the
// input has ended). Memo indices stay in 0..3 so PUT and GET meet; one op in eight of the memo
// family takes a raw 32-bit index to reach the memo limit checks.
std::string pickle_from_grammar(const uint8_t* p, size_t n) {
    static const char* kStrings[] = {"storage", "cpu", "0", "1", "w", "collections", "OrderedDict",
                                     "torch._utils", "_rebuild_tensor_v2", "_rebuild_parameter",
                                     "torch", "FloatStorage", "HalfStorage", "BFloat16Storage", "builtins", "dict"};
    static const char* kGlobals[] = {"collections\nOrderedDict\n", "torch._utils\n_rebuild_tensor_v2\n",
                                     "torch._utils\n_rebuild_tensor\n", "torch._utils\n_rebuild_parameter\n",
                                     "torch\nFloatStorage\n", "torch\nHalfStorage\n", "torch\nBFloat16Storage\n",
                                     "torch\nLongStorage\n", "builtins\ndict\n", "os\nsystem\n"};
    static const char kOps[] = {']', '}', ')', '(', 't', '\x85', '\x86', '\x87', 'l', 'd', 'a', 'e', 's', 'u',
                                'b', 'R', 'Q', '0', '1', '2', 'N', '\x88', 'K', 'J', '\x8a', 'G', '\x8c', 'C',
                                'c', '\x93', 'q', 'h', 'r', 'j', '\x94', 'q', 'h', 'a', ']', 'K'};
    size_t i = 0;
    auto next = [&]() -> uint8_t { return i < n ? p[i++] : 0; };
    std::string out = "\x80\x02";
    while (i < n && out.size() < 4096) {
        const char op = kOps[next() % sizeof(kOps)];
        out += op;
        switch (op) {
            case 'K': out += char(next() % 8); break;
            case 'J': for (int k = 0; k < 4; ++k) out += char(next()); break;
            case '\x8a': { const uint8_t len = next() % 10; out += char(len); for (int k = 0; k < len; ++k) out += char(next()); break; }
            case 'G': for (int k = 0; k < 8; ++k) out += char(next()); break;
            case '\x8c': case 'C': {
                const std::string str = kStrings[next() % (sizeof(kStrings) / sizeof(*kStrings))];
                out += char(str.size());
                out += str;
                break;
            }
            case 'c': out += kGlobals[next() % (sizeof(kGlobals) / sizeof(*kGlobals))]; break;
            case 'q': case 'h': out += char(next() % 4); break;
            case 'r': case 'j': {
                const uint8_t sel = next();
                uint32_t idx = sel % 4;
                if (sel % 8 == 0)
                    for (int k = 0; k < 4; ++k) idx = idx << 8 | next();
                for (int k = 0; k < 4; ++k) out += char((idx >> (8 * k)) & 0xff);
                break;
            }
            default: break;
        }
    }
    return out + ".";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    if (size < 1) return 0;
    std::string file;
    if (data[0] & 1) {
        std::string pkl = (data[0] & 3) == 3 ? pickle_from_grammar(data + 1, size - 1)
                                             : std::string(reinterpret_cast<const char*>(data + 1), size - 1);
        std::string storage(256, '\0');
        for (size_t i = 0; i < storage.size(); ++i) storage[i] = char(i * 37);
        file = make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", storage}, {"archive/byteorder", "little"}});
    } else {
        file.assign(reinterpret_cast<const char*>(data + 1), size - 1);
    }
    const std::string path = fuzz::write_file("model.pth", file.data(), file.size());
    fuzz::expect_clean([&] {
        auto src = open_pth(path);
        fuzz::read_all(*src);
    });
    return 0;
}
