#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): slow and hostile clients against lameduck and nginx in
# the same run. Conventions and helpers are throughput.sh's (bench/servers.sh,
# bench/throughput_helper.py); the load is bench/hostile_client.cpp (built here with g++ -O2);
# the tables are printed by bench/hostile_helper.py.
#
# Every server is on 127.0.0.1 (a free port, picked as servers.sh does), pinned to SERVER_CPU (0),
# one thread / one worker, each part on a fresh instance; the client is pinned to CLIENT_CPU (1).
#   lameduck  lameduck-hello --threads 1, its defaults (header timeout 10 s from the accept, body
#             timeout 30 s between reads, and the minimum data rates if the build has them: none
#             is configured here)
#   nginx     nginx as throughput.sh configures it (one worker, `return 200`, access log off,
#             keepalive_timeout 300s) and nginx's defaults for client_header_timeout and
#             client_body_timeout (60 s each: not set here); the slow bodies go to a WebDAV PUT
#             location (dav_methods PUT), which reads the body as a proxied upload would (a
#             `return 200` location would answer at once and discard the body with its lingering
#             timers instead)
# In every part, HEALTHY (8) keep-alive clients each send GET / every HEALTHY_INTERVAL_MS (20) ms
# and measure the time to the answer.
#
# Part "slow": the healthy clients alone for ALONE s (20); then HEADER_CONNS (2,000) connections
# that send one header byte every BYTE_INTERVAL_MS (5,000) ms, never finishing the head, and
# BODY_CONNS (500) that send a complete head (POST /echo to lameduck, PUT /upload/slow to nginx,
# Content-Length: BODY_LENGTH, 1,000) and then one body byte every BYTE_INTERVAL_MS, all opened
# evenly over RAMP s (5) and kept DURATION s (80) more. A slow connection the server ends is
# counted as cut, with the time from its connect to its end, and is opened again at once.
# Reported: healthy p50/p99 alone, while ramping up and under attack, p99 under attack ÷ p99
# alone (alone floored at 1 ms for timer noise), how many slow connections were cut, how, and
# when (lifetimes: min/p10/p50/p90/max), and how many were still open at the end.
#
# Part "fdlimit": a flood past the process's descriptor limit. The server runs with an open-file
# limit of FD_LIMIT (1024; lameduck: `ulimit -n`; nginx: worker_rlimit_nofile, with
# worker_connections 4096 so that descriptors run out first). The healthy clients run BEFORE s
# (5); then FD_FLOOD_CONNS (4,000) connections open at once, each sends one keep-alive GET / and
# holds its connection for FLOOD_SECONDS (20); then all close and the healthy clients go on for
# AFTER s (10). A probe (a new connection, GET /, Connection: close, 1 s to answer) starts every
# 500 ms during the flood and every 100 ms after it. Reported: what the flood's connections got,
# healthy p99 and errors before, during and after, the probes answered during the flood, when
# the first probe after the flood was answered (recovery), and the lines the server logged
# during the flood and after it.
#
# Part "maxconn": the same flood (MAXCONN_FLOOD_CONNS, 3,000) past lameduck's
# limits::max_connections, set to MAX_CONNECTIONS (1,000) with lameduck-hello
# --max-connections; new connections past it should get a 503. nginx's nearest setting is
# worker_connections, set to the same number (it counts its listening socket too; past it,
# nginx closes new connections without an answer).
#
# Run from anywhere:   bench/slow_clients.sh                     (about 7 minutes)
# Quick look:          QUICK=1 bench/slow_clients.sh              (about 2 minutes)
# Environment (defaults in brackets; QUICK=1 changes those marked *):
#   PARTS ["slow fdlimit maxconn"]  SERVERS ["lameduck nginx"]  ROUNDS [1]
#   ALONE* [20]  RAMP* [5]  DURATION* [80]  HEADER_CONNS [2000]  BODY_CONNS [500]
#   BYTE_INTERVAL_MS [5000]  BODY_LENGTH [1000]  HEALTHY [8]  HEALTHY_INTERVAL_MS [20]
#   FD_LIMIT [1024]  FD_FLOOD_CONNS [4000]  MAX_CONNECTIONS [1000]  MAXCONN_FLOOD_CONNS [3000]
#   BEFORE* [5]  FLOOD_SECONDS* [20]  AFTER* [10]  (QUICK: 5, 2, 20, 2, 6, 4)
#   LAMEDUCK_HELLO [build/release/bin/lameduck-hello, built first: bench/common.sh]
#   NGINX [/usr/sbin/nginx]
#   PYTHON [/usr/bin/python3]  SERVER_CPU [0]  CLIENT_CPU [1]  OUT_DIR [bench/out]
#   LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
# Each run writes results.jsonl (one line per part, server and round: the client's figures),
# events/ (per slow connection, per probe and per healthy request), the servers' logs and summary.md to
# OUT_DIR/slow-clients-<date>-<time>/; `bench/hostile_helper.py summarize DIR` prints the tables
# again. Needs: g++, taskset, python3, nginx (skipped with a note when missing).
set -euo pipefail

