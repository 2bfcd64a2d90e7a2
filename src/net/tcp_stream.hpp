#pragma once
// A plain TCP stream for connection<Stream> (net/stream.hpp). Readiness comes from the loop
// that watches the socket, through on_ready().

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <utility>

// Under a sanitizer, tcp_stream reads and writes through the libc calls it intercepts.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define LAMEDUCK_TCP_STREAM_LIBC_IO 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define LAMEDUCK_TCP_STREAM_LIBC_IO 1
#endif
#endif

#include "net/stream.hpp"

namespace lameduck::detail {

/// A plain TCP stream: non-blocking reads and writes straight on the socket.
class tcp_stream {
 public:
  /// Takes ownership of a connected, non-blocking socket.
  explicit tcp_stream(int fd) noexcept : fd_(fd) {}
  tcp_stream(tcp_stream&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), readable_(other.readable_), hung_up_(other.hung_up_) {}
  tcp_stream& operator=(tcp_stream&&) = delete;
  ~tcp_stream() { close(); }

  int native_handle() const noexcept { return fd_; }

  void on_ready(std::uint32_t events) noexcept {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hung_up_ = true;
  }

  // epoll reports data that is already there when the socket is added, so nothing is read
  // before the first readiness event.
  bool may_read() const noexcept { return readable_; }

  // Whether epoll said the client has finished sending (or the socket failed).
  bool hung_up() const noexcept { return hung_up_; }

  // TCP's opening is the kernel's: an accepted stream is open.
  bool opening() const noexcept { return false; }

  io_result read(char* p, std::size_t n) noexcept {
    ssize_t r = sys_recv(fd_, p, n);
    if (r > 0) {
      // A short read emptied the socket: the next read waits for an edge, which saves a
      // recv() that would only say EAGAIN. Unless the client has finished sending: its end of
      // stream came with the same edge and is yet to be read.
      if (static_cast<std::size_t>(r) < n && !hung_up_) readable_ = false;
      return {static_cast<std::size_t>(r), io_status::ok};
    }
    if (r == 0) return {0, io_status::eof};
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      return {0, io_status::want_read};
    }
    return {0, io_status::error};
  }

  io_result write(const char* p, std::size_t n) noexcept {
    ssize_t r = sys_send(fd_, p, n);
    if (r >= 0) return {static_cast<std::size_t>(r), io_status::ok};
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {0, io_status::want_write};
    return {0, io_status::error};
  }

  io_result shutdown_send() noexcept {
    ::shutdown(fd_, SHUT_WR);
    return {};
  }

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
  bool readable_ = false;  // a read may find something without a new edge
  bool hung_up_ = false;   // epoll said the client has finished sending (or the socket failed)
};

static_assert(stream<tcp_stream>);

}  // namespace lameduck::detail
