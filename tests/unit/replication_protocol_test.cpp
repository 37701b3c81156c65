// The replication protocol's frames (daemon/repl_protocol.hpp): round trips, and every kind of
// malformed input refused with a ReplError (never a crash, never a silently wrong value).
#include "repl_protocol.hpp"

#include <cstring>
#include <gtest/gtest.h>
#include <random>

namespace shmbus::daemon::repl {
namespace {

std::span<const std::uint8_t> payload_of(const std::vector<std::uint8_t>& frame) {
  return {frame.data() + kHeaderSize, frame.size() - kHeaderSize};
}

TEST(ReplProtocol, HeaderRoundTripAndRefusals) {
  std::uint8_t h[kHeaderSize];
  encode_header(h, Type::Fetch, 1234);
  const Header d = decode_header(h);
  EXPECT_EQ(d.type, Type::Fetch);
  EXPECT_EQ(d.length, 1234U);

  auto bad = [&](auto mutate, const char* what) {
    std::uint8_t b[kHeaderSize];
    encode_header(b, Type::Fetch, 16);
    mutate(b);
    EXPECT_THROW(decode_header(b), ReplError) << what;
  };
  bad([](std::uint8_t* b) { b[0] ^= 0xFF; }, "bad magic");
  bad([](std::uint8_t* b) { b[4] = 9; }, "newer version");
  bad([](std::uint8_t* b) { b[6] = 0; b[7] = 0; }, "type 0");
  bad([](std::uint8_t* b) { b[6] = kLastType + 1; }, "unknown type");
  bad([](std::uint8_t* b) { b[12] = 1; }, "reserved not zero");
  bad([](std::uint8_t* b) { std::memset(b + 8, 0xFF, 4); }, "length past the limit");
  // A FetchResponse may be big, a control frame not.
  encode_header(h, Type::FetchResponse, 32U << 20);
  EXPECT_NO_THROW(decode_header(h));
  encode_header(h, Type::Hello, 32U << 20);
  EXPECT_THROW(decode_header(h), ReplError);
}

TEST(ReplProtocol, HandshakeFramesRoundTrip) {
  Hello h;
  random_nonce(h.nonce);
  h.intent = Intent::Probe;
  h.epoch = 7;
  h.self = "127.0.0.1:7002";
  Hello h2;
  decode(payload_of(encode(h)), h2);
  EXPECT_EQ(std::memcmp(h.nonce, h2.nonce, kNonceBytes), 0);
  EXPECT_EQ(h2.intent, Intent::Probe);
  EXPECT_EQ(h2.epoch, 7U);
  EXPECT_EQ(h2.self, h.self);

  Welcome w{NodeRole::Leader, 9, "127.0.0.1:7001", {"127.0.0.1:7001", "127.0.0.1:7002"}};
  Welcome w2;
  decode(payload_of(encode(w)), w2);
  EXPECT_EQ(w2.role, NodeRole::Leader);
  EXPECT_EQ(w2.epoch, 9U);
  EXPECT_EQ(w2.leader, w.leader);
  EXPECT_EQ(w2.replicas, w.replicas);

  Refuse r{4, "127.0.0.1:7003", "stale epoch"};
  Refuse r2;
  decode(payload_of(encode(r)), r2);
  EXPECT_EQ(r2.epoch, 4U);
  EXPECT_EQ(r2.leader, r.leader);
  EXPECT_EQ(r2.reason, r.reason);
}

TEST(ReplProtocol, HelloRefusesUnknownIntentEmptyAddressAndTrailingBytes) {
  Hello h;
  h.self = "a:1";
  auto f = encode(h);
  std::vector<std::uint8_t> p(f.begin() + kHeaderSize, f.end());
  Hello out;
  auto intent_bad = p;
  intent_bad[kNonceBytes] = 9;
  EXPECT_THROW(decode(intent_bad, out), ReplError);
  auto trailing = p;
  trailing.push_back(0);
  EXPECT_THROW(decode(trailing, out), ReplError);
  auto cut = p;
  ASSERT_FALSE(cut.empty());
  cut.pop_back();
  EXPECT_THROW(decode(cut, out), ReplError);
  h.self.clear();
  EXPECT_THROW(decode(payload_of(encode(h)), out), ReplError);
}

TEST(ReplProtocol, FetchRoundTripAndLimits) {
  Fetch f;
  f.max_wait_ms = 500;
  f.max_bytes = 1 << 20;
  f.entries = {{"queue.jobs", 42}, {"topic.prices", 7}};
  Fetch f2;
  decode(payload_of(encode(f)), f2);
  ASSERT_EQ(f2.entries.size(), 2U);
  EXPECT_EQ(f2.entries[0].log, "queue.jobs");
  EXPECT_EQ(f2.entries[0].offset, 42U);
  EXPECT_EQ(f2.entries[1].log, "topic.prices");
  EXPECT_EQ(f2.max_wait_ms, 500U);

  Fetch bad = f;
  bad.max_bytes = 100;  // below 4096
  EXPECT_THROW(decode(payload_of(encode(bad)), f2), ReplError);
  bad = f;
  bad.max_wait_ms = 600'000;
  EXPECT_THROW(decode(payload_of(encode(bad)), f2), ReplError);
  for (const char* name : {"../etc", "queue.a/b", "queue.", "jobs", "topic..", ""}) {
    bad = f;
    bad.entries = {{name, 0}};
    EXPECT_THROW(decode(payload_of(encode(bad)), f2), ReplError) << name;
  }
}

TEST(ReplProtocol, FetchResponseRoundTripWithDataAndFiles) {
  std::vector<FetchEntry> entries(2);
  entries[0].log = "queue.jobs";
  entries[0].log_start = 10;
  entries[0].log_end = 20;
  entries[0].high_watermark = 15;
  entries[0].data_length = 5;
  entries[1].log = "topic.t";
  entries[1].status = FetchEntry::kOutOfRange;
  entries[1].log_start = 3;
  entries[1].log_end = 3;
  const std::vector<MetaFile> files{{"queue.jobs/queue.meta", std::string(70'000, 'x')}, {"topic.t/subscriptions", "a 1\n"}};
  const auto blob = encode_files(files);
  const std::uint32_t total = fetch_head_size(entries) + 5 + static_cast<std::uint32_t>(blob.size());
  auto frame = encode_fetch_head(total, entries);
  for (int b = 1; b <= 5; ++b) frame.push_back(static_cast<std::uint8_t>(b));
  frame.insert(frame.end(), blob.begin(), blob.end());
  ASSERT_EQ(frame.size(), kHeaderSize + total);
  EXPECT_EQ(decode_header(frame.data()).length, total);

  FetchResponseView v;
  decode(payload_of(frame), v);
  ASSERT_EQ(v.entries.size(), 2U);
  EXPECT_EQ(v.entries[0].high_watermark, 15U);
  ASSERT_EQ(v.data[0].size(), 5U);
  EXPECT_EQ(v.data[0][4], 5);
  EXPECT_EQ(v.entries[1].status, FetchEntry::kOutOfRange);
  EXPECT_TRUE(v.data[1].empty());
  ASSERT_EQ(v.files.size(), 2U);
  EXPECT_EQ(v.files[0].content.size(), 70'000U);  // file contents are not limited to a 16-bit length
  EXPECT_EQ(v.files[1].content, "a 1\n");
}

TEST(ReplProtocol, FetchResponseRefusesInconsistentOffsetsBadPathsAndOverruns) {
  auto build = [](FetchEntry e, std::vector<MetaFile> files, std::size_t data) {
    const std::vector<FetchEntry> es{e};
    const auto blob = encode_files(files);
    const std::uint32_t total = fetch_head_size(es) + static_cast<std::uint32_t>(data + blob.size());
    auto f = encode_fetch_head(total, es);
    f.resize(f.size() + data, 0);
    f.insert(f.end(), blob.begin(), blob.end());
    return f;
  };
  FetchEntry ok;
  ok.log = "queue.q";
  ok.log_end = 10;
  ok.high_watermark = 10;
  FetchResponseView v;
  EXPECT_NO_THROW(decode(payload_of(build(ok, {}, 0)), v));

  FetchEntry e = ok;
  e.high_watermark = 11;  // past the end
  EXPECT_THROW(decode(payload_of(build(e, {}, 0)), v), ReplError);
  e = ok;
  e.log_start = 11;  // start past the end
  EXPECT_THROW(decode(payload_of(build(e, {}, 0)), v), ReplError);
  e = ok;
  e.status = FetchEntry::kNoSuchLog;
  e.data_length = 4;  // data with an error status
  EXPECT_THROW(decode(payload_of(build(e, {}, 4)), v), ReplError);
  e = ok;
  e.data_length = 100;  // more data claimed than sent
  auto f = build(e, {}, 0);
  EXPECT_THROW(decode(payload_of(f), v), ReplError);
  for (const char* path : {"queue.q/../../etc/passwd", "queue.q/00000000000000000000.log", "queue.q", "/abs/queue.meta",
                           "x/queue.meta"}) {
    EXPECT_THROW(decode(payload_of(build(ok, {{path, "x"}}, 0)), v), ReplError) << path;
  }
}

TEST(ReplProtocol, RandomGarbageNeverCrashesADecoder) {
  std::mt19937_64 rng(12345);
  std::uint64_t refused = 0, accepted = 0;
  for (int i = 0; i < 8'000; ++i) {
    std::vector<std::uint8_t> p(rng() % 96);
    for (auto& b : p) b = static_cast<std::uint8_t>(rng());
    const auto attempt = [&](auto&& msg) {
      try {
        decode(p, msg);
        ++accepted;
      } catch (const ReplError&) {
        ++refused;
      }
    };
    Hello h;
    attempt(h);
    Welcome w;
    attempt(w);
    Fetch f;
    attempt(f);
    EpochQuery q;
    attempt(q);
    EpochAnswer a;
    attempt(a);
    FetchResponseView v;
    attempt(v);
  }
  EXPECT_GT(refused, 40'000U);  // nearly everything random is refused
  SUCCEED() << accepted << " random payloads happened to decode";
}

TEST(ReplProtocol, HmacMatchesRfc4231AndComparesInConstantTimeShape) {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  const std::string key = "Jefe";
  const std::string data = "what do ya want for nothing?";
  std::uint8_t mac[kMacBytes];
  hmac(key, {{reinterpret_cast<const std::uint8_t*>(data.data()), 10}, {reinterpret_cast<const std::uint8_t*>(data.data()) + 10, data.size() - 10}}, mac);
  const std::uint8_t want[kMacBytes] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                                        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                                        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  EXPECT_TRUE(macs_equal(mac, want));
  std::uint8_t other[kMacBytes];
  std::memcpy(other, want, kMacBytes);
  other[31] ^= 1;
  EXPECT_FALSE(macs_equal(mac, other));
}

TEST(ReplProtocol, LogNamesAndMetaPathsStayInsideTheDataDirectory) {
  EXPECT_TRUE(valid_log_name("queue.jobs"));
  EXPECT_TRUE(valid_log_name("topic.a.b"));
  EXPECT_FALSE(valid_log_name("queue./"));
  EXPECT_FALSE(valid_log_name("queue.a/.."));
  EXPECT_FALSE(valid_log_name("other.x"));
  EXPECT_TRUE(valid_meta_path("queue.jobs/queue.meta"));
  EXPECT_TRUE(valid_meta_path("topic.t/subscriptions"));
  EXPECT_FALSE(valid_meta_path("queue.jobs/leader-epoch-checkpoint"));
  EXPECT_FALSE(valid_meta_path("queue.jobs/x/queue.meta"));
}

}  // namespace
}  // namespace shmbus::daemon::repl
