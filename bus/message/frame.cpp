// The message frame: writer, reader, table/stream encodings and the JMS conversion table.
// docs/message-frame.md describes the bytes.
#include "shmbus/message/frame.hpp"
#include "message/ascii.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>

namespace shmbus::message {

namespace {

template <class T>
T load(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string_view chars(const std::byte* p, std::size_t n) noexcept {
  return {reinterpret_cast<const char*>(p), n};
}

/// Parses one value of `tag` at [off, end) of `p`. Bounds-checked; checks the tag and the Bool
/// byte; String UTF-8 is the validator's job (validate_value).
bool parse_value(const std::byte* p, std::size_t end, std::size_t off, std::uint8_t tag, Value& v,
                 std::size_t& next) noexcept {
  const int fixed = value_fixed_size(tag);
  if (fixed == -2) return false;
  v = Value{};
  v.type = static_cast<ValueType>(tag);
  if (fixed >= 0) {
    if (static_cast<std::size_t>(fixed) > end - off) return false;
    const std::byte* q = p + off;
    switch (v.type) {
      case ValueType::Null: break;
      case ValueType::Bool: {
        const auto b = load<std::uint8_t>(q);
        if (b > 1) return false;
        v.i = b;
        break;
      }
      case ValueType::Int8: v.i = load<std::int8_t>(q); break;
      case ValueType::Int16: v.i = load<std::int16_t>(q); break;
      case ValueType::Char: v.i = load<std::uint16_t>(q); break;
      case ValueType::Int32: v.i = load<std::int32_t>(q); break;
      case ValueType::Int64: v.i = load<std::int64_t>(q); break;
      case ValueType::Float: v.d = static_cast<double>(load<float>(q)); break;
      case ValueType::Double: v.d = load<double>(q); break;
      default: return false;
    }
    next = off + static_cast<std::size_t>(fixed);
    return true;
  }
  if (end - off < 4) return false;
  const std::uint32_t n = load<std::uint32_t>(p + off);
  if (n > end - off - 4) return false;
  v.s = chars(p + off + 4, n);
  next = off + 4 + n;
  return true;
}

/// A table entry at `off` within [0, end): {u16 name_len, u8 tag, name, value}.
bool parse_entry(const std::byte* p, std::size_t end, std::size_t off, Entry& e, std::size_t& next) noexcept {
  if (off > end || end - off < kEntryFixed) return false;
  const std::uint16_t name_len = load<std::uint16_t>(p + off);
  const auto tag = load<std::uint8_t>(p + off + 2);
  if (name_len > end - off - kEntryFixed) return false;
  e.name = chars(p + off + kEntryFixed, name_len);
  return parse_value(p, end, off + kEntryFixed + name_len, tag, e.value, next);
}

/// Only the name of the entry at `off` (the writer's sort; the reader's binary search).
std::string_view entry_name(const std::byte* p, std::size_t end, std::size_t off) noexcept {
  if (off > end || end - off < kEntryFixed) return {};
  const std::uint16_t name_len = load<std::uint16_t>(p + off);
  if (name_len > end - off - kEntryFixed) return {};
  return chars(p + off + kEntryFixed, name_len);
}

bool property_type(ValueType t) noexcept { return t != ValueType::Bytes && t != ValueType::Char; }


// --- String -> number, as Java's valueOf/parse* (no whitespace for integers; trimmed for floats).
bool parse_integer(std::string_view s, std::int64_t lo, std::int64_t hi, std::int64_t& out) noexcept {
  if (s.empty()) return false;
  if (s[0] == '+') {
    s.remove_prefix(1);
    if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  }
  std::int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

template <class F>
bool parse_floating(std::string_view s, F& out) noexcept {
  while (!s.empty() && static_cast<unsigned char>(s.front()) <= ' ') s.remove_prefix(1);
  while (!s.empty() && static_cast<unsigned char>(s.back()) <= ' ') s.remove_suffix(1);
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "NaN") { out = std::numeric_limits<F>::quiet_NaN(); return true; }
  if (s == "Infinity") { out = neg ? -std::numeric_limits<F>::infinity() : std::numeric_limits<F>::infinity(); return true; }
  if (!s.empty() && (s.back() == 'f' || s.back() == 'F' || s.back() == 'd' || s.back() == 'D')) s.remove_suffix(1);
  if (s.empty() || !((s[0] >= '0' && s[0] <= '9') || s[0] == '.')) return false;  // no "inf", no second sign
  F v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ptr != s.data() + s.size()) return false;
  if (r.ec == std::errc::result_out_of_range) {
    // Java rounds to Infinity or 0 instead of failing (from_chars leaves v unset: look at the exponent).
    const auto e = s.find_first_of("eE");
    const bool tiny = e != std::string_view::npos && e + 1 < s.size() && s[e + 1] == '-';
    v = tiny ? F{0} : std::numeric_limits<F>::infinity();
  } else if (r.ec != std::errc{}) {
    return false;
  }
  out = neg ? -v : v;
  return true;
}

// --- number -> String, as Java's Double.toString / Float.toString (shortest round trip).
template <class F>
StringConverted format_floating(F v) noexcept {
  char buf[48];
  if (std::isnan(v)) return StringConverted::formatted("NaN", 3);
  if (std::isinf(v)) return v > 0 ? StringConverted::formatted("Infinity", 8) : StringConverted::formatted("-Infinity", 9);
  const F a = std::abs(v);
  if (a == 0 || (a >= F(1e-3) && a < F(1e7))) {
    auto r = std::to_chars(buf, buf + sizeof buf - 2, v, std::chars_format::fixed);
    std::string_view s(buf, static_cast<std::size_t>(r.ptr - buf));
    if (s.find('.') == std::string_view::npos) {
      *r.ptr++ = '.';
      *r.ptr++ = '0';
    }
    return StringConverted::formatted(buf, static_cast<std::size_t>(r.ptr - buf));
  }
  char sci[40];
  auto r = std::to_chars(sci, sci + sizeof sci, v, std::chars_format::scientific);
  std::string_view s(sci, static_cast<std::size_t>(r.ptr - sci));
  const auto e = s.find('e');
  std::string_view mant = s.substr(0, e), exp = s.substr(e + 1);
  std::size_t n = 0;
  std::memcpy(buf, mant.data(), mant.size());
  n = mant.size();
  if (mant.find('.') == std::string_view::npos) { buf[n++] = '.'; buf[n++] = '0'; }
  buf[n++] = 'E';
  if (!exp.empty() && exp[0] == '-') { buf[n++] = '-'; exp.remove_prefix(1); }
  else if (!exp.empty() && exp[0] == '+') exp.remove_prefix(1);
  while (exp.size() > 1 && exp[0] == '0') exp.remove_prefix(1);
  std::memcpy(buf + n, exp.data(), exp.size());
  n += exp.size();
  return StringConverted::formatted(buf, n);
}

StringConverted format_integer(std::int64_t v) noexcept {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return StringConverted::formatted(buf, static_cast<std::size_t>(r.ptr - buf));
}

template <class T>
Converted<T> ok(T v) noexcept { return {v, ConvertStatus::Ok}; }
template <class T>
Converted<T> fail(ConvertStatus s) noexcept { return {T{}, s}; }

template <class T>
Converted<T> as_integer(const Value& v, ValueType widest) noexcept {
  if (v.type == ValueType::Null) return fail<T>(ConvertStatus::Null);
  if (v.is_integral() && v.type <= widest) return ok(static_cast<T>(v.i));
  if (v.type == ValueType::String) {
    std::int64_t x = 0;
    if (parse_integer(v.s, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), x)) return ok(static_cast<T>(x));
    return fail<T>(ConvertStatus::NumberFormat);
  }
  return fail<T>(ConvertStatus::TypeMismatch);
}

/// "000102...ff": two hex digits per byte value.
constexpr auto kHexPairsArray = [] {
  struct A { char c[512]; } a{};
  constexpr char hex[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    a.c[2 * i] = hex[i >> 4];
    a.c[2 * i + 1] = hex[i & 15];
  }
  return a;
}();
constexpr const char* kHexPairs = kHexPairsArray.c;

}  // namespace

