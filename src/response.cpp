// The response handle and the exchange behind it: how a response completed on any thread
// reaches its connection's worker.

#include <lameduck/response.hpp>

#include <array>
#include <charconv>
#include <exception>
#include <stdexcept>

#include "connection_base.hpp"
#include "exchange.hpp"
#include "http1/ascii.hpp"
#include "worker.hpp"

namespace lameduck {

namespace detail {

exchange::exchange(worker& w, const limits& lim)
    : owner(w),
      owner_serial(w.loop().serial()),
      parser(lim),
      input(new char[input_capacity]),
      anchor_(w.anchor()) {}

void exchange::release_large_buffers() noexcept {
  parser.release_buffers_over(pooled_buffer_bytes);
  if (output.capacity() > pooled_buffer_bytes) std::string().swap(output);
  if (fields.capacity() > pooled_buffer_bytes) std::string().swap(fields);
}

void exchange::reset_for_reuse() {
  refs_.store(1, std::memory_order_relaxed);
  conn = nullptr;
  parser.reset();
  if (stop.stop_requested()) stop = std::stop_source{};
  input_begin = input_end = 0;
  output.clear();
  output_sent = 0;
  body_rate.stop();
  output_rate.stop();
  // Only an upgrade whose connection was gone before it took effect leaves handlers here.
  if (upgrade.on_data || upgrade.on_shutdown || upgrade.on_close) upgrade = {};
}

void exchange::release_on_loop() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) owner.recycle_exchange(this);
}

void exchange::release() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::unique_lock lock(anchor_->mutex);
  worker* w = anchor_->target;
  if (w && w->loop().in_this_thread()) {
    lock.unlock();
    w->recycle_exchange(this);
  } else if (w) {
    // Posted under the lock, so the worker cannot be destroyed in between.
    struct recycle {
      exchange* e;
      recycle(exchange* x) : e(x) {}
      recycle(recycle&& o) noexcept : e(std::exchange(o.e, nullptr)) {}
      ~recycle() { delete e; }  // the worker went away before running this
      void operator()() { e->owner.recycle_exchange(std::exchange(e, nullptr)); }
    };
    w->loop().post(recycle(this));
  } else {
    lock.unlock();
    delete this;
  }
}

void exchange::apply(response_op op, std::string& data) {
  if (conn) conn->on_response(op, data);
}

void exchange::commit(response_op op, std::string&& data) {
  // On the loop's thread an operation is carried out at once, unless some posted from another
  // thread are still to run: then it goes behind them, in the order the application made them
  // (a write from a thread and then end() on the loop lost the write).
  if (event_loop::current_serial() == owner_serial &&
      posted_.load(std::memory_order_acquire) == 0) {
    return apply(op, data);
  }
  std::lock_guard lock(anchor_->mutex);
  if (!anchor_->target) return;  // the server is gone; so is anyone to send this to
  add_ref();
  posted_.fetch_add(1, std::memory_order_release);
  anchor_->target->loop().post(posted_op(this, op, std::move(data)));
}

}  // namespace detail

namespace {

using detail::ascii_iequals;

// RFC 9110 section 5.1: a field name is a token. A table, because every response header of
// every request passes through here.
constexpr std::array<bool, 256> token_chars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c)
    t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c)
    t[c] = t[c - 'a' + 'A'] = true;
  for (unsigned char c : std::string_view("!#$%&'*+-.^_`|~"))
    t[c] = true;
  return t;
}();

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!token_chars[c]) return false;
  }
  return true;
}

// RFC 9110 section 5.5: a field value is SP, HTAB, visible characters and obs-text; no
// control character (CR and LF would let a value inject fields of its own).
bool is_field_value(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 ? c != '\t' : c == 0x7f) return false;
  }
  return true;
}

detail::exchange& completed_check(detail::exchange* e) {
  if (!e) throw std::logic_error("lameduck: response already completed or moved from");
  return *e;
}

}  // namespace

response& response::operator=(response&& other) noexcept {
  if (this != &other) {
    if (exchange_) abandon();
    exchange_ = std::exchange(other.exchange_, nullptr);
    head_sent_ = other.head_sent_;
  }
  return *this;
}

void response::abandon() noexcept {
  if (head_sent_) {
    // Part of a stream went out; its end never will. Closing tells the client it is cut off.
    exchange_->commit(detail::response_op::abort, {});
  } else {
    exchange_->status = 500;
    exchange_->fields.clear();
    exchange_->declared_length.reset();
    exchange_->fields.append("Content-Type: text/plain\r\n");
    exchange_->commit(detail::response_op::send, "Internal Server Error\n");
  }
  release();
}

