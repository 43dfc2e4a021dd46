// Prompt cleaning (text/clean.h): each ftfy rule we implement, Python's html.unescape, Wan's
// whitespace cleaning. Expected strings were produced by ftfy 6.3.1 (fix_text, default config),
// Python 3.11 html.unescape and Wan's basic_clean/whitespace_clean on the same inputs; the
// documented gaps of our subset have their own tests at the end.
#include <gtest/gtest.h>

#include <string>

#include "text/clean.h"

using namespace wanrt::text;

namespace {

using namespace std::string_literals;

// std::string: some inputs hold NUL characters.
struct Case {
    std::string in, out;
};

const Case k_fix_text[] = {
    {"Broken text&hellip; it&#x2019;s ﬂubberiﬁc!"s,
     "Broken text… it's flubberific!"s},
    {"ＬＯＵＤ\343\200\200ＮＯＩＳＥＳ"s,
     "LOUD NOISES"s},
    {"sÃ³"s,
     "só"s},
    {"P&EACUTE;REZ BUNDESSTRA&SZLIG;E &ntilde; &Ntilde; &NTILDE; &nTILDE;"s,
     "PÉREZ BUNDESSTRASSE ñ Ñ Ñ &nTILDE;"s},
    {"&lt;tag&gt; &amp;amp; &#59; &#65abc; &#x41; &#X42; &#0; &#128; &#xD800;"s,
     "<tag> & &#59; &#65abc; A B \357\277\275 € \357\277\275"s},
    {"<b>&amp;</b> keeps entities\012next line &amp; too"s,
     "<b>&amp;</b> keeps entities\012next line &amp; too"s},
    {"first &amp; line\012<i>x</i> &lt;"s,
     "first & line\012<i>x</i> &lt;"s},
    {"â€œquotedâ€\302\235 and â€˜singleâ€™"s,
     "\"quoted\" and 'single'"s},
    {"cafÃ© crÃ¨me"s,
     "café crème"s},
    {"ÃƒÂ©"s,
     "é"s},
    {"plain café naïve 中文 😀"s,
     "plain café naïve 中文 😀"s},
    {"“curly” ‘q’ ʼn ‛ ‟"s,
     "\"curly\" 'q' 'n ' \""s},
    {"a\015\012b\015c\342\200\250d\342\200\251e\302\205f"s,
     "a\012b\012c\012d\012e…f"s},
    {"\033[36;44mblue\033[0m text"s,
     "blue text"s},
    {"ctl\000\001\010\013\014\016\037\177\342\201\252\357\273\277\357\277\271\357\277\274 end\011tab"s,
     "ctl\014 end\011tab"s},
    {"c1 \302\200 \302\201 \302\221x\302\222 \302\237"s,
     "c1 € \302\201 'x' Ÿ"s},
    {"ﬀ ﬃ ﬅ Ĳ ǆ Ǉ ǈ ŉ"s,
     "ff ffi ſt IJ dž LJ Lj 'n"s},
    {"ｶﾀｶﾅ ￥１００ ￣ ￦ ￩ ﾡ"s,
     "カタカナ ¥100  \314\204 ₩ ← ᄀ"s},
    {"小猫 &quot;cat&quot; 色调艳丽，过曝，静态，细节模糊不清"s,
     "小猫 \"cat\" 色调艳丽,过曝,静态,细节模糊不清"s},
    {"emoji 🎉🐱 👨\342\200\215👩"s,
     "emoji 🎉🐱 👨\342\200\215👩"s},
    {"tag &zwnj; &Alpha; &ALPHA; &MICRO; &YUML; &TRADE; &trade; &AMP; &sup2; &SUP2;"s,
     "tag \342\200\214 Α Α Μ Ÿ ™ ™ & ² ²"s},
};
const Case k_unescape[] = {
    {"&amp;amp; &ampfoo &notit; &not &lt &LT &COPY &copy; &frac12 &#65 &#x41g &#1114112; &#xfffe; &# &#x &; & alone"s,
     "&amp; &foo ¬it; ¬ < < © © ½ A Ag \357\277\275  &# &#x &; & alone"s},
    {"&eacute &EACUTE; &Eacute &AElig &nbsp;x &hellip &hellip; &apos; &apos"s,
     "é &EACUTE; É Æ \302\240x &hellip … ' &apos"s},
};
const Case k_wan[] = {
    {"  A  cat\343\200\200sits\011\012 on   a mat.  "s,
     "A cat sits on a mat."s},
    {"&amp;lt;b&amp;gt;"s,
     "<b>"s},
    {"\302\240\342\200\203 spaced \342\200\211 out \342\200\257"s,
     "spaced out"s},
    {""s,
     ""s},
    {"   "s,
     ""s},
    {"色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"s,
     "色调艳丽,过曝,静态,细节模糊不清,字幕,风格,作品,画作,画面,静止,整体发灰,最差质量,低质量,JPEG压缩残留,丑陋的,残缺的,多余的手指,画得不好的手部,画得不好的脸部,畸形的,毁容的,形态畸形的肢体,手指融合,静止不动的画面,杂乱的背景,三条腿,背景人很多,倒着走"s},
    {"It&rsquo;s a &ldquo;test&rdquo; — with&nbsp;nbsp"s,
     "It's a \"test\" — with nbsp"s},
    {"x\034\035y"s,
     "xy"s},
};

TEST(Clean, FtfyFixText) {
    for (const auto& c : k_fix_text) EXPECT_EQ(ftfy_fix_text(c.in), c.out) << "input: " << c.in;
}

TEST(Clean, HtmlUnescape) {
    for (const auto& c : k_unescape) EXPECT_EQ(html_unescape(c.in), c.out) << "input: " << c.in;
}

TEST(Clean, WanPromptCleaning) {
    for (const auto& c : k_wan) EXPECT_EQ(clean_prompt(c.in), c.out) << "input: " << c.in;
}

// One rule at a time, so a failure names the rule.
TEST(Clean, Rules) {
    // HTML entities: ftfy needs the ';'; a '<' in a segment turns unescaping off for the rest.
    EXPECT_EQ(ftfy_fix_text("a &amp b &amp; c"), "a &amp b & c");
    EXPECT_EQ(ftfy_fix_text("x &amp; <y>"), "x &amp; <y>");
    EXPECT_EQ(ftfy_fix_text("<p>\n&amp;"), "<p>\n&amp;");
    // Mojibake: UTF-8 read as Latin-1 and as Windows-1252, twice.
    EXPECT_EQ(ftfy_fix_text("Ã©tÃ©"), "été");
    EXPECT_EQ(ftfy_fix_text("â€”"), "—");
    EXPECT_EQ(ftfy_fix_text("Ã¢â€šÂ¬"), "€");  // € read as Windows-1252 twice
    // Text that is not valid UTF-8 in either single-byte reading stays.
    EXPECT_EQ(ftfy_fix_text("naïve façade"), "naïve façade");
    // C1 controls → Windows-1252; U+0085 is fixed as C1 (…) before line breaks run.
    EXPECT_EQ(ftfy_fix_text("\xc2\x80\xc2\x99"), "€™");
    EXPECT_EQ(ftfy_fix_text("a\xc2\x85z"), "a…z");
    // Ligatures, widths, quotes, line breaks, escapes, controls.
    EXPECT_EQ(ftfy_fix_text("ﬁﬂ"), "fifl");
    EXPECT_EQ(ftfy_fix_text("ＡＢＣ１２３！"), "ABC123!");
    EXPECT_EQ(ftfy_fix_text("\xe3\x80\x80"), " ");
    EXPECT_EQ(ftfy_fix_text("‘a’ “b”"), "'a' \"b\"");
    EXPECT_EQ(ftfy_fix_text("1\r\n2\r3"), "1\n2\n3");
    EXPECT_EQ(ftfy_fix_text("\x1b[1;31mred\x1b[m"), "red");
    EXPECT_EQ(ftfy_fix_text("\x1b[9x"), "");      // ESC [ digits letter: removed whole
    EXPECT_EQ(ftfy_fix_text("\x1b[;"), "[;");     // not an escape: ESC itself is a control char
    EXPECT_EQ(ftfy_fix_text(std::string("a\0b", 3)), "ab");
    // Python whitespace rules.
    EXPECT_EQ(strip("\x1c\t x \xc2\xa0"), "x");
    EXPECT_EQ(whitespace_clean(" a\xe2\x80\x83\xe2\x80\x83" "b\n"), "a b");
    EXPECT_EQ(whitespace_clean("a\xe2\x80\x8b" "b"), "a\xe2\x80\x8b" "b");  // ZWSP is not white space
    // Invalid UTF-8 bytes read as U+FFFD.
    EXPECT_EQ(clean_prompt("a\xff" "b"), "a\xef\xbf\xbd" "b");
    // Idempotent on its own output.
    for (const auto& c : k_wan) EXPECT_EQ(clean_prompt(clean_prompt(c.in)), clean_prompt(c.in));
}

// Gaps of the subset, stated in clean.h: pinned so a change is deliberate.
TEST(Clean, DocumentedGaps) {
    // HTML5-only names (ftfy and Python know &checkmark;; our table is HTML 4).
    EXPECT_EQ(ftfy_fix_text("&checkmark;"), "&checkmark;");
    // No NFC: halfwidth ﾊﾟ becomes ハ + combining ゚ (ftfy then composes パ; the tokenizer's NFKC does too).
    EXPECT_EQ(ftfy_fix_text("ﾊﾟ"), "ハ\xe3\x82\x9a");
    EXPECT_EQ(ftfy_fix_text("e\xcc\x81"), "e\xcc\x81");
}

}  // namespace