// ------------------------------------------------------------------------------------------------
const char* to_string(FrameStatus s) noexcept {
  switch (s) {
    case FrameStatus::Ok: return "ok";
    case FrameStatus::TooLarge: return "too-large";
    case FrameStatus::InvalidArgument: return "invalid-argument";
  }
  return "?";
}

const char* to_string(DecodeStatus s) noexcept {
  switch (s) {
    case DecodeStatus::Ok: return "ok";
    case DecodeStatus::Truncated: return "truncated";
    case DecodeStatus::BadMagic: return "bad-magic";
    case DecodeStatus::BadVersion: return "bad-version";
    case DecodeStatus::BadHeader: return "bad-header";
    case DecodeStatus::BadUtf8: return "bad-utf8";
    case DecodeStatus::BadProperties: return "bad-properties";
    case DecodeStatus::BadBody: return "bad-body";
  }
  return "?";
}

const char* to_string(ConvertStatus s) noexcept {
  switch (s) {
    case ConvertStatus::Ok: return "ok";
    case ConvertStatus::Null: return "null";
    case ConvertStatus::TypeMismatch: return "type-mismatch";
    case ConvertStatus::NumberFormat: return "number-format";
  }
  return "?";
}

bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path: 8 bytes at a time.
    if (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080'8080'8080'8080ULL) == 0) { i += 8; continue; }
    }
    const unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }            // no overlong
    else if (c == 0xED) { len = 3; hi = 0x9F; }            // no surrogates
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }            // no overlong
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }            // <= U+10FFFF
    else return false;                                      // 80-C1, F5-FF
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

