// tcp_stream over a local socket pair: what each read and write reports, and the one decision
// the stream makes for its connection, whether a read may find input without a new readiness
// event (may_read).

#include "net/tcp_stream.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace lameduck::detail {
namespace {

class TcpStream : public ::testing::Test {
 protected:
  TcpStream() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    ours = fds[0];
    peer = fds[1];
  }
  ~TcpStream() override {
    if (peer >= 0) ::close(peer);
  }

  void peer_sends(std::string_view bytes) {
    ASSERT_EQ(::write(peer, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

  int ours = -1, peer = -1;
  char buffer[64];
};

TEST_F(TcpStream, ReadsNothingBeforeTheFirstReadinessEvent) {
  tcp_stream s(ours);
  peer_sends("early");
  // epoll reports what is already there when the socket is added: no read before that.
  EXPECT_FALSE(s.may_read());
  s.on_ready(EPOLLIN);
  EXPECT_TRUE(s.may_read());
}

TEST_F(TcpStream, AShortReadMeansTheSocketIsEmptyUntilTheNextEdge) {
  tcp_stream s(ours);
  peer_sends("hello");
  s.on_ready(EPOLLIN);
  io_result r = s.read(buffer, sizeof buffer);
  EXPECT_EQ(r.status, io_status::ok);
  EXPECT_EQ(std::string_view(buffer, r.bytes), "hello");
  EXPECT_FALSE(s.may_read()) << "a recv() now would only say EAGAIN";
}

TEST_F(TcpStream, AFullReadLeavesMoreToRead) {
  tcp_stream s(ours);
  peer_sends("0123456789");
  s.on_ready(EPOLLIN);
  io_result r = s.read(buffer, 4);
  EXPECT_EQ(r.bytes, 4u);
  EXPECT_TRUE(s.may_read());
  r = s.read(buffer, sizeof buffer);
  EXPECT_EQ(std::string_view(buffer, r.bytes), "456789");
}

TEST_F(TcpStream, AfterAHangUpAShortReadStillLeavesTheEndOfStreamToRead) {
  tcp_stream s(ours);
  peer_sends("last words");
  ::shutdown(peer, SHUT_WR);
  s.on_ready(EPOLLIN | EPOLLRDHUP);  // the data and the FIN come with one edge
  io_result r = s.read(buffer, sizeof buffer);
  EXPECT_EQ(std::string_view(buffer, r.bytes), "last words");
  ASSERT_TRUE(s.may_read()) << "no further edge will come for the end of stream";
  EXPECT_EQ(s.read(buffer, sizeof buffer).status, io_status::eof);
}

TEST_F(TcpStream, AnEmptySocketWantsRead) {
  tcp_stream s(ours);
  s.on_ready(EPOLLIN);
  io_result r = s.read(buffer, sizeof buffer);
  EXPECT_EQ(r.status, io_status::want_read);
  EXPECT_TRUE(r.would_block());
  EXPECT_FALSE(s.may_read());
}

TEST_F(TcpStream, AFullSocketWantsWrite) {
  tcp_stream s(ours);
  const std::string chunk(64 * 1024, 'x');
  io_result r;
  for (int i = 0; i < 1000 && r.status == io_status::ok; ++i)
    r = s.write(chunk.data(), chunk.size());
  EXPECT_EQ(r.status, io_status::want_write);
}

TEST_F(TcpStream, WritingToAPeerThatHasGoneIsAnErrorNotASignal) {
  tcp_stream s(ours);
  ::close(std::exchange(peer, -1));
  EXPECT_EQ(s.write("x", 1).status, io_status::error);  // EPIPE, without SIGPIPE
}

TEST_F(TcpStream, ShutdownSendEndsThePeersInputAndReadingGoesOn) {
  tcp_stream s(ours);
  EXPECT_EQ(s.shutdown_send().status, io_status::ok);
  EXPECT_EQ(::read(peer, buffer, sizeof buffer), 0);
  peer_sends("still heard");
  s.on_ready(EPOLLIN);
  io_result r = s.read(buffer, sizeof buffer);
  EXPECT_EQ(std::string_view(buffer, r.bytes), "still heard");
}

TEST_F(TcpStream, CloseClosesTheDescriptorOnce) {
  tcp_stream s(ours);
  s.close();
  EXPECT_EQ(s.native_handle(), -1);
  EXPECT_EQ(::fcntl(ours, F_GETFD), -1);
  s.close();  // and the destructor: no second close of a number that may be reused
}

}  // namespace
}  // namespace lameduck::detail
