// The supervisor's loop. One thread does everything, as nginx's master does: the signal
// handler writes the signal's number to a pipe and the loop acts on it; readiness, output and
// control requests arrive on descriptors in one epoll set; the clusters' deadlines set the
// wait's timeout. Being single-threaded also keeps fork() safe and makes the parent-death
// signal (sent when the forking *thread* ends) fire only when the supervisor itself ends.

#include "daemon.hpp"

#include <lameduck/systemd.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <sys/mman.h>
#include <nlohmann/json.hpp>

#include "cluster.hpp"
#include "config_values.hpp"
#include "control.hpp"
#include "log/record.hpp"
#include "log_output.hpp"
#include "metrics.hpp"
#include "net/address.hpp"
#include "net/listener.hpp"
#include "process/systemd.hpp"
#include "spawner.hpp"

namespace lameduck::supervisor {

// `lameduck upgrade` hands the state to the next binary as JSON, each field by name.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(cluster_state::worker, id, pid, slot, generation, role, state,
                                   started, ready_at, stop_sent, deadline, ready_after,
                                   leader_alive, killed, why)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(cluster_state::slot, serving, replacement, crashes, restarts,
                                   restart_pending, restart_at, last_exit)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(cluster_counters, restarts, reloads, exits)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(cluster_state, generation, next_id, started, unclean, workers,
                                   slots, counters)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(shared_socket, fd, name)

namespace {

int signal_pipe_write = -1;

extern "C" void on_signal(int sig) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto ignored = ::write(signal_pipe_write, &byte, 1);
  errno = saved;
}

// "2026-12-01T22:40:00.123Z": UTC with milliseconds, as log shippers parse it.
std::string timestamp() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm parts{};
  ::gmtime_r(&ts.tv_sec, &parts);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &parts);
  std::snprintf(text + n, sizeof text - n, ".%03ldZ", ts.tv_nsec / 1'000'000);
  return text;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // standard output is gone: the lines are still kept for `logs`
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Longest line kept whole; longer output is cut into lines of this size.
constexpr std::size_t max_line = 16 * 1024;
// Standard output's buffer while its reader stalls: 64 of the longest lines, some 5000 of the
// usual 200-byte ones, a few seconds of a busy cluster's output (on top of the pipe's or
// socket's own 64 KiB to 200 KiB), for at most 1 MiB of memory. Past it lines are dropped
// and counted rather than the loop blocked.
constexpr std::size_t stdout_buffer = 1 << 20;
// How long the last lines may wait for a stalled reader at exit or before an upgrade.
constexpr int stdout_drain_ms = 1000;
// A control client that reads its answer slower than this much output is dropped.
constexpr std::size_t max_client_backlog = 4 << 20;
// The longest request line a client may send.
constexpr std::size_t max_request = 64 * 1024;

// A line a worker wrote, kept for `lameduck logs`.
struct logged_line {
  int slot = 0;
  std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(logged_line, slot, text)

// What `lameduck upgrade` hands to the next binary: the descriptors it inherits, by number,
// and the state that goes with them. Internal to one binary and the next; a binary that reads
// another version refuses it (its workers then drain, as when a supervisor dies).
struct upgrade_state {
  static constexpr int current_version = 2;
  struct channel {
    int kind = 0;
    int fd = -1;
    std::size_t program = 0;
    int slot = -1;
    pid_t pid = 0;
    std::string partial;
  };
  struct program {
    std::string name;
    std::vector<shared_socket> sockets;
    cluster_state cluster;
    std::vector<logged_line> lines;
  };
  int version = current_version;
  std::string control_path;
  int control_fd = -1;
  int lifeline_read = -1, lifeline_write = -1;
  bool announced_ready = false;
  std::uint64_t next_notify = 1;  // the names of live workers' sockets stay taken
  std::int64_t started = 0;
  int answer = -1;      // the connection of the client that asked, to answer once done
  int metrics_fd = -1;  // --metrics-listen's socket
  std::uint64_t upgrades = 0;
  std::vector<channel> channels;
  std::vector<program> programs;
  // log_output::drop_count, absent from binaries before 2026-12 (none then).
  std::uint64_t log_lines_dropped = 0, log_lines_unnoticed = 0;
  std::string log_lines_dropped_since;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(upgrade_state::channel, kind, fd, program, slot, pid, partial)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(upgrade_state::program, name, sockets, cluster, lines)
// With defaults: a field added since the version was last raised may be missing (and one
// this binary does not know is ignored), so binaries upgrade to each other both ways.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(upgrade_state, version, control_path, control_fd,
                                                lifeline_read, lifeline_write, announced_ready,
                                                next_notify, started, answer, metrics_fd, upgrades,
                                                channels, programs, log_lines_dropped,
                                                log_lines_unnoticed, log_lines_dropped_since)

class daemon final : public os {
 public:
  explicit daemon(run_config c) : config_(std::move(c)) {}
  ~daemon() override {
    if (!control_path_.empty()) ::unlink(control_path_.c_str());
  }

  int run();
  /// Binds, opens and starts everything; an exit status when that failed, else -1.
  int start();
  void catch_signals();
  /// The loop, until every worker has stopped; the exit status.
  int serve();

  steady_time now() override { return std::chrono::steady_clock::now(); }
  pid_t spawn(const program_config& p, const spawn_request& r, std::error_code& ec) override;
  void signal_group(pid_t pgid, int sig) override {
    if (pgid > 0) ::kill(-pgid, sig);
  }
  bool group_alive(pid_t pgid) override {
    return pgid > 0 && (::kill(-pgid, 0) == 0 || errno == EPERM);
  }
  std::uint64_t resident_bytes(pid_t pgid) override;

 private:
  enum class kind {
    signals,
    control,
    client,
    output,
    errors,
    notify,
    ready,
    metrics_listener,
    metrics_client,
    standard_output,  // writable: out_ flushes
    exited            // a worker's pidfd: readable once it has exited
  };
  struct channel {
    channel(kind what, unique_fd f, std::size_t p = 0, int s = -1, pid_t worker = 0)
        : k(what), fd(std::move(f)), program(p), slot(s), pid(worker) {}
    kind k = kind::signals;
    unique_fd fd;
    std::size_t program = 0;
    int slot = -1;
    pid_t pid = 0;
    std::string partial;  // output: the line not yet ended; client: the request so far
    std::string out;      // client: the answer not yet written
    bool close_when_written = false;
    bool follow = false;
    std::optional<int> follow_slot;
    std::optional<std::size_t> follow_program;
    bool waiting_for_stop = false;
    std::unique_ptr<metrics_exchange> exchange;  // metrics_client: its request and response
    steady_time deadline = steady_time::max();   // metrics_client: for its request
  };
  struct program_entry {
    std::unique_ptr<cluster> c;
    std::vector<shared_socket> sockets;
    std::deque<logged_line> lines;
    std::map<int, unique_fd> files;  // --log-dir: NAME.SLOT.log by slot, opened at first use
  };

