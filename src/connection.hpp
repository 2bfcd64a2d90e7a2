#pragma once
// One HTTP/1.1 connection: reads requests, hands them to the handler one at a time, writes
// the responses in order, and closes cleanly. Written over a Stream (tcp_stream, and later a
// TLS stream) so that every transport shares this code. Every state change goes through
// set_state() in server.cpp, the lifecycle file.

#include <netinet/in.h>
#include <sys/epoll.h>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

#include <lameduck/server.hpp>

#include "exchange.hpp"
#include "http1/response_writer.hpp"
#include "net/loop.hpp"
#include "net/tcp_stream.hpp"
#include "http1/request_builder.hpp"

namespace lameduck::detail {

/// What every connection has whatever its stream: its state, registry place and timeout.
class connection_base : public event_target, public registry_hook, public timeout_hook {
 public:
  connection_base(loop& l, const sockaddr* peer, socklen_t peer_size) noexcept;
  virtual ~connection_base() = default;
  connection_base(const connection_base&) = delete;
  connection_base& operator=(const connection_base&) = delete;

  /// The timeout this connection waited on has passed.
  virtual void on_timeout(timeout_kind k) = 0;
  /// The socket reported readiness (epoll events): input, room for output, or an error.
  virtual void on_ready(std::uint32_t events) = 0;
  /// Closes the connection now, whatever it is doing (destroy, a drain's deadline).
  virtual void abort() = 0;
  /// A drain has reached the connection, or its idle grace has ended (see loop::draining).
  virtual void on_drain() = 0;
  /// Carries out what the response handle asked (on the loop thread).
  virtual void on_response(response_op op, std::string& data) = 0;

  connection_state state() const noexcept { return state_; }

  loop& owner;
  std::int64_t deadline_ns = 0;  ///< when the armed timeout passes
  std::int64_t created_ns;
  std::int64_t idle_since_ns = 0;
  std::uint64_t id = 0;        ///< unique within the server
  std::uint64_t requests = 0;  ///< requests answered completely
  timeout_kind timeout = timeout_kind::none;
  bool health_only = false;  ///< accepted on a health_options::listen address
  sockaddr_in6 peer{};

 private:
  friend void set_state(connection_base& c, connection_state s) noexcept;
  connection_state state_ = connection_state::closed;  // not yet registered
};

/// Performs every change of a connection's state: registry, counts, and what the server's
/// lifecycle does on it (server.cpp).
void set_state(connection_base& c, connection_state s) noexcept;
/// What answers a connection's requests: the server's handler, or the health endpoints alone
/// (server.cpp).
const handler& handler_of(const connection_base& c) noexcept;
/// Writes one line to the server's log (server.cpp).
void log_line(loop& l, std::string_view line);
/// Counts a request answered completely, or abandoned (server.cpp).
void count_request(loop& l, bool completed) noexcept;

template <class Stream>
class connection final : public connection_base {
 public:
  connection(loop& l, Stream stream, const sockaddr* peer, socklen_t peer_size)
      : connection_base(l, peer, peer_size), stream_(std::move(stream)) {}

  /// Registers the connection and starts reading its first request.
  void start() {
    set_state(*this, connection_state::fresh);
    owner.arm(*this, timeout_kind::header);
    // epoll reports data that is already there when the socket is added, so no read is
    // tried before the first readiness event.
    drained_ = true;
    watch();
  }

  /// Registers the connection only to answer it with an error status and close it.
  void reject(int status) {
    set_state(*this, connection_state::fresh);
    fail(status);
    if (watch()) pump();
  }

  void on_ready(std::uint32_t events) override {
    if (phase_ == phase::closed) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) drained_ = false;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hung_up_ = true;
    pump();  // also retries a write held up by a full socket
  }

  void abort() override {
    if (phase_ == phase::closed) return;
    // A response already produced (a handler that answered and then destroyed its own server)
    // is given one chance to go out before the close.
    if (exchange_ && exchange_->output_sent < exchange_->output.size()) flush();
    close_now();
    maybe_delete();
  }

