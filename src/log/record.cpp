// Formatting of log records: text, logfmt (key=value, quoted when needed, as Heroku and
// Grafana Loki read it) and JSON lines (one object per line).

#include "log/record.hpp"

#include <cmath>
#include <cstdio>

namespace lameduck::detail {

namespace {

constexpr std::string_view prefix = "lameduck: ";

// The length of the well-formed UTF-8 sequence at the start of s (RFC 3629, section 4: no
// overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF), or 0 when its first
// byte begins none. The second byte's range depends on the first; the others are 80..BF.
std::size_t utf8_sequence_length(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;   // below: overlong
    if (lead == 0xed) high = 0x9f;  // above: a surrogate
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;   // below: overlong
    if (lead == 0xf4) high = 0x8f;  // above: past U+10FFFF
  } else {
    return 0;  // 80..C1 (a continuation, or an overlong 2-byte lead) or F5..FF
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  }
  return length;
}

// A JSON string. JSON text must be UTF-8 (RFC 8259, section 8.1) and shippers reject lines
// that are not, while workers print whatever bytes they like: each byte that does not begin a
// well-formed sequence becomes U+FFFD, one per byte, as Go's encoding/json writes it.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
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
        } else if (const std::size_t n = utf8_sequence_length(s.substr(i)); n > 0) {
          out += s.substr(i, n);
          i += n;
          continue;
        } else {
          out += "\xef\xbf\xbd";  // U+FFFD REPLACEMENT CHARACTER
        }
    }
    ++i;
  }
  out += '"';
}

// A logfmt value: bare when it is a plain ASCII word, else quoted with \" and \\ escaped.
// Bytes from 0x80 up are quoted too (whatever char's signedness), so that they go through
// append_json_string's UTF-8 check: logfmt readers expect UTF-8 as much as JSON ones do.
void append_logfmt_string(std::string& out, std::string_view s) {
  bool bare = !s.empty();
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f || c == '"' || c == '=' || c == '\\') bare = false;
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
  // Text keeps the bytes as written, invalid UTF-8 included: it is for a person at a terminal
  // or grep, who should see exactly what the worker printed (a terminal shows its own
  // replacement glyph), and nothing parses it as UTF-8 and rejects the line.
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
