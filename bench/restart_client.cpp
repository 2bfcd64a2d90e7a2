// restart_client: the client of bench/restart.sh (a benchmark, never run by CI).
//
// Measures what new connections see while a server on 127.0.0.1:PORT replaces itself on the
// same port, RESTARTS times, under a steady stream of new connections:
//
//   restart_client --port P [--restarts 20] [--every-us 1000] [--arrivals poisson|fixed]
//                  [--restart-ms 100] [--lead-ms 200] [--tail-ms 300] [--timeout-ms 2500]
//                  [--max-inflight 256] [--max-s 30] [--seed N] [--events FILE]
//
//   - Probes: a NEW TCP connection every EVERY µs on average, each sending `GET / HTTP/1.1`,
//     `Host: x`, `Connection: close` and reading the answer until the server closes. With
//     --arrivals poisson (the default) the gaps between them are random (exponential, as from
//     many independent clients; --seed), so that they fall at every phase of a restart: with
//     fixed gaps, the restart (which a /next sent right after a probe sets off) would always
//     begin at the same instant after a probe and a short closed port could be missed every
//     time. A timerfd wakes the loop when the next one is due; when the loop has fallen behind
//     (its CPU busy elsewhere) it starts at most 8 at once and skips the rest of the backlog
//     (skipped_behind), and it starts none while MAX-INFLIGHT are open (skipped_inflight).
//     Each ends up:
//       answered  a complete 200 (status line, head, Content-Length bytes of body, or the body
//                 to the end of stream without Content-Length); a reset after it still counts
//                 as answered (reset_after_answer says how many)
//       refused   ECONNREFUSED at connect
//       reset     ECONNRESET or EPIPE, at connect, write or read, before a complete answer
//       other     anything else, by kind: timeout-connect (no handshake within TIMEOUT ms: a
//                 SYN dropped twice), timeout-answer, eof-no-answer (a clean end of stream
//                 before any byte), eof-partial, status-NNN (a complete non-200), or the
//                 errno's name
//     Probes run from the start until TAIL ms after the last restart.
//   - Restarts: from LEAD ms on, GET /next on a connection of its own (Connection: close),
//     RESTART ms after the previous restart was answered. The answer must be
//     "generation G ends" for the generation G expected (1, 2, ...): then it is a restart. A
//     /next that is refused, reset or otherwise fails is counted (next_failed, by kind) and
//     retried 2 ms later; one answered by an older generation (which can still accept for an
//     instant after a handover) is counted as next_stale and retried 2 ms later.
//   - One idle keep-alive connection, as Python's http.client keeps one: a `GET /` without
//     Connection: close, answered, then left open and never closed by the client. When the
//     server closes it (or it is reset, or cannot be opened), it is opened again 1 ms later
//     (5 ms after a failure), so a new one sits on the current server after each restart.
//     Counted apart (idle_*), not in the probes' figures.
//
// Everything is bounded: each connection by TIMEOUT ms, the whole run by MAX-S seconds (the
// restarts not done by then are missing from "restarts"). The answers' generations ("generation
// N" in the body) are noted: the largest seen, and answers from a generation older than one
// already seen (old_generation_answers; normal while an old server drains).
//
// Output: one JSON object on stdout. --events FILE writes one line per probe:
// start_ms,end_ms,outcome,generation (ms after the start; generation 0 when none).
// Exit status 0 after a run (whatever the figures), 1 when the setup failed, 2 on usage.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

struct options {
  int port = 0;
  int restarts = 20;
  int every_us = 1000;
  int restart_ms = 100;
  int lead_ms = 200;
  int tail_ms = 300;
  int timeout_ms = 2500;
  int max_inflight = 256;
  int max_s = 30;
  bool poisson = true;
  std::uint64_t seed = 1;
  std::string events;
};

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "restart_client: %s\n(see the comment at the top of restart_client.cpp)\n",
               why);
  std::exit(2);
}

std::string errno_kind(int e) {
  switch (e) {
    case ETIMEDOUT:
      return "ETIMEDOUT";
    case EHOSTUNREACH:
      return "EHOSTUNREACH";
    case ENETUNREACH:
      return "ENETUNREACH";
    case EADDRNOTAVAIL:
      return "EADDRNOTAVAIL";
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOBUFS:
      return "ENOBUFS";
    case EAGAIN:
      return "EAGAIN";
    default:
      return "errno-" + std::to_string(e);
  }
}

