#include "net/loop.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <system_error>

#include "connection.hpp"

namespace lameduck::detail {

thread_local std::uint64_t loop::current_serial_ = 0;

namespace {
std::atomic<std::uint64_t> next_loop_serial{1};
constexpr std::size_t max_pooled_exchanges = 256;
}  // namespace

std::int64_t coarse_now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

namespace {
std::int64_t precise_now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

loop::loop(server::impl& owner, unsigned index, const server_options& options)
    : owner_(owner),
      index_(index),
      limits_(options.limits),
      serial_(next_loop_serial.fetch_add(1)),
      anchor_(std::make_shared<loop_anchor>()) {
  anchor_->target = this;
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
  const timeouts& t = options.timeouts;
  auto ns = [](std::chrono::milliseconds d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  };
  durations_ns_[static_cast<std::size_t>(timeout_kind::header)] = ns(t.header);
  durations_ns_[static_cast<std::size_t>(timeout_kind::body)] = ns(t.body);
  durations_ns_[static_cast<std::size_t>(timeout_kind::idle)] = ns(t.idle);
  durations_ns_[static_cast<std::size_t>(timeout_kind::write)] = ns(t.write);
  durations_ns_[static_cast<std::size_t>(timeout_kind::linger)] = ns(t.linger);
}

loop::~loop() {
  join();
  {
    // From now on, exchanges still held by response handles free themselves.
    std::lock_guard lock(anchor_->mutex);
    anchor_->target = nullptr;
  }
  // Work posted after the thread exited is destroyed without running (a posted response then
  // frees its exchange). Outside the lock: destroying it may post nothing, but may lock others.
  std::vector<task> abandoned;
  {
    std::lock_guard lock(post_mutex_);
    abandoned.swap(posted_);
  }
  abandoned.clear();
  for (exchange* e : free_exchanges_)
    delete e;
  ::close(wake_fd_);
  ::close(epfd_);
}

void loop::start_thread() {
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
    run();
    current_serial_ = 0;
  });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void loop::allow_exit() {
  post([this] { keep_running_ = false; });  // the guard belongs to the loop's thread
}

void loop::join() {
  if (thread_.joinable()) thread_.join();
}

bool loop::watch(int fd, event_target& t, std::uint32_t events) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &t;
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void loop::unwatch(int fd) noexcept {
  epoll_event ev{};  // ignored, but kernels before 2.6.9 wanted it
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev);
}

void loop::post(task f) {
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

void loop::retire(connection_base* c) noexcept {
  if (dispatching_) {
    retired_.push_back(c);
  } else {
    delete c;
  }
}

void loop::run() {
  constexpr int batch = 256;
  epoll_event ready[batch];
  for (;;) {
    if (!keep_running_ && may_exit()) return;
    // Timeouts and timers are due by the clock, read once per round (the vDSO: no system call).
    int wait_ms = -1;
    if (timer_deadline_ns_ != 0) {
      // Precise here: a timer armed for a steady_clock time fires neither early nor a tick late.
      const std::int64_t now = precise_now_ns();
      if (now >= timer_deadline_ns_) on_timer(now);
      if (timer_deadline_ns_ != 0) {
        // Rounded up: waking before the deadline would only find nothing due and wait again.
        std::int64_t ms = (timer_deadline_ns_ - now + 999'999) / 1'000'000;
        wait_ms = static_cast<int>(std::clamp<std::int64_t>(ms, 0, INT_MAX));
      }
    }
    if (wake_.pending) wait_ms = 0;  // posted work waits for no event
    int n = ::epoll_wait(epfd_, ready, batch, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::system_category(), "lameduck: epoll_wait");
    }
    refresh_now();  // after a wait of any length: what this round arms runs from now
    dispatching_ = true;
    for (int i = 0; i < n; ++i) {
      static_cast<event_target*>(ready[i].data.ptr)->on_ready(ready[i].events);
    }
    dispatching_ = false;
    for (connection_base* c : retired_)
      delete c;
    retired_.clear();
    if (wake_.pending) run_posted();
  }
}

bool loop::may_exit() {
  if (wake_.pending || !timers_.empty()) return false;
  std::lock_guard lock(post_mutex_);
  return posted_.empty();
}

void loop::run_posted() {
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

void loop::arm(connection_base& c, timeout_kind k) noexcept {
  static_cast<timeout_hook&>(c).unlink();
  c.timeout = k;
  if (k == timeout_kind::none) return;
  std::int64_t duration = durations_ns_[static_cast<std::size_t>(k)];
  if (duration <= 0) {
    c.timeout = timeout_kind::none;  // this timeout is disabled
    return;
  }
  // Every connection on a list has the same duration, so appending keeps the list sorted by
  // deadline: arming is O(1) and only a list's head can be due.
  c.deadline_ns = now_ns_ + duration;
  auto& list = timeouts_[static_cast<std::size_t>(k)];
  bool was_empty = list.empty();
  list.push_back(c);
  if (was_empty && (timer_deadline_ns_ == 0 || c.deadline_ns < timer_deadline_ns_)) {
    schedule_timer(c.deadline_ns);
  }
}

void loop::schedule_timer(std::int64_t deadline_ns) {
  timer_deadline_ns_ = deadline_ns;
}

void loop::on_timer(std::int64_t now) {
  timer_deadline_ns_ = 0;
  std::int64_t next = 0;
  for (std::size_t k = 0; k < timeout_kind_count; ++k) {
    auto& list = timeouts_[k];
    while (connection_base* c = list.front()) {
      if (c->deadline_ns > now) {
        if (next == 0 || c->deadline_ns < next) next = c->deadline_ns;
        break;
      }
      static_cast<timeout_hook&>(*c).unlink();
      c->on_timeout(static_cast<timeout_kind>(k));  // may delete c
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
  // on_timeout() and the timers' functions may have armed timeouts that scheduled already.
  if (next != 0 && (timer_deadline_ns_ == 0 || next < timer_deadline_ns_)) schedule_timer(next);
}

void loop_timer::start_at(std::chrono::steady_clock::time_point t, std::function<void()> f) {
  // steady_clock is CLOCK_MONOTONIC, the clock of the loop's deadlines; 1 ns is "already due".
  std::int64_t ns = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  static_cast<list_link&>(*this).unlink();
  deadline_ns_ = ns;
  fn_ = std::move(f);
  loop_.timers_.push_back(*this);
  if (loop_.timer_deadline_ns_ == 0 || ns < loop_.timer_deadline_ns_) loop_.schedule_timer(ns);
}

void loop_timer::start_after(std::chrono::steady_clock::duration d, std::function<void()> f) {
  start_at(std::chrono::steady_clock::now() + d, std::move(f));
}

void loop_timer::cancel() noexcept {
  // The loop's deadline may now be early; waking then finds nothing due and moves on.
  static_cast<list_link&>(*this).unlink();
  fn_ = nullptr;
}

exchange* loop::acquire_exchange() {
  exchange* e;
  if (free_exchanges_.empty()) {
    e = new exchange(*this, anchor_, limits_);
  } else {
    e = free_exchanges_.back();
    free_exchanges_.pop_back();
    e->reset_for_reuse();
  }
  return e;
}

void loop::recycle_exchange(exchange* e) noexcept {
  if (free_exchanges_.size() < max_pooled_exchanges) {
    free_exchanges_.push_back(e);
  } else {
    delete e;
  }
}

}  // namespace lameduck::detail
