#include "cli/message_args.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>
#include <type_traits>

namespace shmbus::cli {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

/// [+-]?[0-9]+
bool is_integer(std::string_view s) {
  std::size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (!is_digit(s[i])) return false;
  return true;
}

/// [+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?  — an integer is one too.
/// `fractional` tells whether it has a '.' or an exponent.
bool is_decimal(std::string_view s, bool& fractional) {
  fractional = false;
  std::size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  std::size_t digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    fractional = true;
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    fractional = true;
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    std::size_t exp_digits = 0;
    while (i < s.size() && is_digit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

/// from_chars takes no leading '+'.
std::string_view unplus(std::string_view s) { return !s.empty() && s[0] == '+' ? s.substr(1) : s; }

template <class T>
bool parse_integral(std::string_view text, const char* type, std::int64_t lo, std::int64_t hi, OwnedValue& out,
                    std::string& err) {
  if (!is_integer(text)) {
    err = "'" + std::string(text) + "' is not a valid " + type + " (a decimal integer from " + std::to_string(lo) + " to " +
          std::to_string(hi) + ")";
    return false;
  }
  const auto s = unplus(text);
  std::int64_t n = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), n);
  if (r.ec != std::errc{} || n < lo || n > hi) {
    err = "'" + std::string(text) + "' is out of range for " + type + " (" + std::to_string(lo) + " to " +
          std::to_string(hi) + ")";
    return false;
  }
  if constexpr (std::is_same_v<T, std::int8_t>) out = OwnedValue::of(Value::int8(static_cast<std::int8_t>(n)));
  else if constexpr (std::is_same_v<T, std::int16_t>) out = OwnedValue::of(Value::int16(static_cast<std::int16_t>(n)));
  else if constexpr (std::is_same_v<T, std::int32_t>) out = OwnedValue::of(Value::int32(static_cast<std::int32_t>(n)));
  else out = OwnedValue::of(Value::int64(n));
  return true;
}

template <class F>
bool parse_floating(std::string_view text, const char* type, const char* range, OwnedValue& out, std::string& err) {
  bool fractional = false;
  if (!is_decimal(text, fractional)) {
    err = "'" + std::string(text) + "' is not a valid " + type + " (a decimal number such as 2.5, -3, 1e-9)";
    return false;
  }
  const auto s = unplus(text);
  F v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) {
    err = "'" + std::string(text) + "' is out of range for " + type + " (" + range + ")";
    return false;
  }
  if constexpr (std::is_same_v<F, float>) out = OwnedValue::of(Value::float32(v));
  else out = OwnedValue::of(Value::float64(v));
  return true;
}

}  // namespace

std::optional<BodyKind> parse_body_kind(std::string_view s) {
  if (s == "text") return BodyKind::Text;
  if (s == "bytes") return BodyKind::Bytes;
  if (s == "map") return BodyKind::Map;
  if (s == "stream") return BodyKind::Stream;
  return std::nullopt;
}

