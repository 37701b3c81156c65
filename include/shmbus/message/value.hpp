// A typed value of the JMS message model (issue 5): what a property, a map entry, a stream item
// or a selector operand holds. A small non-owning view: strings and bytes point into the frame
// (or the selector's literal pool) they came from.
//
// JMS property types: boolean, byte (int8), short (int16), int (int32), long (int64), float,
// double, String. Map and stream values add char (UTF-16 code unit) and byte[].
#pragma once
#include <cstdint>
#include <span>
#include <string_view>

namespace shmbus::message {

/// On-the-wire type tags: part of the frame layout (docs/message-frame.md); never renumber.
enum class ValueType : std::uint8_t {
  Null = 0,
  Bool = 1,
  Int8 = 2,
  Int16 = 3,
  Int32 = 4,
  Int64 = 5,
  Float = 6,
  Double = 7,
  String = 8,  // UTF-8
  Bytes = 9,
  Char = 10,   // a UTF-16 code unit (JMS char), stored as u16
};

struct Value {
  ValueType type = ValueType::Null;
  std::int64_t i = 0;      // Bool (0/1), Int8..Int64, Char
  double d = 0;            // Float (widened), Double
  std::string_view s;      // String (UTF-8), Bytes (raw)

  static constexpr Value null() noexcept { return {}; }
  static constexpr Value boolean(bool v) noexcept { return {ValueType::Bool, v ? 1 : 0, 0, {}}; }
  static constexpr Value int8(std::int8_t v) noexcept { return {ValueType::Int8, v, 0, {}}; }
  static constexpr Value int16(std::int16_t v) noexcept { return {ValueType::Int16, v, 0, {}}; }
  static constexpr Value int32(std::int32_t v) noexcept { return {ValueType::Int32, v, 0, {}}; }
  static constexpr Value int64(std::int64_t v) noexcept { return {ValueType::Int64, v, 0, {}}; }
  static constexpr Value float32(float v) noexcept { return {ValueType::Float, 0, v, {}}; }
  static constexpr Value float64(double v) noexcept { return {ValueType::Double, 0, v, {}}; }
  static constexpr Value string(std::string_view v) noexcept { return {ValueType::String, 0, 0, v}; }
  static constexpr Value bytes(std::string_view v) noexcept { return {ValueType::Bytes, 0, 0, v}; }
  static constexpr Value character(char16_t v) noexcept { return {ValueType::Char, v, 0, {}}; }

  bool is_null() const noexcept { return type == ValueType::Null; }
  bool is_integral() const noexcept { return type >= ValueType::Int8 && type <= ValueType::Int64; }
  bool is_floating() const noexcept { return type == ValueType::Float || type == ValueType::Double; }
  bool is_numeric() const noexcept { return is_integral() || is_floating(); }
};

/// Where a selector (or an application) looks names up: message properties and the JMS header
/// fields a selector may name (JMSPriority, JMSTimestamp, JMSCorrelationID, JMSType,
/// JMSDeliveryMode, JMSMessageID, JMSRedelivered, ...). An unknown name is Null.
class PropertySource {
 public:
  virtual ~PropertySource() = default;
  virtual Value get(std::string_view name) const noexcept = 0;
};

}  // namespace shmbus::message
