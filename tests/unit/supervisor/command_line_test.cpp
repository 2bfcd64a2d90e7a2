// The `lameduck` command line, its TOML file and validate(): every flag and key read right,
// every mistake refused with one line that names the flag (or the file and line).
#include "command_line.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config_values.hpp"
#include "harness.hpp"

namespace lameduck::supervisor {
namespace {

using namespace std::chrono_literals;
using verb = parsed_command::verb;

parsed_command parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const auto& a : args)
    argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

// Arguments for EXPECT_ERROR, in parentheses so that their commas do not split the macro's.
template <typename... T>
std::vector<std::string> args(T&&... a) {
  return {std::string(std::forward<T>(a))...};
}

// The config_error a command line throws; a test failure when it throws none.
std::string error_of(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const config_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no config_error";
  return {};
}

// The error is one line and holds every fragment (the flag, the value, the problem).
::testing::AssertionResult one_line_naming(const std::string& message,
                                           std::initializer_list<std::string_view> fragments) {
  if (message.empty()) return ::testing::AssertionFailure() << "no message";
  if (message.find('\n') != std::string::npos) {
    return ::testing::AssertionFailure() << "more than one line: " << message;
  }
  for (auto fragment : fragments) {
    if (message.find(fragment) == std::string::npos) {
      return ::testing::AssertionFailure() << '"' << message << "\" lacks \"" << fragment << '"';
    }
  }
  return ::testing::AssertionSuccess();
}

#define EXPECT_ERROR(argv, ...) \
  EXPECT_TRUE(one_line_naming(error_of(argv), {__VA_ARGS__})) << "for " #argv

// A configuration file for one test, removed after it.
class temp_config {
 public:
  explicit temp_config(std::string_view text) : path_(lameduck::testing::temp_path("config")) {
    std::ofstream(path_) << text;
  }
  ~temp_config() { std::remove(path_.c_str()); }
  temp_config(const temp_config&) = delete;
  temp_config& operator=(const temp_config&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string config_error_of(std::string_view text) {
  try {
    auto config = parse_config(text, "lameduck.toml");
    validate(config);
  } catch (const config_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no config_error for: " << text;
  return {};
}

#define EXPECT_FILE_ERROR(text, ...) \
  EXPECT_TRUE(one_line_naming(config_error_of(text), {__VA_ARGS__})) << "for " << (text)

int online_cores() {
  return static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
}

const program_config& only_program(const parsed_command& c) {
  EXPECT_EQ(c.run.programs.size(), 1u);
  return c.run.programs.front();
}

// --- defaults and the program ---------------------------------------------------------------

TEST(CommandLine, RunWithOnlyAProgramHasEveryDefault) {
  auto c = parse({"run", "--", "/bin/app", "a", "b"});
  EXPECT_EQ(c.what, verb::run);
  const auto& p = only_program(c);
  EXPECT_EQ(p.command, (std::vector<std::string>{"/bin/app", "a", "b"}));
  EXPECT_EQ(p.name, "app");
  EXPECT_EQ(p.instances, online_cores());
  EXPECT_TRUE(p.listen.empty());
  EXPECT_TRUE(p.environment.empty());
  EXPECT_EQ(p.directory, "");
  EXPECT_EQ(p.readiness, readiness_mode::notify);
  EXPECT_EQ(p.ready_timeout, 30s);
  EXPECT_EQ(p.stop_signal, SIGTERM);
  EXPECT_EQ(p.kill_timeout, 30s);
  EXPECT_EQ(p.watchdog, 0ms);
  EXPECT_EQ(p.max_memory, 0u);
  EXPECT_EQ(p.surge, 1);
  EXPECT_EQ(p.max_unavailable, 1);
  EXPECT_EQ(p.restart, backoff_policy{});
  EXPECT_EQ(p.restart.initial, 100ms);
  EXPECT_EQ(p.restart.factor, 2.0);
  EXPECT_EQ(p.restart.max, 30s);
  EXPECT_EQ(p.restart.stable_after, 10s);
  EXPECT_EQ(p.log_dir, "");
  EXPECT_EQ(p.log_lines, 1000u);
  EXPECT_EQ(c.run.control, control_default_path());
  EXPECT_EQ(c.control, control_default_path());
  EXPECT_EQ(c.run.log_format, log_format::text);
  EXPECT_EQ(c.run.metrics_listen, "");
}

TEST(CommandLine, EverythingAfterTheSeparatorBelongsToTheProgram) {
  auto c = parse({"run", "--instances", "2", "--", "app", "--help", "--instances", "x", "--"});
  EXPECT_EQ(only_program(c).command,
            (std::vector<std::string>{"app", "--help", "--instances", "x", "--"}));
  EXPECT_EQ(only_program(c).instances, 2);
}

TEST(CommandLine, RunWithoutAProgramIsRefused) {
  EXPECT_ERROR(args("run"), "run: no program given", "lameduck run [options] -- PROGRAM");
  EXPECT_ERROR(args("run", "--instances", "2"), "run: no program given");
  EXPECT_ERROR(args("run", "--"), "run: no program given");
  EXPECT_ERROR(args("run", "--", ""), "empty");
}

TEST(CommandLine, AProgramBeforeTheSeparatorIsRefused) {
  EXPECT_ERROR(args("run", "app"), "run: unexpected argument \"app\"", "after \"--\"");
  EXPECT_ERROR(args("run", "app", "--", "other"), "\"app\"");
}

// --- every flag of run ----------------------------------------------------------------------

TEST(CommandLine, Instances) {
  EXPECT_EQ(only_program(parse({"run", "--instances", "4", "--", "a"})).instances, 4);
  EXPECT_EQ(only_program(parse({"run", "--instances=7", "--", "a"})).instances, 7);
  EXPECT_EQ(only_program(parse({"run", "--instances", "1024", "--", "a"})).instances, 1024);
  EXPECT_EQ(only_program(parse({"run", "--instances", "0", "--", "a"})).instances, online_cores());
  EXPECT_ERROR(args("run", "--instances", "x", "--", "a"), "--instances: \"x\" is not a number");
  EXPECT_ERROR(args("run", "--instances", "4x", "--", "a"), "--instances", "not a number");
  EXPECT_ERROR(args("run", "--instances", "", "--", "a"), "--instances", "not a number");
  EXPECT_ERROR(args("run", "--instances", "-1", "--", "a"), "--instances", "negative");
  EXPECT_ERROR(args("run", "--instances", "1025", "--", "a"), "--instances", "1025", "1024");
  EXPECT_ERROR(args("run", "--instances", "99999999999999999999", "--", "a"), "--instances");
}

TEST(CommandLine, AFlagWithoutItsValue) {
  EXPECT_ERROR(args("run", "--instances"), "--instances", "needs a value");
  EXPECT_ERROR(args("run", "--ready-timeout"), "--ready-timeout", "needs a value");
}

TEST(CommandLine, AFlagGivenTwiceTakesTheLastValue) {
  auto c = parse({"run", "--instances", "2", "--instances", "3", "--", "a"});
  EXPECT_EQ(only_program(c).instances, 3);
}

TEST(CommandLine, Listen) {
  auto c = parse({"run", "--listen", "127.0.0.1:8080", "--listen", "http=*:80", "--listen",
                  "[::1]:8443", "--listen", "unix=/run/app.sock", "--listen", "./rel.sock",
                  "--listen", "/run/a=b.sock", "--", "a"});
  EXPECT_EQ(only_program(c).listen, (std::vector<listen_spec>{{"", "127.0.0.1:8080"},
                                                              {"http", "*:80"},
                                                              {"", "[::1]:8443"},
                                                              {"unix", "/run/app.sock"},
                                                              {"", "./rel.sock"},
                                                              {"", "/run/a=b.sock"}}));
  EXPECT_EQ(only_program(parse({"run", "--listen", "localhost:0", "--", "a"})).listen.size(), 1u);
}

TEST(CommandLine, BadListenAddresses) {
  EXPECT_ERROR(args("run", "--listen", "nowhere", "--", "a"), "--listen", "\"nowhere\"",
               "HOST:PORT");
  EXPECT_ERROR(args("run", "--listen", "1.2.3.4:99999", "--", "a"), "--listen", "99999");
  EXPECT_ERROR(args("run", "--listen", "example.com:80", "--", "a"), "--listen", "example.com");
  EXPECT_ERROR(args("run", "--listen", "=1.2.3.4:80", "--", "a"), "--listen", "empty name");
  EXPECT_ERROR(args("run", "--listen", "web=", "--", "a"), "--listen", "empty");
  EXPECT_ERROR(args("run", "--listen", "/" + std::string(107, 'x'), "--", "a"), "--listen",
               "107 bytes");
  EXPECT_ERROR(args("run", "--listen", "a=1.2.3.4:80", "--listen", "a=1.2.3.4:81", "--", "a"),
               "--listen", "two listeners are named \"a\"");
  EXPECT_ERROR(args("run", "--listen", "1.2.3.4:80", "--listen", "1.2.3.4:80", "--", "a"),
               "--listen", "listed twice");
  EXPECT_ERROR(args("run", "--listen", "bad\tname=1.2.3.4:80", "--", "a"), "--listen",
               "LISTEN_FDNAMES");
  EXPECT_ERROR(args("run", "--listen", std::string(256, 'n') + "=1.2.3.4:80", "--", "a"),
               "--listen", "LISTEN_FDNAMES");
  // Port 0 asks the kernel for a port per bind: twice is two sockets.
  EXPECT_EQ(
      only_program(parse({"run", "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--", "a"}))
          .listen.size(),
      2u);
}

TEST(CommandLine, ReadyModes) {
  EXPECT_EQ(only_program(parse({"run", "--ready", "notify", "--", "a"})).readiness,
            readiness_mode::notify);
  auto fd = only_program(parse({"run", "--ready", "fd", "--", "a"}));
  EXPECT_EQ(fd.readiness, readiness_mode::fd);
  EXPECT_EQ(fd.ready_fd, 3);
  auto fd_after_sockets = only_program(
      parse({"run", "--ready", "fd", "--listen", "*:80", "--listen", "*:81", "--", "a"}));
  EXPECT_EQ(fd_after_sockets.ready_fd, 5);
  auto implied_fd = only_program(parse({"run", "--ready-fd", "9", "--", "a"}));
  EXPECT_EQ(implied_fd.readiness, readiness_mode::fd);
  EXPECT_EQ(implied_fd.ready_fd, 9);
  auto after = only_program(parse({"run", "--ready-after", "2s", "--", "a"}));
  EXPECT_EQ(after.readiness, readiness_mode::after);
  EXPECT_EQ(after.ready_after, 2s);
  auto explicit_after =
      only_program(parse({"run", "--ready", "after", "--ready-after", "500ms", "--", "a"}));
  EXPECT_EQ(explicit_after.ready_after, 500ms);
}

TEST(CommandLine, BadReadiness) {
  EXPECT_ERROR(args("run", "--ready", "soon", "--", "a"), "--ready", "\"soon\"", "notify, fd");
  EXPECT_ERROR(args("run", "--ready", "notify", "--ready-fd", "5", "--", "a"), "--ready-fd",
               "--ready fd");
  EXPECT_ERROR(args("run", "--ready", "fd", "--ready-after", "5s", "--", "a"), "--ready-after",
               "--ready after");
  EXPECT_ERROR(args("run", "--ready-fd", "5", "--ready-after", "5s", "--", "a"), "--ready-fd",
               "--ready-after");
  EXPECT_ERROR(args("run", "--ready-fd", "x", "--", "a"), "--ready-fd", "not a number");
  EXPECT_ERROR(args("run", "--ready-fd", "-3", "--", "a"), "--ready-fd", "negative");
  EXPECT_ERROR(args("run", "--ready-fd", "2", "--", "a"), "--ready-fd", "standard stream", "use 3");
  EXPECT_ERROR(args("run", "--listen", "*:80", "--ready-fd", "3", "--", "a"), "--ready-fd",
               "descriptors 3 to 3", "use 4");
  EXPECT_ERROR(args("run", "--ready-fd", "1024", "--", "a"), "--ready-fd", "1023");
  EXPECT_ERROR(args("run", "--ready", "after", "--", "a"), "--ready-after", "needed");
  EXPECT_ERROR(args("run", "--ready-after", "0", "--", "a"), "--ready-after", "needed");
  EXPECT_ERROR(args("run", "--ready-after", "30s", "--", "a"), "--ready-after", "--ready-timeout",
               "not shorter");
  EXPECT_ERROR(args("run", "--ready-after", "5", "--", "a"), "--ready-after",
               "\"5\" needs a unit (ms, s, m, h)");
}

TEST(CommandLine, Durations) {
  auto p = only_program(parse({"run", "--ready-timeout", "1.5s", "--kill-timeout", "2m",
                               "--watchdog", "250ms", "--restart-delay", "1s", "--restart-max",
                               "1h", "--restart-reset", "0.5m", "--", "a"}));
  EXPECT_EQ(p.ready_timeout, 1500ms);
  EXPECT_EQ(p.kill_timeout, 2min);
  EXPECT_EQ(p.watchdog, 250ms);
  EXPECT_EQ(p.restart.initial, 1s);
  EXPECT_EQ(p.restart.max, 1h);
  EXPECT_EQ(p.restart.stable_after, 30s);
  EXPECT_EQ(only_program(parse({"run", "--watchdog", "0", "--", "a"})).watchdog, 0ms);
  EXPECT_EQ(only_program(parse({"run", "--kill-timeout", "0s", "--", "a"})).kill_timeout, 0ms);
}

TEST(CommandLine, BadDurationsNameTheirFlag) {
  for (std::string flag : {"--ready-after", "--ready-timeout", "--kill-timeout", "--watchdog",
                           "--restart-delay", "--restart-max", "--restart-reset"}) {
    EXPECT_ERROR(args("run", flag, "5", "--", "a"), flag + ": \"5\" needs a unit (ms, s, m, h)",
                 "e.g. 5s");
    EXPECT_ERROR(args("run", flag, "5d", "--", "a"), flag + ": ", "unknown unit \"d\"");
    EXPECT_ERROR(args("run", flag, "-5s", "--", "a"), flag + ": ", "negative");
    EXPECT_ERROR(args("run", flag, "s", "--", "a"), flag + ": ", "not a duration");
    EXPECT_ERROR(args("run", flag, "1.5ms", "--", "a"), flag + ": ", "whole number of milli");
    EXPECT_ERROR(args("run", flag, "1.2.3s", "--", "a"), flag + ": ", "not a duration");
    EXPECT_ERROR(args("run", flag, "99999999999999999999h", "--", "a"), flag + ": ", "longer");
    EXPECT_ERROR(args("run", flag, "9000h", "--", "a"), flag + ": ", "longer than 8760h");
    EXPECT_ERROR(args("run", flag, "5 s", "--", "a"), flag + ": ");
  }
  EXPECT_ERROR(args("run", "--ready-timeout", "0", "--", "a"), "--ready-timeout", "longer than 0");
}

TEST(CommandLine, StopSignal) {
  struct {
    const char* text;
    int signal;
  } cases[] = {{"TERM", SIGTERM}, {"SIGTERM", SIGTERM}, {"INT", SIGINT},   {"SIGINT", SIGINT},
               {"QUIT", SIGQUIT}, {"HUP", SIGHUP},      {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
               {"usr2", SIGUSR2}, {"WINCH", SIGWINCH},  {"10", 10},        {"64", 64}};
  for (const auto& c : cases) {
    EXPECT_EQ(only_program(parse({"run", "--stop-signal", c.text, "--", "a"})).stop_signal,
              c.signal)
        << c.text;
  }
  EXPECT_ERROR(args("run", "--stop-signal", "TERMINATE", "--", "a"), "--stop-signal",
               "\"TERMINATE\" is not a signal");
  EXPECT_ERROR(args("run", "--stop-signal", "SIG", "--", "a"), "--stop-signal", "not a signal");
  EXPECT_ERROR(args("run", "--stop-signal", "0", "--", "a"), "--stop-signal", "1 to 64");
  EXPECT_ERROR(args("run", "--stop-signal", "65", "--", "a"), "--stop-signal", "1 to 64");
  EXPECT_ERROR(args("run", "--stop-signal", "KILL", "--", "a"), "--stop-signal", "KILL");
  EXPECT_ERROR(args("run", "--stop-signal", "9", "--", "a"), "--stop-signal", "KILL");
  EXPECT_ERROR(args("run", "--stop-signal", "SIGSTOP", "--", "a"), "--stop-signal", "STOP");
}

TEST(CommandLine, MaxMemory) {
  struct {
    const char* text;
    std::uint64_t bytes;
  } cases[] = {{"512M", 512ull << 20},
               {"1G", 1ull << 30},
               {"300000K", 300000ull << 10},
               {"1048576", 1048576},
               {"2MiB", 2ull << 20},
               {"3GiB", 3ull << 30},
               {"4KiB", 4096},
               {"0", 0},
               {"16g", 16ull << 30}};
  for (const auto& c : cases) {
    EXPECT_EQ(only_program(parse({"run", "--max-memory", c.text, "--", "a"})).max_memory, c.bytes)
        << c.text;
  }
  EXPECT_ERROR(args("run", "--max-memory", "lots", "--", "a"), "--max-memory", "not a size");
  EXPECT_ERROR(args("run", "--max-memory", "1.5G", "--", "a"), "--max-memory", "unknown unit");
  EXPECT_ERROR(args("run", "--max-memory", "5T", "--", "a"), "--max-memory", "unknown unit \"T\"");
  EXPECT_ERROR(args("run", "--max-memory", "-1M", "--", "a"), "--max-memory", "not a size");
  EXPECT_ERROR(args("run", "--max-memory", "99999999999999G", "--", "a"), "--max-memory",
               "too large");
}

TEST(CommandLine, ReloadPacing) {
  auto p = only_program(parse({"run", "--surge", "3", "--max-unavailable", "2", "--", "a"}));
  EXPECT_EQ(p.surge, 3);
  EXPECT_EQ(p.max_unavailable, 2);
  EXPECT_ERROR(args("run", "--surge", "0", "--", "a"), "--surge", "less than 1");
  EXPECT_ERROR(args("run", "--surge", "many", "--", "a"), "--surge", "not a number");
  EXPECT_ERROR(args("run", "--max-unavailable", "0", "--", "a"), "--max-unavailable",
               "less than 1");
  EXPECT_ERROR(args("run", "--max-unavailable", "1e3", "--", "a"), "--max-unavailable",
               "not a number");
}

TEST(CommandLine, RestartPolicy) {
  auto p = only_program(parse({"run", "--restart-delay", "250ms", "--restart-factor", "1.5",
                               "--restart-max", "1m", "--restart-reset", "20s", "--", "a"}));
  EXPECT_EQ(p.restart, (backoff_policy{250ms, 1.5, 60s, 20s}));
  EXPECT_EQ(only_program(parse({"run", "--restart-factor", "1", "--", "a"})).restart.factor, 1.0);
  EXPECT_ERROR(args("run", "--restart-factor", "0.5", "--", "a"), "--restart-factor", "at least 1");
  EXPECT_ERROR(args("run", "--restart-factor", "x", "--", "a"), "--restart-factor", "not a number");
  EXPECT_ERROR(args("run", "--restart-factor", "inf", "--", "a"), "--restart-factor",
               "not a number");
  EXPECT_ERROR(args("run", "--restart-factor", "nan", "--", "a"), "--restart-factor",
               "not a number");
  EXPECT_ERROR(args("run", "--restart-delay", "1m", "--restart-max", "30s", "--", "a"),
               "--restart-delay", "--restart-max", "longer");
}

TEST(CommandLine, Logs) {
  auto p =
      only_program(parse({"run", "--log-dir", "/var/log/app", "--log-lines", "5000", "--", "a"}));
  EXPECT_EQ(p.log_dir, "/var/log/app");
  EXPECT_EQ(p.log_lines, 5000u);
  EXPECT_EQ(only_program(parse({"run", "--log-lines", "0", "--", "a"})).log_lines, 0u);
  EXPECT_ERROR(args("run", "--log-lines", "1000001", "--", "a"), "--log-lines", "1000000");
  EXPECT_ERROR(args("run", "--log-lines", "-5", "--", "a"), "--log-lines", "negative");
  EXPECT_ERROR(args("run", "--log-lines", "many", "--", "a"), "--log-lines", "not a number");
}

TEST(CommandLine, LogFormat) {
  EXPECT_EQ(parse({"run", "--log-format", "json", "--", "a"}).run.log_format, log_format::json);
  EXPECT_EQ(parse({"run", "--log-format", "logfmt", "--", "a"}).run.log_format, log_format::logfmt);
  EXPECT_EQ(parse({"run", "--log-format", "text", "--", "a"}).run.log_format, log_format::text);
  EXPECT_ERROR(args("run", "--log-format", "xml", "--", "a"), "--log-format",
               "\"xml\" is not a log format (text, logfmt or json)");
}

TEST(CommandLine, MetricsListen) {
  EXPECT_EQ(parse({"run", "--metrics-listen", "127.0.0.1:9100", "--", "a"}).run.metrics_listen,
            "127.0.0.1:9100");
  EXPECT_EQ(parse({"run", "--metrics-listen", "[::1]:0", "--", "a"}).run.metrics_listen, "[::1]:0");
  EXPECT_ERROR(args("run", "--metrics-listen", "nowhere", "--", "a"),
               "--metrics-listen (metrics_listen) \"nowhere\" is not HOST:PORT");
  EXPECT_ERROR(args("run", "--metrics-listen", "/run/m.sock", "--", "a"), "--metrics-listen",
               "not HOST:PORT");
}

TEST(CommandLine, EnvironmentDirectoryAndName) {
  auto p = only_program(parse({"run", "--env", "A=1", "--env", "B=x=y", "--env", "EMPTY=", "--env",
                               "A=2", "--directory", "/srv", "--name", "web-1.a_b", "--", "a"}));
  EXPECT_EQ(p.environment,
            (std::map<std::string, std::string>{{"A", "2"}, {"B", "x=y"}, {"EMPTY", ""}}));
  EXPECT_EQ(p.directory, "/srv");
  EXPECT_EQ(p.name, "web-1.a_b");
  EXPECT_ERROR(args("run", "--env", "NOVALUE", "--", "a"), "--env", "NAME=VALUE");
  EXPECT_ERROR(args("run", "--env", "=1", "--", "a"), "--env", "empty name");
  EXPECT_ERROR(args("run", "--name", "two words", "--", "a"), "--name", "not a name");
  EXPECT_ERROR(args("run", "--name", "a/b", "--", "a"), "--name", "not a name");
  EXPECT_ERROR(args("run", "--name", "", "--", "a"), "--name", "not a name");
  EXPECT_ERROR(args("run", "--name", std::string(65, 'n'), "--", "a"), "--name", "at most 64");
}

TEST(CommandLine, Control) {
  EXPECT_EQ(parse({"run", "--control", "/tmp/c.sock", "--", "a"}).run.control, "/tmp/c.sock");
  EXPECT_EQ(parse({"run", "--control", "/tmp/c.sock", "--", "a"}).control, "/tmp/c.sock");
  EXPECT_ERROR(args("run", "--control", "/" + std::string(200, 'c'), "--", "a"), "--control",
               "107 bytes");
}

TEST(CommandLine, UnknownOptionsAndCommands) {
  EXPECT_ERROR(args("run", "--instnces", "4", "--", "a"), "run: unknown option \"--instnces\"");
  EXPECT_ERROR(args("run", "--instnces=4", "--", "a"), "run: unknown option \"--instnces=4\"");
  EXPECT_ERROR(args("frobnicate"), "unknown command \"frobnicate\"", "run, status");
  EXPECT_ERROR(args("--bogus"), "unknown option \"--bogus\"");
  EXPECT_ERROR(args("status", "--bogus"), "status: unknown option \"--bogus\"");
  EXPECT_ERROR(args("status", "extra"), "status: unexpected argument \"extra\"");
  EXPECT_ERROR(args("status", "stop"), "status: unexpected argument \"stop\"");
  EXPECT_ERROR(args("status", "--", "x"), "status: nothing may follow \"--\"");
  EXPECT_ERROR(args("--", "x"), "no command before \"--\"");
  EXPECT_ERROR(args("stop", "now\nplease"), "stop: unexpected argument \"now\\nplease\"");
}

// --- the other verbs ------------------------------------------------------------------------

TEST(CommandLine, Status) {
  auto c = parse({"status"});
  EXPECT_EQ(c.what, verb::status);
  EXPECT_FALSE(c.json);
  EXPECT_EQ(c.control, control_default_path());
  auto json = parse({"status", "--json", "--control", "/tmp/x.sock"});
  EXPECT_TRUE(json.json);
  EXPECT_EQ(json.control, "/tmp/x.sock");
}

TEST(CommandLine, Reload) {
  auto c = parse({"reload"});
  EXPECT_EQ(c.what, verb::reload);
  EXPECT_FALSE(c.wait);
  EXPECT_EQ(c.program, "");
  auto w = parse({"reload", "--wait", "--program", "web", "--control", "/c"});
  EXPECT_TRUE(w.wait);
  EXPECT_EQ(w.program, "web");
  EXPECT_EQ(w.control, "/c");
  EXPECT_ERROR(args("reload", "--program"), "--program", "needs a value");
}

TEST(CommandLine, StopAndUpgrade) {
  EXPECT_EQ(parse({"stop"}).what, verb::stop);
  EXPECT_EQ(parse({"stop", "--control", "/c"}).control, "/c");
  EXPECT_EQ(parse({"upgrade"}).what, verb::upgrade);
  EXPECT_EQ(parse({"upgrade", "--control", "/u"}).control, "/u");
}

TEST(CommandLine, Scale) {
  auto c = parse({"scale", "4"});
  EXPECT_EQ(c.what, verb::scale);
  EXPECT_EQ(c.instances, 4);
  auto p = parse({"scale", "8", "--program", "web", "--control", "/s"});
  EXPECT_EQ(p.instances, 8);
  EXPECT_EQ(p.program, "web");
  EXPECT_EQ(p.control, "/s");
  EXPECT_EQ(parse({"scale", "0"}).instances, online_cores());
  EXPECT_ERROR(args("scale"), "scale:", "lameduck scale N");
  EXPECT_ERROR(args("scale", "x"), "scale: \"x\" is not a number");
  EXPECT_ERROR(args("scale", "-1"), "scale:", "negative");
  EXPECT_ERROR(args("scale", "1025"), "scale:", "1024");
  EXPECT_ERROR(args("scale", "2", "3"), "scale: unexpected argument \"3\"");
}

TEST(CommandLine, LogsVerb) {
  auto c = parse({"logs"});
  EXPECT_EQ(c.what, verb::logs);
  EXPECT_FALSE(c.follow);
  EXPECT_EQ(c.lines, 100u);
  EXPECT_FALSE(c.worker.has_value());
  auto all =
      parse({"logs", "-f", "-n", "50", "--worker", "2", "--program", "web", "--control", "/l"});
  EXPECT_TRUE(all.follow);
  EXPECT_EQ(all.lines, 50u);
  EXPECT_EQ(all.worker, 2);
  EXPECT_EQ(all.program, "web");
  EXPECT_EQ(all.control, "/l");
  auto longer = parse({"logs", "--follow", "--lines", "7"});
  EXPECT_TRUE(longer.follow);
  EXPECT_EQ(longer.lines, 7u);
  EXPECT_ERROR(args("logs", "-n", "x"), "--lines", "not a number");
  EXPECT_ERROR(args("logs", "--lines", "2000000"), "--lines", "1000000");
  EXPECT_ERROR(args("logs", "--worker", "x"), "--worker", "not a number");
  EXPECT_ERROR(args("logs", "--worker", "1024"), "--worker", "1023");
}

// --- help and version -----------------------------------------------------------------------

TEST(CommandLine, HelpWithoutArgumentsOrWhenAskedAnywhere) {
  for (auto args : std::vector<std::vector<std::string>>{
           {}, {"--help"}, {"-h"}, {"run", "--help"}, {"run", "--bogus", "-h"}, {"status", "-h"}}) {
    std::vector<const char*> argv;
    for (const auto& a : args)
      argv.push_back(a.c_str());
    auto c = parse_command_line(static_cast<int>(argv.size()), argv.data());
    EXPECT_EQ(c.what, verb::help);
    EXPECT_NE(c.help.find("lameduck"), std::string::npos) << c.help;
  }
  EXPECT_NE(parse({"--help"}).help.find("status"), std::string::npos);
  EXPECT_NE(parse({"run", "--help"}).help.find("--max-memory"), std::string::npos);
  EXPECT_NE(parse({"logs", "--help"}).help.find("--follow"), std::string::npos);
  EXPECT_EQ(parse_command_line(0, nullptr).what, verb::help);
}

TEST(CommandLine, Version) {
  auto c = parse({"--version"});
  EXPECT_EQ(c.what, verb::help);
  EXPECT_EQ(c.help.rfind("lameduck ", 0), 0u) << c.help;
  EXPECT_NE(c.help.find('.'), std::string::npos) << c.help;
}

// --- the configuration file -----------------------------------------------------------------

constexpr std::string_view full_program = R"(
control = "/tmp/full.sock"
log_format = "logfmt"
metrics_listen = "127.0.0.1:9100"
[program]
name = "web"
command = ["/bin/web", "--port", "8080"]
instances = 3
listen = ["http=127.0.0.1:8080", "/tmp/web.sock"]
environment = { A = "1", B = "two" }
directory = "/srv"
ready = "fd"
ready_fd = 7
ready_timeout = "20s"
stop_signal = "QUIT"
kill_timeout = 45000
watchdog = "10s"
max_memory = "512M"
surge = 2
max_unavailable = 3
restart = { delay = "1s", factor = 1.5, max = "1m", reset = 30000 }
log_dir = "/var/log/web"
log_lines = 2000
)";

TEST(ConfigFile, EveryKey) {
  auto config = parse_config(full_program, "full.toml");
  validate(config);
  EXPECT_EQ(config.control, "/tmp/full.sock");
  EXPECT_EQ(config.log_format, log_format::logfmt);
  EXPECT_EQ(config.metrics_listen, "127.0.0.1:9100");
  ASSERT_EQ(config.programs.size(), 1u);
  const auto& p = config.programs[0];
  EXPECT_EQ(p.name, "web");
  EXPECT_EQ(p.command, (std::vector<std::string>{"/bin/web", "--port", "8080"}));
  EXPECT_EQ(p.instances, 3);
  EXPECT_EQ(p.listen,
            (std::vector<listen_spec>{{"http", "127.0.0.1:8080"}, {"", "/tmp/web.sock"}}));
  EXPECT_EQ(p.environment, (std::map<std::string, std::string>{{"A", "1"}, {"B", "two"}}));
  EXPECT_EQ(p.directory, "/srv");
  EXPECT_EQ(p.readiness, readiness_mode::fd);
  EXPECT_EQ(p.ready_fd, 7);
  EXPECT_EQ(p.ready_timeout, 20s);
  EXPECT_EQ(p.stop_signal, SIGQUIT);
  EXPECT_EQ(p.kill_timeout, 45s);
  EXPECT_EQ(p.watchdog, 10s);
  EXPECT_EQ(p.max_memory, 512ull << 20);
  EXPECT_EQ(p.surge, 2);
  EXPECT_EQ(p.max_unavailable, 3);
  EXPECT_EQ(p.restart, (backoff_policy{1s, 1.5, 60s, 30s}));
  EXPECT_EQ(p.log_dir, "/var/log/web");
  EXPECT_EQ(p.log_lines, 2000u);
}

TEST(ConfigFile, MinimalProgramHasTheDefaults) {
  auto config = parse_config("[program]\ncommand = [\"/bin/app\"]\n", "x.toml");
  program_config expected;
  expected.command = {"/bin/app"};
  EXPECT_EQ(config.programs, std::vector<program_config>{expected});
  EXPECT_EQ(config.control, "");
  validate(config);
  EXPECT_EQ(config.control, control_default_path());
}

TEST(ConfigFile, OtherSpellingsOfValues) {
  auto config = parse_config(R"(
[program]
command = ["a"]
stop_signal = 10
max_memory = 1048576
ready_after = 1500
ready_timeout = "2s"
[program.restart]
factor = 3
delay = 0
)",
                             "x.toml");
  validate(config);
  const auto& p = config.programs[0];
  EXPECT_EQ(p.stop_signal, 10);
  EXPECT_EQ(p.max_memory, 1048576u);
  EXPECT_EQ(p.readiness, readiness_mode::after);
  EXPECT_EQ(p.ready_after, 1500ms);
  EXPECT_EQ(p.restart.factor, 3.0);
  EXPECT_EQ(p.restart.initial, 0ms);
}

TEST(ConfigFile, SeveralPrograms) {
  auto config = parse_config(R"(
[[program]]
name = "web"
command = ["/bin/web"]
listen = ["127.0.0.1:80"]
[[program]]
name = "worker"
command = ["/bin/worker", "-v"]
instances = 2
)",
                             "x.toml");
  validate(config);
  ASSERT_EQ(config.programs.size(), 2u);
  EXPECT_EQ(config.programs[0].name, "web");
  EXPECT_EQ(config.programs[1].name, "worker");
  EXPECT_EQ(config.programs[1].command, (std::vector<std::string>{"/bin/worker", "-v"}));
  EXPECT_EQ(config.programs[1].instances, 2);
}

TEST(ConfigFile, SeveralProgramsNeedUniqueNames) {
  EXPECT_FILE_ERROR("[[program]]\ncommand=[\"a\"]\n[[program]]\ncommand=[\"b\"]\n",
                    "two programs are named \"app\"");
  EXPECT_FILE_ERROR(
      "[[program]]\nname=\"x\"\ncommand=[\"a\"]\n[[program]]\nname=\"x\"\ncommand=[\"b\"]\n",
      "two programs are named \"x\"");
  // With several programs, a message says which one.
  EXPECT_FILE_ERROR(
      "[[program]]\nname=\"x\"\ncommand=[\"a\"]\n[[program]]\nname=\"y\"\ncommand=[\"b\"]\n"
      "surge=0\n",
      "program \"y\": ", "--surge (surge)");
  EXPECT_FILE_ERROR(
      "[[program]]\nname=\"x\"\ncommand=[\"a\"]\nlisten=[\"*:80\"]\n"
      "[[program]]\nname=\"y\"\ncommand=[\"b\"]\nlisten=[\"0.0.0.0:80\"]\n",
      "program \"y\": ", "listed twice", "also in program \"x\"");
}

TEST(ConfigFile, UnknownKeysNameTheKeyAndLine) {
  EXPECT_FILE_ERROR("[program]\ncommand = [\"a\"]\n\ninstnces = 4\n",
                    "lameduck.toml:4: unknown key \"instnces\" in [program]");
  EXPECT_FILE_ERROR("[[program]]\ncommand = [\"a\"]\nsurje = 4\n",
                    "lameduck.toml:3: unknown key \"surje\" in [[program]]");
  EXPECT_FILE_ERROR("[program]\ncommand = [\"a\"]\nrestart = { dealy = \"1s\" }\n",
                    "lameduck.toml:3: unknown key \"dealy\" in [program.restart]");
  EXPECT_FILE_ERROR("controll = \"/x\"\n[program]\ncommand = [\"a\"]\n",
                    "lameduck.toml:1: unknown key \"controll\"");
}

TEST(ConfigFile, SyntaxErrorsQuoteTomlWithTheLine) {
  EXPECT_FILE_ERROR("[program]\ncommand = [\"a\"\n", "lameduck.toml:2: ");
  EXPECT_FILE_ERROR("[program\n", "lameduck.toml:1: ");
  EXPECT_FILE_ERROR("[program]\ncommand = [\"a\"]\ncommand = [\"b\"]\n", "lameduck.toml:3: ");
  EXPECT_FILE_ERROR("\xff\xfe", "lameduck.toml:1: ");
}

TEST(ConfigFile, WrongShapes) {
  EXPECT_FILE_ERROR("", "lameduck.toml: no [program]");
  EXPECT_FILE_ERROR("control = \"/c\"\n", "no [program]");
  EXPECT_FILE_ERROR("log_format = \"xml\"\n[program]\ncommand = [\"a\"]\n",
                    "lameduck.toml:1: ", "log_format: \"xml\" is not a log format");
  EXPECT_FILE_ERROR("program = 5\n", "lameduck.toml:1: ", "[program] must be a table");
  EXPECT_FILE_ERROR("program = []\n", "empty");
  EXPECT_FILE_ERROR("program = [1]\n", "[[program]] must be a table");
  EXPECT_FILE_ERROR("control = 1\n[program]\ncommand=[\"a\"]\n",
                    ":1: ", "control must be a string");
  EXPECT_FILE_ERROR("[program]\nname = \"x\"\n", "lameduck.toml:1: ", "has no command");
  EXPECT_FILE_ERROR("[program]\ncommand = []\n", ":2: ", "command is empty");
  EXPECT_FILE_ERROR("[program]\ncommand = \"/bin/app\"\n", ":2: ", "array of strings");
  EXPECT_FILE_ERROR("[program]\ncommand = [\"a\", 1]\n", ":2: ", "command must be a string");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\ninstances = \"4\"\n",
                    ":3: ", "instances must be an integer");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\ninstances = -4\n", ":3: ", "negative");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\ninstances = 4000000000\n", ":3: ", "more than");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\ninstances = 2000\n", "--instances (instances)",
                    "more than 1024");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nlisten = \"*:80\"\n", ":3: ", "listen must be");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nlisten = [\"=*:80\"]\n",
                    ":3: ", "listen: ", "empty name");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nlisten = [\"nowhere\"]\n", "listen",
                    "\"nowhere\"");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nenvironment = [\"A=1\"]\n",
                    ":3: ", "environment must be a table");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nenvironment = { A = 1 }\n",
                    ":3: ", "environment.A must be a string");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nenvironment = { \"A=B\" = \"1\" }\n",
                    "--env (environment)", "not a variable name");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nready = \"later\"\n",
                    ":3: ", "ready: ", "not a readiness mode");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nready = \"notify\"\nready_fd = 5\n",
                    ":4: ", "ready_fd needs ready = \"fd\"");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nready = \"fd\"\nready_after = \"1s\"\n",
                    ":4: ", "ready_after needs ready = \"after\"");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nready_fd = 5\nready_after = \"1s\"\n",
                    ":4: ", "two readiness modes");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nready_timeout = 1.5\n",
                    ":3: ", "ready_timeout must be a duration");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nready_timeout = \"5\"\n",
                    ":3: ", "ready_timeout: \"5\" needs a unit");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nkill_timeout = -1\n", ":3: ", "negative");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nwatchdog = 99999999999999\n", ":3: ", "more than");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nstop_signal = \"TERMINATE\"\n",
                    ":3: ", "not a signal");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nstop_signal = 9\n", "--stop-signal", "KILL");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nstop_signal = true\n", ":3: ", "must be a string");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nmax_memory = \"lots\"\n", ":3: ", "not a size");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nmax_memory = -1\n", ":3: ", "negative");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nrestart = 5\n", ":3: ", "restart must be a table");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nrestart = { factor = \"2\" }\n",
                    ":3: ", "restart.factor must be a number");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nrestart = { factor = nan }\n",
                    ":3: ", "restart.factor");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nrestart = { factor = 0.5 }\n",
                    "--restart-factor (restart.factor)", "at least 1");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nlog_lines = 2000000\n", "--log-lines", "1000000");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nlog_lines = -1\n", ":3: ", "negative");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\\u0000b\"]\n", "NUL");
  EXPECT_FILE_ERROR("[program]\ncommand=[\"a\"]\nname = \"a\\nb\"\n", "--name", "\"a\\nb\"");
}

