#pragma once
// One HTTP/1.1 connection over any stream (net/stream.hpp: TCP now, TLS next): reads
// requests, hands them to the handler one at a time, writes the responses in order, and
// closes cleanly.
//
// One state machine. The connection is always in one phase, changed only by enter(), which
// also derives the public state (docs/lifecycle.md) and hands it to worker::set_state():
//
//   phase       public state  what the connection is doing
//   accepted    fresh         waiting for the first byte of the first request
//   receiving   active        reading a request, or writing a response whose request is done
//   handling    active        the handler has the request; its response is not complete
//   idle        idle          keep-alive: the last response is written, no byte of the next
//   upgraded    upgraded      another protocol's bytes pass both ways (upgrade_handlers)
//   closing     closing       writing what is left, then ending the sending direction
//   lingering   closing       half-closed: reading and discarding until the client closes
//   closed      closed        terminal
//
// Besides the phase, a connection keeps the progress of the response it writes (reset for
// each request) and a few facts about its past (history_), which no transition reads back as
// state.

#include <sys/epoll.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

#include "connection_base.hpp"
#include "exchange.hpp"
#include "http1/request_builder.hpp"
#include "http1/response_writer.hpp"
#include "net/stream.hpp"
#include "worker.hpp"

namespace lameduck::detail {

template <stream Stream>
class connection final : public connection_base {
 public:
  connection(worker& w, Stream s, const sockaddr* peer, socklen_t peer_size)
      : connection_base(w, peer, peer_size), stream_(std::move(s)) {}

  /// Registers the connection and starts reading its first request.
  void start() {
    enter(phase::accepted);
    owner.arm(*this, timeout_kind::header);
    watch();
  }

  /// Registers the connection only to answer it with an error status and close it.
  void reject(int status) {
    enter(phase::accepted);
    fail(status);
    if (watch()) pump();
  }

  void on_ready(std::uint32_t events) override {
    if (phase_ == phase::closed) return;
    stream_.on_ready(events);
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
    if (!reading() || mid_request() || waits_in_drain()) return;
    pump();  // read() serves what has already arrived, and closes when nothing has
  }

  void on_timeout() override {
    const timeout_kind k = std::exchange(timeout, timeout_kind::none);
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
    pump();
  }

  void on_response(response_op op, std::string& data) override {
    if (phase_ == phase::upgraded) return on_upgraded_op(op, data);
    if (phase_ != phase::handling) return;
    auto& ex = *exchange_;
    switch (op) {
      case response_op::send:
        write_head(framing_for(data.size()), data.size());
        if (response_.body_allowed) ex.output.append(data);
        finish_response(true);
        break;
      case response_op::write:
        if (!response_.head_written) {
          write_head(streaming_framing(), ex.declared_length.value_or(0));
        }
        if (response_.framing == http1::framing::content_length && response_.body_allowed &&
            response_.body_written + data.size() > ex.declared_length.value_or(0)) {
          // Bytes past the declared length would reach the client as the start of the next
          // response: the body is cut off instead (the client sees it short), as Go refuses
          // such a write.
          finish_response(false);
          break;
        }
        if (response_.body_allowed) {
          if (response_.framing == http1::framing::chunked) {
            http1::write_chunk(ex.output, data);
          } else {
            ex.output.append(data);
          }
        }
        response_.body_written += data.size();
        break;
      case response_op::end:
        if (!response_.head_written) {
          write_head(framing_for(0), ex.declared_length.value_or(0));
        } else if (response_.framing == http1::framing::chunked && response_.body_allowed) {
          http1::write_last_chunk(ex.output);
        }
        // A streamed body that does not match its declared length leaves the client unable
        // to find the next response: finish it as aborted, which closes the connection.
        finish_response(
            response_.framing != http1::framing::content_length || !response_.body_allowed ||
            response_.body_written == ex.declared_length.value_or(response_.body_written));
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
    if (!in_pump_) pump();  // inside the handler, the running pump carries on
  }

 private:
  enum class phase : std::uint8_t {
    accepted,
    receiving,
    handling,
    idle,
    upgraded,
    closing,
    lingering,
    closed,
  };

  // The table above, which enter() applies.
  static constexpr connection_state state_of(phase p) noexcept {
    constexpr connection_state table[] = {
        connection_state::fresh,   connection_state::active,   connection_state::active,
        connection_state::idle,    connection_state::upgraded, connection_state::closing,
        connection_state::closing, connection_state::closed,
    };
    return table[static_cast<std::size_t>(p)];
  }

  // Every phase change: the one place phase_ is assigned, and through it the public state.
  void enter(phase p) noexcept {
    phase_ = p;
    const connection_state s = state_of(p);
    // The first enter() (accepted) registers the connection, whose state read "closed".
    if (s != state()) owner.set_state(*this, s);
  }

  // Whether a drain leaves this connection, between requests, to wait for its next one (which
  // is answered with "Connection: close") until a timeout ends it: in the idle grace, and, once
  // the listeners were handed over, a connection accepted in that instant.
  bool waits_in_drain() const noexcept {
    return owner.keep_idle || (phase_ == phase::accepted && owner.keep_fresh);
  }

  // The phases in which the connection reads requests.
  bool reading() const noexcept {
    return phase_ == phase::accepted || phase_ == phase::receiving || phase_ == phase::idle;
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
      case phase::accepted:
      case phase::receiving:
      case phase::idle:
        if (has_input()) return parse();
        if (!flush()) return false;
        return read();
      case phase::handling:
        flush();  // a streamed response goes out as it is written
        return false;
      case phase::upgraded:
        return step_upgraded();
      case phase::closing: {
        if (!flush()) return false;
        io_result r = stream_.shutdown_send();
        if (r.would_block()) return false;
        if (r.status == io_status::error) return close_now(), false;
        enter(phase::lingering);
        owner.arm(*this, timeout_kind::linger);
        return true;
      }
      case phase::lingering:
        return linger();
      case phase::closed:
        return false;
    }
    return false;
  }

