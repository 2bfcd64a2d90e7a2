#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): failed requests through HAProxy while the hosts of a
# fleet are deployed or crash (issue 13). The fleet is examples/fleet: three hosts, each a
# network namespace running the lameduck supervisor with two lameduck-hello workers, behind
# HAProxy with health checks on /readyz (examples/fleet/haproxy.cfg, used as it is).
#
# The cases, each on a fleet of its own (fleet.sh up ... down):
#   delay            examples/fleet/deploy.sh: host by host, SIGTERM to the supervisor, the
#                    workers' lame-duck delay derived from haproxy.cfg's checks, wait until
#                    HAProxy has the host DOWN, until it has stopped, start it, wait until UP
#   no-delay         the same deploy with the workers' lame-duck delay at 0 (FLEET_LAME_DUCK=0):
#                    the hosts stop listening before HAProxy knows
#   delay-no-retry, no-delay-no-retry
#                    the same two deploys behind a load balancer that does not retry, as
#                    kube-proxy or a cloud load balancer without retries: haproxy.cfg with
#                    `retries 0` and without retry-on and redispatch (made in the run's
#                    directory). Since the supervisor closes its sockets when its stop begins,
#                    a host refuses connections once its workers stop accepting, and HAProxy's
#                    redispatch sends them elsewhere: no-delay fails nothing, at the cost of
#                    thousands of redispatches. Without retries, those refusals are failures.
#   kill-supervisor  SIGKILL to the supervisor of one host (deploy.sh --stop kill-supervisor
#                    --hosts h2): its workers get SIGTERM from the kernel, and should drain as
#                    above, with the same lame-duck delay (docs/fleet.md says how far they do)
#   kill-host        SIGKILL to every process of one host (--stop kill-host): no drain at all,
#                    only what HAProxy's retry-on and redispatch can save
# During each case, four reload_client.cpp clients in the load balancer's namespace, at once,
# CONNECTIONS connections each, against HAProxy: GET / and POST /echo, each with keep-alive and
# with a new connection per request. A GET that got no answer is replayed by HAProxy on another
# host (retry-on empty-response); a POST is not (http-request disable-l7-retry): the POSTs show
# what a deploy costs a service whose requests cannot be replayed.
# Each client: WARMUP s, then the deploy (one phase), then TAIL s. The table counts every
# request that did not get a complete 2xx answer (the client's kinds: bench/reload_client.cpp),
# with HAProxy's own count of retries and redispatches (show stat) and each host's time to
# DOWN in HAProxy.
#
# Run as root:          sudo bench/fleet.sh                 (about 2 min with the defaults)
# Tables again:         bench/fleet.sh summarize OUT_DIR/fleet-<date>-<time>
# Environment (defaults in brackets):
#   CASES ["delay no-delay delay-no-retry no-delay-no-retry kill-supervisor kill-host"]  ROUNDS [1]  CONNECTIONS [8] (per client)
#   WARMUP [2]  TAIL [2]  TIMEOUT_MS [5000] (per request)  RETRY_MS [10] (after a failure)
#   LAMEDUCK, LAMEDUCK_HELLO [bin/lameduck, bin/lameduck-hello of build/release, built first]
#   FLEET_HAPROXY_CFG [examples/fleet/haproxy.cfg]  OUT_DIR [bench/out]
#   LOCK [/tmp/lameduck-bench-lock]  LOCK_WAIT [3600]
# Each run writes results.jsonl (one line per case, round and client), clients/ (each client's
# JSON and failures), fleets/ (each case's deploy output, HAProxy's log and the hosts' logs)
# and summary.md to OUT_DIR/fleet-<date>-<time>/. It never fails because of the figures.
set -euo pipefail

bench_name="fleet-bench"
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fleet=$root/examples/fleet

helper() { python3 "$here/fleet_helper.py" "$@"; }

if [[ ${1:-} == summarize ]]; then
  [[ -f ${2:-}/results.jsonl ]] || { note "usage: $0 summarize RUN_DIR (with results.jsonl)"; exit 2; }
  helper summarize "$2"
  exit 0
fi
((EUID == 0)) || { note "needs root (network namespaces and veth links): run it with sudo"; exit 2; }

CASES=${CASES:-delay no-delay delay-no-retry no-delay-no-retry kill-supervisor kill-host}
ROUNDS=${ROUNDS:-1}
CONNECTIONS=${CONNECTIONS:-8}
WARMUP=${WARMUP:-2}
TAIL=${TAIL:-2}
TIMEOUT_MS=${TIMEOUT_MS:-5000}
RETRY_MS=${RETRY_MS:-10}
from_release LAMEDUCK lameduck-supervisor bin/lameduck
from_release LAMEDUCK_HELLO lameduck-hello
export LAMEDUCK LAMEDUCK_HELLO
need_whole_numbers ROUNDS CONNECTIONS WARMUP TAIL TIMEOUT_MS RETRY_MS
((WARMUP >= 1)) || { note "WARMUP must be 1 s or more (the clients must be up before the deploy)"; exit 2; }
for c in $CASES; do
  [[ $c =~ ^(delay|no-delay|delay-no-retry|no-delay-no-retry|kill-supervisor|kill-host)$ ]] ||
    { note "unknown case $c (delay no-delay delay-no-retry no-delay-no-retry kill-supervisor kill-host)"; exit 2; }
