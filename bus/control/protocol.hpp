// The control protocol between clients and shmbusd over DIR/shmbusd.sock (SOCK_STREAM).
// Every message: a 16-byte header, then `body_len` bytes of fields (little-endian, strings as
// u16 length + bytes). Requests are answered in order; the daemon never sends unsolicited.
//
//  offset size field
//       0    4 magic     "SBC1" (0x31434253)
//       4    2 type      MsgType
//       6    2 reserved  0
//       8    4 body_len  <= kMaxBody
//      12    4 request_id echoed in the reply
#pragma once
#include "shmbus/error.hpp"
#include "shmbus/stats.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::control {

inline constexpr std::uint32_t kMagic = 0x31434253;  // "SBC1"
inline constexpr std::uint32_t kProtocolVersion = 5;  // 3: temporary destinations; 4: persistence (stat figures, durable subscriptions); 5: replication (stat, Promote)
inline constexpr std::uint32_t kMaxBody = 1U << 20;
inline constexpr std::size_t kHeaderSize = 16;

enum class MsgType : std::uint16_t {
  Hello = 1, HelloOk = 2, Error = 3,
  OpenDest = 4, OpenOk = 5,
  CloseEndpoint = 6, CloseOk = 7,
  Stat = 8, StatOk = 9,
  Detach = 10,
  CreateTemp = 11, TempOk = 12,  // a temporary destination, owned by this connection
  DeleteTemp = 13,               // answered with CloseOk
  CommitPosition = 14,           // a durable subscriber's position; answered with CloseOk
  Unsubscribe = 15,              // deletes a durable subscription; answered with CloseOk
  Promote = 16, PromoteOk = 17,  // a follower becomes the leader (shmbus promote); PromoteOk: u32 new epoch
};
/// The highest MsgType value (decode_header refuses anything above).
inline constexpr std::uint16_t kLastMsgType = static_cast<std::uint16_t>(MsgType::PromoteOk);
/// Names a daemon generates for temporary destinations start with this; an OpenDest naming one
/// that does not exist is refused (BadDestination) instead of creating an ordinary destination.
inline constexpr char kTempPrefix[] = "TMP.";

enum class Role : std::uint8_t { Producer = 1, Consumer = 2, Browser = 3 /* queues: maps it, no entry */,
                                  DurableSubscriber = 4 /* topics: reads the topic's log, OpenDest::subscription */ };

struct FrameHeader {
  std::uint32_t magic = kMagic;
  MsgType type{};
  std::uint32_t body_len = 0;
  std::uint32_t request_id = 0;
};

/// Appends fields to a message body.
class Writer {
 public:
  Writer& u8(std::uint8_t v);
  Writer& u16(std::uint16_t v);
  Writer& u32(std::uint32_t v);
  Writer& u64(std::uint64_t v);
  Writer& str(std::string_view s);
  /// Header + body, ready to send.
  std::vector<std::uint8_t> frame(MsgType t, std::uint32_t request_id) const;
  const std::vector<std::uint8_t>& body() const { return buf_; }

 private:
  std::vector<std::uint8_t> buf_;
};

/// Reads fields from a body; throws Error(ProtocolError) on truncation.
class Reader {
 public:
  explicit Reader(const std::vector<std::uint8_t>& b) : p_(b.data()), end_(b.data() + b.size()) {}
  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  std::uint64_t u64();
  std::string str();
  bool done() const { return p_ == end_; }

 private:
  const std::uint8_t* take(std::size_t n);
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

/// Parses and validates a 16-byte header; throws Error(ProtocolError) saying what was wrong.
FrameHeader decode_header(const std::uint8_t* bytes);

// ---- message bodies ----
struct Hello {
  std::uint32_t protocol_version = kProtocolVersion;
  std::uint32_t layout_version = 0;
  std::string client_name;
};
struct HelloOk {
  std::uint32_t client_index = 0;
  std::uint32_t generation = 0;
  std::string region_shm;
  std::uint64_t region_size = 0;
  std::int32_t daemon_pid = 0;
};
struct ErrorReply {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
};
struct OpenDest {
  std::uint8_t kind = 1;
  Role role = Role::Producer;
  std::string name;
  std::uint32_t capacity = 0;
  std::uint32_t max_message_size = 0;
  // Queues: the consumer's session ack mode and ack timeout; policy applied at creation.
  std::uint8_t ack_mode = 0;  // shmbus::AckMode
  std::uint64_t ack_timeout_ns = 0;
  std::uint32_t max_deliveries = 0;
  std::uint64_t redelivery_delay_ns = 0;
  std::uint32_t queue_flags = 0;  // layout::kQueue*
  std::string subscription;       // Role::DurableSubscriber: the subscription's name
  std::uint8_t fsync_mode = 0;    // shmbus::FsyncPolicy::Mode (queues, at creation)
  std::uint32_t fsync_value = 0;
};
struct OpenOk {
  std::uint32_t dest_id = 0;
  std::uint32_t endpoint_id = 0;
  std::uint32_t entry_index = 0;  // subscriber entry (consumer) or producer entry (producer)
  std::uint64_t start_position = 0;
  std::string shm_name;
  std::uint64_t shm_size = 0;
  std::string log_dir;  // Role::DurableSubscriber: the topic's log; start_position is where to read from
};
/// A durable subscriber's position: every message below it was consumed (acknowledged).
struct CommitPosition {
  std::uint32_t dest_id = 0;
  std::uint32_t endpoint_id = 0;
  std::uint64_t position = 0;
};
/// Deletes durable subscription `subscription` of topic `name` (refused while a subscriber is open).
struct Unsubscribe {
  std::string name;
  std::string subscription;
};
struct CloseEndpoint {
  std::uint32_t dest_id = 0;
  std::uint32_t endpoint_id = 0;
};
/// A temporary destination for this connection: the daemon picks the name, creates it with this
/// geometry and policy (queues: no dead-letter queue, dead letters are dropped and counted), and
/// deletes it when the connection goes.
struct CreateTemp {
  std::uint8_t kind = 1;
  std::uint32_t capacity = 0;
  std::uint32_t max_message_size = 0;
  std::uint32_t max_deliveries = 0;
  std::uint64_t redelivery_delay_ns = 0;
};
struct TempOk {
  std::uint32_t dest_id = 0;
  std::string name;  // "TMP.<daemon epoch, 8 hex>.<counter>"
};
/// Deletes a temporary destination this connection created (it must have no consumer).
struct DeleteTemp {
  std::uint8_t kind = 1;
  std::string name;
};
using StatReply = BusStats;

Writer encode(const Hello&);
Writer encode(const HelloOk&);
Writer encode(const ErrorReply&);
Writer encode(const OpenDest&);
Writer encode(const OpenOk&);
Writer encode(const CloseEndpoint&);
Writer encode(const CommitPosition&);
Writer encode(const Unsubscribe&);
Writer encode(const StatReply&);
Writer encode(const CreateTemp&);
Writer encode(const TempOk&);
Writer encode(const DeleteTemp&);
void decode(Reader&, Hello&);
void decode(Reader&, HelloOk&);
void decode(Reader&, ErrorReply&);
void decode(Reader&, OpenDest&);
void decode(Reader&, OpenOk&);
void decode(Reader&, CloseEndpoint&);
void decode(Reader&, CommitPosition&);
void decode(Reader&, Unsubscribe&);
void decode(Reader&, StatReply&);
void decode(Reader&, CreateTemp&);
void decode(Reader&, TempOk&);
void decode(Reader&, DeleteTemp&);

}  // namespace shmbus::control
