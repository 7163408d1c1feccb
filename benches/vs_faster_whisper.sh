#!/usr/bin/env bash
# subtitle against faster-whisper on the same machine, the same files and the same weights, run
# alternately in one run. Prints per file and setting: wall time, real-time factor, the ratio
# subtitle / faster-whisper, peak RSS and WER of each.
#
#   bash benches/vs_faster_whisper.sh                  # tiny.en greedy on 5 and 20 minutes, 2 minutes of
#                                                      # real clips, 3 real clips; base beam 5 (not on 20);
#                                                      # each sequential and batched (8)
#   FILES="samples/out/long-5.mp4" SETTINGS="tiny.en:1" bash benches/vs_faster_whisper.sh
#   SETTINGS="tiny.en:1:8 base:5:8" bash benches/vs_faster_whisper.sh   # batched, 8 chunks a batch
#   FILES= bash benches/vs_faster_whisper.sh           # only the many-clips rows (MANY=0: none)
#   FILES= MANY=0 bash benches/vs_faster_whisper.sh    # only the HD video rows (HD=0: none)
#
# The many-clips rows ("39 clips") give each tool the 39 English clips of ../shared/data at once:
# subtitle takes them all in one run (`--jobs JOBS`, default 2, its batched chunks decoded across
# clips), faster-whisper's model is loaded once and transcribes them one after another. WER is
# over all 39 (`wer --manifest`), RTF over their 258 s.
#
# A setting is MODEL:BEAM[:BATCH]. With BATCH above 1 subtitle runs `--batch-size BATCH` and
# faster-whisper its BatchedInferencePipeline(batch_size=BATCH) (Silero VAD chunks, no previous
# text), so batched is compared with batched; the sequential rows are the issue's targets.
#
# faster-whisper 1.2.1 (PyPI) goes into benches/.venv; it loads the CTranslate2 model directories
# the model wheels contain (models/.cache, as models/fetch.sh left them), int8 compute, as many
# CPU threads as cores, its defaults otherwise (no VAD filter, conditioning on previous text, no
# word timestamps; subtitle always times words). RTF = wall time / media duration, including
# model load for both. WER against the generated script or the shared reference (src/eval.rs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# BIN=path: measure that build of subtitle (a copy, so that building meanwhile does not change it).
[ -n "${BIN:-}" ] || cargo build --release --locked --quiet --bins --examples
bin=${BIN:-target/release/subtitle}
wer=target/release/examples/wer
models/fetch.sh tiny.en
models/fetch.sh base

# faster-whisper's virtualenv ($venv) and the CTranslate2 model directories ($ct2).
source benches/peer_env.sh

real=../shared/data/real
# Real long-form speech: JFK and LJ Speech LJ001-0001..0016 back to back, a second of silence
# between clips (2 min 15 s), and their references joined.
clips=samples/out/real-clips.wav
if [ ! -f "$clips" ]; then
  python3 - "$real" "$clips" <<'PY'
import subprocess, sys, wave
real, dst = sys.argv[1], sys.argv[2]
ids = ["jfk"] + [f"lj_LJ001-{i:04d}" for i in range(1, 17)]
pcm, text = b"", []
for i in ids:
    pcm += subprocess.run(["ffmpeg", "-v", "error", "-i", f"{real}/mp4/{i}.mp4", "-ar", "16000", "-ac", "1",
                           "-f", "s16le", "-"], check=True, capture_output=True).stdout + bytes(32000)
    text.append(open(f"{real}/refs/{i}.txt").read().strip())
