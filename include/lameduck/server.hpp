#pragma once
/// @file The server: listeners, event-loop threads, connections and their lifecycle.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <lameduck/errors.hpp>
#include <lameduck/options.hpp>
#include <lameduck/request.hpp>
#include <lameduck/response.hpp>
#include <lameduck/router.hpp>

namespace lameduck {

/// The state a connection is in; every connection is in exactly one (see docs/lifecycle.md).
enum class connection_state : std::uint8_t {
  fresh,     ///< accepted; no byte of a request received yet
  active,    ///< a request is being received or handled, or a response is being written
  idle,      ///< keep-alive: the last response is written and no byte of the next has arrived
  upgraded,  ///< handed over to another protocol; no longer HTTP/1.1
  closing,   ///< the server decided to close it: half-closed, reading and discarding
  closed,    ///< terminal
};

/// The number of states, for arrays indexed by connection_state.
inline constexpr std::size_t connection_state_count = 6;

/// The name of a state, e.g. "idle".
std::string_view to_string(connection_state s) noexcept;

/// How many connections are in each state; closed counts every connection ever closed.
struct connection_counts {
  std::array<std::size_t, connection_state_count> by_state{};
  /// Connections in this state.
  std::size_t operator[](connection_state s) const noexcept {
    return by_state[static_cast<std::size_t>(s)];
  }
  /// Connections not yet closed.
  std::size_t open() const noexcept;
};

/// What a stop did, delivered when it completes.
struct stop_report {
  /// False when the stop closed open connections by force (destroy, or a drain's deadline).
  bool graceful = true;
  /// Connections closed by the stop, by the state they were in when it reached them.
  std::array<std::size_t, connection_state_count> closed_by_state{};
  /// Requests answered completely while the stop was in progress.
  std::size_t requests_completed = 0;
  /// Requests whose response was cut off or never sent.
  std::size_t requests_aborted = 0;
  /// From the call to the completion.
  std::chrono::steady_clock::duration took{};
};

/// One live connection, as server::snapshot() saw it.
struct connection_info {
  /// Unique among the server's connections since it was created.
  std::uint64_t id = 0;
  /// The client's address, "ADDRESS:PORT".
  std::string peer;
  /// The state it was in.
  connection_state state = connection_state::fresh;
  /// Requests answered completely on it.
  std::uint64_t requests = 0;
  /// Accepted on an HTTPS listener (server_options::tls_listen).
  bool tls = false;
  /// Time since it was accepted.
  std::chrono::steady_clock::duration age{};
  /// Time since it became idle; zero unless idle.
  std::chrono::steady_clock::duration idle_for{};
};

/// What server::reload_certificates() did.
struct reload_result {
  /// Empty when every TLS listener presents the new certificates to new handshakes;
  /// errc::invalid_certificate when one was refused (and the previous ones stay in service);
  /// errc::not_running.
  std::error_code error;
  /// Why, as the log says it: the listener, the file and OpenSSL's reason.
  std::string why;
  /// Whether the new certificates are in service.
  explicit operator bool() const noexcept { return !error; }
};

/// A callback that receives a stop's report (on one of the server's threads).
using stop_callback = std::function<void(const stop_report&)>;

/// An HTTP/1.1 server with one event loop per thread.
///
/// Every verb (stop_accepting, shutdown, close, destroy) is idempotent, may be called from any
/// thread including a request handler, never blocks, and returns a future (or calls a callback)
/// to wait on. A stronger or earlier-ending verb overrides a weaker one: destroy() forces a
/// drain, a shorter deadline shortens it. Callbacks run on one of the server's threads: they
/// must not destroy the server object (its destructor waits for those threads).
class server {
 public:
  /// Creates a server that answers every request with the handler; nothing is bound yet.
  server(server_options options, handler h);
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  /// Destroys the server at once (as destroy()) and waits for its threads.
  ~server();

  /// Binds the listeners and starts the threads; throws std::system_error on failure.
  void start();
  /// Binds the listeners and starts the threads; reports failure in the error code.
  void start(std::error_code& ec);
  /// The bound addresses as "ADDRESS:PORT", in the order given; ports chosen by the kernel filled
  /// in.
  std::vector<std::string> local_addresses() const;
  /// The bound port of the i-th listen address.
  std::uint16_t port(std::size_t i = 0) const;
  /// Connections per state, read without stopping any loop.
  connection_counts counts() const noexcept;

