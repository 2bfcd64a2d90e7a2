// HTTP/1.1 behaviour over real sockets, byte for byte, against lameduck-test-server: keep-alive
// and Connection: close, HTTP/1.0, pipelining, HEAD, chunked responses, Expect: 100-continue,
// the Date header, failing handlers and the connection counts.

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <regex>
#include <thread>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;

const std::string hello = "Hello, World!\n";

// What /counts says, as numbers per state name.
std::map<std::string, std::string> counts_of(raw_client& c) {
  c.send("GET /counts HTTP/1.1\r\nHost: t\r\n\r\n");
  return key_values(body_of(c.read_response()));
}

// --- keep-alive and closing -----------------------------------------------------------------

TEST(Http, AnswersAPlainGetOverARawSocket) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), hello);
  EXPECT_EQ(header_of(r, "Content-Length"), "14");
  EXPECT_EQ(header_of(r, "Connection"), "");
}

TEST(Http, SendsAWriteMadeOnAnotherThreadBeforeAnEndMadeAfterItOnTheLoop) {
  auto server = start_test_server();
  auto r = get_once(server.port(), "/write-there-end-here");
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "written on another thread\n") << r;
}

TEST(Http, KeepsAnHttp11ConnectionOpenForManyRequests) {
  auto server = start_test_server();
  raw_client c(server.port());
  std::string peer;
  for (int i = 0; i < 20; ++i) {
    c.send("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.read_response();
    ASSERT_EQ(status_of(r), 200) << r;
    if (i == 0) peer = body_of(r);
    EXPECT_EQ(body_of(r), peer) << "request " << i << " came from another connection";
  }
  EXPECT_FALSE(c.readable_within(100ms)) << "the server closed or sent something unasked";
}

TEST(Http, ClosesAfterTheResponseWhenTheClientSendsConnectionClose) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), hello);
  EXPECT_EQ(header_of(r, "Connection"), "close");
  EXPECT_TRUE(c.closed_within(5s));
  EXPECT_FALSE(c.was_reset());
}

TEST(Http, IgnoresRequestsPipelinedAfterConnectionClose) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
  auto all = c.read_until_close(5s);
  EXPECT_EQ(status_of(all), 200);
  EXPECT_EQ(body_of(all), hello) << "the request after Connection: close was answered: " << all;
  EXPECT_FALSE(c.was_reset());
}

TEST(Http, AnswersAClientThatHalfClosedAfterItsRequestAndThenCloses) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  c.shutdown_write();  // its end of stream may reach the server with the request
  std::string r = c.read_until_close(5s);  // not only after the 60 s idle timeout
  EXPECT_EQ(body_of(r), hello);
  EXPECT_FALSE(c.was_reset());
}

TEST(Http, ClosesAfterTheResponseWhenTheHandlerSetsConnectionClose) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), "bye\n");
  EXPECT_EQ(header_of(r, "Connection"), "close");
  EXPECT_TRUE(c.closed_within(5s));
  EXPECT_FALSE(c.was_reset());
}

TEST(Http, ClosesAnHttp10ConnectionWithoutKeepAliveAfterTheResponse) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET / HTTP/1.0\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(body_of(r), hello);
  EXPECT_EQ(header_of(r, "Connection"), "close");
  EXPECT_TRUE(c.closed_within(5s));
  EXPECT_FALSE(c.was_reset());
}

TEST(Http, KeepsAnHttp10ConnectionOpenWithConnectionKeepAlive) {
  auto server = start_test_server();
  raw_client c(server.port());
  std::string peer;
  for (int i = 0; i < 3; ++i) {
    c.send("GET /peer HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto r = c.read_response();
    ASSERT_EQ(status_of(r), 200) << r;
    EXPECT_EQ(header_of(r, "Connection"), "keep-alive");
    if (i == 0) peer = body_of(r);
    EXPECT_EQ(body_of(r), peer);
  }
  // The last one without keep-alive closes it.
  c.send("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
  EXPECT_TRUE(c.closed_within(5s));
}

TEST(Http, DelimitsAStreamedResponseToHttp10ByClosingTheConnection) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /stream?chunks=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto all = c.read_until_close(5s);
  EXPECT_EQ(status_of(all), 200);
  EXPECT_EQ(header_of(all, "Transfer-Encoding"), "");
  EXPECT_EQ(header_of(all, "Content-Length"), "");
  EXPECT_EQ(header_of(all, "Connection"), "close");
  EXPECT_EQ(all.substr(all.find("\r\n\r\n") + 4), "piece 0\npiece 1\npiece 2\n");
}

// --- pipelining ------------------------------------------------------------------------------

TEST(Http, AnswersPipelinedRequestsInOrderEvenWhenTheFirstIsSlow) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "GET /delay?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nquack"
      "GET /stream?chunks=2 HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  auto r3 = c.read_response();
  auto r4 = c.read_response();
  auto r5 = c.read_head();
  auto r6 = c.read_response();
  EXPECT_EQ(body_of(r1), "waited\n");
  EXPECT_EQ(body_of(r2), hello);
  EXPECT_EQ(body_of(r3), "quack");
  EXPECT_EQ(body_of(r4), "piece 0\npiece 1\n");
  EXPECT_EQ(status_of(r5), 200);
  EXPECT_EQ(header_of(r5, "Content-Length"), "14");
  EXPECT_EQ(status_of(r6), 200);
  EXPECT_EQ(body_of(r6).rfind("127.0.0.1:", 0), 0u) << r6;
}

