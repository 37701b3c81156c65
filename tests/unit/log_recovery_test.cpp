// Recovery of a segment log at open (bus/log/recovery.cpp): damage in the middle or a torn tail is
// cut at the first bad batch with an exact report; later segments go; missing or garbage indexes
// are rebuilt; a newer format is refused untouched; an append that runs out of disk space leaves
// the log intact and can be retried; dump_segment reports what it sees.
#include "log_fixture.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <sys/mount.h>
#include <unistd.h>

namespace shmbus::log {
namespace {

using test::append;
using test::batches_of;
using test::open_ok;
using test::read_all;
using test::Rec;
using test::seg;
using test::TempDir;

constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;

// 10 batches of 3 records (offsets 3b..3b+2) in one segment; returns what was written.
std::vector<Rec> write_ten_batches(const std::string& dir, const LogConfig& cfg = {}) {
  auto sut = open_ok(dir, cfg);
  std::vector<Rec> all;
  for (int b = 0; b < 10; ++b) {
    std::vector<test::Draft> d;
    for (int r = 0; r < 3; ++r) d.push_back({"key" + std::to_string(b), "value-" + std::to_string(3 * b + r), kT0 + b});
    const std::uint64_t base = append(*sut, d);
    for (std::size_t r = 0; r < d.size(); ++r) all.push_back({base + r, d[r].ts, d[r].key, d[r].value, 0, 0});
  }
  return all;
}

std::uint64_t size_of(const std::string& path) { return std::filesystem::file_size(path); }

TEST(LogRecovery_test, AFlippedByteInTheMiddleKeepsEveryBatchBeforeIt) {
  TempDir dir;
  auto all = write_ten_batches(dir.path());
  const std::string log0 = seg(dir.path(), 0, ".log");
  const auto batches = batches_of(log0);
  ASSERT_EQ(batches.size(), 10U);
  const std::uint64_t old_size = size_of(log0);
  test::flip_byte(log0, batches[5].position + batches[5].size / 2);  // inside batch 5's records

  RecoveryReport report;
  auto sut = open_ok(dir.path(), {}, &report);
  EXPECT_TRUE(report.truncated);
  EXPECT_EQ(report.reason, "crc mismatch");
  EXPECT_EQ(report.truncated_file, log0);
  EXPECT_EQ(report.truncated_at_offset, 15U);
  EXPECT_EQ(report.truncated_at_position, batches[5].position);
  EXPECT_EQ(report.bytes_dropped, old_size - batches[5].position);
  EXPECT_EQ(report.segments_dropped, 0U);
  EXPECT_EQ(size_of(log0), batches[5].position);
  all.resize(15);
  EXPECT_EQ(read_all(*sut), all);
  EXPECT_EQ(sut->log_end_offset(), 15U);
  EXPECT_EQ(append(*sut, {{"", "after", kT0}}), 15U) << "appends continue where the good data ends";
}

TEST(LogRecovery_test, ATornTailIsCutAtTheLastWholeBatch) {
  TempDir dir;
  auto all = write_ten_batches(dir.path());
  const std::string log0 = seg(dir.path(), 0, ".log");
  const auto batches = batches_of(log0);
  const std::uint64_t torn_at = batches[9].position + 20;  // part of the last batch's header
  std::filesystem::resize_file(log0, torn_at);

  RecoveryReport report;
  auto sut = open_ok(dir.path(), {}, &report);
  EXPECT_TRUE(report.truncated);
  EXPECT_EQ(report.reason, "torn batch header");
  EXPECT_EQ(report.truncated_at_offset, 27U);
  EXPECT_EQ(report.truncated_at_position, batches[9].position);
  EXPECT_EQ(report.bytes_dropped, 20U);
  all.resize(27);
  EXPECT_EQ(read_all(*sut), all);
}

TEST(LogRecovery_test, ABatchCutShortIsCutAtItsStart) {
  TempDir dir;
  write_ten_batches(dir.path());
  const std::string log0 = seg(dir.path(), 0, ".log");
  const auto batches = batches_of(log0);
  std::filesystem::resize_file(log0, size_of(log0) - 1);

  RecoveryReport report;
  auto sut = open_ok(dir.path(), {}, &report);
  EXPECT_EQ(report.reason, "torn batch");
  EXPECT_EQ(report.truncated_at_position, batches[9].position);
  EXPECT_EQ(report.bytes_dropped, batches[9].size - 1U);
  EXPECT_EQ(sut->log_end_offset(), 27U);
}

TEST(LogRecovery_test, DamageInAnEarlierSegmentDropsEveryLaterSegment) {
  TempDir dir;
  LogConfig cfg;
  cfg.segment_bytes = 1024;
  std::vector<Rec> all;
  {
    auto sut = open_ok(dir.path(), cfg);
    for (int i = 0; i < 40; ++i) append(*sut, {{"", std::string(200, 'a'), kT0}});
    all = read_all(*sut);
  }
  std::filesystem::remove(dir / "recovery-point-offset-checkpoint");  // as after a crash before any flush
  auto infos = [&] {
    auto sut = open_ok(dir.path(), cfg);
    return sut->segments();
  }();
  ASSERT_GE(infos.size(), 4U);
  std::filesystem::remove(dir / "recovery-point-offset-checkpoint");
  const std::string log1 = seg(dir.path(), infos[1].base_offset, ".log");
  const auto batches = batches_of(log1);
  test::flip_byte(log1, batches[2].position + 60);
  std::uint64_t later_bytes = 0;
  for (std::size_t i = 2; i < infos.size(); ++i) later_bytes += infos[i].bytes;

  RecoveryReport report;
  auto sut = open_ok(dir.path(), cfg, &report);
  EXPECT_TRUE(report.truncated);
  EXPECT_EQ(report.truncated_file, log1);
  EXPECT_EQ(report.truncated_at_offset, batches[2].base_offset);
  EXPECT_EQ(report.segments_dropped, infos.size() - 2);
  EXPECT_EQ(report.bytes_dropped, infos[1].bytes - batches[2].position + later_bytes);
  EXPECT_EQ(report.segments, 2U);
  EXPECT_EQ(sut->segments().size(), 2U);
  EXPECT_FALSE(std::filesystem::exists(seg(dir.path(), infos[2].base_offset, ".log")));
  all.resize(batches[2].base_offset);
  EXPECT_EQ(read_all(*sut), all);
}

TEST(LogRecovery_test, WithoutARecoveryPointEveryBatchIsChecked) {
  TempDir dir;
  write_ten_batches(dir.path());
  std::filesystem::remove(dir / "recovery-point-offset-checkpoint");
  RecoveryReport report;
  auto sut = open_ok(dir.path(), {}, &report);
  EXPECT_FALSE(report.truncated);
  EXPECT_EQ(report.batches_checked, 10U);
  EXPECT_EQ(report.records_recovered, 30U);
  EXPECT_EQ(report.segments, 1U);
}

// Lazy checkpoints (docs/persistence-format.md "Checkpoint files"): flush() makes the data
// durable and moves recovery_point() at once; the checkpoint file follows at most every
// checkpoint_interval_ms, after a roll, and at a clean close. A lagging file costs time, not data.
LogConfig lazy_checkpoints() {
  LogConfig cfg;
  cfg.checkpoint_interval_ms = 3'600'000;  // never by time within a test
  return cfg;
}

std::uint64_t checkpoint_in_file(const TempDir& dir) {
  const std::string t = test::read_text(dir / "recovery-point-offset-checkpoint");
  return std::stoull(t.substr(t.find('\n') + 1));
}

TEST(LogRecovery_test, FlushMakesDataDurableButRewritesTheCheckpointOnlyWhenDue) {
  TempDir dir;
  auto sut = open_ok(dir.path(), lazy_checkpoints());
  append(*sut, {{"", "a", kT0}, {"", "b", kT0}});
  ASSERT_FALSE(sut->flush());  // the first flush of a new log: its segment was just created
  EXPECT_EQ(checkpoint_in_file(dir), 2U);
  append(*sut, {{"", "c", kT0}});
  ASSERT_FALSE(sut->flush());
  EXPECT_EQ(sut->recovery_point(), 3U) << "in memory: fdatasync'ed up to the end";
  EXPECT_EQ(checkpoint_in_file(dir), 2U) << "the file lags: not due yet";
  append(*sut, {{"", "d", kT0}});
  EXPECT_EQ(sut->recovery_point(), 3U) << "an append without a flush is not durable";
  ASSERT_FALSE(sut->flush(Log::Checkpoint::kNow));
  EXPECT_EQ(checkpoint_in_file(dir), 4U);
  EXPECT_EQ(sut->recovery_point(), 4U);
}

// A crash of the log's owner: the files stay as they are now. (Destroying the Log is a clean close,
// which rewrites the checkpoint; the file is put back as it was, which is what a crash leaves.)
void crash(std::unique_ptr<Log>& sut, const std::filesystem::path& dir) {
  const auto f = dir / "recovery-point-offset-checkpoint";
  std::string saved;
  {
    std::ifstream in(f, std::ios::binary);
    saved.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  sut.reset();
  std::ofstream(f, std::ios::binary | std::ios::trunc) << saved;
}

TEST(LogRecovery_test, ACheckpointLaggingTheSyncedDataStillRecoversEverything) {
  TempDir dir;
  std::vector<Rec> all;
  {
    auto sut = open_ok(dir.path(), lazy_checkpoints());
    for (int b = 0; b < 20; ++b) {
      const std::string v = "value-" + std::to_string(b);
      const std::uint64_t base = append(*sut, {{"k", v, kT0 + b}});
      all.push_back({base, kT0 + b, "k", v, 0, 0});
      ASSERT_FALSE(sut->flush());
    }
    EXPECT_EQ(sut->recovery_point(), 20U);
    EXPECT_EQ(checkpoint_in_file(dir), 1U) << "written by the first flush only";
    crash(sut, dir.path());  // no clean close: the checkpoint file stays behind
  }
  RecoveryReport report;
  auto sut = open_ok(dir.path(), lazy_checkpoints(), &report);
  EXPECT_FALSE(report.truncated);
  EXPECT_EQ(report.batches_checked, 19U) << "every batch from the stale checkpoint on was validated";
  EXPECT_EQ(sut->log_end_offset(), 20U);
  EXPECT_EQ(read_all(*sut), all);
  EXPECT_EQ(sut->recovery_point(), 1U) << "after a crash only the file's point is known to be on disk";
}

TEST(LogRecovery_test, ARollWritesTheCheckpointAndItNeverRunsAheadOfTheSyncedData) {
  TempDir dir;
  LogConfig cfg = lazy_checkpoints();
  cfg.segment_bytes = 256;
  auto sut = open_ok(dir.path(), cfg);
  const std::string v(40, 'x');  // 120-byte batches: two fit in 256 bytes, three do not
  append(*sut, {{"", v, kT0}});
  ASSERT_FALSE(sut->flush());
  append(*sut, {{"", v, kT0}});
  ASSERT_FALSE(sut->flush());
  EXPECT_EQ(checkpoint_in_file(dir), 1U);
  append(*sut, {{"", v, kT0}});  // rolls
  ASSERT_EQ(sut->segments().size(), 2U);
  EXPECT_EQ(checkpoint_in_file(dir), 1U) << "not before the data is synced";
  ASSERT_FALSE(sut->flush());
  EXPECT_EQ(checkpoint_in_file(dir), 3U) << "the first flush after a roll moves it";
  crash(sut, dir.path());
  RecoveryReport report;
  auto again = open_ok(dir.path(), cfg, &report);
  EXPECT_EQ(report.batches_checked, 0U);
  EXPECT_EQ(again->log_end_offset(), 3U);
}

LogConfig indexed_segments() {
  LogConfig cfg;
  cfg.segment_bytes = 1024;
  cfg.index_interval_bytes = 1;
  return cfg;
}

TEST(LogRecovery_test, ADeletedIndexIsRebuiltAndReadsStillWork) {
  TempDir dir;
  std::vector<Rec> all;
  {
    auto sut = open_ok(dir.path(), indexed_segments());
    for (int i = 0; i < 60; ++i) append(*sut, {{"k", "value " + std::to_string(i), kT0 + i}});
    all = read_all(*sut);
  }
  const std::string index0 = seg(dir.path(), 0, ".index");
  const std::string original = test::read_text(index0);
  ASSERT_FALSE(original.empty());
  std::filesystem::remove(index0);

  RecoveryReport report;
  auto sut = open_ok(dir.path(), indexed_segments(), &report);
  EXPECT_EQ(report.indexes_rebuilt, 1U);
  EXPECT_FALSE(report.truncated);
  EXPECT_EQ(test::read_text(index0), original) << "the rebuilt index is the one append wrote";
  EXPECT_EQ(read_all(*sut, 5).front(), all[5]);
  EXPECT_EQ(read_all(*sut), all);
}

TEST(LogRecovery_test, GarbageIndexesAreRebuiltAndReadsStillWork) {
  TempDir dir;
  std::vector<Rec> all;
  std::vector<SegmentInfo> infos;
  {
    auto sut = open_ok(dir.path(), indexed_segments());
    for (int i = 0; i < 60; ++i) append(*sut, {{"k", "value " + std::to_string(i), kT0 + i}});
    all = read_all(*sut);
    infos = sut->segments();
  }
  ASSERT_GE(infos.size(), 3U);
  // An old segment's index with whole but wrong entries, and the active one's with a torn entry.
  test::write_file(seg(dir.path(), infos[1].base_offset, ".index"), std::string(32, '\x07'));
  test::write_file(seg(dir.path(), infos.back().base_offset, ".timeindex"), "garbage of 23 bytes....");

  RecoveryReport report;
  auto sut = open_ok(dir.path(), indexed_segments(), &report);
  EXPECT_EQ(report.indexes_rebuilt, 2U);
  EXPECT_FALSE(report.truncated);
  for (std::uint64_t from = 0; from < all.size(); from += 7) EXPECT_EQ(read_all(*sut, from).front(), all[from]);
  EXPECT_EQ(sut->offset_for_time(kT0 + 50), 50U);
}

TEST(LogRecovery_test, ANewerFormatVersionIsRefusedAndLeftUntouched) {
  TempDir dir;
  write_ten_batches(dir.path());
  const std::string log0 = seg(dir.path(), 0, ".log");
  const std::uint64_t size = size_of(log0);
  {
    std::fstream f(log0, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(12);  // BatchHeader::version
    f.put(static_cast<char>(kLogFormatVersion + 1));
  }
  LogError err;
  auto sut = Log::open(dir.path(), {}, nullptr, err);
  EXPECT_FALSE(sut);
  EXPECT_EQ(err.code, EPROTONOSUPPORT);
  EXPECT_NE(err.what.find(log0), std::string::npos) << err.what;
  EXPECT_NE(err.what.find("newer"), std::string::npos) << err.what;
  EXPECT_EQ(size_of(log0), size);
}

TEST(LogRecovery_test, ANewerCheckpointVersionIsRefused) {
  TempDir dir;
  write_ten_batches(dir.path());
  test::write_file(dir / "leader-epoch-checkpoint", "2\n0\n");
  LogError err;
  EXPECT_FALSE(Log::open(dir.path(), {}, nullptr, err));
  EXPECT_EQ(err.code, EPROTONOSUPPORT);
  EXPECT_NE(err.what.find("leader-epoch-checkpoint"), std::string::npos) << err.what;
}

TEST(LogRecovery_test, LeftoversOfInterruptedOperationsAreRemovedOnOpen) {
  TempDir dir;
  auto all = write_ten_batches(dir.path());
  test::write_file(seg(dir.path(), 0, ".log.cleaned"), "half a compaction");
  test::write_file(dir / "recovery-point-offset-checkpoint.tmp", "1\n9");
  test::write_file(seg(dir.path(), 500, ".index"), std::string(16, '\0'));  // its .log was deleted
  test::write_file(dir / "queue.meta.tmp", "not the log's");
  auto sut = open_ok(dir.path(), {});
  EXPECT_EQ(read_all(*sut), all);
  EXPECT_FALSE(std::filesystem::exists(seg(dir.path(), 0, ".log.cleaned")));
  EXPECT_FALSE(std::filesystem::exists(dir / "recovery-point-offset-checkpoint.tmp"));
  EXPECT_FALSE(std::filesystem::exists(seg(dir.path(), 500, ".index")));
  EXPECT_TRUE(std::filesystem::exists(dir / "queue.meta.tmp")) << "other files in the directory are not the log's";
}

TEST(LogRecovery_test, DumpSegmentReportsABadCrcAndATornTail) {
  TempDir dir;
  write_ten_batches(dir.path());
  const std::string log0 = seg(dir.path(), 0, ".log");
  auto batches = batches_of(log0);
  test::flip_byte(log0, batches[3].position + batches[3].size - 1);
  std::filesystem::resize_file(log0, batches[9].position + 100);
  std::vector<BatchInfo> seen;
  std::vector<std::uint64_t> offsets;
  std::string tail;
  std::uint64_t tail_pos = 0;
  const LogError e = dump_segment(
      log0, true, [&](const BatchInfo& b) { seen.push_back(b); },
      [&](const RecordView& r) { offsets.push_back(r.offset); }, tail, tail_pos);
  ASSERT_FALSE(e) << e.what;
  ASSERT_EQ(seen.size(), 9U);
  EXPECT_FALSE(seen[3].crc_ok);
  EXPECT_TRUE(seen[2].crc_ok && seen[4].crc_ok);
  EXPECT_EQ(offsets.size(), 24U) << "records of the 8 batches whose CRC checks out";
  EXPECT_EQ(tail, "torn batch");
  EXPECT_EQ(tail_pos, batches[9].position);
}

// Mounts a 256 KiB tmpfs on a directory for the life of the guard.
struct TinyTmpfs {
  std::string path;
  std::string error;
  explicit TinyTmpfs(const std::string& p) : path(p) {
    std::filesystem::create_directories(path);
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=256k") != 0)
      error = std::string("mount -t tmpfs -o size=256k tmpfs ") + path + ": " + std::strerror(errno);
  }
  ~TinyTmpfs() {
    if (error.empty()) ::umount2(path.c_str(), MNT_DETACH);
  }
};

TEST(LogRecovery_test, AnAppendThatRunsOutOfSpaceLeavesTheLogIntactAndCanBeRetried) {
  TempDir dir;
  TinyTmpfs fs(dir / "tmpfs");
  ASSERT_TRUE(fs.error.empty()) << "this test needs root to mount a tiny tmpfs: " << fs.error;
  const std::string logdir = fs.path + "/log";
  test::write_file(fs.path + "/filler", std::string(64 * 1024, 'f'));
  std::vector<Rec> kept;
  {
    auto sut = open_ok(logdir, {});
    std::vector<AppendRecord> recs(4);
    const std::string value(1024, 'v');
    for (auto& r : recs) r = {kT0, 0, {}, test::as_bytes(value)};
    LogError err;
    for (int i = 0; i < 1000 && !err; ++i) {
      std::uint64_t base = 0;
      err = sut->append(recs, 0, base);
    }
    ASSERT_EQ(err.code, ENOSPC) << "256 KiB must run out: " << err.what;
    kept = read_all(*sut);
    ASSERT_FALSE(kept.empty());
    EXPECT_EQ(sut->log_end_offset(), kept.size());
    EXPECT_EQ(size_of(seg(logdir, 0, ".log")), sut->size_bytes()) << "the partial batch was cut back";
    std::uint64_t base = 0;
    EXPECT_EQ(sut->append(recs, 0, base).code, ENOSPC) << "still full: the retry fails the same way";
    EXPECT_EQ(sut->log_end_offset(), kept.size());
  }
  RecoveryReport report;
  auto sut = open_ok(logdir, {}, &report);
  ASSERT_TRUE(sut);
  EXPECT_FALSE(report.truncated) << report.reason;
  EXPECT_EQ(read_all(*sut), kept);
  std::filesystem::remove(fs.path + "/filler");
  EXPECT_EQ(append(*sut, {{"", "after the space came back", kT0}}), kept.size());
  ASSERT_FALSE(sut->flush());
  EXPECT_EQ(read_all(*sut).size(), kept.size() + 1);
  sut.reset();  // close the files before the tmpfs goes
}

}  // namespace
}  // namespace shmbus::log
