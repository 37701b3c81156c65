/// @file message.hpp
/// @brief The JMS message model on the sending side: TextMessage, BytesMessage, MapMessage,
/// StreamMessage and ObjectMessage with their headers and typed properties, and the registry of
/// object serializers. A message object owns its data and may be sent any number of times and
/// reused: sending encodes it in place into the destination's shared memory (no allocation).
///
/// Received messages are shmbus::Message (shmbus.hpp): zero-copy views with the same accessors.
/// docs/api.md ("Messages") and docs/message-frame.md (the bytes) describe both sides.
#pragma once
#include "shmbus/error.hpp"
#include "shmbus/message/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>
#include <vector>

namespace shmbus {

class Destination;
class MessageProducer;

using message::BodyType;
using message::ConvertStatus;
using message::Converted;
using message::DeliveryMode;
using message::MapReader;
using message::StreamReader;
using message::StringConverted;
using message::Value;
using message::ValueType;

/// "text", "bytes", "map", "stream", "object", "none".
const char* to_string(BodyType t) noexcept;
/// "PERSISTENT", "NON_PERSISTENT".
const char* to_string(DeliveryMode m) noexcept;

/// A value a message owns (a property, a map entry, a stream item).
struct OwnedValue {
  ValueType type = ValueType::Null;
  std::int64_t i = 0;
  double d = 0;
  std::string s;  // String (UTF-8) or Bytes
  /// A view (valid while this OwnedValue lives unchanged).
  Value view() const noexcept { return Value{type, i, d, s}; }
  /// A copy of `v` (strings and bytes copied).
  static OwnedValue of(const Value& v) { return OwnedValue{v.type, v.i, v.d, std::string(v.s)}; }
};

/// The common part of every message sent: header fields the application sets, and typed
/// properties. Priority, time to live, delivery delay and delivery mode are the producer's
/// (ProducerOptions) or the send's (SendOptions), as in JMS; the message id and timestamp are set
/// by the send. Setters throw Error(InvalidArgument) for bad input and change nothing then.
class OutgoingMessage {
 public:
  virtual ~OutgoingMessage() = default;
  /// The body type.
  virtual BodyType body_type() const noexcept = 0;

  /// JMSCorrelationID (UTF-8; empty clears it).
  void set_correlation_id(std::string_view id);
  const std::string& correlation_id() const noexcept { return correlation_id_; }
  /// JMSType (UTF-8; empty clears it).
  void set_type(std::string_view type);
  const std::string& type() const noexcept { return type_; }
  /// JMSReplyTo: where the receiver should answer (a Queue, a Topic, or a temporary one).
  void set_reply_to(const Destination& d);
  /// JMSReplyTo as a URI ("queue://NAME" / "topic://NAME"); empty clears it.
  void set_reply_to(std::string_view uri);
  const std::string& reply_to() const noexcept { return reply_to_; }

  /// Typed properties (JMS set<Type>Property). A name is a selector identifier, not a selector
  /// keyword, not JMS-prefixed (except JMSX.. / JMS_..); a string value is UTF-8. Setting a name
  /// again replaces its value.
  void set_bool_property(std::string_view name, bool v) { set_property(name, Value::boolean(v)); }
  void set_byte_property(std::string_view name, std::int8_t v) { set_property(name, Value::int8(v)); }
  void set_short_property(std::string_view name, std::int16_t v) { set_property(name, Value::int16(v)); }
  void set_int_property(std::string_view name, std::int32_t v) { set_property(name, Value::int32(v)); }
  void set_long_property(std::string_view name, std::int64_t v) { set_property(name, Value::int64(v)); }
  void set_float_property(std::string_view name, float v) { set_property(name, Value::float32(v)); }
  void set_double_property(std::string_view name, double v) { set_property(name, Value::float64(v)); }
  void set_string_property(std::string_view name, std::string_view v) { set_property(name, Value::string(v)); }
  /// Any property type (not Bytes or Char, which JMS does not allow as properties).
  void set_property(std::string_view name, const Value& v);
  /// The property named `name` (Null when absent).
  Value property(std::string_view name) const noexcept;
  bool property_exists(std::string_view name) const noexcept { return !property(name).is_null(); }
  /// Every property, in the order set.
  const std::vector<std::pair<std::string, OwnedValue>>& properties() const noexcept { return props_; }
  void clear_properties() noexcept { props_.clear(); }

  /// Encodes headers, properties and body into `w` (the producer fills in ids and times).
  /// Used by MessageProducer::send; public for tools that write frames elsewhere (logs).
  message::FrameStatus encode(message::FrameWriter& w) const noexcept;
  /// Bytes the frame takes at most, without JMSDestination (which the producer adds): exact but
  /// for up to 3 bytes of alignment pad per table (properties, a map body).
  std::size_t encoded_size_hint() const noexcept;

 protected:
  virtual message::FrameStatus encode_body(message::FrameWriter& w) const noexcept = 0;
  virtual std::size_t body_size_hint() const noexcept = 0;

