// The leader's side of replication: one session per follower answers its fetches from the segment
// files, and every fetch moves the follower's offsets, the in-sync set and the high watermarks.
#include "common/paths.hpp"
#include "layout/region_layout.hpp"
#include "log.hpp"
#include "log/log_reader.hpp"
#include "repl_net.hpp"
#include "replicator.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace shmbus::daemon {

using repl::NodeRole;

namespace {
constexpr std::uint64_t kFileScanEveryNs = 250'000'000;
constexpr std::uint32_t kInlineData = 64 * 1024;  // below this, pread + one send beats sendfile's extra calls
const char* const kMetaFiles[] = {"queue.meta", "topic.meta", "subscriptions"};

std::string read_small_file(const std::string& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  if (!ok) return {};
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s;
}

void cork(int fd, int on) { ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on); }
}  // namespace

std::uint32_t Replicator::isr_size_locked() const {
  std::uint32_t n = 1;  // the leader
  for (const auto& [a, r] : replicas_) n += r.in_sync ? 1 : 0;
  return n;
}

void Replicator::update_isr_locked(std::uint64_t now) {
  bool changed = false;
  for (auto& [a, r] : replicas_) {
    const bool in = r.connected && r.caught_up_ns != 0 && now - std::min(now, r.caught_up_ns) <= cfg_.replica_lag_ns;
    if (in != r.in_sync) {
      r.in_sync = in;
      changed = true;
      info("replication: " + a + (in ? " joined" : " left") + " the in-sync set (" + std::to_string(isr_size_locked()) +
           " in sync, min " + std::to_string(min_insync_) + ")");
    }
  }
  if (changed) {
    ++isr_version_;
    publish_region();
  }
}

void Replicator::advance_locked() {
  if (state_.role != NodeRole::Leader) return;
  // The high watermark moves only while at least min.insync replicas are in sync: a record below it
  // is on that many hosts, so no failover to an in-sync follower can take it back (what replicated
  // sends and read-committed consumers are promised). With fewer, it waits for them to return.
  if (isr_size_locked() < min_insync_) return;
  for (const auto& l : hub_.logs()) {
    // Acquire: pairs with the agent's release store after its append.
    std::uint64_t hw = l->end.load(std::memory_order_acquire);
    for (const auto& [a, r] : replicas_) {
      if (!r.in_sync) continue;
      const auto it = r.offsets.find(l->name);
      hw = std::min(hw, it == r.offsets.end() ? 0 : it->second);
    }
    const std::uint64_t old = l->high_watermark.load(std::memory_order_relaxed);
    if (hw > old) {
      // Release: stat and the agent read it with acquire.
      l->high_watermark.store(hw, std::memory_order_release);
      // Read-committed queues: the agent releases what is below it now (wakes it if parked).
      ring::wake_waiters(region_->persist_doorbell, region_->persist_waiters);
    }
    hw = std::max(hw, old);
    std::lock_guard wl(l->mu);
    while (!l->waiters.empty() && l->waiters.front().offset < hw) {
      const ReplicaWaiter w = l->waiters.front();
      l->waiters.pop_front();
      if (l->producers == nullptr || w.entry >= layout::kQueueMaxProducers) continue;
      auto* p = l->producers + w.entry;
      // SYNC: seq_cst store then wake_waiters' seq_cst load of the waiter count: the Dekker pair
      // with the parked producer (it counts itself, then loads `durable` seq_cst).
      p->durable.store(layout::durable_word(w.pid, w.seq), std::memory_order_seq_cst);
      ring::wake_waiters(p->durable_seq, p->durable_waiters);
    }
  }
}

