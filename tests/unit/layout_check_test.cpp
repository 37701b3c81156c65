// Attach-time validation of mapped regions: ring::check_topic and detail::check_region return a
// non-empty reason for anything unusable and "" for a good mapping.
#include "client/connection_impl.hpp"
#include "layout/region_layout.hpp"
#include "ring_fixture.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <string_view>

namespace shmbus {
namespace {

using test::RingMemory;

TEST(CheckTopic_test, AcceptsAWellFormedTopic) {
  RingMemory sut(16, 100);
  EXPECT_EQ(ring::check_topic(sut.base(), sut.size()), "");
  EXPECT_EQ(ring::check_topic(sut.base(), sut.size() + 4096), "") << "a mapping may be page-rounded";
}

TEST(CheckTopic_test, RejectsWrongMagic) {
  RingMemory sut(16, 100);
  sut.header().magic = layout::kRegionMagic;  // a control region is not a topic
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "");
}

TEST(CheckTopic_test, RejectsLayoutVersionZero) {
  RingMemory sut(16, 100);
  sut.header().layout_version.store(0);
  const auto err = ring::check_topic(sut.base(), sut.size());
  EXPECT_NE(err, "");
  EXPECT_NE(err.find("not initialised"), std::string_view::npos) << err;
}

TEST(CheckTopic_test, RejectsOtherLayoutVersion) {
  RingMemory sut(16, 100);
  sut.header().layout_version.store(layout::kLayoutVersion + 1);
  const auto err = ring::check_topic(sut.base(), sut.size());
  EXPECT_NE(err.find("version"), std::string_view::npos) << err;
}

TEST(CheckTopic_test, RejectsTruncatedMapping) {
  RingMemory sut(16, 100);
  EXPECT_NE(ring::check_topic(sut.base(), sut.size() - 1), "");
  EXPECT_NE(ring::check_topic(sut.base(), sizeof(layout::TopicHeader) - 1), "");
  EXPECT_NE(ring::check_topic(sut.base(), 0), "");
}

TEST(CheckTopic_test, RejectsInconsistentGeometry) {
  RingMemory sut(16, 100);
  sut.header().slot_count = 12;  // not a power of two
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "");
  sut.header().slot_count = 16;
  sut.header().slot_size = 64;  // too small for max_payload 100
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "");
  sut.header().slot_size = layout::slot_size_for(100);
  sut.header().max_subscribers = layout::kMaxSubscribers + 1;
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "");
  sut.header().max_subscribers = layout::kMaxSubscribers;
  sut.header().max_producers = layout::kMaxProducers + 1;
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "");
  sut.header().max_producers = layout::kMaxProducers;
  ASSERT_EQ(ring::check_topic(sut.base(), sut.size()), "") << "precondition: every field restored";
  sut.header().total_length -= 64;
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "");
}

// max_payload near 4 GiB makes slot_size_for() wrap to 0 in its uint32_t cast, so slot_size 0
// "matches" and total_length shrinks to the header size: the geometry check must still refuse it
// (a reader would otherwise trust max_payload for its memcpy bound).
TEST(CheckTopic_test, RejectsMaxPayloadAboveTheHardCeiling) {
  RingMemory sut(16, 100);
  auto& h = sut.header();
  h.max_payload = 0xFFFF'FFC0U;
  h.slot_size = layout::slot_size_for(h.max_payload);
  h.total_length = layout::topic_size(h.slot_count, h.max_payload, h.max_subscribers, h.max_producers);
  ASSERT_EQ(h.slot_size, 0U) << "precondition: the size computation wraps";
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "")
      << "a topic whose max_payload exceeds layout::kMaxPayload (" << layout::kMaxPayload << ") was accepted";
}

// The producer table sits between the subscriber table and the slots: 128 bytes per producer.
TEST(CheckTopic_test, TotalLengthMustIncludeTheProducerTable) {
  RingMemory sut(16, 100, layout::kMaxSubscribers, 4);
  auto& h = sut.header();
  EXPECT_EQ(h.total_length, layout::topic_size(16, 100, layout::kMaxSubscribers, 0) + 4 * sizeof(layout::ProducerEntry));
  ASSERT_EQ(ring::check_topic(sut.base(), sut.size()), "");
  EXPECT_EQ(reinterpret_cast<std::byte*>(sut.ring().slot(0)) - static_cast<std::byte*>(sut.base()),
            static_cast<std::ptrdiff_t>(layout::slots_offset(layout::kMaxSubscribers, 4)));
  EXPECT_EQ(reinterpret_cast<std::byte*>(sut.ring().producer(0)) - static_cast<std::byte*>(sut.base()),
            static_cast<std::ptrdiff_t>(layout::producers_offset(layout::kMaxSubscribers)));

  h.max_producers = 5;  // claims one more entry than the length accounts for
  EXPECT_NE(ring::check_topic(sut.base(), sut.size()), "");
}

