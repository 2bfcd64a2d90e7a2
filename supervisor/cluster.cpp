// The supervisor's state machine; the invariant and the seam are described in cluster.hpp.

#include "cluster.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <utility>

#include "config_values.hpp"

namespace lameduck::supervisor {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// How often resident memory is read when there is a limit: once a second costs one pass over
// /proc per second, and a worker outgrowing its limit is replaced within a second.
constexpr milliseconds memory_check_interval{1000};

std::string seconds(std::chrono::steady_clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2fs", std::chrono::duration<double>(d).count());
  return text;
}

// A duration as a field: seconds, as the library's stop records write them.
double in_seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::int64_t count(std::uint64_t n) {
  return static_cast<std::int64_t>(n);
}

// What a worker writes in STATUS= is shown as one short line: it comes from any program.
std::string shown_status(std::string_view status) {
  constexpr std::size_t max_status = 200;
  std::string text = one_line(std::string(status.substr(0, max_status)));
  if (status.size() > max_status) text += "...";
  return text;
}

}  // namespace

std::string describe_wait_status(int wait_status) {
  if (WIFEXITED(wait_status)) return "exit " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    std::string text = "killed by " + signal_name(WTERMSIG(wait_status));
    if (WCOREDUMP(wait_status)) text += " (core dumped)";
    return text;
  }
  return "wait status " + std::to_string(wait_status);
}

cluster::cluster(program_config p, os& system, record_fn log)
    : program_(std::move(p)), os_(system), log_(std::move(log)) {}

detail::log_record event_record(std::string event, std::string message) {
  detail::log_record r;
  r.message = std::move(message);
  r.add("event", std::move(event));
  return r;
}

detail::log_record cluster::record(const worker& w, std::string event, std::string text) const {
  detail::log_record r = event_record(std::move(event), name(w) + ": " + text);
  r.add("slot", std::int64_t{w.slot})
      .add("pid", std::int64_t{w.pid})
      .add("generation", count(w.generation));
  return r;
}

void cluster::say(detail::log_record r) {
  if (log_) log_(std::move(r));
}

std::string cluster::name(const worker& w) const {
  return "slot " + std::to_string(w.slot) + " pid " + std::to_string(w.pid);
}

