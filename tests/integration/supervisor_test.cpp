// The `lameduck` supervisor with real processes: the real seam (fork/exec, process groups,
// signals, waitpid, readiness over NOTIFY_SOCKET and pipes) against what the unit tests of the
// state machine assume, and the promises of `lameduck run`/`reload`/`stop` end to end.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.hpp"

extern char** environ;

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;

// A directory of the test's own (control socket, scripts), removed with it.
class temp_dir {
 public:
  temp_dir() {
    char name[] = "/tmp/lameduck-sup-XXXXXX";
    if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp");
    path_ = name;
  }
  ~temp_dir() { [[maybe_unused]] int r = std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

/// How a test starts the supervisor, besides its arguments.
struct launch {
  /// Extra environment variables, NAME=VALUE.
  std::vector<std::string> environment;
  /// A listening socket passed as descriptor 3 by the service manager's protocol
  /// (LISTEN_FDS=1, LISTEN_PID set to the supervisor's pid), named socket_name.
  int passed_socket = -1;
  std::string socket_name;
  /// Non-empty: the test stops reading the supervisor's standard output once a line holding
  /// this has come, as a stalled log shipper does, until resume_output(); the pipe fills.
  std::string stall_after;
  /// The supervisor starts with these signals blocked, as a parent that waits for its own
  /// with signalfd leaves them to its children.
  std::vector<int> blocked_signals;
};

// `lameduck run ...` started for one test; its standard output is read as it comes, so that
// a test waits for the line that says what it waits for.
class supervisor {
 public:
  supervisor(const temp_dir& dir, std::vector<std::string> options,
             std::vector<std::string> program, const launch& how = {})
      : control_(dir.file("control.sock")), stall_after_(how.stall_after) {
    std::vector<std::string> argv{bin_path("lameduck"), "run", "--control", control_};
    argv.insert(argv.end(), options.begin(), options.end());
    if (!program.empty()) argv.push_back("--");  // none: the --config file says
    argv.insert(argv.end(), program.begin(), program.end());
    if (how.passed_socket >= 0) {
      // The shell's pid is the supervisor's once it execs: what LISTEN_PID must say.
      argv.insert(
          argv.begin(),
          {"/bin/sh", "-c",
           "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=" + how.socket_name + " exec \"$@\"", "sh"});
    }
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
      env.emplace_back(*e);
    env.insert(env.end(), how.environment.begin(), how.environment.end());
    std::vector<char*> envp;
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    if (how.passed_socket >= 0) posix_spawn_file_actions_adddup2(&actions, how.passed_socket, 3);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t blocked;
    ::sigemptyset(&blocked);
    for (int sig : how.blocked_signals)
      ::sigaddset(&blocked, sig);
    posix_spawnattr_setsigmask(&attributes, &blocked);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, &attributes, args.data(), envp.data());
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) throw std::runtime_error("posix_spawn lameduck");
    reader_ = std::thread([this, fd = out[0]] { read_lines(fd); });
  }
  ~supervisor() {
    if (pid_ > 0 && status_ < 0) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    resume_output();
    reader_.join();
  }
  /// Reads standard output again after launch::stall_after stopped it.
  void resume_output() {
    std::lock_guard lock(mutex_);
    stall_after_.clear();
    cv_.notify_all();
  }
  /// Closes the reading end of standard output, stalled by launch::stall_after: the
  /// supervisor's reader has gone.
  void close_output() {
    std::lock_guard lock(mutex_);
    close_output_ = true;
    cv_.notify_all();
  }

  pid_t pid() const { return pid_; }
  const std::string& control() const { return control_; }

  /// Waits for an output line (from now on, or from the start with from_start) containing
  /// text; the line, or "" at the deadline.
  std::string wait_for(std::string_view text, std::chrono::milliseconds within = 10s,
                       bool from_start = true) {
    std::unique_lock lock(mutex_);
    std::size_t i = from_start ? 0 : lines_.size();
    const auto deadline = clock::now() + within;
    for (;;) {
      for (; i < lines_.size(); ++i)
        if (lines_[i].find(text) != std::string::npos) return lines_[i];
      if (ended_ || cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        for (; i < lines_.size(); ++i)
          if (lines_[i].find(text) != std::string::npos) return lines_[i];
        return {};
      }
    }
  }
  /// How many lines so far contain text.
  std::size_t count(std::string_view text) {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(lines_.begin(), lines_.end(), [&](const auto& l) {
      return l.find(text) != std::string::npos;
    }));
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  std::string output() {
    std::string all;
    for (const auto& l : lines())
      all += l + "\n";
    return all;
  }
  /// The port of the first TCP listener ("listening on http://127.0.0.1:PORT").
  std::uint16_t port() {
    const std::string line = wait_for("listening on http://127.0.0.1:");
    if (line.empty()) return 0;
    return static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  }
  /// Waits until every worker is ready (the supervisor says so once); a failure shows the
  /// supervisor's output.
  ::testing::AssertionResult ready(std::chrono::milliseconds within = 10s) {
    if (!wait_for("every worker is ready", within).empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "not every worker is ready within " << within.count() << " ms:\n"
           << output();
  }
  /// Runs `lameduck VERB ARGS --control PATH`.
  command_result ctl(std::vector<std::string> args, std::chrono::milliseconds within = 30s) {
    std::vector<std::string> argv{bin_path("lameduck")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--control");
    argv.push_back(control_);
    return run(argv, within);
  }
  void signal(int sig) { ::kill(pid_, sig); }
  /// Waits for the supervisor to exit; its exit status (128+n for signal n), -1 at the deadline.
  int wait_exit(std::chrono::milliseconds within = 20s) {
    if (status_ >= 0) return status_;
    const auto deadline = clock::now() + within;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        // Its last lines may still be in the pipe: output() holds them all once this returns.
        std::unique_lock lock(mutex_);
        cv_.wait_until(lock, deadline, [this] { return ended_; });
        return status_;
      }
      if (clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(5ms);  // no event for a child's exit but SIGCHLD
    }
  }
  /// Waits for the supervisor to exit with status; a failure shows its output.
  ::testing::AssertionResult exits_with(int status, std::chrono::milliseconds within = 20s) {
    const int exited = wait_exit(within);
    if (exited == status) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << (exited < 0 ? "still running" : "exit status " + std::to_string(exited))
           << " instead of exit status " << status << ":\n"
           << output();
  }

 private:
  void read_lines(int fd) {
    std::string partial;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) break;
      partial.append(buffer, static_cast<std::size_t>(n));
      std::unique_lock lock(mutex_);
      std::size_t start = 0, end;
      while ((end = partial.find('\n', start)) != std::string::npos) {
        lines_.push_back(partial.substr(start, end - start));
        start = end + 1;
      }
      partial.erase(0, start);
      cv_.notify_all();
      const auto stalled = [&] {
        return !stall_after_.empty() &&
               std::any_of(lines_.begin(), lines_.end(), [&](const auto& l) {
                 return l.find(stall_after_) != std::string::npos;
               });
      };
      cv_.wait(lock, [&] { return close_output_ || !stalled(); });
      if (close_output_) break;
    }
    ::close(fd);
    std::lock_guard lock(mutex_);
    ended_ = true;
    cv_.notify_all();
  }

  std::string control_;
  std::string stall_after_;    // guarded by mutex_
  bool close_output_ = false;  // guarded by mutex_
  pid_t pid_ = -1;
  int status_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool ended_ = false;
};

