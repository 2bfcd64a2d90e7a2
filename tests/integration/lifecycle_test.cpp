// The server verbs of docs/lifecycle.md (stop_accepting, shutdown, close, destroy), each
// sentence as a test: a server in this process, real sockets on 127.0.0.1, byte-exact clients.
// Handlers that block their loop on purpose make the races exact: the request bytes are in
// the server's socket, or the connection is in the kernel's accept queue, when a stop begins.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <lameduck/lameduck.hpp>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;

// A flag one thread raises and another waits for, with a bound.
class event_flag {
 public:
  void raise() {
    // Notified under the lock: a waiter that then destroys the flag waits for the unlock.
    std::lock_guard lock(mutex_);
    ++count_;
    cv_.notify_all();
  }
  bool wait(int at_least = 1, std::chrono::milliseconds within = 10s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, within, [&] { return count_ >= at_least; });
  }
  int count() {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_ = 0;
};

// The bytes waiting in the receive queue of the server's end of the client's connection, from
// /proc/net/tcp (the server's loop is blocked, so they stay there); -1 when not found.
long server_receive_queue(int client_fd) {
  sockaddr_in local{}, remote{};
  socklen_t size = sizeof local;
  ::getsockname(client_fd, reinterpret_cast<sockaddr*>(&local), &size);
  size = sizeof remote;
  ::getpeername(client_fd, reinterpret_cast<sockaddr*>(&remote), &size);
  // The server's socket has the server's port as its local port and the client's as remote.
  char want_local[16], want_remote[16];
  std::snprintf(want_local, sizeof want_local, ":%04X", ntohs(remote.sin_port));
  std::snprintf(want_remote, sizeof want_remote, ":%04X", ntohs(local.sin_port));
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the column names
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local_address, remote_address, state, queues;
    fields >> slot >> local_address >> remote_address >> state >> queues;
    if (local_address.ends_with(want_local) && remote_address.ends_with(want_remote)) {
      return std::stol(queues.substr(queues.find(':') + 1), nullptr, 16);
    }
  }
  return -1;
}

// Waits until every byte the client sent is in the server's socket, not yet read.
void wait_delivered(int fd, long bytes) {
  auto deadline = clock::now() + 10s;
  while (server_receive_queue(fd) < bytes) {
    ASSERT_LT(clock::now(), deadline) << "the server never received the bytes";
    std::this_thread::yield();
  }
}

// Whether this process can bind the port right now (without SO_REUSEPORT).
bool can_bind(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 1) == 0;
  ::close(fd);
  return ok;
}

constexpr std::string_view get_root = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
constexpr std::string_view get_block = "GET /block HTTP/1.1\r\nHost: t\r\n\r\n";
constexpr std::string_view get_upgrade =
    "GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";

// A request from a client in the kernel's accept queue: over TCP its bytes are in the socket
// before the test goes on; over TLS only the ClientHello can be (the request needs the
// server's answer to it), and send_deferred_request() sends it once the server runs again.
void queue_request(raw_client& c) {
  if (current_transport() == transport::tcp) {
    c.send(get_root);
    wait_delivered(c.fd(), get_root.size());
  }
}
void send_deferred_request(raw_client& c) {
  if (current_transport() == transport::tls) c.send(get_root);
}

// Whether the server ended the connection with a clean end of stream, not a reset; then closes
// the client's side too, as an HTTP client does, which ends the server's linger.
bool ends_cleanly(raw_client& c, std::chrono::milliseconds within = 5s) {
  bool clean = c.closed_within(within) && !c.was_reset();
  c.shutdown_write();
  return clean;
}

template <class Future>
bool ready_within(const Future& f, std::chrono::milliseconds within) {
  return f.wait_for(within) == std::future_status::ready;
}

// Over plain TCP and over TLS alike: the server listens on one address of the transport.
class Lifecycle : public over_both_transports {
 protected:
  Lifecycle() {
    if (GetParam() == transport::tls) {
      const auto& files = tls_certificate();
      options.tls_listen = {{"127.0.0.1:0", {{files.certificate, files.key, ""}}}};
    } else {
      options.listen = {"127.0.0.1:0"};
    }
    options.threads = 1;
    options.timeouts.linger = 2s;
  }
  ~Lifecycle() override {
    open_gate();
    server.reset();  // stop tokens fire; then the /watch threads, which use this fixture, end
    EXPECT_TRUE(watch_answered.wait(watch_entered.count(), 30s));
  }

  // Starts the server (again) with the routes below.
  void start() {
    if (!server) server = std::make_unique<lameduck::server>(options, routes());
    server->start();
    port = server->port();
  }

