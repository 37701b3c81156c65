// The message frame (bus/message/frame.hpp, docs/message-frame.md): round trips of every header,
// property type and body type; limits; UTF-8; the JMS conversion table; and a random corpus of
// garbage and mutated frames that the reader must reject or accept without reading out of bounds
// (the ASan build checks the "out of bounds" part: every buffer is an exact-size heap block).
#include "shmbus/message/frame.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace shmbus::message {
namespace {

using Buf = std::vector<std::byte>;

std::span<const std::byte> as_span(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

/// Reads `frame` from an exact-size heap copy so that ASan flags any read past its end.
struct Exact {
  explicit Exact(std::span<const std::byte> f) : size(f.size()), mem(new std::byte[f.size() ? f.size() : 1]) {
    if (!f.empty()) std::memcpy(mem.get(), f.data(), f.size());
  }
  std::span<const std::byte> span() const { return {mem.get(), size}; }
  std::size_t size;
  std::unique_ptr<std::byte[]> mem;
};

/// A frame with everything: every header, every property type, a Text body.
Buf full_frame(std::size_t cap = 4096) {
  Buf b(cap);
  FrameWriter w(b);
  w.set_message_id({0x0123456789abcdefULL, 42});
  w.set_timestamp_ns(1'700'000'000'123'456'789LL);
  w.set_expiration_ns(1'700'000'060'000'000'000LL);
  w.set_delivery_time_ns(1'700'000'001'000'000'000LL);
  w.set_delivery_count(3);
  w.set_redelivered(true);
  EXPECT_EQ(w.set_priority(7), FrameStatus::Ok);
  EXPECT_EQ(w.set_delivery_mode(DeliveryMode::NonPersistent), FrameStatus::Ok);
  EXPECT_EQ(w.set_correlation_id("corr-1"), FrameStatus::Ok);
  EXPECT_EQ(w.set_type("OrderCreated"), FrameStatus::Ok);
  EXPECT_EQ(w.set_reply_to("queue://replies"), FrameStatus::Ok);
  EXPECT_EQ(w.set_destination("topic://orders"), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("zBool", Value::boolean(true)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("aByte", Value::int8(-5)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("short_", Value::int16(-30000)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("int$", Value::int32(123456789)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("long", Value::int64(-9'000'000'000'000LL)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("flt", Value::float32(1.5f)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("dbl", Value::float64(-2.25)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("str", Value::string("h\xC3\xA9llo")), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("nul", Value::null()), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("JMSXGroupID", Value::string("g1")), FrameStatus::Ok);
  EXPECT_EQ(w.set_text("hello, \xE2\x82\xAC world"), FrameStatus::Ok);
  EXPECT_EQ(w.finish(), FrameStatus::Ok);
  b.resize(w.size());
  return b;
}

TEST(Frame_test, RoundTripsEveryHeader) {
  const Buf b = full_frame();
  FrameReader r;
  ASSERT_EQ(r.open(b), DecodeStatus::Ok);
  EXPECT_EQ(r.frame_length(), b.size());
  EXPECT_EQ(r.message_id(), (MessageId{0x0123456789abcdefULL, 42}));
  EXPECT_EQ(r.message_id_string(), "ID:0123456789abcdef000000000000002a");
  EXPECT_EQ(r.timestamp_ns(), 1'700'000'000'123'456'789LL);
  EXPECT_EQ(r.expiration_ns(), 1'700'000'060'000'000'000LL);
  EXPECT_EQ(r.delivery_time_ns(), 1'700'000'001'000'000'000LL);
  EXPECT_EQ(r.delivery_count(), 3U);
  EXPECT_TRUE(r.redelivered());
  EXPECT_EQ(r.priority(), 7);
  EXPECT_EQ(r.delivery_mode(), DeliveryMode::NonPersistent);
  EXPECT_EQ(r.correlation_id(), "corr-1");
  EXPECT_EQ(r.type(), "OrderCreated");
  EXPECT_EQ(r.reply_to(), "queue://replies");
  EXPECT_EQ(r.destination(), "topic://orders");
  EXPECT_EQ(r.body_type(), BodyType::Text);
  EXPECT_EQ(r.text(), "hello, \xE2\x82\xAC world");
}

TEST(Frame_test, DefaultsAndAbsentHeaders) {
  Buf b(256);
  FrameWriter w(b);
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  EXPECT_EQ(w.size(), kFrameHeaderSize);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b.data(), w.size())), DecodeStatus::Ok);
  EXPECT_EQ(r.priority(), 4);
  EXPECT_EQ(r.delivery_mode(), DeliveryMode::Persistent);
  EXPECT_FALSE(r.redelivered());
  EXPECT_FALSE(r.has_correlation_id());
  EXPECT_FALSE(r.has_type());
  EXPECT_EQ(r.body_type(), BodyType::None);
  EXPECT_TRUE(r.body().empty());
  EXPECT_TRUE(r.properties().empty());
  EXPECT_EQ(r.message_id_string(), "");
  EXPECT_TRUE(r.get("JMSMessageID").is_null());
  EXPECT_TRUE(r.get("JMSCorrelationID").is_null());
  EXPECT_TRUE(r.get("JMSType").is_null());
  EXPECT_TRUE(r.get("anything").is_null());
}

TEST(Frame_test, EmptyHeaderStringIsPresentNotNull) {
  Buf b(256);
  FrameWriter w(b);
  ASSERT_EQ(w.set_correlation_id(""), FrameStatus::Ok);
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b.data(), w.size())), DecodeStatus::Ok);
  EXPECT_TRUE(r.has_correlation_id());
  EXPECT_EQ(r.get("JMSCorrelationID").type, ValueType::String);
  EXPECT_EQ(r.get("JMSCorrelationID").s, "");
}

TEST(Frame_test, RoundTripsEveryPropertyTypeSortedByName) {
  const Buf b = full_frame();
  FrameReader r;
  ASSERT_EQ(r.open(b), DecodeStatus::Ok);
  const auto& p = r.properties();
  EXPECT_EQ(p.size(), 10U);
  EXPECT_EQ(r.property("zBool").type, ValueType::Bool);
  EXPECT_EQ(r.property("zBool").i, 1);
  EXPECT_EQ(r.property("aByte").type, ValueType::Int8);
  EXPECT_EQ(r.property("aByte").i, -5);
  EXPECT_EQ(r.property("short_").type, ValueType::Int16);
  EXPECT_EQ(r.property("short_").i, -30000);
  EXPECT_EQ(r.property("int$").i, 123456789);
  EXPECT_EQ(r.property("long").i, -9'000'000'000'000LL);
  EXPECT_EQ(r.property("flt").type, ValueType::Float);
  EXPECT_EQ(r.property("flt").d, 1.5);
  EXPECT_EQ(r.property("dbl").d, -2.25);
  EXPECT_EQ(r.property("str").s, "h\xC3\xA9llo");
  EXPECT_EQ(r.property("nul").type, ValueType::Null);
  EXPECT_TRUE(p.contains("nul"));
  EXPECT_FALSE(p.contains("missing"));
  EXPECT_TRUE(r.property("missing").is_null());
  std::string prev;
  std::size_t n = 0;
  for (const Entry e : p) {
    if (n++ > 0) {
      EXPECT_LT(prev, std::string(e.name));
    }
    prev = std::string(e.name);
  }
  EXPECT_EQ(n, 10U);
}

TEST(Frame_test, PropertySourceExposesJmsHeaders) {
  const Buf b = full_frame();
  FrameReader r;
  ASSERT_EQ(r.open(b), DecodeStatus::Ok);
  const PropertySource& src = r;
  EXPECT_EQ(src.get("JMSPriority").type, ValueType::Int32);
  EXPECT_EQ(src.get("JMSPriority").i, 7);
  EXPECT_EQ(src.get("JMSTimestamp").i, 1'700'000'000'123LL);
  EXPECT_EQ(src.get("JMSExpiration").i, 1'700'000'060'000LL);
  EXPECT_EQ(src.get("JMSDeliveryTime").i, 1'700'000'001'000LL);
  EXPECT_EQ(src.get("JMSDeliveryMode").s, "NON_PERSISTENT");
  EXPECT_EQ(src.get("JMSCorrelationID").s, "corr-1");
  EXPECT_EQ(src.get("JMSType").s, "OrderCreated");
  EXPECT_EQ(src.get("JMSMessageID").s, "ID:0123456789abcdef000000000000002a");
  EXPECT_EQ(src.get("JMSRedelivered").type, ValueType::Bool);
  EXPECT_EQ(src.get("JMSRedelivered").i, 1);
  EXPECT_EQ(src.get("JMSXDeliveryCount").i, 3);
  EXPECT_EQ(src.get("JMSReplyTo").s, "queue://replies");
  EXPECT_EQ(src.get("JMSDestination").s, "topic://orders");
  EXPECT_EQ(src.get("JMSXGroupID").s, "g1") << "JMSX properties are ordinary properties";
  EXPECT_EQ(src.get("int$").i, 123456789);
  EXPECT_TRUE(src.get("JMSNoSuchHeader").is_null());
  EXPECT_TRUE(src.get("JMS").is_null());
  EXPECT_TRUE(src.get("").is_null());
}

TEST(Frame_test, RoundTripsBytesBody) {
  Buf b(512);
  FrameWriter w(b);
  std::vector<std::byte> data(200);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7);
  ASSERT_EQ(w.set_bytes(data), FrameStatus::Ok);
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b.data(), w.size())), DecodeStatus::Ok);
  EXPECT_EQ(r.body_type(), BodyType::Bytes);
  ASSERT_EQ(r.body().size(), data.size());
  EXPECT_EQ(std::memcmp(r.body().data(), data.data(), data.size()), 0);
  EXPECT_EQ(r.text(), "") << "not a Text body";
}