enum class role { probe, next, idle };
enum class outcome { none, answered, refused, reset, other };

struct conn {
  role what = role::probe;
  int fd = -1;
  bool connected = false;
  bool request_sent = false;
  bool answered = false;  // a complete response is in buf
  int status = 0;
  int generation = 0;
  std::string body;
  std::string buf;
  std::int64_t started = 0;
  std::int64_t deadline = 0;
};

// Parses what has arrived: true once a complete response is in buf (at_eof: the stream ended,
// which completes a body without Content-Length).
bool complete(conn& c, bool at_eof) {
  std::size_t head_end = c.buf.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  if (c.buf.compare(0, 5, "HTTP/") != 0) return false;
  std::size_t sp = c.buf.find(' ');
  if (sp == std::string::npos || sp > head_end) return false;
  c.status = std::atoi(c.buf.c_str() + sp + 1);
  long content_length = -1;
  std::size_t pos = c.buf.find("\r\n") + 2;
  while (pos < head_end) {
    std::size_t eol = c.buf.find("\r\n", pos);
    std::string line = c.buf.substr(pos, eol - pos);
    std::string lower = line;
    for (char& ch : lower)
      ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (lower.rfind("content-length:", 0) == 0) content_length = std::atol(line.c_str() + 15);
    pos = eol + 2;
  }
  std::size_t body_start = head_end + 4;
  std::size_t have = c.buf.size() - body_start;
  if (content_length >= 0) {
    if (have < std::size_t(content_length)) return false;
    c.body = c.buf.substr(body_start, std::size_t(content_length));
  } else {
    if (!at_eof) return false;
    c.body = c.buf.substr(body_start);
  }
  if (c.body.rfind("generation ", 0) == 0) c.generation = std::atoi(c.body.c_str() + 11);
  return true;
}

struct counts {
  long tried = 0, answered = 0, refused = 0, reset = 0, other = 0;
  long reset_after_answer = 0, skipped_behind = 0, skipped_inflight = 0, slow = 0;
  std::map<std::string, long> other_kinds;
};

std::string json_map(const std::map<std::string, long>& m) {
  std::string s = "{";
  for (const auto& [k, v] : m) {
    if (s.size() > 1) s += ",";
    s += "\"" + k + "\":" + std::to_string(v);
  }
  return s + "}";
}

