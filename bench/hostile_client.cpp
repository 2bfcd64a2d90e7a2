// hostile_client: the load of bench/slow_clients.sh (a benchmark, never run by CI).
//
// Slow clients and connection floods against a server on 127.0.0.1:PORT, while a few healthy
// keep-alive clients measure their latency. Two modes:
//
//   hostile_client slow --port P [--label NAME] [--alone-s 20] [--ramp-s 5] [--attack-s 80]
//       [--header-conns 2000] [--body-conns 500] [--byte-interval-ms 5000]
//       [--body-request "POST /echo"] [--body-length 1000]
//       [--healthy 8] [--healthy-interval-ms 20] [--events FILE]
//
//     The healthy clients run alone for ALONE s; then HEADER-CONNS + BODY-CONNS slow
//     connections are opened, evenly spread over RAMP s, and kept for ATTACK s more:
//       header  sends "GET / HTTP/1.1", "Host", "X-Slow: aaa..." one byte every BYTE-INTERVAL
//               ms from the connect on, never ending the head
//       body    sends a complete head ("BODY-REQUEST HTTP/1.1", Host, Content-Length:
//               BODY-LENGTH) at once, then one body byte every BYTE-INTERVAL ms
//     A slow connection that the server ends (a clean close or a reset, after an answer such as
//     408 or without one) is counted as cut, with its lifetime from the connect() call to the
//     moment the client saw the end, and opened again at once, so that the pressure stays.
//     The slow connections are one epoll loop on the main thread; the healthy clients another
//     on a thread of their own.
//
//   hostile_client flood --port P [--label NAME] [--conns 4000] [--before-s 5] [--flood-s 20]
//       [--after-s 10] [--probe-ms 500] [--after-probe-ms 100] [--probe-timeout-ms 1000]
//       [--log FILE] [--healthy 8] [--healthy-interval-ms 20] [--events FILE]
//
//     The healthy clients run alone for BEFORE s; then CONNS connections are opened at once,
//     each sending one keep-alive "GET /" and then holding its connection open, for FLOOD s;
//     then they are all closed and the healthy clients go on for AFTER s. A probe, a new
//     connection with one "GET /" and "Connection: close", starts every PROBE ms during the
//     flood and every AFTER-PROBE ms after it, each given PROBE-TIMEOUT ms for its answer: the
//     first one answered 200 after the flood says when the server had recovered. The lines the
//     server wrote to its log FILE during the flood and after it are counted.
//
// Healthy clients: HEALTHY keep-alive connections, each sending "GET /" every INTERVAL ms
// (their schedules staggered) and waiting for the answer; the latency is from the write to the
// complete answer. A tick that finds the previous request still unanswered is skipped (counted
// as "late"). A connection that fails (closed, reset, a non-200, no answer within 5 s) counts
// an error and is opened again. Each request counts in the phase in which it was sent.
//
// Output: one JSON object on stdout; --healthy-events FILE: one line per healthy request
// ("phase,sent_ms,latency_ms", ms after the attack or the flood began); --events FILE: one line per
// slow connection that ended (slow: "kind,start_ms,end_ms,how", ms after the attack began; "open"
// for those still open at the end) or per probe (flood: "phase,start_ms,end_ms,outcome", ms after
// the flood began). Everything is bounded by the phases' durations. Exit status 0 after a run
// whatever the figures, 1 when the setup failed, 2 on usage.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <queue>
#include <string>
#include <thread>
#include <vector>

namespace {

using i64 = std::int64_t;
constexpr i64 ms_ns = 1'000'000;
constexpr i64 s_ns = 1'000'000'000;

i64 now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return i64(ts.tv_sec) * s_ns + ts.tv_nsec;
}

struct options {
  std::string mode, label, events, log, healthy_events, body_request = "POST /echo";
  int port = 0;
  double alone_s = 20, ramp_s = 5, attack_s = 80;
  int header_conns = 2000, body_conns = 500, byte_interval_ms = 5000, body_length = 1000;
  int conns = 4000;
  double before_s = 5, flood_s = 20, after_s = 10;
  int probe_ms = 500, after_probe_ms = 100, probe_timeout_ms = 1000;
  int healthy = 8, healthy_interval_ms = 20;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "hostile_client: %s\n(see the comment at the top of hostile_client.cpp)\n",
               why.c_str());
  std::exit(2);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out;
}

