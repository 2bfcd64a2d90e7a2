// The request as a handler sees it, filled through the library's request_builder: the target
// split into path and query, query parameters (looked up as sent, not decoded), header lookup
// ignoring case, the peer's address, the stop token, and what clear() resets.

#include <lameduck/request.hpp>

#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "http1/request_builder.hpp"

namespace lameduck {
namespace {

using detail::request_builder;
using namespace std::string_view_literals;

// The request keeps views into the target: callers pass literals or strings that outlive it.
request with_target(std::string_view target, std::string_view method = "GET") {
  request r;
  request_builder::set_line(r, method, target, 11);
  return r;
}

// ---- Request line ---------------------------------------------------------------------------

TEST(Request, DefaultRequestIsEmptyHttp11KeepAlive) {
  request r;
  EXPECT_EQ(r.method(), "");
  EXPECT_EQ(r.target(), "");
  EXPECT_EQ(r.path(), "");
  EXPECT_EQ(r.query(), "");
  EXPECT_EQ(r.version(), 11);
  EXPECT_TRUE(r.keep_alive());
  EXPECT_TRUE(r.headers().empty());
  EXPECT_EQ(r.body(), "");
  EXPECT_EQ(r.header("Host"), std::nullopt);
  EXPECT_EQ(r.query_param("a"), std::nullopt);
  EXPECT_FALSE(r.stop_token().stop_possible());
}

TEST(Request, MethodTargetAndVersionAreKeptAsGiven) {
  request r;
  request_builder::set_line(r, "DELETE", "/items/7", 10);
  EXPECT_EQ(r.method(), "DELETE");
  EXPECT_EQ(r.target(), "/items/7");
  EXPECT_EQ(r.version(), 10);
}

TEST(Request, TargetWithoutQueryIsAllPath) {
  request r = with_target("/a/b/c.txt");
  EXPECT_EQ(r.path(), "/a/b/c.txt");
  EXPECT_EQ(r.query(), "");
}

TEST(Request, TargetSplitsAtTheFirstQuestionMark) {
  request r = with_target("/search?q=duck&lang=en");
  EXPECT_EQ(r.target(), "/search?q=duck&lang=en");
  EXPECT_EQ(r.path(), "/search");
  EXPECT_EQ(r.query(), "q=duck&lang=en");

  request twice = with_target("/a?b?c=d");
  EXPECT_EQ(twice.path(), "/a");
  EXPECT_EQ(twice.query(), "b?c=d");
}

TEST(Request, EmptyQueryAfterAQuestionMarkIsEmpty) {
  request r = with_target("/a?");
  EXPECT_EQ(r.path(), "/a");
  EXPECT_EQ(r.query(), "");
  request root = with_target("/?x");
  EXPECT_EQ(root.path(), "/");
  EXPECT_EQ(root.query(), "x");
}

TEST(Request, PathAndQueryAreViewsIntoTheTarget) {
  const std::string target = "/v?k=v";
  request r = with_target(target);
  EXPECT_EQ(r.path().data(), target.data());
  EXPECT_EQ(r.query().data(), target.data() + 3);
}

TEST(Request, PercentEncodingInThePathIsKeptAsSent) {
  request r = with_target("/a%20b/%2F?x=1");
  EXPECT_EQ(r.path(), "/a%20b/%2F");
}

TEST(Request, AsteriskTargetIsItsOwnPath) {
  request r = with_target("*", "OPTIONS");
  EXPECT_EQ(r.path(), "*");
  EXPECT_EQ(r.query(), "");
}

TEST(Request, AbsoluteFormTargetHasTheOriginPathAsItsPath) {
  // RFC 9112 section 3.2.2: a server must accept the absolute form; its path part is what
  // "/search" would be in origin form, and it is what a router matches.
  request r = with_target("http://example.com/search?q=duck");
  EXPECT_EQ(r.target(), "http://example.com/search?q=duck");
  EXPECT_EQ(r.path(), "/search");
  EXPECT_EQ(r.query(), "q=duck");
  request no_path = with_target("http://example.com");
  EXPECT_EQ(no_path.path(), "/");
  request query_only = with_target("http://example.com?q=1");
  EXPECT_EQ(query_only.path(), "/");
  EXPECT_EQ(query_only.query(), "q=1");
  request slash_in_query = with_target("http://example.com?to=/a/b");
  EXPECT_EQ(slash_in_query.path(), "/");
  EXPECT_EQ(slash_in_query.query(), "to=/a/b");
}

TEST(Request, HostAndPortAreAsSetAndNoneByDefault) {
  request r;
  EXPECT_EQ(r.host(), "");
  EXPECT_EQ(r.port(), std::nullopt);
  request_builder::set_authority(r, {"[::1]", 8443});
  EXPECT_EQ(r.host(), "[::1]");
  EXPECT_EQ(r.port(), 8443);
  request_builder::set_authority(r, {"h", 0});
  EXPECT_EQ(r.port(), 0) << "port 0 is a port, not none";
  request_builder::set_authority(r, {"h", std::nullopt});
  EXPECT_EQ(r.port(), std::nullopt);
}

// ---- Query parameters -----------------------------------------------------------------------

TEST(RequestQueryParam, FindsEachParameterByExactName) {
  request r = with_target("/p?q=duck&lang=en&page=2");
  EXPECT_EQ(r.query_param("q"), "duck");
  EXPECT_EQ(r.query_param("lang"), "en");
  EXPECT_EQ(r.query_param("page"), "2");
}

TEST(RequestQueryParam, AbsentNamesAndPrefixesOfNamesAreNotFound) {
  request r = with_target("/p?lang=en&page=2");
  EXPECT_EQ(r.query_param("missing"), std::nullopt);
  EXPECT_EQ(r.query_param("lan"), std::nullopt);
  EXPECT_EQ(r.query_param("langx"), std::nullopt);
  EXPECT_EQ(r.query_param("en"), std::nullopt) << "values are not names";
  EXPECT_EQ(r.query_param("page=2"), std::nullopt);
}

TEST(RequestQueryParam, NamesAreCaseSensitive) {
  request r = with_target("/p?Lang=en");
  EXPECT_EQ(r.query_param("Lang"), "en");
  EXPECT_EQ(r.query_param("lang"), std::nullopt);
}

TEST(RequestQueryParam, TheFirstOfRepeatedNamesWins) {
  request r = with_target("/p?tag=a&tag=b&tag=c");
  EXPECT_EQ(r.query_param("tag"), "a");
}

TEST(RequestQueryParam, NameWithoutEqualsOrWithEmptyValueIsPresentAndEmpty) {
  request r = with_target("/p?flag&empty=&x=1");
  ASSERT_TRUE(r.query_param("flag").has_value());
  EXPECT_EQ(r.query_param("flag"), "");
  ASSERT_TRUE(r.query_param("empty").has_value());
  EXPECT_EQ(r.query_param("empty"), "");
  EXPECT_EQ(r.query_param("x"), "1");
}

TEST(RequestQueryParam, ValueRunsToTheNextAmpersandAndMayContainEquals) {
  request r = with_target("/p?expr=a=b&next=1");
  EXPECT_EQ(r.query_param("expr"), "a=b");
  EXPECT_EQ(r.query_param("next"), "1");
}

TEST(RequestQueryParam, EmptyPairsBetweenAmpersandsAreSkipped) {
  request r = with_target("/p?&&a=1&&b=2&");
  EXPECT_EQ(r.query_param("a"), "1");
  EXPECT_EQ(r.query_param("b"), "2");
}

TEST(RequestQueryParam, ValuesAndNamesAreNotPercentDecoded) {
  request r = with_target("/p?q=hello%20world&plus=a+b&%6Eame=v");
  EXPECT_EQ(r.query_param("q"), "hello%20world");
  EXPECT_EQ(r.query_param("plus"), "a+b");
  EXPECT_EQ(r.query_param("%6Eame"), "v");
  EXPECT_EQ(r.query_param("name"), std::nullopt);
}

TEST(RequestQueryParam, NoQueryFindsNothing) {
  request r = with_target("/p");
  EXPECT_EQ(r.query_param("p"), std::nullopt);
  EXPECT_EQ(r.query_param(""), std::nullopt);
}

TEST(RequestQueryParam, TheValueIsAViewIntoTheTarget) {
  const std::string target = "/p?k=value";
  request r = with_target(target);
  auto v = r.query_param("k");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->data(), target.data() + 5);
}

// ---- Headers --------------------------------------------------------------------------------

class RequestHeaders : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& h = request_builder::headers(r);
    h.push_back({"Host", "example.com"});
    h.push_back({"Content-Type", "text/plain"});
    h.push_back({"X-Dup", "first"});
    h.push_back({"x-dup", "second"});
    h.push_back({"X-Empty", ""});
  }
  request r;
};

