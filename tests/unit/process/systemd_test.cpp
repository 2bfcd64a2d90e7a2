// The service manager's protocols from memory and local sockets: notification datagrams to
// NOTIFY_SOCKET (a path or an abstract name), and taking LISTEN_FDS only when meant for us.

#include "process/systemd.hpp"

#include <lameduck/systemd.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "harness.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>

namespace lameduck {
namespace {

class NotifyServiceManager : public ::testing::Test {
 protected:
  ~NotifyServiceManager() override { ::unsetenv("NOTIFY_SOCKET"); }
};

TEST_F(NotifyServiceManager, SendsTheStateLinesAsOneDatagramToAPath) {
  testing::notify_socket manager;
  ::setenv("NOTIFY_SOCKET", manager.name().c_str(), 1);
  EXPECT_TRUE(notify_service_manager("READY=1\nSTATUS=serving"));
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=serving");
}

TEST_F(NotifyServiceManager, ReachesAnAbstractSocketNamedWithAnAt) {
  testing::notify_socket manager("@lameduck-notify-" + std::to_string(::getpid()));
  ::setenv("NOTIFY_SOCKET", manager.name().c_str(), 1);
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

TEST_F(NotifyServiceManager, NeverWaitsForAManagerThatStoppedReading) {
  testing::notify_socket manager;  // read by no one here: its queue fills
  ::setenv("NOTIFY_SOCKET", manager.name().c_str(), 1);
  auto sends = std::async(std::launch::async, [] {
    int refused = 0;
    for (int i = 0; i < 5000; ++i)  // well past the kernel's queue of 512 datagrams
      if (!notify_service_manager("WATCHDOG=1")) ++refused;
    return refused;
  });
  ASSERT_EQ(sends.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "a send waited for the manager";
  EXPECT_GT(sends.get(), 0);  // the ones past the queue are dropped, and said to be
}

TEST(PassedSockets, AreTakenOnlyWhenListenPidIsThisProcessAndOnlyOnce) {
  ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
  ::setenv("LISTEN_FDS", "1", 1);
  EXPECT_TRUE(detail::take_passed_sockets().empty());
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);  // removed all the same: not for a child either

  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDS", "2", 1);
  ::setenv("LISTEN_FDNAMES", "http:https", 1);
  EXPECT_EQ(detail::take_passed_sockets(),
            (std::vector<detail::passed_socket>{{3, "http"}, {4, "https"}}));
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(std::getenv("LISTEN_FDNAMES"), nullptr);
  EXPECT_TRUE(detail::take_passed_sockets().empty());

  for (const char* bad : {"", "0", "-1", "2x", "99999"}) {
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", bad, 1);
    EXPECT_TRUE(detail::take_passed_sockets().empty()) << bad;
  }
}

TEST(PassedSockets, AreNamedOnlyWhenThereIsOneNamePerSocket) {
  for (const char* names : {"http", "http:https:health", ""}) {
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    ::setenv("LISTEN_FDNAMES", names, 1);
    EXPECT_EQ(detail::take_passed_sockets(), (std::vector<detail::passed_socket>{{3, ""}, {4, ""}}))
        << names;
  }
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDS", "2", 1);  // and no LISTEN_FDNAMES at all
  EXPECT_EQ(detail::take_passed_sockets(), (std::vector<detail::passed_socket>{{3, ""}, {4, ""}}));
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDS", "2", 1);
  ::setenv("LISTEN_FDNAMES", ":health", 1);  // an empty name is kept as one
  EXPECT_EQ(detail::take_passed_sockets(),
            (std::vector<detail::passed_socket>{{3, ""}, {4, "health"}}));
}

TEST(Watchdog, TheIntervalIsWatchdogUsecWhenWatchdogPidIsUnsetOrThisProcess) {
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
  EXPECT_EQ(detail::watchdog_interval().count(), 0);
  ::setenv("WATCHDOG_USEC", "200000", 1);
  EXPECT_EQ(detail::watchdog_interval(), std::chrono::milliseconds(200));
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  EXPECT_EQ(detail::watchdog_interval(), std::chrono::milliseconds(200));
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  EXPECT_EQ(detail::watchdog_interval().count(), 0) << "meant for another process";
  ::unsetenv("WATCHDOG_PID");
  for (const char* bad : {"", "0", "-5", "12x"}) {
    ::setenv("WATCHDOG_USEC", bad, 1);
    EXPECT_EQ(detail::watchdog_interval().count(), 0) << bad;
  }
  ::unsetenv("WATCHDOG_USEC");
}

}  // namespace
}  // namespace lameduck
