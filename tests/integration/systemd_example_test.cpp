// The systemd example (examples/systemd/), run as its own files say. The test reads the units
// (ExecStart, ExecReload, ListenStream, FileDescriptorName, the timeouts) and plays systemd:
// it binds the socket (on 127.0.0.1, a port from the kernel), starts the service under
// systemd-socket-activate (Debian's systemd package) on the first connection, listens on
// NOTIFY_SOCKET, runs ExecReload, sends KillSignal and holds the service to TimeoutStopSec.
// The units' installed paths (/usr/local/bin, /etc/NAME, /run/NAME) become the build's
// programs and the test's own directory, and the addresses in --listen become 127.0.0.1:1,
// which nothing can serve from: only the passed socket can.
//
// LAMEDUCK_SYSTEMD_EXAMPLES=DIR runs it on other copies of the files (to see it fail).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string examples_dir() {
  const char* dir = std::getenv("LAMEDUCK_SYSTEMD_EXAMPLES");
  return dir && *dir ? dir : LAMEDUCK_SOURCE_DIR "/examples/systemd";
}

bool have(const char* program) {
  return run({"/bin/sh", "-c", std::string("command -v ") + program}).exit_code == 0;
}

// --- reading the units ----------------------------------------------------------------------

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return std::string(s.substr(first, s.find_last_not_of(" \t") - first + 1));
}

// A unit file as systemd reads it: sections of Key=value lines, "#" and ";" comments, a
// backslash at the end of a line continuing the value on the next.
class unit_file {
 public:
  explicit unit_file(std::string path) : path_(std::move(path)) {
    std::ifstream in(path_);
    if (!in) throw std::runtime_error("cannot read " + path_);
    std::string line, section, pending;
    while (std::getline(in, line)) {
      std::string text = trim(line);
      if (!pending.empty() && (text.starts_with('#') || text.starts_with(';'))) continue;
      if (pending.empty() && (text.empty() || text.starts_with('#') || text.starts_with(';')))
        continue;
      if (pending.empty() && text.starts_with('[')) {
        section = text.substr(1, text.find(']') - 1);
        continue;
      }
      const bool continued = text.ends_with('\\');
      if (continued) text.pop_back();
      pending += (pending.empty() ? "" : " ") + trim(text);
      if (continued) continue;
      const auto equals = pending.find('=');
      if (equals == std::string::npos) throw std::runtime_error(path_ + ": no '=' in " + pending);
      entries_[section + "." + trim(pending.substr(0, equals))].push_back(
          trim(pending.substr(equals + 1)));
      pending.clear();
    }
  }

  const std::string& path() const { return path_; }
  /// The last value of Section.Key, as systemd takes a setting given twice.
  std::optional<std::string> get(const std::string& key) const {
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    return it->second.back();
  }
  /// The value, or a failure naming the file and the key.
  std::string require(const std::string& key) const {
    auto v = get(key);
    if (!v) throw std::runtime_error(path_ + " has no " + key);
    return *v;
  }
  /// Every value of a setting that may be given several times (Environment=).
  std::vector<std::string> all(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::string path_;
  std::map<std::string, std::vector<std::string>> entries_;
};

// A command line as systemd splits it: words, "..." and '...' quotes, backslash escapes; the
// executable's prefixes (-@:+!) are dropped.
std::vector<std::string> split_command(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
      in_word = true;
    } else if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        word += c;
      }
    } else if (c == '"' || c == '\'') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::exchange(word, {}));
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  if (!words.empty()) {
    auto& exe = words.front();
    exe.erase(0, exe.find_first_not_of("-@:+!"));
  }
  return words;
}

