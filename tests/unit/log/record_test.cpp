// Log records in each server_options::log_format: text is the message alone, logfmt and JSON
// lines carry it as msg (without "lameduck: ") followed by every field, escaped so that a
// shipper reads back exactly what was written.

#include "log/record.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

// What a JSON reader makes of msg in the line written for message.
std::string json_msg(std::string_view message) {
  return nlohmann::json::parse(format_plain_log(log_format::json, message))
      .at("msg")
      .get<std::string>();
}

constexpr std::string_view fffd = "\xef\xbf\xbd";

std::string replaced(int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += fffd;
  return s;
}

TEST(LogRecord, WellFormedUtf8PassesUnchangedInJsonAndLogfmt) {
  // One of each length, and the edges of each range: U+0080, U+07FF, U+0800, U+D7FF,
  // U+E000, U+FFFF, U+10000, U+10FFFF.
  const std::string text =
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x86 \xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf"
      "\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf";
  EXPECT_EQ(format_plain_log(log_format::json, text), "{\"msg\":\"" + text + "\"}");
  EXPECT_EQ(format_plain_log(log_format::logfmt, text), "msg=\"" + text + "\"");
  EXPECT_EQ(json_msg(text), text);
}

TEST(LogRecord, EachInvalidUtf8ByteBecomesOneReplacementCharacter) {
  struct example {
    std::string_view what;
    std::string input;
    std::string expected;
  };
  const example examples[] = {
      {"a lone continuation byte", "a\x80z", "a" + replaced(1) + "z"},
      {"Latin-1", "caf\xe9!", "caf" + replaced(1) + "!"},
      {"bytes that never occur", "\xfe\xff\xf5", replaced(3)},
      {"an overlong 2-byte '/'", "\xc0\xaf", replaced(2)},
      {"an overlong 2-byte lead C1", "\xc1\xbf", replaced(2)},
      {"an overlong 3-byte NUL", "\xe0\x80\x80", replaced(3)},
      {"an overlong 4-byte U+FFFF", "\xf0\x8f\xbf\xbf", replaced(4)},
      {"a surrogate U+D800", "\xed\xa0\x80", replaced(3)},
      {"a surrogate U+DFFF", "\xed\xbf\xbf", replaced(3)},
      {"past U+10FFFF", "\xf4\x90\x80\x80", replaced(4)},
      {"a sequence cut by ASCII", "\xe2\x82z", replaced(2) + "z"},
      {"a sequence cut by the end", "ok\xf0\x9f\xa6", "ok" + replaced(3)},
      {"a sequence cut by another", "\xe2\xe2\x82\xac", replaced(1) + "\xe2\x82\xac"},
  };
  for (const auto& e : examples) {
    SCOPED_TRACE(e.what);
    EXPECT_EQ(format_plain_log(log_format::json, e.input), "{\"msg\":\"" + e.expected + "\"}");
    EXPECT_EQ(format_plain_log(log_format::logfmt, e.input), "msg=\"" + e.expected + "\"");
  }
}

TEST(LogRecord, ALineWithInvalidBytesInEveryStringParsesAsJson) {
  log_record r{"lameduck: worker said \xff\xfe binary \x80 garbage", {}};
  r.add("line", std::string("Latin-1 caf\xe9 \xed\xa0\x80 \xc3"));
  r.add("ok", std::string("\xe2\x82\xac"));
  const std::string line = format_log(log_format::json, r);
  nlohmann::json parsed;
  ASSERT_NO_THROW(parsed = nlohmann::json::parse(line)) << line;
  EXPECT_EQ(parsed.at("msg"), "worker said " + replaced(2) + " binary " + replaced(1) + " garbage");
  EXPECT_EQ(parsed.at("line"), "Latin-1 caf" + replaced(1) + " " + replaced(3) + " " + replaced(1));
  EXPECT_EQ(parsed.at("ok"), "\xe2\x82\xac");
  EXPECT_EQ(json_msg("\xc0\xaf\xf4\x90\x80\x80"), replaced(6));
}

TEST(LogRecord, TextKeepsTheBytesAsWrittenForATerminal) {
  EXPECT_EQ(format_plain_log(log_format::text, "caf\xe9 \xff"), "caf\xe9 \xff");
}

}  // namespace
}  // namespace lameduck::detail
