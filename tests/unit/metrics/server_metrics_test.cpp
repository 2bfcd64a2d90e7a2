// A loop's counters and the scrape written from them: status classes, the bucket a duration
// falls in (a bound is inclusive, as Prometheus's "le" says), sums over loops, and the text of
// every family. (tests/integration/metrics_test.cpp checks them against real traffic.)

#include "metrics/server_metrics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace lameduck::detail {
namespace {

constexpr std::int64_t ms = 1'000'000;

TEST(ServerMetrics, AResponseCountsInItsClassAndItsBucket) {
  loop_counters c;
  c.count_response(200, 0);
  c.count_response(204, 5 * ms);      // on the first bound: le="0.005" holds it
  c.count_response(404, 5 * ms + 1);  // just past it
  c.count_response(503, 600 * ms);
  c.count_response(101, 20'000 * ms);  // past the last bound
  c.count_response(999, -1);           // a clock that went back counts as no time
  EXPECT_EQ(c.responses[1].load(), 1u);
  EXPECT_EQ(c.responses[2].load(), 2u);
  EXPECT_EQ(c.responses[4].load(), 1u);
  EXPECT_EQ(c.responses[5].load(), 1u);
  EXPECT_EQ(c.responses[9].load(), 1u);
  EXPECT_EQ(c.duration_buckets[0].load(), 3u);
  EXPECT_EQ(c.duration_buckets[1].load(), 1u);
  EXPECT_EQ(c.duration_buckets[7].load(), 1u) << "0.6 s is in le=\"1\"";
  EXPECT_EQ(c.duration_buckets.back().load(), 1u);
  EXPECT_EQ(c.duration_sum_ns.load(), static_cast<std::uint64_t>(20'610 * ms + 1));
}

TEST(ServerMetrics, TheBoundsInSecondsAndNanosecondsAgree) {
  for (std::size_t i = 0; i < request_duration_bounds.size(); ++i) {
    EXPECT_EQ(static_cast<std::int64_t>(request_duration_bounds[i] * 1e9 + 0.5),
              request_duration_bounds_ns[i]);
  }
}

TEST(ServerMetrics, TotalsSumTheLoops) {
  loop_counters a, b;
  a.accepted.add(2);
  b.accepted.add(3);
  a.sent_bytes.add(10);
  b.received_bytes.add(7);
  a.count_response(200, 0);
  b.count_response(200, 2 * ms);
  loop_totals t;
  t.add(a);
  t.add(b);
  loop_totals earlier;
  earlier.closed = 4;
  earlier.aborted = 1;
  earlier.accepted = 1;
  t.add(earlier);
  EXPECT_EQ(t.accepted, 6u);
  EXPECT_EQ(t.sent_bytes, 10u);
  EXPECT_EQ(t.received_bytes, 7u);
  EXPECT_EQ(t.responses[2], 2u);
  EXPECT_EQ(t.duration_buckets[0], 2u);
  EXPECT_EQ(t.duration_sum_ns, static_cast<std::uint64_t>(2 * ms));
  EXPECT_EQ(t.closed, 4u);
  EXPECT_EQ(t.aborted, 1u);
}

TEST(ServerMetrics, TheScrapeWritesEveryFamily) {
  server_metrics_sample s;
  s.open[static_cast<std::size_t>(connection_state::idle)] = 4;
  s.open[static_cast<std::size_t>(connection_state::active)] = 1;
  s.max_connections = 100;
  s.totals.accepted = 9;
  s.totals.closed = 4;
  s.totals.responses[2] = 7;
  s.totals.responses[7] = 1;  // a handler may answer 7xx: it appears once it occurs
  s.totals.duration_buckets[0] = 7;
  s.totals.duration_buckets[5] = 1;
  s.totals.duration_sum_ns = 1'500'000'000;
  s.ready = true;
  s.draining = true;
  s.lame_duck = true;
  s.stops_forced = 2;
  const std::string text = write_server_metrics(s);
  for (const char* line : {
           "# TYPE lameduck_connections gauge\n",
           "lameduck_connections{state=\"fresh\"} 0\n",
           "lameduck_connections{state=\"active\"} 1\n",
           "lameduck_connections{state=\"idle\"} 4\n",
           "lameduck_connections{state=\"upgraded\"} 0\n",
           "lameduck_connections{state=\"closing\"} 0\n",
           "lameduck_connections_max 100\n",
           "# TYPE lameduck_connections_accepted_total counter\n",
           "lameduck_connections_accepted_total 9\n",
           "lameduck_connections_rejected_total 0\n",
           "lameduck_connections_closed_total 4\n",
           "# TYPE lameduck_requests_total counter\n",
           "lameduck_requests_total{code=\"1xx\"} 0\n",
           "lameduck_requests_total{code=\"2xx\"} 7\n",
           "lameduck_requests_total{code=\"5xx\"} 0\n",
           "lameduck_requests_total{code=\"7xx\"} 1\n",
           "lameduck_requests_aborted_total 0\n",
           "# TYPE lameduck_request_duration_seconds histogram\n",
           "lameduck_request_duration_seconds_bucket{le=\"0.005\"} 7\n",
           "lameduck_request_duration_seconds_bucket{le=\"0.1\"} 7\n",
           "lameduck_request_duration_seconds_bucket{le=\"0.25\"} 8\n",
           "lameduck_request_duration_seconds_bucket{le=\"+Inf\"} 8\n",
           "lameduck_request_duration_seconds_sum 1.5\n",
           "lameduck_request_duration_seconds_count 8\n",
           "lameduck_received_bytes_total 0\n",
           "lameduck_sent_bytes_total 0\n",
           "lameduck_ready 1\n",
           "lameduck_draining 1\n",
           "lameduck_lame_duck 1\n",
           "lameduck_stops_total{outcome=\"graceful\"} 0\n",
           "lameduck_stops_total{outcome=\"forced\"} 2\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "is missing from:\n" << text;
  }
  EXPECT_EQ(text.find("closed\"}"), std::string::npos) << "closed is a total, not a state";
  EXPECT_EQ(text.find("6xx"), std::string::npos) << "classes past 5xx only once they occur";
}

}  // namespace
}  // namespace lameduck::detail
