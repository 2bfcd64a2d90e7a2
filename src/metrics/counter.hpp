#pragma once
// The one kind of counter the metrics keep (metrics/server_metrics.hpp): one writer, any reader.

#include <atomic>
#include <cstdint>

namespace lameduck::detail {

/// A count that one thread raises and any thread reads: a relaxed load and store, which on
/// x86 are plain moves (an atomic fetch_add would be a locked instruction, needless with one
/// writer).
class single_writer_counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t load() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

}  // namespace lameduck::detail
