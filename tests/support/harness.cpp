#include "harness.hpp"

#include "certificates.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <gtest/gtest.h>

extern char** environ;

namespace lameduck::testing {

namespace {

using clock = std::chrono::steady_clock;

[[noreturn]] void fail_errno(const char* what) {
  throw std::system_error(errno, std::system_category(), what);
}

int remaining_ms(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits until fd is readable; false at the deadline.
bool wait_readable(int fd, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) fail_errno("poll");
  }
}

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv)
    out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits for a child with a deadline; -1 if it is still running at the deadline. A pidfd
// becomes readable when the child exits, so the wait is an event, not a polling loop.
int wait_child(pid_t pid, clock::time_point deadline) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) fail_errno("pidfd_open");
  bool exited = wait_readable(pidfd, deadline);
  ::close(pidfd);
  if (!exited) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) fail_errno("waitpid");
  }
  return exit_code_of(status);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string temp_path(const char* stem) {
  std::string templ = std::string("/tmp/lameduck-test-") + stem + "-XXXXXX";
  int fd = ::mkstemp(templ.data());
  if (fd < 0) fail_errno("mkstemp");
  ::close(fd);
  return templ;
}

notify_socket::notify_socket() : notify_socket(temp_path("notify")) {}

notify_socket::notify_socket(std::string name) : name_(std::move(name)) {
  if (name_[0] != '@') ::unlink(name_.c_str());  // temp_path made a file there
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name_.size() >= sizeof a.sun_path) throw std::runtime_error("socket name too long");
  std::memcpy(a.sun_path, name_.data(), name_.size());
  if (name_[0] == '@') a.sun_path[0] = '\0';
  auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), size) != 0) fail_errno("bind a notify socket");
}

notify_socket::~notify_socket() {
  ::close(fd_);
  if (name_[0] != '@') ::unlink(name_.c_str());
}

std::string notify_socket::receive(std::chrono::milliseconds within) {
  if (!wait_readable(fd_, clock::now() + within)) return "";
  char buf[4096];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

std::string bin_path(std::string_view name) {
  return std::string(LAMEDUCK_BIN_DIR "/") + std::string(name);
}

std::string source_path(std::string_view relative) {
  return std::string(LAMEDUCK_TEST_SOURCE_DIR "/") + std::string(relative);
}

namespace {

// What every program the tests start is spawned with: SIGPIPE back to its default.
const posix_spawnattr_t* spawn_attributes() {
  static posix_spawnattr_t attributes = [] {
    posix_spawnattr_t a;
    posix_spawnattr_init(&a);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&a, &defaults);
    posix_spawnattr_setflags(&a, POSIX_SPAWN_SETSIGDEF);
    return a;
  }();
  return &attributes;
}

}  // namespace

server_process::server_process(std::vector<std::string> argv,
                               std::chrono::milliseconds ready_within,
                               const std::vector<int>& passed_sockets) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) fail_errno("pipe");
  stderr_path_ = temp_path("stderr");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Copies first, above the numbers they go to: a dup2 onto the same number would keep
  // close-on-exec, and one socket's number may be another's destination.
  std::vector<int> copies;
  for (int fd : passed_sockets)
    copies.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
  for (std::size_t i = 0; i < copies.size(); ++i)
    posix_spawn_file_actions_adddup2(&actions, copies[i], 3 + static_cast<int>(i));
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  auto args = c_argv(argv);
  int rc = ::posix_spawn(&pid_, args[0], &actions, spawn_attributes(), args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  for (int fd : copies)
    ::close(fd);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    throw std::system_error(rc, std::system_category(), "posix_spawn " + argv[0]);
  }
  auto deadline = clock::now() + ready_within;
  std::string text;
  static const std::regex ready(R"(listening on https?://[^\s]*:(\d+))");
  std::smatch m;
  while (!std::regex_search(text, m, ready)) {
    if (!wait_readable(out[0], deadline)) break;
    char buf[512];
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  // Kept open until the process is gone: a program that prints more would otherwise die of
  // SIGPIPE. Test programs print a few lines, far from filling the pipe.
  stdout_fd_ = out[0];
  if (m.empty()) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, clock::now() + 5s);
    pid_ = -1;
    throw std::runtime_error("server did not report its port; stdout: " + text +
                             " stderr: " + read_file(stderr_path_));
  }
  port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
  // A program prints its addresses in one write: the HTTPS one is among what was read.
  static const std::regex https(R"(listening on https://[^\s]*:(\d+))");
  if (std::smatch t; std::regex_search(text, t, https)) {
    https_port_ = static_cast<std::uint16_t>(std::stoi(t[1]));
  }
}

