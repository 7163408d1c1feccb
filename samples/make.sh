#!/usr/bin/env bash
# Makes test media with known text: espeak-ng speech in several voices, put in mp4 / mkv / webm
# containers and as wav / flac / mp3, plus silence, a video without audio, and broken files.
# Output goes to samples/out/ (git-ignored); each clip's reference text is beside it as .txt.
#
#   samples/make.sh            # the test set (about 20 s of work)
#   samples/make.sh long MIN   # one MIN-minute speech video (benchmarks), samples/out/long-MIN.mp4
#   samples/make.sh timed MIN  # a MIN-minute talk with known sentence onsets (cue benchmarks)
#   samples/slides.py DIR ...  # slide videos with rare names and terms (see its --help)
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

# timeline ID VIDEO GAP TEXT [GAP TEXT ...]: one video of sentences, each after GAP seconds of
# silence, voices rotating; each sentence's leading silence is trimmed so its onset is known.
# VIDEO is "plain" (a test pattern) or "cut:N" (the pattern, then a flat colour from the middle
# of the pause before sentence N on: a shot change). Writes ID.mp4, ID.txt (the text), ID.onsets (onset of each
# sentence, seconds, one a line) and for cut videos ID.cut (the cut's time).
timeline() {
  local id=$1 video=$2; shift 2
  local f="$out/$id.mp4"
  [ -f "$f" ] && [ -f "$out/$id.onsets" ] && return 0
  local tmp; tmp="$(mktemp -d)"
  local voices=(en-us en-gb en-us+f3 en-gb+m3) i=0 t=0 speed=${SPEED:-160} cut_at=
  : > "$tmp/list.txt"; : > "$out/$id.txt"; : > "$out/$id.onsets"
  while [ $# -ge 2 ]; do
    local gap=$1 text=$2; shift 2
    ff -f lavfi -i "anullsrc=r=16000:cl=mono" -t "$gap" -c:a pcm_s16le "$tmp/g$i.wav"
    espeak-ng -v "${voices[$((i % 4))]}" -s "$speed" -w "$tmp/raw$i.wav" "$text"
    ff -i "$tmp/raw$i.wav" -af "silenceremove=start_periods=1:start_threshold=-45dB" -ar 16000 -ac 1 \
      -c:a pcm_s16le "$tmp/s$i.wav"
    [ "$video" = "cut:$((i + 1))" ] && cut_at=$(python3 -c "print(round($t + $gap / 2, 3))")
    t=$(python3 -c "print(round($t + $gap, 3))")
    echo "$t" >> "$out/$id.onsets"
    printf '%s ' "$text" >> "$out/$id.txt"
    local d; d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$tmp/s$i.wav")
    t=$(python3 -c "print(round($t + $d, 3))")
    printf "file '%s'\nfile '%s'\n" "$tmp/g$i.wav" "$tmp/s$i.wav" >> "$tmp/list.txt"
    i=$((i + 1))
  done
  ff -f concat -safe 0 -i "$tmp/list.txt" -af "apad=pad_dur=1.5" "$tmp/all.wav"
  local dur; dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$tmp/all.wav")
  case "$video" in
    plain) ff -f lavfi -i "testsrc=size=320x240:rate=25:duration=$dur" -i "$tmp/all.wav" -shortest \
      -c:v libx264 -preset ultrafast -c:a aac -ar 48000 -ac 2 "$f" ;;
    cut:*) local at=$cut_at
      ff -f lavfi -i "testsrc=size=320x240:rate=25:duration=$at" \
        -f lavfi -i "color=c=navy:size=320x240:rate=25:duration=$(python3 -c "print($dur - $at)")" \
        -i "$tmp/all.wav" -filter_complex "[0:v][1:v]concat=n=2:v=1:a=0[v]" -map "[v]" -map 2:a \
        -c:v libx264 -preset ultrafast -c:a aac -ar 48000 -ac 2 "$f"
      echo "$at" > "$out/$id.cut" ;;
  esac
  rm -rf "$tmp"
}