class client {
 public:
  explicit client(const options& o) : o_(o), rng_(o.seed) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(std::uint16_t(o.port));
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    tfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep_ < 0 || tfd_ < 0) {
      std::perror("restart_client: epoll/timerfd");
      std::exit(1);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = tfd_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, tfd_, &ev);
    if (!o.events.empty()) {
      events_ = std::fopen(o.events.c_str(), "w");
      if (!events_) {
        std::perror("restart_client: --events");
        std::exit(1);
      }
      std::fputs("start_ms,end_ms,outcome,generation\n", events_);
    }
  }

  void run() {
    t0_ = now_ns();
    probe_due_ = t0_;
    next_due_ = t0_ + std::int64_t(o_.lead_ms) * 1'000'000;
    idle_due_ = t0_;
    const std::int64_t hard_end = t0_ + std::int64_t(o_.max_s) * 1'000'000'000;
    const std::int64_t give_up = hard_end + std::int64_t(o_.timeout_ms) * 1'000'000 + 1'000'000'000;
    std::vector<epoll_event> evs(256);
    for (;;) {
      std::int64_t now = now_ns();
      bool probing = now < hard_end && (done_at_ == 0 || now < done_at_ + tail_ns());
      if ((!probing && inflight_probes_ == 0) || now >= give_up) break;
      if (probing) {
        // New probes that are due, at most 8 at once when the loop fell behind; the rest of a
        // backlog is skipped.
        for (int k = 0; probe_due_ <= now; ++k) {
          if (k < 8)
            start_probe(now);
          else
            ++c_.skipped_behind;
          probe_due_ += gap_ns();
        }
        drive_restarts(now);
        drive_idle(now);
      }
      expire(now);
      // Sleep until the next thing due (timerfd: µs precision) or an event; 5 ms at most, for
      // the timeouts.
      std::int64_t wake = now + 5'000'000;
      if (probing) {
        wake = std::min(wake, probe_due_);
        if (!next_open_ && restarts_ < o_.restarts) wake = std::min(wake, next_due_);
        if (!idle_open_) wake = std::min(wake, idle_due_);
      }
      itimerspec its{};
      its.it_value.tv_sec = wake / 1'000'000'000;
      its.it_value.tv_nsec = wake % 1'000'000'000;
      if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
      timerfd_settime(tfd_, TFD_TIMER_ABSTIME, &its, nullptr);
      int n = epoll_wait(ep_, evs.data(), int(evs.size()), 10);
      if (n < 0 && errno != EINTR) {
        std::perror("restart_client: epoll_wait");
        std::exit(1);
      }
      now = now_ns();
      for (int i = 0; i < n; ++i) {
        if (evs[i].data.fd == tfd_) {
          std::uint64_t ticks = 0;
          ssize_t got = read(tfd_, &ticks, sizeof ticks);  // empties it; what is due is above
          (void)got;
          continue;
        }
        auto it = conns_.find(evs[i].data.fd);
        if (it != conns_.end()) on_event(it->first, evs[i].events, now);
      }
    }
    finished_ = now_ns();
  }

  void report() const {
    std::printf(
        "{\"restarts\":%d,\"restarts_asked\":%d,\"next_failed\":%ld,\"next_failed_kinds\":%s,"
        "\"next_stale\":%ld,\"tried\":%ld,\"answered\":%ld,\"refused\":%ld,\"reset\":%ld,"
        "\"other\":%ld,\"other_kinds\":%s,\"reset_after_answer\":%ld,"
        "\"skipped_behind\":%ld,\"skipped_inflight\":%ld,\"answered_slow_200ms\":%ld,"
        "\"generation_max\":%d,\"old_generation_answers\":%ld,"
        "\"idle_opened\":%ld,\"idle_closed_eof\":%ld,\"idle_reset\":%ld,\"idle_failed\":%ld,"
        "\"arrivals\":\"%s\",\"every_us\":%d,\"seed\":%llu,"
        "\"first_restart_ms\":%.3f,\"last_restart_ms\":%.3f,\"duration_ms\":%.3f}\n",
        restarts_, o_.restarts, next_failed_, json_map(next_failed_kinds_).c_str(), next_stale_,
        c_.tried, c_.answered, c_.refused, c_.reset, c_.other, json_map(c_.other_kinds).c_str(),
        c_.reset_after_answer, c_.skipped_behind, c_.skipped_inflight, c_.slow, generation_max_,
        old_generation_answers_, idle_opened_, idle_eof_, idle_reset_, idle_failed_,
        o_.poisson ? "poisson" : "fixed", o_.every_us, static_cast<unsigned long long>(o_.seed),
        ms(first_restart_), ms(done_at_), ms(finished_));
  }

  ~client() {
    if (events_) std::fclose(events_);
  }

 private:
  std::int64_t tail_ns() const { return std::int64_t(o_.tail_ms) * 1'000'000; }
  // The time to the next probe: EVERY µs, or with --arrivals poisson an exponential variate of
  // that mean (independent clients; capped at 10 times the mean).
  std::int64_t gap_ns() {
    const double mean = o_.every_us * 1000.0;
    if (!o_.poisson) return std::int64_t(mean);
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    return std::max<std::int64_t>(1000, std::int64_t(std::min(-std::log1p(-u), 10.0) * mean));
  }
  double ms(std::int64_t t) const { return t ? (t - t0_) / 1e6 : -1.0; }

  // Opens a connection of the given role; on an immediate failure, finishes it at once.
  void open(role what, std::int64_t now) {
    conn c;
    c.what = what;
    c.started = now;
    c.deadline = now + std::int64_t(o_.timeout_ms) * 1'000'000;
    if (what == role::probe) {
      ++c_.tried;
      ++inflight_probes_;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      dispatch(c, outcome::other, errno_kind(errno), now);
      return;
    }
    int r = connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_);
    if (r != 0 && errno != EINPROGRESS) {
      int e = errno;
      close(fd);
      dispatch(c, classify(c, e), kind_of(e), now);
      return;
    }
    c.fd = fd;
    c.connected = (r == 0);
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    conns_.emplace(fd, std::move(c));
    if (r == 0) on_event(fd, EPOLLOUT, now);
  }

  void start_probe(std::int64_t now) {
    if (inflight_probes_ >= o_.max_inflight) {
      ++c_.skipped_inflight;
      return;
    }
    open(role::probe, now);
  }

  // What an error means for a connection: refused, reset (after a complete answer: answered),
  // or other.
  outcome classify(const conn& c, int e) {
    if (e == ECONNREFUSED) return outcome::refused;
    if (e == ECONNRESET || e == EPIPE) {
      if (!c.answered) return outcome::reset;
      if (c.what == role::probe) ++c_.reset_after_answer;
      return outcome::answered;
    }
    return outcome::other;
  }
  static std::string kind_of(int e) {
    return e == ECONNREFUSED ? "refused" : e == ECONNRESET || e == EPIPE ? "reset" : errno_kind(e);
  }

  // Ends the connection on fd: out of epoll, closed, out of the table, then counted.
  void end(int fd, outcome out, const std::string& kind, std::int64_t now) {
    auto it = conns_.find(fd);
    conn c = std::move(it->second);
    conns_.erase(it);
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    dispatch(c, out, kind, now);
  }
  void end_errno(int fd, int e, std::int64_t now) {
    end(fd, classify(conns_.at(fd), e), kind_of(e), now);
  }

  void on_event(int fd, std::uint32_t events, std::int64_t now) {
    conn& c = conns_.at(fd);
    if (!c.connected) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return end_errno(fd, err, now);
      c.connected = true;
    }
    if (!c.request_sent) {
      const char* req =
          c.what == role::probe  ? "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
          : c.what == role::next ? "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                 : "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
      ssize_t w = send(fd, req, std::strlen(req), MSG_NOSIGNAL);
      if (w != ssize_t(std::strlen(req))) return end_errno(fd, w < 0 ? errno : EIO, now);
      c.request_sent = true;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) return;
    char chunk[4096];
    for (;;) {
      ssize_t r = recv(fd, chunk, sizeof chunk, 0);
      if (r > 0) {
        if (c.answered) continue;  // nothing more is expected; bytes after it are ignored
        c.buf.append(chunk, std::size_t(r));
        if (complete(c, false)) {
          c.answered = true;
          // The idle connection's answer came: from now on it only waits for the server's close.
          if (c.what == role::idle) c.deadline = INT64_MAX;
        }
        continue;
      }
      if (r == 0) {
        if (!c.answered && complete(c, true)) c.answered = true;
        if (c.answered) return end(fd, outcome::answered, "", now);
        return end(fd, outcome::other, c.buf.empty() ? "eof-no-answer" : "eof-partial", now);
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      return end_errno(fd, errno, now);
    }
  }

  void dispatch(const conn& c, outcome out, const std::string& kind, std::int64_t now) {
    if (out == outcome::answered && c.status != 200) {
      out = outcome::other;
      finish_kind_ = "status-" + std::to_string(c.status);
    } else {
      finish_kind_ = kind;
    }
    switch (c.what) {
      case role::probe:
        probe_done(c, out, now);
        break;
      case role::next:
        next_done(c, out, now);
        break;
      case role::idle:
        idle_done(c, out, now);
        break;
    }
  }

  void probe_done(const conn& c, outcome out, std::int64_t now) {
    --inflight_probes_;
    const char* name = "answered";
    switch (out) {
      case outcome::answered:
        ++c_.answered;
        if (now - c.started > 200'000'000) ++c_.slow;
        if (c.generation < generation_max_) ++old_generation_answers_;
        generation_max_ = std::max(generation_max_, c.generation);
        break;
      case outcome::refused:
        ++c_.refused;
        name = "refused";
        break;
      case outcome::reset:
        ++c_.reset;
        name = "reset";
        break;
      default:
        ++c_.other;
        ++c_.other_kinds[finish_kind_];
        name = finish_kind_.c_str();
        break;
    }
    if (events_) {
      std::fprintf(events_, "%.3f,%.3f,%s,%d\n", ms(c.started), ms(now), name,
                   out == outcome::answered ? c.generation : 0);
    }
  }

  void drive_restarts(std::int64_t now) {
    if (next_open_ || restarts_ >= o_.restarts || now < next_due_) return;
    next_open_ = true;
    open(role::next, now);
  }

  void next_done(const conn& c, outcome out, std::int64_t now) {
    next_open_ = false;
    if (out == outcome::answered &&
        c.body == "generation " + std::to_string(restarts_ + 1) + " ends\n") {
      ++restarts_;
      if (!first_restart_) first_restart_ = now;
      next_due_ = now + std::int64_t(o_.restart_ms) * 1'000'000;
      if (restarts_ >= o_.restarts) done_at_ = now;
      return;
    }
    if (out == outcome::answered && c.generation > 0 && c.generation <= restarts_) {
      ++next_stale_;
    } else {
      ++next_failed_;
      ++next_failed_kinds_[out == outcome::refused    ? "refused"
                           : out == outcome::reset    ? "reset"
                           : out == outcome::answered ? "unexpected-answer"
                                                      : finish_kind_];
    }
    next_due_ = now + 2'000'000;
  }

  void drive_idle(std::int64_t now) {
    if (idle_open_ || now < idle_due_) return;
    idle_open_ = true;
    ++idle_opened_;
    open(role::idle, now);
  }

  void idle_done(const conn& c, outcome out, std::int64_t now) {
    idle_open_ = false;
    if (c.answered && out == outcome::answered) {
      ++idle_eof_;  // answered, then the server closed it
      idle_due_ = now + 1'000'000;
    } else if (c.answered && out == outcome::reset) {
      ++idle_reset_;
      idle_due_ = now + 1'000'000;
    } else {
      ++idle_failed_;
      idle_due_ = now + 5'000'000;
    }
  }

  void expire(std::int64_t now) {
    std::vector<int> late;
    for (auto& [fd, c] : conns_)
      if (now >= c.deadline) late.push_back(fd);
    for (int fd : late)
      end(fd, outcome::other, conns_.at(fd).connected ? "timeout-answer" : "timeout-connect", now);
  }

  options o_;
  sockaddr_in addr_{};
  int ep_ = -1, tfd_ = -1;
  std::mt19937_64 rng_;
  std::FILE* events_ = nullptr;
  std::unordered_map<int, conn> conns_;
  std::string finish_kind_;
  counts c_;
  int inflight_probes_ = 0;
  std::int64_t t0_ = 0, finished_ = 0;
  // restarts
  int restarts_ = 0;
  bool next_open_ = false;
  std::int64_t probe_due_ = 0, next_due_ = 0, first_restart_ = 0, done_at_ = 0;
  long next_failed_ = 0, next_stale_ = 0;
  std::map<std::string, long> next_failed_kinds_;
  int generation_max_ = 0;
  long old_generation_answers_ = 0;
  // the idle keep-alive connection
  bool idle_open_ = false;
  std::int64_t idle_due_ = 0;
  long idle_opened_ = 0, idle_eof_ = 0, idle_reset_ = 0, idle_failed_ = 0;
};