  program_entry make_entry(const program_config& p);
  bool open_sockets();
  std::uint64_t add_channel(channel ch, std::uint32_t events = EPOLLIN);
  void close_channel(std::uint64_t id);
  void close_worker_channels(pid_t pid);
  // Watches a worker's pidfd, so that its exit is seen even if SIGCHLD's byte never comes.
  void watch_exit(std::size_t program, int slot, pid_t pid);
  // Watches standard output for writability (when epoll can, and while lines wait).
  void watch_standard_output();
  void on_event(std::uint64_t id, std::uint32_t events);
  void on_signals(const channel& ch);
  void reap();
  // Reads what the worker wrote: one buffer's worth, or with until_empty all there is.
  void on_output(std::uint64_t id, channel& ch, bool until_empty = false);
  void on_notify(channel& ch);
  void on_ready_pipe(std::uint64_t id, channel& ch);
  void on_control(const channel& ch);
  void on_client(std::uint64_t id, channel& ch, std::uint32_t events);
  // A client's connection woke: its answer so far is flushed, and what it wrote read into
  // data; how much, 0 when nothing, or when it went away (then its channel is closed).
  std::size_t client_input(std::uint64_t id, channel& ch, std::uint32_t events,
                           std::span<char> data);
  bool open_metrics();
  void on_metrics_listener(const channel& ch);
  void on_metrics_client(std::uint64_t id, channel& ch, std::uint32_t events);
  // Answers 408 to the scrapers whose request is late; the next such deadline.
  steady_time check_metrics_clients(steady_time now);
  std::string scrape();
  void handle_request(std::uint64_t id, std::string_view line);
  void send(std::uint64_t id, std::string_view line, bool last = false);
  void flush(std::uint64_t id, channel& ch);

  void worker_line(const channel& from, std::string_view text);
  // A line of the supervisor's own, in the configured format, on standard output.
  void say(detail::log_record r);
  void say(std::string event, std::string message) {
    say(event_record(std::move(event), std::move(message)));
  }
  // The record as one line stamped with time: "TIME WHO: MESSAGE" in text; in the structured
  // formats, the message and the fields, time first among them.
  std::string format_line(const std::string& time, std::string_view who,
                          detail::log_record r) const;
  void after_events();
  void reload(std::vector<std::size_t> programs, bool wait, std::uint64_t client);
  void stop(cluster::order o);
  supervisor_status status();
  bool finished() const;
  int exit_status() const;
  void upgrade(std::uint64_t client);
  bool take_over(int state_fd);
  bool take_over(const upgrade_state& state);

  run_config config_;
  std::unique_ptr<log_output> out_;  // standard output
  std::uint64_t out_channel_ = 0;
  bool out_watched_ = false;
  std::string control_path_;
  std::vector<program_entry> programs_;
  unique_fd epoll_, signal_write_, lifeline_read_, lifeline_write_;
  // By serial. A node-based map: a channel stays where it is while others are added and
  // removed, so each handler keeps the one on_event found for it by id.
  std::unordered_map<std::uint64_t, channel> channels_;
  std::uint64_t next_channel_ = 1;
  std::uint64_t next_notify_ = 1;
  steady_time started_{};
  steady_time stop_began_{};
  bool announced_ready_ = false;
  bool stop_asked_ = false;
  int reloads_running_ = 0;
  std::size_t metrics_clients_ = 0;
  std::uint64_t upgrades_ = 0;  // binaries replaced, this one's predecessors
  // The binary to execute on upgrade: the path this one was started from, so that a new
  // file installed there (by rename, as package managers do) is what runs next.
  std::string binary_;
};

std::uint64_t daemon::add_channel(channel ch, std::uint32_t events) {
  const std::uint64_t id = next_channel_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;  // by serial, not descriptor: a closed descriptor's number is reused at once
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ch.fd.get(), &ev);
  channels_.emplace(id, std::move(ch));
  return id;
}

void daemon::close_channel(std::uint64_t id) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd.get(), nullptr);
  if (it->second.k == kind::metrics_client) --metrics_clients_;
  channels_.erase(it);
}

void daemon::close_worker_channels(pid_t pid) {
  std::vector<std::uint64_t> ids;
  for (auto& [id, ch] : channels_)
    if (ch.pid == pid && (ch.k == kind::notify || ch.k == kind::ready || ch.k == kind::exited))
      ids.push_back(id);
  for (auto id : ids)
    close_channel(id);
}

// SIGCHLD's byte on the self-pipe is how exits were seen, and under TSan with the machine
// loaded a worker's exit went unseen 1 run in 10 (its zombie never reaped, the supervisor
// waiting for events forever): the sanitizer defers a signal's handler, and can lose it. A
// pidfd is an event of the worker's own, which no signal delivery can lose; SIGCHLD stays for
// the orphans the supervisor adopts as subreaper.
void daemon::watch_exit(std::size_t program, int slot, pid_t pid) {
  // By syscall(): Debian 12's <sys/pidfd.h> declares pidfd_open without extern "C".
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return;  // a kernel before 5.3: SIGCHLD alone
  add_channel(channel(kind::exited, unique_fd(fd), program, slot, pid));
}

std::string daemon::format_line(const std::string& time, std::string_view who,
                                detail::log_record r) const {
  if (config_.log_format == log_format::text) {
    return time + " " + std::string(who) + ": " + r.message;
  }
  // The formatter writes every string as valid UTF-8 (what is not becomes U+FFFD).
  r.fields.insert(r.fields.begin(), {"time", time});
  return detail::format_log(config_.log_format, r);
}

void daemon::say(detail::log_record r) {
  out_->write(format_line(timestamp(), "lameduck", std::move(r)) + "\n");
}