cluster::worker* cluster::find(std::uint64_t id) {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

const cluster::worker* cluster::find(std::uint64_t id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

cluster::worker* cluster::find_pid(pid_t pid) {
  for (auto& [id, w] : workers_)
    if (w.pid == pid && w.leader_alive) return &w;
  return nullptr;
}

void cluster::start() {
  started_ = os_.now();
  slots_.resize(static_cast<std::size_t>(std::max(program_.instances, 1)));
  if (program_.max_memory) next_memory_check_ = started_ + memory_check_interval;
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i)
    spawn_into(i, role::serving, "start", 0);
}

namespace {
std::int64_t ticks(steady_time t) {
  return t.time_since_epoch().count();
}
steady_time from_ticks(std::int64_t n) {
  return steady_time(steady_time::duration(n));
}
}  // namespace

cluster_state cluster::hand_over() const {
  cluster_state out;
  out.generation = generation_;
  out.next_id = next_id_;
  out.started = ticks(started_);
  out.unclean = unclean_;
  out.counters = counters_;
  for (const auto& [id, w] : workers_) {
    out.workers.push_back({w.id, w.pid, w.slot, w.generation, static_cast<int>(w.r),
                           static_cast<int>(w.s), ticks(w.started), ticks(w.ready_at),
                           ticks(w.stop_sent), ticks(w.deadline), ticks(w.ready_after),
                           w.leader_alive, w.killed, w.why});
  }
  for (const auto& s : slots_) {
    out.slots.push_back({s.serving, s.replacement, s.crashes, s.restarts, s.restart_pending,
                         ticks(s.restart_at), s.last_exit});
  }
  return out;
}

void cluster::take_over(const cluster_state& from) {
  generation_ = from.generation;
  next_id_ = from.next_id;
  started_ = from_ticks(from.started);
  unclean_ = from.unclean;
  counters_ = from.counters;
  program_.instances = static_cast<int>(from.slots.size());
  if (program_.max_memory) next_memory_check_ = os_.now() + memory_check_interval;
  for (const auto& h : from.workers) {
    worker w;
    w.id = h.id;
    w.pid = h.pid;
    w.slot = h.slot;
    w.generation = h.generation;
    w.r = static_cast<role>(h.role);
    w.s = static_cast<state>(h.state);
    w.started = from_ticks(h.started);
    w.ready_at = from_ticks(h.ready_at);
    w.stop_sent = from_ticks(h.stop_sent);
    w.deadline = from_ticks(h.deadline);
    w.ready_after = from_ticks(h.ready_after);
    w.leader_alive = h.leader_alive;
    w.killed = h.killed;
    w.why = h.why;
    workers_.emplace(w.id, std::move(w));
  }
  for (const auto& h : from.slots) {
    slots_.push_back({h.serving, h.replacement, h.crashes, h.restarts, h.restart_pending,
                      from_ticks(h.restart_at), h.last_exit});
  }
}

void cluster::spawn_into(int slot, role r, std::string why, std::uint64_t reload_id) {
  std::error_code ec;
  const pid_t pid = os_.spawn(program_, {slot, generation_}, ec);
  auto& s = slots_[static_cast<std::size_t>(slot)];
  if (pid <= 0) {
    const std::string failure = "cannot start: " + ec.message();
    say(event_record("worker_start_failed", "slot " + std::to_string(slot) + ": " + failure)
            .add("slot", std::int64_t{slot})
            .add("error", ec.message()));
    if (r == role::replacement) {
      if (reload_ && reload_id == reload_->id) {
        finish_reload(false, "slot " + std::to_string(slot) + ": replacement " + failure +
                                 "; the old worker keeps serving");
      }
      return;  // a watchdog or memory replacement is tried again at the next check
    }
    worker none;
    none.slot = slot;
    none.started = os_.now();
    crashed(slot, none, failure, "start_failed");
    return;
  }
  worker w;
  w.id = next_id_++;
  w.pid = pid;
  w.slot = slot;
  w.generation = generation_;
  w.r = r;
  w.started = os_.now();
  w.deadline = w.started + program_.ready_timeout;
  if (program_.readiness == readiness_mode::after) w.ready_after = w.started + program_.ready_after;
  w.reload_id = reload_id;
  w.why = std::move(why);
  (r == role::serving ? s.serving : s.replacement) = w.id;
  say(record(w, "worker_started",
             "started (generation " + std::to_string(w.generation) + ", " + w.why + ")")
          .add("reason", w.why));
  workers_.emplace(w.id, std::move(w));
}

void cluster::became_ready(worker& w) {
  if (w.s != state::starting) return;
  const steady_time now = os_.now();
  w.s = state::ready;
  w.ready_at = now;
  w.deadline = program_.watchdog.count() ? now + program_.watchdog : steady_time::max();
  const std::string took = seconds(now - w.started);
  if (w.r != role::replacement) {
    if (w.r == role::serving) {
      say(record(w, "worker_ready", "ready in " + took).add("took_s", in_seconds(now - w.started)));
    }
    return;
  }
  auto& s = slots_[static_cast<std::size_t>(w.slot)];
  s.replacement = 0;
  worker* old = find(s.serving);
  s.serving = w.id;
  w.r = role::serving;
  std::string text = "ready in " + took;
  if (old) text += "; pid " + std::to_string(old->pid) + " stopping";
  const std::string line = name(w) + ": " + text;
  detail::log_record ready = record(w, "worker_ready", text);
  ready.add("took_s", in_seconds(now - w.started)).add("reason", w.why);
  if (old) ready.add("replaces_pid", std::int64_t{old->pid});
  say(std::move(ready));
  const bool in_reload = reload_ && w.reload_id == reload_->id;
  if (in_reload) {
    if (reload_->progress) reload_->progress(line);
    ++reload_->replaced;
  }
  if (old) {
    old->reload_id = in_reload ? w.reload_id : 0;
    retire(*old, w.why);
  }
  if (in_reload) advance_reload();
}

void cluster::retire(worker& w, std::string why) {
  if (w.slot < static_cast<int>(slots_.size())) {
    auto& s = slots_[static_cast<std::size_t>(w.slot)];
    if (s.serving == w.id) s.serving = 0;
    if (s.replacement == w.id) s.replacement = 0;
  }
  w.r = role::retiring;
  w.why = std::move(why);
  order_stop(w);
}

void cluster::order_stop(worker& w) {
  if (w.s == state::stopping || w.killed) return;
  w.s = state::stopping;
  w.stop_sent = os_.now();
  w.deadline = w.stop_sent + program_.kill_timeout;
  const std::string sig = signal_name(program_.stop_signal);
  say(record(
          w, "worker_stop_ordered",
          sig + " (" + w.why + "); killed if still running after " + seconds(program_.kill_timeout))
          .add("signal", sig)
          .add("reason", w.why)
          .add("kill_after_s", in_seconds(program_.kill_timeout)));
  os_.signal_group(w.pid, program_.stop_signal);
}

void cluster::kill_now(worker& w, std::string reason, std::string text) {
  if (w.killed) return;
  w.killed = true;
  w.deadline = steady_time::max();
  detail::log_record r = record(w, "worker_stop_ordered", std::move(text));
  r.add("signal", std::string("SIGKILL")).add("reason", std::move(reason));
  if (w.s == state::stopping) r.add("after_s", in_seconds(os_.now() - w.stop_sent));
  say(std::move(r));
  os_.signal_group(w.pid, SIGKILL);
}

bool cluster::on_exit(pid_t pid, int wait_status) {
  worker* w = find_pid(pid);
  if (!w) return false;
  leader_exited(*w, wait_status);
  return true;
}

void cluster::leader_exited(worker& w, int wait_status) {
  w.leader_alive = false;
  const std::string exit = describe_wait_status(wait_status);
  const bool on_its_own =
      (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) ||
      (WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == program_.stop_signal);
  // The last phase of a stop: how it ended, and how long after the order.
  auto stopped = [&] {
    const std::string outcome = w.killed ? "forced" : on_its_own ? "graceful" : "failed";
    std::string text = exit;
    detail::log_record r = record(w, "worker_exited", "");
    r.add("exit", exit);
    if (w.s == state::stopping) {
      text += " after " + seconds(os_.now() - w.stop_sent);
      r.add("after_s", in_seconds(os_.now() - w.stop_sent));
    }
    r.message += text + " (" + w.why + "): " + outcome;
    r.add("reason", w.why).add("outcome", outcome);
    say(std::move(r));
    ++counters_.exits[outcome];
  };
  if (order_ != order::run) {
    if (w.killed || !on_its_own) unclean_ = true;
    stopped();
    return;
  }
  switch (w.r) {
    case role::retiring:
      stopped();
      break;
    case role::replacement:
      replacement_failed(w, w.killed ? "was not ready within " + seconds(program_.ready_timeout)
                                     : "exited (" + exit + ") before it was ready");
      break;
    case role::serving:
      if (w.killed && w.s == state::starting) {
        crashed(w.slot, w, "not ready within " + seconds(program_.ready_timeout), "not_ready");
      } else {
        crashed(w.slot, w, exit, WIFSIGNALED(wait_status) ? "signal" : "exit");
      }
      break;
  }
}

void cluster::check_groups() {
  std::vector<std::uint64_t> gone;
  for (auto& [id, w] : workers_) {
    if (w.leader_alive) continue;
    if (!os_.group_alive(w.pid)) {
      gone.push_back(id);
    } else if (w.s != state::stopping && !w.killed) {
      // What the first process left behind (a wrapper's program, a grandchild) is stopped
      // like the worker it belonged to.
      retire(w, "its first process exited");
    }
  }
  for (std::uint64_t id : gone)
    worker_gone(id);
}

void cluster::worker_gone(std::uint64_t id) {
  worker* w = find(id);
  if (!w) return;
  if (w->slot < static_cast<int>(slots_.size())) {
    auto& s = slots_[static_cast<std::size_t>(w->slot)];
    if (s.serving == id) s.serving = 0;
    if (s.replacement == id) s.replacement = 0;
  }
  const bool in_reload = reload_ && w->reload_id == reload_->id && w->s == state::stopping;
  std::string line = name(*w) + ": gone";
  if (w->s == state::stopping) line += ", drained in " + seconds(os_.now() - w->stop_sent);
  workers_.erase(id);
  if (in_reload) {
    if (reload_->progress) reload_->progress(line);
    advance_reload();
  }
  if (finished()) say(event_record("all_exited", "every worker has exited"));
}

void cluster::crashed(int slot, const worker& w, std::string exit, std::string reason) {
  const steady_time now = os_.now();
  auto& s = slots_[static_cast<std::size_t>(slot)];
  if (s.serving == w.id) s.serving = 0;
  s.last_exit = exit;
  if (worker* mine = find(w.id)) {
    mine->r = role::retiring;
    mine->why = "crashed";
  }
  const auto ran = now - w.started;
  if (ran >= program_.restart.stable_after) s.crashes = 0;
  ++s.crashes;
  detail::log_record r = event_record(
      "worker_crashed",
      "slot " + std::to_string(slot) +
          (w.pid ? " pid " + std::to_string(w.pid) + ": " + exit + " after " + seconds(ran)
                 : ": " + exit));
  r.add("slot", std::int64_t{slot});
  if (w.pid) r.add("pid", std::int64_t{w.pid}).add("ran_s", in_seconds(ran));
  r.add("exit", exit).add("crashes", std::int64_t{s.crashes});
  if (s.replacement) {
    r.message += "; its replacement is starting";
  } else {
    r.message += schedule_restart(slot, reason);
    r.add("restart_in_s", in_seconds(s.restart_at - now));
  }
  say(std::move(r));
}

milliseconds cluster::backoff(int in_a_row) const {
  const double ms = static_cast<double>(program_.restart.initial.count()) *
                    std::pow(program_.restart.factor, in_a_row - 1);
  return milliseconds{static_cast<milliseconds::rep>(
      std::min(ms, static_cast<double>(program_.restart.max.count())))};
}

std::string cluster::schedule_restart(int slot, const std::string& reason) {
  auto& s = slots_[static_cast<std::size_t>(slot)];
  ++counters_.restarts[reason];
  const milliseconds delay = backoff(s.crashes);
  s.restart_pending = true;
  s.restart_at = os_.now() + delay;
  return "; restarting in " + seconds(delay) +
         (s.crashes > 1 ? " (crash " + std::to_string(s.crashes) + " in a row)" : "");
}

void cluster::keep_slot_filled(int slot) {
  if (order_ != order::run || slot >= static_cast<int>(slots_.size())) return;
  auto& s = slots_[static_cast<std::size_t>(slot)];
  if (s.serving || s.replacement || s.restart_pending) return;
  // Its worker crashed while a replacement was starting, and the replacement failed too.
  ++s.crashes;
  const std::string restart = schedule_restart(slot, "failed_replacement");
  say(event_record("worker_crashed", "slot " + std::to_string(slot) + ": no worker left" + restart)
          .add("slot", std::int64_t{slot})
          .add("crashes", std::int64_t{s.crashes})
          .add("restart_in_s", in_seconds(s.restart_at - os_.now())));
}

void cluster::replacement_failed(worker& w, std::string why) {
  if (w.slot < static_cast<int>(slots_.size())) {
    auto& s = slots_[static_cast<std::size_t>(w.slot)];
    if (s.replacement == w.id) s.replacement = 0;
  }
  w.r = role::retiring;
  w.why = "failed replacement";
  const std::string line = name(w) + ": the replacement " + why;
  if (w.leader_alive) {
    kill_now(w, w.why, "the replacement " + why + "; killing it");
  } else {
    say(record(w, "worker_exited", "the replacement " + why)
            .add("reason", w.why)
            .add("outcome", std::string("failed")));
  }
  if (reload_ && w.reload_id == reload_->id) {
    finish_reload(false, line + "; the old workers keep serving");
    keep_slot_filled(w.slot);
    return;
  }
  // A watchdog or memory replacement: the worker it was to replace still serves, and is
  // checked again (with a new replacement) at its next deadline.
  if (worker* old = find(slots_[static_cast<std::size_t>(w.slot)].serving)) {
    if (old->s == state::ready && program_.watchdog.count())
      old->deadline = std::min(old->deadline, os_.now() + program_.watchdog);
  }
  keep_slot_filled(w.slot);
}

void cluster::replace(int slot, std::string why) {
  auto& s = slots_[static_cast<std::size_t>(slot)];
  if (s.replacement || !s.serving || order_ != order::run) return;
  ++counters_.restarts[why];
  spawn_into(slot, role::replacement, std::move(why), 0);
}

void cluster::on_ready(pid_t pid) {
  worker* w = find_pid(pid);
  if (w && order_ == order::run) became_ready(*w);
}

void cluster::on_watchdog(pid_t pid) {
  worker* w = find_pid(pid);
  if (w && w->s == state::ready && program_.watchdog.count())
    w->deadline = os_.now() + program_.watchdog;
}

void cluster::on_notify_status(pid_t pid, bool stopping, std::string_view status) {
  worker* w = find_pid(pid);
  if (!w) return;
  // A worker's own word on its drain (a lameduck server says STOPPING=1 with STATUS=draining
  // when it begins, lame-duck delay included, and how it ended before it exits). What it says
  // while it runs is its own business, and could come every second.
  const bool first_stopping = stopping && !w->said_draining;
  if (!first_stopping && (status.empty() || w->s != state::stopping)) return;
  w->said_draining = w->said_draining || stopping;
  const std::string shown = shown_status(status);
  std::string text = first_stopping ? "draining, it says" : "it says";
  if (!status.empty())
    text += (first_stopping ? " (\"" : " \"") + shown + (first_stopping ? "\")" : "\"");
  detail::log_record r = record(*w, first_stopping ? "worker_draining" : "worker_status", "");
  if (!status.empty()) r.add("status", shown);
  if (w->s == state::stopping) {
    text += ", " + seconds(os_.now() - w->stop_sent) + " after its stop signal";
    r.add("after_s", in_seconds(os_.now() - w->stop_sent));
  }
  r.message += text;
  say(std::move(r));
}

void cluster::on_time() {
  const steady_time now = os_.now();
  std::vector<std::uint64_t> ids;
  ids.reserve(workers_.size());
  for (const auto& [id, w] : workers_)
    ids.push_back(id);
  for (std::uint64_t id : ids) {
    worker* w = find(id);
    if (!w || w->killed) continue;
    switch (w->s) {
      case state::starting:
        if (now >= w->ready_after && order_ == order::run) {
          became_ready(*w);
        } else if (now >= w->deadline) {
          if (w->r == role::replacement) {
            replacement_failed(*w, "was not ready within " + seconds(program_.ready_timeout));
          } else {
            kill_now(*w, "not ready",
                     "not ready within " + seconds(program_.ready_timeout) + "; killing it");
          }
        }
        break;
      case state::ready:
        if (now >= w->deadline) {
          w->deadline = steady_time::max();  // once per silence
          say(record(*w, "worker_replacing",
                     "no watchdog ping for " + seconds(program_.watchdog) + "; replacing it")
                  .add("reason", std::string("watchdog")));
          if (w->r == role::serving) replace(w->slot, "watchdog");
        }
        break;
      case state::stopping:
        if (now >= w->deadline) {
          if (order_ != order::run) unclean_ = true;
          kill_now(*w, "kill timeout",
                   "still running " + seconds(program_.kill_timeout) + " after " +
                       signal_name(program_.stop_signal) + "; killing its process group");
        }
        break;
    }
  }
  if (order_ == order::run) {
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
      auto& s = slots_[static_cast<std::size_t>(i)];
      if (s.restart_pending && now >= s.restart_at) {
        s.restart_pending = false;
        ++s.restarts;
        // Said before the fork, whose time (tens of ms under a sanitizer) is not the delay's.
        say(event_record("worker_restart",
                         "slot " + std::to_string(i) + ": restart " + std::to_string(s.restarts))
                .add("slot", std::int64_t{i})
                .add("restarts", std::int64_t{s.restarts}));
        spawn_into(i, role::serving, "restart", 0);
      }
    }
  }
  if (now >= next_memory_check_) {
    next_memory_check_ = now + memory_check_interval;
    if (order_ == order::run) check_memory();
  }
}

