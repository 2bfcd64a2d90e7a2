#include "process/watchdog.hpp"

#include <limits>

namespace lameduck::detail {

loop_watchdog::loop_watchdog(std::chrono::microseconds interval, unsigned loops,
                             std::int64_t now_ns, std::function<void()> send)
    : interval_ns_(std::chrono::nanoseconds(interval).count()),
      period_ns_(interval_ns_ / 4),
      loops_(loops),
      beats_(std::make_unique<std::atomic<std::int64_t>[]>(loops)),
      last_sent_ns_(std::numeric_limits<std::int64_t>::min() / 2),
      send_(std::move(send)) {
  for (unsigned i = 0; i < loops_; ++i)
    beats_[i].store(now_ns, std::memory_order_relaxed);
}

void loop_watchdog::beat(unsigned i, std::int64_t now_ns) {
  beats_[i].store(now_ns, std::memory_order_relaxed);
  for (unsigned k = 0; k < loops_; ++k) {
    if (now_ns - beats_[k].load(std::memory_order_relaxed) > interval_ns_ / 2) return;
  }
  std::int64_t last = last_sent_ns_.load(std::memory_order_relaxed);
  // A loop whose ping is due takes the turn; the others, beating at nearly the same time,
  // find it taken.
  if (now_ns - last < period_ns_ ||
      !last_sent_ns_.compare_exchange_strong(last, now_ns, std::memory_order_relaxed)) {
    return;
  }
  send_();
}

}  // namespace lameduck::detail
