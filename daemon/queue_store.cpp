#include "queue_store.hpp"

#include "common/paths.hpp"
#include "log.hpp"
#include "ring/futex.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace shmbus::daemon {

using layout::QState;
using layout::QWord;

namespace {
constexpr std::uint64_t kNone = ~0ULL;
constexpr std::size_t kMaxLoadsPerRound = 4096;
constexpr std::uint64_t kSnapshotEveryRecords = 100'000;
constexpr std::uint64_t kSnapshotEveryNs = 10'000'000'000ULL;

}  // namespace

std::string FsyncPolicy::describe() const {
  switch (mode) {
    case Mode::Never: return "never";
    case Mode::Always: return "always";
    case Mode::EveryN: return "every:" + std::to_string(every);
    case Mode::Interval: break;
  }
  return "interval:" + std::to_string(interval_ns / 1'000'000);
}

bool FsyncPolicy::parse(const std::string& s, FsyncPolicy& out) {
  const auto num = [](const std::string& v, std::uint64_t& n) {
    char* end = nullptr;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || v[0] == '-' || x == 0 || x > 3'600'000) return false;
    n = x;
    return true;
  };
  FsyncPolicy p;
  std::uint64_t n = 0;
  if (s == "never") p.mode = Mode::Never;
  else if (s == "always") p.mode = Mode::Always;
  else if (s.rfind("interval:", 0) == 0 && num(s.substr(9), n)) p.mode = Mode::Interval, p.interval_ns = n * 1'000'000;
  else if (s.rfind("every:", 0) == 0 && num(s.substr(6), n)) p.mode = Mode::EveryN, p.every = n;
  else return false;
  out = p;
  return true;
}

bool QueueMeta::load(const std::string& dir) {
  std::ifstream in(dir + "/queue.meta");
  if (!in) return false;
  std::string line;
  int seen = 0;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = line.substr(0, eq);
    const std::uint64_t v = std::strtoull(line.c_str() + eq + 1, nullptr, 10);
    if (k == "capacity") capacity = static_cast<std::uint32_t>(v), ++seen;
    else if (k == "max_message_size") max_message_size = static_cast<std::uint32_t>(v), ++seen;
    else if (k == "max_deliveries") max_deliveries = static_cast<std::uint32_t>(v);
    else if (k == "flags") flags = static_cast<std::uint32_t>(v);
    else if (k == "redelivery_delay_ns") redelivery_delay_ns = v;
    else if (k == "fsync") fsync = line.substr(eq + 1);
  }
  return seen == 2;
}

bool QueueMeta::save(const std::string& dir) const {
  const std::string tmp = dir + "/queue.meta.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "format=1\ncapacity=" << capacity << "\nmax_message_size=" << max_message_size
        << "\nmax_deliveries=" << max_deliveries << "\nflags=" << flags << "\nredelivery_delay_ns=" << redelivery_delay_ns
        << "\n";
    if (!fsync.empty()) out << "fsync=" << fsync << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, dir + "/queue.meta", ec);
  return !ec;
}

QueueStore::QueueStore(std::uint32_t dest_id, std::string name, std::string dir, ring::QueueRing q,
                       std::shared_ptr<void> keep, FsyncPolicy policy, log::LogConfig cfg)
    : dest_id_(dest_id), name_(std::move(name)), dir_(std::move(dir)), q_(q), keep_(std::move(keep)), policy_(policy),
      cfg_(cfg) {
  last_snapshot_ns_ = common::mono_ns();
  logged_.assign(q_.slot_count(), kNone);
  popped_in_.assign(q_.slot_count(), 0);
  settled_in_.assign(q_.slot_count(), 0);
}

QueueStore::~QueueStore() = default;

void QueueStore::set_error(int code, const std::string& what) {
  auto& h = q_.header();
  // Relaxed: statistics. The error word is a hint producers read relaxed (see log_failing()).
  h.persist_failures.fetch_add(1, std::memory_order_relaxed);
  if (h.persist_error.exchange(static_cast<std::uint32_t>(code), std::memory_order_relaxed) == 0)
    error("queue://" + name_ + ": PERSISTENT messages cannot be written (" + what +
          "); PERSISTENT sends are refused until a write succeeds, NON_PERSISTENT traffic goes on");
  // Durable waiters see the error word; wake them so they need not wait out their slice.
  for (std::uint32_t e = 0; e < layout::kQueueMaxProducers; ++e) {
    auto* p = q_.producer(e);
    // Relaxed: the waiter re-checks the error word after every wake-up.
    if (p->durable_waiters.load(std::memory_order_seq_cst) != 0) ring::wake_waiters(p->durable_seq, p->durable_waiters);
  }
}

