// libFuzzer target: the text side. First byte even: the rest is a tokenizer folder's spiece.model
// (what a downloaded google/umt5-xxl folder holds; SentencePiece parses it, wanrt checks its ids),
// loaded and used on a prompt. Odd: the rest is a prompt, through the prompt cleaning (ftfy-like
// fixes, HTML unescape, whitespace) that runs on every prompt before tokenizing.
#include "fuzz_util.h"
#include "text/clean.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wanrt;
    if (size < 1) return 0;
    const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
    fuzz::expect_clean([&] {
        if (data[0] & 1) {
            (void)text::clean_prompt(rest);
            return;
        }
        fuzz::write_file("spiece.model", rest.data(), rest.size());
        text::T5Tokenizer tok(fuzz::work_dir(), 16);
        auto t = tok.tokenize("A cat surfing at sunset, &amp; waves \xe2\x80\x94 4K");
        (void)tok.decode(t.ids);
    });
    return 0;
}
