// shutdown_client: the measuring client of bench/shutdown.sh (a benchmark, never run by CI).
//
// One invocation measures one stop of one server that bench/shutdown.py has started on
// 127.0.0.1:PORT. The client itself sends the stop signal(s), so that every time it reports is
// measured from the same instant t0 (CLOCK_MONOTONIC, just before the first kill(2)).
//
//   shutdown_client stop --port P --pid PID --signals TERM[,TERM] --idle N --inflight K
//                        [--delay-ms 2000] [--settle-ms 300] [--window-ms 6000] [--probe-us 500]
//     Opens N keep-alive connections and makes one GET / on each (they are then idle), opens K
//     more with GET /delay?ms=DELAY each (in flight), waits SETTLE ms, then stops the server and
//     watches, until everything has happened or WINDOW ms have passed:
//       - two prober threads: a new connect() every PROBE µs until one is refused
//         (ECONNREFUSED): "refused"; and a look at the kernel's listening sockets (sock_diag)
//         every PROBE µs until none is left on the port, which is when a bind() with
//         SO_REUSEADDR (what every server here does) starts to succeed: "port free" (a real
//         bind()+listen() confirms it after the measurement);
//       - every idle connection: when it sees its end (EOF or reset; any bytes that came first
//         are counted as unsolicited); it then closes its side, as a real client would;
//       - every in-flight request: a complete response or not, its status and Connection header,
//         when it came, and how its connection ended (or that it was still open at the end);
//       - the server process: when it exited (pidfd_open(2) works for a process that is not
//         our child).
//
//   shutdown_client race --scenario a|b|c --port P --pid PID --signals S --stop-pids P1,P2,...
//                        --conns B [--window-ms 5000] [--spread-us 0]
//     One trial of a request racing the stop, on B connections at once:
//       a  B idle keep-alive connections (one GET / each); the server's processes are frozen
//          (SIGSTOP, and we wait until every thread is stopped); a GET / is written on each (the
//          bytes are in the server's socket buffers, unread); the stop signal(s) are sent; the
//          processes are thawed (SIGCONT).
//       b  the server is frozen; B new connections are made (the kernel completes them into the
//          accept queue) and a GET / is written on each; stop signal(s); thaw.
//       c  B idle keep-alive connections; the stop signal(s) are sent and a GET / is written on
//          each connection right after: connection i at t0 + i × SPREAD / B (SPREAD µs, 0: all
//          as fast as the client can), so that the requests land before, during and after the
//          server's own handling of the stop.
//     Each connection ends up answered (a complete response; its Connection header is noted),
//     closed (a clean end of stream without any answer), reset (ECONNRESET or EPIPE, on read or
//     write, without a complete answer), partial (an incomplete answer, then the end), or open
//     (nothing by the end of the window).
//
// Output: key=value lines on stdout (times in ms after t0, "-" when it never happened).
// Exit status 0 after a measurement, 1 when the setup failed (the reason on stderr), 2 on usage.
// SHUTDOWN_CLIENT_DEBUG=1 in the environment prints every connect() try of the prober on stderr.
//
// In "stop", the measuring thread runs SCHED_FIFO (when allowed) and hands the close() of each
// ended connection to a thread of normal priority (class closer), so that it sees each end as
// it comes; the probers run SCHED_FIFO above it. All of them share the client's CPU.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using ns_t = std::int64_t;

ns_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "shutdown_client: %s\n", what.c_str());
  std::exit(1);
}

// ------------------------------------------------------------------------------ options

struct options {
  std::string mode;
  int port = 0;
  pid_t pid = 0;
  std::vector<int> signals;
  std::vector<pid_t> stop_pids;
  int idle = 0, inflight = 0, conns = 0;
  int delay_ms = 2000, settle_ms = 300, window_ms = 6000, probe_us = 500, spread_us = 0;
  char scenario = 0;
};