void daemon::watch_standard_output() {
  const int fd = out_->pollable();
  if (fd < 0) return;
  if (out_channel_ == 0) {
    // Interest in nothing yet: EPOLLOUT is asked for only while lines wait, as an idle
    // standard output is always writable and would wake the loop at every turn.
    out_channel_ =
        add_channel(channel(kind::standard_output, unique_fd(::fcntl(fd, F_DUPFD_CLOEXEC, 0))), 0);
  }
  const bool wanted = out_->wants_write();
  if (wanted == out_watched_) return;
  auto it = channels_.find(out_channel_);
  if (it == channels_.end()) return;
  epoll_event ev{};
  ev.events = wanted ? std::uint32_t{EPOLLOUT} : 0;
  ev.data.u64 = out_channel_;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second.fd.get(), &ev);
  out_watched_ = wanted;
}

void daemon::worker_line(const channel& from, std::string_view text) {
  const std::size_t program = from.program;
  const int slot = from.slot;
  auto& p = programs_[program];
  const std::string time = timestamp();
  const std::string who =
      p.c->program().name + "." + std::to_string(slot) + "[" + std::to_string(from.pid) + "]";
  // Kept for `lameduck logs` as text, whatever the format: that command is read by a person.
  const std::string line = time + " " + who + ": " + std::string(text);
  std::string out = line;
  if (config_.log_format != log_format::text) {
    // One object a line for a log shipper: the worker's line is a field, never mixed in.
    detail::log_record r;
    r.message = "output";
    r.add("program", p.c->program().name)
        .add("slot", std::int64_t{slot})
        .add("pid", std::int64_t{from.pid})
        .add("stream", std::string(from.k == kind::errors ? "stderr" : "stdout"))
        .add("line", std::string(text));
    out = format_line(time, who, std::move(r));
  }
  // The file first: whoever sees the line on standard output finds it in the file too.
  if (const std::string& dir = p.c->program().log_dir; !dir.empty()) {
    unique_fd& file = p.files[slot];
    if (!file) {
      const std::string path =
          dir + "/" + p.c->program().name + "." + std::to_string(slot) + ".log";
      file.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
      if (!file) {
        say(event_record("log_file_error", "cannot open " + path + ": " + std::strerror(errno))
                .add("path", path)
                .add("error", std::string(std::strerror(errno))));
      }
    }
    if (file) write_all(file.get(), out + "\n");
  }
  out_->write(out + "\n");
  p.lines.push_back({slot, line});
  while (p.lines.size() > p.c->program().log_lines)
    p.lines.pop_front();
  std::vector<std::uint64_t> followers;
  for (auto& [id, ch] : channels_) {
    if (ch.k != kind::client || !ch.follow) continue;
    if (ch.follow_program && *ch.follow_program != program) continue;
    if (ch.follow_slot && *ch.follow_slot != slot) continue;
    followers.push_back(id);
  }
  for (auto id : followers)
    send(id, encode_log_line(line));
}

pid_t daemon::spawn(const program_config& p, const spawn_request& r, std::error_code& ec) {
  std::size_t index = 0;
  while (index < programs_.size() && &programs_[index].c->program() != &p)
    ++index;
  spawn_context c;
  c.sockets = programs_.at(index).sockets;
  c.lifeline = lifeline_read_.get();
  c.slot = r.slot;
  c.generation = r.generation;
  c.notify_name = "lameduck/" + std::to_string(::getpid()) + "/" + std::to_string(next_notify_++);
  spawned_worker w = spawn_worker(p, c, ec);
  if (w.pid <= 0) return -1;
  add_channel(channel(kind::output, std::move(w.output), index, r.slot, w.pid));
  add_channel(channel(kind::errors, std::move(w.errors), index, r.slot, w.pid));
  add_channel(channel(kind::notify, std::move(w.notify), index, r.slot, w.pid));
  if (w.ready) {
    add_channel(channel(kind::ready, std::move(w.ready), index, r.slot, w.pid));
  }
  watch_exit(index, r.slot, w.pid);
  return w.pid;
}

std::uint64_t daemon::resident_bytes(pid_t pgid) {
  // Every process of the group: a wrapper's program is what holds the memory.
  static const long page = ::sysconf(_SC_PAGESIZE);
  std::uint64_t total = 0;
  DIR* proc = ::opendir("/proc");
  if (!proc) return 0;
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string text;
    std::getline(stat, text);
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    // Fields after the command: state ppid pgrp ... (rss is the 24th field overall).
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    long pgrp = 0;
    std::uint64_t rss = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 5) pgrp = std::atol(field.c_str());
      if (i == 24) {
        rss = std::strtoull(field.c_str(), nullptr, 10);
        break;
      }
    }
    if (pgrp == pgid) total += rss * static_cast<std::uint64_t>(page);
  }
  ::closedir(proc);
  return total;
}

daemon::program_entry daemon::make_entry(const program_config& p) {
  program_entry entry;
  entry.c = std::make_unique<cluster>(p, *this, [this, name = p.name](detail::log_record r) {
    r.message.insert(0, name + ": ");
    r.fields.insert(r.fields.empty() ? r.fields.end() : r.fields.begin() + 1, {"program", name});
    say(std::move(r));
  });
  return entry;
}

