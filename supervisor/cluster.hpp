#pragma once
// One program run as a cluster of workers: the supervisor's state machine. It does no I/O of
// its own: it reaches the operating system through `os` (fork/exec, signals, clocks, memory),
// and learns what happened through its on_* events, so every failure of a process can be
// played in a unit test with a fake os, and the real-process tests prove the real one agrees.
//
// The invariant (as tableflip's): a slot holds at most two workers, the serving one and its
// replacement not yet ready; a worker leaves its slot when it is told to stop (then it is
// "retiring" until its process group is empty); reloads never overlap. Everything runs on
// the supervisor's one thread.
//
// A worker is its process group, not its first process: it is gone when the group is empty,
// so a wrapper (`sh -c`, `npm start`) that exits before the program it started does not end
// the worker, and nothing a worker spawned outlives it.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "config.hpp"
#include "control.hpp"
#include "log/record.hpp"

namespace lameduck::supervisor {

using steady_time = std::chrono::steady_clock::time_point;

/// Who a new worker is.
struct spawn_request {
  int slot = 0;
  std::uint64_t generation = 0;
};

/// The operating system as the cluster sees it (the seam tests replace).
class os {
 public:
  virtual ~os() = default;
  /// The monotonic clock.
  virtual steady_time now() = 0;
  /// Starts a worker of p in a process group of its own, with the shared sockets and its
  /// readiness channel; its pid, or -1 and ec when it could not be started.
  virtual pid_t spawn(const program_config& p, const spawn_request& r, std::error_code& ec) = 0;
  /// Sends sig to every process of the group pgid.
  virtual void signal_group(pid_t pgid, int sig) = 0;
  /// Whether any process of the group pgid is left (zombies not yet reaped count).
  virtual bool group_alive(pid_t pgid) = 0;
  /// Resident memory of the group pgid, in bytes.
  virtual std::uint64_t resident_bytes(pid_t pgid) = 0;
};

/// A log record of event: its message (for a person) and "event" as its first field.
detail::log_record event_record(std::string event, std::string message);

/// How a reload ended, for whoever asked for it.
struct reload_result {
  bool ok = false;
  std::string message;
};

/// What a cluster has counted since it started, carried across upgrades, for the metrics.
struct cluster_counters {
  /// Restarts and replacements decided, by reason: after a crash "exit", "signal",
  /// "not_ready", "start_failed" or "failed_replacement"; "watchdog" and "memory" for a worker
  /// replaced while it ran.
  std::map<std::string, std::uint64_t> restarts;
  /// Reloads finished, by outcome: "ok", "failed".
  std::map<std::string, std::uint64_t> reloads;
  /// Workers told to stop that have exited, by outcome: "graceful", "failed", "forced".
  std::map<std::string, std::uint64_t> exits;
  bool operator==(const cluster_counters&) const = default;
};

/// A cluster's state as one supervisor binary hands it to the next (`lameduck upgrade`):
/// every field of its workers and slots, times on the monotonic clock (which an exec keeps).
struct cluster_state {
  struct worker {
    std::uint64_t id = 0;
    pid_t pid = 0;
    int slot = 0;
    std::uint64_t generation = 0;
    int role = 0, state = 0;
    std::int64_t started = 0, ready_at = 0, stop_sent = 0, deadline = 0, ready_after = 0;
    bool leader_alive = true, killed = false;
    std::string why;
  };
  struct slot {
    std::uint64_t serving = 0, replacement = 0;
    int crashes = 0, restarts = 0;
    bool restart_pending = false;
    std::int64_t restart_at = 0;
    std::string last_exit;
  };
  std::uint64_t generation = 0, next_id = 0;
  std::int64_t started = 0;
  bool unclean = false;
  std::vector<worker> workers;
  std::vector<slot> slots;
  cluster_counters counters;
};

/// One program's workers, their replacement, restarts and stop.
class cluster {
 public:
  /// Receives a line of progress (of a reload, for whoever asked for it).
  using log_fn = std::function<void(std::string_view)>;
  /// Receives a log record: a message for a person, and for log shippers its "event" and the
  /// figures (slot, pid, signal, reason, seconds...) as fields.
  using record_fn = std::function<void(detail::log_record)>;
  using done_fn = std::function<void(const reload_result&)>;

  /// The stop asked for; it only gets stronger.
  enum class order {
    run,   ///< keep the workers running
    stop,  ///< every worker gets its stop signal, and is killed past the kill timeout
    kill,  ///< every worker's group is killed now
  };

  /// log receives one record per thing that happened: each worker's start, readiness and
  /// every phase of its stop (the signal and why, the drain it reports, its exit, graceful or
  /// forced, and when), crashes and restarts, and each reload's start and end.
  cluster(program_config p, os& system, record_fn log);

  /// Starts every slot's first worker.
  void start();
  /// What the next supervisor binary needs to carry on (no reload may be running).
  cluster_state hand_over() const;
  /// Carries on from a previous binary's hand_over(), instead of start().
  void take_over(const cluster_state& from);

  // Events, from the operating system or the workers.

  /// The process pid was reaped with wait_status; false when it was no worker's first process
  /// (a grandchild this subreaper adopted, say). Call check_groups() after a batch of them.
  bool on_exit(pid_t pid, int wait_status);
  /// Finishes every worker whose group has become empty; after every batch of reaped processes.
  void check_groups();
  /// The worker whose first process is pid said it is ready.
  void on_ready(pid_t pid);
  /// The worker whose first process is pid sent a watchdog ping.
  void on_watchdog(pid_t pid);
  /// The worker whose first process is pid said, on its notification socket, that it is
  /// stopping (STOPPING=1) and/or what it is doing (STATUS=, empty when not said).
  void on_notify_status(pid_t pid, bool stopping, std::string_view status);
  /// Acts on every deadline that has passed (readiness, kill, restart, watchdog, memory).
  void on_time();
  /// The next time on_time() has something to do; time_point::max() when nothing is due.
  steady_time next_deadline() const;

