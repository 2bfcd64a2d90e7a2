#pragma once
/// @file Everything a server can be configured with; every limit and timeout is here.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck {

/// What a client may send before it gets an error status; each has its own status code.
struct limits {
  /// Longest request line (method, target, version); past it: 414.
  std::size_t max_request_line = 8 * 1024;
  /// Total size of all header lines of one request; past it: 431.
  std::size_t max_header_bytes = 16 * 1024;
  /// Number of header fields in one request; past it: 431.
  std::size_t max_header_count = 100;
  /// Size of one request body (after de-chunking); past it: 413.
  std::size_t max_body_bytes = 1024 * 1024;
  /// Bytes of chunk extensions (what follows a chunk's size on its line) summed over one
  /// chunked request; past it: 413, as Node.js answers. They are read and dropped, but count
  /// so that a client cannot send them without end (CVE-2024-22019). Nearly no client sends
  /// any; the default leaves room for some metadata on each of a few dozen chunks, and 0
  /// refuses every extension.
  std::size_t max_chunk_extension_bytes = 4 * 1024;
  /// Open connections per server; past it a new connection gets a 503 and is closed.
  std::size_t max_connections = 100'000;
};

/// A least average rate at which a client must send or take data, once a grace period has
/// passed: what ends a client that keeps a connection by trickling bytes just often enough to
/// escape every timeout (slowloris, slow POST, slow read). Zero bytes per second disables it.
struct data_rate {
  std::size_t bytes_per_second = 0;
  std::chrono::milliseconds grace{0};
};

