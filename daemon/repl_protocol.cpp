#include "repl_protocol.hpp"

#include "control/protocol.hpp"
#include "shmbus/error.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <sys/random.h>

namespace shmbus::daemon::repl {

namespace {

using control::Writer;

// control::Reader throws shmbus::Error(ProtocolError) on truncation; here every decode failure is
// a ReplError, so callers catch one type.
class In {
 public:
  explicit In(std::span<const std::uint8_t> p) : buf_(p.begin(), p.end()), r_(buf_) {}
  template <class F>
  auto call(F&& f) {
    try {
      return f(r_);
    } catch (const Error& e) {
      throw ReplError(e.what());
    }
  }
  std::uint8_t u8() { return call([](control::Reader& r) { return r.u8(); }); }
  std::uint32_t u32() { return call([](control::Reader& r) { return r.u32(); }); }
  std::uint64_t u64() { return call([](control::Reader& r) { return r.u64(); }); }
  std::string str() { return call([](control::Reader& r) { return r.str(); }); }
  void bytes(std::uint8_t* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = u8();
  }
  void end(const char* what) {
    if (!r_.done()) throw ReplError(std::string(what) + " has bytes after its last field");
  }

 private:
  std::vector<std::uint8_t> buf_;
  control::Reader r_;
};

void put_bytes(Writer& w, const std::uint8_t* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) w.u8(b[i]);
}

std::uint32_t count(In& in, std::size_t remaining_min_each, std::size_t payload, const char* what) {
  const std::uint32_t n = in.u32();
  if (remaining_min_each != 0 && n > payload / remaining_min_each)
    throw ReplError(std::string(what) + " claims " + std::to_string(n) + " entries, more than its length allows");
  return n;
}

void le32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t rd32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{p[i]} << (8 * i);
  return v;
}
std::uint16_t rd16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

std::string check_log(std::string s) {
  if (!valid_log_name(s)) throw ReplError("log name '" + s.substr(0, 64) + "' is not queue.NAME or topic.NAME");
  return s;
}

}  // namespace

const char* to_string(NodeRole r) noexcept {
  switch (r) {
    case NodeRole::Standalone: return "standalone";
    case NodeRole::Leader: return "leader";
    case NodeRole::Follower: return "follower";
    case NodeRole::Fenced: return "fenced";
  }
  return "?";
}

Header decode_header(const std::uint8_t* b) {
  if (rd32(b) != kMagic) throw ReplError("not a shmbus replication frame (bad magic)");
  if (rd16(b + 4) != kVersion)
    throw ReplError("replication protocol version " + std::to_string(rd16(b + 4)) + " (this shmbusd speaks " +
                    std::to_string(kVersion) + ")");
  const std::uint16_t t = rd16(b + 6);
  if (t == 0 || t > kLastType) throw ReplError("unknown frame type " + std::to_string(t));
  Header h{static_cast<Type>(t), rd32(b + 8)};
  const std::uint32_t limit = h.type == Type::FetchResponse ? kMaxFetchPayload : kMaxControlPayload;
  if (h.length > limit)
    throw ReplError("frame type " + std::to_string(t) + " of " + std::to_string(h.length) + " bytes (limit " +
                    std::to_string(limit) + ")");
  if (rd32(b + 12) != 0) throw ReplError("frame header reserved field is not zero");
  return h;
}

void encode_header(std::uint8_t* out, Type t, std::uint32_t length) {
  le32(out, kMagic);
  out[4] = static_cast<std::uint8_t>(kVersion);
  out[5] = static_cast<std::uint8_t>(kVersion >> 8);
  out[6] = static_cast<std::uint8_t>(static_cast<std::uint16_t>(t));
  out[7] = static_cast<std::uint8_t>(static_cast<std::uint16_t>(t) >> 8);
  le32(out + 8, length);
  le32(out + 12, 0);
}