TEST(Http, AnswersPipelinedRequestsSentOneByteAtATime) {
  auto server = start_test_server();
  raw_client c(server.port());
  std::string requests =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  for (char ch : requests)
    c.send(std::string_view(&ch, 1));
  EXPECT_EQ(body_of(c.read_response()), "abcde");
  EXPECT_EQ(body_of(c.read_response()), hello);
}

TEST(Http, AnswersTheRequestsBeforeABadOneInAPipelineAndThenCloses) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET / HTTP/1.1\r\nHost x\r\n\r\n"
      "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r1 = c.read_response();
  EXPECT_EQ(body_of(r1), hello);
  auto rest = c.read_until_close(5s);
  EXPECT_EQ(status_of(rest), 400) << rest;
  EXPECT_EQ(header_of(rest, "Connection"), "close");
  EXPECT_EQ(rest.find("127.0.0.1:"), std::string::npos) << "answered a request after a bad one";
  EXPECT_FALSE(c.was_reset());
}

TEST(Http, AnswersThousandsOfPipelinedRequestsInOrder) {
  auto server = start_test_server();
  raw_client c(server.port());
  constexpr int n = 3000;
  std::string burst;
  for (int i = 0; i < n; ++i) {
    auto body = std::to_string(i);
    burst += "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n\r\n" + body;
  }
  // Far more than a socket buffer each way: send from another thread while this one reads,
  // as a pipelining client must.
  std::thread sender([&] { c.send(burst); });
  int wrong = 0;
  for (int i = 0; i < n; ++i) {
    auto r = c.read_response(20s);
    if (body_of(r) != std::to_string(i) && wrong++ == 0) {
      ADD_FAILURE() << "response " << i << " is " << r;
    }
  }
  sender.join();
  EXPECT_EQ(wrong, 0);
}

TEST(Http, AcceptsAHeadLargerThanTheReadBufferWithinTheLimits) {
  auto server = start_test_server();
  raw_client c(server.port());
  // A 7000-byte request line and 15000 bytes of fields: within the default limits (8 KiB,
  // 16 KiB), together more than one read buffer (16 KiB).
  std::string target = "/headers?" + std::string(7000 - 9, 'q');
  c.send("GET " + target + " HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(15000, 'b') +
         "\r\nX-After: yes\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200) << r.substr(0, 200);
  EXPECT_NE(body_of(r).find("X-Big: " + std::string(15000, 'b') + "\n"), std::string::npos);
  EXPECT_NE(body_of(r).find("X-After: yes\n"), std::string::npos);
}

TEST(Http, AcceptsAChunkedBodyWithTrailerFields) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nquack\r\n1;ext=1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), "quack!");
  EXPECT_EQ(body_of(c.read_response()), hello);
}

TEST(Http, KeepsServingAfterAClientLeavesDuringAStreamedResponse) {
  auto server = start_test_server({"--threads", "1"});
  {
    raw_client c(server.port());
    c.send("GET /stream?chunks=50&interval_ms=5 HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(status_of(c.read_head()), 200);
  }  // gone with 49 pieces still to come
  raw_client probe(server.port());
  EXPECT_TRUE(eventually([&] { return counts_of(probe)["active"] == "1"; }, 5s))
      << "the abandoned stream's connection is still there";
  EXPECT_EQ(body_of(get_once(server.port())), hello);
}

TEST(Http, KeepsServingAfterAClientLeavesBeforeADelayedAnswer) {
  auto server = start_test_server();
  {
    raw_client c(server.port());
    c.send("GET /delay?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n");
  }  // gone before the answer
  // Answered after the first one's answer was sent to a closed connection.
  auto r = get_once(server.port(), "/delay?ms=300");
  EXPECT_EQ(body_of(r), "waited\n");
  EXPECT_EQ(body_of(get_once(server.port())), hello);
}

// --- HEAD, chunked responses, Date -----------------------------------------------------------

TEST(Http, AnswersHeadWithTheHeadOfGetAndNoBody) {
  auto server = start_test_server();
  raw_client c(server.port());
  // The GET right behind proves that no body bytes follow the HEAD's head.
  c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\n");
  auto all = c.read_until_close(5s);
  auto head_end = all.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << all;
  auto head = all.substr(0, head_end + 4);
  EXPECT_EQ(status_of(head), 200);
  EXPECT_EQ(header_of(head, "Content-Length"), "14");
  EXPECT_EQ(all.substr(head_end + 4, 17), "HTTP/1.1 200 OK\r\n") << all;
  EXPECT_EQ(body_of(all.substr(head_end + 4)), "bye\n");
}

TEST(Http, AnswersHeadOfAStreamedResponseWithoutChunks) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("HEAD /stream?chunks=3 HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\n");
  auto all = c.read_until_close(5s);
  auto head_end = all.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << all;
  EXPECT_EQ(status_of(all), 200);
  EXPECT_EQ(all.substr(head_end + 4, 17), "HTTP/1.1 200 OK\r\n") << all;
}

