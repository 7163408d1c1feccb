#!/usr/bin/env bash
# Writes the JSON output of one binary over a fixed set of inputs and settings, so that two builds
# can be compared (benches/compare_outputs.py): the same text, and cue times within 40 ms.
#
#   bash benches/outputs.sh BIN OUTDIR
#   python3 benches/compare_outputs.py OUTDIR_A OUTDIR_B
#
# Inputs: the shared clips (../shared/data/real/mp4) and the generated long talks and cue-test
# videos (samples/make.sh; `samples/make.sh long 5` and `long 20` first). Settings: tiny.en greedy,
# tiny.en beam 5, tiny.en batched (8) greedy; base beam 5 on the clips (when fetched).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:?usage: benches/outputs.sh BIN OUTDIR}")"
out="$(realpath -m "${2:?usage: benches/outputs.sh BIN OUTDIR}")"
cd "$root"
clips=(../shared/data/real/mp4/*.mp4)
long=()
for f in samples/out/long-5.mp4 samples/out/long-20.mp4 samples/out/timing.mp4 samples/out/cut.mp4 \
  samples/out/dense.mp4 samples/out/overmusic.mp4 samples/out/slides/*.mp4; do
  [ -f "$f" ] && long+=("$f")
done
run() { # name model beam batch inputs...
  local name=$1 model=$2 beam=$3 batch=$4; shift 4
  mkdir -p "$out/$name"
  local t0; t0=$(date +%s.%N)
  "$bin" "$@" --model "$model" --beam "$beam" --batch-size "$batch" --format json --output-dir "$out/$name" -q
  echo "$name: $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s" >&2
}
run clips-tiny-b1 tiny.en 1 1 "${clips[@]}"
run clips-tiny-b5 tiny.en 5 1 "${clips[@]}"
run clips-tiny-b1-batch8 tiny.en 1 8 "${clips[@]}"
run long-tiny-b1 tiny.en 1 1 "${long[@]}"
run long-tiny-b5 tiny.en 5 1 "${long[@]}"
run long-tiny-b1-batch8 tiny.en 1 8 "${long[@]}"
if [ -f models/base/model.safetensors ]; then
  run clips-base-b5 base 5 1 "${clips[@]}"
fi