std::string json_counts(const std::map<std::string, long>& m) {
  std::string s = "{";
  for (const auto& [k, v] : m) {
    if (s.size() > 1) s += ",";
    s += "\"" + json_escape(k) + "\":" + std::to_string(v);
  }
  return s + "}";
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// The p-th percentile (0..100, nearest rank) of sorted values.
i64 percentile(const std::vector<i64>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = std::size_t(std::ceil(p / 100.0 * double(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// "min", "p10", "p50", "p90", "max" of durations in ns, as seconds or milliseconds.
std::string json_distribution(std::vector<i64> v, double unit_ns) {
  if (v.empty()) return "null";
  std::sort(v.begin(), v.end());
  auto f = [&](i64 x) { return fmt(double(x) / unit_ns); };
  return "{\"min\":" + f(v.front()) + ",\"p10\":" + f(percentile(v, 10)) +
         ",\"p50\":" + f(percentile(v, 50)) + ",\"p90\":" + f(percentile(v, 90)) +
         ",\"max\":" + f(v.back()) + "}";
}

std::string errno_name(int e) {
  switch (e) {
    case ECONNREFUSED:
      return "refused";
    case ECONNRESET:
    case EPIPE:
      return "reset";
    case ETIMEDOUT:
      return "timed out";
    case EMFILE:
      return "EMFILE (client)";
    case EADDRNOTAVAIL:
      return "EADDRNOTAVAIL (client)";
    default:
      return "errno " + std::to_string(e);
  }
}

sockaddr_in server_address(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(std::uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A non-blocking connect to the server; -1 with errno on an immediate failure.
int open_connection(const sockaddr_in& to) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 &&
      errno != EINPROGRESS) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

// The errno a connect ended with (0: connected).
int connect_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

// A response at the start of buf: its status, and its length once complete (0 before). Every
// answer expected here has a Content-Length or no body (then it ends with its head).
struct response_head {
  int status = 0;
  std::size_t length = 0;
  bool close = false;
};
response_head parse_response(const std::string& buf) {
  response_head r;
  std::size_t head_end = buf.find("\r\n\r\n");
  if (buf.size() >= 12 && buf.compare(0, 5, "HTTP/") == 0) r.status = std::atoi(buf.c_str() + 9);
  if (head_end == std::string::npos) return r;
  long content_length = 0;
  std::size_t pos = buf.find("\r\n") + 2;
  while (pos < head_end) {
    std::size_t eol = buf.find("\r\n", pos);
    std::string line = buf.substr(pos, eol - pos);
    for (char& ch : line)
      ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (line.rfind("content-length:", 0) == 0) content_length = std::atol(line.c_str() + 15);
    if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) {
      r.close = true;
    }
    pos = eol + 2;
  }
  if (buf.size() >= head_end + 4 + std::size_t(content_length)) {
    r.length = head_end + 4 + std::size_t(content_length);
  }
  return r;
}

// Reads whatever is there: 1 bytes arrived (or none yet), 0 end of stream, -1 error (errno).
int drain_socket(int fd, std::string* into, std::size_t keep) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      if (into && into->size() < keep) into->append(buf, std::min<std::size_t>(n, keep));
      continue;
    }
    if (n == 0) return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
    if (errno == EINTR) continue;
    return -1;
  }
}

// ------------------------------------------------------------------------ healthy clients

struct latency_stats {
  std::vector<i64> ns;
  std::vector<std::pair<i64, i64>> timed;  // (sent at, latency), in the order answered
  std::map<std::string, long> errors;
  long late = 0;
  std::string json() {
    std::sort(ns.begin(), ns.end());
    auto ms = [](i64 x) { return fmt(double(x) / ms_ns); };
    return "{\"n\":" + std::to_string(ns.size()) + ",\"p50_ms\":" + ms(percentile(ns, 50)) +
           ",\"p90_ms\":" + ms(percentile(ns, 90)) + ",\"p99_ms\":" + ms(percentile(ns, 99)) +
           ",\"p999_ms\":" + ms(percentile(ns, 99.9)) +
           ",\"max_ms\":" + ms(ns.empty() ? 0 : ns.back()) + ",\"errors\":" + json_counts(errors) +
           ",\"late\":" + std::to_string(late) + "}";
  }
};

// One line per healthy request: "phase,sent_ms,latency_ms", ms after t0, in the order answered.
void write_healthy_events(const std::string& path, const std::vector<latency_stats>& by_phase,
                          const std::vector<std::string>& names, i64 t0) {
  if (path.empty()) return;
  std::ofstream f(path);
  f << "phase,sent_ms,latency_ms\n";
  for (std::size_t p = 0; p < by_phase.size() && p < names.size(); ++p) {
    if (names[p].empty()) continue;
    for (const auto& [at, ns] : by_phase[p].timed)
      f << names[p] << "," << fmt(double(at - t0) / ms_ns) << "," << fmt(double(ns) / ms_ns)
        << "\n";
  }
}

// HEALTHY keep-alive clients on a thread of their own; each request counts in the phase
// (the value of `phase`) in which it was sent. Phase numbers index by_phase.
class healthy_clients {
 public:
  healthy_clients(const options& o, const std::atomic<int>& phase, int phases)
      : by_phase(std::size_t(phases)),
        to_(server_address(o.port)),
        interval_(i64(o.healthy_interval_ms) * ms_ns),
        phase_(phase),
        conns_(std::size_t(o.healthy)) {}

  void start() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    const i64 t0 = now_ns();
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].due = t0 + interval_ * i64(i) / i64(conns_.size());
      reopen(i, t0);
    }
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_.store(true);
    thread_.join();
    for (auto& c : conns_)
      if (c.fd >= 0) ::close(c.fd);
    ::close(ep_);
  }

  std::vector<latency_stats> by_phase;

 private:
  enum class state { closed, connecting, idle, waiting };
  struct conn {
    int fd = -1;
    state st = state::closed;
    std::string buf;
    i64 due = 0, sent_at = 0, reopen_at = 0;
    int sent_phase = 0;
  };
  static constexpr const char* request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  static constexpr i64 answer_timeout = 5 * s_ns;

  void error(std::size_t i, const std::string& why, i64 now) {
    auto& c = conns_[i];
    int p = c.st == state::waiting ? c.sent_phase : phase_.load();
    by_phase[std::size_t(p)].errors[why]++;
    ::close(c.fd);
    c.fd = -1;
    c.st = state::closed;
    c.reopen_at = now + 10 * ms_ns;
  }
  void reopen(std::size_t i, i64 now) {
    auto& c = conns_[i];
    c.buf.clear();
    c.fd = open_connection(to_);
    if (c.fd < 0) {
      by_phase[std::size_t(phase_.load())].errors["connect " + errno_name(errno)]++;
      c.reopen_at = now + 100 * ms_ns;
      return;
    }
    c.st = state::connecting;
    c.sent_at = now;  // the connect's deadline runs from here
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  }
  void send_request(std::size_t i, i64 now) {
    auto& c = conns_[i];
    std::size_t len = std::strlen(request);
    if (::write(c.fd, request, len) != ssize_t(len)) return error(i, errno_name(errno), now);
    c.st = state::waiting;
    c.sent_at = now;
    c.sent_phase = phase_.load();
  }
  void on_event(std::size_t i, std::uint32_t events, i64 now) {
    auto& c = conns_[i];
    if (c.fd < 0) return;
    if (c.st == state::connecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      if (int e = connect_error(c.fd)) return error(i, "connect " + errno_name(e), now);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u64 = i;
      ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      c.st = state::idle;
      return;
    }
    int r = drain_socket(c.fd, &c.buf, 1 << 16);
    if (c.st == state::waiting) {
      auto head = parse_response(c.buf);
      if (head.length > 0) {
        auto& stats = by_phase[std::size_t(c.sent_phase)];
        stats.ns.push_back(now - c.sent_at);
        stats.timed.emplace_back(c.sent_at, now - c.sent_at);
        c.buf.erase(0, head.length);
        c.st = state::idle;
        if (head.status != 200) stats.errors["status " + std::to_string(head.status)]++;
        if (head.close) return error(i, "closed after answer", now);
      }
    } else if (!c.buf.empty()) {
      return error(i, "unsolicited bytes", now);
    }
    if (r == 0)
      return error(i, c.st == state::waiting ? "closed before answer" : "closed idle", now);
    if (r < 0) return error(i, errno_name(errno), now);
  }
  void on_time(i64 now) {
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      auto& c = conns_[i];
      if (c.st == state::closed && now >= c.reopen_at) reopen(i, now);
      if ((c.st == state::waiting || c.st == state::connecting) &&
          now - c.sent_at > answer_timeout) {
        error(i, c.st == state::waiting ? "no answer in 5 s" : "connect took 5 s", now);
        continue;
      }
      if (now < c.due) continue;
      if (c.st == state::idle) {
        send_request(i, now);
      } else {
        by_phase[std::size_t(phase_.load())].late++;
      }
      c.due += interval_;
      if (c.due <= now) c.due = now + interval_;  // fell behind: do not burst
    }
  }
  i64 next_wake() const {
    i64 next = now_ns() + 100 * ms_ns;
    for (const auto& c : conns_) {
      next = std::min(next, c.st == state::closed ? c.reopen_at : c.due);
    }
    return next;
  }
  void run() {
    epoll_event evs[64];
    while (!stop_.load()) {
      i64 wait = next_wake() - now_ns();
      int timeout = wait <= 0 ? 0 : int((wait + ms_ns - 1) / ms_ns);
      int n = ::epoll_wait(ep_, evs, 64, std::min(timeout, 100));
      i64 now = now_ns();
      for (int k = 0; k < n; ++k)
        on_event(std::size_t(evs[k].data.u64), evs[k].events, now);
      on_time(now_ns());
    }
  }

  sockaddr_in to_;
  i64 interval_;
  const std::atomic<int>& phase_;
  std::vector<conn> conns_;
  int ep_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ------------------------------------------------------------------------ timers

