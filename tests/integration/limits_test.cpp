// Bad input over the wire and every limit: each gets its status, the connection closes cleanly,
// and the server goes on serving everyone else.

#include <gtest/gtest.h>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

const std::string hello = "Hello, World!\n";

// Over plain TCP and over TLS alike.
class Limits : public over_both_transports {};
INSTANTIATE_TEST_SUITE_P(Transports, Limits, both_transports(), transport_name);

// Sends bytes on a new connection and expects `status`, "Connection: close", and a clean close
// after it; then a fresh connection must still be served.
void expect_rejected(const server_process& server, std::string_view bytes, int status) {
  {
    raw_client c(server.port());
    c.send(bytes);
    auto all = c.read_until_close(5s);
    EXPECT_EQ(status_of(all), status) << all;
    EXPECT_EQ(header_of(all, "Connection"), "close") << all;
    auto head_end = all.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos) << all;
    auto length = header_of(all, "Content-Length");
    ASSERT_FALSE(length.empty()) << all;
    EXPECT_EQ(all.size(), head_end + 4 + std::stoul(length)) << "more than one response: " << all;
    EXPECT_FALSE(c.was_reset()) << "the connection was reset, not closed";
    // The server half-closes and lingers: bytes the client was still sending are read and
    // dropped, not answered with a reset (which could destroy the response before it is read).
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_FALSE(c.reset_within(100ms)) << "bytes sent after the close were answered with a reset";
  }
  auto r = get_once(server.port());
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), hello);
}

// --- malformed and smuggling-shaped requests: 400 --------------------------------------------

TEST_P(Limits, RejectsAMalformedRequestLineWith400) {
  auto server = start_test_server();
  expect_rejected(server, "GARBAGE\r\n\r\n", 400);
}

TEST_P(Limits, RejectsAHeaderLineWithoutAColonWith400) {
  auto server = start_test_server();
  expect_rejected(server, "GET / HTTP/1.1\r\nHost x\r\n\r\n", 400);
}

TEST_P(Limits, RejectsContentLengthWithTransferEncodingWith400) {
  auto server = start_test_server();
  expect_rejected(
      server,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /peer HTTP/1.1\r\nHost: x\r\n\r\n",
      400);
}

TEST_P(Limits, RejectsTransferEncodingBeforeContentLengthWith400) {
  auto server = start_test_server();
  expect_rejected(server,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Length: 5\r\n\r\n0\r\n\r\n",
                  400);
}

TEST_P(Limits, RejectsTwoDifferentContentLengthsWith400) {
  auto server = start_test_server();
  expect_rejected(
      server,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nquack!",
      400);
}

TEST_P(Limits, RejectsAnInvalidChunkSizeWith400) {
  auto server = start_test_server();
  expect_rejected(server,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "zz\r\nquack\r\n0\r\n\r\n",
                  400);
}

TEST_P(Limits, RejectsAnOverflowingChunkSizeWith400) {
  auto server = start_test_server();
  expect_rejected(server,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "1000000000000000000000005\r\nquack\r\n0\r\n\r\n",
                  400);
}

TEST_P(Limits, RejectsATransferEncodingOtherThanChunkedLastWith400) {
  auto server = start_test_server();
  expect_rejected(server,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                  "5\r\nquack\r\n0\r\n\r\n",
                  400);
}

TEST_P(Limits, RejectsObsoleteLineFoldingWith400) {
  auto server = start_test_server();
  expect_rejected(server, "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400);
}

TEST_P(Limits, RejectsBareLineFeedsWith400) {
  auto server = start_test_server();
  expect_rejected(server, "GET / HTTP/1.1\nHost: x\n\n", 400);
}

TEST_P(Limits, RejectsAnHttp11RequestWithoutHostWith400) {
  auto server = start_test_server();
  expect_rejected(server, "GET / HTTP/1.1\r\n\r\n", 400);
}

TEST_P(Limits, RejectsAnInvalidHostWith400) {
  auto server = start_test_server();
  for (std::string_view host : {"a b", "a/b", "user@a", "[::1"}) {
    expect_rejected(server, "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n", 400);
  }
}

TEST_P(Limits, RejectsRunsOfSpacesInTheRequestLineWith400) {
  auto server = start_test_server();
  expect_rejected(server, "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST_P(Limits, RejectsAnInvalidChunkExtensionWith400) {
  auto server = start_test_server();
  expect_rejected(server,
                  "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5;a=\"b\r\nhello\r\n0\r\n\r\n",
                  400);
}

TEST_P(Limits, AcceptsValidChunkExtensions) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;a=b;c=d\r\nhello\r\n1 ;q=\"x\\\"y\"\r\n!\r\n0;e\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "hello!");
}

TEST_P(Limits, RejectsAnEndlessChunkExtensionWith413BeforeItEnds) {
  // CVE-2024-22019's shape: an extension that never ends, 64 KiB of it already past the
  // default limit (4 KiB); answered while it is arriving.
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=" +
         std::string(64 * 1024, 'x'));
  auto all = c.read_until_close(5s);
  EXPECT_EQ(status_of(all), 413) << all;
  EXPECT_FALSE(c.was_reset());
}

