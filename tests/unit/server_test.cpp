// server::start() on options it must refuse: errc::invalid_option, a log line and an exception
// text that name the option, and nothing bound or started. (The lifecycle itself, through real
// connections, is in tests/integration/lifecycle_test.cpp.)

#include <lameduck/server.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace lameduck {
namespace {

using namespace std::chrono_literals;

struct bad_option {
  const char* named;  // what the message must contain
  std::function<void(server_options&)> set;
};

class InvalidOption : public ::testing::TestWithParam<bad_option> {};

TEST_P(InvalidOption, IsRefusedByStartWithItsName) {
  server_options options;
  options.listen = {"127.0.0.1:0"};
  std::vector<std::string> logged;
  options.log = [&](std::string_view line) { logged.emplace_back(line); };
  GetParam().set(options);
  server s(options, [](const request&, response res) { res.send("x"); });
  std::error_code ec;
  s.start(ec);
  EXPECT_EQ(ec, make_error_code(errc::invalid_option));
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find(GetParam().named), std::string::npos) << logged[0];
  EXPECT_FALSE(s.ready());
  EXPECT_TRUE(s.local_addresses().empty()) << "nothing is bound";
  try {
    s.start();
    ADD_FAILURE() << "start() did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), make_error_code(errc::invalid_option));
    EXPECT_NE(std::string(e.what()).find(GetParam().named), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Server, InvalidOption,
    ::testing::Values(
        bad_option{"timeouts.header is negative", [](auto& o) { o.timeouts.header = -1ms; }},
        bad_option{"timeouts.linger is negative", [](auto& o) { o.timeouts.linger = -5s; }},
        bad_option{"listen address \"=127.0.0.1:0\" has an invalid name",
                   [](auto& o) { o.listen = {"=127.0.0.1:0"}; }},
        bad_option{"listen address \"a b=127.0.0.1:0\" has an invalid name",
                   [](auto& o) { o.listen = {"a b=127.0.0.1:0"}; }},
        bad_option{"the name \"http\" is given to two listen addresses",
                   [](auto& o) {
                     o.listen = {"http=127.0.0.1:0"};
                     o.health = {"/readyz", "", {"http=127.0.0.1:0"}};
                   }},
        bad_option{"timeouts.min_body_rate.grace is negative",
                   [](auto& o) { o.timeouts.min_body_rate.grace = -1s; }},
        bad_option{"timeouts.min_response_rate.grace is negative",
                   [](auto& o) { o.timeouts.min_response_rate.grace = -1s; }},
        bad_option{"drain.lame_duck_delay is negative",
                   [](auto& o) { o.drain.lame_duck_delay = -1ms; }},
        bad_option{"limits.max_connections is 0", [](auto& o) { o.limits.max_connections = 0; }},
        bad_option{"limits.max_header_bytes is 0", [](auto& o) { o.limits.max_header_bytes = 0; }},
        bad_option{"threads is 100000", [](auto& o) { o.threads = 100000; }},
        bad_option{"backlog is 0", [](auto& o) { o.backlog = 0; }},
        bad_option{"health.readiness_path \"readyz\"",
                   [](auto& o) { o.health.readiness_path = "readyz"; }},
        bad_option{"are the same path",
                   [](auto& o) { o.health.readiness_path = o.health.liveness_path = "/health"; }},
        bad_option{"health.listen is set", [](auto& o) { o.health.listen = {"127.0.0.1:0"}; }},
        bad_option{"health.metrics_path \"metrics\" does not start with '/'",
                   [](auto& o) { o.health.metrics_path = "metrics"; }},
        bad_option{"health.readiness_path and health.metrics_path are the same path",
                   [](auto& o) { o.health.readiness_path = o.health.metrics_path = "/x"; }},
        bad_option{"health.liveness_path and health.metrics_path are the same path",
                   [](auto& o) { o.health.liveness_path = o.health.metrics_path = "/x"; }}));

TEST(Server, ValidOptionsStart) {
  server_options options;
  options.listen = {"127.0.0.1:0"};
  options.threads = 1;
  options.timeouts.idle = 0ms;  // zero disables a timeout: valid
  options.limits.max_body_bytes = 0;
  options.health = {"/readyz", "/livez", {}};
  server s(options, [](const request&, response res) { res.send("x"); });
  std::error_code ec;
  s.start(ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(s.ready());
  EXPECT_TRUE(s.destroy().get().graceful);
}

TEST(Server, AHealthListenerWithOnlyTheMetricsPathStarts) {
  server_options options;
  options.listen = {"127.0.0.1:0"};
  options.threads = 1;
  options.health.listen = {"127.0.0.1:0"};
  options.health.metrics_path = "/metrics";
  server s(options, [](const request&, response res) { res.send("x"); });
  std::error_code ec;
  s.start(ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(s.local_addresses().size(), 2u);
  EXPECT_TRUE(s.destroy().get().graceful);
}

}  // namespace
}  // namespace lameduck