void QueueStore::clear_error() {
  // Relaxed: as in set_error().
  if (q_.header().persist_error.exchange(0, std::memory_order_relaxed) != 0)
    info("queue://" + name_ + ": its log is writable again; PERSISTENT sends accepted");
}

bool QueueStore::ensure_log() {
  if (log_) return true;
  if (log_failed_) return false;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  const auto& h = q_.header();
  QueueMeta m{h.slot_count, h.max_payload, h.max_deliveries, h.flags, h.redelivery_delay_ns, fsync_spec_};
  if (ec || (!std::filesystem::exists(dir_ + "/queue.meta") && !m.save(dir_))) {
    log_failed_ = true;
    set_error(ec ? ec.value() : EIO, "cannot create " + dir_ + (ec ? ": " + ec.message() : std::string()));
    return false;
  }
  log::RecoveryReport rep;
  log::LogError err;
  log_ = log::Log::open(dir_, cfg_, &rep, err);
  if (!log_) {
    log_failed_ = true;
    set_error(err.code, err.what);
    return false;
  }
  if (rep.truncated)
    warn("queue://" + name_ + ": recovery cut the log at offset " + std::to_string(rep.truncated_at_offset) + " (" +
         rep.truncated_file + " position " + std::to_string(rep.truncated_at_position) + ", " + rep.reason + "): " +
         std::to_string(rep.bytes_dropped) + " bytes and " + std::to_string(rep.segments_dropped) +
         " later segments dropped");
  if (rep.indexes_rebuilt != 0) info("queue://" + name_ + ": rebuilt " + std::to_string(rep.indexes_rebuilt) + " indexes");
  if (log_->epochs().empty()) log_->assign_epoch(0);
  pub_.attach(hub_, "queue." + name_, dir_, q_.producer(0), keep_);
  pub_.published(*log_);
  return true;
}

bool QueueStore::open_existing() {
  if (!std::filesystem::exists(dir_ + "/queue.meta")) return true;
  if (!ensure_log()) return false;
  std::uint64_t from = log_->log_start_offset();
  const bool snap = restore_snapshot(from);
  replay(from);
  const std::uint64_t lo = log_->log_start_offset(), hi = log_->log_end_offset();
  unsettled_.keep_if([&](std::uint64_t o) { return o >= lo && o < hi; });
  backlog_.clear();
  unsettled_.for_each([&](std::uint64_t o) { backlog_.push_back(o); });
  info("queue://" + name_ + ": log " + std::to_string(lo) + ".." + std::to_string(hi) + (snap ? " (snapshot at " : " (no snapshot, replayed from ") +
       std::to_string(from) + "), " + std::to_string(backlog_.size()) + " unsettled PERSISTENT messages to deliver again");
  last_snapshot_ns_ = common::mono_ns();
  publish_stats();
  return true;
}

bool QueueStore::restore_snapshot(std::uint64_t& from) {
  std::uint64_t at = 0;
  std::vector<std::byte> b;
  if (!log::load_latest_snapshot(dir_, at, b) || b.size() < sizeof(QueueSnapshotHeader)) return false;
  QueueSnapshotHeader h;
  std::memcpy(&h, b.data(), sizeof h);
  if (h.magic != kQueueSnapshotMagic || h.version != 1 ||
      b.size() != sizeof h + h.unsettled * 8 + h.producers * 16 || h.next_offset != at) {
    warn("queue://" + name_ + ": snapshot at " + std::to_string(at) + " is not a queue snapshot; replaying the whole log");
    return false;
  }
  const std::byte* p = b.data() + sizeof h;
  for (std::uint64_t i = 0; i < h.unsettled; ++i, p += 8) {
    std::uint64_t o = 0;
    std::memcpy(&o, p, 8);
    unsettled_.insert(o);
  }
  for (std::uint64_t i = 0; i < h.producers; ++i, p += 16) {
    std::uint64_t inc = 0, seq = 0;
    std::memcpy(&inc, p, 8);
    std::memcpy(&seq, p + 8, 8);
    producers_[inc] = seq;
  }
  from = std::max(at, log_->log_start_offset());
  return true;
}