bench_name=slow_clients
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=bench/servers.sh
source "$here/servers.sh"

if [[ ${QUICK:-0} == 1 ]]; then
  ALONE=${ALONE:-5} RAMP=${RAMP:-2} DURATION=${DURATION:-20}
  BEFORE=${BEFORE:-2} FLOOD_SECONDS=${FLOOD_SECONDS:-6} AFTER=${AFTER:-4}
fi
PARTS=${PARTS:-"slow fdlimit maxconn"}
SERVERS=${SERVERS:-"lameduck nginx"}
ROUNDS=${ROUNDS:-1}
ALONE=${ALONE:-20}
RAMP=${RAMP:-5}
DURATION=${DURATION:-80}
HEADER_CONNS=${HEADER_CONNS:-2000}
BODY_CONNS=${BODY_CONNS:-500}
BYTE_INTERVAL_MS=${BYTE_INTERVAL_MS:-5000}
BODY_LENGTH=${BODY_LENGTH:-1000}
HEALTHY=${HEALTHY:-8}
HEALTHY_INTERVAL_MS=${HEALTHY_INTERVAL_MS:-20}
FD_LIMIT=${FD_LIMIT:-1024}
FD_FLOOD_CONNS=${FD_FLOOD_CONNS:-4000}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-1000}
MAXCONN_FLOOD_CONNS=${MAXCONN_FLOOD_CONNS:-3000}
BEFORE=${BEFORE:-5}
FLOOD_SECONDS=${FLOOD_SECONDS:-20}
AFTER=${AFTER:-10}
from_release LAMEDUCK_HELLO lameduck-hello
NGINX=${NGINX:-/usr/sbin/nginx}

need_tools taskset timeout g++ "$PYTHON"

# ------------------------------------------------------------------------------ setup

pin_to_client_cpu
raise_nofile
need=$((HEADER_CONNS + BODY_CONNS))
((FD_FLOOD_CONNS > need)) && need=$FD_FLOOD_CONNS
((MAXCONN_FLOOD_CONNS > need)) && need=$MAXCONN_FLOOD_CONNS
if ((nofile < need + 512)); then
  note "open-file limit is $nofile (hard limit $(ulimit -Hn)); $need connections need $((need + 512)): some connects will fail in the client"
fi