TEST(Frame_test, RoundTripsEmptyBodies) {
  for (int kind = 0; kind < 5; ++kind) {
    Buf b(256);
    FrameWriter w(b);
    switch (kind) {
      case 0: ASSERT_EQ(w.set_text(""), FrameStatus::Ok); break;
      case 1: ASSERT_EQ(w.set_bytes(std::span<const std::byte>{}), FrameStatus::Ok); break;
      case 2: ASSERT_EQ(w.begin_map(), FrameStatus::Ok); break;
      case 3: ASSERT_EQ(w.begin_stream(), FrameStatus::Ok); break;
      case 4: ASSERT_EQ(w.set_object("", {}), FrameStatus::Ok); break;
    }
    ASSERT_EQ(w.finish(), FrameStatus::Ok);
    FrameReader r;
    ASSERT_EQ(r.open(std::span(b.data(), w.size())), DecodeStatus::Ok) << kind;
    EXPECT_EQ(static_cast<int>(r.body_type()), kind + 1);
    EXPECT_TRUE(r.map().empty());
    EXPECT_TRUE(r.stream().at_end());
    EXPECT_EQ(r.object_type(), "");
  }
}

TEST(Frame_test, RoundTripsMapBody) {
  Buf b(1024);
  FrameWriter w(b);
  ASSERT_EQ(w.add_property("p", Value::int32(1)), FrameStatus::Ok);
  ASSERT_EQ(w.begin_map(), FrameStatus::Ok);
  ASSERT_EQ(w.add_map_entry("name with spaces", Value::string("v")), FrameStatus::Ok);
  ASSERT_EQ(w.add_map_entry("bytes", Value::bytes(std::string_view("\0\1\2", 3))), FrameStatus::Ok);
  ASSERT_EQ(w.add_map_entry("char", Value::character(u'\u00e9')), FrameStatus::Ok);
  ASSERT_EQ(w.add_map_entry("i16", Value::int16(300)), FrameStatus::Ok);
  ASSERT_EQ(w.add_map_entry("null", Value::null()), FrameStatus::Ok);
  ASSERT_EQ(w.add_map_entry("NULL", Value::float64(3.5)), FrameStatus::Ok) << "map names are not identifiers";
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b.data(), w.size())), DecodeStatus::Ok);
  ASSERT_EQ(r.body_type(), BodyType::Map);
  const MapReader m = r.map();
  EXPECT_EQ(m.size(), 6U);
  EXPECT_EQ(m.get_string("name with spaces").view(), "v");
  EXPECT_EQ(m.get_bytes("bytes").value, std::string_view("\0\1\2", 3));
  EXPECT_EQ(m.get_char("char").value, u'\u00e9');
  EXPECT_EQ(m.get_string("char").view(), "\xC3\xA9");
  EXPECT_EQ(m.get_int32("i16").value, 300);
  EXPECT_EQ(m.get_int8("i16").status, ConvertStatus::TypeMismatch);
  EXPECT_EQ(m.get_string("null").status, ConvertStatus::Null);
  EXPECT_EQ(m.get_double("NULL").value, 3.5);
  EXPECT_EQ(m.get_bytes("i16").status, ConvertStatus::TypeMismatch);
  EXPECT_EQ(m.get_int32("absent").status, ConvertStatus::Null);
  EXPECT_EQ(r.get_int32("p").value, 1) << "properties and map are separate tables";
  EXPECT_TRUE(m.find("p").is_null());
}