steady_time cluster::next_deadline() const {
  steady_time next = next_memory_check_;
  for (const auto& [id, w] : workers_) {
    if (w.killed) continue;
    next = std::min(next, w.deadline);
    if (w.s == state::starting) next = std::min(next, w.ready_after);
  }
  if (order_ == order::run) {
    for (const auto& s : slots_)
      if (s.restart_pending) next = std::min(next, s.restart_at);
  }
  return next;
}

void cluster::check_memory() {
  const steady_time now = os_.now();
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
    auto& s = slots_[static_cast<std::size_t>(i)];
    const worker* w = find(s.serving);
    if (!w || w->s != state::ready || s.replacement || now < s.memory_check_at) continue;
    const std::uint64_t bytes = os_.resident_bytes(w->pid);
    if (bytes <= program_.max_memory) continue;
    // A limit below what a fresh worker needs would replace one every second, for ever: a
    // worker replaced before it served restart.stable_after counts in a row, and its
    // replacement's memory is looked at only after the restart backoff for that many.
    const auto served = now - w->ready_at;
    s.memory_in_a_row = served < program_.restart.stable_after ? s.memory_in_a_row + 1 : 1;
    std::string text = "resident memory " + std::to_string(bytes >> 20) + " MiB exceeds " +
                       std::to_string(program_.max_memory >> 20) + " MiB; replacing it";
    const bool held = s.memory_in_a_row > 1;
    const milliseconds hold = held ? backoff(s.memory_in_a_row) : milliseconds{0};
    if (held) {
      s.memory_check_at = now + hold;
      text += " (" + std::to_string(s.memory_in_a_row) +
              " in a row: its replacement's memory is looked at after " + seconds(hold) + ")";
    }
    detail::log_record r = record(*w, "worker_replacing", std::move(text));
    if (held)
      r.add("in_a_row", std::int64_t{s.memory_in_a_row}).add("next_check_s", in_seconds(hold));
    say(std::move(r.add("reason", std::string("memory"))
                      .add("resident_bytes", count(bytes))
                      .add("limit_bytes", count(program_.max_memory))));
    replace(i, "memory");
  }
}

