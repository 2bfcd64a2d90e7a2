#!/usr/bin/env bash
# The rolling deploy of the fleet that fleet.sh up started (docs/fleet.md), one
# host at a time, without a failed request:
#
#   1. SIGTERM to the host's supervisor: every worker begins its lame-duck delay, /readyz says
#      503 while the host goes on serving whatever HAProxy still sends it;
#   2. wait until HAProxy marks the host DOWN (its health checks see the 503s): from then on
#      it sends the host nothing new. This must come before the delay ends, and does: the
#      delay is derived from haproxy.cfg's check timing (lib.sh);
#   3. the workers drain what they were doing and exit, then the supervisor: wait for it;
#   4. start the host again (the new version: whatever $LAMEDUCK and $LAMEDUCK_HELLO now are);
#   5. wait until HAProxy marks it UP (`rise` good checks), then go on with the next host.
#
#   sudo examples/fleet/deploy.sh [--hosts "h1 h2"] [--stop drain|kill-supervisor|kill-host]
#
# --stop chooses how each host is stopped at step 1 (the benchmark uses the others):
#   drain            SIGTERM to the supervisor (the default, the deploy)
#   kill-supervisor  SIGKILL to the supervisor: its workers get SIGTERM from the kernel
#                    (PR_SET_PDEATHSIG) and drain the same way
#   kill-host        SIGKILL to every process of the host, as if it lost power: no drain, what
#                    HAProxy's retries and redispatch make of it
# Exit status: 0 when every host went DOWN within its lame-duck delay (for drain) and came back
# UP; 1 otherwise; 2 for a bad command line (or when not root).
set -euo pipefail
fleet_cmd=deploy
# shellcheck source=examples/fleet/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: deploy.sh [--hosts \"NAME...\"] [--stop drain|kill-supervisor|kill-host] (see docs/fleet.md)" >&2
  exit 2
}
hosts='' stop=drain
while (($#)); do
  case $1 in
    --hosts) (($# >= 2)) || usage; hosts=$2; shift 2 ;;
    --stop)
      (($# >= 2)) || usage
      [[ $2 =~ ^(drain|kill-supervisor|kill-host)$ ]] || usage
      stop=$2
      shift 2
      ;;
    *) usage ;;
  esac
done
fleet_need_root
fleet_settings
[[ -S $FLEET_RUN/haproxy.sock ]] || fleet_die "$FLEET_NAME is not up (fleet.sh up)"
[[ -n $hosts ]] || hosts=${fleet_servers[*]}
for name in $hosts; do
  [[ -n ${fleet_addr[$name]:-} ]] || fleet_die "no server $name in $FLEET_HAPROXY_CFG (${fleet_servers[*]})" 2
done
# One host out at a time: the others must all be in the pool before the first goes. A host
# that is not running at all (a deploy interrupted after its stop) is started by this one, if
# it is among its hosts.
for name in "${fleet_servers[@]}"; do
  if ! wait_server "$name" UP 0 >/dev/null && ! [[ " $hosts " == *" $name "* && -z $(host_pids "$name") ]]; then
    fleet_die "$name is not UP in HAProxy: a deploy takes one host out at a time"
  fi
done

current=''
trap '[[ -z $current ]] || fleet_note "interrupted while deploying $current: deploy.sh --hosts $current starts it again"; exit 130' INT TERM

lame=$(fleet_s "$lame_duck_ms")
# Bounds, so that a deploy never hangs: the way out takes the delay and the detection; the
# drain, the kill timeout at most; the way back, starting and `rise` checks.
down_bound=$(((lame_duck_ms + fleet_detect_ms + check_timeout_ms) / 1000 + 10))
gone_bound=$((kill_timeout_ms / 1000 + 5))
up_bound=$(((check_inter_ms * check_rise) / 1000 + 30))
start_and_wait() {
  host_start "$1"
  if ! took=$(wait_server "$1" UP "$up_bound"); then
    fleet_note "$1: not back UP in HAProxy after $up_bound s; see $FLEET_RUN/$1.log"
    exit 1
  fi
  echo "$1: started again, UP in HAProxy after $took s"
  current=''
}
rc=0 started=$EPOCHREALTIME
for name in $hosts; do
  current=$name
  ns=$(fleet_ns "$name")
  pid=$(cat "$FLEET_RUN/$name.pid" 2>/dev/null || true)
  read -ra running <<<"$(host_pids "$name")"
  if ((${#running[@]} == 0)); then
    echo "$name: not running; starting it"
    start_and_wait "$name"
    continue
  fi
  [[ -n $pid && " ${running[*]} " == *" $pid "* ]] || fleet_die "$name: its supervisor (pid ${pid:-?}) is not running in $ns"
  signalled=$EPOCHREALTIME
  case $stop in
    drain) kill -TERM "$pid"; what="SIGTERM to the supervisor, lame-duck delay $lame s" ;;
    kill-supervisor) kill -KILL "$pid"; what="SIGKILL to the supervisor, its workers' lame-duck delay $lame s" ;;
    kill-host) kill -KILL "${running[@]}" 2>/dev/null || true; what="SIGKILL to every process of the host" ;;
  esac
  echo "$name: $what"
  if ! took=$(wait_server "$name" DOWN "$down_bound" "$signalled"); then
    fleet_note "$name: still not DOWN in HAProxy after $down_bound s"
    exit 1
  fi
  if [[ $stop != kill-host ]] && awk -v t="$took" -v l="$lame" 'BEGIN { exit !(t >= l) }'; then
    fleet_note "$name: DOWN in HAProxy only after $took s, not within the lame-duck delay of $lame s: requests may have failed (FLEET_LAME_DUCK too short?)"
    rc=1
  else
    echo "$name: DOWN in HAProxy after $took s"
  fi
  if ! wait_empty "$name" "$gone_bound"; then
    fleet_note "$name: processes still running $gone_bound s later: $(host_pids "$name")"
    exit 1
  fi
  echo "$name: stopped $(awk -v a="$signalled" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s after the signal"
  start_and_wait "$name"
done
echo "deployed $hosts in $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
exit "$rc"