server_process::~server_process() {
  if (pid_ > 0 && status_ < 0) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, clock::now() + 10s);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (stderr_path_.empty()) return;
  // A sanitizer build reports into the server's standard error and (ThreadSanitizer) carries
  // on; the server is then killed, so the report would go unseen unless the test fails here.
  auto err = read_file(stderr_path_);
  for (const char* mark : {"WARNING: ThreadSanitizer", "ERROR: AddressSanitizer",
                           "ERROR: LeakSanitizer", "runtime error:"}) {
    if (err.find(mark) != std::string::npos) {
      ADD_FAILURE() << "the server's sanitizer reported a problem:\n" << err;
      break;
    }
  }
  ::unlink(stderr_path_.c_str());
}

void server_process::signal(int sig) const {
  ::kill(pid_, sig);
}

int server_process::wait_exit(std::chrono::milliseconds within) {
  if (status_ < 0) status_ = wait_child(pid_, clock::now() + within);
  return status_;
}

std::string server_process::error_output() const {
  return read_file(stderr_path_);
}

command_result run(const std::vector<std::string>& argv, std::chrono::milliseconds within,
                   std::string_view input) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
    fail_errno("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  auto args = c_argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, spawn_attributes(), args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) throw std::system_error(rc, std::system_category(), "posix_spawn " + argv[0]);
  // Input is small in these tests: write it whole, then close.
  std::size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::close(in[1]);
  command_result result;
  auto deadline = clock::now() + within;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    int r = ::poll(fds, 2, remaining_ms(deadline));
    if (r == 0) break;  // deadline: the child is killed below
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno("poll");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  result.exit_code = wait_child(pid, deadline);
  if (result.exit_code < 0) {
    ::kill(pid, SIGKILL);
    wait_child(pid, clock::now() + 5s);
    result.exit_code = -1;
    result.err += "\n[killed at the test's deadline]";
  }
  return result;
}

namespace {
transport current = transport::tcp;

// The TLS client writes through OpenSSL, whose socket writes raise SIGPIPE on a connection the
// server has closed: the test process ignores it. The programs it starts get the default back
// (spawn_attributes()), so that a server that does not guard against SIGPIPE still dies of it.
const bool sigpipe_ignored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();
}  // namespace

void use_transport(transport t) {
  current = t;
}
transport current_transport() {
  return current;
}
std::string transport_name(const ::testing::TestParamInfo<transport>& info) {
  return info.param == transport::tls ? "Tls" : "Tcp";
}
std::string scheme() {
  return current == transport::tls ? "https" : "http";
}

const tls_files& tls_certificate() {
  // Made on first use, removed at exit with the process's other temporary files.
  static const test_pki* pki = new test_pki;
  static const tls_files files = [] {
    auto issued = const_cast<test_pki*>(pki)->issue("localhost");
    return tls_files{issued.certificate, issued.key, pki->ca_file()};
  }();
  static const int cleanup = std::atexit([] { delete pki; });
  (void)cleanup;
  return files;
}

raw_client::raw_client(std::uint16_t port, int receive_buffer)
    : raw_client(plain_tag{}, port, receive_buffer) {
  if (current == transport::tls) {
    tls_client_options o;
    o.ca_file = tls_certificate().ca;
    start_tls(o, false);
  }
}

std::unique_ptr<raw_client> raw_client::plain(std::uint16_t port) {
  return std::unique_ptr<raw_client>(new raw_client(plain_tag{}, port, 0));
}

