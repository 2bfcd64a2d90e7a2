#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): failed requests, latency and throughput while a
# supervisor replaces every worker of a cluster, RELOADS times in a row, under continuous load
# (issue 11). The cases:
#   lameduck-hello   lameduck run --instances INSTANCES -- lameduck-hello --threads 1
#                    --idle-grace IDLE_GRACE (readiness: READY=1 on NOTIFY_SOCKET; the drain keeps
#                    idle keep-alive connections for their next request, answered with
#                    Connection: close)
#   lameduck-node    lameduck run --instances INSTANCES --ready fd --ready-fd 4 --
#                    node examples/node/worker.js (the guide's worker: readiness with one write
#                    to the ready pipe, the same kind of drain)
#   pm2              PM2 (npm package pm2, pinned in bench/node/package.json) in cluster mode,
#                    INSTANCES instances of bench/node/pm2_app.js, which starts and stops as
#                    PM2's documentation recommends (wait_ready + process.send('ready'); SIGINT:
#                    server.close(), exit in its callback; kill_timeout 5 s); pm2 reload
# For each case and each client mode (MODES: keepalive, close = a new connection per request),
# ROUNDS times: start the cluster on a free port of 127.0.0.1, start reload_client.cpp with
# CONNECTIONS connections, WARMUP s, a steady window of DURATION s, then RELOADS reloads one
# after the other (`lameduck reload`, which returns when the reload is over, or `pm2 reload`),
# then TAIL s, and stop everything by pid (PM2 with its own `pm2 kill`, its PM2_HOME in a temp
# dir). Then COMPARE: the same keep-alive load for DURATION s against 2 lameduck-hello workers
# under the supervisor and against one lameduck-hello with --threads 2 started alone,
# COMPARE_RUNS times each, with the server side's CPU time per request.
# bench/README.md explains every column.
#
# Run from anywhere:   bench/reload.sh                     (about 8 minutes with the defaults)
# Quick look:          RELOADS=3 DURATION=3 bench/reload.sh
# Tables again:        bench/reload.sh summarize OUT_DIR/reload-<date>-<time>
# Environment (defaults in brackets):
#   CASES ["lameduck-hello lameduck-node pm2"]  MODES ["keepalive close"]  ROUNDS [1]
#   RELOADS [20]  INSTANCES [4]  CONNECTIONS [64]  DURATION [10] (steady window, s)
#   WARMUP [2]  TAIL [2]  TIMEOUT_MS [5000] (per request)  RETRY_MS [10] (after a failure)
#   IDLE_GRACE [5] (s)  DRAIN_TIMEOUT [20] (s, the workers')  KILL_TIMEOUT [30s] (supervisor)
#   RELOAD_TIMEOUT [120] (s, bounds one reload command)  COMPARE [1]  COMPARE_RUNS [4] (pairs
#   of measurements, DURATION s each, the order alternating)  CHECK [1] (check the
#   client's counting against raw misbehaving servers first, about 15 s)
#   LAMEDUCK, LAMEDUCK_HELLO [bin/lameduck, bin/lameduck-hello of build/release, built first]
#   NODE [node]  PYTHON [python3]  SERVER_CPUS [0]  CLIENT_CPU [1]  OUT_DIR [bench/out]
#   LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
# Each run writes results.jsonl (one line per case, mode and round), compare.jsonl, client/
# (the client's JSON, per-second samples and every failure with its time), servers/ (the
# supervisors' output) and summary.md to OUT_DIR/reload-<date>-<time>/. It never fails because
# of the figures. Needs: g++, taskset, python3, node and npm (for PM2 and the Node.js worker);
# a case whose programs are missing is skipped with a note.
set -euo pipefail

bench_name=reload
PYTHON=${PYTHON:-$(command -v python3 || echo /usr/bin/python3)}
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CASES=${CASES:-lameduck-hello lameduck-node pm2}
MODES=${MODES:-keepalive close}
ROUNDS=${ROUNDS:-1}
RELOADS=${RELOADS:-20}
INSTANCES=${INSTANCES:-4}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
TAIL=${TAIL:-2}
TIMEOUT_MS=${TIMEOUT_MS:-5000}
RETRY_MS=${RETRY_MS:-10}
IDLE_GRACE=${IDLE_GRACE:-5}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-20}
KILL_TIMEOUT=${KILL_TIMEOUT:-30s}
RELOAD_TIMEOUT=${RELOAD_TIMEOUT:-120}
COMPARE=${COMPARE:-1}
COMPARE_RUNS=${COMPARE_RUNS:-4}
CHECK=${CHECK:-1}
from_release LAMEDUCK lameduck-supervisor bin/lameduck
from_release LAMEDUCK_HELLO lameduck-hello
NODE=${NODE:-$(command -v node || echo /usr/bin/node)}
SERVER_CPUS=${SERVER_CPUS:-0}
PM2=$here/node/node_modules/.bin/pm2

