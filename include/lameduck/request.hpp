#pragma once
/// @file One HTTP request as the handler sees it.

#include <cstdint>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <netinet/in.h>

namespace lameduck {

namespace detail {
class request_builder;
}

/// One header field as received (name case preserved).
struct header_field {
  std::string_view name;   ///< field name, as sent
  std::string_view value;  ///< field value, without surrounding whitespace
};

/// An HTTP request; valid until its response is completed, and safe to read from any thread.
class request {
 public:
  /// The method, e.g. "GET".
  std::string_view method() const noexcept { return method_; }
  /// The request target as sent, e.g. "/search?q=duck".
  std::string_view target() const noexcept { return target_; }
  /// The path part of the target, e.g. "/search".
  std::string_view path() const noexcept { return path_; }
  /// The query part of the target without '?', e.g. "q=duck"; empty when there is none.
  std::string_view query() const noexcept { return query_; }
  /// The value of a query parameter (not percent-decoded), if present.
  std::optional<std::string_view> query_param(std::string_view name) const noexcept;
  /// The host the request is for (RFC 9112 section 3.2): from the target when it carries an
  /// authority (absolute-form, or a CONNECT's authority-form), else from the Host field.
  /// As sent: not lowercased, not percent-decoded; an IP literal keeps its brackets
  /// ("[::1]"), so that it can go back into a URL as it is. Empty for an HTTP/1.0 request
  /// without Host, and for an empty Host (which RFC 3986's grammar allows).
  std::string_view host() const noexcept { return host_; }
  /// The port that came with host(), if one did (an empty port, as in "h:", counts as none).
  std::optional<std::uint16_t> port() const noexcept {
    return has_port_ ? std::optional<std::uint16_t>(port_) : std::nullopt;
  }
  /// HTTP version as major*10+minor: 10 or 11.
  int version() const noexcept { return version_; }
  /// The value of the first header with this name, compared case-insensitively.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  /// Every header field in the order received. One value may differ from what was sent: when
  /// the target carries the authority, Host's value is that authority, as RFC 9112 section
  /// 3.2.2 has the server use it in place of the field's (so Host always agrees with host()).
  std::span<const header_field> headers() const noexcept { return headers_; }
  /// The whole request body (de-chunked).
  std::string_view body() const noexcept { return body_; }
  /// The client's address as "ADDRESS:PORT" ("[ADDRESS]:PORT" for IPv6).
  std::string peer() const;
  /// Whether the client asked to keep the connection open after this request.
  bool keep_alive() const noexcept { return keep_alive_; }
  /// Whether the request may be answered with response::upgrade(): an HTTP/1.1 request with
  /// "Connection: upgrade" and an Upgrade header, or a CONNECT.
  bool upgrade_requested() const noexcept { return upgrade_requested_; }
  /// Stop is requested when the server gives up on this request (destroy, deadline, disconnect).
  std::stop_token stop_token() const noexcept {
    return stop_ ? stop_->get_token() : std::stop_token{};
  }

 private:
  friend class detail::request_builder;
  std::string_view method_, target_, path_, query_, body_, host_;
  std::vector<header_field> headers_;
  int version_ = 11;
  std::uint16_t port_ = 0;
  bool has_port_ = false;  // not std::optional: these fit in the padding after version_
  bool keep_alive_ = true;
  bool upgrade_requested_ = false;
  sockaddr_in6 peer_{};  // AF_INET addresses are stored as sockaddr_in in the same bytes
  // The exchange's source, read only when asked: a token copied into every request would cost
  // two atomic operations per request whether or not the handler looks.
  const std::stop_source* stop_ = nullptr;
};

}  // namespace lameduck
