// umT5 tokenizer over SentencePiece; contract in tokenizer.h.
#include "text/tokenizer.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "text/clean.h"

namespace wanrt::text {

namespace fs = std::filesystem;

namespace {

std::string find_model(const std::string& path) {
    std::error_code ec;
    WANRT_CHECK(!path.empty(), "tokenizer", "no tokenizer path given; pass the google/umt5-xxl folder of the Wan2.1 release");
    if (fs::is_regular_file(path, ec)) return path;
    WANRT_CHECK(fs::is_directory(path, ec), "tokenizer", "tokenizer folder ", path,
                " does not exist; pass the google/umt5-xxl folder of the Wan2.1 release (it holds spiece.model)");
    const fs::path model = fs::path(path) / "spiece.model";
    if (fs::is_regular_file(model, ec)) return model.string();
    WANRT_CHECK(!fs::exists(fs::path(path) / "tokenizer.json", ec), "tokenizer", path,
                " has tokenizer.json but no spiece.model: wanrt reads the SentencePiece model, not the fast-tokenizer "
                "JSON; copy spiece.model of google/umt5-xxl into ", path);
    fail("tokenizer", "no spiece.model in ", path, " (looked for ", model.string(),
         "); pass the google/umt5-xxl folder of the Wan2.1 release");
}

}  // namespace

T5Tokenizer::T5Tokenizer(const std::string& path, int64_t seq_len)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), seq_len_(seq_len) {
    WANRT_CHECK(seq_len >= 1, "tokenizer", "sequence length ", seq_len, " must be at least 1 (Wan: 512)");
    model_path_ = find_model(path);
    // SentencePiece reports most bad files in its status, but some (a piece with an empty string:
    // its trie builder's "zero-length key", found by fuzz_tokenizer) as an exception.
    sentencepiece::util::Status st;
    try {
        st = sp_->Load(model_path_);
    } catch (const std::exception& e) {
        fail("tokenizer", model_path_, " is not a readable SentencePiece model (", e.what(),
             "); use spiece.model of google/umt5-xxl");
    }
    WANRT_CHECK(st.ok(), "tokenizer", model_path_, " is not a readable SentencePiece model (", st.ToString(),
                "); use spiece.model of google/umt5-xxl");
    WANRT_CHECK(sp_->eos_id() == kEosId && sp_->pad_id() == kPadId, "tokenizer", model_path_, " has EOS id ",
                sp_->eos_id(), " and pad id ", sp_->pad_id(), "; the umT5 vocabulary has EOS 1 and pad 0 — wrong model file");
}

T5Tokenizer::~T5Tokenizer() = default;

int64_t T5Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<int32_t> T5Tokenizer::pieces(const std::string& text) const {
    std::vector<int> ids;
    const auto st = sp_->Encode(text, &ids);
    WANRT_CHECK(st.ok(), "tokenizer", "SentencePiece failed on the prompt (", st.ToString(), ")");
    return {ids.begin(), ids.end()};
}

TokenizedPrompt T5Tokenizer::tokenize_cleaned(const std::string& text) const {
    std::vector<int32_t> p = pieces(text);
    TokenizedPrompt out;
    out.full_length = int64_t(p.size()) + 1;
    out.length = std::min(out.full_length, seq_len_);
    if (out.truncated() && !warned_.exchange(true))
        std::fprintf(stderr,
                     "[tokenizer] warning: prompt is %lld tokens + EOS, more than the %lld the text encoder takes; "
                     "using the first %lld tokens + EOS, as the official pipeline does\n",
                     (long long)p.size(), (long long)seq_len_, (long long)(seq_len_ - 1));
    out.ids.assign(size_t(seq_len_), kPadId);
    out.mask.assign(size_t(seq_len_), 0);
    for (int64_t i = 0; i + 1 < out.length; ++i) out.ids[size_t(i)] = p[size_t(i)];
    out.ids[size_t(out.length - 1)] = kEosId;
    for (int64_t i = 0; i < out.length; ++i) out.mask[size_t(i)] = 1;
    return out;
}

TokenizedPrompt T5Tokenizer::tokenize(const std::string& prompt) const { return tokenize_cleaned(clean_prompt(prompt)); }

std::string T5Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::vector<int> keep;
    for (int32_t id : ids)
        if (id != kEosId && id != kPadId) keep.push_back(id);
    std::string text;
    const auto st = sp_->Decode(keep, &text);
    WANRT_CHECK(st.ok(), "tokenizer", "SentencePiece cannot decode the ids (", st.ToString(), ")");
    return text;
}

}  // namespace wanrt::text
