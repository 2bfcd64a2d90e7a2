#pragma once
// What unit and integration tests share: starting a real server binary on 127.0.0.1 with a
// port from the kernel, running real clients (curl, node), a raw socket client for byte-exact
// cases, and the one parser of raw responses. Everything waits on events with a deadline;
// nothing sleeps to synchronise.

#include <openssl/ssl.h>
#include <strings.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace lameduck::testing {

using namespace std::chrono_literals;

/// Path of a program built with the tests (the build's bin/ folder).
std::string bin_path(std::string_view name);
/// A new empty file, /tmp/lameduck-test-STEM-XXXXXX; whoever asked for it removes it.
std::string temp_path(const char* stem);
/// Path of a file in tests/integration/ (for example "clients/keepalive.js").
std::string source_path(std::string_view relative);

/// A server binary started for one test and stopped by its pid when the test ends.
class server_process {
 public:
  /// Starts argv and waits until it prints "listening on http://ADDRESS:PORT"; the passed
  /// sockets become the program's descriptors 3, 4... (as LISTEN_FDS passes them).
  explicit server_process(std::vector<std::string> argv,
                          std::chrono::milliseconds ready_within = 10s,
                          const std::vector<int>& passed_sockets = {});
  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  /// The first port it reported.
  std::uint16_t port() const { return port_; }
  /// The first port it reported as "https://"; 0 if none.
  std::uint16_t https_port() const { return https_port_; }
  /// "127.0.0.1:PORT"
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  /// "http://127.0.0.1:PORT", or https:// for a server that reported an HTTPS port first.
  std::string url(std::string_view path = "/") const {
    return (https_port_ == port_ ? "https://" : "http://") + address() + std::string(path);
  }
  pid_t pid() const { return pid_; }
  /// Sends a signal to the process.
  void signal(int sig) const;
  /// Waits for the process to exit; its exit status as the shell reports it (128+n for signal n).
  int wait_exit(std::chrono::milliseconds within = 10s);
  /// Everything the process wrote to standard error so far.
  std::string error_output() const;

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0, https_port_ = 0;
  int status_ = -1;
  int stdout_fd_ = -1;
  std::string stderr_path_;
};

/// What a finished command did.
struct command_result {
  int exit_code = -1;  ///< 128+n when killed by signal n
  std::string out;     ///< standard output
  std::string err;     ///< standard error
};
/// Runs a command with a deadline (killed past it); input goes to its standard input.
command_result run(const std::vector<std::string>& argv, std::chrono::milliseconds within = 20s,
                   std::string_view input = {});

/// What the suites that run over both transports (lifecycle, limits, timeouts, clients) run
/// over this time: each is a TestWithParam<transport> whose fixture calls use_transport(). Then
/// raw_client(port), get_once(), round_trip() and start_test_server() follow it, and
/// tls_certificate() is what a test server presents (made once per process, with its CA).
enum class transport { tcp, tls };
void use_transport(transport t);
transport current_transport();
/// "Tcp" or "Tls", for INSTANTIATE_TEST_SUITE_P's test names.
std::string transport_name(const ::testing::TestParamInfo<transport>& info);
/// The base of a suite that runs over both transports: it sets the transport for each test
/// and puts the default back after it.
class over_both_transports : public ::testing::TestWithParam<transport> {
 protected:
  over_both_transports() { use_transport(GetParam()); }
  ~over_both_transports() override { use_transport(transport::tcp); }
};
/// The parameters of such a suite.
inline auto both_transports() {
  return ::testing::Values(transport::tcp, transport::tls);
}

/// The files a server presents over TLS: certificate chain, key, and the CA that signed it.
struct tls_files {
  std::string certificate, key, ca;
};
const tls_files& tls_certificate();
/// The URL scheme of the transport: "http" or "https".
std::string scheme();

