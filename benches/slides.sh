#!/usr/bin/env bash
# On-screen text benchmark: slide-style videos (samples/slides.py: rare names and terms on the
# slides, espeak-ng saying them, pink noise) transcribed audio-only (--ocr off), with on-screen
# text (default), and with the exact slide terms handed over as --context. Prints, per mode, the
# WER over all videos and the share of slide terms spelled right (all words of the term, in order).
#
#   benches/slides.sh                 # 30 held-out videos (K 2000-2029), 10 dB SNR, tiny.en beam 5
#   COUNT=10 FIRST=1000 SNR=5 MODEL=base BEAM=5 benches/slides.sh
#   ADAPTER=adapter.safetensors MODES="audio-only ocr adapter adapter-only" benches/slides.sh
#   HEIGHT=1080 MODES=ocr BIN=/tmp/old-subtitle benches/slides.sh   # 1080p videos, another build
# Modes: audio-only (--ocr off), ocr (default), terms (--ocr off --context the slide terms),
# adapter (default + --adapter $ADAPTER), adapter-only (--ocr off --adapter $ADAPTER: the
# pictures alone, through the fusion memory).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-30} first=${FIRST:-2000} snr=${SNR:-10} model=${MODEL:-tiny.en} beam=${BEAM:-5}
height=${HEIGHT:-720} bin=${BIN:-target/release/subtitle}
modes=${MODES:-"audio-only ocr terms"}
# UNSEEN=1: names and terms that the default videos (and so an adapter trained on them) never use.
if [ -n "${UNSEEN:-}" ]; then
  set_dir="samples/out/slides-unseen-snr$snr"; unseen=(--unseen)
else
  set_dir="samples/out/slides-snr$snr"; unseen=()
fi
[ "$height" = 720 ] || set_dir="$set_dir-${height}p"
python3 samples/slides.py "$set_dir" --count "$count" --first "$first" --snr "$snr" --height "$height" "${unseen[@]}"
cargo build --release --locked -q --example wer
[ -n "${BIN:-}" ] || cargo build --release --locked -q --bin subtitle
if [ -n "${KEEP:-}" ]; then out=$KEEP; mkdir -p "$out"; else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
echo "slides${UNSEEN:+ (unseen names and terms)}: $count videos (K $first..$((first + count - 1))), ${height}p, ${snr} dB SNR, $model, beam $beam, $(nproc) cores, $bin"
printf '%-12s %8s %14s %10s\n' mode WER "terms right" "wall s"
for mode in $modes; do
  mkdir -p "$out/$mode"; : > "$out/$mode/ref.txt"; : > "$out/$mode/hyp.txt"
  start=$(date +%s.%N)
  for k in $(seq "$first" $((first + count - 1))); do
    v="$set_dir/slides-$k"
    case "$mode" in
      audio-only) args=(--ocr off) ;;
      ocr) args=() ;;
      terms) args=(--ocr off --context "$v.terms") ;;
      adapter) args=(--adapter "${ADAPTER:?set ADAPTER}") ;;
      adapter-only) args=(--ocr off --adapter "${ADAPTER:?set ADAPTER}") ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    "$bin" "$v.mp4" -o "$out/$mode/$k.srt" --model "$model" --beam "$beam" -q "${args[@]}"
  done
  wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  python3 - "$set_dir" "$out/$mode" "$first" "$count" > "$out/$mode/terms" <<'PY'
import re, sys
d, run, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
norm = lambda s: " " + " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split()) + " "
right = total = 0
for k in range(first, first + count):
    srt = open(f"{run}/{k}.srt").read()
    hyp = norm(" ".join(l for l in srt.splitlines() if l and not l.isdigit() and "-->" not in l))
    for term in open(f"{d}/slides-{k}.terms").read().splitlines():
        total += 1
        right += norm(term) in hyp
print(f"{right}/{total} ({100 * right / total:.0f}%)")
PY
  for k in $(seq "$first" $((first + count - 1))); do
    cat "$set_dir/slides-$k.txt" >> "$out/$mode/ref.txt"; echo >> "$out/$mode/ref.txt"
    grep -v -- '-->' "$out/$mode/$k.srt" | grep -v '^[0-9]*$' | tr '\n' ' ' >> "$out/$mode/hyp.txt"; echo >> "$out/$mode/hyp.txt"
  done
  printf '%-12s %7s%% %14s %10s\n' "$mode" "$(target/release/examples/wer "$out/$mode/ref.txt" "$out/$mode/hyp.txt")" \
    "$(cat "$out/$mode/terms")" "$wall"
done
