#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): connections refused and reset while a program
# replaces its HTTP server on the same port, under a steady stream of new connections (issue 14).
# Three ways, in the same run:
#   lameduck-handover   lameduck-restart as it is: GET /next starts the next server on the same
#                       listening sockets (server::hand_over_listeners()), the old one drains
#   lameduck-rebind     lameduck-restart --rebind: stop_accepting() and wait for it (the port is
#                       free), bind the next server to the same address, then drain the old one
#   node-close-listen   bench/node/restart_server.js: Node.js http, server.close() with the
#                       'close' event emitted on the next turn (a well-known answer's pattern),
#                       then a new server listen()s on the same port
# The client (restart_client.cpp) opens a new connection about every EVERY_US µs (Poisson
# arrivals), one GET / each with Connection: close, and sends GET /next RESTARTS times, one
# every RESTART_MS ms, while it holds one idle keep-alive connection. Every connection is
# counted as answered, refused, reset or other. bench/README.md explains every column.
#
# Run from anywhere:   bench/restart.sh                (about 1 minute)
# Tables again:        bench/restart.sh summarize OUT_DIR/restart-<date>-<time>
# Environment (defaults in brackets):
#   RESTARTS [20]  ROUNDS [3]  EVERY_US [1000]  ARRIVALS [poisson] (or fixed)  RESTART_MS [100]
#   LEAD_MS [200]  TAIL_MS [300]  TIMEOUT_MS [2500] (per connection)  MAX_INFLIGHT [256]
#   WAYS ["lameduck-handover lameduck-rebind node-close-listen"]
#   LAMEDUCK_RESTART [build/release/bin/lameduck-restart, built first: bench/common.sh]
#   NODE [/usr/bin/node]
#   SERVER_CPU [0]  CLIENT_CPU [1]  OUT_DIR [bench/out]  LOCK [/tmp/lameduck-bench-lock]
#   LOCK_WAIT [3600] (seconds to wait for another benchmark's lock)  PYTHON [/usr/bin/python3]
# Each run writes raw results (results.jsonl, one line per round and way; events/, one line per
# connection; servers/, the servers' output) and the table (summary.md) to
# OUT_DIR/restart-<date>-<time>/. It never fails because of the figures.
# Needs: g++, taskset, python3 (standard library; for the table), cmake (lameduck-restart is
# built first), node; a missing server is skipped with a note. Two or more CPUs.
set -euo pipefail

bench_name=restart
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RESTARTS=${RESTARTS:-20}
ROUNDS=${ROUNDS:-3}
EVERY_US=${EVERY_US:-1000}
ARRIVALS=${ARRIVALS:-poisson}
RESTART_MS=${RESTART_MS:-100}
LEAD_MS=${LEAD_MS:-200}
TAIL_MS=${TAIL_MS:-300}
TIMEOUT_MS=${TIMEOUT_MS:-2500}
MAX_INFLIGHT=${MAX_INFLIGHT:-256}
WAYS=${WAYS:-lameduck-handover lameduck-rebind node-close-listen}
from_release LAMEDUCK_RESTART lameduck-restart
NODE=${NODE:-/usr/bin/node}

# ------------------------------------------------------------------------------ the table

