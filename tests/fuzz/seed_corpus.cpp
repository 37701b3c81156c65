// Writes the fuzzers' seed corpus (scripts/fuzz.sh runs it before fuzzing):
//   fuzz_seed_corpus FRAME_DIR SELECTOR_DIR
// FRAME_DIR: valid frames written by FrameWriter: every body type, every header, every property
// and value type, edge values (NaN, -0.0, infinities, integer limits, a lone-surrogate char,
// numeric strings for the conversions), an empty frame, many properties.
// SELECTOR_DIR: selector texts (docs/selectors.md and tests/unit/selector_test.cpp examples), each
// alone and followed by a frame (the fuzz_selector input format), plus "PATTERN|SUBJECT" inputs
// for its LIKE oracle.
// Generated rather than checked in, so the seeds follow the frame layout when it changes.
#include "shmbus/message/frame.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace {

using namespace shmbus::message;
using namespace std::string_view_literals;
using Buf = std::vector<std::byte>;

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "fuzz_seed_corpus: %s\n", what.c_str());
  std::exit(1);
}

void expect(FrameStatus st, const char* what) {
  if (st != FrameStatus::Ok) die(std::string(what) + ": " + to_string(st));
}

/// A frame: `fill` sets what it wants on the writer, then finish().
Buf frame(const std::function<void(FrameWriter&)>& fill) {
  Buf b(64 * 1024);
  FrameWriter w(b);
  fill(w);
  expect(w.finish(), "finish");
  b.resize(w.size());
  FrameReader r;
  if (r.open(b) != DecodeStatus::Ok) die("a seed frame does not open");
  return b;
}

void headers(FrameWriter& w) {
  w.set_message_id({0x0123456789abcdefULL, 42});
  w.set_timestamp_ns(1'700'000'000'123'456'789LL);
  w.set_expiration_ns(1'700'000'060'000'000'000LL);
  w.set_delivery_time_ns(1'700'000'001'000'000'000LL);
  w.set_delivery_count(3);
  w.set_redelivered(true);
  expect(w.set_priority(7), "priority");
  expect(w.set_delivery_mode(DeliveryMode::NonPersistent), "delivery mode");
  expect(w.set_correlation_id("corr-1"), "correlation id");
  expect(w.set_type("order"), "type");
  expect(w.set_reply_to("queue://replies"), "reply-to");
  expect(w.set_destination("topic://orders"), "destination");
}