int signal_number(std::string_view name) {
  static const std::map<std::string_view, int> known{
      {"TERM", SIGTERM}, {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
      {"HUP", SIGHUP},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
  if (name.starts_with("SIG")) name.remove_prefix(3);
  auto it = known.find(name);
  return it == known.end() ? 0 : it->second;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: shutdown_client stop --port P --pid PID --signals TERM[,TERM] --idle N "
               "--inflight K [--delay-ms D] [--settle-ms S] [--window-ms W] [--probe-us U]\n"
               "       shutdown_client race --scenario a|b|c --port P --pid PID --signals S "
               "--stop-pids P1,P2 --conns B [--window-ms W] [--spread-us U]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  if (argc < 2) usage();
  options o;
  o.mode = argv[1];
  if (o.mode != "stop" && o.mode != "race") usage();
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc) usage();
    std::string k = argv[i], v = argv[i + 1];
    auto num = [&] { return std::atoi(v.c_str()); };
    if (k == "--port")
      o.port = num();
    else if (k == "--pid")
      o.pid = num();
    else if (k == "--idle")
      o.idle = num();
    else if (k == "--inflight")
      o.inflight = num();
    else if (k == "--conns")
      o.conns = num();
    else if (k == "--delay-ms")
      o.delay_ms = num();
    else if (k == "--settle-ms")
      o.settle_ms = num();
    else if (k == "--window-ms")
      o.window_ms = num();
    else if (k == "--probe-us")
      o.probe_us = num();
    else if (k == "--spread-us")
      o.spread_us = num();
    else if (k == "--scenario" && v.size() == 1)
      o.scenario = v[0];
    else if (k == "--signals") {
      for (auto& s : split(v, ',')) {
        int n = signal_number(s);
        if (!n) usage();
        o.signals.push_back(n);
      }
    } else if (k == "--stop-pids") {
      for (auto& s : split(v, ','))
        o.stop_pids.push_back(std::atoi(s.c_str()));
    } else {
      usage();
    }
  }
  if (o.port <= 0 || o.pid <= 0 || o.signals.empty()) usage();
  if (o.mode == "race" && (o.conns <= 0 || !std::strchr("abc", o.scenario ? o.scenario : 'x')))
    usage();
  if (o.mode == "race" && o.stop_pids.empty()) o.stop_pids.push_back(o.pid);
  return o;
}

// ------------------------------------------------------------------------------ HTTP responses

// What the bytes received so far on a connection say about the (first) response in them.
struct response_view {
  enum { incomplete, complete, until_close, malformed } state = incomplete;
  int status = 0;
  std::string connection;  // the Connection header, lower case; "" when absent
};

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  }
  return true;
}

std::string trim_lower(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r'))
    v.remove_suffix(1);
  std::string out(v);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

response_view read_response(const std::string& in) {
  response_view r;
  auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return r;
  std::string_view head(in.data(), head_end);
  if (!head.starts_with("HTTP/1.") || head.size() < 12) {
    r.state = response_view::malformed;
    return r;
  }
  r.status = std::atoi(std::string(head.substr(9, 3)).c_str());
  std::optional<std::size_t> length;
  bool chunked = false;
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos < head.size()) {
    std::size_t start = pos + 2;
    std::size_t end = head.find("\r\n", start);
    std::string_view line =
        head.substr(start, (end == std::string_view::npos ? head.size() : end) - start);
    if (iequals_prefix(line, "content-length:")) {
      length = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
    } else if (iequals_prefix(line, "connection:")) {
      r.connection = trim_lower(line.substr(11));
    } else if (iequals_prefix(line, "transfer-encoding:")) {
      chunked = trim_lower(line.substr(18)).find("chunked") != std::string::npos;
    }
    pos = end;
  }
  std::size_t body_at = head_end + 4;
  if (r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200)) {
    r.state = response_view::complete;
  } else if (chunked) {
    // Enough for the bodies of this benchmark: complete once the last chunk has arrived.
    std::string_view body(in.data() + body_at, in.size() - body_at);
    if (body.starts_with("0\r\n\r\n") || body.find("\r\n0\r\n\r\n") != std::string_view::npos)
      r.state = response_view::complete;
  } else if (length) {
    if (in.size() - body_at >= *length) r.state = response_view::complete;
  } else {
    r.state = response_view::until_close;
  }
  return r;
}

