// THE lifecycle file: the states a connection goes through, the one function that changes
// them (set_state), and the server's verbs.
//
// Connection states (docs/lifecycle.md):
//
//   fresh ──first byte──▶ active ──response written, keep-alive──▶ idle ──first byte──▶ active
//     │                     │  └──101 (or CONNECT 2xx)──▶ upgraded    │
//     │                     │                               │          │
//     └──────────┬──────────┴───────────────────────────────┴──────────┘
//                ▼  (error, Connection: close, timeout, the server's decision, the owner's close)
//             closing ──client closed, or linger timeout──▶ closed (terminal)
//
// Any state may go straight to closed (the client went away, destroy). Each loop keeps its own
// connections, so set_state() runs only on the connection's own thread and takes no lock;
// the counts it keeps are atomics that any thread may read.

#include <lameduck/server.hpp>

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>

#include "connection.hpp"
#include "net/address.hpp"
#include "net/loop.hpp"
#include "process/systemd.hpp"

namespace lameduck {

std::string_view to_string(connection_state s) noexcept {
  switch (s) {
    case connection_state::fresh:
      return "fresh";
    case connection_state::active:
      return "active";
    case connection_state::idle:
      return "idle";
    case connection_state::upgraded:
      return "upgraded";
    case connection_state::closing:
      return "closing";
    case connection_state::closed:
      return "closed";
  }
  return "unknown";
}

std::size_t connection_counts::open() const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < connection_state_count; ++i) {
    if (i != static_cast<std::size_t>(connection_state::closed)) n += by_state[i];
  }
  return n;
}

namespace detail {

/// One listening address; its socket lives on as one duplicate per loop.
struct listener {
  socket_address bound{};
  bool health_only = false;  ///< a health_options::listen address
};

/// A loop's view of one listener: waits for connections and accepts them.
class acceptor final : public event_target {
 public:
  acceptor(loop& l, int listen_fd, std::size_t max_connections,
           std::atomic<std::size_t>& open_connections, std::atomic<std::uint64_t>& next_id)
      : loop_(l),
        retry_(l),
        max_connections_(max_connections),
        open_connections_(open_connections),
        next_id_(next_id) {
    fd_ = ::fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "lameduck: dup");
  }
  ~acceptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  acceptor(const acceptor&) = delete;
  acceptor& operator=(const acceptor&) = delete;

  /// Watches the listener in the loop's epoll set, which reports connections already queued.
  void start() {
    if (!loop_.watch(fd_, *this, EPOLLIN | EPOLLET)) {
      log_line(loop_, std::string("lameduck: cannot watch a listener: ") + std::strerror(errno));
    }
  }

  /// Accepts every connection the kernel has already completed, then closes this loop's
  /// duplicate of the listener. Closing a listening socket resets the connections still
  /// queued on it, so the last loop to close accepts right before: only a client that
  /// connects in that instant, after the stop began, can still be reset.
  void close_after_accepting_queued() {
    if (fd_ < 0) return;
    retry_.cancel();
    accept_batch(std::numeric_limits<std::size_t>::max());
    loop_.unwatch(fd_);  // the other loops' duplicates keep the listener open
    ::close(std::exchange(fd_, -1));
  }

  void on_ready(std::uint32_t) override { accept_some(); }

 private:
  void accept_some() {
    if (fd_ < 0) return;  // closed; an event of the same batch may still name it
    // A bounded batch keeps one busy listener from starving the loop's connections.
    switch (accept_batch(64)) {
      case batch_end::queue_empty:
        return;  // the next connection is a new edge
      case batch_end::limit:
        // More may be queued, and the edge is already consumed: come back after the events.
        loop_.post([this] { accept_some(); });
        return;
      case batch_end::failed:
        // Out of descriptors or memory: say so and try again shortly rather than spin.
        log_line(loop_, std::string("lameduck: accept failed: ") + std::strerror(errno));
        retry_.start_after(std::chrono::milliseconds(100), [this] { accept_some(); });
        return;
    }
  }

