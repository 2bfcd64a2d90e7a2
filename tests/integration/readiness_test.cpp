// The application's readiness (server::set_ready, add_readiness_check,
// when_ready) through every phase of a server: a server in this process, real
// probes on 127.0.0.1.

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
    routes.get("/", [](const request &, response res) { res.send("hello\n"); });
  }
  void make_server() {
    server = std::make_unique<lameduck::server>(options, routes);
  }
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
  options.drain.lame_duck_delay =
      10s; // draining, yet still listening for the probe
  make_server();
  server->set_ready(false); // before start: the pool is not up yet
  server->start();
  EXPECT_EQ(probe(), 503);
  EXPECT_FALSE(server->ready());
  EXPECT_EQ(status_of(get_once(server->port(), "/livez")), 200)
      << "alive all the same";
  EXPECT_EQ(status_of(get_once(server->port(), "/")), 200) << "and serving";
  server->set_ready(true);
  EXPECT_EQ(probe(), 200);
  EXPECT_TRUE(server->ready());
  server->set_ready(false); // the pool went away
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
    if (std::this_thread::get_id() == test_thread)
      ++asked_here;
    if (throw_now)
      throw std::runtime_error("on purpose");
    return pool_up.load();
  });
  server->add_readiness_check([] { return true; }); // several: all must pass
  EXPECT_FALSE(server->ready());
  EXPECT_EQ(asked, 0) << "not asked before the server runs";
  server->start();
  EXPECT_EQ(probe(), 503);
  pool_up = true;
  EXPECT_EQ(probe(), 200);
  pool_up = false; // went away
  EXPECT_EQ(probe(), 503);
  pool_up = true;
  throw_now = true;
  EXPECT_EQ(probe(), 503) << "a check that throws says no";
  throw_now = false;
  EXPECT_EQ(probe(), 200);
  EXPECT_EQ(asked_here, 0) << "every probe's check ran on the loop thread";
  EXPECT_TRUE(server->ready()); // ready() asks on the caller's thread
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
    if (++calls == 1)
      first.set_value();
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
  EXPECT_FALSE(*called);
}

} // namespace
} // namespace lameduck::testing