// A systemd time span ("30", "30s", "1min 30s", "500ms") or a lameduck duration ("25s",
// "250ms", "2m"), in seconds; a bare number is seconds.
double seconds_of(std::string_view text) {
  static const std::map<std::string, double, std::less<>> units{
      {"", 1},         {"us", 1e-6},   {"ms", 1e-3},   {"s", 1},       {"sec", 1},
      {"second", 1},   {"seconds", 1}, {"m", 60},      {"min", 60},    {"minute", 60},
      {"minutes", 60}, {"h", 3600},    {"hour", 3600}, {"hours", 3600}};
  double total = 0;
  std::istringstream in{std::string(text)};
  std::string part;
  bool any = false;
  while (in >> part) {
    std::size_t used = 0;
    const double number = std::stod(part, &used);
    auto unit = units.find(std::string_view(part).substr(used));
    if (unit == units.end()) throw std::runtime_error("not a time span: " + std::string(text));
    total += number * unit->second;
    any = true;
  }
  if (!any) throw std::runtime_error("not a time span: " + std::string(text));
  return total;
}

// The value of --name in a command line ("--name VALUE" or "--name=VALUE"), the last one.
std::optional<std::string> flag(const std::vector<std::string>& args, std::string_view name) {
  std::optional<std::string> value;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name && i + 1 < args.size()) {
      value = args[i + 1];
    } else if (args[i].starts_with(std::string(name) + "=")) {
      value = args[i].substr(name.size() + 1);
    }
  }
  return value;
}

double flag_seconds(const std::vector<std::string>& args, std::string_view name, double fallback) {
  auto v = flag(args, name);
  return v ? seconds_of(*v) : fallback;
}

// The words before "--" (the supervisor's) and after it (its program's).
std::pair<std::vector<std::string>, std::vector<std::string>> split_at_separator(
    const std::vector<std::string>& args) {
  auto separator = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> program;
  if (separator != args.end()) program.assign(separator + 1, args.end());
  return {std::vector<std::string>(args.begin(), separator), program};
}

// "NAME=HOST:PORT" → {NAME, PORT}.
std::pair<std::string, int> name_and_port(const std::string& address) {
  const auto equals = address.find('=');
  const std::string name = equals == std::string::npos ? "" : address.substr(0, equals);
  return {name, std::stoi(address.substr(address.rfind(':') + 1))};
}

// The port of ListenStream= ("8080", "0.0.0.0:8080", "[::]:8080").
int listen_stream_port(const std::string& value) {
  return std::stoi(value.substr(value.rfind(':') == std::string::npos ? 0 : value.rfind(':') + 1));
}

// --- playing systemd ------------------------------------------------------------------------

// A directory of the test's own, removed with it.
class temp_dir {
 public:
  temp_dir() {
    char name[] = "/tmp/lameduck-systemd-XXXXXX";
    if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp");
    path_ = name;
  }
  ~temp_dir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A service's unit pair, and a directory of the test's own standing for the directories
// systemd would make for the service (ConfigurationDirectory=NAME is /etc/NAME, and so on).
struct service_units {
  unit_file socket, service;
  temp_dir root;
  std::map<std::string, std::string> directories;  // "/etc/NAME/" → root's own

  explicit service_units(const std::string& name)
      : socket(examples_dir() + "/" + name + ".socket"),
        service(examples_dir() + "/" + name + ".service") {
    for (const auto& [setting, parent] : {std::pair{"ConfigurationDirectory", "/etc/"},
                                          {"RuntimeDirectory", "/run/"},
                                          {"StateDirectory", "/var/lib/"}}) {
      if (auto dir = service.get(std::string("Service.") + setting)) {
        const std::string installed = parent + *dir + "/";
        directories[installed] = root.path() + installed;
        fs::create_directories(root.path() + installed);
        // With the mode systemd gives it: RuntimeDirectoryMode= and the like, 0755 by default.
        const auto mode = service.get(std::string("Service.") + setting + "Mode");
        fs::permissions(root.path() + installed,
                        static_cast<fs::perms>(std::stoi(mode.value_or("0755"), nullptr, 8)));
      }
    }
  }

