#!/usr/bin/env bash
# The fleet example (examples/fleet) under load: a rolling deploy of its three hosts behind
# HAProxy, and not one failed request.
#
#   fleet_test.sh LAMEDUCK LAMEDUCK_HELLO RELOAD_CLIENT
#
# The example's own scripts and haproxy.cfg, with the checks made faster (inter 200ms,
# fastinter 100ms, fall 2): the workers' lame-duck delay is derived from them as in the example
# (200 + 100 + timeout check 1000 = 1.3 s). Four bench/reload_client.cpp clients in the load
# balancer's namespace during the deploy: GET / and POST /echo, with keep-alive and with a new
# connection per request. HAProxy may replay a GET that got nothing back, never a POST, so the
# POSTs fail if a host stops listening while HAProxy still routes to it (FLEET_LAME_DUCK=0 in
# the environment shows it). The test also wants no retry and no redispatch from HAProxy, each
# host running a new supervisor afterwards, and no sanitizer report in the hosts' logs.
#
# Needs root (network namespaces): skipped otherwise (exit 77, ctest's SKIP_RETURN_CODE).
# Its namespaces are named after its pid (ldft-PID-lb, ldft-PID-h1...), so that runs of several
# builds never meet; everything is removed at the end, and by a guard process if the test is
# killed; the namespaces of an earlier run whose process is gone are removed at the start.
set -euo pipefail

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
(($# == 3)) || { echo "usage: fleet_test.sh LAMEDUCK LAMEDUCK_HELLO RELOAD_CLIENT" >&2; exit 2; }
export LAMEDUCK=$1 LAMEDUCK_HELLO=$2
client=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fleet=$(cd "$here/../../examples/fleet" && pwd)
# haproxy_api: HAProxy's runtime API, as the example's scripts use it.
# shellcheck source=examples/fleet/lib.sh
source "$fleet/lib.sh"

((EUID == 0)) || skip "the fleet test needs root for network namespaces (run ctest as root to include it)"
for tool in ip haproxy python3 setsid; do
  command -v "$tool" >/dev/null 2>&1 || skip "the fleet test needs $tool (scripts/setup installs it)"
done
ip netns add "ldft-probe-$$" 2>/dev/null || skip "cannot create a network namespace here (ip netns add failed)"
ip netns delete "ldft-probe-$$"

# What an earlier run left when it was killed along with its guard.
for dir in /run/lameduck-fleet/ldft-*; do
  [[ -d $dir ]] || continue
  pid=${dir##*-}
  if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
    echo "removing the fleet of an earlier run (pid $pid, gone)"
    FLEET_NAME=ldft-$pid FLEET_RUN=$dir "$fleet/fleet.sh" down --now || true
  fi
done

export FLEET_NAME="ldft-$$"
export FLEET_RUN="/run/lameduck-fleet/$FLEET_NAME"
tmp=$(mktemp -d /tmp/lameduck-fleet-test.XXXXXX)
export FLEET_KEEP_LOGS=$tmp/logs
client_pids=()
cleanup() {
  local rc=$? p
  for p in "${client_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$fleet/fleet.sh" down --now >/dev/null 2>&1 || true
  if ((rc != 0 && rc != 77)); then
    echo "--- logs of the failed run:" >&2
    for p in "$tmp"/*.log "$tmp"/*.err "$tmp"/logs/*.log; do
      [[ -f $p ]] && { echo "--- $p" >&2; tail -n 40 "$p" >&2; }
    done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The guard: out of this test's process tree (ctest kills the tree on a timeout), it removes
# the fleet once this shell is gone, however it ended; after a normal end there is nothing left
# to remove.
# shellcheck disable=SC2016  # expanded by the guard's shell
(setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; exec "$2/fleet.sh" down --now' \
  guard "$$" "$fleet" </dev/null >/dev/null 2>&1 &)

sed -e 's/^\( *default-server check\) inter 1s fastinter 500ms fall 3 rise 2$/\1 inter 200ms fastinter 100ms fall 2 rise 2/' \
  "$fleet/haproxy.cfg" >"$tmp/haproxy.cfg"
grep -q '^ *default-server check inter 200ms fastinter 100ms fall 2 rise 2$' "$tmp/haproxy.cfg" ||
  fail "examples/fleet/haproxy.cfg has no longer 'default-server check inter 1s fastinter 500ms fall 3 rise 2': update the test's sed"
export FLEET_HAPROXY_CFG=$tmp/haproxy.cfg FLEET_IDLE_GRACE=0.5

start=$SECONDS
"$fleet/fleet.sh" up >"$tmp/up.log" 2>&1 || fail "fleet.sh up failed: $(cat "$tmp/up.log")"
cat "$tmp/up.log"
declare -A before=()
for h in h1 h2 h3; do before[$h]=$(cat "$FLEET_RUN/$h.pid"); done

clients=("GET keepalive /" "GET close /" "POST keepalive /echo" "POST close /echo")
for spec in "${clients[@]}"; do
  read -r method mode path <<<"$spec"
  ip netns exec "$FLEET_NAME-lb" "$client" --port 8080 --method "$method" --path "$path" \
    --mode "$mode" --connections 4 --timeout-ms 5000 --max-s 90 --phases warmup,deploy,tail \
    >"$tmp/$method-$mode.json" 2>"$tmp/$method-$mode.err" &
  client_pids+=($!)
done
sleep 0.5
kill -USR1 "${client_pids[@]}"
deploy_rc=0
"$fleet/deploy.sh" 2>&1 | tee "$tmp/deploy.log" || deploy_rc=$?
kill -USR1 "${client_pids[@]}"
sleep 0.5
kill -TERM "${client_pids[@]}"
for p in "${client_pids[@]}"; do wait "$p" || fail "a load client failed (exit $?)"; done
client_pids=()
counters=$(haproxy_api counters)
declare -A after=()
for h in h1 h2 h3; do after[$h]=$(cat "$FLEET_RUN/$h.pid"); done
# A graceful stop, so that the sanitizers' reports at exit reach the logs.
"$fleet/fleet.sh" down >"$tmp/down.log" 2>&1 || fail "fleet.sh down failed: $(cat "$tmp/down.log")"
left=$(ip netns list | grep -E "^$FLEET_NAME-" || true)
[[ -z $left ]] || fail "namespaces left after fleet.sh down: $left"

problems=()
((deploy_rc == 0)) || problems+=("deploy.sh exited $deploy_rc")
for h in h1 h2 h3; do
  [[ ${before[$h]} != "${after[$h]}" ]] || problems+=("$h was not restarted (supervisor pid ${before[$h]})")
done
for spec in "${clients[@]}"; do
  read -r method mode path <<<"$spec"
  line=$("$fleet_py" -c '
import json, sys
c = json.load(open(sys.argv[1]))
t, d = c["total"], next(p for p in c["phases"] if p["name"] == "deploy")
print(t["ok"], t["failed"], d["ok"], json.dumps(t["details"]))' "$tmp/$method-$mode.json") ||
    { problems+=("$method $mode: no summary from the client"); continue; }
  read -r ok failed during details <<<"$line"
  echo "$method $mode: $ok ok ($during during the deploy), $failed failed $details"
  ((failed == 0)) || problems+=("$method $mode: $failed failed requests: $details")
  ((during > 0)) || problems+=("$method $mode: no request answered during the deploy")
done
retries=$(grep -o 'wretr=[0-9]*' <<<"$counters" | cut -d= -f2)
redispatched=$(grep -o 'wredis=[0-9]*' <<<"$counters" | cut -d= -f2)
echo "HAProxy: $retries retries, $redispatched redispatched"
((retries == 0 && redispatched == 0)) ||
  problems+=("HAProxy had to retry ($retries) or redispatch ($redispatched): a host took connections it did not serve")
if grep -lE 'ERROR: AddressSanitizer|WARNING: ThreadSanitizer|ERROR: LeakSanitizer|runtime error:' \
  "$FLEET_KEEP_LOGS"/h*.log >/dev/null 2>&1; then
  problems+=("a sanitizer reported in $(grep -lE 'Sanitizer|runtime error:' "$FLEET_KEEP_LOGS"/h*.log | xargs -n1 basename | tr '\n' ' ')")
fi
echo "($((SECONDS - start)) s)"
((${#problems[@]} == 0)) || fail "$(printf '%s; ' "${problems[@]}")"
echo "ok: zero failed requests across the rolling deploy of three hosts"
