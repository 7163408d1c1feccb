#!/usr/bin/env bash
# Archive benchmark: `subtitle batch` against faster-whisper with its model loaded once over the
# same list of files, in the same run, alternately, on this machine.
#
# The archive (benches/archive.py corpus, made once in $OUT/archive): N files (default 300) built
# from ../shared/data: single clips (mp4 as shipped, wav/flac originals), 40 clips joined into 40 s
# to 3 min of AAC or MP3, 6 minute-long 1080p H.264 videos, and 4 broken files (a truncated MP4,
# junk named .mkv, an empty .wav, a video without sound). Per tool and setting: wall time, files
# per hour, media hours per hour and per CPU-hour (user + system time), peak RSS, corpus WER over
# the files with speech (a file a tool did not write counts as all words deleted).
#
#   bash benches/archive.sh                          # tiny.en greedy on all N, base beam 5 on every
#                                                    # STRIDE-th file of the list (default 3: 100 files)
#   N=300 SETTINGS="tiny.en:1" bash benches/archive.sh
#   RSS=1000 bash benches/archive.sh                 # also: peak RSS of one worker over 1,000 files
#                                                    # (after 50 vs after 1,000)
#   KILLS=20 bash benches/archive.sh                 # also: 20 kill -9s of shard and queue workers
#                                                    # (redis-server on loopback), then the checks:
#                                                    # items lost, done twice, partial outputs
#   OUT=/tmp/arch bash benches/archive.sh            # keep the archive and outputs there
#
# subtitle runs `subtitle batch DIR --out OUT --jobs 2 -q` (its defaults otherwise: --batch-size
# from the pipeline, OCR on for the videos); faster-whisper 1.2.1 (int8, 2 threads) runs
# benches/fw_transcribe.py over the list, which passes over a file it cannot read.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release --locked --quiet --bins --examples
bin=${BIN:-target/release/subtitle}
wer=target/release/examples/wer
models/fetch.sh tiny.en >/dev/null
models/fetch.sh base >/dev/null
source benches/peer_env.sh
real=../shared/data/real
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
n=${N:-300}
a=benches/archive.py
[ -f "$out/archive/list.txt" ] || python3 $a corpus "$out/archive" "$n" "$real"
media_s=$(cat "$out/archive/media_s")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; faster-whisper $("$venv/bin/python" -c 'import faster_whisper; print(faster_whisper.__version__)') int8"
echo "archive: $(wc -l < "$out/archive/list.txt") files, $(python3 -c "print(round($media_s/3600, 2))") media h with speech"
printf '%-8s %4s %5s | %-15s %8s %8s %9s %10s %6s %6s\n' model beam files tool "wall s" "files/h" "media h/h" "media h/CPU-h" "MB" "WER%"

# One row: TOOL WALL USER SYS MAXRSS_KB FILES MEDIA_S HYP_DIR LIST
row() {
  local tool=$1 wall=$2 user=$3 sys=$4 kb=$5 files=$6 secs=$7 hyp=$8 list=$9
  sed "s|^$out/archive/media/||" "$list" | awk -F'\t' 'NR == FNR { want[$0] = 1; next } ($2 in want)' - "$out/archive/names.tsv" |
    awk -F'\t' -v hyp="$hyp" -v tool="$tool" '{
      rel = $2; sub(/\.[^.\/]*$/, "", rel); name = $1
      print $3 "\t" (tool == "subtitle" ? hyp "/" rel ".srt" : hyp "/" name ".srt") }' > "$out/pairs.tsv"
  printf '%-8s %4s %5s | %-15s %8.1f %8.0f %9.2f %10.2f %6.0f %6s\n' "$model" "$beam" "$files" "$tool" "$wall" \
    "$(python3 -c "print($files/$wall*3600)")" "$(python3 -c "print($secs/$wall)")" \
    "$(python3 -c "print($secs/($user+$sys))")" "$(python3 -c "print($kb/1024)")" "$("$wer" --pairs "$out/pairs.tsv")"
}

