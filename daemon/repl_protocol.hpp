// The replication protocol between shmbusd daemons (docs/replication.md has every frame).
//
// One TCP connection per follower, opened by the follower (or by a daemon probing who leads).
// Every frame is a 16-byte header then `length` payload bytes; payload fields are little-endian
// (control::Writer/Reader). Anything malformed -- bad magic, unknown type, a frame out of its
// turn, a length past the limit, a field that runs past the payload -- throws ReplError and the
// connection is closed with the reason logged. Record batches inside FetchResponse are the
// leader's .log bytes; the follower checks every CRC before it writes (Log::append_raw).
#pragma once
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace shmbus::daemon::repl {

inline constexpr std::uint32_t kMagic = 0x31524253;  // "SBR1"
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::uint32_t kMaxControlPayload = 1U << 20;   // every frame but FetchResponse
inline constexpr std::uint32_t kMaxFetchPayload = 80U << 20;    // FetchResponse (max_bytes is at most 64 MiB)
inline constexpr std::size_t kNonceBytes = 16;
inline constexpr std::size_t kMacBytes = 32;  // HMAC-SHA256

enum class Type : std::uint16_t {
  Hello = 1,          // dialer -> listener: version, nonce, intent, epoch, own address
  Challenge = 2,      // listener -> dialer: nonce, proof that the listener knows the secret
  Auth = 3,           // dialer -> listener: proof that the dialer knows the secret
  Welcome = 4,        // listener -> dialer: role, epoch, leader, replica set
  Refuse = 5,         // either way, then close: why (and the sender's epoch and leader, for fencing)
  EpochQuery = 6,     // follower -> leader: per log, the follower's latest leader epoch
  EpochAnswer = 7,    // leader -> follower: per log, where that epoch ends on the leader (KIP-101)
  Fetch = 8,          // follower -> leader: per log, the next offset it needs (= what it holds)
  FetchResponse = 9,  // leader -> follower: per log, offsets, high watermark and whole batches; files
};
inline constexpr std::uint16_t kLastType = 9;

/// Why a connection is being closed: a malformed or unexpected frame, a failed check.
class ReplError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Header {
  Type type{};
  std::uint32_t length = 0;
};
/// Validates magic, version, type and the length limit of that type.
Header decode_header(const std::uint8_t* bytes);
void encode_header(std::uint8_t* out, Type t, std::uint32_t length);

enum class Intent : std::uint8_t { Follow = 1, Probe = 2 };
enum class NodeRole : std::uint8_t { Standalone = 0, Leader = 1, Follower = 2, Fenced = 3 };
const char* to_string(NodeRole r) noexcept;

struct Hello {
  std::uint8_t nonce[kNonceBytes]{};
  Intent intent = Intent::Follow;
  std::uint32_t epoch = 0;  // the highest leader epoch the dialer knows
  std::string self;         // the dialer's replication address (its identity)
};
struct Challenge {
  std::uint8_t nonce[kNonceBytes]{};
  std::uint8_t mac[kMacBytes]{};  // HMAC(secret, "shmbus-leader" | hello.nonce | nonce)
};
struct Auth {
  std::uint8_t mac[kMacBytes]{};  // HMAC(secret, "shmbus-follower" | challenge.nonce | hello.nonce | hello.self)
};
struct Welcome {
  NodeRole role = NodeRole::Standalone;
  std::uint32_t epoch = 0;
  std::string leader;                 // the leader this node knows ("" if none)
  std::vector<std::string> replicas;  // every member of the replica set, leader included
};
struct Refuse {
  std::uint32_t epoch = 0;  // the refuser's epoch: a stale leader learns it is fenced
  std::string leader;       // the leader the refuser follows, if any
  std::string reason;
};
struct EpochQuery {
  struct Entry { std::string log; std::uint32_t epoch = 0; };
  std::vector<Entry> entries;
};
struct EpochAnswer {
  struct Entry {
    std::string log;
    std::uint8_t status = 0;  // 0 known, 1 the leader has no epoch that old, 2 no such log, 3 not served (yet): leave it alone
    std::uint32_t epoch = 0;
    std::uint64_t end_offset = 0;
  };
  std::vector<Entry> entries;
};
struct Fetch {
  struct Entry { std::string log; std::uint64_t offset = 0; };
  std::uint32_t max_wait_ms = 0;
  std::uint32_t max_bytes = 0;
  std::vector<Entry> entries;  // logs the follower holds; the leader adds the ones it lacks
};
/// Fetch offset of a log the follower holds but must not receive data for (its epochs could not be
/// checked: EpochAnswer status 3). The leader sends nothing for it.
inline constexpr std::uint64_t kParked = ~0ULL;
/// FetchResponse: header fields, then `data_length` bytes of batches per entry, then files.
struct FetchEntry {
  enum Status : std::uint8_t { kOk = 0, kOutOfRange = 1, kNoSuchLog = 2 };
  std::string log;
  std::uint8_t status = kOk;
  std::uint64_t log_start = 0;
  std::uint64_t log_end = 0;
  std::uint64_t high_watermark = 0;
  std::uint32_t data_length = 0;
};
struct MetaFile {
  std::string path;  // relative to DIR/data: "queue.jobs/queue.meta", "topic.t/subscriptions"
  std::string content;
};

std::vector<std::uint8_t> frame(Type t, const std::vector<std::uint8_t>& payload);
std::vector<std::uint8_t> encode(const Hello&);
std::vector<std::uint8_t> encode(const Challenge&);
std::vector<std::uint8_t> encode(const Auth&);
std::vector<std::uint8_t> encode(const Welcome&);
std::vector<std::uint8_t> encode(const Refuse&);
std::vector<std::uint8_t> encode(const EpochQuery&);
std::vector<std::uint8_t> encode(const EpochAnswer&);
std::vector<std::uint8_t> encode(const Fetch&);
/// The FetchResponse's fixed part for `entries` and `files`: the caller sends it, then each
/// entry's data bytes in order, then the file section (encode_files).
std::vector<std::uint8_t> encode_fetch_head(std::uint32_t total_length, const std::vector<FetchEntry>& entries);
std::vector<std::uint8_t> encode_files(const std::vector<MetaFile>& files);
std::uint32_t fetch_head_size(const std::vector<FetchEntry>& entries);

void decode(std::span<const std::uint8_t> p, Hello&);
void decode(std::span<const std::uint8_t> p, Challenge&);
void decode(std::span<const std::uint8_t> p, Auth&);
void decode(std::span<const std::uint8_t> p, Welcome&);
void decode(std::span<const std::uint8_t> p, Refuse&);
void decode(std::span<const std::uint8_t> p, EpochQuery&);
void decode(std::span<const std::uint8_t> p, EpochAnswer&);
void decode(std::span<const std::uint8_t> p, Fetch&);
/// A whole FetchResponse payload: entries with views of their data, and the files.
struct FetchResponseView {
  std::vector<FetchEntry> entries;
  std::vector<std::span<const std::uint8_t>> data;  // per entry
  std::vector<MetaFile> files;
};
void decode(std::span<const std::uint8_t> p, FetchResponseView&);

/// HMAC-SHA256 of the concatenated parts.
void hmac(const std::string& secret, std::initializer_list<std::span<const std::uint8_t>> parts, std::uint8_t out[kMacBytes]);
bool macs_equal(const std::uint8_t a[kMacBytes], const std::uint8_t b[kMacBytes]) noexcept;  // constant time
void random_nonce(std::uint8_t out[kNonceBytes]);

/// A log name as the protocol carries it: "queue.NAME" or "topic.NAME" (a directory under DIR/data);
/// false for anything that could escape the data directory.
bool valid_log_name(const std::string& s) noexcept;
/// A metadata file path: LOGNAME/queue.meta, LOGNAME/topic.meta, subscriptions file names.
bool valid_meta_path(const std::string& s) noexcept;

}  // namespace shmbus::daemon::repl
