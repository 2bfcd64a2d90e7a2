# shellcheck shell=bash
# What fleet.sh and deploy.sh share (docs/fleet.md): the settings, the reading of
# haproxy.cfg, HAProxy's runtime API (haproxy_api.py), and starting and stopping one host.
#
# Settings, from the environment (fleet.sh up keeps them in the run directory, where deploy.sh
# and the other commands find them again):
#   FLEET_NAME          [lameduck-fleet]  prefix of the namespaces: NAME-lb, NAME-h1...
#   FLEET_RUN           [/run/lameduck-fleet/NAME]  sockets, logs, pids
#   FLEET_HAPROXY_CFG   [examples/fleet/haproxy.cfg]  the hosts and the check timing
#   FLEET_WORKERS       [2]  lameduck-hello workers per host, under one supervisor
#   FLEET_LAME_DUCK     [auto]  the workers' lame-duck delay in seconds; auto: derived from the
#                       checks of FLEET_HAPROXY_CFG (0 shows why it is needed: bench/fleet.sh)
#   FLEET_DRAIN_TIMEOUT [10]  seconds a drain may take after the lame-duck delay
#   FLEET_IDLE_GRACE    [1]  seconds a drain keeps idle keep-alive connections for a request
#   LAMEDUCK, LAMEDUCK_HELLO  [bin/lameduck, bin/lameduck-hello of build/release, else build/dev]
#   FLEET_KEEP_LOGS     [none]  a directory where fleet.sh down moves the logs (HAProxy's and
#                       each host's) before it removes the run directory

fleet_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fleet_root=$(cd "$fleet_here/../.." && pwd)

fleet_note() { echo "${fleet_cmd:-fleet}: $*" >&2; }
fleet_die() { fleet_note "$1"; exit "${2:-1}"; }

# The root check comes first, with one line and exit status 2, as for any bad invocation.
fleet_need_root() {
  ((EUID == 0)) || fleet_die "needs root (network namespaces and veth links): run it with sudo" 2
  local tool
  for tool in ip haproxy python3; do
    command -v "$tool" >/dev/null 2>&1 || fleet_die "needs $tool (scripts/setup installs it)" 2
  done
}

fleet_find_bin() {
  local d
  for d in "$fleet_root/build/release/bin" "$fleet_root/build/dev/bin"; do
    if [[ -x $d/$1 ]]; then echo "$d/$1"; return 0; fi
  done
  echo "$fleet_root/build/dev/bin/$1"
}

