// THE lifecycle file: the states a connection goes through, the one function that changes
// them (set_state), and the server's verbs.
//
// Connection states (docs/lifecycle.md):
//
//   fresh ──first byte──▶ active ──response written, keep-alive──▶ idle ──first byte──▶ active
//     │                     │                                       │
//     └──────────┬──────────┴───────────────────────────────────────┘
//                ▼  (error, Connection: close, timeout, the server's decision)
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
#include <mutex>

#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include "connection.hpp"
#include "net/address.hpp"
#include "net/loop.hpp"

namespace lameduck {

std::string_view to_string(connection_state s) noexcept {
  switch (s) {
    case connection_state::fresh: return "fresh";
    case connection_state::active: return "active";
    case connection_state::idle: return "idle";
    case connection_state::upgraded: return "upgraded";
    case connection_state::closing: return "closing";
    case connection_state::closed: return "closed";
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

/// One bound listening socket; every loop accepts from its own duplicate of it.
struct listener {
  int fd = -1;
  socket_address bound{};
};

/// A loop's view of one listener: waits for connections and accepts them.
class acceptor {
 public:
  acceptor(loop& l, const listener& li, std::size_t max_connections,
           std::atomic<std::size_t>& open_connections)
      : loop_(l),
        socket_(l.io()),
        retry_(l.io()),
        max_connections_(max_connections),
        open_connections_(open_connections) {
    int fd = ::fcntl(li.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "lameduck: dup");
    auto protocol = li.bound.any.sa_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4();
    socket_.assign(protocol, fd);
  }

  void start() { wait(); }
  void close() {
    std::error_code ignored;
    retry_.cancel();
    socket_.close(ignored);
  }

 private:
  void wait() {
    socket_.async_wait(asio::socket_base::wait_read, [this](std::error_code ec) {
      if (!ec) on_ready();
    });
  }

  void on_ready() {
    // A bounded batch keeps one busy listener from starving the loop's connections.
    for (int i = 0; i < 64; ++i) {
      socket_address peer;
      socklen_t size = sizeof peer;
      int fd = ::accept4(socket_.native_handle(), &peer.any, &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return wait();
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        // Out of descriptors or memory: say so and try again shortly rather than spin.
        log_line(loop_, std::string("lameduck: accept failed: ") + std::strerror(errno));
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this](std::error_code ec) {
          if (!ec) on_ready();
        });
        return;
      }
      admit(fd, peer, size);
    }
    asio::post(loop_.io(), [this] { on_ready(); });  // more may be queued: edge already consumed
  }

  void admit(int fd, const socket_address& peer, socklen_t size) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tcp_socket s(loop_.io());
    std::error_code ec;
    s.assign(peer.any.sa_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    auto* c = new connection<tcp_stream>(loop_, tcp_stream(std::move(s)), &peer.any, size);
    if (open_connections_.fetch_add(1, std::memory_order_relaxed) >= max_connections_) {
      c->reject(503);
    } else {
      c->start();
    }
  }

  loop& loop_;
  asio::ip::tcp::acceptor socket_;
  asio::steady_timer retry_;
  const std::size_t max_connections_;
  std::atomic<std::size_t>& open_connections_;
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
    : owner(l), created_ns(coarse_now_ns()) {
  std::memcpy(&peer, peer_address, std::min<std::size_t>(peer_size, sizeof peer));
}

}  // namespace detail

class server::impl {
 public:
  impl(server_options o, handler h) : options(std::move(o)), handler_(std::move(h)) {
    if (!options.log) {
      options.log = [](std::string_view line) {
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      };
    }
  }

  ~impl() { release_threads(); }

  void start(std::error_code& ec);
  std::shared_future<stop_report> destroy();
  void on_loop_destroyed(detail::loop& l, const std::array<std::size_t, connection_state_count>&);
  void release_threads();

  server_options options;
  handler handler_;
  std::vector<std::unique_ptr<detail::loop>> loops;
  std::vector<detail::listener> listeners;
  std::vector<std::vector<std::unique_ptr<detail::acceptor>>> acceptors;  // per loop
  std::atomic<std::size_t> open_connections{0};

  mutable std::mutex mutex;
  bool running = false;
  bool stopping = false;
  unsigned loops_to_stop = 0;
  std::chrono::steady_clock::time_point stop_began;
  std::uint64_t completed_at_stop = 0, aborted_at_stop = 0;
  stop_report report;
  std::promise<stop_report> stop_promise;
  std::shared_future<stop_report> stop_future;
  std::vector<std::function<void(const stop_report&)>> on_stopped;
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
      c.idle_since_ns = coarse_now_ns();
      break;
    case connection_state::closed:
      static_cast<registry_hook&>(c).unlink();
      l.owner().open_connections.fetch_sub(1, std::memory_order_relaxed);
      break;
    default:
      break;
  }
}

