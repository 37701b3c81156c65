// The binary frame of one message (issue 5, item 3): the same bytes in a ring slot's payload and,
// later, in a segment log. docs/message-frame.md has the byte tables; this header is the truth.
//
//  offset  size  block
//  ------  ----  -------------------------------------------------------------------------------
//       0   112  FrameHeader: magic "SHMF", version, body type, priority, delivery mode, flags,
//                header size, frame length, message id (128 bits), timestamp, expiration,
//                delivery time, delivery count; then six {u32 offset, u32 length} references:
//                correlation id, type, reply-to, destination, property table, body
//     112     *  string area: the referenced header strings (UTF-8), in the order they were set
//             *  property table: entries, then a u32 index sorted by name, then a u32 count
//             *  body: Text (UTF-8) | Bytes (raw) | Map (a table like the properties) |
//                Stream (tagged values in order) | Object (u32 type-name length, name, bytes)
//
// Little-endian, no alignment requirement (every field is read with memcpy). Writers encode in
// place into a caller's buffer; readers are zero-copy views. Both are noexcept and never
// allocate. A reader validates a frame once in open(): after that no accessor can read outside
// the buffer, whatever the bytes were (every access is bounds-checked anyway, so a buffer changed
// after open() yields wrong values, never an out-of-bounds read).
#pragma once
#include "shmbus/message/value.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