TEST(ConfigFile, LoadingAFile) {
  temp_config file("[program]\ncommand = [\"/bin/app\"]\ninstances = 2\n");
  auto config = load_config_file(file.path());
  EXPECT_EQ(config.programs.at(0).instances, 2);
  try {
    load_config_file("/nonexistent/lameduck.toml");
    ADD_FAILURE() << "no config_error";
  } catch (const config_error& e) {
    EXPECT_TRUE(one_line_naming(e.what(), {"/nonexistent/lameduck.toml: ", "No such file"}));
  }
  temp_config bad("[program]\ncommand = [\"/bin/app\"]\ninstances = \"x\"\n");
  try {
    load_config_file(bad.path());
    ADD_FAILURE() << "no config_error";
  } catch (const config_error& e) {
    EXPECT_TRUE(one_line_naming(e.what(), {bad.path() + ":3: "}));
  }
}

TEST(ConfigFile, TheExampleIsValid) {
  auto config = load_config_file(LAMEDUCK_SOURCE_DIR "/examples/supervisor/lameduck.toml");
  validate(config);
  ASSERT_EQ(config.programs.size(), 2u);
  EXPECT_EQ(config.programs[0].name, "web");
  EXPECT_EQ(config.programs[0].listen.size(), 3u);
  EXPECT_EQ(config.programs[0].environment.at("GREETING"), "hello, world");
  EXPECT_EQ(config.programs[1].readiness, readiness_mode::fd);
  EXPECT_EQ(config.programs[1].ready_fd, 3);
  EXPECT_EQ(config.programs[1].restart, (backoff_policy{1s, 1.5, 60s, 30s}));
}

