// The service manager's protocols from memory and local sockets: notification datagrams to
// NOTIFY_SOCKET (a path or an abstract name), and taking LISTEN_FDS only when meant for us.

#include "systemd.hpp"

#include <lameduck/systemd.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace lameduck {
namespace {

// A datagram socket standing for the service manager's; binds a path or an abstract name.
class notify_listener {
 public:
  explicit notify_listener(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    if (name[0] == '@') a.sun_path[0] = '\0';
    auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), size), 0) << std::strerror(errno);
  }
  ~notify_listener() { ::close(fd_); }
  // The next datagram, or "" after a second.
  std::string receive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return "";
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

 private:
  int fd_ = -1;
};

class NotifyServiceManager : public ::testing::Test {
 protected:
  ~NotifyServiceManager() override { ::unsetenv("NOTIFY_SOCKET"); }
};

TEST_F(NotifyServiceManager, SendsTheStateLinesAsOneDatagramToAPath) {
  std::string path = "/tmp/lameduck-notify-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  notify_listener manager(path);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(notify_service_manager("READY=1\nSTATUS=serving"));
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=serving");
  ::unlink(path.c_str());
}

TEST_F(NotifyServiceManager, ReachesAnAbstractSocketNamedWithAnAt) {
  std::string name = "@lameduck-notify-" + std::to_string(::getpid());
  notify_listener manager(name);
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_TRUE(notify_service_manager("STOPPING=1"));
  EXPECT_EQ(manager.receive(), "STOPPING=1");
}

TEST_F(NotifyServiceManager, ReportsFalseWithoutAManagerOrWithOneThatIsGone) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(notify_service_manager("READY=1"));
  ::setenv("NOTIFY_SOCKET", "/tmp/lameduck-no-such-socket", 1);
  EXPECT_FALSE(notify_service_manager("READY=1"));
  ::setenv("NOTIFY_SOCKET", std::string(200, 'x').c_str(), 1);  // longer than a socket path
  EXPECT_FALSE(notify_service_manager("READY=1"));
}

TEST(PassedSockets, AreTakenOnlyWhenListenPidIsThisProcessAndOnlyOnce) {
  ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
  ::setenv("LISTEN_FDS", "1", 1);
  EXPECT_TRUE(detail::take_passed_sockets().empty());
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);  // removed all the same: not for a child either

  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDS", "2", 1);
  ::setenv("LISTEN_FDNAMES", "http:https", 1);
  EXPECT_EQ(detail::take_passed_sockets(), (std::vector<int>{3, 4}));
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(std::getenv("LISTEN_FDNAMES"), nullptr);
  EXPECT_TRUE(detail::take_passed_sockets().empty());

  for (const char* bad : {"", "0", "-1", "2x", "99999"}) {
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", bad, 1);
    EXPECT_TRUE(detail::take_passed_sockets().empty()) << bad;
  }
}

TEST(PassedSockets, OnlyAListeningStreamSocketQualifies) {
  int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_FALSE(detail::is_listening_stream_socket(tcp));  // not listening yet
  EXPECT_FALSE(detail::is_listening_stream_socket(udp));
  ASSERT_EQ(::listen(tcp, 1), 0);  // on an ephemeral port of every address
  EXPECT_TRUE(detail::is_listening_stream_socket(tcp));
  EXPECT_FALSE(detail::is_listening_stream_socket(-1));
  ::close(tcp);
  ::close(udp);
}

}  // namespace
}  // namespace lameduck
