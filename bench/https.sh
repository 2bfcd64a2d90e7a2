#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): lameduck's HTTPS against nginx's, and against its own
# plain HTTP, on a tiny response. Conventions, helpers and the wrk measurement are
# throughput.sh's (bench/servers.sh, bench/throughput_helper.py); the tables are printed by
# bench/https_helper.py.
#
# Every server is on 127.0.0.1, pinned to SERVER_CPU (0), with one thread / one worker; every
# client is pinned to CLIENT_CPU (1). One ECDSA P-256 certificate (self-signed, made at run time
# with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256` in a temp dir that is
# deleted at the end) serves every HTTPS server; TLS 1.3 (nginx: ssl_protocols TLSv1.3; lameduck
# and every client here negotiate it, which the script checks with openssl s_client and prints).
# Every server answers GET / with 200 "Hello, World!\n". Servers, by name:
#   lameduck-https  lameduck-hello --threads 1 --tls-listen (tickets on, lameduck's defaults)
#   lameduck-ktls   the same with --kernel-tls
#   nginx-https     nginx, one worker, `return 200`, ssl_protocols TLSv1.3, ssl_session_tickets
#                   on (default keys), no session cache (nginx's default), as lameduck
#   lameduck-http   lameduck-hello --threads 1 --listen (plain HTTP)
#   nginx-http      nginx as in throughput.sh (plain HTTP)
#
# Part 1, keep-alive throughput: `wrk -t1 -c64` and `-c256` (CONNS) over https:// or http://,
# WARMUP s then DURATION s, each server in turn in each of ROUNDS rounds (the order rotates),
# exactly as throughput.sh's part 1: requests/s, p99, and the server's CPU µs per request
# (utime+stime of its process tree from /proc, divided by wrk's request count). Medians over
# rounds; ratios to nginx with the same protocol, and "CPU ÷ own HTTP": the server's HTTPS CPU
# per request over its own plain HTTP CPU per request in the same run (lameduck's acceptance
# wants ≤ 1.6). The handshakes of wrk's connections happen in the warm-up.
# kTLS: the kernel needs its "tls" ULP (`modprobe tls`, tried when missing); whether it engaged
# is read from /proc/net/tls_stat (TlsTxSw/TlsRxSw: kTLS sessions installed, before and after
# each lameduck-ktls run; nothing else here asks for kTLS) and shown in the table's kTLS column.
# Without the ULP, lameduck-ktls runs in user space like lameduck-https, and the column says so.
#
# Part 2, new connections: bench/tls_client.cpp (built here with g++ -O2 -lssl -lcrypto), one
# epoll loop on CLIENT_CPU keeping HS_CONCURRENCY (16) connections going, each: connect, TLS 1.3
# handshake, GET /, the answer, close_notify, close. `full`: no session is offered (ECDHE X25519
# + the server's ECDSA signature, which the client verifies); `resume`: each connection offers a
# ticket its slot received before (PSK with ECDHE, no certificate); `plain`: the same over TCP
# without TLS, against the plain servers, to show what part of the figure is TCP and HTTP.
# HS_DURATION (5) seconds per run after a 1 s warm-up, at most HS_MAX connections, ROUNDS rounds.
# The client does more work per handshake than the server (verifying a signature costs more
# than making one), so it is the bottleneck and the server is partly idle: the figure is the
# server's CPU per connection (its /proc ticks over the run ÷ completed connections) and the
# rate that implies for one core, 1e6 / CPU µs. Why not `openssl s_time`: one connection at a
# time (the server idles most of the time, and the CPU per handshake becomes a small number
# of 10 ms ticks), and its -reuse takes the session right after the handshake, before a TLS
# 1.3 ticket has arrived, so it does not resume with TLS 1.3.
# The table also says how many resumed connections brought a new ticket: a server that does
# not renew tickets on resumption leaves a TLS 1.3 client (which uses a ticket once) to a full
# handshake next time; the client here offers the old ticket again instead, so that every
# connection after a slot's first resumes.
#
# Part 3, memory: a fresh instance of each of MEMORY_SERVERS gets IDLE_CONNS (10,000)
# connections that each complete a handshake (full) and one GET /, then stay idle; the figure
# is (VmRSS after − VmRSS before) / connections, summed over the server's process tree. The
# HTTPS servers are filled by tls_client, the plain ones by throughput_helper.py's client.
# Opening is bounded to IDLE_SECONDS (40; lameduck's keep-alive timeout is 60 s).
#
# Run from anywhere:   bench/https.sh                          (about 8 minutes)
# Quick look:          DURATION=2 WARMUP=1 ROUNDS=1 HS_DURATION=2 IDLE_CONNS=2000 bench/https.sh
# Environment (defaults in brackets):
#   DURATION [5]  WARMUP [2]  ROUNDS [3]  CONNS ["64 256"]
#   SERVERS ["lameduck-https lameduck-ktls nginx-https lameduck-http nginx-http"]
#   HANDSHAKES ["lameduck-https:full nginx-https:full lameduck-https:resume nginx-https:resume
#               lameduck-http:plain nginx-http:plain"] (server:mode pairs; empty skips part 2)
#   HS_DURATION [5]  HS_CONCURRENCY [16]  HS_MAX [200000]
#   MEMORY_SERVERS ["lameduck-https nginx-https lameduck-http nginx-http"] (empty skips part 3)
#   IDLE_CONNS [10000]  IDLE_SECONDS [40]
#   PERF_SERVERS [""]: after part 1, `perf record -g` of each named server during one more
#     wrk -c64 run of DURATION s; the top symbols go to OUT_DIR/https-*/perf-NAME.txt
#   LAMEDUCK_HELLO [build/release/bin/lameduck-hello, built first: bench/common.sh]
#   NGINX [/usr/sbin/nginx]
#   BASELINE_HELLO [unset]: another build of lameduck-hello (an earlier commit, as in
#     throughput.sh), run exactly as lameduck is, as the servers baseline-https and
#     baseline-http, which are then added to the default SERVERS (name them in HANDSHAKES or
#     MEMORY_SERVERS to have them there too)
#   PYTHON [/usr/bin/python3]  SERVER_CPU [0]  CLIENT_CPU [1]  OUT_DIR [bench/out]
#   LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
# Each run writes its raw results, wrk outputs, server logs and summary.md to
# OUT_DIR/https-<date>-<time>/; `bench/https_helper.py summarize DIR` prints the tables again.
# Needs: wrk (with TLS), openssl, g++ and libssl-dev, taskset, python3, nginx with its ssl module.
# Absolute figures drift by up to ~20 % between runs on a noisy machine: compare within one run.
set -euo pipefail

