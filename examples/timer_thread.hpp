#pragma once
// A timer thread for the example programs (lameduck-hello, bench/soak_server.cpp): it completes
// responses later, from a thread that is not the server's, as an application's own code would.

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <tuple>
#include <vector>

// Runs functions at given times on one thread of its own.
class timer_thread {
 public:
  using clock = std::chrono::steady_clock;
  // Started with the process's stop signals blocked, so that they reach the thread that waits
  // for them (signal_shutdown::run) and never interrupt a timer.
  timer_thread() {
    sigset_t stop_signals, previous;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  ~timer_thread() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  // Whether nothing is waiting to run.
  bool empty() {
    std::lock_guard lock(mutex_);
    return queue_.empty();
  }
  void at(clock::time_point when, std::function<void()> f) {
    {
      std::lock_guard lock(mutex_);
      queue_.push({when, seq_++, std::move(f)});
    }
    wake_.notify_one();
  }

 private:
  struct item {
    clock::time_point when;
    std::uint64_t seq;
    std::function<void()> f;
    bool operator>(const item& o) const { return std::tie(when, seq) > std::tie(o.when, o.seq); }
  };
  void run() {
    std::unique_lock lock(mutex_);
    while (!done_) {
      if (queue_.empty()) {
        wake_.wait(lock);
      } else if (queue_.top().when > clock::now()) {
        auto when = queue_.top().when;  // a copy: at() may reallocate the queue while we wait
        wake_.wait_until(lock, when);
      } else {
        auto f = std::move(const_cast<item&>(queue_.top()).f);
        queue_.pop();
        lock.unlock();
        f();
        lock.lock();
      }
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::priority_queue<item, std::vector<item>, std::greater<>> queue_;
  std::uint64_t seq_ = 0;
  bool done_ = false;
  std::thread thread_;
};
