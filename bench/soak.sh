#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): a soak. One process (bench/soak_server.cpp, built here
# with g++ -O2 against the release build's liblameduck.a) runs a lameduck server for
# CYCLE_SECONDS (60), stops it gracefully with a deadline of DRAIN_DEADLINE s (5), destroys it and
# starts a fresh one on the same ports, again and again for SOAK_MINUTES (30); meanwhile
# bench/soak.py sends mixed traffic at a moderate rate (about 300 requests/s at RATE 1: keep-alive
# and not, HTTP/1.0, pipelined, chunked uploads, Expect: 100-continue, slow and stalled readers,
# garbage bytes, aborted requests, upgrades, streamed and delayed answers completed from another
# thread, HTTPS, idle connections) and samples the process's VmRSS, open descriptors
# (/proc/PID/fd) and threads every SAMPLE_SECONDS (5). Between two servers the process also
# measures itself, at the quiet point where the old server is gone and the next not yet started:
# VmRSS, the heap in use (mallinfo2), VmRSS after malloc_trim(0), descriptors, threads.
# The tables list every cycle's samples and drain, the traffic's outcomes, and a verdict: the
# slope per cycle of the between-server figures after WARMUP_CYCLES (2), flat or growing.
# The server runs with glibc's malloc thresholds fixed (MALLOC_TUNABLES: mmap and trim at
# 128 KiB, as glibc starts before it adapts them): otherwise glibc raises them after the first
# large response body is freed and then keeps megabytes of freed bodies in the arenas of
# whichever threads served them, and the RSS between servers wanders by ±4 MiB from cycle to
# cycle, hiding any slope; with them fixed it stays within a few hundred KiB.
#
# The server is pinned to SERVER_CPU (0) with THREADS (2) loop threads, the client to CLIENT_CPU
# (1); both on 127.0.0.1, ports from the kernel (port 0; the server prints them). Every loop of
# the client is bounded in time and count and ends by itself; the server ends after its last
# cycle (and is stopped by its pid if it has not, 30 s later).
#
# Run from anywhere:   nice -n 5 bench/soak.sh                       (SOAK_MINUTES + about 1 minute)
# Quick look:          SOAK_MINUTES=3 CYCLE_SECONDS=20 bench/soak.sh  (about 4 minutes)
# Environment (defaults in brackets):
#   SOAK_MINUTES [30]  CYCLE_SECONDS [60]  DRAIN_DEADLINE [5]  SAMPLE_SECONDS [5]  THREADS [2]
#   RATE [1] (multiplies every kind's rate)  TLS [1] (0: no HTTPS listener nor traffic)
#   MALLOC_TUNABLES [glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072]
#   (GLIBC_TUNABLES for the server; empty: glibc's adaptive defaults)
#   WARMUP_CYCLES [2]  SMAPS [0] (1: the server lists its largest mappings between servers, in
#   server.err)  LAMEDUCK_BUILD [build/release, built
#   first: bench/common.sh] (where liblameduck.a is)
#   PYTHON [/usr/bin/python3]  SERVER_CPU [0]  CLIENT_CPU [1]  OUT_DIR [bench/out]
#   LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
# Each run writes server.out (the server's lines: cycles, drains, between-server figures),
# samples.csv, traffic.json, settings.txt and summary.md to OUT_DIR/soak-<date>-<time>/;
# `bench/soak.py summarize DIR` prints the tables again. Needs: g++, libssl-dev, openssl, taskset,
# python3, cmake (the release build is brought up to date first: bench/common.sh).
set -euo pipefail

bench_name=soak
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SOAK_MINUTES=${SOAK_MINUTES:-30}
CYCLE_SECONDS=${CYCLE_SECONDS:-60}
DRAIN_DEADLINE=${DRAIN_DEADLINE:-5}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-5}
THREADS=${THREADS:-2}
RATE=${RATE:-1}
TLS=${TLS:-1}
WARMUP_CYCLES=${WARMUP_CYCLES:-2}
SMAPS=${SMAPS:-0}
MALLOC_TUNABLES=${MALLOC_TUNABLES-glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072}
from_release LAMEDUCK_BUILD lameduck "" liblameduck.a

need_tools taskset timeout g++ openssl "$PYTHON"

