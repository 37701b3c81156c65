// The segment log in steady state (bus/log/segment_log.hpp): append/read round trips across
// rolled segments, index lookups from a middle offset, time lookups, roll rules, clean reopen,
// retention, delete_segments_below, compaction, truncate_to, epochs and snapshots.
#include "log_fixture.hpp"

#include <cerrno>
#include <filesystem>
#include <map>

namespace shmbus::log {
namespace {

using test::append;
using test::Draft;
using test::open_ok;
using test::read_all;
using test::Rec;
using test::TempDir;

constexpr std::int64_t kMsNs = 1'000'000;
constexpr std::int64_t kT0 = 1'700'000'000'000 * kMsNs;  // a realistic CLOCK_REALTIME in ns

LogConfig small_segments() {
  LogConfig c;
  c.segment_bytes = 1024;
  c.index_interval_bytes = 1;  // an index entry for every batch past the first of each segment
  return c;
}

// Appends n batches of `per` records: value "v<offset>", key "k<offset % keys>", timestamp kT0 + offset ms.
std::vector<Rec> fill(Log& sut, int n, int per, int keys = 1000) {
  std::vector<Rec> expected;
  for (int b = 0; b < n; ++b) {
    std::vector<Draft> drafts;
    const std::uint64_t first = sut.log_end_offset();
    for (int r = 0; r < per; ++r) {
      const std::uint64_t off = first + static_cast<std::uint64_t>(r);
      drafts.push_back({"k" + std::to_string(off % static_cast<std::uint64_t>(keys)), "v" + std::to_string(off),
                        kT0 + static_cast<std::int64_t>(off) * kMsNs, 0});
    }
    const std::uint64_t base = append(sut, drafts);
    EXPECT_EQ(base, first);
    for (std::size_t r = 0; r < drafts.size(); ++r)
      expected.push_back({base + r, drafts[r].ts, drafts[r].key, drafts[r].value, 0, 0});
  }
  return expected;
}

TEST(Log_test, RecordsReadBackInOrderAcrossRolledSegments) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  const auto expected = fill(*sut, 60, 3);
  EXPECT_GE(sut->segments().size(), 4U) << "1 KB segments must have rolled";
  EXPECT_EQ(sut->log_start_offset(), 0U);
  EXPECT_EQ(sut->log_end_offset(), 180U);
  EXPECT_EQ(read_all(*sut), expected);
}

TEST(Log_test, ReadFromAMiddleOffsetStartsExactlyThere) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  const auto expected = fill(*sut, 60, 3);
  for (const std::uint64_t from : {1ULL, 2ULL, 3ULL, 50ULL, 91ULL, 100ULL, 179ULL}) {
    const auto got = read_all(*sut, from);
    ASSERT_EQ(got.size(), expected.size() - from) << "from " << from;
    EXPECT_EQ(got.front(), expected[from]) << "from " << from;
  }
  EXPECT_TRUE(read_all(*sut, 180).empty()) << "reading at the end gives nothing";
}

TEST(Log_test, ReadStopsWhenTheCallbackSaysSoOrAfterMaxBytes) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  fill(*sut, 20, 4);
  int calls = 0;
  ASSERT_FALSE(sut->read(10, 0, [&](const RecordView&) { return ++calls < 5; }));
  EXPECT_EQ(calls, 5);
  const auto limited = read_all(*sut, 0, 1);  // any limit still gives one whole batch
  EXPECT_EQ(limited.size(), 4U);
}

TEST(Log_test, OffsetForTimeFindsTheFirstRecordAtOrAfterTheTimestamp) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  fill(*sut, 50, 2);  // record o has timestamp kT0 + o ms
  EXPECT_EQ(sut->offset_for_time(kT0 - 5 * kMsNs), 0U);
  EXPECT_EQ(sut->offset_for_time(kT0), 0U);
  EXPECT_EQ(sut->offset_for_time(kT0 + 37 * kMsNs), 37U);
  EXPECT_EQ(sut->offset_for_time(kT0 + 37 * kMsNs - 1), 37U);
  EXPECT_EQ(sut->offset_for_time(kT0 + 99 * kMsNs), 99U);
  EXPECT_EQ(sut->offset_for_time(kT0 + 100 * kMsNs), 100U) << "past the newest: log_end_offset()";
}