  enum class batch_end { queue_empty, limit, failed };

  batch_end accept_batch(std::size_t max) {
    for (std::size_t i = 0; i < max; ++i) {
      socket_address peer;
      socklen_t size = sizeof peer;
      int fd = ::accept4(fd_, &peer.any, &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return batch_end::queue_empty;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        return batch_end::failed;
      }
      admit(fd, peer, size);
    }
    return batch_end::limit;
  }

  void admit(int fd, const socket_address& peer, socklen_t size) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* c = new connection<tcp_stream>(loop_, tcp_stream(fd), &peer.any, size);
    c->id = next_id_.fetch_add(1, std::memory_order_relaxed);
    c->health_only = health_only;
    if (open_connections_.fetch_add(1, std::memory_order_relaxed) >= max_connections_) {
      c->reject(503);
    } else {
      c->start();
    }
  }

  loop& loop_;
  int fd_ = -1;

 public:
  /// Its connections are answered by the health endpoints only.
  bool health_only = false;

 private:
  loop_timer retry_;
  const std::size_t max_connections_;
  std::atomic<std::size_t>& open_connections_;
  std::atomic<std::uint64_t>& next_id_;
};

/// What the verbs called so far ask of the server; each verb only ever strengthens it.
struct stop_order {
  bool close_listeners = false;
  bool drain = false;
  bool destroy = false;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::chrono::milliseconds idle_grace{0};
  /// A drain's lame-duck delay ends here: until then listeners stay open and nothing changes
  /// but readiness.
  std::chrono::steady_clock::time_point drain_from{};

  bool operator==(const stop_order&) const = default;
};

/// A loop's part in a stop; touched only on the loop's thread.
struct loop_stop {
  explicit loop_stop(loop& l) : deadline_timer(l), grace_timer(l), lame_duck_timer(l) {}

  std::vector<std::unique_ptr<acceptor>> acceptors;
  bool listeners_closed = false;
  bool reached = false;    // the stop has counted this loop's connections for its report
  bool lame_duck = false;  // the lame-duck delay's timer is armed
  bool drain_begun = false;
  bool destroyed = false;  // every connection was closed by force
  bool forced = false;     // an open connection was closed by force
  bool done = false;
  std::array<std::size_t, connection_state_count> closed_by_state{};
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  loop_timer deadline_timer;
  loop_timer grace_timer;
  loop_timer lame_duck_timer;
};

namespace {

// Single-writer counters: only the loop's thread writes, any thread reads.
void bump(std::atomic<std::size_t>& a, std::ptrdiff_t by) noexcept {
  a.store(a.load(std::memory_order_relaxed) + static_cast<std::size_t>(by),
          std::memory_order_relaxed);
}

}  // namespace

connection_base::connection_base(loop& l, const sockaddr* peer_address,
                                 socklen_t peer_size) noexcept
    : owner(l), created_ns(l.now_ns()) {
  std::memcpy(&peer, peer_address, std::min<std::size_t>(peer_size, sizeof peer));
}

}  // namespace detail

class server::impl {
 public:
  using clock = std::chrono::steady_clock;

  impl(server_options o, handler h) : options(std::move(o)), handler_(std::move(h)) {
    // The endpoints are answered before the handler, or only on their own addresses.
    const bool has_endpoints =
        !options.health.readiness_path.empty() || !options.health.liveness_path.empty();
    if (has_endpoints && options.health.listen.empty()) {
      handler_ = [this, inner = std::move(handler_)](const request& req, response res) {
        if (!answer_health(req, res)) inner(req, std::move(res));
      };
    }
    health_handler_ = [this](const request& req, response res) {
      if (answer_health(req, res)) return;
      res.header("Content-Type", "text/plain");
      res.send(404, "Not Found\n");
    };
    if (!options.log) {
      options.log = [](std::string_view line) {
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      };
    }
  }

  ~impl() { release_threads(); }