const char get_request[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: lameduck-bench\r\n\r\n";

// ------------------------------------------------------------------------------ connections

enum class role : std::uint8_t { idle, inflight, race };

enum class ending : std::uint8_t { none, eof, reset };

struct conn {
  int fd = -1;
  role kind = role::idle;
  bool connected = false;
  bool setup_done = false;   // the one request of the setup has been answered
  bool measuring = false;    // the stop has begun; events now count
  bool answered = false;     // a complete response after the stop began (or in flight)
  bool unsolicited = false;  // idle connection: bytes arrived that nobody asked for
  ending end = ending::none;
  ns_t t_answer = 0, t_end = 0;
  int status = 0;
  std::string connection;
  std::string in;   // bytes of the response being read
  std::string out;  // bytes still to write
};

sockaddr_in server_address(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Closes descriptors on a thread of its own, at normal priority, while the measuring thread
// runs SCHED_FIFO: the measuring thread then sees (and timestamps) each end as soon as it comes,
// and the closes, which cost the client several times more than noticing an end, fill the gaps.
class closer {
 public:
  closer() : thread_([this] { run(); }) {}
  ~closer() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void push(int fd) { pending_.push_back(fd); }
  // Hands over what was pushed since the last call (once per batch of events).
  void hand_over() {
    if (pending_.empty()) return;
    {
      std::lock_guard lock(mutex_);
      queue_.insert(queue_.end(), pending_.begin(), pending_.end());
    }
    pending_.clear();
    wake_.notify_one();
  }

 private:
  void run() {
    std::vector<int> batch;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return done_ || !queue_.empty(); });
        if (queue_.empty() && done_) return;
        batch.swap(queue_);
      }
      for (int fd : batch)
        ::close(fd);
      batch.clear();
    }
  }
  std::vector<int> pending_, queue_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;
};

