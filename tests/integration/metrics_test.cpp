// The metrics endpoint (health_options::metrics_path) of a server in this process: every scrape
// is parsed by Prometheus's own parser (prometheus_parse.py, with Debian's
// python3-prometheus-client), and its figures follow real traffic from real sockets on
// 127.0.0.1: responses by status class, the duration histogram, bytes, connections, readiness
// through set_ready and a drain, stops by outcome across a restart, a health-only listener.

#include <gtest/gtest.h>

#include <array>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <lameduck/lameduck.hpp>

#include "harness.hpp"
#include "metrics/exposition.hpp"

namespace lameduck::testing {
namespace {

/// A scrape as Prometheus's parser read it.
struct scrape {
  std::map<std::string, double> samples;     // "name{label=\"value\",...}" (labels sorted)
  std::map<std::string, std::string> types;  // family -> counter, gauge, histogram
  std::map<std::string, std::string> helps;  // family -> HELP text, as JSON
  double operator[](const std::string& key) const {
    const auto it = samples.find(key);
    if (it == samples.end()) {
      ADD_FAILURE() << "no sample " << key;
      return -1;
    }
    return it->second;
  }
};

/// Parses exposition text with prometheus_parse.py; a parse error fails the test.
scrape parse_with_prometheus(std::string_view text) {
  const auto r = run({"/usr/bin/python3", source_path("prometheus_parse.py")}, 30s, text);
  EXPECT_EQ(r.exit_code, 0) << r.err << "\nthe text:\n" << text;
  scrape s;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("TYPE ") || line.starts_with("HELP ")) {
      const auto space = line.find(' ', 5);
      auto& into = line[0] == 'T' ? s.types : s.helps;
      into[line.substr(5, space - 5)] = line.substr(space + 1);
      continue;
    }
    const auto space = line.rfind(' ');  // label values may hold spaces, the value never does
    s.samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return s;
}

class Metrics : public ::testing::Test {
 protected:
  Metrics() {
    options.listen = {"127.0.0.1:0"};
    options.threads = 2;  // the scrape sums the loops
    options.health = {"/readyz", "/livez", {}, "/metrics"};
    options.log = [](std::string_view) {};
    routes.get("/", [](const request&, response res) { res.send("hello\n"); });
    routes.get("/slow", [this](const request&, response res) {
      // Answered later, from another thread: the duration runs until the response completes.
      std::lock_guard lock(mutex);
      answering.emplace_back([res = std::move(res)]() mutable {
        std::this_thread::sleep_for(600ms);
        res.send("slow\n");
      });
    });
  }
  ~Metrics() override {
    for (auto& t : answering)
      t.join();
  }
  void make_server() { server = std::make_unique<lameduck::server>(options, routes); }
  /// A scrape on a new connection: its raw response.
  std::string scrape_raw(std::uint16_t port = 0) {
    return get_once(port ? port : server->port(), "/metrics");
  }
  scrape scrape_now(std::uint16_t port = 0) {
    const std::string raw = scrape_raw(port);
    EXPECT_EQ(status_of(raw), 200) << raw;
    return parse_with_prometheus(body_of(raw));
  }

