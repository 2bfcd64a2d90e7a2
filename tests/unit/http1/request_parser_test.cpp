// The request parser fed from memory: well-formed requests, pipelining, bodies split at every
// byte boundary, every limit at and just past its value, and the malformed and smuggling shapes
// RFC 9112 says to reject.

#include "http1/request_parser.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lameduck::http1 {

// Lets GoogleTest print events by name (found by argument-dependent lookup).
void PrintTo(request_parser::event e, std::ostream* os) {
  switch (e) {
    case request_parser::event::need_more:
      *os << "need_more";
      return;
    case request_parser::event::headers_complete:
      *os << "headers_complete";
      return;
    case request_parser::event::message_complete:
      *os << "message_complete";
      return;
    case request_parser::event::error:
      *os << "error";
      return;
  }
  *os << "event(" << static_cast<int>(e) << ")";
}

namespace {

using event = request_parser::event;
using namespace std::string_literals;

// What feeding some pieces to a parser came to.
struct fed {
  event last = event::need_more;  // message_complete, error, or need_more when input ran out
  std::size_t consumed = 0;       // bytes used over all pieces
  int heads = 0;                  // headers_complete events seen on the way
};

// Feeds the pieces one after another as a connection would, resuming after headers_complete,
// until the message is complete, the parser fails, or the pieces run out.
fed feed_pieces(request_parser& p, const std::vector<std::string_view>& pieces) {
  fed r;
  for (std::string_view piece : pieces) {
    for (;;) {
      std::size_t used = 12345;  // a value feed() must overwrite
      r.last = p.feed(piece, used);
      if (r.last == event::error) {
        EXPECT_EQ(used, 0u) << "an error consumes nothing";
        return r;
      }
      EXPECT_LE(used, piece.size());
      r.consumed += used;
      piece.remove_prefix(used);
      if (r.last == event::message_complete) return r;
      if (r.last == event::need_more) {
        EXPECT_TRUE(piece.empty()) << "need_more must use every byte given";
        break;
      }
      ++r.heads;  // headers_complete: resume with the rest of the piece
    }
  }
  return r;
}

fed feed_all(request_parser& p, std::string_view text) {
  return feed_pieces(p, {text});
}

// A request's contents copied out of the parser, to compare parses of the same bytes.
struct snapshot {
  std::string method, target, path, query;
  int version = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = false;
  std::string host = {};
  std::optional<std::uint16_t> port = {};

  bool operator==(const snapshot&) const = default;
  friend std::ostream& operator<<(std::ostream& os, const snapshot& s) {
    os << s.method << ' ' << s.target << " v" << s.version << " keep_alive=" << s.keep_alive
       << " host=" << s.host << " port=" << (s.port ? std::to_string(*s.port) : "none");
    for (const auto& [n, v] : s.headers)
      os << " [" << n << ": " << v << ']';
    return os << " body=\"" << s.body << '"';
  }
};

snapshot take(const request& r) {
  snapshot s{std::string(r.method()),
             std::string(r.target()),
             std::string(r.path()),
             std::string(r.query()),
             r.version(),
             {},
             std::string(r.body()),
             r.keep_alive(),
             std::string(r.host()),
             r.port()};
  for (const auto& h : r.headers())
    s.headers.emplace_back(h.name, h.value);
  return s;
}

// Parses a whole request from one buffer; fails the test unless it completes using every byte.
snapshot parse_ok(request_parser& p, std::string_view text) {
  fed r = feed_all(p, text);
  EXPECT_EQ(r.last, event::message_complete) << p.error_status() << ' ' << p.error_reason();
  EXPECT_EQ(r.consumed, text.size());
  return take(p.get());
}

// The error status a request gets, or 0 when it parses (then it must use every byte).
int status_of(request_parser& p, std::string_view text) {
  fed r = feed_all(p, text);
  if (r.last == event::error) return p.error_status();
  EXPECT_EQ(r.last, event::message_complete) << "neither complete nor failed";
  EXPECT_EQ(r.consumed, text.size());
  return 0;
}

class RequestParser : public ::testing::Test {
 protected:
  limits lim;  // the parser keeps a reference: tests may tighten a limit before feeding
  request_parser parser{lim};

  int status_of(std::string_view text) { return http1::status_of(parser, text); }
  snapshot parse_ok(std::string_view text) { return http1::parse_ok(parser, text); }
  // Parses text split into two feeds at every byte boundary (and byte by byte) and expects
  // the same request every time.
  void expect_same_at_every_split(std::string_view text, const snapshot& want);
};

void RequestParser::expect_same_at_every_split(std::string_view text, const snapshot& want) {
  for (std::size_t at = 0; at <= text.size(); ++at) {
    parser.reset();
    fed r = feed_pieces(parser, {text.substr(0, at), text.substr(at)});
    ASSERT_EQ(r.last, event::message_complete)
        << "split at " << at << ": " << parser.error_reason();
    ASSERT_EQ(r.consumed, text.size()) << "split at " << at;
    ASSERT_EQ(take(parser.get()), want) << "split at " << at;
  }
  parser.reset();
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < text.size(); ++i)
    bytes.push_back(text.substr(i, 1));
  fed r = feed_pieces(parser, bytes);
  ASSERT_EQ(r.last, event::message_complete) << "byte by byte: " << parser.error_reason();
  ASSERT_EQ(r.consumed, text.size());
  ASSERT_EQ(take(parser.get()), want) << "byte by byte";
}

// ---- Well-formed requests -------------------------------------------------------------------

TEST_F(RequestParser, NothingStartedBeforeTheFirstByte) {
  EXPECT_FALSE(parser.started());
  EXPECT_FALSE(parser.head_complete());
  std::size_t used = 99;
  EXPECT_EQ(parser.feed("", used), event::need_more);
  EXPECT_EQ(used, 0u);
  EXPECT_FALSE(parser.started());
}

TEST_F(RequestParser, SimpleGet) {
  const std::string text = "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
  snapshot s = parse_ok(text);
  EXPECT_EQ(s.method, "GET");
  EXPECT_EQ(s.target, "/index.html");
  EXPECT_EQ(s.path, "/index.html");
  EXPECT_EQ(s.query, "");
  EXPECT_EQ(s.version, 11);
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0], std::pair("Host"s, "example.com"s));
  EXPECT_EQ(s.body, "");
  EXPECT_TRUE(s.keep_alive);
  EXPECT_TRUE(parser.started());
  EXPECT_TRUE(parser.head_complete());
  EXPECT_FALSE(parser.is_head());
  EXPECT_FALSE(parser.expects_continue());
  EXPECT_EQ(parser.error_status(), 0);
}

