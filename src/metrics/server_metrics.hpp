#pragma once
// A server's metrics (health_options::metrics_path; docs/metrics.md lists them): the counters
// each loop keeps for itself, and the scrape that sums them.
//
// Cheap by construction. Each loop (worker) owns a loop_counters block, on cache lines of its
// own, that only its thread writes: a relaxed load and a store per count, no locked
// instruction, no line shared with another thread while requests are served. A scrape reads
// every loop's block (relaxed loads, from whichever thread answers it) and sums them, so the
// cost of reading falls on the scrape, not on requests. A single writer's counter never goes
// down, and a sum of such reads taken loop by loop never does either: a counter read twice
// is never seen to fall, which Prometheus would take for a restart.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include <lameduck/server.hpp>

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

/// Upper bounds of lameduck_request_duration_seconds's buckets, in seconds: the Prometheus
/// client libraries' defaults, which dashboards and alerts already expect. Durations run on the
/// loop's clock (net/event_loop.hpp: the coarse monotonic clock, read once per wake-up and after
/// the handler), a few milliseconds coarse, so finer buckets would be noise; as both ends of a
/// duration fall anywhere within a tick, the sum (and so the mean) is not biased.
inline constexpr std::array<double, 11> request_duration_bounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                0.5,   1,    2.5,   5,    10};
/// The same bounds in nanoseconds, for the loop's clock.
inline constexpr std::array<std::int64_t, 11> request_duration_bounds_ns{
    5'000'000,   10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000,
    500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
/// Status classes 1xx to 9xx (a handler may answer 200..999), indexed by the first digit.
inline constexpr std::size_t status_class_count = 10;

/// What one loop counts; written only by its thread. Beside the counts per state that the
/// worker already keeps (worker::counts, requests_completed and requests_aborted).
struct alignas(64) loop_counters {
  /// Connections accepted from a listener, those refused over limits::max_connections
  /// included.
  single_writer_counter accepted;
  /// Connections answered 503 at once because limits::max_connections were open.
  single_writer_counter rejected;
  /// Bytes of HTTP read from and written to clients (for HTTPS, the decrypted bytes); an
  /// upgraded connection's and a lingering one's included.
  single_writer_counter received_bytes, sent_bytes;
  /// Responses sent, by status class (responses[2] counts 2xx); the error statuses the server
  /// answers itself included.
  std::array<single_writer_counter, status_class_count> responses;
  /// The same responses by duration, one count per bucket (not cumulative; the last one for
  /// those above the last bound), and the durations' sum.
  std::array<single_writer_counter, request_duration_bounds_ns.size() + 1> duration_buckets;
  single_writer_counter duration_sum_ns;

  /// Counts a response with its status and how long its request took, from its first byte
  /// to its response's completion.
  void count_response(int status, std::int64_t took_ns) noexcept {
    const auto cls = static_cast<std::size_t>(status / 100);
    responses[cls < status_class_count ? cls : 0].add();
    if (took_ns < 0) took_ns = 0;
    std::size_t i = 0;
    // From the smallest: most requests take less than the first bound.
    while (i < request_duration_bounds_ns.size() && took_ns > request_duration_bounds_ns[i])
      ++i;
    duration_buckets[i].add();
    duration_sum_ns.add(static_cast<std::uint64_t>(took_ns));
  }
};

/// Counts summed over loops (and over the loops of earlier runs of the same server object, so
/// that a server started again goes on counting from where it was).
struct loop_totals {
  std::uint64_t accepted = 0, rejected = 0, received_bytes = 0, sent_bytes = 0;
  std::array<std::uint64_t, status_class_count> responses{};
  std::array<std::uint64_t, request_duration_bounds_ns.size() + 1> duration_buckets{};
  std::uint64_t duration_sum_ns = 0;
  /// Connections closed, and requests whose response was cut off or never sent.
  std::uint64_t closed = 0, aborted = 0;

  /// Adds one loop's counters.
  void add(const loop_counters& c) noexcept;
  /// Adds another total.
  void add(const loop_totals& t) noexcept;
};

/// Everything one scrape reports.
struct server_metrics_sample {
  loop_totals totals;
  /// Open connections per state (closed is unused: totals.closed counts them).
  std::array<std::uint64_t, connection_state_count> open{};
  std::uint64_t max_connections = 0;
  bool ready = false;      ///< what the readiness endpoint says now
  bool draining = false;   ///< a graceful drain was ordered (its lame-duck delay included)
  bool lame_duck = false;  ///< within the drain's lame-duck delay
  /// Stops of this server object that completed, gracefully or not.
  std::uint64_t stops_graceful = 0, stops_forced = 0;
};

/// The sample in the text exposition format (metrics/exposition.hpp).
std::string write_server_metrics(const server_metrics_sample& s);

}  // namespace lameduck::detail