  void start(std::error_code& ec);
  /// Whether the server is started and no drain or destroy has been asked for.
  bool ready() const;
  /// Answers a readiness or liveness probe; false when the request is not one.
  bool answer_health(const request& req, response& res) const;
  /// Hands a stronger stop order to every loop; called with the mutex held.
  void order_stop(const detail::stop_order& next);
  std::shared_future<stop_report> stop_future_or_last();
  void add_stop_callback(stop_callback done);
  void release_threads();

  // On a loop's thread:
  void apply(std::size_t i, const detail::stop_order& o);
  void close_listeners(std::size_t i);
  void reach(std::size_t i);
  void begin_drain(std::size_t i, const detail::stop_order& o);
  void force_close(std::size_t i);
  void end_idle_grace(std::size_t i);
  void check_done(std::size_t i);
  void on_registry_empty(detail::loop& l);

  server_options options;
  handler handler_;
  handler health_handler_;  // for connections to a health_options::listen address
  std::vector<std::unique_ptr<detail::loop>> loops;
  std::vector<std::unique_ptr<detail::loop_stop>> stops;  // per loop
  std::vector<detail::listener> listeners;
  std::atomic<std::size_t> open_connections{0};
  std::atomic<std::uint64_t> next_connection_id{1};

  mutable std::mutex mutex;  // guards everything below
  bool running = false;
  detail::stop_order order;
  clock::time_point stop_began;
  std::size_t completed_at_stop = 0, aborted_at_stop = 0;
  unsigned loops_listening = 0, loops_running = 0;
  std::promise<void> accept_stopped;
  std::shared_future<void> accept_stopped_future;
  std::vector<std::function<void()>> on_accept_stopped;
  stop_report report;  // being gathered, or the last one
  std::promise<stop_report> stopped;
  std::shared_future<stop_report> stopped_future;
  std::vector<stop_callback> on_stopped;
};

namespace detail {

void set_state(connection_base& c, connection_state s) noexcept {
  loop& l = c.owner;
  if (!static_cast<registry_hook&>(c).linked()) {
    l.connections.push_back(c);  // a new connection enters the registry
  } else {
    bump(l.counts[static_cast<std::size_t>(c.state_)], -1);
  }
  c.state_ = s;
  bump(l.counts[static_cast<std::size_t>(s)], 1);
  switch (s) {
    case connection_state::idle:
      c.idle_since_ns = l.now_ns();
      break;
    case connection_state::closed:
      static_cast<registry_hook&>(c).unlink();
      l.owner().open_connections.fetch_sub(1, std::memory_order_relaxed);
      if (l.connections.empty()) l.owner().on_registry_empty(l);
      break;
    default:
      break;
  }
}

const handler& handler_of(const connection_base& c) noexcept {
  return c.health_only ? c.owner.owner().health_handler_ : c.owner.owner().handler_;
}

void log_line(loop& l, std::string_view line) {
  try {
    l.owner().options.log(line);
  } catch (...) {
    // A failing log sink must not take a connection down with it.
  }
}

void count_request(loop& l, bool completed) noexcept {
  bump(completed ? l.requests_completed : l.requests_aborted, 1);
}

}  // namespace detail

