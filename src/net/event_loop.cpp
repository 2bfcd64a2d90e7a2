#include "net/event_loop.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <exception>
#include <string>
#include <system_error>

namespace lameduck::detail {

thread_local std::uint64_t event_loop::current_serial_ = 0;

namespace {

std::atomic<std::uint64_t> next_loop_serial{1};

std::int64_t precise_now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

std::int64_t coarse_now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

event_loop::event_loop(std::function<void(std::string_view)> log, const system_calls& os)
    : os_(os), log_(std::move(log)), serial_(next_loop_serial.fetch_add(1)) {
  refresh_now();
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::system_category(), "lameduck: epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0 || !watch(wake_fd_, wake_, EPOLLIN | EPOLLET)) {
    int e = errno;
    if (wake_fd_ >= 0) ::close(wake_fd_);
    ::close(epfd_);
    throw std::system_error(e, std::system_category(), "lameduck: eventfd");
  }
}

event_loop::~event_loop() {
  join();
  discard_posted();
  ::close(wake_fd_);
  ::close(epfd_);
}

void event_loop::log(std::string_view line) const noexcept {
  try {
    if (log_) log_(line);
  } catch (...) {
    // A failing log sink must not take the loop down with it.
  }
}

void event_loop::discard_posted() noexcept {
  // Outside the lock: destroying a task (a posted response freeing its exchange) may post.
  std::vector<task> abandoned;
  {
    std::lock_guard lock(post_mutex_);
    abandoned.swap(posted_);
  }
}

void event_loop::start_thread() {
  // A loop thread leaves the process's signals to the application's threads (signal_shutdown's,
  // a sigwait loop): handled here, one would only interrupt the loop. It also keeps handlers
  // off threads where a sanitizer (TSan) defers them until a call it does not intercept ends.
  sigset_t process_signals, previous;
  sigemptyset(&process_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM, SIGWINCH})
    sigaddset(&process_signals, sig);
  pthread_sigmask(SIG_BLOCK, &process_signals, &previous);  // the new thread inherits the mask
  thread_ = std::thread([this] {
    current_serial_ = serial_;
    try {
      run();
    } catch (const std::exception& e) {
      // A loop that cannot wait for events can neither serve nor stop its connections; the
      // process ends, but says why first.
      log(std::string("lameduck: an event loop failed, ending the process: ") + e.what());
      std::terminate();
    }
    current_serial_ = 0;
  });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void event_loop::allow_exit() {
  post([this] { keep_running_ = false; });  // the guard belongs to the loop's thread
}

void event_loop::join() {
  if (thread_.joinable()) thread_.join();
}

bool event_loop::watch(int fd, event_target& t, std::uint32_t events) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &t;
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void event_loop::unwatch(int fd) noexcept {
  epoll_event ev{};  // ignored, but kernels before 2.6.9 wanted it
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev);
}

void event_loop::post(task f) {
  bool wake;
  {
    std::lock_guard lock(post_mutex_);
    posted_.push_back(std::move(f));
    wake = !std::exchange(wake_requested_, true);
  }
  if (!wake) return;  // an earlier post has already made sure the loop will look
  if (in_this_thread()) {
    wake_.pending = true;  // the loop looks before it blocks again: no system call
  } else {
    std::uint64_t one = 1;
    // Cannot fail short of the count's overflow: at most one write per run of the queue.
    [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof one);
  }
}

void event_loop::retire(event_target* t) noexcept {
  if (dispatching_) {
    retired_.push_back(t);
  } else {
    delete t;
  }
}

void event_loop::run() {
  for (;;) {
    if (!keep_running_ && may_exit()) return;
    round(-1);
  }
}

void event_loop::run_once(std::chrono::milliseconds wait) {
  current_serial_ = serial_;
  round(static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, INT_MAX)));
}

