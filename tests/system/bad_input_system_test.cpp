// Bad input: each is a clear error, and the daemon keeps serving a client that was already attached.
#include "common/paths.hpp"
#include "control/protocol.hpp"
#include "control/socket.hpp"
#include "layout/common.hpp"
#include "system_fixture.hpp"

namespace shmbus::systest {
namespace {

using control::MsgType;

struct Reply {
  control::FrameHeader header;
  std::vector<std::uint8_t> body;
};

class BadInputSystem_test : public SystemTest {
 protected:
  void SetUp() override {
    SystemTest::SetUp();
    if (HasFatalFailure()) return;
    conn_.emplace(ConnectionFactory(dir_, "bystander").create_connection());
    session_.emplace(conn_->create_session());
    producer_.emplace(session_->create_producer(Topic("bystander"), {}, {64, 64}));
    consumer_.emplace(session_->create_consumer(Topic("bystander"), {WaitStrategy::Park, 0}, {64, 64}));
  }
  void TearDown() override {
    consumer_.reset();
    producer_.reset();
    session_.reset();
    conn_.reset();
    SystemTest::TearDown();
  }

  // The bystander still gets answers from the daemon (stat, a new consumer) and still exchanges
  // messages.
  void expect_bystander_served(const std::string& after) {
    SCOPED_TRACE("bystander after " + after);
    ASSERT_TRUE(conn_->daemon_alive());
    const auto s = conn_->stats();
    bool listed = false;
    for (const auto& c : s.clients) listed |= c.name == "bystander";
    EXPECT_TRUE(listed) << "the bystander client is still attached";
    auto extra = session_->create_consumer(Topic("bystander"), {WaitStrategy::Park, 0}, {64, 64});
    const std::string text = "still served after " + after;
    ASSERT_EQ(producer_->send(text.substr(0, 64)), Status::Ok);
    for (auto* c : {&*consumer_, &extra}) {
      Message m;
      const auto r = c->receive(m, std::chrono::seconds(2));
      ASSERT_EQ(r.status, Status::Ok) << to_string(r.status);
      EXPECT_EQ(m.text(), text.substr(0, 64));
    }
  }

  control::Fd raw_connect() { return control::connect_unix(common::socket_path(canonical_)); }

  static std::optional<Reply> read_reply(int fd, Millis timeout) {
    std::uint8_t hdr[control::kHeaderSize];
    if (control::recv_exact(fd, hdr, sizeof hdr, timeout) != 1) return std::nullopt;
    Reply r;
    r.header = control::decode_header(hdr);
    r.body.resize(r.header.body_len);
    if (r.header.body_len && control::recv_exact(fd, r.body.data(), r.body.size(), timeout) != 1) return std::nullopt;
    return r;
  }

  static control::ErrorReply expect_error(int fd, const std::string& what) {
    const auto r = read_reply(fd, Millis(2000));
    control::ErrorReply e;
    if (!r) {
      ADD_FAILURE() << "no reply within 2 s to " << what;
      return e;
    }
    EXPECT_EQ(r->header.type, MsgType::Error) << what << ": expected an Error reply";
    control::Reader rd(r->body);
    control::decode(rd, e);
    return e;
  }

  static void expect_closed_by_daemon(int fd, const std::string& what) {
    std::uint8_t b = 0;
    EXPECT_EQ(control::recv_exact(fd, &b, 1, Millis(2000)), 0) << "daemon should close the connection after " << what;
  }

  static void hello(int fd, std::uint32_t protocol, std::uint32_t layout, std::uint32_t request_id) {
    control::Hello h;
    h.protocol_version = protocol;
    h.layout_version = layout;
    h.client_name = "raw-client";
    ASSERT_TRUE(control::send_all(fd, control::encode(h).frame(MsgType::Hello, request_id)));
  }

  std::optional<Connection> conn_;
  std::optional<Session> session_;
  std::optional<MessageProducer> producer_;
  std::optional<MessageConsumer> consumer_;
};

TEST_F(BadInputSystem_test, OversizedMessageIsRejectedWithSizeLimit) {
  auto p = session_->create_producer(Topic("small"), {}, {64, 64});
  auto c = session_->create_consumer(Topic("small"), {WaitStrategy::Park, 0}, {64, 64});
  EXPECT_EQ(p.max_message_size(), 64u);
  const std::string big(65, 'x');
  EXPECT_EQ(p.send(big), Status::MessageTooLarge);
  EXPECT_EQ(p.claim(65).status, Status::MessageTooLarge);
  ASSERT_EQ(p.send(std::string(64, 'y')), Status::Ok);
  Message m;
  ASSERT_EQ(c.receive(m, std::chrono::seconds(2)).status, Status::Ok);
  EXPECT_EQ(m.text(), std::string(64, 'y')) << "nothing of the rejected message reached the ring";

  const auto r = run_cli({"send", "topic://small", std::string(100, 'z')});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("max message size 64"), std::string::npos) << "stderr should name the limit: " << r.err;
  EXPECT_NE(r.err.find("100 bytes"), std::string::npos) << "stderr should name the size: " << r.err;
  expect_bystander_served("oversized messages");
}

TEST_F(BadInputSystem_test, UnknownDestinationSchemeIsBadDestination) {
  try {
    (void)Destination::parse("fifo://x");
    ADD_FAILURE() << "Destination::parse accepted fifo://x";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadDestination);
    EXPECT_NE(std::string(e.what()).find("fifo"), std::string::npos) << e.what();
  }
  const auto r = run_cli({"send", "fifo://x", "hello"});
  EXPECT_EQ(r.exit_code, 2) << "usage error exit code; stderr: " << r.err;
  EXPECT_NE(r.err.find("unknown destination scheme"), std::string::npos) << r.err;

