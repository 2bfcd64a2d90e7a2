// reload_client: the strict load client of bench/reload.sh (a benchmark, never run by CI).
//
// Keeps CONNECTIONS requests going at once against 127.0.0.1:PORT until it is told to stop, and
// counts every request that did not get a complete 2xx answer, by kind:
//
//   reload_client --port P [--connections 64] [--mode keepalive|close] [--timeout-ms 5000]
//                 [--retry-ms 10] [--max-s 900] [--max-requests 100000000]
//                 [--phases warmup,steady,reloads,tail] [--samples FILE] [--failures FILE]
//                 [--path /] [--method GET|POST]
//
//   --mode keepalive   each of the CONNECTIONS slots keeps one connection and sends `GET PATH`
//                      on it, the next one as soon as the previous answer is complete. A complete
//                      answer that says `Connection: close` (or an HTTP/1.0 answer without
//                      keep-alive) is not a failure: the slot closes that connection and opens a
//                      new one for its next request (counted in reconnects_asked).
//   --mode close       a new connection per request, with `Connection: close`; the answer is
//                      complete by its Content-Length, its last chunk, or the end of stream.
//   --method POST      each request a POST with a small body (`lameduck`, Content-Length 8),
//                      which a proxy may not replay after a failure (bench/fleet.sh): give a
//                      --path that answers POST, /echo for lameduck-hello. GET by default.
//
// A request counts from its first step (the connect, when it needs a new connection) to its
// complete answer. It ends up ok (a complete 2xx) or failed as one of:
//
//   connect    the connect failed (ECONNREFUSED, or any error before the connection was up:
//              the detail names it)
//   reset      ECONNRESET or EPIPE while sending or reading, before the answer was complete
//   eof        the stream ended before a complete answer (eof-no-bytes: not a byte of it;
//              eof-partial: part of it); the detail says whether the connection was fresh or
//              had already carried a request (reused), the race of a server closing an idle
//              keep-alive connection
//   timeout    no complete answer within TIMEOUT ms of the request's start (the detail says
//              whether it was connecting or waiting for the answer)
//   status     a complete answer whose status is not 2xx (the detail has the status)
//   bad        an answer that cannot be parsed, or an error other than a reset while sending or
//              reading (the detail names it)
//
// After a failure the slot waits RETRY ms before its next request (so that a closed port costs
// about CONNECTIONS * 1000 / RETRY attempts a second, not millions), on a new connection.
//
// Stopping: SIGTERM or SIGINT, MAX-S seconds, or MAX-REQUESTS requests finished. Then no new
// request starts; those in flight get until their own timeout to finish (a second signal
// abandons them: counted as abandoned, neither ok nor failed), then the summary is printed.
//
// Phases: SIGUSR1 ends the current phase and begins the next, named by --phases (phaseN past
// the names). Every figure is kept per phase (the phase in which the request finished) and in
// total, so that the script can compare the reloads with a steady window before them.
//
// Output: one JSON line on stdout: the settings, then per phase and in total: seconds, ok,
// requests/s, latency p50/p99/p999/max (ms) of the ok requests, failed by kind, and the
// details of the failures. --samples FILE: one CSV line per second of the run (epoch seconds at
// the end of that second, phase, ok, failed, p50 and p99 in ms). --failures FILE: one CSV line
// per failed request (epoch ms, kind, detail, ms since the request's start, whether its
// connection was reused), to line failures up with what the server did then.
// Exit status 0 after a run (whatever the figures), 1 when the setup failed, 2 on usage.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

struct options {
  int port = 0;
  int connections = 64;
  bool keepalive = true;
  int timeout_ms = 5000;
  int retry_ms = 10;
  int max_s = 900;
  long max_requests = 100'000'000;
  std::vector<std::string> phases{"warmup", "steady", "reloads", "tail"};
  std::string samples, failures, path = "/", method = "GET";
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "reload_client: %s\n(see the comment at the top of reload_client.cpp)\n",
               why.c_str());
  std::exit(2);
}

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
double epoch_s() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return double(ts.tv_sec) + ts.tv_nsec / 1e9;
}