TEST(Frame_test, RoundTripsStreamBodyInOrderWithTypeMismatch) {
  Buf b(1024);
  FrameWriter w(b);
  ASSERT_EQ(w.begin_stream(), FrameStatus::Ok);
  ASSERT_EQ(w.add_stream_value(Value::int16(12)), FrameStatus::Ok);
  ASSERT_EQ(w.add_stream_value(Value::string("42")), FrameStatus::Ok);
  ASSERT_EQ(w.add_stream_value(Value::bytes("xyz")), FrameStatus::Ok);
  ASSERT_EQ(w.add_stream_value(Value::null()), FrameStatus::Ok);
  ASSERT_EQ(w.add_stream_value(Value::float32(0.5f)), FrameStatus::Ok);
  ASSERT_EQ(w.add_stream_value(Value::character(u'A')), FrameStatus::Ok);
  ASSERT_EQ(w.add_stream_value(Value::boolean(false)), FrameStatus::Ok);
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b.data(), w.size())), DecodeStatus::Ok);
  StreamReader s = r.stream();
  EXPECT_EQ(s.read_int8().status, ConvertStatus::TypeMismatch) << "short is not readable as byte";
  EXPECT_EQ(s.read_int64().value, 12) << "a failed read does not advance";
  EXPECT_EQ(s.read_int32().value, 42) << "String -> int parses";
  EXPECT_EQ(s.read_string().status, ConvertStatus::TypeMismatch) << "byte[] is only byte[]";
  EXPECT_EQ(s.read_bytes().value, "xyz");
  EXPECT_EQ(s.read_string().status, ConvertStatus::Null);
  EXPECT_EQ(s.read_double().value, 0.5);
  EXPECT_EQ(s.read_char().value, u'A');
  EXPECT_EQ(s.read_bool().value, false);
  EXPECT_TRUE(s.at_end());
  EXPECT_EQ(s.read_int32().status, ConvertStatus::TypeMismatch) << "past the end";
  s.reset();
  Value v;
  std::size_t n = 0;
  while (s.next(v)) ++n;
  EXPECT_EQ(n, 7U);
}

TEST(Frame_test, RoundTripsObjectBody) {
  Buf b(512);
  FrameWriter w(b);
  ASSERT_EQ(w.set_object("com.example.Order", as_span("\x01\x02payload")), FrameStatus::Ok);
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b.data(), w.size())), DecodeStatus::Ok);
  EXPECT_EQ(r.body_type(), BodyType::Object);
  EXPECT_EQ(r.object_type(), "com.example.Order");
  const auto d = r.object_data();
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()), "\x01\x02payload");
}

TEST(Frame_test, ReaderWorksOnUnalignedBuffers) {
  const Buf f = full_frame();
  Buf shifted(f.size() + 3);
  std::memcpy(shifted.data() + 3, f.data(), f.size());
  FrameReader r;
  ASSERT_EQ(r.open(std::span(shifted.data() + 3, f.size())), DecodeStatus::Ok);
  EXPECT_EQ(r.property("long").i, -9'000'000'000'000LL);
  // And the writer at an odd address.
  Buf wb(600);
  FrameWriter w(std::span(wb.data() + 1, 599));
  ASSERT_EQ(w.add_property("b", Value::int32(2)), FrameStatus::Ok);
  ASSERT_EQ(w.add_property("a", Value::int32(1)), FrameStatus::Ok);
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  Exact copy(std::span<const std::byte>(wb.data() + 1, w.size()));
  ASSERT_EQ(r.open(copy.span()), DecodeStatus::Ok);
  EXPECT_EQ(r.property("a").i, 1);
  EXPECT_EQ(r.property("b").i, 2);
}

