// What the iceoryx peers need besides the ping-pong itself: the RouDi daemon (started by the bench,
// once, the first time an iceoryx peer runs; stopped when the bench exits) and a helper to run code
// in a short-lived child process.
//
// Why child processes: an iceoryx runtime is a per-process singleton that can register only once and
// survives fork(). If the bench's main process (which runs the ping side of every mechanism, see
// pair.hpp) registered one, every later pong child would inherit it. So the main process never
// registers: the ping side runs in a grandchild (run_in_child), and each side ends with exit(), whose
// static destructors deregister the runtime from RouDi (run_pair's children end with _exit()).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace shmbus::bench::peer::iox_support {

/// Starts iox-roudi ($IOX_ROUDI, else the path CMake found) if this process has not yet, with a config
/// whose one mempool fits `payload_size`; waits until it is ready: its "ready for clients" line, then
/// a runtime registering in a probe process, within 15 s. Throws with RouDi's output on failure.
void ensure_roudi(std::uint32_t payload_size);

/// Forks; the child runs `fn` then exit(0) (static destructors run: the iceoryx runtime deregisters),
/// or _exit(1) with the exception's message. Waits for it (poll() on a pidfd: no wake-ups on the
/// pinned CPU) at most `timeout_ns`, then SIGKILLs. Throws "<what>: <error>" if it failed.
void run_in_child(const std::string& what, std::uint64_t timeout_ns, const std::function<void()>& fn);

/// Registers this process's runtime as "<prefix>-<pid>" (an iceoryx name, at most 100 characters).
void init_runtime(const std::string& prefix);

}  // namespace shmbus::bench::peer::iox_support
