// The daemon's timing wheel (daemon/timing_wheel.hpp): expiry against a reference model, cancel and stale
// ids, re-entrancy from callbacks, large jumps, overflow, past deadlines, pool limits. Time is passed in.
#include "timing_wheel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace shmbus::daemon {
namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kSec = 1000 * kMs;
constexpr std::uint64_t kHour = 3600 * kSec;

// Advances sut to now and returns the payloads fired, in firing order.
std::vector<std::uint64_t> advance(TimingWheel& sut, std::uint64_t now) {
  std::vector<std::uint64_t> fired;
  const auto n = sut.advance(now, [&](std::uint64_t p) { fired.push_back(p); });
  EXPECT_EQ(n, fired.size()) << "advance() must return the number of callbacks it made";
  return fired;
}

TimerId add_ok(TimingWheel& sut, std::uint64_t deadline, std::uint64_t payload) {
  const auto r = sut.add(deadline, payload);
  EXPECT_TRUE(r.ok()) << "add(" << deadline << ") failed";
  return r.id;
}

// ---- property test against a std::multimap reference model -------------------------------------------

struct PropertyCase {
  const char* name;
  TimingWheelConfig cfg;
  std::uint64_t max_delay;  // deadlines up to now + max_delay, log-uniform: every level and the overflow
  friend void PrintTo(const PropertyCase& pc, std::ostream* os) { *os << pc.name; }
};

class TimingWheelProperty_test : public ::testing::TestWithParam<PropertyCase> {};