// --- limits ----------------------------------------------------------------------------------------
TEST(Frame_test, TooSmallBufferIsTooLargeAndNeverHalfValid) {
  const Buf full = full_frame();
  for (std::size_t cap = 0; cap < full.size(); ++cap) {
    Buf b(cap + 8, std::byte{0x5A});  // stale bytes from an earlier message
    if (cap >= 4) std::memcpy(b.data(), full.data(), 4);  // even a stale valid magic
    FrameWriter w(std::span(b.data(), cap));
    w.set_correlation_id("corr-1");
    w.set_type("OrderCreated");
    w.set_reply_to("queue://replies");
    w.set_destination("topic://orders");
    w.add_property("zBool", Value::boolean(true));
    for (int i = 0; i < 9; ++i) w.add_property("p" + std::to_string(i), Value::int64(i));
    w.set_text("hello, \xE2\x82\xAC world");
    EXPECT_EQ(w.finish(), FrameStatus::TooLarge) << cap;
    EXPECT_EQ(w.size(), 0U);
    FrameReader r;
    EXPECT_NE(r.open(std::span(b.data(), b.size())), DecodeStatus::Ok) << cap;
    EXPECT_EQ(b[cap], std::byte{0x5A}) << "wrote past its capacity at " << cap;
  }
  Buf exact(full.size() + 16);
  FrameWriter w(exact);
  ASSERT_EQ(w.set_bytes(std::span(full.data(), full.size() - kFrameHeaderSize)), FrameStatus::Ok);
  EXPECT_EQ(w.finish(), FrameStatus::Ok);
}

TEST(Frame_test, ExactCapacityFits) {
  Buf probe(1024);
  FrameWriter w1(probe);
  w1.add_property("k", Value::string("v"));
  w1.set_text("body");
  ASSERT_EQ(w1.finish(), FrameStatus::Ok);
  const std::size_t need = w1.size();
  // Alignment padding of the index depends on the address: allow up to 3 bytes of slack.
  bool fitted = false;
  for (std::size_t cap = need - 3; cap <= need + 3; ++cap) {
    std::unique_ptr<std::byte[]> m(new std::byte[cap]);
    FrameWriter w(std::span(m.get(), cap));
    w.add_property("k", Value::string("v"));
    w.set_text("body");
    if (w.finish() == FrameStatus::Ok) {
      fitted = true;
      FrameReader r;
      EXPECT_EQ(r.open(std::span<const std::byte>(m.get(), w.size())), DecodeStatus::Ok);
    }
  }
  EXPECT_TRUE(fitted);
}

TEST(Frame_test, MaximumPropertyCount) {
  Buf b(1 << 20);
  FrameWriter w(b);
  for (std::uint32_t i = 0; i < kMaxProperties; ++i)
    ASSERT_EQ(w.add_property("p" + std::to_string(kMaxProperties - i), Value::int32(static_cast<std::int32_t>(i))), FrameStatus::Ok);
  EXPECT_EQ(w.add_property("one_too_many", Value::int32(0)), FrameStatus::InvalidArgument);
  Buf b2(1 << 20);
  FrameWriter w2(b2);
  for (std::uint32_t i = 0; i < kMaxProperties; ++i)
    ASSERT_EQ(w2.add_property("p" + std::to_string(kMaxProperties - i), Value::int32(static_cast<std::int32_t>(i))), FrameStatus::Ok);
  ASSERT_EQ(w2.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b2.data(), w2.size())), DecodeStatus::Ok);
  EXPECT_EQ(r.properties().size(), kMaxProperties);
  for (std::uint32_t i = 0; i < kMaxProperties; ++i)
    ASSERT_EQ(r.get_int32("p" + std::to_string(kMaxProperties - i)).value, static_cast<std::int32_t>(i));
}

TEST(Frame_test, LargeValuesAndLongNames) {
  Buf b(1 << 20);
  FrameWriter w(b);
  const std::string long_name = "n" + std::string(kMaxNameLength - 1, 'x');
  const std::string big(300'000, 'v');
  ASSERT_EQ(w.add_property(long_name, Value::string(big)), FrameStatus::Ok);
  EXPECT_EQ(w.add_property(long_name + "y", Value::int32(1)), FrameStatus::InvalidArgument) << "name over 65535 bytes";
  Buf b2(1 << 20);
  FrameWriter w2(b2);
  ASSERT_EQ(w2.add_property(long_name, Value::string(big)), FrameStatus::Ok);
  ASSERT_EQ(w2.add_property("empty", Value::string("")), FrameStatus::Ok);
  ASSERT_EQ(w2.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(b2.data(), w2.size())), DecodeStatus::Ok);
  EXPECT_EQ(r.property(long_name).s.size(), big.size());
  EXPECT_EQ(r.property("empty").type, ValueType::String);
  EXPECT_EQ(r.property("empty").s, "");
}

