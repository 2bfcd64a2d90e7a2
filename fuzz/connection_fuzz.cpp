// libFuzzer target for whole connections: real connection<test_stream> objects on a real
// worker whose loop never runs a thread (as tests/unit/connection_test.cpp runs them), driven
// by a script decoded from the input. The script cuts client bytes into reads at arbitrary
// points and mixes them with what else happens to a connection at arbitrary moments: the
// loop's readiness events, timeouts, full and failing streams, client EOF and resets, a drain,
// its idle grace and deadline, destroy, a handover, responses completed later (on the loop's
// thread, or from another thread, which posts them), upgrades. The target plays the event
// loop's part and the server's (the worker steps of src/server.cpp are mirrored below), and
// after every step checks the invariants at the bottom of this comment; a violation abort()s.
//
// The script. Every input decodes; bytes read past the end are 0.
//
//   byte 0   bits 0-4 disable the header, body, idle, write, linger timeout (one bit each; the
//            enabled ones are an hour long, so only the script makes them pass); bit 5 small
//            limits; bit 6 a drain keeps idle connections (an idle grace); bit 7 at most two
//            open connections (a third is answered 503).
//   byte 1   bit 0: response and upgraded-connection handles the application still holds at
//            the end are dropped after the worker is gone, not before.
//   Then steps: an operation byte and its arguments. S is a slot byte (value % 4: one of four
//   client connections; '0'..'3' in the seeds), N and M are bytes, DATA is N bytes. A byte that
//   is not one of these letters is the operation at (byte % 24) in this order:
//
//   o S          a client connects in slot S, unless S has an open connection
//   d S N DATA   a piece of N bytes arrives (later read as one piece at most), and the loop
//                reports input; connects first if S has no open connection
//   a S N DATA   as d, but the loop has not reported it yet
//   D S N M DATA as d, with DATA repeated M*16+1 times (long heads, bodies, buffer ends)
//   r S, w S     the loop reports input (EPOLLIN), room for output (EPOLLOUT)
//   v S N        the loop reports the events N: bits IN, OUT, RDHUP, HUP, ERR
//   e S          the client ends its stream: reads then say eof; reported as IN|RDHUP
//   x S          the client resets: the next read fails; reported as IN|ERR
//   X S N        the (N%4+1)-th write from now fails
//   q S N        the next read answers want_read, want_write, error, other_protocol (N%4)
//   Q S N        the next write answers want_read, want_write, error (N%3)
//   m S N        writes take N more bytes, then want_write (255: no limit)
//   p S          toggles opening(): a TLS handshake under way
//   t S          the timeout the connection waits on (if any) passes
//   c S N        the application acts on the response it holds for S (N%12): send, send from
//                another thread, write a piece, write from another thread, end, end from
//                another thread, drop the handle (500, or a cut-off stream), drop it on another
//                thread, upgrade, upgrade from another thread, 204 and send, a Content-Length
//                header and a write
//   u S N        the application acts on S's upgraded connection (N%6): send, send from
//                another thread, close, close from another thread, drop the handle, drop it on
//                another thread
//   A            a drain is asked for: the verb's thread sets draining (and keep_idle)
//   B            the drain reaches the worker: its connections are counted, each is told
//   g            the idle grace ends: each connection is told again
//   h            the listeners are handed over (keep_fresh)
//   k            the drain's deadline passes: every connection is closed
//   K            destroy: every connection is closed
//   P            the loop runs a round: work posted from the other thread
//
// No connection is accepted once a stop has reached the worker (its listeners are closed).
// At the end the clients behave (no more failures, room for output), the application drops
// what it holds, the clients end their streams, and destroy closes what is left.
//
// The handler answers by the first byte of the path (or of a CONNECT's target):
//   l  keeps the response (the script completes it)     s  writes a piece and keeps it
//   S  streams two pieces and ends                      c  says Content-Length: 5, writes 3
//   t  throws                                           T  writes a piece, then throws
//   i  throws an int
//   u  upgrades (websocket, or a CONNECT tunnel; throws unless the request asked)
//   b  echoes the body    n  204 (304 for "n3")         x  "Connection: close"
//   d  drops the response (500)                         o  answers from another thread
//   anything else: "hello\n" at once
// An upgraded connection echoes what it receives and closes after a 'q'; told of a drain, it
// says "bye" and closes (unless the path's third byte is 'k').
//
// Invariants, after every step:
// - every connection is in exactly one state: the worker's counts per state equal a recount of
//   its registry; the registry holds exactly the connections whose stream is open; closed
//   counts every connection closed; open_connections is the registry's size;
// - a connection waits on a timeout exactly when it is on a timeout list, and (with every
//   timeout enabled) one that waits for its client (fresh, idle, closing, active but not with
//   the application) always has one armed: nothing can stay open for ever;
// - once a drain has reached the worker (and the idle grace is over), no connection is idle
//   and none is fresh (unless the listeners were handed over or a TLS handshake is under way);
// - each connection's output is a sequence of well-formed HTTP/1.1 responses, one per request
//   the handler saw and in order (interim 100s allowed), perhaps one error response last,
//   nothing after a "Connection: close", anything after an upgrade; a fresh connection wrote
//   nothing; an idle one has written exactly one complete response per request counted
//   answered on it; a connection closed cleanly (half-closed) has written all it counted;
//   connection_base::requests moves with worker::requests_completed;
// - every request the handler saw is answered or counted aborted: completed + aborted never
//   exceeds the handler's calls, the difference is at most the active connections, and it is
//   zero at the end; a request cut off while the application holds its response has its stop
//   token requested;
// - an upgraded connection's on_close comes once, last, and always for an upgrade made in the
//   handler;
// - the metrics (metrics/server_metrics.hpp) agree: the loop's bytes received and sent are what
//   the streams' reads returned and what they took; every response counted by status class is
//   in the duration histogram once; they are the requests counted answered plus at most one
//   error response per connection;
// - when a stop completes (the registry empties), its report counts every connection it reached
//   once by state, and requests_completed + requests_aborted are the requests of the stop;
// - at the end every connection is closed and freed: ASan and LeakSanitizer see the rest.