TEST_F(RequestParser, AnUpgradeIsRequestedByHttp11WithConnectionUpgradeOrByConnect) {
  const std::pair<std::string_view, bool> cases[] = {
      {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true},
      {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\nUpgrade: x\r\n\r\n",
       true},
      {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", true},
      // RFC 9110 section 7.8: Upgrade needs "Connection: upgrade", and is ignored in HTTP/1.0.
      {"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", false},
      {"GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false},
  };
  for (auto [text, want] : cases) {
    parser.reset();
    parse_ok(text);
    EXPECT_EQ(parser.get().upgrade_requested(), want) << text;
  }
}

TEST_F(RequestParser, BytesAfterAnUpgradeRequestAreLeftForTheNewProtocol) {
  const std::string head =
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n";
  std::size_t used = 0;
  EXPECT_EQ(parser.feed(head + "\x81\x05hello", used), event::message_complete);
  EXPECT_EQ(used, head.size());
  EXPECT_TRUE(parser.get().upgrade_requested());
}

TEST_F(RequestParser, StartedAfterTheFirstByteOnly) {
  std::size_t used = 0;
  EXPECT_EQ(parser.feed("G", used), event::need_more);
  EXPECT_EQ(used, 1u);
  EXPECT_TRUE(parser.started());
  EXPECT_FALSE(parser.head_complete());
}

TEST_F(RequestParser, TargetSplitsIntoPathAndQuery) {
  snapshot s = parse_ok("GET /search?q=duck&lang=en HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(s.target, "/search?q=duck&lang=en");
  EXPECT_EQ(s.path, "/search");
  EXPECT_EQ(s.query, "q=duck&lang=en");
  EXPECT_EQ(parser.get().query_param("q"), "duck");
  EXPECT_EQ(parser.get().query_param("lang"), "en");
  EXPECT_EQ(parser.get().query_param("missing"), std::nullopt);
}

TEST_F(RequestParser, AbsoluteFormAndAsteriskTargetsAreKeptAsSent) {
  EXPECT_EQ(parse_ok("GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n").target,
            "http://example.com/a?b");
  parser.reset();
  snapshot s = parse_ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(s.method, "OPTIONS");
  EXPECT_EQ(s.target, "*");
  EXPECT_EQ(s.path, "*");
}

TEST_F(RequestParser, Http11KeepsAliveByDefault) {
  EXPECT_TRUE(parse_ok("GET / HTTP/1.1\r\nHost: h\r\n\r\n").keep_alive);
}

TEST_F(RequestParser, Http11WithConnectionCloseDoesNotKeepAlive) {
  EXPECT_FALSE(parse_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
  parser.reset();
  EXPECT_FALSE(parse_ok("GET / HTTP/1.1\r\nHost: h\r\nconnection: CLOSE\r\n\r\n").keep_alive);
}

TEST_F(RequestParser, Http10ClosesByDefault) {
  snapshot s = parse_ok("GET / HTTP/1.0\r\n\r\n");  // no Host needed in 1.0
  EXPECT_EQ(s.version, 10);
  EXPECT_FALSE(s.keep_alive);
  EXPECT_TRUE(s.headers.empty());
}

TEST_F(RequestParser, Http10KeepsAliveOnlyWithConnectionKeepAlive) {
  EXPECT_TRUE(parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
  parser.reset();
  EXPECT_TRUE(parse_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
  parser.reset();
  EXPECT_FALSE(parse_ok("GET / HTTP/1.0\r\nConnection: close\r\n\r\n").keep_alive);
}

TEST_F(RequestParser, Http10AcceptsOneHost) {
  snapshot s = parse_ok("GET / HTTP/1.0\r\nHost: h\r\n\r\n");
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0].second, "h");
}

TEST_F(RequestParser, HeadRequestIsFlagged) {
  snapshot s = parse_ok("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(s.method, "HEAD");
  EXPECT_TRUE(parser.is_head());
  parser.reset();
  EXPECT_FALSE(parser.is_head());
  parse_ok("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_FALSE(parser.is_head());
}

TEST_F(RequestParser, HeadersKeepTheirOrderAndCaseAndLookUpCaseInsensitively) {
  snapshot s =
      parse_ok("GET / HTTP/1.1\r\nHost: h\r\nX-First: 1\r\nx-second: 2\r\nX-FIRST: again\r\n\r\n");
  const std::vector<std::pair<std::string, std::string>> want{
      {"Host", "h"}, {"X-First", "1"}, {"x-second", "2"}, {"X-FIRST", "again"}};
  EXPECT_EQ(s.headers, want);
  const request& r = parser.get();
  EXPECT_EQ(r.header("x-first"), "1");  // the first of two
  EXPECT_EQ(r.header("X-SECOND"), "2");
  EXPECT_EQ(r.header("HOST"), "h");
  EXPECT_EQ(r.header("X-Third"), std::nullopt);
  EXPECT_EQ(r.header("X-Firs"), std::nullopt);
}

TEST_F(RequestParser, HeaderValuesLoseSurroundingWhitespace) {
  snapshot s = parse_ok(
      "GET / HTTP/1.1\r\nHost: h\r\nX-Pad:   value with  inner space \t \r\nX-Tab:\tv\t\r\n\r\n");
  ASSERT_EQ(s.headers.size(), 3u);
  EXPECT_EQ(s.headers[1].second, "value with  inner space");
  EXPECT_EQ(s.headers[2].second, "v");
}

TEST_F(RequestParser, EmptyHeaderValuesAreKeptAndDoNotMergeFields) {
  snapshot s =
      parse_ok("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Blank:   \r\nX-Next: v\r\n\r\n");
  const std::vector<std::pair<std::string, std::string>> want{
      {"Host", "h"}, {"X-Empty", ""}, {"X-Blank", ""}, {"X-Next", "v"}};
  EXPECT_EQ(s.headers, want);
  EXPECT_EQ(parser.get().header("x-empty"), "");
}

TEST_F(RequestParser, ObsTextInHeaderValuesIsAccepted) {
  // RFC 9110 section 5.5: field values may carry obs-text (0x80-0xFF), e.g. UTF-8.
  snapshot s = parse_ok(
      "GET / HTTP/1.1\r\nHost: h\r\nX-Name: D\xc3\xbc"
      "ck\r\n\r\n");
  EXPECT_EQ(s.headers[1].second,
            "D\xc3\xbc"
            "ck");
}

TEST_F(RequestParser, GetWithoutBodyCompletesWithoutHeadersCompleteEvent) {
  fed r = feed_all(parser, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(r.last, event::message_complete);
  EXPECT_EQ(r.heads, 0);
  parser.reset();
  r = feed_all(parser, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.last, event::message_complete);
  EXPECT_EQ(r.heads, 0) << "Content-Length: 0 is no body";
  EXPECT_EQ(parser.get().body(), "");
}

TEST_F(RequestParser, EveryMethodLlhttpKnowsParses) {
  for (const char* m : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"}) {
    parser.reset();
    EXPECT_EQ(parse_ok(std::string(m) + " / HTTP/1.1\r\nHost: h\r\n\r\n").method, m);
  }
}

TEST_F(RequestParser, ResetForgetsTheLastRequest) {
  parse_ok(
      "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi");
  EXPECT_TRUE(parser.expects_continue());
  parser.reset();
  EXPECT_FALSE(parser.started());
  EXPECT_FALSE(parser.head_complete());
  EXPECT_FALSE(parser.expects_continue());
  EXPECT_EQ(take(parser.get()), (snapshot{"", "", "", "", 11, {}, "", true}));
}

TEST_F(RequestParser, ResetAfterAnErrorParsesTheNextRequest) {
  EXPECT_EQ(status_of("BLAH\r\n\r\n"), 400);
  parser.reset();
  EXPECT_EQ(parser.error_status(), 0);
  EXPECT_EQ(parse_ok("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n").path, "/ok");
}

// ---- Pipelining and feed boundaries ---------------------------------------------------------

TEST_F(RequestParser, PipelinedRequestsParseOneAfterAnotherWithExactConsumedCounts) {
  const std::string get1 = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string post = "POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
  const std::string chunked =
      "PUT /three HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const std::string head = "HEAD /four HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  const std::string all = get1 + post + chunked + head;

  std::string_view rest = all;
  struct expected {
    std::size_t size;
    const char* method;
    const char* path;
    const char* body;
    bool keep_alive;
  };
  const expected want[] = {{get1.size(), "GET", "/one", "", true},
                           {post.size(), "POST", "/two", "hello", true},
                           {chunked.size(), "PUT", "/three", "abc", true},
                           {head.size(), "HEAD", "/four", "", false}};
  for (const auto& w : want) {
    parser.reset();
    fed r = feed_all(parser, rest);
    ASSERT_EQ(r.last, event::message_complete) << w.path << ": " << parser.error_reason();
    EXPECT_EQ(r.consumed, w.size) << w.path;
    EXPECT_EQ(parser.get().method(), w.method);
    EXPECT_EQ(parser.get().path(), w.path);
    EXPECT_EQ(parser.get().body(), w.body);
    EXPECT_EQ(parser.get().keep_alive(), w.keep_alive);
    rest.remove_prefix(r.consumed);
  }
  EXPECT_TRUE(rest.empty());
}

TEST_F(RequestParser, StopsAtTheMessageBoundaryEvenWhenTheNextRequestIsPartial) {
  const std::string first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string all = first + "GET /b HT";
  fed r = feed_all(parser, all);
  ASSERT_EQ(r.last, event::message_complete);
  EXPECT_EQ(r.consumed, first.size());
  EXPECT_EQ(parser.get().path(), "/a");
  parser.reset();
  r = feed_pieces(parser,
                  {std::string_view(all).substr(first.size()), "TP/1.1\r\nHost: h\r\n\r\n"});
  ASSERT_EQ(r.last, event::message_complete);
  EXPECT_EQ(parser.get().path(), "/b");
}

TEST_F(RequestParser, HeadersCompleteReportsExactlyTheHeadBytes) {
  const std::string head = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
  const std::string all = head + "abcGET";
  std::size_t used = 0;
  ASSERT_EQ(parser.feed(all, used), event::headers_complete);
  EXPECT_EQ(used, head.size());
  EXPECT_TRUE(parser.head_complete());
  EXPECT_EQ(parser.get().path(), "/p");  // the head is readable before the body
  EXPECT_EQ(parser.get().header("content-length"), "3");
  std::size_t more = 0;
  ASSERT_EQ(parser.feed(std::string_view(all).substr(used), more), event::message_complete);
  EXPECT_EQ(more, 3u);
  EXPECT_EQ(parser.get().body(), "abc");
}

TEST_F(RequestParser, NeedMoreUsesEveryByteGiven) {
  std::size_t used = 0;
  EXPECT_EQ(parser.feed("GET / HTTP/1.1\r\nHo", used), event::need_more);
  EXPECT_EQ(used, 18u);
  EXPECT_EQ(parser.feed("st: h\r\n", used), event::need_more);
  EXPECT_EQ(used, 7u);
  EXPECT_EQ(parser.feed("\r\n", used), event::message_complete);
  EXPECT_EQ(used, 2u);
}

TEST_F(RequestParser, RequestWithHeadersSplitAtEveryByteBoundaryParsesTheSame) {
  const std::string text =
      "GET /search?q=duck HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\n"
      "Accept: */*\r\nX-Pad:  padded  \r\nX-Empty:\r\n\r\n";
  snapshot want = parse_ok(text);
  EXPECT_EQ(want.headers.size(), 5u);
  EXPECT_EQ(want.headers[3].second, "padded");
  expect_same_at_every_split(text, want);
}

TEST_F(RequestParser, ContentLengthBodySplitAtEveryByteBoundaryParsesTheSame) {
  const std::string text =
      "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
  snapshot want = parse_ok(text);
  EXPECT_EQ(want.body, "hello world");
  expect_same_at_every_split(text, want);
}

// ---- Bodies ---------------------------------------------------------------------------------

TEST_F(RequestParser, ContentLengthBody) {
  fed r = feed_all(parser, "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(r.last, event::message_complete);
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(parser.get().body(), "hello");
  EXPECT_EQ(parser.get().method(), "POST");
}

TEST_F(RequestParser, ContentLengthBodyMayHoldAnyBytes) {
  const std::string body("a\0b\r\n\r\nGET / HTTP/1.1\r\n\xff", 24);
  snapshot s = parse_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 24\r\n\r\n" + body);
  EXPECT_EQ(s.body, body);
}

TEST_F(RequestParser, IncompleteBodyNeedsMore) {
  fed r = feed_all(parser, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel");
  EXPECT_EQ(r.last, event::need_more);
  EXPECT_EQ(r.heads, 1);
  EXPECT_TRUE(parser.head_complete());
}

const std::string chunked_request =
    "POST /chunks HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;name=value\r\nhello\r\n"
    "1;flag\r\n \r\n"
    "A\r\n0123456789\r\n"
    "0005\r\nworld\r\n"
    "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n";

TEST_F(RequestParser, ChunkedBodyWithExtensionsAndTrailers) {
  fed r = feed_all(parser, chunked_request);
  ASSERT_EQ(r.last, event::message_complete) << parser.error_reason();
  EXPECT_EQ(r.consumed, chunked_request.size());
  EXPECT_EQ(r.heads, 1);
  EXPECT_EQ(parser.get().body(), "hello 0123456789world");
  // Trailer fields are read and dropped; the head's fields are untouched by them.
  const std::vector<std::pair<std::string, std::string>> want{{"Host", "h"},
                                                              {"Transfer-Encoding", "chunked"}};
  EXPECT_EQ(take(parser.get()).headers, want);
  EXPECT_EQ(parser.get().header("X-Trailer"), std::nullopt);
}

TEST_F(RequestParser, ChunkedBodySplitAtEveryByteBoundaryParsesTheSame) {
  snapshot want = parse_ok(chunked_request);
  expect_same_at_every_split(chunked_request, want);
}

TEST_F(RequestParser, ChunkedBodySplitAtEveryPairOfBoundariesParsesTheSame) {
  const std::string text =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
  snapshot want = parse_ok(text);
  EXPECT_EQ(want.body, "abcde");
  std::string_view v = text;
  for (std::size_t i = 0; i <= v.size(); ++i) {
    for (std::size_t j = i; j <= v.size(); ++j) {
      parser.reset();
      fed r = feed_pieces(parser, {v.substr(0, i), v.substr(i, j - i), v.substr(j)});
      ASSERT_EQ(r.last, event::message_complete) << i << ',' << j << ": " << parser.error_reason();
      ASSERT_EQ(r.consumed, v.size()) << i << ',' << j;
      ASSERT_EQ(take(parser.get()), want) << i << ',' << j;
    }
  }
}

TEST_F(RequestParser, BodyOfExactlyMaxBodyBytesIsAccepted) {
  lim.max_body_bytes = 10;
  EXPECT_EQ(parse_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789").body,
            "0123456789");
  parser.reset();
  EXPECT_EQ(parse_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n")
                .body,
            "0123456789");
}

TEST_F(RequestParser, AnnouncedContentLengthOverMaxBodyBytesIs413AtTheHead) {
  lim.max_body_bytes = 10;
  std::size_t used = 0;
  // The head alone is enough: no body byte has to arrive for the 413.
  EXPECT_EQ(parser.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", used),
            event::error);
  EXPECT_EQ(parser.error_status(), 413);
  EXPECT_TRUE(parser.head_complete());
}

TEST_F(RequestParser, ChunkedBodyAccumulatedOverMaxBodyBytesIs413) {
  lim.max_body_bytes = 10;
  const std::string text =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\n012345\r\n5\r\n6789X\r\n0\r\n\r\n";
  EXPECT_EQ(status_of(text), 413);
  // Also when the chunk that crosses the limit arrives a byte at a time.
  parser.reset();
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < text.size(); ++i)
    bytes.push_back(std::string_view(text).substr(i, 1));
  EXPECT_EQ(feed_pieces(parser, bytes).last, event::error);
  EXPECT_EQ(parser.error_status(), 413);
}

TEST_F(RequestParser, OneChunkOverMaxBodyBytesIs413) {
  lim.max_body_bytes = 10;
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "b\r\n0123456789X\r\n0\r\n\r\n"),
            413);
}

// ---- Limits ---------------------------------------------------------------------------------

// A request line of exactly n bytes (without CRLF): "GET /aaa...a HTTP/1.1".
std::string request_line_of(std::size_t n) {
  const std::size_t fixed = std::string_view("GET / HTTP/1.1").size();
  return "GET /" + std::string(n - fixed, 'a') + " HTTP/1.1";
}

TEST_F(RequestParser, RequestLineOfExactlyMaxRequestLineIsAccepted) {
  lim.max_request_line = 64;
  const std::string line = request_line_of(64);
  ASSERT_EQ(line.size(), 64u);
  EXPECT_EQ(status_of(line + "\r\nHost: h\r\n\r\n"), 0);
}

TEST_F(RequestParser, RequestLineOneByteOverMaxRequestLineIs414) {
  lim.max_request_line = 64;
  EXPECT_EQ(status_of(request_line_of(65) + "\r\nHost: h\r\n\r\n"), 414);
}

TEST_F(RequestParser, LongTargetArrivingInSmallPiecesIs414) {
  lim.max_request_line = 64;
  const std::string text = request_line_of(200) + "\r\nHost: h\r\n\r\n";
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < text.size(); i += 7)
    pieces.push_back(std::string_view(text).substr(i, 7));
  EXPECT_EQ(feed_pieces(parser, pieces).last, event::error);
  EXPECT_EQ(parser.error_status(), 414);
}

TEST_F(RequestParser, DefaultMaxRequestLineIs8KiB) {
  EXPECT_EQ(status_of(request_line_of(8 * 1024) + "\r\nHost: h\r\n\r\n"), 0);
  parser.reset();
  EXPECT_EQ(status_of(request_line_of(8 * 1024 + 1) + "\r\nHost: h\r\n\r\n"), 414);
}

// Header lines "Host: h" (9 bytes with CRLF) and "X-A: 123" (10 bytes): 19 bytes in all.
constexpr std::string_view two_fields = "GET / HTTP/1.1\r\nHost: h\r\nX-A: 123\r\n\r\n";

TEST_F(RequestParser, HeaderBytesOfExactlyMaxHeaderBytesAreAccepted) {
  lim.max_header_bytes = 19;
  EXPECT_EQ(status_of(two_fields), 0);
}

TEST_F(RequestParser, HeaderBytesOneOverMaxHeaderBytesAre431) {
  lim.max_header_bytes = 18;
  EXPECT_EQ(status_of(two_fields), 431);
}

TEST_F(RequestParser, HeaderBytesCountAnEmptyLastFieldToo) {
  // "Host: h" (9) + "X-Empty:" (7 + CRLF + the ": " a value would have = 11) = 20.
  lim.max_header_bytes = 20;
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n"), 0);
  parser.reset();
  lim.max_header_bytes = 19;
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n"), 431);
}

TEST_F(RequestParser, OneHugeHeaderValueArrivingInPiecesIs431) {
  lim.max_header_bytes = 100;
  const std::string text =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(500, 'v') + "\r\n\r\n";
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < text.size(); i += 10)
    pieces.push_back(std::string_view(text).substr(i, 10));
  EXPECT_EQ(feed_pieces(parser, pieces).last, event::error);
  EXPECT_EQ(parser.error_status(), 431);
}

// A request with Host and then n-1 more fields.
std::string request_with_fields(std::size_t n) {
  std::string text = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (std::size_t i = 1; i < n; ++i)
    text += "X-" + std::to_string(i) + ": v\r\n";
  return text + "\r\n";
}

TEST_F(RequestParser, ExactlyMaxHeaderCountFieldsAreAccepted) {
  lim.max_header_count = 5;
  EXPECT_EQ(status_of(request_with_fields(5)), 0);
  EXPECT_EQ(parser.get().headers().size(), 5u);
}

TEST_F(RequestParser, OneFieldOverMaxHeaderCountIs431) {
  lim.max_header_count = 5;
  EXPECT_EQ(status_of(request_with_fields(6)), 431);
}

TEST_F(RequestParser, DefaultMaxHeaderCountIs100) {
  EXPECT_EQ(status_of(request_with_fields(100)), 0);
  parser.reset();
  EXPECT_EQ(status_of(request_with_fields(101)), 431);
}

TEST_F(RequestParser, TrailerFieldsCountAgainstMaxHeaderBytes) {
  // Trailers are dropped, but a client must not stream them without end.
  lim.max_header_bytes = 64;
  const std::string head =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n";
  EXPECT_EQ(status_of(head + "X-T: " + std::string(100, 't') + "\r\n\r\n"), 431);
  parser.reset();
  EXPECT_EQ(status_of(head + "X-T: t\r\n\r\n"), 0);
}

// ---- Malformed requests: 400 ----------------------------------------------------------------

TEST_F(RequestParser, GarbageRequestLinesAre400) {
  for (std::string_view line :
       {"GARBAGE\r\n\r\n", "\x01\x02\x03\r\n\r\n", "GET\r\n\r\n", "GET /\r\nHost: h\r\n\r\n",
        "/ HTTP/1.1\r\nHost: h\r\n\r\n", "GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n",
        "get / HTTP/1.1\r\nHost: h\r\n\r\n", "GET / http/1.1\r\nHost: h\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"}) {
    parser.reset();
    EXPECT_EQ(status_of(line), 400) << line;
  }
}

TEST_F(RequestParser, VersionsOtherThanHttp1xAre400) {
  for (std::string_view version : {"HTTP/2.0", "HTTP/0.9", "HTTP/3.0", "HTTP/1.1x", "HTTP/1.",
                                   "HTTP/11", "HTTP/1.10", "HTTPS/1.1"}) {
    parser.reset();
    EXPECT_EQ(status_of("GET / " + std::string(version) + "\r\nHost: h\r\n\r\n"), 400) << version;
  }
}

TEST_F(RequestParser, MissingHostInHttp11Is400) {
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), 400);
}

TEST_F(RequestParser, TwoHostFieldsAre400) {
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
}

TEST_F(RequestParser, WhitespaceBetweenFieldNameAndColonIs400) {
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX-A\t: v\r\n\r\n"), 400);
}

TEST_F(RequestParser, WhitespaceBetweenFieldNameAndColonSplitAcrossFeedsIs400) {
  fed r = feed_pieces(parser, {"GET / HTTP/1.1\r\nHost: h\r\nX-A", " : v\r\n\r\n"});
  EXPECT_EQ(r.last, event::error);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST_F(RequestParser, BareLfLineEndingsAre400) {
  for (std::string_view text :
       {"GET / HTTP/1.1\nHost: h\r\n\r\n", "GET / HTTP/1.1\r\nHost: h\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\n", "GET / HTTP/1.1\nHost: h\n\n",
        "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"}) {
    parser.reset();
    EXPECT_EQ(status_of(text), 400) << testing::PrintToString(std::string(text));
  }
}

TEST_F(RequestParser, BareLfInAChunkedBodyIs400) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::string_view body : {"3\nabc\r\n0\r\n\r\n", "3\r\nabc\n0\r\n\r\n", "3\r\nabc\r\n0\n\r\n",
                                "3\r\nabc\r\n0\r\n\n"}) {
    parser.reset();
    EXPECT_EQ(status_of(head + std::string(body)), 400)
        << testing::PrintToString(std::string(body));
  }
}

TEST_F(RequestParser, ControlCharactersInFieldNamesAndValuesAre400) {
  for (std::string_view field : {"X-Bad\x01: v", "X-Bad\x7f: v", "X(Bad): v", "X-Bad: a\x01z",
                                 "X-Bad: a\x7fz", "X-Bad: a\x1bz", ": empty-name"}) {
    parser.reset();
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\n" + std::string(field) + "\r\n\r\n"), 400)
        << testing::PrintToString(std::string(field));
  }
}

TEST_F(RequestParser, NulBytesAre400) {
  const std::string nul(1, '\0');
  for (const std::string& text :
       {"GET /a" + nul + "b HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHo" + nul + "st: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h" + nul + "\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a" + nul + "b\r\n\r\n", nul + "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GE" + nul + "T / HTTP/1.1\r\nHost: h\r\n\r\n"}) {
    parser.reset();
    EXPECT_EQ(status_of(text), 400) << testing::PrintToString(text);
  }
}

TEST_F(RequestParser, ControlCharactersInTheTargetAre400) {
  for (std::string_view target : {"/a\x01", "/a\x7f", "/a\tb", "/a\rb"}) {
    parser.reset();
    EXPECT_EQ(status_of("GET " + std::string(target) + " HTTP/1.1\r\nHost: h\r\n\r\n"), 400)
        << testing::PrintToString(std::string(target));
  }
}

TEST_F(RequestParser, InvalidContentLengthValuesAre400) {
  for (std::string_view value :
       {"abc", "1x", "-1", "+5", "1 2", "0x10", "", "99999999999999999999999"}) {
    parser.reset();
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::string(value) +
                        "\r\n\r\n"),
              400)
        << value;
  }
}

