#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): how lameduck stops, beside Node.js (close(),
# close() + closeAllConnections()), http-terminator, stoppable, nginx (-s quit, -s stop) and a
# minimal epoll server that closes everything and exits at once (the floor, bench/epoll_floor.c).
#
# Part "stop": N idle keep-alive connections (one request each; N in NS) with and without K
# requests in flight (2 s handlers; K in INFLIGHT); after the stop signal: when a new connect is
# refused, when the port can be bound again, when the first and the last idle client sees its
# connection closed (EOF or reset), what each in-flight request got (complete 200? which
# Connection header?), when the process exited. Part "race": requests racing the stop (bytes
# already in the socket buffer; connections in the accept queue; requests written at the
# instant of the stop), TRIALS requests per scenario and server, counted as answered, cleanly
# closed or reset. bench/README.md explains every column.
#
# Run from anywhere:   bench/shutdown.sh               (about 11 minutes)
# Quick look:          QUICK=1 bench/shutdown.sh       (N = 100, 1 round, 100 trials: about 30 s)
# Environment (defaults in brackets):
#   NS ["100 5000 10000"]  INFLIGHT ["0 100"]  DELAY_MS [2000]  ROUNDS [5]  SETTLE_MS [300]
#   TRIALS [10000]  BATCH [100]  SCENARIOS ["a b c"]  PARTS ["stop race"]
#   STOP_SERVERS, RACE_SERVERS [floor lameduck lameduck-destroy lameduck-grace nginx-quit
#     nginx-stop node-close node-closeall http-terminator stoppable]
#   IDLE_GRACE [1] (lameduck-hello --idle-grace, seconds)  DRAIN_TIMEOUT [30]  PROBE_US [200]
#   LAMEDUCK_HELLO [build/release/bin/lameduck-hello, built first: bench/common.sh]
#   NGINX [/usr/sbin/nginx]  NODE [/usr/bin/node]
#   SERVER_CPU [0]  CLIENT_CPU [1]  OUT_DIR [bench/out]  LOCK [/tmp/lameduck-bench-lock]
#   LOCK_WAIT [3600] (seconds to wait for another benchmark's lock)
# Each run writes raw results and the tables to OUT_DIR/shutdown-<date>-<time>/.
# Needs: g++, gcc, taskset, python3, node + npm (for the Node.js peers), nginx; a missing server
# is skipped with a note. `LAMEDUCK_SETUP_BENCH=1 scripts/setup` installs nginx and the npm
# packages (bench/node, from its package-lock.json). Two or more CPUs.
set -euo pipefail

bench_name=shutdown
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
from_release LAMEDUCK_HELLO lameduck-hello
export OUT_DIR CLIENT_CPU LAMEDUCK_HELLO

need_tools g++ gcc taskset "$PYTHON"

# ------------------------------------------------------------------------------ build

mkdir -p "$OUT_DIR"
export BIN_DIR="$OUT_DIR"
bench_program shutdown_client -pthread
bench_program epoll_floor
# The Node.js peers, exactly as locked (npm ci), unless already installed from this lock.
if command -v npm >/dev/null 2>&1; then
  if [[ ! -f $here/node/node_modules/.package-lock.json ||
        $here/node/package-lock.json -nt $here/node/node_modules/.package-lock.json ]]; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error) ||
      note "npm ci failed in bench/node: http-terminator and stoppable will be skipped"
  fi
else
  note "no npm: http-terminator and stoppable will be skipped unless bench/node/node_modules exists"
fi

# ------------------------------------------------------------------------------ setup

# The client, the orchestrator and everything they start run on CLIENT_CPU; the servers are
# started with taskset -c SERVER_CPU.
pin_to_client_cpu

# 10,000 idle connections need that many descriptors in the client and in the server, which
# inherit this limit. Raise the soft limit as far as the hard limit allows.
raise_nofile
max_n=0
for n in ${NS:-100 5000 10000}; do ((n > max_n)) && max_n=$n; done
if ((nofile < max_n + 400)); then
  note "open-file limit is $nofile (hard limit $(ulimit -Hn)): too low for N = $max_n"
  exit 2
fi

lock_and_build

"$PYTHON" "$here/shutdown.py"