TEST(Http, FramesAStreamedResponseInChunksByteForByte) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /stream?chunks=3&interval_ms=5 HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  static const std::regex head(
      "HTTP/1\\.1 200 OK\r\n"
      "Date: [A-Za-z]{3}, \\d\\d [A-Za-z]{3} \\d{4} \\d\\d:\\d\\d:\\d\\d GMT\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n");
  auto head_end = r.find("\r\n\r\n") + 4;
  EXPECT_TRUE(std::regex_match(r.substr(0, head_end), head)) << r;
  EXPECT_EQ(r.substr(head_end),
            "8\r\npiece 0\n\r\n"
            "8\r\npiece 1\n\r\n"
            "8\r\npiece 2\n\r\n"
            "0\r\n\r\n");
  // The connection is still usable: the chunked body ended exactly where it said.
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
}

TEST(Http, StreamsAResponseWithADeclaredLengthWithoutChunks) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /stream?chunks=3&interval_ms=5&declared=24 HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(header_of(r, "Content-Length"), "24") << r;
  EXPECT_EQ(header_of(r, "Transfer-Encoding"), "") << r;
  EXPECT_EQ(body_of(r), "piece 0\npiece 1\npiece 2\n");
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
}

TEST(Http, ClosesTheConnectionWhenAStreamFallsShortOfItsDeclaredLength) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /stream?chunks=3&declared=100 HTTP/1.1\r\nHost: x\r\n\r\n");
  // The client cannot find the end of a body that never comes: only the close tells it.
  auto all = c.read_until_close(5s);
  EXPECT_EQ(header_of(all, "Content-Length"), "100") << all;
  EXPECT_EQ(all.substr(all.find("\r\n\r\n") + 4), "piece 0\npiece 1\npiece 2\n");
}

TEST(Http, SendsAWellFormedCurrentDateHeader) {
  auto server = start_test_server();
  auto before = std::time(nullptr);
  auto r = get_once(server.port());
  auto after = std::time(nullptr);
  auto date = header_of(r, "Date");
  static const std::regex form(
      "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d\\d "
      "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \\d{4} \\d\\d:\\d\\d:\\d\\d GMT");
  ASSERT_TRUE(std::regex_match(date, form)) << date;
  std::tm tm{};
  ASSERT_NE(::strptime(date.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm), nullptr);
  auto when = ::timegm(&tm);
  EXPECT_GE(when, before - 1);
  EXPECT_LE(when, after + 1);
}

TEST(Http, RefreshesTheDateHeaderAsTheSecondsPass) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  auto first = header_of(c.read_response(), "Date");
  std::string now = first;
  // Requests on one connection until the clock ticks: it must within about a second.
  auto deadline = clock::now() + 3s;
  while (now == first && clock::now() < deadline) {
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    now = header_of(c.read_response(), "Date");
  }
  ASSERT_NE(now, first) << "the Date header did not change in 3 s";
  std::tm a{}, b{};
  ::strptime(first.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &a);
  ::strptime(now.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &b);
  EXPECT_EQ(::timegm(&b) - ::timegm(&a), 1) << first << " then " << now;
}

// --- Expect: 100-continue --------------------------------------------------------------------

TEST(Http, SendsContinueAfterTheHeadAndBeforeReadingTheBody) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n");
  EXPECT_FALSE(c.readable_within(300ms)) << "answered before the head was complete";
  c.send("\r\n");
  auto interim = c.read_response(5s);  // the body is not sent yet
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("quack");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "quack");
}

TEST(Http, SendsContinueForAChunkedUpload) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: "
      "chunked\r\n\r\n");
  EXPECT_EQ(c.read_response(5s), "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("5\r\nquack\r\n0\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), "quack");
}

TEST(Http, SendsNoContinueWhenTheBodyCameWithTheHead) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nquack");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "quack");
}

TEST(Http, SendsNoContinueWhenThereIsNoBody) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), hello);
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
  r = c.read_response();
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "");
}

