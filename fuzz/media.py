#!/usr/bin/env python3
"""Media mutation harness: real speech in every container users have (mp4, mkv, webm, ts, avi,
wav, flac, mp3, ogg), mutated (bit flips, truncation, chunk swaps, zeroed ranges, absurd header
values, repeated and inserted bytes), run through the whole pipeline with a time and memory limit.

Each case is made from (seed, case number) alone, so a failure replays:
    python3 fuzz/media.py --cases 5000 --seed 1            # the run (fuzz/media.sh wraps it)
    python3 fuzz/media.py --seed 1 --replay 1234           # rebuild case 1234 and run it alone

What must hold, and what is counted:
  panics    a panic anywhere (a batch item's "internal error: panicked", a run's exit 101)
  crashes   the process killed by a signal (a crash inside FFmpeg or ours)
  hangs     an item stopped at the per-file time limit, or the whole run past its wall limit
  partial   an output that does not parse, an output for a failed item, a temporary file left
  memory    the peak RSS of the batch process (every case, one model) over the limit
Most cases go through `subtitle batch` over a manifest (one model load for thousands of files:
the same per-file pipeline as `subtitle FILE`); every --cli-every'th case also runs alone as
`subtitle FILE -o OUT`, where only exit 0 (with a whole output) or 2 (one line, no output) is
right.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"

# Container, ffmpeg arguments (short clips, small pictures: thousands of cases in minutes).
SEEDS = {
    "mp4": ["-c:v", "libx264", "-preset", "veryfast", "-g", "12", "-c:a", "aac", "-b:a", "48k"],
    "mkv": ["-c:v", "libx264", "-preset", "veryfast", "-g", "12", "-c:a", "libopus", "-b:a", "32k"],
    "webm": ["-c:v", "libvpx", "-b:v", "200k", "-c:a", "libvorbis", "-q:a", "2"],
    "ts": ["-c:v", "mpeg2video", "-c:a", "mp2", "-b:a", "64k"],
    "avi": ["-c:v", "mjpeg", "-q:v", "8", "-c:a", "libmp3lame", "-b:a", "48k"],
    "wav": ["-vn", "-c:a", "pcm_s16le"],
    "flac": ["-vn", "-c:a", "flac"],
    "mp3": ["-vn", "-c:a", "libmp3lame", "-b:a", "48k"],
    "ogg": ["-vn", "-c:a", "libvorbis", "-q:a", "2"],
}
FORMATS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm", "ts": "mpegts", "avi": "avi", "wav": "wav",
           "flac": "flac", "mp3": "mp3", "ogg": "ogg"}
CLIPS = ["jfk", "arctic_aew_a0001", "ldc93s1"]
ABSURD = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff",
          b"\x80\x00\x00\x00", b"\x00\x00\x00\x01", b"\xff\xff\xff\xfe"]


def make_seeds(dirpath: Path) -> list[Path]:
    """Every container from each clip: 4 s of real speech, a 160x120 picture that moves."""
    dirpath.mkdir(parents=True, exist_ok=True)
    seeds = []
    for clip in CLIPS:
        src = REAL / "mp4" / f"{clip}.mp4"
        for ext, args in SEEDS.items():
            out = dirpath / f"{clip}.{ext}"
            if not out.exists():
                video = [] if "-vn" in args else ["-f", "lavfi", "-i", "testsrc2=s=160x120:r=10"]
                maps = ["-map", "0:a:0", *(["-map", "1:v:0"] if video else [])]
                cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *video, *maps, "-t", "4",
                       "-ac", "1", *args, "-f", FORMATS[ext], str(out) + ".part"]
                subprocess.run(cmd, check=True)
                os.replace(str(out) + ".part", out)
            seeds.append(out)
    return seeds


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One to three mutations; header bytes (the first 4 KiB) are hit half the time."""
    b = bytearray(data)
    done = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        n = len(b)
        if n < 16:
            break
        pos = lambda: rng.randrange(min(n, 4096)) if rng.random() < 0.5 else rng.randrange(n)
        kind = rng.choice(["flip", "flip", "truncate", "swap", "zero", "absurd", "absurd", "repeat", "insert"])
        if kind == "flip":
            k = rng.choice([1, 2, 8, 32])
            for _ in range(k):
                i = pos()
                b[i] ^= 1 << rng.randrange(8)
            done.append(f"flip {k}")
        elif kind == "truncate":
            cut = rng.randrange(1, n)
            del b[cut:]
            done.append(f"truncate {cut}")
        elif kind == "swap":
            ln = rng.randrange(1, max(2, n // 8))
            i, j = sorted(rng.randrange(n - ln) for _ in range(2))
            if j >= i + ln:
                b[i:i + ln], b[j:j + ln] = b[j:j + ln], b[i:i + ln]
            done.append(f"swap {i} {j} {ln}")
        elif kind == "zero":
            i = pos()
            ln = rng.choice([4, 64, 1024, 16384])
            b[i:i + ln] = bytes(len(b[i:i + ln]))
            done.append(f"zero {i} {ln}")
        elif kind == "absurd":
            i = pos()
            v = rng.choice(ABSURD)
            b[i:i + len(v)] = v
            done.append(f"absurd {i} {v.hex()}")
        elif kind == "repeat":
            i = pos()
            ln = rng.randrange(1, 4096)
            chunk = bytes(b[i:i + ln])
            b[i:i] = chunk * rng.choice([2, 16])
            done.append(f"repeat {i} {ln}")
        else:
            i = pos()
            b[i:i] = rng.randbytes(rng.choice([1, 7, 100, 5000]))
            done.append(f"insert {i}")
    return bytes(b), done


def case(seeds: list[Path], seed: int, n: int, dirpath: Path) -> tuple[Path, list[str]]:
    rng = random.Random(f"{seed}:{n}")
    src = seeds[n % len(seeds)]
    data, how = mutate(src.read_bytes(), rng)
    out = dirpath / f"case-{n:05d}{src.suffix}"
    out.write_bytes(data)
    return out, [src.name, *how]


def bin_path() -> str:
    return os.environ.get("SUBTITLE_BIN", str(ROOT / "target" / "release" / "subtitle"))


def run_alone(path: Path, out: Path, timeout: float) -> dict:
    """`subtitle FILE -o OUT`: exit 0 with a whole output, or 2 with one line and no output."""
    t = time.time()
    try:
        p = subprocess.run([bin_path(), str(path), "-o", str(out), "-q"], capture_output=True, timeout=timeout,
                           cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"problem": "hang", "detail": f"over {timeout} s alone"}
    err = p.stderr.decode(errors="replace")
    left = [f.name for f in out.parent.iterdir() if f.name.startswith(f".{out.name}")]
    if p.returncode == 101 or "panicked" in err:
        return {"problem": "panic", "detail": err.strip()[-500:]}
    if p.returncode < 0:
        return {"problem": "crash", "detail": f"signal {-p.returncode}"}
    if left:
        return {"problem": "partial", "detail": f"temporary files left: {left}"}
    if p.returncode == 0:
        text = out.read_text(errors="replace") if out.exists() else None
        if text is None or not srt_ok(text):
            return {"problem": "partial", "detail": "exit 0 without a whole output"}
    elif p.returncode == 2:
        errors = [l for l in err.splitlines() if l.startswith("error:")]
        if out.exists():
            return {"problem": "partial", "detail": "failed, but wrote an output"}
        if len(errors) != 1:
            return {"problem": "unclear", "detail": f"{len(errors)} error lines: {err.strip()[-300:]}"}
    else:
        return {"problem": "exit", "detail": f"exit {p.returncode}: {err.strip()[-300:]}"}
    return {"ok": True, "exit": p.returncode, "wall_s": round(time.time() - t, 2)}


def srt_ok(text: str) -> bool:
    """Empty, or numbered blocks with a time line each (what a reader needs)."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    for i, b in enumerate(blocks, 1):
        lines = b.strip("\n").split("\n")
        if len(lines) < 2 or lines[0].strip() != str(i) or " --> " not in lines[1]:
            return False
    return True


def batch(manifest: Path, out: Path, args) -> tuple[int, float, float]:
    """Runs (and after a crash, resumes) the batch; returns (crashes, wall s, peak RSS MB)."""
    crashes = 0
    t = time.time()
    peak = 0.0
    while True:
        cmd = [bin_path(), "batch", str(manifest), "--out", str(out), "--timeout", str(args.file_timeout),
               "--retries", "0", "--jobs", str(args.jobs), "-q"]
        remaining = args.wall - (time.time() - t)
        if remaining <= 0:
            raise SystemExit("the whole run is past its wall limit: a hang")
        # The batch's own peak RSS, read from a wrapper (this process's children add up otherwise).
        wrapped = ["/usr/bin/time", "-f", "%M", "-o", str(out.parent / "rss.txt"), *cmd]
        try:
            p = subprocess.run(wrapped, capture_output=True, timeout=remaining, cwd=ROOT)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"the batch ran past {args.wall} s: a hang (see {out}/.subtitle-batch)")
        rss = (out.parent / "rss.txt").read_text().strip().splitlines()
        if rss and rss[-1].isdigit():
            peak = max(peak, int(rss[-1]) / 1024)
        status = p.returncode
        tail = p.stderr.decode(errors="replace")
        if "Command terminated by signal" in tail or status > 128:
            crashes += 1
            if crashes > 20:
                raise SystemExit("more than 20 crashes: stopping")
            continue
        return crashes, time.time() - t, peak


def ledger(out: Path) -> dict[str, dict]:
    """The last record of each item."""
    last = {}
    for f in sorted((out / ".subtitle-batch").glob("ledger-*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                last[r["id"]] = r
    return last


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=ROOT / "fuzz" / "media-work", help="seeds, cases and outputs")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--file-timeout", type=float, default=60, help="per file (hang) limit, s")
    ap.add_argument("--wall", type=float, default=4 * 3600, help="limit for the whole batch, s")
    ap.add_argument("--rss-mb", type=float, default=1500, help="memory limit of the batch process, MB")
    ap.add_argument("--cli-every", type=int, default=25, help="every Nth case also runs alone (0: none)")
    ap.add_argument("--replay", type=int, help="rebuild this case and run it alone")
    args = ap.parse_args()
    args.work = args.work.resolve()

    seeds = make_seeds(args.work / "seeds")
    cases_dir = args.work / f"cases-{args.seed}"
    if args.replay is not None:
        cases_dir.mkdir(parents=True, exist_ok=True)
        path, how = case(seeds, args.seed, args.replay, cases_dir)
        print(f"case {args.replay}: {path} from {' / '.join(how)}")
        r = run_alone(path, cases_dir / "replay.srt", args.file_timeout)
        print(json.dumps(r))
        sys.exit(0 if r.get("ok") else 1)

    shutil.rmtree(cases_dir, ignore_errors=True)
    cases_dir.mkdir(parents=True)
    out = args.work / f"out-{args.seed}"
    shutil.rmtree(out, ignore_errors=True)
    made = {}
    with open(cases_dir / "manifest.jsonl", "w") as m:
        for n in range(args.cases):
            path, how = case(seeds, args.seed, n, cases_dir)
            made[path.name] = how
            m.write(json.dumps({"id": path.name, "path": str(path)}) + "\n")
    print(f"{args.cases} cases from {len(seeds)} seeds ({', '.join(SEEDS)}), seed {args.seed}", flush=True)

    crashes, wall, peak = batch(cases_dir / "manifest.jsonl", out, args)
    problems = []
    states = {}
    for id_, r in ledger(out).items():
        states[r["state"]] = states.get(r["state"], 0) + 1
        err = r.get("error") or ""
        if "panicked" in err or "internal error" in err:
            problems.append(("panic", id_, err))
        elif "time limit" in err:
            problems.append(("hang", id_, err))
        if r["state"] == "done":
            o = out / (r.get("output") or "")
            if not o.is_file() or not srt_ok(o.read_text(errors="replace")):
                problems.append(("partial", id_, "done, but its output is not whole"))
        elif r.get("output") and (out / r["output"]).exists():
            problems.append(("partial", id_, f"{r['state']}, but an output exists"))
    missing = set(made) - set(ledger(out))
    problems += [("lost", m, "no record") for m in sorted(missing)]
    temps = [str(p) for p in out.rglob("*.tmp")]
    problems += [("partial", t, "temporary file left") for t in temps]
    if peak > args.rss_mb:
        problems.append(("memory", "batch", f"peak RSS {peak:.0f} MB over {args.rss_mb:.0f}"))
    problems += [("crash", "batch", f"{crashes} crash(es) of the batch process")] if crashes else []

    alone = {"ok": 0, "exit0": 0, "exit2": 0}
    if args.cli_every:
        for n in range(0, args.cases, args.cli_every):
            path = cases_dir / f"case-{n:05d}{seeds[n % len(seeds)].suffix}"
            r = run_alone(path, cases_dir / f"alone-{n:05d}.srt", args.file_timeout)
            if r.get("ok"):
                alone["ok"] += 1
                alone[f"exit{r['exit']}"] += 1
            else:
                problems.append((r["problem"], path.name, r["detail"]))

    summary = {
        "cases": args.cases, "seed": args.seed, "states": states, "batch_wall_s": round(wall, 1),
        "batch_peak_rss_mb": round(peak, 1), "batch_crashes": crashes, "alone": alone,
        "panics": sum(p[0] == "panic" for p in problems), "hangs": sum(p[0] == "hang" for p in problems),
        "partial": sum(p[0] == "partial" for p in problems), "problems": len(problems),
    }
    for kind, what, detail in problems[:50]:
        print(f"{kind}: {what}: {detail} (replay: python3 fuzz/media.py --seed {args.seed} --replay "
              f"{what.split('-')[1].split('.')[0] if what.startswith('case-') else '?'})")
    print(json.dumps(summary))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
