// The router: exact method and path to a handler; 404 for an unknown path; 405 with an Allow
// list (each method once, HEAD wherever GET serves it) for a known path; HEAD served by the GET
// route; trailing slashes, case and percent-encoding significant; the query ignored.
//
// A response handle only comes from a connection, so each test serves its router from memory
// (in_memory.hpp: a connection over a test stream, no socket, no thread) and hands it raw
// requests, one connection each. Handlers say which route answered in an X-Route field, which
// HEAD responses keep.

#include <lameduck/router.hpp>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "in_memory.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace lameduck {
namespace {

using testing::http_response;
using testing::in_memory_server;
using testing::take_response;

// ---- Fixture: a server in memory for the test's router --------------------------------------

class Router : public ::testing::Test {
 protected:
  // Sends one request on a new connection; the answer must be the whole of what came back.
  http_response ask(std::string_view method, std::string_view target) {
    if (!server_) server_.emplace(routes);  // a copy of the routes so far
    std::string wire = server_->round_trip(std::string(method) + " " + std::string(target) +
                                           " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    std::string_view rest = wire;
    http_response r = take_response(rest, method == "HEAD");
    EXPECT_EQ(rest, "") << "bytes after the response to " << method << ' ' << target;
    return r;
  }

  // A handler that names itself in X-Route and in its body and echoes what it saw.
  static handler answer(std::string name) {
    return [name](const request& req, response res) {
      res.header("X-Route", name)
          .header("X-Method", req.method())
          .header("X-Path", req.path())
          .header("X-Query", req.query());
      res.send("served by " + name + "\n");
    };
  }

  router routes;
  std::optional<in_memory_server> server_;
};

// ---- Matching method and path ---------------------------------------------------------------

TEST_F(Router, GetRouteAnswersAGetForItsPath) {
  routes.get("/hello", answer("hello"));
  http_response r = ask("GET", "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.field("X-Route"), "hello");
  EXPECT_EQ(r.body, "served by hello\n");
}

TEST_F(Router, EachMethodOnAPathHasItsOwnHandler) {
  routes.get("/item", answer("get"))
      .post("/item", answer("post"))
      .route("PUT", "/item", answer("put"))
      .route("DELETE", "/item", answer("delete"))
      .route("PATCH", "/item", answer("patch"));
  for (std::string_view m : {"GET", "POST", "PUT", "DELETE", "PATCH"}) {
    http_response r = ask(m, "/item");
    EXPECT_EQ(r.status, 200) << m;
    EXPECT_EQ(r.field("X-Method"), std::string(m));
    std::string lower(m);
    for (char& c : lower)
      c = static_cast<char>(c - 'A' + 'a');
    EXPECT_EQ(r.field("X-Route"), lower) << m;
  }
}

TEST_F(Router, EachPathHasItsOwnHandler) {
  routes.get("/", answer("root")).get("/a", answer("a")).get("/a/b", answer("a/b"));
  EXPECT_EQ(ask("GET", "/").field("X-Route"), "root");
  EXPECT_EQ(ask("GET", "/a").field("X-Route"), "a");
  EXPECT_EQ(ask("GET", "/a/b").field("X-Route"), "a/b");
}

TEST_F(Router, TheFirstRouteRegisteredForAMethodAndPathWins) {
  routes.get("/dup", answer("first")).get("/dup", answer("second"));
  EXPECT_EQ(ask("GET", "/dup").field("X-Route"), "first");
}

TEST_F(Router, PathsMatchExactlyNotByPrefix) {
  routes.get("/", answer("root")).get("/api", answer("api"));
  for (std::string_view target : {"/api/v1", "/apis", "/ap", "/x"}) {
    EXPECT_EQ(ask("GET", target).status, 404) << target;
  }
}

TEST_F(Router, TrailingSlashMakesADifferentPath) {
  routes.get("/docs", answer("docs")).get("/dir/", answer("dir"));
  EXPECT_EQ(ask("GET", "/docs").status, 200);
  EXPECT_EQ(ask("GET", "/docs/").status, 404);
  EXPECT_EQ(ask("GET", "/dir/").status, 200);
  EXPECT_EQ(ask("GET", "/dir").status, 404);
  EXPECT_EQ(ask("GET", "//docs").status, 404);
}

TEST_F(Router, PathsAreCaseSensitiveAndNotPercentDecoded) {
  routes.get("/Case", answer("case")).get("/a%20b", answer("encoded"));
  EXPECT_EQ(ask("GET", "/Case").status, 200);
  EXPECT_EQ(ask("GET", "/case").status, 404);
  EXPECT_EQ(ask("GET", "/a%20b").field("X-Route"), "encoded");
  EXPECT_EQ(ask("GET", "/a%20B").status, 404);
  EXPECT_EQ(ask("GET", "/%43ase").status, 404);
}

TEST_F(Router, TheQueryIsIgnoredInMatchingAndLeftToTheHandler) {
  routes.get("/search", answer("search"));
  http_response r = ask("GET", "/search?q=duck&page=2");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.field("X-Path"), "/search");
  EXPECT_EQ(r.field("X-Query"), "q=duck&page=2");
  EXPECT_EQ(ask("GET", "/search?").status, 200);
  EXPECT_EQ(ask("GET", "/search/?q=1").status, 404);
  EXPECT_EQ(ask("POST", "/search?q=1").status, 405);
}

TEST_F(Router, AbsoluteFormTargetsAreRoutedByTheirPath) {
  // RFC 9112 section 3.2.2: a server must accept "GET http://host/path"; it names /path.
  routes.get("/x", answer("x"));
  http_response r = ask("GET", "http://t/x?y=1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.field("X-Route"), "x");
}

// ---- 404 ------------------------------------------------------------------------------------

TEST_F(Router, UnknownPathIs404WithATextBodyAndNoAllow) {
  routes.get("/known", answer("known"));
  http_response r = ask("GET", "/unknown");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.field("Content-Type"), "text/plain");
  EXPECT_EQ(r.body, "Not Found\n");
  EXPECT_EQ(r.field("Allow"), std::nullopt);
}

TEST_F(Router, RouterWithNoRoutesAnswersEverything404) {
  for (std::string_view m : {"GET", "HEAD", "POST", "OPTIONS"}) {
    EXPECT_EQ(ask(m, "/").status, 404) << m;
  }
}

TEST_F(Router, HeadForAnUnknownPathIs404WithoutBody) {
  routes.get("/known", answer("known"));
  http_response r = ask("HEAD", "/unknown");  // ask() checks that no body bytes follow
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.field("Content-Length"), "10");
}

// ---- 405 and Allow --------------------------------------------------------------------------

TEST_F(Router, KnownPathWithAnotherMethodIs405WithAllow) {
  routes.post("/submit", answer("submit"));
  http_response r = ask("GET", "/submit");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.field("Allow"), "POST");
  EXPECT_EQ(r.field("Content-Type"), "text/plain");
  EXPECT_EQ(r.body, "Method Not Allowed\n");
  EXPECT_EQ(r.field("X-Route"), std::nullopt);
}

