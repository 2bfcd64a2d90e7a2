// lameduck::signal_shutdown in the test's own process: cleanup hooks (after the drain, in
// reverse order, each bounded by its timeout), a stop for another reason, the one-at-a-time
// rule. The signals are real (kill to this process); exit statuses of a whole program are in
// signals_test.cpp.

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <lameduck/lameduck.hpp>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;

class SignalShutdown : public ::testing::Test {
 protected:
  SignalShutdown() {
    options.listen = {"127.0.0.1:0"};
    options.threads = 1;
    // The hooks' failures go to the server's log, like its own messages (the stop's own lines
    // are stop_log_test.cpp's).
    options.log = [this](std::string_view line) {
      if (line.find("cleanup") != std::string_view::npos) record("log: " + std::string(line));
    };
    lameduck::router r;
    r.get("/", [](const request&, response res) { res.send("hello\n"); });
    server = std::make_unique<lameduck::server>(options, r);
  }

  // Runs signals.run() on a thread of its own; the future has its exit status.
  std::future<int> run_in_background() {
    server->start();
    return std::async(std::launch::async, [this] { return signals.run(*server); });
  }

  // Records what the hooks saw, in the order they ran.
  void record(const std::string& what) {
    std::lock_guard lock(mutex);
    ran.push_back(what);
  }

  lameduck::server_options options;
  lameduck::signal_shutdown signals{10s};
  std::mutex mutex;
  std::vector<std::string> ran;
  // After what its log writes to: its stop writes lines.
  std::unique_ptr<lameduck::server> server;
};

TEST_F(SignalShutdown, CleanupHooksRunAfterTheDrainInReverseOrderOfRegistration) {
  signals.add_cleanup(
      "database", [this] { record("database, open " + std::to_string(server->counts().open())); },
      1s);
  signals.add_cleanup(
      "queue", [this] { record(server->ready() ? "queue early" : "queue"); }, 1s);
  auto status = run_in_background();
  raw_client c(server->port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response()), 200);
  ::kill(::getpid(), SIGTERM);
  EXPECT_TRUE(c.closed_within(5s));
  c.shutdown_write();
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 0);
  EXPECT_EQ(ran, (std::vector<std::string>{"queue", "database, open 0"}));
}

TEST_F(SignalShutdown, AHookThatHangsIsGivenUpOnAtItsTimeoutAndTheNextOneStillRuns) {
  auto never = std::make_shared<std::promise<void>>();
  signals.add_cleanup(
      "first", [this] { record("first"); }, 1s);
  // Holds only what it owns: it outlives the test, blocked until the process ends.
  signals.add_cleanup(
      "hangs", [f = never->get_future().share()] { f.wait(); }, 300ms);
  auto status = run_in_background();
  auto sent = clock::now();
  ::kill(::getpid(), SIGTERM);
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 0);
  EXPECT_GE(clock::now() - sent, 250ms);
  EXPECT_LT(clock::now() - sent, 5s);
  EXPECT_EQ(ran, (std::vector<std::string>{"log: lameduck: cleanup \"hangs\" gave up after 300 ms",
                                           "first"}));
}

TEST_F(SignalShutdown, AHookThatThrowsDoesNotKeepTheOthersFromRunning) {
  signals.add_cleanup(
      "second", [this] { record("second"); }, 1s);
  signals.add_cleanup(
      "throws", [] { throw std::runtime_error("on purpose"); }, 1s);
  auto status = run_in_background();
  ::kill(::getpid(), SIGINT);
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 0);
  EXPECT_EQ(ran, (std::vector<std::string>{"log: lameduck: cleanup \"throws\" failed: on purpose",
                                           "second"}));
}

TEST_F(SignalShutdown, AStopForAnotherReasonEndsRunAndRunsTheHooksToo) {
  signals.add_cleanup(
      "hook", [this] { record("hook"); }, 1s);
  auto status = run_in_background();
  raw_client idle(server->port());
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(idle.read_response()), 200);
  server->destroy();  // e.g. from a handler: it closes the idle connection by force
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), exit_forced);
  EXPECT_EQ(ran, std::vector<std::string>{"hook"});
}

TEST_F(SignalShutdown, OnlyOneMayExistAtATime) {
  EXPECT_THROW(lameduck::signal_shutdown second(1s), std::logic_error);
}

}  // namespace
}  // namespace lameduck::testing
