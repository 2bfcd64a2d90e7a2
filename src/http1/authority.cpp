#include "http1/authority.hpp"

#include <array>

#include "http1/ascii.hpp"

namespace lameduck::http1 {

namespace {

using detail::ascii_digit;
using detail::ascii_hex;

// RFC 3986 section 2.3 and 2.2: unreserved and sub-delims, the bytes a reg-name holds as they
// are (pct-encoded is handled apart).
constexpr auto reg_name_bytes = detail::alnum_and("-._~!$&'()*+,;=");

// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ); ABNF's "v" matches "V".
bool is_ipv_future(std::string_view s) noexcept {
  if (s.size() < 4 || (s[0] != 'v' && s[0] != 'V')) return false;
  std::size_t i = 1;
  while (i < s.size() && ascii_hex(s[i]))
    ++i;
  if (i == 1 || i + 1 >= s.size() || s[i] != '.') return false;
  for (++i; i < s.size(); ++i) {
    if (!reg_name_bytes[static_cast<unsigned char>(s[i])] && s[i] != ':') return false;
  }
  return true;
}

}  // namespace

bool is_ipv4_address(std::string_view s) noexcept {
  int octets = 0;
  std::size_t i = 0;
  for (;;) {
    std::size_t start = i;
    unsigned value = 0;
    while (i < s.size() && ascii_digit(s[i]) && i - start < 3) {
      value = value * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
    }
    const std::size_t digits = i - start;
    // dec-octet: 0-255, and no leading zero ("01" is not one).
    if (digits == 0 || value > 255 || (digits > 1 && s[start] == '0')) return false;
    if (++octets == 4) return i == s.size();
    if (i == s.size() || s[i] != '.') return false;
    ++i;
  }
}

bool is_ipv6_address(std::string_view s) noexcept {
  // Pieces of 1 to 4 hex digits separated by ':', at most one "::" standing for one or more
  // zero pieces, and an IPv4 address in place of the last two pieces.
  std::size_t i = 0;
  int pieces = 0;
  bool gap = false;
  if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
    gap = true;
    i = 2;
    if (i == s.size()) return true;
  } else if (s.empty() || s[0] == ':') {
    return false;
  }
  for (;;) {
    const std::size_t start = i;
    while (i < s.size() && ascii_hex(s[i]))
      ++i;
    if (i < s.size() && s[i] == '.') {  // ls32 as an IPv4 address: the last thing
      if (!is_ipv4_address(s.substr(start))) return false;
      pieces += 2;
      break;
    }
    if (i == start || i - start > 4) return false;
    ++pieces;
    if (i == s.size()) break;
    if (s[i] != ':' || ++i == s.size()) return false;  // a lone ':' may not end it
    if (s[i] == ':') {
      if (gap) return false;
      gap = true;
      if (++i == s.size()) break;
    }
  }
  return gap ? pieces <= 7 : pieces == 8;
}

// Writes out's members one by one: returning a std::optional<authority> built here made the
// caller load it whole just after the port's two bytes were stored, a stall that cost more
// than the loop over a typical Host.
bool parse_host(std::string_view value, authority& out) noexcept {
  std::size_t i = 0;  // where the host ends
  if (!value.empty() && value[0] == '[') {
    i = value.find(']');
    if (i == std::string_view::npos) return false;
    const std::string_view literal = value.substr(1, i - 1);
    if (!is_ipv6_address(literal) && !is_ipv_future(literal)) return false;
    ++i;
  } else {
    // One pass, no memchr: a reg-name holds no ':', and an IPv4address is a reg-name too.
    for (; i < value.size(); ++i) {
      const char c = value[i];
      if (reg_name_bytes[static_cast<unsigned char>(c)]) continue;
      if (c == ':') break;
      if (c != '%' || i + 2 >= value.size() || !ascii_hex(value[i + 1]) ||
          !ascii_hex(value[i + 2])) {
        return false;
      }
      i += 2;
    }
  }
  out.host = value.substr(0, i);
  out.port.reset();
  if (i == value.size()) return true;
  if (value[i] != ':') return false;
  if (++i == value.size()) return true;  // port = *DIGIT: empty is allowed, and means none
  std::uint32_t port = 0;
  for (; i < value.size(); ++i) {
    if (!ascii_digit(value[i])) return false;
    port = port * 10 + static_cast<std::uint32_t>(value[i] - '0');
    if (port > 65535) return false;
  }
  out.port = static_cast<std::uint16_t>(port);
  return true;
}

}  // namespace lameduck::http1
