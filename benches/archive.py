"""Helpers of benches/archive.sh: the archive built from ../shared/data, the RSS monitor, the
kill loops and their checks.

    archive.py corpus DIR N REAL          # N files under DIR/media, refs, list.txt, pairs of names
    archive.py many DIR N REAL            # N single clips (hard links) under DIR/media
    archive.py watch PID OUT CSV          # RSS and done files every 0.5 s until PID ends
    archive.py rss CSV N1 N2              # peak RSS once N1 and N2 files were done
    archive.py kills BIN SRC OUT N [REDIS_PORT]   # N kill -9s of shard then queue workers, then checks
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path


def english_clips(real):
    rows = [line.split("\t") for line in open(f"{real}/manifest.tsv").read().splitlines()[1:]]
    return [r[0] for r in rows if r[4] == "en"]


def ff(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def corpus(d, n, real):
    """Mixed lengths and containers: single clips (mp4 as shipped, wav/flac originals), 40 long
    ones (clips joined, AAC/MP3, 40 s to 3 min), 6 of 1080p H.264 video (about a minute each), and
    4 broken files (a truncated MP4, junk named .mkv, an empty .wav, a video without sound)."""
    rng = random.Random(20261202)
    d = Path(d)
    media, refs = d / "media", d / "refs"
    media.mkdir(parents=True, exist_ok=True)
    refs.mkdir(exist_ok=True)
    ids = english_clips(real)
    text = {i: open(f"{real}/refs/{i}.txt").read().strip() for i in ids}
    orig = {p.stem: p for p in Path(real, "orig").iterdir()}
    made = []  # (path, reference text or None)

    def joined(name, k, ext, video=False):
        picks = [rng.choice(ids) for _ in range(k)]
        parts = []
        for i, c in enumerate(picks):
            parts += ["-i", f"{real}/mp4/{c}.mp4"]
        gap = "".join(f"[{i}:a]aresample=16000,apad=pad_dur={rng.uniform(0.4, 1.5):.2f}[a{i}];" for i in range(k))
        cat = "".join(f"[a{i}]" for i in range(k)) + f"concat=n={k}:v=0:a=1[out]"
        out = media / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if video:
            wav = d / "tmp.wav"
            ff(*parts, "-filter_complex", gap + cat, "-map", "[out]", str(wav))
            dur = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                                        "csv=p=0", str(wav)], capture_output=True, text=True).stdout)
            ff("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=25:duration={dur:.2f}", "-i", str(wav),
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(out))
            wav.unlink()
        else:
            codec = ["-c:a", "aac", "-b:a", "96k"] if ext == "m4a" else ["-c:a", "libmp3lame", "-q:a", "4"]
            ff(*parts, "-filter_complex", gap + cat, "-map", "[out]", *codec, str(out))
        made.append((out, " ".join(text[c] for c in picks)))

    k = 0
    for _ in range(6):
        k += 1
        joined(f"hd/{k:04d}-talk.mp4", rng.randint(8, 12), "mp4", video=True)
    for _ in range(40):
        k += 1
        ext = rng.choice(["m4a", "mp3"])
        joined(f"long/{k:04d}-session.{ext}", rng.randint(8, 25), ext)
    (media / "broken").mkdir(exist_ok=True)
    head = open(f"{real}/mp4/jfk.mp4", "rb").read()[:60000]
    broken = {"truncated.mp4": head, "junk.mkv": bytes(rng.getrandbits(8) for _ in range(40000)), "empty.wav": b""}
    for name, data in broken.items():
        k += 1
        p = media / "broken" / f"{k:04d}-{name}"
        p.write_bytes(data)
        made.append((p, None))
    k += 1
    silent = media / "broken" / f"{k:04d}-no-audio.mp4"
    ff("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
       str(silent))
    made.append((silent, None))
    (media / "clips").mkdir(exist_ok=True)
    while k < n:
        k += 1
        c = rng.choice(ids)
        src = orig[c]
        if rng.random() < 0.6 or src.suffix not in (".wav", ".flac", ".mp3", ".ogg"):
            src = Path(f"{real}/mp4/{c}.mp4")
        p = media / "clips" / f"{k:04d}-{c}{src.suffix}"
        os.link(src, p) if os.stat(src).st_dev == os.stat(media).st_dev else p.write_bytes(src.read_bytes())
        made.append((p, text[c]))
    with open(d / "list.txt", "w") as f:
        for p, _ in made:
            f.write(f"{p}\n")
    with open(d / "names.tsv", "w") as f:  # name (no extension), relative path, reference file
        for p, ref in made:
            if ref is not None:
                (refs / f"{p.stem}.txt").write_text(ref + "\n")
                f.write(f"{p.stem}\t{p.relative_to(media)}\t{refs / (p.stem + '.txt')}\n")
    secs = 0.0
    for p, ref in made:
        if ref is not None:
            out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                  str(p)], capture_output=True, text=True).stdout.strip()
            secs += float(out or 0)
    (d / "media_s").write_text(f"{secs:.1f}\n")
    print(f"{len(made)} files, {secs / 3600:.2f} media h ({sum(r is None for _, r in made)} broken)")


def many(d, n, real):
    """N single clips, hard links to the shared mp4s (the RSS run)."""
    media = Path(d) / "media"
    media.mkdir(parents=True, exist_ok=True)
    ids = english_clips(real)
    for k in range(n):
        c = ids[k % len(ids)]
        p = media / f"{k // 100:02d}" / f"{k:05d}-{c}.mp4"
        p.parent.mkdir(exist_ok=True)
        if not p.exists():
            src = Path(f"{real}/mp4/{c}.mp4")
            try:
                os.link(src, p)
            except OSError:
                p.write_bytes(src.read_bytes())


def done_count(out):
    n = 0
    ledgers = Path(out) / ".subtitle-batch"
    if ledgers.is_dir():
        for f in ledgers.glob("ledger-*.jsonl"):
            n += f.read_bytes().count(b'"state":"done"')
    return n


def watch(pid, out, csv):
    t0 = time.time()
    with open(csv, "w") as f:
        f.write("t,done,rss_mb\n")
        while True:
            try:
                status = open(f"/proc/{pid}/status").read()
            except OSError:
                break
            rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0)
            f.write(f"{time.time() - t0:.1f},{done_count(out)},{rss / 1024:.1f}\n")
            f.flush()
            time.sleep(0.5)


def rss(csv, n1, n2):
    rows = [tuple(map(float, line.split(","))) for line in open(csv).read().splitlines()[1:]]
    peak = lambda n: max((r[2] for r in rows if r[1] <= n), default=0.0)  # noqa: E731
    a, b = peak(n1), peak(n2)
    print(f"peak RSS after {n1} files: {a:.0f} MB; after {n2}: {b:.0f} MB ({100 * (b / a - 1):+.1f}%)")
    step = max(1, int(n2) // 10)
    curve = [f"{int(n)}:{max((r[2] for r in rows if r[1] <= n), default=0):.0f}" for n in range(step, int(n2) + 1, step)]
    print("peak RSS (MB) by files done: " + " ".join(curve))


def kills(binary, src, out, n, port=None):
    """N kill -9s at random moments: the first half of two shard workers (0/2 and 1/2, run at once,
    one killed and restarted at a time), the second half of three queue workers; then each kind
    runs to the end, and the outputs and ledgers are checked."""
    rng = random.Random(7)
    common = ["--ocr", "off", "--beam", "1", "--threads", "1", "--jobs", "1", "-q"]
    env = dict(os.environ)

    def loop(make, count, slots):
        procs = [make(i) for i in range(slots)]
        for _ in range(count):
            time.sleep(rng.uniform(0.5, 3.0))
            i = rng.randrange(slots)
            if procs[i].poll() is None:
                procs[i].send_signal(signal.SIGKILL)
            procs[i].wait()
            procs[i] = make(i)
        for p in procs:
            p.wait()

    shard_out = Path(out) / "shards"
    loop(lambda i: subprocess.Popen([binary, "batch", src, "--out", str(shard_out), "--shard", f"{i}/2",
                                     "--retries", "20", *common], env=env, stderr=subprocess.DEVNULL), n // 2, 2)
    results = {"shards": check(binary, shard_out)}
    if port:
        url = f"redis://127.0.0.1:{port}/kills"
        subprocess.run([binary, "batch", "enqueue", src, url], check=True, stderr=subprocess.DEVNULL)
        queue_out = Path(out) / "queue"
        loop(lambda i: subprocess.Popen([binary, "batch", url, "--out", str(queue_out), "--lease", "3",
                                         "--retries", "20", *common], env=env, stderr=subprocess.DEVNULL),
             n - n // 2, 3)
        # A worker killed last leaves its file pending for a lease: one more drains it.
        subprocess.run([binary, "batch", url, "--out", str(queue_out), "--lease", "3", *common],
                       env=env, stderr=subprocess.DEVNULL)
        results["queue"] = check(binary, queue_out)
    for kind, r in results.items():
        print(f"{kind}: {r}")


def check(binary, out):
    s = json.loads(subprocess.run([binary, "batch", "status", str(out), "--json"], capture_output=True,
                                  text=True, check=True).stdout)
    dones = {}
    for f in (Path(out) / ".subtitle-batch").glob("ledger-*.jsonl"):
        for line in f.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r["state"] == "done":
                dones[r["id"]] = dones.get(r["id"], 0) + 1
    partial, temps = 0, 0
    for p in Path(out).rglob("*"):
        if ".subtitle-batch" in p.parts or not p.is_file():
            continue
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            temps += 1
        elif subprocess.run([binary, "check", str(p), "--profile", "bbc"], capture_output=True).returncode == 2:
            partial += 1
    return (f"{s['items']} items: {s['done']} done, {s['failed']} failed, {s['skipped']} skipped, "
            f"{s['pending']} pending (lost); done twice: {sum(n - 1 for n in dones.values())}; "
            f"partial outputs: {partial}, temporary files left: {temps}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "corpus":
        corpus(args[0], int(args[1]), args[2])
    elif cmd == "many":
        many(args[0], int(args[1]), args[2])
    elif cmd == "watch":
        watch(int(args[0]), args[1], args[2])
    elif cmd == "rss":
        rss(args[0], float(args[1]), float(args[2]))
    elif cmd == "kills":
        kills(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else None)
    else:
        sys.exit(__doc__)
