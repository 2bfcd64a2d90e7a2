#pragma once
// One line of the server's log, written in the format server_options::log_format asks for:
// text for people, logfmt or JSON lines for log shippers. A record is a message and fields;
// the text format writes the message alone (it already says everything, for a person), the
// structured ones the message as "msg" followed by every field.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <lameduck/options.hpp>

namespace lameduck::detail {

/// A field's value: text, a count, a yes/no, or a measurement.
using log_value = std::variant<std::string, std::int64_t, bool, double>;

/// A log line before formatting.
struct log_record {
  /// For a person: what happened, with the figures that matter ("lameduck: ..." in text).
  std::string message;
  /// For a machine, in order; "msg" is written first and must not be among them.
  std::vector<std::pair<std::string, log_value>> fields;

  /// Adds a field; returns *this, to chain.
  log_record& add(std::string key, log_value value) {
    fields.emplace_back(std::move(key), std::move(value));
    return *this;
  }
};

/// The record as one line (no newline) in format f.
std::string format_log(log_format f, const log_record& r);

/// A plain line (what the server wrote before records existed, or server::log's argument) as
/// a record: its message with a leading "lameduck: " dropped from "msg" in structured formats.
std::string format_plain_log(log_format f, std::string_view line);

}  // namespace lameduck::detail
