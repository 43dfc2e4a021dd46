// libFuzzer target: a torch.save checkpoint (.pth: a zip of a pickle and raw storages).
//
// The first byte picks what the rest is. Even: the whole .pth file as is (the zip reader: end of
// central directory, zip64, local headers). Odd: only the pickle, which the target wraps in a valid
// stored zip as archive/data.pkl beside a 256-byte storage archive/data/0 and archive/byteorder, so
// every input reaches the unpickler (the stack machine, the memo's PUT/GET, persistent ids, the
// tensor rebuild calls) instead of dying in the zip checks. fuzz/pickle.dict gives the opcodes and
// the allowed globals; a self-referencing pickle (a list that holds itself through the memo) is the
// 17-byte input the earlier targets never reached.
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    if (size < 1) return 0;
    std::string file;
    if (data[0] & 1) {
        std::string pkl(reinterpret_cast<const char*>(data + 1), size - 1);
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