helper() { "$PYTHON" "$here/reload_helper.py" "$@"; }

if [[ ${1:-} == summarize ]]; then
  [[ -f ${2:-}/results.jsonl ]] || { note "usage: $0 summarize RUN_DIR (with results.jsonl)"; exit 2; }
  helper summarize "$2"
  exit 0
fi

need_tools g++ taskset "$PYTHON"
need_whole_numbers RELOADS INSTANCES CONNECTIONS DURATION WARMUP TAIL TIMEOUT_MS RETRY_MS ROUNDS RELOAD_TIMEOUT COMPARE_RUNS
((WARMUP >= 1)) || { note "WARMUP must be 1 s or more (the client must be up before the first phase mark)"; exit 2; }

# ------------------------------------------------------------------------------ build, install

bench_program reload_client
client=$program

# PM2, exactly as locked (npm ci), unless already installed from this lock.
if [[ " $CASES " == *" pm2 "* ]] && command -v npm >/dev/null 2>&1; then
  if [[ ! -f $here/node/node_modules/.package-lock.json ||
        $here/node/package-lock.json -nt $here/node/node_modules/.package-lock.json ]]; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error) ||
      note "npm ci failed in bench/node: pm2 will be skipped"
  fi
fi

lock_and_build

cases=()
for c in $CASES; do
  case $c in
    lameduck-hello)
      if [[ -x $LAMEDUCK && -x $LAMEDUCK_HELLO ]]; then cases+=("$c"); else
        note "skipping $c: needs $LAMEDUCK and $LAMEDUCK_HELLO (cmake --build --preset release --target lameduck-supervisor lameduck-hello)"
      fi ;;
    lameduck-node)
      if [[ -x $LAMEDUCK && -x $NODE ]]; then cases+=("$c"); else
        note "skipping $c: needs $LAMEDUCK and $NODE"
      fi ;;
    pm2)
      if [[ -x $PM2 && -x $NODE ]]; then cases+=("$c"); else
        note "skipping $c: needs $PM2 (npm ci in bench/node) and $NODE"
      fi ;;
    *) note "unknown case $c (lameduck-hello lameduck-node pm2)"; exit 2 ;;
  esac
done
if ((COMPARE)) && [[ ! -x $LAMEDUCK || ! -x $LAMEDUCK_HELLO ]]; then
  note "skipping the comparison: needs $LAMEDUCK and $LAMEDUCK_HELLO"
  COMPARE=0
