// libFuzzer target: the frame decoder (include/shmbus/message/frame.hpp, bus/message/frame.cpp).
//
// The input is copied to an exact-size heap block and given to FrameReader::open(). When it is
// accepted, every accessor is exercised and checked against what open() promised: views inside
// the frame, tables sorted and unique with valid names, every value convertible by the JMS table
// with consistent outcomes (and number -> String -> number round trips), the stream read both
// ways, the JMS header names of get(). Then the frame is re-encoded with FrameWriter from what was
// read, into a buffer of exactly the size it needs, and opened again: the two readings must agree,
// and re-encoding the copy must give the same bytes. Any disagreement traps (FUZZ_CHECK).
#include "fuzz_common.hpp"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace {

using namespace shmbus::message;
using shmbus::fuzz::Exact;
using shmbus::fuzz::same_value;
using shmbus::fuzz::sink;
using shmbus::fuzz::touch;

/// The bytes [lo, hi) of the frame being read.
struct Bounds {
  std::uintptr_t lo, hi;
  bool holds(const void* p, std::size_t n) const noexcept {
    if (n == 0) return true;
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    return a >= lo && a <= hi && n <= hi - a;
  }
  bool holds(std::string_view s) const noexcept { return holds(s.data(), s.size()); }
  bool holds(std::span<const std::byte> s) const noexcept { return holds(s.data(), s.size()); }
};

// --- reference implementations of the String -> number rules (docs/message-frame.md) -----------

/// Java Byte/Short/Integer/Long.parseX: optional sign, decimal digits, in range.
bool ref_integer(std::string_view s, std::int64_t lo, std::int64_t hi, std::int64_t& out) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  __int128 v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
    if (v > (static_cast<__int128>(1) << 64)) v = static_cast<__int128>(1) << 64;  // saturate
  }
  if (neg) v = -v;
  if (v < lo || v > hi) return false;
  out = static_cast<std::int64_t>(v);
  return true;
}

// --- reference implementations of the UTF-8 and property-name rules (frame.hpp comments) --------

/// RFC 3629, decoded code point by code point: no overlongs, no surrogates, at most U+10FFFF.
bool ref_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1Fu; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0Fu; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07u; }
    else return false;
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

/// A selector identifier that is not a keyword (any case), not a JMS header name ("JMS" without
/// "X" or "_" next, and JMSXDeliveryCount); non-ASCII UTF-8 counts as a letter.
bool ref_property_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength || !ref_utf8(s)) return false;
  auto letter = [](unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c >= 0x80; };
  if (!letter(static_cast<unsigned char>(s[0]))) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (!letter(c) && !(c >= '0' && c <= '9')) return false;
  }
  std::string up(s);
  for (char& ch : up)
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  for (std::string_view k : {"NULL", "TRUE", "FALSE", "NOT", "AND", "OR", "BETWEEN", "LIKE", "IN", "IS", "ESCAPE"})
    if (up == k) return false;
  if (s.starts_with("JMS") && !s.starts_with("JMSX") && !s.starts_with("JMS_")) return false;
  return s != "JMSXDeliveryCount";
}

/// valid_utf8 and valid_property_name against the references, on the input itself and on each
/// of its words (runs of bytes above ' '), whatever the input is.
void check_rules(std::string_view in) {
  FUZZ_CHECK(valid_utf8(in) == ref_utf8(in));
  std::size_t words = 0;
  for (std::size_t i = 0; i < in.size() && words < 64;) {
    while (i < in.size() && static_cast<unsigned char>(in[i]) <= ' ') ++i;
    std::size_t j = i;
    while (j < in.size() && static_cast<unsigned char>(in[j]) > ' ') ++j;
    if (j == i) break;
    const std::string_view w = in.substr(i, j - i);
    FUZZ_CHECK(valid_utf8(w) == ref_utf8(w));
    FUZZ_CHECK(valid_property_name(w) == ref_property_name(w));
    ++words;
    i = j;
  }
}

