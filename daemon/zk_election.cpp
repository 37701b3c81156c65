// ZooKeeper leader election (zk_election.hpp, docs/zookeeper.md).
//
// Threads: ZooKeeper's C client runs an I/O thread and a completion thread per handle. Our
// watcher (on the completion thread) only marks the election dirty and wakes our own election
// thread, which does all the work with the synchronous API and is the only caller of the
// listener. Keeping ZooKeeper calls off the completion thread means a slow call never delays
// the session events that fence a leader, and stop() can join one thread to guarantee that no
// callback runs afterwards.
#include "zk_election.hpp"

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string_view>
#include <shared_mutex>
#include <thread>
#include <utility>

namespace shmbus::daemon {

const char* to_string(ZkView::Role r) noexcept {
  switch (r) {
    case ZkView::Role::Leader: return "leader";
    case ZkView::Role::Follower: return "follower";
    case ZkView::Role::Unknown: break;
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// While there is no leader, re-evaluate this often (eligibility hooks are polled, not notified).
constexpr auto kLeaderlessPoll = 200ms;
// Otherwise the watches drive everything; this is only a safety net.
constexpr auto kIdlePoll = 1000ms;
constexpr auto kErrorBackoff = 250ms;
constexpr int kElectAttempts = 5;

// The C client logs (errors only: zoo_set_debug_level below) go through here, rate-limited: a
// ZooKeeper outage makes it log every reconnection attempt.
void zk_log(const char* message) {
  static std::mutex mu;
  static Clock::time_point window{};
  static int printed = 0, suppressed = 0;
  std::lock_guard lk(mu);
  const auto now = Clock::now();
  if (now - window > 10s) {
    if (suppressed > 0) std::fprintf(stderr, "shmbus zk: %d ZooKeeper client messages suppressed\n", suppressed);
    window = now;
    printed = suppressed = 0;
  }
  if (++printed > 5) {
    ++suppressed;
    return;
  }
  std::string m(message ? message : "");
  while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.pop_back();
  std::fprintf(stderr, "shmbus zk: %s\n", m.c_str());
}

void set_client_log_level() {
  static std::once_flag once;
  std::call_once(once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR); });
}

// Errors after which the session, not the request, is the problem: wait for a session event.
bool is_session_error(int rc) {
  return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE ||
         rc == ZCLOSING || rc == ZSESSIONMOVED;
}

std::string zk_error(const char* what, const std::string& path, int rc) {
  return std::string(what) + " " + path + ": " + zerror(rc);
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// "ADDRESS EPOCH"
bool parse_leader(const std::string& data, std::string& addr, std::uint32_t& epoch) {
  const auto sp = data.rfind(' ');
  if (sp == std::string::npos || sp == 0) return false;
  addr = data.substr(0, sp);
  return parse_number(std::string_view(data).substr(sp + 1), epoch) && epoch > 0;
}

// "ADDRESS" or "ADDRESS ineligible"
constexpr std::string_view kIneligible = " ineligible";
void parse_candidate(const std::string& data, std::string& addr, bool& eligible) {
  std::string_view d(data);
  eligible = !(d.size() > kIneligible.size() && d.substr(d.size() - kIneligible.size()) == kIneligible);
  if (!eligible) d.remove_suffix(kIneligible.size());
  addr.assign(d);
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b <= s.size()) {
    auto e = s.find('\n', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

struct Candidate {
  std::string name;  // "c_0000000007"
  long long seq = -1;
};

}  // namespace

struct ZkElection::Impl {
  Impl(ZkConfig c, Listener l) : cfg(std::move(c)), listener(std::move(l)) {
    while (cfg.root.size() > 1 && cfg.root.back() == '/') cfg.root.pop_back();
    const std::string base = cfg.root == "/" ? "" : cfg.root;
    cand_dir = base + "/candidates";
    epoch_path = base + "/epoch";
    leader_path = base + "/leader";
    isr_path = base + "/isr";
  }

  ZkConfig cfg;
  Listener listener;
  std::string cand_dir, epoch_path, leader_path, isr_path;

  // Guards the fields below it; never held across a ZooKeeper call or the listener.
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool dirty = false;
  bool started = false;
  ZkView current;
  std::function<bool()> eligible_fn;

  // The handle. Replaced only by the election thread (or start()/stop() while it is not
  // running), under the exclusive lock; publish_isr() and session_credentials() use it under the
  // shared lock. The election thread reads it without locking (it is the only writer).
  mutable std::shared_mutex zh_mu;
  zhandle_t* zh = nullptr;

  std::thread worker;

  // Election-thread state (start() uses it before the thread exists).
  std::string my_cand;          // full path of this session's candidate znode; empty: none yet
  bool my_flag_eligible = true;  // what that znode's data currently says
  std::string last_warning;

  // ---- session handling -------------------------------------------------------------------

  static void watcher(zhandle_t*, int /*type*/, int /*state*/, const char* /*path*/, void* ctx) {
    auto* self = static_cast<Impl*>(ctx);
    std::lock_guard lk(self->mu);
    self->dirty = true;
    self->cv.notify_all();
  }

  bool open_handle(std::string& err) {
    zhandle_t* h = zookeeper_init2(cfg.connect.c_str(), &Impl::watcher, static_cast<int>(cfg.session_timeout_ms), nullptr,
                                   this, 0, &zk_log);
    if (h == nullptr) {
      err = "zookeeper_init(" + cfg.connect + "): " + std::strerror(errno);
      return false;
    }
    std::unique_lock hl(zh_mu);
    zh = h;
    my_cand.clear();
    my_flag_eligible = true;
    return true;
  }

  void close_handle() {
    zhandle_t* h = nullptr;
    {
      std::unique_lock hl(zh_mu);  // waits for a publish_isr() in progress
      h = std::exchange(zh, nullptr);
    }
    my_cand.clear();
    if (h != nullptr) zookeeper_close(h);
  }

  bool connected() const { return zh != nullptr && zoo_state(zh) == ZOO_CONNECTED_STATE; }

  std::int64_t session_id() const {
    const clientid_t* id = zoo_client_id(zh);
    return id ? id->client_id : 0;
  }

  bool ask_eligible() {
    std::function<bool()> f;
    {
      std::lock_guard lk(mu);
      f = eligible_fn;
    }
    return !f || f();
  }

  void publish(const ZkView& v) {
    {
      std::lock_guard lk(mu);
      if (current == v) return;
      current = v;
    }
    if (listener) listener(v);
  }

  void warn(const std::string& msg) {
    if (msg == last_warning) return;  // once per distinct problem, not once per pass
    last_warning = msg;
    std::fprintf(stderr, "shmbus zk: %s\n", msg.c_str());
  }

  // ---- ZooKeeper helpers (synchronous API) -------------------------------------------------

  int get_data(const std::string& path, bool watch, std::string& out, Stat* stat_out = nullptr) {
    std::vector<char> buf(512);
    for (int tries = 0;; ++tries) {
      int len = static_cast<int>(buf.size());
      Stat st{};
      const int rc = zoo_get(zh, path.c_str(), watch ? 1 : 0, buf.data(), &len, &st);
      if (rc != ZOK) return rc;
      if (st.dataLength > static_cast<int>(buf.size()) && tries < 3) {  // grew: read again
        buf.resize(static_cast<std::size_t>(st.dataLength));
        continue;
      }
      out.assign(buf.data(), len > 0 ? static_cast<std::size_t>(len) : 0);
      if (stat_out) *stat_out = st;
      return ZOK;
    }
  }

  int get_children(const std::string& path, bool watch, std::vector<std::string>& out) {
    String_vector v{};
    const int rc = zoo_get_children(zh, path.c_str(), watch ? 1 : 0, &v);
    if (rc != ZOK) return rc;
    out.clear();
    for (int i = 0; i < v.count; ++i) out.emplace_back(v.data[i]);
    deallocate_String_vector(&v);
    return ZOK;
  }

  int create(const std::string& path, const std::string& data, int mode, std::string* created = nullptr) {
    char buf[1024];
    const int rc = zoo_create(zh, path.c_str(), data.data(), static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE, mode, buf,
                              static_cast<int>(sizeof buf));
    if (rc == ZOK && created) *created = buf;
    return rc;
  }

  // root (with parents) and root/candidates.
  int ensure_paths(std::string& err) {
    std::vector<std::string> paths;
    for (std::size_t p = cfg.root.find('/', 1); p != std::string::npos; p = cfg.root.find('/', p + 1))
      paths.push_back(cfg.root.substr(0, p));
    if (cfg.root != "/") paths.push_back(cfg.root);
    paths.push_back(cand_dir);
    for (const auto& p : paths) {
      const int rc = create(p, "", ZOO_PERSISTENT);
      if (rc != ZOK && rc != ZNODEEXISTS) {
        err = zk_error("create", p, rc);
        return rc;
      }
    }
    return ZOK;
  }

  static std::vector<Candidate> sorted_candidates(const std::vector<std::string>& names) {
    std::vector<Candidate> out;
    for (const auto& n : names) {
      const auto us = n.rfind('_');
      long long seq = -1;
      if (us == std::string::npos || !parse_number(std::string_view(n).substr(us + 1), seq)) continue;
      out.push_back({n, seq});
    }
    std::sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.seq < b.seq; });
    return out;
  }

  std::string candidate_data(bool eligible) const {
    return eligible ? cfg.self : cfg.self + std::string(kIneligible);
  }

  // This session's candidate znode: found (after a create whose reply was lost, it may exist)
  // or created. Extra ones of this session are deleted.
  int ensure_candidate(std::string& err) {
    if (!my_cand.empty()) return ZOK;
    std::vector<std::string> names;
    int rc = get_children(cand_dir, false, names);
    if (rc == ZNONODE) {
      rc = ensure_paths(err);
      if (rc != ZOK) return rc;
      names.clear();
    } else if (rc != ZOK) {
      err = zk_error("list", cand_dir, rc);
      return rc;
    }
    const std::int64_t me = session_id();
    for (const auto& c : sorted_candidates(names)) {
      const std::string path = cand_dir + "/" + c.name;
      Stat st{};
      std::string data;
      rc = get_data(path, false, data, &st);
      if (rc == ZNONODE) continue;
      if (rc != ZOK) {
        err = zk_error("read", path, rc);
        return rc;
      }
      if (st.ephemeralOwner != me) continue;
      if (my_cand.empty()) {
        my_cand = path;
        std::string addr;
        parse_candidate(data, addr, my_flag_eligible);
      } else {
        zoo_delete(zh, path.c_str(), -1);  // a duplicate from a retried create; best effort
      }
    }
    if (!my_cand.empty()) return ZOK;
    const bool ok = ask_eligible();
    rc = create(cand_dir + "/c_", candidate_data(ok), ZOO_EPHEMERAL_SEQUENTIAL, &my_cand);
    if (rc != ZOK) {
      my_cand.clear();
      err = zk_error("create", cand_dir + "/c_", rc);
      return rc;
    }
    my_flag_eligible = ok;
    return ZOK;
  }

  // Keeps this candidate's published eligibility in step with the hook.
  int refresh_flag(bool ok) {
    if (ok == my_flag_eligible || my_cand.empty()) return ZOK;
    const std::string d = candidate_data(ok);
    const int rc = zoo_set(zh, my_cand.c_str(), d.data(), static_cast<int>(d.size()), -1);
    if (rc == ZOK) my_flag_eligible = ok;
    if (rc == ZNONODE) my_cand.clear();  // someone deleted it: register again next pass
    return rc == ZNONODE ? ZOK : rc;
  }

  // ---- the election -------------------------------------------------------------------------

  static constexpr int kRetry = 1;  // not a ZooKeeper code (those are <= 0)

  // Reads `leader` (watching it); returns ZOK with `present`, or an error.
  int read_leader(bool& present, std::string& addr, std::uint32_t& epoch, std::int64_t& owner) {
    for (int i = 0; i < 3; ++i) {
      std::string data;
      Stat st{};
      int rc = get_data(leader_path, true, data, &st);
      if (rc == ZOK) {
        present = true;
        owner = st.ephemeralOwner;
        if (!parse_leader(data, addr, epoch)) {
          addr.clear();
          epoch = 0;
          warn("unparsable " + leader_path + ": '" + data + "'");
        }
        return ZOK;
      }
      if (rc != ZNONODE) return rc;
      rc = zoo_exists(zh, leader_path.c_str(), 1, &st);  // watch for its creation
      if (rc == ZNONODE) {
        present = false;
        return ZOK;
      }
      if (rc != ZOK) return rc;
      // created in between: read it again
    }
    present = false;
    return ZOK;
  }

  // The in-sync replica set (watched); empty when absent.
  int read_isr(std::vector<std::string>& isr) {
    std::string data;
    int rc = get_data(isr_path, true, data);
    if (rc == ZNONODE) {
      Stat st{};
      rc = zoo_exists(zh, isr_path.c_str(), 1, &st);
      if (rc == ZNONODE) rc = ZOK;
      isr.clear();
      return rc;
    }
    if (rc == ZOK) isr = split_lines(data);
    return rc;
  }

  // No leader: take over if this candidate is the first eligible one.
  int elect(bool ok) {
    std::vector<std::string> names;
    int rc = get_children(cand_dir, true, names);  // watch: a predecessor leaving
    if (rc != ZOK) return rc;
    std::vector<std::string> isr;
    rc = read_isr(isr);
    if (rc != ZOK) return rc;
    auto in_isr = [&](const std::string& a) { return isr.empty() || std::find(isr.begin(), isr.end(), a) != isr.end(); };

    const std::int64_t me = session_id();
    bool registered = false;
    for (const auto& c : sorted_candidates(names)) {
      const std::string path = cand_dir + "/" + c.name;
      if (path == my_cand) {
        registered = true;
        if (ok && in_isr(cfg.self)) return take_over();
        continue;
      }
      std::string data, addr;
      Stat st{};
      rc = get_data(path, true, data, &st);  // watch: its eligibility changing, or it leaving
      if (rc == ZNONODE) continue;
      if (rc != ZOK) return rc;
      if (st.ephemeralOwner == me) continue;  // a stray duplicate of ours
      bool eligible = true;
      parse_candidate(data, addr, eligible);
      if (eligible && in_isr(addr)) return ZOK;  // it goes first; wait for it
    }
    if (!registered) my_cand.clear();  // our znode is gone: register again
    return registered ? ZOK : kRetry;
  }

  // One transaction: epoch := epoch + 1 (compare-and-set on its version; created at 1 when
  // absent) and create `leader`. Either both happen or neither.
  int take_over() {
    for (int attempt = 0; attempt < kElectAttempts; ++attempt) {
      std::string cur;
      Stat st{};
      int rc = get_data(epoch_path, false, cur, &st);
      if (rc != ZOK && rc != ZNONODE) return rc;
      std::uint32_t next = 1;
      if (rc == ZOK) {
        std::uint32_t e = 0;
        if (!parse_number(std::string_view(cur), e) || e == UINT32_MAX) {
          warn("unparsable or exhausted " + epoch_path + ": '" + cur + "'; not taking over");
          return ZOK;
        }
        next = e + 1;
      }
      const std::string epoch_data = std::to_string(next);
      const std::string leader_data = cfg.self + " " + epoch_data;
      zoo_op_t ops[2];
      zoo_op_result_t results[2] = {};
      Stat new_stat{};
      if (rc == ZOK)
        zoo_set_op_init(&ops[0], epoch_path.c_str(), epoch_data.data(), static_cast<int>(epoch_data.size()), st.version,
                        &new_stat);
      else
        zoo_create_op_init(&ops[0], epoch_path.c_str(), epoch_data.data(), static_cast<int>(epoch_data.size()),
                           &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr, 0);
      zoo_create_op_init(&ops[1], leader_path.c_str(), leader_data.data(), static_cast<int>(leader_data.size()),
                         &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, nullptr, 0);
      rc = zoo_multi(zh, 2, ops, results);
      if (rc == ZOK) {
        publish({ZkView::Role::Leader, cfg.self, next});
        return ZOK;
      }
      if (results[1].err == ZNODEEXISTS) return kRetry;        // someone else leads: follow it
      if (rc == ZBADVERSION || rc == ZNODEEXISTS) continue;   // epoch moved under us: read again
      return rc;
    }
    return kRetry;
  }

  // One pass: make sure we are registered, learn the leader, elect if there is none.
  // Returns how long to wait for the next pass if nothing happens.
  std::chrono::milliseconds reconcile() {
    std::string err;
    for (int attempt = 0; attempt < kElectAttempts; ++attempt) {
      if (!connected()) {
        publish({});
        return kIdlePoll;  // the session event wakes us
      }
      int rc = ensure_candidate(err);
      if (rc != ZOK) return failed(rc, err);
      bool present = false;
      std::string addr;
      std::uint32_t epoch = 0;
      std::int64_t owner = 0;
      rc = read_leader(present, addr, epoch, owner);
      if (rc != ZOK) return failed(rc, zk_error("read", leader_path, rc));
      if (present) {
        if (owner == session_id()) {
          publish({ZkView::Role::Leader, cfg.self, epoch});
          return kIdlePoll;
        }
        rc = refresh_flag(ask_eligible());
        if (rc != ZOK) return failed(rc, zk_error("update", my_cand, rc));
        // An earlier incarnation of this daemon (same address, older session) still holds it:
        // nobody to follow until that session expires.
        if (addr.empty() || addr == cfg.self) publish({});
        else publish({ZkView::Role::Follower, addr, epoch});
        return kIdlePoll;
      }
      publish({});  // no leader right now
      const bool ok = ask_eligible();
      rc = refresh_flag(ok);
      if (rc != ZOK) return failed(rc, zk_error("update", my_cand, rc));
      rc = elect(ok);
      if (rc == kRetry) continue;
      if (rc != ZOK) return failed(rc, zk_error("elect under", cfg.root, rc));
      return kLeaderlessPoll;
    }
    return kLeaderlessPoll;
  }

  std::chrono::milliseconds failed(int rc, const std::string& err) {
    if (is_session_error(rc)) {  // the session event follows; do not act as leader meanwhile
      publish({});
      return kErrorBackoff;
    }
    warn(err);
    return kErrorBackoff;
  }

  void run() {
    auto wait = 0ms;
    for (;;) {
      {
        std::unique_lock lk(mu);
        if (wait > 0ms) cv.wait_for(lk, wait, [&] { return stopping || dirty; });
        if (stopping) break;
        dirty = false;
      }
      wait = step();
    }
    publish({});  // before the session closes: stop acting as leader first
  }

  std::chrono::milliseconds step() {
    if (zh == nullptr) {
      std::string err;
      if (!open_handle(err)) {
        warn(err);
        return kIdlePoll;
      }
      return kIdlePoll;  // the connected event wakes us
    }
    const int st = zoo_state(zh);
    if (st == ZOO_EXPIRED_SESSION_STATE || st == ZOO_AUTH_FAILED_STATE) {
      publish({});  // fencing: whatever we led, we no longer do
      close_handle();
      std::string err;
      if (!open_handle(err)) warn(err);
      return kIdlePoll;
    }
    if (st != ZOO_CONNECTED_STATE) {
      publish({});  // disconnected: the session may expire any moment, so stop leading now
      return kIdlePoll;
    }
    last_warning.clear();
    return reconcile();
  }
};

ZkElection::ZkElection(ZkConfig cfg, Listener on_change) : impl_(std::make_unique<Impl>(std::move(cfg), std::move(on_change))) {}

ZkElection::~ZkElection() { stop(); }

bool ZkElection::start(std::string& err) {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.mu);
    if (m.started) {
      err = "ZkElection already started";
      return false;
    }
    m.started = true;
  }
  if (m.cfg.connect.empty() || m.cfg.self.empty() || m.cfg.root.empty() || m.cfg.root[0] != '/') {
    err = "ZkConfig needs connect, self and an absolute root";
    return false;
  }
  if (m.cfg.self.find_first_of(" \n") != std::string::npos) {
    err = "ZkConfig::self must not contain spaces or newlines";
    return false;
  }
  set_client_log_level();
  if (!m.open_handle(err)) return false;
  const auto deadline = Clock::now() + std::chrono::milliseconds(m.cfg.connect_timeout_ms);
  {
    std::unique_lock lk(m.mu);
    m.cv.wait_until(lk, deadline, [&] {
      const int st = zoo_state(m.zh);
      return m.stopping || st == ZOO_CONNECTED_STATE || st == ZOO_EXPIRED_SESSION_STATE || st == ZOO_AUTH_FAILED_STATE;
    });
  }
  if (!m.connected()) {
    err = "no ZooKeeper session with " + m.cfg.connect + " within " + std::to_string(m.cfg.connect_timeout_ms) + " ms";
    m.close_handle();
    return false;
  }
  if (m.ensure_paths(err) != ZOK || m.ensure_candidate(err) != ZOK) {
    m.close_handle();
    return false;
  }
  m.worker = std::thread([&m] { m.run(); });
  return true;
}