fi
((${#cases[@]} > 0 || COMPARE)) || { note "nothing to run"; exit 2; }

# ------------------------------------------------------------------------------ setup

# The script, the client and the control commands run on CLIENT_CPU; the supervisors (and so
# their workers) and PM2's daemon are started with taskset -c SERVER_CPUS.
pin_to_client_cpu
raise_nofile
clk_tck=$(getconf CLK_TCK)

tmp=$(mktemp -d /tmp/lameduck-reload.XXXXXX)
sup_pid='' sup_kind='' client_pid='' ctl='' pm2_home=''
cleanup() {
  if [[ -n $client_pid ]]; then kill -KILL "$client_pid" 2>/dev/null || true; fi
  stop_cluster >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
on_exit cleanup

run_dir="$OUT_DIR/reload-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir/servers" "$run_dir/client"
: >"$run_dir/results.jsonl"
{
  echo "date=$(date -Is)"
  echo "CASES=${CASES// /,} MODES=${MODES// /,} ROUNDS=$ROUNDS RELOADS=$RELOADS INSTANCES=$INSTANCES"
  echo "CONNECTIONS=$CONNECTIONS DURATION=$DURATION WARMUP=$WARMUP TAIL=$TAIL TIMEOUT_MS=$TIMEOUT_MS RETRY_MS=$RETRY_MS"
  echo "IDLE_GRACE=$IDLE_GRACE DRAIN_TIMEOUT=$DRAIN_TIMEOUT KILL_TIMEOUT=$KILL_TIMEOUT SERVER_CPUS=$SERVER_CPUS CLIENT_CPU=$CLIENT_CPU"
  echo "lameduck=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') LAMEDUCK=$LAMEDUCK"
  echo "node=$("$NODE" --version 2>/dev/null || echo none) pm2=$("$NODE" -p "require('$here/node/node_modules/pm2/package.json').version" 2>/dev/null || echo none)"
  echo "kernel=$(uname -r)"
  machine_line
} >"$run_dir/settings.txt"
note "writing to $run_dir"

if ((CHECK)); then
  note "checking the client's counting against raw misbehaving servers"
  "$PYTHON" "$here/reload_client_check.py" "$client" | tee "$run_dir/client-check.txt" >&2 ||
    { note "the client counts wrong (see above); fix reload_client.cpp first"; exit 1; }
fi

# ------------------------------------------------------------------------------ the clusters

# Each start_* PORT LOG [INSTANCES [PROGRAM ARGS]] starts a cluster in the background and
# returns 0 once every worker is ready; it sets sup_pid (the supervisor, or PM2's daemon) and
# sup_kind. reload_cluster performs one reload; stop_cluster stops it and says, in `left`,
# which of its processes outlived the stop (they are killed by pid).

# wait_lameduck_ready N: until `lameduck status --json` counts N ready workers (30 s at most).
wait_lameduck_ready() {
  local want=$1 i n
  for ((i = 0; i < 300; i++)); do
    kill -0 "$sup_pid" 2>/dev/null || return 1
    n=$("$LAMEDUCK" status --control "$ctl" --json 2>/dev/null | helper ready-workers 2>/dev/null) || n=-1
    ((n >= want)) && return 0
    sleep 0.1
  done
  return 1
}

start_lameduck() {
  local port=$1 log=$2 instances=$3
  shift 3
  mkdir -p "$tmp/ctl" && chmod 700 "$tmp/ctl"
  ctl="$tmp/ctl/control-$port.sock"
  sup_kind=lameduck
  taskset -c "$SERVER_CPUS" "$LAMEDUCK" run --instances "$instances" --listen "127.0.0.1:$port" \
    --control "$ctl" --kill-timeout "$KILL_TIMEOUT" "$@" >"$log" 2>&1 &
  sup_pid=$!
  wait_lameduck_ready "$instances"
}

start_lameduck-hello() {
  start_lameduck "$1" "$2" "${3:-$INSTANCES}" -- "$LAMEDUCK_HELLO" --threads "${4:-1}" \
    --idle-grace "$IDLE_GRACE" --drain-timeout "$DRAIN_TIMEOUT"
}

start_lameduck-node() {
  start_lameduck "$1" "$2" "${3:-$INSTANCES}" --ready fd --ready-fd 4 -- "$NODE" \
    "$root/examples/node/worker.js" --idle-grace "$IDLE_GRACE" --drain-timeout "$DRAIN_TIMEOUT"
}

pm2() { PM2_HOME=$pm2_home timeout 60 "$PM2" "$@"; }

start_pm2() {
  local port=$1 log=$2
  pm2_home=$(mktemp -d "$tmp/pm2.XXXXXX")
  sup_kind=pm2
  # The daemon is spawned by this first command and inherits its CPU affinity.
  PM2_BENCH_PORT=$port PM2_BENCH_INSTANCES=$INSTANCES PM2_HOME=$pm2_home \
    taskset -c "$SERVER_CPUS" timeout 60 "$PM2" start "$here/node/pm2.config.js" >"$log" 2>&1 || return 1
  sup_pid=$(cat "$pm2_home/pm2.pid" 2>/dev/null) || return 1
  # pm2 start returns once every instance said ready (wait_ready).
  helper wait-port "$port" "$sup_pid" 10
}

reload_cluster() {
  case $sup_kind in
    lameduck) timeout "$RELOAD_TIMEOUT" "$LAMEDUCK" reload --control "$ctl" ;;
    pm2) PM2_HOME=$pm2_home timeout "$RELOAD_TIMEOUT" "$PM2" reload reload-bench ;;
  esac
}

# cluster_pids: the supervisor (or daemon) and every worker, one line.
cluster_pids() {
  case $sup_kind in
    lameduck) helper tree "$sup_pid" ;;
    pm2) echo "$sup_pid $(pm2 jlist 2>/dev/null | helper pm2-pids)" ;;
  esac
}

