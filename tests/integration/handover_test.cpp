// server::hand_over_listeners() in the test's own process: the next server starts on the
// running one's listening sockets, so the port never closes. A client that connects every
// millisecond through 100 handovers sees nothing refused and nothing reset; an idle client that
// never closes does not hold the next generation back; a handover works inside a lame-duck
// delay and for health listeners too; misuse gets its error and leaks nothing.

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <lameduck/lameduck.hpp>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;

// A server whose every answer names its generation.
std::unique_ptr<lameduck::server> generation(int n, server_options options) {
  options.threads = 1;
  lameduck::router r;
  r.get("/", [n](const request&, response res) { res.send("generation " + std::to_string(n)); });
  auto s = std::make_unique<lameduck::server>(options, r);
  s->start();
  return s;
}

server_options on_loopback() {
  server_options o;
  o.listen = {"127.0.0.1:0"};
  return o;
}

server_options on_sockets(std::vector<listening_socket> sockets) {
  server_options o;
  o.listen_sockets = std::move(sockets);
  return o;
}

// What a descriptor refers to, or {0, 0} when it is closed. A closed number is not proof enough
// that the server closed it: the other servers' threads may open a file in between and take the
// lowest free number, which is that one (a CI run under ASan saw it reused).
std::pair<dev_t, ino_t> identity(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {0, 0};
  return {st.st_dev, st.st_ino};
}

// A client that opens a new connection every millisecond, sends one request on it and reads
// the answer to the close, counting how each one ended.
class steady_client {
 public:
  explicit steady_client(std::uint16_t port) : port_(port), thread_([this] { run(); }) {}
  ~steady_client() { stop(); }

  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }
  /// Waits until n more connections have been answered (at most 10 s).
  bool wait_answers(int n) {
    const int target = answered.load() + n;
    const auto end = clock::now() + 10s;
    while (answered.load() < target) {
      if (clock::now() > end) return false;
      std::this_thread::yield();
    }
    return true;
  }

  std::atomic<int> answered{0}, refused{0}, reset{0}, other{0};
  std::mutex mutex;
  std::map<std::string, int> by_body;  // guarded by mutex

 private:
  void run() {
    while (!stopping_) {
      one();
      std::this_thread::sleep_for(1ms);  // pacing the load, not waiting for an event
    }
  }
  void one() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      (errno == ECONNREFUSED ? refused : other)++;
      ::close(fd);
      return;
    }
    const std::string_view req = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    std::string got;
    bool failed = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size());
    char buf[1024];
    while (!failed) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        got.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        break;
      } else {
        failed = true;
      }
    }
    const int err = errno;
    ::close(fd);
    if (failed) {
      (err == ECONNRESET || err == EPIPE ? reset : other)++;
      return;
    }
    {
      std::lock_guard lock(mutex);
      ++by_body[body_of(got)];
    }
    answered++;
  }

  std::uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

