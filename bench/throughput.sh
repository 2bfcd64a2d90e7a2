#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): lameduck against nginx, h2o and Node.js on a tiny
# keep-alive response, plus resident memory per idle keep-alive connection.
#
# Part 1, throughput. Every server answers GET / with 200 "Hello, World!\n" on 127.0.0.1, is
# pinned to CPU 0 and uses one thread / one worker; wrk is pinned to CPU 1 and runs
# `wrk -t1 -c64` and `-c256` (keep-alive, --latency) for DURATION seconds, after a WARMUP
# seconds run with the same connection count. Per server × connection count it reports
# requests/s, p99 latency, and the server's CPU time per request: utime+stime (plus reaped
# children) of the server process and all its descendants (nginx's worker, h2o's helper),
# read from /proc/PID/stat just before and just after the measured run, divided by the number
# of requests wrk counted. With one wrk thread the client saturates before the fastest servers
# do, so CPU µs/request is the figure that separates them. Servers are interleaved within each
# round (the order rotates from round to round); the table shows medians over ROUNDS rounds
# and each median's ratio to nginx's.
#
# Part 2, memory. A fresh instance of each of MEMORY_SERVERS (lameduck and nginx by default)
# gets IDLE_CONNS keep-alive connections (a python client on CPU 1; each connection sends one
# GET /, reads the answer, then stays open and idle); the figure is (VmRSS after − VmRSS
# before) / connections, VmRSS summed over the server process and its descendants (for nginx
# the master's share does not move, so this is the worker's growth). The whole part takes a
# few seconds per server, well within lameduck's default 60 s keep-alive timeout; the peers
# are configured with 300 s.
#
# Baseline. To compare a change with an earlier build of lameduck in the same run, set
# BASELINE_HELLO to that build's lameduck-hello: a server named "baseline" then runs it exactly
# as "lameduck" runs LAMEDUCK_HELLO (same arguments, same pinning), takes its turn in every
# round like the others, and is added to the defaults of SERVERS and MEMORY_SERVERS (a value
# you set yourself is used as it is: name "baseline" in it). E.g., from a worktree of the
# earlier commit built with the release preset:
#   BASELINE_HELLO=/tmp/old/build/release/bin/lameduck-hello bench/throughput.sh
#
# Run from anywhere:   bench/throughput.sh
# Quick look:          DURATION=3 ROUNDS=1 bench/throughput.sh
# Environment (defaults in brackets):
#   DURATION [10]  WARMUP [2]  ROUNDS [3]  CONNS ["64 256"]  IDLE_CONNS [10000]
#   SERVERS ["lameduck nginx h2o node floor"] (floor: bench/epoll_floor.c, built with gcc)  MEMORY_SERVERS ["lameduck nginx"] (MEMORY_SERVERS= skips part 2)
#   (with BASELINE_HELLO set: SERVERS ["lameduck baseline nginx h2o node floor"], MEMORY_SERVERS ["lameduck baseline nginx"])
#   LAMEDUCK_HELLO [build/release/bin/lameduck-hello, built first: bench/common.sh]
#   BASELINE_HELLO [unset: no baseline]  LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
#   NGINX [/usr/sbin/nginx]  H2O [/usr/bin/h2o]
#   NODE [/usr/bin/node]  PYTHON [/usr/bin/python3]  SERVER_CPU [0]  CLIENT_CPU [1]
#   OUT_DIR [bench/out]: each run writes raw results, wrk outputs and the tables to
#   OUT_DIR/throughput-<date>-<time>/.
# Needs: wrk, taskset, python3, and whichever servers are wanted (a missing one is skipped with a
# note; scripts/setup with LAMEDUCK_SETUP_BENCH=1 installs nginx-light and h2o). Two or more CPUs.
# Absolute figures drift by up to ~20 % between runs on a noisy machine: compare within one run.
set -euo pipefail

bench_name=throughput
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=bench/servers.sh
source "$here/servers.sh"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"64 256"}
IDLE_CONNS=${IDLE_CONNS:-10000}
from_release LAMEDUCK_HELLO lameduck-hello
BASELINE_HELLO=${BASELINE_HELLO:-}
if [[ -n $BASELINE_HELLO ]]; then
  SERVERS=${SERVERS:-"lameduck baseline nginx h2o node floor"}
  MEMORY_SERVERS=${MEMORY_SERVERS-"lameduck baseline nginx"}