namespace {
/// 1 for the ASCII bytes a selector identifier may hold after its first character.
constexpr std::array<std::uint8_t, 256> make_ident_table() noexcept {
  std::array<std::uint8_t, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = 1;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = 1;
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = 1;
  t['_'] = t['$'] = 1;
  return t;
}
constexpr std::array<std::uint8_t, 256> kIdentChar = make_ident_table();
}  // namespace

bool valid_property_name(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  const auto first = static_cast<unsigned char>(s[0]);
  if (first >= '0' && first <= '9') return false;
  bool ascii = true;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (kIdentChar[c] == 0) {
      if (c < 0x80) return false;
      ascii = false;  // non-ASCII counts as a letter (Java identifiers), if it is valid UTF-8
    }
  }
  if (!ascii && !valid_utf8(s)) return false;
  // Keywords are 2-7 letters starting with one of A B E F I L N O T.
  if (s.size() >= 2 && s.size() <= 7) {
    switch (static_cast<char>(first & 0xDF)) {
      case 'A': case 'B': case 'E': case 'F': case 'I': case 'L': case 'N': case 'O': case 'T': {
        static constexpr std::string_view kKeywords[] = {"NULL", "TRUE", "FALSE", "NOT", "AND", "OR",
                                                         "BETWEEN", "LIKE", "IN", "IS", "ESCAPE"};
        for (auto k : kKeywords)
          if (iequals_upper(s, k)) return false;
        break;
      }
      default: break;
    }
  }
  if (s.size() >= 3 && s[0] == 'J' && s[1] == 'M' && s[2] == 'S') {
    if (!s.starts_with("JMSX") && !s.starts_with("JMS_")) return false;
    if (s == "JMSXDeliveryCount") return false;
  }
  return true;
}

// --- conversions ---------------------------------------------------------------------------------
Converted<bool> as_bool(const Value& v) noexcept {
  switch (v.type) {
    case ValueType::Null: return {false, ConvertStatus::Null};
    case ValueType::Bool: return ok(v.i != 0);
    case ValueType::String: return ok(iequals_upper(v.s, "TRUE"));  // Boolean.valueOf: anything else is false
    default: return fail<bool>(ConvertStatus::TypeMismatch);
  }
}
Converted<std::int8_t> as_int8(const Value& v) noexcept { return as_integer<std::int8_t>(v, ValueType::Int8); }
Converted<std::int16_t> as_int16(const Value& v) noexcept { return as_integer<std::int16_t>(v, ValueType::Int16); }
Converted<std::int32_t> as_int32(const Value& v) noexcept { return as_integer<std::int32_t>(v, ValueType::Int32); }
Converted<std::int64_t> as_int64(const Value& v) noexcept { return as_integer<std::int64_t>(v, ValueType::Int64); }

Converted<float> as_float(const Value& v) noexcept {
  switch (v.type) {
    case ValueType::Null: return fail<float>(ConvertStatus::Null);
    case ValueType::Float: return ok(static_cast<float>(v.d));
    case ValueType::String: {
      float f = 0;
      return parse_floating(v.s, f) ? ok(f) : fail<float>(ConvertStatus::NumberFormat);
    }
    default: return fail<float>(ConvertStatus::TypeMismatch);
  }
}

Converted<double> as_double(const Value& v) noexcept {
  switch (v.type) {
    case ValueType::Null: return fail<double>(ConvertStatus::Null);
    case ValueType::Float: case ValueType::Double: return ok(v.d);
    case ValueType::String: {
      double d = 0;
      return parse_floating(v.s, d) ? ok(d) : fail<double>(ConvertStatus::NumberFormat);
    }
    default: return fail<double>(ConvertStatus::TypeMismatch);
  }
}

Converted<char16_t> as_char(const Value& v) noexcept {
  if (v.type == ValueType::Null) return fail<char16_t>(ConvertStatus::Null);
  if (v.type == ValueType::Char) return ok(static_cast<char16_t>(v.i));
  return fail<char16_t>(ConvertStatus::TypeMismatch);
}