int int_arg(const char* v, const char* name) {
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (!end || *end || x < 0 || x > 100'000'000) usage((std::string("bad ") + name).c_str());
  return int(x);
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  const std::pair<const char*, int*> numbers[] = {
      {"--port", &o.port},
      {"--restarts", &o.restarts},
      {"--every-us", &o.every_us},
      {"--restart-ms", &o.restart_ms},
      {"--lead-ms", &o.lead_ms},
      {"--tail-ms", &o.tail_ms},
      {"--timeout-ms", &o.timeout_ms},
      {"--max-inflight", &o.max_inflight},
      {"--max-s", &o.max_s},
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + a).c_str());
    const char* v = argv[++i];
    auto number = std::find_if(std::begin(numbers), std::end(numbers),
                               [&](const auto& n) { return a == n.first; });
    if (number != std::end(numbers)) {
      *number->second = int_arg(v, number->first);
    } else if (a == "--events") {
      o.events = v;
    } else if (a == "--seed") {
      o.seed = std::strtoull(v, nullptr, 10);
    } else if (a == "--arrivals" && std::string(v) == "poisson") {
      o.poisson = true;
    } else if (a == "--arrivals" && std::string(v) == "fixed") {
      o.poisson = false;
    } else if (a == "--arrivals") {
      usage("--arrivals is poisson or fixed");
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required (1-65535)");
  if (o.every_us < 50) usage("--every-us must be at least 50");
  if (o.max_inflight < 1) usage("--max-inflight must be at least 1");
  client c(o);
  c.run();
  c.report();
  return 0;
}