TEST(Frame_test, RejectsBadArgumentsStickily) {
  {
    Buf b(256);
    FrameWriter w(b);
    EXPECT_EQ(w.set_priority(10), FrameStatus::InvalidArgument);
    EXPECT_EQ(w.set_text("ok"), FrameStatus::InvalidArgument) << "sticky";
    EXPECT_EQ(w.finish(), FrameStatus::InvalidArgument);
  }
  auto one = [](auto&& f) {
    Buf b(4096);
    FrameWriter w(b);
    f(w);
    const auto s = w.finish();
    FrameReader r;
    EXPECT_NE(r.open(b), DecodeStatus::Ok) << "a failed frame never reads as valid";
    return s;
  };
  EXPECT_EQ(one([](FrameWriter& w) { w.set_priority(-1); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.set_delivery_mode(static_cast<DeliveryMode>(3)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("a", Value::int32(1)); w.add_property("a", Value::int32(2)); }),
            FrameStatus::InvalidArgument) << "duplicate property";
  EXPECT_EQ(one([](FrameWriter& w) { w.begin_map(); w.add_map_entry("k", Value::int32(1)); w.add_map_entry("k", Value::null()); }),
            FrameStatus::InvalidArgument) << "duplicate map entry";
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("1abc", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("a-b", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("between", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("JMSPriority", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("JMSXDeliveryCount", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("b", Value::bytes("x")); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("c", Value::character(u'x')); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("c", Value{ValueType::Int8, 200, 0, {}}); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("c", Value{static_cast<ValueType>(11), 0, 0, {}}); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("s", Value::string("\xC0\xAF")); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.set_text("x"); w.add_property("late", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.add_property("p", Value::int32(1)); w.set_type("late"); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.set_text("a"); w.set_text("b"); }), FrameStatus::InvalidArgument) << "two bodies";
  EXPECT_EQ(one([](FrameWriter& w) { w.add_map_entry("k", Value::int32(1)); }), FrameStatus::InvalidArgument) << "no begin_map";
  EXPECT_EQ(one([](FrameWriter& w) { w.begin_map(); w.add_map_entry("", Value::int32(1)); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.begin_stream(); w.add_stream_value(Value{ValueType::Char, 70000, 0, {}}); }), FrameStatus::InvalidArgument);
  EXPECT_EQ(one([](FrameWriter& w) { w.set_object("\xFF", {}); }), FrameStatus::InvalidArgument);
  Buf b(256);
  FrameWriter w(b);
  ASSERT_EQ(w.finish(), FrameStatus::Ok);
  EXPECT_EQ(w.finish(), FrameStatus::InvalidArgument) << "finish twice";
}

// --- UTF-8 -------------------------------------------------------------------------------------------
TEST(Frame_test, Utf8Validation) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain ascii, long enough for the 8-byte path"));
  EXPECT_TRUE(valid_utf8("\xC2\x80"));               // U+0080
  EXPECT_TRUE(valid_utf8("\xDF\xBF"));               // U+07FF
  EXPECT_TRUE(valid_utf8("\xE0\xA0\x80"));           // U+0800
  EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));           // U+D7FF
  EXPECT_TRUE(valid_utf8("\xEE\x80\x80"));           // U+E000
  EXPECT_TRUE(valid_utf8("\xEF\xBF\xBF"));           // U+FFFF
  EXPECT_TRUE(valid_utf8("\xF0\x90\x80\x80"));       // U+10000
  EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));       // U+10FFFF
  EXPECT_TRUE(valid_utf8(std::string_view("a\0b", 3)));
  EXPECT_FALSE(valid_utf8("\x80"));                  // lone continuation
  EXPECT_FALSE(valid_utf8("\xC0\x80"));              // overlong NUL
  EXPECT_FALSE(valid_utf8("\xC1\xBF"));              // overlong
  EXPECT_FALSE(valid_utf8("\xE0\x9F\xBF"));          // overlong 3-byte
  EXPECT_FALSE(valid_utf8("\xF0\x8F\xBF\xBF"));      // overlong 4-byte
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));          // U+D800 surrogate
  EXPECT_FALSE(valid_utf8("\xED\xBF\xBF"));          // U+DFFF surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));      // U+110000
  EXPECT_FALSE(valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(valid_utf8("\xFF"));
  EXPECT_FALSE(valid_utf8("\xE2\x82"));              // truncated
  EXPECT_FALSE(valid_utf8("abcdefgh\xE2\x82"));      // truncated after the fast path
  EXPECT_FALSE(valid_utf8("\xE2\x28\xA1"));          // bad continuation
}

TEST(Frame_test, NonUtf8TextIsRejectedOnWriteAndOnRead) {
  Buf b(256);
  FrameWriter w(b);
  EXPECT_EQ(w.set_text("bad \xED\xA0\x80 surrogate"), FrameStatus::InvalidArgument);
  EXPECT_EQ(w.finish(), FrameStatus::InvalidArgument);
  // Forge one: write a valid Text frame, then corrupt its body.
  Buf g(256);
  FrameWriter w2(g);
  ASSERT_EQ(w2.set_text("abcd"), FrameStatus::Ok);
  ASSERT_EQ(w2.finish(), FrameStatus::Ok);
  FrameReader r;
  ASSERT_EQ(r.open(std::span(g.data(), w2.size())), DecodeStatus::Ok);
  const std::size_t len = w2.size();
  ASSERT_GT(len, 2U);
  g.at(len - 2) = std::byte{0xC0};
  EXPECT_EQ(r.open(std::span(g.data(), w2.size())), DecodeStatus::BadUtf8);
  EXPECT_FALSE(r.valid());
  // Header strings too.
  Buf h(256);
  FrameWriter w3(h);
  EXPECT_EQ(w3.set_type("\xF8\x88\x80\x80\x80"), FrameStatus::InvalidArgument);
}

TEST(Frame_test, PropertyNames) {
  EXPECT_TRUE(valid_property_name("a"));
  EXPECT_TRUE(valid_property_name("_x$9"));
  EXPECT_TRUE(valid_property_name("\xC3\xA9t\xC3\xA9"));
  EXPECT_TRUE(valid_property_name("JMSXGroupID"));
  EXPECT_TRUE(valid_property_name("JMS_vendor"));
  EXPECT_TRUE(valid_property_name("INx"));
  EXPECT_TRUE(valid_property_name("Jms"));
  EXPECT_FALSE(valid_property_name("JMSType"));
  EXPECT_FALSE(valid_property_name("9a"));
  EXPECT_FALSE(valid_property_name("a b"));
  EXPECT_FALSE(valid_property_name("a.b"));
  EXPECT_FALSE(valid_property_name("null"));
  EXPECT_FALSE(valid_property_name("Escape"));
  EXPECT_FALSE(valid_property_name("\xC3"));
}