class client {
 public:
  explicit client(const options& o) : o_(o), addr_(server_address(o.port)) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) die("epoll_create1");
    ::signal(SIGPIPE, SIG_IGN);
  }

  // Starts a non-blocking connect; the connection then waits for EPOLLOUT.
  std::size_t open(role kind, const std::string& request) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::size_t i = conns_.size();
    conns_.push_back({});
    conn& c = conns_.back();
    c.fd = fd;
    c.kind = kind;
    c.out = request;
    ++open_;
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);
    if (r != 0 && errno != EINPROGRESS) die(std::string("connect: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = i;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    return i;
  }

  // Opens `n` keep-alive connections with one GET / each, at most `parallel` being set up at
  // a time, and returns once every answer has arrived (they are then idle).
  void open_idle(int n, int parallel, int timeout_ms) {
    ns_t deadline = now_ns() + timeout_ms * 1'000'000LL;
    int started = 0, done_before = setup_done_;
    while (setup_done_ - done_before < n) {
      while (started < n && started - (setup_done_ - done_before) < parallel) {
        open(role::idle, get_request);
        ++started;
      }
      if (now_ns() > deadline)
        die("setup: only " + std::to_string(setup_done_ - done_before) + " of " +
            std::to_string(n) + " keep-alive connections were answered in time");
      poll_once(10);
    }
  }

  // Waits until every connection has connected and written what it had to write.
  void wait_written(int timeout_ms) {
    ns_t deadline = now_ns() + timeout_ms * 1'000'000LL;
    for (;;) {
      bool pending = false;
      for (auto& c : conns_) {
        if (c.fd >= 0 && (!c.connected || !c.out.empty())) pending = true;
      }
      if (!pending) return;
      if (now_ns() > deadline) die("setup: connections did not connect or write in time");
      poll_once(10);
    }
  }

  void settle(int ms) {
    ns_t until = now_ns() + ms * 1'000'000LL;
    while (now_ns() < until)
      poll_once(static_cast<int>((until - now_ns()) / 1'000'000) + 1);
  }

  // From now on, every end and every answer counts.
  void begin_measuring() {
    for (auto& c : conns_) {
      if (c.fd >= 0 || c.end == ending::none) c.measuring = true;
      if (c.kind == role::race) c.in.clear();
    }
  }

  // Writes `request` on every connection, as fast as possible (reset on write is noted).
  void write_all(const std::string& request) {
    for (std::size_t i = 0; i < conns_.size(); ++i)
      write_one(i, request);
  }

  void write_one(std::size_t i, const std::string& request) {
    conn& c = conns_[i];
    if (c.fd < 0) return;
    c.out = request;
    flush(i);
  }

  void watch_exit(pid_t pid) {
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd_ < 0) {
      std::fprintf(stderr, "shutdown_client: pidfd_open: %s (exit time not measured)\n",
                   std::strerror(errno));
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = pidfd_tag;
    epoll_ctl(ep_, EPOLL_CTL_ADD, pidfd_, &ev);
  }

  // Runs until `finished()` or the deadline.
  template <class Done>
  void run_until(ns_t deadline, Done finished) {
    while (!finished() && now_ns() < deadline) {
      poll_once(static_cast<int>(std::min<ns_t>((deadline - now_ns()) / 1'000'000 + 1, 50)));
    }
  }

  std::vector<conn>& conns() { return conns_; }
  void close_with(closer* c) { closer_ = c; }
  ns_t t_exit() const { return t_exit_; }
  int setup_done() const { return setup_done_; }
  std::size_t open_count() const { return open_; }

  // Closes what is left (the end of a measurement).
  void close_all() {
    for (auto& c : conns_) {
      if (c.fd >= 0) {
        ::close(c.fd);
        c.fd = -1;
      }
    }
  }

 private:
  static constexpr std::uint64_t pidfd_tag = ~0ULL;

  void poll_once(int timeout_ms) {
    epoll_event events[1024];
    int n = epoll_wait(ep_, events, 1024, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return;
      die("epoll_wait");
    }
    ns_t t = now_ns();
    for (int k = 0; k < n; ++k) {
      if (events[k].data.u64 == pidfd_tag) {
        if (!t_exit_) t_exit_ = t;
        epoll_ctl(ep_, EPOLL_CTL_DEL, pidfd_, nullptr);
        continue;
      }
      std::size_t i = events[k].data.u64;
      if (i >= conns_.size() || conns_[i].fd < 0) continue;
      on_event(i, events[k].events, t);
    }
    if (closer_) closer_->hand_over();
  }

  void on_event(std::size_t i, std::uint32_t ev, ns_t t) {
    conn& c = conns_[i];
    if (!c.connected) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) {
        end(i,
            err == ECONNRESET || err == ECONNREFUSED || err == EPIPE ? ending::reset : ending::eof,
            t);
        if (!c.measuring) die(std::string("setup: connect failed: ") + std::strerror(err));
        return;
      }
      if (!(ev & (EPOLLOUT | EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
      c.connected = true;
      if (!flush(i)) return;
    } else if ((ev & EPOLLOUT) && !c.out.empty()) {
      if (!flush(i)) return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_some(i, t);
  }

  // Writes what is pending; false when the connection ended.
  bool flush(std::size_t i) {
    conn& c = conns_[i];
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        if (!c.measuring) die(std::string("setup: write failed: ") + std::strerror(errno));
        end(i, ending::reset, now_ns());
        return false;
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    epoll_event e{};
    e.events = EPOLLIN | EPOLLRDHUP | (c.out.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
    e.data.u64 = i;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &e);
    return true;
  }

  void read_some(std::size_t i, ns_t t) {
    conn& c = conns_[i];
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        if (c.kind == role::idle && c.setup_done) {
          c.unsolicited = true;  // nobody asked: a 408, a goodbye page...
          if (!c.measuring) die("an idle connection got unsolicited bytes before the stop");
          continue;
        }
        c.in.append(buf, static_cast<std::size_t>(n));
        check_answer(i, false, t);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      ending how = n == 0 ? ending::eof : ending::reset;
      if (n < 0 && errno != ECONNRESET && errno != EPIPE && errno != ETIMEDOUT)
        std::fprintf(stderr, "shutdown_client: recv: %s (counted as a reset)\n",
                     std::strerror(errno));
      check_answer(i, true, t);
      if (!c.measuring) {
        die(std::string("setup: a connection ended before the stop (") +
            (how == ending::eof ? "EOF" : "reset") + ")");
      }
      end(i, how, t);
      return;
    }
  }

  void check_answer(std::size_t i, bool at_end, ns_t t) {
    conn& c = conns_[i];
    if (c.answered || c.in.empty()) return;
    auto r = read_response(c.in);
    bool complete =
        r.state == response_view::complete || (r.state == response_view::until_close && at_end);
    if (!complete) return;
    if (c.kind == role::idle && !c.setup_done) {
      c.setup_done = true;
      c.in.clear();
      ++setup_done_;
      return;
    }
    if (!c.measuring && c.kind != role::inflight) return;
    c.answered = true;
    c.t_answer = t;
    c.status = r.status;
    c.connection = r.connection;
  }

  void end(std::size_t i, ending how, ns_t t) {
    conn& c = conns_[i];
    if (c.fd < 0) return;
    c.end = how;
    c.t_end = t;
    --open_;
    // A real client closes its side once it sees the end.
    if (closer_) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);  // no more events from it meanwhile
      closer_->push(c.fd);
    } else {
      ::close(c.fd);
    }
    c.fd = -1;
  }

  const options& o_;
  closer* closer_ = nullptr;
  sockaddr_in addr_;
  int ep_ = -1, pidfd_ = -1;
  std::vector<conn> conns_;
  int setup_done_ = 0;
  std::size_t open_ = 0;  // connections not ended yet
  ns_t t_exit_ = 0;
};