template <class T>
void check_integer(const Value& v, const Converted<T>& c, ValueType widest) {
  switch (v.type) {
    case ValueType::Null:
      FUZZ_CHECK(c.status == ConvertStatus::Null);
      break;
    case ValueType::Int8: case ValueType::Int16: case ValueType::Int32: case ValueType::Int64:
      if (v.type <= widest) {
        FUZZ_CHECK(c.ok() && static_cast<std::int64_t>(c.value) == v.i);
      } else {
        FUZZ_CHECK(c.status == ConvertStatus::TypeMismatch);
      }
      break;
    case ValueType::String: {
      std::int64_t ref = 0;
      const bool ok = ref_integer(v.s, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), ref);
      FUZZ_CHECK(c.ok() == ok);
      FUZZ_CHECK(ok ? static_cast<std::int64_t>(c.value) == ref : c.status == ConvertStatus::NumberFormat);
      break;
    }
    default:
      FUZZ_CHECK(c.status == ConvertStatus::TypeMismatch);
  }
}

/// Decodes one UTF-8 code point of 1-3 bytes (what as_string(Char) produces).
std::int64_t decode_bmp(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<std::int64_t>(static_cast<unsigned char>(s[i])); };
  if (s.size() == 1) return b(0);
  if (s.size() == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (s.size() == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return -1;
}

/// Every conversion of the JMS table on `v`, with the outcome each must have.
std::uint64_t check_value(const Value& v, const Bounds& frame) {
  std::uint64_t h = static_cast<std::uint64_t>(v.type);
  FUZZ_CHECK(static_cast<std::uint8_t>(v.type) <= static_cast<std::uint8_t>(ValueType::Char));
  if (v.type == ValueType::String || v.type == ValueType::Bytes) {
    FUZZ_CHECK(frame.holds(v.s));
    h ^= touch(v.s);
  }
  if (v.type == ValueType::String) FUZZ_CHECK(valid_utf8(v.s));
  if (v.type == ValueType::Bool) FUZZ_CHECK(v.i == 0 || v.i == 1);
  if (v.type == ValueType::Char) FUZZ_CHECK(v.i >= 0 && v.i <= 0xFFFF);

  // boolean
  const auto b = as_bool(v);
  switch (v.type) {
    case ValueType::Null: FUZZ_CHECK(b.status == ConvertStatus::Null && !b.value); break;
    case ValueType::Bool: FUZZ_CHECK(b.ok() && b.value == (v.i != 0)); break;
    case ValueType::String: {
      bool t = v.s.size() == 4;
      for (std::size_t i = 0; t && i < 4; ++i) t = (v.s[i] | 0x20) == "true"[i];
      FUZZ_CHECK(b.ok() && b.value == t);
      break;
    }
    default: FUZZ_CHECK(b.status == ConvertStatus::TypeMismatch);
  }

  // byte, short, int, long: each conversion as its reference; a narrower success implies the wider
  const auto i8 = as_int8(v);
  const auto i16 = as_int16(v);
  const auto i32 = as_int32(v);
  const auto i64 = as_int64(v);
  check_integer(v, i8, ValueType::Int8);
  check_integer(v, i16, ValueType::Int16);
  check_integer(v, i32, ValueType::Int32);
  check_integer(v, i64, ValueType::Int64);
  if (i8.ok()) FUZZ_CHECK(i16.ok() && i16.value == i8.value);
  if (i16.ok()) FUZZ_CHECK(i32.ok() && i32.value == i16.value);
  if (i32.ok()) FUZZ_CHECK(i64.ok() && i64.value == i32.value);

  // float, double
  const auto f = as_float(v);
  const auto d = as_double(v);
  switch (v.type) {
    case ValueType::Null:
      FUZZ_CHECK(f.status == ConvertStatus::Null && d.status == ConvertStatus::Null);
      break;
    case ValueType::Float:
      FUZZ_CHECK(f.ok() && d.ok());
      FUZZ_CHECK(std::isnan(v.d) ? std::isnan(f.value) && std::isnan(d.value)
                                 : f.value == static_cast<float>(v.d) && d.value == v.d);
      break;
    case ValueType::Double:
      FUZZ_CHECK(f.status == ConvertStatus::TypeMismatch && d.ok());
      FUZZ_CHECK(std::isnan(v.d) ? std::isnan(d.value) : d.value == v.d);
      break;
    case ValueType::String:
      // One grammar for both widths: what one accepts, the other accepts.
      FUZZ_CHECK(f.ok() == d.ok());
      if (!f.ok()) FUZZ_CHECK(f.status == ConvertStatus::NumberFormat && d.status == ConvertStatus::NumberFormat);
      if (f.ok()) FUZZ_CHECK(std::isnan(f.value) == std::isnan(d.value));
      break;
    default:
      FUZZ_CHECK(f.status == ConvertStatus::TypeMismatch && d.status == ConvertStatus::TypeMismatch);
  }

  // char
  const auto c = as_char(v);
  if (v.type == ValueType::Char) FUZZ_CHECK(c.ok() && static_cast<std::int64_t>(c.value) == v.i);
  else if (v.type == ValueType::Null) FUZZ_CHECK(c.status == ConvertStatus::Null);
  else FUZZ_CHECK(c.status == ConvertStatus::TypeMismatch);

  // bytes
  const auto by = as_bytes(v);
  if (v.type == ValueType::Bytes) FUZZ_CHECK(by.ok() && by.value.data() == v.s.data() && by.value.size() == v.s.size());
  else if (v.type == ValueType::Null) FUZZ_CHECK(by.status == ConvertStatus::Null);
  else FUZZ_CHECK(by.status == ConvertStatus::TypeMismatch);

  // String, and back: a formatted number must read back as the same number
  const StringConverted s = as_string(v);
  const StringConverted s_copy = s;  // copy-safe: the copy's view points into the copy
  FUZZ_CHECK(s_copy.view() == s.view() && s_copy.status == s.status);
  const std::string_view sv = s.view();
  h ^= touch(sv);
  if (s.ok()) FUZZ_CHECK(valid_utf8(sv));
  const Value back = Value::string(sv);
  switch (v.type) {
    case ValueType::Null: FUZZ_CHECK(s.status == ConvertStatus::Null && sv.empty()); break;
    case ValueType::String: FUZZ_CHECK(s.ok() && sv.data() == v.s.data() && sv.size() == v.s.size()); break;
    case ValueType::Bytes: FUZZ_CHECK(s.status == ConvertStatus::TypeMismatch); break;
    case ValueType::Bool: FUZZ_CHECK(s.ok() && sv == (v.i ? "true" : "false")); break;
    case ValueType::Int8: case ValueType::Int16: case ValueType::Int32: case ValueType::Int64: {
      const auto r = as_int64(back);
      FUZZ_CHECK(s.ok() && r.ok() && r.value == v.i);
      break;
    }
    case ValueType::Float: {
      const auto r = as_float(back);
      FUZZ_CHECK(s.ok() && r.ok());
      FUZZ_CHECK(std::isnan(v.d) ? std::isnan(r.value) : r.value == static_cast<float>(v.d));
      if (!std::isnan(v.d)) FUZZ_CHECK(std::signbit(r.value) == std::signbit(v.d));
      break;
    }
    case ValueType::Double: {
      const auto r = as_double(back);
      FUZZ_CHECK(s.ok() && r.ok());
      FUZZ_CHECK(std::isnan(v.d) ? std::isnan(r.value) : shmbus::fuzz::bits(r.value) == shmbus::fuzz::bits(v.d));
      break;
    }
    case ValueType::Char:
      if (v.i >= 0xD800 && v.i <= 0xDFFF) {
        FUZZ_CHECK(s.status == ConvertStatus::TypeMismatch);
      } else {
        FUZZ_CHECK(s.ok() && decode_bmp(sv) == v.i);
      }
      break;
  }
  return h ^ static_cast<std::uint64_t>(i64.value) ^ static_cast<std::uint64_t>(c.value);
}

/// A validated table: size, order, names, lookups, every value.
std::uint64_t check_table(const TableReader& t, bool properties, const Bounds& frame) {
  std::uint64_t h = t.size();
  FUZZ_CHECK(t.size() <= (properties ? kMaxProperties : kMaxMapEntries));
  FUZZ_CHECK(t.empty() == (t.size() == 0));
  std::string_view prev;
  std::size_t i = 0;
  for (auto it = t.begin(); it != t.end(); ++it, ++i) {
    const Entry e = *it;
    const Entry a = t.at(i);
    FUZZ_CHECK(e.name == a.name && same_value(e.value, a.value));
    FUZZ_CHECK(frame.holds(e.name));
    FUZZ_CHECK(!e.name.empty() && valid_utf8(e.name));
    if (properties) {
      FUZZ_CHECK(valid_property_name(e.name) && ref_property_name(e.name));
      FUZZ_CHECK(e.value.type != ValueType::Bytes && e.value.type != ValueType::Char);
    }
    FUZZ_CHECK(i == 0 || prev < e.name);  // sorted, unique
    prev = e.name;
    FUZZ_CHECK(same_value(t.find(e.name), e.value));
    FUZZ_CHECK(t.contains(e.name));
    h ^= touch(e.name) ^ check_value(e.value, frame);
  }
  FUZZ_CHECK(i == t.size());
  const Entry past = t.at(t.size());
  FUZZ_CHECK(past.name.empty() && past.value.is_null());
  FUZZ_CHECK(t.find("").is_null() && !t.contains(""));
  // Names next to the real ones (binary search edges).
  if (!t.empty()) {
    std::string n(t.at(0).name);
    n.pop_back();
    if (!n.empty() && !t.contains(n)) FUZZ_CHECK(t.find(n).is_null());
    std::string z(t.at(t.size() - 1).name);
    z.push_back('\x7f');
    FUZZ_CHECK(!t.contains(z) && t.find(z).is_null());
  }
  return h;
}

/// A stream: next() to the end, then the typed reads (a failed read must not move).
std::uint64_t check_stream(StreamReader s, std::size_t body_len, const Bounds& frame) {
  std::uint64_t h = 0;
  std::size_t items = 0;
  Value v;
  s.reset();
  while (s.next(v)) {
    ++items;
    FUZZ_CHECK(items <= body_len);  // every item takes a byte at least
    h ^= check_value(v, frame);
  }
  FUZZ_CHECK(s.at_end() && !s.peek(v));
  FUZZ_CHECK(s.read_int32().status == ConvertStatus::TypeMismatch);  // past the end: EOF
  FUZZ_CHECK(s.read_string().status == ConvertStatus::TypeMismatch);

  s.reset();
  std::size_t seen = 0;
  unsigned k = 0;
  for (;;) {
    Value cur;
    if (!s.peek(cur)) break;
    StreamReader after = s;
    FUZZ_CHECK(after.next(v) && same_value(v, cur));
    // One read of each kind on a copy: success/Null advances by one item, failure stays.
    for (int kind = 0; kind < 10; ++kind) {
      StreamReader t = s;
      ConvertStatus st;
      switch (kind) {
        case 0: st = t.read_bool().status; break;
        case 1: st = t.read_int8().status; break;
        case 2: st = t.read_int16().status; break;
        case 3: st = t.read_int32().status; break;
        case 4: st = t.read_int64().status; break;
        case 5: st = t.read_float().status; break;
        case 6: st = t.read_double().status; break;
        case 7: st = t.read_char().status; break;
        case 8: st = t.read_string().status; break;
        default: st = t.read_bytes().status; break;
      }
      Value p1, p2;
      const bool h1 = t.peek(p1);
      const StreamReader& want = (st == ConvertStatus::Ok || st == ConvertStatus::Null) ? after : s;
      const bool h2 = want.peek(p2);
      FUZZ_CHECK(h1 == h2 && (!h1 || same_value(p1, p2)));
      FUZZ_CHECK(t.at_end() == want.at_end());
    }
    // Advance with a rotating kind of read, falling back to next() when it does not fit.
    StreamReader t = s;
    const unsigned kind = k++ % 3;
    const auto st = kind == 0 ? t.read_string().status : kind == 1 ? t.read_int64().status : t.read_double().status;
    s = (st == ConvertStatus::Ok || st == ConvertStatus::Null) ? t : after;
    ++seen;
    FUZZ_CHECK(seen <= items);
  }
  FUZZ_CHECK(seen == items && s.at_end());
  return h ^ items;
}

std::string expected_id(MessageId id) {
  if (id.is_null()) return {};
  static const char hex[] = "0123456789abcdef";
  std::string s = "ID:";
  for (std::uint64_t w : {id.hi, id.lo})
    for (int i = 60; i >= 0; i -= 4) s.push_back(hex[(w >> i) & 15]);
  return s;
}

/// get(): the JMS header names, and properties for every other name.
void check_get(const FrameReader& r) {
  auto str = [](bool has, std::string_view s) { return has ? Value::string(s) : Value::null(); };
  FUZZ_CHECK(same_value(r.get("JMSPriority"), Value::int32(r.priority())));
  FUZZ_CHECK(same_value(r.get("JMSTimestamp"), Value::int64(r.timestamp_ns() / 1'000'000)));
  FUZZ_CHECK(same_value(r.get("JMSExpiration"), Value::int64(r.expiration_ns() / 1'000'000)));
  FUZZ_CHECK(same_value(r.get("JMSDeliveryTime"), Value::int64(r.delivery_time_ns() / 1'000'000)));
  FUZZ_CHECK(same_value(r.get("JMSDeliveryMode"),
                        Value::string(r.delivery_mode() == DeliveryMode::Persistent ? "PERSISTENT" : "NON_PERSISTENT")));
  FUZZ_CHECK(same_value(r.get("JMSCorrelationID"), str(r.has_correlation_id(), r.correlation_id())));
  FUZZ_CHECK(same_value(r.get("JMSType"), str(r.has_type(), r.type())));
  FUZZ_CHECK(same_value(r.get("JMSReplyTo"), str(r.has_reply_to(), r.reply_to())));
  FUZZ_CHECK(same_value(r.get("JMSDestination"), str(r.has_destination(), r.destination())));
  FUZZ_CHECK(same_value(r.get("JMSMessageID"),
                        r.message_id().is_null() ? Value::null() : Value::string(r.message_id_string())));
  FUZZ_CHECK(same_value(r.get("JMSRedelivered"), Value::boolean(r.redelivered())));
  FUZZ_CHECK(same_value(r.get("JMSXDeliveryCount"),
                        Value::int32(static_cast<std::int32_t>(std::min<std::uint32_t>(r.delivery_count(), INT32_MAX)))));
  // Not header names: plain property lookups.
  for (std::string_view n : {"", "J", "JMS", "JMSX", "JMS_", "JMSP", "JMSx", "JMSXGroupID", "JMSPriority2",
                             "jmsPriority", "JMSTimestampX", "price", "region"})
    FUZZ_CHECK(same_value(r.get(n), r.property(n)));
  for (const Entry e : r.properties()) {
    FUZZ_CHECK(same_value(r.get(e.name), e.value));
    FUZZ_CHECK(same_value(r.property(e.name), e.value));
    sink(static_cast<std::uint64_t>(r.get_int64(e.name).value) ^ static_cast<std::uint64_t>(r.get_bool(e.name).value) ^
         touch(r.get_string(e.name).view()) ^ static_cast<std::uint64_t>(r.get_double(e.name).status));
  }
}

/// Every accessor of an opened reader over `frame`.
void check_reader(const FrameReader& r, const Bounds& frame) {
  FUZZ_CHECK(r.valid());
  FUZZ_CHECK(r.frame_length() >= kFrameHeaderSize && r.frame_length() <= frame.hi - frame.lo);
  const Bounds in{frame.lo, frame.lo + r.frame_length()};
  FUZZ_CHECK(static_cast<std::uint8_t>(r.body_type()) <= 5);
  FUZZ_CHECK(r.priority() >= 0 && r.priority() <= 9);
  FUZZ_CHECK(r.delivery_mode() == DeliveryMode::Persistent || r.delivery_mode() == DeliveryMode::NonPersistent);
  FUZZ_CHECK(r.message_id_string() == expected_id(r.message_id()));

  std::uint64_t h = 0;
  const std::pair<bool, std::string_view> strings[] = {{r.has_correlation_id(), r.correlation_id()},
                                                       {r.has_type(), r.type()},
                                                       {r.has_reply_to(), r.reply_to()},
                                                       {r.has_destination(), r.destination()}};
  for (const auto& [has, s] : strings) {
    if (!has) FUZZ_CHECK(s.data() == nullptr && s.empty());
    FUZZ_CHECK(in.holds(s) && valid_utf8(s));
    h ^= touch(s);
  }

  h ^= check_table(r.properties(), true, in);
  check_get(r);

  const auto body = r.body();
  FUZZ_CHECK(in.holds(body));
  h ^= touch(body);
  const BodyType bt = r.body_type();
  if (bt == BodyType::None) FUZZ_CHECK(body.empty());

  const std::string_view text = r.text();
  if (bt == BodyType::Text) {
    FUZZ_CHECK(text.size() == body.size() && (text.empty() || text.data() == reinterpret_cast<const char*>(body.data())));
    FUZZ_CHECK(valid_utf8(text));
  } else {
    FUZZ_CHECK(text.empty());
  }

  const TableReader map = r.map();
  if (bt != BodyType::Map) FUZZ_CHECK(map.empty());
  h ^= check_table(map, false, in);

  const StreamReader stream = r.stream();
  if (bt != BodyType::Stream) FUZZ_CHECK(stream.at_end());
  h ^= check_stream(stream, body.size(), in);

  const std::string_view otype = r.object_type();
  const auto odata = r.object_data();
  if (bt == BodyType::Object) {
    FUZZ_CHECK(4 + otype.size() + odata.size() == body.size());
    FUZZ_CHECK(valid_utf8(otype) && in.holds(otype) && in.holds(odata));
    FUZZ_CHECK(odata.empty() || odata.data() + odata.size() == body.data() + body.size());
  } else {
    FUZZ_CHECK(otype.empty() && odata.empty());
  }
  h ^= touch(otype) ^ touch(odata);
  sink(h);
}

// --- re-encoding ---------------------------------------------------------------------------------

std::size_t value_size(const Value& v) {
  const int fixed = value_fixed_size(static_cast<std::uint8_t>(v.type));
  return fixed >= 0 ? static_cast<std::size_t>(fixed) : 4 + v.s.size();
}

/// Bytes a table takes when written: entries, up to 3 bytes of alignment pad, index, count.
std::size_t table_size(const TableReader& t) {
  std::size_t n = 3 + 4 * t.size() + kTableTrailer;
  for (const Entry e : t) n += kEntryFixed + e.name.size() + value_size(e.value);
  return n;
}

/// The largest size the writer may need for what `r` holds, and how much of it is pad.
std::size_t encoded_bound(const FrameReader& r, std::size_t& pad) {
  std::size_t n = kFrameHeaderSize;
  pad = 0;
  n += r.correlation_id().size() + r.type().size() + r.reply_to().size() + r.destination().size();
  if (!r.properties().empty()) {
    n += table_size(r.properties());
    pad += 3;
  }
  switch (r.body_type()) {
    case BodyType::None: break;
    case BodyType::Text: case BodyType::Bytes: n += r.body().size(); break;
    case BodyType::Object: n += 4 + r.object_type().size() + r.object_data().size(); break;
    case BodyType::Map:
      n += table_size(r.map());
      pad += 3;
      break;
    case BodyType::Stream: {
      StreamReader s = r.stream();
      Value v;
      while (s.next(v)) n += 1 + value_size(v);
      break;
    }
  }
  return n;
}

/// Writes what `r` holds with FrameWriter into a fresh buffer of exactly the bound; returns it.
Exact encode(const FrameReader& r) {
  std::size_t pad = 0;
  const std::size_t bound = encoded_bound(r, pad);
  std::unique_ptr<std::byte[]> mem(new std::byte[bound]);
  FrameWriter w({mem.get(), bound});
  w.set_message_id(r.message_id());
  w.set_timestamp_ns(r.timestamp_ns());
  w.set_expiration_ns(r.expiration_ns());
  w.set_delivery_time_ns(r.delivery_time_ns());
  w.set_delivery_count(r.delivery_count());
  w.set_redelivered(r.redelivered());
  FUZZ_CHECK(w.set_priority(r.priority()) == FrameStatus::Ok);
  FUZZ_CHECK(w.set_delivery_mode(r.delivery_mode()) == FrameStatus::Ok);
  if (r.has_correlation_id()) FUZZ_CHECK(w.set_correlation_id(r.correlation_id()) == FrameStatus::Ok);
  if (r.has_type()) FUZZ_CHECK(w.set_type(r.type()) == FrameStatus::Ok);
  if (r.has_reply_to()) FUZZ_CHECK(w.set_reply_to(r.reply_to()) == FrameStatus::Ok);
  if (r.has_destination()) FUZZ_CHECK(w.set_destination(r.destination()) == FrameStatus::Ok);
  for (const Entry e : r.properties()) FUZZ_CHECK(w.add_property(e.name, e.value) == FrameStatus::Ok);
  switch (r.body_type()) {
    case BodyType::None: break;
    case BodyType::Text: FUZZ_CHECK(w.set_text(r.text()) == FrameStatus::Ok); break;
    case BodyType::Bytes: FUZZ_CHECK(w.set_bytes(r.body()) == FrameStatus::Ok); break;
    case BodyType::Object: FUZZ_CHECK(w.set_object(r.object_type(), r.object_data()) == FrameStatus::Ok); break;
    case BodyType::Map:
      FUZZ_CHECK(w.begin_map() == FrameStatus::Ok);
      for (const Entry e : r.map()) FUZZ_CHECK(w.add_map_entry(e.name, e.value) == FrameStatus::Ok);
      break;
    case BodyType::Stream: {
      FUZZ_CHECK(w.begin_stream() == FrameStatus::Ok);
      StreamReader s = r.stream();
      Value v;
      while (s.next(v)) FUZZ_CHECK(w.add_stream_value(v) == FrameStatus::Ok);
      break;
    }
  }
  FUZZ_CHECK(w.finish() == FrameStatus::Ok);
  FUZZ_CHECK(w.size() <= bound && w.size() + pad >= bound);
  return Exact(mem.get(), w.size());
}

bool same_table(const TableReader& a, const TableReader& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Entry x = a.at(i), y = b.at(i);
    if (x.name != y.name || !same_value(x.value, y.value)) return false;
  }
  return true;
}

