// Every timeout over real sockets: header (408), body (408), keep-alive idle (clean close) and
// write (a client that stops reading). Timeouts are short (200-300 ms); every wait for them is
// bounded by a deadline of seconds, so slow (sanitizer) builds pass too.

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::string hello = "Hello, World!\n";

milliseconds since(clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(clock::now() - t);
}

// The server reads the clock once per round of its loop, so its "now" may be a little behind.
// Each lower bound runs from what the client did before the server could start the timeout:
// stamped after, it loses however long the client was not scheduled (a loaded TSan run saw a
// 300 ms header timeout measured as 249 ms from after the TLS client's connect).
constexpr milliseconds clock_slack{20};

// Over plain TCP and over TLS alike.
class Timeouts : public over_both_transports {};
INSTANTIATE_TEST_SUITE_P(Transports, Timeouts, both_transports(), transport_name);

// --- header timeout --------------------------------------------------------------------------

TEST_P(Timeouts, AnswersHalfAHeadWith408AfterTheHeaderTimeoutAndCloses) {
  auto server = start_test_server({"--header-timeout-ms", "200"});
  auto start = clock::now();
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n");
  auto all = c.read_until_close(10s);
  auto took = since(start);
  EXPECT_EQ(status_of(all), 408) << all;
  EXPECT_EQ(header_of(all, "Connection"), "close") << all;
  EXPECT_FALSE(c.was_reset());
  EXPECT_GE(took, 200ms - clock_slack);
}

TEST_P(Timeouts, ClosesAConnectionThatNeverSendsAByteWithoutAnAnswer) {
  auto server = start_test_server({"--header-timeout-ms", "200"});
  auto start = clock::now();
  raw_client c(server.port());
  auto all = c.read_until_close(10s);
  EXPECT_EQ(all, "");
  EXPECT_FALSE(c.was_reset());
  EXPECT_GE(since(start), 200ms - clock_slack);
}

TEST_P(Timeouts, AnswersAHeadTrickledByteByByteWith408AtTheHeaderTimeout) {
  auto server = start_test_server({"--header-timeout-ms", "300"});
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 's') + "\r\n\r\n";
  auto start = clock::now();  // before the connect: the header timeout runs from the accept
  raw_client c(server.port());
  std::size_t sent = 0;
  // One byte every 20 ms would take over 4 s; progress must not extend the header timeout.
  while (sent < head.size() && !c.readable_within(20ms))
    c.send(head.substr(sent++, 1));
  ASSERT_LT(sent, head.size()) << "the whole head went through at one byte per 20 ms";
  auto all = c.read_until_close(10s);
  EXPECT_EQ(status_of(all), 408) << all;
  EXPECT_GE(since(start), 300ms - clock_slack);
}

TEST_P(Timeouts, RunsTheHeaderTimeoutAgainForTheNextRequestOnAConnection) {
  auto server = start_test_server({"--header-timeout-ms", "300", "--idle-timeout-ms", "10000"});
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
  auto start = clock::now();
  c.send("GET / HTTP/1.1\r\nHost: x\r\n");
  auto all = c.read_until_close(10s);
  EXPECT_EQ(status_of(all), 408) << all;
  EXPECT_GE(since(start), 300ms - clock_slack);
}

TEST_P(Timeouts, DoesNotCutASlowHandlerWithTheHeaderOrIdleTimeout) {
  auto server = start_test_server({"--header-timeout-ms", "200", "--idle-timeout-ms", "200"});
  raw_client c(server.port());
  c.send("GET /delay?ms=600 HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response(10s);
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "waited\n");
}

// --- body timeout ----------------------------------------------------------------------------

TEST_P(Timeouts, AnswersHalfABodyWith408AfterTheBodyTimeoutAndCloses) {
  auto server = start_test_server({"--body-timeout-ms", "200"});
  raw_client c(server.port());
  auto start = clock::now();  // before the head: the server may read it before send() returns
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nquack");
  auto all = c.read_until_close(10s);
  EXPECT_EQ(status_of(all), 408) << all;
  EXPECT_EQ(header_of(all, "Connection"), "close") << all;
  EXPECT_FALSE(c.was_reset());
  EXPECT_GE(since(start), 200ms - clock_slack);
}

TEST_P(Timeouts, AnswersAStalledChunkedBodyWith408) {
  auto server = start_test_server({"--body-timeout-ms", "200"});
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nquack\r\n");
  auto all = c.read_until_close(10s);
  EXPECT_EQ(status_of(all), 408) << all;
  EXPECT_FALSE(c.was_reset());
}

