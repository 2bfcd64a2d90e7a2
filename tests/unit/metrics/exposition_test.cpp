// The text exposition format 0.0.4: HELP and TYPE before the samples, label values and HELP
// text escaped, cumulative histogram buckets ending in +Inf, values that read back exactly,
// and names the format does not allow refused. (tests/integration/metrics_test.cpp feeds the
// same output to Prometheus's own parser.)

#include "metrics/exposition.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include <gtest/gtest.h>

namespace lameduck::detail {
namespace {

TEST(Exposition, AFamilyIsItsHelpAndTypeThenItsSamples) {
  exposition_writer w;
  w.family("lameduck_connections_accepted_total", metric_type::counter, "Connections accepted.");
  w.sample(42);
  w.family("lameduck_connections", metric_type::gauge, "Open connections by state.");
  w.sample({{"state", "idle"}}, 3);
  w.sample({{"state", "active"}, {"listener", "health"}}, std::size_t{1});
  EXPECT_EQ(w.text(),
            "# HELP lameduck_connections_accepted_total Connections accepted.\n"
            "# TYPE lameduck_connections_accepted_total counter\n"
            "lameduck_connections_accepted_total 42\n"
            "# HELP lameduck_connections Open connections by state.\n"
            "# TYPE lameduck_connections gauge\n"
            "lameduck_connections{state=\"idle\"} 3\n"
            "lameduck_connections{state=\"active\",listener=\"health\"} 1\n");
}

TEST(Exposition, LabelValuesEscapeBackslashQuoteAndNewline) {
  exposition_writer w;
  w.family("x", metric_type::gauge, "h");
  w.sample({{"path", "C:\\dir \"quoted\"\nnext"}, {"utf8", "caf\xc3\xa9"}}, 1);
  EXPECT_EQ(w.text(),
            "# HELP x h\n# TYPE x gauge\n"
            "x{path=\"C:\\\\dir \\\"quoted\\\"\\nnext\",utf8=\"caf\xc3\xa9\"} 1\n");
}

TEST(Exposition, HelpEscapesBackslashAndNewlineButNotQuotes) {
  exposition_writer w;
  w.family("x", metric_type::counter, "a \"quoted\" \\ help\nsecond line");
  EXPECT_EQ(w.text(),
            "# HELP x a \"quoted\" \\\\ help\\nsecond line\n"
            "# TYPE x counter\n");
}

TEST(Exposition, ValuesReadBackExactly) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(1), "1");
  EXPECT_EQ(format_metric_value(0.005), "0.005");
  EXPECT_EQ(format_metric_value(-2.5), "-2.5");
  EXPECT_EQ(format_metric_value(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::quiet_NaN()), "NaN");

  exposition_writer w;
  w.family("big_total", metric_type::counter, "h");
  w.sample(std::numeric_limits<std::uint64_t>::max());  // past 2^53: exact as an integer
  w.sample(std::int64_t{-7});
  w.sample(1.5);
  EXPECT_EQ(w.text(),
            "# HELP big_total h\n# TYPE big_total counter\n"
            "big_total 18446744073709551615\nbig_total -7\nbig_total 1.5\n");
}

