// Attach-time validation of mapped regions: ring::check_topic, ring::check_queue and
// detail::check_region return a non-empty reason for anything unusable and "" for a good mapping.
// Also the pieces of queue layout version 3 (persistence) that the attach check and the geometry
// rely on: the persist ring's place among the index rings, the ACKED state, the durable word.
#include "client/connection_impl.hpp"
#include "layout/queue_layout.hpp"
#include "layout/region_layout.hpp"
#include "ring/queue_ring.hpp"
#include "ring_fixture.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
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

// A queue laid out by the daemon's own init() in plain process memory.
class QueueLayoutMemory {
 public:
  QueueLayoutMemory(std::uint32_t slots, std::uint32_t max_payload)
      : size_(layout::queue_geometry(slots, max_payload).total),
        base_(std::aligned_alloc(layout::kHotBlock, layout::align_up(size_, layout::kHotBlock)), std::free) {
    std::memset(base_.get(), 0, size_);
    ring::QueueConfig c;
    c.slot_count = slots;
    c.max_payload = max_payload;
    c.dest_id = 1;
    c.name = "layout";
    ok_ = ring::QueueRing::init(base_.get(), size_, c);
  }
  bool ok() const { return ok_; }
  void* base() const { return base_.get(); }
  std::size_t size() const { return size_; }
  layout::QueueHeader& header() const { return *static_cast<layout::QueueHeader*>(base_.get()); }
  ring::QueueRing ring() const { return ring::QueueRing(base_.get()); }
  std::uint64_t offset_of(const void* p) const {
    return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - static_cast<const std::byte*>(base_.get()));
  }

 private:
  std::size_t size_;
  std::unique_ptr<void, void (*)(void*)> base_;
  bool ok_ = false;
};

// Layout v3: free, ready[0..9], agent, persist -- thirteen rings one stride apart, then the FIFOs.
TEST(QueueLayout_test, GeometryPutsThePersistRingRightAfterTheAgentRingAndTheFifosAfterIt) {
  EXPECT_EQ(layout::kQueueIndexRings, 13U);
  EXPECT_EQ(layout::kPersistRingIndex, layout::kQueueIndexRings - 1) << "the persist ring is the last index ring";
  for (const std::uint32_t slots : {layout::kMinQueueSlots, 8U, 4096U, layout::kMaxQueueSlots}) {
    for (const std::uint32_t payload : {1U, 64U, 4096U}) {
      const auto g = layout::queue_geometry(slots, payload);
      SCOPED_TRACE(::testing::Message() << slots << " slots x " << payload << " bytes");
      EXPECT_EQ(g.producers_off, sizeof(layout::QueueHeader));
      EXPECT_EQ(g.producers_off, 1280U);
      EXPECT_EQ(g.agent_ring_off, g.ready_rings_off + layout::kPriorities * g.ready_ring_stride);
      EXPECT_EQ(g.persist_ring_off, g.agent_ring_off + g.ready_ring_stride);
      EXPECT_EQ(g.persist_ring_off, g.free_ring_off + std::uint64_t{layout::kPersistRingIndex} * g.ready_ring_stride);
      EXPECT_EQ(g.fifos_off, g.persist_ring_off + g.ready_ring_stride);
      EXPECT_EQ(g.persist_ring_off % layout::kHotBlock, 0U);
      EXPECT_GE(g.ready_ring_stride, layout::index_ring_size(g.ring_capacity)) << "the persist ring fits its stride";
      EXPECT_GE(g.slots_off, g.fifos_off + std::uint64_t{layout::kQueueMaxConsumers} * g.window * sizeof(layout::FifoEntry));
    }
  }
}

// The default queue (4096 x 4096 B) is the one docs/queues.md and docs/cli.md quote.
TEST(QueueLayout_test, TheDefaultQueueHasTheSizeTheDocsQuote) {
  const auto g = layout::queue_geometry(4096, 4096);
  EXPECT_EQ(g.persist_ring_off, 1636096U);
  EXPECT_EQ(g.fifos_off, 1767552U);
  EXPECT_EQ(g.slots_off, 5961856U);
  EXPECT_EQ(g.total, 23001216U);
}

