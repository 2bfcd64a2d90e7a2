#include <lameduck/router.hpp>

namespace lameduck {

router& router::route(std::string_view method, std::string_view path, handler h) {
  routes_.push_back({std::string(method), std::string(path), std::move(h)});
  return *this;
}

void router::operator()(const request& req, response res) const {
  const entry* get_route = nullptr;
  std::string allow;
  for (const auto& r : routes_) {
    if (r.path != req.path()) continue;
    if (r.method == req.method()) return r.h(req, std::move(res));
    if (r.method == "GET") get_route = &r;
    allow += allow.empty() ? r.method : ", " + r.method;
  }
  if (get_route && req.method() == "HEAD") return get_route->h(req, std::move(res));
  if (allow.empty()) {
    res.header("Content-Type", "text/plain");
    return res.send(404, "Not Found\n");
  }
  res.header("Allow", allow).header("Content-Type", "text/plain");
  res.send(405, "Method Not Allowed\n");
}

}  // namespace lameduck
