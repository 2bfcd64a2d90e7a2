#include <lameduck/router.hpp>

#include <algorithm>
#include <vector>

namespace lameduck {

router& router::route(std::string_view method, std::string_view path, handler h) {
  routes_.push_back({std::string(method), std::string(path), std::move(h)});
  return *this;
}

void router::operator()(const request& req, response res) const {
  const entry* get_route = nullptr;
  bool path_known = false;
  for (const auto& r : routes_) {
    if (r.path != req.path()) continue;
    if (r.method == req.method()) return r.h(req, std::move(res));  // the first one registered
    path_known = true;
    if (!get_route && r.method == "GET") get_route = &r;
  }
  // RFC 9110 section 9.3.2: HEAD is GET without the body (the connection drops the body and
  // keeps its Content-Length), so a GET route serves it unless HEAD has a route of its own.
  if (get_route && req.method() == "HEAD") return get_route->h(req, std::move(res));
  if (!path_known) {
    res.header("Content-Type", "text/plain");
    return res.send(404, "Not Found\n");
  }
  // Only the 405 path pays for the Allow list (RFC 9110 section 15.5.6): each method once, in
  // the order registered, with HEAD wherever GET serves it.
  std::vector<std::string_view> methods;
  auto add = [&methods](std::string_view m) {
    if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
  };
  for (const auto& r : routes_) {
    if (r.path != req.path()) continue;
    add(r.method);
    if (r.method == "GET") add("HEAD");
  }
  std::string allow;
  for (std::string_view m : methods) {
    if (!allow.empty()) allow += ", ";
    allow += m;
  }
  res.header("Allow", allow).header("Content-Type", "text/plain");
  res.send(405, "Method Not Allowed\n");
}

}  // namespace lameduck