namespace shmbus::message {

static_assert(std::endian::native == std::endian::little, "the frame layout is little-endian");

inline constexpr std::uint32_t kFrameMagic = 0x464D'4853;  // "SHMF" little-endian
inline constexpr std::uint8_t kFrameVersion = 1;            // incompatible changes bump it
inline constexpr std::uint32_t kFrameHeaderSize = 112;      // v1; readers accept larger (appended fields)
inline constexpr std::uint32_t kMaxProperties = 1024;
inline constexpr std::uint32_t kMaxMapEntries = 65536;
inline constexpr std::size_t kMaxNameLength = 65535;        // u16 on the wire (bytes of UTF-8)
inline constexpr std::size_t kMaxFrameSize = 0xFFFF'FFFFu;  // u32 frame_length

/// FrameHeader::flags
inline constexpr std::uint16_t kFrameRedelivered = 1;
inline constexpr std::uint16_t kFrameKnownFlags = kFrameRedelivered;

enum class BodyType : std::uint8_t { None = 0, Text = 1, Bytes = 2, Map = 3, Stream = 4, Object = 5 };
/// The JMS DeliveryMode constants.
enum class DeliveryMode : std::uint8_t { NonPersistent = 1, Persistent = 2 };
inline constexpr std::uint8_t kDefaultFramePriority = 4;  // JMS default

/// A variable-length field: bytes [offset, offset + length) of the frame. {0, 0} = absent.
struct FieldRef {
  std::uint32_t offset;
  std::uint32_t length;
};

struct FrameHeader {
  std::uint32_t magic;          // kFrameMagic; written last by FrameWriter::finish()
  std::uint8_t version;         // kFrameVersion
  std::uint8_t body_type;       // BodyType
  std::uint8_t priority;        // 0-9
  std::uint8_t delivery_mode;   // DeliveryMode
  std::uint16_t flags;          // kFrame*
  std::uint16_t header_size;    // kFrameHeaderSize in v1; where the string area may start
  std::uint32_t frame_length;   // header + everything referenced
  std::uint64_t message_id_lo;  // per-producer sequence
  std::uint64_t message_id_hi;  // producer incarnation (unique across producers and restarts); id 0 = none
  std::int64_t timestamp_ns;    // CLOCK_REALTIME at send; 0 = not set
  std::int64_t expiration_ns;   // CLOCK_REALTIME absolute; 0 = never
  std::int64_t delivery_time_ns;  // CLOCK_REALTIME absolute (JMS 2.0 delivery delay); 0 = at once
  std::uint32_t delivery_count;   // JMSXDeliveryCount
  std::uint32_t reserved;         // 0; ignored by readers
  FieldRef correlation_id;
  FieldRef type;
  FieldRef reply_to;
  FieldRef destination;
  FieldRef properties;
  FieldRef body;
};
static_assert(std::is_trivially_copyable_v<FrameHeader> && std::is_standard_layout_v<FrameHeader>);
static_assert(sizeof(FieldRef) == 8);
static_assert(offsetof(FrameHeader, magic) == 0);
static_assert(offsetof(FrameHeader, version) == 4);
static_assert(offsetof(FrameHeader, body_type) == 5);
static_assert(offsetof(FrameHeader, priority) == 6);
static_assert(offsetof(FrameHeader, delivery_mode) == 7);
static_assert(offsetof(FrameHeader, flags) == 8);
static_assert(offsetof(FrameHeader, header_size) == 10);
static_assert(offsetof(FrameHeader, frame_length) == 12);
static_assert(offsetof(FrameHeader, message_id_lo) == 16);
static_assert(offsetof(FrameHeader, message_id_hi) == 24);
static_assert(offsetof(FrameHeader, timestamp_ns) == 32);
static_assert(offsetof(FrameHeader, expiration_ns) == 40);
static_assert(offsetof(FrameHeader, delivery_time_ns) == 48);
static_assert(offsetof(FrameHeader, delivery_count) == 56);
static_assert(offsetof(FrameHeader, reserved) == 60);
static_assert(offsetof(FrameHeader, correlation_id) == 64);
static_assert(offsetof(FrameHeader, type) == 72);
static_assert(offsetof(FrameHeader, reply_to) == 80);
static_assert(offsetof(FrameHeader, destination) == 88);
static_assert(offsetof(FrameHeader, properties) == 96);
static_assert(offsetof(FrameHeader, body) == 104);
static_assert(sizeof(FrameHeader) == kFrameHeaderSize);

// Entry encodings (docs/message-frame.md): a table entry is {u16 name_len, u8 tag, name, value};
// a stream item is {u8 tag, value}; a table ends with {u32 index[count] (offsets from the table
// start, sorted by name), u32 count}. Value sizes by tag:
inline constexpr std::size_t kEntryFixed = 3;   // u16 name_len + u8 tag
inline constexpr std::size_t kTableTrailer = 4; // u32 count
/// Fixed payload size of a tag's value, or -1 for the u32-length-prefixed String/Bytes, or -2 for a bad tag.
constexpr int value_fixed_size(std::uint8_t tag) noexcept {
  switch (static_cast<ValueType>(tag)) {
    case ValueType::Null: return 0;
    case ValueType::Bool: case ValueType::Int8: return 1;
    case ValueType::Int16: case ValueType::Char: return 2;
    case ValueType::Int32: case ValueType::Float: return 4;
    case ValueType::Int64: case ValueType::Double: return 8;
    case ValueType::String: case ValueType::Bytes: return -1;
  }
  return -2;
}

struct MessageId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  bool is_null() const noexcept { return hi == 0 && lo == 0; }
  friend bool operator==(const MessageId&, const MessageId&) = default;
};

/// Result of a FrameWriter call. Sticky: after the first failure every call returns it.
enum class FrameStatus : std::uint8_t {
  Ok = 0,
  TooLarge,         ///< the buffer is too small; nothing valid was written (the magic stays 0)
  InvalidArgument,  ///< bad UTF-8, bad name, out-of-range value, duplicate name, call out of order
};
/// Why FrameReader::open() rejected a buffer.
enum class DecodeStatus : std::uint8_t {
  Ok = 0,
  Truncated,      ///< shorter than the header or than frame_length
  BadMagic,
  BadVersion,
  BadHeader,      ///< a header field out of range, or a reference outside the frame
  BadUtf8,        ///< a header string or a Text body is not valid UTF-8
  BadProperties,  ///< the property table is malformed
  BadBody,        ///< a Map/Stream/Object body is malformed
};
/// Outcome of a typed read with the JMS conversion rules.
enum class ConvertStatus : std::uint8_t {
  Ok = 0,
  Null,          ///< missing or null: String reads give a null (empty) view, boolean reads false
                 ///< (JMS Boolean.valueOf(null)); a numeric read is a JMS NumberFormatException
  TypeMismatch,  ///< the conversion is not in the JMS table (MessageFormatException)
  NumberFormat,  ///< a String that does not parse as the type, or out of its range
};
const char* to_string(FrameStatus s) noexcept;
const char* to_string(DecodeStatus s) noexcept;
const char* to_string(ConvertStatus s) noexcept;