void QueueStore::replay(std::uint64_t from) {
  const auto err = log_->read(from, 0, [&](const log::RecordView& r) {
    if (r.attributes == static_cast<std::uint16_t>(RecordKind::QueueMessage) && r.value.size() >= sizeof(QueueMessageRecord)) {
      unsettled_.insert(r.offset);
      QueueMessageRecord m;
      std::memcpy(&m, r.value.data(), sizeof m);
      auto& s = producers_[m.incarnation];
      s = std::max(s, m.producer_seq);
    } else if (r.attributes == static_cast<std::uint16_t>(RecordKind::QueueSettle) && r.value.size() >= sizeof(QueueSettleRecord)) {
      QueueSettleRecord st;
      std::memcpy(&st, r.value.data(), sizeof st);
      unsettled_.erase(st.offset);
    }
    return true;
  });
  if (err) warn("queue://" + name_ + ": replay stopped early: " + err.what);
}

std::vector<std::byte> QueueStore::snapshot_blob() const {
  std::vector<std::byte> b;
  QueueSnapshotHeader h{kQueueSnapshotMagic, 1, log_->log_end_offset(), unsettled_.size(), producers_.size()};
  b.reserve(sizeof h + h.unsettled * 8 + h.producers * 16);
  put(b, h);
  unsettled_.for_each([&](std::uint64_t o) { put(b, o); });
  for (auto [inc, seq] : producers_) {
    put(b, inc);
    put(b, seq);
  }
  return b;
}

std::size_t QueueStore::load_backlog(std::uint64_t now_mono) {
  std::size_t n = 0;
  while (!backlog_.empty() && n < kMaxLoadsPerRound) {
    bool no_slot = false;
    load_one(backlog_.front(), now_mono, no_slot);
    if (no_slot) break;
    backlog_.pop_front();
    ++n;
  }
  return n;
}

