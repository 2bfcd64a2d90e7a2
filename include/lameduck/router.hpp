#pragma once
/// @file A small router: exact method and path to a handler.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <lameduck/request.hpp>
#include <lameduck/response.hpp>

namespace lameduck {

/// What answers a request: it completes the response now or hands it on to complete later.
using handler = std::function<void(const request&, response)>;

/// Dispatches on exact method and path; 404 for an unknown path, 405 (with Allow) for a
/// known path with another method. HEAD is served by a GET route when it has no HEAD route.
class router {
 public:
  /// Routes requests with this method and exactly this path to a handler.
  router& route(std::string_view method, std::string_view path, handler h);
  /// Routes GET requests for this path.
  router& get(std::string_view path, handler h) { return route("GET", path, std::move(h)); }
  /// Routes POST requests for this path.
  router& post(std::string_view path, handler h) { return route("POST", path, std::move(h)); }
  /// Answers a request; a router is itself a handler.
  void operator()(const request& req, response res) const;

 private:
  struct entry {
    std::string method, path;
    handler h;
  };
  std::vector<entry> routes_;
};

}  // namespace lameduck