/// How a raw_client speaks TLS (OpenSSL, TLS 1.2 or 1.3).
struct tls_client_options {
  /// The CA to verify the server's certificate against; empty: no verification.
  std::string ca_file;
  /// The SNI host name sent (and verified, with ca_file); empty: none sent.
  std::string server_name;
  /// A session to resume (from session() of an earlier client).
  std::shared_ptr<SSL_SESSION> session;
  /// ALPN protocols offered, in wire format; empty: none.
  std::string alpn = std::string("\x08http/1.1", 9);
  /// The newest version to offer (e.g. TLS1_2_VERSION); 0: the newest.
  int max_version = 0;
};

/// A TCP client on 127.0.0.1 that sends and receives exact bytes, in the clear or over TLS.
class raw_client {
 public:
  /// Connects over the current transport (over TLS, trusting tls_certificate()'s CA, it sends
  /// its ClientHello and lets the first read or write finish the handshake, so that a server
  /// that is not accepting yet leaves it in the kernel's queue as over TCP);
  /// a receive_buffer above zero sets SO_RCVBUF first (a small window makes a client that
  /// stops reading fill the server's socket quickly).
  explicit raw_client(std::uint16_t port, int receive_buffer = 0);
  /// Connects over plain TCP, whatever the current transport.
  static std::unique_ptr<raw_client> plain(std::uint16_t port);
  /// Connects and completes a TLS handshake; throws std::runtime_error with OpenSSL's reason
  /// when it fails.
  raw_client(std::uint16_t port, const tls_client_options& tls);
  ~raw_client();
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  /// Sends all of bytes.
  void send(std::string_view bytes);
  /// Half-closes: the server reads end of stream.
  void shutdown_write();
  /// Reads one whole response (Content-Length, chunked, or until close); throws on timeout.
  std::string read_response(std::chrono::milliseconds within = 10s);
  /// Reads one response head only (through the blank line), e.g. the answer to a HEAD request.
  std::string read_head(std::chrono::milliseconds within = 10s);
  /// Reads exactly n bytes (after an upgrade: the other protocol's); throws on timeout or close.
  std::string read_exactly(std::size_t n, std::chrono::milliseconds within = 10s);
  /// Whether a byte (or the close) arrives within the time; consumes nothing. A false answer is
  /// a bounded wait for something that must not happen.
  bool readable_within(std::chrono::milliseconds within);
  /// Whether the connection is reset (an RST arrives) within the time; consumes nothing. Also
  /// after the end of stream, when a readability wait no longer tells anything.
  bool reset_within(std::chrono::milliseconds within);
  /// Reads what has arrived, without waiting: bytes (at most n), 0 at the end of stream, -1
  /// when nothing is there yet.
  long read_available(char* p, std::size_t n);
  /// Reads until the server closes; throws on timeout.
  std::string read_until_close(std::chrono::milliseconds within = 10s);
  /// Whether the server closed the connection within the time (end of stream or reset).
  bool closed_within(std::chrono::milliseconds within);
  /// Whether the close was a reset (ECONNRESET) rather than a clean end of stream.
  bool was_reset() const { return reset_; }
  int fd() const { return fd_; }

  /// Over TLS: whether the handshake resumed a session.
  bool resumed() const;
  /// Over TLS: the protocol ALPN selected; "" for none.
  std::string alpn() const;
  /// Over TLS: the common name of the certificate the server presented.
  std::string peer_name() const;
  /// Over TLS: whether the server's close_notify has arrived.
  bool close_notify_received() const;
  /// Over TLS: how many session tickets (TLS 1.3 NewSessionTicket messages, or TLS 1.2's one)
  /// have arrived so far.
  int tickets() const { return tickets_; }
  /// Over TLS: the session to resume later. TLS 1.3 tickets come after the handshake: read a
  /// response first.
  std::shared_ptr<SSL_SESSION> session() const;

