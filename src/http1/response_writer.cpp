#include "http1/response_writer.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>

namespace lameduck::http1 {

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

namespace {

void append_number(std::string& out, std::uint64_t n, int base = 10) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n, base);
  out.append(buf, r.ptr);
}

}  // namespace

std::string_view http_date() noexcept {
  struct cache {
    std::time_t second = -1;
    char text[32];
    std::size_t size = 0;
  };
  thread_local cache c;
  std::time_t now = std::time(nullptr);
  if (now != c.second) {
    // IMF-fixdate (RFC 9110 section 5.6.7) is English whatever the program's locale, which
    // strftime's %a and %b would follow.
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm;
    ::gmtime_r(&now, &tm);
    int n = std::snprintf(c.text, sizeof c.text, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                          days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                          tm.tm_hour, tm.tm_min, tm.tm_sec);
    c.size = n > 0 ? static_cast<std::size_t>(n) : 0;
    c.second = now;
  }
  return {c.text, c.size};
}

namespace {

// Builds the fixed part of a head in one buffer, so that it reaches the output in one append.
class head_buffer {
 public:
  void add(std::string_view s) noexcept { end_ += s.copy(end_, s.size()); }
  void add_number(std::uint64_t n) noexcept { end_ = std::to_chars(end_, end_ + 20, n).ptr; }
  std::string_view view() const noexcept { return {buf_, static_cast<std::size_t>(end_ - buf_)}; }

 private:
  // The longest: a status line with the longest reason (31), Date, Content-Length with 20
  // digits, and a Connection field: well under 192.
  char buf_[192];
  char* end_ = buf_;
};

}  // namespace

void write_head(std::string& out, const response_head& head) {
  head_buffer b;
  if (head.status == 200) {
    b.add("HTTP/1.1 200 OK");  // nearly every response: no number to format
  } else {
    b.add("HTTP/1.1 ");
    b.add_number(static_cast<std::uint64_t>(head.status));
    b.add(" ");
    b.add(reason_phrase(head.status));
  }
  b.add("\r\nDate: ");
  b.add(http_date());
  b.add("\r\n");
  switch (head.body_framing) {
    case framing::content_length:
      b.add("Content-Length: ");
      b.add_number(head.content_length);
      b.add("\r\n");
      break;
    case framing::chunked:
      b.add("Transfer-Encoding: chunked\r\n");
      break;
    case framing::until_close:
    case framing::none:
      break;
  }
  if (head.close) {
    b.add("Connection: close\r\n");
  } else if (head.keep_alive_1_0) {
    b.add("Connection: keep-alive\r\n");
  }
  out.append(b.view());
  out.append(head.fields);
  out.append("\r\n");
}

void write_chunk(std::string& out, std::string_view piece) {
  if (piece.empty()) return;  // an empty chunk would end the body
  append_number(out, piece.size(), 16);
  out.append("\r\n");
  out.append(piece);
  out.append("\r\n");
}

void write_last_chunk(std::string& out) {
  out.append("0\r\n\r\n");
}

void write_error(std::string& out, int status, std::string_view detail) {
  const std::string_view text = detail.empty() ? reason_phrase(status) : detail;
  response_head head;
  head.status = status;
  head.content_length = text.size() + 1;
  head.close = true;
  head.fields = "Content-Type: text/plain\r\n";
  write_head(out, head);
  out.append(text);
  out.push_back('\n');
}

}  // namespace lameduck::http1
