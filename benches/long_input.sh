#!/usr/bin/env bash
# Long input: peak memory of `subtitle FILE -o OUT.srt` on HOURS (default 10) of real speech against
# one minute of the same (issue 22's target: within 10%), with the RSS sampled through the run.
#
# The input: every clip of ../shared/data/real/mp4 in turn, 1.5 s apart (4.5 min of speech in a
# 5.5 min programme, AAC 48 kb/s mono), looped without re-encoding to HOURS hours in CONTAINER
# (default mka: Matroska); the minute is its first 60 s. Speech throughout: the worst case for
# what a run keeps until the end (cues). In MP4 (CONTAINER=m4a) FFmpeg's demuxer holds an index
# entry per AAC frame for the whole file from the start (10 hours: about 22 MB more than 1 hour
# for `ffmpeg -i long.m4a -t 1 -f null -` alone), which is FFmpeg's, not the pipeline's.
#
#   bash benches/long_input.sh                  # 10 hours, tiny.en greedy (--beam 1)
#   HOURS=2 ARGS="--beam 5" bash benches/long_input.sh
#   OUT=/tmp/long BIN=target/release/subtitle bash benches/long_input.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release --locked --quiet --bins
bin=${BIN:-target/release/subtitle}
models/fetch.sh tiny.en >/dev/null
out=${OUT:-$(mktemp -d)}
hours=${HOURS:-10}
args=${ARGS:---beam 1}
ext=${CONTAINER:-mka}
real=../shared/data/real/mp4
mkdir -p "$out/clips"
ff() { ffmpeg -nostdin -loglevel error -y "$@"; }
if [ ! -f "$out/programme.m4a" ]; then
  ff -f lavfi -i anullsrc=r=16000:cl=mono -t 1.5 -c:a pcm_s16le "$out/clips/gap.wav"
  : > "$out/list.txt"
  for f in "$real"/*.mp4; do
    n=$(basename "$f" .mp4)
    ff -i "$f" -vn -ac 1 -ar 16000 -c:a pcm_s16le "$out/clips/$n.wav"
    printf "file 'clips/%s.wav'\nfile 'clips/gap.wav'\n" "$n" >> "$out/list.txt"
  done
  ff -f concat -safe 0 -i "$out/list.txt" -c:a aac -b:a 48k "$out/programme.m4a"
fi
long="$out/long-${hours}h.$ext"
[ -f "$long" ] || ff -stream_loop -1 -i "$out/programme.m4a" -t $((hours * 3600)) -c copy "$long"
ff -i "$long" -t 60 -c copy "$out/minute.$ext"

# Runs $bin on $1; prints wall s, peak RSS MB, cues, and the RSS samples (every 5 s) to $2.
measure() {
  local input=$1 samples=$2 srt="$out/$(basename "$1" ".$ext").srt"
  rm -f "$srt"
  local t0 pid peak=0
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$bin" "$input" -o "$srt" -q --ocr off $args &
  pid=$!
  : > "$samples"
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    now=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && peak=$rss && echo "$(echo "$(date +%s.%N) - $t0" | bc) $now" >> "$samples"
    sleep 5
  done
  wait "$pid"
  local wall
  wall=$(echo "$(date +%s.%N) - $t0" | bc)
  printf '%.1f %.1f %d\n' "$wall" "$(echo "$peak / 1024" | bc -l)" "$(grep -c -- ' --> ' "$srt")"
}

read -r w1 m1 c1 < <(measure "$out/minute.$ext" "$out/rss-minute.txt")
read -r wl ml cl < <(measure "$long" "$out/rss-long.txt")
media_s=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$long")
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "subtitle FILE.$ext -o OUT.srt --ocr off $args (tiny.en)"
printf '| input | media | wall s | x real time | peak RSS MB | cues |\n|---|---|---|---|---|---|\n'
printf '| 1 minute | 60 s | %s | %.0f | %s | %s |\n' "$w1" "$(echo "60 / $w1" | bc -l)" "$m1" "$c1"
printf '| %s hours | %.0f s | %s | %.0f | %s | %s |\n' "$hours" "$media_s" "$wl" "$(echo "$media_s / $wl" | bc -l)" "$ml" "$cl"
printf 'peak RSS, %s hours over 1 minute: %+.1f%%\n' "$hours" "$(echo "($ml / $m1 - 1) * 100" | bc -l)"
# RSS along the long run: at a tenth, half and the end of it.
awk -v n="$(wc -l < "$out/rss-long.txt")" 'NR == int(n/10) || NR == int(n/2) || NR == n {
  printf "RSS at %.0f s of the run: %.1f MB\n", $1, $2 / 1024 }' "$out/rss-long.txt"