std::vector<std::uint8_t> frame(Type t, const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> out(kHeaderSize + payload.size());
  encode_header(out.data(), t, static_cast<std::uint32_t>(payload.size()));
  if (!payload.empty()) std::memcpy(out.data() + kHeaderSize, payload.data(), payload.size());
  return out;
}

std::vector<std::uint8_t> encode(const Hello& m) {
  Writer w;
  put_bytes(w, m.nonce, kNonceBytes);
  w.u8(static_cast<std::uint8_t>(m.intent)).u32(m.epoch).str(m.self);
  return frame(Type::Hello, w.body());
}
void decode(std::span<const std::uint8_t> p, Hello& m) {
  In in(p);
  in.bytes(m.nonce, kNonceBytes);
  const auto intent = in.u8();
  if (intent != 1 && intent != 2) throw ReplError("hello: unknown intent " + std::to_string(intent));
  m.intent = static_cast<Intent>(intent);
  m.epoch = in.u32();
  m.self = in.str();
  if (m.self.empty() || m.self.size() > 255) throw ReplError("hello: the dialer's address is empty or too long");
  in.end("hello");
}

std::vector<std::uint8_t> encode(const Challenge& m) {
  Writer w;
  put_bytes(w, m.nonce, kNonceBytes);
  put_bytes(w, m.mac, kMacBytes);
  return frame(Type::Challenge, w.body());
}
void decode(std::span<const std::uint8_t> p, Challenge& m) {
  In in(p);
  in.bytes(m.nonce, kNonceBytes);
  in.bytes(m.mac, kMacBytes);
  in.end("challenge");
}

std::vector<std::uint8_t> encode(const Auth& m) {
  Writer w;
  put_bytes(w, m.mac, kMacBytes);
  return frame(Type::Auth, w.body());
}
void decode(std::span<const std::uint8_t> p, Auth& m) {
  In in(p);
  in.bytes(m.mac, kMacBytes);
  in.end("auth");
}

std::vector<std::uint8_t> encode(const Welcome& m) {
  Writer w;
  w.u8(static_cast<std::uint8_t>(m.role)).u32(m.epoch).str(m.leader).u32(static_cast<std::uint32_t>(m.replicas.size()));
  for (const auto& r : m.replicas) w.str(r);
  return frame(Type::Welcome, w.body());
}
void decode(std::span<const std::uint8_t> p, Welcome& m) {
  In in(p);
  const auto role = in.u8();
  if (role > 3) throw ReplError("welcome: unknown role " + std::to_string(role));
  m.role = static_cast<NodeRole>(role);
  m.epoch = in.u32();
  m.leader = in.str();
  const auto n = count(in, 4, p.size(), "welcome");
  m.replicas.clear();
  for (std::uint32_t i = 0; i < n; ++i) m.replicas.push_back(in.str());
  in.end("welcome");
}

std::vector<std::uint8_t> encode(const Refuse& m) {
  Writer w;
  w.u32(m.epoch).str(m.leader).str(m.reason);
  return frame(Type::Refuse, w.body());
}
void decode(std::span<const std::uint8_t> p, Refuse& m) {
  In in(p);
  m.epoch = in.u32();
  m.leader = in.str();
  m.reason = in.str();
  in.end("refuse");
}

std::vector<std::uint8_t> encode(const EpochQuery& m) {
  Writer w;
  w.u32(static_cast<std::uint32_t>(m.entries.size()));
  for (const auto& e : m.entries) w.str(e.log).u32(e.epoch);
  return frame(Type::EpochQuery, w.body());
}
void decode(std::span<const std::uint8_t> p, EpochQuery& m) {
  In in(p);
  const auto n = count(in, 8, p.size(), "epoch query");
  m.entries.clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    EpochQuery::Entry e;
    e.log = check_log(in.str());
    e.epoch = in.u32();
    m.entries.push_back(std::move(e));
  }
  in.end("epoch query");
}

