#!/usr/bin/env bash
# What reading on-screen text costs: wall time and peak RSS of the same run with --ocr off, on
# (the default), and on with the terms read but not used (`[context] max_tokens = 0`: decoding is
# then the same as with --ocr off, so the difference is the visual stages' own cost), on
#   - a slide talk: the held-out slide videos (benches/slides.sh's set) joined into one, 720p;
#   - the same talk scaled to 1080p;
#   - samples/out/long-5.mp4: a moving test pattern with a counter (never settles: no OCR).
#
#   benches/visual_cost.sh            # MODEL=tiny.en BEAM=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-tiny.en} beam=${BEAM:-5}
set_dir=samples/out/slides-snr10
python3 samples/slides.py "$set_dir" --count 30 --first 2000 --snr 10
bash samples/make.sh long 5
talk=samples/out/slides-talk.mp4
if [ ! -f "$talk" ]; then
  list=$(mktemp)
  for k in $(seq 2000 2029); do echo "file '$PWD/$set_dir/slides-$k.mp4'" >> "$list"; done
  ffmpeg -hide_banner -loglevel error -y -f concat -safe 0 -i "$list" -c copy "$talk"
  rm -f "$list"
fi
hd=samples/out/slides-talk-1080p.mp4
[ -f "$hd" ] || ffmpeg -hide_banner -loglevel error -y -i "$talk" -vf scale=1920:1080 -c:v libx264 -preset veryfast \
  -c:a copy "$hd"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
sed 's/^max_tokens = .*/max_tokens = 0/' pipelines/file.toml > "$out/unused.toml"
echo "on-screen text cost: $model beam $beam, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-24s %7s %9s %9s %13s %6s %7s %7s\n' file "media s" "off wall" "on wall" "read, unused" extra "off MB" "on MB"
for f in "$talk" "$hd" samples/out/long-5.mp4; do
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f")
  declare -A wall rss
  for mode in off on unused; do
    case $mode in
      unused) args=(--ocr on --pipeline "$out/unused.toml") ;;
      *) args=(--ocr "$mode") ;;
    esac
    /usr/bin/time -f "%e %M" -o "$out/time" target/release/subtitle "$f" -o "$out/x.srt" --model "$model" \
      --beam "$beam" -q "${args[@]}"
    read -r wall[$mode] rss[$mode] < "$out/time"
  done
  printf '%-24s %7.0f %9s %9s %13s %5.0f%% %7d %7d\n' "$(basename "$f")" "$dur" "${wall[off]}" "${wall[on]}" \
    "${wall[unused]}" "$(python3 -c "print(100 * (${wall[unused]} / ${wall[off]} - 1))")" $((rss[off] / 1024)) \
    $((rss[on] / 1024))
done