void server::impl::start(std::error_code& ec) {
  std::lock_guard lock(mutex);
  if (running) {
    ec = make_error_code(errc::already_started);
    return;
  }
  std::vector<int> fds;
  if (options.adopt_passed_sockets) fds = detail::take_passed_sockets();
  if (options.listen.empty() && fds.empty()) {
    ec = make_error_code(errc::no_listen_address);
    return;
  }
  release_threads();  // a stopped server may start again
  std::vector<detail::listener> bound;
  auto close_all = [&] {
    for (int fd : fds)
      ::close(fd);
  };
  for (int fd : fds) {
    detail::listener li;
    socklen_t size = sizeof li.bound;
    if (!detail::is_listening_stream_socket(fd) || ::getsockname(fd, &li.bound.any, &size) != 0 ||
        (li.bound.any.sa_family != AF_INET && li.bound.any.sa_family != AF_INET6) ||
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
      ec = make_error_code(errc::unusable_passed_socket);
      return close_all();
    }
    bound.push_back(li);
  }
  // Passed sockets stand for the listen addresses; otherwise each address is bound here. The
  // health endpoints' own addresses come last.
  std::vector<std::pair<std::string, bool>> addresses;
  if (fds.empty()) {
    for (const auto& text : options.listen)
      addresses.emplace_back(text, false);
  }
  for (const auto& text : options.health.listen)
    addresses.emplace_back(text, true);
  for (const auto& [text, health_only] : addresses) {
    detail::listener li;
    li.health_only = health_only;
    li.bound = detail::parse_listen_address(text, ec);
    if (ec) return close_all();
    int fd = ::socket(li.bound.any.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    // SO_REUSEADDR lets a new server bind while old connections sit in TIME_WAIT; it does not
    // let two live listeners share a port. SO_REUSEPORT does, so only on request.
    bool ok = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              (!options.reuse_port ||
               ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0) &&
              ::bind(fd, &li.bound.any, li.bound.size()) == 0 && ::listen(fd, options.backlog) == 0;
    if (ok) {
      socklen_t size = sizeof li.bound;
      ok = ::getsockname(fd, &li.bound.any, &size) == 0;
    }
    if (!ok) {
      ec = {errno, std::system_category()};
      if (fd >= 0) ::close(fd);
      return close_all();
    }
    bound.push_back(li);
    fds.push_back(fd);
  }

  unsigned n =
      options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  try {
    for (unsigned i = 0; i < n; ++i) {
      loops.push_back(std::make_unique<detail::loop>(*this, i, options));
      stops.push_back(std::make_unique<detail::loop_stop>(*loops[i]));
      for (std::size_t k = 0; k < fds.size(); ++k) {
        stops[i]->acceptors.push_back(
            std::make_unique<detail::acceptor>(*loops[i], fds[k], options.limits.max_connections,
                                               open_connections, next_connection_id));
        stops[i]->acceptors.back()->health_only = bound[k].health_only;
      }
    }
  } catch (const std::system_error& e) {
    ec = e.code();
    close_all();
    stops.clear();
    loops.clear();
    return;
  }
  // Each loop holds its own duplicate: the listening socket closes with the last of them.
  close_all();
  listeners = std::move(bound);
  for (unsigned i = 0; i < n; ++i) {
    for (auto& a : stops[i]->acceptors)
      loops[i]->post([a = a.get()] { a->start(); });
    loops[i]->start_thread();
  }
  running = true;
  order = {};
  loops_listening = loops_running = n;
  accept_stopped = {};
  accept_stopped_future = accept_stopped.get_future().share();
  report = {};
  stopped = {};
  stopped_future = stopped.get_future().share();
}

void server::impl::order_stop(const detail::stop_order& next) {
  if (!running || next == order) return;  // idempotent: nothing stronger was asked
  if ((next.drain || next.destroy) && !(order.drain || order.destroy)) {
    stop_began = clock::now();
    completed_at_stop = aborted_at_stop = 0;
    for (auto& l : loops) {
      completed_at_stop += l->requests_completed.load(std::memory_order_relaxed);
      aborted_at_stop += l->requests_aborted.load(std::memory_order_relaxed);
    }
  }
  if (next.drain && !order.drain && next.drain_from <= clock::now()) {
    // Without a lame-duck delay the drain begins with the call: no response written after it
    // says keep-alive, even on a loop that has not yet seen the order.
    for (auto& l : loops) {
      l->keep_idle.store(next.idle_grace.count() > 0, std::memory_order_relaxed);
      l->draining.store(true, std::memory_order_release);  // keep_idle is seen with it
    }
  }
  order = next;
  for (std::size_t i = 0; i < loops.size(); ++i) {
    loops[i]->post([this, i, o = order] { apply(i, o); });
  }
}

void server::impl::apply(std::size_t i, const detail::stop_order& o) {
  detail::loop_stop& ls = *stops[i];
  if (ls.done) return;
  // In the lame-duck delay only readiness has changed: listeners stay open, requests are
  // served as usual. The delay's end applies whatever the order has become by then.
  const bool lame_duck = o.drain && !o.destroy && clock::now() < o.drain_from;
  if (lame_duck && !ls.lame_duck) {
    ls.lame_duck = true;
    ls.lame_duck_timer.start_at(o.drain_from, [this, i] {
      detail::stop_order now;
      {
        std::lock_guard lock(mutex);
        now = order;
      }
      apply(i, now);
    });
  }
  if ((o.close_listeners || o.destroy || (o.drain && !lame_duck)) && !ls.listeners_closed) {
    close_listeners(i);
  }
  if (o.destroy) {
    if (!ls.destroyed) force_close(i);
  } else if (o.drain) {
    if (!lame_duck && !ls.drain_begun) begin_drain(i, o);
    if (o.deadline < ls.deadline) {
      // The deadline counts from the call, lame-duck delay included.
      ls.deadline = o.deadline;
      ls.deadline_timer.start_at(o.deadline, [this, i] { force_close(i); });
    }
  }
  check_done(i);
}

void server::impl::reach(std::size_t i) {
  detail::loop_stop& ls = *stops[i];
  if (ls.reached) return;
  ls.reached = true;
  loops[i]->connections.for_each([&](detail::connection_base& c) {
    ++ls.closed_by_state[static_cast<std::size_t>(c.state())];
  });
}

void server::impl::begin_drain(std::size_t i, const detail::stop_order& o) {
  detail::loop& l = *loops[i];
  detail::loop_stop& ls = *stops[i];
  ls.drain_begun = true;
  reach(i);
  l.keep_idle.store(o.idle_grace.count() > 0, std::memory_order_relaxed);
  l.draining.store(true, std::memory_order_release);
  if (o.idle_grace.count() > 0) {
    ls.grace_timer.start_after(o.idle_grace, [this, i] { end_idle_grace(i); });
  }
  l.connections.for_each([](detail::connection_base& c) { c.on_drain(); });
}

void server::impl::close_listeners(std::size_t i) {
  detail::loop_stop& ls = *stops[i];
  ls.listeners_closed = true;
  for (auto& a : ls.acceptors)
    a->close_after_accepting_queued();
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mutex);
    if (--loops_listening != 0) return;
    // Every duplicate is closed, so the listening sockets are: the ports are free.
    accept_stopped.set_value();
    callbacks.swap(on_accept_stopped);
  }
  for (auto& cb : callbacks)
    cb();
}