// Due times of numbered things; an entry whose generation is stale is skipped.
class timer_queue {
 public:
  void at(i64 when, std::size_t id, std::uint32_t gen) { heap_.push({when, id, gen}); }
  i64 next() const { return heap_.empty() ? INT64_MAX : heap_.top().when; }
  // Calls f(id, gen) for each entry due by now.
  template <class F>
  void run_due(i64 now, F f) {
    while (!heap_.empty() && heap_.top().when <= now) {
      auto e = heap_.top();
      heap_.pop();
      f(e.id, e.gen);
    }
  }

 private:
  struct entry {
    i64 when;
    std::size_t id;
    std::uint32_t gen;
    bool operator>(const entry& o) const { return when > o.when; }
  };
  std::priority_queue<entry, std::vector<entry>, std::greater<>> heap_;
};

int wait_ms(i64 until) {
  i64 wait = until - now_ns();
  if (wait <= 0) return 0;
  return int(std::min<i64>((wait + ms_ns - 1) / ms_ns, 100));
}

// ------------------------------------------------------------------------ slow mode

struct slow_attack {
  enum kind { header = 0, body = 1 };
  struct slot {
    kind k = header;
    int fd = -1;
    bool connected = false;
    std::uint32_t gen = 0;
    i64 started = 0;
    std::size_t sent = 0;  // payload bytes sent on this connection
    std::string answer;    // the first bytes the server sent
  };
  struct ended {
    kind k;
    i64 start, end;
    std::string how;
  };
  struct per_kind {
    long opened = 0, cut = 0, connect_failed = 0, body_completed = 0;
    long bytes_sent = 0;
    std::map<std::string, long> how;
    std::vector<i64> lifetimes;
  };

