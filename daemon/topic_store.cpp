#include "topic_store.hpp"

#include "common/paths.hpp"
#include "log.hpp"
#include "shmbus/message/frame.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace shmbus::daemon {

namespace {
constexpr std::size_t kMaxBatchRecords = 1024;
constexpr std::size_t kMaxBatchBytes = 4U << 20;
}  // namespace

bool TopicMeta::load(const std::string& dir) {
  std::ifstream in(dir + "/topic.meta");
  std::string line;
  int seen = 0;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const auto v = static_cast<std::uint32_t>(std::strtoul(line.c_str() + eq + 1, nullptr, 10));
    if (line.compare(0, eq, "capacity") == 0) capacity = v, ++seen;
    else if (line.compare(0, eq, "max_message_size") == 0) max_message_size = v, ++seen;
  }
  return seen == 2;
}

bool TopicMeta::save(const std::string& dir) const {
  const std::string tmp = dir + "/topic.meta.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "format=1\ncapacity=" << capacity << "\nmax_message_size=" << max_message_size << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, dir + "/topic.meta", ec);
  return !ec;
}

TopicStore::TopicStore(std::uint32_t dest_id, std::string name, std::string dir, ring::TopicRing ring,
                       std::uint32_t entry, std::shared_ptr<void> keep, FsyncPolicy fsync, TopicLogPolicy policy,
                       log::LogConfig cfg, std::shared_ptr<TopicLogFigures> figures)
    : dest_id_(dest_id), name_(std::move(name)), dir_(std::move(dir)), ring_(ring), keep_(std::move(keep)),
      fsync_(fsync), policy_(policy), cfg_(cfg), figures_(std::move(figures)) {
  auto* se = ring_.subscriber(entry);
  // Acquire: the conductor set the entry up (position) before handing it over.
  reader_ = ring::TopicReader(ring_, se, se->position.load(std::memory_order_acquire));
  buf_.resize(ring_.max_payload() + 64);
  scratch_.reserve(kMaxBatchBytes + ring_.max_payload() + 1024);
  last_compact_ns_ = common::mono_ns();
  cfg_.retention_ms = policy_.retention_ms;
  cfg_.retention_bytes = policy_.retention_bytes;
}

bool TopicStore::open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  TopicMeta m{ring_.slot_count(), ring_.max_payload()};
  if (ec || !m.save(dir_)) {
    error("topic://" + name_ + ": cannot create " + dir_ + (ec ? ": " + ec.message() : std::string()));
    return false;
  }
  log::RecoveryReport rep;
  log::LogError err;
  log_ = log::Log::open(dir_, cfg_, &rep, err);
  if (!log_) {
    error("topic://" + name_ + ": its log cannot be opened (" + err.what + "); durable subscriptions get nothing new");
    return false;
  }
  if (rep.truncated)
    warn("topic://" + name_ + ": recovery cut the log at offset " + std::to_string(rep.truncated_at_offset) + " (" +
         rep.truncated_file + " position " + std::to_string(rep.truncated_at_position) + ", " + rep.reason + "): " +
         std::to_string(rep.bytes_dropped) + " bytes dropped");
  if (log_->epochs().empty()) log_->assign_epoch(0);
  pub_.attach(hub_, "topic." + name_, dir_, nullptr, keep_);
  pub_.published(*log_);
  return true;
}

void TopicStore::add(const ring::ReadMeta& m, const std::byte* data) {
  TopicMessageRecord r{m.timestamp_ns, m.expiration_ns, m.producer_seq, m.incarnation, m.producer_id, m.flags};
  log::AppendRecord a;
  a.timestamp_ns = m.timestamp_ns != 0 ? m.timestamp_ns : common::real_ns();
  a.attributes = static_cast<std::uint16_t>(RecordKind::TopicMessage);
  std::string_view key;
  if ((m.flags & layout::kSlotFramed) != 0) {
    message::FrameReader f;
    if (f.open({data, m.length}) == message::DecodeStatus::Ok) {
      const auto k = f.property("key");
      if (k.type == message::ValueType::String) key = k.s;
      const auto t = f.property("tombstone");
      if (!key.empty() && t.type == message::ValueType::Bool && t.i != 0) a.attributes |= log::kAttrTombstone;
    }
  }
  key_at_.push_back(scratch_.size());
  key_len_.push_back(key.size());
  scratch_.insert(scratch_.end(), reinterpret_cast<const std::byte*>(key.data()),
                  reinterpret_cast<const std::byte*>(key.data()) + key.size());
  value_at_.push_back(scratch_.size());
  put(scratch_, r);
  scratch_.insert(scratch_.end(), data, data + m.length);
  batch_.push_back(a);
}