TEST(Log_test, OffsetForTimeHandlesTimestampsOutOfOrder) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  append(*sut, {{"", "a", kT0 + 50 * kMsNs}, {"", "b", kT0 + 10 * kMsNs}});
  append(*sut, {{"", "c", kT0 + 20 * kMsNs}});
  append(*sut, {{"", "d", kT0 + 60 * kMsNs}});
  EXPECT_EQ(sut->offset_for_time(kT0 + 15 * kMsNs), 0U) << "offset 0 (t=50) is the first at or after t=15";
  EXPECT_EQ(sut->offset_for_time(kT0 + 55 * kMsNs), 3U);
}

TEST(Log_test, RollsBeforeABatchThatWouldPassSegmentBytes) {
  TempDir dir;
  LogConfig cfg;
  cfg.segment_bytes = 4096;
  auto sut = open_ok(dir.path(), cfg);
  const std::string value(1000, 'x');  // 56 + 24 + 1000 = 1080 bytes a batch: 3 fit in 4096
  for (int i = 0; i < 10; ++i) append(*sut, {{"", value, kT0}});
  const auto segs = sut->segments();
  ASSERT_EQ(segs.size(), 4U);
  for (const SegmentInfo& s : segs) EXPECT_LE(s.bytes, cfg.segment_bytes);
  EXPECT_EQ(segs[1].base_offset, 3U);
  EXPECT_EQ(segs[3].base_offset, 9U);
  EXPECT_EQ(segs[3].next_offset, 10U);
}

TEST(Log_test, ABatchLargerThanASegmentGetsASegmentOfItsOwn) {
  TempDir dir;
  LogConfig cfg;
  cfg.segment_bytes = 512;
  auto sut = open_ok(dir.path(), cfg);
  append(*sut, {{"", "small", kT0}});
  append(*sut, {{"", std::string(2000, 'y'), kT0}});
  EXPECT_EQ(sut->segments().size(), 2U);
  EXPECT_EQ(read_all(*sut).back().value.size(), 2000U);
}

TEST(Log_test, RollsWhenABatchIsMoreThanSegmentMsNewerThanTheSegmentsFirst) {
  TempDir dir;
  LogConfig cfg;
  cfg.segment_ms = 1000;
  auto sut = open_ok(dir.path(), cfg);
  append(*sut, {{"", "a", kT0}});
  append(*sut, {{"", "b", kT0 + 1000 * kMsNs}});  // exactly segment_ms: not older yet
  EXPECT_EQ(sut->segments().size(), 1U);
  append(*sut, {{"", "c", kT0 + 1001 * kMsNs}});
  ASSERT_EQ(sut->segments().size(), 2U);
  EXPECT_EQ(sut->segments()[1].base_offset, 2U);
}

TEST(Log_test, ReopenAfterCleanCloseKeepsEverythingAndChecksNothing) {
  TempDir dir;
  std::vector<Rec> expected;
  {
    auto sut = open_ok(dir.path(), small_segments());
    expected = fill(*sut, 40, 3);
  }
  RecoveryReport report;
  auto sut = open_ok(dir.path(), small_segments(), &report);
  EXPECT_FALSE(report.truncated);
  EXPECT_EQ(report.batches_checked, 0U) << "a clean close flushed: nothing past the recovery point";
  EXPECT_EQ(report.indexes_rebuilt, 0U);
  EXPECT_EQ(report.segments, sut->segments().size());
  EXPECT_EQ(sut->recovery_point(), 120U);
  EXPECT_EQ(read_all(*sut), expected);
  EXPECT_EQ(read_all(*sut, 77).front(), expected[77]);
  EXPECT_EQ(append(*sut, {{"", "next", kT0}}), 120U);
}

TEST(Log_test, FlushMovesTheRecoveryPointToTheEnd) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  fill(*sut, 5, 2);
  EXPECT_EQ(sut->recovery_point(), 0U);
  ASSERT_FALSE(sut->flush());
  EXPECT_EQ(sut->recovery_point(), 10U);
  EXPECT_EQ(test::read_text(dir / "recovery-point-offset-checkpoint"), "1\n10\n");
}

TEST(Log_test, AValueInTwoPartsIsOneRecordHoldingBoth) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  const std::string head = "head:", tail = "the message bytes";
  std::vector<AppendRecord> recs(2);
  recs[0] = {kT0, 1, {}, test::as_bytes(head), test::as_bytes(tail)};
  recs[1] = {kT0, 2, test::as_bytes("k"), {}, test::as_bytes(tail)};
  std::uint64_t base = 0;
  ASSERT_FALSE(sut->append(recs, 0, base));
  const auto got = read_all(*sut);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0].value, head + tail);
  EXPECT_EQ(got[1].key, "k");
  EXPECT_EQ(got[1].value, tail);
}