with wave.open(dst, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(pcm)
open(dst + ".txt", "w").write(" ".join(text) + "\n")
PY
fi
files=${FILES-"samples/out/long-5.mp4 samples/out/long-20.mp4 $clips $real/mp4/jfk.mp4 $real/mp4/lj_LJ001-0001.mp4 $real/mp4/lj_LJ001-0003.mp4"}
settings=${SETTINGS:-"tiny.en:1 tiny.en:1:8 base:5 base:5:8"}
for m in 5 20; do case "$files" in *long-$m.mp4*) bash samples/make.sh long "$m" ;; esac; done
reference() { # the reference text file of a media file
  case "$1" in
    samples/out/*) echo "$1.txt" ;;
    *) echo "$real/refs/$(basename "${1%.*}").txt" ;;
  esac
}

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; faster-whisper $("$venv/bin/python" -c 'import faster_whisper; print(faster_whisper.__version__)') int8"
printf '%-20s %-8s %4s %5s | %8s %6s %6s %6s | %8s %6s %6s %6s | %5s\n' file model beam batch \
  "sub s" RTF "MB" "WER%" "fw s" RTF "MB" "WER%" "ratio"
for setting in $settings; do
  IFS=: read -r model beam batch <<< "$setting"
  batch=${batch:-1}
  for f in $files; do
    # base beam 5 on 20 minutes takes long on 2 cores: only with LONG_BASE=1.
    if [ "$model" = base ] && [[ "$f" == *long-20* ]] && [ -z "${LONG_BASE:-}" ]; then continue; fi
    dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f")
    ref=$(reference "$f")
    s=$( { /usr/bin/time -f '%e %M' "$bin" "$f" -o "$out/sub.srt" --model "$model" --beam "$beam" --batch-size "$batch" --language en -q; } 2>&1 | tail -1)
    w=$( { /usr/bin/time -f '%e %M' "$venv/bin/python" benches/fw_transcribe.py "$ct2/$model" "$beam" "$batch" "$out/fw.txt" "$f"; } 2>&1 | tail -1)
    printf '%-20s %-8s %4s %5s | %8.1f %6.3f %6.0f %6.2f | %8.1f %6.3f %6.0f %6.2f | %5.2f\n' "$(basename "$f")" "$model" "$beam" "$batch" \
      "${s% *}" "$(python3 -c "print(${s% *}/$dur)")" "$(python3 -c "print(${s#* }/1024)")" "$("$wer" "$ref" "$out/sub.srt")" \
      "${w% *}" "$(python3 -c "print(${w% *}/$dur)")" "$(python3 -c "print(${w#* }/1024)")" "$("$wer" "$ref" "$out/fw.txt")" \
      "$(python3 -c "print(${s% *}/${w% *})")"
  done
done

if [ "${MANY:-1}" != 0 ]; then
clips=$(awk -F'\t' -v r="$real" 'NR>1 && $5=="en" && $7=="1" {print r "/" $3}' "$real/manifest.tsv")
dur=$(awk -F'\t' 'NR>1 && $5=="en" && $7=="1" {s+=$4} END {print s}' "$real/manifest.tsv")
for setting in $settings; do
  IFS=: read -r model beam batch <<< "$setting"
  batch=${batch:-1}
  rm -rf "$out/many-sub" "$out/many-fw" && mkdir "$out/many-sub" "$out/many-fw"
  # shellcheck disable=SC2086
  s=$( { /usr/bin/time -f '%e %M' "$bin" $clips --output-dir "$out/many-sub" --jobs "${JOBS:-2}" --model "$model" --beam "$beam" --batch-size "$batch" --language en -q; } 2>&1 | tail -1)
  # shellcheck disable=SC2086
  w=$( { /usr/bin/time -f '%e %M' "$venv/bin/python" benches/fw_transcribe.py "$ct2/$model" "$beam" "$batch" "$out/many-fw" $clips; } 2>&1 | tail -1)
  printf '%-20s %-8s %4s %5s | %8.1f %6.3f %6.0f %6.2f | %8.1f %6.3f %6.0f %6.2f | %5.2f\n' "39 clips" "$model" "$beam" "$batch" \
    "${s% *}" "$(python3 -c "print(${s% *}/$dur)")" "$(python3 -c "print(${s#* }/1024)")" "$("$wer" --manifest "$real" "$out/many-sub")" \
    "${w% *}" "$(python3 -c "print(${w% *}/$dur)")" "$(python3 -c "print(${w#* }/1024)")" "$("$wer" --manifest "$real" "$out/many-fw")" \
    "$(python3 -c "print(${s% *}/${w% *})")"
done
fi

# HD video (HD=0: none; HD_HEIGHTS="1080 2160" by default): 2 minutes of talk under 1080p and 4K
# video cut every 10 to 15 s, x264's own keyframes (samples/make.sh video 2 HEIGHT), tiny.en
# greedy: subtitle with its defaults (shot changes and on-screen text from the video), subtitle on
# the audio alone ([video] fps = 0, --ocr off), and faster-whisper (which reads the audio only),
# run alternately RUNS times (2). Ratios are the defaults' wall time over the audio-only run's and
# over faster-whisper's; "video s" is the time subtitle spent on video (its JSON statistics),
# "cuts" the shot changes found within a frame of the known cuts (precision / recall).
# HD_CODECS="hevc10 fixed vp9 av1" adds the 1080p clip as other encoders write it (samples/make.sh
# video-codec: x265 10-bit, x264 with a fixed 30-frame GOP capped at 12 Mb/s as phones write it,
# libvpx VP9, SVT-AV1; a cut within a frame and 15 ms, WebM's audio starting 14 ms before its
# video); HD_CODEC_HEIGHTS="1080 2160" makes them at 4K too. HD_HANDHELD (heights, "1080" by
# default; "" for none) adds the same talk under one handheld shot as a phone records it
# (samples/make.sh handheld: no cut, so "cuts" says how many were found).
[ "${HD:-1}" = 0 ] && exit 0
sed 's/^fps = 30.0/fps = 0.0/' pipelines/file.toml > "$out/audio-only.toml"
printf '\n%-20s %9s %9s %9s | %8s %8s | %7s %6s %6s | %11s\n' file "sub s" "audio s" "fw s" "/audio" "/fw" "video s" "MB" "fw MB" "cuts P/R"
hd_files=()
for h in ${HD_HEIGHTS:-1080 2160}; do
  bash samples/make.sh video 2 "$h" >/dev/null
  hd_files+=("samples/out/video-2-${h}p.mp4")
done
for c in ${HD_CODECS:-}; do
  for h in ${HD_CODEC_HEIGHTS:-1080}; do
    bash samples/make.sh video-codec 2 "$h" "$c" >/dev/null
    for e in mp4 webm; do
      if [ -f "samples/out/video-2-${h}p-$c.$e" ]; then hd_files+=("samples/out/video-2-${h}p-$c.$e"); fi
    done
  done
done
for h in ${HD_HANDHELD-1080}; do
  bash samples/make.sh handheld 2 "$h" >/dev/null
  hd_files+=("samples/out/handheld-2-${h}p.mp4")
done
# HD_HOUR=N (none by default) adds each clip above joined N times over (30: 57 minutes), as
# FFmpeg's concat demuxer copies it without encoding again (the known cuts repeated with each
# copy, where one clip follows another no cut is counted): an hour of input, to see that memory
# stays flat and the speed holds over a long run.
if [ -n "${HD_HOUR:-}" ]; then
  long=()
  for f in "${hd_files[@]}"; do
    lf="$out/$(basename "${f%.*}")-x$HD_HOUR.${f##*.}"
    for _ in $(seq "$HD_HOUR"); do echo "file '$PWD/$f'"; done > "$out/concat.txt"
    ffmpeg -v error -y -f concat -safe 0 -i "$out/concat.txt" -c copy "$lf"
    python3 - "${f%.*}.cuts" "${lf%.*}.cuts" "$HD_HOUR" "$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f")" <<'PY'
import sys
cuts = [float(l) for l in open(sys.argv[1]) if l.strip()]
n, d = int(sys.argv[3]), float(sys.argv[4])
open(sys.argv[2], "w").writelines(f"{k * d + t:.3f}\n" for k in range(n) for t in cuts)
PY
    long+=("$lf")
  done
  hd_files+=("${long[@]}")
fi
for f in "${hd_files[@]}"; do
  for i in $(seq "${RUNS:-2}"); do
    s=$( { /usr/bin/time -f '%e %M' "$bin" "$f" -o "$out/hd.json" --beam 1 -q; } 2>&1 | tail -1)
    a=$( { /usr/bin/time -f '%e %M' "$bin" "$f" -o "$out/hd-audio.srt" --beam 1 -q --ocr off --pipeline "$out/audio-only.toml"; } 2>&1 | tail -1)
    w=$( { /usr/bin/time -f '%e %M' "$venv/bin/python" benches/fw_transcribe.py "$ct2/tiny.en" 1 1 "$out/fw.txt" "$f"; } 2>&1 | tail -1)
    stats=$(python3 - "$out/hd.json" "${f%.*}.cuts" "$f" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); truth = [float(l) for l in open(sys.argv[2]) if l.strip()]
found = d["shot_changes"]
slack = 0.015 if sys.argv[3].endswith(".webm") else 0.0
hit = lambda t, s: any(abs(t - x) <= 0.0401 + slack for x in s)
p = sum(hit(t, truth) for t in found) / max(len(found), 1); r = sum(hit(t, found) for t in truth) / max(len(truth), 1)
cuts = f"{p:.2f}/{r:.2f}" if truth else f"{len(found)} found"
print(f'{d["stats"]["video"]["seconds"]:.2f} {cuts}')
PY
)
    printf '%-20s %9.1f %9.1f %9.1f | %8.2f %8.2f | %7s %6.0f %6.0f | %11s\n' "$(basename "$f") #$i" "${s% *}" "${a% *}" "${w% *}" \
      "$(python3 -c "print(${s% *}/${a% *})")" "$(python3 -c "print(${s% *}/${w% *})")" "${stats%% *}" \
      "$(python3 -c "print(${s#* }/1024)")" "$(python3 -c "print(${w#* }/1024)")" "${stats#* }"
  done
done