 private:
  std::string correlation_id_, type_, reply_to_;
  std::vector<std::pair<std::string, OwnedValue>> props_;
};

/// JMS TextMessage: a UTF-8 string (validated when set).
class TextMessage : public OutgoingMessage {
 public:
  TextMessage() = default;
  /// Throws Error(InvalidArgument) when `text` is not valid UTF-8.
  explicit TextMessage(std::string_view text) { set_text(text); }
  BodyType body_type() const noexcept override { return BodyType::Text; }
  /// Throws Error(InvalidArgument) when `text` is not valid UTF-8 (the body is unchanged then).
  void set_text(std::string_view text);
  const std::string& text() const noexcept { return text_; }

 protected:
  message::FrameStatus encode_body(message::FrameWriter& w) const noexcept override { return w.set_text(text_); }
  std::size_t body_size_hint() const noexcept override { return text_.size(); }

 private:
  std::string text_;
};

/// JMS BytesMessage: raw bytes, with typed writers (little-endian, fixed width; strings as a u32
/// byte length then UTF-8). Read back with Message::bytes_reader() in the same order.
class BytesMessage : public OutgoingMessage {
 public:
  BytesMessage() = default;
  explicit BytesMessage(std::span<const std::byte> data) : data_(data.begin(), data.end()) {}
  BodyType body_type() const noexcept override { return BodyType::Bytes; }
  void write_bool(bool v) { put_int(v ? 1 : 0, 1); }
  void write_byte(std::int8_t v) { put_int(v, 1); }
  void write_short(std::int16_t v) { put_int(v, 2); }
  void write_char(char16_t v) { put_int(v, 2); }
  void write_int(std::int32_t v) { put_int(v, 4); }
  void write_long(std::int64_t v) { put_int(v, 8); }
  void write_float(float v);
  void write_double(double v);
  /// A u32 byte count, then the UTF-8 bytes. Throws Error(InvalidArgument) for bad UTF-8.
  void write_string(std::string_view utf8);
  void write_bytes(std::span<const std::byte> b) { data_.insert(data_.end(), b.begin(), b.end()); }
  void write_bytes(std::string_view b) { write_bytes(std::as_bytes(std::span<const char>(b.data(), b.size()))); }
  const std::vector<std::byte>& data() const noexcept { return data_; }
  void clear_body() noexcept { data_.clear(); }

 protected:
  message::FrameStatus encode_body(message::FrameWriter& w) const noexcept override { return w.set_bytes(data_); }
  std::size_t body_size_hint() const noexcept override { return data_.size(); }

 private:
  void put_int(std::int64_t v, int n);
  std::vector<std::byte> data_;
};

/// JMS MapMessage: name -> typed value (names: non-empty UTF-8, unique; setting again replaces).
class MapMessage : public OutgoingMessage {
 public:
  BodyType body_type() const noexcept override { return BodyType::Map; }
  void set_bool(std::string_view name, bool v) { set(name, Value::boolean(v)); }
  void set_byte(std::string_view name, std::int8_t v) { set(name, Value::int8(v)); }
  void set_short(std::string_view name, std::int16_t v) { set(name, Value::int16(v)); }
  void set_char(std::string_view name, char16_t v) { set(name, Value::character(v)); }
  void set_int(std::string_view name, std::int32_t v) { set(name, Value::int32(v)); }
  void set_long(std::string_view name, std::int64_t v) { set(name, Value::int64(v)); }
  void set_float(std::string_view name, float v) { set(name, Value::float32(v)); }
  void set_double(std::string_view name, double v) { set(name, Value::float64(v)); }
  void set_string(std::string_view name, std::string_view v) { set(name, Value::string(v)); }
  void set_bytes(std::string_view name, std::span<const std::byte> v) {
    set(name, Value::bytes({reinterpret_cast<const char*>(v.data()), v.size()}));
  }
  /// Any value type. Throws Error(InvalidArgument) for a bad name or a non-UTF-8 string.
  void set(std::string_view name, const Value& v);
  Value get(std::string_view name) const noexcept;
  bool item_exists(std::string_view name) const noexcept { return !get(name).is_null(); }
  const std::vector<std::pair<std::string, OwnedValue>>& entries() const noexcept { return entries_; }
  void clear_body() noexcept { entries_.clear(); }

 protected:
  message::FrameStatus encode_body(message::FrameWriter& w) const noexcept override;
  std::size_t body_size_hint() const noexcept override;