void Replicator::on_fetch(const std::string& follower, std::uint64_t session, const repl::Fetch& f) {
  std::lock_guard lk(mu_);
  auto it = replicas_.find(follower);
  if (it == replicas_.end() || it->second.session != session) return;
  Replica& r = it->second;
  const std::uint64_t now = common::mono_ns();
  for (const auto& e : f.entries)
    if (e.offset != repl::kParked) r.offsets[e.log] = e.offset;
  std::map<std::string, std::uint64_t> ends;
  bool all_now = true, all_prev = true;
  for (const auto& l : hub_.logs()) {
    const std::uint64_t end = l->end.load(std::memory_order_acquire);
    ends[l->name] = end;
    const auto o = r.offsets.find(l->name);
    const std::uint64_t have = o == r.offsets.end() ? 0 : o->second;
    if (have < end) all_now = false;
    const auto p = r.prev_ends.find(l->name);
    if (p == r.prev_ends.end() || have < p->second) all_prev = false;
  }
  if (all_now) r.caught_up_ns = now;
  else if (all_prev && r.prev_fetch_ns != 0) r.caught_up_ns = std::max(r.caught_up_ns, r.prev_fetch_ns);
  r.prev_ends = std::move(ends);
  r.prev_fetch_ns = now;
  update_isr_locked(now);
  advance_locked();
}

void Replicator::housekeeping_loop() {
  std::unique_lock lk(mu_);
  std::uint64_t last_probe = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    stop_cv_.wait_for(lk, std::chrono::milliseconds(20));
    const std::uint64_t now = common::mono_ns();
    if (state_.role != NodeRole::Leader) continue;
    update_isr_locked(now);
    advance_locked();
    publish_isr_to_zk();
    // Static mode: once a second, ask the members that do not follow us who leads. A member that
    // knows a newer epoch means a promotion happened while we were cut off: we are fenced.
    if (!cfg_.zookeeper.empty() || now - last_probe < 1'000'000'000ULL) continue;
    last_probe = now;
    std::vector<std::string> absent;
    for (const auto& [a, r] : replicas_)
      if (!r.connected) absent.push_back(a);
    const std::uint32_t mine = state_.epoch;
    lk.unlock();
    for (const auto& peer : absent) {
      repl::Welcome w;
      std::string err;
      if (!probe(peer, w, err) || w.epoch <= mine) continue;
      fenced(w.epoch, w.role == NodeRole::Leader ? peer : w.leader,
             peer + " knows epoch " + std::to_string(w.epoch) + " (" + repl::to_string(w.role) + ")");
      break;
    }
    lk.lock();
  }
}

