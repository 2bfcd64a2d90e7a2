#pragma once
// The library's write access to a request's private fields.

#include <lameduck/request.hpp>

#include "http1/authority.hpp"

namespace lameduck::detail {

class request_builder {
 public:
  static void set_line(request& r, std::string_view method, std::string_view target, int version) {
    r.method_ = method;
    r.target_ = target;
    // RFC 9112 section 3.2.2: absolute-form ("http://host/path"), sent to proxies, must be
    // accepted too; its path and query are what follows the authority.
    const auto a = http1::find_target_authority(target, false);
    const std::string_view origin = a.absolute ? a.rest : target;
    auto q = origin.find('?');
    std::string_view path = origin.substr(0, q);
    if (a.absolute && path.empty()) path = "/";  // "http://h" or "http://h?q"
    r.path_ = path;
    r.query_ = q == std::string_view::npos ? std::string_view{} : origin.substr(q + 1);
    r.version_ = version;
  }
  static void set_authority(request& r, const http1::authority& a) {
    r.host_ = a.host;
    r.port_ = a.port.value_or(0);
    r.has_port_ = a.port.has_value();
  }
  static std::vector<header_field>& headers(request& r) { return r.headers_; }
  static void set_keep_alive(request& r, bool k) { r.keep_alive_ = k; }
  static void set_upgrade_requested(request& r, bool u) { r.upgrade_requested_ = u; }
  static void set_body(request& r, std::string_view body) { r.body_ = body; }
  static void set_peer(request& r, const sockaddr_in6& peer) { r.peer_ = peer; }
  static void set_stop(request& r, const std::stop_source& s) { r.stop_ = &s; }
  static void clear(request& r) {
    r.method_ = r.target_ = r.path_ = r.query_ = r.body_ = r.host_ = {};
    r.port_ = 0;
    r.has_port_ = false;
    r.headers_.clear();
    r.version_ = 11;
    r.keep_alive_ = true;
    r.upgrade_requested_ = false;
  }
};

}  // namespace lameduck::detail