  void on_drain() override {
    if (phase_ == phase::upgraded) return notify_shutdown();
    // A request in progress finishes (its response says "Connection: close"); a connection
    // already closing goes on lingering; in the idle grace, idle ones wait for a request.
    if (phase_ != phase::reading || mid_request() || owner.keep_idle) return;
    resume();  // read() serves what has already arrived, and closes when nothing has
  }

  void on_timeout(timeout_kind k) override {
    timeout = timeout_kind::none;
    switch (k) {
      case timeout_kind::header:
        // A client that never sent a byte gets no answer, only a clean close.
        if (mid_request()) {
          fail(408);
        } else {
          begin_close();
        }
        break;
      case timeout_kind::body:
        fail(408);
        break;
      case timeout_kind::idle:
        begin_close();
        break;
      case timeout_kind::write:
      case timeout_kind::linger:
      case timeout_kind::none:
        close_now();
        break;
    }
    resume();
  }

  void on_response(response_op op, std::string& data) override {
    if (phase_ == phase::upgraded) return on_upgraded_op(op, data);
    if (phase_ != phase::handling) return;
    auto& ex = *exchange_;
    switch (op) {
      case response_op::send:
        write_head(framing_for(data.size()), data.size());
        if (body_allowed_) ex.output.append(data);
        finish_response(true);
        break;
      case response_op::write:
        if (!head_written_) write_head(streaming_framing(), ex.declared_length.value_or(0));
        if (body_allowed_) {
          if (framing_ == http1::framing::chunked) {
            http1::write_chunk(ex.output, data);
          } else {
            ex.output.append(data);
          }
        }
        body_written_ += data.size();
        break;
      case response_op::end:
        if (!head_written_) {
          write_head(framing_for(0), ex.declared_length.value_or(0));
        } else if (framing_ == http1::framing::chunked && body_allowed_) {
          http1::write_last_chunk(ex.output);
        }
        // A streamed body that does not match its declared length leaves the client unable
        // to find the next response: finish it as aborted, which closes the connection.
        finish_response(framing_ != http1::framing::content_length || !body_allowed_ ||
                        body_written_ == ex.declared_length.value_or(body_written_));
        break;
      case response_op::abort:
        finish_response(false);
        break;
      case response_op::upgrade:
        upgrade();
        break;
      case response_op::upgraded_send:
      case response_op::upgraded_close:
        break;  // not upgraded
    }
    if (!in_pump_) resume();  // inside the handler, the running pump carries on
  }

 private:
  enum class phase : std::uint8_t {
    reading,    // receiving a request (or waiting for the next one)
    handling,   // the handler has the request; its response is not complete
    upgraded,   // handed over to another protocol: bytes both ways (upgrade_handlers)
    closing,    // writing what is left, then half-closing
    lingering,  // half-closed: reading and discarding until the client closes or time is up
    closed,
  };

  // Re-enters the state machine after an event that did not come from a read-readiness wait:
  // read readiness may have been reported while no read wait was queued.
  void resume() {
    drained_ = false;
    pump();
  }

  void pump() {
    if (in_pump_) return;  // the running pump sees what changed
    in_pump_ = true;
    while (step()) {
    }
    in_pump_ = false;
    if (phase_ == phase::closed) maybe_delete();
  }

  // Does one thing; false when the connection now waits for an event.
  bool step() {
    switch (phase_) {
      case phase::reading:
        if (has_input()) return parse();
        if (!flush()) return false;
        return read();
      case phase::handling:
        flush();  // a streamed response goes out as it is written
        return false;
      case phase::upgraded:
        return step_upgraded();
      case phase::closing:
        if (!flush()) return false;
        stream_.shutdown_send();
        phase_ = phase::lingering;
        owner.arm(*this, timeout_kind::linger);
        return true;
      case phase::lingering:
        return linger();
      case phase::closed:
        return false;
    }
    return false;
  }

  // Sends the head that switches protocols; from then on bytes pass both ways.
  void upgrade() {
    auto& ex = *exchange_;
    http1::response_head head;
    head.status = ex.status;
    head.fields = ex.fields;
    head.body_framing = http1::framing::none;
    http1::write_head(ex.output, head);
    count_request(owner, true);
    ++requests;
    phase_ = phase::upgraded;
    upgraded_ = true;
    set_state(*this, connection_state::upgraded);
    // A drain that began before the switch is told at once.
    if (owner.draining) notify_shutdown();
  }