# fleet_settings: the settings, from the run directory when the fleet is up, else from the
# environment and the defaults.
fleet_settings() {
  FLEET_NAME=${FLEET_NAME:-lameduck-fleet}
  [[ $FLEET_NAME =~ ^[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*$ && ${#FLEET_NAME} -le 40 ]] ||
    fleet_die "FLEET_NAME: letters, digits, '.', '_' and single '-', at most 40 characters" 2
  FLEET_RUN=${FLEET_RUN:-/run/lameduck-fleet/$FLEET_NAME}
  if [[ -f $FLEET_RUN/settings ]]; then
    # shellcheck source=/dev/null
    source "$FLEET_RUN/settings"
  fi
  FLEET_HAPROXY_CFG=${FLEET_HAPROXY_CFG:-$fleet_here/haproxy.cfg}
  FLEET_WORKERS=${FLEET_WORKERS:-2}
  FLEET_LAME_DUCK=${FLEET_LAME_DUCK:-auto}
  FLEET_DRAIN_TIMEOUT=${FLEET_DRAIN_TIMEOUT:-10}
  FLEET_IDLE_GRACE=${FLEET_IDLE_GRACE:-1}
  LAMEDUCK=${LAMEDUCK:-$(fleet_find_bin lameduck)}
  LAMEDUCK_HELLO=${LAMEDUCK_HELLO:-$(fleet_find_bin lameduck-hello)}
  # Absolute, since deploy.sh may run from another directory than fleet.sh up.
  FLEET_HAPROXY_CFG=$(realpath -m "$FLEET_HAPROXY_CFG")
  LAMEDUCK=$(realpath -m "$LAMEDUCK")
  LAMEDUCK_HELLO=$(realpath -m "$LAMEDUCK_HELLO")
  [[ $FLEET_WORKERS =~ ^[1-9][0-9]?$ ]] || fleet_die "FLEET_WORKERS must be 1 to 99" 2
  local n
  for n in FLEET_DRAIN_TIMEOUT FLEET_IDLE_GRACE; do
    [[ ${!n} =~ ^[0-9]+(\.[0-9]+)?$ ]] || fleet_die "$n must be a number of seconds" 2
  done
  [[ $FLEET_LAME_DUCK == auto || $FLEET_LAME_DUCK =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    fleet_die "FLEET_LAME_DUCK must be auto or a number of seconds" 2
  fleet_read_cfg
  if [[ $FLEET_LAME_DUCK == auto ]]; then
    lame_duck_ms=$fleet_derived_ms
  else
    lame_duck_ms=$(awk -v s="$FLEET_LAME_DUCK" 'BEGIN { printf "%d", s * 1000 + 0.5 }')
  fi
  # The lame-duck delay counts against the drain timeout; the supervisor kills what is still
  # there 5 s after that.
  drain_timeout_ms=$(awk -v d="$FLEET_DRAIN_TIMEOUT" -v l="$lame_duck_ms" 'BEGIN { printf "%d", d * 1000 + l }')
  kill_timeout_ms=$((drain_timeout_ms + 5000))
}

# fleet_read_cfg: reads FLEET_HAPROXY_CFG's backend "hosts": fleet_servers (names), and for
# each server fleet_addr[NAME] and fleet_port[NAME]; the check timing of the server that takes
# the longest to be found down: check_inter_ms, check_fastinter_ms, check_fall, check_rise,
# check_timeout_ms, fleet_detect_ms (the longest time from the start of a drain to the server
# marked DOWN) and fleet_derived_ms (the lame-duck delay that covers it).
declare -A fleet_addr=() fleet_port=()
fleet_read_cfg() {
  [[ -r $FLEET_HAPROXY_CFG ]] || fleet_die "cannot read $FLEET_HAPROXY_CFG" 2
  local out
  out=$(awk '
    # An HAProxy time: a number and a unit (us, ms, s, m, h, d), milliseconds without one.
    function ms(v,   n, u) {
      if (!match(v, /^[0-9]+(\.[0-9]+)?/)) { bad = bad " bad time " v; return 0 }
      n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1)
      if (u == "" || u == "ms") return n + 0
      if (u == "us") return n / 1000
      if (u == "s") return n * 1000
      if (u == "m") return n * 60000
      if (u == "h") return n * 3600000
      if (u == "d") return n * 86400000
      bad = bad " bad time " v; return 0
    }
    # The check keywords of a default-server or server line, from field `from` on, over the
    # values in p.
    function params(from, p,   i) {
      for (i = from; i < NF; i++) {
        if ($i == "inter" || $i == "fastinter") p[$i] = ms($(i + 1))
        else if ($i == "fall" || $i == "rise") p[$i] = $(i + 1) + 0
      }
    }
    { sub(/#.*/, "") }
    NF == 0 { next }
    $1 == "global" || $1 == "defaults" || $1 == "frontend" || $1 == "listen" || $1 == "backend" {
      section = $1; name = $2; next
    }
    section == "defaults" || (section == "backend" && name == "hosts") {
      if ($1 == "timeout" && $2 == "check") check_timeout = ms($3)
      if ($1 == "default-server") params(2, dflt)
    }
    section == "backend" && name == "hosts" && $1 == "server" {
      n++; srv[n] = $2; addr[n] = $3
      delete p; for (k in dflt) p[k] = dflt[k]; params(4, p)
      inter = ("inter" in p) ? p["inter"] : 2000     # HAProxy defaults: inter 2s, fall 3, rise 2
      fast = ("fastinter" in p) ? p["fastinter"] : inter
      fall = ("fall" in p) ? p["fall"] : 3
      rise = ("rise" in p) ? p["rise"] : 2
      detect = inter + (fall - 1) * fast
      if (detect > best) { best = detect; b_inter = inter; b_fast = fast; b_fall = fall; b_rise = rise }
    }
    END {
      if (bad != "") { print "bad" bad; exit }
      # Without timeout check, a check may take up to inter.
      if (check_timeout == "") check_timeout = b_inter
      printf "timing %d %d %d %d %d %d %d\n", b_inter, b_fast, b_fall, b_rise, check_timeout, best, best + check_timeout
      for (i = 1; i <= n; i++) printf "server %s %s\n", srv[i], addr[i]
    }' "$FLEET_HAPROXY_CFG")
  local line name address
  fleet_servers=()
  while read -r line; do
    case $line in
      bad\ *) fleet_die "$FLEET_HAPROXY_CFG: ${line#bad }" 2 ;;
      timing\ *)
        # shellcheck disable=SC2034  # for fleet.sh and deploy.sh
        read -r _ check_inter_ms check_fastinter_ms check_fall check_rise check_timeout_ms \
          fleet_detect_ms fleet_derived_ms <<<"$line"
        ;;
      server\ *)
        read -r _ name address <<<"$line"
        [[ $name =~ ^[a-z0-9]{1,10}$ ]] ||
          fleet_die "$FLEET_HAPROXY_CFG: server $name: name it with at most 10 lowercase letters and digits (it names a namespace and a link)" 2
        [[ $address =~ ^198\.(18|19)\.([0-9]{1,3})\.([0-9]{1,3}):([0-9]{1,5})$ ]] ||
          fleet_die "$FLEET_HAPROXY_CFG: server $name: $address is not ADDRESS:PORT in 198.18.0.0/15 (the benchmarking range, the only one the fleet uses)" 2
        [[ ${address%:*} != 198.18.0.1 ]] || fleet_die "$FLEET_HAPROXY_CFG: 198.18.0.1 is the load balancer's own address" 2
        fleet_servers+=("$name")
        fleet_addr[$name]=${address%:*}
        fleet_port[$name]=${address##*:}
        ;;
    esac
  done <<<"$out"
  ((${#fleet_servers[@]} > 0)) || fleet_die "$FLEET_HAPROXY_CFG: no server in backend hosts" 2
}

fleet_ns() { echo "$FLEET_NAME-$1"; }   # lb, or a server's name

# ms → seconds, for messages and flags.
fleet_s() { awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }'; }

# The interpreter itself rather than a version manager's shim in PATH (pyenv's costs 0.4 s a
# call, which would blur the times the deploy measures).
fleet_py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)
haproxy_api() { "$fleet_py" "$fleet_here/haproxy_api.py" "$FLEET_RUN/haproxy.sock" "$@"; }

# wait_server NAME UP|DOWN SECONDS [SINCE]: until HAProxy has NAME in that state (`show servers
# state`); prints the seconds since SINCE (epoch seconds; default: now). 1 after SECONDS.
wait_server() { haproxy_api wait "$1" "$2" "$3" "${4:-$EPOCHREALTIME}"; }

# host_start NAME: starts the host's supervisor and its workers in the host's namespace, in a
# session of its own (a Ctrl-C in the terminal that runs deploy.sh does not reach it).
host_start() {
  local name=$1
  [[ -x $LAMEDUCK && -x $LAMEDUCK_HELLO ]] ||
    fleet_die "needs $LAMEDUCK and $LAMEDUCK_HELLO (cmake --build --preset dev)" 2
  rm -f "$FLEET_RUN/$name.sock"
  setsid ip netns exec "$(fleet_ns "$name")" "$LAMEDUCK" run --instances "$FLEET_WORKERS" \
    --listen "${fleet_addr[$name]}:${fleet_port[$name]}" --control "$FLEET_RUN/$name.sock" \
    --kill-timeout "${kill_timeout_ms}ms" -- \
    "$LAMEDUCK_HELLO" --threads 1 --lame-duck "$(fleet_s "$lame_duck_ms")" \
    --drain-timeout "$(fleet_s "$drain_timeout_ms")" --idle-grace "$FLEET_IDLE_GRACE" \
    </dev/null >>"$FLEET_RUN/$name.log" 2>&1 &
  echo $! >"$FLEET_RUN/$name.pid"
  disown   # the fleet's, not this shell's: no job notice when it ends
}

# host_pids NAME: every process in the host's namespace (the supervisor, its workers, and any
# worker that outlived it), one line.
host_pids() { ip netns pids "$(fleet_ns "$1")" 2>/dev/null | tr '\n' ' '; }

# wait_empty NAME SECONDS: until no process is left in the host's namespace; 1 after SECONDS.
wait_empty() {
  local i
  for ((i = 0; i < $2 * 50; i++)); do
    [[ -z $(host_pids "$1") ]] && return 0
    sleep 0.02
  done
  return 1
}

# fleet_down [now]: stops every process of the fleet's namespaces, HAProxy and the supervisors
# first with SIGTERM (the workers drain; the supervisors kill what outlives the kill timeout),
# then, after that timeout, whatever is left with SIGKILL; with `now`, everything with SIGKILL
# at once. Then it deletes the namespaces, which takes their veth links with them, and the run
# directory. Only the namespaces the fleet recorded are touched, and only processes the kernel
# lists in them are signalled, by pid: a stale pid file cannot hit anything else.
fleet_down() {
  local now=${1:-} ns p pids=() i all
  local -a spaces=()
  [[ -f $FLEET_RUN/namespaces ]] && mapfile -t spaces <"$FLEET_RUN/namespaces"
  if [[ $now != now ]]; then
    for ns in "${spaces[@]}"; do
      all=" $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') "
      for p in "$FLEET_RUN"/*.pid; do
        [[ -f $p ]] || continue
        p=$(<"$p")
        [[ $all == *" $p "* ]] && pids+=("$p")
      done
    done
    ((${#pids[@]} == 0)) || kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < (kill_timeout_ms + 2000) / 50; i++)); do
      all=
      for ns in "${spaces[@]}"; do all+=$(ip netns pids "$ns" 2>/dev/null); done
      [[ -z $all ]] && break
      sleep 0.05
    done
  fi
  for ns in "${spaces[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  done
  for ns in "${spaces[@]}"; do
    # A process killed a moment ago may still hold the namespace; the name goes at once, the
    # namespace itself (and its links) when the last process is gone.
    [[ -e /run/netns/$ns ]] && ip netns delete "$ns" 2>/dev/null
  done
  if [[ -n ${FLEET_KEEP_LOGS:-} ]] && compgen -G "$FLEET_RUN/*.log" >/dev/null; then
    mkdir -p "$FLEET_KEEP_LOGS" && mv "$FLEET_RUN"/*.log "$FLEET_KEEP_LOGS/"
  fi
  rm -rf "$FLEET_RUN"
}