std::vector<std::uint8_t> encode(const EpochAnswer& m) {
  Writer w;
  w.u32(static_cast<std::uint32_t>(m.entries.size()));
  for (const auto& e : m.entries) w.str(e.log).u8(e.status).u32(e.epoch).u64(e.end_offset);
  return frame(Type::EpochAnswer, w.body());
}
void decode(std::span<const std::uint8_t> p, EpochAnswer& m) {
  In in(p);
  const auto n = count(in, 17, p.size(), "epoch answer");
  m.entries.clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    EpochAnswer::Entry e;
    e.log = check_log(in.str());
    e.status = in.u8();
    if (e.status > 3) throw ReplError("epoch answer: unknown status " + std::to_string(e.status));
    e.epoch = in.u32();
    e.end_offset = in.u64();
    m.entries.push_back(std::move(e));
  }
  in.end("epoch answer");
}

std::vector<std::uint8_t> encode(const Fetch& m) {
  Writer w;
  w.u32(m.max_wait_ms).u32(m.max_bytes).u32(static_cast<std::uint32_t>(m.entries.size()));
  for (const auto& e : m.entries) w.str(e.log).u64(e.offset);
  return frame(Type::Fetch, w.body());
}
void decode(std::span<const std::uint8_t> p, Fetch& m) {
  In in(p);
  m.max_wait_ms = in.u32();
  m.max_bytes = in.u32();
  if (m.max_wait_ms > 60'000) throw ReplError("fetch: max wait " + std::to_string(m.max_wait_ms) + " ms (limit 60000)");
  if (m.max_bytes < 4096 || m.max_bytes > (64U << 20))
    throw ReplError("fetch: max bytes " + std::to_string(m.max_bytes) + " (4096 to 67108864)");
  const auto n = count(in, 12, p.size(), "fetch");
  m.entries.clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    Fetch::Entry e;
    e.log = check_log(in.str());
    e.offset = in.u64();
    m.entries.push_back(std::move(e));
  }
  in.end("fetch");
}

std::uint32_t fetch_head_size(const std::vector<FetchEntry>& entries) {
  std::uint32_t n = 4;
  for (const auto& e : entries) n += 2 + static_cast<std::uint32_t>(e.log.size()) + 1 + 8 * 3 + 4;
  return n;
}

std::vector<std::uint8_t> encode_fetch_head(std::uint32_t total_length, const std::vector<FetchEntry>& entries) {
  Writer w;
  w.u32(static_cast<std::uint32_t>(entries.size()));
  for (const auto& e : entries)
    w.str(e.log).u8(e.status).u64(e.log_start).u64(e.log_end).u64(e.high_watermark).u32(e.data_length);
  std::vector<std::uint8_t> out(kHeaderSize + w.body().size());
  encode_header(out.data(), Type::FetchResponse, total_length);
  std::memcpy(out.data() + kHeaderSize, w.body().data(), w.body().size());
  return out;
}

std::vector<std::uint8_t> encode_files(const std::vector<MetaFile>& files) {
  Writer w;
  w.u32(static_cast<std::uint32_t>(files.size()));
  for (const auto& f : files) {
    w.str(f.path).u32(static_cast<std::uint32_t>(f.content.size()));
    for (const char c : f.content) w.u8(static_cast<std::uint8_t>(c));
  }
  return w.body();
}

