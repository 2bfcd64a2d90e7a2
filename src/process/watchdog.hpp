#pragma once
// systemd's watchdog protocol (WATCHDOG_USEC) for a server with several event loops: each loop
// beats on a timer of its own, and WATCHDOG=1 goes out only while every loop has beaten
// recently. A loop stuck in a handler stops beating, so the pings stop and the service manager
// (systemd, the lameduck supervisor) replaces the process, as it should.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace lameduck::detail {

class loop_watchdog {
 public:
  /// For `loops` loops that beat every period(); send delivers one WATCHDOG=1.
  loop_watchdog(std::chrono::microseconds interval, unsigned loops, std::int64_t now_ns,
                std::function<void()> send);

  /// How often each loop beats: a quarter of the interval, so that pings (at most one per
  /// period) come at least twice per interval, as systemd recommends, while a late timer
  /// or two is absorbed.
  std::chrono::nanoseconds period() const noexcept { return std::chrono::nanoseconds(period_ns_); }

  /// On loop i's thread, at its time now_ns: it is alive. Sends WATCHDOG=1 when every loop has
  /// beaten within half the interval and no ping went out within the last period.
  void beat(unsigned i, std::int64_t now_ns);

 private:
  std::int64_t interval_ns_, period_ns_;
  unsigned loops_;
  std::unique_ptr<std::atomic<std::int64_t>[]> beats_;
  std::atomic<std::int64_t> last_sent_ns_;
  std::function<void()> send_;
};

}  // namespace lameduck::detail
