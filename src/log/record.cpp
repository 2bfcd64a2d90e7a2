// Formatting of log records: text, logfmt (key=value, quoted when needed, as Heroku and
// Grafana Loki read it) and JSON lines (one object per line).

#include "log/record.hpp"

#include <cmath>
#include <cstdio>

namespace lameduck::detail {

namespace {

constexpr std::string_view prefix = "lameduck: ";

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(c));
          out += buffer;
        } else {
          out += c;  // UTF-8 passes as it is
        }
    }
  }
  out += '"';
}

// A logfmt value: bare when it is a plain word, else quoted with \" and \\ escaped.
void append_logfmt_string(std::string& out, std::string_view s) {
  bool bare = !s.empty();
  for (const char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) bare = false;
  }
  if (bare) {
    out += s;
    return;
  }
  append_json_string(out, s);  // the same escapes, which logfmt readers accept
}

std::string number(double d) {
  if (!std::isfinite(d)) return "0";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", d);
  return buffer;
}

void append_value(std::string& out, log_format f, const log_value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    if (f == log_format::json) {
      append_json_string(out, *s);
    } else {
      append_logfmt_string(out, *s);
    }
  } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
    out += std::to_string(*i);
  } else if (const auto* b = std::get_if<bool>(&v)) {
    out += *b ? "true" : "false";
  } else {
    out += number(std::get<double>(v));
  }
}

}  // namespace

std::string format_log(log_format f, const log_record& r) {
  if (f == log_format::text) return r.message;
  std::string_view msg = r.message;
  if (msg.starts_with(prefix)) msg.remove_prefix(prefix.size());
  std::string out;
  if (f == log_format::json) {
    out += "{\"msg\":";
    append_json_string(out, msg);
    for (const auto& [key, value] : r.fields) {
      out += ',';
      append_json_string(out, key);
      out += ':';
      append_value(out, f, value);
    }
    out += '}';
  } else {
    out += "msg=";
    append_logfmt_string(out, msg);
    for (const auto& [key, value] : r.fields) {
      out += ' ';
      out += key;
      out += '=';
      append_value(out, f, value);
    }
  }
  return out;
}

std::string format_plain_log(log_format f, std::string_view line) {
  if (f == log_format::text) return std::string(line);
  return format_log(f, {std::string(line), {}});
}

}  // namespace lameduck::detail