// Writes a self-consistent geometry (slot_size and total_length derived from the fields) so that
// only the bound under test can make check_topic refuse it. check_topic reads the header alone,
// so a mapped length as large as total_length is claimed without allocating it.
std::string_view check_geometry(RingMemory& mem, std::uint32_t slot_count, std::uint32_t max_payload) {
  auto& h = mem.header();
  h.slot_count = slot_count;
  h.max_payload = max_payload;
  h.slot_size = layout::slot_size_for(max_payload);
  h.total_length = layout::topic_size(slot_count, max_payload, h.max_subscribers, h.max_producers);
  return ring::check_topic(mem.base(), static_cast<std::size_t>(h.total_length));
}

TEST(CheckTopic_test, RejectsZeroMaxPayload) {
  RingMemory sut(16, 100);
  EXPECT_NE(check_geometry(sut, 16, 0), "") << "a topic with max_payload 0 was accepted";
}

TEST(CheckTopic_test, AcceptsMaxPayloadAtTheCeilingAndRejectsOneByteMore) {
  RingMemory sut(16, 100);
  EXPECT_EQ(check_geometry(sut, 16, layout::kMaxPayload), "");
  EXPECT_NE(check_geometry(sut, 16, layout::kMaxPayload + 1), "")
      << "max_payload " << layout::kMaxPayload + 1 << " is above layout::kMaxPayload";
}

TEST(CheckTopic_test, AcceptsSlotCountAtTheCeilingAndRejectsTheNextPowerOfTwo) {
  RingMemory sut(16, 100);
  EXPECT_EQ(check_geometry(sut, layout::kMaxSlots, 100), "");
  EXPECT_NE(check_geometry(sut, layout::kMaxSlots * 2, 100), "")
      << "slot_count " << layout::kMaxSlots * 2 << " is above layout::kMaxSlots";
}

class RegionMemory {
 public:
  explicit RegionMemory(std::uint32_t max_clients) : size_(layout::region_size(max_clients)) {
    base_ = std::aligned_alloc(layout::kCacheLine, size_);
    std::memset(base_, 0, size_);
    auto& h = header();
    h.magic = layout::kRegionMagic;
    h.header_size = sizeof(layout::RegionHeader);
    h.total_length = size_;
    h.max_clients = max_clients;
    h.layout_version.store(layout::kLayoutVersion, std::memory_order_release);
  }
  ~RegionMemory() { std::free(base_); }
  RegionMemory(const RegionMemory&) = delete;
  RegionMemory& operator=(const RegionMemory&) = delete;
  layout::RegionHeader& header() { return *static_cast<layout::RegionHeader*>(base_); }
  void* base() const { return base_; }
  std::size_t size() const { return size_; }

 private:
  std::size_t size_;
  void* base_;
};

TEST(CheckRegion_test, AcceptsAWellFormedRegion) {
  RegionMemory sut(8);
  EXPECT_EQ(detail::check_region(sut.base(), sut.size()), "");
}

TEST(CheckRegion_test, RejectsWrongMagic) {
  RegionMemory sut(8);
  sut.header().magic = layout::kTopicMagic;
  EXPECT_NE(detail::check_region(sut.base(), sut.size()), "");
}

TEST(CheckRegion_test, RejectsLayoutVersionZero) {
  RegionMemory sut(8);
  sut.header().layout_version.store(0);
  EXPECT_NE(detail::check_region(sut.base(), sut.size()), "");
}

TEST(CheckRegion_test, RejectsOtherLayoutVersionAndSaysWhatToDo) {
  RegionMemory sut(8);
  sut.header().layout_version.store(99);
  const auto err = detail::check_region(sut.base(), sut.size());
  EXPECT_NE(err.find("99"), std::string::npos) << err;
  EXPECT_NE(err.find("same release"), std::string::npos) << err;
}

TEST(CheckRegion_test, RejectsTruncatedMapping) {
  RegionMemory sut(8);
  EXPECT_NE(detail::check_region(sut.base(), sut.size() - 1), "");
  EXPECT_NE(detail::check_region(sut.base(), sizeof(layout::RegionHeader) - 1), "");
}

TEST(CheckRegion_test, RejectsLengthInconsistentWithClientCount) {
  RegionMemory sut(8);
  sut.header().max_clients = 9;
  EXPECT_NE(detail::check_region(sut.base(), sut.size()), "");
}

}  // namespace
}  // namespace shmbus