TEST_P(Timeouts, LetsABodyArriveSlowerThanTheTimeoutAsLongAsItKeepsComing) {
  auto server = start_test_server({"--body-timeout-ms", "600"});
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n");
  auto start = clock::now();
  // Eight pieces 150 ms apart: the whole body takes twice the timeout, no pause reaches it.
  for (char ch : std::string("abcdefgh")) {
    ASSERT_FALSE(c.readable_within(150ms)) << "answered before the body was complete";
    c.send(std::string_view(&ch, 1));
  }
  auto r = c.read_response(10s);
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "abcdefgh");
  EXPECT_GE(since(start), 1000ms);
}

// --- least data rates ------------------------------------------------------------------------

TEST_P(Timeouts, AnswersABodyTrickledBelowTheLeastRateWith408OnceTheGraceHasPassed) {
  // No pause comes near the body timeout: only the rate can end this body.
  auto server = start_test_server(
      {"--body-timeout-ms", "20000", "--min-body-rate", "1000", "--min-body-rate-grace-ms", "300"});
  raw_client c(server.port());
  auto start = clock::now();  // before the head, whose arrival starts the grace
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
  // A byte every 50 ms: 20 bytes a second, a fiftieth of the least rate.
  while (!c.readable_within(50ms) && since(start) < 10s)
    c.send("x");
  auto all = c.read_until_close(10s);
  EXPECT_EQ(status_of(all), 408) << all;
  EXPECT_EQ(header_of(all, "Connection"), "close") << all;
  EXPECT_FALSE(c.was_reset());
  EXPECT_GE(since(start), 300ms - clock_slack);
  EXPECT_LT(since(start), 10s) << "the rate did not end the body";
}

TEST_P(Timeouts, LetsABodyAboveTheLeastRateTakeMuchLongerThanTheGrace) {
  auto server = start_test_server({"--min-body-rate", "1000", "--min-body-rate-grace-ms", "100"});
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
  auto start = clock::now();
  // 100 bytes every 20 ms: 5,000 a second, 5 times the least rate, for 4 times the grace.
  std::string body;
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(c.readable_within(20ms)) << "answered before the body was complete";
    std::string piece(100, static_cast<char>('a' + i));
    c.send(piece);
    body += piece;
  }
  auto r = c.read_response(10s);
  EXPECT_EQ(status_of(r), 200) << r.substr(0, 200);
  EXPECT_EQ(body_of(r), body);
  EXPECT_GE(since(start), 300ms);
}