clk_tck=$(getconf CLK_TCK)
run_dir="$OUT_DIR/slow-clients-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir/events"
results="$run_dir/results.jsonl"
: >"$results"
{
  echo "clk_tck $clk_tck"
  echo "settings ALONE=$ALONE RAMP=$RAMP DURATION=$DURATION HEADER_CONNS=$HEADER_CONNS BODY_CONNS=$BODY_CONNS BYTE_INTERVAL_MS=$BYTE_INTERVAL_MS BODY_LENGTH=$BODY_LENGTH HEALTHY=$HEALTHY HEALTHY_INTERVAL_MS=$HEALTHY_INTERVAL_MS FD_LIMIT=$FD_LIMIT FD_FLOOD_CONNS=$FD_FLOOD_CONNS MAX_CONNECTIONS=$MAX_CONNECTIONS MAXCONN_FLOOD_CONNS=$MAXCONN_FLOOD_CONNS BEFORE=$BEFORE FLOOD_SECONDS=$FLOOD_SECONDS AFTER=$AFTER ROUNDS=$ROUNDS"
  echo "lameduck $LAMEDUCK_HELLO ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  [[ -x $NGINX ]] && echo "nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
} >"$run_dir/settings.txt"

bench_program hostile_client -pthread
client=$program

tmp=$(mktemp -d /tmp/lameduck-slow-clients.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  stop_all_servers
}
on_exit cleanup

# ------------------------------------------------------------------------------ servers

# Each server is started for one part: the part is in $part when start_<name> runs.
# log[NAME] is the file the server writes its error lines to.
declare -A log=()

start_lameduck() {
  local extra=() limit=$nofile
  log[lameduck]=$2/lameduck.log
  case $part in
    fdlimit) limit=$FD_LIMIT ;;
    maxconn) extra=(--max-connections "$MAX_CONNECTIONS") ;;
  esac
  # The subshell becomes the server (exec), so that $! is its pid; ulimit -n sets both limits.
  (
    ulimit -n "$limit"
    exec taskset -c "$SERVER_CPU" "$LAMEDUCK_HELLO" --threads 1 --listen "127.0.0.1:$1" "${extra[@]}"
  ) >"${log[lameduck]}" 2>&1 &
}

start_nginx() {
  local listen_port=$1 dir=$2 temp_paths rlimit=$nofile connections=$nofile
  log[nginx]=$dir/nginx-error.log
  case $part in
    fdlimit) rlimit=$FD_LIMIT connections=4096 ;;
    maxconn) connections=$MAX_CONNECTIONS ;;
  esac
  temp_paths=$(nginx_temp_paths "$dir")
  mkdir -p "$dir/www/upload"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $rlimit;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events {
  worker_connections $connections;
}
http {
  access_log off;
  default_type text/plain;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  # client_header_timeout, client_body_timeout: nginx's defaults (60 s), on purpose.
$temp_paths
  server {
    listen 127.0.0.1:$listen_port;
    location / { return 200 "Hello, World!\n"; }
    location /upload/ { root $dir/www; dav_methods PUT; }
  }
}
EOF
  taskset -c "$SERVER_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" \
    >"$dir/nginx.log" 2>&1 &
}

# The request line of a slow body, per server.
body_request() {
  case $1 in
    nginx) echo "PUT /upload/slow" ;;
    *) echo "POST /echo" ;;
  esac
}

servers=()
for name in $SERVERS; do
  declare -F "start_$name" >/dev/null || { note "unknown server $name"; continue; }
  if [[ $name == nginx && ! -x $NGINX ]]; then note "no $NGINX: the nginx rows are skipped"; continue; fi
  servers+=("$name")
done

