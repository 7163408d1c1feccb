"""The live benchmark's measurements, from outside the process (benches/live.sh drives it).

    live_measure.py mix DIR DATA [SEED]     # DIR/mix.wav: the English clips of DATA (../shared/data/real)
                                            # joined with pauses; DIR/ref.txt, DIR/clips.tsv; with SEED,
                                            # the clips in an order shuffled by it (another mix of the
                                            # same speech: other buffers, other draws)
    live_measure.py refwords DIR OFFLINE.json   # DIR/ref_words.json: reference words with times
    live_measure.py stream DIR              # DIR/mix.ts: mix.wav encoded as the player sends it, for the
                                            # offline run of the same stream; DIR/mix-stream.wav: its audio
                                            # decoded, for the peer
    live_measure.py ours DIR NAME -- CMD...     # plays mix.wav in real time (ffmpeg -re, MPEG-TS on a pipe)
                                                # into CMD (which reads stdin, writes --events - to stdout)
    live_measure.py peer DIR NAME -- CMD...     # runs CMD (live_peer.py), which plays the WAV itself
    live_measure.py two DIR NAME -- CMD...      # CMD listens on two udp:// URLs; mix.wav is played into both
    live_measure.py replay DIR NAME STEP -- CMD...  # mix.wav fed as fast as CMD reads it, a pass every STEP ms
                                                # of stream (`--pipeline` with min_step_ms = max_step_ms =
                                                # STEP added to CMD): the same passes every run, for
                                                # comparing commit rules without real time's noise; WER only
                                                # (PIPELINE=FILE: another build's pipelines/live.toml)
    live_measure.py report DIR NAME...          # the table
    live_measure.py errors DIR NAME [LOG]       # the committed words' errors that our offline run of the
                                                # stream does not make; with LOG (the run's stderr at
                                                # -v -v), how long after the start of its pass's buffer each lies
    live_measure.py hour DIR MINUTES -- CMD...  # mix.wav looped for MINUTES of stream, fed as fast as CMD
                                                # reads it; RSS sampled each second against stream time

Reference word times come from aligning the reference text to an offline run's timed words (the
base model, beam 5): a reference word takes the time of the hypothesis word it matches, and the
words between two matches share the time between them. Latency is measured per reference word
matched by a committed word: the committed word's arrival (wall clock since the player started)
less the reference word's end.
"""
import difflib
import fcntl
import json
import os
import random
import re
import subprocess
import sys
import time
import wave

PAUSE_S = 1.0
SR = 16000


# ../shared/tools (wer.py), beside the repository.
TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/tools")


def norm(w):
    return re.sub(r"[^a-z0-9']+", "", w.lower()).replace("'", "")


def words_of(text):
    return [w for w in (norm(x) for x in text.split()) if w]