// ------------------------------------------------------------------------------ helpers

std::string ms(ns_t t, ns_t t0) {
  if (!t) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", (t - t0) / 1e6);
  return b;
}

// Every thread of the process stopped (state T or t)?
bool all_threads_stopped(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return true;  // gone
  bool stopped = true;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string path = dir + "/" + e->d_name + "/stat";
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f) continue;
    char buf[512];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* close_paren = std::strrchr(buf, ')');
    if (!close_paren || close_paren[1] != ' ') continue;
    char state = close_paren[2];
    if (state != 'T' && state != 't' && state != 'Z' && state != 'X') stopped = false;
  }
  ::closedir(d);
  return stopped;
}

void freeze(const std::vector<pid_t>& pids) {
  for (pid_t p : pids)
    ::kill(p, SIGSTOP);
  ns_t deadline = now_ns() + 2'000'000'000LL;
  for (;;) {
    bool all = true;
    for (pid_t p : pids)
      all = all && all_threads_stopped(p);
    if (all) return;
    if (now_ns() > deadline) die("the server's threads did not all stop within 2 s of SIGSTOP");
    ::usleep(200);
  }
}

void thaw(const std::vector<pid_t>& pids) {
  for (pid_t p : pids)
    ::kill(p, SIGCONT);
}

// Whether signal `sig` is still pending for the process as a whole (not yet taken by a thread).
bool signal_pending(pid_t pid, int sig) {
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;  // gone
  char line[256];
  bool pending = false;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "ShdPnd:", 7) == 0) {
      unsigned long long mask = std::strtoull(line + 7, nullptr, 16);
      pending = (mask >> (sig - 1)) & 1;
      break;
    }
  }
  std::fclose(f);
  return pending;
}

// Sends the stop signal(s) and returns t0, the instant just before the first kill(2). Frozen
// processes are thawed right after the first signal. A further signal is sent as soon as the
// previous one has been taken (two identical signals sent back to back would merge into one
// while the first is still pending).
ns_t send_signals(const options& o, const std::vector<pid_t>* frozen = nullptr) {
  ns_t t0 = now_ns();
  for (std::size_t i = 0; i < o.signals.size(); ++i) {
    if (i > 0) {
      ns_t deadline = now_ns() + 1'000'000'000LL;
      while (signal_pending(o.pid, o.signals[i - 1]) && now_ns() < deadline)
        ::usleep(20);
    }
    if (::kill(o.pid, o.signals[i]) != 0) die(std::string("kill: ") + std::strerror(errno));
    if (i == 0 && frozen) thaw(*frozen);
  }
  return t0;
}

// ------------------------------------------------------------------------------ the prober

// After t0, two threads: one connect()s until a connect is refused (ECONNREFUSED), the other
// asks the kernel until no socket listens on the port any more ("port free"; see listening()).
// Each tries every interval_us for the first 100 ms, then every 10 × interval_us. Both run
// SCHED_FIFO (above the measuring thread) when they may, so that they preempt the client's
// other threads on the shared CPU and probe on time; each try costs a few microseconds.
struct prober {
  std::atomic<ns_t> t0{0};
  std::atomic<bool> quit{false};
  std::atomic<ns_t> t_refused{0};
  ns_t t_bound = 0;
  bool listen_ok = false, diag_failed = false;
  int connected = 0, unanswered = 0;
  std::atomic<int> realtime{0}, running{2};
  int port = 0, interval_us = 500;
  ns_t deadline = 0;

  bool done() const { return running.load() == 0; }