  lameduck::server_options options;
  lameduck::router routes;
  std::mutex mutex;
  std::vector<std::thread> answering;
  std::unique_ptr<response> held;  // a response the test answers, or drops, itself
  std::unique_ptr<lameduck::server> server;
};

TEST_F(Metrics, TheScrapeIsPrometheusTextThatItsParserReads) {
  make_server();
  server->start();
  const std::string raw = scrape_raw();
  ASSERT_EQ(status_of(raw), 200) << raw;
  EXPECT_EQ(header_of(raw, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(header_of(raw, "Cache-Control"), "no-store");
  const scrape s = parse_with_prometheus(body_of(raw));
  const std::map<std::string, std::string> expected{
      {"lameduck_connections", "gauge"},
      {"lameduck_connections_max", "gauge"},
      {"lameduck_connections_accepted", "counter"},
      {"lameduck_connections_rejected", "counter"},
      {"lameduck_connections_closed", "counter"},
      {"lameduck_requests", "counter"},
      {"lameduck_requests_aborted", "counter"},
      {"lameduck_request_duration_seconds", "histogram"},
      {"lameduck_received_bytes", "counter"},
      {"lameduck_sent_bytes", "counter"},
      {"lameduck_ready", "gauge"},
      {"lameduck_draining", "gauge"},
      {"lameduck_lame_duck", "gauge"},
      {"lameduck_stops", "counter"},
  };
  EXPECT_EQ(s.types, expected);
  EXPECT_EQ(s["lameduck_connections{state=\"active\"}"], 1) << "the scrape's own";
  for (const char* state : {"fresh", "idle", "upgraded", "closing"}) {
    EXPECT_EQ(s["lameduck_connections{state=\"" + std::string(state) + "\"}"], 0) << state;
  }
  EXPECT_EQ(s["lameduck_connections_max"], 100'000);
  EXPECT_EQ(s["lameduck_connections_accepted_total"], 1);
  EXPECT_EQ(s["lameduck_ready"], 1);
  EXPECT_EQ(s["lameduck_draining"], 0);
  EXPECT_EQ(s["lameduck_lame_duck"], 0);
  EXPECT_EQ(s["lameduck_stops_total{outcome=\"graceful\"}"], 0);
  EXPECT_EQ(s["lameduck_stops_total{outcome=\"forced\"}"], 0);
  for (const char* code : {"1xx", "2xx", "3xx", "4xx", "5xx"}) {
    EXPECT_EQ(s["lameduck_requests_total{code=\"" + std::string(code) + "\"}"], 0) << code;
  }
  // HEAD gets the head alone; another method is the handler's.
  const std::string head = round_trip(server->port(),
                                      "HEAD /metrics HTTP/1.1\r\nHost: t\r\n"
                                      "Connection: close\r\n\r\n");
  EXPECT_EQ(status_of(head), 200) << head;
  EXPECT_EQ(header_of(head, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(head.find("# HELP"), std::string::npos) << head;
  EXPECT_EQ(status_of(round_trip(server->port(),
                                 "POST /metrics HTTP/1.1\r\nHost: t\r\n"
                                 "Content-Length: 0\r\nConnection: close\r\n\r\n")),
            404);
}

TEST_F(Metrics, CountersMoveAsTrafficDoes) {
  make_server();
  server->start();
  const std::uint16_t port = server->port();
  const std::string first_raw = scrape_raw();
  const scrape before = parse_with_prometheus(body_of(first_raw));

  // Every byte each way is counted: the client's requests after the first scrape's (the
  // second scrape's included), the responses from the first scrape's on (not the second's,
  // written after its text was made).
  std::size_t sent = 0, received = first_raw.size();
  auto exchange = [&](std::string_view request) {
    raw_client c(port);
    c.send(request);
    sent += request.size();
    const std::string response = c.read_response();
    received += response.size();
    return status_of(response);
  };
  const std::string get_root = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(exchange(get_root), 200);
  EXPECT_EQ(exchange("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"), 404);
  EXPECT_EQ(exchange("GET / HTTP/1.1\r\n\r\n"), 400) << "no Host: answered by the server itself";
  EXPECT_EQ(exchange("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"), 200);
  // A loop counts a response's bytes once its write returns, and the client may read it and
  // scrape through the other loop before then (CI once saw a response's 80 bytes missing):
  // scrape until the figures are in. Each scrape counts the responses to the ones before it.
  const std::string scrape_request = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
  scrape after;
  auto delta = [&](const std::string& key) { return after[key] - before[key]; };
  int earlier = -1;               // scrapes before the one read
  std::size_t received_then = 0;  // by the client, before the response to the one read
  eventually([&] {
    ++earlier;
    raw_client scraper(port);
    scraper.send(scrape_request);
    sent += scrape_request.size();
    const std::string raw = scraper.read_response();
    received_then = received;
    received += raw.size();
    if (status_of(raw) != 200) return false;
    after = parse_with_prometheus(body_of(raw));
    return delta("lameduck_requests_total{code=\"2xx\"}") == 5 + earlier &&
           delta("lameduck_requests_total{code=\"4xx\"}") == 2 &&
           delta("lameduck_sent_bytes_total") == static_cast<double>(received_then);
  });

  EXPECT_EQ(delta("lameduck_requests_total{code=\"2xx\"}"), 5 + earlier)
      << "3 /, 1 /slow, the 1st scrape and " << earlier << " more";
  EXPECT_EQ(delta("lameduck_requests_total{code=\"4xx\"}"), 2) << "the 404 and the 400";
  EXPECT_EQ(delta("lameduck_requests_total{code=\"5xx\"}"), 0);
  EXPECT_EQ(delta("lameduck_requests_aborted_total"), 0);
  EXPECT_EQ(delta("lameduck_connections_accepted_total"), 7 + earlier)
      << "6 exchanges and the scrapes";
  EXPECT_EQ(delta("lameduck_received_bytes_total"), static_cast<double>(sent));
  EXPECT_EQ(delta("lameduck_sent_bytes_total"), static_cast<double>(received_then));

  // The histogram counts the same responses; only /slow took more than half a second.
  EXPECT_EQ(delta("lameduck_request_duration_seconds_count"), 7 + earlier);
  EXPECT_EQ(delta("lameduck_request_duration_seconds_bucket{le=\"0.5\"}"), 6 + earlier);
  EXPECT_EQ(delta("lameduck_request_duration_seconds_bucket{le=\"1\"}"), 7 + earlier);
  EXPECT_EQ(delta("lameduck_request_duration_seconds_bucket{le=\"+Inf\"}"), 7 + earlier);
  const double sum = delta("lameduck_request_duration_seconds_sum");
  EXPECT_GE(sum, 0.59) << "the loop's clock is a few milliseconds coarse";
  EXPECT_LT(sum, 5.0);

  // Open connections by state add up to accepted minus closed, once the clients' closes are in:
  // then only this scrape's connection is open.
  scrape last;
  EXPECT_TRUE(eventually([&] {
    last = scrape_now();
    return last["lameduck_connections_accepted_total"] -
               last["lameduck_connections_closed_total"] ==
           1;
  })) << "accepted "
      << last["lameduck_connections_accepted_total"] << ", closed "
      << last["lameduck_connections_closed_total"];
  EXPECT_EQ(last["lameduck_connections{state=\"active\"}"], 1);
  EXPECT_EQ(last["lameduck_connections{state=\"idle\"}"], 0);
}

TEST_F(Metrics, AResponseCutOffIsAbortedAndNotARequest) {
  routes.get("/cut", [](const request&, response res) {
    res.write("the start of a stream");  // and the handle is dropped: the response is cut off
  });
  make_server();
  server->start();
  const scrape before = scrape_now();
  raw_client c(server->port());
  c.send("GET /cut HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_NE(c.read_until_close().find("the start of a stream"), std::string::npos);
  const scrape after = scrape_now();
  EXPECT_EQ(after["lameduck_requests_aborted_total"] - before["lameduck_requests_aborted_total"],
            1);
  EXPECT_EQ(after["lameduck_requests_total{code=\"2xx\"}"] -
                before["lameduck_requests_total{code=\"2xx\"}"],
            1)
      << "the first scrape only";
  EXPECT_EQ(after["lameduck_request_duration_seconds_count"] -
                before["lameduck_request_duration_seconds_count"],
            1);
}

TEST_F(Metrics, ReadinessFollowsSetReadyAndEndsWithTheDrain) {
  options.drain.lame_duck_delay = 20s;  // still listening, so a new connection can scrape
  make_server();
  server->set_ready(false);
  server->start();
  EXPECT_EQ(scrape_now()["lameduck_ready"], 0);
  server->set_ready(true);
  EXPECT_EQ(scrape_now()["lameduck_ready"], 1);
  server->set_ready(false);
  EXPECT_EQ(scrape_now()["lameduck_ready"], 0);
  server->set_ready(true);
  const scrape serving = scrape_now();
  EXPECT_EQ(serving["lameduck_ready"], 1);
  EXPECT_EQ(serving["lameduck_draining"], 0);
  EXPECT_EQ(serving["lameduck_lame_duck"], 0);
  auto stopped = server->shutdown(30s);
  const scrape lame_duck = scrape_now();
  EXPECT_EQ(lame_duck["lameduck_ready"], 0) << "from the start of the drain";
  EXPECT_EQ(lame_duck["lameduck_draining"], 1);
  EXPECT_EQ(lame_duck["lameduck_lame_duck"], 1);
  server->destroy();
  EXPECT_EQ(stopped.wait_for(10s), std::future_status::ready);
}

TEST_F(Metrics, AnsweredInTheDrainProperOnAConnectionItKeeps) {
  options.drain.idle_grace = 20s;  // the idle connection waits for its next request
  make_server();
  server->start();
  raw_client kept(server->port());
  kept.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(status_of(kept.read_response()), 200);
  auto stopped = server->shutdown(30s);
  // The listeners are closed now; the kept connection still gets its answer, the last one.
  kept.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string raw = kept.read_response();
  ASSERT_EQ(status_of(raw), 200) << raw;
  EXPECT_EQ(header_of(raw, "Connection"), "close");
  const scrape s = parse_with_prometheus(body_of(raw));
  EXPECT_EQ(s["lameduck_ready"], 0);
  EXPECT_EQ(s["lameduck_draining"], 1);
  EXPECT_EQ(s["lameduck_lame_duck"], 0);
  EXPECT_EQ(s["lameduck_connections{state=\"active\"}"], 1);
  EXPECT_EQ(stopped.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(stopped.get().graceful);
}

TEST_F(Metrics, StopsAreCountedByOutcomeAndCountsGoOnAcrossARestart) {
  options.listen = {"127.0.0.1:0"};
  routes.get("/hang", [this](const request&, response res) {
    std::lock_guard lock(mutex);
    held = std::make_unique<response>(std::move(res));
  });
  make_server();
  server->start();
  const scrape first = scrape_now();
  EXPECT_TRUE(server->close().get().graceful);

  server->start();  // the same server object, on a new port
  const scrape second = scrape_now();
  EXPECT_EQ(second["lameduck_stops_total{outcome=\"graceful\"}"], 1);
  EXPECT_EQ(second["lameduck_stops_total{outcome=\"forced\"}"], 0);
  EXPECT_EQ(second["lameduck_connections_accepted_total"], 2) << "counted from the first run on";
  EXPECT_EQ(second["lameduck_requests_total{code=\"2xx\"}"],
            first["lameduck_requests_total{code=\"2xx\"}"] + 1);
  EXPECT_EQ(second["lameduck_connections_closed_total"], 1);

  // A request held past the drain's deadline is cut off: a forced stop.
  raw_client c(server->port());
  c.send("GET /hang HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex);
    return held != nullptr;
  }));
  EXPECT_FALSE(server->shutdown(100ms).get().graceful);
  server->start();
  const scrape third = scrape_now();
  EXPECT_EQ(third["lameduck_stops_total{outcome=\"graceful\"}"], 1);
  EXPECT_EQ(third["lameduck_stops_total{outcome=\"forced\"}"], 1);
  EXPECT_EQ(third["lameduck_requests_aborted_total"], 1);
  server->destroy().wait();
  std::lock_guard lock(mutex);
  held.reset();
}

TEST_F(Metrics, OnAHealthOnlyListenerAndNotOnTheOthers) {
  options.health.listen = {"127.0.0.1:0"};
  make_server();
  server->start();
  const auto addresses = server->local_addresses();
  ASSERT_EQ(addresses.size(), 2u);
  const auto health_port =
      static_cast<std::uint16_t>(std::stoi(addresses[1].substr(addresses[1].rfind(':') + 1)));
  EXPECT_EQ(status_of(get_once(server->port(), "/")), 200);
  EXPECT_EQ(status_of(get_once(server->port(), "/metrics")), 404) << "the handler's";
  const scrape s = scrape_now(health_port);
  EXPECT_EQ(s["lameduck_requests_total{code=\"2xx\"}"], 1);
  EXPECT_EQ(s["lameduck_requests_total{code=\"4xx\"}"], 1);
  EXPECT_EQ(s["lameduck_connections_accepted_total"], 3) << "both listeners count";
  EXPECT_EQ(status_of(get_once(health_port, "/")), 404) << "nothing else there";
}

TEST_F(Metrics, ConnectionsOverTheLimitAreRejectedAnd503) {
  options.limits.max_connections = 1;
  options.threads = 1;
  make_server();
  server->start();
  raw_client holder(server->port());  // the one allowed
  holder.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(status_of(holder.read_response()), 200);
  EXPECT_EQ(status_of(get_once(server->port(), "/metrics")), 503);
  holder.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string raw = holder.read_response();
  const scrape s = parse_with_prometheus(body_of(raw));
  EXPECT_EQ(s["lameduck_connections_rejected_total"], 1);
  EXPECT_EQ(s["lameduck_connections_accepted_total"], 2);
  EXPECT_EQ(s["lameduck_requests_total{code=\"5xx\"}"], 1);
  EXPECT_EQ(s["lameduck_connections_max"], 1);
}

TEST_F(Metrics, TlsHandshakesByResult) {
  const tls_files& files = tls_certificate();
  options.tls_listen = {{"127.0.0.1:0", {{files.certificate, files.key, ""}}}};
  make_server();
  server->start();
  EXPECT_EQ(scrape_now().types.count("lameduck_tls_handshakes"), 1u);
  const std::uint16_t tls_port = [&] {
    const std::string a = server->local_addresses()[1];
    return static_cast<std::uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
  }();
  tls_client_options o;
  o.ca_file = files.ca;
  std::shared_ptr<SSL_SESSION> session;
  {
    raw_client first(tls_port, o);
    first.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(status_of(first.read_response()), 200);  // TLS 1.3 tickets come after it
    session = first.session();
  }
  o.session = session;
  {
    raw_client again(tls_port, o);
    EXPECT_TRUE(again.resumed());
    again.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(status_of(again.read_response()), 200);
  }
  {
    // A handshake record whose message is far too long: OpenSSL refuses it.
    auto garbage = raw_client::plain(tls_port);
    garbage->send(std::string("\x16\x03\x01\x00\x04\x01\xff\xff\xff", 9));
    EXPECT_TRUE(garbage->closed_within(10s));
  }
  scrape s;
  EXPECT_TRUE(eventually([&] {
    s = scrape_now();
    return s["lameduck_tls_handshakes_total{result=\"failed\"}"] == 1;
  }));
  EXPECT_EQ(s["lameduck_tls_handshakes_total{result=\"full\"}"], 1);
  EXPECT_EQ(s["lameduck_tls_handshakes_total{result=\"resumed\"}"], 1);
  // The requests over TLS count as any other: the two, and the first scrape (in plain HTTP).
  EXPECT_EQ(s["lameduck_requests_total{code=\"2xx\"}"], 2 + 1);
}

TEST_F(Metrics, NoTlsFamilyWithoutTlsListeners) {
  make_server();
  server->start();
  EXPECT_EQ(scrape_now().types.count("lameduck_tls_handshakes"), 0u);
}

// The writer's escapes, as Prometheus's parser reads them back (the unit tests check the text).
TEST(MetricsExposition, EscapedHelpAndLabelValuesReadBackExactly) {
  detail::exposition_writer w;
  w.family("t_total", detail::metric_type::counter, "a \"help\" with \\ and\na newline");
  const std::string value = "C:\\dir \"quoted\"\nnext caf\xc3\xa9";
  w.sample({{"path", value}, {"a", "1"}}, 3);
  const scrape s = parse_with_prometheus(w.text());
  EXPECT_EQ(s.helps.at("t"), R"("a \"help\" with \\ and\na newline")");
  EXPECT_EQ(s[R"(t_total{a="1",path="C:\\dir \"quoted\"\nnext caf)"
              "\xc3\xa9"
              R"("})"],
            3);
}

}  // namespace
}  // namespace lameduck::testing