TEST(QueueLayout_test, InitRecordsThePersistRingAndIndexRingOfItsIndexIsIt) {
  QueueLayoutMemory sut(8, 64);
  ASSERT_TRUE(sut.ok());
  const auto g = layout::queue_geometry(8, 64);
  const auto q = sut.ring();

  EXPECT_EQ(sut.header().persist_ring_off, g.persist_ring_off);
  EXPECT_EQ(&q.index_ring(layout::kPersistRingIndex).header(), &q.persist_ring().header());
  EXPECT_EQ(&q.index_ring(layout::kPersistRingIndex - 1).header(), &q.agent_ring().header());
  EXPECT_EQ(sut.offset_of(&q.persist_ring().header()), g.persist_ring_off);
  EXPECT_EQ(q.persist_ring().capacity(), 16U) << "every index ring holds 2N";
  EXPECT_EQ(sut.offset_of(q.fifo(0)), g.fifos_off) << "the FIFOs start right after the persist ring";
  EXPECT_EQ(sut.header().persist_error.load(), 0U);
  EXPECT_EQ(sut.header().persist_push.owner, layout::kDaemonOwner);
  EXPECT_EQ(sut.header().persist_push.state.load(), static_cast<std::uint32_t>(layout::ClaimRole::Pusher));
  EXPECT_EQ(sut.header().persist_pop.owner, layout::kDaemonOwner);
  EXPECT_EQ(sut.header().persist_pop.state.load(), static_cast<std::uint32_t>(layout::ClaimRole::Popper));

  // A value pushed to the persist ring comes out of index_ring(kPersistRingIndex) and no other.
  ring::QueueRing::push(q.persist_ring(), 5, sut.header().persist_push);
  std::uint32_t v = 0;
  EXPECT_EQ(q.agent_ring().try_pop(v, sut.header().daemon_pop), ring::IndexStatus::Empty);
  ASSERT_EQ(q.index_ring(layout::kPersistRingIndex).try_pop(v, sut.header().persist_pop), ring::IndexStatus::Ok);
  EXPECT_EQ(v, 5U);
}

TEST(QueueLayout_test, CheckQueueRefusesAnInconsistentPersistRingOffset) {
  QueueLayoutMemory sut(8, 64);
  ASSERT_TRUE(sut.ok());
  auto& h = sut.header();
  ASSERT_EQ(ring::check_queue(sut.base(), sut.size()), "") << "precondition: init's queue is valid";
  const std::uint64_t good = h.persist_ring_off;

  h.persist_ring_off = h.agent_ring_off;  // two rings in one place
  EXPECT_EQ(ring::check_queue(sut.base(), sut.size()), "queue geometry is inconsistent");
  h.persist_ring_off = h.fifos_off;  // on top of the FIFOs
  EXPECT_EQ(ring::check_queue(sut.base(), sut.size()), "queue geometry is inconsistent");
  h.persist_ring_off = 0;  // a version-2 header, where these bytes were padding
  EXPECT_EQ(ring::check_queue(sut.base(), sut.size()), "queue geometry is inconsistent");
  h.persist_ring_off = good;
  EXPECT_EQ(ring::check_queue(sut.base(), sut.size()), "");
}

TEST(QueueLayout_test, CheckQueueRefusesAPersistRingOfTheWrongCapacity) {
  QueueLayoutMemory sut(8, 64);
  ASSERT_TRUE(sut.ok());
  auto& rh = sut.ring().persist_ring().header();
  rh.capacity = 8;  // N, not 2N: a self-consistent ring, just the wrong size for this queue
  rh.mask = 7;
  EXPECT_EQ(ring::check_queue(sut.base(), sut.size()), "queue index ring has the wrong capacity");
  rh.capacity = 12;  // not a power of two
  EXPECT_NE(ring::check_queue(sut.base(), sut.size()), "");
}

