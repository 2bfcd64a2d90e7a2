// A stop you can watch: each phase of a stop writes one line to server_options::log (the
// order, what the drain found when it began, the deadline, the end), in order and with the
// figures of the moment, in the format server_options::log_format asks for. A server in this
// process, real connections on 127.0.0.1, a handler that holds its response until told.

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <lameduck/lameduck.hpp>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

class StopLog : public ::testing::Test {
 protected:
  StopLog() {
    options.listen = {"127.0.0.1:0"};
    options.threads = 1;  // every connection on one loop: the figures are exact
    options.log = [this](std::string_view line) {
      std::lock_guard lock(mutex);
      logged.emplace_back(line);
    };
    routes.get("/", [](const request&, response res) { res.send("hello\n"); });
    // Holds its response until release() (or the stop token, at a forced stop).
    routes.get("/hold", [this](const request&, response res) {
      std::lock_guard lock(mutex);
      held.emplace(std::move(res));
      held_arrived.set_value();
    });
  }
  void start() {
    server = std::make_unique<lameduck::server>(options, routes);
    server->start();
  }
  void release() {
    std::lock_guard lock(mutex);
    held->send("released\n");
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex);
    return logged;
  }
  // An idle keep-alive connection and one whose request the handler holds.
  void open_idle_and_active() {
    idle = std::make_unique<raw_client>(server->port());
    idle->send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(status_of(idle->read_response()), 200);
    active = std::make_unique<raw_client>(server->port());
    active->send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_EQ(held_arrived.get_future().wait_for(10s), std::future_status::ready);
  }

  lameduck::server_options options;
  lameduck::router routes;
  std::mutex mutex;
  std::vector<std::string> logged;
  // After what its log writes to: its stop writes lines.
  std::unique_ptr<lameduck::server> server;
  std::optional<response> held;
  std::promise<void> held_arrived;
  std::unique_ptr<raw_client> idle, active;
};

constexpr const char* one_active_one_idle =
    "open: 0 fresh, 1 active, 1 idle, 0 upgraded, 0 closing";

TEST_F(StopLog, AGracefulDrainWritesItsOrderWhatItFoundAndItsEndInOrder) {
  options.drain.lame_duck_delay = 200ms;
  start();
  open_idle_and_active();
  auto stopped = server->shutdown(10s);
  EXPECT_TRUE(idle->closed_within(5s));  // after the lame-duck delay
  release();
  EXPECT_EQ(status_of(active->read_response()), 200);
  active->shutdown_write();
  idle->shutdown_write();
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  const auto got = lines();
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_TRUE(got[0].starts_with("lameduck: drain ordered with a deadline of 10.0")) << got[0];
  EXPECT_TRUE(got[0].ends_with("a lame-duck delay of 0.200 s and an idle grace of 0.000 s; " +
                               std::string(one_active_one_idle)))
      << got[0];
  EXPECT_EQ(got[1],
            "lameduck: lame-duck delay over, draining; " + std::string(one_active_one_idle));
  EXPECT_TRUE(got[2].starts_with("lameduck: stopped gracefully in ")) << got[2];
  EXPECT_TRUE(got[2].ends_with(
      ": 1 requests completed, 0 aborted; closed 0 fresh, 1 active, 1 idle, 0 upgraded, "
      "0 closing"))
      << got[2];
}

TEST_F(StopLog, ADeadlineThatPassesWritesItsLineAndAForcedEnd) {
  start();
  open_idle_and_active();
  auto stopped = server->shutdown(300ms);  // the held response never comes
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  const auto got = lines();
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_TRUE(got[0].starts_with("lameduck: drain ordered with a deadline of 0.3")) << got[0];
  EXPECT_TRUE(got[0].ends_with(one_active_one_idle)) << got[0];
  // The idle connection was half-closed at the drain's start and lingers (its client has not
  // closed); the active one is still waiting for its handler.
  EXPECT_EQ(got[1],
            "lameduck: drain deadline passed, closing what is left by force; open: 0 fresh, "
            "1 active, 0 idle, 0 upgraded, 1 closing");
  EXPECT_TRUE(got[2].starts_with("lameduck: stopped by force in ")) << got[2];
  EXPECT_TRUE(
      got[2].ends_with(": 0 requests completed, 1 aborted; closed 0 fresh, 1 active, "
                       "1 idle, 0 upgraded, 0 closing"))
      << got[2];
}

