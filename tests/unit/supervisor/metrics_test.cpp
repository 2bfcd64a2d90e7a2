// The supervisor's scrape and a scraper's exchange, from memory: what each family reports
// from a status and counters, and the one response a connection gets for each kind of
// request. The real-process test in tests/integration/supervisor_test.cpp scrapes a running
// supervisor with curl and parses it with Prometheus's own parser.

#include "metrics.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lameduck::supervisor {
namespace {

worker_status worker(int slot, pid_t pid, std::string state, std::uint64_t memory = 0) {
  worker_status w;
  w.slot = slot;
  w.pid = pid;
  w.state = std::move(state);
  w.ready = w.state == "ready";
  w.memory_bytes = memory;
  return w;
}

std::vector<program_metrics> sample() {
  program_metrics web;
  web.status.name = "web";
  web.status.instances = 3;
  web.status.generation = 4;
  web.status.reload = "running";
  web.status.workers = {
      worker(0, 10, "ready", 1000),    worker(0, 13, "replacing", 7),
      worker(1, 11, "starting", 2000), worker(2, 0, "restarting in 1.20s"),
      worker(1, 9, "stopping", 5),     worker(2, 8, "killed", 5),
  };
  web.counters.restarts = {{"signal", 2}, {"memory", 1}};
  web.counters.reloads = {{"ok", 3}};
  web.counters.exits = {{"graceful", 5}, {"forced", 1}};
  program_metrics jobs;
  jobs.status.name = "jobs";
  jobs.status.instances = 1;
  jobs.status.generation = 1;
  jobs.status.reload = "idle";
  return {web, jobs};
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(SupervisorMetrics, ReportWorkersByStateAndEveryCounterFromZero) {
  const std::string text = format_metrics(sample(), 2, 7);
  for (const std::string line : {
           "lameduck_supervisor_workers{program=\"web\",state=\"ready\"} 1",
           "lameduck_supervisor_workers{program=\"web\",state=\"starting\"} 1",
           "lameduck_supervisor_workers{program=\"web\",state=\"replacing\"} 1",
           "lameduck_supervisor_workers{program=\"web\",state=\"restarting\"} 1",
           "lameduck_supervisor_workers{program=\"web\",state=\"stopping\"} 1",
           "lameduck_supervisor_workers{program=\"web\",state=\"killed\"} 1",
           "lameduck_supervisor_workers{program=\"jobs\",state=\"ready\"} 0",
           "lameduck_supervisor_instances{program=\"web\"} 3",
           "lameduck_supervisor_generation{program=\"web\"} 4",
           "lameduck_supervisor_reload_running{program=\"web\"} 1",
           "lameduck_supervisor_reload_running{program=\"jobs\"} 0",
           "lameduck_supervisor_reloads_total{program=\"web\",outcome=\"ok\"} 3",
           "lameduck_supervisor_reloads_total{program=\"web\",outcome=\"failed\"} 0",
           "lameduck_supervisor_restarts_total{program=\"web\",reason=\"signal\"} 2",
           "lameduck_supervisor_restarts_total{program=\"web\",reason=\"memory\"} 1",
           "lameduck_supervisor_restarts_total{program=\"web\",reason=\"exit\"} 0",
           "lameduck_supervisor_restarts_total{program=\"jobs\",reason=\"not_ready\"} 0",
           "lameduck_supervisor_worker_exits_total{program=\"web\",outcome=\"graceful\"} 5",
           "lameduck_supervisor_worker_exits_total{program=\"web\",outcome=\"forced\"} 1",
           "lameduck_supervisor_worker_exits_total{program=\"web\",outcome=\"failed\"} 0",
           "# TYPE lameduck_supervisor_upgrades_total counter",
           "lameduck_supervisor_upgrades_total 2",
           "# TYPE lameduck_supervisor_log_lines_dropped_total counter",
           "lameduck_supervisor_log_lines_dropped_total 7",
       }) {
    EXPECT_TRUE(has_line(text, line)) << line << " in\n" << text;
  }
}

TEST(SupervisorMetrics, ReportTheMemoryOfEachSlotsServingWorkerOnly) {
  const std::string text = format_metrics(sample(), 0);
  EXPECT_TRUE(
      has_line(text, "lameduck_supervisor_worker_resident_bytes{program=\"web\",slot=\"0\"} 1000"))
      << text;
  EXPECT_TRUE(
      has_line(text, "lameduck_supervisor_worker_resident_bytes{program=\"web\",slot=\"1\"} 2000"))
      << text;
  // Not the replacement, not the workers stopping, not the slot waiting to restart.
  std::size_t samples = 0;
  for (std::size_t at = 0;
       (at = text.find("\nlameduck_supervisor_worker_resident_bytes{", at)) != std::string::npos;
       ++at)
    ++samples;
  EXPECT_EQ(samples, 2u) << text;
}

// Feeds request in pieces of `step` bytes; the response, or "" if none came.
std::string answer_to(std::string_view request, std::size_t step = 1 << 20) {
  metrics_exchange e;
  int scrapes = 0;
  for (std::size_t at = 0; at < request.size() && !e.answered(); at += step) {
    e.feed(request.substr(at, step), [&] {
      ++scrapes;
      return std::string("lameduck_supervisor_upgrades_total 0\n");
    });
  }
  EXPECT_LE(scrapes, 1);
  return e.response();
}

std::string header(const std::string& response, const std::string& name) {
  const auto at = response.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  const auto from = at + name.size() + 4;
  return response.substr(from, response.find("\r\n", from) - from);
}

TEST(SupervisorMetricsExchange, GetMetricsIsTheScrapeAndTheConnectionCloses) {
  const std::string r = answer_to("GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_EQ(header(r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(header(r, "Cache-Control"), "no-store");
  EXPECT_EQ(header(r, "Connection"), "close");
  EXPECT_EQ(header(r, "Content-Length"), "37");
  EXPECT_TRUE(r.ends_with("\r\n\r\nlameduck_supervisor_upgrades_total 0\n")) << r;
  // Byte by byte, as a slow client sends it; with a query, as a URL may carry one.
  EXPECT_EQ(answer_to("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 1).substr(0, 17),
            "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(answer_to("GET /metrics HTTP/1.1\r\nHost: a\r\n"), "") << "not complete yet";
}

TEST(SupervisorMetricsExchange, HeadHasTheHeadersWithoutTheBody) {
  const std::string r = answer_to("HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_EQ(header(r, "Content-Length"), "37");
  EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;
}

TEST(SupervisorMetricsExchange, OtherPathsAre404AndOtherMethods405) {
  const std::string missing = answer_to("GET /metric HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(missing.starts_with("HTTP/1.1 404 Not Found\r\n")) << missing;
  EXPECT_EQ(header(missing, "Connection"), "close");
  EXPECT_TRUE(answer_to("POST /x HTTP/1.1\r\nHost: a\r\n\r\n").starts_with("HTTP/1.1 404"));
  const std::string post = answer_to("POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << post;
  EXPECT_EQ(header(post, "Allow"), "GET, HEAD");
  EXPECT_EQ(header(post, "Connection"), "close");
}

TEST(SupervisorMetricsExchange, BadOrOversizedRequestsGetTheParsersStatus) {
  EXPECT_TRUE(answer_to("GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400 "))
      << answer_to("GARBAGE\r\n\r\n");
  const std::string long_target = "GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n\r\n";
  EXPECT_TRUE(answer_to(long_target, 100).starts_with("HTTP/1.1 414 ")) << answer_to(long_target);
  const std::string big_head =
      "GET /metrics HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'b') + "\r\n\r\n";
  EXPECT_TRUE(answer_to(big_head, 100).starts_with("HTTP/1.1 431 ")) << answer_to(big_head);
  EXPECT_TRUE(answer_to("GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
                  .starts_with("HTTP/1.1 413 "));
}

TEST(SupervisorMetricsExchange, ALateRequestIs408) {
  metrics_exchange e;
  EXPECT_FALSE(e.feed("GET /metr", [] { return std::string(); }));
  e.time_out();
  EXPECT_TRUE(e.response().starts_with("HTTP/1.1 408 Request Timeout\r\n")) << e.response();
  EXPECT_EQ(header(e.response(), "Connection"), "close");
}

}  // namespace
}  // namespace lameduck::supervisor
