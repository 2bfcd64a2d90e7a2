// The service manager's protocols: readiness notification over NOTIFY_SOCKET, and listening
// sockets passed at start with LISTEN_FDS (systemd socket activation; the lameduck supervisor
// passes its shared sockets the same way).

#include <lameduck/systemd.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "process/systemd.hpp"

namespace lameduck {

bool notify_service_manager(std::string_view state) noexcept {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::size_t length = std::strlen(path);
  if (length >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, path, length);
  if (path[0] == '@') address.sun_path[0] = '\0';  // an abstract socket
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  // Never waits: the watchdog's pings come from the event loops, and a manager that stopped
  // reading (its queue full, 512 datagrams by default) held a blocking send for as long as it
  // did (90 s seen under strace). A notification it would not read anyway is dropped.
  ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                          reinterpret_cast<const sockaddr*>(&address), size);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

namespace detail {

namespace {

bool parse_number(const char* text, long& out) {
  if (!text) return false;
  const char* end = text + std::strlen(text);
  auto [p, err] = std::from_chars(text, end, out);
  return err == std::errc{} && p == end && p != text;
}

}  // namespace

std::vector<passed_socket> take_passed_sockets() {
  long pid = 0, count = 0;
  bool for_us = parse_number(std::getenv("LISTEN_PID"), pid) && pid == ::getpid() &&
                parse_number(std::getenv("LISTEN_FDS"), count) && count > 0 && count < 4096;
  std::vector<std::string> names;
  if (const char* text = std::getenv("LISTEN_FDNAMES")) {
    std::string_view rest(text);
    for (;;) {
      const auto colon = rest.find(':');
      names.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  // Taken once: a child process, or the next server of this one, must not take them again.
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  std::vector<passed_socket> sockets;
  if (!for_us) return sockets;
  // Names that do not match the count are none (sd_listen_fds_with_names() refuses them).
  if (names.size() != static_cast<std::size_t>(count)) names.assign(count, "");
  constexpr int first_passed_fd = 3;  // SD_LISTEN_FDS_START
  for (int i = 0; i < count; ++i) {
    ::fcntl(first_passed_fd + i, F_SETFD, FD_CLOEXEC);
    sockets.push_back({first_passed_fd + i, std::move(names[i])});
  }
  return sockets;
}

std::chrono::microseconds watchdog_interval() {
  long usec = 0, pid = 0;
  if (!parse_number(std::getenv("WATCHDOG_USEC"), usec) || usec <= 0) return {};
  if (const char* p = std::getenv("WATCHDOG_PID")) {
    if (!parse_number(p, pid) || pid != ::getpid()) return {};
  }
  return std::chrono::microseconds(usec);
}

}  // namespace detail
}  // namespace lameduck
