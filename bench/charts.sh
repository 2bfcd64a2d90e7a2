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
# exits 1 after trying the others. The release build is brought up to date once, first (under
# the bench lock), and every benchmark measures that build (LAMEDUCK_HELLO, LAMEDUCK and
# LAMEDUCK_BUILD are passed down), so that all the charts show one commit. Needs cmake, the
# peers (LAMEDUCK_SETUP_BENCH=1 scripts/setup: nginx-light, h2o, PM2 from npm), and Debian's
# python3-matplotlib for /usr/bin/python3.
set -euo pipefail

bench_name=charts
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CHARTS=${CHARTS:-drain drain-no-delay throughput reload}
IMAGES=${IMAGES:-$root/docs/images}
export OUT_DIR

/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
  { note "needs Debian's python3-matplotlib (apt-get install python3-matplotlib)"; exit 2; }

if [[ ${QUICK:-0} == 1 ]]; then
  export DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-1} RELOADS=${RELOADS:-3} COMPARE=${COMPARE:-0}
  export IDLE_CONNS=${IDLE_CONNS:-2000}
fi

# One build for every chart, made under the lock, which each benchmark then takes in turn.
from_release LAMEDUCK_HELLO lameduck-hello
from_release LAMEDUCK lameduck-supervisor bin/lameduck
from_release LAMEDUCK_BUILD lameduck "" liblameduck.a
export LAMEDUCK_HELLO LAMEDUCK LAMEDUCK_BUILD
lock_and_build
release_bench_lock   # each benchmark takes it in turn
bench_locked=

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