  // Connects whose SYN went unanswered so far (the SYN met the listener while it was being
  // closed and was dropped: a real client would wait a second for its retransmission).
  std::vector<int> pending;
  const bool debug = std::getenv("SHUTDOWN_CLIENT_DEBUG") != nullptr;  // every try on stderr

  // What a non-blocking connect on loopback has come to: on loopback the handshake or the
  // reset happens within connect() itself, so one look right after it tells.
  enum class outcome { connected, refused, pending, other };
  static outcome look(int s) {
    pollfd p{s, POLLOUT, 0};
    if (::poll(&p, 1, 0) <= 0) return outcome::pending;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) return outcome::connected;
    return err == ECONNREFUSED ? outcome::refused : outcome::other;
  }

  // One connect(): true when refused. It never waits: a connect left pending is kept and looked
  // at again on later tries, which go on meanwhile.
  bool refused(const sockaddr_in& a) {
    bool no = false;
    for (auto it = pending.begin(); it != pending.end();) {
      outcome r = look(*it);
      if (r == outcome::pending) {
        ++it;
        continue;
      }
      if (r == outcome::refused) no = true;  // its retransmitted SYN was refused
      ::close(*it);
      it = pending.erase(it);
    }
    if (no) return true;
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r = ::connect(s, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    outcome o = r == 0                  ? outcome::connected
                : errno == ECONNREFUSED ? outcome::refused
                : errno == EINPROGRESS  ? look(s)
                                        : outcome::other;
    if (debug) {
      static const char* names[] = {"connected", "refused", "pending", "other"};
      std::fprintf(stderr, "probe %.3f ms: %s (errno %d)\n", (now_ns() - t0.load()) / 1e6,
                   names[static_cast<int>(o)], r == 0 ? 0 : errno);
    }
    if (o == outcome::connected) ++connected;  // the server may still accept it; we just close it
    if (o == outcome::pending) {
      ++unanswered;
      pending.push_back(s);
      return false;
    }
    ::close(s);
    return o == outcome::refused;
  }

  // Whether a TCP socket still listens on the port, asked of the kernel with sock_diag: only
  // its table of listening sockets is walked, which is cheap however many connections the port
  // has. (A bind() is not: on a port with 10,000 connections it spends one or two milliseconds
  // in the kernel, checking each of them, without letting anything else run on that CPU, which
  // would stall the client's measuring thread.) With SO_REUSEADDR, which every server here
  // sets, bind() succeeds exactly when no listening socket is left on the address.
  // Returns 1 (listening), 0 (not), -1 (sock_diag failed).
  int listening(int fd) {
    struct {
      nlmsghdr nlh;
      inet_diag_req_v2 req;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = AF_INET;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << TCP_LISTEN;
    if (::send(fd, &msg, sizeof msg, 0) < 0) return -1;
    alignas(nlmsghdr) char buf[32768];
    int found = 0;
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return -1;
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type == NLMSG_DONE) return found;
        if (h->nlmsg_type == NLMSG_ERROR) return -1;
        auto* m = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
        if (ntohs(m->id.idiag_sport) == port &&
            (m->id.idiag_src[0] == htonl(INADDR_LOOPBACK) || m->id.idiag_src[0] == 0))
          found = 1;
      }
    }
  }

  // After the measurement: a real bind() and listen() with SO_REUSEADDR, to confirm that a
  // server could use the port (untimed).
  void confirm_bind() {
    if (!t_bound) return;
    sockaddr_in a = server_address(port);
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    listen_ok =
        ::bind(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 && ::listen(s, 1) == 0;
    ::close(s);
  }

  template <class Try>
  void loop(bool fifo, Try attempt) {
    sched_param sp{};
    sp.sched_priority = 2;  // above the measuring thread
    if (fifo && pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) ++realtime;
    while (!t0.load() && !quit.load())
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    ns_t next = now_ns();
    while (!quit.load() && now_ns() < deadline && !attempt()) {
      next += (now_ns() - t0.load() < 100'000'000 ? 1 : 10) * interval_us * 1000LL;
      ns_t wait = next - now_ns();
      if (wait > 0) {
        timespec ts{static_cast<time_t>(wait / 1'000'000'000LL),
                    static_cast<long>(wait % 1'000'000'000LL)};
        ::nanosleep(&ts, nullptr);
      } else {
        next = now_ns();
      }
    }
    --running;
  }

  void run_connect() {
    sockaddr_in a = server_address(port);
    loop(true, [&] {
      if (!refused(a)) return false;
      t_refused = now_ns();
      return true;
    });
    for (int s : pending)
      ::close(s);
    pending.clear();
  }

  void run_bind() {
    int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    loop(true, [&] {
      ns_t t = now_ns();
      int l = fd < 0 ? -1 : listening(fd);
      if (l < 0) {
        diag_failed = true;
        return true;  // port free stays unknown
      }
      if (l) return false;
      t_bound = t;
      return true;
    });
    if (fd >= 0) ::close(fd);
  }
};

// ------------------------------------------------------------------------------ modes

int run_stop(const options& o) {
  client cl(o);
  cl.open_idle(o.idle, 256, 60'000);
  std::string delayed = "GET /delay?ms=" + std::to_string(o.delay_ms) +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: lameduck-bench\r\n\r\n";
  for (int k = 0; k < o.inflight; ++k)
    cl.open(role::inflight, delayed);
  cl.wait_written(10'000);
  cl.settle(o.settle_ms);
  for (auto& c : cl.conns()) {
    if (c.kind == role::inflight && c.answered)
      die("an in-flight request was answered before the stop");
  }
  cl.watch_exit(o.pid);

  // The measuring thread runs SCHED_FIFO (when it may) and leaves the closes to a thread of
  // normal priority; see class closer.
  closer closes;
  cl.close_with(&closes);
  sched_param sp{};
  sp.sched_priority = 1;
  bool realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;

  prober pr;
  pr.port = o.port;
  pr.interval_us = o.probe_us;
  ns_t t0 = 0;
  pr.deadline = now_ns() + (o.window_ms + 1000) * 1'000'000LL;
  std::thread connect_thread([&pr] { pr.run_connect(); });
  std::thread bind_thread([&pr] { pr.run_bind(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // both waiting for t0
  t0 = send_signals(o);
  pr.t0.store(t0);
  cl.begin_measuring();
  ns_t deadline = t0 + o.window_ms * 1'000'000LL;
  auto& conns = cl.conns();
  cl.run_until(deadline, [&] { return cl.t_exit() && pr.done() && cl.open_count() == 0; });
  pr.quit.store(true);
  connect_thread.join();
  bind_thread.join();
  pr.confirm_bind();
  ns_t t_end = now_ns();
  sp.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);

  // Idle connections.
  ns_t first = 0, last = 0;
  int eof = 0, reset = 0, open = 0, unsolicited = 0;
  // In-flight requests.
  std::map<std::string, int> outcomes;
  ns_t first_answer = 0, last_answer = 0, last_inflight_end = 0;
  int open_after_answer = 0;
  for (auto& c : conns) {
    if (c.kind == role::idle) {
      if (c.unsolicited) ++unsolicited;
      if (c.end == ending::none) {
        ++open;
        continue;
      }
      (c.end == ending::eof ? eof : reset)++;
      if (!first || c.t_end < first) first = c.t_end;
      if (c.t_end > last) last = c.t_end;
    } else if (c.kind == role::inflight) {
      std::string what;
      if (c.answered) {
        what = std::to_string(c.status) + " " +
               (c.connection.empty() ? "(no Connection)" : c.connection);
        if (!first_answer || c.t_answer < first_answer) first_answer = c.t_answer;
        last_answer = std::max(last_answer, c.t_answer);
        if (c.end == ending::none) ++open_after_answer;
      } else if (c.end == ending::eof) {
        what = c.in.empty() ? "no answer: EOF" : "partial: EOF";
      } else if (c.end == ending::reset) {
        what = c.in.empty() ? "no answer: reset" : "partial: reset";
      } else {
        what = "no answer: still open";
      }
      ++outcomes[what];
      if (c.end != ending::none) last_inflight_end = std::max(last_inflight_end, c.t_end);
    }
  }
  std::string out;
  for (auto& [k, v] : outcomes)
    out += (out.empty() ? "" : "; ") + std::to_string(v) + "x " + k;
  std::printf("idle=%d\ninflight=%d\n", o.idle, o.inflight);
  std::printf("refused_ms=%s\nport_free_ms=%s\nlisten_ok=%d\n", ms(pr.t_refused.load(), t0).c_str(),
              pr.diag_failed ? "?" : ms(pr.t_bound, t0).c_str(), pr.listen_ok ? 1 : 0);
  std::printf("probes_connected=%d\nprobes_unanswered=%d\nrealtime=%d\n", pr.connected,
              pr.unanswered, pr.realtime.load() == 2 && realtime ? 1 : 0);
  std::printf("idle_first_ms=%s\nidle_last_ms=%s\n", ms(first, t0).c_str(), ms(last, t0).c_str());
  std::printf("idle_eof=%d\nidle_reset=%d\nidle_open=%d\nidle_unsolicited=%d\n", eof, reset, open,
              unsolicited);
  std::printf("inflight_outcomes=%s\n", out.empty() ? "-" : out.c_str());
  std::printf("inflight_first_answer_ms=%s\ninflight_last_answer_ms=%s\n",
              ms(first_answer, t0).c_str(), ms(last_answer, t0).c_str());
  std::printf("inflight_last_end_ms=%s\ninflight_open_after_answer=%d\n",
              ms(last_inflight_end, t0).c_str(), open_after_answer);
  std::printf("exit_ms=%s\nwatched_ms=%s\n", ms(cl.t_exit(), t0).c_str(), ms(t_end, t0).c_str());
  cl.close_all();
  return 0;
}

int run_race(const options& o) {
  client cl(o);
  ns_t t0 = 0;
  switch (o.scenario) {
    case 'a':
      cl.open_idle(o.conns, 256, 30'000);
      cl.settle(5);
      freeze(o.stop_pids);
      for (auto& c : cl.conns())
        c.kind = role::race;
      cl.begin_measuring();
      cl.write_all(get_request);
      t0 = send_signals(o, &o.stop_pids);
      break;
    case 'b':
      freeze(o.stop_pids);
      for (int k = 0; k < o.conns; ++k)
        cl.open(role::race, get_request);
      cl.begin_measuring();
      cl.wait_written(2'000);
      t0 = send_signals(o, &o.stop_pids);
      break;
    case 'c': {
      cl.open_idle(o.conns, 256, 30'000);
      cl.settle(5);
      for (auto& c : cl.conns())
        c.kind = role::race;
      cl.begin_measuring();
      t0 = send_signals(o);
      // Connection i writes at t0 + i × SPREAD / B (all at once when SPREAD is 0).
      const ns_t spread = o.spread_us * 1000LL;
      const ns_t n = static_cast<ns_t>(cl.conns().size());
      for (ns_t i = 0; i < n; ++i) {
        ns_t at = t0 + spread * i / n;
        while (now_ns() < at) {
        }
        cl.write_one(static_cast<std::size_t>(i), get_request);
      }
      break;
    }
  }
  ns_t write_done = now_ns();
  auto& conns = cl.conns();
  cl.run_until(t0 + o.window_ms * 1'000'000LL, [&] {
    for (auto& c : conns) {
      if (!c.answered && c.end == ending::none) return false;
    }
    return true;
  });
  int answered = 0, answered_close = 0, closed = 0, reset = 0, partial = 0, open = 0;
  std::map<int, int> statuses;
  for (auto& c : conns) {
    if (c.answered) {
      ++answered;
      ++statuses[c.status];
      if (c.connection == "close") ++answered_close;
    } else if (c.end == ending::none) {
      ++open;
    } else if (!c.in.empty()) {
      ++partial;
    } else if (c.end == ending::eof) {
      ++closed;
    } else {
      ++reset;
    }
  }
  std::string st;
  for (auto& [k, v] : statuses)
    st += (st.empty() ? "" : ",") + std::to_string(k) + ":" + std::to_string(v);
  std::printf(
      "scenario=%c\nconns=%d\nanswered=%d\nanswered_close=%d\nclosed=%d\nreset=%d\npartial=%"
      "d\nopen=%d\n",
      o.scenario, o.conns, answered, answered_close, closed, reset, partial, open);
  std::printf("spread_us=%d\nstatuses=%s\nwrite_ms=%s\n", o.spread_us,
              st.empty() ? "-" : st.c_str(), ms(write_done, t0).c_str());
  cl.close_all();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  return o.mode == "stop" ? run_stop(o) : run_race(o);
}