  lameduck::router routes() {
    lameduck::router r;
    r.get("/", [](const request&, response res) { res.send("hello\n"); });
    // Holds its loop's thread until the test opens the gate: nothing else on the loop runs.
    r.get("/block", [this](const request&, response res) {
      block_entered.raise();
      gate_open.wait_for(20s);
      res.send("unblocked\n");
    });
    // Answers after ms milliseconds, from another thread.
    r.get("/slow", [](const request& req, response res) {
      int ms = std::stoi(std::string(req.query_param("ms").value_or("0")));
      std::thread([ms, res = std::move(res)]() mutable {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        res.send("slow\n");
      }).detach();
    });
    // Waits on another thread for its stop token, then tries to answer anyway.
    r.get("/watch", [this](const request&, response res) {
      watch_entered.raise();
      std::thread([this, res = std::move(res)]() mutable {
        auto token = res.stop_token();
        auto until = clock::now() + 20s;
        while (!token.stop_requested() && clock::now() < until)
          std::this_thread::sleep_for(1ms);
        if (token.stop_requested()) watch_stopped.raise();
        res.send("too late\n");  // must be dropped safely
        watch_answered.raise();
      }).detach();
    });
    r.get("/big", [](const request&, response res) { res.send(std::string(64 << 20, 'x')); });
    // An echo protocol that says "going away" when a drain begins (as a WebSocket sends close
    // code 1001), and then closes if close_on_shutdown is set.
    r.get("/upgrade", [this](const request&, response res) { res.upgrade("echo", echo()); });
    // The same, but the upgrade happens on another thread once the gate opens.
    r.get("/upgrade-later", [this](const request&, response res) {
      std::thread([res = std::move(res), open = gate_open, h = echo()]() mutable {
        open.wait_for(20s);
        res.upgrade("echo", std::move(h));
      }).detach();
    });
    r.get("/destroy-self", [this](const request&, response res) {
      res.send("Server is going down NOW!\n");
      self_future = server->destroy();
    });
    r.get("/shutdown-self", [this](const request&, response res) {
      res.send("draining\n");
      self_future = server->shutdown(10s);
    });
    return r;
  }

  upgrade_handlers echo() {
    upgrade_handlers h;
    h.on_data = [](upgraded_connection& self, std::string_view bytes) {
      self.send(std::string(bytes));
    };
    h.on_shutdown = [this](upgraded_connection& self) {
      self.send("going away\n");
      if (close_on_shutdown) self.close();
      upgraded_told.raise();
    };
    h.on_close = [this] { upgraded_closed.raise(); };
    return h;
  }

  void open_gate() {
    if (!gate_opened.exchange(true)) gate.set_value();
  }

  lameduck::server_options options;
  std::unique_ptr<lameduck::server> server;
  std::uint16_t port = 0;
  std::promise<void> gate;
  std::shared_future<void> gate_open = gate.get_future().share();
  std::atomic<bool> gate_opened{false};
  event_flag block_entered, watch_entered, watch_stopped, watch_answered;
  event_flag upgraded_told, upgraded_closed;
  std::atomic<bool> close_on_shutdown{false};
  std::shared_future<stop_report> self_future;
};

INSTANTIATE_TEST_SUITE_P(Transports, Lifecycle, both_transports(), transport_name);

// The options with the fixture's one address (plain or TLS) on this port.
lameduck::server_options at_port(lameduck::server_options o, std::uint16_t port) {
  const std::string address = "127.0.0.1:" + std::to_string(port);
  if (o.tls_listen.empty()) {
    o.listen = {address};
  } else {
    o.tls_listen[0].address = address;
  }
  return o;
}

// A client with one request answered, so that its connection is idle.
std::unique_ptr<raw_client> idle_client(std::uint16_t port) {
  auto c = std::make_unique<raw_client>(port);
  c->send(get_root);
  EXPECT_EQ(status_of(c->read_response()), 200);
  return c;
}

// Reads the answer to a /block request after the gate opened, and closes as a client does.
void finish_blocker(raw_client& blocker) {
  EXPECT_EQ(body_of(blocker.read_response()), "unblocked\n");
  blocker.shutdown_write();
}

