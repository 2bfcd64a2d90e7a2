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
  /// False when the stop closed connections that were not done (destroy, or a deadline).
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

/// An HTTP/1.1 server with one event loop per thread.
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
  /// The bound addresses as "ADDRESS:PORT", in the order given; ports chosen by the kernel filled in.
  std::vector<std::string> local_addresses() const;
  /// The bound port of the i-th listen address.
  std::uint16_t port(std::size_t i = 0) const;
  /// Connections per state, read without stopping any loop.
  connection_counts counts() const noexcept;

  /// Closes the listeners and every connection now; running handlers see their stop token.
  /// Idempotent and callable from any thread, including a handler; never blocks an event loop.
  std::shared_future<stop_report> destroy();
  /// As destroy(), and calls done (on a loop thread) with the report when it has completed.
  void destroy(std::function<void(const stop_report&)> done);
  /// Blocks until the server has stopped; must not be called from one of its own handlers.
  void wait();

  class impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace lameduck
