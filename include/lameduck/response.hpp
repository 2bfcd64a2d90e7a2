#pragma once
/// @file The response to one request: complete it at once or later, from any thread.

#include <functional>
#include <stop_token>
#include <string>
#include <string_view>

namespace lameduck {

namespace detail {
class exchange;
}

class upgraded_connection;

/// What the server tells the owner of an upgraded connection. Each runs on the connection's
/// loop thread; any may be empty.
struct upgrade_handlers {
  /// Bytes from the client, in order; the first call may carry bytes that came right after
  /// the request. The view is valid during the call only.
  std::function<void(upgraded_connection& self, std::string_view bytes)> on_data;
  /// A graceful drain has begun (called at once if it had already): finish the conversation
  /// and close (a WebSocket sends close code 1001). Otherwise the connection stays open until
  /// the drain's deadline destroys it.
  std::function<void(upgraded_connection& self)> on_shutdown;
  /// The connection has closed: by the client, close(), an error, destroy() or a deadline.
  /// Called once, last.
  std::function<void()> on_close;
};

/// A handle on a connection handed over to another protocol (WebSocket, CONNECT tunnel). The
/// server still owns the socket: it reads, writes, and closes it when the server stops.
/// Copies refer to the same connection; it may be used from any thread. Dropping every handle
/// does not close the connection.
class upgraded_connection {
 public:
  upgraded_connection(const upgraded_connection& other) noexcept;
  upgraded_connection& operator=(const upgraded_connection& other) noexcept;
  ~upgraded_connection();

  /// Queues bytes for the client; discarded once the connection is closing or closed.
  void send(std::string bytes);
  /// Sends what is queued, then closes cleanly (half-close, then the final close).
  void close();

 private:
  friend class detail::exchange;
  explicit upgraded_connection(detail::exchange* e) noexcept : exchange_(e) {}
  detail::exchange* exchange_;
};

/// A move-only handle on the response to one request.
///
/// Complete it with send() (whole body) or with write()... end() (streamed, chunked unless a
/// Content-Length header was set). It may be moved to another thread and completed there; calls
/// from a thread other than the connection's are forwarded to it. A handle dropped before it
/// was completed answers 500. Once the server has given up on the request (the client went
/// away, destroy, a drain's deadline) everything sent through the handle is discarded safely.
/// Operations take effect in the order they were made, whichever threads made them.
///
/// Completing a response on the connection's own thread (from a timer, say) may run the
/// handler of the next pipelined request before send() or end() returns: do not store that
/// request's response where the one being completed still lives.
class response {
 public:
  // Inline: a handle is moved through every layer of handlers (router, middleware) on the way
  // to the one that completes it, and each move leaves an empty handle to destroy.
  response(response&& other) noexcept : exchange_(other.exchange_), head_sent_(other.head_sent_) {
    other.exchange_ = nullptr;
  }
  response& operator=(response&& other) noexcept;
  response(const response&) = delete;
  response& operator=(const response&) = delete;
  /// Answers 500 if the response was never completed.
  ~response() {
    if (exchange_) abandon();
  }

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
  /// Switches the connection to another protocol: sends "101 Switching Protocols" with
  /// "Upgrade: protocol" and the headers set so far, and from then on passes bytes both ways
  /// (see upgrade_handlers). For a CONNECT, pass an empty protocol: the status set (2xx,
  /// default 200) goes out and the connection becomes a tunnel. Throws std::logic_error unless
  /// request::upgrade_requested() and nothing has been sent; completes the response.
  upgraded_connection upgrade(std::string_view protocol, upgrade_handlers handlers);
  /// Whether the response can still be written to (not completed, not moved from).
  bool valid() const noexcept { return exchange_ != nullptr; }
  /// Stop is requested when the server gives up on this request; writes are then discarded.
  std::stop_token stop_token() const noexcept;

 private:
  friend class detail::exchange;
  explicit response(detail::exchange* e) noexcept : exchange_(e) {}
  void release() noexcept;
  void abandon() noexcept;  // the handle is destroyed before the response was completed
  detail::exchange* exchange_ = nullptr;
  bool head_sent_ = false;
};

}  // namespace lameduck
