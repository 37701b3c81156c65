// dump_segment: a read-only walk of one .log. It opens the file O_RDONLY and reads only up to the
// size it saw at the start, so a segment another process is appending to can be dumped: a batch
// being written shows up as a torn tail, never as a crash.
#include "log/batch_codec.hpp"
#include "log/batch_reader.hpp"
#include "log/io.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace shmbus::log {

namespace {

BatchInfo info_of(const BatchReader& rd, std::uint64_t pos) {
  const BatchHeader& h = rd.header();
  BatchInfo b;
  b.position = pos;
  b.base_offset = h.base_offset;
  b.last_offset = h.base_offset + h.last_offset_delta;
  b.record_count = h.record_count;
  b.size = h.batch_length;
  b.leader_epoch = h.leader_epoch;
  b.first_timestamp_ns = h.first_timestamp;
  b.max_timestamp_ns = h.max_timestamp;
  b.crc_stored = h.crc;
  b.crc_computed = rd.crc_computed();
  b.crc_ok = rd.crc_ok();
  return b;
}

}  // namespace

LogError dump_segment(const std::string& path, bool records, const std::function<void(const BatchInfo&)>& fn,
                      const std::function<void(const RecordView&)>& rec, std::string& tail, std::uint64_t& tail_position) {
  tail.clear();
  tail_position = 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io::sys_error(errno, "cannot open", path);
  const std::int64_t size = io::file_size(fd);
  if (size < 0) {
    const LogError e = io::sys_error(errno, "cannot stat", path);
    ::close(fd);
    return e;
  }
  std::vector<std::byte> buf;
  BatchReader rd(fd, static_cast<std::uint64_t>(size), buf);
  LogError err;
  std::uint64_t pos = 0;
  for (;;) {
    const BatchReader::Step st = rd.read(pos, true);
    if (st == BatchReader::Step::kEnd) break;
    if (st == BatchReader::Step::kIoError) {
      err = io::sys_error(rd.error(), "cannot read", path);
      break;
    }
    if (st == BatchReader::Step::kNewerVersion || st == BatchReader::Step::kBad) {
      tail = st == BatchReader::Step::kBad ? std::string(rd.why())
                                           : "batch of a newer format version " + std::to_string(rd.header().version);
      break;
    }
    fn(info_of(rd, pos));
    if (records && rd.crc_ok()) {
      const std::string_view why = for_each_record(rd.data(), rd.header(), [&](const RecordView& v) {
        rec(v);
        return true;
      });
      if (!why.empty()) {
        tail = std::string(why);
        break;
      }
    }
    pos += rd.header().batch_length;
  }
  tail_position = pos;
  ::close(fd);
  return err;
}

}  // namespace shmbus::log