TEST(Handover, AHundredHandoversUnderContinuousConnectsRefuseNothingAndResetNothing) {
  constexpr int generations = 101;  // 100 handovers
  std::deque<std::unique_ptr<lameduck::server>> draining;
  std::vector<std::shared_future<stop_report>> drains;
  auto current = generation(1, on_loopback());
  steady_client client(current->port());
  ASSERT_TRUE(client.wait_answers(3));
  for (int n = 2; n <= generations; ++n) {
    auto next = generation(n, on_sockets(current->hand_over_listeners()));
    drains.push_back(current->close());
    draining.push_back(std::move(current));
    current = std::move(next);
    ASSERT_TRUE(client.wait_answers(2)) << "generation " << n << " answers nobody";
  }
  client.stop();
  drains.push_back(current->close());
  std::size_t completed = 0;
  for (auto& d : drains) {
    ASSERT_EQ(d.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(d.get().graceful);
    completed += d.get().requests_completed;
  }
  EXPECT_EQ(client.refused.load(), 0);
  EXPECT_EQ(client.reset.load(), 0);
  EXPECT_EQ(client.other.load(), 0);
  EXPECT_GE(client.answered.load(), 2 * (generations - 1));
  std::lock_guard lock(client.mutex);
  int total = 0;
  for (const auto& [body, count] : client.by_body) {
    EXPECT_EQ(body.rfind("generation ", 0), 0u) << body;
    total += count;
  }
  EXPECT_EQ(total, client.answered.load());
  EXPECT_GE(client.by_body.size(), static_cast<std::size_t>(generations) / 2)
      << "the generations took turns";
}

TEST(Handover, AnIdleClientThatNeverClosesDoesNotDelayTheNextGeneration) {
  auto first = generation(1, on_loopback());
  const std::uint16_t port = first->port();
  raw_client idle(port);  // like Python's http.client: keeps the connection, never closes it
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(body_of(idle.read_response()), "generation 1");
  const auto began = clock::now();
  auto second = generation(2, on_sockets(first->hand_over_listeners()));
  auto drained = first->close();
  first->stop_accepting().wait();  // the old one may accept for an instant after the handover
  EXPECT_EQ(body_of(get_once(port)), "generation 2");
  EXPECT_LT(clock::now() - began, 1s);
  EXPECT_NE(drained.wait_for(0s), std::future_status::ready) << "the old one still lingers";
  EXPECT_TRUE(idle.closed_within(10s));
  EXPECT_FALSE(idle.was_reset());
  ASSERT_EQ(drained.wait_for(10s), std::future_status::ready);
}

TEST(Handover, WorksInsideALameDuckDelay) {
  server_options options = on_loopback();
  options.drain.lame_duck_delay = 30s;
  auto first = generation(1, options);
  const std::uint16_t port = first->port();
  raw_client kept(port);
  kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(body_of(kept.read_response()), "generation 1");
  auto drained = first->shutdown(60s);  // listening and serving for 30 s more
  EXPECT_FALSE(first->ready());
  auto second = generation(2, on_sockets(first->hand_over_listeners()));
  EXPECT_EQ(first->stop_accepting().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(body_of(get_once(port)), "generation 2");
  kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");  // the old one still serves what it has
  EXPECT_EQ(body_of(kept.read_response()), "generation 1");
  first->destroy();
  second->destroy();
}

TEST(Handover, HandsOverEveryListenerPlainAndHealth) {
  server_options options = on_loopback();
  options.health = {"/readyz", "/livez", {"127.0.0.1:0"}};
  auto first = generation(1, options);
  const auto addresses = first->local_addresses();
  ASSERT_EQ(addresses.size(), 2u);
  auto sockets = first->hand_over_listeners();
  ASSERT_EQ(sockets.size(), 2u);
  EXPECT_FALSE(sockets[0].health_only);
  EXPECT_TRUE(sockets[1].health_only);
  server_options next = on_sockets(sockets);
  next.health = {"/readyz", "/livez", {}};  // its addresses come with the sockets
  auto second = generation(2, next);
  first->stop_accepting().wait();  // the old one may accept for an instant after the handover
  EXPECT_EQ(second->local_addresses(), addresses);
  EXPECT_EQ(body_of(get_once(second->port(0))), "generation 2");
  const std::string probe = get_once(second->port(1), "/readyz");
  EXPECT_EQ(status_of(probe), 200);
  EXPECT_EQ(body_of(probe), "ready\n");
  EXPECT_EQ(status_of(get_once(second->port(1), "/")), 404) << "health endpoints only";
  EXPECT_TRUE(first->close().get().graceful);
}

TEST(Handover, AnHttpsListenerIsHandedOverAndTheNextServerPresentsItsOwnCertificates) {
  const auto& files = tls_certificate();
  server_options options = on_loopback();
  options.tls_listen = {{"127.0.0.1:0", {{files.certificate, files.key, ""}}}};
  auto first = generation(1, options);
  auto sockets = first->hand_over_listeners();
  ASSERT_EQ(sockets.size(), 2u);
  EXPECT_EQ(sockets[0].tls, -1);
  EXPECT_EQ(sockets[1].tls, 0);
  server_options next = on_sockets(sockets);
  next.tls_listen = options.tls_listen;  // the certificates; the address comes with the socket
  auto second = generation(2, next);
  first->stop_accepting().wait();
  tls_client_options tls;
  tls.ca_file = files.ca;
  raw_client c(second->port(1), tls);
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), "generation 2");
  EXPECT_EQ(body_of(get_once(second->port(0))), "generation 2");
  // A socket that names a TLS entry the next server does not have is refused.
  auto third_sockets = second->hand_over_listeners();
  lameduck::server third(on_sockets(third_sockets), [](const request&, response) {});
  std::error_code ec;
  third.start(ec);
  EXPECT_EQ(ec, errc::unusable_passed_socket);
  EXPECT_TRUE(first->close().get().graceful);
}

TEST(Handover, TheOldServerBehavesAsAfterStopAccepting) {
  auto first = generation(1, on_loopback());
  raw_client kept(first->port());
  kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(body_of(kept.read_response()), "generation 1");
  auto sockets = first->hand_over_listeners();
  EXPECT_FALSE(first->ready());
  EXPECT_EQ(first->stop_accepting().wait_for(5s), std::future_status::ready);
  kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");  // keep-alive goes on
  EXPECT_EQ(body_of(kept.read_response()), "generation 1");
  EXPECT_TRUE(eventually([&] { return first->counts()[connection_state::idle] == 1; }));
  auto report = first->close().get();
  EXPECT_TRUE(report.graceful);
  EXPECT_EQ(report.closed_by_state[static_cast<std::size_t>(connection_state::idle)], 1u);
  for (const auto& s : sockets)
    ::close(s.fd);
}

TEST(Handover, MisuseGetsItsErrorAndLeaksNothing) {
  lameduck::server idle_server(on_loopback(), [](const request&, response res) { res.send(""); });
  std::error_code ec;
  EXPECT_TRUE(idle_server.hand_over_listeners(ec).empty());
  EXPECT_EQ(ec, make_error_code(errc::not_running));
  EXPECT_THROW(idle_server.hand_over_listeners(), std::system_error);

  auto first = generation(1, on_loopback());
  auto sockets = first->hand_over_listeners(ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(first->hand_over_listeners(ec).empty()) << "twice";
  EXPECT_EQ(ec, make_error_code(errc::listeners_closed));
  for (const auto& s : sockets)
    ::close(s.fd);

  auto second = generation(2, on_loopback());
  second->stop_accepting();
  EXPECT_TRUE(second->hand_over_listeners(ec).empty());
  EXPECT_EQ(ec, make_error_code(errc::listeners_closed));

  // A socket of the wrong kind: start fails, and the server closed it all the same.
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const auto udp_socket = identity(udp);
  lameduck::server wrong(on_sockets({{udp, false}}),
                         [](const request&, response res) { res.send(""); });
  wrong.start(ec);
  EXPECT_EQ(ec, make_error_code(errc::unusable_passed_socket));
  EXPECT_NE(identity(udp), udp_socket) << "closed, not leaked";
  // Given and never started on: closed with the server.
  int unused = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const auto unused_socket = identity(unused);
  {
    lameduck::server never(on_sockets({{unused, false}}),
                           [](const request&, response res) { res.send(""); });
  }
  EXPECT_NE(identity(unused), unused_socket);
}

}  // namespace
}  // namespace lameduck::testing
