// The supervisor's state machine against a fake operating system: every failure of a process
// (a crash, a replacement that never gets ready, a worker that ignores its stop signal, a
// wrapper that exits before its program) is played here without luck or real processes. The
// real-process tests in tests/integration/supervisor_test.cpp show the real seam agrees.

#include "cluster.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lameduck::supervisor {
namespace {

using namespace std::chrono_literals;

int exited(int code) {
  return code << 8;
}
int killed_by(int sig) {
  return sig;
}

class fake_os final : public os {
 public:
  steady_time t = steady_time{} + 1h;
  pid_t next_pid = 100;
  std::vector<spawn_request> spawns;
  std::vector<std::pair<pid_t, int>> signals;
  std::set<pid_t> groups;
  std::map<pid_t, std::uint64_t> memory;
  int failing_spawns = 0;

  steady_time now() override { return t; }
  pid_t spawn(const program_config&, const spawn_request& r, std::error_code& ec) override {
    if (failing_spawns > 0) {
      --failing_spawns;
      ec = std::make_error_code(std::errc::no_such_file_or_directory);
      return -1;
    }
    spawns.push_back(r);
    groups.insert(next_pid);
    return next_pid++;
  }
  void signal_group(pid_t pgid, int sig) override { signals.emplace_back(pgid, sig); }
  bool group_alive(pid_t pgid) override { return groups.count(pgid) != 0; }
  std::uint64_t resident_bytes(pid_t pgid) override { return memory[pgid]; }

  /// The signals pid's group got, in order.
  std::vector<int> signals_to(pid_t pid) const {
    std::vector<int> out;
    for (auto [p, s] : signals)
      if (p == pid) out.push_back(s);
    return out;
  }
};

class Cluster : public ::testing::Test {
 protected:
  Cluster() {
    program.command = {"worker"};
    program.instances = 2;
    program.ready_timeout = 5s;
    program.kill_timeout = 10s;
  }

  cluster& start() {
    c = std::make_unique<cluster>(program, os,
                                  [this](detail::log_record r) { log.push_back(std::move(r)); });
    c->start();
    return *c;
  }
  /// The whole group of pid exits (its first process with wait_status).
  void exit(pid_t pid, int wait_status) {
    os.groups.erase(pid);
    c->on_exit(pid, wait_status);
    c->check_groups();
  }
  void advance(std::chrono::milliseconds d) {
    os.t += d;
    c->on_time();
  }
  /// Runs the clock to the cluster's next deadline.
  void to_next_deadline() {
    ASSERT_NE(c->next_deadline(), steady_time::max());
    os.t = std::max(os.t, c->next_deadline());
    c->on_time();
  }
  void all_ready() {
    for (const auto& w : c->status().workers)
      if (!w.ready && w.pid) c->on_ready(w.pid);
  }
  struct reload_outcome {
    bool finished = false;
    reload_result result;
    std::vector<std::string> progress;
  };
  std::shared_ptr<reload_outcome> reload(bool wait = false) {
    auto out = std::make_shared<reload_outcome>();
    c->reload(
        wait, [out](std::string_view l) { out->progress.emplace_back(l); },
        [out](const reload_result& r) {
          out->finished = true;
          out->result = r;
        });
    return out;
  }
  std::vector<pid_t> serving() {
    std::vector<pid_t> out;
    for (const auto& w : c->status().workers)
      if (w.state == "ready") out.push_back(w.pid);
    return out;
  }