// --- the file and the flags together ----------------------------------------------------------

TEST(ConfigAndFlags, FlagsOverrideTheFile) {
  temp_config file(full_program);
  auto c = parse({"run",
                  "--config",
                  file.path(),
                  "--instances",
                  "5",
                  "--listen",
                  "*:9000",
                  "--env",
                  "B=three",
                  "--env",
                  "C=4",
                  "--ready",
                  "notify",
                  "--restart-max",
                  "2m",
                  "--control",
                  "/tmp/flag.sock",
                  "--log-format",
                  "json",
                  "--",
                  "/bin/other",
                  "x"});
  const auto& p = only_program(c);
  EXPECT_EQ(p.instances, 5);
  EXPECT_EQ(p.listen, (std::vector<listen_spec>{{"", "*:9000"}}));
  EXPECT_EQ(p.environment,
            (std::map<std::string, std::string>{{"A", "1"}, {"B", "three"}, {"C", "4"}}));
  EXPECT_EQ(p.readiness, readiness_mode::notify);
  EXPECT_EQ(p.restart, (backoff_policy{1s, 1.5, 2min, 30s}));
  EXPECT_EQ(p.command, (std::vector<std::string>{"/bin/other", "x"}));
  // What no flag touched is the file's.
  EXPECT_EQ(p.name, "web");
  EXPECT_EQ(p.stop_signal, SIGQUIT);
  EXPECT_EQ(p.max_memory, 512ull << 20);
  EXPECT_EQ(p.log_dir, "/var/log/web");
  EXPECT_EQ(c.run.control, "/tmp/flag.sock");
  EXPECT_EQ(c.control, "/tmp/flag.sock");
  EXPECT_EQ(c.run.log_format, log_format::json);
  EXPECT_EQ(c.run.metrics_listen, "127.0.0.1:9100") << "from the file";
  EXPECT_EQ(
      parse({"run", "--config", file.path(), "--metrics-listen", "*:9200"}).run.metrics_listen,
      "*:9200");
}

