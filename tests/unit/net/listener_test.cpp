// Listening sockets and the acceptor: binding on loopback with the kernel's port, which passed
// sockets qualify, and an acceptor that runs out of descriptors. The acceptor's tests replace
// accept4 through the loop's system_calls seam and stand an eventfd in for the listener, so
// no connection is made and the failure happens on purpose.

#include "net/listener.hpp"

#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace lameduck::detail {
namespace {

using namespace std::chrono_literals;

TEST(OpenListener, BindsLoopbackAndReportsThePortTheKernelChose) {
  std::error_code ec;
  socket_address a = parse_listen_address("127.0.0.1:0", ec);
  ASSERT_FALSE(ec);
  int fd = open_listener(a, {}, ec);
  ASSERT_GE(fd, 0) << ec.message();
  EXPECT_NE(format_address(&a.any), "127.0.0.1:0");
  socket_address same = a;  // the port is taken: a second listener fails with EADDRINUSE
  EXPECT_EQ(open_listener(same, {}, ec), -1);
  EXPECT_EQ(ec, std::error_code(EADDRINUSE, std::system_category()));
  ::close(fd);
}

TEST(AdoptListener, TakesOnlyAListeningTcpSocket) {
  int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int unix_stream = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socket_address a;
  EXPECT_FALSE(adopt_listener(tcp, a));  // not listening yet
  EXPECT_FALSE(adopt_listener(udp, a));
  EXPECT_FALSE(adopt_listener(-1, a));
  sockaddr_in loopback{};
  loopback.sin_family = AF_INET;
  loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(tcp, reinterpret_cast<sockaddr*>(&loopback), sizeof loopback), 0);
  ASSERT_EQ(::listen(tcp, 1), 0);
  ASSERT_TRUE(adopt_listener(tcp, a));
  EXPECT_EQ(format_address(&a.any).rfind("127.0.0.1:", 0), 0u);
  // A listening Unix socket is a stream socket, but not one an HTTP server takes.
  sockaddr_un path{};
  path.sun_family = AF_UNIX;  // autobind: an abstract name of the kernel's choosing
  ASSERT_EQ(::bind(unix_stream, reinterpret_cast<sockaddr*>(&path), sizeof(sa_family_t)), 0);
  ASSERT_EQ(::listen(unix_stream, 1), 0);
  EXPECT_FALSE(adopt_listener(unix_stream, a));
  for (int fd : {tcp, udp, unix_stream})
    ::close(fd);
}

// accept4 as the test scripts it: each call takes the next answer (an errno, or 0 for "a new
// connection", which is an eventfd standing in for an accepted socket).
struct scripted_accept {
  static inline std::vector<int> answers;
  static inline std::size_t calls = 0;
  static int accept4(int, sockaddr* address, socklen_t* size, int) {
    std::size_t i = calls++;
    int answer = i < answers.size() ? answers[i] : EAGAIN;
    if (answer != 0) {
      errno = answer;
      return -1;
    }
    std::memset(address, 0, *size);
    address->sa_family = AF_INET;
    return ::eventfd(0, EFD_CLOEXEC);
  }
};

class Acceptor : public ::testing::Test {
 protected:
  Acceptor() {
    scripted_accept::answers.clear();
    scripted_accept::calls = 0;
    os.accept4 = scripted_accept::accept4;
  }
  ~Acceptor() override {
    for (int fd : admitted)
      ::close(fd);
    ::close(listen_fd);
  }

  // A connection is waiting: the stand-in listener becomes readable.
  void connection_waits() {
    std::uint64_t one = 1;
    ASSERT_EQ(::write(listen_fd, &one, sizeof one), 8);
  }

  system_calls os;
  std::vector<std::string> logged;
  event_loop loop{[this](std::string_view line) { logged.emplace_back(line); }, os};
  int listen_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  std::vector<int> admitted;
  acceptor a{loop, listen_fd,
             [this](int fd, const socket_address&, socklen_t) { admitted.push_back(fd); }};
};