 private:
  std::vector<std::pair<std::string, OwnedValue>> entries_;
};

/// JMS StreamMessage: a sequence of typed values, read back in order (Message::stream()).
class StreamMessage : public OutgoingMessage {
 public:
  BodyType body_type() const noexcept override { return BodyType::Stream; }
  void write_bool(bool v) { write(Value::boolean(v)); }
  void write_byte(std::int8_t v) { write(Value::int8(v)); }
  void write_short(std::int16_t v) { write(Value::int16(v)); }
  void write_char(char16_t v) { write(Value::character(v)); }
  void write_int(std::int32_t v) { write(Value::int32(v)); }
  void write_long(std::int64_t v) { write(Value::int64(v)); }
  void write_float(float v) { write(Value::float32(v)); }
  void write_double(double v) { write(Value::float64(v)); }
  void write_string(std::string_view v) { write(Value::string(v)); }
  void write_bytes(std::span<const std::byte> v) { write(Value::bytes({reinterpret_cast<const char*>(v.data()), v.size()})); }
  /// Any value type (Null included). Throws Error(InvalidArgument) for a non-UTF-8 string.
  void write(const Value& v);
  const std::vector<OwnedValue>& values() const noexcept { return values_; }
  void clear_body() noexcept { values_.clear(); }

 protected:
  message::FrameStatus encode_body(message::FrameWriter& w) const noexcept override;
  std::size_t body_size_hint() const noexcept override;

 private:
  std::vector<OwnedValue> values_;
};

/// Serializers for ObjectMessage bodies, registered by the application, one per C++ type with a
/// unique type name. Nothing is ever deserialized unless the receiver asks for a registered type
/// and the message names exactly that type: there is no "make an object from whatever the wire
/// says". Process-wide and thread-safe (registration is a set-up call).
class Serializers {
 public:
  using Encode = std::function<void(const void*, std::vector<std::byte>&)>;
  using Decode = std::function<void(std::span<const std::byte>, void*)>;

  /// Registers T under `type_name` (1-255 bytes of UTF-8). `encode(obj, out)` appends bytes to
  /// `out`; `decode(bytes)` returns a T or throws. Throws Error(InvalidArgument) when T or the
  /// name is already registered differently.
  template <class T, class Enc, class Dec>
  static void add(std::string_view type_name, Enc encode, Dec decode) {
    add_erased(typeid(T), type_name,
               [e = std::move(encode)](const void* obj, std::vector<std::byte>& out) { e(*static_cast<const T*>(obj), out); },
               [d = std::move(decode)](std::span<const std::byte> in, void* obj) { *static_cast<T*>(obj) = d(in); });
  }
  /// The name T is registered under; throws Error(InvalidArgument) when it is not registered.
  template <class T>
  static std::string name_of() { return lookup(typeid(T)).first; }

  /// Implementation detail of add/ObjectMessage/Message::object.
  static void add_erased(std::type_index t, std::string_view name, Encode e, Decode d);
  static std::pair<std::string, std::pair<Encode, Decode>> lookup(std::type_index t);
};

/// JMS ObjectMessage: an application object, as bytes made by its registered serializer plus the
/// serializer's type name.
class ObjectMessage : public OutgoingMessage {
 public:
  BodyType body_type() const noexcept override { return BodyType::Object; }
  /// Serializes `obj` with the serializer registered for T. Throws Error(InvalidArgument) when
  /// none is registered.
  template <class T>
  void set_object(const T& obj) {
    auto [name, codec] = Serializers::lookup(typeid(T));
    std::vector<std::byte> out;
    codec.first(&obj, out);
    type_name_ = std::move(name);
    data_ = std::move(out);
  }
  const std::string& object_type() const noexcept { return type_name_; }
  const std::vector<std::byte>& data() const noexcept { return data_; }

 protected:
  message::FrameStatus encode_body(message::FrameWriter& w) const noexcept override { return w.set_object(type_name_, data_); }
  std::size_t body_size_hint() const noexcept override { return 4 + type_name_.size() + data_.size(); }

 private:
  std::string type_name_;
  std::vector<std::byte> data_;
};

/// Reads a BytesMessage body written with BytesMessage::write_*: in order, little-endian. A read
/// past the end returns ConvertStatus::TypeMismatch (JMS MessageEOFException) and does not move.
class BytesReader {
 public:
  BytesReader() = default;
  explicit BytesReader(std::span<const std::byte> b) noexcept : b_(b) {}
  Converted<bool> read_bool() noexcept;
  Converted<std::int8_t> read_byte() noexcept;
  Converted<std::int16_t> read_short() noexcept;
  Converted<char16_t> read_char() noexcept;
  Converted<std::int32_t> read_int() noexcept;
  Converted<std::int64_t> read_long() noexcept;
  Converted<float> read_float() noexcept;
  Converted<double> read_double() noexcept;
  /// A u32 length then UTF-8 (NumberFormat when the bytes are not UTF-8).
  Converted<std::string_view> read_string() noexcept;
  /// The next `n` bytes (fewer at the end: JMS readBytes).
  std::span<const std::byte> read_bytes(std::size_t n) noexcept;
  std::size_t remaining() const noexcept { return b_.size() - pos_; }
  void reset() noexcept { pos_ = 0; }

 private:
  bool take(void* p, std::size_t n) noexcept;
  std::span<const std::byte> b_;
  std::size_t pos_ = 0;
};

}  // namespace shmbus