bool parse_typed_value(std::string_view type, std::string_view text, OwnedValue& out, std::string& err) {
  constexpr const char* kDoubleRange = "magnitude 4.9E-324 to 1.7976931348623157E308, or 0";
  constexpr const char* kFloatRange = "magnitude 1.4E-45 to 3.4028235E38, or 0";
  if (type.empty()) {
    if (text == "true" || text == "false") {
      out = OwnedValue::of(Value::boolean(text == "true"));
      return true;
    }
    if (is_integer(text))
      return parse_integral<std::int64_t>(text, "long", std::numeric_limits<std::int64_t>::min(),
                                          std::numeric_limits<std::int64_t>::max(), out, err);
    bool fractional = false;
    if (is_decimal(text, fractional) && fractional) return parse_floating<double>(text, "double", kDoubleRange, out, err);
    out = OwnedValue{ValueType::String, 0, 0, std::string(text)};
    return true;
  }
  if (type == "string") {
    out = OwnedValue{ValueType::String, 0, 0, std::string(text)};
    return true;
  }
  if (type == "bool") {
    if (text != "true" && text != "false") {
      err = "'" + std::string(text) + "' is not a valid bool (true or false)";
      return false;
    }
    out = OwnedValue::of(Value::boolean(text == "true"));
    return true;
  }
  if (type == "byte") return parse_integral<std::int8_t>(text, "byte", -128, 127, out, err);
  if (type == "short") return parse_integral<std::int16_t>(text, "short", -32768, 32767, out, err);
  if (type == "int")
    return parse_integral<std::int32_t>(text, "int", std::numeric_limits<std::int32_t>::min(),
                                        std::numeric_limits<std::int32_t>::max(), out, err);
  if (type == "long")
    return parse_integral<std::int64_t>(text, "long", std::numeric_limits<std::int64_t>::min(),
                                        std::numeric_limits<std::int64_t>::max(), out, err);
  if (type == "float") return parse_floating<float>(text, "float", kFloatRange, out, err);
  if (type == "double") return parse_floating<double>(text, "double", kDoubleRange, out, err);
  err = "unknown type '" + std::string(type) + "' (bool, byte, short, int, long, float, double or string)";
  return false;
}

bool parse_assignment(std::string_view token, std::string& name, OwnedValue& out, std::string& err) {
  const auto eq = token.find('=');
  if (eq == std::string_view::npos) {
    err = "needs NAME=VALUE or NAME:TYPE=VALUE";
    return false;
  }
  std::string_view key = token.substr(0, eq);
  std::string_view type;
  if (const auto colon = key.find(':'); colon != std::string_view::npos) {
    type = key.substr(colon + 1);
    key = key.substr(0, colon);
  }
  if (key.empty()) {
    err = "needs a name before the '" + std::string(type.empty() ? "=" : ":") + "'";
    return false;
  }
  if (!parse_typed_value(type, token.substr(eq + 1), out, err)) return false;
  name.assign(key);
  return true;
}

bool parse_stream_item(std::string_view token, OwnedValue& out, std::string& err) {
  if (token.empty() || token[0] != ':') return parse_typed_value({}, token, out, err);
  const auto eq = token.find('=');
  if (eq == std::string_view::npos) {
    err = "'" + std::string(token) + "': a value starting with ':' is :TYPE=VALUE (write :string=" +
          std::string(token) + " for that text)";
    return false;
  }
  return parse_typed_value(token.substr(1, eq - 1), token.substr(eq + 1), out, err);
}

bool set_body(BodyKind kind, OutgoingMessage& m, std::string_view line, std::string& err) {
  try {
    switch (kind) {
      case BodyKind::Text: static_cast<TextMessage&>(m).set_text(line); return true;
      case BodyKind::Bytes: {
        auto& b = static_cast<BytesMessage&>(m);
        b.clear_body();
        b.write_bytes(line);
        return true;
      }
      case BodyKind::Map:
      case BodyKind::Stream: break;
    }
    if (kind == BodyKind::Map) static_cast<MapMessage&>(m).clear_body();
    else static_cast<StreamMessage&>(m).clear_body();
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_blank(line[i])) ++i;
      const std::size_t from = i;
      while (i < line.size() && !is_blank(line[i])) ++i;
      if (from == i) break;
      const auto token = line.substr(from, i - from);
      OwnedValue v;
      if (kind == BodyKind::Map) {
        std::string name;
        if (!parse_assignment(token, name, v, err)) {
          err = "map entry '" + std::string(token) + "': " + err;
          return false;
        }
        static_cast<MapMessage&>(m).set(name, v.view());
      } else {
        if (!parse_stream_item(token, v, err)) {
          err = "stream value: " + err;
          return false;
        }
        static_cast<StreamMessage&>(m).write(v.view());
      }
    }
    return true;
  } catch (const Error& e) {
    err = e.what();
    return false;
  }
}

