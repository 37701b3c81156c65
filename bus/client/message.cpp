// The message model's client side: outgoing message classes, the serializer registry, the
// BytesMessage reader and the received Message's accessors (include/shmbus/message.hpp).
#include "shmbus/shmbus.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

namespace shmbus {

using message::FrameStatus;

const char* to_string(BodyType t) noexcept {
  switch (t) {
    case BodyType::None: return "none";
    case BodyType::Text: return "text";
    case BodyType::Bytes: return "bytes";
    case BodyType::Map: return "map";
    case BodyType::Stream: return "stream";
    case BodyType::Object: return "object";
  }
  return "unknown";
}

const char* to_string(DeliveryMode m) noexcept {
  return m == DeliveryMode::Persistent ? "PERSISTENT" : "NON_PERSISTENT";
}

namespace {

void require_utf8(std::string_view s, const char* what) {
  if (!message::valid_utf8(s))
    throw Error(ErrorCode::InvalidArgument, std::string(what) + " is not valid UTF-8 (RFC 3629)");
}

void check_value(const Value& v, const char* what) {
  if (v.type == ValueType::String) require_utf8(v.s, what);
  if (v.type > ValueType::Char) throw Error(ErrorCode::InvalidArgument, std::string(what) + " has an unknown value type");
  if ((v.type == ValueType::String || v.type == ValueType::Bytes) && v.s.size() > message::kMaxFrameSize - 1024)
    throw Error(ErrorCode::InvalidArgument, std::string(what) + " is larger than a frame can hold");
}

/// Replaces the entry named `name` or appends it.
void upsert(std::vector<std::pair<std::string, OwnedValue>>& v, std::string_view name, const Value& val) {
  for (auto& [n, o] : v) {
    if (n == name) {
      o = OwnedValue::of(val);
      return;
    }
  }
  v.emplace_back(std::string(name), OwnedValue::of(val));
}

Value find(const std::vector<std::pair<std::string, OwnedValue>>& v, std::string_view name) noexcept {
  for (const auto& [n, o] : v)
    if (n == name) return o.view();
  return {};
}

/// Bytes a value takes in a frame (docs/message-frame.md): fixed, or a u32 length and the bytes.
std::size_t value_size(const OwnedValue& v) noexcept {
  const int fixed = message::value_fixed_size(static_cast<std::uint8_t>(v.type));
  return fixed >= 0 ? static_cast<std::size_t>(fixed) : 4 + v.s.size();
}
/// A name -> value table: entries {u16, u8, name, value}, up to 3 bytes of alignment pad, the
/// u32 index and the u32 count.
std::size_t table_size(const std::vector<std::pair<std::string, OwnedValue>>& t) noexcept {
  std::size_t n = 3 + 4 + 4 * t.size();
  for (const auto& [k, v] : t) n += 3 + k.size() + value_size(v);
  return n;
}

}  // namespace

// ------------------------------------------------------------------ OutgoingMessage

void OutgoingMessage::set_correlation_id(std::string_view id) {
  require_utf8(id, "the correlation id");
  correlation_id_.assign(id);
}

void OutgoingMessage::set_type(std::string_view type) {
  require_utf8(type, "the message type");
  type_.assign(type);
}

void OutgoingMessage::set_reply_to(const Destination& d) { reply_to_ = d.uri(); }

void OutgoingMessage::set_reply_to(std::string_view uri) {
  if (uri.empty()) {
    reply_to_.clear();
    return;
  }
  reply_to_ = Destination::parse(uri).uri();  // throws BadDestination with the reason
}

void OutgoingMessage::set_property(std::string_view name, const Value& v) {
  if (!message::valid_property_name(name))
    throw Error(ErrorCode::InvalidArgument,
                "property name '" + std::string(name) +
                    "' is not allowed: it must be a selector identifier (a letter, '_' or '$' first, then "
                    "letters, digits, '_' or '$'), not a selector keyword (NULL, TRUE, FALSE, NOT, AND, OR, "
                    "BETWEEN, LIKE, IN, IS, ESCAPE) and not start with JMS (except JMSX and JMS_)");
  if (v.type == ValueType::Bytes || v.type == ValueType::Char || v.type == ValueType::Null)
    throw Error(ErrorCode::InvalidArgument, "property '" + std::string(name) +
                                                "': JMS properties are boolean, byte, short, int, long, float, "
                                                "double or String (not bytes, char or null)");
  check_value(v, "a string property");
  if (props_.size() >= message::kMaxProperties && !property_exists(name))
    throw Error(ErrorCode::InvalidArgument, "more than " + std::to_string(message::kMaxProperties) + " properties");
  upsert(props_, name, v);
}

Value OutgoingMessage::property(std::string_view name) const noexcept { return find(props_, name); }

std::size_t OutgoingMessage::encoded_size_hint() const noexcept {
  const std::size_t n = message::kFrameHeaderSize + correlation_id_.size() + type_.size() + reply_to_.size();
  return n + (props_.empty() ? 0 : table_size(props_)) + body_size_hint();
}

message::FrameStatus OutgoingMessage::encode(message::FrameWriter& w) const noexcept {
  if (!correlation_id_.empty()) w.set_correlation_id(correlation_id_);
  if (!type_.empty()) w.set_type(type_);
  if (!reply_to_.empty()) w.set_reply_to(reply_to_);
  for (const auto& [k, v] : props_) w.add_property(k, v.view());
  encode_body(w);
  return w.finish();
}

// ------------------------------------------------------------------ bodies

void TextMessage::set_text(std::string_view text) {
  require_utf8(text, "the text");
  text_.assign(text);
}

void BytesMessage::put_int(std::int64_t v, int n) {
  std::byte b[8];
  std::memcpy(b, &v, 8);  // little-endian host (static_assert in frame.hpp)
  data_.insert(data_.end(), b, b + n);
}

void BytesMessage::write_float(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  put_int(u, 4);
}

void BytesMessage::write_double(double v) {
  std::int64_t u;
  std::memcpy(&u, &v, 8);
  put_int(u, 8);
}

void BytesMessage::write_string(std::string_view utf8) {
  require_utf8(utf8, "the string");
  if (utf8.size() > 0xFFFF'FFFFu) throw Error(ErrorCode::InvalidArgument, "string longer than 4 GiB");
  put_int(static_cast<std::int64_t>(utf8.size()), 4);
  write_bytes(utf8);
}

void MapMessage::set(std::string_view name, const Value& v) {
  if (name.empty() || name.size() > message::kMaxNameLength)
    throw Error(ErrorCode::InvalidArgument, "a map entry name must be 1-65535 bytes of UTF-8");
  require_utf8(name, "the map entry name");
  check_value(v, "a map string");
  if (entries_.size() >= message::kMaxMapEntries && !item_exists(name))
    throw Error(ErrorCode::InvalidArgument, "more than " + std::to_string(message::kMaxMapEntries) + " map entries");
  upsert(entries_, name, v);
}

Value MapMessage::get(std::string_view name) const noexcept { return find(entries_, name); }

message::FrameStatus MapMessage::encode_body(message::FrameWriter& w) const noexcept {
  w.begin_map();
  for (const auto& [k, v] : entries_) w.add_map_entry(k, v.view());
  return w.status();
}

std::size_t MapMessage::body_size_hint() const noexcept { return table_size(entries_); }

void StreamMessage::write(const Value& v) {
  check_value(v, "a stream string");
  values_.push_back(OwnedValue::of(v));
}

message::FrameStatus StreamMessage::encode_body(message::FrameWriter& w) const noexcept {
  w.begin_stream();
  for (const auto& v : values_) w.add_stream_value(v.view());
  return w.status();
}

std::size_t StreamMessage::body_size_hint() const noexcept {
  std::size_t n = 0;
  for (const auto& v : values_) n += 1 + value_size(v);
  return n;
}

// ------------------------------------------------------------------ serializers

namespace {
struct Registry {
  std::mutex mu;
  std::map<std::type_index, std::pair<std::string, std::pair<Serializers::Encode, Serializers::Decode>>> by_type;
  std::map<std::string, std::type_index, std::less<>> by_name;
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

void Serializers::add_erased(std::type_index t, std::string_view name, Encode e, Decode d) {
  if (name.empty() || name.size() > 255 || !message::valid_utf8(name))
    throw Error(ErrorCode::InvalidArgument, "a serializer type name must be 1-255 bytes of UTF-8");
  if (!e || !d) throw Error(ErrorCode::InvalidArgument, "a serializer needs both an encoder and a decoder");
  auto& r = registry();
  std::lock_guard lock(r.mu);
  if (auto it = r.by_name.find(name); it != r.by_name.end() && it->second != t)
    throw Error(ErrorCode::InvalidArgument, "serializer type name '" + std::string(name) + "' is already registered for another type");
  if (auto it = r.by_type.find(t); it != r.by_type.end() && it->second.first != name)
    throw Error(ErrorCode::InvalidArgument, "this type already has a serializer, named '" + it->second.first + "'");
  r.by_type.insert_or_assign(t, std::make_pair(std::string(name), std::make_pair(std::move(e), std::move(d))));
  r.by_name.insert_or_assign(std::string(name), t);
}

std::pair<std::string, std::pair<Serializers::Encode, Serializers::Decode>> Serializers::lookup(std::type_index t) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.by_type.find(t);
  if (it == r.by_type.end())
    throw Error(ErrorCode::InvalidArgument, std::string("no serializer is registered for this type (") + t.name() +
                                                "): register one with shmbus::Serializers::add<T>(name, encode, decode)");
  return it->second;
}

// ------------------------------------------------------------------ BytesReader

bool BytesReader::take(void* p, std::size_t n) noexcept {
  if (remaining() < n) return false;
  std::memcpy(p, b_.data() + pos_, n);
  pos_ += n;
  return true;
}

namespace {
template <class T>
Converted<T> got(bool ok, T v) noexcept {
  Converted<T> r;
  r.value = ok ? v : T{};
  r.status = ok ? ConvertStatus::Ok : ConvertStatus::TypeMismatch;
  return r;
}
}  // namespace

Converted<bool> BytesReader::read_bool() noexcept {
  std::uint8_t v = 0;
  const bool ok = take(&v, 1);
  return got(ok, v != 0);
}
Converted<std::int8_t> BytesReader::read_byte() noexcept {
  std::int8_t v = 0;
  const bool ok = take(&v, 1);
  return got(ok, v);
}
Converted<std::int16_t> BytesReader::read_short() noexcept {
  std::int16_t v = 0;
  const bool ok = take(&v, 2);
  return got(ok, v);
}
Converted<char16_t> BytesReader::read_char() noexcept {
  char16_t v = 0;
  const bool ok = take(&v, 2);
  return got(ok, v);
}
Converted<std::int32_t> BytesReader::read_int() noexcept {
  std::int32_t v = 0;
  const bool ok = take(&v, 4);
  return got(ok, v);
}
Converted<std::int64_t> BytesReader::read_long() noexcept {
  std::int64_t v = 0;
  const bool ok = take(&v, 8);
  return got(ok, v);
}
Converted<float> BytesReader::read_float() noexcept {
  float v = 0;
  const bool ok = take(&v, 4);
  return got(ok, v);
}
Converted<double> BytesReader::read_double() noexcept {
  double v = 0;
  const bool ok = take(&v, 8);
  return got(ok, v);
}
Converted<std::string_view> BytesReader::read_string() noexcept {
  const std::size_t start = pos_;
  std::uint32_t n = 0;
  Converted<std::string_view> r;
  r.status = ConvertStatus::TypeMismatch;
  if (!take(&n, 4)) return r;
  if (remaining() < n) {
    pos_ = start;  // JMS: a failed read does not move
    return r;
  }
  const std::string_view s(reinterpret_cast<const char*>(b_.data() + pos_), n);
  if (!message::valid_utf8(s)) {
    pos_ = start;
    r.status = ConvertStatus::NumberFormat;
    return r;
  }
  pos_ += n;
  r.value = s;
  r.status = ConvertStatus::Ok;
  return r;
}
std::span<const std::byte> BytesReader::read_bytes(std::size_t n) noexcept {
  n = std::min(n, remaining());
  auto out = b_.subspan(pos_, n);
  pos_ += n;
  return out;
}

// ------------------------------------------------------------------ received Message

std::string_view Message::text() const noexcept {
  if (!framed_) return {reinterpret_cast<const char*>(data_), size_};
  return frame_.text();
}

BytesReader Message::bytes_reader() const noexcept {
  if (body_type() != BodyType::Bytes) return {};
  return BytesReader(body());
}

message::MessageId Message::message_id() const noexcept {
  if (framed_) return frame_.message_id();
  return incarnation_ == 0 ? message::MessageId{} : message::MessageId{incarnation_, producer_seq_};
}

std::string Message::message_id_string() const {
  const auto id = message_id();
  if (id.is_null()) return {};
  char buf[40];
  std::snprintf(buf, sizeof buf, "ID:%016llx%016llx", static_cast<unsigned long long>(id.hi),
                static_cast<unsigned long long>(id.lo));
  return buf;
}

bool Message::set_payload(const std::byte* data, std::size_t len, bool framed) noexcept {
  data_ = data;
  size_ = len;
  framed_ = framed;
  return !framed || frame_.open({data, len}) == message::DecodeStatus::Ok;
}

void Message::check_object_type(std::string_view registered) const {
  if (body_type() != BodyType::Object)
    throw Error(ErrorCode::InvalidArgument, std::string("object(): this is a ") + to_string(body_type()) + " message, not an object message");
  if (frame_.object_type() != registered)
    throw Error(ErrorCode::InvalidArgument, "object(): the message holds a '" + std::string(frame_.object_type()) +
                                                "', not a '" + std::string(registered) + "'; nothing was decoded");
}

Value Message::get(std::string_view name) const noexcept {
  // The fields that live in the ring slot rather than in the frame (or that a raw payload has).
  if (name.size() > 3 && name.starts_with("JMS")) {
    const std::string_view n = name.substr(3);
    if (n == "Priority") return Value::int32(priority_);
    if (n == "Redelivered") return Value::boolean(redelivered_);
    if (n == "XDeliveryCount") return Value::int32(static_cast<std::int32_t>(std::max<std::uint32_t>(delivery_count_, 1)));
    if (n == "Timestamp") return Value::int64(timestamp_ns_ / 1'000'000);
    if (n == "Expiration") return Value::int64(expiration_ns_ / 1'000'000);
    if (!framed_) {
      if (n == "DeliveryMode") return Value::string("NON_PERSISTENT");
      if (n == "DeliveryTime") return Value::int64(0);
      return {};  // JMSMessageID of a raw payload: not selectable (it has no frame to point into)
    }
  }
  return framed_ ? frame_.get(name) : Value{};
}

}  // namespace shmbus