// ---- Request smuggling shapes: 400 ----------------------------------------------------------

TEST_F(RequestParser, ContentLengthWithTransferEncodingIs400) {
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: "
                      "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            400);
  parser.reset();
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: "
                      "3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            400);
}

TEST_F(RequestParser, DuplicateContentLengthWithDifferentValuesIs400) {
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
                      "abcd"),
            400);
}

TEST_F(RequestParser, DuplicateContentLengthWithIdenticalValuesIsAlsoRejectedWith400) {
  // RFC 9112 section 6.3 allows accepting identical duplicates; this server rejects them too.
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"
                      "abc"),
            400);
  parser.reset();
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc"), 400);
}

TEST_F(RequestParser, InvalidChunkSizesAre400) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  // "5 ;ext" is not here: RFC 9112 section 7.1.1 allows BWS before an extension's ";".
  for (std::string_view size : {"zz", "g", "-5", "+5", "0x5", " 5", "", "fffffffffffffffff",
                                "10000000000000000", "5 ", "5\t", "5 5", "5\x01", "5:x"}) {
    parser.reset();
    EXPECT_EQ(status_of(head + std::string(size) + "\r\nhello\r\n0\r\n\r\n"), 400) << size;
  }
}

TEST_F(RequestParser, ChunkDataLongerThanItsSizeIs400) {
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabcd\r\n0\r\n\r\n"),
            400);
}

