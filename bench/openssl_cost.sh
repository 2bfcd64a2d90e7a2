#!/usr/bin/env bash
# Benchmark (not a test; never run in CI): what OpenSSL itself costs a TLS 1.3 server per
# keep-alive request as the number of connections grows, with no kernel, sockets or lameduck
# in the way (bench/openssl_cost.cpp, built here with g++ -O2 -lssl -lcrypto; its header says
# how it measures). It shows how much of https.sh's "CPU ÷ own HTTP" at 256 connections is
# OpenSSL's per-connection state falling out of the core's cache, a cost nginx pays as well.
#
# Settings: CONNS ["16 64 256 1024"], REQUESTS [200000] timed per run, ROUNDS [5] (medians),
# SERVER_CPU (0, where it runs), OUT_DIR, LOCK, LOCK_WAIT (bench/common.sh).
set -euo pipefail
bench_name=openssl_cost
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONNS=${CONNS:-"16 64 256 1024"}
REQUESTS=${REQUESTS:-200000}
ROUNDS=${ROUNDS:-5}
need_whole_numbers REQUESTS ROUNDS
for n in $CONNS; do [[ $n =~ ^[1-9][0-9]*$ ]] || { note "CONNS must be whole numbers"; exit 2; }; done
need_tools g++ taskset

on_exit ""
take_bench_lock
bench_locked=1
bench_program openssl_cost -lssl -lcrypto

machine_line
echo "openssl=$(openssl version)"
echo
echo "OpenSSL's own CPU per keep-alive request (SSL_read of the request + SSL_write of the"
echo "response, TLS 1.3, AES-128-GCM, lameduck's SSL_CTX settings), N connections served in"
echo "turn, medians of $ROUNDS runs of $REQUESTS requests, on CPU $SERVER_CPU:"
echo
echo "| connections | ns/request | ÷ first row |"
echo "|------------:|-----------:|------------:|"
first=
for n in $CONNS; do
  runs=()
  for ((r = 0; r < ROUNDS; r++)); do
    runs+=("$(taskset -c "$SERVER_CPU" "$program" "$n" "$REQUESTS" | cut -d' ' -f2)")
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p")
  first=${first:-$median}
  printf '| %11s | %10s | %11s |\n' "$n" "$median" "$(awk -v a="$median" -v b="$first" 'BEGIN { printf "%.2f", a / b }')"
done