  /// The events logged, in order, about the worker pid (with pid 0: about none).
  std::vector<std::string> events(pid_t pid = 0) const {
    std::vector<std::string> out;
    for (const auto& r : log)
      if (field(r, "pid") == (pid ? std::to_string(pid) : "")) out.push_back(field(r, "event"));
    return out;
  }
  /// The n-th record of event about pid (n from 0); ADD_FAILURE and an empty one if none.
  detail::log_record record(std::string_view event, pid_t pid = 0, int n = 0) const {
    for (const auto& r : log) {
      if (field(r, "event") == event && (!pid || field(r, "pid") == std::to_string(pid)) &&
          n-- == 0)
        return r;
    }
    ADD_FAILURE() << "no " << event << " record about pid " << pid;
    return {};
  }
  /// A field's value as text ("" when the record has none).
  static std::string field(const detail::log_record& r, std::string_view key) {
    for (const auto& [k, v] : r.fields) {
      if (k != key) continue;
      if (const auto* s = std::get_if<std::string>(&v)) return *s;
      if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
      if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
      char text[32];
      std::snprintf(text, sizeof text, "%.3f", std::get<double>(v));
      return text;
    }
    return "";
  }

  program_config program;
  fake_os os;
  std::vector<detail::log_record> log;
  std::unique_ptr<cluster> c;
};

TEST_F(Cluster, Step1StartsEveryInstanceInItsSlotAndIsReadyWhenAllAre) {
  start();
  ASSERT_EQ(os.spawns.size(), 2u);
  EXPECT_EQ(os.spawns[0].slot, 0);
  EXPECT_EQ(os.spawns[1].slot, 1);
  EXPECT_EQ(os.spawns[0].generation, 1u);
  EXPECT_FALSE(c->all_ready());
  c->on_ready(100);
  EXPECT_FALSE(c->all_ready());
  c->on_ready(101);
  EXPECT_TRUE(c->all_ready());
}

TEST_F(Cluster, Step2ReloadStartsTheReplacementFirstAndStopsTheOldOnlyWhenItIsReady) {
  start();
  all_ready();
  auto r = reload();
  ASSERT_EQ(os.spawns.size(), 3u);
  EXPECT_EQ(os.spawns[2].slot, 0);
  EXPECT_EQ(os.spawns[2].generation, 2u);
  EXPECT_TRUE(os.signals.empty()) << "nothing is stopped before its replacement is ready";
  c->on_ready(102);
  EXPECT_EQ(os.signals_to(100), std::vector<int>{SIGTERM});
  EXPECT_EQ(os.spawns.size(), 3u) << "one old worker stops at a time by default";
  exit(100, exited(0));
  ASSERT_EQ(os.spawns.size(), 4u);
  EXPECT_EQ(os.spawns[3].slot, 1);
  c->on_ready(103);
  EXPECT_EQ(os.signals_to(101), std::vector<int>{SIGTERM});
  EXPECT_FALSE(r->finished) << "a reload ends when the old workers have drained";
  exit(101, exited(0));
  ASSERT_TRUE(r->finished);
  EXPECT_TRUE(r->result.ok) << r->result.message;
  EXPECT_EQ(serving(), (std::vector<pid_t>{102, 103}));
  EXPECT_TRUE(c->all_ready());
}

TEST_F(Cluster, Step2AReplacementThatNeverGetsReadyFailsTheReloadAndLeavesTheOldWorkers) {
  start();
  all_ready();
  auto r = reload();
  advance(4900ms);
  EXPECT_FALSE(r->finished);
  advance(100ms);
  ASSERT_TRUE(r->finished) << "reported failed at the readiness timeout";
  EXPECT_FALSE(r->result.ok);
  EXPECT_NE(r->result.message.find("not ready within 5.00s"), std::string::npos)
      << r->result.message;
  EXPECT_EQ(os.signals_to(102), std::vector<int>{SIGKILL}) << "the replacement dies";
  EXPECT_TRUE(os.signals_to(100).empty()) << "the old workers are untouched";
  EXPECT_TRUE(os.signals_to(101).empty());
  exit(102, killed_by(SIGKILL));
  EXPECT_EQ(serving(), (std::vector<pid_t>{100, 101}));
  EXPECT_EQ(os.spawns.size(), 3u) << "no other slot was tried";
  EXPECT_TRUE(c->all_ready());
}

TEST_F(Cluster, Step2AReplacementThatExitsFailsTheReload) {
  start();
  all_ready();
  auto r = reload();
  exit(102, exited(1));
  ASSERT_TRUE(r->finished);
  EXPECT_FALSE(r->result.ok);
  EXPECT_NE(r->result.message.find("exit 1"), std::string::npos) << r->result.message;
  EXPECT_TRUE(os.signals_to(100).empty());
  EXPECT_EQ(serving(), (std::vector<pid_t>{100, 101}));
}

TEST_F(Cluster, Step2AReplacementThatCannotBeStartedFailsTheReload) {
  start();
  all_ready();
  os.failing_spawns = 1;
  auto r = reload();
  ASSERT_TRUE(r->finished);
  EXPECT_FALSE(r->result.ok);
  EXPECT_TRUE(os.signals.empty());
  EXPECT_FALSE(c->reloading());
}

TEST_F(Cluster, Step2ASlotWhoseWorkerCrashedWhileItsReplacementFailedIsRestarted) {
  program.instances = 1;
  start();
  all_ready();
  auto r = reload();
  exit(100, exited(1));  // the serving worker crashes: its replacement is starting
  EXPECT_EQ(os.spawns.size(), 2u);
  exit(101, exited(1));  // and the replacement fails
  ASSERT_TRUE(r->finished);
  EXPECT_FALSE(r->result.ok);
  advance(program.restart.initial * 2);
  ASSERT_EQ(os.spawns.size(), 3u) << "the empty slot is restarted";
  c->on_ready(102);
  EXPECT_TRUE(c->all_ready());
}

TEST_F(Cluster, Step3ReloadsNeverOverlapASecondIsRefusedOrQueued) {
  start();
  all_ready();
  auto first = reload();
  auto refused = reload();
  ASSERT_TRUE(refused->finished);
  EXPECT_FALSE(refused->result.ok);
  EXPECT_NE(refused->result.message.find("already running"), std::string::npos);
  auto queued = reload(/*wait=*/true);
  EXPECT_FALSE(queued->finished);
  c->on_ready(102);
  exit(100, exited(0));
  c->on_ready(103);
  exit(101, exited(0));
  ASSERT_TRUE(first->finished);
  EXPECT_TRUE(first->result.ok);
  EXPECT_FALSE(queued->finished) << "the queued reload starts when the first has finished";
  ASSERT_EQ(os.spawns.size(), 5u);
  EXPECT_EQ(os.spawns[4].generation, 3u);
}

TEST_F(Cluster, Step3SurgeAndMaxUnavailableReplaceSeveralAtOnce) {
  program.instances = 4;
  program.surge = 2;
  program.max_unavailable = 2;
  start();
  all_ready();
  auto r = reload();
  EXPECT_EQ(os.spawns.size(), 6u) << "two replacements start at once";
  c->on_ready(104);
  c->on_ready(105);
  EXPECT_EQ(os.signals_to(100), std::vector<int>{SIGTERM});
  EXPECT_EQ(os.signals_to(101), std::vector<int>{SIGTERM});
  EXPECT_EQ(os.spawns.size(), 6u) << "two old workers drain: no more replacements yet";
  exit(100, exited(0));
  EXPECT_EQ(os.spawns.size(), 7u);
  exit(101, exited(0));
  EXPECT_EQ(os.spawns.size(), 8u);
  c->on_ready(106);
  c->on_ready(107);
  exit(102, exited(0));
  exit(103, exited(0));
  ASSERT_TRUE(r->finished);
  EXPECT_TRUE(r->result.ok);
}

TEST_F(Cluster, Step3NoMoreOldWorkersDrainAtOnceThanMaxUnavailable) {
  program.instances = 3;
  program.surge = 3;
  program.max_unavailable = 1;
  start();
  all_ready();
  auto r = reload();
  EXPECT_EQ(os.spawns.size(), 4u) << "a second replacement would stop a second old worker";
  c->on_ready(103);
  EXPECT_EQ(os.spawns.size(), 4u);
  exit(100, exited(0));
  EXPECT_EQ(os.spawns.size(), 5u);
}

TEST_F(Cluster, Step4ACrashIsRestartedWithExponentialBackoffResetWhenStable) {
  program.instances = 1;
  program.restart = {100ms, 2.0, 400ms, 10s};
  start();
  pid_t pid = 100;
  for (auto expected : {100ms, 200ms, 400ms, 400ms}) {
    exit(pid, killed_by(SIGSEGV));
    const std::size_t spawned = os.spawns.size();
    advance(expected - 1ms);
    EXPECT_EQ(os.spawns.size(), spawned) << "restarted before " << expected.count() << " ms";
    advance(1ms);
    ASSERT_EQ(os.spawns.size(), spawned + 1) << "not restarted at " << expected.count() << " ms";
    ++pid;
  }
  EXPECT_EQ(c->status().workers[0].restarts, 4);
  EXPECT_EQ(c->status().workers[0].last_exit, "killed by SIGSEGV");
  c->on_ready(pid);
  advance(10s);  // stable: the next crash is the first in a row again
  exit(pid, exited(3));
  const std::size_t spawned = os.spawns.size();
  advance(100ms);
  EXPECT_EQ(os.spawns.size(), spawned + 1);
}

TEST_F(Cluster, Step4ACrashLoopIsVisibleAndDoesNotBlockAReload) {
  program.restart = {1s, 2.0, 30s, 10s};
  start();
  all_ready();
  exit(101, exited(1));
  auto s = c->status();
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[1].state.rfind("restarting in", 0), 0u) << s.workers[1].state;
  EXPECT_EQ(s.workers[1].last_exit, "exit 1");
  auto r = reload();
  c->on_ready(102);
  exit(100, exited(0));
  ASSERT_TRUE(r->finished) << "the crash-looping slot is left to its restart";
  EXPECT_TRUE(r->result.ok) << r->result.message;
  advance(1s);
  ASSERT_EQ(os.spawns.size(), 4u);
  EXPECT_EQ(os.spawns[3].generation, 2u) << "the restart runs the new generation";
}