std::string errno_name(int e) {
  switch (e) {
    case ECONNREFUSED:
      return "ECONNREFUSED";
    case ECONNRESET:
      return "ECONNRESET";
    case EPIPE:
      return "EPIPE";
    case ETIMEDOUT:
      return "ETIMEDOUT";
    case EHOSTUNREACH:
      return "EHOSTUNREACH";
    case ENETUNREACH:
      return "ENETUNREACH";
    case EADDRNOTAVAIL:
      return "EADDRNOTAVAIL";
    case EADDRINUSE:
      return "EADDRINUSE";
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOBUFS:
      return "ENOBUFS";
    case EAGAIN:
      return "EAGAIN";
    case EIO:
      return "EIO";
    default:
      return "errno-" + std::to_string(e);
  }
}

enum kind { k_connect, k_reset, k_eof, k_timeout, k_status, k_bad, kinds };
const char* const kind_names[kinds] = {"connect", "reset", "eof", "timeout", "status", "bad"};

// The figures of one phase (or of the whole run).
struct stats {
  explicit stats(std::string n) : name(std::move(n)) {}
  std::string name;
  double seconds = 0;
  long ok = 0;
  long failed[kinds] = {};
  std::map<std::string, long> details;    // "kind:detail" -> count
  std::vector<std::uint32_t> latency_us;  // of the ok requests

  long failed_total() const {
    long n = 0;
    for (long f : failed)
      n += f;
    return n;
  }
};

// Percentile (0..1) of v, which it reorders; 0 when empty.
double percentile_ms(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = std::min(v.size() - 1, std::size_t(p * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(i), v.end());
  return v[i] / 1000.0;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o;
}

std::string stats_json(stats& s) {
  char buf[512];
  double p50 = percentile_ms(s.latency_us, 0.50), p99 = percentile_ms(s.latency_us, 0.99),
         p999 = percentile_ms(s.latency_us, 0.999);
  double max = s.latency_us.empty()
                   ? 0.0
                   : *std::max_element(s.latency_us.begin(), s.latency_us.end()) / 1000.0;
  std::snprintf(buf, sizeof buf,
                "{\"name\":\"%s\",\"seconds\":%.3f,\"ok\":%ld,\"rps\":%.1f,\"p50_ms\":%.3f,"
                "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"failed\":%ld,",
                json_escape(s.name).c_str(), s.seconds, s.ok,
                s.seconds > 0 ? double(s.ok) / s.seconds : 0.0, p50, p99, p999, max,
                s.failed_total());
  std::string o = buf;
  for (int k = 0; k < kinds; ++k)
    o += "\"" + std::string(kind_names[k]) + "\":" + std::to_string(s.failed[k]) + ",";
  o += "\"details\":{";
  bool first = true;
  for (const auto& [d, n] : s.details) {
    if (!first) o += ",";
    first = false;
    o += "\"" + json_escape(d) + "\":" + std::to_string(n);
  }
  return o + "}}";
}

// An HTTP/1.1 response, parsed as it arrives.
struct response_parser {
  enum class st { head, body_length, chunk_size, chunk_data, chunk_crlf, trailers, body_eof, done };
  st state = st::head;
  int status = 0;
  bool close = false;       // the connection ends after this answer
  long remaining = 0;       // bytes of body (or of the chunk) still to come
  std::size_t scanned = 0;  // how far `buf` has been looked at for the end of the head
  std::string buf;

  void reset() { *this = response_parser{}; }

  // Takes more bytes; false when the answer cannot be parsed.
  bool feed(const char* data, std::size_t n) {
    buf.append(data, n);
    for (;;) {
      switch (state) {
        case st::done:
          return true;  // bytes past the answer stay in buf (nothing should come)
        case st::head: {
          std::size_t end = buf.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
          if (end == std::string::npos) {
            scanned = buf.size();
            if (buf.size() > 65536) return false;
            return true;
          }
          if (!parse_head(std::string_view(buf).substr(0, end + 2))) return false;
          buf.erase(0, end + 4);
          if (status >= 100 && status < 200) {  // an interim answer: the real one follows
            int keep = close;
            reset();
            close = keep;
            continue;
          }
          continue;
        }
        case st::body_length: {
          long take = std::min<long>(remaining, long(buf.size()));
          buf.erase(0, std::size_t(take));
          remaining -= take;
          if (remaining == 0) {
            state = st::done;
            continue;
          }
          return true;
        }
        case st::body_eof:
          buf.clear();
          return true;
        case st::chunk_size: {
          std::size_t eol = buf.find("\r\n");
          if (eol == std::string::npos) return buf.size() < 1024;
          char* end = nullptr;
          std::string line = buf.substr(0, eol);
          long size = std::strtol(line.c_str(), &end, 16);
          if (end == line.c_str() || size < 0) return false;
          buf.erase(0, eol + 2);
          remaining = size;
          state = size == 0 ? st::trailers : st::chunk_data;
          continue;
        }
        case st::chunk_data: {
          long take = std::min<long>(remaining, long(buf.size()));
          buf.erase(0, std::size_t(take));
          remaining -= take;
          if (remaining > 0) return true;
          state = st::chunk_crlf;
          continue;
        }
        case st::chunk_crlf:
          if (buf.size() < 2) return true;
          if (buf.compare(0, 2, "\r\n") != 0) return false;
          buf.erase(0, 2);
          state = st::chunk_size;
          continue;
        case st::trailers: {
          std::size_t eol = buf.find("\r\n");
          if (eol == std::string::npos) return buf.size() < 8192;
          buf.erase(0, eol + 2);
          if (eol == 0) state = st::done;
          continue;
        }
      }
    }
  }

  // The end of stream: true when it completes the answer (a body delimited by the close).
  bool at_eof() {
    if (state == st::body_eof) state = st::done;
    return state == st::done;
  }
  bool complete() const { return state == st::done; }

 private:
  static std::string lower(std::string_view s) {
    std::string o(s);
    for (char& c : o)
      c = char(std::tolower(static_cast<unsigned char>(c)));
    return o;
  }
  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
      s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
      s.remove_suffix(1);
    return s;
  }

  bool parse_head(std::string_view head) {
    std::size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    bool http10;
    if (line.substr(0, 9) == "HTTP/1.1 ")
      http10 = false;
    else if (line.substr(0, 9) == "HTTP/1.0 ")
      http10 = true;
    else
      return false;
    if (line.size() < 12) return false;
    status = 0;
    for (int i = 9; i < 12; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(line[std::size_t(i)]))) return false;
      status = status * 10 + (line[std::size_t(i)] - '0');
    }
    long length = -1;
    bool chunked = false, keep_alive = false;
    bool said_close = false;
    std::size_t pos = eol + 2;
    while (pos < head.size()) {
      std::size_t next = head.find("\r\n", pos);
      if (next == std::string_view::npos) next = head.size();
      std::string_view field = head.substr(pos, next - pos);
      pos = next + 2;
      std::size_t colon = field.find(':');
      if (colon == std::string_view::npos) return false;
      std::string name = lower(field.substr(0, colon));
      std::string value = lower(trim(field.substr(colon + 1)));
      if (name == "content-length") {
        char* end = nullptr;
        length = std::strtol(value.c_str(), &end, 10);
        if (end == value.c_str() || *end || length < 0) return false;
      } else if (name == "transfer-encoding") {
        chunked = value.find("chunked") != std::string::npos;
      } else if (name == "connection") {
        if (value.find("close") != std::string::npos) said_close = true;
        if (value.find("keep-alive") != std::string::npos) keep_alive = true;
      }
    }
    close = said_close || (http10 && !keep_alive);
    if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
      state = st::done;
    } else if (chunked) {
      state = st::chunk_size;
    } else if (length >= 0) {
      remaining = length;
      state = length == 0 ? st::done : st::body_length;
    } else {
      state = st::body_eof;
      close = true;
    }
    return true;
  }
};

