#pragma once
// What the supervisor is asked to do: the command line and the TOML file, parsed into one
// value before anything starts. Every field has the default a user gets without saying it.

#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <lameduck/options.hpp>

namespace lameduck::supervisor {

using milliseconds = std::chrono::milliseconds;

/// A listening socket the supervisor binds once and passes to every worker.
struct listen_spec {
  /// Its name in LISTEN_FDNAMES ("NAME=" before the address); empty: none.
  std::string name;
  /// "HOST:PORT", "[V6]:PORT", or a Unix socket path (starting with '/' or '.').
  std::string address;
  bool operator==(const listen_spec&) const = default;
};

/// How the supervisor learns that a worker is ready to serve.
enum class readiness_mode {
  notify,  ///< READY=1 on the worker's NOTIFY_SOCKET (systemd's protocol; the default)
  fd,      ///< a newline written to an inherited pipe (s6's convention), on ready_fd
  after,   ///< a fixed time after the start (ready_after), for programs that can do neither
};

/// Restarts after unexpected exits wait initial × factor^(n-1) for the n-th crash in a row,
/// at most max; a worker that ran for stable_after counts as healthy and resets n.
struct backoff_policy {
  milliseconds initial{100};
  double factor = 2.0;
  milliseconds max{30'000};
  milliseconds stable_after{10'000};
  bool operator==(const backoff_policy&) const = default;
};

/// One program run as a cluster of workers.
struct program_config {
  /// A short name for logs, status and several programs in one file.
  std::string name = "app";
  /// The program and its arguments (after "--" on the command line); never empty.
  std::vector<std::string> command;
  /// How many workers; 0 means one per online core.
  int instances = 0;
  /// Sockets to bind and pass (LISTEN_FDS from descriptor 3, in this order).
  std::vector<listen_spec> listen;
  /// Extra environment variables for the workers (over the supervisor's own).
  std::map<std::string, std::string> environment;
  /// Working directory of the workers; empty: the supervisor's.
  std::string directory;

  readiness_mode readiness = readiness_mode::notify;
  /// The descriptor the ready pipe is given as, with readiness_mode::fd (3 + listeners by
  /// default: after the passed sockets).
  int ready_fd = -1;
  /// With readiness_mode::after: how long after its start a worker counts as ready.
  milliseconds ready_after{0};
  /// A starting worker that is not ready within this is killed (and a reload fails).
  milliseconds ready_timeout{30'000};
  /// The signal that asks a worker to drain and exit.
  int stop_signal = SIGTERM;
  /// A worker still alive this long after its stop signal is killed, with its process group.
  milliseconds kill_timeout{30'000};
  /// WATCHDOG_USEC for the workers; zero: no watchdog.
  milliseconds watchdog{0};
  /// A worker whose resident memory exceeds this is replaced gracefully; 0: no limit.
  std::uint64_t max_memory = 0;
  /// Replacements a reload starts at once.
  int surge = 1;
  /// Old workers a reload stops at once.
  int max_unavailable = 1;
  backoff_policy restart;

  /// Directory for one log file per slot (reopened on SIGUSR1); empty: standard output only.
  std::string log_dir;
  /// Lines of output kept in memory for `lameduck logs`.
  std::size_t log_lines = 1000;

  bool operator==(const program_config&) const = default;
};

/// Everything `lameduck run` needs.
struct run_config {
  /// The control socket's path; empty: the default (control_default_path()).
  std::string control;
  /// The format of the supervisor's standard output: its own lines, and the workers' lines
  /// it relays (wrapped as fields in the structured formats).
  lameduck::log_format log_format = lameduck::log_format::text;
  /// "HOST:PORT" where the supervisor answers GET /metrics (Prometheus's text format) itself;
  /// empty: no metrics.
  std::string metrics_listen;
  /// The programs, in order; at least one.
  std::vector<program_config> programs;
  bool operator==(const run_config&) const = default;
};

/// A command line or configuration that cannot be run: what() is the one line to print
/// before exiting with status 2.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The control socket used when none is given: $XDG_RUNTIME_DIR/lameduck/control.sock, or
/// /run/lameduck/control.sock for root (or when XDG_RUNTIME_DIR is unset).
std::string control_default_path();

}  // namespace lameduck::supervisor
