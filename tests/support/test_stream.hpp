#pragma once
// An in-memory stream for connection<Stream> (src/net/stream.hpp), after Boost.Beast's
// test::stream: input handed out in scripted pieces, output captured, the Nth read or write
// failing, and the want_read/want_write answers a TLS stream gives. The test keeps the state
// and plays the event loop's part by calling the connection's on_ready() itself.

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstddef>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "net/stream.hpp"

namespace lameduck::testing {

using detail::io_result;
using detail::io_status;

/// What a test_stream reads and what it wrote, shared with the test that made it.
struct test_stream_state {
  /// Input: each read returns what is left of the first piece, at most what it asked for.
  std::deque<std::string> input;
  /// What a read says once the pieces are used up: eof, or want_read (more may come).
  bool eof = false;
  /// Answers the next reads give before any input, one each: want_read, want_write, error.
  std::deque<io_status> read_script;
  /// Answers the next writes give before taking any bytes, one each.
  std::deque<io_status> write_script;
  /// The n-th read (counting from 1) fails with error; 0: none does.
  std::size_t fail_read = 0;
  /// The n-th write (counting from 1) fails with error; 0: none does.
  std::size_t fail_write = 0;
  /// opening() says so, as a TLS stream in its handshake does.
  bool opening = false;
  /// Bytes writes take before they say want_write, as a full socket would; the test adds room.
  std::size_t write_room = std::numeric_limits<std::size_t>::max();

  /// Everything written.
  std::string output;
  /// Bytes the reads returned.
  std::size_t bytes_read = 0;
  std::size_t reads = 0, writes = 0;
  bool shut_down = false;  ///< shutdown_send() was called
  bool closed = false;     ///< close() was called
};

class test_stream {
 public:
  explicit test_stream(std::shared_ptr<test_stream_state> state)
      : state_(std::move(state)), fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  test_stream(test_stream&& o) noexcept
      : state_(std::move(o.state_)),
        fd_(std::exchange(o.fd_, -1)),
        readable_(o.readable_),
        read_wants_write_(o.read_wants_write_) {}
  test_stream& operator=(test_stream&&) = delete;
  ~test_stream() { close(); }

  // An eventfd that never fires: the loop accepts it in its epoll set, and events come only
  // from the test, through the connection's on_ready().
  int native_handle() const noexcept { return fd_; }

  // As a TLS stream does: a read that wanted the socket writable is retried when it is.
  void on_ready(std::uint32_t events) noexcept {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
    if ((events & EPOLLOUT) && read_wants_write_) readable_ = true;
  }

  bool may_read() const noexcept { return readable_; }

  bool opening() const noexcept { return state_->opening; }

  io_result read(char* p, std::size_t n) noexcept {
    auto& s = *state_;
    if (++s.reads == s.fail_read) return {0, io_status::error};
    if (!s.read_script.empty()) {
      io_status st = s.read_script.front();
      s.read_script.pop_front();
      if (st == io_status::want_read || st == io_status::want_write) {
        readable_ = false;
        read_wants_write_ = st == io_status::want_write;
      }
      return {0, st};
    }
    if (s.input.empty()) {
      if (s.eof) return {0, io_status::eof};
      readable_ = false;
      read_wants_write_ = false;
      return {0, io_status::want_read};
    }
    std::string& piece = s.input.front();
    std::size_t k = std::min(n, piece.size());
    piece.copy(p, k);
    piece.erase(0, k);
    if (piece.empty()) s.input.pop_front();
    s.bytes_read += k;
    return {k, io_status::ok};
  }

  io_result write(const char* p, std::size_t n) noexcept {
    auto& s = *state_;
    if (++s.writes == s.fail_write) return {0, io_status::error};
    if (!s.write_script.empty()) {
      io_status st = s.write_script.front();
      s.write_script.pop_front();
      return {0, st};
    }
    std::size_t k = std::min(n, s.write_room);
    if (k == 0 && n != 0) return {0, io_status::want_write};
    s.write_room -= k;
    s.output.append(p, k);
    return {k, io_status::ok};
  }

  io_result shutdown_send() noexcept {
    state_->shut_down = true;
    return {};
  }

  void close() noexcept {
    if (fd_ < 0) return;
    ::close(std::exchange(fd_, -1));
    state_->closed = true;
  }

 private:
  std::shared_ptr<test_stream_state> state_;
  int fd_;
  bool readable_ = false;
  bool read_wants_write_ = false;
};

static_assert(detail::stream<test_stream>);

}  // namespace lameduck::testing
