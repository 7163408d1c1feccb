#!/usr/bin/env bash
# Makes test media with known text: espeak-ng speech in several voices, put in mp4 / mkv / webm
# containers and as wav / flac / mp3, plus silence, a video without audio, and broken files.
# Output goes to samples/out/ (git-ignored); each clip's reference text is beside it as .txt.
#
#   samples/make.sh            # the test set (about 20 s of work)
#   samples/make.sh long MIN   # one MIN-minute speech video (benchmarks), samples/out/long-MIN.mp4
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"
mkdir -p "$out"
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

speak() { # id voice speed text
  local id=$1 voice=$2 speed=$3 text=$4
  [ -f "$out/$id.wav" ] && [ "$(cat "$out/$id.txt" 2>/dev/null)" = "$text" ] && return 0
  espeak-ng -v "$voice" -s "$speed" -w "$out/$id.raw.wav" "$text"
  # 0.5 s lead and tail silence, 16-bit 22.05 kHz mono as espeak writes it
  ff -i "$out/$id.raw.wav" -af "adelay=500,apad=pad_dur=0.5" "$out/$id.wav"
  rm -f "$out/$id.raw.wav"
  printf '%s' "$text" > "$out/$id.txt"
}

video() { # id.wav container vcodec acodec
  local id=$1 ext=$2 vc=$3 ac=$4
  local dur
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$out/$id.wav")
  ff -f lavfi -i "testsrc=size=320x240:rate=25:duration=$dur" -i "$out/$id.wav" -shortest \
    -c:v "$vc" -c:a "$ac" -ar 48000 -ac 2 "$out/$id.$ext"
}

make_set() {
  speak s1 en-us 160 "The quick brown fox jumps over the lazy dog while the farmer watches from the gate."
  speak s2 en-gb 150 "Please remember to bring your umbrella because the weather forecast promises heavy rain this afternoon."
  speak s3 en-us+f3 170 "Scientists discovered a new species of butterfly in the mountains of South America last year."
  speak s4 en-gb+m3 140 "Our train leaves the station at noon, so we should pack our bags and eat breakfast early."
  video s1 mp4 libx264 aac
  video s2 mkv libx264 libopus
  video s3 webm libvpx-vp9 libopus
  ff -i "$out/s4.wav" "$out/s4.flac"
  ff -i "$out/s1.wav" -c:a libmp3lame -b:a 64k "$out/s1.mp3"
  ff -f lavfi -i "anullsrc=r=44100:cl=stereo" -f lavfi -i "testsrc=size=320x240:rate=25" -t 12 \
    -c:v libx264 -c:a aac -shortest "$out/silence.mp4"
  ff -f lavfi -i "testsrc=size=320x240:rate=25" -t 3 -c:v libx264 "$out/no-audio.mp4"
  : > "$out/empty.mp4"
  head -c 20000 "$out/s1.mp4" > "$out/truncated.mp4"
  printf 'this is not a video\n' > "$out/text.mp4"
}

case "${1:-set}" in
  set) make_set ;;
  long)
    min=${2:?minutes}
    f="$out/long-$min.mp4"
    [ -f "$f" ] && exit 0
    # Sentences of varied text, in rotating voices, each followed by a short pause.
    sentences=(
      "The history of the town begins with a small market by the river, where farmers sold grain and wool."
      "Over the centuries the market grew into a busy port, and merchants from distant cities built warehouses along the water."
      "In the winter of the great storm, the harbour froze and the ships stayed locked in the ice for many weeks."
      "Children walked across the frozen bay to school, and the old fishermen told stories about the winters of their youth."
      "When spring arrived the ice broke with a sound like thunder, and the whole town gathered on the shore to watch."
      "Today the warehouses hold museums, cafes and small workshops where artists make pottery, furniture and glass."
      "Visitors can take a boat along the coast to see the lighthouse, which still guides ships through the narrow channel."
      "The library keeps letters written by sailors to their families, describing storms, strange islands and long months at sea."
    )
    voices=(en-us en-gb en-us+f3 en-gb+m3)
    tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
    : > "$tmp/list.txt"; : > "$f.txt"
    total=0; i=0
    while [ "$total" -lt $((min * 60)) ]; do
      s=${sentences[$((i % ${#sentences[@]}))]}; v=${voices[$((i % ${#voices[@]}))]}
      espeak-ng -v "$v" -s 155 -w "$tmp/$i.wav" "$s"
      ff -i "$tmp/$i.wav" -af "apad=pad_dur=0.7" -ar 16000 -ac 1 "$tmp/p$i.wav"
      echo "file '$tmp/p$i.wav'" >> "$tmp/list.txt"
      printf '%s ' "$s" >> "$f.txt"
      d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$tmp/p$i.wav")
      total=$(python3 -c "print(int($total + $d + 0.999))")
      i=$((i + 1))
    done
    ff -f concat -safe 0 -i "$tmp/list.txt" "$tmp/all.wav"
    ff -f lavfi -i "testsrc=size=320x240:rate=25" -i "$tmp/all.wav" -shortest -t $((min * 60)) \
      -c:v libx264 -preset ultrafast -c:a aac -ar 48000 -ac 2 "$f"
    ;;
  *) echo "usage: samples/make.sh [set | long MINUTES]" >&2; exit 2 ;;
esac
