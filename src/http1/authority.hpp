#pragma once
// The authority of a request (RFC 9112 section 3.2): the Host field's value or the authority
// of an absolute-form or authority-form target, checked against RFC 3986's grammar.

#include <cstdint>
#include <optional>
#include <string_view>

namespace lameduck::http1 {

/// A host and an optional port, viewing the bytes they were parsed from.
struct authority {
  /// uri-host as sent: a reg-name or IPv4 address, or an IP literal with its brackets.
  std::string_view host;
  /// The port, when one is given; "host:" (an empty port) gives none.
  std::optional<std::uint16_t> port;
};

/// Parses `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section 3.2.2) into out, as
/// a Host field's value must be; no userinfo. The host may be empty, as RFC 3986's reg-name may.
/// A port above 65535 is refused: no server listens there. False (out then unspecified) when
/// value is invalid.
bool parse_host(std::string_view value, authority& out) noexcept;

/// Where a request target keeps its authority.
struct target_authority {
  /// Whether the target is in absolute-form ("scheme://authority/path?query").
  bool absolute = false;
  /// The authority's bytes (with any userinfo), for absolute-form and authority-form.
  std::string_view text;
  /// What follows the authority in absolute-form: the path and query, possibly empty.
  std::string_view rest;
};

/// Finds the authority of a request target as llhttp accepted it: absolute-form when it does
/// not start with '/' or '*' (llhttp then requires "scheme://"), authority-form for CONNECT.
/// Inline: for the usual origin-form target it is one comparison, on every request.
inline target_authority find_target_authority(std::string_view target, bool is_connect) noexcept {
  if (is_connect) return {false, target, {}};
  if (target.empty() || target[0] == '/' || target[0] == '*') return {};
  const auto scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos) return {};
  const std::string_view after = target.substr(scheme_end + 3);
  const auto end = after.find_first_of("/?#");
  if (end == std::string_view::npos) return {true, after, {}};
  return {true, after.substr(0, end), after.substr(end)};
}

/// Whether s is an IPv6address of RFC 3986 section 3.2.2 (no zone identifier).
bool is_ipv6_address(std::string_view s) noexcept;

/// Whether s is an IPv4address of RFC 3986 section 3.2.2 (dotted decimal, no leading zeros).
bool is_ipv4_address(std::string_view s) noexcept;

}  // namespace lameduck::http1