raw_client::raw_client(plain_tag, std::uint16_t port, int receive_buffer) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail_errno("socket");
  // Before connect, so that the window offered in the handshake is already the small one.
  if (receive_buffer > 0 &&
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer) != 0) {
    fail_errno("setsockopt SO_RCVBUF");
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail_errno("connect");
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

namespace {

std::string tls_reason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no reason given";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

// Waits for what a non-blocking OpenSSL call wants; false at the deadline.
bool wait_for_tls(SSL* ssl, int fd, int result, clock::time_point deadline) {
  const int e = SSL_get_error(ssl, result);
  if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
  pollfd p{fd, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
  int r;
  while ((r = ::poll(&p, 1, remaining_ms(deadline))) < 0) {
    if (errno != EINTR) fail_errno("poll");
  }
  return r > 0;
}

}  // namespace

raw_client::raw_client(std::uint16_t port, const tls_client_options& tls)
    : raw_client(plain_tag{}, port, 0) {
  start_tls(tls, true);
}

void raw_client::start_tls(const tls_client_options& tls, bool wait_for_handshake) {
  tls_ctx_ = SSL_CTX_new(TLS_client_method());
  if (tls.max_version) SSL_CTX_set_max_proto_version(tls_ctx_, tls.max_version);
  if (!tls.ca_file.empty()) {
    SSL_CTX_load_verify_locations(tls_ctx_, tls.ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(tls_ctx_, SSL_VERIFY_PEER, nullptr);
  }
  // Every session the server sends is counted (and left to OpenSSL: the callback returns 0).
  SSL_CTX_set_session_cache_mode(tls_ctx_,
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(tls_ctx_, [](SSL* ssl, SSL_SESSION*) {
    ++static_cast<raw_client*>(SSL_get_app_data(ssl))->tickets_;
    return 0;
  });
  tls_ = SSL_new(tls_ctx_);
  SSL_set_app_data(tls_, this);
  SSL_set_fd(tls_, fd_);
  if (!tls.server_name.empty()) {
    SSL_set_tlsext_host_name(tls_, tls.server_name.c_str());
    if (!tls.ca_file.empty()) SSL_set1_host(tls_, tls.server_name.c_str());
  }
  if (!tls.alpn.empty()) {
    SSL_set_alpn_protos(tls_, reinterpret_cast<const unsigned char*>(tls.alpn.data()),
                        static_cast<unsigned>(tls.alpn.size()));
  }
  if (tls.session) SSL_set_session(tls_, tls.session.get());
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  const auto deadline = clock::now() + 10s;
  ERR_clear_error();
  for (int r; (r = SSL_connect(tls_)) != 1;) {
    // The ClientHello is sent: the reads and writes to come finish the handshake.
    if (!wait_for_handshake && SSL_get_error(tls_, r) == SSL_ERROR_WANT_READ) return;
    if (!wait_for_tls(tls_, fd_, r, deadline)) {
      // The delegated constructor has finished: the destructor frees what is here.
      const int e = SSL_get_error(tls_, r);
      const int saved = errno;
      throw std::runtime_error(
          "TLS handshake failed (SSL_get_error " + std::to_string(e) +
          (e == SSL_ERROR_SYSCALL ? ", " + std::string(std::strerror(saved)) : std::string()) +
          "): " + tls_reason());
    }
  }
}

raw_client::~raw_client() {
  // Marked as shut down (nothing is sent), so that OpenSSL keeps its session resumable.
  if (tls_) SSL_set_shutdown(tls_, SSL_SENT_SHUTDOWN);
  if (tls_) SSL_free(tls_);
  if (tls_ctx_) SSL_CTX_free(tls_ctx_);
  if (fd_ >= 0) ::close(fd_);
}

bool raw_client::resumed() const {
  return tls_ && SSL_session_reused(tls_);
}

std::string raw_client::alpn() const {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  if (tls_) SSL_get0_alpn_selected(tls_, &p, &n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::string raw_client::peer_name() const {
  if (!tls_) return {};
  X509* peer = SSL_get1_peer_certificate(tls_);
  if (!peer) return {};
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
  X509_free(peer);
  return cn;
}

bool raw_client::close_notify_received() const {
  return tls_ && (SSL_get_shutdown(tls_) & SSL_RECEIVED_SHUTDOWN);
}

std::shared_ptr<SSL_SESSION> raw_client::session() const {
  SSL_SESSION* s = tls_ ? SSL_get1_session(tls_) : nullptr;
  return {s, SSL_SESSION_free};
}

void raw_client::send(std::string_view bytes) {
  const auto deadline = clock::now() + 10s;
  while (tls_ && !bytes.empty()) {
    std::size_t n = 0;
    ERR_clear_error();
    const int r = SSL_write_ex(tls_, bytes.data(), bytes.size(), &n);
    if (r == 1) {
      bytes.remove_prefix(n);
    } else if (!wait_for_tls(tls_, fd_, r, deadline)) {
      throw std::runtime_error("TLS write failed: " + tls_reason());
    }
  }
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("send");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void raw_client::shutdown_write() {
  if (tls_) SSL_shutdown(tls_);  // close_notify
  ::shutdown(fd_, SHUT_WR);
}

bool raw_client::fill(clock::time_point deadline) {
  char buf[16384];
  // Over TLS, records that carry no data (session tickets) come and go: wait for data.
  while (tls_) {
    std::size_t n = 0;
    ERR_clear_error();
    const int r = SSL_read_ex(tls_, buf, sizeof buf, &n);
    if (r == 1) {
      buffer_.append(buf, n);
      return true;
    }
    const int e = SSL_get_error(tls_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_for_tls(tls_, fd_, r, deadline))
        throw std::runtime_error("timed out waiting for the server; got: " + buffer_);
      continue;
    }
    if (e == SSL_ERROR_SYSCALL && errno == ECONNRESET) reset_ = true;
    ERR_clear_error();
    return false;  // close_notify, the end of stream, or a failure
  }
  if (!wait_readable(fd_, deadline))
    throw std::runtime_error("timed out waiting for the server; got: " + buffer_);
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n > 0) {
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  if (n < 0 && errno == ECONNRESET) reset_ = true;
  return false;
}

std::string raw_client::take_one(std::chrono::milliseconds within, bool head_only) {
  auto deadline = clock::now() + within;
  bool ended = false;
  for (;;) {
    // Parsed afresh after every read: the parser alone decides where a response ends.
    auto parsed = parse_response(buffer_, ended, head_only);
    if (parsed.complete) {
      std::string response = buffer_.substr(0, parsed.size);
      buffer_.erase(0, parsed.size);
      return response;
    }
    if (!parsed.error.empty())
      throw std::runtime_error("not a response (" + parsed.error + "): " + buffer_);
    if (ended) {
      throw std::runtime_error((parsed.head_size == 0 ? "connection closed before a response head: "
                                                      : "connection closed inside a response: ") +
                               buffer_);
    }
    ended = !fill(deadline);
  }
}

std::string raw_client::read_response(std::chrono::milliseconds within) {
  return take_one(within, false);
}

std::string raw_client::read_head(std::chrono::milliseconds within) {
  return take_one(within, true);
}

std::string raw_client::read_exactly(std::size_t n, std::chrono::milliseconds within) {
  auto deadline = clock::now() + within;
  while (buffer_.size() < n) {
    if (!fill(deadline)) throw std::runtime_error("connection closed after: " + buffer_);
  }
  std::string bytes = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return bytes;
}

bool raw_client::readable_within(std::chrono::milliseconds within) {
  if (!buffer_.empty()) return true;
  if (!tls_) return wait_readable(fd_, clock::now() + within);
  try {
    fill(clock::now() + within);  // data, or the end
    return true;
  } catch (const std::runtime_error&) {
    return false;
  }
}

bool raw_client::reset_within(std::chrono::milliseconds within) {
  auto deadline = clock::now() + within;
  // No events asked for: poll() still reports POLLERR and POLLHUP, and POLLIN (which stays
  // set after the end of stream) does not wake it.
  pollfd p{fd_, 0, 0};
  int r;
  while ((r = ::poll(&p, 1, remaining_ms(deadline))) < 0) {
    if (errno != EINTR) fail_errno("poll");
  }
  if (r == 0) return false;
  int err = 0;
  socklen_t size = sizeof err;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &size);
  if (err == ECONNRESET) reset_ = true;
  return err == ECONNRESET || (p.revents & POLLERR);
}

long raw_client::read_available(char* p, std::size_t n) {
  if (!buffer_.empty()) {
    const std::size_t k = std::min(n, buffer_.size());
    buffer_.copy(p, k);
    buffer_.erase(0, k);
    return static_cast<long>(k);
  }
  if (!tls_) {
    const ssize_t r = ::recv(fd_, p, n, MSG_DONTWAIT);
    return r < 0 && errno != EAGAIN ? 0 : r;
  }
  std::size_t got = 0;
  ERR_clear_error();
  const int r = SSL_read_ex(tls_, p, n, &got);  // the socket is non-blocking over TLS
  if (r == 1) return static_cast<long>(got);
  const int e = SSL_get_error(tls_, r);
  ERR_clear_error();
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -1 : 0;
}

std::string raw_client::read_until_close(std::chrono::milliseconds within) {
  auto deadline = clock::now() + within;
  while (fill(deadline)) {
  }
  return std::exchange(buffer_, {});
}

bool raw_client::closed_within(std::chrono::milliseconds within) {
  auto deadline = clock::now() + within;
  try {
    while (fill(deadline)) {
    }
    return true;
  } catch (const std::runtime_error&) {
    return false;
  }
}

server_process start_test_server(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{bin_path("lameduck-test-server"), "--listen", "127.0.0.1:0"};
  if (current == transport::tls) {
    argv.insert(argv.end(),
                {"--tls-cert", tls_certificate().certificate, "--tls-key", tls_certificate().key});
  }
  bool threads_given = false;
  for (const auto& a : extra)
    threads_given = threads_given || a == "--threads";
  if (!threads_given) argv.insert(argv.end(), {"--threads", "2"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return server_process(argv);
}

std::string get_once(std::uint16_t port, std::string_view target) {
  raw_client c(port);
  c.send("GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n\r\n");
  return c.read_response();
}

bool connection_refused(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int r = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  const int e = errno;
  ::close(fd);
  return r != 0 && e == ECONNREFUSED;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds within) {
  auto deadline = clock::now() + within;
  for (;;) {
    if (pred()) return true;
    if (clock::now() >= deadline) return false;
    ::poll(nullptr, 0, 10);
  }
}

std::map<std::string, std::string> key_values(std::string_view text) {
  std::map<std::string, std::string> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    auto space = line.find(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

namespace {

// Digit counts are checked before conversion: 18 decimal or 15 hex digits cannot overflow.
bool all_digits(std::string_view s, const char* digits = "0123456789") {
  return !s.empty() && s.find_first_not_of(digits) == std::string_view::npos;
}

}  // namespace

parsed_response parse_response(std::string_view bytes, bool ended, bool head_request) {
  parsed_response p;
  http_response& r = p.response;
  std::size_t pos = 0;
  std::string_view line;
  // Takes the next line without its CRLF; false while it has not all arrived.
  auto next_line = [&] {
    auto eol = bytes.find("\r\n", pos);
    if (eol == std::string_view::npos) return false;
    line = bytes.substr(pos, eol - pos);
    pos = eol + 2;
    return true;
  };
  auto malformed = [&](std::string_view why, std::string_view what) {
    p.error = std::string(why) + ": " + std::string(what);
    return p;
  };
  auto complete = [&](std::size_t size) {
    p.complete = true;
    p.size = size;
    return p;
  };

  // RFC 9112 section 4; the reason phrase may be empty.
  static const std::regex status_line(R"(HTTP/\d\.\d \d{3}(?: .*)?)");
  if (!next_line()) return p;
  if (!std::regex_match(line.begin(), line.end(), status_line))
    return malformed("not a status line", line);
  r.status = std::stoi(std::string(line.substr(9, 3)));
  // Fields as far as they arrived: status_of and header_of read heads that may be cut off.
  for (;;) {
    if (!next_line()) return p;
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos || line.find_first_of(" \t") < colon)
      return malformed("not a field line", line);
    // Leading whitespace only: the rest of a value is kept as the server sent it.
    std::string_view value = line.substr(colon + 1);
    value.remove_prefix(std::min(value.size(), value.find_first_not_of(" \t")));
    r.fields.emplace_back(line.substr(0, colon), value);
  }
  p.head_size = pos;

  // RFC 9112 section 6.3, in its order: no content for HEAD, 1xx, 204 and 304; then
  // Transfer-Encoding (chunks when chunked is its last coding, else until the close), which
  // overrides Content-Length; without either, the close ends the body.
  if (head_request || r.status < 200 || r.status == 204 || r.status == 304) return complete(pos);
  if (auto codings = r.field("Transfer-Encoding")) {
    std::string last = codings->substr(codings->rfind(',') + 1);  // npos + 1: the whole value
    std::erase_if(last, [](char c) { return c == ' ' || c == '\t'; });
    p.chunked = ::strcasecmp(last.c_str(), "chunked") == 0;
  } else if (auto length = r.field("Content-Length")) {
    if (!all_digits(*length) || length->size() > 18)
      return malformed("not a Content-Length", *length);
    std::size_t n = std::stoull(*length);
    r.body = bytes.substr(pos, n);
    return bytes.size() - pos >= n ? complete(pos + n) : p;
  }
  if (!p.chunked) {
    r.body = bytes.substr(pos);
    return ended ? complete(bytes.size()) : p;
  }

  // RFC 9112 section 7.1: chunk-size [chunk-ext] CRLF data CRLF, ..., 0 CRLF, trailer, CRLF.
  for (;;) {
    if (!next_line()) return p;
    auto hex = line.substr(0, line.find_first_of("; \t"));
    if (!all_digits(hex, "0123456789abcdefABCDEF") || hex.size() > 15)
      return malformed("not a chunk size line", line);
    std::size_t size = std::stoull(std::string(hex), nullptr, 16);
    if (size == 0) break;
    r.body.append(bytes.substr(pos, size));
    if (bytes.size() - pos < size + 2) return p;
    if (bytes.substr(pos + size, 2) != "\r\n")
      return malformed("chunk data not followed by CRLF", bytes.substr(pos + size, 2));
    pos += size + 2;
  }
  // Trailer fields are not kept; the blank line after them ends the response.
  for (;;) {
    if (!next_line()) return p;
    if (line.empty()) return complete(pos);
  }
}

std::string round_trip(std::uint16_t port, std::string_view bytes) {
  raw_client c(port);
  c.send(bytes);
  return c.read_until_close(std::chrono::seconds(10));
}

http_response take_response(std::string_view& wire, bool head_request) {
  // The wire is all the connection brought: it has ended.
  auto parsed = parse_response(wire, true, head_request);
  // Our server answers every request, even an HTTP/1.0 one, as HTTP/1.1.
  if (parsed.head_size == 0 || !wire.starts_with("HTTP/1.1 ")) {
    ADD_FAILURE() << "no response head in:\n" << wire << "\n" << parsed.error;
    wire = {};
    return {};
  }
  if (!parsed.complete) {
    ADD_FAILURE() << (parsed.error.empty() ? "body cut off" : parsed.error) << " in:\n" << wire;
    wire = {};
    return parsed.response;
  }
  wire.remove_prefix(parsed.size);
  return parsed.response;
}

// status_of and header_of look at the head only: parsed as the answer to a HEAD, the bytes after
// it do not matter, and a head without its body (read_head's) is complete.

int status_of(std::string_view response) {
  int status = parse_response(response, true, true).response.status;
  return status > 0 ? status : -1;
}

std::string header_of(std::string_view response, std::string_view name) {
  return parse_response(response, true, true).response.field(name).value_or("");
}

std::string body_of(std::string_view response) {
  auto parsed = parse_response(response, true);
  if (parsed.head_size == 0) return "";
  // Not cut at the Content-Length: bytes after the response (an answer to a request that
  // should have had none) then show in the test's comparison instead of passing unseen.
  return parsed.chunked ? parsed.response.body : std::string(response.substr(parsed.head_size));
}

}  // namespace lameduck::testing