/// UTF-8 as RFC 3629: no overlong forms, no surrogates (U+D800-DFFF), nothing above U+10FFFF.
bool valid_utf8(std::string_view s) noexcept;
/// A JMS property name: a selector identifier (letter, '_' or '$' first, then letters, digits,
/// '_', '$'; non-ASCII UTF-8 counts as a letter), not a selector keyword (NULL TRUE FALSE NOT AND
/// OR BETWEEN LIKE IN IS ESCAPE, any case), not starting with "JMS" unless "JMSX" or "JMS_" (those
/// names are the headers), and not JMSXDeliveryCount (a header here).
bool valid_property_name(std::string_view s) noexcept;

template <class T>
struct Converted {
  T value{};
  ConvertStatus status = ConvertStatus::Null;
  bool ok() const noexcept { return status == ConvertStatus::Ok; }
};

/// A String read: a view into the frame, or text formatted from a number/boolean held inline
/// (copy-safe: view() always points at the right place).
class StringConverted {
 public:
  ConvertStatus status = ConvertStatus::Null;
  bool ok() const noexcept { return status == ConvertStatus::Ok; }
  std::string_view view() const noexcept { return inline_ ? std::string_view(buf_, len_) : ext_; }

  static StringConverted external(std::string_view s, ConvertStatus st) noexcept {
    StringConverted r;
    r.status = st;
    r.ext_ = s;
    return r;
  }
  static StringConverted formatted(const char* p, std::size_t n) noexcept {
    StringConverted r;
    r.status = ConvertStatus::Ok;
    r.inline_ = true;
    r.len_ = static_cast<std::uint8_t>(n < sizeof(r.buf_) ? n : sizeof(r.buf_));
    std::memcpy(r.buf_, p, r.len_);
    return r;
  }

 private:
  std::string_view ext_;
  bool inline_ = false;
  std::uint8_t len_ = 0;
  char buf_[32] = {};
};

// The JMS conversion table (docs/message-frame.md): what a value of each type may be read as.
Converted<bool> as_bool(const Value& v) noexcept;
Converted<std::int8_t> as_int8(const Value& v) noexcept;
Converted<std::int16_t> as_int16(const Value& v) noexcept;
Converted<std::int32_t> as_int32(const Value& v) noexcept;
Converted<std::int64_t> as_int64(const Value& v) noexcept;
Converted<float> as_float(const Value& v) noexcept;
Converted<double> as_double(const Value& v) noexcept;
Converted<char16_t> as_char(const Value& v) noexcept;
StringConverted as_string(const Value& v) noexcept;
Converted<std::string_view> as_bytes(const Value& v) noexcept;

/// One property or map entry.
struct Entry {
  std::string_view name;
  Value value;
};

/// A validated name -> value table (the property table, a Map body): lookup by binary search over
/// the sorted index, iteration in name order.
class TableReader {
 public:
  TableReader() = default;
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  /// The i-th entry in name order ({"", Null} past the end).
  Entry at(std::size_t i) const noexcept;
  /// The value named `name`, Null when absent.
  Value find(std::string_view name) const noexcept;
  bool contains(std::string_view name) const noexcept;

