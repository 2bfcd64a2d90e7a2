// Signal handling for the embedding process. As in nginx, the handler does nothing but record
// the signal (here: write its number to a pipe, which is async-signal-safe); the thread in
// run() reads the pipe and calls the server's verbs.

#include <lameduck/signals.hpp>
#include <lameduck/systemd.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace lameduck {

namespace {

// The write end of the pipe the handler writes to; -1 when no signal_shutdown runs.
std::atomic<int> signal_pipe_write{-1};
// The supervisor that passed a lifeline, when it is our parent (0: none).
std::atomic<pid_t> lifeline_parent{0};
// Set in the byte of a signal that this supervisor sent (signal numbers are below it).
constexpr unsigned char from_lifeline_parent = 0x80;

extern "C" void on_signal(int sig, siginfo_t* info, void*) {
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(sig);
  const pid_t parent = lifeline_parent.load(std::memory_order_relaxed);
  if (parent != 0 && info && info->si_code == SI_USER && info->si_pid == parent) {
    byte |= from_lifeline_parent;
  }
  int fd = signal_pipe_write.load(std::memory_order_relaxed);
  if (fd >= 0) [[maybe_unused]]
    auto ignored = ::write(fd, &byte, 1);
  errno = saved;
}

// Byte written to the pipe when the server has stopped (no signal has number 0).
constexpr unsigned char stopped_byte = 0;
// What read_byte() returns when the lifeline has ended (no signal has this number either).
constexpr unsigned char lifeline_byte = 255;
// Byte written to the pipe when the server and the application are first ready.
constexpr unsigned char ready_byte = 254;

// Takes the lifeline a supervisor passed: a descriptor of ours, no longer inherited by children,
// and no longer announced to them; -1 without one.
int take_lifeline() {
  const char* text = std::getenv("LAMEDUCK_LIFELINE_FD");
  int fd = -1;
  if (text) {
    const char* end = text + std::strlen(text);
    auto [p, err] = std::from_chars(text, end, fd);
    if (err != std::errc{} || p != end || fd < 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) fd = -1;
  }
  ::unsetenv("LAMEDUCK_LIFELINE_FD");
  return fd;
}

}  // namespace

class signal_shutdown::pipe_pair {
 public:
  pipe_pair() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::system_error(errno, std::system_category(), "lameduck: pipe");
    }
  }
  ~pipe_pair() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }

 private:
  int fds_[2];
};

namespace {

// Reads one byte, waiting for it, or lifeline_byte once the lifeline (if not -1) has ended,
// which closes it; EINTR (a signal on this thread) just tries again.
unsigned char read_byte(int fd, int& lifeline) {
  for (;;) {
    unsigned char byte;
    if (::read(fd, &byte, 1) == 1) return byte;
    if (errno != EAGAIN && errno != EINTR) {
      throw std::system_error(errno, std::system_category(), "lameduck: read signal pipe");
    }
    pollfd p[2] = {{fd, POLLIN, 0}, {lifeline, POLLIN, 0}};  // a negative fd is skipped
    if (::poll(p, 2, -1) > 0 && p[1].revents != 0) {
      // Anything but data is the end: a hang-up, an error, or a read of 0 bytes. Data (which a
      // supervisor never writes) is read and dropped.
      char discard[64];
      if ((p[1].revents & POLLIN) == 0 || ::read(lifeline, discard, sizeof discard) <= 0) {
        ::close(std::exchange(lifeline, -1));
        return lifeline_byte;
      }
    }
  }
}

}  // namespace

