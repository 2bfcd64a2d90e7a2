#pragma once
// `lameduck run`: the supervisor's one loop, on its one thread. It owns the listening sockets,
// the lifeline, the control socket and every worker's channels (output, readiness), and is the
// real operating system behind the clusters' seam.

#include "config.hpp"

namespace lameduck::supervisor {

/// Runs the supervisor in the foreground until every worker has stopped; its exit status (0
/// when every worker ended on its own, 1 otherwise or when it could not start).
int run_supervisor(run_config config);

}  // namespace lameduck::supervisor