  Converted<bool> get_bool(std::string_view n) const noexcept { return as_bool(find(n)); }
  Converted<std::int8_t> get_int8(std::string_view n) const noexcept { return as_int8(find(n)); }
  Converted<std::int16_t> get_int16(std::string_view n) const noexcept { return as_int16(find(n)); }
  Converted<std::int32_t> get_int32(std::string_view n) const noexcept { return as_int32(find(n)); }
  Converted<std::int64_t> get_int64(std::string_view n) const noexcept { return as_int64(find(n)); }
  Converted<float> get_float(std::string_view n) const noexcept { return as_float(find(n)); }
  Converted<double> get_double(std::string_view n) const noexcept { return as_double(find(n)); }
  Converted<char16_t> get_char(std::string_view n) const noexcept { return as_char(find(n)); }
  StringConverted get_string(std::string_view n) const noexcept { return as_string(find(n)); }
  Converted<std::string_view> get_bytes(std::string_view n) const noexcept { return as_bytes(find(n)); }

  class Iterator {
   public:
    Entry operator*() const noexcept { return t_->at(i_); }
    Iterator& operator++() noexcept { ++i_; return *this; }
    bool operator==(const Iterator& o) const noexcept { return i_ == o.i_; }
   private:
    friend class TableReader;
    Iterator(const TableReader* t, std::size_t i) : t_(t), i_(i) {}
    const TableReader* t_;
    std::size_t i_;
  };
  Iterator begin() const noexcept { return {this, 0}; }
  Iterator end() const noexcept { return {this, count_}; }

  /// Validates `table` (a Map body or a property table). `property_names`: names must be
  /// valid_property_name() and values property types; else any non-empty UTF-8 name, any type.
  static bool open(std::span<const std::byte> table, bool property_names, std::uint32_t max_count,
                   TableReader& out) noexcept;

 private:
  const std::byte* base_ = nullptr;
  std::uint32_t entries_len_ = 0;  // [0, entries_len_) holds entries; the index follows
  std::uint32_t count_ = 0;
};
using MapReader = TableReader;

/// A validated Stream body: values read back in order. A typed read that fails does not advance
/// (JMS: the position is unchanged on MessageFormatException).
class StreamReader {
 public:
  StreamReader() = default;
  bool at_end() const noexcept { return pos_ >= len_; }
  void reset() noexcept { pos_ = 0; }
  /// The next value without advancing; false at the end.
  bool peek(Value& v) const noexcept;
  /// The next value; false at the end.
  bool next(Value& v) noexcept;

  Converted<bool> read_bool() noexcept { return read(as_bool); }
  Converted<std::int8_t> read_int8() noexcept { return read(as_int8); }
  Converted<std::int16_t> read_int16() noexcept { return read(as_int16); }
  Converted<std::int32_t> read_int32() noexcept { return read(as_int32); }
  Converted<std::int64_t> read_int64() noexcept { return read(as_int64); }
  Converted<float> read_float() noexcept { return read(as_float); }
  Converted<double> read_double() noexcept { return read(as_double); }
  Converted<char16_t> read_char() noexcept { return read(as_char); }
  StringConverted read_string() noexcept { return read(as_string); }
  Converted<std::string_view> read_bytes() noexcept { return read(as_bytes); }

  static bool open(std::span<const std::byte> body, StreamReader& out) noexcept;

 private:
  template <class F>
  std::invoke_result_t<F, const Value&> read(F f) noexcept {
    Value v;
    std::size_t next_pos = 0;
    if (!item(pos_, v, next_pos)) {  // at the end: JMS MessageEOFException
      auto r = f(Value{});
      r.status = ConvertStatus::TypeMismatch;
      return r;
    }
    auto r = f(v);
    if (r.status == ConvertStatus::Ok || r.status == ConvertStatus::Null) pos_ = next_pos;
    return r;
  }
  bool item(std::size_t at, Value& v, std::size_t& next_pos) const noexcept;

  const std::byte* base_ = nullptr;
  std::size_t len_ = 0;
  std::size_t pos_ = 0;
};

/// Encodes one frame in place. Order: header fields and header strings, then properties, then
/// at most one body, then finish(). Fixed header fields (id, times, priority, ...) may be set any
/// time before finish(). Nothing is valid until finish() returned Ok: the magic is written last.
class FrameWriter {
 public:
  /// Starts a frame in `buf` (e.g. a claimed slot's payload).
  explicit FrameWriter(std::span<std::byte> buf) noexcept;