StringConverted as_string(const Value& v) noexcept {
  switch (v.type) {
    case ValueType::Null: return StringConverted::external({}, ConvertStatus::Null);
    case ValueType::String: return StringConverted::external(v.s, ConvertStatus::Ok);
    case ValueType::Bool: return v.i ? StringConverted::formatted("true", 4) : StringConverted::formatted("false", 5);
    case ValueType::Int8: case ValueType::Int16: case ValueType::Int32: case ValueType::Int64:
      return format_integer(v.i);
    case ValueType::Float: return format_floating(static_cast<float>(v.d));
    case ValueType::Double: return format_floating(v.d);
    case ValueType::Char: {
      const auto c = static_cast<std::uint32_t>(v.i);
      char b[3];
      if (c < 0x80) { b[0] = static_cast<char>(c); return StringConverted::formatted(b, 1); }
      if (c < 0x800) {
        b[0] = static_cast<char>(0xC0 | (c >> 6));
        b[1] = static_cast<char>(0x80 | (c & 0x3F));
        return StringConverted::formatted(b, 2);
      }
      if (c >= 0xD800 && c <= 0xDFFF) break;  // a lone UTF-16 surrogate has no UTF-8 form
      b[0] = static_cast<char>(0xE0 | (c >> 12));
      b[1] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      b[2] = static_cast<char>(0x80 | (c & 0x3F));
      return StringConverted::formatted(b, 3);
    }
    case ValueType::Bytes: break;
  }
  return StringConverted::external({}, ConvertStatus::TypeMismatch);
}

Converted<std::string_view> as_bytes(const Value& v) noexcept {
  if (v.type == ValueType::Null) return fail<std::string_view>(ConvertStatus::Null);
  if (v.type == ValueType::Bytes) return ok(v.s);
  return fail<std::string_view>(ConvertStatus::TypeMismatch);
}

// --- TableReader ---------------------------------------------------------------------------------
Entry TableReader::at(std::size_t i) const noexcept {
  Entry e{};
  if (i >= count_) return e;
  const std::uint32_t off = load<std::uint32_t>(base_ + entries_len_ + 4 * i);
  std::size_t next = 0;
  if (!parse_entry(base_, entries_len_, off, e, next)) return Entry{};  // only if changed after open
  return e;
}

Value TableReader::find(std::string_view name) const noexcept {
  std::size_t lo = 0, hi = count_;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    const std::uint32_t off = load<std::uint32_t>(base_ + entries_len_ + 4 * mid);
    const int c = entry_name(base_, entries_len_, off).compare(name);
    if (c == 0) {
      Entry e{};
      std::size_t next = 0;
      return parse_entry(base_, entries_len_, off, e, next) ? e.value : Value{};
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return Value{};
}

bool TableReader::contains(std::string_view name) const noexcept {
  std::size_t lo = 0, hi = count_;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    const int c = entry_name(base_, entries_len_, load<std::uint32_t>(base_ + entries_len_ + 4 * mid)).compare(name);
    if (c == 0) return true;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

bool TableReader::open(std::span<const std::byte> table, bool property_names, std::uint32_t max_count,
                       TableReader& out) noexcept {
  out = TableReader{};
  const std::size_t len = table.size();
  if (len == 0) return true;
  if (len < kTableTrailer || len > kMaxFrameSize) return false;
  const std::byte* p = table.data();
  const std::uint32_t count = load<std::uint32_t>(p + len - kTableTrailer);
  if (count > max_count || count > (len - kTableTrailer) / 4) return false;
  const std::size_t entries_len = len - kTableTrailer - 4 * std::size_t{count};
  std::string_view prev;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t off = load<std::uint32_t>(p + entries_len + 4 * std::size_t{i});
    Entry e{};
    std::size_t next = 0;
    if (!parse_entry(p, entries_len, off, e, next)) return false;
    if (property_names ? (!valid_property_name(e.name) || !property_type(e.value.type))
                       : (e.name.empty() || !valid_utf8(e.name)))
      return false;
    if (e.value.type == ValueType::String && !valid_utf8(e.value.s)) return false;
    if (i > 0 && !(prev < e.name)) return false;  // sorted, no duplicates
    prev = e.name;
  }
  out.base_ = p;
  out.entries_len_ = static_cast<std::uint32_t>(entries_len);
  out.count_ = count;
  return true;
}

// --- StreamReader --------------------------------------------------------------------------------
bool StreamReader::item(std::size_t at, Value& v, std::size_t& next_pos) const noexcept {
  if (at >= len_) return false;
  const auto tag = load<std::uint8_t>(base_ + at);
  return parse_value(base_, len_, at + 1, tag, v, next_pos);
}

bool StreamReader::peek(Value& v) const noexcept {
  std::size_t n = 0;
  return item(pos_, v, n);
}

bool StreamReader::next(Value& v) noexcept {
  std::size_t n = 0;
  if (!item(pos_, v, n)) return false;
  pos_ = n;
  return true;
}

bool StreamReader::open(std::span<const std::byte> body, StreamReader& out) noexcept {
  out = StreamReader{};
  std::size_t pos = 0;
  while (pos < body.size()) {
    Value v;
    std::size_t next = 0;
    const auto tag = load<std::uint8_t>(body.data() + pos);
    if (!parse_value(body.data(), body.size(), pos + 1, tag, v, next)) return false;
    if (v.type == ValueType::String && !valid_utf8(v.s)) return false;
    pos = next;
  }
  out.base_ = body.data();
  out.len_ = body.size();
  return true;
}

// --- FrameWriter ---------------------------------------------------------------------------------
FrameWriter::FrameWriter(std::span<std::byte> buf) noexcept
    : buf_(buf.data()), cap_(std::min(buf.size(), kMaxFrameSize)) {
  h_.version = kFrameVersion;
  h_.priority = kDefaultFramePriority;
  h_.delivery_mode = static_cast<std::uint8_t>(DeliveryMode::Persistent);  // JMS default
  h_.header_size = kFrameHeaderSize;
  if (cap_ >= sizeof(std::uint32_t)) std::memset(buf_, 0, sizeof(std::uint32_t));  // no magic until finish()
  if (cap_ < kFrameHeaderSize) {
    status_ = FrameStatus::TooLarge;
    pos_ = 0;
  }
}

FrameStatus FrameWriter::fail(FrameStatus s) noexcept {
  if (status_ == FrameStatus::Ok) status_ = s;
  return status_;
}

void FrameWriter::set_redelivered(bool r) noexcept {
  h_.flags = static_cast<std::uint16_t>(r ? (h_.flags | kFrameRedelivered) : (h_.flags & ~kFrameRedelivered));
}

FrameStatus FrameWriter::set_priority(int p) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (p < 0 || p > 9) return fail(FrameStatus::InvalidArgument);
  h_.priority = static_cast<std::uint8_t>(p);
  return status_;
}

