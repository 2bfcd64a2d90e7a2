#!/usr/bin/env bash
# A fleet of lameduck hosts behind HAProxy, on one machine (docs/fleet.md):
#
#   sudo examples/fleet/fleet.sh up        # namespaces, links, hosts, HAProxy; returns when
#                                          # HAProxy has every host UP
#   sudo examples/fleet/fleet.sh status    # HAProxy's view (show stat) and each host's processes
#   sudo examples/fleet/fleet.sh exec lb curl -s 127.0.0.1:8080/
#   sudo examples/fleet/deploy.sh          # the rolling deploy, host by host
#   sudo examples/fleet/fleet.sh down      # stops everything, removes the namespaces
#
# One network namespace per `server` of haproxy.cfg's backend, named NAME-<server>, linked by
# a veth pair to the load balancer's namespace NAME-lb (198.18.0.1 there, the server's address
# at the other end), running `lameduck run` with FLEET_WORKERS lameduck-hello workers on one
# shared socket. HAProxy runs in NAME-lb and listens on its 127.0.0.1:8080. Nothing is added
# to the root namespace but the names of the namespaces. Settings: see lib.sh.
set -euo pipefail
fleet_cmd=fleet
# shellcheck source=examples/fleet/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: fleet.sh up | down [--now] | status | exec lb|SERVER COMMAND... (see docs/fleet.md)" >&2
  exit 2
}

# The end of each log, before they go with the run directory.
fleet_tail_logs() {
  local log
  for log in "$FLEET_RUN"/*.log; do
    [[ -s $log ]] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
  done
  return 0
}

up() {
  [[ ! -e $FLEET_RUN ]] ||
    fleet_die "$FLEET_NAME is already up ($FLEET_RUN exists): fleet.sh down first" 2
  [[ -x $LAMEDUCK && -x $LAMEDUCK_HELLO ]] ||
    fleet_die "needs $LAMEDUCK and $LAMEDUCK_HELLO (cmake --build --preset dev)" 2
  mkdir -p "$(dirname "$FLEET_RUN")"
  mkdir -m 700 "$FLEET_RUN" || fleet_die "cannot create $FLEET_RUN" 2
  : >"$FLEET_RUN/namespaces"
  # Whatever goes wrong from here, what was made is unmade.
  trap 'fleet_note "up failed; removing what it made"; fleet_tail_logs; fleet_down now' EXIT
  export FLEET_RUN
  haproxy -c -q -f "$FLEET_HAPROXY_CFG" || fleet_die "HAProxy refuses $FLEET_HAPROXY_CFG" 2
  local v
  for v in FLEET_NAME FLEET_HAPROXY_CFG FLEET_WORKERS FLEET_LAME_DUCK FLEET_DRAIN_TIMEOUT \
    FLEET_IDLE_GRACE LAMEDUCK LAMEDUCK_HELLO; do
    printf '%s=%q\n' "$v" "${!v}"
  done >"$FLEET_RUN/settings"

  local lb name ns
  lb=$(fleet_ns lb)
  for ns in "$lb" "${fleet_servers[@]/#/$FLEET_NAME-}"; do
    [[ ! -e /run/netns/$ns ]] || fleet_die "namespace $ns exists already (another fleet named $FLEET_NAME?)" 2
    echo "$ns" >>"$FLEET_RUN/namespaces"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  for name in "${fleet_servers[@]}"; do
    ns=$(fleet_ns "$name")
    # Created in the two namespaces at once: the names never meet those of the root namespace
    # or of another fleet. Point-to-point addresses: 198.18.0.1 at the load balancer's end of
    # every link, the server's address at the other.
    ip link add "v$name" netns "$lb" type veth peer name eth0 netns "$ns"
    ip -n "$lb" addr add 198.18.0.1 peer "${fleet_addr[$name]}/32" dev "v$name"
    ip -n "$ns" addr add "${fleet_addr[$name]}" peer 198.18.0.1/32 dev eth0
    ip -n "$lb" link set "v$name" up
    ip -n "$ns" link set eth0 up
  done

  for name in "${fleet_servers[@]}"; do host_start "$name"; done
  setsid ip netns exec "$lb" haproxy -db -f "$FLEET_HAPROXY_CFG" </dev/null >>"$FLEET_RUN/haproxy.log" 2>&1 &
  echo $! >"$FLEET_RUN/haproxy.pid"
  disown
  local bound=$(((check_inter_ms * check_rise + 30000) / 1000))
  for name in "${fleet_servers[@]}"; do
    wait_server "$name" UP "$bound" >/dev/null ||
      fleet_die "$name not UP in HAProxy after $bound s"
  done
  trap - EXIT
  local how="set by FLEET_LAME_DUCK"
  [[ $FLEET_LAME_DUCK != auto ]] || how="derived from $FLEET_HAPROXY_CFG"
  cat <<EOF
$FLEET_NAME is up: ${#fleet_servers[@]} hosts (${fleet_servers[*]}), $FLEET_WORKERS workers each, HAProxy in $lb on 127.0.0.1:8080.
HAProxy finds a host down within $(fleet_s "$fleet_detect_ms") s (inter $(fleet_s "$check_inter_ms") s + (fall $check_fall - 1) x fastinter $(fleet_s "$check_fastinter_ms") s), each check answered within $(fleet_s "$check_timeout_ms") s;
the workers' lame-duck delay: $(fleet_s "$lame_duck_ms") s ($how).
  $0 exec lb curl -s 127.0.0.1:8080/
  $0 status
  $(dirname "$0")/deploy.sh
  $0 down
EOF
}

status() {
  [[ -S $FLEET_RUN/haproxy.sock ]] || fleet_die "$FLEET_NAME is not up (no $FLEET_RUN/haproxy.sock)"
  haproxy_api status
  local name
  for name in "${fleet_servers[@]}"; do
    echo "$name: processes $(host_pids "$name")"
  done
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case $cmd in
  up) [[ $# -eq 0 ]] || usage; fleet_need_root; fleet_settings; up ;;
  down)
    [[ $# -eq 0 || ( $# -eq 1 && $1 == --now ) ]] || usage
    fleet_need_root
    fleet_settings
    fleet_down "${1:+now}"
    ;;
  status) [[ $# -eq 0 ]] || usage; fleet_need_root; fleet_settings; status ;;
  exec)
    [[ $# -ge 2 ]] || usage
    fleet_need_root
    fleet_settings
    [[ -e /run/netns/$(fleet_ns "$1") ]] || fleet_die "no namespace $(fleet_ns "$1"): is $FLEET_NAME up?" 2
    ns=$(fleet_ns "$1")
    shift
    exec ip netns exec "$ns" "$@"
    ;;
  *) usage ;;
esac
