#pragma once
// A plain TCP stream for connection<Stream>: non-blocking reads and writes straight on the
// socket. Readiness comes from the loop (loop::watch), not from the stream. A TLS stream
// offers the same calls.

#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstddef>
#include <system_error>
#include <utility>

namespace lameduck::detail {

class tcp_stream {
 public:
  /// Takes ownership of a connected, non-blocking socket.
  explicit tcp_stream(int fd) noexcept : fd_(fd) {}
  tcp_stream(tcp_stream&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  tcp_stream& operator=(tcp_stream&&) = delete;
  ~tcp_stream() { close(); }

  /// The socket, for the loop to watch.
  int native_handle() const noexcept { return fd_; }
  /// Reads what is there, at most n bytes; would_block when nothing is, 0 at end of stream.
  std::size_t read_some(char* p, std::size_t n, std::error_code& ec) noexcept {
    ssize_t r = ::recv(fd_, p, n, 0);
    if (r >= 0) return static_cast<std::size_t>(r);
    ec = {errno == EWOULDBLOCK ? EAGAIN : errno, std::system_category()};
    return 0;
  }
  /// Writes as much of p as the socket takes now.
  std::size_t write_some(const char* p, std::size_t n, std::error_code& ec) noexcept {
    ssize_t r = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (r >= 0) return static_cast<std::size_t>(r);
    ec = {errno == EWOULDBLOCK ? EAGAIN : errno, std::system_category()};
    return 0;
  }
  /// Sends FIN after what was written; reading goes on.
  void shutdown_send() noexcept { ::shutdown(fd_, SHUT_WR); }
  /// Closes the socket (which also takes it out of the loop's epoll set).
  void close() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_;
};

/// Whether an error code means "try again when the socket is ready".
inline bool would_block(const std::error_code& ec) noexcept {
  return ec.value() == EAGAIN && ec.category() == std::system_category();
}

}  // namespace lameduck::detail