  // A command line with the build's programs, the test's directories, and every listen
  // address replaced by one that cannot serve (the names stay, to match the passed socket).
  std::vector<std::string> localize(std::vector<std::string> args) const {
    for (std::size_t i = 0; i < args.size(); ++i) {
      auto& arg = args[i];
      if (arg.starts_with("/usr/local/bin/")) arg = bin_path(arg.substr(arg.rfind('/') + 1));
      for (const auto& [from, to] : directories) {
        if (arg.starts_with(from)) arg = to + arg.substr(from.size());
      }
      if (i > 0 && (args[i - 1] == "--listen" || args[i - 1] == "--health-listen")) {
        const std::string name = name_and_port(arg).first;
        arg = (name.empty() ? "" : name + "=") + "127.0.0.1:1";
      }
    }
    return args;
  }
  std::vector<std::string> exec_start() const {
    return split_command(service.require("Service.ExecStart"));
  }
};

// A listening socket on 127.0.0.1, as systemd holds it for a .socket unit.
class held_socket {
 public:
  held_socket() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 128) != 0)
      throw std::runtime_error("cannot listen on 127.0.0.1");
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &size);
    port_ = ntohs(a.sin_port);
  }
  ~held_socket() { ::close(fd_); }
  int fd() const { return fd_; }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// The service's command under systemd-socket-activate, which gets the socket the test holds
// as descriptor 3 (server_process passes it; LISTEN_FDS tells systemd-socket-activate, which
// passes it through) and hands it on under its FileDescriptorName, with the unit's
// Environment= and the given variables. Without --accept it execs the service in its own
// process on the first connection, so the pid is the service's MAINPID.
std::vector<std::string> socket_activated(const service_units& units,
                                          const std::vector<std::string>& command,
                                          const std::vector<std::string>& environment) {
  std::vector<std::string> argv{"/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"", "sh",
                                "systemd-socket-activate"};
  if (auto name = units.socket.get("Socket.FileDescriptorName"))
    argv.push_back("--fdname=" + *name);
  for (const auto& line : units.service.all("Service.Environment")) {
    for (const auto& e : split_command(line))
      argv.push_back("--setenv=" + e);
  }
  for (const auto& e : environment)
    argv.push_back("--setenv=" + e);
  // systemd-socket-activate passes on only what it is told: the sanitizers' settings too.
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (std::getenv(name)) argv.push_back(std::string("--setenv=") + name);
  }
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

// The next state message from the service, WATCHDOG=1 pings counted and skipped.
std::string next_state(notify_socket& manager, int& pings, std::chrono::milliseconds within) {
  const auto deadline = clock::now() + within;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    std::string m = manager.receive(std::max(left, std::chrono::milliseconds(0)));
    if (m != "WATCHDOG=1") return m;
    ++pings;
  }
}

std::int64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1'000'000 + now.tv_nsec / 1000;
}

int signal_number(std::string name) {
  if (name.starts_with("SIG")) name.erase(0, 3);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (const char* abbrev = sigabbrev_np(sig); abbrev && name == abbrev) return sig;
  }
  throw std::runtime_error("unknown signal " + name);
}

// ExecReload= run as systemd runs it, $MAINPID set.
command_result exec_reload(const service_units& units, pid_t main_pid,
                           std::chrono::milliseconds within) {
  std::vector<std::string> argv =
      units.localize(split_command(units.service.require("Service.ExecReload")));
  for (auto& arg : argv) {
    for (const char* variable : {"${MAINPID}", "$MAINPID"}) {
      for (auto at = arg.find(variable); at != std::string::npos; at = arg.find(variable))
        arg.replace(at, std::strlen(variable), std::to_string(main_pid));
    }
  }
  return run(argv, within);
}

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long>(std::ceil(seconds * 1000)));
}

void skip_without_socket_activate() {
  if (!have("systemd-socket-activate")) {
    GTEST_SKIP() << "systemd-socket-activate is missing: install Debian's systemd package";
  }
}

// What both services must say: systemd's protocol from the main process, whose SIGTERM
// alone (KillMode=mixed: any other process of the unit, a worker, getting one too would count
// it as its second, which ends a drain at once).
void expect_a_notify_service(const service_units& u) {
  EXPECT_EQ(u.service.get("Service.Type"), "notify") << u.service.path();
  EXPECT_EQ(u.service.get("Service.NotifyAccess"), "main") << u.service.path();
  EXPECT_EQ(u.service.get("Service.KillMode"), "mixed") << u.service.path();
}