void response::release() noexcept {
  if (auto* e = std::exchange(exchange_, nullptr)) e->release();
}

response& response::status(int code) {
  auto& ex = completed_check(exchange_);
  if (head_sent_) throw std::logic_error("lameduck: status set after the head was sent");
  // 1xx are interim responses that the server sends itself (100 Continue); a handler's
  // response is final.
  if (code < 200 || code > 999) throw std::invalid_argument("lameduck: status outside 200..999");
  ex.status = code;
  return *this;
}

response& response::header(std::string_view name, std::string_view value) {
  auto& ex = completed_check(exchange_);
  if (head_sent_) throw std::logic_error("lameduck: header set after the head was sent");
  if (!is_token(name) || !is_field_value(value)) {
    throw std::invalid_argument("lameduck: invalid header field");
  }
  // The server owns the framing: it writes Content-Length, Transfer-Encoding, Connection and
  // Date itself, from what the handler says here.
  if (ascii_iequals(name, "content-length")) {
    std::uint64_t n = 0;
    auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || err != std::errc{} || end != value.data() + value.size()) {
      throw std::invalid_argument("lameduck: invalid Content-Length");
    }
    ex.declared_length = n;
    return *this;
  }
  if (ascii_iequals(name, "connection")) {
    if (ascii_iequals(value, "close")) ex.close_requested = true;
    return *this;
  }
  if (ascii_iequals(name, "transfer-encoding") || ascii_iequals(name, "date")) return *this;
  // One resize and copies: four appends cost twice as much on every response.
  const std::size_t at = ex.fields.size();
  ex.fields.resize(at + name.size() + value.size() + 4);
  char* p = ex.fields.data() + at;
  p += name.copy(p, name.size());
  *p++ = ':';
  *p++ = ' ';
  p += value.copy(p, value.size());  // copy(), not memcpy: an empty value may have no data
  *p++ = '\r';
  *p = '\n';
  return *this;
}

void response::send(std::string body) {
  auto& ex = completed_check(exchange_);
  if (head_sent_) throw std::logic_error("lameduck: send() on a streamed response; use end()");
  ex.commit(detail::response_op::send, std::move(body));
  release();
}

void response::write(std::string_view piece) {
  auto& ex = completed_check(exchange_);
  head_sent_ = true;
  ex.commit(detail::response_op::write, std::string(piece));
}

void response::end() {
  auto& ex = completed_check(exchange_);
  ex.commit(detail::response_op::end, {});
  release();
}

upgraded_connection response::upgrade(std::string_view protocol, upgrade_handlers handlers) {
  auto& ex = completed_check(exchange_);
  if (head_sent_) throw std::logic_error("lameduck: upgrade() after the head was sent");
  const request& req = ex.parser.get();
  if (!req.upgrade_requested()) {
    throw std::logic_error("lameduck: upgrade() on a request that did not ask for one");
  }
  if (protocol.empty()) {
    if (req.method() != "CONNECT") throw std::logic_error("lameduck: upgrade() needs a protocol");
    // RFC 9110 section 9.3.6: any 2xx to a CONNECT starts the tunnel.
    if (ex.status >= 300) throw std::logic_error("lameduck: a tunnel starts with a 2xx status");
  } else {
    if (!is_field_value(protocol)) {
      throw std::invalid_argument("lameduck: invalid Upgrade protocol");
    }
    ex.status = 101;
    ex.fields.append("Upgrade: ");
    ex.fields.append(protocol);
    ex.fields.append("\r\nConnection: Upgrade\r\n");
  }
  ex.upgrade = std::move(handlers);
  auto handle = detail::exchange::new_upgraded(ex);
  ex.commit(detail::response_op::upgrade, {});
  release();
  return handle;
}

upgraded_connection::upgraded_connection(const upgraded_connection& other) noexcept
    : exchange_(other.exchange_) {
  exchange_->add_ref();
}

upgraded_connection& upgraded_connection::operator=(const upgraded_connection& other) noexcept {
  if (exchange_ != other.exchange_) {
    other.exchange_->add_ref();
    exchange_->release();
    exchange_ = other.exchange_;
  }
  return *this;
}

upgraded_connection::~upgraded_connection() {
  exchange_->release();
}

void upgraded_connection::send(std::string bytes) {
  exchange_->commit(detail::response_op::upgraded_send, std::move(bytes));
}

void upgraded_connection::close() {
  exchange_->commit(detail::response_op::upgraded_close, {});
}

std::stop_token response::stop_token() const noexcept {
  return exchange_ ? exchange_->stop.get_token() : std::stop_token{};
}

}  // namespace lameduck