TEST_F(Cluster, Step4AFirstStartThatNeverGetsReadyIsKilledAndRestarted) {
  program.instances = 1;
  start();
  advance(5s);
  EXPECT_EQ(os.signals_to(100), std::vector<int>{SIGKILL});
  exit(100, killed_by(SIGKILL));
  EXPECT_NE(c->status().workers[0].last_exit.find("not ready"), std::string::npos);
  advance(program.restart.initial);
  EXPECT_EQ(os.spawns.size(), 2u);
}

TEST_F(Cluster, Step5StopDrainsEveryWorkerAndKillsThoseThatOutliveTheKillTimeout) {
  start();
  all_ready();
  c->stop(cluster::order::stop);
  EXPECT_EQ(os.signals_to(100), std::vector<int>{SIGTERM});
  EXPECT_EQ(os.signals_to(101), std::vector<int>{SIGTERM});
  exit(100, exited(0));
  EXPECT_FALSE(c->finished());
  advance(10s);
  EXPECT_EQ(os.signals_to(101), (std::vector<int>{SIGTERM, SIGKILL}));
  exit(101, killed_by(SIGKILL));
  EXPECT_TRUE(c->finished());
  EXPECT_EQ(c->exit_status(), 1) << "a worker had to be killed";
}

TEST_F(Cluster, Step5AStopWhereEveryWorkerEndsOnItsOwnExitsZeroAndNothingRestarts) {
  program.stop_signal = SIGINT;
  start();
  all_ready();
  c->stop(cluster::order::stop);
  exit(100, exited(0));
  exit(101, killed_by(SIGINT));  // a program without a handler dies of its stop signal
  EXPECT_TRUE(c->finished());
  EXPECT_EQ(c->exit_status(), 0);
  advance(1min);
  EXPECT_EQ(os.spawns.size(), 2u);
}

