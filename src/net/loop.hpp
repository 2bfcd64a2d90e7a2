#pragma once
// One event loop per thread: its epoll set, its connections, their timeouts, its timers, the
// work other threads post to it and a pool of the buffers that only working connections hold.

#include <sys/epoll.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <lameduck/options.hpp>
#include <lameduck/server.hpp>

#include "exchange.hpp"
#include "net/intrusive_list.hpp"
#include "net/task.hpp"

namespace lameduck::detail {

class connection_base;
class loop;

/// Something in a loop's epoll set: a connection, a listener, the loop's wake-up descriptor.
class event_target {
 public:
  /// The descriptor reported readiness (epoll events): input, room for output, or an error.
  virtual void on_ready(std::uint32_t events) = 0;

 protected:
  ~event_target() = default;
};

/// A one-shot timer on a loop's thread (the acceptor's retry, a drain's deadline and idle
/// grace): calls its function at the deadline unless cancelled first. While armed, it keeps
/// its loop running, as a pending wait would.
class loop_timer : list_link {
 public:
  explicit loop_timer(loop& l) noexcept : loop_(l) {}
  ~loop_timer() { cancel(); }
  loop_timer(const loop_timer&) = delete;
  loop_timer& operator=(const loop_timer&) = delete;

  /// Calls f at the time t (replacing whatever was armed); on the loop's thread only.
  void start_at(std::chrono::steady_clock::time_point t, std::function<void()> f);
  /// Calls f once d has passed (replacing whatever was armed); on the loop's thread only.
  void start_after(std::chrono::steady_clock::duration d, std::function<void()> f);
  /// Disarms the timer if it is armed; its function is not called.
  void cancel() noexcept;

 private:
  friend class loop;
  friend class intrusive_list<loop_timer, list_link>;
  loop& loop_;
  std::int64_t deadline_ns_ = 0;
  std::function<void()> fn_;
};

/// The timeouts a connection can wait on; at most one at a time.
enum class timeout_kind : std::uint8_t { header, body, idle, write, linger, none };
inline constexpr std::size_t timeout_kind_count = static_cast<std::size_t>(timeout_kind::none);

/// A connection's place in its loop's registry (every live connection).
struct registry_hook : list_link {};
/// A connection's place in its loop's list for the timeout it waits on.
struct timeout_hook : list_link {};

/// The monotonic clock at the resolution of the kernel's tick (a few milliseconds), which is
/// read without the time stamp counter: cheaper, and precise enough for timeouts.
std::int64_t coarse_now_ns() noexcept;

/// An event loop and everything owned by its thread.
class loop {
 public:
  loop(server::impl& owner, unsigned index, const server_options& options);
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

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

  /// The coarse monotonic time as of the last wake-up of the loop or the last return of the
  /// application's code (a handler, upgrade_handlers, posted work): what timeouts run from.
  /// Reading the clock once for each, rather than at every arm(), spares two clock reads per
  /// request; the loop's own work in between takes microseconds, and application code that
  /// blocks is followed by a fresh read.
  std::int64_t now_ns() const noexcept { return now_ns_; }
  /// Reads the clock into now_ns().
  void refresh_now() noexcept { now_ns_ = coarse_now_ns(); }
  /// Starts c's timeout of kind k from now_ns() (replacing any it had); none disarms.
  void arm(connection_base& c, timeout_kind k) noexcept;
  /// Adds a descriptor to this loop's epoll set (by default edge-triggered, input and output,
  /// as connections want); t.on_ready() then reports its events. False on failure.
  bool watch(int fd, event_target& t,
             std::uint32_t events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) noexcept;
  /// Takes a descriptor out of the epoll set before it is closed. Needed when a duplicate of
  /// it stays open elsewhere (a listener): the set forgets only closed open file descriptions.
  void unwatch(int fd) noexcept;
  /// Runs f on this loop's thread, after what was posted before it; callable from any thread.
  /// If the loop has exited, f is destroyed with the loop without being called.
  void post(task f);
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
  /// Drops the keep-running guard, so that the loop's thread returns once the work already
  /// posted is done and no loop_timer is armed; callable from any thread.
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
  friend class loop_timer;

  /// Wakes the loop's thread when another thread posts; reading it is left to run_posted().
  struct wake_target final : event_target {
    void on_ready(std::uint32_t) override { signalled = pending = true; }
    bool signalled = false;  // the eventfd has a count to read
    bool pending = false;    // the queue may hold work: run it before blocking again
  };

  void run();
  bool may_exit();
  void run_posted();
  void schedule_timer(std::int64_t deadline_ns);
  void on_timer(std::int64_t now);

  server::impl& owner_;
  const unsigned index_;
  const limits& limits_;
  // The one epoll set of the loop: connections (armed once each, edge-triggered), listeners
  // and the wake-up eventfd. The thread blocks only in epoll_wait on it, with the time to the
  // next deadline as its timeout, so a batch of events costs one system call.
  int epfd_ = -1;
  int wake_fd_ = -1;
  wake_target wake_;
  bool keep_running_ = true;
  std::mutex post_mutex_;
  std::vector<task> posted_;     // guarded by post_mutex_
  bool wake_requested_ = false;  // guarded by post_mutex_: the loop will look at posted_
  std::vector<task> running_;    // the batch being run; keeps its capacity for the next
  intrusive_list<loop_timer, list_link> timers_;
  bool dispatching_ = false;
  std::vector<connection_base*> retired_;
  std::int64_t now_ns_ = 0;
  std::int64_t timer_deadline_ns_ = 0;  // the earliest a timeout or timer may be due; 0: none
  std::array<std::int64_t, timeout_kind_count> durations_ns_{};
  std::array<intrusive_list<connection_base, timeout_hook>, timeout_kind_count> timeouts_;
  std::vector<exchange*> free_exchanges_;
  std::thread thread_;
  const std::uint64_t serial_;
  std::shared_ptr<loop_anchor> anchor_;
  static thread_local std::uint64_t current_serial_;
};

}  // namespace lameduck::detail