// --- the JMS conversion table -------------------------------------------------------------------------
// Rows: the stored type; columns: the type read. 'Y' converts, '-' is a TypeMismatch.
// Columns: bool byte short int long float double String char bytes
TEST(Frame_test, ConversionTable) {
  struct Row {
    Value v;
    const char* allowed;
  };
  const Row rows[] = {
      {Value::boolean(true), "Y------Y--"},
      {Value::int8(5), "-YYYY--Y--"},
      {Value::int16(5), "--YYY--Y--"},
      {Value::int32(5), "---YY--Y--"},
      {Value::int64(5), "----Y--Y--"},
      {Value::float32(5), "-----YYY--"},
      {Value::float64(5), "------YY--"},
      {Value::string("5"), "YYYYYYYY--"},
      {Value::character(u'5'), "-------YY-"},
      {Value::bytes("5"), "---------Y"},
  };
  for (const Row& row : rows) {
    const ConvertStatus got[] = {as_bool(row.v).status,   as_int8(row.v).status,  as_int16(row.v).status,
                                 as_int32(row.v).status,  as_int64(row.v).status, as_float(row.v).status,
                                 as_double(row.v).status, as_string(row.v).status, as_char(row.v).status,
                                 as_bytes(row.v).status};
    for (int c = 0; c < 10; ++c) {
      const ConvertStatus want = row.allowed[c] == 'Y' ? ConvertStatus::Ok : ConvertStatus::TypeMismatch;
      EXPECT_EQ(got[c], want) << "type " << static_cast<int>(row.v.type) << " column " << c;
    }
  }
  // Null (missing): String -> null, boolean -> false, the rest Null (JMS NumberFormatException).
  const Value n = Value::null();
  EXPECT_EQ(as_string(n).status, ConvertStatus::Null);
  EXPECT_TRUE(as_string(n).view().empty());
  EXPECT_EQ(as_bool(n).status, ConvertStatus::Null);
  EXPECT_FALSE(as_bool(n).value);
  EXPECT_EQ(as_int32(n).status, ConvertStatus::Null);
  EXPECT_EQ(as_double(n).status, ConvertStatus::Null);
}

TEST(Frame_test, ConversionValues) {
  EXPECT_EQ(as_int64(Value::int8(-7)).value, -7);
  EXPECT_EQ(as_int32(Value::int16(-300)).value, -300);
  EXPECT_EQ(as_double(Value::float32(0.1f)).value, static_cast<double>(0.1f));
  EXPECT_EQ(as_string(Value::boolean(true)).view(), "true");
  EXPECT_EQ(as_string(Value::boolean(false)).view(), "false");
  EXPECT_EQ(as_string(Value::int8(-128)).view(), "-128");
  EXPECT_EQ(as_string(Value::int64(INT64_MIN)).view(), "-9223372036854775808");
  EXPECT_EQ(as_string(Value::float64(1.0)).view(), "1.0");
  EXPECT_EQ(as_string(Value::float64(-2.5)).view(), "-2.5");
  EXPECT_EQ(as_string(Value::float64(0.001)).view(), "0.001");
  EXPECT_EQ(as_string(Value::float64(1234567.0)).view(), "1234567.0");
  EXPECT_EQ(as_string(Value::float64(1e7)).view(), "1.0E7");
  EXPECT_EQ(as_string(Value::float64(1.5e-5)).view(), "1.5E-5");
  EXPECT_EQ(as_string(Value::float64(-1.7976931348623157e308)).view(), "-1.7976931348623157E308");
  EXPECT_EQ(as_string(Value::float64(0.0)).view(), "0.0");
  EXPECT_EQ(as_string(Value::float64(-0.0)).view(), "-0.0");
  EXPECT_EQ(as_string(Value::float64(std::nan(""))).view(), "NaN");
  EXPECT_EQ(as_string(Value::float64(-INFINITY)).view(), "-Infinity");
  EXPECT_EQ(as_string(Value::float32(0.1f)).view(), "0.1") << "float formats as float, not as its widened double";
  EXPECT_EQ(as_string(Value::float32(3.4028235e38f)).view(), "3.4028235E38");
  EXPECT_EQ(as_string(Value::character(u'\u20ac')).view(), "\xE2\x82\xAC");
  EXPECT_EQ(as_string(Value::character(u'\xd800')).status, ConvertStatus::TypeMismatch);
  // A StringConverted holding formatted text survives a copy.
  StringConverted a = as_string(Value::int32(77));
  StringConverted b2 = a;
  a = as_string(Value::int32(1));
  EXPECT_EQ(b2.view(), "77");

  // String -> boolean: Boolean.valueOf (case-insensitive "true"; anything else false, never an error).
  EXPECT_TRUE(as_bool(Value::string("TrUe")).value);
  EXPECT_FALSE(as_bool(Value::string("yes")).value);
  EXPECT_TRUE(as_bool(Value::string("yes")).ok());
  // String -> integers: Java parse rules.
  EXPECT_EQ(as_int8(Value::string("127")).value, 127);
  EXPECT_EQ(as_int8(Value::string("128")).status, ConvertStatus::NumberFormat);
  EXPECT_EQ(as_int8(Value::string("-128")).value, -128);
  EXPECT_EQ(as_int16(Value::string("+32767")).value, 32767);
  EXPECT_EQ(as_int16(Value::string("32768")).status, ConvertStatus::NumberFormat);
  EXPECT_EQ(as_int32(Value::string("-2147483648")).value, INT32_MIN);
  EXPECT_EQ(as_int64(Value::string("9223372036854775807")).value, INT64_MAX);
  EXPECT_EQ(as_int64(Value::string("9223372036854775808")).status, ConvertStatus::NumberFormat);
  for (const char* bad : {"", " 1", "1 ", "1.0", "0x10", "+-1", "+", "-", "1e3", "abc"})
    EXPECT_EQ(as_int32(Value::string(bad)).status, ConvertStatus::NumberFormat) << '"' << bad << '"';
  // String -> floating: Double.valueOf rules.
  EXPECT_EQ(as_double(Value::string("2.5")).value, 2.5);
  EXPECT_EQ(as_double(Value::string(" -1e3 ")).value, -1000.0);
  EXPECT_EQ(as_double(Value::string("+.5")).value, 0.5);
  EXPECT_EQ(as_double(Value::string("1.5d")).value, 1.5);
  EXPECT_EQ(as_float(Value::string("0.1f")).value, 0.1f);
  EXPECT_TRUE(std::isnan(as_double(Value::string("NaN")).value));
  EXPECT_EQ(as_double(Value::string("-Infinity")).value, -INFINITY);
  EXPECT_EQ(as_double(Value::string("1e400")).value, INFINITY);
  EXPECT_EQ(as_double(Value::string("1e-400")).value, 0.0);
  EXPECT_EQ(as_float(Value::string("1e39")).value, INFINITY);
  for (const char* bad : {"", "inf", "nan", "1.2.3", "--1", "1e", "x1", "0x"})
    EXPECT_EQ(as_double(Value::string(bad)).status, ConvertStatus::NumberFormat) << '"' << bad << '"';
}