void decode(std::span<const std::uint8_t> p, FetchResponseView& m) {
  // The head and the files are parsed with In over copies of their parts; the data stays a view.
  std::size_t pos = 0;
  const auto need = [&](std::size_t n, const char* what) {
    if (p.size() - pos < n) throw ReplError(std::string("fetch response: ") + what + " runs past the frame");
  };
  const auto u8 = [&] { need(1, "a field"); return p[pos++]; };
  const auto u32 = [&] { need(4, "a field"); const auto v = rd32(p.data() + pos); pos += 4; return v; };
  const auto u64 = [&] { const std::uint64_t lo = u32(); const std::uint64_t hi = u32(); return lo | (hi << 32); };
  const auto u16 = [&] { need(2, "a field"); const auto v = rd16(p.data() + pos); pos += 2; return v; };
  const auto blob = [&](std::uint32_t n) {
    need(n, "a string");
    std::string s(reinterpret_cast<const char*>(p.data() + pos), n);
    pos += n;
    return s;
  };
  const auto str = [&] {
    const std::uint32_t n = u16();
    need(n, "a string");
    std::string s(reinterpret_cast<const char*>(p.data() + pos), n);
    pos += n;
    return s;
  };
  const std::uint32_t n = u32();
  if (n > p.size() / 33) throw ReplError("fetch response claims " + std::to_string(n) + " entries, more than its length allows");
  m.entries.clear();
  m.data.clear();
  m.files.clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    FetchEntry e;
    e.log = check_log(str());
    e.status = u8();
    if (e.status > FetchEntry::kNoSuchLog) throw ReplError("fetch response: unknown status " + std::to_string(e.status));
    e.log_start = u64();
    e.log_end = u64();
    e.high_watermark = u64();
    e.data_length = u32();
    if (e.log_start > e.log_end || e.high_watermark > e.log_end)
      throw ReplError("fetch response for " + e.log + ": offsets out of order (start " + std::to_string(e.log_start) +
                      ", high watermark " + std::to_string(e.high_watermark) + ", end " + std::to_string(e.log_end) + ")");
    if (e.status != FetchEntry::kOk && e.data_length != 0) throw ReplError("fetch response: data with an error status");
    m.entries.push_back(std::move(e));
  }
  for (auto& e : m.entries) {
    need(e.data_length, "batch data");
    m.data.emplace_back(p.data() + pos, e.data_length);
    pos += e.data_length;
  }
  const std::uint32_t files = u32();
  for (std::uint32_t i = 0; i < files; ++i) {
    MetaFile f;
    f.path = str();
    if (!valid_meta_path(f.path)) throw ReplError("fetch response: file path '" + f.path.substr(0, 64) + "' is not allowed");
    f.content = blob(u32());
    m.files.push_back(std::move(f));
  }
  if (pos != p.size()) throw ReplError("fetch response has bytes after its last field");
}

void hmac(const std::string& secret, std::initializer_list<std::span<const std::uint8_t>> parts, std::uint8_t out[kMacBytes]) {
  std::vector<std::uint8_t> msg;
  for (auto s : parts) msg.insert(msg.end(), s.begin(), s.end());
  unsigned int len = kMacBytes;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), msg.data(), msg.size(), out, &len);
}

bool macs_equal(const std::uint8_t a[kMacBytes], const std::uint8_t b[kMacBytes]) noexcept {
  return CRYPTO_memcmp(a, b, kMacBytes) == 0;
}

void random_nonce(std::uint8_t out[kNonceBytes]) {
  std::size_t got = 0;
  while (got < kNonceBytes) {
    const ssize_t r = ::getrandom(out + got, kNonceBytes - got, 0);
    if (r > 0) got += static_cast<std::size_t>(r);
  }
}

bool valid_log_name(const std::string& s) noexcept {
  if (s.size() < 7 || s.size() > 255) return false;
  if (s.rfind("queue.", 0) != 0 && s.rfind("topic.", 0) != 0) return false;
  if (s.find('/') != std::string::npos || s.find('\0') != std::string::npos) return false;
  return s != "queue.." && s != "topic..";
}

bool valid_meta_path(const std::string& s) noexcept {
  const auto slash = s.find('/');
  if (slash == std::string::npos || s.find('/', slash + 1) != std::string::npos) return false;
  const std::string log = s.substr(0, slash), file = s.substr(slash + 1);
  if (!valid_log_name(log)) return false;
  return file == "queue.meta" || file == "topic.meta" || file == "subscriptions";
}

}  // namespace shmbus::daemon::repl
