#pragma once
// One event loop per thread: an epoll set, work posted from other threads, one-shot timers,
// lists of same-duration timeouts, and the clock they run on. It knows nothing of HTTP: what
// it watches are event_targets, what it times out are timed entries.

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "net/intrusive_list.hpp"
#include "net/system_calls.hpp"
#include "net/task.hpp"

namespace lameduck::detail {

class event_loop;

/// Something in a loop's epoll set: a connection, a listener, the loop's wake-up descriptor.
class event_target {
 public:
  virtual ~event_target() = default;
  /// The descriptor reported readiness (epoll events): input, room for output, or an error.
  virtual void on_ready(std::uint32_t events) = 0;
};

/// A one-shot timer on a loop's thread (an acceptor's retry, a drain's deadline): calls its
/// function at the deadline unless cancelled first. While armed, it keeps its loop running.
class loop_timer : list_link {
 public:
  explicit loop_timer(event_loop& l) noexcept : loop_(l) {}
  ~loop_timer() { cancel(); }
  loop_timer(const loop_timer&) = delete;
  loop_timer& operator=(const loop_timer&) = delete;

  /// Calls f at the time t (replacing whatever was armed); on the loop's thread only.
  void start_at(std::chrono::steady_clock::time_point t, std::function<void()> f);
  /// Calls f once d has passed (replacing whatever was armed); on the loop's thread only.
  void start_after(std::chrono::steady_clock::duration d, std::function<void()> f);
  /// Disarms the timer if it is armed; its function is not called.
  void cancel() noexcept;
  /// Whether it is armed: started, and neither called nor cancelled since.
  bool armed() const noexcept { return linked(); }

 private:
  friend class event_loop;
  friend class intrusive_list<loop_timer, list_link>;
  event_loop& loop_;
  std::int64_t deadline_ns_ = 0;
  std::function<void()> fn_;
};

/// A timed entry's place in the timeout_list it waits on.
struct timeout_hook : list_link {};

/// Something that waits on at most one timeout_list at a time. Not polymorphic: the list
/// says what expiring means for its entries, which spares each entry a vtable pointer of its
/// own (8 bytes of every idle connection).
struct timed : timeout_hook {
  /// When the timeout passes (valid while on a list).
  std::int64_t deadline_ns = 0;
};

/// Entries that all wait the same duration, so that appending keeps the list sorted by
/// deadline: arming is O(1) and only the head can be due. Lives on one loop's thread.
class timeout_list {
 public:
  /// What happens to an entry whose timeout has passed; it is off the list, and may be deleted.
  using expire_fn = void (*)(timed& t);

  /// A list on l whose entries wait d, each handed to expire when it has; a zero d disables
  /// the list (arm() then only disarms).
  timeout_list(event_loop& l, std::chrono::nanoseconds d, expire_fn expire);
  ~timeout_list();
  timeout_list(const timeout_list&) = delete;
  timeout_list& operator=(const timeout_list&) = delete;

  /// Starts t's wait from the loop's now_ns(), taking it off any list it was on; false (and
  /// t waits on nothing) when the list is disabled.
  bool arm(timed& t) noexcept;
  /// Takes t off whatever list it waits on.
  static void disarm(timed& t) noexcept { static_cast<timeout_hook&>(t).unlink(); }

 private:
  friend class event_loop;
  event_loop& loop_;
  const std::int64_t duration_ns_;
  const expire_fn expire_;
  intrusive_list<timed, timeout_hook> entries_;
};

/// The monotonic clock at the resolution of the kernel's tick (a few milliseconds), which is
/// read without the time stamp counter: cheaper, and precise enough for timeouts.
std::int64_t coarse_now_ns() noexcept;

/// An epoll set and the thread that waits on it.
class event_loop {
 public:
  /// log receives the line explaining why the loop's thread is ending the process.
  explicit event_loop(std::function<void(std::string_view)> log,
                      const system_calls& os = real_system_calls);
  /// Joins the thread; posted work that never ran is destroyed without running.
  ~event_loop();
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  /// The system calls this loop (and what watches through it) makes.
  const system_calls& os() const noexcept { return os_; }
  /// Writes a line to the log the loop was given; never throws.
  void log(std::string_view line) const noexcept;
  /// Whether the calling thread is this loop's thread.
  bool in_this_thread() const noexcept { return current_serial_ == serial_; }
  /// A number no other loop of this process has had.
  std::uint64_t serial() const noexcept { return serial_; }
  /// The serial of the loop whose thread is calling; 0 on other threads.
  static std::uint64_t current_serial() noexcept { return current_serial_; }

  /// The coarse monotonic time as of the last wake-up of the loop or the last return of code
  /// it called that may block (see refresh_now): what timeouts run from. Reading the clock
  /// once per wake-up, rather than at every arm(), spares two clock reads per request.
  std::int64_t now_ns() const noexcept { return now_ns_; }
  /// Reads the clock into now_ns(); called after the application's code, which may block.
  void refresh_now() noexcept { now_ns_ = coarse_now_ns(); }

  /// Adds a descriptor to the epoll set (by default edge-triggered, input and output, as
  /// connections want); t.on_ready() then reports its events. False on failure.
  bool watch(int fd, event_target& t,
             std::uint32_t events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) noexcept;
  /// Takes a descriptor out of the epoll set before it is closed. Needed when a duplicate of
  /// it stays open elsewhere (a listener): the set forgets only closed open file descriptions.
  void unwatch(int fd) noexcept;
  /// Runs f on this loop's thread, after what was posted before it; callable from any thread.
  /// If the loop has exited, f is destroyed with the loop without being called.
  void post(task f);
  /// Deletes t now, or after the current batch of events if one is being handed out (later
  /// events of the batch may still name it).
  void retire(event_target* t) noexcept;

  /// Starts the thread that runs this loop.
  void start_thread();
  /// Lets the loop's thread finish once it has no more work, and joins it.
  void join();
  /// Drops the keep-running guard, so that the loop's thread returns once the work already
  /// posted is done and no loop_timer is armed; callable from any thread.
  void allow_exit();
  /// Destroys the work posted that never ran (after join(): the thread is gone).
  void discard_posted() noexcept;

  /// One round without a thread of its own, for tests: runs what is due, waits at most
  /// `wait` for events, hands them out and runs posted work. The calling thread counts as
  /// the loop's from the first call on.
  void run_once(std::chrono::milliseconds wait);

 private:
  friend class loop_timer;
  friend class timeout_list;

  /// Wakes the loop's thread when another thread posts; reading it is left to run_posted().
  struct wake_target final : event_target {
    void on_ready(std::uint32_t) override { signalled = pending = true; }
    bool signalled = false;  // the eventfd has a count to read
    bool pending = false;    // the queue may hold work: run it before blocking again
  };

  void run();
  void round(int wait_ms);
  bool may_exit();
  void run_posted();
  void on_timer(std::int64_t now);
  void schedule(std::int64_t deadline_ns) noexcept {
    if (timer_deadline_ns_ == 0 || deadline_ns < timer_deadline_ns_)
      timer_deadline_ns_ = deadline_ns;
  }

  const system_calls& os_;
  std::function<void(std::string_view)> log_;
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
  std::vector<timeout_list*> timeout_lists_;
  bool dispatching_ = false;
  std::vector<event_target*> retired_;
  std::int64_t now_ns_ = 0;
  std::int64_t timer_deadline_ns_ = 0;  // the earliest a timeout or timer may be due; 0: none
  std::thread thread_;
  const std::uint64_t serial_;
  static thread_local std::uint64_t current_serial_;
};

}  // namespace lameduck::detail
