# shellcheck shell=bash
# Sourced after bench/common.sh by bench/throughput.sh, bench/https.sh and bench/slow_clients.sh
# (benchmarks; never run by CI): starting and stopping servers by pid, the wrk measurement,
# nginx's temp paths.
#
# The sourcing script defines the settings (DURATION, WARMUP, ROUNDS; SERVER_CPU, CLIENT_CPU
# and PYTHON come from common.sh), and, before calling these: run_dir, results, tmp, clk_tck,
# and start_<name> PORT DIR for each server, which launches it in the background, pinned to
# SERVER_CPU, with the server itself (no wrapper shell) in $!. Servers are kept in the
# associative arrays pid, port and scheme (http unless set to https before start_server).

declare -A pid=() port=() scheme=()

helper() { "$PYTHON" "$here/throughput_helper.py" "$@"; }

# nginx_temp_paths DIR: nginx.conf lines that keep every temp path inside DIR (the defaults
# under /var/lib/nginx may not exist).
nginx_temp_paths() {
  local dir=$1 m
  for m in client_body fastcgi proxy scgi uwsgi; do
    if "$NGINX" -V 2>&1 | grep -q -- "--http-${m/client_/client-}-temp-path"; then
      mkdir -p "$dir/$m"
      echo "  ${m}_temp_path $dir/$m;"
    fi
  done
}

stop_server() {
  local name=$1 p=${pid[$1]:-} pids i c
  [[ -n $p ]] || return 0
  unset "pid[$name]"
  pids=$(helper tree "$p" 2>/dev/null) || pids=$p
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  # Whatever is left of the tree after 5 s (or was orphaned by the exit) is killed, by pid.
  for c in $pids; do kill -KILL "$c" 2>/dev/null || true; done
  wait "$p" 2>/dev/null || true
}

# stop_all_servers: stops every server still running and keeps the logs of $tmp in the run's
# directory, then removes $tmp (what the EXIT trap does).
stop_all_servers() {
  local name
  for name in "${!pid[@]}"; do stop_server "$name"; done
  if [[ -n ${tmp:-} && -d $tmp ]]; then
    mkdir -p "$run_dir/servers"
    find "$tmp" -name '*.log' -exec cp {} "$run_dir/servers/" \; 2>/dev/null || true
    rm -rf "$tmp"
  fi
}

# start_server NAME: start a fresh instance on a free port; 0 when it answers GET /.
start_server() {
  local name=$1 dir status
  dir=$(mktemp -d "$tmp/$name.XXXXXX")
  chmod 755 "$dir"
  port[$name]=$(helper freeport)
  "start_$name" "${port[$name]}" "$dir"
  pid[$name]=$!
  if ! helper wait-port "${port[$name]}" "${pid[$name]}" 10 || ! kill -0 "${pid[$name]}" 2>/dev/null; then
    note "$name did not start; its log:"
    cat "$dir"/*.log >&2 2>/dev/null || true
    stop_server "$name"
    return 1
  fi
  # The floor keeps every connection open (it reads no Connection header), so the one-shot
  # check, which reads until the close, would only time out.
  [[ $name == floor ]] && return 0
  status=$(helper get "${port[$name]}" "${scheme[$name]:-http}" 2>&1 | tr -d '\r' | paste -sd' ') || true
  [[ $status == "HTTP/1.1 200 OK Hello, World!" ]] ||
    note "warning: $name answers GET / with: $status"
  return 0
}

# measure ROUND NAME CONNS: one warm-up and one measured wrk run; appends a line
# "round server conns requests rps p99_ms cpu_us busy_pct errors" to $results.
measure() {
  local round=$1 name=$2 conns=$3 p=${pid[$2]}
  local url="${scheme[$2]:-http}://127.0.0.1:${port[$2]}/"
  local out="$run_dir/wrk/$name-c$conns-r$round.txt" before after idle0 idle1 t0 t1 cpu_us busy idle
  local requests rps p99 errors
  # wrk stops itself after -d; timeout only guards against a wedged run.
  timeout -k 5 $((WARMUP + 30)) taskset -c "$CLIENT_CPU" \
    wrk -t1 -c"$conns" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
  before=$(helper cputicks "$p")
  idle0=$(helper cpuidle "$CLIENT_CPU")
  t0=$EPOCHREALTIME
  timeout -k 5 $((DURATION + 30)) taskset -c "$CLIENT_CPU" \
    wrk -t1 -c"$conns" -d"${DURATION}s" --latency "$url" >"$out" 2>&1 || true
  t1=$EPOCHREALTIME
  idle1=$(helper cpuidle "$CLIENT_CPU")
  after=$(helper cputicks "$p")
  read -r requests rps p99 errors < <(helper wrk-parse "$out")
  # CPU time per request; how busy the server was (near 100 %: the server was the bottleneck);
  # how idle the client's CPU was (well above 0 % while the server is not busy either: the
  # machine was noisy, or the two sides waited on each other).
  read -r cpu_us busy idle < <(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
    -v i=$((idle1 - idle0)) -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
    'BEGIN { printf "%s %.1f %.1f\n", (n + 0 > 0) ? sprintf("%.3f", t * 1e6 / hz / n) : "nan",
                                       100 * t / hz / wall, 100 * i / hz / wall }')
  echo "$round $name $conns $requests $rps $p99 $cpu_us $busy $errors" >>"$results"
  printf '  round %d/%d  %-8s c=%-4s %8.0f req/s  p99 %6.2f ms  %6.2f µs/req  server busy %3.0f %%  client CPU idle %3.0f %%%s\n' \
    "$round" "$ROUNDS" "$name" "$conns" "$rps" "$p99" "$cpu_us" "$busy" "$idle" \
    "$( ((errors > 0)) && echo "  ($errors errors, see $out)")"
  if ! kill -0 "$p" 2>/dev/null; then
    note "$name exited during the run; dropping it"
    unset "pid[$name]"
  fi
}

# Records one idle-memory result: LINE is what an idle-connection client printed ("held failed
# growth per_conn open_s"; empty when it failed), appended to the file MEMORY_FILE as "NAME held
# failed growth per_conn" and said on the terminal.
record_idle() {
  local name=$1 line=$2 memory_file=$3 held failed growth per_conn open_s
  if [[ -z $line ]]; then
    note "idle-connection client failed against $name"
    return
  fi
  read -r held failed growth per_conn open_s <<<"$line"
  echo "$name $held $failed $growth $per_conn" >>"$memory_file"
  printf '  %-14s %d idle connections (opened in %s s, %d failed): RSS +%d KiB, %.0f bytes each\n' \
    "$name" "$held" "$open_s" "$failed" $((growth / 1024)) "$per_conn"
}
