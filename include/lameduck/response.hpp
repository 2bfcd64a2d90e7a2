#pragma once
/// @file The response to one request: complete it at once or later, from any thread.

#include <stop_token>
#include <string>
#include <string_view>

namespace lameduck {

namespace detail {
class exchange;
}

/// A move-only handle on the response to one request.
///
/// Complete it with send() (whole body) or with write()... end() (streamed, chunked unless a
/// Content-Length header was set). It may be moved to another thread and completed there; calls
/// from a thread other than the connection's are forwarded to it. A handle dropped before it
/// was completed answers 500. Once the server has given up on the request (the client went
/// away, destroy, a drain's deadline) everything sent through the handle is discarded safely.
class response {
 public:
  response(response&& other) noexcept;
  response& operator=(response&& other) noexcept;
  response(const response&) = delete;
  response& operator=(const response&) = delete;
  /// Answers 500 if the response was never completed.
  ~response();

  /// Sets the final status code, 200 to 999 (default 200); only before the first write() or
  /// send(). Throws std::invalid_argument otherwise (1xx are the server's to send).
  response& status(int code);
  /// Adds a header field; only before the first write() or send(). Throws
  /// std::invalid_argument unless the name is a token and the value has no control character.
  response& header(std::string_view name, std::string_view value);
  /// Completes the response with this body.
  void send(std::string body);
  /// Sets the status and completes the response with this body.
  void send(int code, std::string body) {
    status(code);
    send(std::move(body));
  }
  /// Sends one piece of a streamed response; the head goes out with the first piece.
  void write(std::string_view piece);
  /// Completes a streamed response.
  void end();
  /// Whether the response can still be written to (not completed, not moved from).
  bool valid() const noexcept { return exchange_ != nullptr; }
  /// Stop is requested when the server gives up on this request; writes are then discarded.
  std::stop_token stop_token() const noexcept;

 private:
  friend class detail::exchange;
  explicit response(detail::exchange* e) noexcept : exchange_(e) {}
  void release() noexcept;
  detail::exchange* exchange_ = nullptr;
  bool head_sent_ = false;
};

}  // namespace lameduck