  /// Whether the server is started, no stop has begun, and the application is ready: its
  /// set_ready() flag is up and every readiness check passes (run here, on the calling thread).
  /// What a readiness probe reports.
  bool ready() const noexcept;
  /// Says whether the application is ready to serve (its database pool is up, say); /readyz
  /// and ready() say no while it is not. True until called: without it nothing changes.
  /// Callable from any thread at any time, before start() too; costs one atomic store, and a
  /// post to a loop thread when readiness may have just become true.
  void set_ready(bool application_ready) noexcept;
  /// Adds a readiness check: ready() and /readyz say no while it returns false. It runs each
  /// time readiness is asked (a probe, on the loop thread that answers it; ready(), on the
  /// caller's), so it must be cheap, must not block and must be safe on any thread: read a
  /// flag or an atomic that the application keeps, never a network round trip. A check that
  /// throws counts as false. Not asked while the server is not running or is stopping.
  void add_readiness_check(std::function<bool()> check);
  /// Calls done once, on one of the server's threads, when the running server is first found
  /// ready (soon after start(), set_ready(true) or when_ready() itself, or at a probe that
  /// finds the checks passing); dropped if the server stops first. How signal_shutdown knows
  /// when to send READY=1.
  void when_ready(std::function<void()> done);

  /// Closes every listener, first accepting the connections the kernel had already queued;
  /// open connections go on being served. Completes when the ports are free.
  std::shared_future<void> stop_accepting();
  /// As stop_accepting(), and calls done when the ports are free.
  void stop_accepting(std::function<void()> done);

  /// Hands the listening sockets to the caller instead of closing them, to start the next
  /// server on (server_options::listen_sockets): the sockets never close, so no connection is
  /// refused or reset in between; connections that arrive meanwhile wait in the kernel's queue
  /// for whichever server accepts them. This server accepts nothing more (a connection it
  /// accepted in the same instant is served), goes on serving the connections it has, and
  /// then behaves as after stop_accepting(). Never blocks. In the order of local_addresses().
  /// Throws std::system_error: errc::not_running, errc::listeners_closed (handed over or
  /// closed before).
  std::vector<listening_socket> hand_over_listeners();
  /// As above; reports failure in the error code and returns nothing.
  std::vector<listening_socket> hand_over_listeners(std::error_code& ec);

  /// Graceful drain (docs/lifecycle.md): stops accepting, closes idle connections safely (or
  /// keeps them for options.drain.idle_grace), lets requests in progress finish with
  /// "Connection: close", and destroys whatever is left when `deadline` has passed.
  std::shared_future<stop_report> shutdown(std::chrono::steady_clock::duration deadline);
  /// As shutdown(deadline), and calls done with the report when the drain has completed.
  void shutdown(std::chrono::steady_clock::duration deadline, stop_callback done);
  /// shutdown() with no deadline.
  std::shared_future<stop_report> close();
  /// As close(), and calls done with the report when the drain has completed.
  void close(stop_callback done);
  /// Closes the listeners and every connection now; running handlers see their stop token and
  /// what they send afterwards is dropped. Completes when every socket is closed.
  std::shared_future<stop_report> destroy();
  /// As destroy(), and calls done with the report when it has completed.
  void destroy(stop_callback done);

  /// Calls done with the report when the running server stops (at once if it is not running).
  void when_stopped(stop_callback done);
  /// Blocks until the server has stopped; must not be called from one of its own handlers.
  void wait();

  /// Reads every TLS listener's certificate and key files again, on a thread of the server's
  /// own, checks them all (the chain parses, the key matches, valid now, names a host), and
  /// only then hands them to every loop: handshakes from then on use them, open connections
  /// continue untouched, and session tickets issued before still resume. A refused set
  /// leaves the previous certificates in service, with one line to the log. Reloads never
  /// overlap: calls made during one are answered by the next. Callable from any thread; do
  /// not wait for the result inside a request handler (its loop takes part in the reload).
  std::future<reload_result> reload_certificates();

  /// The live connections, gathered from every loop without stopping it.
  std::shared_future<std::vector<connection_info>> snapshot() const;

  /// Writes one line to the server's log (server_options::log; standard error by default), as
  /// the server's own messages go, in server_options::log_format; never throws.
  void log(std::string_view line) const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace lameduck
