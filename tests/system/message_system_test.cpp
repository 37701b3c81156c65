// The JMS message model through a real shmbusd (issue 5): every body and property type round
// trips through a topic and a queue, the headers a send sets, message ids unique across producers
// and daemon restarts, bad input refused with nothing sent, expired messages never delivered,
// selectors on topic and queue consumers (on a queue, what does not match stays for others) and
// on browsers, and no allocation on the Text/Bytes send and receive paths.
#include "system_fixture.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

// Counts heap allocations made by the thread that armed the counter (the rest of the binary is
// unaffected: the replacement only counts).
namespace {
thread_local bool g_count_allocs = false;
thread_local std::uint64_t g_allocs = 0;
}  // namespace
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // the replacement pair is malloc/free on purpose
void* operator new(std::size_t n) {
  if (g_count_allocs) ++g_allocs;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace shmbus::systest {
namespace {

using namespace std::chrono_literals;

struct Point {
  std::int32_t x = 0, y = 0;
  std::string label;
  friend bool operator==(const Point&, const Point&) = default;
};

void register_point() {
  Serializers::add<Point>(
      "test.Point",
      [](const Point& p, std::vector<std::byte>& out) {
        BytesMessage b;  // reuse the typed writers as a tiny serializer
        b.write_int(p.x);
        b.write_int(p.y);
        b.write_string(p.label);
        out = b.data();
      },
      [](std::span<const std::byte> in) {
        BytesReader r(in);
        Point p;
        auto x = r.read_int(), y = r.read_int();
        auto l = r.read_string();
        if (!x.ok() || !y.ok() || !l.ok() || r.remaining() != 0) throw std::runtime_error("bad Point bytes");
        p.x = x.value;
        p.y = y.value;
        p.label = std::string(l.value);
        return p;
      });
}

class MessageSystem_test : public SystemTest, public ::testing::WithParamInterface<const char*> {
 protected:
  Destination dest() const { return Destination::parse(std::string(GetParam()) + "://m"); }
};

/// Receives one message within 5 s or fails.
bool recv1(MessageConsumer& c, Message& m) {
  const auto r = c.receive(m, 5s);
  EXPECT_EQ(r.status, Status::Ok) << to_string(r.status);
  return r.status == Status::Ok;
}

void set_all_properties(OutgoingMessage& m) {
  m.set_bool_property("b", true);
  m.set_byte_property("i8", -8);
  m.set_short_property("i16", -1600);
  m.set_int_property("i32", 320000);
  m.set_long_property("i64", -(std::int64_t{1} << 40));
  m.set_float_property("f", 1.5f);
  m.set_double_property("d", 2.25);
  m.set_string_property("s", "h\xC3\xA9llo");  // UTF-8
  m.set_string_property("empty", "");
}

void check_all_properties(const Message& m) {
  EXPECT_EQ(m.properties().size(), 9U);
  EXPECT_TRUE(m.get_bool_property("b").value);
  EXPECT_EQ(m.property("i8").type, ValueType::Int8);
  EXPECT_EQ(m.get_byte_property("i8").value, -8);
  EXPECT_EQ(m.get_short_property("i16").value, -1600);
  EXPECT_EQ(m.get_int_property("i32").value, 320000);
  EXPECT_EQ(m.get_long_property("i64").value, -(std::int64_t{1} << 40));
  EXPECT_EQ(m.get_float_property("f").value, 1.5f);
  EXPECT_EQ(m.get_double_property("d").value, 2.25);
  EXPECT_EQ(m.get_string_property("s").view(), "h\xC3\xA9llo");
  EXPECT_TRUE(m.property_exists("empty"));
  EXPECT_EQ(m.get_string_property("empty").view(), "");
  // JMS conversions: a byte reads as a long, an int as a string; a string does not read as a bool
  // unless it says true/false, and an absent property is null.
  EXPECT_EQ(m.get_long_property("i8").value, -8);
  EXPECT_EQ(m.get_string_property("i32").view(), "320000");
  EXPECT_EQ(m.get_int_property("d").status, ConvertStatus::TypeMismatch);
  EXPECT_EQ(m.get_int_property("absent").status, ConvertStatus::Null);
}

TEST_P(MessageSystem_test, EveryBodyAndPropertyTypeRoundTrips) {
  register_point();
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  auto c = s.create_consumer(dest());
  auto p = s.create_producer(dest());

  TextMessage t("gr\xC3\xBC\xC3\x9F" "e");
  set_all_properties(t);
  ASSERT_EQ(p.send(t), Status::Ok);

  BytesMessage b;
  b.write_bool(true);
  b.write_byte(-1);
  b.write_short(-300);
  b.write_char(u'\u00e9');
  b.write_int(123456);
  b.write_long(-1);
  b.write_float(0.5f);
  b.write_double(-2.5);
  b.write_string("str");
  b.write_bytes(std::string_view("\x00\x01", 2));
  ASSERT_EQ(p.send(b), Status::Ok);

  MapMessage mm;
  mm.set_bool("b", false);
  mm.set_byte("i8", 7);
  mm.set_short("i16", 7000);
  mm.set_char("c", u'x');
  mm.set_int("i32", -7);
  mm.set_long("i64", 7'000'000'000);
  mm.set_float("f", 0.25f);
  mm.set_double("d", 1e300);
  mm.set_string("s", "v");
  mm.set_bytes("raw", std::as_bytes(std::span<const char>("\xff\x00", 2)));
  mm.set_string("s", "replaced");  // setting again replaces
  ASSERT_EQ(p.send(mm), Status::Ok);

  StreamMessage sm;
  sm.write_int(1);
  sm.write_string("two");
  sm.write(Value::null());
  sm.write_double(3.5);
  sm.write_bytes(std::as_bytes(std::span<const char>("xy", 2)));
  sm.write_char(u'z');
  ASSERT_EQ(p.send(sm), Status::Ok);

  ObjectMessage om;
  om.set_object(Point{3, -4, "p\xC3\xB6int"});
  ASSERT_EQ(p.send(om), Status::Ok);

  TextMessage empty;  // an empty text body is a valid message
  ASSERT_EQ(p.send(empty), Status::Ok);

  Message m;
  ASSERT_TRUE(recv1(c, m));
  EXPECT_EQ(m.body_type(), BodyType::Text);
  EXPECT_EQ(m.text(), "gr\xC3\xBC\xC3\x9F" "e");
  check_all_properties(m);

  ASSERT_TRUE(recv1(c, m));
  ASSERT_EQ(m.body_type(), BodyType::Bytes);
  auto r = m.bytes_reader();
  EXPECT_TRUE(r.read_bool().value);
  EXPECT_EQ(r.read_byte().value, -1);
  EXPECT_EQ(r.read_short().value, -300);
  EXPECT_EQ(r.read_char().value, u'\u00e9');
  EXPECT_EQ(r.read_int().value, 123456);
  EXPECT_EQ(r.read_long().value, -1);
  EXPECT_EQ(r.read_float().value, 0.5f);
  EXPECT_EQ(r.read_double().value, -2.5);
  EXPECT_EQ(r.read_string().value, "str");
  EXPECT_EQ(r.read_bytes(10).size(), 2U);
  EXPECT_EQ(r.read_int().status, ConvertStatus::TypeMismatch);  // JMS MessageEOFException

  ASSERT_TRUE(recv1(c, m));
  ASSERT_EQ(m.body_type(), BodyType::Map);
  const auto map = m.map();
  EXPECT_EQ(map.size(), 10U);
  EXPECT_FALSE(map.get_bool("b").value);
  EXPECT_EQ(map.get_int8("i8").value, 7);
  EXPECT_EQ(map.get_int16("i16").value, 7000);
  EXPECT_EQ(map.get_char("c").value, u'x');
  EXPECT_EQ(map.get_int32("i32").value, -7);
  EXPECT_EQ(map.get_int64("i64").value, 7'000'000'000);
  EXPECT_EQ(map.get_float("f").value, 0.25f);
  EXPECT_EQ(map.get_double("d").value, 1e300);
  EXPECT_EQ(map.get_string("s").view(), "replaced");
  EXPECT_EQ(map.get_bytes("raw").value, std::string_view("\xff\x00", 2));
  EXPECT_EQ(map.get_int32("s").status, ConvertStatus::NumberFormat);

  ASSERT_TRUE(recv1(c, m));
  ASSERT_EQ(m.body_type(), BodyType::Stream);
  auto st = m.stream();
  EXPECT_EQ(st.read_string().view(), "1");  // JMS: an int reads as a String
  EXPECT_EQ(st.read_int32().status, ConvertStatus::NumberFormat);  // "two" is not a number; position kept
  EXPECT_EQ(st.read_string().view(), "two");
  Value v;
  ASSERT_TRUE(st.next(v));
  EXPECT_TRUE(v.is_null());
  EXPECT_EQ(st.read_double().value, 3.5);
  EXPECT_EQ(st.read_bytes().value, "xy");
  EXPECT_EQ(st.read_char().value, u'z');
  EXPECT_TRUE(st.at_end());

  ASSERT_TRUE(recv1(c, m));
  ASSERT_EQ(m.body_type(), BodyType::Object);
  EXPECT_EQ(m.object_type(), "test.Point");
  EXPECT_EQ(m.object<Point>(), (Point{3, -4, "p\xC3\xB6int"}));
  // Never decoded as a type the message does not name.
  try {
    (void)m.object<std::string>();
    ADD_FAILURE() << "object<std::string>() on a test.Point without a serializer must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  }

  ASSERT_TRUE(recv1(c, m));
  EXPECT_EQ(m.body_type(), BodyType::Text);
  EXPECT_EQ(m.text(), "");
  EXPECT_EQ(m.properties().size(), 0U);

  // A raw payload (send(bytes)) is a Bytes message with no properties.
  ASSERT_EQ(p.send(std::string_view("raw")), Status::Ok);
  ASSERT_TRUE(recv1(c, m));
  EXPECT_FALSE(m.framed());
  EXPECT_EQ(m.body_type(), BodyType::Bytes);
  EXPECT_EQ(m.text(), "raw");
  EXPECT_FALSE(m.message_id().is_null());
}

TEST_P(MessageSystem_test, SendSetsTheHeaders) {
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  auto c = s.create_consumer(dest());
  ProducerOptions po;
  po.priority = 7;
  po.delivery_mode = DeliveryMode::Persistent;
  po.time_to_live = 60'000ms;
  auto p = s.create_producer(dest(), po);
  TextMessage t("x");
  t.set_correlation_id("corr-1");
  t.set_type("order");
  t.set_reply_to(Queue("answers"));
  const auto before = std::chrono::system_clock::now().time_since_epoch();
  ASSERT_EQ(p.send(t), Status::Ok);
  SendOptions so;
  so.priority = 2;
  so.delivery_mode = DeliveryMode::NonPersistent;
  ASSERT_EQ(p.send(t, so), Status::Ok);
  const auto after = std::chrono::system_clock::now().time_since_epoch();

  Message m;
  ASSERT_TRUE(recv1(c, m));
  const std::string id1 = m.message_id_string();
  const std::uint64_t incarnation = m.message_id().hi;
  ASSERT_EQ(id1.size(), 35U);
  EXPECT_EQ(id1.substr(0, 3), "ID:");
  EXPECT_EQ(m.correlation_id(), "corr-1");
  EXPECT_EQ(m.type(), "order");
  EXPECT_EQ(m.reply_to(), "queue://answers");
  EXPECT_EQ(m.destination(), dest().uri());
  EXPECT_EQ(m.delivery_mode(), DeliveryMode::Persistent);
  EXPECT_EQ(m.priority(), 7);
  EXPECT_GE(m.timestamp_ns(), std::chrono::duration_cast<std::chrono::nanoseconds>(before).count());
  EXPECT_LE(m.timestamp_ns(), std::chrono::duration_cast<std::chrono::nanoseconds>(after).count());
  EXPECT_EQ(m.expiration_ns(), m.timestamp_ns() + 60'000'000'000LL);
  EXPECT_EQ(m.producer_sequence(), 1U);
  // The same names as a selector sees them.
  EXPECT_EQ(m.get("JMSPriority").i, 7);
  EXPECT_EQ(m.get("JMSCorrelationID").s, "corr-1");
  EXPECT_EQ(m.get("JMSDeliveryMode").s, "PERSISTENT");
  EXPECT_EQ(m.get("JMSMessageID").s, id1);
  EXPECT_EQ(m.get("JMSXDeliveryCount").i, 1);
  EXPECT_FALSE(m.get("JMSRedelivered").i);

  ASSERT_TRUE(recv1(c, m));
  EXPECT_EQ(m.priority(), 2);
  EXPECT_EQ(m.delivery_mode(), DeliveryMode::NonPersistent);
  EXPECT_NE(m.message_id_string(), id1);
  EXPECT_EQ(m.message_id().hi, incarnation);  // the same producer: the same incarnation
  EXPECT_EQ(m.message_id().lo, 2U);

  ProducerOptions no_id;
  no_id.disable_message_id = true;
  auto p2 = s.create_producer(dest(), no_id);
  ASSERT_EQ(p2.send(t), Status::Ok);
  ASSERT_TRUE(recv1(c, m));
  EXPECT_TRUE(m.message_id().is_null());
  EXPECT_EQ(m.message_id_string(), "");
  EXPECT_TRUE(m.get("JMSMessageID").is_null());
}

TEST_P(MessageSystem_test, MessageIdsAreUniqueAcrossProducersAndDaemonRestarts) {
  std::set<std::string> ids;
  std::set<std::uint64_t> incarnations;
  for (int round = 0; round < 2; ++round) {
    {
      auto conn = ConnectionFactory(dir_).create_connection();
      auto s = conn.create_session();
      auto c = s.create_consumer(dest());
      auto p1 = s.create_producer(dest());
      auto p2 = s.create_producer(dest());
      TextMessage t("x");
      for (int i = 0; i < 50; ++i) {
        ASSERT_EQ(p1.send(t), Status::Ok);
        ASSERT_EQ(p2.send(t), Status::Ok);
      }
      Message m;
      for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(recv1(c, m));
        EXPECT_TRUE(ids.insert(m.message_id_string()).second) << "duplicate id " << m.message_id_string();
        incarnations.insert(m.message_id().hi);
      }
    }
    // The daemon restarts: producer ids and sequences start again; message ids must not.
    stop_daemon_and_check_clean(SIGTERM);
    start_daemon();
  }
  EXPECT_EQ(ids.size(), 200U);
  EXPECT_EQ(incarnations.size(), 4U);
}

TEST_P(MessageSystem_test, BadInputIsRefusedAndNothingIsSent) {
  EXPECT_THROW(TextMessage("bad \xff utf8"), Error);
  TextMessage t("kept");
  EXPECT_THROW(t.set_text("\xc0\xaf"), Error);  // overlong '/'
  EXPECT_EQ(t.text(), "kept");
  EXPECT_THROW(t.set_int_property("1abc", 1), Error);
  EXPECT_THROW(t.set_int_property("AND", 1), Error);
  EXPECT_THROW(t.set_int_property("JMSPriority", 1), Error);
  EXPECT_THROW(t.set_string_property("ok", "\xed\xa0\x80"), Error);  // a surrogate
  EXPECT_THROW(t.set_property("raw", Value::bytes("x")), Error);
  EXPECT_THROW(t.set_reply_to("nope://x"), Error);
  EXPECT_TRUE(t.properties().empty());
  try {
    t.set_int_property("a-b", 1);
    ADD_FAILURE() << "a '-' in a property name must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("a-b"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Serializers::add<int>("", [](const int&, std::vector<std::byte>&) {}, [](std::span<const std::byte>) { return 0; }), Error);
  ObjectMessage om;
  EXPECT_THROW(om.set_object(3.5), Error);  // no serializer for double

  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  DestinationOptions small;
  small.max_message_size = 256;
  auto c = s.create_consumer(dest(), {}, small);
  auto p = s.create_producer(dest(), {}, small);
  EXPECT_EQ(p.send(TextMessage(std::string(300, 'a'))), Status::MessageTooLarge);
  TextMessage big_props("b");
  for (int i = 0; i < 20; ++i) big_props.set_string_property("p" + std::to_string(i), "0123456789");
  EXPECT_EQ(p.send(big_props), Status::MessageTooLarge);
  ASSERT_EQ(p.send(TextMessage("fits")), Status::Ok);
  Message m;
  ASSERT_TRUE(recv1(c, m));
  EXPECT_EQ(m.text(), "fits");  // the refused ones left nothing behind
  EXPECT_EQ(c.receive_no_wait(m).status, Status::Timeout);
}

TEST_P(MessageSystem_test, ExpiredMessagesAreNeverDelivered) {
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  auto c = s.create_consumer(dest());
  ProducerOptions po;
  po.time_to_live = 1ms;
  auto p = s.create_producer(dest(), po);
  ASSERT_EQ(p.send(TextMessage("expires")), Status::Ok);
  ASSERT_EQ(p.send(std::string_view("raw expires")), Status::Ok);
  SendOptions forever;
  forever.time_to_live = 0ms;
  // Wait (on the clock, not a sleep) until both are past their expiration, then send one that lives.
  const auto until = std::chrono::steady_clock::now() + 5ms;
  while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
  ASSERT_EQ(p.send(TextMessage("lives"), forever), Status::Ok);
  Message m;
  ASSERT_TRUE(recv1(c, m));
  EXPECT_EQ(m.text(), "lives");
  EXPECT_EQ(m.expiration_ns(), 0);
  EXPECT_EQ(c.receive_no_wait(m).status, Status::Timeout);
  if (dest().kind() == Destination::Kind::Topic) {
    EXPECT_EQ(c.expired_total(), 2U);  // queues: the daemon counts them
  }
}

TEST_P(MessageSystem_test, AHugeTimeToLiveMeansPracticallyNeverNotAWrappedDeadline) {
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  auto c = s.create_consumer(dest());
  auto p = s.create_producer(dest());
  // 2^64 ns is about 18,446,744,073,710 ms: in ns a TTL just past it used to wrap to ~0 and expire
  // the message at once. Clamped, it means "in about 139 years".
  SendOptions huge;
  huge.time_to_live = std::chrono::milliseconds(18'446'744'073'710);
  ASSERT_EQ(p.send(TextMessage("typed"), huge), Status::Ok);
  ASSERT_EQ(p.send(std::string_view("raw"), huge), Status::Ok);
  Message m;
  ASSERT_TRUE(recv1(c, m));
  EXPECT_EQ(m.text(), "typed");
  EXPECT_GT(m.expiration_ns(), m.timestamp_ns() + 100LL * 365 * 86400 * 1'000'000'000);
  ASSERT_TRUE(recv1(c, m));
  EXPECT_EQ(m.text(), "raw");
}

TEST_P(MessageSystem_test, SelectorPicksMatchingMessagesInOrder) {
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  ConsumerOptions co;
  co.selector = "color = 'red' AND n BETWEEN 10 AND 89 AND JMSPriority >= 4";
  auto c = s.create_consumer(dest(), co);
  auto p = s.create_producer(dest());
  TextMessage t;
  for (int i = 0; i < 100; ++i) {
    t.set_text(std::to_string(i));
    t.set_string_property("color", i % 3 == 0 ? "red" : "blue");
    t.set_int_property("n", i);
    ASSERT_EQ(p.send(t), Status::Ok);
  }
  ASSERT_EQ(p.send(std::string_view("raw: no properties, never matches")), Status::Ok);
  Message m;
  for (int i = 12; i < 90; i += 3) {
    ASSERT_TRUE(recv1(c, m));
    EXPECT_EQ(m.text(), std::to_string(i));
  }
  EXPECT_EQ(c.receive(m, 20ms).status, Status::Timeout);
  if (dest().kind() == Destination::Kind::Topic) {
    EXPECT_EQ(c.skipped_total(), 101U - 26U);
  }
}

TEST_P(MessageSystem_test, ASelectorSyntaxErrorNamesThePositionAndCreatesNothing) {
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  ConsumerOptions co;
  co.selector = "color = 'red' AND AND";
  try {
    (void)s.create_consumer(Destination::parse(std::string(GetParam()) + "://never"), co);
    ADD_FAILURE() << "a bad selector must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("position 19"), std::string::npos) << e.what();
  }
  for (const auto& d : conn.stats().destinations) EXPECT_NE(d.uri, std::string(GetParam()) + "://never");
}

std::string kind_name(const ::testing::TestParamInfo<const char*>& p) { return p.param; }
INSTANTIATE_TEST_SUITE_P(Kinds, MessageSystem_test, ::testing::Values("topic", "queue"), kind_name);

class QueueSelectorSystem_test : public SystemTest {};

TEST_F(QueueSelectorSystem_test, NonMatchingMessagesStayForOtherConsumers) {
  auto f = ConnectionFactory(dir_);
  auto c1 = f.create_connection(), c2 = f.create_connection();
  auto s1 = c1.create_session(AckMode::Individual), s2 = c2.create_session();
  ConsumerOptions red;
  red.selector = "color = 'red'";
  auto reds = s1.create_consumer(Queue("jobs"), red);
  auto p = s2.create_producer(Queue("jobs"));
  constexpr int kN = 400;
  TextMessage t;
  for (int i = 0; i < kN; ++i) {
    t.set_text(std::to_string(i));
    t.set_string_property("color", i % 4 == 0 ? "red" : "blue");
    ASSERT_EQ(p.send(t), Status::Ok);
  }
  // The selector consumer takes every red one, in order, and nothing else.
  Message m;
  for (int i = 0; i < kN; i += 4) {
    ASSERT_TRUE(recv1(reds, m));
    EXPECT_EQ(m.text(), std::to_string(i));
    EXPECT_EQ(m.acknowledge(), Status::Ok);
  }
  EXPECT_EQ(reds.receive(m, 10ms).status, Status::Timeout);
  // The blue ones stayed, in order, for a consumer without a selector.
  auto all = s2.create_consumer(Queue("jobs"));
  for (int i = 0; i < kN; ++i) {
    if (i % 4 == 0) continue;
    ASSERT_TRUE(recv1(all, m));
    EXPECT_EQ(m.text(), std::to_string(i));
  }
  EXPECT_EQ(all.receive_no_wait(m).status, Status::Timeout);
  auto st = wait_stats([](const BusStats& b) {
    for (const auto& d : b.destinations)
      if (d.uri == "queue://jobs") return d.depth == 0 && d.in_flight == 0;
    return false;
  }, 5000ms, "queue://jobs empty");
  EXPECT_TRUE(st.has_value());
}

TEST_F(QueueSelectorSystem_test, AHeadNobodyWantsDoesNotBlockASmallQueue) {
  // Only selector consumers, a 4-slot queue (ready rings of 8 cells) and an unwanted message at
  // the head: every taken match leaves a stale cell behind it. Without the head rotation the
  // ready ring fills with stale cells after a few messages and sends block.
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  DestinationOptions tiny;
  tiny.capacity = 4;
  ConsumerOptions red;
  red.selector = "color = 'red'";
  auto c = s.create_consumer(Queue("tiny"), red, tiny);
  ProducerOptions po;
  po.on_full = FullPolicy::FailFast;
  auto p = s.create_producer(Queue("tiny"), po, tiny);
  TextMessage green("green");
  green.set_string_property("color", "green");
  ASSERT_EQ(p.send(green), Status::Ok);
  TextMessage r;
  r.set_string_property("color", "red");
  Message m;
  for (int i = 0; i < 200; ++i) {
    r.set_text(std::to_string(i));
    ASSERT_EQ(p.send(r), Status::Ok) << "send " << i;
    ASSERT_TRUE(recv1(c, m));
    ASSERT_EQ(m.text(), std::to_string(i));
  }
  // The green one is still there for whoever wants it.
  auto browser = s.create_browser(Queue("tiny"), tiny, "color = 'green'");
  ASSERT_TRUE(browser.next(m));
  EXPECT_EQ(m.text(), "green");
  auto any = s.create_consumer(Queue("tiny"), {}, tiny);
  ASSERT_TRUE(recv1(any, m));
  EXPECT_EQ(m.text(), "green");
}

TEST_F(QueueSelectorSystem_test, AParkedSelectorConsumerWakesForAMatchNotForOthers) {
  auto f = ConnectionFactory(dir_);
  auto c1 = f.create_connection(), c2 = f.create_connection();
  auto s1 = c1.create_session(), s2 = c2.create_session();
  ConsumerOptions co;
  co.selector = "kind = 'wanted'";
  co.wait = WaitStrategy::Park;
  auto c = s1.create_consumer(Queue("park"), co);
  auto p = s2.create_producer(Queue("park"));
  TextMessage other("other");
  other.set_string_property("kind", "other");
  for (int i = 0; i < 10; ++i) ASSERT_EQ(p.send(other), Status::Ok);
  Message m;
  EXPECT_EQ(c.receive(m, 30ms).status, Status::Timeout);  // parked past ten non-matching ones
  std::thread sender([&] {
    TextMessage w("wanted");
    w.set_string_property("kind", "wanted");
    EXPECT_EQ(p.send(w), Status::Ok);
  });
  const auto r = c.receive(m, 5s);
  sender.join();
  ASSERT_EQ(r.status, Status::Ok);
  EXPECT_EQ(m.text(), "wanted");
}

TEST_F(QueueSelectorSystem_test, TextAndBytesSendAndReceiveDoNotAllocate) {
  auto conn = ConnectionFactory(dir_).create_connection();
  auto s = conn.create_session();
  auto tq = s.create_consumer(Topic("na"));
  auto tp = s.create_producer(Topic("na"));
  auto qc = s.create_consumer(Queue("na"));
  auto qp = s.create_producer(Queue("na"));
  TextMessage t("hello");
  t.set_int_property("n", 1);
  t.set_string_property("s", "v");
  BytesMessage b(std::as_bytes(std::span<const char>("bytes", 5)));
  Message m;
  // Warm up (first sends may size internal buffers), then count.
  ASSERT_EQ(tp.send(t), Status::Ok);
  ASSERT_TRUE(recv1(tq, m));
  ASSERT_EQ(qp.send(t), Status::Ok);
  ASSERT_TRUE(recv1(qc, m));
  g_allocs = 0;
  g_count_allocs = true;
  bool ok = true;
  for (int i = 0; i < 100; ++i) {
    ok &= tp.send(t) == Status::Ok && tp.send(b) == Status::Ok;
    ok &= tq.receive(m, 5s).status == Status::Ok && m.text() == "hello" && m.get_int_property("n").value == 1;
    ok &= tq.receive(m, 5s).status == Status::Ok && m.body().size() == 5;
    ok &= qp.send(t) == Status::Ok && qp.send(b) == Status::Ok;
    ok &= qc.receive(m, 5s).status == Status::Ok && m.get_string_property("s").view() == "v";
    ok &= qc.receive(m, 5s).status == Status::Ok && m.body_type() == BodyType::Bytes;
  }
  g_count_allocs = false;
  EXPECT_TRUE(ok);
  EXPECT_EQ(g_allocs, 0U);
}

}  // namespace
}  // namespace shmbus::systest