TEST_F(Cluster, Step5TheStopOnlyGetsStrongerASecondKills) {
  start();
  all_ready();
  auto r = reload();
  c->stop(cluster::order::stop);
  ASSERT_TRUE(r->finished) << "a running reload ends with the stop";
  EXPECT_FALSE(r->result.ok);
  c->stop(cluster::order::kill);
  EXPECT_EQ(os.signals_to(100), (std::vector<int>{SIGTERM, SIGKILL}));
  c->stop(cluster::order::stop);  // weaker: nothing changes
  EXPECT_EQ(c->current_order(), cluster::order::kill);
  EXPECT_EQ(os.signals_to(100), (std::vector<int>{SIGTERM, SIGKILL}));
}

TEST_F(Cluster, Step6AWorkerIsItsProcessGroupAWrapperExitingFirstDoesNotEndIt) {
  program.instances = 1;
  start();
  c->on_ready(100);
  c->stop(cluster::order::stop);
  // `sh -c program`: the shell dies of the signal, its program is still draining.
  c->on_exit(100, killed_by(SIGTERM));
  c->check_groups();
  EXPECT_FALSE(c->finished()) << "the group still has a process";
  os.groups.erase(100);
  c->check_groups();
  EXPECT_TRUE(c->finished());
}

TEST_F(Cluster, Step6WhatACrashedWorkerLeftBehindIsStopped) {
  program.instances = 1;
  start();
  c->on_ready(100);
  c->on_exit(100, exited(1));  // its child lives on in the group
  c->check_groups();
  EXPECT_EQ(os.signals_to(100), std::vector<int>{SIGTERM});
  advance(10s);
  EXPECT_EQ(os.signals_to(100), (std::vector<int>{SIGTERM, SIGKILL}));
}

