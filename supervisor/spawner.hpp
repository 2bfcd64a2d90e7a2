#pragma once
// Starting one worker process: everything between "this slot needs a worker" and a running
// program with its sockets, environment, readiness channel and output pipes. The child does
// only async-signal-safe work between fork and exec; everything else is prepared before.

#include <sys/types.h>

#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "config.hpp"

namespace lameduck::supervisor {

/// A descriptor that closes itself.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept;
  ~unique_fd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// A listening socket passed to every worker, and its LISTEN_FDNAMES name.
struct shared_socket {
  int fd = -1;
  std::string name;
};

/// What a worker needs from the supervisor besides its program.
struct spawn_context {
  /// The listening sockets, given as descriptors 3, 4...
  std::vector<shared_socket> sockets;
  /// The read end of the supervisor's lifeline (LAMEDUCK_LIFELINE_FD); -1: none.
  int lifeline = -1;
  int slot = 0;
  std::uint64_t generation = 0;
  /// A name unique to this worker, for its NOTIFY_SOCKET (an abstract socket).
  std::string notify_name;
};

/// A started worker and the supervisor's ends of its channels.
struct spawned_worker {
  pid_t pid = -1;
  unique_fd output;  ///< its standard output
  unique_fd errors;  ///< its standard error
  unique_fd notify;  ///< the datagram socket its NOTIFY_SOCKET names (with credentials)
  unique_fd ready;   ///< the read end of its ready pipe (readiness_mode::fd); else none
};

/// Finds program in PATH (or takes it as given when it has a '/'); empty when it is not an
/// executable file.
std::string find_program(const std::string& program);

/// Starts a worker of p: its own process group, the stop signal as its parent-death signal,
/// the sockets from descriptor 3, stdin from /dev/null, output to pipes, and the environment
/// (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, NOTIFY_SOCKET, WATCHDOG_USEC, LAMEDUCK_WORKER,
/// LAMEDUCK_GENERATION, LAMEDUCK_READY_FD, LAMEDUCK_LIFELINE_FD). Fails (pid -1, ec) when
/// the program could not be executed; exec's own error is reported, not a child's exit.
spawned_worker spawn_worker(const program_config& p, const spawn_context& c, std::error_code& ec);

}  // namespace lameduck::supervisor