TEST(QueueLayout_test, CheckQueueRefusesAnOlderLayoutVersion) {
  QueueLayoutMemory sut(8, 64);
  ASSERT_TRUE(sut.ok());
  EXPECT_EQ(layout::kLayoutVersion, 3U) << "docs/shared-memory.md and docs/queues.md describe version 3";
  sut.header().layout_version.store(2);  // no persist ring, no ACKED: a v2 peer would misread the slots
  EXPECT_EQ(ring::check_queue(sut.base(), sut.size()), "queue layout version mismatch");
}

// ACKED is the eighth state; it must fit the state word's 4 bits without touching owner or count.
TEST(QueueLayout_test, AckedStateRoundTripsThroughTheStateWord) {
  const std::uint64_t delivered = layout::QWord::next(0, layout::QState::Delivered, 3, 2);
  const std::uint64_t acked = layout::QWord::next(delivered, layout::QState::Acked, 0, 0);
  EXPECT_EQ(static_cast<std::uint64_t>(layout::QState::Acked), 7U);
  EXPECT_EQ(layout::QWord::state(acked), layout::QState::Acked);
  EXPECT_EQ(layout::QWord::owner(acked), 0U);
  EXPECT_EQ(layout::QWord::count(acked), 0U);
  EXPECT_EQ(layout::QWord::gen(acked), layout::QWord::gen(delivered) + 1) << "every transition bumps the generation";
  EXPECT_EQ(layout::QWord::state(layout::QWord::next(acked, layout::QState::Free, 0, 0)), layout::QState::Free);
}

// The slot flags a PERSISTENT send sets are distinct bits from the older ones.
TEST(QueueLayout_test, PersistenceSlotFlagsAreDistinctBits) {
  const std::uint8_t all[] = {layout::kQFlagRedelivered, layout::kQFlagFramed, layout::kQFlagPersistent,
                              layout::kQFlagDurableWait};
  std::uint8_t seen = 0;
  for (const std::uint8_t f : all) {
    EXPECT_EQ(f & (f - 1), 0) << "flag " << int{f} << " is one bit";
    EXPECT_EQ(seen & f, 0) << "flag " << int{f} << " is used twice";
    seen = static_cast<std::uint8_t>(seen | f);
  }
  EXPECT_EQ(layout::kQFlagPersistent, 4);
  EXPECT_EQ(layout::kQFlagDurableWait, 8);
}

// QueueProducerEntry::durable: producer id (24 bits) above the sequence (40 bits), so a reused
// entry never shows its new producer the old producer's durability.
TEST(QueueLayout_test, DurableWordPacksTheProducerIdAboveTheSequence) {
  const std::uint64_t w = layout::durable_word(0x123456, 42);
  EXPECT_EQ(w >> layout::kDurableSeqBits, 0x123456U);
  EXPECT_EQ(w & ((1ULL << layout::kDurableSeqBits) - 1), 42U);
  EXPECT_NE(layout::durable_word(7, 42), layout::durable_word(8, 42)) << "another producer on the same entry";
  EXPECT_EQ(layout::durable_word(0x1123456, 1) >> layout::kDurableSeqBits, 0x123456U) << "the id keeps 24 bits";
  EXPECT_EQ(layout::durable_word(1, (1ULL << 40) + 5) & ((1ULL << layout::kDurableSeqBits) - 1), 5U)
      << "the sequence keeps 40 bits";
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

// Layout v3 took 8 of the reserved bytes after daemon_start_ns for the persistence agent's
// doorbell; they are live words, not part of what the attach check looks at.
TEST(CheckRegion_test, AcceptsARegionWhoseDoorbellWordsAreInUse) {
  RegionMemory sut(8);
  sut.header().persist_doorbell.store(12345);
  sut.header().persist_waiters.store(1);
  EXPECT_EQ(detail::check_region(sut.base(), sut.size()), "");
  EXPECT_EQ(reinterpret_cast<std::byte*>(&sut.header().persist_doorbell) - static_cast<std::byte*>(sut.base()), 40);
  EXPECT_EQ(reinterpret_cast<std::byte*>(&sut.header().persist_waiters) - static_cast<std::byte*>(sut.base()), 44);
}

}  // namespace
}  // namespace shmbus
