// Client-side producer and consumer state (the pimpl behind MessageProducer / MessageConsumer).
#pragma once
#include "client/connection_impl.hpp"
#include "ring/topic_ring.hpp"

#include <vector>

namespace shmbus::detail {

inline constexpr std::uint64_t kCheckEveryNoWait = 4096;

struct EndpointBase {
  std::shared_ptr<ConnectionImpl> conn;
  std::shared_ptr<Mapping> map;
  std::uint32_t dest_id = 0;
  std::uint32_t id = 0;
  bool closed = false;
  /// Tells the daemon we are gone (best effort: a dead daemon needs no telling).
  void close_endpoint() noexcept;
  bool usable() const noexcept { return !closed && !conn->closed.load(std::memory_order_relaxed); }
};

struct ProducerImpl : EndpointBase {
  ring::TopicWriter writer;
  bool timestamps = true;
  std::uint64_t stall_timeout_ns = 0;
  Status claim_slot(std::uint32_t length, ring::SlotClaim& c) noexcept;
};

struct ConsumerImpl : EndpointBase {
  ring::TopicReader reader;
  ConsumerOptions opts;
  std::vector<std::byte> buf;
  std::uint64_t lost_total = 0;
  std::uint64_t empty_polls = 0;
  ReceiveResult poll(Message& out) noexcept;
  ReceiveResult wait_and_poll(Message& out, std::chrono::nanoseconds timeout) noexcept;
  bool park(std::uint64_t deadline_ns) noexcept;
};

}  // namespace shmbus::detail
