// The stop signals of the benchmarks' own servers (bench/drain_timeline.cpp,
// bench/soak_server.cpp; benchmarks, never run by CI).
#pragma once

#include <signal.h>

// Blocks SIGTERM and SIGINT, to be taken with sigtimedwait by the main thread only, and ignores
// SIGPIPE. Call it before any thread starts, so that every thread inherits the mask. Returns the
// set to wait on.
inline sigset_t block_stop_signals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}
