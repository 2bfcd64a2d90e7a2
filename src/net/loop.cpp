#include "net/loop.hpp"

#include <sys/epoll.h>
#include <time.h>

#include <system_error>

#include <asio/post.hpp>

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
      // One thread runs this context and touches its sockets and timers; other threads only
      // post to it. So the scheduler locks (for those posts) but per-socket I/O does not.
      io_(ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      keep_running_(asio::make_work_guard(io_)),
      timer_(io_),
      events_(io_),
      serial_(next_loop_serial.fetch_add(1)),
      anchor_(std::make_shared<loop_anchor>()) {
  anchor_->target = this;
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) throw std::system_error(errno, std::system_category(), "lameduck: epoll_create1");
  events_.assign(epfd);
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
  for (exchange* e : free_exchanges_)
    delete e;
}

void loop::start_thread() {
  wait_for_events();
  thread_ = std::thread([this] {
    current_serial_ = serial_;
    io_.run();
    current_serial_ = 0;
  });
}

void loop::allow_exit() {
  // Posted: the timer and the guard belong to the loop's thread.
  asio::post(io_, [this] {
    std::error_code ignored;
    events_.cancel(ignored);
    timer_.cancel();
    timer_deadline_ns_ = 0;
    keep_running_.reset();
  });
}

void loop::join() {
  if (thread_.joinable()) thread_.join();
}

bool loop::watch(int fd, connection_base& c) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  return ::epoll_ctl(events_.native_handle(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

void loop::retire(connection_base* c) noexcept {
  if (dispatching_) {
    retired_.push_back(c);
  } else {
    delete c;
  }
}

void loop::wait_for_events() {
  events_.async_wait(asio::posix::descriptor_base::wait_read, [this](std::error_code ec) {
    if (!ec) dispatch_events();
  });
}

void loop::dispatch_events() {
  constexpr int batch = 256;
  epoll_event ready[batch];
  int n = ::epoll_wait(events_.native_handle(), ready, batch, 0);
  dispatching_ = true;
  for (int i = 0; i < n; ++i) {
    static_cast<connection_base*>(ready[i].data.ptr)->on_ready(ready[i].events);
  }
  dispatching_ = false;
  for (connection_base* c : retired_)
    delete c;
  retired_.clear();
  if (n == batch) {
    asio::post(io_, [this] { dispatch_events(); });  // more are ready; let timers run first
  } else {
    wait_for_events();
  }
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
  c.deadline_ns = coarse_now_ns() + duration;
  auto& list = timeouts_[static_cast<std::size_t>(k)];
  bool was_empty = list.empty();
  list.push_back(c);
  if (was_empty && (timer_deadline_ns_ == 0 || c.deadline_ns < timer_deadline_ns_)) {
    schedule_timer(c.deadline_ns);
  }
}

void loop::schedule_timer(std::int64_t deadline_ns) {
  timer_deadline_ns_ = deadline_ns;
  timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns)));
  timer_.async_wait([this](std::error_code ec) {
    if (!ec) on_timer();
  });
}

void loop::on_timer() {
  timer_deadline_ns_ = 0;
  const std::int64_t now = precise_now_ns();
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
  // on_timeout() may have armed timeouts that scheduled the timer already.
  if (next != 0 && (timer_deadline_ns_ == 0 || next < timer_deadline_ns_)) schedule_timer(next);
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
