// One connection without sockets or threads: connection<test_stream> on a worker whose loop
// never runs a thread. The test hands the stream its input and plays the event loop's part
// (on_ready, on_drain); each test checks one path of the state machine, including the ones a
// real socket reaches only by luck: a write that fails mid-response, a reset during the
// linger, and the want_read/want_write answers of a TLS stream.

#include "connection.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "in_memory.hpp"
#include "test_stream.hpp"
#include "worker.hpp"

namespace lameduck {
// gtest prints states by name.
void PrintTo(connection_state s, std::ostream* os) {
  *os << to_string(s);
}
}  // namespace lameduck

namespace lameduck::detail {
namespace {

using namespace std::chrono_literals;
using testing::test_stream;
using testing::test_stream_state;

constexpr std::string_view get = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
constexpr std::string_view get_close = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
constexpr std::string_view ok_hello =
    "Content-Length: 6\r\n";  // in every complete answer of the default handler

class Connection : public ::testing::Test {
 protected:
  Connection() {
    options.log = [this](std::string_view line) { logged.emplace_back(line); };
    main = [this](const request& req, response res) {
      stop = req.stop_token();
      if (hold) {
        held.emplace(std::move(res));
      } else {
        res.send("hello\n");
      }
    };
  }

  // A new connection on a worker made with the options as the test left them.
  std::shared_ptr<test_stream_state> open() {
    if (!server) {
      server.emplace([this](const request& req, response res) { main(req, std::move(res)); },
                     options);
      w = &server->worker();
    }
    return server->open();
  }

  // The one live connection, or null once it has closed (and been deleted).
  connection_base* conn() { return w->connections.front(); }

  // Input arrives and the loop reports it.
  void arrive(test_stream_state& st, std::string_view bytes) {
    st.input.emplace_back(bytes);
    conn()->on_ready(EPOLLIN);
  }

  std::size_t count(connection_state s) { return w->counts[static_cast<std::size_t>(s)].load(); }
  connection_state state() { return conn() ? conn()->state() : connection_state::closed; }

  // Runs the loop's rounds until pred() holds or `within` has passed.
  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds within = 5s) {
    auto end = std::chrono::steady_clock::now() + within;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      w->loop().run_once(10ms);
    }
    return true;
  }

  server_options options;
  handler main;
  std::optional<testing::in_memory_server> server;
  worker* w = nullptr;  // the server's
  std::vector<std::string> logged;
  bool hold = false;             // the handler keeps its response instead of answering
  std::optional<response> held;  // destroyed before the worker
  std::stop_token stop;          // the last request's
};