// A shell script in dir, executable; its path.
std::string script(const temp_dir& dir, std::string_view name, std::string_view body) {
  const std::string path = dir.file(name);
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

std::vector<std::string> hello(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{bin_path("lameduck-hello"), "--threads", "1", "--idle-grace", "2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// The pids of the supervisor's workers in the given state, from `lameduck status --json`.
std::vector<int> worker_pids(supervisor& s, std::string_view state = "ready") {
  const command_result r = s.ctl({"status", "--json"});
  std::vector<int> pids;
  try {
    const auto status = nlohmann::json::parse(r.out);
    for (const auto& program : status.at("programs"))
      for (const auto& w : program.at("workers"))
        if (w.at("state") == state) pids.push_back(w.at("pid").get<int>());
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << e.what() << ": " << r.out << r.err;
  }
  std::sort(pids.begin(), pids.end());
  return pids;
}

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

// Children of pid that are zombies (exited, not reaped).
int zombies_of(pid_t pid) {
  int count = 0;
  DIR* proc = ::opendir("/proc");
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string text;
    std::getline(stat, text);
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 2));
    char state;
    int ppid;
    fields >> state >> ppid;
    if (ppid == pid && state == 'Z') ++count;
  }
  ::closedir(proc);
  return count;
}

// Requests on new connections and on keep-alive connections while something happens; every
// failure (connect error, reset, end of stream without a response, non-2xx) is counted.
class load {
 public:
  explicit load(std::uint16_t port, int clients = 8) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, port, keep_alive = i % 2 == 0] { run(port, keep_alive); });
  }
  ~load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  /// Stops the traffic, which must have had responses and no failure.
  ::testing::AssertionResult stop_without_failure() {
    stop();
    std::lock_guard lock(mutex_);
    if (ok_ > 0 && failures_.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << ok_ << " responses; failures:\n" << failures_;
  }

 private:
  void run(std::uint16_t port, bool keep_alive) {
    // Bounded: at most 20,000 requests per client, and the test stops it long before.
    for (int i = 0; i < 20'000 && !stop_; ++i) {
      try {
        raw_client c(port);
        for (int j = 0; j < (keep_alive ? 50 : 1) && !stop_; ++j) {
          c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
          const std::string r = c.read_response(5s);
          const int status = status_of(r);
          if (status < 200 || status > 299)
            throw std::runtime_error("status " + std::to_string(status));
          ++ok_;
          // The server ends the connection after this response: it says so, or it is HTTP/1.0.
          if (header_of(r, "Connection") == "close" || r.starts_with("HTTP/1.0")) break;
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex_);
        failures_ += std::string(e.what()) + "\n";
      }
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::mutex mutex_;
  std::string failures_;
  std::vector<std::thread> threads_;
};

// A test of the supervisor: a directory of its own, and the supervisors it starts there (killed,
// if still running, when the test ends).
class supervisor_test : public ::testing::Test {
 protected:
  /// Starts `lameduck run OPTIONS -- PROGRAM`, its control socket in the test's directory.
  supervisor& start(std::vector<std::string> options, std::vector<std::string> program,
                    const launch& how = {}) {
    started_.push_back(
        std::make_unique<supervisor>(dir, std::move(options), std::move(program), how));
    return *started_.back();
  }
  /// Starts `instances` lameduck-hello workers on a TCP port of the kernel's choosing (port()),
  /// with more options after.
  supervisor& start_hello(int instances, std::vector<std::string> options = {},
                          const launch& how = {}) {
    options.insert(options.begin(),
                   {"--instances", std::to_string(instances), "--listen", "127.0.0.1:0"});
    return start(std::move(options), hello(), how);
  }

  temp_dir dir;

 private:
  std::vector<std::unique_ptr<supervisor>> started_;
};

using SupervisorRun = supervisor_test;
using SupervisorReload = supervisor_test;
using SupervisorCrash = supervisor_test;
using SupervisorStop = supervisor_test;
using SupervisorProcess = supervisor_test;
using SupervisorWorkers = supervisor_test;
using SupervisorUpgrade = supervisor_test;
using SupervisorControl = supervisor_test;
using SupervisorLogs = supervisor_test;
using SupervisorMetricsEndpoint = supervisor_test;

TEST_F(SupervisorRun, Step1RunsEveryWorkerOnTheSharedSocketAndReportsThemReady) {
  supervisor& s = start_hello(2);
  const std::uint16_t port = s.port();
  ASSERT_NE(port, 0) << s.output();
  ASSERT_TRUE(s.ready());
  EXPECT_EQ(status_of(get_once(port)), 200);
  const auto pids = worker_pids(s);
  ASSERT_EQ(pids.size(), 2u) << s.ctl({"status", "--json"}).out;
  const command_result table = s.ctl({"status"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find(std::to_string(pids[0])), std::string::npos) << table.out;
  // Each worker is its own process group.
  for (int pid : pids)
    EXPECT_EQ(::getpgid(pid), pid);
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0));
  for (int pid : pids)
    EXPECT_FALSE(process_exists(pid));
}

TEST_F(SupervisorRun, Step1EachWorkerGetsItsSlotGenerationAndTheSocketsByName) {
  const std::string out = dir.file("env");
  const std::string worker =
      script(dir, "env.sh",
             "echo \"$LAMEDUCK_WORKER $LAMEDUCK_GENERATION $LISTEN_FDS $LISTEN_FDNAMES "
             "$LISTEN_PID $$\" >> " +
                 out +
                 "\n"
                 "echo > /dev/fd/$LAMEDUCK_READY_FD\nexec sleep 600");
  supervisor& s = start({"--instances", "2", "--listen", "web=127.0.0.1:0", "--listen",
                         "health=127.0.0.1:0", "--ready-fd", "5"},
                        {worker});
  ASSERT_TRUE(s.ready());
  std::ifstream in(out);
  std::vector<std::string> seen;
  for (std::string line; std::getline(in, line);)
    seen.push_back(line);
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), 2u);
  for (int slot = 0; slot < 2; ++slot) {
    std::istringstream fields(seen[static_cast<std::size_t>(slot)]);
    std::string worker_slot, generation, fds, names, listen_pid, pid;
    fields >> worker_slot >> generation >> fds >> names >> listen_pid >> pid;
    EXPECT_EQ(worker_slot, std::to_string(slot));
    EXPECT_EQ(generation, "1");
    EXPECT_EQ(fds, "2");
    EXPECT_EQ(names, "web:health");
    EXPECT_EQ(listen_pid, pid) << "LISTEN_PID is the worker's own pid";
  }
}

TEST_F(SupervisorRun, Step1SocketsPassedToTheSupervisorArePassedOnByName) {
  // A socket bound by "systemd": the supervisor binds nothing for --listen web=...
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 128), 0);
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  const std::uint16_t port = ntohs(address.sin_port);
  launch how;
  how.passed_socket = fd;
  how.socket_name = "web";
  supervisor& s = start({"--instances", "2", "--listen", "web=127.0.0.1:1"}, hello(), how);
  ::close(fd);
  ASSERT_TRUE(s.ready());
  EXPECT_EQ(status_of(get_once(port)), 200) << s.output();
  EXPECT_NE(
      s.output().find("listening on http://127.0.0.1:" + std::to_string(port) + ", passed (web)"),
      std::string::npos)
      << s.output();
}