enum class slot_state { waiting, connecting, sending, reading };

struct slot {
  int index = 0;
  int fd = -1;
  slot_state state = slot_state::waiting;
  bool reused = false;  // the connection carried a request before this one
  std::int64_t start = 0, deadline = 0, due = 0;
  std::size_t sent = 0;
  bool got_bytes = false;
  response_parser parser;
};

class client {
 public:
  explicit client(const options& o) : o_(o) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(std::uint16_t(o.port));
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool post = o.method == "POST";
    request_ = o.method + " " + o.path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(o.port) +
               "\r\nUser-Agent: reload_client\r\n" + (o.keepalive ? "" : "Connection: close\r\n") +
               (post ? "Content-Type: text/plain\r\nContent-Length: 8\r\n\r\nlameduck" : "\r\n");
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    sfd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (ep_ < 0 || sfd_ < 0) {
      std::perror("reload_client: epoll/signalfd");
      std::exit(1);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ~0ull;
    epoll_ctl(ep_, EPOLL_CTL_ADD, sfd_, &ev);
    if (!o.samples.empty() && !(samples_ = std::fopen(o.samples.c_str(), "w"))) {
      std::perror("reload_client: --samples");
      std::exit(1);
    }
    if (samples_) std::fputs("epoch_s,phase,ok,failed,p50_ms,p99_ms\n", samples_);
    if (!o.failures.empty() && !(failures_ = std::fopen(o.failures.c_str(), "w"))) {
      std::perror("reload_client: --failures");
      std::exit(1);
    }
    if (failures_) std::fputs("epoch_ms,kind,detail,ms,reused\n", failures_);
    slots_.resize(std::size_t(o.connections));
    for (int i = 0; i < o.connections; ++i)
      slots_[std::size_t(i)].index = i;
    phases_.push_back(stats{phase_name(0)});
  }

