#pragma once
// ASCII helpers for the protocol's own text, which no locale may change.

#include <cstddef>
#include <string_view>

namespace lameduck::detail {

/// Whether a and b are equal ignoring ASCII case, as HTTP compares field names and tokens
/// (RFC 9110 section 5.1). Inline, and without strncasecmp's locale: it runs for header fields
/// of every request and response.
inline bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    unsigned char lower = x | 0x20;  // the one bit by which ASCII letters differ in case
    if (lower != (y | 0x20) || lower < 'a' || lower > 'z') return false;
  }
  return true;
}

}  // namespace lameduck::detail
