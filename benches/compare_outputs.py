#!/usr/bin/env python3
"""Compares two directory trees of `subtitle --format json` outputs (benches/outputs.sh): per
file, whether the cue text is the same and how far cue in- and out-times moved.

    python3 benches/compare_outputs.py A B [--tolerance-ms 40]

Exit status 0 when every file has the same text and every cue time is within the tolerance.
"""
import argparse
import json
import pathlib
import sys


def cues(path):
    doc = json.loads(path.read_text())
    return [(c["start"], c["end"], "\n".join(c["lines"])) for c in doc["cues"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tolerance-ms", type=float, default=40.0)
    args = ap.parse_args()
    a, b = pathlib.Path(args.a), pathlib.Path(args.b)
    files = sorted(p.relative_to(a) for p in a.rglob("*.json"))
    bad = 0
    worst = 0.0
    for rel in files:
        pb = b / rel
        if not pb.is_file():
            print(f"{rel}: missing in {b}")
            bad += 1
            continue
        ca, cb = cues(a / rel), cues(pb)
        ta = " ".join(c[2].replace("\n", " ") for c in ca)
        tb = " ".join(c[2].replace("\n", " ") for c in cb)
        if ta != tb:
            print(f"{rel}: text differs\n  - {ta[:300]}\n  + {tb[:300]}")
            bad += 1
            continue
        if len(ca) != len(cb):
            print(f"{rel}: {len(ca)} cues vs {len(cb)} (same text)")
            bad += 1
            continue
        moved = max((max(abs(x[0] - y[0]), abs(x[1] - y[1])) * 1000 for x, y in zip(ca, cb)), default=0.0)
        worst = max(worst, moved)
        if moved > args.tolerance_ms:
            print(f"{rel}: a cue time moved {moved:.0f} ms")
            bad += 1
    print(f"{len(files)} files, {bad} differ; largest cue-time move among same-text files {worst:.0f} ms")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