FrameStatus FrameWriter::set_delivery_mode(DeliveryMode m) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (m != DeliveryMode::Persistent && m != DeliveryMode::NonPersistent) return fail(FrameStatus::InvalidArgument);
  h_.delivery_mode = static_cast<std::uint8_t>(m);
  return status_;
}

FrameStatus FrameWriter::set_string(FieldRef& ref, std::string_view s) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (phase_ != Phase::Headers || !valid_utf8(s)) return fail(FrameStatus::InvalidArgument);
  if (!room(s.size())) return fail(FrameStatus::TooLarge);
  ref = {static_cast<std::uint32_t>(pos_), static_cast<std::uint32_t>(s.size())};
  put(s.data(), s.size());
  return status_;
}

FrameStatus FrameWriter::put_value(const Value& v) noexcept {
  const auto tag = static_cast<std::uint8_t>(v.type);
  const int fixed = value_fixed_size(tag);
  if (fixed == -2) return fail(FrameStatus::InvalidArgument);
  auto in = [&](std::int64_t lo, std::int64_t hi) { return v.i >= lo && v.i <= hi; };
  if (fixed >= 0) {
    if (!room(static_cast<std::size_t>(fixed))) return fail(FrameStatus::TooLarge);
    switch (v.type) {
      case ValueType::Null: break;
      case ValueType::Bool: { const std::uint8_t b = v.i != 0; put(&b, 1); break; }
      case ValueType::Int8: {
        if (!in(INT8_MIN, INT8_MAX)) return fail(FrameStatus::InvalidArgument);
        const auto x = static_cast<std::int8_t>(v.i); put(&x, 1); break;
      }
      case ValueType::Int16: {
        if (!in(INT16_MIN, INT16_MAX)) return fail(FrameStatus::InvalidArgument);
        const auto x = static_cast<std::int16_t>(v.i); put(&x, 2); break;
      }
      case ValueType::Char: {
        if (!in(0, 0xFFFF)) return fail(FrameStatus::InvalidArgument);
        const auto x = static_cast<std::uint16_t>(v.i); put(&x, 2); break;
      }
      case ValueType::Int32: {
        if (!in(INT32_MIN, INT32_MAX)) return fail(FrameStatus::InvalidArgument);
        const auto x = static_cast<std::int32_t>(v.i); put(&x, 4); break;
      }
      case ValueType::Int64: put(&v.i, 8); break;
      case ValueType::Float: { const auto x = static_cast<float>(v.d); put(&x, 4); break; }
      case ValueType::Double: put(&v.d, 8); break;
      default: return fail(FrameStatus::InvalidArgument);
    }
    return status_;
  }
  if (v.type == ValueType::String && !valid_utf8(v.s)) return fail(FrameStatus::InvalidArgument);
  if (v.s.size() > kMaxFrameSize || !room(4 + v.s.size())) return fail(FrameStatus::TooLarge);
  const auto n = static_cast<std::uint32_t>(v.s.size());
  put(&n, 4);
  put(v.s.data(), v.s.size());
  return status_;
}