else
  SERVERS=${SERVERS:-"lameduck nginx h2o node floor"}
  MEMORY_SERVERS=${MEMORY_SERVERS-"lameduck nginx"}
fi
NGINX=${NGINX:-/usr/sbin/nginx}
H2O=${H2O:-/usr/bin/h2o}
NODE=${NODE:-/usr/bin/node}
if [[ -n $BASELINE_HELLO ]]; then from_release BASELINE_HELLO lameduck-hello; fi

need_tools wrk taskset timeout "$PYTHON"

# ------------------------------------------------------------------------------ setup

# Everything this script runs itself (helpers, wrk, the idle client) stays off the server's CPU.
pin_to_client_cpu

# 10,000 idle connections need that many descriptors in the client and in the server, which
# inherit this limit. Raise the soft limit as far as the hard limit allows.
raise_nofile
if ((${#MEMORY_SERVERS} > 0 && nofile < IDLE_CONNS + 256)); then
  note "open-file limit is $nofile (hard limit $(ulimit -Hn)); idle connections cut to $((nofile - 256))"
  IDLE_CONNS=$((nofile - 256))
fi

clk_tck=$(getconf CLK_TCK)
run_dir="$OUT_DIR/throughput-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir/wrk"
{
  echo "date=$(date -Is)"
  echo "kernel=$(uname -r) lameduck=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"
  machine_line
  echo "DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONNS=${CONNS// /,} IDLE_CONNS=$IDLE_CONNS SERVERS=${SERVERS// /,} SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
} >"$run_dir/settings.txt"
results="$run_dir/results.txt"   # round server conns requests rps p99_ms cpu_us busy_pct errors
memory="$run_dir/memory.txt"     # server held failed rss_growth_bytes bytes_per_conn
: >"$results"
: >"$memory"

# Server configs, document roots and logs. World-readable: h2o drops root privileges to nobody.
tmp=$(mktemp -d /tmp/lameduck-bench.XXXXXX)
chmod 755 "$tmp"

cleanup() {
  stop_all_servers
}
on_exit cleanup

# ------------------------------------------------------------------------------ servers

# Each start_<name> PORT DIR launches the server in the background, pinned to SERVER_CPU, and
# leaves its pid in $!. The process must be the server itself (no wrapper shell), so that the
# pid is the root of the server's process tree.

have_lameduck() {
  [[ -x $LAMEDUCK_HELLO ]] && return 0
  [[ -n ${lameduck_noted:-} ]] ||
    note "skipping lameduck: $LAMEDUCK_HELLO not built (cmake --preset release && cmake --build --preset release, or set LAMEDUCK_HELLO)"
  lameduck_noted=1
  return 1
}
# run_hello BINARY PORT LOG: how lameduck and the baseline are both run.
run_hello() {
  taskset -c "$SERVER_CPU" "$1" --listen "127.0.0.1:$2" --threads 1 >"$3" 2>&1 &
}
start_lameduck() { run_hello "$LAMEDUCK_HELLO" "$1" "$2/lameduck.log"; }

# The baseline: an earlier build of lameduck-hello (BASELINE_HELLO), run as lameduck is.
have_baseline() {
  [[ -n $BASELINE_HELLO && -x $BASELINE_HELLO ]] && return 0
  if [[ -z ${baseline_noted:-} ]]; then
    if [[ -z $BASELINE_HELLO ]]; then
      note "skipping baseline: set BASELINE_HELLO to another build's lameduck-hello"
    else
      note "skipping baseline: $BASELINE_HELLO is not an executable"
    fi
  fi
  baseline_noted=1
  return 1
}
start_baseline() { run_hello "$BASELINE_HELLO" "$1" "$2/baseline.log"; }

have_nginx() { [[ -x $NGINX ]] || { note "skipping nginx: no $NGINX"; return 1; }; }
start_nginx() {
  local port=$1 dir=$2 temp_paths
  temp_paths=$(nginx_temp_paths "$dir")
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events {
  worker_connections $nofile;
}
http {
  access_log off;
  default_type text/plain;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
$temp_paths
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "Hello, World!\n"; }
  }
}
EOF
  taskset -c "$SERVER_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" \
    >"$dir/nginx.log" 2>&1 &
}

have_h2o() { [[ -x $H2O ]] || { note "skipping h2o: no $H2O"; return 1; }; }
start_h2o() {
  local port=$1 dir=$2
  # h2o 2.2 has no directive for a fixed body without mruby; file.file serves one (cached,
  # open) file at /. Its answer carries a few more headers (etag, last-modified,
  # accept-ranges) than the others'.
  printf 'Hello, World!\n' >"$dir/hello.txt"
  cat >"$dir/h2o.conf" <<EOF
listen:
  host: 127.0.0.1
  port: $port
num-threads: 1
error-log: $dir/h2o-error.log
http1-request-timeout: 300
hosts:
  "127.0.0.1":
    paths:
      "/":
        file.file: $dir/hello.txt
EOF
  taskset -c "$SERVER_CPU" "$H2O" -m worker -c "$dir/h2o.conf" >"$dir/h2o.log" 2>&1 &
}

# The floor: bench/epoll_floor.c, an epoll loop that parses nothing (it counts blank lines) and
# writes one fixed response; where the kernel's share of a request leaves everyone else.
have_floor() {
  command -v gcc >/dev/null 2>&1 || { note "skipping floor: no gcc"; return 1; }
  bench_program epoll_floor
}
start_floor() {
  local port=$1 dir=$2
  taskset -c "$SERVER_CPU" "$OUT_DIR/epoll_floor" "$port" >"$dir/floor.log" 2>&1 &
}

have_node() { [[ -x $NODE ]] || { note "skipping node: no $NODE"; return 1; }; }
start_node() {
  local port=$1 dir=$2
  cat >"$dir/server.js" <<'EOF'
'use strict';
const http = require('http');
const body = Buffer.from('Hello, World!\n');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 300000;
server.listen(Number(process.argv[2]), '127.0.0.1');
EOF
  taskset -c "$SERVER_CPU" "$NODE" "$dir/server.js" "$port" >"$dir/node.log" 2>&1 &
}

# ------------------------------------------------------------------------------ part 1

# start_server and measure (bench/servers.sh) do the work.

lock_and_build

servers=()
for name in $SERVERS; do
  declare -F "have_$name" >/dev/null || { note "unknown server $name"; continue; }
  "have_$name" && servers+=("$name")
done

echo "throughput: $(getconf _NPROCESSORS_ONLN) CPUs online, kernel $(uname -r); servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU"
echo "throughput: wrk -t1 -c{${CONNS// /,}} -d${DURATION}s after ${WARMUP}s warm-up; $ROUNDS round(s); output in $run_dir"
if [[ -n $BASELINE_HELLO && -x $BASELINE_HELLO ]]; then
  echo "throughput: lameduck is $LAMEDUCK_HELLO; baseline is $BASELINE_HELLO"
fi

running=()
for name in "${servers[@]}"; do
  if start_server "$name"; then running+=("$name"); fi
done

if ((${#running[@]} > 0)); then
  for ((round = 1; round <= ROUNDS; round++)); do
    for conns in $CONNS; do
      # Rotate the order each round so that no server always runs first or last.
      n=${#running[@]}
      for ((i = 0; i < n; i++)); do
        name=${running[(i + round - 1) % n]}
        [[ -n ${pid[$name]:-} ]] && measure "$round" "$name" "$conns"
      done
    done
  done
fi
for name in "${running[@]}"; do stop_server "$name"; done

# ------------------------------------------------------------------------------ part 2

for name in $MEMORY_SERVERS; do
  declare -F "have_$name" >/dev/null || { note "unknown server $name"; continue; }
  "have_$name" || continue
  start_server "$name" || continue
  # Opening is bounded to 30 s; then 1 s to settle before RSS is read again.
  line=$(timeout -k 5 90 taskset -c "$CLIENT_CPU" \
    "$PYTHON" "$here/throughput_helper.py" idle "${port[$name]}" "${pid[$name]}" "$IDLE_CONNS" 30) || line=
  record_idle "$name" "$line" "$memory"
  stop_server "$name"
done

# ------------------------------------------------------------------------------ tables

echo
helper summarize "$results" "$memory" | tee "$run_dir/summary.md"
