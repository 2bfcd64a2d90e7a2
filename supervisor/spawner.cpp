// fork and exec of a worker. Between the two, the child of a process that may have other
// threads may only make async-signal-safe calls: the argument and environment arrays, the
// descriptor plan and even the digits of LISTEN_PID's placeholder are all prepared before.

#include "spawner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>

extern char** environ;

namespace lameduck::supervisor {

unique_fd& unique_fd::operator=(unique_fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {

bool executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// The variables the supervisor sets for its workers, removed from what it passes on: its own
// service manager's values are not the worker's.
bool overridden(std::string_view entry) {
  static constexpr std::string_view names[] = {
      "LISTEN_FDS=",        "LISTEN_PID=",          "LISTEN_FDNAMES=",  "NOTIFY_SOCKET=",
      "WATCHDOG_USEC=",     "WATCHDOG_PID=",        "LAMEDUCK_WORKER=", "LAMEDUCK_GENERATION=",
      "LAMEDUCK_READY_FD=", "LAMEDUCK_LIFELINE_FD="};
  return std::any_of(std::begin(names), std::end(names),
                     [&](std::string_view n) { return entry.starts_with(n); });
}

// The datagram socket a worker's NOTIFY_SOCKET names: abstract (nothing to clean up in the
// file system) and passing credentials, so that a message is attributed to the sender's pid.
unique_fd notify_socket(const std::string& name, std::error_code& ec) {
  unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    ec.assign(errno, std::system_category());
    return {};
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::size_t length = std::min(name.size(), sizeof address.sun_path - 1);
  std::memcpy(address.sun_path + 1, name.data(), length);  // sun_path[0] == 0: abstract
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0 ||
      ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address),
             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + length)) != 0) {
    ec.assign(errno, std::system_category());
    return {};
  }
  return fd;
}

// Writes n's digits over the spaces at text (async-signal-safe; for LISTEN_PID).
void write_number(char* text, std::size_t room, long n) {
  char digits[24];
  std::size_t count = 0;
  do {
    digits[count++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n && count < sizeof digits);
  std::size_t i = 0;
  for (; i < count && i < room; ++i)
    text[i] = digits[count - 1 - i];
  text[i] = '\0';
}

}  // namespace

std::string find_program(const std::string& program) {
  if (program.empty()) return {};
  if (program.find('/') != std::string::npos) return executable(program) ? program : std::string{};
  const char* path = std::getenv("PATH");
  std::string_view rest = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (;;) {
    const auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    if (executable(candidate)) return candidate;
    if (colon == std::string_view::npos) return {};
    rest.remove_prefix(colon + 1);
  }
}