TEST_F(Router, AllowForAPathWithAGetRouteListsHeadToo) {
  routes.get("/page", answer("page"));
  EXPECT_EQ(ask("POST", "/page").field("Allow"), "GET, HEAD");
  EXPECT_EQ(ask("DELETE", "/page").field("Allow"), "GET, HEAD");
}

TEST_F(Router, AllowListsEveryMethodOnceInTheOrderRegistered) {
  routes.post("/r", answer("post"))
      .get("/r", answer("get"))
      .route("DELETE", "/r", answer("delete"))
      .get("/r", answer("get again"))
      .route("DELETE", "/r", answer("delete again"))
      .get("/other", answer("other"))
      .route("PUT", "/other", answer("other put"));
  http_response r = ask("PATCH", "/r");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.field("Allow"), "POST, GET, HEAD, DELETE");
}

TEST_F(Router, AllowListsHeadOnceWhenItHasARouteOfItsOwn) {
  routes.route("HEAD", "/h", answer("head")).get("/h", answer("get"));
  EXPECT_EQ(ask("PUT", "/h").field("Allow"), "HEAD, GET");
}

TEST_F(Router, OptionsIsNotAnsweredAutomatically) {
  routes.get("/o", answer("o"));
  http_response r = ask("OPTIONS", "/o");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.field("Allow"), "GET, HEAD");
}

TEST_F(Router, MethodsMatchCaseSensitively) {
  // RFC 9110 section 9.1: method names are case-sensitive.
  routes.route("get", "/m", answer("lower"));
  http_response r = ask("GET", "/m");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.field("Allow"), "get");
}

// ---- HEAD -----------------------------------------------------------------------------------

TEST_F(Router, HeadIsServedByTheGetRouteWithoutItsBody) {
  routes.get("/doc", answer("doc"));
  http_response get = ask("GET", "/doc");
  http_response head = ask("HEAD", "/doc");  // ask() checks that no body bytes follow
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.field("X-Route"), "doc");
  EXPECT_EQ(head.field("X-Method"), "HEAD") << "the handler sees the method as sent";
  EXPECT_EQ(head.field("Content-Length"), get.field("Content-Length"));
  EXPECT_EQ(head.field("Content-Length"), std::to_string(get.body.size()));
}

TEST_F(Router, AHeadRouteWinsOverTheGetRouteWhicheverCameFirst) {
  routes.get("/a", answer("get a")).route("HEAD", "/a", answer("head a"));
  routes.route("HEAD", "/b", answer("head b")).get("/b", answer("get b"));
  EXPECT_EQ(ask("HEAD", "/a").field("X-Route"), "head a");
  EXPECT_EQ(ask("HEAD", "/b").field("X-Route"), "head b");
  EXPECT_EQ(ask("GET", "/a").field("X-Route"), "get a");
  EXPECT_EQ(ask("GET", "/b").field("X-Route"), "get b");
}

TEST_F(Router, HeadIsServedByTheFirstGetRoute) {
  routes.get("/g", answer("first")).get("/g", answer("second"));
  EXPECT_EQ(ask("HEAD", "/g").field("X-Route"), "first");
}

TEST_F(Router, HeadWithoutAGetRouteIs405) {
  routes.post("/p", answer("post"));
  http_response r = ask("HEAD", "/p");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.field("Allow"), "POST");
}

TEST_F(Router, GetIsNotServedByAHeadRoute) {
  routes.route("HEAD", "/only-head", answer("head"));
  http_response r = ask("GET", "/only-head");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.field("Allow"), "HEAD");
}

TEST_F(Router, AGetRouteOnAnotherPathDoesNotServeHead) {
  routes.get("/x", answer("x"));
  EXPECT_EQ(ask("HEAD", "/y").status, 404);
}

}  // namespace
}  // namespace lameduck