TEST_F(StopLog, StopAcceptingThenDestroyEachWriteTheirOrderAndDestroyItsEnd) {
  start();
  open_idle_and_active();
  server->stop_accepting().wait();
  auto stopped = server->destroy();
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  const auto got = lines();
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0],
            "lameduck: stop_accepting ordered: the listeners close, open connections go on; " +
                std::string(one_active_one_idle));
  EXPECT_EQ(got[1], "lameduck: destroy ordered: every connection closes now; " +
                        std::string(one_active_one_idle));
  EXPECT_TRUE(got[2].starts_with("lameduck: stopped by force in ")) << got[2];
}

TEST_F(StopLog, AVerbThatChangesNothingWritesNothingAShorterDeadlineOneLine) {
  start();
  open_idle_and_active();
  server->close();
  server->close();
  server->shutdown(20s);  // a deadline where there was none
  server->shutdown(30s);  // a longer one changes nothing
  release();
  EXPECT_EQ(status_of(active->read_response()), 200);
  active->shutdown_write();
  idle->shutdown_write();
  ASSERT_EQ(server->close().wait_for(10s), std::future_status::ready);
  const auto got = lines();
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_TRUE(got[0].starts_with("lameduck: drain ordered with no deadline, ")) << got[0];
  EXPECT_TRUE(got[1].starts_with("lameduck: drain deadline shortened: now a deadline of "))
      << got[1];
  // The idle connection is idle or closing by then, depending on whether the loop has seen
  // the drain yet.
  EXPECT_NE(got[1].find("; open: 0 fresh, 1 active, "), std::string::npos) << got[1];
  EXPECT_TRUE(got[2].starts_with("lameduck: stopped gracefully in ")) << got[2];
}

TEST_F(StopLog, InJsonEachLineIsAnObjectWithTheFiguresAsFields) {
  options.log_format = log_format::json;
  start();
  open_idle_and_active();
  server->log("lameduck: the application's own line");
  auto stopped = server->destroy();
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  const auto got = lines();
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0], "{\"msg\":\"the application's own line\"}");
  EXPECT_EQ(got[1],
            "{\"msg\":\"destroy ordered: every connection closes now; " +
                std::string(one_active_one_idle) +
                "\",\"event\":\"stop_ordered\",\"order\":\"destroy\",\"fresh\":0,\"active\":1,"
                "\"idle\":1,\"upgraded\":0,\"closing\":0}");
  EXPECT_TRUE(got[2].starts_with("{\"msg\":\"stopped by force in ")) << got[2];
  EXPECT_NE(got[2].find("\",\"event\":\"stopped\",\"graceful\":false,\"took_s\":"),
            std::string::npos)
      << got[2];
  EXPECT_TRUE(
      got[2].ends_with(",\"requests_completed\":0,\"requests_aborted\":1,"
                       "\"closed_fresh\":0,\"closed_active\":1,\"closed_idle\":1,"
                       "\"closed_upgraded\":0,\"closed_closing\":0}"))
      << got[2];
}

TEST_F(StopLog, InLogfmtEachLineIsKeyValuePairs) {
  options.log_format = log_format::logfmt;
  options.drain.lame_duck_delay = 100ms;
  start();
  ASSERT_EQ(server->shutdown(10s).wait_for(10s), std::future_status::ready);
  const auto got = lines();
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_TRUE(got[0].starts_with("msg=\"drain ordered with a deadline of ")) << got[0];
  EXPECT_NE(got[0].find("\" event=stop_ordered order=drain deadline_s="), std::string::npos)
      << got[0];
  EXPECT_TRUE(
      got[0].ends_with(" lame_duck_delay_s=0.100 idle_grace_s=0.000 fresh=0 active=0 "
                       "idle=0 upgraded=0 closing=0"))
      << got[0];
  EXPECT_EQ(got[1],
            "msg=\"lame-duck delay over, draining; open: 0 fresh, 0 active, 0 idle, 0 upgraded, "
            "0 closing\" event=drain_began fresh=0 active=0 idle=0 upgraded=0 closing=0");
  EXPECT_NE(got[2].find(" event=stopped graceful=true took_s="), std::string::npos) << got[2];
}

}  // namespace
}  // namespace lameduck::testing