#include <sys/epoll.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "connection.hpp"
#include "net/address.hpp"
#include "test_stream.hpp"
#include "worker.hpp"

namespace {

using namespace lameduck;
using namespace std::chrono_literals;
using detail::connection_base;
using detail::io_status;
using detail::timeout_kind;
using testing::test_stream;
using testing::test_stream_state;

// CONNECTION_FUZZ_TRACE=1 prints each step and, at the end, what each connection wrote: to
// read a seed or a crash (build/fuzz/bin/connection-fuzz FILE).
const bool tracing = std::getenv("CONNECTION_FUZZ_TRACE") != nullptr;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "connection_fuzz: invariant violated: %s\n", what);
  std::abort();
}

#define CHECK(cond, what)        \
  do {                           \
    if (!(cond)) violated(what); \
  } while (0)

// ---- The other thread ------------------------------------------------------------------------

// A thread that runs one job at a time while the fuzzer's thread waits: code that touches a
// response or an upgraded connection from a thread other than the loop's, deterministically.
class other_thread {
 public:
  other_thread() : thread_([this] { serve(); }) {}

  void run(std::function<void()> job) {
    std::unique_lock lock(mutex_);
    job_ = std::move(job);
    cv_.notify_all();
    cv_.wait(lock, [this] { return !job_; });
  }

 private:
  void serve() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return static_cast<bool>(job_); });
      lock.unlock();
      job_();
      lock.lock();
      job_ = nullptr;
      cv_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::function<void()> job_;
  std::thread thread_;  // last: starts once the rest is ready
};

// Alive for the whole process (never destroyed: no join at exit).
other_thread& helper() {
  static other_thread* t = new other_thread;
  return *t;
}

// ---- The script ------------------------------------------------------------------------------

