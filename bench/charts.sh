#!/usr/bin/env bash
# Runs the benchmarks behind the charts of docs/benchmarks.md, then draws the charts from the
# runs just made (bench/charts.py, into docs/images/). A benchmark, never run by CI.
#
#   bench/charts.sh                        drain timelines, throughput, reloads: about 16 minutes
#   CHARTS="drain reload" bench/charts.sh  some of them (drain drain-no-delay throughput reload)
#   QUICK=1 bench/charts.sh                shorter runs (a look, not for docs/): about 5 minutes
#
# Each benchmark keeps its own settings from the environment (see bench/README.md) and its run
# directory in OUT_DIR (bench/out). A chart whose benchmark fails is not drawn, and the script
# exits 1 after trying the others. Needs the release build (cmake --preset release && cmake
# --build --preset release), the peers (LAMEDUCK_SETUP_BENCH=1 scripts/setup: nginx-light, h2o,
# PM2 from npm), and Debian's python3-matplotlib for /usr/bin/python3.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHARTS=${CHARTS:-drain drain-no-delay throughput reload}
OUT_DIR=${OUT_DIR:-$here/out}
IMAGES=${IMAGES:-$(cd "$here/.." && pwd)/docs/images}
export OUT_DIR

note() { echo "charts: $*" >&2; }

/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
  { note "needs Debian's python3-matplotlib (apt-get install python3-matplotlib)"; exit 2; }

if [[ ${QUICK:-0} == 1 ]]; then
  export DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-1} RELOADS=${RELOADS:-3} COMPARE=${COMPARE:-0}
  export IDLE_CONNS=${IDLE_CONNS:-2000}
fi

# newest PREFIX: the newest run directory of that kind in OUT_DIR, or nothing.
newest() {
  local d last=
  for d in "$OUT_DIR/$1"-2*; do [[ -d $d ]] && last=$d; done   # the glob sorts by date
  echo "$last"
}

failed=0
args=() charts=()
for chart in $CHARTS; do
  settings=()
  case $chart in
    drain) prefix=drain-timeline bench=drain_timeline.sh ;;
    drain-no-delay) prefix=drain-timeline bench=drain_timeline.sh settings=(LAME_DUCK_MS=0) ;;
    throughput) prefix=throughput bench=throughput.sh ;;
    reload) prefix=reload bench=reload.sh ;;
    *) note "unknown chart $chart (drain, drain-no-delay, throughput, reload)"; exit 2 ;;
  esac
  before=$(newest "$prefix")
  note "running ${settings[*]:+${settings[*]} }bench/$bench"
  if ! env "${settings[@]}" "$here/$bench"; then
    note "bench/$bench failed: no $chart chart"
    failed=1
    continue
  fi
  after=$(newest "$prefix")
  if [[ -z $after || $after == "$before" ]]; then
    note "bench/$bench made no run directory in $OUT_DIR: no $chart chart"
    failed=1
    continue
  fi
  args+=("--$chart" "$after")
  charts+=("$chart")
done

if ((${#args[@]} > 0)); then
  /usr/bin/python3 "$here/charts.py" "${charts[@]}" "${args[@]}" --out "$IMAGES"
fi
exit "$failed"
