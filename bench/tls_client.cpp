// tls_client: the TLS client of bench/https.sh (a benchmark, never run by CI).
//
//   tls_client handshakes PORT full|resume|plain CONCURRENCY SECONDS MAX
//     Keeps CONCURRENCY connections going at once, each: a new TCP connection to
//     127.0.0.1:PORT, a TLS 1.3 handshake, `GET /` (keep-alive), the whole answer read (head and
//     Content-Length bytes), then close_notify and close(). Then the next one in its place,
//     until SECONDS have passed or MAX connections have completed. With `full`, no session is
//     ever offered: every handshake is a full one (ECDHE + the server's certificate and
//     signature). With `resume`, each slot offers the newest ticket it received on its previous
//     connection (TLS 1.3 tickets come after the handshake, before the answer, and are caught
//     with the new-session callback, as the OpenSSL manual recommends), so after the first one
//     every handshake is a PSK resumption (with ECDHE: psk_dhe_ke, what browsers do).
//     A resumed connection that brings no new ticket (the server did not renew it) makes the
//     slot offer the same ticket again, as a fresh copy (OpenSSL's client offers a session
//     object once); stateless tickets resume as often as they are offered.
//     With `plain`, the same over TCP without TLS (plain HTTP, one connection per request): the
//     share of a handshake's figure that is TCP's (counted in `full`).
//     Prints one line: "completed full resumed errors seconds renewed" (completed = full +
//     resumed; renewed: resumed connections that brought a new ticket; errors by kind on
//     stderr).
//
//   tls_client idle PORT CONNS SECONDS PID...
//     Opens CONNS connections (at most 256 in progress at once, so that the listen queue
//     never overflows), each with a full handshake, one `GET /` and its answer, and keeps
//     them all open and idle. VmRSS of the PIDs (the server's process tree) is summed before
//     the first connection (after 0.5 s to settle) and 1 s after the last answer; connections
//     the server closed meanwhile are not counted. Prints one line:
//     "held failed rss_growth_bytes bytes_per_conn open_seconds".
//
// Certificates are not verified (the handshake's signature is: TLS 1.3 always checks
// CertificateVerify). Every run is bounded by SECONDS; each connection by 10 s. Built by
// bench/https.sh: g++ -O2 -std=c++20 tls_client.cpp -lssl -lcrypto.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: lameduck-bench\r\n\r\n";

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

enum class phase { connecting, handshake, writing, reading, idle };

struct conn {
  int fd = -1;
  SSL* ssl = nullptr;
  phase state = phase::connecting;
  std::string in;
  std::string offer;              // the ticket this slot will offer next, DER (resume mode)
  SSL_SESSION* latest = nullptr;  // the newest ticket received on this connection
  clock_type::time_point started;
};

std::map<std::string, long> errors;
void fail(const char* what) {
  ++errors[what];
}

int epfd = -1;
sockaddr_in server{};
SSL_CTX* ctx = nullptr;
bool plain = false;  // handshakes plain: TCP only, no TLS

int on_new_session(SSL* ssl, SSL_SESSION* s) {
  auto* c = static_cast<conn*>(SSL_get_app_data(ssl));
  if (!c || !SSL_SESSION_is_resumable(s)) return 0;
  if (c->latest) SSL_SESSION_free(c->latest);
  c->latest = s;
  return 1;  // we keep the reference
}

void release(conn& c, bool graceful) {
  if (c.ssl) {
    if (graceful) {
      ERR_clear_error();
      SSL_shutdown(c.ssl);  // one close_notify; its answer is not waited for
    }
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
  }
  ERR_clear_error();
}

bool open_conn(conn& c) {
  c.in.clear();
  c.state = phase::connecting;
  c.started = clock_type::now();
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    fail(errno == EMFILE || errno == ENFILE ? "socket-EMFILE" : "socket");
    return false;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c.fd, reinterpret_cast<sockaddr*>(&server), sizeof server) < 0 &&
      errno != EINPROGRESS) {
    fail(errno == EADDRNOTAVAIL ? "connect-EADDRNOTAVAIL" : "connect");
    close(c.fd);
    c.fd = -1;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = &c;
  epoll_ctl(epfd, EPOLL_CTL_ADD, c.fd, &ev);
  if (plain) return true;
  c.ssl = SSL_new(ctx);
  SSL_set_fd(c.ssl, c.fd);
  SSL_set_app_data(c.ssl, &c);
  SSL_set_tlsext_host_name(c.ssl, "localhost");
  if (!c.offer.empty()) {
    // A fresh copy each time: OpenSSL's client does not offer a session object twice.
    auto* der = reinterpret_cast<const unsigned char*>(c.offer.data());
    if (SSL_SESSION* s = d2i_SSL_SESSION(nullptr, &der, static_cast<long>(c.offer.size()))) {
      SSL_set_session(c.ssl, s);
      SSL_SESSION_free(s);
    }
  }
  return true;
}

