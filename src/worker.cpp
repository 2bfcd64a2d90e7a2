#include "worker.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>
#include <type_traits>

#include "connection.hpp"
#include "exchange.hpp"
#include "net/tcp_stream.hpp"
#include "tls/tls_stream.hpp"

namespace lameduck::detail {

namespace {

constexpr std::size_t max_pooled_exchanges = 256;

// The counts per state: only the worker's thread writes, any thread reads; a count goes
// down as well as up, which single_writer_counter does not.
void bump(std::atomic<std::size_t>& a, std::ptrdiff_t by) noexcept {
  a.store(a.load(std::memory_order_relaxed) + static_cast<std::size_t>(by),
          std::memory_order_relaxed);
}

// Every timeout list of a worker holds connections.
void expire(timed& t) {
  static_cast<connection_base&>(t).on_timeout();
}

}  // namespace

connection_base::connection_base(worker& w, const sockaddr* peer_address,
                                 socklen_t peer_size) noexcept
    : owner(w), created_ns(w.loop().now_ns()) {
  std::memcpy(&peer, peer_address, std::min<std::size_t>(peer_size, sizeof peer));
}

worker::worker(server_shared& shared, const system_calls& os)
    : shared_(shared),
      loop_(shared.options.log, os),
      stop(loop_),
      // In the order of timeout_kind.
      timeouts_{timeout_list(loop_, shared.options.timeouts.header, expire),
                timeout_list(loop_, shared.options.timeouts.body, expire),
                timeout_list(loop_, shared.options.timeouts.idle, expire),
                timeout_list(loop_, shared.options.timeouts.write, expire),
                timeout_list(loop_, shared.options.timeouts.linger, expire)},
      anchor_(std::make_shared<worker_anchor>()),
      watchdog_timer_(loop_) {
  anchor_->target = this;
}

worker::~worker() {
  loop_.join();
  {
    // From now on, exchanges still held by response handles free themselves.
    std::lock_guard lock(anchor_->mutex);
    anchor_->target = nullptr;
  }
  // Work posted after the thread exited is destroyed without running (a posted response then
  // frees its exchange).
  loop_.discard_posted();
  acceptors_.clear();
  for (exchange* e : free_exchanges_)
    delete e;
}

void worker::set_state(connection_base& c, connection_state s) noexcept {
  if (!static_cast<registry_hook&>(c).linked()) {
    connections.push_back(c);  // a new connection enters the registry
  } else {
    bump(counts[static_cast<std::size_t>(c.state_)], -1);
  }
  c.state_ = s;
  bump(counts[static_cast<std::size_t>(s)], 1);
  switch (s) {
    case connection_state::idle:
      c.idle_since_ns = loop_.now_ns();
      break;
    case connection_state::closed:
      static_cast<registry_hook&>(c).unlink();
      shared_.open_connections.fetch_sub(1, std::memory_order_relaxed);
      if (connections.empty() && shared_.on_registry_empty) shared_.on_registry_empty(*this);
      break;
    default:
      break;
  }
}

void worker::arm(connection_base& c, timeout_kind k) noexcept {
  c.timeout = k;
  if (k == timeout_kind::none) {
    timeout_list::disarm(c);
  } else if (!timeouts_[static_cast<std::size_t>(k)].arm(c)) {
    c.timeout = timeout_kind::none;  // this timeout is disabled
  }
}

void worker::count_request(bool completed) noexcept {
  (completed ? requests_completed : requests_aborted).add();
}

exchange* worker::acquire_exchange() {
  exchange* e;
  if (free_exchanges_.empty()) {
    e = new exchange(*this, shared_.options.limits);
  } else {
    e = free_exchanges_.back();
    free_exchanges_.pop_back();
    e->reset_for_reuse();
  }
  return e;
}

void worker::recycle_exchange(exchange* e) noexcept {
  if (free_exchanges_.size() < max_pooled_exchanges) {
    e->release_large_buffers();
    free_exchanges_.push_back(e);
  } else {
    delete e;
  }
}

void worker::add_listener(int listen_fd, bool health_only) {
  acceptors_.push_back(std::make_unique<acceptor>(
      loop_, listen_fd, [this, health_only](int fd, const socket_address& peer, socklen_t size) {
        admit(tcp_stream(fd), peer, size, health_only);
      }));
}

void worker::add_tls_listener(int listen_fd, std::size_t i,
                              std::shared_ptr<const certificate_set> certificates,
                              const ticket_seed& tickets) {
  if (tls_endpoints_.size() <= i) tls_endpoints_.resize(i + 1);
  if (!tls_endpoints_[i]) {
    tls_endpoints_[i] = std::make_unique<tls_endpoint>(std::move(certificates), tickets);
  }
  tls_endpoint& endpoint = *tls_endpoints_[i];
  acceptors_.push_back(std::make_unique<acceptor>(
      loop_, listen_fd, [this, &endpoint](int fd, const socket_address& peer, socklen_t size) {
        admit(tls_stream(fd, endpoint), peer, size, false);
      }));
}

void worker::use_certificates(std::size_t i, std::shared_ptr<const certificate_set> certificates) {
  if (i < tls_endpoints_.size() && tls_endpoints_[i]) {
    tls_endpoints_[i]->certificates = std::move(certificates);
  }
}

void worker::add_tls_handshakes(loop_totals& t) const noexcept {
  // The endpoints are all made before the thread starts; only their counters change.
  for (const auto& e : tls_endpoints_) {
    if (!e) continue;
    t.tls_full += e->handshakes_full.load();
    t.tls_resumed += e->handshakes_resumed.load();
    t.tls_failed += e->handshakes_failed.load();
  }
}

void worker::start(unsigned index) {
  for (auto& a : acceptors_)
    loop_.post([a = a.get()] { a->start(); });
  if (shared_.watchdog) {
    // Beats from the loop's own timer: a loop stuck in a handler stops beating.
    loop_.post([this, index] { beat_watchdog(index); });
  }
  loop_.start_thread();
}

void worker::beat_watchdog(unsigned index) {
  shared_.watchdog->beat(index, loop_.now_ns());
  watchdog_timer_.start_after(shared_.watchdog->period(), [this, index] { beat_watchdog(index); });
}

void worker::close_listeners(bool accept_queued) {
  for (auto& a : acceptors_)
    a->close(accept_queued);
}

// An idle connection's whole footprint but its socket; see connection.hpp's members.
static_assert(sizeof(connection<tcp_stream>) <= 160);

template <class Stream>
void worker::admit(Stream stream, const socket_address& peer, socklen_t size, bool health_only) {
  int one = 1;
  ::setsockopt(stream.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto* c = new connection<Stream>(*this, std::move(stream), &peer.any, size);
  c->id = shared_.next_connection_id.fetch_add(1, std::memory_order_relaxed);
  c->health_only = health_only;
  c->tls = std::is_same_v<Stream, tls_stream>;
  metrics.accepted.add();
  if (shared_.open_connections.fetch_add(1, std::memory_order_relaxed) >=
      shared_.options.limits.max_connections) {
    metrics.rejected.add();
    c->reject(503);
  } else {
    c->start();
  }
}

}  // namespace lameduck::detail
