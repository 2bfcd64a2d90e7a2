// tls_stream over a local socket pair, with an OpenSSL client on the other end: what each
// read reports to an edge-triggered loop (the end of the stream, records already read, the
// error queue), and that the stream keeps working once it is moved into its connection.

#include "tls/tls_stream.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "certificates.hpp"
#include "tls/certificates.hpp"
#include "tls/endpoint.hpp"
#include "tls/session_tickets.hpp"

namespace lameduck::detail {
namespace {

constexpr std::uint32_t both = EPOLLIN | EPOLLOUT;

class TlsStream : public ::testing::Test {
 protected:
  TlsStream() {
    auto files = pki.issue("localhost");
    tls_listen_options listener;
    listener.certificates.push_back({files.certificate, files.key, ""});
    std::string why;
    auto set = certificate_set::load(listener, tls_options{}, why);
    EXPECT_TRUE(set) << why;
    endpoint.emplace(std::move(set), ticket_seed::random(std::chrono::hours(1)));
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    ours = fds[0];
    peer = fds[1];
    client_ctx = SSL_CTX_new(TLS_client_method());
    client = SSL_new(client_ctx);
    SSL_set_fd(client, peer);
    SSL_set_connect_state(client);
  }
  ~TlsStream() override {
    SSL_free(client);
    SSL_CTX_free(client_ctx);
    ::close(peer);
  }

  // Runs the handshake: the client's steps, and the server's reads on each of its edges (a
  // handshake brings no data: each read says want_read).
  void handshake(tls_stream& s) {
    for (int i = 0; i < 10 && SSL_do_handshake(client) != 1; ++i) {
      ASSERT_EQ(SSL_get_error(client, -1), SSL_ERROR_WANT_READ);
      s.on_ready(both);
      EXPECT_EQ(s.read(buffer, sizeof buffer).status, io_status::want_read);
    }
    ASSERT_TRUE(SSL_is_init_finished(client));
    // The server reads the client's Finished (and sends its tickets): its handshake is done.
    s.on_ready(both);
    EXPECT_EQ(s.read(buffer, sizeof buffer).status, io_status::want_read);
  }

  void client_sends(std::string_view bytes) {
    ASSERT_EQ(SSL_write(client, bytes.data(), static_cast<int>(bytes.size())),
              static_cast<int>(bytes.size()));
  }

  // One read, which must bring data.
  std::string read_once(tls_stream& s) {
    io_result r = s.read(buffer, sizeof buffer);
    EXPECT_EQ(r.status, io_status::ok);
    return std::string(buffer, r.status == io_status::ok ? r.bytes : 0);
  }

  std::string read_all_now(tls_stream& s) {
    std::string got;
    while (s.may_read()) {
      io_result r = s.read(buffer, sizeof buffer);
      if (r.status != io_status::ok) break;
      got.append(buffer, r.bytes);
    }
    return got;
  }

  testing::test_pki pki;
  std::optional<tls_endpoint> endpoint;
  int ours = -1, peer = -1;
  SSL_CTX* client_ctx = nullptr;
  SSL* client = nullptr;
  char buffer[4096];
};

TEST_F(TlsStream, RecordsAlreadyReadAreReadWithoutANewEdgeThenItWaitsForOne) {
  tls_stream s(ours, *endpoint);
  handshake(s);
  // Two records in one socket read (read-ahead): the second raises no epoll event.
  client_sends("first");
  client_sends("second");
  s.on_ready(EPOLLIN);
  EXPECT_EQ(read_once(s), "first");
  EXPECT_TRUE(s.may_read()) << "the second record is in OpenSSL's buffer";
  EXPECT_EQ(read_once(s), "second");
  EXPECT_FALSE(s.may_read()) << "the socket is drained and nothing is buffered";
  client_sends("third");
  s.on_ready(EPOLLIN);
  EXPECT_EQ(read_all_now(s), "third");
}

TEST_F(TlsStream, AnErrorLeftInTheThreadsQueueIsNotTakenForTheReadsOrTheWrites) {
  tls_stream s(ours, *endpoint);
  handshake(s);
  // Whatever ran on this thread before (a handler using OpenSSL itself) left an error behind.
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  s.on_ready(EPOLLIN);
  EXPECT_EQ(s.read(buffer, sizeof buffer).status, io_status::want_read);
  // A write that finds the socket full must wait, not fail.
  const std::string chunk(16384, 'x');
  io_result w;
  for (int i = 0; i < 1000; ++i) {
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    w = s.write(chunk.data(), chunk.size());
    if (w.status != io_status::ok) break;
  }
  EXPECT_EQ(w.status, io_status::want_write);
  ERR_clear_error();
}

TEST_F(TlsStream, AFinWithoutCloseNotifyIsTheEndOfTheStream) {
  tls_stream s(ours, *endpoint);
  handshake(s);
  client_sends("last words");
  ASSERT_EQ(::shutdown(peer, SHUT_WR), 0);  // no close_notify
  s.on_ready(EPOLLIN | EPOLLRDHUP);
  EXPECT_EQ(read_all_now(s), "last words");
  ASSERT_TRUE(s.may_read()) << "the end of the stream is yet to be read";
  EXPECT_EQ(s.read(buffer, sizeof buffer).status, io_status::eof);
}

TEST_F(TlsStream, ACloseNotifyIsTheEndOfTheStream) {
  tls_stream s(ours, *endpoint);
  handshake(s);
  ASSERT_GE(SSL_shutdown(client), 0);
  s.on_ready(EPOLLIN);
  EXPECT_EQ(s.read(buffer, sizeof buffer).status, io_status::eof);
}

TEST_F(TlsStream, AMovedStreamReadsAndWritesThroughItsOwnSocket) {
  tls_stream first(ours, *endpoint);
  tls_stream s(std::move(first));  // as a connection takes it
  handshake(s);
  client_sends("GET");
  s.on_ready(EPOLLIN);
  EXPECT_EQ(read_all_now(s), "GET");
  ASSERT_EQ(s.write("200", 3).status, io_status::ok);
  char got[8] = {};
  int n = 0;
  for (int i = 0; i < 100 && n <= 0; ++i)
    n = SSL_read(client, got, sizeof got);
  EXPECT_EQ(std::string_view(got, n > 0 ? n : 0), "200");
}

}  // namespace
}  // namespace lameduck::detail