TEST_F(RequestParser, TransferEncodingNotEndingInChunkedIs400) {
  for (std::string_view te : {"gzip", "chunked, gzip", "identity", "chunkedx", "chunked;q=1"}) {
    parser.reset();
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + std::string(te) +
                        "\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
              400)
        << te;
  }
}

TEST_F(RequestParser, TransferEncodingInHttp10Is400) {
  // RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
  EXPECT_EQ(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            400);
}

TEST_F(RequestParser, ObsoleteLineFoldingIs400) {
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), 400);
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n"), 400);
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: a\r\n b\r\nHost: h\r\n\r\n"), 400);
}

TEST_F(RequestParser, ObsoleteLineFoldingOfAnEmptyValueIs400) {
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX:\r\n b\r\n\r\n"), 400);
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n \r\n\r\n"), 400);
}

TEST_F(RequestParser, ObsoleteLineFoldingStartingAtAFeedBoundaryIs400) {
  for (std::string_view fold : {" b\r\n\r\n", "\tb\r\n\r\n", " \r\n\r\n"}) {
    parser.reset();
    fed r = feed_pieces(parser, {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n", fold});
    EXPECT_EQ(r.last, event::error) << testing::PrintToString(std::string(fold));
    EXPECT_EQ(parser.error_status(), 400);
  }
}

TEST_F(RequestParser, ObsoleteLineFoldingIs400AtEverySplit) {
  const std::string_view text = "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n";
  for (std::size_t at = 0; at <= text.size(); ++at) {
    parser.reset();
    fed r = feed_pieces(parser, {text.substr(0, at), text.substr(at)});
    EXPECT_EQ(r.last, event::error) << "split at " << at;
    EXPECT_EQ(parser.error_status(), 400) << "split at " << at;
  }
}

TEST_F(RequestParser, WhitespaceBeforeTheFirstFieldIs400) {
  // RFC 9112 section 2.2: whitespace between the start line and the first field.
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\n\tHost: h\r\n\r\n"), 400);
}

// ---- Expect ---------------------------------------------------------------------------------

TEST_F(RequestParser, ExpectContinueWithABodyStopsAtTheHead) {
  const std::string head =
      "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  std::size_t used = 0;
  ASSERT_EQ(parser.feed(head, used), event::headers_complete);
  EXPECT_EQ(used, head.size());
  EXPECT_TRUE(parser.expects_continue());
  ASSERT_EQ(parser.feed("abc", used), event::message_complete);
  EXPECT_EQ(parser.get().body(), "abc");
}

TEST_F(RequestParser, ExpectContinueIsCaseInsensitiveAndWorksWithChunked) {
  fed r = feed_all(parser,
                   "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n");
  EXPECT_EQ(r.last, event::need_more);
  EXPECT_EQ(r.heads, 1);
  EXPECT_TRUE(parser.expects_continue());
}

TEST_F(RequestParser, ExpectContinueWithoutABodyExpectsNothing) {
  parse_ok("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_FALSE(parser.expects_continue());
  parser.reset();
  parse_ok("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(parser.expects_continue());
}

TEST_F(RequestParser, ExpectContinueFromAnHttp10ClientExpectsNothing) {
  // RFC 9110 section 10.1.1: a server must ignore 100-continue from an HTTP/1.0 client.
  fed r = feed_all(parser, "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_EQ(r.heads, 1);
  EXPECT_FALSE(parser.expects_continue());
}

TEST_F(RequestParser, UnknownExpectationIs417) {
  EXPECT_EQ(
      status_of("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\nabc"),
      417);
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue-please\r\n\r\n"), 417);
}

// ---- Upgrade --------------------------------------------------------------------------------

TEST_F(RequestParser, UpgradeRequestParsesAsANormalRequestAndTheNextOneStillParses) {
  const std::string upgrade =
      "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const std::string next = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string all = upgrade + next;
  fed r = feed_all(parser, all);
  ASSERT_EQ(r.last, event::message_complete) << parser.error_reason();
  EXPECT_EQ(r.consumed, upgrade.size());
  EXPECT_EQ(parser.get().path(), "/chat");
  EXPECT_EQ(parser.get().header("upgrade"), "websocket");
  parser.reset();
  r = feed_all(parser, std::string_view(all).substr(upgrade.size()));
  ASSERT_EQ(r.last, event::message_complete) << parser.error_reason();
  EXPECT_EQ(r.consumed, next.size());
  EXPECT_EQ(parser.get().path(), "/next");
}

TEST_F(RequestParser, UpgradeRequestWithABodyKeepsItsBody) {
  const std::string upgrade =
      "POST /up HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: "
      "2\r\n\r\nhi";
  const std::string next = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  fed r = feed_all(parser, upgrade + next);
  ASSERT_EQ(r.last, event::message_complete) << parser.error_reason();
  EXPECT_EQ(r.consumed, upgrade.size());
  EXPECT_EQ(parser.get().body(), "hi");
  parser.reset();
  EXPECT_EQ(parse_ok(next).path, "/next");
}

TEST_F(RequestParser, ConnectRequestParsesAndTheNextOneStillParses) {
  const std::string connect = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
  const std::string next = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  fed r = feed_all(parser, connect + next);
  ASSERT_EQ(r.last, event::message_complete) << parser.error_reason();
  EXPECT_EQ(r.consumed, connect.size());
  EXPECT_EQ(parser.get().method(), "CONNECT");
  EXPECT_EQ(parser.get().target(), "example.com:443");
  parser.reset();
  EXPECT_EQ(parse_ok(next).path, "/next");
}

// ---- Host and the request's authority (RFC 9112 section 3.2) -------------------------------

TEST_F(RequestParser, HostIsParsedIntoHostAndPort) {
  struct want {
    std::string_view value, host;
    std::optional<std::uint16_t> port;
  };
  for (const want& w :
       {want{"example.com", "example.com", std::nullopt}, want{"127.0.0.1:8080", "127.0.0.1", 8080},
        want{"[::1]:8443", "[::1]", 8443}, want{"[2001:db8::7]", "[2001:db8::7]", std::nullopt},
        want{"[v1.x]", "[v1.x]", std::nullopt}, want{"a%2Db:", "a%2Db", std::nullopt},
        want{"", "", std::nullopt}}) {
    parser.reset();
    snapshot s = parse_ok("GET / HTTP/1.1\r\nHost: " + std::string(w.value) + "\r\n\r\n");
    EXPECT_EQ(s.host, w.host) << w.value;
    EXPECT_EQ(s.port, w.port) << w.value;
  }
}

TEST_F(RequestParser, InvalidHostValuesAre400) {
  for (std::string_view value :
       {"a b", "a/b", "user@a", "[::1", "a:b", "a:65536", "[::1]x", "a%zz", "[1.2.3.4]",
        "[fe80::1%eth0]", "a,b:80:80", "a\\b", "a\"b", "\xc3\xa9"}) {
    parser.reset();
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: " + std::string(value) + "\r\n\r\n"), 400)
        << testing::PrintToString(std::string(value));
    EXPECT_STREQ(parser.error_reason().data(), "invalid Host");
  }
  // In HTTP/1.0 too: Host may be left out there, but not be invalid.
  parser.reset();
  EXPECT_EQ(status_of("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"), 400);
}

TEST_F(RequestParser, InvalidHostIs400AtEverySplit) {
  for (std::string_view value : {"a b", "a/b", "user@a", "[::1"}) {
    const std::string text = "GET / HTTP/1.1\r\nHost: " + std::string(value) + "\r\n\r\n";
    for (std::size_t at = 0; at <= text.size(); ++at) {
      parser.reset();
      fed r = feed_pieces(
          parser, {std::string_view(text).substr(0, at), std::string_view(text).substr(at)});
      EXPECT_EQ(r.last, event::error) << value << " split at " << at;
      EXPECT_EQ(parser.error_status(), 400) << value << " split at " << at;
    }
  }
}

TEST_F(RequestParser, HostAndPortParseTheSameAtEverySplit) {
  const std::string text = "GET /x HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nX: y\r\n\r\n";
  snapshot want = parse_ok(text);
  EXPECT_EQ(want.host, "[2001:db8::1]");
  EXPECT_EQ(want.port, 8080);
  expect_same_at_every_split(text, want);
}

TEST_F(RequestParser, Http10WithoutHostHasAnEmptyHost) {
  snapshot s = parse_ok("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(s.host, "");
  EXPECT_EQ(s.port, std::nullopt);
}

TEST_F(RequestParser, ResetForgetsTheHostAndPort) {
  parse_ok("GET / HTTP/1.1\r\nHost: a:81\r\n\r\n");
  EXPECT_EQ(parser.get().port(), 81);
  parser.reset();
  EXPECT_EQ(parser.get().host(), "");
  EXPECT_EQ(parser.get().port(), std::nullopt);
  snapshot s = parse_ok("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(s.host, "");
  EXPECT_EQ(s.port, std::nullopt);
}

TEST_F(RequestParser, AnAbsoluteFormTargetsAuthorityReplacesHost) {
  // RFC 9112 section 3.2.2: the server ignores Host and uses the target's authority; the
  // field's value is replaced, so that header("Host") and host() agree.
  snapshot s = parse_ok("GET http://example.com:8080/a?b HTTP/1.1\r\nHost: other\r\n\r\n");
  EXPECT_EQ(s.host, "example.com");
  EXPECT_EQ(s.port, 8080);
  EXPECT_EQ(s.path, "/a");
  EXPECT_EQ(s.query, "b");
  EXPECT_EQ(parser.get().header("host"), "example.com:8080");
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0], std::pair("Host"s, "example.com:8080"s));

  parser.reset();
  s = parse_ok("GET https://[::1] HTTP/1.1\r\nHost: [::1]\r\n\r\n");
  EXPECT_EQ(s.host, "[::1]");
  EXPECT_EQ(s.port, std::nullopt);
  EXPECT_EQ(s.path, "/");

  parser.reset();
  s = parse_ok("GET http://h?q=1 HTTP/1.0\r\n\r\n");  // HTTP/1.0 needs no Host
  EXPECT_EQ(s.host, "h");
  EXPECT_EQ(s.path, "/");
  EXPECT_EQ(s.query, "q=1");
}

TEST_F(RequestParser, AnAbsoluteFormTargetWithAnInvalidAuthorityIs400) {
  for (std::string_view target :
       {"http://user@h/", "http://user:pw@h/", "http:///a", "http://:80/", "http://h:99999/",
        "http://h:x/", "http://[::1/", "http://a@b@c/"}) {
    parser.reset();
    EXPECT_EQ(status_of("GET " + std::string(target) + " HTTP/1.1\r\nHost: h\r\n\r\n"), 400)
        << target;
  }
}

TEST_F(RequestParser, AnAbsoluteFormTargetStillNeedsOneValidHostInHttp11) {
  // RFC 9112 section 3.2's 400s hold whatever the target: the Host is ignored, not optional.
  for (std::string_view fields : {"", "Host: a b\r\n", "Host: h\r\nHost: h\r\n"}) {
    parser.reset();
    EXPECT_EQ(status_of("GET http://h/ HTTP/1.1\r\n" + std::string(fields) + "\r\n"), 400)
        << fields;
  }
}

TEST_F(RequestParser, ConnectTakesItsAuthorityFromTheTarget) {
  snapshot s = parse_ok("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  EXPECT_EQ(s.host, "example.com");
  EXPECT_EQ(s.port, 443);
  parser.reset();
  s = parse_ok("CONNECT [::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(s.host, "[::1]");
  EXPECT_EQ(s.port, 8443);
  EXPECT_EQ(parser.get().header("Host"), "[::1]:8443");
}

TEST_F(RequestParser, ConnectWithoutAValidPortIs400) {
  // RFC 9110 section 9.3.6: a CONNECT to an empty or invalid port gets a 400.
  for (std::string_view target : {"example.com", "example.com:", "example.com:0", ":443",
                                  "user@example.com:443", "example.com:65536"}) {
    parser.reset();
    EXPECT_EQ(status_of("CONNECT " + std::string(target) + " HTTP/1.1\r\nHost: h\r\n\r\n"), 400)
        << target;
  }
}

// ---- Chunk extensions (RFC 9112 section 7.1.1, RFC 9110 section 5.6) -------------------------

const std::string chunked_head =
    "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

// Every form of chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
// with chunk-ext-val = token / quoted-string, as the line of a chunk of size 5.
const std::vector<std::string> valid_chunk_lines = {
    "5;a",
    "5;a;b",
    "5;a=b",
    "5;a=b;c=d",   // llhttp 8.1 refuses a token value followed by more
    "5;a=b ;c=d",  // BWS before ";"
    "5;a=b;c",
    "5;a=\"b\";c=d",
    "5;c=\"d\\\"e\"",  // a quoted-pair in a quoted value
    "5;a=\"\"",
    "5;a=\"b c\t;=,\"",
    "5;a=\"\\\\\"",
    "5;a=\"\\\t\\ \\~\"",
    "5;a=\"\x80\xff\"",  // obs-text
    "5;a=\"\\\x80\"",
    "5 ;a",
    "5\t;a",
    "5; a",
    "5;\ta",
    "5;a =b",
    "5;a= b",
    "5 \t; \ta \t= \tb \t; c",
    "5;a=\"b\" ;c",
    "5;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~09AZaz",
    "05;a=b",
    "0000000000000005;a",  // 16 digits: as many as the largest size has
};

// Lines that break the grammar, or hold bytes no extension may: each is a 400.
const std::vector<std::string> invalid_chunk_lines = {
    "5;",            // a name is a token: at least one byte
    "5; ",           //
    "5;;a",          //
    "5;a;",          //
    "5;=b",          //
    "5;a=",          // a value is a token or a quoted-string
    "5;a= ",         //
    "5;a=b ",        // BWS must be followed by ";"
    "5;a ",          //
    "5;a=\"b\" ",    //
    "5;a\t",         //
    "5;a==b",        //
    "5;a=b=c",       //
    "5;a b",         //
    "5;a=b c",       //
    "5;a=\"b\"c",    // nothing but BWS ";" or CRLF after a quoted value
    "5;a=b\"c\"",    // a token holds no DQUOTE
    "5;a=\"b",       // unterminated: the CR is not qdtext
    "5;a=\"b\\\"",   // the last quote is escaped
    "5;a=\"b\\",     // a backslash before CR
    "5;a,b",         // "," is no tchar
    "5;a=(b)",       //
    "5;a/b",         //
    "5;a@b",         //
    "5;a=\"\x01\"",  // control bytes, in a quoted value or escaped
    "5;a=\"\x7f\"",
    "5;a=\"\\\x01\"",
    "5;a=\"\\\x7f\"",
    "5;a\x01",
    "5;a=b\x7f",
    "5;a=\"b\nc\"",  // a bare LF or CR anywhere in the line
    "5;a=\"b\rc\"",
    "5;a=b\rc",
    "5;a\rb",
    "5;a=\"\\\r\"",
    "5;a\n",
    "5;a=b\n",
    "5;a=\xc3\xa9",         // obs-text only in a quoted value
    "5;a\x00"s,             // a NUL
    "00000000000000005;a",  // 17 digits: leading zeros a client could send without end
    "00000000000000005",    //
};

TEST_F(RequestParser, ValidChunkExtensionsAreIgnored) {
  for (const std::string& line : valid_chunk_lines) {
    parser.reset();
    const std::string text = chunked_head + line + "\r\nhello\r\n0\r\n\r\n";
    fed r = feed_all(parser, text);
    ASSERT_EQ(r.last, event::message_complete)
        << testing::PrintToString(line) << ": " << parser.error_reason();
    EXPECT_EQ(r.consumed, text.size()) << testing::PrintToString(line);
    EXPECT_EQ(parser.get().body(), "hello") << testing::PrintToString(line);
  }
}

TEST_F(RequestParser, ValidChunkExtensionsParseTheSameAtEverySplit) {
  for (const std::string& line : valid_chunk_lines) {
    SCOPED_TRACE(testing::PrintToString(line));
    parser.reset();
    // Twice, so that the second chunk-size line follows a chunk's data in the same piece.
    const std::string text =
        chunked_head + line + "\r\nhello\r\n" + line + "\r\nhello\r\n0\r\n\r\n";
    snapshot want = parse_ok(text);
    ASSERT_EQ(want.body, "hellohello");
    expect_same_at_every_split(text, want);
  }
}

TEST_F(RequestParser, ValidChunkExtensionsOnTheLastChunkWithTrailers) {
  for (const std::string& line : valid_chunk_lines) {
    parser.reset();
    std::string last = line;
    last[last.find_first_not_of('0')] = '0';  // the same line with size 0
    const std::string text = chunked_head + "2\r\nhi\r\n" + last + "\r\nX-T: v\r\n\r\n";
    snapshot want = parse_ok(text);
    EXPECT_EQ(want.body, "hi") << testing::PrintToString(last);
  }
  const std::string text = chunked_head + "0;a=b;c=\"d\\\"\"\r\nX-T: v\r\n\r\n";
  parser.reset();
  snapshot want = parse_ok(text);
  expect_same_at_every_split(text, want);
}

TEST_F(RequestParser, InvalidChunkExtensionsAre400AtEverySplit) {
  for (const std::string& line : invalid_chunk_lines) {
    const std::string text = chunked_head + line + "\r\nhello\r\n0\r\n\r\n";
    for (std::size_t at = chunked_head.size(); at <= text.size(); ++at) {
      parser.reset();
      fed r = feed_pieces(
          parser, {std::string_view(text).substr(0, at), std::string_view(text).substr(at)});
      ASSERT_EQ(r.last, event::error) << testing::PrintToString(line) << " split at " << at;
      ASSERT_EQ(parser.error_status(), 400) << testing::PrintToString(line) << " split at " << at;
    }
    // And as the second chunk, after a chunk's data in the same piece.
    parser.reset();
    EXPECT_EQ(status_of(chunked_head + "1\r\na\r\n" + line + "\r\nhello\r\n0\r\n\r\n"), 400)
        << testing::PrintToString(line);
  }
}

TEST_F(RequestParser, ChunkExtensionBytesUpToTheLimitAreAccepted) {
  // Counted from the end of the size to the CR: ";abcdefghi" is 10 bytes.
  lim.max_chunk_extension_bytes = 10;
  EXPECT_EQ(status_of(chunked_head + "5;abcdefghi\r\nhello\r\n0\r\n\r\n"), 0);
  parser.reset();
  EXPECT_EQ(status_of(chunked_head + "5;abcdefghij\r\nhello\r\n0\r\n\r\n"), 413);
  EXPECT_STREQ(parser.error_reason().data(), "chunk extensions too large");
}

TEST_F(RequestParser, ChunkExtensionBytesAreSummedOverTheChunksOfARequest) {
  lim.max_chunk_extension_bytes = 10;
  // 5 + 5 bytes: at the limit; one more on the last chunk is past it.
  EXPECT_EQ(status_of(chunked_head + "1;abcd\r\na\r\n1 ;bcd\r\nb\r\n0\r\n\r\n"), 0);
  parser.reset();
  EXPECT_EQ(status_of(chunked_head + "1;abcd\r\na\r\n1 ;bcd\r\nb\r\n0;e\r\n\r\n"), 413);
}

TEST_F(RequestParser, TheChunkExtensionLimitIsPerRequest) {
  lim.max_chunk_extension_bytes = 10;
  const std::string one = chunked_head + "1;abcdefgh\r\na\r\n0\r\n\r\n";  // 9 bytes
  const std::string two = one + one;
  fed r = feed_all(parser, two);
  ASSERT_EQ(r.last, event::message_complete) << parser.error_reason();
  parser.reset();
  r = feed_all(parser, std::string_view(two).substr(one.size()));
  EXPECT_EQ(r.last, event::message_complete) << parser.error_reason();
}

TEST_F(RequestParser, AZeroChunkExtensionLimitRefusesEveryExtension) {
  lim.max_chunk_extension_bytes = 0;
  EXPECT_EQ(status_of(chunked_head + "5;a\r\nhello\r\n0\r\n\r\n"), 413);
  parser.reset();
  EXPECT_EQ(status_of(chunked_head + "5 ;a\r\nhello\r\n0\r\n\r\n"), 413);
  parser.reset();
  EXPECT_EQ(status_of(chunked_head + "5\r\nhello\r\n0\r\n\r\n"), 0);
}

TEST_F(RequestParser, AOneMebibyteChunkExtensionIs413BeforeItEnds) {
  // The default limit; the extension arrives as a connection reads it, 16 KiB at a time.
  const std::string text = chunked_head + "5;a=\"" + std::string(1024 * 1024, 'x');
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < text.size(); i += 16 * 1024)
    pieces.push_back(std::string_view(text).substr(i, 16 * 1024));
  fed r = feed_pieces(parser, pieces);
  EXPECT_EQ(r.last, event::error);
  EXPECT_EQ(parser.error_status(), 413);
  EXPECT_LE(r.consumed, chunked_head.size() + 5 * 1024) << "refused within the first pieces";
  // The default is 4 KiB.
  parser.reset();
  EXPECT_EQ(status_of(chunked_head + "5;" + std::string(4095, 'x') + "\r\nhello\r\n0\r\n\r\n"), 0);
  parser.reset();
  EXPECT_EQ(status_of(chunked_head + "5;" + std::string(4096, 'x') + "\r\nhello\r\n0\r\n\r\n"),
            413);
}

TEST_F(RequestParser, TrailerFieldsCountAgainstMaxHeaderCount) {
  lim.max_header_count = 4;  // Host and Transfer-Encoding, then two trailers
  EXPECT_EQ(status_of(chunked_head + "1\r\na\r\n0\r\nA: 1\r\nB: 2\r\n\r\n"), 0);
  parser.reset();
  EXPECT_EQ(status_of(chunked_head + "1\r\na\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), 431);
}

// ---- The request line's separators (RFC 9112 section 3) ------------------------------------

TEST_F(RequestParser, RunsOfSpacesInTheRequestLineAre400) {
  // The grammar has one SP; RFC 9112 lets a recipient split on whitespace runs instead, but a
  // proxy in front that reads the line otherwise could be smuggled past: this server refuses.
  // After empty lines too, which the parser checks another way.
  for (std::string_view line :
       {"GET  / HTTP/1.1", "GET /  HTTP/1.1", "GET   /   HTTP/1.1", "GET \t/ HTTP/1.1",
        "GET / \tHTTP/1.1", "\r\nGET  / HTTP/1.1", "\r\n\r\nGET /  HTTP/1.1", "OPTIONS  * HTTP/1.1",
        "GET http://h/a  HTTP/1.1"}) {
    const std::string text = std::string(line) + "\r\nHost: h\r\n\r\n";
    for (std::size_t at = 0; at <= text.size(); ++at) {
      parser.reset();
      fed r = feed_pieces(
          parser, {std::string_view(text).substr(0, at), std::string_view(text).substr(at)});
      EXPECT_EQ(r.last, event::error) << testing::PrintToString(line) << " split at " << at;
      EXPECT_EQ(parser.error_status(), 400) << testing::PrintToString(line) << " split at " << at;
    }
  }
}

TEST_F(RequestParser, OneSpaceBetweenRequestLinePartsAndSpacesInFieldValuesAreFine) {
  for (std::string_view text : {"GET /a HTTP/1.1\r\nHost: h\r\nX:  two  spaces  \r\n\r\n",
                                "\r\nGET /a HTTP/1.1\r\nHost: h\r\nX:  two  spaces  \r\n\r\n",
                                "\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\nX:  two  spaces  \r\n\r\n",
                                "OPTIONS * HTTP/1.0\r\nX:  two  spaces  \r\n\r\n"}) {
    SCOPED_TRACE(testing::PrintToString(std::string(text)));
    parser.reset();
    snapshot want = parse_ok(text);
    EXPECT_EQ(want.headers.back().second, "two  spaces");
    expect_same_at_every_split(text, want);
  }
}

}  // namespace
}  // namespace lameduck::http1
