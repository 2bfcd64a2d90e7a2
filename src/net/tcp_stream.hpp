#pragma once
// A plain TCP stream for connection<Stream>: non-blocking reads and writes straight on the
// socket. Readiness comes from the loop (loop::watch), not from the stream. A TLS stream
// offers the same calls.

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <cstddef>
#include <system_error>
#include <utility>

// Under a sanitizer, tcp_stream reads and writes through the libc calls it intercepts.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define LAMEDUCK_TCP_STREAM_LIBC_IO 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define LAMEDUCK_TCP_STREAM_LIBC_IO 1
#endif
#endif

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
    ssize_t r = sys_recv(fd_, p, n);
    if (r >= 0) return static_cast<std::size_t>(r);
    ec = {errno == EWOULDBLOCK ? EAGAIN : errno, std::system_category()};
    return 0;
  }
  /// Writes as much of p as the socket takes now.
  std::size_t write_some(const char* p, std::size_t n, std::error_code& ec) noexcept {
    ssize_t r = sys_send(fd_, p, n);
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
  // glibc's recv() and send() are cancellation points: in a process with more than one thread
  // (every lameduck server: the caller's thread and the loop's), each call switches the
  // thread's cancellation type on and off again with atomic operations, about 1.5 % of the
  // server's time per request in bench/throughput.sh. lameduck's threads are never cancelled,
  // so the read and the write of every request go to the kernel directly. Not under the
  // sanitizers: ThreadSanitizer sees socket I/O as synchronisation (a client on another thread
  // reading what a handler answered) and AddressSanitizer checks the buffers, both only in the
  // libc calls they intercept.
#ifdef LAMEDUCK_TCP_STREAM_LIBC_IO
  static ssize_t sys_recv(int fd, char* p, std::size_t n) noexcept {
    return ::recv(fd, p, n, 0);
  }
  static ssize_t sys_send(int fd, const char* p, std::size_t n) noexcept {
    return ::send(fd, p, n, MSG_NOSIGNAL);
  }
#else
  static ssize_t sys_recv(int fd, char* p, std::size_t n) noexcept {
    return ::syscall(SYS_recvfrom, fd, p, n, 0, nullptr, nullptr);
  }
  static ssize_t sys_send(int fd, const char* p, std::size_t n) noexcept {
    return ::syscall(SYS_sendto, fd, p, n, MSG_NOSIGNAL, nullptr, 0);
  }
#endif

  int fd_;
};

/// Whether an error code means "try again when the socket is ready".
inline bool would_block(const std::error_code& ec) noexcept {
  return ec.value() == EAGAIN && ec.category() == std::system_category();
}

}  // namespace lameduck::detail
