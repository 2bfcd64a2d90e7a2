#pragma once
// What a connection needs of its transport. A plain TCP socket and a TLS session over one
// differ in exactly the places this concept names: a read may need the socket writable (a TLS
// key update) and a write may need it readable; a TLS stream can hold decrypted input that no
// readiness event will announce. So the stream, not the connection, decides whether a read
// may find input without a new readiness event.

#include <concepts>
#include <cstddef>
#include <cstdint>

namespace lameduck::detail {

/// How a read, a write or a shutdown ended.
enum class io_status : std::uint8_t {
  ok,          ///< bytes moved
  want_read,   ///< nothing now: wait until the socket is readable
  want_write,  ///< nothing now: wait until the socket is writable
  eof,         ///< the peer has finished sending (reads only)
  error,       ///< the connection failed; nothing more will move
  /// The peer speaks another protocol than the stream's (plain text to a TLS port); from now
  /// on the stream passes bytes as they are, so that the peer can be told so in its own terms
  /// before the close (reads only).
  other_protocol,
};

/// The result of one stream operation.
struct io_result {
  std::size_t bytes = 0;
  io_status status = io_status::ok;

  /// Whether the operation must wait for readiness (either kind).
  bool would_block() const noexcept {
    return status == io_status::want_read || status == io_status::want_write;
  }
};

/// A non-blocking byte stream that a connection reads and writes; its descriptor is watched
/// by the connection's event loop, edge-triggered, for input and output at once.
template <class S>
concept stream = std::move_constructible<S> &&
    requires(S& s, const S& cs, char* in, const char* out, std::size_t n, std::uint32_t events) {
  /// The descriptor to watch.
  { cs.native_handle() }
  noexcept->std::same_as<int>;
  /// The loop reported readiness (epoll events).
  { s.on_ready(events) }
  noexcept;
  /// Whether a read may find input (or the end) without a new readiness
  /// event; false once a read has emptied what can be read now.
  { cs.may_read() }
  noexcept->std::same_as<bool>;
  /// Whether the stream's own opening exchange (a TLS handshake) has begun and no byte of
  /// data has come yet: the peer is on its way to its first byte of data.
  { cs.opening() }
  noexcept->std::same_as<bool>;
  /// Reads at most n bytes.
  { s.read(in, n) }
  noexcept->std::same_as<io_result>;
  /// Writes at most n bytes.
  { s.write(out, n) }
  noexcept->std::same_as<io_result>;
  /// Ends the sending direction after what was written (a FIN, or a TLS
  /// close_notify); reading goes on.
  { s.shutdown_send() }
  noexcept->std::same_as<io_result>;
  /// Closes the descriptor now (which takes it out of the epoll set).
  { s.close() }
  noexcept;
};

}  // namespace lameduck::detail