void ZkElection::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.mu);
    m.stopping = true;
    m.cv.notify_all();
  }
  if (m.worker.joinable()) m.worker.join();
  m.close_handle();
}

bool ZkElection::publish_isr(const std::vector<std::string>& isr, std::string& err) {
  Impl& m = *impl_;
  std::string data;
  for (const auto& a : isr) {
    if (a.empty() || a.find('\n') != std::string::npos) {
      err = "bad ISR member '" + a + "'";
      return false;
    }
    data += a;
    data += '\n';
  }
  std::shared_lock hl(m.zh_mu);
  if (!m.connected()) {
    err = "no ZooKeeper session";
    return false;
  }
  const ZkView v = view();
  if (v.role != ZkView::Role::Leader) {
    err = "not the leader";
    return false;
  }
  // Conditional on the epoch znode still holding this leadership's epoch (at the version read):
  // a deposed leader cannot overwrite its successor's set.
  for (int attempt = 0; attempt < kElectAttempts; ++attempt) {
    std::string cur;
    Stat st{};
    int rc = m.get_data(m.epoch_path, false, cur, &st);
    std::uint32_t e = 0;
    if (rc != ZOK) {
      err = zk_error("read", m.epoch_path, rc);
      return false;
    }
    if (!parse_number(std::string_view(cur), e) || e != v.epoch) {
      err = "leadership lost: epoch is now '" + cur + "', ours was " + std::to_string(v.epoch);
      return false;
    }
    for (const bool create : {false, true}) {
      zoo_op_t ops[2];
      zoo_op_result_t results[2] = {};
      zoo_check_op_init(&ops[0], m.epoch_path.c_str(), st.version);
      if (create)
        zoo_create_op_init(&ops[1], m.isr_path.c_str(), data.data(), static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE,
                           ZOO_PERSISTENT, nullptr, 0);
      else
        zoo_set_op_init(&ops[1], m.isr_path.c_str(), data.data(), static_cast<int>(data.size()), -1, nullptr);
      rc = zoo_multi(m.zh, 2, ops, results);
      if (rc == ZOK) return true;
      if (results[0].err == ZOK && results[1].err == (create ? ZNODEEXISTS : ZNONODE)) continue;  // other branch
      if (rc == ZBADVERSION) break;  // epoch moved: the next read reports it
      err = zk_error("write", m.isr_path, rc);
      return false;
    }
  }
  err = "could not write " + m.isr_path + " (concurrent changes)";
  return false;
}

ZkView ZkElection::view() const {
  std::lock_guard lk(impl_->mu);
  return impl_->current;
}

void ZkElection::set_eligible(std::function<bool()> f) {
  std::lock_guard lk(impl_->mu);
  impl_->eligible_fn = std::move(f);
  impl_->dirty = true;
  impl_->cv.notify_all();
}

void ZkElection::recheck() {
  std::lock_guard lk(impl_->mu);
  impl_->dirty = true;
  impl_->cv.notify_all();
}

}  // namespace shmbus::daemon
