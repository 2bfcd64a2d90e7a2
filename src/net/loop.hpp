#pragma once
// One event loop per thread: its io_context, its connections, their timeouts and a pool of
// the buffers that only working connections hold.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include <lameduck/options.hpp>
#include <lameduck/server.hpp>

#include "exchange.hpp"
#include "intrusive_list.hpp"

namespace lameduck::detail {

class connection_base;

/// The timeouts a connection can wait on; at most one at a time.
enum class timeout_kind : std::uint8_t { header, body, idle, write, linger, none };
inline constexpr std::size_t timeout_kind_count = static_cast<std::size_t>(timeout_kind::none);

/// A connection's place in its loop's registry (every live connection).
struct registry_hook : list_link {};
/// A connection's place in its loop's list for the timeout it waits on.
struct timeout_hook : list_link {};

/// A monotonic time in nanoseconds, read from the coarse clock (cheap enough for every request).
std::int64_t coarse_now_ns() noexcept;

/// An event loop and everything owned by its thread.
class loop {
 public:
  loop(server::impl& owner, unsigned index, const server_options& options);
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  asio::io_context& io() noexcept { return io_; }
  server::impl& owner() noexcept { return owner_; }
  unsigned index() const noexcept { return index_; }
  /// A number no other loop of this process has had.
  std::uint64_t serial() const noexcept { return serial_; }
  /// Whether the calling thread is this loop's thread.
  bool in_this_thread() const noexcept { return current_serial_ == serial_; }
  /// The serial of the loop whose thread is calling; 0 on other threads.
  static std::uint64_t current_serial() noexcept { return current_serial_; }
  /// What exchanges use to reach this loop from other threads.
  const std::shared_ptr<loop_anchor>& anchor() const noexcept { return anchor_; }

  /// Starts c's timeout of kind k from now (replacing any it had); none disarms.
  void arm(connection_base& c, timeout_kind k) noexcept;
  /// Adds a connection's socket to this loop's epoll set (edge-triggered, input and output);
  /// c.on_ready() then reports its events. False on failure.
  bool watch(int fd, connection_base& c) noexcept;
  /// Deletes a closed connection, or after the current batch of events if one is being
  /// handed out (later events of the batch may still name it).
  void retire(connection_base* c) noexcept;
  /// Takes an exchange from the pool (or makes one).
  exchange* acquire_exchange();
  /// Returns an exchange nobody refers to any more to the pool.
  void recycle_exchange(exchange* e) noexcept;

  /// Starts the thread that runs this loop.
  void start_thread();
  /// Lets the loop's thread finish once it has no more work, and joins it.
  void join();
  /// Drops the keep-running guard and cancels the timer, so that run() returns once the work
  /// already queued is done; callable from any thread.
  void allow_exit();

  /// Every live connection of this loop.
  intrusive_list<connection_base, registry_hook> connections;
  /// Connections per state on this loop; written only by this loop's thread.
  std::array<std::atomic<std::size_t>, connection_state_count> counts{};
  /// Requests answered completely, and abandoned, on this loop; written only by its thread.
  std::atomic<std::size_t> requests_completed{0}, requests_aborted{0};
  /// A graceful drain has begun: responses say "Connection: close". Set by the verb's thread
  /// at once, before the loop has handled the drain, so that no response written after the
  /// call says otherwise.
  std::atomic<bool> draining{false};
  /// During a drain, idle connections wait for their next request (the idle grace period).
  std::atomic<bool> keep_idle{false};

 private:
  void schedule_timer(std::int64_t deadline_ns);
  void on_timer();
  void wait_for_events();
  void dispatch_events();

  server::impl& owner_;
  const unsigned index_;
  const limits& limits_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> keep_running_;
  asio::steady_timer timer_;
  // The connections' own epoll set. asio's reactor re-arms its descriptor (epoll_ctl) on every
  // wait; this set is armed once per connection, and asio only waits on the set itself, so
  // one re-arm serves a whole batch of events.
  asio::posix::basic_stream_descriptor<asio::io_context::executor_type> events_;
  bool dispatching_ = false;
  std::vector<connection_base*> retired_;
  std::int64_t timer_deadline_ns_ = 0;  // 0: not armed
  std::array<std::int64_t, timeout_kind_count> durations_ns_{};
  std::array<intrusive_list<connection_base, timeout_hook>, timeout_kind_count> timeouts_;
  std::vector<exchange*> free_exchanges_;
  std::thread thread_;
  const std::uint64_t serial_;
  std::shared_ptr<loop_anchor> anchor_;
  static thread_local std::uint64_t current_serial_;
};

}  // namespace lameduck::detail