void server::impl::force_close(std::size_t i) {
  detail::loop_stop& ls = *stops[i];
  ls.destroyed = true;
  ls.grace_timer.cancel();
  ls.lame_duck_timer.cancel();  // a deadline inside the lame-duck delay ends it
  if (!ls.listeners_closed) close_listeners(i);
  reach(i);
  loops[i]->connections.for_each([&](detail::connection_base& c) {
    if (c.state() != connection_state::closing) ls.forced = true;
    c.abort();
  });
  check_done(i);
}

void server::impl::end_idle_grace(std::size_t i) {
  detail::loop& l = *loops[i];
  l.keep_idle.store(false, std::memory_order_relaxed);
  l.connections.for_each([](detail::connection_base& c) { c.on_drain(); });
  check_done(i);
}

void server::impl::on_registry_empty(detail::loop& l) {
  if (!stops[l.index()]->reached) return;
  // Posted: the connection that just closed is still on the stack.
  l.post([this, i = l.index()] { check_done(i); });
}

void server::impl::check_done(std::size_t i) {
  detail::loop& l = *loops[i];
  detail::loop_stop& ls = *stops[i];
  if (ls.done || !ls.reached || !ls.listeners_closed || !l.connections.empty()) return;
  // The moment the last connection of the last loop closes, the stop completes: no polling.
  ls.done = true;
  ls.deadline_timer.cancel();
  ls.grace_timer.cancel();
  ls.lame_duck_timer.cancel();
  std::vector<stop_callback> callbacks;
  stop_report done;
  {
    std::lock_guard lock(mutex);
    for (std::size_t s = 0; s < connection_state_count; ++s) {
      report.closed_by_state[s] += ls.closed_by_state[s];
    }
    if (ls.forced) report.graceful = false;
    if (--loops_running != 0) return;
    std::size_t completed = 0, aborted = 0;
    for (auto& lp : loops) {
      completed += lp->requests_completed.load(std::memory_order_relaxed);
      aborted += lp->requests_aborted.load(std::memory_order_relaxed);
      lp->allow_exit();
    }
    report.requests_completed = completed - completed_at_stop;
    report.requests_aborted = aborted - aborted_at_stop;
    report.took = clock::now() - stop_began;
    running = false;
    done = report;
    callbacks.swap(on_stopped);
    stopped.set_value(done);
  }
  for (auto& cb : callbacks)
    cb(done);
}