std::uint64_t TopicStore::log_up_to(std::uint64_t tail) {
  if (!log_) return 0;
  const std::uint64_t deadline = common::mono_ns() + 1'000'000'000ULL;  // a producer stuck mid-claim
  while (reader_.position() < tail || !batch_.empty()) {
    const std::uint64_t before = reader_.position();
    drain(common::mono_ns(), tail);
    if (reader_.position() == before && batch_.empty() && common::mono_ns() >= deadline) break;
    if (!batch_.empty() && common::mono_ns() >= deadline) break;  // the disk refuses: start after what is logged
  }
  return log_->log_end_offset();
}

std::size_t TopicStore::drain(std::uint64_t now_mono, std::uint64_t limit) {
  if (!log_) return 0;
  // A batch the disk refused last time goes first (its messages are out of the ring already).
  if (batch_.empty()) {
    scratch_.clear();
    value_at_.clear();
    key_at_.clear();
    key_len_.clear();
    while (batch_.size() < kMaxBatchRecords && scratch_.size() < kMaxBatchBytes && reader_.position() < limit) {
      ring::ReadMeta m;
      std::uint64_t lost = 0;
      const auto st = reader_.poll(buf_.data(), m, lost);
      if (st == ring::PollStatus::Empty) break;
      if (st == ring::PollStatus::Lapped) {
        lost_ += lost;
        warn("topic://" + name_ + ": the persistence agent was lapped: " + std::to_string(lost) +
             " messages were not logged for durable subscriptions (a larger --capacity absorbs longer bursts)");
        continue;
      }
      if ((m.flags & layout::kSlotPersistent) != 0) add(m, buf_.data());
    }
  }
  if (batch_.empty()) return 0;
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    const std::size_t end = i + 1 < batch_.size() ? key_at_[i + 1] : scratch_.size();
    batch_[i].key = {scratch_.data() + key_at_[i], key_len_[i]};
    batch_[i].value = {scratch_.data() + value_at_[i], end - value_at_[i]};
  }
  std::uint64_t base = 0;
  if (auto err = log_->append(batch_, pub_.epoch_for(*log_), base); err) {
    if (!failing_) error("topic://" + name_ + ": PERSISTENT messages cannot be written (" + err.what + "); retrying");
    failing_ = true;
    // Relaxed: statistics.
    if (figures_) figures_->error.store(static_cast<std::uint32_t>(err.code), std::memory_order_relaxed);
    return 0;
  }
  pub_.published(*log_);
  if (failing_) info("topic://" + name_ + ": its log is writable again");
  failing_ = false;
  // Relaxed: statistics.
  if (figures_) figures_->persisted.fetch_add(batch_.size(), std::memory_order_relaxed);
  const std::size_t n = batch_.size();
  if (unflushed_ == 0) first_unflushed_ns_ = now_mono;
  unflushed_ += n;
  batch_.clear();
  return n;
}

void TopicStore::maybe_flush(std::uint64_t now_mono, bool force) {
  if (!log_ || unflushed_ == 0) return;
  if (!force && !fsync_.due(unflushed_, first_unflushed_ns_, now_mono)) return;
  if (auto err = log_->flush(); err) {
    warn("topic://" + name_ + ": fsync failed: " + err.what);
    return;
  }
  unflushed_ = 0;
}

std::uint64_t TopicStore::next_flush_ns() const noexcept {
  return fsync_.due_at(unflushed_, first_unflushed_ns_);
}

void TopicStore::maintain(std::uint64_t now_mono, std::uint64_t min_position) {
  if (!log_) return;
  log_->delete_segments_below(min_position);
  if (policy_.retention_ms != 0 || policy_.retention_bytes != 0) log_->apply_retention(common::real_ns());
  if (policy_.compact && now_mono - last_compact_ns_ >= policy_.compact_every_ns) {
    last_compact_ns_ = now_mono;
    log::Log::CompactionStats st;
    if (auto err = log_->compact(common::real_ns(), policy_.tombstone_retention_ms, st); err)
      warn("topic://" + name_ + ": compaction failed: " + err.what);
    else if (st.records_before != st.records_after)
      info("topic://" + name_ + ": compacted " + std::to_string(st.records_before) + " -> " +
           std::to_string(st.records_after) + " records (" + std::to_string(st.bytes_before) + " -> " +
           std::to_string(st.bytes_after) + " bytes)");
  }
  pub_.published(*log_);
}

void TopicStore::publish_stats() noexcept {
  if (!log_ || !figures_) return;
  std::uint64_t segs = 0;
  try {
    segs = log_->segments().size();
  } catch (...) {
  }
  // Relaxed: statistics for stat.
  figures_->start.store(log_->log_start_offset(), std::memory_order_relaxed);
  figures_->end.store(log_->log_end_offset(), std::memory_order_relaxed);
  figures_->durable.store(log_->recovery_point(), std::memory_order_relaxed);
  figures_->segments.store(segs, std::memory_order_relaxed);
  figures_->bytes.store(log_->size_bytes(), std::memory_order_relaxed);
  figures_->lost.store(lost_, std::memory_order_relaxed);
  if (!failing_) figures_->error.store(0, std::memory_order_relaxed);
}

}  // namespace shmbus::daemon