  const options& o;
  sockaddr_in to;
  int ep = -1;
  std::vector<slot> slots;
  timer_queue timers;
  std::string header_prefix, body_head;
  per_kind kinds[2];
  std::vector<ended> log;
  i64 attack_t0 = 0;
  i64 interval;

  explicit slow_attack(const options& opts)
      : o(opts), to(server_address(opts.port)), interval(i64(opts.byte_interval_ms) * ms_ns) {
    header_prefix = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow-header\r\nX-Slow: ";
    body_head = o.body_request +
                " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow-body\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: " +
                std::to_string(o.body_length) + "\r\n\r\n";
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::size_t total = std::size_t(o.header_conns + o.body_conns);
    slots.resize(total);
    // Body slots spread evenly among header slots, so both kinds ramp up together.
    std::size_t b = 0;
    for (std::size_t i = 0; i < total; ++i) {
      bool is_body =
          b < std::size_t(o.body_conns) && (i + 1) * std::size_t(o.body_conns) / total > b;
      if (is_body) ++b;
      slots[i].k = is_body ? body : header;
    }
  }

  void open(std::size_t i, i64 now) {
    auto& s = slots[i];
    s.gen++;
    s.connected = false;
    s.sent = 0;
    s.answer.clear();
    s.started = now;
    s.fd = open_connection(to);
    if (s.fd < 0) {
      kinds[s.k].connect_failed++;
      kinds[s.k].how["connect " + errno_name(errno)]++;
      timers.at(now + s_ns, i, s.gen);  // try again in a second
      return;
    }
    kinds[s.k].opened++;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
  }

  // The server ended the connection (or the connect failed); it is opened again at once.
  void end(std::size_t i, const std::string& how, i64 now, bool reopen) {
    auto& s = slots[i];
    if (s.connected) {
      auto& k = kinds[s.k];
      k.cut++;
      std::string key = how;
      if (!s.answer.empty()) {
        auto head = parse_response(s.answer);
        key = (head.status ? std::to_string(head.status) : std::string("bytes")) + ", then " + how;
      }
      k.how[key]++;
      k.lifetimes.push_back(now - s.started);
      log.push_back({s.k, s.started, now, key});
    } else {
      kinds[s.k].connect_failed++;
      kinds[s.k].how["connect " + how]++;
    }
    const bool was_connected = s.connected;
    ::close(s.fd);
    s.fd = -1;
    s.connected = false;
    s.gen++;
    if (!reopen) return;
    if (was_connected) {
      open(i, now);
    } else {
      timers.at(now + s_ns, i, s.gen);  // a failed connect is tried again in a second
    }
  }

  // Sends the next byte (for a body slot, at first the whole head).
  void send_next(std::size_t i, i64 now) {
    auto& s = slots[i];
    std::string out;
    if (s.k == header) {
      out = s.sent < header_prefix.size() ? header_prefix.substr(s.sent, 1) : "a";
    } else if (s.sent == 0) {
      out = body_head;
    } else if (s.sent < body_head.size() + std::size_t(o.body_length)) {
      out = "b";
    } else {
      return;  // the whole body went out; the answer is awaited
    }
    ssize_t n = ::write(s.fd, out.data(), out.size());
    if (n < 0) {
      if (errno == EAGAIN) return timers.at(now + interval, i, s.gen);
      return end(i, errno_name(errno), now, true);
    }
    s.sent += std::size_t(n);
    kinds[s.k].bytes_sent += n;
    if (s.k == body && s.sent == body_head.size() + std::size_t(o.body_length)) {
      kinds[s.k].body_completed++;
    }
    timers.at(now + interval, i, s.gen);
  }