bool daemon::open_sockets() {
  // Sockets the supervisor itself was given (systemd socket activation) are passed on, matched
  // by name, or in order for listeners without one; the rest are bound here.
  std::vector<detail::passed_socket> passed = detail::take_passed_sockets();
  std::vector<bool> used(passed.size(), false);
  for (auto& entry : programs_) {
    const program_config& p = entry.c->program();
    if (p.listen.empty()) {
      for (std::size_t i = 0; i < passed.size(); ++i) {
        used[i] = true;
        entry.sockets.push_back({passed[i].fd, passed[i].name});
      }
      continue;
    }
    for (const listen_spec& spec : p.listen) {
      int fd = -1;
      for (std::size_t i = 0; i < passed.size() && fd < 0; ++i) {
        if (used[i] || (!spec.name.empty() && passed[i].name != spec.name)) continue;
        used[i] = true;
        fd = passed[i].fd;
      }
      const bool passed_fd = fd >= 0;
      std::string shown = spec.address;
      if (fd < 0 && (spec.address.starts_with('/') || spec.address.starts_with('.'))) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, spec.address.c_str(), sizeof address.sun_path - 1);
        struct stat st {};
        if (::stat(spec.address.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
          // A socket left by an earlier run: replaced only when nothing answers on it.
          int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
          if (::connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
            ::unlink(spec.address.c_str());
          ::close(probe);
        }
        if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            ::listen(fd, 4096) != 0) {
          std::fprintf(stderr, "lameduck: cannot listen on %s: %s\n", spec.address.c_str(),
                       std::strerror(errno));
          ::close(fd);
          return false;
        }
        shown = "unix:" + spec.address;
      } else if (fd < 0) {
        std::error_code ec;
        detail::socket_address address = detail::parse_listen_address(spec.address, ec);
        if (!ec) fd = detail::open_listener(address, {}, ec);
        if (ec) {
          std::fprintf(stderr, "lameduck: cannot listen on %s: %s\n", spec.address.c_str(),
                       ec.message().c_str());
          return false;
        }
        shown = "http://" + detail::format_address(&address.any);
      }
      if (passed_fd) {
        // Adopted: what it is bound to, as the kernel says.
        sockaddr_storage bound{};
        socklen_t size = sizeof bound;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size);
        if (bound.ss_family == AF_UNIX) {
          shown = std::string("unix:") + reinterpret_cast<sockaddr_un*>(&bound)->sun_path;
        } else {
          shown = "http://" + detail::format_address(reinterpret_cast<sockaddr*>(&bound));
        }
        shown += ", passed";
      }
      // Workers get the socket as it is: blocking, as systemd passes them (a Python server
      // that calls accept() expects to block); the supervisor itself never accepts.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      entry.sockets.push_back({fd, spec.name});
      detail::log_record r = event_record(
          "listening", "listening on " + shown + (spec.name.empty() ? "" : " (" + spec.name + ")"));
      r.add("program", p.name).add("address", shown);
      if (!spec.name.empty()) r.add("name", spec.name);
      say(std::move(r));
    }
  }
  return true;
}

int daemon::run() {
  started_ = now();
  out_ = std::make_unique<log_output>(
      STDOUT_FILENO, stdout_buffer,
      [this](std::uint64_t dropped, std::string since) {
        const std::string n = std::to_string(dropped);
        return format_line(timestamp(), "lameduck",
                           event_record("log_lines_dropped", "standard output stalled: " + n +
                                                                 " lines dropped since " + since)
                               .add("dropped", static_cast<std::int64_t>(dropped))
                               .add("since", since)) +
               "\n";
      },
      timestamp);
  // Every descendant that loses its parent comes to us, so nothing escapes reaping.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  char self[4096];
  const ssize_t self_length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (self_length > 0) binary_.assign(self, static_cast<std::size_t>(self_length));
  if (binary_.ends_with(" (deleted)")) binary_.resize(binary_.size() - 10);

  if (const char* handed = std::getenv("LAMEDUCK_UPGRADE_FD")) {
    const int fd = std::atoi(handed);
    ::unsetenv("LAMEDUCK_UPGRADE_FD");
    if (!take_over(fd)) return 1;
  } else {
    const int status = start();
    if (status >= 0) return status;
  }
  return serve();
}

int daemon::start() {
  std::error_code ec;
  control_path_ = config_.control;
  std::string why;
  int control = bind_control_socket(control_path_, ec, why);
  if (control < 0) {
    control_path_.clear();  // not ours to remove
    std::fprintf(stderr, "lameduck: %s\n", why.c_str());
    return 1;
  }
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  add_channel(channel(kind::control, unique_fd(control)));
  if (!open_metrics()) return 1;

  for (const auto& p : config_.programs)
    programs_.push_back(make_entry(p));
  if (!open_sockets()) return 1;

  int lifeline[2];
  if (::pipe2(lifeline, O_CLOEXEC) != 0) return 1;
  lifeline_read_.reset(lifeline[0]);
  lifeline_write_.reset(lifeline[1]);

  catch_signals();

  for (auto& entry : programs_)
    entry.c->start();
  return -1;
}