# summarize DIR: prints the table from DIR/results.jsonl (and writes DIR/summary.md).
summarize() {
  "$PYTHON" - "$1" <<'EOF'
import json, sys, collections
run_dir = sys.argv[1]
rows = [json.loads(l) for l in open(f"{run_dir}/results.jsonl") if l.strip()]
ways = []
for r in rows:
    if r["way"] not in ways:
        ways.append(r["way"])
keys = ["restarts", "restarts_asked", "next_failed", "next_stale", "tried", "answered", "refused",
        "reset", "other", "skipped_behind", "skipped_inflight", "answered_slow_200ms", "reset_after_answer", "idle_opened",
        "idle_closed_eof", "idle_reset", "idle_failed"]
total = {w: collections.Counter() for w in ways}
kinds = {w: collections.Counter() for w in ways}
next_kinds = {w: collections.Counter() for w in ways}
rounds = collections.Counter()
per_round = collections.defaultdict(list)
statuses = collections.defaultdict(list)
for r in rows:
    w = r["way"]
    rounds[w] += 1
    for k in keys:
        total[w][k] += r.get(k, 0)
    kinds[w].update(r.get("other_kinds", {}))
    next_kinds[w].update(r.get("next_failed_kinds", {}))
    per_round[w].append(r.get("refused", 0) + r.get("reset", 0))
    statuses[w].append(r.get("server_exit", "?"))

def n(x):
    return f"{x:,}"

head = ["way", "rounds", "restarts", "/next failed", "tried", "answered", "refused", "reset",
        "other", "(refused+reset)/restart", "per round"]
table = []
for w in ways:
    t = total[w]
    per = (t["refused"] + t["reset"]) / t["restarts"] if t["restarts"] else float("nan")
    table.append([w, n(rounds[w]), n(t["restarts"]), n(t["next_failed"]), n(t["tried"]),
                  n(t["answered"]), n(t["refused"]), n(t["reset"]), n(t["other"]),
                  f"{per:.2f}", " ".join(str(x) for x in per_round[w])])
width = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(head)]
lines = []
first = rows[0] if rows else {}
lines.append(f"Same-port restarts under a stream of new connections (sums over rounds; a new "
             f"connection about every {first.get('every_us', '?')} µs, {first.get('arrivals', '?')}; "
             f"/next every {first.get('restart_ms', '?')} ms)")
lines.append("")
lines.append("| " + " | ".join(h.ljust(width[i]) if i == 0 else h.rjust(width[i])
                              for i, h in enumerate(head)) + " |")
lines.append("|" + "|".join("-" * (width[i] + 2) if i == 0 else "-" * (width[i] + 1) + ":"
                            for i in range(len(head))) + "|")
for row in table:
    lines.append("| " + " | ".join(c.ljust(width[i]) if i == 0 else c.rjust(width[i])
                                  for i, c in enumerate(row)) + " |")
notes = []
for w in ways:
    t = total[w]
    bits = []
    if t["restarts"] < t["restarts_asked"]:
        bits.append(f"only {t['restarts']} of {t['restarts_asked']} restarts happened")
    if kinds[w]:
        bits.append("other: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds[w].items())))
    if next_kinds[w]:
        bits.append("/next failed: " + ", ".join(f"{k} {v}" for k, v in sorted(next_kinds[w].items())))
    if t["next_stale"]:
        bits.append(f"/next answered by an older generation (retried) {t['next_stale']}")
    if t["skipped_behind"]:
        bits.append(f"connections not started because the client's loop fell behind "
                    f"{t['skipped_behind']}")
    if t["skipped_inflight"]:
        bits.append(f"connections not started at the in-flight bound {t['skipped_inflight']}")
    if t["answered_slow_200ms"]:
        bits.append(f"answered after more than 200 ms (a dropped SYN) {t['answered_slow_200ms']}")
    if t["reset_after_answer"]:
        bits.append(f"reset after a complete answer (counted answered) {t['reset_after_answer']}")
    bits.append(f"idle keep-alive connection: opened {t['idle_opened']}, closed by the server "
                f"{t['idle_closed_eof']}, reset {t['idle_reset']}, failed to open {t['idle_failed']}")
    bits.append("server exit: " + " ".join(str(s) for s in statuses[w]))
    notes.append(f"- {w}: " + "; ".join(bits))
lines.append("")
lines.extend(notes)
text = "\n".join(lines) + "\n"
open(f"{run_dir}/summary.md", "w").write(text)
print(text, end="")
EOF
}

if [[ ${1:-} == summarize ]]; then
  [[ -f ${2:-}/results.jsonl ]] || { note "usage: $0 summarize RUN_DIR (with results.jsonl)"; exit 2; }
  summarize "$2"
  exit 0
fi

need_tools g++ taskset "$PYTHON"

# ------------------------------------------------------------------------------ build

bench_program restart_client
client=$program

# ------------------------------------------------------------------------------ the ways

lock_and_build

ways=()
for way in $WAYS; do
  case $way in
    lameduck-handover | lameduck-rebind)
      if [[ -x $LAMEDUCK_RESTART ]]; then ways+=("$way"); else
        note "skipping $way: no $LAMEDUCK_RESTART (cmake --build --preset release --target lameduck-restart)"
      fi ;;
    node-close-listen)
      if [[ -x $NODE ]]; then ways+=("$way"); else note "skipping $way: no $NODE"; fi ;;
    *) note "unknown way $way (lameduck-handover lameduck-rebind node-close-listen)"; exit 2 ;;
  esac
