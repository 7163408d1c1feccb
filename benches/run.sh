#!/usr/bin/env bash
# Prints real-time factor, peak RSS and WER for subtitle on generated long-form speech videos
# (1, 5 and 20 minutes; samples/make.sh long N) and the corpus WER on ../shared/data/real.
#
#   bash benches/run.sh            # tiny.en greedy and beam 5; base beam 5 on 5 minutes
#   QUICK=1 bash benches/run.sh    # 1- and 5-minute files only
#   NO_CORPUS=1 ...                 # skip the corpus WER on ../shared/data/real
#
# RTF = wall time / media duration. Peak RSS from GNU time. WER against the generated text (long
# files) or the shared references, normalised the Whisper way (src/eval.rs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --locked --quiet --bins --examples
bin=target/release/subtitle
wer=target/release/examples/wer
models/fetch.sh tiny.en
models/fetch.sh base
minutes=(1 5 20)
[ -n "${QUICK:-}" ] && minutes=(1 5)
for m in "${minutes[@]}"; do bash samples/make.sh long "$m"; done
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
printf '%-22s %-8s %5s %9s %7s %9s %7s\n' file model beam wall_s RTF peak_MB WER%
run() { # file model beam
  local f=$1 model=$2 beam=$3 dur stats wall rss
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f")
  stats=$( { /usr/bin/time -f '%e %M' "$bin" "$f" -o "$out/hyp.srt" --model "$model" --beam "$beam" -q; } 2>&1 | tail -1)
  wall=${stats% *}; rss=${stats#* }
  printf '%-22s %-8s %5s %9.1f %7.3f %9.0f %7.2f\n' "$(basename "$f")" "$model" "$beam" "$wall" \
    "$(python3 -c "print($wall/$dur)")" "$(python3 -c "print($rss/1024)")" "$("$wer" "$f.txt" "$out/hyp.srt")"
}
for m in "${minutes[@]}"; do
  f=samples/out/long-$m.mp4
  run "$f" tiny.en 1
  run "$f" tiny.en 5
done
for m in "${minutes[@]}"; do
  [ "$m" = 1 ] || run "samples/out/long-$m.mp4" base 5
done

[ -n "${NO_CORPUS:-}" ] && exit 0
echo
echo "corpus WER, ../shared/data/real English clips (faster-whisper 1.2.1 int8 with the same weights:"
echo "tiny.en greedy 6.0%, beam 5 5.0%; base greedy 4.6%, beam 5 5.0%)"
real="$root/../shared/data/real"
for cfg in "tiny.en 1" "tiny.en 5" "base 1" "base 5"; do
  set -- $cfg
  rm -rf "$out/run" && mkdir -p "$out/run"
  start=$(date +%s.%N)
  while IFS=$'\t' read -r id _ _ _ lang _ overall _; do
    [ "$id" = id ] && continue
    [ "$lang" = en ] && [ "$overall" = 1 ] || continue
    "$bin" "$real/mp4/$id.mp4" -o "$out/run/$id.srt" --model "$1" --beam "$2" -q
  done < "$real/manifest.tsv"
  secs=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  printf '%-8s beam %s: WER %s%%  (%s s for 39 clips)\n' "$1" "$2" "$("$wer" --manifest "$real" "$out/run")" "$secs"
done
