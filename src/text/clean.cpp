// Prompt cleaning: the ftfy subset, html.unescape and whitespace rules documented in clean.h.
// Text is processed as UTF-32 code points; tables come from Python 3.11's html.entities and
// unicodedata (NFKC of U+FF01–U+FFEF) and ftfy 6.3's chardata.
#include "text/clean.h"

#include <unordered_map>

namespace wanrt::text {

namespace {

using u32 = std::u32string;

// ------------------------------------------------------------------ UTF-8 <-> UTF-32

u32 decode_utf8(const std::string& s) {
    u32 out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    for (size_t i = 0; i < n;) {
        const unsigned c = p[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        bool ok = len > 0 && i + size_t(len) <= n;
        for (int k = 1; ok && k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) ok = false;
            else cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid, as in Python's codec.
        if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                   (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF))
            ok = false;
        if (!ok) {
            out.push_back(U'\uFFFD');
            ++i;
            continue;
        }
        out.push_back(cp);
        i += size_t(len);
    }
    return out;
}

// Strict decode of bytes held one per code point (the mojibake repair): false if not valid UTF-8.
bool decode_utf8_strict(const u32& bytes, u32* out) {
    std::string s;
    s.reserve(bytes.size());
    for (char32_t b : bytes) s.push_back(char(b));
    u32 d = decode_utf8(s);
    // decode_utf8 marks every invalid byte with U+FFFD; bytes EF BF BD are a real U+FFFD.
    size_t real_fffd = 0;
    for (size_t i = 0; i + 2 < s.size(); ++i)
        if ((unsigned char)s[i] == 0xEF && (unsigned char)s[i + 1] == 0xBF && (unsigned char)s[i + 2] == 0xBD) ++real_fffd;
    size_t fffd = 0;
    for (char32_t c : d) fffd += c == U'\uFFFD';
    if (fffd != real_fffd) return false;
    *out = std::move(d);
    return true;
}

std::string encode_utf8(const u32& s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s) {
        if (c < 0x80) {
            out.push_back(char(c));
        } else if (c < 0x800) {
            out.push_back(char(0xC0 | (c >> 6)));
            out.push_back(char(0x80 | (c & 0x3F)));
        } else if (c < 0x10000) {
            out.push_back(char(0xE0 | (c >> 12)));
            out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(char(0x80 | (c & 0x3F)));
        } else {
            out.push_back(char(0xF0 | (c >> 18)));
            out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
            out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(char(0x80 | (c & 0x3F)));
        }
    }
    return out;
}

// ------------------------------------------------------------------ tables

// Windows-1252 bytes 0x80–0x9F; the five undefined bytes map to themselves (ftfy's "sloppy" codec).
constexpr char32_t kCp1252High[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

struct Entity {
    const char* name;  // without '&' and ';'
    char32_t cp;
    bool legacy;  // also recognised without ';' by html.unescape
};
// HTML 4 entities + &apos; (values as HTML5 defines them) + the HTML5 all-caps forms.
constexpr Entity kEntities[] = {
    {"AElig", 0x00C6, true}, {"Aacute", 0x00C1, true}, {"Acirc", 0x00C2, true},
    {"Agrave", 0x00C0, true}, {"Alpha", 0x0391, false}, {"Aring", 0x00C5, true},
    {"Atilde", 0x00C3, true}, {"Auml", 0x00C4, true}, {"Beta", 0x0392, false},
    {"Ccedil", 0x00C7, true}, {"Chi", 0x03A7, false}, {"Dagger", 0x2021, false},
    {"Delta", 0x0394, false}, {"ETH", 0x00D0, true}, {"Eacute", 0x00C9, true},
    {"Ecirc", 0x00CA, true}, {"Egrave", 0x00C8, true}, {"Epsilon", 0x0395, false},
    {"Eta", 0x0397, false}, {"Euml", 0x00CB, true}, {"Gamma", 0x0393, false},
    {"Iacute", 0x00CD, true}, {"Icirc", 0x00CE, true}, {"Igrave", 0x00CC, true},
    {"Iota", 0x0399, false}, {"Iuml", 0x00CF, true}, {"Kappa", 0x039A, false},
    {"Lambda", 0x039B, false}, {"Mu", 0x039C, false}, {"Ntilde", 0x00D1, true},
    {"Nu", 0x039D, false}, {"OElig", 0x0152, false}, {"Oacute", 0x00D3, true},
    {"Ocirc", 0x00D4, true}, {"Ograve", 0x00D2, true}, {"Omega", 0x03A9, false},
    {"Omicron", 0x039F, false}, {"Oslash", 0x00D8, true}, {"Otilde", 0x00D5, true},
    {"Ouml", 0x00D6, true}, {"Phi", 0x03A6, false}, {"Pi", 0x03A0, false},
    {"Prime", 0x2033, false}, {"Psi", 0x03A8, false}, {"Rho", 0x03A1, false},
    {"Scaron", 0x0160, false}, {"Sigma", 0x03A3, false}, {"THORN", 0x00DE, true},
    {"Tau", 0x03A4, false}, {"Theta", 0x0398, false}, {"Uacute", 0x00DA, true},
    {"Ucirc", 0x00DB, true}, {"Ugrave", 0x00D9, true}, {"Upsilon", 0x03A5, false},
    {"Uuml", 0x00DC, true}, {"Xi", 0x039E, false}, {"Yacute", 0x00DD, true},
    {"Yuml", 0x0178, false}, {"Zeta", 0x0396, false}, {"aacute", 0x00E1, true},
    {"acirc", 0x00E2, true}, {"acute", 0x00B4, true}, {"aelig", 0x00E6, true},
    {"agrave", 0x00E0, true}, {"alefsym", 0x2135, false}, {"alpha", 0x03B1, false},
    {"amp", 0x0026, true}, {"and", 0x2227, false}, {"ang", 0x2220, false},
    {"apos", 0x0027, false}, {"aring", 0x00E5, true}, {"asymp", 0x2248, false},
    {"atilde", 0x00E3, true}, {"auml", 0x00E4, true}, {"bdquo", 0x201E, false},
    {"beta", 0x03B2, false}, {"brvbar", 0x00A6, true}, {"bull", 0x2022, false},
    {"cap", 0x2229, false}, {"ccedil", 0x00E7, true}, {"cedil", 0x00B8, true},
    {"cent", 0x00A2, true}, {"chi", 0x03C7, false}, {"circ", 0x02C6, false},
    {"clubs", 0x2663, false}, {"cong", 0x2245, false}, {"copy", 0x00A9, true},
    {"crarr", 0x21B5, false}, {"cup", 0x222A, false}, {"curren", 0x00A4, true},
    {"dArr", 0x21D3, false}, {"dagger", 0x2020, false}, {"darr", 0x2193, false},
    {"deg", 0x00B0, true}, {"delta", 0x03B4, false}, {"diams", 0x2666, false},
    {"divide", 0x00F7, true}, {"eacute", 0x00E9, true}, {"ecirc", 0x00EA, true},
    {"egrave", 0x00E8, true}, {"empty", 0x2205, false}, {"emsp", 0x2003, false},
    {"ensp", 0x2002, false}, {"epsilon", 0x03B5, false}, {"equiv", 0x2261, false},
    {"eta", 0x03B7, false}, {"eth", 0x00F0, true}, {"euml", 0x00EB, true},
    {"euro", 0x20AC, false}, {"exist", 0x2203, false}, {"fnof", 0x0192, false},
    {"forall", 0x2200, false}, {"frac12", 0x00BD, true}, {"frac14", 0x00BC, true},
    {"frac34", 0x00BE, true}, {"frasl", 0x2044, false}, {"gamma", 0x03B3, false},
    {"ge", 0x2265, false}, {"gt", 0x003E, true}, {"hArr", 0x21D4, false},
    {"harr", 0x2194, false}, {"hearts", 0x2665, false}, {"hellip", 0x2026, false},
    {"iacute", 0x00ED, true}, {"icirc", 0x00EE, true}, {"iexcl", 0x00A1, true},
    {"igrave", 0x00EC, true}, {"image", 0x2111, false}, {"infin", 0x221E, false},
    {"int", 0x222B, false}, {"iota", 0x03B9, false}, {"iquest", 0x00BF, true},
    {"isin", 0x2208, false}, {"iuml", 0x00EF, true}, {"kappa", 0x03BA, false},
    {"lArr", 0x21D0, false}, {"lambda", 0x03BB, false}, {"lang", 0x27E8, false},
    {"laquo", 0x00AB, true}, {"larr", 0x2190, false}, {"lceil", 0x2308, false},
    {"ldquo", 0x201C, false}, {"le", 0x2264, false}, {"lfloor", 0x230A, false},
    {"lowast", 0x2217, false}, {"loz", 0x25CA, false}, {"lrm", 0x200E, false},
    {"lsaquo", 0x2039, false}, {"lsquo", 0x2018, false}, {"lt", 0x003C, true},
    {"macr", 0x00AF, true}, {"mdash", 0x2014, false}, {"micro", 0x00B5, true},
    {"middot", 0x00B7, true}, {"minus", 0x2212, false}, {"mu", 0x03BC, false},
    {"nabla", 0x2207, false}, {"nbsp", 0x00A0, true}, {"ndash", 0x2013, false},
    {"ne", 0x2260, false}, {"ni", 0x220B, false}, {"not", 0x00AC, true},
    {"notin", 0x2209, false}, {"nsub", 0x2284, false}, {"ntilde", 0x00F1, true},
    {"nu", 0x03BD, false}, {"oacute", 0x00F3, true}, {"ocirc", 0x00F4, true},
    {"oelig", 0x0153, false}, {"ograve", 0x00F2, true}, {"oline", 0x203E, false},
    {"omega", 0x03C9, false}, {"omicron", 0x03BF, false}, {"oplus", 0x2295, false},
    {"or", 0x2228, false}, {"ordf", 0x00AA, true}, {"ordm", 0x00BA, true},
    {"oslash", 0x00F8, true}, {"otilde", 0x00F5, true}, {"otimes", 0x2297, false},
    {"ouml", 0x00F6, true}, {"para", 0x00B6, true}, {"part", 0x2202, false},
    {"permil", 0x2030, false}, {"perp", 0x22A5, false}, {"phi", 0x03C6, false},
    {"pi", 0x03C0, false}, {"piv", 0x03D6, false}, {"plusmn", 0x00B1, true},
    {"pound", 0x00A3, true}, {"prime", 0x2032, false}, {"prod", 0x220F, false},
    {"prop", 0x221D, false}, {"psi", 0x03C8, false}, {"quot", 0x0022, true},
    {"rArr", 0x21D2, false}, {"radic", 0x221A, false}, {"rang", 0x27E9, false},
    {"raquo", 0x00BB, true}, {"rarr", 0x2192, false}, {"rceil", 0x2309, false},
    {"rdquo", 0x201D, false}, {"real", 0x211C, false}, {"reg", 0x00AE, true},
    {"rfloor", 0x230B, false}, {"rho", 0x03C1, false}, {"rlm", 0x200F, false},
    {"rsaquo", 0x203A, false}, {"rsquo", 0x2019, false}, {"sbquo", 0x201A, false},
    {"scaron", 0x0161, false}, {"sdot", 0x22C5, false}, {"sect", 0x00A7, true},
    {"shy", 0x00AD, true}, {"sigma", 0x03C3, false}, {"sigmaf", 0x03C2, false},
    {"sim", 0x223C, false}, {"spades", 0x2660, false}, {"sub", 0x2282, false},
    {"sube", 0x2286, false}, {"sum", 0x2211, false}, {"sup", 0x2283, false},
    {"sup1", 0x00B9, true}, {"sup2", 0x00B2, true}, {"sup3", 0x00B3, true},
    {"supe", 0x2287, false}, {"szlig", 0x00DF, true}, {"tau", 0x03C4, false},
    {"there4", 0x2234, false}, {"theta", 0x03B8, false}, {"thetasym", 0x03D1, false},
    {"thinsp", 0x2009, false}, {"thorn", 0x00FE, true}, {"tilde", 0x02DC, false},
    {"times", 0x00D7, true}, {"trade", 0x2122, false}, {"uArr", 0x21D1, false},
    {"uacute", 0x00FA, true}, {"uarr", 0x2191, false}, {"ucirc", 0x00FB, true},
    {"ugrave", 0x00F9, true}, {"uml", 0x00A8, true}, {"upsih", 0x03D2, false},
    {"upsilon", 0x03C5, false}, {"uuml", 0x00FC, true}, {"weierp", 0x2118, false},
    {"xi", 0x03BE, false}, {"yacute", 0x00FD, true}, {"yen", 0x00A5, true},
    {"yuml", 0x00FF, true}, {"zeta", 0x03B6, false}, {"zwj", 0x200D, false},
    {"zwnj", 0x200C, false}, {"AMP", 0x0026, true}, {"COPY", 0x00A9, true},
    {"GT", 0x003E, true}, {"LT", 0x003C, true}, {"QUOT", 0x0022, true},
    {"REG", 0x00AE, true}, {"TRADE", 0x2122, false},
};

const std::unordered_map<std::string, const Entity*>& entity_map() {
    static const auto* m = [] {
        auto* map = new std::unordered_map<std::string, const Entity*>;
        for (const auto& e : kEntities) (*map)[e.name] = &e;
        return map;
    }();
    return *m;
}

const Entity* find_entity(const u32& name) {
    std::string s;
    for (char32_t c : name) {
        if (c >= 0x80) return nullptr;
        s.push_back(char(c));
    }
    auto it = entity_map().find(s);
    return it == entity_map().end() ? nullptr : it->second;
}

// Python's str.upper() for the characters of the all-lowercase HTML 4 entity names.
u32 upper_of(char32_t c) {
    if (c == 0xDF) return U"SS";
    if (c == 0xFF) return u32(1, 0x178);
    if (c == 0xB5) return u32(1, 0x39C);
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return u32(1, c - 0x20);
    if (c == 0x3C2) return u32(1, 0x3A3);
    if (c >= 0x3B1 && c <= 0x3C9) return u32(1, c - 0x20);
    if (c == 0x3D1) return u32(1, 0x398);
    if (c == 0x3D6) return u32(1, 0x3A0);
    if (c == 0x153 || c == 0x161) return u32(1, c - 1);
    if (c == 0x192) return u32(1, 0x191);
    return u32(1, c);
}

// Halfwidth/fullwidth forms other than U+FF01–U+FF5E: runs (first code point, first target, count).
struct WidthRun {
    char32_t from, to;
    int count;
};
constexpr WidthRun kWidthRuns[] = {
    {0xFF5F, 0x2985, 2}, {0xFF61, 0x3002, 1}, {0xFF62, 0x300C, 2}, {0xFF64, 0x3001, 1},
    {0xFF65, 0x30FB, 1}, {0xFF66, 0x30F2, 1}, {0xFF67, 0x30A1, 1}, {0xFF68, 0x30A3, 1},
    {0xFF69, 0x30A5, 1}, {0xFF6A, 0x30A7, 1}, {0xFF6B, 0x30A9, 1}, {0xFF6C, 0x30E3, 1},
    {0xFF6D, 0x30E5, 1}, {0xFF6E, 0x30E7, 1}, {0xFF6F, 0x30C3, 1}, {0xFF70, 0x30FC, 1},
    {0xFF71, 0x30A2, 1}, {0xFF72, 0x30A4, 1}, {0xFF73, 0x30A6, 1}, {0xFF74, 0x30A8, 1},
    {0xFF75, 0x30AA, 2}, {0xFF77, 0x30AD, 1}, {0xFF78, 0x30AF, 1}, {0xFF79, 0x30B1, 1},
    {0xFF7A, 0x30B3, 1}, {0xFF7B, 0x30B5, 1}, {0xFF7C, 0x30B7, 1}, {0xFF7D, 0x30B9, 1},
    {0xFF7E, 0x30BB, 1}, {0xFF7F, 0x30BD, 1}, {0xFF80, 0x30BF, 1}, {0xFF81, 0x30C1, 1},
    {0xFF82, 0x30C4, 1}, {0xFF83, 0x30C6, 1}, {0xFF84, 0x30C8, 1}, {0xFF85, 0x30CA, 6},
    {0xFF8B, 0x30D2, 1}, {0xFF8C, 0x30D5, 1}, {0xFF8D, 0x30D8, 1}, {0xFF8E, 0x30DB, 1},
    {0xFF8F, 0x30DE, 5}, {0xFF94, 0x30E4, 1}, {0xFF95, 0x30E6, 1}, {0xFF96, 0x30E8, 6},
    {0xFF9C, 0x30EF, 1}, {0xFF9D, 0x30F3, 1}, {0xFF9E, 0x3099, 2}, {0xFFA0, 0x1160, 1},
    {0xFFA1, 0x1100, 2}, {0xFFA3, 0x11AA, 1}, {0xFFA4, 0x1102, 1}, {0xFFA5, 0x11AC, 2},
    {0xFFA7, 0x1103, 3}, {0xFFAA, 0x11B0, 6}, {0xFFB0, 0x111A, 1}, {0xFFB1, 0x1106, 3},
    {0xFFB4, 0x1121, 1}, {0xFFB5, 0x1109, 10}, {0xFFC2, 0x1161, 6}, {0xFFCA, 0x1167, 6},
    {0xFFD2, 0x116D, 6}, {0xFFDA, 0x1173, 3}, {0xFFE0, 0x00A2, 2}, {0xFFE2, 0x00AC, 1},
    {0xFFE4, 0x00A6, 1}, {0xFFE5, 0x00A5, 1}, {0xFFE6, 0x20A9, 1}, {0xFFE8, 0x2502, 1},
    {0xFFE9, 0x2190, 4}, {0xFFED, 0x25A0, 1}, {0xFFEE, 0x25CB, 1},
};

bool is_ascii_alnum(char32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Unicode White_Space: the `regex` module's \s.
bool is_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
// Python's str.isspace(): White_Space plus the information separators U+001C–U+001F.
bool is_py_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

// html._replace_charref for a parsed number (saturated above U+10FFFF).
u32 charref(uint64_t num) {
    if (num == 0) return U"\uFFFD";
    if (num == 0x0D) return U"\r";
    if (num >= 0x80 && num <= 0x9F) return u32(1, kCp1252High[num - 0x80]);
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || num == 0x7F ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return U"";
    return u32(1, char32_t(num));
}

uint64_t parse_number(const u32& s, size_t b, size_t e, int base) {
    uint64_t v = 0;
    for (size_t i = b; i < e; ++i) {
        const char32_t c = s[i];
        const unsigned d = is_digit(c) ? unsigned(c - '0') : unsigned((c | 0x20) - 'a' + 10);
        v = v * uint64_t(base) + d;
        if (v > 0x10FFFF) v = 0x110000;  // saturate: any larger value gives U+FFFD
    }
    return v;
}

// ------------------------------------------------------------------ ftfy fixers

// ftfy.fixes.unescape_html: only `&#?[0-9A-Za-z]{1,24};`.
u32 ftfy_unescape_html(const u32& s) {
    u32 out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s[i] != '&') {
            out.push_back(s[i++]);
            continue;
        }
        const bool numeric = i + 1 < s.size() && s[i + 1] == '#';
        const size_t b = i + 1 + (numeric ? 1 : 0);
        size_t e = b;
        while (e < s.size() && is_ascii_alnum(s[e])) ++e;
        if (e == b || e - b > 24 || e >= s.size() || s[e] != ';') {
            out.push_back(s[i++]);
            continue;
        }
        const u32 body = s.substr(b, e - b);
        u32 rep;
        bool replaced = false;
        if (numeric) {
            // html.unescape of the whole match; kept as is unless it consumed the ';'.
            const bool hex = (body[0] == 'x' || body[0] == 'X');
            bool all = body.size() > (hex ? 1u : 0u);
            for (size_t k = hex ? 1 : 0; k < body.size(); ++k) all = all && (hex ? is_hex(body[k]) : is_digit(body[k]));
            if (all) {
                rep = charref(parse_number(body, hex ? 1 : 0, body.size(), hex ? 16 : 10));
                replaced = rep.find(U';') == u32::npos;
            }
        } else if (const Entity* ent = find_entity(body)) {
            rep = u32(1, ent->cp);
            replaced = true;
        } else {
            // ftfy's all-caps variant of an all-lowercase name: &EACUTE; → É.
            bool has_lower = false;
            u32 lower = body;
            for (auto& c : lower) {
                has_lower = has_lower || (c >= 'a' && c <= 'z');
                if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
            }
            const Entity* low = has_lower ? nullptr : find_entity(lower);
            if (low) {
                rep = upper_of(low->cp);
                replaced = true;
            }
        }
        if (replaced) {
            out += rep;
            i = e + 1;
        } else {
            out.push_back(s[i++]);
        }
    }
    return out;
}

// Encodes s as single bytes of Latin-1 (cp1252 = false) or sloppy Windows-1252; false if some
// character has no byte.
bool encode_single_byte(const u32& s, bool cp1252, u32* bytes) {
    bytes->clear();
    for (char32_t c : s) {
        if (!cp1252) {
            if (c > 0xFF) return false;
            bytes->push_back(c);
            continue;
        }
        if (c == 0x1A) return false;  // ftfy's sloppy codecs reserve byte 1A for U+FFFD
        if (c < 0x80 || (c >= 0xA0 && c <= 0xFF)) {
            bytes->push_back(c);
            continue;
        }
        char32_t b = 0;
        for (int k = 0; k < 32; ++k)
            if (kCp1252High[k] == c) b = char32_t(0x80 + k);
        if (!b) return false;
        bytes->push_back(b);
    }
    return true;
}

// The reduced fix_encoding of clean.h, step 2.
u32 fix_encoding(u32 s) {
    for (int step = 0; step < 8; ++step) {
        bool ascii = true;
        for (char32_t c : s) ascii = ascii && c < 0x80;
        if (ascii) return s;
        u32 bytes, fixed;
        bool changed = false;
        for (bool cp1252 : {false, true}) {
            if (encode_single_byte(s, cp1252, &bytes) && decode_utf8_strict(bytes, &fixed)) {
                changed = fixed != s;
                break;
            }
        }
        if (!changed) return s;
        s = std::move(fixed);
    }
    return s;
}

u32 fix_c1_controls(const u32& s) {
    u32 out = s;
    for (auto& c : out)
        if (c >= 0x80 && c <= 0x9F) c = kCp1252High[c - 0x80];
    return out;
}

u32 fix_latin_ligatures(const u32& s) {
    u32 out;
    out.reserve(s.size());
    for (char32_t c : s) {
        switch (c) {
            case 0x132: out += U"IJ"; break;
            case 0x133: out += U"ij"; break;
            case 0x149: out += U"\u02BCn"; break;
            case 0x1F1: out += U"DZ"; break;
            case 0x1F2: out += U"Dz"; break;
            case 0x1F3: out += U"dz"; break;
            case 0x1C4: out += U"D\u017D"; break;
            case 0x1C5: out += U"D\u017E"; break;
            case 0x1C6: out += U"d\u017E"; break;
            case 0x1C7: out += U"LJ"; break;
            case 0x1C8: out += U"Lj"; break;
            case 0x1C9: out += U"lj"; break;
            case 0x1CA: out += U"NJ"; break;
            case 0x1CB: out += U"Nj"; break;
            case 0x1CC: out += U"nj"; break;
            case 0xFB00: out += U"ff"; break;
            case 0xFB01: out += U"fi"; break;
            case 0xFB02: out += U"fl"; break;
            case 0xFB03: out += U"ffi"; break;
            case 0xFB04: out += U"ffl"; break;
            case 0xFB05: out += U"\u017Ft"; break;
            case 0xFB06: out += U"st"; break;
            default: out.push_back(c);
        }
    }
    return out;
}

u32 fix_character_width(const u32& s) {
    u32 out;
    out.reserve(s.size());
    for (char32_t c : s) {
        if (c == 0x3000) {
            out.push_back(U' ');
        } else if (c >= 0xFF01 && c <= 0xFF5E) {
            out.push_back(c - 0xFEE0);
        } else if (c == 0xFFE3) {
            out += U" \u0304";  // NFKC of FULLWIDTH MACRON
        } else if (c > 0xFF5E && c <= 0xFFEF) {
            char32_t m = c;
            for (const auto& r : kWidthRuns)
                if (c >= r.from && c < r.from + char32_t(r.count)) m = r.to + (c - r.from);
            out.push_back(m);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

u32 uncurl_quotes(const u32& s) {
    u32 out = s;
    for (auto& c : out) {
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
        else if (c >= 0x201C && c <= 0x201F) c = U'"';
    }
    return out;
}

u32 fix_line_breaks(const u32& s) {
    u32 out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        const char32_t c = s[i];
        if (c == U'\r') {
            out.push_back(U'\n');
            if (i + 1 < s.size() && s[i + 1] == U'\n') ++i;
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            out.push_back(U'\n');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

u32 remove_terminal_escapes(const u32& s) {
    u32 out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == U'[') {
            size_t j = i + 2;
            while (j < s.size() && (is_digit(s[j]) || s[j] == U';')) ++j;
            if (j < s.size() && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z'))) {
                i = j + 1;
                continue;
            }
        }
        out.push_back(s[i++]);
    }
    return out;
}

u32 remove_control_chars(const u32& s) {
    u32 out;
    out.reserve(s.size());
    for (char32_t c : s) {
        const bool drop = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                          (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
        if (!drop) out.push_back(c);
    }
    return out;
}

u32 fix_segment(u32 s, bool unescape) {
    // ftfy.fix_and_explain: the whole chain again until a pass changes nothing.
    for (int pass = 0; pass < 16; ++pass) {
        const u32 orig = s;
        if (unescape) s = ftfy_unescape_html(s);
        s = fix_encoding(std::move(s));
        s = fix_c1_controls(s);
        s = fix_latin_ligatures(s);
        s = fix_character_width(s);
        s = uncurl_quotes(s);
        s = fix_line_breaks(s);
        s = remove_terminal_escapes(s);
        s = remove_control_chars(s);
        if (s == orig) break;
    }
    return s;
}

u32 py_html_unescape(const u32& s) {
    if (s.find(U'&') == u32::npos) return s;
    u32 out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s[i] != '&' || i + 1 >= s.size()) {
            out.push_back(s[i++]);
            continue;
        }
        if (s[i + 1] == '#') {
            // &#[0-9]+;?  |  &#[xX][0-9a-fA-F]+;?
            const bool hex = i + 2 < s.size() && (s[i + 2] == 'x' || s[i + 2] == 'X') && i + 3 < s.size() && is_hex(s[i + 3]);
            const size_t b = i + (hex ? 3 : 2);
            size_t e = b;
            while (e < s.size() && (hex ? is_hex(s[e]) : is_digit(s[e]))) ++e;
            if (e == b) {
                out.push_back(s[i++]);
                continue;
            }
            out += charref(parse_number(s, b, e, hex ? 16 : 10));
            i = (e < s.size() && s[e] == ';') ? e + 1 : e;
            continue;
        }
        // [^\t\n\f <&#;]{1,32};?
        size_t e = i + 1;
        auto name_char = [](char32_t c) {
            return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
        };
        while (e < s.size() && e - (i + 1) < 32 && name_char(s[e])) ++e;
        if (e == i + 1) {
            out.push_back(s[i++]);
            continue;
        }
        const bool semi = e < s.size() && s[e] == ';';
        const u32 name = s.substr(i + 1, e - (i + 1));
        const size_t end = semi ? e + 1 : e;
        const Entity* ent = find_entity(name);
        if (ent && (semi || ent->legacy)) {
            out.push_back(ent->cp);
            i = end;
            continue;
        }
        // Longest legacy name (no ';') that is a proper prefix of the match: "&notit;" → "¬it;".
        const u32 match = s.substr(i + 1, end - (i + 1));
        bool done = false;
        for (size_t x = match.size() - 1; x >= 2 && !done; --x) {
            const Entity* p = find_entity(match.substr(0, x));
            if (p && p->legacy) {
                out.push_back(p->cp);
                out += match.substr(x);
                done = true;
            }
        }
        if (!done) {
            out.push_back(U'&');
            out += match;
        }
        i = end;
    }
    return out;
}

u32 py_strip(const u32& s) {
    size_t b = 0, e = s.size();
    while (b < e && is_py_space(s[b])) ++b;
    while (e > b && is_py_space(s[e - 1])) --e;
    return s.substr(b, e - b);
}

u32 collapse_white_space(const u32& s) {
    u32 out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (is_white_space(s[i])) {
            while (i < s.size() && is_white_space(s[i])) ++i;
            out.push_back(U' ');
        } else {
            out.push_back(s[i++]);
        }
    }
    return py_strip(out);
}

}  // namespace

std::string ftfy_fix_text(const std::string& utf8) {
    const u32 s = decode_utf8(utf8);
    u32 out;
    bool unescape = true;
    // ftfy.fix_text: segments end after each '\n'; once a segment holds '<' (looks like HTML),
    // entity unescaping stays off for the rest of the text.
    for (size_t pos = 0; pos < s.size();) {
        size_t brk = s.find(U'\n', pos);
        brk = brk == u32::npos ? s.size() : brk + 1;
        const u32 seg = s.substr(pos, brk - pos);
        if (unescape && seg.find(U'<') != u32::npos) unescape = false;
        out += fix_segment(seg, unescape);
        pos = brk;
    }
    return encode_utf8(out);
}

std::string html_unescape(const std::string& utf8) { return encode_utf8(py_html_unescape(decode_utf8(utf8))); }

std::string strip(const std::string& utf8) { return encode_utf8(py_strip(decode_utf8(utf8))); }

std::string whitespace_clean(const std::string& utf8) { return encode_utf8(collapse_white_space(decode_utf8(utf8))); }

std::string clean_prompt(const std::string& utf8) {
    u32 s = decode_utf8(ftfy_fix_text(utf8));
    s = py_html_unescape(py_html_unescape(s));
    return encode_utf8(collapse_white_space(py_strip(s)));
}

}  // namespace wanrt::text