void cluster::reload(bool wait, log_fn progress, done_fn done) {
  if (order_ != order::run) {
    done({false, "the supervisor is stopping"});
    return;
  }
  if (reload_) {
    if (!wait) {
      done({false, "a reload is already running (reload --wait queues behind it)"});
      return;
    }
    if (progress) progress("waiting for the running reload to finish");
    queued_.push_back({std::move(progress), std::move(done)});
    return;
  }
  start_reload(std::move(progress), std::move(done));
}

void cluster::start_reload(log_fn progress, done_fn done) {
  reload_run r;
  r.id = next_reload_id_++;
  r.generation = ++generation_;
  r.started = os_.now();
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i)
    r.pending.push_back(i);
  r.progress = std::move(progress);
  r.done = std::move(done);
  const std::string line = "reloading " + std::to_string(slots_.size()) +
                           " workers to generation " + std::to_string(r.generation);
  say(event_record("reload_started", line)
          .add("generation", count(r.generation))
          .add("workers", count(slots_.size())));
  reload_ = std::move(r);
  if (reload_->progress) reload_->progress(line);
  advance_reload();
}

void cluster::advance_reload() {
  while (reload_) {
    int in_flight = 0, draining = 0;
    for (const auto& [id, w] : workers_) {
      if (w.reload_id != reload_->id) continue;
      if (w.r == role::replacement) ++in_flight;
      if (w.r == role::retiring && w.s == state::stopping) ++draining;
    }
    if (reload_->pending.empty()) {
      if (in_flight == 0 && draining == 0) {
        finish_reload(true, "reloaded " + std::to_string(reload_->replaced) +
                                " workers to generation " + std::to_string(reload_->generation) +
                                " in " + seconds(os_.now() - reload_->started));
      }
      return;
    }
    // Each replacement in flight will stop an old worker when it is ready, so it counts
    // against max_unavailable already: never more than that many old workers drain at once.
    if (in_flight >= program_.surge || in_flight + draining >= program_.max_unavailable) return;
    // The next slot not already being replaced (by the watchdog, say): it waits for that.
    auto next = std::find_if(reload_->pending.begin(), reload_->pending.end(), [&](int i) {
      return slots_[static_cast<std::size_t>(i)].replacement == 0;
    });
    if (next == reload_->pending.end()) return;
    const int slot = *next;
    reload_->pending.erase(next);
    const worker* serving = find(slots_[static_cast<std::size_t>(slot)].serving);
    if (!serving) {
      const std::string line = "slot " + std::to_string(slot) +
                               ": no worker to replace (restarting after a crash; its next start "
                               "is generation " +
                               std::to_string(reload_->generation) + ")";
      say(event_record("reload_slot_skipped", line)
              .add("slot", std::int64_t{slot})
              .add("generation", count(reload_->generation)));
      if (reload_->progress) reload_->progress(line);
      continue;
    }
    if (serving->generation >= reload_->generation) continue;  // started since the reload began
    const std::uint64_t id = reload_->id;
    spawn_into(slot, role::replacement, "reload", id);
    if (!reload_ || reload_->id != id) return;  // it could not be started: the reload failed
  }
}

