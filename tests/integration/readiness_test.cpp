// The application's readiness (server::set_ready, add_readiness_check, when_ready) through
// every phase of a server, and what signal_shutdown tells the service manager about it and
// about a reload (its on_reload hook): a server in this process, real probes on 127.0.0.1, real
// signals to this process, and this test playing the service manager on NOTIFY_SOCKET.

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
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

class Readiness : public ::testing::Test {
 protected:
  Readiness() {
    options.listen = {"127.0.0.1:0"};
    options.threads = 1;
    options.health = {"/readyz", "/livez", {}};
    options.log = [this](std::string_view line) {
      std::lock_guard lock(mutex);
      logged.emplace_back(line);
    };
    routes.get("/", [](const request&, response res) { res.send("hello\n"); });
  }
  void make_server() { server = std::make_unique<lameduck::server>(options, routes); }
  int probe() { return status_of(get_once(server->port(), "/readyz")); }
  std::vector<std::string> log_lines() {
    std::lock_guard lock(mutex);
    return logged;
  }

  lameduck::server_options options;
  lameduck::router routes;
  std::mutex mutex;
  std::vector<std::string> logged;
  // After what its log writes to: its stop writes lines.
  std::unique_ptr<lameduck::server> server;
};

TEST_F(Readiness, SaysNoUntilTheApplicationIsReadyAndAgainWhenItGoesAway) {
  options.drain.lame_duck_delay = 10s;  // draining, yet still listening for the probe
  make_server();
  server->set_ready(false);  // before start: the pool is not up yet
  server->start();
  EXPECT_EQ(probe(), 503);
  EXPECT_FALSE(server->ready());
  EXPECT_EQ(status_of(get_once(server->port(), "/livez")), 200) << "alive all the same";
  EXPECT_EQ(status_of(get_once(server->port(), "/")), 200) << "and serving";
  server->set_ready(true);
  EXPECT_EQ(probe(), 200);
  EXPECT_TRUE(server->ready());
  server->set_ready(false);  // the pool went away
  EXPECT_EQ(probe(), 503);
  server->set_ready(true);
  EXPECT_EQ(probe(), 200);
  auto stopped = server->shutdown(20s);
  EXPECT_EQ(probe(), 503) << "a drain says no whatever the application says";
  EXPECT_FALSE(server->ready());
  server->destroy();
  EXPECT_EQ(stopped.wait_for(10s), std::future_status::ready);
}

TEST_F(Readiness, WithoutSetReadyTheServerIsReadyAsSoonAsItServes) {
  make_server();
  server->start();
  EXPECT_EQ(probe(), 200);
  EXPECT_TRUE(server->ready());
}

TEST_F(Readiness, ChecksAreAskedAtEachProbeOnTheLoopThreadAndNotWhileDraining) {
  options.drain.lame_duck_delay = 10s;
  make_server();
  std::atomic<bool> pool_up{false}, throw_now{false};
  std::atomic<int> asked{0}, asked_here{0};
  const auto test_thread = std::this_thread::get_id();
  server->add_readiness_check([&] {
    ++asked;
    if (std::this_thread::get_id() == test_thread) ++asked_here;
    if (throw_now) throw std::runtime_error("on purpose");
    return pool_up.load();
  });
  server->add_readiness_check([] { return true; });  // several: all must pass
  EXPECT_FALSE(server->ready());
  EXPECT_EQ(asked, 0) << "not asked before the server runs";
  server->start();
  EXPECT_EQ(probe(), 503);
  pool_up = true;
  EXPECT_EQ(probe(), 200);
  pool_up = false;  // went away
  EXPECT_EQ(probe(), 503);
  pool_up = true;
  throw_now = true;
  EXPECT_EQ(probe(), 503) << "a check that throws says no";
  throw_now = false;
  EXPECT_EQ(probe(), 200);
  EXPECT_EQ(asked_here, 0) << "every probe's check ran on the loop thread";
  EXPECT_TRUE(server->ready());  // ready() asks on the caller's thread
  EXPECT_EQ(asked_here, 1);
  server->shutdown(20s);
  const int before = asked;
  EXPECT_EQ(probe(), 503);
  EXPECT_EQ(asked, before) << "a draining server does not ask";
  server->destroy();
}