TEST_F(Connection, AnswersARequestThatArrivesInPiecesAndGoesIdle) {
  auto st = open();
  EXPECT_EQ(state(), connection_state::fresh);
  arrive(*st, "GET / HT");
  EXPECT_EQ(state(), connection_state::active);
  EXPECT_EQ(st->output, "");
  st->input.emplace_back("TP/1.1\r\nHost: t\r\n");
  arrive(*st, "\r\n");
  EXPECT_EQ(st->output.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_NE(st->output.find(ok_hello), std::string::npos);
  EXPECT_EQ(state(), connection_state::idle);
  EXPECT_EQ(w->requests_completed.load(), 1u);
}

TEST_F(Connection, AnExchangeGoesBackToThePoolWithoutTheBuffersOfALargeMessage) {
  options.limits.max_body_bytes = 2 << 20;
  main = [](const request& req, response res) { res.send(std::string(req.body())); };
  auto st = open();
  const std::string body(1 << 20, 'x');
  arrive(*st, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\n\r\n" + body);
  ASSERT_EQ(st->output.size(), st->output.find("\r\n\r\n") + 4 + body.size()) << "echoed";
  ASSERT_EQ(state(), connection_state::idle);  // its exchange went back to the pool
  exchange* pooled = w->acquire_exchange();
  EXPECT_LE(pooled->output.capacity(), exchange::pooled_buffer_bytes);
  EXPECT_LE(pooled->parser.buffer_capacity(), 3 * exchange::pooled_buffer_bytes);
  w->recycle_exchange(pooled);
}

TEST_F(Connection, AnswersPipelinedRequestsInOrder) {
  auto st = open();
  arrive(*st, std::string(get) + std::string(get_close));
  EXPECT_EQ(w->requests_completed.load(), 2u);
  auto second = st->output.find("HTTP/1.1 200 OK", 1);
  ASSERT_NE(second, std::string::npos);
  EXPECT_EQ(st->output.find("Connection: close"), st->output.find("Connection: close", second));
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, AWriteErrorMidResponseClosesAndCountsTheRequestAborted) {
  hold = true;
  auto st = open();
  st->fail_write = 2;
  arrive(*st, get);
  ASSERT_TRUE(held);
  held->write("first piece");  // write 1: the head and the first chunk
  EXPECT_NE(st->output.find("first piece"), std::string::npos);
  EXPECT_EQ(state(), connection_state::active);
  held->write("second piece");  // write 2 fails
  EXPECT_EQ(st->output.find("second piece"), std::string::npos);
  EXPECT_TRUE(st->closed);
  EXPECT_EQ(state(), connection_state::closed);
  EXPECT_EQ(w->requests_aborted.load(), 1u);
  EXPECT_EQ(w->requests_completed.load(), 0u);
  EXPECT_TRUE(stop.stop_requested()) << "the handler still holding the response is told";
}

TEST_F(Connection, AResetDuringTheLingerClosesAtOnce) {
  options.timeouts.linger = 60s;  // so that only the reset can end it within the test
  auto st = open();
  arrive(*st, get_close);
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
  conn()->on_ready(EPOLLIN);  // nothing to read yet: it lingers on
  EXPECT_EQ(state(), connection_state::closing);
  st->fail_read = st->reads + 1;  // the client's RST
  conn()->on_ready(EPOLLIN | EPOLLERR);
  EXPECT_EQ(state(), connection_state::closed);
  EXPECT_TRUE(st->closed);
  EXPECT_EQ(w->requests_completed.load(), 1u);
}

TEST_F(Connection, TheLingerReadsAndDiscardsUntilTheClientsEndOfStream) {
  auto st = open();
  arrive(*st, get_close);
  const std::string answered = st->output;
  arrive(*st, "bytes the client sent before it saw our FIN");
  EXPECT_EQ(state(), connection_state::closing);
  st->eof = true;
  conn()->on_ready(EPOLLIN | EPOLLRDHUP);
  EXPECT_EQ(state(), connection_state::closed);
  EXPECT_EQ(st->output, answered);
}

TEST_F(Connection, ARecordThatWantsWriteWaitsForWritabilityThenReadsOn) {
  // A TLS read that must first write (a key update) says want_write: the connection waits,
  // and the socket's writability, not its readability, resumes the read.
  auto st = open();
  st->read_script = {io_status::want_write};
  arrive(*st, get);
  EXPECT_EQ(st->output, "");
  ASSERT_EQ(state(), connection_state::fresh);
  conn()->on_ready(EPOLLOUT);
  EXPECT_EQ(st->output.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(state(), connection_state::idle);
}

TEST_F(Connection, AWriteThatWantsReadWaitsThenFinishesTheResponse) {
  // A TLS write in the middle of a renegotiation says want_read.
  auto st = open();
  st->write_script = {io_status::want_read};
  arrive(*st, get);
  EXPECT_EQ(st->output, "");
  ASSERT_EQ(state(), connection_state::active);
  conn()->on_ready(EPOLLIN);
  EXPECT_NE(st->output.find(ok_hello), std::string::npos);
  EXPECT_EQ(state(), connection_state::idle);
}

TEST_F(Connection, AClientThatStopsReadingIsClosedWhenTheWriteTimeoutPasses) {
  options.timeouts.write = 50ms;
  auto st = open();
  st->write_room = 10;
  arrive(*st, get);
  EXPECT_EQ(st->output.size(), 10u);
  EXPECT_EQ(state(), connection_state::active);
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return state() == connection_state::closed; }));
  EXPECT_GE(std::chrono::steady_clock::now() - sent, 40ms);
  EXPECT_EQ(st->output.size(), 10u);
  EXPECT_EQ(w->requests_completed.load(), 1u) << "the handler's answer was complete";
}

