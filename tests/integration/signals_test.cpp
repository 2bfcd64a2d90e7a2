// Signals and exit statuses of a process that embeds a server (lameduck::signal_shutdown, as
// lameduck-hello uses it), and a program that restarts its server on the same port
// (lameduck-restart): real binaries, real sockets, signals sent to their pid.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
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

// A listening socket on 127.0.0.1 as a service manager would pass it; its port in `port`.
int passed_listener(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd, 128), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size);
  port = ntohs(a.sin_port);
  return fd;
}

// lameduck-hello started as a service manager starts it: LISTEN_PID is its own pid (the shell
// execs it, keeping its pid), the socket is its descriptor 3.
std::vector<std::string> as_service(const std::string& environment, std::vector<std::string> args) {
  std::vector<std::string> argv{"/bin/sh", "-c",
                                "LISTEN_PID=$$ " + environment + " exec \"$0\" \"$@\"",
                                bin_path("lameduck-hello")};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

TEST(ServiceManager, HelloServesOnThePassedSocketAndReportsReadyStoppingAndStopped) {
  std::uint16_t port = 0;
  int listener = passed_listener(port);
  notify_socket manager;
  // Port 1 would need privileges: a bind there would fail, so serving proves the adoption.
  server_process server(as_service("LISTEN_FDS=1 NOTIFY_SOCKET=" + manager.name(),
                                   {"--listen", "127.0.0.1:1", "--threads", "1"}),
                        10s, {listener});
  ::close(listener);  // the server holds its own copy now
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=serving 127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(body_of(get_once(port, "/")), "Hello, World!\n");
  server.signal(SIGTERM);
  EXPECT_EQ(manager.receive(), "STOPPING=1\nSTATUS=draining");
  EXPECT_EQ(manager.receive(), "STATUS=stopped; running cleanup hooks");
  EXPECT_EQ(server.wait_exit(5s), 0);
}

TEST(ServiceManager, SocketsPassedToAnotherProcessAreLeftAlone) {
  std::uint16_t port = 0;
  int listener = passed_listener(port);
  std::vector<std::string> argv{"/bin/sh",
                                "-c",
                                "LISTEN_PID=1 LISTEN_FDS=1 exec \"$0\" \"$@\"",
                                bin_path("lameduck-hello"),
                                "--listen",
                                "127.0.0.1:0"};
  server_process server(argv, 10s, {listener});
  ::close(listener);
  EXPECT_NE(server.port(), port);  // it bound its own address
  EXPECT_EQ(body_of(get_once(server.port(), "/")), "Hello, World!\n");
}

TEST(ServiceManager, NamedPassedSocketsStandForTheListenAddressesOfTheirNames) {
  std::uint16_t http_port = 0, health_port = 0;
  int http = passed_listener(http_port), health = passed_listener(health_port);
  // Passed in the other order than the addresses are given: names decide, not places.
  server_process server(as_service("LISTEN_FDS=2 LISTEN_FDNAMES=health:http",
                                   {"--listen", "http=127.0.0.1:1", "--health-listen",
                                    "health=127.0.0.1:1", "--threads", "1"}),
                        10s, {health, http});
  ::close(http);
  ::close(health);
  EXPECT_EQ(server.port(), http_port);  // reported first, as the plain address
  EXPECT_EQ(body_of(get_once(http_port, "/")), "Hello, World!\n");
  EXPECT_EQ(status_of(get_once(health_port, "/")), 404);  // the health endpoints alone
  EXPECT_EQ(body_of(get_once(health_port, "/readyz")), "ready\n");
}

TEST(ServiceManager, ANamedAddressWithoutItsSocketIsBoundAndTheOthersAdopted) {
  std::uint16_t http_port = 0;
  int http = passed_listener(http_port);
  server_process server(as_service("LISTEN_FDS=1 LISTEN_FDNAMES=http",
                                   {"--listen", "http=127.0.0.1:1", "--health-listen",
                                    "health=127.0.0.1:0", "--threads", "1"}),
                        10s, {http});
  ::close(http);
  EXPECT_EQ(server.port(), http_port);
  EXPECT_EQ(body_of(get_once(http_port, "/")), "Hello, World!\n");
}

TEST(ServiceManager, ASocketPassedWithANameNoAddressHasIsALineAndStatus2) {
  // Refused before the socket is looked at: descriptor 3 can be anything.
  auto r = run({"/bin/sh", "-c",
                "exec 3</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=metrics exec \"$0\" "
                "\"$@\"",
                bin_path("lameduck-hello"), "--listen", "http=127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("a socket was passed with the name \"metrics\", which no listen address "
                       "has"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("lameduck-hello: cannot start: a socket passed with LISTEN_FDNAMES has a "
                       "name that no listen address has\n"),
            std::string::npos)
      << r.err;
}

TEST(ServiceManager, WatchdogPingsComeWhileEveryLoopRunsAndStopWhileOneIsStuck) {
  notify_socket manager;
  server_process server({"/usr/bin/env", "NOTIFY_SOCKET=" + manager.name(), "WATCHDOG_USEC=400000",
                         bin_path("lameduck-test-server"), "--listen", "127.0.0.1:0", "--threads",
                         "2"});
  for (int i = 0; i < 3; ++i)  // at least two per interval, as systemd asks
    ASSERT_EQ(manager.receive(400ms), "WATCHDOG=1");
  const auto blocked_at = clock::now();
  std::thread stuck([&] { get_once(server.port(), "/block?ms=3000"); });
  // Pings may go on for half an interval and a period after the loop stopped beating.
  while (clock::now() - blocked_at < 1s)
    manager.receive(100ms);
  EXPECT_EQ(manager.receive(1500ms), "") << "a ping while a loop was stuck in a handler";
  stuck.join();
  EXPECT_EQ(manager.receive(2s), "WATCHDOG=1") << "no ping once the loop was back";
}

TEST(ServiceManager, WatchdogPingsEndWithTheStopAndTheProcessExits) {
  // systemd's WatchdogSec= and the supervisor's --watchdog set WATCHDOG_USEC for every stop:
  // the pings' timer must not outlive the server, or the process never ends.
  notify_socket manager;
  server_process server({"/usr/bin/env", "NOTIFY_SOCKET=" + manager.name(), "WATCHDOG_USEC=400000",
                         bin_path("lameduck-hello"), "--listen", "127.0.0.1:0", "--threads", "2"});
  EXPECT_EQ(body_of(get_once(server.port())), "Hello, World!\n");
  server.signal(SIGTERM);
  std::string m;
  while (!(m = manager.receive(5s)).empty() && m != "STATUS=stopped; running cleanup hooks") {
  }
  EXPECT_EQ(m, "STATUS=stopped; running cleanup hooks");
  EXPECT_EQ(server.wait_exit(5s), 0) << "still running after its stop";
}

TEST(ServiceManager, APassedSocketThatIsNotListeningIsALineAndStatus2) {
  // Descriptor 3 is a file, not a socket.
  auto r = run({"/bin/sh", "-c", "exec 3</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"",
                bin_path("lameduck-hello"), "--listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "lameduck-hello: cannot start: a socket passed with LISTEN_FDS or listen_sockets is "
            "not a listening TCP socket\n");
}

// A supervisor's lifeline: a pipe whose write end only the supervisor holds, which ends however
// it dies (SIGKILL included). Here this test stands for the supervisor: it starts hello (as its
// parent) with the read end as descriptor 3, after `wrapper` and with `more` as 4..., and ends
// the lifeline with end().
class lifeline_hello {
 public:
  explicit lifeline_hello(std::vector<std::string> wrapper = {}, std::vector<int> more = {}) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category());
    write_end_ = fds[1];
    wrapper.insert(wrapper.end(),
                   {"/usr/bin/env", "LAMEDUCK_LIFELINE_FD=3", bin_path("lameduck-hello"),
                    "--listen", "127.0.0.1:0", "--threads", "1"});
    more.insert(more.begin(), fds[0]);
    server_.emplace(std::move(wrapper), 10s, more);
    ::close(fds[0]);
  }
  ~lifeline_hello() { end(); }
  lifeline_hello(const lifeline_hello&) = delete;
  lifeline_hello& operator=(const lifeline_hello&) = delete;

  server_process& server() { return *server_; }
  int write_end() const { return write_end_; }
  void end() {
    if (write_end_ >= 0) ::close(std::exchange(write_end_, -1));
  }
  // Ends the lifeline and waits until hello says it drains for that.
  bool end_and_see_the_drain() {
    end();
    return eventually([&] {
      return server_->error_output().find("the supervisor's lifeline ended; draining") !=
             std::string::npos;
    });
  }

 private:
  int write_end_ = -1;
  std::optional<server_process> server_;
};

TEST(Lifeline, ItsEndDrainsTheServerAsASigtermWouldAndExitsZero) {
  lifeline_hello hello;
  server_process& server = hello.server();
  ASSERT_EQ(::write(hello.write_end(), "x", 1), 1);  // bytes on it are not its end
  raw_client busy(server.port());
  busy.send("GET /delay?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(get_once(server.port(), "/")), 200) << "still serving";
  hello.end();                    // the supervisor is gone
  auto r = busy.read_response();  // the request in flight is answered completely
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(header_of(r, "Connection"), "close");
  busy.shutdown_write();
  EXPECT_EQ(server.wait_exit(5s), 0);
  EXPECT_NE(server.error_output().find("the supervisor's lifeline ended; draining"),
            std::string::npos)
      << server.error_output();
}

// A supervisor that dies also sends its death signal (PR_SET_PDEATHSIG), as itself, and often
// after the worker saw its lifeline end. That signal is not a second one: the drain goes on.
TEST(Lifeline, TheSupervisorsDeathSignalAfterItsEndDoesNotForceTheDrain) {
  lifeline_hello hello;
  server_process& server = hello.server();
  raw_client busy(server.port());
  busy.send("GET /delay?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(get_once(server.port(), "/")), 200) << "still serving";
  ASSERT_TRUE(hello.end_and_see_the_drain());
  server.signal(SIGTERM);  // from hello's parent, as the kernel's death signal is
  auto r = busy.read_response();
  EXPECT_EQ(status_of(r), 200) << "the request in flight is still answered";
  busy.shutdown_write();
  EXPECT_EQ(server.wait_exit(5s), 0) << server.error_output();
}

// A killed supervisor also takes the read end of its workers' standard error with it: the
// drain's log lines must not end the process by SIGPIPE.
TEST(Lifeline, ItsEndDrainsEvenWhenStandardErrorHasNoReaderLeft) {
  int errors[2];
  ASSERT_EQ(::pipe2(errors, O_CLOEXEC), 0);
  lifeline_hello hello({"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&4"}, {errors[1]});
  ::close(errors[1]);
  ::close(errors[0]);  // no reader: each line written there is an EPIPE
  EXPECT_EQ(status_of(get_once(hello.server().port(), "/")), 200);
  hello.end();
  EXPECT_EQ(hello.server().wait_exit(5s), 0);
}

// Anyone else's signal after the lifeline's end is a second signal, as always.
TEST(Lifeline, AnotherSignalAfterItsEndStillForcesTheStop) {
  lifeline_hello hello;
  server_process& server = hello.server();
  raw_client busy(server.port());
  busy.send("GET /delay?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(get_once(server.port(), "/")), 200);
  ASSERT_TRUE(hello.end_and_see_the_drain());
  const std::string pid = std::to_string(server.pid());
  EXPECT_EQ(run({"/bin/kill", "-TERM", pid}).exit_code, 0);  // from another process
  EXPECT_EQ(server.wait_exit(5s), 128 + SIGTERM) << server.error_output();
}

TEST(Restart, TheNextGenerationAnswersAtOnceWhileAnIdleClientHoldsTheOldOne) {
  // The seed's case: a client (Python's http.client does this) keeps its keep-alive connection
  // and never closes it. Before handover, new connections were refused for the old drain's
  // whole linger (2 s).
  server_process program(
      {bin_path("lameduck-restart"), "--listen", "127.0.0.1:0", "--generations", "2"});
  raw_client idle(program.port());
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(body_of(idle.read_response()), "generation 1\n");
  EXPECT_EQ(body_of(get_once(program.port(), "/next")), "generation 1 ends\n");
  // No retry: the socket never closed, so a refused connect would throw here.
  std::string hello;
  ASSERT_TRUE(eventually(
      [&] {
        hello = body_of(get_once(program.port(), "/"));
        return hello == "generation 2\n";
      },
      5s))
      << hello;
  // The old generation may still accept for an instant after the handover: ask until the new
  // one answers.
  ASSERT_TRUE(eventually(
      [&] { return body_of(get_once(program.port(), "/next")) == "generation 2 ends\n"; }, 5s));
  EXPECT_TRUE(idle.closed_within(10s));
  EXPECT_FALSE(idle.was_reset());
  EXPECT_EQ(program.wait_exit(10s), 0);
}

TEST(Restart, AProgramStartsANewServerOnTheSamePortAfterTheOldOneStops) {
  server_process program(
      {bin_path("lameduck-restart"), "--listen", "127.0.0.1:0", "--generations", "3"});
  const std::uint16_t port = program.port();
  // Asks for path on new connections until the answer is `want`; the last answer in `got`.
  auto ask_until = [&](const std::string& path, const std::string& want, std::string& got) {
    return eventually([&] {
      got = body_of(get_once(port, path));
      return got == want;
    });
  };
  for (int generation = 1; generation <= 3; ++generation) {
    const std::string name = "generation " + std::to_string(generation);
    std::string hello, ends;
    // The next generation starts on the same sockets: wait until it answers.
    ASSERT_TRUE(ask_until("/", name + "\n", hello)) << name << " answered: " << hello;
    // The old generation sees the handover on its own loop and may still accept a connection
    // after the new one has answered (a loaded run saw /next reach generation 1 after generation 2
    // had answered /): ask until this generation ends.
    ASSERT_TRUE(ask_until("/next", name + " ends\n", ends))
        << name << " not ended; the last /next answered: " << ends;
  }
  EXPECT_EQ(program.wait_exit(10s), 0);
}

// --- what the people who run it see ----------------------------------------------------------

// Where each of `wanted` first appears in text, in order; npos for one missing or out of order.
std::vector<std::size_t> positions_in_order(const std::string& text,
                                            const std::vector<std::string>& wanted) {
  std::vector<std::size_t> at;
  std::size_t from = 0;
  for (const auto& w : wanted) {
    const auto p = from == std::string::npos ? std::string::npos : text.find(w, from);
    at.push_back(p);
    from = p;
  }
  return at;
}

TEST(StopLog, HelloWritesOneLinePerPhaseOfItsStop) {
  auto server = start_hello({"--lame-duck", "0.2"});
  raw_client idle(server.port());
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(idle.read_response()), 200);
  server.signal(SIGTERM);
  EXPECT_TRUE(idle.closed_within(5s));
  idle.shutdown_write();
  EXPECT_EQ(server.wait_exit(5s), 0);
  const std::string err = server.error_output();
  // At the signal the connection may still be active: its response has reached the client
  // before the server has seen the write complete.
  for (auto p : positions_in_order(
           err, {"lameduck: drain ordered with a deadline of 30.000 s, a lame-duck delay of "
                 "0.200 s and an idle grace of 0.000 s; open: 0 fresh, ",
                 " 0 upgraded, 0 closing\n",
                 "lameduck: lame-duck delay over, draining; open: 0 fresh, 0 active, 1 idle, "
                 "0 upgraded, 0 closing\n",
                 "lameduck: stopped gracefully in "}))
    EXPECT_NE(p, std::string::npos) << err;
  EXPECT_NE(err.find(": 0 requests completed, 0 aborted; closed 0 fresh, 0 active, 1 idle, "
                     "0 upgraded, 0 closing\n"),
            std::string::npos)
      << err;
}

TEST(StopLog, HelloWritesJsonLinesWhenAsked) {
  auto server = start_hello({"--log-format", "json"});
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(5s), 0);
  const std::string err = server.error_output();
  std::size_t lines = 0;
  for (std::size_t from = 0, end; (end = err.find('\n', from)) != std::string::npos;
       from = end + 1, ++lines) {
    const std::string line = err.substr(from, end - from);
    EXPECT_TRUE(line.starts_with("{\"msg\":\"") && line.ends_with("}")) << line;
  }
  EXPECT_EQ(lines, 2u) << err;  // the order and the end
  EXPECT_NE(err.find("\"event\":\"stop_ordered\",\"order\":\"drain\""), std::string::npos) << err;
  EXPECT_NE(err.find("\"event\":\"stopped\",\"graceful\":true"), std::string::npos) << err;
  const command_result bad = run({bin_path("lameduck-hello"), "--log-format", "xml"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("xml not in {json,logfmt,text}"), std::string::npos) << bad.err;
}

TEST(ServiceManager, HelloSaysReadyOnlyOnceItsApplicationIs) {
  notify_socket manager;
  server_process server({"/usr/bin/env", "NOTIFY_SOCKET=" + manager.name(),
                         bin_path("lameduck-hello"), "--listen", "127.0.0.1:0", "--threads", "1",
                         "--ready-after", "2"});
  EXPECT_EQ(manager.receive(), "STATUS=waiting for the application to be ready");
  EXPECT_EQ(status_of(get_once(server.port(), "/readyz")), 503);
  EXPECT_NE(server.error_output().find("not ready yet"), std::string::npos);
  EXPECT_EQ(manager.receive(10s), "READY=1\nSTATUS=serving " + server.address());
  EXPECT_EQ(status_of(get_once(server.port(), "/readyz")), 200);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(5s), 0);
}

TEST(ServiceManager, HelloReloadsItsGreetingOnSighupAndKeepsTheOldOneWhenTheNewIsRefused) {
  const std::string file = temp_path("greeting");
  auto write = [&](const std::string& text) { std::ofstream(file, std::ios::trunc) << text; };
  write("Hi\n");
  notify_socket manager;
  server_process server({"/usr/bin/env", "NOTIFY_SOCKET=" + manager.name(),
                         bin_path("lameduck-hello"), "--listen", "127.0.0.1:0", "--threads", "1",
                         "--greeting-file", file});
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=serving " + server.address());
  EXPECT_EQ(body_of(get_once(server.port())), "Hi\n");
  auto reload = [&](const std::string& ready) {
    server.signal(SIGHUP);
    EXPECT_TRUE(manager.receive().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    EXPECT_EQ(manager.receive(), ready);
  };
  write("Bonjour\n");
  reload("READY=1\nSTATUS=reloaded");
  EXPECT_EQ(body_of(get_once(server.port())), "Bonjour\n");
  write("");  // an empty greeting is refused
  const std::string why = std::make_error_code(std::errc::invalid_argument).message();
  reload("READY=1\nSTATUS=reload failed: " + why);
  EXPECT_EQ(body_of(get_once(server.port())), "Bonjour\n") << "the old greeting serves on";
  EXPECT_NE(server.error_output().find(
                "lameduck: reload failed, still running on the old configuration: " + why + "\n"),
            std::string::npos)
      << server.error_output();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(5s), 0);
  std::remove(file.c_str());
}

}  // namespace
}  // namespace lameduck::testing