TEST(ConfigAndFlags, TheFileAloneIsEnough) {
  temp_config file(full_program);
  auto c = parse({"run", "--config", file.path()});
  EXPECT_EQ(only_program(c).command, (std::vector<std::string>{"/bin/web", "--port", "8080"}));
  EXPECT_EQ(c.control, "/tmp/full.sock");
  // "--" with nothing after it changes nothing.
  EXPECT_EQ(parse({"run", "--config", file.path(), "--"}).run, c.run);
}

TEST(ConfigAndFlags, FlagsMakeTheFilesModeChangeConsistently) {
  temp_config file("[program]\ncommand=[\"a\"]\nready = \"after\"\nready_after = \"2s\"\n");
  auto fd = only_program(parse({"run", "--config", file.path(), "--ready-fd", "6"}));
  EXPECT_EQ(fd.readiness, readiness_mode::fd);
  EXPECT_EQ(fd.ready_fd, 6);
  EXPECT_ERROR(args("run", "--config", file.path(), "--ready-timeout", "1s"), "--ready-after",
               "not shorter");
}

TEST(ConfigAndFlags, SeveralProgramsRefuseProgramFlags) {
  temp_config file(
      "[[program]]\nname=\"a\"\ncommand=[\"a\"]\n[[program]]\nname=\"b\"\ncommand=[\"b\"]\n");
  auto c = parse({"run", "--config", file.path(), "--control", "/tmp/two.sock"});
  EXPECT_EQ(c.run.programs.size(), 2u);
  EXPECT_EQ(c.control, "/tmp/two.sock");
  EXPECT_ERROR(args("run", "--config", file.path(), "--instances", "2"), "--instances",
               "2 programs");
  EXPECT_ERROR(args("run", "--config", file.path(), "--listen", "*:80"), "--listen", "2 programs");
  EXPECT_ERROR(args("run", "--config", file.path(), "--ready", "fd"), "--ready", "2 programs");
  EXPECT_ERROR(args("run", "--config", file.path(), "--", "/bin/x"), "-- PROGRAM", "2 programs");
}