TEST_F(Acceptor, AcceptsWhatIsQueuedUntilTheKernelSaysAgain) {
  scripted_accept::answers = {0, ECONNABORTED, 0, EAGAIN};
  a.start();
  connection_waits();
  loop.run_once(1s);
  EXPECT_EQ(admitted.size(), 2u) << "a connection aborted in the queue is skipped, not fatal";
  EXPECT_EQ(scripted_accept::calls, 4u);
  EXPECT_TRUE(logged.empty());
}

TEST_F(Acceptor, RetriesAfterRunningOutOfDescriptorsInsteadOfSpinning) {
  scripted_accept::answers = {EMFILE, 0, EAGAIN};
  a.start();
  connection_waits();
  const auto first = std::chrono::steady_clock::now();
  loop.run_once(1s);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0], "lameduck: accept failed: Too many open files");
  EXPECT_TRUE(admitted.empty());
  // No edge will come for the connection still queued: the acceptor's own timer retries.
  while (admitted.empty() && std::chrono::steady_clock::now() - first < 5s)
    loop.run_once(5ms);
  EXPECT_EQ(admitted.size(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - first, acceptor::retry_after - 10ms);
  EXPECT_EQ(scripted_accept::calls, 3u) << "one call per attempt: no spinning in between";
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_EQ(logged[1], "lameduck: accepting again");
}

TEST_F(Acceptor, ConnectionsArrivingWhileItWaitsToRetryDoNotMakeItTryEarlier) {
  scripted_accept::answers = {EMFILE, 0, EAGAIN};
  a.start();
  connection_waits();
  const auto first = std::chrono::steady_clock::now();
  loop.run_once(1s);
  ASSERT_EQ(scripted_accept::calls, 1u);
  for (int i = 0; i < 3; ++i) {  // three more arrive: three edges on the listener
    connection_waits();
    loop.run_once(1s);
  }
  if (std::chrono::steady_clock::now() - first < acceptor::retry_after) {  // else the retry ran
    EXPECT_EQ(scripted_accept::calls, 1u) << "an arrival made the acceptor try before its retry";
  }
  while (admitted.empty() && std::chrono::steady_clock::now() - first < 5s)
    loop.run_once(5ms);
  EXPECT_EQ(admitted.size(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - first, acceptor::retry_after - 10ms);
}

TEST_F(Acceptor, FailuresThatGoOnAreCountedNotEachLogged) {
  const unsigned failures = acceptor::failures_per_line + 3;  // 5.3 s of retries
  scripted_accept::answers.assign(failures, EMFILE);
  scripted_accept::answers.insert(scripted_accept::answers.end(), {0, EAGAIN});
  a.start();
  connection_waits();
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (admitted.empty() && std::chrono::steady_clock::now() < end)
    loop.run_once(20ms);
  ASSERT_EQ(admitted.size(), 1u);
  EXPECT_EQ(logged, (std::vector<std::string>{
                        "lameduck: accept failed: Too many open files",
                        "lameduck: accept failed 50 more times: Too many open files",
                        "lameduck: accepting again, after 2 more failures",
                    }));
}

TEST_F(Acceptor, ClosingAcceptsWhatWasQueuedFirst) {
  scripted_accept::answers = {0, 0, 0, EAGAIN};
  a.start();
  a.close(true);  // no readiness event was handed out yet
  EXPECT_EQ(admitted.size(), 3u);
  connection_waits();
  loop.run_once(0ms);
  EXPECT_EQ(admitted.size(), 3u) << "closed: nothing is accepted afterwards";
}

TEST_F(Acceptor, ClosingForAHandoverLeavesTheQueueToTheNextServer) {
  scripted_accept::answers = {0, 0, EAGAIN};
  a.start();
  a.close(false);
  EXPECT_TRUE(admitted.empty());
  EXPECT_EQ(scripted_accept::calls, 0u);
}

}  // namespace
}  // namespace lameduck::detail
