#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): one graceful stop of a lameduck server, recorded as a
# timeline for bench/charts.py. The server (bench/drain_timeline.cpp, built here with g++ -O2
# against the release build's liblameduck.a) samples its connections per state, its readiness
# and its completed responses every SAMPLE_MS ms through the library's public API
# (server::counts(), server::ready()) and writes its stop log lines (JSON) with their instants;
# the clients (bench/drain_timeline.py, one asyncio loop) hold IDLE idle keep-alive
# connections, UPGRADED connections upgraded to an echo protocol, SLOW slots of slow requests
# and LOAD slots of back-to-back requests, the last two only while a load balancer's health
# check (GET /readyz every CHECK_MS, out after FALL failures) keeps the server in its pool.
# Once everything is up the client waits BEFORE_MS and sends SIGTERM: the server says 503 to
# the check at once, serves on for LAME_DUCK_MS (the lame-duck delay, longer than the check's
# CHECK_MS x FALL), then drains with a deadline of DEADLINE_MS. Every failure a client sees is
# recorded with its time; the expected count is zero.
#
# Run from anywhere:   bench/drain_timeline.sh                    (about 10 s)
# Table again:         bench/drain_timeline.py summarize OUT_DIR/drain-timeline-<date>-<time>
# Chart:               /usr/bin/python3 bench/charts.py drain     (docs/images/drain-timeline.svg)
# Environment (defaults in brackets):
#   LOAD [8]  SLOW [20]  IDLE [200]  UPGRADED [20]  SLOW_MIN_MS [500]  SLOW_MAX_MS [3000]
#   CHECK_MS [500]  FALL [2]  BEFORE_MS [2000]  LAME_DUCK_MS [2000]  DEADLINE_MS [15000]
#   IDLE_GRACE_MS [0]  SAMPLE_MS [10]  THREADS [1]  LAMEDUCK_BUILD [build/release,
#   built first: bench/common.sh]
#   PYTHON [/usr/bin/python3]  SERVER_CPU [0]  CLIENT_CPU [1]  OUT_DIR [bench/out]
#   LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
# Each run writes samples.csv and server-events.jsonl (the server's), client-events.jsonl,
# settings.txt and summary.md to OUT_DIR/drain-timeline-<date>-<time>/. Needs: g++, taskset,
# python3, cmake (the release build is brought up to date first: bench/common.sh).
set -euo pipefail

bench_name="drain-timeline"
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LOAD=${LOAD:-8}
SLOW=${SLOW:-20}
IDLE=${IDLE:-200}
UPGRADED=${UPGRADED:-20}
SLOW_MIN_MS=${SLOW_MIN_MS:-500}
SLOW_MAX_MS=${SLOW_MAX_MS:-3000}
CHECK_MS=${CHECK_MS:-500}
FALL=${FALL:-2}
BEFORE_MS=${BEFORE_MS:-2000}
LAME_DUCK_MS=${LAME_DUCK_MS:-2000}
DEADLINE_MS=${DEADLINE_MS:-15000}
IDLE_GRACE_MS=${IDLE_GRACE_MS:-0}
SAMPLE_MS=${SAMPLE_MS:-10}
THREADS=${THREADS:-1}
from_release LAMEDUCK_BUILD lameduck "" liblameduck.a

need_tools taskset timeout g++ "$PYTHON"
need_whole_numbers LOAD SLOW IDLE UPGRADED SLOW_MIN_MS SLOW_MAX_MS CHECK_MS FALL BEFORE_MS \
  LAME_DUCK_MS DEADLINE_MS IDLE_GRACE_MS SAMPLE_MS THREADS

server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
on_exit cleanup

lock_and_build
lib=$LAMEDUCK_BUILD/liblameduck.a
[[ -f $lib ]] || { note "no $lib (build the release preset, or set LAMEDUCK_BUILD)"; exit 2; }
program_on_library drain_timeline "$lib"
server_bin=$program

run_dir="$OUT_DIR/drain-timeline-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir"
{
  echo "date=$(date -Is)"
  machine_line
  echo "kernel=$(uname -r)"
  echo "lameduck=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') library=$lib"
  echo "LOAD=$LOAD SLOW=$SLOW IDLE=$IDLE UPGRADED=$UPGRADED SLOW_MIN_MS=$SLOW_MIN_MS SLOW_MAX_MS=$SLOW_MAX_MS"
  echo "CHECK_MS=$CHECK_MS FALL=$FALL BEFORE_MS=$BEFORE_MS LAME_DUCK_MS=$LAME_DUCK_MS DEADLINE_MS=$DEADLINE_MS IDLE_GRACE_MS=$IDLE_GRACE_MS"
  echo "SAMPLE_MS=$SAMPLE_MS THREADS=$THREADS SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
} >"$run_dir/settings.txt"

# The client needs a descriptor per connection, and so does the server, which inherits this.
raise_nofile

max_s=$(((BEFORE_MS + DEADLINE_MS) / 1000 + 60))
taskset -c "$SERVER_CPU" "$server_bin" --samples "$run_dir/samples.csv" \
  --events "$run_dir/server-events.jsonl" --threads "$THREADS" --sample-ms "$SAMPLE_MS" \
  --lame-duck-ms "$LAME_DUCK_MS" --deadline-ms "$DEADLINE_MS" --idle-grace-ms "$IDLE_GRACE_MS" \
  --max-s "$max_s" >"$run_dir/server.out" 2>"$run_dir/server.err" &
server_pid=$!
port=
for _ in $(seq 1 100); do
  read -r _ port < <(grep '^listening' "$run_dir/server.out" 2>/dev/null || true) || true
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n $port ]] || { note "the server did not start:"; cat "$run_dir/server.err" >&2; exit 1; }
echo "drain-timeline: server pid $server_pid on 127.0.0.1:$port (CPU $SERVER_CPU), clients on CPU $CLIENT_CPU; output in $run_dir"

timeout -k 5 $((max_s + 30)) taskset -c "$CLIENT_CPU" "$PYTHON" "$here/drain_timeline.py" run \
  --port "$port" --pid "$server_pid" --events "$run_dir/client-events.jsonl" --load "$LOAD" \
  --slow "$SLOW" --idle "$IDLE" --upgraded "$UPGRADED" --slow-min-ms "$SLOW_MIN_MS" \
  --slow-max-ms "$SLOW_MAX_MS" --check-ms "$CHECK_MS" --fall "$FALL" --before-ms "$BEFORE_MS" \
  --max-s "$max_s" >"$run_dir/client.out" 2>"$run_dir/client.err" ||
  note "the client failed (exit $?); see $run_dir/client.err"

# The server exits TAIL after its stop; if the client never sent the signal, it is stopped here.
for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
  note "the server had not exited 30 s after the client; stopping it (pid $server_pid)"
  kill -KILL "$server_pid" 2>/dev/null || true
fi
status=0
wait "$server_pid" || status=$?
server_pid=
echo "drain-timeline: server exit status $status"
echo
"$PYTHON" "$here/drain_timeline.py" summarize "$run_dir"   # also writes summary.md
