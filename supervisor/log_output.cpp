// The supervisor's standard output: a bounded buffer written without blocking.

#include "log_output.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>

namespace lameduck::supervisor {

namespace {

// Whether epoll accepts fd: it refuses regular files and /dev/null (EPERM), whose writes
// never wait for a reader anyway.
bool can_poll(int fd) {
  const unique_fd probe(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLOUT;
  return probe && ::epoll_ctl(probe.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

}  // namespace

log_output::log_output(int fd, std::size_t capacity, notice_function notice, clock_function clock)
    : capacity_(capacity), notice_(std::move(notice)), clock_(std::move(clock)) {
  // Never O_NONBLOCK on the file description we were given: it is shared with whoever
  // started us (a shell's terminal, where the shell would then read EAGAIN and exit; the
  // rest of a shell pipeline) and the flag belongs to the description, not to our
  // descriptor. A socket (journald's stream, systemd's StandardOutput=socket) takes
  // MSG_DONTWAIT per call instead. A pipe or a terminal is opened again through /proc: a
  // description of our own on the same pipe or terminal, non-blocking for us alone.
  struct stat st {};
  const bool known = ::fstat(fd, &st) == 0;
  if (known && S_ISSOCK(st.st_mode)) {
    fd_.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    mode_ = mode::send;
  } else if (known && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    fd_.reset(::open(self.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    // Without /proc (or when the pipe's reader has gone: ENXIO), blocking writes as before.
    if (!fd_) {
      fd_.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
      mode_ = mode::blocking;
    }
  } else {
    fd_.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 0));  // a regular file: writes do not wait
    mode_ = mode::blocking;
  }
  pollable_ = fd_ && mode_ != mode::blocking && can_poll(fd_.get());
  if (!pollable_) mode_ = mode::blocking;
  if (!fd_) gone_ = true;
}

// What the reader takes now; the bounded wait for the rest is drain()'s, at the daemon's exit.
log_output::~log_output() {
  flush();
}

void log_output::write(std::string_view line) {
  if (gone_) return;
  if (mode_ == mode::blocking) {
    buffer_.assign(line);
    written_ = 0;
    while (write_some()) {
    }
    buffer_.clear();
    written_ = 0;
    return;
  }
  after_writing();  // the notice of an earlier gap, when there is room for it now
  if (dropped_since_notice_ > 0 || buffered() + line.size() > capacity_) {
    count_dropped(1);
    return;
  }
  const bool was_empty = buffered() == 0;
  buffer_ += line;
  if (was_empty) flush();  // at once, in the common case where the reader keeps up
}

bool log_output::write_some() {
  const std::string_view rest = std::string_view(buffer_).substr(written_);
  if (rest.empty() || gone_) return false;
  const ssize_t n = mode_ == mode::send
                        ? ::send(fd_.get(), rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                        : ::write(fd_.get(), rest.data(), rest.size());
  if (n > 0) {
    written_ += static_cast<std::size_t>(n);
    return true;
  }
  if (n < 0 && errno == EINTR) return true;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
  // The reader has gone (EPIPE) or the descriptor is broken.
  lost();
  return false;
}

void log_output::lost() {
  // Discarded, as a blocking write's error discarded it before; the workers' lines are still
  // kept for `lameduck logs`.
  gone_ = true;
  buffer_.clear();
  written_ = 0;
}

void log_output::flush() {
  while (write_some()) {
  }
  if (written_ == buffer_.size()) {
    buffer_.clear();
    written_ = 0;
  } else if (written_ > buffer_.size() / 2) {
    buffer_.erase(0, written_);  // amortized: each byte is moved at most once on average
    written_ = 0;
  }
  after_writing();
}

void log_output::after_writing() {
  // Resume at half full, not at the first free byte: while a reader trickles, lines would
  // otherwise be written and dropped by turns, each gap with a notice of its own; this way
  // one stall makes one gap and one notice.
  if (dropped_since_notice_ == 0 || gone_ || buffered() > capacity_ / 2) return;
  const bool was_empty = buffered() == 0;
  buffer_ += notice_(dropped_since_notice_, first_dropped_at_);
  dropped_since_notice_ = 0;
  first_dropped_at_.clear();
  if (was_empty) flush();
}

void log_output::drain(int timeout_ms) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  flush();
  while (wants_write()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd_.get(), POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) break;
    flush();
  }
  if (!wants_write()) return;
  // Given up: only whole lines are queued, so each '\n' left ends a line that is lost, or
  // the tail of one.
  count_dropped(static_cast<std::uint64_t>(
      std::count(buffer_.begin() + static_cast<std::ptrdiff_t>(written_), buffer_.end(), '\n')));
  buffer_.clear();
  written_ = 0;
}

void log_output::count_dropped(std::uint64_t lines) {
  if (dropped_since_notice_ == 0) first_dropped_at_ = clock_();
  dropped_since_notice_ += lines;
  dropped_total_ += lines;
}

void log_output::carry(const drop_count& earlier) {
  dropped_total_ += earlier.total;
  if (earlier.unnoticed == 0) return;
  if (dropped_since_notice_ == 0) first_dropped_at_ = earlier.since;
  dropped_since_notice_ += earlier.unnoticed;
  after_writing();
}

}  // namespace lameduck::supervisor