  void on_event(std::size_t i, std::uint32_t events, i64 now) {
    auto& s = slots[i];
    if (s.fd < 0) return;
    if (!s.connected) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      if (int e = connect_error(s.fd)) return end(i, errno_name(e), now, true);
      s.connected = true;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u64 = i;
      ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
      send_next(i, now);
      return;
    }
    int r = drain_socket(s.fd, &s.answer, 256);
    if (r == 0) return end(i, "close", now, true);
    if (r < 0) return end(i, errno_name(errno), now, true);
  }

  // A failed connect is retried by its timer: open() again.
  void on_timer(std::size_t i, std::uint32_t gen, i64 now) {
    auto& s = slots[i];
    if (gen != s.gen) return;
    if (s.fd < 0) return open(i, now);
    if (s.connected) send_next(i, now);
  }

  std::size_t open_now() const {
    std::size_t n = 0;
    for (const auto& s : slots)
      n += s.connected ? 1 : 0;
    return n;
  }

  // Runs the loop until `until`, opening slot i at first_open[i] if not yet open.
  void loop_until(i64 until, const std::vector<i64>* first_open, std::size_t* next_first,
                  std::vector<std::size_t>* concurrency) {
    epoll_event evs[256];
    i64 next_sample = now_ns() + s_ns;
    for (;;) {
      i64 now = now_ns();
      if (now >= until) break;
      i64 wake = std::min(until, timers.next());
      if (first_open && *next_first < first_open->size()) {
        wake = std::min(wake, (*first_open)[*next_first]);
      }
      if (concurrency) wake = std::min(wake, next_sample);
      int n = ::epoll_wait(ep, evs, 256, wait_ms(wake));
      now = now_ns();
      for (int k = 0; k < n; ++k)
        on_event(std::size_t(evs[k].data.u64), evs[k].events, now);
      timers.run_due(now, [&](std::size_t id, std::uint32_t gen) { on_timer(id, gen, now); });
      while (first_open && *next_first < first_open->size() && (*first_open)[*next_first] <= now) {
        open((*next_first)++, now);
      }
      if (concurrency && now >= next_sample) {
        concurrency->push_back(open_now());
        next_sample += s_ns;
      }
    }
  }
};

int run_slow(const options& o) {
  std::atomic<int> phase{0};  // 0 settle, 1 alone, 2 ramp, 3 attack, 4 end
  healthy_clients healthy(o, phase, 5);
  healthy.start();
  ::usleep(1'000'000);
  phase = 1;
  ::usleep(useconds_t(o.alone_s * 1e6));

  slow_attack attack(o);
  phase = 2;
  const i64 t0 = now_ns();
  attack.attack_t0 = t0;
  std::vector<i64> first_open(attack.slots.size());
  for (std::size_t i = 0; i < first_open.size(); ++i)
    first_open[i] = t0 + i64(o.ramp_s * double(s_ns) * double(i) / double(first_open.size()));
  std::size_t next_first = 0;
  attack.loop_until(t0 + i64(o.ramp_s * s_ns), &first_open, &next_first, nullptr);
  while (next_first < first_open.size())
    attack.open(next_first++, now_ns());
  phase = 3;
  std::vector<std::size_t> concurrency;
  const i64 attack_start = now_ns();
  attack.loop_until(attack_start + i64(o.attack_s * s_ns), nullptr, nullptr, &concurrency);
  phase = 4;
  const i64 t_end = now_ns();
  healthy.stop();
  write_healthy_events(o.healthy_events, healthy.by_phase, {"", "alone", "ramp", "attack"}, t0);

  // What is still open: its age; then everything is closed.
  std::vector<i64> open_age[2];
  long still_connecting[2] = {0, 0};
  for (auto& s : attack.slots) {
    if (s.fd < 0) continue;
    if (s.connected) {
      open_age[s.k].push_back(t_end - s.started);
      attack.log.push_back({s.k, s.started, -1, "open"});
    } else {
      still_connecting[s.k]++;
    }
    ::close(s.fd);
  }

  if (!o.events.empty()) {
    std::ofstream ev(o.events);
    ev << "kind,start_ms,end_ms,how\n";
    for (const auto& e : attack.log) {
      ev << (e.k == slow_attack::header ? "header" : "body") << ","
         << fmt(double(e.start - t0) / ms_ns) << ","
         << (e.end < 0 ? std::string("open") : fmt(double(e.end - t0) / ms_ns)) << ",\"" << e.how
         << "\"\n";
    }
  }

  std::string out = "{\"mode\":\"slow\",\"label\":\"" + json_escape(o.label) + "\"";
  out += ",\"settings\":{\"alone_s\":" + fmt(o.alone_s) + ",\"ramp_s\":" + fmt(o.ramp_s) +
         ",\"attack_s\":" + fmt(o.attack_s) +
         ",\"header_conns\":" + std::to_string(o.header_conns) +
         ",\"body_conns\":" + std::to_string(o.body_conns) +
         ",\"byte_interval_ms\":" + std::to_string(o.byte_interval_ms) + ",\"body_request\":\"" +
         json_escape(o.body_request) + "\",\"body_length\":" + std::to_string(o.body_length) +
         ",\"healthy\":" + std::to_string(o.healthy) +
         ",\"healthy_interval_ms\":" + std::to_string(o.healthy_interval_ms) + "}";
  out += ",\"healthy\":{\"alone\":" + healthy.by_phase[1].json() +
         ",\"ramp\":" + healthy.by_phase[2].json() + ",\"attack\":" + healthy.by_phase[3].json() +
         "}";
  const char* names[2] = {"header", "body"};
  out += ",\"slow\":{";
  for (int k = 0; k < 2; ++k) {
    auto& pk = attack.kinds[k];
    if (k) out += ",";
    out += std::string("\"") + names[k] + "\":{\"opened\":" + std::to_string(pk.opened) +
           ",\"cut\":" + std::to_string(pk.cut) + ",\"how\":" + json_counts(pk.how) +
           ",\"lifetime_s\":" + json_distribution(pk.lifetimes, double(s_ns)) +
           ",\"open_at_end\":" + std::to_string(open_age[k].size()) +
           ",\"open_age_s\":" + json_distribution(open_age[k], double(s_ns)) +
           ",\"connecting_at_end\":" + std::to_string(still_connecting[k]) +
           ",\"connect_failed\":" + std::to_string(pk.connect_failed) +
           ",\"body_completed\":" + std::to_string(pk.body_completed) +
           ",\"bytes_sent\":" + std::to_string(pk.bytes_sent) + "}";
  }
  out += "}";
  std::size_t cmin = 0, cmax = 0;
  double csum = 0;
  if (!concurrency.empty()) {
    cmin = *std::min_element(concurrency.begin(), concurrency.end());
    cmax = *std::max_element(concurrency.begin(), concurrency.end());
    for (auto c : concurrency)
      csum += double(c);
  }
  out += ",\"slow_open\":{\"min\":" + std::to_string(cmin) +
         ",\"avg\":" + fmt(concurrency.empty() ? 0 : csum / double(concurrency.size())) +
         ",\"max\":" + std::to_string(cmax) + "}";
  out += "}";
  std::printf("%s\n", out.c_str());
  return 0;
}