TEST_F(RequestHeaders, LookupIgnoresTheCaseOfTheName) {
  EXPECT_EQ(r.header("Host"), "example.com");
  EXPECT_EQ(r.header("host"), "example.com");
  EXPECT_EQ(r.header("HOST"), "example.com");
  EXPECT_EQ(r.header("cOnTeNt-TyPe"), "text/plain");
}

TEST_F(RequestHeaders, TheFirstOfRepeatedFieldsWins) {
  EXPECT_EQ(r.header("X-DUP"), "first");
}

TEST_F(RequestHeaders, NamesOfOtherLengthsDoNotMatch) {
  EXPECT_EQ(r.header("Hos"), std::nullopt);
  EXPECT_EQ(r.header("Hostx"), std::nullopt);
  EXPECT_EQ(r.header("Host "), std::nullopt);
  EXPECT_EQ(r.header(""), std::nullopt);
  EXPECT_EQ(r.header("Accept"), std::nullopt);
}

TEST_F(RequestHeaders, AnEmptyValueIsPresent) {
  auto v = r.header("x-empty");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, "");
}

TEST_F(RequestHeaders, CaseFoldingIsAsciiOnly) {
  // '[' is 'Z' + 1 and '{' is 'z' + 1: a sloppy fold (| 0x20) would match them.
  request_builder::headers(r).push_back({"X-[", "bracket"});
  EXPECT_EQ(r.header("x-{"), std::nullopt);
  EXPECT_EQ(r.header("X-["), "bracket");
}