FrameStatus FrameWriter::add_entry(std::string_view name, const Value& v) noexcept {
  if (name.size() > kMaxNameLength) return fail(FrameStatus::InvalidArgument);
  if (!room(kEntryFixed + name.size())) return fail(FrameStatus::TooLarge);
  const auto name_len = static_cast<std::uint16_t>(name.size());
  const auto tag = static_cast<std::uint8_t>(v.type);
  put(&name_len, 2);
  put(&tag, 1);
  put(name.data(), name.size());
  put_value(v);
  if (status_ == FrameStatus::Ok) ++table_count_;
  return status_;
}

FrameStatus FrameWriter::add_property(std::string_view name, const Value& v) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (phase_ == Phase::Headers) {
    phase_ = Phase::Properties;
    table_start_ = static_cast<std::uint32_t>(pos_);
    table_count_ = 0;
  }
  if (phase_ != Phase::Properties || !valid_property_name(name) || !property_type(v.type) ||
      table_count_ >= kMaxProperties)
    return fail(FrameStatus::InvalidArgument);
  return add_entry(name, v);
}

FrameStatus FrameWriter::close_table(std::uint32_t start, std::uint32_t count, std::uint32_t& length) noexcept {
  // Pad so that the index is 4-aligned in this buffer (it is sorted in place as uint32_t); the
  // reader finds the index from the table's end, so the pad is invisible to it.
  const std::size_t entries_end = pos_;
  const std::size_t pad = (4 - reinterpret_cast<std::uintptr_t>(buf_ + pos_) % 4) % 4;
  const std::size_t need = pad + 4 * std::size_t{count} + kTableTrailer;
  if (!room(need)) return fail(FrameStatus::TooLarge);
  std::memset(buf_ + pos_, 0, pad);
  pos_ += pad;
  auto* index = reinterpret_cast<std::uint32_t*>(buf_ + pos_);
  const std::byte* table = buf_ + start;
  const std::size_t entries_len = entries_end - start;
  std::size_t off = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    index[i] = static_cast<std::uint32_t>(off);
    Entry e{};
    std::size_t next = 0;
    parse_entry(table, entries_len, off, e, next);  // written by us: always parses
    off = next;
  }
  auto name_at = [&](std::uint32_t o) { return entry_name(table, entries_len, o); };
  std::sort(index, index + count, [&](std::uint32_t a, std::uint32_t b) { return name_at(a) < name_at(b); });
  for (std::uint32_t i = 1; i < count; ++i)
    if (name_at(index[i - 1]) == name_at(index[i])) return fail(FrameStatus::InvalidArgument);
  pos_ += 4 * std::size_t{count};
  put(&count, 4);
  length = static_cast<std::uint32_t>(pos_ - start);
  return status_;
}

FrameStatus FrameWriter::close_properties() noexcept {
  if (phase_ == Phase::Properties) {
    std::uint32_t len = 0;
    if (close_table(table_start_, table_count_, len) != FrameStatus::Ok) return status_;
    h_.properties = {table_start_, len};
  }
  return status_;
}

FrameStatus FrameWriter::start_body(BodyType t) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (phase_ != Phase::Headers && phase_ != Phase::Properties) return fail(FrameStatus::InvalidArgument);
  if (close_properties() != FrameStatus::Ok) return status_;
  h_.body_type = static_cast<std::uint8_t>(t);
  h_.body.offset = static_cast<std::uint32_t>(pos_);
  phase_ = t == BodyType::Map ? Phase::Map : t == BodyType::Stream ? Phase::Stream : Phase::Body;
  table_start_ = static_cast<std::uint32_t>(pos_);
  table_count_ = 0;
  return status_;
}

FrameStatus FrameWriter::set_text(std::string_view utf8) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (!valid_utf8(utf8)) return fail(FrameStatus::InvalidArgument);
  if (start_body(BodyType::Text) != FrameStatus::Ok) return status_;
  if (!room(utf8.size())) return fail(FrameStatus::TooLarge);
  put(utf8.data(), utf8.size());
  return status_;
}

