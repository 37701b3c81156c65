#include "cli/commands.hpp"
#include "shmbus/shmbus.hpp"

#include <cstdlib>
#include <iostream>

namespace {

constexpr const char* kHelp = R"(usage: shmbus [--dir DIR] COMMAND ...
commands:
  send DEST [--count N] [TEXT | -]     send TEXT (N times), or each line of stdin when TEXT is - or absent
  recv DEST [--count N] [--timeout MS] print each message on its own line; stop after N messages, or when
                                       nothing arrives for MS milliseconds
  stat [--json]                        destinations, producers, consumers, positions and counters
  unsubscribe topic://NAME SUB         delete durable subscription SUB of the topic (and, with the last one, its log)
  promote                              make the replication follower serving DIR the leader, with a new epoch
  dump-log PATH [--records]            print the batches (and records) of a segment log file or directory;
                                       exit 0 if all valid, 3 on a bad CRC or torn tail, 2 on usage/IO errors
options for send/recv (used only when the destination is created):
  --capacity SLOTS   ring slots (power of two, default 4096)
  --max-size BYTES   largest message, headers and properties included (default 4096)
  --read-committed   queues: consumers see a PERSISTENT message only once it is committed (below the
                     leader's high watermark when replicating, else fsync'ed)
options for send:
  --type T           text (default): a TextMessage per TEXT/line; bytes: a BytesMessage of its bytes;
                     map: whitespace-separated K=V entries; stream: whitespace-separated values
  --property K=V     a typed property (repeatable): K:TYPE=V with TYPE bool, byte, short, int, long,
                     float, double or string; without :TYPE, true/false is a bool, an integer a long,
                     a number with . or an exponent a double, anything else a string
  --correlation-id ID  JMSCorrelationID
  --persistent       JMSDeliveryMode PERSISTENT: queues write it to their log in DIR/data (it survives
                     a daemon restart); topics carry it in the header only
  --acks A           with --persistent: memory (default: return once queued), durable (return once
                     written and fsync'ed by the daemon) or replicated (return once every in-sync replica
                     has it, at least --min-insync of them; else exit 4, not replicated)
  --priority N       0 (lowest) to 9 (highest), default 4 (queues deliver higher first)
  --ttl MS           not delivered once MS milliseconds have passed since the send (0: never expires)
  --delay MS         queues only: not delivered before MS milliseconds have passed since the send
options for recv:
  --durable NAME     topics: receive as durable subscription NAME (created if new; it keeps PERSISTENT
                     messages while no subscriber is open, from where it last acknowledged)
  --selector EXPR    receive only messages matching the JMS selector EXPR (queues: the others stay)
  --verbose          print the headers and properties (one per line) before each body, and an empty
                     line after it
options for recv from a queue:
  --ack MODE         auto (default: acknowledged as received), client or individual (acknowledged
                     after printing), dups_ok (acknowledged in batches)
  --no-ack           never acknowledge: what was printed goes back to the queue when recv exits (peek)
DEST is topic://NAME or queue://NAME. DIR defaults to $SHMBUS_DIR, else $XDG_RUNTIME_DIR/shmbus, else
/tmp/shmbus-<uid>. docs/cli.md describes every option and output format.
exit codes: 0 ok, 1 timeout before --count messages, 2 usage error or bad input, 3 no daemon,
4 other failure
)";

bool parse_u32(const std::string& v, std::uint32_t& out) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || v[0] == '-' || n > 0xFFFFFFFFUL) return false;
  out = static_cast<std::uint32_t>(n);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace shmbus::cli;
  Common c;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool takes = a == "--dir" || a == "--capacity" || a == "--max-size";
    if (takes && i + 1 >= argc) {
      std::cerr << "shmbus: " << a << " needs a value\n";
      return kUsage;
    }
    if (a == "--dir") c.dir = argv[++i];
    else if (a == "--capacity" || a == "--max-size") {
      std::uint32_t v = 0;
      if (!parse_u32(argv[++i], v) || v == 0) {
        std::cerr << "shmbus: " << a << " needs a positive number, not '" << argv[i] << "'\n";
        return kUsage;
      }
      (a == "--capacity" ? c.capacity : c.max_size) = v;
    } else if (a == "--read-committed") {
      c.read_committed = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << kHelp;
      return kOk;
    } else rest.push_back(a);
  }
  if (rest.empty()) {
    std::cerr << kHelp;
    return kUsage;
  }
  const std::string cmd = rest.front();
  rest.erase(rest.begin());
  try {
    if (cmd == "send") return cmd_send(c, rest);
    if (cmd == "recv") return cmd_recv(c, rest);
    if (cmd == "stat") return cmd_stat(c, rest);
    if (cmd == "unsubscribe") return cmd_unsubscribe(c, rest);
    if (cmd == "promote") return cmd_promote(c, rest);
    if (cmd == "dump-log") return cmd_dump_log(c, rest);
    std::cerr << "shmbus: unknown command '" << cmd << "'\n" << kHelp;
    return kUsage;
  } catch (const shmbus::Error& e) {
    std::cerr << "shmbus: " << e.what() << "\n";
    if (e.code() == shmbus::ErrorCode::DaemonUnavailable) return kNoDaemon;
    if (e.code() == shmbus::ErrorCode::BadDestination || e.code() == shmbus::ErrorCode::InvalidArgument ||
        e.code() == shmbus::ErrorCode::Unsupported)
      return kUsage;
    return kFailed;
  }
}
