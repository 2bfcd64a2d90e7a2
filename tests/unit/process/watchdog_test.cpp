// loop_watchdog from memory, on times the test gives: pings while every loop beats, none once
// one stops, and no more than one per period however many loops beat.

#include "process/watchdog.hpp"

#include <gtest/gtest.h>

namespace lameduck::detail {
namespace {

using std::chrono::microseconds;
constexpr std::int64_t ms = 1'000'000;  // in nanoseconds

TEST(LoopWatchdog, PingsAtMostOncePerPeriodWhileEveryLoopBeats) {
  int pings = 0;
  loop_watchdog w(microseconds(400'000), 2, 0, [&] { ++pings; });
  EXPECT_EQ(w.period(), std::chrono::milliseconds(100));
  w.beat(0, 100 * ms);
  EXPECT_EQ(pings, 1);
  w.beat(1, 101 * ms);  // the other loop, a moment later: the ping of this period is sent
  EXPECT_EQ(pings, 1);
  w.beat(0, 200 * ms);
  w.beat(1, 201 * ms);
  EXPECT_EQ(pings, 2);
}

TEST(LoopWatchdog, StopsPingingWhileOneLoopHasNotBeatenForHalfTheInterval) {
  int pings = 0;
  loop_watchdog w(microseconds(400'000), 2, 0, [&] { ++pings; });
  w.beat(0, 100 * ms);
  w.beat(1, 100 * ms);
  EXPECT_EQ(pings, 1);
  for (std::int64_t t = 200; t <= 600; t += 100)
    w.beat(0, t * ms);  // loop 1 is stuck in a handler from 100 ms on
  EXPECT_EQ(pings, 3) << "pinged at 200 and 300 ms only: loop 1 beat within 200 ms of them";
  w.beat(1, 650 * ms);  // it is back
  EXPECT_EQ(pings, 4);
}

TEST(LoopWatchdog, ALoopThatNeverBeatsStopsThePingsHalfAnIntervalAfterTheStart) {
  int pings = 0;
  loop_watchdog w(microseconds(400'000), 2, 0, [&] { ++pings; });
  w.beat(0, 200 * ms);
  EXPECT_EQ(pings, 1);
  w.beat(0, 300 * ms);
  EXPECT_EQ(pings, 1);
}

}  // namespace
}  // namespace lameduck::detail