  void on_upgraded_op(response_op op, std::string& data) {
    if (op == response_op::upgraded_send) {
      exchange_->output.append(data);
    } else if (op == response_op::upgraded_close) {
      begin_close();
    }
    if (!in_pump_) resume();
  }

  // Writes what is queued, hands what arrived to on_data, then reads.
  bool step_upgraded() {
    flush();  // reading goes on while output waits for room
    if (phase_ != phase::upgraded) return true;
    auto& ex = *exchange_;
    if (has_input()) {
      std::string_view bytes(ex.input.get() + ex.input_begin, ex.input_end - ex.input_begin);
      ex.input_begin = ex.input_end = 0;
      if (ex.upgrade.on_data) {
        auto self = exchange::new_upgraded(ex);
        ex.upgrade.on_data(self, bytes);
        owner.refresh_now();
      }
      return true;
    }
    if (drained_) return false;
    std::error_code ec;
    std::size_t n = stream_.read_some(ex.input.get(), exchange::input_capacity, ec);
    if (ec && would_block(ec)) {
      drained_ = true;
      return false;
    }
    if (ec) {
      close_now();
      return false;
    }
    if (n == 0) {
      begin_close();  // the client is done sending: what is queued still goes out, then ours
      return true;
    }
    ex.input_begin = 0;
    ex.input_end = n;
    drained_ = n < exchange::input_capacity && !hung_up_;
    return true;
  }

  // Tells the owner of an upgraded connection that a drain has begun; posted, so that its code
  // never runs inside the server's walk over connections.
  void notify_shutdown() {
    if (shutdown_notified_ || !exchange_->upgrade.on_shutdown) return;
    shutdown_notified_ = true;
    owner.post([self = exchange::new_upgraded(*exchange_)]() mutable {
      exchange& ex = exchange::of(self);
      if (ex.conn && ex.conn->state() == connection_state::upgraded) ex.upgrade.on_shutdown(self);
    });
  }

  bool has_input() const noexcept {
    return exchange_ && exchange_->input_begin < exchange_->input_end;
  }

  bool read() {
    if (!mid_request()) {
      if (state() == connection_state::active) go_idle();
      if (state() != connection_state::active) release_exchange();
    }
    // In a drain, a connection between requests is closed, but only after one more read: a
    // request whose bytes are already in the socket is answered, never reset.
    const bool close_if_nothing_arrived = owner.draining && !owner.keep_idle && !mid_request();
    if (drained_ && !close_if_nothing_arrived) return false;  // the next edge resumes us
    acquire_exchange();
    auto& ex = *exchange_;
    if (ex.input_begin == ex.input_end) ex.input_begin = ex.input_end = 0;
    if (ex.input_end == exchange::input_capacity) {  // compact the unparsed rest
      std::memmove(ex.input.get(), ex.input.get() + ex.input_begin, ex.input_end - ex.input_begin);
      ex.input_end -= ex.input_begin;
      ex.input_begin = 0;
    }
    std::size_t room = exchange::input_capacity - ex.input_end;
    std::error_code ec;
    std::size_t n = stream_.read_some(ex.input.get() + ex.input_end, room, ec);
    if (ec && would_block(ec)) {
      drained_ = true;
      if (state() != connection_state::active) release_exchange();
      if (close_if_nothing_arrived) return begin_close(), true;  // half-close and linger
      return false;
    }
    if (ec || n == 0) {
      close_now();  // the client closed or failed; nothing of ours is left to deliver
      return false;
    }
    ex.input_end += n;
    // A short read emptied the socket: the next read waits for an edge. Unless the client has
    // finished sending: its end of stream came with the same edge and is yet to be read.
    drained_ = n < room && !hung_up_;
    if (state() == connection_state::idle) {
      set_state(*this, connection_state::active);
      owner.arm(*this, timeout_kind::header);
    } else if (state() == connection_state::fresh) {
      set_state(*this, connection_state::active);  // the header timeout runs from the accept
    }
    return true;
  }

