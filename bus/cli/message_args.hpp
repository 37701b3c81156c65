// The `shmbus` command line's message model: typed values from the command line and stdin
// (`send --property K=V`, `--type map|stream` lines) and the printed form of received messages
// (`recv`, `recv --verbose`). docs/cli.md documents every rule and format here.
#pragma once
#include "shmbus/shmbus.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace shmbus::cli {

/// `send --type`: the JMS message each TEXT/line becomes.
enum class BodyKind { Text, Bytes, Map, Stream };
/// "text", "bytes", "map", "stream"; nullopt for anything else.
std::optional<BodyKind> parse_body_kind(std::string_view s);

/// A value typed by the CLI rules: `type` empty infers it from `text` (true/false -> bool, a
/// decimal integer -> long, a decimal with '.' or an exponent -> double, else string); else one
/// of bool, byte, short, int, long, float, double, string (range-checked). False with `err` set
/// (a sentence naming the value and, for numbers, the range) when `text` is not a `type`.
bool parse_typed_value(std::string_view type, std::string_view text, OwnedValue& out, std::string& err);

/// "K=V" or "K:TYPE=V" (a property, a map entry): the name and the typed value. The name is
/// not checked here (the message's setters do). False with `err` set when malformed.
bool parse_assignment(std::string_view token, std::string& name, OwnedValue& out, std::string& err);

/// A stream item: "V" (typed as above) or ":TYPE=V". False with `err` set when malformed.
bool parse_stream_item(std::string_view token, OwnedValue& out, std::string& err);

/// Replaces the body of `m` (made for `kind`) with `line`: the text, the bytes, the whitespace-
/// separated map entries or stream items. False with `err` set when `line` is not valid for
/// `kind` (bad UTF-8, a malformed entry, a bad map entry name); `m` may be half filled then.
bool set_body(BodyKind kind, OutgoingMessage& m, std::string_view line, std::string& err);

/// The CLI's name of a value type: bool, byte, short, int, long, float, double, string, bytes,
/// char, null.
const char* type_name(ValueType t) noexcept;

/// A value as `recv` prints it: strings as they are, numbers and booleans as JMS formats them
/// (message::as_string), bytes as 0x and lowercase hex, a null as `null`.
std::string format_value(const Value& v);

/// What `recv` prints for a message's body (without the newline): text and raw payloads and
/// bytes as they are, a map as `{K=V, ...}` in name order, a stream as `[v1, v2, ...]`, an
/// object as `(object TYPE, N bytes)`.
std::string format_body(const Message& m);

/// What `recv --verbose` prints before the body: one `Name: value` line per header (the optional
/// ones only when set), `BodyType: ...`, then one `name (type) = value` line per property in name
/// order. `subscribed` is the DEST recv subscribed to (JMSDestination of a raw payload).
std::string format_headers(const Message& m, std::string_view subscribed);

}  // namespace shmbus::cli
