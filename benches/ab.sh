#!/usr/bin/env bash
# Two builds of subtitle on the same input and settings, run alternately (A B A B ...), each
# run's wall time and peak RSS printed: to say whether a change moved speed or memory beyond
# the noise of the machine.
#
#   bash benches/ab.sh OLD_BIN NEW_BIN INPUT [RUNS] -- [subtitle options]
#   bash benches/ab.sh /tmp/subtitle-old target/release/subtitle samples/out/long-5.mp4 3 -- --beam 1
set -euo pipefail
a=${1:?usage: benches/ab.sh OLD_BIN NEW_BIN INPUT [RUNS] -- [options]}
b=${2:?}
input=${3:?}
runs=3
shift 3
if [ $# -gt 0 ] && [ "$1" != "--" ]; then runs=$1; shift; fi
[ "${1:-}" = "--" ] && shift
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); input $input; options: $*"
for i in $(seq "$runs"); do
  for bin in "$a" "$b"; do
    stats=$( { /usr/bin/time -f '%e %M' "$bin" "$input" -o "$out/out.srt" -q "$@"; } 2>&1 | tail -1)
    printf '%-40s run %d: %6.2f s %6.0f MB\n' "$bin" "$i" "${stats% *}" "$(python3 -c "print(${stats#* }/1024)")"
  done
done