void cluster::finish_reload(bool ok, std::string message) {
  if (!reload_) return;
  reload_run r = std::move(*reload_);
  reload_.reset();
  const auto took = os_.now() - r.started;
  detail::log_record line = event_record("reload_finished", "");
  line.add("ok", ok)
      .add("generation", count(r.generation))
      .add("replaced", std::int64_t{r.replaced})
      .add("took_s", in_seconds(took));
  if (!ok) {
    line.add("error", message);
    for (auto& [id, w] : workers_) {
      if (w.reload_id != r.id || w.r != role::replacement) continue;
      auto& s = slots_[static_cast<std::size_t>(w.slot)];
      if (s.replacement == id) s.replacement = 0;
      w.r = role::retiring;
      w.why = "reload failed";
      kill_now(w, w.why, "the reload failed; killing the replacement");
      keep_slot_filled(w.slot);
    }
    message = "reload to generation " + std::to_string(r.generation) + " failed after " +
              seconds(took) + ": " + message;
  }
  line.message = message;
  say(std::move(line));
  ++counters_.reloads[ok ? "ok" : "failed"];
  if (r.done) r.done({ok, message});
  if (!queued_.empty() && order_ == order::run) {
    queued_reload q = std::move(queued_.front());
    queued_.pop_front();
    start_reload(std::move(q.progress), std::move(q.done));
  }
}