void daemon::catch_signals() {
  int signals[2];
  if (::pipe2(signals, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::system_error(errno, std::system_category(), "pipe2");
  signal_pipe_write = signals[1];
  signal_write_.reset(signals[1]);
  add_channel(channel(kind::signals, unique_fd(signals[0])));
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESTART;
  ::sigemptyset(&action.sa_mask);
  sigset_t handled;
  ::sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) {
    ::sigaction(sig, &action, nullptr);
    ::sigaddset(&handled, sig);
  }
  // A blocked signal is inherited across exec: a parent that left SIGTERM blocked (a program
  // that waits for its signals with signalfd, say) would make the supervisor deaf to it.
  ::sigprocmask(SIG_UNBLOCK, &handled, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

int daemon::serve() {
  std::vector<epoll_event> events(64);
  while (!finished()) {
    steady_time next = check_metrics_clients(now());
    for (auto& entry : programs_)
      next = std::min(next, entry.c->next_deadline());
    watch_standard_output();
    int timeout = -1;
    if (next != steady_time::max()) {
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - now()).count();
      timeout = static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
    }
    const int n =
        ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
    for (int i = 0; i < n; ++i)
      on_event(events[static_cast<std::size_t>(i)].data.u64,
               events[static_cast<std::size_t>(i)].events);
    const steady_time t = now();
    for (auto& entry : programs_)
      if (t >= entry.c->next_deadline()) entry.c->on_time();
    after_events();
  }
  // Answer whoever asked for the stop, then go.
  for (auto& [id, ch] : channels_) {
    if (ch.k != kind::client || !ch.waiting_for_stop) continue;
    ch.out += encode_result(
        exit_status() == 0,
        exit_status() == 0 ? "stopped" : "stopped; some workers had to be killed or failed");
    ::fcntl(ch.fd.get(), F_SETFL, ::fcntl(ch.fd.get(), F_GETFL) & ~O_NONBLOCK);
    write_all(ch.fd.get(), ch.out);
  }
  const auto took = now() - stop_began_;
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.2fs", std::chrono::duration<double>(took).count());
  say(event_record("stopped",
                   std::string("stopped in ") + seconds +
                       (exit_status() == 0 ? "" : "; some workers had to be killed or failed"))
          .add("ok", exit_status() == 0)
          .add("exit_status", std::int64_t{exit_status()})
          .add("took_s", std::chrono::duration<double>(took).count()));
  out_->drain(stdout_drain_ms);
  return exit_status();
}

bool daemon::finished() const {
  return std::all_of(programs_.begin(), programs_.end(),
                     [](const program_entry& e) { return e.c->finished(); });
}

int daemon::exit_status() const {
  int status = 0;
  for (const auto& e : programs_)
    status = std::max(status, e.c->exit_status());
  return status;
}

void daemon::after_events() {
  const bool ready = std::all_of(programs_.begin(), programs_.end(),
                                 [](const program_entry& e) { return e.c->all_ready(); });
  if (ready && !announced_ready_) {
    announced_ready_ = true;
    say("ready", "every worker is ready");
    notify_service_manager("READY=1\nSTATUS=every worker is ready");
  }
}

void daemon::on_event(std::uint64_t id, std::uint32_t events) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  channel& ch = it->second;
  switch (ch.k) {
    case kind::signals:
      on_signals(ch);
      break;
    case kind::control:
      on_control(ch);
      break;
    case kind::client:
      on_client(id, ch, events);
      break;
    case kind::output:
    case kind::errors:
      on_output(id, ch);
      break;
    case kind::notify:
      on_notify(ch);
      break;
    case kind::ready:
      on_ready_pipe(id, ch);
      break;
    case kind::exited:
      reap();
      close_channel(id);  // reaped with the others (and closed there, when a cluster's)
      break;
    case kind::metrics_listener:
      on_metrics_listener(ch);
      break;
    case kind::metrics_client:
      on_metrics_client(id, ch, events);
      break;
    case kind::standard_output:
      // Reported whatever the interest asked for, and at every wait: a reader that closed
      // its end would otherwise wake the loop forever.
      if (events & (EPOLLERR | EPOLLHUP)) {
        out_->lost();
        close_channel(id);
      } else {
        out_->flush();
      }
      break;
  }
}

void daemon::on_signals(const channel& ch) {
  unsigned char bytes[64];
  ssize_t n;
  const int fd = ch.fd.get();
  while ((n = ::read(fd, bytes, sizeof bytes)) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      switch (bytes[i]) {
        case SIGCHLD:
          reap();
          break;
        case SIGTERM:
        case SIGINT:
          if (!stop_asked_) {
            const std::string sig = bytes[i] == SIGTERM ? "SIGTERM" : "SIGINT";
            say(event_record("stopping", "stopping (" + sig +
                                             "): every worker drains; a second signal kills them")
                    .add("trigger", sig));
          }
          stop(stop_asked_ ? cluster::order::kill : cluster::order::stop);
          break;
        case SIGHUP: {
          std::vector<std::size_t> all(programs_.size());
          for (std::size_t p = 0; p < all.size(); ++p)
            all[p] = p;
          reload(all, true, 0);
          break;
        }
        case SIGUSR1:
          // Log rotation: the files are reopened (created anew) at their next line.
          for (auto& entry : programs_)
            entry.files.clear();
          say("log_files_reopened", "SIGUSR1: log files reopened");
          break;
        case SIGUSR2:
          upgrade(0);
          break;
        default:
          break;
      }
    }
  }
}

void daemon::reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    // What it wrote and said last (STATUS= before it exits) is read before its exit is: the
    // order of the two in one batch of events is the kernel's, and its notification socket
    // closes with it.
    std::vector<std::uint64_t> said;
    for (const auto& [id, ch] : channels_)
      if (ch.pid == pid && (ch.k == kind::output || ch.k == kind::errors || ch.k == kind::notify))
        said.push_back(id);
    for (const std::uint64_t id : said) {
      channel& ch = channels_.at(id);
      if (ch.k == kind::notify) {
        on_notify(ch);
      } else {
        on_output(id, ch, /*until_empty=*/true);
      }
    }
    for (auto& entry : programs_) {
      if (entry.c->on_exit(pid, status)) {
        close_worker_channels(pid);
        break;
      }
    }
  }
  for (auto& entry : programs_)
    entry.c->check_groups();
}

void daemon::stop(cluster::order o) {
  if (!stop_asked_) {
    stop_began_ = now();
    notify_service_manager("STOPPING=1\nSTATUS=stopping: workers drain");
  }
  stop_asked_ = true;
  for (auto& entry : programs_) {
    entry.c->stop(o);
    // No worker starts from here on, so the supervisor's copy of each listening socket only
    // kept it open after the workers had closed theirs: the kernel went on completing
    // handshakes into a queue nobody accepted from, and reset them all when the supervisor
    // exited. HAProxy had sent a request on each, and a POST cannot be retried (18 failed in
    // bench/fleet.sh without a lame-duck delay). Closed, the port refuses instead once the last
    // worker stops accepting, which a client or load balancer retries safely elsewhere.
    for (const shared_socket& sock : entry.sockets)
      ::close(sock.fd);
    entry.sockets.clear();
  }
}

void daemon::on_output(std::uint64_t id, channel& ch, bool until_empty) {
  // A pipe holds 64 KiB: a worker's last words fit in a few reads, and a group that goes on
  // writing after its first process exited does not hold the loop.
  constexpr int max_reads = 16;
  for (int reads = 0; reads < (until_empty ? max_reads : 1); ++reads) {
    char buffer[64 * 1024];
    const ssize_t n = ::read(ch.fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      if (!ch.partial.empty()) worker_line(ch, ch.partial);
      close_channel(id);
      return;
    }
    ch.partial.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (;;) {
      const auto end = ch.partial.find('\n', start);
      if (end == std::string::npos) break;
      worker_line(ch, std::string_view(ch.partial).substr(start, end - start));
      start = end + 1;
    }
    ch.partial.erase(0, start);
    while (ch.partial.size() >= max_line) {
      worker_line(ch, std::string_view(ch.partial).substr(0, max_line));
      ch.partial.erase(0, max_line);
    }
  }
}