tmp=$(mktemp -d /tmp/lameduck-soak.XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [[ -n $server_pid ]]; then wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
on_exit cleanup

lock_and_build
lib=$LAMEDUCK_BUILD/liblameduck.a
[[ -f $lib ]] || { note "no $lib (build the release preset, or set LAMEDUCK_BUILD)"; exit 2; }

seconds=$(awk -v m="$SOAK_MINUTES" 'BEGIN { printf "%d", m * 60 }')
cycles=$(awk -v s="$seconds" -v c="$CYCLE_SECONDS" 'BEGIN { n = int(s / c); print (n < 1 ? 1 : n) }')

run_dir="$OUT_DIR/soak-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir"
{
  echo "SOAK_MINUTES=$SOAK_MINUTES CYCLE_SECONDS=$CYCLE_SECONDS cycles=$cycles DRAIN_DEADLINE=$DRAIN_DEADLINE SAMPLE_SECONDS=$SAMPLE_SECONDS THREADS=$THREADS RATE=$RATE TLS=$TLS WARMUP_CYCLES=$WARMUP_CYCLES"
  echo "library $lib ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), built $(date -r "$lib" '+%F %T'))"
  echo "nice $(nice)"
  echo "GLIBC_TUNABLES=$MALLOC_TUNABLES"
} >"$run_dir/settings.txt"

# The server program, rebuilt when its source or the library is newer.
program_on_library soak_server "$lib"
server_bin=$program

tls_args=()
if [[ $TLS == 1 ]]; then
  mkdir -m 700 "$tmp/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tmp/tls/key.pem" -out "$tmp/tls/cert.pem" 2>/dev/null
  tls_args=(--tls-cert "$tmp/tls/cert.pem" --tls-key "$tmp/tls/key.pem")
fi

echo "soak: $(getconf _NPROCESSORS_ONLN) CPUs online, kernel $(uname -r); server on CPU $SERVER_CPU ($THREADS loop threads), client on CPU $CLIENT_CPU; nice $(nice)"
echo "soak: $cycles cycles of $CYCLE_SECONDS s, each ended by shutdown(${DRAIN_DEADLINE} s) and a fresh server in the same process; ${SOAK_MINUTES} min; output in $run_dir"

server_out="$run_dir/server.out"
GLIBC_TUNABLES=$MALLOC_TUNABLES taskset -c "$SERVER_CPU" "$server_bin" --listen 127.0.0.1:0 --cycles "$cycles" \
  --cycle-s "$CYCLE_SECONDS" --deadline-s "$DRAIN_DEADLINE" --threads "$THREADS" \
  --smaps "$SMAPS" "${tls_args[@]}" >"$server_out" 2>"$run_dir/server.err" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q '^listening' "$server_out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
read -r _ _ http_port _ https_port < <(grep '^listening' "$server_out" || true) || true
[[ -n ${http_port:-} ]] || { note "the server did not start:"; cat "$run_dir/server.err" >&2; exit 1; }
tls_port_args=()
[[ -n ${https_port:-} ]] && tls_port_args=(--tls-port "$https_port")
echo "soak: server pid $server_pid, http 127.0.0.1:$http_port${https_port:+, https 127.0.0.1:$https_port}"

# The client ends when the server has exited (after its last cycle) or at the time limit.
timeout -k 10 $((seconds + CYCLE_SECONDS + 120)) taskset -c "$CLIENT_CPU" "$PYTHON" "$here/soak.py" run \
  --port "$http_port" "${tls_port_args[@]}" --pid "$server_pid" --server-log "$server_out" \
  --out "$run_dir" --seconds $((seconds + CYCLE_SECONDS)) --sample-s "$SAMPLE_SECONDS" \
  --rate "$RATE" 2>"$run_dir/client.err" || note "the client failed (exit $?); see $run_dir/client.err"

# The server normally exits by itself after its last cycle; give it 30 s, then stop it.
for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
  note "the server had not exited after its last cycle; stopping it (pid $server_pid)"
  kill -TERM "$server_pid" 2>/dev/null || true
fi
status=0
wait "$server_pid" || status=$?
server_pid=
echo "soak: server exit status $status"

echo
"$PYTHON" "$here/soak.py" summarize "$run_dir" | tee "$run_dir/summary.md"