// ------------------------------------------------------------------------ flood mode

// Counts the lines of a file (0 when it cannot be read), and keeps the text of lines from
// line `from` on (at most max_keep of them).
std::size_t count_lines(const std::string& path, std::size_t from = SIZE_MAX,
                        std::vector<std::string>* keep = nullptr, std::size_t max_keep = 0) {
  if (path.empty()) return 0;
  std::ifstream f(path);
  std::string line;
  std::size_t n = 0;
  while (std::getline(f, line)) {
    if (keep && n >= from && keep->size() < max_keep) keep->push_back(line.substr(0, 200));
    ++n;
  }
  return n;
}

struct flood_run {
  struct conn {
    int fd = -1;
    bool connected = false, done = false, probe = false;
    int phase = 0;  // probes: 2 during the flood, 3 after it
    i64 started = 0, ended = 0;
    std::string buf, outcome;
  };
  const options& o;
  sockaddr_in to;
  int ep = -1;
  std::vector<conn> conns;  // the flood's first, then the probes
  std::size_t flood_n = 0;
  static constexpr const char* keep_alive = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  static constexpr const char* once =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

  explicit flood_run(const options& opts) : o(opts), to(server_address(opts.port)) {
    ep = ::epoll_create1(EPOLL_CLOEXEC);
  }

  std::size_t add(bool probe, int phase, i64 now) {
    conns.push_back({});
    std::size_t i = conns.size() - 1;
    auto& c = conns[i];
    c.probe = probe;
    c.phase = phase;
    c.started = now;
    c.fd = open_connection(to);
    if (c.fd < 0) {
      c.done = true;
      c.ended = now;
      c.outcome = "connect " + errno_name(errno);
      return i;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    return i;
  }

  void finish(std::size_t i, const std::string& outcome) {
    auto& c = conns[i];
    c.done = true;
    c.outcome = outcome;
    c.ended = now_ns();
    ::close(c.fd);
    c.fd = -1;
  }

  void on_event(std::size_t i, std::uint32_t events) {
    auto& c = conns[i];
    if (c.fd < 0) return;
    if (!c.connected) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      if (int e = connect_error(c.fd)) return finish(i, "connect " + errno_name(e));
      c.connected = true;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u64 = i;
      ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      const char* req = c.probe ? once : keep_alive;
      if (::write(c.fd, req, std::strlen(req)) < 0) return finish(i, errno_name(errno));
      return;
    }
    int r = drain_socket(c.fd, &c.buf, 4096);
    auto head = parse_response(c.buf);
    if (c.probe && head.length > 0) {
      return finish(i, "answered " + std::to_string(head.status));
    }
    if (r == 0) {
      return finish(i, head.status ? std::to_string(head.status) + ", then closed"
                                   : (c.buf.empty() ? "closed, no answer" : "closed, partial"));
    }
    if (r < 0) {
      return finish(i, head.status ? std::to_string(head.status) + ", then reset"
                                   : errno_name(errno) + (c.buf.empty() ? "" : ", partial"));
    }
  }