void want(conn& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
}

bool answer_complete(const std::string& in) {
  auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::size_t length = 0;
  std::string head = in.substr(0, head_end);
  for (auto& ch : head)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto at = head.find("content-length:");
  if (at != std::string::npos) length = std::strtoul(head.c_str() + at + 15, nullptr, 10);
  return in.size() >= head_end + 4 + length;
}

// Moves one connection forward. Returns 1 when its answer is complete, -1 on an error, 0 when
// it waits for the socket.
int step(conn& c) {
  for (;;) {
    switch (c.state) {
      case phase::connecting: {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS) return 0;
        if (err != 0) {
          fail(err == ECONNREFUSED ? "connect-refused" : "connect-error");
          return -1;
        }
        c.state = plain ? phase::writing : phase::handshake;
        break;
      }
      case phase::handshake: {
        ERR_clear_error();
        int r = SSL_connect(c.ssl);
        if (r == 1) {
          c.state = phase::writing;
          break;
        }
        int e = SSL_get_error(c.ssl, r);
        if (e == SSL_ERROR_WANT_READ) return want(c, EPOLLIN), 0;
        if (e == SSL_ERROR_WANT_WRITE) return want(c, EPOLLOUT), 0;
        fail("handshake");
        return -1;
      }
      case phase::writing: {
        if (plain) {
          // Tiny: fits the empty send buffer whole.
          if (send(c.fd, request, sizeof request - 1, MSG_NOSIGNAL) != sizeof request - 1) {
            fail("write");
            return -1;
          }
          c.state = phase::reading;
          break;
        }
        ERR_clear_error();
        std::size_t sent = 0;
        if (SSL_write_ex(c.ssl, request, sizeof request - 1, &sent) == 1) {
          c.state = phase::reading;
          break;
        }
        int e = SSL_get_error(c.ssl, 0);
        if (e == SSL_ERROR_WANT_READ) return want(c, EPOLLIN), 0;
        if (e == SSL_ERROR_WANT_WRITE) return want(c, EPOLLOUT), 0;
        fail("write");
        return -1;
      }
      case phase::reading: {
        char buf[4096];
        if (plain) {
          ssize_t got = recv(c.fd, buf, sizeof buf, 0);
          if (got > 0) {
            c.in.append(buf, static_cast<std::size_t>(got));
            if (answer_complete(c.in)) return 1;
            break;
          }
          if (got < 0 && errno == EAGAIN) return want(c, EPOLLIN), 0;
          fail(got == 0 ? "eof-before-answer" : "read");
          return -1;
        }
        ERR_clear_error();
        std::size_t got = 0;
        if (SSL_read_ex(c.ssl, buf, sizeof buf, &got) == 1) {
          c.in.append(buf, got);
          if (answer_complete(c.in)) {
            if (c.in.compare(0, 12, "HTTP/1.1 200") != 0) {
              fail("status-not-200");
              return -1;
            }
            return 1;
          }
          break;
        }
        int e = SSL_get_error(c.ssl, 0);
        if (e == SSL_ERROR_WANT_READ) return want(c, EPOLLIN), 0;
        if (e == SSL_ERROR_WANT_WRITE) return want(c, EPOLLOUT), 0;
        fail(e == SSL_ERROR_ZERO_RETURN ? "eof-before-answer" : "read");
        return -1;
      }
      case phase::idle:
        return 0;
    }
  }
}

SSL_CTX* make_context() {
  SSL_CTX* c = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  // Tickets reach us through the callback only; OpenSSL's own client cache stays empty.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, on_new_session);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(c, alpn, sizeof alpn - 1);
  return c;
}

long rss_of(const std::vector<int>& pids) {
  long total = 0;
  for (int pid : pids) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("VmRSS:", 0) == 0) total += std::atol(line.c_str() + 6) * 1024;
    }
  }
  return total;
}

