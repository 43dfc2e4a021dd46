// Typed JSON config reading: the type and range checks, in one place for every model config.
#include "io/json_config.h"

#include <cmath>

#include "core/error.h"

namespace wanrt {

using json = nlohmann::json;

namespace {
// The value as shown in an error: dumped JSON, cut so a hostile 1 MB string stays one short line.
std::string shown(const json& x) {
    std::string s = x.dump();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
}
}  // namespace

JsonConfig::JsonConfig(const std::string& text, const char* module, std::string origin, std::string hint)
    : module_(module), origin_(std::move(origin)), hint_(std::move(hint)) {
    try {
        j_ = json::parse(text);
    } catch (const json::exception& e) {
        fail(module_, origin_, ": not valid JSON (", e.what(), "); ", hint_);
    }
    if (!j_.is_object()) fail(module_, origin_, ": the config is not a JSON object; ", hint_);
}

void JsonConfig::bad(const std::string& what) const { fail(module_, origin_, ": ", what, "; ", hint_); }

int64_t JsonConfig::as_integer(const json& x, const std::string& what, int64_t lo, int64_t hi) const {
    const std::string range = cat(" in [", lo, ", ", hi, "]");
    // JSON has one number type; nlohmann keeps integers apart from floats, and 1e21 or 1.5 are floats.
    if (x.is_number_unsigned()) {
        const uint64_t u = x.get<uint64_t>();
        if (u > uint64_t(hi) || (lo > 0 && u < uint64_t(lo))) bad(cat(what, " must be an integer", range, ", got ", shown(x)));
        return int64_t(u);
    }
    if (!x.is_number_integer()) bad(cat(what, " must be an integer", range, ", got ", shown(x)));
    const int64_t v = x.get<int64_t>();
    if (v < lo || v > hi) bad(cat(what, " must be an integer", range, ", got ", shown(x)));
    return v;
}

void JsonConfig::integer(const char* key, int64_t& v, int64_t lo, int64_t hi) const {
    if (has(key)) v = as_integer(j_[key], cat("\"", key, "\""), lo, hi);
}
void JsonConfig::integer(const char* key, int& v, int64_t lo, int64_t hi) const {
    if (has(key)) v = int(as_integer(j_[key], cat("\"", key, "\""), lo, hi));
}

void JsonConfig::number(const char* key, double& v, double lo, double hi) const {
    if (!has(key)) return;
    const json& x = j_[key];
    if (!x.is_number() || !std::isfinite(x.get<double>()) || x.get<double>() < lo || x.get<double>() > hi)
        bad(cat("\"", key, "\" must be a number in [", lo, ", ", hi, "], got ", shown(x)));
    v = x.get<double>();
}
void JsonConfig::number(const char* key, float& v, double lo, double hi) const {
    double d = v;
    number(key, d, lo, hi);
    v = float(d);
}

void JsonConfig::boolean(const char* key, bool& v) const {
    if (!has(key)) return;
    if (!j_[key].is_boolean()) bad(cat("\"", key, "\" must be a boolean (true or false), got ", shown(j_[key])));
    v = j_[key].get<bool>();
}

void JsonConfig::string(const char* key, std::string& v) const {
    if (!has(key)) return;
    if (!j_[key].is_string()) bad(cat("\"", key, "\" must be a string, got ", shown(j_[key])));
    v = j_[key].get<std::string>();
}

namespace {
template <class F>
void each(const JsonConfig& c, const json& x, const char* key, const char* type, size_t min_len, size_t max_len,
          F&& f) {
    if (!x.is_array() || x.size() < min_len || x.size() > max_len)
        c.bad(min_len == max_len ? cat("\"", key, "\" must be a list of ", min_len, " ", type, ", got ", shown(x))
                                 : cat("\"", key, "\" must be a list of ", min_len, " to ", max_len, " ", type,
                                       ", got ", shown(x)));
    for (size_t i = 0; i < x.size(); ++i) f(x[i], cat("\"", key, "\"[", i, "]"));
}
}  // namespace

void JsonConfig::integers(const char* key, std::vector<int64_t>& v, size_t min_len, size_t max_len, int64_t lo,
                          int64_t hi) const {
    if (!has(key)) return;
    std::vector<int64_t> r;
    each(*this, j_[key], key, "integers", min_len, max_len,
         [&](const json& x, const std::string& what) { r.push_back(as_integer(x, what, lo, hi)); });
    v = std::move(r);
}

void JsonConfig::numbers(const char* key, std::vector<double>& v, size_t min_len, size_t max_len, double lo,
                         double hi) const {
    if (!has(key)) return;
    std::vector<double> r;
    each(*this, j_[key], key, "numbers", min_len, max_len, [&](const json& x, const std::string& what) {
        if (!x.is_number() || !std::isfinite(x.get<double>()) || x.get<double>() < lo || x.get<double>() > hi)
            bad(cat(what, " must be a number in [", lo, ", ", hi, "], got ", shown(x)));
        r.push_back(x.get<double>());
    });
    v = std::move(r);
}

void JsonConfig::booleans(const char* key, std::vector<bool>& v, size_t min_len, size_t max_len) const {
    if (!has(key)) return;
    std::vector<bool> r;
    each(*this, j_[key], key, "booleans", min_len, max_len, [&](const json& x, const std::string& what) {
        if (!x.is_boolean()) bad(cat(what, " must be a boolean (true or false), got ", shown(x)));
        r.push_back(x.get<bool>());
    });
    v = std::move(r);
}

int64_t checked_mul(int64_t a, int64_t b, const char* module, const std::string& what) {
    int64_t r = 0;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
        fail(module, what, " overflows 64 bits (", a, " x ", b, "); the sizes are not those of a real model");
    return r;
}
int64_t checked_add(int64_t a, int64_t b, const char* module, const std::string& what) {
    int64_t r = 0;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
        fail(module, what, " overflows 64 bits (", a, " + ", b, "); the sizes are not those of a real model");
    return r;
}

}  // namespace wanrt