// The passed socket stands for the --listen address of its name: the same name, the same port.
void expect_listen_on_the_socket(const service_units& u, const std::vector<std::string>& args) {
  const auto listen = flag(args, "--listen");
  ASSERT_TRUE(listen) << "no --listen in " << u.service.path();
  EXPECT_EQ(name_and_port(*listen),
            std::make_pair(u.socket.require("Socket.FileDescriptorName"),
                           listen_stream_port(u.socket.require("Socket.ListenStream"))))
      << u.socket.path() << " passes another socket than ExecStart's " << *listen;
}

// A connection is a descriptor: the server's limit (a 503) must come before the kernel's.
void expect_connections_within_the_file_limit(const service_units& u,
                                              const std::vector<std::string>& args) {
  const auto max_connections = flag(args, "--max-connections");
  ASSERT_TRUE(max_connections) << "no --max-connections (lameduck-hello's default is 100000)";
  EXPECT_LT(std::stol(*max_connections), std::stol(u.service.require("Service.LimitNOFILE")))
      << u.service.path();
}

// --- lameduck-hello.socket + lameduck-hello.service ------------------------------------------

TEST(SystemdExample, HelloUnitsAgreeWithTheFlagsTheyPass) {
  service_units u("lameduck-hello");
  const auto args = u.exec_start();
  expect_a_notify_service(u);
  EXPECT_NE(u.service.require("Service.ExecReload").find("MAINPID"), std::string::npos);

  const double lame_duck = flag_seconds(args, "--lame-duck", 0);
  const double drain = flag_seconds(args, "--drain-timeout", 30);  // lameduck-hello's default
  const double stop = seconds_of(u.service.require("Service.TimeoutStopSec"));
  // The stop ends within --drain-timeout, the delay included; the margin is a delay's worth.
  EXPECT_GT(stop, lame_duck + drain)
      << u.service.path() << ": TimeoutStopSec=" << stop << " must exceed --lame-duck " << lame_duck
      << " + --drain-timeout " << drain << ", or systemd's SIGKILL ends a drain";
  EXPECT_GT(drain, lame_duck) << "--drain-timeout counts from the signal, the delay within it";

  expect_listen_on_the_socket(u, args);
  expect_connections_within_the_file_limit(u, args);
}

