#pragma once
// The library's write access to a request's private fields.

#include <lameduck/request.hpp>

namespace lameduck::detail {

class request_builder {
 public:
  static void set_line(request& r, std::string_view method, std::string_view target, int version) {
    r.method_ = method;
    r.target_ = target;
    auto q = target.find('?');
    std::string_view path = target.substr(0, q);
    // RFC 9112 section 3.2.2: absolute-form ("http://host/path"), sent to proxies, must be
    // accepted too; its path is what follows the authority.
    if (auto scheme_end = path.find("://");
        scheme_end != std::string_view::npos && path.find('/') == scheme_end + 1) {
      auto slash = path.find('/', scheme_end + 3);
      path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
    }
    r.path_ = path;
    r.query_ = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    r.version_ = version;
  }
  static std::vector<header_field>& headers(request& r) { return r.headers_; }
  static void set_keep_alive(request& r, bool k) { r.keep_alive_ = k; }
  static void set_upgrade_requested(request& r, bool u) { r.upgrade_requested_ = u; }
  static void set_body(request& r, std::string_view body) { r.body_ = body; }
  static void set_peer(request& r, const sockaddr_in6& peer) { r.peer_ = peer; }
  static void set_stop(request& r, const std::stop_source& s) { r.stop_ = &s; }
  static void clear(request& r) {
    r.method_ = r.target_ = r.path_ = r.query_ = r.body_ = {};
    r.headers_.clear();
    r.version_ = 11;
    r.keep_alive_ = true;
    r.upgrade_requested_ = false;
  }
};

}  // namespace lameduck::detail