bench_name=https
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=bench/servers.sh
source "$here/servers.sh"

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"64 256"}
BASELINE_HELLO=${BASELINE_HELLO:-}
if [[ -n $BASELINE_HELLO ]]; then
  SERVERS=${SERVERS:-"lameduck-https baseline-https lameduck-ktls nginx-https lameduck-http baseline-http nginx-http"}
else
  SERVERS=${SERVERS:-"lameduck-https lameduck-ktls nginx-https lameduck-http nginx-http"}
fi
HANDSHAKES=${HANDSHAKES-"lameduck-https:full nginx-https:full lameduck-https:resume nginx-https:resume lameduck-http:plain nginx-http:plain"}
HS_DURATION=${HS_DURATION:-5}
HS_CONCURRENCY=${HS_CONCURRENCY:-16}
HS_MAX=${HS_MAX:-200000}
MEMORY_SERVERS=${MEMORY_SERVERS-"lameduck-https nginx-https lameduck-http nginx-http"}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SECONDS=${IDLE_SECONDS:-40}
PERF_SERVERS=${PERF_SERVERS:-}
from_release LAMEDUCK_HELLO lameduck-hello
if [[ -n $BASELINE_HELLO ]]; then from_release BASELINE_HELLO lameduck-hello; fi
NGINX=${NGINX:-/usr/sbin/nginx}

need_tools wrk taskset timeout openssl g++ "$PYTHON"

