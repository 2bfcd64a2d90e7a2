#pragma once
// The supervisor's own metrics (`--metrics-listen`): what a scrape reports, and the one
// exchange a scraper's connection carries, bytes in and a response out. No I/O here: the
// daemon's loop owns the sockets, on its one thread (it forks: no server, no threads), and
// tests feed an exchange from memory.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster.hpp"
#include "control.hpp"
#include "http1/request_parser.hpp"

namespace lameduck::supervisor {

/// How long a scraper may take to send its request, from its connection: a scrape's request is
/// one small packet, and a client that trickles it byte by byte is cut off.
inline constexpr std::chrono::milliseconds metrics_request_timeout{2000};
/// Scrapers' connections open at once; one more is closed as soon as it is accepted.
inline constexpr std::size_t max_metrics_connections = 16;

/// What a scrape reports of one program.
struct program_metrics {
  program_status status;
  cluster_counters counters;
};

/// The scrape, in Prometheus's text format (docs/supervisor.md lists the families): workers by
/// state, configured instances, generation, a reload running, reloads by outcome, restarts by
/// reason, stopped workers' exits by outcome, each serving worker's resident memory, the
/// supervisor's upgrades, and the lines it dropped while its standard output stalled.
std::string format_metrics(const std::vector<program_metrics>& programs, std::uint64_t upgrades,
                           std::uint64_t log_lines_dropped = 0);

/// One scraper's connection: its request read by the library's parser, with small limits, and
/// one response that closes the connection: 200 for GET or HEAD /metrics, 404 for another
/// path, 405 for another method, the parser's status (400, 413, 414, 431) for a bad request,
/// 408 when the request is late.
class metrics_exchange {
 public:
  metrics_exchange();
  /// Takes bytes received; true once the response is ready (what follows is not read).
  /// scrape() gives the body of a 200.
  bool feed(std::string_view data, const std::function<std::string()>& scrape);
  /// The request did not arrive in time: the response is a 408.
  void time_out();
  /// Whether the response is ready.
  bool answered() const noexcept { return !response_.empty(); }
  /// The response, whole.
  const std::string& response() const noexcept { return response_; }

 private:
  void respond(const std::function<std::string()>& scrape);

  http1::request_parser parser_;
  std::string response_;
};

}  // namespace lameduck::supervisor