// Waits until the server counts n connections in state s.
bool wait_count(const server& s, connection_state st, std::size_t n) {
  auto until = clock::now() + 10s;
  while (s.counts()[st] != n) {
    if (clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// ---- Every verb ----------------------------------------------------------------------------

TEST_P(Lifecycle, EveryVerbIsIdempotentAndReturnsTheSameCompletion) {
  start();
  auto c = idle_client(port);
  auto a1 = server->stop_accepting();
  auto a2 = server->stop_accepting();
  ASSERT_TRUE(ready_within(a1, 10s));
  EXPECT_TRUE(ready_within(a2, 0ms));
  auto s1 = server->close();
  auto s2 = server->shutdown(10s);
  auto s3 = server->destroy();
  auto s4 = server->destroy();
  ASSERT_TRUE(ready_within(s4, 10s));
  EXPECT_TRUE(ready_within(s1, 0ms) && ready_within(s2, 0ms) && ready_within(s3, 0ms));
  EXPECT_EQ(s1.get().took, s4.get().took);  // one stop, one report
  // On a stopped server every verb completes at once.
  EXPECT_TRUE(ready_within(server->destroy(), 0ms));
  EXPECT_TRUE(ready_within(server->shutdown(1s), 0ms));
  EXPECT_TRUE(ready_within(server->stop_accepting(), 0ms));
}

TEST_P(Lifecycle, VerbsOnAServerNeverStartedCompleteAtOnce) {
  server = std::make_unique<lameduck::server>(options, routes());
  EXPECT_TRUE(ready_within(server->destroy(), 0ms));
  EXPECT_TRUE(ready_within(server->close(), 0ms));
  EXPECT_TRUE(ready_within(server->stop_accepting(), 0ms));
  bool called = false;
  server->shutdown(1s, [&](const stop_report&) { called = true; });
  EXPECT_TRUE(called);
}

TEST_P(Lifecycle, EachVerbAlsoCallsItsCompletionCallback) {
  start();
  event_flag accepted, stopped;
  stop_report got;
  server->stop_accepting([&] { accepted.raise(); });
  server->shutdown(10s, [&](const stop_report& r) {
    got = r;
    stopped.raise();
  });
  EXPECT_TRUE(accepted.wait());
  EXPECT_TRUE(stopped.wait());
  EXPECT_TRUE(got.graceful);
}

TEST_P(Lifecycle, VerbsCalledFromManyThreadsAtOnceCompleteOnce) {
  options.threads = 2;
  start();
  auto c = idle_client(port);
  std::vector<std::thread> threads;
  std::vector<std::shared_future<stop_report>> futures(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      server->stop_accepting();
      futures[i] = i % 2 ? server->shutdown(5s) : server->destroy();
    });
  }
  for (auto& t : threads)
    t.join();
  for (auto& f : futures)
    ASSERT_TRUE(ready_within(f, 10s));
  EXPECT_EQ(server->counts().open(), 0u);
  EXPECT_TRUE(ends_cleanly(*c));
}

TEST_P(Lifecycle, AVerbCalledInsideAHandlerDoesNotBlockItsLoop) {
  start();
  raw_client c(port);
  c.send("GET /shutdown-self HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  // The response was complete before the drain began: the connection, now idle, is closed.
  EXPECT_TRUE(ends_cleanly(c));
  ASSERT_TRUE(self_future.valid());
  ASSERT_TRUE(ready_within(self_future, 10s));
  EXPECT_TRUE(self_future.get().graceful);
}

// ---- stop_accepting ------------------------------------------------------------------------

TEST_P(Lifecycle, StopAcceptingFreesThePortAndKeepsServingOpenConnections) {
  start();
  auto c = idle_client(port);
  ASSERT_TRUE(ready_within(server->stop_accepting(), 10s));
  EXPECT_FALSE(server->ready());
  // Another server in this process binds the port at once.
  lameduck::server_options o2 = at_port(options, port);
  lameduck::server second(o2, [](const request&, response res) { res.send("second\n"); });
  std::error_code ec;
  second.start(ec);
  ASSERT_FALSE(ec) << ec.message();
  raw_client fresh(port);
  fresh.send(get_root);
  EXPECT_EQ(body_of(fresh.read_response()), "second\n");
  // The old connection is still served by the old server, keep-alive included.
  for (int i = 0; i < 3; ++i) {
    c->send(get_root);
    auto r = c->read_response();
    EXPECT_EQ(body_of(r), "hello\n");
    EXPECT_EQ(header_of(r, "Connection"), "");
  }
  EXPECT_TRUE(wait_count(*server, connection_state::idle, 1));  // marked idle just after writing
}

TEST_P(Lifecycle, StopAcceptingAcceptsWhatTheKernelHadQueuedFirst) {
  start();
  raw_client blocker(port);
  blocker.send(get_block);
  ASSERT_TRUE(block_entered.wait());
  std::vector<std::unique_ptr<raw_client>> queued;
  for (int i = 0; i < 8; ++i) {
    queued.push_back(std::make_unique<raw_client>(port));
    queue_request(*queued.back());
  }
  auto stopped_accepting = server->stop_accepting();
  open_gate();
  ASSERT_TRUE(ready_within(stopped_accepting, 10s));
  for (auto& q : queued) {
    send_deferred_request(*q);
    auto r = q->read_response();
    EXPECT_EQ(status_of(r), 200);
    EXPECT_EQ(header_of(r, "Connection"), "");  // served normally, keep-alive
  }
  EXPECT_TRUE(connection_refused(port));
}

// ---- shutdown: the graceful drain, step by step --------------------------------------------

TEST_P(Lifecycle, Step1ReadinessTurnsFalseAtOnce) {
  start();
  EXPECT_TRUE(server->ready());
  raw_client blocker(port);
  blocker.send(get_block);
  ASSERT_TRUE(block_entered.wait());
  auto f = server->shutdown(10s);
  EXPECT_FALSE(server->ready());  // before the loop has even seen the drain
  open_gate();
  finish_blocker(blocker);
  ASSERT_TRUE(ready_within(f, 10s));
}

TEST_P(Lifecycle, Step1TheReadinessEndpointAnswers503FromTheStartOfADrainAndLivenessStays200) {
  options.health = {"/readyz", "/livez", {}};
  options.drain.lame_duck_delay = 10s;  // keeps the listener open to probe through
  start();
  raw_client probe(port);
  probe.send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string r = probe.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), "ready\n");
  EXPECT_EQ(header_of(r, "Cache-Control"), "no-store");
  auto f = server->shutdown(60s);
  probe.send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\nGET /livez HTTP/1.1\r\nHost: t\r\n\r\n");
  r = probe.read_response();
  EXPECT_EQ(status_of(r), 503);
  EXPECT_EQ(body_of(r), "not ready\n");
  r = probe.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), "alive\n");
  server->destroy();
  ASSERT_TRUE(ready_within(f, 5s));
}