signal_shutdown::signal_shutdown(std::chrono::steady_clock::duration drain_deadline)
    : drain_deadline_(drain_deadline),
      pipe_(std::make_shared<pipe_pair>()),
      lifeline_(take_lifeline()) {
  int expected = -1;
  if (!signal_pipe_write.compare_exchange_strong(expected, pipe_->write_end())) {
    throw std::logic_error("lameduck: only one signal_shutdown may exist at a time");
  }
  // A supervisor that dies sends its death signal (PR_SET_PDEATHSIG) as itself, our parent.
  if (lifeline_ >= 0) lifeline_parent.store(::getppid(), std::memory_order_relaxed);
  struct sigaction action {};
  action.sa_sigaction = on_signal;
  action.sa_flags = SA_RESTART | SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  // SIGPIPE ignored, as servers do: a log line to a standard error whose reader is gone (a
  // killed supervisor's pipe) is an EPIPE, not the end of the process and of its drain. Under
  // bench/fleet.sh's SIGKILL to a supervisor, its workers died 1.5 s into a 3 s lame-duck delay.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  if (::sigaction(SIGTERM, &action, &old_term_) != 0 ||
      ::sigaction(SIGINT, &action, &old_int_) != 0 ||
      ::sigaction(SIGHUP, &action, &old_hup_) != 0 ||
      ::sigaction(SIGPIPE, &ignore, &old_pipe_) != 0) {
    int e = errno;
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGHUP, &old_hup_, nullptr);
    signal_pipe_write.store(-1);
    lifeline_parent.store(0);
    throw std::system_error(e, std::system_category(), "lameduck: sigaction");
  }
  // Signals blocked on this thread (a program that used sigwait before) would never arrive.
  sigset_t ours;
  sigemptyset(&ours);
  sigaddset(&ours, SIGTERM);
  sigaddset(&ours, SIGINT);
  sigaddset(&ours, SIGHUP);
  pthread_sigmask(SIG_UNBLOCK, &ours, &old_mask_);
}

signal_shutdown::~signal_shutdown() {
  ::sigaction(SIGTERM, &old_term_, nullptr);
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGHUP, &old_hup_, nullptr);
  ::sigaction(SIGPIPE, &old_pipe_, nullptr);
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  signal_pipe_write.store(-1);
  lifeline_parent.store(0);
  if (lifeline_ >= 0) ::close(lifeline_);
}

void signal_shutdown::add_cleanup(std::string name, std::function<void()> hook,
                                  std::chrono::milliseconds timeout) {
  cleanups_.push_back({std::move(name), std::move(hook), timeout});
}

void signal_shutdown::on_reload(std::function<std::error_code()> reload) {
  reload_ = std::move(reload);
}

// SIGHUP: the certificates are read again, the application reloads, and the service manager
// is told (systemd's Type=notify-reload protocol: RELOADING=1 with the monotonic time, then
// READY=1); before the first READY=1 (announced false) it hears nothing of it.
void signal_shutdown::reload(server& s, bool announced) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  if (announced) {
    notify_service_manager(
        "RELOADING=1\nMONOTONIC_USEC=" +
        std::to_string(std::int64_t{now.tv_sec} * 1'000'000 + now.tv_nsec / 1000));
  }
  std::string status;
  const reload_result r = s.reload_certificates().get();
  if (!r) status = "reload refused, still serving: " + r.why;
  if (reload_) {
    std::string why;
    try {
      if (const std::error_code ec = reload_()) why = ec.message();
    } catch (const std::exception& e) {
      why = e.what();
      if (why.empty()) why = "an exception";
    } catch (...) {
      why = "an exception not derived from std::exception";
    }
    if (!why.empty()) {
      s.log("lameduck: reload failed, still running on the old configuration: " + why);
      status += (status.empty() ? "" : "; ") + ("reload failed: " + why);
    }
  }
  if (announced)
    notify_service_manager("READY=1\nSTATUS=" + (status.empty() ? "reloaded" : status));
}