TEST_F(Readiness, WhenReadyIsCalledOnceWhenTheApplicationBecomesReady) {
  make_server();
  std::atomic<int> calls{0};
  std::promise<void> first;
  server->set_ready(false);
  server->when_ready([&] {
    if (++calls == 1) first.set_value();
  });
  auto ready = first.get_future();
  server->start();
  // A bounded wait for something that must not happen.
  EXPECT_EQ(ready.wait_for(300ms), std::future_status::timeout);
  server->set_ready(true);
  ASSERT_EQ(ready.wait_for(10s), std::future_status::ready);
  server->set_ready(false);
  server->set_ready(true);
  EXPECT_EQ(probe(), 200);
  EXPECT_EQ(calls, 1);
  // Registered when already ready: called soon, on a loop thread.
  std::promise<std::thread::id> later;
  server->when_ready([&] { later.set_value(std::this_thread::get_id()); });
  auto on = later.get_future();
  ASSERT_EQ(on.wait_for(10s), std::future_status::ready);
  EXPECT_NE(on.get(), std::this_thread::get_id());
}

TEST_F(Readiness, WhenReadyIsDroppedIfTheServerStopsFirst) {
  make_server();
  auto called = std::make_shared<std::atomic<bool>>(false);
  server->set_ready(false);
  server->start();
  server->when_ready([called] { *called = true; });
  server->destroy().wait();
  server->set_ready(true);
  EXPECT_FALSE(server->ready());
  // Started again and ready: the callback was for the run that ended.
  server->start();
  EXPECT_EQ(probe(), 200);
  std::promise<void> now_ready;
  server->when_ready([&] { now_ready.set_value(); });  // runs after any older one would
  ASSERT_EQ(now_ready.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(*called);
}

// signal_shutdown's side: the service manager hears READY=1 only once the application is.
class ServiceManagerReadiness : public Readiness {
 protected:
  ServiceManagerReadiness() { ::setenv("NOTIFY_SOCKET", manager.name().c_str(), 1); }
  ~ServiceManagerReadiness() override {
    if (server) server->destroy();
    if (status.valid()) status.wait();
    ::unsetenv("NOTIFY_SOCKET");
  }
  void run_in_background() {
    server->start();
    status = std::async(std::launch::async, [this] { return signals.run(*server); });
  }
  std::string serving() {
    return "READY=1\nSTATUS=serving 127.0.0.1:" + std::to_string(server->port());
  }
  // Checks a RELOADING=1 message: its MONOTONIC_USEC is now, or just before.
  void expect_reloading(const std::string& m) {
    ASSERT_TRUE(m.starts_with("RELOADING=1\nMONOTONIC_USEC=")) << m;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const long long usec = std::stoll(m.substr(m.find('=', 12) + 1));
    const long long now_usec = now.tv_sec * 1'000'000LL + now.tv_nsec / 1000;
    EXPECT_LE(usec, now_usec);
    EXPECT_GT(usec, now_usec - 10'000'000);
  }

  notify_socket manager;
  lameduck::signal_shutdown signals{10s};
  std::future<int> status;
};

TEST_F(ServiceManagerReadiness, ReadyIsSentOnlyOnceTheApplicationIsReady) {
  make_server();
  server->set_ready(false);
  run_in_background();
  EXPECT_EQ(manager.receive(), "STATUS=waiting for the application to be ready");
  EXPECT_EQ(manager.receive(300ms), "") << "no READY=1 while the application is not ready";
  EXPECT_EQ(log_lines(), std::vector<std::string>{"lameduck: listening, but not ready yet: "
                                                  "waiting for the application to be ready"});
  server->set_ready(true);
  EXPECT_EQ(manager.receive(), serving());
  ::kill(::getpid(), SIGTERM);
  EXPECT_EQ(manager.receive(), "STOPPING=1\nSTATUS=draining");
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 0);
}