TEST_P(Limits, RejectsTransferEncodingInHttp10With400) {
  auto server = start_test_server();
  expect_rejected(
      server, "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nquack\r\n0\r\n\r\n",
      400);
}

// --- size limits: 414, 431, 413 --------------------------------------------------------------

TEST_P(Limits, RejectsARequestLineOverTheLimitWith414) {
  auto server = start_test_server({"--max-request-line", "100"});
  // Exactly at the limit is fine.
  std::string at_limit = "GET /?" + std::string(100 - 6 - 9, 'a') + " HTTP/1.1";
  ASSERT_EQ(at_limit.size(), 100u);
  raw_client c(server.port());
  c.send(at_limit + "\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response()), 200);
  expect_rejected(server, "GET /?" + std::string(200, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414);
}

TEST_P(Limits, RejectsALongTargetWith414BeforeItEnds) {
  auto server = start_test_server({"--max-request-line", "100"});
  raw_client c(server.port());
  // No end of line: the server must not wait for one.
  c.send("GET /" + std::string(1000, 'a'));
  auto all = c.read_until_close(5s);
  EXPECT_EQ(status_of(all), 414) << all;
  EXPECT_FALSE(c.was_reset());
}

TEST_P(Limits, RejectsHeadersOverTheByteLimitWith431) {
  auto server = start_test_server({"--max-header-bytes", "200"});
  expect_rejected(server,
                  "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'b') + "\r\n\r\n", 431);
}

TEST_P(Limits, RejectsMoreHeaderFieldsThanTheLimitWith431) {
  auto server = start_test_server({"--max-header-count", "5"});
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 4; ++i)
    head += "X-" + std::to_string(i) + ": v\r\n";
  raw_client c(server.port());
  c.send(head + "\r\n");  // five fields: at the limit
  EXPECT_EQ(status_of(c.read_response()), 200);
  expect_rejected(server, head + "X-4: v\r\n\r\n", 431);
}

TEST_P(Limits, RejectsAnAnnouncedBodyOverTheLimitWith413WithoutReadingIt) {
  auto server = start_test_server({"--max-body-bytes", "100"});
  // Only the head is sent: the answer must not wait for the body.
  expect_rejected(server, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413);
}

TEST_P(Limits, AcceptsABodyExactlyAtTheLimit) {
  auto server = start_test_server({"--max-body-bytes", "100"});
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b'));
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), std::string(100, 'b'));
}

TEST_P(Limits, RejectsAChunkedBodyThatGrowsOverTheLimitWith413) {
  auto server = start_test_server({"--max-body-bytes", "100"});
  std::string chunks;
  for (int i = 0; i < 3; ++i)
    chunks += "32\r\n" + std::string(50, 'c') + "\r\n";  // 150 bytes
  expect_rejected(
      server,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + "0\r\n\r\n",
      413);
}

TEST_P(Limits, RejectsAChunkedBodyOverTheLimitBeforeItEnds) {
  auto server = start_test_server({"--max-body-bytes", "100"});
  raw_client c(server.port());
  // One chunk that announces more than the limit, and no end: answered while it is arriving.
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" +
         std::string(200, 'c'));
  auto all = c.read_until_close(5s);
  EXPECT_EQ(status_of(all), 413) << all;
  EXPECT_FALSE(c.was_reset());
}

TEST_P(Limits, KeepsOtherConnectionsServedWhileOneIsRejected) {
  auto server = start_test_server({"--max-header-bytes", "200"});
  raw_client good(server.port());
  good.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(body_of(good.read_response()), hello);
  expect_rejected(server,
                  "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'b') + "\r\n\r\n", 431);
  expect_rejected(server, "GARBAGE\r\n\r\n", 400);
  good.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(good.read_response()), hello);
}

// --- connection limit: 503 -------------------------------------------------------------------

TEST_P(Limits, AnswersAConnectionOverTheLimitWith503AndKeepsTheOthers) {
  auto server = start_test_server({"--max-connections", "2"});
  raw_client first(server.port()), second(server.port());
  for (auto* c : {&first, &second}) {
    c->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(body_of(c->read_response()), hello);  // admitted, now idle
  }
  {
    raw_client third(server.port());
    auto all = third.read_until_close(5s);  // answered without sending anything
    EXPECT_EQ(status_of(all), 503) << all;
    EXPECT_EQ(header_of(all, "Connection"), "close") << all;
    EXPECT_FALSE(third.was_reset());
    third.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_FALSE(third.reset_within(100ms)) << "a request after the 503 was answered with a reset";
  }
  for (auto* c : {&first, &second}) {
    c->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(body_of(c->read_response()), hello);
  }
}

TEST_P(Limits, AdmitsANewConnectionOnceAnOpenOneCloses) {
  auto server = start_test_server({"--max-connections", "2"});
  raw_client first(server.port());
  first.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(body_of(first.read_response()), hello);
  {
    raw_client second(server.port());
    second.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_EQ(body_of(second.read_response()), hello);
    ASSERT_TRUE(second.closed_within(5s));
  }
  // The server sees the second one's close asynchronously: retry until its slot is free.
  std::string last;
  EXPECT_TRUE(eventually(
      [&] {
        last = get_once(server.port());
        return status_of(last) == 200;
      },
      5s))
      << last;
}

}  // namespace
}  // namespace lameduck::testing