void daemon::on_notify(channel& ch) {
  for (;;) {
    char data[4096];
    iovec iov{data, sizeof data - 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(ch.fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return;
    const ucred* cred = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
        cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
    // The socket is the worker's own, which attributes the message; who may write to it: the
    // worker's processes (its first one, or any of its process group: the program a wrapper
    // such as `sh -c` or `npm start` started, even one that dropped privileges), or a process
    // of our own user whose group can no longer be asked (it sent READY=1 and exited).
    if (!cred) continue;
    const bool in_group = cred->pid == ch.pid || ::getpgid(cred->pid) == ch.pid;
    if (!in_group && cred->uid != ::geteuid() && cred->uid != 0) continue;
    std::string_view text(data, static_cast<std::size_t>(n));
    cluster& c = *programs_[ch.program].c;
    bool stopping = false;
    std::string_view status;
    while (!text.empty()) {
      const auto end = text.find('\n');
      const std::string_view field = text.substr(0, end);
      // READY=1 counts only where it is the configured way: with --ready fd or --ready-after,
      // the pipe or the timer says it (NOTIFY_SOCKET is still there for WATCHDOG=1).
      if (field == "READY=1" && c.program().readiness == readiness_mode::notify) c.on_ready(ch.pid);
      if (field == "WATCHDOG=1") c.on_watchdog(ch.pid);
      if (field == "STOPPING=1") stopping = true;
      if (field.starts_with("STATUS=")) status = field.substr(7);
      if (end == std::string_view::npos) break;
      text.remove_prefix(end + 1);
    }
    if (stopping || !status.empty()) c.on_notify_status(ch.pid, stopping, status);
  }
}

void daemon::on_ready_pipe(std::uint64_t id, channel& ch) {
  char data[512];
  const ssize_t n = ::read(ch.fd.get(), data, sizeof data);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n > 0 && std::memchr(data, '\n', static_cast<std::size_t>(n))) {
    programs_[ch.program].c->on_ready(ch.pid);
    close_channel(id);  // said once; a closed pipe is not an error for the worker
    return;
  }
  if (n <= 0) close_channel(id);
}

void daemon::on_control(const channel& ch) {
  const int listener = ch.fd.get();
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (!peer_is_owner(fd)) {
      ::close(fd);  // the socket's permissions keep others out; this is a second lock
      continue;
    }
    add_channel(channel(kind::client, unique_fd(fd)));
  }
}

bool daemon::open_metrics() {
  if (config_.metrics_listen.empty()) return true;
  std::error_code ec;
  detail::socket_address address = detail::parse_listen_address(config_.metrics_listen, ec);
  const int fd = ec ? -1 : detail::open_listener(address, {.backlog = 64}, ec);
  if (fd < 0) {
    std::fprintf(stderr, "lameduck: cannot listen on %s for metrics: %s\n",
                 config_.metrics_listen.c_str(), ec.message().c_str());
    return false;
  }
  add_channel(channel(kind::metrics_listener, unique_fd(fd)));
  const std::string url = "http://" + detail::format_address(&address.any) + "/metrics";
  say(event_record("metrics_listening", "metrics on " + url).add("address", url));
  return true;
}

void daemon::on_metrics_listener(const channel& ch) {
  for (;;) {
    const int fd = ::accept4(ch.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (metrics_clients_ >= max_metrics_connections) {
      ::close(fd);  // a scraper gone wrong, or someone else's traffic: the loop has work to do
      continue;
    }
    channel client(kind::metrics_client, unique_fd(fd));
    client.exchange = std::make_unique<metrics_exchange>();
    client.deadline = now() + metrics_request_timeout;
    add_channel(std::move(client));
    ++metrics_clients_;
  }
}

std::size_t daemon::client_input(std::uint64_t id, channel& ch, std::uint32_t events,
                                 std::span<char> data) {
  if (events & EPOLLOUT) {
    flush(id, ch);
    if (!channels_.count(id)) return 0;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return 0;
  const ssize_t n = ::read(ch.fd.get(), data.data(), data.size());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n <= 0) {
    close_channel(id);  // the client went away; a reload it asked for goes on
    return 0;
  }
  return static_cast<std::size_t>(n);
}

void daemon::on_metrics_client(std::uint64_t id, channel& ch, std::uint32_t events) {
  char data[4096];
  const std::size_t n = client_input(id, ch, events, data);
  if (n == 0) return;
  if (ch.exchange->answered()) return;  // what follows its request is read and dropped
  if (ch.exchange->feed({data, n}, [this] { return scrape(); })) {
    ch.deadline = steady_time::max();
    send(id, ch.exchange->response(), /*last=*/true);
  }
}

steady_time daemon::check_metrics_clients(steady_time t) {
  steady_time next = steady_time::max();
  if (metrics_clients_ == 0) return next;
  std::vector<std::uint64_t> late;
  for (const auto& [id, ch] : channels_) {
    if (ch.k != kind::metrics_client || ch.deadline == steady_time::max()) continue;
    if (t >= ch.deadline) {
      late.push_back(id);
    } else {
      next = std::min(next, ch.deadline);
    }
  }
  for (const std::uint64_t id : late) {
    channel& ch = channels_.at(id);
    ch.exchange->time_out();
    ch.deadline = steady_time::max();
    send(id, ch.exchange->response(), /*last=*/true);
  }
  return next;
}

std::string daemon::scrape() {
  std::vector<program_metrics> programs;
  for (auto& entry : programs_)
    programs.push_back({entry.c->status(), entry.c->counters()});
  return format_metrics(programs, upgrades_, out_->dropped_total());
}

void daemon::on_client(std::uint64_t id, channel& ch, std::uint32_t events) {
  char data[4096];
  const std::size_t n = client_input(id, ch, events, data);
  if (n == 0) return;
  if (ch.close_when_written || ch.follow || ch.waiting_for_stop) return;  // one request each
  ch.partial.append(data, n);
  const auto end = ch.partial.find('\n');
  if (end == std::string::npos) {
    if (ch.partial.size() > max_request) send(id, encode_result(false, "request too long"), true);
    return;
  }
  const std::string line = ch.partial.substr(0, end);
  ch.partial.clear();
  ch.close_when_written = false;
  handle_request(id, line);
}

void daemon::send(std::uint64_t id, std::string_view line, bool last) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  channel& ch = it->second;
  ch.out += line;
  if (last) ch.close_when_written = true;
  if (ch.out.size() > max_client_backlog) {
    close_channel(id);
    return;
  }
  flush(id, ch);
}

void daemon::flush(std::uint64_t id, channel& ch) {
  while (!ch.out.empty()) {
    const ssize_t n = ::send(ch.fd.get(), ch.out.data(), ch.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      close_channel(id);
      return;
    }
    ch.out.erase(0, static_cast<std::size_t>(n));
  }
  epoll_event ev{};
  ev.events = EPOLLIN | (ch.out.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
  ev.data.u64 = id;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, ch.fd.get(), &ev);
  if (ch.out.empty() && ch.close_when_written) close_channel(id);
}

