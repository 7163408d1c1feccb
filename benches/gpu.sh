#!/usr/bin/env bash
# The GPU table: a `--features cuda` build of subtitle on one long file at batch sizes 1 to 64,
# tiny.en greedy and base beam 5, then several inputs at once; per row wall time, RTF, peak GPU
# memory (nvidia-smi, sampled every 100 ms, above what was in use before the run) and WER.
#
#   BIN=target/release/subtitle WER=target/release/examples/wer bash benches/gpu.sh
#
# On a GPU machine, with the binary of `.ci/cuda-check --build` (plain audio only) and a wer built
# likewise (`cargo build --release --no-default-features --example wer`):
#   FILE=samples/out/long-5.wav JOBS_FILE=samples/out/long-1.wav BIN=./subtitle-gpu WER=./wer \
#     LD_LIBRARY_PATH=<site-packages>/nvidia/cu13/lib bash benches/gpu.sh
# (the .wav files: `ffmpeg -i long-5.mp4 -ar 16000 -ac 1 long-5.wav`, references copied beside).
#
# BIN: the cuda build; WER: the wer example (any build); MODELS: directory holding tiny.en and
# base (default ./models); FILE: the long file (default samples/out/long-5.mp4, its reference
# FILE.txt beside it); BATCHES, MODELS_RUN ("tiny.en:1 base:5"), JOBS_FILE (default
# samples/out/long-1.mp4, run 8 times at once). Without nvidia-smi the memory column is n/a, so
# the script also runs on a CPU build (its numbers are then the CPU's).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin=${BIN:-target/release/subtitle}
wer=${WER:-target/release/examples/wer}
models=${MODELS:-models}
file=${FILE:-samples/out/long-5.mp4}
jobs_file=${JOBS_FILE:-samples/out/long-1.mp4}
batches=${BATCHES:-"1 2 4 8 16 32 64"}
runs=${MODELS_RUN:-"tiny.en:1 base:5"}
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Seconds of a media file: wav by Python's wave module (a GPU image may have no ffprobe).
duration() {
  case "$1" in
    *.wav) python3 -c "import sys, wave; w = wave.open(sys.argv[1]); print(w.getnframes() / w.getframerate())" "$1" ;;
    *) ffprobe -v error -show_entries format=duration -of csv=p=0 "$1" ;;
  esac
}
gpu_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1; }
# Runs the command in "$@"; prints "seconds peak_MiB" (peak n/a without nvidia-smi).
measure() {
  local base peak=n/a pid t0 t1
  base=$(gpu_mem || true)
  if [ -n "$base" ]; then
    (while :; do gpu_mem; sleep 0.1; done) > "$out/mem" &
    pid=$!
  fi
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  if [ -n "$base" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    peak=$(sort -n "$out/mem" | tail -1)
    peak=$((peak - base))
  fi
  echo "$(python3 -c "print(round($t1 - $t0, 2))") $peak"
}

dur=$(duration "$file")
echo "machine: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'no GPU'), $(nproc) cores"
echo "file: $(basename "$file") ($(python3 -c "print(round($dur))") s)"
printf '%-8s %4s %5s %5s | %8s %7s %9s %6s\n' model beam batch jobs "wall s" RTF "GPU MiB" "WER%"
for run in $runs; do
  IFS=: read -r model beam <<< "$run"
  for b in $batches; do
    r=$(measure "$bin" "$file" -o "$out/sub.srt" --model "$models/$model" --beam "$beam" --batch-size "$b" \
      --language en --ocr off -q)
    printf '%-8s %4s %5s %5s | %8s %7.4f %9s %6s\n' "$model" "$beam" "$b" 1 "${r% *}" \
      "$(python3 -c "print(${r% *}/$dur)")" "${r#* }" "$("$wer" "$file.txt" "$out/sub.srt")"
  done
  # Several inputs at once: their batches decode together.
  mkdir -p "$out/many" && rm -f "$out"/many/*
  ext=${jobs_file##*.}
  for i in 1 2 3 4 5 6 7 8; do ln -sf "$(realpath "$jobs_file")" "$out/many/in$i.$ext"; done
  jdur=$(duration "$jobs_file")
  r=$(measure "$bin" "$out"/many/in*."$ext" --jobs 8 --model "$models/$model" --beam "$beam" --batch-size 8 \
    --language en --ocr off -q)
  printf '%-8s %4s %5s %5s | %8s %7.4f %9s %6s\n' "$model" "$beam" 8 8 "${r% *}" \
    "$(python3 -c "print(${r% *}/(8*$jdur))")" "${r#* }" "$("$wer" "$jobs_file.txt" "$out/many/in1.srt")"
done
