// rate_meter from memory, on a clock the test sets: the grace, the average since the start,
// and a meter that is not running.

#include "net/rate_meter.hpp"

#include <gtest/gtest.h>

namespace lameduck::detail {
namespace {

constexpr std::int64_t ms = 1'000'000;  // in nanoseconds

TEST(RateMeter, IsNeverTooSlowWithinTheGrace) {
  rate_meter m;
  m.start(0);
  EXPECT_FALSE(m.too_slow(5'000 * ms, 240, 5'000 * ms));  // nothing moved, but 5 s is the grace
  EXPECT_TRUE(m.too_slow(5'001 * ms, 240, 5'000 * ms));
}

TEST(RateMeter, HoldsTheAverageSinceTheStartAgainstTheLeastRate) {
  rate_meter m;
  m.start(1'000 * ms);
  m.add(2'400);  // 2,400 bytes in 10 s: exactly 240 per second
  EXPECT_FALSE(m.too_slow(11'000 * ms, 240, 0));
  EXPECT_TRUE(m.too_slow(11'001 * ms, 240, 0));
  EXPECT_FALSE(m.too_slow(11'001 * ms, 239, 0));
}

TEST(RateMeter, ABurstEarlyCarriesALaterPause) {
  rate_meter m;
  m.start(0);
  m.add(24'000);  // 100 s worth at 240 per second, at once
  EXPECT_FALSE(m.too_slow(99'000 * ms, 240, 5'000 * ms));
  EXPECT_TRUE(m.too_slow(101'000 * ms, 240, 5'000 * ms));
}

TEST(RateMeter, IsNotTooSlowWhenStoppedOrWithoutALeastRate) {
  rate_meter m;
  EXPECT_FALSE(m.running());
  EXPECT_FALSE(m.too_slow(60'000 * ms, 240, 0));  // never started
  m.start(0);
  EXPECT_TRUE(m.running());
  EXPECT_FALSE(m.too_slow(60'000 * ms, 0, 0));  // a rate of 0 is no least rate
  m.stop();
  EXPECT_FALSE(m.too_slow(60'000 * ms, 240, 0));
}

TEST(RateMeter, StartingAgainForgetsTheBytesOfBefore) {
  rate_meter m;
  m.start(0);
  m.add(1'000'000);
  m.start(10'000 * ms);
  EXPECT_TRUE(m.too_slow(20'000 * ms, 240, 0));
}

TEST(RateMeter, CountsPastWhatSixtyFourBitsOfBytesTimesASecondHold) {
  rate_meter m;
  m.start(0);
  m.add(std::uint64_t{40} << 30);  // 40 GiB in 100 s: 429 MB/s; bytes × 1e9 overflows 2^64
  EXPECT_FALSE(m.too_slow(100'000 * ms, 400'000'000, 0));
  EXPECT_TRUE(m.too_slow(100'000 * ms, 500'000'000, 0));
}

}  // namespace
}  // namespace lameduck::detail
