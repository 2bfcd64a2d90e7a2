#pragma once
// The thread that reloads a server's certificates, away from its event loops: on request
// (server::reload_certificates(), SIGHUP) and, with tls_options::watch_files, when one of the
// files changes (inotify on their directories, so that a file replaced by a rename or a
// symbolic link moved to a new target counts, as ACME clients do it). Reloads never overlap:
// the requests that arrive while one runs are answered by the next, together.

#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <lameduck/server.hpp>

namespace lameduck::detail {

class certificate_reloader {
 public:
  /// Does a reload and answers every waiting request with its result, now or later (once
  /// every loop has the new certificates); called on the reloader's thread.
  using reload_fn = std::function<void(std::vector<std::promise<reload_result>> waiting)>;

  /// Starts the thread; throws std::system_error if it cannot. A file that cannot be
  /// watched (its directory is missing) is left out, with a line to `log`.
  certificate_reloader(reload_fn reload, const std::vector<std::string>& watched_files,
                       std::chrono::milliseconds debounce,
                       std::function<void(std::string_view)> log);
  /// Stops the thread: requests not yet begun are answered errc::not_running.
  ~certificate_reloader();
  certificate_reloader(const certificate_reloader&) = delete;
  certificate_reloader& operator=(const certificate_reloader&) = delete;

  /// Asks for a reload; callable from any thread.
  std::future<reload_result> request();

 private:
  void run();
  void watch(const std::vector<std::string>& files, std::function<void(std::string_view)>& log);
  bool changed(const char* events, std::size_t size) const;

  reload_fn reload_;
  const std::chrono::milliseconds debounce_;
  int wake_fd_ = -1;     // eventfd: a request, or the stop
  int inotify_fd_ = -1;  // -1 without watch_files
  struct watched_dir {
    int wd;
    std::vector<std::string> names;  // the files in it that count
  };
  std::vector<watched_dir> dirs_;
  std::mutex mutex_;  // guards the two below
  std::vector<std::promise<reload_result>> waiting_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace lameduck::detail