  void run() {
    t0_ = mono_ns();
    phase_t0_ = t0_;
    second_end_ = t0_ + 1'000'000'000;
    const std::int64_t end = t0_ + std::int64_t(o_.max_s) * 1'000'000'000;
    for (auto& s : slots_)
      start_request(s, t0_);
    std::vector<epoll_event> evs(256);
    std::int64_t drain_until = 0;
    for (;;) {
      std::int64_t now = mono_ns();
      if (!stopping_ && (now >= end || finished_ >= o_.max_requests)) begin_stop(now);
      if (stopping_) {
        if (in_flight() == 0 || abandon_) break;
        if (!drain_until) drain_until = now + std::int64_t(o_.timeout_ms) * 1'000'000 + 500'000'000;
        if (now >= drain_until) break;  // a guard: the timeouts below end every request first
      }
      while (now >= second_end_)
        flush_second(second_end_), second_end_ += 1'000'000'000;
      // Timeouts and retries.
      std::int64_t wake = now + 10'000'000;
      for (auto& s : slots_) {
        if (s.state == slot_state::waiting) {
          if (stopping_) continue;
          if (now >= s.due)
            start_request(s, now);
          else
            wake = std::min(wake, s.due);
        } else if (now >= s.deadline) {
          fail(s, k_timeout, s.state == slot_state::connecting ? "connecting" : "waiting", now);
        } else {
          wake = std::min(wake, s.deadline);
        }
      }
      int ms = int(std::max<std::int64_t>(0, (wake - now + 999'999) / 1'000'000));
      int n = epoll_wait(ep_, evs.data(), int(evs.size()), std::min(ms, 10));
      if (n < 0 && errno != EINTR) {
        std::perror("reload_client: epoll_wait");
        std::exit(1);
      }
      now = mono_ns();
      for (int i = 0; i < n; ++i) {
        if (evs[std::size_t(i)].data.u64 == ~0ull) {
          on_signal(now);
          continue;
        }
        slot& s = slots_[std::size_t(evs[std::size_t(i)].data.u64)];
        if (s.fd >= 0) on_event(s, evs[std::size_t(i)].events, now);
      }
    }
    std::int64_t now = mono_ns();
    for (auto& s : slots_) {
      if (s.state != slot_state::waiting) ++abandoned_;
      drop(s);
    }
    close_phase(now);
    flush_second(now);
  }

  void report() {
    stats total{"total"};
    for (auto& p : phases_) {
      total.seconds += p.seconds;
      total.ok += p.ok;
      for (int k = 0; k < kinds; ++k)
        total.failed[k] += p.failed[k];
      for (const auto& [d, n] : p.details)
        total.details[d] += n;
      total.latency_us.insert(total.latency_us.end(), p.latency_us.begin(), p.latency_us.end());
    }
    std::string o = "{\"port\":" + std::to_string(o_.port) +
                    ",\"connections\":" + std::to_string(o_.connections) + ",\"mode\":\"" +
                    (o_.keepalive ? "keepalive" : "close") + "\",\"method\":\"" + o_.method +
                    "\",\"timeout_ms\":" + std::to_string(o_.timeout_ms) +
                    ",\"retry_ms\":" + std::to_string(o_.retry_ms) +
                    ",\"connections_opened\":" + std::to_string(opened_) +
                    ",\"reconnects_asked\":" + std::to_string(reconnects_asked_) +
                    ",\"abandoned\":" + std::to_string(abandoned_) + ",\"stopped_by\":\"" +
                    stopped_by_ + "\",\"phases\":[";
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      if (i) o += ",";
      o += stats_json(phases_[i]);
    }
    o += "],\"total\":" + stats_json(total) + "}";
    std::printf("%s\n", o.c_str());
    std::fflush(stdout);
  }

  ~client() {
    if (samples_) std::fclose(samples_);
    if (failures_) std::fclose(failures_);
  }

 private:
  std::string phase_name(std::size_t i) const {
    return i < o_.phases.size() ? o_.phases[i] : "phase" + std::to_string(i);
  }
  stats& phase() { return phases_.back(); }
  int in_flight() const {
    int n = 0;
    for (const auto& s : slots_)
      n += s.state != slot_state::waiting;
    return n;
  }

  void close_phase(std::int64_t now) {
    phase().seconds = double(now - phase_t0_) / 1e9;
    phase_t0_ = now;
  }

  void begin_stop(std::int64_t, const char* why = nullptr) {
    stopping_ = true;
    if (stopped_by_.empty()) {
      stopped_by_ = why ? why : (finished_ >= o_.max_requests ? "max-requests" : "max-s");
    }
  }

  void on_signal(std::int64_t now) {
    signalfd_siginfo si{};
    while (read(sfd_, &si, sizeof si) == ssize_t(sizeof si)) {
      if (si.ssi_signo == SIGUSR1) {
        close_phase(now);
        phases_.push_back(stats{phase_name(phases_.size())});
      } else if (stopping_) {
        abandon_ = true;
      } else {
        begin_stop(now, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
      }
    }
  }

  void flush_second(std::int64_t when) {
    if (!samples_) return;
    double p50 = percentile_ms(sec_latency_, 0.5), p99 = percentile_ms(sec_latency_, 0.99);
    double at = epoch_s() - double(mono_ns() - when) / 1e9;
    std::fprintf(samples_, "%.3f,%s,%ld,%ld,%.3f,%.3f\n", at, phase().name.c_str(), sec_ok_,
                 sec_failed_, p50, p99);
    sec_latency_.clear();
    sec_ok_ = sec_failed_ = 0;
  }

  void drop(slot& s) {
    if (s.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
      close(s.fd);
      s.fd = -1;
    }
    s.reused = false;
  }

  void watch(slot& s, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = std::uint64_t(s.index);
    epoll_ctl(ep_, op, s.fd, &ev);
  }

  void start_request(slot& s, std::int64_t now) {
    s.start = now;
    s.deadline = now + std::int64_t(o_.timeout_ms) * 1'000'000;
    s.sent = 0;
    s.got_bytes = false;
    s.parser.reset();
    if (s.fd >= 0) {
      s.reused = true;
      s.state = slot_state::sending;
      watch(s, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
      send_request(s, now);
      return;
    }
    s.reused = false;
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) {
      int e = errno;
      s.state = slot_state::connecting;
      return fail(s, k_connect, errno_name(e), now);
    }
    ++opened_;
    int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(s.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_);
    if (r != 0 && errno != EINPROGRESS) {
      int e = errno;
      s.state = slot_state::connecting;
      return fail(s, k_connect, errno_name(e), now);
    }
    s.state = r == 0 ? slot_state::sending : slot_state::connecting;
    watch(s, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
    if (r == 0) send_request(s, now);
  }

  void send_request(slot& s, std::int64_t now) {
    while (s.sent < request_.size()) {
      ssize_t w = send(s.fd, request_.data() + s.sent, request_.size() - s.sent, MSG_NOSIGNAL);
      if (w > 0) {
        s.sent += std::size_t(w);
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (w < 0 && errno == EINTR) continue;
      int e = w < 0 ? errno : EIO;
      return fail_errno(s, e, now);
    }
    s.state = slot_state::reading;
    watch(s, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
  }

  std::string where(const slot& s) const {
    return std::string(s.reused ? "reused" : "fresh") + (s.got_bytes ? "-partial" : "-no-bytes");
  }

  void fail_errno(slot& s, int e, std::int64_t now) {
    if (e == ECONNRESET || e == EPIPE) return fail(s, k_reset, errno_name(e) + "-" + where(s), now);
    if (s.state == slot_state::connecting) return fail(s, k_connect, errno_name(e), now);
    return fail(s, k_bad, errno_name(e), now);
  }

  void on_event(slot& s, std::uint32_t events, std::int64_t now) {
    if (s.state == slot_state::connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return fail(s, k_connect, errno_name(err), now);
      if (!(events & EPOLLOUT)) return;
      s.state = slot_state::sending;
    }
    if (s.state == slot_state::sending) {
      send_request(s, now);
      if (s.state != slot_state::reading) return;
    }
    if (s.state != slot_state::reading) return;
    char chunk[16384];
    for (;;) {
      ssize_t r = recv(s.fd, chunk, sizeof chunk, 0);
      if (r > 0) {
        s.got_bytes = true;
        if (!s.parser.feed(chunk, std::size_t(r))) return fail(s, k_bad, "unparsable", now);
        if (s.parser.complete()) return answered(s, now);
        continue;
      }
      if (r == 0) {
        if (s.parser.at_eof()) return answered(s, now);
        return fail(s, k_eof, where(s), now);
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      return fail_errno(s, errno, now);
    }
  }

  void finished(slot& s, std::int64_t now) {
    ++finished_;
    s.state = slot_state::waiting;
    (void)now;
  }

  void answered(slot& s, std::int64_t now) {
    int status = s.parser.status;
    bool keep = o_.keepalive && !s.parser.close;
    if (o_.keepalive && s.parser.close) ++reconnects_asked_;
    if (status < 200 || status > 299) {
      return fail(s, k_status, std::to_string(status), now);
    }
    auto us = std::uint32_t(std::min<std::int64_t>((now - s.start) / 1000, UINT32_MAX));
    phase().ok++;
    phase().latency_us.push_back(us);
    sec_ok_++;
    if (samples_) sec_latency_.push_back(us);
    if (!keep) drop(s);
    finished(s, now);
    s.due = now;
    if (!stopping_) start_request(s, now);
  }

  void fail(slot& s, kind k, const std::string& detail, std::int64_t now) {
    phase().failed[k]++;
    phase().details[std::string(kind_names[k]) + ":" + detail]++;
    sec_failed_++;
    if (failures_) {
      std::fprintf(failures_, "%.3f,%s,%s,%.3f,%d\n",
                   (epoch_s() - double(mono_ns() - now) / 1e9) * 1000.0, kind_names[k],
                   detail.c_str(), double(now - s.start) / 1e6, s.reused ? 1 : 0);
    }
    drop(s);
    finished(s, now);
    s.due = now + std::int64_t(o_.retry_ms) * 1'000'000;
  }

  options o_;
  sockaddr_in addr_{};
  std::string request_;
  int ep_ = -1, sfd_ = -1;
  std::vector<slot> slots_;
  std::vector<stats> phases_;
  std::int64_t t0_ = 0, phase_t0_ = 0, second_end_ = 0;
  std::vector<std::uint32_t> sec_latency_;
  long sec_ok_ = 0, sec_failed_ = 0;
  long finished_ = 0, opened_ = 0, reconnects_asked_ = 0, abandoned_ = 0;
  bool stopping_ = false, abandon_ = false;
  std::string stopped_by_;
  std::FILE* samples_ = nullptr;
  std::FILE* failures_ = nullptr;
};

long number(const char* v, const std::string& name, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  if (errno || !end || *end || end == v || x < lo || x > hi) usage("bad " + name);
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage("missing value after " + a);
    const char* v = argv[++i];
    if (a == "--port")
      o.port = int(number(v, a, 1, 65535));
    else if (a == "--connections")
      o.connections = int(number(v, a, 1, 20000));
    else if (a == "--timeout-ms")
      o.timeout_ms = int(number(v, a, 1, 600'000));
    else if (a == "--retry-ms")
      o.retry_ms = int(number(v, a, 0, 60'000));
    else if (a == "--max-s")
      o.max_s = int(number(v, a, 1, 86'400));
    else if (a == "--max-requests")
      o.max_requests = number(v, a, 1, 1'000'000'000'000L);
    else if (a == "--samples")
      o.samples = v;
    else if (a == "--failures")
      o.failures = v;
    else if (a == "--path")
      o.path = v;
    else if (a == "--method") {
      o.method = v;
      if (o.method != "GET" && o.method != "POST") usage("--method is GET or POST");
    } else if (a == "--mode") {
      if (std::string(v) == "keepalive")
        o.keepalive = true;
      else if (std::string(v) == "close")
        o.keepalive = false;
      else
        usage("--mode is keepalive or close");
    } else if (a == "--phases") {
      o.phases.clear();
      std::string list = v;
      for (std::size_t p = 0; p <= list.size();) {
        std::size_t c = list.find(',', p);
        if (c == std::string::npos) c = list.size();
        o.phases.push_back(list.substr(p, c - p));
        p = c + 1;
      }
    } else {
      usage("unknown option " + a);
    }
  }
  if (o.port == 0) usage("--port is required");
  if (o.path.empty() || o.path[0] != '/') usage("--path must start with /");
  client c(o);
  c.run();
  c.report();
  return 0;
}
