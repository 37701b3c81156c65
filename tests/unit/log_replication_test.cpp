// Replication support of the segment log, follower side (bus/log/replication.cpp): append_raw
// copies a leader's batches byte for byte (validated first, already-held ones skipped, gaps
// kept), reset_to starts over at an offset, end_offset_for_epoch answers KIP-101's question.
#include "log_replication_fixture.hpp"

#include <cerrno>
#include <csignal>
#include <sys/resource.h>

namespace shmbus::log {
namespace {

using test::append;
using test::concat;
using test::fill_epoch;
using test::kT0;
using test::log_bytes;
using test::open_ok;
using test::read_all;
using test::segment_bases;
using test::split_batches;
using test::TempDir;
using Epochs = std::vector<std::pair<std::uint32_t, std::uint64_t>>;
using Bytes = std::vector<std::byte>;

LogConfig leader_cfg() {
  LogConfig c;
  c.segment_bytes = 1024;
  c.index_interval_bytes = 1;
  return c;
}

LogConfig follower_cfg() {
  LogConfig c;
  c.segment_bytes = 700;
  c.index_interval_bytes = 200;
  return c;
}

// The batches of a leader with 3-record batches: 4 in epoch 1 (offsets 0..11), 2 in epoch 2 (12..17).
std::vector<Bytes> leader_batches(const TempDir& dir) {
  auto leader = open_ok(dir.path(), {});
  EXPECT_FALSE(leader->assign_epoch(1));
  fill_epoch(*leader, 4, 3, 1);
  EXPECT_FALSE(leader->assign_epoch(2));
  fill_epoch(*leader, 2, 3, 2);
  return split_batches(log_bytes(dir.path()));
}

TEST(LogReplication_test, RoundTripCopiesBatchesByteForByteAcrossDifferentSegmentSizes) {
  TempDir ld, fd;
  auto leader = open_ok(ld.path(), leader_cfg());
  auto follower = open_ok(fd.path(), follower_cfg());
  ASSERT_FALSE(leader->assign_epoch(1));
  fill_epoch(*leader, 10, 3, 1, 30);
  ASSERT_FALSE(leader->assign_epoch(2));  // led without appending: superseded by 4
  ASSERT_FALSE(leader->assign_epoch(4));
  fill_epoch(*leader, 15, 2, 4, 90);
  ASSERT_FALSE(leader->assign_epoch(7));
  fill_epoch(*leader, 12, 1, 7, 10);
  ASSERT_EQ(leader->epochs(), (Epochs{{1, 0}, {4, 30}, {7, 60}}));
  LogRangeReader reader(ld.path());
  EXPECT_GT(test::replicate(reader, *leader, *follower, 300), 5);
  EXPECT_EQ(follower->log_end_offset(), 72U);
  EXPECT_EQ(log_bytes(fd.path()), log_bytes(ld.path())) << "same batches, same bytes, same CRCs";
  EXPECT_GT(segment_bases(fd.path()).size(), segment_bases(ld.path()).size()) << "smaller follower segments";
  EXPECT_NE(segment_bases(fd.path()), segment_bases(ld.path()));
  EXPECT_EQ(follower->epochs(), leader->epochs());
  const auto expected = read_all(*leader);
  EXPECT_EQ(read_all(*follower), expected);
  follower.reset();
  std::filesystem::remove(fd / kRecoveryCheckpoint);  // validate every batch on open
  RecoveryReport report;
  follower = open_ok(fd.path(), follower_cfg(), &report);
  EXPECT_FALSE(report.truncated) << report.reason;
  EXPECT_EQ(report.batches_checked, 37U);
  EXPECT_EQ(read_all(*follower), expected);
  EXPECT_EQ(follower->epochs(), (Epochs{{1, 0}, {4, 30}, {7, 60}}));
}

struct BadCase {
  const char* name;
  Bytes span;
  int code;
  std::string what;  // the whole message must contain it
};

TEST(LogReplication_test, EveryValidationErrorIsRefusedWithNothingWritten) {
  TempDir ld, other, fd;
  const auto b = leader_batches(ld);  // b[0..3] epoch 1, b[4..5] epoch 2
  std::vector<Bytes> two;             // 2-record batches of epoch 1: 0..1, 2..3, ..., 16..17
  {
    auto l2 = open_ok(other.path(), {});
    fill_epoch(*l2, 9, 2, 1);
    two = split_batches(log_bytes(other.path()));
  }
  auto follower = open_ok(fd.path(), {});
  std::uint64_t n = 0;
  ASSERT_FALSE(follower->append_raw(b[0], n));
  ASSERT_EQ(n, 3U);
  ASSERT_FALSE(follower->append_raw(b[4], n)) << "a gap: 3..11 never came (compacted away)";
  ASSERT_EQ(follower->log_end_offset(), 15U);
  const std::string at1 = "batch at byte " + std::to_string(b[4].size()) + " of the fetched data: ";

  std::vector<BadCase> cases;
  Bytes flipped = concat({b[4], b[5]});
  flipped[b[4].size() + 70] ^= std::byte{0x5A};
  Bytes bad_magic = b[5];
  bad_magic[0] = std::byte{0};
  Bytes newer = b[5];
  newer[12] = std::byte{2};
  Bytes shorter = concat({b[4], b[5]});
  shorter.resize(shorter.size() - 5);
  Bytes header_only = concat({b[4], b[5]});
  header_only.resize(b[4].size() + 20);
  Bytes tiny_length = b[5];
  tiny_length[8] = std::byte{10};
  tiny_length[9] = tiny_length[10] = tiny_length[11] = std::byte{0};
  cases.push_back({"crc", flipped, EBADMSG, at1 + "crc mismatch"});
  cases.push_back({"truncated batch", shorter, EBADMSG, at1 + "truncated batch (batch_length"});
  cases.push_back({"truncated header", header_only, EBADMSG, at1 + "truncated batch header (20 bytes left"});
  cases.push_back({"magic", bad_magic, EBADMSG, "batch at byte 0 of the fetched data: bad magic"});
  cases.push_back({"length", tiny_length, EBADMSG, "batch at byte 0 of the fetched data: bad batch length 10"});
  cases.push_back({"version", newer, EPROTONOSUPPORT, "format version 2 is newer"});
  cases.push_back({"out of order", concat({b[5], b[4]}), EPROTO,
                   "batch at byte " + std::to_string(b[5].size()) + " of the fetched data: out of order"});
  cases.push_back({"older epoch", two[8], EPROTO,
                   "batch at byte 0 of the fetched data: leader epoch 1 is older than epoch 2, the latest this "
                   "log holds records of"});
  for (const BadCase& c : cases) {
    const Bytes before = log_bytes(fd.path());
    const LogError e = follower->append_raw(c.span, n);
    EXPECT_EQ(e.code, c.code) << c.name << ": " << e.what;
    EXPECT_NE(e.what.find(c.what), std::string::npos) << c.name << ": " << e.what;
    EXPECT_EQ(n, 0U) << c.name;
    EXPECT_EQ(follower->log_end_offset(), 15U) << c.name;
    EXPECT_EQ(log_bytes(fd.path()), before) << c.name << ": nothing written";
    EXPECT_EQ(follower->epochs(), (Epochs{{1, 0}, {2, 12}})) << c.name;
  }
  // A straddle: a log whose end is 3 gets the batch 2..3.
  TempDir fd2;
  auto f2 = open_ok(fd2.path(), {});
  ASSERT_FALSE(f2->append_raw(b[0], n));
  const LogError e = f2->append_raw(concat({two[1], two[2]}), n);
  EXPECT_EQ(e.code, EPROTO);
  EXPECT_EQ(e.what, "batch at byte 0 of the fetched data: offsets 2..3 straddle the log end 3 (the logs diverge: "
                    "truncate first)");
  EXPECT_EQ(f2->log_end_offset(), 3U);
  // Still appendable, by copy and by append.
  ASSERT_FALSE(follower->append_raw(b[5], n)) << "the good bytes go in after all that";
  EXPECT_EQ(n, 3U);
  EXPECT_EQ(append(*follower, {{"", "own", kT0}}, 2), 18U);
  EXPECT_EQ(read_all(*follower).size(), 10U);
}

TEST(LogReplication_test, BatchesAlreadyHeldAreSkipped) {
  TempDir ld, fd;
  const auto b = leader_batches(ld);
  auto follower = open_ok(fd.path(), {});
  std::uint64_t n = 0;
  ASSERT_FALSE(follower->append_raw(concat({b[0], b[1]}), n));
  EXPECT_EQ(n, 6U);
  const Bytes before = log_bytes(fd.path());
  ASSERT_FALSE(follower->append_raw(concat({b[0], b[1]}), n));
  EXPECT_EQ(n, 0U);
  EXPECT_EQ(log_bytes(fd.path()), before);
  ASSERT_FALSE(follower->append_raw(concat({b[1], b[2], b[3]}), n));
  EXPECT_EQ(n, 6U) << "only 6..11 are new";
  EXPECT_EQ(follower->log_end_offset(), 12U);
  EXPECT_EQ(log_bytes(fd.path()), concat({b[0], b[1], b[2], b[3]}));
}

TEST(LogReplication_test, GapsFromACompactedLeaderSurviveRecovery) {
  TempDir ld, fd;
  auto leader = open_ok(ld.path(), leader_cfg());
  for (int round = 0; round < 40; ++round) append(*leader, {{"k" + std::to_string(round % 3), std::string(60, 'v'), kT0}});
  Log::CompactionStats stats;
  ASSERT_FALSE(leader->compact(kT0, 1000, stats));
  const auto leader_batches = split_batches(log_bytes(ld.path()));
  ASSERT_LT(leader_batches.size(), 40U) << "compaction removed whole batches: gaps";
  LogConfig fc = follower_cfg();
  fc.segment_bytes = 300;  // about two batches: gaps land on rolls too
  auto follower = open_ok(fd.path(), fc);
  LogRangeReader reader(ld.path());
  EXPECT_GT(test::replicate(reader, *leader, *follower, 200), 1);
  EXPECT_EQ(follower->log_end_offset(), 40U);
  EXPECT_EQ(log_bytes(fd.path()), log_bytes(ld.path()));
  const auto expected = read_all(*leader);
  EXPECT_EQ(read_all(*follower), expected);
  follower.reset();
  std::filesystem::remove(fd / kRecoveryCheckpoint);
  RecoveryReport report;
  follower = open_ok(fd.path(), fc, &report);
  EXPECT_FALSE(report.truncated) << report.reason;
  EXPECT_EQ(report.batches_checked, leader_batches.size());
  EXPECT_EQ(follower->log_end_offset(), 40U);
  EXPECT_EQ(read_all(*follower), expected);
}

TEST(LogReplication_test, AGapEndsTheLogAfterItsLastBatchAndStartsTheEpochAtTheBatch) {
  TempDir ld, fd;
  const auto b = leader_batches(ld);
  LogConfig one_batch;
  one_batch.segment_bytes = b[0].size();  // every batch rolls a segment
  {
    auto follower = open_ok(fd.path(), one_batch);
    std::uint64_t n = 0;
    ASSERT_FALSE(follower->append_raw(concat({b[0], b[3], b[5]}), n));
    EXPECT_EQ(n, 9U);
    EXPECT_EQ(follower->log_end_offset(), 18U);
    EXPECT_EQ(follower->epochs(), (Epochs{{1, 0}, {2, 15}})) << "epoch 2 starts at its first batch here";
    EXPECT_EQ(segment_bases(fd.path()), (std::vector<std::uint64_t>{0, 9, 15})) << "rolled at the batch's base";
  }
  std::filesystem::remove(fd / kRecoveryCheckpoint);
  RecoveryReport report;
  auto follower = open_ok(fd.path(), one_batch, &report);
  EXPECT_FALSE(report.truncated) << report.reason;
  EXPECT_EQ(follower->log_start_offset(), 0U);
  EXPECT_EQ(follower->log_end_offset(), 18U);
  std::vector<std::uint64_t> offsets;
  for (const auto& r : read_all(*follower)) offsets.push_back(r.offset);
  EXPECT_EQ(offsets, (std::vector<std::uint64_t>{0, 1, 2, 9, 10, 11, 15, 16, 17}));
  EXPECT_EQ(read_all(*follower, 5).front().offset, 9U) << "a read from inside the gap starts after it";
}

TEST(LogReplication_test, AnEpochThisReplicaLedWithoutRecordsGivesWayToTheLeaders) {
  TempDir ld, fd;
  const auto b = leader_batches(ld);
  auto follower = open_ok(fd.path(), {});
  std::uint64_t n = 0;
  ASSERT_FALSE(follower->append_raw(b[0], n));
  ASSERT_FALSE(follower->assign_epoch(5));  // it led epoch 5 briefly, appending nothing
  ASSERT_EQ(follower->epochs(), (Epochs{{1, 0}, {5, 3}}));
  ASSERT_FALSE(follower->append_raw(concat({b[1], b[4]}), n)) << "epoch 5 holds no records here";
  EXPECT_EQ(follower->epochs(), (Epochs{{1, 0}, {2, 12}}));
  follower.reset();
  EXPECT_EQ(open_ok(fd.path(), {})->epochs(), (Epochs{{1, 0}, {2, 12}})) << "the checkpoint says the same";
}

// RLIMIT_FSIZE makes a write past `limit` bytes fail with EFBIG (SIGXFSZ ignored): a failing disk
// without root or a tmpfs.
struct FileSizeLimit {
  rlimit old{};
  void (*old_handler)(int) = nullptr;
  explicit FileSizeLimit(std::uint64_t limit) {
    old_handler = std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit l = old;
    l.rlim_cur = limit;
    ::setrlimit(RLIMIT_FSIZE, &l);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
  }
};

TEST(LogReplication_test, AFailedWriteCutsBackThatBatchAndCanBeRetried) {
  TempDir ld, fd;
  auto leader = open_ok(ld.path(), {});
  fill_epoch(*leader, 2, 3, 1);
  fill_epoch(*leader, 1, 20, 2, 100);  // b[2]: a big batch of a new epoch
  const auto b = split_batches(log_bytes(ld.path()));
  LogConfig cfg;
  cfg.segment_bytes = b[0].size() + b[1].size();  // b[2] rolls
  auto follower = open_ok(fd.path(), cfg);
  std::uint64_t n = 0;
  ASSERT_FALSE(follower->append_raw(b[0], n));
  LogError e;
  {
    FileSizeLimit limit(b[0].size() + b[1].size() + 16);
    ASSERT_GT(b[2].size(), b[0].size() + b[1].size() + 16);
    e = follower->append_raw(concat({b[1], b[2]}), n);
  }
  EXPECT_EQ(e.code, EFBIG) << e.what;
  EXPECT_NE(e.what.find("batch at byte " + std::to_string(b[1].size()) + " of the fetched data: cannot append"),
            std::string::npos)
      << e.what;
  EXPECT_EQ(n, 3U) << "b[1] went in before the failure";
  EXPECT_EQ(follower->log_end_offset(), 6U);
  EXPECT_EQ(log_bytes(fd.path()), concat({b[0], b[1]})) << "b[2] cut back, its rolled segment removed";
  EXPECT_EQ(follower->segments().size(), 1U);
  EXPECT_EQ(follower->epochs(), (Epochs{{1, 0}, {2, 6}})) << "the epoch was recorded before the write";
  ASSERT_FALSE(follower->append_raw(concat({b[1], b[2]}), n)) << e.what;
  EXPECT_EQ(n, 20U);
  EXPECT_EQ(log_bytes(fd.path()), concat({b[0], b[1], b[2]}));
  EXPECT_EQ(follower->epochs(), (Epochs{{1, 0}, {2, 6}}));
}

TEST(LogReplication_test, ResetToStartsAnEmptyLogBelowAtOrAboveTheEnd) {
  for (const std::uint64_t to : {0ULL, 7ULL, 30ULL, 1000ULL}) {
    TempDir dir;
    {
      auto sut = open_ok(dir.path(), leader_cfg());
      ASSERT_FALSE(sut->assign_epoch(3));
      fill_epoch(*sut, 10, 3, 3, 60);
      ASSERT_FALSE(sut->flush());
      ASSERT_GT(sut->segments().size(), 2U);
      ASSERT_FALSE(sut->reset_to(to)) << to;
      EXPECT_EQ(sut->log_start_offset(), to);
      EXPECT_EQ(sut->log_end_offset(), to);
      EXPECT_EQ(sut->recovery_point(), to);
      EXPECT_TRUE(sut->epochs().empty());
      EXPECT_TRUE(read_all(*sut).empty());
      EXPECT_EQ(segment_bases(dir.path()), std::vector<std::uint64_t>{to}) << "every old segment is gone";
      EXPECT_EQ(test::read_text(dir / kRecoveryCheckpoint), "1\n" + std::to_string(to) + "\n");
      EXPECT_EQ(test::read_text(dir / kEpochCheckpoint), "1\n0\n");
      EXPECT_EQ(append(*sut, {{"", "after", kT0}}, 4), to);
    }
    RecoveryReport report;
    auto sut = open_ok(dir.path(), leader_cfg(), &report);
    EXPECT_FALSE(report.truncated) << report.reason;
    EXPECT_EQ(sut->log_start_offset(), to);
    EXPECT_EQ(sut->log_end_offset(), to + 1);
  }
}

TEST(LogReplication_test, EndOffsetForEpochAnswersLikeKafka) {
  const Epochs epochs{{1, 0}, {3, 100}, {4, 250}, {8, 400}};
  struct Row {
    std::uint32_t requested;
    EpochEnd want;
  };
  const Row rows[] = {
      {0, {0, 0, false}},   {1, {1, 100, true}}, {2, {1, 100, true}}, {3, {3, 250, true}},
      {4, {4, 400, true}},  {5, {4, 400, true}}, {7, {4, 400, true}}, {8, {8, 500, true}},
      {99, {8, 500, true}},
  };
  for (const Row& r : rows) {
    const EpochEnd got = end_offset_for_epoch(epochs, r.requested, 500);
    EXPECT_EQ(got.known, r.want.known) << r.requested;
    EXPECT_EQ(got.epoch, r.want.epoch) << r.requested;
    EXPECT_EQ(got.end_offset, r.want.end_offset) << r.requested;
  }
  const EpochEnd none = end_offset_for_epoch({}, 6, 42);
  EXPECT_TRUE(none.known);
  EXPECT_EQ(none.epoch, 0U) << "a log without epochs is one epoch-0 run";
  EXPECT_EQ(none.end_offset, 42U);
  const EpochEnd late = end_offset_for_epoch({{5, 10}}, 4, 42);
  EXPECT_FALSE(late.known) << "epochs began at 5: nothing is known of 4";
}

}  // namespace
}  // namespace shmbus::log