done
((${#ways[@]} > 0)) || { note "nothing to run"; exit 2; }

# The command line of a way's server, on 127.0.0.1, port 0 (the kernel's choice).
server_command() {
  case $1 in
    lameduck-handover) echo "$LAMEDUCK_RESTART --listen 127.0.0.1:0 --generations $((RESTARTS + 1))" ;;
    lameduck-rebind) echo "$LAMEDUCK_RESTART --listen 127.0.0.1:0 --generations $((RESTARTS + 1)) --rebind" ;;
    node-close-listen) echo "$NODE $here/node/restart_server.js 0" ;;
  esac
}

# ------------------------------------------------------------------------------ setup

server_pid=
stop_server() {
  # By pid only: SIGTERM, then SIGKILL after 3 s. Sets server_exit.
  server_exit=-
  [[ -n $server_pid ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    server_exit=killed
    wait "$server_pid" 2>/dev/null || true
  else
    server_exit=0
    wait "$server_pid" 2>/dev/null || server_exit=$?
  fi
  server_pid=
}
cleanup() {
  stop_server
}
on_exit cleanup

run_dir="$OUT_DIR/restart-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir/servers" "$run_dir/events"
: >"$run_dir/results.jsonl"
{
  echo "date=$(date -Is)"
  echo "RESTARTS=$RESTARTS ROUNDS=$ROUNDS EVERY_US=$EVERY_US ARRIVALS=$ARRIVALS RESTART_MS=$RESTART_MS"
  echo "LEAD_MS=$LEAD_MS TAIL_MS=$TAIL_MS TIMEOUT_MS=$TIMEOUT_MS MAX_INFLIGHT=$MAX_INFLIGHT"
  echo "SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
  echo "node=$("$NODE" --version 2>/dev/null || echo none)"
  echo "lameduck=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"
  echo "kernel=$(uname -r)"
} >"$run_dir/settings.txt"
note "writing to $run_dir"

# ------------------------------------------------------------------------------ the rounds

# The client's bound on one run: three times what the restarts should take, and 30 s at least.
max_s=$(((LEAD_MS + RESTARTS * RESTART_MS * 3 + TAIL_MS) / 1000 + 1))
if ((max_s < 30)); then max_s=30; fi
started=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  # The ways take turns, in an order that rotates from round to round.
  n=${#ways[@]}
  for ((i = 0; i < n; i++)); do
    way=${ways[$(((i + round - 1) % n))]}
    log="$run_dir/servers/$way-r$round.log"
    # shellcheck disable=SC2046
    taskset -c "$SERVER_CPU" $(server_command "$way") >"$log" 2>&1 &
    server_pid=$!
    port=
    for _ in $(seq 200); do
      port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -1)
      [[ -n $port ]] && break
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    if [[ -z $port ]]; then
      note "$way round $round: the server did not start (see $log); skipped"
      stop_server
      continue
    fi
    out=$(taskset -c "$CLIENT_CPU" "$client" --port "$port" --restarts "$RESTARTS" \
      --every-us "$EVERY_US" --arrivals "$ARRIVALS" --restart-ms "$RESTART_MS" \
      --lead-ms "$LEAD_MS" --tail-ms "$TAIL_MS" --timeout-ms "$TIMEOUT_MS" \
      --max-inflight "$MAX_INFLIGHT" --max-s "$max_s" --seed "$((round * 1000 + RANDOM))" \
      --events "$run_dir/events/$way-r$round.csv") || {
      note "$way round $round: the client failed"
      stop_server
      continue
    }
    stop_server
    "$PYTHON" -c 'import json, sys
r = json.loads(sys.argv[1])
r.update(way=sys.argv[2], round=int(sys.argv[3]), server_exit=sys.argv[4], restart_ms=int(sys.argv[5]))
print(json.dumps(r))' "$out" "$way" "$round" "$server_exit" "$RESTART_MS" >>"$run_dir/results.jsonl"
    note "$way round $round: $(echo "$out" | "$PYTHON" -c 'import json, sys
r = json.load(sys.stdin)
print("{restarts} restarts, {tried} tried, {refused} refused, {reset} reset, {other} other".format(**r))')"
  done
done

echo
summarize "$run_dir"
echo
echo "($((SECONDS - started)) s; raw results in $run_dir)"
