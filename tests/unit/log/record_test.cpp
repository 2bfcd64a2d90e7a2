// Log records in each server_options::log_format: text is the message alone, logfmt and JSON
// lines carry it as msg (without "lameduck: ") followed by every field, escaped so that a
// shipper reads back exactly what was written.

#include "log/record.hpp"

#include <gtest/gtest.h>

namespace lameduck::detail {
namespace {

log_record sample() {
  log_record r{"lameduck: stopped gracefully in 0.500 s", {}};
  r.add("event", std::string("stopped"))
      .add("graceful", true)
      .add("took_s", 0.5)
      .add("requests_completed", std::int64_t{3});
  return r;
}

TEST(LogRecord, TextIsTheMessageAlone) {
  EXPECT_EQ(format_log(log_format::text, sample()), "lameduck: stopped gracefully in 0.500 s");
}

TEST(LogRecord, LogfmtQuotesTheMessageAndWritesEveryFieldInOrder) {
  EXPECT_EQ(format_log(log_format::logfmt, sample()),
            "msg=\"stopped gracefully in 0.500 s\" event=stopped graceful=true took_s=0.500 "
            "requests_completed=3");
}

TEST(LogRecord, JsonIsOneObjectWithTheMessageFirstAndTypedFields) {
  EXPECT_EQ(format_log(log_format::json, sample()),
            "{\"msg\":\"stopped gracefully in 0.500 s\",\"event\":\"stopped\",\"graceful\":true,"
            "\"took_s\":0.500,\"requests_completed\":3}");
}

TEST(LogRecord, QuotesBackslashesAndControlBytesAreEscapedSoTheLineStaysOneLine) {
  log_record r{"a \"quoted\" \\ line\nand\ttab\x01", {}};
  r.add("path", std::string("/x=1 y"));
  r.add("bare", std::string("word"));
  r.add("empty", std::string());
  EXPECT_EQ(format_log(log_format::json, r),
            "{\"msg\":\"a \\\"quoted\\\" \\\\ line\\nand\\ttab\\u0001\",\"path\":\"/x=1 y\","
            "\"bare\":\"word\",\"empty\":\"\"}");
  EXPECT_EQ(format_log(log_format::logfmt, r),
            "msg=\"a \\\"quoted\\\" \\\\ line\\nand\\ttab\\u0001\" path=\"/x=1 y\" bare=word "
            "empty=\"\"");
}

TEST(LogRecord, APlainLineBecomesARecordWithItsMessageOnly) {
  EXPECT_EQ(format_plain_log(log_format::text, "lameduck: handler threw: x"),
            "lameduck: handler threw: x");
  EXPECT_EQ(format_plain_log(log_format::logfmt, "lameduck: handler threw: x"),
            "msg=\"handler threw: x\"");
  EXPECT_EQ(format_plain_log(log_format::json, "app: started"), "{\"msg\":\"app: started\"}");
}

}  // namespace
}  // namespace lameduck::detail
