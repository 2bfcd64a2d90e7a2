#include <lameduck/request.hpp>

#include "http1/ascii.hpp"
#include "net/address.hpp"

namespace lameduck {

// Every exchange holds a request: it grows only on purpose (host_ took it from 152 to 168).
static_assert(sizeof(void*) != 8 || sizeof(request) <= 168);

std::optional<std::string_view> request::header(std::string_view name) const noexcept {
  for (const auto& h : headers_) {
    if (detail::ascii_iequals(h.name, name)) return h.value;
  }
  return std::nullopt;
}

std::optional<std::string_view> request::query_param(std::string_view name) const noexcept {
  std::string_view rest = query_;
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

std::string request::peer() const {
  return detail::format_address(reinterpret_cast<const sockaddr*>(&peer_));
}

}  // namespace lameduck