TEST_P(Timeouts, ClosesAConnectionWhoseClientReadsBelowTheLeastRate) {
  // The reader keeps reading, so the write timeout never runs out: only the rate can end it.
  auto server = start_test_server({"--write-timeout-ms", "60000", "--min-response-rate", "2000000",
                                   "--min-response-rate-grace-ms", "300"});
  constexpr std::size_t size = 256u << 20;
  raw_client reader(server.port(), 4096);  // small window: the sockets fill fast
  // Before the request: the server's writes, and the grace, may begin long before the client
  // has read the head.
  auto start = clock::now();
  reader.send("GET /big?bytes=" + std::to_string(size) + " HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = reader.read_head(20s);
  ASSERT_EQ(status_of(head), 200) << head;
  raw_client probe(server.port());
  auto active = [&] {
    probe.send("GET /counts HTTP/1.1\r\nHost: x\r\n\r\n");
    return key_values(body_of(probe.read_response()))["active"];
  };
  // 4 KiB every 20 ms, 200 KiB a second: a tenth of the least rate. The rate is checked when
  // the server's writes progress, which the kernel reports only once a good part of its send
  // buffer (megabytes) is free: seconds at this pace.
  std::vector<char> buf(4096);
  std::size_t received = 0;
  bool cut = false;
  while (!cut && since(start) < 30s) {
    for (int i = 0; i < 5; ++i) {
      ::poll(nullptr, 0, 20);
      const long n = reader.read_available(buf.data(), buf.size());
      if (n > 0) received += static_cast<std::size_t>(n);
    }
    cut = active() == "1";
  }
  EXPECT_TRUE(cut) << "still writing to a slow reader after 30 s; " << received << " bytes read";
  EXPECT_GE(since(start), 300ms - clock_slack);
  EXPECT_LT(received, size);
}

TEST_P(Timeouts, DoesNotCountTheTimeAResponseWaitsForItsHandlerAgainstTheClient) {
  // Three pieces of 8 MiB, 2 s apart: each fills the sockets and is read at once, in far less
  // than the grace. Counted from the first piece, the second would arrive at about 6 MB a
  // second (8 MiB, and what the sockets took of the second, in 2 s), half the least rate.
  auto server =
      start_test_server({"--min-response-rate", "12000000", "--min-response-rate-grace-ms", "500"});
  constexpr std::size_t piece = 8u << 20;
  raw_client c(server.port(), 64 << 10);  // a window small enough that each piece waits
  c.send("GET /stream?chunks=3&interval_ms=2000&bytes=" + std::to_string(piece) +
         "&declared=" + std::to_string(3 * piece) + " HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = c.read_head(10s);
  ASSERT_EQ(status_of(head), 200) << head;
  // Read as fast as the client can (read_response parses the whole buffer after every read).
  std::size_t received = 0;
  std::vector<char> buf(1 << 20);
  auto deadline = clock::now() + 30s;
  while (received < 3 * piece && clock::now() < deadline) {
    const long n = c.read_available(buf.data(), buf.size());
    if (n == 0) break;  // the end: the server closed
    if (n > 0) {
      received += static_cast<std::size_t>(n);
    } else {
      c.readable_within(100ms);
    }
  }
  EXPECT_EQ(received, 3 * piece) << "cut off";
}

TEST_P(Timeouts, AnswersABodyNeverSentAfterContinueWith408) {
  auto server = start_test_server({"--body-timeout-ms", "200"});
  raw_client c(server.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(c.read_response(10s), "HTTP/1.1 100 Continue\r\n\r\n");
  auto all = c.read_until_close(10s);
  EXPECT_EQ(status_of(all), 408) << all;
}

// --- idle (keep-alive) timeout ---------------------------------------------------------------

TEST_P(Timeouts, ClosesAnIdleKeepAliveConnectionCleanlyAfterTheIdleTimeout) {
  auto server = start_test_server({"--idle-timeout-ms", "200"});
  raw_client c(server.port());
  // Before the request: the server goes idle once its write returns, maybe long before the
  // client has read the response.
  auto idle_since = clock::now();
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
  ASSERT_TRUE(c.closed_within(10s)) << "still open 10 s after a 200 ms idle timeout";
  EXPECT_FALSE(c.was_reset()) << "the idle connection was reset, not closed";
  EXPECT_GE(since(idle_since), 200ms - clock_slack);
}

TEST_P(Timeouts, LingersAfterTheIdleCloseSoThatARequestRacingItIsNotReset) {
  auto server = start_test_server({"--idle-timeout-ms", "200"});
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), hello);
  ASSERT_TRUE(c.closed_within(10s));
  // A client that sent its next request just as the server closed: the server half-closed
  // and reads what still comes, so the client sees the end of stream, never a reset.
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_FALSE(c.reset_within(100ms))
      << "a request racing the idle close was answered with a reset";
}

TEST_P(Timeouts, LingersAfterA408SoThatTheRestOfTheRequestIsNotReset) {
  auto server = start_test_server({"--header-timeout-ms", "200"});
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n");
  EXPECT_EQ(status_of(c.read_until_close(10s)), 408);
  c.send("X-Late: yes\r\n\r\n");
  EXPECT_FALSE(c.reset_within(100ms)) << "the rest of the request was answered with a reset";
}

TEST_P(Timeouts, RunsTheLingerAfterA408FromWhenItWasSentNotFromBeforeTheWait) {
  // The loop slept through the whole header timeout; the linger that follows the 408 must
  // still last its own time from then on (the loop reads its clock when a wait ends).
  auto server =
      start_test_server({"--header-timeout-ms", "600", "--linger-ms", "500", "--threads", "1"});
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n");
  EXPECT_EQ(status_of(c.read_response(10s)), 408);
  std::this_thread::sleep_for(150ms);  // well inside the linger, if it runs from the 408
  c.send("X-Late: yes\r\n\r\n");
  EXPECT_FALSE(c.reset_within(100ms)) << "reset 150 ms after the 408: the linger was cut short";
}

TEST_P(Timeouts, KeepsAConnectionUsedMoreOftenThanTheIdleTimeout) {
  auto server = start_test_server({"--idle-timeout-ms", "400"});
  raw_client c(server.port());
  auto start = clock::now();
  std::string peer;
  // Requests 100 ms apart for twice the idle timeout: each one restarts it.
  while (since(start) < 800ms) {
    c.send("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.read_response(10s);
    ASSERT_EQ(status_of(r), 200) << r;
    if (peer.empty()) peer = body_of(r);
    EXPECT_EQ(body_of(r), peer);
    ASSERT_FALSE(c.readable_within(100ms)) << "closed while in use";
  }
}

TEST_P(Timeouts, RunsTheIdleTimeoutFromTheEndOfAHandlerThatBlockedItsThread) {
  // The loop reads the clock once per round; after a handler that held the thread for longer
  // than the idle timeout, the idle time must still start when the response went out.
  auto server = start_test_server({"--idle-timeout-ms", "300", "--threads", "1"});
  raw_client c(server.port());
  c.send("GET /block?ms=600 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response(10s)), "blocked\n");
  ASSERT_FALSE(c.readable_within(100ms))
      << "closed at once: the idle timeout ran from before the handler";
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response(10s)), hello);
}

TEST_P(Timeouts, LetsTheClientSeeTheIdleCloseAndConnectAgain) {
  auto server = start_test_server({"--idle-timeout-ms", "200"});
  {
    raw_client c(server.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(body_of(c.read_response()), hello);
    ASSERT_TRUE(c.closed_within(10s));
  }
  EXPECT_EQ(body_of(get_once(server.port())), hello);
}

// --- write timeout ---------------------------------------------------------------------------

TEST_P(Timeouts, ClosesAConnectionWhoseClientStopsReadingAfterTheWriteTimeout) {
  // Long enough that the probe below answers well within it, even in a sanitizer build.
  auto server = start_test_server({"--write-timeout-ms", "500"});
  constexpr std::size_t size = 64u << 20;
  raw_client reader(server.port(), 4096);  // small window: the sockets fill fast
  // Before the request: the server's last write may come long before the client has read the
  // head, and the timeout runs from there.
  auto asked = clock::now();
  reader.send("GET /big?bytes=" + std::to_string(size) + " HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = reader.read_head(20s);
  ASSERT_EQ(status_of(head), 200) << head;
  ASSERT_EQ(header_of(head, "Content-Length"), std::to_string(size));
  // The client cannot see the close without reading, and reading is progress that restarts
  // the timeout: it asks the server, on another connection, until the reader's is gone.
  raw_client probe(server.port());
  auto active = [&] {
    probe.send("GET /counts HTTP/1.1\r\nHost: x\r\n\r\n");
    return key_values(body_of(probe.read_response()))["active"];
  };
  ASSERT_EQ(active(), "2") << "the big response is not being written";
  ASSERT_TRUE(eventually([&] { return active() == "1"; }, 10s))
      << "still writing 10 s after a 500 ms write timeout";
  EXPECT_GE(since(asked), 500ms - clock_slack);
  // What was in flight arrives, then the end: the response was cut short.
  auto rest = reader.read_until_close(20s);
  EXPECT_LT(rest.size(), size);
}

TEST_P(Timeouts, DoesNotCutASlowButSteadyReaderWithTheWriteTimeout) {
  auto server = start_test_server({"--write-timeout-ms", "300"});
  constexpr std::size_t size = 16u << 20;  // more than the sockets hold: the server must wait
  raw_client reader(server.port(), 1 << 20);
  reader.send("GET /big?bytes=" + std::to_string(size) + " HTTP/1.1\r\nHost: x\r\n\r\n");
  // The reader pauses 100 ms before each read, then takes what is there: slow overall, but
  // no pause reaches the timeout, which is about pauses, not about the whole response.
  std::size_t received = 0;
  std::string start;
  auto deadline = clock::now() + 60s;
  std::vector<char> buf(1 << 20);
  bool ended = false;
  while (!ended && clock::now() < deadline) {
    ::poll(nullptr, 0, 100);  // the pause under test
    for (;;) {
      const long n = reader.read_available(buf.data(), buf.size());
      if (n > 0) {
        if (start.size() < 512) start.append(buf.data(), std::min<std::size_t>(n, 512));
        received += static_cast<std::size_t>(n);
        continue;
      }
      ended = n == 0;
      break;
    }
    auto head_end = start.find("\r\n\r\n");
    if (head_end != std::string::npos && received == head_end + 4 + size) break;
  }
  ASSERT_EQ(status_of(start), 200) << start;
  EXPECT_FALSE(ended) << "the server closed the connection of a reader that kept reading";
  EXPECT_EQ(received, start.find("\r\n\r\n") + 4 + size);
}

}  // namespace
}  // namespace lameduck::testing