for setting in ${SETTINGS:-tiny.en:1 base:5}; do
  model=${setting%%:*}; beam=${setting#*:}
  # tiny.en: every file; other models: every STRIDE-th (default 3: a third of each kind).
  stride=1
  [ "$model" = tiny.en ] || stride=${STRIDE:-3}
  awk -v k="$stride" 'NR % k == 1 || k == 1' "$out/archive/list.txt" > "$out/list-$model.txt"
  # The subset as a manifest for subtitle (ids: the paths under the archive, as a directory gives).
  sed "s|^$out/archive/media/||" "$out/list-$model.txt" | while read -r rel; do
    printf '{"id": "%s", "path": "%s"}\n' "$rel" "$out/archive/media/$rel"; done > "$out/list-$model.jsonl"
  secs=$(python3 - "$out/archive" "$out/list-$model.txt" <<'PY'
import subprocess, sys
d, listed = sys.argv[1], sys.argv[2]
paths = open(listed).read().split()
names = {line.split("\t")[1] for line in open(f"{d}/names.tsv").read().splitlines()}
total = 0.0
for p in paths:
    rel = p.split("/media/", 1)[-1]
    if rel in names:
        total += float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", p],
                                      capture_output=True, text=True).stdout.strip() or 0)
print(total)
PY
)
  for run in 1 2; do
    if [ "$run" = 1 ]; then
      rm -rf "$out/sub-$model" && mkdir -p "$out/sub-$model"
      /usr/bin/time -o "$out/time" -f '%e %U %S %M' "$bin" batch "$out/list-$model.jsonl" --out "$out/sub-$model" \
        --model "$model" --beam "$beam" --jobs 2 -q 2>"$out/sub-$model.log" || true
      t=$(tail -1 "$out/time")
      read -r wall user sys kb <<< "$t"
      done_files=$(python3 -c "import json,subprocess; print(json.loads(subprocess.run(['$bin','batch','status','$out/sub-$model','--json'],capture_output=True,text=True).stdout)['done'])")
      row subtitle "$wall" "$user" "$sys" "$kb" "$done_files" "$secs" "$out/sub-$model" "$out/list-$model.txt"
    else
      rm -rf "$out/fw-$model" && mkdir -p "$out/fw-$model"
      /usr/bin/time -o "$out/time" -f '%e %U %S %M' "$venv/bin/python" benches/fw_transcribe.py "$ct2/$model" "$beam" 1 \
        "$out/fw-$model" "@$out/list-$model.txt" 2>"$out/fw-$model.log" || true
      t=$(tail -1 "$out/time")
      read -r wall user sys kb <<< "$t"
      done_files=$(find "$out/fw-$model" -name '*.srt' | wc -l)
      row faster-whisper "$wall" "$user" "$sys" "$kb" "$done_files" "$secs" "$out/fw-$model" "$out/list-$model.txt"
    fi
  done
done

if [ -n "${RSS:-}" ]; then
  python3 $a many "$out/many" "$RSS" "$real"
  rm -rf "$out/many-out"
  "$bin" batch "$out/many/media" --out "$out/many-out" --jobs 2 --beam 1 --ocr off -q &
  pid=$!
  python3 $a watch "$pid" "$out/many-out" "$out/rss.csv"
  wait "$pid" || true
  echo "RSS over $RSS files (tiny.en greedy, --jobs 2): $(python3 $a rss "$out/rss.csv" 50 "$RSS" | tr '\n' ' ')"
fi

if [ -n "${KILLS:-}" ]; then
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
  redis=$!
  trap 'kill $redis 2>/dev/null || true' EXIT
  sleep 0.5
  rm -rf "$out/kills" && mkdir -p "$out/kills/src"
  # The first 60 files of the archive (clips, long ones, the broken ones).
  head -n 60 "$out/archive/list.txt" | while read -r p; do
    rel=${p#"$out/archive/media/"}; mkdir -p "$out/kills/src/$(dirname "$rel")"; ln "$p" "$out/kills/src/$rel" 2>/dev/null || cp "$p" "$out/kills/src/$rel"; done
  echo "$KILLS kill -9s (half of 2 shard workers, half of 3 queue workers) over 60 files:"
  python3 $a kills "$bin" "$out/kills/src" "$out/kills" "$KILLS" "$port"
fi