TEST_P(Lifecycle, HealthEndpointsAreTheServersOnlyWhenConfiguredAndOnlyForGetAndHead) {
  start();
  EXPECT_EQ(status_of(get_once(port, "/readyz")), 404);  // none by default
  server.reset();
  options.health.liveness_path = "/livez";
  start();
  EXPECT_EQ(status_of(get_once(port, "/livez")), 200);
  EXPECT_EQ(status_of(get_once(port, "/readyz")), 404);
  raw_client c(port);
  c.send("HEAD /livez HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string head = c.read_head();
  EXPECT_EQ(status_of(head), 200);
  EXPECT_EQ(header_of(head, "Content-Length"), "6");
  c.send("POST /livez HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response()), 404);  // the handler's answer
}

TEST_P(Lifecycle, HealthEndpointsOnAnAddressOfTheirOwnServeNothingElseThereAndNotElsewhere) {
  options.health = {"/readyz", "/livez", {"127.0.0.1:0"}};
  options.drain.lame_duck_delay = 10s;
  start();
  const std::uint16_t health_port = server->port(1);
  ASSERT_NE(health_port, 0);
  ASSERT_NE(health_port, port);
  // The health address speaks plain HTTP, whatever the others do.
  auto get_health = [&](std::string_view target) {
    auto c = raw_client::plain(health_port);
    c->send("GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n\r\n");
    return c->read_response();
  };
  EXPECT_EQ(body_of(get_health("/readyz")), "ready\n");
  EXPECT_EQ(status_of(get_health("/")), 404);
  EXPECT_EQ(status_of(get_once(port, "/readyz")), 404);  // the handler's, here
  EXPECT_EQ(body_of(get_once(port, "/")), "hello\n");
  auto f = server->shutdown(60s);
  EXPECT_EQ(status_of(get_health("/readyz")), 503);
  EXPECT_EQ(status_of(get_health("/livez")), 200);
  server->destroy();
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_TRUE(connection_refused(health_port));  // it closes with the others
}

TEST_P(Lifecycle, Step1InTheLameDuckDelayListenersStayOpenAndRequestsAreServedAsUsual) {
  options.drain.lame_duck_delay = 400ms;
  start();
  auto idle = idle_client(port);
  auto began = clock::now();
  auto f = server->shutdown(10s);
  EXPECT_FALSE(server->ready());
  raw_client late(port);  // still accepted
  late.send(get_root);
  std::string r = late.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(header_of(r, "Connection"), "");  // keep-alive as usual
  idle->send(get_root);
  r = idle->read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(header_of(r, "Connection"), "");
  EXPECT_FALSE(ready_within(f, 0ms));
  // Then the drain proper: idle connections closed cleanly, the port closed.
  EXPECT_TRUE(ends_cleanly(*idle));
  EXPECT_GE(clock::now() - began, 350ms);
  EXPECT_TRUE(ends_cleanly(late));
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_TRUE(connection_refused(port));
  auto report = f.get();
  EXPECT_TRUE(report.graceful);
  EXPECT_GE(report.took, 400ms);
  EXPECT_EQ(report.requests_completed, 2u);
  EXPECT_EQ(report.closed_by_state[static_cast<std::size_t>(connection_state::idle)], 2u);
}

TEST_P(Lifecycle, Step1TheLameDuckDelayCountsAgainstTheDeadline) {
  options.drain.lame_duck_delay = 10s;
  start();
  auto idle = idle_client(port);
  auto began = clock::now();
  auto f = server->shutdown(300ms);
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_GE(clock::now() - began, 250ms);
  EXPECT_TRUE(ends_cleanly(*idle));
  EXPECT_TRUE(connection_refused(port));
  auto report = f.get();
  EXPECT_FALSE(report.graceful);  // the idle connection was closed by force at the deadline
  EXPECT_EQ(report.closed_by_state[static_cast<std::size_t>(connection_state::idle)], 1u);
}

TEST_P(Lifecycle, DestroyAndStopAcceptingCutTheLameDuckDelayShort) {
  options.drain.lame_duck_delay = 10s;
  start();
  auto f = server->shutdown(60s);
  ASSERT_TRUE(ready_within(server->stop_accepting(), 5s));
  EXPECT_TRUE(connection_refused(port));
  EXPECT_FALSE(ready_within(f, 0ms));
  ASSERT_TRUE(ready_within(server->destroy(), 5s));
  EXPECT_TRUE(ready_within(f, 0ms));
}

TEST_P(Lifecycle, Step2NewConnectionsAreRefusedOnceTheListenersHaveClosed) {
  start();
  raw_client busy(port);
  busy.send("GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->shutdown(10s);
  ASSERT_TRUE(ready_within(server->stop_accepting(), 10s));
  EXPECT_TRUE(connection_refused(port));  // refused by the kernel, not accepted and reset
  EXPECT_FALSE(ready_within(f, 0ms));     // while the drain goes on
  EXPECT_EQ(status_of(busy.read_response()), 200);
  EXPECT_TRUE(ends_cleanly(busy));
  ASSERT_TRUE(ready_within(f, 10s));
}

TEST_P(Lifecycle, Step2QueuedConnectionsAreAcceptedAndAnsweredNotReset) {
  // Repeated: each trial puts connections with requests in the accept queue, then drains.
  for (int trial = 0; trial < 50; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    server.reset();
    gate = {};
    gate_open = gate.get_future().share();
    gate_opened = false;
    start();
    raw_client blocker(port);
    blocker.send(get_block);
    ASSERT_TRUE(block_entered.wait(trial + 1));
    std::vector<std::unique_ptr<raw_client>> queued;
    for (int i = 0; i < 4; ++i) {
      queued.push_back(std::make_unique<raw_client>(port));
      queue_request(*queued.back());
    }
    auto silent = raw_client::plain(port);  // queued too, but never sends a byte
    auto f = server->shutdown(10s);
    open_gate();
    finish_blocker(blocker);
    for (auto& q : queued) {
      send_deferred_request(*q);
      auto r = q->read_response();
      ASSERT_EQ(status_of(r), 200);
      EXPECT_EQ(header_of(r, "Connection"), "close");
      EXPECT_TRUE(ends_cleanly(*q));
    }
    EXPECT_TRUE(ends_cleanly(*silent));
    ASSERT_TRUE(ready_within(f, 10s));
    auto report = f.get();
    EXPECT_TRUE(report.graceful);
    EXPECT_EQ(report.closed_by_state[static_cast<std::size_t>(connection_state::fresh)], 5u);
    EXPECT_EQ(report.requests_completed, 5u);
  }
}

TEST_P(Lifecycle, Step3IdleAndFreshConnectionsAreClosedCleanlyAtOnce) {
  start();
  auto idle = idle_client(port);
  auto fresh = raw_client::plain(port);  // has sent nothing (over TLS, not even a ClientHello)
  ASSERT_TRUE(wait_count(*server, connection_state::fresh, 1));
  ASSERT_TRUE(wait_count(*server, connection_state::idle, 1));
  auto began = clock::now();
  auto f = server->shutdown(30s);
  EXPECT_TRUE(ends_cleanly(*idle));
  EXPECT_TRUE(ends_cleanly(*fresh));
  EXPECT_LT(clock::now() - began, 2s);  // at once, not after the idle or header timeout
  ASSERT_TRUE(ready_within(f, 10s));
  auto r = f.get();
  EXPECT_TRUE(r.graceful);
  EXPECT_EQ(r.closed_by_state[static_cast<std::size_t>(connection_state::idle)], 1u);
  EXPECT_EQ(r.closed_by_state[static_cast<std::size_t>(connection_state::fresh)], 1u);
}

TEST_P(Lifecycle, Step3ClosingHalfClosesAndLingersReadingWhatTheClientStillSends) {
  options.timeouts.linger = 5s;
  start();
  auto idle = idle_client(port);
  auto f = server->shutdown(30s);
  // The server's end of stream arrives while its side stays open to read.
  EXPECT_TRUE(idle->closed_within(5s));
  ASSERT_TRUE(wait_count(*server, connection_state::closing, 1));
  // What the client sends now is read and discarded, not answered with a reset...
  idle->send(get_root);
  // ...and its own close ends the linger at once, well before the linger timeout.
  idle->shutdown_write();
  ASSERT_TRUE(ready_within(f, 3s));
  EXPECT_TRUE(f.get().graceful);
  EXPECT_TRUE(idle->closed_within(1s));
  EXPECT_FALSE(idle->was_reset());
}

TEST_P(Lifecycle, Step3TheLingerIsBoundedByItsTimeout) {
  options.timeouts.linger = 200ms;
  start();
  auto idle = idle_client(port);
  auto f = server->close();
  EXPECT_TRUE(idle->closed_within(5s));
  ASSERT_TRUE(ready_within(f, 5s));  // the client never closes; the linger ends anyway
}

TEST_P(Lifecycle, Step3ARequestAlreadyInTheSocketOfAnIdleConnectionIsAnsweredNeverReset) {
  // The race between a client reusing its idle connection and the server closing it: the
  // request's bytes are in the server's socket when the drain reaches the connection.
  for (int trial = 0; trial < 1000; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    server.reset();
    gate = {};
    gate_open = gate.get_future().share();
    gate_opened = false;
    start();
    auto idle = idle_client(port);
    raw_client blocker(port);
    blocker.send(get_block);
    ASSERT_TRUE(block_entered.wait(trial + 1));
    idle->send(get_root);
    wait_delivered(idle->fd(), get_root.size());
    auto f = server->shutdown(10s);
    open_gate();
    finish_blocker(blocker);
    auto r = idle->read_response();
    ASSERT_EQ(status_of(r), 200);
    ASSERT_EQ(header_of(r, "Connection"), "close");
    ASSERT_TRUE(ends_cleanly(*idle));
    ASSERT_TRUE(ready_within(f, 10s));
    ASSERT_TRUE(f.get().graceful);
  }
}

TEST_P(Lifecycle, Step3WithAnIdleGraceIdleConnectionsWaitForTheirNextRequest) {
  options.drain.idle_grace = 10s;
  start();
  auto idle = idle_client(port);
  auto f = server->shutdown(30s);
  EXPECT_FALSE(idle->closed_within(300ms));  // still open
  EXPECT_FALSE(ready_within(f, 0ms));
  idle->send(get_root);
  auto r = idle->read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(header_of(r, "Connection"), "close");
  EXPECT_TRUE(ends_cleanly(*idle));
  ASSERT_TRUE(ready_within(f, 5s));  // the last connection closed: done, long before the grace
  EXPECT_TRUE(f.get().graceful);
}

TEST_P(Lifecycle, Step3IdleConnectionsAreClosedWhenTheIdleGraceEnds) {
  options.drain.idle_grace = 300ms;
  start();
  auto idle = idle_client(port);
  auto began = clock::now();
  auto f = server->shutdown(30s);
  EXPECT_TRUE(ends_cleanly(*idle));
  EXPECT_GE(clock::now() - began, 250ms);
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_TRUE(f.get().graceful);
}

TEST_P(Lifecycle, Step4TheRequestInProgressFinishesWithConnectionClose) {
  start();
  raw_client c(port);
  c.send("GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->shutdown(10s);
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), "slow\n");
  EXPECT_EQ(header_of(r, "Connection"), "close");
  EXPECT_TRUE(ends_cleanly(c));
  ASSERT_TRUE(ready_within(f, 5s));
  auto report = f.get();
  EXPECT_TRUE(report.graceful);
  EXPECT_EQ(report.requests_completed, 1u);
  EXPECT_EQ(report.requests_aborted, 0u);
  EXPECT_EQ(report.closed_by_state[static_cast<std::size_t>(connection_state::active)], 1u);
}

TEST_P(Lifecycle, Step4PipelinedRequestsAlreadyReceivedAreAnsweredTheLastWithConnectionClose) {
  start();
  raw_client c(port);
  c.send(std::string("GET /block HTTP/1.1\r\nHost: t\r\n\r\n") + std::string(get_root) +
         std::string(get_root));
  ASSERT_TRUE(block_entered.wait());
  auto f = server->shutdown(10s);
  open_gate();
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  auto r3 = c.read_response();
  EXPECT_EQ(body_of(r1), "unblocked\n");
  EXPECT_EQ(header_of(r1, "Connection"), "");
  EXPECT_EQ(body_of(r2), "hello\n");
  EXPECT_EQ(header_of(r2, "Connection"), "");
  EXPECT_EQ(body_of(r3), "hello\n");
  EXPECT_EQ(header_of(r3, "Connection"), "close");
  EXPECT_TRUE(ends_cleanly(c));
  ASSERT_TRUE(ready_within(f, 5s));
}

TEST_P(Lifecycle, Step4NoFurtherRequestIsReadAfterTheConnectionCloseResponse) {
  start();
  raw_client c(port);
  c.send("GET /slow?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->shutdown(10s);
  auto r = c.read_response();
  EXPECT_EQ(header_of(r, "Connection"), "close");
  c.send(get_root);  // too late: the server said close
  std::string rest = c.read_until_close(5s);
  c.shutdown_write();
  EXPECT_EQ(rest, "");
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_EQ(f.get().requests_completed, 1u);
}

TEST_P(Lifecycle, Step4AnHttp10KeepAliveClientIsToldToCloseToo) {
  start();
  raw_client c(port);
  c.send("GET /slow?ms=200 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->shutdown(10s);
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_NE(header_of(r, "Connection"), "keep-alive");
  EXPECT_TRUE(ends_cleanly(c));
  ASSERT_TRUE(ready_within(f, 5s));
}

TEST_P(Lifecycle, Step5AHalfSentRequestIsStillCutOffByItsHeaderTimeout) {
  options.timeouts.header = 300ms;
  start();
  raw_client c(port);
  c.send("GET / HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto began = clock::now();
  auto f = server->shutdown(30s);
  auto r = c.read_until_close(5s);
  c.shutdown_write();
  EXPECT_EQ(status_of(r), 408);
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_LT(clock::now() - began, 5s);  // long before the deadline
  EXPECT_TRUE(f.get().graceful);
}

TEST_P(Lifecycle, Step5AHalfSentBodyIsStillCutOffByItsBodyTimeout) {
  options.timeouts.body = 300ms;
  start();
  raw_client c(port);
  c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->shutdown(30s);
  EXPECT_TRUE(ends_cleanly(c));
  ASSERT_TRUE(ready_within(f, 5s));
}

TEST_P(Lifecycle, Step5AClientThatNeverReadsIsStillCutOffByTheWriteTimeout) {
  options.timeouts.write = 300ms;
  start();
  raw_client c(port);
  int small = 4096;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");  // far more than the socket buffers hold
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto began = clock::now();
  auto f = server->shutdown(30s);
  ASSERT_TRUE(ready_within(f, 10s));
  EXPECT_LT(clock::now() - began, 5s);
  EXPECT_TRUE(f.get().graceful);  // the write timeout closed it, not the deadline
}

TEST_P(Lifecycle, Step6UpgradedConnectionsAreToldAndOtherwiseLeftUntilTheDeadline) {
  start();
  raw_client c(port);
  c.send(get_upgrade);
  ASSERT_EQ(status_of(c.read_head()), 101);
  auto began = clock::now();
  auto f = server->shutdown(500ms);
  EXPECT_EQ(c.read_exactly(11), "going away\n");
  EXPECT_TRUE(upgraded_told.wait());
  c.send("still here");  // the drain leaves the connection alone
  EXPECT_EQ(c.read_exactly(10), "still here");
  EXPECT_EQ(server->counts()[connection_state::upgraded], 1u);
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_GE(clock::now() - began, 450ms);
  EXPECT_EQ(c.read_until_close(5s), "");
  EXPECT_TRUE(upgraded_closed.wait());  // its owner hears of the close
  auto r = f.get();
  EXPECT_FALSE(r.graceful);
  EXPECT_EQ(r.closed_by_state[static_cast<std::size_t>(connection_state::upgraded)], 1u);
}

TEST_P(Lifecycle, Step6AnUpgradedConnectionThatClosesWhenToldLetsTheDrainEndGracefully) {
  close_on_shutdown = true;
  start();
  raw_client c(port);
  c.send(get_upgrade);
  ASSERT_EQ(status_of(c.read_head()), 101);
  auto f = server->shutdown(60s);
  EXPECT_EQ(c.read_until_close(5s), "going away\n");
  EXPECT_FALSE(c.was_reset());
  c.shutdown_write();
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_TRUE(f.get().graceful);
  EXPECT_TRUE(upgraded_closed.wait());
}

TEST_P(Lifecycle, Step6AConnectionUpgradedDuringADrainIsToldAtOnce) {
  close_on_shutdown = true;
  start();
  raw_client c(port);
  c.send("GET /upgrade-later HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->shutdown(60s);
  open_gate();
  ASSERT_EQ(status_of(c.read_head()), 101);
  EXPECT_EQ(c.read_until_close(5s), "going away\n");
  c.shutdown_write();
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_TRUE(f.get().graceful);
}

TEST_P(Lifecycle, Step7TheDrainCompletesTheMomentTheLastConnectionCloses) {
  start();
  raw_client c(port);
  c.send("GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->shutdown(60s);
  auto r = c.read_response();
  ASSERT_TRUE(ends_cleanly(c));
  auto closed_at = clock::now();
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_LT(clock::now() - closed_at, 100ms);  // event-driven, not a polling interval
}

TEST_P(Lifecycle, Step7ADrainWithNoConnectionsCompletesAtOnce) {
  start();
  auto began = clock::now();
  auto f = server->shutdown(60s);
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_LT(clock::now() - began, 500ms);
  auto r = f.get();
  EXPECT_TRUE(r.graceful);
  EXPECT_EQ(r.requests_completed, 0u);
  EXPECT_LT(r.took, 500ms);
  EXPECT_GT(r.took.count(), 0);
}

TEST_P(Lifecycle, Step8AtTheDeadlineWhatIsLeftIsDestroyedAndTheReportSaysSo) {
  start();
  raw_client c(port);
  c.send("GET /watch HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(watch_entered.wait());
  auto idle = idle_client(port);
  ASSERT_TRUE(wait_count(*server, connection_state::idle, 1));
  auto began = clock::now();
  auto f = server->shutdown(300ms);
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_GE(clock::now() - began, 250ms);
  EXPECT_TRUE(watch_stopped.wait());   // the handler saw its stop token
  EXPECT_TRUE(watch_answered.wait());  // and its late answer was dropped safely
  std::string got = c.read_until_close(5s);
  EXPECT_EQ(got, "");
  auto r = f.get();
  EXPECT_FALSE(r.graceful);
  EXPECT_EQ(r.requests_aborted, 1u);
  EXPECT_EQ(r.closed_by_state[static_cast<std::size_t>(connection_state::active)], 1u);
  EXPECT_EQ(r.closed_by_state[static_cast<std::size_t>(connection_state::idle)], 1u);
}

TEST_P(Lifecycle, CloseIsShutdownWithNoDeadline) {
  start();
  raw_client c(port);
  c.send("GET /slow?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  auto f = server->close();
  EXPECT_FALSE(ready_within(f, 100ms));
  EXPECT_EQ(status_of(c.read_response()), 200);
  EXPECT_TRUE(ends_cleanly(c));
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_TRUE(f.get().graceful);
}

// ---- Overrides -----------------------------------------------------------------------------

TEST_P(Lifecycle, DestroyDuringADrainForcesIt) {
  start();
  raw_client c(port);
  c.send("GET /watch HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(watch_entered.wait());
  auto f = server->shutdown(60s);
  EXPECT_FALSE(ready_within(f, 100ms));
  auto d = server->destroy();
  ASSERT_TRUE(ready_within(d, 5s));
  EXPECT_TRUE(ready_within(f, 0ms));
  EXPECT_FALSE(f.get().graceful);
  EXPECT_TRUE(watch_stopped.wait());
}

TEST_P(Lifecycle, AShorterDeadlineShortensADrainAndALongerOneDoesNotLengthenIt) {
  start();
  raw_client c(port);
  c.send("GET /watch HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(watch_entered.wait());
  auto began = clock::now();
  auto f = server->shutdown(60s);
  server->shutdown(300ms);
  server->shutdown(60s);
  server->close();
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_GE(clock::now() - began, 250ms);
  EXPECT_FALSE(f.get().graceful);
}

// ---- destroy -------------------------------------------------------------------------------

TEST_P(Lifecycle, DestroyClosesEveryConnectionNowAndTellsRunningHandlers) {
  start();
  auto idle = idle_client(port);
  raw_client fresh(port);
  raw_client active(port);
  active.send("GET /watch HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(watch_entered.wait());
  ASSERT_TRUE(wait_count(*server, connection_state::fresh, 1));
  auto f = server->destroy();
  ASSERT_TRUE(ready_within(f, 5s));
  // The port is free the moment destroy completes.
  EXPECT_TRUE(can_bind(port));
  EXPECT_TRUE(ends_cleanly(*idle));
  EXPECT_TRUE(ends_cleanly(fresh));
  EXPECT_EQ(active.read_until_close(5s), "");
  EXPECT_TRUE(watch_stopped.wait());
  EXPECT_TRUE(watch_answered.wait());  // dropped safely: nothing crashed, nothing was sent
  auto r = f.get();
  EXPECT_FALSE(r.graceful);
  EXPECT_EQ(r.requests_aborted, 1u);
  EXPECT_EQ(server->counts().open(), 0u);
}

TEST_P(Lifecycle, DestroyClosesUpgradedConnectionsAndTellsTheirOwners) {
  start();
  raw_client c(port);
  c.send(get_upgrade);
  ASSERT_EQ(status_of(c.read_head()), 101);
  auto f = server->destroy();
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_EQ(c.read_until_close(5s), "");
  EXPECT_TRUE(upgraded_closed.wait());
  EXPECT_EQ(upgraded_told.count(), 0);  // destroy is not a drain
  auto r = f.get();
  EXPECT_FALSE(r.graceful);
  EXPECT_EQ(r.closed_by_state[static_cast<std::size_t>(connection_state::upgraded)], 1u);
}

TEST_P(Lifecycle, DestroyOfAServerWithNoConnectionsIsGraceful) {
  start();
  auto f = server->destroy();
  ASSERT_TRUE(ready_within(f, 5s));
  EXPECT_TRUE(f.get().graceful);
  EXPECT_TRUE(connection_refused(port));
}

TEST_P(Lifecycle, AHandlerCanAnswerAndThenDestroyItsOwnServer) {
  start();
  raw_client c(port);
  c.send("GET /destroy-self HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string got = c.read_until_close(5s);
  EXPECT_EQ(status_of(got), 200);
  EXPECT_NE(got.find("Server is going down NOW!\n"), std::string::npos);
  ASSERT_TRUE(self_future.valid());
  ASSERT_TRUE(ready_within(self_future, 5s));
}

// ---- Afterwards ----------------------------------------------------------------------------

TEST_P(Lifecycle, AStoppedServerStartsAgainOnTheSamePortAThousandTimes) {
  start();
  const std::uint16_t first = port;
  options = at_port(options, first);
  server = std::make_unique<lameduck::server>(options, routes());
  for (int i = 0; i < 1000; ++i) {
    std::error_code ec;
    server->start(ec);
    ASSERT_FALSE(ec) << "start " << i << ": " << ec.message();
    ASSERT_EQ(server->port(), first);
    auto c = idle_client(first);
    auto f = i % 2 ? server->destroy() : server->shutdown(5s);
    EXPECT_TRUE(ends_cleanly(*c));
    ASSERT_TRUE(ready_within(f, 5s)) << i;
  }
}

TEST_P(Lifecycle, ANewServerBindsThePortTheMomentAStopCompletes) {
  for (int i = 0; i < 100; ++i) {
    server.reset();
    start();
    auto c = idle_client(port);
    auto stopped = i % 2 ? server->destroy() : server->close();
    EXPECT_TRUE(ends_cleanly(*c));
    ASSERT_TRUE(ready_within(stopped, 5s));
    lameduck::server_options o = at_port(options, port);
    lameduck::server next(o, [](const request&, response res) { res.send("next\n"); });
    std::error_code ec;
    next.start(ec);
    ASSERT_FALSE(ec) << i << ": " << ec.message();
  }
}

TEST_P(Lifecycle, SharingAPortWithAnotherListenerHappensOnlyWhenAskedFor) {
  start();
  lameduck::server_options o = at_port(options, port);
  lameduck::server second(o, [](const request&, response res) { res.send("x"); });
  std::error_code ec;
  second.start(ec);
  EXPECT_EQ(ec, std::errc::address_in_use);

  options.reuse_port = true;
  lameduck::server_options shared = options;
  lameduck::server a(shared, [](const request&, response res) { res.send("a"); });
  a.start();
  shared = at_port(shared, a.port());
  lameduck::server b(shared, [](const request&, response res) { res.send("b"); });
  b.start(ec);
  EXPECT_FALSE(ec) << ec.message();
}

// ---- Introspection -------------------------------------------------------------------------

TEST_P(Lifecycle, CountsAndASnapshotDescribeEveryLiveConnection) {
  options.threads = 2;
  start();
  auto idle = idle_client(port);
  raw_client active(port);
  active.send("GET /slow?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(wait_count(*server, connection_state::active, 1));
  ASSERT_TRUE(wait_count(*server, connection_state::idle, 1));
  auto counts = server->counts();
  EXPECT_EQ(counts.open(), 2u);
  auto snap = server->snapshot();
  ASSERT_TRUE(ready_within(snap, 5s));
  auto list = snap.get();
  ASSERT_EQ(list.size(), 2u);
  std::sort(list.begin(), list.end(), [](auto& a, auto& b) { return a.id < b.id; });
  EXPECT_NE(list[0].id, list[1].id);
  EXPECT_EQ(list[0].state, connection_state::idle);
  EXPECT_EQ(list[0].requests, 1u);
  EXPECT_EQ(list[0].peer.rfind("127.0.0.1:", 0), 0u);
  EXPECT_GE(list[0].age, list[0].idle_for);
  EXPECT_EQ(list[1].state, connection_state::active);
  EXPECT_EQ(list[1].requests, 0u);
  EXPECT_EQ(list[1].idle_for.count(), 0);
  for (const auto& c : list)
    EXPECT_EQ(c.tls, GetParam() == transport::tls);
  server->destroy().wait();
  EXPECT_TRUE(server->snapshot().get().empty());
}

}  // namespace
}  // namespace lameduck::testing
