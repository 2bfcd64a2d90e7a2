// The response writer from memory: status lines and reason phrases, the header block for each
// body framing (Content-Length, chunked, until close, none), Connection for HTTP/1.0 and 1.1,
// chunks, error responses, and the Date value (IMF-fixdate, RFC 9110 section 5.6.7, formatted
// once a second per thread).
//
// The writer is told the framing; the connection decides it. The last part checks those
// decisions and the response handle's header checks on the wire, through a connection in
// memory (in_memory.hpp: a test stream, no socket, no thread): HEAD keeps its head (with
// Content-Length) and drops the body; 1xx, 204 and 304 get no body framing; streamed bodies
// are chunked for HTTP/1.1 and delimited by the close for HTTP/1.0; no header field can be
// injected.

#include "http1/response_writer.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "in_memory.hpp"

#include <array>
#include <chrono>
#include <clocale>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <lameduck/request.hpp>
#include <lameduck/response.hpp>

namespace lameduck::http1 {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;

// The Date line of a head, for tests that compare the rest byte for byte.
constexpr std::string_view date_placeholder = "<date>";

// Writes a head and replaces its Date value with <date>; the value must be http_date()'s.
std::string head_of(const response_head& head) {
  std::string out;
  write_head(out, head);
  auto at = out.find("\r\nDate: ");
  EXPECT_NE(at, std::string::npos) << out;
  if (at == std::string::npos) return out;
  at += 8;
  auto end = out.find("\r\n", at);
  std::string_view date(out.data() + at, end - at);
  EXPECT_EQ(date.size(), 29u) << date;
  out.replace(at, end - at, date_placeholder);
  return out;
}

// RFC 9110 section 5.6.7, formatted here without the C library's locale-dependent names.
std::string imf_fixdate(std::time_t t) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return text;
}

