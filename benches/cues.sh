#!/usr/bin/env bash
# Prints how well cues keep the subtitle rules and follow speech, on generated talks with known
# sentence onsets (samples/make.sh timed N), on music and on silence; and, for comparison, how
# Whisper's raw segments (what whisper.cpp and faster-whisper write as cues) fare on the same run.
#
#   bash benches/cues.sh              # the 5-minute talk, tiny.en beam 5
#   MIN=20 MODEL=base bash benches/cues.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
min=${MIN:-5}; model=${MODEL:-tiny.en}; beam=${BEAM:-5}; profile=${PROFILE:-netflix-en}
cargo build --release --locked --quiet --bins --examples
bin=target/release/subtitle
models/fetch.sh "$model"
bash samples/make.sh >/dev/null
bash samples/make.sh timed "$min"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
f=samples/out/timed-$min.mp4
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "input: $f ($min min, $(wc -l < samples/out/timed-$min.onsets) sentences), $model beam $beam, profile $profile"
"$bin" "$f" -o "$out/run.json" --model "$model" --beam "$beam" --profile "$profile" -q
python3 - "$out" "samples/out/timed-$min.onsets" <<'PY'
import json, sys
out, onsets_path = sys.argv[1], sys.argv[2]
d = json.load(open(f"{out}/run.json"))
def ts(s):
    ms = round(s * 1000)
    return f"{ms//3600000:02}:{ms//60000%60:02}:{ms//1000%60:02},{ms%1000:03}"
# Our cues, and Whisper's raw segments as cues (the way other tools write them).
with open(f"{out}/run.srt", "w") as f:
    for i, c in enumerate(d["cues"], 1):
        f.write(f"{i}\n{ts(c['start'])} --> {ts(c['end'])}\n{c['text']}\n\n")
with open(f"{out}/raw.srt", "w") as f:
    for i, s in enumerate(d["segments"], 1):
        f.write(f"{i}\n{ts(s['start'])} --> {ts(s['end'])}\n{s['text'].strip()}\n\n")
onsets = [float(x) for x in open(onsets_path)]
starts = [c["start"] for c in d["cues"]]
near = sum(1 for o in onsets if min(abs(s - o) for s in starts) <= 0.25)
print(f"sentence onsets with a cue starting within 0.25 s: {near}/{len(onsets)} = {100*near/len(onsets):.1f}%")
errs = sorted(min(abs(s - o) for s in starts) for o in onsets)
print(f"onset error: median {1000*errs[len(errs)//2]:.0f} ms, 90th pct {1000*errs[int(len(errs)*0.9)]:.0f} ms")
PY
for kind in run raw; do
  report=$("$bin" check "$out/$kind.srt" --profile "$profile" --fps 25 | tail -1 || true)
  echo "$kind: ${report#*: }"
done
wer=$(target/release/examples/wer "samples/out/timed-$min.txt" "$out/run.srt")
echo "WER: $wer%"
for f in music silence; do
  "$bin" "samples/out/$f.mp4" -o "$out/$f.srt" --model "$model" --beam "$beam" -q
  echo "$f.mp4: $(grep -c -- '-->' "$out/$f.srt" || true) cues"
done