def cmd_mix(d, data, seed=None):
    rows = [l.rstrip("\n").split("\t") for l in open(f"{data}/manifest.tsv")]
    head, rows = rows[0], rows[1:]
    if seed is not None:
        random.Random(int(seed)).shuffle(rows)
    col = {k: i for i, k in enumerate(head)}
    pcm, clips, ref = bytearray(), [], []
    for r in rows:
        if r[col["lang"]] != "en":
            continue
        path = f"{data}/{r[col['mp4']]}"
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ar", str(SR), "-ac", "1", "-"],
                             check=True, capture_output=True).stdout
        clips.append((r[col["id"]], len(pcm) / 2 / SR, len(raw) / 2 / SR))
        pcm += raw + bytes(int(PAUSE_S * SR) * 2)
        ref.append(" ".join(open(f"{data}/{r[col['ref_txt']]}").read().split()))
    with wave.open(f"{d}/mix.wav", "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(bytes(pcm))
    open(f"{d}/ref.txt", "w").write("\n".join(ref) + "\n")
    with open(f"{d}/clips.tsv", "w") as f:
        for c in clips:
            f.write("%s\t%.3f\t%.3f\n" % c)
    print(f"mix: {len(clips)} clips, {len(pcm) / 2 / SR:.1f} s", file=sys.stderr)


def cmd_refwords(d, offline):
    ref_text = open(f"{d}/ref.txt").read().split("\n")
    clips = [l.split("\t") for l in open(f"{d}/clips.tsv").read().splitlines()]
    hyp = [(norm(w["word"]), w["start"], w["end"]) for s in json.load(open(offline))["segments"] for w in s["words"]]
    hyp = [h for h in hyp if h[0]]
    out = []
    for (cid, off, dur), text in zip(clips, ref_text):
        off, dur = float(off), float(dur)
        ref = words_of(text)
        inside = [h for h in hyp if off - 0.5 <= h[1] <= off + dur + 0.5]
        times = [None] * len(ref)
        sm = difflib.SequenceMatcher(a=ref, b=[h[0] for h in inside], autojunk=False)
        for blk in sm.get_matching_blocks():
            for k in range(blk.size):
                times[blk.a + k] = (inside[blk.b + k][1], inside[blk.b + k][2])
        # Words without a match share the time between their matched neighbours.
        i = 0
        while i < len(ref):
            if times[i] is None:
                j = i
                while j < len(ref) and times[j] is None:
                    j += 1
                lo = times[i - 1][1] if i > 0 else off
                hi = times[j][0] if j < len(ref) else off + dur
                step = max(hi - lo, 0.0) / (j - i)
                for k in range(i, j):
                    times[k] = (lo + step * (k - i), lo + step * (k - i + 1))
                i = j
            else:
                i += 1
        out += [{"word": w, "start": t[0], "end": t[1], "clip": cid} for w, t in zip(ref, times)]
    json.dump(out, open(f"{d}/ref_words.json", "w"))
    print(f"reference words: {len(out)}", file=sys.stderr)


def timed(cmd, d, name):
    return ["/usr/bin/time", "-f", "%e %U %S %M", "-o", f"{d}/{name}.time"] + cmd


def sender():
    """How the player muxes MPEG-TS. By default each AAC frame (64 ms) is sent as it is encoded, as
    a live encoder does: FFmpeg's muxer by itself gathers about 0.3 s of audio into each PES packet
    (`pes_payload_size`) and so delivers a word's end 0.3-0.6 s after it was played, a delay of
    the sender, not of what it feeds. TS_SENDER=buffered: FFmpeg's defaults (numbers before
    2026-12-04 22:30 UTC)."""
    if os.environ.get("TS_SENDER", "flush") == "buffered":
        return []
    return ["-pes_payload_size", "0", "-flush_packets", "1"]


def player_cmd(d, pace, out):
    """The ffmpeg command that plays mix.wav as AAC in MPEG-TS into `out` (- or a URL)."""
    return (["ffmpeg", "-v", "error"] + pace + ["-i", f"{d}/mix.wav", "-c:a", "aac", "-b:a", "128k"] + sender()
            + ["-f", "mpegts", out])


def cmd_stream(d):
    """The stream the player sends, as a file: the offline run to compare a live run with must hear
    the same audio. AAC at 128 kb/s is near transparent (36 dB SNR here), but its encoder puts 1024
    samples of priming before the audio (MPEG-TS has no field to drop them by), and Whisper's 10 ms
    mel frames then fall 64 ms later on the speech: tiny.en's offline WER on this mix moves between
    5.04 and 5.85% with the audio shifted by 0 to 140 samples. `mix-stream.wav` is the stream's audio
    decoded (priming and all), for whisper_streaming, which reads a WAV itself."""
    subprocess.run(player_cmd(d, ["-y"], f"{d}/mix.ts"), check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", f"{d}/mix.ts", "-ac", "1", "-ar", str(SR), f"{d}/mix-stream.wav"],
                   check=True)


# Our offline runs (tiny.en, beam 5) that live runs are compared with, the one of the same
# stream first: file name in DIR (less .json), and what it ran on.
OFFLINE_RUNS = (("offline-stream", "the stream as sent (mix.ts)"), ("offline", "mix.wav"))


def offline_texts(d):
    """{name: text} of the OFFLINE_RUNS that DIR holds, in that order."""
    return {f: " ".join(s["text"] for s in json.load(open(f"{d}/{f}.json"))["segments"])
            for f, _ in OFFLINE_RUNS if os.path.exists(f"{d}/{f}.json")}


def offline_text(d):
    """Our offline run of the same stream (`offline-stream.json`, from `mix.ts`), or of mix.wav."""
    return next(iter(offline_texts(d).values()), None)


def play(d, realtime):
    """mix.wav as AAC in MPEG-TS on a pipe: at its own pace (`ffmpeg -re`), or as fast as it is read.
    The pipe holds 1 MiB (a minute of the stream): `ffmpeg -re` blocked on a full pipe never makes
    up the time, so a reader that starts late (64 KiB, the default, is 4 s of the stream) would hold
    the player back and every later word would count that delay, as one run on 2026-12-07 did (the
    stream 4.5 s behind the wall clock from its first second to its last). A live source does not
    wait for its reader: with room in the pipe, a late start is a backlog the reader must work off."""
    p = subprocess.Popen(player_cmd(d, ["-re"] if realtime else [], "-"), stdout=subprocess.PIPE)
    fcntl.fcntl(p.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    return p


def cmd_ours(d, name, cmd):
    feed = play(d, realtime=True)
    t0 = time.time()
    proc = subprocess.Popen(timed(cmd, d, name), stdin=feed.stdout, stdout=subprocess.PIPE, text=True)
    feed.stdout.close()
    with open(f"{d}/{name}.jsonl", "w") as f:
        for line in proc.stdout:
            e = json.loads(line)
            e["arrived"] = time.time() - t0
            f.write(json.dumps(e) + "\n")
    proc.wait()
    feed.wait()


def cmd_two(d, name, cmd):
    """Two streams into one process: CMD listens on two UDP ports (the last two arguments that
    are udp:// URLs); the same audio is played into both at once."""
    urls = [a for a in cmd if a.startswith("udp://")]
    proc = subprocess.Popen(timed(cmd, d, name), stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    players = [subprocess.Popen(player_cmd(d, ["-re"], u + "?pkt_size=1316")) for u in urls]
    t0 = time.time()
    files = [open(f"{d}/{name}.{k + 1}.jsonl", "w") for k in range(len(urls))]
    import signal
    import threading

    def end_streams():
        # Network inputs do not end by themselves: Ctrl-C once the players are done (what was
        # heard is flushed). The signal goes to CMD itself, under /usr/bin/time.
        for p in players:
            p.wait()
        time.sleep(5.0)
        for c in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split():
            os.kill(int(c), signal.SIGINT)
    threading.Thread(target=end_streams, daemon=True).start()
    for line in proc.stdout:
        e = json.loads(line)
        e["arrived"] = time.time() - t0
        k = int(e.get("stream", "1:").split(":")[0]) - 1
        files[k].write(json.dumps(e) + "\n")
    proc.wait()
    for k, f in enumerate(files):
        f.close()
        with open(f"{d}/{name}.{k + 1}.time", "w") as t:
            t.write(open(f"{d}/{name}.time").read())


def cmd_replay(d, name, step, cmd):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    # A pass every STEP ms of stream, never cut down for being slow: the words do not depend
    # on the machine's speed or load.
    value = {"min_step_ms": int(step), "max_step_ms": int(step), "degrade_pass_ms": 1_000_000}
    toml = re.sub(r"(?m)^(min_step_ms|max_step_ms|degrade_pass_ms) = .*$", lambda m: f"{m.group(1)} = {value[m.group(1)]}",
                  open(os.environ.get("PIPELINE", f"{root}/pipelines/live.toml")).read())
    pipeline = f"{d}/{name}.toml"
    open(pipeline, "w").write(toml)
    player = play(d, realtime=False)
    t0 = time.time()
    proc = subprocess.Popen(timed(cmd + ["--pipeline", pipeline], d, name), stdin=player.stdout,
                            stdout=subprocess.PIPE, text=True)
    player.stdout.close()
    ev = [json.loads(line) for line in proc.stdout]
    if proc.wait() != 0:
        sys.exit(f"{name}: the command failed (exit {proc.returncode})")
    player.wait()
    with open(f"{d}/{name}.jsonl", "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in ev)
    said = " ".join(w["text"] for e in ev if e["type"] == "words" for w in e["words"])
    w_ref = wer(said, open(f"{d}/ref.txt").read().replace("\n", " "), d, name + ".ref")
    w_off = wer(said, offline_text(d), d, name + ".off")
    stats = [e for e in ev if e["type"] == "stats"]
    print("%s: a pass every %s ms of stream, %d passes, WER %.2f%% (against offline %.2f%%), %.0f s" % (
        name, step, stats[-1]["passes"] if stats else 0, w_ref, w_off, time.time() - t0))


def cmd_peer(d, name, cmd):
    proc = subprocess.Popen(timed(cmd, d, name), stdout=subprocess.PIPE, text=True)
    with open(f"{d}/{name}.jsonl", "w") as f:
        for line in proc.stdout:
            e = json.loads(line)
            f.write(json.dumps({"type": "chunk", "arrived": e["t"], "text": e["text"], "start": e["start"], "end": e["end"]}) + "\n")
    proc.wait()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def wer(hyp_text, ref_text, d, tag):
    hp, rp = f"{d}/{tag}.hyp.txt", f"{d}/{tag}.ref.txt"
    open(hp, "w").write(hyp_text + "\n")
    open(rp, "w").write(ref_text + "\n")
    out = subprocess.run([sys.executable, os.path.join(TOOLS, "wer.py"), hp, rp], capture_output=True, text=True).stdout
    m = re.search(r"WER\s*[:=]?\s*([0-9.]+)\s*%", out)
    return float(m.group(1)) if m else float("nan")


def cmd_report(d, names):
    ref = json.load(open(f"{d}/ref_words.json"))
    ref_text = open(f"{d}/ref.txt").read().replace("\n", " ")
    off_text = offline_text(d)
    offline_wer = {f: wer(text, ref_text, d, f) for f, text in offline_texts(d).items()}
    print("%-22s %6s %6s %6s %6s | %6s %6s | %6s %6s | %5s %6s" % (
        "run", "p50", "p90", "p95", "max", "cue50", "cue95", "WER%", "vsOff", "CPU%", "MB"))
    for name in names:
        ev = [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
        committed = []  # (word, arrival, end)
        said = []  # the committed text as it was written: WER normalises it as it does the reference
        cue_lat = []
        for e in ev:
            if e["type"] == "words":
                committed += [(norm(w["text"]), e["arrived"], w["end"]) for w in e["words"] if norm(w["text"])]
                said += [w["text"] for w in e["words"]]
            elif e["type"] == "chunk":
                committed += [(w, e["arrived"], e["end"]) for w in words_of(e["text"])]
                said.append(e["text"])
        for e in ev:
            if e["type"] == "cue":
                ends = [c[2] for c in committed if e["start"] - 0.01 <= c[2] <= e["end"] + 0.01]
                if ends:
                    cue_lat.append(e["arrived"] - max(ends))
        sm = difflib.SequenceMatcher(a=[r["word"] for r in ref], b=[c[0] for c in committed], autojunk=False)
        lat = []
        for blk in sm.get_matching_blocks():
            for k in range(blk.size):
                lat.append(committed[blk.b + k][1] - ref[blk.a + k]["end"])
        text = " ".join(said)
        w_ref = wer(text, ref_text, d, name + ".ref")
        w_off = wer(text, off_text, d, name + ".off") if off_text is not None else float("nan")
        wall, user, sys_, rss = open(f"{d}/{name}.time").read().split()[-4:]
        cpu = 100 * (float(user) + float(sys_)) / max(float(wall), 1e-9)
        print("%-22s %6.2f %6.2f %6.2f %6.2f | %6.2f %6.2f | %6.2f %6.2f | %5.0f %6.0f" % (
            name, pct(lat, 50), pct(lat, 90), pct(lat, 95), max(lat or [float("nan")]),
            pct(cue_lat, 50), pct(cue_lat, 95), w_ref, w_off, cpu, int(rss) / 1024))
    print(f"({len(ref)} reference words; latencies in seconds from a reference word's end to its committed word's "
          f"arrival; cue: from a cue's last word's end to the cue's arrival; vsOff: WER against our offline run)")
    print("our offline WER (tiny.en, beam 5): " + ", ".join(
        "%.2f%% on %s" % (offline_wer[f], what) for f, what in OFFLINE_RUNS if f in offline_wer))


def rss_kb(pid):
    """Resident memory of `pid` and its children (the /usr/bin/time wrapper's child), in kB."""
    total = 0
    for p in [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]:
        try:
            total += int(next(l for l in open(f"/proc/{p}/status") if l.startswith("VmRSS")).split()[1])
        except (OSError, StopIteration):
            pass
    return total


def cmd_hour(d, minutes, cmd):
    """Memory over a long stream: RSS at stream minute 1 against the peak after it."""
    loops = int(float(minutes) * 60 / (os.path.getsize(f"{d}/mix.wav") / 2 / SR)) + 1
    player = subprocess.Popen(["ffmpeg", "-v", "error", "-stream_loop", str(loops - 1), "-i", f"{d}/mix.wav",
                               "-t", str(float(minutes) * 60), "-c:a", "aac", "-f", "mpegts", "-"],
                              stdout=subprocess.PIPE)
    proc = subprocess.Popen(cmd, stdin=player.stdout, stdout=subprocess.PIPE, text=True)
    player.stdout.close()
    import threading
    at = [0.0]
    samples = []

    def sample():
        while proc.poll() is None:
            samples.append((at[0], rss_kb(proc.pid)))
            time.sleep(1.0)
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.time()
    skipped = 0.0
    for line in proc.stdout:
        e = json.loads(line)
        if e["type"] == "words" and e["words"]:
            at[0] = e["words"][-1]["end"]
        elif e["type"] == "gap" and e.get("reason") == "overload":
            skipped += e["end"] - e["start"]
    proc.wait()
    first = max([r for t, r in samples if t <= 60] or [0])
    peak = max(r for t, r in samples)
    late = max([r for t, r in samples if t >= float(minutes) * 60 - 300] or [0])
    curve = ", ".join(f"{m} min {max([r for t, r in samples if t <= m * 60] or [0]) / 1024:.0f}"
                      for m in (1, 2, 5, 10, 20, 30, 45, 60) if m <= float(minutes))
    print(f"peak RSS up to stream minute: {curve} MB")
    print(f"{minutes} min of stream in {time.time() - t0:.0f} s: RSS first minute {first / 1024:.0f} MB, "
          f"peak {peak / 1024:.0f} MB ({100 * (peak / max(first, 1) - 1):+.1f}%), last 5 minutes {late / 1024:.0f} MB; "
          f"skipped {skipped:.1f} s")


def hms(s):
    h, m, x = s.split(":")
    return int(h) * 3600 + int(m) * 60 + float(x)


def cmd_errors(d, name, log=None):
    """Live's own errors: where the committed words differ from the reference and our offline run
    of the stream does not differ alike (words normalised as wer.py does). With a debug log, each
    with the buffer start before it (`R`: a restart after a pass that stopped short)."""
    sys.path.insert(0, TOOLS)
    from wer import normalize
    ref = normalize(open(f"{d}/ref.txt").read().replace("\n", " "))
    off = normalize(offline_text(d))
    said = []  # (word, start)
    for e in (json.loads(l) for l in open(f"{d}/{name}.jsonl")):
        if e["type"] == "words":
            said += [(w, x["start"]) for x in e["words"] for w in normalize(x["text"])]
    hyp = [w for w, _ in said]

    def errors(h):
        ops = difflib.SequenceMatcher(a=ref, b=h, autojunk=False).get_opcodes()
        return {(i1, i2): h[j1:j2] for tag, i1, i2, j1, j2 in ops if tag != "equal"}, ops

    live, ops = errors(hyp)
    offline, _ = errors(off)
    starts, restarts = [], set()
    for line in open(log) if log else []:
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if m := re.search(r"restart=(\S+)", line):
            restarts.add(hms(m.group(1)))
        if "pass:" in line and (m := re.search(r"buffer=(\S+)", line)):
            if not starts or starts[-1][0] != hms(m.group(1)):
                starts.append((hms(m.group(1)), hms(m.group(1)) in restarts))
    total = 0
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal" or offline.get((i1, i2)) == live[(i1, i2)]:
            continue
        total += max(i2 - i1, j2 - j1)
        t = said[min(j1, len(said) - 1)][1] if said else 0.0
        where = ""
        if starts:
            b, restart = max((s for s in starts if s[0] <= t), default=(0.0, False))
            where = "%6.2f s after a buffer start%s" % (t - b, " (R)" if restart else "")
        print("%7.2f  ref %-24r live %-24r %s" % (t, " ".join(ref[i1:i2]), " ".join(hyp[j1:j2]), where))
    print(f"{name}: {total} words in errors of live's own, of {len(ref)} reference words")


if __name__ == "__main__":
    what, d = sys.argv[1], sys.argv[2]
    if what == "mix":
        cmd_mix(d, *sys.argv[3:5])
    elif what == "refwords":
        cmd_refwords(d, sys.argv[3])
    elif what == "stream":
        cmd_stream(d)
    elif what in ("ours", "peer", "two", "replay"):
        i = sys.argv.index("--")
        if what == "replay":
            cmd_replay(d, sys.argv[3], sys.argv[4], sys.argv[i + 1:])
        else:
            {"ours": cmd_ours, "peer": cmd_peer, "two": cmd_two}[what](d, sys.argv[3], sys.argv[i + 1:])
    elif what == "report":
        cmd_report(d, sys.argv[3:])
    elif what == "errors":
        cmd_errors(d, *sys.argv[3:5])
    elif what == "hour":
        i = sys.argv.index("--")
        cmd_hour(d, sys.argv[3], sys.argv[i + 1:])
    else:
        sys.exit(f"live_measure.py: no such command: {what} (see the top of this file)")