stop_cluster() {
  local pids p i
  left=
  sup_exit=-
  [[ -n $sup_pid ]] || return 0
  pids=$(cluster_pids 2>/dev/null) || pids=$sup_pid
  case $sup_kind in
    lameduck)
      timeout 60 "$LAMEDUCK" stop --control "$ctl" >/dev/null 2>&1 || kill -TERM "$sup_pid" 2>/dev/null || true
      # The workers drain (DRAIN_TIMEOUT) and the supervisor kills what outlives KILL_TIMEOUT.
      for ((i = 0; i < 600; i++)); do kill -0 "$sup_pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$sup_pid" 2>/dev/null; then kill -TERM "$sup_pid" 2>/dev/null || true; sleep 2; fi
      sup_exit=0
      wait "$sup_pid" 2>/dev/null || sup_exit=$?
      ;;
    pm2)
      pm2 kill >/dev/null 2>&1 || true
      sup_exit=pm2-kill
      ;;
  esac
  # Whatever of the cluster is still there 10 s later is named and killed, by pid.
  for ((i = 0; i < 100; i++)); do
    left=
    for p in $pids; do if [[ -e /proc/$p ]] && [[ $(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) != Z ]]; then left+="$p "; fi; done
    [[ -z $left ]] && break
    sleep 0.1
  done
  for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
  left=${left% }
  sup_pid='' ctl='' pm2_home=''
}

cpu_mark() { echo "$1 $(helper ownticks "$sup_pid")" >>"$cpu_file"; }

# ------------------------------------------------------------------------------ one run

run_case() {
  local case=$1 mode=$2 round=$3 tag="$1-$2-r$3" port log problem='' i start rc ready cj
  port=$(helper freeport)
  log="$run_dir/servers/$tag.log"
  cj="$run_dir/client/$tag.json"
  reloads_file="$tmp/$tag.reloads"
  cpu_file="$tmp/$tag.cpu"
  : >"$reloads_file"
  : >"$cpu_file"
  note "$tag: starting on 127.0.0.1:$port"
  if ! "start_$case" "$port" "$log"; then
    note "$tag: the cluster did not start (see $log); skipped"
    tail -5 "$log" >&2 || true
    stop_cluster
    return
  fi
  cpu_mark started
  local bound=$((WARMUP + DURATION + TAIL + RELOADS * (RELOAD_TIMEOUT + 5) + 60))
  taskset -c "$CLIENT_CPU" "$client" --port "$port" --mode "$mode" --connections "$CONNECTIONS" \
    --timeout-ms "$TIMEOUT_MS" --retry-ms "$RETRY_MS" --max-s "$bound" \
    --phases warmup,steady,reloads,tail --samples "$run_dir/client/$tag.samples.csv" \
    --failures "$run_dir/client/$tag.failures.csv" >"$cj" 2>"$run_dir/client/$tag.err" &
  client_pid=$!
  sleep "$WARMUP"
  kill -USR1 "$client_pid"
  cpu_mark steady_start
  sleep "$DURATION"
  kill -USR1 "$client_pid"
  cpu_mark steady_end
  for ((i = 1; i <= RELOADS; i++)); do
    if ! kill -0 "$sup_pid" 2>/dev/null; then
      problem="the supervisor exited before reload $i"
      break
    fi
    start=$EPOCHREALTIME
    rc=0
    { echo "--- reload $i"; reload_cluster; } >>"$run_dir/servers/$tag.reloads.log" 2>&1 || rc=$?
    echo "$start $EPOCHREALTIME $rc" >>"$reloads_file"
    if ((rc != 0)); then note "$tag: reload $i failed (exit $rc; see $run_dir/servers/$tag.reloads.log)"; fi
  done
  cpu_mark reloads_end
  kill -USR1 "$client_pid"
  sleep "$TAIL"
  kill -TERM "$client_pid" 2>/dev/null || true
  wait "$client_pid" || note "$tag: the client exited $? (see $run_dir/client/$tag.err)"
  client_pid=
  # Every worker should still be there and ready after the reloads.
  if [[ $sup_kind == lameduck ]] && kill -0 "$sup_pid" 2>/dev/null; then
    ready=$("$LAMEDUCK" status --control "$ctl" --json 2>/dev/null | tee "$run_dir/servers/$tag.status.json" | helper ready-workers) || ready=-1
    ((ready == INSTANCES)) || problem+="${problem:+; }$ready of $INSTANCES workers ready after the reloads"
  elif [[ $sup_kind == pm2 ]]; then
    pm2 jlist >"$run_dir/servers/$tag.status.json" 2>/dev/null || true
    # The daemon's log and the instances' output, before pm2 kill and the temp dir go.
    mkdir -p "$run_dir/servers/$tag.pm2"
    cp -r "$pm2_home/pm2.log" "$pm2_home/logs" "$run_dir/servers/$tag.pm2/" 2>/dev/null || true
  fi
  stop_cluster
  helper record "$case" "$mode" "$round" "$cj" "$reloads_file" "$cpu_file" "$clk_tck" \
    "$("$PYTHON" -c 'import json, sys; print(json.dumps({"problem": sys.argv[1], "left_running": sys.argv[2], "supervisor_exit": sys.argv[3]}))' \
      "$problem" "$left" "$sup_exit")" >>"$run_dir/results.jsonl"
  "$PYTHON" - "$run_dir/results.jsonl" <<'EOF' >&2
import json, sys, statistics
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
t = (r["client"] or {}).get("total", {})
d = [x["end"] - x["start"] for x in r["reloads"] if x["rc"] == 0]
kinds = ", ".join(f"{k} {t.get(k, 0)}" for k in ("connect", "reset", "eof", "timeout", "status", "bad") if t.get(k))
print(f"reload: {r['case']}-{r['mode']}-r{r['round']}: {t.get('ok', 0):,} ok, {t.get('failed', 0):,} failed"
      f"{' (' + kinds + ')' if kinds else ''}; {len(d)}/{len(r['reloads'])} reloads ok"
      f"{', median %.2f s' % statistics.median(d) if d else ''}"
      f"{'; ' + r['problem'] if r.get('problem') else ''}"
      f"{'; left running: ' + r['left_running'] if r.get('left_running') else ''}")
EOF
}