  bool parse() {
    auto& ex = *exchange_;
    if (request_done_) {
      // Only now, when the next request begins, is the last one forgotten: its handler may
      // read the request until the response is complete and the handler has returned.
      ex.parser.reset();
      request_done_ = false;
    }
    std::size_t used = 0;
    auto event =
        ex.parser.feed({ex.input.get() + ex.input_begin, ex.input_end - ex.input_begin}, used);
    ex.input_begin += used;
    using event_t = http1::request_parser::event;
    switch (event) {
      case event_t::need_more:
        if (ex.parser.head_complete()) owner.arm(*this, timeout_kind::body);  // progress
        return true;
      case event_t::headers_complete:
        if (ex.parser.expects_continue() && !has_input()) {
          ex.output.append("HTTP/1.1 100 Continue\r\n\r\n");
        }
        owner.arm(*this, timeout_kind::body);
        return true;
      case event_t::message_complete:
        request_done_ = true;
        dispatch();
        return true;
      case event_t::error:
        fail(ex.parser.error_status());
        return true;
    }
    return true;
  }

  void dispatch() {
    auto& ex = *exchange_;
    auto& req = ex.parser.get();
    phase_ = phase::handling;
    owner.arm(*this, timeout_kind::none);
    if (ex.stop.stop_requested()) ex.stop = std::stop_source{};
    request_builder::set_peer(req, peer);
    request_builder::set_stop(req, ex.stop);
    ex.status = 200;
    ex.fields.clear();
    ex.declared_length.reset();
    ex.close_requested = false;
    head_written_ = false;
    body_written_ = 0;
    try {
      handler_of (*this)(req, exchange::new_response(ex));
    } catch (const std::exception& e) {
      log_line(owner, std::string("lameduck: handler threw: ") + e.what());
    } catch (...) {
      log_line(owner, "lameduck: handler threw an exception not derived from std::exception");
    }
    owner.refresh_now();  // the handler may have taken its time
  }

  http1::framing framing_for(std::size_t) {
    if (http1::status_forbids_body(exchange_->status)) return http1::framing::none;
    return http1::framing::content_length;
  }

  http1::framing streaming_framing() {
    auto& ex = *exchange_;
    if (http1::status_forbids_body(ex.status)) return http1::framing::none;
    if (ex.declared_length) return http1::framing::content_length;
    if (ex.parser.get().version() >= 11) return http1::framing::chunked;
    return http1::framing::until_close;
  }

  void write_head(http1::framing f, std::uint64_t length) {
    auto& ex = *exchange_;
    const auto& req = ex.parser.get();
    framing_ = f;
    body_allowed_ = f != http1::framing::none && !ex.parser.is_head();
    // In a drain, only a pipelined request already received keeps the connection open.
    close_after_ = !req.keep_alive() || ex.close_requested || f == http1::framing::until_close ||
                   (owner.draining && !has_input());
    http1::response_head head;
    head.status = ex.status;
    head.fields = ex.fields;
    head.body_framing = f;
    head.content_length = length;
    head.close = close_after_;
    head.keep_alive_1_0 = req.version() < 11;
    http1::write_head(ex.output, head);
    head_written_ = true;
  }

  void finish_response(bool complete) {
    count_request(owner, complete);
    if (complete) ++requests;
    if (complete && !close_after_) {
      phase_ = phase::reading;
    } else {
      begin_close();
    }
  }

  // Answers a bad request with its status and closes after it.
  void fail(int status) {
    acquire_exchange();
    exchange_->input_begin = exchange_->input_end;  // nothing after a bad request is trusted
    http1::write_error(exchange_->output, status);
    begin_close();
  }

  void begin_close() {
    if (phase_ == phase::closed || phase_ == phase::lingering) return;
    if (phase_ == phase::handling) exchange_->stop.request_stop();
    phase_ = phase::closing;
    owner.arm(*this, timeout_kind::none);
    set_state(*this, connection_state::closing);
  }

  bool linger() {
    char discard[4096];
    for (;;) {
      std::error_code ec;
      std::size_t n = stream_.read_some(discard, sizeof discard, ec);
      if (ec && would_block(ec)) return false;  // the next edge resumes the linger
      if (ec || n == 0) return close_now(), false;
    }
  }

