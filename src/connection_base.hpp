#pragma once
// What every connection has whatever its stream: its public state, its place in its worker's
// registry, the timeout it waits on, and the calls its worker and its response handles make.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include <lameduck/server.hpp>

#include "net/event_loop.hpp"

namespace lameduck::detail {

class worker;
enum class response_op : std::uint8_t;

/// The timeouts a connection can wait on; at most one at a time.
enum class timeout_kind : std::uint8_t { header, body, idle, write, linger, none };
inline constexpr std::size_t timeout_kind_count = static_cast<std::size_t>(timeout_kind::none);

/// A connection's place in its worker's registry (every live connection).
struct registry_hook : list_link {};

class connection_base : public event_target, public registry_hook, public timed {
 public:
  connection_base(worker& w, const sockaddr* peer, socklen_t peer_size) noexcept;
  connection_base(const connection_base&) = delete;
  connection_base& operator=(const connection_base&) = delete;

  /// The timeout it waited on (`timeout`) has passed.
  virtual void on_timeout() = 0;
  /// Closes the connection now, whatever it is doing (destroy, a drain's deadline).
  virtual void abort() = 0;
  /// A drain has reached the connection, or its idle grace has ended (see worker::draining).
  virtual void on_drain() = 0;
  /// Carries out what the response handle asked (on the worker's thread).
  virtual void on_response(response_op op, std::string& data) = 0;

  /// The public state; changed only by worker::set_state().
  connection_state state() const noexcept { return state_; }

  worker& owner;
  std::int64_t created_ns;
  std::int64_t idle_since_ns = 0;
  std::uint64_t id = 0;                       ///< unique within the server
  std::uint64_t requests = 0;                 ///< requests answered completely
  timeout_kind timeout = timeout_kind::none;  ///< what the armed timeout is for
  bool health_only = false;                   ///< accepted on a health_options::listen address
  bool tls = false;                           ///< accepted on an HTTPS listener

 private:
  friend class worker;
  // Beside the other bytes, before the address: every idle connection has one of these.
  connection_state state_ = connection_state::closed;  // not yet registered

 public:
  sockaddr_in6 peer{};
};

}  // namespace lameduck::detail