make_cue_set() {
  # Speech after 8 s of silence, then short sentences with pauses: each should be one cue
  # starting at its onset.
  timeline timing plain \
    8.0 "The museum opens at nine." \
    2.0 "Tickets are sold at the door." \
    1.6 "Please leave your coat in the hall." \
    3.0 "The first room holds old maps of the coast." \
    1.8 "Next to it you will find the ship models." \
    2.5 "Photographs are allowed without a flash." \
    1.7 "The cafe closes an hour before the museum." \
    2.2 "We hope you enjoy your visit."
  # Two sentences with a shot change in the pause between them.
  timeline cut cut:2 \
    1.0 "The storm arrived late in the evening and the boats stayed in the harbour." \
    0.6 "By morning the sky was clear again and the fishermen went back to sea."
  # The same speech under a bed of notes as loud as the voice (speech under music must stay).
  if [ ! -f "$out/overmusic.mp4" ]; then
    ff -i "$out/cut.mp4" -f lavfi -i "aevalsrc='0.25*sin(2*PI*(262+131*floor(mod(t*2,4)))*t)+0.2*sin(2*PI*(392+98*floor(mod(t*3,3)))*t)+0.05*(random(0)-0.5)':s=48000:d=30" \
      -filter_complex "[0:a][1:a]amix=inputs=2:duration=first:normalize=0[a]" -map 0:v -map "[a]" \
      -c:v copy -c:a aac -ar 48000 -ac 2 "$out/overmusic.mp4"
    cp "$out/cut.txt" "$out/overmusic.txt"
  fi
  # Dense speech: fast reading, few pauses (some cues cannot meet 17 characters a second).
  SPEED=290 timeline dense plain \
    0.5 "In the first year of the new programme the council repaired every bridge in the district, rebuilt the old library, opened two schools and planted more than four thousand trees along the river." \
    0.3 "Critics said the plan was far too expensive, but the numbers published last spring show that it came in under budget."
  # A phrase a blacklist would drop, spoken: it must stay.
  timeline thanks plain 0.5 "Thanks for watching, and see you next week."
  # Music without speech: a sequence of notes and chords.
  if [ ! -f "$out/music.mp4" ]; then
    ff -f lavfi -i "aevalsrc='0.3*sin(2*PI*(262+131*floor(mod(t,4)))*t)+0.2*sin(2*PI*(392+98*floor(mod(t*2,3)))*t)':s=44100:d=15" \
      -f lavfi -i "testsrc=size=320x240:rate=25:duration=15" -shortest -c:v libx264 -preset ultrafast \
      -c:a aac -ar 48000 -ac 2 "$out/music.mp4"
  fi
}

# Broken time: the cue-test talk (timing.mp4, sentences at known onsets) as it arrives damaged:
# gaps/corrupt.mp4 (2 s of audio packets in the pause before the fourth sentence overwritten
# with garbage: the decoder drops them), gaps/jump.mkv (audio and video timestamps jump 3 s
# forward at 25 s, as a broadcast capture's after an encoder restart; clean.mkv is the same
# encode without the jump), gaps/late.mkv (the audio track starts 2 s after the video). Each
# has a .event file: "AT SHIFT CLEAN": from AT seconds on, cues belong SHIFT seconds later than
# in the file CLEAN.
make_gap_set() {
  local d="$out/gaps"
  [ -f "$d/late.event" ] && return 0
  mkdir -p "$d"
  python3 "$here/corrupt.py" "$out/timing.mp4" "$d/corrupt.mp4" 18.2 20.2 >/dev/null
  echo "18.2 0 ../timing.mp4" > "$d/corrupt.event"
  local enc=(-c:v libx264 -preset ultrafast -c:a aac -ar 48000 -ac 2)
  ff -i "$out/timing.mp4" "${enc[@]}" "$d/clean.mkv"
  ff -i "$out/timing.mp4" -af "asetpts='if(gte(T,25),PTS+3/TB,PTS)'" -vf "setpts='if(gte(T,25),PTS+3/TB,PTS)'" \
    "${enc[@]}" "$d/jump.mkv"
  echo "25 3 clean.mkv" > "$d/jump.event"
  ff -i "$d/clean.mkv" -itsoffset 2 -i "$d/clean.mkv" -map 0:v -map 1:a -c copy "$d/late.mkv"
  echo "0 2 clean.mkv" > "$d/late.event"
}