  // Reads the next piece of a request (or the first byte of one).
  bool read() {
    if (!mid_request()) {
      // The last response is written and nothing of the next request has arrived.
      if (phase_ == phase::receiving) go_idle();
      release_exchange();
    }
    // In a drain, a connection between requests is closed, but only after one more read: a
    // request whose bytes are already in the socket is answered, never reset.
    // A client in its TLS handshake is on its way to a request: it is left to send it.
    const bool close_if_nothing_arrived =
        owner.draining && !waits_in_drain() && !mid_request() && !stream_.opening();
    if (!stream_.may_read() && !close_if_nothing_arrived) return false;  // the next edge resumes us
    acquire_exchange();
    auto& ex = *exchange_;
    if (ex.input_begin == ex.input_end) ex.input_begin = ex.input_end = 0;
    if (ex.input_end == exchange::input_capacity) {  // compact the unparsed rest
      std::memmove(ex.input.get(), ex.input.get() + ex.input_begin, ex.input_end - ex.input_begin);
      ex.input_end -= ex.input_begin;
      ex.input_begin = 0;
    }
    io_result r = receive(ex.input.get() + ex.input_end, exchange::input_capacity - ex.input_end);
    if (r.would_block()) {
      if (phase_ != phase::receiving) release_exchange();
      // Half-close and linger; unless this very read began a TLS handshake.
      if (close_if_nothing_arrived && !stream_.opening()) return begin_close(), true;
      return false;
    }
    if (r.status == io_status::other_protocol) {
      fail(400, "This port speaks HTTPS: plain HTTP was sent to it.");
      return true;
    }
    if (r.status != io_status::ok) {
      close_now();  // the client closed or failed; nothing of ours is left to deliver
      return false;
    }
    ex.input_end += r.bytes;
    if (phase_ == phase::idle) {
      enter(phase::receiving);
      owner.arm(*this, timeout_kind::header);
    } else if (phase_ == phase::accepted) {
      enter(phase::receiving);  // the header timeout runs from the accept
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
    if (!ex.parser.started()) ex.request_began_ns = owner.loop().now_ns();
    std::size_t used = 0;
    auto event =
        ex.parser.feed({ex.input.get() + ex.input_begin, ex.input_end - ex.input_begin}, used);
    ex.input_begin += used;
    using event_t = http1::request_parser::event;
    switch (event) {
      case event_t::need_more:
        if (ex.parser.head_complete()) {  // progress in the body, unless it is too slow
          ex.body_rate.add(used);
          if (too_slow(ex.body_rate, owner.timeouts().min_body_rate)) {
            fail(408, "The request body came too slowly.");
            return true;
          }
          owner.arm(*this, timeout_kind::body);
        }
        return true;
      case event_t::headers_complete:
        if (ex.parser.expects_continue() && !has_input()) {
          ex.output.append("HTTP/1.1 100 Continue\r\n\r\n");
        }
        ex.body_rate.start(owner.loop().now_ns());
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
    enter(phase::handling);
    owner.arm(*this, timeout_kind::none);
    if (ex.stop.stop_requested()) ex.stop = std::stop_source{};
    request_builder::set_peer(req, peer);
    request_builder::set_stop(req, ex.stop);
    ex.status = 200;
    ex.fields.clear();
    ex.declared_length.reset();
    ex.close_requested = false;
    response_ = {};
    try {
      owner.handler_for (*this)(req, exchange::new_response(ex));
    } catch (const std::exception& e) {
      owner.log(std::string("lameduck: handler threw: ") + e.what());
    } catch (...) {
      owner.log("lameduck: handler threw an exception not derived from std::exception");
    }
    owner.loop().refresh_now();  // the handler may have taken its time
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
    response_.framing = f;
    response_.body_allowed = f != http1::framing::none && !ex.parser.is_head();
    // In a drain, only a pipelined request already received keeps the connection open.
    response_.close_after = !req.keep_alive() || ex.close_requested ||
                            f == http1::framing::until_close || (owner.draining && !has_input());
    http1::response_head head;
    head.status = ex.status;
    head.fields = ex.fields;
    head.body_framing = f;
    head.content_length = length;
    head.close = response_.close_after;
    head.keep_alive_1_0 = req.version() < 11;
    http1::write_head(ex.output, head);
    response_.head_written = true;
  }

  void finish_response(bool complete) {
    owner.count_request(complete);
    if (complete) {
      ++requests;
      owner.count_response(exchange_->status, exchange_->request_began_ns);
    }
    if (complete && !response_.close_after) {
      enter(phase::receiving);  // the response is still going out; then idle or the next one
      // A pipelined request whose first bytes came with this one has begun: its head is
      // bounded like any other (going idle replaces this with the idle timeout).
      owner.arm(*this, timeout_kind::header);
    } else {
      begin_close();
    }
  }

  // Sends the head that switches protocols; from then on bytes pass both ways.
  void upgrade() {
    auto& ex = *exchange_;
    http1::response_head head;
    head.status = ex.status;
    head.fields = ex.fields;
    head.body_framing = http1::framing::none;
    http1::write_head(ex.output, head);
    owner.count_request(true);
    ++requests;
    owner.count_response(ex.status, ex.request_began_ns);
    history_.upgraded = true;
    enter(phase::upgraded);
    // A drain that began before the switch is told at once.
    if (owner.draining) notify_shutdown();
  }

  void on_upgraded_op(response_op op, std::string& data) {
    if (op == response_op::upgraded_send) {
      exchange_->output.append(data);
    } else if (op == response_op::upgraded_close) {
      begin_close();
    }
    if (!in_pump_) pump();
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
        owner.loop().refresh_now();
      }
      return true;
    }
    if (!stream_.may_read()) return false;
    io_result r = receive(ex.input.get(), exchange::input_capacity);
    if (r.would_block()) return false;
    if (r.status == io_status::eof) {
      begin_close();  // the client is done sending: what is queued still goes out, then ours
      return true;
    }
    if (r.status != io_status::ok) {
      close_now();
      return false;
    }
    ex.input_begin = 0;
    ex.input_end = r.bytes;
    return true;
  }