const std::regex imf_fixdate_shape(
    "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    "[0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT");

// ---- Reason phrases and status lines --------------------------------------------------------

const std::pair<int, std::string_view> known_reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

TEST(ReasonPhrase, KnownStatusesHaveTheirRfc9110Phrases) {
  for (const auto& [status, reason] : known_reasons)
    EXPECT_EQ(reason_phrase(status), reason) << status;
}

TEST(ReasonPhrase, OtherStatusesAreUnknown) {
  for (int status : {0, -1, 99, 102, 199, 299, 418, 499, 599, 600, 999, 1000}) {
    EXPECT_EQ(reason_phrase(status), "Unknown") << status;
  }
}

TEST(WriteHead, StatusLineIsHttp11StatusAndReason) {
  for (const auto& [status, reason] : known_reasons) {
    response_head head;
    head.status = status;
    std::string out;
    write_head(out, head);
    EXPECT_EQ(out.substr(0, out.find("\r\n")),
              "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason));
  }
}

TEST(WriteHead, StatusWithoutAKnownPhraseSaysUnknown) {
  response_head head;
  head.status = 299;
  EXPECT_TRUE(head_of(head).starts_with("HTTP/1.1 299 Unknown\r\n"));
}

TEST(WriteHead, StatusLineSaysHttp11ToAnHttp10ClientToo) {
  // RFC 9110 section 6.2: a server sends its own version; 1.0 clients read 1.1 responses.
  response_head head;
  head.keep_alive_1_0 = true;
  EXPECT_TRUE(head_of(head).starts_with("HTTP/1.1 200 OK\r\n"));
}

// ---- Header block and framing ---------------------------------------------------------------

TEST(WriteHead, DefaultHeadIs200WithDateAndContentLengthZero) {
  EXPECT_EQ(head_of(response_head{}),
            "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 0\r\n\r\n");
}

TEST(WriteHead, ContentLengthFramingSaysTheLength) {
  response_head head;
  head.content_length = 1234;
  EXPECT_EQ(head_of(head), "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 1234\r\n\r\n");
  head.content_length = std::numeric_limits<std::uint64_t>::max();
  EXPECT_NE(head_of(head).find("\r\nContent-Length: 18446744073709551615\r\n"), std::string::npos);
}

TEST(WriteHead, ChunkedFramingSaysTransferEncodingAndNoLength) {
  response_head head;
  head.body_framing = framing::chunked;
  head.content_length = 99;  // ignored
  EXPECT_EQ(head_of(head), "HTTP/1.1 200 OK\r\nDate: <date>\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(WriteHead, UntilCloseFramingSaysNeitherLengthNorTransferEncoding) {
  response_head head;
  head.body_framing = framing::until_close;
  head.content_length = 99;
  head.close = true;
  EXPECT_EQ(head_of(head), "HTTP/1.1 200 OK\r\nDate: <date>\r\nConnection: close\r\n\r\n");
}

TEST(WriteHead, NoBodyFramingSaysNeitherLengthNorTransferEncoding) {
  for (int status : {100, 101, 204, 304}) {
    response_head head;
    head.status = status;
    head.body_framing = framing::none;
    head.content_length = 5;
    std::string out = head_of(head);
    EXPECT_EQ(out, "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) +
                       "\r\nDate: <date>\r\n\r\n");
  }
}

TEST(WriteHead, StatusForbidsBodyFor1xx204And304Only) {
  for (int status : {100, 101, 103, 150, 199, 204, 304})
    EXPECT_TRUE(status_forbids_body(status)) << status;
  for (int status : {99, 200, 201, 203, 205, 206, 300, 303, 400, 404, 500}) {
    EXPECT_FALSE(status_forbids_body(status)) << status;
  }
}

TEST(WriteHead, HeadForAHeadRequestIsTheHeadAloneWithTheFullContentLength) {
  // The connection writes the head a GET would get and then no body (RFC 9110 section 9.3.2).
  response_head head;
  head.content_length = 11;
  std::string out;
  write_head(out, head);
  EXPECT_TRUE(out.ends_with("\r\nContent-Length: 11\r\n\r\n")) << out;
  EXPECT_EQ(out.find("\r\n\r\n"), out.size() - 4);
}

TEST(WriteHead, CloseSaysConnectionClose) {
  response_head head;
  head.close = true;
  EXPECT_EQ(head_of(head),
            "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(WriteHead, KeepAliveToAnHttp10ClientSaysConnectionKeepAlive) {
  response_head head;
  head.keep_alive_1_0 = true;
  EXPECT_EQ(
      head_of(head),
      "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
}

TEST(WriteHead, CloseWinsOverKeepAliveForAnHttp10Client) {
  response_head head;
  head.keep_alive_1_0 = true;
  head.close = true;
  std::string out = head_of(head);
  EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(out.find("keep-alive"), std::string::npos);
}

TEST(WriteHead, KeepAliveForAnHttp11ClientSaysNothing) {
  EXPECT_EQ(head_of(response_head{}).find("Connection"), std::string::npos);
}

TEST(WriteHead, HandlerFieldsComeAfterTheServersAndEndTheBlock) {
  response_head head;
  head.status = 201;
  head.content_length = 2;
  head.close = true;
  head.fields = "Content-Type: text/plain\r\nX-A: 1\r\n";
  EXPECT_EQ(head_of(head),
            "HTTP/1.1 201 Created\r\nDate: <date>\r\nContent-Length: 2\r\nConnection: close\r\n"
            "Content-Type: text/plain\r\nX-A: 1\r\n\r\n");
}

TEST(WriteHead, AppendsToWhatIsAlreadyInTheBuffer) {
  std::string out = "HTTP/1.1 100 Continue\r\n\r\n";
  write_head(out, response_head{});
  EXPECT_TRUE(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
}

TEST(WriteHead, DateIsTheCurrentSecondAsAnImfFixdate) {
  for (;;) {
    std::time_t before = std::time(nullptr);
    std::string out;
    write_head(out, response_head{});
    if (std::time(nullptr) != before) continue;  // the clock ticked meanwhile: once more
    EXPECT_NE(out.find("\r\nDate: " + imf_fixdate(before) + "\r\n"), std::string::npos) << out;
    return;
  }
}

// ---- Chunks ---------------------------------------------------------------------------------

TEST(WriteChunk, ChunkIsHexSizeCrlfDataCrlf) {
  std::string out;
  write_chunk(out, "hello");
  EXPECT_EQ(out, "5\r\nhello\r\n");
}

TEST(WriteChunk, SizesAreLowercaseHexWithoutLeadingZeros) {
  const std::pair<std::size_t, std::string> cases[] = {
      {1, "1"}, {10, "a"}, {15, "f"}, {16, "10"}, {255, "ff"}, {4096, "1000"}, {70000, "11170"}};
  for (const auto& [size, hex] : cases) {
    std::string out;
    write_chunk(out, std::string(size, 'x'));
    EXPECT_EQ(out.substr(0, out.find("\r\n")), hex) << size;
    EXPECT_EQ(out.size(), hex.size() + 2 + size + 2);
  }
}

TEST(WriteChunk, EmptyPieceWritesNothingBecauseItWouldEndTheBody) {
  std::string out = "before";
  write_chunk(out, "");
  EXPECT_EQ(out, "before");
}

TEST(WriteChunk, DataThatLooksLikeFramingIsCarriedByItsLength) {
  std::string out;
  write_chunk(out, "0\r\n\r\n");
  EXPECT_EQ(out, "5\r\n0\r\n\r\n\r\n");
}

TEST(WriteChunk, LastChunkIsZeroAndAnEmptyTrailerSection) {
  std::string out;
  write_chunk(out, "ab");
  write_last_chunk(out);
  EXPECT_EQ(out, "2\r\nab\r\n0\r\n\r\n");
}

// ---- Error responses ------------------------------------------------------------------------

TEST(WriteError, IsACompleteTextResponseThatClosesTheConnection) {
  std::string out;
  write_error(out, 400);
  auto date = out.find("Date: ");
  ASSERT_NE(date, std::string::npos);
  out.replace(date + 6, 29, date_placeholder);
  EXPECT_EQ(
      out,
      "HTTP/1.1 400 Bad Request\r\nDate: <date>\r\nContent-Length: 12\r\nConnection: close\r\n"
      "Content-Type: text/plain\r\n\r\nBad Request\n");
}

TEST(WriteError, ContentLengthMatchesTheBodyForEveryStatus) {
  for (int status : {400, 408, 413, 414, 417, 431, 500, 503, 505, 299}) {
    std::string out;
    write_error(out, status);
    auto end = out.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos);
    std::string body = out.substr(end + 4);
    EXPECT_EQ(body, std::string(reason_phrase(status)) + "\n") << status;
    EXPECT_NE(out.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
              std::string::npos)
        << status;
    EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos) << status;
  }
}

// ---- Date -----------------------------------------------------------------------------------

TEST(HttpDate, OracleFormatsTheRfcExample) {
  // The format this file checks against, on RFC 9110's own example.
  EXPECT_EQ(imf_fixdate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_TRUE(std::regex_match(imf_fixdate(784111777), imf_fixdate_shape));
}

// http_date() together with the second it was read in (retried if the clock ticked meanwhile).
std::pair<std::time_t, std::string> date_now() {
  for (;;) {
    std::time_t before = std::time(nullptr);
    std::string text(http_date());
    if (std::time(nullptr) == before) return {before, text};
  }
}

TEST(HttpDate, IsTheCurrentSecondAsAnImfFixdate) {
  auto [now, text] = date_now();
  EXPECT_EQ(text.size(), 29u);
  EXPECT_TRUE(std::regex_match(text, imf_fixdate_shape)) << text;
  EXPECT_EQ(text, imf_fixdate(now));
}

TEST(HttpDate, IsKeptInOneBufferPerThread) {
  std::string_view a = http_date(), b = http_date();
  EXPECT_EQ(a.data(), b.data());
  const char* other = nullptr;
  std::string other_text;
  std::thread([&] {
    other = http_date().data();
    other_text = http_date();
  }).join();
  EXPECT_NE(other, a.data()) << "each thread formats into its own buffer";
  EXPECT_TRUE(std::regex_match(other_text, imf_fixdate_shape)) << other_text;
}

TEST(HttpDate, IsReformattedWhenTheSecondChanges) {
  auto [first_second, first] = date_now();
  // Wait for the wall clock itself to tick (at most a second).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::time(nullptr) == first_second) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the wall clock did not move";
    std::this_thread::yield();
  }
  auto [second_second, second] = date_now();
  EXPECT_GT(second_second, first_second);
  EXPECT_NE(second, first);
  EXPECT_EQ(second, imf_fixdate(second_second));
}

TEST(HttpDate, IsEnglishWhateverTheProgramsLocale) {
  // RFC 9110 section 5.6.7: day and month names are case-sensitive English. A program that
  // calls setlocale(LC_ALL, "") must not make the server send "Di, 06 Nov..." or "lun., ...".
  // A German locale is compiled for the test from the locales package's sources (Debian ships
  // none compiled), into a folder of its own that LOCPATH points at: nothing system-wide moves.
  struct restore_locale {
    std::string saved = std::setlocale(LC_TIME, nullptr);
    ~restore_locale() {
      std::setlocale(LC_TIME, saved.c_str());
      ::unsetenv("LOCPATH");
    }
  } restore;
  const std::string dir = testing::temp_path("locale");
  ::unlink(dir.c_str());
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  auto made = testing::run({"localedef", "-i", "de_DE", "-f", "UTF-8", dir + "/de_DE.UTF-8"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ::setenv("LOCPATH", dir.c_str(), 1);
  ASSERT_NE(std::setlocale(LC_TIME, "de_DE.UTF-8"), nullptr);
  std::array<char, 64> german{};
  std::tm monday{};
  monday.tm_wday = 1;
  std::strftime(german.data(), german.size(), "%a", &monday);
  ASSERT_STREQ(german.data(), "Mo") << "the locale did not take effect";
  std::string text;
  std::thread([&] { text = http_date(); }).join();  // a new thread has nothing cached
  EXPECT_TRUE(std::regex_match(text, imf_fixdate_shape)) << text;
  testing::run({"rm", "-rf", dir});
}

// ---- Through a connection in memory: the framing it chooses, and header checks --------------

using testing::http_response;
using testing::in_memory_server;
using testing::take_response;

constexpr std::string_view get_11 = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
constexpr std::string_view get_11_close = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
constexpr std::string_view head_11 = "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n";
constexpr std::string_view head_11_close =
    "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
constexpr std::string_view get_10 = "GET / HTTP/1.0\r\n\r\n";
constexpr std::string_view get_10_keep_alive = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";

class ResponseOnTheWire : public ::testing::Test {
 protected:
  // Sends bytes on a new connection to a server answering with the test's handler, then the
  // end of stream; everything the server wrote back.
  std::string exchange(std::string_view bytes) {
    if (!server_) server_.emplace(h);
    return server_->round_trip(bytes);
  }
  // A request on its own connection, answered by exactly one response.
  http_response one(std::string_view request, bool head_request = false) {
    std::string wire = exchange(request);
    std::string_view rest = wire;
    http_response r = take_response(rest, head_request);
    EXPECT_EQ(rest, "") << "more than one response";
    return r;
  }

  handler h = [](const request&, response res) { res.send("hello world"); };
  std::optional<in_memory_server> server_;
};

TEST_F(ResponseOnTheWire, SendSetsContentLengthToTheBodySize) {
  http_response r = one(get_11_close);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.field("Content-Length"), "11");
  EXPECT_EQ(r.count("Transfer-Encoding"), 0u);
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(r.count("Date"), 1u);
  EXPECT_TRUE(std::regex_match(r.field("Date").value_or(""), imf_fixdate_shape));
}

TEST_F(ResponseOnTheWire, StatusLineCarriesTheHandlersStatusAndItsReason) {
  h = [](const request&, response res) { res.send(404, "gone"); };
  EXPECT_TRUE(exchange(get_11_close).starts_with("HTTP/1.1 404 Not Found\r\n"));
}

TEST_F(ResponseOnTheWire, HeadGetsTheGetHeadWithItsContentLengthAndNoBody) {
  http_response r = one(head_11_close, true);  // one() fails on any byte after the head
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.field("Content-Length"), "11");
}

TEST_F(ResponseOnTheWire, HeadThenGetOnOneConnectionBothAnswered) {
  std::string wire = exchange(std::string(head_11) + std::string(get_11_close));
  std::string_view rest = wire;
  http_response head = take_response(rest, true);
  http_response get = take_response(rest);
  EXPECT_EQ(head.field("Content-Length"), "11");
  EXPECT_EQ(get.body, "hello world");
  EXPECT_EQ(rest, "");
}

TEST_F(ResponseOnTheWire, HeadOfAStreamedResponseHasTheChunkedHeadAndNoChunks) {
  h = [](const request&, response res) {
    res.write("abc");
    res.write("def");
    res.end();
  };
  http_response r = one(head_11_close, true);
  EXPECT_EQ(r.field("Transfer-Encoding"), "chunked");
  EXPECT_EQ(r.count("Content-Length"), 0u);
}

TEST_F(ResponseOnTheWire, HeadWithADeclaredContentLengthAndNoBodyKeepsTheLength) {
  h = [](const request& req, response res) {
    if (req.method() != "HEAD") return res.send("other");
    res.header("Content-Length", "1234");
    res.end();
  };
  std::string wire = exchange(std::string(head_11) + std::string(get_11_close));
  std::string_view rest = wire;
  http_response head = take_response(rest, true);
  EXPECT_EQ(head.field("Content-Length"), "1234");
  EXPECT_EQ(take_response(rest).body, "other") << "the HEAD response was complete";
  EXPECT_EQ(rest, "");
}

TEST_F(ResponseOnTheWire, AContentLengthFieldFromTheHandlerIsReplacedBySendsBodySize) {
  h = [](const request&, response res) {
    res.header("Content-Length", "999");
    res.send("abc");
  };
  http_response r = one(get_11_close);
  EXPECT_EQ(r.count("Content-Length"), 1u);
  EXPECT_EQ(r.field("Content-Length"), "3");
  EXPECT_EQ(r.body, "abc");
}

TEST_F(ResponseOnTheWire, StreamToAnHttp11ClientIsChunked) {
  h = [](const request&, response res) {
    res.write("hello, ");
    res.write("");  // writes nothing: an empty chunk would end the body
    res.write("world");
    res.end();
  };
  std::string wire = exchange(get_11_close);
  EXPECT_TRUE(wire.ends_with("\r\n\r\n7\r\nhello, \r\n5\r\nworld\r\n0\r\n\r\n")) << wire;
  std::string_view rest = wire;
  http_response r = take_response(rest);
  EXPECT_EQ(r.field("Transfer-Encoding"), "chunked");
  EXPECT_EQ(r.count("Content-Length"), 0u);
  EXPECT_EQ(r.body, "hello, world");
}

TEST_F(ResponseOnTheWire, StreamWithADeclaredContentLengthIsSentAsIs) {
  h = [](const request&, response res) {
    res.header("Content-Length", "10");
    res.write("01234");
    res.write("56789");
    res.end();
  };
  std::string wire = exchange(std::string(get_11) + std::string(get_11_close));
  std::string_view rest = wire;
  http_response first = take_response(rest);
  EXPECT_EQ(first.field("Content-Length"), "10");
  EXPECT_EQ(first.count("Transfer-Encoding"), 0u);
  EXPECT_EQ(first.body, "0123456789");
  EXPECT_EQ(take_response(rest).body, "0123456789") << "the connection was kept";
}

TEST_F(ResponseOnTheWire, StreamToAnHttp10ClientEndsWithTheClose) {
  h = [](const request&, response res) {
    res.write("abc");
    res.write("def");
    res.end();
  };
  // Even asked to keep alive: without a length the close is the only end of the body.
  std::string wire = exchange(std::string(get_10_keep_alive) + std::string(get_10));
  std::string_view rest = wire;
  http_response r = take_response(rest);
  EXPECT_EQ(r.count("Content-Length"), 0u);
  EXPECT_EQ(r.count("Transfer-Encoding"), 0u);
  EXPECT_EQ(r.field("Connection"), "close");
  EXPECT_EQ(r.body, "abcdef") << "the second request is not answered";
}

TEST_F(ResponseOnTheWire, Http11KeepsTheConnectionWithoutSayingSo) {
  std::string wire = exchange(std::string(get_11) + std::string(get_11_close));
  std::string_view rest = wire;
  http_response first = take_response(rest);
  http_response second = take_response(rest);
  EXPECT_EQ(first.count("Connection"), 0u);
  EXPECT_EQ(second.field("Connection"), "close");
  EXPECT_EQ(rest, "");
}

TEST_F(ResponseOnTheWire, Http11ConnectionCloseIsAnsweredWithCloseAndNothingMore) {
  std::string wire = exchange(std::string(get_11_close) + std::string(get_11));
  std::string_view rest = wire;
  EXPECT_EQ(take_response(rest).field("Connection"), "close");
  EXPECT_EQ(rest, "") << "a request after Connection: close is not answered";
}

TEST_F(ResponseOnTheWire, Http10ClosesByDefaultAndSaysSo) {
  std::string wire = exchange(std::string(get_10) + std::string(get_10));
  std::string_view rest = wire;
  http_response r = take_response(rest);
  EXPECT_EQ(r.field("Connection"), "close");
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(rest, "");
}

TEST_F(ResponseOnTheWire, Http10KeepAliveIsConfirmed) {
  std::string wire = exchange(std::string(get_10_keep_alive) + std::string(get_10));
  std::string_view rest = wire;
  http_response first = take_response(rest);
  http_response second = take_response(rest);
  EXPECT_EQ(first.field("Connection"), "keep-alive");
  EXPECT_EQ(second.field("Connection"), "close");
  EXPECT_EQ(rest, "");
}

TEST_F(ResponseOnTheWire, HandlersConnectionCloseClosesAfterTheResponse) {
  h = [](const request&, response res) {
    res.header("Connection", "close");
    res.send("bye");
  };
  std::string wire = exchange(std::string(get_11) + std::string(get_11));
  std::string_view rest = wire;
  http_response r = take_response(rest);
  EXPECT_EQ(r.count("Connection"), 1u);
  EXPECT_EQ(r.field("Connection"), "close");
  EXPECT_EQ(rest, "");
}

TEST_F(ResponseOnTheWire, FieldsTheServerOwnsAreNotTakenFromTheHandler) {
  h = [](const request&, response res) {
    res.header("Date", "yesterday").header("Transfer-Encoding", "gzip").header("X-Own", "kept");
    res.send("x");
  };
  http_response r = one(get_11_close);
  EXPECT_EQ(r.count("Date"), 1u);
  EXPECT_NE(r.field("Date"), "yesterday");
  EXPECT_EQ(r.count("Transfer-Encoding"), 0u);
  EXPECT_EQ(r.field("X-Own"), "kept");
  EXPECT_EQ(r.body, "x");
}

TEST_F(ResponseOnTheWire, NoContentAndNotModifiedHaveNoBodyFramingAndKeepTheConnection) {
  for (int status : {204, 304}) {
    h = [status](const request&, response res) { res.send(status, "dropped body"); };
    server_.reset();
    std::string wire = exchange(std::string(get_11) + std::string(get_11_close));
    std::string_view rest = wire;
    http_response first = take_response(rest);
    EXPECT_EQ(first.status, status);
    EXPECT_EQ(first.count("Content-Length"), 0u) << status;
    EXPECT_EQ(first.count("Transfer-Encoding"), 0u) << status;
    http_response second = take_response(rest);
    EXPECT_EQ(second.status, status) << "the body was dropped and the connection kept";
    EXPECT_EQ(rest, "") << status;
    EXPECT_EQ(wire.find("dropped"), std::string::npos);
  }
}

TEST_F(ResponseOnTheWire, StreamedNoContentHasNoChunks) {
  h = [](const request&, response res) {
    res.status(204);
    res.write("dropped");
    res.end();
  };
  std::string wire = exchange(std::string(get_11) + std::string(get_11_close));
  std::string_view rest = wire;
  http_response first = take_response(rest);
  EXPECT_EQ(first.count("Transfer-Encoding"), 0u);
  EXPECT_EQ(take_response(rest).status, 204);
  EXPECT_EQ(rest, "");
  EXPECT_EQ(wire.find("dropped"), std::string::npos);
}

// Calls res.header(name, value) and says whether it refused the field.
bool refused(response& res, std::string_view name, std::string_view value) {
  try {
    res.header(name, value);
    return false;
  } catch (const std::invalid_argument&) {
    return true;
  }
}

TEST_F(ResponseOnTheWire, HeaderFieldsWithLineBreaksAreRefusedSoNothingCanBeInjected) {
  h = [](const request&, response res) {
    std::string not_refused;
    const std::pair<std::string_view, std::string_view> attempts[] = {
        {"X-A", "v\r\nInjected: 1"},
        {"X-A", "v\nInjected: 1"},
        {"X-A", "v\rInjected: 1"},
        {"X-A", "\r\n\r\nbody"},
        {"X-A\r\nInjected", "1"},
        {"Injected: 1\r\nX-A", "v"},
        {"X-A\n", "v"},
        {"", "v"},
        {"X A", "v"},
        {"X-A:", "v"},
        {"X:A", "v"},
        {"X-A\t", "v"},
    };
    for (const auto& [name, value] : attempts) {
      if (!refused(res, name, value)) {
        not_refused += ::testing::PrintToString(std::string(name)) + "=" +
                       ::testing::PrintToString(std::string(value)) + " ";
      }
    }
    res.send(not_refused.empty() ? "all refused" : "accepted: " + not_refused);
  };
  std::string wire = exchange(get_11_close);
  EXPECT_EQ(wire.find("Injected"), std::string::npos) << wire;
  std::string_view rest = wire;
  EXPECT_EQ(take_response(rest).body, "all refused");
}

TEST_F(ResponseOnTheWire, HeaderValuesWithNulOrOtherControlCharactersAreRefused) {
  // RFC 9110 section 5.5: a field value is visible characters, obs-text, spaces and tabs; CR,
  // LF and NUL are "invalid and dangerous", and our own parser answers 400 to any of them.
  h = [](const request&, response res) {
    std::string not_refused;
    for (std::string_view value : {"a\0b"sv, "a\x01z"sv, "a\x1bz"sv, "a\x7fz"sv, "\x0b"sv}) {
      if (!refused(res, "X-A", value))
        not_refused += ::testing::PrintToString(std::string(value)) + " ";
    }
    res.send(not_refused.empty() ? "all refused" : "accepted: " + not_refused);
  };
  http_response r = one(get_11_close);
  EXPECT_EQ(r.body, "all refused");
}

TEST_F(ResponseOnTheWire, HeaderNamesThatAreNotTokensAreRefused) {
  // RFC 9110 section 5.1: a field name is a token; "X(A)" or "X@A" makes the response invalid.
  h = [](const request&, response res) {
    std::string not_refused;
    for (std::string_view name :
         {"X(A)"sv, "X@A"sv, "X,A"sv, "X\"A\""sv, "X\0A"sv, "X\x7f"sv, "\xc3\x84rger"sv, "X/A"sv}) {
      if (!refused(res, name, "v"))
        not_refused += ::testing::PrintToString(std::string(name)) + " ";
    }
    res.send(not_refused.empty() ? "all refused" : "accepted: " + not_refused);
  };
  http_response r = one(get_11_close);
  EXPECT_EQ(r.body, "all refused");
}

TEST_F(ResponseOnTheWire, HeaderValuesWithSpacesTabsAndObsTextAreSentAsGiven) {
  h = [](const request&, response res) {
    res.header("X-Text", "a b\tc")
        .header("X-Utf8",
                "D\xc3\xbc"
                "ck")
        .header("X-Empty", "");
    res.send("");
  };
  std::string wire = exchange(get_11_close);
  EXPECT_NE(wire.find("\r\nX-Text: a b\tc\r\n"), std::string::npos) << wire;
  EXPECT_NE(wire.find("\r\nX-Utf8: D\xc3\xbc"
                      "ck\r\n"),
            std::string::npos);
  EXPECT_NE(wire.find("\r\nX-Empty: \r\n"), std::string::npos);
}

}  // namespace
}  // namespace lameduck::http1
