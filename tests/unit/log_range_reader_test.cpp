// LogRangeReader (bus/log/log_reader.hpp): ranges of whole batches of a log another owner
// appends to, for sendfile to a follower. Below/at the writer's published end, one segment per
// range, whole batches only, steady-state continuation, and a writer that deletes, compacts,
// truncates or starts its log over under the reader.
#include "log_replication_fixture.hpp"

namespace shmbus::log {
namespace {

using test::append;
using test::fill_epoch;
using test::kT0;
using test::log_bytes;
using test::open_ok;
using test::range_bytes;
using test::segment_bases;
using test::split_batches;
using test::TempDir;
using Bytes = std::vector<std::byte>;
using Status = LogRangeReader::Status;

LogConfig small_segments() {
  LogConfig c;
  c.segment_bytes = 1024;
  c.index_interval_bytes = 1;
  return c;
}

Bytes slice(const Bytes& all, std::size_t from, std::size_t n) {
  return {all.begin() + static_cast<std::ptrdiff_t>(from), all.begin() + static_cast<std::ptrdiff_t>(from + n)};
}

void append_file(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

TEST(LogRangeReader_test, HandsOutWholeBatchesBelowTheWritersEnd) {
  TempDir dir;
  auto log = open_ok(dir.path(), {});
  fill_epoch(*log, 10, 3, 1);  // batches 0..2, 3..5, ..., 27..29
  const auto b = split_batches(log_bytes(dir.path()));
  LogRangeReader reader(dir.path());
  LogRangeReader::Range r;
  ASSERT_EQ(reader.read(0, 10, 1 << 20, r), Status::kOk) << reader.error();
  EXPECT_EQ(r.position, 0U);
  EXPECT_EQ(r.first_offset, 0U);
  EXPECT_EQ(r.next_offset, 9U) << "9..11 is not wholly below 10";
  EXPECT_EQ(r.length, 3 * b[0].size());
  EXPECT_EQ(reader.read(9, 10, 1 << 20, r), Status::kNothing);
  ASSERT_EQ(reader.read(9, 12, 1 << 20, r), Status::kOk);
  EXPECT_EQ(r.first_offset, 9U);
  EXPECT_EQ(r.next_offset, 12U);
  EXPECT_EQ(range_bytes(r), b[3]);
  ASSERT_EQ(reader.read(4, 30, 1, r), Status::kOk) << "max_bytes below one batch still gives one";
  EXPECT_EQ(r.first_offset, 3U) << "the batch holding 4";
  EXPECT_EQ(r.next_offset, 6U);
  EXPECT_EQ(r.position, b[0].size());
  ASSERT_EQ(reader.read(6, 30, static_cast<std::uint32_t>(b[2].size() + b[3].size() + 1), r), Status::kOk);
  EXPECT_EQ(r.next_offset, 12U) << "two batches fit, the third would pass max_bytes";
  EXPECT_EQ(reader.read(30, 30, 1 << 20, r), Status::kNothing) << "from >= below";
  EXPECT_EQ(reader.read(30, 40, 1 << 20, r), Status::kNothing) << "not written yet";
  EXPECT_EQ(reader.read(31, 40, 1 << 20, r), Status::kNothing);
  LogRangeReader absent(dir / "no-such-log");
  EXPECT_EQ(absent.read(0, 10, 1 << 20, r), Status::kNothing);
}

TEST(LogRangeReader_test, ARangeNeverCrossesASegment) {
  TempDir dir;
  auto log = open_ok(dir.path(), small_segments());
  fill_epoch(*log, 20, 3, 1, 40);
  const auto segs = log->segments();
  ASSERT_GE(segs.size(), 3U);
  LogRangeReader reader(dir.path());
  LogRangeReader::Range r;
  std::uint64_t from = 0;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    ASSERT_EQ(reader.read(from, log->log_end_offset(), 1 << 20, r), Status::kOk) << reader.error();
    EXPECT_EQ(r.position, 0U) << i;
    EXPECT_EQ(r.first_offset, segs[i].base_offset) << i;
    EXPECT_EQ(r.length, segs[i].bytes) << i;
    EXPECT_EQ(r.next_offset, segs[i].next_offset) << i;
    EXPECT_EQ(range_bytes(r), test::file_bytes(test::seg(dir.path(), segs[i].base_offset, ".log"))) << i;
    from = r.next_offset;
  }
  EXPECT_EQ(reader.read(from, log->log_end_offset(), 1 << 20, r), Status::kNothing);
}

TEST(LogRangeReader_test, BelowTheStartAfterDeletionButASteadyReaderKeepsItsFile) {
  TempDir dir;
  auto log = open_ok(dir.path(), small_segments());
  fill_epoch(*log, 20, 3, 1, 40);
  const std::uint64_t end = log->log_end_offset();
  LogRangeReader fresh(dir.path()), steady(dir.path());
  LogRangeReader::Range r;
  ASSERT_EQ(fresh.read(0, end, 1 << 20, r), Status::kOk);
  EXPECT_EQ(fresh.start_offset(), 0U);
  ASSERT_EQ(steady.read(0, end, 1, r), Status::kOk);
  ASSERT_EQ(r.next_offset, 3U);
  const auto segs = log->segments();
  ASSERT_EQ(log->delete_segments_below(segs[2].base_offset), 2U);
  EXPECT_EQ(fresh.read(0, end, 1 << 20, r), Status::kBelowStart);
  EXPECT_EQ(fresh.start_offset(), segs[2].base_offset);
  EXPECT_EQ(fresh.read(segs[1].base_offset + 1, end, 1 << 20, r), Status::kBelowStart);
  ASSERT_EQ(fresh.read(segs[2].base_offset, end, 1 << 20, r), Status::kOk);
  EXPECT_EQ(r.first_offset, segs[2].base_offset);
  // The steady reader's segment is deleted, but the fd it holds still reads it to its end; the
  // next segment is gone too, so then it is below the start.
  ASSERT_EQ(steady.read(3, end, 1 << 20, r), Status::kOk) << steady.error();
  EXPECT_EQ(r.first_offset, 3U);
  EXPECT_EQ(r.next_offset, segs[0].next_offset);
  EXPECT_EQ(r.position + r.length, segs[0].bytes);
  EXPECT_EQ(steady.read(r.next_offset, end, 1 << 20, r), Status::kBelowStart);
  EXPECT_EQ(steady.start_offset(), segs[2].base_offset);
}

TEST(LogRangeReader_test, OnlyBatchesWhollyInTheFileAreHandedOut) {
  TempDir src, dir;
  {
    auto log = open_ok(src.path(), {});
    fill_epoch(*log, 4, 3, 1);
  }
  const auto b = split_batches(log_bytes(src.path()));
  const std::string path = test::seg(dir.path(), 0, ".log");
  append_file(path, test::concat({b[0], b[1]}));
  append_file(path, slice(b[2], 0, b[2].size() - 1));  // a batch being written
  LogRangeReader reader(dir.path());
  LogRangeReader::Range r;
  ASSERT_EQ(reader.read(0, UINT64_MAX, 1 << 20, r), Status::kOk) << reader.error();
  EXPECT_EQ(r.next_offset, 6U);
  EXPECT_EQ(reader.read(6, UINT64_MAX, 1 << 20, r), Status::kNothing);
  append_file(path, slice(b[2], b[2].size() - 1, 1));
  append_file(path, slice(b[3], 0, 30));  // half a header
  ASSERT_EQ(reader.read(6, UINT64_MAX, 1 << 20, r), Status::kOk);
  EXPECT_EQ(r.position, b[0].size() + b[1].size());
  EXPECT_EQ(range_bytes(r), b[2]);
  EXPECT_EQ(reader.read(9, UINT64_MAX, 1 << 20, r), Status::kNothing);
}

TEST(LogRangeReader_test, SteadyStateContinuesWithoutLookingBackWhileTheWriterAppends) {
  TempDir ld, fd;
  LogConfig cfg;
  cfg.segment_bytes = 2048;
  cfg.index_interval_bytes = 1 << 20;  // no index: any other start scans from position 0
  auto leader = open_ok(ld.path(), cfg);
  LogConfig fcfg;
  fcfg.segment_bytes = 1500;
  auto follower = open_ok(fd.path(), fcfg);
  LogRangeReader reader(ld.path());
  LogRangeReader::Range r, prev;
  int new_segments = 0;
  for (int i = 0; i < 60; ++i) {
    fill_epoch(*leader, 1, 1 + i % 4, 1 + static_cast<std::uint32_t>(i / 20), 30);
    const std::uint64_t from = follower->log_end_offset();
    ASSERT_EQ(reader.read(from, leader->log_end_offset(), 1 << 20, r), Status::kOk) << i << reader.error();
    EXPECT_EQ(r.first_offset, from) << i;
    EXPECT_EQ(r.next_offset, leader->log_end_offset()) << i;
    if (i > 0 && r.position == 0) {
      ++new_segments;
      EXPECT_EQ(segment_bases(ld.path()).back(), from) << i << ": moved to the new segment";
    } else if (i > 0) {
      EXPECT_EQ(r.position, prev.position + prev.length) << i << ": right after the last range";
    }
    prev = r;
    std::uint64_t n = 0;
    ASSERT_FALSE(follower->append_raw(range_bytes(r), n));
    EXPECT_EQ(reader.read(follower->log_end_offset(), leader->log_end_offset(), 1 << 20, r), Status::kNothing);
    if (i % 20 == 5) {  // wreck the active segment's first header: only a scan from 0 would see it
      test::flip_byte(test::seg(ld.path(), segment_bases(ld.path()).back(), ".log"), 0);
      LogRangeReader scanning(ld.path());
      EXPECT_EQ(scanning.read(from, leader->log_end_offset(), 1 << 20, r), Status::kError);
      EXPECT_NE(scanning.error().find("corrupt batch header at position 0"), std::string::npos) << scanning.error();
    }
  }
  EXPECT_GT(new_segments, 1);
}

TEST(LogRangeReader_test, AWrongIndexFallsBackToAScan) {
  TempDir dir;
  LogConfig cfg;
  cfg.index_interval_bytes = 1;  // an entry for every batch but the first
  auto log = open_ok(dir.path(), cfg);
  fill_epoch(*log, 12, 3, 1);
  const auto b = split_batches(log_bytes(dir.path()));
  const std::string index = test::seg(dir.path(), 0, ".index");
  const auto good = test::file_bytes(index);
  ASSERT_EQ(good.size(), 11 * sizeof(IndexEntry));
  const auto check = [&](const char* what) {
    LogRangeReader reader(dir.path());
    LogRangeReader::Range r;
    for (const std::uint64_t from : {0ULL, 4ULL, 20ULL, 35ULL}) {
      ASSERT_EQ(reader.read(from, 36, 1, r), Status::kOk) << what << " from " << from << ": " << reader.error();
      EXPECT_EQ(r.first_offset, from / 3 * 3) << what << " from " << from;
      EXPECT_EQ(range_bytes(r), b[from / 3]) << what << " from " << from;
    }
  };
  check("the real index");
  std::vector<IndexEntry> shifted(11);
  std::memcpy(shifted.data(), good.data(), good.size());
  for (IndexEntry& e : shifted) e.position += 7;  // inside the batches
  test::write_file(index, {reinterpret_cast<const char*>(shifted.data()), good.size()});
  check("positions off by 7");
  for (IndexEntry& e : shifted) e.position = 1ULL << 40;
  test::write_file(index, {reinterpret_cast<const char*>(shifted.data()), good.size()});
  check("positions past the file");
  test::write_file(index, "garbage of a length that is no multiple of sixteen");
  check("garbage");
  std::filesystem::remove(index);
  check("no index");
}

TEST(LogRangeReader_test, ACompactedSegmentServesTheSteadyReaderFromItsOldFileAndNewReadsFromTheNew) {
  TempDir ld, fd;
  auto leader = open_ok(ld.path(), small_segments());
  for (int round = 0; round < 40; ++round) append(*leader, {{"k" + std::to_string(round % 3), std::string(60, 'v'), kT0}});
  const auto old_first = test::file_bytes(test::seg(ld.path(), 0, ".log"));
  LogRangeReader steady(ld.path());
  LogRangeReader::Range r;
  ASSERT_EQ(steady.read(0, leader->log_end_offset(), 1, r), Status::kOk);
  ASSERT_EQ(r.next_offset, 1U);
  Log::CompactionStats stats;
  ASSERT_FALSE(leader->compact(kT0, 1000, stats));
  const auto new_first = test::file_bytes(test::seg(ld.path(), 0, ".log"));
  ASSERT_LT(new_first.size(), old_first.size()) << "segment 0 was rewritten and renamed over";
  ASSERT_EQ(steady.read(1, leader->log_end_offset(), 1 << 20, r), Status::kOk) << steady.error();
  EXPECT_EQ(r.first_offset, 1U) << "the old file still has offset 1";
  EXPECT_EQ(range_bytes(r), slice(old_first, r.position, r.length));
  LogRangeReader fresh(ld.path());
  ASSERT_EQ(fresh.read(0, leader->log_end_offset(), 1 << 20, r), Status::kOk);
  EXPECT_EQ(range_bytes(r), new_first);
  // A follower of the compacted leader gets the same log.
  auto follower = open_ok(fd.path(), {});
  test::replicate(fresh, *leader, *follower, 1 << 20);
  EXPECT_EQ(log_bytes(fd.path()), log_bytes(ld.path()));
}

TEST(LogRangeReader_test, AWriterThatTruncatesOrStartsOverIsFollowed) {
  TempDir dir;
  auto log = open_ok(dir.path(), {});
  fill_epoch(*log, 10, 3, 1);
  LogRangeReader reader(dir.path());
  LogRangeReader::Range r;
  ASSERT_EQ(reader.read(0, 30, 1 << 20, r), Status::kOk);
  ASSERT_EQ(r.next_offset, 30U);
  ASSERT_FALSE(log->truncate_to(15));
  fill_epoch(*log, 4, 5, 2);  // 15..19, ..., 30..34: other sizes, other positions
  ASSERT_EQ(reader.read(30, 35, 1 << 20, r), Status::kOk) << reader.error();
  EXPECT_EQ(r.first_offset, 30U);
  EXPECT_EQ(range_bytes(r), split_batches(log_bytes(dir.path())).back());
  ASSERT_FALSE(log->reset_to(0));  // the same file name, a new file
  fill_epoch(*log, 2, 4, 3);
  EXPECT_EQ(reader.read(35, 40, 1 << 20, r), Status::kNothing) << reader.error();
  ASSERT_EQ(reader.read(0, 8, 1 << 20, r), Status::kOk) << reader.error();
  EXPECT_EQ(range_bytes(r), log_bytes(dir.path()));
  ASSERT_FALSE(log->reset_to(100));
  fill_epoch(*log, 1, 2, 4);
  EXPECT_EQ(reader.read(8, 102, 1 << 20, r), Status::kBelowStart) << "the log moved on past 8";
  EXPECT_EQ(reader.start_offset(), 100U);
  ASSERT_EQ(reader.read(100, 102, 1 << 20, r), Status::kOk) << reader.error();
  EXPECT_EQ(range_bytes(r), log_bytes(dir.path()));
}

}  // namespace
}  // namespace shmbus::log
