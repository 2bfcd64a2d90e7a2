# shellcheck shell=bash
# Sourced by the benchmarks: one benchmark at a time on this machine. Needs LOCK, LOCK_WAIT
# and a note() function.

# Waits (at most LOCK_WAIT seconds) for the lock and takes it for this shell's pid.
take_bench_lock() {
  local waited=0
  until (set -o noclobber; echo $$ >"$LOCK") 2>/dev/null; do
    if ((waited == 0)); then note "waiting for $LOCK (held by pid $(cat "$LOCK" 2>/dev/null || echo '?'))"; fi
    if ((waited >= LOCK_WAIT)); then note "gave up waiting for $LOCK after $LOCK_WAIT s"; exit 3; fi
    sleep 5
    waited=$((waited + 5))
  done
}

# Gives the lock back, or says that another run took it meanwhile.
release_bench_lock() {
  if [[ $(cat "$LOCK" 2>/dev/null) == "$$" ]]; then
    rm -f "$LOCK"
  else
    note "warning: $LOCK was taken over during the run (now: $(cat "$LOCK" 2>/dev/null || echo gone)); another benchmark may have disturbed it"
  fi
}