const char* type_name(ValueType t) noexcept {
  switch (t) {
    case ValueType::Null: return "null";
    case ValueType::Bool: return "bool";
    case ValueType::Int8: return "byte";
    case ValueType::Int16: return "short";
    case ValueType::Int32: return "int";
    case ValueType::Int64: return "long";
    case ValueType::Float: return "float";
    case ValueType::Double: return "double";
    case ValueType::String: return "string";
    case ValueType::Bytes: return "bytes";
    case ValueType::Char: return "char";
  }
  return "unknown";
}

std::string format_value(const Value& v) {
  switch (v.type) {
    case ValueType::Null: return "null";
    case ValueType::String: return std::string(v.s);
    case ValueType::Bytes: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out = "0x";
      for (unsigned char c : v.s) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
      return out;
    }
    default: break;
  }
  const auto s = message::as_string(v);
  return s.ok() ? std::string(s.view()) : std::string("?");
}

std::string format_body(const Message& m) {
  const auto raw = [](std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); };
  if (!m.framed()) return raw(m.body());
  switch (m.body_type()) {
    case BodyType::Text: return std::string(m.text());
    case BodyType::Bytes: return raw(m.body());
    case BodyType::Map: {
      std::string out = "{";
      bool first = true;
      for (const auto e : m.map()) {
        if (!first) out += ", ";
        first = false;
        out.append(e.name);
        out += '=';
        out += format_value(e.value);
      }
      return out + "}";
    }
    case BodyType::Stream: {
      std::string out = "[";
      auto s = m.stream();
      Value v;
      for (bool first = true; s.next(v); first = false) {
        if (!first) out += ", ";
        out += format_value(v);
      }
      return out + "]";
    }
    case BodyType::Object: {
      const auto name = m.object_type();
      const std::size_t data = m.body().size() >= 4 + name.size() ? m.body().size() - 4 - name.size() : 0;
      return "(object " + std::string(name) + ", " + std::to_string(data) + " bytes)";
    }
    case BodyType::None: break;
  }
  return {};
}

namespace {

/// Milliseconds since the epoch, then the UTC time: "1712345678901 (2024-04-05T19:34:38.901Z)".
std::string epoch_ms(std::int64_t ns) {
  const std::int64_t ms = ns / 1'000'000;
  std::string out = std::to_string(ms);
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (ms > 0 && ::gmtime_r(&secs, &tm) != nullptr) {
    char b[64];
    const std::size_t n = std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms % 1000));
    out += " (" + std::string(b, n) + frac + ")";
  }
  return out;
}

}  // namespace

std::string format_headers(const Message& m, std::string_view subscribed) {
  std::string out;
  const auto line = [&out](const char* name, std::string_view value) {
    out += name;
    out += ": ";
    out.append(value);
    out += '\n';
  };
  if (const auto id = m.message_id_string(); !id.empty()) line("JMSMessageID", id);
  line("JMSTimestamp", epoch_ms(m.timestamp_ns()));
  if (!m.correlation_id().empty()) line("JMSCorrelationID", m.correlation_id());
  if (!m.type().empty()) line("JMSType", m.type());
  if (!m.reply_to().empty()) line("JMSReplyTo", m.reply_to());
  line("JMSDestination", m.destination().empty() ? subscribed : m.destination());
  line("JMSDeliveryMode", to_string(m.delivery_mode()));
  line("JMSPriority", std::to_string(m.priority()));
  line("JMSExpiration", m.expiration_ns() == 0 ? std::string("0 (never)") : epoch_ms(m.expiration_ns()));
  if (m.delivery_time_ns() != 0) line("JMSDeliveryTime", epoch_ms(m.delivery_time_ns()));
  line("JMSRedelivered", m.redelivered() ? "true" : "false");
  line("JMSXDeliveryCount", std::to_string(m.delivery_count()));
  line("BodyType", m.framed() ? to_string(m.body_type()) : "raw");
  for (const auto e : m.properties()) {
    out.append(e.name);
    out += " (";
    out += type_name(e.value.type);
    out += ") = ";
    out += format_value(e.value);
    out += '\n';
  }
  return out;
}

}  // namespace shmbus::cli
