#include "tls/reloader.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace lameduck::detail {

namespace {

// The directory and the name of a path ("." for a bare name).
std::pair<std::string, std::string> split(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

certificate_reloader::certificate_reloader(reload_fn reload,
                                           const std::vector<std::string>& watched_files,
                                           std::chrono::milliseconds debounce,
                                           std::function<void(std::string_view)> log)
    : reload_(std::move(reload)), debounce_(debounce) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
  if (debounce.count() > 0) watch(watched_files, log);
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    ::close(wake_fd_);
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    throw;
  }
}

certificate_reloader::~certificate_reloader() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  thread_.join();
  for (auto& p : waiting_)
    p.set_value({make_error_code(errc::not_running), "the server stopped"});
  ::close(wake_fd_);
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

std::future<reload_result> certificate_reloader::request() {
  std::promise<reload_result> p;
  auto f = p.get_future();
  {
    std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(p));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  return f;
}

void certificate_reloader::watch(const std::vector<std::string>& files,
                                 std::function<void(std::string_view)>& log) {
  inotify_fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd_ < 0) {
    log(std::string("lameduck: cannot watch the certificate files: ") + std::strerror(errno));
    return;
  }
  for (const auto& file : files) {
    // The path as given, and where a symbolic link leads (certbot's live/ links to archive/).
    std::vector<std::string> paths{file};
    if (char* real = ::realpath(file.c_str(), nullptr)) {
      if (file != real) paths.emplace_back(real);
      std::free(real);
    }
    for (const auto& path : paths) {
      auto [dir, name] = split(path);
      const int wd =
          ::inotify_add_watch(inotify_fd_, dir.c_str(),
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE);
      if (wd < 0) {
        log("lameduck: cannot watch " + dir + " for certificate changes: " + std::strerror(errno));
        continue;
      }
      auto it = std::find_if(dirs_.begin(), dirs_.end(), [wd](auto& d) { return d.wd == wd; });
      if (it == dirs_.end()) it = dirs_.insert(dirs_.end(), {wd, {}});
      it->names.push_back(name);
    }
  }
}

bool certificate_reloader::changed(const char* events, std::size_t size) const {
  bool any = false;
  for (std::size_t at = 0; at + sizeof(inotify_event) <= size;) {
    inotify_event e;
    std::memcpy(&e, events + at, sizeof e);
    const char* name = events + at + sizeof e;
    at += sizeof e + e.len;
    if (e.mask & IN_Q_OVERFLOW) return true;  // events were lost: assume the worst
    if (e.len == 0) continue;
    for (const auto& d : dirs_) {
      if (d.wd == e.wd && std::find(d.names.begin(), d.names.end(), name) != d.names.end()) {
        any = true;
      }
    }
  }
  return any;
}

void certificate_reloader::run() {
  using clock = std::chrono::steady_clock;
  constexpr auto never = clock::time_point::max();
  clock::time_point due = never;  // a file changed: reload once quiet until then
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
  for (;;) {
    int timeout = -1;
    if (due != never) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(due - clock::now());
      timeout = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, INT_MAX));
    }
    if (::poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR) return;
    std::uint64_t count = 0;
    [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
    if (inotify_fd_ >= 0 && (fds[1].revents & POLLIN)) {
      alignas(inotify_event) char events[4096];
      for (ssize_t n; (n = ::read(inotify_fd_, events, sizeof events)) > 0;) {
        if (changed(events, static_cast<std::size_t>(n))) due = clock::now() + debounce_;
      }
    }
    std::vector<std::promise<reload_result>> batch;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      batch.swap(waiting_);
    }
    // A request does not wait for a change still settling, nor does it cancel its reload.
    const bool settled = due != never && clock::now() >= due;
    if (settled) due = never;
    if (!batch.empty() || settled) reload_(std::move(batch));
  }
}

}  // namespace lameduck::detail