std::shared_future<stop_report> server::impl::stop_future_or_last() {
  // Called with the mutex held.
  if (stopped_future.valid()) return stopped_future;
  std::promise<stop_report> p;
  p.set_value(report);
  return p.get_future().share();
}

void server::impl::add_stop_callback(stop_callback done) {
  {
    std::lock_guard lock(mutex);
    if (running) {
      on_stopped.push_back(std::move(done));
      return;
    }
  }
  done(stop_future_or_last().get());
}

void server::impl::release_threads() {
  for (auto& l : loops) {
    l->allow_exit();
    l->join();
  }
  stops.clear();
  loops.clear();
}

server::server(server_options options, handler h)
    : impl_(std::make_unique<impl>(std::move(options), std::move(h))) {}

server::~server() {
  destroy().wait();
  impl_->release_threads();
}

void server::start() {
  std::error_code ec;
  start(ec);
  if (ec) throw std::system_error(ec, "lameduck: cannot start the server");
}

void server::start(std::error_code& ec) {
  ec.clear();
  impl_->start(ec);
}

std::vector<std::string> server::local_addresses() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> out;
  for (const auto& li : impl_->listeners)
    out.push_back(detail::format_address(&li.bound.any));
  return out;
}

std::uint16_t server::port(std::size_t i) const {
  std::lock_guard lock(impl_->mutex);
  if (i >= impl_->listeners.size()) return 0;
  const auto& a = impl_->listeners[i].bound;
  return ntohs(a.any.sa_family == AF_INET6 ? a.v6.sin6_port : a.v4.sin_port);
}

connection_counts server::counts() const noexcept {
  connection_counts c;
  std::lock_guard lock(impl_->mutex);
  for (const auto& l : impl_->loops) {
    for (std::size_t s = 0; s < connection_state_count; ++s) {
      c.by_state[s] += l->counts[s].load(std::memory_order_relaxed);
    }
  }
  return c;
}

bool server::impl::ready() const {
  std::lock_guard lock(mutex);
  return running && !order.close_listeners && !order.drain && !order.destroy;
}

bool server::impl::answer_health(const request& req, response& res) const {
  const bool readiness = req.path() == options.health.readiness_path;
  if (!readiness && req.path() != options.health.liveness_path) return false;
  if (req.method() != "GET" && req.method() != "HEAD") return false;
  res.header("Content-Type", "text/plain").header("Cache-Control", "no-store");
  if (!readiness) {
    res.send("alive\n");
  } else if (ready()) {
    res.send("ready\n");
  } else {
    res.send(503, "not ready\n");
  }
  return true;
}

bool server::ready() const noexcept {
  return impl_->ready();
}

std::shared_future<void> server::stop_accepting() {
  std::lock_guard lock(impl_->mutex);
  detail::stop_order next = impl_->order;
  next.close_listeners = true;
  impl_->order_stop(next);
  if (impl_->accept_stopped_future.valid()) return impl_->accept_stopped_future;
  std::promise<void> p;
  p.set_value();
  return p.get_future().share();
}

