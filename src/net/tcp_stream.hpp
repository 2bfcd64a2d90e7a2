#pragma once
// A plain TCP stream for connection<Stream>: non-blocking reads and writes straight on the
// socket, and readiness waits through the loop's reactor. A TLS stream offers the same calls.

#include <sys/socket.h>
#include <sys/uio.h>
#include <cerrno>
#include <cstddef>
#include <system_error>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

namespace lameduck::detail {

/// A TCP socket bound to one io_context: its executor is one pointer, not a polymorphic one,
/// which keeps every connection (and every wait it queues) smaller.
using tcp_socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

class tcp_stream {
 public:
  explicit tcp_stream(tcp_socket socket) : socket_(std::move(socket)) {}

  /// Reads what is there, at most n bytes; would_block when nothing is, 0 at end of stream.
  std::size_t read_some(char* p, std::size_t n, std::error_code& ec) noexcept {
    ssize_t r = ::recv(socket_.native_handle(), p, n, 0);
    if (r >= 0) return static_cast<std::size_t>(r);
    ec = {errno == EWOULDBLOCK ? EAGAIN : errno, std::system_category()};
    return 0;
  }
  /// Writes as much of p as the socket takes now.
  std::size_t write_some(const char* p, std::size_t n, std::error_code& ec) noexcept {
    ssize_t r = ::send(socket_.native_handle(), p, n, MSG_NOSIGNAL);
    if (r >= 0) return static_cast<std::size_t>(r);
    ec = {errno == EWOULDBLOCK ? EAGAIN : errno, std::system_category()};
    return 0;
  }
  /// Calls h once the socket is readable (or has an error, or is closed).
  template <class H>
  void wait_readable(H&& h) {
    socket_.async_wait(asio::socket_base::wait_read, std::forward<H>(h));
  }
  /// Calls h once the socket can take more bytes.
  template <class H>
  void wait_writable(H&& h) {
    socket_.async_wait(asio::socket_base::wait_write, std::forward<H>(h));
  }
  /// Sends FIN after what was written; reading goes on.
  void shutdown_send() noexcept { ::shutdown(socket_.native_handle(), SHUT_WR); }
  /// Closes the socket; pending waits complete with operation_aborted.
  void close() noexcept {
    std::error_code ignored;
    socket_.close(ignored);
  }

 private:
  tcp_socket socket_;
};

/// Whether an error code means "try again when the socket is ready".
inline bool would_block(const std::error_code& ec) noexcept {
  return ec.value() == EAGAIN && ec.category() == std::system_category();
}

}  // namespace lameduck::detail