bool same_stream(StreamReader a, StreamReader b) {
  Value x, y;
  for (;;) {
    const bool ha = a.next(x), hb = b.next(y);
    if (ha != hb) return false;
    if (!ha) return true;
    if (!same_value(x, y)) return false;
  }
}

std::string_view chars(std::span<const std::byte> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

/// Everything a reader tells, equal between the original and the re-encoded frame.
void check_same(const FrameReader& a, const FrameReader& b) {
  FUZZ_CHECK(a.message_id() == b.message_id() && a.message_id_string() == b.message_id_string());
  FUZZ_CHECK(a.timestamp_ns() == b.timestamp_ns() && a.expiration_ns() == b.expiration_ns() &&
             a.delivery_time_ns() == b.delivery_time_ns() && a.delivery_count() == b.delivery_count());
  FUZZ_CHECK(a.priority() == b.priority() && a.delivery_mode() == b.delivery_mode() && a.redelivered() == b.redelivered());
  FUZZ_CHECK(a.has_correlation_id() == b.has_correlation_id() && a.correlation_id() == b.correlation_id());
  FUZZ_CHECK(a.has_type() == b.has_type() && a.type() == b.type());
  FUZZ_CHECK(a.has_reply_to() == b.has_reply_to() && a.reply_to() == b.reply_to());
  FUZZ_CHECK(a.has_destination() == b.has_destination() && a.destination() == b.destination());
  FUZZ_CHECK(same_table(a.properties(), b.properties()));
  FUZZ_CHECK(a.body_type() == b.body_type());
  switch (a.body_type()) {
    case BodyType::None: FUZZ_CHECK(b.body().empty()); break;
    case BodyType::Text: FUZZ_CHECK(a.text() == b.text()); break;
    case BodyType::Bytes: FUZZ_CHECK(chars(a.body()) == chars(b.body())); break;
    case BodyType::Map: FUZZ_CHECK(same_table(a.map(), b.map())); break;
    case BodyType::Stream: FUZZ_CHECK(same_stream(a.stream(), b.stream())); break;
    case BodyType::Object:
      FUZZ_CHECK(a.object_type() == b.object_type() && chars(a.object_data()) == chars(b.object_data()));
      break;
  }
}

Bounds bounds_of(std::span<const std::byte> s) {
  const auto lo = reinterpret_cast<std::uintptr_t>(s.data());
  return {lo, lo + s.size()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Exact in(data, size);
  check_rules({reinterpret_cast<const char*>(in.span().data()), size});
  FrameReader r;
  const DecodeStatus st = r.open(in.span());
  sink(reinterpret_cast<std::uintptr_t>(to_string(st)));
  if (st != DecodeStatus::Ok) {
    FUZZ_CHECK(!r.valid());
    return 0;
  }
  check_reader(r, bounds_of(in.span()));

  // Re-encode, re-open, compare; a second re-encode must give the same bytes (one canonical form).
  const Exact again = encode(r);
  FrameReader r2;
  FUZZ_CHECK(r2.open(again.span()) == DecodeStatus::Ok);
  FUZZ_CHECK(r2.frame_length() == again.size());
  check_reader(r2, bounds_of(again.span()));
  check_same(r, r2);
  const Exact third = encode(r2);
  FUZZ_CHECK(third.size() == again.size() && std::memcmp(third.span().data(), again.span().data(), again.size()) == 0);
  return 0;
}
