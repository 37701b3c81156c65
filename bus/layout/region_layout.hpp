// Layout of the daemon's control region: one per DIR, shm name "shmbus.<dirhash>.ctl".
//
//  offset  size  field
//  ------  ----  -------------------------------------------------------------
//       0     8  magic            "SHMBUSRG"
//       8     4  layout_version   written LAST by the daemon (release); 0 = not ready
//      12     4  header_size      sizeof(RegionHeader)
//      16     8  total_length     bytes of the whole mapping
//      24     4  daemon_pid
//      28     4  max_clients
//      32     8  daemon_start_ns  CLOCK_REALTIME at daemon start (pid-reuse guard)
//      40     4  persist_doorbell durable sends bump it to wake the persistence agent (its futex)
//      44     4  persist_waiters  1 while the persistence agent is parked on the doorbell
//      48     4  repl_role        replication: 0 standalone, 1 leader, 2 follower, 3 fenced
//      52     4  repl_epoch       the leader epoch this daemon is in
//      56     4  repl_isr         leader: in-sync replicas, itself included (replicated sends check it)
//      60     4  repl_min_insync  leader: the minimum for Acks::Replicated (0: sends cannot be replicated)
//      64     4  state            1 running, 2 stopping (clean shutdown in progress)
//      68    60  reserved
//     128     8  heartbeat_ns     CLOCK_MONOTONIC of the last daemon tick
//     136   120  reserved
//     256        ClientEntry[max_clients], 64 bytes each
//
// ClientEntry (64 bytes): state (0 free, 1 attached, 2 dead-being-cleaned), pid,
// generation (bumped on every reuse of the entry), name (NUL-terminated, 48 bytes).
#pragma once
#include "layout/common.hpp"

#include <type_traits>

namespace shmbus::layout {

enum class DaemonState : std::uint32_t { Starting = 0, Running = 1, Stopping = 2 };
enum class ClientState : std::uint32_t { Free = 0, Attached = 1, Dead = 2 };

struct alignas(kCacheLine) RegionHeader {
  std::uint64_t magic;
  std::atomic<std::uint32_t> layout_version;
  std::uint32_t header_size;
  std::uint64_t total_length;
  std::int32_t daemon_pid;
  std::uint32_t max_clients;
  std::uint64_t daemon_start_ns;
  std::atomic<std::uint32_t> persist_doorbell;
  std::atomic<std::uint32_t> persist_waiters;
  // Replication (docs/replication.md); the daemon's replicator writes them, relaxed: producers
  // read them as hints before and while waiting (the wait itself is released by `durable`).
  std::atomic<std::uint32_t> repl_role;
  std::atomic<std::uint32_t> repl_epoch;
  std::atomic<std::uint32_t> repl_isr;
  std::atomic<std::uint32_t> repl_min_insync;
  std::atomic<std::uint32_t> state;
  std::uint8_t reserved1[60];
  std::atomic<std::uint64_t> heartbeat_ns;
  std::uint8_t reserved2[120];
};

struct alignas(kCacheLine) ClientEntry {
  std::atomic<std::uint32_t> state;
  std::int32_t pid;
  std::atomic<std::uint32_t> generation;
  std::uint32_t reserved0;
  char name[48];
};

static_assert(std::is_standard_layout_v<RegionHeader>);
static_assert(sizeof(RegionHeader) == 256);
static_assert(offsetof(RegionHeader, layout_version) == 8);
static_assert(offsetof(RegionHeader, total_length) == 16);
static_assert(offsetof(RegionHeader, daemon_pid) == 24);
static_assert(offsetof(RegionHeader, daemon_start_ns) == 32);
static_assert(offsetof(RegionHeader, persist_doorbell) == 40);
static_assert(offsetof(RegionHeader, persist_waiters) == 44);
static_assert(offsetof(RegionHeader, repl_role) == 48);
static_assert(offsetof(RegionHeader, repl_min_insync) == 60);
static_assert(offsetof(RegionHeader, state) == 64);
static_assert(offsetof(RegionHeader, heartbeat_ns) == 128);
static_assert(std::is_standard_layout_v<ClientEntry>);
static_assert(sizeof(ClientEntry) == 64);
static_assert(offsetof(ClientEntry, name) == 16);

inline constexpr std::size_t region_size(std::uint32_t max_clients) noexcept {
  return sizeof(RegionHeader) + std::size_t{max_clients} * sizeof(ClientEntry);
}

inline ClientEntry* client_table(RegionHeader* h) noexcept {
  return reinterpret_cast<ClientEntry*>(reinterpret_cast<std::byte*>(h) + sizeof(RegionHeader));
}

}  // namespace shmbus::layout