TEST_F(SupervisorRun, Step1UnderSystemdItSaysReadyReloadingAndStopping) {
  notify_socket manager;
  launch how;
  how.environment = {"NOTIFY_SOCKET=" + manager.name()};
  supervisor& s = start_hello(2, {}, how);
  const std::string ready = manager.receive(10s);
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_EQ(worker_pids(s).size(), 2u) << "READY=1 only once every worker is ready";
  std::thread reload([&] { EXPECT_EQ(s.ctl({"reload"}).exit_code, 0); });
  const std::string reloading = manager.receive(10s);
  reload.join();
  EXPECT_NE(reloading.find("RELOADING=1"), std::string::npos) << reloading;
  EXPECT_NE(reloading.find("MONOTONIC_USEC="), std::string::npos) << reloading;
  EXPECT_NE(manager.receive(10s).find("READY=1"), std::string::npos);
  s.signal(SIGTERM);
  EXPECT_NE(manager.receive(10s).find("STOPPING=1"), std::string::npos);
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorRun, Step1AUnixSocketIsBoundOnceAndPassedToo) {
  const std::string path = dir.file("web.sock");
  const std::string worker = script(dir, "unix.sh",
                                    "[ \"$LISTEN_FDS\" = 1 ] || exit 9\n"
                                    "echo > /dev/fd/$LAMEDUCK_READY_FD\nexec sleep 600");
  supervisor& s = start({"--instances", "1", "--listen", path, "--ready", "fd"}, {worker});
  ASSERT_TRUE(s.ready());
  EXPECT_NE(s.output().find("listening on unix:" + path), std::string::npos) << s.output();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
      << std::strerror(errno);
  ::close(fd);
}

TEST_F(SupervisorRun, Step1SeveralProgramsFromOneFileRunSideBySide) {
  const std::string file = dir.file("lameduck.toml");
  std::ofstream(file) << "[[program]]\nname = \"web\"\ninstances = 2\n"
                         "listen = [\"127.0.0.1:0\"]\ncommand = [\""
                      << bin_path("lameduck-hello") << "\", \"--idle-grace\", \"2\"]\n"
                      << "[[program]]\nname = \"jobs\"\ninstances = 1\nready = \"after\"\n"
                         "ready_after = \"50ms\"\ncommand = [\"sleep\", \"600\"]\n";
  supervisor& s = start({"--config", file}, {});
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready());
  EXPECT_EQ(status_of(get_once(port)), 200);
  const command_result status = s.ctl({"status"});
  EXPECT_NE(status.out.find("web: generation 1"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("jobs: generation 1"), std::string::npos) << status.out;
  const command_result reload = s.ctl({"reload", "--program", "jobs"});
  EXPECT_EQ(reload.exit_code, 0) << reload.out << reload.err;
  const command_result after = s.ctl({"status"});
  EXPECT_NE(after.out.find("web: generation 1"), std::string::npos) << after.out;
  EXPECT_NE(after.out.find("jobs: generation 2"), std::string::npos) << after.out;
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorReload, Step2ReplacesEveryWorkerUnderLoadWithoutAFailedRequest) {
  supervisor& s = start_hello(2);
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready());
  const auto before = worker_pids(s);
  load traffic(port);
  for (int i = 0; i < 3; ++i) {
    const command_result r = s.ctl({"reload"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    const std::string said = r.out + r.err;
    EXPECT_NE(said.find("reloaded 2 workers to generation " + std::to_string(i + 2)),
              std::string::npos)
        << said;
    EXPECT_NE(said.find("drained in"), std::string::npos) << said;
  }
  EXPECT_TRUE(traffic.stop_without_failure());
  const auto after = worker_pids(s);
  ASSERT_EQ(after.size(), 2u);
  for (int pid : before)
    EXPECT_FALSE(process_exists(pid)) << "old worker " << pid << " is gone";
}

TEST_F(SupervisorReload, Step2AReplacementThatNeverGetsReadyFailsAndTheOldWorkersServeOn) {
  // Generation 1 is lameduck-hello; later generations never say they are ready.
  const std::string worker = script(dir, "worker.sh",
                                    "[ \"$LAMEDUCK_GENERATION\" = 1 ] || exec sleep 600\nexec " +
                                        bin_path("lameduck-hello") + " --threads 1 --idle-grace 2");
  supervisor& s =
      start({"--instances", "2", "--listen", "127.0.0.1:0", "--ready-timeout", "1s"}, {worker});
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready());
  const auto before = worker_pids(s);
  load traffic(port);
  const auto start = clock::now();
  const command_result r = s.ctl({"reload"});
  const auto took = clock::now() - start;
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("not ready within 1.00s"), std::string::npos) << r.out << r.err;
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(traffic.stop_without_failure());
  EXPECT_EQ(worker_pids(s), before) << "the old workers are untouched";
  EXPECT_EQ(s.ctl({"status"}).exit_code, 0);
}