int signal_shutdown::run(server& s) {
  auto report = std::make_shared<std::promise<stop_report>>();
  auto stopped = std::make_shared<std::atomic<bool>>(false);
  // When the server is not running, the callback runs at once, on this thread.
  s.when_stopped([pipe = pipe_, report, stopped](const stop_report& r) {
    stopped->store(true);
    report->set_value(r);
    unsigned char byte = stopped_byte;
    [[maybe_unused]] auto ignored = ::write(pipe->write_end(), &byte, 1);
  });
  // A service manager waiting for readiness (Type=notify) hears of each step: READY=1 when
  // the server says it is ready, the application included, which may be long after now.
  s.when_ready([pipe = pipe_] {
    unsigned char byte = ready_byte;
    [[maybe_unused]] auto ignored = ::write(pipe->write_end(), &byte, 1);
  });
  bool announced = false;
  if (!s.ready() && !stopped->load()) {
    // Visible at once, in the log and in `systemctl status`; READY=1 follows when it is. The
    // line first: whoever reads the status finds the line already written.
    s.log("lameduck: listening, but not ready yet: waiting for the application to be ready");
    notify_service_manager("STATUS=waiting for the application to be ready");
  }
  int signals = 0, forcing_signal = 0;
  bool lifeline_ended = false;
  for (;;) {
    unsigned char byte = read_byte(pipe_->read_end(), lifeline_);
    if (byte == stopped_byte) break;
    if (byte == ready_byte) {
      if (announced || signals > 0) continue;  // stopping: too late to be ready
      announced = true;
      std::string status = "READY=1\nSTATUS=serving";
      for (const auto& address : s.local_addresses())
        status += " " + address;
      notify_service_manager(status);
      continue;
    }
    if (byte == lifeline_byte) {
      // The supervisor is gone (even by SIGKILL): drain as at its SIGTERM, which may never
      // come. A signal after it forces the stop as a second signal does, but for its own.
      lifeline_ended = true;
      if (signals > 0) continue;  // draining already
      s.log("lameduck: the supervisor's lifeline ended; draining");
      byte = SIGTERM;
    }
    if (byte & from_lifeline_parent) {
      byte &= static_cast<unsigned char>(~from_lifeline_parent);
      // Once the lifeline has ended, a signal from the supervisor is its death signal, which
      // the kernel sends in its name as it exits, often after we saw the lifeline end. The
      // drain is under way, and a second signal would cut the lame-duck delay and the requests
      // in flight: bench/fleet.sh's SIGKILL to a supervisor lost requests that way.
      if (lifeline_ended) continue;
    }
    if (byte == SIGHUP) {
      if (signals == 0) reload(s, announced);  // once stopping, there is nothing to reload for
      continue;
    }
    if (++signals == 1) {
      notify_service_manager("STOPPING=1\nSTATUS=draining");
      s.shutdown(drain_deadline_);
    } else if (forcing_signal == 0) {
      forcing_signal = byte;
      notify_service_manager("STATUS=closing every connection now");
      s.destroy();
    }
  }
  if (signals == 0) notify_service_manager("STOPPING=1");

  const stop_report r = report->get_future().get();
  notify_service_manager(r.graceful ? "STATUS=stopped; running cleanup hooks"
                                    : "STATUS=stopped by force; running cleanup hooks");
  // Cleanups in reverse order of registration, each on a thread of its own so that one that
  // hangs is given up on at its timeout rather than holding the process forever.
  for (auto it = cleanups_.rbegin(); it != cleanups_.rend(); ++it) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    // The hook's thread may outlive run() (a hook that hangs), and with it the server: it
    // reports through its future, and this thread writes the line.
    auto failure = std::make_shared<std::string>();
    std::thread([hook = it->hook, done, failure] {
      try {
        hook();
      } catch (const std::exception& e) {
        *failure = e.what();
      } catch (...) {
        *failure = "an exception not derived from std::exception";
      }
      done->set_value();
    }).detach();
    const std::string quoted = "lameduck: cleanup \"" + it->name + "\"";
    if (finished.wait_for(it->timeout) != std::future_status::ready) {
      s.log(quoted + " gave up after " + std::to_string(it->timeout.count()) + " ms");
    } else if (!failure->empty()) {
      s.log(quoted + " failed: " + *failure);
    }
  }
  if (forcing_signal != 0) return 128 + forcing_signal;
  return r.graceful ? 0 : exit_forced;
}

}  // namespace lameduck