int run_handshakes(bool resume, int concurrency, double seconds, long max) {
  std::vector<conn> slots(static_cast<std::size_t>(concurrency));
  long started = 0, full = 0, resumed = 0, renewed = 0;
  const auto t0 = clock_type::now();
  auto start_next = [&](conn& c) {
    while (started < max && seconds_since(t0) < seconds) {
      ++started;
      if (open_conn(c)) return true;
      release(c, false);
    }
    return false;
  };
  int active = 0;
  for (auto& c : slots)
    active += start_next(c);
  std::vector<epoll_event> events(256);
  while (active > 0) {
    int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), 100);
    for (int i = 0; i < n; ++i) {
      conn& c = *static_cast<conn*>(events[i].data.ptr);
      int r = step(c);
      if (r == 0) continue;
      if (r == 1) {
        if (c.ssl && SSL_session_reused(c.ssl)) {
          ++resumed;
          if (c.latest) ++renewed;
        } else {
          ++full;
        }
        release(c, true);
        if (resume && c.latest) {
          // The newest ticket; without one, the slot offers its previous ticket again (a
          // server's stateless tickets resume as often as they are offered).
          int size = i2d_SSL_SESSION(c.latest, nullptr);
          c.offer.resize(static_cast<std::size_t>(std::max(size, 0)));
          auto* out = reinterpret_cast<unsigned char*>(c.offer.data());
          if (size <= 0 || i2d_SSL_SESSION(c.latest, &out) != size) c.offer.clear();
        }
      } else {
        release(c, false);
      }
      if (c.latest) SSL_SESSION_free(std::exchange(c.latest, nullptr));
      if (!start_next(c)) --active;
    }
    // A connection stuck for 10 s is given up (none should be).
    for (auto& c : slots) {
      if (c.fd >= 0 && seconds_since(c.started) > 10) {
        fail("timeout");
        release(c, false);
        if (!start_next(c)) --active;
      }
    }
    if (seconds_since(t0) > seconds + 15) break;  // bound, whatever happens
  }
  const double elapsed = seconds_since(t0);
  long errs = 0;
  for (auto& [k, v] : errors)
    errs += v;
  std::printf("%ld %ld %ld %ld %.3f %ld\n", full + resumed, full, resumed, errs, elapsed, renewed);
  return 0;
}

int run_idle(long conns, double seconds, const std::vector<int>& pids) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(conns) + 64) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, static_cast<rlim_t>(conns) + 64);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long rss_before = rss_of(pids);
  std::vector<conn> all(static_cast<std::size_t>(conns));
  long next = 0, in_progress = 0, held = 0, failed = 0;
  const auto t0 = clock_type::now();
  std::vector<epoll_event> events(256);
  while ((next < conns || in_progress > 0) && seconds_since(t0) < seconds) {
    while (next < conns && in_progress < 256) {
      conn& c = all[static_cast<std::size_t>(next++)];
      if (open_conn(c)) {
        ++in_progress;
      } else {
        release(c, false);
        ++failed;
      }
    }
    int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), 100);
    for (int i = 0; i < n; ++i) {
      conn& c = *static_cast<conn*>(events[i].data.ptr);
      int r = step(c);
      if (r == 0) continue;
      --in_progress;
      if (r == 1) {
        ++held;
        c.state = phase::idle;
        want(c, EPOLLIN);  // a readable idle connection: the server closed it (or sent bytes)
      } else {
        release(c, false);
        ++failed;
      }
    }
  }
  const double open_seconds = seconds_since(t0);
  for (auto& c : all) {
    if (c.fd >= 0 && c.state != phase::idle) {
      fail("timeout");
      release(c, false);
      ++failed;
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const long rss_after = rss_of(pids);
  // Idle connections that became readable were closed by the server (or got bytes).
  long closed = 0;
  for (;;) {
    int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), 0);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      conn& c = *static_cast<conn*>(events[i].data.ptr);
      release(c, false);
      ++closed;
    }
  }
  held -= closed;
  failed += closed;
  std::printf("%ld %ld %ld %.1f %.2f\n", held, failed, rss_after - rss_before,
              held > 0 ? static_cast<double>(rss_after - rss_before) / static_cast<double>(held)
                       : 0.0 / 0.0,
              open_seconds);
  std::fflush(stdout);
  for (auto& c : all)
    release(c, false);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto usage = [] {
    std::fprintf(stderr,
                 "usage: tls_client handshakes PORT full|resume|plain CONCURRENCY SECONDS MAX\n"
                 "       tls_client idle PORT CONNS SECONDS PID...\n");
    return 2;
  };
  if (argc < 5) return usage();
  const std::string mode = argv[1];
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  ctx = make_context();
  epfd = epoll_create1(EPOLL_CLOEXEC);
  int status = 0;
  if (mode == "handshakes" && argc == 7) {
    const std::string kind = argv[3];
    if (kind != "full" && kind != "resume" && kind != "plain") return usage();
    plain = kind == "plain";
    status = run_handshakes(kind == "resume", std::atoi(argv[4]), std::atof(argv[5]),
                            std::atol(argv[6]));
  } else if (mode == "idle" && argc >= 6) {
    std::vector<int> pids;
    for (int i = 5; i < argc; ++i)
      pids.push_back(std::atoi(argv[i]));
    status = run_idle(std::atol(argv[3]), std::atof(argv[4]), pids);
  } else {
    return usage();
  }
  for (auto& [what, n] : errors)
    std::fprintf(stderr, "tls_client: %ld %s\n", n, what.c_str());
  return status;
}