  // Requests.

  /// Replaces every worker, one slot at a time; done is called once, when it has finished or
  /// failed (at once when refused). progress receives a line per step. With wait, a request
  /// while a reload runs is queued instead of refused.
  void reload(bool wait, log_fn progress, done_fn done);
  /// Changes the number of slots (removing the last ones gracefully); an error message, or
  /// empty on success.
  std::string scale(int instances);
  /// Strengthens the order (never weakens it).
  void stop(order o);

  // State.

  /// Every slot has a ready worker (and no stop was asked).
  bool all_ready() const;
  /// A stop was asked and every worker is gone.
  bool finished() const;
  /// After finished(): 0 when every worker ended on its own (exit 0 or its stop signal), 1
  /// when one had to be killed or failed.
  int exit_status() const { return unclean_ ? 1 : 0; }
  /// Whether a reload is running.
  bool reloading() const { return reload_.has_value(); }
  order current_order() const { return order_; }
  const program_config& program() const { return program_; }
  /// What it has counted, for the metrics.
  const cluster_counters& counters() const { return counters_; }
  /// Every worker's state, for `lameduck status` (memory read through the os).
  program_status status();
  /// The first processes of every live worker.
  std::vector<pid_t> pids() const;

 private:
  enum class role { serving, replacement, retiring };
  enum class state { starting, ready, stopping };

  struct worker {
    std::uint64_t id = 0;
    pid_t pid = 0;  // its first process, and its process group
    int slot = 0;
    std::uint64_t generation = 0;
    role r = role::serving;
    state s = state::starting;
    steady_time started{}, ready_at{}, stop_sent{};
    steady_time deadline{};                        // readiness, watchdog or kill deadline, by state
    steady_time ready_after = steady_time::max();  // readiness_mode::after
    bool leader_alive = true;
    bool killed = false;
    bool said_draining = false;   // it said STOPPING=1 (logged once)
    std::uint64_t reload_id = 0;  // the reload it is part of; 0: none
    std::string why;              // why it was started or retired (for the log)
  };
  struct slot_state {
    std::uint64_t serving = 0;      // worker id; 0: none (restart pending or not started)
    std::uint64_t replacement = 0;  // worker id of its replacement, not ready yet; 0: none
    int crashes = 0;                // unexpected exits in a row
    int restarts = 0;
    bool restart_pending = false;
    steady_time restart_at{};
    std::string last_exit;
    // Memory replacements of workers that had not served for restart.stable_after, in a row,
    // and when the slot's memory is looked at next (not carried across an upgrade: a check
    // then only comes sooner).
    int memory_in_a_row = 0;
    steady_time memory_check_at{};
  };
  struct reload_run {
    std::uint64_t id = 0;
    std::uint64_t generation = 0;
    std::deque<int> pending;
    int replaced = 0;
    steady_time started{};
    log_fn progress;
    done_fn done;
  };
  struct queued_reload {
    log_fn progress;
    done_fn done;
  };

  worker* find(std::uint64_t id);
  worker* find_pid(pid_t pid);
  const worker* find(std::uint64_t id) const;
  std::string name(const worker& w) const;
  // A record about w: its name before the text; its slot, pid and generation as fields.
  detail::log_record record(const worker& w, std::string event, std::string text) const;
  void say(detail::log_record r);

  void spawn_into(int slot, role r, std::string why, std::uint64_t reload_id);
  void became_ready(worker& w);
  void retire(worker& w, std::string why);
  // Sends w its stop signal (why: the reason logged), with the kill deadline.
  void order_stop(worker& w);
  // Kills w's process group now; text says why, reason names it for the log.
  void kill_now(worker& w, std::string reason, std::string text);
  void leader_exited(worker& w, int wait_status);
  void worker_gone(std::uint64_t id);
  // The slot's worker w ended unexpectedly (exit says how; reason counts it, as restarts do).
  void crashed(int slot, const worker& w, std::string exit, std::string reason);
  // Arms the slot's restart after its crash count's delay, counted under reason; the words
  // saying so, for the log.
  std::string schedule_restart(int slot, const std::string& reason);
  // The restart backoff for the n-th failure in a row: initial × factor^(n-1), at most max.
  milliseconds backoff(int in_a_row) const;
  // Restarts a slot left with no worker at all (no serving one, no replacement, no restart).
  void keep_slot_filled(int slot);
  void replacement_failed(worker& w, std::string why);
  void replace(int slot, std::string why);

  void start_reload(log_fn progress, done_fn done);
  void advance_reload();
  void finish_reload(bool ok, std::string message);
  void check_memory();

  program_config program_;
  os& os_;
  record_fn log_;
  order order_ = order::run;
  bool unclean_ = false;
  std::uint64_t generation_ = 1;
  std::uint64_t next_id_ = 1;
  std::uint64_t next_reload_id_ = 1;
  steady_time started_{};
  steady_time next_memory_check_ = steady_time::max();
  std::map<std::uint64_t, worker> workers_;  // by id
  std::vector<slot_state> slots_;
  std::optional<reload_run> reload_;
  std::deque<queued_reload> queued_;
  cluster_counters counters_;
};

/// "exit 1", "killed by SIGSEGV" (with " (core dumped)"), from a wait status.
std::string describe_wait_status(int wait_status);

}  // namespace lameduck::supervisor