TEST(Log_test, AnEmptyBatchIsRefused) {
  TempDir dir;
  auto sut = open_ok(dir.path(), {});
  std::uint64_t base = 99;
  const LogError e = sut->append({}, 0, base);
  EXPECT_EQ(e.code, EINVAL);
  EXPECT_EQ(sut->log_end_offset(), 0U);
}

TEST(Log_test, RetentionBySizeDeletesOnlyTheOldestSegments) {
  TempDir dir;
  LogConfig cfg;
  cfg.segment_bytes = 4096;
  cfg.retention_bytes = 3 * 3240;  // three full segments of three 1080-byte batches
  auto sut = open_ok(dir.path(), cfg);
  for (int i = 0; i < 20; ++i) append(*sut, {{"", std::string(1000, 'x'), kT0}});
  ASSERT_EQ(sut->segments().size(), 7U);  // 6 full + the active one holding 2 batches
  EXPECT_EQ(sut->apply_retention(kT0), 3U);
  const auto segs = sut->segments();
  ASSERT_EQ(segs.size(), 4U);
  EXPECT_EQ(segs.front().base_offset, 9U) << "the oldest three went";
  EXPECT_EQ(sut->log_start_offset(), 9U);
  EXPECT_GE(sut->size_bytes(), cfg.retention_bytes);
  EXPECT_EQ(read_all(*sut).front().offset, 9U);
  EXPECT_FALSE(std::filesystem::exists(test::seg(dir.path(), 0, ".log")));
  EXPECT_FALSE(std::filesystem::exists(test::seg(dir.path(), 0, ".index")));
}

TEST(Log_test, RetentionByAgeDeletesOldSegmentsButNeverTheActiveOne) {
  TempDir dir;
  LogConfig cfg = small_segments();
  cfg.retention_ms = 60'000;
  auto sut = open_ok(dir.path(), cfg);
  fill(*sut, 30, 3);  // timestamps kT0 .. kT0 + 89 ms
  const auto before = sut->segments();
  ASSERT_GE(before.size(), 3U);
  EXPECT_EQ(sut->apply_retention(kT0 + 60'000 * kMsNs), 0U) << "nothing is a minute old yet";
  // Only segments whose newest record is older than a minute before `now` go.
  const std::int64_t now = before[1].max_timestamp_ns + 60'000 * kMsNs + 1;
  EXPECT_EQ(sut->apply_retention(now), 2U);
  EXPECT_EQ(sut->segments().front().base_offset, before[2].base_offset);
  EXPECT_EQ(sut->apply_retention(kT0 + 3'600'000 * kMsNs), before.size() - 3);
  ASSERT_EQ(sut->segments().size(), 1U) << "the active segment stays, however old";
  EXPECT_EQ(sut->segments().front().base_offset, before.back().base_offset);
  EXPECT_EQ(append(*sut, {{"", "x", kT0}}), 90U);
}

TEST(Log_test, DeleteSegmentsBelowKeepsTheSegmentHoldingTheOffset) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  fill(*sut, 30, 3);
  const auto before = sut->segments();
  ASSERT_GE(before.size(), 4U);
  const std::uint64_t inside_third = before[2].base_offset + 1;
  EXPECT_EQ(sut->delete_segments_below(inside_third), 2U);
  EXPECT_EQ(sut->log_start_offset(), before[2].base_offset);
  EXPECT_EQ(sut->delete_segments_below(UINT64_MAX), before.size() - 3) << "all but the active one";
  EXPECT_EQ(sut->segments().size(), 1U);
}

TEST(Log_test, CompactionKeepsTheNewestValuePerKeyKeylessRecordsAndOffsets) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  for (int round = 0; round < 10; ++round)
    append(*sut, {{"a", "a" + std::to_string(round), kT0}, {"b", "b" + std::to_string(round), kT0},
                  {"", "nokey" + std::to_string(round), kT0}});
  append(*sut, {{"c", std::string(2000, 'c'), kT0}});  // larger than a segment: the active one alone
  const std::uint64_t end = sut->log_end_offset();
  const auto segs_before = sut->segments().size();
  Log::CompactionStats stats;
  ASSERT_FALSE(sut->compact(kT0, 1000, stats));
  EXPECT_LT(stats.records_after, stats.records_before);
  EXPECT_LT(stats.bytes_after, stats.bytes_before);
  EXPECT_EQ(sut->log_end_offset(), end);
  EXPECT_EQ(sut->segments().size(), segs_before);
  std::map<std::string, std::vector<Rec>> by_key;
  for (const Rec& r : read_all(*sut)) by_key[r.key].push_back(r);
  EXPECT_EQ(by_key[""].size(), 10U) << "records without a key are never compacted away";
  ASSERT_EQ(by_key["a"].size(), 1U);
  EXPECT_EQ(by_key["a"][0].value, "a9");
  EXPECT_EQ(by_key["a"][0].offset, 27U) << "offsets are kept";
  ASSERT_EQ(by_key["b"].size(), 1U);
  EXPECT_EQ(by_key["b"][0].offset, 28U);
  EXPECT_EQ(by_key["c"].size(), 1U);
}