std::string cluster::scale(int instances) {
  if (order_ != order::run) return "the supervisor is stopping";
  if (reload_) return "a reload is running; scale once it has finished";
  if (instances < 1 || instances > 1024) return "instances must be between 1 and 1024";
  const int before = static_cast<int>(slots_.size());
  program_.instances = instances;
  if (instances > before) {
    slots_.resize(static_cast<std::size_t>(instances));
    for (int i = before; i < instances; ++i)
      spawn_into(i, role::serving, "scale", 0);
  } else {
    for (int i = instances; i < before; ++i) {
      const auto& s = slots_[static_cast<std::size_t>(i)];
      if (worker* r = find(s.replacement)) {
        r->r = role::retiring;
        r->why = "scale";
        kill_now(*r, r->why, "scaled down; killing the replacement");
      }
      if (worker* w = find(s.serving)) retire(*w, "scale");
    }
    slots_.resize(static_cast<std::size_t>(instances));
  }
  say(event_record("scaled", "scaled from " + std::to_string(before) + " to " +
                                 std::to_string(instances) + " workers")
          .add("from", std::int64_t{before})
          .add("to", std::int64_t{instances}));
  return {};
}

void cluster::stop(order o) {
  if (o <= order_) return;
  const order before = order_;
  order_ = o;
  if (before == order::run) {
    if (reload_) finish_reload(false, "the supervisor is stopping");
    while (!queued_.empty()) {
      auto q = std::move(queued_.front());
      queued_.pop_front();
      if (q.done) q.done({false, "the supervisor is stopping"});
    }
    for (auto& s : slots_)
      s.restart_pending = false;
  }
  for (auto& [id, w] : workers_) {
    // A worker already stopping keeps its reason: its drain began before the stop.
    if (w.s != state::stopping && !w.killed) w.why = "stop";
    if (o == order::kill) {
      if (!w.killed) unclean_ = true;
      kill_now(w, "kill", "killing its process group (lameduck stop --kill, or a second signal)");
    } else {
      order_stop(w);
    }
  }
}