TEST_F(Cluster, Step7AWorkerThatStopsItsWatchdogPingsIsReplacedNewOneFirst) {
  program.instances = 1;
  program.watchdog = 2s;
  start();
  c->on_ready(100);
  advance(1500ms);
  c->on_watchdog(100);
  advance(1500ms);
  EXPECT_EQ(os.spawns.size(), 1u) << "pings keep it alive";
  advance(500ms);
  ASSERT_EQ(os.spawns.size(), 2u) << "silent for 2 s: a replacement starts";
  EXPECT_TRUE(os.signals_to(100).empty()) << "the hung worker is stopped after";
  c->on_ready(101);
  EXPECT_EQ(os.signals_to(100), std::vector<int>{SIGTERM});
  advance(10s);
  EXPECT_EQ(os.signals_to(100), (std::vector<int>{SIGTERM, SIGKILL}));
}

TEST_F(Cluster, Step7AWorkerOverItsMemoryLimitIsReplacedGracefully) {
  program.instances = 1;
  program.max_memory = 100 << 20;
  start();
  c->on_ready(100);
  os.memory[100] = 50 << 20;
  advance(1s);
  EXPECT_EQ(os.spawns.size(), 1u);
  os.memory[100] = 101 << 20;
  advance(1s);
  ASSERT_EQ(os.spawns.size(), 2u);
  EXPECT_TRUE(os.signals_to(100).empty());
  c->on_ready(101);
  EXPECT_EQ(os.signals_to(100), std::vector<int>{SIGTERM});
}

TEST_F(Cluster, Step7AMemoryLimitBelowWhatAFreshWorkerNeedsBacksOff) {
  program.instances = 1;
  program.max_memory = 100 << 20;
  program.restart.initial = 2s;
  program.restart.factor = 2;
  program.restart.max = 8s;
  start();
  c->on_ready(100);
  for (pid_t pid = 100; pid <= 105; ++pid)
    os.memory[pid] = 150 << 20;  // every worker, from its start
  advance(1s);
  ASSERT_EQ(os.spawns.size(), 2u) << "the first time: replaced at the next check";
  c->on_ready(101);
  advance(1s);
  ASSERT_EQ(os.spawns.size(), 3u) << "101 served 1 s: the second in a row, replaced too";
  const std::string second = record("worker_replacing", 101).message;
  EXPECT_NE(second.find("(2 in a row: its replacement's memory is looked at after 4.00s)"),
            std::string::npos)
      << second;
  c->on_ready(102);
  advance(3s);
  EXPECT_EQ(os.spawns.size(), 3u) << "102 is left alone for 4 s";
  advance(1s);
  ASSERT_EQ(os.spawns.size(), 4u);
  c->on_ready(103);
  advance(7s);
  EXPECT_EQ(os.spawns.size(), 4u) << "the third in a row: 8 s";
  os.memory[103] = 50 << 20;  // under the limit, it serves long enough to count as healthy
  advance(10s);
  EXPECT_EQ(os.spawns.size(), 4u);
  os.memory[103] = 150 << 20;
  advance(1s);
  ASSERT_EQ(os.spawns.size(), 5u) << "after serving 18 s, the count starts again";
  const std::string again = record("worker_replacing", 103).message;
  EXPECT_EQ(again.find("in a row"), std::string::npos) << again;
}

