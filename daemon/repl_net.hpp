// TCP for replication: blocking sockets with deadlines (one thread per connection; the leader
// sends record batches with sendfile straight from the segment files).
#pragma once
#include "control/socket.hpp"
#include "repl_protocol.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace shmbus::daemon::repl {

/// "HOST:PORT" -> false with `err` if malformed (HOST: an IPv4 address or a name).
bool split_address(const std::string& addr, std::string& host, std::uint16_t& port, std::string& err);
/// Listening socket on addr (SO_REUSEADDR); throws std::runtime_error naming the address.
control::Fd listen_tcp(const std::string& addr);
/// Connects within `timeout`; returns an invalid Fd and sets err on failure. TCP_NODELAY set.
control::Fd connect_tcp(const std::string& addr, std::chrono::milliseconds timeout, std::string& err);
void tune(int fd);  // TCP_NODELAY, keepalive

/// One connection's framing: reads whole frames into a reused buffer.
class Conn {
 public:
  explicit Conn(control::Fd fd) : fd_(std::move(fd)) {}
  int fd() const noexcept { return fd_.get(); }
  /// Sends bytes; throws ReplError("peer closed ...") on failure.
  void send(const std::vector<std::uint8_t>& bytes);
  /// sendfile of [pos, pos+len) of file fd; throws ReplError on failure.
  void send_file(int file_fd, std::uint64_t pos, std::uint32_t len);
  /// Reads one frame within `timeout` (header checked); payload() holds its bytes. Throws
  /// ReplError on EOF, timeout or a malformed header.
  Header recv(std::chrono::milliseconds timeout);
  std::span<const std::uint8_t> payload() const noexcept { return {buf_.data(), len_}; }
  /// Reads one frame and requires type `t` (a Refuse is turned into a ReplError with its reason,
  /// after `on_refuse` saw it).
  template <class On>
  void expect(Type t, std::chrono::milliseconds timeout, On&& on_refuse) {
    const Header h = recv(timeout);
    if (h.type == Type::Refuse) {
      Refuse r;
      decode(payload(), r);
      on_refuse(r);
      throw ReplError("refused by the peer: " + r.reason);
    }
    if (h.type != t)
      throw ReplError("frame type " + std::to_string(static_cast<int>(h.type)) + " out of turn (expected " +
                      std::to_string(static_cast<int>(t)) + ")");
  }
  void shutdown() noexcept;
  std::uint64_t bytes_in() const noexcept { return bytes_in_; }

 private:
  control::Fd fd_;
  std::vector<std::uint8_t> buf_;
  std::size_t len_ = 0;
  std::uint64_t bytes_in_ = 0;
};

}  // namespace shmbus::daemon::repl
