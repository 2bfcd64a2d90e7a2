#pragma once
/// @file Opt-in signal handling for a process that embeds a server: SIGTERM or SIGINT drains
/// it, a second one destroys it, and the exit status tells a supervisor what happened.

#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <lameduck/server.hpp>

namespace lameduck {

/// Exit status after a drain that ended in force (its deadline passed, or destroy()).
inline constexpr int exit_forced = 3;

/// Stops a server on SIGTERM or SIGINT and reports how, as a process exit status; reloads its
/// certificates on SIGHUP.
///
/// The signal handlers only write the signal's number to a pipe; run() does the rest on the
/// calling thread. Create it before the server starts, so that no signal is missed.
class signal_shutdown {
 public:
  /// Installs the SIGTERM, SIGINT and SIGHUP handlers and ignores SIGPIPE, so that a log line
  /// to a reader that is gone is an error and not the end of the process (only one
  /// signal_shutdown may exist at a time: std::logic_error otherwise); the first signal will
  /// drain with this deadline. Takes the
  /// lifeline the lameduck supervisor passes (LAMEDUCK_LIFELINE_FD: a descriptor that reaches
  /// its end when the supervisor is gone, however it died), which run() treats as a SIGTERM.
  explicit signal_shutdown(std::chrono::steady_clock::duration drain_deadline);
  /// Restores the signal handlers that were there before.
  ~signal_shutdown();
  signal_shutdown(const signal_shutdown&) = delete;
  signal_shutdown& operator=(const signal_shutdown&) = delete;

  /// Registers work to run once the server has stopped (closing a database pool, flushing a
  /// queue); hooks run in reverse order of registration, each given up on after its timeout.
  void add_cleanup(std::string name, std::function<void()> hook, std::chrono::milliseconds timeout);

  /// Sets the application's reload, which each SIGHUP runs on run()'s thread after the
  /// certificates' (a new configuration, say). It returns an error code (or throws) when the
  /// reload fails, and must then leave the application as it was: the server keeps running on
  /// the old configuration, the failure is one line in the log and the reason goes to the
  /// service manager in STATUS=reload failed: .... Replaces any reload set before.
  void on_reload(std::function<std::error_code()> reload);

  /// Blocks until the server stops: the first SIGTERM or SIGINT (or the end of the lifeline)
  /// starts shutdown(deadline), a second signal destroy(); a stop for any other reason (a
  /// handler's destroy()) ends it too.
  /// Tells the service manager (NOTIFY_SOCKET) READY=1 once the server and the application
  /// are ready (server::when_ready(); until then STATUS=waiting for the application to be
  /// ready, and a line in the log).
  /// Meanwhile each SIGHUP calls server::reload_certificates() and then the on_reload()
  /// function, between RELOADING=1 (with MONOTONIC_USEC) and READY=1, with a STATUS= line
  /// saying why when the new certificates were refused or the application's reload failed.
  /// Then runs the cleanup hooks. Returns the exit status: 0 after a graceful stop,
  /// exit_forced after a forced one, and 128+N when a second signal N forced it.
  int run(server& s);

 private:
  class pipe_pair;
  struct cleanup {
    std::string name;
    std::function<void()> hook;
    std::chrono::milliseconds timeout;
  };
  std::chrono::steady_clock::duration drain_deadline_;
  std::vector<cleanup> cleanups_;
  std::function<std::error_code()> reload_;
  std::shared_ptr<pipe_pair> pipe_;
  int lifeline_ = -1;  // LAMEDUCK_LIFELINE_FD, taken; -1 once it has ended, or without one
  void reload(server& s, bool announced);
  struct sigaction old_term_ {
  }, old_int_{}, old_hup_{}, old_pipe_{};
  sigset_t old_mask_{};
};

}  // namespace lameduck
