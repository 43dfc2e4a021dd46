// The umT5 tokenizer of Wan2.1 (wan/modules/tokenizers.py HuggingfaceTokenizer with
// name = <ckpt>/google/umt5-xxl, seq_len = 512, clean = 'whitespace'; docs/wan21.md §4.4), through the
// SentencePiece library reading the folder's spiece.model.
//
// tokenize(prompt): clean_prompt() (text/clean.h), SentencePiece ids of the cleaned text, EOS
// (id 1) appended, truncated to seq_len with the EOS kept last (as Hugging Face does with
// truncation=True: the first seq_len − 1 pieces + EOS), padded with id 0 to seq_len, mask 1 on
// the real tokens (EOS included) and 0 on padding. An empty (or all-whitespace) prompt gives EOS
// only, as the official code does. An over-long prompt is truncated with a warning on stderr,
// printed once per tokenizer.
//
// Errors (wanrt::Error "[tokenizer] ..."): missing folder; a folder without spiece.model (one that
// holds only tokenizer.json is named as such: wanrt does not read the fast-tokenizer JSON); a file
// that is not a SentencePiece model; a model whose EOS / pad ids are not 1 / 0 (not a T5 vocabulary).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace wanrt::text {

struct TokenizedPrompt {
    std::vector<int32_t> ids;   // [seq_len]: pieces, EOS, then pad id 0
    std::vector<int32_t> mask;  // [seq_len]: 1 for pieces and EOS, 0 for padding
    int64_t length = 0;         // real tokens incl. EOS (= sum of mask)
    int64_t full_length = 0;    // pieces + EOS before truncation
    bool truncated() const { return full_length > length; }
    // The first `length` ids: what the encoder runs (T5Encoder::encode).
    std::vector<int32_t> real_ids() const { return {ids.begin(), ids.begin() + length}; }
};

class T5Tokenizer {
public:
    static constexpr int32_t kPadId = 0;
    static constexpr int32_t kEosId = 1;

    // path: the google/umt5-xxl folder, or a spiece.model file. seq_len ≥ 1 (Wan: 512).
    explicit T5Tokenizer(const std::string& path, int64_t seq_len = 512);
    ~T5Tokenizer();
    T5Tokenizer(const T5Tokenizer&) = delete;
    T5Tokenizer& operator=(const T5Tokenizer&) = delete;

    // Cleans, tokenizes, appends EOS, truncates, pads.
    TokenizedPrompt tokenize(const std::string& prompt) const;
    // The same without cleaning (the text is used as given).
    TokenizedPrompt tokenize_cleaned(const std::string& text) const;
    // SentencePiece ids of text (no cleaning, no EOS).
    std::vector<int32_t> pieces(const std::string& text) const;
    // Text of ids (EOS and padding dropped).
    std::string decode(const std::vector<int32_t>& ids) const;

    int64_t vocab_size() const;
    int64_t seq_len() const { return seq_len_; }
    const std::string& model_path() const { return model_path_; }

private:
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::string model_path_;
    int64_t seq_len_;
    mutable std::atomic<bool> warned_{false};
};

}  // namespace wanrt::text