bool QueueStore::load_one(std::uint64_t offset, std::uint64_t now_mono, bool& no_slot) {
  std::vector<std::byte> value;
  bool found = false;
  log_->read(offset, 0, [&](const log::RecordView& r) {
    found = r.offset == offset && r.attributes == static_cast<std::uint16_t>(RecordKind::QueueMessage) &&
            r.value.size() >= sizeof(QueueMessageRecord);
    if (found) value.assign(r.value.begin(), r.value.end());
    return false;
  });
  const auto drop = [&](const char* why) {
    warn("queue://" + name_ + ": message at offset " + std::to_string(offset) + " not restored: " + why);
    unsettled_.erase(offset);
    return false;
  };
  if (!found) return drop("no such message record in the log");
  QueueMessageRecord m;
  std::memcpy(&m, value.data(), sizeof m);
  const std::size_t len = value.size() - sizeof m;
  if (len > q_.max_payload()) return drop("larger than the queue's max message size");
  const std::int64_t now_real = common::real_ns();
  if (m.expires_real_ns != 0 && m.expires_real_ns <= now_real) {
    // Expired while the daemon was down: settled (logged with the next batch is not possible
    // for a slot-less message, so written on its own).
    QueueSettleRecord st{offset, static_cast<std::uint8_t>(SettleReason::Expired), {}};
    log::AppendRecord a{now_real, static_cast<std::uint16_t>(RecordKind::QueueSettle), {},
                        std::as_bytes(std::span<const QueueSettleRecord>(&st, 1))};
    std::uint64_t base = 0;
    if (auto err = log_->append(std::span<const log::AppendRecord>(&a, 1), pub_.epoch_for(*log_), base); err) {
      set_error(err.code, err.what);
      no_slot = true;  // try again next round
      return false;
    }
    unsettled_.erase(offset);
    // Relaxed: statistics.
    q_.header().expired.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  std::uint32_t s = 0;
  std::uint64_t w = 0;
  for (;;) {
    if (q_.free_ring().try_pop(s, q_.header().persist_pop) != ring::IndexStatus::Ok) {
      no_slot = true;
      return false;
    }
    // Acquire: pairs with the release that made it FREE.
    w = q_.slot(s)->state.load(std::memory_order_acquire);
    // SYNC: acq_rel, as a producer's acquire: the CAS makes us the slot's only owner.
    if (QWord::state(w) == QState::Free &&
        q_.slot(s)->state.compare_exchange_strong(w, QWord::next(w, QState::Writing, layout::kDaemonOwner, 0),
                                                  std::memory_order_acq_rel))
      break;
  }
  w = QWord::next(w, QState::Writing, layout::kDaemonOwner, 0);
  auto* h = q_.slot(s);
  std::memcpy(q_.payload(s), value.data() + sizeof m, len);
  const auto to_mono = [&](std::int64_t real) -> std::uint64_t {
    if (real == 0) return 0;
    const std::int64_t d = real - now_real;
    return d <= 0 ? 0 : now_mono + static_cast<std::uint64_t>(d);
  };
  h->deliver_at_ns = to_mono(m.deliver_at_real_ns);
  // Relaxed atomic stores: as QueueWriter::publish.
  std::atomic_ref<std::uint64_t>(h->expires_at_ns).store(to_mono(m.expires_real_ns), std::memory_order_relaxed);
  h->timestamp_ns = m.timestamp_ns;
  h->producer_seq = m.producer_seq;
  h->producer_id = m.producer_id;
  h->length = static_cast<std::uint32_t>(len);
  std::atomic_ref<std::uint8_t>(h->priority).store(std::min<std::uint8_t>(m.priority, layout::kPriorities - 1), std::memory_order_relaxed);
  // JMS: a message restored after a restart may have been delivered before: redelivered.
  std::atomic_ref<std::uint8_t>(h->flags).store(
      static_cast<std::uint8_t>((m.flags & layout::kQFlagFramed) | layout::kQFlagPersistent | layout::kQFlagRedelivered),
      std::memory_order_relaxed);
  h->producer_entry = 0xFF;
  h->reason = m.reason;
  h->origin_dest_id = m.origin_dest_id;
  h->incarnation = m.incarnation;
  logged_[s] = offset;
  const bool scheduled = h->deliver_at_ns != 0;
  // SYNC: release pairs with the popper's acquire of the state word (header and payload first).
  // Delivery count 1: the next delivery counts as the second (JMSXDeliveryCount 2).
  h->state.store(QWord::next(w, scheduled ? QState::Scheduled : QState::Ready, 0, 1), std::memory_order_release);
  if (scheduled) ring::QueueRing::push(q_.agent_ring(), s, q_.header().persist_push);
  else q_.push_ready(s, q_.header().persist_push);
  // Relaxed: statistics.
  q_.header().restored.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void QueueStore::maybe_snapshot(std::uint64_t now_mono, bool force) {
  if (!log_) return;
  const bool due = force || since_snapshot_ >= kSnapshotEveryRecords ||
                   (since_snapshot_ > 0 && now_mono - last_snapshot_ns_ >= kSnapshotEveryNs);
  if (!due) return;
  maybe_flush(now_mono, true);
  if (unflushed_ != 0) return;  // the flush failed: a snapshot must not run ahead of the disk
  const auto blob = snapshot_blob();
  if (auto err = log::write_snapshot(dir_, log_->log_end_offset(), blob); err) {
    warn("queue://" + name_ + ": snapshot not written: " + err.what);
    return;
  }
  log::prune_snapshots(dir_, 2);
  // Every message below the oldest unsettled one has left the queue: its segments can go (the
  // older kept snapshot may name offsets below; a restore skips what is gone).
  const std::uint64_t low = unsettled_.empty() ? log_->log_end_offset() : unsettled_.lowest();
  log_->delete_segments_below(low);
  pub_.published(*log_);
  since_snapshot_ = 0;
  last_snapshot_ns_ = now_mono;
}

void QueueStore::publish_stats() noexcept {
  if (!log_) return;
  auto& h = q_.header();
  std::uint64_t segs = 0;
  try {
    segs = log_->segments().size();
  } catch (...) {
  }
  // Relaxed: statistics for stat.
  h.log_start_offset.store(log_->log_start_offset(), std::memory_order_relaxed);
  h.log_end_offset.store(log_->log_end_offset(), std::memory_order_relaxed);
  h.durable_offset.store(log_->recovery_point(), std::memory_order_relaxed);
  h.log_segments.store(segs, std::memory_order_relaxed);
  h.log_bytes.store(log_->size_bytes(), std::memory_order_relaxed);
}

bool QueueStore::idle() const noexcept {
  return retry_.empty() && deferred_.empty() && q_.persist_ring().looks_empty();
}

}  // namespace shmbus::daemon