TEST_F(Connection, RoomForOutputResumesAResponseThatFilledTheStream) {
  auto st = open();
  st->write_room = 10;
  arrive(*st, get);
  st->write_room = 1 << 20;
  conn()->on_ready(EPOLLOUT);
  EXPECT_NE(st->output.find("hello\n"), std::string::npos);
  EXPECT_EQ(state(), connection_state::idle);
}

TEST_F(Connection, ADrainAnswersARequestAlreadyInTheStreamWithConnectionClose) {
  auto st = open();
  arrive(*st, get);
  ASSERT_EQ(state(), connection_state::idle);
  st->input.emplace_back(get);  // arrived, but the loop has not reported it yet
  w->draining = true;
  conn()->on_drain();
  EXPECT_EQ(w->requests_completed.load(), 2u);
  EXPECT_NE(st->output.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, ADrainHalfClosesAnIdleConnectionWithNothingToRead) {
  auto st = open();
  arrive(*st, get);
  const std::string answered = st->output;
  w->draining = true;
  conn()->on_drain();
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
  EXPECT_EQ(st->output, answered);
}

TEST_F(Connection, InTheIdleGraceADrainLeavesIdleConnectionsWaiting) {
  auto st = open();
  arrive(*st, get);
  w->draining = true;
  w->keep_idle = true;
  conn()->on_drain();
  EXPECT_EQ(state(), connection_state::idle);
  arrive(*st, get);  // its next request is answered, and closes it
  EXPECT_EQ(st->output.find("Connection: close"), st->output.rfind("Connection: close"));
  EXPECT_NE(st->output.find("Connection: close"), std::string::npos);
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, ADrainClosesAFreshConnectionThatSentNothing) {
  auto st = open();
  w->draining = true;
  conn()->on_drain();
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, AfterAHandoverADrainWaitsForTheRequestOfAConnectionAcceptedInThatInstant) {
  auto st = open();
  w->keep_fresh = true;  // the listeners were handed over
  w->draining = true;
  conn()->on_drain();
  EXPECT_FALSE(st->shut_down);
  ASSERT_EQ(state(), connection_state::fresh);
  arrive(*st, get);
  EXPECT_EQ(st->output.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_NE(st->output.find("Connection: close"), std::string::npos);
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, ADrainLeavesAClientInItsHandshakeToSendItsRequest) {
  auto st = open();
  st->opening = true;  // a TLS ClientHello has been read, the handshake goes on
  w->draining = true;
  conn()->on_drain();
  EXPECT_FALSE(st->shut_down);
  ASSERT_EQ(state(), connection_state::fresh);
  st->opening = false;
  arrive(*st, get);
  EXPECT_EQ(st->output.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_NE(st->output.find("Connection: close"), std::string::npos);
}

TEST_F(Connection, APeerOfAnotherProtocolIsToldSoInPlainTextAndClosed) {
  auto st = open();
  st->read_script.push_back(io_status::other_protocol);  // plain HTTP on a TLS port
  conn()->on_ready(EPOLLIN);
  EXPECT_EQ(st->output.substr(0, 26), "HTTP/1.1 400 Bad Request\r\n");
  EXPECT_NE(st->output.find("plain HTTP was sent to it"), std::string::npos) << st->output;
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, AClientsEndOfStreamBetweenRequestsClosesWithoutAWord) {
  auto st = open();
  arrive(*st, get);
  const std::string answered = st->output;
  st->eof = true;
  conn()->on_ready(EPOLLIN | EPOLLRDHUP);
  EXPECT_EQ(state(), connection_state::closed);
  EXPECT_EQ(st->output, answered);
}

TEST_F(Connection, AHandlerThatThrowsIsLoggedAndItsRequestGets500) {
  main = [](const request&, response) { throw std::runtime_error("on purpose"); };
  auto st = open();
  arrive(*st, get);
  EXPECT_EQ(st->output.substr(0, 12), "HTTP/1.1 500");
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0], "lameduck: handler threw: on purpose");
}

TEST_F(Connection, AbortSendsAResponseAlreadyProducedBeforeClosing) {
  // A handler that answers and then destroys its own server: its answer goes out first.
  auto st = open();
  st->write_script = {io_status::want_write};
  arrive(*st, get);
  EXPECT_EQ(st->output, "");
  conn()->abort();
  EXPECT_NE(st->output.find("hello\n"), std::string::npos);
  EXPECT_TRUE(st->closed);
  EXPECT_EQ(count(connection_state::closed), 1u);
}

TEST_F(Connection, AnInvalidHostIsAnswered400AndTheConnectionCloses) {
  auto st = open();
  arrive(*st, "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n" + std::string(get));
  EXPECT_EQ(st->output.substr(0, 12), "HTTP/1.1 400");
  EXPECT_EQ(st->output.find("HTTP/1.1 200"), std::string::npos) << "nothing after it is read";
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
  EXPECT_EQ(w->requests_completed.load(), 0u);
}

TEST_F(Connection, TheHandlerSeesTheRequestsHostAndPort) {
  std::string host;
  std::optional<std::uint16_t> port;
  main = [&](const request& req, response res) {
    host = req.host();
    port = req.port();
    res.send("");
  };
  auto st = open();
  arrive(*st, "GET http://[::1]:8080/ HTTP/1.1\r\nHost: ignored\r\n\r\n");
  EXPECT_EQ(st->output.substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(host, "[::1]");
  EXPECT_EQ(port, 8080);
}

TEST_F(Connection, APipelinedRequestThatStopsHalfwayIsTimedOut) {
  // Found by fuzz/connection_fuzz.cpp: the next request's first bytes came with the last one,
  // and then nothing. Its head is bounded by the header timeout like any other.
  options.timeouts.header = 50ms;
  auto st = open();
  arrive(*st, std::string(get) + "GET / HT");
  EXPECT_EQ(w->requests_completed.load(), 1u);
  ASSERT_EQ(state(), connection_state::active);
  EXPECT_EQ(conn()->timeout, timeout_kind::header);
  ASSERT_TRUE(run_until([&] { return st->output.find("HTTP/1.1 408") != std::string::npos; }, 2s));
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, AStreamedBodyPastItsContentLengthIsCutOffNotSent) {
  // Found by fuzz/connection_fuzz.cpp: bytes past the declared length would reach a client as
  // the beginning of the next response.
  hold = true;
  auto st = open();
  arrive(*st, get);
  ASSERT_TRUE(held);
  held->header("Content-Length", "5").write("abc");
  EXPECT_NE(st->output.find("Content-Length: 5\r\n"), std::string::npos);
  held->write("defgh");
  EXPECT_EQ(st->output.find('d', st->output.find("abc")), std::string::npos) << st->output;
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
  EXPECT_EQ(w->requests_aborted.load(), 1u);
  EXPECT_EQ(w->requests_completed.load(), 0u);
  EXPECT_TRUE(stop.stop_requested()) << "the handler still holding the response is told";
}

TEST_F(Connection, ChunkExtensionsPastTheLimitAreAnswered413AndTheConnectionCloses) {
  options.limits.max_chunk_extension_bytes = 8;
  bool handled = false;
  main = [&](const request&, response res) {
    handled = true;
    res.send("");
  };
  auto st = open();
  arrive(*st, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  arrive(*st, "1;abcdefg\r\na\r\n");  // 8 bytes: at the limit
  EXPECT_EQ(st->output, "");
  arrive(*st, "1;b\r\nb\r\n0\r\n\r\n");
  EXPECT_EQ(st->output.substr(0, 12), "HTTP/1.1 413");
  EXPECT_FALSE(handled);
  EXPECT_TRUE(st->shut_down);
  EXPECT_EQ(state(), connection_state::closing);
}

TEST_F(Connection, ValidChunkExtensionsReachTheHandlerAsAPlainBody) {
  std::string body;
  main = [&](const request& req, response res) {
    body = req.body();
    res.send("");
  };
  auto st = open();
  arrive(*st,
         "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;a=b;c=d\r\nhello\r\n1 ; q=\"x\\\"y\"\r\n!\r\n0;e\r\n\r\n");
  EXPECT_EQ(st->output.substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(body, "hello!");
  EXPECT_EQ(state(), connection_state::idle);
}

}  // namespace
}  // namespace lameduck::detail