void daemon::handle_request(std::uint64_t id, std::string_view line) {
  request r;
  try {
    r = decode_request(line);
  } catch (const protocol_error& e) {
    send(id, encode_result(false, e.what()), true);
    return;
  }
  std::vector<std::size_t> chosen;
  for (std::size_t p = 0; p < programs_.size(); ++p)
    if (r.program.empty() || programs_[p].c->program().name == r.program) chosen.push_back(p);
  if (chosen.empty()) {
    send(id, encode_result(false, "no program named \"" + r.program + "\""), true);
    return;
  }
  switch (r.what) {
    case request::verb::status: {
      const supervisor_status s = status();
      send(id, encode_result(true, "", &s), true);
      break;
    }
    case request::verb::reload:
      if (stop_asked_) {
        send(id, encode_result(false, "the supervisor is stopping"), true);
        break;
      }
      reload(chosen, r.wait, id);
      break;
    case request::verb::stop:
    case request::verb::kill:
      channels_.at(id).waiting_for_stop = true;
      if (!stop_asked_)
        say(event_record("stopping", r.what == request::verb::stop
                                         ? "stopping (lameduck stop)"
                                         : "killing (lameduck stop --kill)")
                .add("trigger",
                     std::string(r.what == request::verb::stop ? "lameduck stop"
                                                               : "lameduck stop --kill")));
      stop(r.what == request::verb::stop ? cluster::order::stop : cluster::order::kill);
      break;
    case request::verb::scale: {
      if (chosen.size() != 1) {
        send(id, encode_result(false, "several programs run: name one with --program"), true);
        break;
      }
      const std::string error = programs_[chosen[0]].c->scale(r.instances);
      send(id,
           encode_result(
               error.empty(),
               error.empty() ? "scaling to " + std::to_string(r.instances) + " workers" : error),
           true);
      break;
    }
    case request::verb::upgrade:
      upgrade(id);
      break;
    case request::verb::logs: {
      // The last lines of the chosen programs, in the order they were written.
      std::vector<const logged_line*> lines;
      for (std::size_t p : chosen)
        for (const auto& l : programs_[p].lines)
          if (!r.worker || *r.worker == l.slot) lines.push_back(&l);
      std::stable_sort(lines.begin(), lines.end(), [](const logged_line* a, const logged_line* b) {
        return a->text.compare(0, 24, b->text, 0, 24) < 0;  // by time stamp
      });
      const std::size_t skip = lines.size() > r.lines ? lines.size() - r.lines : 0;
      for (std::size_t i = skip; i < lines.size(); ++i)
        send(id, encode_log_line(lines[i]->text));
      if (!channels_.count(id)) break;
      if (r.follow) {
        channel& ch = channels_.at(id);
        ch.follow = true;
        ch.follow_slot = r.worker;
        if (!r.program.empty()) ch.follow_program = chosen[0];
      } else {
        send(id, encode_result(true, ""), true);
      }
      break;
    }
  }
}

void daemon::reload(std::vector<std::size_t> programs, bool wait, std::uint64_t client) {
  if (programs.empty()) return;
  // Programs reload one after the other; the first one's start announces it to systemd.
  if (reloads_running_++ == 0) {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    notify_service_manager("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=" +
                           std::to_string(ts.tv_sec * 1'000'000LL + ts.tv_nsec / 1000));
  }
  const std::size_t first = programs.front();
  programs.erase(programs.begin());
  auto progress = [this, client](std::string_view line) {
    if (client) send(client, encode_progress(line));
  };
  auto done = [this, client, rest = std::move(programs), wait](const reload_result& r) mutable {
    if (r.ok && !rest.empty()) {
      --reloads_running_;
      reload(std::move(rest), wait, client);
      return;
    }
    if (client) send(client, encode_result(r.ok, r.message), true);
    if (--reloads_running_ == 0 && !stop_asked_)
      notify_service_manager(r.ok ? "READY=1\nSTATUS=reloaded"
                                  : "READY=1\nSTATUS=reload failed: " + r.message);
  };
  programs_[first].c->reload(wait, progress, done);
}

