/* epoll_floor: the floor of bench/shutdown.sh (a benchmark, never run by CI).
 *
 * The least an HTTP/1.1 server can do: one thread, one epoll set, 127.0.0.1 only. Every request
 * (counted by its blank line "\r\n\r\n"; nothing else is parsed) is answered with the same
 * 200 keep-alive response that lameduck-hello, nginx and Node.js give for GET /. A read whose
 * bytes contain "/delay" has its answers held for DELAY_MS milliseconds (default 2000), so
 * that requests can be in flight; it also serves as nginx's upstream for /delay.
 *
 * On SIGTERM (or SIGINT) the signal handler itself closes every descriptor, the listener first,
 * and exits at once: no draining, nothing answered, whatever the clients had sent is dropped.
 * That is the fastest any server can stop, and so the yardstick of the benchmark.
 *
 * Usage: epoll_floor PORT [DELAY_MS]     (prints "listening on 127.0.0.1:PORT" when ready)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n";

static volatile sig_atomic_t max_fd = 2; /* highest descriptor ever opened */
static volatile sig_atomic_t listen_fd = -1, epoll_fd = -1;

static void on_stop(int sig) {
  (void)sig;
  /* Async-signal-safe: close(2) and _exit(2) only. The listener first (the port is free), then
   * every connection; the epoll instance last, when nothing is registered in it any more
   * (closing it first would unregister all connections one by one before any of them closed). */
  close(listen_fd);
  for (int fd = 3; fd <= max_fd; ++fd) {
    if (fd != listen_fd && fd != epoll_fd) close(fd);
  }
  _exit(0);
}

/* Per descriptor: where the "\r\n\r\n" matcher stands, and a generation that changes on close so
 * that a held answer never goes to a later connection that got the same descriptor number. */
struct conn {
  unsigned char match;
  unsigned gen;
};

/* Held answers: every delay is the same, so a FIFO is sorted by due time. */
struct held {
  long long due_ns;
  int fd;
  unsigned gen;
  unsigned count;
};

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void note_fd(int fd) {
  if (fd > max_fd) max_fd = fd;
}

static void answer(int fd, unsigned count) {
  for (unsigned i = 0; i < count; ++i) {
    /* A tiny answer into an empty socket buffer; a short write is simply dropped. */
    if (write(fd, response, sizeof response - 1) < 0) break;
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: epoll_floor PORT [DELAY_MS]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  long long delay_ns = (argc > 2 ? atoll(argv[2]) : 2000) * 1000000LL;

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1;
  size_t max_conns = rl.rlim_cur == RLIM_INFINITY ? 1048576 : (size_t)rl.rlim_cur;
  struct conn* conns = calloc(max_conns, sizeof *conns);
  size_t held_cap = max_conns, held_head = 0, held_len = 0;
  struct held* held = calloc(held_cap, sizeof *held);
  if (!conns || !held) return 1;

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(lfd, 4096) != 0) {
    perror("epoll_floor: listen");
    return 1;
  }
  note_fd(lfd);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  note_fd(ep);
  listen_fd = lfd;
  epoll_fd = ep;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout);

  static char buf[65536];
  struct epoll_event events[1024];
  for (;;) {
    int timeout = -1;
    if (held_len) {
      long long wait = held[held_head].due_ns - now_ns();
      timeout = wait <= 0 ? 0 : (int)(wait / 1000000) + 1;
    }
    int n = epoll_wait(ep, events, 1024, timeout);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          if ((size_t)c >= max_conns) {
            close(c);
            continue;
          }
          note_fd(c);
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[c].match = 0;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        conns[fd].gen++;
        close(fd);
        continue;
      }
      /* Count the requests that ended in this read: "\r\n\r\n", across reads too. */
      static const char end[] = "\r\n\r\n";
      unsigned count = 0;
      unsigned char m = conns[fd].match;
      for (ssize_t k = 0; k < got; ++k) {
        if (buf[k] == end[m]) {
          if (++m == 4) {
            ++count;
            m = 0;
          }
        } else {
          m = buf[k] == '\r';
        }
      }
      conns[fd].match = m;
      if (count == 0) continue;
      if (delay_ns > 0 && memmem(buf, (size_t)got, "/delay", 6) && held_len < held_cap) {
        struct held* h = &held[(held_head + held_len++) % held_cap];
        h->due_ns = now_ns() + delay_ns;
        h->fd = fd;
        h->gen = conns[fd].gen;
        h->count = count;
      } else {
        answer(fd, count);
      }
    }
    long long t = now_ns();
    while (held_len && held[held_head].due_ns <= t) {
      struct held* h = &held[held_head];
      if (conns[h->fd].gen == h->gen) answer(h->fd, h->count);
      held_head = (held_head + 1) % held_cap;
      --held_len;
    }
  }
}
