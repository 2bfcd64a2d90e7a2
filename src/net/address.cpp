#include "net/address.hpp"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>

#include <lameduck/errors.hpp>

namespace lameduck::detail {

socket_address parse_listen_address(std::string_view text, std::error_code& ec) {
  socket_address a;
  std::memset(&a, 0, sizeof a);
  ec = make_error_code(errc::invalid_listen_address);
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return a;
  std::string_view host = text.substr(0, colon), port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || err != std::errc{} || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return a;
  }
  if (host.find('\0') != std::string_view::npos) return a;  // inet_pton would stop there
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    std::string h(host.substr(1, host.size() - 2));
    a.v6.sin6_family = AF_INET6;
    a.v6.sin6_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET6, h.c_str(), &a.v6.sin6_addr) != 1) return a;
  } else {
    std::string h(host == "localhost" ? "127.0.0.1" : host == "*" ? "0.0.0.0" : host);
    a.v4.sin_family = AF_INET;
    a.v4.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, h.c_str(), &a.v4.sin_addr) != 1) return a;
  }
  ec.clear();
  return a;
}

std::string format_address(const sockaddr* sa) {
  char text[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    // Appended piece by piece: GCC 12 at -O3 takes "[" + std::string(...) for overlapping
    // copies (a false -Wrestrict).
    std::string out = "[";
    out += text;
    out += "]:";
    out += std::to_string(ntohs(v6->sin6_port));
    return out;
  }
  if (sa->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  return "unknown";
}

}  // namespace lameduck::detail