  void set_message_id(MessageId id) noexcept { h_.message_id_hi = id.hi; h_.message_id_lo = id.lo; }
  void set_timestamp_ns(std::int64_t t) noexcept { h_.timestamp_ns = t; }
  void set_expiration_ns(std::int64_t t) noexcept { h_.expiration_ns = t; }
  void set_delivery_time_ns(std::int64_t t) noexcept { h_.delivery_time_ns = t; }
  void set_delivery_count(std::uint32_t n) noexcept { h_.delivery_count = n; }
  void set_redelivered(bool r) noexcept;
  FrameStatus set_priority(int p) noexcept;  ///< 0-9
  FrameStatus set_delivery_mode(DeliveryMode m) noexcept;

  // Header strings (UTF-8): before the first property or body call.
  FrameStatus set_correlation_id(std::string_view s) noexcept { return set_string(h_.correlation_id, s); }
  FrameStatus set_type(std::string_view s) noexcept { return set_string(h_.type, s); }
  FrameStatus set_reply_to(std::string_view s) noexcept { return set_string(h_.reply_to, s); }
  FrameStatus set_destination(std::string_view s) noexcept { return set_string(h_.destination, s); }

  /// A property: valid_property_name(name); any type but Bytes and Char. A duplicate name makes
  /// the frame InvalidArgument (reported by the call that closes the table: a body call or finish()).
  FrameStatus add_property(std::string_view name, const Value& v) noexcept;

  FrameStatus set_text(std::string_view utf8) noexcept;
  FrameStatus set_bytes(std::span<const std::byte> data) noexcept;
  FrameStatus set_bytes(std::string_view data) noexcept {
    return set_bytes(std::as_bytes(std::span<const char>(data.data(), data.size())));
  }
  /// An Object body: the application's serializer's type name and its bytes (never interpreted here).
  FrameStatus set_object(std::string_view type_name, std::span<const std::byte> data) noexcept;
  FrameStatus begin_map() noexcept;
  /// A map entry: a non-empty UTF-8 name (unique), any type.
  FrameStatus add_map_entry(std::string_view name, const Value& v) noexcept;
  FrameStatus begin_stream() noexcept;
  FrameStatus add_stream_value(const Value& v) noexcept;

  /// Closes the frame; on Ok, size() bytes of the buffer hold it.
  FrameStatus finish() noexcept;
  FrameStatus status() const noexcept { return status_; }
  std::size_t size() const noexcept { return finished_ ? pos_ : 0; }

 private:
  enum class Phase : std::uint8_t { Headers, Properties, Body, Map, Stream, Done };
  FrameStatus fail(FrameStatus s) noexcept;
  FrameStatus set_string(FieldRef& ref, std::string_view s) noexcept;
  FrameStatus close_properties() noexcept;
  FrameStatus start_body(BodyType t) noexcept;
  FrameStatus add_entry(std::string_view name, const Value& v) noexcept;
  FrameStatus put_value(const Value& v) noexcept;
  FrameStatus close_table(std::uint32_t start, std::uint32_t count, std::uint32_t& length) noexcept;
  bool room(std::size_t n) const noexcept { return n <= cap_ - pos_; }
  void put(const void* p, std::size_t n) noexcept { if (n) std::memcpy(buf_ + pos_, p, n); pos_ += n; }

  std::byte* buf_;
  std::size_t cap_;
  std::size_t pos_ = kFrameHeaderSize;
  FrameHeader h_{};
  FrameStatus status_ = FrameStatus::Ok;
  Phase phase_ = Phase::Headers;
  bool finished_ = false;
  std::uint32_t table_start_ = 0;
  std::uint32_t table_count_ = 0;
};

/// A zero-copy view of a received frame. open() validates it once; accessors are then cheap.
/// Views (strings, body) point into the buffer, which must outlive the reader.
class FrameReader final : public PropertySource {
 public:
  FrameReader() = default;
  DecodeStatus open(std::span<const std::byte> buf) noexcept;
  bool valid() const noexcept { return base_ != nullptr; }