# ------------------------------------------------------------------------------ setup

# Everything this script runs itself (helpers, clients) stays off the server's CPU.
pin_to_client_cpu
raise_nofile
if ((${#MEMORY_SERVERS} > 0 && nofile < IDLE_CONNS + 256)); then
  note "open-file limit is $nofile (hard limit $(ulimit -Hn)); idle connections cut to $((nofile - 256))"
  IDLE_CONNS=$((nofile - 256))
fi

clk_tck=$(getconf CLK_TCK)
run_dir="$OUT_DIR/https-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir/wrk"
results="$run_dir/results.txt"        # round server conns requests rps p99_ms cpu_us busy_pct errors
handshakes="$run_dir/handshakes.txt"  # round server mode completed full resumed errors s renewed ticks
memory="$run_dir/memory.txt"          # server held failed rss_growth_bytes bytes_per_conn
notes="$run_dir/notes.txt"            # key text
: >"$results"
: >"$handshakes"
: >"$memory"
echo "clk_tck $clk_tck" >"$notes"

bench_program tls_client -lssl -lcrypto
client=$program

tmp=$(mktemp -d /tmp/lameduck-https-bench.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  stop_all_servers   # also removes $tmp: the certificate and its key
}
on_exit cleanup

# The certificate and key, only for this run.
mkdir -m 700 "$tmp/tls"
cert=$tmp/tls/cert.pem key=$tmp/tls/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$key" -out "$cert" 2>/dev/null

# kTLS needs the kernel's TLS ULP; load it if we can.
ktls_ulp() { grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null; }
if [[ " $SERVERS " == *" lameduck-ktls "* ]] && ! ktls_ulp; then
  if command -v modprobe >/dev/null 2>&1; then modprobe tls 2>/dev/null || true; fi
  ktls_ulp || note "kTLS unavailable: the kernel offers no tls ULP (tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null)); lameduck-ktls runs in user space"
fi
# tls_stat NAME: a counter of /proc/net/tls_stat (0 without it).
tls_stat() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' /proc/net/tls_stat 2>/dev/null || echo 0; }

# ------------------------------------------------------------------------------ servers

hello_https() {
  taskset -c "$SERVER_CPU" "$LAMEDUCK_HELLO" --threads 1 --tls-listen "127.0.0.1:$1" \
    --tls-cert "$cert" --tls-key "$key" "${@:3}" >"$2" 2>&1 &
}
scheme[lameduck-https]=https
start_lameduck-https() { hello_https "$1" "$2/lameduck-https.log"; }
scheme[lameduck-ktls]=https
start_lameduck-ktls() { hello_https "$1" "$2/lameduck-ktls.log" --kernel-tls; }
start_lameduck-http() {
  taskset -c "$SERVER_CPU" "$LAMEDUCK_HELLO" --threads 1 --listen "127.0.0.1:$1" \
    >"$2/lameduck-http.log" 2>&1 &
}
# The baseline: another build of lameduck-hello (BASELINE_HELLO), run as lameduck is.
scheme[baseline-https]=https
start_baseline-https() {
  taskset -c "$SERVER_CPU" "$BASELINE_HELLO" --threads 1 --tls-listen "127.0.0.1:$1" \
    --tls-cert "$cert" --tls-key "$key" >"$2/baseline-https.log" 2>&1 &
}
start_baseline-http() {
  taskset -c "$SERVER_CPU" "$BASELINE_HELLO" --threads 1 --listen "127.0.0.1:$1" \
    >"$2/baseline-http.log" 2>&1 &
}

# run_nginx PORT DIR NAME SERVER_BLOCK_LINES...
run_nginx() {
  local port=$1 dir=$2 name=$3 temp_paths
  temp_paths=$(nginx_temp_paths "$dir")
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/$name-error.log warn;
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
$4
    location / { return 200 "Hello, World!\n"; }
  }
}
EOF
  taskset -c "$SERVER_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/$name-error.log" \
    >"$dir/$name.log" 2>&1 &
}
scheme[nginx-https]=https
start_nginx-https() {
  run_nginx "$1" "$2" nginx-https "    listen 127.0.0.1:$1 ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.3;
    ssl_session_tickets on;"
}
start_nginx-http() { run_nginx "$1" "$2" nginx-http "    listen 127.0.0.1:$1;"; }

[[ -x $NGINX ]] || note "no $NGINX: the nginx rows are skipped"
have() {
  case $1 in
    nginx-*) [[ -x $NGINX ]] ;;
    baseline-*) [[ -n $BASELINE_HELLO && -x $BASELINE_HELLO ]] || { note "skipping $1: set BASELINE_HELLO to another build's lameduck-hello"; return 1; } ;;
  esac
}