TEST_F(RequestHeaders, AllFieldsAreListedInOrderWithTheirCase) {
  auto all = r.headers();
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].name, "Host");
  EXPECT_EQ(all[2].name, "X-Dup");
  EXPECT_EQ(all[3].name, "x-dup");
  EXPECT_EQ(all[3].value, "second");
}

// ---- Body, keep-alive, peer, stop token, clear ----------------------------------------------

TEST(Request, BodyAndKeepAliveAreAsSet) {
  request r;
  request_builder::set_body(r, "hello");
  request_builder::set_keep_alive(r, false);
  EXPECT_EQ(r.body(), "hello");
  EXPECT_FALSE(r.keep_alive());
}

TEST(RequestPeer, Ipv4PeerIsAddressColonPort) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(50123);
  ASSERT_EQ(::inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr), 1);
  sockaddr_in6 storage{};
  std::memcpy(&storage, &v4, sizeof v4);  // how the connection stores an IPv4 peer
  request r;
  request_builder::set_peer(r, storage);
  EXPECT_EQ(r.peer(), "127.0.0.1:50123");
}

TEST(RequestPeer, Ipv6PeerIsBracketedAddressColonPort) {
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(443);
  ASSERT_EQ(::inet_pton(AF_INET6, "2001:db8::42", &v6.sin6_addr), 1);
  request r;
  request_builder::set_peer(r, v6);
  EXPECT_EQ(r.peer(), "[2001:db8::42]:443");
}

TEST(RequestPeer, PeerNeverSetIsUnknown) {
  request r;
  EXPECT_EQ(r.peer(), "unknown");
}

TEST(Request, StopTokenIsTheOneTheServerGave) {
  std::stop_source source;
  request r;
  request_builder::set_stop(r, source);
  EXPECT_TRUE(r.stop_token().stop_possible());
  EXPECT_FALSE(r.stop_token().stop_requested());
  source.request_stop();
  EXPECT_TRUE(r.stop_token().stop_requested());
}

TEST(Request, ClearForgetsTheRequestLineHeadersAndBody) {
  request r;
  request_builder::set_line(r, "POST", "/x?y=1", 10);
  request_builder::headers(r).push_back({"Host", "h"});
  request_builder::set_body(r, "body");
  request_builder::set_keep_alive(r, false);
  request_builder::set_authority(r, {"h", 80});
  request_builder::clear(r);
  EXPECT_EQ(r.host(), "");
  EXPECT_EQ(r.port(), std::nullopt);
  EXPECT_EQ(r.method(), "");
  EXPECT_EQ(r.target(), "");
  EXPECT_EQ(r.path(), "");
  EXPECT_EQ(r.query(), "");
  EXPECT_EQ(r.version(), 11);
  EXPECT_TRUE(r.keep_alive());
  EXPECT_TRUE(r.headers().empty());
  EXPECT_EQ(r.body(), "");
  EXPECT_EQ(r.header("host"), std::nullopt);
}

}  // namespace
}  // namespace lameduck