TEST(Log_test, CompactedLogReopensWithTheSameContent) {
  TempDir dir;
  std::vector<Rec> after;
  {
    auto sut = open_ok(dir.path(), small_segments());
    for (int round = 0; round < 20; ++round) append(*sut, {{"k" + std::to_string(round % 3), "v", kT0}});
    Log::CompactionStats stats;
    ASSERT_FALSE(sut->compact(kT0, 1000, stats));
    after = read_all(*sut);
  }
  RecoveryReport report;
  auto sut = open_ok(dir.path(), small_segments(), &report);
  EXPECT_FALSE(report.truncated) << report.reason;
  EXPECT_EQ(read_all(*sut), after);
  EXPECT_EQ(sut->log_end_offset(), 20U);
}

TEST(Log_test, CompactionRemovesOldTombstonesButKeepsYoungOnes) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  append(*sut, {{"old", "v1", kT0}, {"young", "v1", kT0}});
  append(*sut, {{"old", "", kT0, kAttrTombstone}});                         // an hour before `now`
  append(*sut, {{"young", "", kT0 + 3'599'000 * kMsNs, kAttrTombstone}});  // a second before `now`
  for (int i = 0; i < 20; ++i) append(*sut, {{"", std::string(100, 'f'), kT0}});  // roll past them
  ASSERT_GE(sut->segments().size(), 2U);
  Log::CompactionStats stats;
  ASSERT_FALSE(sut->compact(kT0 + 3'600'000 * kMsNs, 60'000, stats));
  std::vector<Rec> keyed;
  for (const Rec& r : read_all(*sut))
    if (!r.key.empty()) keyed.push_back(r);
  ASSERT_EQ(keyed.size(), 1U) << "old key and its tombstone gone, young value superseded";
  EXPECT_EQ(keyed[0].key, "young");
  EXPECT_EQ(keyed[0].attributes, kAttrTombstone);
  EXPECT_EQ(keyed[0].offset, 3U);
}

TEST(Log_test, TruncateToInsideABatchEndsTheLogExactlyThere) {
  TempDir dir;
  std::vector<Rec> expected;
  {
    auto sut = open_ok(dir.path(), small_segments());
    expected = fill(*sut, 40, 3);
    ASSERT_FALSE(sut->flush());
    ASSERT_FALSE(sut->truncate_to(50));  // inside batch 48..50: 48 and 49 stay
    EXPECT_EQ(sut->log_end_offset(), 50U);
    ASSERT_FALSE(sut->truncate_to(43));  // inside batch 42..44
    EXPECT_EQ(sut->log_end_offset(), 43U);
    EXPECT_EQ(sut->recovery_point(), 43U);
    expected.resize(43);
    EXPECT_EQ(read_all(*sut), expected);
    EXPECT_EQ(append(*sut, {{"", "after", kT0}}), 43U);
    expected.push_back({43, kT0, "", "after", 0, 0});
  }
  RecoveryReport report;
  auto sut = open_ok(dir.path(), small_segments(), &report);
  EXPECT_FALSE(report.truncated) << report.reason;
  EXPECT_EQ(read_all(*sut), expected);
}

TEST(Log_test, TruncateToTheStartEmptiesTheLogAndPastTheEndIsRefused) {
  TempDir dir;
  auto sut = open_ok(dir.path(), small_segments());
  fill(*sut, 30, 3);
  EXPECT_EQ(sut->truncate_to(91).code, EINVAL);
  ASSERT_FALSE(sut->truncate_to(0));
  EXPECT_EQ(sut->log_end_offset(), 0U);
  EXPECT_EQ(sut->segments().size(), 1U);
  EXPECT_TRUE(read_all(*sut).empty());
}

TEST(Log_test, EpochsPersistAcrossReopenAndTruncationDropsLaterOnes) {
  TempDir dir;
  {
    auto sut = open_ok(dir.path(), small_segments());
    ASSERT_FALSE(sut->assign_epoch(0));
    fill(*sut, 5, 2);
    ASSERT_FALSE(sut->assign_epoch(3));
    fill(*sut, 5, 2);
    ASSERT_FALSE(sut->assign_epoch(3)) << "the same epoch again is a no-op";
    EXPECT_EQ(sut->assign_epoch(2).code, EINVAL) << "an older epoch is refused";
    ASSERT_FALSE(sut->assign_epoch(5));
  }
  using Epochs = std::vector<std::pair<std::uint32_t, std::uint64_t>>;
  auto sut = open_ok(dir.path(), small_segments());
  EXPECT_EQ(sut->epochs(), (Epochs{{0, 0}, {3, 10}, {5, 20}}));
  ASSERT_FALSE(sut->truncate_to(15));
  EXPECT_EQ(sut->epochs(), (Epochs{{0, 0}, {3, 10}}));
  sut.reset();
  sut = open_ok(dir.path(), small_segments());
  EXPECT_EQ(sut->epochs(), (Epochs{{0, 0}, {3, 10}}));
}

TEST(Log_test, RecordsCarryTheEpochTheyWereAppendedIn) {
  TempDir dir;
  auto sut = open_ok(dir.path(), {});
  append(*sut, {{"", "a", kT0}}, 7);
  append(*sut, {{"", "b", kT0}}, 8);
  const auto got = read_all(*sut);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0].epoch, 7U);
  EXPECT_EQ(got[1].epoch, 8U);
}