void Replicator::lead_session(repl::Conn& c, const std::string& follower) {
  std::uint64_t session = 0;
  {
    std::lock_guard lk(mu_);
    session = next_session_++;
    Replica& r = replicas_[follower];
    r.connected = true;
    r.session = session;
    r.prev_ends.clear();
    r.prev_fetch_ns = 0;
  }
  info("replication: follower " + follower + " connected");
  std::map<std::string, std::unique_ptr<log::LogRangeReader>> readers;
  std::map<std::string, std::string> sent_files;
  std::uint64_t last_scan = 0;
  std::vector<std::uint8_t> inline_buf;
  const auto on_refuse = [&](const repl::Refuse& rf) { fenced(rf.epoch, rf.leader, follower + " refused: " + rf.reason); };
  try {
    // KIP-101 first: where each of the follower's epochs ends here.
    c.expect(repl::Type::EpochQuery, std::chrono::milliseconds(10'000), on_refuse);
    {
      repl::EpochQuery q;
      repl::decode(c.payload(), q);
      // A log whose directory exists but that the persistence agent has not opened yet (a leader
      // just promoted or restarted restores its queues on another thread): wait for it, briefly.
      const auto pending = [&] {
        return std::any_of(q.entries.begin(), q.entries.end(), [&](const auto& e) {
          return !hub_.find(e.log) && std::filesystem::exists(cfg_.data_dir + "/" + e.log);
        });
      };
      for (const std::uint64_t until = common::mono_ns() + 5'000'000'000ULL;
           pending() && common::mono_ns() < until && !stop_.load(std::memory_order_acquire);)
        hub_.wait_data(50'000'000, [&] { return !stop_.load(std::memory_order_acquire); });
      repl::EpochAnswer a;
      for (const auto& e : q.entries) {
        repl::EpochAnswer::Entry ae;
        ae.log = e.log;
        const auto l = hub_.find(e.log);
        if (!l) {
          // Not open here (a directory the agent does not serve): the follower leaves it alone.
          ae.status = std::filesystem::exists(cfg_.data_dir + "/" + e.log) ? 3 : 2;
          a.entries.push_back(ae);
          continue;
        }
        // The leader-epoch-checkpoint is read from the file: the Log object is the agent's.
        std::vector<std::pair<std::uint32_t, std::uint64_t>> epochs;
        if (auto err = log::read_epoch_checkpoint(l->dir, epochs); err)
          warn("replication: " + e.log + ": " + err.what + " (answering " + follower + " from what was read)");
        const auto r = log::end_offset_for_epoch(epochs, e.epoch, l->end.load(std::memory_order_acquire));
        ae.status = r.known ? 0 : 1;
        ae.epoch = r.epoch;
        ae.end_offset = r.end_offset;
        a.entries.push_back(ae);
      }
      c.send(repl::encode(a));
    }
    for (;;) {
      c.expect(repl::Type::Fetch, std::chrono::milliseconds(30'000), on_refuse);
      repl::Fetch f;
      repl::decode(c.payload(), f);
      on_fetch(follower, session, f);
      if (role() != NodeRole::Leader) throw repl::ReplError("this daemon no longer leads");
      std::map<std::string, std::uint64_t> want;
      std::set<std::string> parked;
      for (const auto& e : f.entries) {
        if (e.offset == repl::kParked) parked.insert(e.log);
        else want[e.log] = e.offset;
      }
      const std::uint64_t deadline = common::mono_ns() + std::uint64_t{f.max_wait_ms} * 1'000'000;
      std::vector<repl::FetchEntry> entries;
      std::vector<log::LogRangeReader::Range> ranges;
      std::vector<repl::MetaFile> files;
      for (;;) {
        entries.clear();
        ranges.clear();
        std::uint64_t budget = f.max_bytes, data = 0;
        const auto logs = hub_.logs();
        for (const auto& [name, off] : want) {
          if (std::none_of(logs.begin(), logs.end(), [&](const auto& l) { return l->name == name; }) &&
              !std::filesystem::exists(cfg_.data_dir + "/" + name)) {
            repl::FetchEntry e;
            e.log = name;
            e.status = repl::FetchEntry::kNoSuchLog;
            entries.push_back(e);
          }
        }
        for (const auto& l : logs) {
          if (parked.contains(l->name)) continue;
          repl::FetchEntry e;
          e.log = l->name;
          e.log_start = l->start.load(std::memory_order_acquire);
          e.log_end = l->end.load(std::memory_order_acquire);
          e.log_start = std::min(e.log_start, e.log_end);
          e.high_watermark = std::min(l->high_watermark.load(std::memory_order_acquire), e.log_end);
          const auto w = want.find(l->name);
          const std::uint64_t off = w == want.end() ? e.log_start : w->second;
          if (off < e.log_start || off > e.log_end) {
            e.status = repl::FetchEntry::kOutOfRange;
          } else if (off < e.log_end && budget > 0) {
            auto& rd = readers[l->name];
            if (!rd) rd = std::make_unique<log::LogRangeReader>(l->dir);
            log::LogRangeReader::Range rg;
            const auto st = rd->read(off, e.log_end, static_cast<std::uint32_t>(std::min<std::uint64_t>(budget, f.max_bytes)), rg);
            if (st == log::LogRangeReader::Status::kOk) {
              e.data_length = rg.length;
              budget -= std::min<std::uint64_t>(budget, rg.length);
              data += rg.length;
              ranges.push_back(rg);
            } else if (st == log::LogRangeReader::Status::kBelowStart) {
              e.status = repl::FetchEntry::kOutOfRange;
              e.log_start = std::max(e.log_start, rd->start_offset());
            } else if (st == log::LogRangeReader::Status::kError) {
              warn("replication: reading " + l->name + " for " + follower + ": " + rd->error());
            }
          }
          if (e.data_length == 0) ranges.push_back({});
          entries.push_back(e);
        }
        // Metadata files: a log's queue.meta/topic.meta go out with its first records (a follower
        // promoted with a log but without them could not re-create the queue: the agent writes
        // them before it opens the log), every change within kFileScanEveryNs.
        const auto offer = [&](const std::string& log_name) {
          for (const char* fn : kMetaFiles) {
            bool ok = false;
            std::string content = read_small_file(cfg_.data_dir + "/" + log_name + "/" + fn, ok);
            const std::string rel = log_name + "/" + fn;
            if (!ok) continue;
            auto it = sent_files.find(rel);
            if (it != sent_files.end() && it->second == content) continue;
            sent_files[rel] = content;
            files.push_back({rel, std::move(content)});
          }
        };
        for (const auto& e : entries)
          if (e.status == repl::FetchEntry::kOk && !sent_files.contains(e.log + "/queue.meta") &&
              !sent_files.contains(e.log + "/topic.meta"))
            offer(e.log);
        const std::uint64_t now = common::mono_ns();
        if (now - std::min(now, last_scan) >= kFileScanEveryNs) {
          last_scan = now;
          std::error_code ec;
          for (const auto& d : std::filesystem::directory_iterator(cfg_.data_dir, ec)) {
            const std::string n = d.path().filename().string();
            if (d.is_directory() && repl::valid_log_name(n)) offer(n);
          }
        }
        const bool stopping = stop_.load(std::memory_order_acquire) || role() != NodeRole::Leader;
        if (data != 0 || !files.empty() || now >= deadline || stopping ||
            std::any_of(entries.begin(), entries.end(), [](const auto& e) { return e.status != repl::FetchEntry::kOk; }))
          break;
        // Long poll: park until the agent appends to a log past what the follower holds.
        hub_.wait_data(std::min<std::uint64_t>(deadline - now, kFileScanEveryNs), [&] {
          if (stop_.load(std::memory_order_acquire)) return false;
          for (const auto& l : hub_.logs()) {
            // SYNC: seq_cst, the parker's look in the Dekker pair with notify_data().
            const std::uint64_t end = l->end.load(std::memory_order_seq_cst);
            if (parked.contains(l->name)) continue;
            const auto w = want.find(l->name);
            if (w == want.end() || end > w->second) return false;
          }
          return true;
        });
      }
      // Send: head, batch bytes (inline when small, else sendfile from the page cache), files.
      std::uint64_t data_total = 0;
      for (const auto& e : entries) data_total += e.data_length;
      const auto file_blob = repl::encode_files(files);
      const std::uint64_t total = repl::fetch_head_size(entries) + data_total + file_blob.size();
      if (total > repl::kMaxFetchPayload) throw repl::ReplError("fetch response would exceed the frame limit");
      auto head = repl::encode_fetch_head(static_cast<std::uint32_t>(total), entries);
      // ranges[] holds one element per log entry (empty ones for no data); kNoSuchLog entries come first.
      const std::size_t skip = entries.size() - ranges.size();
      if (data_total <= kInlineData) {
        inline_buf = std::move(head);
        for (std::size_t i = 0; i < ranges.size(); ++i) {
          const auto& rg = ranges[i];
          if (entries[skip + i].data_length == 0) continue;
          const std::size_t at = inline_buf.size();
          inline_buf.resize(at + rg.length);
          std::size_t got = 0;
          while (got < rg.length) {
            const ssize_t n = ::pread(rg.fd, inline_buf.data() + at + got, rg.length - got, static_cast<off_t>(rg.position + got));
            if (n <= 0) throw repl::ReplError("cannot read " + entries[skip + i].log + " for the follower");
            got += static_cast<std::size_t>(n);
          }
        }
        inline_buf.insert(inline_buf.end(), file_blob.begin(), file_blob.end());
        c.send(inline_buf);
        head = std::move(inline_buf);
      } else {
        cork(c.fd(), 1);
        c.send(head);
        for (std::size_t i = 0; i < ranges.size(); ++i)
          if (entries[skip + i].data_length != 0) c.send_file(ranges[i].fd, ranges[i].position, ranges[i].length);
        c.send(file_blob);
        cork(c.fd(), 0);
      }
      std::lock_guard lk(mu_);
      replicas_[follower].bytes += data_total;
    }
  } catch (const repl::ReplError& e) {
    std::lock_guard lk(mu_);
    auto& r = replicas_[follower];
    if (r.session == session) {
      r.connected = false;
      update_isr_locked(common::mono_ns());
      advance_locked();
    }
    if (!stop_.load(std::memory_order_acquire)) warn("replication: follower " + follower + " disconnected: " + e.what());
  }
}

}  // namespace shmbus::daemon
