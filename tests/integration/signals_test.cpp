// Signals and exit statuses of a process that embeds a server (lameduck::signal_shutdown, as
// lameduck-hello uses it), and a program that restarts its server on the same port
// (lameduck-restart): real binaries, real sockets, signals sent to their pid.

#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;

server_process start_hello(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{bin_path("lameduck-hello"), "--listen", "127.0.0.1:0", "--threads",
                                "2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return server_process(argv);
}

TEST(Signals, FirstSigtermDrainsAndExitsZero) {
  auto server = start_hello();
  raw_client idle(server.port());
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(idle.read_response()), 200);
  raw_client busy(server.port());
  // Sent before the signal: answered whether or not the server has read it yet.
  busy.send("GET /delay?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n");
  auto sent = clock::now();
  server.signal(SIGTERM);
  EXPECT_TRUE(idle.closed_within(5s));  // the idle connection is closed at once, cleanly
  EXPECT_FALSE(idle.was_reset());
  auto r = busy.read_response();  // the request in flight is answered completely
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), "waited 500 ms\n");
  EXPECT_EQ(header_of(r, "Connection"), "close");
  busy.shutdown_write();
  idle.shutdown_write();
  EXPECT_EQ(server.wait_exit(5s), 0);
  EXPECT_LT(clock::now() - sent, 3s);
}

TEST(Signals, WithALameDuckDelayReadinessSays503WhileTheServerStillListensAndServes) {
  auto server = start_hello({"--lame-duck", "0.5"});
  EXPECT_EQ(status_of(get_once(server.port(), "/readyz")), 200);
  raw_client probe(server.port());
  auto sent = clock::now();
  server.signal(SIGTERM);
  // The signal is handled asynchronously: the probe turns to 503 without a restart of the port.
  EXPECT_TRUE(eventually([&] {
    probe.send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    return status_of(probe.read_response()) == 503;
  }));
  EXPECT_EQ(status_of(get_once(server.port(), "/livez")), 200);  // a new connection: accepted
  EXPECT_EQ(body_of(get_once(server.port(), "/")), "Hello, World!\n");
  EXPECT_TRUE(probe.closed_within(5s));  // the drain proper closes the idle probe
  EXPECT_GE(clock::now() - sent, 450ms);
  probe.shutdown_write();
  EXPECT_EQ(server.wait_exit(5s), 0);
}

TEST(Signals, SigintDrainsLikeSigterm) {
  auto server = start_hello();
  EXPECT_EQ(body_of(get_once(server.port(), "/")), "Hello, World!\n");
  server.signal(SIGINT);
  EXPECT_EQ(server.wait_exit(5s), 0);
}

TEST(Signals, ADrainCutShortByItsDeadlineExitsWithTheForcedStatus) {
  auto server = start_hello({"--drain-timeout", "0.3"});
  raw_client busy(server.port());
  busy.send("GET /delay?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n");
  auto sent = clock::now();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(5s), 3);
  EXPECT_GE(clock::now() - sent, 250ms);
  EXPECT_EQ(busy.read_until_close(5s), "");  // cut off without a partial answer
}

TEST(Signals, ASecondSignalDestroysAtOnceAndExitsWith128PlusTheSignal) {
  for (int sig : {SIGTERM, SIGINT}) {
    auto server = start_hello();
    raw_client busy(server.port());
    busy.send("GET /delay?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n");
    server.signal(SIGTERM);
    EXPECT_FALSE(busy.closed_within(200ms));  // draining: the request may still finish
    auto sent = clock::now();
    server.signal(sig);
    EXPECT_EQ(server.wait_exit(5s), 128 + sig);
    EXPECT_LT(clock::now() - sent, 2s);
    EXPECT_TRUE(busy.closed_within(5s));
  }
}

TEST(Signals, WithAnIdleGraceIdleClientsGetTheirNextRequestAnswered) {
  auto server = start_hello({"--idle-grace", "5"});
  raw_client idle(server.port());
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(idle.read_response()), 200);
  server.signal(SIGTERM);
  EXPECT_FALSE(idle.closed_within(300ms));  // kept for its next request
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = idle.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(header_of(r, "Connection"), "close");
  EXPECT_TRUE(idle.closed_within(5s));
  idle.shutdown_write();
  EXPECT_EQ(server.wait_exit(5s), 0);
}

TEST(Signals, HelloDocumentsItsDrainOptions) {
  auto r = run({bin_path("lameduck-hello"), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--drain-timeout"), std::string::npos);
  EXPECT_NE(r.out.find("--idle-grace"), std::string::npos);
  EXPECT_NE(r.out.find("--lame-duck"), std::string::npos);
  for (const char* option : {"--drain-timeout", "--idle-grace", "--lame-duck"}) {
    auto bad = run({bin_path("lameduck-hello"), option, "-1"});
    EXPECT_EQ(bad.exit_code, 2) << option;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  }
}

TEST(Restart, AProgramStartsANewServerOnTheSamePortAfterTheOldOneStops) {
  server_process program(
      {bin_path("lameduck-restart"), "--listen", "127.0.0.1:0", "--generations", "3"});
  const std::uint16_t port = program.port();
  for (int generation = 1; generation <= 3; ++generation) {
    std::string hello;
    // Between two generations the port is briefly closed: wait for the next one.
    ASSERT_TRUE(eventually([&] {
      try {
        hello = body_of(get_once(port, "/"));
        return hello == "generation " + std::to_string(generation) + "\n";
      } catch (const std::exception&) {
        return false;
      }
    })) << "generation "
        << generation << " answered: " << hello;
    EXPECT_EQ(body_of(get_once(port, "/next")),
              "generation " + std::to_string(generation) + " ends\n");
  }
  EXPECT_EQ(program.wait_exit(10s), 0);
}

}  // namespace
}  // namespace lameduck::testing