void event_loop::round(int wait_ms) {
  constexpr int batch = 256;
  epoll_event ready[batch];
  // Timeouts and timers are due by the clock, read once per round (the vDSO: no system call).
  if (timer_deadline_ns_ != 0) {
    // Precise here: a timer armed for a steady_clock time fires neither early nor a tick late.
    const std::int64_t now = precise_now_ns();
    if (now >= timer_deadline_ns_) {
      on_timer(now);
      // A timer that was all the loop still waited for has fired: blocking now would be for
      // nothing that can come.
      if (!keep_running_ && may_exit()) return;
    }
    if (timer_deadline_ns_ != 0) {
      // Rounded up: waking before the deadline would only find nothing due and wait again.
      std::int64_t ms = (timer_deadline_ns_ - now + 999'999) / 1'000'000;
      int until_due = static_cast<int>(std::clamp<std::int64_t>(ms, 0, INT_MAX));
      wait_ms = wait_ms < 0 ? until_due : std::min(wait_ms, until_due);
    }
  }
  if (wake_.pending) wait_ms = 0;  // posted work waits for no event
  int n = os_.epoll_wait(epfd_, ready, batch, wait_ms);
  if (n < 0) {
    if (errno == EINTR) return;
    throw std::system_error(errno, std::system_category(), "epoll_wait");
  }
  refresh_now();  // after a wait of any length: what this round arms runs from now
  dispatching_ = true;
  for (int i = 0; i < n; ++i) {
    static_cast<event_target*>(ready[i].data.ptr)->on_ready(ready[i].events);
  }
  dispatching_ = false;
  for (event_target* t : retired_)
    delete t;
  retired_.clear();
  if (wake_.pending) run_posted();
}

bool event_loop::may_exit() {
  if (wake_.pending || !timers_.empty()) return false;
  std::lock_guard lock(post_mutex_);
  return posted_.empty();
}

void event_loop::run_posted() {
  wake_.pending = false;
  if (wake_.signalled) {
    // Read before taking the queue: a post after the swap then signals (and is seen) again.
    wake_.signalled = false;
    std::uint64_t count;
    [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
  }
  {
    std::lock_guard lock(post_mutex_);
    running_.swap(posted_);
    wake_requested_ = false;
  }
  // What these post in turn runs in the next round, after the events that came meanwhile.
  for (task& f : running_) {
    f();
    refresh_now();  // posted work includes the application's (upgrade_handlers), which may block
  }
  running_.clear();
}

void event_loop::on_timer(std::int64_t now) {
  timer_deadline_ns_ = 0;
  std::int64_t next = 0;
  for (timeout_list* list : timeout_lists_) {
    while (timed* t = list->entries_.front()) {
      if (t->deadline_ns > now) {
        if (next == 0 || t->deadline_ns < next) next = t->deadline_ns;
        break;
      }
      timeout_list::disarm(*t);
      list->expire_(*t);  // may delete t
    }
  }
  // The few loop_timers are not sorted. A function may cancel or arm any of them, so the
  // search starts over after each call.
  for (;;) {
    loop_timer* due = nullptr;
    timers_.for_each([&](loop_timer& t) {
      if (!due && t.deadline_ns_ <= now) due = &t;
    });
    if (!due) break;
    static_cast<list_link&>(*due).unlink();
    std::function<void()> f = std::move(due->fn_);
    f();  // may arm due again
  }
  timers_.for_each([&](loop_timer& t) {
    if (next == 0 || t.deadline_ns_ < next) next = t.deadline_ns_;
  });
  // expire_() and the timers' functions may have armed timeouts that scheduled already.
  if (next != 0) schedule(next);
}

timeout_list::timeout_list(event_loop& l, std::chrono::nanoseconds d, expire_fn expire)
    : loop_(l), duration_ns_(std::max<std::int64_t>(0, d.count())), expire_(expire) {
  loop_.timeout_lists_.push_back(this);
}

timeout_list::~timeout_list() {
  auto& lists = loop_.timeout_lists_;
  lists.erase(std::remove(lists.begin(), lists.end(), this), lists.end());
  while (timed* t = entries_.front())
    disarm(*t);
}

bool timeout_list::arm(timed& t) noexcept {
  disarm(t);
  if (duration_ns_ == 0) return false;
  // Every entry has the same duration, so appending keeps the list sorted by deadline.
  t.deadline_ns = loop_.now_ns_ + duration_ns_;
  const bool was_empty = entries_.empty();
  entries_.push_back(t);
  if (was_empty) loop_.schedule(t.deadline_ns);
  return true;
}

void loop_timer::start_at(std::chrono::steady_clock::time_point t, std::function<void()> f) {
  // steady_clock is CLOCK_MONOTONIC, the clock of the loop's deadlines; 1 ns is "already due".
  std::int64_t ns = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  static_cast<list_link&>(*this).unlink();
  deadline_ns_ = ns;
  fn_ = std::move(f);
  loop_.timers_.push_back(*this);
  loop_.schedule(ns);
}

void loop_timer::start_after(std::chrono::steady_clock::duration d, std::function<void()> f) {
  start_at(std::chrono::steady_clock::now() + d, std::move(f));
}

void loop_timer::cancel() noexcept {
  // The loop's deadline may now be early; waking then finds nothing due and moves on.
  static_cast<list_link&>(*this).unlink();
  fn_ = nullptr;
}

}  // namespace lameduck::detail
