// Prompt cleaning of Wan's HuggingfaceTokenizer(clean='whitespace') (wan/modules/tokenizers.py):
//
//   whitespace_clean(basic_clean(text)) =
//     collapse_ws( strip( html.unescape(html.unescape(ftfy.fix_text(text))) ) )
//
// where strip removes leading/trailing whitespace and collapse_ws replaces every run of Unicode
// White_Space (the `regex` module's \s: U+0009–000D, 0020, 0085, 00A0, 1680, 2000–200A, 2028,
// 2029, 202F, 205F, 3000) by one space, then strips again. Input and output are UTF-8; invalid
// UTF-8 bytes are read as U+FFFD (Python would have rejected them earlier).
//
// ftfy_fix_text() implements this subset of ftfy 6.3 `fix_text` with its default TextFixerConfig,
// in ftfy's order, per line segment (text split after each '\n'), repeated until nothing changes:
//   1. unescape_html ("auto"): `&name;` / `&#N;` / `&#xH;` (names of 1–24 ASCII letters/digits, the
//      ';' required). Skipped for a segment containing '<' and, as in ftfy, for every later segment
//      of the same text. Named entities: the 253 HTML 4 entities plus &apos; and the HTML5
//      all-caps forms &AMP; &COPY; &GT; &LT; &QUOT; &REG; &TRADE; — NOT the other ~1,970 HTML5
//      names (e.g. &checkmark; stays as text); ftfy's all-caps variants of all-lowercase names
//      (&EACUTE; → É, &SZLIG; → SS, &HELLIP; → …). Numeric references as Python's html.unescape.
//   2. fix_encoding, reduced to whole-segment mojibake: if the segment is not ASCII and every
//      character is encodable in Latin-1 (tried first) or sloppy Windows-1252 (the 5 undefined
//      bytes pass through as U+0081 …), and those bytes are valid UTF-8, the segment becomes that
//      UTF-8 text ("sÃ³" → "só", "â€œ" → "“"); repeated for double mojibake. NOT implemented:
//      ftfy's badness heuristic (is_bad) that gates this step (our test is "decodes as UTF-8"),
//      the other single-byte encodings (Windows-1250/1251/1253/1254/1257, ISO-8859-2, MacRoman,
//      cp437), restore_byte_a0, replace_lossy_sequences (U+FFFD is not encodable here),
//      decode_inconsistent_utf8 (mojibake mixed with correct text in one segment), the
//      utf-8-variants codec (CESU-8, Java's C0 80).
//   3. fix_c1_controls: U+0080–U+009F → the Windows-1252 character of that byte (U+0081, 008D,
//      008F, 0090, 009D unchanged).
//   4. fix_latin_ligatures: ĳ Ĳ ŉ Ǳ ǲ ǳ Ǆ ǅ ǆ Ǉ ǈ ǉ Ǌ ǋ ǌ ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ → letters.
//   5. fix_character_width: U+3000 → space; U+FF01–U+FFEF → their NFKC form (fullwidth ASCII,
//      halfwidth katakana and Hangul, fullwidth symbols).
//   6. uncurl_quotes: U+02BC, U+2018–U+201B → '; U+201C–U+201F → ".
//   7. fix_line_breaks: CRLF, CR, U+2028, U+2029, U+0085 → '\n'.
//   8. fix_surrogates: not applicable (UTF-8 input cannot hold surrogates).
//   9. remove_terminal_escapes: ESC '[' [0-9;]* [A-Za-z] removed (ASCII digits only; Python's \d
//      also takes other scripts' digits).
//  10. remove_control_chars: U+0000–0008, 000B, 000E–001F, 007F, 206A–206F, FEFF, FFF9–FFFC.
//  11. NFC normalisation: NOT implemented here (it needs the Unicode composition tables). The
//      tokenizer's SentencePiece normaliser (umT5's spiece.model: NFKC-based nmt_nfkc) is applied
//      next and NFKC(NFC(s)) = NFKC(s); no later cleaning step depends on composition.
//
// html_unescape() is Python's html.unescape on the same entity table: numeric references with or
// without ';' (0 → U+FFFD, 0x80–0x9F → Windows-1252, surrogates and > 0x10FFFF → U+FFFD,
// noncharacters and most controls → removed), names with ';', the legacy names without ';'
// (&amp &lt &gt &quot, the Latin-1 names, &AMP &LT &GT &QUOT &COPY &REG) also as prefixes
// ("&ampx" → "&x").
#pragma once

#include <string>

namespace wanrt::text {

// The ftfy subset above.
std::string ftfy_fix_text(const std::string& utf8);
// Python html.unescape (entity table above).
std::string html_unescape(const std::string& utf8);
// Strips Python-whitespace (str.isspace) from both ends.
std::string strip(const std::string& utf8);
// Replaces runs of Unicode White_Space by one space, then strips.
std::string whitespace_clean(const std::string& utf8);
// The whole cleaning: whitespace_clean(strip(html_unescape(html_unescape(ftfy_fix_text(s))))).
std::string clean_prompt(const std::string& utf8);

}  // namespace wanrt::text