# ------------------------------------------------------------------------------ run

# One benchmark at a time on this machine: wait (bounded) for the lock, hold it for the run.
lock_and_build
[[ -x $LAMEDUCK_HELLO ]] || { note "no $LAMEDUCK_HELLO (build the release preset, or set LAMEDUCK_HELLO)"; exit 2; }
if ! "$LAMEDUCK_HELLO" --help 2>/dev/null | grep -q -- --tls-listen; then
  note "$LAMEDUCK_HELLO has no --tls-listen"; exit 2
fi

echo "https: $(getconf _NPROCESSORS_ONLN) CPUs online, kernel $(uname -r), $(openssl version); servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU"
echo "https: wrk -t1 -c{${CONNS// /,}} -d${DURATION}s after ${WARMUP}s warm-up; $ROUNDS round(s); output in $run_dir"

running=()
for name in $SERVERS; do
  declare -F "start_$name" >/dev/null || { note "unknown server $name"; continue; }
  have "$name" || continue
  start_server "$name" && running+=("$name")
done
for name in "${running[@]}"; do
  if [[ ${scheme[$name]:-http} == https ]]; then
    hs=$(timeout 5 openssl s_client -connect "127.0.0.1:${port[$name]}" -servername localhost -brief </dev/null 2>&1 |
      awk -F': ' '/^Protocol version/ { v = $2 } /^Ciphersuite/ { c = $2 } END { print v ", " c }') || true
    echo "https: $name negotiates $hs"
  fi
done