  // Tells the owner of an upgraded connection that a drain has begun; posted, so that its code
  // never runs inside the server's walk over connections.
  void notify_shutdown() {
    if (history_.shutdown_notified || !exchange_->upgrade.on_shutdown) return;
    history_.shutdown_notified = true;
    owner.loop().post([self = exchange::new_upgraded(*exchange_)]() mutable {
      exchange& ex = exchange::of(self);
      if (ex.conn && ex.conn->state() == connection_state::upgraded) ex.upgrade.on_shutdown(self);
    });
  }

  bool has_input() const noexcept {
    return exchange_ && exchange_->input_begin < exchange_->input_end;
  }

  // Answers a bad request with its status and closes after it.
  void fail(int status, std::string_view detail = {}) {
    // How long the request took, if one had begun; a connection refused at once took none.
    owner.count_response(status,
                         mid_request() ? exchange_->request_began_ns : owner.loop().now_ns());
    acquire_exchange();
    exchange_->input_begin = exchange_->input_end;  // nothing after a bad request is trusted
    http1::write_error(exchange_->output, status, detail);
    begin_close();
  }

  void begin_close() {
    if (phase_ == phase::closed || phase_ == phase::lingering) return;
    if (phase_ == phase::handling) exchange_->stop.request_stop();
    enter(phase::closing);
    owner.arm(*this, timeout_kind::none);
  }

  // Every read from the stream, counted for the metrics.
  io_result receive(char* into, std::size_t size) {
    const io_result r = stream_.read(into, size);
    if (r.status == io_status::ok) owner.metrics.received_bytes.add(r.bytes);
    return r;
  }