  // Headers.
  BodyType body_type() const noexcept { return static_cast<BodyType>(h_.body_type); }
  MessageId message_id() const noexcept { return {h_.message_id_hi, h_.message_id_lo}; }
  /// "ID:" + 32 hex digits (hi then lo), or "" when the id is 0 (JMS: disabled message ids).
  std::string_view message_id_string() const noexcept { return {id_text_, id_len_}; }
  std::int64_t timestamp_ns() const noexcept { return h_.timestamp_ns; }
  std::int64_t expiration_ns() const noexcept { return h_.expiration_ns; }
  std::int64_t delivery_time_ns() const noexcept { return h_.delivery_time_ns; }
  std::uint32_t delivery_count() const noexcept { return h_.delivery_count; }
  int priority() const noexcept { return h_.priority; }
  DeliveryMode delivery_mode() const noexcept { return static_cast<DeliveryMode>(h_.delivery_mode); }
  bool redelivered() const noexcept { return (h_.flags & kFrameRedelivered) != 0; }
  std::size_t frame_length() const noexcept { return h_.frame_length; }
  /// Header strings: a null view's data() is nullptr when the field is absent (has_*()).
  std::string_view correlation_id() const noexcept { return field(h_.correlation_id); }
  std::string_view type() const noexcept { return field(h_.type); }
  std::string_view reply_to() const noexcept { return field(h_.reply_to); }
  std::string_view destination() const noexcept { return field(h_.destination); }
  bool has_correlation_id() const noexcept { return h_.correlation_id.offset != 0; }
  bool has_type() const noexcept { return h_.type.offset != 0; }
  bool has_reply_to() const noexcept { return h_.reply_to.offset != 0; }
  bool has_destination() const noexcept { return h_.destination.offset != 0; }

  // Properties.
  const TableReader& properties() const noexcept { return props_; }
  /// A property (not a header), Null when absent.
  Value property(std::string_view name) const noexcept { return props_.find(name); }
  /// PropertySource: the JMS header names a selector may use (JMSPriority, JMSTimestamp,
  /// JMSExpiration, JMSDeliveryTime, JMSDeliveryMode, JMSCorrelationID, JMSType, JMSMessageID,
  /// JMSRedelivered, JMSXDeliveryCount, JMSReplyTo, JMSDestination), else a property. Times in ms.
  Value get(std::string_view name) const noexcept override;
  Converted<bool> get_bool(std::string_view n) const noexcept { return as_bool(property(n)); }
  Converted<std::int8_t> get_int8(std::string_view n) const noexcept { return as_int8(property(n)); }
  Converted<std::int16_t> get_int16(std::string_view n) const noexcept { return as_int16(property(n)); }
  Converted<std::int32_t> get_int32(std::string_view n) const noexcept { return as_int32(property(n)); }
  Converted<std::int64_t> get_int64(std::string_view n) const noexcept { return as_int64(property(n)); }
  Converted<float> get_float(std::string_view n) const noexcept { return as_float(property(n)); }
  Converted<double> get_double(std::string_view n) const noexcept { return as_double(property(n)); }
  StringConverted get_string(std::string_view n) const noexcept { return as_string(property(n)); }

  // Body.
  std::span<const std::byte> body() const noexcept { return {base_ + h_.body.offset, h_.body.length}; }
  /// Text body (validated UTF-8); "" for other types.
  std::string_view text() const noexcept;
  /// Map body (empty for other types).
  TableReader map() const noexcept { return map_; }
  /// Stream body, positioned at its first value (empty for other types).
  StreamReader stream() const noexcept { return stream_; }
  std::string_view object_type() const noexcept;
  std::span<const std::byte> object_data() const noexcept;

 private:
  std::string_view field(FieldRef r) const noexcept {
    return r.offset == 0 ? std::string_view{}
                         : std::string_view(reinterpret_cast<const char*>(base_) + r.offset, r.length);
  }
  const std::byte* base_ = nullptr;
  FrameHeader h_{};
  TableReader props_;
  TableReader map_;
  StreamReader stream_;
  std::uint8_t id_len_ = 0;
  char id_text_[35] = {};
};

}  // namespace shmbus::message
