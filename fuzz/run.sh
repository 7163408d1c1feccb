#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 60), on the nightly toolchain
# with cargo-fuzz, from the committed seeds (fuzz/seeds/TARGET, read only) into a working corpus
# (fuzz/corpus/TARGET, kept between runs, git-ignored). A crash leaves its input in
# fuzz/artifacts/TARGET/ and stops that target; the script goes on and exits 1 at the end. Each
# target's total run time is added up in fuzz/hours.tsv (target, seconds, runs, date).
#   bash fuzz/run.sh                  # each target a minute
#   SECONDS_EACH=3600 bash fuzz/run.sh manifest cues
# Then, with no targets named, a small run of the media mutation harness (MEDIA_CASES, default 200;
# 0 for none): fuzz/media.py, mutated real media through the whole pipeline (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
[ -f ../models/tiny.en/tokenizer.json ] || ../models/fetch.sh tiny.en   # context_text's tokenizer
each=${SECONDS_EACH:-60}
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  log="$(mktemp)"
  # -rss_limit_mb: an input that makes a parser allocate past it is a finding too.
  # Never pause a fuzzer (SIGSTOP) to free the cores for a while: libFuzzer counts the pause
  # into the unit it was running, and reports a timeout or a slow unit that is none (every such
  # input of 2026-12-02 replayed in milliseconds). Stop it with SIGINT, and run it again later:
  # its time so far is kept, marked "stopped".
  if cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$each" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  elif grep -q 'libFuzzer: run interrupted' "$log"; then
    result=stopped
  else
    result=FAILED
    failed+=("$t")
  fi
  runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  # A crash stops the target early: its time is its runs at its rate, not what was asked.
  secs=$each
  [ "$result" = ok ] || secs=$(awk -v n="${runs:-0}" -v r="${rate:-0}" 'BEGIN { print (r > 0 ? int(n / r) : 0) }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$secs" "${runs:-0}" "$(date -u +%F)" "$result" >> hours.tsv
  echo "$t: $result, ${runs:-?} runs in ${secs} s"
  [ "$result" = FAILED ] && tail -n 30 "$log"
  rm -f "$log"
done
media=${MEDIA_CASES:-200}
if [ "$#" -eq 0 ] && [ "$media" -gt 0 ]; then
  (cd .. && cargo build --release --quiet --bins)
  python3 media.py --cases "$media" --seed "${MEDIA_SEED:-1}" --work media-work || failed+=(media)
fi
echo "total per target (seconds):"
awk -F'\t' '{ s[$1] += $2 } END { for (t in s) printf "  %s %d\n", t, s[t] }' hours.tsv | sort
[ "${#failed[@]}" -eq 0 ] || { echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)"; exit 1; }