# ---- part 1: keep-alive throughput
for ((round = 1; round <= ROUNDS; round++)); do
  for conns in $CONNS; do
    n=${#running[@]}
    for ((i = 0; i < n; i++)); do
      name=${running[(i + round - 1) % n]}
      [[ -n ${pid[$name]:-} ]] || continue
      if [[ $name == lameduck-ktls ]]; then
        tx0=$(tls_stat TlsTxSw) rx0=$(tls_stat TlsRxSw)
        measure "$round" "$name" "$conns"
        echo "$round $conns $(($(tls_stat TlsTxSw) - tx0)) $(($(tls_stat TlsRxSw) - rx0))" >>"$run_dir/ktls.txt"
      else
        measure "$round" "$name" "$conns"
      fi
    done
  done
done
if [[ -n ${pid[lameduck-ktls]:-} || -f $run_dir/ktls.txt ]]; then
  if [[ ! -f /proc/net/tls_stat ]]; then
    echo "ktls:lameduck-ktls no: kernel has no tls ULP" >>"$notes"
  else
    # Connections opened per measured run (warm-up and run): conns each.
    read -r tx rx runs < <(awk '{ tx += $3; rx += $4; c += 2 * $2 } END { print tx + 0, rx + 0, c + 0 }' "$run_dir/ktls.txt")
    if ((tx > 0)); then
      echo "ktls:lameduck-ktls yes: TX on $tx, RX on $rx of $runs conns" >>"$notes"
    else
      echo "ktls:lameduck-ktls no: TlsTxSw did not move" >>"$notes"
    fi
  fi
fi

# ---- optional: where lameduck's (or another server's) CPU goes
for name in $PERF_SERVERS; do
  [[ -n ${pid[$name]:-} ]] || { note "perf: $name is not running"; continue; }
  command -v perf >/dev/null 2>&1 || { note "perf: not installed"; break; }
  pids=$(helper tree "${pid[$name]}" | tr ' ' ',')
  url="${scheme[$name]:-http}://127.0.0.1:${port[$name]}/"
  timeout -k 5 $((DURATION + 30)) perf record -g -o "$run_dir/perf-$name.data" -p "$pids" -- \
    sleep "$((DURATION + 1))" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
  timeout -k 5 $((DURATION + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c64 -d"${DURATION}s" "$url" >/dev/null 2>&1 || true
  wait "$perf_pid" || true
  {
    perf report -i "$run_dir/perf-$name.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' | head -25 || true
    perf report -i "$run_dir/perf-$name.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^$' | head -70 || true
  } >"$run_dir/perf-$name.txt"
  note "perf profile of $name: $run_dir/perf-$name.txt"
done

# ---- part 2: new connections
pairs=()
for pair in $HANDSHAKES; do
  name=${pair%%:*}
  [[ -n ${pid[$name]:-} ]] && pairs+=("$pair") || note "handshakes: $name is not running; skipping $pair"
done
for ((round = 1; round <= ROUNDS && ${#pairs[@]} > 0; round++)); do
  n=${#pairs[@]}
  for ((i = 0; i < n; i++)); do
    pair=${pairs[(i + round - 1) % n]}
    name=${pair%%:*} mode=${pair#*:}
    p=${pid[$name]:-}
    [[ -n $p ]] || continue
    timeout -k 5 30 taskset -c "$CLIENT_CPU" "$client" handshakes "${port[$name]}" "$mode" \
      "$HS_CONCURRENCY" 1 "$HS_MAX" >/dev/null 2>&1 || true
    before=$(helper cputicks "$p")
    line=$(timeout -k 5 $((HS_DURATION + 30)) taskset -c "$CLIENT_CPU" "$client" handshakes \
      "${port[$name]}" "$mode" "$HS_CONCURRENCY" "$HS_DURATION" "$HS_MAX" 2>>"$run_dir/tls_client.err") || true
    after=$(helper cputicks "$p")
    if [[ -z $line ]]; then
      note "handshakes: the client failed against $name ($mode)"
      continue
    fi
    read -r done full resumed errors secs renewed <<<"$line"
    echo "$round $name $mode $done $full $resumed $errors $secs $renewed $((after - before))" >>"$handshakes"
    printf '  round %d/%d  %-14s %-6s %6d conns in %s s  server %7.1f µs CPU each  (%d resumed, %d errors)\n' \
      "$round" "$ROUNDS" "$name" "$mode" "$done" "$secs" \
      "$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$done" 'BEGIN { print n ? t * 1e6 / hz / n : 0 }')" \
      "$resumed" "$errors"
  done
done
for name in "${running[@]}"; do stop_server "$name"; done

# ---- part 3: memory per idle connection
for name in $MEMORY_SERVERS; do
  declare -F "start_$name" >/dev/null || { note "unknown server $name"; continue; }
  have "$name" || continue
  start_server "$name" || continue
  if [[ ${scheme[$name]:-http} == https ]]; then
    # shellcheck disable=SC2046  # the pids of the server's tree, one argument each
    line=$(timeout -k 5 $((IDLE_SECONDS + 30)) taskset -c "$CLIENT_CPU" "$client" idle \
      "${port[$name]}" "$IDLE_CONNS" "$IDLE_SECONDS" $(helper tree "${pid[$name]}") 2>>"$run_dir/tls_client.err") || line=
  else
    line=$(timeout -k 5 $((IDLE_SECONDS + 30)) taskset -c "$CLIENT_CPU" \
      "$PYTHON" "$here/throughput_helper.py" idle "${port[$name]}" "${pid[$name]}" "$IDLE_CONNS" "$IDLE_SECONDS") || line=
  fi
  record_idle "$name" "$line" "$memory"
  stop_server "$name"
done

# ------------------------------------------------------------------------------ tables

echo
"$PYTHON" "$here/https_helper.py" summarize "$run_dir" | tee "$run_dir/summary.md"