// The model: each armed timer keyed by when it must fire, i.e. the first now at which an advance(now)
// fires it: ceil(deadline / tick) * tick, or the add-time now for a deadline already past (it fires on
// the next advance). Forbidden: a timer firing in an advance whose now is before its deadline, or more
// than one tick after it; firing twice; a cancelled timer firing; an expired timer not firing.
TEST_P(TimingWheelProperty_test, FiresExactlyTheModelsTimersNeverEarlyAtMostOneTickLate) {
  const auto& pc = GetParam();
  const std::uint64_t tick = pc.cfg.tick_ns;
  std::mt19937_64 rng(20240611);
  const std::uint64_t start = 7 * tick + 3;
  TimingWheel sut(pc.cfg, start);
  std::uint64_t now = start;

  struct Armed {
    TimerId id;
    std::uint64_t deadline;
    bool past;  // deadline <= now when added: fires on the next advance, before any wheel timer
    std::multimap<std::uint64_t, std::uint64_t>::iterator it;
  };
  std::multimap<std::uint64_t, std::uint64_t> model;  // due time -> payload
  std::unordered_map<std::uint64_t, Armed> armed;     // payload -> timer
  std::vector<std::uint64_t> live;                    // payloads armed, for random cancels
  std::vector<TimerId> dead_ids;                      // fired or cancelled
  const auto log_uniform = [&](std::uint64_t max) {
    const int bits = std::uniform_int_distribution<int>(0, 63 - std::countl_zero(max))(rng);
    return std::uniform_int_distribution<std::uint64_t>(0, std::min(max, (std::uint64_t{2} << bits) - 1))(rng);
  };

  constexpr std::uint64_t kTimers = 100'000;
  std::uint64_t next_payload = 0, cancelled = 0, fired_total = 0, beyond_span = 0;
  while (next_payload < kTimers || !model.empty()) {
    // Add a batch, some in the past, most ahead across every level and beyond the span.
    for (int i = 0; i < 64 && next_payload < kTimers; ++i) {
      const bool past = rng() % 50 == 0;
      const std::uint64_t deadline = past ? now - std::min(now, log_uniform(now)) : now + log_uniform(pc.max_delay);
      const std::uint64_t p = next_payload++;
      beyond_span += deadline > now && deadline - now >= sut.span_ns() ? 1 : 0;
      const auto r = sut.add(deadline, p);
      ASSERT_TRUE(r.ok());
      const std::uint64_t due = deadline <= now ? now : (deadline + tick - 1) / tick * tick;
      armed[p] = Armed{r.id, deadline, deadline <= now, model.emplace(due, p)};
      live.push_back(p);
    }
    // Cancel a few live ones, and retry a few dead ids (must be refused).
    for (int i = 0; i < 24 && !live.empty(); ++i) {
      const std::size_t k = rng() % live.size();
      const std::uint64_t p = live[k];
      std::swap(live[k], live.back());
      live.pop_back();
      auto a = armed.find(p);
      if (a == armed.end()) continue;  // fired already
      ASSERT_TRUE(sut.cancel(a->second.id)) << "cancel of armed timer " << p;
      model.erase(a->second.it);
      dead_ids.push_back(a->second.id);
      armed.erase(a);
      ++cancelled;
    }
    for (int i = 0; i < 2 && !dead_ids.empty(); ++i)
      ASSERT_FALSE(sut.cancel(dead_ids[rng() % dead_ids.size()])) << "a fired or cancelled id was accepted";
    // Advance by a random step: mostly small, sometimes huge; occasionally not at all.
    const std::uint64_t step = rng() % 16 == 0 ? 0 : log_uniform(next_payload < kTimers ? pc.max_delay / 4096 : pc.max_delay);
    now += step;
    std::vector<std::uint64_t> fired = advance(sut, now);
    std::uint64_t last_tick = 0;
    for (const std::uint64_t p : fired) {
      auto a = armed.find(p);
      ASSERT_NE(a, armed.end()) << "timer " << p << " fired twice, or after being cancelled";
      const std::uint64_t d = a->second.deadline;
      ASSERT_LE(d, now) << "timer " << p << " fired early";
      ASSERT_LE(a->second.it->first, now) << "fired before its tick";
      if (a->second.past) {
        ASSERT_EQ(last_tick, 0u) << "a past-deadline timer fired after a wheel timer";
      } else {
        const std::uint64_t t = (d + tick - 1) / tick;
        ASSERT_GE(t, last_tick) << "fired out of tick order";
        last_tick = t;
      }
      dead_ids.push_back(a->second.id);
      model.erase(a->second.it);
      armed.erase(a);
    }
    fired_total += fired.size();
    // Everything due by now has fired (so none fired later than deadline + one tick).
    ASSERT_TRUE(model.empty() || model.begin()->first > now)
        << "timer " << model.begin()->second << " due at " << model.begin()->first << " did not fire by " << now;
    ASSERT_EQ(sut.size(), model.size());
  }
  EXPECT_EQ(fired_total + cancelled, kTimers);
  EXPECT_GT(cancelled, 5000u);
  EXPECT_GT(beyond_span, 1000u) << "the overflow list must be exercised";
  EXPECT_GT(fired_total, 50'000u);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, TimingWheelProperty_test,
    ::testing::Values(
        // Default shape, 1 ms tick: deadlines up to ~4 months, beyond the 49.7-day span.
        PropertyCase{"Default4x256", TimingWheelConfig{}, std::uint64_t{1} << 53},
        // A small wheel (3 x 16, span 4096 ticks) so the overflow list and cascades work hard.
        PropertyCase{"Small3x16", TimingWheelConfig{1000, 3, 4, 16, 1u << 20}, std::uint64_t{1} << 26},
        // Odd tick, one level: everything beyond 32 ticks is overflow.
        PropertyCase{"OneLevel", TimingWheelConfig{777, 1, 5, 1024, 1u << 20}, 1'000'000}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// ---- resolution, past deadlines, large jumps, overflow ------------------------------------------------

TEST(TimingWheel_test, FiresAtFirstTickBoundaryAtOrAfterDeadlineNeverBefore) {
  TimingWheel sut(TimingWheelConfig{.tick_ns = kMs});
  add_ok(sut, 10 * kMs, 1);            // on a tick boundary: exact
  add_ok(sut, 20 * kMs + 300'000, 2);  // mid-tick: at the next boundary
  EXPECT_TRUE(advance(sut, 10 * kMs - 1).empty());
  EXPECT_EQ(advance(sut, 10 * kMs), std::vector<std::uint64_t>{1});
  EXPECT_TRUE(advance(sut, 20 * kMs + 300'000).empty()) << "mid-tick deadline fires at the tick's end, not now";
  EXPECT_TRUE(advance(sut, 21 * kMs - 1).empty());
  EXPECT_EQ(advance(sut, 21 * kMs), std::vector<std::uint64_t>{2});
  EXPECT_EQ(sut.size(), 0u);
}

TEST(TimingWheel_test, ZeroAndPastDeadlinesFireOnTheNextAdvanceEvenWithoutTimeMoving) {
  TimingWheel sut(TimingWheelConfig{}, 10 * kSec + 500'000);
  add_ok(sut, 0, 1);
  add_ok(sut, 5 * kSec, 2);
  add_ok(sut, 10 * kSec + 400'000, 3);  // same tick as now, already past
  add_ok(sut, 10 * kSec + 500'000, 4);  // exactly now
  add_ok(sut, 10 * kSec + 600'000, 5);  // later in this tick: waits for its boundary
  auto fired = advance(sut, 10 * kSec + 500'000);
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(advance(sut, 11 * kSec), std::vector<std::uint64_t>{5});
}

TEST(TimingWheel_test, JumpOfHoursCascadesEveryLevelInDeadlineOrder) {
  TimingWheel sut;  // 1 ms x 4 x 256
  const std::vector<std::uint64_t> deadlines = {3 * kHour,  kMs,       300 * kMs, 70 * kSec, 5 * kHour,
                                                20 * kHour, 2 * kHour, 59 * kSec, 72 * kHour};
  for (std::uint64_t i = 0; i < deadlines.size(); ++i) add_ok(sut, deadlines[i], deadlines[i]);
  EXPECT_EQ(advance(sut, 6 * kHour),
            (std::vector<std::uint64_t>{kMs, 300 * kMs, 59 * kSec, 70 * kSec, 2 * kHour, 3 * kHour, 5 * kHour}));
  EXPECT_TRUE(advance(sut, 20 * kHour - 1).empty());
  EXPECT_EQ(advance(sut, 100 * kHour), (std::vector<std::uint64_t>{20 * kHour, 72 * kHour}));
  // Timers added after the jump are placed relative to the new now.
  add_ok(sut, 100 * kHour + 5 * kMs, 7);
  EXPECT_TRUE(advance(sut, 100 * kHour + 4 * kMs).empty());
  EXPECT_EQ(advance(sut, 100 * kHour + 5 * kMs), std::vector<std::uint64_t>{7});
}

TEST(TimingWheel_test, TimerBeyondSpanWaitsInOverflowAndFiresOnTime) {
  TimingWheel sut(TimingWheelConfig{.tick_ns = 1, .levels = 2, .bucket_bits = 2});  // span 16 ticks
  ASSERT_EQ(sut.span_ns(), 16u);
  add_ok(sut, 1000, 1);
  add_ok(sut, 40, 2);
  std::vector<std::uint64_t> fired;
  for (std::uint64_t now = 1; now < 1000; ++now) {
    for (auto p : advance(sut, now)) {
      EXPECT_EQ(p, 2u);
      EXPECT_EQ(now, 40u);
      fired.push_back(p);
    }
  }
  EXPECT_EQ(fired.size(), 1u);
  EXPECT_EQ(advance(sut, 1000), std::vector<std::uint64_t>{1});
}

TEST(TimingWheel_test, DeadlineBeyondSixtyDaysFiresAfterOneJump) {
  TimingWheel sut;  // span 2^32 ms ~ 49.7 days
  const std::uint64_t d = 60 * 24 * kHour;
  ASSERT_GT(d, sut.span_ns());
  add_ok(sut, d, 1);
  EXPECT_TRUE(advance(sut, d - kMs).empty());
  EXPECT_EQ(advance(sut, d), std::vector<std::uint64_t>{1});
}

TEST(TimingWheel_test, NextWakeIsALowerBoundOfTheNextExpiry) {
  TimingWheel sut;
  EXPECT_EQ(sut.next_wake_ns(), UINT64_MAX);
  add_ok(sut, 70 * kSec, 1);
  const auto wake = sut.next_wake_ns();
  EXPECT_LE(wake, 70 * kSec);
  EXPECT_TRUE(advance(sut, wake - 1).empty());
  add_ok(sut, 0, 2);
  EXPECT_EQ(sut.next_wake_ns(), sut.now_ns()) << "a past deadline is due at once";
}

// ---- cancel and ids ------------------------------------------------------------------------------------

TEST(TimingWheel_test, CancelAfterFireIsANoOpReturningFalse) {
  TimingWheel sut;
  const auto id = add_ok(sut, 5 * kMs, 1);
  ASSERT_EQ(advance(sut, 5 * kMs), std::vector<std::uint64_t>{1});
  EXPECT_FALSE(sut.cancel(id));
  EXPECT_FALSE(sut.cancel(TimerId{}));
  EXPECT_FALSE(sut.cancel(TimerId{999'999, 1}));
  EXPECT_EQ(sut.size(), 0u);
}

TEST(TimingWheel_test, CancelledTimerNeverFiresAndSecondCancelReturnsFalse) {
  TimingWheel sut;
  const auto id = add_ok(sut, 5 * kMs, 1);
  add_ok(sut, 5 * kMs, 2);
  EXPECT_TRUE(sut.cancel(id));
  EXPECT_FALSE(sut.cancel(id));
  EXPECT_EQ(advance(sut, kHour), std::vector<std::uint64_t>{2});
}

TEST(TimingWheel_test, StaleIdAfterSlotReuseCannotCancelTheNewTimer) {
  TimingWheel sut(TimingWheelConfig{.initial_capacity = 1, .max_timers = 1});
  const auto old_id = add_ok(sut, 5 * kMs, 1);
  ASSERT_TRUE(sut.cancel(old_id));
  const auto new_id = add_ok(sut, 6 * kMs, 2);
  ASSERT_EQ(new_id.index, old_id.index) << "the test needs the slot reused";
  EXPECT_NE(new_id.generation, old_id.generation);
  EXPECT_FALSE(sut.cancel(old_id));
  EXPECT_EQ(advance(sut, 6 * kMs), std::vector<std::uint64_t>{2}) << "the new timer must survive the stale cancel";
  // And after a fire, too.
  const auto third = add_ok(sut, 7 * kMs, 3);
  EXPECT_FALSE(sut.cancel(new_id));
  EXPECT_TRUE(sut.cancel(third));
}

// ---- re-entrancy: callbacks add, cancel, and may not advance --------------------------------------------

TEST(TimingWheel_test, CallbackMayAddATimerThatFiresLaterInTheSameAdvance) {
  TimingWheel sut;
  add_ok(sut, 10 * kMs, 1);
  std::vector<std::uint64_t> fired;
  sut.advance(100 * kMs, [&](std::uint64_t p) {
    fired.push_back(p);
    if (p == 1) add_ok(sut, 50 * kMs, 2);     // ahead of the tick being fired, within this advance
    if (p == 2) add_ok(sut, 150 * kMs, 3);  // beyond this advance
  });
  EXPECT_EQ(fired, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(advance(sut, 150 * kMs), std::vector<std::uint64_t>{3});
}

TEST(TimingWheel_test, CallbackReArmingInThePastFiresOnTheNextAdvanceNotThisOne) {
  TimingWheel sut;
  add_ok(sut, kMs, 1);
  int calls = 0;
  const auto rearm = [&](std::uint64_t p) {
    ++calls;
    add_ok(sut, 0, p + 1);  // a self re-arming timer must not loop inside one advance
  };
  EXPECT_EQ(sut.advance(kMs, rearm), 1u);
  EXPECT_EQ(sut.advance(kMs, rearm), 1u);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(sut.size(), 1u);
}

TEST(TimingWheel_test, CallbackMayCancelAnotherTimerDueInTheSameTick) {
  TimingWheel sut;
  TimerId ids[2];
  ids[0] = add_ok(sut, 5 * kMs, 0);
  ids[1] = add_ok(sut, 5 * kMs, 1);
  std::vector<std::uint64_t> fired;
  std::vector<bool> cancel_results;
  sut.advance(5 * kMs, [&](std::uint64_t p) {
    fired.push_back(p);
    cancel_results.push_back(sut.cancel(ids[1 - p]));  // the other one, not yet fired
    cancel_results.push_back(sut.cancel(ids[p]));      // itself: already fired
  });
  ASSERT_EQ(fired.size(), 1u) << "the cancelled sibling must not fire";
  EXPECT_EQ(cancel_results, (std::vector<bool>{true, false}));
  EXPECT_EQ(sut.size(), 0u);
}

TEST(TimingWheel_test, CallbackMayCancelATimerOfALaterTickInTheSameAdvance) {
  TimingWheel sut;
  add_ok(sut, 5 * kMs, 1);
  const auto later = add_ok(sut, 9 * kSec, 2);  // a higher level, cascades within this advance
  const auto fired = [&] {
    std::vector<std::uint64_t> f;
    sut.advance(kHour, [&](std::uint64_t p) {
      f.push_back(p);
      if (p == 1) {
        EXPECT_TRUE(sut.cancel(later));
      }
    });
    return f;
  }();
  EXPECT_EQ(fired, std::vector<std::uint64_t>{1});
}

TEST(TimingWheel_test, NestedAdvanceFromACallbackIsRejectedAndChangesNothing) {
  TimingWheel sut;
  add_ok(sut, kMs, 1);
  add_ok(sut, 2 * kMs, 2);
  std::vector<std::uint64_t> fired;
  std::size_t nested = 99;
  sut.advance(kMs, [&](std::uint64_t p) {
    fired.push_back(p);
    nested = sut.advance(kHour, [&](std::uint64_t q) { fired.push_back(100 + q); });
  });
  EXPECT_EQ(nested, 0u);
  EXPECT_EQ(fired, std::vector<std::uint64_t>{1});
  EXPECT_EQ(sut.now_ns(), kMs);
  EXPECT_EQ(advance(sut, 2 * kMs), std::vector<std::uint64_t>{2});
}

TEST(TimingWheel_test, CallbackMayAddEnoughTimersToGrowThePool) {
  TimingWheel sut(TimingWheelConfig{.initial_capacity = 2, .max_timers = 1 << 12});
  add_ok(sut, kMs, 0);
  sut.advance(kMs, [&](std::uint64_t) {
    for (std::uint64_t i = 1; i <= 1000; ++i) add_ok(sut, kMs + i * kMs, i);
  });
  EXPECT_GE(sut.capacity(), 1000u);
  const auto fired = advance(sut, kSec + kMs);
  ASSERT_EQ(fired.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(fired.begin(), fired.end()));
}

// ---- pool ---------------------------------------------------------------------------------------------

TEST(TimingWheel_test, PoolGrowsToMaxTimersThenAddFailsWithPoolExhausted) {
  TimingWheel sut(TimingWheelConfig{.initial_capacity = 4, .max_timers = 100});
  EXPECT_EQ(sut.capacity(), 4u);
  std::vector<TimerId> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(add_ok(sut, kSec, static_cast<std::uint64_t>(i)));
  EXPECT_EQ(sut.capacity(), 100u);
  const auto r = sut.add(kSec, 100);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, AddStatus::PoolExhausted);
  EXPECT_FALSE(r.id.valid());
  EXPECT_EQ(sut.size(), 100u) << "a failed add arms nothing";
  ASSERT_TRUE(sut.cancel(ids[42]));
  EXPECT_TRUE(sut.add(kSec, 101).ok()) << "a freed slot is usable again";
  EXPECT_EQ(advance(sut, kSec).size(), 100u);
}

TEST(TimingWheel_test, SteadyStateReusesSlotsWithoutGrowing) {
  TimingWheel sut(TimingWheelConfig{.initial_capacity = 256, .max_timers = 1 << 20});
  std::uint64_t now = 0;
  for (int round = 0; round < 1000; ++round) {
    for (std::uint64_t i = 0; i < 200; ++i) add_ok(sut, now + (i + 1) * kMs, i);
    now += 200 * kMs;
    ASSERT_EQ(advance(sut, now).size(), 200u);
  }
  EXPECT_EQ(sut.capacity(), 256u);
}

TEST(TimingWheel_test, InvalidConfigIsRejectedNamingTheField) {
  const auto message = [](TimingWheelConfig cfg) {
    try {
      TimingWheel sut(cfg);
      return std::string("accepted");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
  };
  EXPECT_NE(message({.tick_ns = 0}).find("tick_ns"), std::string::npos);
  EXPECT_NE(message({.levels = 9}).find("levels"), std::string::npos);
  EXPECT_NE(message({.bucket_bits = 0}).find("bucket_bits"), std::string::npos);
  EXPECT_NE(message({.levels = 8, .bucket_bits = 8}).find("<= 56"), std::string::npos);
  EXPECT_NE(message({.initial_capacity = 10, .max_timers = 5}).find("initial_capacity"), std::string::npos);
}

}  // namespace
}  // namespace shmbus::daemon