# cut_video OUT AUDIO HEIGHT GOP CUTS...: video of HEIGHT lines (16:9, 25 fps) cut at CUTS
# (seconds, on frame boundaries) into scenes of moving test patterns of different colours and a
# static one, under AUDIO's sound. GOP "keys": keyframes forced at the cuts (as an encoder's
# scene-cut detection puts them); "fixed": one every 2 s and none at the cuts (as streaming
# encoders with fixed GOPs produce); "auto": x264's defaults. DISSOLVE (one of CUTS): the
# pictures change there by a dissolve over the second before it, not a cut. Writes OUT and OUT's
# .cuts (the cut times, one a line; a dissolve is none).
cut_video() {
  local f=$1 audio=$2 height=$3 gop=$4; shift 4
  [ -f "$f" ] && [ -f "${f%.*}.cuts" ] && return 0
  local w=$((height * 16 / 9 / 2 * 2)) dur inputs=() graph="" t=0 i=0
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$audio")
  # Scenes, each unlike the one before (an encoder cannot predict a cut from the shot before
  # it): moving test patterns, a cellular automaton, a fractal, static bars; the last two are
  # black and white alike (only their layout differs). The automata are seeded: the same clips
  # every time. CUT_SCENES (space-separated) replaces them.
  local lo=$((height / 4 / 2 * 2))
  local up="scale=${w}:${height}:flags=neighbor"
  local scenes=("testsrc2" "life=mold=10:ratio=0.3:life_color=white:death_color=black:seed=1@lo"
    "testsrc2,hue=h=120:s=1.5" "smptehdbars,drawgrid=w=64:h=64:t=2:c=white@0.5" "mandelbrot@lo"
    "testsrc2,hflip,vflip" "testsrc2,hue=h=240,eq=brightness=-0.2"
    "life=mold=10:ratio=0.3:life_color=white:death_color=black:seed=5@lo"
    "cellauto=rule=30:random_fill_ratio=0.5:seed=1@lo")
  [ -n "${CUT_SCENES:-}" ] && read -r -a scenes <<< "$CUT_SCENES"
  # The streams concatenated, and how long each is (a scene, or two joined by a dissolve).
  local joined=() lengths=()
  for end in "$@" "$dur"; do
    local d; d=$(python3 -c "print(round($end - $t, 3))")
    # A scene dissolved in starts a second early, over the end of the one before.
    [ "$t" = "${DISSOLVE:-}" ] && d=$(python3 -c "print(round($d + 1, 3))")
    local src=${scenes[$((i % ${#scenes[@]}))]}
    local gen=${src%%,*} rest="" size="${w}x${height}"
    [ "$gen" != "$src" ] && rest=",${src#*,}"
    # "@lo": generated at a quarter of the height and scaled up (slow generators).
    if [ "${gen%@lo}" != "$gen" ]; then gen=${gen%@lo}; size="$((lo * 16 / 9 / 2 * 2))x$lo"; rest="$rest,$up"; fi
    case "$gen" in *=*) gen="$gen:" ;; *) gen="$gen=" ;; esac
    inputs+=(-t "$d" -f lavfi -i "${gen}size=$size:rate=25")
    graph+="[$i:v]null$rest[v$i];"
    if [ "$t" = "${DISSOLVE:-}" ]; then
      local k=$((${#joined[@]} - 1)) off
      off=$(python3 -c "print(round(${lengths[$k]} - 1, 3))")
      graph+="[${joined[$k]}][v$i]xfade=transition=fade:duration=1:offset=$off[x$i];"
      joined[k]="x$i"; lengths[k]=$(python3 -c "print(round($off + $d, 3))")
    else
      joined+=("v$i"); lengths+=("$d")
    fi
    t=$end; i=$((i + 1))
  done
  for l in "${joined[@]}"; do graph+="[$l]"; done
  graph+="concat=n=${#joined[@]}:v=1:a=0[v]"
  local enc=(-c:v libx264 -preset veryfast -pix_fmt yuv420p)
  case "$gop" in
    keys) enc+=(-force_key_frames "$(IFS=,; echo "$*")") ;;
    fixed) enc+=(-g 50 -keyint_min 50 -sc_threshold 0) ;;
    auto) ;; # the encoder's own choice: x264's scene-cut detection and a keyframe every 10 s
    auto-*) enc+=(-g "${gop#auto-}") ;; # the same, a keyframe every N frames
  esac
  ff "${inputs[@]}" -i "$audio" -filter_complex "$graph" -map "[v]" -map "$i:a" "${enc[@]}" \
    -c:a aac -ar 48000 -ac 2 -shortest "$f.part.mp4"
  mv "$f.part.mp4" "$f"
  for c in "$@"; do [ "$c" = "${DISSOLVE:-}" ] || echo "$c"; done > "${f%.*}.cuts"
}

# phone_h264 HEIGHT: x264's options for H.264 as phones and live encoders write it, into the
# array `phone`: a keyframe every 30 frames and none at the cuts, 12 Mb/s capped at 16 at 1080p
# (scaled with HEIGHT).
phone_h264() {
  local rate=$((12 * $1 / 1080))M cap=$((16 * $1 / 1080))M
  phone=(-c:v libx264 -preset veryfast -g 30 -keyint_min 30 -sc_threshold 0 -b:v "$rate" -maxrate "$cap" -bufsize "$cap")
}

# handheld_video OUT AUDIO HEIGHT: one continuous shot as a phone records it in the hand, under
# AUDIO's sound: a detailed picture (a fractal over a test pattern, twice the frame's size) panned
# slowly with a shake, with sensor noise, encoded as phones write H.264 (a keyframe every 30
# frames and none elsewhere, the bitrate capped at 12 Mb/s at 1080p: keyframes of some 450 kB,
# and bursts where the motion changes). No cut: OUT's .cuts is empty.
handheld_video() {
  local f=$1 audio=$2 height=$3
  [ -f "$f" ] && [ -f "${f%.*}.cuts" ] && return 0
  local w=$((height * 16 / 9 / 2 * 2)) dur phone
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$audio")
  phone_h264 "$height"
  local pan="crop=$w:$height:x='$((w / 2))+$((w * 9 / 25))*sin(t/4)+$((w / 77))*sin(t*5.3)'"
  pan+=":y='$((height / 2))+$((height * 5 / 18))*sin(t/6)+$((height / 60))*sin(t*7.1)'"
  ff -f lavfi -i "mandelbrot=size=${w}x${height}:start_scale=0.3:rate=1" -f lavfi -i "testsrc2=size=${w}x${height}" \
    -filter_complex "[0][1]blend=all_mode=overlay,scale=$((w * 2)):$((height * 2))" -frames:v 1 "$f.still.png"
  ff -loop 1 -framerate 25 -i "$f.still.png" -i "$audio" -map 0:v -map 1:a -t "$dur" \
    -vf "$pan,noise=alls=6:allf=t,format=yuv420p" "${phone[@]}" -c:a aac -ar 48000 -ac 2 -shortest "$f.part.mp4"
  rm -f "$f.still.png"
  mv "$f.part.mp4" "$f"
  : > "${f%.*}.cuts"
}

# Real-world video for the tests: the cue-test talk (timing.mp4) under 1080p video with eight
# cuts (some a frame or two from a sentence's onset, some mid-sentence, some in pauses), with
# keyframes at the cuts and with a fixed GOP; and the slide videos at 1080p.
make_video_set() {
  local d="$out/video"
  mkdir -p "$d"
  local cuts=(4.0 11.96 17.0 20.44 27.0 30.6 36.0 39.6)
  cut_video "$d/cuts-keys.mp4" "$out/timing.mp4" 1080 keys "${cuts[@]}"
  cut_video "$d/cuts-fixed.mp4" "$out/timing.mp4" 1080 fixed "${cuts[@]}"
  # One handheld shot, no cut, as phones record it.
  handheld_video "$d/handheld.mp4" "$out/timing.mp4" 1080
  # A fractal zoomed into for 12 s between two cuts: its colours cycle and x264 keys a scene cut
  # inside it (at 10.72 s), where there is none; and with a keyframe every 4 s, some on the beat
  # inside it.
  local zoom="testsrc2 mandelbrot@lo testsrc2,hue=h=120:s=1.5"
  CUT_SCENES="$zoom" cut_video "$d/zoom-auto.mp4" "$out/timing.mp4" 1080 auto 3.0 15.0
  CUT_SCENES="$zoom" cut_video "$d/zoom-beat.mp4" "$out/timing.mp4" 1080 auto-100 3.0 15.0
  # With a keyframe every 4 s, a cut at 10.8 s on that beat, after a moving test pattern; and the
  # same pattern dissolved over 8.0-9.0 s into a cellular automaton (rule 30) instead: x264 keys
  # no cut inside the dissolve, and the keyframe on the beat after it (10.8 s) shows the automaton.
  local life="life=mold=10:ratio=0.3:life_color=white:death_color=black:seed=5@lo" pattern="testsrc2,hue=h=120:s=1.5"
  CUT_SCENES="$life $pattern smptehdbars" cut_video "$d/beat-cut.mp4" "$out/timing.mp4" 1080 auto-100 3.0 10.8
  CUT_SCENES="$life $pattern cellauto=rule=30:random_fill_ratio=0.5:seed=1@lo" DISSOLVE=9.0 \
    cut_video "$d/dissolve.mp4" "$out/timing.mp4" 1080 auto-100 3.0 9.0
  # A broadcast recording in MPEG-TS (cuts-fixed.mp4 at 360p, a keyframe every 2 s), and two of
  # it joined end to end with `cat`, as archives join recordings: the second's timestamps start
  # over.
  if [ ! -f "$d/joined.ts" ]; then
    ff -i "$d/cuts-fixed.mp4" -vf scale=640:360 -c:v libx264 -preset veryfast -g 50 -keyint_min 50 \
      -sc_threshold 0 -c:a aac -ar 48000 -ac 2 -f mpegts "$d/recording.ts"
    cat "$d/recording.ts" "$d/recording.ts" > "$d/joined.ts.part"
    mv "$d/joined.ts.part" "$d/joined.ts"
  fi
  python3 "$here/slides.py" "$out/slides-1080" --count 3 --snr 10 --height 1080
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
  # Slides with rare names and terms, said in 10 dB pink noise (on-screen text tests).
  python3 "$here/slides.py" "$out/slides" --count 3 --snr 10
  make_cue_set
  make_gap_set
  make_video_set
}

# timed MIN: a MIN-minute talk of varied sentences and pauses with known onsets (benchmarks of
# cue timing and rules): samples/out/timed-MIN.mp4, .txt, .onsets.
make_timed() {
  local min=$1 args=() i=0 total=0
  local sentences=(
    "Good evening, and welcome to the harbour lecture series."
    "Tonight we look at how the lighthouse on Gull Point was built, and why it took eleven years."
    "Why so long?"
    "The first engineer, Margaret Collins, wanted a tower of granite, but the quarry closed in the second winter."
    "Stone had to come by ship from the north, and ships could only land in calm weather."
    "So the workers waited."
    "Some of them left for the city; others married and stayed, and their grandchildren still live here."
    "In eighteen sixty two the lamp was lit for the first time."
    "It burned whale oil, then paraffin, and since nineteen fifty it has run on electricity."
    "Thank you all for coming."
    "After the break, Doctor James Hunter will show photographs from the town archive."
    "Please take a programme from the table by the door, and do ask questions at the end."
  )
  local gaps=(0.8 0.4 1.6 0.5 0.3 2.5 0.6 1.2 0.4 3.0 0.7 1.8)
  while [ "$total" -lt $((min * 60)) ]; do
    args+=("${gaps[$((i % ${#gaps[@]}))]}" "${sentences[$((i % ${#sentences[@]}))]}")
    # About 3.5 s a sentence at 165 words a minute plus the gap.
    total=$((total + 5)); i=$((i + 1))
  done
  SPEED=165 timeline "timed-$min" plain "${args[@]}"
}

case "${1:-set}" in
  set) make_set ;;
  timed) make_timed "${2:?minutes}" ;;
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
  video)
    # video MIN HEIGHT: the MIN-minute talk (long MIN) under HEIGHT-line video cut every 10 to 15 s,
    # x264's own keyframes (benchmarks of HD input): samples/out/video-MIN-HEIGHTp.mp4, .txt, .cuts.
    min=${2:?usage: samples/make.sh video MINUTES HEIGHT}; height=${3:?usage: samples/make.sh video MINUTES HEIGHT}
    bash "$0" long "$min"
    f="$out/video-$min-${height}p.mp4"
    cuts=$(python3 -c "
t, out = 7.0, []
while t < $min * 60 - 5:
    out.append(round(round(t * 25) / 25, 2)); t += 10 + (len(out) * 7919 % 6)
print(' '.join(map(str, out)))")
    # shellcheck disable=SC2086
    cut_video "$f" "$out/long-$min.mp4" "$height" auto $cuts
    cp "$out/long-$min.mp4.txt" "$f.txt"
    ;;
  handheld)
    # handheld MIN HEIGHT: the MIN-minute talk (long MIN) under one HEIGHT-line handheld shot as a
    # phone records it (no cut; benchmarks of HD input): samples/out/handheld-MIN-HEIGHTp.mp4,
    # .txt, .cuts (empty).
    min=${2:?usage: samples/make.sh handheld MINUTES HEIGHT}; height=${3:?usage: samples/make.sh handheld MINUTES HEIGHT}
    bash "$0" long "$min"
    f="$out/handheld-$min-${height}p.mp4"
    handheld_video "$f" "$out/long-$min.mp4" "$height"
    cp "$out/long-$min.mp4.txt" "$f.txt"
    ;;
  video-codec)
    # video-codec MIN HEIGHT CODEC: that clip's video encoded again as other encoders write it, the
    # audio kept (Opus in WebM): hevc10 (x265 ultrafast, 10-bit, as phones record), fixed (x264, a
    # keyframe every 30 frames and none at the cuts, the bitrate capped at 12 Mb/s at 1080p, as
    # phones and live encoders write H.264), vp9 (libvpx realtime) or av1 (SVT-AV1 preset 12), as
    # video sites serve: samples/out/video-MIN-HEIGHTp-CODEC.mp4 or .webm, with the same .txt and
    # .cuts.
    min=${2:?usage: samples/make.sh video-codec MINUTES HEIGHT CODEC}; height=${3:?}; codec=${4:?}
    bash "$0" video "$min" "$height"
    src="$out/video-$min-${height}p.mp4"
    case "$codec" in
      hevc10) f="${src%.mp4}-$codec.mp4"; enc=(-c:v libx265 -preset ultrafast -pix_fmt yuv420p10le -x265-params log-level=error -c:a copy) ;;
      fixed) f="${src%.mp4}-$codec.mp4"; phone_h264 "$height"; enc=("${phone[@]}" -c:a copy) ;;
      vp9) f="${src%.mp4}-$codec.webm"; enc=(-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 3M -row-mt 1 -c:a libopus -b:a 96k) ;;
      av1) f="${src%.mp4}-$codec.webm"; enc=(-c:v libsvtav1 -preset 12 -crf 40 -svtav1-params verbosity=0 -c:a libopus -b:a 96k) ;;
      *) echo "samples/make.sh video-codec: CODEC is hevc10, fixed, vp9 or av1" >&2; exit 2 ;;
    esac
    if [ ! -f "$f" ]; then
      ff -i "$src" "${enc[@]}" "$f.part.${f##*.}"
      mv "$f.part.${f##*.}" "$f"
    fi
    cp "$src.txt" "$f.txt"
    cp "${src%.*}.cuts" "${f%.*}.cuts"
    ;;
  *) echo "usage: samples/make.sh [set | long MINUTES | timed MINUTES | video MINUTES HEIGHT | video-codec MINUTES HEIGHT CODEC | handheld MINUTES HEIGHT]" >&2; exit 2 ;;
esac