TEST(Frame_test, TypedPropertyGettersOnAFrame) {
  const Buf b = full_frame();
  FrameReader r;
  ASSERT_EQ(r.open(b), DecodeStatus::Ok);
  EXPECT_EQ(r.get_int64("aByte").value, -5);
  EXPECT_EQ(r.get_int16("int$").status, ConvertStatus::TypeMismatch);
  EXPECT_EQ(r.get_double("flt").value, 1.5);
  EXPECT_EQ(r.get_float("dbl").status, ConvertStatus::TypeMismatch);
  EXPECT_EQ(r.get_string("int$").view(), "123456789");
  EXPECT_EQ(r.get_string("zBool").view(), "true");
  EXPECT_EQ(r.get_bool("zBool").value, true);
  EXPECT_EQ(r.get_int32("str").status, ConvertStatus::NumberFormat);
  EXPECT_EQ(r.get_int32("missing").status, ConvertStatus::Null);
  EXPECT_EQ(r.get_string("missing").status, ConvertStatus::Null);
  EXPECT_EQ(r.get_bool("missing").value, false);
  EXPECT_EQ(r.get_int8("nul").status, ConvertStatus::Null);
}

// --- hostile input -------------------------------------------------------------------------------------
template <class T>
void poke(Buf& b, std::size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

TEST(Frame_test, RejectsSpecificCorruptions) {
  const Buf good = full_frame();
  FrameReader r;
  auto check = [&](Buf b, DecodeStatus want, const char* what) {
    Exact e(b);
    EXPECT_EQ(r.open(e.span()), want) << what;
  };
  check(Buf(good.begin(), good.begin() + 7), DecodeStatus::Truncated, "7 bytes");
  check(Buf(good.begin(), good.begin() + 100), DecodeStatus::Truncated, "short of the header");
  check(Buf(good.begin(), good.end() - 1), DecodeStatus::Truncated, "short of frame_length");
  { Buf b = good; b[0] = std::byte{'X'}; check(b, DecodeStatus::BadMagic, "magic"); }
  { Buf b = good; b[4] = std::byte{2}; check(b, DecodeStatus::BadVersion, "version"); }
  { Buf b = good; b[5] = std::byte{6}; check(b, DecodeStatus::BadHeader, "body type"); }
  { Buf b = good; b[6] = std::byte{10}; check(b, DecodeStatus::BadHeader, "priority"); }
  { Buf b = good; b[7] = std::byte{0}; check(b, DecodeStatus::BadHeader, "delivery mode"); }
  { Buf b = good; poke<std::uint16_t>(b, 8, 2); check(b, DecodeStatus::BadHeader, "unknown flag"); }
  { Buf b = good; poke<std::uint16_t>(b, 10, 100); check(b, DecodeStatus::BadHeader, "header size"); }
  { Buf b = good; poke<std::uint32_t>(b, 68, 1'000'000); check(b, DecodeStatus::BadHeader, "string past the end"); }
  { Buf b = good; poke<std::uint32_t>(b, 64, 8); check(b, DecodeStatus::BadHeader, "string inside the header"); }
  { Buf b = good; poke<std::uint32_t>(b, 64, 0xFFFF'FFF0u); check(b, DecodeStatus::BadHeader, "offset wraps"); }
  { Buf b = good; poke<std::uint32_t>(b, 100, 0xFFFF'FFFFu); check(b, DecodeStatus::BadHeader, "properties length"); }
  { Buf b = good; poke<std::uint32_t>(b, 108, 0xFFFF'FFFFu); check(b, DecodeStatus::BadHeader, "body length"); }
  { Buf b = good; poke<std::uint32_t>(b, 12, 0xFFFF'FFFFu); check(b, DecodeStatus::Truncated, "frame length"); }
  {
    // Property count pointed past the table.
    FrameHeader h;
    std::memcpy(&h, good.data(), sizeof h);
    Buf b = good;
    poke<std::uint32_t>(b, h.properties.offset + h.properties.length - 4, 0x4000'0000u);
    check(b, DecodeStatus::BadProperties, "count");
    b = good;
    poke<std::uint32_t>(b, h.properties.offset + h.properties.length - 8, 0xFFFF'FF00u);
    check(b, DecodeStatus::BadProperties, "index entry");
    b = good;
    // Swap two index entries: no longer sorted.
    const std::size_t idx = h.properties.offset + h.properties.length - 4 - 4 * 10;
    std::uint32_t a, c;
    std::memcpy(&a, b.data() + idx, 4);
    std::memcpy(&c, b.data() + idx + 4, 4);
    poke(b, idx, c);
    poke(b, idx + 4, a);
    check(b, DecodeStatus::BadProperties, "unsorted");
    b = good;
    poke(b, idx + 4, a);
    check(b, DecodeStatus::BadProperties, "duplicate");
  }
}

/// Opens `b` and, when accepted, touches everything it exposes (the ASan build checks the bounds).
std::size_t exercise(std::span<const std::byte> b) {
  FrameReader r;
  if (r.open(b) != DecodeStatus::Ok) return 0;
  std::size_t sum = r.correlation_id().size() + r.type().size() + r.reply_to().size() + r.destination().size();
  for (const Entry e : r.properties()) {
    sum += e.name.size() + e.value.s.size();
    sum += as_string(e.value).view().size();
    sum += r.get(e.name).s.size();
  }
  for (const char* h : {"JMSPriority", "JMSMessageID", "JMSCorrelationID", "JMSType", "JMSDeliveryMode"})
    sum += r.get(h).s.size();
  sum += r.body().size() + r.text().size() + r.object_type().size() + r.object_data().size();
  for (const Entry e : r.map()) sum += e.name.size() + r.map().find(e.name).s.size();
  StreamReader s = r.stream();
  Value v;
  while (s.next(v)) sum += v.s.size() + 1;
  return sum + 1;
}

std::vector<Buf> corpus_seeds() {
  std::vector<Buf> seeds{full_frame()};
  {
    Buf b(2048);
    FrameWriter w(b);
    w.add_property("x", Value::int32(1));
    w.begin_map();
    w.add_map_entry("a", Value::bytes("zz"));
    w.add_map_entry("b", Value::string("yy"));
    w.add_map_entry("c", Value::character(u'c'));
    EXPECT_EQ(w.finish(), FrameStatus::Ok);
    b.resize(w.size());
    seeds.push_back(b);
  }
  {
    Buf b(2048);
    FrameWriter w(b);
    w.begin_stream();
    for (int t = 0; t <= 10; ++t) w.add_stream_value(Value{static_cast<ValueType>(t), 1, 1.0, "s"});
    EXPECT_EQ(w.finish(), FrameStatus::Ok);
    b.resize(w.size());
    seeds.push_back(b);
  }
  {
    Buf b(2048);
    FrameWriter w(b);
    w.set_type("t");
    w.set_object("T", as_span("obj"));
    EXPECT_EQ(w.finish(), FrameStatus::Ok);
    b.resize(w.size());
    seeds.push_back(b);
  }
  return seeds;
}

TEST(Frame_test, RandomBuffersNeverReadOutOfBounds) {
  std::mt19937_64 rng(12345);
  std::size_t accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::size_t n = rng() % 400;
    Exact e{Buf(n)};
    for (std::size_t k = 0; k < n; ++k) e.mem[k] = static_cast<std::byte>(rng());
    // Give most of them a real magic/version so the reader gets past the first check.
    if (n >= 16 && (i % 4) != 0) {
      std::memcpy(e.mem.get(), &kFrameMagic, 4);
      e.mem[4] = std::byte{kFrameVersion};
      if (i % 2) { const auto len = static_cast<std::uint32_t>(n - rng() % 8); std::memcpy(e.mem.get() + 12, &len, 4); }
    }
    accepted += exercise(e.span()) ? 1 : 0;
  }
  SUCCEED() << accepted << " random buffers accepted";
}

TEST(Frame_test, MutatedFramesAreRejectedOrReadCleanly) {
  std::mt19937_64 rng(777);
  const auto seeds = corpus_seeds();
  for (const Buf& s : seeds) {
    Exact e(s);
    ASSERT_NE(exercise(e.span()), 0U) << "the seeds are valid";
  }
  std::size_t accepted = 0, total = 0;
  for (int i = 0; i < 20000; ++i) {
    Buf b = seeds[rng() % seeds.size()];
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      switch (rng() % 6) {
        case 0:  // bit flip
          b[rng() % b.size()] ^= static_cast<std::byte>(1U << (rng() % 8));
          break;
        case 1:  // random byte
          b[rng() % b.size()] = static_cast<std::byte>(rng());
          break;
        case 2:  // truncation
          if (b.size() > 1) b.resize(rng() % b.size());
          break;
        case 3: {  // a u32 somewhere (a length/offset/count/index) pointed past the end or near it
          if (b.size() < 4) break;
          const std::size_t at = rng() % (b.size() - 3);
          const std::uint32_t vals[] = {static_cast<std::uint32_t>(b.size()), static_cast<std::uint32_t>(b.size() + 1),
                                        static_cast<std::uint32_t>(b.size() - 1), 0xFFFF'FFFFu, 0x8000'0000u,
                                        static_cast<std::uint32_t>(rng() % (b.size() + 8))};
          poke(b, at, vals[rng() % 6]);
          break;
        }
        case 4: {  // a header reference's length pointed past the end
          const std::size_t field = 64 + 8 * (rng() % 6);
          if (b.size() >= field + 8) poke<std::uint32_t>(b, field + 4, static_cast<std::uint32_t>(b.size() + rng() % 16));
          break;
        }
        case 5: {  // a u16 name length or a type tag
          if (b.size() < 2) break;
          const std::size_t at = rng() % (b.size() - 1);
          if (rng() % 2) poke<std::uint16_t>(b, at, static_cast<std::uint16_t>(rng()));
          else b[at] = static_cast<std::byte>(rng() % 16);
          break;
        }
      }
      if (b.empty()) break;
    }
    Exact e(b);
    accepted += exercise(e.span()) ? 1 : 0;
    ++total;
  }
  EXPECT_GT(accepted, 0U) << "some mutations (e.g. of a value byte) must stay valid";
  EXPECT_LT(accepted, total);
}

}  // namespace
}  // namespace shmbus::message