TEST(SystemdExample, HelloServesOnThePassedSocketReloadsAndDrainsAsItsUnitsSay) {
  skip_without_socket_activate();
  service_units u("lameduck-hello");
  auto command = u.localize(u.exec_start());
  const auto greeting_file = flag(command, "--greeting-file");
  if (greeting_file) std::ofstream(*greeting_file) << "Hello from systemd\n";
  // The application's warm-up (not in the example): READY=1 must wait for it.
  command.insert(command.end(), {"--ready-after", "2"});

  held_socket socket;
  notify_socket manager;
  std::vector<std::string> environment{"NOTIFY_SOCKET=" + manager.name()};
  if (auto watchdog = u.service.get("Service.WatchdogSec")) {
    environment.push_back("WATCHDOG_USEC=" +
                          std::to_string(static_cast<long>(seconds_of(*watchdog) * 1e6)));
  }
  const auto argv = socket_activated(u, command, environment);
  // The first connection starts the service; it waits in the socket's queue meanwhile.
  raw_client first(socket.port());
  server_process service(argv, 20s, {socket.fd()});
  EXPECT_EQ(service.port(), socket.port()) << "not serving on the passed socket";
  int pings = 0;
  EXPECT_EQ(next_state(manager, pings, 10s), "STATUS=waiting for the application to be ready");
  first.send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(first.read_response()), 503);
  EXPECT_EQ(next_state(manager, pings, 10s),
            "READY=1\nSTATUS=serving 127.0.0.1:" + std::to_string(socket.port()));
  first.send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_of(first.read_response()), 200);
  first.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(body_of(first.read_response()),
            greeting_file ? "Hello from systemd\n" : "Hello, World!\n");

  // systemctl reload: ExecReload with $MAINPID.
  if (greeting_file) std::ofstream(*greeting_file, std::ios::trunc) << "Reloaded\n";
  const std::int64_t before = monotonic_usec();
  const auto reload = exec_reload(u, service.pid(), 10s);
  EXPECT_EQ(reload.exit_code, 0) << reload.err;
  const std::string reloading = next_state(manager, pings, 10s);
  const std::int64_t after = monotonic_usec();
  ASSERT_TRUE(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC=")) << reloading;
  const std::int64_t stamp = std::stoll(reloading.substr(reloading.find('=', 12) + 1));
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);
  EXPECT_EQ(next_state(manager, pings, 10s), "READY=1\nSTATUS=reloaded");
  if (greeting_file) {
    EXPECT_EQ(body_of(get_once(socket.port(), "/")), "Reloaded\n");
  }

  // systemctl stop: KillSignal, then TimeoutStopSec before systemd's SIGKILL.
  const double stop_timeout = seconds_of(u.service.require("Service.TimeoutStopSec"));
  const double lame_duck = flag_seconds(command, "--lame-duck", 0);
  const auto stopped_at = clock::now();
  service.signal(signal_number(u.service.get("Service.KillSignal").value_or("SIGTERM")));
  EXPECT_EQ(next_state(manager, pings, 10s), "STOPPING=1\nSTATUS=draining");
  if (lame_duck > 0) {
    // The lame-duck delay: readiness says no while the passed socket still serves. STOPPING=1
    // goes out just before the drain is ordered: the 503 may take a moment more.
    EXPECT_TRUE(
        eventually([&] { return status_of(get_once(socket.port(), "/readyz")) == 503; }, 2s));
    EXPECT_EQ(status_of(get_once(socket.port(), "/")), 200);
  }
  EXPECT_EQ(next_state(manager, pings, ms(stop_timeout)), "STATUS=stopped; running cleanup hooks");
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      stopped_at + ms(stop_timeout) - clock::now());
  EXPECT_EQ(service.wait_exit(left), 0) << service.error_output();
  EXPECT_GE(clock::now() - stopped_at, ms(lame_duck * 0.95));
  if (u.service.get("Service.WatchdogSec")) {
    EXPECT_GE(pings, 1) << "no WATCHDOG=1";
  }

  // The port outlives the process: a connection made now waits for the next start.
  raw_client queued(socket.port());
  queued.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  server_process restarted(argv, 20s, {socket.fd()});
  EXPECT_EQ(status_of(queued.read_response()), 200);
}

// --- lameduck-web.socket + lameduck-web.service: the supervisor --------------------------------

#ifdef LAMEDUCK_WITH_SUPERVISOR

TEST(SystemdExample, SupervisorUnitsAgreeWithTheFlagsTheyPass) {
  service_units u("lameduck-web");
  const auto [supervisor, worker] = split_at_separator(u.exec_start());
  ASSERT_FALSE(worker.empty()) << "no worker command after --";
  expect_a_notify_service(u);

  // The worker drains before the supervisor kills it, which it does before systemd kills all.
  const double drain = flag_seconds(worker, "--drain-timeout", 30);
  const double kill_timeout = flag_seconds(supervisor, "--kill-timeout", 30);
  const double stop = seconds_of(u.service.require("Service.TimeoutStopSec"));
  EXPECT_LT(drain, kill_timeout) << "the supervisor would kill workers still draining";
  EXPECT_LT(kill_timeout, stop) << "systemd would kill the supervisor before its workers end";
  // A reload replaces the slots one by one; systemd gives it the start timeout.
  const auto instances = flag(supervisor, "--instances");
  ASSERT_TRUE(instances) << "no --instances";
  const double ready_timeout = flag_seconds(supervisor, "--ready-timeout", 30);
  const double max_unavailable = std::stod(flag(supervisor, "--max-unavailable").value_or("1"));
  EXPECT_GE(seconds_of(u.service.require("Service.TimeoutStartSec")),
            std::ceil(std::stod(*instances) / max_unavailable) * (ready_timeout + kill_timeout))
      << "systemd would fail a reload that is still replacing workers";

  // The socket's name and port, in the supervisor's --listen and its workers'.
  expect_listen_on_the_socket(u, supervisor);
  expect_listen_on_the_socket(u, worker);
  // ExecReload talks to the control socket ExecStart opens, in the RuntimeDirectory.
  const auto control = flag(supervisor, "--control");
  ASSERT_TRUE(control) << "no --control";
  EXPECT_EQ(flag(split_command(u.service.require("Service.ExecReload")), "--control"), control);
  EXPECT_TRUE(control->starts_with("/run/" + u.service.require("Service.RuntimeDirectory") + "/"))
      << *control;
  expect_connections_within_the_file_limit(u, worker);
}

