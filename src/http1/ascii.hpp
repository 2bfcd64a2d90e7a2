#pragma once
// ASCII helpers for the protocol's own text, which no locale may change.

#include <array>
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

constexpr bool ascii_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

constexpr bool ascii_hex(char c) noexcept {
  return ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// A table of the bytes a grammar rule allows: ASCII letters and digits, and `others`. A table,
/// not a chain of comparisons: the rules built on it (token, reg-name) run for every request.
constexpr std::array<bool, 256> alnum_and(std::string_view others) noexcept {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[c] = ascii_digit(static_cast<char>(c)) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  for (unsigned char c : others)
    t[c] = true;
  return t;
}

}  // namespace lameduck::detail
