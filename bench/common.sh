# shellcheck shell=bash
# Sourced first by every benchmark in bench/ (never run by CI): where things are, the settings
# every benchmark shares, note(), the bench lock (bench/lock.sh), and the release build that a
# benchmark measures, brought up to date before it measures it.
#
# The sourcing script sets bench_name (the prefix of its notes) and sources this file as
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# Settings already in the environment win over the defaults here.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

PYTHON=${PYTHON:-/usr/bin/python3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT_DIR=${OUT_DIR:-$here/out}
LOCK=${LOCK:-/tmp/lameduck-bench-lock}
LOCK_WAIT=${LOCK_WAIT:-3600}

note() { echo "${bench_name:?}: $*" >&2; }

# shellcheck source=bench/lock.sh
source "$here/lock.sh"

# on_exit [CLEANUP]: when the script exits (INT and TERM become exits 130 and 143), CLEANUP
# runs (all of it: a failing command does not end it), then the bench lock, if this run took it,
# is given back.
on_exit() {
  bench_cleanup=${1:-}
  trap bench_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
bench_exit() {
  trap - EXIT INT TERM
  if [[ -n ${bench_cleanup:-} ]]; then "$bench_cleanup" || true; fi
  if [[ -n ${bench_locked:-} ]]; then release_bench_lock; fi
}

# lock_and_build: one benchmark at a time on this machine: waits (bounded) for the bench lock
# and holds it for the rest of the run (on_exit gives it back; called here if the script has
# not). Then brings the release build up to date (release_build_current), under the lock: a
# build would disturb another benchmark's measurement.
lock_and_build() {
  [[ $(trap -p EXIT) == *bench_exit* ]] || on_exit ""
  take_bench_lock
  bench_locked=1
  release_build_current
}

# need_tools TOOL...: exit 2 with a note naming the first one missing.
need_tools() {
  local tool
  for tool; do
    command -v "$tool" >/dev/null 2>&1 || { note "needs $tool"; exit 2; }
  done
}

# need_whole_numbers NAME...: exit 2 unless every named setting is a whole number.
need_whole_numbers() {
  local n
  for n; do
    [[ ${!n} =~ ^[0-9]+$ ]] || { note "$n must be a whole number"; exit 2; }
  done
}

# pin_to_client_cpu: this shell, and so everything it starts from now on (helpers, clients),
# stays off the servers' CPU; servers are started with taskset -c SERVER_CPU.
pin_to_client_cpu() { taskset -cp "$CLIENT_CPU" $$ >/dev/null; }

# raise_nofile: lifts the soft open-file limit as far as the hard limit allows (10,000 idle
# connections need that many descriptors in the client and in the server, which inherit it);
# leaves the limit in $nofile.
raise_nofile() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  nofile=$(ulimit -n)
  [[ $nofile == unlimited ]] && nofile=1048576
  return 0
}

# ------------------------------------------------------------------------------ the build

# A benchmark measures what its binaries were built from, not what the sources say now: a
# release build left from hours before measured the old code under the new commit's name. So
# every binary (or library) of the release build that a benchmark runs is named with
# from_release, and release_build_current builds those targets (cmake's own up-to-date check:
# a no-op when nothing changed) and says which commit is measured. A binary the user passes is
# never rebuilt; the same line says what it is.

bench_targets=()
bench_measured=()   # "SETTING|PATH": SETTING empty when built here

# from_release SETTING TARGET [FILE [SHOWN]]: unless the user set SETTING, it becomes
# build/release/FILE (bin/TARGET by default; "" for the build directory itself) and TARGET is
# built by release_build_current. SHOWN, a file under SETTING, is what the line names.
from_release() {
  local setting=$1 target=$2 file=${3-bin/$2} shown=${4:-}
  if [[ -n ${!setting:-} ]]; then
    bench_measured+=("$setting|${!setting}${shown:+/$shown}")
    return 0
  fi
  printf -v "$setting" '%s' "$root/build/release${file:+/$file}"
  bench_targets+=("$target")
  bench_measured+=("|${!setting}${shown:+/$shown}")
}

# commit_of PATH: the short commit of the git tree PATH is in, +dirty when tracked files have
# changed; "an unknown commit" outside a git tree.
commit_of() {
  local dir commit
  dir=$(dirname "$1")
  [[ -d $dir ]] || { echo "an unknown commit"; return; }
  commit=$(git -C "$dir" rev-parse --short HEAD 2>/dev/null) || { echo "an unknown commit"; return; }
  git -C "$dir" diff --quiet HEAD -- 2>/dev/null || commit+=+dirty
  echo "$commit"
}

# release_build_current: configures the release preset if build/release has none, builds the
# targets from_release named (as the user who ran sudo, when run that way: the build tree stays
# theirs), then prints one line per measured file: which file, at which commit. Exit 2 when the
# build fails. The build's output goes to stderr.
release_build_current() {
  local as=() entry setting path when
  if ((${#bench_targets[@]} > 0)); then
    if ((EUID == 0)) && [[ -n ${SUDO_USER:-} ]]; then as=(sudo -u "$SUDO_USER" --); fi
    if [[ ! -f $root/build/release/CMakeCache.txt ]]; then
      note "configuring the release build (cmake --preset release)"
      (cd "$root" && "${as[@]}" cmake --preset release >&2) ||
        { note "cmake --preset release failed"; exit 2; }
    fi
    (cd "$root" && "${as[@]}" cmake --build --preset release --target "${bench_targets[@]}" >&2) ||
      { note "cmake --build --preset release --target ${bench_targets[*]} failed"; exit 2; }
  fi
  for entry in "${bench_measured[@]}"; do
    setting=${entry%%|*} path=${entry#*|}
    when=$(date -r "$path" '+built %F %T' 2>/dev/null || echo 'not there')
    if [[ -z $setting ]]; then
      echo "$bench_name: measuring $path at $(commit_of "$path") (release build, brought up to date; $when)"
    else
      echo "$bench_name: measuring $path at $(commit_of "$path") ($setting: not rebuilt; $when)"
    fi
  done
}

# machine_line: the "machine=" line of a run's settings.txt (the CPU model, how many CPUs).
machine_line() {
  echo "machine=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) CPUs"
}

# bench_program NAME [ARG...]: $OUT_DIR/NAME, built from bench/NAME.cpp (g++ -O2 -std=c++20,
# with the ARGs after the source) or bench/NAME.c (gcc -O2), again whenever it is older than its
# source, a header the source includes with quotes, or a file among the ARGs (a library). The
# program's path is left in $program.
bench_program() {
  local name=$1 src dep deps stale=
  shift
  program=$OUT_DIR/$name
  src=$here/$name.cpp
  [[ -f $src ]] || src=$here/$name.c
  deps=("$src")
  while read -r dep; do deps+=("$here/$dep"); done < <(sed -n 's/^#include "\(.*\)"/\1/p' "$src")
  for dep in "$@"; do [[ -f $dep ]] && deps+=("$dep"); done
  [[ -x $program ]] || stale=1
  for dep in "${deps[@]}"; do [[ $dep -nt $program ]] && stale=1; done
  [[ -n $stale ]] || return 0
  mkdir -p "$OUT_DIR"
  if [[ $src == *.c ]]; then
    gcc -O2 -Wall -Wextra "$src" "$@" -o "$program"
  else
    g++ -O2 -std=c++20 -Wall -Wextra "$src" "$@" -o "$program"
  fi
}

# program_on_library NAME LIBRARY: bench_program NAME against LIBRARY (the release build's
# liblameduck.a).
program_on_library() {
  bench_program "$1" -I"$root/include" "$2" -lssl -lcrypto -pthread
}
