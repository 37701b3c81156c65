// shmbus-microbench: Google Benchmark microbenchmarks of the primitives on the hot path.
//   ring      claim+commit (one producer, no reader), claim+commit+poll (same thread)
//   control   OpenDest encode+decode, framing
//   sharing   two threads bumping counters on one cache line vs on separate 128-byte blocks
//   costs     the single operations the hot path is made of: clocks, pause, locked RMWs
//   wheel     the daemon's timing wheel: 1M timers added, cancelled, fired; add+cancel churn
//   queue     the queue ring's per-message path (acquire+publish, take+ack), an empty take
//   selector  JMS selector parse, and evaluation against a small property source (true / false)
// The ring lives in process memory, initialised the way daemon/requests.cpp find_or_create does.
#include "common/paths.hpp"
#include "control/protocol.hpp"
#include "layout/index_ring_layout.hpp"
#include "layout/queue_layout.hpp"
#include "layout/topic_layout.hpp"
#include "message/selector.hpp"
#include "ring/index_ring.hpp"
#include "ring/queue_ring.hpp"
#include "ring/topic_ring.hpp"
#include "timing_wheel.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <immintrin.h>
#include <numeric>
#include <memory>
#include <random>
#include <sched.h>
#include <vector>
#include <x86intrin.h>

namespace {

using namespace shmbus;

/// A topic ring in (page-aligned, zeroed) process memory.
class RingMem {
 public:
  RingMem(std::uint32_t slots, std::uint32_t max_payload) {
    size_ = layout::align_up(layout::topic_size(slots, max_payload, layout::kMaxSubscribers, layout::kMaxProducers), 4096);
    mem_ = std::aligned_alloc(4096, size_);
    std::memset(mem_, 0, size_);
    auto* h = static_cast<layout::TopicHeader*>(mem_);
    h->magic = layout::kTopicMagic;
    h->kind = 1;
    h->total_length = layout::topic_size(slots, max_payload, layout::kMaxSubscribers, layout::kMaxProducers);
    h->slot_count = slots;
    h->slot_size = layout::slot_size_for(max_payload);
    h->max_payload = max_payload;
    h->dest_id = 1;
    h->max_subscribers = layout::kMaxSubscribers;
    h->max_producers = layout::kMaxProducers;
    std::memcpy(h->name, "microbench", 10);
    h->layout_version.store(layout::kLayoutVersion, std::memory_order_release);
    if (!ring::check_topic(mem_, size_).empty()) std::abort();
    ring_ = ring::TopicRing(h);
  }
  ~RingMem() { std::free(mem_); }
  RingMem(const RingMem&) = delete;
  RingMem& operator=(const RingMem&) = delete;
  const ring::TopicRing& ring() const { return ring_; }
  /// A writer with its own producer entry, set up as the daemon does for a new producer.
  ring::TopicWriter writer(std::uint32_t index) {
    auto* p = ring_.producer(index);
    p->client_index = index;
    p->producer_id = index;
    p->claim_seq.store(layout::kClaimIdle, std::memory_order_relaxed);
    p->state.store(1, std::memory_order_release);
    return ring::TopicWriter(ring_, p, index, index);
  }
  /// Attaches subscriber 0 at the current tail, as the daemon does for a new consumer.
  ring::TopicReader subscribe() {
    auto* e = ring_.subscriber(0);
    const auto start = ring_.header().tail.load(std::memory_order_acquire);
    e->position.store(start, std::memory_order_relaxed);
    e->state.store(1, std::memory_order_release);
    return ring::TopicReader(ring_, e, start);
  }

 private:
  void* mem_ = nullptr;
  std::size_t size_ = 0;
  ring::TopicRing ring_;
};

constexpr std::uint32_t kMsg = 64;

void BM_RingClaimCommit(benchmark::State& st) {
  RingMem r(static_cast<std::uint32_t>(st.range(0)), kMsg);
  ring::TopicWriter w = r.writer(1);
  std::array<std::byte, kMsg> payload{};
  for (auto _ : st) {
    ring::SlotClaim c;
    if (w.claim(kMsg, c) != ring::ClaimStatus::Ok) {
      st.SkipWithError("claim failed");
      break;
    }
    std::memcpy(c.data, payload.data(), kMsg);
    w.commit(c, kMsg, 0);
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) * kMsg);
}
BENCHMARK(BM_RingClaimCommit)->Arg(64)->Arg(4096)->Arg(65536);