TEST(SystemdExample, SupervisorServesOnThePassedSocketReloadsAndStopsAsItsUnitsSay) {
  skip_without_socket_activate();
  service_units u("lameduck-web");
  const auto command = u.localize(u.exec_start());

  held_socket socket;
  notify_socket manager;
  const auto argv = socket_activated(u, command, {"NOTIFY_SOCKET=" + manager.name()});
  raw_client first(socket.port());
  // The supervisor reports the socket it adopted, then starts its workers.
  server_process service(argv, 20s, {socket.fd()});
  EXPECT_EQ(service.port(), socket.port()) << "not serving on the passed socket";
  int pings = 0;
  const double start_timeout = seconds_of(u.service.require("Service.TimeoutStartSec"));
  EXPECT_EQ(next_state(manager, pings, 30s), "READY=1\nSTATUS=every worker is ready");
  first.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(body_of(first.read_response()), "Hello, World!\n");

  // Within systemd's limit, but a test's time: a reload of these workers takes a second.
  const auto reload = exec_reload(u, service.pid(), std::min(ms(start_timeout), 30'000ms));
  EXPECT_EQ(reload.exit_code, 0) << reload.out << reload.err;
  EXPECT_TRUE(next_state(manager, pings, 10s).starts_with("RELOADING=1\n"));
  EXPECT_EQ(next_state(manager, pings, 10s), "READY=1\nSTATUS=reloaded");
  EXPECT_EQ(body_of(get_once(socket.port(), "/")), "Hello, World!\n");

  const double stop_timeout = seconds_of(u.service.require("Service.TimeoutStopSec"));
  service.signal(signal_number(u.service.get("Service.KillSignal").value_or("SIGTERM")));
  EXPECT_TRUE(next_state(manager, pings, 10s).starts_with("STOPPING=1\n"));
  EXPECT_EQ(service.wait_exit(ms(stop_timeout)), 0) << service.error_output();
}

#endif  // LAMEDUCK_WITH_SUPERVISOR

// --- every unit: what systemd itself says of them ---------------------------------------------

TEST(SystemdExample, SystemdFindsNothingToSayAndRatesTheHardeningOk) {
  if (!have("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is missing: install systemd";
  // Copies whose programs exist here (verify checks that they do).
  temp_dir copies;
  std::vector<std::string> units;
  for (const auto& entry : fs::directory_iterator(examples_dir())) {
    const auto name = entry.path().filename().string();
    if (!name.ends_with(".service") && !name.ends_with(".socket")) continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    for (auto at = s.find("/usr/local/bin/"); at != std::string::npos;
         at = s.find("/usr/local/bin/", at)) {
      s.replace(at, std::strlen("/usr/local/bin/"), bin_path(""));
    }
    std::ofstream(copies.path() + "/" + name) << s;
    units.push_back(copies.path() + "/" + name);
  }
  ASSERT_FALSE(units.empty()) << "no units in " << examples_dir();
  std::vector<std::string> verify{"systemd-analyze", "verify"};
  verify.insert(verify.end(), units.begin(), units.end());
  const auto r = run(verify, 60s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out + r.err, "") << "a setting systemd ignores is a setting that is not there";
  for (const auto& unit : units) {
    if (!unit.ends_with(".service")) continue;
    // Exposure from 0 (all locked) to 10 (nothing); the threshold is in tenths. A server
    // needs the network, so 1.4 is about as low as one goes.
    const auto s =
        run({"systemd-analyze", "security", "--offline=true", "--threshold=20", unit}, 60s);
    EXPECT_EQ(s.exit_code, 0) << unit << ":\n" << s.out << s.err;
  }
}

}  // namespace
}  // namespace lameduck::testing