done
need_tools g++ ip haproxy python3

bench_program reload_client
client=$program

# haproxy_api: HAProxy's runtime API, as the fleet's scripts use it.
# shellcheck source=examples/fleet/lib.sh
source "$fleet/lib.sh"
# One fleet at a time, named after this run: the example's own fleet (lameduck-fleet) and any
# other run are left alone.
export FLEET_NAME="ldbench-$$"
export FLEET_RUN="/run/lameduck-fleet/$FLEET_NAME"
client_pids=()
cleanup() {
  local p
  for p in "${client_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$fleet/fleet.sh" down --now >/dev/null 2>&1 || true
}
on_exit cleanup
# The lock, then the release build (built as the user who ran sudo).
lock_and_build

run_dir="$OUT_DIR/fleet-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir/clients" "$run_dir/fleets"
: >"$run_dir/results.jsonl"
{
  echo "date=$(date -Is)"
  echo "CASES=${CASES// /,} ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS WARMUP=$WARMUP TAIL=$TAIL TIMEOUT_MS=$TIMEOUT_MS RETRY_MS=$RETRY_MS"
  echo "lameduck=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') haproxy=$(haproxy -v | head -1)"
  echo "kernel=$(uname -r) cpus=$(nproc)"
} >"$run_dir/settings.txt"
cp "${FLEET_HAPROXY_CFG:-$fleet/haproxy.cfg}" "$run_dir/haproxy.cfg"
# The load balancer that does not retry: the same file, its retries taken away.
sed -e 's/^\([[:space:]]*\)retries .*/\1retries 0/' -e '/^[[:space:]]*retry-on /d' \
  -e '/^[[:space:]]*option redispatch/d' "$run_dir/haproxy.cfg" >"$run_dir/haproxy-no-retry.cfg"
note "writing to $run_dir"

clients=("GET keepalive /" "GET close /" "POST keepalive /echo" "POST close /echo")

run_case() {
  local case=$1 round=$2 tag="$1-r$2" dir="$run_dir/fleets/$1-r$2" spec method mode path name
  local lame=auto deploy_args=() rc=0 i cfg=$run_dir/haproxy.cfg
  mkdir -p "$dir"
  case $case in
    *-no-retry) cfg=$run_dir/haproxy-no-retry.cfg ;;&
    no-delay*) lame=0 ;;
    kill-supervisor) deploy_args=(--stop kill-supervisor --hosts h2) ;;
    kill-host) deploy_args=(--stop kill-host --hosts h2) ;;
  esac
  export FLEET_HAPROXY_CFG=$cfg
  if ! FLEET_LAME_DUCK=$lame "$fleet/fleet.sh" up >"$dir/up.log" 2>&1; then
    note "$tag: the fleet did not come up (see $dir/up.log); skipped"
    return
  fi
  client_pids=()
  for spec in "${clients[@]}"; do
    read -r method mode path <<<"$spec"
    name="$tag-$method-$mode"
    ip netns exec "$FLEET_NAME-lb" "$client" --port 8080 --method "$method" --path "$path" \
      --mode "$mode" --connections "$CONNECTIONS" --timeout-ms "$TIMEOUT_MS" \
      --retry-ms "$RETRY_MS" --max-s 600 --phases warmup,deploy,tail \
      --failures "$run_dir/clients/$name.failures.csv" \
      >"$run_dir/clients/$name.json" 2>"$run_dir/clients/$name.err" &
    client_pids+=($!)
  done
  sleep "$WARMUP"
  kill -USR1 "${client_pids[@]}"
  # deploy.sh bounds itself (lib.sh: each wait has its limit); 1 when a host was not DOWN
  # within the lame-duck delay, which is what no-delay shows.
  "$fleet/deploy.sh" "${deploy_args[@]}" >"$dir/deploy.log" 2>&1 || rc=$?
  kill -USR1 "${client_pids[@]}"
  sleep "$TAIL"
  kill -TERM "${client_pids[@]}" 2>/dev/null || true
  for i in "${!client_pids[@]}"; do wait "${client_pids[$i]}" || note "$tag: a client exited $?"; done
  client_pids=()
  haproxy_api counters >"$dir/counters.txt" 2>/dev/null || true
  FLEET_KEEP_LOGS=$dir "$fleet/fleet.sh" down >"$dir/down.log" 2>&1 ||
    note "$tag: fleet.sh down failed (see $dir/down.log)"
  for spec in "${clients[@]}"; do
    read -r method mode path <<<"$spec"
    helper record "$case" "$round" "$method" "$mode" "$run_dir/clients/$tag-$method-$mode.json" \
      "$dir/counters.txt" "$dir/deploy.log" "$rc" >>"$run_dir/results.jsonl"
  done
  note "$tag: $(helper brief "$run_dir/results.jsonl" "$case" "$round")"
}

started=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  for c in $CASES; do run_case "$c" "$round"; done
done
echo
helper summarize "$run_dir"
echo
echo "($((SECONDS - started)) s; raw results in $run_dir)"