FrameStatus FrameWriter::set_bytes(std::span<const std::byte> data) noexcept {
  if (start_body(BodyType::Bytes) != FrameStatus::Ok) return status_;
  if (!room(data.size())) return fail(FrameStatus::TooLarge);
  put(data.data(), data.size());
  return status_;
}

FrameStatus FrameWriter::set_object(std::string_view type_name, std::span<const std::byte> data) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (!valid_utf8(type_name) || type_name.size() > kMaxFrameSize) return fail(FrameStatus::InvalidArgument);
  if (start_body(BodyType::Object) != FrameStatus::Ok) return status_;
  if (!room(4 + type_name.size()) || !room(4 + type_name.size() + data.size())) return fail(FrameStatus::TooLarge);
  const auto n = static_cast<std::uint32_t>(type_name.size());
  put(&n, 4);
  put(type_name.data(), type_name.size());
  put(data.data(), data.size());
  return status_;
}

FrameStatus FrameWriter::begin_map() noexcept { return start_body(BodyType::Map); }

FrameStatus FrameWriter::add_map_entry(std::string_view name, const Value& v) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (phase_ != Phase::Map || name.empty() || !valid_utf8(name) || table_count_ >= kMaxMapEntries)
    return fail(FrameStatus::InvalidArgument);
  return add_entry(name, v);
}

FrameStatus FrameWriter::begin_stream() noexcept { return start_body(BodyType::Stream); }

FrameStatus FrameWriter::add_stream_value(const Value& v) noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (phase_ != Phase::Stream) return fail(FrameStatus::InvalidArgument);
  if (value_fixed_size(static_cast<std::uint8_t>(v.type)) == -2) return fail(FrameStatus::InvalidArgument);
  if (!room(1)) return fail(FrameStatus::TooLarge);
  const auto tag = static_cast<std::uint8_t>(v.type);
  put(&tag, 1);
  return put_value(v);
}

FrameStatus FrameWriter::finish() noexcept {
  if (status_ != FrameStatus::Ok) return status_;
  if (phase_ == Phase::Done) return fail(FrameStatus::InvalidArgument);
  if (close_properties() != FrameStatus::Ok) return status_;
  if (phase_ == Phase::Map) {
    std::uint32_t len = 0;
    if (close_table(table_start_, table_count_, len) != FrameStatus::Ok) return status_;
  }
  if (h_.body.offset != 0) h_.body.length = static_cast<std::uint32_t>(pos_ - h_.body.offset);
  h_.frame_length = static_cast<std::uint32_t>(pos_);
  h_.magic = 0;
  std::memcpy(buf_, &h_, sizeof h_);
  const std::uint32_t magic = kFrameMagic;
  std::memcpy(buf_, &magic, sizeof magic);
  h_.magic = magic;
  phase_ = Phase::Done;
  finished_ = true;
  return status_;
}