void properties(FrameWriter& w) {
  expect(w.add_property("t", Value::boolean(true)), "t");
  expect(w.add_property("f_", Value::boolean(false)), "f_");
  expect(w.add_property("i8", Value::int8(-3)), "i8");
  expect(w.add_property("i16", Value::int16(300)), "i16");
  expect(w.add_property("i32", Value::int32(5)), "i32");
  expect(w.add_property("i64", Value::int64(10'000'000'000LL)), "i64");
  expect(w.add_property("lmin", Value::int64(std::numeric_limits<std::int64_t>::min())), "lmin");
  expect(w.add_property("f", Value::float32(2.5f)), "f");
  expect(w.add_property("d", Value::float64(2.5)), "d");
  expect(w.add_property("nan", Value::float64(std::numeric_limits<double>::quiet_NaN())), "nan");
  expect(w.add_property("price", Value::float64(15.0)), "price");
  expect(w.add_property("region", Value::string("EU")), "region");
  expect(w.add_property("uni", Value::string("h\xC3\xA9llo")), "uni");
  expect(w.add_property("pat", Value::string("a_b%c")), "pat");
  expect(w.add_property("nul", Value::null()), "nul");
  expect(w.add_property("JMSXGroupID", Value::string("g1")), "JMSXGroupID");
  expect(w.add_property("num_str", Value::string("5")), "num_str");
}

/// Strings that exercise the String -> number/boolean conversions.
void numeric_strings(FrameWriter& w) {
  const char* const texts[] = {"123", "-128", "+5", "-9223372036854775808", "9223372036854775808", "1e5",
                               " 2.5 ", "NaN", "-Infinity", "1.5f", "0x10", "TRUE", "tRuE", "", ".5", "1e-50",
                               "3.4028236e38", "-0"};
  int n = 0;
  for (const char* t : texts) expect(w.add_property("s" + std::to_string(n++), Value::string(t)), t);
}

/// Every value type, with edge values (map entries and stream items may hold any type).
std::vector<std::pair<std::string, Value>> every_value() {
  return {
      {"null", Value::null()},
      {"bool", Value::boolean(true)},
      {"i8min", Value::int8(-128)},
      {"i16max", Value::int16(32767)},
      {"i32min", Value::int32(std::numeric_limits<std::int32_t>::min())},
      {"i64max", Value::int64(std::numeric_limits<std::int64_t>::max())},
      {"fneg0", Value::float32(-0.0f)},
      {"finf", Value::float32(std::numeric_limits<float>::infinity())},
      {"fsmall", Value::float32(1e-40f)},
      {"dnan", Value::float64(std::numeric_limits<double>::quiet_NaN())},
      {"dbig", Value::float64(1.7976931348623157e308)},
      {"dtiny", Value::float64(4.9e-324)},
      {"dfrac", Value::float64(0.0012345678901234567)},
      {"str", Value::string("h\xC3\xA9llo \xE2\x82\xAC\xF0\x9F\x98\x80")},
      {"empty", Value::string("")},
      {"bytes", Value::bytes("\x00\x01\xFF"sv)},
      {"char", Value::character(u'\u00e9')},
      {"surrogate", Value::character(static_cast<char16_t>(0xD800))},
      {"\xC3\xA9t\xC3\xA9", Value::int32(1)},  // a non-ASCII map key
  };
}

void write_file(const std::string& path, std::span<const std::byte> data) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!f) die("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) die("usage: fuzz_seed_corpus FRAME_DIR SELECTOR_DIR");
  const std::string frame_dir = argv[1], selector_dir = argv[2];

  std::vector<std::pair<std::string, Buf>> frames;
  frames.emplace_back("empty", frame([](FrameWriter&) {}));
  frames.emplace_back("text", frame([](FrameWriter& w) {
    headers(w);
    properties(w);
    expect(w.set_text("hello, \xE2\x82\xAC world"), "text");
  }));
  frames.emplace_back("text-empty", frame([](FrameWriter& w) { expect(w.set_text(""), "text"); }));
  frames.emplace_back("bytes", frame([](FrameWriter& w) {
    expect(w.set_correlation_id(""), "empty correlation id");
    expect(w.add_property("JMS_vendor", Value::int16(-1)), "JMS_vendor");
    expect(w.set_bytes("\x00\x01\x02\xFFSHMF"sv), "bytes");
  }));
  frames.emplace_back("map", frame([](FrameWriter& w) {
    headers(w);
    expect(w.add_property("region", Value::string("US")), "region");
    expect(w.begin_map(), "map");
    for (const auto& [name, v] : every_value()) expect(w.add_map_entry(name, v), name.c_str());
  }));
  frames.emplace_back("map-empty", frame([](FrameWriter& w) { expect(w.begin_map(), "map"); }));
  frames.emplace_back("stream", frame([](FrameWriter& w) {
    expect(w.set_type("stream"), "type");
    expect(w.begin_stream(), "stream");
    for (const auto& [name, v] : every_value()) {
      expect(w.add_stream_value(Value::string(name)), "stream name");
      expect(w.add_stream_value(v), name.c_str());
    }
    expect(w.add_stream_value(Value::string("42")), "stream numeric string");
  }));
  frames.emplace_back("stream-empty", frame([](FrameWriter& w) { expect(w.begin_stream(), "stream"); }));
  frames.emplace_back("object", frame([](FrameWriter& w) {
    w.set_message_id({0, 1});
    expect(w.set_object("com.example.Order", bytes("\xAC\xED\x00\x05serialized"sv)), "object");
  }));
  frames.emplace_back("object-empty", frame([](FrameWriter& w) { expect(w.set_object("", {}), "object"); }));
  frames.emplace_back("conversions", frame([](FrameWriter& w) {
    w.set_delivery_count(0xFFFF'FFFFu);
    w.set_timestamp_ns(std::numeric_limits<std::int64_t>::min());
    expect(w.set_priority(9), "priority");
    numeric_strings(w);
    expect(w.set_text("x"), "text");
  }));
  frames.emplace_back("many-properties", frame([](FrameWriter& w) {
    for (int i = 0; i < 64; ++i) expect(w.add_property("p" + std::to_string(i * 7919 % 1000), Value::int32(i)), "p");
  }));
  for (const auto& [name, b] : frames) write_file(frame_dir + "/frame-" + name, b);

  const std::string_view selectors[] = {
      "JMSPriority > 4 AND region = 'EU' AND price BETWEEN 10 AND 20",
      "a = 1 OR b <> 'x' AND NOT c IS NULL",
      "region LIKE 'E!_%' ESCAPE '!' OR region NOT IN ('US', 'APAC')",
      "(a + b) * -c / 2 >= 3.5e0 AND t",
      "a NOT BETWEEN -5 AND b - 1 OR missing IS NOT NULL",
      "a / b = 0 OR NOT (t = FALSE)",
      "JMSType = 'order' AND JMSDeliveryMode = 'PERSISTENT' AND JMSRedelivered",
      "JMSMessageID LIKE 'ID:%' AND JMSCorrelationID IS NULL AND JMSXDeliveryCount > 1",
      "JMSTimestamp > 1700000000000 AND JMSExpiration <> 0 OR JMSReplyTo = 'queue://replies'",
      "quote = 'it''s' AND pat LIKE 'a\\_b\\%c' ESCAPE '\\'",
      "uni LIKE 'h_llo' OR uni LIKE '%\xC3\xA9%'",
      "i64 * 1000000000 < 0 AND lmin / -1 = lmin AND -9223372036854775808 = lmin",
      "nan <> nan AND NOT nan = nan AND d / 0 IS NULL",
      ".5 = 0.5 AND 7. = 7 AND 1e3 = 1000 AND +5 = i32 AND - -5 = i32",
      "f = 2.5 AND f = d AND i32 / 2.0 = 2.5 AND i8 * i16 = -900",
      "num_str = 5 OR raw = 'EU' OR ch = 'A' OR t = 1",
      "s0 IN ('123') AND s1 LIKE '-%' AND region NOT LIKE 'U%'",
      "ANDY = 1 AND $x = 2 AND _y = 3 AND ORx9 = 4",
      "not T or F_ = false",
      "((((a = 1))))",
      "NOT NOT NOT t",
      "nulbyte LIKE 'a!\0!%%' ESCAPE '!'"sv,
      "a = 1e999",
      "a != 1",
      "a = 'abc",
      "a LIKE 'x!' ESCAPE '!'",
      "",
      "   ",
  };
  int n = 0;
  const Buf& with = frames[1].second;  // the Text frame with every header and property
  for (const std::string_view s : selectors) {
    const std::string text(s);
    write_file(selector_dir + "/sel-" + std::to_string(n), bytes(text));
    std::string both = text + " ";
    both.append(reinterpret_cast<const char*>(with.data()), with.size());
    write_file(selector_dir + "/sel-" + std::to_string(n) + "-frame", bytes(both));
    ++n;
  }
  // A selector over each other frame.
  for (std::size_t i = 0; i < frames.size(); ++i) {
    std::string both = "JMSType = 'order' OR region IS NOT NULL OR JMSPriority < 5 ";
    both.append(reinterpret_cast<const char*>(frames[i].second.data()), frames[i].second.size());
    write_file(selector_dir + "/any-" + frames[i].first, bytes(both));
  }
  // The LIKE oracle's "PATTERN|SUBJECT" inputs (escape '!').
  for (std::string_view s : {"a!_b%|a_bxyz", "%!%|50%", "_%_|ab", "%a%b%|xaxbx", "!!|!", "a%%%%b|ab", "|", "x!|x"})
    write_file(selector_dir + "/like-" + std::to_string(n++), bytes(s));
  return 0;
}
