#pragma once
// The HTTP/1.1 request parser: bytes in, a request out; no I/O, so it is tested and fuzzed
// from memory. Wraps llhttp and adds the limits and the checks llhttp leaves to the server.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>

#include <lameduck/options.hpp>
#include <lameduck/request.hpp>

namespace lameduck::http1 {

/// Parses one request after another from a byte stream into a reusable request.
class request_parser {
 public:
  /// What a call to feed() stopped at.
  enum class event {
    need_more,         ///< every byte given was used; the message is not complete
    headers_complete,  ///< the head is complete and a body follows (time for 100-continue)
    message_complete,  ///< a whole request is ready in get()
    error,             ///< the request is bad; answer error_status() and close
  };

  explicit request_parser(const limits& l);
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  /// Forgets the last message and prepares for the next one; keeps buffer capacity.
  void reset();
  /// Frees each buffer whose capacity is over `keep` bytes (call between messages).
  void release_buffers_over(std::size_t keep) noexcept;
  /// The bytes its buffers have allocated (body, head bytes, field offsets).
  std::size_t buffer_capacity() const noexcept;
  /// Parses from data, stopping after a head with a body, after a message, or at an error;
  /// `consumed` is how many bytes were used.
  event feed(std::string_view data, std::size_t& consumed);

  /// The request; complete after message_complete (head only after headers_complete).
  request& get() noexcept { return request_; }
  /// The status to answer an error with: 400, 413, 414, 417 or 431.
  int error_status() const noexcept { return error_status_; }
  /// A short reason for an error, for logs.
  std::string_view error_reason() const noexcept { return error_reason_; }
  /// Whether any byte of the current message has been parsed.
  bool started() const noexcept { return started_; }
  /// Whether the head of the current message is complete.
  bool head_complete() const noexcept { return head_complete_; }
  /// Whether the client sent "Expect: 100-continue".
  bool expects_continue() const noexcept { return expects_continue_; }
  /// Whether the current request is a HEAD request.
  bool is_head() const noexcept { return method_ == HTTP_HEAD; }

 private:
  friend struct parser_callbacks;
  int fail(int status, const char* reason);
  bool append_field_part(std::string_view part, bool is_value);
  int finish_head();
  int count_trailer_part(std::size_t size, bool begins_field);
  const char* check_line_ends(std::string_view head) const noexcept;
  const char* check_request_line_spaces(std::string_view head) noexcept;
  llhttp_errno_t execute(std::string_view data, std::size_t from, std::size_t& consumed);
  llhttp_errno_t execute_chunked(std::string_view data, std::size_t& consumed);
  bool skip_chunk_extensions(std::string_view data, std::size_t& pos);

  // Where the parser is in a chunked body (RFC 9112 section 7.1), which this class reads itself
  // up to the last chunk: llhttp 8.1 refuses valid chunk extensions and counts them against no
  // limit. llhttp is given the last chunk's size ("0") and its CRLF, then the trailer section:
  // to it the body looks empty, and it still ends the message.
  enum class chunk_state : std::uint8_t {
    off,              // llhttp reads the bytes: the head, or from the last chunk's CR on
    size_start,       // before a chunk size's first hex digit
    size,             // in a chunk size's hex digits
    after_value,      // after a size or a quoted value: BWS ";" or CR may follow
    bws_before_semi,  // in BWS that must end in ";"
    name_start,       // after ";": BWS, then an extension's name
    name,             // in a name: ";", BWS "=" or CR may follow
    bws_after_name,   // in BWS after a name: "=" or ";" must follow
    value_start,      // after "=": BWS, then a token or a quoted-string
    token,            // in a token value
    quoted,           // in a quoted-string value
    quoted_pair,      // after a backslash in a quoted-string
    line_cr,          // at the CR that ends a chunk-size line
    line_lf,          // after it, before its LF
    data,             // in a chunk's data: chunk_left_ bytes to go
    data_cr,          // after a chunk's data, before its CR
    data_lf,          // before its LF
  };

  llhttp_t parser_;
  const limits& limits_;
  request request_;
  std::string arena_;  // method, target and header bytes of the current message
  std::string body_;
  struct field_offsets {
    std::uint32_t name_at, name_size, value_at, value_size;
  };
  std::vector<field_offsets> fields_;
  std::uint32_t method_size_ = 0, target_size_ = 0;
  std::size_t line_bytes_ = 0, header_bytes_ = 0, trailer_count_ = 0;
  std::size_t chunk_extension_bytes_ = 0;  // of every chunk line of this message
  std::uint64_t chunk_left_ = 0;  // the chunk size being read, then the bytes of it to come
  char previous_byte_ = 0;  // the last byte consumed by the previous feed, for checks across feeds
  int error_status_ = 0;
  const char* error_reason_ = "";
  std::uint8_t method_ = 0;
  bool started_ = false, head_complete_ = false, message_complete_ = false;
  bool expects_continue_ = false;
  bool in_name_ = false;       // between a field name's first piece and its end
  bool chunked_body_ = false;  // the head is complete and announced a chunked body
  // The request line's check: bytes of the message seen before its LF, whether the message
  // began with empty lines (then each byte is looked at), and whether the line has begun.
  std::size_t request_line_seen_ = 0;
  bool leading_empty_lines_ = false, request_line_begun_ = false, request_line_ended_ = false;
  chunk_state chunk_ = chunk_state::off;
  std::uint8_t chunk_size_digits_ = 0;  // in the current chunk-size line
};

}  // namespace lameduck::http1
