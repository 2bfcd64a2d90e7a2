#!/usr/bin/env bash
# Proves that an outside project can consume lameduck.
#   run.sh find_package BUILD_DIR SOURCE_DIR   install BUILD_DIR to a temporary prefix, use find_package
#   run.sh add_subdirectory BUILD_DIR SOURCE_DIR   build the consumer against the source tree
#   run.sh pkg-config BUILD_DIR SOURCE_DIR     install, then compile the consumer with pkg-config flags
set -euo pipefail
mode=$1 build=$2 source=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
here=$source/tests/consume
case $mode in
  find_package)
    cmake --install "$build" --prefix "$work/prefix" >/dev/null
    cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
    ;;
  add_subdirectory)
    cmake -S "$here" -B "$work/build" -G Ninja -DLAMEDUCK_SOURCE_DIR="$source" \
      -DCMAKE_BUILD_TYPE=Release >/dev/null
    ;;
  pkg-config)
    cmake --install "$build" --prefix "$work/prefix" >/dev/null
    export PKG_CONFIG_PATH=$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig
    # shellcheck disable=SC2046
    c++ -O1 -o "$work/consumer" "$here/consumer.cpp" $(pkg-config --cflags --libs lameduck)
    exec "$work/consumer"
    ;;
  *) echo "run.sh: unknown mode $mode" >&2; exit 2 ;;
esac
cmake --build "$work/build" >/dev/null
"$work/build/consumer"
