// Typed reading of the small JSON configs that come with downloaded models (the DiT's config.json,
// the T5 / CLIP / VAE configs): every value is checked for its JSON type and its range before it
// is used, so a wrong type ("qk_norm": "yes"), a fraction (1.5), a number past int64 (1e21) or a
// size no model has (num_layers 1e12) is one error naming the key, instead of an uncaught
// nlohmann::type_error, a silent truncation or an unbounded allocation later.
//
// Errors: wanrt::Error "[module] <origin>: \"key\" must be <type> in [lo, hi], got <value>; <hint>".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wanrt {

class JsonConfig {
public:
    // Parses text as a JSON object; `hint` ends every error (e.g. "fix config.json or use the official one").
    JsonConfig(const std::string& text, const char* module, std::string origin, std::string hint);

    bool has(const char* key) const { return j_.contains(key); }
    const nlohmann::json& raw() const { return j_; }

    // Optional keys: the value is left unchanged when the key is absent.
    void integer(const char* key, int64_t& v, int64_t lo, int64_t hi) const;
    void integer(const char* key, int& v, int64_t lo, int64_t hi) const;
    void number(const char* key, double& v, double lo, double hi) const;
    void number(const char* key, float& v, double lo, double hi) const;
    void boolean(const char* key, bool& v) const;
    void string(const char* key, std::string& v) const;
    // Lists with a length in [min_len, max_len] and each element in range.
    void integers(const char* key, std::vector<int64_t>& v, size_t min_len, size_t max_len, int64_t lo,
                  int64_t hi) const;
    void numbers(const char* key, std::vector<double>& v, size_t min_len, size_t max_len, double lo, double hi) const;
    void booleans(const char* key, std::vector<bool>& v, size_t min_len, size_t max_len) const;

    // The checks on one JSON value, for callers that walk nested values themselves.
    int64_t as_integer(const nlohmann::json& x, const std::string& what, int64_t lo, int64_t hi) const;

    [[noreturn]] void bad(const std::string& what) const;

private:
    nlohmann::json j_;
    const char* module_;
    std::string origin_, hint_;
};

// a·b and a+b of non-negative sizes, or an error naming `what` when the result passes int64.
int64_t checked_mul(int64_t a, int64_t b, const char* module, const std::string& what);
int64_t checked_add(int64_t a, int64_t b, const char* module, const std::string& what);

}  // namespace wanrt