TEST_F(Cluster, Step8ReadinessAfterAFixedTime) {
  program.instances = 1;
  program.readiness = readiness_mode::after;
  program.ready_after = 300ms;
  start();
  advance(299ms);
  EXPECT_FALSE(c->all_ready());
  advance(1ms);
  EXPECT_TRUE(c->all_ready());
}

TEST_F(Cluster, Step8ScaleAddsAndRemovesSlotsGracefully) {
  start();
  all_ready();
  EXPECT_EQ(c->scale(3), "");
  ASSERT_EQ(os.spawns.size(), 3u);
  EXPECT_EQ(os.spawns[2].slot, 2);
  c->on_ready(102);
  EXPECT_EQ(c->scale(1), "");
  EXPECT_EQ(os.signals_to(101), std::vector<int>{SIGTERM});
  EXPECT_EQ(os.signals_to(102), std::vector<int>{SIGTERM});
  EXPECT_TRUE(os.signals_to(100).empty());
  exit(101, exited(0));
  exit(102, exited(0));
  EXPECT_EQ(c->status().workers.size(), 1u);
  auto r = reload();
  EXPECT_NE(c->scale(2), "") << "no scaling during a reload";
}

TEST_F(Cluster, Step9AnUpgradedSupervisorCarriesOnWithTheWorkersItWasHanded) {
  program.instances = 3;
  start();
  all_ready();
  exit(102, exited(1));  // slot 2 waits to restart
  c->scale(2);           // nothing to retire in slot 2; slots 0 and 1 serve
  EXPECT_EQ(c->scale(3), "");
  exit(103, exited(1));  // slot 2's new worker crashed too
  auto r = reload();
  c->on_ready(104);
  exit(100, exited(0));
  c->on_ready(105);  // slot 1: 101 is draining
  ASSERT_FALSE(r->finished);
  exit(101, exited(0));
  ASSERT_TRUE(r->finished);
  const program_status before = c->status();
  const cluster_state state = c->hand_over();

  cluster next(program, os, [](detail::log_record) {});
  next.take_over(state);
  EXPECT_EQ(next.status(), before);
  EXPECT_EQ(next.next_deadline(), c->next_deadline());
  // It carries on: the crashed slot restarts on time, a reload replaces the right workers.
  os.t = next.next_deadline();
  next.on_time();
  ASSERT_EQ(os.spawns.back().slot, 2);
  EXPECT_EQ(os.spawns.back().generation, 2u);
  next.on_ready(os.next_pid - 1);
  EXPECT_TRUE(next.all_ready());
  bool done = false;
  next.reload(false, nullptr, [&](const reload_result& result) { done = result.ok; });
  next.on_ready(os.next_pid - 1);
  EXPECT_EQ(os.signals_to(104), std::vector<int>{SIGTERM});
  EXPECT_EQ(next.on_exit(104, exited(0)), true);
}

using strings = std::vector<std::string>;