TEST_F(ServiceManagerReadiness, AReadyServerIsAnnouncedAtOnceAsBefore) {
  make_server();
  run_in_background();
  EXPECT_EQ(manager.receive(), serving());
  server->destroy();
}

TEST_F(ServiceManagerReadiness, ASuccessfulReloadRunsTheHookBetweenReloadingAndReady) {
  std::atomic<int> reloads{0};
  std::promise<std::vector<std::string>> seen_by_hook;
  signals.on_reload([&]() -> std::error_code {
    if (++reloads == 1) {
      // What the manager has heard when the hook runs: RELOADING=1, and nothing after it.
      seen_by_hook.set_value({manager.receive(), manager.receive(100ms)});
    }
    return {};
  });
  make_server();
  run_in_background();
  EXPECT_EQ(manager.receive(), serving());
  ::kill(::getpid(), SIGHUP);
  auto seen = seen_by_hook.get_future();
  ASSERT_EQ(seen.wait_for(10s), std::future_status::ready);
  const auto before = seen.get();
  expect_reloading(before[0]);
  EXPECT_EQ(before[1], "") << "READY=1 waits for the hook";
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=reloaded");
  ::kill(::getpid(), SIGHUP);
  expect_reloading(manager.receive());
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=reloaded");
  EXPECT_EQ(reloads, 2);
  EXPECT_TRUE(log_lines().empty());
}

TEST_F(ServiceManagerReadiness, AFailedReloadIsOneLineAndAStatusAndTheOldConfigurationServesOn) {
  std::string configuration = "old";
  signals.on_reload([&]() -> std::error_code {
    // As an application does: it checks the new configuration before it uses any of it.
    return std::make_error_code(std::errc::invalid_argument);
  });
  routes.get("/configuration",
             [&](const request&, response res) { res.send(configuration + "\n"); });
  make_server();
  run_in_background();
  EXPECT_EQ(manager.receive(), serving());
  ::kill(::getpid(), SIGHUP);
  expect_reloading(manager.receive());
  const std::string why = std::make_error_code(std::errc::invalid_argument).message();
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=reload failed: " + why);
  EXPECT_EQ(log_lines(),
            std::vector<std::string>{
                "lameduck: reload failed, still running on the old configuration: " + why});
  EXPECT_EQ(body_of(get_once(server->port(), "/configuration")), "old\n");
  EXPECT_TRUE(server->ready());
}

TEST_F(ServiceManagerReadiness, AReloadThatThrowsIsAFailedReloadWithTheExceptionsText) {
  signals.on_reload([]() -> std::error_code { throw std::runtime_error("bad line 3"); });
  make_server();
  run_in_background();
  EXPECT_EQ(manager.receive(), serving());
  ::kill(::getpid(), SIGHUP);
  expect_reloading(manager.receive());
  EXPECT_EQ(manager.receive(), "READY=1\nSTATUS=reload failed: bad line 3");
  EXPECT_EQ(status_of(get_once(server->port(), "/")), 200);
  ::kill(::getpid(), SIGTERM);
  EXPECT_EQ(manager.receive(), "STOPPING=1\nSTATUS=draining");
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 0);
}

TEST_F(ServiceManagerReadiness, AReloadBeforeTheApplicationIsReadySendsNoReady) {
  std::promise<void> reloaded;
  signals.on_reload([&]() -> std::error_code {
    reloaded.set_value();
    return {};
  });
  make_server();
  server->set_ready(false);
  run_in_background();
  EXPECT_EQ(manager.receive(), "STATUS=waiting for the application to be ready");
  ::kill(::getpid(), SIGHUP);
  ASSERT_EQ(reloaded.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(manager.receive(300ms), "") << "neither RELOADING=1 nor READY=1";
  server->set_ready(true);
  EXPECT_EQ(manager.receive(), serving());
}

}  // namespace
}  // namespace lameduck::testing
