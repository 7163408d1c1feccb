#!/usr/bin/env bash
# Live benchmark: the 39 English clips of ../shared/data/real joined into 5 minutes of real speech
# (a second of silence between clips), played in real time (`ffmpeg -re`, AAC in MPEG-TS on a
# pipe, each 64 ms AAC frame sent as it is encoded, as a live encoder sends; TS_SENDER=buffered:
# FFmpeg's muxer defaults, which hold 0.3-0.6 s of audio in the sender) into
# `subtitle live - --events -`, measured from outside the process
# (benches/live_measure.py): latency from each reference word's end to the arrival of its
# committed word (p50, p90, p95, max), from a cue's last word's end to the cue's arrival, WER of
# the committed text against the reference and against our offline run of the same stream
# (tiny.en, beam 5, on mix.ts: the AAC stream the player sends, saved as a file), CPU use and peak
# RSS. In the same run, alternately: whisper_streaming (LocalAgreement-2 on faster-whisper 1.2.1,
# int8, its default 1 s chunks and segment trimming) on the same audio (the stream's, decoded:
# mix-stream.wav), played by its own real-time simulation.
#
#   WS=/path/to/whisper_streaming bash benches/live.sh      # its source (ufal/whisper_streaming)
#   RUNS=2 SUB_ARGS="--beam 5" bash benches/live.sh          # our runs with other options
#   OVERLOAD=1 ...    # also: base, beam 5, one thread (the model over 2x slower than real time)
#   TWO=1 ...         # also: two streams at once over UDP into one process (each stream's figures)
#   HOUR=60 ...       # also: memory over 60 minutes of stream (mix.wav looped, fed as fast as it is
#                     # read: the same passes as in real time, every 2 s of audio), RSS at minute 1 vs peak
#   REPLAY="300 450 600" ...  # also: the mix fed as fast as it is read with a pass every 300, 450,
#                     # 600 ms of stream: the same passes every run (WER only; for commit rules)
#   PEER_AUDIO=mix.wav ...  # whisper_streaming on the WAV before AAC (as before 2026-12-07)
#   MIX_SEED=2 OUT=/tmp/live2 ...  # another mix of the same clips, in an order shuffled by the seed
#                     # (a fresh OUT: other buffers and windows, other draws of the same speech)
#   VAC=1 ...         # also whisper_streaming with its voice-activity controller (needs torch and
#                     # a download of Silero VAD: not possible offline)
#
# Reference word times: the reference text aligned to an offline run's timed words (base, beam 5).
# whisper_streaming is not part of this repository: fetch it beside the project and give its
# directory as WS; without WS only our runs are measured.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release --locked --quiet --bin subtitle
bin=${BIN:-target/release/subtitle}
models/fetch.sh tiny.en >/dev/null
models/fetch.sh base >/dev/null
ws=${WS:-}
if [ -n "$ws" ]; then
  [ -f "$ws/whisper_online.py" ] || { echo "WS=$ws: no whisper_online.py there" >&2; exit 2; }
  source benches/peer_env.sh
fi
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
m=benches/live_measure.py
[ -f "$out/mix.wav" ] || python3 $m mix "$out" ../shared/data/real ${MIX_SEED:-}
[ -f "$out/ref_words.json" ] || {
  "$bin" "$out/mix.wav" --model base -o "$out/offline-base.json" -q
  python3 $m refwords "$out" "$out/offline-base.json"
}
[ -f "$out/offline.json" ] || "$bin" "$out/mix.wav" -o "$out/offline.json" -q
[ -f "$out/mix-stream.wav" ] || python3 $m stream "$out"
[ -f "$out/offline-stream.json" ] || "$bin" "$out/mix.ts" -o "$out/offline-stream.json" -q
peer_audio="$out/${PEER_AUDIO:-mix-stream.wav}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $("$bin" --version); out: $out"
names=()
for i in $(seq "${RUNS:-1}"); do
  # shellcheck disable=SC2086
  python3 $m ours "$out" "subtitle#$i" -- "$bin" live - --events - -q ${SUB_ARGS:-}
  names+=("subtitle#$i")
  if [ -n "$ws" ]; then
    python3 $m peer "$out" "whisper_streaming#$i" -- "$venv/bin/python" benches/live_peer.py "$ws" "$ct2/tiny.en" "$peer_audio"
    names+=("whisper_streaming#$i")
    if [ -n "${VAC:-}" ]; then
      python3 $m peer "$out" "ws+vac#$i" -- "$venv/bin/python" benches/live_peer.py "$ws" "$ct2/tiny.en" "$peer_audio" --vac
      names+=("ws+vac#$i")
    fi
  fi
  if [ -n "${OVERLOAD:-}" ]; then
    python3 $m ours "$out" "overload#$i" -- "$bin" live - --events - -q --model base --beam 5 --threads 1
    names+=("overload#$i")
  fi
  if [ -n "${TWO:-}" ]; then
    python3 $m two "$out" "two#$i" -- "$bin" live udp://127.0.0.1:57001 udp://127.0.0.1:57002 --events - -q
    names+=("two#$i.1" "two#$i.2")
  fi
done
python3 $m report "$out" "${names[@]}"
for step in ${REPLAY:-}; do
  # shellcheck disable=SC2086
  python3 $m replay "$out" "replay-$step" "$step" -- "$bin" live - --events - -q ${SUB_ARGS:-}
done
if [ -n "${HOUR:-}" ]; then
  python3 $m hour "$out" "$HOUR" -- "$bin" live - --events - -q
fi