TEST_F(Cluster, EachPhaseOfAReloadedWorkersStopIsLoggedInOrder) {
  program.instances = 1;
  start();
  c->on_ready(100);
  auto r = reload();
  advance(30ms);
  c->on_ready(101);
  advance(10ms);
  c->on_notify_status(100, true, "draining");
  advance(240ms);
  c->on_notify_status(100, false, "stopped; running cleanup hooks");
  exit(100, exited(0));
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(events(100), (strings{"worker_started", "worker_ready", "worker_stop_ordered",
                                  "worker_draining", "worker_status", "worker_exited"}));
  const auto ordered = record("worker_stop_ordered", 100);
  EXPECT_EQ(ordered.message,
            "slot 0 pid 100: SIGTERM (reload); killed if still running after 10.00s");
  EXPECT_EQ(field(ordered, "signal"), "SIGTERM");
  EXPECT_EQ(field(ordered, "reason"), "reload");
  EXPECT_EQ(field(ordered, "kill_after_s"), "10.000");
  EXPECT_EQ(field(ordered, "slot"), "0");
  EXPECT_EQ(field(ordered, "generation"), "1");
  const auto draining = record("worker_draining", 100);
  EXPECT_EQ(draining.message,
            "slot 0 pid 100: draining, it says (\"draining\"), 0.01s after its stop signal");
  EXPECT_EQ(field(draining, "status"), "draining");
  EXPECT_EQ(field(record("worker_status", 100), "status"), "stopped; running cleanup hooks");
  const auto exited = record("worker_exited", 100);
  EXPECT_EQ(exited.message, "slot 0 pid 100: exit 0 after 0.25s (reload): graceful");
  EXPECT_EQ(field(exited, "exit"), "exit 0");
  EXPECT_EQ(field(exited, "outcome"), "graceful");
  EXPECT_EQ(field(exited, "after_s"), "0.250");
  EXPECT_EQ(field(exited, "reason"), "reload");
  // Its replacement says whom it replaced; the reload, how long it took in all.
  EXPECT_EQ(field(record("worker_ready", 101), "replaces_pid"), "100");
  EXPECT_EQ(events(), (strings{"reload_started", "reload_finished"}));
  const auto finished = record("reload_finished");
  EXPECT_EQ(field(finished, "ok"), "true");
  EXPECT_EQ(field(finished, "generation"), "2");
  EXPECT_EQ(field(finished, "took_s"), "0.280");
  EXPECT_EQ(finished.message, "reloaded 1 workers to generation 2 in 0.28s");
  // And the metrics count them.
  EXPECT_EQ(c->counters().reloads, (std::map<std::string, std::uint64_t>{{"ok", 1}}));
  EXPECT_EQ(c->counters().exits, (std::map<std::string, std::uint64_t>{{"graceful", 1}}));
  EXPECT_TRUE(c->counters().restarts.empty());
}

TEST_F(Cluster, AWorkerKilledAtItsKillTimeoutIsLoggedAsForced) {
  program.instances = 1;
  start();
  c->on_ready(100);
  c->stop(cluster::order::stop);
  advance(program.kill_timeout);
  exit(100, killed_by(SIGKILL));
  EXPECT_EQ(events(100), (strings{"worker_started", "worker_ready", "worker_stop_ordered",
                                  "worker_stop_ordered", "worker_exited"}));
  EXPECT_EQ(field(record("worker_stop_ordered", 100, 0), "reason"), "stop");
  const auto killing = record("worker_stop_ordered", 100, 1);
  EXPECT_EQ(field(killing, "signal"), "SIGKILL");
  EXPECT_EQ(field(killing, "reason"), "kill timeout");
  EXPECT_EQ(field(killing, "after_s"), "10.000");
  const auto exited = record("worker_exited", 100);
  EXPECT_EQ(exited.message, "slot 0 pid 100: killed by SIGKILL after 10.00s (stop): forced");
  EXPECT_EQ(field(exited, "outcome"), "forced");
  EXPECT_EQ(events(), strings{"all_exited"});
  EXPECT_EQ(c->counters().exits, (std::map<std::string, std::uint64_t>{{"forced", 1}}));
}

