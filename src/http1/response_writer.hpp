#pragma once
// Serialises responses into bytes: status line, header block, body framing. No I/O.

#include <cstdint>
#include <string>
#include <string_view>

namespace lameduck::http1 {

/// The reason phrase of a status code ("Not Found"); "Unknown" when it has none here.
std::string_view reason_phrase(int status) noexcept;

/// How a response body is delimited on the wire.
enum class framing : std::uint8_t {
  content_length,  ///< "Content-Length: N", then N bytes
  chunked,         ///< "Transfer-Encoding: chunked"
  until_close,     ///< no length; the end of the body is the end of the connection (HTTP/1.0)
  none,            ///< no body by definition (1xx, 204, 304)
};

/// Whether a status code forbids a body (RFC 9110 section 6.4.1).
constexpr bool status_forbids_body(int status) noexcept {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/// The head of a response as the connection completes it.
struct response_head {
  int status = 200;
  std::string_view fields;  ///< the handler's fields, each "Name: value\r\n"
  framing body_framing = framing::content_length;
  std::uint64_t content_length = 0;
  bool close = false;           ///< say "Connection: close"
  bool keep_alive_1_0 = false;  ///< say "Connection: keep-alive" to an HTTP/1.0 client
};

/// Appends the status line and header block (with Date) to out.
void write_head(std::string& out, const response_head& head);
/// Appends one chunk of a chunked body; an empty piece writes nothing.
void write_chunk(std::string& out, std::string_view piece);
/// Appends the last chunk that ends a chunked body.
void write_last_chunk(std::string& out);
/// Appends a complete error response that closes the connection, with a one-line text body:
/// the detail given, or the status's reason phrase.
void write_error(std::string& out, int status, std::string_view detail = {});

/// The value for the Date header, formatted at most once a second on each thread.
std::string_view http_date() noexcept;

}  // namespace lameduck::http1