TEST(Exposition, AHistogramIsCumulativeBucketsEndingInInfThenSumAndCount) {
  exposition_writer w;
  w.family("lameduck_request_duration_seconds", metric_type::histogram, "Request time.");
  const std::array<double, 3> bounds{0.005, 0.1, 1};
  const std::array<std::uint64_t, 4> counts{2, 0, 3, 1};  // one above the last bound
  w.histogram({{"code", "2xx"}}, bounds, counts, 2.75);
  w.histogram({}, bounds, std::array<std::uint64_t, 4>{}, 0);
  EXPECT_EQ(w.text(),
            "# HELP lameduck_request_duration_seconds Request time.\n"
            "# TYPE lameduck_request_duration_seconds histogram\n"
            "lameduck_request_duration_seconds_bucket{code=\"2xx\",le=\"0.005\"} 2\n"
            "lameduck_request_duration_seconds_bucket{code=\"2xx\",le=\"0.1\"} 2\n"
            "lameduck_request_duration_seconds_bucket{code=\"2xx\",le=\"1\"} 5\n"
            "lameduck_request_duration_seconds_bucket{code=\"2xx\",le=\"+Inf\"} 6\n"
            "lameduck_request_duration_seconds_sum{code=\"2xx\"} 2.75\n"
            "lameduck_request_duration_seconds_count{code=\"2xx\"} 6\n"
            "lameduck_request_duration_seconds_bucket{le=\"0.005\"} 0\n"
            "lameduck_request_duration_seconds_bucket{le=\"0.1\"} 0\n"
            "lameduck_request_duration_seconds_bucket{le=\"1\"} 0\n"
            "lameduck_request_duration_seconds_bucket{le=\"+Inf\"} 0\n"
            "lameduck_request_duration_seconds_sum 0\n"
            "lameduck_request_duration_seconds_count 0\n");
}

TEST(Exposition, NamesOutsideTheFormatAreRefused) {
  EXPECT_TRUE(valid_metric_name("lameduck_up"));
  EXPECT_TRUE(valid_metric_name("job:rate5m"));
  EXPECT_TRUE(valid_metric_name("_x9"));
  EXPECT_FALSE(valid_metric_name(""));
  EXPECT_FALSE(valid_metric_name("9lives"));
  EXPECT_FALSE(valid_metric_name("has-dash"));
  EXPECT_FALSE(valid_metric_name("has space"));
  EXPECT_TRUE(valid_label_name("state"));
  EXPECT_TRUE(valid_label_name("_x"));
  EXPECT_FALSE(valid_label_name("__name__"));
  EXPECT_FALSE(valid_label_name("a:b"));
  EXPECT_FALSE(valid_label_name("1a"));
  EXPECT_FALSE(valid_label_name(""));

  exposition_writer w;
  EXPECT_THROW(w.family("bad-name", metric_type::gauge, "h"), std::invalid_argument);
  w.family("ok", metric_type::gauge, "h");
  EXPECT_THROW(w.sample({{"bad-label", "v"}}, 1), std::invalid_argument);
  w.family("h", metric_type::histogram, "h");
  const std::array<double, 1> bounds{1};
  const std::array<std::uint64_t, 2> counts{1, 1};
  EXPECT_THROW(w.histogram({{"le", "1"}}, bounds, counts, 1), std::invalid_argument);
}

TEST(Exposition, SamplesThatDoNotFitTheirFamilyAreRefused) {
  exposition_writer w;
  EXPECT_THROW(w.sample(1), std::logic_error);  // no family yet
  const std::array<double, 2> bounds{1, 2};
  const std::array<std::uint64_t, 3> counts{};
  w.family("g", metric_type::gauge, "h");
  EXPECT_THROW(w.histogram({}, bounds, counts, 0), std::logic_error);
  w.family("h", metric_type::histogram, "h");
  EXPECT_THROW(w.sample(1), std::logic_error);
  EXPECT_THROW(w.histogram({}, bounds, std::array<std::uint64_t, 2>{}, 0), std::invalid_argument);
  const std::array<double, 2> descending{2, 1};
  EXPECT_THROW(w.histogram({}, descending, counts, 0), std::invalid_argument);
  const std::array<double, 2> infinite{1, std::numeric_limits<double>::infinity()};
  EXPECT_THROW(w.histogram({}, infinite, counts, 0), std::invalid_argument);
}

TEST(Exposition, TakeEmptiesTheWriter) {
  exposition_writer w;
  w.family("g", metric_type::gauge, "h");
  w.sample(1);
  EXPECT_EQ(w.take(), "# HELP g h\n# TYPE g gauge\ng 1\n");
  EXPECT_EQ(w.text(), "");
  EXPECT_THROW(w.sample(1), std::logic_error);  // the family went with the text
}

}  // namespace
}  // namespace lameduck::detail