void server::stop_accepting(std::function<void()> done) {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->running && impl_->loops_listening != 0) {
      impl_->on_accept_stopped.push_back(std::move(done));
      done = nullptr;
    }
  }
  stop_accepting();
  if (done) done();  // the ports were already free
}

std::shared_future<stop_report> server::shutdown(std::chrono::steady_clock::duration deadline) {
  auto now = impl::clock::now();
  // A deadline too far to represent is no deadline.
  auto at = deadline >= impl::clock::time_point::max() - now ? impl::clock::time_point::max()
                                                             : now + deadline;
  std::lock_guard lock(impl_->mutex);
  detail::stop_order next = impl_->order;
  if (!next.drain) {
    next.idle_grace = impl_->options.drain.idle_grace;
    next.drain_from = now + impl_->options.drain.lame_duck_delay;
  }
  next.drain = true;
  next.deadline = std::min(next.deadline, at);
  impl_->order_stop(next);
  return impl_->stop_future_or_last();
}

void server::shutdown(std::chrono::steady_clock::duration deadline, stop_callback done) {
  impl_->add_stop_callback(std::move(done));
  shutdown(deadline);
}

std::shared_future<stop_report> server::close() {
  return shutdown(std::chrono::steady_clock::duration::max());
}

void server::close(stop_callback done) {
  impl_->add_stop_callback(std::move(done));
  close();
}

std::shared_future<stop_report> server::destroy() {
  std::lock_guard lock(impl_->mutex);
  detail::stop_order next = impl_->order;
  next.close_listeners = true;
  next.destroy = true;
  impl_->order_stop(next);
  return impl_->stop_future_or_last();
}

void server::destroy(stop_callback done) {
  impl_->add_stop_callback(std::move(done));
  destroy();
}

void server::when_stopped(stop_callback done) {
  impl_->add_stop_callback(std::move(done));
}

void server::wait() {
  std::shared_future<stop_report> f;
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->running) return;
    f = impl_->stopped_future;
  }
  f.wait();
}

namespace {

// What snapshot() gathers from every loop; answers with what it has if a loop exits first.
struct snapshot_gathering {
  std::mutex mutex;
  std::vector<connection_info> found;
  std::size_t loops_left = 0;
  std::promise<std::vector<connection_info>> result;
  bool answered = false;

  void add(std::vector<connection_info>& from_loop) {
    std::lock_guard lock(mutex);
    found.insert(found.end(), from_loop.begin(), from_loop.end());
    if (--loops_left == 0) answer();
  }
  void answer() {
    answered = true;
    result.set_value(std::move(found));
  }
  ~snapshot_gathering() {
    if (!answered) answer();
  }
};

}  // namespace

std::shared_future<std::vector<connection_info>> server::snapshot() const {
  auto gathering = std::make_shared<snapshot_gathering>();
  auto future = gathering->result.get_future().share();
  std::lock_guard lock(impl_->mutex);
  if (!impl_->running) {
    gathering->answer();
    return future;
  }
  gathering->loops_left = impl_->loops.size();
  for (auto& lp : impl_->loops) {
    lp->post([gathering, l = lp.get()] {
      std::vector<connection_info> here;
      const std::int64_t now = l->now_ns();
      l->connections.for_each([&](detail::connection_base& c) {
        connection_info info;
        info.id = c.id;
        info.peer = detail::format_address(reinterpret_cast<const sockaddr*>(&c.peer));
        info.state = c.state();
        info.requests = c.requests;
        info.age = std::chrono::nanoseconds(now - c.created_ns);
        if (c.state() == connection_state::idle) {
          info.idle_for = std::chrono::nanoseconds(now - c.idle_since_ns);
        }
        here.push_back(std::move(info));
      });
      gathering->add(here);
    });
  }
  return future;
}

}  // namespace lameduck