  // Writes pending output; false when the socket is full and a wait for it is queued.
  bool flush() {
    if (!exchange_) return true;
    auto& ex = *exchange_;
    bool progress = false;
    while (ex.output_sent < ex.output.size()) {
      std::error_code ec;
      std::size_t n = stream_.write_some(ex.output.data() + ex.output_sent,
                                         ex.output.size() - ex.output_sent, ec);
      if (ec && would_block(ec)) {
        // The kernel reports the socket writable again once the client has read enough.
        if (progress || timeout != timeout_kind::write) owner.arm(*this, timeout_kind::write);
        return false;
      }
      if (ec) {
        close_now();
        return false;
      }
      ex.output_sent += n;
      progress = true;
    }
    ex.output.clear();
    ex.output_sent = 0;
    if (timeout == timeout_kind::write) restore_timeout();
    return true;
  }

  // Whether part of a request has arrived and it is not complete yet.
  bool mid_request() const noexcept {
    return exchange_ && !request_done_ && exchange_->parser.started();
  }

  void restore_timeout() {
    if (phase_ == phase::reading && mid_request() && exchange_->parser.head_complete()) {
      owner.arm(*this, timeout_kind::body);
    } else if (phase_ == phase::reading && mid_request()) {
      owner.arm(*this, timeout_kind::header);
    } else {
      owner.arm(*this, timeout_kind::none);
    }
  }

  void go_idle() {
    set_state(*this, connection_state::idle);
    owner.arm(*this, timeout_kind::idle);
  }

  void acquire_exchange() {
    if (exchange_) return;
    exchange_ = owner.acquire_exchange();
    exchange_->conn = this;
    request_done_ = false;
  }

  // Idle connections give their buffers back, which keeps an idle connection small.
  void release_exchange() {
    if (!exchange_ || has_input() || !exchange_->output.empty()) return;
    exchange_->conn = nullptr;
    exchange_->release_on_loop();
    exchange_ = nullptr;
  }

  void close_now() {
    if (phase_ == phase::closed) return;
    if (phase_ == phase::handling) {
      exchange_->stop.request_stop();
      count_request(owner, false);
    }
    phase_ = phase::closed;
    owner.arm(*this, timeout_kind::none);
    stream_.close();
    if (upgraded_) {
      // Posted: the owner's code runs outside whatever closed the connection (a walk over every
      // connection, or one of the owner's own handlers, which must not be destroyed while it
      // runs). The handlers, and what they hold, are released after the last call.
      owner.post([self = exchange::new_upgraded(*exchange_)]() mutable {
        exchange& ex = exchange::of(self);
        if (ex.upgrade.on_close) ex.upgrade.on_close();
        ex.upgrade = {};
      });
    }
    if (exchange_) {
      exchange_->conn = nullptr;
      exchange_->release_on_loop();
      exchange_ = nullptr;
    }
    set_state(*this, connection_state::closed);
  }

  void maybe_delete() {
    if (phase_ == phase::closed && !in_pump_ && !retired_) {
      retired_ = true;
      owner.retire(this);
    }
  }

  // Hands the socket to the loop's epoll set, once: edge-triggered for input and output.
  // False when that failed and the connection is gone.
  bool watch() {
    if (owner.watch(stream_.native_handle(), *this)) return true;
    close_now();
    maybe_delete();
    return false;
  }

  Stream stream_;
  exchange* exchange_ = nullptr;
  std::uint64_t body_written_ = 0;
  phase phase_ = phase::reading;
  http1::framing framing_ = http1::framing::content_length;
  bool drained_ = false;  // the last read emptied the socket and no event has been missed since
  bool hung_up_ = false;  // epoll said the client has finished sending (or the socket failed)
  bool in_pump_ = false;
  bool retired_ = false;       // handed to the loop for deletion
  bool request_done_ = false;  // the parser holds a complete request, kept until the next begins
  bool head_written_ = false;
  bool body_allowed_ = true;
  bool close_after_ = false;
  bool upgraded_ = false;           // handed over to another protocol (now or before closing)
  bool shutdown_notified_ = false;  // the upgraded connection's owner was told of the drain
};

}  // namespace lameduck::detail