// `lameduck upgrade`: the supervisor executes its binary again, in the same process, so that
// the workers stay its children. Everything that must live on (the listeners, the control
// socket, the lifeline, each worker's pipes and notification socket) is inherited; the rest
// of the state travels as JSON in a memory file. A worker is not disturbed: its sockets are
// never closed, and its parent-death signal stays unsent, as no thread of the supervisor ends.
void daemon::upgrade(std::uint64_t client) {
  auto refuse = [&](const std::string& why) {
    say(event_record("upgrade_refused", "upgrade refused: " + why).add("error", why));
    if (client) send(client, encode_result(false, why), true);
  };
  if (stop_asked_) return refuse("the supervisor is stopping");
  if (reloads_running_) return refuse("a reload is running; upgrade once it has finished");
  if (binary_.empty()) return refuse("cannot find the supervisor's own binary");
  std::vector<int> kept;
  upgrade_state state;
  state.control_path = control_path_;
  state.lifeline_read = lifeline_read_.get();
  state.lifeline_write = lifeline_write_.get();
  kept.push_back(lifeline_read_.get());
  kept.push_back(lifeline_write_.get());
  state.announced_ready = announced_ready_;
  state.next_notify = next_notify_;
  state.started = started_.time_since_epoch().count();
  state.upgrades = upgrades_ + 1;  // counted by the binary that takes over, if it does
  for (auto& [id, ch] : channels_) {
    if (ch.k == kind::control) {
      state.control_fd = ch.fd.get();
    } else if (ch.k == kind::client || ch.k == kind::metrics_client) {
      if (id != client) continue;  // other clients' connections end with this binary
      state.answer = ch.fd.get();
    } else if (ch.k == kind::metrics_listener) {
      state.metrics_fd = ch.fd.get();
    } else if (ch.k != kind::signals && ch.k != kind::standard_output &&
               ch.k != kind::exited) {  // the next binary opens its own pidfds
      state.channels.push_back(
          {static_cast<int>(ch.k), ch.fd.get(), ch.program, ch.slot, ch.pid, ch.partial});
    } else {
      continue;
    }
    kept.push_back(ch.fd.get());
  }
  for (auto& entry : programs_) {
    for (const auto& sock : entry.sockets)
      kept.push_back(sock.fd);
    state.programs.push_back({entry.c->program().name,
                              entry.sockets,
                              entry.c->hand_over(),
                              {entry.lines.begin(), entry.lines.end()}});
  }

  // The lines the reader does not take in time are counted as dropped, and the count goes on.
  say(event_record("upgrading", "upgrading: executing " + binary_).add("binary", binary_));
  out_->drain(stdout_drain_ms);
  const log_output::drop_count drops = out_->drops();
  state.log_lines_dropped = drops.total;
  state.log_lines_unnoticed = drops.unnoticed;
  state.log_lines_dropped_since = drops.since;

  using nlohmann::json;
  const std::string text = json(state).dump(-1, ' ', false, json::error_handler_t::replace);
  unique_fd memory(::memfd_create("lameduck-upgrade", 0));  // inherited: no MFD_CLOEXEC
  if (!memory) return refuse(std::string("memfd_create: ") + std::strerror(errno));
  write_all(memory.get(), text);
  ::lseek(memory.get(), 0, SEEK_SET);

  // The same command line, read back from the kernel.
  std::string cmdline;
  {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    cmdline.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::vector<std::string> args;
  for (std::size_t start = 0; start < cmdline.size();) {
    const std::size_t end = cmdline.find('\0', start);
    args.push_back(cmdline.substr(start, end - start));
    start = end == std::string::npos ? cmdline.size() : end + 1;
  }
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  for (int fd : kept)
    ::fcntl(fd, F_SETFD, 0);
  ::setenv("LAMEDUCK_UPGRADE_FD", std::to_string(memory.get()).c_str(), 1);
  ::execv(binary_.c_str(), argv.data());
  const int error = errno;
  // Still here: nothing changed; the descriptors go back to being this binary's alone.
  ::unsetenv("LAMEDUCK_UPGRADE_FD");
  for (int fd : kept)
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  refuse("cannot execute " + binary_ + ": " + std::strerror(error));
}

bool daemon::take_over(int state_fd) {
  using nlohmann::json;
  std::string text;
  {
    char buffer[65536];
    ssize_t n;
    while ((n = ::read(state_fd, buffer, sizeof buffer)) > 0)
      text.append(buffer, static_cast<std::size_t>(n));
    ::close(state_fd);
  }
  // The workers notice this process's end (parent-death signal, lifeline) and drain.
  upgrade_state state;
  try {
    const json j = json::parse(text);
    if (j.value("version", 0) != upgrade_state::current_version) {
      std::fprintf(stderr,
                   "lameduck: upgrade: the state handed over is version %d; this binary reads "
                   "version %d\n",
                   j.value("version", 0), upgrade_state::current_version);
      return false;
    }
    j.get_to(state);
  } catch (const json::exception& e) {
    std::fprintf(stderr, "lameduck: upgrade: the state handed over is not readable: %s\n",
                 e.what());
    return false;
  }
  return take_over(state);
}

bool daemon::take_over(const upgrade_state& state) {
  auto own = [](int fd) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
  };
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  control_path_ = state.control_path;
  add_channel(channel(kind::control, unique_fd(own(state.control_fd))));
  lifeline_read_.reset(own(state.lifeline_read));
  lifeline_write_.reset(own(state.lifeline_write));
  announced_ready_ = state.announced_ready;
  next_notify_ = state.next_notify;
  upgrades_ = state.upgrades;
  out_->carry({state.log_lines_dropped, state.log_lines_unnoticed, state.log_lines_dropped_since});
  if (state.metrics_fd >= 0)
    add_channel(channel(kind::metrics_listener, unique_fd(own(state.metrics_fd))));
  started_ = steady_time(steady_time::duration(state.started));
  for (const upgrade_state::program& p : state.programs) {
    auto config = std::find_if(config_.programs.begin(), config_.programs.end(),
                               [&](const program_config& c) { return c.name == p.name; });
    program_config program;
    if (config != config_.programs.end()) {
      program = *config;
    } else {
      // Gone from the configuration: its workers are stopped, gracefully.
      program.name = p.name;
      program.command = {"true"};
    }
    program_entry entry = make_entry(program);
    for (const shared_socket& sock : p.sockets)
      entry.sockets.push_back({own(sock.fd), sock.name});
    entry.lines.assign(p.lines.begin(), p.lines.end());
    entry.c->take_over(p.cluster);
    if (config == config_.programs.end()) {
      say(event_record("program_removed",
                       p.name + ": no longer in the configuration; stopping its workers")
              .add("program", p.name));
      entry.c->stop(cluster::order::stop);
    }
    programs_.push_back(std::move(entry));
  }
  for (const upgrade_state::channel& ch : state.channels) {
    if (ch.program >= programs_.size()) {
      std::fprintf(stderr, "lameduck: upgrade: a channel names program %zu of %zu\n", ch.program,
                   programs_.size());
      return false;
    }
    channel c(static_cast<kind>(ch.kind), unique_fd(own(ch.fd)), ch.program, ch.slot, ch.pid);
    c.partial = ch.partial;
    add_channel(std::move(c));
    // One notify channel per live worker: each gets its pidfd anew.
    if (ch.kind == static_cast<int>(kind::notify)) watch_exit(ch.program, ch.slot, ch.pid);
  }
  catch_signals();
  const std::string done = "upgraded: pid " + std::to_string(::getpid()) + " runs " + binary_ +
                           " with " + std::to_string(state.channels.size()) + " worker channels";
  say(event_record("upgraded", done).add("binary", binary_));
  if (state.answer >= 0) {
    const std::uint64_t id = add_channel(channel(kind::client, unique_fd(own(state.answer))));
    send(id, encode_result(true, done), true);
  }
  reap();  // whatever exited while the binary was being replaced
  return true;
}

supervisor_status daemon::status() {
  supervisor_status s;
  s.pid = ::getpid();
  s.uptime_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now() - started_).count();
  s.state = stop_asked_ ? "stopping" : "running";
  for (auto& entry : programs_)
    s.programs.push_back(entry.c->status());
  return s;
}

}  // namespace

int run_supervisor(run_config config) {
  daemon d(std::move(config));
  return d.run();
}

}  // namespace lameduck::supervisor
