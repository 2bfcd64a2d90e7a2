#pragma once
// Listening sockets: binding them (or taking one the service manager passed), and a loop's
// acceptor for each, which hands every accepted socket to whoever owns the acceptor.

#include <cstddef>
#include <functional>
#include <string>
#include <system_error>

#include "net/address.hpp"
#include "net/event_loop.hpp"

namespace lameduck::detail {

/// How to open a listening socket.
struct listen_settings {
  int backlog = 4096;
  bool reuse_port = false;  ///< SO_REUSEPORT: share the port with other live listeners
};

/// Binds a non-blocking, close-on-exec listening socket to `address` and fills in the address
/// it got (the kernel's port for port 0); -1 with ec set on failure.
int open_listener(socket_address& address, const listen_settings& settings, std::error_code& ec);

/// Makes a passed socket (LISTEN_FDS) usable as a listener: it must be a listening TCP socket
/// (IPv4 or IPv6); sets it non-blocking and reads its address. False when it is not usable.
bool adopt_listener(int fd, socket_address& address) noexcept;

/// A loop's view of one listening socket: waits for connections and accepts them.
class acceptor final : public event_target {
 public:
  /// Receives each accepted socket (non-blocking, close-on-exec) and its peer's address.
  using admit_fn = std::function<void(int fd, const socket_address& peer, socklen_t size)>;

  /// Holds its own duplicate of listen_fd, so that the socket closes with the last acceptor.
  acceptor(event_loop& l, int listen_fd, admit_fn admit);
  ~acceptor() override;
  acceptor(const acceptor&) = delete;
  acceptor& operator=(const acceptor&) = delete;

  /// Watches the listener in the loop's epoll set, which reports connections already queued.
  void start();
  /// Closes this loop's duplicate of the listener, after accepting every connection the kernel
  /// has already completed if accept_queued. Closing a listening socket resets the connections
  /// still queued on it, so the last loop to close accepts right before: only a client that
  /// connects in that instant, after the stop began, can still be reset. Without
  /// accept_queued, the socket lives on elsewhere (handed over) and so does its queue.
  void close(bool accept_queued);

  // While a retry is armed, arrivals wait for it: each new connection is a new edge, and
  // accepting at every one spun (1,697 accept4 calls in half a second of a flood, and a log line
  // per 50 arrivals instead of one every 5 s). nginx takes the listener out of epoll instead.
  void on_ready(std::uint32_t) override {
    if (!retry_.armed()) accept_some();
  }

  /// How long to wait before accepting again after accept4 failed for want of descriptors or
  /// memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): retrying at once would spin.
  static constexpr std::chrono::milliseconds retry_after{100};
  /// While accept4 keeps failing, the first failure is logged, then one line with the count
  /// every this many (every 5 s at one attempt per retry_after), then the recovery: a server
  /// out of descriptors wrote 157 identical lines in 2 s before.
  static constexpr unsigned failures_per_line = 50;

 private:
  enum class batch_end { queue_empty, limit, failed };

  void accept_some();
  batch_end accept_batch(std::size_t max);
  void report_failure();
  void report_recovery();

  event_loop& loop_;
  int fd_ = -1;
  loop_timer retry_;
  admit_fn admit_;
  bool failing_ = false;     // the last attempt failed
  unsigned unreported_ = 0;  // failures since the last line
};

}  // namespace lameduck::detail
