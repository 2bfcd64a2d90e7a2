// The event loop on its own: posted work in order on the loop's thread, same-duration timeout
// lists in deadline order, one-shot timers, an exit that waits for armed timers, and a failing
// epoll_wait (through the system_calls seam) that is logged before the process ends.

#include "net/event_loop.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace lameduck::detail {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

TEST(EventLoop, RunsPostedWorkOnItsThreadInOrder) {
  event_loop loop(nullptr);
  std::vector<int> ran;
  std::promise<std::thread::id> seen;
  loop.start_thread();
  for (int i = 0; i < 3; ++i)
    loop.post([&, i] { ran.push_back(i); });
  loop.post([&] { seen.set_value(std::this_thread::get_id()); });
  auto id = seen.get_future();
  ASSERT_EQ(id.wait_for(5s), std::future_status::ready);
  EXPECT_NE(id.get(), std::this_thread::get_id());
  loop.allow_exit();
  loop.join();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
}

struct entry : timed {
  entry(std::vector<int>& log, int n) : log_(&log), n_(n) {}
  std::vector<int>* log_;
  int n_;
};

void record(timed& t) {
  auto& e = static_cast<entry&>(t);
  e.log_->push_back(e.n_);
}

TEST(TimeoutList, FiresItsEntriesInTheOrderTheyWereArmed) {
  event_loop loop(nullptr);
  timeout_list list(loop, 20ms, record);
  std::vector<int> fired;
  entry a(fired, 1), b(fired, 2), c(fired, 3);
  ASSERT_TRUE(list.arm(a));
  ASSERT_TRUE(list.arm(b));
  ASSERT_TRUE(list.arm(c));
  timeout_list::disarm(b);
  ASSERT_TRUE(list.arm(a));  // re-armed: now the last to go
  const auto start = clock::now();
  while (fired.size() < 2 && clock::now() - start < 5s)
    loop.run_once(5ms);
  EXPECT_EQ(fired, (std::vector<int>{3, 1}));
  EXPECT_GE(clock::now() - start, 15ms);
}

TEST(TimeoutList, AZeroDurationArmsNothing) {
  event_loop loop(nullptr);
  timeout_list disabled(loop, 0ms, record);
  std::vector<int> fired;
  entry a(fired, 1);
  EXPECT_FALSE(disabled.arm(a));
  EXPECT_FALSE(a.linked());
}

TEST(LoopTimer, KeepsTheLoopRunningUntilItFires) {
  event_loop loop(nullptr);
  loop_timer timer(loop);
  std::atomic<bool> fired{false};
  loop.post([&] { timer.start_after(30ms, [&] { fired = true; }); });
  loop.start_thread();
  loop.allow_exit();  // the armed timer holds the exit back
  loop.join();
  EXPECT_TRUE(fired);
}

TEST(LoopTimer, ACancelledTimerDoesNotFire) {
  event_loop loop(nullptr);
  loop_timer timer(loop);
  bool fired = false;
  timer.start_after(1ms, [&] { fired = true; });
  timer.cancel();
  loop.run_once(20ms);
  EXPECT_FALSE(fired);
}

int failing_epoll_wait(int, epoll_event*, int, int) {
  errno = EBADF;
  return -1;
}

int interrupted_once_epoll_wait(int fd, epoll_event* events, int max, int timeout_ms) {
  static bool interrupted = false;
  if (!std::exchange(interrupted, true)) {
    errno = EINTR;
    return -1;
  }
  return ::epoll_wait(fd, events, max, timeout_ms);
}

TEST(EventLoopDeathTest, AFailingWaitIsLoggedBeforeTheProcessEnds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        system_calls os;
        os.epoll_wait = failing_epoll_wait;
        event_loop loop(
            [](std::string_view line) { fprintf(stderr, "%.*s\n", int(line.size()), line.data()); },
            os);
        loop.start_thread();
        loop.join();
      },
      "lameduck: an event loop failed, ending the process: epoll_wait: Bad file descriptor");
}

TEST(EventLoop, AnInterruptedWaitIsTriedAgain) {
  system_calls os;
  os.epoll_wait = interrupted_once_epoll_wait;
  event_loop loop(nullptr, os);
  bool ran = false;
  loop.post([&] { ran = true; });
  loop.start_thread();
  loop.allow_exit();
  loop.join();
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace lameduck::detail