void BM_RingClaimCommitPoll(benchmark::State& st) {
  RingMem r(static_cast<std::uint32_t>(st.range(0)), kMsg);
  ring::TopicWriter w = r.writer(1);
  ring::TopicReader rd = r.subscribe();
  std::array<std::byte, kMsg> payload{};
  std::array<std::byte, kMsg> out{};
  for (auto _ : st) {
    ring::SlotClaim c;
    if (w.claim(kMsg, c) != ring::ClaimStatus::Ok) {
      st.SkipWithError("claim failed");
      break;
    }
    std::memcpy(c.data, payload.data(), kMsg);
    w.commit(c, kMsg, 0);
    ring::ReadMeta meta;
    std::uint64_t lost = 0;
    if (rd.poll(out.data(), meta, lost) != ring::PollStatus::Message) {
      st.SkipWithError("poll found no message");
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(BM_RingClaimCommitPoll)->Arg(64)->Arg(4096);

/// A poll that finds nothing: the cost of one spin iteration of a waiting consumer.
void BM_RingPollEmpty(benchmark::State& st) {
  RingMem r(4096, kMsg);
  ring::TopicReader rd = r.subscribe();
  std::array<std::byte, kMsg> out{};
  for (auto _ : st) {
    ring::ReadMeta meta;
    std::uint64_t lost = 0;
    benchmark::DoNotOptimize(rd.poll(out.data(), meta, lost));
  }
}
BENCHMARK(BM_RingPollEmpty);

void BM_OpenDestEncodeDecode(benchmark::State& st) {
  control::OpenDest m;
  m.kind = 1;
  m.role = control::Role::Consumer;
  m.name = "bench.12345.ping";
  m.capacity = 4096;
  m.max_message_size = 4096;
  for (auto _ : st) {
    const control::Writer w = control::encode(m);
    control::Reader rd(w.body());
    control::OpenDest o;
    control::decode(rd, o);
    benchmark::DoNotOptimize(o);
  }
}
BENCHMARK(BM_OpenDestEncodeDecode);

void BM_OpenDestFrameDecodeHeader(benchmark::State& st) {
  control::OpenDest m;
  m.name = "bench.12345.ping";
  m.capacity = 4096;
  m.max_message_size = 4096;
  std::uint32_t id = 0;
  for (auto _ : st) {
    const auto frame = control::encode(m).frame(control::MsgType::OpenDest, ++id);
    const auto h = control::decode_header(frame.data());
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_OpenDestFrameDecodeHeader);

// ---- false sharing: two threads, each bumping its own counter ----

struct SameLine {
  alignas(128) std::atomic<std::uint64_t> c[2];
};
struct Padded {
  struct alignas(128) Block {
    std::atomic<std::uint64_t> v;
  };
  Block b[2];
};
SameLine g_same;
Padded g_padded;

/// Pins the calling thread to CPU `i` for the benchmark's lifetime (restores the mask after).
class PinScope {
 public:
  explicit PinScope(int cpu) {
    ok_ = sched_getaffinity(0, sizeof old_, &old_) == 0;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (ok_ && CPU_ISSET(cpu, &old_)) sched_setaffinity(0, sizeof s, &s);
  }
  ~PinScope() {
    if (ok_) sched_setaffinity(0, sizeof old_, &old_);
  }
  PinScope(const PinScope&) = delete;
  PinScope& operator=(const PinScope&) = delete;

 private:
  cpu_set_t old_{};
  bool ok_ = false;
};

template <bool kPadded, bool kRmw>
void BM_FalseSharing(benchmark::State& st) {
  const int t = st.thread_index();
  PinScope pin(t);
  std::atomic<std::uint64_t>& c = kPadded ? g_padded.b[t].v : g_same.c[t];
  for (auto _ : st) {
    if constexpr (kRmw) {
      c.fetch_add(1, std::memory_order_relaxed);
    } else {
      // A single-writer counter (statistics): plain load + store, no locked instruction.
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(BM_FalseSharing<false, false>)->Name("BM_FalseSharing/same_line/store")->Threads(2)->UseRealTime();
BENCHMARK(BM_FalseSharing<true, false>)->Name("BM_FalseSharing/padded_128/store")->Threads(2)->UseRealTime();
BENCHMARK(BM_FalseSharing<false, true>)->Name("BM_FalseSharing/same_line/fetch_add")->Threads(2)->UseRealTime();
BENCHMARK(BM_FalseSharing<true, true>)->Name("BM_FalseSharing/padded_128/fetch_add")->Threads(2)->UseRealTime();

// ---- single operations of the hot path ----

void BM_ClockMonotonic(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(common::mono_ns());
}
BENCHMARK(BM_ClockMonotonic);

void BM_ClockRealtime(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(common::real_ns());
}
BENCHMARK(BM_ClockRealtime);

void BM_Rdtscp(benchmark::State& st) {
  unsigned aux;
  for (auto _ : st) benchmark::DoNotOptimize(__rdtscp(&aux));
}
BENCHMARK(BM_Rdtscp);

void BM_Pause(benchmark::State& st) {
  for (auto _ : st) _mm_pause();
}
BENCHMARK(BM_Pause);

struct alignas(128) Word {
  std::atomic<std::uint64_t> v{0};
};

void BM_LocalFetchAdd(benchmark::State& st) {
  Word w;
  for (auto _ : st) benchmark::DoNotOptimize(w.v.fetch_add(1, std::memory_order_relaxed));
}
BENCHMARK(BM_LocalFetchAdd);

void BM_LocalCas(benchmark::State& st) {
  Word w;
  std::uint64_t x = 0;
  for (auto _ : st) {
    benchmark::DoNotOptimize(w.v.compare_exchange_strong(x, x + 1, std::memory_order_acq_rel, std::memory_order_acquire));
    ++x;
  }
}
BENCHMARK(BM_LocalCas);

void BM_LocalXchg(benchmark::State& st) {
  Word w;
  std::uint64_t x = 0;
  for (auto _ : st) benchmark::DoNotOptimize(w.v.exchange(++x, std::memory_order_seq_cst));
}
BENCHMARK(BM_LocalXchg);

void BM_LocalReleaseStore(benchmark::State& st) {
  Word w;
  std::uint64_t x = 0;
  for (auto _ : st) {
    w.v.store(++x, std::memory_order_release);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_LocalReleaseStore);

// ---- timing wheel (daemon/timing_wheel.hpp), default shape: 1 ms tick, 4 levels x 256 buckets ----------
// Each iteration handles 1M timers; "per_op" is the time per timer (add, cancel or fire). Deadlines are
// uniform over (0, 10 min]: levels 0, 1 and 2. Pools are preallocated and pre-touched outside the timing.

constexpr std::uint64_t kWheelTimers = 1'000'000;
constexpr std::uint64_t kWheelMs = 1'000'000;
constexpr std::uint64_t kWheelRange = 600'000 * kWheelMs;

std::vector<std::uint64_t> wheel_deadlines() {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint64_t> d(1, kWheelRange);
  std::vector<std::uint64_t> v(kWheelTimers);
  for (auto& x : v) x = d(rng);
  return v;
}

daemon::TimingWheelConfig wheel_config() {
  return daemon::TimingWheelConfig{.initial_capacity = static_cast<std::uint32_t>(kWheelTimers),
                                   .max_timers = static_cast<std::uint32_t>(kWheelTimers)};
}

void fill(daemon::TimingWheel& w, const std::vector<std::uint64_t>& d, std::vector<daemon::TimerId>* ids) {
  for (std::uint64_t i = 0; i < d.size(); ++i) {
    const auto r = w.add(d[i], i);
    if (ids != nullptr) (*ids)[i] = r.id;
  }
}

void set_per_op(benchmark::State& st, std::uint64_t ops_per_iteration) {
  const auto ops = static_cast<double>(st.iterations()) * static_cast<double>(ops_per_iteration);
  st.SetItemsProcessed(static_cast<std::int64_t>(ops));
  st.counters["per_op"] = benchmark::Counter(ops, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_TimingWheel_Add1M(benchmark::State& st) {
  const auto d = wheel_deadlines();
  std::unique_ptr<daemon::TimingWheel> sut;  // not std::optional: g++ 12 -Wmaybe-uninitialized false positive
  for (auto _ : st) {
    st.PauseTiming();
    sut.reset();
    sut = std::make_unique<daemon::TimingWheel>(wheel_config());
    st.ResumeTiming();
    for (std::uint64_t i = 0; i < kWheelTimers; ++i) benchmark::DoNotOptimize(sut->add(d[i], i));
  }
  if (sut->size() != kWheelTimers) st.SkipWithError("not every add succeeded");
  set_per_op(st, kWheelTimers);
}
BENCHMARK(BM_TimingWheel_Add1M)->Unit(benchmark::kMillisecond);

/// Cancels in a random order: the cost includes the cache misses of a real ack pattern.
void BM_TimingWheel_Cancel1M(benchmark::State& st) {
  const auto d = wheel_deadlines();
  std::vector<daemon::TimerId> ids(kWheelTimers);
  std::vector<std::uint32_t> order(kWheelTimers);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  std::unique_ptr<daemon::TimingWheel> sut;  // not std::optional: g++ 12 -Wmaybe-uninitialized false positive
  std::uint64_t cancelled = 0;
  for (auto _ : st) {
    st.PauseTiming();
    sut.reset();
    sut = std::make_unique<daemon::TimingWheel>(wheel_config());
    fill(*sut, d, &ids);
    st.ResumeTiming();
    for (const auto i : order) cancelled += sut->cancel(ids[i]) ? 1 : 0;
  }
  if (cancelled != st.iterations() * kWheelTimers) st.SkipWithError("a cancel was refused");
  set_per_op(st, kWheelTimers);
}
BENCHMARK(BM_TimingWheel_Cancel1M)->Unit(benchmark::kMillisecond);

/// Fires 1M timers: Arg = advance step in ms (1: the agent's steady 1 ms tick over 10 min, 600k advances;
/// 0: one advance straight to the end, every timer cascading down in a single call).
void BM_TimingWheel_Fire1M(benchmark::State& st) {
  const auto d = wheel_deadlines();
  const std::uint64_t step = static_cast<std::uint64_t>(st.range(0)) * kWheelMs;
  std::unique_ptr<daemon::TimingWheel> sut;  // not std::optional: g++ 12 -Wmaybe-uninitialized false positive
  std::uint64_t fired = 0, sum = 0;
  const auto on_fire = [&sum](std::uint64_t p) { sum += p; };
  for (auto _ : st) {
    st.PauseTiming();
    sut.reset();
    sut = std::make_unique<daemon::TimingWheel>(wheel_config());
    fill(*sut, d, nullptr);
    st.ResumeTiming();
    if (step == 0) {
      fired += sut->advance(kWheelRange, on_fire);
    } else {
      for (std::uint64_t now = step; now <= kWheelRange; now += step) fired += sut->advance(now, on_fire);
    }
  }
  benchmark::DoNotOptimize(sum);
  if (fired != st.iterations() * kWheelTimers) st.SkipWithError("not every timer fired");
  set_per_op(st, kWheelTimers);
}
BENCHMARK(BM_TimingWheel_Fire1M)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

/// The ack-timeout pattern: with 1M timers armed, arm one 30 s (+ jitter) ahead and cancel it (the ack
/// came). One iteration = one add + one cancel.
void BM_TimingWheel_AddCancelChurn(benchmark::State& st) {
  const auto d = wheel_deadlines();
  daemon::TimingWheel sut(daemon::TimingWheelConfig{.initial_capacity = static_cast<std::uint32_t>(kWheelTimers + 1)});
  fill(sut, d, nullptr);
  std::vector<std::uint64_t> jitter(4096);
  std::mt19937_64 rng(3);
  for (auto& j : jitter) j = 30'000 * kWheelMs + rng() % (5'000 * kWheelMs);
  std::size_t k = 0;
  for (auto _ : st) {
    const auto r = sut.add(jitter[k & 4095], k);
    ++k;
    benchmark::DoNotOptimize(sut.cancel(r.id));
  }
  if (sut.size() != kWheelTimers) st.SkipWithError("churn leaked timers");
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(BM_TimingWheel_AddCancelChurn);

/// The floor for the above: 1M dependent visits of 32-byte nodes in a random order over a pool the size of
/// the wheel's (32 MB): one cache miss per visit, what every linked-list walk over scattered timers pays.
void BM_TimingWheel_FloorRandomVisit1M(benchmark::State& st) {
  struct Node {
    std::uint32_t next;
    std::uint32_t pad[7];
  };
  std::vector<Node> pool(kWheelTimers);
  std::vector<std::uint32_t> order(kWheelTimers);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(11));
  for (std::size_t i = 0; i < kWheelTimers; ++i) pool[order[i]].next = order[(i + 1) % kWheelTimers];
  std::uint32_t at = order[0];
  for (auto _ : st) {
    for (std::uint64_t i = 0; i < kWheelTimers; ++i) at = pool[at].next;
    benchmark::DoNotOptimize(at);
  }
  set_per_op(st, kWheelTimers);
}
BENCHMARK(BM_TimingWheel_FloorRandomVisit1M)->Unit(benchmark::kMillisecond);

}  // namespace

// ---- index ring (ring/index_ring.hpp): Vyukov MPMC ring of slot numbers, 16-byte cells ---------------

/// An index ring in 128-byte aligned process memory, with one pusher and one popper record.
class IndexRingMem {
 public:
  explicit IndexRingMem(std::uint32_t capacity) {
    size_ = layout::align_up(layout::index_ring_size(capacity), 4096);
    mem_ = std::aligned_alloc(4096, size_);
    std::memset(mem_, 0, size_);
    if (!ring::IndexRing::init(mem_, capacity)) std::abort();
    ring_ = ring::IndexRing(mem_);
    ring::IndexRing::init_record(recs_[0], 1, layout::ClaimRole::Pusher);
    ring::IndexRing::init_record(recs_[1], 2, layout::ClaimRole::Popper);
  }
  ~IndexRingMem() { std::free(mem_); }
  IndexRingMem(const IndexRingMem&) = delete;
  IndexRingMem& operator=(const IndexRingMem&) = delete;
  ring::IndexRing ring() const { return ring_; }
  layout::ClaimRecord& pusher() { return recs_[0]; }
  layout::ClaimRecord& popper() { return recs_[1]; }

 private:
  void* mem_ = nullptr;
  std::size_t size_ = 0;
  ring::IndexRing ring_;
  std::array<layout::ClaimRecord, 2> recs_{};
};

/// One push and one pop per iteration, one thread: the uncontended cost of the pair.
void BM_IndexRing_PushPop(benchmark::State& st) {
  IndexRingMem r(static_cast<std::uint32_t>(st.range(0)));
  ring::IndexRing sut = r.ring();
  std::uint32_t v = 0;
  for (auto _ : st) {
    if (sut.try_push(v, r.pusher()) != ring::IndexStatus::Ok || sut.try_pop(v, r.popper()) != ring::IndexStatus::Ok) {
      st.SkipWithError("push/pop failed");
      break;
    }
    benchmark::DoNotOptimize(v);
    v = (v + 1) & 0xFFFF;
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(BM_IndexRing_PushPop)->Arg(1024);

std::unique_ptr<IndexRingMem> g_index_ring;

/// Thread 0 pushes, thread 1 pops, each pinned to its own CPU; both do `iterations` operations, so
/// items/s is the one-way throughput. Full/Empty/Busy are retried with a pause.
void BM_IndexRing_1P1C(benchmark::State& st) {
  const int t = st.thread_index();
  PinScope pin(t);
  if (t == 0) g_index_ring = std::make_unique<IndexRingMem>(static_cast<std::uint32_t>(st.range(0)));
  std::uint64_t retries = 0;
  for (auto _ : st) {  // the loop's start is a barrier: thread 1 sees the ring thread 0 made
    ring::IndexRing sut = g_index_ring->ring();
    if (t == 0) {
      while (sut.try_push(7, g_index_ring->pusher()) != ring::IndexStatus::Ok) {
        ++retries;
        _mm_pause();
      }
    } else {
      std::uint32_t v = 0;
      while (sut.try_pop(v, g_index_ring->popper()) != ring::IndexStatus::Ok) {
        ++retries;
        _mm_pause();
      }
      benchmark::DoNotOptimize(v);
    }
  }
  st.counters["retries_per_op"] = benchmark::Counter(
      static_cast<double>(retries) / static_cast<double>(std::max<std::int64_t>(1, static_cast<std::int64_t>(st.iterations()))));
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(BM_IndexRing_1P1C)->Arg(1024)->Threads(2)->UseRealTime();

// ---- queue ring (ring/queue_ring.hpp): the per-message CPU cost of a queue, one thread ---------------

/// A queue in 128-byte aligned process memory, laid out by QueueRing::init as the daemon does
/// (tests/unit/queue_ring_test.cpp builds it the same way); producer and consumer entry 0 live.
class QueueMem {
 public:
  QueueMem(std::uint32_t slots, std::uint32_t max_payload) {
    size_ = layout::queue_geometry(slots, max_payload).total;
    mem_ = std::aligned_alloc(4096, layout::align_up(size_, 4096));
    std::memset(mem_, 0, size_);
    ring::QueueConfig c;
    c.slot_count = slots;
    c.max_payload = max_payload;
    c.dest_id = 1;
    c.name = "microbench";
    if (!ring::QueueRing::init(mem_, size_, c) || !ring::check_queue(mem_, size_).empty()) std::abort();
    q_ = ring::QueueRing(mem_);
    q_.producer(0)->state.store(1, std::memory_order_release);
    q_.consumer(0)->state.store(1, std::memory_order_release);
  }
  ~QueueMem() { std::free(mem_); }
  QueueMem(const QueueMem&) = delete;
  QueueMem& operator=(const QueueMem&) = delete;
  const ring::QueueRing& ring() const { return q_; }

 private:
  void* mem_ = nullptr;
  std::uint64_t size_ = 0;
  ring::QueueRing q_;
};

/// One message through a queue, one thread: QueueWriter::acquire, copy 64 B in, publish (READY,
/// ready ring, the consumers' wake check), then QueueReader::take, copy out, ack (FREE, free ring,
/// the producers' wake check). What a message costs in CPU on the queue path with no other core
/// involved; MessageProducer::send / MessageConsumer::receive add the session's bookkeeping on top.
/// Args: tracked 0 = AckMode::Auto's reader, 1 = every other ack mode's (the in-flight FIFO entry
/// with its clock read, the settled-head walk); prio = the messages' priority (4: the JMS default;
/// take() looks at the rings from 9 down, so 9 shows the cost without the five empty rings above 4).
void BM_QueueSendTakeAck(benchmark::State& st) {
  QueueMem m(4096, kMsg);
  ring::QueueWriter w(m.ring(), 0);
  ring::QueueReader rd(m.ring(), 0, st.range(0) != 0);
  std::array<std::byte, kMsg> payload{};
  std::array<std::byte, kMsg> out{};
  ring::QueueSendMeta meta;
  meta.length = kMsg;
  meta.priority = static_cast<std::uint8_t>(st.range(1));
  for (auto _ : st) {
    std::uint32_t slot = 0;
    if (!w.acquire(slot)) {
      st.SkipWithError("acquire found no free slot");
      break;
    }
    std::memcpy(m.ring().payload(slot), payload.data(), kMsg);
    ++meta.producer_seq;
    w.publish(slot, meta);
    ring::QueueDelivery d;
    if (rd.take(d) != ring::TakeStatus::Ok) {
      st.SkipWithError("take found no message");
      break;
    }
    std::memcpy(out.data(), m.ring().payload(d.slot), kMsg);
    benchmark::DoNotOptimize(out);
    if (rd.ack(d) != ring::SettleStatus::Ok) {
      st.SkipWithError("ack refused");
      break;
    }
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) * kMsg);
}
BENCHMARK(BM_QueueSendTakeAck)->ArgNames({"tracked", "prio"})->Args({0, 4})->Args({1, 4})->Args({0, 9});

/// The same round split in halves over batches of 1,024 messages (a queue filled, then drained),
/// so each side's cost shows alone: "producer_ns" = acquire + copy + publish, "consumer_ns" = take
/// + copy + ack, per message (steady_clock around each half; two clock reads per 1,024 messages).
void BM_QueueSendTakeAckBatched(benchmark::State& st) {
  constexpr std::uint32_t kBatch = 1024;
  QueueMem m(4096, kMsg);
  ring::QueueWriter w(m.ring(), 0);
  ring::QueueReader rd(m.ring(), 0, st.range(0) != 0);
  std::array<std::byte, kMsg> payload{};
  std::array<std::byte, kMsg> out{};
  ring::QueueSendMeta meta;
  meta.length = kMsg;
  std::chrono::steady_clock::duration prod{}, cons{};
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint32_t i = 0; i < kBatch; ++i) {
      std::uint32_t slot = 0;
      if (!w.acquire(slot)) std::abort();
      std::memcpy(m.ring().payload(slot), payload.data(), kMsg);
      ++meta.producer_seq;
      w.publish(slot, meta);
    }
    const auto t1 = std::chrono::steady_clock::now();
    for (std::uint32_t i = 0; i < kBatch; ++i) {
      ring::QueueDelivery d;
      if (rd.take(d) != ring::TakeStatus::Ok) std::abort();
      std::memcpy(out.data(), m.ring().payload(d.slot), kMsg);
      benchmark::DoNotOptimize(out);
      if (rd.ack(d) != ring::SettleStatus::Ok) std::abort();
    }
    const auto t2 = std::chrono::steady_clock::now();
    prod += t1 - t0;
    cons += t2 - t1;
  }
  const auto msgs = static_cast<double>(st.iterations()) * kBatch;
  st.SetItemsProcessed(static_cast<std::int64_t>(msgs));
  st.counters["producer_ns"] = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(prod).count()) / msgs;
  st.counters["consumer_ns"] = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(cons).count()) / msgs;
}
BENCHMARK(BM_QueueSendTakeAckBatched)->ArgName("tracked")->Arg(0)->Arg(1);

/// A take that finds every ready ring empty: the cost of one spin iteration of a waiting queue
/// consumer (it looks at all ten priority rings), next to BM_RingPollEmpty for a topic.
void BM_QueueTakeEmpty(benchmark::State& st) {
  QueueMem m(4096, kMsg);
  ring::QueueReader rd(m.ring(), 0, false);
  for (auto _ : st) {
    ring::QueueDelivery d;
    benchmark::DoNotOptimize(rd.take(d));
  }
}
BENCHMARK(BM_QueueTakeEmpty);

// --- message frame (bus/message/frame.hpp, docs/message-frame.md) ---------------------------------
#include "shmbus/message/frame.hpp"

namespace {

/// The frame of a typical Text message: id, timestamp, correlation id, type, 4 properties, 64-byte body.
std::size_t encode_text4(std::span<std::byte> buf) {
  using namespace shmbus::message;
  static constexpr std::string_view kBody = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  FrameWriter w(buf);
  w.set_message_id({0x1234'5678'9abc'def0ULL, 42});
  w.set_timestamp_ns(1'700'000'000'000'000'000LL);
  w.set_priority(5);
  w.set_correlation_id("req-0001");
  w.set_type("OrderCreated");
  w.add_property("region", Value::string("emea"));
  w.add_property("qty", Value::int32(17));
  w.add_property("price", Value::float64(99.5));
  w.add_property("urgent", Value::boolean(true));
  w.set_text(kBody);
  if (w.finish() != FrameStatus::Ok) std::abort();
  return w.size();
}

void BM_FrameEncodeText4Props(benchmark::State& st) {
  alignas(64) std::byte buf[1024];
  for (auto _ : st) {
    benchmark::DoNotOptimize(encode_text4(buf));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_FrameEncodeText4Props);

/// open() validates everything (header, UTF-8 of strings and body, the property table).
void BM_FrameDecodeText4Props(benchmark::State& st) {
  alignas(64) std::byte buf[1024];
  const std::size_t n = encode_text4(buf);
  for (auto _ : st) {
    shmbus::message::FrameReader r;
    if (r.open({buf, n}) != shmbus::message::DecodeStatus::Ok) std::abort();
    benchmark::DoNotOptimize(r.text().data());
  }
}
BENCHMARK(BM_FrameDecodeText4Props);

/// One property lookup by name on an opened frame (binary search over the sorted index), and
/// one typed get with conversion (int property read as long).
void BM_FramePropertyLookup(benchmark::State& st) {
  alignas(64) std::byte buf[1024];
  const std::size_t n = encode_text4(buf);
  shmbus::message::FrameReader r;
  if (r.open({buf, n}) != shmbus::message::DecodeStatus::Ok) std::abort();
  const std::string_view names[] = {"region", "qty", "price", "urgent"};
  std::size_t i = 0;
  for (auto _ : st) {
    benchmark::DoNotOptimize(r.property(names[i++ & 3]));
  }
}
BENCHMARK(BM_FramePropertyLookup);

void BM_FrameGetInt64Converted(benchmark::State& st) {
  alignas(64) std::byte buf[1024];
  const std::size_t n = encode_text4(buf);
  shmbus::message::FrameReader r;
  if (r.open({buf, n}) != shmbus::message::DecodeStatus::Ok) std::abort();
  for (auto _ : st) benchmark::DoNotOptimize(r.get_int64("qty"));
}
BENCHMARK(BM_FrameGetInt64Converted);

/// A header through PropertySource (what a selector does for JMSPriority).
void BM_FrameGetHeader(benchmark::State& st) {
  alignas(64) std::byte buf[1024];
  const std::size_t n = encode_text4(buf);
  shmbus::message::FrameReader r;
  if (r.open({buf, n}) != shmbus::message::DecodeStatus::Ok) std::abort();
  const shmbus::message::PropertySource& src = r;
  for (auto _ : st) benchmark::DoNotOptimize(src.get("JMSPriority"));
}
BENCHMARK(BM_FrameGetHeader);

}  // namespace

// --- message selectors (bus/message/selector.hpp, docs/selectors.md) -----------------------------

namespace {

using namespace shmbus;

/// A message's properties as a frame view would expose them: a few (name, value) pairs scanned
/// linearly, the JMS headers among them.
class SmallProps final : public message::PropertySource {
 public:
  explicit SmallProps(double price)
      : entries_{{{"JMSPriority", message::Value::int32(7)},
                  {"region", message::Value::string("EU")},
                  {"price", message::Value::float64(price)},
                  {"customer", message::Value::string("acme")}}} {}
  message::Value get(std::string_view name) const noexcept override {
    for (const auto& [n, v] : entries_)
      if (n == name) return v;
    return message::Value::null();
  }

 private:
  std::array<std::pair<std::string_view, message::Value>, 4> entries_;
};

constexpr std::string_view kTypicalSelector = "JMSPriority > 4 AND region = 'EU' AND price BETWEEN 10 AND 20";

/// Parsing a typical selector (done once, when a consumer is created).
void BM_SelectorParse(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(message::Selector::parse(kTypicalSelector));
}
BENCHMARK(BM_SelectorParse);

/// Evaluating it per message: matches=1 (price 15) and matches=0 (price 25: every term is
/// evaluated, the last one is false).
void BM_SelectorMatch(benchmark::State& st) {
  const auto sut = message::Selector::parse(kTypicalSelector);
  const SmallProps props(st.range(0) != 0 ? 15.0 : 25.0);
  if (sut.matches(props) != (st.range(0) != 0)) std::abort();
  for (auto _ : st) benchmark::DoNotOptimize(sut.matches(props));
}
BENCHMARK(BM_SelectorMatch)->ArgName("matches")->Arg(1)->Arg(0);

}  // namespace

BENCHMARK_MAIN();