# run_part PART NAME ROUND: one measurement on a fresh instance; appends a line to $results.
run_part() {
  local name=$2 round=$3 line alive limit=null events pid_ label
  part=$1
  start_server "$name" || return 0
  pid_=${pid[$name]}
  label="$part:$name:r$round"
  events="$run_dir/events/$part-$name-r$round.csv"
  case $part in
    slow)
      line=$(timeout -k 5 $((ALONE + RAMP + DURATION + 60)) taskset -c "$CLIENT_CPU" "$client" slow \
        --port "${port[$name]}" --label "$label" --alone-s "$ALONE" --ramp-s "$RAMP" \
        --attack-s "$DURATION" --header-conns "$HEADER_CONNS" --body-conns "$BODY_CONNS" \
        --byte-interval-ms "$BYTE_INTERVAL_MS" --body-request "$(body_request "$name")" \
        --body-length "$BODY_LENGTH" --healthy "$HEALTHY" \
        --healthy-interval-ms "$HEALTHY_INTERVAL_MS" --events "$events" \
        --healthy-events "$run_dir/events/healthy-$part-$name-r$round.csv" 2>>"$run_dir/client.err") || line=
      ;;
    fdlimit | maxconn)
      local conns=$FD_FLOOD_CONNS
      [[ $part == maxconn ]] && conns=$MAXCONN_FLOOD_CONNS limit=$MAX_CONNECTIONS
      [[ $part == fdlimit ]] && limit=$FD_LIMIT
      line=$(timeout -k 5 $((BEFORE + FLOOD_SECONDS + AFTER + 60)) taskset -c "$CLIENT_CPU" "$client" flood \
        --port "${port[$name]}" --label "$label" --conns "$conns" --before-s "$BEFORE" \
        --flood-s "$FLOOD_SECONDS" --after-s "$AFTER" --log "${log[$name]}" \
        --healthy "$HEALTHY" --healthy-interval-ms "$HEALTHY_INTERVAL_MS" --events "$events" \
        --healthy-events "$run_dir/events/healthy-$part-$name-r$round.csv" 2>>"$run_dir/client.err") || line=
      ;;
  esac
  alive=false
  kill -0 "$pid_" 2>/dev/null && alive=true
  if [[ -z $line ]]; then
    note "the client failed against $name ($part); see $run_dir/client.err"
  else
    printf '{"part":"%s","server":"%s","round":%d,"limit":%s,"alive":%s,"result":%s}\n' \
      "$part" "$name" "$round" "$limit" "$alive" "$line" >>"$results"
    "$PYTHON" "$here/hostile_helper.py" line "$(tail -n 1 "$results")"
  fi
  [[ $alive == true ]] || note "$name had exited by the end of the $part part"
  stop_server "$name"
  # The server's log, by part and round (stop_all_servers keeps only the last instance's).
  cp "${log[$name]}" "$run_dir/$part-$name-r$round.log" 2>/dev/null || true
}

# ------------------------------------------------------------------------------ run

lock_and_build
[[ -x $LAMEDUCK_HELLO ]] || { note "no $LAMEDUCK_HELLO (build the release preset, or set LAMEDUCK_HELLO)"; exit 2; }
if [[ " $PARTS " == *" maxconn "* ]] && ! "$LAMEDUCK_HELLO" --help 2>/dev/null | grep -q -- --max-connections; then
  note "$LAMEDUCK_HELLO has no --max-connections: skipping the maxconn part for lameduck"
  no_max_connections=1
fi

echo "slow_clients: $(getconf _NPROCESSORS_ONLN) CPUs online, kernel $(uname -r); servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; output in $run_dir"
echo "slow_clients: parts: $PARTS; servers: ${servers[*]}; $ROUNDS round(s)"
echo "slow_clients: nginx keeps its default client_header_timeout and client_body_timeout (60 s); lameduck its defaults (no minimum data rate configured)"

for ((round = 1; round <= ROUNDS; round++)); do
  for part in $PARTS; do
    n=${#servers[@]}
    for ((i = 0; i < n; i++)); do
      name=${servers[(i + round - 1) % n]}
      if [[ $part == maxconn && $name == lameduck && -n ${no_max_connections:-} ]]; then continue; fi
      case $part in
        slow | fdlimit | maxconn) ;;
        *) note "unknown part $part"; continue ;;
      esac
      echo "slow_clients: round $round/$ROUNDS, $part, $name ..."
      run_part "$part" "$name" "$round"
    done
  done
done

# ------------------------------------------------------------------------------ tables

echo
"$PYTHON" "$here/hostile_helper.py" summarize "$run_dir" | tee "$run_dir/summary.md"