 private:
  // Reads more into buffer_; false at end of stream (or reset); throws at the deadline.
  bool fill(std::chrono::steady_clock::time_point deadline);
  // Reads until parse_response finds a whole response at the front of buffer_ (its head only
  // when head_only) and takes its raw bytes off; throws at the deadline or a premature close.
  std::string take_one(std::chrono::milliseconds within, bool head_only);
  struct plain_tag {};
  raw_client(plain_tag, std::uint16_t port, int receive_buffer);
  void start_tls(const tls_client_options& tls, bool wait_for_handshake);
  int fd_ = -1;
  SSL_CTX* tls_ctx_ = nullptr;
  SSL* tls_ = nullptr;
  std::string buffer_;
  bool reset_ = false;
  int tickets_ = 0;
};

/// A service manager's notification socket (NOTIFY_SOCKET): a datagram socket bound to a fresh
/// path, or to the given name ("@name" for an abstract socket).
class notify_socket {
 public:
  notify_socket();
  explicit notify_socket(std::string name);
  ~notify_socket();
  notify_socket(const notify_socket&) = delete;
  notify_socket& operator=(const notify_socket&) = delete;
  /// What NOTIFY_SOCKET should say.
  const std::string& name() const { return name_; }
  /// The next message, or "" when none arrives within the time.
  std::string receive(std::chrono::milliseconds within = 5s);

 private:
  std::string name_;
  int fd_ = -1;
};

/// Starts lameduck-test-server on 127.0.0.1:0 with two threads (unless extra says otherwise).
server_process start_test_server(const std::vector<std::string>& extra = {});

/// Sends one GET on a new connection and reads its response (raw, head and body).
std::string get_once(std::uint16_t port, std::string_view target = "/");

/// Whether a new connection to 127.0.0.1:port is refused by the kernel (nothing listens).
bool connection_refused(std::uint16_t port);

/// Waits until pred() holds, re-checking every few milliseconds; false at the deadline. Only for
/// server state that the client has no event for (a close it cannot see without reading).
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds within = 10s);

/// Parses "key value" lines (e.g. the test server's /counts, a client script's report).
std::map<std::string, std::string> key_values(std::string_view text);

/// One response as received.
struct http_response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;  // de-chunked

  /// How many fields have this name (any case).
  std::size_t count(std::string_view name) const {
    return static_cast<std::size_t>(std::count_if(fields.begin(), fields.end(), [&](const auto& f) {
      return f.first.size() == name.size() &&
             ::strncasecmp(f.first.data(), name.data(), name.size()) == 0;
    }));
  }
  /// The first value of a field with this name (any case).
  std::optional<std::string> field(std::string_view name) const {
    for (const auto& [n, v] : fields) {
      if (n.size() == name.size() && ::strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
    }
    return std::nullopt;
  }
};

/// What parse_response found at the front of the bytes received so far.
struct parsed_response {
  http_response response;     ///< status, fields and de-chunked body, as far as they arrived
  bool complete = false;      ///< the whole response is there
  std::string error;          ///< why the bytes cannot be a response; empty when they can
  std::size_t head_size = 0;  ///< bytes through the blank line after the fields; 0 before it
  std::size_t size = 0;       ///< bytes the whole response takes, once complete
  bool chunked = false;       ///< whether the body is framed in chunks
};

/// The one parser of responses here: the response at the front of bytes and whether it is all
/// there, by its Content-Length, its chunks or (once ended says the connection has ended) the
/// close, while answers to HEAD and 1xx/204/304 end with their head.
parsed_response parse_response(std::string_view bytes, bool ended, bool head_request = false);

/// Sends bytes on a new connection to 127.0.0.1:port and returns everything received until the
/// server closes it (10 s at most).
std::string round_trip(std::uint16_t port, std::string_view bytes);

/// Takes one response off the front of wire: Content-Length, chunked (de-chunked) or until the
/// end; HEAD responses and 1xx/204/304 have no body.
http_response take_response(std::string_view& wire, bool head_request = false);

/// The status code of a raw response ("HTTP/1.1 200 OK..." gives 200).
int status_of(std::string_view response);
/// The value of a header in a raw response, or "" when absent (case-insensitive name).
std::string header_of(std::string_view response, std::string_view name);
/// The body of a raw response: de-chunked when chunked, else every byte after the head.
std::string body_of(std::string_view response);

}  // namespace lameduck::testing