TEST_F(Cluster, EachStopSaysWhyAndAFailedExitIsNotGraceful) {
  program.instances = 2;
  program.max_memory = 100 << 20;
  program.watchdog = 2s;
  start();
  all_ready();
  c->on_watchdog(101);
  os.memory[100] = 200 << 20;
  advance(1s);
  c->on_ready(102);  // 100's replacement
  EXPECT_EQ(field(record("worker_replacing", 100), "reason"), "memory");
  EXPECT_EQ(field(record("worker_stop_ordered", 100), "reason"), "memory");
  exit(100, exited(1));
  EXPECT_EQ(field(record("worker_exited", 100), "outcome"), "failed");
  advance(500ms);
  c->on_watchdog(102);
  advance(1500ms);  // 101 has been silent for 3 s, 102 for 1.5 s
  EXPECT_EQ(events(102), (strings{"worker_started", "worker_ready"}));
  c->on_ready(103);
  EXPECT_EQ(field(record("worker_replacing", 101), "reason"), "watchdog");
  EXPECT_EQ(field(record("worker_stop_ordered", 101), "reason"), "watchdog");
  exit(101, killed_by(SIGTERM));  // the stop signal's own default action: graceful
  EXPECT_EQ(field(record("worker_exited", 101), "outcome"), "graceful");
  ASSERT_EQ(c->scale(1), "");
  EXPECT_EQ(field(record("worker_stop_ordered", 103), "reason"), "scale");
  EXPECT_EQ(c->counters().restarts,
            (std::map<std::string, std::uint64_t>{{"memory", 1}, {"watchdog", 1}}));
  EXPECT_EQ(c->counters().exits,
            (std::map<std::string, std::uint64_t>{{"failed", 1}, {"graceful", 1}}));
}

TEST_F(Cluster, RestartsAreCountedByReasonAndFailedReloadsByOutcome) {
  program.instances = 1;
  program.restart.initial = 10ms;
  start();
  c->on_ready(100);
  exit(100, killed_by(SIGSEGV));
  advance(10ms);  // 101
  exit(101, exited(3));
  advance(20ms);  // 102, never ready
  advance(program.ready_timeout);
  exit(102, killed_by(SIGKILL));
  os.failing_spawns = 1;
  advance(40ms);  // cannot start
  advance(80ms);  // 103
  c->on_ready(103);
  auto r = reload();
  exit(104, exited(1));  // its replacement fails
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(c->counters().restarts,
            (std::map<std::string, std::uint64_t>{
                {"signal", 1}, {"exit", 1}, {"not_ready", 1}, {"start_failed", 1}}));
  EXPECT_EQ(c->counters().reloads, (std::map<std::string, std::uint64_t>{{"failed", 1}}));
  // A new supervisor binary carries them on.
  cluster next(program, os, [](detail::log_record) {});
  next.take_over(c->hand_over());
  EXPECT_EQ(next.counters(), c->counters());
}

TEST_F(Cluster, WhatAWorkerSaysIsLoggedOnlyWhileItStops) {
  program.instances = 1;
  start();
  c->on_ready(100);
  c->on_notify_status(100, false, "serving 127.0.0.1:8080");
  EXPECT_EQ(events(100), (strings{"worker_started", "worker_ready"}));
  c->stop(cluster::order::stop);
  c->on_notify_status(100, true, "");
  c->on_notify_status(100, true, "draining\x1b[2J");  // STOPPING=1 again: said once
  EXPECT_EQ(events(100), (strings{"worker_started", "worker_ready", "worker_stop_ordered",
                                  "worker_draining", "worker_status"}));
  EXPECT_EQ(field(record("worker_status", 100), "status"), "draining [2J")
      << "control bytes do not reach the terminal";
}

TEST(DescribeWaitStatus, SaysHowAProcessEnded) {
  EXPECT_EQ(describe_wait_status(exited(0)), "exit 0");
  EXPECT_EQ(describe_wait_status(exited(3)), "exit 3");
  EXPECT_EQ(describe_wait_status(killed_by(SIGKILL)), "killed by SIGKILL");
  EXPECT_EQ(describe_wait_status(killed_by(SIGSEGV) | 0x80), "killed by SIGSEGV (core dumped)");
}

}  // namespace
}  // namespace lameduck::supervisor