TEST(Snapshot_test, TheNewestSnapshotIsLoaded) {
  TempDir dir;
  ASSERT_FALSE(write_snapshot(dir.path(), 10, test::as_bytes("ten")));
  ASSERT_FALSE(write_snapshot(dir.path(), 200, test::as_bytes("two hundred")));
  ASSERT_FALSE(write_snapshot(dir.path(), 30, test::as_bytes("thirty")));
  std::uint64_t offset = 0;
  std::vector<std::byte> bytes;
  ASSERT_TRUE(load_latest_snapshot(dir.path(), offset, bytes));
  EXPECT_EQ(offset, 200U);
  EXPECT_EQ(test::as_string(bytes), "two hundred");
}

TEST(Snapshot_test, ACorruptedNewestSnapshotFallsBackToTheOlderOne) {
  TempDir dir;
  ASSERT_FALSE(write_snapshot(dir.path(), 10, test::as_bytes("older")));
  ASSERT_FALSE(write_snapshot(dir.path(), 20, test::as_bytes("newer")));
  test::flip_byte(test::seg(dir.path(), 20, ".snapshot"), 33);
  std::uint64_t offset = 0;
  std::vector<std::byte> bytes;
  ASSERT_TRUE(load_latest_snapshot(dir.path(), offset, bytes));
  EXPECT_EQ(offset, 10U);
  EXPECT_EQ(test::as_string(bytes), "older");
}

TEST(Snapshot_test, NoSnapshotAndTornSnapshotsAreNotLoaded) {
  TempDir dir;
  std::uint64_t offset = 0;
  std::vector<std::byte> bytes;
  EXPECT_FALSE(load_latest_snapshot(dir.path(), offset, bytes));
  test::write_file(test::seg(dir.path(), 5, ".snapshot"), "short");
  EXPECT_FALSE(load_latest_snapshot(dir.path(), offset, bytes));
}

TEST(Snapshot_test, PruneKeepsTheNewestOnes) {
  TempDir dir;
  for (std::uint64_t o : {5, 15, 25, 35}) ASSERT_FALSE(write_snapshot(dir.path(), o, test::as_bytes("s")));
  prune_snapshots(dir.path(), 2);
  EXPECT_FALSE(std::filesystem::exists(test::seg(dir.path(), 5, ".snapshot")));
  EXPECT_FALSE(std::filesystem::exists(test::seg(dir.path(), 15, ".snapshot")));
  EXPECT_TRUE(std::filesystem::exists(test::seg(dir.path(), 25, ".snapshot")));
  EXPECT_TRUE(std::filesystem::exists(test::seg(dir.path(), 35, ".snapshot")));
}

}  // namespace
}  // namespace shmbus::log
