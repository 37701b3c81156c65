// Control-protocol codec: every message round-trips, malformed headers and bodies are refused
// with ErrorCode::ProtocolError, and random garbage never crashes the decoder.
#include "control/protocol.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>

namespace shmbus::control {
namespace {

template <class M>
M round_trip(const M& in) {
  const Writer w = encode(in);
  Reader r(w.body());
  M out;
  decode(r, out);
  EXPECT_TRUE(r.done()) << "decode must consume the whole body";
  return out;
}

// Every strict prefix of a valid body must be refused as truncated.
template <class M>
void expect_every_prefix_truncated(const M& m) {
  const auto body = encode(m).body();
  ASSERT_FALSE(body.empty());
  for (std::size_t len = 0; len < body.size(); ++len) {
    const std::vector<std::uint8_t> cut(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(len));
    Reader r(cut);
    M out;
    try {
      decode(r, out);
      ADD_FAILURE() << "a body truncated to " << len << " of " << body.size() << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::ProtocolError);
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
}

StatReply sample_stats() {
  StatReply s;
  s.daemon_pid = 4242;
  s.dir = "/run/user/1000/shmbus";
  s.uptime_ms = 123'456'789'012ULL;
  s.clients = {{0, 100, 1000, "producer-a"}, {5, 101, 1001, ""}};
  DestinationStats d;
  d.uri = "topic://orders";
  d.dest_id = 3;
  d.capacity = 4096;
  d.max_message_size = 1024;
  d.producers = 2;
  d.tail = 1ULL << 40;
  d.holes_repaired = 7;
  d.shm_bytes = 5'000'000;
  d.subscribers = {{11, 0, 100, 99, 98, 1, 0, ""}, {12, 5, 101, 1ULL << 33, 5, 0, 0, ""}};
  DestinationStats q;
  q.uri = "queue://work";
  q.dest_id = 4;
  q.subscribers = {{13, 2, 102, 0, 50, 0, 49, "client"}};
  q.depth = 7;
  q.scheduled = 2;
  q.in_flight = 1;
  q.redelivered = 3;
  q.dead_lettered = 4;
  q.expired = 5;
  q.ack_timeouts = 6;
  q.dropped = 8;
  q.dlq = "queue://DLQ.work";
  q.temporary = true;
  s.destinations = {d, q};
  return s;
}

TEST(Protocol_test, HelloRoundTrips) {
  const auto sut = round_trip(Hello{kProtocolVersion, 1, "my-client"});
  EXPECT_EQ(sut.protocol_version, kProtocolVersion);
  EXPECT_EQ(sut.layout_version, 1U);
  EXPECT_EQ(sut.client_name, "my-client");
}

TEST(Protocol_test, HelloOkRoundTripsWithNegativePid) {
  const auto sut = round_trip(HelloOk{17, 0xFFFFFFFFU, "shmbus.0123456789abcdef.ctl", 1ULL << 36, -5});
  EXPECT_EQ(sut.client_index, 17U);
  EXPECT_EQ(sut.generation, 0xFFFFFFFFU);
  EXPECT_EQ(sut.region_shm, "shmbus.0123456789abcdef.ctl");
  EXPECT_EQ(sut.region_size, 1ULL << 36);
  EXPECT_EQ(sut.daemon_pid, -5);
}

TEST(Protocol_test, ErrorReplyRoundTrips) {
  const auto sut = round_trip(ErrorReply{ErrorCode::BadDestination, "destination 'x' has no scheme"});
  EXPECT_EQ(sut.code, ErrorCode::BadDestination);
  EXPECT_EQ(sut.message, "destination 'x' has no scheme");
}

TEST(Protocol_test, OpenDestRoundTrips) {
  const auto sut = round_trip(OpenDest{1, Role::Consumer, "orders.eu-west_1", 1U << 16, 4096, 3, 5'000'000'000ULL, 7, 250'000'000ULL, 3, "sub-1", 3, 500});
  EXPECT_EQ(sut.subscription, "sub-1");
  EXPECT_EQ(sut.fsync_mode, 3U);
  EXPECT_EQ(sut.fsync_value, 500U);
  EXPECT_EQ(sut.ack_mode, 3U);
  EXPECT_EQ(sut.ack_timeout_ns, 5'000'000'000ULL);
  EXPECT_EQ(sut.max_deliveries, 7U);
  EXPECT_EQ(sut.redelivery_delay_ns, 250'000'000ULL);
  EXPECT_EQ(sut.queue_flags, 3U);
  EXPECT_EQ(sut.kind, 1U);
  EXPECT_EQ(sut.role, Role::Consumer);
  EXPECT_EQ(sut.name, "orders.eu-west_1");
  EXPECT_EQ(sut.capacity, 1U << 16);
  EXPECT_EQ(sut.max_message_size, 4096U);
}

TEST(Protocol_test, OpenOkRoundTrips) {
  const auto sut = round_trip(OpenOk{3, 44, 63, 0xFFFF'FFFF'FFFFULL, "shmbus.abc.d3", 1ULL << 32, "/d/data/topic.x"});
  EXPECT_EQ(sut.log_dir, "/d/data/topic.x");
  EXPECT_EQ(sut.dest_id, 3U);
  EXPECT_EQ(sut.endpoint_id, 44U);
  EXPECT_EQ(sut.entry_index, 63U);
  EXPECT_EQ(sut.start_position, 0xFFFF'FFFF'FFFFULL);
  EXPECT_EQ(sut.shm_name, "shmbus.abc.d3");
  EXPECT_EQ(sut.shm_size, 1ULL << 32);
}

TEST(Protocol_test, CommitPositionAndUnsubscribeRoundTrip) {
  const auto sut = round_trip(CommitPosition{7, 8, 0xFFFF'FFFF'FFFF'FFF0ULL});
  EXPECT_EQ(sut.dest_id, 7U);
  EXPECT_EQ(sut.endpoint_id, 8U);
  EXPECT_EQ(sut.position, 0xFFFF'FFFF'FFFF'FFF0ULL);
  const auto u = round_trip(Unsubscribe{"prices", "audit-1"});
  EXPECT_EQ(u.name, "prices");
  EXPECT_EQ(u.subscription, "audit-1");
}

TEST(Protocol_test, CloseEndpointRoundTrips) {
  const auto sut = round_trip(CloseEndpoint{9, 10});
  EXPECT_EQ(sut.dest_id, 9U);
  EXPECT_EQ(sut.endpoint_id, 10U);
}

TEST(Protocol_test, StatReplyRoundTripsClientsDestinationsAndSubscribers) {
  const auto in = sample_stats();
  const auto sut = round_trip(in);
  EXPECT_EQ(sut.daemon_pid, in.daemon_pid);
  EXPECT_EQ(sut.dir, in.dir);
  EXPECT_EQ(sut.uptime_ms, in.uptime_ms);
  ASSERT_EQ(sut.clients.size(), 2U);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(sut.clients[i].index, in.clients[i].index);
    EXPECT_EQ(sut.clients[i].pid, in.clients[i].pid);
    EXPECT_EQ(sut.clients[i].uid, in.clients[i].uid);
    EXPECT_EQ(sut.clients[i].name, in.clients[i].name);
  }
  ASSERT_EQ(sut.destinations.size(), 2U);
  const auto& d = sut.destinations[0];
  const auto& e = in.destinations[0];
  EXPECT_EQ(d.uri, e.uri);
  EXPECT_EQ(d.dest_id, e.dest_id);
  EXPECT_EQ(d.capacity, e.capacity);
  EXPECT_EQ(d.max_message_size, e.max_message_size);
  EXPECT_EQ(d.producers, e.producers);
  EXPECT_EQ(d.tail, e.tail);
  EXPECT_EQ(d.holes_repaired, e.holes_repaired);
  EXPECT_EQ(d.shm_bytes, e.shm_bytes);
  ASSERT_EQ(d.subscribers.size(), 2U);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(d.subscribers[i].consumer_id, e.subscribers[i].consumer_id);
    EXPECT_EQ(d.subscribers[i].client_index, e.subscribers[i].client_index);
    EXPECT_EQ(d.subscribers[i].pid, e.subscribers[i].pid);
    EXPECT_EQ(d.subscribers[i].position, e.subscribers[i].position);
    EXPECT_EQ(d.subscribers[i].received, e.subscribers[i].received);
    EXPECT_EQ(d.subscribers[i].lost, e.subscribers[i].lost);
  }
  const auto& q = sut.destinations[1];
  EXPECT_EQ(q.uri, "queue://work");
  ASSERT_EQ(q.subscribers.size(), 1U);
  EXPECT_EQ(q.subscribers[0].acked, 49U);
  EXPECT_EQ(q.subscribers[0].ack_mode, "client");
  EXPECT_EQ(q.depth, 7U);
  EXPECT_EQ(q.scheduled, 2U);
  EXPECT_EQ(q.in_flight, 1U);
  EXPECT_EQ(q.redelivered, 3U);
  EXPECT_EQ(q.dead_lettered, 4U);
  EXPECT_EQ(q.expired, 5U);
  EXPECT_EQ(q.ack_timeouts, 6U);
  EXPECT_EQ(q.dropped, 8U);
  EXPECT_EQ(q.dlq, "queue://DLQ.work");
  EXPECT_TRUE(q.temporary);
  EXPECT_FALSE(d.temporary);
}

TEST(Protocol_test, CreateTempRoundTrips) {
  const auto sut = round_trip(CreateTemp{2, 1U << 10, 512, 7, 250'000'000ULL});
  EXPECT_EQ(sut.kind, 2U);
  EXPECT_EQ(sut.capacity, 1U << 10);
  EXPECT_EQ(sut.max_message_size, 512U);
  EXPECT_EQ(sut.max_deliveries, 7U);
  EXPECT_EQ(sut.redelivery_delay_ns, 250'000'000ULL);
}

TEST(Protocol_test, TempOkRoundTrips) {
  const auto sut = round_trip(TempOk{12, "TMP.0a1b2c3d.42"});
  EXPECT_EQ(sut.dest_id, 12U);
  EXPECT_EQ(sut.name, "TMP.0a1b2c3d.42");
}

TEST(Protocol_test, DeleteTempRoundTrips) {
  const auto sut = round_trip(DeleteTemp{1, "TMP.0a1b2c3d.43"});
  EXPECT_EQ(sut.kind, 1U);
  EXPECT_EQ(sut.name, "TMP.0a1b2c3d.43");
}

TEST(Protocol_test, TemporaryMessagesAreValidHeaderTypes) {
  for (auto t : {MsgType::CreateTemp, MsgType::TempOk, MsgType::DeleteTemp}) {
    const auto frame = Writer{}.frame(t, 1);
    EXPECT_EQ(decode_header(frame.data()).type, t);
  }
  EXPECT_EQ(kLastMsgType, static_cast<std::uint16_t>(MsgType::PromoteOk));
  EXPECT_GE(kProtocolVersion, 3U) << "temporary destinations changed the wire: version 3";
}

TEST(Protocol_test, FrameHeaderDecodesTypeLengthAndRequestId) {
  const auto frame = encode(CloseEndpoint{1, 2}).frame(MsgType::CloseEndpoint, 0xDEADBEEF);
  ASSERT_EQ(frame.size(), kHeaderSize + 8);

  const auto sut = decode_header(frame.data());

  EXPECT_EQ(sut.magic, kMagic);
  EXPECT_EQ(sut.type, MsgType::CloseEndpoint);
  EXPECT_EQ(sut.body_len, 8U);
  EXPECT_EQ(sut.request_id, 0xDEADBEEFU);
}

// Builds a valid header, lets `mutate` break it, and expects a ProtocolError whose message
// contains `needle`.
void expect_header_refused(const std::function<void(std::uint8_t*)>& mutate, const std::string& needle) {
  auto frame = Writer{}.frame(MsgType::Stat, 1);
  mutate(frame.data());
  try {
    decode_header(frame.data());
    ADD_FAILURE() << "a header that should mention '" << needle << "' was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ProtocolError);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void put_u16(std::uint8_t* p, std::uint16_t v) { std::memcpy(p, &v, 2); }
void put_u32(std::uint8_t* p, std::uint32_t v) { std::memcpy(p, &v, 4); }

TEST(Protocol_test, DecodeHeaderRejectsBadMagic) {
  expect_header_refused([](std::uint8_t* h) { h[0] ^= 0xFF; }, "magic");
  expect_header_refused([](std::uint8_t* h) { put_u32(h, 0x47455420); }, "magic");  // "GET " from an HTTP client
}

TEST(Protocol_test, DecodeHeaderRejectsUnknownType) {
  expect_header_refused([](std::uint8_t* h) { put_u16(h + 4, 0); }, "unknown control message type 0");
  expect_header_refused([](std::uint8_t* h) { put_u16(h + 4, 18); }, "unknown control message type 18");
  expect_header_refused([](std::uint8_t* h) { put_u16(h + 4, 0xFFFF); }, "type 65535");
}

TEST(Protocol_test, DecodeHeaderRejectsNonZeroReserved) {
  expect_header_refused([](std::uint8_t* h) { put_u16(h + 6, 1); }, "reserved");
}

TEST(Protocol_test, DecodeHeaderRejectsBodyAboveLimit) {
  expect_header_refused([](std::uint8_t* h) { put_u32(h + 8, kMaxBody + 1); }, "exceeds the limit");
  expect_header_refused([](std::uint8_t* h) { put_u32(h + 8, 0xFFFFFFFF); }, "4294967295");
}

TEST(Protocol_test, DecodeHeaderAcceptsBodyExactlyAtLimit) {
  auto frame = Writer{}.frame(MsgType::Hello, 1);
  put_u32(frame.data() + 8, kMaxBody);
  EXPECT_EQ(decode_header(frame.data()).body_len, kMaxBody);
}

TEST(Protocol_test, TruncatedBodyOfEveryMessageThrowsProtocolError) {
  expect_every_prefix_truncated(Hello{1, 1, "abc"});
  expect_every_prefix_truncated(HelloOk{1, 2, "r", 3, 4});
  expect_every_prefix_truncated(ErrorReply{ErrorCode::Internal, "boom"});
  expect_every_prefix_truncated(OpenDest{1, Role::Producer, "t", 8, 64, 0, 0, 0, 0, 0, "s", 2, 10});
  expect_every_prefix_truncated(OpenOk{1, 2, 3, 4, "s", 5, "d"});
  expect_every_prefix_truncated(CommitPosition{1, 2, 3});
  expect_every_prefix_truncated(Unsubscribe{"t", "s"});
  expect_every_prefix_truncated(CloseEndpoint{1, 2});
  expect_every_prefix_truncated(sample_stats());
  expect_every_prefix_truncated(CreateTemp{2, 8, 64, 1, 2});
  expect_every_prefix_truncated(TempOk{1, "TMP.x.1"});
  expect_every_prefix_truncated(DeleteTemp{1, "TMP.x.1"});
}

TEST(Protocol_test, StringFieldLongerThan65535IsRefusedWhenEncoding) {
  Writer sut;
  try {
    sut.str(std::string(0x10000, 'x'));
    FAIL() << "a 65536-byte string field was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ProtocolError);
  }
  EXPECT_NO_THROW(sut.str(std::string(0xFFFF, 'x')));
}

// Decodes `body` as every message type. Returns how many decodes were refused. Anything other
// than shmbus::Error escaping (or a sanitizer report) is a failure.
int decode_all(const std::vector<std::uint8_t>& body) {
  int refused = 0;
  auto attempt = [&](auto msg) {
    Reader r(body);
    try {
      decode(r, msg);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::ProtocolError) << e.what();
      ++refused;
    }
  };
  attempt(Hello{});
  attempt(HelloOk{});
  attempt(ErrorReply{});
  attempt(OpenDest{});
  attempt(OpenOk{});
  attempt(CloseEndpoint{});
  attempt(StatReply{});
  attempt(CreateTemp{});
  attempt(TempOk{});
  attempt(DeleteTemp{});
  return refused;
}

TEST(Protocol_test, RandomGarbageBodiesOnlyEverThrowProtocolError) {
  std::mt19937 rng(20240601);
  int refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<std::uint8_t> body(rng() % 96);
    for (auto& b : body) b = static_cast<std::uint8_t>(rng());
    // Small counts and lengths reach the loops in the Stat decoder, not just the first field.
    if (i % 2 == 0)
      for (std::size_t k = 0; k + 1 < body.size(); k += 2 + rng() % 6) body[k + 1] = 0, body[k] %= 4;
    try {
      refused += decode_all(body);
    } catch (...) {
      FAIL() << "iteration " << i << ": something other than shmbus::Error escaped the decoder";
    }
  }
  EXPECT_GT(refused, 3000) << "garbage should mostly be refused";
}

TEST(Protocol_test, MutatedValidStatBodiesOnlyEverThrowProtocolError) {
  std::mt19937 rng(7);
  const auto valid = encode(sample_stats()).body();
  for (int i = 0; i < 3000; ++i) {
    auto body = valid;
    for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips)
      body[rng() % body.size()] = static_cast<std::uint8_t>(rng());
    if (rng() % 3 == 0) body.resize(rng() % body.size());
    try {
      decode_all(body);
    } catch (...) {
      FAIL() << "iteration " << i << ": something other than shmbus::Error escaped the decoder";
    }
  }
}

TEST(Protocol_test, RandomHeadersAreEitherValidOrProtocolError) {
  std::mt19937 rng(99);
  int accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    std::uint8_t h[kHeaderSize];
    for (auto& b : h) b = static_cast<std::uint8_t>(rng());
    if (i % 2 == 0) {  // mostly plausible headers, so every check is reached
      put_u32(h, kMagic);
      put_u16(h + 4, static_cast<std::uint16_t>(rng() % (kLastMsgType + 2)));
      put_u16(h + 6, static_cast<std::uint16_t>(rng() % 8 == 0));
      put_u32(h + 8, static_cast<std::uint32_t>(rng() % (2 * kMaxBody)));
    }
    try {
      const auto sut = decode_header(h);
      ++accepted;
      EXPECT_LE(sut.body_len, kMaxBody);
      EXPECT_GE(static_cast<unsigned>(sut.type), 1U);
      EXPECT_LE(static_cast<unsigned>(sut.type), unsigned{kLastMsgType});
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::ProtocolError);
      EXPECT_GT(std::string(e.what()).size(), 0U);
    }
  }
  EXPECT_GT(accepted, 0) << "the plausible half should sometimes be valid";
  EXPECT_LT(accepted, 2500) << "the fully random half should never be valid";
}

}  // namespace
}  // namespace shmbus::control

namespace shmbus::control {
namespace {
// Protocol v5: the stat reply's replication section and the Promote request.
TEST(Protocol_test, StatReplyRoundTripsTheReplicationSection) {
  auto in = sample_stats();
  ReplicationStats& r = in.replication;
  r.role = "leader";
  r.epoch = 7;
  r.self = "127.0.0.1:7001";
  r.leader = r.self;
  r.min_insync = 2;
  r.in_sync = {"127.0.0.1:7001", "127.0.0.1:7002"};
  r.replicas = {{"127.0.0.1:7002", true, true, 0, 12, 1U << 20}, {"127.0.0.1:7003", false, false, 99, 60'000, 5}};
  r.logs = {{"queue.work", 3, 120, 100, {120, 21}}};
  const auto out = round_trip(in);
  const ReplicationStats& o = out.replication;
  EXPECT_EQ(o.role, "leader");
  EXPECT_EQ(o.epoch, 7U);
  EXPECT_EQ(o.self, r.self);
  EXPECT_EQ(o.min_insync, 2U);
  EXPECT_EQ(o.in_sync, r.in_sync);
  ASSERT_EQ(o.replicas.size(), 2U);
  EXPECT_TRUE(o.replicas[0].in_sync);
  EXPECT_FALSE(o.replicas[1].connected);
  EXPECT_EQ(o.replicas[1].lag, 99U);
  EXPECT_EQ(o.replicas[0].bytes, 1U << 20);
  ASSERT_EQ(o.logs.size(), 1U);
  EXPECT_EQ(o.logs[0].high_watermark, 100U);
  EXPECT_EQ(o.logs[0].replica_offsets, (std::vector<std::uint64_t>{120, 21}));
  // A log claiming more replica offsets than there are replicas is refused.
  in.replication.logs[0].replica_offsets = {1, 2, 3};
  const auto w = encode(in);
  Reader rd(w.body());
  StatReply bad;
  EXPECT_THROW(decode(rd, bad), Error);
}

TEST(Protocol_test, PromoteIsAValidRequestType) {
  for (auto t : {MsgType::Promote, MsgType::PromoteOk}) {
    const auto frame = Writer{}.frame(t, 1);
    EXPECT_EQ(decode_header(frame.data()).type, t);
  }
  EXPECT_GE(kProtocolVersion, 5U) << "replication changed the stat reply: version 5";
}
}  // namespace
}  // namespace shmbus::control