  bool linger() {
    char discard[4096];
    for (;;) {
      io_result r = receive(discard, sizeof discard);
      if (r.would_block()) return false;                         // the next edge resumes the linger
      if (r.status != io_status::ok) return close_now(), false;  // the client closed or reset
    }
  }

  // Writes pending output; false when the stream cannot take more now, or failed.
  bool flush() {
    if (!exchange_) return true;
    auto& ex = *exchange_;
    bool progress = false;
    while (ex.output_sent < ex.output.size()) {
      io_result r =
          stream_.write(ex.output.data() + ex.output_sent, ex.output.size() - ex.output_sent);
      if (r.would_block()) {
        // The client holds up our output: from now until all of it is written, it must take
        // it at the least rate (not an upgraded connection's: its protocol paces itself).
        if (!ex.output_rate.running()) {
          ex.output_rate.start(owner.loop().now_ns());
        } else if (progress && !history_.upgraded &&
                   too_slow(ex.output_rate, owner.timeouts().min_response_rate)) {
          close_now();
          return false;
        }
        // The stream is watched for readiness in both directions, so whichever it waits for
        // resumes the connection; the write timeout runs from the last progress.
        if (progress || timeout != timeout_kind::write) owner.arm(*this, timeout_kind::write);
        return false;
      }
      if (r.status != io_status::ok) {
        close_now();
        return false;
      }
      ex.output_sent += r.bytes;
      owner.metrics.sent_bytes.add(r.bytes);
      ex.output_rate.add(r.bytes);
      progress = true;
    }
    ex.output.clear();
    ex.output_sent = 0;
    ex.output_rate.stop();
    if (timeout == timeout_kind::write) restore_timeout();
    return true;
  }

  // Whether a transfer has fallen below its least rate (timeouts::min_body_rate...).
  bool too_slow(const rate_meter& m, const data_rate& least) const noexcept {
    return m.too_slow(owner.loop().now_ns(), least.bytes_per_second,
                      std::chrono::nanoseconds(least.grace).count());
  }

  // Whether part of a request has arrived and it is not complete yet.
  bool mid_request() const noexcept {
    return exchange_ && !request_done_ && exchange_->parser.started();
  }

  void restore_timeout() {
    if (reading() && mid_request() && exchange_->parser.head_complete()) {
      owner.arm(*this, timeout_kind::body);
    } else if (reading() && mid_request()) {
      owner.arm(*this, timeout_kind::header);
    } else {
      owner.arm(*this, timeout_kind::none);
    }
  }

  void go_idle() {
    enter(phase::idle);
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
      owner.count_request(false);
    }
    owner.arm(*this, timeout_kind::none);
    stream_.close();
    if (history_.upgraded) {
      // Posted: the owner's code runs outside whatever closed the connection (a walk over every
      // connection, or one of the owner's own handlers, which must not be destroyed while it
      // runs). The handlers, and what they hold, are released after the last call.
      owner.loop().post([self = exchange::new_upgraded(*exchange_)]() mutable {
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
    enter(phase::closed);
  }

  void maybe_delete() {
    if (phase_ == phase::closed && !in_pump_ && !history_.retired) {
      history_.retired = true;
      owner.loop().retire(this);
    }
  }

  // Hands the stream to the loop's epoll set, once: edge-triggered for input and output.
  // False when that failed and the connection is gone.
  bool watch() {
    if (owner.loop().watch(stream_.native_handle(), *this)) return true;
    close_now();
    maybe_delete();
    return false;
  }

  // The response being written; reset for each request.
  struct response_progress {
    std::uint64_t body_written = 0;
    http1::framing framing = http1::framing::content_length;
    bool head_written = false;
    bool body_allowed = true;
    bool close_after = false;  // the head said "Connection: close"
  };

  // What has happened to the connection; never undone, never a phase.
  struct history {
    bool upgraded = false;           // handed over to another protocol (now or before closing)
    bool shutdown_notified = false;  // the upgraded connection's owner was told of the drain
    bool retired = false;            // handed to the loop for deletion
  };

  // The bytes together after the words: with tcp_stream, a connection is 160 bytes, which
  // malloc serves from its 176-byte bucket (bench/throughput.sh's memory part: 175 bytes per
  // idle connection; 184 bytes here made it 192).
  Stream stream_;
  exchange* exchange_ = nullptr;
  response_progress response_;
  phase phase_ = phase::accepted;
  bool in_pump_ = false;
  bool request_done_ = false;  // the parser holds a complete request, kept until the next begins
  history history_;
};

}  // namespace lameduck::detail