class script {
 public:
  script(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool done() const noexcept { return p_ >= end_; }
  std::uint8_t byte() noexcept { return p_ < end_ ? *p_++ : 0; }
  std::string_view bytes(std::size_t n) noexcept {
    n = std::min<std::size_t>(n, static_cast<std::size_t>(end_ - p_));
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

constexpr std::string_view operations = "odaDrwvexXqQmptcuABghkKP";
static_assert(operations.size() == 24);

constexpr std::size_t slots = 4;
constexpr std::size_t max_connections_per_input = 16;
constexpr std::size_t max_steps = 2000;
constexpr std::size_t max_piece = 64 * 1024;

// ---- What the target knows of each connection -----------------------------------------------

// A request the handler saw, as the output checker needs it.
struct request_info {
  bool head = false;      // a HEAD request: its response has no body
  bool connect = false;   // a CONNECT: a 2xx after an upgrade starts a tunnel
  bool streamed = false;  // write() was called on its response
  bool upgraded = false;  // upgrade() returned for it
};

struct upgrade_record {
  int closes = 0;
  bool expect_close = false;  // upgraded inside the handler: the upgrade certainly took effect
  bool keep_on_shutdown = false;
};

struct conn_record {
  std::size_t index = 0;  // its peer port is 1000 + index
  std::shared_ptr<test_stream_state> st;
  connection_base* c = nullptr;  // while open (the stream is not closed)
  bool open = true;
  std::uint64_t requests = 0;  // connection_base::requests as last attributed
  bool requests_known = true;
  bool opening_used = false;
  std::vector<request_info> reqs;
  std::optional<response> held;  // the response the application keeps
  std::size_t held_req = 0;      // its index in reqs
  std::optional<upgraded_connection> upgraded;
  std::shared_ptr<upgrade_record> up;
};

// ---- The output checker ----------------------------------------------------------------------

struct output_summary {
  std::size_t strict = 0;     // complete responses the server must have counted answered
  std::size_t ambiguous = 0;  // complete by their framing, but streamed: answered or cut off
  std::size_t errors = 0;     // error responses after the handled requests (400, 408, ...)
  bool partial = false;       // an incomplete response at the end
  bool tunnel = false;        // an upgrade: the rest belongs to another protocol
  bool said_close = false;
};

bool is_prefix_of_status_line(std::string_view rest) {
  constexpr std::string_view start = "HTTP/1.1 ";
  const std::size_t n = std::min(rest.size(), start.size());
  return rest.substr(0, n) == start.substr(0, n);
}

bool parse_decimal(std::string_view s, std::uint64_t& n) {
  if (s.empty() || s.size() > 18) return false;
  n = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return true;
}

// Reads a chunked body from pos; returns false on malformed framing, sets partial when the
// output ends inside it.
bool read_chunked(std::string_view out, std::size_t& pos, bool& partial) {
  for (;;) {
    const std::size_t eol = out.find("\r\n", pos);
    if (eol == std::string_view::npos) return partial = true, true;
    std::uint64_t size = 0;
    std::string_view digits = out.substr(pos, eol - pos);
    if (digits.empty() || digits.size() > 15) return false;
    for (char ch : digits) {
      int v = (ch >= '0' && ch <= '9')   ? ch - '0'
              : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
              : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                         : -1;
      if (v < 0) return false;
      size = size * 16 + static_cast<std::uint64_t>(v);
    }
    pos = eol + 2;
    if (size == 0) {
      // The server writes no trailers: the last chunk's line and an empty line.
      if (out.size() - pos < 2) return partial = true, true;
      if (out.substr(pos, 2) != "\r\n") return false;
      pos += 2;
      return true;
    }
    if (out.size() - pos < size + 2) return partial = true, true;
    if (out.substr(pos + size, 2) != "\r\n") return false;
    pos += size + 2;
  }
}

// Checks what a connection wrote against the requests its handler saw; returns what is wrong,
// or null. clean_end: the stream was half-closed, so the output is all there is.
const char* check_output(std::string_view out, const std::vector<request_info>& reqs,
                         bool clean_end, output_summary& sum) {
  std::size_t pos = 0, k = 0;
  while (pos < out.size()) {
    if (sum.said_close) return "bytes after a response that said Connection: close";
    if (sum.errors) return "bytes after an error response";
    const std::size_t end = out.find("\r\n\r\n", pos);
    if (end == std::string_view::npos) {
      if (!is_prefix_of_status_line(out.substr(pos))) return "output that is not a response";
      sum.partial = true;
      return nullptr;
    }
    std::string_view head = out.substr(pos, end + 2 - pos);  // with the last line's CRLF
    pos = end + 4;
    if (head.size() < 14 || head.substr(0, 9) != "HTTP/1.1 " || head[12] != ' ') {
      return "a malformed status line";
    }
    std::uint64_t status = 0;
    if (!parse_decimal(head.substr(9, 3), status) || status < 100) return "a malformed status";
    std::size_t line_end = head.find("\r\n");
    bool chunked = false, has_length = false, has_date = false, close = false;
    std::uint64_t length = 0;
    for (std::size_t at = line_end + 2; at < head.size();) {
      const std::size_t e = head.find("\r\n", at);
      std::string_view line = head.substr(at, e - at);
      at = e + 2;
      const std::size_t colon = line.find(": ");
      if (colon == std::string_view::npos || colon == 0) return "a malformed header field";
      std::string_view name = line.substr(0, colon), value = line.substr(colon + 2);
      if (name == "Content-Length") {
        if (has_length) return "two Content-Length fields";
        has_length = true;
        if (!parse_decimal(value, length)) return "a malformed Content-Length";
      } else if (name == "Transfer-Encoding") {
        if (value != "chunked" || chunked) return "an unexpected Transfer-Encoding";
        chunked = true;
      } else if (name == "Date") {
        has_date = true;
      } else if (name == "Connection") {
        if (value == "close") close = true;
      }
    }
    if (chunked && has_length) return "Content-Length with Transfer-Encoding";
    if (status < 200 && status != 101) {
      // Only the server's own 100 Continue, before the final response to its request.
      if (head != "HTTP/1.1 100 Continue\r\n") return "an interim response other than 100";
      if (k > reqs.size()) return "a 100 Continue for no request";
      continue;
    }
    if (!has_date) return "a final response without Date";
    if (k >= reqs.size()) {
      // The server's own answer to a bad request, a timeout or the connection limit.
      if (status < 400) return "a response to a request the handler never saw";
      if (!has_length || !close) return "an error response that does not close";
      if (out.size() - pos < length) return sum.partial = true, nullptr;
      pos += length;
      ++sum.errors;
      sum.said_close = true;
      continue;
    }
    const request_info& info = reqs[k++];
    if (status == 101 || (info.connect && info.upgraded && status < 300)) {
      if (!info.upgraded) return "a 101 the handler did not ask for";
      ++sum.strict;
      sum.tunnel = true;
      return nullptr;
    }
    const bool no_body =
        info.head || status == 204 || status == 304 || (status >= 100 && status < 200);
    const bool ambiguous = info.streamed && (no_body || !chunked);
    if (!no_body) {
      if (chunked) {
        bool partial = false;
        if (!read_chunked(out, pos, partial)) return "a malformed chunked body";
        if (partial) return sum.partial = true, nullptr;
      } else if (has_length) {
        if (out.size() - pos < length) return sum.partial = true, nullptr;
        pos += length;
      } else {
        // Delimited by the end of the connection (a stream to an HTTP/1.0 client).
        if (!close) return "a body delimited by the close of a connection kept open";
        if (!info.streamed) return "a body without length from send()";
        pos = out.size();
        if (!clean_end) return sum.partial = true, nullptr;
      }
    } else if (status == 204 || status == 304) {
      if (has_length || chunked) return "framing on a response that has no body";
    }
    ++(ambiguous ? sum.ambiguous : sum.strict);
    if (close) sum.said_close = true;
  }
  return nullptr;
}

// ---- One input's run -------------------------------------------------------------------------

class fuzz_run {
 public:
  fuzz_run(std::uint8_t config0, std::uint8_t config1) {
    auto& o = shared_.options;
    const std::chrono::milliseconds on = 1h;
    o.timeouts.header = (config0 & 1) ? 0ms : on;
    o.timeouts.body = (config0 & 2) ? 0ms : on;
    o.timeouts.idle = (config0 & 4) ? 0ms : on;
    o.timeouts.write = (config0 & 8) ? 0ms : on;
    o.timeouts.linger = (config0 & 16) ? 0ms : on;
    all_timeouts_ = (config0 & 31) == 0;
    if (config0 & 32) {
      o.limits = {.max_request_line = 64,
                  .max_header_bytes = 256,
                  .max_header_count = 8,
                  .max_body_bytes = 256,
                  .max_chunk_extension_bytes = 16,
                  .max_connections = o.limits.max_connections};
    }
    grace_ = config0 & 64;
    if (config0 & 128) o.limits.max_connections = 2;
    handles_outlive_worker_ = config1 & 1;
    o.log = [](std::string_view) {};  // a handler that throws is logged: not of interest here
    shared_.main = [this](const request& req, response res) { handle(req, std::move(res)); };
    shared_.on_registry_empty = [](detail::worker& w) {
      CHECK(w.connections.empty(), "on_registry_empty with connections left");
    };
    w_ = std::make_unique<detail::worker>(shared_);
    // Makes this thread the loop's: responses completed here are applied at once.
    w_->loop().run_once(0ms);
  }

  fuzz_run(const fuzz_run&) = delete;
  fuzz_run& operator=(const fuzz_run&) = delete;

  void play(script& s) {
    for (std::size_t n = 0; n < max_steps && !s.done(); ++n) {
      const std::uint8_t b = s.byte();
      char op = static_cast<char>(b);
      if (operations.find(op) == std::string_view::npos) op = operations[b % operations.size()];
      if (tracing) std::fprintf(stderr, "step %zu: %c\n", n, op);
      play_one(op, s);
    }
    finish();
  }

 private:
  // ---- Steps ----

  void play_one(char op, script& s) {
    switch (op) {
      case 'o':
        open(slot(s));
        return;
      case 'd':
      case 'a':
      case 'D': {
        const std::size_t i = slot(s);
        const std::size_t n = s.byte();
        const std::size_t times = op == 'D' ? s.byte() * 16u + 1 : 1;
        std::string_view data = s.bytes(n);
        if (data.empty()) return;  // an empty piece would read as zero bytes, not as nothing
        conn_record* r = open(i);
        if (!r) return;
        std::string piece;
        for (std::size_t t = 0; t < times && piece.size() + data.size() <= max_piece; ++t)
          piece.append(data);
        r->st->input.push_back(std::move(piece));
        if (op != 'a') ready(*r, EPOLLIN);
        return;
      }
      case 'r':
        if (auto* r = live(slot(s))) ready(*r, EPOLLIN);
        return;
      case 'w':
        if (auto* r = live(slot(s))) ready(*r, EPOLLOUT);
        return;
      case 'v': {
        auto* r = live(slot(s));
        const std::uint8_t bits = s.byte();
        std::uint32_t events = 0;
        if (bits & 1) events |= EPOLLIN;
        if (bits & 2) events |= EPOLLOUT;
        if (bits & 4) events |= EPOLLRDHUP;
        if (bits & 8) events |= EPOLLHUP;
        if (bits & 16) events |= EPOLLERR;
        if (r) ready(*r, events);
        return;
      }
      case 'e':
        if (auto* r = live(slot(s))) {
          r->st->eof = true;
          ready(*r, EPOLLIN | EPOLLRDHUP);
        }
        return;
      case 'x':
        if (auto* r = live(slot(s))) {
          r->st->fail_read = r->st->reads + 1;
          ready(*r, EPOLLIN | EPOLLERR);
        }
        return;
      case 'X': {
        auto* r = live(slot(s));
        const std::size_t n = s.byte() % 4 + 1;
        if (r) r->st->fail_write = r->st->writes + n;
        return;
      }
      case 'q': {
        auto* r = live(slot(s));
        constexpr io_status answers[] = {io_status::want_read, io_status::want_write,
                                         io_status::error, io_status::other_protocol};
        const std::uint8_t n = s.byte();
        if (r) r->st->read_script.push_back(answers[n % 4]);
        return;
      }
      case 'Q': {
        auto* r = live(slot(s));
        constexpr io_status answers[] = {io_status::want_read, io_status::want_write,
                                         io_status::error};
        const std::uint8_t n = s.byte();
        if (r) r->st->write_script.push_back(answers[n % 3]);
        return;
      }
      case 'm': {
        auto* r = live(slot(s));
        const std::uint8_t n = s.byte();
        if (r) r->st->write_room = n == 255 ? std::numeric_limits<std::size_t>::max() : n;
        return;
      }
      case 'p':
        if (auto* r = live(slot(s))) {
          r->st->opening = !r->st->opening;
          r->opening_used = true;
        }
        return;
      case 't':
        if (auto* r = live(slot(s))) fire_timeout(*r);
        return;
      case 'c': {
        const std::size_t i = slot(s);
        const std::uint8_t n = s.byte();
        if (slots_[i]) act_on_response(*slots_[i], n % 12);
        return;
      }
      case 'u': {
        const std::size_t i = slot(s);
        const std::uint8_t n = s.byte();
        if (slots_[i]) act_on_upgraded(*slots_[i], n % 6);
        return;
      }
      case 'A':
        ask_drain();
        return;
      case 'B':
        begin_drain();
        return;
      case 'g':
        end_idle_grace();
        return;
      case 'h':
        w_->keep_fresh = true;
        return;
      case 'k':
        if (stop_.drain_begun && !stop_.destroyed && !stop_.done) force_close();
        return;
      case 'K':
        destroy();
        return;
      case 'P':
        loop_round();
        return;
      default:
        return;
    }
  }

  static std::size_t slot(script& s) { return s.byte() % slots; }

  conn_record* live(std::size_t i) {
    conn_record* r = slots_[i];
    return r && r->open ? r : nullptr;
  }

  // A client connects, as worker::admit accepts it; null when no connection can be made.
  conn_record* open(std::size_t i) {
    if (conn_record* r = live(i)) return r;
    if (stop_.reached || records_.size() >= max_connections_per_input) return nullptr;
    auto rec = std::make_unique<conn_record>();
    rec->index = records_.size();
    rec->st = std::make_shared<test_stream_state>();
    conn_record& r = *rec;
    records_.push_back(std::move(rec));
    slots_[i] = &r;
    std::error_code ec;
    const auto peer =
        detail::parse_listen_address("127.0.0.1:" + std::to_string(1000 + r.index), ec);
    CHECK(!ec, "the peer address");
    auto* c =
        new detail::connection<test_stream>(*w_, test_stream(r.st), &peer.any, sizeof peer.v4);
    c->id = shared_.next_connection_id.fetch_add(1);
    r.c = c;
    step([&] {
      if (shared_.open_connections.fetch_add(1) >= shared_.options.limits.max_connections) {
        c->reject(503);
      } else {
        c->start();
      }
    });
    return &r;
  }

  void ready(conn_record& r, std::uint32_t events) {
    step([&] { r.c->on_ready(events); });
  }

  // As the loop expires an entry of a timeout list: off the list, then on_timeout().
  void fire_timeout(conn_record& r) {
    if (r.c->timeout == timeout_kind::none) return;
    step([&] {
      detail::timeout_list::disarm(*r.c);
      r.c->on_timeout();
    });
  }

  // Code of the application's that runs on another thread; what it completes is posted.
  void on_other_thread(std::function<void()> job) {
    posted_pending_ = true;
    helper().run(std::move(job));
  }

  void loop_round() {
    step([&] {
      posted_pending_ = false;
      w_->loop().run_once(0ms);
    });
  }

  // Runs the loop until nothing posted from the other thread is waiting, and then a little
  // more for what the posted work posted in turn (on_close, exchanges freed).
  void quiesce() {
    do {
      loop_round();
    } while (posted_pending_);
    loop_round();
    loop_round();
  }

  void act_on_response(conn_record& r, int what) {
    if (!r.held || !r.held->valid()) return;
    const std::size_t k = r.held_req;
    // What the application does may throw (a status after the head, an upgrade nobody asked
    // for): as an application would, it catches and carries on.
    auto guarded = [](auto&& f) {
      try {
        f();
      } catch (const std::exception&) {
      }
    };
    step([&] {
      // Out of its slot while the application works on it: completed on the loop's thread, a
      // response lets the next pipelined request reach the handler before send() returns, and
      // the handler may keep that one's response in the slot.
      std::optional<response> held = std::exchange(r.held, std::nullopt);
      response& res = *held;
      switch (what) {
        case 0:
          guarded([&] { res.send("later\n"); });
          break;
        case 1:
          on_other_thread([&] { guarded([&] { res.send("other later\n"); }); });
          break;
        case 2:
          r.reqs[k].streamed = true;
          guarded([&] { res.write("piece"); });
          break;
        case 3:
          r.reqs[k].streamed = true;
          on_other_thread([&] { guarded([&] { res.write("other piece"); }); });
          break;
        case 4:
          guarded([&] { res.end(); });
          break;
        case 5:
          on_other_thread([&] { guarded([&] { res.end(); }); });
          break;
        case 6:
          held.reset();
          break;
        case 7:
          on_other_thread([&] { held.reset(); });
          break;
        case 8:
          guarded([&] { upgrade(r, res, k, false); });
          break;
        case 9:
          on_other_thread([&] { guarded([&] { upgrade(r, res, k, false); }); });
          break;
        case 10:
          guarded([&] { res.status(204).header("X-Late", "1").send(""); });
          break;
        case 11:
          r.reqs[k].streamed = true;
          guarded([&] { res.header("Content-Length", "8").write("12345678"); });
          break;
      }
      if (held && held->valid()) {
        // Not complete: its request is still being handled, so no other can have begun.
        CHECK(!r.held || !r.held->valid(), "a request handled while another's response is open");
        r.held = std::move(held);
        r.held_req = k;
      }
    });
  }

  void act_on_upgraded(conn_record& r, int what) {
    if (!r.upgraded) return;
    step([&] {
      std::optional<upgraded_connection> u = std::exchange(r.upgraded, std::nullopt);
      switch (what) {
        case 0:
          u->send("from the application");
          break;
        case 1:
          on_other_thread([&] { u->send("from another thread"); });
          break;
        case 2:
          u->close();
          break;
        case 3:
          on_other_thread([&] { u->close(); });
          break;
        case 4:
          u.reset();
          break;
        case 5:
          on_other_thread([&] { u.reset(); });
          break;
      }
      if (u && !r.upgraded) r.upgraded = std::move(u);
    });
  }

  // ---- The handler ----

  conn_record& record_of(const request& req) {
    const std::string peer = req.peer();
    const std::size_t colon = peer.rfind(':');
    std::uint64_t port = 0;
    CHECK(colon != std::string::npos && parse_decimal(peer.substr(colon + 1), port),
          "the handler sees a peer without a port");
    CHECK(port >= 1000 && port - 1000 < records_.size(), "the handler sees an unknown peer");
    return *records_[port - 1000];
  }

  void handle(const request& req, response res) {
    conn_record& r = record_of(req);
    CHECK(r.open && !r.st->closed, "the handler is called for a closed connection");
    CHECK(!r.held || !r.held->valid(),
          "the handler is given a request while the last one's response is still open");
    ++handler_calls_;
    r.reqs.push_back({.head = req.method() == "HEAD", .connect = req.method() == "CONNECT"});
    const std::size_t k = r.reqs.size() - 1;
    std::string_view path = req.path();
    char route = 0;
    if (path.size() >= 2 && path[0] == '/') {
      route = path[1];
    } else if (req.method() == "CONNECT" && !req.target().empty()) {
      route = req.target()[0];
      path = req.target();
    }
    auto hold = [&] {
      r.held = std::move(res);
      r.held_req = k;
    };
    switch (route) {
      case 'l':
        hold();
        return;
      case 's':
        r.reqs[k].streamed = true;
        res.write("first");
        hold();
        return;
      case 'S':
        r.reqs[k].streamed = true;
        res.write("a");
        res.write("bb");
        res.end();
        return;
      case 'c':
        r.reqs[k].streamed = true;
        res.header("Content-Length", "5").write("abc");
        hold();
        return;
      case 't':
        throw std::runtime_error("route t");
      case 'i':
        throw 42;  // not a std::exception
      case 'T':
        r.reqs[k].streamed = true;
        res.write("partial");
        throw std::runtime_error("route T");
      case 'u':
        upgrade(r, res, k, true, path.size() >= 3 && path[2] == 'k');
        return;
      case 'b':
        res.send(std::string(req.body()));
        return;
      case 'n':
        res.status(path.size() >= 3 && path[2] == '3' ? 304 : 204).send("");
        return;
      case 'x':
        res.header("Connection", "close").send("bye\n");
        return;
      case 'd':
        return;  // dropped: 500
      case 'o':
        on_other_thread([&] { res.send("from another thread\n"); });
        return;
      default:
        res.header("X-Route", "default").send("hello\n");
        return;
    }
  }

  // Upgrades (a CONNECT becomes a tunnel); throws std::logic_error unless the request asked.
  void upgrade(conn_record& r, response& res, std::size_t k, bool in_handler,
               bool keep_on_shutdown = false) {
    auto up = std::make_shared<upgrade_record>();
    up->keep_on_shutdown = keep_on_shutdown;
    upgrade_handlers h;
    h.on_data = [up](upgraded_connection& self, std::string_view bytes) {
      CHECK(up->closes == 0, "on_data after on_close");
      self.send(std::string(bytes));
      if (bytes.find('q') != std::string_view::npos) self.close();
    };
    h.on_shutdown = [up](upgraded_connection& self) {
      CHECK(up->closes == 0, "on_shutdown after on_close");
      if (up->keep_on_shutdown) return;
      self.send("bye");
      self.close();
    };
    h.on_close = [up] { CHECK(++up->closes == 1, "on_close twice"); };
    auto u = res.upgrade(r.reqs[k].connect ? "" : "websocket", std::move(h));
    r.reqs[k].upgraded = true;
    up->expect_close = in_handler;
    r.up = std::move(up);
    r.upgraded.emplace(std::move(u));
  }

  // ---- The stop, as src/server.cpp's worker steps carry it out ----

  struct stop_mirror {
    bool began = false, drain_asked = false, reached = false, drain_begun = false;
    bool grace_ended = false, destroyed = false, forced = false, done = false;
    std::array<std::size_t, connection_state_count> closed_by_state{};
    std::size_t completed_at_stop = 0, aborted_at_stop = 0, closed_at_reach = 0;
  };

  void begin_stop() {
    if (stop_.began) return;
    stop_.began = true;
    stop_.completed_at_stop = w_->requests_completed.load();
    stop_.aborted_at_stop = w_->requests_aborted.load();
  }

  // server::impl::order_stop: the verb's own thread says draining at once.
  void ask_drain() {
    if (stop_.drain_asked || stop_.done) return;
    begin_stop();
    stop_.drain_asked = true;
    w_->keep_idle = grace_;
    w_->draining = true;
    check();
  }

  // server::impl::reach.
  void reach() {
    if (stop_.reached) return;
    stop_.reached = true;
    stop_.closed_at_reach = count(connection_state::closed);
    w_->connections.for_each(
        [&](connection_base& c) { ++stop_.closed_by_state[static_cast<std::size_t>(c.state())]; });
  }

  // server::impl::begin_drain.
  void begin_drain() {
    ask_drain();
    if (stop_.destroyed || stop_.drain_begun || stop_.done) return;
    stop_.drain_begun = true;
    reach();
    w_->keep_idle = grace_;
    w_->draining = true;
    w_->connections.for_each([&](connection_base& c) { observe([&] { c.on_drain(); }); });
    check();
  }

  // server::impl::end_idle_grace.
  void end_idle_grace() {
    if (!stop_.drain_begun || !grace_ || stop_.grace_ended || stop_.destroyed || stop_.done) {
      return;
    }
    stop_.grace_ended = true;
    w_->keep_idle = false;
    w_->connections.for_each([&](connection_base& c) { observe([&] { c.on_drain(); }); });
    check();
  }

  // server::impl::force_close: the drain's deadline, or destroy.
  void force_close() {
    stop_.destroyed = true;
    reach();
    w_->connections.for_each([&](connection_base& c) {
      if (c.state() != connection_state::closing) stop_.forced = true;
      observe([&] { c.abort(); });
    });
    check();
  }

  void destroy() {
    if (stop_.destroyed || stop_.done) return;
    begin_stop();
    force_close();
  }

  // server::impl::check_done, and the report it fills in.
  void check_stop_done() {
    if (!stop_.reached || stop_.done || !w_->connections.empty()) return;
    stop_.done = true;
    stop_report report;
    report.closed_by_state = stop_.closed_by_state;
    report.graceful = !stop_.forced;
    report.requests_completed = w_->requests_completed.load() - stop_.completed_at_stop;
    report.requests_aborted = w_->requests_aborted.load() - stop_.aborted_at_stop;
    std::size_t reached = 0;
    for (std::size_t n : report.closed_by_state)
      reached += n;
    CHECK(report.closed_by_state[static_cast<std::size_t>(connection_state::closed)] == 0,
          "a stop reached a closed connection");
    CHECK(reached == count(connection_state::closed) - stop_.closed_at_reach,
          "a stop's report does not count the connections it closed");
    CHECK(report.requests_completed + report.requests_aborted ==
              handler_calls_ - stop_.completed_at_stop - stop_.aborted_at_stop,
          "a stop's report does not count its requests");
    CHECK(report.graceful || stop_.destroyed, "a drain that was not forced is not graceful");
  }

  // ---- Observation and invariants ----

  std::size_t count(connection_state s) const {
    return w_->counts[static_cast<std::size_t>(s)].load();
  }

  // Runs f and attributes what it changed in requests_completed to the connections it
  // changed: connection_base::requests moves with it.
  template <class F>
  void observe(F&& f) {
    const std::size_t before = w_->requests_completed.load();
    f();
    const std::size_t moved = w_->requests_completed.load() - before;
    std::size_t seen = 0;
    std::vector<conn_record*> closed_now;
    for (auto& rec : records_) {
      conn_record& r = *rec;
      if (!r.open) continue;
      if (r.st->closed) {
        // Closed and deleted: what it counted last is only known from the rest.
        r.open = false;
        r.c = nullptr;
        closed_now.push_back(&r);
        // A request cut off while the application holds its response is told so.
        if (r.held && r.held->valid()) {
          CHECK(r.held->stop_token().stop_requested(),
                "a request cut off without its stop token requested");
        }
        continue;
      }
      CHECK(r.c->requests >= r.requests, "connection_base::requests went down");
      seen += r.c->requests - r.requests;
      r.requests = r.c->requests;
    }
    CHECK(seen <= moved, "connection_base::requests counts more than requests_completed");
    const std::size_t rest = moved - seen;
    if (closed_now.size() == 1) {
      closed_now[0]->requests += rest;
    } else {
      CHECK(rest == 0 || !closed_now.empty(),
            "requests_completed counts a request no connection answered");
      if (rest) {
        for (conn_record* r : closed_now)
          r->requests_known = false;
      }
    }
    for (conn_record* r : closed_now)
      check_closed(*r);
  }

  template <class F>
  void step(F&& f) {
    observe(std::forward<F>(f));
    check();
  }

  // What a connection wrote, once it has closed.
  void check_closed(conn_record& r) {
    output_summary sum;
    if (const char* bad = check_output(r.st->output, r.reqs, r.st->shut_down, sum)) violated(bad);
    if (!r.requests_known) return;
    CHECK(sum.strict <= r.requests, "a complete response that was not counted answered");
    if (r.st->shut_down) {
      CHECK(r.requests <= sum.strict + sum.ambiguous,
            "a cleanly closed connection did not write all it counted answered");
    }
  }

  void check() {
    // The registry against the records, and the counts against the registry.
    std::array<std::size_t, connection_state_count> recount{};
    std::size_t registered = 0;
    w_->connections.for_each([&](connection_base& c) {
      const auto s = static_cast<std::size_t>(c.state());
      CHECK(s < connection_state_count, "a state out of range");
      CHECK(c.state() != connection_state::closed, "a closed connection in the registry");
      ++recount[s];
      ++registered;
      bool known = false;
      for (auto& rec : records_)
        known = known || (rec->open && rec->c == &c);
      CHECK(known, "a connection in the registry whose stream is closed");
      CHECK(static_cast<const detail::registry_hook&>(c).linked(), "unlinked but listed");
    });
    std::size_t open = 0, closed = 0, active = 0;
    for (std::size_t s = 0; s < connection_state_count; ++s) {
      if (s == static_cast<std::size_t>(connection_state::closed)) continue;
      CHECK(count(static_cast<connection_state>(s)) == recount[s],
            "the worker's count of a state differs from its registry");
    }
    for (auto& rec : records_) {
      conn_record& r = *rec;
      if (!r.open) {
        ++closed;
        continue;
      }
      ++open;
      connection_base& c = *r.c;
      const connection_state s = c.state();
      if (s == connection_state::active) ++active;
      CHECK((c.timeout != timeout_kind::none) == static_cast<detail::timeout_hook&>(c).linked(),
            "a connection's timeout and its place on a timeout list disagree");
      const bool with_application =
          (r.held && r.held->valid()) || posted_pending_ || s == connection_state::upgraded;
      if (all_timeouts_ && c.timeout == timeout_kind::none && !with_application) {
        violated("a connection waits for its client with no timeout armed");
      }
      if (s == connection_state::upgraded) CHECK(r.up, "upgraded, but not by the handler");
      if (stop_.drain_begun && !w_->keep_idle && !stop_.destroyed && !r.opening_used) {
        CHECK(s != connection_state::idle, "an idle connection survives a drain");
        CHECK(s != connection_state::fresh || w_->keep_fresh,
              "a fresh connection survives a drain");
      }
      output_summary sum;
      if (const char* bad = check_output(r.st->output, r.reqs, false, sum)) violated(bad);
      CHECK(sum.strict <= c.requests, "a complete response that was not counted answered");
      if (s == connection_state::fresh) CHECK(r.st->output.empty(), "a fresh connection wrote");
      if (s == connection_state::idle) {
        CHECK(!sum.partial && !sum.tunnel && !sum.said_close && sum.errors == 0,
              "an idle connection with a response not fully written");
        CHECK(sum.strict + sum.ambiguous == c.requests,
              "an idle connection has not written every response it counted");
      }
    }
    CHECK(registered == open, "the registry and the open connections differ");
    check_metrics();
    CHECK(count(connection_state::closed) == closed, "closed does not count every close");
    CHECK(shared_.open_connections.load() == open, "open_connections differs from the registry");
    // Every request the handler saw is answered, aborted, or still with the application.
    const std::size_t counted = w_->requests_completed.load() + w_->requests_aborted.load();
    CHECK(counted <= handler_calls_, "more requests counted than the handler saw");
    CHECK(handler_calls_ - counted <= active, "a request neither answered nor counted aborted");
    check_stop_done();
  }

  // The loop's counters for the metrics against the streams and the request counts.
  void check_metrics() {
    std::uint64_t read = 0, written = 0, responses = 0, observed = 0;
    for (const auto& rec : records_) {
      read += rec->st->bytes_read;
      written += rec->st->output.size();
    }
    const detail::loop_counters& m = w_->metrics;
    CHECK(m.received_bytes.load() == read, "received bytes differ from what the reads returned");
    CHECK(m.sent_bytes.load() == written, "sent bytes differ from what the writes took");
    for (const auto& n : m.responses)
      responses += n.load();
    for (const auto& n : m.duration_buckets)
      observed += n.load();
    CHECK(responses == observed, "a response counted by class and not in the histogram");
    const std::uint64_t completed = w_->requests_completed.load();
    CHECK(responses >= completed, "a request counted answered has no response counted");
    CHECK(responses - completed <= records_.size(), "more error responses than connections");
  }

  // ---- The end ----

  void finish() {
    // The clients behave from now on.
    for (auto& rec : records_) {
      conn_record& r = *rec;
      if (!r.open) continue;
      r.st->read_script.clear();
      r.st->write_script.clear();
      r.st->fail_read = r.st->fail_write = 0;
      r.st->write_room = std::numeric_limits<std::size_t>::max();
      r.st->opening = false;
      ready(r, EPOLLOUT);
    }
    quiesce();
    // The application lets go (or keeps its handles until after the worker is gone).
    if (!handles_outlive_worker_) {
      // Each 500 may let a pipelined request reach the handler, which may keep its response.
      for (bool again = true; again;) {
        again = false;
        for (auto& rec : records_) {
          if (!rec->held) continue;
          again = true;
          step([&] { std::optional<response> dropped = std::exchange(rec->held, std::nullopt); });
        }
        quiesce();
      }
    }
    for (auto& rec : records_) {
      conn_record& r = *rec;
      if (!r.open) continue;
      r.st->eof = true;
      ready(r, EPOLLIN | EPOLLRDHUP);
    }
    quiesce();
    destroy();
    quiesce();
    if (!handles_outlive_worker_) {
      for (auto& rec : records_)
        step([&] {
          std::optional<upgraded_connection> dropped = std::exchange(rec->upgraded, std::nullopt);
        });
      quiesce();
    }
    CHECK(w_->connections.empty(), "connections left after destroy");
    for (std::size_t s = 0; s < connection_state_count; ++s) {
      if (s == static_cast<std::size_t>(connection_state::closed)) continue;
      CHECK(count(static_cast<connection_state>(s)) == 0, "a count is left after destroy");
    }
    CHECK(count(connection_state::closed) == records_.size(), "a connection was never closed");
    CHECK(shared_.open_connections.load() == 0, "open_connections is left after destroy");
    CHECK(w_->requests_completed.load() + w_->requests_aborted.load() == handler_calls_,
          "a request was neither answered nor counted aborted");
    CHECK(stop_.done, "the stop did not complete");
    for (auto& rec : records_) {
      CHECK(!rec->open && rec->st->closed, "a stream was left open");
      if (rec->up && rec->up->expect_close) {
        CHECK(rec->up->closes == 1, "an upgraded connection's on_close never came");
      }
    }
    if (tracing) {
      for (auto& rec : records_) {
        std::fprintf(stderr, "connection %zu: %zu requests, %llu answered, wrote:\n%s\n---\n",
                     rec->index, rec->reqs.size(), static_cast<unsigned long long>(rec->requests),
                     rec->st->output.c_str());
      }
    }
    // The worker goes; handles still held free their exchanges after it.
    w_.reset();
    records_.clear();
  }

  detail::server_shared shared_;  // before the worker, which refers to it
  std::unique_ptr<detail::worker> w_;
  std::vector<std::unique_ptr<conn_record>> records_;  // destroyed first: handles
  std::array<conn_record*, slots> slots_{};
  stop_mirror stop_;
  std::size_t handler_calls_ = 0;
  bool all_timeouts_ = false;
  bool grace_ = false;
  bool handles_outlive_worker_ = false;
  bool posted_pending_ = false;  // the other thread posted work the loop has not run yet
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  script s(data, size);
  const std::uint8_t config0 = s.byte();
  const std::uint8_t config1 = s.byte();
  fuzz_run r(config0, config1);
  r.play(s);
  return 0;
}