# compare_run WAY ROUND: the same keep-alive load against 2 workers under the supervisor or one
# server with 2 threads; WARMUP s discarded, then DURATION s measured.
compare_run() {
  local way=$1 round=$2 port log cj before after i
  port=$(helper freeport)
  log="$run_dir/servers/compare-$way-r$round.log"
  cj="$run_dir/client/compare-$way-r$round.json"
  case $way in
    alone-2-threads)
      sup_kind=alone
      taskset -c "$SERVER_CPUS" "$LAMEDUCK_HELLO" --listen "127.0.0.1:$port" --threads 2 >"$log" 2>&1 &
      sup_pid=$!
      helper wait-port "$port" "$sup_pid" 10 || { note "compare: $way did not start"; kill -TERM "$sup_pid"; wait "$sup_pid" || true; sup_pid=; return; }
      ;;
    supervisor-2-workers)
      start_lameduck-hello "$port" "$log" 2 1 || { note "compare: $way did not start (see $log)"; stop_cluster; return; }
      ;;
  esac
  taskset -c "$CLIENT_CPU" "$client" --port "$port" --connections "$CONNECTIONS" --max-s "$WARMUP" \
    --timeout-ms "$TIMEOUT_MS" >/dev/null 2>&1 || true
  before=$(helper treeticks "$sup_pid")
  taskset -c "$CLIENT_CPU" "$client" --port "$port" --connections "$CONNECTIONS" --max-s "$DURATION" \
    --timeout-ms "$TIMEOUT_MS" --phases measured >"$cj" 2>/dev/null || true
  after=$(helper treeticks "$sup_pid")
  if [[ $sup_kind == alone ]]; then
    kill -TERM "$sup_pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$sup_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sup_pid" 2>/dev/null || true
    wait "$sup_pid" 2>/dev/null || true
    sup_pid=
  else
    stop_cluster
    [[ -z $left ]] || note "compare: left running after the stop: $left"
  fi
  helper compare-record "$way" "$round" "$cj" "$before" "$after" "$clk_tck" >>"$run_dir/compare.jsonl"
  note "compare $way r$round: $(helper brief "$cj")"
}

# ------------------------------------------------------------------------------ the rounds

started=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  n=${#cases[@]}
  for ((k = 0; k < n; k++)); do
    # The cases take turns, in an order that rotates from round to round.
    c=${cases[$(((k + round - 1) % n))]}
    for mode in $MODES; do run_case "$c" "$mode" "$round"; done
  done
done
# COMPARE_RUNS pairs, the order alternating from pair to pair.
if ((COMPARE)); then
  for ((r = 1; r <= COMPARE_RUNS; r++)); do
    if ((r % 2)); then ways="alone-2-threads supervisor-2-workers"; else ways="supervisor-2-workers alone-2-threads"; fi
    for way in $ways; do compare_run "$way" "$r"; done
  done
fi

echo
helper summarize "$run_dir"
echo
echo "($((SECONDS - started)) s; raw results in $run_dir)"