TEST(ConfigAndFlags, FileErrorsComeThrough) {
  temp_config file("[program]\ncommand=[\"a\"]\nbogus = 1\n");
  EXPECT_ERROR(args("run", "--config", file.path()), file.path() + ":3: unknown key \"bogus\"");
  EXPECT_ERROR(args("run", "--config", "/nonexistent.toml"), "/nonexistent.toml");
  EXPECT_ERROR(args("run", "--config"), "--config", "needs a value");
}

// --- validate() on values no parser produces ---------------------------------------------------

run_config valid_config() {
  run_config config;
  config.programs.emplace_back();
  config.programs[0].command = {"/bin/app"};
  return config;
}

std::string validate_error(run_config config) {
  try {
    validate(config);
  } catch (const config_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no config_error";
  return {};
}

TEST(Validate, FillsDefaultsThatDependOnOtherFields) {
  auto config = valid_config();
  config.programs[0].readiness = readiness_mode::fd;
  config.programs[0].listen = {{"", "127.0.0.1:1"}, {"", "127.0.0.1:2"}, {"", "127.0.0.1:3"}};
  validate(config);
  EXPECT_EQ(config.programs[0].ready_fd, 6);
  EXPECT_EQ(config.programs[0].instances, online_cores());
  EXPECT_EQ(config.control, control_default_path());
  // A notify-mode program keeps ready_fd as it was: nothing will use it.
  auto notify = valid_config();
  validate(notify);
  EXPECT_EQ(notify.programs[0].ready_fd, -1);
}

TEST(Validate, RefusesWhatTheParsersCannotProduce) {
  auto none = valid_config();
  none.programs.clear();
  EXPECT_TRUE(one_line_naming(validate_error(none), {"no program"}));
  auto no_command = valid_config();
  no_command.programs[0].command.clear();
  EXPECT_TRUE(one_line_naming(validate_error(no_command), {"no program given"}));
  auto negative = valid_config();
  negative.programs[0].instances = -1;
  EXPECT_TRUE(one_line_naming(validate_error(negative), {"--instances", "less than 0"}));
  auto negative_duration = valid_config();
  negative_duration.programs[0].kill_timeout = -1ms;
  EXPECT_TRUE(one_line_naming(validate_error(negative_duration), {"--kill-timeout", "negative"}));
  auto nan = valid_config();
  nan.programs[0].restart.factor = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(one_line_naming(validate_error(nan), {"--restart-factor"}));
  auto bad_env = valid_config();
  bad_env.programs[0].environment[""] = "x";
  EXPECT_TRUE(one_line_naming(validate_error(bad_env), {"--env", "not a variable name"}));
  auto nul_dir = valid_config();
  nul_dir.programs[0].directory = std::string("a\0b", 3);
  EXPECT_TRUE(one_line_naming(validate_error(nul_dir), {"--directory", "NUL"}));
  auto nul_log = valid_config();
  nul_log.programs[0].log_dir = std::string("a\0b", 3);
  EXPECT_TRUE(one_line_naming(validate_error(nul_log), {"--log-dir", "NUL"}));
  auto bad_fd_name = valid_config();
  bad_fd_name.programs[0].listen = {{"a:b", "127.0.0.1:1"}};
  EXPECT_TRUE(one_line_naming(validate_error(bad_fd_name), {"--listen", "LISTEN_FDNAMES"}));
  auto nul_control = valid_config();
  nul_control.control = std::string("/a\0b", 4);
  EXPECT_TRUE(one_line_naming(validate_error(nul_control), {"--control", "NUL"}));
}

TEST(Validate, ControlDefaultPath) {
  const char* saved = std::getenv("XDG_RUNTIME_DIR");
  std::string saved_value = saved != nullptr ? saved : "";
  ::setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
  EXPECT_EQ(control_default_path(), ::geteuid() == 0 ? "/run/lameduck/control.sock"
                                                     : "/run/user/1000/lameduck/control.sock");
  ::setenv("XDG_RUNTIME_DIR", "", 1);
  EXPECT_EQ(control_default_path(), "/run/lameduck/control.sock");
  ::unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(control_default_path(), "/run/lameduck/control.sock");
  if (saved != nullptr) ::setenv("XDG_RUNTIME_DIR", saved_value.c_str(), 1);
}

// --- the value parsers on their own
// ---------------------------------------------------------------

TEST(ConfigValues, DurationsAreExact) {
  EXPECT_EQ(parse_duration("1.005s"), 1005ms);
  EXPECT_EQ(parse_duration("0.1s"), 100ms);
  EXPECT_EQ(parse_duration(".5s"), 500ms);
  EXPECT_EQ(parse_duration("1.50000000000s"), 1500ms);
  EXPECT_EQ(parse_duration("0.001h"), 3600ms);
  EXPECT_EQ(parse_duration("8760h"), max_duration);
  EXPECT_THROW(parse_duration("0.0001s"), bad_value);
  EXPECT_THROW(parse_duration(""), bad_value);
  EXPECT_THROW(parse_duration("."), bad_value);
  EXPECT_THROW(parse_duration("5S"), bad_value);
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(2min), "2m");
  EXPECT_EQ(format_duration(0ms), "0s");
  for (milliseconds d : {1ms, 999ms, 1000ms, 61000ms, 3600000ms, 5400000ms})
    EXPECT_EQ(parse_duration(format_duration(d)), d);
}

TEST(ConfigValues, QuoteKeepsOneLine) {
  EXPECT_EQ(quote("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\x01\"");
  EXPECT_EQ(quote(std::string(100, 'x')), "\"" + std::string(80, 'x') + "...\"");
  EXPECT_EQ(one_line("a\nb\rc"), "a b c");
}

}  // namespace
}  // namespace lameduck::supervisor
