#pragma once
// The seam between the event loop and listeners and the operating system: the calls whose
// failures matter (epoll_wait, accept4) go through a table that tests replace, so that an
// EMFILE, an EINTR or a failing epoll set is tested on purpose rather than by luck.

#include <sys/epoll.h>
#include <sys/socket.h>

namespace lameduck::detail {

/// The system calls an event loop and its acceptors make; each member has the signature (and
/// errno convention) of the call it stands for.
struct system_calls {
  int (*epoll_wait)(int epfd, epoll_event* events, int max_events, int timeout_ms) = ::epoll_wait;
  int (*accept4)(int fd, sockaddr* address, socklen_t* size, int flags) = ::accept4;
};

/// The real calls.
inline constexpr system_calls real_system_calls{};

}  // namespace lameduck::detail