TEST_F(SupervisorReload, Step2AReplacementThatCrashesAtStartFailsTheReload) {
  const std::string worker = script(dir, "worker.sh",
                                    "[ \"$LAMEDUCK_GENERATION\" = 1 ] || exit 3\nexec " +
                                        bin_path("lameduck-hello") + " --threads 1");
  supervisor& s = start({"--instances", "2", "--listen", "127.0.0.1:0"}, {worker});
  ASSERT_TRUE(s.ready());
  const auto before = worker_pids(s);
  const command_result r = s.ctl({"reload"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("exit 3"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(worker_pids(s), before);
}

TEST_F(SupervisorReload, Step3AReloadWhileOneRunsIsRefusedOrWithWaitQueued) {
  supervisor& s = start_hello(1, {"--ready", "after", "--ready-after", "700ms"});
  ASSERT_TRUE(s.ready());
  std::thread first([&] { EXPECT_EQ(s.ctl({"reload"}).exit_code, 0); });
  ASSERT_FALSE(s.wait_for("reloading 1 workers to generation 2").empty());
  const command_result refused = s.ctl({"reload"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE((refused.out + refused.err).find("already running"), std::string::npos)
      << refused.out << refused.err;
  const command_result queued = s.ctl({"reload", "--wait"});
  first.join();
  EXPECT_EQ(queued.exit_code, 0) << queued.out << queued.err;
  EXPECT_NE((queued.out + queued.err).find("generation 3"), std::string::npos) << queued.out;
}

TEST_F(SupervisorCrash, Step4ACrashedWorkerIsRestartedWithBackoffWithinTenPercent) {
  supervisor& s =
      start({"--instances", "1", "--ready", "after", "--ready-after", "10s", "--restart-delay",
             "100ms", "--restart-factor", "2", "--restart-max", "400ms"},
            {"/bin/sh", "-c", "exit 1"});
  // Exits at 0, then restarts 100, 200, 400, 400 ms after each exit.
  ASSERT_FALSE(s.wait_for("crash 5 in a row", 10s).empty()) << s.output();
  auto stamp = [](const std::string& line) {
    // 2026-12-01T22:40:22.052Z: seconds of the day are enough here.
    const int h = std::stoi(line.substr(11, 2)), m = std::stoi(line.substr(14, 2));
    const double sec = std::stod(line.substr(17, 6));
    return std::chrono::duration_cast<clock::duration>(
        std::chrono::duration<double>(h * 3600 + m * 60 + sec));
  };
  clock::duration exited{};
  std::vector<double> delays;
  for (const auto& line : s.lines()) {
    if (line.find("restarting in") != std::string::npos) exited = stamp(line);
    if (line.find(": restart ") != std::string::npos && exited.count())
      delays.push_back(std::chrono::duration<double, std::milli>(stamp(line) - exited).count());
  }
  ASSERT_GE(delays.size(), 4u) << s.output();
  // Never early by more than ten percent; late by ten percent plus the wake-up latency of a
  // loaded machine (with ten percent alone, it failed once on a machine at load 10).
  const double expected[] = {100, 200, 400, 400};
  constexpr double wake_up_ms = 20;
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_GE(delays[i], expected[i] * 0.9) << "restart " << i + 1;
    EXPECT_LE(delays[i], expected[i] * 1.1 + wake_up_ms) << "restart " << i + 1;
  }
  const command_result status = s.ctl({"status", "--json"});
  EXPECT_NE(status.out.find("restarting"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("exit 1"), std::string::npos) << status.out;
}

TEST_F(SupervisorCrash, AWorkersLastWordsAreLoggedBeforeItsExit) {
  // Its stdout pipe enlarged to 512 KiB and filled in one write, then a last line on each
  // stream and the exit at once: most of the output is still in the pipe when the supervisor
  // learns of the exit, and it reads 64 KiB at a time.
  const std::string worker = script(dir, "last_words.py",
                                    "import fcntl, os\n"
                                    "fcntl.fcntl(1, 1031, 512 * 1024)  # F_SETPIPE_SZ\n"
                                    "os.write(1, (('x' * 99 + '\\n') * 5000).encode() + "
                                    "b'last words\\n')\n"
                                    "os.write(2, b'last error\\n')\n"
                                    "os._exit(3)");
  supervisor& s = start(
      {"--instances", "1", "--ready", "after", "--ready-after", "10s", "--restart-delay", "10s"},
      {"/usr/bin/python3", worker});
  ASSERT_FALSE(s.wait_for("restarting in", 10s).empty()) << s.output();
  const std::vector<std::string> lines = s.lines();
  auto first = [&](std::string_view text) {
    return std::find_if(lines.begin(), lines.end(),
                        [&](const std::string& l) { return l.find(text) != std::string::npos; }) -
           lines.begin();
  };
  const auto exit_line = first("restarting in");
  EXPECT_LT(first("last words"), exit_line);
  EXPECT_LT(first("last error"), exit_line);
  EXPECT_EQ(std::count_if(lines.begin(), lines.begin() + exit_line,
                          [](const std::string& l) {
                            return l.find(std::string(99, 'x')) != std::string::npos;
                          }),
            5000)
      << "every line of the output, before the exit";
}

TEST_F(SupervisorCrash, Step4NoZombieAfterAThousandCrashRestarts) {
  // Each of two slots crashes 500 times (leaving a grandchild each time, for the subreaper to
  // reap), then stays up.
  const std::string worker =
      script(dir, "crash.sh",
             "count=" + dir.file("count") +
                 ".$LAMEDUCK_WORKER\n"
                 "n=$(cat $count 2>/dev/null || echo 0)\necho $((n + 1)) > $count\n"
                 "[ $n -ge 500 ] && exec sleep 600\nsleep 0 &\nexit 1");
  supervisor& s = start({"--instances", "2", "--ready", "after", "--ready-after", "10s",
                         "--restart-delay", "1ms", "--restart-factor", "1", "--restart-max", "1ms"},
                        {worker});
  ASSERT_TRUE(eventually([&] { return s.count("restarting in") >= 1000; }, 60s))
      << s.count("restarting in");
  EXPECT_TRUE(eventually([&] { return zombies_of(s.pid()) == 0; }, 5s)) << zombies_of(s.pid());
  EXPECT_EQ(s.count("restarting in"), 1000u);
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait_exit(), 0) << s.output().substr(0, 2000);
}

TEST_F(SupervisorStop, Step5StopLetsRequestsInFlightFinishAndExitsZero) {
  supervisor& s = start_hello(2);
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready());
  raw_client busy(port);
  busy.send("GET /delay?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_FALSE(busy.readable_within(100ms));
  const command_result r = s.ctl({"stop"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(status_of(busy.read_response()), 200);
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorStop, Step5AParentThatLeftItsSignalsBlockedDoesNotMakeItDeaf) {
  launch how;
  how.blocked_signals = {SIGTERM, SIGCHLD, SIGHUP};
  supervisor& s = start_hello(1, {}, how);
  ASSERT_TRUE(s.ready());
  const std::vector<int> first = worker_pids(s);
  ASSERT_EQ(first.size(), 1u);
  s.signal(SIGHUP);  // a reload: the old worker's exit must be seen
  EXPECT_TRUE(eventually([&] {
    const std::vector<int> now = worker_pids(s);
    return now.size() == 1 && now != first && worker_pids(s, "stopping").empty();
  })) << "the old worker is not reaped: "
      << s.ctl({"status"}).out;
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0)) << "SIGTERM was left blocked";
}

TEST_F(SupervisorStop, Step5OnceTheWorkersStopAcceptingTheSupervisorsPortRefuses) {
  // A worker still drains a request, so the supervisor lives on: the port must not go on
  // queueing connections that nobody will accept, to reset them when the supervisor exits.
  supervisor& s = start_hello(2);
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready());
  auto busy = std::make_unique<raw_client>(port);
  busy->send("GET /delay?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_FALSE(busy->readable_within(100ms));
  s.signal(SIGTERM);
  ASSERT_FALSE(s.wait_for("draining, it says").empty()) << s.output();
  // The workers close their listeners as they begin to drain, a moment after they say so.
  EXPECT_TRUE(eventually([&] { return connection_refused(port); }, 1s))
      << "connections are queued on the supervisor's copy of the socket";
  EXPECT_FALSE(busy->readable_within(0ms)) << "refused only once everything had stopped";
  EXPECT_EQ(status_of(busy->read_response()), 200);
  busy.reset();  // its worker's lingering close ends with it
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorStop, Step5AWorkerThatIgnoresItsStopSignalIsKilledWithItsGroup) {
  const std::string pids = dir.file("pids");
  const std::string worker = script(dir, "stubborn.sh",
                                    "trap '' TERM\nsleep 600 &\necho $! >> " + pids +
                                        "\n"
                                        "echo > /dev/fd/$LAMEDUCK_READY_FD\nwait");
  supervisor& s =
      start({"--instances", "1", "--ready-fd", "3", "--kill-timeout", "500ms"}, {worker});
  ASSERT_TRUE(s.ready());
  std::ifstream in(pids);
  int grandchild = 0;
  in >> grandchild;
  ASSERT_GT(grandchild, 0);
  const auto start = clock::now();
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(1)) << "a worker had to be killed";
  EXPECT_GE(clock::now() - start, 500ms);
  EXPECT_LT(clock::now() - start, 5s);
  EXPECT_FALSE(process_exists(grandchild)) << "its grandchild died with its group";
  EXPECT_FALSE(s.wait_for("killing its process group").empty()) << s.output();
}

TEST_F(SupervisorStop, Step5ASecondSignalKillsAtOnce) {
  const std::string worker =
      script(dir, "stubborn.sh",
             "trap '' TERM\necho > /dev/fd/$LAMEDUCK_READY_FD\nwhile :; do sleep 1; done");
  supervisor& s = start({"--instances", "1", "--ready-fd", "3", "--kill-timeout", "60s"}, {worker});
  ASSERT_TRUE(s.ready());
  s.signal(SIGTERM);
  ASSERT_FALSE(s.wait_for("a second signal kills them").empty());
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(1, 5s));
}

TEST_F(SupervisorProcess, Step6AWrapperWorkersReadinessIsAttributedThroughTheShell) {
  // The shell is the worker's first process; READY=1 comes from another pid, its child, in
  // the worker's process group (as with `npm start` or `sh -c` without exec). As root, the
  // child also drops to another user, so that only its process group vouches for it.
  temp_dir code;  // readable by the other user (the control socket's directory is not)
  ::chmod(code.path().c_str(), 0755);
  const std::string notify = code.file("notify.py");
  std::ofstream(notify) << "import os, socket, time\n"
                           "if os.geteuid() == 0:\n"
                           "    os.setuid(65534)\n"
                           "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                           "s.sendto(b'READY=1', '\\0' + os.environ['NOTIFY_SOCKET'][1:])\n"
                           "time.sleep(600)\n";
  supervisor& s = start({"--instances", "1", "--ready-timeout", "5s"},
                        {"/bin/sh", "-c", "/usr/bin/python3 " + notify + "; true"});
  ASSERT_TRUE(s.ready(4s));
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorProcess, Step6WhenTheSupervisorIsKilledWorkersDrainAndThePortIsFree) {
  supervisor& killed = start_hello(2);
  // A port of the kernel's choosing that a second supervisor binds again.
  const std::uint16_t port = killed.port();
  ASSERT_TRUE(killed.ready());
  const std::vector<int> pids = worker_pids(killed);
  killed.signal(SIGKILL);
  killed.wait_exit();
  ASSERT_EQ(pids.size(), 2u);
  for (int pid : pids)
    EXPECT_TRUE(eventually([&] { return !process_exists(pid); }, 5s)) << "worker " << pid;
  const auto begun = clock::now();
  supervisor& next =
      start({"--instances", "1", "--listen", "127.0.0.1:" + std::to_string(port)}, hello());
  ASSERT_TRUE(next.ready());
  EXPECT_EQ(status_of(get_once(port)), 200);
  EXPECT_LT(clock::now() - begun, 1s);
}

TEST_F(SupervisorProcess, Step6AnyWorkerGetsItsStopSignalWhenTheSupervisorIsKilled) {
  // Not a lameduck server: no lifeline is watched, only the kernel's parent-death signal.
  const std::string pids = dir.file("pids");
  const std::string worker =
      script(dir, "plain.sh",
             "echo $$ >> " + pids + "\necho > /dev/fd/$LAMEDUCK_READY_FD\nexec sleep 600");
  supervisor& s = start({"--instances", "2", "--ready", "fd"}, {worker});
  ASSERT_TRUE(s.ready());
  std::vector<int> workers;
  std::ifstream in(pids);
  for (int pid; in >> pid;)
    workers.push_back(pid);
  s.signal(SIGKILL);
  s.wait_exit();
  ASSERT_EQ(workers.size(), 2u);
  for (int pid : workers)
    EXPECT_TRUE(eventually([&] { return !process_exists(pid); }, 5s)) << "worker " << pid;
}

TEST_F(SupervisorProcess, Step7AHungWorkerIsReplacedByTheWatchdogNewOneFirst) {
  // The first worker pings twice, then hangs and ignores SIGTERM (a loop stuck in a
  // handler); the ones after it ping on.
  const std::string worker = dir.file("hang.py");
  std::ofstream(worker) << "import os, signal, socket, time\n"
                           "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                           "addr = '\\0' + os.environ['NOTIFY_SOCKET'][1:]\n"
                           "s.sendto(b'READY=1', addr)\n"
                           "first = not os.path.exists(os.environ['MARKER'])\n"
                           "open(os.environ['MARKER'], 'w').close()\n"
                           "for _ in range(2):\n"
                           "    time.sleep(0.1)\n"
                           "    s.sendto(b'WATCHDOG=1', addr)\n"
                           "if first:\n"
                           "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                           "    time.sleep(600)\n"
                           "while True:\n"
                           "    time.sleep(0.1)\n"
                           "    s.sendto(b'WATCHDOG=1', addr)\n";
  supervisor& s = start({"--instances", "1", "--watchdog", "500ms", "--kill-timeout", "300ms",
                         "--env", "MARKER=" + dir.file("started")},
                        {"/usr/bin/python3", worker});
  ASSERT_TRUE(s.ready());
  const std::string hung = s.wait_for("no watchdog ping for 0.50s; replacing it", 5s);
  ASSERT_FALSE(hung.empty()) << s.output();
  const std::string pid = hung.substr(hung.find(" pid ") + 5,
                                      hung.find(':', hung.find(" pid ")) - hung.find(" pid ") - 5);
  const std::string replaced = s.wait_for("; pid " + pid + " stopping", 5s);
  EXPECT_FALSE(replaced.empty()) << "a new worker is ready before the hung one is stopped: "
                                 << s.output();
  EXPECT_FALSE(
      s.wait_for("pid " + pid + ": still running 0.30s after SIGTERM; killing", 5s).empty())
      << s.output();
  EXPECT_FALSE(s.wait_for("pid " + pid + ": killed by SIGKILL", 5s).empty()) << s.output();
  // The replacement pings: it is not replaced in turn.
  EXPECT_EQ(s.count("no watchdog ping"), 1u) << s.output();
}

TEST_F(SupervisorProcess, Step7AWorkerOverItsMemoryLimitIsReplaced) {
  // The first worker grows past the limit; the next one does not.
  const std::string worker = dir.file("grow.py");
  std::ofstream(worker) << "import os, time\n"
                           "fd = int(os.environ['LAMEDUCK_READY_FD'])\n"
                           "os.write(fd, b'\\n')\n"
                           "if not os.path.exists(os.environ['MARKER']):\n"
                           "    open(os.environ['MARKER'], 'w').close()\n"
                           "    hog = bytearray(80 << 20)\n"
                           "time.sleep(600)\n";
  supervisor& s = start({"--instances", "1", "--ready", "fd", "--max-memory", "50M", "--env",
                         "MARKER=" + dir.file("started")},
                        {"/usr/bin/python3", worker});
  ASSERT_TRUE(s.ready());
  ASSERT_FALSE(s.wait_for("exceeds 50 MiB; replacing it", 5s).empty()) << s.output();
  EXPECT_FALSE(s.wait_for("(memory)", 5s).empty()) << "the old worker is stopped: " << s.output();
  EXPECT_EQ(s.count("exceeds 50 MiB"), 1u) << s.output();
}

TEST_F(SupervisorWorkers, Step10ThePythonWorkerOfTheGuideReloadsWithoutAFailedRequest) {
  supervisor& s = start({"--instances", "2", "--listen", "127.0.0.1:0", "--ready", "fd"},
                        {"/usr/bin/python3", source_path("../../examples/python/worker.py")});
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready());
  EXPECT_NE(get_once(port).find("Hello from Python"), std::string::npos);
  load traffic(port, 4);
  for (int i = 0; i < 2; ++i) {
    const command_result r = s.ctl({"reload"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  EXPECT_TRUE(traffic.stop_without_failure());
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0));
}

// The Node.js worker of the guide (examples/node/worker.js), when Node.js is installed
// (scripts/setup installs it).
std::vector<std::string> node_worker(std::string idle_grace) {
  return {"/usr/bin/node", source_path("../../examples/node/worker.js"), "--idle-grace",
          std::move(idle_grace)};
}

TEST_F(SupervisorWorkers, Step10TheNodeWorkerOfTheGuideReloadsWithoutAFailedRequest) {
  if (::access("/usr/bin/node", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/node";
  supervisor& s =
      start({"--instances", "2", "--listen", "127.0.0.1:0", "--ready", "fd"}, node_worker("2"));
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready(20s));
  EXPECT_NE(get_once(port).find("Hello, World!"), std::string::npos);
  load traffic(port, 4);
  for (int i = 0; i < 2; ++i) {
    const command_result r = s.ctl({"reload"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  EXPECT_TRUE(traffic.stop_without_failure());
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorWorkers, TheNodeWorkerKeepsAnIdleConnectionForItsNextRequestWhileItDrains) {
  if (::access("/usr/bin/node", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/node";
  supervisor& s =
      start({"--instances", "1", "--listen", "127.0.0.1:0", "--ready", "fd"}, node_worker("10"));
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready(20s));
  raw_client idle(port);
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string r = idle.read_response(5s);
  ASSERT_EQ(status_of(r), 200) << r;
  ASSERT_NE(header_of(r, "Connection"), "close") << r;
  // The reload stops the worker that holds the idle connection once its replacement is ready.
  // (A future, not a thread: a failure that throws below waits for it instead of terminating
  // the test program, which would leave the supervisor running.)
  auto reload = std::async(std::launch::async, [&] { return s.ctl({"reload"}); });
  const bool draining = !s.wait_for("draining 1 connections (1 idle)", 20s).empty();
  EXPECT_TRUE(draining) << s.output();
  // The idle connection was left open: the request sent on it is answered, with
  // Connection: close, and then the connection ends, before the 10 s idle grace.
  EXPECT_FALSE(idle.closed_within(200ms));
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  r = idle.read_response(5s);
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(header_of(r, "Connection"), "close") << r;
  EXPECT_TRUE(idle.closed_within(2s));
  EXPECT_FALSE(idle.was_reset());
  const command_result reloaded = reload.get();
  EXPECT_EQ(reloaded.exit_code, 0) << reloaded.out << reloaded.err;
  EXPECT_FALSE(s.wait_for("drained in", 5s).empty()) << s.output();
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorUpgrade, Step9TheSupervisorReplacesItsBinaryUnderLoadKeepingItsWorkers) {
  supervisor& s = start_hello(2);
  const std::uint16_t port = s.port();
  ASSERT_TRUE(s.ready());
  const auto workers = worker_pids(s);
  load traffic(port);
  const command_result r = s.ctl({"upgrade"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("upgraded: pid " + std::to_string(s.pid())), std::string::npos)
      << r.out << r.err;
  EXPECT_EQ(worker_pids(s), workers) << "the workers kept serving, as its children";
  // The worker table came along: a reload replaces those very workers, the exit is reaped.
  const command_result reload = s.ctl({"reload"});
  EXPECT_EQ(reload.exit_code, 0) << reload.out << reload.err;
  s.signal(SIGUSR2);  // the signal does the same
  ASSERT_FALSE(s.wait_for("upgraded: pid", 10s, false).empty()) << s.output();
  EXPECT_TRUE(traffic.stop_without_failure());
  for (int pid : workers)
    EXPECT_FALSE(process_exists(pid));
  s.signal(SIGTERM);
  EXPECT_TRUE(s.exits_with(0));
}

TEST_F(SupervisorControl, Step8ASecondSupervisorOnTheSameControlSocketRefusesToStart) {
  supervisor& first = start_hello(1);
  ASSERT_TRUE(first.ready());
  supervisor& second = start_hello(1);
  EXPECT_TRUE(second.exits_with(1));
  EXPECT_NE(second.output().find("another supervisor is running on"), std::string::npos)
      << second.output();
  EXPECT_EQ(first.ctl({"status"}).exit_code, 0) << "the first one is undisturbed";
}

TEST_F(SupervisorControl, Step8LogsKeepsTheWorkersLastLinesBySlot) {
  const std::string worker = script(dir, "talk.sh",
                                    "echo \"hello from $LAMEDUCK_WORKER\"\necho oops >&2\n"
                                    "echo > /dev/fd/$LAMEDUCK_READY_FD\nexec sleep 600");
  supervisor& s = start({"--instances", "2", "--ready-fd", "3"}, {worker});
  ASSERT_TRUE(s.ready());
  ASSERT_FALSE(s.wait_for("hello from 1").empty());
  const command_result one = s.ctl({"logs", "--worker", "1"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("hello from 1"), std::string::npos) << one.out;
  EXPECT_EQ(one.out.find("hello from 0"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("oops"), std::string::npos) << one.out;
  // Each line: time stamp, program.slot[pid].
  EXPECT_TRUE(std::regex_search(
      one.out, std::regex(R"(\d{4}-\d\d-\d\dT[0-9:.]+Z app\.1\[\d+\]: hello from 1)")))
      << one.out;
}

TEST_F(SupervisorControl, Step8LogsFollowStreamsNewLinesAsTheyCome) {
  const std::string worker =
      script(dir, "tick.sh",
             "echo > /dev/fd/$LAMEDUCK_READY_FD\n"
             "i=0; while :; do i=$((i + 1)); echo \"tick $i\"; sleep 0.05; done");
  supervisor& s = start({"--instances", "1", "--ready", "fd"}, {worker});
  ASSERT_TRUE(s.ready());
  ASSERT_FALSE(s.wait_for("tick 3").empty());
  // It does not end by itself: the harness stops it at its deadline, with what it printed.
  const command_result r = s.ctl({"logs", "-f", "-n", "1"}, 700ms);
  const auto ticks = std::count(r.out.begin(), r.out.end(), '\n');
  EXPECT_GE(ticks, 4) << "one past line, then new ones as they come: " << r.out;
  EXPECT_EQ(s.ctl({"status"}).exit_code, 0) << "the supervisor is undisturbed by its going";
}

TEST_F(SupervisorControl, Step8LogFilesPerSlotAreReopenedOnSigusr1) {
  const std::string worker =
      script(dir, "talk.sh",
             "echo \"first from $LAMEDUCK_WORKER\"\necho > /dev/fd/$LAMEDUCK_READY_FD\n"
             "trap 'echo \"second from $LAMEDUCK_WORKER\"' USR2\nwhile :; do sleep 0.05; done");
  supervisor& s = start(
      {"--name", "web", "--instances", "2", "--ready", "fd", "--log-dir", dir.path()}, {worker});
  ASSERT_TRUE(s.ready());
  ASSERT_FALSE(s.wait_for("first from 1").empty());
  ASSERT_FALSE(s.wait_for("first from 0").empty());
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_NE(read(dir.file("web.1.log")).find("web.1["), std::string::npos);
  EXPECT_NE(read(dir.file("web.1.log")).find("first from 1"), std::string::npos);
  EXPECT_EQ(read(dir.file("web.1.log")).find("first from 0"), std::string::npos);
  // Rotation: the file is moved away, SIGUSR1, and the next line goes to a new file.
  ASSERT_EQ(::rename(dir.file("web.1.log").c_str(), dir.file("web.1.log.old").c_str()), 0);
  s.signal(SIGUSR1);
  ASSERT_FALSE(s.wait_for("log files reopened").empty());
  for (int pid : worker_pids(s))
    ::kill(pid, SIGUSR2);
  ASSERT_FALSE(s.wait_for("second from 1").empty());
  EXPECT_NE(read(dir.file("web.1.log")).find("second from 1"), std::string::npos);
  EXPECT_EQ(read(dir.file("web.1.log.old")).find("second from 1"), std::string::npos);
}

TEST_F(SupervisorControl, Step8ScaleAddsAndRemovesWorkers) {
  supervisor& s = start_hello(1);
  ASSERT_TRUE(s.ready());
  EXPECT_EQ(s.ctl({"scale", "3"}).exit_code, 0);
  EXPECT_TRUE(eventually([&] { return worker_pids(s).size() == 3; })) << s.output();
  const auto three = worker_pids(s);
  EXPECT_EQ(s.ctl({"scale", "1"}).exit_code, 0);
  EXPECT_TRUE(eventually([&] { return worker_pids(s).size() == 1; })) << s.output();
  EXPECT_EQ(s.ctl({"status", "--json"}).out.find("\"slot\": 2"), std::string::npos);
}

// Records in order: find() is the position of the first one at or after `from` that matches.
class record_log {
 public:
  explicit record_log(const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
      try {
        records_.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception&) {
        ADD_FAILURE() << "not one JSON object: " << line;
      }
    }
  }
  static constexpr std::size_t none = std::size_t(-1);
  /// The first record at or after from whose fields include every one of `fields`.
  std::size_t find(const nlohmann::json& fields, std::size_t from = 0) const {
    for (std::size_t i = from == none ? records_.size() : from; i < records_.size(); ++i) {
      const bool all =
          std::all_of(fields.items().begin(), fields.items().end(), [&](const auto& f) {
            return records_[i].contains(f.key()) && records_[i][f.key()] == f.value();
          });
      if (all) return i;
    }
    return none;
  }
  const nlohmann::json& operator[](std::size_t i) const { return records_.at(i); }
  std::string dump() const {
    std::string all;
    for (const auto& r : records_)
      all += r.dump() + "\n";
    return all;
  }

 private:
  std::vector<nlohmann::json> records_;
};

TEST_F(SupervisorLogs, JsonLinesShowEveryPhaseOfEachStopInOrder) {
  supervisor& s = start_hello(1, {"--log-format", "json"});
  ASSERT_TRUE(s.ready());
  const std::vector<int> before = worker_pids(s);
  const command_result reload = s.ctl({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.out << reload.err;
  const std::vector<int> after = worker_pids(s);
  s.signal(SIGTERM);
  ASSERT_TRUE(s.exits_with(0));
  ASSERT_EQ(before.size(), 1u);
  ASSERT_EQ(after.size(), 1u);
  const int old = before[0], next = after[0];
  const record_log log(s.lines());
  // Each step at or after the one before; a worker's own line is a field of its record.
  std::size_t at = 0;
  auto then = [&](const nlohmann::json& fields) {
    at = log.find(fields, at);
    EXPECT_NE(at, record_log::none) << fields.dump() << " in order in\n" << log.dump();
    return at;
  };
  then({{"event", "reload_started"}, {"program", "app"}, {"generation", 2}});
  then({{"event", "worker_ready"}, {"pid", next}, {"replaces_pid", old}});
  const std::size_t ordered = then({{"event", "worker_stop_ordered"},
                                    {"pid", old},
                                    {"signal", "SIGTERM"},
                                    {"reason", "reload"}});
  then({{"event", "worker_draining"}, {"pid", old}, {"status", "draining"}});
  const std::size_t exited =
      then({{"event", "worker_exited"}, {"pid", old}, {"exit", "exit 0"}, {"outcome", "graceful"}});
  then({{"event", "reload_finished"}, {"ok", true}, {"generation", 2}});
  // What the worker itself wrote of its drain (lameduck-hello's stop lines), relayed between
  // the order and its exit.
  const std::size_t relayed = log.find({{"pid", old}, {"stream", "stderr"}, {"slot", 0}}, ordered);
  ASSERT_LT(relayed, exited) << log.dump();
  EXPECT_EQ(log[relayed]["program"], "app");
  EXPECT_EQ(log[relayed]["msg"], "output");
  EXPECT_NE(log[relayed]["line"].get<std::string>().find("lameduck: drain ordered"),
            std::string::npos)
      << log[relayed];
  const std::size_t last = log.find({{"pid", old}, {"stream", "stderr"}}, relayed + 1);
  ASSERT_LT(last, exited) << "its last line before the one that says it exited: " << log.dump();
  EXPECT_NE(log[last]["line"].get<std::string>().find("lameduck: stopped gracefully"),
            std::string::npos)
      << log[last];
  // The supervisor's own stop.
  then({{"event", "stopping"}, {"trigger", "SIGTERM"}});
  then({{"event", "worker_stop_ordered"}, {"pid", next}, {"reason", "stop"}});
  then({{"event", "worker_exited"}, {"pid", next}, {"outcome", "graceful"}});
  then({{"event", "stopped"}, {"ok", true}});
  EXPECT_TRUE(log[at].contains("took_s"));
  EXPECT_TRUE(log[at].contains("time"));
}

/// A scrape by curl, parsed by Prometheus's own parser (prometheus_parse.py: prometheus_client
/// from Debian's python3-prometheus-client): each sample's value by its name and labels
/// (sorted by name), as "lameduck_supervisor_workers{program=\"app\",state=\"ready\"}".
std::map<std::string, double> scrape(const std::string& url) {
  const command_result r = run({"curl", "-sS", "--max-time", "5", "-i", url});
  std::map<std::string, double> samples;
  const auto body = r.out.find("\r\n\r\n");
  EXPECT_TRUE(r.exit_code == 0 && r.out.starts_with("HTTP/1.1 200 OK\r\n") &&
              body != std::string::npos)
      << r.out << r.err;
  if (body == std::string::npos) return samples;
  EXPECT_EQ(header_of(r.out, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const command_result parsed = run({"/usr/bin/python3", source_path("prometheus_parse.py")}, 30s,
                                    std::string_view(r.out).substr(body + 4));
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err << r.out;
  std::istringstream lines(parsed.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("TYPE ") || line.starts_with("HELP ")) continue;
    const auto space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

TEST_F(SupervisorMetricsEndpoint, CountersMoveThroughAReloadACrashAndAnUpgrade) {
  supervisor& s = start_hello(2, {"--metrics-listen", "127.0.0.1:0", "--restart-delay", "10ms"});
  ASSERT_TRUE(s.ready());
  const std::string said = s.wait_for("metrics on http://127.0.0.1:");
  ASSERT_FALSE(said.empty()) << s.output();
  const std::string url = said.substr(said.find("http://"));
  const auto port = static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
  // A scraper that never finishes its request is answered 408 at the deadline (checked last).
  raw_client late(port);
  late.send("GET /metrics HTTP/1.1\r\n");
  const auto late_since = clock::now();

  const std::string ready = "lameduck_supervisor_workers{program=\"app\",state=\"ready\"}";
  const std::string reloads_ok =
      "lameduck_supervisor_reloads_total{outcome=\"ok\",program=\"app\"}";
  const std::string graceful =
      "lameduck_supervisor_worker_exits_total{outcome=\"graceful\",program=\"app\"}";
  const std::string signalled =
      "lameduck_supervisor_restarts_total{program=\"app\",reason=\"signal\"}";
  auto m = scrape(url);
  EXPECT_EQ(m[ready], 2);
  EXPECT_EQ(m["lameduck_supervisor_generation{program=\"app\"}"], 1);
  EXPECT_EQ(m[reloads_ok], 0);
  EXPECT_EQ(m[graceful], 0);
  EXPECT_EQ(m[signalled], 0);
  EXPECT_GT(m["lameduck_supervisor_worker_resident_bytes{program=\"app\",slot=\"1\"}"], 0);

  const command_result reload = s.ctl({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.out << reload.err;
  m = scrape(url);
  EXPECT_EQ(m[reloads_ok], 1);
  EXPECT_EQ(m["lameduck_supervisor_generation{program=\"app\"}"], 2);
  EXPECT_EQ(m[graceful], 2) << "both old workers drained and exited on their own";

  // A crash: the worker is restarted, and the restart counted by its reason.
  const std::vector<int> pids = worker_pids(s);
  ASSERT_EQ(pids.size(), 2u);
  ::kill(pids[0], SIGKILL);
  EXPECT_TRUE(eventually([&] {
    m = scrape(url);
    return m[signalled] == 1 && m[ready] == 2;
  })) << s.output();

  // (An upgrade ends the connections of scrapers, as of control clients: checked before.)
  const std::string timed_out = late.read_response(5s);
  EXPECT_EQ(status_of(timed_out), 408) << timed_out;
  EXPECT_GE(clock::now() - late_since, 1900ms);
  EXPECT_TRUE(late.closed_within(1s));

  // The counters live on through an upgrade, which is counted too.
  const command_result upgrade = s.ctl({"upgrade"});
  ASSERT_EQ(upgrade.exit_code, 0) << upgrade.out << upgrade.err;
  m = scrape(url);
  EXPECT_EQ(m["lameduck_supervisor_upgrades_total"], 1);
  EXPECT_EQ(m[reloads_ok], 1);
  EXPECT_EQ(m[signalled], 1);

  // Only GET (and HEAD) /metrics; every answer closes its connection.
  const command_result missing = run({"curl", "-sS", "-i", url + "x"});
  EXPECT_TRUE(missing.out.starts_with("HTTP/1.1 404 ")) << missing.out << missing.err;
  const command_result post = run({"curl", "-sS", "-i", "-X", "POST", url});
  EXPECT_TRUE(post.out.starts_with("HTTP/1.1 405 ")) << post.out << post.err;
  EXPECT_EQ(header_of(post.out, "Allow"), "GET, HEAD");
  EXPECT_EQ(header_of(post.out, "Connection"), "close");
}

TEST(SupervisorCommandLine, Step8BadFlagsAreOneLineAndExitTwo) {
  for (const std::vector<std::string>& argv :
       std::vector<std::vector<std::string>>{{"run", "--instances", "x", "--", "true"},
                                             {"run", "--ready-timeout", "5", "--", "true"},
                                             {"run", "--listen", "nowhere", "--", "true"},
                                             {"run"},
                                             {"frobnicate"}}) {
    std::vector<std::string> full{bin_path("lameduck")};
    full.insert(full.end(), argv.begin(), argv.end());
    const command_result r = run(full);
    EXPECT_EQ(r.exit_code, 2) << argv[0] << " " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

// The supervisor's standard output read by nobody (a log shipper that hangs, a terminal
// paused with Ctrl-S): its loop goes on answering, reaping, reloading, upgrading and relaying
// its workers' output; lines are dropped whole and counted, and said so once output flows.
TEST_F(SupervisorLogs, AStalledStandardOutputNeverBlocksTheLoop) {
  // 40000 lines of 100 bytes, 8 MB as JSON records: the pipe's 64 KiB and the supervisor's
  // 1 MiB buffer several times over, at each start of the worker. Then it serves.
  const std::string flood(100, '7');
  const std::string chatty =
      script(dir, "chatty.sh", "yes " + flood + " | head -n 40000\nexec \"$@\"");
  std::vector<std::string> program{chatty};
  for (auto& a : hello())
    program.push_back(a);
  launch how;
  how.stall_after = "metrics on http://127.0.0.1:";
  supervisor& s = start({"--instances", "1", "--listen", "127.0.0.1:0", "--log-format", "json",
                         "--metrics-listen", "127.0.0.1:0"},
                        program, how);
  const std::string said = s.wait_for(how.stall_after);
  ASSERT_FALSE(said.empty()) << s.output();
  const std::string url = nlohmann::json::parse(said).at("address").get<std::string>();
  // The count, from a quick scrape; -1 when the supervisor does not answer within 2 s.
  auto dropped = [&]() -> double {
    const command_result r = run({"curl", "-sS", "--max-time", "2", url}, 5s);
    const std::string name = "\nlameduck_supervisor_log_lines_dropped_total ";
    const auto at = r.out.find(name);
    if (r.exit_code != 0 || at == std::string::npos) return -1;
    return std::stod(r.out.substr(at + name.size()));
  };
  // Polled: nothing announces that a pipe nobody reads has filled.
  double before_reload = -1;
  for (const auto deadline = clock::now() + 20s; clock::now() < deadline;) {
    before_reload = dropped();
    if (before_reload > 0) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_GT(before_reload, 0) << "the supervisor's loop should answer and count dropped lines";

  // The worker is ready once all its output has been read: the loop still relays.
  const auto asked = clock::now();
  std::vector<int> first;
  while (first.empty() && clock::now() - asked < 20s) {
    const command_result status = s.ctl({"status"}, 5s);
    ASSERT_EQ(status.exit_code, 0) << "status should answer at once: " << status.out << status.err;
    first = worker_pids(s);
  }
  ASSERT_EQ(first.size(), 1u) << s.ctl({"status"}).out;
  // The new worker floods again before it is ready: relayed (and dropped) as it comes.
  const command_result reload = s.ctl({"reload"}, 20s);
  ASSERT_EQ(reload.exit_code, 0) << reload.out << reload.err;
  EXPECT_LT(clock::now() - asked, 20s);
  const std::vector<int> second = worker_pids(s);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NE(second, first);
  const double after_reload = dropped();
  EXPECT_GT(after_reload, before_reload);
  // An upgrade gives up on what it cannot write within a second, and the next binary goes
  // on counting (and tells of the gap once output flows).
  const command_result upgrade = s.ctl({"upgrade"}, 20s);
  ASSERT_EQ(upgrade.exit_code, 0) << upgrade.out << upgrade.err;
  const double after_upgrade = dropped();
  EXPECT_GT(after_upgrade, after_reload) << "the lines buffered when the binary changed";

  s.resume_output();
  const std::string notice = s.wait_for("\"event\":\"log_lines_dropped\"");
  ASSERT_FALSE(notice.empty()) << "no notice of the dropped lines";
  const auto m = scrape(url);  // Prometheus's parser reads the new family too
  const double total = m.at("lameduck_supervisor_log_lines_dropped_total");
  EXPECT_GE(total, after_upgrade);
  s.signal(SIGTERM);
  ASSERT_TRUE(s.exits_with(0));

  // Every line whole: each one JSON, each of the worker's lines all its 100 bytes, and the
  // notices count every line dropped, once.
  double noticed = 0;
  std::size_t relayed = 0;
  for (const auto& line : s.lines()) {
    nlohmann::json r;
    try {
      r = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      ADD_FAILURE() << "a line cut or mixed: " << line.substr(0, 300) << ": " << e.what();
      continue;
    }
    if (r.value("stream", "") == "stdout") {
      EXPECT_EQ(r.at("line"), flood);
      ++relayed;
    }
    if (r.value("event", "") == "log_lines_dropped") {
      noticed += r.at("dropped").get<double>();
      EXPECT_FALSE(r.at("since").get<std::string>().empty()) << line;
      EXPECT_NE(r.at("msg").get<std::string>().find(" lines dropped since "), std::string::npos);
    }
  }
  EXPECT_EQ(noticed, total);
  EXPECT_GT(relayed, 0u);
  EXPECT_LT(relayed, 80000u);
}

// The supervisor's CPU time so far (user and system), in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {  // fields 14 and 15 of proc(5)
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

TEST_F(SupervisorLogs, AReaderThatClosesStandardOutputCostsTheLoopNothing) {
  launch how;
  how.stall_after = "every worker is ready";
  supervisor& s = start_hello(1, {}, how);
  ASSERT_FALSE(s.wait_for(how.stall_after).empty()) << s.output();
  s.close_output();
  // The pipe reports an error from now on, whatever the loop asks for: it must stop asking.
  const command_result reload = s.ctl({"reload"}, 20s);  // lines written into the broken pipe
  ASSERT_EQ(reload.exit_code, 0) << reload.out << reload.err;
  const long before = cpu_ticks(s.pid());
  std::this_thread::sleep_for(500ms);  // a span to measure, not an event to wait for
  const long spent = cpu_ticks(s.pid()) - before;
  EXPECT_LT(spent, ::sysconf(_SC_CLK_TCK) / 10) << "ticks in 0.5 s of an idle supervisor";
  EXPECT_EQ(s.ctl({"status"}, 5s).exit_code, 0);
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait_exit(), 0);
}

}  // namespace
}  // namespace lameduck::testing
