#pragma once
// A loop thread's half of a server: its event loop, the connections it owns (the registry and
// the counts per state, kept by set_state), their timeouts, the exchange pool, the acceptors,
// and the loop's part in a stop. Touched only on the worker's thread, except the atomics.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <lameduck/options.hpp>
#include <lameduck/server.hpp>

#include "connection_base.hpp"
#include "metrics/server_metrics.hpp"
#include "net/event_loop.hpp"
#include "net/listener.hpp"
#include "process/watchdog.hpp"

namespace lameduck::detail {

class certificate_set;
class exchange;
class worker;
struct ticket_seed;
struct tls_endpoint;

/// What the workers of one server share; set up before they start.
struct server_shared {
  server_options options;
  /// Answers requests (with the health endpoints in front of it when they share its ports).
  handler main;
  /// Answers connections to a health_options::listen address.
  handler health;
  /// Open connections of every worker, against limits::max_connections.
  std::atomic<std::size_t> open_connections{0};
  std::atomic<std::uint64_t> next_connection_id{1};
  /// Called on a worker's thread when its last connection has closed.
  std::function<void(worker&)> on_registry_empty;
  /// Set when the service manager asked for watchdog pings (WATCHDOG_USEC).
  std::unique_ptr<loop_watchdog> watchdog;
};

/// Lets an exchange reach its worker from any thread for as long as the worker exists.
struct worker_anchor {
  std::mutex mutex;
  worker* target = nullptr;  // null once the worker is gone
};

/// A worker's part in a stop (server.cpp carries it out); touched only on its thread.
struct worker_stop {
  explicit worker_stop(event_loop& l) : deadline_timer(l), grace_timer(l), lame_duck_timer(l) {}

  bool listeners_closed = false;
  bool reached = false;    // the stop has counted this worker's connections for its report
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

class worker {
  // First, so that everything below that waits on the loop goes before it does.
  server_shared& shared_;
  event_loop loop_;

 public:
  /// A worker of the server that `shared` describes; its thread starts with start().
  explicit worker(server_shared& shared, const system_calls& os = real_system_calls);
  /// Joins the thread; response handles still held afterwards free their exchanges.
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  event_loop& loop() noexcept { return loop_; }
  /// What exchanges use to reach this worker from other threads.
  const std::shared_ptr<worker_anchor>& anchor() const noexcept { return anchor_; }

  /// Performs every change of a connection's public state: registers a new connection, keeps
  /// the counts, and unregisters a closed one (telling the server when the registry empties).
  void set_state(connection_base& c, connection_state s) noexcept;
  /// Starts c's timeout of kind k from the loop's now (replacing any it had); none disarms.
  void arm(connection_base& c, timeout_kind k) noexcept;
  /// What answers c's requests: the server's handler, or the health endpoints alone.
  const handler& handler_for(const connection_base& c) const noexcept {
    return c.health_only ? shared_.health : shared_.main;
  }
  /// The server's timeouts and least data rates.
  const struct timeouts& timeouts() const noexcept { return shared_.options.timeouts; }
  /// Counts a request answered completely, or abandoned.
  void count_request(bool completed) noexcept;
  /// Counts a response sent, by its status, for the metrics; its request began at began_ns
  /// on the loop's clock.
  void count_response(int status, std::int64_t began_ns) noexcept {
    metrics.count_response(status, loop_.now_ns() - began_ns);
  }
  /// Writes one line to the server's log; never throws.
  void log(std::string_view line) const noexcept { loop_.log(line); }
  /// Takes an exchange from the pool (or makes one).
  exchange* acquire_exchange();
  /// Returns an exchange nobody refers to any more to the pool.
  void recycle_exchange(exchange* e) noexcept;

  /// Accepts connections on (a duplicate of) a listening socket once started; those of a
  /// health_only listener are answered by the health endpoints alone. Throws system_error.
  void add_listener(int listen_fd, bool health_only);
  /// As add_listener, for the i-th entry of server_options::tls_listen: its connections speak
  /// TLS, with these certificates and session-ticket keys.
  void add_tls_listener(int listen_fd, std::size_t i,
                        std::shared_ptr<const certificate_set> certificates,
                        const ticket_seed& tickets);
  /// From now on, handshakes on the i-th TLS listener get these certificates; on the loop's
  /// thread (a reload posts it).
  void use_certificates(std::size_t i, std::shared_ptr<const certificate_set> certificates);
  /// Adds the handshakes of this worker's TLS listeners to t; from any thread.
  void add_tls_handshakes(loop_totals& t) const noexcept;
  /// Starts the thread, which starts accepting; the worker beats the server's watchdog, if it
  /// has one, as its loop number `index`.
  void start(unsigned index);
  /// Closes this worker's duplicates of the listeners; first accepts what the kernel has
  /// queued on them if accept_queued (else the queue waits for another server).
  void close_listeners(bool accept_queued);
  /// Beats the watchdog no more, on the loop's thread, once this worker's part in a stop is
  /// done: a stopped server does not ping, and its loop, with no timer left, may end.
  void stop_watchdog() { watchdog_timer_.cancel(); }

  /// Every live connection of this worker.
  intrusive_list<connection_base, registry_hook> connections;
  /// Connections per state on this worker; written only by its thread.
  std::array<std::atomic<std::size_t>, connection_state_count> counts{};
  /// Requests answered completely, and abandoned, on this worker; written only by its thread.
  single_writer_counter requests_completed, requests_aborted;
  /// What the metrics endpoint reports for this loop, beside the counts above; written only
  /// by its thread, on cache lines of its own.
  loop_counters metrics;
  /// A graceful drain has begun: responses say "Connection: close". Set by the verb's thread
  /// at once, before the worker has handled the drain, so that no response written after the
  /// call says otherwise.
  std::atomic<bool> draining{false};
  /// During a drain, idle connections wait for their next request (the idle grace period).
  std::atomic<bool> keep_idle{false};
  /// The listeners were handed over: a connection accepted in that instant (fresh) waits for
  /// its first request in a drain, since its client connected to a port that kept serving.
  std::atomic<bool> keep_fresh{false};
  /// This worker's part in a stop.
  worker_stop stop;

 private:
  template <class Stream>
  void admit(Stream stream, const socket_address& peer, socklen_t size, bool health_only);
  // Beats the server's watchdog as loop `index`, now and every period from now on.
  void beat_watchdog(unsigned index);

  // Indexed by timeout_kind; in place, since arm() runs several times per request.
  std::array<timeout_list, timeout_kind_count> timeouts_;
  std::vector<std::unique_ptr<acceptor>> acceptors_;
  std::vector<std::unique_ptr<tls_endpoint>> tls_endpoints_;  // by tls_listen entry
  std::vector<exchange*> free_exchanges_;
  std::shared_ptr<worker_anchor> anchor_;
  loop_timer watchdog_timer_;
};

}  // namespace lameduck::detail