/// How long the server waits for a client; zero disables a timeout.
struct timeouts {
  /// From the first byte of a request (or the accept) until its headers are complete; then 408.
  std::chrono::milliseconds header{10'000};
  /// Longest pause between two reads of a request body; then 408.
  std::chrono::milliseconds body{30'000};
  /// Keep-alive: how long an idle connection waits for its next request.
  std::chrono::milliseconds idle{60'000};
  /// Longest pause in writing a response to a client that has stopped reading.
  std::chrono::milliseconds write{30'000};
  /// After a half-close, how long to read and discard before the final close.
  std::chrono::milliseconds linger{2'000};
  /// A request body, from the end of its head, must arrive at least this fast on average once
  /// the grace has passed; then 408. Checked as data arrives (a body that stops altogether is
  /// ended by `body`). The default, Kestrel's, is 1.9 kbit/s, far below what even a 2G (GPRS)
  /// link carries, while a client that sends a byte every 5 s is cut after 10 s.
  data_rate min_body_rate{240, std::chrono::milliseconds(5'000)};
  /// While a response waits for the client to read it, the client must take it at least this
  /// fast on average once the grace has passed; then the connection is closed. Time spent
  /// waiting for the handler does not count: the clock runs only while output is held up by
  /// the client, from the first write it blocks until all is written.
  data_rate min_response_rate{240, std::chrono::milliseconds(5'000)};
};

/// How a graceful drain (server::shutdown) treats connections.
struct drain_options {
  /// Zero: idle keep-alive connections are closed at once, safely (a request already in the
  /// socket is answered; otherwise half-close and linger). Above zero: they are kept until
  /// their next request, which is answered with "Connection: close", or until this much time
  /// has passed: no client sees a failure, at the cost of a longer drain.
  std::chrono::milliseconds idle_grace{0};
  /// After shutdown() is called, how long the listeners stay open and requests are served as
  /// usual while readiness already says no, so that load balancers stop routing here before
  /// the port closes. It counts against the shutdown's deadline; destroy() cuts it short.
  std::chrono::milliseconds lame_duck_delay{0};
};

/// Endpoints the server answers itself, before the handler, for load balancers, orchestrators
/// and monitoring (GET or HEAD; plain text; never cached). An empty path disables one.
struct health_options {
  /// 200 "ready" while server::ready(), else 503 "not ready": until the application is ready
  /// (server::set_ready(), server::add_readiness_check()), and from the start of a drain on.
  std::string readiness_path;
  /// 200 "alive" whenever the server answers at all, drains included.
  std::string liveness_path;
  /// Addresses ("HOST:PORT") that serve these endpoints and nothing else, e.g. a port that only
  /// the orchestrator reaches; they open and close with the others. Empty: the endpoints are
  /// answered on every listen address instead.
  std::vector<std::string> listen;
  /// The server's metrics in Prometheus's text format (docs/metrics.md): connections by
  /// state, requests by status class and duration, bytes, readiness, drains. Answered while
  /// the server answers at all, drains included. Counting costs each request a few stores to
  /// its loop's own counters; a scrape sums them. (Initialised here, so that code written
  /// before it, {"/readyz", "/livez", {}}, builds without -Wmissing-field-initializers.)
  std::string metrics_path{};
};

/// How the server writes its log lines (server_options::log).
enum class log_format : std::uint8_t {
  text,    ///< for people: "lameduck: drain ordered with a deadline of 30 s; ..."
  logfmt,  ///< one line of key=value pairs: msg="drain ordered ..." event=stop_ordered ...
  json,    ///< one JSON object per line: {"msg":"drain ordered ...","event":"stop_ordered",...}
};

/// A certificate a TLS listener can present: PEM files, read again by every reload.
struct tls_certificate {
  /// The server's certificate first, then the intermediate ones.
  std::string certificate_chain_file;
  /// The certificate's private key.
  std::string private_key_file;
  /// For an encrypted private key; empty for an unencrypted one.
  std::string private_key_password;
};

/// An HTTPS listener: an address and the certificates it presents.
struct tls_listen_options {
  /// "HOST:PORT", as in server_options::listen.
  std::string address;
  /// Chosen per handshake by the client's SNI host name against each certificate's DNS names
  /// (subjectAltName; an exact name first, then a wildcard "*.example.com" for one label); the
  /// first certificate when the client sends no name or one that none has. At least one.
  std::vector<tls_certificate> certificates;
};

/// Settings every TLS listener of a server shares.
struct tls_options {
  /// The oldest protocol version accepted: TLS 1.2 or TLS 1.3 (OpenSSL's TLS1_2_VERSION and
  /// TLS1_3_VERSION values).
  int min_version = 0x0303;
  /// TLS 1.2 cipher list (OpenSSL's syntax): Mozilla's "intermediate" choice, forward-secret
  /// AEAD ciphers only; the client's preference among them wins.
  std::string ciphers =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  /// TLS 1.3 cipher suites; empty: OpenSSL's defaults.
  std::string ciphersuites;
  /// How long a session ticket lets a client resume without a full handshake. The ticket keys
  /// belong to the listener, not to its certificates: a reload keeps them. They are replaced
  /// every period (a ticket from the period before still resumes, and is renewed), and the
  /// old ones are forgotten. Zero: no session tickets.
  std::chrono::seconds session_lifetime{std::chrono::hours(2)};
  /// Let the kernel encrypt (kTLS) where the kernel and the cipher allow it.
  bool kernel_tls = false;
  /// Above zero: reload the certificates (server::reload_certificates()) when one of their
  /// files changes, once no file has changed for this long (an ACME client replaces the key
  /// and the chain one after the other). Zero: only on request.
  std::chrono::milliseconds watch_files{0};
};

/// A listening socket handed from a running server to the next one in the same process
/// (server::hand_over_listeners(), server_options::listen_sockets).
struct listening_socket {
  /// The socket's descriptor; whoever holds the listening_socket owns it.
  int fd = -1;
  /// It serves only the health endpoints (a health_options::listen address).
  bool health_only = false;
  /// For an HTTPS listener, the index of its server_options::tls_listen entry; -1 for plain
  /// HTTP. The next server's tls_listen must have that entry, whose certificates it presents.
  int tls = -1;
};

/// A server's configuration.
struct server_options {
  /// Addresses to listen on, each "HOST:PORT" ("[::1]:8080" for IPv6); port 0 asks the kernel.
  /// Any address (here, in tls_listen or in health.listen) may be named, "NAME=HOST:PORT": a
  /// socket passed by the service manager with that name (LISTEN_FDNAMES) stands for it.
  std::vector<std::string> listen;
  /// HTTPS listeners, beside the plain ones: the same server, lifecycle and counts; bound
  /// after `listen`, in this order.
  std::vector<tls_listen_options> tls_listen;
  /// Settings for every entry of tls_listen.
  struct tls_options tls;
  /// Event-loop threads, each with its own connections; 0 means one per core.
  unsigned threads = 0;
  /// Listen backlog (the kernel caps it at net.core.somaxconn).
  int backlog = 4096;
  /// Set SO_REUSEPORT so that other processes may listen on the same port too.
  bool reuse_port = false;
  /// Listen on the sockets the service manager passed to this process (LISTEN_FDS with
  /// LISTEN_PID, as systemd socket activation and the lameduck supervisor pass them) instead
  /// of binding `listen`, or, when addresses are named, instead of binding the addresses of
  /// their names. The first server to start takes them; later ones bind their addresses.
  bool adopt_passed_sockets = true;
  /// Listen on these sockets, handed over by a running server of this process
  /// (server::hand_over_listeners()), instead of binding `listen` and `health.listen` or
  /// adopting passed ones. The server owns them from start() on, also when it fails.
  std::vector<listening_socket> listen_sockets;
  /// Request size limits.
  struct limits limits;
  /// Timeouts; they keep running during a drain.
  struct timeouts timeouts;
  /// Graceful drain behaviour.
  struct drain_options drain;
  /// Readiness, liveness and metrics endpoints (e.g. "/readyz", "/livez", "/metrics"); none by
  /// default.
  struct health_options health;
  /// Where log lines go, one call per line without its newline: errors (a throwing handler, an
  /// internal failure) and one line per phase of a stop (docs/lifecycle.md); default: standard
  /// error.
  std::function<void(std::string_view)> log;
  /// The format of every line the server writes to `log`, server::log()'s included; the stop
  /// lines carry their figures as fields in the structured formats.
  enum log_format log_format = lameduck::log_format::text;
};

}  // namespace lameduck
