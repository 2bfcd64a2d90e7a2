#pragma once
// Listen addresses: "HOST:PORT" in, socket addresses out, and back to text.

#include <netinet/in.h>
#include <sys/socket.h>
#include <string>
#include <string_view>
#include <system_error>

namespace lameduck::detail {

/// An IPv4 or IPv6 socket address.
union socket_address {
  sockaddr any;
  sockaddr_in v4;
  sockaddr_in6 v6;
  /// The size to pass to bind() and friends.
  socklen_t size() const noexcept {
    return any.sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  }
};

/// Parses "HOST:PORT" where HOST is an IPv4 address, "[IPv6]", "localhost" or "*" (all IPv4
/// interfaces); sets ec to errc::invalid_listen_address when it is none of these.
socket_address parse_listen_address(std::string_view text, std::error_code& ec);
/// "ADDRESS:PORT" for IPv4, "[ADDRESS]:PORT" for IPv6.
std::string format_address(const sockaddr* sa);

}  // namespace lameduck::detail