spawned_worker spawn_worker(const program_config& p, const spawn_context& c, std::error_code& ec) {
  spawned_worker out;
  const std::string path = find_program(p.command.at(0));
  if (path.empty()) {
    ec = std::make_error_code(std::errc::no_such_file_or_directory);
    return out;
  }

  // The descriptors the child will have: where each comes from, and its number there.
  struct placement {
    int from, to;
  };
  std::vector<placement> plan;
  int pipe_out[2], pipe_err[2], pipe_ready[2] = {-1, -1}, pipe_exec[2];
  unique_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null || ::pipe2(pipe_out, O_CLOEXEC) != 0) {
    ec.assign(errno, std::system_category());
    return out;
  }
  unique_fd out_read(pipe_out[0]), out_write(pipe_out[1]);
  if (::pipe2(pipe_err, O_CLOEXEC) != 0) {
    ec.assign(errno, std::system_category());
    return out;
  }
  unique_fd err_read(pipe_err[0]), err_write(pipe_err[1]);
  unique_fd ready_read, ready_write;
  if (p.readiness == readiness_mode::fd) {
    if (::pipe2(pipe_ready, O_CLOEXEC) != 0) {
      ec.assign(errno, std::system_category());
      return out;
    }
    ready_read.reset(pipe_ready[0]);
    ready_write.reset(pipe_ready[1]);
  }
  if (::pipe2(pipe_exec, O_CLOEXEC) != 0) {
    ec.assign(errno, std::system_category());
    return out;
  }
  unique_fd exec_read(pipe_exec[0]), exec_write(pipe_exec[1]);
  unique_fd notify = notify_socket(c.notify_name, ec);
  if (ec) return out;

  plan.push_back({null.get(), 0});
  plan.push_back({out_write.get(), 1});
  plan.push_back({err_write.get(), 2});
  int next = 3;
  for (const auto& s : c.sockets)
    plan.push_back({s.fd, next++});
  if (ready_write) {
    plan.push_back({ready_write.get(), p.ready_fd});
    next = std::max(next, p.ready_fd + 1);
  }
  const int lifeline_fd = c.lifeline >= 0 ? next++ : -1;
  if (c.lifeline >= 0) plan.push_back({c.lifeline, lifeline_fd});
  int highest = 0;
  for (const auto& step : plan)
    highest = std::max({highest, step.from, step.to});

  // The environment: the supervisor's own, without what it sets itself, then the worker's.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    if (overridden(entry)) continue;
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos && p.environment.count(std::string(entry.substr(0, eq))))
      continue;
    env.emplace_back(entry);
  }
  for (const auto& [name, value] : p.environment)
    env.push_back(name + "=" + value);
  std::string names;
  bool named = false;
  for (std::size_t i = 0; i < c.sockets.size(); ++i) {
    if (i) names += ':';
    names += c.sockets[i].name;
    named = named || !c.sockets[i].name.empty();
  }
  if (!c.sockets.empty()) {
    env.push_back("LISTEN_FDS=" + std::to_string(c.sockets.size()));
    if (named) env.push_back("LISTEN_FDNAMES=" + names);
    env.push_back("LISTEN_PID=" + std::string(20, ' '));  // the child writes its pid here
  }
  env.push_back("NOTIFY_SOCKET=@" + c.notify_name);
  if (p.watchdog.count())
    env.push_back("WATCHDOG_USEC=" + std::to_string(p.watchdog.count() * 1000));
  env.push_back("LAMEDUCK_WORKER=" + std::to_string(c.slot));
  env.push_back("LAMEDUCK_GENERATION=" + std::to_string(c.generation));
  if (ready_write) env.push_back("LAMEDUCK_READY_FD=" + std::to_string(p.ready_fd));
  if (lifeline_fd >= 0) env.push_back("LAMEDUCK_LIFELINE_FD=" + std::to_string(lifeline_fd));
  std::vector<char*> envp;
  char* listen_pid = nullptr;
  for (auto& e : env) {
    envp.push_back(e.data());
    if (e.starts_with("LISTEN_PID=")) listen_pid = e.data() + std::strlen("LISTEN_PID=");
  }
  envp.push_back(nullptr);
  std::vector<std::string> args(p.command);
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  const char* directory = p.directory.empty() ? nullptr : p.directory.c_str();
  const int stop_signal = p.stop_signal;
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    ec.assign(errno, std::system_category());
    return out;
  }
  if (pid == 0) {
    // The child: async-signal-safe calls only, until execve.
    ::setpgid(0, 0);
    // The parent-death signal, then the check that closes the race: a supervisor that died
    // before prctl would never send it.
    ::prctl(PR_SET_PDEATHSIG, stop_signal);
    if (::getppid() != parent) ::_exit(127);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
      ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Every source first moves above every target, so that no dup2 overwrites a source.
    for (auto& step : plan)
      step.from = ::fcntl(step.from, F_DUPFD_CLOEXEC, highest + 1);
    for (const auto& step : plan)
      ::dup2(step.from, step.to);  // dup2 clears close-on-exec
    if (listen_pid) write_number(listen_pid, 20, ::getpid());
    int error = 0;
    if (directory && ::chdir(directory) != 0) error = errno;
    if (!error) {
      ::execve(path.c_str(), argv.data(), envp.data());
      error = errno;
    }
    [[maybe_unused]] auto ignored = ::write(exec_write.get(), &error, sizeof error);
    ::_exit(127);
  }
  // Also here, so that the group exists before the first signal to it.
  ::setpgid(pid, pid);
  exec_write.reset();
  int error = 0;
  ssize_t n;
  do
    n = ::read(exec_read.get(), &error, sizeof error);
  while (n < 0 && errno == EINTR);
  if (n == sizeof error) {
    // The child could not exec; it has exited with 127 and is reaped like any other child.
    ec.assign(error, std::system_category());
    return out;
  }
  // The supervisor's ends never block: the loop reads what is there, and at a worker's exit
  // everything it wrote before it (its last words come before the line saying it exited).
  for (const unique_fd* end : {&out_read, &err_read, &ready_read})
    if (*end) ::fcntl(end->get(), F_SETFL, ::fcntl(end->get(), F_GETFL) | O_NONBLOCK);
  out.pid = pid;
  out.output = std::move(out_read);
  out.errors = std::move(err_read);
  out.notify = std::move(notify);
  out.ready = std::move(ready_read);
  return out;
}

}  // namespace lameduck::supervisor