// --- FrameReader ---------------------------------------------------------------------------------
DecodeStatus FrameReader::open(std::span<const std::byte> buf) noexcept {
  base_ = nullptr;
  id_len_ = 0;
  props_ = TableReader{};
  map_ = TableReader{};
  stream_ = StreamReader{};
  if (buf.size() < 8) return DecodeStatus::Truncated;
  if (load<std::uint32_t>(buf.data()) != kFrameMagic) return DecodeStatus::BadMagic;
  if (load<std::uint8_t>(buf.data() + 4) != kFrameVersion) return DecodeStatus::BadVersion;
  if (buf.size() < kFrameHeaderSize) return DecodeStatus::Truncated;
  FrameHeader h;
  std::memcpy(&h, buf.data(), sizeof h);
  if (h.frame_length > buf.size()) return DecodeStatus::Truncated;
  const std::uint64_t end = h.frame_length;
  if (h.header_size < kFrameHeaderSize || h.header_size > end || h.body_type > 5 || h.priority > 9 ||
      (h.delivery_mode != 1 && h.delivery_mode != 2) || (h.flags & ~kFrameKnownFlags) != 0)
    return DecodeStatus::BadHeader;
  auto in_frame = [&](FieldRef r) {
    if (r.offset == 0) return r.length == 0;
    return r.offset >= h.header_size && std::uint64_t{r.offset} + r.length <= end;
  };
  const std::byte* p = buf.data();
  for (const FieldRef* r : {&h.correlation_id, &h.type, &h.reply_to, &h.destination}) {
    if (!in_frame(*r)) return DecodeStatus::BadHeader;
    if (!valid_utf8(chars(p + r->offset, r->length))) return DecodeStatus::BadUtf8;
  }
  if (!in_frame(h.properties) || !in_frame(h.body)) return DecodeStatus::BadHeader;
  if (!TableReader::open({p + h.properties.offset, h.properties.length}, true, kMaxProperties, props_))
    return DecodeStatus::BadProperties;
  const std::span<const std::byte> body(p + h.body.offset, h.body.length);
  switch (static_cast<BodyType>(h.body_type)) {
    case BodyType::None:
      if (!body.empty()) return DecodeStatus::BadBody;
      break;
    case BodyType::Text:
      if (!valid_utf8(chars(body.data(), body.size()))) return DecodeStatus::BadUtf8;
      break;
    case BodyType::Bytes: break;
    case BodyType::Map:
      if (!TableReader::open(body, false, kMaxMapEntries, map_)) return DecodeStatus::BadBody;
      break;
    case BodyType::Stream:
      if (!StreamReader::open(body, stream_)) return DecodeStatus::BadBody;
      break;
    case BodyType::Object: {
      if (body.size() < 4) return DecodeStatus::BadBody;
      const auto n = load<std::uint32_t>(body.data());
      if (n > body.size() - 4 || !valid_utf8(chars(body.data() + 4, n))) return DecodeStatus::BadBody;
      break;
    }
  }
  if (h.message_id_hi != 0 || h.message_id_lo != 0) {
    std::memcpy(id_text_, "ID:", 3);
    for (int i = 0; i < 8; ++i) {
      const auto hb = static_cast<unsigned>(h.message_id_hi >> (56 - 8 * i)) & 0xFF;
      const auto lb = static_cast<unsigned>(h.message_id_lo >> (56 - 8 * i)) & 0xFF;
      std::memcpy(id_text_ + 3 + 2 * i, kHexPairs + 2 * hb, 2);
      std::memcpy(id_text_ + 19 + 2 * i, kHexPairs + 2 * lb, 2);
    }
    id_len_ = 35;
  }
  h_ = h;
  base_ = p;
  return DecodeStatus::Ok;
}

Value FrameReader::get(std::string_view name) const noexcept {
  if (name.size() > 3 && name.starts_with("JMS")) {
    const std::string_view n = name.substr(3);
    auto str = [](bool has, std::string_view s) { return has ? Value::string(s) : Value::null(); };
    switch (n[0]) {
      case 'P':
        if (n == "Priority") return Value::int32(h_.priority);
        break;
      case 'T':
        if (n == "Timestamp") return Value::int64(h_.timestamp_ns / 1'000'000);
        if (n == "Type") return str(has_type(), type());
        break;
      case 'E':
        if (n == "Expiration") return Value::int64(h_.expiration_ns / 1'000'000);
        break;
      case 'D':
        if (n == "DeliveryMode")
          return Value::string(h_.delivery_mode == static_cast<std::uint8_t>(DeliveryMode::Persistent) ? "PERSISTENT" : "NON_PERSISTENT");
        if (n == "DeliveryTime") return Value::int64(h_.delivery_time_ns / 1'000'000);
        if (n == "Destination") return str(has_destination(), destination());
        break;
      case 'C':
        if (n == "CorrelationID") return str(has_correlation_id(), correlation_id());
        break;
      case 'M':
        if (n == "MessageID") return id_len_ ? Value::string(message_id_string()) : Value::null();
        break;
      case 'R':
        if (n == "Redelivered") return Value::boolean(redelivered());
        if (n == "ReplyTo") return str(has_reply_to(), reply_to());
        break;
      case 'X':
        if (n == "XDeliveryCount") return Value::int32(static_cast<std::int32_t>(std::min<std::uint32_t>(h_.delivery_count, INT32_MAX)));
        break;
      default: break;
    }
  }
  return props_.find(name);
}

std::string_view FrameReader::text() const noexcept {
  if (body_type() != BodyType::Text) return {};
  return chars(base_ + h_.body.offset, h_.body.length);
}

std::string_view FrameReader::object_type() const noexcept {
  if (body_type() != BodyType::Object || h_.body.length < 4) return {};
  const auto n = load<std::uint32_t>(base_ + h_.body.offset);
  if (n > h_.body.length - 4) return {};
  return chars(base_ + h_.body.offset + 4, n);
}

std::span<const std::byte> FrameReader::object_data() const noexcept {
  if (body_type() != BodyType::Object || h_.body.length < 4) return {};
  const auto n = load<std::uint32_t>(base_ + h_.body.offset);
  if (n > h_.body.length - 4) return {};
  return {base_ + h_.body.offset + 4 + n, h_.body.length - 4 - n};
}

}  // namespace shmbus::message