TEST(Http, SendsNoContinueWhenTheServerAnswersFirstWithAnError) {
  auto server = start_test_server({"--max-body-bytes", "100"});
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n");
  auto all = c.read_until_close(5s);
  EXPECT_EQ(status_of(all), 413) << all;
  EXPECT_EQ(all.find("100 Continue"), std::string::npos) << all;
}

TEST(Http, RejectsAnExpectationOtherThanContinueWith417) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 5\r\n\r\nquack");
  auto all = c.read_until_close(5s);
  EXPECT_EQ(status_of(all), 417) << all;
}

// --- failing handlers ------------------------------------------------------------------------

TEST(Http, AnswersAThrowingHandlerWith500AndKeepsServing) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /throw HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 500) << r;
  EXPECT_EQ(body_of(r), "Internal Server Error\n");
  // The same connection goes on, and so do new ones.
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
  EXPECT_EQ(body_of(get_once(server.port())), hello);
  auto log = server.error_output();
  auto first = log.find("thrown on purpose");
  ASSERT_NE(first, std::string::npos) << "no log line for the throwing handler: " << log;
  EXPECT_EQ(log.find("thrown on purpose", first + 1), std::string::npos) << "logged twice: " << log;
}

TEST(Http, AnswersAResponseDroppedByItsHandlerWith500) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 500) << r;
  EXPECT_EQ(body_of(r), "Internal Server Error\n");
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
}

TEST(Http, AnswersManyThrowingHandlersInARowAndStaysUp) {
  auto server = start_test_server();
  raw_client c(server.port());
  std::string burst;
  for (int i = 0; i < 50; ++i)
    burst += "GET /throw HTTP/1.1\r\nHost: x\r\n\r\n";
  c.send(burst);
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(status_of(c.read_response()), 500) << "response " << i;
  EXPECT_EQ(body_of(get_once(server.port())), hello);
}

TEST(Http, AnswersAnUnknownPathWith404AndAWrongMethodWith405) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response()), 404);
  c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 405);
  EXPECT_NE(header_of(r, "Allow").find("GET"), std::string::npos) << r;
}

// --- connection counts -----------------------------------------------------------------------
// One loop thread: the /counts request is handled on the loop that owns the other connection,
// after what that loop already had to do, so the counts are exact without waiting.

TEST(Http, CountsAKeepAliveConnectionBetweenRequestsAsIdle) {
  auto server = start_test_server({"--threads", "1"});
  raw_client idle(server.port());
  idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(body_of(idle.read_response()), hello);
  raw_client probe(server.port());
  auto counts = counts_of(probe);
  EXPECT_EQ(counts["idle"], "1");
  EXPECT_EQ(counts["active"], "1");  // the probe itself
  EXPECT_EQ(counts["fresh"], "0");
}

TEST(Http, CountsAConnectionWhoseHandlerIsWorkingAsActive) {
  auto server = start_test_server({"--threads", "1"});
  raw_client busy(server.port());
  busy.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(body_of(busy.read_response()), hello);
  busy.send("GET /delay?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
  raw_client probe(server.port());
  auto counts = counts_of(probe);
  EXPECT_EQ(counts["active"], "2");
  EXPECT_EQ(counts["idle"], "0");
}

TEST(Http, CountsAConnectionWithNoRequestYetAsFresh) {
  auto server = start_test_server({"--threads", "1"});
  raw_client silent(server.port());
  raw_client probe(server.port());
  // The probe connected after the silent one, so the loop has accepted both by the time it
  // reads the probe's request.
  auto counts = counts_of(probe);
  EXPECT_EQ(counts["fresh"], "1");
  EXPECT_EQ(counts["active"], "1");
}

TEST(Http, CountsAConnectionTheServerIsClosingAsClosing) {
  auto server = start_test_server({"--threads", "1"});
  raw_client closing(server.port());
  closing.send("GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(closing.read_response()), "bye\n");
  raw_client probe(server.port());
  auto counts = counts_of(probe);
  // Half-closed by the server, waiting (lingering) for the client to close its side.
  EXPECT_EQ(counts["closing"], "1");
  EXPECT_EQ(counts["active"], "1");
}

TEST(Http, CountsEveryClosedConnection) {
  auto server = start_test_server({"--threads", "1"});
  for (int i = 0; i < 3; ++i) {
    raw_client c(server.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(c.closed_within(5s));
  }  // each client closes its side: the server's linger ends at once
  raw_client probe(server.port());
  ASSERT_TRUE(eventually([&] { return counts_of(probe)["closed"] == "3"; }, 5s))
      << "closed: " << counts_of(probe)["closed"];
  auto counts = counts_of(probe);
  EXPECT_EQ(counts["closing"], "0");
  EXPECT_EQ(counts["active"], "1");
}

}  // namespace
}  // namespace lameduck::testing