  // The probes still unanswered after their timeout.
  void expire_probes(i64 now) {
    for (std::size_t i = flood_n; i < conns.size(); ++i) {
      auto& c = conns[i];
      if (!c.done && now - c.started >= i64(o.probe_timeout_ms) * ms_ns) {
        finish(i, c.connected ? "no answer in time" : "no handshake in time");
      }
    }
  }

  // Runs until `until`, starting a probe every probe_every ns (0: none) of phase `phase`.
  void loop_until(i64 until, i64 probe_every, int phase) {
    epoll_event evs[256];
    i64 next_probe = now_ns();
    for (;;) {
      i64 now = now_ns();
      if (now >= until) break;
      if (probe_every > 0 && now >= next_probe) {
        add(true, phase, now);
        next_probe += probe_every;
      }
      i64 wake = until;
      if (probe_every > 0) wake = std::min(wake, next_probe);
      int n = ::epoll_wait(ep, evs, 256, std::min(wait_ms(wake), 10));
      for (int k = 0; k < n; ++k)
        on_event(std::size_t(evs[k].data.u64), evs[k].events);
      expire_probes(now_ns());
    }
  }
};

int run_flood(const options& o) {
  std::atomic<int> phase{0};  // 0 settle, 1 before, 2 flood, 3 after, 4 end
  healthy_clients healthy(o, phase, 5);
  healthy.start();
  ::usleep(1'000'000);
  phase = 1;
  ::usleep(useconds_t(o.before_s * 1e6));

  flood_run flood(o);
  const std::size_t log_at_flood = count_lines(o.log);
  phase = 2;
  const i64 t0 = now_ns();
  flood.conns.reserve(std::size_t(o.conns) + 4096);
  for (int i = 0; i < o.conns; ++i)
    flood.add(false, 2, now_ns());
  flood.flood_n = flood.conns.size();
  const i64 opened_ns = now_ns() - t0;
  flood.loop_until(t0 + i64(o.flood_s * s_ns), i64(o.probe_ms) * ms_ns, 2);

  // What each flood connection had got by the end of the flood; then all of them close.
  std::map<std::string, long> outcomes;
  for (std::size_t i = 0; i < flood.flood_n; ++i) {
    auto& c = flood.conns[i];
    if (!c.done) {
      auto head = parse_response(c.buf);
      c.outcome = head.status   ? std::to_string(head.status) + ", held open"
                  : c.connected ? "connected, no answer"
                                : "handshake pending";
    }
    outcomes[c.outcome]++;
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.done = true;
  }
  phase = 3;
  const i64 t1 = now_ns();
  const std::size_t log_at_end = count_lines(o.log);
  flood.loop_until(t1 + i64(o.after_s * s_ns), i64(o.after_probe_ms) * ms_ns, 3);
  // The last probes get their timeout to answer.
  flood.loop_until(now_ns() + i64(o.probe_timeout_ms) * ms_ns, 0, 3);
  flood.expire_probes(INT64_MAX);
  phase = 4;
  healthy.stop();
  write_healthy_events(o.healthy_events, healthy.by_phase, {"", "before", "flood", "after"}, t0);
  std::vector<std::string> lines;
  const std::size_t log_after = count_lines(o.log, log_at_flood, &lines, 12);

  std::map<std::string, long> probes[2];
  long tried[2] = {0, 0};
  i64 first_ok = -1, first_ok_answered = -1, last_bad = -1;
  std::ofstream ev;
  if (!o.events.empty()) {
    ev.open(o.events);
    ev << "phase,start_ms,end_ms,outcome\n";
  }
  for (std::size_t i = flood.flood_n; i < flood.conns.size(); ++i) {
    auto& c = flood.conns[i];
    int p = c.phase == 2 ? 0 : 1;
    tried[p]++;
    probes[p][c.outcome]++;
    if (ev) {
      ev << (p ? "after" : "flood") << "," << fmt(double(c.started - t0) / ms_ns) << ","
         << fmt(double(c.ended - t0) / ms_ns) << ",\"" << c.outcome << "\"\n";
    }
    if (p == 1) {
      bool ok = c.outcome == "answered 200";
      if (ok && first_ok < 0) {
        first_ok = c.started - t1;
        first_ok_answered = c.ended - t1;
      }
      if (!ok) last_bad = c.started - t1;
    }
  }

  std::string out = "{\"mode\":\"flood\",\"label\":\"" + json_escape(o.label) + "\"";
  out += ",\"settings\":{\"conns\":" + std::to_string(o.conns) +
         ",\"before_s\":" + fmt(o.before_s) + ",\"flood_s\":" + fmt(o.flood_s) +
         ",\"after_s\":" + fmt(o.after_s) + ",\"probe_ms\":" + std::to_string(o.probe_ms) +
         ",\"after_probe_ms\":" + std::to_string(o.after_probe_ms) +
         ",\"probe_timeout_ms\":" + std::to_string(o.probe_timeout_ms) +
         ",\"healthy\":" + std::to_string(o.healthy) +
         ",\"healthy_interval_ms\":" + std::to_string(o.healthy_interval_ms) + "}";
  out += ",\"healthy\":{\"before\":" + healthy.by_phase[1].json() +
         ",\"flood\":" + healthy.by_phase[2].json() + ",\"after\":" + healthy.by_phase[3].json() +
         "}";
  out += ",\"flood\":{\"opened_ms\":" + fmt(double(opened_ns) / ms_ns) +
         ",\"outcomes\":" + json_counts(outcomes) + "}";
  out += ",\"probes_flood\":{\"tried\":" + std::to_string(tried[0]) +
         ",\"outcomes\":" + json_counts(probes[0]) + "}";
  out += ",\"probes_after\":{\"tried\":" + std::to_string(tried[1]) +
         ",\"outcomes\":" + json_counts(probes[1]) +
         ",\"first_ok_ms\":" + (first_ok < 0 ? "null" : fmt(double(first_ok) / ms_ns)) +
         ",\"first_ok_answered_ms\":" +
         (first_ok < 0 ? "null" : fmt(double(first_ok_answered) / ms_ns)) +
         ",\"last_bad_ms\":" + (last_bad < 0 ? "null" : fmt(double(last_bad) / ms_ns)) + "}";
  out += ",\"log\":{\"flood\":" + std::to_string(log_at_end - log_at_flood) +
         ",\"after\":" + std::to_string(log_after - log_at_end) + ",\"lines\":[";
  for (std::size_t i = 0; i < lines.size(); ++i)
    out += (i ? ",\"" : "\"") + json_escape(lines[i]) + "\"";
  out += "]}}";
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (argc < 2) usage("slow or flood?");
  o.mode = argv[1];
  if (o.mode != "slow" && o.mode != "flood") usage("unknown mode " + o.mode);
  std::map<std::string, std::function<void(const char*)>> flags = {
      {"--port", [&](const char* v) { o.port = std::atoi(v); }},
      {"--label", [&](const char* v) { o.label = v; }},
      {"--events", [&](const char* v) { o.events = v; }},
      {"--healthy-events", [&](const char* v) { o.healthy_events = v; }},
      {"--log", [&](const char* v) { o.log = v; }},
      {"--alone-s", [&](const char* v) { o.alone_s = std::atof(v); }},
      {"--ramp-s", [&](const char* v) { o.ramp_s = std::atof(v); }},
      {"--attack-s", [&](const char* v) { o.attack_s = std::atof(v); }},
      {"--header-conns", [&](const char* v) { o.header_conns = std::atoi(v); }},
      {"--body-conns", [&](const char* v) { o.body_conns = std::atoi(v); }},
      {"--byte-interval-ms", [&](const char* v) { o.byte_interval_ms = std::atoi(v); }},
      {"--body-request", [&](const char* v) { o.body_request = v; }},
      {"--body-length", [&](const char* v) { o.body_length = std::atoi(v); }},
      {"--conns", [&](const char* v) { o.conns = std::atoi(v); }},
      {"--before-s", [&](const char* v) { o.before_s = std::atof(v); }},
      {"--flood-s", [&](const char* v) { o.flood_s = std::atof(v); }},
      {"--after-s", [&](const char* v) { o.after_s = std::atof(v); }},
      {"--probe-ms", [&](const char* v) { o.probe_ms = std::atoi(v); }},
      {"--after-probe-ms", [&](const char* v) { o.after_probe_ms = std::atoi(v); }},
      {"--probe-timeout-ms", [&](const char* v) { o.probe_timeout_ms = std::atoi(v); }},
      {"--healthy", [&](const char* v) { o.healthy = std::atoi(v); }},
      {"--healthy-interval-ms", [&](const char* v) { o.healthy_interval_ms = std::atoi(v); }},
  };
  for (int i = 2; i < argc; i += 2) {
    auto f = flags.find(argv[i]);
    if (f == flags.end()) usage(std::string("unknown option ") + argv[i]);
    if (i + 1 >= argc) usage(std::string("no value for ") + argv[i]);
    f->second(argv[i + 1]);
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is needed");
  if (o.healthy < 1 || o.healthy_interval_ms < 1 || o.byte_interval_ms < 1 || o.probe_ms < 1 ||
      o.after_probe_ms < 1 || o.header_conns < 0 || o.body_conns < 0 || o.conns < 0) {
    usage("a count or an interval is out of range");
  }
  if (o.body_length < 1) usage("--body-length must be at least 1");
  // Thousands of connections: as many descriptors as the hard limit allows.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::signal(SIGPIPE, SIG_IGN);
  return o.mode == "slow" ? run_slow(o) : run_flood(o);
}