bool cluster::all_ready() const {
  if (order_ != order::run || slots_.empty()) return false;
  return std::all_of(slots_.begin(), slots_.end(), [&](const slot_state& s) {
    const worker* w = find(s.serving);
    return w && w->s == state::ready;
  });
}

bool cluster::finished() const {
  return order_ != order::run && workers_.empty();
}

std::vector<pid_t> cluster::pids() const {
  std::vector<pid_t> out;
  for (const auto& [id, w] : workers_)
    if (w.leader_alive) out.push_back(w.pid);
  return out;
}

program_status cluster::status() {
  const steady_time now = os_.now();
  program_status p;
  p.name = program_.name;
  p.instances = static_cast<int>(slots_.size());
  p.generation = generation_;
  p.reload = reload_ ? "running" : "idle";
  auto describe = [&](const worker& w, const slot_state* s) {
    worker_status out;
    out.slot = w.slot;
    out.pid = w.pid;
    out.generation = w.generation;
    out.ready = w.s == state::ready;
    out.uptime_ms = duration_cast<milliseconds>(now - w.started).count();
    if (w.s == state::stopping || w.r == role::retiring) {
      out.state = w.killed ? "killed" : "stopping";
    } else if (w.r == role::replacement) {
      out.state = "replacing";
    } else {
      out.state = w.s == state::ready ? "ready" : "starting";
    }
    if (s) {
      out.restarts = s->restarts;
      out.last_exit = s->last_exit;
    }
    if (w.leader_alive || w.s == state::stopping) out.memory_bytes = os_.resident_bytes(w.pid);
    return out;
  };
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
    const auto& s = slots_[static_cast<std::size_t>(i)];
    if (const worker* w = find(s.serving)) {
      p.workers.push_back(describe(*w, &s));
    } else {
      worker_status none;
      none.slot = i;
      none.state = s.restart_pending ? "restarting" : "starting";
      none.restarts = s.restarts;
      none.last_exit = s.last_exit;
      none.generation = generation_;
      if (s.restart_pending)
        none.state += " in " + seconds(std::max(s.restart_at - now, steady_time::duration{}));
      p.workers.push_back(std::move(none));
    }
    if (const worker* r = find(s.replacement)) p.workers.push_back(describe(*r, &s));
  }
  for (const auto& [id, w] : workers_)
    if (w.r == role::retiring) p.workers.push_back(describe(w, nullptr));
  return p;
}

}  // namespace lameduck::supervisor
