#pragma once
// The average rate of one transfer since it began, held against a least rate once a grace
// period has passed: how a minimum data rate (lameduck::data_rate) is enforced. It is checked
// when data moves, so it costs nothing while a connection waits.

#include <cstddef>
#include <cstdint>
#include <limits>

namespace lameduck::detail {

class rate_meter {
 public:
  /// A transfer begins at now_ns, with nothing moved yet.
  void start(std::int64_t now_ns) noexcept {
    since_ns_ = now_ns;
    bytes_ = 0;
  }
  /// The transfer is over (or paused for a reason that is not the peer's); too_slow() is false
  /// until the next start().
  void stop() noexcept { since_ns_ = not_running; }
  bool running() const noexcept { return since_ns_ != not_running; }
  /// n more bytes moved.
  void add(std::size_t n) noexcept { bytes_ += n; }

  /// Whether, at now_ns, the transfer has run longer than grace_ns and averaged less than
  /// bytes_per_second (0: no least rate).
  bool too_slow(std::int64_t now_ns, std::size_t bytes_per_second,
                std::int64_t grace_ns) const noexcept {
    if (!running() || bytes_per_second == 0) return false;
    const std::int64_t elapsed_ns = now_ns - since_ns_;
    if (elapsed_ns <= grace_ns) return false;
    // In double: bytes × 1e9 overflows 64 bits past 18 GB.
    return static_cast<double>(bytes_) * 1e9 <
           static_cast<double>(bytes_per_second) * static_cast<double>(elapsed_ns);
  }

 private:
  static constexpr std::int64_t not_running = std::numeric_limits<std::int64_t>::min();
  std::int64_t since_ns_ = not_running;
  std::uint64_t bytes_ = 0;
};

}  // namespace lameduck::detail
