// umT5 tokenizer (text/tokenizer.h) with a small SentencePiece model trained here through the
// library's trainer (T5 ids: pad 0, EOS 1, unk 2, no BOS; byte fallback so emoji survive):
// cleaning, EOS, truncation at 512 with EOS kept, padding, mask, Chinese and emoji, bad input.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "build_paths.h"
#include "test_util.h"
#include "text/clean.h"
#include "text/tokenizer.h"

using namespace wanrt;
using namespace wanrt::text;
namespace fs = std::filesystem;

namespace {

// Wan's default negative prompt (shared_config.py sample_neg_prompt).
const std::string kNegPrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

fs::path work_dir() {
    static const fs::path dir = [] {
        fs::path d = fs::temp_directory_path() / cat("wanrt_tok_", ::getpid());
        fs::create_directories(d);
        return d;
    }();
    return dir;
}

// Trains a unigram model into <work>/<name>/spiece.model; extra = more trainer flags.
fs::path train_model(const std::string& name, const std::string& extra) {
    const fs::path dir = work_dir() / name;
    if (fs::exists(dir / "spiece.model")) return dir;
    fs::create_directories(dir);
    const fs::path corpus = work_dir() / "corpus.txt";
    {
        std::ofstream out(corpus);
        const char* lines[] = {
            "A cat sits on a mat in the warm afternoon sun.",
            "Two anthropomorphic cats in comfy boxing gear fight intensely on a spotlighted stage.",
            "A drone shot of waves crashing against the rugged cliffs along Big Sur's garden point beach.",
            "The camera slowly pans across a futuristic city at night, neon lights reflecting in the rain.",
            "A small dog runs through a field of flowers, chasing a red ball.",
        };
        for (int r = 0; r < 20; ++r) {
            for (const char* l : lines) out << l << "\n";
            out << kNegPrompt << "\n" << "小猫坐在垫子上，阳光温暖。一只狗在花田里奔跑。\n";
        }
    }
    const auto st = sentencepiece::SentencePieceTrainer::Train(
        cat("--input=", corpus.string(), " --model_prefix=", (dir / "spiece").string(),
            " --model_type=unigram --vocab_size=420 --hard_vocab_limit=false --character_coverage=1.0"
            " --byte_fallback=true --minloglevel=2 ",
            extra));
    if (!st.ok()) throw std::runtime_error("spm training failed: " + st.ToString());
    return dir;
}

fs::path t5_model() { return train_model("t5", "--pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1"); }

TEST(Tokenizer, EosPaddingMask) {
    T5Tokenizer tok(t5_model().string());
    EXPECT_EQ(tok.seq_len(), 512);
    const std::string text = "A cat sits on a mat.";
    const std::vector<int32_t> p = tok.pieces(text);
    ASSERT_FALSE(p.empty());
    TokenizedPrompt t = tok.tokenize(text);
    ASSERT_EQ(t.ids.size(), 512u);
    ASSERT_EQ(t.mask.size(), 512u);
    ASSERT_EQ(t.length, int64_t(p.size()) + 1);
    EXPECT_FALSE(t.truncated());
    for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(t.ids[i], p[i]);
    EXPECT_EQ(t.ids[p.size()], T5Tokenizer::kEosId);
    for (size_t i = 0; i < 512; ++i) {
        EXPECT_EQ(t.mask[i], i < size_t(t.length) ? 1 : 0) << i;
        if (i >= size_t(t.length)) {
            EXPECT_EQ(t.ids[i], T5Tokenizer::kPadId) << i;
        }
    }
    std::vector<int32_t> real = t.real_ids();
    EXPECT_EQ(real.size(), size_t(t.length));
    EXPECT_EQ(real.back(), 1);
    EXPECT_EQ(tok.decode(t.ids), text);
}

TEST(Tokenizer, CleansFirst) {
    T5Tokenizer tok(t5_model().string());
    EXPECT_EQ(tok.tokenize("  A  cat &amp;amp;\n\t a\xe3\x80\x80" "dog  ").ids, tok.tokenize_cleaned("A cat & a dog").ids);
    EXPECT_EQ(tok.tokenize("it&rsquo;s “ok”").ids, tok.tokenize_cleaned("it's \"ok\"").ids);
}

TEST(Tokenizer, EmptyPromptIsEosOnly) {
    T5Tokenizer tok(t5_model().string());
    for (const char* s : {"", "   ", "\n\t\xe3\x80\x80"}) {
        TokenizedPrompt t = tok.tokenize(s);
        EXPECT_EQ(t.length, 1) << '"' << s << '"';
        EXPECT_EQ(t.ids[0], 1);
        EXPECT_EQ(t.mask[0], 1);
        EXPECT_EQ(t.mask[1], 0);
    }
}

TEST(Tokenizer, TruncatesAt512KeepingEosAndWarnsOnce) {
    T5Tokenizer tok(t5_model().string());
    std::string longp;
    for (int i = 0; i < 200; ++i) longp += "A small dog runs through a field of flowers. ";
    const std::vector<int32_t> p = tok.pieces(clean_prompt(longp));
    ASSERT_GT(p.size(), 600u);
    testing::internal::CaptureStderr();
    TokenizedPrompt t = tok.tokenize(longp);
    TokenizedPrompt t2 = tok.tokenize(longp + " again");
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(t.length, 512);
    EXPECT_EQ(t.full_length, int64_t(p.size()) + 1);
    EXPECT_TRUE(t.truncated());
    for (size_t i = 0; i < 511; ++i) ASSERT_EQ(t.ids[i], p[i]) << i;
    EXPECT_EQ(t.ids[511], 1);
    for (int32_t m : t.mask) EXPECT_EQ(m, 1);
    EXPECT_TRUE(t2.truncated());
    // One warning for the two over-long prompts, naming the limit.
    size_t first = err.find("[tokenizer] warning");
    ASSERT_NE(first, std::string::npos) << err;
    EXPECT_EQ(err.find("[tokenizer] warning", first + 1), std::string::npos) << err;
    EXPECT_NE(err.find("512"), std::string::npos);
    // Exactly 511 pieces + EOS fits without truncation; a short seq_len truncates the same way.
    T5Tokenizer small(t5_model().string(), 8);
    TokenizedPrompt s = small.tokenize(longp);
    EXPECT_EQ(s.length, 8);
    EXPECT_EQ(s.ids[7], 1);
    for (size_t i = 0; i < 7; ++i) EXPECT_EQ(s.ids[i], p[i]);
}

TEST(Tokenizer, ChineseAndEmoji) {
    T5Tokenizer tok(t5_model().string());
    // The default negative prompt: fullwidth commas become ASCII commas in cleaning (ftfy's width fix).
    TokenizedPrompt t = tok.tokenize(kNegPrompt);
    EXPECT_FALSE(t.truncated());
    const std::string cleaned = clean_prompt(kNegPrompt);
    EXPECT_EQ(cleaned.find("，"), std::string::npos);
    EXPECT_EQ(tok.decode(t.real_ids()), cleaned);
    for (int32_t id : t.real_ids()) EXPECT_NE(id, 2) << "unknown piece in the negative prompt";
    // Emoji (not in the training text) fall back to bytes and survive the round trip.
    const std::string emoji = "a cat 🐱 and a party 🎉 with 👨‍👩‍👧";
    TokenizedPrompt e = tok.tokenize(emoji);
    EXPECT_EQ(tok.decode(e.real_ids()), clean_prompt(emoji));
    for (int32_t id : e.real_ids()) EXPECT_NE(id, 2);
    EXPECT_EQ(e.real_ids().back(), 1);
}

TEST(Tokenizer, BadInput) {
    const fs::path w = work_dir();
    test::expect_error([&] { T5Tokenizer t((w / "nope").string()); }, {"[tokenizer]", "does not exist", "google/umt5-xxl"});
    fs::create_directories(w / "json_only");
    std::ofstream(w / "json_only" / "tokenizer.json") << "{}";
    test::expect_error([&] { T5Tokenizer t((w / "json_only").string()); }, {"[tokenizer]", "tokenizer.json", "spiece.model"});
    fs::create_directories(w / "empty");
    test::expect_error([&] { T5Tokenizer t((w / "empty").string()); }, {"[tokenizer]", "no spiece.model", (w / "empty").string()});
    fs::create_directories(w / "garbage");
    std::ofstream(w / "garbage" / "spiece.model") << "not a model";
    test::expect_error([&] { T5Tokenizer t((w / "garbage").string()); }, {"[tokenizer]", "not a readable SentencePiece model"});
    // fuzz_tokenizer's crash (session 18, after 7.16 M execs): a piece with an empty string makes
    // SentencePiece's trie builder throw instead of returning a status; that escaped as a raw exception.
    test::expect_error([&] { T5Tokenizer t((fs::path(WANRT_TEST_DATA) / "spiece_empty_piece.model").string()); },
                       {"[tokenizer]", "not a readable SentencePiece model", "zero-length key"});
    // A SentencePiece model with the library's default ids (unk 0, BOS 1, EOS 2) is not a T5 vocabulary.
    const fs::path other = train_model("default_ids", "");
    test::expect_error([&] { T5Tokenizer t(other.string()); }, {"[tokenizer]", "EOS id 2"});
    // The model file itself is accepted in place of the folder.
    T5Tokenizer direct((t5_model() / "spiece.model").string());
    EXPECT_EQ(direct.tokenize("cat").ids.back(), 0);
}

// Removes the trained models when the suite ends.
struct Cleanup : testing::Environment {
    void TearDown() override { fs::remove_all(work_dir()); }
};
const auto* const kCleanup = testing::AddGlobalTestEnvironment(new Cleanup);

}  // namespace
