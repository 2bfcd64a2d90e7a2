#include "net/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace lameduck::detail {

int open_listener(socket_address& address, const listen_settings& settings, std::error_code& ec) {
  int fd = ::socket(address.any.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  // SO_REUSEADDR lets a new server bind while old connections sit in TIME_WAIT; it does not
  // let two live listeners share a port. SO_REUSEPORT does, so only on request.
  bool ok =
      fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
      (!settings.reuse_port || ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0) &&
      ::bind(fd, &address.any, address.size()) == 0 && ::listen(fd, settings.backlog) == 0;
  if (ok) {
    socklen_t size = sizeof address;
    ok = ::getsockname(fd, &address.any, &size) == 0;
  }
  if (!ok) {
    ec = {errno, std::system_category()};
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

bool adopt_listener(int fd, socket_address& address) noexcept {
  int type = 0, listening = 0;
  socklen_t size = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0 || type != SOCK_STREAM) return false;
  size = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening) {
    return false;
  }
  size = sizeof address;
  if (::getsockname(fd, &address.any, &size) != 0) return false;
  if (address.any.sa_family != AF_INET && address.any.sa_family != AF_INET6) return false;
  return ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0;
}

acceptor::acceptor(event_loop& l, int listen_fd, admit_fn admit)
    : loop_(l), retry_(l), admit_(std::move(admit)) {
  fd_ = ::fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::system_category(), "lameduck: dup");
}

acceptor::~acceptor() {
  if (fd_ >= 0) ::close(fd_);
}

void acceptor::start() {
  if (!loop_.watch(fd_, *this, EPOLLIN | EPOLLET)) {
    loop_.log(std::string("lameduck: cannot watch a listener: ") + std::strerror(errno));
  }
}

void acceptor::close(bool accept_queued) {
  if (fd_ < 0) return;
  retry_.cancel();
  if (accept_queued) accept_batch(std::numeric_limits<std::size_t>::max());
  loop_.unwatch(fd_);  // the other loops' duplicates keep the listener open
  ::close(std::exchange(fd_, -1));
}

void acceptor::accept_some() {
  if (fd_ < 0) return;  // closed; an event of the same batch may still name it
  // A bounded batch keeps one busy listener from starving the loop's connections.
  switch (accept_batch(64)) {
    case batch_end::queue_empty:
      report_recovery();
      return;  // the next connection is a new edge
    case batch_end::limit:
      report_recovery();
      // More may be queued, and the edge is already consumed: come back after the events.
      loop_.post([this] { accept_some(); });
      return;
    case batch_end::failed:
      // Out of descriptors or memory: say so and try again shortly rather than spin.
      report_failure();
      retry_.start_after(retry_after, [this] { accept_some(); });
      return;
  }
}

void acceptor::report_failure() {
  const char* why = std::strerror(errno);
  if (!failing_) {
    failing_ = true;
    unreported_ = 0;
    loop_.log(std::string("lameduck: accept failed: ") + why);
  } else if (++unreported_ == failures_per_line) {
    loop_.log("lameduck: accept failed " + std::to_string(unreported_) + " more times: " + why);
    unreported_ = 0;
  }
}

void acceptor::report_recovery() {
  if (!failing_) return;
  failing_ = false;
  loop_.log(unreported_ ? "lameduck: accepting again, after " + std::to_string(unreported_) +
                              " more failures"
                        : std::string("lameduck: accepting again"));
}

acceptor::batch_end acceptor::accept_batch(std::size_t max) {
  for (std::size_t i = 0; i < max; ++i) {
    socket_address peer;
    socklen_t size = sizeof peer;
    int fd = loop_.os().accept4(fd_, &peer.any, &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return batch_end::queue_empty;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      return batch_end::failed;
    }
    admit_(fd, peer, size);
  }
  return batch_end::limit;
}

}  // namespace lameduck::detail
