#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): user-space instructions per keep-alive request of
# lameduck-hello, counted by valgrind's callgrind, for a change too small for CPU time to show
# on a shared machine (bench/throughput.sh's CPU µs/request drifts by 10 % or more between
# rounds; an instruction count repeats to within one instruction per request).
#
# Each build runs under callgrind with one loop thread, answers one curl, then either nothing
# more or REQUESTS keep-alive requests from `ab -k -c CONCURRENCY` on TARGET, and is stopped
# with SIGTERM; (Ir with the requests − Ir without) / REQUESTS is its figure, so the start and
# the stop cancel out. Builds are interleaved within each round. Kernel time (the system calls,
# most of a request's cost) is not counted: compare builds, not servers.
#
# Run:        BASELINE_HELLO=/tmp/old/build/release/bin/lameduck-hello bench/instructions.sh
# Environment (defaults in brackets):
#   LAMEDUCK_HELLO [build/release/bin/lameduck-hello, built first: bench/common.sh]
#   BASELINE_HELLO [unset: this build alone]  LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
#   REQUESTS [20000]  CONCURRENCY [16]  ROUNDS [3]  TARGET [/]
#   HELLO_ARGS [""]: more arguments for both builds, e.g. "--metrics-path /metrics" (with
#   TARGET=/metrics, what a scrape costs)
# Needs: valgrind, ab (apache2-utils), curl.
set -euo pipefail

bench_name=instructions
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
from_release LAMEDUCK_HELLO lameduck-hello
BASELINE_HELLO=${BASELINE_HELLO:-}
if [[ -n $BASELINE_HELLO ]]; then from_release BASELINE_HELLO lameduck-hello; fi
REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-16}
ROUNDS=${ROUNDS:-3}
TARGET=${TARGET:-/}
HELLO_ARGS=${HELLO_ARGS:-}

need_tools valgrind ab curl timeout

tmp=$(mktemp -d /tmp/lameduck-instructions-XXXXXX)
server=""
cleanup() {
  if [[ -n $server ]]; then kill -KILL "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
on_exit cleanup
# The lock too: callgrind's counts do not mind a busy machine, but its CPU would disturb
# another benchmark's times.
lock_and_build

declare -A bin=([lameduck]=$LAMEDUCK_HELLO)
names=(lameduck)
if [[ -n $BASELINE_HELLO ]]; then
  bin[baseline]=$BASELINE_HELLO
  names+=(baseline)
fi
for name in "${names[@]}"; do
  [[ -x ${bin[$name]} ]] || { note "no $name build at ${bin[$name]}"; exit 2; }
done

# instructions NAME REQUESTS: the Ir total of one run.
instructions() {
  local name=$1 n=$2 out=$tmp/callgrind.out log=$tmp/stdout port="" i
  : >"$log"  # here, not in the background: the loop below must not read the last run's port
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$out" "${bin[$name]}" --listen 127.0.0.1:0 \
    --threads 1 $HELLO_ARGS >"$log" 2>/dev/null &
  server=$!
  for ((i = 0; i < 600; i++)); do
    port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$log" | head -1)
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { note "$name did not start"; exit 1; }
  curl -sS -o /dev/null --max-time 30 "http://127.0.0.1:$port/"
  if ((n > 0)); then
    # ab counts a body whose length changes (a scrape's) as failed: only errors matter here.
    timeout 600 ab -q -k -n "$n" -c "$CONCURRENCY" "http://127.0.0.1:$port$TARGET" >"$tmp/ab" 2>&1 ||
      { note "ab failed against $name: $(tail -1 "$tmp/ab")"; exit 1; }
    grep -Eq '^Non-2xx responses' "$tmp/ab" && { note "$name answered non-2xx"; exit 1; }
  fi
  kill -TERM "$server"
  wait "$server" || true
  server=""
  sed -n 's/^summary: //p' "$out" | head -1
}

declare -A per=()
for ((round = 1; round <= ROUNDS; round++)); do
  for name in "${names[@]}"; do
    idle=$(instructions "$name" 0)
    busy=$(instructions "$name" "$REQUESTS")
    figure=$(((busy - idle) / REQUESTS))
    per[$name]+="$figure "
    note "round $round/$ROUNDS  $name  $figure instructions/request"
  done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo
echo "User-space instructions per request on $TARGET (callgrind; medians over $ROUNDS rounds)"
echo
echo "| build | runs | instructions/request | ÷ baseline |"
echo "|---|---:|---:|---:|"
base=""
[[ -n $BASELINE_HELLO ]] && base=$(echo "${per[baseline]}" | median)
for name in "${names[@]}"; do
  m=$(echo "${per[$name]}" | median)
  ratio="—"
  [[ -n $base ]] && ratio=$(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.4f", a / b}')
  echo "| $name | $ROUNDS | $m | $ratio |"
done