const handler& handler_of(loop& l) noexcept { return l.owner().handler_; }

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
  if (options.listen.empty()) {
    ec = make_error_code(errc::no_listen_address);
    return;
  }
  release_threads();  // a stopped server may start again
  std::vector<detail::listener> bound;
  auto close_all = [&] {
    for (auto& l : bound) ::close(l.fd);
  };
  for (const auto& text : options.listen) {
    detail::listener li;
    li.bound = detail::parse_listen_address(text, ec);
    if (ec) return close_all();
    li.fd = ::socket(li.bound.any.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    // SO_REUSEADDR lets a new server bind while old connections sit in TIME_WAIT; it does not
    // let two live listeners share a port. SO_REUSEPORT does, so only on request.
    bool ok = li.fd >= 0 && ::setsockopt(li.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              (!options.reuse_port ||
               ::setsockopt(li.fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0) &&
              ::bind(li.fd, &li.bound.any, li.bound.size()) == 0 &&
              ::listen(li.fd, options.backlog) == 0;
    if (ok) {
      socklen_t size = sizeof li.bound;
      ok = ::getsockname(li.fd, &li.bound.any, &size) == 0;
    }
    if (!ok) {
      ec = {errno, std::system_category()};
      if (li.fd >= 0) ::close(li.fd);
      return close_all();
    }
    bound.push_back(li);
  }
  listeners = std::move(bound);

  unsigned n = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  acceptors.clear();
  acceptors.resize(n);
  for (unsigned i = 0; i < n; ++i) {
    loops.push_back(std::make_unique<detail::loop>(*this, i, options));
    for (const auto& li : listeners) {
      acceptors[i].push_back(std::make_unique<detail::acceptor>(
          *loops[i], li, options.limits.max_connections, open_connections));
    }
  }
  for (unsigned i = 0; i < n; ++i) {
    for (auto& a : acceptors[i]) asio::post(loops[i]->io(), [a = a.get()] { a->start(); });
    loops[i]->start_thread();
  }
  running = true;
  stopping = false;
  report = {};
  stop_promise = {};
  stop_future = stop_promise.get_future().share();
}

std::shared_future<stop_report> server::impl::destroy() {
  std::lock_guard lock(mutex);
  if (!running) {
    if (stop_future.valid()) return stop_future;
    std::promise<stop_report> p;
    p.set_value({});
    return p.get_future().share();
  }
  if (!stopping) {
    stopping = true;
    stop_began = std::chrono::steady_clock::now();
    report = {};
    report.graceful = false;
    completed_at_stop = aborted_at_stop = 0;
    for (auto& l : loops) {
      completed_at_stop += l->requests_completed.load(std::memory_order_relaxed);
      aborted_at_stop += l->requests_aborted.load(std::memory_order_relaxed);
    }
    loops_to_stop = static_cast<unsigned>(loops.size());
    for (std::size_t i = 0; i < loops.size(); ++i) {
      asio::post(loops[i]->io(), [this, i] {
        detail::loop& l = *loops[i];
        for (auto& a : acceptors[i]) a->close();
        std::array<std::size_t, connection_state_count> closed{};
        l.connections.for_each([&](detail::connection_base& c) {
          ++closed[static_cast<std::size_t>(c.state())];
          c.abort();
        });
        on_loop_destroyed(l, closed);
      });
    }
  }
  return stop_future;
}

void server::impl::on_loop_destroyed(detail::loop&,
                                     const std::array<std::size_t, connection_state_count>& closed) {
  std::vector<std::function<void(const stop_report&)>> callbacks;
  stop_report done;
  {
    std::lock_guard lock(mutex);
    for (std::size_t s = 0; s < connection_state_count; ++s) report.closed_by_state[s] += closed[s];
    if (--loops_to_stop != 0) return;
    // Every socket of every loop is closed: free the ports now, before anyone is told.
    for (auto& li : listeners) ::close(li.fd);
    listeners.clear();
    std::uint64_t completed = 0, aborted = 0;
    for (auto& l : loops) {
      completed += l->requests_completed.load(std::memory_order_relaxed);
      aborted += l->requests_aborted.load(std::memory_order_relaxed);
      l->allow_exit();
    }
    report.requests_completed = completed - completed_at_stop;
    report.requests_aborted = aborted - aborted_at_stop;
    report.took = std::chrono::steady_clock::now() - stop_began;
    running = false;
    done = report;
    callbacks.swap(on_stopped);
    stop_promise.set_value(done);
  }
  for (auto& cb : callbacks) cb(done);
}

void server::impl::release_threads() {
  for (auto& l : loops) {
    l->allow_exit();
    l->join();
  }
  acceptors.clear();
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
  for (const auto& li : impl_->listeners) out.push_back(detail::format_address(&li.bound.any));
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

std::shared_future<stop_report> server::destroy() { return impl_->destroy(); }

void server::destroy(std::function<void(const stop_report&)> done) {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->running) {
      impl_->on_stopped.push_back(std::move(done));
      done = nullptr;
    }
  }
  auto f = impl_->destroy();
  if (done) done(f.get());  // already stopped: report at once
}

void server::wait() {
  std::shared_future<stop_report> f;
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->running && !impl_->stopping) return;
    f = impl_->stop_future;
  }
  f.wait();
}

}  // namespace lameduck