  // A hand-made OpenDest with an unknown kind: an Error reply, and that client stays usable.
  auto fd = raw_connect();
  hello(fd.get(), control::kProtocolVersion, layout::kLayoutVersion, 1);
  const auto ok = read_reply(fd.get(), Millis(2000));
  ASSERT_TRUE(ok && ok->header.type == MsgType::HelloOk) << "a correct hello is accepted";
  control::OpenDest od;
  od.kind = 9;
  od.name = "x";
  od.capacity = 64;
  od.max_message_size = 64;
  ASSERT_TRUE(control::send_all(fd.get(), control::encode(od).frame(MsgType::OpenDest, 2)));
  const auto e = expect_error(fd.get(), "OpenDest kind 9");
  EXPECT_EQ(e.code, ErrorCode::BadDestination) << e.message;
  EXPECT_NE(e.message.find("9"), std::string::npos) << e.message;
  ASSERT_TRUE(control::send_all(fd.get(), control::Writer{}.frame(MsgType::Stat, 3)));
  const auto st = read_reply(fd.get(), Millis(2000));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->header.type, MsgType::StatOk) << "a non-fatal error leaves the connection usable";
  EXPECT_EQ(st->header.request_id, 3u);
  expect_bystander_served("an unknown destination kind");
}

TEST_F(BadInputSystem_test, WrongProtocolVersionInHelloIsVersionMismatch) {
  auto fd = raw_connect();
  hello(fd.get(), 99, layout::kLayoutVersion, 7);
  const auto e = expect_error(fd.get(), "hello with protocol version 99");
  EXPECT_EQ(e.code, ErrorCode::VersionMismatch) << e.message;
  EXPECT_NE(e.message.find("99"), std::string::npos) << "names the client's version: " << e.message;
  EXPECT_NE(e.message.find("shmbusd speaks " + std::to_string(control::kProtocolVersion)), std::string::npos)
      << "names the daemon's version: " << e.message;
  expect_closed_by_daemon(fd.get(), "a version mismatch");
  expect_bystander_served("a protocol version mismatch");
}

TEST_F(BadInputSystem_test, WrongLayoutVersionInHelloIsVersionMismatch) {
  auto fd = raw_connect();
  hello(fd.get(), control::kProtocolVersion, layout::kLayoutVersion + 76, 8);
  const auto e = expect_error(fd.get(), "hello with a wrong layout version");
  EXPECT_EQ(e.code, ErrorCode::VersionMismatch) << e.message;
  EXPECT_NE(e.message.find("client uses " + std::to_string(layout::kLayoutVersion + 76)), std::string::npos)
      << e.message;
  EXPECT_NE(e.message.find("shmbusd uses " + std::to_string(layout::kLayoutVersion)), std::string::npos) << e.message;
  expect_closed_by_daemon(fd.get(), "a layout version mismatch");
  expect_bystander_served("a layout version mismatch");
}

TEST_F(BadInputSystem_test, GarbageOnControlSocketGetsProtocolErrorThenClose) {
  auto fd = raw_connect();
  std::vector<std::uint8_t> junk;
  for (int i = 0; i < 64; ++i) junk.push_back(static_cast<std::uint8_t>(0xA5 ^ (i * 37)));
  ASSERT_TRUE(control::send_all(fd.get(), junk));
  const auto e = expect_error(fd.get(), "64 garbage bytes");
  EXPECT_EQ(e.code, ErrorCode::ProtocolError) << e.message;
  EXPECT_FALSE(e.message.empty());
  expect_closed_by_daemon(fd.get(), "garbage");

  // A well-formed header before hello is refused the same way.
  auto fd2 = raw_connect();
  ASSERT_TRUE(control::send_all(fd2.get(), control::Writer{}.frame(MsgType::Stat, 5)));
  const auto e2 = expect_error(fd2.get(), "stat before hello");
  EXPECT_EQ(e2.code, ErrorCode::ProtocolError) << e2.message;
  expect_closed_by_daemon(fd2.get(), "a request before hello");
  expect_bystander_served("garbage on the control socket");
}

}  // namespace
}  // namespace shmbus::systest
